// Long prompts against onnxruntime-node: 2048 prompt positions (past the attention's 64-key tiles, its 24-row
// tasks and the KV cache's growth from 256 positions), then greedy tokens. qwasm in wasm (this build's kernels:
// relaxed multiply-add where the build has it) and natively must give onnxruntime-node's tokens on the generated
// test models whose logits have margins at that length (tiny, small). (The random 1.5B shapes do not: at 2048
// positions their logits are nearly flat and the first token already differs between any two engines; the calm
// 1.5B gives onnxruntime's tokens there, checked by hand: it takes minutes.)
// Needs build/wasm, build/native and build/models/ (tools/gen/gen_test_models.sh); skips otherwise.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { spawnSync } from 'node:child_process';
import { Qwasm } from '../../js/page/qwasm.js';
import { runGreedy } from '../../tools/ref/ort_ref.mjs';
import { CLI, WASM_DIR, modelDir, wasmReady } from './helpers.mjs';

const N = 2048, STEPS = 8;

for (const name of ['tiny-q4f16-op18-ext', 'small-q4f16-op18-ext']) {
  const dir = modelDir(name);
  const skip = !wasmReady() ? 'build/wasm has no model exports yet' : !dir ? `build/models/${name} is missing (run tools/gen/gen_test_models.sh)` : false;
  test(`${name}: ${N} prompt positions give onnxruntime-node's greedy tokens (wasm and native)`, { skip }, async () => {
    const vocab = JSON.parse(fs.readFileSync(`${dir}/config.json`, 'utf8')).vocab_size;
    const ids = Array.from({ length: N }, (_, i) => 1 + ((i * 7919) % (Math.min(vocab, 50000) - 1)));
    const ref = await runGreedy(dir, { promptIds: ids, steps: STEPS, threads: 2 });
    const rt = await Qwasm.load({ model: dir, wasmBase: WASM_DIR });
    try {
      const got = [];
      for await (const ev of rt.generate({ promptIds: ids, maxTokens: STEPS, greedy: true, ignoreEos: true, speculative: 'off' }))
        if (ev.kind === 'token') got.push(ev.id);
      assert.deepEqual(got, ref.tokens, 'wasm');
    } finally {
      await rt.dispose();
    }
    if (fs.existsSync(CLI)) {
      const r = spawnSync(CLI, ['run', dir, '--prompt-ids', ids.join(','), '--max-tokens', String(STEPS), '--greedy', '--ignore-eos',
        '--json', '--threads', '2'], { encoding: 'utf8', maxBuffer: 64 << 20 });
      assert.equal(r.status, 0, r.stderr);
      assert.deepEqual(JSON.parse(r.stdout.trim().split('\n').pop()).ids, ref.tokens, 'native');
    }
  });
}
