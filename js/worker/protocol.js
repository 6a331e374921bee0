// protocol.js - the one message union between the page (js/page/qwasm.js) and the worker (js/worker/qwasm-worker.js),
// the error codes, and the Error <-> message conversion. Nothing here touches the DOM, wasm or the network.
//
// The messages, as the JSDoc typedefs below (checked by tsc: tsconfig.json, tests/node/lint.test.mjs); the API types
// they carry (Progress, GenEvent, options) are qwasm.d.ts's. A worker that dies (uncaught error, exit) fails every
// pending request with code WORKER (js/page/qwasm.js). Every ArrayBuffer in a message is transferred (Int32Array ids,
// never copied twice).

/** @typedef {import('../page/qwasm.js').Progress} Progress */
/** @typedef {import('../page/qwasm.js').GenEvent} GenEvent */
/** @typedef {import('../page/qwasm.js').ChatMessage} ChatMessage */
/** @typedef {import('../page/qwasm.js').ErrorCodeName} ErrorCodeName */

/** Where a model's files come from (qwasm.js modelSource).
 * @typedef {{kind:'url', url:string} | {kind:'path', path:string} | {kind:'files', files:File[]}
 *   | {kind:'dir', handle:FileSystemDirectoryHandle}} ModelSource */

/** QwasmError as a message: code, message, the file concerned (null when none), HTTP status, quota figures.
 * @typedef {{code:string, message:string, file:string|null, status?:number, bytesNeeded?:number,
 *   bytesAvailable?:number, tried?:string[], model?:string, stalled?:boolean}} ErrorMessage */

/** Page -> worker: requests, each with a unique integer `id`; each is answered by a result or an error.
 *  init -> {info, flavour, abortCell}: abortCell (mt only) is {buffer: the wasm memory's SharedArrayBuffer, index};
 *    the page may Atomics.store(Int32Array(buffer), index, 1) to stop a running generation inside its current step.
 *  load -> {info, files}: progress messages while loading. options: LoadOptions less `model` and the callbacks,
 *    plus cacheDir (Node). draftSource: the draft model (same forms as source), loaded after source into the same module.
 *  tokenize -> {ids:Int32Array}; detokenize, chat -> {text}; stats -> {stats}; unload (frees the model, the worker
 *    stays), abort (of request `target`: a generate or a load) -> {}; cache -> the op's value.
 *  generate -> gen messages, one per step (the last has done:true), then {ids:Int32Array, stats}.
 * @typedef {{id:number, type:'init', flavour?:'mt'|'st', wasmBase?:string, relaxedBase?:string,
 *     relaxed?:boolean|'auto'}
 *   | {id:number, type:'load', source:ModelSource, draftSource?:ModelSource, options:Record<string, any>}
 *   | {id:number, type:'tokenize', text:string}
 *   | {id:number, type:'detokenize', ids:ArrayLike<number>}
 *   | {id:number, type:'chat', messages:ChatMessage[], addGenerationPrompt?:boolean, tools?:Record<string, any>[]}
 *   | {id:number, type:'generate', prompt?:string, messages?:ChatMessage[], tools?:Record<string, any>[],
 *       promptIds?:Int32Array, params?:Record<string, any>}
 *   | {id:number, type:'abort', target:number}
 *   | {id:number, type:'stats'}
 *   | {id:number, type:'unload'}
 *   | {id:number, type:'cache', op:'list'|'delete'|'estimate', model?:string, cacheDir?:string}} Request */

/** Worker -> page: the answer to request `id` (result or error), a load's progress, a generate's steps.
 * @typedef {{type:'result', id:number, value:any}
 *   | {type:'error', id:number, error:ErrorMessage}
 *   | {type:'progress', id:number, progress:Progress}
 *   | {type:'gen', id:number, event:GenEvent}} Reply */

/** The runtime worker's pthreads, started by the page (js/worker/qwasm-pthread.js says why): worker -> page.
 * @typedef {{type:'spawn', spawn:number, url:string} | {type:'kill', spawn:number}} SpawnRequest */
/** Page -> worker, about a spawn.
 * @typedef {{type:'spawned', spawn:number, port?:MessagePort, error?:string}
 *   | {type:'spawn-error', spawn:number, message?:string, filename?:string, lineno?:number}} SpawnReply */

/** Every message the page sends the worker. @typedef {Request | SpawnReply} PageToWorker */
/** Every message the worker sends the page. @typedef {Reply | SpawnRequest} WorkerToPage */

import { QW_STATUS } from './qwasm-abi.js';

