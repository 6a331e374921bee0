/* qw_ops_elementwise.c - unary and (multidirectionally broadcast) binary/variadic elementwise ops, Where,
 * Cast/CastLike. Floats (fp32, fp16) compute in fp32 and store in the output dtype (fp16 outputs rounded);
 * integers compute in int64 (Div truncates, as onnxruntime). */
#include <math.h>
#include <string.h>
#include "qw_ops.h"
#include "qw_dtype.h"

/* ---- broadcasting driver: rows along the last output dim ------------------------------------ */

typedef struct bcast {
    int n;                     /* inputs */
    int nd;                    /* output rank */
    int64_t dims[QW_MAX_DIMS]; /* output shape */
    int64_t numel;
    int64_t str[4][QW_MAX_DIMS]; /* element strides of each input in the output index space */
} bcast;

static int bcast_init(bcast *b, qw_tensor *const *in, int n) {
    b->n = n;
    b->nd = 0;
    for (int k = 0; k < n; k++) {
        int nd;
        int64_t d[QW_MAX_DIMS];
        if (!qw_broadcast_shape(b->nd, b->dims, in[k]->ndim, in[k]->dims, &nd, d)) return 0;
        b->nd = nd;
        memcpy(b->dims, d, sizeof d);
    }
    b->numel = qw_numel(b->nd, b->dims);
    for (int k = 0; k < n; k++) qw_broadcast_strides(in[k]->ndim, in[k]->dims, b->nd, b->dims, b->str[k]);
    return 1;
}

typedef void (*row_fn)(void *ctx, int64_t out_off, const int64_t *off, const int64_t *inc, int64_t len);

static void bcast_rows(const bcast *b, row_fn fn, void *ctx) {
    if (b->numel == 0) return;
    int64_t inner = b->nd ? b->dims[b->nd - 1] : 1;
    int64_t inc[4], off[4];
    for (int k = 0; k < b->n; k++) inc[k] = b->nd ? b->str[k][b->nd - 1] : 0;
    int64_t rows = b->numel / inner;
    int64_t idx[QW_MAX_DIMS] = {0};
    for (int64_t r = 0; r < rows; r++) {
        for (int k = 0; k < b->n; k++) {
            int64_t o = 0;
            for (int d = 0; d + 1 < b->nd; d++) o += idx[d] * b->str[k][d];
            off[k] = o;
        }
        fn(ctx, r * inner, off, inc, inner);
        for (int d = b->nd - 2; d >= 0; d--) {
            if (++idx[d] < b->dims[d]) break;
            idx[d] = 0;
        }
    }
}

/* ---- op codes --------------------------------------------------------------------------------- */

enum {
    OP_ADD,
    OP_SUB,
    OP_MUL,
    OP_DIV,
    OP_POW,
    OP_MAX,
    OP_MIN,
    OP_EQ,
    OP_LT,
    OP_GT,
    OP_LE,
    OP_GE,
    OP_AND,
    OP_OR,
    OP_SQRT,
    OP_RECIP,
    OP_NEG,
    OP_ABS,
    OP_EXP,
    OP_LOG,
    OP_TANH,
    OP_SIGMOID,
    OP_ERF,
    OP_COS,
    OP_SIN,
    OP_NOT,
    OP_FLOOR,
    OP_CEIL,
    OP_SOFTPLUS,
    OP_RELU
};

static int op_code(const char *t) {
    static const char *names[] = {"Add", "Sub",   "Mul",   "Div",        "Pow",         "Max",
                                  "Min", "Equal", "Less",  "Greater",    "LessOrEqual", "GreaterOrEqual",
                                  "And", "Or",    "Sqrt",  "Reciprocal", "Neg",         "Abs",
                                  "Exp", "Log",   "Tanh",  "Sigmoid",    "Erf",         "Cos",
                                  "Sin", "Not",   "Floor", "Ceil",       "Softplus",    "Relu"};
    for (int i = 0; i < (int)(sizeof names / sizeof names[0]); i++)
        if (!strcmp(names[i], t)) return i;
    return -1;
}

static int is_cmp(int op) { return op >= OP_EQ && op <= OP_GE; }
static int is_logic(int op) { return op == OP_AND || op == OP_OR || op == OP_NOT; }

