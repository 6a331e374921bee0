// Downloads into the cache (js/net/fetch.js + the Node cache store): chunks, resume after a dropped connection,
// HTTP errors, truncation, no-Range servers, sha256. Needs no wasm build; needs build/models/ (skips otherwise).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import crypto from 'node:crypto';
import { downloadFile } from '../../js/net/fetch.js';
import { NodeStore } from '../../js/cache/cache.js';
import { startTestServer, MODELS, modelDir, cachedBytes } from './helpers.mjs';

const MODEL = 'small-q4f16-op18-ext';
const FILE = 'onnx/model_q4f16.onnx_data';
const dir = modelDir(MODEL);
const skip = dir ? false : `build/models/${MODEL} is missing (run tools/gen/gen_test_models.sh)`;
const CHUNK = 512 << 10;

function tmp() { return fs.mkdtempSync(path.join(os.tmpdir(), 'qwasm-fetch-')); }
const base = (srv) => `${srv.url}${MODEL}/`;
const sha = (buf) => crypto.createHash('sha256').update(buf).digest('hex');


test('downloads in chunks, then a second call makes no request', { skip }, async () => {
  const srv = await startTestServer(MODELS);
  const store = new NodeStore(base(srv), tmp());
  try {
    const events = [];
    const meta = await downloadFile({ baseUrl: base(srv), name: FILE, store, chunkSize: CHUNK, concurrency: 3, onProgress: (p) => events.push(p) });
    const orig = fs.readFileSync(path.join(dir, FILE));
    assert.equal(meta.size, orig.length);
    assert.equal(meta.complete, true);
    assert.equal(meta.nChunks, Math.ceil(orig.length / CHUNK));
    assert.ok(srv.requests.length >= meta.nChunks && srv.requests.every((r) => r.range), 'one ranged request per chunk');
    assert.ok((await cachedBytes(store, FILE)).equals(orig), 'cached bytes equal the file');
    assert.ok(events.some((e) => e.phase === 'download' && e.bytesDone === orig.length && e.bytesTotal === orig.length));
    const n = srv.requests.length;
    const again = await downloadFile({ baseUrl: base(srv), name: FILE, store, chunkSize: CHUNK });
    assert.equal(again.complete, true);
    assert.equal(srv.requests.length, n, 'no request for a complete cached file');
  } finally { await srv.close(); }
});

test('a dropped connection keeps the finished chunks; the resume fetches only the rest', { skip }, async () => {
  const size = fs.statSync(path.join(dir, FILE)).size;
  const cut = Math.floor(size / 2);
  let dropping = true;
  const srv = await startTestServer(MODELS, { drop: (req, start) => (dropping && start >= cut ? 1000 : null) });
  const store = new NodeStore(base(srv), tmp());
  try {
    await assert.rejects(
      downloadFile({ baseUrl: base(srv), name: FILE, store, chunkSize: CHUNK, concurrency: 2, retries: 1 }),
      (e) => e.code === 'NETWORK' && e.file === FILE && /connection/.test(e.message));
    const meta1 = await store.getMeta(FILE);
    const done1 = meta1.done.map((d, i) => (d ? i : -1)).filter((i) => i >= 0);
    assert.ok(done1.length > 0 && done1.length < meta1.nChunks, `some chunks kept (${done1.length}/${meta1.nChunks})`);
    assert.equal(meta1.complete, false);
    dropping = false;
    const before = srv.requests.length;
    const meta2 = await downloadFile({ baseUrl: base(srv), name: FILE, store, chunkSize: CHUNK, concurrency: 2 });
    const resumed = srv.requests.slice(before).map((r) => Math.floor(+/bytes=(\d+)/.exec(r.range)[1] / CHUNK));
    assert.equal(resumed.length, meta1.nChunks - done1.length, 'one request per missing chunk');
    for (const i of resumed) assert.ok(!done1.includes(i), `chunk ${i} was not fetched again`);
    assert.equal(meta2.complete, true);
    assert.ok((await cachedBytes(store, FILE)).equals(fs.readFileSync(path.join(dir, FILE))));
  } finally { await srv.close(); }
});

test('a stalled connection (open, no more bytes) is dropped after stallTimeoutMs and retried; the download completes', { skip }, async () => {
  let stalls = 2;
  const srv = await startTestServer(MODELS, { stall: (req, start) => (start > 0 && stalls-- > 0 ? 1000 : null) });
  const store = new NodeStore(base(srv), tmp());
  try {
    const meta = await downloadFile({ baseUrl: base(srv), name: FILE, store, chunkSize: CHUNK, concurrency: 2, stallTimeoutMs: 300 });
    assert.equal(meta.complete, true);
    assert.equal(srv.requests.length, meta.nChunks + 2, 'each stalled chunk asked once more');
    assert.ok((await cachedBytes(store, FILE)).equals(fs.readFileSync(path.join(dir, FILE))));
  } finally { await srv.close(); }
});

test('a connection that keeps stalling fails with NETWORK "stalled" naming the file; the stored chunks stay', { skip }, async () => {
  const size = fs.statSync(path.join(dir, FILE)).size;
  const cut = Math.floor(size / 2);
  const srv = await startTestServer(MODELS, { stall: (req, start) => (start >= cut ? 10 : null) });
  const store = new NodeStore(base(srv), tmp());
  try {
    const t0 = Date.now();
    await assert.rejects(downloadFile({ baseUrl: base(srv), name: FILE, store, chunkSize: CHUNK, concurrency: 2, retries: 1, stallTimeoutMs: 300 }),
      (e) => e.code === 'NETWORK' && e.file === FILE && e.stalled === true && /stalled: no data for 0.3 s after 10 of/.test(e.message));
    assert.ok(Date.now() - t0 < 10000, 'fails in about (retries + 1) x the stall limit');
    const meta = await store.getMeta(FILE);
    assert.ok(meta.done.some((d) => d) && !meta.complete, 'the chunks before the stall are kept');
  } finally { await srv.close(); }
});

