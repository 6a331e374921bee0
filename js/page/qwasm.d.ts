// Type declarations of the qwasm browser/Node runtime (js/page/qwasm.js). The messages between the page and the worker
// are documented in js/protocol.js.

export type ErrorCodeName =
  | 'NOT_FOUND' | 'FORBIDDEN' | 'HTTP' | 'NETWORK' | 'QUOTA' | 'CORRUPT' | 'UNSUPPORTED' | 'OUT_OF_MEMORY'
  | 'CONTEXT' | 'ABORTED' | 'ARG' | 'IO' | 'STATE' | 'WORKER' | 'INTERNAL';

/** Every rejection of this API is a QwasmError. */
export declare class QwasmError extends Error {
  constructor(code: ErrorCodeName, message: string,
              extra?: { file?: string | null; status?: number; cause?: unknown; bytesNeeded?: number; bytesAvailable?: number;
                        tried?: string[]; model?: string; stalled?: boolean });
  readonly code: ErrorCodeName;
  /** The model file concerned ("config.json", "onnx/model_q4f16.onnx_data"), when there is one. */
  readonly file?: string;
  /** HTTP status, for NOT_FOUND / FORBIDDEN / HTTP. */
  readonly status?: number;
  /** For QUOTA: bytes the download needs and bytes the storage has left. */
  readonly bytesNeeded?: number;
  readonly bytesAvailable?: number;
  /** 'draft' when the load's draftModel failed (the message then starts `draftModel:`). */
  readonly model?: string;
  /** NETWORK: true when the server stopped sending (no byte within stallTimeoutMs) rather than refusing. */
  readonly stalled?: boolean;
}

export declare const ErrorCode: { readonly [K in ErrorCodeName]: K };

export type ProgressPhase = 'compile' | 'download' | 'cache' | 'verify' | 'graph' | 'weights' | 'repack' | 'warmup' | 'ready';

export interface Progress {
  phase: ProgressPhase;
  /** The file concerned (download/cache/verify/compile). */
  file?: string;
  bytesDone: number;
  bytesTotal: number | null;
  /** bytes per second of this download session */
  rate?: number;
  /** seconds left, estimated */
  eta?: number | null;
  /** true when the file came from the cache without any request */
  fromCache?: boolean;
}

export type CacheKind = 'auto' | 'indexeddb' | 'opfs' | 'none';

