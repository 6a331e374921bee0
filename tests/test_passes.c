/* test_passes.c - the executor's load-time passes (src/graph/qw_pass_*.c, qw_passes.h), each on a generated test model
 * (tools/gen/gen_test_models.sh; skipped when absent), through the graph's internal view (qw_graph_impl.h):
 *  - op ids: every op table row carries the id of its op_type (QW_OP_LIST), each id once;
 *  - what each pass rewrote: RMSNorm (2 per layer + the final one) fused to one node each, the q/k/v biases into
 *    their MatMulNBits, the KV matcher found every layer, the tied lm_head's Transpose gone (trans_b) and the int8
 *    lm_head selected, the embedding left in the fs on demand, fp16 values kept in fp32 by the fp16 policy;
 *  - with a pass disabled (no_fuse, no_kv_fuse, exact_lm_head) the logits stay within test_decoder's tolerances
 *    (1e-4 absolute for fp32 graphs, 1e-2 relative to the row's largest magnitude with fp16);
 *  - a run failing on an input without data releases the weights it acquired (qw_graph.c run_node). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "qw_graph_impl.h"
#include "qw_passes.h"
#include "qw_pool.h"
#include "test_session.h"
#include "qw_test.h"

static int checked;

static const char *models_dir(void) {
    static char dir[900];
    const char *bd = getenv("QW_BUILD_DIR");
    snprintf(dir, sizeof dir, "%s/../models", bd ? bd : ".");
    return dir;
}

/* name's folder and its .onnx; 0 after a skip line when not generated */
static int model_path(const char *name, const char *onnx, char *dir, size_t cap) {
    snprintf(dir, cap, "%s/%s", models_dir(), name);
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", dir, onnx);
    FILE *f = fopen(path, "rb");
    if (!f) {
        printf("skip %s: not generated (tools/gen/gen_test_models.sh)\n", path);
        return 0;
    }
    fclose(f);
    checked++;
    return 1;
}

/* ---- op ids ------------------------------------------------------------------------------------------- */

static void test_op_ids(void) {
    const qw_op_def *const tables[] = {qw_ops_elementwise, qw_ops_shape,     qw_ops_reduce, qw_ops_matmul,
                                       qw_ops_norm,        qw_ops_attention, qw_ops_quant};
    const qw_op_def *const single[] = {&qw_op_fused_rmsnorm, &qw_op_kv_append, &qw_op_kv_attention, &qw_op_lmhead};
    int seen[QW_OP_COUNT] = {0};
    for (size_t t = 0; t < sizeof tables / sizeof tables[0] + sizeof single / sizeof single[0]; t++) {
        int one = t >= sizeof tables / sizeof tables[0];
        const qw_op_def *d = one ? single[t - sizeof tables / sizeof tables[0]] : tables[t];
        for (; d->op_type; d++) {
            int ok = d->id > QW_OP_NONE && d->id < QW_OP_COUNT;
            CHECK(ok, "op %s: id %d out of range", d->op_type, d->id);
            if (!ok) continue;
            const char *want = d->id == QW_OP_FusedRMSNorm ? "SimplifiedLayerNormalization(fused)"
                                                           : qw_op_id_names[d->id];
            CHECK(!strcmp(want, d->op_type), "op %s carries the id of %s", d->op_type, qw_op_id_names[d->id]);
            seen[d->id]++;
            if (one) break;
        }
    }
    for (int i = 1; i < QW_OP_COUNT; i++)
        CHECK(seen[i] == 1, "op id %s is in %d table rows", qw_op_id_names[i], seen[i]);
    CHECK(qw_op_required_inputs[QW_OP_MatMulNBits] == 3 && qw_op_required_inputs[QW_OP_Constant] == 0 &&
              qw_op_required_inputs[QW_OP_RotaryEmbedding] == 4,
          "required inputs by id");
}

/* ---- graph figures ------------------------------------------------------------------------------------ */

static int count_op(const qw_graph *g, int op) {
    int n = 0;
    for (int s = 0; s < g->n_sched; s++) n += QW_OP_IS(&g->nodes[g->sched[s]].n, op);
    return n;
}

static int n_layers(const qw_graph *g) {
    int n = 0;
    for (int i = 0; i < g->n_in; i++) {
        const char *nm = g->in_info[i]->name;
        size_t l = strlen(nm);
        n += !strncmp(nm, "past_key_values.", 16) && l > 4 && !strcmp(nm + l - 4, ".key");
    }
    return n;
}

