// cache.js - picks and opens a model cache, and the cache operations of the public API (list/delete/estimate).
//
// Backends (one interface, see IdbStore in cache-idb.js): 'indexeddb' (cache-idb.js), 'opfs' (cache-opfs.js),
// 'node' (files under a directory, Node only: options.cacheDir or $QWASM_CACHE_DIR or ~/.cache/qwasm),
// 'memory' (cache:'none': chunks kept as Blobs / bytes for this session only).
//
// cache:'auto' picks OPFS when synchronous access handles exist (dedicated worker in Chromium, Firefox,
// Safari), else IndexedDB, else memory; Node always uses 'node'. Measured in headless Chromium (Debian 12,
// 2 shared cores; tests/browser/runtime.spec.mjs: 256 MiB written as 32 MiB chunks, read synchronously in a
// worker; four runs, low-high):
//                          IndexedDB (Blob + FileReaderSync)   OPFS (FileSystemSyncAccessHandle)
//   write                  45-276 MB/s                        150-378 MB/s
//   open (per file)        2.3-2.6 ms                         0.3-0.4 ms
//   sequential 1 MiB reads 186-535 MB/s                       3300-8300 MB/s (2000-5300 into a SAB heap view)
//   random 64 KiB reads    1100-2200 /s                       37000-96000 /s
// so OPFS is 10-45x faster for the on-demand weight reads (paging with memoryCapMB) and 1.3-3x for writes.

import { IdbStore, idbAvailable, idbList, idbDelete } from './cache-idb.js';
import { OpfsStore, opfsSyncAvailable, opfsAvailable, opfsList, opfsDelete, fnv1a64 } from './cache-opfs.js';
import { QW_STATUS } from '../worker/qwasm-abi.js';
import { IS_NODE } from '../worker/env.js';

/** Resolves 'auto' (and checks an explicit choice) for this environment. */
export function resolveCacheKind(kind) {
  kind = kind || 'auto';
  if (kind === 'none') return 'memory';
  if (IS_NODE) return kind === 'memory' ? 'memory' : 'node';
  if (kind === 'auto') return opfsSyncAvailable() ? 'opfs' : idbAvailable() ? 'indexeddb' : 'memory';
  if (kind === 'opfs' && !opfsSyncAvailable()) {
    throw Object.assign(new Error('cache "opfs" needs FileSystemSyncAccessHandle (a dedicated worker in a browser that has it)'), { code: 'ARG' });
  }
  if (kind === 'indexeddb' && !idbAvailable()) throw Object.assign(new Error('IndexedDB is not available'), { code: 'ARG' });
  if (!['opfs', 'indexeddb', 'memory', 'node'].includes(kind)) throw Object.assign(new Error(`unknown cache "${kind}"`), { code: 'ARG' });
  return kind;
}

/**
 * resolveCacheKind, then for 'auto' a check that the persistent backend opens: WebKit's ephemeral sessions
 * (Private Browsing, WebDriver automation) have navigator.storage.getDirectory but it rejects (UnknownError),
 * so 'auto' falls back to IndexedDB, then memory. An explicit choice is kept (its error is the answer).
 */
export async function usableCacheKind(requested) {
  const kind = resolveCacheKind(requested);
  if ((requested || 'auto') !== 'auto' || IS_NODE) return kind;
  if (kind === 'opfs') {
    try { await navigator.storage.getDirectory(); return kind; } catch { /* below */ }
    return idbAvailable() ? 'indexeddb' : 'memory';
  }
  return kind;
}

async function nodeCacheDir(opts) {
  const path = await import('node:path');
  const os = await import('node:os');
  return (opts && opts.cacheDir) || process.env.QWASM_CACHE_DIR || path.join(os.homedir(), '.cache', 'qwasm');
}

