/* qw_decoder.h - a decoding session over a qw_graph for causal-LM exports: the only thing the decode loop calls.
 * Maps the graph's inputs by name for both layouts:
 *  - optimum / onnxruntime-genai with MultiHeadAttention or Concat: input_ids, attention_mask, position_ids,
 *    past_key_values.N.key/value (batch, kv_heads, past, head_dim) -> logits, present.N.key/value;
 *  - onnxruntime-genai GroupQueryAttention: the same plus seqlens_k (int32 (1) = total - 1) and
 *    total_sequence_length (int32 scalar).
 * When the graph has the decomposed attention of optimum's exports (Concat(past, new) = present, repeat_kv,
 * MatMul/Div/Add(mask)/Softmax/MatMul), the decoder owns each layer's K/V cache ((kv_heads, cap, head_dim)
 * of fp16 rows, fp32 or int8, grown by doubling up to max_seq) and the graph appends the new positions in place and runs one
 * fused attention over it (qw_graph_kv_fuse); the presents are then not graph outputs any more and the graph
 * must not be run once the decoder is freed. Otherwise each present is taken from the graph (no copy) and
 * bound as the next step's past. */
#ifndef QW_DECODER_H
#define QW_DECODER_H

#include "qw_graph.h"

typedef struct qw_decoder qw_decoder;

/* graph must outlive the decoder. max_seq bounds pos + n. */
qw_status qw_decoder_new(qw_graph *graph, int max_seq, qw_decoder **out, qw_error *err);
void qw_decoder_free(qw_decoder *d);
/* Processes n new tokens after the cached ones; logits_last (vocab floats) gets the last position's logits, or
 * with step->logits_rows = r > 1 those of the last r positions ((r, vocab) floats, r <= n: a speculative step
 * verifies each drafted token by its own row; the rejected positions then go with qw_decoder_truncate). step (may
 * be NULL: defaults) is this step's qw_graph_step, passed to qw_graph_run. abort_flag (may be NULL) is checked
 * between nodes. On failure the cache is left as before the call unless the status is QW_E_ABORTED/other run
 * errors, after which the caller should qw_decoder_reset. */
qw_status qw_decoder_forward(qw_decoder *d, const int32_t *ids, int n, float *logits_last, const qw_graph_step *step,
                             volatile int *abort_flag, qw_error *err);
/* Forgets the cache. */
void qw_decoder_reset(qw_decoder *d);
/* Keeps the first keep cached positions (keep <= pos): rolls back rejected positions (speculative decoding)
 * or forgets the part of a conversation that changed. O(1) when the graph's cache is the decoder's. */
qw_status qw_decoder_truncate(qw_decoder *d, int keep);
/* The cache's row type (QW_KV_F32 / F16 / I8 of qw_kernels.h; default: fp16 when the graph's present is fp16,
 * else fp32). Setting it forgets the cache. */
qw_status qw_decoder_set_kv_dtype(qw_decoder *d, int dtype);
int qw_decoder_kv_dtype(const qw_decoder *d);
/* Save / restore the state of the first n positions (a prompt prefix): qw_decoder_kv_state_bytes(d, n) bytes
 * (0 when some layer's cache is not the decoder's: then save/load are QW_E_UNSUPPORTED), in the cache's own
 * row type. kv_load replaces the cache: pos becomes n. */
uint64_t qw_decoder_kv_state_bytes(const qw_decoder *d, int n);
qw_status qw_decoder_kv_save(const qw_decoder *d, int n, void *dst);
qw_status qw_decoder_kv_load(qw_decoder *d, int n, const void *src, qw_error *err);
int qw_decoder_vocab(const qw_decoder *d);
/* KV cache figures (tests, stats). */
typedef struct qw_decoder_kv_info {
    int layers, fused_layers; /* layers appending in place */
    uint64_t appended_bytes;  /* K/V bytes appended (at fp16 size for fp16 presents) */
    uint64_t fast_calls;      /* fused attention runs with the plain causal mask */
    uint64_t masked_calls;    /* fused attention runs with another mask (added to every score) */
    uint64_t reserved_bytes;  /* cache memory held */
    uint64_t bytes_per_token; /* cache memory of one position (all layers, keys and values) */
    int dtype;                /* QW_KV_F32 / F16 / I8 (qw_kernels.h) */
} qw_decoder_kv_info;
void qw_decoder_kv_stats(const qw_decoder *d, qw_decoder_kv_info *out);
/* Copies layer's cached keys and values as fp32 (kv_heads, pos, head_dim) into k and v. */
qw_status qw_decoder_read_kv(const qw_decoder *d, int layer, float *k, float *v);
int qw_decoder_pos(const qw_decoder *d);
int qw_decoder_max_seq(const qw_decoder *d);

#endif /* QW_DECODER_H */
