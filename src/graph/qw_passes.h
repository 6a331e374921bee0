/* qw_passes.h - the executor's load-time rewrites, one file each (src/graph/qw_pass_*.c), each a function over the
 * graph (qw_graph_impl.h). Internal. qw_graph_build runs them in this fixed order:
 *   1. qw_pass_transposed_b     before the op checks, so MatMul checks see trans_b and the constant W
 *   2. qw_pass_embed_on_demand  before any weight loads (embedding_on_demand): the embedding is never read whole
 *   3.   (op checks and constant folding, qw_graph.c)
 *   4. qw_pass_lmhead           on checked nodes: the tied lm_head MatMul -> the int8 lm_head (not exact_lm_head)
 *   5. qw_pass_rmsnorm          decomposed RMSNorm -> one node      } not with no_fuse
 *   6. qw_pass_bias             MatMulNBits + Add(bias) -> one node  }
 *   7.   (dead code, qw_graph.c)
 *   8. qw_pass_fp16_policy      last: where fp16 values stay fp32, on the final schedule (not with f16_round_all)
 * After the build the decoder runs the public rewrites of qw_graph.h: qw_graph_kv_fuse per layer (qw_pass_kv.c),
 * then qw_graph_kv_commit (dead code and step 8 again), then qw_graph_logits_last_only (qw_pass_lmhead.c). */
#ifndef QW_PASSES_H
#define QW_PASSES_H

#include "qw_graph_impl.h"

/* MatMul(x, Transpose(B)) with the last two axes swapped -> MatMul with trans_b reading B (no transposed copy) */
void qw_pass_transposed_b(qw_graph *g);
/* embedding_on_demand: the tied embedding that the int8 lm_head will replace, read elsewhere by Gather only,
 * is marked read on demand (qw_weights_set_on_demand) */
qw_status qw_pass_embed_on_demand(qw_graph *g, qw_error *err);
/* the tied lm_head MatMul -> qw_op_lmhead (its int8 rows made or read from a derived file now) */
qw_status qw_pass_lmhead(qw_graph *g, qw_error *err);
/* Pow/ReduceMean/Add/Sqrt/Div|Reciprocal/Mul/Mul(w) -> qw_op_fused_rmsnorm; returns the nodes fused */
int qw_pass_rmsnorm(qw_graph *g);
/* MatMulNBits -> Add(const bias) -> MatMulNBits with the bias; returns the Adds removed */
int qw_pass_bias(qw_graph *g);
/* onnxruntime's CPU fp16 policy: sets qw_node_rt.native and qw_value.f32_store; counts uses */
void qw_pass_fp16_policy(qw_graph *g);

#endif /* QW_PASSES_H */
