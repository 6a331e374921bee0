/* qw_graph.c - the executor (see qw_graph.h): build (topological order, op checks, folding, last uses) and run
 * (schedule over pooled buffers). Ops live in src/ops/qw_ops_*.c and are found through their tables. */
#define _POSIX_C_SOURCE 200809L
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "qw_graph.h"
#include "qw_ops.h"
#include "qw_weights.h"
#include "qw_kernels.h"
#include "qw_clock.h"

enum { V_INTER = 0, V_CONST = 1, V_INPUT = 2 };

typedef struct qw_value {
    const char *name;
    int kind;                      /* V_INTER / V_CONST / V_INPUT */
    int dtype;                     /* static dtype (inferred at load) */
    int wid;                       /* weight id for initializers, else -1 */
    int owned_const;               /* const data malloc'd by the graph (folded) */
    int producer;                  /* node index, -1 for consts and inputs */
    int last_use;                  /* schedule position of the last consumer, -1 when none */
    int n_uses;
    int is_output;                 /* graph output index + 1, or 0 */
    int f32_store;                 /* an fp16 value kept in fp32 between ops onnxruntime runs in fp32 */
    qw_tensor t;
} qw_value;

typedef struct qw_node_rt {
    qw_op_node n;
    int in[16], out[16];           /* value indices, -1 for omitted */
    int live;
    int native;                    /* the op has an fp16 kernel in onnxruntime: fp16 inputs kept in fp32 are rounded */
    int prof;                      /* index into g->prof */
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
    int *hash;                     /* (hash_cap) value index + 1, 0 = empty */
    int n_nodes;
    qw_node_rt *nodes;
    int n_sched;
    int *sched;                    /* (n_sched) node indices in execution order */
    int n_folded;
    int n_kv_fused;                /* layers rewritten by qw_graph_kv_fuse */
    int n_in, n_out;
    int *in_vals;                  /* (n_in) value index of each graph input */
    int *out_vals;                 /* (n_out) */
    const qw_onnx_value_info **in_info, **out_info;
    /* buffer pool */
    int n_bufs, cap_bufs;
    qw_buf *bufs;
    uint64_t live_bytes, peak_bytes, folded_bytes;
    int scratch[32], n_scratch;    /* buffer indices of the running node's scratch */
    int folding;                   /* 1 while folding at load: outputs are malloc'd */
    /* profile */
    int n_prof;
    qw_prof prof[128];
    char *stats;
    qw_tap_fn tap;                 /* qw_graph_set_tap: debug view of every node output */
    void *tap_user;
};

qw_graph_running_op qw_graph_running;

/* ---- helpers shared with the ops ----------------------------------------------------------- */

qw_status qw_op_err(const qw_op_node *n, qw_error *err, qw_status st, const char *fmt, ...) {
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return qw_error_set(err, st, "node '%s' (%s, domain '%s'): %s", n->on->name, n->on->op_type,
                        n->on->domain[0] ? n->on->domain : "ai.onnx", msg);
}

const qw_onnx_attr *qw_attr(const qw_onnx_node *n, const char *name) { return qw_onnx_attr_find(n, name); }
int64_t qw_attr_i(const qw_onnx_node *n, const char *name, int64_t def) {
    const qw_onnx_attr *a = qw_onnx_attr_find(n, name);
    return a && a->type == QW_ATTR_INT ? a->i : def;
}
float qw_attr_f(const qw_onnx_node *n, const char *name, float def) {
    const qw_onnx_attr *a = qw_onnx_attr_find(n, name);
    return a && a->type == QW_ATTR_FLOAT ? a->f : def;
}

/* ---- buffer pool -------------------------------------------------------------------------- */

/* Size classes with 1/8 granularity so that a growing KV cache re-allocates only every ~12 %. */
static size_t size_class(size_t n) {
    if (n <= 256) return 256;
    size_t p = 1;
    while ((p << 1) <= n) p <<= 1;
    size_t step = p >> 3;
    return (n + step - 1) / step * step;
}

static int pool_alloc(qw_graph *g, size_t bytes) {
    if (g->opts.max_tensor_bytes && bytes > g->opts.max_tensor_bytes) return -1;
    int best = -1, small = -1;
    for (int i = 0; i < g->n_bufs; i++) {
        qw_buf *b = &g->bufs[i];
        if (b->used) continue;
        if (b->cap >= bytes) {
            if (best < 0 || b->cap < g->bufs[best].cap) best = i;
        } else if (small < 0 || b->cap > g->bufs[small].cap) {
            small = i;
        }
    }
    if (best >= 0 && g->bufs[best].cap <= 4 * size_class(bytes) + 4096) {
        g->bufs[best].used = 1;
        g->live_bytes += g->bufs[best].cap;
        if (g->live_bytes > g->peak_bytes) g->peak_bytes = g->live_bytes;
        return best;
    }
    size_t cap = size_class(bytes);
    int i = small;
    if (i >= 0) {
        void *p = realloc(g->bufs[i].p, cap);
        if (!p) return -1;
        g->bufs[i].p = p;
        g->bufs[i].cap = cap;
    } else {
        if (g->n_bufs == g->cap_bufs) {
            int nc = g->cap_bufs ? g->cap_bufs * 2 : 64;
            qw_buf *nb = realloc(g->bufs, (size_t)nc * sizeof *nb);
            if (!nb) return -1;
            g->bufs = nb;
            g->cap_bufs = nc;
        }
        void *p = malloc(cap);
        if (!p) return -1;
        i = g->n_bufs++;
        g->bufs[i].p = p;
        g->bufs[i].cap = cap;
    }
    g->bufs[i].used = 1;
    g->live_bytes += cap;
    if (g->live_bytes > g->peak_bytes) g->peak_bytes = g->live_bytes;
    return i;
}

static void pool_free_ptr(qw_graph *g, void *p) {
    if (!p) return;
    for (int i = g->n_bufs - 1; i >= 0; i--)
        if (g->bufs[i].p == p) {
            if (g->bufs[i].used) { g->bufs[i].used = 0; g->live_bytes -= g->bufs[i].cap; }
            return;
        }
}

static void tensor_release(qw_graph *g, qw_tensor *t) {
    if (t->cap) pool_free_ptr(g, t->data);
    t->data = NULL;
    t->cap = 0;
}

/* Checked: -1 for a negative dim or when the product of the nonzero dims passes QW_NUMEL_MAX, so every sub-shape's
 * product of a tensor that has one is bounded too (callers multiply by element sizes freely). */
int64_t qw_numel(int ndim, const int64_t *dims) {
    int64_t n = 1, nz = 1;
    for (int i = 0; i < ndim; i++) {
        if (dims[i] < 0) return -1;
        if (dims[i] == 0) { n = 0; continue; }
        if (nz > QW_NUMEL_MAX / dims[i]) return -1;
        nz *= dims[i];
    }
    return n ? nz : 0;
}

/* "(7, 123, 9)" into buf, for messages */
const char *qw_shape_str(int ndim, const int64_t *dims, char *buf, size_t cap) {
    size_t k = (size_t)snprintf(buf, cap, "(");
    for (int i = 0; i < ndim && k < cap; i++)
        k += (size_t)snprintf(buf + k, cap - k, "%s%lld", i ? ", " : "", (long long)dims[i]);
    if (k < cap) snprintf(buf + k, cap - k, ")");
    return buf;
}

static uint8_t qw_empty_data[64];

qw_status qw_op_out(qw_op_ctx *c, qw_tensor *t, int dtype, int ndim, const int64_t *dims, qw_error *err) {
    qw_graph *g = c->g;
    if (ndim < 0 || ndim > QW_MAX_DIMS) return qw_op_err(c->node, err, QW_E_UNSUPPORTED, "rank %d", ndim);
    for (int i = 0; i < ndim; i++)
        if (dims[i] < 0) return qw_op_err(c->node, err, QW_E_ARG, "negative output dim %lld", (long long)dims[i]);
    if (t->data) tensor_release(g, t);
    if ((dtype == QW_DT_F16 || dtype == QW_DT_F32) && g->n_values &&
        (const char *)t >= (const char *)g->values && (const char *)t < (const char *)(g->values + g->n_values)) {
        /* float outputs take the value's planned storage: its declared dtype, or fp32 when kept in fp32 */
        const qw_value *x = (const qw_value *)((const char *)t - offsetof(qw_value, t));
        if (x->dtype == QW_DT_F16 || x->dtype == QW_DT_F32) dtype = x->f32_store ? QW_DT_F32 : x->dtype;
    }
    t->dtype = dtype;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) t->dims[i] = dims[i];
    t->numel = qw_numel(ndim, dims);
    if (t->numel < 0) {
        char sh[200];
        t->numel = 0;
        t->ndim = 0;
        return qw_op_err(c->node, err, QW_E_FORMAT, "output shape %s has more than %lld elements",
                         qw_shape_str(ndim, dims, sh, sizeof sh), (long long)QW_NUMEL_MAX);
    }
    size_t bytes = (size_t)t->numel * qw_dtype_size(dtype);
    if (g->opts.max_tensor_bytes && bytes > g->opts.max_tensor_bytes)
        return qw_op_err(c->node, err, QW_E_NOMEM, "output of %zu bytes, above the limit of %llu", bytes,
                         (unsigned long long)g->opts.max_tensor_bytes);
    if (g->folding) {
        t->data = malloc(bytes ? bytes : 1);
        if (!t->data) return qw_op_err(c->node, err, QW_E_NOMEM, "out of memory (%zu bytes)", bytes);
        t->cap = 0;
        g->folded_bytes += bytes;
        return QW_OK;
    }
    if (bytes == 0) { t->data = qw_empty_data; t->cap = 0; return QW_OK; }
    int b = pool_alloc(g, bytes);
    if (b < 0) return qw_op_err(c->node, err, QW_E_NOMEM, "out of memory (%zu bytes)", bytes);
    t->data = g->bufs[b].p;
    t->cap = g->bufs[b].cap;
    return QW_OK;
}

