/* qw_kernels.h - the compute kernels, apart from the model and the graph.
 *
 * Each kernel has a plain scalar reference (qw_*_ref) that tests compare the fast versions against;
 * the fast versions use wasm SIMD128 (and relaxed SIMD when built with it) or SSE/AVX2 natively, and
 * split rows across a qw_pool. All buffers are caller-owned; kernels never allocate.
 * Activations are fp32; fp16 data is converted on the fly. */
#ifndef QW_KERNELS_H
#define QW_KERNELS_H

#include <stddef.h>
#include <stdint.h>
#include "qw_pool.h"

#define QW_MIN(a, b) ((a) < (b) ? (a) : (b))
#define QW_MAX(a, b) ((a) > (b) ? (a) : (b))

/* ---- 4-bit block-quantised weights, com.microsoft MatMulNBits layout ------------------------- */
typedef struct qw_q4w {
    int32_t N;                /* output features (rows of the weight) */
    int32_t K;                /* input features */
    int32_t block;            /* block size along K: a power of two >= 16 */
    int32_t n_blocks;         /* ceil(K / block) */
    const uint8_t *q;         /* (N, n_blocks, block/2): element 2k in the low nibble of byte k */
    const float *scales;      /* (N, n_blocks) */
    const uint16_t *scales_h; /* packed only, instead of scales: fp16 scales in the packed order (finite) */
    const uint8_t *zp;        /* (N, ceil(n_blocks/2)) 4-bit zero points, low nibble first; NULL = 8 */
    int32_t packed;           /* 1: the decode layout below (qw_q4_pack_q), for qw_q4_matmul_q8 only */
} qw_q4w;

/* The decode layout, made in place when a weight becomes resident (qw_ops_quant.c, accuracy_level 4, N % 4 == 0,
 * block % 32 == 0):
 * rows in groups of 4, and for group g, block b, 32-element chunk c, row r the 16 bytes of row 4g+r for
 * that chunk at q + ((g * n_blocks + b) * (block/32) + c) * 64 + r * 16 (nibble order unchanged), so a
 * thread streams one contiguous run of bytes; scales (fp32 in scales, or fp16 in scales_h) and zero points
 * (one byte each 0..15, or NULL for 8) interleaved the same way at qw_q4_packed_ix(n, b, n_blocks). The bytes of a 4-row group occupy the same
 * range before and after, so qw_q4_pack_q converts in place (tmp: 4 rows = 4 * n_blocks * block/2 bytes). */
int qw_q4_packable(int N, int block);
static inline size_t qw_q4_packed_ix(int n, int b, int n_blocks) {
    return ((size_t)(n >> 2) * (size_t)n_blocks + (size_t)b) * 4 + (size_t)(n & 3);
}
void qw_q4_pack_q(uint8_t *q, int N, int n_blocks, int block, void *tmp);
/* Scales (N, n_blocks) of elem_size 2 (fp16) or 4 (fp32) bytes into the packed order, in place (tmp: 4 *
 * n_blocks * elem_size bytes). Returns the first row whose fp16 scale is Inf or NaN (the kernels convert
 * halves with integer ops that assume finite values), or -1. */
int qw_q4_pack_scales(void *scales, int N, int n_blocks, int elem_size, void *tmp);

/* y(M,N) = x(M,K) . dequant(W)^T + bias(N). bias may be NULL. */
void qw_q4_matmul(qw_pool *pool, const qw_q4w *w, const float *x, int M, const float *bias, float *y);
void qw_q4_matmul_ref(const qw_q4w *w, const float *x, int M, const float *bias, float *y);

/* Which to call for a MatMulNBits node (onnxruntime CPU semantics, attribute accuracy_level):
 *  - accuracy_level 0 (unset), 1 (fp32), 2, 3: qw_q4_matmul above. fp32 activations; the weights are
 *    dequantised in registers ((q - zp) * scale) and accumulated in fp32, like MLAS CompFp32. Matches
 *    onnxruntime up to fp32 summation order.
 *  - accuracy_level 4 (int8): qw_q4_matmul_q8. Each activation row is quantised once per call, per
 *    weight block, to int8 = round_half_even(x * 127 / amax) with scale amax / 127 (MLAS
 *    QuantizeARow_CompInt8), then integer dot products per block, scaled and summed in fp32. Matches
 *    onnxruntime's CompInt8 path up to fp32 summation order; differs from exact fp32 by the int8
 *    rounding of the activations (about 1e-3..1e-2 relative on one output, see tests/test_kernels.c).
 *    It is the fast kernel (integer dot products, several times the speed of the fp32 one in wasm).
 * `work` holds the quantised activations: at least qw_q4_matmul_q8_work_size(w, M) bytes, any
 * alignment; it may be reused between calls (the kernel never allocates). */
