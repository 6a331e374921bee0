/* qw_pass_rmsnorm.c - the decomposed RMSNorm fused to one fp32 node (onnxruntime's SimplifiedLayerNormFusion). */
#include <stdlib.h>
#include <string.h>
#include "qw_graph_impl.h"
#include "qw_passes.h"

int qw_pass_rmsnorm(qw_graph *g) {
    int fused = 0;
    for (int s = 0; s < g->n_sched; s++) {
        qw_node_rt *m1 = &g->nodes[g->sched[s]];
        if (!QW_OP_IS(&m1->n, QW_OP_Mul) || m1->n.n_in != 2 || m1->n.state) continue;
        for (int wi = 0; wi < 2; wi++) {
            int w = m1->in[wi];
            if (!qw_graph_is_const(g, w) || g->values[w].t.ndim != 1) continue;
            qw_node_rt *m0 = qw_graph_producer(g, m1->in[1 - wi], QW_OP_Mul);
            if (!m0) continue;
            for (int xi = 0; xi < 2; xi++) {
                int x = m0->in[xi];
                qw_node_rt *dv = qw_graph_producer(g, m0->in[1 - xi], QW_OP_Div), *sq = NULL;
                double one;
                if (dv && qw_graph_const_scalar(g, dv->in[0], &one) && one == 1.0)
                    sq = qw_graph_producer(g, dv->in[1], QW_OP_Sqrt);
                else if ((dv = qw_graph_producer(g, m0->in[1 - xi], QW_OP_Reciprocal)))
                    sq = qw_graph_producer(g, dv->in[0], QW_OP_Sqrt);
                if (!sq) continue;
                qw_node_rt *ad = qw_graph_producer(g, sq->in[0], QW_OP_Add);
                if (!ad) continue;
                double eps;
                int ri;
                if (qw_graph_const_scalar(g, ad->in[1], &eps))
                    ri = 0;
                else if (qw_graph_const_scalar(g, ad->in[0], &eps))
                    ri = 1;
                else
                    continue;
                qw_node_rt *rm = qw_graph_producer(g, ad->in[ri], QW_OP_ReduceMean);
                if (!rm || qw_attr_i(rm->n.on, "keepdims", 1) != 1) continue;
                const qw_onnx_attr *ax = qw_attr(rm->n.on, "axes");
                int axis_ok = ax && ax->n == 1 && ax->ints[0] == -1;
                if (rm->n.n_in > 1 && qw_graph_is_const(g, rm->in[1]) && g->values[rm->in[1]].t.numel == 1)
                    axis_ok = qw_elem_get_i(g->values[rm->in[1]].t.data, g->values[rm->in[1]].t.dtype, 0) == -1;
                if (!axis_ok) continue;
                qw_node_rt *pw = qw_graph_producer(g, rm->in[0], QW_OP_Pow);
                double two;
                if (!pw || pw->in[0] != x || !qw_graph_const_scalar(g, pw->in[1], &two) || two != 2.0) continue;
                float *st = malloc(sizeof *st);
                if (!st) return fused;
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
                m1->prof = qw_graph_prof_slot(g, &qw_op_fused_rmsnorm);
                fused++;
                xi = 2;
                wi = 2;
            }
        }
    }
    return fused;
}
