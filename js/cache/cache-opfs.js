// cache-opfs.js - the Origin Private File System model cache.
//
// Layout: <opfs root>/qwasm/<key>/ with key = a hash of the model's base URL, holding
//   manifest.json              {url, onnxFile, files, absent, complete, time}
//   <enc(name)>                the file's bytes at their offsets (enc = encodeURIComponent, so
//                              "onnx/model.onnx_data" -> "onnx%2Fmodel.onnx_data")
//   <enc(name)>.meta.json      the sidecar: {url, name, size, etag, lastModified, chunkSize, nChunks, done, complete,
//                              sha256, verified, time}; a chunk is marked done only after its bytes are flushed.
// In the worker every data file is written and read through one FileSystemSyncAccessHandle (synchronous,
// exclusive), kept open until the store is closed. List/delete/estimate use async APIs and also work on the page.

import { QW_STATUS } from '../worker/qwasm-abi.js';
import { stallTimer } from '../net/stall-timer.js';

export function fnv1a64(s) {
  let h1 = 0x811c9dc5 >>> 0, h2 = 0xcbf29ce4 >>> 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 0x01000193) >>> 0;
    h2 = Math.imul(h2 ^ c, 0x01000193 ^ 0x5bd1e995) >>> 0;
  }
  return h1.toString(16).padStart(8, '0') + h2.toString(16).padStart(8, '0');
}

export function opfsAvailable() {
  return typeof navigator !== 'undefined' && !!navigator.storage && typeof navigator.storage.getDirectory === 'function';
}

/** Sync access handles exist only in dedicated workers (Chromium >= 102, Firefox >= 111, Safari >= 15.2). */
export function opfsSyncAvailable() {
  return opfsAvailable() && typeof FileSystemFileHandle !== 'undefined' &&
    typeof FileSystemFileHandle.prototype.createSyncAccessHandle === 'function';
}

/**
 * An OPFS call that does not settle in OPFS_DEADLINE_MS fails with IO naming the file, instead of hanging the load
 * (a load was once seen stuck between two OPFS steps with no request in flight; the cause is not known). Only
 * time the worker could run counts (stallTimer), so a long synchronous call in between is not taken for it.
 */
export const OPFS_DEADLINE_MS = 30000;
function answer(p, what) {
  let stop = () => {};
  const late = new Promise((_, reject) => {
    stop = stallTimer(OPFS_DEADLINE_MS, () => reject(Object.assign(new Error(`${what}: the browser's OPFS storage did not answer in ${OPFS_DEADLINE_MS / 1000} s`), { code: 'IO' })));
  });
  return Promise.race([p, late]).finally(() => stop());
}

async function rootDir(create) {
  const root = await answer(navigator.storage.getDirectory(), 'the OPFS root');
  return answer(root.getDirectoryHandle('qwasm', { create }), 'the OPFS folder qwasm/');
}

async function readJson(dir, fname) {
  try {
    const fh = await answer(dir.getFileHandle(fname), fname);
    return JSON.parse(await answer(fh.getFile().then((f) => f.text()), fname));
  } catch (e) {
    if (e && (e.name === 'NotFoundError' || e instanceof SyntaxError)) return null;
    throw e;
  }
}

const enc = new TextEncoder();

