/* qw_graph.h - the ONNX executor: a qw_onnx_model turned into a schedule of checked ops over runtime tensors.
 *
 * Build (once): topological order; every node checked against the op table (op type + domain, opset,
 * attributes, input dtypes; output dtypes inferred) -> QW_E_UNSUPPORTED naming node, op type and domain;
 * initializers resident in the weight store (qw_weights.h); Constant nodes and subgraphs that depend only on
 * constants folded; MatMul(x, Transpose(const W)) rewritten to a trans_b product on W (no transposed copy);
 * the last use of every value computed so intermediates return to a buffer pool right after it.
 * Run (per step): the caller binds inputs by index (data borrowed, not copied), qw_graph_run executes the
 * schedule (shapes are computed at run time), outputs stay valid until the next run or qw_graph_reset_outputs.
 * After warm-up the pool holds buffers for every shape seen, so a step of the same shape does not allocate. */
#ifndef QW_GRAPH_H
#define QW_GRAPH_H

#include "qwasm.h"
#include "qw_onnx.h"
#include "qw_pool.h"

/* A runtime tensor: dense, row-major, little-endian. fp16 stored as uint16 bits, bool as 0/1 bytes. */
typedef struct qw_tensor {
    int32_t dtype; /* qw_dtype */
    int32_t ndim;  /* 0 for a scalar */
    int64_t dims[QW_MAX_DIMS];
    int64_t numel; /* product of dims (1 for a scalar, may be 0) */
    void *data;    /* numel * qw_dtype_size(dtype) bytes */
    size_t cap;    /* capacity of data in bytes when it is a pool buffer, else 0 (borrowed) */
} qw_tensor;

typedef struct qw_graph qw_graph;

typedef struct qw_graph_opts {
    uint64_t mem_cap_bytes;    /* weights: 0 = resident, else paged from the fs under this cap (qw_weights.h) */
    int exact_lm_head;         /* 1: no int8 lm_head (qw_ops_lmhead.c): every logit from the exact product */
    int profile;               /* 1: accumulate time per op type */
    int no_fold;               /* 1: do not constant-fold (tests) */
    int no_fuse;               /* 1: do not fuse decomposed RMSNorm (onnxruntime fuses it at level 'all') */
    int f16_round_all;         /* 1: round every fp16 op output to fp16; 0 (default): as onnxruntime's CPU
                                      provider, which keeps fp16 values in fp32 between ops that have no fp16
                                      kernel (its inserted Cast pairs cancel), rounding only where an fp16
                                      kernel (data movement, MatMulNBits, ...) or a graph output takes them */
    int no_kv_fuse;            /* 1: qw_graph_kv_fuse does nothing (decomposed attention, whole-cache Concat) */
    int embedding_on_demand;   /* 1: a tied embedding whose lm_head product the int8 lm_head replaces is not
                                      loaded: Gather and the lm_head read its rows from the fs (qw_load_opts) */
    int prefetch;              /* 1: under mem_cap_bytes a reader thread prefetches (qw_load_opts, native) */
    int lm_head_min_rows;      /* 0: the int8 lm_head needs 16384 rows and 8M elements; else this many rows
                                      and no element minimum (tests: the small models' heads are below the size
                                      where int8 rows pay) */
    int lm_head_check;         /* 1: the int8 lm_head also computes the exact product and prints per call
                                      the rows rescored, the approximate logits' largest error, argmax agreement */
    int no_repack;             /* 1: MatMulNBits weights keep the file's layout (no 4-row decode packing) */
    uint64_t max_tensor_bytes; /* 0: none; else a larger op output or scratch buffer is QW_E_NOMEM naming the
                                      node (the graph fuzzer bounds a mutated model's work this way) */
    qw_progress_fn progress;
    void *progress_user;
} qw_graph_opts;

/* fs and m must outlive the graph. pool may be NULL (serial). */
qw_status qw_graph_build(const qw_fs *fs, const qw_onnx_model *m, qw_pool *pool, const qw_graph_opts *opts,
                         qw_graph **out, qw_error *err);
void qw_graph_free(qw_graph *g);

/* Graph inputs (excluding initializers) and outputs, by index. */
const qw_onnx_value_info *qw_graph_input_info(const qw_graph *g, int i);
const qw_onnx_value_info *qw_graph_output_info(const qw_graph *g, int i);
int qw_graph_find_input(const qw_graph *g, const char *name);  /* -1 when absent */
int qw_graph_find_output(const qw_graph *g, const char *name); /* -1 when absent */

/* Binds input i to caller memory (borrowed until qw_graph_run returns; never written). */
qw_status qw_graph_set_input(qw_graph *g, int i, int dtype, int ndim, const int64_t *dims, const void *data,
                             qw_error *err);
/* What one run needs from the step driving it (the sampler's state of this step), not configuration: passed to
 * qw_graph_run and seen by the ops of that run only (qw_op_ctx.step). All zero (or NULL): the defaults. */
