/* qw_kernels_attn.c - attention over a KV cache (qw_attn_run, see qw_kernels.h): the one implementation for
 * decode steps and prefill chunks, any query layout (strides), fp32 / fp16 / int8 cache rows.
 *
 * Tiled: a task is the query rows that share one kv head (the heads of a GQA group x a block of positions);
 * keys and values are visited in tiles of ATT_TK rows, converted to fp32 once per tile into the thread's buffer
 * (32 KB at head_dim 128, L1-resident; in wasm fp16 rows without the conversion's multiply, see raw_query) and
 * used by every row of the task, so a kv head's cache is read once per task instead of once per query head; two
 * rows share each key load (dot4x2), three each value load (acc_rows3). Scores are kept per row (T floats) so the
 * softmax is the exact two-pass one of the decomposed graph (max, exp, sum, with its fp16 roundings where the graph
 * stores fp16): the result equals qw_attn_ref up to the fp32 summation order of the dot products. */
#include <math.h>
#include <stdlib.h>
#include "qw_kernels_impl.h"

#define ATT_TK 64   /* keys per tile */
#define ATT_ROWS 24 /* query rows per task at most (a whole GQA group always fits) */

/* acc + a * b: relaxed SIMD's multiply-add where the build has it (one instruction, fused where the CPU has FMA) */
#if defined(QW_WASM_SIMD) && defined(QW_RELAXED_SIMD)
#define att_fma(acc, a, b) ((v128_t)__builtin_wasm_relaxed_madd_f32x4((__f32x4)(a), (__f32x4)(b), (__f32x4)(acc)))
#else
#define att_fma(acc, a, b) qv_fma((acc), (a), (b))
#endif

/* cache rows t0 .. t0+n-1 of kv head hk as fp32: the rows themselves (fp32 cache) or converted into dst; raw:
 * fp16 rows times 2^-112 (qv_f16_raw_rows: the caller has scaled the other operand by 2^112) */
static const float *kv_rows(const qw_attn *a, const void *base, const float *scales, int hk, int t0, int n, int raw,
                            float *dst) {
    const int D = a->head_dim;
    size_t off = ((size_t)hk * (size_t)a->cap + (size_t)t0) * (size_t)D;
    if (a->kv_dtype == QW_KV_F32) return (const float *)base + off;
    if (a->kv_dtype == QW_KV_F16) {
#if defined(QW_HAVE_F16_RAW_ROWS)
        if (raw) {
            qv_f16_raw_rows((const uint16_t *)base + off, dst, (size_t)n * (size_t)D);
            return dst;
        }
#endif
        (void)raw;
        qv_f16_to_f32_rows((const uint16_t *)base + off, dst, (size_t)n * (size_t)D);
        return dst;
    }
    const int8_t *q = (const int8_t *)base + off;
    const float *sc = scales + (size_t)hk * (size_t)a->cap + (size_t)t0;
    for (int i = 0; i < n; i++) {
        qv_f32 s = qv_set1(sc[i]);
        int d = 0;
#if defined(QW_WASM_SIMD)
        for (; d + 8 <= D; d += 8) {
            v128_t x = wasm_i16x8_load8x8(q + (size_t)i * D + d);
            v128_t lo = wasm_f32x4_convert_i32x4(wasm_i32x4_extend_low_i16x8(x));
            v128_t hi = wasm_f32x4_convert_i32x4(wasm_i32x4_extend_high_i16x8(x));
            wasm_v128_store(dst + (size_t)i * D + d, wasm_f32x4_mul(lo, s));
            wasm_v128_store(dst + (size_t)i * D + d + 4, wasm_f32x4_mul(hi, s));
        }
#endif
        for (; d < D; d++) dst[(size_t)i * D + d] = (float)q[(size_t)i * D + d] * sc[i];
        (void)s;
    }
    return dst;
}

/* keys query row s sees */
static int row_keys(const qw_attn *a, int s) {
    int n = a->past >= 0 ? a->past + s + 1 : a->n_keys;
    return n < a->n_keys ? n : a->n_keys;
}

/* brings the tile of cache rows from t0 (of the first kmax) of kv head hk toward the caches (qw_touch) before its
 * turn: at long context a decode step reads every layer's cache from DRAM (115 MB of fp16 rows at 4096 positions
 * on the 1.5B) */
static void kv_touch(const qw_attn *a, const void *base, int hk, int t0, int kmax, unsigned *sink) {
    const int n = kmax - t0 < ATT_TK ? kmax - t0 : ATT_TK;
    if (n <= 0) return;
    const size_t esz = a->kv_dtype == QW_KV_F32 ? 4 : a->kv_dtype == QW_KV_F16 ? 2 : 1;
    size_t off = ((size_t)hk * (size_t)a->cap + (size_t)t0) * (size_t)a->head_dim;
    qw_touch((const uint8_t *)base + off * esz, (size_t)n * (size_t)a->head_dim * esz, sink);
}

