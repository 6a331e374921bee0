/* qw_ops_norm.c - LayerNormalization, SimplifiedLayerNormalization (RMSNorm) and com.microsoft
 * SkipSimplifiedLayerNormalization, computed in fp32 as onnxruntime's CPU kernels do (float accumulators;
 * x / sqrt(mean(x^2) + eps) * gamma; LayerNorm variance as E[x^2] - E[x]^2). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "qw_ops.h"
#include "qw_dtype.h"

static qw_status check_ln(qw_op_node *n, qw_error *err) {
    if (!qw_dtype_is_float(n->in_dtype[0]))
        return qw_op_err(n, err, QW_E_UNSUPPORTED, "dtype %s", qw_dtype_name(n->in_dtype[0]));
    int skip = n->op->id == QW_OP_SkipSimplifiedLayerNormalization;
    n->out_dtype[0] = n->in_dtype[0];
    for (int k = 1; k < n->n_out; k++) n->out_dtype[k] = QW_DT_F32; /* mean / inv_std_var */
    if (skip && n->n_out > 3) n->out_dtype[3] = n->in_dtype[0];     /* input + skip + bias */
    if (n->op->id == QW_OP_LayerNormalization || n->op->id == QW_OP_SimplifiedLayerNormalization) {
        int64_t stash = qw_attr_i(n->on, "stash_type", 1);
        if (stash != 1) return qw_op_err(n, err, QW_E_UNSUPPORTED, "stash_type %lld", (long long)stash);
    }
    return QW_OK;
}

static qw_status run_ln(qw_op_ctx *c, qw_tensor *const *in, int n_in, qw_tensor **out, int n_out, qw_error *err) {
    const qw_onnx_node *on = c->node->on;
    int skip = c->node->op->id == QW_OP_SkipSimplifiedLayerNormalization;
    int simplified = skip || c->node->op->id == QW_OP_SimplifiedLayerNormalization;
    const qw_tensor *x = in[0];
    const qw_tensor *S = skip ? in[1] : NULL;
    const qw_tensor *gamma = skip ? in[2] : in[1];
    const qw_tensor *beta = skip ? (n_in > 3 ? in[3] : NULL) : (n_in > 2 ? in[2] : NULL);
    float eps = qw_attr_f(on, "epsilon", simplified ? 1e-5f : 1e-5f);
    int axis;
    if (skip)
        axis = x->ndim - 1;
    else if (!qw_norm_axis(qw_attr_i(on, "axis", -1), x->ndim, &axis))
        return qw_op_err(c->node, err, QW_E_ARG, "axis");
    int64_t H = qw_numel(x->ndim - axis, x->dims + axis), rows = H ? x->numel / H : 0;
    if (gamma->numel != H)
        return qw_op_err(c->node, err, QW_E_ARG, "scale has %lld elements, %lld expected", (long long)gamma->numel,
                         (long long)H);
    qw_status st = qw_op_out(c, out[0], x->dtype, x->ndim, x->dims, err);
    if (st != QW_OK) return st;
    int64_t sdims[QW_MAX_DIMS];
    for (int d = 0; d < x->ndim; d++) sdims[d] = d < axis ? x->dims[d] : 1;
    float *stat_out[3] = {NULL, NULL, NULL};
    for (int k = 1; k < n_out && k < 3; k++) {
        if (!c->node->on->outputs[k][0]) continue;
        if ((st = qw_op_out(c, out[k], QW_DT_F32, x->ndim, sdims, err)) != QW_OK) return st;
        stat_out[k] = out[k]->data;
    }
    if (skip && n_out > 3 && on->outputs[3][0]) {
        if ((st = qw_op_out(c, out[3], x->dtype, x->ndim, x->dims, err)) != QW_OK) return st;
    }
    const float *xf = qw_tensor_f32(c, x);
    const float *sf = S ? qw_tensor_f32(c, S) : NULL;
    const float *gf = qw_tensor_f32(c, gamma);
    const float *bf = beta ? qw_tensor_f32(c, beta) : NULL;
    float *y = out[0]->dtype == QW_DT_F32 ? (float *)out[0]->data : qw_op_scratch(c, (size_t)x->numel * 4 + 4);
    float *sum = skip ? qw_op_scratch(c, (size_t)x->numel * 4 + 4) : NULL;
    if (!xf || !gf || !y || (S && (!sf || !sum)) || (beta && !bf))
        return qw_op_err(c->node, err, QW_E_NOMEM, "out of memory");
    int64_t sn = S ? S->numel : 0;
    for (int64_t r = 0; r < rows; r++) {
        const float *p = xf + r * H;
        if (skip) {
            float *q = sum + r * H;
            const float *s = sf + (r * H) % sn;
            for (int64_t h = 0; h < H; h++) q[h] = p[h] + s[h] + (bf ? bf[h] : 0.0f);
            p = q;
        }
        float mean = 0, ms = 0;
        for (int64_t h = 0; h < H; h++) {
            mean += p[h];
            ms += p[h] * p[h];
        }
        mean /= (float)H;
        float denom;
        if (simplified)
            denom = sqrtf(ms / (float)H + eps);
        else
            denom = sqrtf(ms / (float)H - mean * mean + eps);
        float *q = y + r * H;
        if (simplified)
            for (int64_t h = 0; h < H; h++) q[h] = p[h] / denom * gf[h];
        else
            for (int64_t h = 0; h < H; h++) q[h] = (p[h] - mean) / denom * gf[h] + (bf ? bf[h] : 0.0f);
        if (simplified && !skip) {
            if (stat_out[1]) stat_out[1][r] = 1.0f / denom;
        } else if (skip) {
            if (stat_out[1]) stat_out[1][r] = 0.0f; /* onnxruntime leaves mean at 0 */
            if (stat_out[2]) stat_out[2][r] = 1.0f / denom;
        } else {
            if (stat_out[1]) stat_out[1][r] = mean;
            if (stat_out[2]) stat_out[2][r] = 1.0f / denom;
        }
    }
    if (out[0]->dtype != QW_DT_F32) qw_store_f32(out[0], y, x->numel);
    if (skip && n_out > 3 && on->outputs[3][0]) qw_store_f32(out[3], sum, x->numel);
    return QW_OK;
}

