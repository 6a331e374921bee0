// Runs the Node test files (tests/node/*.test.mjs) with node:test and prints `N passed, N failed`.
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const dir = path.join(root, 'tests', 'node');
const files = readdirSync(dir).filter((f) => f.endsWith('.test.mjs')).sort().map((f) => path.join(dir, f));
let passed = 0, failed = 0;
for (const file of files) {
  // One process per file: some files need Node flags (relaxed SIMD) named in their first line.
  const first = (await import('node:fs')).readFileSync(file, 'utf8').split('\n', 1)[0];
  const flags = (first.match(/^\/\/ node-flags: (.*)$/) || [null, ''])[1].split(' ').filter(Boolean);
  const r = spawnSync(process.execPath, [...flags, '--test', '--test-reporter=tap', file],
                      { cwd: root, encoding: 'utf8', maxBuffer: 64 << 20 });
  const out = (r.stdout || '') + (r.stderr || '');
  const p = +(out.match(/^# pass (\d+)/m) || [null, 0])[1];
  const f = +(out.match(/^# fail (\d+)/m) || [null, 0])[1] + (r.status !== 0 && !/^# fail [1-9]/m.test(out) ? 1 : 0);
  passed += p; failed += f;
  console.log(`${path.relative(root, file)}: ${p} passed, ${f} failed`);
  if (f) console.log(out.split('\n').filter((l) => !/^\s*$/.test(l)).slice(-60).join('\n'));
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
