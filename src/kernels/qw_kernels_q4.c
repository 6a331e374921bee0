/* qw_kernels_q4.c - 4-bit block-quantised matrix products (com.microsoft MatMulNBits layout).
 *
 * Two numerics, picked by the node's accuracy_level (see qw_kernels.h):
 *  - qw_q4_matmul     fp32 activations, weights dequantised in registers (accuracy_level 0/1);
 *  - qw_q4_matmul_q8  activations quantised once per call to int8 per weight block, integer dot
 *                     products (accuracy_level 4, as MLAS CompInt8). The fast one.
 * Both split the N output rows across the pool in ranges of QW_ROW_ALIGN rows and handle 4 weight rows
 * at a time, so each activation vector loaded (and for int8 each unpacked weight vector) feeds four
 * independent accumulator chains, and the horizontal sums are paid once per 4 rows at the end. For M > 1
 * (prefill) activations are taken in tiles of QW_M_TILE rows, so the weights of one thread stream from
 * memory once per tile instead of once per token, and the activation tile stays in L2. */
#include <math.h>

#include "qw_kernels_impl.h"

#define QW_M_TILE 32

static inline int q4_zp(const qw_q4w *w, int n, int b) {
    if (!w->zp) return 8;
    uint8_t z = w->zp[(size_t)n * ((w->n_blocks + 1) / 2) + b / 2];
    return (b & 1) ? (z >> 4) : (z & 15);
}
static inline size_t q4_row_bytes(const qw_q4w *w) { return (size_t)w->n_blocks * (w->block / 2); }

/* ================================ int8 activations =========================================== */

static size_t align64(size_t v) { return (v + 63) & ~(size_t)63; }

size_t qw_q8act_size(int M, int K, int block) {
    int nb = (K + block - 1) / block;
    return 64 + align64((size_t)M * nb * block) + align64((size_t)M * nb * 4) * 2;
}

void qw_q8act_init(qw_q8act *a, void *work, int M, int K, int block) {
    uint8_t *p = (uint8_t *)(((uintptr_t)work + 63) & ~(uintptr_t)63);
    a->M = M;
    a->block = block;
    a->n_blocks = (K + block - 1) / block;
    a->kp = a->n_blocks * block;
    a->q = (int8_t *)p;
    p += align64((size_t)M * a->kp);
    a->d = (float *)p;
    p += align64((size_t)M * a->n_blocks * 4);
    a->s = (int32_t *)p;
}

/* Quantisation is O(M K) against the product's O(M N K), but in scalar code it was several % of a prefill
 * step (every MatMulNBits quantises its own input). The SIMD128 version computes the reference's values
 * exactly: the maximum is order-free (pmax keeps the running value when |x| is NaN, like fmaxf), the
 * product x * id is the same fp32 multiply, f32x4.nearest rounds half to even like nearbyintf, and the
 * integers are exact. Full blocks of a multiple of 32 only; the rest (and every other build) is the
 * reference's loop. (Non-finite activations give meaningless int8 values on both paths.) */
