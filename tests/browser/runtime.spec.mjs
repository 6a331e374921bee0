// Browser tests of the runtime's caches and downloads in Chromium (plain node script driving playwright-core).
//   node tests/browser/runtime.spec.mjs        -> prints the IndexedDB/OPFS figures and `N passed, N failed`
// 1. IndexedDB vs OPFS: write and synchronous-read throughput in a dedicated worker (the figures behind cache:'auto').
// 2. A download interrupted mid-way (aborted, then the page closed, like a reload) resumes from the cache without fetching finished chunks,
//    for both backends, and the cached bytes hash to the file's sha256.
// 3. With build/wasm + build/models: Qwasm.load from the URL in the page (worker, mt when crossOriginIsolated),
//    generate, and a second load makes zero requests for model files.
import { chromium } from 'playwright-core';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import crypto from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { startServer } from '../../tools/serve/serve.mjs';
import { ROOT, modelDir, wasmReady } from '../node/helpers.mjs';

const results = [];
async function check(name, fn) {
  const t0 = Date.now();
  try { await fn(); results.push([name, true]); console.log(`ok - ${name} (${Date.now() - t0} ms)`); }
  catch (e) { results.push([name, false]); console.log(`not ok - ${name}\n  ${String(e && e.stack || e).split('\n').slice(0, 6).join('\n  ')}`); }
}
const assert = (c, m) => { if (!c) throw new Error(m || 'assertion failed'); };

const srv = await startServer({ port: 0, root: ROOT, isolation: true, quiet: true, testHooks: true });
const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'qwasm-chromium-'));
const ctx = await chromium.launchPersistentContext(userDataDir, {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium', headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
});
const start = srv.url + 'js/worker/protocol.js'; // any same-origin document served with COOP/COEP

async function newPage() {
  const page = await ctx.newPage();
  page.on('pageerror', (e) => console.log('  [pageerror]', e.message));
  await page.goto(start);
  return page;
}

/** Runs `body` (an async function source, given `origin` and `arg`) in a module worker of the page. */
async function inWorker(page, body, arg) {
  return page.evaluate(async ({ body, arg }) => {
    const src = `const origin = ${JSON.stringify(location.origin)};\nconst fn = ${body};\n` +
      'self.onmessage = async (e) => { try { self.postMessage({ ok: true, value: await fn(e.data) }); } catch (err) { self.postMessage({ ok: false, error: { code: err.code, file: err.file, message: String(err.message || err) } }); } };';
    const w = new Worker(URL.createObjectURL(new Blob([src], { type: 'text/javascript' })), { type: 'module' });
    const r = await new Promise((resolve) => { w.onmessage = (e) => resolve(e.data); w.onerror = (e) => resolve({ ok: false, error: { message: e.message } }); w.postMessage(arg); });
    w.terminate();
    if (!r.ok) throw new Error(JSON.stringify(r.error));
    return r.value;
  }, { body: body.toString(), arg });
}

