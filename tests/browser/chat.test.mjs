// The demo with a real model: load the bundled model and chat; tokens equal the native CLI's greedy output;
// reload -> from the cache with zero model-file requests; Stop then generate again; memory-cap mode gives the
// same tokens; a corrupt model shows a banner and the page stays usable; single-thread fallback
// (--no-isolation). Every test also asserts that nothing left the page's origin.
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import {
  REPO, server, chromium, openDemo, shot, assert, assertEq, runIfMain, missingRuntime, chatModelName,
  loadAndWait, waitLoaded, chat, nativeGreedy, setSettings, DEFAULT_SYSTEM,
} from './lib.mjs';

const PROMPT = 'Hola, ¿qué tal?';
const MAX = 24;

async function withPage(opts, fn) {
  const s = await server(opts.server || {});
  const b = await chromium(s.origin, opts);
  try { await fn({ s, ...b }); } finally { await b.close(); await s.close(); }
}
const modelReqs = (s, since = 0) => s.requests.slice(since).filter((r) => r.url.includes('/build/models/'));

let nativeCache = null;
function native(opts = {}) {
  const m = chatModelName();
  const key = JSON.stringify(opts);
  nativeCache = nativeCache || new Map();
  if (!nativeCache.has(key)) nativeCache.set(key, nativeGreedy(path.join(REPO, 'build/models', m), { prompt: PROMPT, system: DEFAULT_SYSTEM, maxTokens: MAX, ...opts }));
  return nativeCache.get(key);
}

async function openWithModel(page, s, extra = '') {
  await openDemo(page, s.url, `?model=${chatModelName()}${extra}`);
  await setSettings(page, { greedy: true, maxTokens: MAX, system: DEFAULT_SYSTEM });
}