void *qw_op_scratch(qw_op_ctx *c, size_t bytes) {
    qw_graph *g = c->g;
    if (g->n_scratch >= 32) return NULL;
    int b = pool_alloc(g, bytes ? bytes : 1);
    if (b < 0) return NULL;
    g->scratch[g->n_scratch++] = b;
    return g->bufs[b].p;
}

static void scratch_release(qw_graph *g) {
    for (int i = 0; i < g->n_scratch; i++) {
        qw_buf *b = &g->bufs[g->scratch[i]];
        if (b->used) { b->used = 0; g->live_bytes -= b->cap; }
    }
    g->n_scratch = 0;
}

/* ---- name table ----------------------------------------------------------------------------- */

static uint32_t hash_str(const char *s) {
    uint32_t h = 2166136261u;
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 16777619u;
    return h;
}

static int value_find(const qw_graph *g, const char *name) {
    uint32_t h = hash_str(name) & (uint32_t)(g->hash_cap - 1);
    while (g->hash[h]) {
        int v = g->hash[h] - 1;
        if (strcmp(g->values[v].name, name) == 0) return v;
        h = (h + 1) & (uint32_t)(g->hash_cap - 1);
    }
    return -1;
}

static int value_add(qw_graph *g, const char *name, int kind) {
    int v = g->n_values++;
    qw_value *x = &g->values[v];
    memset(x, 0, sizeof *x);
    x->name = name;
    x->kind = kind;
    x->wid = -1;
    x->producer = -1;
    x->last_use = -1;
    uint32_t h = hash_str(name) & (uint32_t)(g->hash_cap - 1);
    while (g->hash[h]) h = (h + 1) & (uint32_t)(g->hash_cap - 1);
    g->hash[h] = v + 1;
    return v;
}

/* ---- op table -------------------------------------------------------------------------------- */

static const qw_op_def *const *op_tables(void) {
    static const qw_op_def *const t[] = {qw_ops_elementwise, qw_ops_shape, qw_ops_reduce, qw_ops_matmul,
                                         qw_ops_norm, qw_ops_attention, qw_ops_quant, NULL};
    return t;
}

static const qw_op_def *op_lookup(const char *op_type, const char *domain) {
    if (strcmp(domain, "ai.onnx") == 0) domain = "";
    for (const qw_op_def *const *t = op_tables(); *t; t++)
        for (const qw_op_def *d = *t; d->op_type; d++)
            if (strcmp(d->op_type, op_type) == 0 && strcmp(d->domain, domain) == 0) return d;
    /* onnxruntime registers SimplifiedLayerNormalization in the default domain; accept either */
    if (strcmp(domain, "com.microsoft") == 0 || strcmp(domain, "") == 0) {
        const char *other = domain[0] ? "" : "com.microsoft";
        for (const qw_op_def *const *t = op_tables(); *t; t++)
            for (const qw_op_def *d = *t; d->op_type; d++)
                if (strcmp(d->op_type, op_type) == 0 && strcmp(d->domain, other) == 0 &&
                    (strstr(op_type, "LayerNormalization") != NULL))
                    return d;
    }
    return NULL;
}

/* ---- build --------------------------------------------------------------------------------- */

/* Inputs an op cannot run without (ONNX's required inputs; 1 for ops not listed): refused at load when missing or
 * omitted, so no op reads an input that is not there. */
static int required_inputs(const char *op, int64_t opset) {
    static const struct { const char *op; int n; } t[] = {
        {"Constant", 0}, {"Add", 2}, {"Sub", 2}, {"Mul", 2}, {"Div", 2}, {"Pow", 2}, {"Max", 2}, {"Min", 2},
        {"Equal", 2}, {"Less", 2}, {"Greater", 2}, {"LessOrEqual", 2}, {"GreaterOrEqual", 2}, {"And", 2}, {"Or", 2},
        {"Where", 3}, {"CastLike", 2}, {"MatMul", 2}, {"Gemm", 2}, {"LayerNormalization", 2},
        {"SimplifiedLayerNormalization", 2}, {"SkipSimplifiedLayerNormalization", 3}, {"MatMulNBits", 3},
        {"GatherBlockQuantized", 3}, {"Gather", 2}, {"GatherElements", 2}, {"Reshape", 2}, {"Expand", 2},
        {"Tile", 2}, {"Range", 3}, {"ScatterND", 3}, {"CumSum", 2}, {"RotaryEmbedding", 4},
    };
    if (!strcmp(op, "Slice")) return opset >= 10 ? 3 : 1;
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) if (!strcmp(t[i].op, op)) return t[i].n;
    return 1;
}

static qw_status run_node(qw_graph *g, int ni, qw_error *err);

static int is_const(const qw_graph *g, int v) { return v >= 0 && g->values[v].kind == V_CONST; }

static qw_status const_load(qw_graph *g, int v, qw_error *err) {
    qw_value *x = &g->values[v];
    if (x->kind != V_CONST || x->t.data || x->wid < 0) return QW_OK;
    if (qw_weights_pageable(g->w, x->wid)) return QW_OK; /* memory cap: read when a node runs, not at load */
    const void *p;
    qw_status st = qw_weights_acquire(g->w, x->wid, &p, err);
    if (st != QW_OK) return st;
    qw_weights_release(g->w, x->wid);
    x->t.data = (void *)p;
    return QW_OK;
}

static qw_status build_values(qw_graph *g, qw_error *err) {
    const qw_onnx_model *m = g->m;
    int max_vals = m->n_inits + m->n_inputs + 1;
    for (int i = 0; i < m->n_nodes; i++) max_vals += m->nodes[i].n_outputs;
    g->values = calloc((size_t)max_vals, sizeof *g->values);
    g->hash_cap = 16;
    while (g->hash_cap < 2 * max_vals) g->hash_cap <<= 1;
    g->hash = calloc((size_t)g->hash_cap, sizeof *g->hash);
    g->nodes = calloc((size_t)(m->n_nodes + 1), sizeof *g->nodes);
    g->sched = calloc((size_t)(m->n_nodes + 1), sizeof *g->sched);
    if (!g->values || !g->hash || !g->nodes || !g->sched) return qw_error_set(err, QW_E_NOMEM, "graph: out of memory");
    for (int i = 0; i < m->n_inits; i++) {
        const qw_onnx_tensor *t = &m->inits[i];
        if (value_find(g, t->name) >= 0) continue;
        int v = value_add(g, t->name, V_CONST);
        qw_value *x = &g->values[v];
        x->wid = i;
        x->dtype = t->dtype;
        x->t.dtype = t->dtype;
        x->t.ndim = t->ndim;
        memcpy(x->t.dims, t->dims, sizeof t->dims);
        x->t.numel = t->numel;
    }
    g->in_vals = calloc((size_t)m->n_inputs + 1, sizeof *g->in_vals);
    g->in_info = calloc((size_t)m->n_inputs + 1, sizeof *g->in_info);
    if (!g->in_vals || !g->in_info) return qw_error_set(err, QW_E_NOMEM, "graph: out of memory");
    for (int i = 0; i < m->n_inputs; i++) {
        const qw_onnx_value_info *vi = &m->inputs[i];
        if (value_find(g, vi->name) >= 0) continue; /* an initializer listed as input (old IRs) */
        if (!qw_dtype_supported(vi->dtype))
            return qw_error_set(err, QW_E_UNSUPPORTED, "graph input '%s': dtype %s not supported", vi->name,
                                qw_dtype_name(vi->dtype));
        int v = value_add(g, vi->name, V_INPUT);
        g->values[v].dtype = vi->dtype;
        g->in_vals[g->n_in] = v;
        g->in_info[g->n_in++] = vi;
    }
    for (int i = 0; i < m->n_nodes; i++) {
        const qw_onnx_node *on = &m->nodes[i];
        qw_node_rt *n = &g->nodes[i];
        n->n.on = on;
        n->n.n_in = on->n_inputs;
        n->n.n_out = on->n_outputs;
        n->n.weights = g->w;
        n->n.model = m;
        n->n.fs = g->fs;
        n->n.gopts = &g->opts;
        if (on->n_inputs > 16 || on->n_outputs > 16)
            return qw_error_set(err, QW_E_UNSUPPORTED, "node '%s' (%s): more than 16 inputs or outputs", on->name,
                                on->op_type);
        for (int k = 0; k < on->n_outputs; k++) {
            n->out[k] = -1;
            if (!on->outputs[k][0]) continue;
            if (value_find(g, on->outputs[k]) >= 0)
                return qw_error_set(err, QW_E_FORMAT, "node '%s' (%s): output '%s' is produced twice", on->name,
                                    on->op_type, on->outputs[k]);
            int v = value_add(g, on->outputs[k], V_INTER);
            g->values[v].producer = i;
            n->out[k] = v;
        }
    }
    for (int i = 0; i < m->n_nodes; i++) {
        const qw_onnx_node *on = &m->nodes[i];
        qw_node_rt *n = &g->nodes[i];
        for (int k = 0; k < on->n_inputs; k++) {
            n->in[k] = -1;
            n->n.in_weight[k] = -1;
            if (!on->inputs[k][0]) continue;
            int v = value_find(g, on->inputs[k]);
            if (v < 0)
                return qw_error_set(err, QW_E_FORMAT, "node '%s' (%s, domain '%s'): input '%s' is not defined", on->name,
                                    on->op_type, on->domain[0] ? on->domain : "ai.onnx", on->inputs[k]);
            n->in[k] = v;
        }
    }
    g->out_vals = calloc((size_t)m->n_outputs + 1, sizeof *g->out_vals);
    g->out_info = calloc((size_t)m->n_outputs + 1, sizeof *g->out_info);
    if (!g->out_vals || !g->out_info) return qw_error_set(err, QW_E_NOMEM, "graph: out of memory");
    for (int i = 0; i < m->n_outputs; i++) {
        int v = value_find(g, m->outputs[i].name);
        if (v < 0) return qw_error_set(err, QW_E_FORMAT, "graph output '%s' is not produced", m->outputs[i].name);
        g->out_vals[g->n_out] = v;
        g->out_info[g->n_out++] = &m->outputs[i];
        if (!g->values[v].is_output) g->values[v].is_output = g->n_out;
    }
    g->n_nodes = m->n_nodes;
    return QW_OK;
}