// ---- 1. IndexedDB vs OPFS ---------------------------------------------------------------------------------
const bench = async ({ mb, chunkMB }) => {
  const { openStore } = await import(origin + '/js/cache/cache.js');
  const out = {};
  for (const kind of ['indexeddb', 'opfs']) {
    const url = `https://bench.invalid/${kind}/`;
    const store = await openStore(kind, url);
    const name = 'bench.bin', cs = chunkMB << 20, size = mb << 20, n = size / cs;
    await store.deleteFile(name);
    const chunk = new Uint8Array(cs);
    for (let i = 0; i < cs; i += 4096) chunk[i] = i & 255;
    const meta = { url, name, size, chunkSize: cs, nChunks: n, done: new Array(n).fill(0), complete: false };
    let t = performance.now();
    for (let i = 0; i < n; i++) { meta.done[i] = 1; await store.writeChunk(name, i, i * cs, chunk, { ...meta }); }
    const writeMs = performance.now() - t;
    t = performance.now();
    const reader = await store.openReader(name, meta);
    const openMs = performance.now() - t;
    const seq = (dst) => { const t0 = performance.now(); for (let off = 0; off < size; off += dst.length) reader.read(off, dst); return performance.now() - t0; };
    const plain = new Uint8Array(1 << 20);
    const shared = new Uint8Array(new SharedArrayBuffer(1 << 20));
    seq(plain); // warm
    const seqMs = seq(plain), sabMs = seq(shared);
    const small = new Uint8Array(64 << 10);
    let t1 = performance.now(); let x = 12345;
    for (let i = 0; i < 1000; i++) { x = (x * 1103515245 + 12345) >>> 0; reader.read((x % (size - small.length)) & ~4095, small); }
    const randMs = performance.now() - t1;
    await store.close();
    await store.deleteFile(name);
    const mbps = (bytes, ms) => +(bytes / 1048576 / (ms / 1000)).toFixed(0);
    out[kind] = { writeMBps: mbps(size, writeMs), openMs: +openMs.toFixed(1), seqRead1MiBMBps: mbps(size, seqMs), seqReadIntoSABMBps: mbps(size, sabMs), random64KiBReadsPerS: +(1000 / (randMs / 1000)).toFixed(0) };
  }
  out.auto = (await import(origin + '/js/cache/cache.js')).resolveCacheKind('auto');
  return out;
};

await check('IndexedDB vs OPFS synchronous reads in a worker', async () => {
  const page = await newPage();
  const r = await inWorker(page, bench, { mb: 256, chunkMB: 32 });
  await page.close();
  console.log('  figures (256 MiB in 32 MiB chunks):', JSON.stringify(r));
  assert(r.indexeddb.seqRead1MiBMBps > 0 && r.opfs.seqRead1MiBMBps > 0);
  assert(r.auto === 'opfs', `auto picked ${r.auto}`);
});

// ---- 2. resume after a page close --------------------------------------------------------------------------
const MODEL = 'small-q4f16-op18-ext';
const FILE = 'onnx/model_q4f16.onnx_data';
const mdir = modelDir(MODEL);
const download = async ({ base, kind, stopAfterChunks, throttle }) => {
  const { openStore } = await import(origin + '/js/cache/cache.js');
  const { downloadFile } = await import(origin + '/js/net/fetch.js');
  const { Sha256 } = await import(origin + '/js/net/sha256.js');
  const store = await openStore(kind, base);
  const name = 'onnx/model_q4f16.onnx_data';
  if (stopAfterChunks) {
    // a slow download; the page is closed once enough chunks are stored (see the caller)
    const ac = new AbortController();
    let stored = 0;
    const p = downloadFile({ baseUrl: base, name, store, chunkSize: 1 << 20, concurrency: 2, query: `?__throttle=${throttle}`, signal: ac.signal,
      onProgress: async () => { const m = await store.getMeta(name); stored = m ? m.done.filter(Boolean).length : 0; if (stored >= stopAfterChunks) ac.abort(); } });
    try { await p; } catch (e) { if (e.code !== 'ABORTED') throw e; }
    await store.close();
    return { stored: (await store.getMeta(name)).done.map((d, i) => (d ? i : -1)).filter((i) => i >= 0) };
  }
  const meta = await downloadFile({ baseUrl: base, name, store, chunkSize: 1 << 20, concurrency: 3 });
  const r = await store.openReader(name, meta);
  const h = new Sha256(); const buf = new Uint8Array(1 << 20);
  for (let off = 0; off < meta.size; off += buf.length) { const v = buf.subarray(0, Math.min(buf.length, meta.size - off)); r.read(off, v); h.update(v); }
  await store.close();
  return { complete: meta.complete, size: meta.size, sha: h.hex() };
};

