/* qw_ops_matmul.c - MatMul (batched, broadcasting, 1-D operands; a constant 2-D B goes straight to the gemm
 * kernels, fp16 B without conversion; B = Transpose(const W) uses W with trans_b) and Gemm. Accumulation in
 * fp32 (onnxruntime computes fp16 MatMul on CPU in fp32 and rounds the output). A node marked last_row_only
 * (the decoder's lm_head, qw_graph_logits_last_only) multiplies only the last row of a (1, S, K) A, resident or
 * streamed. */
#include <string.h>
#include "qw_ops.h"
#include "qw_dtype.h"

static qw_status check_matmul(qw_op_node *n, qw_error *err) {
    int a = n->in_dtype[0], b = n->in_dtype[1];
    if (!qw_dtype_is_float(a) || !qw_dtype_is_float(b))
        return qw_op_err(n, err, QW_E_UNSUPPORTED, "dtypes %s x %s", qw_dtype_name(a), qw_dtype_name(b));
    if (a != b) return qw_op_err(n, err, QW_E_FORMAT, "input dtypes differ");
    n->out_dtype[0] = a;
    /* under a memory cap a paged trans_b weight (the tied lm_head: 467 MB of fp16 in the 1.5B model) is streamed
     * in row chunks by run (run_matmul_streamed) instead of being made resident whole */
    if (n->trans_b && n->in_weight[1] >= 0 && n->in_const[1] && n->in_const[1]->ndim == 2 &&
        qw_weights_streamed(n->weights, n->in_weight[1]))
        n->in_skip[1] = 1;
    return QW_OK;
}

/* Bytes of B per streamed chunk (two chunks in flight: one read while the other is multiplied). */
#define QW_MATMUL_STREAM_CHUNK (16u << 20)

/* C(rows, N) = A(rows, K) . W^T with W (N, K) a paged weight read in chunks of rows: each chunk gives the same
 * columns of C as the resident product (every output is one dot product over K, computed by the same kernel
 * whatever the range of B rows), so the results are identical bit for bit. The next chunk is read (natively,
 * on the weight store's reader thread) while the current one is multiplied. */
static qw_status run_matmul_streamed(qw_op_ctx *c, const qw_tensor *A, const qw_tensor *B, qw_tensor *Y,
                                     qw_error *err) {
    int64_t N = B->dims[0], K = B->dims[1];
    if (A->ndim < 1 || A->dims[A->ndim - 1] != K)
        return qw_op_err(c->node, err, QW_E_ARG, "inner dims %lld and %lld differ",
                         (long long)(A->ndim ? A->dims[A->ndim - 1] : 0), (long long)K);
    int64_t rows = K ? A->numel / K : 0;
    int64_t odims[QW_MAX_DIMS];
    int nd = A->ndim;
    for (int i = 0; i < nd - 1; i++) odims[i] = A->dims[i];
    odims[nd - 1] = N;
    if (nd == 1) odims[0] = N;
    qw_status st = qw_op_out(c, Y, A->dtype, nd, odims, err);
    if (st != QW_OK) return st;
    const float *Af = qw_tensor_f32(c, A);
    float *C = Y->dtype == QW_DT_F32 ? (float *)Y->data : qw_op_scratch(c, (size_t)Y->numel * 4 + 4);
    if (!Af || !C) return qw_op_err(c->node, err, QW_E_NOMEM, "out of memory");
    if (rows && N && (st = qw_op_matmul_tb_streamed(c, Af, rows, N, K, B->dtype, C, err)) != QW_OK) return st;
    if (Y->dtype != QW_DT_F32) qw_store_f32(Y, C, Y->numel);
    return QW_OK;
}

