#!/usr/bin/env node
// Browser benchmark: qwasm against onnxruntime-web, Transformers.js and wllama, in headless Chromium (or
// Firefox with --browser firefox, or WebKit with --browser webkit: WebKitGTK's MiniBrowser on Xvfb with
// Safari's settings, tools/test/webkit.mjs; e.g. --browser webkit --engines qwasm --no-native),
// on the same model files and the same 64-token prompt.
//
//   node tools/bench/bench_browser.mjs [--models 0.5b,1.5b] [--engines ort,tjs,wllama,qwasm,qwasm512,qwasmbare,qwasmnone]
//        [--runs 3] [--tokens 128] [--prompt-len 64] [--threads 2] [--check 16]
//        [--out build/bench-browser.json] [--md build/bench-browser.md] [--timeout-min 20]
//        [--chromium /usr/bin/chromium] [--browser chromium|firefox|webkit|webkitgtk] [--firefox /usr/bin/firefox-esr]
//        [--no-native] [--verbose] [--first-use] [--gens N] [--lookahead auto|on|off]
//        [--long [--lengths 512,2048,4096,8192] [--kv-cache fp16|int8|fp32] [--prompt-cache 2000 | --no-prompt-cache]
//         [--prefill-chunk N] [--profile]]   (--profile: per length, the ms of each op kind in that generation, from the core's counters)
//
// --long (issue #18, long clinical prompts): qwasm only by default (onnxruntime-web and Transformers.js need
// 4.5 GB for the 1.5B at 64 tokens, wllama prefills it at 2.8 tok/s: 49 min for 8192 tokens), one browser and
// one load per model, then for each prompt length a generation from a prompt of that many ids (a distinct first
// id each, so no KV prefix is shared): TTFT, prefill tok/s, decode tok/s at that position (--tokens, default 32),
// the tab's peak memory during that generation and the KV cache bytes per token from rt.stats(); then the prompt
// cache: a --prompt-cache-token prefix (+ 64 other tokens) generated with cachePrefix (cold: prefilled and saved to
// OPFS), the page closed, the model loaded again in a new page and the same prefix with other 64 tokens: TTFT
// after the reload against the cold one; then the native rows (tools/bench/bench_native.mjs --lengths: qwasm's CLI and onnxruntime-node) with the same ids.
//
// --models takes sizes (0.5b, 1.5b) or folder names under build/models/ (e.g. small-q4f16-op18-ext for a smoke test).
// Defaults: both models, every engine, 3 runs (medians reported), 128 greedy tokens (eos ignored).
// Models are tools/gen/gen_model.py's --size 0.5b / 1.5b q4f16 folders under build/models/ (generated when
// missing); wllama gets the GGUF tools/gen/onnx2gguf.py writes next to them (converted when missing/stale).
//
// What one run of one engine does (a fresh Chromium profile each time, so caches start empty):
//   1. cold load: open tools/bench/pages/<engine>.html, clear the HTTP cache (CDP) and the origin's storage,
//      load the model from the dev server (tools/serve/serve.mjs, COOP/COEP so wasm threads work);
//   2. close that page, open a new one in the same profile and load again: warm load (from the engine's
//      own cache: Cache Storage for Transformers.js and the ort page, OPFS for wllama, qwasm's own);
//   3. on that instance: generate maxTokens greedy tokens from the prompt ids: time to first token
//      (TTFT), prefill tok/s = prompt / TTFT, decode tok/s = (tokens - 1) / (last - first token time).
//   Peak memory = max over the whole run of the sum of RSS of every process of the launched browser
//   (its process tree, read from /proc every 100 ms), and of the sum of their PSS and of the tab's processes' PSS (every 2 s).
// Engines: ort = onnxruntime-web 1.30 wasm EP (past-KV greedy loop, like optimum), tjs = Transformers.js
// 4.3.1 (wasm, q4f16, local model path), wllama = wllama 3.8.1 (GGUF; greedy over the tokens that are whole
// UTF-8 text, since invalid UTF-8 output aborts it: see tools/bench/pages/wllama.js), qwasm = js/page/qwasm.js, qwasm512 =
// qwasm with memoryCapMB 512, qwasmbare = a bare outside page calling Qwasm.load({ model }) with every default
// (tools/bench/pages/bare.js: what a user gets), qwasmnone = the same page with cache 'none', qwasmsample = qwasm sampling
// as Qwen2.5-Instruct's generation_config says (not in the default engine list; its tokens are not compared),
// qwasmspec = qwasm with speculative: 'auto' (not in the default list; the other qwasm rows decode plainly).
// A failure (not available, out of memory, timeout) is a table cell, not fatal.
// --first-use: also generate on the cold page, right after the first load in a new profile (what a first-time user
// gets: no compiled-code cache, the derived data just saved); --gens N: N generations on the warm page, each one's
// decode tok/s reported (the first is the table's), to see whether the first is slower (V8 tier-up).
// --prompt-ids-file FILE takes the prompt ids from a JSON file (tools/gen/spec_prompt.mjs's copy-heavy prompt).
// The first --check greedy tokens of each engine are compared with onnxruntime-node (tools/ref/ort_ref.mjs).
// Then, unless --no-native, the native rows of the same run: tools/bench/bench_native.mjs (qwasm's CLI,
// onnxruntime-node 1.30 and the CLI under a 512 MB cap) with the same prompt ids, threads, tokens and runs.
// Output: markdown table on stdout (+ --md file) and JSON (--out) with medians, every run, and the
// qwasm/peer ratio of each figure (times and memory: < 1 is better for qwasm; tok/s: > 1 is better).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { launchBrowser } from '../test/browsers.mjs';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, '..', '..');
const PY = fs.existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';

const ENGINES = {
  ort: { label: 'onnxruntime-web 1.30', page: 'ort' },
  tjs: { label: 'Transformers.js 4.3.1', page: 'tjs' },
  wllama: { label: 'wllama 3.8.1', page: 'wllama' },
  qwasm: { label: 'qwasm', page: 'qwasm' },
  qwasm512: { label: 'qwasm (512 MB cap)', page: 'qwasm', memoryCapMB: 512 },
  // a bare outside page: Qwasm.load({ model }) with every default (tools/bench/pages/bare.js), and with cache 'none'
  qwasmbare: { label: 'qwasm, bare page, defaults', page: 'bare' },
  qwasmnone: { label: "qwasm, bare page, cache 'none'", page: 'bare', cache: 'none' },
  // no persistent cache (files read from the server into the heap, nothing stored; warm load = a second download):
  // for WebKit's ephemeral WebDriver session, whose IndexedDB quota (1000 MiB) refuses the 1.5B (not in the default list)
  qwasmnocache: { label: "qwasm (cache: 'none')", page: 'qwasm', cache: 'none' },
  // the same with the tied embedding read by rows from the cached chunks ('auto' does that only on OPFS / Node)
  qwasmnocacheemb: { label: "qwasm (cache: 'none', embeddingOnDemand)", page: 'qwasm', cache: 'none', embeddingOnDemand: true },
  // the tied embedding resident (OPFS's default reads its rows from the cache file on demand)
  qwasmres: { label: 'qwasm (embedding resident)', page: 'qwasm', embeddingOnDemand: false },
  // Qwen2.5-Instruct's generation_config.json sampling instead of greedy: the int8 lm_head then keeps the top 64
  // logits exact (a repetition penalty can promote any of them), i.e. rescores more rows than greedy's top 1
  qwasmsample: { label: 'qwasm (sampling)', page: 'qwasm', sampling: { temperature: 0.7, topK: 20, topP: 0.8, repetitionPenalty: 1.05, seed: 1 } },
  // prompt-lookup speculative decoding as the runtime's default ('auto'); the qwasm rows above decode plainly
  qwasmspec: { label: 'qwasm (speculative)', page: 'qwasm', sampling: { greedy: true, speculative: 'auto' } },
};
const PROMPT_TEXT =
  'The history of computing is a story of abstraction. Early machines were programmed by rewiring ' +
  'panels and flipping switches; later, stored programs, assemblers and compilers let people describe ' +
  'what they wanted rather than how the hardware should do it. Today a web browser can download a ' +
  'language model and run it locally, one token at a time, inside a sandboxed page. Explain how that works.';

