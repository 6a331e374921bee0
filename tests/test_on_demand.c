/* test_on_demand.c - the tied embedding read on demand (qw_graph_opts.embedding_on_demand) and the int8
 * lm_head's exact top R (qw_graph_step.lm_head_top):
 *  - on demand, the embedding is never resident (resident bytes drop by exactly its size, stats name it) and the
 *    logits are bit for bit those of the resident int8 lm_head, for R = 1 and R = 64;
 *  - in both, the R largest logits are exactly the all-fp16 product's (same rows, same bits), and with R = 1
 *    the argmax is the exact argmax;
 *  - per decode step the fs is asked for a few rows (the token's embedding row, the rescored rows), not for the
 *    embedding;
 *  - a read error on demand fails the step with the fs's status (and the name of the tensor);
 *  - through the decode loop, the tokens of the int8 lm_head (resident or on demand) equal the all-fp16 lm_head's,
 *    sampled with top-k and a repetition penalty (the sampler's exact top counts only ids it cannot lower) and
 *    greedy with a penalty: the sampler only ever sees exact values where it can pick.
 * On the generated small model (tools/gen/gen_test_models.sh; skipped with a message when absent), whose head is
 * made eligible for the int8 rows with lm_head_min_rows (MIN_ROWS). */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "qwasm.h"
#include "qw_decoder.h"
#include "qw_graph.h"
#include "qw_onnx.h"
#include "qw_pool.h"
#include "test_session.h"
#include "qw_test.h"

/* A qw_fs over a directory that counts the bytes read from the data file and can fail reads on request. */
typedef struct counting {
    qw_fs dir;
    uint64_t data_bytes, data_reads;
    int fail; /* 1: every read fails with QW_E_IO */
} counting;
static qw_status c_size(void *ctx, const char *name, uint64_t *size) {
    counting *c = ctx;
    return c->dir.size(c->dir.ctx, name, size);
}
static qw_status c_read(void *ctx, const char *name, uint64_t off, void *dst, size_t len) {
    counting *c = ctx;
    if (c->fail) return QW_E_IO;
    if (strstr(name, "_data")) {
        c->data_bytes += len;
        c->data_reads++;
    }
    return c->dir.read(c->dir.ctx, name, off, dst, len);
}

typedef struct run_out {
    float *logits; /* (steps, V) */
    int V;
    uint64_t resident, on_demand, step_bytes, step_reads;
} run_out;

#define STEPS 4
#define MIN_ROWS 1000 /* lm_head_min_rows: the small model's head is below the size where int8 rows pay */
static const int32_t ids[STEPS] = {1, 17, 300, 5};

static int run(counting *cf, const char *onnx, qw_pool *pool, int exact, int on_demand, int R, run_out *r) {
    memset(r, 0, sizeof *r);
    qw_fs fs = {cf, c_size, c_read, NULL};
    qw_error err = {0};
    qw_onnx_model *m = NULL;
    qw_graph *g = NULL;
    qw_decoder *d = NULL;
    qw_graph_opts go = {0};
    go.exact_lm_head = exact;
    go.embedding_on_demand = on_demand;
    go.lm_head_min_rows = MIN_ROWS;
    int ok = 0;
    if (qw_onnx_load(&fs, onnx, &m, &err) != QW_OK || qw_graph_build(&fs, m, pool, &go, &g, &err) != QW_OK ||
        qw_decoder_new(g, 16, &d, &err) != QW_OK) {
        CHECK(0, "load: %s", err.msg);
        goto done;
    }
    qw_graph_step step = {0};
    step.lm_head_top = R;
    r->V = qw_decoder_vocab(d);
    r->logits = malloc((size_t)STEPS * r->V * sizeof(float));
    uint64_t b0 = cf->data_bytes, n0 = cf->data_reads;
    for (int t = 0; t < STEPS; t++)
        if (qw_decoder_forward(d, &ids[t], 1, r->logits + (size_t)t * r->V, &step, NULL, &err) != QW_OK) {
            CHECK(0, "step: %s", err.msg);
            goto done;
        }
    r->step_bytes = (cf->data_bytes - b0) / STEPS;
    r->step_reads = (cf->data_reads - n0) / STEPS;
    const char *js = qw_graph_stats_json(g);
    r->resident = (uint64_t)json_num(js, "resident_bytes");
    r->on_demand = (uint64_t)json_num(js, "on_demand_bytes");
    /* a failing fs: the next step fails with its status, nothing crashes */
    float *scratch = malloc((size_t)r->V * sizeof(float));
    cf->fail = 1;
    qw_status st = qw_decoder_forward(d, &ids[0], 1, scratch, &step, NULL, &err);
    cf->fail = 0;
    free(scratch);
    if (on_demand)
        CHECK(st == QW_E_IO && strstr(err.msg, "embed"), "failing read: status %d '%s'", st, err.msg);
    else
        CHECK(st == QW_OK, "resident run read the fs: %s", err.msg);
    ok = 1;
done:
    qw_decoder_free(d);
    qw_graph_free(g);
    qw_onnx_free(m);
    return ok;
}

