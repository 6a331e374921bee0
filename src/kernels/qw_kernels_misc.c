/* qw_kernels_misc.c - row-wise kernels (softmax, RMSNorm, dot), fp16 array conversion and the attention's
 * weighted sum of rows (the attention itself: qw_kernels_attn.c). */
#include <math.h>

#include "qw_kernels_impl.h"

float qw_dot_f32(const float *a, const float *b, int n) {
    qv_f32 c0 = qv_zero(), c1 = qv_zero();
    int k = 0;
    for (; k + 2 * QV_W <= n; k += 2 * QV_W) {
        c0 = qv_fma(c0, qv_load(a + k), qv_load(b + k));
        c1 = qv_fma(c1, qv_load(a + k + QV_W), qv_load(b + k + QV_W));
    }
    float s = qv_hsum(qv_add(c0, c1));
    for (; k < n; k++) s += a[k] * b[k];
    return s;
}

void qw_softmax_f32(float *x, int n) {
    if (n <= 0) return;
    float mx = x[0];
    for (int i = 1; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    float sum = 0.0f;
    for (int i = 0; i < n; i++) {
        x[i] = expf(x[i] - mx);
        sum += x[i];
    }
    float inv = 1.0f / sum;
    for (int i = 0; i < n; i++) x[i] *= inv;
}

void qw_rmsnorm_f32(const float *x, const float *w, float eps, int n, float *y) {
    float ss = qw_dot_f32(x, x, n);
    float r = 1.0f / sqrtf(ss / (float)n + eps);
    qv_f32 rv = qv_set1(r);
    int k = 0;
    for (; k + QV_W <= n; k += QV_W) qv_store(y + k, qv_mul(qv_mul(qv_load(x + k), rv), qv_load(w + k)));
    for (; k < n; k++) y[k] = x[k] * r * w[k];
}

void qw_round_f16_array(float *x, size_t n) {
    size_t i = 0;
#if defined(QW_WASM_SIMD) || defined(QW_AVX2)
    for (; i + QV_W <= n; i += QV_W) qv_store(x + i, qv_round_f16(qv_load(x + i)));
#endif
    for (; i < n; i++) x[i] = qw_round_f16(x[i]);
}

void qw_f16_to_f32_array(const uint16_t *src, float *dst, size_t n) { qv_f16_to_f32_rows(src, dst, n); }

void qw_f32_to_f16_array(const float *src, uint16_t *dst, size_t n) {
    size_t i = 0;
#if defined(QW_AVX2)
    /* F16C with round-to-nearest-even: the same results as qw_f32_to_f16 (NaN payloads aside) */
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(src + i);
        if (_mm256_movemask_ps(_mm256_cmp_ps(v, v, _CMP_UNORD_Q))) break; /* NaNs: scalar tail */
        _mm_storeu_si128((__m128i *)(dst + i), _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT));
    }
#endif
    for (; i < n; i++) dst[i] = qw_f32_to_f16(src[i]);
}

void qw_weighted_rows_f32(const float *p, int n, const float *rows, size_t ld, int D, float *out) {
    for (int e = 0; e < D; e++) out[e] = 0;
    for (int i = 0; i < n; i++) {
        if (p[i] == 0) continue; /* masked keys: exp underflowed to exactly 0 */
        const float *r = rows + (size_t)i * ld;
        for (int e = 0; e < D; e++) out[e] += p[i] * r[e];
    }
}

/* ---- logistic (Sigmoid) ------------------------------------------------------------------------
 * onnxruntime's Sigmoid is MLAS's rational approximation, not 1/(1+exp(-x)): the same here (its published
 * coefficients). The reference and AVX2 use fused multiply-adds as MLAS does; wasm has no fma outside
 * relaxed SIMD, so its vectors round the products separately (a last-bit difference at most). */
#define LG_P0 4.37031012579801e-11f
#define LG_P1 1.15627324459942e-07f
#define LG_P2 6.08574864600143e-05f
#define LG_P3 8.51377133304701e-03f
#define LG_P4 2.48287947061529e-01f
#define LG_Q0 6.10247389755681e-13f
#define LG_Q1 5.76102136993427e-09f
#define LG_Q2 6.29106785017040e-06f
#define LG_Q3 1.70198817374094e-03f
#define LG_Q4 1.16817656904453e-01f
#define LG_Q5 9.93151921023180e-01f

float qw_logistic_ref(float x) {
    float v = x < -18.0f ? -18.0f : x > 18.0f ? 18.0f : x;
    float v2 = v * v;
    float p = fmaf(v2, LG_P0, LG_P1);
    p = fmaf(p, v2, LG_P2);
    p = fmaf(p, v2, LG_P3);
    p = fmaf(p, v2, LG_P4);
    p = p * v;
    float q = fmaf(v2, LG_Q0, LG_Q1);
    q = fmaf(q, v2, LG_Q2);
    q = fmaf(q, v2, LG_Q3);
    q = fmaf(q, v2, LG_Q4);
    q = fmaf(q, v2, LG_Q5);
    return p / q + 0.5f;
}

static void logistic_span(const float *x, float *y, size_t n) {
    size_t i = 0;
#if defined(QW_WASM_SIMD) || defined(QW_AVX2)
    /* qv_fma(c, a, b) = c + a * b: fused on AVX2 (as the reference's fmaf), two roundings in wasm */
    const qv_f32 lo = qv_set1(-18.0f), hi = qv_set1(18.0f);
    for (; i + QV_W <= n; i += QV_W) {
        qv_f32 v = qv_max(qv_min(qv_load(x + i), hi), lo);
        qv_f32 v2 = qv_mul(v, v);
        qv_f32 p = qv_fma(qv_set1(LG_P1), v2, qv_set1(LG_P0));
        p = qv_fma(qv_set1(LG_P2), p, v2);
        p = qv_fma(qv_set1(LG_P3), p, v2);
        p = qv_fma(qv_set1(LG_P4), p, v2);
        p = qv_mul(p, v);
        qv_f32 q = qv_fma(qv_set1(LG_Q1), v2, qv_set1(LG_Q0));
        q = qv_fma(qv_set1(LG_Q2), q, v2);
        q = qv_fma(qv_set1(LG_Q3), q, v2);
        q = qv_fma(qv_set1(LG_Q4), q, v2);
        q = qv_fma(qv_set1(LG_Q5), q, v2);
        qv_store(y + i, qv_add(qv_div(p, q), qv_set1(0.5f)));
    }
#endif
    for (; i < n; i++) y[i] = qw_logistic_ref(x[i]);
}

typedef struct {
    const float *x;
    float *y;
    size_t n;
} logistic_task;

static void logistic_run(void *p, int ith, int nth) {
    const logistic_task *t = p;
    size_t per = (t->n / (size_t)nth + 15) & ~(size_t)15, lo = (size_t)ith * per, hi = lo + per;
    if (hi > t->n) hi = t->n;
    if (lo < hi) logistic_span(t->x + lo, t->y + lo, hi - lo);
}

void qw_logistic_f32(qw_pool *pool, const float *x, float *y, size_t n) {
    logistic_task t = {x, y, n};
    if (n < 16384 || !pool)
        logistic_span(x, y, n); /* a decode step's 8960 values: not worth a dispatch */
    else
        qw_pool_run(pool, logistic_run, &t);
}
