/* qw_sampler.h - choosing the next token from logits, the way Hugging Face's generate() does
 * (repetition penalty, logit bias, temperature, top-k, top-p, min-p), reproducibly: the RNG is our own
 * (xoshiro256**), exp is our own polynomial in double, and every ordering is a total order (logit, then
 * id), so one seed gives the same tokens natively and in WebAssembly for the same logits. Plus stop
 * strings detected across token boundaries. */
#ifndef QW_SAMPLER_H
#define QW_SAMPLER_H

#include <stddef.h>
#include <stdint.h>
#include "qwasm.h"

typedef struct qw_sampler_params {
    float temperature;        /* <= 0: greedy (argmax, lowest id on ties) */
    int top_k;                /* <= 0: off */
    float top_p;              /* >= 1 (or <= 0): off */
    float min_p;              /* <= 0: off */
    float repetition_penalty; /* 1 (or <= 0): off; HF: positive logits / p, negative * p, over ids seen */
    uint64_t seed;
    const int32_t *bias_ids; /* added to the logits of these ids (copied by qw_sampler_new) */
    const float *bias_values;
    int n_bias;
} qw_sampler_params;

/* The values qw_sampler_params_check accepts: temperature 0 (greedy) to QW_SAMPLER_MAX_TEMPERATURE, top_k >= 0,
 * top_p in (0, 1], min_p in [0, 1], repetition_penalty in (0, QW_SAMPLER_MAX_PENALTY], finite biases. */
#define QW_SAMPLER_MAX_TEMPERATURE 1e4
#define QW_SAMPLER_MAX_PENALTY 1e4
/* QW_E_ARG naming the first value outside those ranges (NaN and infinities included). */
qw_status qw_sampler_params_check(const qw_sampler_params *p, qw_error *err);

/* temperature 1, top_k 0, top_p 1, min_p 0, repetition_penalty 1, seed 0, no bias. */
void qw_sampler_params_init(qw_sampler_params *p);

typedef struct qw_sampler qw_sampler;

/* n_vocab: length of the logits rows the sampler will see. */
qw_status qw_sampler_new(const qw_sampler_params *p, int32_t n_vocab, qw_sampler **out, qw_error *err);
void qw_sampler_free(qw_sampler *s);
/* Forgets the seen ids and restarts the RNG from seed. */
void qw_sampler_reset(qw_sampler *s, uint64_t seed);
/* Records an id as seen (call for every prompt id and every generated id) for the repetition penalty. */
void qw_sampler_accept(qw_sampler *s, int32_t id);
/* For a producer of logits that computes only the largest ones exactly (the int8 lm_head, qw_ops_lmhead.c): how
 * many the sampler can pick from (1 for greedy, top_k, else QW_SAMPLER_EXACT_MAX) and, in *lowered, a byte per id
 * set where the sampler may only lower that logit (ids seen under a repetition penalty > 1, negative biases; NULL
 * when none). Exact values for the top that many among the other ids suffice: a lowered logit can only drop out.
 * When the sampler may raise a logit (penalty < 1, a positive bias) *lowered is NULL and the answer is
 * QW_SAMPLER_EXACT_MAX with no guarantee. *lowered stays valid until the next qw_sampler_accept/reset. */
#define QW_SAMPLER_EXACT_MAX 64
int qw_sampler_exact_top(const qw_sampler *s, const uint8_t **lowered);

/* Picks the next id from logits[0..n_vocab). logits is modified (penalty, bias, temperature applied in
 * place). Greedy uses no random number; sampling uses exactly one. NaN counts as -inf. Does not call
 * qw_sampler_accept. QW_E_ARG when every logit is -inf/NaN. */
qw_status qw_sampler_sample(qw_sampler *s, float *logits, int32_t *out_id, qw_error *err);

/* The RNG (exposed for tests): xoshiro256** seeded through splitmix64. */
typedef struct qw_rng {
    uint64_t s[4];
} qw_rng;
void qw_rng_seed(qw_rng *r, uint64_t seed);
uint64_t qw_rng_next(qw_rng *r);
double qw_rng_uniform(qw_rng *r); /* [0, 1), 53 bits */
/* exp(x) for x <= 0, identical on every IEEE-754 double platform (no libm). */
double qw_exp_det(double x);

/* ---- stop strings ------------------------------------------------------------------------------ */

/* Feeds generated text and says what can be shown: text that might be the start of a stop string is held
 * back until it is known not to be; when a stop string completes, the text before it is emitted and
 * *stopped is set (the caller ends generation). */
typedef struct qw_stop qw_stop;

/* stops[0..n) are copied; empty strings are ignored. n may be 0 (everything passes through). */
qw_status qw_stop_new(const char *const *stops, int n, qw_stop **out, qw_error *err);
void qw_stop_free(qw_stop *s);
/* *emit (valid until the next call) gets the text that is safe to show now. */
qw_status qw_stop_feed(qw_stop *s, const char *text, size_t len, int *stopped, const char **emit, size_t *emit_len,
                       qw_error *err);
/* At the end of generation without a stop: the held-back text. */
void qw_stop_flush(qw_stop *s, const char **emit, size_t *emit_len);

#endif /* QW_SAMPLER_H */
