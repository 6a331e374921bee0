// qwasm-worker.js - the dedicated worker (a Web Worker of type 'module', or a Node worker_thread) that hosts the
// wasm runtime. It owns the module, the model, the downloads and the caches; the page talks to it only through
// the messages documented in js/protocol.js. Model logic (tokenizer, templates, sampling, the network) is in C;
// this file moves bytes and messages.
//
// File sources (registered in Module.qwFs under an integer id, read synchronously by C through js/worker/qw_library.js):
//   url   -> the files are downloaded into a cache store (js/net/fetch.js, js/cache/*.js) and read from it
//   path  -> Node: fs.readSync on the folder
//   files -> picked local Files (webkitRelativePath or name), read with FileReaderSync; nothing is uploaded
//   dir   -> a FileSystemDirectoryHandle, enumerated into Files

import { STATUS_CODE, QwasmError, serializeError, transferables, wasmTrapError, checkSampling, checkLoadOptions } from './protocol.js';
import { loadQwasmModule, canUseThreads } from './qwasm-loader.js';
import { PortWorker } from './port-worker.js';
import { createOrtEngine } from './ort-engine.js';
import { downloadFile, probeFile, fileUrl, bytesCached, DEFAULT_CHUNK } from '../net/fetch.js';
import { httpReader, syncHttpAvailable } from '../net/http-source.js';
import { openStore, usableCacheKind, normalizeBaseUrl, cacheList, cacheDelete, cacheEstimate } from '../cache/cache.js';
import { openDerived, saveDerived } from '../cache/derived-cache.js';
import { prefixName, loadPrefix, savePrefix, dropPrefix } from '../cache/prompt-cache.js';
import { QW_STATUS, QW_GEN_EVENT, QW_SPEC, QW_WASM_EVENT, QW_RUNNING_OP } from './qwasm-abi.js';
import { IS_NODE } from './env.js';

/** Sends the page a message. @type {(m: import('./protocol.js').WorkerToPage, t?: any[]) => void} */
let post;
if (IS_NODE) {
  const { parentPort } = await import('node:worker_threads');
  post = (m, t) => parentPort.postMessage(m, t);
  parentPort.on('message', (m) => handle(m));
} else {
  post = (m, t) => /** @type {any} */ (self).postMessage(m, t); // a worker's postMessage, not a window's
  self.onmessage = (e) => (e.data && PTHREAD_MESSAGES[e.data.type] ? PTHREAD_MESSAGES[e.data.type](e.data) : handle(e.data));
}

// ---- pthread workers started by the page (js/worker/qwasm-pthread.js says why) --------------------------------------
const spawns = new Map();     // spawn id -> {resolve, reject, worker}
let nextSpawn = 1;

/** Asks the page to start js/worker/qwasm-pthread.js at `url`; resolves with a PortWorker. */
function spawnOnPage(url) {
  const spawn = nextSpawn++;
  return new Promise((resolve, reject) => {
    spawns.set(spawn, { resolve, reject, worker: null });
    post({ type: 'spawn', spawn, url });
  });
}

const PTHREAD_MESSAGES = {
  spawned(m) {
    const s = spawns.get(m.spawn);
    if (!s) return;
    if (m.error) { spawns.delete(m.spawn); s.reject(new Error(m.error)); return; }
    s.worker = new PortWorker(m.port, () => { spawns.delete(m.spawn); post({ type: 'kill', spawn: m.spawn }); });
    s.resolve(s.worker);
  },
  'spawn-error'(m) {
    const s = spawns.get(m.spawn);
    if (s && s.worker) s.worker.reportError(m);
  },
};

// ---- state ---------------------------------------------------------------------------------------------------
let M = null;                 // the emscripten module
let flavour = null;
let initOpts = {};
let broken = false;           // a wasm trap happened: the module is re-created on the next load
let model = 0;                // qw_wasm_model*
let modelFsId = 0;
let modelStore = null;        // the cache store the model reads from (closed on unload)
let draft = null;             // the draft model (load's draftModel): {h, fsId, store}, freed after the model
let engine = null;            // the fallback engine computing the logits ({name, run, release, reason}), or null
let nextFsId = 1;
let runningOp = 0;            // address of the C side's {name, op_type} of the running node (qw_wasm_running_op)
let gen = null;               // {id, aborted}
const loads = new Map();      // request id -> AbortController

const PROBE_SIZE = 2 ** 50;   // size reported for files not downloaded yet, while listing the graph's files

// ---- helpers -----------------------------------------------------------------------------------------------
function cstr(s) {
  const n = M.lengthBytesUTF8(s) + 1;
  const p = M._qw_wasm_malloc(n);
  M.stringToUTF8(s, p, n);
  return p;
}

function heapU8() { return new Uint8Array(M.wasmMemory ? M.wasmMemory.buffer : M.HEAPU8.buffer); }
function memBuf() { return M.wasmMemory ? M.wasmMemory.buffer : M.HEAPU8.buffer; }

/** The last C failure as a QwasmError (code from the qw_status, file from qw_error.file, else the fs layer's). */
function cError(context) {
  const st = M._qw_wasm_last_status();
  const msg = M.UTF8ToString(M._qw_wasm_last_error()) || context;
  let code = STATUS_CODE[st] || 'INTERNAL';
  const js = M.qwFsLastError;
  const file = M.UTF8ToString(M._qw_wasm_last_error_file()) || (js && js.file) || null;
  let message = msg;
  if (js && js.message && !msg.includes(js.message)) message += ` (${js.message})`;
  if (js && js.code === 'ABORTED') code = 'ABORTED';
  return new QwasmError(code, message, { file });
}

/** Runs a C call; a wasm trap (abort, OOM in JS glue) marks the module broken and becomes an error. */
function ccall(fn) {
  M.qwFsLastError = null;
  try {
    return fn();
  } catch (e) {
    if (e instanceof QwasmError) throw e;
    broken = true;
    throw wasmTrapError(e, runningOpName());
  }
}

const yieldNow = IS_NODE
  ? () => new Promise((r) => setImmediate(r))
  : (() => {
      const ch = new MessageChannel(); const q = [];
      ch.port1.onmessage = () => { const r = q.shift(); if (r) r(); };
      return () => new Promise((r) => { q.push(r); ch.port2.postMessage(0); });
    })();

function isAbsent(e) { return e && e.code === 'NOT_FOUND'; }

/** The .onnx files a load tries, in order: the C core's rule (qw_onnx_candidates), the same for every source.
 *  src holds config.json (and genai_config.json when the folder has one). */
