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

/* ---- append -------------------------------------------------------------------------------------------- */

static qw_status check_append(qw_op_node *n, qw_error *err) {
    (void)err;
    n->out_dtype[0] = n->in_dtype[0];
    return QW_OK;
}

/* new (1, Hkv, S, D) -> cache rows len .. len+S-1 of every head; out = the (1, Hkv, len+S, D) view */
static qw_status run_append(qw_op_ctx *c, qw_tensor *const *in, int n_in, qw_tensor **out, int n_out,
                            qw_error *err) {
    (void)n_in; (void)n_out;
    const qw_kv_append_state *st = c->node->state;
    qw_kv_cache *kc = st->kc;
    const qw_tensor *x = in[0];
    if (x->ndim != 4 || x->dims[0] != 1 || x->dims[1] != kc->heads || x->dims[3] != kc->head_dim)
        return qw_op_err(c->node, err, QW_E_UNSUPPORTED, "new keys/values of shape (%lld,%lld,%lld,%lld), cache (1,%lld,*,%lld)",
                         (long long)x->dims[0], (long long)(x->ndim > 1 ? x->dims[1] : 0), (long long)(x->ndim > 2 ? x->dims[2] : 0),
                         (long long)(x->ndim > 3 ? x->dims[3] : 0), (long long)kc->heads, (long long)kc->head_dim);
    int64_t S = x->dims[2], D = kc->head_dim, len = kc->len;
    if (len + S > kc->cap) return qw_op_err(c->node, err, QW_E_RANGE, "cache holds %lld positions, %lld needed", (long long)kc->cap, (long long)(len + S));
    float *base = st->which ? kc->v : kc->k;
    const float *xf = qw_tensor_f32(c, x);
    if (!xf) return qw_op_err(c->node, err, QW_E_NOMEM, "out of memory");
    for (int64_t h = 0; h < kc->heads; h++) {
        float *dst = base + (h * kc->cap + len) * D;   /* (S, D) rows of head h */
        const float *src = xf + h * S * D;
        if (kc->round_f16) for (int64_t i = 0; i < S * D; i++) dst[i] = qw_round_f16(src[i]);
        else memcpy(dst, src, (size_t)(S * D) * 4);
    }
    kc->appended_bytes += (uint64_t)(kc->heads * S * D) * (kc->round_f16 ? 2u : 4u);
    qw_tensor *o = out[0];
    o->dtype = QW_DT_F32;
    o->ndim = 4;
    o->dims[0] = 1; o->dims[1] = kc->heads; o->dims[2] = len + S; o->dims[3] = D;
    o->numel = kc->heads * (len + S) * D;
    o->data = base;
    o->cap = 0;                                        /* borrowed: the decoder's buffer */
    return QW_OK;
}

static void free_state(void *p) { free(p); }

const qw_op_def qw_op_kv_append = {"KVAppend", "qw", check_append, run_append, free_state};

/* ---- attention ------------------------------------------------------------------------------------------ */

typedef struct kv_attn_job {
    const qw_kv_attn_state *st;
    int S, T, H, Hkv, D, past;
    int64_t cap;
    const float *q;                /* (H, S, D) */
    const float *k, *v;            /* (Hkv, cap, D) */
    const float *mask;             /* element (h, s, t) at h*ms_h + s*ms_s + t*ms_t, or NULL */
    int64_t ms_h, ms_s, ms_t;
    int plain;                     /* the mask is the plain causal one: keys > past + s skipped */
    float *out;                    /* (H, S, D) */
    float *work;                   /* nth * T */
} kv_attn_job;

static void kv_attn_task(void *arg, int ith, int nth) {
    const kv_attn_job *j = arg;
    const qw_kv_attn_state *st = j->st;
    float *sc = j->work + (size_t)ith * (size_t)j->T;
    int group = j->H / j->Hkv;
    for (int t = ith; t < j->S * j->H; t += nth) {
        int h = t / j->S, s = t % j->S, hk = h / group;
        const float *q = j->q + ((size_t)h * j->S + s) * j->D;
        const float *K = j->k + (size_t)hk * j->cap * j->D, *V = j->v + (size_t)hk * j->cap * j->D;
        int n = j->plain ? j->past + s + 1 : j->T;
        if (n > j->T) n = j->T;
        const float *m = j->mask ? j->mask + h * j->ms_h + s * j->ms_s : NULL;
        for (int i = 0; i < n; i++) {
            float d = qw_dot_f32(q, K + (size_t)i * j->D, j->D);
            if (st->round_qk) d = qw_round_f16(d);
            d = st->div ? d / st->c : d * st->c;
            if (st->round_scaled) d = qw_round_f16(d);
            if (m) {
                if (!j->plain) d += m[i * j->ms_t];
                if (st->round_masked) d = qw_round_f16(d);
            }
            sc[i] = d;
        }
        qw_softmax_f32(sc, n);
        if (st->round_probs) for (int i = 0; i < n; i++) sc[i] = qw_round_f16(sc[i]);
        float *o = j->out + ((size_t)h * j->S + s) * j->D;
        qw_weighted_rows_f32(sc, n, V, (size_t)j->D, j->D, o);
    }
}

