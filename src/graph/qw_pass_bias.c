/* qw_pass_bias.c - MatMulNBits -> Add(const bias) fused into the MatMulNBits node (onnxruntime's bias fusion). */
#include <stdlib.h>
#include <string.h>
#include "qw_graph_impl.h"
#include "qw_passes.h"

/* MatMulNBits -> Add(const bias): the bias moves into the MatMulNBits node (onnxruntime's MatMulNBits bias
 * fusion), so the sum is rounded once. */
int qw_pass_bias(qw_graph *g) {
    qw_graph_count_uses(g);
    int w = 0, removed = 0;
    for (int s = 0; s < g->n_sched; s++) {
        qw_node_rt *a = &g->nodes[g->sched[s]];
        int fused = 0;
        if (QW_OP_IS(&a->n, QW_OP_Add) && a->n.n_in == 2 && a->out[0] >= 0) {
            for (int k = 0; k < 2 && !fused; k++) {
                int v = a->in[k];
                if (v < 0 || g->values[v].kind != V_INTER || g->values[v].producer < 0 || g->values[v].n_uses != 1 ||
                    g->values[v].is_output)
                    continue;
                qw_node_rt *mm = &g->nodes[g->values[v].producer];
                if (!QW_OP_IS(&mm->n, QW_OP_MatMulNBits) || !qw_graph_is_const(g, a->in[1 - k])) continue;
                if (g->values[a->in[1 - k]].dtype != g->values[v].dtype) continue;
                if (!qw_op_nbits_fuse_bias(&mm->n, &g->values[a->in[1 - k]].t)) continue;
                mm->out[0] = a->out[0];
                g->values[a->out[0]].producer = g->values[v].producer;
                fused = 1;
            }
        }
        if (!fused)
            g->sched[w++] = g->sched[s];
        else
            removed++;
    }
    g->n_sched = w;
    return removed;
}
