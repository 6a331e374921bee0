// The full-size test: the generated Qwen2.5-1.5B-shaped model (q4f16, opset 18, 1.2 GB external data) in
// headless Chromium through the demo page: load from the local server, generate greedily, reload -> from the
// cache with zero model-file requests, the int8 lm_head rows read from the cache (saved there after the first
// load) and the same tokens, then under a 512 MB memory cap -> the same tokens
// again with at most 512 MB of weights resident. How many tokens equal the native CLI's is printed, not
// asserted: random full-size weights amplify last-bit differences between builds (README).
// The calm 1.5B (gen_model.py --calm: the same shape, greedy margins of tens of logits) is the parity check:
// the native CLI and Chromium give onnxruntime-node's 32 greedy tokens for the chat prompt of its ref.json.
//   node tests/browser/big.test.mjs      (needs: bash tools/gen/gen_test_models.sh --big)
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { Worker } from 'node:worker_threads';
import {
  REPO, server, chromium, openDemo, setSettings, loadAndWait, chat, nativeGreedy, shot, assert, assertEq,
  runIfMain, missingRuntime, DEFAULT_SYSTEM, CLI,
} from './lib.mjs';
import { pipeChromium } from './pipe.mjs';

const MODEL = 'qwen2.5-1.5b-q4f16-op18-ext';
const PROMPT = 'Redacta la epicrisis de un paciente de 67 años ingresado por neumonía.';
const MAX = 12;
const CAP_MB = 512;
const MB = 1024 * 1024;

const CALM = 'qwen2.5-1.5b-calm-q4f16-op18-ext';
// the user turn of gen_test_models.sh's CHAT_PROMPT (with DEFAULT_SYSTEM), the prompt of the calm model's ref.json
const CALM_USER = 'Hello!';

function missingCalm() {
  if (!fs.existsSync(path.join(REPO, 'build/models', CALM, 'ref.json'))) return `build/models/${CALM}/ref.json missing (bash tools/gen/gen_test_models.sh --big)`;
  return missingRuntime();
}

function missing() {
  if (!fs.existsSync(path.join(REPO, 'build/models', MODEL, 'config.json'))) return `build/models/${MODEL} missing (bash tools/gen/gen_test_models.sh --big)`;
  return missingRuntime();
}

/** Prints the load's download counters (stalls retried by the watchdog) and the server's stalled or unfinished responses. */
async function logDownload(page, s) {
  const d = await page.evaluate(async () => { const st = await window.qwasmDemo.stats(); return st && st.source && st.source.download; });
  const open = s.requests.filter((r) => r.url.includes('/build/models/') && r.status === 206 && !r.ended).length;
  console.log(`        download: ${JSON.stringify(d)}; model responses not finished by the server: ${open}`);
}

