/* qw_ops_shape.c - data movement and shape ops: Constant, ConstantOfShape, Shape, Size, Gather, GatherElements,
 * Reshape, Transpose, Squeeze, Unsqueeze, Concat, Split, Slice, Expand, Tile, Range, Trilu, ScatterND, CumSum,
 * Identity. Dtype-agnostic ops move elements by size. Axes/shape inputs are int64 (int32 accepted). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "qw_ops.h"
#include "qw_dtype.h"

static int read_ints(const qw_tensor *t, int64_t *dst, int max) {
    if (t->numel > max) return -1;
    for (int64_t i = 0; i < t->numel; i++) dst[i] = qw_elem_get_i(t->data, t->dtype, i);
    return (int)t->numel;
}

static size_t esize(const qw_tensor *t) { return qw_dtype_size(t->dtype); }

static qw_status copy_out(qw_op_ctx *c, const qw_tensor *x, qw_tensor *y, int ndim, const int64_t *dims,
                          qw_error *err) {
    qw_status st = qw_op_out(c, y, x->dtype, ndim, dims, err);
    if (st == QW_OK && x->numel) memcpy(y->data, x->data, (size_t)x->numel * esize(x));
    return st;
}

static qw_status check_same(qw_op_node *n, qw_error *err) {
    if (!n->in_dtype[0]) return qw_op_err(n, err, QW_E_FORMAT, "input 0 omitted");
    for (int k = 0; k < n->n_out; k++) n->out_dtype[k] = n->in_dtype[0];
    return QW_OK;
}

/* ---- Constant ---------------------------------------------------------------------------------- */

static qw_status check_constant(qw_op_node *n, qw_error *err) {
    const qw_onnx_attr *a = n->on->n_attrs ? &n->on->attrs[0] : NULL;
    if (!a) return qw_op_err(n, err, QW_E_FORMAT, "no value attribute");
    if (!strcmp(a->name, "value") && a->type == QW_ATTR_TENSOR)
        n->out_dtype[0] = a->t->dtype;
    else if (!strcmp(a->name, "value_float") || !strcmp(a->name, "value_floats"))
        n->out_dtype[0] = QW_DT_F32;
    else if (!strcmp(a->name, "value_int") || !strcmp(a->name, "value_ints"))
        n->out_dtype[0] = QW_DT_I64;
    else
        return qw_op_err(n, err, QW_E_UNSUPPORTED, "attribute '%s'", a->name);
    return QW_OK;
}

static qw_status run_constant(qw_op_ctx *c, qw_tensor *const *in, int n_in, qw_tensor **out, int n_out, qw_error *err) {
    const qw_onnx_attr *a = &c->node->on->attrs[0];
    qw_status st;
    if (a->type == QW_ATTR_TENSOR) {
        const qw_onnx_tensor *t = a->t;
        if ((st = qw_op_out(c, out[0], t->dtype, t->ndim, t->dims, err)) != QW_OK) return st;
        if (t->nbytes) return qw_onnx_tensor_read(c->node->fs, c->node->model, t, 0, out[0]->data, t->nbytes, err);
        return QW_OK;
    }
    int64_t d = (int64_t)a->n;
    int list = a->type == QW_ATTR_FLOATS || a->type == QW_ATTR_INTS;
    if ((st = qw_op_out(c, out[0], c->node->out_dtype[0], list ? 1 : 0, &d, err)) != QW_OK) return st;
    if (a->type == QW_ATTR_FLOAT)
        ((float *)out[0]->data)[0] = a->f;
    else if (a->type == QW_ATTR_INT)
        ((int64_t *)out[0]->data)[0] = a->i;
    else if (a->type == QW_ATTR_FLOATS)
        memcpy(out[0]->data, a->floats, a->n * sizeof(float));
    else
        memcpy(out[0]->data, a->ints, a->n * sizeof(int64_t));
    return QW_OK;
}

/* The fill value is read from the graph file once, at load (state: 8 bytes), not at every run. */
static qw_status check_cos(qw_op_node *n, qw_error *err) {
    const qw_onnx_attr *a = qw_attr(n->on, "value");
    n->out_dtype[0] = a && a->type == QW_ATTR_TENSOR ? a->t->dtype : QW_DT_F32;
    uint8_t *v = calloc(1, 8);
    if (!v) return qw_op_err(n, err, QW_E_NOMEM, "out of memory");
    size_t es = qw_dtype_size(n->out_dtype[0]);
    if (a && a->type == QW_ATTR_TENSOR && a->t->nbytes >= es && es <= 8) {
        qw_status st = qw_onnx_tensor_read(n->fs, n->model, a->t, 0, v, es, err);
        if (st != QW_OK) {
            free(v);
            return st;
        }
    }
    free(n->state);
    n->state = v;
    return QW_OK;
}

static qw_status run_cos(qw_op_ctx *c, qw_tensor *const *in, int n_in, qw_tensor **out, int n_out, qw_error *err) {
    int64_t dims[QW_MAX_DIMS];
    int nd = read_ints(in[0], dims, QW_MAX_DIMS);
    if (nd < 0) return qw_op_err(c->node, err, QW_E_UNSUPPORTED, "rank %lld", (long long)in[0]->numel);
    qw_status st = qw_op_out(c, out[0], c->node->out_dtype[0], nd, dims, err);
    if (st != QW_OK) return st;
    const uint8_t *v = c->node->state;
    size_t es = esize(out[0]);
    for (int64_t i = 0; i < out[0]->numel; i++) memcpy((uint8_t *)out[0]->data + i * es, v, es);
    return QW_OK;
}

