// Firefox smoke test through puppeteer-core over WebDriver BiDi (Debian's firefox-esr):
// load the bundled model, chat (greedy ids equal the native CLI), reload -> from the cache with zero
// model-file requests, and no request outside the page's origin.
//   node tests/browser/firefox.mjs
import fs from 'node:fs';
import path from 'node:path';
import {
  REPO, FIREFOX, ARTIFACTS, server, assert, assertEq, runIfMain, missingRuntime, chatModelName, nativeGreedy,
  tmpDir, Skip, DEFAULT_SYSTEM,
} from './lib.mjs';

const PROMPT = 'Hola, ¿qué tal?';
const MAX = 16;

async function launch() {
  let puppeteer;
  try { puppeteer = (await import('puppeteer-core')).default; } catch (e) { throw new Skip(`puppeteer-core unavailable: ${e.message}`); }
  if (!fs.existsSync(FIREFOX)) throw new Skip(`${FIREFOX} missing`);
  const userDataDir = tmpDir('qwasm-firefox-');
  const browser = await puppeteer.launch({
    browser: 'firefox',
    protocol: 'webDriverBiDi',
    executablePath: FIREFOX,
    headless: true,
    userDataDir,
    extraPrefsFirefox: {
      'network.captive-portal-service.enabled': false,
      'network.connectivity-service.enabled': false,
      'browser.safebrowsing.malware.enabled': false,
      'browser.safebrowsing.phishing.enabled': false,
      'app.update.enabled': false,
      'dom.workers.modules.enabled': true,
      'dom.storage_access.enabled': true,
    },
  });
  return { browser, userDataDir };
}

const consoleLog = [];

// On a timeout, say where the page was: the demo's state, its banner and the last console lines.
async function waitFor(page, fn, arg, timeout = 120000) {
  try {
    // Polled from Node: a hung page then still answers with where it stands (below).
    const t0 = Date.now();
    while (!(await page.evaluate(fn, arg))) {
      if (Date.now() - t0 > timeout) throw Object.assign(new Error(`Waiting failed: ${timeout}ms exceeded`), { name: 'TimeoutError' });
      await new Promise((r) => setTimeout(r, 250));
    }
  } catch (e) {
    const where = await page.evaluate(() => JSON.stringify({
      state: window.qwasmDemo && window.qwasmDemo.state,
      status: document.getElementById('status') && document.getElementById('status').innerText,
      banner: document.getElementById('banner') && document.getElementById('banner').innerText,
      progress: window.qwasmDemo && window.qwasmDemo.progressLog.slice(-4),
      generations: window.qwasmDemo && window.qwasmDemo.generations,
    })).catch((x) => `(page unreadable: ${x.message})`);
    e.message += `\n  page: ${where}\n  console:\n    ${consoleLog.slice(-15).join('\n    ')}`;
    throw e;
  }
}

async function shot(page, name) {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`) });
}

async function configure(page) {
  await page.evaluate((sys, max) => {
    const set = (id, v) => { const e = document.getElementById(id); e.value = v; e.dispatchEvent(new Event('input', { bubbles: true })); };
    document.getElementById('greedy').checked = true;
    document.getElementById('greedy').dispatchEvent(new Event('change', { bubbles: true }));
    set('max-tokens', String(max));
    set('system-prompt', sys);
  }, DEFAULT_SYSTEM, MAX);
}

async function loadModel(page) {
  await page.click('#load-btn');
  await waitFor(page, () => window.qwasmDemo.state === 'ready' || (window.qwasmDemo.state === 'idle' && !document.getElementById('banner').hidden));
  const st = await page.evaluate(() => window.qwasmDemo.state);
  if (st !== 'ready') throw new Error(`Firefox: model did not load: ${await page.evaluate(() => document.getElementById('banner').innerText)}`);
}

async function chat(page, text) {
  const before = await page.evaluate(() => window.qwasmDemo.generations);
  await page.focus('#prompt');
  await page.keyboard.type(text);
  await page.keyboard.press('Enter');
  await waitFor(page, (n) => window.qwasmDemo.generations > n && window.qwasmDemo.state !== 'generating', before);
  return page.evaluate(() => ({ ids: window.qwasmDemo.lastIds, stop: window.qwasmDemo.lastStopReason, err: window.qwasmDemo.lastError }));
}

export const tests = [
  {
    name: 'firefox (WebDriver BiDi): load, chat = CLI, reload from cache with zero model requests, same origin only',
    needs: missingRuntime,
    fn: async () => {
      const s = await server();
      const { browser, userDataDir } = await launch();
      try {
        const page = (await browser.pages())[0] || await browser.newPage();
        await page.setViewport({ width: 1280, height: 860 });
        const external = [];
        page.on('request', (r) => {
          const u = r.url();
          if (!u.startsWith(s.origin) && !/^(data|blob|about|moz-extension|resource|chrome):/.test(u)) external.push(u);
        });
        const errors = [];
        page.on('console', (m) => consoleLog.push(`${m.type()}: ${m.text()}`));
        page.on('pageerror', (e) => errors.push(String(e && e.message || e)));
        await page.goto(`${s.url}demo/?model=${chatModelName()}`, { waitUntil: 'load' });
        await waitFor(page, () => document.body.dataset.ready === '1', null, 20000);
        const isolated = await page.evaluate(() => crossOriginIsolated);
        await configure(page);
        await loadModel(page);
        const flavour = await page.evaluate(() => window.qwasmDemo.flavour);
        assertEq(flavour, isolated ? 'mt' : 'st', 'flavour follows crossOriginIsolated');
        const r1 = await chat(page, PROMPT);
        assert(!r1.err, `no error (${JSON.stringify(r1.err)})`);
        const ref = nativeGreedy(path.join(REPO, 'build/models', chatModelName()), { prompt: PROMPT, system: DEFAULT_SYSTEM, maxTokens: MAX });
        assertEq(r1.ids, ref.ids, 'Firefox ids vs `qwasm run --greedy`');
        await shot(page, 'firefox-chat');

        const mark = s.requests.length;
        await page.reload({ waitUntil: 'load' });
        await waitFor(page, () => document.body.dataset.ready === '1', null, 20000);
        await configure(page);
        await loadModel(page);
        const modelReqs = s.requests.slice(mark).filter((r) => r.url.includes('/build/models/'));
        assertEq(modelReqs.map((r) => `${r.method} ${r.url}`), [], 'model-file requests after reload');
        const load = await page.evaluate(() => window.qwasmDemo.lastLoad);
        assert(load && load.fromCache === true, `loaded from cache (${JSON.stringify(load)})`);
        const r2 = await chat(page, PROMPT);
        assertEq(r2.ids, r1.ids, 'same ids after reload');
        await shot(page, 'firefox-reload-cached');
        assertEq(external, [], 'requests outside the origin');
        assertEq(errors, [], 'page errors');
      } finally {
        await browser.close().catch(() => {});
        await s.close();
        fs.rmSync(userDataDir, { recursive: true, force: true });
      }
    },
  },
];

await runIfMain(import.meta.url, tests);