/** Error codes carried by every rejection (`err.code`). */
export const ErrorCode = Object.freeze({
  NOT_FOUND: 'NOT_FOUND',       // HTTP 404 or a missing file in a folder/path
  FORBIDDEN: 'FORBIDDEN',       // HTTP 401/403
  HTTP: 'HTTP',                 // another HTTP status (5xx after retries, 416, ...)
  NETWORK: 'NETWORK',           // fetch failed: offline, CORS, connection dropped (after retries)
  QUOTA: 'QUOTA',               // not enough storage for the download
  CORRUPT: 'CORRUPT',           // truncated or corrupt file: size or sha256 mismatch, bad protobuf/JSON
  UNSUPPORTED: 'UNSUPPORTED',   // valid input qwasm does not handle (op, dtype, ...), from the C core
  OUT_OF_MEMORY: 'OUT_OF_MEMORY',
  CONTEXT: 'CONTEXT',           // context length exceeded
  ABORTED: 'ABORTED',           // cancelled through an AbortSignal / abort()
  ARG: 'ARG',                   // invalid argument
  IO: 'IO',                     // a cache/file read failed
  STATE: 'STATE',               // no model loaded, runtime disposed, a generate already running
  WORKER: 'WORKER',             // the worker crashed or could not start
  INTERNAL: 'INTERNAL',
});

/** The error code of each qw_status (src/api/qwasm.h), by name. */
export const STATUS_NAME_CODE = Object.freeze({
  QW_OK: 'OK', QW_E_ARG: 'ARG', QW_E_IO: 'IO', QW_E_NOTFOUND: 'NOT_FOUND', QW_E_FORMAT: 'CORRUPT',
  QW_E_UNSUPPORTED: 'UNSUPPORTED', QW_E_NOMEM: 'OUT_OF_MEMORY',
  QW_E_RANGE: 'CORRUPT', // a locator past the end of its file = truncated
  QW_E_CONTEXT: 'CONTEXT', QW_E_ABORTED: 'ABORTED', QW_E_INTERNAL: 'INTERNAL',
});
/** qw_status value -> error code. @type {Readonly<Record<number, string>>} */
export const STATUS_CODE = Object.freeze(Object.fromEntries(
  Object.entries(QW_STATUS).map(([name, v]) => [v, STATUS_NAME_CODE[name] || 'INTERNAL'])));

/** An Error with a machine-readable `code` and the `file` it concerns (when any). */
export class QwasmError extends Error {
  /** @param {string} code @param {string} message
   *  @param {{file?:string|null, status?:number, cause?:any, bytesNeeded?:number, bytesAvailable?:number,
   *    tried?:string[], model?:string, stalled?:boolean}} [extra] */
  constructor(code, message, extra = {}) {
    super(message, extra.cause ? { cause: extra.cause } : undefined);
    this.name = 'QwasmError';
    this.code = /** @type {ErrorCodeName} */ (code);
    if (extra.file) this.file = extra.file;
    if (extra.status) this.status = extra.status;
    if (extra.bytesNeeded != null) this.bytesNeeded = extra.bytesNeeded;
    if (extra.bytesAvailable != null) this.bytesAvailable = extra.bytesAvailable;
    if (extra.model) this.model = extra.model; // 'draft': the load's draftModel failed
    if (extra.stalled) this.stalled = true;     // NETWORK: no data within stallTimeoutMs (not a refused connection)
  }
}

/** Error -> plain object for postMessage. */
export function serializeError(e) {
  if (e instanceof QwasmError || (e && typeof e.code === 'string' && ErrorCode[e.code])) {
    const o = { code: e.code, message: String(e.message), file: e.file || null };
    for (const k of ['status', 'bytesNeeded', 'bytesAvailable', 'model', 'stalled']) if (e[k] != null) o[k] = e[k];
    return o;
  }
  if (e && e.name === 'AbortError') return { code: 'ABORTED', message: 'aborted', file: null };
  if (e && (e.name === 'QuotaExceededError')) return { code: 'QUOTA', message: String(e.message), file: null };
  if (e instanceof RangeError && /memory|allocation/i.test(e.message)) return { code: 'OUT_OF_MEMORY', message: e.message, file: null };
  if (e && /out of memory|Cannot enlarge memory|OOM/i.test(String(e.message || e))) return { code: 'OUT_OF_MEMORY', message: String(e.message || e), file: null };
  return { code: 'INTERNAL', message: String((e && (e.stack || e.message)) || e), file: null };
}

/** A wasm trap (or a JS glue failure) while C ran -> QwasmError. Only a failed allocation is OUT_OF_MEMORY (C
 *  reports its own as QW_E_NOMEM); any other trap, "memory access out of bounds" included, is a bug in qwasm:
 *  INTERNAL, naming the graph node that was running (`op`, e.g. "'node' (MatMul)") when known. */
export function wasmTrapError(e, op) {
  const text = String((e && e.message) || e);
  const oom = /out of memory|cannot enlarge memory|array buffer allocation failed|allocation failed/i.test(text);
  return new QwasmError(oom ? 'OUT_OF_MEMORY' : 'INTERNAL', `wasm runtime error${op ? ` in node ${op}` : ''}: ${text}; ` +
    'the runtime will be restarted on the next load');
}

