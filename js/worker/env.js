// env.js - where this code runs, decided once for every module of js/.

/** Node.js (its main thread or a worker_thread): not a browser page or worker, nor a page or worker that also has
 *  Node's `process` (an Electron renderer), which take the browser paths. */
export const IS_NODE = typeof process === 'object' && !!(process.versions && process.versions.node) &&
  typeof window === 'undefined' && typeof WorkerGlobalScope === 'undefined';