/* ---- Shape / Size / Identity ------------------------------------------------------------------- */

static qw_status check_i64(qw_op_node *n, qw_error *err) {
    n->out_dtype[0] = QW_DT_I64;
    return QW_OK;
}

static qw_status run_shape(qw_op_ctx *c, qw_tensor *const *in, int n_in, qw_tensor **out, int n_out, qw_error *err) {
    int r = in[0]->ndim;
    int64_t s = qw_attr_i(c->node->on, "start", 0), e = qw_attr_i(c->node->on, "end", r);
    if (s < 0) s += r;
    if (e < 0) e += r;
    if (s < 0) s = 0;
    if (s > r) s = r;
    if (e > r) e = r;
    if (e < s) e = s;
    int64_t d = e - s;
    qw_status st = qw_op_out(c, out[0], QW_DT_I64, 1, &d, err);
    if (st != QW_OK) return st;
    for (int64_t i = 0; i < d; i++) ((int64_t *)out[0]->data)[i] = in[0]->dims[s + i];
    return QW_OK;
}

static qw_status run_size(qw_op_ctx *c, qw_tensor *const *in, int n_in, qw_tensor **out, int n_out, qw_error *err) {
    qw_status st = qw_op_out(c, out[0], QW_DT_I64, 0, NULL, err);
    if (st == QW_OK) ((int64_t *)out[0]->data)[0] = in[0]->numel;
    return st;
}

static qw_status run_identity(qw_op_ctx *c, qw_tensor *const *in, int n_in, qw_tensor **out, int n_out, qw_error *err) {
    return copy_out(c, in[0], out[0], in[0]->ndim, in[0]->dims, err);
}

/* ---- Gather / GatherElements ------------------------------------------------------------------- */

static qw_status check_gather(qw_op_node *n, qw_error *err) {
    if (n->n_in != 2) return qw_op_err(n, err, QW_E_FORMAT, "expects 2 inputs");
    if (n->in_dtype[1] != QW_DT_I64 && n->in_dtype[1] != QW_DT_I32)
        return qw_op_err(n, err, QW_E_UNSUPPORTED, "indices dtype %s", qw_dtype_name(n->in_dtype[1]));
    n->out_dtype[0] = n->in_dtype[0];
    /* under a memory cap a paged weight (the embedding: 467 MB in the 1.5B model) is never made resident whole:
     * run reads only the gathered rows from the weight store */
    if (n->in_weight[0] >= 0 && n->in_const[0] && qw_weights_streamed(n->weights, n->in_weight[0])) n->in_skip[0] = 1;
    return QW_OK;
}

static qw_status run_gather(qw_op_ctx *c, qw_tensor *const *in, int n_in, qw_tensor **out, int n_out, qw_error *err) {
    const qw_tensor *x = in[0] ? in[0] : c->node->in_const[0], *ix = in[1];
    int paged = !in[0]; /* rows read by range (check_gather) */
    int axis;
    if (!qw_norm_axis(qw_attr_i(c->node->on, "axis", 0), x->ndim, &axis))
        return qw_op_err(c->node, err, QW_E_ARG, "axis out of range");
    int64_t dims[QW_MAX_DIMS];
    int nd = 0;
    for (int i = 0; i < axis; i++) dims[nd++] = x->dims[i];
    for (int i = 0; i < ix->ndim; i++) dims[nd++] = ix->dims[i];
    for (int i = axis + 1; i < x->ndim; i++) dims[nd++] = x->dims[i];
    if (nd > QW_MAX_DIMS) return qw_op_err(c->node, err, QW_E_UNSUPPORTED, "rank %d", nd);
    qw_status st = qw_op_out(c, out[0], x->dtype, nd, dims, err);
    if (st != QW_OK) return st;
    int64_t outer = qw_numel(axis, x->dims), n_ax = x->dims[axis];
    int64_t inner = qw_numel(x->ndim - axis - 1, x->dims + axis + 1) * (int64_t)esize(x);
    const uint8_t *src = x->data;
    uint8_t *dst = out[0]->data;
    for (int64_t o = 0; o < outer; o++)
        for (int64_t j = 0; j < ix->numel; j++) {
            int64_t k = qw_elem_get_i(ix->data, ix->dtype, j);
            if (k < 0) k += n_ax;
            if (k < 0 || k >= n_ax)
                return qw_op_err(c->node, err, QW_E_RANGE, "index %lld out of range [0, %lld)", (long long)k,
                                 (long long)n_ax);
            if (paged) {
                st = qw_weights_read_range(c->node->weights, c->node->in_weight[0], (uint64_t)((o * n_ax + k) * inner),
                                           (size_t)inner, dst, err);
                if (st != QW_OK) return st;
            } else {
                memcpy(dst, src + (o * n_ax + k) * inner, (size_t)inner);
            }
            dst += inner;
        }
    return QW_OK;
}

