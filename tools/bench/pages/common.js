// Shared helpers for the engine pages of tools/bench/bench_browser.mjs (no third-party code).
// Each engine page sets window.benchEngine = { name, load(opts), generate(opts), unload() } and then
// calls markReady(); the harness drives it with page.evaluate:
//   load({model, threads, ...})              -> { loadMs, ... }
//   generate({promptIds, maxTokens})         -> { ttftMs, prefillTokS, decodeTokS, tokens, ... }
// Timing convention (identical for every engine): t0 = just before the prompt is submitted;
// first = when the first generated token id is known (TTFT = first - t0, prefill tok/s = promptLen/TTFT);
// last = when the maxTokens-th token is known (decode tok/s = (maxTokens - 1) / (last - first)).

export const now = () => performance.now();

export function argmaxLast(data, vocab) {
  const off = data.length - vocab;
  let best = 0, bv = -Infinity;
  for (let i = 0; i < vocab; i++) {
    const v = data[off + i];
    if (v > bv) { bv = v; best = i; }
  }
  return best;
}

export function summarize(promptLen, t0, times, tokens, extra = {}) {
  const first = times[0], last = times[times.length - 1];
  const ttftMs = first - t0;
  return {
    promptLen, nGenerated: tokens.length, tokens,
    ttftMs, prefillTokS: promptLen / (ttftMs / 1000),
    decodeMs: last - first,
    decodeTokS: tokens.length > 1 ? (tokens.length - 1) / ((last - first) / 1000) : null,
    totalMs: last - t0, ...extra,
  };
}

// Clears everything this origin may have cached: Cache Storage, OPFS, IndexedDB.
export async function clearOriginStorage() {
  const done = [];
  try {
    for (const k of await caches.keys()) { await caches.delete(k); done.push('cache:' + k); }
  } catch (e) { done.push('caches-error:' + e.message); }
  try {
    const root = await navigator.storage.getDirectory();
    for await (const [name] of root.entries()) {
      await root.removeEntry(name, { recursive: true }); done.push('opfs:' + name);
    }
  } catch (e) { done.push('opfs-error:' + e.message); }
  try {
    if (indexedDB.databases) {
      for (const db of await indexedDB.databases()) {
        await new Promise((res) => { const r = indexedDB.deleteDatabase(db.name); r.onsuccess = r.onerror = r.onblocked = res; });
        done.push('idb:' + db.name);
      }
    }
  } catch (e) { done.push('idb-error:' + e.message); }
  return done;
}

export async function storageEstimate() {
  try { const e = await navigator.storage.estimate(); return { usage: e.usage, quota: e.quota }; } catch { return null; }
}

// fetch through a Cache Storage bucket (what Transformers.js does for its own files): the first load
// downloads and stores, the second reads the stored copy.
export async function cachedFetchBuffer(url, bucket, info) {
  let cache = null;
  try { cache = await caches.open(bucket); } catch { cache = null; }
  let r = cache ? await cache.match(url) : null;
  if (r) { info.fromCache = (info.fromCache || 0) + 1; return new Uint8Array(await r.arrayBuffer()); }
  r = await fetch(url);
  if (!r.ok) throw new Error(`HTTP ${r.status} for ${url}`);
  const buf = new Uint8Array(await r.arrayBuffer());
  info.downloaded = (info.downloaded || 0) + buf.byteLength;
  if (cache) {
    try {
      await cache.put(url, new Response(buf, { headers: { 'content-type': 'application/octet-stream', 'content-length': String(buf.byteLength) } }));
    } catch (e) { info.cachePutError = String(e && e.message || e); }
  }
  return buf;
}

export function markReady(engine) {
  window.benchEngine = engine;
  window.benchReady = true;
  const el = document.getElementById('status');
  if (el) el.textContent = engine.name + ' page ready';
}

export function fail(e) {
  window.benchLoadError = String(e && e.stack || e);
  const el = document.getElementById('status');
  if (el) el.textContent = 'error: ' + window.benchLoadError;
}
