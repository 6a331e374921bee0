// qwasm.js - the page-side API. Starts the runtime worker (js/worker/qwasm-worker.js) and talks to it with the messages of
// js/worker/protocol.js; the page's thread never runs the model and never blocks.
//
//   import { Qwasm } from './js/page/qwasm.js';
//   const rt = await Qwasm.load({ model: 'https://huggingface.co/onnx-community/Qwen2.5-0.5B-Instruct/resolve/main/',
//                                 onProgress: (p) => console.log(p.phase, p.file, p.bytesDone, p.bytesTotal) });
//   for await (const ev of rt.generate({ messages: [{ role: 'user', content: 'Hi' }], maxTokens: 64 })) {
//     out.textContent += ev.text;
//   }
//   await rt.dispose();

import { deserializeError, QwasmError, ErrorCode, transferables } from '../worker/protocol.js';
import { IS_NODE } from '../worker/env.js';

/** A thin RPC client over a Worker (browser) or a worker_thread (Node). */
class WorkerClient {
  constructor(w, isNode) {
    this.w = w; this.nextId = 1; this.pending = new Map(); this.listeners = new Map(); this.dead = null;
    const onMessage = (m) => this._onMessage(m);
    const onFatal = (err) => {
      this.dead = new QwasmError('WORKER', `the qwasm worker stopped: ${err && (err.message || err)}`);
      if (this.pthreads) { for (const t of this.pthreads.values()) t.terminate(); this.pthreads.clear(); }
      for (const p of this.pending.values()) p.reject(this.dead);
      this.pending.clear();
      for (const l of this.listeners.values()) l({ type: 'error', error: { code: 'WORKER', message: this.dead.message } });
    };
    if (isNode) {
      w.on('message', onMessage);
      w.on('error', onFatal);
      w.on('exit', (code) => { if (!this.closing) onFatal(new Error(`exit code ${code}`)); });
    } else {
      w.onmessage = (e) => onMessage(e.data);
      w.onerror = (e) => { e.preventDefault && e.preventDefault(); onFatal(e.message ? e : new Error('worker error')); };
      w.onmessageerror = () => onFatal(new Error('message could not be deserialized'));
    }
  }
  /** @param {import('../worker/protocol.js').WorkerToPage} m */
  _onMessage(m) {
    if (m.type === 'spawn' || m.type === 'kill') { this._pthread(m); return; }
    if (m.type === 'progress' || m.type === 'gen') { const l = this.listeners.get(m.id); if (l) l(m); return; }
    const p = this.pending.get(m.id);
    if (!p) return;
    this.pending.delete(m.id);
    const l = this.listeners.get(m.id);
    if (m.type === 'result') { p.resolve(m.value); if (l) l(m); } else { const e = deserializeError(m.error); p.reject(e); if (l) l({ type: 'error', error: m.error }); }
    this.listeners.delete(m.id);
  }
  /** Sends a request; `listener` receives its progress/gen messages. Returns {id, promise}.
   *  @param {import('../worker/protocol.js').Request['type']} type  @param {Record<string, any>} [body]
   *  @param {((m: import('../worker/protocol.js').Reply) => void) | null} [listener]  @param {Transferable[]} [transfer] */
  request(type, body = {}, listener = null, transfer = []) {
    if (this.dead) return { id: 0, promise: Promise.reject(this.dead) };
    const id = this.nextId++;
    const promise = new Promise((resolve, reject) => this.pending.set(id, { resolve, reject }));
    if (listener) this.listeners.set(id, listener);
    this.w.postMessage({ ...body, type, id }, transfer);
    return { id, promise };
  }
  /** @param {import('../worker/protocol.js').Request['type']} type  @param {Record<string, any>} [body]
   *  @param {Transferable[]} [transfer] */
  call(type, body, transfer) { return this.request(type, body, null, transfer).promise; }
  /** The runtime worker's pthreads are started here, on the page (js/worker/qwasm-pthread.js says why).
   *  @param {import('../worker/protocol.js').SpawnRequest} m */
  _pthread(m) {
    this.pthreads = this.pthreads || new Map();
    if (m.type === 'kill') {
      const w = this.pthreads.get(m.spawn);
      if (w) { w.terminate(); this.pthreads.delete(m.spawn); }
      return;
    }
    try {
      const w = new Worker(m.url, { name: `qwasm-pthread-${m.spawn}` });
      const ch = new MessageChannel();
      w.onerror = (e) => {
        e.preventDefault();
        this.w.postMessage({ type: 'spawn-error', spawn: m.spawn, message: e.message, filename: e.filename, lineno: e.lineno });
      };
      w.postMessage({ cmd: 'qw-port', port: ch.port1 }, [ch.port1]);
      this.pthreads.set(m.spawn, w);
      this.w.postMessage({ type: 'spawned', spawn: m.spawn, port: ch.port2 }, [ch.port2]);
    } catch (e) {
      this.w.postMessage({ type: 'spawned', spawn: m.spawn, error: `could not start a thread worker: ${e.message}` });
    }
  }
  async terminate() {
    this.closing = true;
    await this.w.terminate();
    if (this.pthreads) { for (const w of this.pthreads.values()) w.terminate(); this.pthreads.clear(); }
  }
}

