/* qw_kernels_packed_x86.c - the packed 4-bit x int8 tile in AVX2 (with FMA and F16C, -march=native builds): a row of
 * the kernel table (qw_kernels.h); the layout, the scalar reference tile and the loops that call the tile are in
 * qw_kernels_packed.c. It computes the scalar reference's integer dot per block and row and the same float steps in
 * the same order, so the same bits. */
#include "qw_kernels_impl.h"

#if defined(QW_AVX2)

#define Q8P_MB 4 /* activation rows sharing each unpacked weight vector */

/* The 4 rows' scales of block b: fp16 (sh) converted exactly (finite halves, see qw_q4_pack_scales), else fp32 */
static inline __m128 q8p_scales(const float *sc, const uint16_t *sh, int b) {
    return sh ? _mm_cvtph_ps(_mm_loadl_epi64((const __m128i *)(sh + (size_t)b * 4))) : _mm_loadu_ps(sc + (size_t)b * 4);
}

/* One 4-row group g times MB activation rows m .. m+MB-1: out[mi*4 + r]. Each 16-byte weight vector holds 4 rows x
 * 4 bytes, so one dot product of its nibbles with 4 activation bytes broadcast to a lane group leaves each row's sum
 * in its own lane: no horizontal sums. */
static inline __attribute__((always_inline)) void q8p_tile(const qw_q4w *w, int g, const qw_q8act *a, int m,
                                                           const int MB, float *out) {
    const int nb = w->n_blocks, B = w->block, nc = B / 32;
    const uint8_t *qg, *zp;
    const float *sc;
    const uint16_t *sh;
    q8p_group(w, g, &qg, &sc, &sh, &zp);
    const int8_t *qa[Q8P_MB];
    const float *da[Q8P_MB];
    const int32_t *sa[Q8P_MB];
    q8p_act_rows(a, m, MB, nb, qa, da, sa);
    /* two weight vectors (j, j+1) per 256-bit step; the halves add up once per block */
    __m128 acc[Q8P_MB];
    for (int mi = 0; mi < MB; mi++) acc[mi] = _mm_setzero_ps();
    const __m256i m4 = _mm256_set1_epi8(15), ones = _mm256_set1_epi16(1);
    const __m256i ia = _mm256_setr_epi32(0, 0, 0, 0, 2, 2, 2, 2), ib = _mm256_setr_epi32(1, 1, 1, 1, 3, 3, 3, 3);
    for (int b = 0; b < nb; b++) {
        __m256i bi[Q8P_MB];
        for (int mi = 0; mi < MB; mi++) bi[mi] = _mm256_setzero_si256();
        const uint8_t *qb = qg + (size_t)b * nc * 64;
        for (int c = 0; c < nc; c++) {
            __m256i s16[Q8P_MB];
            for (int mi = 0; mi < MB; mi++) s16[mi] = _mm256_setzero_si256();
            for (int h = 0; h < 2; h++) {
                __m256i v = _mm256_loadu_si256((const __m256i *)(qb + c * 64 + h * 32));
                __m256i lo = _mm256_and_si256(v, m4), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
                for (int mi = 0; mi < MB; mi++) {
                    __m256i xx = _mm256_broadcastsi128_si256(
                        _mm_loadu_si128((const __m128i *)(qa[mi] + b * B + c * 32 + h * 16)));
                    s16[mi] = _mm256_add_epi16(
                        s16[mi], _mm256_add_epi16(_mm256_maddubs_epi16(lo, _mm256_permutevar8x32_epi32(xx, ia)),
                                                  _mm256_maddubs_epi16(hi, _mm256_permutevar8x32_epi32(xx, ib))));
                }
            }
            for (int mi = 0; mi < MB; mi++) bi[mi] = _mm256_add_epi32(bi[mi], _mm256_madd_epi16(s16[mi], ones));
        }
        __m128i z = zp ? _mm_cvtepu8_epi32(_mm_cvtsi32_si128(*(const int32_t *)(zp + (size_t)b * 4)))
                       : _mm_set1_epi32(8);
        __m128 ws = q8p_scales(sc, sh, b);
        for (int mi = 0; mi < MB; mi++) {
            __m128i s = _mm_add_epi32(_mm256_castsi256_si128(bi[mi]), _mm256_extracti128_si256(bi[mi], 1));
            s = _mm_sub_epi32(s, _mm_mullo_epi32(z, _mm_set1_epi32(sa[mi][b])));
            __m128 ds = _mm_mul_ps(_mm_set1_ps(da[mi][b]), ws);
            acc[mi] = _mm_add_ps(acc[mi], _mm_mul_ps(_mm_cvtepi32_ps(s), ds));
        }
    }
    for (int mi = 0; mi < MB; mi++) _mm_storeu_ps(out + mi * 4, acc[mi]);
}

static void tile_avx2(const qw_q4w *w, int g, const qw_q8act *a, int m, int mb, float *out) {
    switch (mb) { /* MB a constant in each expansion */
    case 4: q8p_tile(w, g, a, m, 4, out); break;
    case 3: q8p_tile(w, g, a, m, 3, out); break;
    case 2: q8p_tile(w, g, a, m, 2, out); break;
    default: q8p_tile(w, g, a, m, 1, out); break;
    }
}
static void decode_avx2(const qw_q4w *w, int g, const qw_q8act *a, int m, int mb, float *out) {
    q8p_tile(w, g, a, m, 1, out);
}
const qw_kernel_table qw_kt_avx2 = {"avx2", 0, Q8P_MB, decode_avx2, tile_avx2, NULL};

#endif /* QW_AVX2 */
