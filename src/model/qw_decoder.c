/* qw_decoder.c - the decoding session (see qw_decoder.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "qw_decoder.h"
#include "qw_dtype.h"
#include "qw_kernels.h"

#define QW_DEC_MAX_LAYERS 256

typedef struct qw_decoder_layer {
    int in_k, in_v;   /* graph input indices of past key/value */
    int out_k, out_v; /* graph output indices of present key/value */
    int fused;        /* 1: the graph appends into kc in place (qw_graph_kv_fuse) */
    qw_kv_cache kc;   /* fused: (kv_heads, kc.cap, head_dim) of kc.dtype, grown by doubling */
    qw_tensor k, v;   /* not fused: (1, kv_heads, pos, head_dim) taken from the last run, data NULL when empty */
} qw_decoder_layer;

struct qw_decoder {
    qw_graph *g;
    int max_seq;
    int pos;
    int vocab;
    int in_ids, in_mask, in_pos, in_seqlens, in_total;
    int ids_dt, mask_dt, pos_dt, seqlens_dt, total_dt;
    int out_logits;
    int last_only; /* qw_graph_logits_last_only took: logits come as (1, 1, vocab) */
    int n_layers;
    qw_decoder_layer *layers;
    int kv_dt;
    int64_t kv_heads, head_dim;
    int kv_dtype_set; /* QW_KV_* of every fused layer's cache */
    int buf_cap;      /* positions the three buffers below hold, grown as needed up to max_seq */
    void *ids_buf;    /* (buf_cap) int64 */
    void *mask_buf;   /* (buf_cap) int64, all ones */
    void *pos_buf;    /* (buf_cap) int64 */
    int64_t seqlens_buf, total_buf;
};

static int find_in(qw_graph *g, const char *name, int *dt) {
    int i = qw_graph_find_input(g, name);
    if (i >= 0 && dt) *dt = qw_graph_input_info(g, i)->dtype;
    return i;
}

/* the ids / mask / position buffers hold n positions (n <= max_seq) */
static qw_status bufs_reserve(qw_decoder *d, int n) {
    if (n <= d->buf_cap) return QW_OK;
    int cap = d->buf_cap ? d->buf_cap : 256;
    while (cap < n) cap = cap > d->max_seq / 2 ? d->max_seq : cap * 2;
    void *b[3];
    for (int i = 0; i < 3; i++) {
        b[i] = realloc(i == 0 ? d->ids_buf : i == 1 ? d->mask_buf : d->pos_buf, (size_t)cap * 8);
        if (b[i])
            *(i == 0 ? &d->ids_buf : i == 1 ? &d->mask_buf : &d->pos_buf) = b[i];
        else
            return QW_E_NOMEM;
    }
    for (int i = d->buf_cap; i < cap; i++) ((int64_t *)d->mask_buf)[i] = 1;
    d->buf_cap = cap;
    return QW_OK;
}