static qw_status run_gather_elements(qw_op_ctx *c, qw_tensor *const *in, int n_in, qw_tensor **out, int n_out,
                                     qw_error *err) {
    const qw_tensor *x = in[0], *ix = in[1];
    int axis;
    if (!qw_norm_axis(qw_attr_i(c->node->on, "axis", 0), x->ndim, &axis) || ix->ndim != x->ndim)
        return qw_op_err(c->node, err, QW_E_ARG, "axis/rank mismatch");
    qw_status st = qw_op_out(c, out[0], x->dtype, ix->ndim, ix->dims, err);
    if (st != QW_OK) return st;
    size_t es = esize(x);
    int64_t xs[QW_MAX_DIMS], s = 1;
    for (int d = x->ndim - 1; d >= 0; d--) {
        xs[d] = s;
        s *= x->dims[d];
    }
    for (int64_t i = 0; i < ix->numel; i++) {
        int64_t r = i, off = 0;
        for (int d = ix->ndim - 1; d >= 0; d--) {
            int64_t id = r % ix->dims[d];
            r /= ix->dims[d];
            if (d == axis) {
                id = qw_elem_get_i(ix->data, ix->dtype, i);
                if (id < 0) id += x->dims[d];
                if (id < 0 || id >= x->dims[d]) return qw_op_err(c->node, err, QW_E_RANGE, "index out of range");
            }
            off += id * xs[d];
        }
        memcpy((uint8_t *)out[0]->data + i * es, (const uint8_t *)x->data + off * es, es);
    }
    return QW_OK;
}

/* ---- Reshape / Squeeze / Unsqueeze -------------------------------------------------------------- */

static qw_status run_reshape(qw_op_ctx *c, qw_tensor *const *in, int n_in, qw_tensor **out, int n_out, qw_error *err) {
    const qw_tensor *x = in[0];
    int64_t dims[QW_MAX_DIMS];
    int nd = read_ints(in[1], dims, QW_MAX_DIMS);
    if (nd < 0) return qw_op_err(c->node, err, QW_E_UNSUPPORTED, "rank > %d", QW_MAX_DIMS);
    int allowzero = (int)qw_attr_i(c->node->on, "allowzero", 0);
    int infer = -1;
    int64_t known = 1;
    for (int i = 0; i < nd; i++) {
        if (dims[i] == 0 && !allowzero) {
            if (i >= x->ndim) return qw_op_err(c->node, err, QW_E_ARG, "0 at dim %d beyond input rank", i);
            dims[i] = x->dims[i];
        }
        if (dims[i] == -1) {
            if (infer >= 0) return qw_op_err(c->node, err, QW_E_ARG, "two -1 dims");
            infer = i;
        } else if (dims[i] < 0) {
            return qw_op_err(c->node, err, QW_E_ARG, "dim %lld", (long long)dims[i]);
        } else if ((known = qw_mul_numel(known, dims[i])) < 0) {
            char sh[200];
            return qw_op_err(c->node, err, QW_E_FORMAT, "shape %s has more than %lld elements",
                             qw_shape_str(nd, dims, sh, sizeof sh), (long long)QW_NUMEL_MAX);
        }
    }
    if (infer >= 0) dims[infer] = known ? x->numel / known : 0;
    if (qw_numel(nd, dims) != x->numel) {
        char sh[200];
        return qw_op_err(c->node, err, QW_E_FORMAT, "cannot reshape %lld elements to %s", (long long)x->numel,
                         qw_shape_str(nd, dims, sh, sizeof sh));
    }
    return copy_out(c, x, out[0], nd, dims, err);
}

/* axes from the attribute (opset < 13) or input 1 */
static int get_axes(qw_op_ctx *c, qw_tensor *const *in, int n_in, int64_t *axes) {
    if (n_in > 1 && in[1]) return read_ints(in[1], axes, QW_MAX_DIMS);
    const qw_onnx_attr *a = qw_attr(c->node->on, "axes");
    if (!a) return 0;
    if (a->n > QW_MAX_DIMS) return -1;
    for (size_t i = 0; i < a->n; i++) axes[i] = a->ints[i];
    return (int)a->n;
}

static qw_status run_squeeze(qw_op_ctx *c, qw_tensor *const *in, int n_in, qw_tensor **out, int n_out, qw_error *err) {
    const qw_tensor *x = in[0];
    int64_t axes[QW_MAX_DIMS];
    int na = get_axes(c, in, n_in, axes);
    if (na < 0) return qw_op_err(c->node, err, QW_E_ARG, "too many axes");
    int drop[QW_MAX_DIMS] = {0};
    for (int i = 0; i < na; i++) {
        int a;
        if (!qw_norm_axis(axes[i], x->ndim, &a) || x->dims[a] != 1)
            return qw_op_err(c->node, err, QW_E_ARG, "cannot squeeze axis %lld", (long long)axes[i]);
        drop[a] = 1;
    }
    int64_t dims[QW_MAX_DIMS];
    int nd = 0;
    for (int i = 0; i < x->ndim; i++)
        if (!(na ? drop[i] : x->dims[i] == 1)) dims[nd++] = x->dims[i];
    return copy_out(c, x, out[0], nd, dims, err);
}

