// Reference greedy decoding with onnxruntime-node, the way optimum / Transformers.js drive a
// "text-generation-with-past" decoder: one prefill call with every prompt id and empty past
// (past_key_values.N.* of shape [1, kv_heads, 0, head_dim]), then one token per call feeding
// present.N.* back as past_key_values.N.*; attention_mask is all ones over past+current,
// position_ids are the absolute positions. Greedy = argmax (lowest id on ties); EOS does not stop it.
//
//   node tools/ref/ort_ref.mjs MODEL_DIR --prompt-ids 1,2,3 --steps 32 [--onnx onnx/model_q4f16.onnx]
//        [--out ref.json] [--threads 2] [--if-stale]
// --if-stale: do nothing when the output already holds this prompt/steps/onnx and is newer than the
// model folder's .gen_stamp.json.
//
// Output JSON (written to --out, default MODEL_DIR/ref.json):
//   { "format": "qwasm-ort-ref-1", "onnx": "onnx/...", "ort_version": "...", "vocab": V,
//     "logits_encoding": "array" | "f32-base64",
//     "prompt_ids": [...], "tokens": [...steps greedy ids...],
//     "steps": [ { "logits_last": <row>, "top2_margin": x, "top": [[id, logit], ...5] }, ... ] }
// steps[i] holds the logits of the last position of call i (call 0 = the prefill) and tokens[i] is
// their argmax. logits_last is a plain JSON array when vocab <= 4096, else ("f32-base64") the row as
// little-endian float32 bytes in base64: Float32Array from Buffer.from(s, 'base64').
import ort from 'onnxruntime-node';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export function findOnnx(modelDir) {
  const cfgPath = path.join(modelDir, 'config.json');
  if (fs.existsSync(cfgPath)) {
    const cfg = JSON.parse(fs.readFileSync(cfgPath, 'utf8'));
    const q = cfg.qwasm_test_model;
    if (q && q.onnx && fs.existsSync(path.join(modelDir, q.onnx))) return q.onnx;
    const dt = cfg['transformers.js_config']?.dtype;
    const byDtype = { fp32: 'model.onnx', fp16: 'model_fp16.onnx', q4: 'model_q4.onnx', q4f16: 'model_q4f16.onnx' };
    if (dt && byDtype[dt] && fs.existsSync(path.join(modelDir, 'onnx', byDtype[dt]))) return 'onnx/' + byDtype[dt];
  }
  for (const f of ['model_q4f16.onnx', 'model_q4.onnx', 'model.onnx']) {
    if (fs.existsSync(path.join(modelDir, 'onnx', f))) return 'onnx/' + f;
  }
  throw new Error(`no onnx model in ${modelDir}/onnx`);
}

export async function createSession(modelDir, onnxRel, threads = 2) {
  const file = path.join(modelDir, onnxRel);
  const opts = { intraOpNumThreads: threads, interOpNumThreads: 1, executionMode: 'sequential',
                 graphOptimizationLevel: 'all', logSeverityLevel: 3 };
  return ort.InferenceSession.create(file, opts); // external data is found next to the file
}

function kvShapeFromMeta(sess, name, cfg) {
  // [batch, kv_heads, past, head_dim]: take kv_heads/head_dim from the session metadata when
  // it has them, else from config.json.
  const meta = sess.inputMetadata?.find?.((m) => m.name === name);
  const s = meta && meta.shape;
  const kv = s && typeof s[1] === 'number' ? s[1] : cfg.num_key_value_heads;
  const hd = s && typeof s[3] === 'number' ? s[3] : cfg.hidden_size / cfg.num_attention_heads;
  return [kv, hd];
}

function argmaxTop(row, k = 5) {
  const top = []; // [id, logit] sorted descending, ties -> lower id first
  for (let i = 0; i < row.length; i++) {
    const v = row[i];
    if (top.length < k || v > top[top.length - 1][1]) {
      let j = top.length;
      while (j > 0 && top[j - 1][1] < v) j--;
      top.splice(j, 0, [i, v]);
      if (top.length > k) top.pop();
    }
  }
  return top;
}

