/* qw_ops_attention.c - com.microsoft RotaryEmbedding, MultiHeadAttention and GroupQueryAttention (CPU
 * semantics of onnxruntime): fp32 math, fp16 outputs rounded once.
 *  RotaryEmbedding: input (B,S,H*D) or (B,H,S,D); position_ids (B,S) or (1) = offset; cos/sin caches
 *    (max_pos, rot/2); non-interleaved: rotate halves, interleaved: pairs.
 *  MultiHeadAttention: q (B,S,H*D), k/v (B,L,H*D), attention_bias (B|1,H|1,S,T) added to scaled scores,
 *    key_padding_mask (B,T) (0 -> mask_filter_value), past (B,H,P,D) -> present = concat(past, new) (B,H,T,D).
 *  GroupQueryAttention: q (B,S,H*D), k/v (B,S,Hkv*D) (or packed QKV in q), past (B,Hkv,P,D), seqlens_k (B)
 *    = total - 1, total_sequence_length; new keys at past_len = seqlens_k + 1 - S; causal; optional rotary;
 *    present (B,Hkv,max(P,T),D). */
#include <math.h>
#include <string.h>
#include "qw_ops.h"
#include "qw_dtype.h"
#include "qw_kernels.h"

/* ---- rotary -------------------------------------------------------------------------------------- */

/* rotates one head vector x (rot dims) in place with cos/sin rows (rot/2 each) */
static void rope_row(float *x, int rot, const float *cosr, const float *sinr, int interleaved) {
    int half = rot / 2;
    if (interleaved) {
        for (int i = 0; i < half; i++) {
            float a = x[2 * i], b = x[2 * i + 1];
            x[2 * i] = a * cosr[i] - b * sinr[i];
            x[2 * i + 1] = b * cosr[i] + a * sinr[i];
        }
    } else {
        for (int i = 0; i < half; i++) {
            float a = x[i], b = x[i + half];
            x[i] = a * cosr[i] - b * sinr[i];
            x[i + half] = b * cosr[i] + a * sinr[i];
        }
    }
}

static qw_status check_rope(qw_op_node *n, qw_error *err) {
    if (n->n_in < 4) return qw_op_err(n, err, QW_E_FORMAT, "expects 4 inputs");
    if (!qw_dtype_is_float(n->in_dtype[0]))
        return qw_op_err(n, err, QW_E_UNSUPPORTED, "dtype %s", qw_dtype_name(n->in_dtype[0]));
    if (n->in_dtype[1] != QW_DT_I64 && n->in_dtype[1] != QW_DT_I32)
        return qw_op_err(n, err, QW_E_UNSUPPORTED, "position_ids dtype");
    if (qw_attr_i(n->on, "is_packed_batching", 0)) return qw_op_err(n, err, QW_E_UNSUPPORTED, "is_packed_batching=1");
    n->out_dtype[0] = n->in_dtype[0];
    return QW_OK;
}