/** Files on disk (Node): <cacheDir>/<hash(url)>/{manifest.json, <enc(name)>, <enc(name)>.meta.json}. */
export class NodeStore {
  constructor(url, dir) { this.url = url; this.kind = 'node'; this.root = dir; this.fds = new Map(); }
  async _p(f) { const path = await import('node:path'); return path.join(this.root, fnv1a64(this.url), f); }
  async _readJson(f) {
    const fsp = await import('node:fs/promises');
    try { return JSON.parse(await fsp.readFile(await this._p(f), 'utf8')); } catch { return null; }
  }
  async _writeJson(f, o) {
    const fsp = await import('node:fs/promises');
    const p = await this._p(f);
    await fsp.mkdir((await import('node:path')).dirname(p), { recursive: true });
    await fsp.writeFile(p + '.tmp', JSON.stringify(o));
    await fsp.rename(p + '.tmp', p);
  }
  getManifest() { return this._readJson('manifest.json'); }
  putManifest(m) { return this._writeJson('manifest.json', { ...m, url: this.url }); }
  getMeta(name) { return this._readJson(encodeURIComponent(name) + '.meta.json'); }
  putMeta(name, meta) { return this._writeJson(encodeURIComponent(name) + '.meta.json', meta); }
  async writeChunk(name, index, offset, bytes, meta) {
    const fs = await import('node:fs');
    const p = await this._p(encodeURIComponent(name));
    await fs.promises.mkdir((await import('node:path')).dirname(p), { recursive: true });
    const fd = fs.openSync(p, fs.existsSync(p) ? 'r+' : 'w+');
    try {
      let pos = 0;
      while (pos < bytes.length) pos += fs.writeSync(fd, bytes, pos, bytes.length - pos, offset + pos);
      fs.fsyncSync(fd);
    } finally { fs.closeSync(fd); }
    if (meta) await this.putMeta(name, meta);
  }
  async deleteFile(name) {
    const fsp = await import('node:fs/promises');
    for (const f of [encodeURIComponent(name), encodeURIComponent(name) + '.meta.json']) await fsp.rm(await this._p(f), { force: true });
  }
  async openReader(name, meta) {
    const fs = await import('node:fs');
    const p = await this._p(encodeURIComponent(name));
    const fd = fs.openSync(p, 'r');
    this.fds.set(name, fd);
    return {
      size: meta.size,
      read(offset, dst) {
        let pos = 0;
        while (pos < dst.length) {
          const n = fs.readSync(fd, dst, pos, dst.length - pos, offset + pos);
          if (n <= 0) throw Object.assign(new Error(`${name}: read past the end (offset ${offset + pos})`), { qwStatus: QW_STATUS.QW_E_RANGE });
          pos += n;
        }
      },
      close() { try { fs.closeSync(fd); } catch { /* closed */ } },
    };
  }
  async readRange(name, meta, offset, len) {
    const fsp = await import('node:fs/promises');
    const fh = await fsp.open(await this._p(encodeURIComponent(name)), 'r');
    try { const out = new Uint8Array(len); await fh.read(out, 0, len, offset); return out; } finally { await fh.close(); }
  }
  async close() {
    const fs = await import('node:fs');
    for (const fd of this.fds.values()) { try { fs.closeSync(fd); } catch { /* closed */ } }
    this.fds.clear();
  }
}

/** cache:'none': this session only. Browser: Blob chunks (the browser may keep them on disk); Node: bytes. */
export class MemoryStore {
  constructor(url) { this.url = url; this.kind = 'memory'; this.metas = new Map(); this.chunks = new Map(); this.manifest = null; }
  async getManifest() { return this.manifest; }
  async putManifest(m) { this.manifest = m; }
  async getMeta(name) { return this.metas.get(name) || null; }
  async putMeta(name, meta) { this.metas.set(name, meta); }
  async writeChunk(name, index, offset, bytes, meta) {
    if (!this.chunks.has(name)) this.chunks.set(name, []);
    this.chunks.get(name)[index] = typeof Blob !== 'undefined' && !IS_NODE ? new Blob([bytes]) : bytes.slice();
    if (meta) this.metas.set(name, meta);
  }
  async deleteFile(name) { this.metas.delete(name); this.chunks.delete(name); }
  async openReader(name, meta) {
    const chunks = this.chunks.get(name) || [];
    const frs = typeof FileReaderSync !== 'undefined' ? new FileReaderSync() : null;
    const cs = meta.chunkSize;
    return {
      size: meta.size,
      read(offset, dst) {
        let pos = 0;
        while (pos < dst.length) {
          const off = offset + pos, ci = Math.floor(off / cs), inChunk = off - ci * cs, c = chunks[ci];
          const csize = c ? (c.size != null ? c.size : c.length) : 0;
          const n = Math.min(dst.length - pos, csize - inChunk);
          if (!c || n <= 0) throw Object.assign(new Error(`${name}: read past the end (offset ${off})`), { qwStatus: QW_STATUS.QW_E_RANGE });
          dst.set(c instanceof Uint8Array ? c.subarray(inChunk, inChunk + n) : new Uint8Array(frs.readAsArrayBuffer(c.slice(inChunk, inChunk + n))), pos);
          pos += n;
        }
      },
      close() {},
    };
  }
  async readRange(name, meta, offset, len) {
    const out = new Uint8Array(len);
    const chunks = this.chunks.get(name) || [];
    let pos = 0;
    while (pos < len) {
      const off = offset + pos, ci = Math.floor(off / meta.chunkSize), inChunk = off - ci * meta.chunkSize, c = chunks[ci];
      const part = c instanceof Uint8Array ? c : new Uint8Array(await c.arrayBuffer());
      const n = Math.min(len - pos, part.length - inChunk);
      out.set(part.subarray(inChunk, inChunk + n), pos);
      pos += n;
    }
    return out;
  }
  async close() {}
}

