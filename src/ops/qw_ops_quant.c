/* qw_ops_quant.c - com.microsoft MatMulNBits (4 bit, block >= 16, power of two; optional uint8 zero points and
 * bias; fp32 or fp16 scales) and GatherBlockQuantized (4-bit uint8-packed data, gather along axis 0, blocks along
 * the last axis). accuracy_level 4 uses the int8-activation kernel like onnxruntime, on weights repacked in place
 * into the 4-row decode layout of qw_q4_pack_q with their scales in their own dtype (fp16 converted in the
 * kernel); other levels, and pages streamed under a memory cap, run on the file's layout with fp32 scales. */
#include <stdlib.h>
#include <string.h>
#include "qw_ops.h"
#include "qw_dtype.h"

typedef struct nbits_state {
    qw_q4w w;          /* q points into the weight store via acquire at run; scales/zp derived */
    int acc4;          /* accuracy_level 4: int8 activations */
    int wid_q, wid_zp; /* weight ids of B and zero points */
    int pack;          /* B takes the packed layout when resident for good (qw_q4_pack_q) */
    int scale_bytes;   /* pack: bytes per scale as stored (2: fp16, 4: fp32) */
    float *bias;       /* (N) fp32 or NULL */
} nbits_state;

static void free_nbits(void *p) { free(p); }

/* The 4-row decode layout (qw_q4_pack_q, qw_q4_pack_scales) is made in place in the weights' own buffers when
 * they become resident for good (the store's layout change: at load without a cap, at page-in into the stable
 * set under one), so no second copy exists. Only when no other node reads B or the scales, the scales are fp16
 * or fp32 and the zero points (if any) stay resident (a one-byte-per-block derived form). */
static int pack_ok(const qw_op_node *n, int N, int block) {
    if (!qw_q4_packable(N, block) || !n->in_const[1] || n->in_weight[1] < 0 || n->in_weight[2] < 0) return 0;
    if (n->in_dtype[2] != QW_DT_F16 && n->in_dtype[2] != QW_DT_F32) return 0;
    if (n->n_in > 3 && n->in_dtype[3] && qw_weights_pageable(n->weights, n->in_weight[3])) return 0;
    if (n->gopts && n->gopts->no_repack) return 0;
    return n->in_refs[1] == 1 && n->in_refs[2] == 1;
}

static qw_status pack_b(void *ctx, void *data, uint64_t nbytes, const char *name, qw_error *err) {
    const qw_q4w *w = &((nbits_state *)ctx)->w;
    size_t rb = (size_t)w->n_blocks * (size_t)(w->block / 2);
    if (nbytes != (uint64_t)w->N * rb)
        return qw_error_set(err, QW_E_FORMAT, "MatMulNBits weight '%s': %llu bytes", name, (unsigned long long)nbytes);
    void *tmp = malloc(4 * rb);
    if (!tmp) return qw_error_set(err, QW_E_NOMEM, "out of memory repacking '%s'", name);
    qw_q4_pack_q(data, w->N, w->n_blocks, w->block, tmp);
    free(tmp);
    return QW_OK;
}

static qw_status pack_scales(void *ctx, void *data, uint64_t nbytes, const char *name, qw_error *err) {
    const qw_q4w *w = &((nbits_state *)ctx)->w;
    int es = ((nbits_state *)ctx)->scale_bytes;
    if (nbytes != (uint64_t)w->N * (uint64_t)w->n_blocks * es)
        return qw_error_set(err, QW_E_FORMAT, "MatMulNBits scales '%s': %llu bytes", name, (unsigned long long)nbytes);
    void *tmp = malloc(4 * (size_t)w->n_blocks * es);
    if (!tmp) return qw_error_set(err, QW_E_NOMEM, "out of memory repacking '%s'", name);
    int bad = qw_q4_pack_scales(data, w->N, w->n_blocks, es, tmp);
    free(tmp);
    if (bad >= 0)
        return qw_error_set(err, QW_E_UNSUPPORTED, "MatMulNBits scales '%s': row %d has an Inf or NaN scale", name,
                            bad);
    return QW_OK;
}