qw_status qw_decoder_new(qw_graph *g, int max_seq, qw_decoder **out, qw_error *err) {
    *out = NULL;
    if (max_seq <= 0) return qw_error_set(err, QW_E_ARG, "decoder: max_seq %d", max_seq);
    qw_decoder *d = calloc(1, sizeof *d);
    if (!d) return qw_error_set(err, QW_E_NOMEM, "decoder: out of memory");
    d->g = g;
    d->max_seq = max_seq;
    d->in_ids = find_in(g, "input_ids", &d->ids_dt);
    d->in_mask = find_in(g, "attention_mask", &d->mask_dt);
    d->in_pos = find_in(g, "position_ids", &d->pos_dt);
    d->in_seqlens = find_in(g, "seqlens_k", &d->seqlens_dt);
    d->in_total = find_in(g, "total_sequence_length", &d->total_dt);
    d->out_logits = qw_graph_find_output(g, "logits");
    qw_status st = QW_OK;
    if (d->in_ids < 0 || d->out_logits < 0) {
        st = qw_error_set(err, QW_E_UNSUPPORTED, "decoder: the graph has no input_ids input or logits output");
        goto fail;
    }
    int dts[5] = {d->ids_dt, d->in_mask >= 0 ? d->mask_dt : QW_DT_I64, d->in_pos >= 0 ? d->pos_dt : QW_DT_I64,
                  d->in_seqlens >= 0 ? d->seqlens_dt : QW_DT_I32, d->in_total >= 0 ? d->total_dt : QW_DT_I32};
    for (int i = 0; i < 5; i++)
        if (dts[i] != QW_DT_I64 && dts[i] != QW_DT_I32) {
            st = qw_error_set(err, QW_E_UNSUPPORTED, "decoder: an id/mask/position input has dtype %s",
                              qw_dtype_name(dts[i]));
            goto fail;
        }
    d->layers = calloc(QW_DEC_MAX_LAYERS, sizeof *d->layers);
    if (!d->layers || bufs_reserve(d, 256 < max_seq ? 256 : max_seq) != QW_OK) {
        st = qw_error_set(err, QW_E_NOMEM, "decoder: out of memory");
        goto fail;
    }
    for (int l = 0; l < QW_DEC_MAX_LAYERS; l++) {
        char kn[64], vn[64], pkn[64], pvn[64];
        snprintf(kn, sizeof kn, "past_key_values.%d.key", l);
        snprintf(vn, sizeof vn, "past_key_values.%d.value", l);
        snprintf(pkn, sizeof pkn, "present.%d.key", l);
        snprintf(pvn, sizeof pvn, "present.%d.value", l);
        int ik = qw_graph_find_input(g, kn), iv = qw_graph_find_input(g, vn);
        if (ik < 0 || iv < 0) break;
        int ok = qw_graph_find_output(g, pkn), ov = qw_graph_find_output(g, pvn);
        if (ok < 0 || ov < 0) {
            st = qw_error_set(err, QW_E_UNSUPPORTED, "decoder: %s has no %s/%s output", kn, pkn, pvn);
            goto fail;
        }
        qw_decoder_layer *L = &d->layers[d->n_layers++];
        L->in_k = ik;
        L->in_v = iv;
        L->out_k = ok;
        L->out_v = ov;
        const qw_onnx_value_info *vi = qw_graph_input_info(g, ik);
        if (d->n_layers == 1) {
            d->kv_dt = vi->dtype;
            if (!vi->has_shape || vi->ndim != 4 || vi->dims[1].value <= 0 || vi->dims[3].value <= 0) {
                st = qw_error_set(
                    err, QW_E_UNSUPPORTED,
                    "decoder: %s needs a (batch, kv_heads, past, head_dim) shape with known heads and head_dim", kn);
                goto fail;
            }
            d->kv_heads = vi->dims[1].value;
            d->head_dim = vi->dims[3].value;
        }
    }
    /* the decoder owns the cache: every layer whose Concat/attention pattern is recognised appends in place */
    int n_fused = 0;
    for (int l = 0; l < d->n_layers; l++) {
        qw_decoder_layer *L = &d->layers[l];
        const qw_onnx_value_info *vi = qw_graph_input_info(g, L->in_k);
        if (!vi->has_shape || vi->ndim != 4 || vi->dims[1].value != d->kv_heads || vi->dims[3].value != d->head_dim)
            continue;
        L->kc.heads = d->kv_heads;
        L->kc.head_dim = d->head_dim;
        if (qw_graph_kv_fuse(g, L->in_k, L->in_v, &L->kc)) {
            L->fused = 1;
            n_fused++;
        }
        /* fp16 rows hold an fp16 present exactly (half the bytes of fp32); an fp32 present stays fp32 */
        L->kc.dtype = L->kc.round_f16 ? QW_KV_F16 : QW_KV_F32;
    }
    d->kv_dtype_set = n_fused && d->layers[0].kc.round_f16 ? QW_KV_F16 : QW_KV_F32;
    if (n_fused) qw_graph_kv_commit(g);
    /* only the last position's logits are read: the lm_head runs on that row alone (prefill) */
    d->last_only = qw_graph_logits_last_only(g, d->out_logits);
    const qw_onnx_value_info *lo = qw_graph_output_info(g, d->out_logits);
    d->vocab = lo->has_shape && lo->ndim >= 1 && lo->dims[lo->ndim - 1].value > 0 ? (int)lo->dims[lo->ndim - 1].value
                                                                                  : 0;
    if (d->vocab == 0) { /* unknown from the graph: one warm-up step tells */
        int32_t id = 0;
        float *tmp = NULL;
        if ((st = qw_decoder_forward(d, &id, 1, tmp, NULL, NULL, err)) != QW_OK) goto fail;
        qw_decoder_reset(d);
    }
    *out = d;
    return QW_OK;
fail:
    qw_decoder_free(d);
    return st;
}

