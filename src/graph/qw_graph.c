/* qw_graph.c - the executor (see qw_graph.h): build (topological order, op checks, folding, last uses) and run
 * (schedule over pooled buffers). Ops live in src/ops/qw_ops_*.c and are found through their tables; the load-time
 * rewrites in src/graph/qw_pass_*.c, run in the order qw_passes.h lists. */
#define _POSIX_C_SOURCE 200809L
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "qw_graph_impl.h"
#include "qw_passes.h"
#include "qw_weights.h"
#include "qw_kernels.h"
#include "qw_clock.h"

qw_graph_running_op qw_graph_running;
static const qw_graph_step qw_step_default; /* folding at load, and runs given no step */

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
            if (g->bufs[i].used) {
                g->bufs[i].used = 0;
                g->live_bytes -= g->bufs[i].cap;
            }
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
        if (dims[i] == 0) {
            n = 0;
            continue;
        }
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
    if ((dtype == QW_DT_F16 || dtype == QW_DT_F32) && g->n_values && (const char *)t >= (const char *)g->values &&
        (const char *)t < (const char *)(g->values + g->n_values)) {
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
    if (bytes == 0) {
        t->data = qw_empty_data;
        t->cap = 0;
        return QW_OK;
    }
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
        if (b->used) {
            b->used = 0;
            g->live_bytes -= b->cap;
        }
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
    static const qw_op_def *const t[] = {qw_ops_elementwise, qw_ops_shape,     qw_ops_reduce, qw_ops_matmul,
                                         qw_ops_norm,        qw_ops_attention, qw_ops_quant,  NULL};
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

/* Inputs an op cannot run without (qw_op_required_inputs, QW_OP_LIST): refused at load when missing or omitted,
 * so no op reads an input that is not there. */
static int required_inputs(int id, int64_t opset) {
    if (id == QW_OP_Slice) return opset >= 10 ? 3 : 1;
    return id > QW_OP_NONE && id < QW_OP_COUNT ? qw_op_required_inputs[id] : 1;
}

static qw_status run_node(qw_graph *g, int ni, qw_error *err);

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
        n->n.op = op_lookup(on->op_type, on->domain); /* NULL: unsupported, refused if scheduled (check_and_fold) */
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
                return qw_error_set(err, QW_E_FORMAT, "node '%s' (%s, domain '%s'): input '%s' is not defined",
                                    on->name, on->op_type, on->domain[0] ? on->domain : "ai.onnx", on->inputs[k]);
            n->in[k] = v;
            g->values[v].file_refs++;
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
        g->values[v].file_refs += 2; /* a graph output is never a single use */
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
    if (!indeg || !queue || !cnt) {
        free(indeg);
        free(queue);
        free(cnt);
        return qw_error_set(err, QW_E_NOMEM, "graph: out of memory");
    }
    int total = 0;
    for (int i = 0; i < n; i++)
        for (int k = 0; k < g->nodes[i].n.n_in; k++) {
            int v = g->nodes[i].in[k];
            if (v >= 0 && g->values[v].producer >= 0) {
                indeg[i]++;
                cnt[v]++;
                total++;
            }
        }
    int *start = calloc((size_t)g->n_values + 2, sizeof *start);
    int *list = calloc((size_t)total + 1, sizeof *list);
    if (!start || !list) {
        free(indeg);
        free(queue);
        free(cnt);
        free(start);
        free(list);
        return qw_error_set(err, QW_E_NOMEM, "graph: out of memory");
    }
    for (int v = 0; v < g->n_values; v++) start[v + 1] = start[v] + cnt[v];
    memset(cnt, 0, (size_t)g->n_values * sizeof *cnt);
    for (int i = 0; i < n; i++)
        for (int k = 0; k < g->nodes[i].n.n_in; k++) {
            int v = g->nodes[i].in[k];
            if (v >= 0 && g->values[v].producer >= 0) list[start[v] + cnt[v]++] = i;
        }
    int qh = 0, qt = 0;
    for (int i = 0; i < n; i++)
        if (indeg[i] == 0) queue[qt++] = i;
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
    free(indeg);
    free(queue);
    free(cnt);
    free(start);
    free(list);
    if (g->n_sched != n)
        return qw_error_set(err, QW_E_FORMAT, "graph has a cycle (%d of %d nodes ordered)", g->n_sched, n);
    return QW_OK;
}