static qw_status run_unsqueeze(qw_op_ctx *c, qw_tensor *const *in, int n_in, qw_tensor **out, int n_out,
                               qw_error *err) {
    const qw_tensor *x = in[0];
    int64_t axes[QW_MAX_DIMS];
    int na = get_axes(c, in, n_in, axes);
    int r = x->ndim + na;
    if (na <= 0 || r > QW_MAX_DIMS) return qw_op_err(c->node, err, QW_E_ARG, "bad axes");
    int ins[QW_MAX_DIMS] = {0};
    for (int i = 0; i < na; i++) {
        int a;
        if (!qw_norm_axis(axes[i], r, &a) || ins[a])
            return qw_op_err(c->node, err, QW_E_ARG, "bad axis %lld", (long long)axes[i]);
        ins[a] = 1;
    }
    int64_t dims[QW_MAX_DIMS];
    for (int i = 0, j = 0; i < r; i++) dims[i] = ins[i] ? 1 : x->dims[j++];
    return copy_out(c, x, out[0], r, dims, err);
}

/* ---- Transpose ---------------------------------------------------------------------------------- */

static qw_status run_transpose(qw_op_ctx *c, qw_tensor *const *in, int n_in, qw_tensor **out, int n_out,
                               qw_error *err) {
    const qw_tensor *x = in[0];
    int r = x->ndim;
    int perm[QW_MAX_DIMS] = {0}, seen[QW_MAX_DIMS] = {0};
    const qw_onnx_attr *a = qw_attr(c->node->on, "perm");
    if (a && (a->type != QW_ATTR_INTS || a->n != (size_t)r))
        return qw_op_err(c->node, err, QW_E_FORMAT, "perm has %zu entries for rank %d", a->n, r);
    for (int i = 0; i < r; i++) {
        int64_t p = a ? a->ints[i] : r - 1 - i;
        if (p < 0 || p >= r || seen[p]++)
            return qw_op_err(c->node, err, QW_E_FORMAT, "perm is not a permutation of 0..%d", r - 1);
        perm[i] = (int)p;
    }
    int64_t dims[QW_MAX_DIMS], xs[QW_MAX_DIMS], s = 1;
    for (int d = r - 1; d >= 0; d--) {
        xs[d] = s;
        s *= x->dims[d];
    }
    for (int i = 0; i < r; i++) dims[i] = x->dims[perm[i]];
    qw_status st = qw_op_out(c, out[0], x->dtype, r, dims, err);
    if (st != QW_OK || x->numel == 0) return st;
    size_t es = esize(x);
    /* contiguous run: trailing dims left in place */
    int tail = r;
    while (tail > 0 && perm[tail - 1] == tail - 1) tail--;
    int64_t run = qw_numel(r - tail, x->dims + tail);
    int64_t count = x->numel / run;
    int64_t idx[QW_MAX_DIMS] = {0};
    const uint8_t *src = x->data;
    uint8_t *dst = out[0]->data;
    size_t rb = (size_t)run * es;
    for (int64_t i = 0; i < count; i++) {
        int64_t off = 0;
        for (int d = 0; d < tail; d++) off += idx[d] * xs[perm[d]];
        if (rb == 4)
            memcpy(dst, src + off * es, 4);
        else if (rb == 2)
            memcpy(dst, src + off * es, 2);
        else
            memcpy(dst, src + off * es, rb);
        dst += rb;
        for (int d = tail - 1; d >= 0; d--) {
            if (++idx[d] < dims[d]) break;
            idx[d] = 0;
        }
    }
    return QW_OK;
}

/* ---- Concat / Split ----------------------------------------------------------------------------- */

static qw_status check_concat(qw_op_node *n, qw_error *err) {
    for (int k = 0; k < n->n_in; k++)
        if (n->in_dtype[k] != n->in_dtype[0]) return qw_op_err(n, err, QW_E_FORMAT, "input dtypes differ");
    n->out_dtype[0] = n->in_dtype[0];
    return QW_OK;
}

static qw_status run_concat(qw_op_ctx *c, qw_tensor *const *in, int n_in, qw_tensor **out, int n_out, qw_error *err) {
    const qw_tensor *x0 = in[0];
    int r = x0->ndim, axis;
    if (!qw_norm_axis(qw_attr_i(c->node->on, "axis", 0), r, &axis))
        return qw_op_err(c->node, err, QW_E_ARG, "axis out of range");
    int64_t dims[QW_MAX_DIMS];
    memcpy(dims, x0->dims, sizeof dims);
    dims[axis] = 0;
    for (int k = 0; k < n_in; k++) {
        if (in[k]->ndim != r) return qw_op_err(c->node, err, QW_E_ARG, "ranks differ");
        for (int d = 0; d < r; d++)
            if (d != axis && in[k]->dims[d] != x0->dims[d])
                return qw_op_err(c->node, err, QW_E_ARG, "dim %d differs (%lld vs %lld)", d, (long long)in[k]->dims[d],
                                 (long long)x0->dims[d]);
        dims[axis] += in[k]->dims[axis];
    }
    qw_status st = qw_op_out(c, out[0], x0->dtype, r, dims, err);
    if (st != QW_OK) return st;
    size_t es = esize(x0);
    int64_t outer = qw_numel(axis, dims), inner = qw_numel(r - axis - 1, dims + axis + 1);
    uint8_t *dst = out[0]->data;
    for (int64_t o = 0; o < outer; o++)
        for (int k = 0; k < n_in; k++) {
            size_t b = (size_t)(in[k]->dims[axis] * inner) * es;
            if (b) memcpy(dst, (const uint8_t *)in[k]->data + o * b, b);
            dst += b;
        }
    return QW_OK;
}

