/* qw_kernels_packed.c - decode kernels over layouts made once at load:
 *  - 4-bit MatMulNBits weights in 4-row groups (qw_q4_pack_q) times int8 activations (accuracy_level 4);
 *  - the int8 lm_head rows (qw_i8w) times 7-bit activations;
 *  - qw_kernels_warmup.
 * Both stream one contiguous run of bytes per thread (4 rows interleaved in 16-byte chunks) and reduce the
 * four rows' integer dot products of a block into one i32x4 [r0 r1 r2 r3], so each block costs one
 * convert, one scale multiply and one add for four rows; the float arithmetic per output is the scalar
 * reference's (sum over blocks, in order, of (float)dot * (d_x * d_w)), so every version (scalar, SIMD128,
 * relaxed SIMD, AVX2) gives the same bits as the reference. For M > 1 (prefill) up to 8 activation rows
 * share each unpacked weight vector (relaxed SIMD: two 4-row groups x 4 activation rows share each activation
 * broadcast, q8p_tile2), inside tiles of QW_M_TILE activation rows that stay in cache while the thread's
 * weights stream once per tile. */
#include <math.h>
#include <stdlib.h>

#include "qw_kernels_impl.h"

#define QW_M_TILE 32
/* Activation rows sharing each unpacked weight vector in a prefill tile: 8 where the i16 relaxed dot keeps
 * the per-row work at one splat, one dot and one add (its accumulators fit the 16 vector registers), else 4 */
#if defined(QW_WASM_RELAXED) && !defined(QW_MB4)
#define QW_MB_MAX 8
#else
#define QW_MB_MAX 4
#endif

/* ================================ packed 4-bit x int8 ========================================= */

int qw_q4_packable(int N, int block) { return N > 0 && N % 4 == 0 && block >= 32 && block % 32 == 0; }

/* Activation position p of a 32-element chunk meets weight nibble: p < 16: low nibble of source byte p
 * (element 2p), else high nibble of byte p - 16 (element 2(p-16)+1), since the q8 activations keep a chunk's
 * even elements at positions 0..15 and its odd ones at 16..31 (qw_q8act_quantize). Output vector j holds, for
 * row r, positions 8j..8j+3 (low nibbles) and 8j+4..8j+7 (high nibbles) in bytes 4r..4r+3. */
void qw_q4_pack_q(uint8_t *q, int N, int n_blocks, int block, void *tmp) {
    const size_t rb = (size_t)n_blocks * (block / 2);
    const int nc = block / 32;
    uint8_t *t = tmp;
    for (int g = 0; g < N / 4; g++) {
        uint8_t *grp = q + (size_t)g * 4 * rb;
        memcpy(t, grp, 4 * rb);
        for (int b = 0; b < n_blocks; b++)
            for (int c = 0; c < nc; c++) {
                uint8_t *dst = grp + ((size_t)b * nc + c) * 64;
                for (int r = 0; r < 4; r++) {
                    const uint8_t *src = t + r * rb + (size_t)b * (block / 2) + c * 16;
                    /* 4 output bytes at a time from two 4-byte words of the source */
                    for (int j = 0; j < 4; j++) {
                        uint32_t w1, w2, o;
                        memcpy(&w1, src + 8 * (j & 1), 4);
                        memcpy(&w2, src + 8 * (j & 1) + 4, 4);
                        o = j < 2 ? (w1 & 0x0f0f0f0fu) | (w2 & 0x0f0f0f0fu) << 4 : (w1 >> 4 & 0x0f0f0f0fu) | (w2 & 0xf0f0f0f0u);
                        memcpy(dst + j * 16 + r * 4, &o, 4);
                    }
                }
            }
    }
}

int qw_q4_pack_scales(void *scales, int N, int n_blocks, int elem_size, void *tmp) {
    uint8_t *s = scales, *t = tmp;
    const size_t es = (size_t)elem_size, rs = (size_t)n_blocks * es;
    int bad = -1;
    for (int g = 0; g < N / 4; g++) {
        uint8_t *grp = s + (size_t)g * 4 * rs;
        memcpy(t, grp, 4 * rs);
        for (int r = 0; r < 4; r++)
            for (int b = 0; b < n_blocks; b++) {
                const uint8_t *src = t + r * rs + b * es;
                if (es == 2 && bad < 0 && ((src[0] | src[1] << 8) & 0x7c00) == 0x7c00) bad = g * 4 + r;
                memcpy(grp + ((size_t)b * 4 + r) * es, src, es);
            }
    }
    return bad;
}

/* The 4 rows' scales of block b: fp16 (sh) converted exactly (finite halves, see qw_q4_pack_scales), else fp32 */
#if defined(QW_WASM_SIMD)
static inline v128_t q8p_scales(const float *sc, const uint16_t *sh, int b) {
    return sh ? qv_load_f16(sh + (size_t)b * 4) : wasm_v128_load(sc + (size_t)b * 4);
}
#elif defined(QW_AVX2)
static inline __m128 q8p_scales(const float *sc, const uint16_t *sh, int b) {
    return sh ? _mm_cvtph_ps(_mm_loadl_epi64((const __m128i *)(sh + (size_t)b * 4))) : _mm_loadu_ps(sc + (size_t)b * 4);
}
#endif

/* One 4-row group g times MB activation rows m .. m+MB-1: out[mi*4 + r].
 * Each 16-byte weight vector holds 4 rows x 4 bytes, so one dot product of its nibbles with 4 activation
 * bytes broadcast to every lane leaves each row's sum in its own lane: no horizontal sums. */
