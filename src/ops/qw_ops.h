/* qw_ops.h - the operator interface between qw_graph.c and the op families (src/ops/qw_ops_*.c). Internal.
 *
 * Every op is a table row {id, op_type, domain, check, run, free_state}. check runs once at load with the input
 * dtypes (0 for an omitted optional input) and constant inputs when known; it validates attributes and dtypes,
 * may precompute per-node state (derived weights, parsed attributes) and fills the output dtypes.
 * run computes outputs from inputs; outputs are allocated with qw_op_out (pool buffers). */
#ifndef QW_OPS_H
#define QW_OPS_H

#include <stdint.h>
#include "qw_graph.h"
#include "qw_weights.h"
#include "qw_kernels.h"

/* Op ids, one per op table row below (the ONNX ops, then the internal ones the load-time rewrites put in): the
 * executor and its passes compare n->op->id, never names or table positions. X(id, required inputs): ONNX's
 * required inputs, refused at load when missing or omitted so that no op reads an input that is not there (Slice:
 * 3 from opset 10, qw_graph.c). test_passes checks that every table row carries the id of its op_type. */
/* clang-format off */
#define QW_OP_LIST(X) \
    /* qw_ops_elementwise.c */ \
    X(Add, 2) X(Sub, 2) X(Mul, 2) X(Div, 2) X(Pow, 2) X(Max, 2) X(Min, 2) X(Equal, 2) X(Less, 2) \
    X(Greater, 2) X(LessOrEqual, 2) X(GreaterOrEqual, 2) X(And, 2) X(Or, 2) X(Sqrt, 1) X(Reciprocal, 1) \
    X(Neg, 1) X(Abs, 1) X(Exp, 1) X(Log, 1) X(Tanh, 1) X(Sigmoid, 1) X(Erf, 1) X(Cos, 1) X(Sin, 1) \
    X(Not, 1) X(Floor, 1) X(Ceil, 1) X(Softplus, 1) X(Relu, 1) X(Where, 3) X(Cast, 1) X(CastLike, 2) \
    /* qw_ops_shape.c */ \
    X(Constant, 0) X(ConstantOfShape, 1) X(Shape, 1) X(Size, 1) X(Identity, 1) X(Gather, 2) \
    X(GatherElements, 2) X(Reshape, 2) X(Squeeze, 1) X(Unsqueeze, 1) X(Transpose, 1) X(Concat, 1) \
    X(Split, 1) X(Slice, 1) X(Expand, 2) X(Tile, 2) X(Range, 3) X(Trilu, 1) X(ScatterND, 3) X(CumSum, 2) \
    /* qw_ops_reduce.c */ \
    X(ReduceMean, 1) X(ReduceSum, 1) X(ReduceMax, 1) X(Softmax, 1) \
    /* qw_ops_matmul.c */ \
    X(MatMul, 2) X(Gemm, 2) \
    /* qw_ops_norm.c */ \
    X(LayerNormalization, 2) X(SimplifiedLayerNormalization, 2) X(SkipSimplifiedLayerNormalization, 3) \
    X(FusedRMSNorm, 0) \
    /* qw_ops_attention.c */ \
    X(RotaryEmbedding, 4) X(MultiHeadAttention, 1) X(GroupQueryAttention, 1) \
    /* qw_ops_quant.c */ \
    X(MatMulNBits, 3) X(GatherBlockQuantized, 3) \
    /* qw_ops_kv.c */ \
    X(KVAppend, 0) X(KVAttention, 0) \
    /* qw_ops_lmhead.c */ \
    X(LmHeadInt8, 0)
/* clang-format on */
typedef enum qw_op_id {
    QW_OP_NONE = 0, /* table terminators; a node whose op is not supported */
#define QW_OP_ENUM_(id, req) QW_OP_##id,
    QW_OP_LIST(QW_OP_ENUM_)
#undef QW_OP_ENUM_
        QW_OP_COUNT
} qw_op_id;
/* by id: the op_type as in the table ("FusedRMSNorm" for SimplifiedLayerNormalization(fused)), required inputs */
extern const char *const qw_op_id_names[QW_OP_COUNT];
extern const int8_t qw_op_required_inputs[QW_OP_COUNT];
/* n runs op id (a node rewritten by a pass runs its new op; n->on->op_type keeps the file's) */
#define QW_OP_IS(n, opid) ((n)->op && (n)->op->id == (opid))

typedef struct qw_op_def qw_op_def;