static qw_status check_nbits(qw_op_node *n, qw_error *err) {
    const qw_onnx_node *on = n->on;
    int64_t K = qw_attr_i(on, "K", 0), N = qw_attr_i(on, "N", 0), bits = qw_attr_i(on, "bits", 4),
            bs = qw_attr_i(on, "block_size", 0), acc = qw_attr_i(on, "accuracy_level", 0);
    if (bits != 4) return qw_op_err(n, err, QW_E_UNSUPPORTED, "bits=%lld (only 4)", (long long)bits);
    if (bs < 16 || (bs & (bs - 1))) return qw_op_err(n, err, QW_E_UNSUPPORTED, "block_size=%lld", (long long)bs);
    if (K <= 0 || N <= 0) return qw_op_err(n, err, QW_E_FORMAT, "K/N missing");
    if (!qw_dtype_is_float(n->in_dtype[0]))
        return qw_op_err(n, err, QW_E_UNSUPPORTED, "A dtype %s", qw_dtype_name(n->in_dtype[0]));
    if (n->in_dtype[1] != QW_DT_U8)
        return qw_op_err(n, err, QW_E_UNSUPPORTED, "B dtype %s", qw_dtype_name(n->in_dtype[1]));
    if (!n->in_const[1] || !n->in_const[2])
        return qw_op_err(n, err, QW_E_UNSUPPORTED, "B and scales must be initializers");
    if (n->n_in > 3 && n->in_dtype[3] && (n->in_dtype[3] != QW_DT_U8 || !n->in_const[3]))
        return qw_op_err(n, err, QW_E_UNSUPPORTED, "zero_points must be a uint8 initializer (dtype %s)",
                         qw_dtype_name(n->in_dtype[3]));
    if (n->n_in > 4 && n->in_dtype[4]) return qw_op_err(n, err, QW_E_UNSUPPORTED, "g_idx input");
    if (n->n_in > 5 && n->in_dtype[5] && !n->in_const[5])
        return qw_op_err(n, err, QW_E_UNSUPPORTED, "bias must be an initializer");
    int64_t nb = (K + bs - 1) / bs;
    if (n->in_const[1]->numel != N * nb * (bs / 2))
        return qw_op_err(n, err, QW_E_FORMAT, "B has %lld bytes, %lld expected", (long long)n->in_const[1]->numel,
                         (long long)(N * nb * (bs / 2)));
    if (n->in_const[2]->numel != N * nb)
        return qw_op_err(n, err, QW_E_FORMAT, "scales has %lld values, %lld expected", (long long)n->in_const[2]->numel,
                         (long long)(N * nb));
    nbits_state *s = calloc(1, sizeof *s);
    if (!s) return qw_op_err(n, err, QW_E_NOMEM, "out of memory");
    n->state = s;
    s->w.N = (int32_t)N;
    s->w.K = (int32_t)K;
    s->w.block = (int32_t)bs;
    s->w.n_blocks = (int32_t)nb;
    s->acc4 = acc == 4;
    s->wid_q = n->in_weight[1];
    int pack = s->acc4 && pack_ok(n, (int)N, (int)bs);
    /* under a memory cap the scales (and zero points) stay paged weights read at run (fp16 scales converted per
     * call into scratch, exactly): a resident fp32 copy of every layer's scales would count against the cap.
     * Packed, the scales stay in their own dtype (fp16: half the bytes of an fp32 copy, converted in the kernel) */
    if (pack) {
        /* B packed whenever its bytes stay resident (qw_weights_transformed tells at run). Without a cap the
         * scales are packed once too; under one they keep the file's order (the unpacked kernel reads them
         * when B streams) and are put in the packed order per call when B is packed (an eighth of B's bytes) */
        s->pack = 1;
        s->scale_bytes = n->in_dtype[2] == QW_DT_F16 ? 2 : 4;
        qw_status st = QW_OK;
        if (!qw_weights_pageable(n->weights, n->in_weight[1]))
            st = qw_weights_set_transform(n->weights, n->in_weight[2], pack_scales, s, err);
        if (st == QW_OK) st = qw_weights_set_transform(n->weights, n->in_weight[1], pack_b, s, err);
        if (st != QW_OK) return st;
    } else if (!qw_weights_pageable(n->weights, n->in_weight[2])) {
        float *sc = qw_weights_derived_alloc(n->weights, (size_t)(N * nb) * sizeof(float));
        if (!sc) return qw_op_err(n, err, QW_E_NOMEM, "out of memory");
        const void *src = n->in_const[2]->data;
        if (n->in_dtype[2] == QW_DT_F16)
            qw_f16_to_f32_array(src, sc, (size_t)(N * nb));
        else
            for (int64_t i = 0; i < N * nb; i++) sc[i] = (float)qw_elem_get_f(src, n->in_dtype[2], i);
        s->w.scales = sc;
        n->in_skip[2] = 1;
    }
    if (n->n_in > 3 && n->in_dtype[3] && qw_weights_pageable(n->weights, n->in_weight[3])) {
        int64_t zb = (nb + 1) / 2;
        if (n->in_const[3]->numel != N * zb)
            return qw_op_err(n, err, QW_E_FORMAT, "zero_points size %lld, %lld expected",
                             (long long)n->in_const[3]->numel, (long long)(N * zb));
    } else if (n->n_in > 3 && n->in_dtype[3]) {
        int64_t zb = (nb + 1) / 2;
        if (n->in_const[3]->numel != N * zb)
            return qw_op_err(n, err, QW_E_FORMAT, "zero_points size %lld, %lld expected",
                             (long long)n->in_const[3]->numel, (long long)(N * zb));
        const uint8_t *z = n->in_const[3]->data;
        uint8_t *zp = qw_weights_derived_alloc(n->weights, (size_t)(pack ? N * nb : N * zb));
        if (!zp) return qw_op_err(n, err, QW_E_NOMEM, "out of memory");
        if (pack) /* one byte per (row, block), interleaved like the scales */
            for (int64_t r = 0; r < N; r++)
                for (int64_t b = 0; b < nb; b++)
                    zp[qw_q4_packed_ix((int)r, (int)b, (int)nb)] = (b & 1) ? z[r * zb + b / 2] >> 4
                                                                           : z[r * zb + b / 2] & 15;
        else
            memcpy(zp, z, (size_t)(N * zb));
        s->w.zp = zp;
        n->in_skip[3] = 1;
    }
    if (n->n_in > 5 && n->in_dtype[5]) {
        if (n->in_const[5]->numel != N) return qw_op_err(n, err, QW_E_FORMAT, "bias size");
        s->bias = qw_weights_derived_alloc(n->weights, (size_t)N * sizeof(float));
        if (!s->bias) return qw_op_err(n, err, QW_E_NOMEM, "out of memory");
        for (int64_t i = 0; i < N; i++) s->bias[i] = (float)qw_elem_get_f(n->in_const[5]->data, n->in_dtype[5], i);
        n->in_skip[5] = 1;
    }
    n->out_dtype[0] = n->in_dtype[0];
    return QW_OK;
}

