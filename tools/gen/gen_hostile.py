#!/usr/bin/env python3
"""Generates hostile model folders for tests/test_hostile.c into build/models/hostile/<case>/ (issue #16).

Each folder is a minimal decoder (input_ids -> Gather(embedding) -> X (1, S, 1) -> MatMul -> logits (1, S, 16))
whose logits also depend on a hostile node: logits + 0 * Size(hostile). qwasm must refuse each at load (the
warm-up step runs the graph once) with the status and message tests/test_hostile.c expects, never crash.
Cases (the node that must be named is called "hostile"):
  reshape_wrap     Reshape to [7, 0x6db6db6db6db6db7]: the product is 1 modulo 2^64 (the numel of X at S = 1)
  reshape_huge     Reshape to [2^40, 2^40]
  cos_huge         ConstantOfShape [2^40, 2^40]
  tile_huge        Tile by [1, 2^62, 1]
  expand_huge      Expand to [2^40, 2^40, 1]
  range_inf        Range(0, inf, 1) in float
  range_wide       Range(-2^62, 2^62, 1) in int64 (limit - start overflows)
  transpose_perm   Transpose with perm [0, 5, 1]
  slice_step_max   Slice with step INT64_MAX (valid: loads; the step once overflowed in the length)
  ext_dir          external data file that is a directory
  ext_fifo         external data file that is a FIFO (opening it would block)
  utf8_name        a valid model whose producer_name is ill-formed UTF-8 (inspect --json must print valid UTF-8)
  tok_bad          a valid model with a malformed tokenizer.json (qwasm tokenize: an error, no leak)
  genconfig_bad    a valid model whose generation_config.json has wrong values (warnings, defaults used)
Idempotent (a stamp of this script's version); a few milliseconds.
"""
import json
import os
import shutil
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

VERSION = 4
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(REPO, 'build', 'models', 'hostile')
V = 16


def i64(name, vals):
    return numpy_helper.from_array(np.array(vals, dtype=np.int64), name)


def f32(name, vals):
    return numpy_helper.from_array(np.array(vals, dtype=np.float32), name)


def model(hostile_nodes, inits, external=False):
    """hostile_nodes produce 'hostile_out'; the logits depend on its Size."""
    rng = np.random.default_rng(1)
    inits = list(inits) + [
        f32('emb', rng.standard_normal((V, 1))),
        f32('w', rng.standard_normal((1, V))),
        f32('zero', [0.0]),
    ]
    nodes = [
        helper.make_node('Gather', ['emb', 'input_ids'], ['x'], name='embed'),
        helper.make_node('MatMul', ['x', 'w'], ['base'], name='lm_head'),
    ] + hostile_nodes + [
        helper.make_node('Size', ['hostile_out'], ['n'], name='size'),
        helper.make_node('Cast', ['n'], ['nf'], to=TensorProto.FLOAT, name='cast'),
        helper.make_node('Mul', ['nf', 'zero'], ['z'], name='mul0'),
        helper.make_node('Add', ['base', 'z'], ['logits'], name='add0'),
    ]
    g = helper.make_graph(nodes, 'hostile', [
        helper.make_tensor_value_info('input_ids', TensorProto.INT64, [1, 'S'])],
        [helper.make_tensor_value_info('logits', TensorProto.FLOAT, [1, 'S', V])], initializer=inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid('', 14)])
    m.ir_version = 8
    return m


