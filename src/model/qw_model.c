/* qw_model.c - loading a model folder: configuration, tokenizer, ONNX graph, weights, decoder session;
 * and the public text functions (tokenize, detokenize, chat template). */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "cJSON.h"
#include "qw_model.h"
#include "qw_chat.h"
#include "qw_kernels.h"
#include "qw_clock.h"
#include "qw_draft.h"

#define QW_TOKENIZER_MAX_BYTES (64u << 20)
#define QW_DEFAULT_MAX_CONTEXT 4096 /* KV cache length when neither the caller nor the config limits it */

/* The tokenizer is optional: a folder whose tokenizer qwasm cannot read still runs on ids. tokenizer_config.json
 * is optional too, but one that is there and broken fails the load (its eos_token and template would be lost);
 * a chat_template outside qwasm's Jinja subset is kept as the chat's error, so prompts and ids still run. */
static qw_status load_tokenizer(qw_model *m, qw_error *out_err) {
    qw_error err = {0};
    uint64_t size;
    if (m->fs.size(m->fs.ctx, "tokenizer.json", &size) != QW_OK) {
        snprintf(m->tok_error, sizeof m->tok_error, "tokenizer.json: not found in the model folder");
        return QW_OK;
    }
    if (qw_tokenizer_load_fs(&m->fs, "tokenizer.json", &m->tok, &err) != QW_OK) {
        snprintf(m->tok_error, sizeof m->tok_error, "%s", err.msg);
        m->tok = NULL;
        return QW_OK;
    }
    char *text = NULL;
    size_t len = 0;
    qw_status st = QW_OK;
    if (m->fs.size(m->fs.ctx, "tokenizer_config.json", &size) == QW_OK)
        st = qw_fs_read_all(&m->fs, "tokenizer_config.json", QW_TOKENIZER_MAX_BYTES, &text, &len, out_err);
    if (!st) {
        qw_status cs = qw_chat_template_load(text, len, "tokenizer_config.json", &m->chat, &err);
        if (cs == QW_E_UNSUPPORTED)
            snprintf(m->chat_error, sizeof m->chat_error, "%s", err.msg);
        else if (cs)
            st = qw_error_file(out_err, "tokenizer_config.json", qw_error_set(out_err, cs, "%s", err.msg));
    }
    if (!st && text) st = qw_tokenizer_apply_config_json(m->tok, text, len, "tokenizer_config.json", out_err);
    free(text);
    return st;
}

/* The ids below the logits' width that the tokenizer has no token for (m->no_token): never sampled. */
static qw_status find_no_token_ids(qw_model *m, qw_error *err) {
    if (!m->tok) return QW_OK; /* ids only: every id is the caller's to judge */
    int vocab = qw_model_vocab(m), n = 0;
    for (int32_t id = 0; id < vocab; id++) n += qw_tokenizer_token_bytes(m->tok, id, NULL) == NULL;
    if (!n) return QW_OK;
    if (n == vocab) return QW_OK; /* a tokenizer of none of these ids: nothing to mask by */
    if (!(m->no_token = malloc((size_t)n * sizeof *m->no_token)))
        return qw_error_set(err, QW_E_NOMEM, "qw_model_load: out of memory");
    for (int32_t id = 0; id < vocab; id++)
        if (!qw_tokenizer_token_bytes(m->tok, id, NULL)) m->no_token[m->n_no_token++] = id;
    return QW_OK;
}

/* Sets the decode look-ahead as qw_lookahead_mode says; AUTO in wasm: on until the trial of the first plain
 * decode steps (qw_model_lookahead_step) decides. */
static qw_status pick_lookahead(qw_model *m, const qw_load_opts *opts, qw_error *err) {
    if (opts->lookahead == QW_LOOKAHEAD_ON || opts->lookahead == QW_LOOKAHEAD_OFF) {
        qw_kernels_set_lookahead(opts->lookahead == QW_LOOKAHEAD_ON);
        m->lookahead_how = "option";
        return QW_OK;
    }
    if (opts->lookahead != QW_LOOKAHEAD_AUTO)
        return qw_error_set(err, QW_E_ARG, "qw_model_load: lookahead %d", opts->lookahead);
    qw_kernels_set_lookahead(1);
#if defined(__wasm__)
    m->lookahead_how = "trial";
    m->lookahead_trial = 1;
#else
    m->lookahead_how = "native";
#endif
    return QW_OK;
}