/* Kahn's algorithm, stable with respect to the file order. */
static qw_status topo_sort(qw_graph *g, qw_error *err) {
    int n = g->n_nodes;
    int *indeg = calloc((size_t)n + 1, sizeof *indeg);
    int *queue = calloc((size_t)n + 1, sizeof *queue);
    /* consumers lists: CSR */
    int *cnt = calloc((size_t)g->n_values + 1, sizeof *cnt);
    if (!indeg || !queue || !cnt) { free(indeg); free(queue); free(cnt); return qw_error_set(err, QW_E_NOMEM, "graph: out of memory"); }
    int total = 0;
    for (int i = 0; i < n; i++)
        for (int k = 0; k < g->nodes[i].n.n_in; k++) {
            int v = g->nodes[i].in[k];
            if (v >= 0 && g->values[v].producer >= 0) { indeg[i]++; cnt[v]++; total++; }
        }
    int *start = calloc((size_t)g->n_values + 2, sizeof *start);
    int *list = calloc((size_t)total + 1, sizeof *list);
    if (!start || !list) { free(indeg); free(queue); free(cnt); free(start); free(list); return qw_error_set(err, QW_E_NOMEM, "graph: out of memory"); }
    for (int v = 0; v < g->n_values; v++) start[v + 1] = start[v] + cnt[v];
    memset(cnt, 0, (size_t)g->n_values * sizeof *cnt);
    for (int i = 0; i < n; i++)
        for (int k = 0; k < g->nodes[i].n.n_in; k++) {
            int v = g->nodes[i].in[k];
            if (v >= 0 && g->values[v].producer >= 0) list[start[v] + cnt[v]++] = i;
        }
    int qh = 0, qt = 0;
    for (int i = 0; i < n; i++) if (indeg[i] == 0) queue[qt++] = i;
    while (qh < qt) {
        int i = queue[qh++];
        g->sched[g->n_sched++] = i;
        for (int k = 0; k < g->nodes[i].n.n_out; k++) {
            int v = g->nodes[i].out[k];
            if (v < 0) continue;
            for (int j = start[v]; j < start[v + 1]; j++)
                if (--indeg[list[j]] == 0) queue[qt++] = list[j];
        }
    }
    free(indeg); free(queue); free(cnt); free(start); free(list);
    if (g->n_sched != n) return qw_error_set(err, QW_E_FORMAT, "graph has a cycle (%d of %d nodes ordered)", g->n_sched, n);
    return QW_OK;
}

static void count_uses(qw_graph *g) {
    for (int v = 0; v < g->n_values; v++) { g->values[v].n_uses = 0; g->values[v].last_use = -1; }
    for (int s = 0; s < g->n_sched; s++) {
        qw_node_rt *n = &g->nodes[g->sched[s]];
        for (int k = 0; k < n->n.n_in; k++) {
            int v = n->in[k];
            if (v < 0 || n->n.in_skip[k]) continue;
            g->values[v].n_uses++;
            g->values[v].last_use = s;
        }
    }
}

/* Drops nodes none of whose outputs is used or a graph output. */
static void dead_code(qw_graph *g) {
    for (;;) {
        count_uses(g);
        int removed = 0, w = 0;
        for (int s = 0; s < g->n_sched; s++) {
            qw_node_rt *n = &g->nodes[g->sched[s]];
            int needed = 0;
            for (int k = 0; k < n->n.n_out; k++) {
                int v = n->out[k];
                if (v >= 0 && (g->values[v].n_uses > 0 || g->values[v].is_output)) needed = 1;
            }
            if (needed) g->sched[w++] = g->sched[s];
            else removed++;
        }
        g->n_sched = w;
        if (!removed) break;
    }
}

/* MatMul(x, Transpose(B)) where the Transpose swaps the last two axes (perm [1,0] on a constant W, or
 * [0,..,r-1,r-2] on any B, e.g. the keys of an attention): the MatMul reads B with trans_b, no transposed copy. */
static void rewrite_transposed_b(qw_graph *g) {
    for (int s = 0; s < g->n_sched; s++) {
        qw_node_rt *t = &g->nodes[g->sched[s]];
        if (strcmp(t->n.on->op_type, "Transpose") || t->n.on->domain[0] || t->n.n_in != 1 || t->out[0] < 0) continue;
        int w = t->in[0];
        const qw_onnx_attr *perm = qw_attr(t->n.on, "perm");
        if (perm) {
            int r = (int)perm->n, ok = r >= 2;
            for (int i = 0; i < r - 2 && ok; i++) ok = perm->ints[i] == i;
            if (!ok || perm->ints[r - 2] != r - 1 || perm->ints[r - 1] != r - 2) continue;
        } else if (!is_const(g, w) || g->values[w].t.ndim != 2) {
            continue;
        }
        int tv = t->out[0];
        if (g->values[tv].is_output) continue;
        int ok = 1, uses = 0;
        for (int s2 = 0; s2 < g->n_sched && ok; s2++) {
            qw_node_rt *c = &g->nodes[g->sched[s2]];
            for (int k = 0; k < c->n.n_in; k++)
                if (c->in[k] == tv) {
                    uses++;
                    if (k != 1 || strcmp(c->n.on->op_type, "MatMul") || c->n.on->domain[0] || c->n.trans_b) ok = 0;
                }
        }
        if (!ok || !uses) continue;
        for (int s2 = 0; s2 < g->n_sched; s2++) {
            qw_node_rt *c = &g->nodes[g->sched[s2]];
            if (c->n.n_in > 1 && c->in[1] == tv) { c->in[1] = w; c->n.trans_b = 1; }
        }
    }
}

static int prof_slot(qw_graph *g, const qw_op_def *d) {
    for (int i = 0; i < g->n_prof; i++) if (g->prof[i].op == d) return i;
    if (g->n_prof >= 128) return 127;
    g->prof[g->n_prof].op = d;
    return g->n_prof++;
}

