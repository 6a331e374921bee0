#!/usr/bin/python3
"""Converts a Hugging Face-style Qwen2 ONNX model folder (tools/gen/gen_model.py output, or an optimum /
onnx-community "text-generation-with-past" export) to a GGUF file that llama.cpp / wllama load.

    /usr/bin/python3 tools/gen/onnx2gguf.py MODEL_DIR [-o OUT.gguf] [--onnx onnx/model_q4f16.onnx] [--name NAME]
    /usr/bin/python3 tools/gen/onnx2gguf.py --check MODEL_DIR [-o OUT.gguf]   (or --check FILE.gguf)

Default output: MODEL_DIR/model-q4_0.gguf. Needs only numpy + onnx (Debian's python3); the GGUF (v3)
format is written here directly: header, metadata key/values, tensor infos, data aligned to 32 bytes.

Weights are found by following the graph, not by trusting initializer names:
  * token_embd.weight   the 2-D initializer gathered by the Gather fed by `input_ids` (F16 stays F16,
                        F32 is written F16 too, as llama.cpp's converter does)
  * blk.N.attn_q/k/v/output, ffn_gate/up/down: the MatMulNBits (or MatMul with an initializer weight)
                        nodes; the role and layer come from the node name (/model/layers.N/self_attn/q_proj/...)
                        or, failing that, from the weight initializer's name (model.layers.N.self_attn.q_proj...)
  * blk.N.attn_q/k/v.bias: the 1-D initializer added to that MatMul's output (Add node consumer)
  * blk.N.attn_norm / ffn_norm: walking back from q_proj's / gate_proj's input to the RMSNorm's
                        Mul(weight, .) (or the gamma of a (Skip)SimplifiedLayerNormalization), through Casts
  * output_norm.weight: same walk from the lm_head MatMul's input
  * output.weight:      only when the lm_head is NOT the transposed embedding (untied / quantized lm_head)
MatMulNBits (bits=4, block_size=32, symmetric: no zero_points or all 8) is exactly ggml's Q4_0 with the
nibbles reordered: ONNX keeps element 2k in the low and 2k+1 in the high nibble of byte k; Q4_0 keeps
element j low and j+16 high in byte j, after a fp16 scale d; both decode (q - 8) * scale. Plain float
MatMul weights ([K, N] initializers) are written transposed as F16 (F32 with --f32-matmul). Norms and
biases are F32. Tensors are streamed one at a time (external data is read by offset), so the 1.5B's 1.2 GB
of data never sits in memory at once.

--check reads a GGUF back by the spec alone (header, every key/value and tensor info, offsets aligned and
inside the file, no overlaps, the qwen2 tensor set and shapes from the hyper-parameters, key types llama.cpp
insists on, one token per embedding row) and, given the model folder, decodes layer 0's weights (Q4_0
dequantised by ggml's layout) and compares them with the ONNX MatMulNBits / MatMul ones. Every conversion runs the same check on its output.

Metadata: general.architecture=qwen2 with qwen2.* hyper-parameters from config.json (checked against the
tensor shapes) and the real tokenizer from tokenizer.json: tokenizer.ggml.model=gpt2, pre=qwen2, tokens
(padded with [PAD<i>] up to the embedding's row count, as convert_hf_to_gguf does), token_type, merges,
eos/bos/padding ids, add_bos_token=false and the chat template from tokenizer_config.json.
"""
import argparse
import json
import mmap
import os
import re
import struct
import sys
import time

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

# ---- GGUF constants
GGUF_MAGIC = 0x46554747  # "GGUF" little-endian
GGUF_VERSION = 3
ALIGN = 32
T_UINT8, T_INT8, T_UINT16, T_INT16, T_UINT32, T_INT32, T_FLOAT32, T_BOOL, T_STRING, T_ARRAY, T_UINT64, \
    T_INT64, T_FLOAT64 = range(13)
GGML_F32, GGML_F16, GGML_Q4_0 = 0, 1, 2
LLAMA_FTYPE_MOSTLY_Q4_0 = 2
TOK_NORMAL, TOK_UNKNOWN, TOK_CONTROL, TOK_USER_DEFINED, TOK_UNUSED, TOK_BYTE = 1, 2, 3, 4, 5, 6

ROLE_NAMES = {'q_proj': 'attn_q', 'k_proj': 'attn_k', 'v_proj': 'attn_v', 'o_proj': 'attn_output',
              'gate_proj': 'ffn_gate', 'up_proj': 'ffn_up', 'down_proj': 'ffn_down'}
ROLE_RE = re.compile(r'layers[./_](\d+)[./_].*?(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)')

ONNX_NP = {TensorProto.FLOAT: np.float32, TensorProto.FLOAT16: np.float16, TensorProto.UINT8: np.uint8,
           TensorProto.INT8: np.int8, TensorProto.INT32: np.int32, TensorProto.INT64: np.int64}


def gstr(s):
    b = s.encode('utf-8') if isinstance(s, str) else s
    return struct.pack('<Q', len(b)) + b