const qw_op_def qw_ops_norm[] = {
    {QW_OP_LayerNormalization, "LayerNormalization", "", check_ln, run_ln, NULL},
    {QW_OP_SimplifiedLayerNormalization, "SimplifiedLayerNormalization", "", check_ln, run_ln, NULL},
    {QW_OP_SkipSimplifiedLayerNormalization, "SkipSimplifiedLayerNormalization", "com.microsoft", check_ln, run_ln,
     NULL},
    {QW_OP_NONE, NULL, NULL, NULL, NULL, NULL},
};

/* ---- RMSNorm recognised in its decomposed form (qw_graph.c's fusion pass) ----------------------------------
 * Pow(x, 2) -> ReduceMean(-1) -> Add(eps) -> Sqrt -> Div(1, .) / Reciprocal -> Mul(x, .) -> Mul(w, .) is what
 * onnxruntime fuses into SimplifiedLayerNormalization and computes in fp32 as x / sqrt(mean(x^2) + eps) * w;
 * the fused node is inputs (x, w), state = the epsilon. */
static void free_eps(void *p) { free(p); }

static qw_status run_rmsnorm_fused(qw_op_ctx *c, qw_tensor *const *in, int n_in, qw_tensor **out, int n_out,
                                   qw_error *err) {
    const qw_tensor *x = in[0], *w = in[1];
    float eps = *(const float *)c->node->state;
    int64_t H = x->ndim ? x->dims[x->ndim - 1] : 1, rows = H ? x->numel / H : 0;
    if (w->numel != H)
        return qw_op_err(c->node, err, QW_E_ARG, "fused RMSNorm: weight has %lld values for %lld", (long long)w->numel,
                         (long long)H);
    qw_status st = qw_op_out(c, out[0], x->dtype, x->ndim, x->dims, err);
    if (st != QW_OK) return st;
    const float *xf = qw_tensor_f32(c, x), *wf = qw_tensor_f32(c, w);
    float *y = out[0]->dtype == QW_DT_F32 ? (float *)out[0]->data : qw_op_scratch(c, (size_t)x->numel * 4 + 4);
    if (!xf || !wf || !y) return qw_op_err(c->node, err, QW_E_NOMEM, "out of memory");
    for (int64_t r = 0; r < rows; r++) {
        const float *p = xf + r * H;
        float ms = 0;
        for (int64_t h = 0; h < H; h++) ms += p[h] * p[h];
        float denom = sqrtf(ms / (float)H + eps);
        for (int64_t h = 0; h < H; h++) y[r * H + h] = p[h] / denom * wf[h];
    }
    if (out[0]->dtype != QW_DT_F32) qw_store_f32(out[0], y, x->numel);
    return QW_OK;
}

const qw_op_def qw_op_fused_rmsnorm = {
    QW_OP_FusedRMSNorm, "SimplifiedLayerNormalization(fused)", "", NULL, run_rmsnorm_fused, free_eps};