def write(case, m, external=None, patch=None, files=None):
    d = os.path.join(OUT, case)
    if os.path.isdir(d):
        shutil.rmtree(d)
    os.makedirs(os.path.join(d, 'onnx'))
    if external:
        # the embedding's data in onnx/model.onnx_data, which external() then replaces by a directory or a FIFO
        t = next(t for t in m.graph.initializer if t.name == 'emb')
        t.data_location = TensorProto.EXTERNAL
        t.ClearField('float_data')
        raw = t.raw_data
        t.ClearField('raw_data')
        for k, v in (('location', 'model.onnx_data'), ('offset', '0'), ('length', str(len(raw)))):
            e = t.external_data.add()
            e.key, e.value = k, v
        data = os.path.join(d, 'onnx', 'model.onnx_data')
        if external == 'dir':
            os.makedirs(data)
        else:
            os.mkfifo(data)
    data = m.SerializeToString()
    if patch:
        assert data.count(patch[0]) == 1 and len(patch[0]) == len(patch[1]), patch  # lengths are in the bytes
        data = data.replace(*patch)
    with open(os.path.join(d, 'onnx', 'model.onnx'), 'wb') as f:
        f.write(data)
    for name, text in (files or {}).items():
        with open(os.path.join(d, name), 'w') as f:
            f.write(text)
    with open(os.path.join(d, 'config.json'), 'w') as f:
        json.dump({'model_type': 'qwen2', 'vocab_size': V, 'max_position_embeddings': 64}, f)


def main():
    stamp = os.path.join(OUT, '.gen_stamp.json')
    if os.path.exists(stamp):
        with open(stamp) as f:
            if json.load(f).get('version') == VERSION:
                print('gen_hostile: up to date -> %s' % OUT)
                return 0
    os.makedirs(OUT, exist_ok=True)
    N = helper.make_node
    big = 1 << 40
    write('reshape_wrap', model([N('Reshape', ['x', 'shape'], ['hostile_out'], name='hostile')],
                                [i64('shape', [7, 0x6db6db6db6db6db7])]))
    write('reshape_huge', model([N('Reshape', ['x', 'shape'], ['hostile_out'], name='hostile')],
                                [i64('shape', [big, big])]))
    write('cos_huge', model([N('ConstantOfShape', ['shape'], ['hostile_out'], name='hostile')],
                            [i64('shape', [big, big])]))
    write('tile_huge', model([N('Tile', ['x', 'rep'], ['hostile_out'], name='hostile')],
                             [i64('rep', [1, 1 << 62, 1])]))
    write('expand_huge', model([N('Expand', ['x', 'shape'], ['hostile_out'], name='hostile')],
                               [i64('shape', [big, big, 1])]))
    write('range_inf', model([N('Range', ['r0', 'r1', 'r2'], ['hostile_out'], name='hostile')],
                             [f32('r0', 0.0), f32('r1', np.inf), f32('r2', 1.0)]))
    write('range_wide', model([N('Range', ['r0', 'r1', 'r2'], ['hostile_out'], name='hostile')],
                              [i64('r0', -(1 << 62)), i64('r1', 1 << 62), i64('r2', 1)]))
    write('transpose_perm', model([N('Transpose', ['x'], ['hostile_out'], perm=[0, 5, 1], name='hostile')], []))
    write('slice_step_max', model([N('Slice', ['x', 's0', 's1', 's2', 's3'], ['hostile_out'], name='hostile')],
                                  [i64('s0', [0]), i64('s1', [1]), i64('s2', [2]), i64('s3', [(1 << 63) - 1])]))
    write('ext_dir', model([N('Identity', ['x'], ['hostile_out'], name='hostile')], []), external='dir')
    write('ext_fifo', model([N('Identity', ['x'], ['hostile_out'], name='hostile')], []), external='fifo')
    ok = lambda: model([N('Identity', ['x'], ['hostile_out'], name='hostile')], [])
    u = ok()
    u.producer_name = 'hostile-producer'
    write('utf8_name', u, patch=(b'hostile-producer', b'hostile-\xff\xfe\xc3ducer'))
    write('tok_bad', ok(), files={'tokenizer.json': '{"model": {"vocab": {"a": 0}, '})
    write('genconfig_bad', ok(), files={'generation_config.json': json.dumps(
        {'do_sample': True, 'temperature': 'hot', 'top_p': 1.5, 'top_k': -4, 'repetition_penalty': 0})})
    with open(stamp, 'w') as f:
        json.dump({'version': VERSION}, f)
    print('gen_hostile: 14 cases -> %s' % OUT)
    return 0


if __name__ == '__main__':
    sys.exit(main())