static double median_ms(double *x, int n) { /* n small: insertion sort */
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && x[j] < x[j - 1]; j--) {
            double t = x[j];
            x[j] = x[j - 1];
            x[j - 1] = t;
        }
    return n % 2 ? x[n / 2] : 0.5 * (x[n / 2 - 1] + x[n / 2]);
}

int qw_model_lookahead_step(qw_model *m, double ms) {
    if (!m->lookahead_trial) return 0;
    if (ms >= 0) {
        int on = qw_kernels_lookahead();
        m->lookahead_ms[on][m->lookahead_n[on]++] = ms;
        if (m->lookahead_n[0] == QW_LOOKAHEAD_TRIALS && m->lookahead_n[1] == QW_LOOKAHEAD_TRIALS) {
            m->lookahead_med[0] = median_ms(m->lookahead_ms[0], QW_LOOKAHEAD_TRIALS);
            m->lookahead_med[1] = median_ms(m->lookahead_ms[1], QW_LOOKAHEAD_TRIALS);
            qw_kernels_set_lookahead(m->lookahead_med[1] <= m->lookahead_med[0]);
            m->lookahead_trial = 0;
            m->lookahead_how = "timed";
            return 0;
        }
    }
    qw_kernels_set_lookahead(m->lookahead_n[1] < m->lookahead_n[0]); /* alternate: off first */
    return 1;
}

