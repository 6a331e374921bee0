/* qw_sampler.c - next-token choice and stop strings (see qw_sampler.h).
 *
 * Order, as Hugging Face's generate() applies its processors: repetition penalty, logit bias,
 * temperature, top-k (ties with the k-th value kept, as TopKLogitsWarper does), top-p (over the
 * distribution left by top-k), min-p (relative to the top probability, which no earlier filter removes),
 * then one draw. Probabilities are exp(x - max) in double with qw_exp_det; sums run in a fixed order. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "qw_sampler.h"

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF /* a fused multiply-add would change results between targets */
#endif

/* ---- RNG and exp ---------------------------------------------------------------------------------- */

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void qw_rng_seed(qw_rng *r, uint64_t seed) {
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t qw_rng_next(qw_rng *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double qw_rng_uniform(qw_rng *r) { return (double)(qw_rng_next(r) >> 11) * (1.0 / 9007199254740992.0); }

double qw_exp_det(double x) {
    if (!(x > -700.0)) return 0.0; /* also NaN and -inf */
    if (x > 0) x = 0;              /* only used for x - max <= 0 */
    /* x = k ln2 + r, |r| <= ln2/2; exp(r) by its Taylor series (error < 1e-15); 2^k by the exponent bits. */
    double kd = floor(x * 1.4426950408889634 + 0.5);
    double r = (x - kd * 0.6931471803691238) - kd * 1.9082149292705877e-10;
    double p = 1.0 / 479001600.0;
    static const double inv_fact[] = {
        1.0 / 39916800.0, 1.0 / 3628800.0, 1.0 / 362880.0, 1.0 / 40320.0, 1.0 / 5040.0, 1.0 / 720.0,
        1.0 / 120.0,      1.0 / 24.0,      1.0 / 6.0,      0.5,           1.0,          1.0};
    for (int i = 0; i < 12; i++) p = p * r + inv_fact[i];
    int k = (int)kd; /* -1010 <= k <= 0: 2^k is a normal double */
    uint64_t bits = (uint64_t)(k + 1023) << 52;
    double scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

/* ---- sampler ------------------------------------------------------------------------------------- */

typedef struct cand {
    float v;
    int32_t id;
} cand;

struct qw_sampler {
    qw_sampler_params p;
    int32_t n_vocab;
    int32_t *bias_ids;
    float *bias_values;
    uint8_t *seen;
    uint8_t *lowered; /* (n_vocab) 1: this logit may only be lowered (seen under a penalty > 1, a negative
                                  bias); NULL when no logit can be */
    int raises;       /* a logit may be raised (penalty < 1, a positive bias) */
    int32_t *seen_list;
    size_t n_seen;
    qw_rng rng;
    cand *cand;
    double *w;
};

void qw_sampler_params_init(qw_sampler_params *p) {
    memset(p, 0, sizeof *p);
    p->temperature = 1.0f;
    p->top_p = 1.0f;
    p->repetition_penalty = 1.0f;
}

qw_status qw_sampler_params_check(const qw_sampler_params *p, qw_error *err) {
    /* written so that NaN fails every test */
    if (!(p->temperature >= 0 && p->temperature <= QW_SAMPLER_MAX_TEMPERATURE))
        return qw_error_set(err, QW_E_ARG, "temperature %g: 0 (greedy) to %g expected", p->temperature,
                            QW_SAMPLER_MAX_TEMPERATURE);
    if (p->top_k < 0) return qw_error_set(err, QW_E_ARG, "top_k %d: 0 (off) or more expected", p->top_k);
    if (!(p->top_p > 0 && p->top_p <= 1))
        return qw_error_set(err, QW_E_ARG, "top_p %g: above 0 and at most 1 (off) expected", p->top_p);
    if (!(p->min_p >= 0 && p->min_p <= 1))
        return qw_error_set(err, QW_E_ARG, "min_p %g: 0 (off) to 1 expected", p->min_p);
    if (!(p->repetition_penalty > 0 && p->repetition_penalty <= QW_SAMPLER_MAX_PENALTY))
        return qw_error_set(err, QW_E_ARG, "repetition_penalty %g: above 0 and at most %g expected (1: off)",
                            p->repetition_penalty, QW_SAMPLER_MAX_PENALTY);
    for (int i = 0; i < p->n_bias && p->bias_values; i++) /* -inf bans an id; NaN and +inf mean nothing */
        if (p->bias_values[i] != p->bias_values[i] || p->bias_values[i] == INFINITY)
            return qw_error_set(err, QW_E_ARG, "logit bias %g for id %d: a number or -inf expected", p->bias_values[i],
                                p->bias_ids ? p->bias_ids[i] : -1);
    return QW_OK;
}

void qw_sampler_free(qw_sampler *s) {
    if (!s) return;
    free(s->bias_ids);
    free(s->bias_values);
    free(s->seen);
    free(s->lowered);
    free(s->seen_list);
    free(s->cand);
    free(s->w);
    free(s);
}

qw_status qw_sampler_new(const qw_sampler_params *p, int32_t n_vocab, qw_sampler **out, qw_error *err) {
    if (!p || !out || n_vocab <= 0)
        return qw_error_set(err, QW_E_ARG, "qw_sampler: bad arguments (n_vocab %d)", n_vocab);
    if (p->n_bias < 0 || (p->n_bias && (!p->bias_ids || !p->bias_values)))
        return qw_error_set(err, QW_E_ARG, "qw_sampler: logit bias without ids/values");
    qw_status st = qw_sampler_params_check(p, err);
    if (st != QW_OK) return st;
    for (int i = 0; i < p->n_bias; i++)
        if (p->bias_ids[i] < 0 || p->bias_ids[i] >= n_vocab)
            return qw_error_set(err, QW_E_ARG, "qw_sampler: logit bias id %d is outside the vocabulary (%d)",
                                p->bias_ids[i], n_vocab);
    qw_sampler *s = calloc(1, sizeof *s);
    if (!s) return qw_error_set(err, QW_E_NOMEM, "qw_sampler: out of memory");
    s->p = *p;
    s->n_vocab = n_vocab;
    s->seen = calloc((size_t)n_vocab, 1);
    s->seen_list = malloc((size_t)n_vocab * sizeof *s->seen_list);
    s->cand = malloc((size_t)n_vocab * sizeof *s->cand);
    s->w = malloc((size_t)n_vocab * sizeof *s->w);
    if (p->n_bias) {
        s->bias_ids = malloc((size_t)p->n_bias * sizeof *s->bias_ids);
        s->bias_values = malloc((size_t)p->n_bias * sizeof *s->bias_values);
    }
    if (!s->seen || !s->seen_list || !s->cand || !s->w || (p->n_bias && (!s->bias_ids || !s->bias_values))) {
        qw_sampler_free(s);
        return qw_error_set(err, QW_E_NOMEM, "qw_sampler: out of memory for a vocabulary of %d", n_vocab);
    }
    if (p->n_bias) {
        memcpy(s->bias_ids, p->bias_ids, (size_t)p->n_bias * sizeof *s->bias_ids);
        memcpy(s->bias_values, p->bias_values, (size_t)p->n_bias * sizeof *s->bias_values);
    }
    s->p.bias_ids = s->bias_ids;
    s->p.bias_values = s->bias_values;
    float pen = p->repetition_penalty;
    int lowers = pen > 1.0f;
    s->raises = pen > 0 && pen < 1.0f;
    for (int i = 0; i < p->n_bias; i++) lowers |= p->bias_values[i]<0, s->raises |= p->bias_values[i]> 0;
    if (lowers && !(s->lowered = calloc((size_t)n_vocab, 1))) {
        qw_sampler_free(s);
        return qw_error_set(err, QW_E_NOMEM, "qw_sampler: out of memory for a vocabulary of %d", n_vocab);
    }
    for (int i = 0; s->lowered && i < p->n_bias; i++)
        if (p->bias_values[i] < 0) s->lowered[p->bias_ids[i]] = 1;
    qw_rng_seed(&s->rng, p->seed);
    *out = s;
    return QW_OK;
}

void qw_sampler_reset(qw_sampler *s, uint64_t seed) {
    for (size_t i = 0; i < s->n_seen; i++) s->seen[s->seen_list[i]] = 0;
    if (s->lowered) {
        for (size_t i = 0; i < s->n_seen; i++) s->lowered[s->seen_list[i]] = 0;
        for (int i = 0; i < s->p.n_bias; i++)
            if (s->p.bias_values[i] < 0) s->lowered[s->p.bias_ids[i]] = 1;
    }
    s->n_seen = 0;
    s->p.seed = seed;
    qw_rng_seed(&s->rng, seed);
}

void qw_sampler_accept(qw_sampler *s, int32_t id) {
    if (id < 0 || id >= s->n_vocab || s->seen[id]) return;
    s->seen[id] = 1;
    s->seen_list[s->n_seen++] = id;
    if (s->lowered && s->p.repetition_penalty > 1.0f) s->lowered[id] = 1;
}

int qw_sampler_exact_top(const qw_sampler *s, const uint8_t **lowered) {
    const qw_sampler_params *p = &s->p;
    *lowered = NULL;
    if (s->raises) return QW_SAMPLER_EXACT_MAX;
    *lowered = s->lowered;
    if (p->temperature <= 0 || p->top_k == 1) return 1;
    return p->top_k >= 1 && p->top_k <= QW_SAMPLER_EXACT_MAX ? p->top_k : QW_SAMPLER_EXACT_MAX;
}

/* a ranks before b: larger value, then smaller id (a total order, so any sort gives one result) */
static inline int cand_before(const cand *a, const cand *b) { return a->v > b->v || (a->v == b->v && a->id < b->id); }

static int cand_cmp(const void *pa, const void *pb) {
    const cand *a = pa, *b = pb;
    return cand_before(a, b) ? -1 : cand_before(b, a) ? 1 : 0;
}

/* The best m of x[0..n) (finite values only), sorted, into out; returns how many. A min-heap of the m best
 * so far: most values lose against its root with one comparison. */
static size_t select_top(const float *x, int32_t n, size_t m, cand *out) {
    size_t h = 0;
    for (int32_t i = 0; i < n; i++) {
        if (x[i] == -INFINITY) continue;
        cand c = {x[i], i};
        if (h < m) { /* sift up: the root is the worst */
            size_t j = h++;
            while (j > 0 && cand_before(&out[(j - 1) / 2], &c)) {
                out[j] = out[(j - 1) / 2];
                j = (j - 1) / 2;
            }
            out[j] = c;
        } else if (cand_before(&c, &out[0])) {
            size_t j = 0;
            for (;;) {
                size_t l = 2 * j + 1, r = l + 1, w = j;
                const cand *worst = &c;
                if (l < h && cand_before(worst, &out[l])) {
                    w = l;
                    worst = &out[l];
                }
                if (r < h && cand_before(worst, &out[r])) w = r;
                if (w == j) break;
                out[j] = out[w];
                j = w;
            }
            out[j] = c;
        }
    }
    qsort(out, h, sizeof *out, cand_cmp);
    return h;
}

qw_status qw_sampler_sample(qw_sampler *s, float *x, int32_t *out_id, qw_error *err) {
    const qw_sampler_params *p = &s->p;
    int32_t n = s->n_vocab;
    if (p->repetition_penalty > 0 && p->repetition_penalty != 1.0f) {
        float pen = p->repetition_penalty;
        for (size_t i = 0; i < s->n_seen; i++) {
            float *v = &x[s->seen_list[i]];
            *v = *v < 0 ? *v * pen : *v / pen;
        }
    }
    for (int i = 0; i < p->n_bias; i++) x[p->bias_ids[i]] += p->bias_values[i];
    int32_t best = -1, n_finite = 0;
    for (int32_t i = 0; i < n; i++) {
        if (x[i] != x[i] || x[i] == -INFINITY) {
            x[i] = -INFINITY;
            continue;
        }
        n_finite++;
        if (best < 0 || x[i] > x[best]) best = i;
    }
    if (best < 0) return qw_error_set(err, QW_E_ARG, "qw_sampler: every logit is -inf or NaN");
    if (p->temperature <= 0 || p->top_k == 1 || n_finite == 1 || x[best] == INFINITY) {
        *out_id = best;
        return QW_OK;
    }

    float inv_t = p->temperature; /* divide, as HF does, rather than multiply by 1/t */
    for (int32_t i = 0; i < n; i++) x[i] = x[i] / inv_t;
    /* a temperature so small that the best logit overflows: the distribution is its limit, the argmax */
    if (x[best] == INFINITY) {
        *out_id = best;
        return QW_OK;
    }
    double mx = x[best];
    int use_topp = p->top_p > 0 && p->top_p < 1;
    cand *c = s->cand;
    double *w = s->w;
    size_t nc;
    double z = 0;
    int sorted = 1;
    if (p->top_k > 0 && p->top_k < n_finite) {
        size_t k = select_top(x, n, (size_t)p->top_k, c);
        float thr = c[k - 1].v;
        nc = 0;
        for (int32_t i = 0; i < n; i++) /* keep every value tied with the k-th */
            if (x[i] >= thr && x[i] != -INFINITY) c[nc++] = (cand){x[i], i};
        if (nc > k) qsort(c, nc, sizeof *c, cand_cmp);
        for (size_t j = 0; j < nc; j++) z += (w[j] = qw_exp_det((double)c[j].v - mx));
    } else if (use_topp) {
        for (int32_t i = 0; i < n; i++) z += qw_exp_det((double)x[i] - mx);
        nc = 0;
        for (size_t m = 256;; m *= 4) { /* grow the sorted head until it holds the nucleus */
            nc = select_top(x, n, m < (size_t)n_finite ? m : (size_t)n_finite, c);
            double cum = 0;
            size_t j = 0;
            for (; j < nc && cum < p->top_p * z; j++) cum += (w[j] = qw_exp_det((double)c[j].v - mx));
            if (j < nc || nc == (size_t)n_finite) break;
        }
    } else {
        nc = 0;
        sorted = 0;
        for (int32_t i = 0; i < n; i++)
            if (x[i] != -INFINITY) {
                c[nc] = (cand){x[i], i};
                w[nc++] = qw_exp_det((double)x[i] - mx);
            }
    }
    /* top-p: keep token j while the probability before it is < top_p (HF's cumsum <= 1 - top_p removal) */
    if (use_topp) {
        double cum = 0, lim = (double)p->top_p * z;
        size_t keep = 0;
        while (keep < nc && (keep == 0 || cum < lim)) cum += w[keep++];
        nc = keep;
    }
    /* min-p: p_j / p_max = exp(x_j - max) */
    if (p->min_p > 0) {
        size_t k = 0;
        for (size_t j = 0; j < nc; j++)
            if (w[j] >= (double)p->min_p || c[j].id == best) {
                c[k] = c[j];
                w[k++] = w[j];
            }
        nc = k;
    }
    (void)sorted;
    double total = 0;
    for (size_t j = 0; j < nc; j++) total += w[j];
    double u = qw_rng_uniform(&s->rng) * total, cum = 0;
    for (size_t j = 0; j < nc; j++) {
        cum += w[j];
        if (u < cum) {
            *out_id = c[j].id;
            return QW_OK;
        }
    }
    *out_id = nc ? c[nc - 1].id : best; /* u rounded up to total */
    return QW_OK;
}

/* ---- stop strings -------------------------------------------------------------------------------- */

struct qw_stop {
    char **stops;
    size_t *lens;
    int n;
    char *pend, *emit;
    size_t npend, cap_pend, cap_emit;
};

void qw_stop_free(qw_stop *s) {
    if (!s) return;
    for (int i = 0; i < s->n; i++) free(s->stops[i]);
    free(s->stops);
    free(s->lens);
    free(s->pend);
    free(s->emit);
    free(s);
}

qw_status qw_stop_new(const char *const *stops, int n, qw_stop **out, qw_error *err) {
    if (!out || n < 0 || (n && !stops)) return qw_error_set(err, QW_E_ARG, "qw_stop: bad arguments");
    qw_stop *s = calloc(1, sizeof *s);
    if (!s) return qw_error_set(err, QW_E_NOMEM, "qw_stop: out of memory");
    if (n) {
        s->stops = calloc((size_t)n, sizeof *s->stops);
        s->lens = calloc((size_t)n, sizeof *s->lens);
        if (!s->stops || !s->lens) {
            qw_stop_free(s);
            return qw_error_set(err, QW_E_NOMEM, "qw_stop: out of memory");
        }
    }
    for (int i = 0; i < n; i++) {
        if (!stops[i] || !*stops[i]) continue;
        size_t l = strlen(stops[i]);
        char *c = malloc(l + 1);
        if (!c) {
            qw_stop_free(s);
            return qw_error_set(err, QW_E_NOMEM, "qw_stop: out of memory");
        }
        memcpy(c, stops[i], l + 1);
        s->stops[s->n] = c;
        s->lens[s->n++] = l;
    }
    *out = s;
    return QW_OK;
}

static int reserve(char **p, size_t *cap, size_t need) {
    if (need <= *cap) return 1;
    size_t nc = *cap ? *cap : 64;
    while (nc < need) nc *= 2;
    char *np = realloc(*p, nc);
    if (!np) return 0;
    *p = np;
    *cap = nc;
    return 1;
}

qw_status qw_stop_feed(qw_stop *s, const char *text, size_t len, int *stopped, const char **emit, size_t *emit_len,
                       qw_error *err) {
    *stopped = 0;
    if (!reserve(&s->pend, &s->cap_pend, s->npend + len + 1) || !reserve(&s->emit, &s->cap_emit, s->npend + len + 1))
        return qw_error_set(err, QW_E_NOMEM, "qw_stop: out of memory");
    memcpy(s->pend + s->npend, text, len);
    s->npend += len;
    /* the earliest complete stop string */
    size_t first = SIZE_MAX;
    for (int i = 0; i < s->n; i++) {
        size_t l = s->lens[i];
        for (size_t j = 0; j + l <= s->npend && j < first; j++)
            if (!memcmp(s->pend + j, s->stops[i], l)) {
                first = j;
                break;
            }
    }
    size_t out;
    if (first != SIZE_MAX) {
        out = first;
        *stopped = 1;
    } else {
        /* hold back the longest tail that is a proper prefix of some stop string */
        size_t hold = 0;
        for (int i = 0; i < s->n; i++) {
            size_t l = s->lens[i];
            for (size_t h = (l - 1 < s->npend ? l - 1 : s->npend); h > hold; h--)
                if (!memcmp(s->pend + s->npend - h, s->stops[i], h)) {
                    hold = h;
                    break;
                }
        }
        out = s->npend - hold;
    }
    memcpy(s->emit, s->pend, out);
    s->emit[out] = 0;
    if (*stopped)
        s->npend = 0;
    else {
        memmove(s->pend, s->pend + out, s->npend - out);
        s->npend -= out;
    }
    *emit = s->emit;
    if (emit_len) *emit_len = out;
    return QW_OK;
}

void qw_stop_flush(qw_stop *s, const char **emit, size_t *emit_len) {
    if (reserve(&s->emit, &s->cap_emit, s->npend + 1)) {
        memcpy(s->emit, s->pend, s->npend);
        s->emit[s->npend] = 0;
        *emit = s->emit;
        if (emit_len) *emit_len = s->npend;
    } else {
        *emit = "";
        if (emit_len) *emit_len = 0;
    }
    s->npend = 0;
}
