// fetch.js - downloads one file of a model folder into a cache store, in chunks, resumably.
//
//  - HTTP Range requests of `chunkSize` bytes (default 32 MiB), `concurrency` in flight (default 3).
//  - Each chunk is retried `retries` times (default 4) with exponential backoff (0.5 s, 1 s, 2 s, ...) on network
//    errors, dropped connections, 408/429/5xx. 404 -> NOT_FOUND, 401/403 -> FORBIDDEN, other statuses -> HTTP.
//  - A chunk is recorded as done in the file's sidecar (cache metadata) only after its bytes are stored, so a
//    network drop, a failure or a page reload keeps every complete chunk; the next call fetches only the rest.
//  - Sizes: the total comes from Content-Range (or Content-Length without Range support); each chunk's length
//    is checked; the file must hold the bytes its ONNX locators need (`bytesNeeded`) -> CORRUPT otherwise.
//  - The file's identity (ETag / Last-Modified) is recorded; a resume whose server copy changed starts over.
//  - sha256 is checked when known, from (in order): options.hashes[name]; the `X-Linked-Etag` / `ETag` header
//    when it is 64 hex digits (the Hugging Face hub sends an LFS file's sha256 there). A mismatch deletes the
//    file from the cache and fails with CORRUPT. (A `<name>.sha256` sidecar is not fetched: one more request per file.)
//  - Without Range support (a 200 to the first ranged request) the body is streamed in one GET, stored chunk by
//    chunk as it arrives (no whole-file buffer).
//  - A stalled connection (no byte for `stallTimeoutMs`, default 30 s; no response headers for as long) is
//    dropped and retried like a dropped one (NETWORK, "no data for N s"): a request that stops delivering
//    cannot hang the load, and the chunks already stored stay.
//  - A complete file is trusted without any request; `revalidate: true` re-checks its ETag/size with a 1-byte
//    ranged request and downloads again when it changed.
// Progress: onProgress({phase:'download'|'cache', file, bytesDone, bytesTotal, rate, eta, fromCache}).

import { QwasmError } from '../worker/protocol.js';
import { sha256Stream } from './sha256.js';
import { stallTimer } from './stall-timer.js';

export const DEFAULT_CHUNK = 32 << 20;
/** No byte (or no response headers) for this long: the request has stalled; it is dropped and retried. */
export const DEFAULT_STALL_MS = 30000;

const sleep = (ms, signal) => new Promise((resolve, reject) => {
  const t = setTimeout(resolve, ms);
  if (signal) signal.addEventListener('abort', () => { clearTimeout(t); reject(abortError()); }, { once: true });
});

function abortError() { return new QwasmError('ABORTED', 'download aborted'); }

function httpError(resp, name, url) {
  const s = resp.status;
  if (s === 404 || s === 410) return new QwasmError('NOT_FOUND', `${name}: not found (HTTP ${s}) at ${url}`, { file: name, status: s });
  if (s === 401 || s === 403) return new QwasmError('FORBIDDEN', `${name}: access denied (HTTP ${s}) at ${url}; a gated or private model needs a token or a proxy`, { file: name, status: s });
  return new QwasmError('HTTP', `${name}: HTTP ${s} ${resp.statusText || ''} at ${url}`.trim(), { file: name, status: s });
}

const retryable = (e) => !(e instanceof QwasmError) || e.code === 'NETWORK' || (e.code === 'HTTP' && (e.status >= 500 || e.status === 408 || e.status === 429));

function parseContentRange(h) {
  const m = /bytes\s+(\d+)-(\d+)\/(\d+|\*)/i.exec(h || '');
  return m ? { start: +m[1], end: +m[2], total: m[3] === '*' ? null : +m[3] } : null;
}