size_t qw_q4_matmul_q8_work_size(const qw_q4w *w, int M);
void qw_q4_matmul_q8(qw_pool *pool, const qw_q4w *w, const float *x, int M, const float *bias, float *y, void *work);
void qw_q4_matmul_q8_ref(const qw_q4w *w, const float *x, int M, const float *bias, float *y);

/* ---- dense matrix products ----------------------------------------------------------------- */
/* C(M,N) = A(M,K) . B, where B is (K,N) row-major (trans_b = 0) or (N,K) row-major (trans_b = 1).
 * lda/ldb/ldc are row strides in elements. */
void qw_gemm_f32(qw_pool *pool, int M, int N, int K, const float *A, int lda, const float *B, int ldb, int trans_b,
                 float *C, int ldc);
void qw_gemm_f32_ref(int M, int N, int K, const float *A, int lda, const float *B, int ldb, int trans_b, float *C,
                     int ldc);
/* The same with B in fp16 (the tied lm_head: the (vocab, hidden) fp16 embedding with trans_b = 1). */
void qw_gemm_f16b(qw_pool *pool, int M, int N, int K, const float *A, int lda, const uint16_t *B, int ldb, int trans_b,
                  float *C, int ldc);
void qw_gemm_f16b_ref(int M, int N, int K, const float *A, int lda, const uint16_t *B, int ldb, int trans_b, float *C,
                      int ldc);

/* ---- int8 rows for the tied lm_head (qw_ops_lmhead.c) ---------------------------------------------
 * A large (N, K) fp16/fp32 weight quantised once at load to int8 per block of QW_I8_BLOCK along K
 * (round half even of w * 127 / amax, scale amax / 127), rows in groups of 4 with 4 bytes of each row per
 * 16-byte vector (a dot product with 4 activation bytes broadcast leaves each row's sum in its lane):
 * group g, block b, elements k .. k+3 (k % 4 == 0) of row r at q + ((g * n_blocks + b) * block + k) * 4 + r * 4;
 * K padded with zeros to n_blocks * block, N padded to a multiple of 4 with zero rows. The scales buffer
 * holds the scales, (N4/4, n_blocks, 4) floats, followed by each row's block sums of q in the same layout
 * (int32, for the relaxed dot whose activation operand must be non-negative: x + 64). Per row also the
 * L2 norm of the source row and of its quantisation error, for the error bound (see qw_i8_matvec). */
#define QW_I8_BLOCK 64
typedef struct qw_i8w {
    int32_t N, K, block, n_blocks, N4; /* N4 = N rounded up to 4 */
    int8_t *q;                         /* N4 * n_blocks * block */
    float *scales;                     /* (N4/4, n_blocks, 4), then int32 block sums of q in the same layout */
    float *wnorm, *enorm;              /* (N4) ||w_n||_2, ||w_n - dequant(q_n)||_2 */
} qw_i8w;
/* Version of what qw_i8w_quantize writes (layout and arithmetic): part of the name of the derived file a
 * cache keeps, so a changed quantiser never reads an old file. Bump on any change to its output. */
#define QW_I8W_LAYOUT 1
/* Sets the sizes; bytes of q, scales (and 2 * N4 floats of norms) to allocate. */
void qw_i8w_init(qw_i8w *w, int N, int K);
size_t qw_i8w_q_bytes(const qw_i8w *w);
size_t qw_i8w_scale_bytes(const qw_i8w *w);
/* Fills q/scales/norms from B (N rows of K, row stride ldb elements; f16 = 1: uint16 halves, else
 * float). Rows split across the pool. */
void qw_i8w_quantize(qw_pool *pool, qw_i8w *w, const void *B, int f16, int ldb);
/* The same for rows [row0, row0 + n_rows) only (row0 % 4 == 0; B points at row row0): a weight quantised a
 * chunk of rows at a time, as it is read, gives the same bytes as in one call. The last chunk pads to N4. */
void qw_i8w_quantize_rows(qw_pool *pool, qw_i8w *w, const void *B, int f16, int ldb, int row0, int n_rows);
/* y(N) = dequant(W) . dequant(xq) for one activation row x (K): x is quantised per block to 7-bit
 * (round half even of x * 63 / amax, the i7 operand of relaxed SIMD), integer dot products per block,
 * then y_n = sum over blocks, in order, of (float)dot * (dw * dx). Bit-identical across the scalar,
 * SIMD128, relaxed and AVX2 versions. Error bound against the exact x . w_n (Cauchy-Schwarz):
 *   |y_n - x.w_n| <= wnorm_n * ex + enorm_n * (xn + ex)  (+ fp32 rounding)
 * with xn = ||x||_2 and ex = ||x - dequant(xq)||_2 returned through xn_out / ex_out.
 * work: qw_i8_matvec_work_size(w) bytes. */