class KV:
    def __init__(self):
        self.items = []

    def add(self, key, vtype, value):
        out = bytearray(gstr(key))
        out += struct.pack('<I', vtype)
        out += self.val(vtype, value)
        self.items.append(bytes(out))

    @staticmethod
    def val(vtype, v):
        if vtype == T_STRING:
            return gstr(v)
        if vtype == T_BOOL:
            return struct.pack('<B', 1 if v else 0)
        fmt = {T_UINT8: '<B', T_INT8: '<b', T_UINT16: '<H', T_INT16: '<h', T_UINT32: '<I', T_INT32: '<i',
               T_FLOAT32: '<f', T_UINT64: '<Q', T_INT64: '<q', T_FLOAT64: '<d'}[vtype]
        return struct.pack(fmt, v)

    def arr(self, key, etype, values):
        out = bytearray(gstr(key))
        out += struct.pack('<IIQ', T_ARRAY, etype, len(values))
        if etype == T_STRING:
            out += b''.join(gstr(v) for v in values)
        elif etype == T_INT32:
            out += np.asarray(values, dtype='<i4').tobytes()
        else:
            out += b''.join(self.val(etype, v) for v in values)
        self.items.append(bytes(out))


# ---- ONNX access (initializers read lazily, external data by offset)
class OnnxModel:
    def __init__(self, path):
        self.path = path
        self.dir = os.path.dirname(os.path.abspath(path))
        self.model = onnx.load(path, load_external_data=False)
        g = self.model.graph
        self.inits = {t.name: t for t in g.initializer}
        self.nodes = list(g.node)
        self.producer = {}
        self.consumers = {}
        for n in self.nodes:
            for o in n.output:
                self.producer[o] = n
            for i in n.input:
                self.consumers.setdefault(i, []).append(n)
        self.graph_inputs = {i.name for i in g.input}
        # Constant nodes holding tensors count as initializers
        for n in self.nodes:
            if n.op_type == 'Constant':
                for at in n.attribute:
                    if at.name == 'value' and at.t is not None:
                        t = onnx.TensorProto()
                        t.CopyFrom(at.t)
                        t.name = n.output[0]
                        self.inits.setdefault(n.output[0], t)

    def dims(self, name):
        return list(self.inits[name].dims)

    def array(self, name):
        t = self.inits[name]
        if t.data_location == TensorProto.EXTERNAL:
            info = {e.key: e.value for e in t.external_data}
            fn = os.path.join(self.dir, info['location'])
            off = int(info.get('offset', 0))
            dt = np.dtype(ONNX_NP[t.data_type])
            count = int(np.prod(t.dims)) if len(t.dims) else 1
            length = int(info.get('length', count * dt.itemsize))
            with open(fn, 'rb') as f:
                f.seek(off)
                buf = f.read(length)
            if len(buf) != length:
                raise IOError('short read of %s from %s' % (name, fn))
            return np.frombuffer(buf, dtype=dt.newbyteorder('<')).reshape(t.dims)
        return numpy_helper.to_array(t)

    def through_casts_back(self, name):
        """Producer of `name`, skipping Cast / Identity nodes."""
        n = self.producer.get(name)
        while n is not None and n.op_type in ('Cast', 'Identity'):
            n = self.producer.get(n.input[0])
        return n

    def init_source(self, name):
        """Initializer name behind `name` (through Cast / Identity), or None."""
        seen = 0
        while name not in self.inits and seen < 8:
            n = self.producer.get(name)
            if n is None or n.op_type not in ('Cast', 'Identity'):
                return None
            name = n.input[0]
            seen += 1
        return name if name in self.inits else None


def norm_weight(m, x_name):
    """Walks back from a tensor to the RMSNorm that produced it and returns its weight initializer."""
    n = m.through_casts_back(x_name)
    if n is None:
        return None
    if n.op_type == 'Mul':
        for i in n.input:
            s = m.init_source(i)
            if s is not None and len(m.dims(s)) == 1 and m.dims(s)[0] > 1:
                return s
        return None
    if n.op_type in ('SimplifiedLayerNormalization', 'LayerNormalization', 'RMSNormalization'):
        return m.init_source(n.input[1])
    if n.op_type == 'SkipSimplifiedLayerNormalization':
        return m.init_source(n.input[2])
    return None


def follow_add_bias(m, out_name, n_out):
    for c in m.consumers.get(out_name, []):
        if c.op_type == 'Add':
            for i in c.input:
                s = m.init_source(i)
                if s is not None and m.dims(s) == [n_out]:
                    return s
    return None


class TensorPlan:
    def __init__(self, name, ne, gtype, fetch):
        self.name, self.ne, self.gtype, self.fetch = name, ne, gtype, fetch  # ne: ggml order (innermost first)

    def nbytes(self):
        n = int(np.prod(self.ne))
        if self.gtype == GGML_F32:
            return 4 * n
        if self.gtype == GGML_F16:
            return 2 * n
        if self.gtype == GGML_Q4_0:
            assert self.ne[0] % 32 == 0
            return n // 32 * 18
        raise ValueError(self.gtype)


def q4_from_matmulnbits(b, scales, zp, K, N):
    """MatMulNBits B [N, K/32, 16] + scales [N*K/32] -> Q4_0 blocks bytes (row n = output feature n)."""
    nb = K // 32
    b = np.asarray(b, dtype=np.uint8).reshape(N, nb, 16)
    if zp is not None:  # packed uint8 zero points: symmetric only when every nibble is 8
        z = np.asarray(zp, dtype=np.uint8).reshape(N, -1)
        zl = np.stack([z & 0x0F, z >> 4], axis=-1).reshape(N, -1)[:, :nb]
        if zp.dtype != np.uint8 or not np.all(zl == 8):
            raise ValueError('asymmetric MatMulNBits (zero points != 8) cannot be Q4_0')
    lo = b & 0x0F
    hi = b >> 4
    q = np.empty((N, nb, 32), dtype=np.uint8)
    q[:, :, 0::2] = lo
    q[:, :, 1::2] = hi
    qs = q[:, :, :16] | (q[:, :, 16:] << 4)
    out = np.empty((N * nb, 18), dtype=np.uint8)
    out[:, 0:2] = np.asarray(scales, dtype=np.float32).astype('<f2').reshape(N * nb, 1).view(np.uint8)
    out[:, 2:] = qs.reshape(N * nb, 16)
    return out.tobytes()


