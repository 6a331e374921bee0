/* qw_pass_fp16_policy.c - where fp16 values stay in fp32 between ops, as onnxruntime's CPU provider runs them. */
#include <stdlib.h>
#include <string.h>
#include "qw_graph_impl.h"
#include "qw_passes.h"

/* onnxruntime's CPU kernels exist in fp16 for these ops only (data movement, Cast, the quantized and fused
 * contrib ops); the others run in fp32 between Cast nodes that onnxruntime inserts, and its cast-pair removal
 * keeps values flowing from one fp32-only op to another unrounded. */
static int f16_native(const qw_op_def *d) {
    static const int native[] = {
        QW_OP_Cast, QW_OP_CastLike, QW_OP_Gather, QW_OP_GatherElements, QW_OP_Reshape, QW_OP_Transpose, QW_OP_Slice,
        QW_OP_Concat, QW_OP_Squeeze, QW_OP_Unsqueeze, QW_OP_Expand, QW_OP_Identity, QW_OP_Shape, QW_OP_Size,
        QW_OP_Split, QW_OP_Tile, QW_OP_ConstantOfShape, QW_OP_Constant, QW_OP_ScatterND, QW_OP_GatherBlockQuantized,
        QW_OP_GroupQueryAttention, QW_OP_MultiHeadAttention, QW_OP_RotaryEmbedding,
        QW_OP_SkipSimplifiedLayerNormalization, QW_OP_SimplifiedLayerNormalization, QW_OP_LayerNormalization,
        /* byte-moving ops here, so that their outputs are never planned in fp32 */
        QW_OP_Where, QW_OP_Trilu, QW_OP_Range, QW_OP_Max, QW_OP_Min, QW_OP_CumSum};
    for (size_t i = 0; i < sizeof native / sizeof native[0]; i++)
        if (d->id == native[i]) return 1;
    return 0;
}

/* MatMulNBits runs in fp16 when its input arrives in fp16 (after an fp16 kernel) and in fp32 when the value is
 * still in fp32 (onnxruntime propagates fp32 through it, converting its scales): decided per node below. */
static int adaptive_op(const qw_op_def *d) { return d->id == QW_OP_MatMulNBits; }

void qw_pass_fp16_policy(qw_graph *g) {
    qw_graph_count_uses(g);
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
                if (v < 0 || g->values[v].dtype != QW_DT_F16 || g->values[v].is_output || !g->values[v].n_uses)
                    continue;
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
            if (nat != n->native) {
                n->native = nat;
                changed = 1;
            }
        }
        if (!changed) break;
    }
}