void qw_q8act_quantize(qw_q8act *a, const float *x, int K, int m0, int m1) {
#if defined(QW_WASM_SIMD)
    const int B = a->block;
    if (B % 32 == 0) {
        for (int m = m0; m < m1; m++) {
            const float *xr = x + (size_t)m * K;
            int8_t *q = a->q + (size_t)m * a->kp;
            for (int b = 0; b < a->n_blocks; b++) {
                const int k0 = b * B;
                if (k0 + B > K) {
                    qw_q8act_quantize_ref(a, x, K, m, m + 1);
                    goto next_row;
                } /* padded tail */
                v128_t mx = wasm_f32x4_splat(0.0f);
                for (int k = 0; k < B; k += 4) mx = wasm_f32x4_pmax(mx, wasm_f32x4_abs(wasm_v128_load(xr + k0 + k)));
                mx = wasm_f32x4_pmax(mx, wasm_i32x4_shuffle(mx, mx, 2, 3, 0, 1));
                mx = wasm_f32x4_pmax(mx, wasm_i32x4_shuffle(mx, mx, 1, 0, 3, 2));
                const float amax = wasm_f32x4_extract_lane(mx, 0);
                const v128_t id = wasm_f32x4_splat(amax != 0.0f ? 127.0f / amax : 0.0f);
                v128_t sum = wasm_i32x4_splat(0);
                for (int g = 0; g < B; g += 32) {
                    v128_t i32[8];
                    for (int i = 0; i < 8; i++) {
                        i32[i] = wasm_i32x4_trunc_sat_f32x4(
                            wasm_f32x4_nearest(wasm_f32x4_mul(wasm_v128_load(xr + k0 + g + 4 * i), id)));
                        sum = wasm_i32x4_add(sum, i32[i]);
                    }
                    v128_t lo = wasm_i8x16_narrow_i16x8(wasm_i16x8_narrow_i32x4(i32[0], i32[1]),
                                                        wasm_i16x8_narrow_i32x4(i32[2], i32[3]));
                    v128_t hi = wasm_i8x16_narrow_i16x8(wasm_i16x8_narrow_i32x4(i32[4], i32[5]),
                                                        wasm_i16x8_narrow_i32x4(i32[6], i32[7]));
                    /* the group's even elements, then its odd ones (qw_q8act) */
                    wasm_v128_store(q + k0 + g, wasm_i8x16_shuffle(lo, hi, 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22,
                                                                   24, 26, 28, 30));
                    wasm_v128_store(q + k0 + g + 16, wasm_i8x16_shuffle(lo, hi, 1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21,
                                                                        23, 25, 27, 29, 31));
                }
                sum = wasm_i32x4_add(sum, wasm_i32x4_shuffle(sum, sum, 2, 3, 0, 1));
                sum = wasm_i32x4_add(sum, wasm_i32x4_shuffle(sum, sum, 1, 0, 3, 2));
                a->d[(size_t)m * a->n_blocks + b] = amax / 127.0f;
                a->s[(size_t)m * a->n_blocks + b] = wasm_i32x4_extract_lane(sum, 0);
            }
        next_row:;
        }
        return;
    }
#endif
    qw_q8act_quantize_ref(a, x, K, m0, m1);
}

size_t qw_q4_matmul_q8_work_size(const qw_q4w *w, int M) { return qw_q8act_size(M, w->K, w->block); }

