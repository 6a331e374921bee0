/* qw_generate.c - the decoding loop as an iterator: prompt prefilled in chunks, then one token per step,
 * with streaming text (complete UTF-8 only), stop strings, eos ids, the context limit and cancellation.
 * The KV cache is kept between generations: a prompt that extends the previous conversation only
 * prefills its new tokens. With speculative decoding (qw_speculate.h) a step may verify drafted tokens and
 * queue the accepted ones, which the next steps return one by one. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "qw_model.h"
#include "qw_sampler.h"
#include "qw_clock.h"
#include "qw_speculate.h"
#include "qw_draft.h"

/* prompt positions per prefill step: 128 gave 3-9 % more prefill tok/s than 64 at 2048 positions in Chromium (two
 * A/B rounds) and 2 % natively (fewer steps, each weight streamed once per step), for 12 MB more of the tab
 * (2026-12-04, Zen 5) */
#define QW_DEFAULT_PREFILL_CHUNK 128
#define QW_DEFAULT_SPEC_DRAFT 8

struct qw_gen {
    qw_model *m;
    qw_gen_params p;
    qw_stop *stop;   /* stop strings: holds back text that may start one */
    int32_t *prompt; /* (n_prompt) */
    int n_prompt, n_prompt_done;
    int32_t *ids; /* (cap) generated ids */
    int n_ids, cap;
    float *logits;   /* (vocab) the last position's logits */
    int have_logits; /* logits belong to the latest position */
    int pending;     /* the last generated id has not been fed to the decoder yet */
    qw_sampler *sampler;
    qw_detok_stream detok;
    char *out; /* the text returned by the last event */
    size_t out_cap;
    int done;
    const char *stop_reason;
    double prefill_ms, decode_ms;
    /* external decoder (m->external): the feed waiting for logits */
    const int32_t *ext_ids; /* (ext_n) points into prompt or ids */
    int ext_n;
    int ext_wait;  /* a QW_GEN_FEED event was returned; qw_gen_set_logits not called yet */
    int ext_have;  /* g->logits hold the external logits of ext_ids */
    double ext_t0; /* when the feed was asked for: the step's time includes the other engine's */
    /* speculative decoding */
    qw_spec spec;
    int32_t *hist;                        /* (n_prompt + cap) prompt then generated ids: what drafts are looked up in */
    float *rows;                          /* (QW_SPEC_MAX_DRAFT + 1, vocab) logits of a verify step */
    int32_t queue[QW_SPEC_MAX_DRAFT + 1]; /* tokens a verify step decided, not returned yet */
    int q_head, q_len;
    /* the draft model (m->draft, speculation on): drafts when prompt lookup finds none */
    qw_model *draft; /* NULL: none */
    qw_spec mspec;   /* its draft length and pauses */
    float *dlogits;  /* (draft's vocab) its last position's logits */
    double draft_ms;
};

void qw_gen_params_init(qw_gen_params *p) {
    memset(p, 0, sizeof *p);
    p->max_tokens = 256;
    p->temperature = 0.7f;
    p->top_k = 20;
    p->top_p = 0.8f;
    p->min_p = 0.0f;
    p->repetition_penalty = 1.0f;
    p->seed = 42;
}

void qw_gen_params_from_model(const qw_model *m, qw_gen_params *p) {
    if (!m->cfg.has_sampling) return;
    if (!m->cfg.do_sample) {
        p->temperature = 0;
    } else {
        p->temperature = m->cfg.temperature;
        p->top_k = m->cfg.top_k;
        p->top_p = m->cfg.top_p;
    }
    p->repetition_penalty = m->cfg.repetition_penalty;
}

static int is_eos(const qw_model *m, int32_t id) {
    for (int i = 0; i < m->cfg.n_eos; i++)
        if (m->cfg.eos_ids[i] == id) return 1;
    return 0;
}

/* Feeds n ids to the decoder; the logits of the last `rows` positions (1, or more: a verify step) land in
 * g->logits. With an external decoder the first call only records the feed (g->ext_wait: the caller returns a
 * QW_GEN_FEED event) and the call after qw_gen_set_logits completes it; *t0 then moves back to when the feed was
 * asked for. */