/* Checks every scheduled node in order (dtype inference), folding nodes whose inputs are all constant. */
static qw_status check_and_fold(qw_graph *g, qw_error *err) {
    int w = 0;
    for (int s = 0; s < g->n_sched; s++) {
        int ni = g->sched[s];
        qw_node_rt *n = &g->nodes[ni];
        const qw_onnx_node *on = n->n.on;
        const qw_op_def *d = op_lookup(on->op_type, on->domain);
        if (!d)
            return qw_error_set(err, QW_E_UNSUPPORTED, "node '%s': op %s (domain '%s') is not supported", on->name,
                                on->op_type, on->domain[0] ? on->domain : "ai.onnx");
        n->n.op = d;
        n->n.opset = qw_onnx_opset_version(g->m, on->domain);
        if (n->n.opset < 0 && strcmp(on->domain, "com.microsoft") == 0) n->n.opset = 1;
        int need = required_inputs(on->op_type, n->n.opset);
        if (n->n.n_in < need) return qw_op_err(&n->n, err, QW_E_FORMAT, "%d inputs, %d required", n->n.n_in, need);
        for (int k = 0; k < need; k++)
            if (n->in[k] < 0) return qw_op_err(&n->n, err, QW_E_FORMAT, "required input %d is omitted", k);
        if (n->n.n_out < 1) return qw_op_err(&n->n, err, QW_E_FORMAT, "no outputs");
        int all_const = 1;
        for (int k = 0; k < n->n.n_in; k++) {
            int v = n->in[k];
            n->n.in_dtype[k] = v >= 0 ? g->values[v].dtype : 0;
            n->n.in_const[k] = NULL;
            n->n.in_weight[k] = v >= 0 ? g->values[v].wid : -1;
            if (v >= 0 && is_const(g, v)) {
                qw_status st = const_load(g, v, err);
                if (st != QW_OK) return st;
                n->n.in_const[k] = &g->values[v].t;
            } else if (v >= 0) {
                all_const = 0;
            }
            if (v >= 0 && !qw_dtype_supported(n->n.in_dtype[k]))
                return qw_op_err(&n->n, err, QW_E_UNSUPPORTED, "input %d ('%s') has unsupported dtype %s", k,
                                 on->inputs[k], qw_dtype_name(n->n.in_dtype[k]));
        }
        for (int k = 0; k < n->n.n_out; k++) n->n.out_dtype[k] = 0;
        qw_status st = d->check ? d->check(&n->n, err) : QW_OK;
        if (st != QW_OK) return st;
        for (int k = 0; k < n->n.n_out; k++) {
            int v = n->out[k];
            if (v < 0) continue;
            if (!qw_dtype_supported(n->n.out_dtype[k]))
                return qw_op_err(&n->n, err, QW_E_UNSUPPORTED, "output %d has unsupported dtype %s", k,
                                 qw_dtype_name(n->n.out_dtype[k]));
            g->values[v].dtype = n->n.out_dtype[k];
        }
        n->prof = prof_slot(g, d);
        int fold = all_const && !g->opts.no_fold;
        /* a graph output stays computed at run time only if it is not constant; folding it is fine */
        if (fold) {
            g->folding = 1;
            st = run_node(g, ni, err);
            g->folding = 0;
            if (st != QW_OK) return st;
            for (int k = 0; k < n->n.n_out; k++) {
                int v = n->out[k];
                if (v < 0) continue;
                g->values[v].kind = V_CONST;
                g->values[v].owned_const = 1;
            }
            g->n_folded++;
            continue;
        }
        g->sched[w++] = ni;
    }
    g->n_sched = w;
    return QW_OK;
}

/* ---- fusion: decomposed RMSNorm -> one fp32 computation, as onnxruntime's SimplifiedLayerNormFusion ---- */

static qw_node_rt *producer_of(qw_graph *g, int v, const char *op) {
    if (v < 0 || g->values[v].kind != V_INTER || g->values[v].producer < 0) return NULL;
    qw_node_rt *n = &g->nodes[g->values[v].producer];
    return strcmp(n->n.on->op_type, op) || n->n.on->domain[0] ? NULL : n;
}

static int const_scalar(qw_graph *g, int v, double *out) {
    if (!is_const(g, v) || g->values[v].t.numel != 1 || !g->values[v].t.data) return 0;
    *out = qw_elem_get_f(g->values[v].t.data, g->values[v].t.dtype, 0);
    return qw_dtype_is_float(g->values[v].t.dtype);
}

static void fuse_rmsnorm(qw_graph *g) {
    for (int s = 0; s < g->n_sched; s++) {
        qw_node_rt *m1 = &g->nodes[g->sched[s]];
        if (strcmp(m1->n.on->op_type, "Mul") || m1->n.on->domain[0] || m1->n.n_in != 2 || m1->n.state) continue;
        for (int wi = 0; wi < 2; wi++) {
            int w = m1->in[wi];
            if (!is_const(g, w) || g->values[w].t.ndim != 1) continue;
            qw_node_rt *m0 = producer_of(g, m1->in[1 - wi], "Mul");
            if (!m0) continue;
            for (int xi = 0; xi < 2; xi++) {
                int x = m0->in[xi];
                qw_node_rt *dv = producer_of(g, m0->in[1 - xi], "Div"), *sq = NULL;
                double one;
                if (dv && const_scalar(g, dv->in[0], &one) && one == 1.0) sq = producer_of(g, dv->in[1], "Sqrt");
                else if ((dv = producer_of(g, m0->in[1 - xi], "Reciprocal"))) sq = producer_of(g, dv->in[0], "Sqrt");
                if (!sq) continue;
                qw_node_rt *ad = producer_of(g, sq->in[0], "Add");
                if (!ad) continue;
                double eps;
                int ri;
                if (const_scalar(g, ad->in[1], &eps)) ri = 0;
                else if (const_scalar(g, ad->in[0], &eps)) ri = 1;
                else continue;
                qw_node_rt *rm = producer_of(g, ad->in[ri], "ReduceMean");
                if (!rm || qw_attr_i(rm->n.on, "keepdims", 1) != 1) continue;
                const qw_onnx_attr *ax = qw_attr(rm->n.on, "axes");
                int axis_ok = ax && ax->n == 1 && ax->ints[0] == -1;
                if (rm->n.n_in > 1 && is_const(g, rm->in[1]) && g->values[rm->in[1]].t.numel == 1)
                    axis_ok = qw_elem_get_i(g->values[rm->in[1]].t.data, g->values[rm->in[1]].t.dtype, 0) == -1;
                if (!axis_ok) continue;
                qw_node_rt *pw = producer_of(g, rm->in[0], "Pow");
                double two;
                if (!pw || pw->in[0] != x || !const_scalar(g, pw->in[1], &two) || two != 2.0) continue;
                float *st = malloc(sizeof *st);
                if (!st) return;
                /* onnxruntime's SimplifiedLayerNormFusion reads epsilon only from an fp32 constant and
                 * otherwise keeps its default 1e-5: do the same, the reference is what it computes */
                *st = g->values[ad->in[1 - ri]].t.dtype == QW_DT_F32 ? (float)eps : 1e-5f;
                m1->in[0] = x;
                m1->in[1] = w;
                m1->n.in_dtype[0] = g->values[x].dtype;
                m1->n.in_dtype[1] = g->values[w].dtype;
                m1->n.in_const[0] = NULL;
                m1->n.in_const[1] = &g->values[w].t;
                m1->n.op = &qw_op_fused_rmsnorm;
                m1->n.state = st;
                m1->prof = prof_slot(g, &qw_op_fused_rmsnorm);
                xi = 2;
                wi = 2;
            }
        }
    }
}

/* The tied lm_head (a MatMul on a large constant trans_b weight) -> the int8 op of qw_ops_lmhead.c, unless
 * exact_lm_head is set or a memory cap is too small for its rows (qw_op_lmhead_eligible). */
static qw_status select_lmhead(qw_graph *g, qw_error *err) {
    for (int s = 0; s < g->n_sched; s++) {
        qw_node_rt *n = &g->nodes[g->sched[s]];
        if (n->n.op != qw_ops_matmul || !n->n.trans_b) continue; /* qw_ops_matmul[0] is MatMul */
        int sel = 0;
        qw_status st = qw_op_lmhead_select(&n->n, g->pool, &sel, err);
        if (st != QW_OK) return st;
        if (sel) n->prof = prof_slot(g, &qw_op_lmhead);
    }
    return QW_OK;
}

/* Before the weights load: a tied embedding that the int8 lm_head will replace in its product, read elsewhere
 * only by Gather (rows), is not loaded at all when embedding_on_demand is set (qw_weights_set_on_demand): the
 * Gather and the lm_head read the rows they need from the fs. Any other reader keeps it resident. */