/* A generation through qw_model / qw_gen on a fresh load of fs with the lm_head options: *r (its ids). */
static void gen_ids(qw_fs *fs, int exact, int on_demand, const qw_gen_params *p, gen_result *r) {
    qw_load_opts lo = {0};
    lo.threads = 2;
    lo.exact_lm_head = exact;
    lo.embedding_on_demand = on_demand;
    lo.lm_head_min_rows = MIN_ROWS;
    qw_model *m = NULL;
    qw_error err = {0};
    static const int32_t prompt[6] = {9707, 11, 1246, 525, 498, 30};
    memset(r, 0, sizeof *r);
    if (qw_model_load(fs, &lo, &m, &err) != QW_OK || gen_run(m, prompt, 6, p, r, &err) != QW_OK)
        CHECK(0, "gen: %s", err.msg);
    qw_model_free(m);
}

static void test_sampled(qw_fs *fs) {
    qw_gen_params p;
    qw_gen_params_init(&p);
    p.max_tokens = 24;
    p.ignore_eos = 1;
    for (int k = 0; k < 2; k++) {
        if (k == 0) {
            p.temperature = 0.7f;
            p.top_k = 20;
            p.top_p = 0.8f;
            p.repetition_penalty = 1.05f;
            p.seed = 3;
        } else {
            p.temperature = 0;
            p.top_k = 0;
            p.top_p = 1;
            p.repetition_penalty = 3.0f;
        } /* greedy, strongly penalised */
        /* the exact lm_head, the int8 one resident, the int8 one with the embedding on demand */
        gen_result a, b, c;
        gen_ids(fs, 1, 0, &p, &a);
        gen_ids(fs, 0, 0, &p, &b);
        gen_ids(fs, 0, 1, &p, &c);
        const char *what = k ? "greedy with a repetition penalty" : "top-k 20, top-p 0.8, penalty 1.05";
        CHECK(a.n == 24 && gen_same(&a, &b), "%s: int8 lm_head tokens differ from the exact path", what);
        CHECK(gen_same(&a, &c), "%s: tokens on demand differ from the exact path", what);
        printf("%s: %d tokens, the same with the exact, int8 and on-demand lm_head\n", what, a.n);
    }
}

static int cmp_desc(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* The R largest values of y are the R largest of exact, at the same rows, bit for bit. */
static int top_exact(const float *y, const float *exact, int V, int R) {
    float *s = malloc((size_t)V * sizeof(float));
    memcpy(s, exact, (size_t)V * sizeof(float));
    qsort(s, (size_t)V, sizeof(float), cmp_desc);
    float thr = s[R - 1];
    free(s);
    int ok = 1;
    for (int n = 0; n < V; n++) {
        if (exact[n] >= thr && memcmp(&y[n], &exact[n], 4)) ok = 0; /* a top row not exact */
        if (exact[n] < thr && y[n] >= thr) ok = 0;                  /* another row pushed into the top R */
    }
    return ok;
}

int main(void) {
    counting cf = {0};
    if (!open_small_model(&cf.dir)) return 0;
    const char *onnx = "onnx/model_q4f16.onnx";
    qw_pool *pool = qw_pool_new(2);
    run_out ex, res, dem;
    if (run(&cf, onnx, pool, 1, 0, 64, &ex)) {
        const int V = ex.V;
        const int Rs[2] = {1, 64};
        for (int i = 0; i < 2; i++) {
            int R = Rs[i];
            if (!run(&cf, onnx, pool, 0, 0, R, &res)) continue;
            if (run(&cf, onnx, pool, 0, 1, R, &dem)) {
                uint64_t emb = dem.on_demand;
                CHECK(emb > 0 && res.on_demand == 0, "on_demand_bytes %llu / resident run %llu",
                      (unsigned long long)emb, (unsigned long long)res.on_demand);
                CHECK(res.resident == dem.resident + emb, "resident %llu on demand vs %llu resident, embedding %llu",
                      (unsigned long long)dem.resident, (unsigned long long)res.resident, (unsigned long long)emb);
                CHECK(!memcmp(res.logits, dem.logits, (size_t)STEPS * V * sizeof(float)),
                      "R %d: logits on demand differ from the resident int8 lm_head's", R);
                /* a step reads rows: at most the token's row and 2 batches of 64 rescored rows' worth */
                uint64_t row = emb / (uint64_t)V;
                CHECK(dem.step_bytes <= (1 + 128) * row && dem.step_reads >= 2 && res.step_bytes == 0,
                      "R %d: a step read %llu bytes in %llu reads (row %llu bytes; resident run %llu)", R,
                      (unsigned long long)dem.step_bytes, (unsigned long long)dem.step_reads, (unsigned long long)row,
                      (unsigned long long)res.step_bytes);
                printf("R %2d: embedding %llu bytes not resident (%llu vs %llu); per step %llu reads, %llu bytes\n", R,
                       (unsigned long long)emb, (unsigned long long)dem.resident, (unsigned long long)res.resident,
                       (unsigned long long)dem.step_reads, (unsigned long long)dem.step_bytes);
                free(dem.logits);
            }
            for (int t = 0; t < STEPS; t++) {
                const float *y = res.logits + (size_t)t * V, *e = ex.logits + (size_t)t * V;
                CHECK(top_exact(y, e, V, R), "R %d step %d: the top %d logits are not the exact ones", R, t, R);
            }
            free(res.logits);
        }
        free(ex.logits);
    }
    test_sampled(&cf.dir);
    qw_pool_free(pool);
    qw_fs_close(&cf.dir);
    return qw_test_summary("test_on_demand");
}