/* o[j] = qv_hsum(c_j) for j < 4: in wasm the four reductions share their shuffles (9 operations, not 20, then one
 * store), adding the same lanes in the same order as qv_hsum, so the same bits */
static inline void hsum4(float *o, qv_f32 c0, qv_f32 c1, qv_f32 c2, qv_f32 c3) {
#if defined(QW_WASM_SIMD)
    v128_t s01 = wasm_f32x4_add(wasm_i32x4_shuffle(c0, c1, 0, 4, 1, 5), wasm_i32x4_shuffle(c0, c1, 2, 6, 3, 7));
    v128_t s23 = wasm_f32x4_add(wasm_i32x4_shuffle(c2, c3, 0, 4, 1, 5), wasm_i32x4_shuffle(c2, c3, 2, 6, 3, 7));
    wasm_v128_store(o,
                    wasm_f32x4_add(wasm_i32x4_shuffle(s01, s23, 0, 1, 4, 5), wasm_i32x4_shuffle(s01, s23, 2, 3, 6, 7)));
#else
    o[0] = qv_hsum(c0), o[1] = qv_hsum(c1), o[2] = qv_hsum(c2), o[3] = qv_hsum(c3);
#endif
}

/* o[j] = q . k_j for the 4 rows k_j = k + j * D */
static void dot4(const float *q, const float *k, int D, float *o) {
    qv_f32 c0 = qv_zero(), c1 = qv_zero(), c2 = qv_zero(), c3 = qv_zero();
    int d = 0;
    for (; d + QV_W <= D; d += QV_W) {
        qv_f32 x = qv_load(q + d);
        c0 = att_fma(c0, x, qv_load(k + d));
        c1 = att_fma(c1, x, qv_load(k + D + d));
        c2 = att_fma(c2, x, qv_load(k + 2 * D + d));
        c3 = att_fma(c3, x, qv_load(k + 3 * D + d));
    }
    hsum4(o, c0, c1, c2, c3);
    for (; d < D; d++) {
        o[0] += q[d] * k[d];
        o[1] += q[d] * k[D + d];
        o[2] += q[d] * k[2 * D + d];
        o[3] += q[d] * k[3 * D + d];
    }
}

/* dot4 for two query rows at once: each key vector loaded once for both; each row's sums are dot4's, in its
 * order, so the same bits */
static void dot4x2(const float *q0, const float *q1, const float *k, int D, float *o0, float *o1) {
    qv_f32 a0 = qv_zero(), a1 = qv_zero(), a2 = qv_zero(), a3 = qv_zero();
    qv_f32 b0 = qv_zero(), b1 = qv_zero(), b2 = qv_zero(), b3 = qv_zero();
    int d = 0;
    for (; d + QV_W <= D; d += QV_W) {
        qv_f32 x = qv_load(q0 + d), y = qv_load(q1 + d);
        qv_f32 k0 = qv_load(k + d), k1 = qv_load(k + D + d), k2 = qv_load(k + 2 * D + d), k3 = qv_load(k + 3 * D + d);
        a0 = att_fma(a0, x, k0);
        a1 = att_fma(a1, x, k1);
        a2 = att_fma(a2, x, k2);
        a3 = att_fma(a3, x, k3);
        b0 = att_fma(b0, y, k0);
        b1 = att_fma(b1, y, k1);
        b2 = att_fma(b2, y, k2);
        b3 = att_fma(b3, y, k3);
    }
    if (d < D) { /* D not a multiple of the vector width: the rows one at a time (dot4's scalar tail) */
        dot4(q0, k, D, o0);
        dot4(q1, k, D, o1);
        return;
    }
    hsum4(o0, a0, a1, a2, a3);
    hsum4(o1, b0, b1, b2, b3);
}

/* ---- int8 keys (QW_KV_I8): the scores' dot products in integers. Each query row is quantised to int16
 * (qw_attn_quant_q16: 2^-15 of its largest value, far below the keys' int8 steps) and dotted with the int8 key
 * rows as they are in the cache (no conversion to fp32): i32 sums, exact in any order, so every build's score is
 * the same (float)sum * (q scale * key scale), which qw_attn_ref computes too. */

int qw_attn_int_keys(const qw_attn *a) { return a->kv_dtype == QW_KV_I8 && a->head_dim <= 256; } /* sums < 2^31 */