static qw_status plan_on_demand(qw_graph *g, qw_error *err) {
    if (!g->opts.embedding_on_demand) return QW_OK;
    for (int s = 0; s < g->n_sched; s++) {
        qw_node_rt *n = &g->nodes[g->sched[s]];
        int w = n->n.n_in == 2 ? n->in[1] : -1;
        if (strcmp(n->n.on->op_type, "MatMul") || n->n.on->domain[0] || !n->n.trans_b || !is_const(g, w) ||
            is_const(g, n->in[0]) || g->values[w].wid < 0 || g->values[w].is_output)
            continue;
        const qw_tensor *t = &g->values[w].t;
        if (!qw_op_lmhead_eligible(&g->opts, t->dtype, t->ndim, t->dims)) continue;
        int ok = 1;
        for (int s2 = 0; s2 < g->n_sched && ok; s2++) {
            qw_node_rt *c = &g->nodes[g->sched[s2]];
            for (int k = 0; k < c->n.n_in && ok; k++) {
                if (c->in[k] != w) continue;
                int gather = !strcmp(c->n.on->op_type, "Gather") && k == 0 && c->n.n_in == 2 && !is_const(g, c->in[1]);
                int lm = !strcmp(c->n.on->op_type, "MatMul") && k == 1 && c->n.trans_b && !is_const(g, c->in[0]);
                ok = !c->n.on->domain[0] && (gather || lm);
            }
        }
        if (ok) {
            qw_status st = qw_weights_set_on_demand(g->w, g->values[w].wid, err);
            if (st != QW_OK) return st;
        }
    }
    return QW_OK;
}

/* MatMulNBits -> Add(const bias): the bias moves into the MatMulNBits node (onnxruntime's MatMulNBits bias
 * fusion), so the sum is rounded once. */
static void fuse_nbits_bias(qw_graph *g) {
    count_uses(g);
    int w = 0;
    for (int s = 0; s < g->n_sched; s++) {
        qw_node_rt *a = &g->nodes[g->sched[s]];
        int fused = 0;
        if (!strcmp(a->n.on->op_type, "Add") && !a->n.on->domain[0] && a->n.n_in == 2 && a->out[0] >= 0) {
            for (int k = 0; k < 2 && !fused; k++) {
                int v = a->in[k];
                if (v < 0 || g->values[v].kind != V_INTER || g->values[v].producer < 0 || g->values[v].n_uses != 1 ||
                    g->values[v].is_output)
                    continue;
                qw_node_rt *mm = &g->nodes[g->values[v].producer];
                if (mm->n.op != qw_ops_quant || !is_const(g, a->in[1 - k])) continue; /* qw_ops_quant[0] is MatMulNBits */
                if (g->values[a->in[1 - k]].dtype != g->values[v].dtype) continue;
                if (!qw_op_nbits_fuse_bias(&mm->n, &g->values[a->in[1 - k]].t)) continue;
                mm->out[0] = a->out[0];
                g->values[a->out[0]].producer = g->values[v].producer;
                fused = 1;
            }
        }
        if (!fused) g->sched[w++] = g->sched[s];
    }
    g->n_sched = w;
}

/* onnxruntime's CPU kernels exist in fp16 for these ops only (data movement, Cast, the quantized and fused
 * contrib ops); the others run in fp32 between Cast nodes that onnxruntime inserts, and its cast-pair removal
 * keeps values flowing from one fp32-only op to another unrounded. */
static int f16_native(const qw_op_def *d) {
    static const char *const native[] = {
        "Cast", "CastLike", "Gather", "GatherElements", "Reshape", "Transpose", "Slice", "Concat", "Squeeze",
        "Unsqueeze", "Expand", "Identity", "Shape", "Size", "Split", "Tile", "ConstantOfShape", "Constant",
        "ScatterND", "GatherBlockQuantized", "GroupQueryAttention", "MultiHeadAttention",
        "RotaryEmbedding", "SkipSimplifiedLayerNormalization", "SimplifiedLayerNormalization",
        "LayerNormalization",
        /* byte-moving ops here, so that their outputs are never planned in fp32 */
        "Where", "Trilu", "Range", "Max", "Min", "CumSum", NULL};
    for (int i = 0; native[i]; i++)
        if (!strcmp(d->op_type, native[i])) return 1;
    return 0;
}

/* MatMulNBits runs in fp16 when its input arrives in fp16 (after an fp16 kernel) and in fp32 when the value is
 * still in fp32 (onnxruntime propagates fp32 through it, converting its scales): decided per node below. */
static int adaptive_op(const qw_op_def *d) { return !strcmp(d->op_type, "MatMulNBits"); }

static void plan_precision(qw_graph *g) {
    count_uses(g);
    for (int s = 0; s < g->n_sched; s++) {
        qw_node_rt *n = &g->nodes[g->sched[s]];
        n->native = f16_native(n->n.op);
    }
    for (int iter = 0; iter < 4; iter++) {
        for (int v = 0; v < g->n_values; v++) g->values[v].f32_store = 0;
        for (int s = 0; s < g->n_sched; s++) {
            qw_node_rt *n = &g->nodes[g->sched[s]];
            if (n->native) continue;
            for (int k = 0; k < n->n.n_out; k++) {
                int v = n->out[k];
                if (v < 0 || g->values[v].dtype != QW_DT_F16 || g->values[v].is_output || !g->values[v].n_uses) continue;
                /* kept in fp32 when some consumer computes in fp32; fp16-kernel consumers get it rounded (run_node) */
                int any = 0;
                for (int s2 = s + 1; s2 < g->n_sched && !any; s2++) {
                    qw_node_rt *c = &g->nodes[g->sched[s2]];
                    for (int j = 0; j < c->n.n_in; j++)
                        if (c->in[j] == v && !c->native) any = 1;
                }
                g->values[v].f32_store = any;
            }
        }
        int changed = 0;
        for (int s = 0; s < g->n_sched; s++) {
            qw_node_rt *n = &g->nodes[g->sched[s]];
            if (!adaptive_op(n->n.op)) continue;
            int nat = !(n->in[0] >= 0 && g->values[n->in[0]].f32_store);
            if (nat != n->native) { n->native = nat; changed = 1; }
        }
        if (!changed) break;
    }
}

/* ---- in-place KV cache + fused attention (qw_graph_kv_fuse, see qw_graph.h; ops in qw_ops_kv.c) ---- */

/* the distinct scheduled nodes reading v (up to max) -> count, or max + 1 when there are more */
static int kv_consumers(qw_graph *g, int v, int *list, int max) {
    int n = 0;
    for (int s = 0; s < g->n_sched; s++) {
        qw_node_rt *c = &g->nodes[g->sched[s]];
        for (int k = 0; k < c->n.n_in; k++)
            if (c->in[k] == v && !c->n.in_skip[k]) {
                if (n == max) return max + 1;
                list[n++] = g->sched[s];
                break;
            }
    }
    return n;
}

/* by the op the node runs now (a node rewritten by a fusion keeps its on->op_type) */
static int kv_is(const qw_node_rt *n, const char *op) { return n->n.op && !strcmp(n->n.op->op_type, op) && !n->n.op->domain[0]; }

/* Shape(x) whose outputs only feed Gather(axis 0) of a constant index other than 1: the same on x's source,
 * which differs from x (repeated heads) in axis 1 only */
static int kv_shape_ok(qw_graph *g, const qw_node_rt *sh) {
    if (qw_attr(sh->n.on, "start") || qw_attr(sh->n.on, "end") || sh->out[0] < 0 || g->values[sh->out[0]].is_output) return 0;
    int list[16], n = kv_consumers(g, sh->out[0], list, 15);
    if (n > 15) return 0;
    for (int i = 0; i < n; i++) {
        const qw_node_rt *ga = &g->nodes[list[i]];
        if (!kv_is(ga, "Gather") || ga->in[0] != sh->out[0] || qw_attr_i(ga->n.on, "axis", 0) != 0 || !is_const(g, ga->in[1]) ||
            g->values[ga->in[1]].t.numel != 1 || !g->values[ga->in[1]].t.data)
            return 0;
        int64_t ix = qw_elem_get_i(g->values[ga->in[1]].t.data, g->values[ga->in[1]].t.dtype, 0);
        if (ix == 1 || ix == -3) return 0;
    }
    return 1;
}

/* present -> [Unsqueeze(axis 2) -> Expand -> Reshape] -> the value the attention MatMul reads; the Shape nodes
 * of the repeated value to re-point at the present go to shapes[] */
