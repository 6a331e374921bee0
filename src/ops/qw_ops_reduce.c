/* qw_ops_reduce.c - ReduceMean, ReduceSum, ReduceMax (axes as attribute before opset 18 / ReduceSum 13, as an
 * input after) and Softmax (opset >= 13: one axis; before: coerced to 2-D at axis). Float math in fp32. */
#include <math.h>
#include <string.h>
#include "qw_ops.h"
#include "qw_dtype.h"

static qw_status check_reduce(qw_op_node *n, qw_error *err) {
    int dt = n->in_dtype[0];
    if (!qw_dtype_is_float(dt) && dt != QW_DT_I64 && dt != QW_DT_I32)
        return qw_op_err(n, err, QW_E_UNSUPPORTED, "dtype %s", qw_dtype_name(dt));
    n->out_dtype[0] = dt;
    return QW_OK;
}

static qw_status run_reduce(qw_op_ctx *c, qw_tensor *const *in, int n_in, qw_tensor **out, int n_out, qw_error *err) {
    const qw_onnx_node *on = c->node->on;
    const qw_tensor *x = in[0];
    int r = x->ndim;
    int red[QW_MAX_DIMS] = {0}, na = 0;
    int64_t axes[QW_MAX_DIMS];
    if (n_in > 1 && in[1]) {
        if (in[1]->numel > QW_MAX_DIMS) return qw_op_err(c->node, err, QW_E_ARG, "too many axes");
        na = (int)in[1]->numel;
        for (int i = 0; i < na; i++) axes[i] = qw_elem_get_i(in[1]->data, in[1]->dtype, i);
    } else {
        const qw_onnx_attr *a = qw_attr(on, "axes");
        if (a) {
            na = (int)a->n;
            for (int i = 0; i < na && i < QW_MAX_DIMS; i++) axes[i] = a->ints[i];
        }
    }
    int keep = (int)qw_attr_i(on, "keepdims", 1);
    if (na == 0) {
        if (qw_attr_i(on, "noop_with_empty_axes", 0)) {
            qw_status st = qw_op_out(c, out[0], x->dtype, r, x->dims, err);
            if (st == QW_OK) memcpy(out[0]->data, x->data, (size_t)x->numel * qw_dtype_size(x->dtype));
            return st;
        }
        for (int d = 0; d < r; d++) red[d] = 1;
    }
    for (int i = 0; i < na; i++) {
        int a;
        if (!qw_norm_axis(axes[i], r, &a)) return qw_op_err(c->node, err, QW_E_ARG, "axis %lld", (long long)axes[i]);
        red[a] = 1;
    }
    int64_t dims[QW_MAX_DIMS];
    int nd = 0;
    for (int d = 0; d < r; d++) {
        if (!red[d])
            dims[nd++] = x->dims[d];
        else if (keep)
            dims[nd++] = 1;
    }
    qw_status st = qw_op_out(c, out[0], x->dtype, nd, dims, err);
    if (st != QW_OK) return st;
    int mode = c->node->op->id == QW_OP_ReduceMean ? 0 : c->node->op->id == QW_OP_ReduceSum ? 1 : 2;
    /* output index space: reduced dims have extent 1 */
    int64_t odims[QW_MAX_DIMS], ostr[QW_MAX_DIMS], s = 1;
    for (int d = 0; d < r; d++) odims[d] = red[d] ? 1 : x->dims[d];
    for (int d = r - 1; d >= 0; d--) {
        ostr[d] = s;
        s *= odims[d];
    }
    int64_t on_ = out[0]->numel;
    double *acc = qw_op_scratch(c, (size_t)(on_ ? on_ : 1) * sizeof(double));
    if (!acc) return qw_op_err(c->node, err, QW_E_NOMEM, "out of memory");
    for (int64_t i = 0; i < on_; i++) acc[i] = mode == 2 ? -INFINITY : 0;
    int64_t cnt = on_ ? x->numel / on_ : 0;
    int fl = qw_dtype_is_float(x->dtype);
    int64_t idx[QW_MAX_DIMS] = {0};
    for (int64_t i = 0; i < x->numel; i++) {
        int64_t o = 0;
        for (int d = 0; d < r; d++)
            if (!red[d]) o += idx[d] * ostr[d];
        double v = fl ? qw_elem_get_f(x->data, x->dtype, i) : (double)qw_elem_get_i(x->data, x->dtype, i);
        if (mode == 2) {
            if (v > acc[o] || isnan(v)) acc[o] = v;
        } else
            acc[o] += v;
        for (int d = r - 1; d >= 0; d--) {
            if (++idx[d] < x->dims[d]) break;
            idx[d] = 0;
        }
    }
    for (int64_t i = 0; i < on_; i++) {
        double v = mode == 0 ? acc[i] / (double)(cnt ? cnt : 1) : acc[i];
        if (fl)
            qw_elem_set_f(out[0]->data, out[0]->dtype, i, (float)v);
        else
            qw_elem_set_i(out[0]->data, x->dtype, i, mode == 0 ? (int64_t)(acc[i] / (double)cnt) : (int64_t)v);
    }
    return QW_OK;
}

