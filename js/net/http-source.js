// http-source.js - cache:'none' in a browser worker: a model file read straight from the server into the wasm
// heap, window by window, with synchronous HTTP Range requests (XMLHttpRequest, allowed in workers). Nothing
// is kept after it is copied: the tab never holds the downloaded bytes beside the heap's copy (the memory
// store of cache.js kept every chunk as a Blob for the whole session: the model twice).
//
// The C core reads a file through qw_fs in pieces of at most 4 MiB, mostly in file order; each miss fetches a
// window of WINDOW_MIN..WINDOW_MAX bytes from the read's offset (a small read out of order: about its own bytes). Requests are one at a time (the core waits on
// each read), retried on network errors and 408/429/5xx. Every response must be a 206 of the bytes asked for
// with the size and ETag the probe saw (else CORRUPT: the file changed on the server). When a sha256 is known
// and the windows covered the file in order, the hash is checked (`hashState()`); reads out of order leave it
// 'unchecked' (counted in stats).

import { QwasmError } from '../worker/protocol.js';
import { Sha256 } from './sha256.js';
import { DEFAULT_STALL_MS } from './fetch.js';
import { QW_STATUS } from '../worker/qwasm-abi.js';

const WINDOW_MIN = 1 << 20;   // the graph's protobuf is read in 64 KiB pieces: small windows, few wasted bytes
const WINDOW_MAX = 8 << 20;   // the weights' 4 MiB reads: 8 MiB per request (each response is garbage once copied)
const COLLECT_EVERY = 32 << 20; // bytes fetched between two collections of the dropped responses (collect())
// A small read before the last window or far past it (an embedding row with embeddingOnDemand: the token embedded,
// each logit rescored; tens per token) fetches about its own bytes: a 1 MiB window per 3 KiB row would move 300x
// more. Reads in file order, and small skips forward, keep the large windows.
const ROW_READ_MAX = 64 << 10;
const ROW_WINDOW_MIN = 4 << 10;

/** Whether this context can read synchronously over HTTP (a dedicated worker; not Node, not a page). */
export function syncHttpAvailable() {
  return typeof XMLHttpRequest === 'function' && typeof WorkerGlobalScope !== 'undefined';
}

/**
 * Frees the responses already copied. The load is one long synchronous task, in which Chromium's GC does not run:
 * each dropped response's bytes stayed in the tab until the load ended (peak 1.5-1.7x the model's bytes, measured;
 * a reused XHR object, 1-2 MiB windows, detaching or transferring the responses did not free them). An
 * ArrayBuffer allocation that fails makes V8 collect all garbage before it throws (its last-resort GC): peak
 * 1.22x when run every 32 MiB, 1.27x every 64 MiB. 16 GiB is within V8's length limit, above what its
 * allocator gives; other engines throw at once.
 */
function collect() { try { new ArrayBuffer(2 ** 34); } catch { /* expected: the GC has run */ } }

/** Frees a dropped response's bytes now where the engine allows it: ArrayBuffer.prototype.transfer(0) detaches the
 *  buffer (JavaScriptCore then frees its contents at once; its GC, sized to the wasm heap beside it, let hundreds
 *  of MB of dropped responses pile up during a load). */
function drop(view) {
  if (view && typeof view.buffer.transfer === 'function') { try { view.buffer.transfer(0); } catch { /* detached already */ } }
}

function spin(ms) { const t = Date.now() + ms; while (Date.now() < t) { /* a sync read cannot await a timer */ } }

/**
 * A reader ({size, read(offset, dst), close}) for `url`, whose size and identity a probe found.
 * @param {object} o  {url, name, size, etag, sha256, retries, timeoutMs (the stall limit), stats: a shared counter object, onBytes(n)}
 */