static qw_status run_rope(qw_op_ctx *c, qw_tensor *const *in, int n_in, qw_tensor **out, int n_out, qw_error *err) {
    const qw_onnx_node *on = c->node->on;
    const qw_tensor *x = in[0], *pos = in[1], *cc = in[2], *sc = in[3];
    int interleaved = (int)qw_attr_i(on, "interleaved", 0);
    int nh = (int)qw_attr_i(on, "num_heads", 0), rot = (int)qw_attr_i(on, "rotary_embedding_dim", 0);
    float scale = qw_attr_f(on, "scale", 1.0f);
    (void)scale;
    if (cc->ndim != 2) return qw_op_err(c->node, err, QW_E_ARG, "cos_cache rank %d", cc->ndim);
    int64_t B = x->dims[0], S, D, H;
    int layout4 = x->ndim == 4;
    if (layout4) {
        H = x->dims[1];
        S = x->dims[2];
        D = x->dims[3];
    } else if (x->ndim == 3) {
        S = x->dims[1];
        if (nh > 0) {
            H = nh;
            D = x->dims[2] / nh;
        } else {
            D = cc->dims[1] * 2;
            H = D ? x->dims[2] / D : 0;
        }
    } else
        return qw_op_err(c->node, err, QW_E_ARG, "input rank %d", x->ndim);
    if (H <= 0 || D <= 0) return qw_op_err(c->node, err, QW_E_FORMAT, "%lld heads of %lld", (long long)H, (long long)D);
    if (rot == 0) rot = (int)D;
    if (rot > D || cc->dims[1] * 2 != rot)
        return qw_op_err(c->node, err, QW_E_ARG, "rotary dim %d vs cache %lld", rot, (long long)cc->dims[1]);
    qw_status st = qw_op_out(c, out[0], x->dtype, x->ndim, x->dims, err);
    if (st != QW_OK) return st;
    const float *xf = qw_tensor_f32(c, x), *cf = qw_tensor_f32(c, cc), *sf = qw_tensor_f32(c, sc);
    float *y = out[0]->dtype == QW_DT_F32 ? (float *)out[0]->data : qw_op_scratch(c, (size_t)x->numel * 4 + 4);
    if (!xf || !cf || !sf || !y) return qw_op_err(c->node, err, QW_E_NOMEM, "out of memory");
    if (y != xf) memcpy(y, xf, (size_t)x->numel * 4);
    int half = rot / 2;
    for (int64_t b = 0; b < B; b++)
        for (int64_t s = 0; s < S; s++) {
            int64_t p = pos->numel == 1 ? qw_elem_get_i(pos->data, pos->dtype, 0) + s
                                        : qw_elem_get_i(pos->data, pos->dtype, b * S + s);
            if (p < 0 || p >= cc->dims[0])
                return qw_op_err(c->node, err, QW_E_RANGE, "position %lld beyond the cache (%lld)", (long long)p,
                                 (long long)cc->dims[0]);
            for (int64_t h = 0; h < H; h++) {
                float *v = layout4 ? y + ((b * H + h) * S + s) * D : y + ((b * S + s) * H + h) * D;
                rope_row(v, rot, cf + p * half, sf + p * half, interleaved);
            }
        }
    if (out[0]->dtype != QW_DT_F32) qw_store_f32(out[0], y, x->numel);
    return QW_OK;
}

/* ---- attention core ------------------------------------------------------------------------------ */

/* the attention itself is qw_attn_run (qw_kernels_attn.c), with q and out in (S, H, D) order */
static qw_attn attn_params(int S, int T, int H, int Hkv, int D, const float *q, const float *K, const float *V,
                           int Tcap, float scale, int past, float *out) {
    qw_attn a = {.n_q = S,
                 .n_keys = T,
                 .past = past,
                 .n_heads = H,
                 .n_kv_heads = Hkv,
                 .head_dim = D,
                 .q = q,
                 .q_hs = D,
                 .q_ss = (int64_t)H * D,
                 .out = out,
                 .o_hs = D,
                 .o_ss = (int64_t)H * D,
                 .k = K,
                 .v = V,
                 .kv_dtype = QW_KV_F32,
                 .cap = Tcap,
                 .scale = scale,
                 .div = 0};
    return a;
}

/* (B,L,Hn*D) rows of head hn -> present (Hn, Tcap, D) at offset; any float dtype into the present dtype */
static void store_kv(qw_tensor *present, int64_t b, int Hn, int64_t Tcap, int D, int64_t at, const float *src,
                     int64_t L) {
    for (int64_t l = 0; l < L; l++)
        for (int h = 0; h < Hn; h++) {
            const float *s = src + (l * Hn + h) * D;
            int64_t off = (((b * Hn + h) * Tcap) + at + l) * D;
            if (present->dtype == QW_DT_F32)
                memcpy((float *)present->data + off, s, (size_t)D * 4);
            else
                qw_f32_to_f16_array(s, (uint16_t *)present->data + off, (size_t)D);
        }
}

/* past (B,Hn,P,D) rows 0..n-1 of batch b -> present */
static void copy_past(qw_tensor *present, const qw_tensor *past, int64_t b, int Hn, int64_t Tcap, int D, int64_t n) {
    if (!past || n <= 0) return;
    size_t es = qw_dtype_size(present->dtype);
    int64_t P = past->dims[2];
    for (int h = 0; h < Hn; h++)
        memcpy((uint8_t *)present->data + (size_t)(((b * Hn + h) * Tcap) * D) * es,
               (const uint8_t *)past->data + (size_t)(((b * Hn + h) * P) * D) * es, (size_t)(n * D) * es);
}