static int kv_repeat_chain(qw_graph *g, int pres, int *fed, int *shapes, int *n_shapes) {
    int list[64], n = kv_consumers(g, pres, list, 63);
    if (n > 63) return 0;
    int un = -1;
    for (int i = 0; i < n; i++) {
        qw_node_rt *c = &g->nodes[list[i]];
        if (kv_is(c, "Shape")) continue;
        if (kv_is(c, "Cast") && c->out[0] >= 0 && g->values[c->out[0]].is_output) {
            int l2[1];
            if (kv_consumers(g, c->out[0], l2, 0) == 0) continue;
            return 0;
        }
        if (kv_is(c, "Unsqueeze") && un < 0) { un = list[i]; continue; }
        if (kv_is(c, "MatMul") && un < 0) { un = -2; continue; } /* no repeat (heads == kv_heads) */
        return 0;
    }
    *n_shapes = 0;
    if (un == -2) { *fed = pres; return 1; }
    if (un < 0) return 0;
    qw_node_rt *u = &g->nodes[un];
    int64_t ax = -100;
    const qw_onnx_attr *axes = qw_attr(u->n.on, "axes");
    if (axes && axes->n == 1) ax = axes->ints[0];
    else if (u->n.n_in > 1 && is_const(g, u->in[1]) && g->values[u->in[1]].t.numel == 1 && g->values[u->in[1]].t.data)
        ax = qw_elem_get_i(g->values[u->in[1]].t.data, g->values[u->in[1]].t.dtype, 0);
    if (ax != 2 && ax != -3) return 0;
    int l1[2];
    if (u->out[0] < 0 || kv_consumers(g, u->out[0], l1, 1) != 1) return 0;
    qw_node_rt *e = &g->nodes[l1[0]];
    if (!kv_is(e, "Expand") || e->in[0] != u->out[0] || e->out[0] < 0 || kv_consumers(g, e->out[0], l1, 1) != 1) return 0;
    qw_node_rt *r = &g->nodes[l1[0]];
    if (!kv_is(r, "Reshape") || r->in[0] != e->out[0] || r->out[0] < 0) return 0;
    int f = r->out[0];
    if (g->values[u->out[0]].is_output || g->values[e->out[0]].is_output || g->values[f].is_output) return 0;
    n = kv_consumers(g, f, list, 63);
    if (n > 63) return 0;
    for (int i = 0; i < n; i++) {
        qw_node_rt *c = &g->nodes[list[i]];
        if (kv_is(c, "MatMul")) continue;
        if (kv_is(c, "Shape") && kv_shape_ok(g, c) && *n_shapes < 8) { shapes[(*n_shapes)++] = list[i]; continue; }
        return 0;
    }
    *fed = f;
    return 1;
}

/* past input -> [Cast] -> Concat(past, new, axis -2) of rank 4: the Concat node, or -1 */
static int kv_concat(qw_graph *g, int past) {
    int l[2] = {-1, -1}, a = past;
    if (kv_consumers(g, a, l, 1) != 1) return -1;
    qw_node_rt *c = &g->nodes[l[0]];
    if (kv_is(c, "Cast") && c->out[0] >= 0 && !g->values[c->out[0]].is_output) {
        a = c->out[0];
        if (kv_consumers(g, a, l, 1) != 1) return -1;
        c = &g->nodes[l[0]];
    }
    if (!kv_is(c, "Concat") || c->n.n_in != 2 || c->in[0] != a || c->out[0] < 0) return -1;
    int64_t ax = qw_attr_i(c->n.on, "axis", 0);
    if (ax != -2 && ax != 2) return -1;
    int dt = g->values[c->out[0]].dtype;
    if (dt != QW_DT_F32 && dt != QW_DT_F16) return -1;
    return l[0];
}

static int kv_round(const qw_graph *g, int v) {
    return v >= 0 && g->values[v].dtype == QW_DT_F16 && !g->values[v].f32_store;
}

static void kv_set_node(qw_graph *g, qw_node_rt *n, const qw_op_def *op, void *state, const int *in, int n_in) {
    n->n.op = op;
    n->n.state = state;
    n->n.n_in = n_in;
    for (int k = 0; k < 16; k++) {
        n->in[k] = k < n_in ? in[k] : -1;
        n->n.in_dtype[k] = k < n_in && in[k] >= 0 ? g->values[in[k]].dtype : 0;
        n->n.in_const[k] = k < n_in && is_const(g, in[k]) ? &g->values[in[k]].t : NULL;
        n->n.in_weight[k] = k < n_in && in[k] >= 0 ? g->values[in[k]].wid : -1;
        n->n.in_skip[k] = 0;
    }
    n->n.trans_b = 0;
    n->prof = prof_slot(g, op);
}

int qw_graph_kv_fuse(qw_graph *g, int in_k, int in_v, qw_kv_cache *kc) {
    if (g->opts.no_kv_fuse || in_k < 0 || in_k >= g->n_in || in_v < 0 || in_v >= g->n_in) return 0;
    int ck = kv_concat(g, g->in_vals[in_k]), cv = kv_concat(g, g->in_vals[in_v]);
    if (ck < 0 || cv < 0) return 0;
    qw_node_rt *CK = &g->nodes[ck], *CV = &g->nodes[cv];
    int pk = CK->out[0], pv = CV->out[0];
    if (g->values[pk].dtype != g->values[pv].dtype) return 0;
    int fk, fv, shk[8], shv[8], nshk, nshv;
    if (!kv_repeat_chain(g, pk, &fk, shk, &nshk) || !kv_repeat_chain(g, pv, &fv, shv, &nshv)) return 0;
    /* MatMul(q, K^T) -> Div|Mul(const) -> [Add(mask)] -> Softmax(-1) -> MatMul(., V) */
    int l[16];
    int n = kv_consumers(g, fk, l, 15), mm1 = -1;
    for (int i = 0; i < n && n <= 15; i++)
        if (kv_is(&g->nodes[l[i]], "MatMul")) { if (mm1 >= 0) return 0; mm1 = l[i]; }
    if (mm1 < 0) return 0;
    qw_node_rt *M1 = &g->nodes[mm1];
    if (M1->in[1] != fk || M1->in[0] == fk || !M1->n.trans_b || M1->out[0] < 0 || g->values[M1->out[0]].is_output) return 0;
    int q = M1->in[0];
    if (kv_consumers(g, M1->out[0], l, 1) != 1) return 0;
    qw_node_rt *DV = &g->nodes[l[0]];
    int div = kv_is(DV, "Div");
    if (!div && !kv_is(DV, "Mul")) return 0;
    int ci = div ? 1 : (DV->in[0] == M1->out[0] ? 1 : 0);
    double cval;
    if (DV->in[1 - ci] != M1->out[0] || !const_scalar(g, DV->in[ci], &cval)) return 0;
    if (DV->out[0] < 0 || g->values[DV->out[0]].is_output || kv_consumers(g, DV->out[0], l, 1) != 1) return 0;
    qw_node_rt *AD = &g->nodes[l[0]], *SM = AD;
    int mask = -1;
    if (kv_is(AD, "Add")) {
        mask = AD->in[0] == DV->out[0] ? AD->in[1] : AD->in[0];
        if (AD->out[0] < 0 || g->values[AD->out[0]].is_output || kv_consumers(g, AD->out[0], l, 1) != 1) return 0;
        SM = &g->nodes[l[0]];
        if (mask < 0 || mask == DV->out[0] || !qw_dtype_is_float(g->values[mask].dtype)) return 0;
    } else {
        AD = NULL;
    }
    if (!kv_is(SM, "Softmax") || SM->out[0] < 0 || g->values[SM->out[0]].is_output) return 0;
    int64_t sax = qw_attr_i(SM->n.on, "axis", SM->n.opset >= 13 ? -1 : 1);
    if (sax != -1 && sax != 3) return 0;
    if (kv_consumers(g, SM->out[0], l, 1) != 1) return 0;
    int mm2 = l[0];
    qw_node_rt *M2 = &g->nodes[mm2];
    if (!kv_is(M2, "MatMul") || M2->in[0] != SM->out[0] || M2->in[1] != fv || M2->n.trans_b || M2->out[0] < 0) return 0;
    if (fv != pv && kv_consumers(g, fv, l, 15) != 1 + nshv) return 0;
    if (fk != pk && kv_consumers(g, fk, l, 15) != 1 + nshk) return 0;
    qw_kv_append_state *sk = malloc(sizeof *sk), *sv = malloc(sizeof *sv);
    qw_kv_attn_state *sa = malloc(sizeof *sa);
    if (!sk || !sv || !sa) { free(sk); free(sv); free(sa); return 0; }
    sk->kc = kc; sk->which = 0;
    sv->kc = kc; sv->which = 1;
    sa->kc = kc;
    sa->c = (float)cval;
    sa->div = div;
    /* where the decomposed path (as planned at build) stores the intermediates in fp16 */
    sa->round_qk = kv_round(g, M1->out[0]);
    sa->round_scaled = kv_round(g, DV->out[0]);
    sa->round_masked = AD ? kv_round(g, AD->out[0]) : 0;
    sa->round_probs = kv_round(g, SM->out[0]);
    kc->round_f16 = g->values[pk].dtype == QW_DT_F16;
    /* rewrite: Concats -> appends, the last MatMul -> the fused attention, Shape(repeated) -> Shape(present);
     * the rest (casts at the boundary, repeat_kv, scores, softmax) is dead code after this */
    for (int i = 0; i < nshk; i++) g->nodes[shk[i]].in[0] = pk;
    for (int i = 0; i < nshv; i++) g->nodes[shv[i]].in[0] = pv;
    int ink[1] = {CK->in[1]}, inv[1] = {CV->in[1]};
    kv_set_node(g, CK, &qw_op_kv_append, sk, ink, 1);
    kv_set_node(g, CV, &qw_op_kv_append, sv, inv, 1);
    int ina[4] = {q, pk, pv, mask};
    kv_set_node(g, M2, &qw_op_kv_attention, sa, ina, mask >= 0 ? 4 : 3);
    /* the presents are no longer graph outputs (they are views of kc): neither are their boundary Casts */
    for (int v = 0; v < g->n_values; v++) {
        qw_value *x = &g->values[v];
        if (!x->is_output || x->kind != V_INTER || x->producer < 0) continue;
        qw_node_rt *p = &g->nodes[x->producer];
        if (v == pk || v == pv || (kv_is(p, "Cast") && (p->in[0] == pk || p->in[0] == pv))) x->is_output = 0;
    }
    g->n_kv_fused++;
    return 1;
}