qw_status qw_model_load(const qw_fs *fs, const qw_load_opts *opts, qw_model **out, qw_error *err) {
    *out = NULL;
    if (!fs || !fs->read || !fs->size) return qw_error_set(err, QW_E_ARG, "qw_model_load: no file source");
    qw_load_opts defaults = {0};
    if (!opts) opts = &defaults;
    double t0 = qw_now_ms();
    qw_model *m = calloc(1, sizeof *m);
    if (!m) return qw_error_set(err, QW_E_NOMEM, "qw_model_load: out of memory");
    m->fs = *fs;
    qw_status st = qw_config_load_pick(fs, opts->onnx_file, opts->dtype, &m->cfg, err);
    if (st != QW_OK) goto fail;
    if ((st = load_tokenizer(m, err)) != QW_OK) goto fail;
    if (m->cfg.n_eos == 0 && m->tok && qw_tokenizer_eos_id(m->tok) >= 0) {
        m->cfg.eos_ids[0] = qw_tokenizer_eos_id(m->tok);
        m->cfg.n_eos = 1;
    }

    if (opts->progress) opts->progress(opts->progress_user, "graph", 0, 0);
    if ((st = qw_onnx_load(fs, m->cfg.onnx_file, &m->onnx, err)) != QW_OK) goto fail;
    int limit = m->cfg.max_position_embeddings > 0 ? m->cfg.max_position_embeddings : QW_DEFAULT_MAX_CONTEXT;
    if (opts->max_context > QW_CFG_MAX_CONTEXT) {
        st = qw_error_set(err, QW_E_ARG, "qw_model_load: max_context %d is above qwasm's limit of %d tokens",
                          opts->max_context, QW_CFG_MAX_CONTEXT);
        goto fail;
    }
    m->max_seq = opts->max_context > 0 ? opts->max_context : limit;
    if (m->max_seq > limit) m->max_seq = limit;
    if (qw_model_cached_reserve(m, 256) != QW_OK) {
        st = qw_error_set(err, QW_E_NOMEM, "qw_model_load: out of memory");
        goto fail;
    }
    if (opts->external_decoder) { /* the graph is another engine's: keep its structure for the info only */
        if (m->cfg.vocab_size <= 0) {
            st = qw_error_file(err, "config.json",
                               qw_error_set(err, QW_E_FORMAT,
                                            "config.json: no vocab_size "
                                            "(needed with an external decoder)"));
            goto fail;
        }
        m->external = 1;
        if ((st = find_no_token_ids(m, err)) != QW_OK) goto fail;
        m->load_ms = qw_now_ms() - t0;
        *out = m;
        return QW_OK;
    }

    m->pool = qw_pool_new(opts->threads);

    qw_graph_opts go = {0};
    go.mem_cap_bytes = opts->mem_cap_bytes;
    go.exact_lm_head = opts->exact_lm_head;
    go.embedding_on_demand = opts->embedding_on_demand;
    go.prefetch = opts->prefetch;
    go.lm_head_min_rows = opts->lm_head_min_rows;
    go.profile = opts->profile;
    go.progress = opts->progress;
    go.progress_user = opts->progress_user;
    if ((st = qw_graph_build(fs, m->onnx, m->pool, &go, &m->graph, err)) != QW_OK) goto fail;

    if ((st = qw_decoder_new(m->graph, m->max_seq, &m->dec, err)) != QW_OK) goto fail;
    if (opts->kv_cache < QW_KV_CACHE_AUTO || opts->kv_cache > QW_KV_CACHE_F32) {
        st = qw_error_set(err, QW_E_ARG, "qw_model_load: kv_cache %d", opts->kv_cache);
        goto fail;
    }
    if (opts->kv_cache != QW_KV_CACHE_AUTO) {
        int kd = opts->kv_cache == QW_KV_CACHE_F16    ? QW_KV_F16
                 : opts->kv_cache == QW_KV_CACHE_INT8 ? QW_KV_I8
                                                      : QW_KV_F32;
        qw_decoder_set_kv_dtype(m->dec, kd);
    }
    /* JS engines compile wasm in a baseline tier first: run the kernels once now so the first tokens
     * are not the slow ones */
    if (opts->progress) opts->progress(opts->progress_user, "warmup", 0, 0);
    qw_kernels_warmup(m->pool);
    /* and one decode step through the whole graph, then forgotten: every op's code has run and the
     * executor's buffers exist before the first real token (not under a cap: it would page in every
     * weight once) */
    if (!opts->mem_cap_bytes) {
        float *lg = malloc((size_t)qw_decoder_vocab(m->dec) * sizeof(float));
        int32_t id = 0;
        if (!lg) {
            st = qw_error_set(err, QW_E_NOMEM, "qw_model_load: out of memory");
            goto fail;
        }
        st = qw_decoder_forward(m->dec, &id, 1, lg, NULL, NULL, err);
        free(lg);
        qw_decoder_reset(m->dec);
        qw_graph_profile_reset(m->graph);
        if (st != QW_OK) goto fail;
    }
    if ((st = pick_lookahead(m, opts, err)) != QW_OK) goto fail;
    if ((st = find_no_token_ids(m, err)) != QW_OK) goto fail;
    m->load_ms = qw_now_ms() - t0;
    if (opts->progress) opts->progress(opts->progress_user, "ready", 0, 0);
    *out = m;
    return QW_OK;
fail:
    /* once the graph is read, what is refused (a node, an op, a shape, in the build or the warm-up step) is the
     * .onnx's fault; a failed read named its data file already */
    if (m->onnx && (st == QW_E_FORMAT || st == QW_E_UNSUPPORTED)) qw_error_file(err, m->cfg.onnx_file, st);
    qw_model_free(m);
    return st;
}

