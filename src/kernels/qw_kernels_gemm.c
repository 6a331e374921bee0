/* qw_kernels_gemm.c - dense fp32 products: qw_gemm_f32 (attention-sized) and qw_gemm_f16b (the tied
 * lm_head, fp16 weights).
 *
 * trans_b = 1 (C = A . B^T, B rows contiguous along K): four B rows at a time against one A row, four
 * independent accumulator chains, one horizontal sum per output. For fp16 B and M > 1 a tile of 4 B rows
 * x QW_KC is converted once to fp32 on the stack and reused for every A row.
 * trans_b = 0 (B is (K, N)): register tiles of 4 A rows x 2 vectors of C, B streamed along rows.
 * The pool splits N (in ranges of QW_ROW_ALIGN columns) when M is small, M when M is large. */
#include "qw_kernels_impl.h"

#define QW_KC 512

/* ---- trans_b = 1 inner products ---------------------------------------------------------------- */

static void dot4_f32(const float *a, const float *b0, const float *b1, const float *b2, const float *b3, int K,
                     float out[4]) {
    qv_f32 c0 = qv_zero(), c1 = qv_zero(), c2 = qv_zero(), c3 = qv_zero();
    int k = 0;
    for (; k + QV_W <= K; k += QV_W) {
        qv_f32 x = qv_load(a + k);
        c0 = qv_fma(c0, x, qv_load(b0 + k));
        c1 = qv_fma(c1, x, qv_load(b1 + k));
        c2 = qv_fma(c2, x, qv_load(b2 + k));
        c3 = qv_fma(c3, x, qv_load(b3 + k));
    }
    float s0 = qv_hsum(c0), s1 = qv_hsum(c1), s2 = qv_hsum(c2), s3 = qv_hsum(c3);
    for (; k < K; k++) {
        s0 += a[k] * b0[k];
        s1 += a[k] * b1[k];
        s2 += a[k] * b2[k];
        s3 += a[k] * b3[k];
    }
    out[0] = s0, out[1] = s1, out[2] = s2, out[3] = s3;
}

/* The lm_head inner loop (M = 1): 4 fp16 rows, 8 halves per row per step, two chains per row. */
static void dot4_f16(const float *a, const uint16_t *const b[4], int K, float out[4]) {
    int k = 0;
    float s[4] = {0, 0, 0, 0};
#if defined(QW_WASM_SIMD)
    v128_t c[4], d[4];
    for (int r = 0; r < 4; r++) c[r] = d[r] = wasm_f32x4_splat(0);
    for (; k + 8 <= K; k += 8) {
        v128_t x0 = wasm_v128_load(a + k), x1 = wasm_v128_load(a + k + 4);
        for (int r = 0; r < 4; r++) {
            v128_t lo, hi;
            qw_f16x8_fast(wasm_v128_load(b[r] + k), &lo, &hi);
            c[r] = qv_fma(c[r], x0, lo);
            d[r] = qv_fma(d[r], x1, hi);
        }
    }
    for (int r = 0; r < 4; r++) s[r] = qv_hsum(wasm_f32x4_add(c[r], d[r]));
#elif defined(QW_AVX2)
    __m256 c[4], d[4];
    for (int r = 0; r < 4; r++) c[r] = d[r] = _mm256_setzero_ps();
    for (; k + 16 <= K; k += 16) {
        __m256 x0 = _mm256_loadu_ps(a + k), x1 = _mm256_loadu_ps(a + k + 8);
        for (int r = 0; r < 4; r++) {
            c[r] = _mm256_fmadd_ps(x0, qv_load_f16(b[r] + k), c[r]);
            d[r] = _mm256_fmadd_ps(x1, qv_load_f16(b[r] + k + 8), d[r]);
        }
    }
    for (int r = 0; r < 4; r++) s[r] = qv_hsum(_mm256_add_ps(c[r], d[r]));
#endif
    for (; k < K; k++)
        for (int r = 0; r < 4; r++) s[r] += a[k] * qw_f16_to_f32(b[r][k]);
    for (int r = 0; r < 4; r++) out[r] = s[r];
}

/* ---- tasks ---------------------------------------------------------------------------------------- */

typedef struct {
    int M, N, K, lda, ldb, ldc, trans_b, f16;
    const float *A;
    const void *B;
    float *C;
} gemm_task;

