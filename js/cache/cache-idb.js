// cache-idb.js - the IndexedDB model cache.
//
// Database 'qwasm-cache' (version 1), three object stores:
//   models  key url                  the model manifest: {url, onnxFile, files:[names], absent:[names], complete, time}
//   files   key [url, name]          a file's sidecar: {url, name, size, etag, lastModified, chunkSize, nChunks,
//                                    done:[0|1...], complete, sha256, verified, time}
//   chunks  key [url, name, index]   one Blob per chunk (chunkSize bytes, the last one shorter)
// A file is used only when its sidecar says complete and every chunk is present (checked in openReader).
// Reads are synchronous in the worker: the chunk Blobs (handles, not bytes) are fetched once, then each
// read is FileReaderSync.readAsArrayBuffer(blob.slice(...)). List/delete/estimate also work on the page.
// WebKit's ephemeral sessions (Private Browsing, WebDriver automation; WebKitGTK 2.50) abort any transaction
// that stores a Blob, with a null error: probed once, chunks are then stored as ArrayBuffers, and a reader
// turns them back into Blobs one at a time (the worker never holds the whole file as bytes).

import { QW_STATUS } from '../worker/qwasm-abi.js';

const DB_NAME = 'qwasm-cache';
let dbPromise = null;

function req(r) {
  return new Promise((resolve, reject) => { r.onsuccess = () => resolve(r.result); r.onerror = () => reject(r.error); });
}

function openDb() {
  if (!dbPromise) {
    dbPromise = new Promise((resolve, reject) => {
      const r = indexedDB.open(DB_NAME, 1);
      r.onupgradeneeded = () => {
        const db = r.result;
        if (!db.objectStoreNames.contains('models')) db.createObjectStore('models', { keyPath: 'url' });
        if (!db.objectStoreNames.contains('files')) db.createObjectStore('files');
        if (!db.objectStoreNames.contains('chunks')) db.createObjectStore('chunks');
      };
      r.onsuccess = () => resolve(r.result);
      r.onerror = () => reject(r.error);
      r.onblocked = () => reject(new Error('IndexedDB upgrade blocked by another tab'));
    });
    dbPromise.catch(() => { dbPromise = null; });
  }
  return dbPromise;
}

function done(tx) {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error || new DOMException('transaction aborted', 'AbortError'));
  });
}

export function idbAvailable() { return typeof indexedDB !== 'undefined'; }

let blobsProbe = null;
/** Whether this IndexedDB stores Blobs (a one-byte Blob put and deleted in one transaction). */
function blobsStorable(db) {
  if (!blobsProbe) {
    const tx = db.transaction('chunks', 'readwrite');
    const key = ['qwasm-probe', '', 0];
    try {
      tx.objectStore('chunks').put(new Blob([new Uint8Array(1)]), key);
      tx.objectStore('chunks').delete(key);
    } catch { tx.abort(); }
    blobsProbe = done(tx).then(() => true, () => false);
  }
  return blobsProbe;
}

/** A stored chunk as a Blob (it may be an ArrayBuffer: see the header). */
const asBlob = (c) => (c instanceof Blob ? c : new Blob([c]));