static qw_status run_nbits(qw_op_ctx *c, qw_tensor *const *in, int n_in, qw_tensor **out, int n_out, qw_error *err) {
    nbits_state *s = c->node->state;
    const qw_tensor *A = in[0];
    if (A->ndim < 1 || A->dims[A->ndim - 1] != s->w.K)
        return qw_op_err(c->node, err, QW_E_ARG, "A inner dim %lld, K=%d",
                         (long long)(A->ndim ? A->dims[A->ndim - 1] : 0), s->w.K);
    int64_t dims[QW_MAX_DIMS];
    memcpy(dims, A->dims, sizeof dims);
    dims[A->ndim - 1] = s->w.N;
    qw_status st = qw_op_out(c, out[0], A->dtype, A->ndim, dims, err);
    if (st != QW_OK) return st;
    int M = (int)(A->numel / s->w.K);
    const float *x = qw_tensor_f32(c, A);
    float *y = out[0]->dtype == QW_DT_F32 ? (float *)out[0]->data : qw_op_scratch(c, (size_t)out[0]->numel * 4 + 4);
    if (!x || !y) return qw_op_err(c->node, err, QW_E_NOMEM, "out of memory");
    qw_q4w w = s->w;
    w.q = in[1]->data;
    w.packed = s->pack && qw_weights_transformed(c->node->weights, s->wid_q);
    if (w.packed) { /* B in the packed layout (the store's layout change); scales packed too, or made so here */
        const void *sc = in[2]->data;
        if (!qw_weights_transformed(c->node->weights, c->node->in_weight[2])) { /* paged: a packed copy */
            size_t bytes = (size_t)in[2]->numel * (size_t)s->scale_bytes;
            void *tmp = qw_op_scratch(c, bytes);
            if (!tmp) return qw_op_err(c->node, err, QW_E_NOMEM, "out of memory");
            memcpy(tmp, sc, bytes);
            qw_status st = pack_scales(s, tmp, bytes, c->node->on->inputs[2], err);
            if (st != QW_OK) return st;
            sc = tmp;
        }
        w.scales_h = s->scale_bytes == 2 ? sc : NULL;
        w.scales = s->scale_bytes == 2 ? NULL : sc;
    } else if (!w.scales) { /* paged (memory cap): this call's fp32 scales from the fp16/fp32 weight */
        if (in[2]->dtype == QW_DT_F32) {
            w.scales = in[2]->data;
        } else {
            float *sc = qw_op_scratch(c, (size_t)in[2]->numel * sizeof(float));
            if (!sc) return qw_op_err(c->node, err, QW_E_NOMEM, "out of memory");
            if (in[2]->dtype == QW_DT_F16)
                qw_f16_to_f32_array(in[2]->data, sc, (size_t)in[2]->numel);
            else
                for (int64_t i = 0; i < in[2]->numel; i++) sc[i] = (float)qw_elem_get_f(in[2]->data, in[2]->dtype, i);
            w.scales = sc;
        }
    }
    if (!w.zp && n_in > 3 && in[3]) w.zp = in[3]->data; /* paged zero points */
    if (M > 0) {
        if (s->acc4) {
            void *work = qw_op_scratch(c, qw_q4_matmul_q8_work_size(&w, M));
            if (!work) return qw_op_err(c->node, err, QW_E_NOMEM, "out of memory");
            qw_q4_matmul_q8(c->pool, &w, x, M, s->bias, y, work);
        } else {
            qw_q4_matmul(c->pool, &w, x, M, s->bias, y);
        }
    }
    if (out[0]->dtype != QW_DT_F32) qw_store_f32(out[0], y, out[0]->numel);
    return QW_OK;
}