function parseArgs(argv) {
  const a = {
    models: ['0.5b', '1.5b'], engines: Object.keys(ENGINES).filter((e) => !['qwasmsample', 'qwasmspec', 'qwasmnocache', 'qwasmnocacheemb', 'qwasmres'].includes(e)), runs: 3, tokens: 128, promptLen: 64, threads: 2,
    check: 16, out: path.join(REPO, 'build/bench-browser.json'), md: path.join(REPO, 'build/bench-browser.md'),
    timeoutMin: 20, chromium: '/usr/bin/chromium', firefox: '/usr/bin/firefox-esr', browser: 'chromium', verbose: false, native: true,
    firstUse: false, gens: 1, long: false, lengths: [512, 2048, 4096, 8192], kvCache: null, prefillChunk: null, promptCache: 2000, profile: false,
  };
  let setEngines = false, setModels = false, setTokens = false;
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i], v = () => argv[++i];
    if (k === '--models') { a.models = v().split(',').filter(Boolean); setModels = true; }
    else if (k === '--engines') { a.engines = v().split(',').filter(Boolean); setEngines = true; }
    else if (k === '--long') a.long = true;
    else if (k === '--first-use') a.firstUse = true;
    else if (k === '--lookahead') a.lookahead = v(); // qwasm's load option (default 'auto')
    else if (k === '--gens') a.gens = Math.max(1, +v());
    else if (k === '--lengths') a.lengths = v().split(',').filter(Boolean).map(Number);
    else if (k === '--kv-cache') a.kvCache = v();
    else if (k === '--prefill-chunk') a.prefillChunk = +v();
    else if (k === '--profile') a.profile = true;
    else if (k === '--prompt-cache') a.promptCache = +v();
    else if (k === '--no-prompt-cache') a.promptCache = 0;
    else if (k === '--runs') a.runs = +v();
    else if (k === '--tokens') { a.tokens = +v(); setTokens = true; }
    else if (k === '--prompt-len') a.promptLen = +v();
    else if (k === '--threads') a.threads = +v();
    else if (k === '--check') a.check = +v();
    else if (k === '--out') a.out = path.resolve(v());
    else if (k === '--md') a.md = path.resolve(v());
    else if (k === '--timeout-min') a.timeoutMin = +v();
    else if (k === '--chromium') a.chromium = v();
    else if (k === '--browser') a.browser = v();
    else if (k === '--firefox') a.firefox = v();
    else if (k === '--verbose') a.verbose = true;
    else if (k === '--no-native') a.native = false;
    else if (k === '--prompt-ids-file') a.promptFile = path.resolve(v()); // JSON [ids] or {ids} (tools/gen/spec_prompt.mjs)
    else if (k === '-h' || k === '--help') {
      console.log(fs.readFileSync(fileURLToPath(import.meta.url), 'utf8').split('\n').filter((l) => l.startsWith('//')).map((l) => l.slice(3)).join('\n'));
      process.exit(0);
    } else throw new Error('unknown argument ' + k);
  }
  for (const e of a.engines) if (!ENGINES[e]) throw new Error('unknown engine ' + e);
  if (a.long) {
    if (!argv.includes('--out')) a.out = path.join(REPO, 'build/bench-long.json');
    if (!argv.includes('--md')) a.md = path.join(REPO, 'build/bench-long.md');
    if (!setEngines) a.engines = ['qwasm'];
    if (!setModels) a.models = ['1.5b'];
    if (!setTokens) a.tokens = 32;
  }
  return a;
}

const log = (...m) => console.error('[bench]', ...m);

// ---------------------------------------------------------------- models
function modelDir(size, wantGguf = true) {
  const root = path.join(REPO, 'build/models');
  const pick = () => (fs.existsSync(root) ? fs.readdirSync(root) : [])
    .filter((d) => (d === size || d.startsWith(`qwen2.5-${size}-q4f16`)) && fs.existsSync(path.join(root, d, 'config.json')))
    .sort()[0];
  let d = pick();
  if (!d) {
    log(`generating the ${size} model (tools/gen/gen_model.py --size ${size})`);
    const r = spawnSync(PY, [path.join(REPO, 'tools/gen/gen_model.py'), '--size', size], { stdio: 'inherit' });
    if (r.status !== 0) throw new Error('gen_model failed');
    d = pick();
  }
  const dir = path.join(root, d);
  const cfg = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
  const onnx = cfg.qwasm_test_model?.onnx || 'onnx/model_q4f16.onnx';
  const ext = fs.existsSync(path.join(dir, onnx + '_data')) ? path.basename(onnx) + '_data' : null;
  const gguf = path.join(dir, 'model-q4_0.gguf');
  const src = path.join(dir, ext ? onnx + '_data' : onnx);
  if (wantGguf && (!fs.existsSync(gguf) || fs.statSync(gguf).mtimeMs < fs.statSync(src).mtimeMs)) {
    log(`converting ${d} to GGUF (tools/gen/onnx2gguf.py)`);
    const r = spawnSync(PY, [path.join(REPO, 'tools/gen/onnx2gguf.py'), dir, '-o', gguf], { stdio: 'inherit' });
    if (r.status !== 0) throw new Error('onnx2gguf failed');
  }
  const bytes = (f) => (fs.existsSync(f) ? fs.statSync(f).size : 0);
  return {
    size, name: d, dir, rel: path.relative(REPO, dir), cfg, onnx, ext, gguf: path.relative(REPO, gguf),
    onnxBytes: bytes(path.join(dir, onnx)) + (ext ? bytes(path.join(dir, onnx + '_data')) : 0), ggufBytes: bytes(gguf),
  };
}

async function promptIds(m, n) {
  try {
    const T = await import('@huggingface/transformers');
    T.env.allowRemoteModels = false;
    T.env.localModelPath = path.dirname(m.dir) + '/';
    const tok = await T.AutoTokenizer.from_pretrained(m.name);
    const ids = Array.from(tok.encode(PROMPT_TEXT + ' ' + PROMPT_TEXT), Number);
    if (ids.length < n) throw new Error('prompt too short');
    // wllama 3 only takes a text prompt: the text of exactly these ids (checked to re-encode to them)
    const text = tok.decode(ids.slice(0, n));
    const back = Array.from(tok.encode(text), Number);
    const same = back.length === n && back.every((x, i) => x === ids[i]);
    if (!same) log('warning: the decoded prompt text does not re-encode to the same ids (wllama may see other tokens)');
    return { ids: ids.slice(0, n), text, textRoundTrips: same, decode: (t) => tok.decode(t) };
  } catch (e) {
    log('tokenizer unavailable (' + e.message + '): fixed prompt ids');
    return { ids: Array.from({ length: n }, (_, i) => 1000 + ((i * 7919) % 50000)), text: null, textRoundTrips: false };
  }
}

