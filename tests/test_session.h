/* test_session.h - a model folder opened down to a decoder (fs, ONNX, graph, decoder), shared by the
 * decoder, memory-cap, derived-file and on-demand tests. Header-only, like memfs.h. */
#ifndef QW_TEST_SESSION_H
#define QW_TEST_SESSION_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "qwasm.h"
#include "qw_decoder.h"
#include "qw_graph.h"
#include "qw_onnx.h"

typedef struct session {
    qw_fs fs;
    qw_onnx_model *m;
    qw_graph *g;
    qw_decoder *d;
} session;

/* Opens dir/onnx with graph options go; on failure *s holds what was opened (close_session frees it). */
static inline qw_status session_open(const char *dir, const char *onnx, qw_pool *pool, const qw_graph_opts *go,
                                     int max_seq, session *s, qw_error *err) {
    memset(s, 0, sizeof *s);
    qw_status st;
    if ((st = qw_fs_open_dir(dir, &s->fs, err)) != QW_OK) return st;
    if ((st = qw_onnx_load(&s->fs, onnx, &s->m, err)) != QW_OK) return st;
    if ((st = qw_graph_build(&s->fs, s->m, pool, go, &s->g, err)) != QW_OK) return st;
    return qw_decoder_new(s->g, max_seq, &s->d, err);
}

static inline void close_session(session *s) {
    qw_decoder_free(s->d);
    qw_graph_free(s->g);
    qw_onnx_free(s->m);
    qw_fs_close(&s->fs);
}

/* Opens the generated small model's folder (build/models/small-q4f16-op18-ext, from tools/gen/gen_test_models.sh)
 * as fs; 0 after printing a skip line when it is not there. The q4f16 graph's path is onnx/model_q4f16.onnx. */
static inline int open_small_model(qw_fs *fs) {
    const char *bd = getenv("QW_BUILD_DIR");
    char dir[900];
    snprintf(dir, sizeof dir, "%s/../models/small-q4f16-op18-ext", bd ? bd : ".");
    qw_error err = {0};
    uint64_t size;
    if (qw_fs_open_dir(dir, fs, &err) != QW_OK || fs->size(fs->ctx, "onnx/model_q4f16.onnx", &size) != QW_OK) {
        printf("skip: %s not generated (tools/gen/gen_test_models.sh)\nok (0 failures)\n", dir);
        qw_fs_close(fs);
        return 0;
    }
    return 1;
}

/* The number after "key": in a JSON text (the first occurrence), -1 when absent: enough for the stats objects. */
static inline double json_num(const char *js, const char *key) {
    char k[64];
    snprintf(k, sizeof k, "\"%s\":", key);
    const char *p = strstr(js, k);
    return p ? strtod(p + strlen(k), NULL) : -1;
}

/* Greedy pick: the first maximum (lowest id on ties), as onnxruntime's reference does. */
static inline int argmax(const float *x, int n) {
    int b = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[b]) b = i;
    return b;
}

#endif