int qw_attn_quant_q16(const float *x, int D, int16_t *q, float *scale) {
    float amax = 0;
    for (int d = 0; d < D; d++) {
        if (!(fabsf(x[d]) <= 3.0e38f)) return 0; /* Inf / NaN: the float path says what it gives */
        amax = fabsf(x[d]) > amax ? fabsf(x[d]) : amax;
    }
    float inv = amax > 0 ? 32767.0f / amax : 0;
    for (int d = 0; d < D; d++) {
        float v = nearbyintf(x[d] * inv);
        q[d] = (int16_t)(v > 32767 ? 32767 : v < -32767 ? -32767 : v);
    }
    *scale = amax / 32767.0f;
    return 1;
}

static int32_t idot1(const int16_t *q, const int8_t *k, int D) {
    int32_t s = 0;
    for (int d = 0; d < D; d++) s += (int32_t)q[d] * k[d];
    return s;
}

/* o0[j], o1[j] = q0 . k_j, q1 . k_j for the 4 int8 rows k_j = k + j * D */
static void idot4x2(const int16_t *q0, const int16_t *q1, const int8_t *k, int D, int32_t *o0, int32_t *o1) {
#if defined(QW_WASM_SIMD)
    if (D % 16 == 0) {
        v128_t a[4], b[4];
        for (int j = 0; j < 4; j++) a[j] = b[j] = wasm_i32x4_splat(0);
        for (int d = 0; d < D; d += 16) {
            v128_t xl = wasm_v128_load(q0 + d), xh = wasm_v128_load(q0 + d + 8);
            v128_t yl = wasm_v128_load(q1 + d), yh = wasm_v128_load(q1 + d + 8);
            for (int j = 0; j < 4; j++) {
                v128_t kv = wasm_v128_load(k + (size_t)j * D + d);
                v128_t kl = wasm_i16x8_extend_low_i8x16(kv), kh = wasm_i16x8_extend_high_i8x16(kv);
                a[j] = wasm_i32x4_add(a[j], wasm_i32x4_add(wasm_i32x4_dot_i16x8(kl, xl), wasm_i32x4_dot_i16x8(kh, xh)));
                b[j] = wasm_i32x4_add(b[j], wasm_i32x4_add(wasm_i32x4_dot_i16x8(kl, yl), wasm_i32x4_dot_i16x8(kh, yh)));
            }
        }
        for (int j = 0; j < 4; j++) {
            v128_t u = wasm_i32x4_add(a[j], wasm_i32x4_shuffle(a[j], a[j], 2, 3, 0, 1));
            v128_t w = wasm_i32x4_add(b[j], wasm_i32x4_shuffle(b[j], b[j], 2, 3, 0, 1));
            o0[j] = wasm_i32x4_extract_lane(u, 0) + wasm_i32x4_extract_lane(u, 1);
            o1[j] = wasm_i32x4_extract_lane(w, 0) + wasm_i32x4_extract_lane(w, 1);
        }
        return;
    }
#elif defined(QW_AVX2)
    if (D % 16 == 0) {
        __m256i a[4], b[4];
        for (int j = 0; j < 4; j++) a[j] = b[j] = _mm256_setzero_si256();
        for (int d = 0; d < D; d += 16) {
            __m256i x = _mm256_loadu_si256((const __m256i *)(q0 + d)),
                    y = _mm256_loadu_si256((const __m256i *)(q1 + d));
            for (int j = 0; j < 4; j++) {
                __m256i kw = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(k + (size_t)j * D + d)));
                a[j] = _mm256_add_epi32(a[j], _mm256_madd_epi16(kw, x));
                b[j] = _mm256_add_epi32(b[j], _mm256_madd_epi16(kw, y));
            }
        }
        for (int j = 0; j < 4; j++) {
            __m128i u = _mm_add_epi32(_mm256_castsi256_si128(a[j]), _mm256_extracti128_si256(a[j], 1));
            __m128i w = _mm_add_epi32(_mm256_castsi256_si128(b[j]), _mm256_extracti128_si256(b[j], 1));
            u = _mm_add_epi32(u, _mm_shuffle_epi32(u, 0x4e));
            w = _mm_add_epi32(w, _mm_shuffle_epi32(w, 0x4e));
            o0[j] = _mm_cvtsi128_si32(u) + _mm_extract_epi32(u, 1);
            o1[j] = _mm_cvtsi128_si32(w) + _mm_extract_epi32(w, 1);
        }
        return;
    }
#endif
    for (int j = 0; j < 4; j++) o0[j] = idot1(q0, k + (size_t)j * D, D), o1[j] = idot1(q1, k + (size_t)j * D, D);
}

/* the scores of a task's rows over one tile of int8 keys (nt from cache row t0): row r (quantised: qi + r * D,
 * scale qs[r]) into sc + r * ld, two rows at a time over the keys both see */