typedef struct qw_graph_step {
    /* How many of the largest logits the int8 lm_head (qw_ops_lmhead.c) computes exactly: 1 for greedy, top_k for
     * top-k sampling, else 64 (also the default, 0); clamped to 1..64. */
    int lm_head_top;
    /* (vocab) bytes or NULL (qw_sampler_exact_top): ids the sampler may only lower, which do not count among
     * those lm_head_top; read during the run only */
    const uint8_t *lm_head_lowered;
    /* How many of the last positions the logits of a qw_graph_logits_last_only graph cover (0, 1: the last only;
     * more: a speculative step verifies each drafted token by its own row); clamped to the run's rows. */
    int logits_rows;
} qw_graph_step;

/* Runs the schedule for one step (step may be NULL: defaults). abort_flag (may be NULL) is checked between
 * nodes: QW_E_ABORTED. */
qw_status qw_graph_run(qw_graph *g, const qw_graph_step *step, volatile int *abort_flag, qw_error *err);
/* The node whose op is running (names owned by the model), NULLs between nodes: what the JS glue reports when
 * the wasm module traps (it reads this from memory; the module cannot be called after a trap). */
typedef struct qw_graph_running_op {
    const char *volatile name, *volatile op_type;
} qw_graph_running_op;
extern qw_graph_running_op qw_graph_running;
/* Output i of the last run (NULL when not produced). Valid until the next run / qw_graph_reset_outputs. */
const qw_tensor *qw_graph_output(const qw_graph *g, int i);
/* Moves output i's buffer to the caller (*out; free with qw_graph_buffer_free or give back with
 * qw_graph_buffer_give). Returns QW_E_ARG when there is none. */
qw_status qw_graph_take_output(qw_graph *g, int i, qw_tensor *out);
/* Returns a buffer taken with qw_graph_take_output to the graph's pool (t->data becomes NULL). */
void qw_graph_buffer_give(qw_graph *g, qw_tensor *t);
/* Returns the remaining outputs' buffers to the pool. */
void qw_graph_reset_outputs(qw_graph *g);

/* KV cache owned by the caller (qw_decoder), appended in place. Layout (heads, cap, head_dim) of dtype (QW_KV_F32,
 * QW_KV_F16 or QW_KV_I8 of qw_kernels.h; the attention converts a tile of rows to fp32 at a time). When the graph's
 * present is fp16 every appended value is rounded to fp16 first, so an fp32 or fp16 cache holds exactly what
 * onnxruntime's fp16 present -> fp32 output -> fp16 past round trip holds. */
typedef struct qw_kv_cache {
    void *k, *v;    /* (heads, cap, head_dim) of dtype, positions 0 .. len-1 valid */
    float *ks, *vs; /* QW_KV_I8: (heads, cap) the scale of each row */
    int dtype;      /* chosen by the owner before the first append */
    int64_t heads, head_dim, cap;
    int64_t len;             /* cached positions; the next run appends at len (the caller advances it) */
    int round_f16;           /* set by qw_graph_kv_fuse: the present is fp16 */
    uint64_t appended_bytes; /* run-time counters */
    uint64_t fast_calls;     /* fused attention with the plain causal mask (masked keys skipped) */
    uint64_t masked_calls;   /* fused attention with any other additive mask (all keys, mask added) */
} qw_kv_cache;

/* Load-time rewrite for one layer: past inputs in_k/in_v (optionally through a boundary Cast) feeding
 * Concat(past, new, axis -2) = present, and the decomposed attention over the presents (repeat_kv
 * Unsqueeze/Expand/Reshape, MatMul(q, K^T), Div/Mul by a constant, Add(mask), Softmax(-1), MatMul(., V)):
 * the Concats become appends into kc and the attention one fused node reading kc (no repeated K/V). The
 * presents are no longer graph outputs (read kc instead) and the pasts are no longer read. Returns 1 when
 * rewritten, 0 when the pattern is not there (the graph is unchanged). Call qw_graph_kv_commit once after. */
int qw_graph_kv_fuse(qw_graph *g, int in_k, int in_v, qw_kv_cache *kc);
void qw_graph_kv_commit(qw_graph *g);

/* Load-time rewrite: graph output i (the decoder's logits, (batch 1, S, vocab)) is computed for the last position
 * only, shape (1, 1, vocab): traced back through single-use Cast/Identity nodes to the MatMul / int8 lm_head
 * producing it, which then reads only the last row of its activations. Returns 1 when done, 0 when the pattern is
 * not there (unchanged). Inputs of another shape still give the full product. */
int qw_graph_logits_last_only(qw_graph *g, int i);

/* Figures: {"peak_activation_bytes":..,"resident_weight_bytes":..,"nodes":..,"folded_nodes":..,"pool_buffers":..,
 *  "pool_bytes":..,"profile":{"MatMulNBits":{"ms":..,"calls":..},..}} -- owned by g, valid until next call. */
const char *qw_graph_stats_json(qw_graph *g);
void qw_graph_profile_reset(qw_graph *g);
/* qw_model_set_tap (qwasm.h): fn sees every node output after the node ran; NULL: off. */
void qw_graph_set_tap(qw_graph *g, qw_tap_fn fn, void *user);
/* The threads the next runs split their work over (a draft model runs on its target's pool: the two never run at
 * once, and a second pool would start threads that spin while the other model runs). pool may be NULL (serial). */
void qw_graph_set_pool(qw_graph *g, qw_pool *pool);

#endif /* QW_GRAPH_H */