function onnxCandidates(src, onnxFile, dtype) {
  const id = nextFsId++;
  M.qwFs.set(id, src);
  const a = cstr(onnxFile || ''), b = cstr(dtype || '');
  try {
    const r = ccall(() => M._qw_wasm_onnx_candidates(id, a, b));
    if (!r) throw cError('choosing the .onnx file');
    const text = M.UTF8ToString(r);
    M._qw_wasm_free(r); // malloc'd, ours
    return JSON.parse(text).candidates;
  } finally { M._qw_wasm_free(a); M._qw_wasm_free(b); M.qwFs.delete(id); }
}

// ---- file sources -----------------------------------------------------------------------------------------
async function nodeDirSource(dir) {
  const fs = await import('node:fs');
  const path = await import('node:path');
  const st = fs.statSync(dir, { throwIfNoEntry: false });
  if (!st || !st.isDirectory()) throw new QwasmError('NOT_FOUND', `${dir}: not a directory`, { file: dir });
  // The containment rule of qw_fs_open_dir (src/base/qw_fs.c): the C core refuses names that leave the folder
  // before asking; here the path is also resolved (symbolic links followed) and must stay inside the folder.
  const root = fs.realpathSync(dir);
  const outside = (name) => Object.assign(new Error(`${name}: resolves outside the model folder (a symbolic link?)`), { qwStatus: QW_STATUS.QW_E_FORMAT });
  const resolve = (name) => {
    if (typeof name !== 'string' || !name || path.isAbsolute(name) || name.includes('\\') || name.includes('\0') ||
        name.split('/').some((seg) => seg === '' || seg === '.' || seg === '..')) {
      throw Object.assign(new Error(`${name}: not a name inside the model folder`), { qwStatus: QW_STATUS.QW_E_FORMAT });
    }
    let real;
    try { real = fs.realpathSync(path.join(root, name)); } catch (e) { if (e.code === 'ENOENT' || e.code === 'ENOTDIR') return null; throw e; }
    if (real !== root && !real.startsWith(root.endsWith(path.sep) ? root : root + path.sep)) throw outside(name);
    return real;
  };
  const fds = new Map();
  const fdOf = (name) => {
    let fd = fds.get(name);
    if (fd == null) {
      const p = resolve(name);
      if (!p) throw Object.assign(new Error(`${name}: not found`), { qwStatus: QW_STATUS.QW_E_NOTFOUND });
      fd = fs.openSync(p, 'r'); fds.set(name, fd);
    }
    return fd;
  };
  return {
    size(name) {
      const p = resolve(name);
      const s = p && fs.statSync(p, { throwIfNoEntry: false });
      if (s && !s.isFile()) { // a directory, FIFO or device: there, but never opened (a FIFO blocks)
        throw Object.assign(new Error(`${name}: not a regular file (a directory, FIFO or device)`), { qwStatus: QW_STATUS.QW_E_UNSUPPORTED, code: 'UNSUPPORTED' });
      }
      return s ? s.size : -1;
    },
    read(name, offset, dst) {
      const fd = fdOf(name);
      let pos = 0;
      // fs.readSync refuses views on a SharedArrayBuffer in some Node versions: bounce when needed.
      while (pos < dst.length) {
        const n = fs.readSync(fd, dst, pos, dst.length - pos, offset + pos);
        if (n <= 0) throw Object.assign(new Error(`${name}: short read at ${offset + pos}`), { qwStatus: QW_STATUS.QW_E_RANGE });
        pos += n;
      }
    },
    close() { for (const fd of fds.values()) { try { fs.closeSync(fd); } catch { /* closed */ } } },
  };
}

function filesSource(files) {
  const map = new Map();
  for (const f of files) {
    let rel = f.webkitRelativePath || f.relativePath || f.name;
    // a picked folder "qwen/config.json": strip the folder itself
    if (f.webkitRelativePath && rel.includes('/')) rel = rel.slice(rel.indexOf('/') + 1);
    map.set(rel, f);
  }
  const frs = typeof FileReaderSync !== 'undefined' ? new FileReaderSync() : null;
  return {
    size(name) { const f = map.get(name); return f ? f.size : -1; },
    read(name, offset, dst) {
      const f = map.get(name);
      if (!f) throw Object.assign(new Error(`${name}: not in the picked folder`), { qwStatus: QW_STATUS.QW_E_NOTFOUND });
      if (offset + dst.length > f.size) throw Object.assign(new Error(`${name}: read past the end`), { qwStatus: QW_STATUS.QW_E_RANGE });
      dst.set(new Uint8Array(frs.readAsArrayBuffer(f.slice(offset, offset + dst.length))));
    },
    close() {},
  };
}

async function dirHandleFiles(handle, prefix = '', out = []) {
  for await (const [name, h] of handle.entries()) {
    if (h.kind === 'directory') await dirHandleFiles(h, prefix + name + '/', out);
    else { const f = await h.getFile(); out.push(Object.assign(f, { relativePath: prefix + name })); }
  }
  return out;
}

function storeSource(readers) {
  return {
    size(name) { const r = readers.get(name); return r ? r.size : -1; },
    read(name, offset, dst) {
      const r = readers.get(name);
      if (!r) throw Object.assign(new Error(`${name}: not in the cache`), { qwStatus: QW_STATUS.QW_E_NOTFOUND });
      r.read(offset, dst);
    },
    close() { for (const r of readers.values()) r.close && r.close(); },
  };
}

function readAllText(src, name) {
  const n = src.size(name);
  if (n < 0) return null;
  const buf = new Uint8Array(n);
  src.read(name, 0, buf);
  return new TextDecoder().decode(buf);
}

// ---- requests ----------------------------------------------------------------------------------------------
async function ensureModule(id) {
  if (M && !broken) return;
  if (M && broken) {
    try { M.PThread && M.PThread.terminateAllThreads && M.PThread.terminateAllThreads(); } catch { /* gone */ }
    M = null; model = 0; broken = false;
  }
  const r = await loadQwasmModule({
    flavour: initOpts.flavour, wasmBase: initOpts.wasmBase, relaxedBase: initOpts.relaxedBase, relaxed: initOpts.relaxed,
    onProgress: (p) => id != null && post({ type: 'progress', id, progress: p }),
    spawnWorker: IS_NODE ? undefined : spawnOnPage,
  });
  M = r.module; flavour = r.flavour;
  runningOp = M._qw_wasm_running_op ? M._qw_wasm_running_op() : 0;
}

/** The graph node running when the module trapped ("'name' (OpType)"), read from memory: no call into wasm. */
function runningOpName() {
  try {
    if (!runningOp) return null;
    const v = new DataView(memBuf(), runningOp, QW_RUNNING_OP.size);
    const name = v.getUint32(QW_RUNNING_OP.name.offset, true), op = v.getUint32(QW_RUNNING_OP.op_type.offset, true);
    if (!name && !op) return null;
    return `'${name ? M.UTF8ToString(name) : '?'}' (${op ? M.UTF8ToString(op) : '?'})`;
  } catch { return null; }
}