export const tests = [
  {
    name: `big: ${CALM} gives onnxruntime-node's 32 greedy tokens natively and in Chromium`,
    needs: missingCalm,
    fn: async () => {
      const dir = path.join(REPO, 'build/models', CALM);
      const ref = JSON.parse(fs.readFileSync(path.join(dir, 'ref.json'), 'utf8'));
      const steps = ref.tokens.length;
      assertEq(steps, 32, 'reference steps');
      const minMargin = Math.min(...ref.steps.map((s) => s.top2_margin));
      assert(minMargin > 5, `onnxruntime's top-1/top-2 margins stay wide (min ${minMargin.toFixed(2)} logits)`);
      // native, the reference's prompt ids
      const out = execFileSync(CLI, ['run', dir, '--prompt-ids', ref.prompt_ids.join(','), '--greedy', '--max-tokens', String(steps),
        '--json'], { encoding: 'utf8', maxBuffer: 64 << 20 });
      const ids = JSON.parse(out.trim().split('\n').filter((l) => l.includes('"ids"')).pop()).ids;
      assertEq(ids.join(','), ref.tokens.join(','), 'native CLI greedy tokens (prompt ids) = onnxruntime-node');
      // native, the chat the page sends: the same prompt ids rendered by the template + tokenizer
      const viaChat = nativeGreedy(dir, { prompt: CALM_USER, system: DEFAULT_SYSTEM, maxTokens: steps });
      assertEq(viaChat.ids.join(','), ref.tokens.join(','), 'native CLI greedy tokens (chat) = onnxruntime-node');

      const s = await server();
      const b = await chromium(s.origin, { timeout: 600000 });
      try {
        await openDemo(b.page, s.url, `?model=${CALM}`);
        await setSettings(b.page, { greedy: true, maxTokens: steps, system: DEFAULT_SYSTEM, memCap: 0 });
        await loadAndWait(b.page, 600000);
        await logDownload(b.page, s);
        const r = await chat(b.page, CALM_USER, 600000);
        assert(!r.error, `no error (${JSON.stringify(r.error)})`);
        const nPrompt = await b.page.evaluate(() => document.getElementById('stat-prefill').textContent);
        assert(new RegExp(`\\b${ref.prompt_ids.length} tok`).test(nPrompt), `the page's prompt has ${ref.prompt_ids.length} tokens (${nPrompt})`);
        assertEq(r.ids.join(','), ref.tokens.join(','), 'Chromium greedy tokens = onnxruntime-node');
        console.log(`        ${steps} of ${steps} tokens equal onnxruntime-node's (its min top-2 margin ${minMargin.toFixed(1)} logits)`);
      } finally {
        await b.close();
        await s.close();
      }
    },
  },
  {
    name: `big: ${MODEL} loads, generates, reloads from the cache and generates the same under a ${CAP_MB} MB cap`,
    needs: missing,
    fn: async () => {
      const s = await server();
      const b = await chromium(s.origin, { timeout: 600000 });
      const { page, requests, external } = b;
      const modelReqs = (from) => requests.slice(from).filter((r) => r.url.includes(`/build/models/${MODEL}/`));
      const settings = { greedy: true, maxTokens: MAX, system: DEFAULT_SYSTEM };
      try {
        await openDemo(page, s.url, `?model=${MODEL}`);
        await setSettings(page, { ...settings, memCap: 0 });
        let t0 = Date.now();
        await loadAndWait(page, 600000);
        const coldS = (Date.now() - t0) / 1000;
        await logDownload(page, s);
        const r1 = await chat(page, PROMPT, 600000);
        assert(!r1.error, `no error (${JSON.stringify(r1.error)})`);
        assertEq(r1.ids.length, MAX, 'tokens generated');
        const st1 = await page.evaluate(() => window.qwasmDemo.stats());
        const rate1 = await decodeRate(page);
        await shot(page, 'big-chat');

        // Informational: random full-size weights are chaotic (README "What differs from onnxruntime"), so the
        // wasm and native builds' tokens are compared but not required to match.
        const native = nativeGreedy(path.join(REPO, 'build/models', MODEL), { prompt: PROMPT, system: DEFAULT_SYSTEM, maxTokens: MAX });
        const sameAsNative = r1.ids.findIndex((id, i) => id !== native.ids[i]);
        // The native CLI under caps that keep part of the layer weights (packed in place) and stream the rest
        // (file layout): the same tokens as its uncapped run, exactly.
        for (const memCapMB of [CAP_MB, 1000]) {
          const capped = nativeGreedy(path.join(REPO, 'build/models', MODEL), { prompt: PROMPT, system: DEFAULT_SYSTEM, maxTokens: MAX, memCapMB });
          assertEq(capped.ids.join(','), native.ids.join(','), `native CLI tokens under a ${memCapMB} MB cap = uncapped`);
        }
        // The tied embedding stays in the cache (read by rows): the same tokens as with it in memory.
        const resident = nativeGreedy(path.join(REPO, 'build/models', MODEL), { prompt: PROMPT, system: DEFAULT_SYSTEM, maxTokens: MAX, embeddingResident: true });
        assertEq(resident.ids.join(','), native.ids.join(','), 'native CLI tokens with the embedding resident = read on demand');
        // Sampled as Qwen2.5-Instruct's generation_config says: the int8 lm_head keeps exact what the sampler can
        // pick from, so the tokens are the all-fp16 lm_head's.
        const sample = ['--temperature', '0.7', '--top-k', '20', '--top-p', '0.8', '--repeat-penalty', '1.05', '--seed', '1'];
        const s8 = nativeGreedy(path.join(REPO, 'build/models', MODEL), { prompt: PROMPT, system: DEFAULT_SYSTEM, maxTokens: MAX, sample });
        const s16 = nativeGreedy(path.join(REPO, 'build/models', MODEL), { prompt: PROMPT, system: DEFAULT_SYSTEM, maxTokens: MAX, sample, exactLmHead: true });
        assertEq(s8.ids.join(','), s16.ids.join(','), 'native CLI sampled tokens: int8 lm_head = all-fp16 lm_head');
        const EMB = 151936 * 1536 * 2; // the 1.5B's tied embedding, fp16
        assertEq(st1.paging && st1.paging.on_demand_bytes, EMB, 'embedding bytes left in the OPFS cache, read on demand');
        assert(st1.resident_weight_bytes < 1211e6 - EMB + 350e6, `resident weights ${st1.resident_weight_bytes} B: the layers and the int8 rows, not the embedding`);

        // The int8 lm_head rows made at this load go to the cache in the background (derived data).
        const saved = await waitDerived(page, (d) => d.state !== 'saving', 600000);
        assertEq(saved.state, 'saved', `derived cache after the first load (${JSON.stringify(saved)})`);

        // Reload: everything from the cache, nothing from the network.
        let mark = requests.length;
        await page.reload({ waitUntil: 'load' });
        await page.waitForFunction(() => document.body.dataset.ready === '1');
        await setSettings(page, { ...settings, memCap: 0 });
        t0 = Date.now();
        await loadAndWait(page, 600000);
        const warmS = (Date.now() - t0) / 1000;
        assertEq(modelReqs(mark).map((r) => `${r.method} ${r.url}`), [], 'model-file requests after reload');
        const load = await page.evaluate(() => window.qwasmDemo.lastLoad);
        assert(load && load.fromCache === true, `loaded from cache (${JSON.stringify(load)})`);
        const st2 = await page.evaluate(() => window.qwasmDemo.stats());
        assertEq(st2.derived_cache && st2.derived_cache.state, 'loaded', 'the int8 lm_head rows read from the cache, not made again');
        assert(st2.derived.length === 1 && st2.derived[0].loaded === 1, `derived files read (${JSON.stringify(st2.derived)})`);
        const r2 = await chat(page, PROMPT, 600000);
        assertEq(r2.ids, r1.ids, 'ids after a cached reload');
        assertEq(st2.paging && st2.paging.on_demand_bytes, EMB, 'embedding read on demand after the reload');

        // The same under a memory cap, from the cache too.
        mark = requests.length;
        await page.reload({ waitUntil: 'load' });
        await page.waitForFunction(() => document.body.dataset.ready === '1');
        await setSettings(page, { ...settings, memCap: CAP_MB });
        await loadAndWait(page, 600000);
        const r3 = await chat(page, PROMPT, 600000);
        assertEq(r3.ids, r1.ids, `ids under a ${CAP_MB} MB cap`);
        const st3 = await page.evaluate(() => window.qwasmDemo.stats());
        const rate3 = await decodeRate(page);
        assert(st3.resident_weight_bytes <= CAP_MB * MB, `resident weights ${st3.resident_weight_bytes} B <= cap`);
        assertEq(modelReqs(mark).map((r) => `${r.method} ${r.url}`), [], 'model-file requests for the capped load');
        await shot(page, 'big-capped');
        assertEq(external, [], 'requests outside the origin');
        console.log(`        cold load ${coldS.toFixed(1)} s, warm ${warmS.toFixed(1)} s; decode ${fmt(rate1)} uncapped, ${fmt(rate3)} capped; ` +
          `resident weights ${(st1.resident_weight_bytes / MB).toFixed(0)} MB / ${(st3.resident_weight_bytes / MB).toFixed(0)} MB capped; ` +
          `equal to the native CLI for ${sameAsNative < 0 ? MAX : sameAsNative} of ${MAX} tokens`);
      } finally {
        await b.close();
        await s.close();
      }
    },
  },
];

