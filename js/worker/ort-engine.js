// ort-engine.js - onnxruntime-web as qwasm's fallback engine (load option `fallback: 'onnxruntime-web'`).
//
// When qwasm's executor refuses a graph (an op it lacks), the runtime worker loads the C core with an external
// decoder (tokenizer, chat template, sampler, stop strings and the decode loop stay in C) and this module
// computes the logits the C loop asks for (QW_GEN_FEED events), with onnxruntime-web's wasm build, keeping
// the past key/values between calls as optimum's decoders do. onnxruntime-web needs each file in one buffer,
// so there is no memory cap on this path: the .onnx and its external data are read whole from the cache.
//
// Where onnxruntime-web comes from: npm (`onnxruntime-web`, a development dependency here); in a browser its
// dist/ folder must be served from the page's origin: `ortUrl` (default: <this folder>/../node_modules/
// onnxruntime-web/dist/ort.wasm.min.mjs). Nothing is fetched from elsewhere.

import { IS_NODE } from './env.js';

export const DEFAULT_ORT_URL = new URL('../../node_modules/onnxruntime-web/dist/ort.wasm.min.mjs', import.meta.url).href;

/** Reads a whole file of a qwasm file source ({size(name), read(name, offset, dst)}). */
function readWhole(src, name) {
  const n = src.size(name);
  if (n < 0) throw Object.assign(new Error(`${name}: not found`), { code: 'NOT_FOUND', file: name });
  const buf = new Uint8Array(n);
  const CHUNK = 64 << 20; // sources read in bounded pieces (a cache chunk at a time)
  for (let off = 0; off < n; off += CHUNK) src.read(name, off, buf.subarray(off, Math.min(n, off + CHUNK)));
  return buf;
}

const F16_EXP = new Float32Array(32);
for (let e = 0; e < 32; e++) F16_EXP[e] = 2 ** (e - 15);
function f16ToF32(h) {
  const s = h & 0x8000 ? -1 : 1, e = (h >> 10) & 31, m = h & 1023;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * F16_EXP[e] * (1 + m / 1024);
}

/**
 * Opens the graph with onnxruntime-web.
 * @param {{src:object, onnxFile:string, dataFiles:string[], config:object, threads?:number, ortUrl?:string}} o
 * @returns {Promise<{run:(ids:Int32Array, nPast:number)=>Promise<Float32Array>, release:()=>Promise<void>, version:string}>}
 */
export async function createOrtEngine(o) {
  let ort;
  try {
    ort = IS_NODE && !o.ortUrl ? await import('onnxruntime-web') : await import(o.ortUrl || DEFAULT_ORT_URL);
  } catch (e) {
    throw Object.assign(new Error(`the onnxruntime-web fallback is not available (${o.ortUrl || DEFAULT_ORT_URL}): ${e.message}`), { code: 'UNSUPPORTED' });
  }
  ort = ort.default && ort.default.InferenceSession ? ort.default : ort;
  if (!IS_NODE) ort.env.wasm.wasmPaths = new URL('./', o.ortUrl || DEFAULT_ORT_URL).href;
  // Its own threads would be workers started from this worker, which Firefox can hang on (js/worker/qwasm-pthread.js).
  ort.env.wasm.numThreads = o.threads || 1;
  ort.env.logLevel = 'error';
  const model = readWhole(o.src, o.onnxFile);
  // The graph names its data files relative to its own folder, as `location`.
  const dir = o.onnxFile.includes('/') ? o.onnxFile.slice(0, o.onnxFile.lastIndexOf('/') + 1) : '';
  const externalData = o.dataFiles.map((name) => ({ path: name.startsWith(dir) ? name.slice(dir.length) : name, data: readWhole(o.src, name) }));
  let session;
  try {
    session = await ort.InferenceSession.create(model, { executionProviders: ['wasm'], graphOptimizationLevel: 'all', externalData });
  } catch (e) {
    throw Object.assign(new Error(`${o.onnxFile}: onnxruntime-web could not load it either: ${e.message}`), { code: 'UNSUPPORTED', file: o.onnxFile });
  }
  const names = session.inputNames;
  const meta = new Map((session.inputMetadata || []).map((m) => [m.name, m]));
  const pastNames = names.filter((n) => n.startsWith('past_key_values.'));
  const cfg = o.config;
  const headDim = cfg.head_dim || cfg.hidden_size / cfg.num_attention_heads;
  const nKv = cfg.num_key_value_heads || cfg.num_attention_heads;
  const emptyPast = (name) => {
    const t = meta.get(name) && meta.get(name).type;
    return t === 'float16' ? new ort.Tensor('float16', new Uint16Array(0), [1, nKv, 0, headDim])
      : new ort.Tensor('float32', new Float32Array(0), [1, nKv, 0, headDim]);
  };
  let past = null, held = 0;
  const dropPast = () => { if (past) for (const t of Object.values(past)) t.dispose && t.dispose(); past = null; held = 0; };

  async function run(ids, nPast) {
    if (nPast === 0) dropPast();
    if (nPast !== held) throw Object.assign(new Error(`onnxruntime-web engine: asked to continue after ${nPast} tokens, holds ${held}`), { code: 'INTERNAL' });
    if (!past) { past = {}; for (const n of pastNames) past[n] = emptyPast(n); }
    const n = ids.length, total = held + n;
    const feeds = {
      input_ids: new ort.Tensor('int64', BigInt64Array.from(ids, (x) => BigInt(x)), [1, n]),
      attention_mask: new ort.Tensor('int64', new BigInt64Array(total).fill(1n), [1, total]),
      ...past,
    };
    if (names.includes('position_ids')) {
      const p = new BigInt64Array(n);
      for (let j = 0; j < n; j++) p[j] = BigInt(held + j);
      feeds.position_ids = new ort.Tensor('int64', p, [1, n]);
    }
    const out = await session.run(feeds);
    const next = {};
    for (const name of pastNames) next[name] = out[name.replace('past_key_values.', 'present.')];
    for (const [k, t] of Object.entries(past)) if (next[k] !== t && t.dispose) t.dispose();
    past = next; held = total;
    const lg = out.logits, V = lg.dims[lg.dims.length - 1], last = lg.data.length - V;
    const logits = new Float32Array(V);
    if (lg.data instanceof Uint16Array) for (let i = 0; i < V; i++) logits[i] = f16ToF32(lg.data[last + i]);
    else logits.set(lg.data.subarray(last, last + V));
    lg.dispose && lg.dispose();
    return logits;
  }

  return {
    run,
    version: (ort.env.versions && ort.env.versions.web) || '',
    async release() { dropPast(); await session.release(); },
  };
}