def plan_tensors(m, cfg, args):
    g = m.model.graph
    plans = []
    # ---- embedding
    emb = None
    for n in m.nodes:
        if n.op_type == 'Gather' and len(n.input) == 2 and n.input[1] in m.graph_inputs:
            s = m.init_source(n.input[0])
            if s is not None and len(m.dims(s)) == 2:
                emb = s
                break
    if emb is None:
        raise SystemExit('onnx2gguf: no embedding Gather(initializer, input_ids) found')
    V, H = m.dims(emb)

    def emb_fetch(name=emb):
        return np.ascontiguousarray(m.array(name).astype('<f2')).tobytes()

    plans.append(TensorPlan('token_embd.weight', [H, V], GGML_F16, emb_fetch))

    # ---- linear layers
    layers = {}
    lm_head = None
    for n in m.nodes:
        if n.op_type not in ('MatMulNBits', 'MatMul'):
            continue
        if n.op_type == 'MatMul':
            w = m.init_source(n.input[1])
            if w is None:
                # tied lm_head: MatMul(x, Transpose(embedding))
                p = m.through_casts_back(n.input[1])
                if p is not None and p.op_type == 'Transpose' and m.init_source(p.input[0]) == emb:
                    lm_head = ('tied', n)
                continue
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
        mm = ROLE_RE.search(n.name or '')
        if mm is None:
            mm = ROLE_RE.search(n.input[1])
        if mm is None:
            if 'lm_head' in (n.name + n.input[1]) or (n.output and any(
                    o == 'logits' or o.startswith('logits') for o in n.output)):
                lm_head = ('own', n)
            continue
        layer, role = int(mm.group(1)), ROLE_NAMES[mm.group(2)]
        layers.setdefault(layer, {})[role] = (n, attrs)
    if lm_head is None:
        raise SystemExit('onnx2gguf: no lm_head MatMul found')
    L = len(layers)
    if sorted(layers) != list(range(L)):
        raise SystemExit('onnx2gguf: layers found: %s' % sorted(layers))

    def linear_plan(name, n, attrs):
        if n.op_type == 'MatMulNBits':
            K, N = int(attrs['K']), int(attrs['N'])
            if int(attrs.get('bits', 4)) != 4 or int(attrs.get('block_size', 32)) != 32:
                raise SystemExit('onnx2gguf: %s: only bits=4 block_size=32 MatMulNBits maps to Q4_0' % n.name)
            bn, sn = n.input[1], n.input[2]
            zn = n.input[3] if len(n.input) > 3 and n.input[3] else None

            def fetch(bn=bn, sn=sn, zn=zn, K=K, N=N):
                return q4_from_matmulnbits(m.array(bn), m.array(sn), m.array(zn) if zn else None, K, N)

            return TensorPlan(name, [K, N], GGML_Q4_0, fetch), N
        w = m.init_source(n.input[1])
        K, N = m.dims(w)
        gt = GGML_F32 if args.f32_matmul else GGML_F16

        def fetch(w=w, gt=gt):
            a = np.ascontiguousarray(m.array(w).T)
            return a.astype('<f4' if gt == GGML_F32 else '<f2').tobytes()

        return TensorPlan(name, [K, N], gt, fetch), N

    def f32_plan(name, init):
        return TensorPlan(name, m.dims(init)[::-1] if m.dims(init) else [1], GGML_F32,
                          lambda init=init: np.ascontiguousarray(m.array(init)).astype('<f4').tobytes())

    ffn = None
    for i in range(L):
        d = layers[i]
        missing = [r for r in ROLE_NAMES.values() if r not in d]
        if missing:
            raise SystemExit('onnx2gguf: layer %d misses %s' % (i, missing))
        an = norm_weight(m, d['attn_q'][0].input[0])
        fn = norm_weight(m, d['ffn_gate'][0].input[0])
        if an is None or fn is None:
            raise SystemExit('onnx2gguf: layer %d: RMSNorm weights not found' % i)
        plans.append(f32_plan('blk.%d.attn_norm.weight' % i, an))
        for role in ('attn_q', 'attn_k', 'attn_v'):
            n, attrs = d[role]
            p, N = linear_plan('blk.%d.%s.weight' % (i, role), n, attrs)
            plans.append(p)
            b = follow_add_bias(m, n.output[0], N)
            if b is None:
                raise SystemExit('onnx2gguf: layer %d: %s bias not found' % (i, role))
            plans.append(f32_plan('blk.%d.%s.bias' % (i, role), b))
        plans.append(linear_plan('blk.%d.attn_output.weight' % i, *d['attn_output'])[0])
        plans.append(f32_plan('blk.%d.ffn_norm.weight' % i, fn))
        for role in ('ffn_gate', 'ffn_up', 'ffn_down'):
            p, N = linear_plan('blk.%d.%s.weight' % (i, role), *d[role])
            plans.append(p)
            if role == 'ffn_gate':
                ffn = N
    kind, ln = lm_head
    on = norm_weight(m, ln.input[0])
    if on is None:
        raise SystemExit('onnx2gguf: output norm not found')
    plans.append(f32_plan('output_norm.weight', on))
    if kind == 'own':
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in ln.attribute}
        plans.append(linear_plan('output.weight', ln, attrs)[0])
    q = layers[0]['attn_q']
    kk = layers[0]['attn_k']
    nq = q[1]['N'] if q[0].op_type == 'MatMulNBits' else m.dims(m.init_source(q[0].input[1]))[1]
    nk = kk[1]['N'] if kk[0].op_type == 'MatMulNBits' else m.dims(m.init_source(kk[0].input[1]))[1]
    shapes = dict(vocab=V, hidden=H, layers=L, ffn=ffn, q_out=nq, kv_out=nk, tied=(kind == 'tied'))
    return plans, shapes