static void int_key_tile(const qw_attn *a, int hk, int s0, int ns, int rows, int t0, int nt, const int16_t *qi,
                         const float *qs, float *sc, size_t ld) {
    const int D = a->head_dim;
    const int8_t *K = (const int8_t *)a->k + ((size_t)hk * (size_t)a->cap + (size_t)t0) * (size_t)D;
    const float *ks = a->k_scale + (size_t)hk * (size_t)a->cap + (size_t)t0;
    for (int r = 0; r < rows; r++) {
        int n = row_keys(a, s0 + r % ns) - t0, n1 = r + 1 < rows ? row_keys(a, s0 + (r + 1) % ns) - t0 : 0;
        n = n > nt ? nt : n;
        n1 = n1 > nt ? nt : n1;
        float *o = sc + (size_t)r * ld + t0, *o1 = o + ld;
        const int16_t *q = qi + (size_t)r * D, *q1 = q + D;
        int i = 0;
        if (r + 1 < rows) {
            for (; i + 4 <= n && i + 4 <= n1; i += 4) {
                int32_t d0[4], d1[4];
                idot4x2(q, q1, K + (size_t)i * D, D, d0, d1);
                for (int j = 0; j < 4; j++) {
                    o[i + j] = (float)d0[j] * (qs[r] * ks[i + j]);
                    o1[i + j] = (float)d1[j] * (qs[r + 1] * ks[i + j]);
                }
            }
            for (int j = i; j < n1; j++) o1[j] = (float)idot1(q1, K + (size_t)j * D, D) * (qs[r + 1] * ks[j]);
        }
        for (; i < n; i++) o[i] = (float)idot1(q, K + (size_t)i * D, D) * (qs[r] * ks[i]);
        if (r + 1 < rows) r++;
    }
}

/* out(D) += sum over i < n of p[i] * v[i*D ..], keys in order. Zero weights (masked keys) are not skipped: a test
 * per key and output vector cost more than the multiply-adds it saved, and 0 * v adds nothing (as in the
 * reference and onnxruntime's MatMul, an Inf or NaN value row makes the output NaN even at weight 0). */
static void acc_rows(float *out, const float *p, const float *v, int n, int D) {
    int d = 0;
    for (; d + 4 * QV_W <= D; d += 4 * QV_W) {
        qv_f32 a0 = qv_load(out + d), a1 = qv_load(out + d + QV_W), a2 = qv_load(out + d + 2 * QV_W),
               a3 = qv_load(out + d + 3 * QV_W);
        for (int i = 0; i < n; i++) {
            qv_f32 w = qv_set1(p[i]);
            const float *r = v + (size_t)i * D + d;
            a0 = att_fma(a0, w, qv_load(r));
            a1 = att_fma(a1, w, qv_load(r + QV_W));
            a2 = att_fma(a2, w, qv_load(r + 2 * QV_W));
            a3 = att_fma(a3, w, qv_load(r + 3 * QV_W));
        }
        qv_store(out + d, a0);
        qv_store(out + d + QV_W, a1);
        qv_store(out + d + 2 * QV_W, a2);
        qv_store(out + d + 3 * QV_W, a3);
    }
    for (; d < D; d++)
        for (int i = 0; i < n; i++) out[d] += p[i] * v[(size_t)i * D + d];
}

/* acc_rows for three rows over the same n value rows, two output vectors at a time: each value vector loaded once
 * for the three (6 accumulators, 2 values and a weight fit the 16 vector registers with room to spare); each
 * row's accumulation is acc_rows' (keys in order, one multiply-add each), so the same bits */
static void acc_rows3(float *o0, float *o1, float *o2, const float *p0, const float *p1, const float *p2,
                      const float *v, int n, int D) {
    if (D % (4 * QV_W)) { /* acc_rows' scalar tail: one row at a time */
        acc_rows(o0, p0, v, n, D);
        acc_rows(o1, p1, v, n, D);
        acc_rows(o2, p2, v, n, D);
        return;
    }
    for (int d = 0; d < D; d += 2 * QV_W) {
        qv_f32 a0 = qv_load(o0 + d), a1 = qv_load(o0 + d + QV_W), b0 = qv_load(o1 + d), b1 = qv_load(o1 + d + QV_W),
               c0 = qv_load(o2 + d), c1 = qv_load(o2 + d + QV_W);
        for (int i = 0; i < n; i++) {
            const float *r = v + (size_t)i * D + d;
            qv_f32 x0 = qv_load(r), x1 = qv_load(r + QV_W), w = qv_set1(p0[i]);
            a0 = att_fma(a0, w, x0);
            a1 = att_fma(a1, w, x1);
            w = qv_set1(p1[i]);
            b0 = att_fma(b0, w, x0);
            b1 = att_fma(b1, w, x1);
            w = qv_set1(p2[i]);
            c0 = att_fma(c0, w, x0);
            c1 = att_fma(c1, w, x1);
        }
        qv_store(o0 + d, a0);
        qv_store(o0 + d + QV_W, a1);
        qv_store(o1 + d, b0);
        qv_store(o1 + d + QV_W, b1);
        qv_store(o2 + d, c0);
        qv_store(o2 + d + QV_W, c1);
    }
}