void qw_graph_kv_commit(qw_graph *g) {
    dead_code(g);
    if (!g->opts.f16_round_all) plan_precision(g);
    else count_uses(g);
}

/* Output i back through single-use Cast/Identity nodes to the MatMul (or int8 lm_head) producing it: that node
 * reads only the last row of a (1, S, K) A (qw_op_last_row), so the output is (1, 1, N). */
int qw_graph_logits_last_only(qw_graph *g, int i) {
    if (i < 0 || i >= g->n_out) return 0;
    const qw_onnx_value_info *vi = g->out_info[i];
    if (vi->has_shape && (vi->ndim != 3 || (vi->dims[0].value > 0 && vi->dims[0].value != 1))) return 0;
    count_uses(g);
    int v = g->out_vals[i];
    if (v < 0 || g->values[v].kind != V_INTER || g->values[v].n_uses) return 0;
    for (int depth = 0; depth < 8; depth++) {
        if (g->values[v].producer < 0) return 0;
        qw_node_rt *n = &g->nodes[g->values[v].producer];
        if (!n->n.op || n->n.n_in < 1 || n->in[0] < 0) return 0;
        if ((n->n.op == &qw_ops_matmul[0] || n->n.op == &qw_op_lmhead) && n->n.n_in == 2 && n->in[1] >= 0 &&
            !is_const(g, n->in[0]) && (n->n.trans_b || (n->n.in_const[1] && n->n.in_const[1]->ndim == 2))) {
            n->n.last_row_only = 1;
            return 1;
        }
        if ((strcmp(n->n.op->op_type, "Cast") && strcmp(n->n.op->op_type, "Identity")) || n->n.op->domain[0]) return 0;
        v = n->in[0];
        if (g->values[v].kind != V_INTER || g->values[v].n_uses != 1 || g->values[v].is_output) return 0;
    }
    return 0;
}

qw_status qw_graph_build(const qw_fs *fs, const qw_onnx_model *m, qw_pool *pool, const qw_graph_opts *opts,
                         qw_graph **out, qw_error *err) {
    *out = NULL;
    qw_graph *g = calloc(1, sizeof *g);
    if (!g) return qw_error_set(err, QW_E_NOMEM, "graph: out of memory");
    g->fs = fs;
    g->m = m;
    g->pool = pool;
    if (opts) g->opts = *opts;
    qw_status st = qw_weights_new(fs, m, g->opts.mem_cap_bytes, &g->w, err);
    if (st == QW_OK) st = build_values(g, err);
    if (st == QW_OK) st = topo_sort(g, err);
    if (st == QW_OK) {
        rewrite_transposed_b(g);
        dead_code(g);
        st = plan_on_demand(g, err);
        uint64_t total = 0;
        count_uses(g);
        for (int v = 0; v < g->n_values; v++) /* what the load reads (on-demand weights are not loaded) */
            if (g->values[v].wid >= 0 && g->values[v].n_uses > 0 && !qw_weights_streamed(g->w, g->values[v].wid))
                total += g->m->inits[g->values[v].wid].nbytes;
        qw_weights_set_progress(g->w, g->opts.progress, g->opts.progress_user, total);
        if (st == QW_OK) st = check_and_fold(g, err);
        if (st == QW_OK) st = select_lmhead(g, err);
    }
    if (st == QW_OK) {
        if (!g->opts.no_fuse) { fuse_rmsnorm(g); fuse_nbits_bias(g); }
        dead_code(g);
        if (!g->opts.f16_round_all) plan_precision(g);
        /* weights no scheduled node reads (folded, replaced by derived forms) are dropped */
        for (int v = 0; v < g->n_values; v++) {
            qw_value *x = &g->values[v];
            if (x->wid >= 0 && x->n_uses == 0 && !x->is_output) { qw_weights_drop(g->w, x->wid); x->t.data = NULL; }
            else if (x->wid >= 0) { if ((st = const_load(g, v, err)) != QW_OK) break; }
        }
        if (st == QW_OK) st = qw_weights_check_cap(g->w, err);
        /* free folded constants nobody reads any more */
        for (int v = 0; v < g->n_values; v++) {
            qw_value *x = &g->values[v];
            if (x->owned_const && x->n_uses == 0 && !x->is_output) {
                g->folded_bytes -= (size_t)x->t.numel * qw_dtype_size(x->t.dtype);
                free(x->t.data);
                x->t.data = NULL;
                x->owned_const = 0;
            }
        }
    }
    if (st != QW_OK) { qw_graph_free(g); return st; }
    *out = g;
    return QW_OK;
}

void qw_graph_free(qw_graph *g) {
    if (!g) return;
    for (int i = 0; i < g->n_nodes; i++) {
        qw_node_rt *n = &g->nodes[i];
        if (n->n.state && n->n.op && n->n.op->free_state) n->n.op->free_state(n->n.state);
    }
    for (int v = 0; v < g->n_values; v++)
        if (g->values[v].owned_const) free(g->values[v].t.data);
    for (int i = 0; i < g->n_bufs; i++) free(g->bufs[i].p);
    qw_weights_free(g->w);
    free(g->bufs);
    free(g->values);
    free(g->hash);
    free(g->nodes);
    free(g->sched);
    free(g->in_vals);
    free(g->in_info);
    free(g->out_vals);
    free(g->out_info);
    free(g->stats);
    free(g);
}

/* ---- inputs / outputs ---------------------------------------------------------------------- */

int qw_graph_n_inputs(const qw_graph *g) { return g->n_in; }
int qw_graph_n_outputs(const qw_graph *g) { return g->n_out; }
const qw_onnx_value_info *qw_graph_input_info(const qw_graph *g, int i) { return i >= 0 && i < g->n_in ? g->in_info[i] : NULL; }
const qw_onnx_value_info *qw_graph_output_info(const qw_graph *g, int i) { return i >= 0 && i < g->n_out ? g->out_info[i] : NULL; }
int qw_graph_find_input(const qw_graph *g, const char *name) {
    for (int i = 0; i < g->n_in; i++) if (strcmp(g->in_info[i]->name, name) == 0) return i;
    return -1;
}
int qw_graph_find_output(const qw_graph *g, const char *name) {
    for (int i = 0; i < g->n_out; i++) if (strcmp(g->out_info[i]->name, name) == 0) return i;
    return -1;
}

qw_status qw_graph_set_input(qw_graph *g, int i, int dtype, int ndim, const int64_t *dims, const void *data,
                             qw_error *err) {
    if (i < 0 || i >= g->n_in) return qw_error_set(err, QW_E_ARG, "graph: no input %d", i);
    qw_value *x = &g->values[g->in_vals[i]];
    if (dtype != x->dtype)
        return qw_error_set(err, QW_E_ARG, "graph input '%s': dtype %s given, %s expected", x->name,
                            qw_dtype_name(dtype), qw_dtype_name(x->dtype));
    if (ndim < 0 || ndim > QW_MAX_DIMS) return qw_error_set(err, QW_E_ARG, "graph input '%s': rank %d", x->name, ndim);
    x->t.dtype = dtype;
    x->t.ndim = ndim;
    for (int k = 0; k < ndim; k++) x->t.dims[k] = dims[k];
    x->t.numel = qw_numel(ndim, dims);
    if (x->t.numel < 0) {
        x->t.numel = 0;
        return qw_error_set(err, QW_E_ARG, "graph input '%s': more than %lld elements", x->name,
                            (long long)QW_NUMEL_MAX);
    }
    x->t.data = (void *)(data ? data : (const void *)qw_empty_data);
    x->t.cap = 0;
    return QW_OK;
}

const qw_tensor *qw_graph_output(const qw_graph *g, int i) {
    if (i < 0 || i >= g->n_out) return NULL;
    const qw_tensor *t = &g->values[g->out_vals[i]].t;
    return t->data ? t : NULL;
}

qw_status qw_graph_take_output(qw_graph *g, int i, qw_tensor *out) {
    if (i < 0 || i >= g->n_out) return QW_E_ARG;
    qw_value *x = &g->values[g->out_vals[i]];
    if (!x->t.data || x->kind != V_INTER || !x->t.cap) return QW_E_ARG;
    *out = x->t;
    x->t.data = NULL;
    x->t.cap = 0;
    return QW_OK;
}

void qw_graph_buffer_give(qw_graph *g, qw_tensor *t) { tensor_release(g, t); }

