// Speculative decoding through the JS runtime and the CLI: `speculative` ('auto' by default) gives the tokens of
// plain decoding, greedy and sampled, with drafted / accepted counters in rt.stats() and the events; the CLI's
// --speculative likewise, with spec_* in --json. On tiny-copy (a generated model that repeats its text) drafts are
// accepted. QW_SPEC_BIG=1 (the big stage) also checks the 1.5B-shaped model natively: same greedy tokens.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { Qwasm } from '../../js/page/qwasm.js';
import { CLI, MODELS, WASM_DIR, modelDir, wasmReady } from './helpers.mjs';

const dir = modelDir('tiny-copy');
const PROMPT = fs.existsSync(path.join(MODELS, 'tiny-copy', 'ref.json'))
  ? JSON.parse(fs.readFileSync(path.join(MODELS, 'tiny-copy', 'ref.json'), 'utf8')).prompt_ids : null;
const skipModel = !dir || !PROMPT ? 'build/models/tiny-copy is missing (run tools/gen/gen_test_models.sh)' : false;
const skipWasm = skipModel || (!wasmReady() ? 'build/wasm has no model exports' : false);
const skipCli = skipModel || (!fs.existsSync(CLI) ? 'no native CLI' : false);

async function collect(rt, opts) {
  const ids = []; let last = null;
  for await (const ev of rt.generate(opts)) { if (ev.kind === 'token') ids.push(ev.id); last = ev; }
  return { ids, last };
}

function cli(model, ids, extra) {
  const r = spawnSync(CLI, ['run', model, '--prompt-ids', ids.join(','), '--json', '--ignore-eos', ...extra],
                      { encoding: 'utf8', maxBuffer: 64 << 20 });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout.trim().split('\n').pop());
}

test('JS: speculative on / auto give plain decoding\'s tokens, with counters', { skip: skipWasm }, async () => {
  const rt = await Qwasm.load({ model: dir, wasmBase: WASM_DIR });
  try {
    const base = { promptIds: PROMPT, maxTokens: 40, ignoreEos: true };
    for (const sampling of [{ greedy: true }, { temperature: 0.9, topK: 20, topP: 0.9, seed: 3 }]) {
      const off = await collect(rt, { ...base, ...sampling, speculative: false });
      const s0 = (await rt.stats()).speculative;
      const on = await collect(rt, { ...base, ...sampling, speculative: 'on' });
      const auto = await collect(rt, { ...base, ...sampling });
      assert.deepEqual(on.ids, off.ids, 'on == off');
      assert.deepEqual(auto.ids, off.ids, 'auto (default) == off');
      assert.equal(off.last.specDrafted, 0);
      assert.ok(on.last.specAccepted > 0 && on.last.specAccepted <= on.last.specDrafted, JSON.stringify(on.last));
      const s1 = (await rt.stats()).speculative;
      assert.equal(s1.drafted - s0.drafted, on.last.specDrafted + auto.last.specDrafted, 'rt.stats() counts them');
      assert.equal(s1.accepted - s0.accepted, on.last.specAccepted + auto.last.specAccepted);
    }
  } finally { await rt.dispose(); }
});

test('CLI: --speculative auto|on|off, same tokens, spec_* in --json; a bad value is refused', { skip: skipCli }, () => {
  const off = cli(dir, PROMPT, ['--greedy', '--max-tokens', '40', '--speculative', 'off']);
  const on = cli(dir, PROMPT, ['--greedy', '--max-tokens', '40', '--speculative', 'on', '--spec-draft', '6']);
  const auto = cli(dir, PROMPT, ['--greedy', '--max-tokens', '40']);
  assert.deepEqual(on.ids, off.ids);
  assert.deepEqual(auto.ids, off.ids);
  assert.equal(off.spec_drafted, 0);
  assert.ok(on.spec_accepted > 0 && on.spec_steps > 0, JSON.stringify(on));
  const r = spawnSync(CLI, ['run', dir, '--prompt-ids', '1,2', '--speculative', 'maybe'], { encoding: 'utf8' });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /--speculative takes auto, on or off/);
});

const big = modelDir('qwen2.5-1.5b-q4f16-op18-ext');
test('CLI on the 1.5B shape: speculative greedy tokens equal plain decoding\'s', {
  skip: process.env.QW_SPEC_BIG !== '1' ? 'QW_SPEC_BIG=1 (big stage) runs it' : !big ? 'no 1.5B model' : !fs.existsSync(CLI) ? 'no native CLI' : false,
}, () => {
  // a prompt that repeats itself so that drafts are made (random weights accept few of them)
  const half = Array.from({ length: 32 }, (_, i) => 1000 + ((i * 7919) % 50000));
  const ids = [...half, ...half];
  const off = cli(big, ids, ['--greedy', '--max-tokens', '48', '--speculative', 'off']);
  const on = cli(big, ids, ['--greedy', '--max-tokens', '48', '--speculative', 'on']);
  assert.deepEqual(on.ids, off.ids);
  // Random full-size weights rarely repeat an n-gram of the prompt, so drafts may not be made here at all (seen:
  // 0 steps); the drafted path on this shape is exercised by the copy models (tiny-copy above; the 1.5B copy model
  // by tools/bench/bench_spec.mjs). The count is printed, not asserted.
  console.log(`# 1.5B: ${on.spec_drafted} drafted, ${on.spec_accepted} accepted in ${on.spec_steps} steps`);
});
