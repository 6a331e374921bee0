/* qw_kernels_packed.c - decode kernels over layouts made once at load:
 *  - 4-bit MatMulNBits weights in 4-row groups (qw_q4_pack_q) times int8 activations (accuracy_level 4): the
 *    layout, the scalar reference tile, the kernel table (qw_kernels.h) and the loops that call its tiles; the SIMD
 *    tiles are in one file per ISA family (qw_kernels_packed_wasm.c, qw_kernels_packed_x86.c);
 *  - the int8 lm_head rows (qw_i8w) times 7-bit activations;
 *  - qw_kernels_warmup.
 * Both stream one contiguous run of bytes per thread (4 rows interleaved in 16-byte chunks) and reduce the
 * four rows' integer dot products of a block into one i32x4 [r0 r1 r2 r3], so each block costs one
 * convert, one scale multiply and one add for four rows; the float arithmetic per output is the scalar
 * reference's (sum over blocks, in order, of (float)dot * (d_x * d_w)), so every version (scalar, SIMD128,
 * relaxed SIMD, AVX2) gives the same bits as the reference. For M > 1 (prefill) up to 8 activation rows
 * share each unpacked weight vector (relaxed SIMD: two 4-row groups x 4 activation rows share each activation
 * broadcast, the table's tile2), inside tiles of QW_M_TILE activation rows that stay in cache while the thread's
 * weights stream once per tile. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "qw_clock.h"
#include "qw_kernels_impl.h"

#define QW_M_TILE 32

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
                        o = j < 2 ? (w1 & 0x0f0f0f0fu) | (w2 & 0x0f0f0f0fu) << 4
                                  : (w1 >> 4 & 0x0f0f0f0fu) | (w2 & 0xf0f0f0f0u);
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

/* The scalar reference tile: one 4-row group g times mb activation rows m .. m+mb-1, out[mi*4 + r]. Each 16-byte
 * weight vector holds 4 bytes of each of the 4 rows; the SIMD tiles dot it with 4 activation bytes broadcast to
 * every lane, so each row's sum stays in its own lane, with this integer arithmetic per block and row. */
static void q8p_tile_ref(const qw_q4w *w, int g, const qw_q8act *a, int m, int mb, float *out) {
    const int nb = w->n_blocks, B = w->block, nc = B / 32;
    const uint8_t *qg = w->q + (size_t)g * nb * nc * 64;
    const float *sc = w->scales_h ? NULL : w->scales + (size_t)g * nb * 4;
    const uint16_t *sh = w->scales_h ? w->scales_h + (size_t)g * nb * 4 : NULL;
    const uint8_t *zp = w->zp ? w->zp + (size_t)g * nb * 4 : NULL;
    for (int mi = 0; mi < mb; mi++) {
        const int8_t *qa = a->q + (size_t)(m + mi) * a->kp;
        const float *da = a->d + (size_t)(m + mi) * nb;
        const int32_t *sa = a->s + (size_t)(m + mi) * nb;
        for (int r = 0; r < 4; r++) {
            float accr = 0.0f;
            for (int b = 0; b < nb; b++) {
                int32_t dot = -(zp ? zp[(size_t)b * 4 + r] : 8) * sa[b];
                for (int c = 0; c < nc; c++)
                    for (int j = 0; j < 4; j++) {
                        const uint8_t *v = qg + ((size_t)b * nc + c) * 64 + j * 16 + r * 4;
                        const int8_t *x = qa + (size_t)b * B + c * 32 + 8 * j;
                        for (int i = 0; i < 4; i++) dot += (v[i] & 15) * x[i] + (v[i] >> 4) * x[4 + i];
                    }
                accr += (float)dot * (da[b] * (sh ? qw_f16_to_f32(sh[(size_t)b * 4 + r]) : sc[(size_t)b * 4 + r]));
            }
            out[mi * 4 + r] = accr;
        }
    }
}

const qw_kernel_table qw_kt_scalar = {"scalar", 0, 4, q8p_tile_ref, q8p_tile_ref, NULL};

/* This build's rows, the preferred first; the dot-add row counts only where the engine computes it right */
static const qw_kernel_table *const q8p_rows[] = {
#if defined(QW_WASM_DOT_ADD)
    &qw_kt_relaxed_dot_add, &qw_kt_relaxed_dot_add_tile1,
#endif
/* relaxed: tile 0 first (faster in Chromium 156 and Firefox 153); qw_kernels_choose_tile times them on the engine */
#if defined(QW_WASM_RELAXED)
    &qw_kt_relaxed_tile0,   &qw_kt_relaxed,
#elif defined(QW_WASM_SIMD)
    &qw_kt_simd128,
#elif defined(QW_AVX2)
    &qw_kt_avx2,
#endif
    &qw_kt_scalar,
};

