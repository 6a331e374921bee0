// wllama 3.8.1 (llama.cpp in wasm) on the GGUF written by tools/onnx2gguf.py; its own OPFS cache
// (useCache) gives the warm load. Greedy (temperature 0), eos ignored, prompt given as the text of the prompt ids.
import { now, summarize, markReady, fail } from './common.js';

const WL = '/node_modules/@wllama/wllama/esm/index.js';
let W = null;
let wl = null;

async function load({ gguf, threads = 2, nCtx = 512 }) {
  const t0 = now();
  W = W || await import(WL);
  wl = new W.Wllama({ default: '/node_modules/@wllama/wllama/esm/wasm/wllama.wasm' },
    { logger: { debug() {}, log() {}, info() {}, warn: console.warn, error: console.error } });
  await wl.loadModelFromUrl(new URL(gguf, location.href).href, {
    n_threads: threads, n_ctx: nCtx, n_batch: 512, n_gpu_layers: 0, useCache: true, warmup: false,
  });
  return { loadMs: now() - t0, multithread: wl.isMultithread(), nThreads: wl.getNumThreads() };
}

async function generate({ promptIds, promptText, maxTokens = 128 }) {
  // wllama 3's completion takes the prompt as text only (a token array is refused with "type must be
  // string"): the harness passes the text its tokenizer maps back to exactly promptIds, and
  // usage.prompt_tokens is checked. Its stream chunks carry text, not token ids: one chunk per sampled
  // token (llama-server holds back incomplete UTF-8, so a chunk can be late), so first/last token times
  // come from the chunks, the token count from usage.completion_tokens, and the harness compares the
  // generated text with the reference tokens' text.
  if (typeof promptText !== 'string') throw new Error('wllama needs promptText');
  const times = [];
  let timings = null, usage = null, text = '';
  const t0 = now();
  await wl.createCompletion({
    prompt: promptText, max_tokens: maxTokens, temperature: 0, ignore_eos: true, cache_prompt: false,
    stream: true,
    onData(chunk) {
      const t = now();
      const piece = chunk.choices?.[0]?.text;
      if (piece) { text += piece; times.push(t); }
      if (chunk.timings) timings = chunk.timings;
      if (chunk.usage) usage = chunk.usage;
    },
  });
  const tEnd = now();
  if (!times.length) throw new Error('wllama produced no text');
  const n = usage?.completion_tokens ?? times.length;
  const first = times[0], last = Math.max(times[times.length - 1], first);
  return {
    promptLen: promptIds.length, nGenerated: n, tokens: null, text, ttftMs: first - t0,
    prefillTokS: promptIds.length / ((first - t0) / 1000), decodeMs: last - first,
    decodeTokS: n > 1 ? (n - 1) / ((last - first) / 1000) : null, totalMs: tEnd - t0, chunks: times.length,
    timings, usage, promptTokenMismatch: usage && usage.prompt_tokens !== promptIds.length ? usage.prompt_tokens : undefined,
  };
}

async function unload() { if (wl) { await wl.exit(); wl = null; } }

try { markReady({ name: 'wllama', load, generate, unload }); } catch (e) { fail(e); }
