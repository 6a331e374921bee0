// One rule for every source: a folder whose config.json has no transformers.js_config (what optimum writes)
// loads the same .onnx, with the same tokens (onnxruntime-node's reference, ref.json), from a Node path and
// from a URL (probed with 1-byte ranged requests, the error listing what was tried), the dtype option as
// Transformers.js's, and the containment rule (#16): names from files that leave the folder are refused with
// code CORRUPT (QW_E_FORMAT) naming the file and the key, from a path and from a URL; symbolic links too.
// Needs build/wasm and build/models/ (tools/gen/gen_test_models.sh); skips otherwise.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Qwasm } from '../../js/page/qwasm.js';
import { startTestServer, WASM_DIR, modelDir, wasmReady } from './helpers.mjs';

const MODEL = 'tiny-q4f16-op18-ext'; // onnx/model_q4f16.onnx + onnx/model_q4f16.onnx_data
const src = modelDir(MODEL);
const skip = !wasmReady() ? 'build/wasm has no model exports yet' : !src ? `build/models/${MODEL} is missing (run tools/gen/gen_test_models.sh)` : false;
const ref = src ? JSON.parse(fs.readFileSync(path.join(src, 'ref.json'), 'utf8')) : null;
const N = 16;

/** A copy of the model in a new folder, config.json without transformers.js_config; edit(dir) changes it. */
function folder(edit) {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'qwasm-src-'));
  const dir = path.join(root, 'model');
  fs.mkdirSync(path.join(dir, 'onnx'), { recursive: true });
  for (const f of ['onnx/model_q4f16.onnx', 'onnx/model_q4f16.onnx_data', 'generation_config.json', 'tokenizer.json', 'tokenizer_config.json']) {
    if (fs.existsSync(path.join(src, f))) fs.copyFileSync(path.join(src, f), path.join(dir, f));
  }
  const cfg = JSON.parse(fs.readFileSync(path.join(src, 'config.json'), 'utf8'));
  delete cfg['transformers.js_config'];
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(cfg));
  if (edit) edit(dir, root);
  return { root, dir };
}

async function greedy(rt) {
  const ids = [];
  for await (const ev of rt.generate({ promptIds: ref.prompt_ids, maxTokens: N, greedy: true, ignoreEos: true })) if (ev.kind === 'token') ids.push(ev.id);
  return ids;
}

async function rejects(p, code, ...parts) {
  try { const rt = await p; await rt.dispose(); } catch (e) {
    assert.equal(e.code, code, `code of: ${e.message}`);
    for (const s of parts) assert.ok(e.message.includes(s), `"${s}" in: ${e.message}`);
    return e;
  }
  assert.fail(`loaded; expected ${code} (${parts.join(', ')})`);
}

test('no transformers.js_config: the same .onnx and the same tokens from a path and from a URL', { skip }, async () => {
  const { root, dir } = folder();
  const srv = await startTestServer(root);
  const cacheDir = fs.mkdtempSync(path.join(os.tmpdir(), 'qwasm-src-cache-'));
  try {
    const a = await Qwasm.load({ model: dir, wasmBase: WASM_DIR });
    const fromPath = { onnx: a.info.onnx_file, ids: await greedy(a) };
    await a.dispose();
    const b = await Qwasm.load({ model: srv.url + 'model/', wasmBase: WASM_DIR, cacheDir });
    const fromUrl = { onnx: b.info.onnx_file, ids: await greedy(b) };
    await b.dispose();
    assert.equal(fromPath.onnx, 'onnx/model_q4f16.onnx');
    assert.equal(fromUrl.onnx, fromPath.onnx, 'the URL source picks what the path source picks');
    assert.deepEqual(fromPath.ids, ref.tokens.slice(0, N), 'path: onnxruntime-node reference tokens');
    assert.deepEqual(fromUrl.ids, fromPath.ids, 'URL: the same tokens');
    // the candidates before it were probed with 1-byte ranged GETs, in the C rule's order
    const probes = srv.requests.filter((r) => r.range === 'bytes=0-0' && r.path.endsWith('.onnx')).map((r) => r.path);
    assert.deepEqual(probes.slice(0, 3), ['/model/onnx/model.onnx', '/model/model.onnx', '/model/onnx/model_q4f16.onnx']);
    // a second load from the cache asks the server nothing: the absent candidates are remembered
    const mark = srv.requests.length;
    const c = await Qwasm.load({ model: srv.url + 'model/', wasmBase: WASM_DIR, cacheDir });
    assert.equal(c.info.onnx_file, fromPath.onnx);
    await c.dispose();
    assert.deepEqual(srv.requests.slice(mark), [], 'requests of a cached load');
  } finally { await srv.close(); fs.rmSync(root, { recursive: true, force: true }); fs.rmSync(cacheDir, { recursive: true, force: true }); }
});