void qw_decoder_reset(qw_decoder *d) {
    if (!d) return;
    for (int l = 0; l < d->n_layers; l++) {
        d->layers[l].kc.len = 0; /* the buffers stay for the next sequence */
        if (d->layers[l].k.data) qw_graph_buffer_give(d->g, &d->layers[l].k);
        if (d->layers[l].v.data) qw_graph_buffer_give(d->g, &d->layers[l].v);
    }
    d->pos = 0;
}

static void kv_free(qw_kv_cache *kc) {
    free(kc->k);
    free(kc->v);
    free(kc->ks);
    free(kc->vs);
    kc->k = kc->v = NULL;
    kc->ks = kc->vs = NULL;
    kc->cap = kc->len = 0;
}

static size_t kv_elem_size(int dtype) { return dtype == QW_KV_F32 ? 4 : dtype == QW_KV_F16 ? 2 : 1; }

void qw_decoder_free(qw_decoder *d) {
    if (!d) return;
    if (d->layers) {
        qw_decoder_reset(d);
        for (int l = 0; l < d->n_layers; l++) kv_free(&d->layers[l].kc);
    }
    free(d->layers);
    free(d->ids_buf);
    free(d->mask_buf);
    free(d->pos_buf);
    free(d);
}

int qw_decoder_vocab(const qw_decoder *d) { return d->vocab; }
int qw_decoder_pos(const qw_decoder *d) { return d->pos; }
int qw_decoder_max_seq(const qw_decoder *d) { return d->max_seq; }

static void fill_ints(void *buf, int dt, int n, int64_t start, int step, const int32_t *src) {
    for (int i = 0; i < n; i++) {
        int64_t v = src ? src[i] : start + (int64_t)i * step;
        if (dt == QW_DT_I64)
            ((int64_t *)buf)[i] = v;
        else
            ((int32_t *)buf)[i] = (int32_t)v;
    }
}

static void compact(qw_tensor *t, int64_t heads, int64_t hd, int64_t keep) {
    if (!t->data) return;
    size_t es = qw_dtype_size(t->dtype);
    int64_t P = t->dims[2];
    for (int64_t h = 0; h < heads; h++)
        memmove((uint8_t *)t->data + (size_t)(h * keep * hd) * es, (uint8_t *)t->data + (size_t)(h * P * hd) * es,
                (size_t)(keep * hd) * es);
    t->dims[2] = keep;
    t->numel = heads * keep * hd;
}

qw_status qw_decoder_truncate(qw_decoder *d, int keep) {
    if (keep < 0 || keep > d->pos) return QW_E_ARG;
    if (keep == d->pos) return QW_OK;
    if (keep == 0) {
        qw_decoder_reset(d);
        return QW_OK;
    }
    for (int l = 0; l < d->n_layers; l++) {
        qw_decoder_layer *L = &d->layers[l];
        if (L->fused) {
            L->kc.len = keep;
            continue;
        } /* (heads, cap, head_dim): nothing moves */
        if (!L->k.data || L->k.dims[2] != d->pos || L->v.dims[2] != d->pos) return QW_E_UNSUPPORTED;
        compact(&L->k, L->k.dims[1], L->k.dims[3], keep);
        compact(&L->v, L->v.dims[1], L->v.dims[3], keep);
    }
    d->pos = keep;
    return QW_OK;
}

