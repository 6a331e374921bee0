/* qw_speculate.h - prompt-lookup drafts for speculative decoding (internal; the decode loop, qw_generate.c, runs
 * them). A draft is the continuation of the latest earlier occurrence of the text's last n tokens (n-gram lookup
 * over the prompt and the tokens generated so far, no second model). The decoder then runs the last token and
 * the k drafted ones in one step, each row's logits pick the next token as plain decoding would, and the drafted
 * tokens are kept up to the first that differs from that pick; the positions of the others are dropped from the
 * KV cache (qw_decoder_truncate). Picking each row's token with the plain sampler and accepting the draft when it
 * is that token is the standard speculative-sampling rule for a draft that is one fixed token d (a point mass):
 * d is accepted with probability p(d) = min(1, p(d) / 1), and otherwise the token follows p without d,
 * renormalised, which is max(0, p - q) renormalised. So the output has the target's distribution, and, one random
 * number per token as in plain decoding, the very tokens plain decoding gives for the same seed and logits. */
#ifndef QW_SPECULATE_H
#define QW_SPECULATE_H

#include <stdint.h>

#define QW_SPEC_MAX_DRAFT 16 /* drafted tokens per step at most (the verify step runs this + 1 rows) */

typedef struct qw_spec {
    int mode;                 /* QW_SPEC_OFF / ON / AUTO (qwasm.h) */
    int max_draft;            /* 1..QW_SPEC_MAX_DRAFT */
    int cur_draft;            /* this step's draft length: shrinks after a miss, grows after a full match */
    int ngram_max, ngram_min; /* lookup keys: the last ngram_max tokens first, down to ngram_min */
    /* auto: acceptance over a window of drafted tokens; below QW_SPEC_AUTO_MIN_RATE, drafting pauses for
     * `pause` tokens (doubling while it stays low), since a rejected draft costs more than a plain step */
    int win_drafted, win_accepted;
    int pause, paused_left;
    long drafted, accepted, steps; /* totals of this generation */
} qw_spec;

void qw_spec_init(qw_spec *s, int mode, int max_draft);
/* How many tokens a draft may have now (at most max): 0 when off or paused. The draft model's drafts (qw_draft.h)
 * keep a qw_spec of their own for its length and pauses. */
int qw_spec_room(const qw_spec *s, int max);
/* Up to max drafted tokens into draft (<= s->max_draft) continuing hist[0..n); 0 when none (or paused). */
int qw_spec_draft(qw_spec *s, const int32_t *hist, int n, int32_t *draft, int max);
/* After a verify step: how many of the drafted tokens were accepted. */
void qw_spec_record(qw_spec *s, int drafted, int accepted);
/* A plain step (no draft): counts down a pause. */
void qw_spec_plain_step(qw_spec *s);

#endif /* QW_SPECULATE_H */
