// Transformers.js 4.3.1 (wasm device, q4f16 dtype) loading the model folder from the dev server
// (env.allowRemoteModels=false, localModelPath = <server>/build/models/), browser cache on (its default).
import { now, summarize, markReady, fail } from './common.js';

const TJS = '/node_modules/@huggingface/transformers/dist/transformers.js';
const ORT_DIST = '/node_modules/@huggingface/transformers/node_modules/onnxruntime-web/dist/';
let T = null;
let model = null;

async function load({ modelName, modelsPath = '/build/models/', threads = 2, dtype = 'q4f16' }) {
  const t0 = now();
  T = T || await import(TJS);
  const { env } = T;
  env.allowRemoteModels = false;
  env.allowLocalModels = true;
  env.localModelPath = new URL(modelsPath, location.href).href;
  env.useBrowserCache = true;
  env.backends.onnx.wasm.numThreads = threads;
  env.backends.onnx.wasm.wasmPaths = {
    mjs: ORT_DIST + 'ort-wasm-simd-threaded.asyncify.mjs',
    wasm: ORT_DIST + 'ort-wasm-simd-threaded.asyncify.wasm',
  };
  model = await T.AutoModelForCausalLM.from_pretrained(modelName, { dtype, device: 'wasm' });
  return { loadMs: now() - t0, tjsVersion: env.version, ortVersion: env.backends.onnx?.versions?.web };
}

async function generate({ promptIds, maxTokens = 128 }) {
  const { Tensor } = T;
  const n = promptIds.length;
  const input_ids = new Tensor('int64', BigInt64Array.from(promptIds, BigInt), [1, n]);
  const attention_mask = new Tensor('int64', new BigInt64Array(n).fill(1n), [1, n]);
  const tokens = [], times = [];
  let first = true;
  const streamer = {
    put(value) {
      if (first) { first = false; return; } // the prompt
      const t = now();
      for (const row of value) { tokens.push(Number(row[row.length - 1])); times.push(t); }
    },
    end() {},
  };
  const t0 = now();
  await model.generate({
    input_ids, attention_mask, streamer,
    max_new_tokens: maxTokens, min_new_tokens: 0, do_sample: false, num_beams: 1,
    eos_token_id: null, repetition_penalty: 1.0, temperature: 1.0, top_k: 0, top_p: 1.0,
  });
  return summarize(n, t0, times, tokens);
}

async function unload() { if (model) { await model.dispose(); model = null; } }

try { markReady({ name: 'transformers.js', load, generate, unload }); } catch (e) { fail(e); }