/* Transpose nodes whose output a MatMul reads as B */
static int transposes_into_matmul(const qw_graph *g) {
    int n = 0;
    for (int s = 0; s < g->n_sched; s++) {
        const qw_node_rt *c = &g->nodes[g->sched[s]];
        if (!QW_OP_IS(&c->n, QW_OP_MatMul) || c->in[1] < 0) continue;
        int p = g->values[c->in[1]].producer;
        n += p >= 0 && QW_OP_IS(&g->nodes[p].n, QW_OP_Transpose);
    }
    return n;
}

static int f32_stored(const qw_graph *g) {
    int n = 0;
    for (int v = 0; v < g->n_values; v++) n += g->values[v].f32_store;
    return n;
}

typedef struct figures {
    int ok, layers, fused_rms, reduce_mean, nbits, adds, kv_fused, lmhead, transposes, f32_store, nodes;
    int matmul_tb; /* MatMul with trans_b on a constant B */
    int gather_native;
    double on_demand_bytes;
} figures;

static figures build_figures(const char *name, const char *onnx, qw_pool *pool, const qw_graph_opts *go, int decoder) {
    figures f;
    memset(&f, 0, sizeof f);
    char dir[1000];
    snprintf(dir, sizeof dir, "%s/%s", models_dir(), name);
    session s;
    qw_error err = {0};
    qw_status st;
    if (decoder)
        st = session_open(dir, onnx, pool, go, 64, &s, &err);
    else {
        memset(&s, 0, sizeof s);
        st = qw_fs_open_dir(dir, &s.fs, &err);
        if (st == QW_OK) st = qw_onnx_load(&s.fs, onnx, &s.m, &err);
        if (st == QW_OK) st = qw_graph_build(&s.fs, s.m, pool, go, &s.g, &err);
    }
    CHECK(st == QW_OK, "%s: load: %s", name, err.msg);
    if (st == QW_OK) {
        qw_graph *g = s.g;
        f.ok = 1;
        f.layers = n_layers(g);
        f.fused_rms = count_op(g, QW_OP_FusedRMSNorm);
        f.reduce_mean = count_op(g, QW_OP_ReduceMean);
        f.nbits = count_op(g, QW_OP_MatMulNBits);
        f.adds = count_op(g, QW_OP_Add);
        f.kv_fused = g->n_kv_fused;
        f.lmhead = count_op(g, QW_OP_LmHeadInt8);
        for (int i = 0; i < g->n_sched; i++) { /* on a constant B: the tied lm_head */
            const qw_node_rt *n = &g->nodes[g->sched[i]];
            f.matmul_tb += QW_OP_IS(&n->n, QW_OP_MatMul) && n->n.trans_b && qw_graph_is_const(g, n->in[1]);
        }
        f.transposes = transposes_into_matmul(g);
        f.f32_store = f32_stored(g);
        f.nodes = g->n_sched;
        for (int i = 0; i < g->n_sched; i++)
            if (QW_OP_IS(&g->nodes[g->sched[i]].n, QW_OP_Gather)) f.gather_native += g->nodes[g->sched[i]].native;
        f.on_demand_bytes = json_num(qw_graph_stats_json(g), "on_demand_bytes");
    }
    close_session(&s);
    return f;
}

/* ---- each pass: what it rewrote ----------------------------------------------------------------------- */