void qw_graph_count_uses(qw_graph *g) {
    for (int v = 0; v < g->n_values; v++) {
        g->values[v].n_uses = 0;
        g->values[v].last_use = -1;
    }
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
void qw_graph_dead_code(qw_graph *g) {
    for (;;) {
        qw_graph_count_uses(g);
        int removed = 0, w = 0;
        for (int s = 0; s < g->n_sched; s++) {
            qw_node_rt *n = &g->nodes[g->sched[s]];
            int needed = 0;
            for (int k = 0; k < n->n.n_out; k++) {
                int v = n->out[k];
                if (v >= 0 && (g->values[v].n_uses > 0 || g->values[v].is_output)) needed = 1;
            }
            if (needed)
                g->sched[w++] = g->sched[s];
            else
                removed++;
        }
        g->n_sched = w;
        if (!removed) break;
    }
}

int qw_graph_prof_slot(qw_graph *g, const qw_op_def *d) {
    for (int i = 0; i < g->n_prof; i++)
        if (g->prof[i].op == d) return i;
    if (g->n_prof >= 128) return 127;
    g->prof[g->n_prof].op = d;
    return g->n_prof++;
}

qw_node_rt *qw_graph_producer(qw_graph *g, int v, int op) {
    if (v < 0 || g->values[v].kind != V_INTER || g->values[v].producer < 0) return NULL;
    qw_node_rt *n = &g->nodes[g->values[v].producer];
    return QW_OP_IS(&n->n, op) ? n : NULL;
}

int qw_graph_const_scalar(qw_graph *g, int v, double *out) {
    if (!qw_graph_is_const(g, v) || g->values[v].t.numel != 1 || !g->values[v].t.data) return 0;
    *out = qw_elem_get_f(g->values[v].t.data, g->values[v].t.dtype, 0);
    return qw_dtype_is_float(g->values[v].t.dtype);
}

/* Checks every scheduled node in order (dtype inference), folding nodes whose inputs are all constant. */
static qw_status check_and_fold(qw_graph *g, qw_error *err) {
    int w = 0;
    for (int s = 0; s < g->n_sched; s++) {
        int ni = g->sched[s];
        qw_node_rt *n = &g->nodes[ni];
        const qw_onnx_node *on = n->n.on;
        const qw_op_def *d = n->n.op;
        if (!d)
            return qw_error_set(err, QW_E_UNSUPPORTED, "node '%s': op %s (domain '%s') is not supported", on->name,
                                on->op_type, on->domain[0] ? on->domain : "ai.onnx");
        n->n.opset = qw_onnx_opset_version(g->m, on->domain);
        if (n->n.opset < 0 && strcmp(on->domain, "com.microsoft") == 0) n->n.opset = 1;
        int need = required_inputs(d->id, n->n.opset);
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
            n->n.in_refs[k] = v >= 0 ? g->values[v].file_refs : 0;
            if (v >= 0 && qw_graph_is_const(g, v)) {
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
        n->prof = qw_graph_prof_slot(g, d);
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

qw_status qw_graph_build(const qw_fs *fs, const qw_onnx_model *m, qw_pool *pool, const qw_graph_opts *opts,
                         qw_graph **out, qw_error *err) {
    *out = NULL;
    qw_graph *g = calloc(1, sizeof *g);
    if (!g) return qw_error_set(err, QW_E_NOMEM, "graph: out of memory");
    g->fs = fs;
    g->m = m;
    g->pool = pool;
    if (opts) g->opts = *opts;
    qw_status st = qw_weights_new(fs, m, g->opts.mem_cap_bytes, g->opts.prefetch, &g->w, err);
    if (st == QW_OK) st = build_values(g, err);
    if (st == QW_OK) st = topo_sort(g, err);
    if (st == QW_OK) {
        qw_pass_transposed_b(g);
        qw_graph_dead_code(g);
        st = qw_pass_embed_on_demand(g, err);
        uint64_t total = 0;
        qw_graph_count_uses(g);
        for (int v = 0; v < g->n_values; v++) /* what the load reads (on-demand weights are not loaded) */
            if (g->values[v].wid >= 0 && g->values[v].n_uses > 0 && !qw_weights_streamed(g->w, g->values[v].wid))
                total += g->m->inits[g->values[v].wid].nbytes;
        qw_weights_set_progress(g->w, g->opts.progress, g->opts.progress_user, total);
        if (st == QW_OK) st = check_and_fold(g, err);
        if (st == QW_OK) st = qw_pass_lmhead(g, err);
    }
    if (st == QW_OK) {
        if (!g->opts.no_fuse) {
            qw_pass_rmsnorm(g);
            qw_pass_bias(g);
        }
        qw_graph_dead_code(g);
        if (!g->opts.f16_round_all) qw_pass_fp16_policy(g);
        /* weights no scheduled node reads (folded, replaced by derived forms) are dropped */
        for (int v = 0; v < g->n_values; v++) {
            qw_value *x = &g->values[v];
            if (x->wid >= 0 && x->n_uses == 0 && !x->is_output) {
                qw_weights_drop(g->w, x->wid);
                x->t.data = NULL;
            } else if (x->wid >= 0) {
                if ((st = const_load(g, v, err)) != QW_OK) break;
            }
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
    if (st != QW_OK) {
        qw_graph_free(g);
        return st;
    }
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

const qw_onnx_value_info *qw_graph_input_info(const qw_graph *g, int i) {
    return i >= 0 && i < g->n_in ? g->in_info[i] : NULL;
}
const qw_onnx_value_info *qw_graph_output_info(const qw_graph *g, int i) {
    return i >= 0 && i < g->n_out ? g->out_info[i] : NULL;
}
int qw_graph_find_input(const qw_graph *g, const char *name) {
    for (int i = 0; i < g->n_in; i++)
        if (strcmp(g->in_info[i]->name, name) == 0) return i;
    return -1;
}
int qw_graph_find_output(const qw_graph *g, const char *name) {
    for (int i = 0; i < g->n_out; i++)
        if (strcmp(g->out_info[i]->name, name) == 0) return i;
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
        if (v < 0 || n->n.in_skip[k]) {
            in[k] = NULL;
            continue;
        }
        qw_value *x = &g->values[v];
        if (x->kind == V_CONST && x->wid >= 0 && !x->owned_const) {
            const void *p;
            if ((st = qw_weights_acquire(g->w, x->wid, &p, err)) != QW_OK) goto done;
            x->t.data = (void *)p;
            acquired[k] = x->wid;
        }
        if (!x->t.data) { /* the weights acquired and the scratch rounded so far go back (done:) */
            st = qw_op_err(&n->n, err, QW_E_INTERNAL, "input '%s' has no data", n->n.on->inputs[k]);
            goto done;
        }
        in[k] = &x->t;
        if (x->f32_store && x->t.dtype == QW_DT_F32 && n->native && !QW_OP_IS(&n->n, QW_OP_Shape) &&
            !QW_OP_IS(&n->n, QW_OP_Size)) {
            /* the Cast to fp16 onnxruntime inserts before an fp16 kernel */
            int b = g->n_scratch < 32 ? pool_alloc(g, (size_t)x->t.numel * 2 + 2) : -1;
            if (b < 0) {
                st = qw_op_err(&n->n, err, QW_E_NOMEM, "out of memory");
                goto done;
            }
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
        if (n->out[k] >= 0)
            outs[k] = &g->values[n->out[k]].t;
        else { outs[k] = &dummy_out[k]; }
    }
    qw_op_ctx c = {g, &n->n, g->pool, g->step ? g->step : &qw_step_default};
    /* two stores, so that a wasm trap can be reported with the op that was running (qw_graph.h) */
    qw_graph_running.name = n->n.on->name;
    qw_graph_running.op_type = n->n.on->op_type;
    st = n->n.op->run(&c, in, n->n.n_in, outs, n->n.n_out, err);
    qw_graph_running.name = qw_graph_running.op_type = NULL;
    for (int k = 0; k < n->n.n_out; k++)
        if (n->out[k] < 0 && dummy_out[k].data) {
            if (g->folding) {
                free(dummy_out[k].data);
                dummy_out[k].data = NULL;
            } else
                tensor_release(g, &dummy_out[k]);
        }
done:
    for (int k = 0; k < n->n.n_in; k++)
        if (acquired[k] >= 0) qw_weights_release(g->w, acquired[k]);
    scratch_release(g);
    return st;
}

qw_status qw_graph_run(qw_graph *g, const qw_graph_step *step, volatile int *abort_flag, qw_error *err) {
    qw_graph_reset_outputs(g);
    for (int i = 0; i < g->n_in; i++)
        if (!g->values[g->in_vals[i]].t.data && g->values[g->in_vals[i]].n_uses > 0)
            return qw_error_set(err, QW_E_ARG, "graph input '%s' is not set", g->values[g->in_vals[i]].name);
    qw_status st = QW_OK;
    g->step = step;
    int s;
    for (s = 0; s < g->n_sched; s++) {
        if (abort_flag && *abort_flag) {
            st = qw_error_set(err, QW_E_ABORTED, "cancelled");
            break;
        }
        int ni = g->sched[s];
        qw_node_rt *n = &g->nodes[ni];
        double t0 = g->opts.profile ? qw_now_ms() : 0;
        st = run_node(g, ni, err);
        if (g->opts.profile) {
            g->prof[n->prof].ms += qw_now_ms() - t0;
            g->prof[n->prof].calls++;
        }
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
    g->step = NULL;                     /* the step (and its map of lowered ids) is borrowed for this run only */
    for (int i = 0; i < g->n_in; i++) { /* inputs are borrowed for one run only */
        qw_value *x = &g->values[g->in_vals[i]];
        x->t.data = NULL;
    }
    return st;
}

/* ---- figures -------------------------------------------------------------------------------- */

static uint64_t weight_bytes(const qw_graph *g) { return qw_weights_resident_bytes(g->w) + g->folded_bytes; }
void qw_graph_profile_reset(qw_graph *g) {
    for (int i = 0; i < g->n_prof; i++) {
        g->prof[i].ms = 0;
        g->prof[i].calls = 0;
    }
}
void qw_graph_set_tap(qw_graph *g, qw_tap_fn fn, void *user) {
    g->tap = fn;
    g->tap_user = user;
}

void qw_graph_set_pool(qw_graph *g, qw_pool *pool) { g->pool = pool; }

const char *qw_graph_stats_json(qw_graph *g) {
    size_t cap = 4096 + (size_t)g->n_prof * 128;
    char *b = malloc(cap);
    if (!b) return "{}";
    uint64_t pool_bytes = 0;
    for (int i = 0; i < g->n_bufs; i++) pool_bytes += g->bufs[i].cap;
    size_t o = (size_t)snprintf(
        b, cap,
        "{\"peak_activation_bytes\":%llu,\"resident_weight_bytes\":%llu,\"nodes\":%d,"
        "\"folded_nodes\":%d,\"kv_fused_layers\":%d,\"pool_buffers\":%d,\"pool_bytes\":%llu,\"profile\":{",
        (unsigned long long)g->peak_bytes, (unsigned long long)weight_bytes(g), g->n_sched, g->n_folded, g->n_kv_fused,
        g->n_bufs, (unsigned long long)pool_bytes);
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