static inline __attribute__((always_inline)) void q8p_tile(const qw_q4w *w, int g, const qw_q8act *a, int m,
                                                           const int MB, const int DA, float *out) {
    (void)DA;
    const int nb = w->n_blocks, B = w->block, nc = B / 32;
    const uint8_t *qg = w->q + (size_t)g * nb * nc * 64;
    const float *sc = w->scales_h ? NULL : w->scales + (size_t)g * nb * 4;
    const uint16_t *sh = w->scales_h ? w->scales_h + (size_t)g * nb * 4 : NULL;
    const uint8_t *zp = w->zp ? w->zp + (size_t)g * nb * 4 : NULL;
    const int8_t *qa[QW_MB_MAX];
    const float *da[QW_MB_MAX];
    const int32_t *sa[QW_MB_MAX];
    for (int mi = 0; mi < MB; mi++) {
        qa[mi] = a->q + (size_t)(m + mi) * a->kp;
        da[mi] = a->d + (size_t)(m + mi) * nb;
        sa[mi] = a->s + (size_t)(m + mi) * nb;
    }
#if defined(QW_WASM_SIMD)
    v128_t acc[QW_MB_MAX];
    for (int mi = 0; mi < MB; mi++) acc[mi] = wasm_f32x4_splat(0.0f);
    const v128_t m4 = wasm_i8x16_splat(15);
    for (int b = 0; b < nb; b++) {
        v128_t bi[QW_MB_MAX]; /* [r0 r1 r2 r3] integer dot products of the block */
        const uint8_t *qb = qg + (size_t)b * nc * 64;
        for (int c = 0; c < nc; c++) {
            const int koff = b * B + c * 32;
#if defined(QW_WASM_DOT_ADD)
            if (DA) { /* i32x4.relaxed_dot_i8x16_i7x16_add_s (decode rows only, see q8p_tile_any) */
            if (!c)
                for (int mi = 0; mi < MB; mi++) bi[mi] = wasm_i32x4_splat(0);
            for (int j = 0; j < 4; j++) {
                v128_t v = wasm_v128_load(qb + c * 64 + j * 16);
                v128_t lo = wasm_v128_and(v, m4), hi = wasm_u8x16_shr(v, 4);
                for (int mi = 0; mi < MB; mi++) {
                    v128_t xa = wasm_v128_load32_splat(qa[mi] + koff + 8 * j);
                    v128_t xb = wasm_v128_load32_splat(qa[mi] + koff + 8 * j + 4);
                    /* short chains: the dot-add's latency would otherwise bound the loop */
                    v128_t t = (v128_t)__builtin_wasm_relaxed_dot_i8x16_i7x16_add_s_i32x4((__i8x16)xa, (__i8x16)lo, (__i32x4)wasm_i32x4_splat(0));
                    t = (v128_t)__builtin_wasm_relaxed_dot_i8x16_i7x16_add_s_i32x4((__i8x16)xb, (__i8x16)hi, (__i32x4)t);
                    bi[mi] = wasm_i32x4_add(bi[mi], t);
                }
            }
            continue;
            }
#endif
#if defined(QW_WASM_RELAXED)
            /* i16 partial sums: 8 dots of 2 products (|nibble x int8| <= 15 x 127) stay below 2^15 */
            v128_t s16[QW_MB_MAX];
            for (int mi = 0; mi < MB; mi++) s16[mi] = wasm_i16x8_splat(0);
            for (int j = 0; j < 4; j++) {
                v128_t v = wasm_v128_load(qb + c * 64 + j * 16);
                v128_t lo = wasm_v128_and(v, m4), hi = wasm_u8x16_shr(v, 4);
                for (int mi = 0; mi < MB; mi++) {
                    v128_t xa = wasm_v128_load32_splat(qa[mi] + koff + 8 * j);
                    v128_t xb = wasm_v128_load32_splat(qa[mi] + koff + 8 * j + 4);
                    s16[mi] = wasm_i16x8_add(s16[mi], wasm_i16x8_add(
                        (v128_t)__builtin_wasm_relaxed_dot_i8x16_i7x16_s_i16x8((__i8x16)xa, (__i8x16)lo),
                        (v128_t)__builtin_wasm_relaxed_dot_i8x16_i7x16_s_i16x8((__i8x16)xb, (__i8x16)hi)));
                }
            }
            for (int mi = 0; mi < MB; mi++) {
                v128_t s32 = wasm_i32x4_extadd_pairwise_i16x8(s16[mi]);
                bi[mi] = c ? wasm_i32x4_add(bi[mi], s32) : s32;
            }
#else
            /* nibbles widened to i16: rows 0-1 in the low half, rows 2-3 in the high half; each i32 lane
             * of a product holds half a row, paired up once per chunk */
            v128_t p01[QW_MB_MAX], p23[QW_MB_MAX];
            for (int mi = 0; mi < MB; mi++) p01[mi] = p23[mi] = wasm_i32x4_splat(0);
            for (int j = 0; j < 4; j++) {
                v128_t v = wasm_v128_load(qb + c * 64 + j * 16);
                v128_t lo = wasm_v128_and(v, m4), hi = wasm_u8x16_shr(v, 4);
                v128_t lo01 = wasm_u16x8_extend_low_u8x16(lo), lo23 = wasm_u16x8_extend_high_u8x16(lo);
                v128_t hi01 = wasm_u16x8_extend_low_u8x16(hi), hi23 = wasm_u16x8_extend_high_u8x16(hi);
                for (int mi = 0; mi < MB; mi++) {
                    v128_t xa = wasm_i16x8_extend_low_i8x16(wasm_v128_load32_splat(qa[mi] + koff + 8 * j));
                    v128_t xb = wasm_i16x8_extend_low_i8x16(wasm_v128_load32_splat(qa[mi] + koff + 8 * j + 4));
                    p01[mi] = wasm_i32x4_add(p01[mi], wasm_i32x4_add(wasm_i32x4_dot_i16x8(lo01, xa), wasm_i32x4_dot_i16x8(hi01, xb)));
                    p23[mi] = wasm_i32x4_add(p23[mi], wasm_i32x4_add(wasm_i32x4_dot_i16x8(lo23, xa), wasm_i32x4_dot_i16x8(hi23, xb)));
                }
            }
            for (int mi = 0; mi < MB; mi++) {
                v128_t s32 = wasm_i32x4_add(wasm_i32x4_shuffle(p01[mi], p23[mi], 0, 2, 4, 6),
                                            wasm_i32x4_shuffle(p01[mi], p23[mi], 1, 3, 5, 7));
                bi[mi] = c ? wasm_i32x4_add(bi[mi], s32) : s32;
            }
#endif
        }
        v128_t z = zp ? wasm_u32x4_extend_low_u16x8(wasm_u16x8_extend_low_u8x16(wasm_v128_load32_zero(zp + (size_t)b * 4)))
                      : wasm_i32x4_splat(8);
        v128_t ws = q8p_scales(sc, sh, b);
        for (int mi = 0; mi < MB; mi++) {
            v128_t s = wasm_i32x4_sub(bi[mi], wasm_i32x4_mul(z, wasm_i32x4_splat(sa[mi][b])));
            v128_t ds = wasm_f32x4_mul(wasm_f32x4_splat(da[mi][b]), ws);
            acc[mi] = wasm_f32x4_add(acc[mi], wasm_f32x4_mul(wasm_f32x4_convert_i32x4(s), ds));
        }
    }
    for (int mi = 0; mi < MB; mi++) wasm_v128_store(out + mi * 4, acc[mi]);
#elif defined(QW_AVX2)
    /* two weight vectors (j, j+1) per 256-bit step; the halves add up once per block */
    __m128 acc[QW_MB_MAX];
    for (int mi = 0; mi < MB; mi++) acc[mi] = _mm_setzero_ps();
    const __m256i m4 = _mm256_set1_epi8(15), ones = _mm256_set1_epi16(1);
    const __m256i ia = _mm256_setr_epi32(0, 0, 0, 0, 2, 2, 2, 2), ib = _mm256_setr_epi32(1, 1, 1, 1, 3, 3, 3, 3);
    for (int b = 0; b < nb; b++) {
        __m256i bi[QW_MB_MAX];
        for (int mi = 0; mi < MB; mi++) bi[mi] = _mm256_setzero_si256();
        const uint8_t *qb = qg + (size_t)b * nc * 64;
        for (int c = 0; c < nc; c++) {
            __m256i s16[QW_MB_MAX];
            for (int mi = 0; mi < MB; mi++) s16[mi] = _mm256_setzero_si256();
            for (int h = 0; h < 2; h++) {
                __m256i v = _mm256_loadu_si256((const __m256i *)(qb + c * 64 + h * 32));
                __m256i lo = _mm256_and_si256(v, m4), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
                for (int mi = 0; mi < MB; mi++) {
                    __m256i xx = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(qa[mi] + b * B + c * 32 + h * 16)));
                    s16[mi] = _mm256_add_epi16(s16[mi], _mm256_add_epi16(
                        _mm256_maddubs_epi16(lo, _mm256_permutevar8x32_epi32(xx, ia)),
                        _mm256_maddubs_epi16(hi, _mm256_permutevar8x32_epi32(xx, ib))));
                }
            }
            for (int mi = 0; mi < MB; mi++) bi[mi] = _mm256_add_epi32(bi[mi], _mm256_madd_epi16(s16[mi], ones));
        }
        __m128i z = zp ? _mm_cvtepu8_epi32(_mm_cvtsi32_si128(*(const int32_t *)(zp + (size_t)b * 4))) : _mm_set1_epi32(8);
        __m128 ws = q8p_scales(sc, sh, b);
        for (int mi = 0; mi < MB; mi++) {
            __m128i s = _mm_add_epi32(_mm256_castsi256_si128(bi[mi]), _mm256_extracti128_si256(bi[mi], 1));
            s = _mm_sub_epi32(s, _mm_mullo_epi32(z, _mm_set1_epi32(sa[mi][b])));
            __m128 ds = _mm_mul_ps(_mm_set1_ps(da[mi][b]), ws);
            acc[mi] = _mm_add_ps(acc[mi], _mm_mul_ps(_mm_cvtepi32_ps(s), ds));
        }
    }
    for (int mi = 0; mi < MB; mi++) _mm_storeu_ps(out + mi * 4, acc[mi]);