static qw_status check_float(qw_op_node *n, qw_error *err) {
    if (!qw_dtype_is_float(n->in_dtype[0]))
        return qw_op_err(n, err, QW_E_UNSUPPORTED, "dtype %s", qw_dtype_name(n->in_dtype[0]));
    n->out_dtype[0] = n->in_dtype[0];
    return QW_OK;
}

static qw_status run_softmax(qw_op_ctx *c, qw_tensor *const *in, int n_in, qw_tensor **out, int n_out, qw_error *err) {
    const qw_tensor *x = in[0];
    int r = x->ndim, axis;
    int64_t def = c->node->opset >= 13 ? -1 : 1;
    if (!qw_norm_axis(qw_attr_i(c->node->on, "axis", def), r, &axis)) return qw_op_err(c->node, err, QW_E_ARG, "axis");
    qw_status st = qw_op_out(c, out[0], x->dtype, r, x->dims, err);
    if (st != QW_OK) return st;
    const float *xf = qw_tensor_f32(c, x);
    float *y = out[0]->dtype == QW_DT_F32 ? (float *)out[0]->data : qw_op_scratch(c, (size_t)x->numel * 4 + 4);
    if (!xf || !y) return qw_op_err(c->node, err, QW_E_NOMEM, "out of memory");
    int64_t outer, len, inner;
    if (c->node->opset >= 13) {
        outer = qw_numel(axis, x->dims);
        len = x->dims[axis];
        inner = qw_numel(r - axis - 1, x->dims + axis + 1);
    } else {
        outer = qw_numel(axis, x->dims);
        len = qw_numel(r - axis, x->dims + axis);
        inner = 1;
    }
    if (inner == 1) {
        if (y != xf) memcpy(y, xf, (size_t)x->numel * 4);
        for (int64_t o = 0; o < outer; o++)
            if (len) qw_softmax_f32(y + o * len, (int)len);
    } else {
        for (int64_t o = 0; o < outer; o++)
            for (int64_t i = 0; i < inner; i++) {
                const float *p = xf + o * len * inner + i;
                float *q = y + o * len * inner + i;
                float m = -INFINITY, sum = 0;
                for (int64_t k = 0; k < len; k++)
                    if (p[k * inner] > m) m = p[k * inner];
                for (int64_t k = 0; k < len; k++) {
                    q[k * inner] = expf(p[k * inner] - m);
                    sum += q[k * inner];
                }
                for (int64_t k = 0; k < len; k++) q[k * inner] /= sum;
            }
    }
    if (out[0]->dtype != QW_DT_F32) qw_store_f32(out[0], y, x->numel);
    return QW_OK;
}

const qw_op_def qw_ops_reduce[] = {
    {QW_OP_ReduceMean, "ReduceMean", "", check_reduce, run_reduce, NULL},
    {QW_OP_ReduceSum, "ReduceSum", "", check_reduce, run_reduce, NULL},
    {QW_OP_ReduceMax, "ReduceMax", "", check_reduce, run_reduce, NULL},
    {QW_OP_Softmax, "Softmax", "", check_float, run_softmax, NULL},
    {QW_OP_NONE, NULL, NULL, NULL, NULL, NULL},
};