/** The bare page's cache-'none' load of MODEL and 8 greedy tokens in tab, {userDataDir, goto(url, ready),
 *  evaluate(expression)}: Playwright's page or the CDP pipe (pipe.mjs), which the caller opens and closes. The
 *  tab's memory is sampled from before the page opens to 5 s after the tokens; the figures printed after label.
 *  -> {modelBytes, src (the load's stats.source), settled and peak ({tabPss, tabRss})}. */
async function noneLoad(tab, s, label) {
  const dir = path.join(REPO, 'build/models', MODEL);
  const modelBytes = ['onnx/model_q4f16.onnx', 'onnx/model_q4f16.onnx_data'].reduce((a, f) => a + fs.statSync(path.join(dir, f)).size, 0);
  const mem = tabSampler(tab.userDataDir);
  try {
    await tab.goto(`${s.url}tests/browser/bare.html`, 'window.bareReady === true');
    const t0 = Date.now();
    const r = await tab.evaluate(`window.bare.load({ model: ${JSON.stringify(`${s.url}build/models/${MODEL}/`)}, cache: 'none', threads: 2 })`);
    const loadS = (Date.now() - t0) / 1000;
    assert(!r.error, `cache 'none' load: ${JSON.stringify(r.error)}`);
    const g = await tab.evaluate('window.bare.greedy([151644, 872, 198, 9707, 151645, 198, 151644, 77091, 198], 8)');
    assertEq(g.ids.length, 8, 'tokens generated');
    await new Promise((ok) => setTimeout(ok, 5000)); // settled: the worker idle for a while (its GC runs when idle)
    const settled = mem.now();
    const peak = mem.stop();
    const src = r.stats.source || {};
    assertEq(src.kind, 'http', 'read from the server straight into the heap');
    console.log(`        cache 'none'${label}: tab ${(settled.tabPss / MB).toFixed(0)} MB PSS after load and generate ` +
      `(${(settled.tabPss / modelBytes).toFixed(2)}x the ${(modelBytes / MB).toFixed(0)} MB model), peak ${(peak.tabPss / MB).toFixed(0)} MB ` +
      `(${(peak.tabPss / modelBytes).toFixed(2)}x, sampled every 500 ms); load ${loadS.toFixed(1)} s, ${src.requests} requests, ` +
      `${(src.bytesFetched / MB).toFixed(0)} MB fetched`);
    assert(settled.tabPss > 0, 'the tab processes were found');
    return { modelBytes, src, settled, peak };
  } finally {
    mem.stop();
  }
}

