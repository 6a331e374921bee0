// Local folder (webkitdirectory) source: a private model is read from disk by the tab; no model request at all.
import path from 'node:path';
import {
  REPO, server, chromium, openDemo, shot, assert, assertEq, runIfMain, missingRuntime, chatModelName,
  loadAndWait, chat, nativeGreedy, setSettings, DEFAULT_SYSTEM,
} from './lib.mjs';

const PROMPT = 'Hola, ¿qué tal?';
const MAX = 16;

export const tests = [
  {
    name: 'folder: a picked local folder loads with zero model requests and gives the CLI tokens',
    needs: missingRuntime,
    fn: async () => {
      const s = await server();
      const b = await chromium(s.origin);
      try {
        const { page, external } = b;
        await openDemo(page, s.url, '?model=none-here'); // no probe; bundled source selected but we pick a folder
        const dir = path.join(REPO, 'build/models', chatModelName());
        await page.check('#src-folder');
        await page.setInputFiles('#model-folder', dir);
        await page.waitForFunction(() => /files/.test(document.getElementById('folder-summary').textContent));
        assert(await page.isChecked('#src-folder'), 'folder source selected');
        await setSettings(page, { greedy: true, maxTokens: MAX, system: DEFAULT_SYSTEM });
        const mark = s.requests.length;
        await loadAndWait(page);
        const r = await chat(page, PROMPT);
        const ref = nativeGreedy(dir, { prompt: PROMPT, system: DEFAULT_SYSTEM, maxTokens: MAX });
        assertEq(r.ids, ref.ids, 'folder ids vs CLI');
        const modelReqs = s.requests.slice(mark).filter((x) => x.url.includes('/build/models/'));
        assertEq(modelReqs.map((x) => x.url), [], 'no model-file requests for a local folder');
        await shot(page, 'chat-local-folder');
        assertEq(external, [], 'requests outside the origin');
      } finally { await b.close(); await s.close(); }
    },
  },
];

await runIfMain(import.meta.url, tests);