static void test_rmsnorm_bias(qw_pool *pool) {
    char dir[1000];
    const char *name = "tiny-q4f16-op18-ext", *onnx = "onnx/model_q4f16.onnx";
    if (!model_path(name, onnx, dir, sizeof dir)) return;
    qw_graph_opts on = {0}, off = {0};
    off.no_fuse = 1;
    figures a = build_figures(name, onnx, pool, &on, 0), b = build_figures(name, onnx, pool, &off, 0);
    if (!a.ok || !b.ok) return;
    int L = a.layers;
    CHECK(L == 3, "%s: %d layers found, the tiny model has 3", name, L);
    /* two norms per layer and the final one: each decomposed norm (one ReduceMean) becomes one node */
    CHECK(b.reduce_mean == 2 * L + 1 && b.fused_rms == 0, "%s: unfused: %d ReduceMean, %d fused", name, b.reduce_mean,
          b.fused_rms);
    CHECK(a.fused_rms == 2 * L + 1 && a.reduce_mean == 0, "%s: fused: %d RMSNorm nodes, %d ReduceMean left", name,
          a.fused_rms, a.reduce_mean);
    /* q, k and v projections: MatMulNBits + Add(bias) -> MatMulNBits with its bias; each norm's Add(eps) goes too */
    CHECK(a.nbits == b.nbits && b.adds - a.adds == 3 * L + 2 * L + 1, "%s: %d Adds fewer, %d expected", name,
          b.adds - a.adds, 3 * L + 2 * L + 1);
    CHECK(a.nodes < b.nodes, "%s: fused graph %d nodes, unfused %d", name, a.nodes, b.nodes);

    /* the passes as functions: on a graph built without them they rewrite the same, a second call nothing */
    session s;
    qw_error err = {0};
    if (session_open(dir, onnx, pool, &off, 16, &s, &err) != QW_OK) {
        CHECK(0, "%s: load: %s", name, err.msg);
    } else {
        int r1 = qw_pass_rmsnorm(s.g), r2 = qw_pass_rmsnorm(s.g);
        qw_graph_dead_code(s.g);
        CHECK(r1 == 2 * L + 1 && r2 == 0, "%s: qw_pass_rmsnorm fused %d, then %d", name, r1, r2);
        CHECK(count_op(s.g, QW_OP_ReduceMean) == 0, "%s: a ReduceMean survived the pass", name);
        int b1 = qw_pass_bias(s.g), b2 = qw_pass_bias(s.g);
        CHECK(b1 == 3 * L && b2 == 0, "%s: qw_pass_bias fused %d, then %d", name, b1, b2);
    }
    close_session(&s);
}

static void test_kv_fp16(qw_pool *pool) {
    char dir[1000];
    const char *name = "tiny-q4f16-op18-ext", *onnx = "onnx/model_q4f16.onnx";
    if (!model_path(name, onnx, dir, sizeof dir)) return;
    qw_graph_opts on = {0}, nokv = {0}, round_all = {0};
    nokv.no_kv_fuse = 1;
    round_all.f16_round_all = 1;
    figures a = build_figures(name, onnx, pool, &on, 1), b = build_figures(name, onnx, pool, &nokv, 1);
    figures c = build_figures(name, onnx, pool, &round_all, 1);
    if (!a.ok || !b.ok || !c.ok) return;
    CHECK(a.kv_fused == a.layers && a.layers == 3, "%s: KV matcher found %d of %d layers", name, a.kv_fused, a.layers);
    CHECK(b.kv_fused == 0, "%s: no_kv_fuse still fused %d layers", name, b.kv_fused);
    /* fp16 policy: onnxruntime keeps fp16 values in fp32 between its fp32-only kernels; Gather is an fp16 kernel */
    CHECK(a.f32_store > 0 && c.f32_store == 0, "%s: %d values kept in fp32 (f16_round_all: %d)", name, a.f32_store,
          c.f32_store);
    CHECK(a.gather_native > 0 && c.gather_native == 0, "%s: Gather nodes marked fp16-native: %d (round_all: %d)", name,
          a.gather_native, c.gather_native);
}

static void test_lmhead_on_demand(qw_pool *pool) {
    char dir[1000];
    const char *name = "small-q4f16-op18-ext", *onnx = "onnx/model_q4f16.onnx";
    if (!model_path(name, onnx, dir, sizeof dir)) return;
    qw_graph_opts ex = {0}, i8 = {0}, dem = {0};
    ex.exact_lm_head = 1;
    i8.lm_head_min_rows = 1000; /* the small model's head is below the size where the int8 rows pay */
    dem = i8;
    dem.embedding_on_demand = 1;
    figures a = build_figures(name, onnx, pool, &ex, 0), b = build_figures(name, onnx, pool, &i8, 0);
    figures c = build_figures(name, onnx, pool, &dem, 0);
    if (!a.ok || !b.ok || !c.ok) return;
    /* the tied lm_head MatMul(x, Transpose(E)) reads E with trans_b (no Transpose left before a MatMul) */
    CHECK(a.transposes == 0 && a.matmul_tb == 1 && a.lmhead == 0,
          "%s: exact: %d Transpose -> MatMul, %d trans_b, "
          "%d int8 heads",
          name, a.transposes, a.matmul_tb, a.lmhead);
    CHECK(b.lmhead == 1 && b.matmul_tb == 0, "%s: int8 lm_head selected %d times (%d trans_b MatMul left)", name,
          b.lmhead, b.matmul_tb);
    CHECK(b.on_demand_bytes == 0 && c.on_demand_bytes > 0 && c.lmhead == 1,
          "%s: embedding on demand: %g bytes (resident run: %g)", name, c.on_demand_bytes, b.on_demand_bytes);
}

