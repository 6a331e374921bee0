// Speculative decoding benchmark (native): qwasm's CLI with --speculative off and auto, and onnxruntime-node, on
// a copy-heavy summarisation prompt (tools/gen/spec_prompt.mjs: a synthetic Spanish clinical note + a request to
// summarise it) and the plain 64-token prompt of tools/bench/bench_native.mjs, 128 greedy tokens (eos ignored).
//   node tools/bench/bench_spec.mjs [--runs 3] [--decode 128] [--threads 2] [--no-ort] [--json OUT]
//                             [--copy-prompt build/spec/note.json] [MODEL_DIR...]
// (--copy-prompt: another tools/gen/spec_prompt.mjs output, e.g. --days 0 --out build/spec/note-short.json: a prefix
// of the same note, which the default copy model repeats as well, for a shorter prefill on a busy machine)
// Default models: build/models/qwen2.5-1.5b-copy (then -0.5b-copy), generated when missing with
// tools/gen/gen_model.py --copy-ids (a model that repeats the note: random weights accept few drafts, see gen_model.py).
// Runs alternate off / auto so that the machine's load hits both alike; medians. Prints a table and JSON.
// The draft-model rows (--draft DIR, default build/models/qwen2.5-0.5b-q4f16-op14 when it exists; --no-draft: none):
// each of --draft-targets (default the 1.5B shape and the calm 1.5B model) decodes the plain and the chat prompt
// with --speculative off, auto (prompt lookup), auto --draft DIR (lookup, else the draft model) and on --draft DIR
// --spec-no-lookup (the draft model only), alternating; --only-draft skips the copy-model rows.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const args = process.argv.slice(2);
const opt = (name, def) => { const i = args.indexOf(name); if (i < 0) return def; const v = args[i + 1]; args.splice(i, 2); return v; };
const flag = (name) => { const i = args.indexOf(name); if (i < 0) return false; args.splice(i, 1); return true; };
const runs = +opt('--runs', 3);
const decodeN = +opt('--decode', 128);
const threads = +opt('--threads', os.availableParallelism?.() ?? os.cpus().length);
const jsonOut = opt('--json', path.join(root, 'build', 'bench-spec.json'));
const noOrt = flag('--no-ort');
const noDraft = flag('--no-draft');
const onlyDraft = flag('--only-draft');
const draftDir = opt('--draft', path.join(root, 'build', 'models', 'qwen2.5-0.5b-q4f16-op14'));
const draftTargets = opt('--draft-targets', ['qwen2.5-1.5b-q4f16-op18-ext', 'qwen2.5-1.5b-calm-q4f16-op18-ext']
  .map((m) => path.join(root, 'build', 'models', m)).join(',')).split(',');
const cli = process.env.QW_CLI || path.join(root, 'build', 'native', 'qwasm');
const PY = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
const median = (xs) => { const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b); return s.length ? s[(s.length - 1) >> 1] : NaN; };
const run = (cmd, a) => { const r = spawnSync(cmd, a, { stdio: 'inherit' }); if (r.status !== 0) throw new Error(`${cmd} ${a.join(' ')} failed`); };

const note = path.join(root, 'build', 'spec', 'note.json');
if (!existsSync(note)) run(process.execPath, [path.join(root, 'tools', 'gen', 'spec_prompt.mjs')]);
const copyIds = JSON.parse(readFileSync(path.resolve(opt('--copy-prompt', note)), 'utf8')).ids;
const plainIds = Array.from({ length: 64 }, (_, i) => 1000 + ((i * 7919) % 50000));
let models = onlyDraft ? [] : args;
if (!models.length && !onlyDraft) {
  const d = path.join(root, 'build', 'models', 'qwen2.5-1.5b-copy');
  if (!existsSync(path.join(d, 'config.json')))
    run(PY, [path.join(root, 'tools', 'gen', 'gen_model.py'), '--size', '1.5b', '--copy-ids', note.replace(/\.json$/, '.copy.json'),
             '--name', 'qwen2.5-1.5b-copy']);
  models = [d];
}