/* Four rows of W times one int8 activation row: out[r] = sum over blocks of d_w d_x (dot - zp * s). */
static void q8_dot4(const qw_q4w *w, const int n[4], const qw_q8act *a, int m, float out[4]) {
    const int nb = w->n_blocks, B = w->block;
    const size_t rb = q4_row_bytes(w);
    const uint8_t *qr[4];
    const float *sc[4];
    for (int r = 0; r < 4; r++) {
        qr[r] = w->q + (size_t)n[r] * rb;
        sc[r] = w->scales + (size_t)n[r] * nb;
    }
    const int8_t *qa = a->q + (size_t)m * a->kp;
    const float *da = a->d + (size_t)m * nb;
    const int32_t *sa = a->s + (size_t)m * nb;
#if defined(QW_WASM_SIMD) || defined(QW_AVX2)
    if (B >= 32) {
#if defined(QW_WASM_SIMD)
        v128_t acc = wasm_f32x4_splat(0); /* [r0 r1 r2 r3] */
        const v128_t m4 = wasm_i8x16_splat(15);
        for (int b = 0; b < nb; b++) {
            const int8_t *xb = qa + (size_t)b * B;
            v128_t bi[4];
            for (int r = 0; r < 4; r++) bi[r] = wasm_i32x4_make(-q4_zp(w, n[r], b) * sa[b], 0, 0, 0);
            for (int g = 0; g < B; g += 32) {
                v128_t xe = wasm_v128_load(xb + g), xo = wasm_v128_load(xb + g + 16);
#if !defined(QW_WASM_RELAXED)
                v128_t xel = wasm_i16x8_extend_low_i8x16(xe), xeh = wasm_i16x8_extend_high_i8x16(xe);
                v128_t xol = wasm_i16x8_extend_low_i8x16(xo), xoh = wasm_i16x8_extend_high_i8x16(xo);
#endif
                for (int r = 0; r < 4; r++) {
                    v128_t v = wasm_v128_load(qr[r] + (size_t)b * (B / 2) + g / 2);
                    v128_t lo = wasm_v128_and(v, m4), hi = wasm_u8x16_shr(v, 4);
#if defined(QW_WASM_RELAXED)
                    /* Nibbles 0..15 are valid i7 operands; a lane holds 4 products <= 4*15*128. */
                    v128_t s16 = wasm_i16x8_add(
                        (v128_t)__builtin_wasm_relaxed_dot_i8x16_i7x16_s_i16x8((__i8x16)xe, (__i8x16)lo),
                        (v128_t)__builtin_wasm_relaxed_dot_i8x16_i7x16_s_i16x8((__i8x16)xo, (__i8x16)hi));
                    bi[r] = wasm_i32x4_add(bi[r], wasm_i32x4_extadd_pairwise_i16x8(s16));
#else
                    v128_t p = wasm_i32x4_add(wasm_i32x4_dot_i16x8(wasm_u16x8_extend_low_u8x16(lo), xel),
                                              wasm_i32x4_dot_i16x8(wasm_u16x8_extend_high_u8x16(lo), xeh));
                    v128_t q = wasm_i32x4_add(wasm_i32x4_dot_i16x8(wasm_u16x8_extend_low_u8x16(hi), xol),
                                              wasm_i32x4_dot_i16x8(wasm_u16x8_extend_high_u8x16(hi), xoh));
                    bi[r] = wasm_i32x4_add(bi[r], wasm_i32x4_add(p, q));
#endif
                }
            }
            /* the reference's float arithmetic: acc += (float)dot * (d_x * d_w), block after block */
            v128_t d = wasm_f32x4_make(da[b] * sc[0][b], da[b] * sc[1][b], da[b] * sc[2][b], da[b] * sc[3][b]);
            acc = wasm_f32x4_add(acc,
                                 wasm_f32x4_mul(wasm_f32x4_convert_i32x4(hsum4_i32(bi[0], bi[1], bi[2], bi[3])), d));
        }
        wasm_v128_store(out, acc);
#else /* AVX2 */
        __m128 acc = _mm_setzero_ps(); /* [r0 r1 r2 r3] */
        const __m256i m4 = _mm256_set1_epi8(15), ones = _mm256_set1_epi16(1);
        for (int b = 0; b < nb; b++) {
            const int8_t *xb = qa + (size_t)b * B;
            __m256i bi[4];
            for (int r = 0; r < 4; r++) bi[r] = _mm256_setr_epi32(-q4_zp(w, n[r], b) * sa[b], 0, 0, 0, 0, 0, 0, 0);
            for (int g = 0; g < B; g += 32) {
                __m256i xv = _mm256_loadu_si256((const __m256i *)(xb + g)); /* [evens | odds] */
                for (int r = 0; r < 4; r++) {
                    __m128i v = _mm_loadu_si128((const __m128i *)(qr[r] + (size_t)b * (B / 2) + g / 2));
                    __m256i nib = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(v, 4), v), m4);
                    /* u8 x s8 pairs into i16 (<= 2*15*128, no saturation), then pairs into i32 */
                    bi[r] = _mm256_add_epi32(bi[r], _mm256_madd_epi16(_mm256_maddubs_epi16(nib, xv), ones));
                }
            }
            /* the reference's float arithmetic: acc += (float)dot * (d_x * d_w), block after block */
            __m128 d = _mm_setr_ps(da[b] * sc[0][b], da[b] * sc[1][b], da[b] * sc[2][b], da[b] * sc[3][b]);
            acc = _mm_add_ps(acc, _mm_mul_ps(_mm_cvtepi32_ps(hsum4_i32(bi[0], bi[1], bi[2], bi[3])), d));
        }
        _mm_storeu_ps(out, acc);
#endif
        return;
    }