static float fbin(int op, float a, float b) {
    switch (op) {
    case OP_ADD: return a + b;
    case OP_SUB: return a - b;
    case OP_MUL: return a * b;
    case OP_DIV: return a / b;
    case OP_POW: return b == 2.0f ? a * a : (b == 0.5f ? sqrtf(a) : powf(a, b));
    case OP_MAX: return isnan(a) || isnan(b) ? NAN : (a > b ? a : b);
    case OP_MIN: return isnan(a) || isnan(b) ? NAN : (a < b ? a : b);
    default: return 0;
    }
}

static int64_t ibin(int op, int64_t a, int64_t b) {
    switch (op) {
    case OP_ADD: return (int64_t)((uint64_t)a + (uint64_t)b);
    case OP_SUB: return (int64_t)((uint64_t)a - (uint64_t)b);
    case OP_MUL: return (int64_t)((uint64_t)a * (uint64_t)b);
    case OP_DIV: return b ? a / b : 0;
    case OP_POW: {
        int64_t r = 1;
        for (int64_t i = 0; i < b; i++) r *= a;
        return r;
    }
    case OP_MAX: return a > b ? a : b;
    case OP_MIN: return a < b ? a : b;
    case OP_AND: return a && b;
    case OP_OR: return a || b;
    default: return 0;
    }
}

static int fcmp(int op, double a, double b) {
    switch (op) {
    case OP_EQ: return a == b;
    case OP_LT: return a < b;
    case OP_GT: return a > b;
    case OP_LE: return a <= b;
    case OP_GE: return a >= b;
    default: return 0;
    }
}

static int icmp(int op, int64_t a, int64_t b) {
    switch (op) {
    case OP_EQ: return a == b;
    case OP_LT: return a < b;
    case OP_GT: return a > b;
    case OP_LE: return a <= b;
    case OP_GE: return a >= b;
    default: return 0;
    }
}

static float funary(int op, float x) {
    switch (op) {
    case OP_SQRT: return sqrtf(x);
    case OP_RECIP: return 1.0f / x;
    case OP_NEG: return -x;
    case OP_ABS: return fabsf(x);
    case OP_EXP: return expf(x);
    case OP_LOG: return logf(x);
    case OP_TANH: return tanhf(x);
    case OP_SIGMOID: return qw_logistic_ref(x);
    case OP_ERF: return erff(x);
    case OP_COS: return cosf(x);
    case OP_SIN: return sinf(x);
    case OP_FLOOR: return floorf(x);
    case OP_CEIL: return ceilf(x);
    case OP_SOFTPLUS: return x > 0 ? x + log1pf(expf(-x)) : log1pf(expf(x));
    case OP_RELU: return x > 0 ? x : 0;
    default: return 0;
    }
}

/* ---- checks ------------------------------------------------------------------------------------ */

static qw_status check_unary(qw_op_node *n, qw_error *err) {
    int op = op_code(n->on->op_type);
    int dt = n->in_dtype[0];
    if (n->n_in != 1 || !dt) return qw_op_err(n, err, QW_E_FORMAT, "expects 1 input");
    if (op == OP_NOT) {
        if (dt != QW_DT_BOOL) return qw_op_err(n, err, QW_E_UNSUPPORTED, "dtype %s", qw_dtype_name(dt));
    } else if (!qw_dtype_is_float(dt) && !((op == OP_NEG || op == OP_ABS || op == OP_RELU) &&
                                           (dt == QW_DT_I64 || dt == QW_DT_I32 || dt == QW_DT_I8))) {
        return qw_op_err(n, err, QW_E_UNSUPPORTED, "dtype %s", qw_dtype_name(dt));
    }
    n->out_dtype[0] = dt;
    return QW_OK;
}