const handlers = {
  async init(msg) {
    initOpts = { flavour: msg.flavour || (canUseThreads() ? 'mt' : 'st'), wasmBase: msg.wasmBase, relaxedBase: msg.relaxedBase, relaxed: msg.relaxed };
    await ensureModule(msg.id);
    // mt: the page gets the abort flag's cell in the shared wasm memory, so an abort lands inside a running
    // step (the C graph checks it between nodes) and not only between steps.
    const buf = memBuf();
    const abortCell = typeof SharedArrayBuffer === 'function' && buf instanceof SharedArrayBuffer
      ? { buffer: buf, index: M._qw_wasm_abort_flag() >> 2 } : null;
    return { flavour, info: JSON.parse(M.UTF8ToString(M._qw_wasm_info())), abortCell };
  },

  async load(msg) {
    const ctrl = new AbortController();
    loads.set(msg.id, ctrl);
    try { return await doLoad(msg, ctrl.signal); } finally { loads.delete(msg.id); }
  },

  async tokenize(msg) {
    requireModel();
    const ids = tokenize(msg.text);
    return { ids };
  },

  async detokenize(msg) {
    requireModel();
    return { text: detokenize(Int32Array.from(msg.ids || [])) };
  },

  async chat(msg) {
    requireModel();
    return { text: chatRender(msg.messages, msg.addGenerationPrompt !== false, msg.tools) };
  },

  async generate(msg) { return doGenerate(msg); },

  async abort(msg) {
    if (gen && gen.id === msg.target) {
      gen.aborted = true;
      if (M) new Int32Array(memBuf())[M._qw_wasm_abort_flag() >> 2] = 1;
    }
    const l = loads.get(msg.target);
    if (l) l.abort();
    return {};
  },

  async stats() {
    requireModel();
    return { stats: modelStats() };
  },

  async unload() { await unloadModel(); return {}; },

  async cache(msg) {
    const opts = { cacheDir: msg.cacheDir };
    if (msg.op === 'list') return cacheList(opts);
    if (msg.op === 'delete') return cacheDelete(msg.model, opts);
    if (msg.op === 'estimate') return cacheEstimate(opts);
    throw new QwasmError('ARG', `unknown cache op ${msg.op}`);
  },
};

function requireModel() {
  if (!M || !model) throw new QwasmError('STATE', 'no model is loaded');
}

/** Whether derived forms are kept in this cache: not in memory, and not in IndexedDB, whose reads (Blob slices
 *  through FileReaderSync, ~210 MB/s measured) take longer than making the int8 lm_head rows again. */
function derivedCacheOn(kind, o) { return o.derivedCache !== false && (kind === 'opfs' || kind === 'node'); }

/** Whether a QUOTA of the default cache gives way to cache 'none' (fetchModel): only for cache 'auto' (an explicit
 *  cache is what the caller asked for: its QUOTA is the answer) and where 'none' reads the server straight into the
 *  heap (a browser worker; Node's 'none' would hold the files in memory beside it). */
function cacheFallbackAllowed(o, kind) {
  return (o.cache || 'auto') === 'auto' && kind !== 'memory' && syncHttpAvailable();
}

/** The options a load goes on with after that fallback: cache 'none''s, with the tied embedding left on the server
 *  (embeddingOnDemand true unless the caller chose), so the tab holds about the model's bytes (WebKit's 1.5B: the
 *  embedding resident beside the int8 rows would be 467 MB more), and nothing derived is kept. */
function fallbackOptions(o) {
  const eod = o.embeddingOnDemand;
  return { ...o, cache: 'none', embeddingOnDemand: eod === undefined || eod === 'auto' ? true : eod, derivedCache: false };
}

/** Whether the tied embedding is left in the model's files (read a row at a time; qwasm.d.ts embeddingOnDemand):
 *  'auto' where random reads are fast: the OPFS cache (sync access handles), the Node cache and Node paths. */
function embeddingOnDemandOn(kind, o) {
  const v = o.embeddingOnDemand;
  return v === true || ((v === undefined || v === 'auto') && (kind === 'opfs' || kind === 'node' || kind === 'path'));
}

/** Whether the lm_head runs on the tied fp16 embedding itself (no int8 rows made): by default only where that
 *  embedding must stay resident anyway and nothing keeps the rows (cache 'none' over HTTP), so the tab holds
 *  the model's bytes once: the 1.5B's int8 rows would add 264 MB beside its 467 MB embedding. */
function exactLmHeadOn(kind, o) {
  if (o.exactLmHead != null) return !!o.exactLmHead;
  return kind === 'http' && !(o.embeddingOnDemand === true);
}

/** How this load reads its files, and why a mode is slower than the default one (rt.stats().source). */
let loadSource = null;
function sourceStats(kind, http, o, fallback) {
  const s = { kind, threads: { requested: o.threads || 'all', flavour } };
  if (flavour === 'st' && !IS_NODE) {
    s.threads.note = (typeof crossOriginIsolated !== 'undefined' && !crossOriginIsolated)
      ? 'the page is not cross-origin isolated (no COOP/COEP headers): the single-thread build runs, threads is ignored'
      : 'the single-thread build was asked for (flavour "st")';
  }
  const notes = [];
  if (fallback) {
    s.fallback = fallback;
    notes.push(`the default cache (${fallback.from}) has no room for the model's external data, so this load reads ` +
      "them as cache 'none' does, with embeddingOnDemand (the small files stay cached; nothing else is kept): " + fallback.reason);
  }
  if (kind === 'http') {
    Object.assign(s, { requests: http.stats.requests, bytesFetched: http.stats.bytes, retries: http.stats.retries,
      files: http.files.map((f) => ({ name: f.name, size: f.size, sha256: f.hash })) });
    notes.push(embeddingOnDemandOn(kind, o)
      ? "cache 'none' with embeddingOnDemand: files are read from the server straight into the wasm heap and not " +
        'kept; the tied embedding stays on the server (a row read over HTTP for each token embedded and each logit ' +
        'rescored) and the lm_head runs on int8 rows made at every load: the least memory, the slowest decode'
      : "cache 'none': files are read from the server straight into the wasm heap and not kept; the tied " +
        'embedding stays in memory (a row read per token over HTTP would be slow) and is the lm_head itself ' +
        "(exact fp16, no int8 rows), so the model's bytes are held once; decode is slower than with the OPFS " +
        "cache (cache 'auto'), where the embedding stays in the cache and the int8 rows are kept");
    if (o.memoryCapMB) notes.push("with memoryCapMB, pages are read over HTTP again at every use: slow");
  } else if (kind === 'memory') {
    notes.push("cache 'none' without synchronous HTTP (Node): the downloaded files are held in memory beside the heap");
  } else if (kind === 'indexeddb') {
    notes.push('IndexedDB cache: random reads are slow (Blob slices), so the tied embedding stays in memory and derived data is not kept');
  } else if (kind === 'files' || kind === 'dir') {
    notes.push('picked files: the tied embedding stays in memory (File slices read slowly at random)');
  }
  if (notes.length) s.notes = notes;
  return s;
}