for (const kind of ['indexeddb', 'opfs']) {
  await check(`${kind}: a download interrupted mid-way (aborted, page closed) resumes in a new page without refetching finished chunks`, async () => {
    if (!mdir) { console.log(`  skipped: build/models/${MODEL} missing`); return; }
    const base = `${srv.url}build/models/${MODEL}/`;
    const page1 = await newPage();
    const r1 = await inWorker(page1, download, { base, kind, stopAfterChunks: 3, throttle: 100000 });
    await page1.close();
    assert(r1.stored.length >= 3, `stored ${r1.stored.length}`);
    const before = srv.requests.length;
    const page2 = await newPage();
    const r2 = await inWorker(page2, download, { base, kind });
    await page2.close();
    const ranges = srv.requests.slice(before).filter((q) => q.url.includes(FILE)).map((q) => Math.floor(+/bytes=(\d+)/.exec(q.range)[1] / (1 << 20)));
    for (const i of ranges) assert(!r1.stored.includes(i), `chunk ${i} fetched again`);
    const size = fs.statSync(path.join(mdir, FILE)).size;
    assert(ranges.length === Math.ceil(size / (1 << 20)) - r1.stored.length, `requests ${ranges.length}`);
    assert(r2.complete && r2.size === size);
    assert(r2.sha === crypto.createHash('sha256').update(fs.readFileSync(path.join(mdir, FILE))).digest('hex'), 'sha256 of the cached bytes');
  });
}

await check('opfs: a stalled response (headers and 1 MiB, then silence on an open connection) is dropped and retried; the file completes', async () => {
  if (!mdir) { console.log(`  skipped: build/models/${MODEL} missing`); return; }
  const base = `${srv.url}build/models/${MODEL}/`;
  const size = fs.statSync(path.join(mdir, FILE)).size;
  Object.assign(srv.hooks, { stall: 1 << 20, stallTimes: 2 });
  const before = srv.requests.length;
  const page = await newPage();
  try {
    const r = await inWorker(page, async ({ base }) => {
      const { openStore } = await import(origin + '/js/cache/cache.js');
      const { downloadFile } = await import(origin + '/js/net/fetch.js');
      const store = await openStore('opfs', base);
      await store.deleteFile('onnx/model_q4f16.onnx_data'); // an earlier check cached it
      const stats = { bytes: 0, retries: 0, stalls: 0 };
      const t0 = Date.now();
      const meta = await downloadFile({ baseUrl: base, name: 'onnx/model_q4f16.onnx_data', store, chunkSize: 4 << 20, concurrency: 2, stallTimeoutMs: 1500, stats });
      await store.close();
      return { complete: meta.complete, size: meta.size, stats, ms: Date.now() - t0 };
    }, { base });
    assert(r.complete && r.size === size, `complete (${JSON.stringify(r)})`);
    assert(r.stats.stalls === 2 && r.stats.retries === 2, `two stalls seen and retried (${JSON.stringify(r.stats)})`);
    const stalled = srv.requests.slice(before).filter((q) => q.stalled);
    assert(stalled.length === 2 && srv.hooks.stallTimes === 0, `the server stalled two responses (${stalled.length})`);
  } finally { Object.assign(srv.hooks, { stall: 0, stallTimes: Infinity }); await page.close(); }
});

