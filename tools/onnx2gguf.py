#!/usr/bin/python3
"""Converts a Hugging Face-style Qwen2 ONNX model folder (tools/gen_model.py output, or an optimum /
onnx-community "text-generation-with-past" export) to a GGUF file that llama.cpp / wllama load.

    /usr/bin/python3 tools/onnx2gguf.py MODEL_DIR [-o OUT.gguf] [--onnx onnx/model_q4f16.onnx] [--name NAME]

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

Metadata: general.architecture=qwen2 with qwen2.* hyper-parameters from config.json (checked against the
tensor shapes) and the real tokenizer from tokenizer.json: tokenizer.ggml.model=gpt2, pre=qwen2, tokens
(padded with [PAD<i>] up to the embedding's row count, as convert_hf_to_gguf does), token_type, merges,
eos/bos/padding ids, add_bos_token=false and the chat template from tokenizer_config.json.
"""
import argparse
import json
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


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('model_dir')
    ap.add_argument('-o', '--out', help='output .gguf (default MODEL_DIR/model-q4_0.gguf)')
    ap.add_argument('--onnx', help='model file inside MODEL_DIR (default: config qwasm_test_model.onnx, '
                                   'else onnx/model_q4f16.onnx, model_q4.onnx, model.onnx)')
    ap.add_argument('--name', help='general.name (default: folder name)')
    ap.add_argument('--f32-matmul', action='store_true', help='write float MatMul weights as F32, not F16')
    ap.add_argument('--quiet', action='store_true')
    args = ap.parse_args(argv)
    t0 = time.time()
    md = args.model_dir
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
    os.replace(tmp, out)
    if not args.quiet:
        nq = sum(1 for p in plans if p.gtype == GGML_Q4_0)
        print('onnx2gguf: %s -> %s  tensors=%d (q4_0 %d) layers=%d hidden=%d ffn=%d heads=%d/%d vocab=%d '
              'merges=%d eos=%s tied=%s bytes=%d time=%.1fs' % (
                  rel, out, len(plans), nq, L, H, shp['ffn'], nh, nkv, tk['n_tokens'], tk['n_merges'], tk['eos'],
                  shp['tied'], total, time.time() - t0))
    return out


if __name__ == '__main__':
    main()