/** Derived forms the core made at this load go to the model's cache in the background (js/cache/derived-cache.js). */
let derivedCache = { state: 'off' };
function startDerivedSave(h, store, o) {
  const entries = (!engine && JSON.parse(M.UTF8ToString(M._qw_wasm_model_stats(h))).derived) || [];
  if (!store || !derivedCacheOn(store.kind, o) || !entries.length) { derivedCache = { state: 'off' }; return; }
  const made = entries.filter((e) => !e.loaded);
  const state = { state: made.length ? 'saving' : 'loaded', files: entries.map((e) => ({ name: e.name, bytes: e.size, loaded: !!e.loaded })) };
  derivedCache = state;
  saveDerived(store, entries, heapU8, () => model === h && !broken)
    .then((r) => { if (derivedCache === state) derivedCache = { ...state, state: made.length ? (r.saved.length === made.length ? 'saved' : 'partial') : 'loaded', savedBytes: r.bytes }; })
    .catch((e) => { if (derivedCache === state) derivedCache = { ...state, state: 'error', error: String(e && e.message || e) }; });
}

/** The C core's counters, and which engine computes the logits. */
function modelStats() {
  const s = JSON.parse(M.UTF8ToString(M._qw_wasm_model_stats(model)));
  s.derived_cache = derivedCache;
  s.source = loadSource;
  s.prompt_cache = promptCache;
  s.engine = engine ? engine.name : 'qwasm';
  if (engine) s.memory_cap = 'none (onnxruntime-web holds every file whole)';
  return s;
}

async function unloadModel() {
  if (gen) throw new QwasmError('STATE', 'a generation is running; abort it first');
  if (engine) { const e = engine; engine = null; try { await e.release(); } catch { /* already gone */ } }
  if (M && model && !broken) { try { M._qw_wasm_model_free(model); } catch { broken = true; } }
  model = 0;
  if (draft) await freeDraft(draft);
  draft = null;
  if (M && modelFsId) { const s = M.qwFs.get(modelFsId); if (s && s.close) s.close(); M.qwFs.delete(modelFsId); }
  modelFsId = 0;
  if (modelStore) { try { await modelStore.close(); } catch { /* ignore */ } modelStore = null; }
  derivedCache = { state: 'off' };
  promptCache = { state: 'off' };
  promptSaved.clear();
}

/** The prompt cache (js/cache/prompt-cache.js): what the last generate({cachePrefix}) did, and the prefixes this
 *  load has in its cache already (saved or read). */
let promptCache = { state: 'off' };
const promptSaved = new Set();
const KV_LAYOUT = 1; // QW_KV_STATE_LAYOUT of qwasm.h

function kvIds() {
  const np = M._qw_wasm_malloc(4);
  try {
    const p = M._qw_wasm_kv_ids(model, np);
    const n = new Int32Array(memBuf(), np, 1)[0];
    return n ? new Int32Array(memBuf(), p, n).slice() : new Int32Array(0);
  } finally { M._qw_wasm_free(np); }
}

/** Before a generation with cachePrefix: how many leading prompt ids form the prefix, and the core's cache filled
 *  from the model's cache when it does not hold them already. */
async function preparePrefix(ids, msg, want) {
  let n;
  if (typeof want === 'number') n = Math.min(Math.max(0, Math.floor(want)), ids.length);
  else if (msg.messages && msg.messages.length > 1) { // the messages before the last one (system prompt, earlier turns)
    const pre = tokenize(chatRender(msg.messages.slice(0, -1), false));
    n = 0;
    while (n < pre.length && n < ids.length && pre[n] === ids[n]) n++;
  } else n = ids.length;
  if (n < 2) return null;
  const prefix = ids.subarray(0, n);
  const pc = { tokens: n, name: prefixName(KV_LAYOUT, prefix), state: 'off' };
  const held = kvIds();
  let same = 0;
  while (same < n && same < held.length && held[same] === prefix[same]) same++;
  // (not after a cache fallback: the store holds only the small files, and has no room)
  const store = modelStore && !(loadSource && loadSource.fallback) && (modelStore.kind === 'opfs' || modelStore.kind === 'node') ? modelStore : null;
  if (same >= n - 1) { pc.state = store && !promptSaved.has(pc.name) ? 'save' : 'memory'; return pc; }
  if (!store) return pc;
  const files = ((await store.getManifest()) || {}).files || [];
  const t0 = performance.now();
  const blob = await loadPrefix(store, pc.name, files);
  if (!blob) { pc.state = 'save'; return pc; }
  const p = M._qw_wasm_malloc(blob.length);
  let st;
  try { heapU8().set(blob, p); st = ccall(() => M._qw_wasm_kv_import(model, p, blob.length)); } finally { M._qw_wasm_free(p); }
  if (st !== 0) { // damaged or another build's: made again from this prefill
    pc.error = M.UTF8ToString(M._qw_wasm_last_error());
    await dropPrefix(store, pc.name);
    pc.state = 'rebuild';
    return pc;
  }
  pc.state = 'loaded';
  pc.loadMs = performance.now() - t0;
  promptSaved.add(pc.name);
  return pc;
}

/** After it: the prefix's KV state saved when the model's cache did not have it. */
async function finishPrefix(pc) {
  if (pc.state !== 'save' && pc.state !== 'rebuild') return;
  const np = M._qw_wasm_malloc(4);
  let p = 0, len = 0;
  try { p = M._qw_wasm_kv_export(model, pc.tokens, np); len = new Int32Array(memBuf(), np, 1)[0]; } finally { M._qw_wasm_free(np); }
  if (!p) { pc.state = 'error'; pc.error = M.UTF8ToString(M._qw_wasm_last_error()); return; }
  const blob = heapU8().slice(p, p + len);
  M._qw_wasm_free(p);
  try {
    const files = ((await modelStore.getManifest()) || {}).files || [];
    pc.savedBytes = await savePrefix(modelStore, pc.name, blob, files);
    pc.state = pc.savedBytes ? (pc.state === 'rebuild' ? 'rebuilt' : 'saved') : 'off';
    if (pc.savedBytes) promptSaved.add(pc.name);
  } catch (e) { pc.state = 'error'; pc.error = String(e && e.message || e); }
}

