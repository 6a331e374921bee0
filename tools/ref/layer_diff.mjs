// Per-layer comparison of qwasm against onnxruntime-node: both run one prefill of the same prompt ids, and the
// hidden states after each layer's attention (/model/layers.N/Add) and MLP (/model/layers.N/Add_1) residual
// additions, the embedding and the final norm are compared as relative errors ||qwasm - ort|| / ||ort|| (over
// all positions, and at the last one). onnxruntime gets them as extra graph outputs (the graph is edited with
// Debian's python3-onnx into a temporary .onnx next to the original, so that its external data resolves inside
// the folder as onnxruntime requires, and removed afterwards); qwasm writes them with
// `qwasm run --dump` (the C API's qw_model_set_tap). Where the error first grows is where the engines differ.
//   node tools/ref/layer_diff.mjs MODEL_DIR [--prompt-ids 1,2,3] [--threads 2] [--onnx onnx/x.onnx] [--json]
//        [--names a,b,c]    other ONNX value names to compare instead (e.g. one layer's q_proj, o_proj outputs)
// Default prompt: the model's ref.json prompt when there is one, else ids 1..11. Needs build/native/qwasm.
import ort from 'onnxruntime-node';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { findOnnx } from './ort_ref.mjs';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const CLI = path.join(REPO, 'build/native/qwasm');
const PY = '/usr/bin/python3';

// Adds the named values as graph outputs (elem type of the embedding: fp16 in q4f16 graphs) and writes the
// graph to OUT (external data references unchanged). Prints the names that exist, as JSON.
const EDIT_PY = `
import json, os, sys
import onnx
from onnx import helper
src, out, names = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
m = onnx.load(src, load_external_data=False)
g = m.graph
produced = {o for n in g.node for o in n.output}
inits = {t.name: t for t in g.initializer}
elem = onnx.TensorProto.FLOAT
for n in g.node:
    if n.op_type == 'Gather' and n.input[0] in inits:
        elem = inits[n.input[0]].data_type
        break
have = [x for x in names if x in produced]
outs = {o.name for o in g.output}
for x in have:
    if x not in outs:
        g.output.append(helper.make_tensor_value_info(x, elem, None))
onnx.save(m, out)
print(json.dumps(have))
`;

function parseArgs(argv) {
  const a = { dir: null, promptIds: null, threads: 2, onnx: null, json: false, names: null };
  for (let i = 0; i < argv.length; i++) {
    const o = argv[i];
    if (o === '--prompt-ids') a.promptIds = argv[++i].split(',').map(Number);
    else if (o === '--threads') a.threads = Number(argv[++i]);
    else if (o === '--onnx') a.onnx = argv[++i];
    else if (o === '--json') a.json = true;
    else if (o === '--names') a.names = argv[++i].split(',').filter(Boolean);
    else if (o.startsWith('-')) throw new Error(`layer_diff: unknown option ${o}`);
    else a.dir = o;
  }
  if (!a.dir) throw new Error('usage: node tools/ref/layer_diff.mjs MODEL_DIR [--prompt-ids 1,2,3] [--threads N] [--json]');
  return a;
}

function halfToFloat(h) {
  const e = (h >> 10) & 31, f = h & 1023;
  const v = e === 0 ? f * 2 ** -24 : e === 31 ? (f ? NaN : Infinity) : (1024 + f) * 2 ** (e - 25);
  return h & 0x8000 ? -v : v;
}

/** x rounded to the nearest fp16 value (ties to even). */
function roundHalf(x) {
  const ax = Math.abs(x);
  if (!(ax > 0) || !Number.isFinite(ax)) return x;
  if (ax >= 65520) return x > 0 ? Infinity : -Infinity;
  const ulp = 2 ** Math.max(Math.floor(Math.log2(ax)) - 10, -24);
  const r = ax / ulp, f = Math.floor(r), d = r - f;
  const q = (d > 0.5 || (d === 0.5 && f % 2 === 1) ? f + 1 : f) * ulp;
  return x < 0 ? -q : q;
}

function toF32(t) {
  if (t.type === 'float32') return t.data;
  if (t.type === 'float16') {
    const d = t.data, out = new Float32Array(d.length);
    if (d instanceof Uint16Array) for (let i = 0; i < d.length; i++) out[i] = halfToFloat(d[i]);
    else for (let i = 0; i < d.length; i++) out[i] = Number(d[i]);
    return out;
  }
  throw new Error(`unexpected output type ${t.type}`);
}

/** The values compared, in graph order: embedding, per layer attention and MLP residual sums, final norm. */
export function layerNames(layers) {
  const names = [['embed', '/model/embed_tokens/Gather_output_0']];
  for (let i = 0; i < layers; i++) {
    names.push([`${i}.attn`, `/model/layers.${i}/Add_output_0`]);
    names.push([`${i}.mlp`, `/model/layers.${i}/Add_1_output_0`]);
  }
  names.push(['norm', '/model/norm/Mul_1_output_0']);
  return names;
}

