/* qw_kernels_ref.c - plain scalar references for every kernel in qw_kernels.h.
 * Written for clarity, not speed: the tests compare the SIMD/threaded kernels against these, and the
 * fast kernels' scalar tails follow the same formulas. */
#include <math.h>

#include "qw_kernels_impl.h"

static inline int qw_q4_zp(const qw_q4w *w, int n, int b) {
    if (!w->zp) return 8;
    uint8_t z = w->zp[(size_t)n * ((w->n_blocks + 1) / 2) + b / 2];
    return (b & 1) ? (z >> 4) : (z & 15);
}

static inline int qw_q4_get(const qw_q4w *w, int n, int k) {
    uint8_t byte = w->q[(size_t)n * w->n_blocks * (w->block / 2) + k / 2];
    return (k & 1) ? (byte >> 4) : (byte & 15);
}

void qw_q4_matmul_ref(const qw_q4w *w, const float *x, int M, const float *bias, float *y) {
    for (int m = 0; m < M; m++)
        for (int n = 0; n < w->N; n++) {
            float acc = 0.0f;
            for (int k = 0; k < w->K; k++) {
                int b = k / w->block;
                float wv = (float)(qw_q4_get(w, n, k) - qw_q4_zp(w, n, b)) * w->scales[(size_t)n * w->n_blocks + b];
                acc += x[(size_t)m * w->K + k] * wv;
            }
            y[(size_t)m * w->N + n] = acc + (bias ? bias[n] : 0.0f);
        }
}

/* onnxruntime MLAS CompInt8: per block, inverse scale 127/amax (0 for an all-zero block), round half to
 * even, scale amax/127; the block's integer dot product times both scales, summed in fp32. */
void qw_q4_matmul_q8_ref(const qw_q4w *w, const float *x, int M, const float *bias, float *y) {
    for (int m = 0; m < M; m++) {
        const float *xr = x + (size_t)m * w->K;
        for (int n = 0; n < w->N; n++) {
            float acc = 0.0f;
            for (int b = 0; b < w->n_blocks; b++) {
                int k0 = b * w->block, k1 = QW_MIN(k0 + w->block, w->K);
                float amax = 0.0f;
                for (int k = k0; k < k1; k++) amax = fmaxf(amax, fabsf(xr[k]));
                float d = amax / 127.0f, id = amax != 0.0f ? 127.0f / amax : 0.0f;
                int32_t dot = 0;
                int zp = qw_q4_zp(w, n, b);
                for (int k = k0; k < k1; k++) {
                    int32_t qa = (int32_t)nearbyintf(xr[k] * id);
                    dot += qa * (qw_q4_get(w, n, k) - zp);
                }
                acc += (float)dot * (d * w->scales[(size_t)n * w->n_blocks + b]);
            }
            y[(size_t)m * w->N + n] = acc + (bias ? bias[n] : 0.0f);
        }
    }
}

void qw_q8act_quantize_ref(qw_q8act *a, const float *x, int K, int m0, int m1) {
    const int G = QW_MIN(a->block, 32);
    for (int m = m0; m < m1; m++) {
        const float *xr = x + (size_t)m * K;
        int8_t *q = a->q + (size_t)m * a->kp;
        for (int b = 0; b < a->n_blocks; b++) {
            int k0 = b * a->block, k1 = QW_MIN(k0 + a->block, K);
            float amax = 0.0f;
            for (int k = k0; k < k1; k++) amax = fmaxf(amax, fabsf(xr[k]));
            float id = amax != 0.0f ? 127.0f / amax : 0.0f;
            int32_t s = 0;
            for (int j = 0; j < a->block; j++) {
                int k = k0 + j;
                int v = k < k1 ? (int)nearbyintf(xr[k] * id) : 0;
                int g = j / G * G, i = j - g; /* position inside the group: evens first, then odds */
                q[k0 + g + (i & 1) * (G / 2) + i / 2] = (int8_t)v;
                s += v;
            }
            a->d[(size_t)m * a->n_blocks + b] = amax / 127.0f;
            a->s[(size_t)m * a->n_blocks + b] = s;
        }
    }
}

