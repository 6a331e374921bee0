/* qw_kernels_impl.h - private helpers shared by the qw_kernels_*.c files (not part of the API).
 *
 * One small fp32 vector layer (QV_*) so that the dense kernels are written once for AVX2 (8 lanes),
 * wasm SIMD128 / SSE (4 lanes) and plain C (1 lane), like ggml's GGML_F32_VEC; fp16 loads convert
 * with F16C natively and with integer ops in wasm (wasm has no fp16 arithmetic). */
#ifndef QW_KERNELS_IMPL_H
#define QW_KERNELS_IMPL_H

#include <math.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include "qw_dtype.h"
#include "qw_kernels.h"

#if defined(__wasm_simd128__)
#include <wasm_simd128.h>
#define QW_WASM_SIMD 1
#if defined(__wasm_relaxed_simd__)
#define QW_WASM_RELAXED 1
#endif
#elif defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#include <immintrin.h>
#define QW_AVX2 1
#endif

/* Rows of y handed to one thread are a multiple of this, so two threads never write the same 64-byte
 * line of y (false sharing) as long as y rows start 64-byte aligned. */
#define QW_ROW_ALIGN 16

/* Split n items into nth contiguous ranges whose starts are multiples of `align`. */
static inline void qw_split(int n, int ith, int nth, int align, int *lo, int *hi) {
    int units = (n + align - 1) / align;
    int per = (units + nth - 1) / nth;
    int a = ith * per * align, b = (ith + 1) * per * align;
    *lo = QW_MIN(a, n);
    *hi = QW_MIN(b, n);
}

/* ---- fp32 vector layer -------------------------------------------------------------------------- */
#if defined(QW_AVX2)
typedef __m256 qv_f32;
#define QV_W 8
#define qv_zero() _mm256_setzero_ps()
#define qv_set1(x) _mm256_set1_ps(x)
#define qv_load(p) _mm256_loadu_ps(p)
#define qv_store(p, v) _mm256_storeu_ps((p), (v))
#define qv_fma(acc, a, b) _mm256_fmadd_ps((a), (b), (acc))
#define qv_add(a, b) _mm256_add_ps((a), (b))
#define qv_mul(a, b) _mm256_mul_ps((a), (b))
#define qv_div(a, b) _mm256_div_ps((a), (b))
#define qv_min(a, b) _mm256_min_ps((a), (b))
#define qv_max(a, b) _mm256_max_ps((a), (b))
#define qv_abs(a) _mm256_andnot_ps(_mm256_set1_ps(-0.0f), (a))
#define qv_round(a) _mm256_round_ps((a), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC) /* ties to even */
#define qv_load_f16(p) _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p)))
/* x rounded through fp16 and back (qw_round_f16 lane by lane; NaNs stay NaN) */
#define qv_round_f16(x) _mm256_cvtph_ps(_mm256_cvtps_ph((x), _MM_FROUND_TO_NEAREST_INT))
static inline float qv_hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}
#elif defined(QW_WASM_SIMD)
typedef v128_t qv_f32;
#define QV_W 4
#define qv_zero() wasm_f32x4_splat(0.0f)
#define qv_set1(x) wasm_f32x4_splat(x)
#define qv_load(p) wasm_v128_load(p)
#define qv_store(p, v) wasm_v128_store((p), (v))
/* A separate multiply and add, so every kernel's SIMD result has the scalar reference's bits. (relaxed_madd
 * links in the relaxed build, whose -O1 link runs no binaryen pass, and may or may not fuse: only the attention
 * uses it, att_fma in qw_kernels_attn.c, where the tests bound the error instead.) */