static qw_status feed(qw_gen *g, const int32_t *ids, int n, int rows, double *t0, qw_error *err) {
    qw_model *m = g->m;
    if (m->n_cached + n > m->max_seq)
        return qw_error_set(err, QW_E_CONTEXT, "%s: %d tokens would exceed the context of %d tokens", m->cfg.onnx_file,
                            m->n_cached + n, m->max_seq);
    if (qw_model_cached_reserve(m, m->n_cached + n) != QW_OK) return qw_error_set(err, QW_E_NOMEM, "out of memory");
    if (m->external) {
        if (!g->ext_have) {
            g->ext_ids = ids;
            g->ext_n = n;
            g->ext_wait = 1;
            g->ext_t0 = *t0;
            return QW_OK;
        }
        g->ext_have = 0;
        *t0 = g->ext_t0;
        memcpy(m->cached + m->n_cached, ids, (size_t)n * sizeof *ids);
        m->n_cached += n;
        g->have_logits = 1;
        return QW_OK;
    }
    /* the logits the sampler can pick from must be exact; the int8 lm_head computes the others approximately */
    qw_graph_step step = {0};
    step.lm_head_top = qw_sampler_exact_top(g->sampler, &step.lm_head_lowered);
    step.logits_rows = rows;
    qw_status st = qw_decoder_forward(m->dec, ids, n, g->logits, &step, g->p.abort_flag, err);
    if (st != QW_OK) {
        /* the decoder's cache may hold part of this step: forget it all, the next call re-prefills */
        qw_decoder_reset(m->dec);
        m->n_cached = 0;
        return st;
    }
    memcpy(m->cached + m->n_cached, ids, (size_t)n * sizeof *ids);
    m->n_cached += n;
    g->have_logits = 1;
    return QW_OK;
}

/* A speculative step: runs the last generated id and the k drafted ones in one forward, picks each row's token
 * as plain decoding would (sampler included, in order) and keeps the drafted tokens up to the first that differs
 * from its pick, whose pick ends the step (or, all accepted, the last row's). The decided tokens go to the queue;
 * the cache drops the positions after the last accepted draft. See qw_speculate.h for why this is lossless. */
static qw_status verify(qw_gen *g, const int32_t *draft, int k, int from_model, double *t0, qw_error *err) {
    qw_model *m = g->m;
    int32_t in[QW_SPEC_MAX_DRAFT + 1];
    in[0] = g->ids[g->n_ids - 1];
    memcpy(in + 1, draft, (size_t)k * sizeof *draft);
    int before = m->n_cached, vocab = qw_model_vocab(m);
    float *keep_logits = g->logits;
    g->logits = g->rows; /* feed writes the k + 1 rows there */
    qw_status st = feed(g, in, k + 1, k + 1, t0, err);
    g->logits = keep_logits;
    if (st != QW_OK) return st;
    int acc = 0;
    g->q_head = g->q_len = 0;
    for (int i = 0; i <= k; i++) {
        int32_t id;
        if ((st = qw_sampler_sample(g->sampler, g->rows + (size_t)i * vocab, &id, err)) != QW_OK) return st;
        qw_sampler_accept(g->sampler, id);
        g->queue[g->q_len++] = id;
        /* an eos is kept in the queue and ends the generation when returned */
        if (i == k || id != draft[i]) break;
        acc++;
    }
    qw_spec_record(from_model ? &g->mspec : &g->spec, k, acc);
    m->spec_drafted += k;
    m->spec_accepted += acc;
    m->spec_steps++;
    if (from_model) {
        m->draft_drafted += k;
        m->draft_accepted += acc;
        m->draft_steps++;
    }
    int keep = before + 1 + acc;
    if (keep < m->n_cached) {
        if ((st = qw_decoder_truncate(m->dec, keep)) != QW_OK) {
            int drop = m->n_cached - keep;
            qw_decoder_reset(m->dec);
            m->n_cached = 0;
            g->q_head = g->q_len = 0;
            return qw_error_set(err, st, "%s: the KV cache could not drop %d rejected positions", m->cfg.onnx_file,
                                drop);
        }
        m->n_cached = keep;
    }
    g->have_logits = 0;
    return QW_OK;
}

static int text_reserve(char **buf, size_t *cap, size_t need) {
    if (need <= *cap) return 0;
    size_t nc = need * 2 + 64;
    char *nb = realloc(*buf, nc);
    if (!nb) return -1;
    *buf = nb;
    *cap = nc;
    return 0;
}