def tokenizer_kv(kv, model_dir, n_vocab, cfg):
    tj = json.load(open(os.path.join(model_dir, 'tokenizer.json'), encoding='utf-8'))
    tc_path = os.path.join(model_dir, 'tokenizer_config.json')
    tc = json.load(open(tc_path, encoding='utf-8')) if os.path.exists(tc_path) else {}
    gc_path = os.path.join(model_dir, 'generation_config.json')
    gc = json.load(open(gc_path, encoding='utf-8')) if os.path.exists(gc_path) else {}
    model = tj['model']
    if model.get('type') != 'BPE':
        raise SystemExit('onnx2gguf: tokenizer model %r is not BPE' % model.get('type'))
    rev = {i: t for t, i in model['vocab'].items()}
    special = {}
    for a in tj.get('added_tokens', []):
        rev[a['id']] = a['content']
        special[a['id']] = a.get('special', False)
    truncated = max(rev) >= n_vocab
    if truncated:  # tiny test models: keep the first n_vocab tokens and the merges that stay inside them
        print('onnx2gguf: warning: tokenizer has ids up to %d but the embedding has %d rows: vocab truncated'
              % (max(rev), n_vocab), file=sys.stderr)
        rev = {i: t for i, t in rev.items() if i < n_vocab}
        special = {i: v for i, v in special.items() if i < n_vocab}
    tokens, types = [], []
    for i in range(n_vocab):
        t = rev.get(i)
        if t is None:
            tokens.append('[PAD%d]' % i)
            types.append(TOK_UNUSED)
        elif i in special:
            tokens.append(t)
            types.append(TOK_CONTROL if special[i] else TOK_USER_DEFINED)
        else:
            tokens.append(t)
            types.append(TOK_NORMAL)
    merges = [m if isinstance(m, str) else ' '.join(m) for m in model.get('merges', [])]
    if truncated:
        have = set(rev.values())
        merges = [m for m in merges if all(x in have for x in m.split(' ')) and m.replace(' ', '') in have]
    kv.add('tokenizer.ggml.model', T_STRING, 'gpt2')
    kv.add('tokenizer.ggml.pre', T_STRING, 'qwen2')
    kv.arr('tokenizer.ggml.tokens', T_STRING, tokens)
    kv.arr('tokenizer.ggml.token_type', T_INT32, types)
    kv.arr('tokenizer.ggml.merges', T_STRING, merges)
    byname = {t: i for i, t in rev.items()}

    def tok_id(v):
        if isinstance(v, dict):
            v = v.get('content')
        return byname.get(v) if isinstance(v, str) else None

    eos = tok_id(tc.get('eos_token'))
    if eos is None:
        e = gc.get('eos_token_id', cfg.get('eos_token_id'))
        eos = e[0] if isinstance(e, list) else e
    bos = cfg.get('bos_token_id', gc.get('bos_token_id'))
    pad = tok_id(tc.get('pad_token'))
    if pad is None:
        pad = gc.get('pad_token_id', cfg.get('pad_token_id'))
    eos, bos, pad = [x if x is not None and int(x) < n_vocab else None for x in (eos, bos, pad)]
    if eos is not None:
        kv.add('tokenizer.ggml.eos_token_id', T_UINT32, int(eos))
    if bos is not None:
        kv.add('tokenizer.ggml.bos_token_id', T_UINT32, int(bos))
    if pad is not None:
        kv.add('tokenizer.ggml.padding_token_id', T_UINT32, int(pad))
    kv.add('tokenizer.ggml.add_bos_token', T_BOOL, bool(tc.get('add_bos_token', False)))
    if isinstance(tc.get('chat_template'), str):
        kv.add('tokenizer.chat_template', T_STRING, tc['chat_template'])
    return dict(n_tokens=len(tokens), n_merges=len(merges), eos=eos, bos=bos, pad=pad)


# ---- independent reader / validator (--check): parses the file back by the GGUF v3 spec alone
GGML_BLOCK = {GGML_F32: (1, 4), GGML_F16: (1, 2), GGML_Q4_0: (32, 18)}  # ggml type -> (elements per block, bytes)
SCALAR_FMT = {T_UINT8: '<B', T_INT8: '<b', T_UINT16: '<H', T_INT16: '<h', T_UINT32: '<I', T_INT32: '<i',
              T_FLOAT32: '<f', T_BOOL: '<B', T_UINT64: '<Q', T_INT64: '<q', T_FLOAT64: '<d'}
INT_TYPES = (T_UINT8, T_INT8, T_UINT16, T_INT16, T_UINT32, T_INT32, T_UINT64, T_INT64)


