/* qw_draft.c - greedy drafts from a second model and its KV cache kept in step with the text (see qw_draft.h). */
#include <stdio.h>
#include <string.h>
#include "qw_draft.h"

const char *qw_draft_mismatch(const qw_model *target, const qw_model *draft, char *buf, size_t cap) {
    if (draft->external) return "it has no graph (an external decoder)";
    if (!target->tok != !draft->tok)
        return target->tok ? "it has no tokenizer qwasm reads" : "the target has no tokenizer qwasm reads";
    if (target->tok) {
        int32_t n = qw_tokenizer_n_tokens(target->tok), nd = qw_tokenizer_n_tokens(draft->tok);
        if (n != nd) {
            snprintf(buf, cap, "its tokenizer has %d tokens, the target's %d", (int)nd, (int)n);
            return buf;
        }
        for (int32_t id = 0; id < n; id++) {
            size_t la = 0, lb = 0;
            const unsigned char *a = qw_tokenizer_token_bytes(target->tok, id, &la);
            const unsigned char *b = qw_tokenizer_token_bytes(draft->tok, id, &lb);
            if (!a != !b || la != lb || (a && memcmp(a, b, la)) ||
                qw_tokenizer_is_special(target->tok, id) != qw_tokenizer_is_special(draft->tok, id)) {
                snprintf(buf, cap, "its tokenizer's token %d differs from the target's", (int)id);
                return buf;
            }
        }
    } else if (qw_model_vocab(target) != qw_model_vocab(draft)) {
        snprintf(buf, cap, "its vocabulary has %d ids, the target's %d", qw_model_vocab(draft), qw_model_vocab(target));
        return buf;
    }
    if (target->cfg.n_eos != draft->cfg.n_eos ||
        memcmp(target->cfg.eos_ids, draft->cfg.eos_ids, (size_t)target->cfg.n_eos * sizeof *target->cfg.eos_ids))
        return "its eos ids differ from the target's";
    return "";
}

/* Feeds ids to d (cache and d->cached); on failure d forgets its cache (the next call starts over). */
static qw_status draft_feed(qw_model *d, const int32_t *ids, int n, float *logits, volatile int *abort_flag,
                            qw_error *err) {
    if (qw_model_cached_reserve(d, d->n_cached + n) != QW_OK) return qw_error_set(err, QW_E_NOMEM, "out of memory");
    const qw_graph_step step = {.lm_head_top = 1}; /* only the argmax is used: one exact row of the int8 lm_head */
    qw_status st = qw_decoder_forward(d->dec, ids, n, logits, &step, abort_flag, err);
    if (st != QW_OK) {
        qw_decoder_reset(d->dec);
        d->n_cached = 0;
        return st;
    }
    memcpy(d->cached + d->n_cached, ids, (size_t)n * sizeof *ids);
    d->n_cached += n;
    return QW_OK;
}

/* Keeps the cached prefix d shares with text[0..upto) and feeds text up to upto in chunks; logits (when not
 * NULL) get the last position's. QW_E_RANGE (err not set) when the text has an id past d's vocabulary. */
static qw_status sync(qw_model *d, const int32_t *text, int upto, int chunk, float *logits, float *scratch,
                      volatile int *abort_flag, qw_error *err) {
    int keep = 0;
    while (keep < d->n_cached && keep < upto && d->cached[keep] == text[keep]) keep++;
    if (logits && keep == upto) keep--; /* the last id is run again: its logits are wanted */
    if (keep < d->n_cached) {
        if (qw_decoder_truncate(d->dec, keep) != QW_OK) {
            qw_decoder_reset(d->dec);
            keep = 0;
        }
        d->n_cached = keep;
    }
    /* an id past the draft's vocabulary (a draft of a narrower one): it cannot read this text */
    int vocab = qw_model_vocab(d);
    for (int i = d->n_cached; i < upto; i++)
        if (text[i] >= vocab) return QW_E_RANGE;
    qw_status st = QW_OK;
    while (st == QW_OK && d->n_cached < upto) {
        int n = upto - d->n_cached;
        if (n > chunk) n = chunk;
        st = draft_feed(d, text + d->n_cached, n, d->n_cached + n == upto && logits ? logits : scratch, abort_flag,
                        err);
    }
    return st;
}

qw_status qw_draft_catch_up(qw_model *d, const int32_t *text, int n, int chunk, float *logits, volatile int *abort_flag,
                            qw_error *err) {
    if (n - 1 > d->max_seq) return QW_OK; /* past the draft's context: it drafts no more */
    qw_status st = sync(d, text, n - 1, chunk, NULL, logits, abort_flag, err);
    return st == QW_E_RANGE ? QW_OK : st;
}

static int32_t argmax(const float *x, int n) {
    int32_t best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

qw_status qw_draft_run(qw_model *d, const int32_t *text, int n, int max, int vocab_limit, int chunk, float *logits,
                       volatile int *abort_flag, int32_t *out, int *k, qw_error *err) {
    *k = 0;
    if (max > d->max_seq - n) max = d->max_seq - n; /* the draft's cache holds the text and max - 1 drafts */
    if (max < 1) return QW_OK;
    qw_status st = sync(d, text, n, chunk, logits, logits, abort_flag, err);
    if (st == QW_E_RANGE) return QW_OK;
    int vocab = qw_model_vocab(d);
    if (vocab > vocab_limit) vocab = vocab_limit; /* a wider draft vocabulary: only ids the target has */
    while (st == QW_OK) {
        int32_t id = argmax(logits, vocab);
        out[(*k)++] = id;
        if (*k == max) break;
        st = draft_feed(d, &id, 1, logits, abort_flag, err);
    }
    return st;
}
