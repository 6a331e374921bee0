/* test_derived.c - derived files (qw_weights_derived_*): the int8 lm_head rows made at load are offered to the
 * host as a derived file (name, size, segments); a file source that holds that file (what the browser runtime's
 * cache does on the next load) makes the load read it instead of quantising, with bit-identical logits; a file
 * with another header (layout version, shapes) or size is ignored and the rows are made again.
 * On the generated small model (tools/gen/gen_test_models.sh; skipped with a message when absent). */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "qwasm.h"
#include "qw_decoder.h"
#include "qw_graph.h"
#include "qw_onnx.h"
#include "qw_pool.h"
#include "qw_weights.h"
#include "test_session.h"
#include "qw_test.h"

/* A qw_fs over a directory plus one in-memory file (the derived file a cache would hold). */
typedef struct overlay {
    qw_fs dir;
    char name[160];
    uint8_t *bytes;
    size_t len;
    int reads; /* reads of the in-memory file */
} overlay;

static qw_status ov_size(void *ctx, const char *name, uint64_t *size) {
    overlay *o = ctx;
    if (o->bytes && !strcmp(name, o->name)) {
        *size = o->len;
        return QW_OK;
    }
    return o->dir.size(o->dir.ctx, name, size);
}
static qw_status ov_read(void *ctx, const char *name, uint64_t off, void *dst, size_t len) {
    overlay *o = ctx;
    if (o->bytes && !strcmp(name, o->name)) {
        if (off > o->len || len > o->len - off) return QW_E_RANGE;
        memcpy(dst, o->bytes + off, len);
        o->reads++;
        return QW_OK;
    }
    return o->dir.read(o->dir.ctx, name, off, dst, len);
}

typedef struct run_out {
    float *logits; /* (V) of the last of 3 steps */
    int V;
    char name[160];
    int loaded, n_segs;
    size_t size;
    uint8_t *file; /* the derived file's bytes, assembled from its segments */
    double derive_ms;
} run_out;

static const char *json_str(const char *js, const char *key, char *out, size_t cap) {
    char k[64];
    snprintf(k, sizeof k, "\"%s\":\"", key);
    const char *p = strstr(js, k);
    out[0] = 0;
    if (!p) return NULL;
    p += strlen(k);
    size_t n = 0;
    while (p[n] && p[n] != '"' && n + 1 < cap) n++;
    memcpy(out, p, n);
    out[n] = 0;
    return p + n;
}

/* Loads the model through fs, runs 3 greedy steps, and reads back what the store says about the derived file. */
static int run(qw_fs *fs, const char *onnx, qw_pool *pool, run_out *r) {
    memset(r, 0, sizeof *r);
    qw_error err = {0};
    qw_onnx_model *m = NULL;
    qw_graph *g = NULL;
    qw_decoder *d = NULL;
    qw_graph_opts go = {0};
    go.lm_head_min_rows = 1000; /* the small model's head (vocab x 64) is below the size where int8 rows pay */
    int ok = 0;
    if (qw_onnx_load(fs, onnx, &m, &err) != QW_OK || qw_graph_build(fs, m, pool, &go, &g, &err) != QW_OK ||
        qw_decoder_new(g, 16, &d, &err) != QW_OK) {
        CHECK(0, "load: %s", err.msg);
        goto done;
    }
    int V = r->V = qw_decoder_vocab(d);
    r->logits = malloc((size_t)V * sizeof(float));
    int32_t ids[3] = {1, 2, 3};
    for (int t = 0; t < 3; t++)
        if (qw_decoder_forward(d, &ids[t], 1, r->logits, NULL, NULL, &err) != QW_OK) {
            CHECK(0, "step: %s", err.msg);
            goto done;
        }
    const char *js = qw_graph_stats_json(g), *dv = strstr(js, "\"derived\":[");
    r->derive_ms = json_num(js, "derive_ms");
    if (!dv || !json_str(dv, "name", r->name, sizeof r->name)) {
        CHECK(0, "no derived file in %s", js);
        goto done;
    }
    r->loaded = (int)json_num(dv, "loaded");
    r->size = (size_t)json_num(dv, "size");
    r->file = malloc(r->size);
    const char *p = strstr(dv, "\"segments\":[");
    size_t off = 0;
    for (p = p ? p + 12 : NULL; p && *p == '['; r->n_segs++) {
        char *e;
        unsigned long long addr = strtoull(p + 1, &e, 10), len = strtoull(e + 1, &e, 10);
        memcpy(r->file + off, (const void *)(uintptr_t)addr, len);
        off += len;
        p = e + 1;
        if (*p == ',') p++;
    }
    CHECK(off == r->size, "segments cover %zu of %zu bytes", off, r->size);
    ok = 1;
done:
    qw_decoder_free(d);
    qw_graph_free(g);
    qw_onnx_free(m);
    return ok;
}

int main(void) {
    overlay ov = {0};
    if (!open_small_model(&ov.dir)) return 0;
    qw_fs fs = {&ov, ov_size, ov_read, NULL};
    const char *onnx = "onnx/model_q4f16.onnx";
    qw_pool *pool = qw_pool_new(2);
    int V = 0;
    run_out a, b, c;
    /* 1. nothing cached: the rows are quantised and offered as a derived file */
    if (run(&fs, onnx, pool, &a)) {
        CHECK(!a.loaded && a.n_segs == 4 && !strncmp(a.name, QW_DERIVED_DIR "lmhead-i8-v", strlen(QW_DERIVED_DIR) + 11),
              "first load: %s loaded %d segments %d", a.name, a.loaded, a.n_segs);
        V = a.V;
        /* 2. the file is there: read, not made again; the same logits bit for bit */
        snprintf(ov.name, sizeof ov.name, "%s", a.name);
        ov.bytes = a.file, ov.len = a.size;
        if (run(&fs, onnx, pool, &b)) {
            CHECK(b.loaded == 1 && ov.reads > 0 && !strcmp(b.name, a.name), "second load: loaded %d, %d reads",
                  b.loaded, ov.reads);
            CHECK(V > 0 && !memcmp(a.logits, b.logits, (size_t)V * sizeof(float)),
                  "logits differ after reading the derived file (V %d)", V);
            printf("derived %s: %zu bytes; quantised in %.1f ms, read back in a load with derive_ms %.1f\n", a.name,
                   a.size, a.derive_ms, b.derive_ms);
            free(b.logits), free(b.file);
        }
        /* 3. a file with another header (layout version) is ignored: made again, same logits */
        ov.bytes[8] ^= 0x7f;
        ov.reads = 0;
        if (run(&fs, onnx, pool, &c)) {
            CHECK(c.loaded == 0, "a file with another header was used");
            CHECK(V > 0 && !memcmp(a.logits, c.logits, (size_t)V * sizeof(float)),
                  "logits differ after a rejected file");
            free(c.logits), free(c.file);
        }
        ov.bytes[8] ^= 0x7f;
        /* 4. a shorter file (an interrupted save) is ignored */
        ov.len = a.size - 1;
        if (run(&fs, onnx, pool, &c)) {
            CHECK(c.loaded == 0, "a truncated file was used");
            free(c.logits), free(c.file);
        }
        free(a.logits), free(a.file);
    }
    qw_pool_free(pool);
    qw_fs_close(&ov.dir);
    return qw_test_summary("test_derived");
}
