// Native benchmark: qwasm's CLI and onnxruntime-node on the same model files, in one run.
//   node tools/bench/bench_native.mjs [--runs 3] [--threads 2] [--prompt-len 64] [--decode 128] [--mem-cap-mb 512]
//                               [--prompt-ids 1,2,3] [--json OUT.json] [--lengths 512,2048,4096,8192]
//                               [--cli-args "--kv-cache int8"] [--no-ort] [--label NAME] MODEL_DIR...
// Default models: the generated full-size shapes (tools/gen/gen_model.py --size 1.5b / 0.5b) when present.
// Figures: load seconds, prefill tokens/s (one prompt of --prompt-len ids), decode tokens/s (--decode
// greedy tokens, eos ignored), peak RSS. Medians over --runs; each engine runs in a fresh process.
// --lengths (long prompts, issue #18): one row per prompt length and engine, with TTFT and the decode rate at that
// position; onnxruntime-node then prefills in chunks of 512 (its decomposed attention holds S x T scores per head).
import { spawnSync } from 'node:child_process';
import fs, { existsSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(name);
  if (i < 0) return def;
  const v = args[i + 1];
  args.splice(i, 2);
  return v;
};
const runs = +opt('--runs', 3);
const threads = +opt('--threads', os.availableParallelism?.() ?? os.cpus().length);
const promptLen = +opt('--prompt-len', 64);
const decodeN = +opt('--decode', 128);
const memCap = +opt('--mem-cap-mb', 0);
const jsonOut = opt('--json', path.join(root, 'build', 'bench-native.json'));
const idsArg = opt('--prompt-ids', ''); // tools/bench/bench_browser.mjs passes the browser prompt's ids
const lengths = opt('--lengths', '').split(',').filter(Boolean).map(Number);
const cliExtra = opt('--cli-args', '').split(' ').filter(Boolean);
const ortChunk = lengths.length ? 512 : 0;
const noOrt = args.includes('--no-ort') ? (args.splice(args.indexOf('--no-ort'), 1), true) : false;
const label = opt('--label', 'qwasm'); // e.g. an A/B run of another build through QW_CLI
let models = args.length ? args : ['qwen2.5-1.5b-q4f16-op18-ext', 'qwen2.5-0.5b-q4f16-op14']
  .map((n) => path.join(root, 'build', 'models', n)).filter((d) => existsSync(d));
if (!models.length) {
  console.error('bench_native: no model folders; generate them with: /usr/bin/python3 tools/gen/gen_model.py --size 1.5b');
  process.exit(2);
}
const cli = process.env.QW_CLI || path.join(root, 'build', 'native', 'qwasm');

// A deterministic prompt of ordinary ids (no special tokens), unless given.
const makeIds = (n) => Array.from({ length: n }, (_, i) => 1000 + ((i * 7919) % 50000));
let promptIds = idsArg ? idsArg.split(',').map(Number) : makeIds(promptLen);
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s.length ? s[(s.length - 1) >> 1] : NaN; };

function runQwasm(dir, capMB, extra = []) {
  const a = ['run', dir, '--prompt-ids', promptIds.join(','), '--max-tokens', String(decodeN), '--greedy',
             '--ignore-eos', '--json', '--threads', String(threads), '--profile', ...cliExtra];
  if (lengths.length) a.push('--max-context', String(promptIds.length + decodeN + 1));
  if (capMB) a.push('--mem-cap-mb', String(capMB));
  a.push(...extra);
  const r = spawnSync(cli, a, { encoding: 'utf8', maxBuffer: 256 << 20 });
  if (r.status !== 0) throw new Error(`qwasm run failed: ${r.stderr.trim().split('\n').pop()}`);
  const last = JSON.parse(r.stdout.trim().split('\n').pop());
  return { load_s: last.load_s, prefill_tok_s: last.prefill_tok_s, decode_tok_s: last.decode_tok_s,
           ttft_s: (last.prefill_ms + (last.prompt_cache_ms || 0)) / 1000, prompt_cached: last.prompt_cached, peak_rss_mb: last.peak_rss_mb, tokens: last.ids, stats: last.stats };
}