qw_status qw_model_set_draft(qw_model *target, qw_model *draft, qw_error *err) {
    if (!target) return qw_error_set(err, QW_E_ARG, "qw_model_set_draft: no target model");
    if (target->busy || (target->draft && target->draft->busy) || (draft && draft->busy))
        return qw_error_set(err, QW_E_ARG, "qw_model_set_draft: a generation is running");
    if (draft == target)
        return qw_error_set(err, QW_E_ARG,
                            "qw_model_set_draft: a model cannot draft for itself "
                            "(load its folder a second time)");
    if (target->draft_of) return qw_error_set(err, QW_E_ARG, "qw_model_set_draft: the target is a draft model");
    if (target->external) return qw_error_set(err, QW_E_ARG, "qw_model_set_draft: the target has no graph");
    if (draft && (draft->draft_of || draft->draft))
        return qw_error_set(err, QW_E_ARG, "draft model %s: it already drafts for a model or has a draft",
                            draft->cfg.onnx_file);
    if (draft) {
        char buf[160];
        const char *why = qw_draft_mismatch(target, draft, buf, sizeof buf);
        if (*why)
            return qw_error_set(err, QW_E_ARG, "draft model %s cannot draft for %s: %s", draft->cfg.onnx_file,
                                target->cfg.onnx_file, why);
    }
    if (target->draft) { /* back to its own threads */
        qw_graph_set_pool(target->draft->graph, target->draft->pool);
        target->draft->draft_of = NULL;
    }
    target->draft = draft;
    if (draft) {
        draft->draft_of = target;
        qw_graph_set_pool(draft->graph, target->pool);
    }
    return QW_OK;
}

void qw_model_free(qw_model *m) {
    if (!m) return;
    if (m->draft) qw_model_set_draft(m, NULL, NULL);
    if (m->draft_of) qw_model_set_draft(m->draft_of, NULL, NULL);
    qw_decoder_free(m->dec);
    qw_graph_free(m->graph);
    qw_onnx_free(m->onnx);
    qw_pool_free(m->pool);
    qw_tokenizer_free(m->tok);
    qw_chat_template_free(m->chat);
    free(m->cached);
    free(m->no_token);
    free(m->info_json);
    free(m->stats_json);
    free(m);
}

qw_status qw_model_cached_reserve(qw_model *m, int n) {
    if (n <= m->cached_cap) return QW_OK;
    int cap = m->cached_cap ? m->cached_cap : 256;
    while (cap < n) cap = cap > m->max_seq / 2 ? (n > m->max_seq ? n : m->max_seq) : cap * 2;
    int32_t *c = realloc(m->cached, (size_t)cap * sizeof *c);
    if (!c) return QW_E_NOMEM;
    m->cached = c;
    m->cached_cap = cap;
    return QW_OK;
}

int qw_model_vocab(const qw_model *m) { return m->external ? m->cfg.vocab_size : qw_decoder_vocab(m->dec); }

int qw_model_has_tokenizer(const qw_model *m) { return m && m->tok != NULL; }

const char *qw_model_tokenizer_error(const qw_model *m) { return !m ? "no model" : m->tok ? "" : m->tok_error; }

const char *qw_model_warnings(const qw_model *m) { return m ? m->cfg.warnings : ""; }

static qw_status need_tokenizer(const qw_model *m, qw_error *err) {
    if (!m) return qw_error_set(err, QW_E_ARG, "no model");
    if (!m->tok) return qw_error_set(err, QW_E_UNSUPPORTED, "%s", m->tok_error);
    return QW_OK;
}

qw_status qw_tokenize(qw_model *m, const char *text, size_t len, int32_t **ids, size_t *n, qw_error *err) {
    qw_status st = need_tokenizer(m, err);
    return st != QW_OK ? st : qw_tokenizer_encode(m->tok, text, len, ids, n, err);
}

qw_status qw_detokenize(qw_model *m, const int32_t *ids, size_t n, char **text, qw_error *err) {
    qw_status st = need_tokenizer(m, err);
    return st != QW_OK ? st : qw_tokenizer_decode(m->tok, ids, n, 0, text, NULL, err);
}

qw_status qw_chat_render(qw_model *m, const char *messages_json, int add_generation_prompt, char **out, qw_error *err) {
    return qw_chat_render_tools(m, messages_json, NULL, add_generation_prompt, out, err);
}