#endif
    /* scalar (and block 16): the reference formula on the permuted activations */
    const int G = QW_MIN(B, 32);
    for (int r = 0; r < 4; r++) {
        float accr = 0.0f;
        for (int b = 0; b < nb; b++) {
            int32_t dot = -q4_zp(w, n[r], b) * sa[b];
            const uint8_t *qb = qr[r] + (size_t)b * (B / 2);
            const int8_t *xb = qa + (size_t)b * B;
            for (int g = 0; g < B; g += G)
                for (int i = 0; i < G / 2; i++) {
                    uint8_t v = qb[g / 2 + i];
                    dot += (v & 15) * xb[g + i] + (v >> 4) * xb[g + G / 2 + i];
                }
            accr += (float)dot * (da[b] * sc[r][b]);
        }
        out[r] = accr;
    }
}

typedef struct {
    const qw_kernel_table *kt; /* the packed layout's tiles */
    const qw_q4w *w;
    const float *x;
    const float *bias;
    float *y;
    qw_q8act act;
    int M;
} q8_task;

static void q8_quant_task(void *p, int ith, int nth) {
    q8_task *t = p;
    int lo, hi;
    qw_split(t->M, ith, nth, 1, &lo, &hi);
    if (lo < hi) qw_q8act_quantize(&t->act, t->x, t->w->K, lo, hi);
}

static void q8_mm_task(void *p, int ith, int nth) {
    q8_task *t = p;
    const qw_q4w *w = t->w;
    if (w->packed) {
        qw_q4_matmul_q8_packed_task(t->kt, w, &t->act, t->M, t->bias, t->y, ith, nth);
        return;
    }
    int lo, hi;
    qw_split(w->N, ith, nth, QW_ROW_ALIGN, &lo, &hi);
    for (int m0 = 0; m0 < t->M; m0 += QW_M_TILE) {
        int m1 = QW_MIN(m0 + QW_M_TILE, t->M);
        for (int n0 = lo; n0 < hi; n0 += 4) {
            /* rows past the range repeat the last row; their results are dropped */
            int n[4];
            for (int r = 0; r < 4; r++) n[r] = QW_MIN(n0 + r, hi - 1);
            for (int m = m0; m < m1; m++) {
                float o[4];
                q8_dot4(w, n, &t->act, m, o);
                float *yr = t->y + (size_t)m * w->N;
                for (int r = 0; r < 4 && n0 + r < hi; r++) yr[n0 + r] = o[r] + (t->bias ? t->bias[n0 + r] : 0.0f);
            }
        }
    }
}

void qw_q4_matmul_q8(qw_pool *pool, const qw_q4w *w, const float *x, int M, const float *bias, float *y, void *work) {
    qw_q4_matmul_q8_with(qw_kernels(), pool, w, x, M, bias, y, work);
}

void qw_q4_matmul_q8_with(const qw_kernel_table *kt, qw_pool *pool, const qw_q4w *w, const float *x, int M,
                          const float *bias, float *y, void *work) {
    q8_task t = {kt, w, x, bias, y, {0}, M};
    qw_q8act_init(&t.act, work, M, w->K, w->block);
    if (M == 1)
        q8_quant_task(&t, 0, 1); /* not worth a dispatch */
    else
        qw_pool_run(pool, q8_quant_task, &t);
    qw_pool_run(pool, q8_mm_task, &t);
}

/* ================================ fp32 activations =========================================== */