static qw_status run_split(qw_op_ctx *c, qw_tensor *const *in, int n_in, qw_tensor **out, int n_out, qw_error *err) {
    const qw_tensor *x = in[0];
    int r = x->ndim, axis;
    if (!qw_norm_axis(qw_attr_i(c->node->on, "axis", 0), r, &axis))
        return qw_op_err(c->node, err, QW_E_ARG, "axis out of range");
    int64_t split[16];
    int ns = 0;
    const qw_onnx_attr *a = qw_attr(c->node->on, "split");
    if (n_in > 1 && in[1])
        ns = read_ints(in[1], split, 16);
    else if (a) {
        ns = (int)a->n;
        for (int i = 0; i < ns && i < 16; i++) split[i] = a->ints[i];
    }
    int64_t len = x->dims[axis];
    if (ns == 0) {
        int64_t chunk = (len + n_out - 1) / n_out;
        for (int i = 0; i < n_out; i++) {
            split[i] = len - i * chunk < chunk ? len - i * chunk : chunk;
            if (split[i] < 0) split[i] = 0;
        }
        ns = n_out;
    }
    if (ns != n_out) return qw_op_err(c->node, err, QW_E_ARG, "%d splits for %d outputs", ns, n_out);
    int64_t sum = 0;
    for (int i = 0; i < ns; i++) {
        if (split[i] < 0 || split[i] > len)
            return qw_op_err(c->node, err, QW_E_FORMAT, "split %lld", (long long)split[i]);
        sum += split[i];
    }
    if (sum != len)
        return qw_op_err(c->node, err, QW_E_ARG, "splits sum to %lld, axis has %lld", (long long)sum, (long long)len);
    size_t es = esize(x);
    int64_t outer = qw_numel(axis, x->dims), inner = qw_numel(r - axis - 1, x->dims + axis + 1);
    int64_t start = 0;
    for (int k = 0; k < n_out; k++) {
        int64_t dims[QW_MAX_DIMS];
        memcpy(dims, x->dims, sizeof dims);
        dims[axis] = split[k];
        qw_status st = qw_op_out(c, out[k], x->dtype, r, dims, err);
        if (st != QW_OK) return st;
        size_t b = (size_t)(split[k] * inner) * es;
        for (int64_t o = 0; o < outer; o++)
            if (b)
                memcpy((uint8_t *)out[k]->data + o * b, (const uint8_t *)x->data + ((o * len + start) * inner) * es, b);
        start += split[k];
    }
    return QW_OK;
}

/* ---- Slice ------------------------------------------------------------------------------------ */

static qw_status run_slice(qw_op_ctx *c, qw_tensor *const *in, int n_in, qw_tensor **out, int n_out, qw_error *err) {
    const qw_tensor *x = in[0];
    int r = x->ndim;
    int64_t starts[QW_MAX_DIMS], ends[QW_MAX_DIMS], axes[QW_MAX_DIMS], steps[QW_MAX_DIMS];
    int n;
    if (n_in >= 3) {
        n = read_ints(in[1], starts, QW_MAX_DIMS);
        if (read_ints(in[2], ends, QW_MAX_DIMS) != n)
            return qw_op_err(c->node, err, QW_E_ARG, "starts/ends lengths differ");
        if (n_in > 3 && in[3]) {
            if (read_ints(in[3], axes, QW_MAX_DIMS) != n) n = -1;
        } else
            for (int i = 0; i < n; i++) axes[i] = i;
        if (n_in > 4 && in[4]) {
            if (read_ints(in[4], steps, QW_MAX_DIMS) != n) n = -1;
        } else
            for (int i = 0; i < n; i++) steps[i] = 1;
    } else { /* opset < 10: attributes */
        const qw_onnx_attr *as = qw_attr(c->node->on, "starts"), *ae = qw_attr(c->node->on, "ends"),
                           *aa = qw_attr(c->node->on, "axes");
        if (!as || !ae) return qw_op_err(c->node, err, QW_E_FORMAT, "missing starts/ends");
        if (as->type != QW_ATTR_INTS || ae->type != QW_ATTR_INTS || ae->n != as->n || as->n > QW_MAX_DIMS ||
            (aa && (aa->type != QW_ATTR_INTS || aa->n != as->n)))
            return qw_op_err(c->node, err, QW_E_FORMAT, "starts/ends/axes attributes differ in length or type");
        n = (int)as->n;
        for (int i = 0; i < n; i++) {
            starts[i] = as->ints[i];
            ends[i] = ae->ints[i];
            steps[i] = 1;
            axes[i] = aa ? aa->ints[i] : i;
        }
    }
    if (n < 0) return qw_op_err(c->node, err, QW_E_FORMAT, "starts/ends/axes/steps: lengths differ or too many axes");
    int64_t st_[QW_MAX_DIMS], sp[QW_MAX_DIMS], dims[QW_MAX_DIMS];
    for (int d = 0; d < r; d++) {
        st_[d] = 0;
        sp[d] = 1;
        dims[d] = x->dims[d];
    }
    for (int i = 0; i < n; i++) {
        int d;
        if (!qw_norm_axis(axes[i], r, &d)) return qw_op_err(c->node, err, QW_E_ARG, "axis %lld", (long long)axes[i]);
        int64_t dim = x->dims[d], s = starts[i], e = ends[i], step = steps[i];
        if (step == 0 || step == INT64_MIN) return qw_op_err(c->node, err, QW_E_FORMAT, "step %lld", (long long)step);
        if (s < 0 && s > INT64_MIN / 2)
            s += dim;
        else if (s < 0)
            s = step > 0 ? 0 : -1;
        if (e < 0 && e > INT64_MIN / 2)
            e += dim;
        else if (e < 0)
            e = -1;
        if (step > 0) {
            s = s < 0 ? 0 : s > dim ? dim : s;
            e = e < 0 ? 0 : e > dim ? dim : e;
            dims[d] = e > s ? (e - s - 1) / step + 1 : 0; /* not (e - s + step - 1): step may be near INT64_MAX */
        } else {
            s = s < 0 ? -1 : s > dim - 1 ? dim - 1 : s;
            e = e < -1 ? -1 : e > dim - 1 ? dim - 1 : e;
            dims[d] = s > e ? (s - e - 1) / (-step) + 1 : 0;
        }
        st_[d] = s;
        sp[d] = step;
    }
    qw_status s2 = qw_op_out(c, out[0], x->dtype, r, dims, err);
    if (s2 != QW_OK) return s2;
    int64_t total = out[0]->numel;
    if (!total) return QW_OK;
    size_t es = esize(x);
    int64_t xs[QW_MAX_DIMS], s = 1;
    for (int d = r - 1; d >= 0; d--) {
        xs[d] = s;
        s *= x->dims[d];
    }
    int64_t inner = r ? dims[r - 1] : 1;
    int64_t idx[QW_MAX_DIMS] = {0};
    uint8_t *dst = out[0]->data;
    const uint8_t *src = x->data;
    for (int64_t row = 0; row < total / inner; row++) {
        int64_t off = 0;
        for (int d = 0; d + 1 < r; d++) off += (st_[d] + idx[d] * sp[d]) * xs[d];
        if (r == 0) {
            memcpy(dst, src, es);
            break;
        }
        int64_t s0 = st_[r - 1], k = sp[r - 1];
        if (k == 1)
            memcpy(dst, src + (off + s0) * es, (size_t)inner * es);
        else
            for (int64_t i = 0; i < inner; i++) memcpy(dst + i * es, src + (off + s0 + i * k) * es, es);
        dst += inner * es;
        for (int d = r - 2; d >= 0; d--) {
            if (++idx[d] < dims[d]) break;
            idx[d] = 0;
        }
    }
    return QW_OK;
}