#define qv_fma(acc, a, b) wasm_f32x4_add((acc), wasm_f32x4_mul((a), (b)))
#define qv_add(a, b) wasm_f32x4_add((a), (b))
#define qv_mul(a, b) wasm_f32x4_mul((a), (b))
#define qv_div(a, b) wasm_f32x4_div((a), (b))
#define qv_min(a, b) wasm_f32x4_pmin((b), (a)) /* min for numbers; b when either is NaN, like minps */
#define qv_max(a, b) wasm_f32x4_pmax((b), (a))
#define qv_abs(a) wasm_f32x4_abs(a)
#define qv_round(a) wasm_f32x4_nearest(a) /* ties to even */
static inline float qv_hsum(v128_t v) {
    v = wasm_f32x4_add(v, wasm_i32x4_shuffle(v, v, 2, 3, 0, 1));
    v = wasm_f32x4_add(v, wasm_i32x4_shuffle(v, v, 1, 0, 3, 2));
    return wasm_f32x4_extract_lane(v, 0);
}
/* fp16 -> fp32 for finite halves with four integer/float ops per 4 values: put the half in the top
 * 16 bits of a lane (sign lands on bit 31), shift exponent+mantissa arithmetically into fp32 position,
 * mask the smeared sign bits (qw_f16x8_raw: the value times 2^-112, exact for every finite half, subnormal
 * halves included), and let one multiply by 2^112 rebias the exponent (exact, and it also normalises
 * subnormal halves). Inf/NaN halves come out as large finite values: use qw_f16x8_full where they matter. */
#define QW_F16_MAGIC 0x8fffe000u
static inline void qw_f16x8_raw(v128_t h, v128_t *lo, v128_t *hi) {
    const v128_t z = wasm_i32x4_splat(0);
    const v128_t m = wasm_i32x4_splat((int32_t)QW_F16_MAGIC);
    v128_t a = wasm_i16x8_shuffle(z, h, 0, 8, 1, 9, 2, 10, 3, 11);
    v128_t b = wasm_i16x8_shuffle(z, h, 4, 12, 5, 13, 6, 14, 7, 15);
    *lo = wasm_v128_and(wasm_i32x4_shr(a, 3), m);
    *hi = wasm_v128_and(wasm_i32x4_shr(b, 3), m);
}
/* qw_f16x8_raw with Inf and NaN halves made Inf and NaN (payload kept): an fp32 Inf/NaN is the same times any
 * power of two, so the full conversion and its raw form share this fix-up */
static inline void qw_f16x8_raw_full(v128_t h, v128_t *lo, v128_t *hi) {
    qw_f16x8_raw(h, lo, hi);
    v128_t inf16 = wasm_i16x8_gt(wasm_v128_and(h, wasm_i16x8_splat(0x7fff)), wasm_i16x8_splat(0x7bff));
    const v128_t e = wasm_i32x4_splat(0x7f800000);
    *lo = wasm_v128_or(*lo, wasm_v128_and(wasm_i32x4_extend_low_i16x8(inf16), e));
    *hi = wasm_v128_or(*hi, wasm_v128_and(wasm_i32x4_extend_high_i16x8(inf16), e));
}
static inline void qw_f16x8_fast(v128_t h, v128_t *lo, v128_t *hi) {
    const v128_t k = wasm_f32x4_splat(0x1p112f);
    qw_f16x8_raw(h, lo, hi);
    *lo = wasm_f32x4_mul(*lo, k);
    *hi = wasm_f32x4_mul(*hi, k);
}
/* The same, exact for every half including Inf and NaN (payload kept, as qw_f16_to_f32). */
static inline void qw_f16x8_full(v128_t h, v128_t *lo, v128_t *hi) {
    const v128_t k = wasm_f32x4_splat(0x1p112f);
    qw_f16x8_raw_full(h, lo, hi);
    *lo = wasm_f32x4_mul(*lo, k);
    *hi = wasm_f32x4_mul(*hi, k);
}
/* x rounded through fp16 and back, qw_round_f16 lane by lane (NaNs stay NaN): |x| + m - m with m the power of two
 * 2^13 times |x|'s own, so the sum's last mantissa bit weighs what a half's does at |x| (the fp32 add rounds to
 * nearest even, the subtraction is exact); below 2^-14 m stays 2^-1, whose ulp 2^-24 is the subnormal halves'
 * spacing. |x| >= 65520 overflows to inf (where m's exponent would overflow, the result is replaced anyway; inf
 * itself gets m = 2^-1 and stays inf). Ten operations, not sixteen: three per score in an fp16 graph's attention. */
