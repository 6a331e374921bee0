// One rule for every source, in Chromium, from a bare outside page (tests/browser/bare.html): a folder whose
// config.json has no transformers.js_config loads the same .onnx with the same tokens (onnxruntime-node's
// reference) by URL (cache 'auto' and cache 'none') and as a picked folder; the URL probes the C rule's
// candidates with 1-byte ranged requests, and a folder with none of them fails naming what was tried.
import fs from 'node:fs';
import path from 'node:path';
import { REPO, server, chromium, assert, assertEq, runIfMain, missingRuntime } from './lib.mjs';

const MODEL = 'tiny-q4f16-op18-ext';
const N = 16;
const SERVED = path.join(REPO, 'build/test-sources'); // served by the dev server (it serves the repository)

function missing() {
  if (!fs.existsSync(path.join(REPO, 'build/models', MODEL, 'ref.json'))) return `build/models/${MODEL} missing (bash tools/gen/gen_test_models.sh)`;
  return missingRuntime();
}

/** build/test-sources/<name>/: the model without transformers.js_config; without the .onnx when empty. */
function prepare(name, { empty = false } = {}) {
  const src = path.join(REPO, 'build/models', MODEL), dir = path.join(SERVED, name);
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(path.join(dir, 'onnx'), { recursive: true });
  const files = ['generation_config.json', 'tokenizer.json', 'tokenizer_config.json', ...(empty ? [] : ['onnx/model_q4f16.onnx', 'onnx/model_q4f16.onnx_data'])];
  for (const f of files) if (fs.existsSync(path.join(src, f))) fs.copyFileSync(path.join(src, f), path.join(dir, f));
  const cfg = JSON.parse(fs.readFileSync(path.join(src, 'config.json'), 'utf8'));
  delete cfg['transformers.js_config'];
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(cfg));
  return dir;
}

export const tests = [
  {
    name: 'sources: no transformers.js_config -> the same .onnx and tokens by URL (auto, none) and as a picked folder',
    needs: missing,
    fn: async () => {
      const ref = JSON.parse(fs.readFileSync(path.join(REPO, 'build/models', MODEL, 'ref.json'), 'utf8'));
      const dir = prepare('plain');
      prepare('empty', { empty: true });
      const s = await server();
      const b = await chromium(s.origin);
      try {
        const { page } = b;
        await page.goto(`${s.url}tests/browser/bare.html`);
        await page.waitForFunction(() => window.bareReady === true);
        const url = `${s.url}build/test-sources/plain/`;
        const run = async (opts) => {
          const r = await page.evaluate((o) => window.bare.load(o), opts);
          assert(!r.error, `load ${JSON.stringify(opts)}: ${JSON.stringify(r.error)}`);
          const g = await page.evaluate(([p, n]) => window.bare.greedy(p, n), [ref.prompt_ids, N]);
          await page.evaluate(() => window.bare.dispose());
          return { onnx: r.onnx, ids: g.ids, source: r.stats.source };
        };
        const mark = s.requests.length;
        const byUrl = await run({ model: url });
        const probes = s.requests.slice(mark).filter((r) => r.range === 'bytes=0-0' && /\.onnx$/.test(r.url)).map((r) => new URL(r.url, s.url).pathname);
        assertEq(probes.slice(0, 3), ['/build/test-sources/plain/onnx/model.onnx', '/build/test-sources/plain/model.onnx',
          '/build/test-sources/plain/onnx/model_q4f16.onnx'], 'the C rule\'s candidates, probed in order');
        const none = await run({ model: url, cache: 'none' });
        await page.setInputFiles('#folder', dir);
        const picked = await run({ picked: true });
        assertEq(byUrl.onnx, 'onnx/model_q4f16.onnx', 'URL pick');
        assertEq(none.onnx, byUrl.onnx, "cache 'none' pick");
        assertEq(picked.onnx, byUrl.onnx, 'picked-folder pick');
        assertEq(byUrl.ids, ref.tokens.slice(0, N), 'URL tokens vs onnxruntime-node');
        assertEq(none.ids, byUrl.ids, "cache 'none' tokens");
        assertEq(picked.ids, byUrl.ids, 'picked-folder tokens');
        assertEq(none.source && none.source.kind, 'http', "cache 'none' reads the server directly");
        const e = await page.evaluate((u) => window.bare.load({ model: u }), `${s.url}build/test-sources/empty/`);
        assert(e.error && e.error.code === 'NOT_FOUND' && /tried .*onnx\/model\.onnx.*model\.onnx.*onnx\/model_fp16\.onnx/.test(e.error.message),
          `no .onnx: NOT_FOUND listing the candidates (${JSON.stringify(e.error)})`);
      } finally { await b.close(); await s.close(); fs.rmSync(SERVED, { recursive: true, force: true }); }
    },
  },
];

await runIfMain(import.meta.url, tests);