export class OpfsStore {
  constructor(url) { this.url = url; this.kind = 'opfs'; this.handles = new Map(); this.dir = null; }
  async _dir() {
    if (!this.dir) this.dir = await answer((await rootDir(true)).getDirectoryHandle(fnv1a64(this.url), { create: true }), `the OPFS folder of ${this.url}`);
    return this.dir;
  }
  async _writeJson(fname, obj) {
    const dir = await this._dir();
    const fh = await answer(dir.getFileHandle(fname, { create: true }), fname);
    const bytes = enc.encode(JSON.stringify(obj));
    if (opfsSyncAvailable()) {
      // Another write to the same small file may be in flight (metas of one file are serialized by the caller).
      const h = await answer(fh.createSyncAccessHandle(), fname);
      try { h.truncate(0); h.write(bytes, { at: 0 }); h.flush(); } finally { h.close(); }
    } else {
      const w = await fh.createWritable();
      await w.write(bytes);
      await w.close();
    }
  }
  async getManifest() { return readJson(await this._dir(), 'manifest.json'); }
  async putManifest(m) { await this._writeJson('manifest.json', { ...m, url: this.url }); }
  async getMeta(name) { return readJson(await this._dir(), encodeURIComponent(name) + '.meta.json'); }
  async putMeta(name, meta) { await this._writeJson(encodeURIComponent(name) + '.meta.json', meta); }
  async _handle(name) {
    let h = this.handles.get(name);
    if (!h) {
      const dir = await this._dir();
      const fh = await answer(dir.getFileHandle(encodeURIComponent(name), { create: true }), name);
      h = answer(fh.createSyncAccessHandle(), name).catch((e) => {
        this.handles.delete(name);
        if (e && e.name === 'NoModificationAllowedError') {
          throw Object.assign(new Error(`${name}: the OPFS cache file is open in another tab or worker (${e.message})`), { code: 'IO', file: name });
        }
        throw e;
      });
      this.handles.set(name, h);
    }
    return h;
  }
  async writeChunk(name, index, offset, bytes, meta) {
    const h = await this._handle(name);
    let pos = 0;
    while (pos < bytes.length) pos += h.write(bytes.subarray(pos), { at: offset + pos });
    h.flush();
    if (meta) await this.putMeta(name, meta);
  }
  async deleteFile(name) {
    const h = this.handles.get(name);
    if (h) { (await h).close(); this.handles.delete(name); }
    const dir = await this._dir();
    for (const f of [encodeURIComponent(name), encodeURIComponent(name) + '.meta.json']) {
      try { await dir.removeEntry(f); } catch (e) { if (e.name !== 'NotFoundError') throw e; }
    }
  }
  async openReader(name, meta) {
    const h = await this._handle(name);
    const size = h.getSize();
    if (size < meta.size) throw Object.assign(new Error(`${name}: OPFS file has ${size} bytes, expected ${meta.size}`), { code: 'IO' });
    let bounce = null;
    return {
      size: meta.size,
      read(offset, dst) {
        if (offset + dst.length > meta.size) throw Object.assign(new Error(`${name}: read past the end (offset ${offset})`), { qwStatus: QW_STATUS.QW_E_RANGE });
        // A view on a SharedArrayBuffer (the mt build's heap) is refused by read(): bounce through a private buffer.
        if (dst.buffer instanceof ArrayBuffer) {
          const n = h.read(dst, { at: offset });
          if (n !== dst.length) throw Object.assign(new Error(`${name}: short read at ${offset}`), { qwStatus: QW_STATUS.QW_E_RANGE });
          return;
        }
        let pos = 0;
        while (pos < dst.length) {
          const len = Math.min(dst.length - pos, 8 << 20);
          if (!bounce || bounce.length < len) bounce = new Uint8Array(Math.max(len, 1 << 20));
          const view = bounce.subarray(0, len);
          const n = h.read(view, { at: offset + pos });
          if (n !== len) throw Object.assign(new Error(`${name}: short read at ${offset + pos}`), { qwStatus: QW_STATUS.QW_E_RANGE });
          dst.set(view, pos);
          pos += len;
        }
      },
      close() {},
    };
  }
  async readRange(name, meta, offset, len) {
    const h = this.handles.get(name);
    const out = new Uint8Array(len);
    if (h) { (await h).read(out, { at: offset }); return out; }
    const fh = await (await this._dir()).getFileHandle(encodeURIComponent(name));
    const f = await fh.getFile();
    out.set(new Uint8Array(await f.slice(offset, offset + len).arrayBuffer()));
    return out;
  }
  async close() {
    for (const h of this.handles.values()) { try { (await h).close(); } catch { /* already closed */ } }
    this.handles.clear();
  }
}

export async function opfsList() {
  let root;
  try { root = await rootDir(false); } catch { return []; }
  const out = [];
  for await (const [key, dir] of root.entries()) {
    if (dir.kind !== 'directory') continue;
    const m = await readJson(dir, 'manifest.json');
    const files = [];
    let bytes = 0, url = m && m.url;
    for await (const [fname, fh] of dir.entries()) {
      if (!fname.endsWith('.meta.json')) continue;
      const meta = await readJson(dir, fname);
      if (!meta) continue;
      url = url || meta.url;
      files.push({ name: meta.name, size: meta.size, complete: meta.complete });
      bytes += meta.done.reduce((a, d, i) => a + (d ? Math.min(meta.chunkSize, meta.size - i * meta.chunkSize) : 0), 0);
    }
    if (url) out.push({ model: url, backend: 'opfs', complete: !!(m && m.complete), bytes, files });
  }
  return out;
}

export async function opfsDelete(url) {
  let root;
  try { root = await rootDir(false); } catch { return; }
  try { await root.removeEntry(fnv1a64(url), { recursive: true }); } catch (e) { if (e.name !== 'NotFoundError') throw e; }
}