/* ---- Expand / Tile ------------------------------------------------------------------------------ */

/* y = x broadcast to (nd, dims) */
static void broadcast_copy(const qw_tensor *x, qw_tensor *y) {
    size_t es = esize(x);
    int64_t str[QW_MAX_DIMS];
    qw_broadcast_strides(x->ndim, x->dims, y->ndim, y->dims, str);
    int r = y->ndim;
    int64_t inner = r ? y->dims[r - 1] : 1, istr = r ? str[r - 1] : 0;
    int64_t idx[QW_MAX_DIMS] = {0};
    uint8_t *dst = y->data;
    const uint8_t *src = x->data;
    for (int64_t row = 0; row < (inner ? y->numel / inner : 0); row++) {
        int64_t off = 0;
        for (int d = 0; d + 1 < r; d++) off += idx[d] * str[d];
        if (istr == 1)
            memcpy(dst, src + off * es, (size_t)inner * es);
        else
            for (int64_t i = 0; i < inner; i++) memcpy(dst + i * es, src + off * es, es);
        dst += inner * es;
        for (int d = r - 2; d >= 0; d--) {
            if (++idx[d] < y->dims[d]) break;
            idx[d] = 0;
        }
    }
}

static qw_status run_expand(qw_op_ctx *c, qw_tensor *const *in, int n_in, qw_tensor **out, int n_out, qw_error *err) {
    int64_t shape[QW_MAX_DIMS], dims[QW_MAX_DIMS];
    int ns = read_ints(in[1], shape, QW_MAX_DIMS), nd;
    if (ns < 0 || !qw_broadcast_shape(in[0]->ndim, in[0]->dims, ns, shape, &nd, dims))
        return qw_op_err(c->node, err, QW_E_ARG, "shape does not broadcast");
    qw_status st = qw_op_out(c, out[0], in[0]->dtype, nd, dims, err);
    if (st == QW_OK) broadcast_copy(in[0], out[0]);
    return st;
}