function ortReference(m, ids, steps, threads) {
  const out = path.join(REPO, 'build', `bench-ref-${m.name}.json`);
  const key = JSON.stringify({ ids, steps, onnx: m.onnx });
  try {
    const j = JSON.parse(fs.readFileSync(out, 'utf8'));
    if (j.benchKey === key && fs.statSync(out).mtimeMs > fs.statSync(path.join(m.dir, m.onnx)).mtimeMs) return j.tokens;
  } catch {}
  log(`onnxruntime-node reference: ${steps} greedy tokens on ${m.name}`);
  const r = spawnSync(process.execPath, [path.join(REPO, 'tools/ref/ort_ref.mjs'), m.dir, '--prompt-ids', ids.join(','),
    '--steps', String(steps), '--onnx', m.onnx, '--out', out, '--threads', String(threads)], { stdio: ['ignore', 'ignore', 'inherit'] });
  if (r.status !== 0) { log('ort_ref failed'); return null; }
  const j = JSON.parse(fs.readFileSync(out, 'utf8'));
  const slim = { benchKey: key, ort_version: j.ort_version, prompt_ids: j.prompt_ids, tokens: j.tokens };
  fs.writeFileSync(out, JSON.stringify(slim));
  return j.tokens;
}

// ---------------------------------------------------------------- memory sampling from /proc
function procTable() {
  const t = new Map();
  for (const e of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const st = fs.readFileSync(`/proc/${e}/stat`, 'utf8');
      const r = st.slice(st.lastIndexOf(')') + 2).split(' ');
      t.set(+e, +r[1]);
    } catch {}
  }
  return t;
}
function findBrowserRoot(userDataDir) {
  const me = process.pid;
  const cands = [];
  for (const [pid, ppid] of procTable()) {
    try {
      const cmd = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      if (cmd.includes(userDataDir) && !cmd.includes('--type=')) cands.push({ pid, ppid });
    } catch {}
  }
  const direct = cands.find((c) => c.ppid === me);
  return (direct || cands.sort((a, b) => a.pid - b.pid)[0])?.pid ?? null;
}
const PAGE = 4096;
const mbs = (b) => Math.round(b / 1048576);
// The browser's processes: the summed RSS counts pages shared between them (libraries, shared memory) once per
// process; the summed PSS (proportional set size, /proc/PID/smaps_rollup) counts each page once in total.
// Idle headless Chromium here: 923 MB summed RSS, 385 MB summed PSS. The tab's share: the PSS of the processes
// that host pages and their workers (Chromium renderers, Firefox 'tab' content processes), what a browser's task
// manager shows for a tab; the browser, GPU, network and utility processes are the rest.
// (Firefox's fork server leaves a content process's arguments as one string: its type is the last word)
// WebKit: the tab is its WebKitWebProcess; WebKitNetworkProcess (downloads, IndexedDB, OPFS) is counted apart
// (netPss), since MiniBrowser's automation sessions keep website data in memory where Safari writes it to disk.
const isTabProcess = (cmd) => cmd.includes('--type=renderer') || (cmd.includes('-contentproc') && /[\0 ]tab\0*$/.test(cmd)) ||
  /WebKitWebProcess\0/.test(cmd);
const isNetProcess = (cmd) => /WebKitNetworkProcess\0/.test(cmd);
function treeMem(root, withPss) {
  const t = procTable();
  const kids = new Map();
  for (const [pid, ppid] of t) { if (!kids.has(ppid)) kids.set(ppid, []); kids.get(ppid).push(pid); }
  let sum = 0, pss = 0, tabPss = 0, netPss = 0, maxTabPss = 0, n = 0;
  const stack = [root];
  while (stack.length) {
    const p = stack.pop();
    try { sum += +fs.readFileSync(`/proc/${p}/statm`, 'utf8').split(' ')[1] * PAGE; n++; } catch {}
    if (withPss) {
      try {
        const v = +(fs.readFileSync(`/proc/${p}/smaps_rollup`, 'utf8').match(/^Pss:\s+(\d+)/m) || [0, 0])[1] * 1024;
        pss += v;
        const cmd = fs.readFileSync(`/proc/${p}/cmdline`, 'utf8');
        if (isTabProcess(cmd)) { tabPss += v; maxTabPss = Math.max(maxTabPss, v); }
        if (isNetProcess(cmd)) netPss += v;
      } catch {}
    }
    for (const c of kids.get(p) || []) stack.push(c);
  }
  return { sum, pss, tabPss, netPss, maxTabPss, n };
}
class MemSampler {
  constructor(root) {
    this.root = root; this.phase = 'start'; this.peak = {}; this.peakPss = {}; this.peakTabPss = {}; this.peakNetPss = {}; this.peakOneTabPss = {}; this.maxProcs = 0; this.ticks = 0;
    this.timer = setInterval(() => this.sample(), 100);
  }
  sample(force = false) {
    if (!this.root) return;
    // PSS walks the page tables of every process (tens of ms for a renderer holding GBs, CPU taken from the
    // engine measured on a 2-core machine): every 2 s only, so its peak is a sampled lower bound
    const withPss = force || ++this.ticks % 20 === 0;
    const { sum, pss, tabPss, netPss, maxTabPss, n } = treeMem(this.root, withPss);
    this.maxProcs = Math.max(this.maxProcs, n);
    this.peak[this.phase] = Math.max(this.peak[this.phase] || 0, sum);
    if (withPss) this.peakPss[this.phase] = Math.max(this.peakPss[this.phase] || 0, pss);
    if (withPss) this.peakTabPss[this.phase] = Math.max(this.peakTabPss[this.phase] || 0, tabPss);
    if (withPss && netPss) this.peakNetPss[this.phase] = Math.max(this.peakNetPss[this.phase] || 0, netPss);
    // the largest single tab process: what a per-process limit (iOS kills a WebContent process near 1.5 GB) sees
    if (withPss) this.peakOneTabPss[this.phase] = Math.max(this.peakOneTabPss[this.phase] || 0, maxTabPss);
  }
  stop() { clearInterval(this.timer); this.sample(true); }
  get overall() { return Math.max(0, ...Object.values(this.peak)); }
  get overallPss() { return Math.max(0, ...Object.values(this.peakPss)); }
  get overallTabPss() { return Math.max(0, ...Object.values(this.peakTabPss)); }
}

// ---------------------------------------------------------------- one engine run
const withTimeout = (p, ms, what) => Promise.race([p, new Promise((_, rej) =>
  setTimeout(() => rej(new Error(`timeout after ${Math.round(ms / 1000)} s in ${what}`)), ms).unref())]);
/** A load under withTimeout; a timeout says where the load stopped (the page's last progress event, when it has one). */
async function loadIn(page, opts, ms, what) {
  try { return await withTimeout(page.evaluate((o) => window.benchEngine.load(o), opts), ms, what); } catch (e) {
    const last = await withTimeout(page.evaluate(() => window.__benchLastProgress || null), 5000, 'last progress').catch(() => null);
    if (last) e.message += `; last progress ${JSON.stringify(last)}`;
    throw e;
  }
}