/* Appends text to the event text of this step (g->out, ev->text_len bytes so far). */
static int append_out(qw_gen *g, qw_gen_event *ev, const char *t, size_t n) {
    if (!n) return 0;
    if (text_reserve(&g->out, &g->out_cap, ev->text_len + n + 1)) return -1;
    memcpy(g->out + ev->text_len, t, n);
    ev->text_len += n;
    g->out[ev->text_len] = 0;
    ev->text = g->out;
    return 0;
}

qw_status qw_gen_begin(qw_model *m, const int32_t *prompt, size_t n_prompt, const qw_gen_params *p, qw_gen **out,
                       qw_error *err) {
    *out = NULL;
    if (!m || (!prompt && n_prompt) || !p) return qw_error_set(err, QW_E_ARG, "qw_gen_begin: null argument");
    if (n_prompt == 0) return qw_error_set(err, QW_E_ARG, "qw_gen_begin: the prompt is empty");
    if (m->busy) return qw_error_set(err, QW_E_ARG, "qw_gen_begin: a generation is already running on this model");
    int vocab = qw_model_vocab(m);
    for (size_t i = 0; i < n_prompt; i++)
        if (prompt[i] < 0 || prompt[i] >= vocab)
            return qw_error_set(err, QW_E_ARG, "prompt id %d at position %zu is outside the vocabulary (%d)", prompt[i],
                                i, vocab);
    if ((int)n_prompt >= m->max_seq)
        return qw_error_set(err, QW_E_CONTEXT, "%s: the prompt has %zu tokens; the context holds %d", m->cfg.onnx_file,
                            n_prompt, m->max_seq);
    qw_gen *g = calloc(1, sizeof *g);
    if (!g) return qw_error_set(err, QW_E_NOMEM, "qw_gen_begin: out of memory");
    g->m = m;
    g->p = *p;
    int room = m->max_seq - (int)n_prompt;
    g->cap = p->max_tokens > 0 && p->max_tokens < room ? p->max_tokens : room;
    g->n_prompt = (int)n_prompt;
    g->prompt = malloc(n_prompt * sizeof *g->prompt);
    g->ids = malloc((size_t)(g->cap + 1) * sizeof *g->ids);
    g->logits = malloc((size_t)vocab * sizeof *g->logits);
    g->hist = malloc(((size_t)n_prompt + (size_t)g->cap + 1) * sizeof *g->hist);
    int max_draft = p->spec_max_draft > 0 ? p->spec_max_draft : QW_DEFAULT_SPEC_DRAFT;
    qw_spec_init(&g->spec, m->external ? QW_SPEC_OFF : p->speculative, max_draft);
    if (g->spec.mode != QW_SPEC_OFF)
        g->rows = malloc((size_t)(g->spec.max_draft + 1) * (size_t)vocab * sizeof *g->rows);
    if (g->spec.mode != QW_SPEC_OFF && m->draft) {
        if (m->draft->busy) {
            qw_gen_free(g);
            return qw_error_set(err, QW_E_ARG, "qw_gen_begin: the draft model is generating on its own");
        }
        g->draft = m->draft;
        g->draft->busy = 1;
        qw_spec_init(&g->mspec, p->speculative, max_draft);
        g->dlogits = malloc((size_t)qw_model_vocab(g->draft) * sizeof *g->dlogits);
    }
    qw_sampler_params sp = {.temperature = p->temperature,
                            .top_k = p->top_k,
                            .top_p = p->top_p,
                            .min_p = p->min_p,
                            .repetition_penalty = p->repetition_penalty,
                            .seed = p->seed,
                            .bias_ids = p->bias_ids,
                            .bias_values = p->bias_values,
                            .n_bias = p->n_bias};
    qw_status st = QW_OK;
    if (!g->prompt || !g->ids || !g->logits || !g->hist || (g->spec.mode != QW_SPEC_OFF && !g->rows) ||
        (g->draft && !g->dlogits))
        st = qw_error_set(err, QW_E_NOMEM, "qw_gen_begin: out of memory");
    /* ids with an lm_head row but no token (Qwen2.5: 151936 rows, about 151,665 tokenizer ids) are never sampled: a bias of
     * -inf after the caller's */
    int32_t *bids = NULL;
    float *bvals = NULL;
    if (st == QW_OK && m->n_no_token) {
        size_t nb = (size_t)(p->n_bias > 0 ? p->n_bias : 0) + (size_t)m->n_no_token;
        bids = malloc(nb * sizeof *bids);
        bvals = malloc(nb * sizeof *bvals);
        if (!bids || !bvals)
            st = qw_error_set(err, QW_E_NOMEM, "qw_gen_begin: out of memory");
        else {
            if (p->n_bias > 0 && p->bias_ids && p->bias_values) {
                memcpy(bids, p->bias_ids, (size_t)p->n_bias * sizeof *bids);
                memcpy(bvals, p->bias_values, (size_t)p->n_bias * sizeof *bvals);
            }
            for (int i = 0; i < m->n_no_token; i++) {
                bids[nb - (size_t)m->n_no_token + (size_t)i] = m->no_token[i];
                bvals[nb - (size_t)m->n_no_token + (size_t)i] = -INFINITY;
            }
            /* the caller's own values are checked as given (a NaN bias is theirs to hear about) */
            if (p->n_bias >= 0 && (!p->n_bias || (p->bias_ids && p->bias_values))) {
                sp.bias_ids = bids;
                sp.bias_values = bvals;
                sp.n_bias = (int)nb;
            }
        }
    }
    if (st == QW_OK) st = qw_sampler_new(&sp, vocab, &g->sampler, err);
    free(bids);
    free(bvals);
    if (st == QW_OK) st = qw_stop_new(p->stop, p->n_stop, &g->stop, err);
    if (st != QW_OK) {
        qw_gen_free(g);
        return st;
    }
    g->p.stop = NULL; /* the qw_stop holds copies */
    memcpy(g->prompt, prompt, n_prompt * sizeof *prompt);
    memcpy(g->hist, prompt, n_prompt * sizeof *prompt);
    for (size_t i = 0; i < n_prompt; i++) qw_sampler_accept(g->sampler, prompt[i]);
    if (m->tok) qw_detok_stream_init(&g->detok, m->tok, 1);

    /* Reuse the cached keys/values of the longest common prefix (multi-turn chat), but always recompute
     * at least the last prompt token so its logits are fresh. */
    int keep = 0;
    if (m->external) m->n_cached = 0; /* the other engine starts over: it is told n_past = 0 */
    while (keep < m->n_cached && keep < (int)n_prompt - 1 && m->cached[keep] == prompt[keep]) keep++;
    if (keep < m->n_cached) {
        if (qw_decoder_truncate(m->dec, keep) != QW_OK) {
            qw_decoder_reset(m->dec);
            keep = 0;
        }
        m->n_cached = keep;
    }
    g->n_prompt_done = keep;
    m->busy = 1;
    *out = g;
    return QW_OK;
}