class GGUFReader:
    """Reads header, key/values and tensor infos; every length is checked against the file size before it
    is used, so a corrupt file gives a message naming the field, not a huge allocation."""

    def __init__(self, path):
        self.path = path
        self.size = os.path.getsize(path)
        with open(path, 'rb') as f:
            # mapped, not read: only the header pages (and the few tensors compared) are touched
            self.buf = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if self.size else b''
        self.pos = 0
        magic, self.version = self.unpack('<II', 'header')
        if magic != GGUF_MAGIC:
            raise ValueError('bad magic %r (want b"GGUF")' % self.buf[:4])
        if self.version != GGUF_VERSION:
            raise ValueError('version %d (want %d)' % (self.version, GGUF_VERSION))
        self.n_tensors, self.n_kv = self.unpack('<QQ', 'header counts')
        self.kv, self.kv_types = {}, {}
        for i in range(self.n_kv):
            key = self.string('key %d' % i)
            if key in self.kv:
                raise ValueError('duplicate key %s' % key)
            vtype, = self.unpack('<I', key + ' type')
            self.kv_types[key] = vtype
            self.kv[key] = self.value(vtype, key)
        self.alignment = self.kv.get('general.alignment', ALIGN)
        # gguf.cpp refuses anything but a u32 power of two
        if self.kv_types.get('general.alignment', T_UINT32) != T_UINT32 or self.alignment <= 0 or \
                self.alignment & (self.alignment - 1):
            raise ValueError('general.alignment must be a u32 power of two, got %r' % self.alignment)
        self.tensors = []
        for i in range(self.n_tensors):
            name = self.string('tensor %d name' % i)
            nd, = self.unpack('<I', name + ' n_dims')
            if not 1 <= nd <= 4:
                raise ValueError('%s: n_dims %d' % (name, nd))
            ne = list(self.unpack('<%dQ' % nd, name + ' dims'))
            gtype, off = self.unpack('<IQ', name + ' type/offset')
            self.tensors.append(dict(name=name, ne=ne, type=gtype, offset=off))
        self.data_start = (self.pos + self.alignment - 1) // self.alignment * self.alignment

    def need(self, n, what):
        if n < 0 or self.pos + n > len(self.buf):
            raise ValueError('%s: %d bytes at offset %d run past the end of the file (%d bytes)'
                             % (what, n, self.pos, self.size))

    def unpack(self, fmt, what):
        n = struct.calcsize(fmt)
        self.need(n, what)
        v = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += n
        return v

    def string(self, what):
        n, = self.unpack('<Q', what + ' length')
        self.need(n, what)
        b = self.buf[self.pos:self.pos + n]
        self.pos += n
        return b.decode('utf-8')  # the spec requires UTF-8; a bad byte raises here

    def value(self, vtype, what):
        if vtype == T_STRING:
            return self.string(what)
        if vtype == T_ARRAY:
            etype, n = self.unpack('<IQ', what + ' array header')
            if etype == T_ARRAY:
                raise ValueError('%s: nested arrays are not written by this tool' % what)
            if etype == T_STRING:
                return [self.string('%s[%d]' % (what, i)) for i in range(n)]
            if etype not in SCALAR_FMT:
                raise ValueError('%s: array element type %d' % (what, etype))
            fmt = SCALAR_FMT[etype]
            sz = struct.calcsize(fmt)
            self.need(n * sz, what)
            v = list(np.frombuffer(self.buf, dtype=np.dtype(fmt), count=n, offset=self.pos))
            self.pos += n * sz
            return v
        if vtype not in SCALAR_FMT:
            raise ValueError('%s: value type %d' % (what, vtype))
        v, = self.unpack(SCALAR_FMT[vtype], what)
        if vtype == T_BOOL and v not in (0, 1):
            raise ValueError('%s: bool byte %d' % (what, v))
        return v

    def tensor_bytes(self, t):
        blk, bsz = GGML_BLOCK[t['type']]
        if t['ne'][0] % blk:
            raise ValueError('%s: ne0 %d not a multiple of the block size %d' % (t['name'], t['ne'][0], blk))
        return int(np.prod(t['ne'])) // blk * bsz

    def read_tensor(self, t):
        o = self.data_start + t['offset']
        return memoryview(self.buf)[o:o + self.tensor_bytes(t)]  # a view: the embedding is hundreds of MB