size_t qw_i8_matvec_work_size(const qw_i8w *w);
void qw_i8_matvec(qw_pool *pool, const qw_i8w *w, const float *x, float *y, void *work, double *xn_out, double *ex_out);
/* qw_i8_matvec for M activation rows x (M, K) -> y (M, N), the weights streamed once: row m's outputs, xn_out[m]
 * and ex_out[m] have the bits qw_i8_matvec gives that row alone. work: qw_i8_matmul_work_size(w, M) bytes. */
size_t qw_i8_matmul_work_size(const qw_i8w *w, int M);
void qw_i8_matmul(qw_pool *pool, const qw_i8w *w, int M, const float *x, float *y, void *work, double *xn_out,
                  double *ex_out);
void qw_i8_matvec_ref(const qw_i8w *w, const float *x, float *y);
/* Exact rows of C = a . B^T for one A row (trans_b = 1): out[i] = the value qw_gemm_f16b / qw_gemm_f32
 * with M = 1 computes for row rows[i], bit for bit. */
void qw_gemm_tb_rows(const float *a, const void *B, int f16, int ldb, int K, const int32_t *rows, int n, float *out);
/* The same split across the pool (each row's value depends on that row only: identical bits). */
void qw_gemm_tb_rows_pool(qw_pool *pool, const float *a, const void *B, int f16, int ldb, int K, const int32_t *rows,
                          int n, float *out);

/* Decode look-ahead: the decode products (packed q4 rows, int8 lm_head rows, fp16 lm_head for one row) touch the
 * next weight group's cache lines before computing the current one (qw_touch). Natively a prefetch, which never
 * waits; wasm has none, so there a load per line, which holds the core until its line arrives: measured to pay on
 * one CPU (2-core Xeon, Chromium 7.2 -> 12.1 tok/s on the 1.5B) and to cost on another (2-core EPYC: 8.1-9.1 ->
 * 6.1-6.3), hence a switch, set by timing real decode steps (qw_model_lookahead_step). Process-wide; on (1) by default; set it
 * while no product runs. */
void qw_kernels_set_lookahead(int on);
int qw_kernels_lookahead(void);

/* Runs every decode kernel a few times on small scratch data so that JIT tiers (V8's TurboFan,
 * SpiderMonkey's Ion) compile them before the first token; a few ms natively. Call once after load. */
void qw_kernels_warmup(qw_pool *pool);
/* Times the build's prefill tiles against each other on this engine (one thread, a few ms; once per process, later
 * calls return at once) and makes the fastest the one qw_kernels() returns; qw_kernels_warmup calls it. The outputs
 * are the same bits whichever wins. */
void qw_kernels_choose_tile(void);

/* ---- the kernel table of the packed 4-bit x int8 product (qw_kernels_packed*.c) ---------------------
 * One row per variant of its tiles that this build has: the scalar reference (every build), AVX2, wasm SIMD128,
 * relaxed SIMD (i16 dots; with and without the two-group prefill tile), relaxed SIMD with the i32 dot-add for
 * decode rows (the same two prefill tiles; only where the engine computes it right: Node 20's V8 does not; checked
 * once on known values). Every row gives the scalar reference's bits. qw_kernels() is the row qw_q4_matmul_q8
 * uses: the build's first, or the one qw_kernels_choose_tile timed fastest; qw_q4_matmul_q8_with runs a given row
 * (tests, benchmarks). Tiles write out[] in the order below. */
struct qw_q8act;
typedef void (*qw_q8p_tile_fn)(const qw_q4w *w, int g, const struct qw_q8act *a, int m, int mb, float *out);
typedef struct qw_kernel_table {
    const char *name;      /* "scalar", "avx2", "simd128", "relaxed", "relaxed-tile0", "relaxed-dot-add", ... */
    int dot_add;           /* 1: decode rows use i32x4.relaxed_dot_i8x16_i7x16_add_s */
    int mb_max;            /* activation rows per call of tile (<= 8) */
    qw_q8p_tile_fn decode; /* 4-row group g x activation row m (mb = 1): out[r] */
    qw_q8p_tile_fn tile;   /* group g x rows m .. m+mb-1, mb <= mb_max: out[mi * 4 + r] */
    qw_q8p_tile_fn tile2;  /* groups g, g+1 x mb <= 4 rows (prefill tile 1): out[(gi * mb + mi) * 4 + r]; or NULL */
} qw_kernel_table;
const qw_kernel_table *qw_kernels(void);
/* Row i (0 ..) of this build's table, NULL past the last. Row 0 is qw_kernels(). */
const qw_kernel_table *qw_kernels_variant(int i);
void qw_q4_matmul_q8_with(const qw_kernel_table *kt, qw_pool *pool, const qw_q4w *w, const float *x, int M,
                          const float *bias, float *y, void *work);