// ---- 3. the whole runtime in the page ---------------------------------------------------------------------------
const TINY = 'tiny-q4f16-op18-ext';
await check('Qwasm.load from a URL in Chromium; the second load makes zero requests', async () => {
  if (!wasmReady() || !modelDir(TINY)) { console.log('  skipped: needs build/wasm with the model exports and build/models/' + TINY); return; }
  const run = async (cache) => {
    const page = await newPage();
    const r = await page.evaluate(async ({ model, cache }) => {
      const { Qwasm } = await import('/js/page/qwasm.js');
      const phases = [];
      const rt = await Qwasm.load({ model, cache, onProgress: (p) => phases.push(p.phase) });
      const ids = [];
      for await (const ev of rt.generate({ promptIds: [1, 5, 42, 100, 7, 300], maxTokens: 8, greedy: true, ignoreEos: true })) if (ev.kind === 'token') ids.push(ev.id);
      const flavour = rt.flavour;
      await rt.dispose();
      return { ids, flavour, phases: [...new Set(phases)], isolated: crossOriginIsolated };
    }, { model: `/build/models/${TINY}/`, cache });
    await page.close();
    return r;
  };
  for (const cache of ['opfs', 'indexeddb']) {
    const a = await run(cache);
    const before = srv.requests.filter((q) => q.url.includes('/build/models/')).length;
    const b = await run(cache);
    const after = srv.requests.filter((q) => q.url.includes('/build/models/')).length;
    console.log(`  ${cache}: flavour ${a.flavour}, ids ${a.ids.join(',')}, phases ${a.phases.join(',')}`);
    assert(a.ids.length === 8 && a.ids.join() === b.ids.join(), 'same tokens');
    const cli = spawnSync(path.join(ROOT, 'build/native/qwasm'), ['run', modelDir(TINY), '--prompt-ids', '1,5,42,100,7,300', '--greedy', '--json', '--max-tokens', '8', '--ignore-eos'], { encoding: 'utf8' });
    if (cli.status === 0) assert(a.ids.join() === JSON.parse(cli.stdout.trim().split('\n').pop()).ids.join(), 'tokens == native CLI');
    assert(after === before, `${after - before} model requests on the second load`);
  }
});

await check('a picked folder (File list) and a FileSystemDirectoryHandle load without any model request', async () => {
  if (!wasmReady() || !modelDir(TINY)) { console.log('  skipped: needs build/wasm with the model exports and build/models/' + TINY); return; }
  const page = await newPage();
  await page.evaluate(() => { const i = document.createElement('input'); i.type = 'file'; i.id = 'pick'; i.webkitdirectory = true; document.body.appendChild(i); });
  await page.setInputFiles('#pick', modelDir(TINY));
  const gen = async (model) => {
    const { Qwasm } = await import('/js/page/qwasm.js');
    const rt = await Qwasm.load({ model, cache: 'none' });
    const ids = [];
    for await (const ev of rt.generate({ promptIds: [1, 5, 42, 100, 7, 300], maxTokens: 8, greedy: true, ignoreEos: true })) if (ev.kind === 'token') ids.push(ev.id);
    await rt.dispose();
    return ids;
  };
  const before = srv.requests.filter((q) => q.url.includes('/build/models/')).length;
  const a = await page.evaluate(`(${gen})(document.querySelector('#pick').files)`);
  assert(srv.requests.filter((q) => q.url.includes('/build/models/')).length === before, 'no model request for picked files');
  // copy the folder into an OPFS directory (outside the cache) and load through its handle
  const names = ['config.json', 'generation_config.json', 'tokenizer.json', 'tokenizer_config.json', 'onnx/model_q4f16.onnx', 'onnx/model_q4f16.onnx_data'];
  await page.evaluate(async ({ base, names }) => {
    const root = await navigator.storage.getDirectory();
    try { await root.removeEntry('picked-model', { recursive: true }); } catch { /* absent */ }
    const d = await root.getDirectoryHandle('picked-model', { create: true });
    for (const n of names) {
      const parts = n.split('/');
      let dir = d;
      for (const p of parts.slice(0, -1)) dir = await dir.getDirectoryHandle(p, { create: true });
      const w = await (await dir.getFileHandle(parts[parts.length - 1], { create: true })).createWritable();
      await w.write(await (await fetch(base + n)).blob());
      await w.close();
    }
  }, { base: `/build/models/${TINY}/`, names });
  const mid = srv.requests.filter((q) => q.url.includes('/build/models/')).length;
  const b = await page.evaluate(`(async () => (${gen})(await (await navigator.storage.getDirectory()).getDirectoryHandle('picked-model')))()`);
  assert(srv.requests.filter((q) => q.url.includes('/build/models/')).length === mid, 'no model request for a directory handle');
  await page.close();
  console.log(`  files: ${a.join(',')}  handle: ${b.join(',')}`);
  assert(a.length === 8 && a.join() === b.join(), 'same tokens');
});