/** Refuses generate options outside what the C sampler accepts (NaN and Infinity would reach C as JSON null, the
 *  default: a silent change of meaning), with the option's name. Ranges as qw_sampler_params_check. */
/** @type {Record<string, [number, number, boolean?, boolean?]>} [lo, hi, integer, lo excluded] */
const SAMPLING_RANGES = {
  maxTokens: [1, 2 ** 24, true], topK: [0, 2 ** 31 - 1, true], seed: [0, Number.MAX_SAFE_INTEGER, true],
  prefillChunk: [1, 2 ** 24, true], temperature: [0, 1e4], minP: [0, 1], topP: [0, 1, false, true],
  repetitionPenalty: [0, 1e4, false, true], specMaxDraft: [1, 16, true], // QW_SPEC_MAX_DRAFT
};
/** The values an option may take where it is one of a few names (the C side refuses the others too). */
function checkOneOf(what, k, v, allowed) {
  if (v != null && !allowed.includes(v)) {
    throw new QwasmError('ARG', `${what}: ${k} ${JSON.stringify(v)}: one of ${allowed.map((a) => JSON.stringify(a)).join(', ')} expected`);
  }
}
export function checkSampling(P) {
  for (const [k, [lo, hi, int, openLo]] of Object.entries(SAMPLING_RANGES)) {
    const v = P[k];
    if (v == null) continue;
    const ok = typeof v === 'number' && Number.isFinite(v) && (openLo ? v > lo : v >= lo) && v <= hi &&
      (!int || Number.isInteger(v));
    if (!ok) {
      throw new QwasmError('ARG', `generate: ${k} ${typeof v === 'number' ? v : JSON.stringify(v)}: ` +
        `${int ? 'an integer' : 'a number'} ${openLo ? 'above' : 'from'} ${lo} and at most ${hi} expected`);
    }
  }
  checkOneOf('generate', 'speculative', P.speculative, ['auto', 'on', 'off', true, false]);
  if (P.cachePrefix != null && P.cachePrefix !== true && P.cachePrefix !== false &&
      !(Number.isInteger(P.cachePrefix) && P.cachePrefix > 0)) {
    throw new QwasmError('ARG', `generate: cachePrefix ${JSON.stringify(P.cachePrefix)}: true, false or a positive token count expected`);
  }
  if (P.logitBias != null) {
    if (typeof P.logitBias !== 'object') throw new QwasmError('ARG', 'generate: logitBias must be an object {id: bias}');
    for (const [id, b] of Object.entries(P.logitBias)) {
      if (!/^\d+$/.test(id) || typeof b !== 'number' || Number.isNaN(b) || b === Infinity) {
        throw new QwasmError('ARG', `generate: logitBias[${id}] = ${b}: a non-negative integer id and a number or -Infinity expected`);
      }
    }
  }
}

/** Refuses load options that are not numbers in range (NaN would become "no cap" / "the model's limit"). */
export function checkLoadOptions(o) {
  /** @type {Record<string, [number, boolean]>} [hi, integer] */
  const lim = { memoryCapMB: [2 ** 22, false], draftMemoryCapMB: [2 ** 22, false], maxContext: [2 ** 24, true],
    threads: [1024, true] };
  for (const [k, [hi, int]] of Object.entries(lim)) {
    const v = o[k];
    if (v == null) continue;
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || v > hi || (int && !Number.isInteger(v))) {
      throw new QwasmError('ARG', `load: ${k} ${typeof v === 'number' ? v : JSON.stringify(v)}: ` +
        `${int ? 'an integer' : 'a number'} from 0 to ${hi} expected`);
    }
  }
  checkOneOf('load', 'lookahead', o.lookahead, ['auto', 'on', 'off']);
  checkOneOf('load', 'kvCache', o.kvCache, ['auto', 'fp16', 'int8', 'fp32']); // (dtype: the core's qw_dtype_problem)
}

/** Plain object from postMessage -> QwasmError. */
export function deserializeError(o) {
  return new QwasmError(o.code || 'INTERNAL', o.message || 'unknown error', o);
}

/** Collects the ArrayBuffers of a value (shallow + one level of nesting) for postMessage's transfer list. */
export function transferables(value) {
  const out = [];
  const add = (v) => {
    if (!v) return;
    if (ArrayBuffer.isView(v) && v.buffer instanceof ArrayBuffer && !out.includes(v.buffer)) out.push(v.buffer);
    else if (v instanceof ArrayBuffer && !out.includes(v)) out.push(v);
  };
  add(value);
  if (value && typeof value === 'object' && !ArrayBuffer.isView(value)) {
    for (const k of Object.keys(value)) {
      add(value[k]);
      const v = value[k];
      if (v && typeof v === 'object' && !ArrayBuffer.isView(v)) for (const k2 of Object.keys(v)) add(v[k2]);
    }
  }
  return out;
}