static void split_mn(const gemm_task *t, int ith, int nth, int *m0, int *m1, int *n0, int *n1) {
    *m0 = 0, *m1 = t->M, *n0 = 0, *n1 = t->N;
    if (nth > 1 && t->M >= 4 * nth && t->N < 64 * nth)
        qw_split(t->M, ith, nth, 4, m0, m1);
    else
        qw_split(t->N, ith, nth, QW_ROW_ALIGN, n0, n1);
}

static inline float ldB(const gemm_task *t, size_t i) {
    return t->f16 ? qw_f16_to_f32(((const uint16_t *)t->B)[i]) : ((const float *)t->B)[i];
}

static void gemm_tb1(const gemm_task *t, int m0, int m1, int n0, int n1) {
    const int K = t->K;
    if (!t->f16) {
        const float *B = t->B;
        for (int m = m0; m < m1; m++) {
            const float *a = t->A + (size_t)m * t->lda;
            float *c = t->C + (size_t)m * t->ldc;
            for (int n = n0; n < n1; n += 4) {
                const float *b[4];
                for (int r = 0; r < 4; r++) b[r] = B + (size_t)QW_MIN(n + r, n1 - 1) * t->ldb;
                float o[4];
                dot4_f32(a, b[0], b[1], b[2], b[3], K, o);
                for (int r = 0; r < 4 && n + r < n1; r++) c[n + r] = o[r];
            }
        }
        return;
    }
    const uint16_t *B = t->B;
    if (m1 - m0 == 1) {
        const float *a = t->A + (size_t)m0 * t->lda;
        float *c = t->C + (size_t)m0 * t->ldc;
        unsigned sink = 0;
        for (int n = n0; n < n1; n += 4) {
            const uint16_t *b[4];
            for (int r = 0; r < 4; r++) b[r] = B + (size_t)QW_MIN(n + r, n1 - 1) * t->ldb;
            /* the next 4 rows touched first (the fp16 lm_head streams from DRAM: see qw_touch) */
            for (int r = 4; r < 8 && n + r < n1; r++)
                qw_touch((const uint8_t *)(B + (size_t)(n + r) * t->ldb), (size_t)K * 2, &sink);
            float o[4];
            dot4_f16(t->A + (size_t)m0 * t->lda, b, K, o);
            for (int r = 0; r < 4 && n + r < n1; r++) c[n + r] = o[r];
            (void)a;
        }
        qw_touch_publish(sink);
        return;
    }
    /* M > 1: convert 4 rows x QW_KC once, use for all A rows */
    _Alignas(64) float tile[4][QW_KC];
    for (int n = n0; n < n1; n += 4) {
        int nr = QW_MIN(4, n1 - n);
        for (int m = m0; m < m1; m++)
            for (int r = 0; r < nr; r++) t->C[(size_t)m * t->ldc + n + r] = 0.0f;
        for (int k0 = 0; k0 < K; k0 += QW_KC) {
            int kc = QW_MIN(QW_KC, K - k0);
            for (int r = 0; r < 4; r++) {
                const uint16_t *br = B + (size_t)QW_MIN(n + r, n1 - 1) * t->ldb + k0;
                qw_f16_to_f32_array(br, tile[r], (size_t)kc);
            }
            for (int m = m0; m < m1; m++) {
                float o[4];
                dot4_f32(t->A + (size_t)m * t->lda + k0, tile[0], tile[1], tile[2], tile[3], kc, o);
                for (int r = 0; r < nr; r++) t->C[(size_t)m * t->ldc + n + r] += o[r];
            }
        }
    }
}

#define QV_LOADB(t, p) ((t)->f16 ? qv_load_f16((const uint16_t *)(p)) : qv_load((const float *)(p)))

