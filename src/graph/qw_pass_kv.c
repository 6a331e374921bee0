/* qw_pass_kv.c - the KV cache pattern matcher (qw_graph_kv_fuse, qw_graph.h): Concat(past, new) -> appends into
 * the decoder's cache, the decomposed attention over the presents -> one fused node (ops in qw_ops_kv.c). */
#include <stdlib.h>
#include <string.h>
#include "qw_graph_impl.h"
#include "qw_passes.h"

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
static int kv_is(const qw_node_rt *n, int op) { return QW_OP_IS(&n->n, op); }

/* Shape(x) whose outputs only feed Gather(axis 0) of a constant index other than 1: the same on x's source,
 * which differs from x (repeated heads) in axis 1 only */
static int kv_shape_ok(qw_graph *g, const qw_node_rt *sh) {
    if (qw_attr(sh->n.on, "start") || qw_attr(sh->n.on, "end") || sh->out[0] < 0 || g->values[sh->out[0]].is_output)
        return 0;
    int list[16], n = kv_consumers(g, sh->out[0], list, 15);
    if (n > 15) return 0;
    for (int i = 0; i < n; i++) {
        const qw_node_rt *ga = &g->nodes[list[i]];
        if (!kv_is(ga, QW_OP_Gather) || ga->in[0] != sh->out[0] || qw_attr_i(ga->n.on, "axis", 0) != 0 ||
            !qw_graph_is_const(g, ga->in[1]) || g->values[ga->in[1]].t.numel != 1 || !g->values[ga->in[1]].t.data)
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
        if (kv_is(c, QW_OP_Shape)) continue;
        if (kv_is(c, QW_OP_Cast) && c->out[0] >= 0 && g->values[c->out[0]].is_output) {
            int l2[1];
            if (kv_consumers(g, c->out[0], l2, 0) == 0) continue;
            return 0;
        }
        if (kv_is(c, QW_OP_Unsqueeze) && un < 0) {
            un = list[i];
            continue;
        }
        if (kv_is(c, QW_OP_MatMul) && un < 0) {
            un = -2;
            continue;
        } /* no repeat (heads == kv_heads) */
        return 0;
    }
    *n_shapes = 0;
    if (un == -2) {
        *fed = pres;
        return 1;
    }
    if (un < 0) return 0;
    qw_node_rt *u = &g->nodes[un];
    int64_t ax = -100;
    const qw_onnx_attr *axes = qw_attr(u->n.on, "axes");
    if (axes && axes->n == 1)
        ax = axes->ints[0];
    else if (u->n.n_in > 1 && qw_graph_is_const(g, u->in[1]) && g->values[u->in[1]].t.numel == 1 &&
             g->values[u->in[1]].t.data)
        ax = qw_elem_get_i(g->values[u->in[1]].t.data, g->values[u->in[1]].t.dtype, 0);
    if (ax != 2 && ax != -3) return 0;
    int l1[2];
    if (u->out[0] < 0 || kv_consumers(g, u->out[0], l1, 1) != 1) return 0;
    qw_node_rt *e = &g->nodes[l1[0]];
    if (!kv_is(e, QW_OP_Expand) || e->in[0] != u->out[0] || e->out[0] < 0 || kv_consumers(g, e->out[0], l1, 1) != 1)
        return 0;
    qw_node_rt *r = &g->nodes[l1[0]];
    if (!kv_is(r, QW_OP_Reshape) || r->in[0] != e->out[0] || r->out[0] < 0) return 0;
    int f = r->out[0];
    if (g->values[u->out[0]].is_output || g->values[e->out[0]].is_output || g->values[f].is_output) return 0;
    n = kv_consumers(g, f, list, 63);
    if (n > 63) return 0;
    for (int i = 0; i < n; i++) {
        qw_node_rt *c = &g->nodes[list[i]];
        if (kv_is(c, QW_OP_MatMul)) continue;
        if (kv_is(c, QW_OP_Shape) && kv_shape_ok(g, c) && *n_shapes < 8) {
            shapes[(*n_shapes)++] = list[i];
            continue;
        }
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
    if (kv_is(c, QW_OP_Cast) && c->out[0] >= 0 && !g->values[c->out[0]].is_output) {
        a = c->out[0];
        if (kv_consumers(g, a, l, 1) != 1) return -1;
        c = &g->nodes[l[0]];
    }
    if (!kv_is(c, QW_OP_Concat) || c->n.n_in != 2 || c->in[0] != a || c->out[0] < 0) return -1;
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
        n->n.in_const[k] = k < n_in && qw_graph_is_const(g, in[k]) ? &g->values[in[k]].t : NULL;
        n->n.in_weight[k] = k < n_in && in[k] >= 0 ? g->values[in[k]].wid : -1;
        n->n.in_skip[k] = 0;
    }
    n->n.trans_b = 0;
    n->prof = qw_graph_prof_slot(g, op);
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
        if (kv_is(&g->nodes[l[i]], QW_OP_MatMul)) {
            if (mm1 >= 0) return 0;
            mm1 = l[i];
        }
    if (mm1 < 0) return 0;
    qw_node_rt *M1 = &g->nodes[mm1];
    if (M1->in[1] != fk || M1->in[0] == fk || !M1->n.trans_b || M1->out[0] < 0 || g->values[M1->out[0]].is_output)
        return 0;
    int q = M1->in[0];
    if (kv_consumers(g, M1->out[0], l, 1) != 1) return 0;
    qw_node_rt *DV = &g->nodes[l[0]];
    int div = kv_is(DV, QW_OP_Div);
    if (!div && !kv_is(DV, QW_OP_Mul)) return 0;
    int ci = div ? 1 : (DV->in[0] == M1->out[0] ? 1 : 0);
    double cval;
    if (DV->in[1 - ci] != M1->out[0] || !qw_graph_const_scalar(g, DV->in[ci], &cval)) return 0;
    if (DV->out[0] < 0 || g->values[DV->out[0]].is_output || kv_consumers(g, DV->out[0], l, 1) != 1) return 0;
    qw_node_rt *AD = &g->nodes[l[0]], *SM = AD;
    int mask = -1;
    if (kv_is(AD, QW_OP_Add)) {
        mask = AD->in[0] == DV->out[0] ? AD->in[1] : AD->in[0];
        if (AD->out[0] < 0 || g->values[AD->out[0]].is_output || kv_consumers(g, AD->out[0], l, 1) != 1) return 0;
        SM = &g->nodes[l[0]];
        if (mask < 0 || mask == DV->out[0] || !qw_dtype_is_float(g->values[mask].dtype)) return 0;
    } else {
        AD = NULL;
    }
    if (!kv_is(SM, QW_OP_Softmax) || SM->out[0] < 0 || g->values[SM->out[0]].is_output) return 0;
    int64_t sax = qw_attr_i(SM->n.on, "axis", SM->n.opset >= 13 ? -1 : 1);
    if (sax != -1 && sax != 3) return 0;
    if (kv_consumers(g, SM->out[0], l, 1) != 1) return 0;
    int mm2 = l[0];
    qw_node_rt *M2 = &g->nodes[mm2];
    if (!kv_is(M2, QW_OP_MatMul) || M2->in[0] != SM->out[0] || M2->in[1] != fv || M2->n.trans_b || M2->out[0] < 0)
        return 0;
    if (fv != pv && kv_consumers(g, fv, l, 15) != 1 + nshv) return 0;
    if (fk != pk && kv_consumers(g, fk, l, 15) != 1 + nshk) return 0;
    qw_kv_append_state *sk = malloc(sizeof *sk), *sv = malloc(sizeof *sv);
    qw_kv_attn_state *sa = malloc(sizeof *sa);
    if (!sk || !sv || !sa) {
        free(sk);
        free(sv);
        free(sa);
        return 0;
    }
    sk->kc = kc;
    sk->which = 0;
    sv->kc = kc;
    sv->which = 1;
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
        if (v == pk || v == pv || (kv_is(p, QW_OP_Cast) && (p->in[0] == pk || p->in[0] == pv))) x->is_output = 0;
    }
    g->n_kv_fused++;
    return 1;
}

void qw_graph_kv_commit(qw_graph *g) {
    qw_graph_dead_code(g);
    if (!g->opts.f16_round_all)
        qw_pass_fp16_policy(g);
    else
        qw_graph_count_uses(g);
}