qw_status qw_chat_render_tools(qw_model *m, const char *messages_json, const char *tools_json,
                               int add_generation_prompt, char **out, qw_error *err) {
    *out = NULL;
    qw_status st = need_tokenizer(m, err);
    if (st != QW_OK) return st;
    if (!messages_json) return qw_error_set(err, QW_E_ARG, "qw_chat_render: no messages");
    if (!m->chat) return qw_error_set(err, QW_E_UNSUPPORTED, "%s", m->chat_error);
    return qw_chat_template_render(m->chat, messages_json, tools_json, add_generation_prompt, out, NULL, err);
}

static char *replace_json(char **slot, cJSON *o) {
    free(*slot);
    *slot = o ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    return *slot ? *slot : "{}";
}

const char *qw_model_info_json(qw_model *m) {
    if (!m) return "{}";
    const qw_model_config *c = &m->cfg;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "model_type", c->model_type);
    cJSON_AddStringToObject(o, "onnx_file", c->onnx_file);
    cJSON_AddStringToObject(o, "dtype", c->dtype);
    cJSON_AddNumberToObject(o, "opset", (double)qw_onnx_opset_version(m->onnx, ""));
    cJSON_AddNumberToObject(o, "ir_version", (double)m->onnx->ir_version);
    cJSON_AddNumberToObject(o, "hidden_size", c->hidden_size);
    cJSON_AddNumberToObject(o, "num_layers", c->num_layers);
    cJSON_AddNumberToObject(o, "num_heads", c->num_heads);
    cJSON_AddNumberToObject(o, "num_kv_heads", c->num_kv_heads);
    cJSON_AddNumberToObject(o, "vocab_size", qw_model_vocab(m));
    cJSON_AddNumberToObject(o, "max_context", m->max_seq);
    cJSON *warn = cJSON_AddArrayToObject(o, "warnings");
    for (const char *p = c->warnings; *p;) {
        const char *e = strchr(p, '\n');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        char line[sizeof c->warnings];
        snprintf(line, sizeof line, "%.*s", (int)l, p);
        cJSON_AddItemToArray(warn, cJSON_CreateString(line));
        p += l + (e != NULL);
    }
    cJSON *sp = cJSON_AddObjectToObject(o, "speculative");
    cJSON_AddNumberToObject(sp, "drafted", (double)m->spec_drafted);
    cJSON_AddNumberToObject(sp, "accepted", (double)m->spec_accepted);
    cJSON_AddNumberToObject(sp, "steps", (double)m->spec_steps);
    if (m->draft) cJSON_AddItemToObject(o, "draft", cJSON_Parse(qw_model_info_json(m->draft)));
    cJSON *eos = cJSON_AddArrayToObject(o, "eos_ids");
    for (int i = 0; i < c->n_eos; i++) cJSON_AddItemToArray(eos, cJSON_CreateNumber(c->eos_ids[i]));
    cJSON_AddBoolToObject(o, "tokenizer", m->tok != NULL);
    if (!m->tok) cJSON_AddStringToObject(o, "tokenizer_error", m->tok_error);
    if (m->tok) cJSON_AddStringToObject(o, "chat_template", m->chat ? qw_chat_template_source(m->chat) : "error");
    if (m->tok && !m->chat) cJSON_AddStringToObject(o, "chat_template_error", m->chat_error);
    cJSON *files = cJSON_AddArrayToObject(o, "files");
    for (int i = 0; i < m->onnx->n_files; i++) {
        cJSON *f = cJSON_CreateObject();
        cJSON_AddStringToObject(f, "name", m->onnx->files[i].name);
        cJSON_AddNumberToObject(f, "size", (double)m->onnx->files[i].size);
        cJSON_AddItemToArray(files, f);
    }
    cJSON_AddStringToObject(o, "engine", m->external ? "external" : "qwasm");
    cJSON_AddNumberToObject(o, "threads", qw_pool_threads(m->pool));
    cJSON_AddNumberToObject(o, "load_ms", m->load_ms);
    cJSON_AddItemToObject(o, "build", cJSON_Parse(qw_build_info_json()));
    return replace_json(&m->info_json, o);
}