/* present (B,Hn,Tcap,D) batch b -> fp32 (Hn,Tcap,D) */
static const float *kv_f32(qw_op_ctx *c, const qw_tensor *present, int64_t b, int Hn, int64_t Tcap, int D) {
    size_t n = (size_t)Hn * Tcap * D;
    if (present->dtype == QW_DT_F32) return (const float *)present->data + b * n;
    float *f = qw_op_scratch(c, n * 4 + 4);
    if (f) qw_f16_to_f32_array((const uint16_t *)present->data + b * n, f, n);
    return f;
}

static qw_status check_attn(qw_op_node *n, qw_error *err) {
    int dt = n->in_dtype[0];
    if (!qw_dtype_is_float(dt)) return qw_op_err(n, err, QW_E_UNSUPPORTED, "dtype %s", qw_dtype_name(dt));
    int gqa = n->op->id == QW_OP_GroupQueryAttention;
    if (gqa) {
        int64_t h = qw_attr_i(n->on, "num_heads", 0), hkv = qw_attr_i(n->on, "kv_num_heads", 0);
        if (h <= 0 || hkv <= 0 || h > 4096 || hkv > h) /* read as int at run: no truncation to 0 */
            return qw_op_err(n, err, QW_E_FORMAT, "num_heads %lld / kv_num_heads %lld missing or out of range",
                             (long long)h, (long long)hkv);
        if (n->n_in > 11 && n->in_dtype[11]) return qw_op_err(n, err, QW_E_UNSUPPORTED, "head_sink input");
        if (qw_attr_i(n->on, "smooth_softmax", 0)) return qw_op_err(n, err, QW_E_UNSUPPORTED, "smooth_softmax=1");
        if (qw_attr_i(n->on, "qk_output", 0)) return qw_op_err(n, err, QW_E_UNSUPPORTED, "qk_output");
    } else {
        int64_t h = qw_attr_i(n->on, "num_heads", 0);
        if (h <= 0 || h > 4096)
            return qw_op_err(n, err, QW_E_FORMAT, "num_heads %lld missing or out of range", (long long)h);
        if (n->n_in > 3 && n->in_dtype[3]) return qw_op_err(n, err, QW_E_UNSUPPORTED, "bias input");
        if (n->n_in > 8 && n->in_dtype[8]) return qw_op_err(n, err, QW_E_UNSUPPORTED, "past_sequence_length input");
    }
    for (int k = 0; k < n->n_out && k < 3; k++) n->out_dtype[k] = dt;
    if (n->n_out > 3) return qw_op_err(n, err, QW_E_UNSUPPORTED, "%d outputs", n->n_out);
    return QW_OK;
}

