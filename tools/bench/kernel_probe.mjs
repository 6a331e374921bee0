#!/usr/bin/env node
// kernel_probe.mjs - what the decode kernels reach on the machine at hand, against native streaming bandwidth.
//
//   node tools/bench/kernel_probe.mjs [--json-only] [--no-browsers] [--browser chromium|firefox] [--prefill | --attn]
//
// 1. native streaming read bandwidth (tools/bench/kernel_probe_stream.c, 1 GB buffer, 1 and 2 threads; built here);
// 2. each kernel's GB/s of weight bytes natively (build/native/test_kernels bench 1|2);
// 3. the same in Node: build/wasm test_kernels-st / -mt, build/wasm-relaxed *-relaxed (with
//    --experimental-wasm-relaxed-simd); 2 pool threads for mt;
// 4. the same in headless Chromium (playwright-core) and Firefox (puppeteer-core over WebDriver BiDi): the
//    emscripten builds of the kernel bench run in tools/bench/pages/kernels.html, served cross-origin isolated
//    by tools/serve/serve.mjs (so the -mt builds get their threads); the relaxed build uses the i32 dot-add
//    where the engine computes it right ("dot_add" in the JSON);
// then a table (ratio of every figure to the native 1-thread stream) and one JSON line.
// Kernels (test_kernels.c bench): q4q8 = 4-bit x int8 rows (MatMulNBits layout), q4q8p = the 4-row packed
// decode layout, q4f32 = fp32 activations, lm_head_f16 = the fp16 tied head, lm_head_i8 = the int8 head rows.
// prefill64 = 64 activation rows against the packed layout (GMAC/s, compute-bound).
// --prefill: only `test_kernels bench T prefill` (no stream): the build's integer-dot peak and the prefill
// shapes with each distinct prefill tile of the build's kernel table timed in turn ("tileN": the first row with
// it; relaxed build: tile0 = one 4-row group x 8 rows, tile1 = two groups x 4 rows), the dot-add's register-only
// peak where the engine computes it right,
// 1 and 2 threads; in Node and natively also per CPU second of the one thread (steadier on a busy machine).
// --attn: only the attention bench (`test_kernels bench-attn 1`, wasm `bench 1 attn`: the relaxed build, one
// thread), natively, in Node and in the browsers: ms per token over the 1.5B's 28 layers at 64 .. 8192 keys.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const jsonOnly = process.argv.includes('--json-only');
const noBrowsers = process.argv.includes('--no-browsers');
const prefill = process.argv.includes('--prefill');
const attn = process.argv.includes('--attn');
const extra = prefill ? ['prefill'] : attn ? ['attn'] : [];
const bi = process.argv.indexOf('--browser');
const onlyBrowser = bi > 0 ? process.argv[bi + 1] : null; // chromium or firefox
const out = { machine: {}, native: {}, node: {}, chromium: {}, firefox: {} };

function run(cmd, args, opts = {}) {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', timeout: 120000, stdio: ['ignore', 'pipe', 'pipe'], ...opts });
  } catch (e) {
    return null;
  }
}
function allJson(lines) {
  return (lines || []).filter((l) => l.startsWith('{')).map((l) => { try { return JSON.parse(l); } catch { return null; } }).filter(Boolean);
}
function lastJson(s) {
  if (!s) return null;
  const lines = s.trim().split('\n').filter((l) => l.startsWith('{'));
  try { return lines.length ? JSON.parse(lines[lines.length - 1]) : null; } catch { return null; }
}

const cpu = run('lscpu', []) || '';
out.machine.cpu = (cpu.match(/Model name:\s*(.*)/) || [])[1] || '?';
out.machine.nproc = Number(run('nproc', []) || 0);

// 1. native stream
const tmp = path.join(root, 'build', 'tmp');
fs.mkdirSync(tmp, { recursive: true });
const sbin = path.join(tmp, 'kernel_probe_stream');
if (!fs.existsSync(sbin) || fs.statSync(sbin).mtimeMs < fs.statSync(path.join(root, 'tools/bench/kernel_probe_stream.c')).mtimeMs)
  run('cc', ['-O2', '-march=native', '-pthread', path.join(root, 'tools/bench/kernel_probe_stream.c'), '-o', sbin]);
out.stream = prefill || attn ? {} : lastJson(run(sbin, [])) || {};

// 2. native kernels
const tk = path.join(root, 'build/native/test_kernels');
if (attn) out.native.t1 = allJson((run(tk, ['bench-attn', '1'], { timeout: 600000 }) || '').split('\n'));
else for (const th of [1, 2]) out.native[`t${th}`] = lastJson(run(tk, ['bench', String(th), ...extra]));

// 3. Node
const variants = [
  ['st', path.join(root, 'build/wasm/test_kernels-st.mjs'), []],
  ['mt', path.join(root, 'build/wasm/test_kernels-mt.mjs'), []],
  ['relaxed-st', path.join(root, 'build/wasm-relaxed/test_kernels-st-relaxed.mjs'), ['--experimental-wasm-relaxed-simd']],
  ['relaxed-mt', path.join(root, 'build/wasm-relaxed/test_kernels-mt-relaxed.mjs'), ['--experimental-wasm-relaxed-simd']],
];
for (const [name, file, flags] of variants)
  if (attn) {
    if (name === 'relaxed-st' && fs.existsSync(file))
      out.node[name] = allJson((run(process.execPath, [...flags, file, 'bench', '1', 'attn'], { timeout: 600000 }) || '').split('\n'));
  } else if (fs.existsSync(file) && (!prefill || name.startsWith('relaxed'))) out.node[name] = lastJson(run(process.execPath, [...flags, file, 'bench', name.endsWith('mt') ? '2' : '1', ...extra], { timeout: 600000 }));

