// qwasm-loader.js - instantiates the emscripten module (qwasm-mt.mjs or qwasm-st.mjs) in a browser worker or
// in Node. Everything emscripten 3.1.6's ES6 output needs outside a classic browser page lives here, and only
// here:
//  - Node ESM: the .mjs reads the free variables `__dirname` and `require` (CommonJS) and
//    `navigator.hardwareConcurrency` (pthread pool size; Node 20 has no `navigator`); it cannot read its own
//    .wasm from a file: URL, so `wasmBinary` is passed.
//  - Node + pthreads: emscripten starts `new Worker(new URL('qwasm-mt.worker.js', import.meta.url))`, a
//    CommonJS script that Node would load as ESM under this repo's "type":"module". The global Worker is
//    replaced by one that runs that script as CommonJS (eval) and gives it `mainScriptUrlOrBlob` (the .mjs
//    file: URL) to import.
//  - Browser module workers: `importScripts` does not exist there, so emscripten takes neither its web nor its
//    worker path and cannot fetch the .wasm: it is compiled here with WebAssembly.compileStreaming (which is
//    also where the 'compile' progress phase comes from) and handed over through `instantiateWasm`.

import { PortWorker } from './port-worker.js';
import { QW_STATUS } from './qwasm-abi.js';
import { IS_NODE } from './env.js';

/** Default location of the build outputs: <repo>/build/wasm/ next to js/ (baseline SIMD128), and
 *  <repo>/build/wasm-relaxed/ (relaxed SIMD, built with clang-16: tools/build/build.sh wasm-relaxed). */
export const DEFAULT_WASM_BASE = new URL('../../build/wasm/', import.meta.url).href;
export const DEFAULT_RELAXED_BASE = new URL('../../build/wasm-relaxed/', import.meta.url).href;

/** Whether the engine validates relaxed SIMD (i32x4.relaxed_trunc_f32x4_s); Node 20 needs --experimental-wasm-relaxed-simd. */
export function supportsRelaxedSimd() {
  const bytes = new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 25, 1, 23, 0,
    253, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 253, 129, 2, 11]);
  try { return WebAssembly.validate(bytes); } catch { return false; }
}

/** Whether this environment can run the multi-threaded build. */
export function canUseThreads() {
  if (IS_NODE) return true;
  return typeof SharedArrayBuffer === 'function' && globalThis.crossOriginIsolated === true;
}

let nodePatched = false;

async function patchNode(mjsUrl) {
  const { createRequire } = await import('node:module');
  const os = await import('node:os');
  const path = await import('node:path');
  const url = await import('node:url');
  const wt = await import('node:worker_threads');
  const fs = await import('node:fs');
  const file = url.fileURLToPath(mjsUrl);
  globalThis.__dirname = path.dirname(file);
  globalThis.require = createRequire(file);
  if (typeof globalThis.navigator === 'undefined' || !globalThis.navigator.hardwareConcurrency) {
    Object.defineProperty(globalThis, 'navigator', {
      value: { hardwareConcurrency: os.cpus().length }, configurable: true, writable: true,
    });
  }
  if (nodePatched) return;
  nodePatched = true;
  const Base = wt.Worker;
  class PthreadWorker extends Base {
    constructor(where, opts) {
      const s = String(where && where.href ? where.href : where);
      if (/\.worker\.js$/.test(s)) {
        const p = s.startsWith('file:') ? url.fileURLToPath(s) : s;
        const code = `globalThis.__filename = ${JSON.stringify(p)};\n` + fs.readFileSync(p, 'utf8');
        super(code, { ...(opts || {}), eval: true });
      } else {
        super(where, opts);
      }
    }
  }
  // emscripten assigns `global.Worker = require('worker_threads').Worker` while starting: keep ours.
  Object.defineProperty(globalThis, 'Worker', { configurable: true, get: () => PthreadWorker, set: () => {} });
}

/**
 * Instantiates the module.
 * @param {{flavour?:'mt'|'st', wasmBase?:string, relaxedBase?:string, relaxed?:boolean|'auto', onProgress?:(p:object)=>void,
 *          print?:(s:string)=>void, printErr?:(s:string)=>void, spawnWorker?:(url:string)=>Promise<any>}} [opts]
 * @returns {Promise<{module:any, flavour:'mt'|'st'}>}
 */
