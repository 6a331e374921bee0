#!/usr/bin/python3
"""make_onnx_seeds.py - writes the small ONNX models that tests/test_onnx.c reads and tests/corpus/onnx/ seeds
the fuzzer with. Run with Debian's python3 (it has the onnx package):

    /usr/bin/python3 tools/gen/make_onnx_seeds.py            # writes tests/data/onnx and tests/corpus/onnx

The models are hand-made to exercise the reader (every attribute type, every typed field, raw and external
data, MatMulNBits) and its errors; none of them is meant to run."""
import os
import shutil
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "data", "onnx")
CORPUS = os.path.join(ROOT, "tests", "corpus", "onnx")


def save(model, rel):
    path = os.path.join(OUT, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(model.SerializeToString())
    return path


def model(nodes, inits, inputs, outputs, opsets=(("", 17),), ir=8, value_info=(), name="g", sparse=()):
    g = helper.make_graph(nodes, name, inputs, outputs, initializer=inits, value_info=list(value_info),
                          sparse_initializer=list(sparse))
    m = helper.make_model(g, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets], producer_name="qwasm-seeds",
                          producer_version="1")
    m.ir_version = ir
    return m


def typed(name, dt, dims, field, values):
    """A TensorProto with its values in a typed field (not raw_data)."""
    t = TensorProto()
    t.name = name
    t.data_type = dt
    t.dims.extend(dims)
    getattr(t, field).extend(values)
    return t


def external(name, dt, dims, location, offset, length=None):
    t = TensorProto()
    t.name = name
    t.data_type = dt
    t.dims.extend(dims)
    t.data_location = TensorProto.EXTERNAL
    for k, v in (("location", location), ("offset", str(offset)), ("length", None if length is None else str(length))):
        if v is not None:
            e = t.external_data.add()
            e.key, e.value = k, v
    return t


def f16_bits(a):
    return np.asarray(a, dtype=np.float16).view(np.uint16).astype(np.int32).tolist()


def tiny():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])
    w = numpy_helper.from_array(np.arange(12, dtype=np.float32).reshape(4, 3), "W")  # raw_data
    b = typed("B", TensorProto.FLOAT, [3], "float_data", [0.5, -1.0, 2.0])
    shape = helper.make_tensor("shape", TensorProto.INT64, [2], [-1, 3])
    sub = helper.make_graph([helper.make_node("Identity", ["a"], ["b"])], "sub",
                            [helper.make_tensor_value_info("a", TensorProto.FLOAT, [1])],
                            [helper.make_tensor_value_info("b", TensorProto.FLOAT, [1])])
    nodes = [
        helper.make_node("MatMul", ["x", "W"], ["xw"], name="mm"),
        helper.make_node("Add", ["xw", "B"], ["xwb"], name="add"),
        helper.make_node("Constant", [], ["shape"], name="const", value=shape),
        helper.make_node("Reshape", ["xwb", "shape"], ["r"], name="reshape"),
        helper.make_node("AllAttrs", ["r", ""], ["y"], name="attrs", domain="qw.test",
                         f=1.5, i=-7, s=b"hello", t=helper.make_tensor("t", TensorProto.FLOAT16, [2], [1.0, -2.0]),
                         g=sub, floats=[1.0, 2.5], ints=[1, -2, 300], strings=[b"a", b"bc"],
                         tensors=[helper.make_tensor("t0", TensorProto.INT32, [1], [5]),
                                  helper.make_tensor("t1", TensorProto.INT8, [2], [-1, 2])],
                         graphs=[sub, sub]),
    ]
    vi = [helper.make_tensor_value_info("xw", TensorProto.FLOAT, ["batch", 3])]
    m = model(nodes, [w, b], [x], [y], opsets=(("", 17), ("qw.test", 1), ("com.microsoft", 1)), value_info=vi)
    m.doc_string = "seed model for the qwasm reader"
    m.model_version = 3
    m.domain = "qwasm.test"
    helper.set_model_props(m, {"author": "qwasm", "purpose": "tests"})
    return m