tests.push({
  name: `big: ${MODEL} with cache 'none' from a bare page: read into the heap, the tab never holds the model twice`,
  needs: missing,
  fn: async () => {
    const s = await server();
    const b = await chromium(s.origin, { timeout: 600000 });
    try {
      const { page } = b;
      const tab = {
        userDataDir: b.userDataDir,
        evaluate: (expression) => page.evaluate(expression), // a string: evaluated in the page, its promise awaited
        async goto(url, ready) { await page.goto(url); await page.waitForFunction(ready); },
      };
      const { modelBytes, src, settled } = await noneLoad(tab, s, '');
      assert(src.bytesFetched < modelBytes * 1.1, `bytes fetched ${src.bytesFetched} for a model of ${modelBytes}`);
      // No Blob copy beside the heap any more (issue #17: before, every chunk stayed in memory, the tab held the
      // model twice and more): the settled tab asserted under 2x, the peak printed. Issue #17's target, 1.3x, is met
      // by a tab without DevTools (peak 1.22x, measured over a page-only CDP pipe: js/net/http-source.js collects
      // the dropped responses every 32 MiB) but cannot be asserted here: Playwright enables the Network domain in
      // the worker, whose agent keeps up to ~200 MB of XHR bodies in the renderer (here 1.31-1.32x settled,
      // 1.37-1.39x peak). The next test asserts it.
      assert(settled.tabPss < 2 * modelBytes, `tab after load ${settled.tabPss} B < 2 x ${modelBytes} B`);
    } finally {
      await b.close();
      await s.close();
    }
  },
});

tests.push({
  name: `big: ${MODEL} with cache 'none' in a tab without DevTools: peak and settled PSS < 1.3x the model (issue #17)`,
  needs: missing,
  fn: async () => {
    const s = await server();
    const b = await pipeChromium();
    try {
      const { modelBytes, settled, peak } = await noneLoad(b, s, ', no DevTools');
      assert(peak.tabPss < 1.3 * modelBytes, `tab peak ${peak.tabPss} B < 1.3 x ${modelBytes} B`);
      assert(settled.tabPss < 1.3 * modelBytes, `tab settled ${settled.tabPss} B < 1.3 x ${modelBytes} B`);
    } finally {
      await b.close();
      await s.close();
    }
  },
});

