/* qw_prompt_cache.c - the KV state of a prompt prefix as a blob (qw_model_kv_export / qw_model_kv_import, see
 * qwasm.h): what the CLI's --prompt-cache file and the JS prompt cache hold.
 *
 * Layout QW_KV_STATE_LAYOUT, little-endian:
 *   0  "QWKV"          4 bytes
 *   4  layout          u32
 *   8  model key       u64  FNV-1a of the onnx file names and sizes, the cache's shapes and its row type
 *  16  row type        u32  QW_KV_F32 / F16 / I8
 *  20  n               u32  positions
 *  24  data bytes      u64  qw_decoder_kv_state_bytes(n)
 *  32  checksum        u64  of the ids and the rows
 *  40  ids             n x i32
 *      rows            qw_decoder_kv_save's order
 * The model key keeps a blob from being read into another model; the cache that stores the blob keys it by the
 * files' identities (size, ETag, sha256) as well, which the core cannot see. */
#include <stdlib.h>
#include <string.h>
#include "qw_model.h"
#include "qw_kernels.h"

#define KV_HDR 40

static uint64_t fnv(uint64_t h, const void *p, size_t n) {
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

/* the checksum of a large blob: FNV-1a over 8-byte words (a byte at a time costs 0.1 s per 60 MB in wasm) */
static uint64_t sum64(uint64_t h, const void *p, size_t n) {
    const uint8_t *b = p;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, b + i, 8);
        h = (h ^ w) * 0x100000001b3ull;
        h ^= h >> 29;
    }
    return fnv(h, b + i, n - i);
}

static uint64_t model_key(const qw_model *m) {
    uint64_t h = 0xcbf29ce484222325ull;
    h = fnv(h, m->cfg.onnx_file, strlen(m->cfg.onnx_file) + 1);
    for (int i = 0; i < m->onnx->n_files; i++) {
        h = fnv(h, m->onnx->files[i].name, strlen(m->onnx->files[i].name) + 1);
        uint64_t sz = m->onnx->files[i].size;
        h = fnv(h, &sz, 8);
    }
    qw_decoder_kv_info ki;
    qw_decoder_kv_stats(m->dec, &ki);
    int32_t shape[4] = {ki.layers, ki.fused_layers, ki.dtype, m->cfg.num_kv_heads};
    h = fnv(h, shape, sizeof shape);
    uint64_t bpt = ki.bytes_per_token;
    return fnv(h, &bpt, 8);
}

static void put32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void put64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static uint32_t get32(const uint8_t *p) {
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--) v = v << 8 | p[i];
    return v;
}
static uint64_t get64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

const int32_t *qw_model_kv_ids(const qw_model *m, size_t *n) {
    if (n) *n = m ? (size_t)m->n_cached : 0;
    return m ? m->cached : NULL;
}

qw_status qw_model_kv_truncate(qw_model *m, size_t n, qw_error *err) {
    if (!m || m->external) return qw_error_set(err, QW_E_ARG, "qw_model_kv_truncate: no model with a KV cache");
    if (m->busy) return qw_error_set(err, QW_E_ARG, "qw_model_kv_truncate: a generation is running");
    if (n > (size_t)m->n_cached)
        return qw_error_set(err, QW_E_ARG, "qw_model_kv_truncate: %zu positions, %d cached", n, m->n_cached);
    if (qw_decoder_truncate(m->dec, (int)n) != QW_OK) {
        qw_decoder_reset(m->dec);
        n = 0;
    }
    m->n_cached = (int)n;
    return QW_OK;
}