/* room for need positions in every fused layer: capacity doubles (from 256) up to max_seq, so a long context
 * limit reserves nothing up front and growth costs O(1) amortised per token; sizes are checked against SIZE_MAX
 * (a 32-bit wasm heap must refuse, not wrap) */
static qw_status kv_reserve(qw_decoder *d, int64_t need, qw_error *err) {
    for (int l = 0; l < d->n_layers; l++) {
        qw_kv_cache *kc = &d->layers[l].kc;
        if (!d->layers[l].fused || kc->cap >= need) continue;
        int64_t cap = kc->cap ? kc->cap : 256;
        while (cap < need) cap *= 2;
        if (cap > d->max_seq) cap = d->max_seq < need ? need : d->max_seq;
        size_t es = kv_elem_size(kc->dtype);
        uint64_t row = (uint64_t)kc->head_dim * es, bytes = (uint64_t)(kc->heads * cap) * row;
        if (bytes > (uint64_t)SIZE_MAX / 2 || (uint64_t)(kc->heads * cap) > (uint64_t)SIZE_MAX / 8)
            return qw_error_set(err, QW_E_NOMEM, "decoder: a KV cache of %lld positions needs %llu bytes per layer",
                                (long long)cap, (unsigned long long)(2 * bytes));
        void *nk = malloc((size_t)bytes), *nv = malloc((size_t)bytes);
        float *nks = NULL, *nvs = NULL;
        if (kc->dtype == QW_KV_I8) {
            nks = malloc((size_t)(kc->heads * cap) * sizeof(float));
            nvs = malloc((size_t)(kc->heads * cap) * sizeof(float));
        }
        if (!nk || !nv || (kc->dtype == QW_KV_I8 && (!nks || !nvs))) {
            free(nk);
            free(nv);
            free(nks);
            free(nvs);
            return qw_error_set(err, QW_E_NOMEM,
                                "decoder: out of memory for a KV cache of %lld positions (%llu bytes per layer)",
                                (long long)cap, (unsigned long long)(2 * bytes));
        }
        for (int64_t h = 0; h < kc->heads && kc->len > 0; h++) {
            memcpy((uint8_t *)nk + (size_t)(h * cap) * row, (uint8_t *)kc->k + (size_t)(h * kc->cap) * row,
                   (size_t)kc->len * row);
            memcpy((uint8_t *)nv + (size_t)(h * cap) * row, (uint8_t *)kc->v + (size_t)(h * kc->cap) * row,
                   (size_t)kc->len * row);
            if (nks) {
                memcpy(nks + h * cap, kc->ks + h * kc->cap, (size_t)kc->len * sizeof(float));
                memcpy(nvs + h * cap, kc->vs + h * kc->cap, (size_t)kc->len * sizeof(float));
            }
        }
        int64_t len = kc->len;
        kv_free(kc);
        kc->k = nk;
        kc->v = nv;
        kc->ks = nks;
        kc->vs = nvs;
        kc->cap = cap;
        kc->len = len;
    }
    return QW_OK;
}

qw_status qw_decoder_set_kv_dtype(qw_decoder *d, int dtype) {
    if (dtype != QW_KV_F32 && dtype != QW_KV_F16 && dtype != QW_KV_I8) return QW_E_ARG;
    qw_decoder_reset(d);
    for (int l = 0; l < d->n_layers; l++) {
        if (!d->layers[l].fused || d->layers[l].kc.dtype == dtype) continue;
        kv_free(&d->layers[l].kc);
        d->layers[l].kc.dtype = dtype;
    }
    d->kv_dtype_set = dtype;
    return QW_OK;
}

int qw_decoder_kv_dtype(const qw_decoder *d) { return d->kv_dtype_set; }

/* bytes of one position in every fused layer (keys, values and int8 scales) */
static uint64_t kv_token_bytes(const qw_decoder *d) {
    uint64_t b = 0;
    for (int l = 0; l < d->n_layers; l++) {
        const qw_kv_cache *kc = &d->layers[l].kc;
        if (!d->layers[l].fused) continue;
        b += 2 * (uint64_t)kc->heads *
             ((uint64_t)kc->head_dim * kv_elem_size(kc->dtype) + (kc->dtype == QW_KV_I8 ? 4 : 0));
    }
    return b;
}

