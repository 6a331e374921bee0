// wllama 3.8.1 (llama.cpp in wasm) on the GGUF written by tools/gen/onnx2gguf.py; its own OPFS cache
// (useCache) gives the warm load. Greedy (temperature 0) over the tokens that are whole UTF-8 text (see
// bannedTokenIds), eos ignored, prompt given as the text of the prompt ids. Its greedy tokens part from
// onnxruntime's within a few steps on our random-weight models because ggml's Q4_0 matmul quantises the
// activations to Q8_0, not because of the GGUF: the same file with its Q4_0 weights dequantised to F32
// follows onnxruntime's logits to about 0.05 (checked on the small test model).
import { now, markReady, fail } from './common.js';

const WL = '/node_modules/@wllama/wllama/esm/index.js';
let W = null;
let wl = null;
let modelDir = null;
let banned = null;

// wllama 3.8.1 serialises each result with nlohmann::json's strict dump(), which throws on text that is
// not valid UTF-8; wllama_action then returns without writing the response length, and the worker reads
// the first 4 bytes of its own request, the glue magic "GLUE" (0x45554C47 = 1163217991), as that length:
// "Invalid typed array length: 1163217991", or "Invalid magic number" once the wasm heap is larger than
// that. Greedy decoding of our random-weight models emits such bytes (a byte-level BPE piece of a
// character: a lone continuation byte, a lead byte the next token does not continue) within a few dozen
// tokens. So the vocabulary entries whose bytes are not complete UTF-8 on their own are banned: every
// emitted piece is then valid text. The output differs from plain greedy only at steps where greedy would
// pick one of them (reported as bannedTokens; about 1 % of the Qwen vocabulary).
function byteDecoder() {
  // GPT-2 byte-level BPE: printable bytes stand for themselves, the others for U+0100 + their rank
  const keep = (b) => (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
  const m = new Map();
  let extra = 0;
  for (let b = 0; b < 256; b++) m.set(String.fromCodePoint(keep(b) ? b : 256 + extra++), b);
  return m;
}

async function bannedTokenIds() {
  if (banned) return banned;
  const r = await fetch(modelDir + 'tokenizer.json');
  if (!r.ok) throw new Error(`HTTP ${r.status} for ${modelDir}tokenizer.json (needed to keep wllama's output valid UTF-8)`);
  const tj = await r.json();
  const bytes = byteDecoder();
  const strict = new TextDecoder('utf-8', { fatal: true });
  banned = [];
  // model.vocab holds the byte-level pieces; added tokens are plain text and always valid
  for (const [piece, id] of Object.entries(tj.model.vocab)) {
    const b = Uint8Array.from(piece, (c) => bytes.get(c) ?? 0x80);  // an unmapped char cannot be valid text
    try { strict.decode(b); } catch { banned.push(id); }
  }
  return banned;
}

async function load({ gguf, model, threads = 2, nCtx = 512 }) {
  modelDir = model;
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
  const ban = await bannedTokenIds();
  const times = [];
  let timings = null, usage = null, text = '';
  const t0 = now();
  await wl.createCompletion({
    prompt: promptText, max_tokens: maxTokens, temperature: 0, ignore_eos: true, cache_prompt: false,
    logit_bias: ban.map((id) => [id, false]),  // false = -inf in llama-server's logit_bias
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
    timings, usage, bannedTokens: ban.length, promptTokenMismatch: usage && usage.prompt_tokens !== promptIds.length ? usage.prompt_tokens : undefined,
  };
}

async function unload() { if (wl) { await wl.exit(); wl = null; } }

try { markReady({ name: 'wllama', load, generate, unload }); } catch (e) { fail(e); }
