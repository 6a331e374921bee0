// derived-cache.js - keeps what the C core derives from a model at load (today: the int8 rows of the tied
// lm_head, ~290 MB for Qwen2.5-1.5B, about half of a warm load's time to make) in the model's cache, so the
// next load reads it instead.
//
// The core names each derived file after its layout version and source tensor ("qwasm-derived/lmhead-i8-v1-
// <hash>.bin"), reads it through the file source when present (checking size and header), and lists what it
// made or read in its stats ("derived": [{name, size, loaded, source, segments: [[address, length], ...]}]).
// Here: the sidecar of a saved file records the identity of the file it was derived from (size, ETag,
// Last-Modified, sha256 from that file's own sidecar); a derived file is offered to the core only while that
// identity still matches (a model file downloaded again with a new ETag makes its derived files stale: they are
// deleted and made again). Files the core no longer asks for (another layout version) are deleted after load.
// The manifest's `derived` lists the names kept.

const SAVE_CHUNK = 16 << 20;

function identity(meta) {
  return meta ? { size: meta.size, etag: meta.etag || '', lastModified: meta.lastModified || '', sha256: meta.sha256 || '' } : null;
}

function sameIdentity(a, b) {
  return !!a && !!b && a.size === b.size && a.etag === b.etag && a.lastModified === b.lastModified && a.sha256 === b.sha256;
}

/**
 * Opens the manifest's derived files that are complete and still match their source; deletes the others.
 * readers: Map name -> reader (the file source the core reads). Returns the names opened.
 */
export async function openDerived(store, manifest, readers) {
  const kept = [];
  for (const name of (manifest && manifest.derived) || []) {
    const meta = await store.getMeta(name);
    const from = meta && meta.derivedFrom;
    const src = from && await store.getMeta(from.name);
    if (meta && meta.complete && src && src.complete && sameIdentity(from, identity(src))) {
      try { readers.set(name, await store.openReader(name, meta)); kept.push(name); continue; } catch { /* fall through: delete */ }
    }
    try { await store.deleteFile(name); } catch { /* already gone */ }
  }
  return kept;
}

/**
 * Saves the derived files the core made at this load (entries from its stats with loaded = 0) and forgets the
 * ones it did not ask for. heap() returns the current Uint8Array over the wasm memory (it may grow); alive()
 * says whether the model (owner of the segments) still exists: checked before every chunk, a half-written file
 * is deleted. Returns {saved: [names], kept: [names], bytes}.
 */
export async function saveDerived(store, entries, heap, alive, opts = {}) {
  const chunkSize = opts.chunkSize || SAVE_CHUNK;
  const saved = [];
  let bytes = 0;
  for (const e of entries) {
    if (e.loaded || !e.source) continue;
    const src = await store.getMeta(e.source);
    if (!src || !src.complete) continue; // only what is derived from a cached file can be checked later
    const nChunks = Math.max(1, Math.ceil(e.size / chunkSize));
    const meta = {
      url: store.url, name: e.name, size: e.size, chunkSize, nChunks, done: new Array(nChunks).fill(0),
      complete: false, derivedFrom: { name: e.source, ...identity(src) }, time: Date.now(),
    };
    let seg = 0, segOff = 0, ok = true;
    // one private buffer for every chunk (stores take no views of a shared wasm heap, and every store copies
    // or writes the bytes before writeChunk resolves): no garbage the size of the file while the model runs
    const buf = new Uint8Array(Math.min(chunkSize, e.size));
    try {
      for (let i = 0; i < nChunks && ok; i++) {
        if (!alive()) { ok = false; break; }
        const len = Math.min(chunkSize, e.size - i * chunkSize);
        const chunk = buf.subarray(0, len);
        const h = heap();
        for (let fill = 0; fill < len;) {
          const [addr, slen] = e.segments[seg];
          const n = Math.min(len - fill, slen - segOff);
          chunk.set(h.subarray(addr + segOff, addr + segOff + n), fill);
          fill += n; segOff += n;
          if (segOff === slen) { seg++; segOff = 0; }
        }
        meta.done[i] = 1;
        if (i === nChunks - 1) meta.complete = true;
        await store.writeChunk(e.name, i, i * chunkSize, chunk, { ...meta, done: meta.done.slice() });
      }
    } catch (err) { // quota, I/O: no half file left to take space (the model's own files are untouched)
      try { await store.deleteFile(e.name); } catch { /* ignore */ }
      throw err;
    }
    if (!ok) { try { await store.deleteFile(e.name); } catch { /* ignore */ } continue; }
    saved.push(e.name);
    bytes += e.size;
  }
  if (!alive()) return { saved: [], kept: [], bytes: 0 }; // unloaded meanwhile: its store may be closed
  // the manifest lists what the core read or had saved now; anything else is stale
  const kept = [...entries.filter((e) => e.loaded).map((e) => e.name), ...saved];
  const manifest = (await store.getManifest()) || {};
  for (const name of manifest.derived || []) {
    if (!kept.includes(name)) { try { await store.deleteFile(name); } catch { /* ignore */ } }
  }
  await store.putManifest({ ...manifest, derived: kept });
  return { saved, kept, bytes };
}
