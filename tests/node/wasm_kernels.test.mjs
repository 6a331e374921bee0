// The kernel tests (tests/test_kernels.c: every SIMD kernel against its scalar reference) compiled to wasm:
// SIMD128 and relaxed SIMD, one thread and pthreads, run under Node. Relaxed SIMD needs Node 20's
// --experimental-wasm-relaxed-simd, a process-wide flag, so each build runs in its own process.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const builds = [
  ['build/wasm/test_kernels-st.mjs', []],
  ['build/wasm/test_kernels-mt.mjs', []],
  ['build/wasm-relaxed/test_kernels-st-relaxed.mjs', ['--experimental-wasm-relaxed-simd']],
  ['build/wasm-relaxed/test_kernels-mt-relaxed.mjs', ['--experimental-wasm-relaxed-simd']],
];

for (const [file, flags] of builds) {
  test(`kernels agree with the scalar reference: ${path.basename(file)}`, () => {
    const p = path.join(root, file);
    assert.ok(existsSync(p), `${file} is missing: run tools/build/build.sh wasm wasm-relaxed`);
    const r = spawnSync(process.execPath, [...flags, p], { encoding: 'utf8', timeout: 300000 });
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /test_kernels: \d+ checks, 0 failed/);
  });
}