async function startWorker() {
  const url = new URL('../worker/qwasm-worker.js', import.meta.url);
  if (IS_NODE) {
    const { Worker } = await import('node:worker_threads');
    return new WorkerClient(new Worker(url), true);
  }
  return new WorkerClient(new Worker(url, { type: 'module', name: 'qwasm' }), false);
}

function modelSource(model, what = 'model') {
  if (model == null) throw new QwasmError('ARG', `load: \`${what}\` is required (a folder URL, a FileSystemDirectoryHandle, a list of Files or a path)`);
  if (typeof model === 'string' || model instanceof URL) {
    const s = String(model);
    if (/^(https?|blob):/i.test(s)) return { kind: 'url', url: s };
    if (IS_NODE) return /^file:/i.test(s) ? { kind: 'path', path: new URL(s).pathname } : { kind: 'path', path: s };
    return { kind: 'url', url: new URL(s, location.href).href };
  }
  if (typeof model === 'object' && model.kind === 'directory' && typeof model.entries === 'function') return { kind: 'dir', handle: model };
  if (typeof model === 'object' && typeof model.length === 'number') return { kind: 'files', files: Array.from(model) };
  throw new QwasmError('ARG', `load: unsupported \`${what}\` (expected a URL string, a FileSystemDirectoryHandle, a File list or a path)`);
}

/** A loaded model in its worker. Create with Qwasm.load(). */
export class Runtime {
  constructor(client, info, flavour, files, abortCell) {
    this._c = client;
    this._abortCell = abortCell || null;
    /** Model information from the C core (qw_model_info_json). */
    this.info = info;
    /** 'mt' (threads, SIMD) or 'st' (SIMD, one thread). */
    this.flavour = flavour;
    /** Files of the ONNX graph: [{name, size, bytes_needed}] (URL loads). */
    this.files = files || null;
    this._busy = false;
    this._disposed = false;
  }
  _check() { if (this._disposed) throw new QwasmError('STATE', 'this runtime was disposed'); }

  /** @param {string} text @returns {Promise<Int32Array>} */
  async tokenize(text) { this._check(); return (await this._c.call('tokenize', { text })).ids; }

  /** @param {ArrayLike<number>} ids @returns {Promise<string>} */
  async detokenize(ids) {
    this._check();
    const a = Int32Array.from(ids);
    return (await this._c.call('detokenize', { ids: a }, [a.buffer])).text;
  }

  /** Renders messages (and `tools`, JSON schemas) with the model's chat template, as transformers'
   *  apply_chat_template. @param {import('./qwasm.d.ts').ChatMessage[]} messages
   *  @param {boolean} [addGenerationPrompt] @param {{tools?: Record<string, any>[]}} [opts] @returns {Promise<string>} */
  async applyChatTemplate(messages, addGenerationPrompt = true, { tools } = {}) {
    this._check();
    return (await this._c.call('chat', { messages, addGenerationPrompt, tools })).text;
  }

  /** Memory and timing counters from the C core. */
  async stats() { this._check(); return (await this._c.call('stats')).stats; }

  /**
   * Streams a generation. Yields {id, text, done, kind, stats?, ...}: one event per new token (kind 'token'),
   * prefill progress when `includePrefill` is set, and a last event with done:true, the stop reason and stats.
   * Breaking out of the loop or aborting `signal` stops the generation; the runtime stays usable.
   */
  async *generate(opts = {}) {
    this._check();
    const { messages, tools, prompt, promptIds, signal, includePrefill, ...params } = opts;
    if (signal && signal.aborted) throw new QwasmError('ABORTED', 'generation aborted');
    const queue = []; let wake = null; let finished = false; let failure = /** @type {any} */ (null);
    const push = (x) => { queue.push(x); if (wake) { wake(); wake = null; } };
    const body = { params };
    if (promptIds) body.promptIds = Int32Array.from(promptIds); else if (messages) { body.messages = messages; if (tools) body.tools = tools; } else body.prompt = prompt;
    const { id, promise } = this._c.request('generate', body, (m) => { if (m.type === 'gen') push(m.event); }, body.promptIds ? [body.promptIds.buffer] : []);
    let result = /** @type {any} */ (null);
    promise.then((r) => { result = r; finished = true; push(null); }, (e) => { failure = e; finished = true; push(null); });
    const onAbort = () => {
      // mt: stop inside the running step through the shared flag; the message stops it between steps
      if (this._abortCell && !finished) Atomics.store(new Int32Array(this._abortCell.buffer), this._abortCell.index, 1);
      this._c.call('abort', { target: id }).catch(() => {});
    };
    if (signal) signal.addEventListener('abort', onAbort, { once: true });
    let completed = false;
    try {
      for (;;) {
        while (!queue.length) await new Promise((r) => { wake = r; });
        const ev = queue.shift();
        if (ev === null) {
          if (failure) throw (signal && signal.aborted && failure.code === 'ABORTED') ? failure : failure;
          completed = true;
          return;
        }
        if (ev.kind === 'prefill' && !includePrefill) continue;
        if (ev.done) {
          // wait for the final result (ids + stats) before yielding the last event
          while (!finished) await new Promise((r) => { wake = r; queue.length && r(); });
          if (failure) throw failure;
          yield { ...ev, stats: result && result.stats, ids: result && result.ids };
          completed = true;
          return;
        }
        yield ev;
      }
    } finally {
      if (signal) signal.removeEventListener('abort', onAbort);
      if (!completed && !finished) {
        // the consumer stopped early: abort and wait so the next call finds the runtime idle
        if (this._abortCell) Atomics.store(new Int32Array(this._abortCell.buffer), this._abortCell.index, 1);
        await this._c.call('abort', { target: id }).catch(() => {});
        await promise.catch(() => {});
      }
    }
  }