#else
    for (int mi = 0; mi < MB; mi++) {
        for (int r = 0; r < 4; r++) {
            float accr = 0.0f;
            for (int b = 0; b < nb; b++) {
                int32_t dot = -(zp ? zp[(size_t)b * 4 + r] : 8) * sa[mi][b];
                for (int c = 0; c < nc; c++)
                    for (int j = 0; j < 4; j++) {
                        const uint8_t *v = qg + ((size_t)b * nc + c) * 64 + j * 16 + r * 4;
                        const int8_t *x = qa[mi] + (size_t)b * B + c * 32 + 8 * j;
                        for (int i = 0; i < 4; i++) dot += (v[i] & 15) * x[i] + (v[i] >> 4) * x[4 + i];
                    }
                accr += (float)dot * (da[mi][b] * (sh ? qw_f16_to_f32(sh[(size_t)b * 4 + r]) : sc[(size_t)b * 4 + r]));
            }
            out[mi * 4 + r] = accr;
        }
    }
#endif
}

#if defined(QW_WASM_RELAXED)
/* Two 4-row groups g, g+1 times MB activation rows: out[(gi * MB + mi) * 4 + r]. Each activation broadcast
 * feeds both groups' weight vectors, so a product of 32 nibbles costs two dots, two adds and one broadcast
 * (the one-group tile: two broadcasts); the integer and float arithmetic per output is q8p_tile's. */