static void fill_event(const qw_gen *g, qw_gen_event *ev, int kind) {
    memset(ev, 0, sizeof *ev);
    ev->kind = kind;
    ev->spec_drafted = (int)(g->spec.drafted + g->mspec.drafted);
    ev->spec_accepted = (int)(g->spec.accepted + g->mspec.accepted);
    ev->spec_steps = (int)(g->spec.steps + g->mspec.steps);
    ev->draft_drafted = (int)g->mspec.drafted;
    ev->draft_accepted = (int)g->mspec.accepted;
    ev->draft_ms = g->draft_ms;
    ev->n_prompt = g->n_prompt;
    ev->n_prompt_done = g->n_prompt_done;
    ev->n_generated = g->n_ids;
    ev->prefill_ms = g->prefill_ms;
    ev->decode_ms = g->decode_ms;
    ev->text = "";
    ev->stop_reason = g->stop_reason;
}

/* External decoder: ask the caller to run g->ext_ids. */
static qw_status feed_event(qw_gen *g, qw_gen_event *ev) {
    fill_event(g, ev, QW_GEN_FEED);
    ev->feed_ids = g->ext_ids;
    ev->n_feed = g->ext_n;
    ev->n_past = g->m->n_cached;
    return QW_OK;
}

qw_status qw_gen_set_logits(qw_gen *g, const float *logits, size_t n_vocab, qw_error *err) {
    if (!g || !logits) return qw_error_set(err, QW_E_ARG, "qw_gen_set_logits: null argument");
    if (!g->ext_wait) return qw_error_set(err, QW_E_ARG, "qw_gen_set_logits: no QW_GEN_FEED event is waiting");
    if (n_vocab != (size_t)qw_model_vocab(g->m))
        return qw_error_set(err, QW_E_ARG, "qw_gen_set_logits: %zu logits for a vocabulary of %d", n_vocab,
                            qw_model_vocab(g->m));
    memcpy(g->logits, logits, n_vocab * sizeof *logits);
    g->ext_wait = 0;
    g->ext_have = 1;
    return QW_OK;
}