static qw_status run_mha(qw_op_ctx *c, qw_tensor *const *in, int n_in, qw_tensor **out, int n_out, qw_error *err) {
    const qw_onnx_node *on = c->node->on;
    const qw_tensor *q = in[0], *k = n_in > 1 ? in[1] : NULL, *v = n_in > 2 ? in[2] : NULL;
    const qw_tensor *kpm = n_in > 4 ? in[4] : NULL, *ab = n_in > 5 ? in[5] : NULL;
    const qw_tensor *pk = n_in > 6 ? in[6] : NULL, *pv = n_in > 7 ? in[7] : NULL;
    int H = (int)qw_attr_i(on, "num_heads", 0);
    if (!k || !v || q->ndim != 3 || k->ndim != 3 || v->ndim != 3)
        return qw_op_err(c->node, err, QW_E_UNSUPPORTED, "only 3-D query/key/value are supported");
    int64_t B = q->dims[0], S = q->dims[1], L = k->dims[1];
    int D = (int)(q->dims[2] / H);
    int64_t P = pk ? pk->dims[2] : 0, T = P + L;
    float scale = qw_attr_f(on, "scale", 0.0f);
    if (scale == 0.0f) scale = 1.0f / sqrtf((float)D);
    float mfv = qw_attr_f(on, "mask_filter_value", -10000.0f);
    int causal = (int)qw_attr_i(on, "unidirectional", 0);
    qw_status st = qw_op_out(c, out[0], q->dtype, 3, q->dims, err);
    if (st != QW_OK) return st;
    int64_t pd[4] = {B, H, T, D};
    if (qw_numel(4, pd) < 0) /* the scratch copies below are sized from it */
        return qw_op_err(c->node, err, QW_E_FORMAT, "present (%lld, %d, %lld, %d) is too large", (long long)B, H,
                         (long long)T, D);
    qw_tensor pres_k = {0}, pres_v = {0};
    qw_tensor *PK = n_out > 1 && on->outputs[1][0] ? out[1] : &pres_k,
              *PV = n_out > 2 && on->outputs[2][0] ? out[2] : &pres_v;
    if (PK == &pres_k) {
        PK->data = qw_op_scratch(c, (size_t)(B * H * T * D) * 4 + 4);
        PK->dtype = q->dtype;
        memcpy(PK->dims, pd, sizeof pd);
        PK->ndim = 4;
    } else if ((st = qw_op_out(c, PK, q->dtype, 4, pd, err)) != QW_OK)
        return st;
    if (PV == &pres_v) {
        PV->data = qw_op_scratch(c, (size_t)(B * H * T * D) * 4 + 4);
        PV->dtype = q->dtype;
        memcpy(PV->dims, pd, sizeof pd);
        PV->ndim = 4;
    } else if ((st = qw_op_out(c, PV, q->dtype, 4, pd, err)) != QW_OK)
        return st;
    const float *qf = qw_tensor_f32(c, q), *kf = qw_tensor_f32(c, k), *vf = qw_tensor_f32(c, v);
    const float *bf = ab ? qw_tensor_f32(c, ab) : NULL;
    float *o = out[0]->dtype == QW_DT_F32 ? (float *)out[0]->data : qw_op_scratch(c, (size_t)q->numel * 4 + 4);
    int nth = qw_pool_threads(c->pool);
    qw_attn shape = attn_params((int)S, (int)T, H, H, D, qf, NULL, NULL, (int)T, scale, causal ? (int)(T - S) : -1, o);
    void *work = qw_op_scratch(c, qw_attn_work_size(&shape, nth));
    float *km = kpm ? qw_op_scratch(c, (size_t)(T ? T : 1) * 4) : NULL;
    if (!qf || !kf || !vf || !o || !work || (ab && !bf) || (kpm && !km))
        return qw_op_err(c->node, err, QW_E_NOMEM, "out of memory");
    for (int64_t b = 0; b < B; b++) {
        copy_past(PK, pk, b, H, T, D, P);
        copy_past(PV, pv, b, H, T, D, P);
        store_kv(PK, b, H, T, D, P, kf + b * L * H * D, L);
        store_kv(PV, b, H, T, D, P, vf + b * L * H * D, L);
        const float *K = kv_f32(c, PK, b, H, T, D), *V = kv_f32(c, PV, b, H, T, D);
        if (!K || !V) return qw_op_err(c->node, err, QW_E_NOMEM, "out of memory");
        qw_attn j = attn_params((int)S, (int)T, H, H, D, qf + b * S * H * D, K, V, (int)T, scale,
                                causal ? (int)(T - S) : -1, o + b * S * H * D);
        if (ab) {
            if (ab->ndim != 4 || ab->dims[2] != S || ab->dims[3] != T)
                return qw_op_err(c->node, err, QW_E_ARG, "attention_bias shape");
            int64_t bb = ab->dims[0] == 1 ? 0 : b;
            j.mask = bf + bb * ab->dims[1] * S * T;
            j.m_hs = ab->dims[1] == 1 ? 0 : S * T;
            j.m_ss = T;
            j.m_ts = 1;
        }
        if (kpm) {
            if (kpm->ndim != 2 || kpm->dims[1] != T)
                return qw_op_err(c->node, err, QW_E_UNSUPPORTED, "key_padding_mask shape");
            for (int64_t t = 0; t < T; t++) km[t] = qw_elem_get_i(kpm->data, kpm->dtype, b * T + t) ? 0.0f : mfv;
            j.kmask = km;
        }
        qw_attn_run(c->pool, &j, work);
    }
    if (out[0]->dtype != QW_DT_F32) qw_store_f32(out[0], o, q->numel);
    return QW_OK;
}