/* ---- row-wise kernels ------------------------------------------------------------------------ */
/* In-place softmax over n values (max-subtracted, as onnxruntime). */
void qw_softmax_f32(float *x, int n);
/* y = onnxruntime's Sigmoid (MLAS's rational approximation) of x; y may equal x. */
void qw_logistic_f32(qw_pool *pool, const float *x, float *y, size_t n);
float qw_logistic_ref(float x);
/* y = x / sqrt(mean(x^2) + eps) * w, over n values. */
void qw_rmsnorm_f32(const float *x, const float *w, float eps, int n, float *y);
/* fp16 <-> fp32 arrays. */
void qw_f16_to_f32_array(const uint16_t *src, float *dst, size_t n);
/* x[i] = qw_round_f16(x[i]), bit for bit (NaN stays NaN), vectorised: the fp16 roundings of attention scores */
void qw_round_f16_array(float *x, size_t n);
void qw_f32_to_f16_array(const float *src, uint16_t *dst, size_t n);
/* out(D) = sum over i < n of p[i] * rows[i*ld .. i*ld+D), rows in order, zero weights skipped: the
 * attention's probability-weighted sum of value rows. */
void qw_weighted_rows_f32(const float *p, int n, const float *rows, size_t ld, int D, float *out);
/* dot product of n floats */
float qw_dot_f32(const float *a, const float *b, int n);

/* ---- attention over a KV cache (qw_kernels_attn.c) --------------------------------------------------
 * out(h, s) = softmax over keys t of score(q(h, s) . k(h / group, t)) . v(h / group, .) for n_q query positions
 * (1: a decode step; more: a prefill chunk) and n_keys cached positions, query head h reading kv head
 * h / (n_heads / n_kv_heads). Causal (past >= 0): position s sees keys 0 .. past + s only; past < 0: all of them.
 * score(d) = d (fp16-rounded when round_qk) / or * scale (fp16-rounded when round_scaled) + mask(h, s, t)
 * (when mask) (fp16-rounded when round_masked): the decomposed graph's steps (com.microsoft's attention ops add a
 * softcap, a key mask and a local window); the probabilities are rounded to
 * fp16 when round_probs. Query element (h, s, d) at q[h * q_hs + s * q_ss + d], out likewise, mask element at
 * mask[h * m_hs + s * m_ss + t * m_ts]. The cache is (n_kv_heads, cap, head_dim) of kv_dtype; int8 rows have
 * one fp32 scale per kv head and position in k_scale / v_scale ((n_kv_heads, cap)). */
enum { QW_KV_F32 = 0, QW_KV_F16 = 1, QW_KV_I8 = 2 };
typedef struct qw_attn {
    int n_q, n_keys, past, n_heads, n_kv_heads, head_dim;
    const float *q;
    int64_t q_hs, q_ss;
    float *out;
    int64_t o_hs, o_ss;
    const void *k, *v;
    const float *k_scale, *v_scale;
    int kv_dtype;
    int64_t cap;
    float scale;
    int div;
    int round_qk, round_scaled, round_masked, round_probs;
    const float *mask;
    int64_t m_hs, m_ss, m_ts;
    float softcap;      /* > 0: score = softcap * tanh(score / softcap) after the scale */
    const float *kmask; /* (n_keys) added after mask, or NULL */
    int window;         /* > 0: query row s sees its last `window` keys only */
} qw_attn;
/* work: qw_attn_work_size(a, threads of the pool) bytes (a key tile and the score rows of each thread). */
size_t qw_attn_work_size(const qw_attn *a, int nth);
void qw_attn_run(qw_pool *pool, const qw_attn *a, void *work);
/* Plain loops, one query row at a time; scores: n_keys floats. */
void qw_attn_ref(const qw_attn *a, float *scores);
/* int8 keys (head_dim <= 256): the scores are integer dot products of the key rows with each query row made int16
 * by qw_attn_quant_q16 (round half even of x * 32767 / amax; scale amax / 32767; 0 when a value is not finite,
 * and then that task keeps fp32 scores): score = (float)sum * (q scale * key scale), in every build. */
int qw_attn_int_keys(const qw_attn *a);
int qw_attn_quant_q16(const float *x, int D, int16_t *q, float *scale);
/* One cache row of D values as int8 (round half even of x * 127 / amax) and its scale amax / 127. */
void qw_kv_quant_i8(const float *x, int D, int8_t *q, float *scale);

#endif /* QW_KERNELS_H */