test('the dtype option picks onnx/model_<dtype>.onnx from every source; bad dtypes are refused', { skip }, async () => {
  const { root, dir } = folder((d) => fs.renameSync(path.join(d, 'onnx/model_q4f16.onnx'), path.join(d, 'onnx/model_bnb4.onnx')));
  // model_bnb4.onnx still names model_q4f16.onnx_data: the graph's own locators
  const srv = await startTestServer(root);
  const cacheDir = fs.mkdtempSync(path.join(os.tmpdir(), 'qwasm-src-cache-'));
  try {
    for (const model of [dir, srv.url + 'model/']) {
      const rt = await Qwasm.load({ model, wasmBase: WASM_DIR, cacheDir, dtype: 'bnb4' });
      assert.equal(rt.info.onnx_file, 'onnx/model_bnb4.onnx');
      assert.deepEqual(await greedy(rt), ref.tokens.slice(0, N));
      await rt.dispose();
      // no dtype: none of the candidates exists; the error lists them, in order
      const e = await rejects(Qwasm.load({ model, wasmBase: WASM_DIR, cacheDir: fs.mkdtempSync(path.join(os.tmpdir(), 'qwasm-src-c2-')) }),
        'NOT_FOUND', 'onnx/model.onnx', 'model.onnx', 'onnx/model_q4f16.onnx', 'onnx/model_q4.onnx', 'onnx/model_fp16.onnx', 'tried');
      assert.ok(e.message.indexOf('onnx/model.onnx') < e.message.indexOf('onnx/model_fp16.onnx'));
      for (const bad of ['../model', 'Q4', 'a/b', 'q4\\x', 'x'.repeat(16)]) await rejects(Qwasm.load({ model, wasmBase: WASM_DIR, cacheDir, dtype: bad }), 'ARG', 'dtype option');
      await rejects(Qwasm.load({ model, wasmBase: WASM_DIR, cacheDir, onnxFile: '../model/onnx/model_bnb4.onnx' }), 'ARG', 'onnx_file option');
    }
  } finally { await srv.close(); fs.rmSync(root, { recursive: true, force: true }); fs.rmSync(cacheDir, { recursive: true, force: true }); }
});

test('containment: names from files that leave the folder are refused, from a path and from a URL', { skip }, async () => {
  const outside = folder(); // a loadable model beside the folder under test
  const cases = [
    ['genai_config.json ..', (d) => fs.writeFileSync(path.join(d, 'genai_config.json'), JSON.stringify({ model: { decoder: { filename: '../../outside/model/onnx/model_q4f16.onnx' } } })), 'genai_config.json', 'model.decoder.filename'],
    ['genai_config.json absolute', (d) => fs.writeFileSync(path.join(d, 'genai_config.json'), JSON.stringify({ model: { decoder: { filename: path.join(outside.dir, 'onnx/model_q4f16.onnx') } } })), 'genai_config.json', 'absolute'],
    ['genai_config.json backslashes', (d) => fs.writeFileSync(path.join(d, 'genai_config.json'), JSON.stringify({ model: { decoder: { filename: '..\\..\\outside\\model.onnx' } } })), 'genai_config.json', 'backslash'],
    ['genai_config.json drive', (d) => fs.writeFileSync(path.join(d, 'genai_config.json'), JSON.stringify({ model: { decoder: { filename: 'C:/model.onnx' } } })), 'genai_config.json', 'drive'],
    ['config.json dtype', (d) => {
      const c = JSON.parse(fs.readFileSync(path.join(d, 'config.json'), 'utf8'));
      c['transformers.js_config'] = { dtype: '../../../outside/model/onnx/model_q4f16' };
      fs.writeFileSync(path.join(d, 'config.json'), JSON.stringify(c));
    }, 'config.json', 'transformers.js_config.dtype'],
  ];
  const srvOut = outside.root;
  try {
    for (const [what, edit, file, key] of cases) {
      const { root, dir } = folder(edit);
      const srv = await startTestServer(root);
      try {
        await rejects(Qwasm.load({ model: dir, wasmBase: WASM_DIR }), 'CORRUPT', file, key);
        const e = await rejects(Qwasm.load({ model: srv.url + 'model/', wasmBase: WASM_DIR, cache: 'none' }), 'CORRUPT', file, key);
        assert.ok(!srv.requests.some((r) => r.path.includes('outside') || r.path.includes('..')), `${what}: no request outside the folder (${e.message})`);
      } finally { await srv.close(); fs.rmSync(root, { recursive: true, force: true }); }
    }
    // a data file that is a symbolic link out of the folder: the path source resolves it and refuses it
    const { root, dir } = folder((d) => {
      fs.rmSync(path.join(d, 'onnx/model_q4f16.onnx_data'));
      fs.symlinkSync(path.join(outside.dir, 'onnx/model_q4f16.onnx_data'), path.join(d, 'onnx/model_q4f16.onnx_data'));
    });
    try {
      await rejects(Qwasm.load({ model: dir, wasmBase: WASM_DIR }), 'CORRUPT', 'onnx/model_q4f16.onnx_data', 'outside the model folder');
      // a link that stays inside the folder is followed
      fs.rmSync(path.join(dir, 'onnx/model_q4f16.onnx_data'));
      fs.copyFileSync(path.join(src, 'onnx/model_q4f16.onnx_data'), path.join(dir, 'onnx/data.bin'));
      fs.symlinkSync('data.bin', path.join(dir, 'onnx/model_q4f16.onnx_data'));
      const rt = await Qwasm.load({ model: dir, wasmBase: WASM_DIR });
      assert.deepEqual(await greedy(rt), ref.tokens.slice(0, N));
      await rt.dispose();
    } finally { fs.rmSync(root, { recursive: true, force: true }); }
  } finally { fs.rmSync(srvOut, { recursive: true, force: true }); }
});