uint64_t qw_decoder_kv_state_bytes(const qw_decoder *d, int n) {
    for (int l = 0; l < d->n_layers; l++)
        if (!d->layers[l].fused) return 0;
    return kv_token_bytes(d) * (uint64_t)n;
}

/* per fused layer, keys then values: each head's n rows, then (int8) each head's n scales */
qw_status qw_decoder_kv_save(const qw_decoder *d, int n, void *dst) {
    if (n < 0 || n > d->pos || !qw_decoder_kv_state_bytes(d, 1))
        return n < 0 || n > d->pos ? QW_E_ARG : QW_E_UNSUPPORTED;
    uint8_t *p = dst;
    for (int l = 0; l < d->n_layers; l++) {
        const qw_kv_cache *kc = &d->layers[l].kc;
        size_t row = (size_t)kc->head_dim * kv_elem_size(kc->dtype);
        for (int w = 0; w < 2; w++) {
            const uint8_t *src = w ? kc->v : kc->k;
            for (int64_t h = 0; h < kc->heads; h++, p += (size_t)n * row)
                if (n) memcpy(p, src + (size_t)(h * kc->cap) * row, (size_t)n * row);
            if (kc->dtype != QW_KV_I8) continue;
            const float *sc = w ? kc->vs : kc->ks;
            for (int64_t h = 0; h < kc->heads; h++, p += (size_t)n * 4)
                if (n) memcpy(p, sc + h * kc->cap, (size_t)n * 4);
        }
    }
    return QW_OK;
}

qw_status qw_decoder_kv_load(qw_decoder *d, int n, const void *src, qw_error *err) {
    if (n < 0 || n > d->max_seq)
        return qw_error_set(err, QW_E_ARG, "decoder: %d cached positions, context %d", n, d->max_seq);
    if (!qw_decoder_kv_state_bytes(d, 1))
        return qw_error_set(err, QW_E_UNSUPPORTED, "decoder: the graph's KV cache is not the decoder's");
    qw_decoder_reset(d);
    qw_status st = kv_reserve(d, n, err);
    if (st == QW_OK && bufs_reserve(d, n) != QW_OK) st = qw_error_set(err, QW_E_NOMEM, "decoder: out of memory");
    if (st != QW_OK) return st;
    const uint8_t *p = src;
    for (int l = 0; l < d->n_layers; l++) {
        qw_kv_cache *kc = &d->layers[l].kc;
        size_t row = (size_t)kc->head_dim * kv_elem_size(kc->dtype);
        for (int w = 0; w < 2; w++) {
            uint8_t *dst = w ? kc->v : kc->k;
            for (int64_t h = 0; h < kc->heads; h++, p += (size_t)n * row)
                if (n) memcpy(dst + (size_t)(h * kc->cap) * row, p, (size_t)n * row);
            if (kc->dtype != QW_KV_I8) continue;
            float *sc = w ? kc->vs : kc->ks;
            for (int64_t h = 0; h < kc->heads; h++, p += (size_t)n * 4)
                if (n) memcpy(sc + h * kc->cap, p, (size_t)n * 4);
        }
        kc->len = n;
    }
    d->pos = n;
    return QW_OK;
}

void qw_decoder_kv_stats(const qw_decoder *d, qw_decoder_kv_info *out) {
    memset(out, 0, sizeof *out);
    out->layers = d->n_layers;
    for (int l = 0; l < d->n_layers; l++) {
        const qw_decoder_layer *L = &d->layers[l];
        if (!L->fused) continue;
        out->fused_layers++;
        out->appended_bytes += L->kc.appended_bytes;
        out->fast_calls += L->kc.fast_calls;
        out->masked_calls += L->kc.masked_calls;
        out->reserved_bytes += (uint64_t)(2 * L->kc.heads * L->kc.cap) *
                               ((uint64_t)L->kc.head_dim * kv_elem_size(L->kc.dtype) +
                                (L->kc.dtype == QW_KV_I8 ? 4 : 0));
    }
    out->bytes_per_token = kv_token_bytes(d);
    out->dtype = d->kv_dtype_set;
}