static inline __attribute__((always_inline)) void q8p_tile2(const qw_q4w *w, int g, const qw_q8act *a, int m,
                                                            const int MB, float *out) {
    const int nb = w->n_blocks, B = w->block, nc = B / 32;
    const size_t gq = (size_t)nb * nc * 64, gs = (size_t)nb * 4; /* one group's bytes of q, scales per group */
    const uint8_t *qg = w->q + (size_t)g * gq;
    const float *sc = w->scales_h ? NULL : w->scales + (size_t)g * gs;
    const uint16_t *sh = w->scales_h ? w->scales_h + (size_t)g * gs : NULL;
    const uint8_t *zp = w->zp ? w->zp + (size_t)g * gs : NULL;
    const int8_t *qa[4];
    const float *da[4];
    const int32_t *sa[4];
    for (int mi = 0; mi < MB; mi++) {
        qa[mi] = a->q + (size_t)(m + mi) * a->kp;
        da[mi] = a->d + (size_t)(m + mi) * nb;
        sa[mi] = a->s + (size_t)(m + mi) * nb;
    }
    v128_t acc0[4], acc1[4];
    for (int mi = 0; mi < MB; mi++) acc0[mi] = acc1[mi] = wasm_f32x4_splat(0.0f);
    const v128_t m4 = wasm_i8x16_splat(15);
    for (int b = 0; b < nb; b++) {
        v128_t bi0[4], bi1[4];
        const uint8_t *qb = qg + (size_t)b * nc * 64;
        for (int c = 0; c < nc; c++) {
            const int koff = b * B + c * 32;
            v128_t s0[4], s1[4];
            for (int mi = 0; mi < MB; mi++) s0[mi] = s1[mi] = wasm_i16x8_splat(0);
            for (int j = 0; j < 4; j++) {
                v128_t v0 = wasm_v128_load(qb + c * 64 + j * 16), v1 = wasm_v128_load(qb + gq + c * 64 + j * 16);
                v128_t lo0 = wasm_v128_and(v0, m4), hi0 = wasm_u8x16_shr(v0, 4);
                v128_t lo1 = wasm_v128_and(v1, m4), hi1 = wasm_u8x16_shr(v1, 4);
                for (int mi = 0; mi < MB; mi++) {
                    v128_t xa = wasm_v128_load32_splat(qa[mi] + koff + 8 * j);
                    v128_t xb = wasm_v128_load32_splat(qa[mi] + koff + 8 * j + 4);
                    s0[mi] = wasm_i16x8_add(s0[mi], wasm_i16x8_add(
                        (v128_t)__builtin_wasm_relaxed_dot_i8x16_i7x16_s_i16x8((__i8x16)xa, (__i8x16)lo0),
                        (v128_t)__builtin_wasm_relaxed_dot_i8x16_i7x16_s_i16x8((__i8x16)xb, (__i8x16)hi0)));
                    s1[mi] = wasm_i16x8_add(s1[mi], wasm_i16x8_add(
                        (v128_t)__builtin_wasm_relaxed_dot_i8x16_i7x16_s_i16x8((__i8x16)xa, (__i8x16)lo1),
                        (v128_t)__builtin_wasm_relaxed_dot_i8x16_i7x16_s_i16x8((__i8x16)xb, (__i8x16)hi1)));
                }
            }
            for (int mi = 0; mi < MB; mi++) {
                v128_t t0 = wasm_i32x4_extadd_pairwise_i16x8(s0[mi]), t1 = wasm_i32x4_extadd_pairwise_i16x8(s1[mi]);
                bi0[mi] = c ? wasm_i32x4_add(bi0[mi], t0) : t0;
                bi1[mi] = c ? wasm_i32x4_add(bi1[mi], t1) : t1;
            }
        }
        v128_t z0 = wasm_i32x4_splat(8), z1 = z0;
        if (zp) {
            z0 = wasm_u32x4_extend_low_u16x8(wasm_u16x8_extend_low_u8x16(wasm_v128_load32_zero(zp + (size_t)b * 4)));
            z1 = wasm_u32x4_extend_low_u16x8(wasm_u16x8_extend_low_u8x16(wasm_v128_load32_zero(zp + gs + (size_t)b * 4)));
        }
        v128_t ws0 = q8p_scales(sc, sh, b), ws1 = q8p_scales(sc ? sc + gs : NULL, sh ? sh + gs : NULL, b);
        for (int mi = 0; mi < MB; mi++) {
            v128_t sam = wasm_i32x4_splat(sa[mi][b]), dam = wasm_f32x4_splat(da[mi][b]);
            v128_t t0 = wasm_i32x4_sub(bi0[mi], wasm_i32x4_mul(z0, sam));
            v128_t t1 = wasm_i32x4_sub(bi1[mi], wasm_i32x4_mul(z1, sam));
            acc0[mi] = wasm_f32x4_add(acc0[mi], wasm_f32x4_mul(wasm_f32x4_convert_i32x4(t0), wasm_f32x4_mul(dam, ws0)));
            acc1[mi] = wasm_f32x4_add(acc1[mi], wasm_f32x4_mul(wasm_f32x4_convert_i32x4(t1), wasm_f32x4_mul(dam, ws1)));
        }
    }
    for (int mi = 0; mi < MB; mi++) {
        wasm_v128_store(out + mi * 4, acc0[mi]);
        wasm_v128_store(out + (MB + mi) * 4, acc1[mi]);
    }
}
#endif

/* 1 where the engine computes i32x4.relaxed_dot_i8x16_i7x16_add_s right and qw_kernels_dot_add enabled it */
static int g_dot_add;

/* Prefill tiles use the i16 dot products: in Chromium 156 on this kind of machine the dot-add made the
 * 4-row tiles 12 % slower and the one-row decode tile 10 % faster (tools/bench/kernel_probe.mjs, no-dot-add). */
