// One source of truth across C and JS: js/worker/qwasm-abi.js is what tools/build/gen_abi_js.mjs makes from the C headers
// today (values and offsets computed by emcc), every qw_status has an error code, and the wasm module exports what
// the glue calls for QwasmError.file. Needs emcc (tools/build/bootstrap.sh installs it) and build/wasm.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { QW_STATUS, QW_WASM_EVENT } from '../../js/worker/qwasm-abi.js';
import { STATUS_CODE, STATUS_NAME_CODE } from '../../js/worker/protocol.js';
import { loadQwasmModule } from '../../js/worker/qwasm-loader.js';
import { WASM_DIR } from './helpers.mjs';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

test('js/worker/qwasm-abi.js is a fresh generation from src/api/qwasm.h, src/bindings/wasm/qw_wasm_abi.h and src/graph/qw_graph.h', () => {
  const r = spawnSync(process.execPath, [path.join(root, 'tools', 'build', 'gen_abi_js.mjs'), '--check'], { encoding: 'utf8' });
  assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
});

test('every qw_status maps to an error code; the event is the bytes qw_wasm_api.c fills (its last field ends it)', () => {
  assert.deepEqual(Object.keys(STATUS_NAME_CODE).sort(), Object.keys(QW_STATUS).sort());
  for (const v of Object.values(QW_STATUS)) assert.ok(STATUS_CODE[v], `status ${v}`);
  assert.equal(STATUS_CODE[QW_STATUS.QW_E_RANGE], 'CORRUPT');
  assert.equal(QW_WASM_EVENT.size, QW_WASM_EVENT.draft_ms.offset + QW_WASM_EVENT.draft_ms.size);
});

test("js/worker/qw_library.js's one literal status (a pthread has no Module.qwStatus) is QW_E_IO", () => {
  const lib = readFileSync(path.join(root, 'js', 'worker', 'qw_library.js'), 'utf8');
  const literals = [...lib.matchAll(/return (\d+); \/\* (QW_\w+)/g)];
  assert.ok(literals.length >= 1);
  for (const [, n, name] of literals) assert.equal(+n, QW_STATUS[name], name);
});

test('the wasm module reports the file of its last error (qw_wasm_last_error_file)', async () => {
  const { module: M } = await loadQwasmModule({ flavour: 'st', relaxed: false, wasmBase: WASM_DIR, print: () => {}, printErr: () => {} });
  assert.equal(typeof M._qw_wasm_last_error_file, 'function');
  // a folder source without config.json: no .onnx is found; the error names the first candidate
  M.qwFs.set(1, { size: () => -1, read: () => { throw new Error('none'); } });
  const name = M._qw_wasm_malloc(32);
  M.stringToUTF8('onnx/model.onnx', name, 32);
  assert.equal(M._qw_wasm_onnx_files(1, name), 0);
  assert.equal(M._qw_wasm_last_status(), QW_STATUS.QW_E_NOTFOUND);
  assert.equal(M.UTF8ToString(M._qw_wasm_last_error_file()), 'onnx/model.onnx');
  M._qw_wasm_free(name);
});