static qw_status run_tile(qw_op_ctx *c, qw_tensor *const *in, int n_in, qw_tensor **out, int n_out, qw_error *err) {
    const qw_tensor *x = in[0];
    int64_t rep[QW_MAX_DIMS], dims[QW_MAX_DIMS];
    if (read_ints(in[1], rep, QW_MAX_DIMS) != x->ndim) return qw_op_err(c->node, err, QW_E_ARG, "repeats length");
    for (int d = 0; d < x->ndim; d++)
        if ((dims[d] = qw_mul_numel(x->dims[d], rep[d])) < 0)
            return qw_op_err(c->node, err, QW_E_FORMAT, "repeats[%d] = %lld on a dim of %lld", d, (long long)rep[d],
                             (long long)x->dims[d]);
    qw_status st = qw_op_out(c, out[0], x->dtype, x->ndim, dims, err);
    if (st != QW_OK) return st;
    size_t es = esize(x);
    int r = x->ndim;
    int64_t xs[QW_MAX_DIMS], s = 1;
    for (int d = r - 1; d >= 0; d--) {
        xs[d] = s;
        s *= x->dims[d];
    }
    for (int64_t i = 0; i < out[0]->numel; i++) {
        int64_t rr = i, off = 0;
        for (int d = r - 1; d >= 0; d--) {
            int64_t id = rr % dims[d];
            rr /= dims[d];
            off += (id % x->dims[d]) * xs[d];
        }
        memcpy((uint8_t *)out[0]->data + i * es, (const uint8_t *)x->data + off * es, es);
    }
    return QW_OK;
}

/* ---- Range / Trilu / ScatterND / CumSum ---------------------------------------------------------- */

static qw_status run_range(qw_op_ctx *c, qw_tensor *const *in, int n_in, qw_tensor **out, int n_out, qw_error *err) {
    int dt = in[0]->dtype;
    int64_t n;
    qw_status st;
    if (qw_dtype_is_float(dt)) {
        double s = qw_elem_get_f(in[0]->data, dt, 0), l = qw_elem_get_f(in[1]->data, dt, 0),
               d = qw_elem_get_f(in[2]->data, dt, 0);
        double nf = ceil((l - s) / d);
        if (d == 0 || !(nf < (double)QW_NUMEL_MAX)) /* also NaN and infinite bounds */
            return qw_op_err(c->node, err, QW_E_FORMAT, "range (%g, %g, %g) has no finite length", s, l, d);
        n = nf > 0 ? (int64_t)nf : 0;
        if ((st = qw_op_out(c, out[0], dt, 1, &n, err)) != QW_OK) return st;
        for (int64_t i = 0; i < n; i++) qw_elem_set_f(out[0]->data, dt, i, (float)s + (float)i * (float)d);
    } else {
        int64_t s = qw_elem_get_i(in[0]->data, dt, 0), l = qw_elem_get_i(in[1]->data, dt, 0),
                d = qw_elem_get_i(in[2]->data, dt, 0);
        if (d == 0 || d == INT64_MIN) return qw_op_err(c->node, err, QW_E_FORMAT, "delta %lld", (long long)d);
        /* in double: l - s may overflow int64 */
        double nf = d > 0 ? ((double)l - (double)s) / (double)d : ((double)s - (double)l) / (double)-d;
        if (nf >= (double)QW_NUMEL_MAX)
            return qw_op_err(c->node, err, QW_E_FORMAT, "range (%lld, %lld, %lld) is too long", (long long)s,
                             (long long)l, (long long)d);
        n = d > 0 ? (l > s ? (l - s - 1) / d + 1 : 0) : (s > l ? (s - l - 1) / -d + 1 : 0);
        if ((st = qw_op_out(c, out[0], dt, 1, &n, err)) != QW_OK) return st;
        for (int64_t i = 0; i < n; i++) qw_elem_set_i(out[0]->data, dt, i, s + i * d);
    }
    return QW_OK;
}

static qw_status run_trilu(qw_op_ctx *c, qw_tensor *const *in, int n_in, qw_tensor **out, int n_out, qw_error *err) {
    const qw_tensor *x = in[0];
    if (x->ndim < 2) return qw_op_err(c->node, err, QW_E_ARG, "rank < 2");
    int64_t k = n_in > 1 && in[1] ? qw_elem_get_i(in[1]->data, in[1]->dtype, 0) : 0;
    int upper = (int)qw_attr_i(c->node->on, "upper", 1);
    qw_status st = copy_out(c, x, out[0], x->ndim, x->dims, err);
    if (st != QW_OK) return st;
    int64_t R = x->dims[x->ndim - 2], C = x->dims[x->ndim - 1];
    size_t es = esize(x);
    int64_t mats = (R * C) != 0 ? x->numel / (R * C) : 0;
    for (int64_t m = 0; m < mats; m++)
        for (int64_t i = 0; i < R; i++)
            for (int64_t j = 0; j < C; j++) {
                int keep = upper ? (j - i >= k) : (j - i <= k);
                if (!keep) memset((uint8_t *)out[0]->data + ((m * R + i) * C + j) * es, 0, es);
            }
    return QW_OK;
}