function hexSha(h) {
  if (!h) return null;
  const v = h.replace(/^W\//, '').replace(/"/g, '').trim().toLowerCase();
  return /^[0-9a-f]{64}$/.test(v) ? v : null;
}

const chunkLen = (meta, i) => Math.min(meta.chunkSize, meta.size - i * meta.chunkSize);
export const bytesCached = (meta) => (meta ? meta.done.reduce((a, d, i) => a + (d ? chunkLen(meta, i) : 0), 0) : 0);

/**
 * A body reader whose read() rejects with NETWORK when no bytes come for `stallMs` (the response is cancelled)
 * and with ABORTED when `signal` aborts, even while a read is pending.
 */
function guardedReader(resp, { name, signal, stallMs, where }) {
  const reader = resp.body.getReader();
  let stalled = false;
  const cancel = () => { reader.cancel().catch(() => { /* already closed */ }); };
  if (signal) signal.addEventListener('abort', cancel, { once: true });
  return {
    async read() {
      // only the time spent waiting for bytes counts (not the caller's cache writes between reads)
      const stop = stallTimer(stallMs, () => { stalled = true; cancel(); });
      let r;
      try { r = await reader.read(); } catch (e) {
        if (!stalled && !(signal && signal.aborted)) {
          throw new QwasmError('NETWORK', `${name}: connection lost after ${where()} (${e.message || e})`, { file: name, cause: e });
        }
      } finally { stop(); }
      if (stalled) throw new QwasmError('NETWORK', `${name}: the connection stalled: no data for ${stallMs / 1000} s after ${where()}`, { file: name, stalled: true });
      if (signal && signal.aborted) throw abortError();
      return r;
    },
    release() {
      if (signal) signal.removeEventListener('abort', cancel);
      try { reader.releaseLock(); } catch { /* released */ }
    },
  };
}

/** Reads a response body of exactly `len` bytes into one Uint8Array, reporting bytes as they come. */
async function readExactly(resp, len, name, onBytes, signal, stallMs) {
  const out = new Uint8Array(len);
  let pos = 0;
  const reader = guardedReader(resp, { name, signal, stallMs, where: () => `${pos} of ${len} bytes` });
  try {
    for (;;) {
      const r = await reader.read();
      if (r.done) break;
      if (pos + r.value.length > len) throw new QwasmError('CORRUPT', `${name}: server sent more than the ${len} bytes requested`, { file: name });
      out.set(r.value, pos);
      pos += r.value.length;
      onBytes(r.value.length);
    }
  } finally { reader.release(); }
  if (pos !== len) throw new QwasmError('NETWORK', `${name}: connection closed after ${pos} of ${len} bytes`, { file: name });
  return out;
}

/**
 * fetch() with errors naming the file; with `stallMs`, a response whose headers do not come in that time is
 * abandoned (NETWORK, retryable).
 */
async function doFetch(url, init, name, stallMs) {
  const parent = init.signal;
  const ctrl = stallMs > 0 ? new AbortController() : null;
  let stalled = false;
  const onAbort = () => ctrl.abort();
  if (ctrl && parent) { if (parent.aborted) ctrl.abort(); else parent.addEventListener('abort', onAbort, { once: true }); }
  const stop = ctrl ? stallTimer(stallMs, () => { stalled = true; ctrl.abort(); }) : () => {};
  try {
    return await fetch(url, ctrl ? { ...init, signal: ctrl.signal } : init);
  } catch (e) {
    if (stalled) throw new QwasmError('NETWORK', `${name}: the server did not answer in ${stallMs / 1000} s (${url})`, { file: name, stalled: true });
    if (parent && parent.aborted) throw abortError();
    throw new QwasmError('NETWORK', `${name}: network error fetching ${url} (offline, CORS or connection refused): ${e.message || e}`, { file: name, cause: e });
  } finally {
    // the body is read through guardedReader, which cancels it on the parent's abort itself
    stop();
    if (ctrl && parent) parent.removeEventListener('abort', onAbort);
  }
}

/**
 * Makes sure `name` (relative to baseUrl) is completely in `store`; returns its sidecar.
 * @param {object} o
 * @param {string} o.baseUrl  folder URL ending in '/'
 * @param {string} o.name     file name relative to the folder
 * @param {object} o.store    a cache store (cache.js)
 * @param {number} [o.chunkSize] @param {number} [o.concurrency] @param {number} [o.retries]
 * @param {number} [o.bytesNeeded]  bytes the ONNX graph reads from this file (truncation check)
 * @param {string} [o.sha256]       expected hash (hex)
 * @param {boolean} [o.revalidate]
 * @param {(need:number, name:string)=>Promise<void>} [o.checkQuota]  throws QUOTA when `need` bytes do not fit
 * @param {AbortSignal} [o.signal]
 * @param {(p:object)=>void} [o.onProgress]
 * @param {string} [o.query]   appended to the file URL (tests)
 * @param {number} [o.stallTimeoutMs]  no byte (or no headers) for this long: the request is retried (default 30 s, 0: off)
 * @param {{bytes:number, retries:number, stalls:number}} [o.stats]  counters, added to (bytes downloaded, requests retried, stalls seen)
 */
export async function downloadFile(o) {
  try {
    return await downloadFileInner(o);
  } catch (e) {
    throw storeError(e, o.name, null); // a cache failure outside a chunk write (sidecar, manifest): QUOTA or IO
  }
}

async function downloadFileInner(o) {
  const { store, name, signal } = o;
  const chunkSize = o.chunkSize || DEFAULT_CHUNK;
  const concurrency = Math.max(1, o.concurrency || 3);
  const retries = o.retries == null ? 4 : o.retries;
  const stallMs = stallOf(o);
  const url = fileUrl(o.baseUrl, name, o.query);
  const progress = o.onProgress || (() => {});
  let meta = await store.getMeta(name);
  if (meta && meta.url !== o.baseUrl) meta = null;

  if (meta && meta.complete && !o.revalidate) {
    if (o.bytesNeeded != null && meta.size < o.bytesNeeded) throw truncated(name, meta.size, o.bytesNeeded);
    progress({ phase: 'cache', file: name, bytesDone: meta.size, bytesTotal: meta.size, fromCache: true });
    return meta;
  }

  const headers = (start, end) => ({ Range: `bytes=${start}-${end}` });
  let first = null; // a response already holding chunk 0
  if (meta && o.revalidate && meta.complete) {
    const r = await withRetries(() => doFetch(url, { headers: headers(0, 0), signal, cache: 'no-store' }, name, stallMs), retries, signal, o.stats);
    if (r.status !== 206 && r.status !== 200) throw httpError(r, name, url);
    const cr = parseContentRange(r.headers.get('content-range'));
    const size = cr ? cr.total : +r.headers.get('content-length');
    const etag = r.headers.get('etag');
    try { await r.body?.cancel(); } catch { /* ignore */ }
    if (size === meta.size && (!etag || !meta.etag || etag === meta.etag)) {
      progress({ phase: 'cache', file: name, bytesDone: meta.size, bytesTotal: meta.size, fromCache: true });
      return meta;
    }
    await store.deleteFile(name);
    meta = null;
  }

  if (!meta || !meta.size || meta.chunkSize !== chunkSize && bytesCached(meta) === 0) {
    // First contact: a ranged GET of chunk 0 tells the size, the identity and whether Range works.
    const r = await withRetries(async () => {
      const resp = await doFetch(url, { headers: headers(0, chunkSize - 1), signal, cache: 'no-store' }, name, stallMs);
      if (!resp.ok) { try { await resp.body?.cancel(); } catch { /* ignore */ } throw httpError(resp, name, url); }
      return resp;
    }, retries, signal, o.stats);
    const cr = r.status === 206 ? parseContentRange(r.headers.get('content-range')) : null;
    const etag = r.headers.get('etag'), lastModified = r.headers.get('last-modified');
    const sha = (o.sha256 || hexSha(r.headers.get('x-linked-etag')) || hexSha(etag) || null);
    if (!cr || cr.total == null) {
      if (r.status === 206) {
        // A partial body whose Content-Range we may not read (cross-origin without Access-Control-Expose-Headers)
        // or without a total: fall back to one plain streamed GET.
        try { await r.body?.cancel(); } catch { /* ignore */ }
        const whole = await withRetries(async () => {
          const resp = await doFetch(url, { signal, cache: 'no-store' }, name, stallMs);
          if (!resp.ok) { try { await resp.body?.cancel(); } catch { /* ignore */ } throw httpError(resp, name, url); }
          return resp;
        }, retries, signal, o.stats);
        return streamWhole(o, url, whole, { etag, lastModified, sha, chunkSize });
      }
      return streamWhole(o, url, r, { etag, lastModified, sha, chunkSize });
    }
    meta = {
      url: o.baseUrl, name, size: cr.total, etag, lastModified, chunkSize,
      nChunks: Math.max(1, Math.ceil(cr.total / chunkSize)), done: [], complete: false, sha256: sha,
      verified: false, time: Date.now(),
    };
    meta.done = new Array(meta.nChunks).fill(0);
    if (o.bytesNeeded != null && meta.size < o.bytesNeeded) { try { await r.body?.cancel(); } catch { /* ignore */ } throw truncated(name, meta.size, o.bytesNeeded); }
    if (o.checkQuota) await o.checkQuota(meta.size, name);
    await store.putMeta(name, meta);
    first = r;
  } else {
    if (o.bytesNeeded != null && meta.size < o.bytesNeeded) throw truncated(name, meta.size, o.bytesNeeded);
    if (o.checkQuota) await o.checkQuota(meta.size - bytesCached(meta), name);
  }

  // Fetch the missing chunks.
  const total = meta.size;
  let doneBytes = bytesCached(meta), sessionBytes = 0;
  const t0 = Date.now();
  let lastReport = 0;
  const report = (force) => {
    const now = Date.now();
    if (!force && now - lastReport < 100) return;
    lastReport = now;
    const rate = sessionBytes / Math.max(0.001, (now - t0) / 1000);
    progress({ phase: 'download', file: name, bytesDone: doneBytes, bytesTotal: total, rate, eta: rate > 0 ? (total - doneBytes) / rate : null });
  };
  report(true);
  let metaWrite = Promise.resolve();
  const markDone = (i) => { meta.done[i] = 1; meta.time = Date.now(); };
  const store1 = async (i, bytes) => {
    // Chunk bytes and sidecar writes are serialized so the sidecar never claims a chunk not yet stored.
    metaWrite = metaWrite.then(async () => {
      try {
        await store.writeChunk(name, i, i * meta.chunkSize, bytes, { ...meta, done: meta.done.slice().map((d, j) => (j === i ? 1 : d)) });
      } catch (e) { throw storeError(e, name, total - bytesCached(meta)); }
      markDone(i);
    });
    await metaWrite;
  };
  const queue = [];
  for (let i = 0; i < meta.nChunks; i++) if (!meta.done[i]) queue.push(i);
  let firstErr = null;
  const ctrl = new AbortController();
  const onAbort = () => ctrl.abort();
  if (signal) signal.addEventListener('abort', onAbort, { once: true });
  const worker = async () => {
    while (queue.length && !firstErr) {
      const i = queue.shift();
      const start = i * meta.chunkSize, len = chunkLen(meta, i);
      try {
        const bytes = await withRetries(async (attempt) => {
          let got = 0;
          try {
            let resp;
            if (i === 0 && first && attempt === 0) { resp = first; first = null; } else {
              resp = await doFetch(url, { headers: headers(start, start + len - 1), signal: ctrl.signal, cache: 'no-store' }, name, stallMs);
              if (resp.status !== 206) {
                try { await resp.body?.cancel(); } catch { /* ignore */ }
                if (resp.ok) throw new QwasmError('HTTP', `${name}: server ignored the Range request on resume (HTTP ${resp.status})`, { file: name, status: resp.status });
                throw httpError(resp, name, url);
              }
              const cr = parseContentRange(resp.headers.get('content-range'));
              if (!cr || cr.start !== start || cr.end !== start + len - 1 || (cr.total != null && cr.total !== total)) {
                try { await resp.body?.cancel(); } catch { /* ignore */ }
                throw new QwasmError('CORRUPT', `${name}: the file changed on the server (Content-Range ${resp.headers.get('content-range')}, expected bytes ${start}-${start + len - 1}/${total}); delete it from the cache to start over`, { file: name });
              }
              const et = resp.headers.get('etag');
              if (et && meta.etag && et !== meta.etag) {
                try { await resp.body?.cancel(); } catch { /* ignore */ }
                throw new QwasmError('CORRUPT', `${name}: the file changed on the server (ETag ${et}, cached ${meta.etag})`, { file: name });
              }
            }
            return await readExactly(resp, len, name, (n) => { got += n; doneBytes += n; sessionBytes += n; report(false); }, ctrl.signal, stallMs);
          } catch (e) { doneBytes -= got; sessionBytes -= got; throw e; }
        }, retries, ctrl.signal, o.stats);
        await store1(i, bytes);
        if (o.stats) o.stats.bytes += bytes.length;
        report(false);
      } catch (e) {
        if (!firstErr) firstErr = e;
        ctrl.abort();
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.min(concurrency, queue.length || 1) }, worker));
    await metaWrite;
  } finally {
    if (signal) signal.removeEventListener('abort', onAbort);
    if (first) { try { await first.body?.cancel(); } catch { /* ignore */ } }
  }
  if (firstErr) throw (signal && signal.aborted) ? abortError() : firstErr;
  report(true);
  return finish(o, meta);
}