async function openPage(ctx, url, info) {
  const page = await ctx.newPage();
  page.on('pageerror', (e) => info.errors.push('pageerror: ' + e.message));
  page.on('crash', () => info.errors.push('renderer crashed (out of memory?)'));
  page.on('console', (m) => { if (m.type() === 'error' || info.verbose) info.console.push(`${m.type()}: ${m.text()}`.slice(0, 500)); });
  await page.goto(url);
  for (const t0 = Date.now(); !(await page.evaluate(() => !!(window.benchReady || window.benchLoadError)));) {
    if (Date.now() - t0 > 60000) throw new Error('page not ready after 60 s');
    await new Promise((r) => setTimeout(r, 200));
  }
  const err = await page.evaluate(() => window.benchLoadError || null);
  if (err) throw new Error('page failed: ' + err);
  return page;
}

async function runEngine(a, srvUrl, m, prompt, engKey) {
  const ids = prompt.ids;
  const eng = ENGINES[engKey];
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qwbench-'));
  const res = { engine: engKey, ok: false, errors: [], console: [], verbose: a.verbose };
  let ctx = null, mem = null;
  const T = a.timeoutMin * 60000;
  try {
    ctx = await launchBrowser(a.browser, dir, { chromium: a.chromium, firefox: a.firefox });
    mem = new MemSampler(findBrowserRoot(dir));
    if (!mem.root) res.errors.push('browser pid not found: no memory figures');
    const url = `${srvUrl}tools/bench/pages/${eng.page}.html`;
    const loadOpts = {
      model: '/' + m.rel + '/', modelName: m.name, modelsPath: '/build/models/', onnx: m.onnx,
      external: m.ext, gguf: '/' + m.gguf, threads: a.threads, memoryCapMB: eng.memoryCapMB, profile: engKey === 'qwasm',
      cache: eng.cache, embeddingOnDemand: eng.embeddingOnDemand, lookahead: a.lookahead,
    };
    // one generation of the prompt on page (extra: generate options); what names it in a timeout
    const generate = (page, what, extra = {}) => withTimeout(page.evaluate((o) => window.benchEngine.generate(o),
      { promptIds: ids, promptText: prompt.text, maxTokens: a.tokens, sampling: eng.sampling, ...extra }), T, what);
    // 1. cold
    mem.phase = 'cold';
    let page = await openPage(ctx, url, res);
    if (ctx.newCDPSession) await (await ctx.newCDPSession(page)).send('Network.clearBrowserCache'); // Firefox: the profile is new
    res.cleared = await page.evaluate(async () => (await import('./common.js')).clearOriginStorage());
    const cold = await loadIn(page, loadOpts, T, 'cold load');
    res.coldLoadMs = cold.loadMs; res.coldInfo = cold;
    res.storage = await page.evaluate(async () => (await import('./common.js')).storageEstimate());
    if (a.firstUse) {
      const g0 = await generate(page, 'first-use generate', { profileSplit: false });
      res.coldGen = { ttftMs: g0.ttftMs, prefillTokS: g0.prefillTokS, decodeTokS: g0.decodeTokS, firstStepsMs: g0.firstStepsMs };
      log(`  ${engKey} first use (cold page): prefill ${g0.prefillTokS?.toFixed(1)} decode ${g0.decodeTokS?.toFixed(2)} tok/s`);
    }
    try { await withTimeout(page.evaluate(() => window.benchEngine.unload()), 60000, 'unload'); } catch {}
    await page.close();
    await new Promise((r) => setTimeout(r, 1000));
    // 2. warm
    mem.phase = 'warm';
    page = await openPage(ctx, url, res);
    const warm = await loadIn(page, loadOpts, T, 'warm load');
    res.warmLoadMs = warm.loadMs; res.warmInfo = warm;
    // 3. generate
    mem.phase = 'generate';
    const g = await generate(page, 'generate');
    Object.assign(res, { ttftMs: g.ttftMs, prefillTokS: g.prefillTokS, decodeTokS: g.decodeTokS, nGenerated: g.nGenerated, tokens: g.tokens, text: g.text,
      profile: g.profile, firstStepsMs: g.firstStepsMs, coreStepsMs: g.coreStepsMs, genExtra: { timings: g.timings, usage: g.usage, stats: g.stats, chunks: g.chunks, promptTokenMismatch: g.promptTokenMismatch, bannedTokens: g.bannedTokens } });
    if (g.promptTokenMismatch != null) res.errors.push(`engine saw ${g.promptTokenMismatch} prompt tokens`);
    if (g.nGenerated !== a.tokens) res.errors.push(`generated ${g.nGenerated} tokens, not ${a.tokens}`);
    res.gens = [g.decodeTokS];
    for (let k = 1; k < a.gens; k++) {
      res.gens.push((await generate(page, 'generate', { profileSplit: false })).decodeTokS);
    }
    if (a.gens > 1) log(`  ${engKey} decode tok/s of generations 1..${a.gens}: ${res.gens.map((x) => x?.toFixed(2)).join(', ')}`);
    res.ok = true;
  } catch (e) {
    res.error = String(e && e.message || e).split('\n')[0].slice(0, 300);
  } finally {
    if (mem) { mem.stop(); res.peakRssBytes = mem.overall || null; res.peakPssBytes = mem.overallPss || null; res.peakTabPssBytes = mem.overallTabPss || null; res.peakByPhase = mem.peak; res.peakPssByPhase = mem.peakPss; res.peakTabPssByPhase = mem.peakTabPss; res.peakNetPssByPhase = mem.peakNetPss; res.peakOneTabPssByPhase = mem.peakOneTabPss; res.browserProcs = mem.maxProcs; }
    if (ctx) await withTimeout(ctx.close(), 30000, 'close').catch(() => {});
    fs.rmSync(dir, { recursive: true, force: true });
  }
  delete res.verbose;
  return res;
}

// ---------------------------------------------------------------- --long: one load, one generation per length
const longIds = (n, li) => Array.from({ length: n }, (_, i) => (i ? 1000 + ((i * 7919) % 50000) : 1000 + li));
// wllama takes text only: n ids of real text (the bench prompt repeated behind a numbered heading, distinct per
// length) and their text, checked to re-encode to the same ids
async function longTextPrompt(m, n, li) {
  const T = await import('@huggingface/transformers');
  T.env.allowRemoteModels = false;
  T.env.localModelPath = path.dirname(m.dir) + '/';
  const tok = await T.AutoTokenizer.from_pretrained(m.name);
  const one = Array.from(tok.encode(PROMPT_TEXT + ' '), Number).length;
  const text = `Record ${li + 1}.\n` + `${PROMPT_TEXT} `.repeat(Math.ceil(n / one) + 2);
  const ids = Array.from(tok.encode(text), Number).slice(0, n);
  const back = Array.from(tok.encode(tok.decode(ids)), Number);
  return { ids, text: tok.decode(ids), roundTrips: back.length === n && back.every((x, i) => x === ids[i]) };
}