export interface LoadOptions {
  /** A Hugging Face-style folder: its base URL (hub `resolve/main/` URLs work), a FileSystemDirectoryHandle,
   *  a list of Files (a picked folder; nothing is uploaded), or a path (Node). */
  model: string | URL | FileSystemDirectoryHandle | ArrayLike<File>;
  /** Which .onnx in the folder. Default: the C core's one rule for every source (URL, picked folder, Node path,
   *  cache): genai_config.json's decoder.filename, else onnx/model_<dtype>.onnx, else onnx/model.onnx,
   *  model.onnx, onnx/model_q4f16.onnx, onnx/model_q4.onnx, onnx/model_fp16.onnx, the first that exists (a URL
   *  is probed with 1-byte ranged requests; the NOT_FOUND error lists what was tried). A name inside the
   *  folder: no '..', absolute, drive or backslash paths (code ARG). */
  onnxFile?: string;
  /** As Transformers.js's from_pretrained dtype: 'q4f16' -> onnx/model_q4f16.onnx, 'fp16', 'q4', 'q8'
   *  (onnx/model_quantized.onnx), 'fp32' (onnx/model.onnx)...; default config.json's transformers.js_config.dtype.
   *  [a-z0-9_] only, under 16 characters (else code ARG). */
  dtype?: string;
  /** Where downloads are kept (default 'auto': OPFS when sync access handles exist, else IndexedDB; Node: files).
   *  'none' in a browser: nothing is kept; the large files are read from the server straight into the wasm heap
   *  with ranged requests (the server must support Range), the tied embedding stays in memory and is the lm_head
   *  itself (exactLmHead by default), so the tab holds the model's bytes once but decodes slower than with
   *  'auto' (rt.stats().source.notes says why). 'none' in Node holds the downloaded bytes in memory.
   *  When the default cache (unset or 'auto') has no room for the model's external data (the quota check before
   *  the large downloads, or a QUOTA while storing them: WebKit's ephemeral sessions give IndexedDB 1000 MiB, less
   *  than the 1.5B's 1.21 GB), a browser load does not fail: it goes on as 'none' with embeddingOnDemand true
   *  (unless set), so the tab holds about the model's bytes; the small files (config, tokenizer, graph) stay
   *  cached and derived data is not kept. rt.stats().source.fallback says so ({from: 'opfs' | 'indexeddb',
   *  to: 'none', reason: the QUOTA message}; a note too). An explicit 'opfs' or 'indexeddb' fails with QUOTA. */
  cache?: CacheKind;
  /** Cap on resident weights in MiB; the rest is paged from the cache on demand. */
  memoryCapMB?: number;
  /** A draft model for speculative decoding: a smaller model of the same tokenizer (Qwen2.5-0.5B for 1.5B), in
   *  any form `model` takes, loaded after it into the same worker and cache. When prompt lookup finds no draft, its
   *  greedy continuation is verified by the model in one step; the tokens stay the ones plain decoding gives (greedy,
   *  and sampled with the same seed). A failure to load it (or a different tokenizer: code ARG) fails the load with
   *  a message starting `draftModel:` and error.model === 'draft'. rt.stats().draft: its memory (bytes, weights,
   *  KV cache); rt.stats().speculative.model_drafted / model_accepted / draft_ms. */
  draftModel?: string | URL | FileSystemDirectoryHandle | ArrayLike<File>;
  /** The draft's cap on resident weights in MiB (default: memoryCapMB; each model stays under its own cap). */
  draftMemoryCapMB?: number;
  /** sha256 of the draft's files by name (as `hashes` for the model's). */
  draftHashes?: Record<string, string>;
  /** Compute threads (default: all; 1 in the single-thread build). */
  threads?: number;
  /** Longest context in tokens (default: the model's limit). The KV cache grows as positions come: nothing is
   *  reserved for it up front. */
  maxContext?: number;
  /** KV cache rows: 'fp16' (the default for fp16 models: exact, half of fp32), 'int8' (a quarter of fp32, one
   *  scale per kv head and position: values off by up to half a step), 'fp32'. rt.stats().kv.bytes_per_token. */
  kvCache?: 'fp16' | 'int8' | 'fp32';
  /** Decode look-ahead: the next weights' cache lines touched before the current ones are computed. 'auto' (the
   *  default): the first 12 plain decode steps alternate without and with it and the faster by median is kept (it
   *  pays on some CPUs and costs on others); 'on', 'off'. Same tokens either way. rt.stats().lookahead: the choice and timings. */
  lookahead?: 'auto' | 'on' | 'off';
  /** Re-check cached files against the server (one 1-byte ranged request each). Default false: zero requests. */
  revalidate?: boolean;
  /** Download chunk size in MiB (default 32) and parallel requests (default 3), retries per chunk (default 4). */
  chunkMB?: number;
  concurrency?: number;
  retries?: number;
  /** A request that delivers no byte (or no response headers) for this long is dropped and retried, as a
   *  dropped connection is (NETWORK, error.stalled, after the retries). Default 30000; 0 turns the watchdog off.
   *  rt.stats().source.download counts this load's {bytes, retries, stalls}.
   *  cache:'none' reads each window with a synchronous request: there it is the window's whole time limit
   *  (default 4x this: an 8 MiB window at 70 KB/s). */
  stallTimeoutMs?: number;
  /** Expected sha256 (hex) of files, by name; checked after download. */
  hashes?: Record<string, string>;
  /** 'mt' (needs crossOriginIsolated) or 'st'; default: mt when possible. */
  flavour?: 'mt' | 'st';
  /** Relaxed-SIMD build (qwasm-{mt,st}-relaxed.*): default 'auto' loads it when WebAssembly.validate accepts
   *  relaxed SIMD and the files exist (relaxedBase, default ../build/wasm-relaxed/), else the baseline build. */
  relaxed?: boolean | 'auto';
  relaxedBase?: string | URL;
  /** Folder (URL) holding qwasm-{mt,st}.{mjs,wasm}; default ../build/wasm/ relative to js/. */
  wasmBase?: string | URL;
  /** Node only: the cache directory (default $QWASM_CACHE_DIR or ~/.cache/qwasm). */
  cacheDir?: string;
  exactLmHead?: boolean;
  /** Keep what the core derives at load (the int8 lm_head rows) in the model's cache, beside the files it was
   *  made from, and read it at the next load instead of recomputing (URL models with a persistent cache; the
   *  save runs in the background after load: rt.stats().derived_cache says 'saving', 'saved', 'loaded', 'off'
   *  or 'error'). Default true; false neither reads nor writes derived files. Only with the OPFS and Node caches:
   *  IndexedDB reads back slower than the rows are made. */
  derivedCache?: boolean;
  /** Leave the tied embedding (the model's largest tensor: 467 MB of the 1.5B's 1211) in the cache instead of
   *  memory: once the int8 lm_head replaces its product, only rows are needed (the token being embedded, the
   *  logits rescored exactly), read from the cache as needed. Default 'auto': on with the OPFS and Node caches
   *  and a Node path (fast random reads), off with IndexedDB, picked Files and cache 'none' (on after the default
   *  cache's fallback to 'none': see cache).
   *  rt.stats().paging.on_demand_bytes says how many bytes stay out of memory. */
  embeddingOnDemand?: boolean | 'auto';
  /** Per-op time counters (two clock reads per node), in rt.stats().profile: {op: {ms, calls}} since load. */
  profile?: boolean;
  /** 'onnxruntime-web': when qwasm's executor refuses the graph (an op it lacks, code UNSUPPORTED), run it with
   *  onnxruntime-web's wasm build instead, fed from the same cache and driven by the same C tokenizer, chat
   *  template and sampler; `rt.stats().engine` and `rt.info.engine` say which engine runs. No memory cap on
   *  that path (onnxruntime-web holds every file whole); it uses `threads` threads (default 1). */
  fallback?: 'onnxruntime-web';
  /** URL of onnxruntime-web's ort.wasm.min.mjs, served from the page's origin; default
   *  ../node_modules/onnxruntime-web/dist/ort.wasm.min.mjs relative to js/ (Node: the npm package). */
  ortUrl?: string | URL;
  /** Appended as-is to every file URL (a query string such as "?download=true"). */
  query?: string;
  onProgress?: (p: Progress) => void;
  signal?: AbortSignal;
}