void qw_model_set_tap(qw_model *m, qw_tap_fn fn, void *user) {
    if (m && m->graph) qw_graph_set_tap(m->graph, fn, user);
}

const char *qw_model_stats_json(qw_model *m) {
    if (!m) return "{}";
    cJSON *o = m->graph ? cJSON_Parse(qw_graph_stats_json(m->graph)) : NULL;
    if (!o) o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "kv_tokens", m->n_cached);
    if (m->dec) { /* memory per token: the figure that bounds the context a tab can hold */
        qw_decoder_kv_info ki;
        qw_decoder_kv_stats(m->dec, &ki);
        cJSON *kv = cJSON_AddObjectToObject(o, "kv");
        static const char *names[] = {"fp32", "fp16", "int8"};
        cJSON_AddStringToObject(kv, "dtype", names[ki.dtype >= 0 && ki.dtype <= 2 ? ki.dtype : 0]);
        cJSON_AddNumberToObject(kv, "bytes_per_token", (double)ki.bytes_per_token);
        cJSON_AddNumberToObject(kv, "reserved_bytes", (double)ki.reserved_bytes);
        cJSON_AddNumberToObject(kv, "used_bytes", (double)(ki.bytes_per_token * (uint64_t)m->n_cached));
        cJSON_AddNumberToObject(kv, "fused_layers", ki.fused_layers);
    }
    cJSON_AddNumberToObject(o, "max_context", m->max_seq);
    cJSON *sp = cJSON_AddObjectToObject(o, "speculative");
    cJSON_AddNumberToObject(sp, "drafted", (double)m->spec_drafted);
    cJSON_AddNumberToObject(sp, "accepted", (double)m->spec_accepted);
    cJSON_AddNumberToObject(sp, "steps", (double)m->spec_steps);
    if (m->draft) { /* the draft model's part of those, and its own memory figures */
        cJSON_AddNumberToObject(sp, "model_drafted", (double)m->draft_drafted);
        cJSON_AddNumberToObject(sp, "model_accepted", (double)m->draft_accepted);
        cJSON_AddNumberToObject(sp, "model_steps", (double)m->draft_steps);
        cJSON_AddNumberToObject(sp, "draft_ms", m->draft_ms);
        cJSON *d = cJSON_Parse(qw_model_stats_json(m->draft));
        if (d) {
            cJSON *w = cJSON_GetObjectItem(d, "resident_weight_bytes"), *pb = cJSON_GetObjectItem(d, "pool_bytes");
            cJSON *kv = cJSON_GetObjectItem(d, "kv"), *kr = kv ? cJSON_GetObjectItem(kv, "reserved_bytes") : NULL;
            /* what the draft holds: weights, KV cache, activation buffers */
            double bytes = (cJSON_IsNumber(w) ? w->valuedouble : 0) + (cJSON_IsNumber(pb) ? pb->valuedouble : 0) +
                           (cJSON_IsNumber(kr) ? kr->valuedouble : 0);
            cJSON_AddNumberToObject(d, "bytes", bytes);
            cJSON_AddItemToObject(o, "draft", d);
        }
    }
    cJSON_AddNumberToObject(o, "threads", qw_pool_threads(m->pool));
    if (m->lookahead_how) {
        cJSON *la = cJSON_AddObjectToObject(o, "lookahead");
        cJSON_AddBoolToObject(la, "on", qw_kernels_lookahead());
        cJSON_AddStringToObject(la, "how", m->lookahead_how);
        if (!strcmp(m->lookahead_how, "timed")) { /* the medians of the trial's decode steps */
            cJSON_AddNumberToObject(la, "step_ms_off", m->lookahead_med[0]);
            cJSON_AddNumberToObject(la, "step_ms_on", m->lookahead_med[1]);
        }
    }
    cJSON_AddItemToObject(o, "build", cJSON_Parse(qw_build_info_json())); /* the variant: simd, relaxed, threads */
    return replace_json(&m->stats_json, o);
}