/**
 * Whether `name` exists in the folder at baseUrl, with one 1-byte ranged GET (a HEAD is not enough: some hosts
 * answer HEAD differently, and the range answer tells whether ranges work). Resolves {exists, status, size,
 * etag, lastModified, sha256, ranges}; 404/410 -> exists false; other failures throw as downloadFile's do.
 */
export async function probeFile(o) {
  const { name, signal } = o;
  const retries = o.retries == null ? 4 : o.retries;
  const url = fileUrl(o.baseUrl, name, o.query);
  const r = await withRetries(async () => {
    const resp = await doFetch(url, { headers: { Range: 'bytes=0-0' }, signal, cache: 'no-store' }, name, stallOf(o));
    if (!resp.ok && resp.status !== 404 && resp.status !== 410) {
      try { await resp.body?.cancel(); } catch { /* ignore */ }
      throw httpError(resp, name, url);
    }
    return resp;
  }, retries, signal);
  try { await r.body?.cancel(); } catch { /* ignore */ }
  if (r.status === 404 || r.status === 410) return { exists: false, status: r.status, url };
  const cr = r.status === 206 ? parseContentRange(r.headers.get('content-range')) : null;
  const clen = r.headers.get('content-length');
  const size = cr && cr.total != null ? cr.total : r.status === 200 && clen != null ? +clen : null;
  const etag = r.headers.get('etag');
  return { exists: true, status: r.status, url, size, etag, lastModified: r.headers.get('last-modified'),
           sha256: o.sha256 || hexSha(r.headers.get('x-linked-etag')) || hexSha(etag) || null, ranges: r.status === 206 };
}