static void q8p_tile_any(const qw_q4w *w, int g, const qw_q8act *a, int m, int mb, float *out) {
    switch (mb) {
#if QW_MB_MAX == 8
    case 8: q8p_tile(w, g, a, m, 8, 0, out); break;
    case 7: q8p_tile(w, g, a, m, 7, 0, out); break;
    case 6: q8p_tile(w, g, a, m, 6, 0, out); break;
    case 5: q8p_tile(w, g, a, m, 5, 0, out); break;
#endif
    case 4: q8p_tile(w, g, a, m, 4, 0, out); break;
    case 3: q8p_tile(w, g, a, m, 3, 0, out); break;
    case 2: q8p_tile(w, g, a, m, 2, 0, out); break;
    default: q8p_tile(w, g, a, m, 1, 0, out); break;
    }
}

/* Node 20's V8 (11.3) gets i32x4.relaxed_dot_i8x16_i7x16_add_s wrong; Chromium's and Firefox's are right.
 * So the relaxed build checks the engine on known values before using it. */
static int dot_add_works(void) {
#if defined(QW_WASM_DOT_ADD)
    int8_t x[16];
    uint8_t v[16];
    int32_t c[4] = {1000, -2000, 3000, -4000}, r[4];
    for (int i = 0; i < 16; i++) x[i] = (int8_t)(i * 17 - 127), v[i] = (uint8_t)((i * 7 + 3) & 15);
    volatile v128_t vx = wasm_v128_load(x), vv = wasm_v128_load(v), vc = wasm_v128_load(c); /* not folded */
    wasm_v128_store(r, (v128_t)__builtin_wasm_relaxed_dot_i8x16_i7x16_add_s_i32x4((__i8x16)vx, (__i8x16)vv, (__i32x4)vc));
    for (int l = 0; l < 4; l++) {
        int32_t e = c[l];
        for (int t = 0; t < 4; t++) e += x[4 * l + t] * v[4 * l + t];
        if (r[l] != e) return 0;
    }
    return 1;
#else
    return 0;
#endif
}

/* The prefill tile (qw_kernels_prefill_tile): 0 = one 4-row group x QW_MB_MAX activation rows, 1 = two
 * groups x 4 rows (relaxed SIMD only, the default there: 14-23 % more GMAC per CPU second than tile 0 in
 * Node on the shared 2-core EPYC, test_kernels bench 1 prefill; Chromium not yet measured on a quiet machine) */
#if defined(QW_WASM_RELAXED)
static int g_prefill_tile = 1;
#else
static int g_prefill_tile;
#endif

int qw_kernels_prefill_tile(int tile) {
#if defined(QW_WASM_RELAXED)
    if (tile == 0 || tile == 1) g_prefill_tile = tile;
#else
    (void)tile;
#endif
    return g_prefill_tile;
}

int qw_kernels_dot_add(int on) {
    static int works = -1;
    if (on >= 0) {
        if (works < 0) works = dot_add_works();
        g_dot_add = on && works;
    }
    return g_dot_add;
}

void qw_q4_matmul_q8_packed_task(const qw_q4w *w, const qw_q8act *a, int M, const float *bias, float *y, int ith,
                                 int nth) {
    int lo, hi;
    qw_split(w->N / 4, ith, nth, QW_ROW_ALIGN / 4, &lo, &hi);
    float o[4 * QW_MB_MAX]; /* also two groups x 4 rows (q8p_tile2) */
    if (M == 1) {
        const int da = g_dot_add;
        for (int g = lo; g < hi; g++) {
            if (da) q8p_tile(w, g, a, 0, 1, 1, o);
            else q8p_tile(w, g, a, 0, 1, 0, o);
            for (int r = 0; r < 4; r++) y[g * 4 + r] = o[r] + (bias ? bias[g * 4 + r] : 0.0f);
        }
        return;
    }
    for (int m0 = 0; m0 < M; m0 += QW_M_TILE) {
        int m1 = QW_MIN(m0 + QW_M_TILE, M), g = lo;
#if defined(QW_WASM_RELAXED)
        if (g_prefill_tile == 1)
            for (; g + 2 <= hi; g += 2)
                for (int m = m0; m < m1; m += 4) {
                    int mb = QW_MIN(4, m1 - m);
                    switch (mb) {
                    case 4: q8p_tile2(w, g, a, m, 4, o); break;
                    case 3: q8p_tile2(w, g, a, m, 3, o); break;
                    case 2: q8p_tile2(w, g, a, m, 2, o); break;
                    default: q8p_tile2(w, g, a, m, 1, o); break;
                    }
                    for (int gi = 0; gi < 2; gi++)
                        for (int mi = 0; mi < mb; mi++)
                            for (int r = 0; r < 4; r++) {
                                int n = (g + gi) * 4 + r;
                                y[(size_t)(m + mi) * w->N + n] = o[(gi * mb + mi) * 4 + r] + (bias ? bias[n] : 0.0f);
                            }
                }
#endif
        for (; g < hi; g++)
            for (int m = m0; m < m1; m += QW_MB_MAX) {
                int mb = QW_MIN(QW_MB_MAX, m1 - m);
                q8p_tile_any(w, g, a, m, mb, o);
                for (int mi = 0; mi < mb; mi++)
                    for (int r = 0; r < 4; r++)
                        y[(size_t)(m + mi) * w->N + g * 4 + r] = o[mi * 4 + r] + (bias ? bias[g * 4 + r] : 0.0f);
            }
    }
}

/* ================================ int8 lm_head =============================================== */

void qw_i8w_init(qw_i8w *w, int N, int K) {
    memset(w, 0, sizeof *w);
    w->N = N;
    w->K = K;
    w->block = QW_I8_BLOCK;
    w->n_blocks = (K + QW_I8_BLOCK - 1) / QW_I8_BLOCK;
    w->N4 = (N + 3) & ~3;
}
size_t qw_i8w_q_bytes(const qw_i8w *w) { return (size_t)w->N4 * w->n_blocks * w->block; }
size_t qw_i8w_scale_bytes(const qw_i8w *w) { return (size_t)w->N4 * w->n_blocks * (sizeof(float) + sizeof(int32_t)); }
static inline const int32_t *i8w_sums(const qw_i8w *w) { return (const int32_t *)(w->scales + (size_t)w->N4 * w->n_blocks); }
static inline size_t i8w_ix(const qw_i8w *w, int n, int k) { /* byte of row n, element k (k < n_blocks * block) */
    return ((size_t)(n >> 2) * w->n_blocks * w->block + (size_t)(k & ~3)) * 4 + (size_t)(n & 3) * 4 + (size_t)(k & 3);
}

