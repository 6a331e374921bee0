/* kernel_probe_decode.c - native decode speed of a model folder without text (ids only, so random test
 * models whose greedy ids fall outside the tokenizer work): prefill ids 1000..1063, then N greedy steps.
 *   cc -O2 $(for d in src/*/
;
do echo - I$d; done) tools/bench/kernel_probe_decode.c build/native/libqwasm_core.a -lcjson -lm -lpthread -o build/tmp/kernel_probe_decode
 *   build/tmp/kernel_probe_decode MODEL_DIR [steps=64] [exact_lm_head=0]
 * Prints one JSON line: load ms, prefill ms, decode tok/s, the greedy ids and the per-op profile. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "qw_model.h"

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: kernel_probe_decode MODEL_DIR [steps] [exact_lm_head]\n");
        return 2;
    }
    int steps = argc > 2 ? atoi(argv[2]) : 64, exact = argc > 3 ? atoi(argv[3]) : 0;
    qw_error err = {0};
    qw_fs fs;
    if (qw_fs_open_dir(argv[1], &fs, &err) != QW_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    qw_load_opts lo;
    memset(&lo, 0, sizeof lo);
    lo.exact_lm_head = exact;
    lo.max_context = 256;
    lo.profile = 1;
    qw_model *m;
    double t0 = now_ms();
    if (qw_model_load(&fs, &lo, &m, &err) != QW_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    double load_ms = now_ms() - t0;
    int V = qw_decoder_vocab(m->dec);
    float *logits = malloc((size_t)V * 4);
    int32_t prompt[64], *ids = malloc((size_t)steps * 4);
    for (int i = 0; i < 64; i++) prompt[i] = 1000 + i;
    t0 = now_ms();
    if (qw_decoder_forward(m->dec, prompt, 64, logits, NULL, NULL, &err) != QW_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    double pre_ms = now_ms() - t0;
    qw_graph_profile_reset(m->graph);
    t0 = now_ms();
    for (int s = 0; s < steps; s++) {
        int best = 0;
        for (int i = 1; i < V; i++)
            if (logits[i] > logits[best]) best = i;
        ids[s] = best;
        if (s + 1 < steps && qw_decoder_forward(m->dec, &ids[s], 1, logits, NULL, NULL, &err) != QW_OK) {
            fprintf(stderr, "%s\n", err.msg);
            return 1;
        }
    }
    double dec_ms = now_ms() - t0;
    printf(
        "{\"model\":\"%s\",\"exact_lm_head\":%d,\"load_ms\":%.0f,\"prefill_ms\":%.1f,\"decode_tok_s\":%.2f,\"ids\":[",
        argv[1], exact, load_ms, pre_ms, (steps - 1) / (dec_ms / 1e3));
    for (int s = 0; s < steps; s++) printf("%s%d", s ? "," : "", ids[s]);
    printf("],\"stats\":%s}\n", qw_graph_stats_json(m->graph));
    qw_model_free(m);
    qw_fs_close(&fs);
    return 0;
}