async function runLong(a, srvUrl, m, engKey) {
  const eng = ENGINES[engKey];
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qwbench-'));
  const res = { engine: engKey, lengths: [], errors: [], console: [], verbose: a.verbose };
  let ctx = null, mem = null;
  const T = a.timeoutMin * 60000;
  try {
    ctx = await launchBrowser(a.browser, dir, { chromium: a.chromium, firefox: a.firefox });
    mem = new MemSampler(findBrowserRoot(dir));
    const url = `${srvUrl}tools/bench/pages/${eng.page}.html`;
    const maxLen = Math.max(...a.lengths);
    const loadOpts = { model: '/' + m.rel + '/', modelName: m.name, modelsPath: '/build/models/', onnx: m.onnx, external: m.ext,
      gguf: '/' + m.gguf, threads: a.threads, memoryCapMB: eng.memoryCapMB, nCtx: maxLen + a.tokens + 8,
      maxContext: maxLen + a.tokens + 8, kvCache: a.kvCache || undefined, profile: a.profile };
    mem.phase = 'load';
    let page = await openPage(ctx, url, res), ld;
    try { ld = await loadIn(page, loadOpts, T, 'load'); } catch (e) {
      // Chromium's OPFS was seen twice not answering one call for the data file on a fresh profile (cause unknown;
      // the load fails with IO naming the file): one more load on a new page, which finds what was cached
      if (!/OPFS storage did not answer/.test(e.message)) throw e;
      res.errors.push(`first load failed, loaded again on a new page: ${e.message.slice(0, 300)}`);
      await page.close().catch(() => {});
      page = await openPage(ctx, url, res);
      ld = await loadIn(page, loadOpts, T, 'load (second)');
    }
    res.loadMs = ld.loadMs;
    if (ld.kernels) res.kernels = ld.kernels; // the 4-bit kernel row the load's timing chose
    let profBefore = {};
    for (const [li, L] of a.lengths.entries()) {
      mem.phase = `gen${L}`;
      mem.sample(true);
      const row = { promptLen: L };
      try {
        const tp = engKey === 'wllama' ? await longTextPrompt(m, L, li) : null;
        if (tp && !tp.roundTrips) log(`  warning: the ${L}-token text does not re-encode to the same ids`);
        const g = await withTimeout(page.evaluate((o) => window.benchEngine.generate(o),
          { promptIds: tp ? tp.ids : longIds(L, li), promptText: tp ? tp.text : undefined, maxTokens: a.tokens, profileSplit: false, prefillChunk: a.prefillChunk || undefined }), T, `generate ${L}`);
        Object.assign(row, { ok: true, ttftMs: g.ttftMs, prefillTokS: g.prefillTokS, decodeTokS: g.decodeTokS, nGenerated: g.nGenerated,
          kv: g.stats && g.stats.kv, tokensHead: (g.tokens || []).slice(0, 8) });
        if (a.profile && g.profileTotal) {
          // the counters add up since load: this generation's share is the difference
          const now = Object.fromEntries(Object.entries(g.profileTotal).map(([k, v]) => [k, v.ms]));
          row.opMs = Object.fromEntries(Object.keys(now).map((k) => [k, Math.round((now[k] - (profBefore[k] || 0)) * 10) / 10]));
          profBefore = now;
          const top = Object.entries(row.opMs).sort((x, y) => y[1] - x[1]).slice(0, 5);
          log(`    ops (ms, prefill + ${a.tokens} tokens): ${top.map(([k, v]) => `${k} ${v}`).join(', ')}`);
        }
      } catch (e) { row.ok = false; row.error = String(e && e.message || e).split('\n')[0].slice(0, 300); }
      mem.sample(true);
      row.peakRssBytes = mem.peak[mem.phase] || null; row.peakPssBytes = mem.peakPss[mem.phase] || null;
      row.peakTabPssBytes = mem.peakTabPss[mem.phase] || null;
      log(`  ${engKey} ${L}: ${row.ok ? `ttft ${(row.ttftMs / 1000).toFixed(2)} s prefill ${row.prefillTokS.toFixed(1)} decode ${row.decodeTokS?.toFixed(2)} tok/s` : 'FAILED ' + row.error}` +
        ` tab PSS ${row.peakTabPssBytes ? mbs(row.peakTabPssBytes) + ' MB' : '?'}`);
      res.lengths.push(row);
      if (!row.ok) break;
    }
    if (a.promptCache && engKey.startsWith('qwasm')) {
      mem.phase = 'promptcache';
      const pre = longIds(a.promptCache, 90), tail = (k) => Array.from({ length: 64 }, (_, i) => 2000 + k * 100 + i);
      const g1 = await withTimeout(page.evaluate((o) => window.benchEngine.generate(o), { promptIds: [...pre, ...tail(1)], maxTokens: 4, cachePrefix: a.promptCache }), T, 'prompt cache, cold');
      await page.evaluate(() => window.benchEngine.unload()).catch(() => {});
      await page.close();
      const p2 = await openPage(ctx, url, res);
      await loadIn(p2, loadOpts, T, 'reload');
      const g2 = await withTimeout(p2.evaluate((o) => window.benchEngine.generate(o), { promptIds: [...pre, ...tail(2)], maxTokens: 4, cachePrefix: a.promptCache }), T, 'prompt cache, after reload');
      res.promptCache = { prefix: a.promptCache, coldTtftMs: g1.ttftMs, reloadTtftMs: g2.ttftMs, ratio: g2.ttftMs / g1.ttftMs,
        coldState: g1.stats && g1.stats.prompt_cache, reloadState: g2.stats && g2.stats.prompt_cache };
      log(`  prompt cache ${a.promptCache} tokens: cold TTFT ${(g1.ttftMs / 1000).toFixed(2)} s, after a reload ${(g2.ttftMs / 1000).toFixed(2)} s` +
        ` (${(100 * g2.ttftMs / g1.ttftMs).toFixed(1)} %, ${res.promptCache.reloadState && res.promptCache.reloadState.state})`);
    }
  } catch (e) {
    res.error = String(e && e.message || e).split('\n')[0].slice(0, 300);
  } finally {
    if (mem) mem.stop();
    if (ctx) await withTimeout(ctx.close(), 30000, 'close').catch(() => {});
    fs.rmSync(dir, { recursive: true, force: true });
  }
  delete res.verbose;
  return res;
}

function longTable(out, a) {
  const lines = [];
  const bname = a.browser === 'firefox' ? 'Firefox' : 'Chromium';
  for (const m of out.models) {
    lines.push(`\n### ${m.model}, long prompts (${m.name}; ${a.tokens} greedy tokens after the prompt, ${a.threads} threads, one run each` +
      `${a.kvCache ? `, KV cache ${a.kvCache}` : ''})\n`);
    lines.push('| engine | prompt | TTFT (s) | prefill tok/s | decode tok/s | peak RSS (MB) | peak PSS (MB) | tab PSS (MB) | KV bytes/token | notes |');
    lines.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|---|');
    const f = (v, d) => (v == null ? '–' : v.toFixed(d));
    for (const r of m.long) {
      for (const x of r.lengths) {
        lines.push(`| ${ENGINES[r.engine].label} (${bname}) | ${x.promptLen} | ${x.ok ? f(x.ttftMs / 1000, 2) : 'failed'} | ${x.ok ? f(x.prefillTokS, 1) : '–'} | ` +
          `${x.ok ? f(x.decodeTokS, 2) : '–'} | ${x.peakRssBytes ? mbs(x.peakRssBytes) : '–'} | ${x.peakPssBytes ? mbs(x.peakPssBytes) : '–'} | ` +
          `${x.peakTabPssBytes ? mbs(x.peakTabPssBytes) : '–'} | ${x.kv && x.kv.bytes_per_token ? x.kv.bytes_per_token : '–'} | ${x.ok ? '' : (x.error || '').slice(0, 120)} |`);
      }
      if (r.error) lines.push(`| ${ENGINES[r.engine].label} (${bname}) | – | failed | | | | | | | ${r.error.slice(0, 160)} |`);
    }
    for (const r of m.long) if (r.promptCache) {
      const p = r.promptCache;
      lines.push(`\nPrompt cache (${ENGINES[r.engine].label}, ${bname}): a ${p.prefix}-token prefix + 64 tokens, TTFT cold ${(p.coldTtftMs / 1000).toFixed(2)} s` +
        ` (prefilled, ${p.coldState ? p.coldState.state : '?'}), after a reload ${(p.reloadTtftMs / 1000).toFixed(2)} s (${p.reloadState ? p.reloadState.state : '?'}` +
        `${p.reloadState && p.reloadState.loadMs ? `, read in ${Math.round(p.reloadState.loadMs)} ms` : ''}): ${(100 * p.ratio).toFixed(1)} % of cold.`);
    }
    for (const r of Array.isArray(m.native) ? m.native : []) {
      const name = r.engine === 'qwasm' ? 'qwasm native (CLI)' : r.engine === 'onnxruntime-node' ? 'onnxruntime-node 1.30 (native, chunks of 512)' : r.engine;
      if (r.error) { lines.push(`| ${name} | ${r.prompt_len ?? '–'} | failed | | | | | | | |`); continue; }
      lines.push(`| ${name} | ${r.prompt_len} | ${f(r.ttft_s, 2)} | ${f(r.prefill_tok_s, 1)} | ${f(r.decode_tok_s, 2)} | ${Math.round(r.peak_rss_mb)} (process) | – | – | – | |`);
    }
    if (m.native && m.native.error) lines.push(`\nnative rows failed: ${m.native.error}`);
    for (const r of m.nativePromptCache || [])
      lines.push(`\nPrompt cache (qwasm native CLI, --prompt-cache FILE): a ${r.prefix}-token prefix + 64 tokens, TTFT cold ${r.cold_ttft_s.toFixed(2)} s, ` +
        `in a new process ${r.reload_ttft_s.toFixed(2)} s (${r.reused} positions from the file): ${(100 * r.ratio).toFixed(1)} % of cold.`);
  }
  return lines.join('\n');
}