  /** Frees the model and stops the worker. */
  async dispose() {
    if (this._disposed) return;
    this._disposed = true;
    try { await this._c.call('unload'); } catch { /* the worker may be gone */ }
    await this._c.terminate();
  }
}

/**
 * Loads a model in a new worker.
 * @param {import('./qwasm.d.ts').LoadOptions} opts
 * @returns {Promise<Runtime>}
 */
async function load(opts = /** @type {import('./qwasm.d.ts').LoadOptions} */ (/** @type {unknown} */ ({}))) {
  const source = modelSource(opts.model);
  const draftSource = opts.draftModel != null ? modelSource(opts.draftModel, 'draftModel') : undefined;
  const { signal, onProgress } = opts;
  if (signal && signal.aborted) throw new QwasmError('ABORTED', 'load aborted');
  const client = await startWorker();
  const listener = (m) => { if (m.type === 'progress' && onProgress) { try { onProgress(m.progress); } catch { /* caller's bug */ } } };
  try {
    const init = client.request('init', { flavour: opts.flavour, wasmBase: opts.wasmBase && String(opts.wasmBase), relaxedBase: opts.relaxedBase && String(opts.relaxedBase), relaxed: opts.relaxed }, listener);
    const { flavour, abortCell } = await init.promise;
    const options = {
      onnxFile: opts.onnxFile, dtype: opts.dtype, cache: opts.cache || 'auto', memoryCapMB: opts.memoryCapMB, threads: opts.threads,
      revalidate: !!opts.revalidate, chunkMB: opts.chunkMB, concurrency: opts.concurrency, retries: opts.retries, stallTimeoutMs: opts.stallTimeoutMs,
      maxContext: opts.maxContext, kvCache: opts.kvCache, lookahead: opts.lookahead, hashes: opts.hashes, cacheDir: opts.cacheDir, exactLmHead: opts.exactLmHead, profile: opts.profile,
      derivedCache: opts.derivedCache, embeddingOnDemand: opts.embeddingOnDemand,
      query: opts.query, fallback: opts.fallback, ortUrl: opts.ortUrl && String(opts.ortUrl),
      draftMemoryCapMB: opts.draftMemoryCapMB, draftHashes: opts.draftHashes,
    };
    const req = client.request('load', { source, draftSource, options }, listener);
    const onAbort = () => client.call('abort', { target: req.id }).catch(() => {});
    if (signal) signal.addEventListener('abort', onAbort, { once: true });
    let r;
    try { r = await req.promise; } finally { if (signal) signal.removeEventListener('abort', onAbort); }
    return new Runtime(client, r.info, r.flavour || flavour, r.files, abortCell);
  } catch (e) {
    await client.terminate().catch(() => {});
    throw e;
  }
}

/** Runs one cache operation (in a short-lived worker: OPFS and Node's cache live there). */
async function cacheOp(op, extra = {}) {
  const client = await startWorker();
  try { return await client.call('cache', { op, ...extra }); } finally { await client.terminate().catch(() => {}); }
}

/** The API, checked by tsc against its declaration (qwasm.d.ts).
 *  @type {typeof import('./qwasm.d.ts').Qwasm} */
export const Qwasm = {
  load,
  cache: {
    /** @returns {Promise<import('./qwasm.d.ts').CachedModel[]>} */
    list: (opts = {}) => cacheOp('list', { cacheDir: opts.cacheDir }),
    /** Deletes a model (its folder URL) from every cache backend. */
    delete: (model, opts = {}) => cacheOp('delete', { model: String(model), cacheDir: opts.cacheDir }),
    /** @returns {Promise<{usage:number, quota:number, available:number, persisted:boolean}>} */
    estimate: (opts = {}) => cacheOp('estimate', { cacheDir: opts.cacheDir }),
  },
  ErrorCode,
  QwasmError,
};

export { QwasmError, ErrorCode, transferables };
export default Qwasm;
