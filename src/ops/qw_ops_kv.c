/* qw_ops_kv.c - the in-place KV cache ops that qw_graph_kv_fuse puts in place of the past->present Concat and
 * of the decomposed attention of optimum's Qwen2 exports (see qw_ops.h). Internal ops: never in a model file.
 *
 * Numerics follow the decomposed path as qw_graph runs it (which follows onnxruntime's CPU provider): scores in
 * fp32 from fp32 q and the cached keys, then / c (or * c), + mask, softmax over the row, p.V in fp32; each of
 * these intermediates is rounded to fp16 only where the decomposed path stores it in fp16 (state flags, taken
 * from the precision plan at fusion). With the plain causal mask the masked keys are skipped: the decomposed
 * path adds the dtype's lowest value there, whose exp is exactly 0, so the sums are the same. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "qw_ops.h"
#include "qw_dtype.h"
#include "qw_kernels.h"

/* ---- append -------------------------------------------------------------------------------------------- */

static qw_status check_append(qw_op_node *n, qw_error *err) {
    (void)err;
    n->out_dtype[0] = n->in_dtype[0];
    return QW_OK;
}

/* new (1, Hkv, S, D) -> cache rows len .. len+S-1 of every head; out = the (1, Hkv, len+S, D) view */
static qw_status run_append(qw_op_ctx *c, qw_tensor *const *in, int n_in, qw_tensor **out, int n_out, qw_error *err) {
    (void)n_in;
    (void)n_out;
    const qw_kv_append_state *st = c->node->state;
    qw_kv_cache *kc = st->kc;
    const qw_tensor *x = in[0];
    if (x->ndim != 4 || x->dims[0] != 1 || x->dims[1] != kc->heads || x->dims[3] != kc->head_dim)
        return qw_op_err(c->node, err, QW_E_UNSUPPORTED,
                         "new keys/values of shape (%lld,%lld,%lld,%lld), cache (1,%lld,*,%lld)", (long long)x->dims[0],
                         (long long)(x->ndim > 1 ? x->dims[1] : 0), (long long)(x->ndim > 2 ? x->dims[2] : 0),
                         (long long)(x->ndim > 3 ? x->dims[3] : 0), (long long)kc->heads, (long long)kc->head_dim);
    int64_t S = x->dims[2], D = kc->head_dim, len = kc->len;
    if (len + S > kc->cap)
        return qw_op_err(c->node, err, QW_E_RANGE, "cache holds %lld positions, %lld needed", (long long)kc->cap,
                         (long long)(len + S));
    void *base = st->which ? kc->v : kc->k;
    float *scales = st->which ? kc->vs : kc->ks;
    const float *xf = qw_tensor_f32(c, x);
    if (!xf) return qw_op_err(c->node, err, QW_E_NOMEM, "out of memory");
    for (int64_t h = 0; h < kc->heads; h++) {
        size_t at = (size_t)(h * kc->cap + len) * (size_t)D; /* (S, D) rows of head h */
        const float *src = xf + h * S * D;
        if (kc->dtype == QW_KV_F16) {
            qw_f32_to_f16_array(src, (uint16_t *)base + at, (size_t)(S * D)); /* exact when the present is fp16 */
        } else if (kc->dtype == QW_KV_I8) {
            float row[1024];
            if (D > 1024)
                return qw_op_err(c->node, err, QW_E_UNSUPPORTED, "int8 KV cache: head_dim %lld", (long long)D);
            for (int64_t s = 0; s < S; s++) {
                for (int64_t e = 0; e < D; e++) row[e] = kc->round_f16 ? qw_round_f16(src[s * D + e]) : src[s * D + e];
                qw_kv_quant_i8(row, (int)D, (int8_t *)base + at + (size_t)(s * D), scales + h * kc->cap + len + s);
            }
        } else {
            float *dst = (float *)base + at;
            if (kc->round_f16)
                for (int64_t i = 0; i < S * D; i++) dst[i] = qw_round_f16(src[i]);
            else
                memcpy(dst, src, (size_t)(S * D) * 4);
        }
    }
    kc->appended_bytes += (uint64_t)(kc->heads * S * D) * (kc->round_f16 ? 2u : 4u);
    qw_tensor *o = out[0];
    o->dtype = QW_DT_F32;
    o->ndim = 4;
    o->dims[0] = 1;
    o->dims[1] = kc->heads;
    o->dims[2] = len + S;
    o->dims[3] = D;
    o->numel = kc->heads * (len + S) * D;
    o->data = base; /* a view for Shape only: qw.KVAttention reads kc */
    o->cap = 0;     /* borrowed: the decoder's buffer */
    return QW_OK;
}

static void free_state(void *p) { free(p); }

const qw_op_def qw_op_kv_append = {QW_OP_KVAppend, "KVAppend", "qw", check_append, run_append, free_state};

/* ---- attention ------------------------------------------------------------------------------------------ */

static qw_status check_attention(qw_op_node *n, qw_error *err) {
    (void)err;
    n->out_dtype[0] = n->in_dtype[0];
    return QW_OK;
}

