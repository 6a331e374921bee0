/* qw_draft.h - the draft model's side of speculative decoding (internal; qw_generate.c runs it). A second, smaller
 * model of the same tokenizer (qw_model_set_draft) continues the text greedily: its argmax token given the text,
 * then its argmax given the text and that token, and so on. The draft is then one fixed token per position given
 * the context (a point mass), so the verify rule of qw_speculate.h keeps the output exactly the target's: greedy
 * and seeded sampling give the very tokens of plain decoding, whatever the draft model computes.
 * The draft model keeps its own KV cache (m->cached / n_cached, as a target does): each call keeps the longest
 * prefix it shares with the text (rejected drafts are rolled back with qw_decoder_truncate) and feeds the rest. */
#ifndef QW_DRAFT_H
#define QW_DRAFT_H

#include "qw_model.h"

/* Why draft cannot draft for target ("" when it can): the two tokenizers' vocabularies (each id's bytes and
 * special flag) and eos ids must be the same. Static or in buf (cap bytes). */
const char *qw_draft_mismatch(const qw_model *target, const qw_model *draft, char *buf, size_t cap);
/* Brings d's cache to text[0..n) less its last id (feeding what it has not seen in chunks of at most chunk ids),
 * so the next qw_draft_run starts from the last id. Used while the target prefills; logits: scratch as below. */
qw_status qw_draft_catch_up(qw_model *d, const int32_t *text, int n, int chunk, float *logits, volatile int *abort_flag,
                            qw_error *err);
/* Up to max tokens continuing text[0..n) into out (*k of them, ids below vocab_limit: the target's logits width);
 * *k = 0 when the draft's context is full or the text has an id past d's vocabulary (a narrower one: d cannot
 * read it). logits: (d's vocab) scratch. */
qw_status qw_draft_run(qw_model *d, const int32_t *text, int n, int max, int vocab_limit, int chunk, float *logits,
                       volatile int *abort_flag, int32_t *out, int *k, qw_error *err);

#endif /* QW_DRAFT_H */