qw_status qw_op_matmul_tb_streamed(qw_op_ctx *c, const float *Af, int64_t rows, int64_t N, int64_t K, int bdtype,
                                   float *C, qw_error *err) {
    qw_weights *ws = c->node->weights;
    int wid = c->node->in_weight[1];
    qw_status st;
    size_t es = qw_dtype_size(bdtype), row_bytes = (size_t)K * es;
    int64_t chunk = row_bytes ? (int64_t)(QW_MATMUL_STREAM_CHUNK / row_bytes) : N;
    chunk = chunk >= 64 ? chunk / 64 * 64 : chunk < 4 ? 4 : chunk;
    if (chunk > N) chunk = N;
    void *buf[2] = {qw_op_scratch(c, (size_t)chunk * row_bytes), qw_op_scratch(c, (size_t)chunk * row_bytes)};
    if (!buf[0] || !buf[1]) return qw_op_err(c->node, err, QW_E_NOMEM, "out of memory for the streamed weight");
    int64_t n1 = chunk < N ? chunk : N;
    if ((st = qw_weights_read_range_start(ws, wid, 0, (size_t)n1 * row_bytes, buf[0], err)) != QW_OK) return st;
    for (int64_t n0 = 0, i = 0; n0 < N; n0 += chunk, i++) {
        int64_t cur = N - n0 < chunk ? N - n0 : chunk;
        if ((st = qw_weights_read_range_wait(ws, err)) != QW_OK) return st;
        int64_t nx = n0 + chunk;
        if (nx < N) {
            int64_t nr = N - nx < chunk ? N - nx : chunk;
            st = qw_weights_read_range_start(ws, wid, (uint64_t)nx * row_bytes, (size_t)nr * row_bytes,
                                             buf[(i + 1) & 1], err);
            if (st != QW_OK) return st;
        }
        const void *Bc = buf[i & 1];
        /* the logits' last rows of a speculative step one by one: the one-row product's bits (see run_matmul) */
        int64_t step = c->node->last_row_only ? 1 : rows;
        for (int64_t r = 0; r < rows; r += step) {
            const float *Ar = Af + r * K;
            float *Cr = C + r * N + n0;
            if (bdtype == QW_DT_F16)
                qw_gemm_f16b(c->pool, (int)step, (int)cur, (int)K, Ar, (int)K, Bc, (int)K, 1, Cr, (int)N);
            else
                qw_gemm_f32(c->pool, (int)step, (int)cur, (int)K, Ar, (int)K, Bc, (int)K, 1, Cr, (int)N);
        }
    }
    return QW_OK;
}

/* C(M,N) = A(M,K) . B where B is fp32 or fp16, (K,N) or with tb (N,K) */
static void gemm_any(qw_pool *pool, int M, int N, int K, const float *A, const void *B, int bdt, int tb, float *C) {
    int ldb = tb ? K : N;
    if (bdt == QW_DT_F16)
        qw_gemm_f16b(pool, M, N, K, A, K, (const uint16_t *)B, ldb, tb, C, N);
    else
        qw_gemm_f32(pool, M, N, K, A, K, (const float *)B, ldb, tb, C, N);
}