/** A message as the model's chat template reads it (other fields, e.g. tool_calls, are passed through). */
export interface ChatMessage { role: 'system' | 'user' | 'assistant' | 'tool' | string; content: string; [key: string]: any }

export interface GenerateOptions {
  messages?: ChatMessage[];
  /** Tool schemas for the chat template (transformers' `tools`), with `messages`. */
  tools?: Record<string, any>[];
  prompt?: string;
  promptIds?: ArrayLike<number>;
  maxTokens?: number;
  /** Argmax decoding without repetition penalty (as the CLI's --greedy). Defaults otherwise come from
   *  generation_config.json (e.g. repetition_penalty 1.05 also applies with temperature 0). */
  greedy?: boolean;
  temperature?: number;
  topK?: number;
  topP?: number;
  minP?: number;
  repetitionPenalty?: number;
  seed?: number;
  /** Stop strings; the text ends before them. */
  stop?: string | string[];
  ignoreEos?: boolean;
  /** Keep the KV state of the prompt's prefix in the model's cache (OPFS, Node's cache) and read it back at a
   *  later load or conversation instead of prefilling it again. true: the messages before the last one (the
   *  system prompt and instructions; with `prompt` / `promptIds`, the whole prompt); a number: that many leading
   *  prompt tokens. rt.stats().prompt_cache says what happened ('loaded', 'saved', 'memory', 'rebuilt', 'off'). */
  cachePrefix?: boolean | number;
  /** Logit bias by token id. */
  logitBias?: Record<number, number>;
  /** Prompt positions per prefill step (default 128; larger: a little faster, more memory). */
  prefillChunk?: number;
  /** Prompt-lookup speculative decoding: drafts copied from the prompt and the text so far are verified in one
   *  step; the tokens are the ones plain decoding gives (greedy, and sampled with the same seed). 'auto' (default):
   *  on, paused while few drafts are accepted; true / 'on'; false / 'off'. Counters: rt.stats().speculative
   *  ({drafted, accepted, steps}, every generation) and each event's specDrafted / specAccepted. */
  speculative?: 'auto' | 'on' | 'off' | boolean;
  /** Drafted tokens verified per step at most (default 8, at most 16). */
  specMaxDraft?: number;
  /** Also yield prefill progress events (kind 'prefill'). */
  includePrefill?: boolean;
  signal?: AbortSignal;
}