static int dot_add_ok(void) {
#if defined(QW_WASM_DOT_ADD)
    static atomic_int ok = -1; /* checked once: the engine does not change */
    int v = atomic_load_explicit(&ok, memory_order_relaxed);
    if (v < 0) atomic_store_explicit(&ok, v = qw_q8p_dot_add_works(), memory_order_relaxed);
    return v;
#else
    return 0;
#endif
}

const qw_kernel_table *qw_kernels_variant(int i) {
    const int n = (int)(sizeof q8p_rows / sizeof q8p_rows[0]), da = dot_add_ok();
    for (int r = 0; r < n; r++)
        if ((da || !q8p_rows[r]->dot_add) && i-- == 0) return q8p_rows[r];
    return NULL;
}

static atomic_int q8p_chosen; /* the row qw_kernels() returns: 0 until qw_kernels_choose_tile */
const qw_kernel_table *qw_kernels(void) {
    const qw_kernel_table *kt = qw_kernels_variant(atomic_load_explicit(&q8p_chosen, memory_order_relaxed));
    return kt ? kt : qw_kernels_variant(0);
}

/* Which prefill tile is fastest depends on the engine as well as the build: V8 makes the i32 dot-add one
 * vpdpbusd where the CPU has AVX-VNNI (three instructions elsewhere), SpiderMonkey three instructions
 * everywhere, and the i16 tiles' order differs between V8 versions. So the rows that share row 0's decode
 * kernel and differ in their prefill tile are timed against each other on one thread, interleaved, best of
 * many runs (the JIT's later tier counts, not its first), and qw_kernels() returns the fastest. Every row gives
 * the reference's bits: the choice changes the speed only. About 15 ms in Node; nothing to time natively (one row). */
void qw_kernels_choose_tile(void) {
    enum { N = 256, K = 1536, M = QW_M_TILE, REPS = 24, MAXC = 4 };
    static atomic_int timed; /* once per process, as dot_add_ok: the engine does not change between model loads */
    if (atomic_exchange_explicit(&timed, 1, memory_order_relaxed)) return;
    const qw_kernel_table *row0 = qw_kernels_variant(0), *kt;
    int cand[MAXC], nc = 0;
    for (int i = 0; (kt = qw_kernels_variant(i)) && nc < MAXC; i++) {
        int dup = kt->decode != row0->decode || !strcmp(kt->name, "scalar");
        for (int c = 0; c < nc; c++) {
            const qw_kernel_table *o = qw_kernels_variant(cand[c]);
            dup |= o->tile == kt->tile && o->tile2 == kt->tile2;
        }
        if (!dup) cand[nc++] = i;
    }
    if (nc < 2) return;
    const int nb = K / 32;
    uint8_t *q = malloc((size_t)N * K / 2);
    uint16_t *sh = malloc((size_t)N * nb * sizeof(uint16_t));
    float *x = malloc((size_t)M * K * sizeof(float)), *y = malloc((size_t)M * N * sizeof(float));
    qw_q4w w = {.N = N, .K = K, .block = 32, .n_blocks = nb, .q = q, .scales_h = sh, .packed = 1};
    void *work = malloc(qw_q4_matmul_q8_work_size(&w, M));
    if (q && sh && x && y && work) {
        for (size_t i = 0; i < (size_t)N * K / 2; i++) q[i] = (uint8_t)(i * 37 + (i >> 7));
        for (int i = 0; i < N * nb; i++) sh[i] = (uint16_t)(0x2000 + (i * 7) % 0x400);
        for (int i = 0; i < M * K; i++) x[i] = (float)((i * 13) % 17) - 8.0f;
        double best[MAXC];
        for (int c = 0; c < nc; c++) best[c] = 1e30;
        for (int r = 0; r < REPS; r++)
            for (int c = 0; c < nc; c++) {
                double t0 = qw_now_ms();
                qw_q4_matmul_q8_with(qw_kernels_variant(cand[c]), NULL, &w, x, M, NULL, y, work);
                double dt = qw_now_ms() - t0;
                if (dt < best[c]) best[c] = dt;
            }
        int win = 0;
        for (int c = 1; c < nc; c++)
            if (best[c] < best[win]) win = c;
        atomic_store_explicit(&q8p_chosen, cand[win], memory_order_relaxed);
    }
    free(q), free(sh), free(x), free(y), free(work);
}

/* Every table row's tile output goes through this scalar tail: bias added, rows m .. m+mb-1 of groups g .. g+ng-1
 * stored into y (M, N) */