def typed_model():
    inits = [
        typed("f32", TensorProto.FLOAT, [2, 2], "float_data", [1.0, -2.0, 3.5, 0.25]),
        typed("f16", TensorProto.FLOAT16, [3], "int32_data", f16_bits([1.0, -0.5, 65504.0])),
        typed("bf16", TensorProto.BFLOAT16, [1], "int32_data", [0x3F80]),
        typed("i8", TensorProto.INT8, [3], "int32_data", [-128, 0, 127]),
        typed("u8", TensorProto.UINT8, [2], "int32_data", [0, 255]),
        typed("i16", TensorProto.INT16, [2], "int32_data", [-32768, 32767]),
        typed("u16", TensorProto.UINT16, [2], "int32_data", [0, 65535]),
        typed("bool", TensorProto.BOOL, [3], "int32_data", [1, 0, 1]),
        typed("i32", TensorProto.INT32, [3], "int32_data", [-1, 2147483647, -2147483648]),
        typed("i64", TensorProto.INT64, [2], "int64_data", [-5, 1 << 40]),
        typed("f64", TensorProto.DOUBLE, [1], "double_data", [3.25]),
        typed("u32", TensorProto.UINT32, [1], "uint64_data", [4000000000]),
        typed("u64", TensorProto.UINT64, [1], "uint64_data", [(1 << 64) - 1]),
        typed("scalar", TensorProto.INT64, [], "int64_data", [42]),
        typed("empty", TensorProto.FLOAT, [0, 4], "float_data", []),
        numpy_helper.from_array(np.array([1, 2, 3], dtype=np.int64), "raw_i64"),
        numpy_helper.from_array(np.array([1.0, 2.0], dtype=np.float16), "raw_f16"),
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 2])
    return model([helper.make_node("Add", ["x", "f32"], ["y"])], inits, [x], [y], ir=7, opsets=(("", 14),))