/* ---- softmax of a score row: exp vectorised (a scalar expf per score was 1.4 M calls per token at position 4096
 * on the 1.5B) with Cephes' expf polynomial (within 2 ulp of expf); exp of x < -87.3 is exactly 0, as the masked
 * keys' lowest-value scores must give */
#if defined(QW_WASM_SIMD) || defined(QW_AVX2)
#if defined(QW_WASM_SIMD)
#define EV_SPLAT(x) wasm_f32x4_splat(x)
#define EV_MUL wasm_f32x4_mul
#define EV_ADD wasm_f32x4_add
#define EV_SUB wasm_f32x4_sub
static inline v128_t ev_pow2(v128_t fx) {
    return wasm_i32x4_shl(wasm_i32x4_add(wasm_i32x4_trunc_sat_f32x4(fx), wasm_i32x4_splat(127)), 23);
}
#define EV_NEAREST wasm_f32x4_nearest
#define EV_MAX wasm_f32x4_max
#define EV_UNDER(x, lo) wasm_f32x4_lt((x), (lo))
#define EV_ZERO_WHERE(y, m) wasm_v128_andnot((y), (m))
#else
#define EV_SPLAT(x) _mm256_set1_ps(x)
#define EV_MUL _mm256_mul_ps
#define EV_ADD _mm256_add_ps
#define EV_SUB _mm256_sub_ps
static inline __m256 ev_pow2(__m256 fx) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(fx), _mm256_set1_epi32(127)), 23));
}
#define EV_NEAREST(x) _mm256_round_ps((x), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
#define EV_MAX _mm256_max_ps
#define EV_UNDER(x, lo) _mm256_cmp_ps((x), (lo), _CMP_LT_OQ)
#define EV_ZERO_WHERE(y, m) _mm256_andnot_ps((m), (y))
#endif
static inline qv_f32 exp_v(qv_f32 x) {
    const qv_f32 lo = EV_SPLAT(-87.3365f);
    qv_f32 under = EV_UNDER(x, lo);
    x = EV_MAX(x, lo);
    qv_f32 fx = EV_NEAREST(EV_MUL(x, EV_SPLAT(1.44269504088896341f)));
    x = EV_SUB(x, EV_MUL(fx, EV_SPLAT(0.693359375f)));
    x = EV_SUB(x, EV_MUL(fx, EV_SPLAT(-2.12194440e-4f)));
    qv_f32 y = EV_SPLAT(1.9875691500e-4f);
    y = EV_ADD(EV_MUL(y, x), EV_SPLAT(1.3981999507e-3f));
    y = EV_ADD(EV_MUL(y, x), EV_SPLAT(8.3334519073e-3f));
    y = EV_ADD(EV_MUL(y, x), EV_SPLAT(4.1665795894e-2f));
    y = EV_ADD(EV_MUL(y, x), EV_SPLAT(1.6666665459e-1f));
    y = EV_ADD(EV_MUL(y, x), EV_SPLAT(5.0000001201e-1f));
    y = EV_ADD(EV_ADD(EV_MUL(y, EV_MUL(x, x)), x), EV_SPLAT(1.0f));
    y = EV_MUL(y, (qv_f32)ev_pow2(fx));
    return EV_ZERO_WHERE(y, under);
}
#endif