/** Samples the PSS (and RSS) of the renderer processes of the Chromium whose profile is userDataDir every 500 ms:
 *  the tab's memory (the page and its workers), as the browser's task manager shows it. stop() -> the peaks.
 *  The sampling runs in a worker thread: reading /proc blocks for 100-400 ms on a busy machine, which in the
 *  test's event loop stalled the model server (the cache-'none' load took 136 s instead of 42 s, measured). */
function tabSampler(userDataDir) {
  const shared = new Int32Array(new SharedArrayBuffer(8)); // peak PSS, peak RSS in KiB
  const w = new Worker(`
    const { workerData: { dir, shared } } = require('node:worker_threads');
    const fs = require('node:fs');
    ${sampleTab.toString()}
    ${atomicMax.toString()}
    setInterval(() => { const s = sampleTab(fs, dir); atomicMax(shared, 0, s.pss >> 10); atomicMax(shared, 1, s.rss >> 10); }, 500);
  `, { eval: true, workerData: { dir: userDataDir, shared } });
  w.unref();
  const peak = () => ({ tabPss: Atomics.load(shared, 0) * 1024, tabRss: Atomics.load(shared, 1) * 1024 });
  const take = (s) => { atomicMax(shared, 0, s.pss >> 10); atomicMax(shared, 1, s.rss >> 10); };
  let stopped = false;
  return { now() { const s = sampleTab(fs, userDataDir); take(s); return { tabPss: s.pss, tabRss: s.rss }; },
    stop() { if (!stopped) { stopped = true; w.terminate(); take(sampleTab(fs, userDataDir)); } return peak(); } };
}

/** a[i] = max(a[i], v), atomically (Atomics has no max). */
function atomicMax(a, i, v) { for (let o = Atomics.load(a, i); o < v; o = Atomics.load(a, i)) if (Atomics.compareExchange(a, i, o, v) === o) return; }

/** {pss, rss} in bytes of the renderers under the Chromium whose command line names userDataDir (self-contained:
 *  also run as the sampler thread's source). */
function sampleTab(fs, userDataDir) {
  const read = (f) => { try { return fs.readFileSync(f, 'utf8'); } catch { return ''; } };
  let pss = 0, rss = 0;
  const parent = new Map(), roots = [];
  for (const e of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    const st = read(`/proc/${e}/stat`);
    parent.set(+e, +st.slice(st.lastIndexOf(')') + 2).split(' ')[1]);
    const cmd = read(`/proc/${e}/cmdline`);
    if (cmd.includes(userDataDir) && !cmd.includes('--type=')) roots.push(+e);
  }
  const inTree = (pid) => { for (let p = pid, i = 0; p > 1 && i < 64; p = parent.get(p), i++) if (roots.includes(p)) return true; return false; };
  for (const pid of parent.keys()) {
    if (!inTree(pid) || !read(`/proc/${pid}/cmdline`).includes('--type=renderer')) continue;
    const sm = read(`/proc/${pid}/smaps_rollup`);
    pss += +((/^Pss:\s+(\d+)/m.exec(sm) || [0, 0])[1]) * 1024;
    rss += +((/^Rss:\s+(\d+)/m.exec(sm) || [0, 0])[1]) * 1024;
  }
  return { pss, rss };
}

/** Polls the runtime's stats until the derived-cache state satisfies done(state). */
async function waitDerived(page, done, timeoutMs) {
  const t0 = Date.now();
  for (;;) {
    const st = await page.evaluate(() => window.qwasmDemo.stats());
    const d = (st && st.derived_cache) || { state: 'missing' };
    if (done(d) || Date.now() - t0 > timeoutMs) return d;
    await new Promise((r) => setTimeout(r, 250));
  }
}

function fmt(rate) { return rate ? `${rate.toFixed(2)} tok/s` : '?'; }

/** Decode tok/s of the page's last reply, from the demo's status line. */
async function decodeRate(page) {
  const t = await page.evaluate(() => document.getElementById('stat-speed') && document.getElementById('stat-speed').textContent);
  const m = /([\d.]+) tok\/s/.exec(t || '');
  return m ? Number(m[1]) : null;
}

await runIfMain(import.meta.url, tests);
