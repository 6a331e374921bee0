// The kernel tests (tests/test_kernels.c, built by emscripten) in headless Chromium: the packed 4-bit
// kernels' relaxed i32 dot-add path only runs where the engine computes that instruction right, which
// Node 20 does not, so the browser is where it is tested (every kernel against its scalar reference).
import fs from 'node:fs';
import path from 'node:path';
import { REPO, server, chromium, assert, assertEq, runIfMain } from './lib.mjs';
import { runKernelPage } from '../../tools/bench/kernel_page.mjs';

function built(prog) { return fs.existsSync(path.join(REPO, 'build', prog + '.js')) ? null : `build/${prog}.js missing`; }

async function kernelTests(prog, expectDotAdd) {
  const srv = await server();
  const br = await chromium(srv.origin);
  try {
    const r = await runKernelPage(br.page, srv.origin, prog);
    assertEq(r.exitCode, 0, `${prog} exit code (${r.error || r.lines.filter((l) => /FAIL/.test(l)).slice(0, 5).join('; ')})`);
    assert(r.checks && r.checks.failed === 0 && r.checks.total > 100, `${prog}: ${JSON.stringify(r.checks)}`);
    const dot = r.lines.some((l) => /relaxed i32 dot-add/.test(l));
    assertEq(dot, expectDotAdd, `${prog} ran the dot-add path`);
    const tile = r.lines.some((l) => /packed q4 kernels: relaxed-dot-add-tile1/.test(l));
    assertEq(tile, expectDotAdd, `${prog} ran prefill tile 1 under the dot-add decode tile`);
  } finally {
    await br.close();
    await srv.close();
  }
}

export const tests = [
  { name: 'kernel tests, SIMD128 build, in Chromium', needs: () => built('wasm/test_kernels-mt'),
    fn: () => kernelTests('wasm/test_kernels-mt', false) },
  { name: 'kernel tests, relaxed-SIMD build (dot-add path) in Chromium', needs: () => built('wasm-relaxed/test_kernels-mt-relaxed'),
    fn: () => kernelTests('wasm-relaxed/test_kernels-mt-relaxed', true) },
];

await runIfMain(import.meta.url, tests);