async function ortHidden(dir, onnxRel, cfg, ids, names, threads) {
  const edited = path.join(dir, path.dirname(onnxRel), `.layer_diff-${process.pid}.onnx`);
  let sess;
  try {
    var have = JSON.parse(execFileSync(PY, ['-c', EDIT_PY, path.join(dir, onnxRel), edited, JSON.stringify(names)],
      { encoding: 'utf8' }));
    sess = await ort.InferenceSession.create(edited, { intraOpNumThreads: threads, interOpNumThreads: 1,
      executionMode: 'sequential', graphOptimizationLevel: 'all', logSeverityLevel: 3 });
  } finally {
    fs.rmSync(edited, { force: true });
  }
  const n = ids.length;
  const feeds = {
    input_ids: new ort.Tensor('int64', BigInt64Array.from(ids.map(BigInt)), [1, n]),
    attention_mask: new ort.Tensor('int64', new BigInt64Array(n).fill(1n), [1, n]),
    position_ids: new ort.Tensor('int64', BigInt64Array.from(ids.map((_, i) => BigInt(i))), [1, n]),
  };
  const kv = cfg.num_key_value_heads, hd = cfg.hidden_size / cfg.num_attention_heads;
  for (const name of sess.inputNames)
    if (name.startsWith('past_key_values.')) feeds[name] = new ort.Tensor('float32', new Float32Array(0), [1, kv, 0, hd]);
  const out = await sess.run(feeds, have);
  const res = {};
  for (const x of have) res[x] = { dims: out[x].dims, data: toF32(out[x]), f16: out[x].type === 'float16' };
  await sess.release?.();
  return res;
}

function qwasmHidden(dir, onnxRel, ids, names, threads, tmp) {
  const dump = path.join(tmp, 'qwasm');
  fs.mkdirSync(dump);
  const args = ['run', dir, '--prompt-ids', ids.join(','), '--greedy', '--max-tokens', '1', '--threads', String(threads),
    '--onnx', onnxRel, '--dump', names.join(','), '--dump-dir', dump];
  try {
    execFileSync(CLI, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    // a name the graph does not compute is reported but the others were written
    if (!fs.existsSync(path.join(dump, 'index.json'))) throw new Error(`qwasm run failed: ${e.stderr || e.message}`, { cause: e });
  }
  const res = {};
  for (const e of JSON.parse(fs.readFileSync(path.join(dump, 'index.json'), 'utf8'))) {
    const b = fs.readFileSync(path.join(dump, e.file));
    res[e.name] = { dims: e.dims, data: new Float32Array(b.buffer, b.byteOffset, b.length / 4) };
  }
  return res;
}

function relErr(a, b, from = 0, to = b.length) {
  let num = 0, den = 0, maxAbs = 0;
  for (let i = from; i < to; i++) {
    const d = a[i] - b[i];
    num += d * d;
    den += b[i] * b[i];
    maxAbs = Math.max(maxAbs, Math.abs(d));
  }
  return { rel: Math.sqrt(num / Math.max(den, 1e-30)), maxAbs, rms: Math.sqrt(den / Math.max(1, to - from)) };
}

/** Runs both engines on the model folder and returns { model, onnx, prompt, rows: [{ label, name, rel, relLast,
 * maxAbs, rms }] }. */
export async function layerDiff(dir, { promptIds = null, threads = 2, onnx = null, names: only = null } = {}) {
  const cfg = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
  const onnxRel = onnx || findOnnx(dir);
  let ids = promptIds;
  if (!ids) {
    const refPath = path.join(dir, 'ref.json');
    ids = fs.existsSync(refPath) ? JSON.parse(fs.readFileSync(refPath, 'utf8')).prompt_ids : [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];
  }
  const pairs = only ? only.map((n) => [n.replace(/^\/model\//, '').replace(/_output_0$/, ''), n]) : layerNames(cfg.num_hidden_layers);
  const names = pairs.map((p) => p[1]);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'qw-layer-diff-'));
  try {
    const o = await ortHidden(dir, onnxRel, cfg, ids, names, threads);
    const q = qwasmHidden(dir, onnxRel, ids, names, threads, tmp);
    const rows = [];
    for (const [label, name] of pairs) {
      if (!o[name] || !q[name]) continue;
      const b = o[name].data;
      // an fp16 value qwasm keeps in fp32 (only fp32 kernels read it, as in onnxruntime) is rounded to fp16 the way
      // onnxruntime's graph output cast rounds it, so that the comparison shows computation differences only
      const a = o[name].f16 ? q[name].data.map(roundHalf) : q[name].data;
      if (a.length !== b.length) throw new Error(`${name}: qwasm has ${a.length} values, onnxruntime ${b.length}`);
      const H = b.length / ids.length;
      const all = relErr(a, b);
      const last = relErr(a, b, b.length - H, b.length);
      rows.push({ label, name, rel: all.rel, relLast: last.rel, maxAbs: all.maxAbs, rms: all.rms });
    }
    return { model: path.basename(dir), onnx: onnxRel, prompt: ids.length, rows };
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

async function main() {
  const a = parseArgs(process.argv.slice(2));
  const r = await layerDiff(path.resolve(a.dir), a);
  if (a.json) { console.log(JSON.stringify(r)); return; }
  console.log(`layer_diff: ${r.model} (${r.onnx}), ${r.prompt} prompt tokens, qwasm vs onnxruntime-node ${ort.env.versions?.common ?? ''}`);
  console.log('value        rel.err(all)  rel.err(last)  max|diff|     rms(ort)   growth');
  let prev = null;
  const only = !!a.names;
  for (const x of r.rows) {
    const g = prev ? (x.rel / prev).toFixed(2) : '';
    console.log(`${x.label.padEnd(only ? 40 : 12)} ${x.rel.toExponential(3).padStart(12)}  ${x.relLast.toExponential(3).padStart(13)}  ` +
      `${x.maxAbs.toExponential(2).padStart(9)}  ${x.rms.toExponential(2).padStart(9)}  ${g.padStart(7)}`);
    prev = x.rel;
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((e) => { console.error(e.message || e); process.exit(1); });
}
