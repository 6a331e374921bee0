// prompt-cache.js - the KV state of a prompt prefix (a long system prompt and instructions, the same every time)
// kept in the model's cache, so the next load or conversation skips its prefill (rt.generate({cachePrefix})).
//
// The core makes and checks the blob (qw_model_kv_export / import: layout version, a hash of the model's files
// and shapes, the row type, the ids, a checksum). Here: the file is named after the layout version and a hash of
// the prefix's token ids ("qwasm-derived/kv-v1-<hash>-<n>.bin"), and its sidecar records the identity (size,
// ETag, Last-Modified, sha256) of every model file; an entry whose model files changed since is stale and
// deleted, one the core refuses (damaged, another build's layout) is deleted and made again by the caller.
// Like the derived files (js/cache/derived-cache.js) it lives in the model's own cache folder: deleting the model
// deletes it. Not kept in IndexedDB (reads too slow) nor for local folders (no cache to keep it in).

import { fnv1a64 } from './cache-opfs.js';

const SAVE_CHUNK = 16 << 20;

/** The cache file name of a prefix of ids under the core's layout version. */
export function prefixName(layout, ids) {
  return `qwasm-derived/kv-v${layout}-${fnv1a64(Array.from(ids).join(','))}-${ids.length}.bin`;
}

function identity(meta) {
  return { size: meta.size, etag: meta.etag || '', lastModified: meta.lastModified || '', sha256: meta.sha256 || '' };
}

/** The model files' identities now, or null when one of them is not a complete cached file. */
async function modelIdentity(store, files) {
  const out = [];
  for (const name of files) {
    const m = await store.getMeta(name);
    if (!m || !m.complete) return null;
    out.push({ name, ...identity(m) });
  }
  return out;
}

/**
 * The saved blob of `name` when its model files are unchanged (a Uint8Array), else null; a stale or unreadable
 * entry is deleted.
 */
export async function loadPrefix(store, name, files) {
  const meta = await store.getMeta(name);
  if (!meta) return null;
  const now = await modelIdentity(store, files);
  const ok = meta.complete && now && JSON.stringify(meta.kvFrom) === JSON.stringify(now);
  if (ok) {
    try {
      const r = await store.openReader(name, meta);
      const out = new Uint8Array(meta.size);
      r.read(0, out);
      if (r.close) r.close();
      return out;
    } catch { /* fall through: delete */ }
  }
  await dropPrefix(store, name);
  return null;
}

export async function dropPrefix(store, name) {
  try { await store.deleteFile(name); } catch { /* already gone */ }
}

/** Saves blob (a private Uint8Array) as `name`; a failed save (quota, I/O) leaves nothing. Returns its size. */
export async function savePrefix(store, name, blob, files) {
  const kvFrom = await modelIdentity(store, files);
  if (!kvFrom) return 0; // model files not all in this cache: nothing to check the entry against later
  const nChunks = Math.max(1, Math.ceil(blob.length / SAVE_CHUNK));
  const meta = { url: store.url, name, size: blob.length, chunkSize: SAVE_CHUNK, nChunks, done: new Array(nChunks).fill(0),
    complete: false, kvFrom, time: Date.now() };
  try {
    for (let i = 0; i < nChunks; i++) {
      meta.done[i] = 1;
      if (i === nChunks - 1) meta.complete = true;
      await store.writeChunk(name, i, i * SAVE_CHUNK, blob.subarray(i * SAVE_CHUNK, Math.min(blob.length, (i + 1) * SAVE_CHUNK)),
        { ...meta, done: meta.done.slice() });
    }
  } catch (e) {
    await dropPrefix(store, name);
    throw e;
  }
  return blob.length;
}