// onnxruntime-node in a child process (its own peak RSS); the script is this file with --ort-child.
function runOrt(dir) {
  const r = spawnSync(process.execPath, [fileURLToPath(import.meta.url), '--ort-child', dir, String(threads),
                      promptIds.join(','), String(decodeN), String(ortChunk)], { encoding: 'utf8', maxBuffer: 256 << 20 });
  if (r.status !== 0) throw new Error(`onnxruntime-node failed: ${r.stderr.trim().split('\n').slice(-3).join(' ')}`);
  return JSON.parse(r.stdout.trim().split('\n').pop());
}

async function ortChild(dir, nThreads, ids, nDecode, chunk) {
  const ort = (await import('onnxruntime-node')).default;
  const cfg = JSON.parse(readFileSync(path.join(dir, 'config.json'), 'utf8'));
  const dtype = cfg['transformers.js_config']?.dtype;
  const onnx = path.join(dir, 'onnx', dtype && dtype !== 'fp32' ? `model_${dtype}.onnx` : 'model.onnx');
  const t0 = performance.now();
  const sess = await ort.InferenceSession.create(onnx, { intraOpNumThreads: nThreads, interOpNumThreads: 1,
                                                         graphOptimizationLevel: 'all' });
  const load_s = (performance.now() - t0) / 1000;
  const L = cfg.num_hidden_layers, kvh = cfg.num_key_value_heads, hd = cfg.hidden_size / cfg.num_attention_heads;
  const i64 = (a) => BigInt64Array.from(a.map(BigInt));
  let past = {};
  for (let l = 0; l < L; l++) for (const kv of ['key', 'value'])
    past[`past_key_values.${l}.${kv}`] = new ort.Tensor('float32', new Float32Array(0), [1, kvh, 0, hd]);
  const step = async (tokens, pos0) => {
    const n = tokens.length;
    const feeds = { input_ids: new ort.Tensor('int64', i64(tokens), [1, n]),
                    attention_mask: new ort.Tensor('int64', i64(new Array(pos0 + n).fill(1)), [1, pos0 + n]),
                    position_ids: new ort.Tensor('int64', i64(tokens.map((_, i) => pos0 + i)), [1, n]), ...past };
    const out = await sess.run(feeds);
    past = {};
    for (let l = 0; l < L; l++) for (const kv of ['key', 'value'])
      past[`past_key_values.${l}.${kv}`] = out[`present.${l}.${kv}`];
    const V = out.logits.dims[2], d = out.logits.data, off = (n - 1) * V;
    let best = 0;
    for (let v = 1; v < V; v++) if (d[off + v] > d[off + best]) best = v;
    return best;
  };
  let t = performance.now();
  let next;
  const c = chunk > 0 ? chunk : ids.length;
  for (let p = 0; p < ids.length; p += c) next = await step(ids.slice(p, p + c), p);
  const prefill_s = (performance.now() - t) / 1000;
  const tokens = [next];
  t = performance.now();
  for (let i = 1; i < nDecode; i++) tokens.push(next = await step([next], ids.length + i - 1));
  const decode_s = (performance.now() - t) / 1000;
  console.log(JSON.stringify({ load_s, prefill_tok_s: ids.length / prefill_s, ttft_s: prefill_s, decode_tok_s: (nDecode - 1) / decode_s,
                               peak_rss_mb: process.resourceUsage().maxRSS / 1024, tokens }));
}

if (args[0] === '--ort-child') {
  await ortChild(args[1], +args[2], args[3].split(',').map(Number), +args[4], +(args[5] || 0));
  process.exit(0);
}