// ---------------------------------------------------------------- aggregation + report
const FIGS = [
  ['coldLoadMs', 'cold load (s)', (v) => (v / 1000).toFixed(1), 'lower'],
  ['warmLoadMs', 'warm load (s)', (v) => (v / 1000).toFixed(1), 'lower'],
  ['ttftMs', 'TTFT (s)', (v) => (v / 1000).toFixed(2), 'lower'],
  ['prefillTokS', 'prefill tok/s', (v) => v.toFixed(1), 'higher'],
  ['decodeTokS', 'decode tok/s', (v) => v.toFixed(2), 'higher'],
  ['peakRssBytes', 'peak RSS (MB)', (v) => String(Math.round(v / 1048576)), 'lower'],
  ['peakPssBytes', 'peak PSS (MB)', (v) => String(Math.round(v / 1048576)), 'lower'],
  ['peakTabPssBytes', 'tab PSS (MB)', (v) => String(Math.round(v / 1048576)), 'lower'],
];
function median(xs) {
  const v = xs.filter((x) => typeof x === 'number' && isFinite(x)).sort((p, q) => p - q);
  if (!v.length) return null;
  return v.length % 2 ? v[(v.length - 1) >> 1] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2;
}
function matchCount(tokens, ref, n, text, decode) {
  if (!ref) return null;
  if (!tokens && typeof text === 'string' && decode) {
    // text-only engine (wllama): how many leading reference tokens its text reproduces
    let prefix = 0;
    for (let k = 1; k <= n; k++) { if (text.startsWith(decode(ref.slice(0, k)))) prefix = k; else break; }
    return { same: null, prefix, n, byText: true };
  }
  if (!tokens) return null;
  let same = 0, prefix = 0, inPrefix = true;
  for (let i = 0; i < n; i++) {
    if (tokens[i] === ref[i]) { same++; if (inPrefix) prefix++; } else inPrefix = false;
  }
  return { same, prefix, n };
}
function aggregate(runs, ref, n, decode) {
  const ok = runs.filter((r) => r.ok);
  const agg = { runs: runs.length, ok: ok.length };
  for (const [k] of FIGS) agg[k] = median((k === 'peakRssBytes' || k === 'peakPssBytes' || k === 'peakTabPssBytes' || k === 'coldLoadMs' || k === 'warmLoadMs' ? runs.filter((r) => r[k] != null) : ok).map((r) => r[k]));
  // where the peak happens: per phase (cold load, warm load, generate), the median over runs
  for (const k of ['peakByPhase', 'peakPssByPhase', 'peakTabPssByPhase', 'peakNetPssByPhase', 'peakOneTabPssByPhase']) {
    const ph = runs.map((r) => r[k]).filter(Boolean);
    if (ph.length) agg[k] = Object.fromEntries(Object.keys(ph[0]).map((p) => [p, median(ph.map((x) => x[p]).filter((v) => v != null))]));
  }
  const errs = [...new Set(runs.filter((r) => !r.ok).map((r) => r.error))];
  if (errs.length) agg.error = errs.join(' | ');
  const mt = ok.length ? matchCount(ok[0].tokens, ref, n, ok[0].text, decode) : null;
  if (mt) agg.match = mt;
  const cold = ok.map((r) => r.coldGen?.decodeTokS).filter((x) => x != null);
  if (cold.length) agg.firstUseDecodeTokS = median(cold);
  if (ok.length && ok[0].gens?.length > 1) agg.gensDecodeTokS = ok[0].gens.map((_, i) => median(ok.map((r) => r.gens?.[i]).filter((x) => x != null)));
  if (ok[0]?.genExtra?.bannedTokens) agg.bannedTokens = ok[0].genExtra.bannedTokens;
  const profs = ok.map((r) => r.profile).filter(Boolean);
  if (profs.length) { // per op, the median over runs
    agg.profile = {};
    for (const part of ['prefillMs', 'decodeMsPerToken']) {
      agg.profile[part] = {};
      for (const op of Object.keys(profs[0][part])) agg.profile[part][op] = median(profs.map((p) => p[part][op]));
    }
  }
  return agg;
}

function notAvailable(agg) {
  const e = agg.error || '';
  if (/qwasm\.js|Failed to fetch dynamically imported module|exports no Qwasm/i.test(e)) return 'not available';
  if (/crash|out of memory|memory|OOM|Aborted/i.test(e)) return 'failed (memory)';
  if (/timeout/i.test(e)) return 'timeout';
  return 'failed';
}

