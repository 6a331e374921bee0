#!/usr/bin/env python3
"""Inserts a Dropout (the identity at inference, an op qwasm's executor lacks) after the first Softmax of an
ONNX graph, in place, leaving its external data untouched: the fallback-engine tests' model.
    /usr/bin/python3 tools/gen/insert_dropout.py MODEL.onnx"""
import sys

import onnx
from onnx import helper


def main(path):
    m = onnx.load(path, load_external_data=False)
    g = m.graph
    i, n = next((i, n) for i, n in enumerate(g.node) if n.op_type == 'Softmax')
    y = n.output[0]
    n.output[0] = y + '_before_dropout'
    g.node.insert(i + 1, helper.make_node('Dropout', [n.output[0]], [y], name='inserted_dropout'))
    onnx.save(m, path)


if __name__ == '__main__':
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