qw_status qw_decoder_read_kv(const qw_decoder *d, int layer, float *k, float *v) {
    if (layer < 0 || layer >= d->n_layers) return QW_E_ARG;
    const qw_decoder_layer *L = &d->layers[layer];
    int64_t H = d->kv_heads, D = d->head_dim, P = d->pos;
    if (L->fused) {
        const qw_kv_cache *kc = &L->kc;
        for (int64_t h = 0; h < H; h++)
            for (int64_t t = 0; t < P; t++)
                for (int64_t e = 0; e < D; e++) {
                    size_t i = (size_t)((h * kc->cap + t) * D + e), o = (size_t)((h * P + t) * D + e);
                    if (kc->dtype == QW_KV_F32) {
                        k[o] = ((const float *)kc->k)[i];
                        v[o] = ((const float *)kc->v)[i];
                    } else if (kc->dtype == QW_KV_F16) {
                        k[o] = qw_f16_to_f32(((const uint16_t *)kc->k)[i]);
                        v[o] = qw_f16_to_f32(((const uint16_t *)kc->v)[i]);
                    } else {
                        k[o] = (float)((const int8_t *)kc->k)[i] * kc->ks[h * kc->cap + t];
                        v[o] = (float)((const int8_t *)kc->v)[i] * kc->vs[h * kc->cap + t];
                    }
                }
        return QW_OK;
    }
    if (P == 0) return QW_OK;
    if (!L->k.data || L->k.numel != H * P * D || L->v.numel != H * P * D) return QW_E_UNSUPPORTED;
    for (int64_t i = 0; i < H * P * D; i++) {
        k[i] = L->k.dtype == QW_DT_F16 ? qw_f16_to_f32(((const uint16_t *)L->k.data)[i])
                                       : ((const float *)L->k.data)[i];
        v[i] = L->v.dtype == QW_DT_F16 ? qw_f16_to_f32(((const uint16_t *)L->v.data)[i])
                                       : ((const float *)L->v.data)[i];
    }
    return QW_OK;
}