function table(results, a) {
  const lines = [];
  for (const m of results) {
    lines.push(`\n### ${m.model} in ${{ firefox: 'Firefox', webkit: 'WebKit (WebKitGTK MiniBrowser, Safari\'s settings)', webkitgtk: 'WebKit (WebKitGTK\'s defaults: single thread)' }[a.browser] || 'Chromium'} (${m.name}; ONNX ${(m.onnxBytes / 1e6).toFixed(0)} MB, GGUF ${(m.ggufBytes / 1e6).toFixed(0)} MB; prompt ${m.promptIds.length} tokens, ${a.tokens} greedy tokens, ${a.threads} threads, median of ${a.runs})\n`);
    lines.push(`| engine | ${FIGS.map((f) => f[1]).join(' | ')} | greedy match vs ort-node (first ${a.check}) | notes |`);
    lines.push(`|---|${FIGS.map(() => '---:').join('|')}|---|---|`);
    for (const [k, agg] of Object.entries(m.engines)) {
      const cells = FIGS.map(([f, , fmt]) => (agg[f] != null ? fmt(agg[f]) : agg.ok ? '–' : notAvailable(agg)));
      const mt = agg.match ? (agg.match.byText ? `prefix ${agg.match.prefix}/${agg.match.n} (by text)` : `${agg.match.same}/${agg.match.n} (prefix ${agg.match.prefix})`) : '–';
      const note = (agg.error ? `${agg.ok}/${agg.runs} ok; ${agg.error.slice(0, 160)}` : `${agg.ok}/${agg.runs} ok`) +
        (agg.bannedTokens ? `; greedy over whole-UTF-8 tokens (${agg.bannedTokens} banned)` : '');
      lines.push(`| ${ENGINES[k].label} | ${cells.join(' | ')} | ${mt} | ${note} |`);
    }
    for (const [k, agg] of Object.entries(m.engines)) {
      if (agg.firstUseDecodeTokS != null) lines.push(`\n${ENGINES[k].label}: decode on the first load's page (a new profile, first use) ${agg.firstUseDecodeTokS.toFixed(2)} tok/s`);
      if (agg.gensDecodeTokS) lines.push(`\n${ENGINES[k].label}: decode tok/s of ${agg.gensDecodeTokS.length} generations in a row on the warm page: ${agg.gensDecodeTokS.map((x) => x.toFixed(2)).join(', ')}`);
    }
    if (Array.isArray(m.native)) {
      const label = { qwasm: 'qwasm native (CLI)', 'onnxruntime-node': 'onnxruntime-node 1.30 (native)' };
      for (const r of m.native) {
        const name = label[r.engine] || `${r.engine.replace(/^qwasm cap (\d+) MB$/, 'qwasm native, $1 MB cap')}`;
        if (r.error) { lines.push(`| ${name} | ${FIGS.map(() => 'failed').join(' | ')} | – | |`); continue; }
        const cells = FIGS.map(([f]) => (f === 'coldLoadMs' ? r.load_s.toFixed(2) : f === 'prefillTokS' ? r.prefill_tok_s.toFixed(1)
          : f === 'decodeTokS' ? r.decode_tok_s.toFixed(2) : f === 'peakRssBytes' ? `${Math.round(r.peak_rss_mb)} (process)` : '–'));
        lines.push(`| ${name} | ${cells.join(' | ')} | – | ${r.runs}/${a.runs} ok; load from the files on disk |`);
      }
      const on = m.native.find((r) => r.engine === 'onnxruntime-node');
      if (on && !on.error && m.engines.qwasm?.decodeTokS)
        lines.push(`\nqwasm in Chromium decodes at ${(m.engines.qwasm.decodeTokS / on.decode_tok_s).toFixed(2)}× native onnxruntime-node` +
          ` and prefills at ${(m.engines.qwasm.prefillTokS / on.prefill_tok_s).toFixed(2)}× (same files, prompt, threads).`);
    }
    const q = m.engines.qwasm;
    const peers = Object.keys(m.engines).filter((k) => !k.startsWith('qwasm'));
    if (q && peers.length) {
      lines.push(`\nqwasm / peer ratios (${m.model}; times and memory: < 1 means qwasm is better; tok/s: > 1 means qwasm is better)\n`);
      lines.push(`| qwasm / … | ${FIGS.map((f) => f[1]).join(' | ')} |`);
      lines.push(`|---|${FIGS.map(() => '---:').join('|')}|`);
      for (const p of peers) {
        const r = m.ratios[p];
        lines.push(`| ${ENGINES[p].label} | ${FIGS.map(([f]) => (r[f] != null ? r[f].toFixed(2) : 'n/a')).join(' | ')} |`);
      }
      if (m.engines.qwasm512) {
        const c = m.engines.qwasm512.decodeTokS;
        lines.push(`\nqwasm decode under a 512 MB cap: ${c != null ? c.toFixed(2) + ' tok/s' : notAvailable(m.engines.qwasm512)}` +
          (c != null ? '; ratio to peers: ' + peers.map((p) => `${ENGINES[p].label} ${m.engines[p].decodeTokS ? (c / m.engines[p].decodeTokS).toFixed(2) : 'n/a'}`).join(', ') : ''));
      }
    }
  }
  for (const m of results) {
    const pr = m.engines.qwasm?.profile;
    if (!pr) continue;
    lines.push(`\nWhere qwasm's time goes (${m.model}; its own per-op counters, median of the runs): prefill of ${m.promptIds.length} tokens, and one decoded token\n`);
    lines.push('| op | prefill ms | share | decode ms/token | share |');
    lines.push('|---|---:|---:|---:|---:|');
    const tot = (o) => Object.values(o).reduce((x, y) => x + Math.max(0, y), 0);
    const tp = tot(pr.prefillMs), td = tot(pr.decodeMsPerToken);
    const ops = Object.keys(pr.prefillMs).sort((x, y) => (pr.decodeMsPerToken[y] + pr.prefillMs[y] / 64) - (pr.decodeMsPerToken[x] + pr.prefillMs[x] / 64));
    let restP = 0, restD = 0;
    for (const [i, op] of ops.entries()) {
      const p = Math.max(0, pr.prefillMs[op]), d = Math.max(0, pr.decodeMsPerToken[op]);
      if (i < 8) lines.push(`| ${op} | ${p.toFixed(1)} | ${(100 * p / tp).toFixed(0)} % | ${d.toFixed(2)} | ${(100 * d / td).toFixed(0)} % |`);
      else { restP += p; restD += d; }
    }
    lines.push(`| the other ${Math.max(0, ops.length - 8)} ops | ${restP.toFixed(1)} | ${(100 * restP / tp).toFixed(0)} % | ${restD.toFixed(2)} | ${(100 * restD / td).toFixed(0)} % |`);
    lines.push(`| total inside the graph | ${tp.toFixed(1)} | | ${td.toFixed(2)} | |`);
  }
  return lines.join('\n');
}

