// `qwasm run --mem-cap-mb N`: weights paged from disk under a cap give the same greedy ids as the uncapped run,
// the paging counters move and the process stays within cap + 300 MB (the browser target) on the 1.5B model.
// Models come from tools/gen/gen_test_models.sh (build/models); a missing model skips its test.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { CLI, MODELS } from './helpers.mjs';

const cli = process.env.QW_CLI || CLI;

function run(dir, extra) {
  const args = ['run', dir, '--prompt-ids', '1,2,3,4', '--greedy', '--ignore-eos', '--json', '--profile', ...extra];
  const r = spawnSync(cli, args, { encoding: 'utf8', maxBuffer: 64 << 20 });
  const lines = r.stdout.trim().split('\n').filter(Boolean);
  let last = null;
  try { last = JSON.parse(lines[lines.length - 1]); } catch { /* not JSON */ }
  assert.equal(r.status, 0, `qwasm ${args.join(' ')}: ${r.stderr}`);
  assert.ok(last && Array.isArray(last.ids), `no summary line: ${r.stdout.slice(-500)}`);
  return last;
}

const small = path.join(MODELS, 'small-q4f16-op18-ext');
test('small model: capped runs give the uncapped ids', { skip: !existsSync(small) && `${small} not generated` }, () => {
  const ref = run(small, ['--max-tokens', '24']);
  for (const mb of ['0.5', '2', '6']) {
    const r = run(small, ['--max-tokens', '24', '--mem-cap-mb', mb]);
    assert.deepEqual(r.ids, ref.ids, `--mem-cap-mb ${mb}`);
    const p = r.stats.paging;
    assert.equal(p.cap_bytes, Math.floor(Number(mb) * 1048576));
    assert.ok(p.bytes_read > 0 && p.loads + p.range_reads > 0, JSON.stringify(p));
  }
});

const big = path.join(MODELS, 'qwen2.5-1.5b-q4f16-op18-ext');
test('1.5B model under a 512 MB cap: same ids, peak RSS below cap + 300 MB',
     { skip: !existsSync(big) && `${big} not present`, timeout: 120000 }, () => {
  const ref = run(big, ['--max-tokens', '4']);
  const r = run(big, ['--max-tokens', '4', '--mem-cap-mb', '512']);
  assert.deepEqual(r.ids, ref.ids);
  assert.ok(r.peak_rss_mb < 512 + 300, `peak RSS ${r.peak_rss_mb} MB`);
  const p = r.stats.paging;
  assert.ok(p.peak_resident_bytes <= p.cap_bytes + 2 * p.largest_unit_bytes, JSON.stringify(p));
  assert.ok(p.evictions > 0 && p.range_reads > 0, JSON.stringify(p));
});