static inline v128_t qv_round_f16(v128_t x) {
    const v128_t absm = wasm_i32x4_splat(0x7fffffff);
    v128_t sign = wasm_v128_andnot(x, absm), a = wasm_v128_and(x, absm);
    v128_t m = wasm_i32x4_max(
        wasm_i32x4_add(wasm_v128_and(a, wasm_i32x4_splat(0x7f800000)), wasm_i32x4_splat(13 << 23)),
        wasm_i32x4_splat(0x3f000000));
    v128_t r = wasm_f32x4_sub(wasm_f32x4_add(a, m), m);
    r = wasm_v128_bitselect(wasm_i32x4_splat(0x7f800000), r, wasm_f32x4_ge(a, wasm_f32x4_splat(65520.0f)));
    return wasm_v128_or(r, sign);
}
static inline v128_t qv_load_f16(const uint16_t *p) {
    const v128_t z = wasm_i32x4_splat(0);
    v128_t h = wasm_v128_load64_zero(p);
    v128_t a = wasm_i16x8_shuffle(z, h, 0, 8, 1, 9, 2, 10, 3, 11);
    return wasm_f32x4_mul(wasm_v128_and(wasm_i32x4_shr(a, 3), wasm_i32x4_splat((int32_t)QW_F16_MAGIC)),
                          wasm_f32x4_splat(0x1p112f));
}
#else
typedef float qv_f32;
#define QV_W 1
#define qv_zero() 0.0f
#define qv_set1(x) (x)
#define qv_load(p) (*(p))
#define qv_store(p, v) (*(p) = (v))
#define qv_fma(acc, a, b) ((acc) + (a) * (b))
#define qv_add(a, b) ((a) + (b))
#define qv_mul(a, b) ((a) * (b))
#define qv_div(a, b) ((a) / (b))
#define qv_min(a, b) ((a) < (b) ? (a) : (b))
#define qv_max(a, b) ((a) > (b) ? (a) : (b))
#define qv_abs(a) fabsf(a)
#define qv_round(a) nearbyintf(a)
#define qv_load_f16(p) qw_f16_to_f32(*(p))
#define qv_round_f16(x) qw_round_f16(x)
#define qv_hsum(v) (v)
#endif

/* ---- int8 activations for the 4-bit kernels (accuracy_level 4) ------------------------------------
 * Per activation row and weight block: int8 values round(x * 127/amax) (round half to even, as
 * onnxruntime's MLAS on x86), the scale amax/127 and the sum of the int8 values (for the zero point:
 * sum (q - zp) a = sum q a - zp sum a). Values are stored permuted inside each group of G = min(block,
 * 32) as [even elements, odd elements], so they line up with the low and high nibbles of G/2 weight
 * bytes without any shuffle; the row is padded with zeros to n_blocks * block. */
typedef struct qw_q8act {
    int M, n_blocks, block, kp; /* kp = n_blocks * block: bytes per row of q */
    int8_t *q;                  /* (M, kp) */
    float *d;                   /* (M, n_blocks) */
    int32_t *s;                 /* (M, n_blocks) */
} qw_q8act;

size_t qw_q8act_size(int M, int K, int block);
void qw_q8act_init(qw_q8act *a, void *work, int M, int K, int block);
/* Quantises rows [m0, m1) of x (M, K). */
void qw_q8act_quantize(qw_q8act *a, const float *x, int K, int m0, int m1);
void qw_q8act_quantize_ref(qw_q8act *a, const float *x, int K, int m0, int m1);

/* The packed-layout q8 product (qw_kernels_packed.c): rows of thread ith of nth, activations quantised, through the
 * tiles of kt. */
