// WebKit (Safari's engine): Debian's WebKitGTK MiniBrowser through WebKitWebDriver (classic W3C WebDriver,
// tools/test/webkit.mjs), on Xvfb when there is no display. Twice: with Safari's settings (SharedArrayBuffer for
// cross-origin isolated pages, OPFS) and with WebKitGTK's own defaults (neither: tools/test/webkit.mjs says why).
// Each: error banners (404, corrupt models), load the bundled model, chat (greedy ids equal the native CLI),
// reload -> from the cache with zero model-file requests, same ids. The page must pick its build by feature
// detection: the baseline SIMD128 .wasm when the engine refuses relaxed SIMD, threads (mt) only where
// SharedArrayBuffer exists in a cross-origin isolated page, OPFS where sync access handles exist.
//   node tests/browser/webkit.mjs          (QWASM_TEST_FILTER=safari to run one of the two)
// Classic WebDriver has no network or console events: requests are checked on the server's log, errors on
// the page's state.
import fs from 'node:fs';
import path from 'node:path';
import {
  REPO, ARTIFACTS, server, assert, assertEq, runIfMain, missingRuntime, chatModelName, nativeGreedy, DEFAULT_SYSTEM,
} from './lib.mjs';
import { launchWebKit, webkitMissing } from '../../tools/test/webkit.mjs';

const PROMPT = 'Hola, ¿qué tal?';
const MAX = 16;

/** Missing runtime files skip (as in every browser test); missing WebKit packages fail: bootstrap installs them. */
function needs() {
  const why = missingRuntime();
  if (why) return why;
  const wk = webkitMissing();
  if (wk) throw new Error(`WebKit cannot run here: ${wk} (tools/build/bootstrap.sh installs it; --no-webkit to leave WebKit out)`);
  return null;
}

async function waitFor(page, fn, arg, timeout = 180000) {
  try {
    return await page.waitForFunction(fn, arg, { timeout, polling: 250 });
  } catch (e) {
    const where = await page.evaluate(() => JSON.stringify({
      state: window.qwasmDemo && window.qwasmDemo.state,
      status: document.getElementById('status') && document.getElementById('status').innerText,
      banner: document.getElementById('banner') && document.getElementById('banner').innerText,
      progress: window.qwasmDemo && window.qwasmDemo.progressLog.slice(-4),
      lastError: window.qwasmDemo && window.qwasmDemo.lastError,
    })).catch((x) => `(page unreadable: ${x.message})`);
    e.message += `\n  page: ${where}`;
    throw e;
  }
}

