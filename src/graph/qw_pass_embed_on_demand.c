/* qw_pass_embed_on_demand.c - the tied embedding that the int8 lm_head replaces is left in the fs
 * (qw_graph_opts.embedding_on_demand): Gather and the lm_head read its rows. */
#include <stdlib.h>
#include <string.h>
#include "qw_graph_impl.h"
#include "qw_passes.h"

/* Before the weights load: a tied embedding that the int8 lm_head will replace in its product, read elsewhere
 * only by Gather (rows), is not loaded at all when embedding_on_demand is set (qw_weights_set_on_demand): the
 * Gather and the lm_head read the rows they need from the fs. Any other reader keeps it resident. */
qw_status qw_pass_embed_on_demand(qw_graph *g, qw_error *err) {
    if (!g->opts.embedding_on_demand) return QW_OK;
    for (int s = 0; s < g->n_sched; s++) {
        qw_node_rt *n = &g->nodes[g->sched[s]];
        int w = n->n.n_in == 2 ? n->in[1] : -1;
        if (!QW_OP_IS(&n->n, QW_OP_MatMul) || !n->n.trans_b || !qw_graph_is_const(g, w) ||
            qw_graph_is_const(g, n->in[0]) || g->values[w].wid < 0 || g->values[w].is_output)
            continue;
        const qw_tensor *t = &g->values[w].t;
        if (!qw_op_lmhead_eligible(&g->opts, t->dtype, t->ndim, t->dims)) continue;
        int ok = 1;
        for (int s2 = 0; s2 < g->n_sched && ok; s2++) {
            qw_node_rt *c = &g->nodes[g->sched[s2]];
            for (int k = 0; k < c->n.n_in && ok; k++) {
                if (c->in[k] != w) continue;
                int gather = QW_OP_IS(&c->n, QW_OP_Gather) && k == 0 && c->n.n_in == 2 &&
                             !qw_graph_is_const(g, c->in[1]);
                int lm = QW_OP_IS(&c->n, QW_OP_MatMul) && k == 1 && c->n.trans_b && !qw_graph_is_const(g, c->in[0]);
                ok = gather || lm;
            }
        }
        if (ok) {
            qw_status st = qw_weights_set_on_demand(g->w, g->values[w].wid, err);
            if (st != QW_OK) return st;
        }
    }
    return QW_OK;
}
