// The onnxruntime-web fallback in Chromium: a copy of the chat model with a Dropout inserted after its first
// Softmax (an op qwasm lacks; the identity at inference) is refused with UNSUPPORTED by default and, with
// `fallback: 'onnxruntime-web'`, generates the native CLI's greedy tokens of the original model, with
// onnxruntime-web served from the page's origin and no request elsewhere.
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { REPO, server, chromium, assert, assertEq, runIfMain, missingRuntime, chatModelName, nativeGreedy, DEFAULT_SYSTEM } from './lib.mjs';

const PROMPT = 'Redacta la epicrisis de un paciente con neumonía.';
const MAX = 12;

function dropoutCopy() {
  const good = path.join(REPO, 'build/models', chatModelName());
  const d = path.join(REPO, 'build/test-artifacts/models/fallback-dropout');
  fs.rmSync(d, { recursive: true, force: true });
  fs.cpSync(good, d, { recursive: true, filter: (src) => !src.endsWith('ref.json') });
  const onnx = path.join(d, 'onnx', fs.readdirSync(path.join(d, 'onnx')).find((f) => f.endsWith('.onnx')));
  execFileSync('/usr/bin/python3', [path.join(REPO, 'tools/gen/insert_dropout.py'), onnx]);
  return good;
}

export const tests = [
  {
    name: "fallback: an op qwasm lacks is refused by default and runs with fallback: 'onnxruntime-web' (CLI tokens)",
    needs: () => missingRuntime() || (fs.existsSync(path.join(REPO, 'node_modules/onnxruntime-web/dist/ort.wasm.min.mjs')) ? null : 'onnxruntime-web not installed'),
    fn: async () => {
      const good = dropoutCopy();
      const s = await server();
      const b = await chromium(s.origin, { timeout: 120000 });
      try {
        await b.page.goto(`${s.url}demo/`, { waitUntil: 'load' });
        const r = await b.page.evaluate(async ({ prompt, system, max }) => {
          const { Qwasm } = await import('/js/page/qwasm.js');
          const model = '/build/test-artifacts/models/fallback-dropout/';
          const out = {};
          try { await Qwasm.load({ model, cache: 'none' }); } catch (e) { out.refused = { code: e.code, message: e.message }; }
          const rt = await Qwasm.load({ model, cache: 'none', fallback: 'onnxruntime-web' });
          try {
            const ids = [];
            const messages = [{ role: 'system', content: system }, { role: 'user', content: prompt }];
            for await (const ev of rt.generate({ messages, maxTokens: max, greedy: true })) if (ev.kind === 'token') ids.push(ev.id);
            out.ids = ids;
            out.engine = (await rt.stats()).engine;
            out.reason = rt.info.fallback_reason;
          } finally { await rt.dispose(); }
          return out;
        }, { prompt: PROMPT, system: DEFAULT_SYSTEM, max: MAX });
        assert(r.refused && r.refused.code === 'UNSUPPORTED' && /Dropout/.test(r.refused.message), `refused by default: ${JSON.stringify(r.refused)}`);
        assertEq(r.engine, 'onnxruntime-web', 'stats().engine');
        assert(/Dropout/.test(r.reason), `fallback_reason names the op: ${r.reason}`);
        const ref = nativeGreedy(good, { prompt: PROMPT, system: DEFAULT_SYSTEM, maxTokens: MAX });
        assertEq(r.ids, ref.ids, 'fallback ids vs `qwasm run --greedy` on the original model');
        assertEq(b.external, [], 'requests outside the origin');
      } finally {
        await b.close();
        await s.close();
      }
    },
  },
];

await runIfMain(import.meta.url, tests);
