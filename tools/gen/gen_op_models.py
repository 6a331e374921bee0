#!/usr/bin/python3
"""Single-op ONNX models with random inputs for tests/test_ops.c (run with Debian's /usr/bin/python3 + onnx).

    /usr/bin/python3 tools/gen/gen_op_models.py OUT_DIR

For each case writes OUT_DIR/<case>.onnx and OUT_DIR/<case>.in (the graph inputs); tools/ref/op_ref.mjs then
writes OUT_DIR/<case>.out (onnxruntime's outputs). Tensor file format ("QWT1"), little-endian:
    magic "QWT1", u32 count, then per tensor: u32 name_len, name bytes, i32 dtype (ONNX TensorProto),
    i32 ndim, i64 dims[ndim], raw element bytes (bool as 1 byte, fp16 as IEEE half).
Every case is deterministic (seeded)."""
import os
import struct
import sys

import numpy as np
import onnx
from onnx import TensorProto as TP, helper, numpy_helper

OUT = sys.argv[1] if len(sys.argv) > 1 else "build/ops"
rng = np.random.default_rng(1234)
NP2TP = {np.float32: TP.FLOAT, np.float16: TP.FLOAT16, np.int64: TP.INT64, np.int32: TP.INT32,
         np.int8: TP.INT8, np.uint8: TP.UINT8, np.bool_: TP.BOOL}


def tp_of(a):
    return NP2TP[a.dtype.type]


def write_tensors(path, named):
    with open(path, "wb") as f:
        f.write(b"QWT1" + struct.pack("<I", len(named)))
        for name, a in named:
            a = np.ascontiguousarray(a)
            nb = name.encode()
            f.write(struct.pack("<I", len(nb)) + nb + struct.pack("<ii", tp_of(a), a.ndim))
            f.write(struct.pack("<%dq" % a.ndim, *a.shape))
            f.write(a.tobytes())


cases = []


def case(name, op, inputs, n_out=1, attrs=None, domain="", opset=18, inits=None, out_types=None):
    """inputs: list of (name, array or None (omitted)); inits: dict name->array (constant inputs)."""
    inits = inits or {}
    in_names = [n if (a is not None or n in inits) else "" for n, a in inputs]
    node = helper.make_node(op, in_names, ["y%d" % i for i in range(n_out)], domain=domain or None, **(attrs or {}))
    g_in = [helper.make_tensor_value_info(n, tp_of(a), None) for n, a in inputs if a is not None and n not in inits]
    first = [a for n, a in inputs if a is not None]
    t0 = tp_of(first[0]) if first else TP.FLOAT
    if op in ("Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual", "And", "Or", "Not"):
        t0 = TP.BOOL
    elif op in ("Shape", "Size"):
        t0 = TP.INT64
    elif op == "Cast":
        t0 = attrs["to"]
    elif op == "CastLike":
        t0 = tp_of(first[1])
    elif op == "ConstantOfShape":
        t0 = attrs["value"].data_type
    elif op == "Where":
        t0 = tp_of(first[1])
    elif op == "GatherBlockQuantized":
        t0 = tp_of(inputs[2][1])
    outs = [helper.make_tensor_value_info("y%d" % i, (out_types[i] if out_types else t0), None)
            for i in range(n_out)]
    g = helper.make_graph([node], name, g_in, outs,
                          initializer=[numpy_helper.from_array(v, k) for k, v in inits.items()])
    ops = [helper.make_opsetid("", opset)]
    if domain:
        ops.append(helper.make_opsetid(domain, 1))
    m = helper.make_model(g, opset_imports=ops, producer_name="qwasm-gen-op-models")
    m.ir_version = 8
    onnx.save(m, os.path.join(OUT, name + ".onnx"))
    write_tensors(os.path.join(OUT, name + ".in"), [(n, a) for n, a in inputs if a is not None and n not in inits])
    cases.append(name)


def graph_case(name, nodes, inputs, outputs, inits=None, opset=18):
    """A small multi-node model (patterns the executor rewrites): inputs [(name, array)], outputs [(name, TP)]."""
    inits = inits or {}
    g_in = [helper.make_tensor_value_info(n, tp_of(a), None) for n, a in inputs if n not in inits]
    g_out = [helper.make_tensor_value_info(n, t, None) for n, t in outputs]
    g = helper.make_graph(nodes, name, g_in, g_out, initializer=[numpy_helper.from_array(v, k) for k, v in inits.items()])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], producer_name="qwasm-gen-op-models")
    m.ir_version = 8
    onnx.save(m, os.path.join(OUT, name + ".onnx"))
    write_tensors(os.path.join(OUT, name + ".in"), [(n, a) for n, a in inputs if n not in inits])
    cases.append(name)


