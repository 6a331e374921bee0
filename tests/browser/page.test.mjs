// The demo page without a working model: structure, isolation, no external requests, error banners,
// keyboard, phone viewport. Runs as soon as the page and js/page/qwasm.js exist.
import fs from 'node:fs';
import path from 'node:path';
import { REPO, server, chromium, openDemo, shot, assert, assertEq, runIfMain } from './lib.mjs';

async function withPage(opts, fn) {
  const s = await server(opts.server || {});
  const b = await chromium(s.origin, opts);
  try { await fn({ s, ...b }); } finally { await b.close(); await s.close(); }
}

const needsJs = () => (fs.existsSync(path.join(REPO, 'js/page/qwasm.js')) ? null : 'js/page/qwasm.js missing');

export const tests = [];
tests.push(
  {
    name: 'page: initial state, isolated, labelled controls, no external requests',
    fn: () => withPage({}, async ({ s, page, external, consoleErrors }) => {
      await openDemo(page, s.url);
      assertEq(await page.evaluate(() => crossOriginIsolated), true, 'crossOriginIsolated');
      assertEq(await page.getAttribute('#thread-badge', 'data-mode'), 'mt', 'thread badge says multi-threaded');
      assert(/Multi-threaded/.test(await page.textContent('#thread-badge')), 'multi-threaded text');
      // every form control has an accessible name
      const unlabelled = await page.evaluate(() => [...document.querySelectorAll('input, select, textarea, button')]
        .filter((e) => e.type !== 'hidden' && !e.closest('[hidden]'))
        .filter((e) => !(e.labels && e.labels.length) && !e.getAttribute('aria-label') && !e.getAttribute('aria-labelledby') && !(e.textContent || '').trim())
        .map((e) => e.id || e.outerHTML.slice(0, 60)));
      assertEq(unlabelled, [], 'unlabelled controls');
      assertEq(await page.getAttribute('#transcript', 'aria-live'), 'polite', 'transcript aria-live');
      assert(await page.isDisabled('#send-btn'), 'send disabled before a model is loaded');
      assertEq(await page.inputValue('#model-url'), 'https://huggingface.co/onnx-community/Qwen2.5-0.5B-Instruct/resolve/main/', 'default URL');
      assert(/Nothing is uploaded/i.test(await page.textContent('#folder-note')), 'folder note says nothing is uploaded');
      const bundled = await page.evaluate(() => window.qwasmDemo.bundledUrl);
      if (bundled) assert(await page.isChecked('#src-bundled'), 'bundled model is the default source when it exists');
      await shot(page, 'page-initial');
      await page.waitForTimeout(500);
      assertEq(external, [], 'requests outside the origin');
      // the bundled-model probe (HEAD …/build/models/NAME/config.json) may 404 for the first candidates
      assertEq(consoleErrors.filter((e) => !/favicon|\/build\/models\/[^/]+\/config\.json/.test(e)), [], 'console errors');
    }),
  },
  {
    name: 'page: ?model= selects the bundled source without probing; example prompt; keyboard',
    fn: () => withPage({}, async ({ s, page, external }) => {
      await openDemo(page, s.url, '?model=some-model');
      assert(await page.isChecked('#src-bundled'), 'bundled checked');
      assert((await page.evaluate(() => window.qwasmDemo.bundledUrl)).endsWith('/build/models/some-model/'), 'bundled url');
      assertEq(s.requests.filter((r) => r.url.includes('/build/models/')).length, 0, 'no probe request with ?model=');
      await page.click('#example-btn');
      // no model loaded: the example lands in the (disabled) box; after a load Enter sends it
      assert((await page.inputValue('#prompt')).startsWith('Redacta la epicrisis de un paciente de 67 años'), 'example prompt');
      assertEq(external, [], 'external requests');
    }),
  },
  {
    name: 'page: 404 model URL shows an actionable error banner and stays usable',
    needs: needsJs,
    fn: () => withPage({}, async ({ s, page, external }) => {
      await openDemo(page, s.url);
      await page.check('#src-url');
      await page.fill('#model-url', `${s.url}build/models/does-not-exist/`);
      await page.click('#load-btn');
      await page.waitForSelector('#banner:not([hidden])', { timeout: 60000 });
      const code = await page.getAttribute('#banner', 'data-code');
      const text = await page.textContent('#banner');
      await shot(page, 'error-404');
      assertEq(code, 'NOT_FOUND', 'banner code');
      assert(/check the model url/i.test(text), `banner tells what to do: ${text}`);
      assert(/config\.json/.test(text), 'banner names the file');
      assertEq(await page.evaluate(() => window.qwasmDemo.state), 'idle', 'state back to idle');
      assert(await page.isEnabled('#load-btn'), 'load button usable again');
      await page.click('#banner-close');
      assert(await page.isHidden('#banner'), 'banner dismissable');
      assertEq(external, [], 'external requests');
    }),
  },
  {
    name: 'page: phone viewport (390x844) lays out in one column without horizontal scroll',
    fn: () => withPage({ viewport: { width: 390, height: 844 }, isMobile: true, deviceScaleFactor: 2 }, async ({ s, page, external }) => {
      await openDemo(page, s.url);
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
      assert(overflow <= 1, `horizontal overflow ${overflow}px`);
      const cols = await page.evaluate(() => getComputedStyle(document.querySelector('.layout')).gridTemplateColumns.split(' ').length);
      assertEq(cols, 1, 'one column');
      const sendBox = await page.locator('#send-btn').boundingBox();
      assert(sendBox && sendBox.height >= 40, 'touch-sized send button');
      await shot(page, 'page-phone');
      assertEq(external, [], 'external requests');
    }),
  },
  {
    name: 'page: --no-isolation server shows single-threaded mode',
    fn: () => withPage({ server: { isolation: false } }, async ({ s, page, external }) => {
      await openDemo(page, s.url);
      assertEq(await page.evaluate(() => crossOriginIsolated), false, 'not isolated');
      assertEq(await page.getAttribute('#thread-badge', 'data-mode'), 'st', 'thread badge single-threaded');
      assert(await page.isDisabled('#threads'), 'threads input disabled');
      await shot(page, 'page-single-thread');
      assertEq(external, [], 'external requests');
    }),
  },
);

await runIfMain(import.meta.url, tests);