static void softmax_row(float *x, int n) {
    if (n <= 0) return;
    float mx = x[0];
    for (int i = 1; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    float sum = 0.0f;
    int i = 0;
#if defined(QW_WASM_SIMD) || defined(QW_AVX2)
    qv_f32 m = qv_set1(mx), acc = qv_zero();
    for (; i + QV_W <= n; i += QV_W) {
        qv_f32 e = exp_v(qv_add(qv_load(x + i), qv_mul(m, qv_set1(-1.0f))));
        qv_store(x + i, e);
        acc = qv_add(acc, e);
    }
    sum = qv_hsum(acc);
#endif
    for (; i < n; i++) {
        x[i] = expf(x[i] - mx);
        sum += x[i];
    }
    float inv = 1.0f / sum;
    for (i = 0; i < n; i++) x[i] *= inv;
}

/* the raw dot product d of query (h, s) and key t -> the score the softmax takes */
static float finish_score(const qw_attn *a, float d, int h, int s, int t) {
    if (a->round_qk) d = qw_round_f16(d);
    d = a->div ? d / a->scale : d * a->scale;
    if (a->round_scaled) d = qw_round_f16(d);
    if (a->softcap > 0) d = a->softcap * tanhf(d / a->softcap);
    if (a->mask) d += a->mask[h * a->m_hs + s * a->m_ss + t * a->m_ts];
    if (a->kmask) d += a->kmask[t];
    if (a->round_masked) d = qw_round_f16(d);
    return d;
}

/* finish_score over keys first .. n-1 of row (h, s): four or eight at a time where the scores need no per-key
 * scalar work (no softcap; the mask, if any, contiguous over keys), the same operations in the same order, so
 * the same bits; the fp16 roundings were most of the per-score cost as scalar code */
static void finish_row(const qw_attn *a, float *sc, int h, int s, int first, int n) {
    int t = first;
#if defined(QW_WASM_SIMD) || defined(QW_AVX2)
    if (a->softcap <= 0 && (!a->mask || a->m_ts == 1)) {
        const float *m = a->mask ? a->mask + h * a->m_hs + s * a->m_ss : NULL;
        const qv_f32 c = qv_set1(a->scale);
        for (; t + QV_W <= n; t += QV_W) {
            qv_f32 d = qv_load(sc + t);
            if (a->round_qk) d = qv_round_f16(d);
            d = a->div ? qv_div(d, c) : qv_mul(d, c);
            if (a->round_scaled) d = qv_round_f16(d);
            if (m) d = qv_add(d, qv_load(m + t));
            if (a->kmask) d = qv_add(d, qv_load(a->kmask + t));
            if (a->round_masked) d = qv_round_f16(d);
            qv_store(sc + t, d);
        }
    }
#endif
    for (; t < n; t++) sc[t] = finish_score(a, sc[t], h, s, t);
}

/* ---- fp16 rows without the conversion's multiply (QW_HAVE_F16_RAW_ROWS): keys and values as their values times
 * 2^-112, the query rows and the probabilities times 2^112 instead. Both scalings are exact and their products
 * are the same real numbers, so every score and output keeps its bits; only a finite query value of 2^16 or more
 * could overflow, and such a task keeps the plain conversion. */
#define ATT_RAW_UP 0x1p112f

/* q (D) times 2^112 into dst; 0 if a finite value is 2^16 or more */
static int raw_query(const float *q, int D, float *dst) {
    for (int d = 0; d < D; d++) {
        float x = fabsf(q[d]);
        if (x >= 65536.0f && x != INFINITY) return 0; /* (NaN compares false: kept, as NaN * 2^112 is NaN) */
        dst[d] = q[d] * ATT_RAW_UP;
    }
    return 1;
}

static void scale_up(float *x, int n) {
    for (int i = 0; i < n; i++) x[i] *= ATT_RAW_UP;
}

typedef struct att_plan {
    const qw_attn *a;
    int group, qb, n_qb, gs, n_gs; /* positions per block, blocks; heads per part of a group, parts */
    int n_units;
    size_t per_thread; /* floats of work per thread */
    float *work;
} att_plan;

static void plan(const qw_attn *a, int nth, att_plan *p) {
    p->a = a;
    p->group = a->n_heads / a->n_kv_heads;
    p->qb = ATT_ROWS / p->group > 0 ? ATT_ROWS / p->group : 1;
    if (p->qb > a->n_q) p->qb = a->n_q;
    /* enough tasks for every thread: smaller position blocks, then parts of a group */
    while (p->qb > 1 && a->n_kv_heads * ((a->n_q + p->qb - 1) / p->qb) < 2 * nth) p->qb = (p->qb + 1) / 2;
    p->n_qb = (a->n_q + p->qb - 1) / p->qb;
    p->n_gs = 1;
    while (p->n_gs < p->group && a->n_kv_heads * p->n_qb * p->n_gs < nth) p->n_gs++;
    p->gs = (p->group + p->n_gs - 1) / p->n_gs;
    p->n_gs = (p->group + p->gs - 1) / p->gs;
    p->n_units = a->n_kv_heads * p->n_qb * p->n_gs;
    p->per_thread = (size_t)ATT_TK * (size_t)a->head_dim + (size_t)(p->gs * p->qb) * (size_t)(a->n_keys + 4) + 16;
    if (qw_attn_int_keys(a)) /* the task's query rows as int16 and their scales (int8 keys) */
        p->per_thread += (size_t)(p->gs * p->qb) * (size_t)((a->head_dim + 1) / 2 + 1) + 16;
    if (a->kv_dtype == QW_KV_F16) /* the task's query rows times 2^112 (fp16 keys without the multiply) */
        p->per_thread += (size_t)(p->gs * p->qb) * (size_t)a->head_dim;
}

size_t qw_attn_work_size(const qw_attn *a, int nth) {
    att_plan p;
    plan(a, nth, &p);
    return (size_t)nth * p.per_thread * sizeof(float);
}

static void att_task(void *arg, int ith, int nth) {
    const att_plan *p = arg;
    const qw_attn *a = p->a;
    const int D = a->head_dim, T = a->n_keys;
    float *tile = p->work + (size_t)ith * p->per_thread;
    float *scores = tile + (size_t)ATT_TK * D; /* (rows, T + 4) */
    const size_t ld = (size_t)T + 4;
    const int ikeys = qw_attn_int_keys(a);
    float *qsc = scores + (size_t)(p->gs * p->qb) * ld;       /* (rows) int8 keys: the int16 query rows' scales */
    int16_t *qi = (int16_t *)(qsc + (size_t)(p->gs * p->qb)); /* (rows, D) and the rows */
    float *qup = scores + (size_t)(p->gs * p->qb) * ld;       /* (rows, D) fp16 keys: the query rows times 2^112 */
    if (ikeys) qup += (size_t)(p->gs * p->qb) * (size_t)((D + 1) / 2 + 1) + 16;
#if defined(QW_HAVE_F16_RAW_ROWS)
    const int vraw = a->kv_dtype == QW_KV_F16;
#else
    const int vraw = 0;
#endif
    unsigned sink = 0;
    for (int u = ith; u < p->n_units; u += nth) {
        int hk = u / (p->n_qb * p->n_gs), rem = u % (p->n_qb * p->n_gs);
        int s0 = (rem / p->n_gs) * p->qb, h0 = hk * p->group + (rem % p->n_gs) * p->gs;
        int ns = a->n_q - s0 < p->qb ? a->n_q - s0 : p->qb;
        int nh = hk * p->group + p->group - h0 < p->gs ? hk * p->group + p->group - h0 : p->gs;
        int rows = ns * nh, kmax = row_keys(a, s0 + ns - 1);
        int iq = ikeys; /* int8 keys: integer dot products, unless a query row is not finite */
        for (int r = 0; iq && r < rows; r++)
            iq = qw_attn_quant_q16(a->q + (h0 + r / ns) * a->q_hs + (s0 + r % ns) * a->q_ss, D, qi + (size_t)r * D,
                                   &qsc[r]);
        int kraw = vraw; /* fp16 keys times 2^-112, the query rows scaled up */
        for (int r = 0; kraw && r < rows; r++)
            kraw = raw_query(a->q + (h0 + r / ns) * a->q_hs + (s0 + r % ns) * a->q_ss, D, qup + (size_t)r * D);
        /* pass 1: scores of every row, a tile of keys at a time (the next tile touched first; after the last,
         * the first tile of values) */
        for (int t0 = 0; t0 < kmax; t0 += ATT_TK) {
            int nt = kmax - t0 < ATT_TK ? kmax - t0 : ATT_TK;
            if (t0 + ATT_TK < kmax)
                kv_touch(a, a->k, hk, t0 + ATT_TK, kmax, &sink);
            else
                kv_touch(a, a->v, hk, 0, kmax, &sink);
            if (iq) {
                int_key_tile(a, hk, s0, ns, rows, t0, nt, qi, qsc, scores, ld);
                continue;
            }
            const float *K = kv_rows(a, a->k, a->k_scale, hk, t0, nt, kraw, tile);
            for (int r = 0; r < rows; r++) {
                int h = h0 + r / ns, s = s0 + r % ns;
                int n = row_keys(a, s) - t0;
                if (n <= 0) continue;
                if (n > nt) n = nt;
                const float *q = kraw ? qup + (size_t)r * D : a->q + h * a->q_hs + s * a->q_ss;
                float *sc = scores + (size_t)r * ld + t0;
                int i = 0;
                if (r + 1 < rows) { /* two rows share the key loads over the keys both see */
                    int h1 = h0 + (r + 1) / ns, s1 = s0 + (r + 1) % ns;
                    int n1 = row_keys(a, s1) - t0;
                    n1 = n1 > nt ? nt : n1;
                    const float *q1 = kraw ? qup + (size_t)(r + 1) * D : a->q + h1 * a->q_hs + s1 * a->q_ss;
                    float *sc1 = scores + (size_t)(r + 1) * ld + t0;
                    int nc = n < n1 ? n : n1;
                    for (; i + 4 <= nc; i += 4) dot4x2(q, q1, K + (size_t)i * D, D, sc + i, sc1 + i);
                    int j = i;
                    for (; j + 4 <= n1; j += 4) dot4(q1, K + (size_t)j * D, D, sc1 + j);
                    for (; j < n1; j++) sc1[j] = qw_dot_f32(q1, K + (size_t)j * D, D);
                    r++;
                }
                for (; i + 4 <= n; i += 4) dot4(q, K + (size_t)i * D, D, sc + i);
                for (; i < n; i++) sc[i] = qw_dot_f32(q, K + (size_t)i * D, D);
            }
        }
        for (int r = 0; r < rows; r++) {
            int h = h0 + r / ns, s = s0 + r % ns, n = row_keys(a, s);
            float *sc = scores + (size_t)r * ld;
            int first = a->window > 0 && n - a->window > 0 ? n - a->window : 0; /* keys before: outside the window */
            for (int t = 0; t < first; t++) sc[t] = -INFINITY;
            finish_row(a, sc, h, s, first, n);
            softmax_row(sc, n);
            if (a->round_probs) qw_round_f16_array(sc, (size_t)n);
            if (vraw) scale_up(sc, n);
            float *o = a->out + h * a->o_hs + s * a->o_ss;
            for (int d = 0; d < D; d++) o[d] = 0;
        }
        /* pass 2: out = P . V, a tile of values at a time */
        for (int t0 = 0; t0 < kmax; t0 += ATT_TK) {
            int nt = kmax - t0 < ATT_TK ? kmax - t0 : ATT_TK;
            kv_touch(a, a->v, hk, t0 + ATT_TK, kmax, &sink);
            const float *V = kv_rows(a, a->v, a->v_scale, hk, t0, nt, vraw, tile);
            for (int r = 0; r < rows; r++) {
                int n = row_keys(a, s0 + r % ns) - t0;
                if (n <= 0) continue;
                if (n > nt) n = nt;
                float *o = a->out + (h0 + r / ns) * a->o_hs + (s0 + r % ns) * a->o_ss;
                const float *pr = scores + (size_t)r * ld + t0;
                if (r + 2 < rows) { /* three rows share the value loads over the keys all three see */
                    int n1 = row_keys(a, s0 + (r + 1) % ns) - t0, n2 = row_keys(a, s0 + (r + 2) % ns) - t0;
                    n1 = n1 > nt ? nt : n1 < 0 ? 0 : n1;
                    n2 = n2 > nt ? nt : n2 < 0 ? 0 : n2;
                    float *o1 = a->out + (h0 + (r + 1) / ns) * a->o_hs + (s0 + (r + 1) % ns) * a->o_ss;
                    float *o2 = a->out + (h0 + (r + 2) / ns) * a->o_hs + (s0 + (r + 2) % ns) * a->o_ss;
                    const float *pr1 = pr + ld, *pr2 = pr + 2 * ld;
                    int nc = n < n1 ? n : n1;
                    nc = nc < n2 ? nc : n2;
                    if (nc > 0) acc_rows3(o, o1, o2, pr, pr1, pr2, V, nc, D);
                    if (n > nc) acc_rows(o, pr + nc, V + (size_t)nc * D, n - nc, D);
                    if (n1 > nc) acc_rows(o1, pr1 + nc, V + (size_t)nc * D, n1 - nc, D);
                    if (n2 > nc) acc_rows(o2, pr2 + nc, V + (size_t)nc * D, n2 - nc, D);
                    r += 2;
                    continue;
                }
                acc_rows(o, pr, V, n, D);
            }
        }
    }
    qw_touch_publish(sink);
}

void qw_attn_run(qw_pool *pool, const qw_attn *a, void *work) {
    att_plan p;
    plan(a, qw_pool_threads(pool), &p);
    p.work = work;
    qw_pool_run(pool, att_task, &p);
}

/* ---- int8 rows (QW_KV_I8) ------------------------------------------------------------------------------ */

void qw_kv_quant_i8(const float *x, int D, int8_t *q, float *scale) {
    float amax = 0;
    for (int d = 0; d < D; d++) amax = fabsf(x[d]) > amax ? fabsf(x[d]) : amax;
    float s = amax / 127.0f, inv = amax > 0 ? 127.0f / amax : 0;
    for (int d = 0; d < D; d++) {
        float v = x[d] * inv;
        v = v == v ? nearbyintf(v) : 0; /* NaN: 0 rather than an undefined conversion */
        q[d] = (int8_t)(v > 127 ? 127 : v < -127 ? -127 : v);
    }
    *scale = s;
}
