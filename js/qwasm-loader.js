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

const IS_NODE = typeof process === 'object' && !!(process.versions && process.versions.node) &&
  typeof window === 'undefined' && typeof WorkerGlobalScope === 'undefined';

/** Default location of the build outputs: <repo>/build/wasm/ next to js/ (baseline SIMD128), and
 *  <repo>/build/wasm-relaxed/ (relaxed SIMD, built with clang-16: tools/build.sh wasm-relaxed). */
export const DEFAULT_WASM_BASE = new URL('../build/wasm/', import.meta.url).href;
export const DEFAULT_RELAXED_BASE = new URL('../build/wasm-relaxed/', import.meta.url).href;

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
 * @param {{flavour?:'mt'|'st', wasmBase?:string, relaxed?:boolean|'auto', onProgress?:(p:object)=>void, print?:(s:string)=>void,
 *          printErr?:(s:string)=>void}} [opts]
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
      const err = new Error(`could not load ${wasmUrl}: ${e.message || e}`);
      err.code = 'NETWORK'; err.file = `${stem}.wasm`;
      throw err;
    }
    progress({ phase: 'compile', file: `${stem}.wasm`, bytesDone: 1, bytesTotal: 1, ms: performance.now() - t0 });
    moduleArgs.instantiateWasm = (imports, receiveInstance) => {
      WebAssembly.instantiate(compiled, imports).then((inst) => receiveInstance(inst, compiled));
      return {};
    };
  }
  const factory = (await import(mjsUrl)).default;
  const module = await factory(moduleArgs);
  module.qwFs = new Map();
  return { module, flavour, relaxed };
}