/** A store for one model (base URL). */
export class IdbStore {
  constructor(url) { this.url = url; this.kind = 'indexeddb'; }
  async getManifest() { const db = await openDb(); return (await req(db.transaction('models').objectStore('models').get(this.url))) || null; }
  async putManifest(m) { const db = await openDb(); const tx = db.transaction('models', 'readwrite'); tx.objectStore('models').put({ ...m, url: this.url }); await done(tx); }
  async getMeta(name) { const db = await openDb(); return (await req(db.transaction('files').objectStore('files').get([this.url, name]))) || null; }
  async putMeta(name, meta) { const db = await openDb(); const tx = db.transaction('files', 'readwrite'); tx.objectStore('files').put(meta, [this.url, name]); await done(tx); }
  /** Stores chunk `index` (bytes: Uint8Array) and its sidecar in one transaction. */
  async writeChunk(name, index, offset, bytes, meta) {
    const db = await openDb();
    const value = (await blobsStorable(db)) ? new Blob([bytes])
      : bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
    const tx = db.transaction(['chunks', 'files'], 'readwrite');
    tx.objectStore('chunks').put(value, [this.url, name, index]);
    if (meta) tx.objectStore('files').put(meta, [this.url, name]);
    await done(tx);
  }
  async deleteFile(name) {
    const db = await openDb();
    const tx = db.transaction(['chunks', 'files'], 'readwrite');
    tx.objectStore('chunks').delete(IDBKeyRange.bound([this.url, name, 0], [this.url, name, Infinity]));
    tx.objectStore('files').delete([this.url, name]);
    await done(tx);
  }
  /** A synchronous reader (worker only): {size, read(offset, dst:Uint8Array)}. */
  async openReader(name, meta) {
    const db = await openDb();
    const range = IDBKeyRange.bound([this.url, name, 0], [this.url, name, Infinity]);
    const chunks = new Array(meta.nChunks);
    // a cursor: one chunk's value at a time (getAll would hold every ArrayBuffer at once)
    await new Promise((resolve, reject) => {
      const r = db.transaction('chunks').objectStore('chunks').openCursor(range);
      r.onsuccess = () => {
        const c = r.result;
        if (!c) { resolve(); return; }
        chunks[c.key[2]] = asBlob(c.value);
        c.continue();
      };
      r.onerror = () => reject(r.error);
    });
    for (let i = 0; i < meta.nChunks; i++) {
      if (!chunks[i]) throw Object.assign(new Error(`${name}: chunk ${i} missing from the IndexedDB cache`), { code: 'IO' });
    }
    const cs = meta.chunkSize, frs = new FileReaderSync();
    return {
      size: meta.size,
      read(offset, dst) {
        let pos = 0;
        while (pos < dst.length) {
          const off = offset + pos, ci = Math.floor(off / cs), inChunk = off - ci * cs;
          const blob = chunks[ci];
          if (!blob) throw Object.assign(new Error(`${name}: read past the end (offset ${off})`), { qwStatus: QW_STATUS.QW_E_RANGE });
          const n = Math.min(dst.length - pos, blob.size - inChunk);
          if (n <= 0) throw Object.assign(new Error(`${name}: read past the end (offset ${off})`), { qwStatus: QW_STATUS.QW_E_RANGE });
          dst.set(new Uint8Array(frs.readAsArrayBuffer(blob.slice(inChunk, inChunk + n))), pos);
          pos += n;
        }
      },
      close() {},
    };
  }
  /** Async range read (page or worker), used for hashing. */
  async readRange(name, meta, offset, len) {
    const db = await openDb();
    const out = new Uint8Array(len);
    let pos = 0;
    while (pos < len) {
      const off = offset + pos, ci = Math.floor(off / meta.chunkSize), inChunk = off - ci * meta.chunkSize;
      const blob = asBlob(await req(db.transaction('chunks').objectStore('chunks').get([this.url, name, ci])));
      const n = Math.min(len - pos, blob.size - inChunk);
      out.set(new Uint8Array(await blob.slice(inChunk, inChunk + n).arrayBuffer()), pos);
      pos += n;
    }
    return out;
  }
  async close() {}
}

export async function idbList() {
  const db = await openDb();
  const models = await req(db.transaction('models').objectStore('models').getAll());
  const metas = await req(db.transaction('files').objectStore('files').getAll());
  return models.map((m) => {
    const files = metas.filter((f) => f.url === m.url);
    const bytes = files.reduce((s, f) => s + f.done.reduce((a, d, i) => a + (d ? Math.min(f.chunkSize, f.size - i * f.chunkSize) : 0), 0), 0);
    return { model: m.url, backend: 'indexeddb', complete: !!m.complete, bytes, files: files.map((f) => ({ name: f.name, size: f.size, complete: f.complete })) };
  }).concat(
    // partial downloads that never got a manifest
    [...new Set(metas.map((f) => f.url))].filter((u) => !models.some((m) => m.url === u)).map((u) => {
      const files = metas.filter((f) => f.url === u);
      const bytes = files.reduce((s, f) => s + f.done.reduce((a, d, i) => a + (d ? Math.min(f.chunkSize, f.size - i * f.chunkSize) : 0), 0), 0);
      return { model: u, backend: 'indexeddb', complete: false, bytes, files: files.map((f) => ({ name: f.name, size: f.size, complete: f.complete })) };
    }));
}

export async function idbDelete(url) {
  const db = await openDb();
  const tx = db.transaction(['models', 'files', 'chunks'], 'readwrite');
  tx.objectStore('models').delete(url);
  tx.objectStore('files').delete(IDBKeyRange.bound([url, ''], [url, '\uffff']));
  tx.objectStore('chunks').delete(IDBKeyRange.bound([url, '', 0], [url, '\uffff', Infinity]));
  await done(tx);
}