/* ---- GatherBlockQuantized ------------------------------------------------------------------------ */

static qw_status check_gbq(qw_op_node *n, qw_error *err) {
    const qw_onnx_node *on = n->on;
    if (qw_attr_i(on, "bits", 4) != 4) return qw_op_err(n, err, QW_E_UNSUPPORTED, "bits != 4");
    if (qw_attr_i(on, "gather_axis", 0) != 0) return qw_op_err(n, err, QW_E_UNSUPPORTED, "gather_axis != 0");
    if (n->in_dtype[0] != QW_DT_U8)
        return qw_op_err(n, err, QW_E_UNSUPPORTED, "data dtype %s", qw_dtype_name(n->in_dtype[0]));
    if (n->in_dtype[1] != QW_DT_I64 && n->in_dtype[1] != QW_DT_I32)
        return qw_op_err(n, err, QW_E_UNSUPPORTED, "indices dtype");
    if (!qw_dtype_is_float(n->in_dtype[2])) return qw_op_err(n, err, QW_E_UNSUPPORTED, "scales dtype");
    if (n->n_in > 3 && n->in_dtype[3] && n->in_dtype[3] != QW_DT_U8)
        return qw_op_err(n, err, QW_E_UNSUPPORTED, "zero_points dtype");
    n->out_dtype[0] = n->in_dtype[2];
    return QW_OK;
}

