/* qw_graph_impl.h - the executor's internal structures (qw_graph.c), shared with its load-time passes
 * (src/graph/qw_pass_*.c, qw_passes.h) and their tests. Internal: nothing outside the graph, its passes and tests. */
#ifndef QW_GRAPH_IMPL_H
#define QW_GRAPH_IMPL_H

#include "qw_graph.h"
#include "qw_ops.h"

enum { V_INTER = 0, V_CONST = 1, V_INPUT = 2 };

typedef struct qw_value {
    const char *name;
    int kind;        /* V_INTER / V_CONST / V_INPUT */
    int dtype;       /* static dtype (inferred at load) */
    int wid;         /* weight id for initializers, else -1 */
    int owned_const; /* const data malloc'd by the graph (folded) */
    int producer;    /* node index, -1 for consts and inputs */
    int last_use;    /* schedule position of the last consumer, -1 when none */
    int n_uses;
    int file_refs; /* node inputs of the whole file reading it, + 2 per graph output naming it */
    int is_output; /* graph output index + 1, or 0 */
    int f32_store; /* an fp16 value kept in fp32 between ops onnxruntime runs in fp32 */
    qw_tensor t;
} qw_value;

typedef struct qw_node_rt {
    qw_op_node n;
    int in[16], out[16]; /* value indices, -1 for omitted */
    int live;
    int native; /* the op has an fp16 kernel in onnxruntime: fp16 inputs kept in fp32 are rounded */
    int prof;   /* index into g->prof */
} qw_node_rt;

typedef struct qw_buf {
    void *p;
    size_t cap;
    int used;
} qw_buf;

typedef struct qw_prof {
    const qw_op_def *op;
    double ms;
    long calls;
} qw_prof;

struct qw_graph {
    const qw_fs *fs;
    const qw_onnx_model *m;
    qw_pool *pool;
    qw_weights *w;
    qw_graph_opts opts;
    int n_values;
    qw_value *values;
    int hash_cap;
    int *hash; /* (hash_cap) value index + 1, 0 = empty */
    int n_nodes;
    qw_node_rt *nodes;
    int n_sched;
    int *sched; /* (n_sched) node indices in execution order */
    int n_folded;
    int n_kv_fused; /* layers rewritten by qw_graph_kv_fuse */
    int n_in, n_out;
    int *in_vals;  /* (n_in) value index of each graph input */
    int *out_vals; /* (n_out) */
    const qw_onnx_value_info **in_info, **out_info;
    /* buffer pool */
    int n_bufs, cap_bufs;
    qw_buf *bufs;
    uint64_t live_bytes, peak_bytes, folded_bytes;
    int scratch[32], n_scratch; /* buffer indices of the running node's scratch */
    int folding;                /* 1 while folding at load: outputs are malloc'd */
    /* profile */
    int n_prof;
    qw_prof prof[128];
    char *stats;
    const qw_graph_step *step; /* the running qw_graph_run's step, NULL outside a run */
    qw_tap_fn tap;             /* qw_graph_set_tap: debug view of every node output */
    void *tap_user;
};

/* v is a constant (initializer or folded) */
static inline int qw_graph_is_const(const qw_graph *g, int v) { return v >= 0 && g->values[v].kind == V_CONST; }
/* n_uses and last_use of every value from the schedule (inputs a node skips do not count) */
void qw_graph_count_uses(qw_graph *g);
/* drops scheduled nodes none of whose outputs is read or a graph output; uses counted after */
void qw_graph_dead_code(qw_graph *g);
/* the profile slot of op d */
int qw_graph_prof_slot(qw_graph *g, const qw_op_def *d);
/* the node producing intermediate v when it runs op (qw_op_id), else NULL */
qw_node_rt *qw_graph_producer(qw_graph *g, int v, int op);
/* 1 when v is a constant float scalar: its value in *out */
int qw_graph_const_scalar(qw_graph *g, int v, double *out);

#endif /* QW_GRAPH_IMPL_H */
