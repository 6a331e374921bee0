// The onnxruntime-web fallback engine: a model whose graph has an op qwasm lacks (a Dropout, which is the
// identity at inference, inserted after the first Softmax) is refused with UNSUPPORTED by default, and with
// `fallback: 'onnxruntime-web'` runs through the same API: onnxruntime-web computes the logits, the C core
// keeps tokenizer, template, sampler and stop logic. Greedy tokens equal onnxruntime-node's reference
// (ref.json) of the original model; stats().engine says which engine runs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { Qwasm } from '../../js/page/qwasm.js';
import { ROOT, WASM_DIR, modelDir, wasmReady } from './helpers.mjs';

const tiny = modelDir('tiny-q4f16-op18-ext');
const small = modelDir('small-q4f16-op18-ext');
const skip = !wasmReady() ? 'build/wasm is missing' : !tiny || !small ? 'test models missing (tools/gen/gen_test_models.sh)' : false;

/** Copies a model folder and inserts Dropout after the first Softmax of its graph. */
function withDropout(dir) {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'qwasm-fallback-'));
  fs.cpSync(dir, out, { recursive: true });
  const onnx = path.join(out, 'onnx', fs.readdirSync(path.join(out, 'onnx')).find((f) => f.endsWith('.onnx')));
  execFileSync('/usr/bin/python3', [path.join(ROOT, 'tools/gen/insert_dropout.py'), onnx]);
  return out;
}

async function collect(rt, opts) {
  const ids = []; let text = ''; let last = null;
  for await (const ev of rt.generate(opts)) { if (ev.kind === 'token') { ids.push(ev.id); text += ev.text; } last = ev; }
  return { ids, text, last };
}

const ref = (dir) => JSON.parse(fs.readFileSync(path.join(dir, 'ref.json'), 'utf8'));

test('an unsupported op is refused by default, naming the node', { skip }, async () => {
  const dir = withDropout(tiny);
  try {
    await assert.rejects(Qwasm.load({ model: dir, wasmBase: WASM_DIR }), (e) => {
      assert.equal(e.code, 'UNSUPPORTED');
      assert.match(e.message, /Dropout/);
      return true;
    });
  } finally { fs.rmSync(dir, { recursive: true, force: true }); }
});

test("fallback: 'onnxruntime-web' runs it: greedy ids equal onnxruntime-node's, engine reported", { skip }, async () => {
  const dir = withDropout(tiny);
  const r = ref(tiny);
  const rt = await Qwasm.load({ model: dir, wasmBase: WASM_DIR, fallback: 'onnxruntime-web' });
  try {
    assert.equal(rt.info.engine, 'onnxruntime-web');
    assert.match(rt.info.fallback_reason, /Dropout/);
    const n = 16;
    const a = await collect(rt, { promptIds: r.prompt_ids, maxTokens: n, greedy: true, ignoreEos: true });
    assert.deepEqual(a.ids, r.tokens.slice(0, n));
    assert.equal(a.last.stopReason, 'max_tokens');
    const st = await rt.stats();
    assert.equal(st.engine, 'onnxruntime-web');
    // a second generation starts the other engine's past over and gives the same ids
    const b = await collect(rt, { promptIds: r.prompt_ids, maxTokens: n, greedy: true, ignoreEos: true });
    assert.deepEqual(b.ids, a.ids);
  } finally { await rt.dispose(); fs.rmSync(dir, { recursive: true, force: true }); }
});

test('fallback with text: chat template, tokenizer and stop logic stay in C; ids equal qwasm on the original', { skip }, async () => {
  const dir = withDropout(small);
  const messages = [{ role: 'user', content: 'Redacta la epicrisis de un paciente con neumonía.' }];
  const opts = { messages, maxTokens: 12, greedy: true, ignoreEos: true };
  const own = await Qwasm.load({ model: small, wasmBase: WASM_DIR });
  let want;
  try { want = await collect(own, opts); } finally { await own.dispose(); }
  const rt = await Qwasm.load({ model: dir, wasmBase: WASM_DIR, fallback: 'onnxruntime-web' });
  try {
    const got = await collect(rt, opts);
    assert.deepEqual(got.ids, want.ids);
    assert.equal(got.text, want.text);
    assert.deepEqual(Array.from(await rt.tokenize('5 mg/kg/día')), Array.from(await (async () => {
      const o = await Qwasm.load({ model: small, wasmBase: WASM_DIR });
      try { return o.tokenize('5 mg/kg/día'); } finally { await o.dispose(); }
    })()));
  } finally { await rt.dispose(); fs.rmSync(dir, { recursive: true, force: true }); }
});
