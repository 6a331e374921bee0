/* qw_pass_transpose.c - MatMul(x, Transpose(B)) -> MatMul with trans_b on B (no transposed copy). */
#include <stdlib.h>
#include <string.h>
#include "qw_graph_impl.h"
#include "qw_passes.h"

/* MatMul(x, Transpose(B)) where the Transpose swaps the last two axes (perm [1,0] on a constant W, or
 * [0,..,r-1,r-2] on any B, e.g. the keys of an attention): the MatMul reads B with trans_b, no transposed copy. */
void qw_pass_transposed_b(qw_graph *g) {
    for (int s = 0; s < g->n_sched; s++) {
        qw_node_rt *t = &g->nodes[g->sched[s]];
        if (!QW_OP_IS(&t->n, QW_OP_Transpose) || t->n.n_in != 1 || t->out[0] < 0) continue;
        int w = t->in[0];
        const qw_onnx_attr *perm = qw_attr(t->n.on, "perm");
        if (perm) {
            int r = (int)perm->n, ok = r >= 2;
            for (int i = 0; i < r - 2 && ok; i++) ok = perm->ints[i] == i;
            if (!ok || perm->ints[r - 2] != r - 1 || perm->ints[r - 1] != r - 2) continue;
        } else if (!qw_graph_is_const(g, w) || g->values[w].t.ndim != 2) {
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
                    if (k != 1 || !QW_OP_IS(&c->n, QW_OP_MatMul) || c->n.trans_b) ok = 0;
                }
        }
        if (!ok || !uses) continue;
        for (int s2 = 0; s2 < g->n_sched; s2++) {
            qw_node_rt *c = &g->nodes[g->sched[s2]];
            if (c->n.n_in > 1 && c->in[1] == tv) {
                c->in[1] = w;
                c->n.trans_b = 1;
            }
        }
    }
}