static qw_status run_scatternd(qw_op_ctx *c, qw_tensor *const *in, int n_in, qw_tensor **out, int n_out,
                               qw_error *err) {
    const qw_tensor *x = in[0], *ix = in[1], *up = in[2];
    const qw_onnx_attr *red = qw_attr(c->node->on, "reduction");
    if (red && strcmp(red->s, "none")) return qw_op_err(c->node, err, QW_E_UNSUPPORTED, "reduction '%s'", red->s);
    qw_status st = copy_out(c, x, out[0], x->ndim, x->dims, err);
    if (st != QW_OK) return st;
    int q = ix->ndim;
    if (q < 1) return qw_op_err(c->node, err, QW_E_FORMAT, "indices of rank 0");
    int64_t kd = ix->dims[q - 1];
    if (kd > x->ndim) return qw_op_err(c->node, err, QW_E_ARG, "index depth %lld > rank", (long long)kd);
    int64_t slice = qw_numel(x->ndim - (int)kd, x->dims + kd);
    int64_t n = kd ? ix->numel / kd : 0;
    if (up->dtype != x->dtype || qw_mul_numel(n, slice) != up->numel)
        return qw_op_err(c->node, err, QW_E_FORMAT, "updates have %lld elements of %s, %lld of %s expected",
                         (long long)up->numel, qw_dtype_name(up->dtype), (long long)qw_mul_numel(n, slice),
                         qw_dtype_name(x->dtype));
    size_t es = esize(x);
    int64_t xs[QW_MAX_DIMS], s = 1;
    for (int d = x->ndim - 1; d >= 0; d--) {
        xs[d] = s;
        s *= x->dims[d];
    }
    for (int64_t i = 0; i < n; i++) {
        int64_t off = 0;
        for (int64_t j = 0; j < kd; j++) {
            int64_t id = qw_elem_get_i(ix->data, ix->dtype, i * kd + j);
            if (id < 0) id += x->dims[j];
            if (id < 0 || id >= x->dims[j]) return qw_op_err(c->node, err, QW_E_RANGE, "index out of range");
            off += id * xs[j];
        }
        memcpy((uint8_t *)out[0]->data + off * es, (const uint8_t *)up->data + i * slice * es, (size_t)slice * es);
    }
    return QW_OK;
}

static qw_status run_cumsum(qw_op_ctx *c, qw_tensor *const *in, int n_in, qw_tensor **out, int n_out, qw_error *err) {
    const qw_tensor *x = in[0];
    int axis;
    if (!qw_norm_axis(qw_elem_get_i(in[1]->data, in[1]->dtype, 0), x->ndim, &axis))
        return qw_op_err(c->node, err, QW_E_ARG, "axis out of range");
    int excl = (int)qw_attr_i(c->node->on, "exclusive", 0), rev = (int)qw_attr_i(c->node->on, "reverse", 0);
    qw_status st = qw_op_out(c, out[0], x->dtype, x->ndim, x->dims, err);
    if (st != QW_OK) return st;
    int64_t outer = qw_numel(axis, x->dims), len = x->dims[axis],
            inner = qw_numel(x->ndim - axis - 1, x->dims + axis + 1);
    int fl = qw_dtype_is_float(x->dtype);
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < inner; i++) {
            double af = 0;
            int64_t ai = 0;
            for (int64_t t = 0; t < len; t++) {
                int64_t j = rev ? len - 1 - t : t;
                int64_t idx = (o * len + j) * inner + i;
                if (fl) {
                    double v = qw_elem_get_f(x->data, x->dtype, idx);
                    if (!excl) af = (float)(af + v);
                    qw_elem_set_f(out[0]->data, out[0]->dtype, idx, af);
                    if (excl) af = (float)(af + v);
                } else {
                    int64_t v = qw_elem_get_i(x->data, x->dtype, idx);
                    if (!excl) ai += v;
                    qw_elem_set_i(out[0]->data, x->dtype, idx, ai);
                    if (excl) ai += v;
                }
            }
        }
    return QW_OK;
}

static qw_status check_range(qw_op_node *n, qw_error *err) {
    if (n->n_in != 3) return qw_op_err(n, err, QW_E_FORMAT, "expects 3 inputs");
    n->out_dtype[0] = n->in_dtype[0];
    return QW_OK;
}

const qw_op_def qw_ops_shape[] = {
    {QW_OP_Constant, "Constant", "", check_constant, run_constant, NULL},
    {QW_OP_ConstantOfShape, "ConstantOfShape", "", check_cos, run_cos, free},
    {QW_OP_Shape, "Shape", "", check_i64, run_shape, NULL},
    {QW_OP_Size, "Size", "", check_i64, run_size, NULL},
    {QW_OP_Identity, "Identity", "", check_same, run_identity, NULL},
    {QW_OP_Gather, "Gather", "", check_gather, run_gather, NULL},
    {QW_OP_GatherElements, "GatherElements", "", check_gather, run_gather_elements, NULL},
    {QW_OP_Reshape, "Reshape", "", check_same, run_reshape, NULL},
    {QW_OP_Squeeze, "Squeeze", "", check_same, run_squeeze, NULL},
    {QW_OP_Unsqueeze, "Unsqueeze", "", check_same, run_unsqueeze, NULL},
    {QW_OP_Transpose, "Transpose", "", check_same, run_transpose, NULL},
    {QW_OP_Concat, "Concat", "", check_concat, run_concat, NULL},
    {QW_OP_Split, "Split", "", check_same, run_split, NULL},
    {QW_OP_Slice, "Slice", "", check_same, run_slice, NULL},
    {QW_OP_Expand, "Expand", "", check_same, run_expand, NULL},
    {QW_OP_Tile, "Tile", "", check_same, run_tile, NULL},
    {QW_OP_Range, "Range", "", check_range, run_range, NULL},
    {QW_OP_Trilu, "Trilu", "", check_same, run_trilu, NULL},
    {QW_OP_ScatterND, "ScatterND", "", check_same, run_scatternd, NULL},
    {QW_OP_CumSum, "CumSum", "", check_same, run_cumsum, NULL},
    {QW_OP_NONE, NULL, NULL, NULL, NULL, NULL},
};