/* ---- a pass disabled: the logits stay within the decoder test's tolerances ---------------------------- */

static double logits_worst(const char *name, const char *onnx, qw_pool *pool, const qw_graph_opts *a,
                           const qw_graph_opts *b, int rel) {
    char dir[1000];
    snprintf(dir, sizeof dir, "%s/%s", models_dir(), name);
    session sa, sb;
    memset(&sa, 0, sizeof sa);
    memset(&sb, 0, sizeof sb);
    qw_error err = {0};
    double worst = -1;
    float *la = NULL, *lb = NULL;
    if (session_open(dir, onnx, pool, a, 32, &sa, &err) != QW_OK ||
        session_open(dir, onnx, pool, b, 32, &sb, &err) != QW_OK) {
        CHECK(0, "%s: load: %s", name, err.msg);
        goto done;
    }
    int V = qw_decoder_vocab(sa.d);
    la = malloc((size_t)V * sizeof *la);
    lb = malloc((size_t)V * sizeof *lb);
    if (!la || !lb) goto done;
    const int32_t prompt[5] = {1, 2, 3, 4, 5};
    int32_t id = 0;
    worst = 0;
    for (int step = 0; step < 8; step++) {
        const int32_t *ids = step ? &id : prompt;
        int n = step ? 1 : 5;
        if (qw_decoder_forward(sa.d, ids, n, la, NULL, NULL, &err) != QW_OK ||
            qw_decoder_forward(sb.d, ids, n, lb, NULL, NULL, &err) != QW_OK) {
            CHECK(0, "%s: step %d: %s", name, step, err.msg);
            worst = -1;
            break;
        }
        double mx = 0, d = 0;
        for (int i = 0; i < V; i++) {
            mx = fmax(mx, fabs(la[i]));
            d = fmax(d, fabs((double)la[i] - lb[i]));
        }
        worst = fmax(worst, rel ? d / (mx > 0 ? mx : 1) : d);
        id = argmax(la, V);
    }
done:
    free(la);
    free(lb);
    close_session(&sa);
    close_session(&sb);
    return worst;
}

static void test_disabled_equal(qw_pool *pool) {
    static const struct {
        const char *name, *onnx;
        int rel;
    } ms[] = {
        {"tiny-fp32-op14", "onnx/model.onnx", 0},
        {"tiny-q4f16-op18-ext", "onnx/model_q4f16.onnx", 1},
    };
    for (size_t i = 0; i < sizeof ms / sizeof ms[0]; i++) {
        char dir[1000];
        if (!model_path(ms[i].name, ms[i].onnx, dir, sizeof dir)) continue;
        double tol = ms[i].rel ? 1e-2 : 1e-4;
        qw_graph_opts on = {0}, nofuse = {0}, nokv = {0};
        nofuse.no_fuse = 1;
        nokv.no_kv_fuse = 1;
        double w1 = logits_worst(ms[i].name, ms[i].onnx, pool, &on, &nofuse, ms[i].rel);
        double w2 = logits_worst(ms[i].name, ms[i].onnx, pool, &on, &nokv, ms[i].rel);
        CHECK(w1 >= 0 && w1 <= tol, "%s: no_fuse logits differ by %g (tolerance %g)", ms[i].name, w1, tol);
        CHECK(w2 >= 0 && w2 <= tol, "%s: no_kv_fuse logits differ by %g (tolerance %g)", ms[i].name, w2, tol);
        printf("%s: logits with no_fuse within %.3g, with no_kv_fuse within %.3g (%s, tolerance %g)\n", ms[i].name, w1,
               w2, ms[i].rel ? "relative" : "absolute", tol);
    }
    /* the int8 lm_head off: the greedy ids are the same (its top rows are exact) */
    char dir[1000];
    const char *name = "small-q4f16-op18-ext", *onnx = "onnx/model_q4f16.onnx";
    if (!model_path(name, onnx, dir, sizeof dir)) return;
    qw_graph_opts ex = {0}, i8 = {0};
    ex.exact_lm_head = 1;
    i8.lm_head_min_rows = 1000;
    session sa, sb;
    memset(&sa, 0, sizeof sa);
    memset(&sb, 0, sizeof sb);
    qw_error err = {0};
    if (session_open(dir, onnx, pool, &ex, 32, &sa, &err) == QW_OK &&
        session_open(dir, onnx, pool, &i8, 32, &sb, &err) == QW_OK) {
        int V = qw_decoder_vocab(sa.d);
        float *la = malloc((size_t)V * sizeof *la), *lb = malloc((size_t)V * sizeof *lb);
        int32_t ida = 9707, idb = 9707, same = 1;
        qw_graph_step greedy = {0};
        greedy.lm_head_top = 1;
        for (int step = 0; step < 8 && la && lb && same; step++) {
            if (qw_decoder_forward(sa.d, &ida, 1, la, NULL, NULL, &err) != QW_OK ||
                qw_decoder_forward(sb.d, &idb, 1, lb, &greedy, NULL, &err) != QW_OK) {
                CHECK(0, "%s: %s", name, err.msg);
                break;
            }
            ida = argmax(la, V);
            idb = argmax(lb, V);
            same = ida == idb && la[ida] == lb[idb];
        }
        CHECK(same, "%s: greedy with the int8 lm_head differs from the exact one", name);
        free(la);
        free(lb);
    } else {
        CHECK(0, "%s: load: %s", name, err.msg);
    }
    close_session(&sa);
    close_session(&sb);
}