void qw_q4_matmul_q8_packed_task(const qw_kernel_table *kt, const qw_q4w *w, const qw_q8act *a, int M,
                                 const float *bias, float *y, int ith, int nth);
/* The most activation rows of any table's tile (qw_kernel_table.mb_max): the size of the callers' out[] */
#define QW_MB_MAX 8
/* The rows of the kernel table, one per ISA family's file (qw_kernels_packed_wasm.c, qw_kernels_packed_x86.c;
 * the scalar reference in qw_kernels_packed.c); each exists only in the builds that compile its ISA. */
extern const qw_kernel_table qw_kt_scalar;
#if defined(QW_WASM_RELAXED)
extern const qw_kernel_table qw_kt_relaxed, qw_kt_relaxed_tile0;
#if defined(QW_WASM_DOT_ADD)
extern const qw_kernel_table qw_kt_relaxed_dot_add, qw_kt_relaxed_dot_add_tile1;
/* 1 when the engine computes i32x4.relaxed_dot_i8x16_i7x16_add_s right (a check on known values) */
int qw_q8p_dot_add_works(void);
#endif
#elif defined(QW_WASM_SIMD)
extern const qw_kernel_table qw_kt_simd128;
#elif defined(QW_AVX2)
extern const qw_kernel_table qw_kt_avx2;
#endif

/* [sum(a), sum(b), sum(c), sum(d)]: four rows' integer block dot products in one vector, so each block
 * costs one convert, one scale multiply and one add per row, in the scalar reference's order. */
#if defined(QW_WASM_SIMD)
/* [sum(a), sum(b), sum(c), sum(d)] of four i32x4 */
static inline v128_t hsum4_i32(v128_t a, v128_t b, v128_t c, v128_t d) {
    v128_t ab = wasm_i32x4_add(wasm_i32x4_shuffle(a, b, 0, 4, 2, 6), wasm_i32x4_shuffle(a, b, 1, 5, 3, 7));
    v128_t cd = wasm_i32x4_add(wasm_i32x4_shuffle(c, d, 0, 4, 2, 6), wasm_i32x4_shuffle(c, d, 1, 5, 3, 7));
    return wasm_i32x4_add(wasm_i32x4_shuffle(ab, cd, 0, 1, 4, 5), wasm_i32x4_shuffle(ab, cd, 2, 3, 6, 7));
}
#elif defined(QW_AVX2)
static inline __m128i hsum4_i32(__m256i a, __m256i b, __m256i c, __m256i d) {
    __m256i h = _mm256_hadd_epi32(_mm256_hadd_epi32(a, b), _mm256_hadd_epi32(c, d));
    return _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
}
#endif

/* What a packed 4-bit x int8 tile (qw_kernels_packed*.c) reads, found once per call: group g's packed nibbles
 * (n_blocks, B/32, 64), its 4 rows' scales (fp32 sc or fp16 sh, (n_blocks, 4)) and zero points (or NULL) ... */
static inline __attribute__((always_inline)) void q8p_group(const qw_q4w *w, int g, const uint8_t **qg,
                                                            const float **sc, const uint16_t **sh, const uint8_t **zp) {
    const size_t nb = (size_t)w->n_blocks, gs = nb * 4;
    *qg = w->q + (size_t)g * nb * (size_t)(w->block / 32) * 64;
    *sc = w->scales_h ? NULL : w->scales + (size_t)g * gs;
    *sh = w->scales_h ? w->scales_h + (size_t)g * gs : NULL;
    *zp = w->zp ? w->zp + (size_t)g * gs : NULL;
}

/* ... and activation rows m .. m+MB-1: their int8 values, block scales and block sums. */
static inline __attribute__((always_inline)) void q8p_act_rows(const qw_q8act *a, int m, int MB, int nb,
                                                               const int8_t **qa, const float **da,
                                                               const int32_t **sa) {
    for (int mi = 0; mi < MB; mi++) {
        qa[mi] = a->q + (size_t)(m + mi) * a->kp;
        da[mi] = a->d + (size_t)(m + mi) * nb;
        sa[mi] = a->s + (size_t)(m + mi) * nb;
    }
}