typedef struct {
    qw_i8w *w;
    const void *B;           /* row row0 */
    int f16, ldb, row0, n_rows;
} i8q_task;

_Static_assert(QW_I8_BLOCK % 8 == 0, "i8_quant_rows steps through a block by whole vectors");

static void i8_quant_rows(void *p, int ith, int nth) {
    i8q_task *t = p;
    qw_i8w *w = t->w;
    const int nb = w->n_blocks, B = w->block, K = w->K;
    int32_t *sums = (int32_t *)i8w_sums(w);
    /* the 4-row groups of rows [row0, row0 + n_rows) (row0 % 4 == 0; only the last chunk ends inside a group) */
    int lo, hi, g0 = t->row0 / 4, g1 = QW_MIN((t->row0 + t->n_rows + 3) / 4, w->N4 / 4);
    qw_split(g1 - g0, ith, nth, 1, &lo, &hi);
    lo += g0, hi += g0;
    float *row = malloc((size_t)nb * B * sizeof(float)), *qf = malloc((size_t)B * sizeof(float));
    if (!row || !qf) { free(row), free(qf); return; } /* cannot happen in practice; zero rows stay bounded */
    for (int n = lo * 4; n < hi * 4; n++) {
        memset(row, 0, (size_t)nb * B * sizeof(float));
        if (n < w->N && n < t->row0 + t->n_rows) {
            size_t at = (size_t)(n - t->row0) * t->ldb;
            if (t->f16) qw_f16_to_f32_array((const uint16_t *)t->B + at, row, (size_t)K);
            else memcpy(row, (const float *)t->B + at, (size_t)K * sizeof(float));
        }
        /* vectors per block (B % QV_W == 0); the norms summed in float per block (64 terms: relative error
         * ~4e-6, far inside the bound's 1e-4 margin) and in double across blocks */
        double wn = 0, en = 0;
        for (int b = 0; b < nb; b++) {
            const float *rb = row + (size_t)b * B;
            qv_f32 m = qv_zero();
            for (int k = 0; k < B; k += QV_W) m = qv_max(m, qv_abs(qv_load(rb + k)));
            float mv[QV_W], amax = 0.0f;
            qv_store(mv, m);
            for (int l = 0; l < QV_W; l++) amax = fmaxf(amax, mv[l]);
            float d = amax / 127.0f, id = amax != 0.0f ? 127.0f / amax : 0.0f;
            w->scales[qw_q4_packed_ix(n, b, nb)] = d;
            qv_f32 sw = qv_zero(), se = qv_zero();
            for (int k = 0; k < B; k += QV_W) {
                qv_f32 v = qv_load(rb + k), q = qv_round(qv_mul(v, qv_set1(id))); /* |v * id| <= 127 */
                qv_f32 e = qv_add(v, qv_mul(q, qv_set1(-d)));
                sw = qv_fma(sw, v, v);
                se = qv_fma(se, e, e);
                qv_store(qf + k, q);
            }
            wn += qv_hsum(sw);
            en += qv_hsum(se);
            int32_t bsum = 0;
            for (int k = 0; k < B; k++) {
                int qv = (int)qf[k];
                w->q[i8w_ix(w, n, b * B + k)] = (int8_t)qv;
                bsum += qv;
            }
            sums[qw_q4_packed_ix(n, b, nb)] = bsum;
        }
        w->wnorm[n] = (float)(sqrt(wn) * (1 + 1e-5));
        w->enorm[n] = (float)(sqrt(en) * (1 + 1e-4)); /* e = v - q d in float: cancellation, so a wider margin */
    }
    free(qf);
    free(row);
}

void qw_i8w_quantize(qw_pool *pool, qw_i8w *w, const void *B, int f16, int ldb) {
    qw_i8w_quantize_rows(pool, w, B, f16, ldb, 0, w->N);
}

void qw_i8w_quantize_rows(qw_pool *pool, qw_i8w *w, const void *B, int f16, int ldb, int row0, int n_rows) {
    if (row0 % 4 || n_rows <= 0) return;
    i8q_task t = {w, B, f16, ldb, row0, n_rows};
    qw_pool_run(pool, i8_quant_rows, &t);
}

/* 7-bit activations per block: (n_blocks * block) int8, the same + 64 (0..127, the relaxed dot's unsigned
 * operand) and n_blocks float scales. */
size_t qw_i8_matvec_work_size(const qw_i8w *w) {
    return 192 + 2 * (size_t)w->n_blocks * w->block + (size_t)w->n_blocks * sizeof(float);
}

static void i8_quant_x(const qw_i8w *w, const float *x, int8_t *qx, float *dx, double *xn, double *ex) {
    const int nb = w->n_blocks, B = w->block, K = w->K;
    double sx = 0, se = 0;
    for (int b = 0; b < nb; b++) {
        int k0 = b * B, k1 = QW_MIN(k0 + B, K);
        float amax = 0.0f;
        for (int k = k0; k < k1; k++) amax = fmaxf(amax, fabsf(x[k]));
        float d = amax / 63.0f, id = amax != 0.0f ? 63.0f / amax : 0.0f;
        dx[b] = d;
        for (int j = 0; j < B; j++) {
            int k = k0 + j;
            int v = k < k1 ? (int)nearbyintf(x[k] * id) : 0;
            v = QW_MAX(-63, QW_MIN(63, v));
            qx[k] = (int8_t)v;
            if (k < k1) {
                double e = (double)x[k] - (double)v * (double)d;
                sx += (double)x[k] * x[k];
                se += e * e;
            }
        }
    }
    if (xn) *xn = sqrt(sx);
    if (ex) *ex = sqrt(se) * (1 + 1e-6);
}