/* ---- a run failing mid-node releases what it acquired ------------------------------------------------- */

static void test_run_error_release(qw_pool *pool) {
    char dir[1000];
    const char *name = "tiny-fp32-op14", *onnx = "onnx/model.onnx";
    if (!model_path(name, onnx, dir, sizeof dir)) return;
    session s;
    memset(&s, 0, sizeof s);
    qw_error err = {0};
    if (qw_fs_open_dir(dir, &s.fs, &err) != QW_OK || qw_onnx_load(&s.fs, onnx, &s.m, &err) != QW_OK ||
        qw_graph_build(&s.fs, s.m, pool, NULL, &s.g, &err) != QW_OK) {
        CHECK(0, "%s: load: %s", name, err.msg);
        close_session(&s);
        return;
    }
    qw_graph *g = s.g;
    /* the embedding's Gather(weight, input_ids) alone in the schedule, the inputs unset and not checked by the run:
     * the node acquires the weight (input 0), then finds input 1 without data */
    int node = -1;
    for (int i = 0; i < g->n_sched && node < 0; i++) {
        const qw_node_rt *n = &g->nodes[g->sched[i]];
        if (QW_OP_IS(&n->n, QW_OP_Gather) && n->in[0] >= 0 && g->values[n->in[0]].wid >= 0 &&
            !g->values[n->in[0]].owned_const && n->in[1] >= 0 && g->values[n->in[1]].kind == V_INPUT)
            node = g->sched[i];
    }
    CHECK(node >= 0, "%s: no Gather of a weight by a graph input", name);
    if (node >= 0) {
        qw_node_rt *n = &g->nodes[node];
        int wid = g->values[n->in[0]].wid;
        uint64_t nbytes = s.m->inits[wid].nbytes, before = qw_weights_resident_bytes(g->w);
        g->sched[0] = node;
        g->n_sched = 1;
        for (int i = 0; i < g->n_in; i++) g->values[g->in_vals[i]].n_uses = 0; /* none set, none checked */
        qw_status st = qw_graph_run(g, NULL, NULL, &err);
        CHECK(st == QW_E_INTERNAL && strstr(err.msg, "has no data"), "run: status %d '%s'", st, err.msg);
        /* a weight still acquired cannot be dropped */
        qw_weights_drop(g->w, wid);
        uint64_t after = qw_weights_resident_bytes(g->w);
        CHECK(before - after == nbytes, "the failed run kept '%s' acquired (%llu of %llu bytes dropped)",
              s.m->inits[wid].name, (unsigned long long)(before - after), (unsigned long long)nbytes);
    }
    close_session(&s);
}

int main(void) {
    qw_pool *pool = qw_pool_new(2);
    test_op_ids();
    test_rmsnorm_bias(pool);
    test_kv_fp16(pool);
    test_lmhead_on_demand(pool);
    test_disabled_equal(pool);
    test_run_error_release(pool);
    qw_pool_free(pool);
    if (!checked) printf("skip: no generated models under %s (tools/gen/gen_test_models.sh)\n", models_dir());
    return qw_test_summary("test_passes");
}