void qw_gemm_f32_ref(int M, int N, int K, const float *A, int lda, const float *B, int ldb, int trans_b, float *C,
                     int ldc) {
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            float acc = 0.0f;
            for (int k = 0; k < K; k++)
                acc += A[(size_t)m * lda + k] * (trans_b ? B[(size_t)n * ldb + k] : B[(size_t)k * ldb + n]);
            C[(size_t)m * ldc + n] = acc;
        }
}

void qw_gemm_f16b_ref(int M, int N, int K, const float *A, int lda, const uint16_t *B, int ldb, int trans_b, float *C,
                      int ldc) {
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            float acc = 0.0f;
            for (int k = 0; k < K; k++)
                acc += A[(size_t)m * lda + k] *
                       qw_f16_to_f32(trans_b ? B[(size_t)n * ldb + k] : B[(size_t)k * ldb + n]);
            C[(size_t)m * ldc + n] = acc;
        }
}

/* element e of cache row t of kv head hk (which 0: keys, 1: values) as fp32 */
static float kv_elem(const qw_attn *a, int which, int hk, int t, int e) {
    size_t i = ((size_t)hk * (size_t)a->cap + (size_t)t) * (size_t)a->head_dim + (size_t)e;
    const void *b = which ? a->v : a->k;
    if (a->kv_dtype == QW_KV_F32) return ((const float *)b)[i];
    if (a->kv_dtype == QW_KV_F16) return qw_f16_to_f32(((const uint16_t *)b)[i]);
    return (float)((const int8_t *)b)[i] * (which ? a->v_scale : a->k_scale)[(size_t)hk * (size_t)a->cap + (size_t)t];
}

void qw_attn_ref(const qw_attn *a, float *scores) {
    const int group = a->n_heads / a->n_kv_heads, D = a->head_dim;
    for (int h = 0; h < a->n_heads; h++)
        for (int s = 0; s < a->n_q; s++) {
            const float *q = a->q + h * a->q_hs + s * a->q_ss;
            int hk = h / group, n = a->past >= 0 ? a->past + s + 1 : a->n_keys;
            if (n > a->n_keys) n = a->n_keys;
            int first = a->window > 0 && n - a->window > 0 ? n - a->window : 0;
            for (int t = 0; t < first; t++) scores[t] = -INFINITY;
            int16_t qi[256];
            float qs = 0;
            const int iq = qw_attn_int_keys(a) && qw_attn_quant_q16(q, D, qi, &qs);
            for (int t = first; t < n; t++) {
                float d = 0;
                if (iq) { /* int8 keys: the integer dot product (qw_attn_int_keys) */
                    const size_t row = (size_t)hk * (size_t)a->cap + (size_t)t;
                    int32_t is = 0;
                    for (int e = 0; e < D; e++)
                        is += (int32_t)qi[e] * ((const int8_t *)a->k)[row * (size_t)D + (size_t)e];
                    d = (float)is * (qs * a->k_scale[row]);
                } else
                    for (int e = 0; e < D; e++) d += q[e] * kv_elem(a, 0, hk, t, e);
                if (a->round_qk) d = qw_round_f16(d);
                d = a->div ? d / a->scale : d * a->scale;
                if (a->round_scaled) d = qw_round_f16(d);
                if (a->softcap > 0) d = a->softcap * tanhf(d / a->softcap);
                if (a->mask) d += a->mask[h * a->m_hs + s * a->m_ss + t * a->m_ts];
                if (a->kmask) d += a->kmask[t];
                if (a->round_masked) d = qw_round_f16(d);
                scores[t] = d;
            }
            qw_softmax_f32(scores, n);
            if (a->round_probs)
                for (int t = 0; t < n; t++) scores[t] = qw_round_f16(scores[t]);
            float *o = a->out + h * a->o_hs + s * a->o_ss;
            for (int e = 0; e < D; e++) {
                float acc = 0;
                for (int t = 0; t < n; t++) acc += scores[t] * kv_elem(a, 1, hk, t, e);
                o[e] = acc;
            }
        }
}