export async function loadQwasmModule(opts = {}) {
  // relaxed: true (must load), false (baseline), 'auto' or undefined (the default): the relaxed-SIMD variant
  // when the engine validates relaxed SIMD and its files exist, else the baseline one.
  const auto = opts.relaxed === undefined || opts.relaxed === 'auto';
  if (auto && supportsRelaxedSimd()) {
    try {
      return await loadVariant({ ...opts, relaxed: true, wasmBase: opts.relaxedBase || opts.wasmBase || DEFAULT_RELAXED_BASE });
    } catch (e) {
      if (e.code !== 'NOT_FOUND' && e.code !== 'NETWORK') throw e; // not built / not served: use the baseline
    }
  }
  return loadVariant({ ...opts, relaxed: opts.relaxed === true });
}

async function loadVariant(opts) {
  const flavour = opts.flavour || (canUseThreads() ? 'mt' : 'st');
  let base = opts.wasmBase || DEFAULT_WASM_BASE;
  if (!base.endsWith('/')) base += '/';
  if (IS_NODE && !/^[a-z]+:/i.test(base)) {
    base = (await import('node:url')).pathToFileURL(base).href;
    if (!base.endsWith('/')) base += '/';
  }
  const relaxed = opts.relaxed === true;
  const stem = `qwasm-${flavour}${relaxed ? '-relaxed' : ''}`;
  const mjsUrl = new URL(`${stem}.mjs`, base).href;
  const wasmUrl = new URL(`${stem}.wasm`, base).href;
  const moduleArgs = {
    print: opts.print || ((s) => console.log(s)),
    printErr: opts.printErr || ((s) => console.warn(s)),
  };
  const progress = opts.onProgress || (() => {});
  if (IS_NODE) {
    await patchNode(mjsUrl);
    const fs = await import('node:fs');
    const url = await import('node:url');
    try {
      moduleArgs.wasmBinary = fs.readFileSync(url.fileURLToPath(wasmUrl));
    } catch (e) {
      throw Object.assign(new Error(`could not read ${url.fileURLToPath(wasmUrl)} (build the wasm target: emcmake cmake -S . -B build/wasm && cmake --build build/wasm): ${e.message}`), { code: 'NOT_FOUND', file: `${stem}.wasm` });
    }
    moduleArgs.mainScriptUrlOrBlob = mjsUrl;
  } else {
    const t0 = performance.now();
    progress({ phase: 'compile', file: `${stem}.wasm`, bytesDone: 0, bytesTotal: 0 });
    let compiled;
    try {
      const resp = fetch(wasmUrl, { credentials: 'same-origin' });
      compiled = await WebAssembly.compileStreaming(resp).catch(async () => {
        const r = await fetch(wasmUrl, { credentials: 'same-origin' });
        if (!r.ok) throw new Error(`${wasmUrl}: HTTP ${r.status}`);
        return WebAssembly.compile(await r.arrayBuffer());
      });
    } catch (e) {
      throw Object.assign(new Error(`could not load ${wasmUrl}: ${e.message || e}`), { code: 'NETWORK', file: `${stem}.wasm` });
    }
    progress({ phase: 'compile', file: `${stem}.wasm`, bytesDone: 1, bytesTotal: 1, ms: performance.now() - t0 });
    moduleArgs.instantiateWasm = (imports, receiveInstance, onError) => {
      WebAssembly.instantiate(compiled, imports).then((inst) => receiveInstance(inst, compiled), (e) => onError && onError(e));
      return {};
    };
  }
  const factory = (await import(mjsUrl)).default;
  let pool = [];
  if (!IS_NODE && flavour === 'mt') {
    moduleArgs.mainScriptUrlOrBlob = mjsUrl; // the pthreads import the .mjs by this URL, not relative to js/
    pool = await startPthreadWorkers(new URL(`${stem}.worker.js`, base).href, navigator.hardwareConcurrency || 1,
      opts.spawnWorker || spawnNested, progress);
  }
  const module = await startWatched(factory, moduleArgs, `${stem}.wasm`, progress, pool);
  module.qwFs = new Map();
  module.qwStatus = QW_STATUS; // js/worker/qw_library.js returns these (a --js-library cannot import)
  return { module, flavour, relaxed };
}

/** Starts js/worker/qwasm-pthread.js as a worker of this worker (used when no page starts them for us). */
function spawnNested(url) {
  const w = new Worker(url);
  const ch = new MessageChannel();
  w.postMessage({ cmd: 'qw-port', port: ch.port1 }, [ch.port1]);
  return new PortWorker(ch.port2, () => w.terminate());
}

/** How long the module may take to instantiate and start its pthread pool before the load fails. */
export const START_TIMEOUT_MS = 60000;