/* A node as the ops see it at load. */
typedef struct qw_op_node {
    const qw_onnx_node *on;
    const qw_op_def *op;
    int64_t opset; /* version of the node's domain */
    int n_in, n_out;
    int in_dtype[16];              /* 0 for omitted */
    int out_dtype[16];             /* filled by check */
    const qw_tensor *in_const[16]; /* constant inputs known at load (else NULL) */
    int in_weight[16];             /* weight id for initializer inputs, else -1 */
    int in_refs[16];               /* how often the file reads each input: node inputs of every node (also those
                                      dead or folded), + 2 per graph output naming it (counted once, at build) */
    int in_skip[16];               /* set by check: run does not need this input (a derived form replaces it) */
    int trans_b;                   /* MatMul/Gemm: input 1 is Transpose(const W): use W with trans_b */
    int last_row_only;             /* MatMul / int8 lm_head feeding the logits (qw_graph_logits_last_only): an A of
                                      shape (1, S, K) is read at its last row only, out (1, 1, N); at its last
                                      step->logits_rows rows when that is more (speculative verification) */
    void *state;                   /* per-node state from check */
    qw_weights *weights;
    const qw_onnx_model *model;
    const qw_fs *fs;
    const qw_graph_opts *gopts; /* the graph's options (configuration, read-only; per-step values: c->step) */
} qw_op_node;

typedef struct qw_op_ctx {
    qw_graph *g;
    qw_op_node *node;
    qw_pool *pool;
    const qw_graph_step *step; /* this run's step (qw_graph_run; never NULL, zeros: defaults) */
} qw_op_ctx;

typedef qw_status (*qw_op_check_fn)(qw_op_node *n, qw_error *err);
typedef qw_status (*qw_op_run_fn)(qw_op_ctx *c, qw_tensor *const *in, int n_in, qw_tensor **out, int n_out,
                                  qw_error *err);
typedef void (*qw_op_free_fn)(void *state);

struct qw_op_def {
    int id; /* qw_op_id */
    const char *op_type;
    const char *domain; /* "" = ai.onnx, "com.microsoft" */
    qw_op_check_fn check;
    qw_op_run_fn run;
    qw_op_free_fn free_state;
};

/* Tables, NULL-op_type terminated, one per family file. */
extern const qw_op_def qw_ops_elementwise[];
extern const qw_op_def qw_ops_shape[];
extern const qw_op_def qw_ops_reduce[];
extern const qw_op_def qw_ops_matmul[];
extern const qw_op_def qw_ops_norm[];
extern const qw_op_def qw_ops_attention[];
extern const qw_op_def qw_ops_quant[];
/* internal: decomposed RMSNorm fused at load (state: float epsilon) */
extern const qw_op_def qw_op_fused_rmsnorm;
/* internal: in-place KV cache (qw_ops_kv.c), set up by qw_graph_kv_fuse.
 *  qw.KVAppend: in new (B=1, Hkv, S, D) -> out present view (1, Hkv, kc->len + S, D) whose data is the cache
 *    (row stride kc->cap, not dense: only Shape and qw.KVAttention may read it); writes the new rows at kc->len.
 *  qw.KVAttention: in q (1, H, S, D), present K view, present V view, mask (B|1, 1|H, S, T) or omitted ->
 *    out (1, H, S, D) = softmax((q K^T) / c + mask) V with K/V read from kc, kv head h / (H / Hkv). */
typedef struct qw_kv_append_state {
    qw_kv_cache *kc;
    int which; /* 0: keys, 1: values */
} qw_kv_append_state;
typedef struct qw_kv_attn_state {
    qw_kv_cache *kc;
    float c;                                               /* scale constant (as stored, after any fp16 rounding) */
    int div;                                               /* 1: scores / c (Div), 0: scores * c (Mul) */
    int round_qk, round_scaled, round_masked, round_probs; /* the decomposed path stores these in fp16 */
} qw_kv_attn_state;
extern const qw_op_def qw_op_kv_append;
extern const qw_op_def qw_op_kv_attention;
/* internal (qw_ops_lmhead.c): the int8 lm_head for a checked MatMul with a large constant trans_b weight;
 * qw_op_lmhead_select swaps n's op for it (1 when done, 0 when n does not qualify). */
extern const qw_op_def qw_op_lmhead;
qw_status qw_op_lmhead_select(qw_op_node *n, qw_pool *pool, int *selected, qw_error *err);
/* 1 when a constant trans_b weight of this dtype and shape would get the int8 lm_head under these options (the
 * graph asks before the weights load: its tied embedding may then stay in the fs, qw_weights_set_on_demand). */