void qw_graph_reset_outputs(qw_graph *g) {
    for (int i = 0; i < g->n_out; i++) {
        qw_value *x = &g->values[g->out_vals[i]];
        if (x->kind == V_INTER) tensor_release(g, &x->t);
    }
}

/* ---- run ---------------------------------------------------------------------------------- */

static qw_status run_node(qw_graph *g, int ni, qw_error *err) {
    qw_node_rt *n = &g->nodes[ni];
    qw_tensor *in[16], *outs[16], rounded[16];
    int acquired[16];
    qw_status st = QW_OK;
    for (int k = n->n.n_in; k < 16; k++) in[k] = NULL; /* never read (required_inputs), never garbage either */
    for (int k = 0; k < n->n.n_in; k++) acquired[k] = -1;
    for (int k = 0; k < n->n.n_in; k++) {
        int v = n->in[k];
        if (v < 0 || n->n.in_skip[k]) { in[k] = NULL; continue; }
        qw_value *x = &g->values[v];
        if (x->kind == V_CONST && x->wid >= 0 && !x->owned_const) {
            const void *p;
            if ((st = qw_weights_acquire(g->w, x->wid, &p, err)) != QW_OK) goto done;
            x->t.data = (void *)p;
            acquired[k] = x->wid;
        }
        if (!x->t.data)
            return qw_op_err(&n->n, err, QW_E_INTERNAL, "input '%s' has no data", n->n.on->inputs[k]);
        in[k] = &x->t;
        if (x->f32_store && x->t.dtype == QW_DT_F32 && n->native && strcmp(n->n.op->op_type, "Shape") &&
            strcmp(n->n.op->op_type, "Size")) {
            /* the Cast to fp16 onnxruntime inserts before an fp16 kernel */
            int b = g->n_scratch < 32 ? pool_alloc(g, (size_t)x->t.numel * 2 + 2) : -1;
            if (b < 0) { st = qw_op_err(&n->n, err, QW_E_NOMEM, "out of memory"); goto done; }
            g->scratch[g->n_scratch++] = b;
            rounded[k] = x->t;
            rounded[k].dtype = QW_DT_F16;
            rounded[k].data = g->bufs[b].p;
            rounded[k].cap = 0;
            qw_f32_to_f16_array((const float *)x->t.data, (uint16_t *)rounded[k].data, (size_t)x->t.numel);
            in[k] = &rounded[k];
        }
    }
    qw_tensor dummy_out[16]; /* omitted optional outputs some kernels still write */
    memset(dummy_out, 0, sizeof dummy_out);
    for (int k = 0; k < n->n.n_out; k++) {
        if (n->out[k] >= 0) outs[k] = &g->values[n->out[k]].t;
        else { outs[k] = &dummy_out[k]; }
    }
    qw_op_ctx c = {g, &n->n, g->pool};
    /* two stores, so that a wasm trap can be reported with the op that was running (qw_graph.h) */
    qw_graph_running.name = n->n.on->name;
    qw_graph_running.op_type = n->n.on->op_type;
    st = n->n.op->run(&c, in, n->n.n_in, outs, n->n.n_out, err);
    qw_graph_running.name = qw_graph_running.op_type = NULL;
    for (int k = 0; k < n->n.n_out; k++)
        if (n->out[k] < 0 && dummy_out[k].data) {
            if (g->folding) { free(dummy_out[k].data); dummy_out[k].data = NULL; }
            else tensor_release(g, &dummy_out[k]);
        }
done:
    for (int k = 0; k < n->n.n_in; k++)
        if (acquired[k] >= 0) qw_weights_release(g->w, acquired[k]);
    scratch_release(g);
    return st;
}

qw_status qw_graph_run(qw_graph *g, volatile int *abort_flag, qw_error *err) {
    qw_graph_reset_outputs(g);
    for (int i = 0; i < g->n_in; i++)
        if (!g->values[g->in_vals[i]].t.data && g->values[g->in_vals[i]].n_uses > 0)
            return qw_error_set(err, QW_E_ARG, "graph input '%s' is not set", g->values[g->in_vals[i]].name);
    qw_status st = QW_OK;
    int s;
    for (s = 0; s < g->n_sched; s++) {
        if (abort_flag && *abort_flag) { st = qw_error_set(err, QW_E_ABORTED, "cancelled"); break; }
        int ni = g->sched[s];
        qw_node_rt *n = &g->nodes[ni];
        double t0 = g->opts.profile ? qw_now_ms() : 0;
        st = run_node(g, ni, err);
        if (g->opts.profile) { g->prof[n->prof].ms += qw_now_ms() - t0; g->prof[n->prof].calls++; }
        if (st != QW_OK) break;
        if (g->tap)
            for (int k = 0; k < n->n.n_out; k++) {
                const qw_value *o = n->out[k] >= 0 ? &g->values[n->out[k]] : NULL;
                if (o && o->t.data) g->tap(g->tap_user, o->name, o->t.dtype, o->t.ndim, o->t.dims, o->t.data);
            }
        /* intermediates whose last use this was go back to the pool; unused outputs too */
        for (int k = 0; k < n->n.n_in; k++) {
            int v = n->in[k];
            if (v >= 0 && g->values[v].kind == V_INTER && g->values[v].last_use == s && !g->values[v].is_output)
                tensor_release(g, &g->values[v].t);
        }
        for (int k = 0; k < n->n.n_out; k++) {
            int v = n->out[k];
            if (v >= 0 && g->values[v].n_uses == 0 && !g->values[v].is_output) tensor_release(g, &g->values[v].t);
        }
    }
    if (st != QW_OK) {
        /* return everything this run produced */
        for (int v = 0; v < g->n_values; v++)
            if (g->values[v].kind == V_INTER) tensor_release(g, &g->values[v].t);
        scratch_release(g);
    }
    for (int i = 0; i < g->n_in; i++) { /* inputs are borrowed for one run only */
        qw_value *x = &g->values[g->in_vals[i]];
        x->t.data = NULL;
    }
    return st;
}

/* ---- figures -------------------------------------------------------------------------------- */

uint64_t qw_graph_peak_activation_bytes(const qw_graph *g) { return g->peak_bytes; }
uint64_t qw_graph_weight_bytes(const qw_graph *g) { return qw_weights_resident_bytes(g->w) + g->folded_bytes; }
void qw_graph_profile_reset(qw_graph *g) {
    for (int i = 0; i < g->n_prof; i++) { g->prof[i].ms = 0; g->prof[i].calls = 0; }
}
void qw_graph_set_profile(qw_graph *g, int on) { g->opts.profile = on; }
void qw_graph_set_tap(qw_graph *g, qw_tap_fn fn, void *user) {
    g->tap = fn;
    g->tap_user = user;
}
void qw_graph_set_lm_head_top(qw_graph *g, int r, const uint8_t *lowered) {
    g->opts.lm_head_top = r;
    g->opts.lm_head_lowered = lowered;
}
void qw_graph_set_logits_rows(qw_graph *g, int r) { g->opts.logits_rows = r; }

void qw_graph_set_pool(qw_graph *g, qw_pool *pool) { g->pool = pool; }

const char *qw_graph_stats_json(qw_graph *g) {
    size_t cap = 4096 + (size_t)g->n_prof * 128;
    char *b = malloc(cap);
    if (!b) return "{}";
    uint64_t pool_bytes = 0;
    for (int i = 0; i < g->n_bufs; i++) pool_bytes += g->bufs[i].cap;
    size_t o = (size_t)snprintf(b, cap,
                                "{\"peak_activation_bytes\":%llu,\"resident_weight_bytes\":%llu,\"nodes\":%d,"
                                "\"folded_nodes\":%d,\"kv_fused_layers\":%d,\"pool_buffers\":%d,\"pool_bytes\":%llu,\"profile\":{",
                                (unsigned long long)g->peak_bytes, (unsigned long long)qw_graph_weight_bytes(g),
                                g->n_sched, g->n_folded, g->n_kv_fused, g->n_bufs, (unsigned long long)pool_bytes);
    int first = 1;
    for (int i = 0; i < g->n_prof && o < cap; i++) {
        if (!g->prof[i].calls) continue;
        o += (size_t)snprintf(b + o, cap - o, "%s\"%s%s%s\":{\"ms\":%.3f,\"calls\":%ld}", first ? "" : ",",
                              g->prof[i].op->domain[0] ? g->prof[i].op->domain : "",
                              g->prof[i].op->domain[0] ? "." : "", g->prof[i].op->op_type, g->prof[i].ms,
                              g->prof[i].calls);
        first = 0;
    }
    if (o < cap) o += (size_t)snprintf(b + o, cap - o, "},\"paging\":");
    if (o < cap) o += qw_weights_stats_json(g->w, b + o, cap - o);
    if (o < cap) o += (size_t)snprintf(b + o, cap - o, ",\"derived\":");
    if (o < cap) o += qw_weights_derived_json(g->w, b + o, cap - o);
    if (o < cap) snprintf(b + o, cap - o, "}");
    free(g->stats);
    g->stats = b;
    return b;
}