test('a thread kept busy longer than stallTimeoutMs (a slow synchronous cache write) is not taken for a stall', { skip }, async () => {
  // the other chunks' requests wait for their headers (100 ms) while the first chunk's write blocks the thread for
  // 2.5 s, over the 1 s limit (this server runs on the same thread: it is blocked too, and answers 100 ms after)
  const srv = await startTestServer(MODELS, { delay: (req) => (/bytes=0-/.test(req.headers.range || '') ? 0 : 100) });
  const store = new NodeStore(base(srv), tmp());
  const write = store.writeChunk.bind(store);
  let busy = 1;
  store.writeChunk = (...args) => {
    if (busy-- > 0) { const t = Date.now() + 2500; while (Date.now() < t) { /* a synchronous write that takes 2.5 s */ } }
    return write(...args);
  };
  try {
    const stats = { bytes: 0, retries: 0, stalls: 0 };
    const meta = await downloadFile({ baseUrl: base(srv), name: FILE, store, chunkSize: CHUNK, concurrency: 3, stallTimeoutMs: 1000, stats });
    assert.equal(meta.complete, true);
    assert.equal(stats.stalls, 0, 'no stall counted');
    assert.equal(srv.requests.length, meta.nChunks, 'no request retried');
  } finally { await srv.close(); }
});

test('a server that never answers (no headers) is abandoned after stallTimeoutMs', { skip }, async () => {
  const srv = await startTestServer(MODELS, { delay: () => 60000 });
  const store = new NodeStore(base(srv), tmp());
  try {
    await assert.rejects(downloadFile({ baseUrl: base(srv), name: FILE, store, chunkSize: CHUNK, retries: 1, stallTimeoutMs: 300 }),
      (e) => e.code === 'NETWORK' && e.file === FILE && e.stalled === true && /did not answer in 0.3 s/.test(e.message));
  } finally { await srv.close(); }
});

test('404 and 403 reject with code and file', { skip }, async () => {
  const srv = await startTestServer(MODELS, { status: (req, rel) => (rel.endsWith('secret.bin') ? 403 : null) });
  const store = new NodeStore(base(srv), tmp());
  try {
    await assert.rejects(downloadFile({ baseUrl: base(srv), name: 'onnx/missing.onnx_data', store, retries: 0 }),
      (e) => e.code === 'NOT_FOUND' && e.file === 'onnx/missing.onnx_data' && e.status === 404);
    await assert.rejects(downloadFile({ baseUrl: base(srv), name: 'secret.bin', store, retries: 0 }),
      (e) => e.code === 'FORBIDDEN' && e.file === 'secret.bin');
  } finally { await srv.close(); }
});

test('a file shorter than its tensors need is CORRUPT, naming it', { skip }, async () => {
  const size = fs.statSync(path.join(dir, FILE)).size;
  const srv = await startTestServer(MODELS, { truncate: { [`${MODEL}/${FILE}`]: size - 4096 } });
  const store = new NodeStore(base(srv), tmp());
  try {
    await assert.rejects(downloadFile({ baseUrl: base(srv), name: FILE, store, chunkSize: CHUNK, bytesNeeded: size }),
      (e) => e.code === 'CORRUPT' && e.file === FILE && /4096 missing/.test(e.message));
  } finally { await srv.close(); }
});

test('a server without Range support: one streamed GET, stored in chunks', { skip }, async () => {
  const srv = await startTestServer(MODELS, { noRange: true });
  const store = new NodeStore(base(srv), tmp());
  try {
    const meta = await downloadFile({ baseUrl: base(srv), name: FILE, store, chunkSize: CHUNK });
    assert.equal(srv.requests.length, 1);
    assert.equal(meta.complete, true);
    assert.ok((await cachedBytes(store, FILE)).equals(fs.readFileSync(path.join(dir, FILE))));
  } finally { await srv.close(); }
});

test('sha256: a match is recorded, a mismatch is CORRUPT and drops the file', { skip }, async () => {
  const srv = await startTestServer(MODELS);
  const store = new NodeStore(base(srv), tmp());
  try {
    const good = sha(fs.readFileSync(path.join(dir, FILE)));
    const meta = await downloadFile({ baseUrl: base(srv), name: FILE, store, chunkSize: CHUNK, sha256: good });
    assert.equal(meta.verified, true);
    await assert.rejects(downloadFile({ baseUrl: base(srv), name: 'config.json', store, sha256: '0'.repeat(64) }),
      (e) => e.code === 'CORRUPT' && e.file === 'config.json' && /sha256/.test(e.message));
    assert.equal(await store.getMeta('config.json'), null);
  } finally { await srv.close(); }
});

test('a 206 whose Content-Range cannot be read falls back to one plain GET', { skip }, async () => {
  const srv = await startTestServer(MODELS, { noContentRange: true });
  const store = new NodeStore(base(srv), tmp());
  try {
    const meta = await downloadFile({ baseUrl: base(srv), name: FILE, store, chunkSize: CHUNK });
    assert.equal(srv.requests.length, 2);
    assert.equal(srv.requests[1].range, null);
    assert.equal(meta.size, fs.statSync(path.join(dir, FILE)).size);
    assert.ok((await cachedBytes(store, FILE)).equals(fs.readFileSync(path.join(dir, FILE))));
  } finally { await srv.close(); }
});
