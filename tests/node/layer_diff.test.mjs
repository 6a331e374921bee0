// tools/ref/layer_diff.mjs on the test models: qwasm's hidden state after every layer's attention and MLP residual
// sum (and the final norm) against onnxruntime-node's, for the prompt of each model's ref.json. The relative
// error of layer l (0-based) must stay under PER_LAYER * (l + 1): it may grow with depth by about one rounding
// step per layer, not faster. PER_LAYER is about 3x (fp16) to 5x (fp32) the errors measured on 2026-12-02:
// fp32 compute (accuracy_level 0, fp32 graph) 6e-7..3e-6; fp16 graphs (fp32 compute, onnxruntime rounds to fp16
// where qwasm's fp32 summation order differs) 4e-5..4e-4; accuracy_level 4 (int8 activations quantised as
// MLAS does, so both engines feed the same int8 codes) 0..3e-5.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { CLI, modelDir } from './helpers.mjs';
import { layerDiff } from '../../tools/ref/layer_diff.mjs';

const CASES = [
  { model: 'tiny-fp32-op14', perLayer: 5e-6 },
  { model: 'tiny-q4f16-op18-ext', perLayer: 4e-4 },
  { model: 'small-q4f16-op18-ext', perLayer: 4e-4 },
  { model: 'tiny-q4f16-acc4', perLayer: 1e-4 },
];

for (const { model, perLayer } of CASES) {
  const dir = modelDir(model);
  const skip = !fs.existsSync(CLI) ? `${CLI} missing` : !dir ? `build/models/${model} missing (bash tools/gen/gen_test_models.sh)` : false;
  test(`layer_diff ${model}: relative error of layer l <= ${perLayer} * (l + 1)`, { skip }, async () => {
    const cfg = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
    const r = await layerDiff(dir, { threads: 2 });
    const labels = r.rows.map((x) => x.label);
    assert.equal(r.rows.length, 2 * cfg.num_hidden_layers + 2, `every layer compared (${labels.join(' ')})`);
    assert.equal(r.rows[0].rel, 0, 'the embedding rows are the same bytes');
    for (const x of r.rows.slice(1)) {
      const l = x.label === 'norm' ? cfg.num_hidden_layers - 1 : Number(x.label.split('.')[0]);
      const bound = perLayer * (l + 1);
      assert.ok(x.rel <= bound, `${model} ${x.label}: relative error ${x.rel.toExponential(3)} > ${bound.toExponential(1)}`);
    }
  });
}