/** The URL of a file of the folder: each segment encoded, so a name cannot leave the folder's path. */
export function fileUrl(baseUrl, name, query) {
  if (name.split('/').some((seg) => seg === '' || seg === '.' || seg === '..')) {
    throw new QwasmError('CORRUPT', `${name}: not a name inside the model folder (empty, '.' or '..' segment)`, { file: name });
  }
  return new URL(name.split('/').map(encodeURIComponent).join('/'), baseUrl).href + (query || '');
}

/** A failed cache write as an error naming the file: QUOTA when the storage is full, else IO. */
export function storeError(e, name, bytesLeft) {
  if (e instanceof QwasmError) return e;
  const msg = String((e && e.message) || e);
  if ((e && e.name === 'QuotaExceededError') || /quota|no space|ENOSPC/i.test(msg)) {
    const left = bytesLeft != null ? ` (${bytesLeft} bytes still to store)` : '';
    return new QwasmError('QUOTA', `${name}: the storage is full${left}: ${msg}`, { file: name, bytesNeeded: bytesLeft, cause: e });
  }
  return new QwasmError('IO', `${name}: could not write to the cache: ${msg}`, { file: name, cause: e });
}

const stallOf = (o) => (o.stallTimeoutMs == null ? DEFAULT_STALL_MS : o.stallTimeoutMs);