/** Opens the store of one model (its normalized base URL) in a resolved backend. */
export async function openStore(kind, url, opts = {}) {
  switch (kind) {
    case 'indexeddb': return new IdbStore(url);
    case 'opfs': return new OpfsStore(url);
    case 'node': return new NodeStore(url, await nodeCacheDir(opts));
    default: return new MemoryStore(url);
  }
}

/** Every cached model in every persistent backend: [{model, backend, complete, bytes, files}]. */
export async function cacheList(opts = {}) {
  if (IS_NODE) {
    const fsp = await import('node:fs/promises');
    const path = await import('node:path');
    const root = await nodeCacheDir(opts);
    const out = [];
    let dirs = [];
    try { dirs = await fsp.readdir(root); } catch { return out; }
    for (const d of dirs) {
      let m = null; const files = []; let bytes = 0, url = null;
      try { m = JSON.parse(await fsp.readFile(path.join(root, d, 'manifest.json'), 'utf8')); url = m.url; } catch { /* partial */ }
      let names = [];
      try { names = await fsp.readdir(path.join(root, d)); } catch { continue; }
      for (const f of names.filter((n) => n.endsWith('.meta.json'))) {
        try {
          const meta = JSON.parse(await fsp.readFile(path.join(root, d, f), 'utf8'));
          url = url || meta.url;
          files.push({ name: meta.name, size: meta.size, complete: meta.complete });
          bytes += meta.done.reduce((a, x, i) => a + (x ? Math.min(meta.chunkSize, meta.size - i * meta.chunkSize) : 0), 0);
        } catch { /* ignore */ }
      }
      if (url) out.push({ model: url, backend: 'node', complete: !!(m && m.complete), bytes, files });
    }
    return out;
  }
  const out = [];
  if (idbAvailable()) out.push(...await idbList());
  if (opfsAvailable()) out.push(...await opfsList());
  return out;
}

/** Removes a model (its base URL, as given to load or as listed) from every backend. */
export async function cacheDelete(model, opts = {}) {
  const url = normalizeBaseUrl(model);
  if (IS_NODE) {
    const fsp = await import('node:fs/promises');
    const path = await import('node:path');
    await fsp.rm(path.join(await nodeCacheDir(opts), fnv1a64(url)), { recursive: true, force: true });
    return;
  }
  if (idbAvailable()) await idbDelete(url);
  if (opfsAvailable()) await opfsDelete(url);
}

/** {usage, quota, available, persisted} in bytes (navigator.storage.estimate; Node: the disk's free space). */
export async function cacheEstimate(opts = {}) {
  if (IS_NODE) {
    const fs = await import('node:fs');
    const dir = await nodeCacheDir(opts);
    await fs.promises.mkdir(dir, { recursive: true });
    const s = await fs.promises.statfs(dir);
    const available = s.bavail * s.bsize;
    return { usage: 0, quota: available, available, persisted: true };
  }
  if (!navigator.storage || !navigator.storage.estimate) return { usage: 0, quota: Infinity, available: Infinity, persisted: false };
  const e = await navigator.storage.estimate();
  const persisted = navigator.storage.persisted ? await navigator.storage.persisted() : false;
  return { usage: e.usage || 0, quota: e.quota || 0, available: Math.max(0, (e.quota || 0) - (e.usage || 0)), persisted };
}

/** A model folder URL as the cache keys it: absolute, no query/hash, ending in '/'. */
export function normalizeBaseUrl(u) {
  const base = typeof location !== 'undefined' ? location.href : undefined;
  const url = new URL(String(u), base);
  url.hash = '';
  if (!url.pathname.endsWith('/')) url.pathname += '/';
  return url.href;
}