/* One row of W times one activation row; the block's partial sum is scaled once per block. */
static float f32_dot1(const qw_q4w *w, int n, const float *x) {
    const int nb = w->n_blocks, B = w->block, K = w->K;
    const uint8_t *qr = w->q + (size_t)n * q4_row_bytes(w);
    const float *sc = w->scales + (size_t)n * nb;
    float acc = 0.0f;
    int b = 0;
#if defined(QW_WASM_SIMD)
    v128_t accv = wasm_f32x4_splat(0);
    const v128_t m4 = wasm_i8x16_splat(15);
    for (; B >= 32 && b < nb && (b + 1) * B <= K; b++) {
        const v128_t zp = wasm_i8x16_splat((int8_t)q4_zp(w, n, b));
        v128_t s = wasm_f32x4_splat(0), s2 = wasm_f32x4_splat(0);
        const float *xb = x + (size_t)b * B;
        for (int g = 0; g < B; g += 32) {
            v128_t v = wasm_v128_load(qr + (size_t)b * (B / 2) + g / 2);
            v128_t lo = wasm_v128_and(v, m4), hi = wasm_u8x16_shr(v, 4);
            /* back to natural order, then signed q - zp in -15..15 */
            v128_t a0 = wasm_i8x16_sub(
                wasm_i8x16_shuffle(lo, hi, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23), zp);
            v128_t a1 = wasm_i8x16_sub(
                wasm_i8x16_shuffle(lo, hi, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31), zp);
            v128_t h0 = wasm_i16x8_extend_low_i8x16(a0), h1 = wasm_i16x8_extend_high_i8x16(a0);
            v128_t h2 = wasm_i16x8_extend_low_i8x16(a1), h3 = wasm_i16x8_extend_high_i8x16(a1);
            const float *xg = xb + g;
            s = qv_fma(s, wasm_f32x4_convert_i32x4(wasm_i32x4_extend_low_i16x8(h0)), wasm_v128_load(xg + 0));
            s2 = qv_fma(s2, wasm_f32x4_convert_i32x4(wasm_i32x4_extend_high_i16x8(h0)), wasm_v128_load(xg + 4));
            s = qv_fma(s, wasm_f32x4_convert_i32x4(wasm_i32x4_extend_low_i16x8(h1)), wasm_v128_load(xg + 8));
            s2 = qv_fma(s2, wasm_f32x4_convert_i32x4(wasm_i32x4_extend_high_i16x8(h1)), wasm_v128_load(xg + 12));
            s = qv_fma(s, wasm_f32x4_convert_i32x4(wasm_i32x4_extend_low_i16x8(h2)), wasm_v128_load(xg + 16));
            s2 = qv_fma(s2, wasm_f32x4_convert_i32x4(wasm_i32x4_extend_high_i16x8(h2)), wasm_v128_load(xg + 20));
            s = qv_fma(s, wasm_f32x4_convert_i32x4(wasm_i32x4_extend_low_i16x8(h3)), wasm_v128_load(xg + 24));
            s2 = qv_fma(s2, wasm_f32x4_convert_i32x4(wasm_i32x4_extend_high_i16x8(h3)), wasm_v128_load(xg + 28));
        }
        accv = qv_fma(accv, wasm_f32x4_add(s, s2), wasm_f32x4_splat(sc[b]));
    }
    acc = qv_hsum(accv);
#elif defined(QW_AVX2)
    __m256 accv = _mm256_setzero_ps();
    const __m128i m4 = _mm_set1_epi8(15);
    for (; B >= 32 && b < nb && (b + 1) * B <= K; b++) {
        const __m128i zp = _mm_set1_epi8((char)q4_zp(w, n, b));
        __m256 s = _mm256_setzero_ps(), s2 = _mm256_setzero_ps();
        const float *xb = x + (size_t)b * B;
        for (int g = 0; g < B; g += 32) {
            __m128i v = _mm_loadu_si128((const __m128i *)(qr + (size_t)b * (B / 2) + g / 2));
            __m128i lo = _mm_and_si128(v, m4), hi = _mm_and_si128(_mm_srli_epi16(v, 4), m4);
            __m128i a0 = _mm_sub_epi8(_mm_unpacklo_epi8(lo, hi), zp);
            __m128i a1 = _mm_sub_epi8(_mm_unpackhi_epi8(lo, hi), zp);
            const float *xg = xb + g;
            s = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(a0)), _mm256_loadu_ps(xg), s);
            s2 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(a0, 8))),
                                 _mm256_loadu_ps(xg + 8), s2);
            s = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(a1)), _mm256_loadu_ps(xg + 16), s);
            s2 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(a1, 8))),
                                 _mm256_loadu_ps(xg + 24), s2);
        }
        accv = _mm256_fmadd_ps(_mm256_add_ps(s, s2), _mm256_set1_ps(sc[b]), accv);
    }
    acc = qv_hsum(accv);