static qw_status check_binary(qw_op_node *n, qw_error *err) {
    int op = op_code(n->on->op_type);
    if (n->n_in < 1 || n->n_in > 4) return qw_op_err(n, err, QW_E_UNSUPPORTED, "%d inputs", n->n_in);
    if (n->n_in != 2 && op != OP_MAX && op != OP_MIN) return qw_op_err(n, err, QW_E_FORMAT, "expects 2 inputs");
    int dt = n->in_dtype[0];
    for (int k = 0; k < n->n_in; k++) {
        if (!n->in_dtype[k]) return qw_op_err(n, err, QW_E_FORMAT, "input %d omitted", k);
        if (n->in_dtype[k] != dt && !(op == OP_POW && k == 1))
            return qw_op_err(n, err, QW_E_FORMAT, "input dtypes differ (%s, %s)", qw_dtype_name(dt),
                             qw_dtype_name(n->in_dtype[k]));
    }
    if (is_logic(op) && dt != QW_DT_BOOL) return qw_op_err(n, err, QW_E_UNSUPPORTED, "dtype %s", qw_dtype_name(dt));
    if (op == OP_POW && qw_dtype_is_float(dt) != qw_dtype_is_float(n->in_dtype[1]) && !qw_dtype_is_float(dt))
        return qw_op_err(n, err, QW_E_UNSUPPORTED, "integer base with float exponent");
    n->out_dtype[0] = is_cmp(op) || is_logic(op) ? QW_DT_BOOL : dt;
    return QW_OK;
}

/* ---- runs -------------------------------------------------------------------------------------- */

typedef struct ew_ctx {
    int op;
    int n;
    const float *fin[4]; /* float path inputs (fp32 views) */
    qw_tensor *const *in;
    float *fout; /* float path output (fp32) */
    qw_tensor *out;
} ew_ctx;

static void row_fbin(void *vc, int64_t o, const int64_t *off, const int64_t *inc, int64_t len) {
    ew_ctx *c = vc;
    const float *a = c->fin[0] + off[0], *b = c->fin[1] + off[1];
    float *y = c->fout + o;
    int64_t ia = inc[0], ib = inc[1];
    switch (c->op) {
    case OP_ADD:
        for (int64_t i = 0; i < len; i++) y[i] = a[i * ia] + b[i * ib];
        break;
    case OP_SUB:
        for (int64_t i = 0; i < len; i++) y[i] = a[i * ia] - b[i * ib];
        break;
    case OP_MUL:
        for (int64_t i = 0; i < len; i++) y[i] = a[i * ia] * b[i * ib];
        break;
    case OP_DIV:
        for (int64_t i = 0; i < len; i++) y[i] = a[i * ia] / b[i * ib];
        break;
    default:
        for (int64_t i = 0; i < len; i++) y[i] = fbin(c->op, a[i * ia], b[i * ib]);
        break;
    }
}

static void row_fcmp(void *vc, int64_t o, const int64_t *off, const int64_t *inc, int64_t len) {
    ew_ctx *c = vc;
    const float *a = c->fin[0] + off[0], *b = c->fin[1] + off[1];
    uint8_t *y = (uint8_t *)c->out->data + o;
    for (int64_t i = 0; i < len; i++) y[i] = (uint8_t)fcmp(c->op, a[i * inc[0]], b[i * inc[1]]);
}

static void row_ibin(void *vc, int64_t o, const int64_t *off, const int64_t *inc, int64_t len) {
    ew_ctx *c = vc;
    const qw_tensor *A = c->in[0], *B = c->in[1];
    for (int64_t i = 0; i < len; i++) {
        int64_t a = qw_elem_get_i(A->data, A->dtype, off[0] + i * inc[0]);
        int64_t b = qw_elem_get_i(B->data, B->dtype, off[1] + i * inc[1]);
        if (is_cmp(c->op))
            ((uint8_t *)c->out->data)[o + i] = (uint8_t)icmp(c->op, a, b);
        else
            qw_elem_set_i(c->out->data, c->out->dtype, o + i, ibin(c->op, a, b));
    }
}

