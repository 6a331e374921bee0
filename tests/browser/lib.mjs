// Shared helpers of the browser tests (plain Node scripts driving /usr/bin/chromium with playwright-core).
// Each test file exports `tests` = [{name, fn, needs?}] and can also run alone: `node tests/browser/x.test.mjs`.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { startServer } from '../../tools/serve/serve.mjs';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const ARTIFACTS = path.join(REPO, 'build/test-artifacts');
export const CHROMIUM = process.env.QWASM_CHROMIUM || '/usr/bin/chromium';
export const FIREFOX = process.env.QWASM_FIREFOX || '/usr/bin/firefox-esr';
export const CLI = path.join(REPO, 'build/native/qwasm');
export const CHROME_ARGS = [
  '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--disable-default-apps', '--disable-extensions',
  '--no-default-browser-check', '--disable-features=Translate,OptimizationHints,MediaRouter,InterestFeedContentSuggestions',
];

/** Model used for chat: QWASM_DEMO_MODEL when set, else small-q4f16-op18-ext (fast; the demo's 0.5B-shaped one is not). */
export function chatModelName() {
  const names = [process.env.QWASM_DEMO_MODEL, 'small-q4f16-op18-ext'].filter(Boolean);
  for (const n of names) if (fs.existsSync(path.join(REPO, 'build/models', n, 'config.json'))) return n;
  return null;
}

/** What the full-chat tests need; returns a reason string when something is missing (test is skipped). */
export function missingRuntime() {
  const need = [
    ['js/page/qwasm.js', 'the JS runtime'],
    ['build/wasm/qwasm-st.wasm', 'the wasm build (tools/build/build.sh wasm)'],
    ['build/wasm/qwasm-mt.wasm', 'the wasm build (tools/build/build.sh wasm)'],
  ];
  for (const [f, what] of need) if (!fs.existsSync(path.join(REPO, f))) return `${what} is missing (${f})`;
  if (!chatModelName()) return 'no chat test model in build/models (bash tools/gen/gen_test_models.sh)';
  return null;
}

export class Skip extends Error { constructor(reason) { super(reason); this.skip = true; } }

export function assert(cond, msg) { if (!cond) throw new Error(`assertion failed: ${msg}`); }
export function assertEq(a, b, msg) {
  const ja = JSON.stringify(a), jb = JSON.stringify(b);
  if (ja !== jb) throw new Error(`${msg}: expected ${jb.slice(0, 400)}, got ${ja.slice(0, 400)}`);
}

export function tmpDir(prefix = 'qwasm-browser-') { return fs.mkdtempSync(path.join(os.tmpdir(), prefix)); }

/** Starts the dev server on a random port. */
export async function server(opts = {}) {
  return startServer({ port: 0, root: REPO, isolation: opts.isolation !== false, testHooks: true, quiet: true, ...opts });
}

let playwright = null;
async function pw() { if (!playwright) playwright = await import('playwright-core'); return playwright; }

/**
 * A fresh persistent Chromium context (own profile: IndexedDB/OPFS survive reloads inside a test, nothing
 * leaks between tests). Returns {context, page, external, requests, userDataDir, close()}.
 * `external` collects every request that leaves `origin` (the tests assert it stays empty).
 */
export async function chromium(origin, opts = {}) {
  const { chromium: cr } = await pw();
  const userDataDir = opts.userDataDir || tmpDir('qwasm-chromium-');
  const context = await cr.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROME_ARGS,
    viewport: opts.viewport || { width: 1280, height: 860 },
    deviceScaleFactor: opts.deviceScaleFactor || 1,
    isMobile: !!opts.isMobile,
    hasTouch: !!opts.isMobile,
    serviceWorkers: 'block',
    ...(opts.context || {}),
  });
  const page = context.pages()[0] || await context.newPage();
  const requests = [];
  const external = [];
  const consoleErrors = [];
  const track = (r) => {
    const url = r.url();
    requests.push({ url, method: r.method(), time: Date.now() });
    if (!url.startsWith(origin) && !/^(data|blob|about|chrome|devtools|chrome-extension):/.test(url)) external.push(url);
  };
  context.on('request', track);
  page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(`${m.text()} @ ${(m.location() && m.location().url) || ''}`); });
  page.on('pageerror', (e) => consoleErrors.push(`pageerror: ${e.message}`));
  page.setDefaultTimeout(opts.timeout || 30000);
  return {
    context, page, requests, external, consoleErrors, userDataDir,
    async close() {
      await context.close().catch(() => {});
      if (!opts.keepProfile) fs.rmSync(userDataDir, { recursive: true, force: true });
    },
  };
}

export async function shot(page, name) {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  const file = path.join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path: file, fullPage: false });
  return file;
}

/** Opens the demo page and waits for its init (bundled-model probe) to finish. */
export async function openDemo(page, base, query = '') {
  await page.goto(`${base}demo/${query}`, { waitUntil: 'load' });
  await page.waitForFunction(() => document.body.dataset.ready === '1', null, { timeout: 15000 });
}

/** Clicks Load (with the current form) and waits for ready or an error banner. */
export async function loadAndWait(page, timeout = 180000) {
  await page.click('#load-btn');
  return waitLoaded(page, timeout);
}
/** What the demo shows, for a timeout's message (a hang must say where it stopped). */
async function demoState(page) {
  return page.evaluate(() => {
    const t = (id) => { const e = document.getElementById(id); return e ? e.innerText.replace(/\s+/g, ' ').slice(0, 300) : null; };
    return JSON.stringify({ state: window.qwasmDemo && window.qwasmDemo.state, banner: t('banner'), tokens: t('stat-tokens'), speed: t('stat-speed'),
      progress: t('progress'), generations: window.qwasmDemo && window.qwasmDemo.generations });
  }).catch((e) => `(page not readable: ${e.message})`);
}