/* One 4-row group times the quantised activation row: out[r]. qu = qx + 64 (relaxed SIMD only). */
static inline void i8_group(const qw_i8w *w, int g, const int8_t *qx, const uint8_t *qu, const float *dx, float out[4]) {
    const int nb = w->n_blocks, B = w->block;
    const int8_t *qg = w->q + (size_t)g * nb * B * 4;
    const float *sc = w->scales + (size_t)g * nb * 4;
    (void)qu;
#if defined(QW_WASM_RELAXED)
    /* dot(w, x + 64) - 64 sum(w): products of pairs stay within i16 (2 x 127 x 127) */
    const int32_t *sm = i8w_sums(w) + (size_t)g * nb * 4;
    v128_t acc = wasm_f32x4_splat(0.0f);
    for (int b = 0; b < nb; b++) {
        const int8_t *qb = qg + (size_t)b * B * 4;
        const uint8_t *xb = qu + (size_t)b * B;
        v128_t b0 = wasm_i32x4_splat(0), b1 = wasm_i32x4_splat(0);
        for (int k = 0; k < B; k += 8) {
            v128_t d0 = (v128_t)__builtin_wasm_relaxed_dot_i8x16_i7x16_s_i16x8((__i8x16)wasm_v128_load(qb + k * 4), (__i8x16)wasm_v128_load32_splat(xb + k));
            v128_t d1 = (v128_t)__builtin_wasm_relaxed_dot_i8x16_i7x16_s_i16x8((__i8x16)wasm_v128_load(qb + k * 4 + 16), (__i8x16)wasm_v128_load32_splat(xb + k + 4));
            b0 = wasm_i32x4_add(b0, wasm_i32x4_extadd_pairwise_i16x8(d0));
            b1 = wasm_i32x4_add(b1, wasm_i32x4_extadd_pairwise_i16x8(d1));
        }
        v128_t s = wasm_i32x4_sub(wasm_i32x4_add(b0, b1), wasm_i32x4_shl(wasm_v128_load(sm + (size_t)b * 4), 6));
        v128_t ds = wasm_f32x4_mul(wasm_f32x4_splat(dx[b]), wasm_v128_load(sc + (size_t)b * 4));
        acc = wasm_f32x4_add(acc, wasm_f32x4_mul(wasm_f32x4_convert_i32x4(s), ds));
    }
    wasm_v128_store(out, acc);
#elif defined(QW_WASM_SIMD)
    /* i16 products: rows 0-1 from the low half, rows 2-3 from the high half, paired up per block */
    v128_t acc = wasm_f32x4_splat(0.0f);
    for (int b = 0; b < nb; b++) {
        const int8_t *qb = qg + (size_t)b * B * 4;
        const int8_t *xb = qx + (size_t)b * B;
        v128_t p01 = wasm_i32x4_splat(0), p23 = wasm_i32x4_splat(0);
        for (int k = 0; k < B; k += 4) {
            v128_t wv = wasm_v128_load(qb + k * 4);
            v128_t xv = wasm_i16x8_extend_low_i8x16(wasm_v128_load32_splat(xb + k));
            p01 = wasm_i32x4_add(p01, wasm_i32x4_dot_i16x8(wasm_i16x8_extend_low_i8x16(wv), xv));
            p23 = wasm_i32x4_add(p23, wasm_i32x4_dot_i16x8(wasm_i16x8_extend_high_i8x16(wv), xv));
        }
        v128_t s = wasm_i32x4_add(wasm_i32x4_shuffle(p01, p23, 0, 2, 4, 6), wasm_i32x4_shuffle(p01, p23, 1, 3, 5, 7));
        v128_t ds = wasm_f32x4_mul(wasm_f32x4_splat(dx[b]), wasm_v128_load(sc + (size_t)b * 4));
        acc = wasm_f32x4_add(acc, wasm_f32x4_mul(wasm_f32x4_convert_i32x4(s), ds));
    }
    wasm_v128_store(out, acc);
#elif defined(QW_AVX2)
    /* two vectors (k, k+4) per 256-bit step; |w| (u8) x sign(w) x (s8): pairs <= 2 * 127 * 63 */
    __m128 acc = _mm_setzero_ps();
    const __m256i ones = _mm256_set1_epi16(1), idx = _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1);
    for (int b = 0; b < nb; b++) {
        const int8_t *qb = qg + (size_t)b * B * 4;
        const int8_t *xb = qx + (size_t)b * B;
        __m256i bi = _mm256_setzero_si256();
        for (int k = 0; k < B; k += 8) {
            __m256i wv = _mm256_loadu_si256((const __m256i *)(qb + k * 4));
            __m256i xv = _mm256_permutevar8x32_epi32(_mm256_castsi128_si256(_mm_loadl_epi64((const __m128i *)(xb + k))), idx);
            __m256i p = _mm256_maddubs_epi16(_mm256_sign_epi8(wv, wv), _mm256_sign_epi8(xv, wv));
            bi = _mm256_add_epi32(bi, _mm256_madd_epi16(p, ones));
        }
        __m128i s = _mm_add_epi32(_mm256_castsi256_si128(bi), _mm256_extracti128_si256(bi, 1));
        __m128 ds = _mm_mul_ps(_mm_set1_ps(dx[b]), _mm_loadu_ps(sc + (size_t)b * 4));
        acc = _mm_add_ps(acc, _mm_mul_ps(_mm_cvtepi32_ps(s), ds));
    }
    _mm_storeu_ps(out, acc);