export interface GenEvent {
  kind: 'prefill' | 'token' | 'done';
  /** The new token id (kind 'token'). */
  id?: number;
  /** Its text (complete UTF-8 only; may be empty while a character is incomplete). */
  text: string;
  done: boolean;
  nPrompt: number;
  nPromptDone: number;
  nGenerated: number;
  /** 'eos' | 'max_tokens' | 'stop_string' | 'context' on the last event. */
  stopReason?: string;
  prefillMs: number;
  decodeMs: number;
  stepMs: number;
  /** This generation so far: tokens drafted, drafted tokens accepted, verify steps (speculative decoding). */
  specDrafted: number;
  specAccepted: number;
  specSteps: number;
  /** With a draftModel: the drafted and accepted tokens of specDrafted / specAccepted that came from it, and this
   *  generation's time in it. */
  draftDrafted?: number;
  draftAccepted?: number;
  draftMs?: number;
  /** On the last event: the model's counters and all generated ids. */
  stats?: Record<string, unknown>;
  ids?: Int32Array;
}

export declare class Runtime {
  /** qw_model_info_json of the C core. */
  readonly info: Record<string, any>;
  readonly flavour: 'mt' | 'st';
  /** The files of the ONNX graph with the bytes its tensors need (URL loads). */
  readonly files: Array<{ name: string; size: number; bytes_needed: number }> | null;
  tokenize(text: string): Promise<Int32Array>;
  detokenize(ids: ArrayLike<number>): Promise<string>;
  applyChatTemplate(messages: ChatMessage[], addGenerationPrompt?: boolean, opts?: { tools?: Record<string, any>[] }): Promise<string>;
  generate(opts: GenerateOptions): AsyncGenerator<GenEvent, void, void>;
  /** Counters of the C core (qw_model_stats_json): resident/derived weight bytes, paging, kv_tokens, profile,
   *  and build: {target, simd, relaxed_simd, threads, max_threads, dot_add, kernels} (dot_add: the relaxed
   *  build's decode kernel uses i32x4.relaxed_dot_i8x16_i7x16_add_s, which the engine was checked to compute
   *  right; kernels: the 4-bit kernel row in use, its prefill tile the one timed fastest on this engine at load). */
  stats(): Promise<Record<string, unknown>>;
  dispose(): Promise<void>;
}

export interface CachedModel {
  model: string;
  backend: 'indexeddb' | 'opfs' | 'node';
  complete: boolean;
  bytes: number;
  files: Array<{ name: string; size: number; complete: boolean }>;
}

export declare const Qwasm: {
  load(opts: LoadOptions): Promise<Runtime>;
  cache: {
    list(opts?: { cacheDir?: string }): Promise<CachedModel[]>;
    delete(model: string | URL, opts?: { cacheDir?: string }): Promise<void>;
    estimate(opts?: { cacheDir?: string }): Promise<{ usage: number; quota: number; available: number; persisted: boolean }>;
  };
  ErrorCode: typeof ErrorCode;
  QwasmError: typeof QwasmError;
};

export default Qwasm;
