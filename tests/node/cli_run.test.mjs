// `qwasm run`: the decode loop through the CLI — published fixture ids, streaming JSON, seeds, stop
// strings, the context limit, chat, and clear failures.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const cli = process.env.QW_CLI || path.join(root, 'build', 'native', 'qwasm');
const fixtures = process.env.QW_FIXTURES || path.join(root, '..', 'shared', 'fixtures');
const llama = path.join(fixtures, 'tiny-llama-genai-fp16');
const small = path.join(root, 'build', 'models', 'small-q4f16-op18-ext');

function run(args, input) {
  const r = spawnSync(cli, args, { encoding: 'utf8', input, maxBuffer: 64 << 20 });
  const lines = r.stdout.trim().split('\n').filter(Boolean);
  let last = null;
  try { last = JSON.parse(lines[lines.length - 1]); } catch { /* not JSON */ }
  return { status: r.status, stdout: r.stdout, stderr: r.stderr, lines, last };
}

test('the genai fixture reproduces its published greedy continuations', () => {
  const rows = [['0,0,0,52', [12102, 30463, 4666, 17192, 3266, 18061]],
                ['0,0,195,731', [29592, 4877, 18112, 22607, 12936, 997]]];
  for (const [prompt, want] of rows) {
    const r = run(['run', llama, '--prompt-ids', prompt, '--max-tokens', '6', '--greedy', '--json']);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(r.last.ids, want);
    assert.equal(r.lines.length, 7, 'one line per token, then the summary');
    assert.ok(!('text' in r.last), 'text is omitted without a readable tokenizer');
    assert.match(r.stderr, /tokenizer\.json.*not supported/);
    for (const k of ['load_s', 'prefill_tok_s', 'decode_tok_s', 'peak_rss_mb']) assert.equal(typeof r.last[k], 'number');
  }
});

test('text prompts need a tokenizer: a clear error, not a crash', () => {
  const r = run(['run', llama, '--prompt', 'hola', '--max-tokens', '2']);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /tokenizer\.json.*--prompt-ids/);
});

test('bad arguments and missing folders fail clearly', () => {
  assert.equal(run(['run', llama]).status, 2);
  assert.equal(run(['run', llama, '--prompt-ids', '1,x']).status, 2);
  const r = run(['run', '/nonexistent/model', '--prompt-ids', '1']);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /nonexistent\/model/);
  const big = run(['run', llama, '--prompt-ids', '99999999', '--max-tokens', '1']);
  assert.equal(big.status, 1);
  assert.match(big.stderr, /outside the vocabulary/);
});

test('the context limit is enforced with a clear error', () => {
  const r = run(['run', llama, '--prompt-ids', '0,0,0,52,1,2,3,4,5,6', '--max-context', '8', '--greedy']);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /context/);
  const ok = run(['run', llama, '--prompt-ids', '0,0,0,52', '--max-context', '8', '--greedy', '--json']);
  assert.equal(ok.status, 0, ok.stderr);
  assert.ok(ok.last.ids.length <= 4);
  assert.equal(ok.last.stop_reason, 'context');
});

const haveSmall = existsSync(path.join(small, 'onnx'));

test('greedy chat on a generated Qwen2 model: streamed text adds up, seeds reproduce', { skip: !haveSmall && 'no generated model' }, () => {
  const base = ['run', small, '--prompt', 'Redacta la epicrisis de un paciente de 67 años', '--json'];
  const g = run([...base, '--greedy', '--max-tokens', '12']);
  assert.equal(g.status, 0, g.stderr);
  assert.equal(g.last.ids.length, 12);
  const streamed = g.lines.slice(0, -1).map((l) => JSON.parse(l).text).join('');
  assert.equal(streamed, g.last.text);
  const again = run([...base, '--greedy', '--max-tokens', '12']);
  assert.deepEqual(again.last.ids, g.last.ids);

  const s1 = run([...base, '--temperature', '1.5', '--top-k', '0', '--top-p', '1', '--seed', '7', '--max-tokens', '16']);
  const s2 = run([...base, '--temperature', '1.5', '--top-k', '0', '--top-p', '1', '--seed', '7', '--max-tokens', '16']);
  const s3 = run([...base, '--temperature', '1.5', '--top-k', '0', '--top-p', '1', '--seed', '8', '--max-tokens', '16']);
  assert.deepEqual(s1.last.ids, s2.last.ids, 'same seed, same tokens');
  assert.notDeepEqual(s1.last.ids, s3.last.ids, 'another seed, other tokens');
});

test('stop strings end the text before them', { skip: !haveSmall && 'no generated model' }, () => {
  const base = ['run', small, '--prompt', 'Hola', '--greedy', '--json', '--max-tokens', '24'];
  const full = run(base);
  assert.equal(full.status, 0, full.stderr);
  const text = full.last.text;
  // a stop string from the middle of the greedy text
  const cut = Math.floor(text.length / 2);
  const stop = text.slice(cut, cut + 3);
  const want = text.slice(0, text.indexOf(stop));
  const r = run([...base, '--stop', stop]);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.last.stop_reason, 'stop_string');
  assert.equal(r.last.text, want);
  assert.equal(r.lines.slice(0, -1).map((l) => JSON.parse(l).text).join(''), want);
});

test('interactive chat keeps the conversation across turns', { skip: !haveSmall && 'no generated model' }, () => {
  const r = run(['run', small, '--chat', '--greedy', '--max-tokens', '4', '--json'], 'Hola\n¿Qué tal?\n/exit\n');
  assert.equal(r.status, 0, r.stderr);
  const summaries = r.lines.map((l) => JSON.parse(l)).filter((o) => 'ids' in o);
  assert.equal(summaries.length, 2);
  assert.ok(summaries[1].n_prompt > summaries[0].n_prompt, 'the second prompt holds the first turn');
});
