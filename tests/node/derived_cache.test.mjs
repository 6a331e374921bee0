// The derived cache (js/cache/derived-cache.js) on the Node cache store: a derived file saved from "heap" segments
// reads back byte for byte, is offered again while its source file's identity holds, and is deleted when the
// source changes (new ETag or size), when a save is cut off (model unloaded) or fails (quota), or when the core
// stops asking for it (another layout version). Needs no wasm build and no model.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { NodeStore } from '../../js/cache/cache.js';
import { openDerived, saveDerived } from '../../js/cache/derived-cache.js';
import { cachedBytes } from './helpers.mjs';

const SRC = 'onnx/model_q4f16.onnx_data';
const NAME = 'qwasm-derived/lmhead-i8-v1-0123456789abcdef.bin';

async function fixture() {
  const store = new NodeStore('http://example.test/model/', fs.mkdtempSync(path.join(os.tmpdir(), 'qwasm-derived-')));
  // a complete source file in the cache, as a download leaves it
  const src = Buffer.from('source bytes');
  await store.writeChunk(SRC, 0, 0, src, { url: store.url, name: SRC, size: src.length, etag: '"v1"', lastModified: 'Mon, 23 Nov 2026 10:00:00 GMT',
    chunkSize: 1 << 20, nChunks: 1, done: [1], complete: true, sha256: null, verified: false, time: Date.now() });
  await store.putManifest({ files: [SRC], complete: true });
  // a "heap" with three segments of the derived file at scattered addresses
  const heap = new Uint8Array(4096);
  for (let i = 0; i < heap.length; i++) heap[i] = (i * 131 + 7) & 255;
  const segments = [[100, 64], [1000, 1500], [3000, 700]];
  const entry = { name: NAME, size: 64 + 1500 + 700, loaded: 0, source: SRC, segments };
  const expect = Buffer.concat(segments.map(([a, n]) => Buffer.from(heap.subarray(a, a + n))));
  return { store, heap, entry, expect };
}

test('a saved derived file reads back and is offered while its source is unchanged', async () => {
  const { store, heap, entry, expect } = await fixture();
  const r = await saveDerived(store, [entry], () => heap, () => true, { chunkSize: 1000 }); // several chunks
  assert.deepEqual(r.saved, [NAME]);
  assert.deepEqual((await store.getManifest()).derived, [NAME]);
  assert.deepEqual(await cachedBytes(store, NAME), expect);
  const meta = await store.getMeta(NAME);
  assert.equal(meta.complete, true);
  assert.deepEqual(meta.derivedFrom, { name: SRC, size: 12, etag: '"v1"', lastModified: 'Mon, 23 Nov 2026 10:00:00 GMT', sha256: '' });
  const readers = new Map();
  assert.deepEqual(await openDerived(store, await store.getManifest(), readers), [NAME]);
  assert.equal(readers.get(NAME).size, entry.size);
  // the next load read it (loaded = 1): kept, nothing written
  const r2 = await saveDerived(store, [{ ...entry, loaded: 1 }], () => heap, () => true);
  assert.deepEqual(r2.saved, []);
  assert.deepEqual(r2.kept, [NAME]);
});

test('a new ETag on the source file makes the derived file stale: deleted, not offered', async () => {
  const { store, heap, entry } = await fixture();
  await saveDerived(store, [entry], () => heap, () => true);
  const src = await store.getMeta(SRC);
  await store.putMeta(SRC, { ...src, etag: '"v2"' });
  const readers = new Map();
  assert.deepEqual(await openDerived(store, await store.getManifest(), readers), []);
  assert.equal(readers.size, 0);
  assert.equal(await store.getMeta(NAME), null);
});

test('a save cut off by an unload leaves nothing behind; a file the core no longer asks for is deleted', async () => {
  const { store, heap, entry } = await fixture();
  let chunks = 0;
  const r = await saveDerived(store, [entry], () => heap, () => chunks++ < 1, { chunkSize: 1000 });
  assert.deepEqual(r.saved, []);
  assert.equal(await store.getMeta(NAME), null);
  // saved by one layout version, then the core asks for another name: the old file goes
  await saveDerived(store, [entry], () => heap, () => true);
  const other = { ...entry, name: 'qwasm-derived/lmhead-i8-v2-0123456789abcdef.bin' };
  const r2 = await saveDerived(store, [other], () => heap, () => true);
  assert.deepEqual(r2.kept, [other.name]);
  assert.equal(await store.getMeta(NAME), null);
});

test('nothing is saved for a source that is not a complete cached file', async () => {
  const { store, heap, entry } = await fixture();
  const r = await saveDerived(store, [{ ...entry, source: 'onnx/elsewhere.onnx_data' }], () => heap, () => true);
  assert.deepEqual(r.saved, []);
  assert.deepEqual((await store.getManifest()).derived, []);
});

test('a save that fails (quota) removes its half-written file and leaves the model files alone', async () => {
  const { store, heap, entry } = await fixture();
  const write = store.writeChunk.bind(store);
  let n = 0;
  store.writeChunk = async (...a) => {
    if (n++ === 1) throw Object.assign(new Error('QuotaExceededError'), { name: 'QuotaExceededError' });
    return write(...a);
  };
  await assert.rejects(saveDerived(store, [entry], () => heap, () => true, { chunkSize: 1000 }), /Quota/);
  assert.equal(await store.getMeta(NAME), null);
  assert.equal((await store.getMeta(SRC)).complete, true);
});