/** Frees a draft model and its source (the model it drafted for first: qw_model_set_draft's rule). */
async function freeDraft(d) {
  if (M && d.h && !broken) { try { M._qw_wasm_model_free(d.h); } catch { broken = true; } }
  if (M && d.fsId) { const s = M.qwFs.get(d.fsId); if (s && s.close) s.close(); M.qwFs.delete(d.fsId); }
  if (d.store) { try { await d.store.close(); } catch { /* ignore */ } }
}

/** Opens a model source (a URL: downloaded or found in the cache; a Node path; picked files or folder). */
async function openSource(source, o, signal, progress) {
  if (source.kind === 'url') return fetchModel(normalizeBaseUrl(source.url), o, signal, progress);
  if (source.kind === 'path') return { src: await nodeDirSource(source.path) };
  if (source.kind === 'files') return { src: filesSource(source.files) };
  if (source.kind === 'dir') return { src: filesSource(await dirHandleFiles(source.handle)) };
  throw new QwasmError('ARG', `unknown model source ${source.kind}`);
}

/** cache:'none': what the core read came straight from the server; checks a known sha256 where the file was read
 *  whole and in order, and drops the last window of each file. Throws CORRUPT naming the file. */
function checkHttpHashes(http) {
  for (const f of http.files) {
    f.hash = f.reader.hashState();
    f.reader.release();
    if (f.hash === 'mismatch') {
      throw new QwasmError('CORRUPT', `${f.name}: sha256 mismatch (expected ${f.sha256}); nothing was kept`, { file: f.name });
    }
  }
}

/** Loads the draft model (load's draftModel) into the same module and attaches it to the model (h): one thread of
 *  its own (it runs on the model's pool), its own memory cap (draftMemoryCapMB, default memoryCapMB). Errors say
 *  `draftModel:` and carry model: 'draft'. */
async function loadDraft(h, source, o, opts, signal, progress) {
  const d = { h: 0, fsId: 0, store: null };
  const dprogress = (p) => progress({ ...p, model: 'draft' });
  try {
    // the model's own file choice, dtype and hashes are about its files, not the draft's
    const r = await openSource(source, { ...o, onnxFile: undefined, dtype: undefined, hashes: o.draftHashes }, signal, dprogress);
    d.store = r.store || null;
    if (signal.aborted) { r.src.close && r.src.close(); throw new QwasmError('ABORTED', 'load aborted'); }
    d.fsId = nextFsId++;
    M.qwFs.set(d.fsId, r.src);
    M.qwOnProgress = (phase, done, total) => dprogress({ phase, bytesDone: done, bytesTotal: total });
    const cap = o.draftMemoryCapMB != null ? o.draftMemoryCapMB : (o.memoryCapMB || 0);
    const p = cstr(JSON.stringify({ ...opts, onnx_file: r.onnxFile || '', dtype: '', threads: 1, mem_cap_mb: cap, profile: 0 }));
    try {
      d.h = ccall(() => M._qw_wasm_model_load(d.fsId, p));
      if (!d.h) throw cError('draft model load failed');
    } finally { if (!broken) M._qw_wasm_free(p); M.qwOnProgress = null; }
    if (r.http) checkHttpHashes(r.http);
    if (ccall(() => M._qw_wasm_model_set_draft(h, d.h)) !== 0) throw cError('draft model refused');
    return d;
  } catch (e) {
    await freeDraft(d);
    if (e instanceof QwasmError) {
      e.message = `draftModel: ${e.message}`;
      e.model = 'draft';
      throw e;
    }
    throw new QwasmError('INTERNAL', `draftModel: ${e && e.message || e}`, { model: 'draft' });
  }
}

async function doLoad(msg, signal) {
  const { source } = msg;
  let o = msg.options || {};
  checkLoadOptions(o);
  const progress = (p) => post({ type: 'progress', id: msg.id, progress: p });
  await ensureModule(msg.id);
  await unloadModel();
  let src, onnxFile = o.onnxFile || null, files = null, store = null, http = null, download = null, fallback = null;
  {
    const r = await openSource(source, o, signal, progress);
    src = r.src; files = r.files || null; store = r.store || null; http = r.http || null; download = r.download || null;
    if (source.kind === 'url') onnxFile = r.onnxFile;
    if (r.fallback) { fallback = r.fallback; o = fallbackOptions(o); }
  }
  if (signal.aborted) { src.close && src.close(); if (store) await store.close(); throw new QwasmError('ABORTED', 'load aborted'); }
  const fsId = nextFsId++;
  M.qwFs.set(fsId, src);
  M.qwOnProgress = (phase, done, total) => progress({ phase, bytesDone: done, bytesTotal: total });
  // The pthread pool holds hardwareConcurrency workers, started at init; asking for more would make emscripten
  // start workers mid-load, which a browser can only do once this worker returns to its event loop.
  const poolSize = IS_NODE ? Infinity : (navigator.hardwareConcurrency || 1);
  const srcKind = http ? 'http' : store ? store.kind : source.kind;
  const opts = { onnx_file: onnxFile || '', dtype: o.dtype || '', threads: Math.min(o.threads || 0, poolSize), mem_cap_mb: o.memoryCapMB || 0, max_context: o.maxContext || 0, ...(o.kvCache ? { kv_cache: String(o.kvCache) } : {}), ...(o.lookahead ? { lookahead: String(o.lookahead) } : {}),
    exact_lm_head: exactLmHeadOn(srcKind, o) ? 1 : 0, profile: o.profile ? 1 : 0,
    embedding_on_demand: embeddingOnDemandOn(srcKind, o) ? 1 : 0 };
  const loadC = (extra) => {
    const p = cstr(JSON.stringify({ ...opts, ...extra }));
    try {
      const h = ccall(() => M._qw_wasm_model_load(fsId, p));
      if (!h) throw cError('model load failed');
      return h;
    } finally { if (!broken) M._qw_wasm_free(p); }
  };
  let h = 0, fb = null;
  try {
    try {
      h = loadC({});
    } catch (e) {
      if (e.code !== 'UNSUPPORTED' || o.fallback !== 'onnxruntime-web' || broken) throw e;
      // qwasm's executor refuses this graph: the C core keeps the text side, onnxruntime-web runs the graph.
      h = loadC({ external_decoder: 1 });
      try {
        fb = await startFallback(h, src, o, progress);
        fb.reason = e.message;
      } catch (e2) { M._qw_wasm_model_free(h); h = 0; throw e2; }
    }
  } catch (e) {
    M.qwFs.delete(fsId);
    src.close && src.close();
    if (store) await store.close();
    throw e;
  } finally {
    M.qwOnProgress = null;
  }
  const release = async () => {
    if (!broken) M._qw_wasm_model_free(h);
    M.qwFs.delete(fsId); src.close && src.close(); if (store) await store.close();
  };
  if (http) {
    try { checkHttpHashes(http); } catch (e) { await release(); throw e; }
  }
  if (msg.draftSource) {
    if (fb) { await release(); throw new QwasmError('UNSUPPORTED', 'draftModel: the model runs on onnxruntime-web (fallback); a draft model needs qwasm\'s engine', { model: 'draft' }); }
    try { draft = await loadDraft(h, msg.draftSource, o, opts, signal, progress); } catch (e) { await release(); throw e; }
  }
  model = h; modelFsId = fsId; modelStore = store; engine = fb;
  loadSource = sourceStats(srcKind, http, o, fallback);
  if (download) loadSource.download = download;
  startDerivedSave(h, store, o);
  const info = JSON.parse(M.UTF8ToString(M._qw_wasm_model_info(model)));
  if (engine) Object.assign(info, { engine: engine.name, engine_version: engine.version, fallback_reason: engine.reason });
  progress({ phase: 'ready', bytesDone: 1, bytesTotal: 1 });
  return { info, files, flavour };
}