def matmulnbits():
    def q(name, K, N, block, zp):
        nb = (K + block - 1) // block
        B = numpy_helper.from_array(np.arange(N * nb * block // 2, dtype=np.uint8).reshape(N, nb, block // 2), name + ".B")
        S = numpy_helper.from_array(np.full([N * nb], 0.01, dtype=np.float16), name + ".S")
        inits = [B, S]
        ins = ["a" if name == "q0" else "h", B.name, S.name]
        if zp:
            Z = numpy_helper.from_array(np.full([N * ((nb + 1) // 2)], 0x88, dtype=np.uint8), name + ".Z")
            inits.append(Z)
            ins.append(Z.name)
        node = helper.make_node("MatMulNBits", ins, ["h" if name == "q0" else "y"], name=name, domain="com.microsoft",
                                K=K, N=N, bits=4, block_size=block)
        return node, inits

    n0, i0 = q("q0", 32, 16, 16, True)
    n1, i1 = q("q1", 16, 8, 16, False)
    a = helper.make_tensor_value_info("a", TensorProto.FLOAT16, ["batch", "seq", 32])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT16, ["batch", "seq", 8])
    return model([n0, n1], i0 + i1, [a], [y], opsets=(("", 17), ("com.microsoft", 1)))


def ext_models():
    """onnx/model_ext.onnx with data in two files, one in a subfolder, plus a folder config.json."""
    d = os.path.join(OUT, "ext")
    os.makedirs(os.path.join(d, "onnx", "weights"), exist_ok=True)
    a = np.arange(64, dtype=np.float32)
    b = np.arange(16, dtype=np.float16)
    c = np.array([7, 8, 9], dtype=np.int64)
    data = a.tobytes() + b"\0" * 16 + b.tobytes()  # b at offset 272
    with open(os.path.join(d, "onnx", "model_ext.onnx_data"), "wb") as f:
        f.write(data)
    with open(os.path.join(d, "onnx", "weights", "second.bin"), "wb") as f:
        f.write(b"\xff" * 8 + c.tobytes())
    inits = [external("A", TensorProto.FLOAT, [8, 8], "model_ext.onnx_data", 0, 256),
             external("Bh", TensorProto.FLOAT16, [16], "./model_ext.onnx_data", 272)]
    cval = external("cval", TensorProto.INT64, [3], "weights/second.bin", 8, 24)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 8])
    nodes = [helper.make_node("MatMul", ["x", "A"], ["y"]),
             helper.make_node("Constant", [], ["c"], value=cval)]
    save(model(nodes, inits, [x], [y]), "ext/onnx/model_ext.onnx")
    with open(os.path.join(d, "config.json"), "w") as f:
        f.write('{"model_type": "qwen2", "hidden_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2,\n'
                ' "num_key_value_heads": 1, "vocab_size": 16, "intermediate_size": 16,\n'
                ' "transformers.js_config": {"dtype": "ext"}}\n')
    # models whose external locators are wrong
    for name, loc, off, ln in (("bad_ext_past", "model_ext.onnx_data", 200, 256),
                               ("bad_ext_missing", "nope.bin", 0, 256),
                               ("bad_ext_dotdot", "../model_ext.onnx_data", 0, 256),
                               ("bad_ext_abs", "/etc/passwd", 0, 256),
                               ("bad_ext_len", "model_ext.onnx_data", 0, 100)):
        t = external("A", TensorProto.FLOAT, [8, 8], loc, off, ln)
        save(model([helper.make_node("MatMul", ["x", "A"], ["y"])], [t], [x], [y]), "ext/onnx/%s.onnx" % name)


def bad_models():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])
    add = helper.make_node("Add", ["x", "c"], ["y"])
    c = numpy_helper.from_array(np.array([1, 2], dtype=np.float32), "c")
    save(model([add], [c], [x], [y], ir=12), "bad_ir_high.onnx")
    save(model([add], [c], [x], [y], ir=2), "bad_ir_low.onnx")
    save(model([add], [c], [x], [y], opsets=(("", 24),)), "bad_opset_high.onnx")
    save(model([add], [c], [x], [y], opsets=(("", 6),)), "bad_opset_low.onnx")
    u = TensorProto(); u.CopyFrom(c); u.data_type = 99
    save(model([add], [u], [x], [y]), "bad_dtype.onnx")
    r = TensorProto(); r.CopyFrom(c); r.raw_data = b"\0" * 5
    save(model([add], [r], [x], [y]), "bad_rawlen.onnx")
    v = typed("c", TensorProto.FLOAT, [2], "float_data", [1.0, 2.0, 3.0])
    save(model([add], [v], [x], [y]), "bad_values.onnx")
    sp = helper.make_sparse_tensor(numpy_helper.from_array(np.array([1.0], dtype=np.float32), "s"),
                                   numpy_helper.from_array(np.array([0], dtype=np.int64), "s_idx"), [2])
    save(model([helper.make_node("Add", ["x", "s"], ["y"])], [], [x], [y], sparse=[sp]), "bad_sparse_used.onnx")
    save(model([add], [c], [x], [y], sparse=[sp]), "sparse_unused.onnx")


def main():
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    os.makedirs(OUT)
    save(tiny(), "tiny.onnx")
    save(typed_model(), "typed.onnx")
    save(matmulnbits(), "matmulnbits.onnx")
    ext_models()
    bad_models()
    # the fuzzer's seeds: every .onnx, flattened
    if os.path.isdir(CORPUS):
        shutil.rmtree(CORPUS)
    os.makedirs(CORPUS)
    for dp, _, fns in os.walk(OUT):
        for fn in sorted(fns):
            if fn.endswith(".onnx"):
                shutil.copy(os.path.join(dp, fn), os.path.join(CORPUS, fn))
    for dp, _, fns in os.walk(OUT):
        for fn in fns:
            size = os.path.getsize(os.path.join(dp, fn))
            assert size < 50 * 1024, (fn, size)
    return 0


if __name__ == "__main__":
    sys.exit(main())