function qwasm(dir, ids, spec, extra = []) {
  const a = ['run', dir, '--prompt-ids', ids.join(','), '--max-tokens', String(decodeN), '--greedy', '--ignore-eos',
             '--json', '--threads', String(threads), '--speculative', spec, ...extra];
  const r = spawnSync(cli, a, { encoding: 'utf8', maxBuffer: 256 << 20 });
  if (r.status !== 0) throw new Error(`qwasm run failed: ${r.stderr.trim().split('\n').pop()}`);
  const j = JSON.parse(r.stdout.trim().split('\n').pop());
  return { decode_tok_s: j.decode_tok_s, prefill_tok_s: j.prefill_tok_s, ids: j.ids, drafted: j.spec_drafted,
           accepted: j.spec_accepted, steps: j.spec_steps, draft_drafted: j.draft_drafted ?? 0,
           draft_accepted: j.draft_accepted ?? 0, draft_ms: j.draft_ms ?? 0, peak_rss_mb: j.peak_rss_mb };
}
function ort(dir, ids) {
  const r = spawnSync(process.execPath, [path.join(root, 'tools', 'bench', 'bench_native.mjs'), '--ort-child', dir, String(threads),
                      ids.join(','), String(decodeN)], { encoding: 'utf8', maxBuffer: 256 << 20 });
  if (r.status !== 0) throw new Error(`onnxruntime-node failed: ${r.stderr.trim().split('\n').slice(-2).join(' ')}`);
  const j = JSON.parse(r.stdout.trim().split('\n').pop());
  return { decode_tok_s: j.decode_tok_s, prefill_tok_s: j.prefill_tok_s, ids: j.tokens };
}

const rows = [];
for (const dir of models) {
  const model = path.basename(dir);
  for (const [prompt, ids] of [['copy-heavy', copyIds], ['plain 64', plainIds]]) {
    const rs = { off: [], auto: [], ort: [] };
    for (let i = 0; i < runs; i++) {
      for (const spec of ['off', 'auto']) {
        const r = qwasm(dir, ids, spec);
        rs[spec].push(r);
        console.error(`[bench_spec] ${model} ${prompt} ${spec} run ${i + 1}: ${r.decode_tok_s.toFixed(2)} tok/s, ` +
                      `${r.accepted}/${r.drafted} accepted in ${r.steps} steps`);
      }
    }
    if (!noOrt) {
      try { rs.ort.push(ort(dir, ids)); console.error(`[bench_spec] ${model} ${prompt} ort: ${rs.ort[0].decode_tok_s.toFixed(2)} tok/s`); }
      catch (e) { console.error(`[bench_spec] ${e.message}`); }
    }
    const off = median(rs.off.map((r) => r.decode_tok_s)), auto = median(rs.auto.map((r) => r.decode_tok_s));
    const o = rs.ort.length ? rs.ort[0].decode_tok_s : NaN;
    const same = rs.auto.every((r) => JSON.stringify(r.ids) === JSON.stringify(rs.off[0].ids));
    const ortSame = rs.ort.length ? rs.ort[0].ids.filter((t, i) => t === rs.off[0].ids[i]).length : null;
    const a0 = rs.auto[0];
    rows.push({ model, prompt, prompt_len: ids.length, decode: decodeN, runs, off_tok_s: off, auto_tok_s: auto,
                speedup: auto / off, ort_tok_s: o, auto_vs_ort: auto / o, drafted: a0.drafted, accepted: a0.accepted,
                steps: a0.steps, acceptance: a0.drafted ? a0.accepted / a0.drafted : 0, tokens_equal: same,
                ort_equal_prefix: ortSame, all_off: rs.off.map((r) => r.decode_tok_s), all_auto: rs.auto.map((r) => r.decode_tok_s) });
  }
}
// the draft-model rows
const chatIds = [151644, 8948, 198, 2610, 525, 264, 10950, 17847, 13, 151645, 198, 151644, 872, 198, 9707, 0, 151645, 198,
  151644, 77091, 198];
