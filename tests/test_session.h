/* test_session.h - what several C tests share, header-only like memfs.h:
 *  - a model folder opened down to a decoder (fs, ONNX, graph, decoder): the decoder, memory-cap, derived-file
 *    and on-demand tests;
 *  - one generation through the public API (qw_gen_begin, qw_gen_next until DONE) collecting its token ids and
 *    speculation counters: the draft, speculate and on-demand tests. */
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

/* ---- one generation through qw_model / qw_gen ------------------------------------------------------------ */

#define GEN_MAX_IDS 64 /* the ids a gen_result keeps: more than any test's max_tokens */

/* What one generation returned: its first GEN_MAX_IDS token ids, and the speculation counters of its last event
 * (the DONE event's, or the last good one before an error), as qw_gen_event names them. */
typedef struct gen_result {
    int32_t ids[GEN_MAX_IDS];
    int n;
    int drafted, accepted, steps;      /* spec_drafted, spec_accepted, spec_steps */
    int model_drafted, model_accepted; /* draft_drafted, draft_accepted: the draft model's share */
    double draft_ms;
} gen_result;

/* Generates on m from prompt (n_prompt ids) with p until QW_GEN_DONE or an error, whose status it returns (*err
 * set); *r holds what came before either. m, prompt and p stay the caller's: only the qw_gen is made and freed
 * here, so m's KV cache keeps this generation for the next one (a second turn). */
static inline qw_status gen_run(qw_model *m, const int32_t *prompt, int n_prompt, const qw_gen_params *p, gen_result *r,
                                qw_error *err) {
    memset(r, 0, sizeof *r);
    qw_gen *g = NULL;
    qw_status st = qw_gen_begin(m, prompt, (size_t)n_prompt, p, &g, err);
    if (st != QW_OK) return st;
    for (;;) {
        qw_gen_event ev;
        if ((st = qw_gen_next(g, &ev, err)) != QW_OK) break;
        if (ev.kind == QW_GEN_TOKEN && r->n < GEN_MAX_IDS) r->ids[r->n++] = ev.id;
        r->drafted = ev.spec_drafted, r->accepted = ev.spec_accepted, r->steps = ev.spec_steps;
        r->model_drafted = ev.draft_drafted, r->model_accepted = ev.draft_accepted, r->draft_ms = ev.draft_ms;
        if (ev.kind == QW_GEN_DONE) break;
    }
    qw_gen_free(g);
    return st;
}

/* Whether two generations returned the same ids. */
static inline int gen_same(const gen_result *a, const gen_result *b) {
    return a->n == b->n && !memcmp(a->ids, b->ids, (size_t)a->n * sizeof *a->ids);
}

#endif