// 4. browsers
async function browserStage(name, open) {
  const { startServer } = await import('../serve/serve.mjs');
  const { runKernelPage } = await import('./kernel_page.mjs');
  const srv = await startServer({ port: 0, root, isolation: true, quiet: true });
  let b = null;
  try {
    b = await open();
    for (const [v, prog] of [['st', 'wasm/test_kernels-st'], ['mt', 'wasm/test_kernels-mt'],
      ['relaxed-st', 'wasm-relaxed/test_kernels-st-relaxed'], ['relaxed-mt', 'wasm-relaxed/test_kernels-mt-relaxed']]) {
      if (!fs.existsSync(path.join(root, 'build', prog + '.js'))) continue;
      if (prefill && !v.startsWith('relaxed')) continue; /* the tiles differ only there */
      if (attn && v !== 'relaxed-st') continue;
      try {
        if (attn) {
          const r = await runKernelPage(b.page, srv.origin, prog, 'bench,1,attn', 600000);
          out[name][v] = allJson(r.lines);
          continue;
        }
        const r = await runKernelPage(b.page, srv.origin, prog, `bench,${v.endsWith('mt') ? 2 : 1}${prefill ? ',prefill' : ''}`, 600000);
        out[name][v] = r.bench || { error: r.error || `exit ${r.exitCode}` };
      } catch (e) { out[name][v] = { error: e.message }; }
    }
  } catch (e) {
    out[name].error = e.message;
  } finally {
    if (b) await b.close().catch(() => {});
    await srv.close();
  }
}
if (!noBrowsers) {
  const { launchBrowser } = await import('../test/browsers.mjs');
  for (const kind of onlyBrowser ? [onlyBrowser] : ['chromium', 'firefox'])
    await browserStage(kind, async () => {
      const dir = fs.mkdtempSync(path.join(tmp, `probe-${kind}-`));
      const b = await launchBrowser(kind, dir);
      const page = (b.pages && b.pages()[0]) || await b.newPage();
      return { page, close: async () => { await b.close(); fs.rmSync(dir, { recursive: true, force: true }); } };
    });
}

if (attn) { // ms per token by keys: decode over 28 layer caches, a prefill chunk's token
  const cols = [['native', out.native.t1], ...['node', 'chromium', 'firefox'].map((e) => [e, out[e]['relaxed-st']])].filter(([, v]) => Array.isArray(v) && v.length);
  if (!jsonOnly) {
    console.log(['keys'.padEnd(8), ...cols.flatMap(([n]) => [`${n} decode`.padStart(18), `${n} prefill`.padStart(18)])].join(''));
    for (const row of cols[0] ? cols[0][1] : []) {
      const k = row.keys, f = (v) => (v == null ? '-' : `${v.toFixed(1)} ms`).padStart(18);
      console.log([String(k).padEnd(8), ...cols.flatMap(([, v]) => { const r = v.find((x) => x.keys === k) || {}; return [f(r.decode_ms_new_28_caches), f(r.prefill_ms_per_token_new)]; })].join(''));
    }
  }
  console.log(JSON.stringify(out));
  process.exit(0);
}

const keys0 = ['q4q8_8960x1536_GBs', 'q4q8p_8960x1536_GBs', 'q4q8_1536x8960_GBs', 'q4q8p_1536x8960_GBs',
  'q4q8_1536x1536_GBs', 'q4q8p_1536x1536_GBs', 'q4f32_8960x1536_GBs', 'lm_head_f16_151936x1536_GBs',
  'lm_head_i8_151936x1536_GBs', 'prefill64_8960x1536_GMACs', 'prefill64_1536x8960_GMACs'];
const keys = prefill ? [...new Set([out.native, out.node, out.chromium, out.firefox].flatMap((o) => Object.values(o || {}))
  .filter((v) => v && typeof v === 'object').flatMap((v) => Object.keys(v)).filter((k) => k.includes('GMAC')))] : keys0;
const ref = out.stream.stream_1t_GBs || NaN;
if (!jsonOnly) {
  console.log(`machine: ${out.machine.cpu}, ${out.machine.nproc} cpus; native stream 1 thread ${out.stream.stream_1t_GBs} GB/s, 2 threads ${out.stream.stream_2t_GBs} GB/s`);
  const cols = [['native 1t', out.native.t1], ['native 2t', out.native.t2],
    ...['node', 'chromium', 'firefox'].flatMap((e) => Object.entries(out[e]).filter(([, v]) => v && typeof v === 'object')
      .map(([k, v]) => [`${e} ${k}${v.dot_add ? '+da' : ''}`, v]))];
  console.log(['kernel (GB/s, x = / native 1-thread stream)'.padEnd(34), ...cols.map(([n]) => n.padStart(16))].join(''));
  for (const k of keys) {
    const cells = cols.map(([, v]) => {
      const g = v && v[k];
      if (g == null) return '-'.padStart(16);
      return (k.includes('GMAC') ? `${g.toFixed(1)} GMAC/s` : `${g.toFixed(1)} (${(g / ref).toFixed(2)}x)`).padStart(16);
    });
    console.log([k.replace('_GBs', '').padEnd(34), ...cells].join(''));
  }
  if (prefill) // which kernel-table row each tileN is, per column
    for (const [n, v] of cols) {
      const names = Object.keys(v || {}).filter((k) => /^tile\d$/.test(k)).map((k) => `${k} = ${v[k]}`);
      if (names.length) console.log(`${n}: ${names.join(', ')}`);
    }
}
console.log(JSON.stringify(out));
