// The generated test models (tools/gen/gen_test_models.sh -> build/models/) load in onnxruntime-node, the
// onnxruntime references are deterministic, the graph is self-consistent (one-shot prefill == KV-cache
// decoding, left padding masked), and the big Qwen2.5-1.5B/0.5B-shaped models, when generated, have
// the structure of the real exports.
import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import ort from 'onnxruntime-node';
import { runGreedy, createSession, findOnnx, decodeLogits } from '../../tools/ref/ort_ref.mjs';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const models = path.join(root, 'build', 'models');
const TINY = ['tiny-fp32-op14', 'tiny-fp32-op18-ext', 'tiny-q4-op14', 'tiny-q4f16-op18-ext'];
const PY = '/usr/bin/python3';
const have = (m) => fs.existsSync(path.join(models, m, '.gen_stamp.json'));
const i64 = (a) => BigInt64Array.from(a, (v) => BigInt(v));

function maxAbsDiff(a, b) {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

function prefillFeeds(sess, cfg, ids, mask, pos) {
  const kv = cfg.num_key_value_heads, hd = cfg.hidden_size / cfg.num_attention_heads;
  const f = {
    input_ids: new ort.Tensor('int64', i64(ids), [1, ids.length]),
    attention_mask: new ort.Tensor('int64', i64(mask), [1, mask.length]),
    position_ids: new ort.Tensor('int64', i64(pos), [1, pos.length]),
  };
  for (const n of sess.inputNames.filter((x) => x.startsWith('past_key_values.'))) {
    f[n] = new ort.Tensor('float32', new Float32Array(0), [1, kv, 0, hd]);
  }
  return f;
}

for (const m of TINY) {
  const dir = path.join(models, m);
  test(`${m}: loads, interface, deterministic reference`, { skip: !have(m) && 'run tools/gen/gen_test_models.sh' }, async () => {
    const cfg = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
    const L = cfg.num_hidden_layers;
    const sess = await createSession(dir, findOnnx(dir), 1);
    assert.deepEqual(sess.inputNames.slice(0, 3), ['input_ids', 'attention_mask', 'position_ids']);
    assert.equal(sess.inputNames.length, 3 + 2 * L);
    assert.equal(sess.outputNames.length, 1 + 2 * L);
    assert.equal(sess.outputNames[0], 'logits');
    assert.equal(sess.inputNames[3], 'past_key_values.0.key');
    assert.equal(sess.outputNames[2], 'present.0.value');

    const ref = JSON.parse(fs.readFileSync(path.join(dir, 'ref.json'), 'utf8'));
    assert.equal(ref.tokens.length, 32);
    const a = await runGreedy(dir, { promptIds: ref.prompt_ids, steps: 32, session: sess });
    const b = await runGreedy(dir, { promptIds: ref.prompt_ids, steps: 32, threads: 2 });
    assert.deepEqual(a.tokens, b.tokens);
    assert.deepEqual(a.tokens, ref.tokens);
    for (let i = 0; i < 32; i++) assert.ok(maxAbsDiff(a.steps[i].row, decodeLogits(ref, i)) < 1e-3);
    assert.ok(new Set(ref.tokens).size >= 8, 'greedy output should vary');
    assert.ok(ref.steps.filter((s) => s.top2_margin > 0.25).length >= 16, 'most top-2 margins not tiny');

    // one-shot prefill of prompt + generated tokens == step-by-step logits (KV cache, positions, mask)
    const ids = [...ref.prompt_ids, ...ref.tokens.slice(0, 31)];
    const out = await sess.run(prefillFeeds(sess, cfg, ids, ids.map(() => 1), ids.map((_, i) => i)));
    const V = out.logits.dims[2];
    const tol = cfg['transformers.js_config'].dtype === 'q4f16' ? 0.1 : 1e-3;
    for (let s = 0; s < 32; s++) {
      const p = ref.prompt_ids.length - 1 + s;
      assert.ok(maxAbsDiff(out.logits.data.subarray(p * V, (p + 1) * V), decodeLogits(ref, s)) < tol, `step ${s}`);
    }
    // left padding (mask 0) does not change the last logits
    const padded = [0, 0, 0, ...ref.prompt_ids];
    const o2 = await sess.run(prefillFeeds(sess, cfg, padded, padded.map((_, i) => +(i >= 3)),
                                           padded.map((_, i) => Math.max(0, i - 3))));
    const last = o2.logits.data.subarray((padded.length - 1) * V, padded.length * V);
    assert.ok(maxAbsDiff(last, decodeLogits(ref, 0)) < tol);
  });
}

test('tiny fp32 and q4 variants are the same model (MatMulNBits dequantisation = fp32 weights)',
     { skip: !(have('tiny-fp32-op14') && have('tiny-q4-op14')) && 'models missing' }, () => {
  const a = JSON.parse(fs.readFileSync(path.join(models, 'tiny-fp32-op14', 'ref.json'), 'utf8'));
  const b = JSON.parse(fs.readFileSync(path.join(models, 'tiny-q4-op14', 'ref.json'), 'utf8'));
  assert.deepEqual(a.prompt_ids, b.prompt_ids);
  for (let i = 0; i < 32; i++) assert.ok(maxAbsDiff(decodeLogits(a, i), decodeLogits(b, i)) < 1e-3);
});

test('small-q4f16-op18-ext: real vocab, tokenizer files, base64 reference',
     { skip: !have('small-q4f16-op18-ext') && 'run tools/gen/gen_test_models.sh' }, () => {
  const dir = path.join(models, 'small-q4f16-op18-ext');
  const cfg = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
  assert.equal(cfg.vocab_size, 151936);
  assert.deepEqual(JSON.parse(fs.readFileSync(path.join(dir, 'generation_config.json'), 'utf8')).eos_token_id,
                   [151645, 151643]);
  assert.ok(fs.statSync(path.join(dir, 'tokenizer.json')).size > 1e6);
  assert.ok(fs.existsSync(path.join(dir, 'tokenizer_config.json')));
  const ref = JSON.parse(fs.readFileSync(path.join(dir, 'ref.json'), 'utf8'));
  assert.equal(ref.logits_encoding, 'f32-base64');
  assert.equal(decodeLogits(ref, 0).length, 151936);
  assert.equal(ref.tokens[0], decodeLogits(ref, 0).reduce((bi, v, i, r) => (v > r[bi] ? i : bi), 0));
});

const BIG = [
  ['qwen2.5-1.5b-q4f16-op18-ext', 'model_q4f16.onnx', 28, 196, 18],
  ['qwen2.5-0.5b-q4f16-op14', 'model_q4f16.onnx', 24, 168, 14],
];
for (const [m, file, L, nbits, opset] of BIG) {
  test(`${m}: structure (when generated)`, { skip: !have(m) && 'not generated (tools/gen/gen_test_models.sh --big)' }, () => {
    const r = spawnSync(PY, ['tools/gen/check_model.py', path.join(models, m, 'onnx', file), '--json',
                             '--expect-layers', String(L), '--expect-matmulnbits', String(nbits)],
                        { cwd: root, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr + r.stdout);
    const d = JSON.parse(r.stdout);
    assert.equal(d.opsets['ai.onnx'], opset);
    assert.equal(d.opsets['com.microsoft'], 1);
    assert.equal(d.op_histogram.MatMul, 2 * L + 1 + 1); // QK^T and PV per layer, lm_head, rotary
    assert.equal(d.op_histogram.Gather >= 1, true);
    assert.deepEqual(Object.keys(d.matmulnbits_attrs).map((k) => JSON.parse(k)),
                     [{ accuracy_level: 4, bits: 4, block_size: 32 }]);
    if (opset === 18) assert.deepEqual(d.external_files, [file + '_data']);
    else assert.equal(d.external_bytes, 0);
  });
}