static void finish(qw_gen *g, const char *reason) {
    g->done = 1;
    if (!g->stop_reason) g->stop_reason = reason;
    /* queued tokens that will not be returned: the cache keeps the prompt and the returned tokens but the last,
     * as after plain decoding */
    qw_model *m = g->m;
    int keep = g->n_prompt + g->n_ids - 1;
    if (g->q_head < g->q_len && !m->external && m->n_cached > keep) {
        if (qw_decoder_truncate(m->dec, keep) != QW_OK) {
            qw_decoder_reset(m->dec);
            keep = 0;
        }
        m->n_cached = keep;
    }
    g->q_head = g->q_len = 0;
}

static void draft_time(qw_gen *g, double ms) {
    g->draft_ms += ms;
    g->m->draft_ms += ms;
}

/* While the target prefills, the draft model reads the same prompt, so its first draft has little to catch up. */
static qw_status draft_catch_up(qw_gen *g, int chunk, qw_error *err) {
    double td = qw_now_ms();
    qw_status st = qw_draft_catch_up(g->draft, g->prompt, g->n_prompt_done + 1, chunk, g->dlogits, g->p.abort_flag,
                                     err);
    draft_time(g, qw_now_ms() - td);
    return st;
}

qw_status qw_gen_next(qw_gen *g, qw_gen_event *ev, qw_error *err) {
    if (!g || !ev) return qw_error_set(err, QW_E_ARG, "qw_gen_next: null argument");
    if (g->done) {
        fill_event(g, ev, QW_GEN_DONE);
        return QW_OK;
    }
    if (g->p.abort_flag && *g->p.abort_flag) return qw_error_set(err, QW_E_ABORTED, "generation aborted");
    if (g->ext_wait) return qw_error_set(err, QW_E_ARG, "qw_gen_next: the logits of the QW_GEN_FEED event are missing");
    double t0 = qw_now_ms();
    qw_status st;

    /* 1. prefill, one chunk per step */
    if (g->n_prompt_done < g->n_prompt) {
        int chunk = g->p.prefill_chunk > 0 ? g->p.prefill_chunk : QW_DEFAULT_PREFILL_CHUNK;
        int n = g->n_prompt - g->n_prompt_done;
        if (n > chunk) n = chunk;
        if ((st = feed(g, g->prompt + g->n_prompt_done, n, 1, &t0, err)) != QW_OK) return st;
        if (g->ext_wait) return feed_event(g, ev);
        g->n_prompt_done += n;
        if (g->draft && (st = draft_catch_up(g, chunk, err)) != QW_OK) return st;
        g->prefill_ms += qw_now_ms() - t0;
        fill_event(g, ev, QW_GEN_PREFILL);
        ev->step_ms = qw_now_ms() - t0;
        return QW_OK;
    }

    /* 2. feed the previous token, 3. sample the next one */
    if (g->pending) {
        if (g->n_ids >= g->cap) { /* the context is full */
            finish(g, g->p.max_tokens > 0 && g->n_ids >= g->p.max_tokens ? "max_tokens" : "context");
            fill_event(g, ev, QW_GEN_DONE);
            return QW_OK;
        }
        int32_t draft[QW_SPEC_MAX_DRAFT];
        int room = g->cap - g->n_ids - 1; /* a verify step decides up to k + 1 tokens */
        if (room > g->m->max_seq - g->m->n_cached - 1) room = g->m->max_seq - g->m->n_cached - 1;
        int k = g->m->external || g->p.spec_no_lookup
                    ? 0
                    : qw_spec_draft(&g->spec, g->hist, g->n_prompt + g->n_ids, draft, room);
        int from_model = 0;
        if (k == 0) qw_spec_plain_step(&g->spec);
        if (k == 0 && g->draft) { /* prompt lookup found nothing: the draft model's greedy continuation */
            int max = qw_spec_room(&g->mspec, room);
            if (max > 0) {
                double td = qw_now_ms();
                int chunk = g->p.prefill_chunk > 0 ? g->p.prefill_chunk : QW_DEFAULT_PREFILL_CHUNK;
                st = qw_draft_run(g->draft, g->hist, g->n_prompt + g->n_ids, max, qw_model_vocab(g->m), chunk,
                                  g->dlogits, g->p.abort_flag, draft, &k, err);
                draft_time(g, qw_now_ms() - td);
                if (st != QW_OK) return st;
                from_model = k > 0;
            }
            if (!from_model) qw_spec_plain_step(&g->mspec);
        }
        if (k > 0) {
            if ((st = verify(g, draft, k, from_model, &t0, err)) != QW_OK) return st;
        } else {
            int trial = qw_model_lookahead_step(g->m, -1);
            double ts = qw_now_ms();
            if ((st = feed(g, &g->ids[g->n_ids - 1], 1, 1, &t0, err)) != QW_OK) return st;
            if (trial) qw_model_lookahead_step(g->m, qw_now_ms() - ts);
            if (g->ext_wait) return feed_event(g, ev);
        }
        g->pending = 0;
    }
    int32_t id;
    if (g->q_head < g->q_len) { /* decided by the last verify step; all but the queue's last are in the cache */
        id = g->queue[g->q_head++];
        g->pending = g->q_head == g->q_len;
    } else {
        if ((st = qw_sampler_sample(g->sampler, g->logits, &id, err)) != QW_OK) return st;
        qw_sampler_accept(g->sampler, id);
        g->have_logits = 0;
        g->pending = 1;
    }
    g->ids[g->n_ids++] = id;
    g->hist[g->n_prompt + g->n_ids - 1] = id;
    g->decode_ms += qw_now_ms() - t0;

    fill_event(g, ev, QW_GEN_TOKEN);
    ev->id = id;
    if (!g->p.ignore_eos && is_eos(g->m, id)) {
        finish(g, "eos");
    } else if (g->m->tok) {
        const char *t = NULL, *emit = NULL;
        size_t tl = 0, el = 0;
        int stopped = 0;
        if ((st = qw_detok_stream_push(&g->detok, id, &t, &tl, err)) != QW_OK) return st;
        if ((st = qw_stop_feed(g->stop, t, tl, &stopped, &emit, &el, err)) != QW_OK) return st;
        if (append_out(g, ev, emit, el)) return qw_error_set(err, QW_E_NOMEM, "out of memory");
        if (stopped) finish(g, "stop_string");
    }
    if (!g->done && g->p.max_tokens > 0 && g->n_ids >= g->p.max_tokens) finish(g, "max_tokens");
    if (g->done && g->m->tok && strcmp(g->stop_reason, "stop_string") != 0) {
        /* release a partial character and the text held back for a stop string that never came */
        const char *t = NULL, *emit = NULL;
        size_t tl = 0, el = 0;
        int stopped = 0;
        if ((st = qw_detok_stream_flush(&g->detok, &t, &tl, err)) != QW_OK) return st;
        if ((st = qw_stop_feed(g->stop, t, tl, &stopped, &emit, &el, err)) != QW_OK) return st;
        if (append_out(g, ev, emit, el)) return qw_error_set(err, QW_E_NOMEM, "out of memory");
        if (!stopped) {
            qw_stop_flush(g->stop, &emit, &el);
            if (append_out(g, ev, emit, el)) return qw_error_set(err, QW_E_NOMEM, "out of memory");
        }
    }
    ev->n_generated = g->n_ids;
    ev->decode_ms = g->decode_ms;
    ev->stop_reason = g->stop_reason;
    ev->step_ms = qw_now_ms() - t0;
    return QW_OK;
}

const int32_t *qw_gen_ids(const qw_gen *g, size_t *n) {
    if (n) *n = g ? (size_t)g->n_ids : 0;
    return g ? g->ids : NULL;
}

void qw_gen_free(qw_gen *g) {
    if (!g) return;
    if (g->m) g->m->busy = 0;
    if (g->m && g->m->tok && g->detok.tok) qw_detok_stream_free(&g->detok);
    qw_stop_free(g->stop);
    qw_sampler_free(g->sampler);
    if (g->draft) { g->draft->busy = 0; }
    free(g->dlogits);
    free(g->prompt);
    free(g->ids);
    free(g->logits);
    free(g->hist);
    free(g->rows);
    free(g->out);
    free(g);
}