/** Opens the model's graph with onnxruntime-web (js/worker/ort-engine.js) for a model loaded with an external decoder. */
async function startFallback(h, src, o, progress) {
  const info = JSON.parse(M.UTF8ToString(M._qw_wasm_model_info(h)));
  const config = JSON.parse(readAllText(src, 'config.json'));
  progress({ phase: 'graph', file: info.onnx_file, bytesDone: 0, bytesTotal: 0, engine: 'onnxruntime-web' });
  const dataFiles = (info.files || []).map((f) => f.name).filter((n) => n !== info.onnx_file);
  const e = await createOrtEngine({ src, onnxFile: info.onnx_file, dataFiles, config, threads: o.threads, ortUrl: o.ortUrl });
  return { name: 'onnxruntime-web', version: e.version, run: e.run, release: e.release };
}

/** Downloads (or finds in the cache) the files of a model folder URL; returns a file source over the cache. */
async function fetchModel(base, o, signal, progress) {
  const kind = await usableCacheKind(o.cache);
  if (kind !== 'memory' && !IS_NODE && navigator.storage && navigator.storage.persist) {
    try { await navigator.storage.persist(); } catch { /* best effort */ }
  }
  const store = await openStore(kind, base, { cacheDir: o.cacheDir });
  try {
    const manifest = (await store.getManifest()) || {};
    const absent = new Set(o.revalidate ? [] : (manifest.absent || []));
    const chunkSize = (o.chunkMB ? Math.round(o.chunkMB * 1048576) : 0) || DEFAULT_CHUNK;
    // throws QUOTA when `need` more bytes do not fit in the store `into` (a memory store has no quota)
    const checkQuota = async (need, name, into = store) => {
      if (into.kind === 'memory') return;
      const e = await cacheEstimate({ cacheDir: o.cacheDir });
      if (need > e.available) {
        throw new QwasmError('QUOTA', `${name}: not enough storage: ${need} bytes needed, ${e.available} available (${into.kind} cache, quota ${e.quota})`, { file: name, bytesNeeded: need, bytesAvailable: e.available });
      }
    };
    const download = { bytes: 0, retries: 0, stalls: 0 }; // this load's downloads (rt.stats().source.download)
    const dl = (name, extra = {}, into = store) => downloadFile({
      baseUrl: base, name, store: into, chunkSize, concurrency: o.concurrency, retries: o.retries, stallTimeoutMs: o.stallTimeoutMs, signal, stats: download,
      onProgress: progress, revalidate: o.revalidate, checkQuota: (need, n) => checkQuota(need, n, into), sha256: o.hashes && o.hashes[name], query: o.query, ...extra,
    });
    const got = [];
    const newAbsent = [];
    for (const [name, required] of [['config.json', true], ['genai_config.json', false], ['generation_config.json', false], ['tokenizer.json', false], ['tokenizer_config.json', false]]) {
      if (absent.has(name)) { newAbsent.push(name); continue; }
      // revalidating a file absent before: a 1-byte probe, as for the cached files
      if (o.revalidate && (manifest.absent || []).includes(name) && !(await probeFile({ baseUrl: base, name, signal, retries: o.retries, stallTimeoutMs: o.stallTimeoutMs, query: o.query })).exists) {
        newAbsent.push(name); continue;
      }
      try { await dl(name); got.push(name); } catch (e) {
        if (!required && isAbsent(e)) newAbsent.push(name); else throw e;
      }
    }
    const readers = new Map();
    const open = async (name, from = store) => { readers.set(name, await from.openReader(name, await from.getMeta(name))); };
    for (const n of got) await open(n);
    const cfgSrc = storeSource(readers);
    try { JSON.parse(readAllText(cfgSrc, 'config.json')); } catch (e) {
      throw new QwasmError('CORRUPT', `config.json: invalid JSON (${e.message})`, { file: 'config.json' });
    }
    // cache 'none' in a browser worker: large files are read from the server into the heap, not stored
    const readsServer = () => ({ files: [], stats: { requests: 0, bytes: 0, retries: 0, windowsDropped: 0 } });
    let http = kind === 'memory' && syncHttpAvailable() ? readsServer() : null;
    const probe = (name) => probeFile({ baseUrl: base, name, signal, retries: o.retries, stallTimeoutMs: o.stallTimeoutMs, query: o.query, sha256: o.hashes && o.hashes[name] });
    const direct = async (name, p) => {
      if (!p.ranges) return false; // no Range support: stored whole in memory chunks instead
      const f = { name, size: p.size, sha256: p.sha256, done: 0 };
      f.reader = httpReader({ url: p.url, name, size: p.size, etag: p.etag, sha256: p.sha256, retries: o.retries, timeoutMs: o.stallTimeoutMs, stats: http.stats,
        onBytes: (n) => { f.done += n; progress({ phase: 'download', file: name, bytesDone: Math.min(f.done, p.size), bytesTotal: p.size, direct: true }); } });
      http.files.push(f);
      readers.set(name, f.reader);
      return true;
    };
    const DIRECT_MIN = 32 << 20; // smaller files (a graph with external data, the tokenizer) are simply downloaded
    // The .onnx: the C core's rule (qw_onnx_candidates), probed in order; a cached one is taken without a request,
    // and candidates found absent before are skipped (they are in the manifest) so a warm load asks nothing.
    const cands = onnxCandidates(cfgSrc, o.onnxFile, o.dtype);
    const tried = [];
    let onnxFile = null, onnxProbe = null;
    for (const c of cands) {
      const meta = await store.getMeta(c.name);
      if (meta && meta.complete && meta.url === base) { onnxFile = c.name; break; }
      if (absent.has(c.name)) { newAbsent.push(c.name); tried.push(`${c.name} (${c.from}; absent at an earlier load)`); continue; }
      const p = await probe(c.name);
      if (p.exists) { onnxFile = c.name; onnxProbe = p; break; }
      newAbsent.push(c.name);
      tried.push(`${c.name} (${c.from}; HTTP ${p.status})`);
    }
    if (!onnxFile) {
      throw new QwasmError('NOT_FOUND', `${cands[0].name}: not found; no .onnx file at ${base}: tried ${tried.join(', ')}`,
        { file: cands[0].name, tried: cands.map((c) => c.name) });
    }
    if (!(http && onnxProbe && onnxProbe.size > DIRECT_MIN && await direct(onnxFile, onnxProbe))) {
      await dl(onnxFile);
      await open(onnxFile);
    }
    // Which external data files the graph's locators name, and how many bytes of each it needs (from C).
    const probeId = nextFsId++;
    const listSrc = { size: (n) => (readers.has(n) ? readers.get(n).size : PROBE_SIZE), read: (n, off, dst) => cfgSrc.read(n, off, dst) };
    M.qwFs.set(probeId, listSrc);
    const pn = cstr(onnxFile);
    let listing;
    try {
      const r = ccall(() => M._qw_wasm_onnx_files(probeId, pn));
      if (!r) throw cError('reading the graph');
      const text = M.UTF8ToString(r);
      M._qw_wasm_free(r); // malloc'd, ours
      listing = JSON.parse(text);
    } finally { M._qw_wasm_free(pn); M.qwFs.delete(probeId); }
    const ext = listing.files.slice(1);
    const onnxNeeded = listing.files[0].bytes_needed;
    if (onnxNeeded > readers.get(onnxFile).size) {
      throw new QwasmError('CORRUPT', `${onnxFile}: truncated: ${readers.get(onnxFile).size} bytes, the graph's tensors need ${onnxNeeded}`, { file: onnxFile });
    }
    const extDirect = new Set();
    const readDirect = async () => { // cache 'none': the large external data files are read from the server
      for (const f of ext) {
        fileUrl(base, f.name); // a name the graph gives must stay in the folder (the core checked it too)
        const p = await probe(f.name);
        if (!p.exists) throw new QwasmError('NOT_FOUND', `${f.name}: external data file not found (HTTP ${p.status}) at ${p.url}`, { file: f.name, status: p.status });
        if (p.size != null && p.size < f.bytes_needed) {
          throw new QwasmError('CORRUPT', `${f.name}: truncated: the file has ${p.size} bytes but the model's tensors need ${f.bytes_needed} (${f.bytes_needed - p.size} missing)`, { file: f.name });
        }
        if (p.size > DIRECT_MIN && await direct(f.name, p)) extDirect.add(f.name);
      }
    };
    const storeExt = async (into) => { // the others are downloaded into `into`: quota for all of it first
      let need = 0;
      for (const f of ext) { if (extDirect.has(f.name)) continue; const m = await into.getMeta(f.name); need += Math.max(0, f.bytes_needed - bytesCached(m && m.complete ? { ...m, done: m.done.map(() => 1) } : m)); }
      if (need > 0) await checkQuota(need, ext.map((f) => f.name).join(', '), into);
      for (const f of ext) { if (extDirect.has(f.name)) continue; await dl(f.name, { bytesNeeded: f.bytes_needed }, into); await open(f.name, into); }
    };
    if (http) await readDirect();
    let fallback = null;
    try {
      await storeExt(store);
    } catch (e) {
      // The default cache has no room for the external data (the up-front check, or a write the estimate let
      // through): the load goes on as cache 'none' would (fallbackOptions), the small files staying cached.
      if (!(e instanceof QwasmError && e.code === 'QUOTA' && cacheFallbackAllowed(o, kind))) throw e;
      fallback = { from: kind, to: 'none', reason: e.message };
      http = readsServer();
      await readDirect();
      await storeExt(await openStore('memory', base));
    }
    // what the core derived from these files at an earlier load (int8 lm_head rows), while still valid
    const derived = fallback ? manifest.derived || [] : derivedCacheOn(kind, o) ? await openDerived(store, manifest, readers) : [];
    await store.putManifest({ onnxFile, files: [...got, onnxFile, ...ext.map((f) => f.name)], absent: [...new Set(newAbsent)], derived, complete: !fallback, time: Date.now(), backend: kind });
    return { src: storeSource(readers), onnxFile, files: listing.files, store, http, download, fallback };
  } catch (e) {
    await store.close();
    throw e;
  }
}

