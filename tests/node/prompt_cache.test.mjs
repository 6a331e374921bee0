// Long prompts in the JS API (issue #18): the prompt cache (rt.generate({cachePrefix: true})) saves the KV state of
// the system prompt in the model's Node cache, a later load reads it instead of prefilling it and gives the same
// tokens, a damaged entry is refused by the core, deleted and made again; multi-turn chat keeps the KV of the
// earlier turns (the second turn prefills only its new tokens, with a fresh runtime's tokens); kvCache: 'int8'
// and the KV figures of rt.stats(). Needs build/wasm and build/models/ (tools/gen/gen_test_models.sh); skips otherwise.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Qwasm } from '../../js/page/qwasm.js';
import { startTestServer, MODELS, WASM_DIR, modelDir, wasmReady } from './helpers.mjs';

const MODEL = 'small-q4f16-op18-ext';
const dir = modelDir(MODEL);
const skip = !wasmReady() ? 'build/wasm has no model exports yet' : !dir ? `build/models/${MODEL} is missing (run tools/gen/gen_test_models.sh)` : false;
const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'qwasm-pc-'));
const SYSTEM = 'Eres un asistente clínico. Redacta epicrisis en español a partir de las notas del paciente: ' +
  'motivo de ingreso, antecedentes, evolución, tratamiento, estado al alta y recomendaciones. '.repeat(6);
const turn1 = [{ role: 'system', content: SYSTEM }, { role: 'user', content: 'Paciente de 70 años con neumonía.' }];
const opts = { maxTokens: 10, greedy: true, ignoreEos: true };

async function collect(rt, o) {
  const ids = []; let last = null; let text = ''; const prefill = [];
  for await (const ev of rt.generate({ ...o, includePrefill: true })) {
    if (ev.kind === 'token') { ids.push(ev.id); text += ev.text; }
    if (ev.kind === 'prefill') prefill.push(ev.nPromptDone);
    last = ev;
  }
  return { ids, last, text, prefill, stats: last.stats };
}

function kvFile(cacheDir) {
  const out = [];
  const walk = (d) => { for (const e of fs.readdirSync(d, { withFileTypes: true })) { const p = path.join(d, e.name); if (e.isDirectory()) walk(p); else if (/kv-v\d+-.*\.bin$/.test(decodeURIComponent(e.name))) out.push(p); } };
  walk(cacheDir);
  return out;
}

test('the prompt cache: saved, read at the next load with the same tokens, a damaged entry rebuilt', { skip }, async () => {
  const srv = await startTestServer(MODELS);
  const cacheDir = tmp();
  const url = `${srv.url}${MODEL}/`;
  try {
    const plain = await Qwasm.load({ model: dir, wasmBase: WASM_DIR });
    const ref = await collect(plain, { messages: turn1, ...opts });
    await plain.dispose();

    const rt = await Qwasm.load({ model: url, wasmBase: WASM_DIR, cacheDir });
    const a = await collect(rt, { messages: turn1, ...opts, cachePrefix: true });
    await rt.dispose();
    assert.deepEqual(a.ids, ref.ids, 'saving does not change the tokens');
    assert.equal(a.stats.prompt_cache.state, 'saved', JSON.stringify(a.stats.prompt_cache));
    const n = a.stats.prompt_cache.tokens;
    assert.ok(n > 50 && n < a.last.nPrompt, `prefix of ${n} tokens`);
    assert.equal(kvFile(cacheDir).length, 1);

    const rt2 = await Qwasm.load({ model: url, wasmBase: WASM_DIR, cacheDir });
    const b = await collect(rt2, { messages: turn1, ...opts, cachePrefix: true });
    assert.deepEqual(b.ids, ref.ids, 'same tokens with the prompt cache');
    assert.equal(b.stats.prompt_cache.state, 'loaded');
    assert.ok(b.prefill[0] > n, `the prefix was not prefilled again (first prefill step ends at ${b.prefill[0]})`);
    await rt2.dispose();

    const f = kvFile(cacheDir)[0];
    const bytes = fs.readFileSync(f);
    bytes[bytes.length - 50] ^= 0x55;
    fs.writeFileSync(f, bytes);
    const rt3 = await Qwasm.load({ model: url, wasmBase: WASM_DIR, cacheDir });
    const c = await collect(rt3, { messages: turn1, ...opts, cachePrefix: true });
    assert.deepEqual(c.ids, ref.ids, 'a damaged entry: the same tokens from a full prefill');
    assert.equal(c.stats.prompt_cache.state, 'rebuilt', JSON.stringify(c.stats.prompt_cache));
    assert.match(c.stats.prompt_cache.error, /checksum/);
    await rt3.dispose();
    const rt4 = await Qwasm.load({ model: url, wasmBase: WASM_DIR, cacheDir });
    const d = await collect(rt4, { messages: turn1, ...opts, cachePrefix: true });
    assert.equal(d.stats.prompt_cache.state, 'loaded', 'the rebuilt entry is read at the next load');
    assert.deepEqual(d.ids, ref.ids);
    await rt4.dispose();
  } finally { await srv.close(); }
});

