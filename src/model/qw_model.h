/* qw_model.h - the loaded model (internal): configuration, graph + decoder session, tokenizer, pool.
 * The public functions over it are in qwasm.h; qw_model.c loads, qw_generate.c runs the decode loop. */
#ifndef QW_MODEL_H
#define QW_MODEL_H

#include "qwasm.h"
#include "qw_config.h"
#include "qw_onnx.h"
#include "qw_pool.h"
#include "qw_tokenizer.h"
#include "qw_graph.h"
#include "qw_decoder.h"
#include "qw_chat.h"

#define QW_LOOKAHEAD_TRIALS 6 /* plain decode steps each way (qw_model_lookahead_step) */

struct qw_model {
    qw_fs fs; /* the caller's, borrowed: weights may be paged from it */
    qw_model_config cfg;
    qw_onnx_model *onnx;
    qw_graph *graph;
    qw_decoder *dec;
    qw_pool *pool;
    qw_tokenizer *tok;      /* NULL when the folder's tokenizer is not one qwasm reads */
    char tok_error[512];    /* why there is no tokenizer (a qw_error message) */
    qw_chat_template *chat; /* tokenizer_config.json's chat_template or ChatML; NULL: see chat_error */
    char chat_error[512];   /* why the template cannot be rendered (the construct, line and column) */
    int max_seq;            /* KV cache length */
    int32_t *cached;        /* (cached_cap) the ids whose keys/values the decoder holds, in order */
    int n_cached, cached_cap;
    int busy;          /* a qw_gen is live: one generation at a time per model */
    int32_t *no_token; /* (n_no_token) ids below the vocabulary with no token in the tokenizer: never sampled */
    int n_no_token;
    int external; /* no graph: another engine computes the logits (qw_load_opts.external_decoder) */
    long spec_drafted, spec_accepted, spec_steps;    /* speculative decoding, every generation (stats) */
    qw_model *draft;                                 /* qw_model_set_draft: borrowed; runs on this model's pool */
    qw_model *draft_of;                              /* the target this model drafts for, or NULL */
    long draft_drafted, draft_accepted, draft_steps; /* of those, the draft model's (every generation) */
    double draft_ms; /* time in the draft model (catch-up and drafting), every generation */
    double load_ms;
    const char *lookahead_how; /* how the decode look-ahead was set: "option", "native", "trial" (running), "timed" */
    int lookahead_trial;       /* 1: plain decode steps still alternate without / with it (qw_model_lookahead_step) */
    int lookahead_n[2];
    double lookahead_ms[2][QW_LOOKAHEAD_TRIALS]; /* the trial's step times without (0) and with (1) it */
    double lookahead_med[2];                     /* "timed": their medians */
    char *info_json, *stats_json;
};

/* The decode look-ahead's trial (QW_LOOKAHEAD_AUTO in wasm, where it pays on some CPUs and costs on others:
 * qw_kernels_set_lookahead): before a plain decode step call it with ms < 0: it sets the switch for the step and
 * returns 1 while the trial runs (then time the step and call it again with its ms); after QW_LOOKAHEAD_TRIALS
 * steps each way the faster by median is kept for the process. Real steps, not a timed load: a step at load
 * measured the engine's compiler tiers, not the kernels. */
int qw_model_lookahead_step(qw_model *m, double ms);

/* Room for n ids in m->cached (grown as the context grows); QW_E_NOMEM. */
qw_status qw_model_cached_reserve(qw_model *m, int n);
/* Vocabulary size: the decoder's logits width, or config.json's vocab_size with an external decoder. */
int qw_model_vocab(const qw_model *m);

#endif