static qw_status run_matmul(qw_op_ctx *c, qw_tensor *const *in, int n_in, qw_tensor **out, int n_out, qw_error *err) {
    qw_tensor last;
    const qw_tensor *A = qw_op_last_row(c, in[0], &last), *B = in[1];            /* logits of the last position only */
    if (!B) return run_matmul_streamed(c, A, c->node->in_const[1], out[0], err); /* paged, see check_matmul */
    int tb = c->node->trans_b;
    int ra = A->ndim, rb = B->ndim;
    if (ra < 1 || rb < 1) return qw_op_err(c->node, err, QW_E_ARG, "scalar operand");
    int64_t K = A->dims[ra - 1];
    int64_t KB, N;
    if (tb && rb < 2) return qw_op_err(c->node, err, QW_E_ARG, "transposed B of rank %d", rb);
    if (tb) {
        KB = B->dims[rb - 1];
        N = B->dims[rb - 2];
    } else if (rb == 1) {
        KB = B->dims[0];
        N = 1;
    } else {
        KB = B->dims[rb - 2];
        N = B->dims[rb - 1];
    }
    if (K != KB)
        return qw_op_err(c->node, err, QW_E_ARG, "inner dims %lld and %lld differ", (long long)K, (long long)KB);
    int64_t M = ra >= 2 ? A->dims[ra - 2] : 1;
    /* batch dims */
    int nba = ra >= 2 ? ra - 2 : 0, nbb = rb < 2 ? 0 : rb - 2;
    int64_t bdims[QW_MAX_DIMS];
    int nb;
    if (!qw_broadcast_shape(nba, A->dims, nbb, B->dims, &nb, bdims))
        return qw_op_err(c->node, err, QW_E_ARG, "batch dims do not broadcast");
    int64_t odims[QW_MAX_DIMS];
    int nd = 0;
    for (int i = 0; i < nb; i++) odims[nd++] = bdims[i];
    if (ra >= 2) odims[nd++] = M;
    if (rb >= 2 || tb) odims[nd++] = N;
    int odt = A->dtype;
    qw_status st = qw_op_out(c, out[0], odt, nd, odims, err);
    if (st != QW_OK) return st;
    odt = out[0]->dtype;
    const float *Af = qw_tensor_f32(c, A);
    float *C = odt == QW_DT_F32 ? (float *)out[0]->data : qw_op_scratch(c, (size_t)out[0]->numel * 4 + 4);
    if (!Af || !C) return qw_op_err(c->node, err, QW_E_NOMEM, "out of memory");
    int64_t batch = qw_numel(nb, bdims);
    size_t bes = qw_dtype_size(B->dtype);
    if (nbb == 0) { /* B shared by every batch: one product over all rows of A */
        int64_t rows = nba ? qw_numel(nba, A->dims) * M : M;
        if (rows == batch * M && c->node->last_row_only && rows > 1) {
            /* a speculative step's last rows: each as the one-row decode product computes it (the same bits; the
             * kernel sums over K in another order for several rows), so the verified tokens are plain decoding's */
            for (int64_t i = 0; i < rows && N; i++)
                gemm_any(c->pool, 1, (int)N, (int)K, Af + i * K, B->data, B->dtype, tb, C + i * N);
        } else if (rows == batch * M) {
            if (rows && N) gemm_any(c->pool, (int)rows, (int)N, (int)K, Af, B->data, B->dtype, tb, C);
        } else { /* A broadcast along batch (A has fewer batch elements): per batch */
            int64_t sa[QW_MAX_DIMS];
            qw_broadcast_strides(nba, A->dims, nb, bdims, sa);
            for (int64_t bi = 0; bi < batch; bi++) {
                int64_t r = bi, oa = 0;
                for (int d = nb - 1; d >= 0; d--) {
                    oa += (r % bdims[d]) * sa[d];
                    r /= bdims[d];
                }
                gemm_any(c->pool, (int)M, (int)N, (int)K, Af + oa * M * K, B->data, B->dtype, tb, C + bi * M * N);
            }
        }
    } else {
        int64_t sa[QW_MAX_DIMS], sb[QW_MAX_DIMS];
        qw_broadcast_strides(nba, A->dims, nb, bdims, sa);
        qw_broadcast_strides(nbb, B->dims, nb, bdims, sb);
        for (int64_t bi = 0; bi < batch; bi++) {
            int64_t r = bi, oa = 0, ob = 0;
            for (int d = nb - 1; d >= 0; d--) {
                int64_t id = r % bdims[d];
                r /= bdims[d];
                oa += id * sa[d];
                ob += id * sb[d];
            }
            gemm_any(c->pool, (int)M, (int)N, (int)K, Af + oa * M * K,
                     (const uint8_t *)B->data + (size_t)(ob * K * N) * bes, B->dtype, tb, C + bi * M * N);
        }
    }
    if (odt != QW_DT_F32) qw_store_f32(out[0], C, out[0]->numel);
    return QW_OK;
}

