// The decode look-ahead (lookahead load option; qw_kernels_set_lookahead): 'auto' times the first plain decode
// steps with and without it and keeps the faster (rt.stats().lookahead says which and the two medians); 'on' and
// 'off' are kept as given; every choice gives the same tokens; a name outside the three is refused by name.
// Needs build/wasm and build/models/ (tools/gen/gen_test_models.sh); skips otherwise.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Qwasm } from '../../js/page/qwasm.js';
import { WASM_DIR, modelDir, wasmReady } from './helpers.mjs';

const MODEL = 'small-q4f16-op18-ext';
const dir = modelDir(MODEL);
const skip = !wasmReady() ? 'build/wasm has no model exports yet' : !dir ? `build/models/${MODEL} is missing (run tools/gen/gen_test_models.sh)` : false;
const gen = { promptIds: [3, 14, 15, 92, 65, 35], maxTokens: 20, greedy: true, ignoreEos: true, speculative: 'off' };

async function run(lookahead) {
  const rt = await Qwasm.load({ model: dir, wasmBase: WASM_DIR, ...(lookahead ? { lookahead } : {}) });
  try {
    const ids = [];
    let last = null;
    for await (const ev of rt.generate(gen)) { if (ev.kind === 'token') ids.push(ev.id); last = ev; }
    return { ids, la: last.stats.lookahead };
  } finally {
    await rt.dispose();
  }
}

test("lookahead: 'auto' times it on the first decode steps; 'on' and 'off' kept; the same tokens", { skip }, async () => {
  const auto = await run(undefined), on = await run('on'), off = await run('off');
  assert.equal(auto.la.how, 'timed', JSON.stringify(auto.la)); // 6 steps each way, within 20 tokens
  assert.ok(auto.la.step_ms_off > 0 && auto.la.step_ms_on > 0, JSON.stringify(auto.la));
  assert.equal(auto.la.on, auto.la.step_ms_on <= auto.la.step_ms_off, 'the faster one kept');
  assert.deepEqual(on.la, { on: true, how: 'option' });
  assert.deepEqual(off.la, { on: false, how: 'option' });
  assert.deepEqual(on.ids, auto.ids);
  assert.deepEqual(off.ids, auto.ids);
  assert.equal(auto.ids.length, gen.maxTokens);
});

test('lookahead: a name outside auto, on, off is refused by name', { skip }, async () => {
  await assert.rejects(Qwasm.load({ model: dir, wasmBase: WASM_DIR, lookahead: 'fast' }),
    (e) => e.code === 'ARG' && /lookahead/.test(e.message));
});
