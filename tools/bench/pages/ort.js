// onnxruntime-web 1.30 (wasm EP) driven like optimum / Transformers.js drive a
// text-generation-with-past decoder: prefill with empty past, then one token per run feeding present.* back.
import { now, argmaxLast, summarize, cachedFetchBuffer, markReady, fail } from './common.js';

let ort = null;
let session = null;
let cfg = null;

async function load({ model, onnx = 'onnx/model_q4f16.onnx', threads = 2, external = null }) {
  const t0 = now();
  const info = {};
  ort = ort || await import('/node_modules/onnxruntime-web/dist/ort.wasm.min.mjs');
  ort.env.wasm.numThreads = threads;
  ort.env.wasm.wasmPaths = '/node_modules/onnxruntime-web/dist/';
  ort.env.logLevel = 'error';
  const base = model.endsWith('/') ? model : model + '/';
  cfg = await (await fetch(base + 'config.json')).json();
  const modelBuf = await cachedFetchBuffer(base + onnx, 'bench-ort', info);
  const opts = { executionProviders: ['wasm'], graphOptimizationLevel: 'all' };
  if (external) {
    const dataBuf = await cachedFetchBuffer(base + 'onnx/' + external, 'bench-ort', info);
    opts.externalData = [{ path: external, data: dataBuf }];
  }
  const tf = now();
  session = await ort.InferenceSession.create(modelBuf, opts);
  return { loadMs: now() - t0, fetchMs: tf - t0, sessionMs: now() - tf, ortVersion: ort.env.versions?.web, ...info };
}

async function generate({ promptIds, maxTokens = 128 }) {
  const V = cfg.vocab_size, L = cfg.num_hidden_layers, nkv = cfg.num_key_value_heads;
  const hd = cfg.hidden_size / cfg.num_attention_heads;
  const names = session.inputNames;
  let past = {};
  for (let i = 0; i < L; i++) for (const kv of ['key', 'value']) {
    past[`past_key_values.${i}.${kv}`] = new ort.Tensor('float32', new Float32Array(0), [1, nkv, 0, hd]);
  }
  const tokens = [], times = [];
  const t0 = now();
  let ids = promptIds.slice();
  let pos = 0;
  for (let step = 0; step < maxTokens; step++) {
    const n = ids.length, total = pos + n;
    const feeds = {
      input_ids: new ort.Tensor('int64', BigInt64Array.from(ids, BigInt), [1, n]),
      attention_mask: new ort.Tensor('int64', new BigInt64Array(total).fill(1n), [1, total]),
    };
    if (names.includes('position_ids')) {
      const p = new BigInt64Array(n); for (let j = 0; j < n; j++) p[j] = BigInt(pos + j);
      feeds.position_ids = new ort.Tensor('int64', p, [1, n]);
    }
    Object.assign(feeds, past);
    const out = await session.run(feeds);
    const tok = argmaxLast(out.logits.data, V);
    times.push(now()); tokens.push(tok);
    const next = {};
    for (let i = 0; i < L; i++) for (const kv of ['key', 'value']) {
      next[`past_key_values.${i}.${kv}`] = out[`present.${i}.${kv}`];
    }
    for (const k in past) if (past[k] !== next[k] && past[k].dispose) past[k].dispose();
    out.logits.dispose && out.logits.dispose();
    past = next;
    pos = total; ids = [tok];
  }
  for (const k in past) past[k].dispose && past[k].dispose();
  return summarize(promptIds.length, t0, times, tokens);
}

async function unload() { if (session) { await session.release(); session = null; } }

try { markReady({ name: 'onnxruntime-web', load, generate, unload }); } catch (e) { fail(e); }