static qw_status run_gbq(qw_op_ctx *c, qw_tensor *const *in, int n_in, qw_tensor **out, int n_out, qw_error *err) {
    const qw_tensor *data = in[0], *ix = in[1], *sc = in[2], *zp = n_in > 3 ? in[3] : NULL;
    int64_t bs = qw_attr_i(c->node->on, "block_size", 128);
    int qa;
    if (!qw_norm_axis(qw_attr_i(c->node->on, "quantize_axis", data->ndim - 1), data->ndim, &qa) || qa != data->ndim - 1)
        return qw_op_err(c->node, err, QW_E_UNSUPPORTED, "quantize_axis must be the last axis");
    int64_t rows = data->dims[0], K = data->dims[data->ndim - 1] * 2;
    int64_t per_row = qw_numel(data->ndim - 1, data->dims + 1) * 2; /* unpacked elements per gathered row */
    int64_t dims[QW_MAX_DIMS];
    int nd = 0;
    for (int i = 0; i < ix->ndim; i++) dims[nd++] = ix->dims[i];
    for (int i = 1; i < data->ndim; i++) dims[nd++] = data->dims[i];
    dims[nd - 1] = K;
    qw_status st = qw_op_out(c, out[0], sc->dtype, nd, dims, err);
    if (st != QW_OK) return st;
    int64_t nbk = (K + bs - 1) / bs; /* blocks per last-axis row */
    int64_t zrow = (nbk + 1) / 2;
    const uint8_t *q = data->data;
    for (int64_t j = 0; j < ix->numel; j++) {
        int64_t r = qw_elem_get_i(ix->data, ix->dtype, j);
        if (r < 0) r += rows;
        if (r < 0 || r >= rows) return qw_op_err(c->node, err, QW_E_RANGE, "index %lld out of range", (long long)r);
        for (int64_t e = 0; e < per_row; e++) {
            int64_t lr = e / K, k = e % K;         /* last-axis row within the gathered slice */
            int64_t grow = r * (per_row / K) + lr; /* global last-axis row */
            uint8_t byte = q[(grow * K + k) / 2];
            int v = (k & 1) ? byte >> 4 : byte & 15;
            int64_t blk = k / bs;
            float s = (float)qw_elem_get_f(sc->data, sc->dtype, grow * nbk + blk);
            int z = 8;
            if (zp) {
                uint8_t zb = ((const uint8_t *)zp->data)[grow * zrow + blk / 2];
                z = (blk & 1) ? zb >> 4 : zb & 15;
            }
            qw_elem_set_f(out[0]->data, sc->dtype, j * per_row + e, (float)(v - z) * s);
        }
    }
    return QW_OK;
}

const qw_op_def qw_ops_quant[] = {
    {QW_OP_MatMulNBits, "MatMulNBits", "com.microsoft", check_nbits, run_nbits, free_nbits},
    {QW_OP_GatherBlockQuantized, "GatherBlockQuantized", "com.microsoft", check_gbq, run_gbq, NULL},
    {QW_OP_NONE, NULL, NULL, NULL, NULL, NULL},
};

/* MatMulNBits followed by Add(y, bias (N)): onnxruntime fuses the bias into the kernel (added in fp32 before
 * the one rounding of the output); qw_graph.c does the same through this. Returns 1 when fused. */
int qw_op_nbits_fuse_bias(qw_op_node *n, const qw_tensor *bias) {
    nbits_state *s = n->state;
    if (!s || s->bias || !bias || !bias->data || bias->ndim != 1 || bias->numel != s->w.N ||
        !qw_dtype_is_float(bias->dtype))
        return 0;
    s->bias = qw_weights_derived_alloc(n->weights, (size_t)s->w.N * sizeof(float));
    if (!s->bias) return 0;
    for (int64_t i = 0; i < s->w.N; i++) s->bias[i] = (float)qw_elem_get_f(bias->data, bias->dtype, i);
    return 1;
}