static qw_status run_binary(qw_op_ctx *c, qw_tensor *const *in, int n_in, qw_tensor **out, int n_out, qw_error *err) {
    qw_op_node *n = c->node;
    int op = op_code(n->on->op_type);
    if (n_in == 1) { /* Max/Min of one input: a copy */
        qw_status st = qw_op_out(c, out[0], in[0]->dtype, in[0]->ndim, in[0]->dims, err);
        if (st == QW_OK) memcpy(out[0]->data, in[0]->data, (size_t)in[0]->numel * qw_dtype_size(in[0]->dtype));
        return st;
    }
    if (n_in > 2) { /* variadic Max/Min: fold pairwise through scratch tensors */
        qw_tensor acc = *in[0];
        for (int k = 1; k < n_in; k++) {
            bcast b;
            qw_tensor *pair[2] = {&acc, in[k]};
            if (!bcast_init(&b, pair, 2)) return qw_op_err(n, err, QW_E_ARG, "shapes do not broadcast");
            qw_tensor nt = {0};
            nt.dtype = acc.dtype;
            nt.ndim = b.nd;
            memcpy(nt.dims, b.dims, sizeof b.dims);
            nt.numel = b.numel;
            nt.data = qw_op_scratch(c, (size_t)b.numel * qw_dtype_size(acc.dtype) + 1);
            if (!nt.data) return qw_op_err(n, err, QW_E_NOMEM, "out of memory");
            for (int64_t i = 0; i < b.numel; i++) {
                int64_t oa = 0, ob = 0, r = i;
                for (int d = b.nd - 1; d >= 0; d--) {
                    int64_t id = r % b.dims[d];
                    r /= b.dims[d];
                    oa += id * b.str[0][d];
                    ob += id * b.str[1][d];
                }
                if (qw_dtype_is_float(acc.dtype))
                    qw_elem_set_f(nt.data, nt.dtype, i,
                                  fbin(op, (float)qw_elem_get_f(acc.data, acc.dtype, oa),
                                       (float)qw_elem_get_f(in[k]->data, in[k]->dtype, ob)));
                else
                    qw_elem_set_i(
                        nt.data, nt.dtype, i,
                        ibin(op, qw_elem_get_i(acc.data, acc.dtype, oa), qw_elem_get_i(in[k]->data, in[k]->dtype, ob)));
            }
            acc = nt;
        }
        qw_status st = qw_op_out(c, out[0], acc.dtype, acc.ndim, acc.dims, err);
        if (st == QW_OK) memcpy(out[0]->data, acc.data, (size_t)acc.numel * qw_dtype_size(acc.dtype));
        return st;
    }
    bcast b;
    if (!bcast_init(&b, in, 2))
        return qw_op_err(n, err, QW_E_ARG, "shapes do not broadcast (rank %d and %d)", in[0]->ndim, in[1]->ndim);
    int odt = n->out_dtype[0];
    qw_status st = qw_op_out(c, out[0], odt, b.nd, b.dims, err);
    if (st != QW_OK) return st;
    odt = out[0]->dtype; /* fp16 values kept in fp32 (graph precision plan) come back as fp32 */
    ew_ctx e = {op, 2, {0}, in, NULL, out[0]};
    if (qw_dtype_is_float(in[0]->dtype)) {
        e.fin[0] = qw_tensor_f32(c, in[0]);
        e.fin[1] = qw_tensor_f32(c, in[1]);
        if (!e.fin[0] || !e.fin[1]) return qw_op_err(n, err, QW_E_NOMEM, "out of memory");
        if (is_cmp(op)) {
            bcast_rows(&b, row_fcmp, &e);
            return QW_OK;
        }
        e.fout = odt == QW_DT_F32 ? (float *)out[0]->data : qw_op_scratch(c, (size_t)b.numel * sizeof(float) + 1);
        if (!e.fout) return qw_op_err(n, err, QW_E_NOMEM, "out of memory");
        bcast_rows(&b, row_fbin, &e);
        if (odt != QW_DT_F32) qw_store_f32(out[0], e.fout, b.numel);
        return QW_OK;
    }
    bcast_rows(&b, row_ibin, &e);
    return QW_OK;
}

static qw_status run_unary(qw_op_ctx *c, qw_tensor *const *in, int n_in, qw_tensor **out, int n_out, qw_error *err) {
    int op = op_code(c->node->on->op_type);
    const qw_tensor *x = in[0];
    qw_status st = qw_op_out(c, out[0], x->dtype, x->ndim, x->dims, err);
    if (st != QW_OK) return st;
    int64_t n = x->numel;
    if (op == OP_NOT) {
        for (int64_t i = 0; i < n; i++) ((uint8_t *)out[0]->data)[i] = !((const uint8_t *)x->data)[i];
        return QW_OK;
    }
    if (!qw_dtype_is_float(x->dtype)) {
        for (int64_t i = 0; i < n; i++) {
            int64_t v = qw_elem_get_i(x->data, x->dtype, i);
            v = op == OP_NEG ? -v : op == OP_ABS ? (v < 0 ? -v : v) : (v > 0 ? v : 0);
            qw_elem_set_i(out[0]->data, x->dtype, i, v);
        }
        return QW_OK;
    }
    const float *xf = qw_tensor_f32(c, x);
    float *y = out[0]->dtype == QW_DT_F32 ? (float *)out[0]->data : qw_op_scratch(c, (size_t)n * sizeof(float) + 1);
    if (!xf || !y) return qw_op_err(c->node, err, QW_E_NOMEM, "out of memory");
    switch (op) {
    case OP_SIGMOID: qw_logistic_f32(c->pool, xf, y, (size_t)n); break;
    case OP_NEG:
        for (int64_t i = 0; i < n; i++) y[i] = -xf[i];
        break;
    default:
        for (int64_t i = 0; i < n; i++) y[i] = funary(op, xf[i]);
        break;
    }
    if (out[0]->dtype != QW_DT_F32) qw_store_f32(out[0], y, n);
    return QW_OK;
}