// ---------------------------------------------------------------- native rows (same run)
function nativeRows(a, entry) {
  const dir = path.join(REPO, 'build/models', entry.name);
  const json = path.join(REPO, 'build', `bench-native-${entry.model}${a.long ? '-long' : ''}.json`);
  if (a.long) {
    log(`${entry.model} native long: tools/bench/bench_native.mjs --lengths ${a.lengths.join(',')}`);
    const cliArgs = [a.kvCache && `--kv-cache ${a.kvCache}`, a.prefillChunk && `--prefill-chunk ${a.prefillChunk}`].filter(Boolean).join(' ');
    const r = spawnSync(process.execPath, [path.join(REPO, 'tools/bench/bench_native.mjs'), '--runs', '1', '--threads', String(a.threads),
      '--decode', String(a.tokens), '--lengths', a.lengths.join(','), '--json', json,
      ...(cliArgs ? ['--cli-args', cliArgs] : []), dir], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
    if (r.status !== 0 || !fs.existsSync(json)) return { error: `bench_native exited with ${r.status}` };
    const j = JSON.parse(fs.readFileSync(json, 'utf8'));
    entry.nativePromptCache = j.prompt_cache;
    return j.results.map(({ profile, ...x }) => x);
  }
  log(`${entry.model} native: tools/bench/bench_native.mjs (qwasm CLI, onnxruntime-node, 512 MB cap)`);
  const r = spawnSync(process.execPath, [path.join(REPO, 'tools/bench/bench_native.mjs'), '--runs', String(a.runs),
    '--threads', String(a.threads), '--decode', String(a.tokens), '--mem-cap-mb', '512',
    '--prompt-ids', entry.promptIds.join(','), '--json', json, dir], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  if (r.status !== 0 || !fs.existsSync(json)) return { error: `bench_native exited with ${r.status}` };
  return JSON.parse(fs.readFileSync(json, 'utf8')).results.map(({ profile, ...x }) => x);
}

/** The launched browser with one empty page (about:blank), settled: what every engine's figures include. */
async function idleBrowser(a) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qwbench-'));
  let ctx = null;
  try {
    ctx = await launchBrowser(a.browser, dir, { chromium: a.chromium, firefox: a.firefox });
    const page = await ctx.newPage();
    await page.goto('about:blank');
    await new Promise((r) => setTimeout(r, 5000));
    const root = findBrowserRoot(dir);
    if (!root) return null;
    const m = treeMem(root, true);
    return { rssBytes: m.sum, pssBytes: m.pss, tabPssBytes: m.tabPss, processes: m.n };
  } catch (e) {
    return { error: String(e && e.message || e) };
  } finally {
    if (ctx) await withTimeout(ctx.close(), 30000, 'close').catch(() => {});
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------- main
async function main() {
  const a = parseArgs(process.argv.slice(2));
  const { startServer } = await import(path.join(REPO, 'tools/serve/serve.mjs'));
  const srv = await startServer({ port: 0, root: REPO, isolation: true, quiet: true });
  let srvUrl = srv.url.endsWith('/') ? srv.url : srv.url + '/';
  if (a.browser.startsWith('webkit')) srvUrl = srvUrl.replace('//127.0.0.1:', '//localhost:'); // WebKitGTK: 127.0.0.1 is no secure context
  log('server', srvUrl);
  const out = { format: 'qwasm-bench-browser-1', date: new Date().toISOString(), host: { cpus: os.cpus().length, mem: os.totalmem(), browser: a.browser, chromium: a.chromium, firefox: a.firefox },
    params: { runs: a.runs, tokens: a.tokens, promptLen: a.promptLen, threads: a.threads, check: a.check }, models: [] };
  out.idle = await idleBrowser(a);
  if (out.idle && out.idle.pssBytes) log(`idle browser: ${mbs(out.idle.rssBytes)} MB summed RSS, ${mbs(out.idle.pssBytes)} MB PSS, tab ${mbs(out.idle.tabPssBytes)} MB PSS`);
  const save = () => {
    fs.mkdirSync(path.dirname(a.out), { recursive: true });
    fs.writeFileSync(a.out, JSON.stringify(out, null, 1));
  };
  if (a.long) {
    out.format = 'qwasm-bench-long-1';
    out.params.lengths = a.lengths; out.params.kvCache = a.kvCache;
    try {
      for (const size of a.models) {
        const m = modelDir(size, a.engines.includes('wllama'));
        const entry = { model: size, name: m.name, long: [] };
        out.models.push(entry);
        for (const e of a.engines) { log(`${size} ${e} long: ${a.lengths.join(', ')} tokens`); entry.long.push(await runLong(a, srvUrl, m, e)); save(); }
      }
    } finally { await srv.close(); }
    if (a.native) for (const entry of out.models) entry.native = nativeRows(a, entry);
    let md = longTable(out, a);
    if (out.idle && out.idle.pssBytes) md = `\nThe browser alone (one empty page, same flags): ${mbs(out.idle.rssBytes)} MB summed RSS, ` +
      `${mbs(out.idle.pssBytes)} MB PSS, of which the tab ${mbs(out.idle.tabPssBytes)} MB.\n` + md;
    out.markdown = md;
    save();
    fs.writeFileSync(a.md, md + '\n');
    console.log(md);
    log('wrote', path.relative(REPO, a.out), 'and', path.relative(REPO, a.md));
    return;
  }
  try {
    for (const size of a.models) {
      const m = modelDir(size, a.engines.includes('wllama'));
      let prompt = await promptIds(m, a.promptLen);
      if (a.promptFile) {
        const j = JSON.parse(fs.readFileSync(a.promptFile, 'utf8'));
        prompt = { ids: Array.isArray(j) ? j : j.ids, text: null, textRoundTrips: false, decode: prompt.decode };
      }
      const ids = prompt.ids;
      const ref = a.check > 0 ? ortReference(m, ids, a.check, a.threads) : null;
      const entry = { model: size, name: m.name, onnx: m.onnx, gguf: m.gguf, onnxBytes: m.onnxBytes, ggufBytes: m.ggufBytes,
        promptIds: ids, promptText: prompt.text, promptTextRoundTrips: prompt.textRoundTrips, refTokens: ref, engines: {}, runs: {}, ratios: {} };
      out.models.push(entry);
      for (let run = 0; run < a.runs; run++) {
        for (const e of a.engines) {
          log(`${size} ${e} run ${run + 1}/${a.runs}`);
          const r = await runEngine(a, srvUrl, m, prompt, e);
          (entry.runs[e] ||= []).push(r);
          log(`  -> ${r.ok ? `cold ${(r.coldLoadMs / 1000).toFixed(1)} s warm ${(r.warmLoadMs / 1000).toFixed(1)} s ttft ${(r.ttftMs / 1000).toFixed(2)} s ` +
            `prefill ${r.prefillTokS.toFixed(1)} decode ${r.decodeTokS.toFixed(2)} tok/s` : 'FAILED: ' + r.error} peak ${r.peakRssBytes ? Math.round(r.peakRssBytes / 1048576) + ' MB' : '?'}` +
            (r.errors.length ? ` [${r.errors.join('; ').slice(0, 200)}]` : ''));
          if (Object.keys(r.peakNetPssByPhase || {}).length) {
            const f = (o) => Object.entries(o || {}).map(([k, v]) => `${k} ${mbs(v)}`).join(', ');
            log(`  largest tab process PSS (MB): ${f(r.peakOneTabPssByPhase)}; network process PSS (MB): ${f(r.peakNetPssByPhase)}`);
          }
          entry.engines[e] = aggregate(entry.runs[e], ENGINES[e].sampling && !ENGINES[e].sampling.greedy ? null : ref, a.check, prompt.decode);
          save();
        }
      }
      const q = entry.engines.qwasm;
      for (const p of Object.keys(entry.engines).filter((k) => !k.startsWith('qwasm'))) {
        entry.ratios[p] = {};
        for (const [f] of FIGS) {
          const qv = q?.ok ? q[f] : null, pv = entry.engines[p].ok ? entry.engines[p][f] : null;
          entry.ratios[p][f] = qv != null && pv ? qv / pv : null;
        }
        if (entry.engines.qwasm512) {
          const c = entry.engines.qwasm512.ok ? entry.engines.qwasm512.decodeTokS : null, pv = entry.engines[p].decodeTokS;
          entry.ratios[p].decodeTokS_cap512 = c != null && pv ? c / pv : null;
        }
      }
      save();
    }
  } finally {
    await srv.close();
  }
  if (a.native) for (const entry of out.models) entry.native = nativeRows(a, entry);
  let md = table(out.models, a);
  if (out.idle && out.idle.pssBytes) md = `\nThe browser alone (one empty page, same flags): ${mbs(out.idle.rssBytes)} MB summed RSS, ` +
    `${mbs(out.idle.pssBytes)} MB PSS, of which the tab ${mbs(out.idle.tabPssBytes)} MB.\n` + md;
  out.markdown = md;
  save();
  fs.writeFileSync(a.md, md + '\n');
  console.log(md);
  log('wrote', path.relative(REPO, a.out), 'and', path.relative(REPO, a.md));
}

main().catch((e) => { console.error(e); process.exit(1); });
