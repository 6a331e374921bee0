/* test_memcap.c - weights paged under a memory cap (qw_graph_opts.mem_cap_bytes): on the generated test models
 * (build/models, made by tools/gen/gen_test_models.sh; skipped with a message when absent), for several caps (below the
 * largest weight, half the model, generous) the greedy ids over 32 steps and every step's logits are bit-identical
 * to the uncapped run, the resident bytes never pass the cap by more than the largest weight read whole, and the
 * paging counters move. A cap below what must stay resident fails at load with QW_E_NOMEM. */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
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

static int checked_models;
static int prefetch; /* qw_graph_opts.prefetch of the sessions opened */

#define STEPS 32
#define PROMPT 4

static qw_status open_session(const char *dir, const char *onnx, qw_pool *pool, uint64_t cap, session *s,
                              qw_error *err) {
    qw_graph_opts go = {0};
    go.mem_cap_bytes = cap;
    go.prefetch = prefetch;
    go.exact_lm_head = 1; /* all logits exact in both runs (the int8 lm_head is exact only in its top rows) */
    return session_open(dir, onnx, pool, &go, PROMPT + STEPS + 1, s, err);
}

static uint64_t stat_u64(qw_graph *g, const char *key) {
    const char *js = qw_graph_stats_json(g), *p = strstr(js, "\"paging\":");
    char k[64];
    snprintf(k, sizeof k, "\"%s\":", key);
    p = p ? strstr(p, k) : NULL;
    return p ? strtoull(p + strlen(k), NULL, 10) : 0;
}

/* Greedy run: ids (STEPS) and logits (STEPS x V). Returns 0 on failure (reported). */
static int run(const char *dir, const char *onnx, qw_pool *pool, uint64_t cap, int32_t *ids, float *logits, int V,
               session *s) {
    qw_error err = {0};
    if (open_session(dir, onnx, pool, cap, s, &err) != QW_OK) {
        CHECK(0, "%s cap %llu: load: %s", dir, (unsigned long long)cap, err.msg);
        return 0;
    }
    CHECK(qw_decoder_vocab(s->d) == V, "%s: vocab %d, %d expected", dir, qw_decoder_vocab(s->d), V);
    int32_t prompt[PROMPT] = {1, 2, 3, 4};
    if (qw_decoder_forward(s->d, prompt, PROMPT, logits, NULL, NULL, &err) != QW_OK) {
        CHECK(0, "%s cap %llu: prefill: %s", dir, (unsigned long long)cap, err.msg);
        return 0;
    }
    for (int t = 0; t < STEPS; t++) {
        float *lg = logits + (size_t)t * V;
        if (t > 0 && qw_decoder_forward(s->d, &ids[t - 1], 1, lg, NULL, NULL, &err) != QW_OK) {
            CHECK(0, "%s cap %llu: step %d: %s", dir, (unsigned long long)cap, t, err.msg);
            return 0;
        }
        ids[t] = argmax(lg, V);
    }
    return 1;
}

static const char *find_onnx(const char *dir, char *buf, size_t cap) {
    char sub[1100];
    snprintf(sub, sizeof sub, "%s/onnx", dir);
    DIR *d = opendir(sub);
    if (!d) return NULL;
    struct dirent *e;
    const char *r = NULL;
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (n > 5 && !strcmp(e->d_name + n - 5, ".onnx")) {
            snprintf(buf, cap, "onnx/%s", e->d_name);
            r = buf;
            break;
        }
    }
    closedir(d);
    return r;
}