/* ---- Where ------------------------------------------------------------------------------------ */

static qw_status check_where(qw_op_node *n, qw_error *err) {
    if (n->n_in != 3) return qw_op_err(n, err, QW_E_FORMAT, "expects 3 inputs");
    if (n->in_dtype[0] != QW_DT_BOOL)
        return qw_op_err(n, err, QW_E_UNSUPPORTED, "condition dtype %s", qw_dtype_name(n->in_dtype[0]));
    if (n->in_dtype[1] != n->in_dtype[2]) return qw_op_err(n, err, QW_E_FORMAT, "X and Y dtypes differ");
    n->out_dtype[0] = n->in_dtype[1];
    return QW_OK;
}

static void row_where(void *vc, int64_t o, const int64_t *off, const int64_t *inc, int64_t len) {
    ew_ctx *c = vc;
    const uint8_t *cond = (const uint8_t *)c->in[0]->data;
    size_t es = qw_dtype_size(c->out->dtype);
    const uint8_t *x = c->in[1]->data, *y = c->in[2]->data;
    uint8_t *dst = (uint8_t *)c->out->data + o * es;
    for (int64_t i = 0; i < len; i++) {
        const uint8_t *src = cond[off[0] + i * inc[0]] ? x + (off[1] + i * inc[1]) * es
                                                       : y + (off[2] + i * inc[2]) * es;
        memcpy(dst + i * es, src, es);
    }
}

static qw_status run_where(qw_op_ctx *c, qw_tensor *const *in, int n_in, qw_tensor **out, int n_out, qw_error *err) {
    bcast b;
    if (!bcast_init(&b, in, 3)) return qw_op_err(c->node, err, QW_E_ARG, "shapes do not broadcast");
    qw_status st = qw_op_out(c, out[0], in[1]->dtype, b.nd, b.dims, err);
    if (st != QW_OK) return st;
    ew_ctx e = {0, 3, {0}, in, NULL, out[0]};
    bcast_rows(&b, row_where, &e);
    return QW_OK;
}

/* ---- Cast / CastLike --------------------------------------------------------------------------- */

static qw_status check_cast(qw_op_node *n, qw_error *err) {
    int to;
    if (n->op->id == QW_OP_CastLike) {
        if (n->n_in != 2) return qw_op_err(n, err, QW_E_FORMAT, "expects 2 inputs");
        to = n->in_dtype[1];
    } else {
        const qw_onnx_attr *a = qw_attr(n->on, "to");
        if (!a) return qw_op_err(n, err, QW_E_FORMAT, "missing attribute 'to'");
        to = (int)a->i;
        if (qw_attr_i(n->on, "saturate", 1) != 1 && 0) return QW_OK;
    }
    if (!qw_dtype_supported(to)) return qw_op_err(n, err, QW_E_UNSUPPORTED, "cast to %s", qw_dtype_name(to));
    n->out_dtype[0] = to;
    return QW_OK;
}