static qw_status check_gemm(qw_op_node *n, qw_error *err) {
    for (int k = 0; k < n->n_in; k++)
        if (n->in_dtype[k] && n->in_dtype[k] != n->in_dtype[0])
            return qw_op_err(n, err, QW_E_FORMAT, "input dtypes differ");
    if (!qw_dtype_is_float(n->in_dtype[0]))
        return qw_op_err(n, err, QW_E_UNSUPPORTED, "dtype %s", qw_dtype_name(n->in_dtype[0]));
    n->out_dtype[0] = n->in_dtype[0];
    return QW_OK;
}

static qw_status run_gemm(qw_op_ctx *c, qw_tensor *const *in, int n_in, qw_tensor **out, int n_out, qw_error *err) {
    const qw_onnx_node *on = c->node->on;
    const qw_tensor *A = in[0], *B = in[1], *Cin = n_in > 2 ? in[2] : NULL;
    int ta = (int)qw_attr_i(on, "transA", 0), tb = (int)qw_attr_i(on, "transB", 0);
    float alpha = qw_attr_f(on, "alpha", 1.0f), beta = qw_attr_f(on, "beta", 1.0f);
    if (A->ndim != 2 || B->ndim != 2) return qw_op_err(c->node, err, QW_E_ARG, "Gemm needs 2-D A and B");
    int64_t M = ta ? A->dims[1] : A->dims[0], K = ta ? A->dims[0] : A->dims[1];
    int64_t N = tb ? B->dims[0] : B->dims[1], KB = tb ? B->dims[1] : B->dims[0];
    if (K != KB) return qw_op_err(c->node, err, QW_E_ARG, "inner dims differ");
    int64_t od[2] = {M, N};
    qw_status st = qw_op_out(c, out[0], A->dtype, 2, od, err);
    if (st != QW_OK) return st;
    const float *Af = qw_tensor_f32(c, A);
    float *Y = out[0]->dtype == QW_DT_F32 ? (float *)out[0]->data : qw_op_scratch(c, (size_t)(M * N) * 4 + 4);
    if (!Af || !Y) return qw_op_err(c->node, err, QW_E_NOMEM, "out of memory");
    if (ta) {
        float *At = qw_op_scratch(c, (size_t)(M * K) * 4 + 4);
        if (!At) return qw_op_err(c->node, err, QW_E_NOMEM, "out of memory");
        for (int64_t i = 0; i < M; i++)
            for (int64_t k = 0; k < K; k++) At[i * K + k] = Af[k * M + i];
        Af = At;
    }
    gemm_any(c->pool, (int)M, (int)N, (int)K, Af, B->data, B->dtype, tb, Y);
    int64_t sc[QW_MAX_DIMS];
    if (Cin) qw_broadcast_strides(Cin->ndim, Cin->dims, 2, od, sc);
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            float v = alpha * Y[i * N + j];
            if (Cin) v += beta * (float)qw_elem_get_f(Cin->data, Cin->dtype, i * sc[0] + j * sc[1]);
            Y[i * N + j] = v;
        }
    if (out[0]->dtype != QW_DT_F32) qw_store_f32(out[0], Y, M * N);
    return QW_OK;
}

qw_status qw_op_matmul_run(qw_op_ctx *c, qw_tensor *const *in, int n_in, qw_tensor **out, int n_out, qw_error *err) {
    return run_matmul(c, in, n_in, out, n_out, err);
}

const qw_op_def qw_ops_matmul[] = {
    {QW_OP_MatMul, "MatMul", "", check_matmul, run_matmul, NULL},
    {QW_OP_Gemm, "Gemm", "", check_gemm, run_gemm, NULL},
    {QW_OP_NONE, NULL, NULL, NULL, NULL, NULL},
};