static qw_status check_attention(qw_op_node *n, qw_error *err) {
    (void)err;
    n->out_dtype[0] = n->in_dtype[0];
    return QW_OK;
}

/* 1 when mask (h, s, t) is 0 for t <= past + s and at most fp16's lowest value after it */
static int plain_causal(const kv_attn_job *j, int H) {
    int nh = j->ms_h ? H : 1;
    for (int h = 0; h < nh; h++)
        for (int s = 0; s < j->S; s++) {
            const float *m = j->mask + h * j->ms_h + s * j->ms_s;
            for (int t = 0; t < j->T; t++) {
                float v = m[t * j->ms_t];
                if (t <= j->past + s ? v != 0.0f : !(v <= -65504.0f)) return 0;
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
        return qw_op_err(c->node, err, QW_E_UNSUPPORTED, "query of rank %d / batch %lld / head_dim %lld vs cache (%lld heads, head_dim %lld)",
                         q->ndim, (long long)q->dims[0], (long long)(q->ndim == 4 ? q->dims[3] : 0), (long long)kc->heads,
                         (long long)kc->head_dim);
    int H = (int)q->dims[1], S = (int)q->dims[2], D = (int)q->dims[3], T = (int)kt->dims[2];
    if (T < S || T > kc->cap) return qw_op_err(c->node, err, QW_E_ARG, "%d keys for %d queries", T, S);
    qw_status s = qw_op_out(c, out[0], q->dtype, 4, q->dims, err);
    if (s != QW_OK) return s;
    int nth = qw_pool_threads(c->pool);
    kv_attn_job j = {st, S, T, H, (int)kc->heads, D, T - S, kc->cap, qw_tensor_f32(c, q), kc->k, kc->v, NULL, 0, 0, 0, 0,
                     out[0]->dtype == QW_DT_F32 ? (float *)out[0]->data : qw_op_scratch(c, (size_t)q->numel * 4 + 4),
                     qw_op_scratch(c, (size_t)nth * (size_t)T * 4 + 4)};
    if (!j.q || !j.out || !j.work) return qw_op_err(c->node, err, QW_E_NOMEM, "out of memory");
    if (mk) {
        int64_t od[4] = {1, H, S, T}, str[4];
        int nd;
        int64_t bd[QW_MAX_DIMS];
        if (mk->ndim > 4 || !qw_broadcast_shape(mk->ndim, mk->dims, 4, od, &nd, bd) || nd != 4 || bd[0] != 1 ||
            bd[1] != H || bd[2] != S || bd[3] != T)
            return qw_op_err(c->node, err, QW_E_ARG, "mask of rank %d does not broadcast to (1,%d,%d,%d)", mk->ndim, H, S, T);
        qw_broadcast_strides(mk->ndim, mk->dims, 4, od, str);
        j.mask = qw_tensor_f32(c, mk);
        if (!j.mask) return qw_op_err(c->node, err, QW_E_NOMEM, "out of memory");
        j.ms_h = str[1]; j.ms_s = str[2]; j.ms_t = str[3];
        j.plain = plain_causal(&j, H);
    }
    /* the run-time counters live in the decoder's cache struct */
    if (j.plain) ((qw_kv_cache *)kc)->fast_calls++;
    else ((qw_kv_cache *)kc)->masked_calls++;
    qw_pool_run(c->pool, kv_attn_task, &j);
    if (out[0]->dtype != QW_DT_F32) qw_store_f32(out[0], j.out, q->numel);
    return QW_OK;
}

const qw_op_def qw_op_kv_attention = {"KVAttention", "qw", check_attention, run_attention, free_state};