/* 1 when mask (h, s, t) is 0 for t <= past + s and at most fp16's lowest value after it */
static int plain_causal(const float *mask, int64_t ms_h, int64_t ms_s, int64_t ms_t, int H, int S, int T, int past) {
    int nh = ms_h ? H : 1;
    for (int h = 0; h < nh; h++)
        for (int s = 0; s < S; s++) {
            const float *m = mask + h * ms_h + s * ms_s;
            for (int t = 0; t < T; t++) {
                float v = m[t * ms_t];
                if (t <= past + s ? v != 0.0f : !(v <= -65504.0f)) return 0;
            }
        }
    return 1;
}

static qw_status run_attention(qw_op_ctx *c, qw_tensor *const *in, int n_in, qw_tensor **out, int n_out,
                               qw_error *err) {
    (void)n_out;
    const qw_kv_attn_state *st = c->node->state;
    const qw_kv_cache *kc = st->kc;
    const qw_tensor *q = in[0], *kt = in[1], *mk = n_in > 3 ? in[3] : NULL;
    if (q->ndim != 4 || q->dims[0] != 1 || kt->ndim != 4 || q->dims[3] != kc->head_dim || q->dims[1] % kc->heads)
        return qw_op_err(c->node, err, QW_E_UNSUPPORTED,
                         "query of rank %d / batch %lld / head_dim %lld vs cache (%lld heads, head_dim %lld)", q->ndim,
                         (long long)q->dims[0], (long long)(q->ndim == 4 ? q->dims[3] : 0), (long long)kc->heads,
                         (long long)kc->head_dim);
    int H = (int)q->dims[1], S = (int)q->dims[2], D = (int)q->dims[3], T = (int)kt->dims[2];
    if (T < S || T > kc->cap) return qw_op_err(c->node, err, QW_E_ARG, "%d keys for %d queries", T, S);
    qw_status s = qw_op_out(c, out[0], q->dtype, 4, q->dims, err);
    if (s != QW_OK) return s;
    qw_attn a = {.n_q = S,
                 .n_keys = T,
                 .past = -1,
                 .n_heads = H,
                 .n_kv_heads = (int)kc->heads,
                 .head_dim = D,
                 .q = qw_tensor_f32(c, q),
                 .q_hs = (int64_t)S * D,
                 .q_ss = D,
                 .o_hs = (int64_t)S * D,
                 .o_ss = D,
                 .k = kc->k,
                 .v = kc->v,
                 .k_scale = kc->ks,
                 .v_scale = kc->vs,
                 .kv_dtype = kc->dtype,
                 .cap = kc->cap,
                 .scale = st->c,
                 .div = st->div,
                 .round_qk = st->round_qk,
                 .round_scaled = st->round_scaled,
                 .round_probs = st->round_probs};
    a.out = out[0]->dtype == QW_DT_F32 ? (float *)out[0]->data : qw_op_scratch(c, (size_t)q->numel * 4 + 4);
    if (!a.q || !a.out) return qw_op_err(c->node, err, QW_E_NOMEM, "out of memory");
    int plain = 0;
    if (mk) {
        int64_t od[4] = {1, H, S, T}, str[4];
        int nd;
        int64_t bd[QW_MAX_DIMS];
        if (mk->ndim > 4 || !qw_broadcast_shape(mk->ndim, mk->dims, 4, od, &nd, bd) || nd != 4 || bd[0] != 1 ||
            bd[1] != H || bd[2] != S || bd[3] != T)
            return qw_op_err(c->node, err, QW_E_ARG, "mask of rank %d does not broadcast to (1,%d,%d,%d)", mk->ndim, H,
                             S, T);
        qw_broadcast_strides(mk->ndim, mk->dims, 4, od, str);
        const float *mf = qw_tensor_f32(c, mk);
        if (!mf) return qw_op_err(c->node, err, QW_E_NOMEM, "out of memory");
        plain = plain_causal(mf, str[1], str[2], str[3], H, S, T, T - S);
        a.round_masked = st->round_masked; /* adding the plain mask's 0 leaves the score, but it is rounded */
        if (plain)
            a.past = T - S; /* the masked keys skipped */
        else {              /* every key, mask added */
            a.mask = mf;
            a.m_hs = str[1];
            a.m_ss = str[2];
            a.m_ts = str[3];
        }
    }
    /* the run-time counters live in the decoder's cache struct */
    if (plain)
        ((qw_kv_cache *)kc)->fast_calls++;
    else
        ((qw_kv_cache *)kc)->masked_calls++;
    void *work = qw_op_scratch(c, qw_attn_work_size(&a, qw_pool_threads(c->pool)));
    if (!work) return qw_op_err(c->node, err, QW_E_NOMEM, "out of memory");
    qw_attn_run(c->pool, &a, work);
    if (out[0]->dtype != QW_DT_F32) qw_store_f32(out[0], a.out, q->numel);
    return QW_OK;
}

const qw_op_def qw_op_kv_attention = {QW_OP_KVAttention, "KVAttention", "qw",
                                      check_attention,   run_attention, free_state};