function truncated(name, size, needed) {
  return new QwasmError('CORRUPT', `${name}: truncated: the file has ${size} bytes but the model's tensors need ${needed} (${needed - size} missing)`, { file: name });
}

async function finish(o, meta) {
  const { store, name } = o;
  if (meta.sha256 && !meta.verified) {
    o.onProgress && o.onProgress({ phase: 'verify', file: name, bytesDone: 0, bytesTotal: meta.size });
    const hex = await sha256Stream(async (off, len) => store.readRange(name, meta, off, len), meta.size, 8 << 20);
    if (hex !== meta.sha256) {
      await store.deleteFile(name);
      throw new QwasmError('CORRUPT', `${name}: sha256 mismatch (got ${hex}, expected ${meta.sha256}); the file was removed from the cache`, { file: name });
    }
    meta.verified = true;
  }
  meta.complete = true;
  meta.time = Date.now();
  await store.putMeta(name, meta);
  return meta;
}

/** No Range support: one streamed GET, stored chunk by chunk. */
async function streamWhole(o, url, resp, { etag, lastModified, sha, chunkSize }) {
  const { store, name, signal } = o;
  const clen = resp.headers.get('content-length');
  const expected = clen != null ? +clen : null;
  if (expected != null && o.bytesNeeded != null && expected < o.bytesNeeded) { try { await resp.body?.cancel(); } catch { /* ignore */ } throw truncated(name, expected, o.bytesNeeded); }
  if (expected != null && o.checkQuota) await o.checkQuota(expected, name);
  await store.deleteFile(name);
  const meta = { url: o.baseUrl, name, size: expected || 0, etag, lastModified, chunkSize, nChunks: 0, done: [], complete: false, sha256: sha, verified: false, time: Date.now(), noRange: true };
  const progress = o.onProgress || (() => {});
  let buf = new Uint8Array(chunkSize), fill = 0, total = 0, idx = 0, last = 0;
  const reader = guardedReader(resp, { name, signal, stallMs: stallOf(o),
    where: () => `${total} bytes (the server has no Range support, so the download restarts from the beginning)` });
  const t0 = Date.now();
  const flush = async () => {
    if (!fill) return;
    meta.done[idx] = 1; meta.nChunks = idx + 1;
    try {
      await store.writeChunk(name, idx, idx * chunkSize, buf.subarray(0, fill), { ...meta, size: Math.max(meta.size, total), done: meta.done.slice() });
    } catch (e) { throw storeError(e, name, expected != null ? expected - total + fill : fill); }
    idx++; fill = 0; buf = new Uint8Array(chunkSize);
  };
  try {
    for (;;) {
      const r = await reader.read();
      if (r.done) break;
      let v = r.value;
      while (v.length) {
        const n = Math.min(v.length, chunkSize - fill);
        buf.set(v.subarray(0, n), fill);
        fill += n; total += n; v = v.subarray(n);
        if (fill === chunkSize) await flush();
      }
      const now = Date.now();
      if (now - last > 100) {
        last = now;
        const rate = total / Math.max(0.001, (now - t0) / 1000);
        progress({ phase: 'download', file: name, bytesDone: total, bytesTotal: expected, rate, eta: expected ? (expected - total) / rate : null });
      }
    }
  } finally { reader.release(); }
  await flush();
  if (o.stats) o.stats.bytes += total;
  if (expected != null && total !== expected) {
    throw new QwasmError('CORRUPT', `${name}: truncated download: ${total} of ${expected} bytes (Content-Length)`, { file: name });
  }
  meta.size = total;
  meta.nChunks = Math.max(1, idx);
  if (o.bytesNeeded != null && total < o.bytesNeeded) throw truncated(name, total, o.bytesNeeded);
  return finish(o, meta);
}

async function withRetries(fn, retries, signal, stats) {
  for (let attempt = 0; ; attempt++) {
    if (signal && signal.aborted) throw abortError();
    try {
      return await fn(attempt);
    } catch (e) {
      if (signal && signal.aborted) throw abortError();
      if (stats && e.stalled) stats.stalls++;
      if (attempt >= retries || !retryable(e)) throw e;
      if (stats) stats.retries++;
      await sleep(Math.min(8000, 500 * 2 ** attempt), signal);
    }
  }
}
