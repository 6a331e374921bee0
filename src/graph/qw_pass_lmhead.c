/* qw_pass_lmhead.c - the tied lm_head -> the int8 op of qw_ops_lmhead.c (qw_pass_lmhead), and the logits computed
 * for the last position(s) only (qw_graph_logits_last_only, qw_graph.h). */
#include <stdlib.h>
#include <string.h>
#include "qw_graph_impl.h"
#include "qw_passes.h"

/* The tied lm_head (a MatMul on a large constant trans_b weight) -> the int8 op of qw_ops_lmhead.c, unless
 * exact_lm_head is set or a memory cap is too small for its rows (qw_op_lmhead_eligible). */
qw_status qw_pass_lmhead(qw_graph *g, qw_error *err) {
    for (int s = 0; s < g->n_sched; s++) {
        qw_node_rt *n = &g->nodes[g->sched[s]];
        if (!QW_OP_IS(&n->n, QW_OP_MatMul) || !n->n.trans_b) continue;
        int sel = 0;
        qw_status st = qw_op_lmhead_select(&n->n, g->pool, &sel, err);
        if (st != QW_OK) return st;
        if (sel) n->prof = qw_graph_prof_slot(g, &qw_op_lmhead);
    }
    return QW_OK;
}

/* Output i back through single-use Cast/Identity nodes to the MatMul (or int8 lm_head) producing it: that node
 * reads only the last row of a (1, S, K) A (qw_op_last_row), so the output is (1, 1, N). */
int qw_graph_logits_last_only(qw_graph *g, int i) {
    if (i < 0 || i >= g->n_out) return 0;
    const qw_onnx_value_info *vi = g->out_info[i];
    if (vi->has_shape && (vi->ndim != 3 || (vi->dims[0].value > 0 && vi->dims[0].value != 1))) return 0;
    qw_graph_count_uses(g);
    int v = g->out_vals[i];
    if (v < 0 || g->values[v].kind != V_INTER || g->values[v].n_uses) return 0;
    for (int depth = 0; depth < 8; depth++) {
        if (g->values[v].producer < 0) return 0;
        qw_node_rt *n = &g->nodes[g->values[v].producer];
        if (!n->n.op || n->n.n_in < 1 || n->in[0] < 0) return 0;
        if ((QW_OP_IS(&n->n, QW_OP_MatMul) || QW_OP_IS(&n->n, QW_OP_LmHeadInt8)) && n->n.n_in == 2 && n->in[1] >= 0 &&
            !qw_graph_is_const(g, n->in[0]) && (n->n.trans_b || (n->n.in_const[1] && n->n.in_const[1]->ndim == 2))) {
            n->n.last_row_only = 1;
            return 1;
        }
        if (!QW_OP_IS(&n->n, QW_OP_Cast) && !QW_OP_IS(&n->n, QW_OP_Identity)) return 0;
        v = n->in[0];
        if (g->values[v].kind != V_INTER || g->values[v].n_uses != 1 || g->values[v].is_output) return 0;
    }
    return 0;
}