async function waitDemo(page, what, fn, arg, timeout) {
  try {
    await page.waitForFunction(fn, arg, { timeout, polling: 100 });
  } catch (e) {
    throw new Error(`${what}: ${e.message}; the demo shows ${await demoState(page)}`, { cause: e });
  }
}

export async function waitLoaded(page, timeout = 180000) {
  await waitDemo(page, 'waiting for the load', () => {
    const s = window.qwasmDemo && window.qwasmDemo.state;
    return s === 'ready' || (s === 'idle' && !document.getElementById('banner').hidden);
  }, null, timeout);
  const state = await page.evaluate(() => window.qwasmDemo.state);
  if (state !== 'ready') {
    const msg = await page.evaluate(() => document.getElementById('banner').innerText);
    throw new Error(`model did not load: ${msg}`);
  }
}

/** Types a message, sends it with Enter and waits for the reply to finish. Returns {ids, text, stopReason}. */
export async function chat(page, text, timeout = 120000) {
  const before = await page.evaluate(() => window.qwasmDemo.generations);
  await page.fill('#prompt', text);
  await page.press('#prompt', 'Enter');
  await waitDemo(page, 'waiting for the reply', (n) => window.qwasmDemo.generations > n && window.qwasmDemo.state !== 'generating',
    before, timeout);
  return page.evaluate(() => {
    const msgs = document.querySelectorAll('.msg.assistant');
    const last = msgs[msgs.length - 1];
    return { ids: window.qwasmDemo.lastIds, text: last ? last.querySelector('.body').textContent : null, stopReason: window.qwasmDemo.lastStopReason, error: window.qwasmDemo.lastError };
  });
}

/** Runs the native CLI greedily with the same chat the page sends. Returns the generated ids. */
/** The native CLI's tokens: greedy, or with sample = [flags] (e.g. ['--temperature', '0.7', ...]) instead. */
export function nativeGreedy(modelDir, { prompt, system, maxTokens, memCapMB, embeddingResident, exactLmHead, sample }) {
  if (!fs.existsSync(CLI)) throw new Skip(`native CLI missing (${CLI})`);
  const args = ['run', modelDir, '--prompt', prompt, ...(sample || ['--greedy']), '--max-tokens', String(maxTokens), '--json'];
  if (exactLmHead) args.push('--exact-lm-head');
  if (system) args.push('--system', system);
  if (memCapMB) args.push('--mem-cap-mb', String(memCapMB));
  if (embeddingResident) args.push('--embedding-resident');
  const out = execFileSync(CLI, args, { encoding: 'utf8', maxBuffer: 64 << 20 });
  const lines = out.trim().split('\n').filter((l) => l.includes('"ids"'));
  if (!lines.length) throw new Error(`qwasm run printed no ids line:\n${out.slice(-1000)}`);
  const j = JSON.parse(lines[lines.length - 1]);
  return { ids: j.ids, text: j.text, stopReason: j.stop_reason };
}

/** Sets the demo's settings through the UI. */
export async function setSettings(page, s) {
  await page.evaluate(() => { document.getElementById('settings-panel').open = true; });
  if (s.greedy !== undefined) await page.setChecked('#greedy', !!s.greedy);
  if (s.maxTokens !== undefined) await page.fill('#max-tokens', String(s.maxTokens));
  if (s.memCap !== undefined) await page.fill('#mem-cap', String(s.memCap));
  if (s.system !== undefined) await page.fill('#system-prompt', s.system);
  if (s.cache !== undefined) await page.selectOption('#cache-backend', s.cache);
  if (s.threads !== undefined && await page.isEnabled('#threads')) await page.fill('#threads', String(s.threads));
}

export const DEFAULT_SYSTEM = 'You are a helpful assistant.';

/** Runs a list of tests; returns {passed, failed, skipped, results}. */
export async function runTests(tests, { filter } = {}) {
  const results = [];
  for (const t of tests) {
    if (filter && !filter.test(t.name)) continue;
    const t0 = Date.now();
    try {
      if (t.needs) { const why = t.needs(); if (why) throw new Skip(why); }
      await t.fn();
      results.push({ name: t.name, status: 'pass', ms: Date.now() - t0 });
      console.log(`  ok    ${t.name} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
    } catch (e) {
      if (e && e.skip) {
        results.push({ name: t.name, status: 'skip', reason: e.message });
        console.log(`  skip  ${t.name}: ${e.message}`);
      } else {
        results.push({ name: t.name, status: 'fail', error: e && (e.stack || e.message) || String(e) });
        console.log(`  FAIL  ${t.name}: ${(e && e.message || String(e)).split('\n').slice(0, 6).join('\n        ')}`);
      }
    }
  }
  const passed = results.filter((r) => r.status === 'pass').length;
  const failed = results.filter((r) => r.status === 'fail').length;
  const skipped = results.filter((r) => r.status === 'skip').length;
  return { passed, failed, skipped, results };
}

/** `node tests/browser/x.test.mjs` runs that file alone. */
export async function runIfMain(importMetaUrl, tests) {
  if (process.argv[1] && pathToFileURL(path.resolve(process.argv[1])).href === importMetaUrl) {
    const r = await runTests(tests, { filter: process.env.QWASM_TEST_FILTER ? new RegExp(process.env.QWASM_TEST_FILTER) : null });
    console.log(`${r.passed} passed, ${r.failed} failed${r.skipped ? `, ${r.skipped} skipped` : ''}`);
    process.exit(r.failed ? 1 : 0);
  }
}
