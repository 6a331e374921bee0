// node-flags: --experimental-wasm-relaxed-simd
// Every wasm variant loads in Node 20 through the one loader and reports version, SIMD, relaxed SIMD and
// threads through the single exported info call (qw_wasm_info).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadQwasmModule, supportsRelaxedSimd } from '../../js/worker/qwasm-loader.js';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const version = readFileSync(path.join(root, 'src', 'api', 'qwasm.h'), 'utf8').match(/QW_VERSION_STRING "([^"]+)"/)[1];

test('relaxed SIMD is detected with WebAssembly.validate (this file runs with the Node flag)', () => {
  assert.equal(supportsRelaxedSimd(), true);
});

for (const [flavour, relaxed, dir] of [['st', false, 'wasm'], ['mt', false, 'wasm'],
                                        ['st', true, 'wasm-relaxed'], ['mt', true, 'wasm-relaxed']]) {
  test(`qwasm-${flavour}${relaxed ? '-relaxed' : ''} loads and reports its build`, async () => {
    const { module } = await loadQwasmModule({ flavour, relaxed, wasmBase: path.join(root, 'build', dir) + '/',
                                               print: () => {}, printErr: () => {} });
    const info = JSON.parse(module.UTF8ToString(module._qw_wasm_info()));
    assert.equal(info.version, version);
    assert.equal(info.target, `wasm-${flavour}`);
    assert.equal(info.simd, true);
    assert.equal(info.relaxed_simd, relaxed);
    assert.equal(info.threads, flavour === 'mt');
    assert.ok(info.max_threads >= 1);
    if (flavour === 'mt' && module.PThread) module.PThread.terminateAllThreads?.();
  });
}