const draftRows = [];
const haveDraft = !noDraft && existsSync(path.join(draftDir, 'config.json'));
if (!noDraft && !haveDraft) console.error(`[bench_spec] no draft model at ${draftDir} (tools/gen/gen_test_models.sh --big): no draft rows`);
for (const dir of haveDraft ? draftTargets.filter((d) => existsSync(path.join(d, 'config.json'))) : []) {
  const model = path.basename(dir);
  const modes = { off: ['off'], auto: ['auto'], draft: ['auto', ['--draft', draftDir]],
                  'draft only': ['on', ['--draft', draftDir, '--spec-no-lookup']] };
  for (const [prompt, ids] of [['plain 64', plainIds], ['chat', chatIds]]) {
    const rs = Object.fromEntries(Object.keys(modes).map((k) => [k, []]));
    for (let i = 0; i < runs; i++) {
      for (const [k, [spec, extra]] of Object.entries(modes)) {
        const r = qwasm(dir, ids, spec, extra);
        rs[k].push(r);
        console.error(`[bench_spec] ${model} <- ${path.basename(draftDir)} ${prompt} ${k} run ${i + 1}: ` +
                      `${r.decode_tok_s.toFixed(2)} tok/s, ${r.accepted}/${r.drafted} accepted ` +
                      `(draft model ${r.draft_accepted}/${r.draft_drafted}, ${r.draft_ms.toFixed(0)} ms), RSS ${r.peak_rss_mb} MB`);
      }
    }
    const med = (k) => median(rs[k].map((r) => r.decode_tok_s));
    const d0 = rs.draft[0], o0 = rs['draft only'][0];
    draftRows.push({ model, draft: path.basename(draftDir), prompt, prompt_len: ids.length, decode: decodeN, runs,
                     off_tok_s: med('off'), auto_tok_s: med('auto'), draft_tok_s: med('draft'), draft_only_tok_s: med('draft only'),
                     draft_drafted: d0.draft_drafted, draft_accepted: d0.draft_accepted, lookup_drafted: d0.drafted - d0.draft_drafted,
                     only_drafted: o0.draft_drafted, only_accepted: o0.draft_accepted,
                     only_acceptance: o0.draft_drafted ? o0.draft_accepted / o0.draft_drafted : 0, only_draft_ms: o0.draft_ms,
                     rss_off_mb: rs.off[0].peak_rss_mb, rss_draft_mb: d0.peak_rss_mb,
                     tokens_equal: Object.values(rs).every((l) => l.every((r) => JSON.stringify(r.ids) === JSON.stringify(rs.off[0].ids))) });
  }
}
const f = (x, d = 2) => (Number.isFinite(x) ? x.toFixed(d) : '–');
const lines = ['| model | prompt | plain tok/s | speculative (auto) tok/s | speedup | accepted / drafted (steps) | ' +
               'onnxruntime-node tok/s | auto vs ORT | same tokens |', '|---|---|---:|---:|---:|---|---:|---:|---|'];
for (const r of rows)
  lines.push(`| ${r.model} | ${r.prompt} (${r.prompt_len} ids) | ${f(r.off_tok_s)} | ${f(r.auto_tok_s)} | ${f(r.speedup)}× | ` +
             `${r.accepted} / ${r.drafted} (${r.steps}) | ${f(r.ort_tok_s)} | ${f(r.auto_vs_ort)}× | ${r.tokens_equal ? 'yes' : 'NO'}` +
             `${r.ort_equal_prefix != null ? `, ORT ${r.ort_equal_prefix}/${decodeN}` : ''} |`);
if (draftRows.length) {
  lines.push('', '| target | draft | prompt | plain tok/s | auto (lookup) tok/s | lookup, else draft model tok/s | ' +
             'draft model only tok/s | draft model accepted / drafted (its time) | peak RSS plain / with draft | same tokens |',
             '|---|---|---|---:|---:|---:|---:|---|---|---|');
  for (const r of draftRows)
    lines.push(`| ${r.model} | ${r.draft} | ${r.prompt} (${r.prompt_len} ids) | ${f(r.off_tok_s)} | ${f(r.auto_tok_s)} | ` +
               `${f(r.draft_tok_s)} | ${f(r.draft_only_tok_s)} | ${r.only_accepted} / ${r.only_drafted} ` +
               `(${(100 * r.only_acceptance).toFixed(0)}%, ${f(r.only_draft_ms, 0)} ms) | ${f(r.rss_off_mb, 0)} / ${f(r.rss_draft_mb, 0)} MB | ` +
               `${r.tokens_equal ? 'yes' : 'NO'} |`);
}
const meta = { date: new Date().toISOString(), cpu: os.cpus()[0]?.model, cores: os.cpus().length, threads, runs, decode: decodeN,
               load: os.loadavg() };
console.log(`speculative decoding, native, ${meta.date}, ${meta.cpu}, ${threads} threads, median of ${runs}, load ${meta.load.map((x) => x.toFixed(1)).join(' ')}`);
console.log(lines.join('\n'));
writeFileSync(jsonOut, JSON.stringify({ meta, rows, draft_rows: draftRows }, null, 1));
console.log(JSON.stringify({ meta, rows: rows.map(({ all_off, all_auto, ...r }) => r), draft_rows: draftRows }));
