/* qw_kernels_packed_wasm.c - the packed 4-bit x int8 tiles in wasm SIMD128 and relaxed SIMD: rows of the kernel
 * table (qw_kernels.h); the layout, the scalar reference tile and the loops that call the tiles are in
 * qw_kernels_packed.c. Four tiles: SIMD128 (nibbles widened to i16, i32x4.dot_i16x8), relaxed (i16 relaxed dots),
 * relaxed with i32x4.relaxed_dot_i8x16_i7x16_add_s (decode rows only) and the relaxed two-group prefill tile. Each
 * computes the scalar reference's integer dot per block and row and the same float steps in the same order, so
 * the same bits. */
#include "qw_kernels_impl.h"

#if defined(QW_WASM_SIMD)

/* Activation rows sharing each unpacked weight vector: 8 where the i16 relaxed dot keeps the per-row work at one
 * splat, one dot and one add (its accumulators fit the 16 vector registers), else 4 */
#if defined(QW_WASM_RELAXED)
#define Q8P_MB 8
#else
#define Q8P_MB 4
#endif

/* The high nibble of each byte: a 16-bit shift masked with the register that holds m4 = splat(15) already (V8
 * makes i8x16.shr_u a 16-bit shift and an AND with a constant it rebuilds in the loop: 3 more instructions) */
static inline v128_t qv_hi_nibbles(v128_t v, v128_t m4) { return wasm_v128_and(wasm_u16x8_shr(v, 4), m4); }

/* The 4 rows' scales of block b: fp16 (sh) converted exactly (finite halves, see qw_q4_pack_scales), else fp32 */
static inline v128_t q8p_scales(const float *sc, const uint16_t *sh, int b) {
    return sh ? qv_load_f16(sh + (size_t)b * 4) : wasm_v128_load(sc + (size_t)b * 4);
}

/* One 4-row group g times MB activation rows m .. m+MB-1: out[mi*4 + r].
 * Each 16-byte weight vector holds 4 rows x 4 bytes, so one dot product of its nibbles with 4 activation
 * bytes broadcast to every lane leaves each row's sum in its own lane: no horizontal sums. DA: the dot-add. */
