/* qw_kernels_misc.c - row-wise kernels (softmax, RMSNorm, dot), fp16 array conversion and grouped-query
 * attention over a KV cache. */
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

/* y += a * x */
static void axpy(float *y, float a, const float *x, int n) {
    qv_f32 av = qv_set1(a);
    int k = 0;
    for (; k + QV_W <= n; k += QV_W) qv_store(y + k, qv_fma(qv_load(y + k), av, qv_load(x + k)));
    for (; k < n; k++) y[k] += a * x[k];
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

void qw_f16_to_f32_array(const uint16_t *src, float *dst, size_t n) {
    size_t i = 0;
#if defined(QW_WASM_SIMD)
    for (; i + 8 <= n; i += 8) {
        v128_t lo, hi;
        qw_f16x8_full(wasm_v128_load(src + i), &lo, &hi);
        wasm_v128_store(dst + i, lo);
        wasm_v128_store(dst + i + 4, hi);
    }
#elif defined(QW_AVX2)
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + i))));
#endif
    for (; i < n; i++) dst[i] = qw_f16_to_f32(src[i]);
}

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

/* ---- attention ---------------------------------------------------------------------------------- */

size_t qw_attention_work_size(const qw_pool *pool, int max_seq) {
    return (size_t)qw_pool_threads(pool) * (size_t)(max_seq + 16) * sizeof(float);
}

typedef struct {
    const float *q, *k, *v;
    float *out, *work;
    int n_q, n_heads, n_kv, hd, max_seq, pos0;
    float scale;
} attn_task;

static void attn_run(void *p, int ith, int nth) {
    const attn_task *t = p;
    const int group = t->n_heads / t->n_kv, total = t->n_q * t->n_heads;
    float *sc = t->work + (size_t)ith * (t->max_seq + 16);
    int lo, hi;
    qw_split(total, ith, nth, 1, &lo, &hi);
    for (int i = lo; i < hi; i++) {
        int tq = i / t->n_heads, h = i % t->n_heads;
        const float *qv = t->q + (size_t)i * t->hd;
        const float *kc = t->k + (size_t)(h / group) * t->max_seq * t->hd;
        const float *vc = t->v + (size_t)(h / group) * t->max_seq * t->hd;
        int len = t->pos0 + tq + 1;
        for (int j = 0; j < len; j++) sc[j] = qw_dot_f32(qv, kc + (size_t)j * t->hd, t->hd) * t->scale;
        qw_softmax_f32(sc, len);
        float *o = t->out + (size_t)i * t->hd;
        for (int d = 0; d < t->hd; d++) o[d] = 0.0f;
        for (int j = 0; j < len; j++) axpy(o, sc[j], vc + (size_t)j * t->hd, t->hd);
    }
}

void qw_attention_gqa(qw_pool *pool, const float *q, int n_q, int n_heads, int n_kv_heads, int head_dim,
                      const float *k_cache, const float *v_cache, int max_seq, int pos0, float scale,
                      float *out, float *work) {
    attn_task t = {q, k_cache, v_cache, out, work, n_q, n_heads, n_kv_heads, head_dim, max_seq, pos0, scale};
    qw_pool_run(pool, attn_run, &t);
}

void qw_weighted_rows_f32(const float *p, int n, const float *rows, size_t ld, int D, float *out) {
    for (int e = 0; e < D; e++) out[e] = 0;
    for (int i = 0; i < n; i++) {
        if (p[i] == 0) continue; /* masked keys: exp underflowed to exactly 0 */
        const float *r = rows + (size_t)i * ld;
        for (int e = 0; e < D; e++) out[e] += p[i] * r[e];
    }
}