function tokenize(text) {
  const bytes = new TextEncoder().encode(String(text));
  const p = M._qw_wasm_malloc(bytes.length + 1);
  const np = M._qw_wasm_malloc(4);
  try {
    heapU8().set(bytes, p);
    heapU8()[p + bytes.length] = 0;
    const r = ccall(() => M._qw_wasm_tokenize(model, p, bytes.length, np));
    if (!r) throw cError('tokenize failed');
    const n = new Int32Array(memBuf(), np, 1)[0];
    const ids = new Int32Array(n);
    ids.set(new Int32Array(memBuf(), r, n));
    M._qw_wasm_free(r);
    return ids;
  } finally { M._qw_wasm_free(p); M._qw_wasm_free(np); }
}

function detokenize(ids) {
  const p = M._qw_wasm_malloc(ids.length * 4 + 4);
  try {
    new Int32Array(memBuf(), p, ids.length).set(ids);
    const r = ccall(() => M._qw_wasm_detokenize(model, p, ids.length));
    if (!r) throw cError('detokenize failed');
    const s = M.UTF8ToString(r);
    M._qw_wasm_free(r);
    return s;
  } finally { M._qw_wasm_free(p); }
}

function chatRender(messages, addGen, tools) {
  const p = cstr(JSON.stringify(messages || []));
  const t = tools == null ? 0 : cstr(JSON.stringify(tools));
  try {
    const r = ccall(() => M._qw_wasm_chat_render(model, p, t, addGen ? 1 : 0));
    if (!r) throw cError('chat template failed');
    const s = M.UTF8ToString(r);
    M._qw_wasm_free(r);
    return s;
  } finally { M._qw_wasm_free(p); if (t) M._qw_wasm_free(t); }
}

const KIND = { [QW_GEN_EVENT.QW_GEN_PREFILL]: 'prefill', [QW_GEN_EVENT.QW_GEN_TOKEN]: 'token',
  [QW_GEN_EVENT.QW_GEN_DONE]: 'done', [QW_GEN_EVENT.QW_GEN_FEED]: 'feed' };
/** The generator's event (qw_wasm_event at evp), field by field as qwasm-abi.js places them. */
function readEvent(evp) {
  const v = new DataView(memBuf(), evp, QW_WASM_EVENT.size);
  const e = {};
  for (const [k, f] of Object.entries(QW_WASM_EVENT)) {
    if (typeof f === 'object') e[k] = f.size === 8 ? v.getFloat64(f.offset, true) : v.getInt32(f.offset, true);
  }
  return e;
}