const results = [];
for (const [li, plen] of (lengths.length ? lengths : [0]).entries()) {
if (plen) promptIds = makeIds(plen).map((x, i) => (i ? x : 1000 + li)); // another first id: no shared prefix
for (const dir of models) {
  const name = path.basename(dir);
  const engines = [[label, () => runQwasm(dir, 0)]];
  if (!noOrt) engines.push(['onnxruntime-node', () => runOrt(dir)]);
  if (memCap) engines.push([`qwasm cap ${memCap} MB`, () => runQwasm(dir, memCap)]);
  for (const [engine, fn] of engines) {
    const rs = [];
    for (let i = 0; i < runs; i++) {
      try { rs.push(fn()); } catch (e) { console.error(`${name} ${engine}: ${e.message}`); break; }
    }
    if (!rs.length) { results.push({ model: name, engine, error: true }); continue; }
    const row = { model: name, engine, runs: rs.length, prompt_len: promptIds.length };
    for (const k of ['load_s', 'ttft_s', 'prefill_tok_s', 'decode_tok_s', 'peak_rss_mb']) row[k] = median(rs.map((r) => r[k]));
    row.tokens_head = rs[0].tokens.slice(0, 16);
    if (rs[0].stats) row.profile = rs[0].stats;
    results.push(row);
  }
  const q = results.find((r) => r.model === name && r.engine === 'qwasm' && r.prompt_len === promptIds.length);
  const o = results.find((r) => r.model === name && r.engine === 'onnxruntime-node' && r.prompt_len === promptIds.length);
  if (q && o && q.tokens_head && o.tokens_head) {
    const same = q.tokens_head.filter((t, i) => t === o.tokens_head[i]).length;
    q.tokens_equal_to_ort_prefix = same;
  }
}
}

// the prompt cache (--lengths): a 2000-token prefix + 64 tokens, cold (prefilled, saved to a --prompt-cache file),
// then the same prefix + 64 other tokens in a new process: its TTFT includes reading and importing the file
const promptCacheRows = [];
if (lengths.length) {
  const pre = makeIds(2000).map((x, i) => (i ? x : 1090)), tail = (k) => Array.from({ length: 64 }, (_, i) => 2000 + k * 100 + i);
  const file = path.join(os.tmpdir(), `qwasm-bench-prompt-cache-${process.pid}.bin`);
  for (const dir of models) {
    try {
      promptIds = [...pre, ...tail(1)];
      const cold = runQwasm(dir, 0, ['--prompt-cache', file]);
      promptIds = [...pre, ...tail(2)];
      const warm = runQwasm(dir, 0, ['--prompt-cache', file]);
      promptCacheRows.push({ model: path.basename(dir), prefix: pre.length, cold_ttft_s: cold.ttft_s, reload_ttft_s: warm.ttft_s,
        reused: warm.prompt_cached, ratio: warm.ttft_s / cold.ttft_s, same_first_token: cold.tokens[0] !== undefined });
    } catch (e) { console.error(`prompt cache: ${e.message}`); }
    try { fs.rmSync(file, { force: true }); } catch {}
  }
}

const fmt = (x, d = 1) => (x === undefined || Number.isNaN(x) ? '–' : x.toFixed(d));
const lines = [
  `| model | engine | prompt | load s | TTFT s | prefill tok/s | decode tok/s | peak RSS MB | decode vs ORT |`,
  `|---|---|---:|---|---|---|---|---|---|`,
];
for (const r of results) {
  const o = results.find((x) => x.model === r.model && x.engine === 'onnxruntime-node' && x.prompt_len === r.prompt_len);
  lines.push(`| ${r.model} | ${r.engine} | ${r.prompt_len} | ${fmt(r.load_s, 2)} | ${fmt(r.ttft_s, 2)} | ${fmt(r.prefill_tok_s)} | ${fmt(r.decode_tok_s)} | ` +
             `${fmt(r.peak_rss_mb, 0)} | ${o && !r.error && !o.error ? fmt(r.decode_tok_s / o.decode_tok_s, 2) + '×' : '–'} |`);
}
const meta = { date: new Date().toISOString(), cpu: os.cpus()[0]?.model, cores: os.cpus().length, threads, runs,
               prompt_len: lengths.length ? lengths : promptIds.length, decode: decodeN, cli_args: cliExtra };
console.log(`native benchmark, ${meta.date}, ${meta.cpu}, ${threads} threads, median of ${runs}`);
console.log(lines.join('\n'));
for (const r of promptCacheRows)
  console.log(`prompt cache (${r.model}): ${r.prefix}-token prefix + 64 tokens, TTFT cold ${r.cold_ttft_s.toFixed(2)} s, ` +
              `in a new process with the file ${r.reload_ttft_s.toFixed(2)} s (${r.reused} positions reused): ${(100 * r.ratio).toFixed(1)} %`);
writeFileSync(jsonOut, JSON.stringify({ meta, results, prompt_cache: promptCacheRows }, null, 1));
console.log(JSON.stringify({ meta, results: results.map(({ profile, tokens_head, ...r }) => r), prompt_cache: promptCacheRows }));