static qw_status run_cast(qw_op_ctx *c, qw_tensor *const *in, int n_in, qw_tensor **out, int n_out, qw_error *err) {
    const qw_tensor *x = in[0];
    int to = c->node->out_dtype[0];
    qw_status st = qw_op_out(c, out[0], to, x->ndim, x->dims, err);
    if (st != QW_OK) return st;
    int64_t n = x->numel;
    void *y = out[0]->data;
    if (to == x->dtype) {
        memcpy(y, x->data, (size_t)n * qw_dtype_size(to));
        return QW_OK;
    }
    if (x->dtype == QW_DT_F16 && to == QW_DT_F32) {
        qw_f16_to_f32_array(x->data, y, (size_t)n);
        return QW_OK;
    }
    if (x->dtype == QW_DT_F32 && to == QW_DT_F16) {
        qw_f32_to_f16_array(x->data, y, (size_t)n);
        return QW_OK;
    }
    if (qw_dtype_is_float(x->dtype)) {
        for (int64_t i = 0; i < n; i++) {
            float v = (float)qw_elem_get_f(x->data, x->dtype, i);
            if (to == QW_DT_BOOL)
                ((uint8_t *)y)[i] = v != 0;
            else if (qw_dtype_is_float(to))
                qw_elem_set_f(y, to, i, v);
            else
                qw_elem_set_i(y, to, i, isnan(v) ? INT64_MIN : (int64_t)v);
        }
    } else {
        for (int64_t i = 0; i < n; i++) {
            int64_t v = qw_elem_get_i(x->data, x->dtype, i);
            if (qw_dtype_is_float(to))
                qw_elem_set_f(y, to, i, (double)(float)v);
            else
                qw_elem_set_i(y, to, i, v);
        }
    }
    return QW_OK;
}

const qw_op_def qw_ops_elementwise[] = {
    {QW_OP_Add, "Add", "", check_binary, run_binary, NULL},
    {QW_OP_Sub, "Sub", "", check_binary, run_binary, NULL},
    {QW_OP_Mul, "Mul", "", check_binary, run_binary, NULL},
    {QW_OP_Div, "Div", "", check_binary, run_binary, NULL},
    {QW_OP_Pow, "Pow", "", check_binary, run_binary, NULL},
    {QW_OP_Max, "Max", "", check_binary, run_binary, NULL},
    {QW_OP_Min, "Min", "", check_binary, run_binary, NULL},
    {QW_OP_Equal, "Equal", "", check_binary, run_binary, NULL},
    {QW_OP_Less, "Less", "", check_binary, run_binary, NULL},
    {QW_OP_Greater, "Greater", "", check_binary, run_binary, NULL},
    {QW_OP_LessOrEqual, "LessOrEqual", "", check_binary, run_binary, NULL},
    {QW_OP_GreaterOrEqual, "GreaterOrEqual", "", check_binary, run_binary, NULL},
    {QW_OP_And, "And", "", check_binary, run_binary, NULL},
    {QW_OP_Or, "Or", "", check_binary, run_binary, NULL},
    {QW_OP_Sqrt, "Sqrt", "", check_unary, run_unary, NULL},
    {QW_OP_Reciprocal, "Reciprocal", "", check_unary, run_unary, NULL},
    {QW_OP_Neg, "Neg", "", check_unary, run_unary, NULL},
    {QW_OP_Abs, "Abs", "", check_unary, run_unary, NULL},
    {QW_OP_Exp, "Exp", "", check_unary, run_unary, NULL},
    {QW_OP_Log, "Log", "", check_unary, run_unary, NULL},
    {QW_OP_Tanh, "Tanh", "", check_unary, run_unary, NULL},
    {QW_OP_Sigmoid, "Sigmoid", "", check_unary, run_unary, NULL},
    {QW_OP_Erf, "Erf", "", check_unary, run_unary, NULL},
    {QW_OP_Cos, "Cos", "", check_unary, run_unary, NULL},
    {QW_OP_Sin, "Sin", "", check_unary, run_unary, NULL},
    {QW_OP_Not, "Not", "", check_unary, run_unary, NULL},
    {QW_OP_Floor, "Floor", "", check_unary, run_unary, NULL},
    {QW_OP_Ceil, "Ceil", "", check_unary, run_unary, NULL},
    {QW_OP_Softplus, "Softplus", "", check_unary, run_unary, NULL},
    {QW_OP_Relu, "Relu", "", check_unary, run_unary, NULL},
    {QW_OP_Where, "Where", "", check_where, run_where, NULL},
    {QW_OP_Cast, "Cast", "", check_cast, run_cast, NULL},
    {QW_OP_CastLike, "CastLike", "", check_cast, run_cast, NULL},
    {QW_OP_NONE, NULL, NULL, NULL, NULL, NULL},
};