await check('not cross-origin isolated: the single-thread build, same tokens', async () => {
  if (!wasmReady() || !modelDir(TINY)) { console.log('  skipped: needs build/wasm and build/models/' + TINY); return; }
  const plain = await startServer({ port: 0, root: ROOT, isolation: false, quiet: true });
  try {
    const page = await ctx.newPage();
    await page.goto(plain.url + 'js/worker/protocol.js');
    const r = await page.evaluate(async () => {
      const { Qwasm } = await import('/js/page/qwasm.js');
      const rt = await Qwasm.load({ model: '/build/models/tiny-q4f16-op18-ext/', cache: 'none' });
      const ids = [];
      for await (const ev of rt.generate({ promptIds: [1, 5, 42, 100, 7, 300], maxTokens: 8, greedy: true, ignoreEos: true })) if (ev.kind === 'token') ids.push(ev.id);
      const flavour = rt.flavour;
      await rt.dispose();
      return { ids, flavour, isolated: crossOriginIsolated };
    });
    await page.close();
    assert(!r.isolated && r.flavour === 'st', JSON.stringify(r));
    const cli = spawnSync(path.join(ROOT, 'build/native/qwasm'), ['run', modelDir(TINY), '--prompt-ids', '1,5,42,100,7,300', '--greedy', '--json', '--max-tokens', '8', '--ignore-eos'], { encoding: 'utf8' });
    if (cli.status === 0) assert(r.ids.join() === JSON.parse(cli.stdout.trim().split('\n').pop()).ids.join(), `st ${r.ids.join()} vs CLI`);
    assert(r.ids.length === 8);
  } finally { await plain.close(); }
});

// Chromium's CDP quota override limits writes but is not reflected in navigator.storage.estimate(), so this
// exercises the write-time path (QuotaExceededError while storing a chunk -> QUOTA naming the file); the up-front
// check (estimate() before any large download) is the same error code from cacheEstimate().
await check('QUOTA: a full storage fails the load with code QUOTA naming the file', async () => {
  if (!mdir) { console.log(`  skipped: build/models/${MODEL} missing`); return; }
  const page = await newPage();
  const cdp = await ctx.newCDPSession(page);
  const origin = new URL(srv.url).origin;
  const usage = await page.evaluate(async () => (await navigator.storage.estimate()).usage);
  await cdp.send('Storage.overrideQuotaForOrigin', { origin, quotaSize: usage + (2 << 20) });
  const before = srv.requests.filter((q) => q.url.includes(FILE)).length;
  const e = await page.evaluate(async () => {
    const { Qwasm } = await import('/js/page/qwasm.js');
    await Qwasm.cache.delete('/build/models/small-q4f16-op18-ext/');
    try { await Qwasm.load({ model: '/build/models/small-q4f16-op18-ext/', cache: 'opfs' }); return null; } catch (err) {
      return { code: err.code, file: err.file, message: err.message, need: err.bytesNeeded, avail: err.bytesAvailable };
    }
  });
  await cdp.send('Storage.overrideQuotaForOrigin', { origin });
  await page.close();
  console.log('  ' + JSON.stringify(e));
  assert(e && e.code === 'QUOTA' && e.file && /storage is full/.test(e.message), JSON.stringify(e));
  void before;
});