async function shot(page, name) {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`) }).catch(() => {});
}

async function openDemo(page, base, query) {
  await page.goto(`${base}demo/${query}`);
  await waitFor(page, () => document.body.dataset.ready === '1', null, 30000);
}

async function configure(page) {
  await page.evaluate(([sys, max]) => {
    const set = (id, v) => { const e = document.getElementById(id); e.value = v; e.dispatchEvent(new Event('input', { bubbles: true })); };
    document.getElementById('greedy').checked = true;
    document.getElementById('greedy').dispatchEvent(new Event('change', { bubbles: true }));
    set('max-tokens', String(max));
    set('system-prompt', sys);
  }, [DEFAULT_SYSTEM, MAX]);
}

/** Clicks Load; returns {state, code, text} once the model is ready or a banner shows. */
async function load(page) {
  await page.click('#load-btn');
  await waitFor(page, () => window.qwasmDemo.state === 'ready' || (window.qwasmDemo.state === 'idle' && !document.getElementById('banner').hidden));
  return page.evaluate(() => ({ state: window.qwasmDemo.state, code: document.getElementById('banner').dataset.code || null,
    text: document.getElementById('banner').hidden ? '' : document.getElementById('banner').innerText }));
}

async function chat(page, text) {
  const before = await page.evaluate(() => window.qwasmDemo.generations);
  await page.type('#prompt', text, { enter: true }); // real key events, Enter sends
  await waitFor(page, (n) => window.qwasmDemo.generations > n && window.qwasmDemo.state !== 'generating', before);
  return page.evaluate(() => ({ ids: window.qwasmDemo.lastIds, stop: window.qwasmDemo.lastStopReason, err: window.qwasmDemo.lastError }));
}

/** Copies of the chat model with one spoilt file each (as chat.test.mjs does), under build/test-artifacts. */
function corruptModels() {
  const good = path.join(REPO, 'build/models', chatModelName());
  const dir = path.join(REPO, 'build/test-artifacts/models-webkit');
  const variants = {
    'corrupt-truncated': (d) => {
      const f = fs.readdirSync(path.join(d, 'onnx')).find((x) => /onnx_data$/.test(x)) || fs.readdirSync(path.join(d, 'onnx')).find((x) => /\.onnx$/.test(x));
      const p = path.join(d, 'onnx', f); fs.truncateSync(p, Math.floor(fs.statSync(p).size / 2));
    },
    'corrupt-config': (d) => fs.writeFileSync(path.join(d, 'config.json'), '{"model_type": "qwen2", '),
  };
  for (const [name, spoil] of Object.entries(variants)) {
    const d = path.join(dir, name);
    fs.rmSync(d, { recursive: true, force: true });
    fs.cpSync(good, d, { recursive: true });
    spoil(d);
  }
  return Object.keys(variants).map((n) => `/build/test-artifacts/models-webkit/${n}/`);
}

function webkitTest(safari) {
  const mode = safari ? 'safari' : 'webkitgtk';
  return {
    name: `webkit (${safari ? "Safari's settings: SharedArrayBuffer, storage APIs" : "WebKitGTK's defaults: no SharedArrayBuffer, no storage APIs"}): ` +
      'error banners, load, chat = CLI, reload from the cache with zero model requests',
    needs,
    fn: async () => {
      const s = await server();
      const base = `http://localhost:${new URL(s.url).port}/`; // 127.0.0.1 is no secure context in WebKitGTK
      const wk = await launchWebKit({ safari });
      try {
        const page = await wk.newPage();
        await openDemo(page, base, `?model=${chatModelName()}`);
        const env = await page.evaluate(async () => ({
          isolated: crossOriginIsolated, sab: typeof SharedArrayBuffer === 'function',
          relaxed: (await import('/js/worker/qwasm-loader.js')).supportsRelaxedSimd(),
          opfsOpens: !!navigator.storage && await navigator.storage.getDirectory().then(() => true, () => false),
        }));
        assertEq(env.isolated, true, 'crossOriginIsolated (the server sends COOP/COEP)');
        if (safari) assertEq(env.sab, true, 'SharedArrayBuffer exposed with JSC_useSharedArrayBuffer=1');

        // error cases first: the page must stay usable after them
        for (const url of [`${base}build/models/does-not-exist/`, ...corruptModels().map((u) => base + u.slice(1))]) {
          await page.evaluate((u) => { document.getElementById('src-url').click(); document.getElementById('model-url').value = u; }, url);
          const r = await load(page);
          assertEq(r.state, 'idle', `${url}: not loaded`);
          if (/does-not-exist/.test(url)) {
            assertEq(r.code, 'NOT_FOUND', `${url}: banner code (${r.text})`);
            assert(/config\.json/.test(r.text), `banner names the file: ${r.text}`);
          } else {
            assert(['CORRUPT', 'FORMAT', 'UNSUPPORTED', 'NOT_FOUND'].includes(r.code), `${url}: banner code ${r.code}: ${r.text}`);
          }
          assert(r.text.length > 40, `${url}: banner explains (${r.text})`);
        }
        await shot(page, `webkit-${mode}-error`);

        await openDemo(page, base, `?model=${chatModelName()}`);
        await configure(page);
        const mark0 = s.requests.length;
        const r0 = await load(page);
        assertEq(r0.state, 'ready', `model loads (${r0.text})`);
        const flavour = await page.evaluate(() => window.qwasmDemo.flavour);
        assertEq(flavour, env.sab ? 'mt' : 'st', 'flavour: threads exactly where SharedArrayBuffer is usable'); // (isolated)
        const wasm = s.requests.slice(mark0).map((r) => r.url).filter((u) => /\.wasm(\?|$)/.test(u));
        const want = `/build/wasm${env.relaxed ? '-relaxed' : ''}/qwasm-${flavour}${env.relaxed ? '-relaxed' : ''}.wasm`;
        assert(wasm.some((u) => u.split('?')[0].endsWith(want)), `fetched ${want} (relaxed SIMD ${env.relaxed ? 'validates' : 'refused'}): ${wasm.join(', ')}`);
        if (!env.relaxed) assertEq(wasm.filter((u) => /relaxed/.test(u)), [], 'no relaxed-SIMD build fetched');
        const backends = await page.evaluate(async () => (await (await import('/js/page/qwasm.js')).Qwasm.cache.list()).map((m) => m.backend));
        // MiniBrowser's automation session is ephemeral: OPFS refuses to open there, so 'auto' must fall back
        assertEq([...new Set(backends)], [env.opfsOpens ? 'opfs' : 'indexeddb'], 'cache backend picked by feature detection');

        const r1 = await chat(page, PROMPT);
        assert(!r1.err, `no error (${JSON.stringify(r1.err)})`);
        const ref = nativeGreedy(path.join(REPO, 'build/models', chatModelName()), { prompt: PROMPT, system: DEFAULT_SYSTEM, maxTokens: MAX });
        assertEq(r1.ids, ref.ids, 'WebKit ids vs `qwasm run --greedy`');
        await shot(page, `webkit-${mode}-chat`);

        const mark = s.requests.length;
        await page.reload();
        await waitFor(page, () => document.body.dataset.ready === '1', null, 30000);
        await configure(page);
        const r2l = await load(page);
        assertEq(r2l.state, 'ready', `model loads after reload (${r2l.text})`);
        const modelReqs = s.requests.slice(mark).filter((r) => r.url.includes('/build/models/'));
        assertEq(modelReqs.map((r) => `${r.method} ${r.url}`), [], 'model-file requests after reload');
        const ld = await page.evaluate(() => window.qwasmDemo.lastLoad);
        assert(ld && ld.fromCache === true, `loaded from cache (${JSON.stringify(ld)})`);
        const r2 = await chat(page, PROMPT);
        assertEq(r2.ids, r1.ids, 'same ids after reload');
        await shot(page, `webkit-${mode}-reload-cached`);
      } finally {
        await wk.close();
        await s.close();
      }
    },
  };
}

export const tests = [webkitTest(true), webkitTest(false)];

await runIfMain(import.meta.url, tests);