export function httpReader(o) {
  const { url, name, size } = o;
  const retries = o.retries == null ? 4 : o.retries;
  // a window's whole time limit: 4x the asynchronous downloads' stall limit (8 MiB at ~70 KB/s), 0: none
  const timeoutMs = o.timeoutMs == null ? 4 * DEFAULT_STALL_MS : 4 * o.timeoutMs;
  const st = o.stats;
  let win = null, winStart = 0;          // the last window fetched (dropped when the next one comes)
  const hash = o.sha256 ? new Sha256() : null;
  let hashed = 0, hashBroken = false;    // bytes hashed so far in file order; false once a window skips back
  let uncollected = 0;                   // bytes of dropped responses since the last collect()

  const fetchRange = (start, end) => {
    for (let attempt = 0; ; attempt++) {
      const x = new XMLHttpRequest();
      let err = null;
      try {
        x.open('GET', url, false);
        x.responseType = 'arraybuffer';
        x.setRequestHeader('Range', `bytes=${start}-${end}`);
        if (timeoutMs > 0) x.timeout = timeoutMs; // a synchronous request cannot be watched for stalls: a time limit
        x.send();
      } catch (e) {
        err = e && e.name === 'TimeoutError'
          ? new QwasmError('NETWORK', `${name}: no answer in ${timeoutMs / 1000} s reading bytes ${start}-${end} of ${url} (the connection stalled)`, { file: name, stalled: true })
          : new QwasmError('NETWORK', `${name}: network error reading bytes ${start}-${end} of ${url}: ${e.message || e}`, { file: name });
      }
      if (!err) {
        const s = x.status;
        if (s === 206) {
          const cr = /bytes\s+(\d+)-(\d+)\/(\d+|\*)/i.exec(x.getResponseHeader('content-range') || '');
          const et = x.getResponseHeader('etag');
          const body = x.response ? new Uint8Array(x.response) : new Uint8Array(0);
          if ((cr && (+cr[1] !== start || +cr[2] !== end || (cr[3] !== '*' && +cr[3] !== size))) || body.length !== end - start + 1 ||
              (et && o.etag && et !== o.etag)) {
            throw new QwasmError('CORRUPT', `${name}: the file changed on the server or the server sent other bytes (asked ${start}-${end}/${size}, got Content-Range ${x.getResponseHeader('content-range')}, ${body.length} bytes)`, { file: name });
          }
          st.requests++; st.bytes += body.length;
          return body;
        }
        if (s === 200) throw new QwasmError('HTTP', `${name}: the server ignored the Range request (HTTP 200); cache:'none' reads ranges, use a server with Range support or another cache`, { file: name, status: s });
        if (s === 404 || s === 410) throw new QwasmError('NOT_FOUND', `${name}: not found (HTTP ${s}) at ${url}`, { file: name, status: s });
        if (s === 401 || s === 403) throw new QwasmError('FORBIDDEN', `${name}: access denied (HTTP ${s}) at ${url}`, { file: name, status: s });
        const retryable = s === 0 || s === 408 || s === 429 || s >= 500;
        err = new QwasmError(s === 0 ? 'NETWORK' : 'HTTP', `${name}: HTTP ${s} reading bytes ${start}-${end} at ${url}`, { file: name, status: s });
        if (!retryable) throw err;
      }
      if (attempt >= retries) throw err;
      st.retries++;
      spin(Math.min(4000, 250 * 2 ** attempt));
    }
  };

  return {
    size,
    read(offset, dst) {
      let pos = 0;
      while (pos < dst.length) {
        const off = offset + pos;
        if (!win || off < winStart || off >= winStart + win.length) {
          if (off >= size) throw Object.assign(new Error(`${name}: read past the end (offset ${off} of ${size})`), { qwStatus: QW_STATUS.QW_E_RANGE });
          const left = dst.length - pos;
          const ahead = off - (win ? winStart + win.length : 0); // bytes skipped forward since the last window
          const row = left <= ROW_READ_MAX && (ahead < 0 || ahead >= WINDOW_MIN);
          const want = row ? ROW_WINDOW_MIN : Math.min(WINDOW_MAX, Math.max(WINDOW_MIN, left * 4));
          const end = Math.min(size, off + Math.max(want, left)) - 1;
          if (win) { st.windowsDropped++; uncollected += win.length; drop(win); }
          win = null;                        // the old window goes before the new one comes
          if (uncollected >= COLLECT_EVERY) { collect(); uncollected = 0; }
          win = fetchRange(off, end);
          winStart = off;
          if (hash && !hashBroken) {
            if (off === hashed) { hash.update(win); hashed += win.length; } else if (off < hashed) {
              // a window read again (the window before was dropped): hash only what is new
              const from = hashed - off;
              if (from < win.length) { hash.update(win.subarray(from)); hashed += win.length - from; }
            } else hashBroken = true;
          }
          if (o.onBytes) o.onBytes(win.length);
        }
        const n = Math.min(dst.length - pos, winStart + win.length - off);
        dst.set(win.subarray(off - winStart, off - winStart + n), pos);
        pos += n;
      }
    },
    /** 'verified' | 'mismatch' | 'unchecked' (no known hash, or the file was not read whole and in order). */
    hashState() {
      if (!hash) return 'unchecked';
      if (hashBroken || hashed !== size) return 'unchecked';
      return hash.hex() === o.sha256 ? 'verified' : 'mismatch';
    },
    /** The bytes read so far are not needed again unless the core pages or reads rows (memory cap). */
    release() { drop(win); win = null; },
    close() { drop(win); win = null; },
  };
}
