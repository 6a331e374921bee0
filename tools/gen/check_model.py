#!/usr/bin/python3
"""Prints (or checks) the structure of a generated/real Qwen2 ONNX decoder without loading its weights.

  /usr/bin/python3 tools/gen/check_model.py build/models/qwen2.5-1.5b-q4f16-op18-ext/onnx/model_q4f16.onnx
      [--expect-layers 28] [--expect-matmulnbits 196] [--json]
Output: opsets, inputs/outputs counts, op-type histogram (domain:op), MatMulNBits attributes, initializer
bytes (inline vs external). With --expect-* it exits 1 when the structure differs (used by the Node test).
"""
import argparse
import collections
import json
import os
import sys

import onnx
from onnx import TensorProto


def describe(path):
    m = onnx.load(path, load_external_data=False)
    g = m.graph
    hist = collections.Counter(('%s:%s' % (n.domain, n.op_type)) if n.domain else n.op_type for n in g.node)
    mnb_attrs = collections.Counter()
    for n in g.node:
        if n.op_type == 'MatMulNBits':
            a = {x.name: onnx.helper.get_attribute_value(x) for x in n.attribute}
            mnb_attrs[json.dumps({k: a[k] for k in sorted(a) if k not in ('K', 'N')}, sort_keys=True)] += 1
    ext_bytes = inline_bytes = 0
    ext_files = set()
    for t in g.initializer:
        if t.data_location == TensorProto.EXTERNAL:
            d = {e.key: e.value for e in t.external_data}
            ext_bytes += int(d.get('length', 0))
            ext_files.add(d.get('location'))
        else:
            inline_bytes += len(t.raw_data) or t.ByteSize()
    def vi(v):
        tt = v.type.tensor_type
        return [v.name, TensorProto.DataType.Name(tt.elem_type),
                [d.dim_param or d.dim_value for d in tt.shape.dim]]
    return {
        'file': path, 'file_bytes': os.path.getsize(path),
        'ir_version': m.ir_version,
        'opsets': {(o.domain or 'ai.onnx'): o.version for o in m.opset_import},
        'inputs': len(g.input), 'outputs': len(g.output),
        'first_inputs': [vi(v) for v in g.input[:4]], 'first_outputs': [vi(v) for v in g.output[:2]],
        'nodes': len(g.node), 'initializers': len(g.initializer),
        'inline_bytes': inline_bytes, 'external_bytes': ext_bytes, 'external_files': sorted(ext_files),
        'op_histogram': dict(sorted(hist.items())),
        'matmulnbits_attrs': dict(mnb_attrs),
    }


def main():
    p = argparse.ArgumentParser()
    p.add_argument('onnx')
    p.add_argument('--expect-layers', type=int)
    p.add_argument('--expect-matmulnbits', type=int)
    p.add_argument('--json', action='store_true')
    a = p.parse_args()
    d = describe(a.onnx)
    errs = []
    if a.expect_layers is not None:
        L = a.expect_layers
        if d['inputs'] != 3 + 2 * L or d['outputs'] != 1 + 2 * L:
            errs.append('inputs/outputs %d/%d, want %d/%d' % (d['inputs'], d['outputs'], 3 + 2 * L, 1 + 2 * L))
    if a.expect_matmulnbits is not None:
        n = d['op_histogram'].get('com.microsoft:MatMulNBits', 0)
        if n != a.expect_matmulnbits:
            errs.append('MatMulNBits %d, want %d' % (n, a.expect_matmulnbits))
    d['errors'] = errs
    if a.json:
        print(json.dumps(d, indent=1))
    else:
        for k, v in d.items():
            print('%s: %s' % (k, v))
    return 1 if errs else 0


if __name__ == '__main__':
    sys.exit(main())