/**
 * Runs the emscripten factory, but never waits forever: emscripten 3.1.6 resolves its ready promise only
 * when every pool worker has posted 'loaded', and a worker that fails to start (its script or the .mjs import
 * failing) leaves it pending with nothing reported. Worker errors and a timeout become an Error naming the file.
 */
/**
 * Starts the pthread pool's workers one at a time through `spawn` (the page starts them: js/worker/qwasm-pthread.js
 * says why), each running emscripten's worker script; emscripten's own pool (PTHREAD_POOL_SIZE =
 * hardwareConcurrency) then takes these instead of creating its own.
 * @param {string} workerJsUrl emscripten's pthread script
 * @param {number} n
 * @param {(url:string) => Worker|Promise<Worker>} spawn starts js/worker/qwasm-pthread.js at `url`
 * @returns {Promise<Worker[]>}
 */
async function startPthreadWorkers(workerJsUrl, n, spawn, progress) {
  const boot = new URL('./qwasm-pthread.js', import.meta.url);
  boot.searchParams.set('src', workerJsUrl);
  const file = workerJsUrl.split('/').pop();
  const workers = [];
  try {
    for (let i = 0; i < n; i++) {
      const w = await spawn(boot.href);
      workers.push(w);
      await new Promise((resolve, reject) => {
        const timer = setTimeout(() => done(new Error(`thread worker ${i + 1} of ${n} did not start within ${START_TIMEOUT_MS / 1000} s`)), START_TIMEOUT_MS);
        const onMsg = (e) => { if (e.data && e.data.cmd === 'qw-pthread-up') done(); };
        const onErr = (e) => { if (e.preventDefault) e.preventDefault(); done(new Error(`thread worker ${i + 1}: ${e.message || 'failed to load'}`)); };
        function done(err) {
          clearTimeout(timer);
          w.removeEventListener('message', onMsg); w.removeEventListener('error', onErr);
          if (err) reject(err); else resolve();
        }
        w.addEventListener('message', onMsg);
        w.addEventListener('error', onErr);
      });
    }
  } catch (e) {
    for (const w of workers) w.terminate();
    throw Object.assign(new Error(`${file}: ${e.message}`), { code: 'WORKER', file });
  }
  progress({ phase: 'compile', file, bytesDone: n, bytesTotal: n });
  return workers;
}

function startWatched(factory, moduleArgs, file, progress, pool = []) {
  return new Promise((resolve, reject) => {
    const errors = [];
    const fail = (why) => {
      clearTimeout(timer);
      reject(Object.assign(new Error(`${file}: the WebAssembly runtime did not start: ${why}`), { code: 'WORKER', file }));
    };
    moduleArgs.onAbort = (what) => fail(`aborted (${what})`);
    const prevInstantiate = moduleArgs.instantiateWasm;
    if (prevInstantiate) {
      moduleArgs.instantiateWasm = (imports, receive) => prevInstantiate(imports, receive, (e) => fail(`instantiate failed: ${e && e.message || e}`));
    }
    const workers = () => (moduleArgs.PThread ? [...moduleArgs.PThread.unusedWorkers, ...moduleArgs.PThread.runningWorkers] : []);
    const timer = setTimeout(() => {
      const ws = workers();
      fail(`${ws.filter((w) => w.loaded).length} of ${ws.length} thread workers loaded within ${START_TIMEOUT_MS / 1000} s` +
        (errors.length ? `; worker errors: ${errors.join('; ')}` : ''));
    }, START_TIMEOUT_MS);
    // emscripten's PThread.init() runs `new Worker(...)` synchronously inside the factory: hand it ours.
    let ready;
    if (pool.length) {
      const NativeWorker = globalThis.Worker;
      globalThis.Worker = /** @type {any} */ (function PooledWorker(u, o) { return pool.length ? pool.shift() : new NativeWorker(u, o); });
      try { ready = factory(moduleArgs); } finally { globalThis.Worker = NativeWorker; }
    } else {
      ready = factory(moduleArgs);
    }
    // The factory has built its PThread pool synchronously: listen for workers that fail to load.
    for (const w of workers()) {
      if (typeof w.addEventListener !== 'function') continue;
      w.addEventListener('error', (e) => errors.push(`${e.message || 'error'}${e.filename ? ` (${e.filename}:${e.lineno})` : ''}`));
      w.addEventListener('messageerror', () => errors.push('messageerror'));
    }
    ready.then((m) => {
      clearTimeout(timer);
      const ws = workers();
      progress({ phase: 'compile', file, bytesDone: 1, bytesTotal: 1, threadsLoaded: ws.filter((w) => w.loaded).length, threads: ws.length });
      resolve(m);
    }, (e) => fail(e && e.message || String(e)));
  });
}