// The same write-time QUOTA with the default cache: the external data does not fit, so the load goes on as cache
// 'none' with embeddingOnDemand (rt.stats().source.fallback) instead of failing; the small files stay cached and a
// second load reads them from the cache; an explicit cache keeps failing with QUOTA. A fresh origin, so its
// storage holds nothing but this check's files and the quota can be set to them plus a little.
await check("QUOTA with the default cache: the load falls back to cache 'none' (stats().source.fallback), same ids; an explicit cache keeps QUOTA", async () => {
  if (!wasmReady() || !mdir) { console.log(`  skipped: needs build/wasm and build/models/${MODEL}`); return; }
  const model = `/build/models/${MODEL}/`;
  const gen = async ({ model, cache }) => {
    const { Qwasm } = await import('/js/page/qwasm.js');
    try {
      const rt = await Qwasm.load({ model, cache });
      const ids = [];
      for await (const ev of rt.generate({ promptIds: [1, 5, 42, 100, 7, 300], maxTokens: 8, greedy: true, ignoreEos: true })) if (ev.kind === 'token') ids.push(ev.id);
      const source = (await rt.stats()).source;
      await rt.dispose();
      return { ids, source };
    } catch (err) { return { error: { code: err.code, file: err.file, message: err.message } }; }
  };
  const refPage = await newPage(); // a normal load (OPFS cache) on the main origin
  const ref = await refPage.evaluate(gen, { model });
  await refPage.close();
  assert(ref.ids && ref.ids.length === 8 && !ref.source.fallback, `reference load: ${JSON.stringify(ref)}`);
  const fresh = await startServer({ port: 0, root: ROOT, isolation: true, quiet: true });
  try {
    const page = await ctx.newPage();
    page.on('pageerror', (e) => console.log('  [pageerror]', e.message));
    await page.goto(fresh.url + 'js/worker/protocol.js');
    const cdp = await ctx.newCDPSession(page);
    const small = ['config.json', 'generation_config.json', 'tokenizer.json', 'tokenizer_config.json', 'onnx/model_q4f16.onnx']
      .reduce((a, n) => a + fs.statSync(path.join(mdir, n)).size, 0);
    // room for the small files but not for the 9.7 MB external data beside them: Chromium reserves OPFS space
    // ahead of a write (measured: the 11 MB tokenizer fails with 8 MiB to spare, the external data with 24 MiB
    // to spare; 12-24 MiB give this split)
    const usage = await page.evaluate(async () => (await navigator.storage.estimate()).usage);
    await cdp.send('Storage.overrideQuotaForOrigin', { origin: fresh.origin, quotaSize: usage + small + (16 << 20) });
    try {
      const a = await page.evaluate(gen, { model });
      const mid = fresh.requests.length;
      const b = await page.evaluate(gen, { model });
      const again = fresh.requests.slice(mid).map((q) => q.url).filter((u) => /tokenizer\.json|\.onnx$/.test(u));
      const c = await page.evaluate(gen, { model, cache: 'opfs' });
      console.log(`  ids ${a.ids && a.ids.join(',')}; fallback ${JSON.stringify(a.source && a.source.fallback)}; explicit: ${JSON.stringify(c.error)}`);
      for (const [r, which] of [[a, 'first'], [b, 'second']]) {
        assert(r.ids, `${which} load failed: ${JSON.stringify(r.error)}`);
        assert(r.ids.join() === ref.ids.join(), `${which} load: ids ${r.ids.join()} vs ${ref.ids.join()}`);
        const f = r.source.fallback;
        assert(f && f.from === 'opfs' && f.to === 'none' && /storage is full|not enough storage/.test(f.reason), `${which} load: fallback ${JSON.stringify(f)}`);
        assert(r.source.notes && /no room/.test(r.source.notes[0]) && r.source.notes[0].includes(f.reason), `${which} load: notes ${JSON.stringify(r.source.notes)}`);
      }
      assert(again.length === 0, `the second load fetched the cached small files again: ${again.join(', ')}`);
      assert(c.error && c.error.code === 'QUOTA' && c.error.file === FILE, `explicit cache 'opfs': ${JSON.stringify(c)}`);
    } finally {
      await cdp.send('Storage.overrideQuotaForOrigin', { origin: fresh.origin });
      await page.close();
    }
  } finally { await fresh.close(); }
});

await ctx.close();
await srv.close();
const passed = results.filter((r) => r[1]).length;
console.log(`${passed} passed, ${results.length - passed} failed`);
process.exit(results.length - passed ? 1 : 0);
