// Drives tools/bench/pages/kernels.html in a browser page (Playwright or puppeteer Page): runs an emscripten build
// of tests/test_kernels.c (prog = "wasm/test_kernels-st", "wasm-relaxed/test_kernels-mt-relaxed", ...) with
// args ("" = the correctness tests, "bench,2" = the kernel bench on 2 pool threads) and returns
// { exitCode, error, isolated, lines, checks: {total, failed} | null, bench: object | null }.
// Used by tools/bench/kernel_probe.mjs and tests/browser/kernels.test.mjs.
export async function runKernelPage(page, origin, prog, args = '', timeoutMs = 300000) {
  await page.goto(`${origin}/tools/bench/pages/kernels.html?prog=${encodeURIComponent(prog)}&args=${encodeURIComponent(args)}`);
  const t0 = Date.now();
  let r = null;
  while (Date.now() - t0 < timeoutMs) {
    r = await page.evaluate(() => window.kernelRun && JSON.parse(JSON.stringify(window.kernelRun)));
    if (r && r.done) break;
    await new Promise((res) => setTimeout(res, 500));
  }
  if (!r || !r.done) throw new Error(`${prog} ${args}: not finished after ${timeoutMs / 1000} s (last lines: ${(r?.lines || []).slice(-3).join(' | ')})`);
  const m = r.lines.map((l) => l.match(/test_kernels: (\d+) checks, (\d+) failed/)).find(Boolean);
  const j = r.lines.filter((l) => l.startsWith('{')).pop();
  return { ...r, checks: m ? { total: +m[1], failed: +m[2] } : null, bench: j ? JSON.parse(j) : null };
}