def dequant_q4_0(raw, n_rows, K):
    """ggml block_q4_0: fp16 d, then 16 bytes; byte j = element j (low nibble) | element j+16 (high)."""
    blocks = np.frombuffer(raw, dtype=np.uint8).reshape(n_rows, K // 32, 18)
    d = blocks[:, :, :2].copy().view('<f2').astype(np.float32)  # [rows, nb, 1]
    qs = blocks[:, :, 2:]
    q = np.concatenate([qs & 0x0F, qs >> 4], axis=-1).astype(np.float32) - 8
    return (q * d).reshape(n_rows, K)


def dequant_matmulnbits(b, scales, n_rows, K):
    """ONNX MatMulNBits (4 bits, block 32, no zero points): byte k of a block = element 2k (low) | 2k+1 (high)."""
    b = np.asarray(b, dtype=np.uint8)[:n_rows].reshape(n_rows, K // 32, 16)
    q = np.empty((n_rows, K // 32, 32), dtype=np.float32)
    q[:, :, 0::2] = b & 0x0F
    q[:, :, 1::2] = b >> 4
    s = np.asarray(scales, dtype=np.float32).reshape(-1, K // 32)[:n_rows, :, None]
    return ((q - 8) * s).reshape(n_rows, K)


def check_gguf(path, onnx_model=None, quiet=False):
    """Validates a GGUF written by this tool against the spec and what llama.cpp's qwen2 loader reads.
    Returns a list of problems (empty = OK). Given the source OnnxModel, layer 0's weights are also
    decoded both ways and compared (catches a wrong nibble order, scale layout or transpose)."""
    errs = []
    try:
        r = GGUFReader(path)
    except (ValueError, UnicodeDecodeError, struct.error) as e:
        return ['%s: unreadable: %s' % (path, e)]
    kv, kt = r.kv, r.kv_types
    # keys llama.cpp reads with a fixed type (a wrong type is a load error there, not a conversion)
    want = {'general.architecture': T_STRING, 'general.alignment': T_UINT32, 'general.file_type': T_UINT32,
            'qwen2.context_length': T_UINT32, 'qwen2.embedding_length': T_UINT32, 'qwen2.block_count': T_UINT32,
            'qwen2.feed_forward_length': T_UINT32, 'qwen2.attention.head_count': T_UINT32,
            'qwen2.attention.head_count_kv': T_UINT32, 'qwen2.rope.freq_base': T_FLOAT32,
            'qwen2.attention.layer_norm_rms_epsilon': T_FLOAT32, 'tokenizer.ggml.model': T_STRING,
            'tokenizer.ggml.pre': T_STRING, 'tokenizer.ggml.tokens': T_ARRAY,
            'tokenizer.ggml.token_type': T_ARRAY, 'tokenizer.ggml.merges': T_ARRAY}
    for k, t in want.items():
        if k not in kv:
            errs.append('missing key %s' % k)
        elif kt[k] != t:
            errs.append('key %s has type %d, want %d' % (k, kt[k], t))
    for k in ('tokenizer.ggml.eos_token_id', 'tokenizer.ggml.bos_token_id', 'tokenizer.ggml.padding_token_id'):
        if k in kv and kt[k] not in INT_TYPES:
            errs.append('key %s has type %d, want an integer' % (k, kt[k]))
    if kv.get('general.architecture') != 'qwen2':
        errs.append('general.architecture = %r' % kv.get('general.architecture'))
    if errs:
        return errs
    # ---- tensors: known type, offsets aligned, inside the data section, not overlapping
    data_size = r.size - r.data_start
    if data_size < 0:
        return ['data section starts at %d, past the end of the file (%d)' % (r.data_start, r.size)]
    end_max, spans = 0, []
    by_name = {}
    for t in r.tensors:
        if t['name'] in by_name:
            errs.append('duplicate tensor %s' % t['name'])
        by_name[t['name']] = t
        if t['type'] not in GGML_BLOCK:
            errs.append('%s: ggml type %d not written by this tool' % (t['name'], t['type']))
            continue
        if any(d <= 0 for d in t['ne']):
            errs.append('%s: dims %s' % (t['name'], t['ne']))
            continue
        try:
            nb = r.tensor_bytes(t)
        except ValueError as e:
            errs.append(str(e))
            continue
        if t['offset'] % r.alignment:
            errs.append('%s: offset %d not aligned to %d' % (t['name'], t['offset'], r.alignment))
        if t['offset'] + nb > data_size:
            errs.append('%s: data [%d, %d) past the end of the data section (%d bytes)'
                        % (t['name'], t['offset'], t['offset'] + nb, data_size))
        spans.append((t['offset'], t['offset'] + nb, t['name']))
        end_max = max(end_max, t['offset'] + nb)
    spans.sort()
    for (a0, a1, an), (b0, b1, bn) in zip(spans, spans[1:]):
        if b0 < a1:
            errs.append('tensors %s and %s overlap' % (an, bn))
    if data_size - end_max >= r.alignment:
        errs.append('%d bytes after the last tensor (more than the alignment padding)' % (data_size - end_max))
    # ---- the qwen2 tensor set and shapes llama.cpp expects from the hyper-parameters
    H, L = kv['qwen2.embedding_length'], kv['qwen2.block_count']
    F, nh, nkv = kv['qwen2.feed_forward_length'], kv['qwen2.attention.head_count'], \
        kv['qwen2.attention.head_count_kv']
    hd = H // nh if nh else 0
    emb = by_name.get('token_embd.weight')
    if emb is None or len(emb['ne']) != 2 or emb['ne'][0] != H:
        errs.append('token_embd.weight: %s (want [%d, n_vocab])' % (emb and emb['ne'], H))
        return errs
    V = emb['ne'][1]
    shapes = {'token_embd.weight': [H, V], 'output_norm.weight': [H]}
    if 'output.weight' in by_name:
        shapes['output.weight'] = [H, V]
    for i in range(L):
        b = 'blk.%d.' % i
        shapes.update({b + 'attn_norm.weight': [H], b + 'ffn_norm.weight': [H],
                       b + 'attn_q.weight': [H, nh * hd], b + 'attn_q.bias': [nh * hd],
                       b + 'attn_k.weight': [H, nkv * hd], b + 'attn_k.bias': [nkv * hd],
                       b + 'attn_v.weight': [H, nkv * hd], b + 'attn_v.bias': [nkv * hd],
                       b + 'attn_output.weight': [nh * hd, H], b + 'ffn_gate.weight': [H, F],
                       b + 'ffn_up.weight': [H, F], b + 'ffn_down.weight': [F, H]})
    for n, ne in shapes.items():
        if n not in by_name:
            errs.append('missing tensor %s' % n)
        elif by_name[n]['ne'] != ne:
            errs.append('%s: dims %s, want %s' % (n, by_name[n]['ne'], ne))
    for n in by_name:
        if n not in shapes:
            errs.append('unexpected tensor %s' % n)
    # ---- tokenizer: one token / type per embedding row, ids in range
    toks, types = kv['tokenizer.ggml.tokens'], kv['tokenizer.ggml.token_type']
    if len(toks) != V or len(types) != V:
        errs.append('%d tokens / %d token types for %d embedding rows' % (len(toks), len(types), V))
    for k in ('tokenizer.ggml.eos_token_id', 'tokenizer.ggml.bos_token_id', 'tokenizer.ggml.padding_token_id'):
        if k in kv and not 0 <= kv[k] < V:
            errs.append('%s = %d out of range' % (k, kv[k]))
    if any(' ' not in m for m in kv['tokenizer.ggml.merges']):
        errs.append('a merge without a space separator')
    # ---- values: finite scales / floats (sampled: the first layer and the small tensors)
    for n in ['token_embd.weight', 'output_norm.weight'] + [n for n in shapes if n.startswith('blk.0.')]:
        t = by_name.get(n)
        if t is None or t['type'] not in GGML_BLOCK or t['offset'] + r.tensor_bytes(t) > data_size:
            continue
        raw = r.read_tensor(t)
        if t['type'] == GGML_Q4_0:
            v = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 18)[:, :2].copy().view('<f2')
        else:
            v = np.frombuffer(raw, dtype='<f4' if t['type'] == GGML_F32 else '<f2')
        if not np.all(np.isfinite(v)):
            errs.append('%s: non-finite values' % n)
    # ---- against the ONNX weights: layer 0, the first 64 rows (output features) of each linear weight
    compared = 0
    if onnx_model is not None and not errs:
        m = onnx_model
        for n in m.nodes:
            mm = ROLE_RE.search(n.name or '') or (ROLE_RE.search(n.input[1]) if len(n.input) > 1 else None)
            if n.op_type not in ('MatMulNBits', 'MatMul') or mm is None or int(mm.group(1)) != 0:
                continue
            w = None if n.op_type == 'MatMulNBits' else m.init_source(n.input[1])
            if n.op_type == 'MatMul' and w is None:
                continue
            t = by_name.get('blk.0.%s.weight' % ROLE_NAMES[mm.group(2)])
            K, N = t['ne']
            rows = min(64, N)
            if n.op_type == 'MatMulNBits':
                if t['type'] != GGML_Q4_0:
                    errs.append('%s is not Q4_0' % t['name'])
                    continue
                got = dequant_q4_0(r.read_tensor(t)[:rows * (K // 32) * 18], rows, K)
                ref = dequant_matmulnbits(m.array(n.input[1]), m.array(n.input[2]), rows, K)
                # the scale goes through fp16 on both sides (q4f16) or is rounded to fp16 here (q4)
                tol = dict(rtol=2e-3, atol=1e-6)
            else:  # plain MatMul: [K, N] initializer, written transposed (row n = column n)
                dt = '<f4' if t['type'] == GGML_F32 else '<f2'
                got = np.frombuffer(r.read_tensor(t), dtype=dt, count=rows * K).astype(np.float32).reshape(rows, K)
                ref = np.asarray(m.array(w), dtype=np.float32)[:, :rows].T
                tol = dict(rtol=1e-3 if dt == '<f2' else 0, atol=1e-7 if dt == '<f2' else 0)
            if not np.allclose(got, ref, **tol):
                errs.append('%s: rows differ from the ONNX %s weight (max |diff| %g)'
                            % (t['name'], n.op_type, float(np.max(np.abs(got - ref)))))
            compared += 1
        if compared == 0:
            errs.append('no layer-0 linear weight found in the ONNX to compare with')
    if not quiet and not errs:
        print('onnx2gguf --check: %s OK: v%d, %d keys, %d tensors, alignment %d, data at %d, %d bytes, '
              'vocab %d, merges %d, layers %d%s' % (
                  path, r.version, r.n_kv, r.n_tensors, r.alignment, r.data_start, r.size, V,
                  len(kv['tokenizer.ggml.merges']), L,
                  ', layer-0 weights equal to the ONNX (%d matrices)' % compared if compared else ''))
    return errs


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('model_dir')
    ap.add_argument('-o', '--out', help='output .gguf (default MODEL_DIR/model-q4_0.gguf)')
    ap.add_argument('--onnx', help='model file inside MODEL_DIR (default: config qwasm_test_model.onnx, '
                                   'else onnx/model_q4f16.onnx, model_q4.onnx, model.onnx)')
    ap.add_argument('--name', help='general.name (default: folder name)')
    ap.add_argument('--f32-matmul', action='store_true', help='write float MatMul weights as F32, not F16')
    ap.add_argument('--check', action='store_true',
                    help='validate instead of converting: MODEL_DIR\'s GGUF (-o) against the spec and the ONNX, '
                         'or a .gguf file given in place of MODEL_DIR against the spec only')
    ap.add_argument('--quiet', action='store_true')
    args = ap.parse_args(argv)
    t0 = time.time()
    md = args.model_dir
    if args.check and os.path.isfile(md):
        errs = check_gguf(md, quiet=args.quiet)
        for e in errs:
            print('onnx2gguf --check: %s: %s' % (md, e), file=sys.stderr)
        return 1 if errs else 0
    cfg = json.load(open(os.path.join(md, 'config.json'), encoding='utf-8'))
    rel = args.onnx or (cfg.get('qwasm_test_model') or {}).get('onnx')
    if not rel:
        for f in ('onnx/model_q4f16.onnx', 'onnx/model_q4.onnx', 'onnx/model.onnx'):
            if os.path.exists(os.path.join(md, f)):
                rel = f
                break
    if not rel:
        raise SystemExit('onnx2gguf: no ONNX model in %s/onnx' % md)
    out = args.out or os.path.join(md, 'model-q4_0.gguf')
    if args.check:
        errs = check_gguf(out, OnnxModel(os.path.join(md, rel)), quiet=args.quiet)
        for e in errs:
            print('onnx2gguf --check: %s: %s' % (out, e), file=sys.stderr)
        return 1 if errs else 0
    m = OnnxModel(os.path.join(md, rel))
    plans, shp = plan_tensors(m, cfg, args)

    H = cfg.get('hidden_size', shp['hidden'])
    L = cfg.get('num_hidden_layers', shp['layers'])
    nh = cfg.get('num_attention_heads')
    nkv = cfg.get('num_key_value_heads', nh)
    hd = H // nh
    checks = [(H, shp['hidden'], 'hidden_size'), (L, shp['layers'], 'num_hidden_layers'),
              (cfg.get('intermediate_size', shp['ffn']), shp['ffn'], 'intermediate_size'),
              (nh * hd, shp['q_out'], 'heads*head_dim'), (nkv * hd, shp['kv_out'], 'kv_heads*head_dim')]
    for want, got, what in checks:
        if want != got:
            raise SystemExit('onnx2gguf: config %s=%s but the graph has %s' % (what, want, got))

    kv = KV()
    name = args.name or os.path.basename(os.path.normpath(md))
    kv.add('general.architecture', T_STRING, 'qwen2')
    kv.add('general.name', T_STRING, name)
    kv.add('general.file_type', T_UINT32, LLAMA_FTYPE_MOSTLY_Q4_0)
    kv.add('general.quantization_version', T_UINT32, 2)
    kv.add('general.alignment', T_UINT32, ALIGN)
    kv.add('qwen2.context_length', T_UINT32, int(cfg.get('max_position_embeddings', 32768)))
    kv.add('qwen2.embedding_length', T_UINT32, int(H))
    kv.add('qwen2.block_count', T_UINT32, int(L))
    kv.add('qwen2.feed_forward_length', T_UINT32, int(shp['ffn']))
    kv.add('qwen2.attention.head_count', T_UINT32, int(nh))
    kv.add('qwen2.attention.head_count_kv', T_UINT32, int(nkv))
    kv.add('qwen2.rope.freq_base', T_FLOAT32, float(cfg.get('rope_theta', 1000000.0)))
    kv.add('qwen2.attention.layer_norm_rms_epsilon', T_FLOAT32, float(cfg.get('rms_norm_eps', 1e-6)))
    tk = tokenizer_kv(kv, md, shp['vocab'], cfg)

    # ---- tensor infos
    infos = bytearray()
    offset = 0
    offsets = []
    for p in plans:
        offsets.append(offset)
        infos += gstr(p.name)
        infos += struct.pack('<I', len(p.ne))
        infos += struct.pack('<%dQ' % len(p.ne), *p.ne)
        infos += struct.pack('<IQ', p.gtype, offset)
        offset += (p.nbytes() + ALIGN - 1) // ALIGN * ALIGN
    tmp = out + '.tmp'
    with open(tmp, 'wb') as f:
        f.write(struct.pack('<IIQQ', GGUF_MAGIC, GGUF_VERSION, len(plans), len(kv.items)))
        for it in kv.items:
            f.write(it)
        f.write(infos)
        pad = (-f.tell()) % ALIGN
        f.write(b'\0' * pad)
        base = f.tell()
        for p, off in zip(plans, offsets):
            assert f.tell() - base == off, p.name
            data = p.fetch()
            if len(data) != p.nbytes():
                raise SystemExit('onnx2gguf: %s: %d bytes, expected %d' % (p.name, len(data), p.nbytes()))
            f.write(data)
            f.write(b'\0' * ((-len(data)) % ALIGN))
        total = f.tell()
    # read back before it replaces a good file: a writer bug must not reach llama.cpp as a load error
    errs = check_gguf(tmp, m, quiet=True)
    if errs:
        raise SystemExit('onnx2gguf: the written file fails its check (kept as %s):\n  %s' % (tmp, '\n  '.join(errs)))
    os.replace(tmp, out)
    if not args.quiet:
        nq = sum(1 for p in plans if p.gtype == GGML_Q4_0)
        print('onnx2gguf: %s -> %s  tensors=%d (q4_0 %d) layers=%d hidden=%d ffn=%d heads=%d/%d vocab=%d '
              'merges=%d eos=%s tied=%s bytes=%d time=%.1fs' % (
                  rel, out, len(plans), nq, L, H, shp['ffn'], nh, nkv, tk['n_tokens'], tk['n_merges'], tk['eos'],
                  shp['tied'], total, time.time() - t0))
    return out


if __name__ == '__main__':
    r = main()
    sys.exit(r if isinstance(r, int) else 0)  # --check returns an exit status, a conversion its output path