/* qw_f16_to_f32_array's body, inlined where it is hot (the attention's KV tiles) */
static inline void qv_f16_to_f32_rows(const uint16_t *src, float *dst, size_t n) {
    size_t i = 0;
#if defined(QW_WASM_SIMD)
    /* the fast conversion (half the operations: it was half of a decode step's attention over an fp16 KV cache),
     * then the full one over the array again if a half was Inf or NaN (rare; a test per vector cost more) */
    const v128_t e = wasm_i16x8_splat(0x7c00);
    v128_t special = wasm_i16x8_splat(0);
    for (; i + 8 <= n; i += 8) {
        v128_t h = wasm_v128_load(src + i), lo, hi;
        special = wasm_v128_or(special, wasm_i16x8_eq(wasm_v128_and(h, e), e));
        qw_f16x8_fast(h, &lo, &hi);
        wasm_v128_store(dst + i, lo);
        wasm_v128_store(dst + i + 4, hi);
    }
    if (wasm_v128_any_true(special))
        for (i = 0; i + 8 <= n; i += 8) {
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

#if defined(QW_WASM_SIMD)
/* fp16 rows -> their values times 2^-112 (qw_f16x8_raw; Inf and NaN kept): exact, and it saves the conversion's
 * multiply where the consumer can take the 2^112 elsewhere (the attention scales its query rows and its
 * probabilities instead, which are far fewer). The Inf/NaN test is one shift and one max per 8 halves. */
#define QW_HAVE_F16_RAW_ROWS 1
static inline void qv_f16_raw_rows(const uint16_t *src, float *dst, size_t n) {
    v128_t top = wasm_i16x8_splat(0); /* the largest magnitude seen, shifted out of the sign */
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        v128_t h = wasm_v128_load(src + i), lo, hi;
        top = wasm_u16x8_max(top, wasm_i16x8_shl(h, 1));
        qw_f16x8_raw(h, &lo, &hi);
        wasm_v128_store(dst + i, lo);
        wasm_v128_store(dst + i + 4, hi);
    }
    for (; i < n; i++) {
        uint32_t h = src[i];
        uint32_t b = (h & 0x8000u) << 16 | (h & 0x7fffu) << 13;
        if ((h & 0x7c00u) == 0x7c00u) b |= 0x7f800000u;
        memcpy(dst + i, &b, 4);
    }
    if (!wasm_v128_any_true(wasm_u16x8_ge(top, wasm_i16x8_splat((int16_t)0xf800)))) return;
    for (i = 0; i + 8 <= n; i += 8) { /* an Inf or NaN half (rare): the exact conversion again */
        v128_t lo, hi;
        qw_f16x8_raw_full(wasm_v128_load(src + i), &lo, &hi);
        wasm_v128_store(dst + i, lo);
        wasm_v128_store(dst + i + 4, hi);
    }
}
#endif

/* Brings n bytes at p toward the caches ahead of their use (weights streamed from DRAM): a prefetch per 64-byte
 * line natively; wasm has no prefetch instruction, so there a load per line, its value summed into *sink, which
 * the caller hands to qw_touch_publish so the loads are kept (an atomic store: every thread publishes). */
extern _Atomic unsigned qw_touch_sink;
extern int qw_lookahead_on; /* qw_kernels_set_lookahead */
static inline void qw_touch(const uint8_t *p, size_t n, unsigned *sink) {
    if (!qw_lookahead_on) return;
#if defined(__wasm__)
    unsigned s = 0;
    for (size_t i = 0; i < n; i += 64) s += p[i];
    *sink += s;
#else
    for (size_t i = 0; i < n; i += 64) __builtin_prefetch(p + i);
    (void)sink;
#endif
}
static inline void qw_touch_publish(unsigned sink) {
    atomic_store_explicit(&qw_touch_sink, sink, memory_order_relaxed);
}

#endif /* QW_KERNELS_IMPL_H */