def f32(*s):
    return rng.standard_normal(s).astype(np.float32)


def f16(*s):
    return rng.standard_normal(s).astype(np.float16)


def i64(lo, hi, *s):
    return rng.integers(lo, hi, s).astype(np.int64)


def main():
    os.makedirs(OUT, exist_ok=True)
    # ---- elementwise binary, broadcasting ------------------------------------------------------------
    for op in ["Add", "Sub", "Mul", "Div", "Max", "Min"]:
        case(f"{op}_bcast_f32", op, [("a", f32(2, 3, 4)), ("b", f32(3, 1))])
        case(f"{op}_bcast2_f32", op, [("a", f32(1, 4)), ("b", f32(3, 1))])
        case(f"{op}_i64", op, [("a", i64(-50, 50, 2, 3)), ("b", i64(1, 7, 3))])
    for op in ["Add", "Mul", "Sub", "Div"]:
        case(f"{op}_f16", op, [("a", f16(2, 5, 8)), ("b", f16(8))])
    case("Max_variadic", "Max", [("a", f32(2, 3)), ("b", f32(3)), ("c", f32(2, 1))])
    case("Pow_f32", "Pow", [("a", np.abs(f32(3, 4)) + 0.1), ("b", f32(4))])
    case("Pow_sq_f32", "Pow", [("a", f32(3, 4)), ("b", np.array(2.0, np.float32))], inits={"b": np.array(2.0, np.float32)})
    for op in ["Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual"]:
        a = f32(3, 4)
        b = a.copy()[0]
        b[1] += 1
        case(f"{op}_f32", op, [("a", a), ("b", b)])
        case(f"{op}_i64", op, [("a", i64(0, 4, 2, 3)), ("b", i64(0, 4, 1, 3))])
    for op in ["And", "Or"]:
        case(f"{op}_bool", op, [("a", rng.random((2, 3)) > 0.5), ("b", rng.random((3,)) > 0.5)])
    case("Where_bcast", "Where", [("c", rng.random((2, 1, 4)) > 0.5), ("x", f32(3, 4)), ("y", f32(2, 1, 1))])
    case("Where_f16", "Where", [("c", rng.random((4,)) > 0.5), ("x", f16(2, 4)), ("y", f16(1))])
    case("Where_i64", "Where", [("c", rng.random((3,)) > 0.5), ("x", i64(0, 9, 3)), ("y", i64(-9, 0, 1))])
    # ---- unary ---------------------------------------------------------------------------------------
    pos = np.abs(f32(3, 5)) + 0.05
    for op in ["Sqrt", "Reciprocal", "Log"]:
        case(f"{op}_f32", op, [("x", pos)])
    for op in ["Neg", "Abs", "Exp", "Tanh", "Sigmoid", "Erf", "Cos", "Sin"]:
        case(f"{op}_f32", op, [("x", f32(3, 5) * 2)])
    for op in ["Sigmoid", "Neg", "Sqrt", "Exp"]:
        case(f"{op}_f16", op, [("x", np.abs(f16(4, 6)))])
    case("Neg_i64", "Neg", [("x", i64(-9, 9, 5))])
    case("Not_bool", "Not", [("x", rng.random((2, 3)) > 0.5)])
    # ---- cast ------------------------------------------------------------------------------------------
    case("Cast_f32_f16", "Cast", [("x", f32(4, 5) * 100)], attrs={"to": TP.FLOAT16})
    case("Cast_f16_f32", "Cast", [("x", f16(4, 5))], attrs={"to": TP.FLOAT})
    case("Cast_i64_f32", "Cast", [("x", i64(-1000, 1000, 6))], attrs={"to": TP.FLOAT})
    case("Cast_f32_i64", "Cast", [("x", f32(6) * 10)], attrs={"to": TP.INT64})
    case("Cast_i64_bool", "Cast", [("x", i64(-2, 2, 6))], attrs={"to": TP.BOOL})
    case("Cast_bool_f16", "Cast", [("x", rng.random(6) > 0.5)], attrs={"to": TP.FLOAT16})
    case("Cast_i64_i32", "Cast", [("x", i64(-99, 99, 6))], attrs={"to": TP.INT32})
    case("CastLike_f16", "CastLike", [("x", f32(3, 3)), ("t", f16(1))])
    # ---- shape ops ---------------------------------------------------------------------------------------
    case("ConstantOfShape", "ConstantOfShape", [("s", np.array([2, 3], np.int64))],
         attrs={"value": numpy_helper.from_array(np.array([1.5], np.float16))})
    case("ConstantOfShape_i64", "ConstantOfShape", [("s", np.array([4], np.int64))],
         attrs={"value": numpy_helper.from_array(np.array([-7], np.int64))})
    case("Shape", "Shape", [("x", f32(2, 3, 4))])
    case("Shape_start_end", "Shape", [("x", f32(2, 3, 4, 5))], attrs={"start": 1, "end": -1})
    case("Size", "Size", [("x", f32(2, 3, 4))])
    case("Gather_axis0", "Gather", [("x", f32(5, 4)), ("i", np.array([[0, 4], [-1, 2]], np.int64))])
    case("Gather_axis1_scalar", "Gather", [("x", f16(3, 6, 2)), ("i", np.array(-2, np.int64))], attrs={"axis": 1})
    case("Gather_i32", "Gather", [("x", i64(0, 9, 7)), ("i", np.array([3, 1], np.int32))])
    case("GatherElements", "GatherElements", [("x", f32(3, 4)), ("i", i64(-3, 3, 2, 4))], attrs={"axis": 0})
    case("Reshape", "Reshape", [("x", f32(2, 3, 4)), ("s", np.array([0, -1], np.int64))])
    case("Reshape_allowzero", "Reshape", [("x", f32(0, 3)), ("s", np.array([3, 0], np.int64))], attrs={"allowzero": 1})
    case("Transpose_0213", "Transpose", [("x", f32(2, 3, 4, 5))], attrs={"perm": [0, 2, 1, 3]})
    case("Transpose_default", "Transpose", [("x", f16(3, 4, 2))])
    case("Squeeze_13", "Squeeze", [("x", f32(1, 3, 1, 2)), ("a", np.array([-2], np.int64))], opset=13)
    case("Squeeze_11", "Squeeze", [("x", f32(1, 3, 1, 2))], attrs={"axes": [0]}, opset=11)
    case("Squeeze_all", "Squeeze", [("x", f32(1, 3, 1, 2))], opset=13)
    case("Unsqueeze_13", "Unsqueeze", [("x", f32(3, 2)), ("a", np.array([0, -1], np.int64))], opset=13)
    case("Unsqueeze_11", "Unsqueeze", [("x", i64(0, 5, 3))], attrs={"axes": [1]}, opset=11)
    case("Concat_neg", "Concat", [("a", f32(2, 3)), ("b", f32(2, 1)), ("c", f32(2, 0))], attrs={"axis": -1})
    case("Concat_i64", "Concat", [("a", i64(0, 9, 1)), ("b", i64(0, 9, 2))], attrs={"axis": 0})
    case("Concat_f16_kv", "Concat", [("a", f16(1, 2, 3, 4)), ("b", f16(1, 2, 1, 4))], attrs={"axis": 2})
    case("Split_11", "Split", [("x", f32(4, 6))], n_out=2, attrs={"axis": 1, "split": [2, 4]}, opset=11)
    case("Split_13", "Split", [("x", f32(4, 6)), ("s", np.array([1, 3], np.int64))], n_out=2, attrs={"axis": 0}, opset=13)
    case("Split_18_num", "Split", [("x", f32(5, 2))], n_out=3, attrs={"axis": 0, "num_outputs": 3}, opset=18)
    case("Slice", "Slice", [("x", f32(4, 5, 6)), ("s", np.array([1, -4], np.int64)), ("e", np.array([3, 1000], np.int64)),
                            ("a", np.array([0, 2], np.int64))])
    case("Slice_step", "Slice", [("x", f32(6, 7)), ("s", np.array([-1, 0], np.int64)),
                                 ("e", np.array([-1000, 7], np.int64)), ("a", np.array([0, 1], np.int64)),
                                 ("p", np.array([-2, 3], np.int64))])
    case("Slice_i64_max", "Slice", [("x", i64(0, 9, 4)), ("s", np.array([-1], np.int64)),
                                    ("e", np.array([9223372036854775807], np.int64)), ("a", np.array([0], np.int64))])
    case("Expand", "Expand", [("x", f32(3, 1)), ("s", np.array([2, 1, 4], np.int64))])
    case("Expand_f16", "Expand", [("x", f16(1, 4)), ("s", np.array([3, 1], np.int64))])
    case("Tile", "Tile", [("x", f32(2, 3)), ("r", np.array([2, 2], np.int64))])
    case("Range_i64", "Range", [("a", np.array(2, np.int64)), ("b", np.array(11, np.int64)), ("c", np.array(3, np.int64))])
    case("Range_f32", "Range", [("a", np.array(0.5, np.float32)), ("b", np.array(-2, np.float32)), ("c", np.array(-0.75, np.float32))])
    case("Trilu_upper", "Trilu", [("x", f32(2, 4, 5)), ("k", np.array(1, np.int64))])
    case("Trilu_lower", "Trilu", [("x", f32(4, 4))], attrs={"upper": 0})
    case("ScatterND", "ScatterND", [("x", f32(4, 3)), ("i", np.array([[2], [0]], np.int64)), ("u", f32(2, 3))])
    case("CumSum", "CumSum", [("x", f32(3, 4)), ("a", np.array(1, np.int64))])
    case("CumSum_rev_excl", "CumSum", [("x", i64(0, 5, 3, 4)), ("a", np.array(-2, np.int32))], attrs={"exclusive": 1, "reverse": 1})
    case("Identity", "Identity", [("x", f16(3, 2))])
    # ---- reductions ----------------------------------------------------------------------------------------
    case("ReduceMean_18", "ReduceMean", [("x", f32(2, 3, 8)), ("a", np.array([-1], np.int64))], opset=18)
    case("ReduceMean_13", "ReduceMean", [("x", f32(2, 3, 8))], attrs={"axes": [1], "keepdims": 0}, opset=13)
    case("ReduceMean_f16", "ReduceMean", [("x", f16(2, 16)), ("a", np.array([1], np.int64))], opset=18)
    case("ReduceSum_13", "ReduceSum", [("x", f32(2, 3, 4)), ("a", np.array([0, 2], np.int64))], opset=13)
    case("ReduceSum_11", "ReduceSum", [("x", f32(2, 3, 4))], attrs={"axes": [1]}, opset=11)
    case("ReduceSum_all", "ReduceSum", [("x", i64(0, 9, 2, 3))], attrs={"keepdims": 0}, opset=13)
    case("ReduceMax_18", "ReduceMax", [("x", f32(3, 5)), ("a", np.array([1], np.int64))], opset=18)
    case("ReduceMax_13", "ReduceMax", [("x", f32(3, 5))], attrs={"axes": [0]}, opset=13)
    case("Softmax_13", "Softmax", [("x", f32(2, 3, 7))], opset=13)
    case("Softmax_axis1", "Softmax", [("x", f32(2, 3, 4))], attrs={"axis": 1}, opset=13)
    case("Softmax_11", "Softmax", [("x", f32(2, 3, 4))], attrs={"axis": 1}, opset=11)
    case("Softmax_f16", "Softmax", [("x", f16(2, 9))], opset=13)
    # ---- matmul --------------------------------------------------------------------------------------------
    case("MatMul_2d", "MatMul", [("a", f32(5, 7)), ("b", f32(7, 3))])
    case("MatMul_batched_bcast", "MatMul", [("a", f32(2, 1, 3, 4)), ("b", f32(3, 4, 5))])
    case("MatMul_const_b", "MatMul", [("a", f32(2, 3, 8)), ("b", f32(8, 6))], inits={"b": f32(8, 6)})
    case("MatMul_1d", "MatMul", [("a", f32(4)), ("b", f32(2, 4, 3))])
    case("MatMul_f16", "MatMul", [("a", f16(3, 16)), ("b", f16(16, 5))], inits={"b": f16(16, 5)})
    case("Gemm", "Gemm", [("a", f32(4, 3)), ("b", f32(5, 4)), ("c", f32(5))], attrs={"transA": 1, "transB": 1, "alpha": 0.5, "beta": 2.0}, opset=13)
    # ---- patterns the executor rewrites: MatMul(x, Transpose(B)) -> trans_b; decomposed RMSNorm -> fused --------
    graph_case("Pattern_MatMul_TransposeB_runtime",
               [helper.make_node("Transpose", ["k"], ["kt"], perm=[0, 1, 3, 2]), helper.make_node("MatMul", ["q", "kt"], ["y"])],
               [("q", f32(1, 2, 3, 8)), ("k", f32(1, 2, 5, 8))], [("y", TP.FLOAT)])
    emb = f16(40, 16)
    graph_case("Pattern_tied_lm_head_f16",
               [helper.make_node("Transpose", ["w"], ["wt"], perm=[1, 0]), helper.make_node("MatMul", ["x", "wt"], ["y"]),
                helper.make_node("Gather", ["w", "ids"], ["e"])],
               [("x", f16(2, 16)), ("w", emb), ("ids", np.array([3, 7], np.int64))], [("y", TP.FLOAT16), ("e", TP.FLOAT16)],
               inits={"w": emb})
    wn = f32(16)
    graph_case("Pattern_RMSNorm_f32",
               [helper.make_node("Pow", ["x", "two"], ["p"]), helper.make_node("ReduceMean", ["p", "ax"], ["m"], keepdims=1),
                helper.make_node("Add", ["m", "eps"], ["a"]), helper.make_node("Sqrt", ["a"], ["s"]),
                helper.make_node("Div", ["one", "s"], ["r"]), helper.make_node("Mul", ["x", "r"], ["xr"]),
                helper.make_node("Mul", ["w", "xr"], ["y"])],
               [("x", f32(2, 3, 16)), ("two", np.array(2.0, np.float32)), ("ax", np.array([-1], np.int64)),
                ("eps", np.array(1e-6, np.float32)), ("one", np.array(1.0, np.float32)), ("w", wn)], [("y", TP.FLOAT)],
               inits={"two": np.array(2.0, np.float32), "ax": np.array([-1], np.int64), "eps": np.array(1e-6, np.float32),
                      "one": np.array(1.0, np.float32), "w": wn})
    # ---- normalization -------------------------------------------------------------------------------------
    case("LayerNormalization", "LayerNormalization", [("x", f32(2, 3, 8)), ("g", f32(8)), ("b", f32(8))], attrs={"epsilon": 1e-5}, opset=17)
    case("SimplifiedLayerNormalization", "SimplifiedLayerNormalization", [("x", f32(3, 16)), ("g", f32(16))],
         attrs={"epsilon": 1e-6}, opset=17)
    case("SimplifiedLayerNormalization_f16", "SimplifiedLayerNormalization", [("x", f16(3, 16)), ("g", f16(16))],
         attrs={"epsilon": 1e-6}, opset=17)
    case("SkipSimplifiedLayerNormalization", "SkipSimplifiedLayerNormalization",
         [("x", f32(1, 3, 16)), ("s", f32(1, 3, 16)), ("g", f32(16))], n_out=4, attrs={"epsilon": 1e-6},
         domain="com.microsoft", opset=17, out_types=[TP.FLOAT, TP.FLOAT, TP.FLOAT, TP.FLOAT])
    case("SkipSimplifiedLayerNormalization_f16", "SkipSimplifiedLayerNormalization",
         [("x", f16(1, 2, 32)), ("s", f16(1, 2, 32)), ("g", f16(32))], n_out=1, attrs={"epsilon": 1e-6},
         domain="com.microsoft", opset=17)
    # ---- contrib: rotary, quantized matmul ---------------------------------------------------------------
    maxpos, rot = 16, 8
    inv = 1.0 / (10000 ** (np.arange(0, rot, 2) / rot))
    ang = np.outer(np.arange(maxpos), inv)
    cosc, sinc = np.cos(ang).astype(np.float32), np.sin(ang).astype(np.float32)
    for inter in (0, 1):
        case(f"RotaryEmbedding_i{inter}", "RotaryEmbedding",
             [("x", f32(1, 3, 2 * rot)), ("p", np.array([[4, 5, 6]], np.int64)), ("c", cosc), ("s", sinc)],
             attrs={"interleaved": inter}, domain="com.microsoft", inits={"c": cosc, "s": sinc})
    case("RotaryEmbedding_f16_4d", "RotaryEmbedding",
         [("x", f16(1, 2, 3, rot)), ("p", np.array([[0, 1, 2]], np.int64)), ("c", cosc.astype(np.float16)),
          ("s", sinc.astype(np.float16))], domain="com.microsoft",
         inits={"c": cosc.astype(np.float16), "s": sinc.astype(np.float16)})
    for (K, N, bs, zp, acc, dt) in [(64, 24, 32, False, 0, np.float32), (80, 10, 16, True, 0, np.float32),
                                    (64, 16, 32, False, 4, np.float32), (128, 8, 64, True, 4, np.float16)]:
        nb = (K + bs - 1) // bs
        B = rng.integers(0, 256, (N, nb, bs // 2)).astype(np.uint8)
        sc = (rng.random((N * nb,)) * 0.1 + 0.01).astype(dt)
        ins = [("a", rng.standard_normal((2, 3, K)).astype(dt)), ("B", B), ("sc", sc)]
        inits = {"B": B, "sc": sc}
        if zp:
            z = rng.integers(0, 256, (N * ((nb + 1) // 2),)).astype(np.uint8)
            ins.append(("zp", z))
            inits["zp"] = z
        nm = f"MatMulNBits_K{K}_N{N}_b{bs}{'_zp' if zp else ''}_acc{acc}_{'f16' if dt == np.float16 else 'f32'}"
        case(nm, "MatMulNBits", ins, attrs={"K": K, "N": N, "bits": 4, "block_size": bs, "accuracy_level": acc},
             domain="com.microsoft", inits=inits)
    # ---- attention -------------------------------------------------------------------------------------------
    H, Hkv, D, S, P = 4, 2, 16, 3, 5
    inv16 = 1.0 / (10000 ** (np.arange(0, D, 2) / D))
    ang16 = np.outer(np.arange(maxpos), inv16)
    cos16, sin16 = np.cos(ang16).astype(np.float32), np.sin(ang16).astype(np.float32)
    case("GroupQueryAttention", "GroupQueryAttention",
         [("q", f32(1, S, H * D)), ("k", f32(1, S, Hkv * D)), ("v", f32(1, S, Hkv * D)),
          ("pk", f32(1, Hkv, P, D)), ("pv", f32(1, Hkv, P, D)), ("sl", np.array([P + S - 1], np.int32)),
          ("tl", np.array(P + S, np.int32))], n_out=3, attrs={"num_heads": H, "kv_num_heads": Hkv},
         domain="com.microsoft", out_types=[TP.FLOAT] * 3)
    case("GroupQueryAttention_prompt_rotary", "GroupQueryAttention",
         [("q", f32(1, S, H * D)), ("k", f32(1, S, Hkv * D)), ("v", f32(1, S, Hkv * D)),
          ("pk", f32(1, Hkv, 0, D)), ("pv", f32(1, Hkv, 0, D)), ("sl", np.array([S - 1], np.int32)),
          ("tl", np.array(S, np.int32)), ("c", cos16), ("s", sin16)], n_out=3,
         attrs={"num_heads": H, "kv_num_heads": Hkv, "do_rotary": 1}, domain="com.microsoft",
         out_types=[TP.FLOAT] * 3)
    mask = np.zeros((1, 1, S, P + S), np.float32)
    for i in range(S):
        mask[0, 0, i, P + i + 1:] = -10000.0
    case("MultiHeadAttention", "MultiHeadAttention",
         [("q", f32(1, S, H * D)), ("k", f32(1, S, H * D)), ("v", f32(1, S, H * D)), ("bias", None), ("kpm", None),
          ("ab", mask), ("pk", f32(1, H, P, D)), ("pv", f32(1, H, P, D))], n_out=3,
         attrs={"num_heads": H, "scale": 0.3}, domain="com.microsoft", out_types=[TP.FLOAT] * 3)
    # ---- GatherBlockQuantized ---------------------------------------------------------------------------------
    Kq, Nq, bsq = 64, 6, 32
    data = rng.integers(0, 256, (Nq, Kq // 2)).astype(np.uint8)
    scg = (rng.random((Nq, Kq // bsq)) * 0.1).astype(np.float16)
    case("GatherBlockQuantized", "GatherBlockQuantized",
         [("d", data), ("i", np.array([[5, 0, 2]], np.int64)), ("sc", scg)], attrs={"block_size": bsq, "bits": 4},
         domain="com.microsoft", inits={"d": data, "sc": scg})
    with open(os.path.join(OUT, "cases.txt"), "w") as f:
        f.write("\n".join(cases) + "\n")
    print(f"gen_op_models: {len(cases)} cases -> {OUT}")


if __name__ == "__main__":
    main()