export async function runGreedy(modelDir, { promptIds, steps = 32, onnx, threads = 2, session } = {}) {
  const cfg = JSON.parse(fs.readFileSync(path.join(modelDir, 'config.json'), 'utf8'));
  const onnxRel = onnx || findOnnx(modelDir);
  const sess = session || await createSession(modelDir, onnxRel, threads);
  const pastNames = sess.inputNames.filter((n) => n.startsWith('past_key_values.'));
  const kvShape = Object.fromEntries(pastNames.map((n) => [n, kvShapeFromMeta(sess, n, cfg)]));
  const i64 = (arr) => BigInt64Array.from(arr, (v) => BigInt(v));
  let past = Object.fromEntries(pastNames.map((n) => {
    const [kv, hd] = kvShape[n];
    return [n, new ort.Tensor('float32', new Float32Array(0), [1, kv, 0, hd])];
  }));
  let pastLen = 0;
  let cur = promptIds.slice();
  const tokens = [], stepsOut = [];
  let vocab = 0;
  for (let step = 0; step < steps; step++) {
    const n = cur.length, total = pastLen + n;
    const feeds = {
      input_ids: new ort.Tensor('int64', i64(cur), [1, n]),
      attention_mask: new ort.Tensor('int64', i64(new Array(total).fill(1)), [1, total]),
    };
    if (sess.inputNames.includes('position_ids')) {
      feeds.position_ids = new ort.Tensor('int64', i64(Array.from({ length: n }, (_, i) => pastLen + i)), [1, n]);
    }
    Object.assign(feeds, past);
    const out = await sess.run(feeds);
    const lg = out.logits;
    vocab = lg.dims[2];
    const row = new Float32Array(lg.data.buffer, lg.data.byteOffset + (n - 1) * vocab * 4, vocab).slice();
    const top = argmaxTop(row);
    const tok = top[0][0];
    tokens.push(tok);
    stepsOut.push({ row, top2_margin: top[0][1] - top[1][1], top });
    const next = {};
    for (const pn of pastNames) next[pn] = out[pn.replace('past_key_values.', 'present.')];
    past = next;
    pastLen = total;
    cur = [tok];
  }
  return { onnx: onnxRel, vocab, tokens, steps: stepsOut, session: sess };
}

export function encodeRef(promptIds, r) {
  const b64 = r.vocab > 4096;
  return {
    format: 'qwasm-ort-ref-1',
    onnx: r.onnx,
    ort_version: ort.env?.versions?.common || ort.env?.versions?.node || 'unknown',
    vocab: r.vocab,
    logits_encoding: b64 ? 'f32-base64' : 'array',
    prompt_ids: promptIds,
    tokens: r.tokens,
    steps: r.steps.map((s) => ({
      logits_last: b64 ? Buffer.from(s.row.buffer, s.row.byteOffset, s.row.byteLength).toString('base64')
                       : Array.from(s.row),
      top2_margin: s.top2_margin,
      top: s.top,
    })),
  };
}

/** Decodes steps[i].logits_last of a ref.json object into a Float32Array. */
export function decodeLogits(ref, i) {
  const v = ref.steps[i].logits_last;
  if (ref.logits_encoding === 'f32-base64') {
    const b = Buffer.from(v, 'base64');
    return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
  }
  return Float32Array.from(v);
}

async function main(argv) {
  const args = { steps: 32, threads: 2 };
  const pos = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => { if (i + 1 >= argv.length) throw new Error(`${a} needs a value`); return argv[++i]; };
    if (a === '--prompt-ids') args.promptIds = val().split(',').filter((s) => s !== '').map(Number);
    else if (a === '--steps') args.steps = +val();
    else if (a === '--onnx') args.onnx = val();
    else if (a === '--out') args.out = val();
    else if (a === '--threads') args.threads = +val();
    else if (a === '--if-stale') args.ifStale = true;
    else if (a === '-h' || a === '--help') { pos.length = 0; break; }
    else if (a.startsWith('--')) throw new Error(`unknown option ${a}`);
    else pos.push(a);
  }
  if (pos.length !== 1 || !args.promptIds || !args.promptIds.length) {
    console.error('usage: node tools/ref/ort_ref.mjs MODEL_DIR --prompt-ids 1,2,3 [--steps 32] [--onnx onnx/model.onnx] ' +
                  '[--out MODEL_DIR/ref.json] [--threads 2] [--if-stale]');
    process.exit(2);
  }
  const modelDir = pos[0];
  const t0 = Date.now();
  const outPath = args.out || path.join(modelDir, 'ref.json');
  if (args.ifStale && fs.existsSync(outPath)) {
    // current = same prompt, steps and onnx file, and newer than the model's generator stamp
    try {
      const old = JSON.parse(fs.readFileSync(outPath, 'utf8'));
      const stamp = path.join(modelDir, '.gen_stamp.json');
      const onnxRel = args.onnx || findOnnx(modelDir);
      if (old.format === 'qwasm-ort-ref-1' && old.onnx === onnxRel && old.tokens.length === args.steps &&
          old.prompt_ids.join(',') === args.promptIds.join(',') &&
          (!fs.existsSync(stamp) || fs.statSync(stamp).mtimeMs <= fs.statSync(outPath).mtimeMs)) {
        console.log(`ort_ref: ${path.basename(path.resolve(modelDir))} up to date -> ${outPath}`);
        return;
      }
    } catch { /* regenerate */ }
  }
  const r = await runGreedy(modelDir, args);
  const out = outPath;
  fs.writeFileSync(out, JSON.stringify(encodeRef(args.promptIds, r)) + '\n');
  const minMargin = Math.min(...r.steps.map((s) => s.top2_margin));
  console.log(`ort_ref: ${path.basename(path.resolve(modelDir))} ${r.onnx} prompt=${args.promptIds.length} ` +
              `steps=${args.steps} distinct=${new Set(r.tokens).size} min_margin=${minMargin.toFixed(4)} ` +
              `tokens=${r.tokens.slice(0, 12).join(',')}${r.tokens.length > 12 ? ',...' : ''} ` +
              `(${((Date.now() - t0) / 1000).toFixed(1)} s) -> ${out}`);
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).catch((e) => { console.error('ort_ref:', e.message || e); process.exit(1); });
}