static inline __attribute__((always_inline)) void q8p_tile(const qw_q4w *w, int g, const qw_q8act *a, int m,
                                                           const int MB, const int DA, const int NC, float *out) {
    (void)DA;
    const int nb = w->n_blocks, B = NC ? NC * 32 : w->block, nc = NC ? NC : B / 32;
    const uint8_t *qg, *zp;
    const float *sc;
    const uint16_t *sh;
    q8p_group(w, g, &qg, &sc, &sh, &zp);
    const int8_t *qa[Q8P_MB];
    const float *da[Q8P_MB];
    const int32_t *sa[Q8P_MB];
    q8p_act_rows(a, m, MB, nb, qa, da, sa);
    v128_t acc[Q8P_MB];
    for (int mi = 0; mi < MB; mi++) acc[mi] = wasm_f32x4_splat(0.0f);
    const v128_t m4 = wasm_i8x16_splat(15);
    for (int b = 0; b < nb; b++) {
        v128_t bi[Q8P_MB]; /* [r0 r1 r2 r3] integer dot products of the block */
        const uint8_t *qb = qg + (size_t)b * nc * 64;
        for (int c = 0; c < nc; c++) {
            const int koff = b * B + c * 32;
#if defined(QW_WASM_DOT_ADD)
            if (DA) { /* i32x4.relaxed_dot_i8x16_i7x16_add_s (decode rows only, see qw_kt_relaxed_dot_add) */
                if (!c)
                    for (int mi = 0; mi < MB; mi++) bi[mi] = wasm_i32x4_splat(0);
                for (int j = 0; j < 4; j++) {
                    v128_t v = wasm_v128_load(qb + c * 64 + j * 16);
                    v128_t lo = wasm_v128_and(v, m4), hi = qv_hi_nibbles(v, m4);
                    for (int mi = 0; mi < MB; mi++) {
                        v128_t xa = wasm_v128_load32_splat(qa[mi] + koff + 8 * j);
                        v128_t xb = wasm_v128_load32_splat(qa[mi] + koff + 8 * j + 4);
                        /* short chains: the dot-add's latency would otherwise bound the loop */
                        v128_t t = (v128_t)__builtin_wasm_relaxed_dot_i8x16_i7x16_add_s_i32x4(
                            (__i8x16)xa, (__i8x16)lo, (__i32x4)wasm_i32x4_splat(0));
                        t = (v128_t)__builtin_wasm_relaxed_dot_i8x16_i7x16_add_s_i32x4((__i8x16)xb, (__i8x16)hi,
                                                                                       (__i32x4)t);
                        bi[mi] = wasm_i32x4_add(bi[mi], t);
                    }
                }
                continue;
            }
#endif
#if defined(QW_WASM_RELAXED)
            /* i16 partial sums: 8 dots of 2 products (|nibble x int8| <= 15 x 127) stay below 2^15 */
            v128_t s16[Q8P_MB];
            for (int mi = 0; mi < MB; mi++) s16[mi] = wasm_i16x8_splat(0);
            for (int j = 0; j < 4; j++) {
                v128_t v = wasm_v128_load(qb + c * 64 + j * 16);
                v128_t lo = wasm_v128_and(v, m4), hi = qv_hi_nibbles(v, m4);
                for (int mi = 0; mi < MB; mi++) {
                    v128_t xa = wasm_v128_load32_splat(qa[mi] + koff + 8 * j);
                    v128_t xb = wasm_v128_load32_splat(qa[mi] + koff + 8 * j + 4);
                    s16[mi] = wasm_i16x8_add(
                        s16[mi], wasm_i16x8_add(
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
            v128_t p01[Q8P_MB], p23[Q8P_MB];
            for (int mi = 0; mi < MB; mi++) p01[mi] = p23[mi] = wasm_i32x4_splat(0);
            for (int j = 0; j < 4; j++) {
                v128_t v = wasm_v128_load(qb + c * 64 + j * 16);
                v128_t lo = wasm_v128_and(v, m4), hi = qv_hi_nibbles(v, m4);
                v128_t lo01 = wasm_u16x8_extend_low_u8x16(lo), lo23 = wasm_u16x8_extend_high_u8x16(lo);
                v128_t hi01 = wasm_u16x8_extend_low_u8x16(hi), hi23 = wasm_u16x8_extend_high_u8x16(hi);
                for (int mi = 0; mi < MB; mi++) {
                    v128_t xa = wasm_i16x8_extend_low_i8x16(wasm_v128_load32_splat(qa[mi] + koff + 8 * j));
                    v128_t xb = wasm_i16x8_extend_low_i8x16(wasm_v128_load32_splat(qa[mi] + koff + 8 * j + 4));
                    p01[mi] = wasm_i32x4_add(
                        p01[mi], wasm_i32x4_add(wasm_i32x4_dot_i16x8(lo01, xa), wasm_i32x4_dot_i16x8(hi01, xb)));
                    p23[mi] = wasm_i32x4_add(
                        p23[mi], wasm_i32x4_add(wasm_i32x4_dot_i16x8(lo23, xa), wasm_i32x4_dot_i16x8(hi23, xb)));
                }
            }
            for (int mi = 0; mi < MB; mi++) {
                v128_t s32 = wasm_i32x4_add(wasm_i32x4_shuffle(p01[mi], p23[mi], 0, 2, 4, 6),
                                            wasm_i32x4_shuffle(p01[mi], p23[mi], 1, 3, 5, 7));
                bi[mi] = c ? wasm_i32x4_add(bi[mi], s32) : s32;
            }
#endif
        }
        v128_t z = zp ? wasm_u32x4_extend_low_u16x8(
                            wasm_u16x8_extend_low_u8x16(wasm_v128_load32_zero(zp + (size_t)b * 4)))
                      : wasm_i32x4_splat(8);
        v128_t ws = q8p_scales(sc, sh, b);
        for (int mi = 0; mi < MB; mi++) {
            v128_t s = wasm_i32x4_sub(bi[mi], wasm_i32x4_mul(z, wasm_i32x4_splat(sa[mi][b])));
            v128_t ds = wasm_f32x4_mul(wasm_f32x4_splat(da[mi][b]), ws);
            acc[mi] = wasm_f32x4_add(acc[mi], wasm_f32x4_mul(wasm_f32x4_convert_i32x4(s), ds));
        }
    }
    for (int mi = 0; mi < MB; mi++) wasm_v128_store(out + mi * 4, acc[mi]);
}

#if defined(QW_WASM_RELAXED)
/* Two 4-row groups g, g+1 times MB activation rows: out[(gi * MB + mi) * 4 + r]. Each activation broadcast
 * feeds both groups' weight vectors, so a product of 32 nibbles costs two dots, two adds and one broadcast
 * (the one-group tile: two broadcasts); the integer and float arithmetic per output is q8p_tile's. */
static inline __attribute__((always_inline)) void q8p_tile2(const qw_q4w *w, int g, const qw_q8act *a, int m,
                                                            const int MB, const int NC, float *out) {
    const int nb = w->n_blocks, B = NC ? NC * 32 : w->block, nc = NC ? NC : B / 32;
    const size_t gq = (size_t)nb * nc * 64, gs = (size_t)nb * 4; /* one group's bytes of q, scales per group */
    const uint8_t *qg, *zp;
    const float *sc;
    const uint16_t *sh;
    q8p_group(w, g, &qg, &sc, &sh, &zp);
    const int8_t *qa[4];
    const float *da[4];
    const int32_t *sa[4];
    q8p_act_rows(a, m, MB, nb, qa, da, sa);
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
                v128_t lo0 = wasm_v128_and(v0, m4), hi0 = qv_hi_nibbles(v0, m4);
                v128_t lo1 = wasm_v128_and(v1, m4), hi1 = qv_hi_nibbles(v1, m4);
                for (int mi = 0; mi < MB; mi++) {
                    v128_t xa = wasm_v128_load32_splat(qa[mi] + koff + 8 * j);
                    v128_t xb = wasm_v128_load32_splat(qa[mi] + koff + 8 * j + 4);
                    s0[mi] = wasm_i16x8_add(
                        s0[mi], wasm_i16x8_add(
                                    (v128_t)__builtin_wasm_relaxed_dot_i8x16_i7x16_s_i16x8((__i8x16)xa, (__i8x16)lo0),
                                    (v128_t)__builtin_wasm_relaxed_dot_i8x16_i7x16_s_i16x8((__i8x16)xb, (__i8x16)hi0)));
                    s1[mi] = wasm_i16x8_add(
                        s1[mi], wasm_i16x8_add(
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
            z1 = wasm_u32x4_extend_low_u16x8(
                wasm_u16x8_extend_low_u8x16(wasm_v128_load32_zero(zp + gs + (size_t)b * 4)));
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

/* The table's entry points: MB a constant in each expansion of the tile */
#if defined(QW_WASM_RELAXED)
static void tile_relaxed(const qw_q4w *w, int g, const qw_q8act *a, int m, int mb, float *out) {
    if (mb == 8 && w->block == 32) { /* the exports' block: one chunk per block, no chunk loop (fewer spills) */
        q8p_tile(w, g, a, m, 8, 0, 1, out);
        return;
    }
    switch (mb) {
    case 8: q8p_tile(w, g, a, m, 8, 0, 0, out); break;
    case 7: q8p_tile(w, g, a, m, 7, 0, 0, out); break;
    case 6: q8p_tile(w, g, a, m, 6, 0, 0, out); break;
    case 5: q8p_tile(w, g, a, m, 5, 0, 0, out); break;
    case 4: q8p_tile(w, g, a, m, 4, 0, 0, out); break;
    case 3: q8p_tile(w, g, a, m, 3, 0, 0, out); break;
    case 2: q8p_tile(w, g, a, m, 2, 0, 0, out); break;
    default: q8p_tile(w, g, a, m, 1, 0, 0, out); break;
    }
}
static void tile2_relaxed(const qw_q4w *w, int g, const qw_q8act *a, int m, int mb, float *out) {
    if (mb == 4 && w->block == 32) {
        q8p_tile2(w, g, a, m, 4, 1, out);
        return;
    }
    switch (mb) {
    case 4: q8p_tile2(w, g, a, m, 4, 0, out); break;
    case 3: q8p_tile2(w, g, a, m, 3, 0, out); break;
    case 2: q8p_tile2(w, g, a, m, 2, 0, out); break;
    default: q8p_tile2(w, g, a, m, 1, 0, out); break;
    }
}
static void decode_relaxed(const qw_q4w *w, int g, const qw_q8act *a, int m, int mb, float *out) {
    q8p_tile(w, g, a, m, 1, 0, 0, out);
}
/* Prefill tile 0 (one group x 8 rows) comes first in q8p_rows, the row used until qw_kernels_choose_tile has timed
 * both: in Chromium 156 and Firefox 153 it gives 0-8 % more GMAC/s than tile 1 (two groups x 4 rows), which Node
 * 20's V8 runs 12-35 % faster (tools/bench/kernel_probe.mjs --prefill, 2026-12-04). */
const qw_kernel_table qw_kt_relaxed = {"relaxed", 0, Q8P_MB, decode_relaxed, tile_relaxed, tile2_relaxed};
const qw_kernel_table qw_kt_relaxed_tile0 = {"relaxed-tile0", 0, Q8P_MB, decode_relaxed, tile_relaxed, NULL};

#if defined(QW_WASM_DOT_ADD)
static void decode_dot_add(const qw_q4w *w, int g, const qw_q8act *a, int m, int mb, float *out) {
    q8p_tile(w, g, a, m, 1, 1, 0, out);
}
/* The dot-add for decode rows only: in Chromium it made the 4-row prefill tiles slower and the one-row decode
 * tile faster (tools/bench/kernel_probe.mjs, no-dot-add). Prefill tiles that accumulate with the dot-add (one
 * group x 8 rows, 4 x 2 and 6 x 2 chains) ran at 47-50 GMAC/s against tile 0's 55 in Chromium 156 on a Zen 5 EPYC,
 * where V8 makes the dot-add one vpdpbusd (its register-only peak 135-139 GMAC/s against the i16 dot's 113-118):
 * vpdpbusd does the 16 products of the relaxed i16 dot's pmaddubsw and saves only the i16 add, which was not the
 * tile's limit (kernel_probe --prefill, 2026-12-04). Two rows, the prefill tiles 0 and 1 under this decode tile,
 * for qw_kernels_choose_tile. */
const qw_kernel_table qw_kt_relaxed_dot_add = {"relaxed-dot-add", 1, Q8P_MB, decode_dot_add, tile_relaxed, NULL};
const qw_kernel_table qw_kt_relaxed_dot_add_tile1 = {
    "relaxed-dot-add-tile1", 1, Q8P_MB, decode_dot_add, tile_relaxed, tile2_relaxed};

/* Node 20's V8 (11.3) gets i32x4.relaxed_dot_i8x16_i7x16_add_s wrong; Chromium's and Firefox's are right.
 * So the relaxed build checks the engine on known values before using it. */
int qw_q8p_dot_add_works(void) {
    int8_t x[16];
    uint8_t v[16];
    int32_t c[4] = {1000, -2000, 3000, -4000}, r[4];
    for (int i = 0; i < 16; i++) x[i] = (int8_t)(i * 17 - 127), v[i] = (uint8_t)((i * 7 + 3) & 15);
    volatile v128_t vx = wasm_v128_load(x), vv = wasm_v128_load(v), vc = wasm_v128_load(c); /* not folded */
    wasm_v128_store(r,
                    (v128_t)__builtin_wasm_relaxed_dot_i8x16_i7x16_add_s_i32x4((__i8x16)vx, (__i8x16)vv, (__i32x4)vc));
    for (int l = 0; l < 4; l++) {
        int32_t e = c[l];
        for (int t = 0; t < 4; t++) e += x[4 * l + t] * v[4 * l + t];
        if (r[l] != e) return 0;
    }
    return 1;
}
#endif

#else /* SIMD128 without relaxed SIMD */
static void tile_simd128(const qw_q4w *w, int g, const qw_q8act *a, int m, int mb, float *out) {
    switch (mb) {
    case 4: q8p_tile(w, g, a, m, 4, 0, 0, out); break;
    case 3: q8p_tile(w, g, a, m, 3, 0, 0, out); break;
    case 2: q8p_tile(w, g, a, m, 2, 0, 0, out); break;
    default: q8p_tile(w, g, a, m, 1, 0, 0, out); break;
    }
}
static void decode_simd128(const qw_q4w *w, int g, const qw_q8act *a, int m, int mb, float *out) {
    q8p_tile(w, g, a, m, 1, 0, 0, out);
}
const qw_kernel_table qw_kt_simd128 = {"simd128", 0, Q8P_MB, decode_simd128, tile_simd128, NULL};
#endif

#endif /* QW_WASM_SIMD */