qw_status qw_decoder_forward(qw_decoder *d, const int32_t *ids, int n, float *logits_last, const qw_graph_step *step,
                             volatile int *abort_flag, qw_error *err) {
    qw_graph *g = d->g;
    if (n <= 0) return qw_error_set(err, QW_E_ARG, "decoder: %d tokens", n);
    if (d->pos + n > d->max_seq)
        return qw_error_set(err, QW_E_CONTEXT, "decoder: %d tokens would exceed the context of %d", d->pos + n,
                            d->max_seq);
    int total = d->pos + n;
    qw_status st;
    if (bufs_reserve(d, total) != QW_OK)
        return qw_error_set(err, QW_E_NOMEM, "decoder: out of memory for %d positions", total);
    int64_t dims[4] = {1, n, 0, 0};
    fill_ints(d->ids_buf, d->ids_dt, n, 0, 0, ids);
    if ((st = qw_graph_set_input(g, d->in_ids, d->ids_dt, 2, dims, d->ids_buf, err)) != QW_OK) return st;
    if (d->in_pos >= 0) {
        fill_ints(d->pos_buf, d->pos_dt, n, d->pos, 1, NULL);
        if ((st = qw_graph_set_input(g, d->in_pos, d->pos_dt, 2, dims, d->pos_buf, err)) != QW_OK) return st;
    }
    if (d->in_mask >= 0) {
        if (d->mask_dt == QW_DT_I32) fill_ints(d->mask_buf, QW_DT_I32, total, 1, 0, NULL);
        int64_t md[2] = {1, total};
        if ((st = qw_graph_set_input(g, d->in_mask, d->mask_dt, 2, md, d->mask_buf, err)) != QW_OK) return st;
    }
    if (d->in_seqlens >= 0) {
        int64_t one = 1;
        fill_ints(&d->seqlens_buf, d->seqlens_dt, 1, total - 1, 0, NULL);
        if ((st = qw_graph_set_input(g, d->in_seqlens, d->seqlens_dt, 1, &one, &d->seqlens_buf, err)) != QW_OK)
            return st;
    }
    if (d->in_total >= 0) {
        fill_ints(&d->total_buf, d->total_dt, 1, total, 0, NULL);
        if ((st = qw_graph_set_input(g, d->in_total, d->total_dt, 0, NULL, &d->total_buf, err)) != QW_OK) return st;
    }
    if ((st = kv_reserve(d, total, err)) != QW_OK) return st;
    for (int l = 0; l < d->n_layers; l++) {
        qw_decoder_layer *L = &d->layers[l];
        if (L->fused) {
            L->kc.len = d->pos;
            continue;
        } /* the graph appends at kc.len; pasts are not read */
        int64_t kd[4] = {1, d->kv_heads, d->pos, d->head_dim};
        const int64_t *kdims = L->k.data ? L->k.dims : kd, *vdims = L->v.data ? L->v.dims : kd;
        if ((st = qw_graph_set_input(g, L->in_k, d->kv_dt, 4, kdims, L->k.data, err)) != QW_OK) return st;
        if ((st = qw_graph_set_input(g, L->in_v, d->kv_dt, 4, vdims, L->v.data, err)) != QW_OK) return st;
    }
    if ((st = qw_graph_run(g, step, abort_flag, err)) != QW_OK) return st;
    const qw_tensor *lg = qw_graph_output(g, d->out_logits);
    if (!lg || lg->ndim < 1) return qw_error_set(err, QW_E_INTERNAL, "decoder: no logits");
    int V = (int)lg->dims[lg->ndim - 1];
    if (d->vocab == 0) d->vocab = V;
    if (V != d->vocab)
        return qw_error_set(err, QW_E_INTERNAL, "decoder: logits have %d columns, vocab %d", V, d->vocab);
    int64_t rows = lg->numel / V;
    if (logits_last) {
        int64_t r = step && step->logits_rows > 1 ? step->logits_rows : 1;
        if (r > rows)
            return qw_error_set(err, QW_E_ARG, "decoder: logits of %lld rows asked, %lld computed", (long long)r,
                                (long long)rows);
        if (lg->dtype == QW_DT_F32)
            memcpy(logits_last, (const float *)lg->data + (rows - r) * V, (size_t)(r * V) * 4);
        else if (lg->dtype == QW_DT_F16)
            for (int64_t i = 0; i < r * V; i++)
                logits_last[i] = qw_f16_to_f32(((const uint16_t *)lg->data)[(rows - r) * V + i]);
        else
            return qw_error_set(err, QW_E_UNSUPPORTED, "decoder: logits dtype %s", qw_dtype_name(lg->dtype));
    }
    /* presents become the next pasts: ownership moves, no copy */
    for (int l = 0; l < d->n_layers; l++) {
        qw_decoder_layer *L = &d->layers[l];
        if (L->fused) {
            L->kc.len = total;
            continue;
        }
        qw_tensor nk, nv;
        if (qw_graph_take_output(g, L->out_k, &nk) != QW_OK || qw_graph_take_output(g, L->out_v, &nv) != QW_OK)
            return qw_error_set(err, QW_E_INTERNAL, "decoder: layer %d produced no present", l);
        if (nk.ndim != 4 || nk.dims[2] != total)
            return qw_error_set(err, QW_E_UNSUPPORTED, "decoder: present.%d.key has %lld positions, %d expected", l,
                                (long long)(nk.ndim == 4 ? nk.dims[2] : -1), total);
        if (L->k.data) qw_graph_buffer_give(g, &L->k);
        if (L->v.data) qw_graph_buffer_give(g, &L->v);
        L->k = nk;
        L->v = nv;
    }
    qw_graph_reset_outputs(g);
    d->pos = total;
    return QW_OK;
}