static void gemm_tb0(const gemm_task *t, int m0, int m1, int n0, int n1) {
    const int K = t->K;
    const size_t esz = t->f16 ? 2 : 4;
    const char *B = t->B;
    int m = m0;
    for (; m < m1; m += 4) {
        int mr = QW_MIN(4, m1 - m);
        const float *a[4];
        for (int i = 0; i < 4; i++) a[i] = t->A + (size_t)QW_MIN(m + i, m1 - 1) * t->lda;
        int n = n0;
        for (; n + 2 * QV_W <= n1; n += 2 * QV_W) {
            qv_f32 c[4][2];
            for (int i = 0; i < 4; i++) c[i][0] = c[i][1] = qv_zero();
            for (int k = 0; k < K; k++) {
                const char *brow = B + ((size_t)k * t->ldb + n) * esz;
                qv_f32 b0 = QV_LOADB(t, brow), b1 = QV_LOADB(t, brow + QV_W * esz);
                for (int i = 0; i < 4; i++) {
                    qv_f32 av = qv_set1(a[i][k]);
                    c[i][0] = qv_fma(c[i][0], av, b0);
                    c[i][1] = qv_fma(c[i][1], av, b1);
                }
            }
            for (int i = 0; i < mr; i++) {
                qv_store(t->C + (size_t)(m + i) * t->ldc + n, c[i][0]);
                qv_store(t->C + (size_t)(m + i) * t->ldc + n + QV_W, c[i][1]);
            }
        }
        for (; n < n1; n++)
            for (int i = 0; i < mr; i++) {
                float s = 0.0f;
                for (int k = 0; k < K; k++) s += a[i][k] * ldB(t, (size_t)k * t->ldb + n);
                t->C[(size_t)(m + i) * t->ldc + n] = s;
            }
    }
}

static void gemm_run(void *p, int ith, int nth) {
    const gemm_task *t = p;
    int m0, m1, n0, n1;
    split_mn(t, ith, nth, &m0, &m1, &n0, &n1);
    if (m0 >= m1 || n0 >= n1) return;
    if (t->trans_b)
        gemm_tb1(t, m0, m1, n0, n1);
    else
        gemm_tb0(t, m0, m1, n0, n1);
}

void qw_gemm_f32(qw_pool *pool, int M, int N, int K, const float *A, int lda, const float *B, int ldb, int trans_b,
                 float *C, int ldc) {
    gemm_task t = {M, N, K, lda, ldb, ldc, trans_b, 0, A, B, C};
    /* small products (one attention head) are not worth a dispatch */
    if ((size_t)M * N * K < 32768)
        gemm_run(&t, 0, 1);
    else
        qw_pool_run(pool, gemm_run, &t);
}

void qw_gemm_f16b(qw_pool *pool, int M, int N, int K, const float *A, int lda, const uint16_t *B, int ldb, int trans_b,
                  float *C, int ldc) {
    gemm_task t = {M, N, K, lda, ldb, ldc, trans_b, 1, A, B, C};
    if ((size_t)M * N * K < 32768)
        gemm_run(&t, 0, 1);
    else
        qw_pool_run(pool, gemm_run, &t);
}

typedef struct {
    const float *a;
    const void *B;
    int f16, ldb, K, n;
    const int32_t *rows;
    float *out;
} tb_rows_task;

static void tb_rows_run(void *p, int ith, int nth) {
    const tb_rows_task *t = p;
    int lo, hi;
    qw_split(t->n, ith, nth, QW_ROW_ALIGN, &lo, &hi);
    if (lo < hi) qw_gemm_tb_rows(t->a, t->B, t->f16, t->ldb, t->K, t->rows + lo, hi - lo, t->out + lo);
}

void qw_gemm_tb_rows_pool(qw_pool *pool, const float *a, const void *B, int f16, int ldb, int K, const int32_t *rows,
                          int n, float *out) {
    tb_rows_task t = {a, B, f16, ldb, K, n, rows, out};
    if (!pool || (size_t)n * K < 65536)
        qw_gemm_tb_rows(a, B, f16, ldb, K, rows, n, out);
    else
        qw_pool_run(pool, tb_rows_run, &t);
}

void qw_gemm_tb_rows(const float *a, const void *B, int f16, int ldb, int K, const int32_t *rows, int n, float *out) {
    /* each row's result in dot4_* depends on that row only (own accumulator chains), as in gemm_tb1 M = 1 */
    for (int i = 0; i < n; i += 4) {
        float o[4];
        if (f16) {
            const uint16_t *b[4];
            for (int r = 0; r < 4; r++) b[r] = (const uint16_t *)B + (size_t)rows[QW_MIN(i + r, n - 1)] * ldb;
            dot4_f16(a, b, K, o);
        } else {
            const float *b[4];
            for (int r = 0; r < 4; r++) b[r] = (const float *)B + (size_t)rows[QW_MIN(i + r, n - 1)] * ldb;
            dot4_f32(a, b[0], b[1], b[2], b[3], K, o);
        }
        for (int r = 0; r < 4 && i + r < n; r++) out[i + r] = o[r];
    }
}