static qw_status run_gqa(qw_op_ctx *c, qw_tensor *const *in, int n_in, qw_tensor **out, int n_out, qw_error *err) {
    const qw_onnx_node *on = c->node->on;
    const qw_tensor *q = in[0], *k = n_in > 1 ? in[1] : NULL, *v = n_in > 2 ? in[2] : NULL;
    const qw_tensor *pk = n_in > 3 ? in[3] : NULL, *pv = n_in > 4 ? in[4] : NULL;
    const qw_tensor *seqlens = n_in > 5 ? in[5] : NULL, *totlen = n_in > 6 ? in[6] : NULL;
    const qw_tensor *cc = n_in > 7 ? in[7] : NULL, *scache = n_in > 8 ? in[8] : NULL;
    const qw_tensor *posid = n_in > 9 ? in[9] : NULL, *ab = n_in > 10 ? in[10] : NULL;
    int H = (int)qw_attr_i(on, "num_heads", 0), Hkv = (int)qw_attr_i(on, "kv_num_heads", 0);
    int do_rot = (int)qw_attr_i(on, "do_rotary", 0), inter = (int)qw_attr_i(on, "rotary_interleaved", 0);
    int window = (int)qw_attr_i(on, "local_window_size", -1);
    float softcap = qw_attr_f(on, "softcap", 0.0f);
    if (!seqlens || !totlen || q->ndim != 3)
        return qw_op_err(c->node, err, QW_E_ARG, "seqlens_k / total_sequence_length / 3-D query required");
    int64_t B = q->dims[0], S = q->dims[1];
    int packed = !k;
    int D = packed ? (int)(q->dims[2] / (H + 2 * Hkv)) : (int)(q->dims[2] / H);
    int64_t total = qw_elem_get_i(totlen->data, totlen->dtype, 0);
    int64_t P = pk ? pk->dims[2] : 0;
    int64_t Tcap = P > total ? P : total;
    float scale = qw_attr_f(on, "scale", 0.0f);
    if (scale == 0.0f) scale = 1.0f / sqrtf((float)D);
    if (H % Hkv) return qw_op_err(c->node, err, QW_E_ARG, "num_heads %% kv_num_heads != 0");
    int64_t od[3] = {B, S, (int64_t)H * D};
    qw_status st = qw_op_out(c, out[0], q->dtype, 3, od, err);
    if (st != QW_OK) return st;
    int64_t pd[4] = {B, Hkv, Tcap, D};
    if (n_out < 3 || !on->outputs[1][0] || !on->outputs[2][0])
        return qw_op_err(c->node, err, QW_E_UNSUPPORTED, "present outputs required");
    if ((st = qw_op_out(c, out[1], q->dtype, 4, pd, err)) != QW_OK) return st;
    if ((st = qw_op_out(c, out[2], q->dtype, 4, pd, err)) != QW_OK) return st;
    memset(out[1]->data, 0, (size_t)out[1]->numel * qw_dtype_size(q->dtype));
    memset(out[2]->data, 0, (size_t)out[2]->numel * qw_dtype_size(q->dtype));
    const float *qf0 = qw_tensor_f32(c, q);
    const float *kf0 = packed ? NULL : qw_tensor_f32(c, k), *vf0 = packed ? NULL : qw_tensor_f32(c, v);
    /* q, k, v as separate fp32 (S, heads, D) per batch; rotary applied in place */
    float *qb = qw_op_scratch(c, (size_t)(S * H * D) * 4 + 4);
    float *kb = qw_op_scratch(c, (size_t)(S * Hkv * D) * 4 + 4);
    float *vb = qw_op_scratch(c, (size_t)(S * Hkv * D) * 4 + 4);
    float *o = out[0]->dtype == QW_DT_F32 ? (float *)out[0]->data : qw_op_scratch(c, (size_t)(B * S * H * D) * 4 + 4);
    int nth = qw_pool_threads(c->pool);
    qw_attn shape = attn_params((int)S, (int)(Tcap > S ? Tcap : S), H, Hkv, D, NULL, NULL, NULL, (int)Tcap, scale, 0,
                                NULL);
    void *work = qw_op_scratch(c, qw_attn_work_size(&shape, nth)); /* the most keys any batch has */
    const float *cf = do_rot && cc ? qw_tensor_f32(c, cc) : NULL,
                *sf = do_rot && scache ? qw_tensor_f32(c, scache) : NULL;
    const float *bf = ab ? qw_tensor_f32(c, ab) : NULL;
    if (!qf0 || (!packed && (!kf0 || !vf0)) || !qb || !kb || !vb || !o || !work || (do_rot && (!cf || !sf)) ||
        (ab && !bf))
        return qw_op_err(c->node, err, QW_E_NOMEM, "out of memory (or rotary caches missing)");
    for (int64_t b = 0; b < B; b++) {
        int64_t tot_b = qw_elem_get_i(seqlens->data, seqlens->dtype, b) + 1;
        int64_t past = tot_b - S;
        if (past < 0) past = 0;
        if (past + S > Tcap)
            return qw_op_err(c->node, err, QW_E_RANGE, "seqlens_k %lld beyond present length %lld", (long long)tot_b,
                             (long long)Tcap);
        for (int64_t s = 0; s < S; s++) {
            if (packed) {
                const float *row = qf0 + (b * S + s) * (int64_t)(H + 2 * Hkv) * D;
                memcpy(qb + s * H * D, row, (size_t)H * D * 4);
                memcpy(kb + s * Hkv * D, row + H * D, (size_t)Hkv * D * 4);
                memcpy(vb + s * Hkv * D, row + (H + Hkv) * D, (size_t)Hkv * D * 4);
            } else {
                memcpy(qb + s * H * D, qf0 + (b * S + s) * H * D, (size_t)H * D * 4);
                memcpy(kb + s * Hkv * D, kf0 + (b * S + s) * Hkv * D, (size_t)Hkv * D * 4);
                memcpy(vb + s * Hkv * D, vf0 + (b * S + s) * Hkv * D, (size_t)Hkv * D * 4);
            }
            if (do_rot) {
                int rot = (int)cc->dims[1] * 2;
                int64_t p = posid ? qw_elem_get_i(posid->data, posid->dtype, b * S + s) : past + s;
                if (p < 0 || p >= cc->dims[0])
                    return qw_op_err(c->node, err, QW_E_RANGE, "position %lld beyond the rotary cache", (long long)p);
                for (int h = 0; h < H; h++)
                    rope_row(qb + (s * H + h) * D, rot, cf + p * (rot / 2), sf + p * (rot / 2), inter);
                for (int h = 0; h < Hkv; h++)
                    rope_row(kb + (s * Hkv + h) * D, rot, cf + p * (rot / 2), sf + p * (rot / 2), inter);
            }
        }
        copy_past(out[1], pk, b, Hkv, Tcap, D, past < P ? past : P);
        copy_past(out[2], pv, b, Hkv, Tcap, D, past < P ? past : P);
        store_kv(out[1], b, Hkv, Tcap, D, past, kb, S);
        store_kv(out[2], b, Hkv, Tcap, D, past, vb, S);
        const float *K = kv_f32(c, out[1], b, Hkv, Tcap, D), *V = kv_f32(c, out[2], b, Hkv, Tcap, D);
        if (!K || !V) return qw_op_err(c->node, err, QW_E_NOMEM, "out of memory");
        qw_attn j = attn_params((int)S, (int)(past + S), H, Hkv, D, qb, K, V, (int)Tcap, scale, (int)past,
                                o + b * S * H * D);
        j.window = window;
        j.softcap = softcap;
        if (ab) {
            if (ab->ndim != 4) return qw_op_err(c->node, err, QW_E_ARG, "attention_bias rank");
            if (ab->dims[3] != past + S) return qw_op_err(c->node, err, QW_E_UNSUPPORTED, "attention_bias length");
            j.mask = bf + (ab->dims[0] == 1 ? 0 : b) * ab->dims[1] * S * (past + S);
            j.m_hs = ab->dims[1] == 1 ? 0 : S * (past + S);
            j.m_ss = past + S;
            j.m_ts = 1;
        }
        qw_attn_run(c->pool, &j, work);
    }
    if (out[0]->dtype != QW_DT_F32) qw_store_f32(out[0], o, out[0]->numel);
    return QW_OK;
}

const qw_op_def qw_ops_attention[] = {
    {QW_OP_RotaryEmbedding, "RotaryEmbedding", "com.microsoft", check_rope, run_rope, NULL},
    {QW_OP_MultiHeadAttention, "MultiHeadAttention", "com.microsoft", check_attn, run_mha, NULL},
    {QW_OP_GroupQueryAttention, "GroupQueryAttention", "com.microsoft", check_attn, run_gqa, NULL},
    {QW_OP_NONE, NULL, NULL, NULL, NULL, NULL},
};