export const tests = [
  {
    name: 'chat: load the bundled model, chat (multi-turn), greedy tokens equal the native CLI',
    needs: missingRuntime,
    fn: () => withPage({}, async ({ s, page, external }) => {
      await openWithModel(page, s);
      await page.click('#load-btn');
      // progress is visible while loading
      await page.waitForSelector('#progress:not([hidden])');
      await shot(page, 'chat-loading');
      await waitLoaded(page);
      const load = await page.evaluate(() => window.qwasmDemo.lastLoad);
      assertEq(load.flavour, 'mt', 'multi-threaded flavour');
      assert(load.fromCache === false, 'first load downloads');
      assert(/Multi-threaded/.test(await page.textContent('#thread-badge')), 'thread badge after load');
      const r1 = await chat(page, PROMPT);
      const ref = native();
      await shot(page, 'chat-reply');
      assertEq(r1.ids, ref.ids, 'page ids vs `qwasm run --greedy`');
      assertEq(r1.text, ref.text, 'page text vs CLI text');
      assert(!r1.error, 'no error');
      const speed = await page.textContent('#stat-speed');
      assert(/tok\/s/.test(speed), `live speed shown (${speed})`);
      assert(/\d/.test(await page.textContent('#stat-memory')), 'memory shown');
      // second turn: the conversation grows
      const r2 = await chat(page, 'Gracias. Resume en una frase.');
      assert(r2.ids && r2.ids.length > 0, 'second turn generated');
      const msgs = await page.evaluate(() => window.qwasmDemo.messages);
      assertEq(msgs.map((m) => m.role), ['user', 'assistant', 'user', 'assistant'], 'transcript roles');
      await shot(page, 'chat-multiturn');
      assertEq(external, [], 'requests outside the origin');
    }),
  },
  {
    name: 'chat: download progress (MB, rate, ETA), cancel with Esc, resume after dropped connections',
    needs: missingRuntime,
    fn: () => withPage({}, async ({ s, page, external }) => {
      s.hooks.throttle = 150000; // bytes per 100 ms per response (~1.5 MB/s)
      await openWithModel(page, s);
      await page.click('#load-btn');
      const snap = await page.waitForFunction(() => {
        const detail = document.getElementById('progress-detail').textContent;
        const v = document.getElementById('progress-bar').value;
        return /MB\/s/.test(detail) && /left/.test(detail) && v > 0.25 && v < 0.95 ? { detail, v } : null;
      }, null, { timeout: 60000, polling: 50 });
      await shot(page, 'progress-download');
      const { detail } = await snap.jsonValue();
      assert(/\d+(\.\d)? of \d+(\.\d)? MB/.test(detail), `MB done/total shown (${detail})`);
      await page.keyboard.press('Escape');
      await page.waitForFunction(() => window.qwasmDemo.state === 'idle', null, { timeout: 30000 });
      assert(/cancel/i.test(await page.textContent('#model-badge')), 'badge says cancelled');
      assert(await page.isHidden('#banner'), 'cancel is not an error');
      await shot(page, 'progress-cancelled');
      // resume: no throttle, but the first two long responses drop after 1 MB
      s.hooks.throttle = 0; s.hooks.drop = 1024 * 1024; s.hooks.dropTimes = 2;
      const mark = s.requests.length;
      await loadAndWait(page);
      const ranged = s.requests.slice(mark).filter((r) => r.url.includes('/build/models/') && r.range);
      assert(ranged.length > 0, 'resumed with Range requests');
      assertEq(s.hooks.dropTimes, 0, 'the connection drops happened');
      const r = await chat(page, PROMPT);
      assertEq(r.ids, native().ids, 'ids after a resumed download');
      assertEq(external, [], 'requests outside the origin');
    }),
  },
  {
    name: 'chat: reload -> model comes from the cache with zero model-file requests',
    needs: missingRuntime,
    fn: () => withPage({}, async ({ s, page, external }) => {
      await openWithModel(page, s);
      await loadAndWait(page);
      assert(modelReqs(s).length > 0, 'first load fetched the model');
      const first = await chat(page, PROMPT);
      const mark = s.requests.length;
      let pageModelReqs = 0;
      page.on('request', (r) => { if (r.url().includes('/build/models/')) pageModelReqs++; });
      await page.reload();
      await page.waitForFunction(() => document.body.dataset.ready === '1');
      await setSettings(page, { greedy: true, maxTokens: MAX, system: DEFAULT_SYSTEM });
      await loadAndWait(page);
      const load = await page.evaluate(() => window.qwasmDemo.lastLoad);
      assertEq(modelReqs(s, mark).map((r) => `${r.method} ${r.url}`), [], 'model-file requests after reload (server log)');
      assertEq(pageModelReqs, 0, 'model-file requests after reload (browser)');
      assert(load.fromCache === true, `lastLoad.fromCache (${JSON.stringify(load)})`);
      const again = await chat(page, PROMPT);
      assertEq(again.ids, first.ids, 'same tokens from the cached model');
      // the cache manager lists it
      await page.evaluate(() => { document.getElementById('cache-panel').open = true; });
      await page.waitForSelector('#cache-list .cache-item', { timeout: 15000 });
      await page.locator('#cache-panel').scrollIntoViewIfNeeded();
      await shot(page, 'chat-cached-reload');
      assertEq(external, [], 'requests outside the origin');
    }),
  },
  {
    name: 'chat: Stop in mid-generation (button and Esc), then generate again',
    needs: missingRuntime,
    fn: () => withPage({}, async ({ s, page, external }) => {
      await openDemo(page, s.url, `?model=${chatModelName()}`);
      await setSettings(page, { greedy: false, maxTokens: 4000, system: DEFAULT_SYSTEM });
      await loadAndWait(page);
      for (const how of ['button', 'escape']) {
        const before = await page.evaluate(() => window.qwasmDemo.generations);
        await page.fill('#prompt', 'Escribe un informe muy largo.');
        await page.press('#prompt', 'Enter');
        await page.waitForFunction(() => {
          const b = document.querySelector('.msg.assistant.streaming .body');
          return b && b.textContent.length > 8;
        }, null, { timeout: 60000, polling: 50 });
        assert(await page.isVisible('#stop-btn'), 'stop button visible while generating');
        if (how === 'button') { await shot(page, 'chat-generating'); await page.click('#stop-btn'); } else await page.keyboard.press('Escape');
        await page.waitForFunction((n) => window.qwasmDemo.generations > n && window.qwasmDemo.state === 'ready', before, { timeout: 30000 });
        assertEq(await page.evaluate(() => window.qwasmDemo.lastStopReason), 'aborted', `stopped by ${how}`);
        const n = (await page.evaluate(() => window.qwasmDemo.lastIds)).length;
        assert(n < 4000, `stopped early (${n} tokens)`);
        assert(await page.isHidden('#banner'), 'no error banner after Stop');
      }
      await shot(page, 'chat-stopped');
      await setSettings(page, { greedy: true, maxTokens: MAX });
      await page.click('#clear-btn');
      const r = await chat(page, PROMPT);
      assertEq(r.ids, native().ids, 'generation after Stop equals the CLI');
      assertEq(external, [], 'requests outside the origin');
    }),
  },
  {
    name: 'chat: memory-cap mode gives the same tokens',
    needs: missingRuntime,
    fn: () => withPage({}, async ({ s, page, external }) => {
      await openWithModel(page, s);
      await setSettings(page, { memCap: 2 });
      await loadAndWait(page);
      const r = await chat(page, PROMPT);
      assertEq(r.ids, native().ids, 'memory-capped ids vs CLI');
      const st = await page.evaluate(() => window.qwasmDemo.stats());
      // Informational: the small test model's weights are one ~9.7 MB fp16 embedding, so no cap below that can
      // show paging; the enforcement itself is tested natively by the core's tests.
      console.log(`        memcap 2 MB: resident weights ${st.resident_weight_bytes} B, peak activations ${st.peak_activation_bytes} B`);
      await shot(page, 'chat-memcap');
      assertEq(external, [], 'requests outside the origin');
    }),
  },
  {
    name: 'chat: corrupt model shows an error banner; the page stays usable',
    needs: missingRuntime,
    fn: async () => {
      const good = path.join(REPO, 'build/models', chatModelName());
      const dir = path.join(REPO, 'build/test-artifacts/models');
      const variants = {
        'corrupt-truncated': (d) => { // external data cut in half
          const f = fs.readdirSync(path.join(d, 'onnx')).find((x) => /onnx_data$/.test(x)) || fs.readdirSync(path.join(d, 'onnx')).find((x) => /\.onnx$/.test(x));
          const p = path.join(d, 'onnx', f); fs.truncateSync(p, Math.floor(fs.statSync(p).size / 2));
        },
        'corrupt-garbage': (d) => { // the graph is not protobuf
          for (const f of fs.readdirSync(path.join(d, 'onnx'))) if (/\.onnx$/.test(f)) fs.writeFileSync(path.join(d, 'onnx', f), Buffer.from('this is not an onnx file '.repeat(40)));
        },
        'corrupt-config': (d) => fs.writeFileSync(path.join(d, 'config.json'), '{"model_type": "qwen2", '),
      };
      for (const [name, spoil] of Object.entries(variants)) {
        const d = path.join(dir, name);
        fs.rmSync(d, { recursive: true, force: true });
        fs.cpSync(good, d, { recursive: true });
        spoil(d);
      }
      await withPage({}, async ({ s, page, external }) => {
        for (const name of Object.keys(variants)) {
          await openDemo(page, s.url, `?model=/build/test-artifacts/models/${name}/`);
          await page.click('#load-btn');
          await page.waitForFunction(() => window.qwasmDemo.state !== 'loading' && (window.qwasmDemo.state === 'ready' || !document.getElementById('banner').hidden), null, { timeout: 120000 });
          assertEq(await page.evaluate(() => window.qwasmDemo.state), 'idle', `${name}: not loaded`);
          const code = await page.getAttribute('#banner', 'data-code');
          const text = await page.textContent('#banner');
          assert(['CORRUPT', 'FORMAT', 'UNSUPPORTED', 'NOT_FOUND'].includes(code), `${name}: banner code ${code}: ${text}`);
          assert(text.length > 40, `${name}: banner explains (${text})`);
          await shot(page, `error-${name}`);
          assert(await page.isEnabled('#load-btn'), `${name}: load button usable`);
        }
        // still usable: load the good model and chat
        await page.evaluate(() => { document.getElementById('model-url').value = ''; });
        await page.check('#src-url');
        await page.fill('#model-url', `${s.url}build/models/${chatModelName()}/`);
        await setSettings(page, { greedy: true, maxTokens: MAX, system: DEFAULT_SYSTEM });
        await loadAndWait(page);
        assert(await page.isHidden('#banner'), 'banner cleared by a successful load');
        const r = await chat(page, PROMPT);
        assertEq(r.ids, native().ids, 'chat after the errors');
        assertEq(external, [], 'requests outside the origin');
      });
    },
  },
  {
    name: 'chat: UNSUPPORTED op and QUOTA banners say what to do',
    needs: missingRuntime,
    fn: async () => {
      const good = path.join(REPO, 'build/models', chatModelName());
      const d = path.join(REPO, 'build/test-artifacts/models/unsupported-op');
      fs.rmSync(d, { recursive: true, force: true });
      fs.cpSync(good, d, { recursive: true, filter: (src) => !src.endsWith('ref.json') });
      const onnxFile = fs.readdirSync(path.join(d, 'onnx')).find((f) => f.endsWith('.onnx'));
      execFileSync('/usr/bin/python3', ['-c', `
import onnx, sys
p = sys.argv[1]
m = onnx.load(p, load_external_data=False)
n = next(n for n in m.graph.node if n.op_type == 'Softmax')
n.op_type = 'FancySoftmax'
onnx.save(m, p)`, path.join(d, 'onnx', onnxFile)]);
      await withPage({}, async ({ s, page, context, external }) => {
        await openDemo(page, s.url, '?model=/build/test-artifacts/models/unsupported-op/');
        await page.click('#load-btn');
        await page.waitForSelector('#banner:not([hidden])', { timeout: 120000 });
        const text = await page.textContent('#banner');
        assertEq(await page.getAttribute('#banner', 'data-code'), 'UNSUPPORTED', `code (${text})`);
        assert(/FancySoftmax/.test(await page.textContent('#banner-hint')), `hint names the op: ${text}`);
        await shot(page, 'error-unsupported');
        // QUOTA: shrink this origin's storage quota below the model's size
        const cdp = await context.newCDPSession(page);
        await cdp.send('Storage.overrideQuotaForOrigin', { origin: s.origin, quotaSize: 2 * 1024 * 1024 });
        await openDemo(page, s.url, `?model=${chatModelName()}`);
        await page.click('#load-btn');
        await page.waitForFunction(() => window.qwasmDemo.state !== 'loading' && (window.qwasmDemo.state === 'ready' || !document.getElementById('banner').hidden), null, { timeout: 120000 });
        const qtext = await page.textContent('#banner');
        await shot(page, 'error-quota');
        assertEq(await page.getAttribute('#banner', 'data-code'), 'QUOTA', `quota code (${qtext})`);
        assert(/Cached models/.test(qtext), 'quota hint points to the cache manager');
        assertEq(external, [], 'requests outside the origin');
      });
    },
  },
  {
    name: 'chat: single-thread fallback (server --no-isolation) loads and gives the same tokens',
    needs: missingRuntime,
    fn: () => withPage({ server: { isolation: false } }, async ({ s, page, external }) => {
      await openWithModel(page, s);
      assertEq(await page.evaluate(() => crossOriginIsolated), false, 'not isolated');
      await loadAndWait(page);
      assertEq(await page.evaluate(() => window.qwasmDemo.flavour), 'st', 'single-thread flavour');
      assertEq(await page.getAttribute('#thread-badge', 'data-mode'), 'st', 'badge');
      const r = await chat(page, PROMPT);
      assertEq(r.ids, native().ids, 'single-thread ids vs CLI');
      await shot(page, 'chat-single-thread');
      assertEq(external, [], 'requests outside the origin');
    }),
  },
  {
    name: 'chat: IndexedDB cache backend and the cache manager delete',
    needs: missingRuntime,
    fn: () => withPage({}, async ({ s, page, external }) => {
      await openWithModel(page, s, '&cache=indexeddb');
      await loadAndWait(page);
      await page.evaluate(() => { document.getElementById('cache-panel').open = true; });
      await page.waitForSelector('#cache-list .cache-item');
      const backend = await page.textContent('#cache-list .cache-item .cache-meta');
      assert(/IndexedDB/.test(backend), `listed in IndexedDB (${backend})`);
      await page.locator('#cache-panel').scrollIntoViewIfNeeded();
      await shot(page, 'cache-manager');
      await page.click('#cache-list .cache-item button');
      await page.waitForFunction(() => !document.querySelector('#cache-list .cache-item'), null, { timeout: 15000 });
      assertEq(await page.evaluate(() => window.qwasmDemo.state), 'idle', 'deleting the loaded model unloads it');
      assertEq(external, [], 'requests outside the origin');
    }),
  },
];

await runIfMain(import.meta.url, tests);