int qw_op_lmhead_eligible(const qw_graph_opts *o, int dtype, int ndim, const int64_t *dims);
/* C(rows, N) = Af(rows, K) . W^T for the node's input-1 weight W (N, K; fp16 or fp32), streamed from the weight
 * store in chunks of rows (qw_ops_matmul.c): the same bits as the resident product. */
qw_status qw_op_matmul_tb_streamed(qw_op_ctx *c, const float *Af, int64_t rows, int64_t N, int64_t K, int bdtype,
                                   float *C, qw_error *err);
/* MatMul's run (the int8 lm_head's exact path) */
qw_status qw_op_matmul_run(qw_op_ctx *c, qw_tensor *const *in, int n_in, qw_tensor **out, int n_out, qw_error *err);
/* internal: folds a constant bias (N) into a checked MatMulNBits node; 1 when done */
int qw_op_nbits_fuse_bias(qw_op_node *n, const qw_tensor *bias);

/* c->node->last_row_only and A of shape (1, S > r, K), r = c->step->logits_rows (at least 1): *view = A's last r
 * rows as (1, r, K) (borrowed), returned; otherwise A itself. */
const qw_tensor *qw_op_last_row(const qw_op_ctx *c, const qw_tensor *A, qw_tensor *view);

/* ---- helpers for ops (qw_graph.c) ----------------------------------------------------------- */
/* Allocates out tensor t from the pool with dtype and shape. */
qw_status qw_op_out(qw_op_ctx *c, qw_tensor *t, int dtype, int ndim, const int64_t *dims, qw_error *err);
/* Scratch memory for this node only (returned to the pool after the node); NULL on failure. */
void *qw_op_scratch(qw_op_ctx *c, size_t bytes);
/* Error helper naming node, op type and domain. */
qw_status qw_op_err(const qw_op_node *n, qw_error *err, qw_status st, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;

/* attributes */
int64_t qw_attr_i(const qw_onnx_node *n, const char *name, int64_t def);
float qw_attr_f(const qw_onnx_node *n, const char *name, float def);
const qw_onnx_attr *qw_attr(const qw_onnx_node *n, const char *name);

/* element access as double / int64 for any supported dtype */
double qw_elem_get_f(const void *p, int dtype, int64_t i);
int64_t qw_elem_get_i(const void *p, int dtype, int64_t i);
void qw_elem_set_f(void *p, int dtype, int64_t i, double v);
void qw_elem_set_i(void *p, int dtype, int64_t i, int64_t v);
int qw_dtype_is_float(int dt);
int qw_dtype_supported(int dt);
/* tensor -> fp32 array (converted into dst, or returns data directly when f32 and dst may be skipped) */
const float *qw_tensor_f32(qw_op_ctx *c, const qw_tensor *t);
/* stores fp32 values into t (f32 copy or rounded to fp16) */
void qw_store_f32(qw_tensor *t, const float *src, int64_t n);

/* shape helpers */
/* Largest element count of a tensor: 2^48, and on 32-bit targets what keeps numel * 8 (+ small) inside size_t, so
 * byte sizes computed as (size_t)numel * esize (esize <= 8) never wrap on wasm32. */
#define QW_NUMEL_MAX \
    ((int64_t)(SIZE_MAX >> 3) - 64 < ((int64_t)1 << 48) ? (int64_t)(SIZE_MAX >> 3) - 64 : ((int64_t)1 << 48))
/* product of dims; -1 when a dim is negative or the product of the nonzero dims passes QW_NUMEL_MAX */
int64_t qw_numel(int ndim, const int64_t *dims);
/* a * b for element counts: -1 when either is negative or the product passes QW_NUMEL_MAX */
static inline int64_t qw_mul_numel(int64_t a, int64_t b) {
    if (a < 0 || b < 0) return -1;
    if (a && b > QW_NUMEL_MAX / a) return -1;
    return a * b;
}
const char *qw_shape_str(int ndim, const int64_t *dims, char *buf, size_t cap);
int qw_norm_axis(int64_t axis, int ndim, int *out); /* 0 when out of range */
/* multidirectional broadcast of a and b shapes -> out; 0 when incompatible */
int qw_broadcast_shape(int na, const int64_t *a, int nb, const int64_t *b, int *nout, int64_t *out);
/* strides (elements) of a tensor of shape (nd, dims) broadcast into out shape (nout, odims): 0 on broadcast dims */
void qw_broadcast_strides(int nd, const int64_t *dims, int nout, const int64_t *odims, int64_t *strides);

#endif /* QW_OPS_H */