#endif
    /* scalar tail: remaining blocks (the partial last block, or everything without SIMD) */
    for (; b < nb; b++) {
        int zp = q4_zp(w, n, b), k0 = b * B, k1 = QW_MIN(k0 + B, K);
        float s = 0.0f;
        for (int k = k0; k < k1; k++) {
            uint8_t v = qr[k / 2];
            s += x[k] * (float)(((k & 1) ? (v >> 4) : (v & 15)) - zp);
        }
        acc += s * sc[b];
    }
    return acc;
}

/* Prefill: a tile of 4 weight rows x QW_KC columns is dequantised once into fp32 on the stack and
 * then multiplied with every activation row of the M tile (weights reused M times, x reused 4 times). */
#define QW_KC 256
typedef struct {
    const qw_q4w *w;
    const float *x;
    const float *bias;
    float *y;
    int M;
} f32_task;

static void f32_mm_task(void *p, int ith, int nth) {
    f32_task *t = p;
    const qw_q4w *w = t->w;
    const int K = w->K, N = w->N;
    int lo, hi;
    qw_split(N, ith, nth, QW_ROW_ALIGN, &lo, &hi);
    if (t->M == 1) {
        for (int n = lo; n < hi; n++) t->y[n] = f32_dot1(w, n, t->x) + (t->bias ? t->bias[n] : 0.0f);
        return;
    }
    _Alignas(64) float tile[4][QW_KC];
    const size_t rb = q4_row_bytes(w);
    for (int m0 = 0; m0 < t->M; m0 += QW_M_TILE) {
        int m1 = QW_MIN(m0 + QW_M_TILE, t->M);
        for (int n0 = lo; n0 < hi; n0 += 4) {
            int nr = QW_MIN(4, hi - n0);
            for (int m = m0; m < m1; m++)
                for (int r = 0; r < nr; r++) t->y[(size_t)m * N + n0 + r] = t->bias ? t->bias[n0 + r] : 0.0f;
            for (int k0 = 0; k0 < K; k0 += QW_KC) {
                int kc = QW_MIN(QW_KC, K - k0);
                for (int r = 0; r < 4; r++) {
                    int n = QW_MIN(n0 + r, hi - 1);
                    const uint8_t *qr = w->q + (size_t)n * rb;
                    for (int k = k0; k < k0 + kc; k++) {
                        int b = k / w->block;
                        uint8_t v = qr[k / 2];
                        tile[r][k - k0] = (float)(((k & 1) ? (v >> 4) : (v & 15)) - q4_zp(w, n, b)) *
                                          w->scales[(size_t)n * w->n_blocks + b];
                    }
                }
                for (int m = m0; m < m1; m++) {
                    const float *xr = t->x + (size_t)m * K + k0;
                    qv_f32 a0 = qv_zero(), a1 = qv_zero(), a2 = qv_zero(), a3 = qv_zero();
                    int k = 0;
                    for (; k + QV_W <= kc; k += QV_W) {
                        qv_f32 xv = qv_load(xr + k);
                        a0 = qv_fma(a0, xv, qv_load(&tile[0][k]));
                        a1 = qv_fma(a1, xv, qv_load(&tile[1][k]));
                        a2 = qv_fma(a2, xv, qv_load(&tile[2][k]));
                        a3 = qv_fma(a3, xv, qv_load(&tile[3][k]));
                    }
                    float s[4] = {qv_hsum(a0), qv_hsum(a1), qv_hsum(a2), qv_hsum(a3)};
                    for (; k < kc; k++)
                        for (int r = 0; r < 4; r++) s[r] += xr[k] * tile[r][k];
                    for (int r = 0; r < nr; r++) t->y[(size_t)m * N + n0 + r] += s[r];
                }
            }
        }
    }
}

void qw_q4_matmul(qw_pool *pool, const qw_q4w *w, const float *x, int M, const float *bias, float *y) {
    f32_task t = {w, x, bias, y, M};
    qw_pool_run(pool, f32_mm_task, &t);
}