static void test_model(const char *models, const char *name, qw_pool *pool) {
    char dir[1024], onnx_buf[512];
    snprintf(dir, sizeof dir, "%s/%s", models, name);
    const char *onnx = find_onnx(dir, onnx_buf, sizeof onnx_buf);
    if (!onnx) {
        printf("skip %s: not generated (tools/gen/gen_test_models.sh)\n", dir);
        return;
    }
    checked_models++;
    /* reference: uncapped */
    session ref;
    qw_error err = {0};
    if (open_session(dir, onnx, pool, 0, &ref, &err) != QW_OK) {
        CHECK(0, "%s: load: %s", dir, err.msg);
        close_session(&ref);
        return;
    }
    int V = qw_decoder_vocab(ref.d);
    uint64_t model_bytes = 0, largest = 0;
    for (int i = 0; i < ref.m->n_inits; i++) {
        model_bytes += ref.m->inits[i].nbytes;
        if (ref.m->inits[i].nbytes > largest) largest = ref.m->inits[i].nbytes;
    }
    close_session(&ref);
    int32_t ids0[STEPS], ids[STEPS];
    float *lg0 = malloc((size_t)STEPS * V * sizeof(float)), *lg = malloc((size_t)STEPS * V * sizeof(float));
    if (!lg0 || !lg) {
        CHECK(0, "out of memory");
        free(lg0);
        free(lg);
        return;
    }
    if (!run(dir, onnx, pool, 0, ids0, lg0, V, &ref)) {
        close_session(&ref);
        free(lg0);
        free(lg);
        return;
    }
    close_session(&ref);

    /* the smallest feasible cap: what must stay resident (sticky + derived) */
    session probe;
    uint64_t probe_cap = 1;
    qw_status st = open_session(dir, onnx, pool, probe_cap, &probe, &err);
    CHECK(st == QW_E_NOMEM && strstr(err.msg, "memory cap"), "%s: cap of 1 byte: status %d (%s), QW_E_NOMEM expected",
          name, st, err.msg);
    close_session(&probe);
    /* the floor from the message is not parsed: sticky + derived are read back from a generous run below */
    uint64_t caps[3] = {largest / 2, model_bytes / 2, model_bytes * 2};
    uint64_t floor = 0;
    {
        session s;
        if (open_session(dir, onnx, pool, model_bytes * 2, &s, &err) == QW_OK)
            floor = stat_u64(s.g, "sticky_bytes") + stat_u64(s.g, "derived_bytes");
        close_session(&s);
    }
    for (int c = 0; c < 3; c++) {
        uint64_t cap = caps[c];
        if (cap < floor + 1024) cap = floor + 1024; /* below the floor the load fails (checked above) */
        session s;
        memset(ids, 0, sizeof ids);
        if (!run(dir, onnx, pool, cap, ids, lg, V, &s)) {
            close_session(&s);
            continue;
        }
        int same_ids = !memcmp(ids, ids0, sizeof ids);
        int same_logits = !memcmp(lg, lg0, (size_t)STEPS * V * sizeof(float));
        CHECK(same_ids, "%s cap %llu: greedy ids differ from the uncapped run", name, (unsigned long long)cap);
        CHECK(same_logits, "%s cap %llu: logits differ from the uncapped run", name, (unsigned long long)cap);
        uint64_t peak = stat_u64(s.g, "peak_resident_bytes"), unit = stat_u64(s.g, "largest_unit_bytes");
        uint64_t loads = stat_u64(s.g, "loads") + stat_u64(s.g, "prefetches"), rd = stat_u64(s.g, "bytes_read");
        uint64_t ranges = stat_u64(s.g, "range_reads"), ev = stat_u64(s.g, "evictions");
        uint64_t hits = stat_u64(s.g, "hits") + stat_u64(s.g, "prefetch_hits");
        /* the pinned inputs of one node (a MatMulNBits: weight + scales) may pass the cap by up to a unit */
        CHECK(peak <= cap + 2 * unit, "%s cap %llu: peak resident %llu > cap + 2 x largest unit %llu", name,
              (unsigned long long)cap, (unsigned long long)peak, (unsigned long long)unit);
        CHECK(loads > 0 && rd > 0 && (ranges > 0 || cap >= model_bytes),
              "%s cap %llu: paging counters did not move (loads %llu, read %llu, "
              "ranges %llu)",
              name, (unsigned long long)cap, (unsigned long long)loads, (unsigned long long)rd,
              (unsigned long long)ranges);
        if (cap < model_bytes / 4)
            CHECK(ev > 0, "%s cap %llu: no evictions under a small cap", name, (unsigned long long)cap);
        if (cap >= model_bytes)
            CHECK(hits > 0 && ev == 0 && ranges == 0, "%s cap %llu: a generous cap evicted %llu (hits %llu)", name,
                  (unsigned long long)cap, (unsigned long long)ev, (unsigned long long)hits);
        printf("%-24s cap %9llu: ids %s, logits %s, peak %llu (unit %llu), read %llu, loads %llu, evictions %llu, "
               "hits %llu, ranges %llu\n",
               name, (unsigned long long)cap, same_ids ? "same" : "DIFF", same_logits ? "same" : "DIFF",
               (unsigned long long)peak, (unsigned long long)unit, (unsigned long long)rd, (unsigned long long)loads,
               (unsigned long long)ev, (unsigned long long)hits, (unsigned long long)ranges);
        close_session(&s);
    }
    free(lg0);
    free(lg);
}

int main(void) {
    const char *bd = getenv("QW_BUILD_DIR");
    char models[900];
    snprintf(models, sizeof models, "%s/../models", bd ? bd : ".");
    qw_pool *pool = qw_pool_new(2);
    static const char *const names[] = {"tiny-q4f16-op18-ext", "tiny-q4-op14",         "tiny-fp32-op14",
                                        "tiny-fp32-op18-ext",  "small-q4f16-op18-ext", NULL};
    for (int i = 0; names[i]; i++) test_model(models, names[i], pool);
    /* again with the native reader thread (prefetch of streamed weights and lm_head chunks; a no-op in wasm) */
    prefetch = 1;
    for (int i = 0; names[i]; i++) test_model(models, names[i], pool);
    qw_pool_free(pool);
    if (!checked_models) printf("skip: no generated models under %s (run tools/gen/gen_test_models.sh)\n", models);
    return qw_test_summary("test_memcap");
}
