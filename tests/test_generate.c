/* test_generate.c - the decode loop with an external decoder (qw_load_opts.external_decoder): a model
 * loaded that way asks for logits with QW_GEN_FEED events. Fed by a second, ordinary instance of the same
 * folder, it must give exactly the ordinary run's tokens, text and stop reason, greedy and sampled, with a
 * stop string; and misuse (missing or wrong-sized logits) fails clearly. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "qw_model.h"
#include "qw_test.h"

typedef struct run_result {
    int32_t ids[64];
    int n, n_feeds;
    char text[4096];
    char stop_reason[32];
} run_result;

/* Runs a generation on m; with oracle != NULL, m is external and oracle's decoder computes each feed. */
static qw_status run(qw_model *m, qw_model *oracle, const int32_t *prompt, int n_prompt, const qw_gen_params *p,
                     run_result *r, qw_error *err) {
    memset(r, 0, sizeof *r);
    qw_gen *g = NULL;
    qw_status st = qw_gen_begin(m, prompt, (size_t)n_prompt, p, &g, err);
    if (st != QW_OK) return st;
    int vocab = qw_model_vocab(m);
    float *logits = malloc((size_t)vocab * sizeof *logits); /* (vocab) */
    size_t tl = 0;
    for (;;) {
        qw_gen_event ev;
        if ((st = qw_gen_next(g, &ev, err)) != QW_OK) break;
        if (ev.kind == QW_GEN_FEED) {
            r->n_feeds++;
            if (ev.n_past == 0) {
                qw_decoder_reset(oracle->dec);
                oracle->n_cached = 0;
            }
            if (ev.n_past != oracle->n_cached) {
                st = qw_error_set(err, QW_E_INTERNAL, "n_past %d, oracle holds %d", ev.n_past, oracle->n_cached);
                break;
            }
            if ((st = qw_decoder_forward(oracle->dec, ev.feed_ids, ev.n_feed, logits, NULL, NULL, err)) != QW_OK) break;
            oracle->n_cached += ev.n_feed;
            if ((st = qw_gen_set_logits(g, logits, (size_t)vocab, err)) != QW_OK) break;
            continue;
        }
        if (ev.kind == QW_GEN_TOKEN && r->n < 64) r->ids[r->n++] = ev.id;
        if (ev.text_len && tl + ev.text_len < sizeof r->text) {
            memcpy(r->text + tl, ev.text, ev.text_len);
            tl += ev.text_len;
        }
        if (ev.kind == QW_GEN_DONE) {
            snprintf(r->stop_reason, sizeof r->stop_reason, "%s", ev.stop_reason);
            break;
        }
    }
    free(logits);
    qw_gen_free(g);
    return st;
}

static void compare(const char *what, qw_model *plain, qw_model *ext, qw_model *oracle, const int32_t *prompt, int n,
                    const qw_gen_params *p) {
    run_result a, b;
    qw_error err = {0};
    CHECK(run(plain, NULL, prompt, n, p, &a, &err) == QW_OK, "%s: plain run: %s", what, err.msg);
    CHECK(run(ext, oracle, prompt, n, p, &b, &err) == QW_OK, "%s: external run: %s", what, err.msg);
    CHECK(a.n == b.n && !memcmp(a.ids, b.ids, (size_t)a.n * sizeof *a.ids), "%s: %d vs %d ids differ", what, a.n, b.n);
    CHECK(!strcmp(a.text, b.text), "%s: text [%s] vs [%s]", what, a.text, b.text);
    CHECK(!strcmp(a.stop_reason, b.stop_reason), "%s: stop %s vs %s", what, a.stop_reason, b.stop_reason);
    CHECK(b.n_feeds > 0, "%s: the external run asked for logits", what);
    printf("%s: %d tokens, %d feeds, stop %s\n", what, b.n, b.n_feeds, b.stop_reason);
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    const char *src = getenv("QW_SOURCE_DIR");
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/build/models/small-q4f16-op18-ext", src ? src : ".");
    qw_fs fs;
    qw_error err = {0};
    if (qw_fs_open_dir(dir, &fs, &err) != QW_OK) {
        printf("skipped: %s\n", err.msg);
        return 0;
    }
    qw_load_opts lo = {0}, le = {0};
    le.external_decoder = 1;
    qw_model *plain = NULL, *ext = NULL, *oracle = NULL;
    CHECK(qw_model_load(&fs, &lo, &plain, &err) == QW_OK, "load: %s", err.msg);
    CHECK(qw_model_load(&fs, &lo, &oracle, &err) == QW_OK, "load: %s", err.msg);
    CHECK(qw_model_load(&fs, &le, &ext, &err) == QW_OK, "external load: %s", err.msg);
    if (plain && ext && oracle) {
        CHECK(strstr(qw_model_info_json(ext), "\"engine\":\"external\"") != NULL, "info says external: %s",
              qw_model_info_json(ext));
        CHECK(qw_model_vocab(ext) == qw_model_vocab(plain), "vocab %d vs %d", qw_model_vocab(ext),
              qw_model_vocab(plain));
        int32_t *prompt = NULL;
        size_t n = 0;
        const char *text = "<|im_start|>user\nRedacta la epicrisis.<|im_end|>\n<|im_start|>assistant\n";
        CHECK(qw_tokenize(ext, text, strlen(text), &prompt, &n, &err) == QW_OK, "tokenize: %s", err.msg);
        qw_gen_params p;
        qw_gen_params_init(&p);
        p.max_tokens = 24;
        p.temperature = 0;
        p.prefill_chunk = 5; /* several prefill feeds */
        compare("greedy", plain, ext, oracle, prompt, (int)n, &p);
        p.temperature = 0.9f;
        p.top_k = 40;
        p.top_p = 0.95f;
        p.repetition_penalty = 1.1f;
        p.seed = 7;
        compare("sampled", plain, ext, oracle, prompt, (int)n, &p);
        run_result a;
        CHECK(run(plain, NULL, prompt, (int)n, &p, &a, &err) == QW_OK, "plain: %s", err.msg);
        if (strlen(a.text) > 4) { /* a stop string from the middle of the sampled text */
            char stop[3] = {a.text[strlen(a.text) / 2], a.text[strlen(a.text) / 2 + 1], 0};
            const char *stops[1] = {stop};
            p.stop = stops;
            p.n_stop = 1;
            compare("stop string", plain, ext, oracle, prompt, (int)n, &p);
            p.stop = NULL;
            p.n_stop = 0;
        }
        /* misuse: next without logits, logits of the wrong size, logits when none are asked for */
        qw_gen *g = NULL;
        qw_gen_event ev;
        CHECK(qw_gen_begin(ext, prompt, n, &p, &g, &err) == QW_OK, "begin: %s", err.msg);
        float one = 0;
        CHECK(qw_gen_set_logits(g, &one, 1, &err) == QW_E_ARG, "logits before a FEED event refused");
        CHECK(qw_gen_next(g, &ev, &err) == QW_OK && ev.kind == QW_GEN_FEED, "first event is FEED");
        CHECK(qw_gen_next(g, &ev, &err) == QW_E_ARG && strstr(err.msg, "missing"), "next without logits: %s", err.msg);
        CHECK(qw_gen_set_logits(g, &one, 1, &err) == QW_E_ARG && strstr(err.msg, "vocabulary"), "wrong size: %s",
              err.msg);
        qw_gen_free(g);
        free(prompt);
    }
    qw_model_free(plain);
    qw_model_free(ext);
    qw_model_free(oracle);
    qw_fs_close(&fs);
    return qw_test_summary("test_generate");
}