async function doGenerate(msg) {
  requireModel();
  if (gen) throw new QwasmError('STATE', 'a generation is already running on this runtime');
  const me = { id: msg.id, aborted: false };
  gen = me;
  let h = 0, idsPtr = 0, pp = 0, logitsPtr = 0;
  try {
    let ids;
    if (msg.promptIds) ids = Int32Array.from(msg.promptIds);
    else if (msg.messages) ids = tokenize(chatRender(msg.messages, true, msg.tools));
    else if (typeof msg.prompt === 'string') ids = tokenize(msg.prompt);
    else throw new QwasmError('ARG', 'generate needs messages, prompt or promptIds');
    const P = msg.params || {};
    checkSampling(P);
    // a prompt prefix's KV state from the model's cache (before the generation, so its prefill is skipped)
    const pc = P.cachePrefix && !engine ? await preparePrefix(ids, msg, P.cachePrefix === true ? true : +P.cachePrefix) : null;
    if (pc) promptCache = pc;
    const cp = {};
    const map = { maxTokens: 'max_tokens', temperature: 'temperature', topK: 'top_k', topP: 'top_p', minP: 'min_p', repetitionPenalty: 'repetition_penalty', seed: 'seed', prefillChunk: 'prefill_chunk', ignoreEos: 'ignore_eos' };
    for (const [k, c] of Object.entries(map)) if (P[k] != null) cp[c] = typeof P[k] === 'boolean' ? (P[k] ? 1 : 0) : P[k];
    // greedy: argmax and no repetition penalty, as the CLI's --greedy (unless repetitionPenalty is given)
    if (P.greedy) { cp.temperature = 0; if (P.repetitionPenalty == null) cp.repetition_penalty = 1; }
    if (P.stop) cp.stop = Array.isArray(P.stop) ? P.stop : [P.stop];
    // -Infinity (a ban) would be JSON null: the most negative float bans as well
    if (P.logitBias) cp.bias = Object.fromEntries(Object.entries(P.logitBias).map(([id, b]) => [id, b === -Infinity ? -3.4028234663852886e38 : b]));
    // prompt-lookup speculative decoding (same tokens): 'auto' (default) pauses it while few drafts are accepted
    const spec = P.speculative ?? 'auto';
    cp.speculative = spec === 'auto' ? QW_SPEC.QW_SPEC_AUTO : spec === true || spec === 'on' ? QW_SPEC.QW_SPEC_ON : QW_SPEC.QW_SPEC_OFF;
    if (P.specMaxDraft != null) cp.spec_max_draft = P.specMaxDraft;
    idsPtr = M._qw_wasm_malloc(ids.length * 4 + 4);
    new Int32Array(memBuf(), idsPtr, ids.length).set(ids);
    pp = cstr(JSON.stringify(cp));
    h = ccall(() => M._qw_wasm_gen_begin(model, idsPtr, ids.length, pp));
    if (!h) throw cError('generate failed');
    const evp = M._qw_wasm_gen_event(h);
    for (;;) {
      if (me.aborted) throw new QwasmError('ABORTED', 'generation aborted');
      const st = ccall(() => M._qw_wasm_gen_next(h));
      if (st !== QW_STATUS.QW_OK) throw cError('generation step failed');
      if (me.aborted) throw new QwasmError('ABORTED', 'generation aborted');
      const ev = readEvent(evp);
      if (KIND[ev.kind] === 'feed') { // the fallback engine computes these logits (qw_gen_set_logits)
        const feedIds = new Int32Array(memBuf(), ev.feed_ids, ev.n_feed).slice();
        const logits = await engine.run(feedIds, ev.n_past);
        if (!logitsPtr) logitsPtr = M._qw_wasm_malloc(logits.length * 4);
        new Float32Array(memBuf(), logitsPtr, logits.length).set(logits);
        if (ccall(() => M._qw_wasm_gen_logits(h, logitsPtr, logits.length)) !== QW_STATUS.QW_OK) throw cError('generation step failed');
        continue;
      }
      const kind = KIND[ev.kind] || 'token';
      const text = ev.text_len ? new TextDecoder().decode(heapU8().slice(ev.text, ev.text + ev.text_len)) : '';
      const event = {
        kind, id: kind === 'token' ? ev.id : undefined, text, nPrompt: ev.n_prompt, nPromptDone: ev.n_prompt_done,
        nGenerated: ev.n_generated, stopReason: ev.stop_reason ? M.UTF8ToString(ev.stop_reason) : undefined,
        prefillMs: ev.prefill_ms, decodeMs: ev.decode_ms, stepMs: ev.step_ms, done: kind === 'done',
        specDrafted: ev.spec_drafted, specAccepted: ev.spec_accepted, specSteps: ev.spec_steps,
        ...(draft ? { draftDrafted: ev.draft_drafted, draftAccepted: ev.draft_accepted, draftMs: ev.draft_ms } : {}),
      };
      post({ type: 'gen', id: msg.id, event });
      if (kind === 'done') break;
      await yieldNow(); // lets an abort message in between steps
    }
    const np = M._qw_wasm_malloc(4);
    const gp = M._qw_wasm_gen_ids(h, np);
    const n = new Int32Array(memBuf(), np, 1)[0];
    M._qw_wasm_free(np);
    const out = new Int32Array(n);
    if (n) out.set(new Int32Array(memBuf(), gp, n));
    if (pc) { M._qw_wasm_gen_free(h); h = 0; await finishPrefix(pc); }
    return { ids: out, stats: modelStats() };
  } finally {
    if (M && !broken) {
      if (h) M._qw_wasm_gen_free(h);
      if (idsPtr) M._qw_wasm_free(idsPtr);
      if (pp) M._qw_wasm_free(pp);
      if (logitsPtr) M._qw_wasm_free(logitsPtr);
    }
    gen = null;
  }
}

// Requests run one at a time, except abort (and cache ops), which must get through while a load or
// a generation awaits.
let chain = Promise.resolve();
/** @param {import('./protocol.js').Request} msg */
function handle(msg) {
  if (!msg || typeof msg.type !== 'string') return;
  const run = async () => {
    try {
      const fn = handlers[msg.type];
      if (!fn) throw new QwasmError('ARG', `unknown request ${msg.type}`);
      const value = await fn(msg);
      post({ type: 'result', id: msg.id, value }, transferables(value));
    } catch (e) {
      post({ type: 'error', id: msg.id, error: serializeError(e) });
    }
  };
  if (msg.type === 'abort' || msg.type === 'cache') run();
  else chain = chain.then(run);
}