#else
    for (int r = 0; r < 4; r++) {
        float accr = 0.0f;
        for (int b = 0; b < nb; b++) {
            int32_t dot = 0;
            for (int k = 0; k < B; k++) dot += qg[i8w_ix(w, r, b * B + k)] * qx[b * B + k]; /* rows of group g, from qg */
            accr += (float)dot * (dx[b] * sc[(size_t)b * 4 + r]);
        }
        out[r] = accr;
    }
#endif
}

typedef struct {
    const qw_i8w *w;
    const int8_t *qx;
    const uint8_t *qu;
    const float *dx;
    float *y;
} i8mv_task;

static void i8_mv_run(void *p, int ith, int nth) {
    i8mv_task *t = p;
    const qw_i8w *w = t->w;
    int lo, hi;
    qw_split(w->N4 / 4, ith, nth, QW_ROW_ALIGN / 4, &lo, &hi);
    for (int g = lo; g < hi; g++) {
        float o[4];
        i8_group(w, g, t->qx, t->qu, t->dx, o);
        for (int r = 0; r < 4 && g * 4 + r < w->N; r++) t->y[g * 4 + r] = o[r];
    }
}

void qw_i8_matvec(qw_pool *pool, const qw_i8w *w, const float *x, float *y, void *work, double *xn_out,
                  double *ex_out) {
    int8_t *qx = (int8_t *)(((uintptr_t)work + 63) & ~(uintptr_t)63);
    const size_t kp = (size_t)w->n_blocks * w->block;
    uint8_t *qu = (uint8_t *)(((uintptr_t)(qx + kp) + 63) & ~(uintptr_t)63);
    float *dx = (float *)(((uintptr_t)(qu + kp) + 63) & ~(uintptr_t)63);
    i8_quant_x(w, x, qx, dx, xn_out, ex_out);
#if defined(QW_WASM_RELAXED)
    for (size_t k = 0; k < kp; k++) qu[k] = (uint8_t)(qx[k] + 64);
#endif
    i8mv_task t = {w, qx, qu, dx, y};
    qw_pool_run(pool, i8_mv_run, &t);
}

void qw_i8_matvec_ref(const qw_i8w *w, const float *x, float *y) {
    const int nb = w->n_blocks, B = w->block;
    int8_t *qx = malloc((size_t)nb * B);
    float *dx = malloc((size_t)nb * sizeof(float));
    if (!qx || !dx) { free(qx); free(dx); return; }
    i8_quant_x(w, x, qx, dx, NULL, NULL);
    for (int n = 0; n < w->N; n++) {
        float acc = 0.0f;
        for (int b = 0; b < nb; b++) {
            int32_t dot = 0;
            for (int k = 0; k < B; k++) dot += w->q[i8w_ix(w, n, b * B + k)] * qx[b * B + k];
            acc += (float)dot * (dx[b] * w->scales[qw_q4_packed_ix(n, b, nb)]);
        }
        y[n] = acc;
    }
    free(qx);
    free(dx);
}

/* ================================ warm-up ==================================================== */

void qw_kernels_warmup(qw_pool *pool) {
    qw_kernels_dot_add(1);
    enum { N = 64, K = 256, V = 256, REPS = 24 };
    const int nb = K / 32;
    uint8_t *q = calloc((size_t)N * K / 2, 1);
    float *sc = malloc((size_t)N * nb * sizeof(float));
    float *x = malloc((size_t)4 * K * sizeof(float)), *y = malloc((size_t)4 * (N > V ? N : V) * sizeof(float));
    uint16_t *h = malloc((size_t)V * K * sizeof(uint16_t));
    qw_q4w w = {.N = N, .K = K, .block = 32, .n_blocks = nb, .q = q, .scales = sc};
    qw_i8w iw;
    qw_i8w_init(&iw, V, K);
    iw.q = malloc(qw_i8w_q_bytes(&iw));
    iw.scales = malloc(qw_i8w_scale_bytes(&iw));
    iw.wnorm = malloc((size_t)iw.N4 * 2 * sizeof(float));
    iw.enorm = iw.wnorm ? iw.wnorm + iw.N4 : NULL;
    size_t ws = qw_q4_matmul_q8_work_size(&w, 4), ws2 = qw_i8_matvec_work_size(&iw);
    void *work = malloc(ws > ws2 ? ws : ws2);
    if (q && sc && x && y && h && iw.q && iw.scales && iw.wnorm && work) {
        for (int i = 0; i < N * K / 2; i++) q[i] = (uint8_t)(i * 37);
        for (int i = 0; i < N * nb; i++) sc[i] = 0.01f;
        for (int i = 0; i < 4 * K; i++) x[i] = (float)((i * 13) % 17) - 8.0f;
        for (int i = 0; i < V * K; i++) h[i] = (uint16_t)(0x2000 + (i * 7) % 0x1000);
        qw_i8w_quantize(pool, &iw, h, 1, K);
        for (int it = 0; it < REPS; it++) {
            w.packed = 0;
            qw_q4_matmul_q8(pool, &w, x, 1, NULL, y, work);
            qw_q4_matmul(pool, &w, x, 1, NULL, y);
            w.packed = 1; /* as models run it: fp16 scales (h: finite halves) */
            w.scales_h = h;
            qw_q4_matmul_q8(pool, &w, x, 1, NULL, y, work);
            if (it % 4 == 0) qw_q4_matmul_q8(pool, &w, x, 4, NULL, y, work);
            w.scales_h = NULL;
            qw_i8_matvec(pool, &iw, x, y, work, NULL, NULL);
            qw_gemm_f16b(pool, 1, V, K, x, K, h, K, 1, y, V);
            qw_rmsnorm_f32(x, x + K, 1e-6f, K, y);
            qw_softmax_f32(y, K);
        }
    }
    free(q), free(sc), free(x), free(y), free(h), free(iw.q), free(iw.scales), free(iw.wnorm), free(work);
}