test('multi-turn chat keeps the KV of earlier turns: the second turn prefills its new tokens only', { skip }, async () => {
  const rt = await Qwasm.load({ model: dir, wasmBase: WASM_DIR });
  const t1 = await collect(rt, { messages: turn1, ...opts });
  const kept = t1.stats.kv_tokens;
  const turn2 = [...turn1, { role: 'assistant', content: t1.text }, { role: 'user', content: 'Añade la medicación al alta.' }];
  const t2 = await collect(rt, { messages: turn2, ...opts });
  await rt.dispose();
  assert.ok(kept > 50, `${kept} positions cached after turn 1`);
  // the first prefill step starts after the reused positions (at most one chunk of new tokens past them)
  assert.ok(t2.prefill[0] > kept - 12 && t2.prefill[0] - 64 <= t2.last.nPrompt, `turn 2 first prefill step ends at ${t2.prefill[0]} of ${t2.last.nPrompt}`);
  assert.ok(t2.prefill.length <= Math.ceil((t2.last.nPrompt - kept + 12) / 64), `${t2.prefill.length} prefill steps`);
  const fresh = await Qwasm.load({ model: dir, wasmBase: WASM_DIR });
  const f = await collect(fresh, { messages: turn2, ...opts });
  await fresh.dispose();
  assert.deepEqual(t2.ids, f.ids, 'same tokens as a fresh runtime prefilling the whole conversation');
});

test("kvCache: 'int8' and the KV figures of rt.stats()", { skip }, async () => {
  const a = await Qwasm.load({ model: dir, wasmBase: WASM_DIR });
  const b = await Qwasm.load({ model: dir, wasmBase: WASM_DIR, kvCache: 'int8', maxContext: 32768 });
  const ra = await collect(a, { messages: turn1, ...opts });
  const rb = await collect(b, { messages: turn1, ...opts });
  await a.dispose(); await b.dispose();
  assert.equal(ra.stats.kv.dtype, 'fp16');
  assert.equal(rb.stats.kv.dtype, 'int8');
  // one byte per value plus a 4-byte scale per row (this model's rows are short: 0.75 of fp16; 0.52 at head_dim 128)
  assert.ok(rb.stats.kv.bytes_per_token < ra.stats.kv.bytes_per_token, `${rb.stats.kv.bytes_per_token} vs ${ra.stats.kv.bytes_per_token}`);
  assert.equal(rb.stats.max_context, 32768);
  assert.ok(rb.stats.kv.reserved_bytes <= rb.stats.kv.bytes_per_token * 512, 'a 32K limit reserves what the prompt needs');
  assert.equal(rb.ids.length, opts.maxTokens);
  await assert.rejects(Qwasm.load({ model: dir, wasmBase: WASM_DIR, kvCache: 'int4' }), (e) => e.code === 'ARG' && /kv/i.test(e.message));
});