qw_status qw_model_kv_export(qw_model *m, size_t n, void **blob, size_t *len, qw_error *err) {
    *blob = NULL;
    *len = 0;
    if (!m || m->external) return qw_error_set(err, QW_E_ARG, "qw_model_kv_export: no model with a KV cache");
    if (n > (size_t)m->n_cached || n > (size_t)qw_decoder_pos(m->dec))
        return qw_error_set(err, QW_E_ARG, "qw_model_kv_export: %zu positions, %d cached", n, m->n_cached);
    uint64_t data = qw_decoder_kv_state_bytes(m->dec, (int)n);
    if (!data && n)
        return qw_error_set(err, QW_E_UNSUPPORTED, "%s: the KV cache is the graph's, not qwasm's: no prompt cache",
                            m->cfg.onnx_file);
    uint64_t total = KV_HDR + 4 * (uint64_t)n + data;
    if (total > SIZE_MAX)
        return qw_error_set(err, QW_E_NOMEM, "qw_model_kv_export: %llu bytes", (unsigned long long)total);
    uint8_t *b = malloc((size_t)total);
    if (!b)
        return qw_error_set(err, QW_E_NOMEM, "qw_model_kv_export: out of memory for %llu bytes",
                            (unsigned long long)total);
    memcpy(b, "QWKV", 4);
    put32(b + 4, QW_KV_STATE_LAYOUT);
    put64(b + 8, model_key(m));
    put32(b + 16, (uint32_t)qw_decoder_kv_dtype(m->dec));
    put32(b + 20, (uint32_t)n);
    put64(b + 24, data);
    for (size_t i = 0; i < n; i++) put32(b + KV_HDR + 4 * i, (uint32_t)m->cached[i]);
    qw_status st = qw_decoder_kv_save(m->dec, (int)n, b + KV_HDR + 4 * n);
    if (st != QW_OK) {
        free(b);
        return qw_error_set(err, st, "qw_model_kv_export: %s", qw_status_str(st));
    }
    put64(b + 32, sum64(0xcbf29ce484222325ull, b + KV_HDR, (size_t)(total - KV_HDR)));
    *blob = b;
    *len = (size_t)total;
    return QW_OK;
}

qw_status qw_model_kv_import(qw_model *m, const void *blob, size_t len, qw_error *err) {
    if (!m || m->external || !blob) return qw_error_set(err, QW_E_ARG, "qw_model_kv_import: no model with a KV cache");
    if (m->busy) return qw_error_set(err, QW_E_ARG, "qw_model_kv_import: a generation is running");
    const uint8_t *b = blob;
    qw_decoder_reset(m->dec);
    m->n_cached = 0;
    if (len < KV_HDR || memcmp(b, "QWKV", 4) != 0)
        return qw_error_set(err, QW_E_FORMAT, "prompt cache: not a qwasm KV state (%zu bytes)", len);
    if (get32(b + 4) != QW_KV_STATE_LAYOUT)
        return qw_error_set(err, QW_E_UNSUPPORTED, "prompt cache: layout %u, this build reads %d", get32(b + 4),
                            QW_KV_STATE_LAYOUT);
    if (get64(b + 8) != model_key(m) || get32(b + 16) != (uint32_t)qw_decoder_kv_dtype(m->dec))
        return qw_error_set(err, QW_E_UNSUPPORTED,
                            "prompt cache: made for another model, file set or KV row type than %s", m->cfg.onnx_file);
    uint64_t n = get32(b + 20), data = get64(b + 24);
    if (n >= (uint64_t)m->max_seq || data != qw_decoder_kv_state_bytes(m->dec, (int)n) ||
        (uint64_t)len != KV_HDR + 4 * n + data)
        return qw_error_set(err, QW_E_FORMAT,
                            "prompt cache: %llu positions in %zu bytes do not match the model (context %d)",
                            (unsigned long long)n, len, m->max_seq);
    if (sum64(0xcbf29ce484222325ull, b + KV_HDR, len - KV_HDR) != get64(b + 32))
        return qw_error_set(err, QW_E_FORMAT, "prompt cache: checksum mismatch (damaged)");
    int vocab = qw_model_vocab(m);
    if (qw_model_cached_reserve(m, (int)n) != QW_OK)
        return qw_error_set(err, QW_E_NOMEM, "prompt cache: out of memory");
    for (uint64_t i = 0; i < n; i++) {
        int32_t id = (int32_t)get32(b + KV_HDR + 4 * i);
        if (id < 0 || id >= vocab)
            return qw_error_set(err, QW_E_FORMAT, "prompt cache: id %d outside the vocabulary", id);
        m->cached[i] = id;
    }
    qw_status st = qw_decoder_kv_load(m->dec, (int)n, b + KV_HDR + 4 * n, err);
    if (st != QW_OK) return st;
    m->n_cached = (int)n;
    return QW_OK;
}
