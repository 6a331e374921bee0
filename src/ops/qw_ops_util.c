/* qw_ops_util.c - element access, dtype predicates and broadcasting shared by the op families. */
#include <string.h>
#include "qw_ops.h"
#include "qw_dtype.h"

int qw_dtype_is_float(int dt) { return dt == QW_DT_F32 || dt == QW_DT_F16; }

int qw_dtype_supported(int dt) {
    switch (dt) {
    case QW_DT_F32:
    case QW_DT_F16:
    case QW_DT_I64:
    case QW_DT_I32:
    case QW_DT_I8:
    case QW_DT_U8:
    case QW_DT_BOOL: return 1;
    default: return 0;
    }
}

double qw_elem_get_f(const void *p, int dt, int64_t i) {
    switch (dt) {
    case QW_DT_F32: return ((const float *)p)[i];
    case QW_DT_F16: return qw_f16_to_f32(((const uint16_t *)p)[i]);
    case QW_DT_I64: return (double)((const int64_t *)p)[i];
    case QW_DT_I32: return ((const int32_t *)p)[i];
    case QW_DT_I8: return ((const int8_t *)p)[i];
    case QW_DT_U8:
    case QW_DT_BOOL: return ((const uint8_t *)p)[i];
    default: return 0;
    }
}

int64_t qw_elem_get_i(const void *p, int dt, int64_t i) {
    switch (dt) {
    case QW_DT_F32: return (int64_t)((const float *)p)[i];
    case QW_DT_F16: return (int64_t)qw_f16_to_f32(((const uint16_t *)p)[i]);
    case QW_DT_I64: return ((const int64_t *)p)[i];
    case QW_DT_I32: return ((const int32_t *)p)[i];
    case QW_DT_I8: return ((const int8_t *)p)[i];
    case QW_DT_U8:
    case QW_DT_BOOL: return ((const uint8_t *)p)[i];
    default: return 0;
    }
}

void qw_elem_set_f(void *p, int dt, int64_t i, double v) {
    switch (dt) {
    case QW_DT_F32: ((float *)p)[i] = (float)v; break;
    case QW_DT_F16: ((uint16_t *)p)[i] = qw_f32_to_f16((float)v); break;
    case QW_DT_I64: ((int64_t *)p)[i] = (int64_t)v; break;
    case QW_DT_I32: ((int32_t *)p)[i] = (int32_t)v; break;
    case QW_DT_I8: ((int8_t *)p)[i] = (int8_t)(int)v; break;
    case QW_DT_U8: ((uint8_t *)p)[i] = (uint8_t)(int)v; break;
    case QW_DT_BOOL: ((uint8_t *)p)[i] = v != 0; break;
    default: break;
    }
}

void qw_elem_set_i(void *p, int dt, int64_t i, int64_t v) {
    switch (dt) {
    case QW_DT_F32: ((float *)p)[i] = (float)v; break;
    case QW_DT_F16: ((uint16_t *)p)[i] = qw_f32_to_f16((float)v); break;
    case QW_DT_I64: ((int64_t *)p)[i] = v; break;
    case QW_DT_I32: ((int32_t *)p)[i] = (int32_t)v; break;
    case QW_DT_I8: ((int8_t *)p)[i] = (int8_t)v; break;
    case QW_DT_U8: ((uint8_t *)p)[i] = (uint8_t)v; break;
    case QW_DT_BOOL: ((uint8_t *)p)[i] = v != 0; break;
    default: break;
    }
}

const float *qw_tensor_f32(qw_op_ctx *c, const qw_tensor *t) {
    if (t->dtype == QW_DT_F32) return (const float *)t->data;
    float *dst = qw_op_scratch(c, (size_t)t->numel * sizeof(float));
    if (!dst) return NULL;
    if (t->dtype == QW_DT_F16)
        qw_f16_to_f32_array((const uint16_t *)t->data, dst, (size_t)t->numel);
    else
        for (int64_t i = 0; i < t->numel; i++) dst[i] = (float)qw_elem_get_f(t->data, t->dtype, i);
    return dst;
}

void qw_store_f32(qw_tensor *t, const float *src, int64_t n) {
    if (t->dtype == QW_DT_F32) {
        if ((const void *)src != t->data) memmove(t->data, src, (size_t)n * sizeof(float));
    } else if (t->dtype == QW_DT_F16)
        qw_f32_to_f16_array(src, (uint16_t *)t->data, (size_t)n);
    else
        for (int64_t i = 0; i < n; i++) qw_elem_set_f(t->data, t->dtype, i, src[i]);
}

int qw_norm_axis(int64_t axis, int ndim, int *out) {
    if (axis < -ndim || axis >= (ndim > 0 ? ndim : 1)) return 0;
    *out = (int)(axis < 0 ? axis + ndim : axis);
    return 1;
}

int qw_broadcast_shape(int na, const int64_t *a, int nb, const int64_t *b, int *nout, int64_t *out) {
    int n = na > nb ? na : nb;
    for (int i = 0; i < n; i++) {
        int64_t da = i - (n - na) >= 0 ? a[i - (n - na)] : 1;
        int64_t db = i - (n - nb) >= 0 ? b[i - (n - nb)] : 1;
        if (da == db || db == 1)
            out[i] = da;
        else if (da == 1)
            out[i] = db;
        else
            return 0;
    }
    *nout = n;
    return 1;
}

void qw_broadcast_strides(int nd, const int64_t *dims, int nout, const int64_t *odims, int64_t *strides) {
    int64_t s = 1;
    for (int i = nout - 1; i >= 0; i--) {
        int j = i - (nout - nd);
        if (j < 0) {
            strides[i] = 0;
            continue;
        }
        strides[i] = (dims[j] == 1 && odims[i] != 1) ? 0 : s;
        if (dims[j] == 1) strides[i] = 0;
        s *= dims[j];
    }
}

#define QW_OP_NAME_(id, req) #id,
const char *const qw_op_id_names[QW_OP_COUNT] = {"", QW_OP_LIST(QW_OP_NAME_)};
#undef QW_OP_NAME_
#define QW_OP_REQ_(id, req) req,
const int8_t qw_op_required_inputs[QW_OP_COUNT] = {0, QW_OP_LIST(QW_OP_REQ_)};
#undef QW_OP_REQ_

const qw_tensor *qw_op_last_row(const qw_op_ctx *c, const qw_tensor *A, qw_tensor *view) {
    const qw_op_node *n = c->node;
    int64_t r = c->step->logits_rows > 1 ? c->step->logits_rows : 1;
    if (!n->last_row_only || !A || A->ndim != 3 || A->dims[0] != 1 || A->dims[1] <= r || !A->data) return A;
    *view = *A;
    view->dims[1] = r;
    view->numel = r * A->dims[2];
    view->data = (uint8_t *)A->data + (size_t)((A->dims[1] - r) * A->dims[2]) * qw_dtype_size(A->dtype);
    view->cap = 0;
    return view;
}