static inline void q8p_store(const qw_q4w *w, const float *o, int g, int ng, int m, int mb, const float *bias,
                             float *y) {
    for (int gi = 0; gi < ng; gi++)
        for (int mi = 0; mi < mb; mi++)
            for (int r = 0; r < 4; r++) {
                int n = (g + gi) * 4 + r;
                y[(size_t)(m + mi) * w->N + n] = o[(gi * mb + mi) * 4 + r] + (bias ? bias[n] : 0.0f);
            }
}

_Atomic unsigned qw_touch_sink; /* qw_touch's loads (wasm) are kept by a store of their sum here */
int qw_lookahead_on = 1;
void qw_kernels_set_lookahead(int on) { qw_lookahead_on = on != 0; }
int qw_kernels_lookahead(void) { return qw_lookahead_on; }
void qw_q4_matmul_q8_packed_task(const qw_kernel_table *kt, const qw_q4w *w, const qw_q8act *a, int M,
                                 const float *bias, float *y, int ith, int nth) {
    int lo, hi;
    qw_split(w->N / 4, ith, nth, QW_ROW_ALIGN / 4, &lo, &hi);
    float o[4 * QW_MB_MAX]; /* also two groups x 4 rows (tile2) */
    if (M == 1) {
        /* decode streams the weights from DRAM: the next group is touched before this one is computed, so its
         * cache misses overlap this group's work (1.5B shape on a 2-core Xeon: 9.8 -> 16 tok/s native, 7.2 ->
         * 11.5 in Chromium) */
        const size_t gbytes = (size_t)w->n_blocks * (size_t)(w->block / 32) * 64;
        unsigned sink = 0;
        for (int g = lo; g < hi; g++) {
            if (g + 1 < hi) qw_touch(w->q + (size_t)(g + 1) * gbytes, gbytes, &sink);
            kt->decode(w, g, a, 0, 1, o);
            q8p_store(w, o, g, 1, 0, 1, bias, y);
        }
        qw_touch_publish(sink);
        return;
    }
    for (int m0 = 0; m0 < M; m0 += QW_M_TILE) {
        int m1 = QW_MIN(m0 + QW_M_TILE, M), g = lo;
        if (kt->tile2)
            for (; g + 2 <= hi; g += 2)
                for (int m = m0; m < m1; m += 4) {
                    int mb = QW_MIN(4, m1 - m);
                    kt->tile2(w, g, a, m, mb, o);
                    q8p_store(w, o, g, 2, m, mb, bias, y);
                }
        for (; g < hi; g++) /* all groups, or the odd last one of tile2 */
            for (int m = m0; m < m1; m += kt->mb_max) {
                int mb = QW_MIN(kt->mb_max, m1 - m);
                kt->tile(w, g, a, m, mb, o);
                q8p_store(w, o, g, 1, m, mb, bias, y);
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
static inline const int32_t *i8w_sums(const qw_i8w *w) {
    return (const int32_t *)(w->scales + (size_t)w->N4 * w->n_blocks);
}
static inline size_t i8w_ix(const qw_i8w *w, int n, int k) { /* byte of row n, element k (k < n_blocks * block) */
    return ((size_t)(n >> 2) * w->n_blocks * w->block + (size_t)(k & ~3)) * 4 + (size_t)(n & 3) * 4 + (size_t)(k & 3);
}

typedef struct {
    qw_i8w *w;
    const void *B; /* row row0 */
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
    if (!row || !qf) {
        free(row), free(qf);
        return;
    } /* cannot happen in practice; zero rows stay bounded */
    for (int n = lo * 4; n < hi * 4; n++) {
        memset(row, 0, (size_t)nb * B * sizeof(float));
        if (n < w->N && n < t->row0 + t->n_rows) {
            size_t at = (size_t)(n - t->row0) * t->ldb;
            if (t->f16)
                qw_f16_to_f32_array((const uint16_t *)t->B + at, row, (size_t)K);
            else
                memcpy(row, (const float *)t->B + at, (size_t)K * sizeof(float));
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
static inline void i8_group(const qw_i8w *w, int g, const int8_t *qx, const uint8_t *qu, const float *dx,
                            float out[4]) {
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
            v128_t d0 = (v128_t)__builtin_wasm_relaxed_dot_i8x16_i7x16_s_i16x8((__i8x16)wasm_v128_load(qb + k * 4),
                                                                               (__i8x16)wasm_v128_load32_splat(xb + k));
            v128_t d1 = (v128_t)__builtin_wasm_relaxed_dot_i8x16_i7x16_s_i16x8(
                (__i8x16)wasm_v128_load(qb + k * 4 + 16), (__i8x16)wasm_v128_load32_splat(xb + k + 4));
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
            __m256i xv = _mm256_permutevar8x32_epi32(_mm256_castsi128_si256(_mm_loadl_epi64((const __m128i *)(xb + k))),
                                                     idx);
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
            for (int k = 0; k < B; k++)
                dot += qg[i8w_ix(w, r, b * B + k)] * qx[b * B + k]; /* rows of group g, from qg */
            accr += (float)dot * (dx[b] * sc[(size_t)b * 4 + r]);
        }
        out[r] = accr;
    }
#endif
}

/* M activation rows, each quantised as qw_i8_matvec quantises one: row m's qx / qu / dx at m * stride bytes */
typedef struct {
    const qw_i8w *w;
    const uint8_t *act; /* M rows of (qx, qu, dx), stride bytes apart */
    size_t stride, qu_off, dx_off;
    int M;
    float *y; /* (M, N) */
} i8mv_task;

/* Each thread streams its weight groups once; every activation row takes a group while it is in L1, so M rows
 * cost one pass over the 233 MB of the 1.5B's rows instead of M (a speculative step's verified rows) */
static void i8_mv_run(void *p, int ith, int nth) {
    i8mv_task *t = p;
    const qw_i8w *w = t->w;
    int lo, hi;
    qw_split(w->N4 / 4, ith, nth, QW_ROW_ALIGN / 4, &lo, &hi);
    const size_t gbytes = (size_t)w->n_blocks * (size_t)w->block * 4;
    unsigned sink = 0;
    for (int g = lo; g < hi; g++) {
        float o[4];
        if (g + 1 < hi)
            qw_touch((const uint8_t *)w->q + (size_t)(g + 1) * gbytes, gbytes, &sink); /* as in decode's q4 products */
        for (int m = 0; m < t->M; m++) {
            const uint8_t *r = t->act + (size_t)m * t->stride;
            i8_group(w, g, (const int8_t *)r, r + t->qu_off, (const float *)(r + t->dx_off), o);
            float *y = t->y + (size_t)m * (size_t)w->N;
            for (int k = 0; k < 4 && g * 4 + k < w->N; k++) y[g * 4 + k] = o[k];
        }
    }
    qw_touch_publish(sink);
}

/* one activation row's part of the work, its 7-bit activations per block: qx (kp = n_blocks * block int8), qu (the
 * same + 64: 0..127, the relaxed dot's unsigned operand) and dx (n_blocks float scales), each 64-aligned */
static size_t i8_row_bytes(const qw_i8w *w, size_t *qu_off, size_t *dx_off) {
    const size_t kp = (size_t)w->n_blocks * w->block, a = (kp + 63) & ~(size_t)63;
    *qu_off = a;
    *dx_off = 2 * a;
    return 2 * a + (((size_t)w->n_blocks * sizeof(float) + 63) & ~(size_t)63);
}

size_t qw_i8_matmul_work_size(const qw_i8w *w, int M) {
    size_t qo, dxo;
    return 64 + (size_t)(M > 0 ? M : 1) * i8_row_bytes(w, &qo, &dxo);
}

void qw_i8_matmul(qw_pool *pool, const qw_i8w *w, int M, const float *x, float *y, void *work, double *xn_out,
                  double *ex_out) {
    size_t qu_off, dx_off, stride = i8_row_bytes(w, &qu_off, &dx_off);
    uint8_t *act = (uint8_t *)(((uintptr_t)work + 63) & ~(uintptr_t)63);
    for (int m = 0; m < M; m++) {
        uint8_t *r = act + (size_t)m * stride;
        i8_quant_x(w, x + (size_t)m * (size_t)w->K, (int8_t *)r, (float *)(r + dx_off), xn_out ? xn_out + m : NULL,
                   ex_out ? ex_out + m : NULL);
#if defined(QW_WASM_RELAXED)
        for (size_t k = 0; k < (size_t)w->n_blocks * w->block; k++) r[qu_off + k] = (uint8_t)(((int8_t *)r)[k] + 64);
#endif
    }
    i8mv_task t = {w, act, stride, qu_off, dx_off, M, y};
    qw_pool_run(pool, i8_mv_run, &t);
}

size_t qw_i8_matvec_work_size(const qw_i8w *w) { return qw_i8_matmul_work_size(w, 1); }

void qw_i8_matvec(qw_pool *pool, const qw_i8w *w, const float *x, float *y, void *work, double *xn_out,
                  double *ex_out) {
    qw_i8_matmul(pool, w, 1, x, y, work, xn_out, ex_out);
}

void qw_i8_matvec_ref(const qw_i8w *w, const float *x, float *y) {
    const int nb = w->n_blocks, B = w->block;
    int8_t *qx = malloc((size_t)nb * B);
    float *dx = malloc((size_t)nb * sizeof(float));
    if (!qx || !dx) {
        free(qx);
        free(dx);
        return;
    }
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
    qw_kernels_choose_tile();
}
