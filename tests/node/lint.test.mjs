// Type checks and lint of js/: tsc -p . (tsconfig.json: checkJs over js/, js/page/qwasm.js against js/page/qwasm.d.ts, the
// worker protocol's typedefs in js/worker/protocol.js) and eslint js/ tests/ tools/ (eslint.config.js). Dev dependencies (package.json).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const bin = (name) => path.join(root, 'node_modules', '.bin', name);

test('tsc -p . finds no type errors', () => {
  const r = spawnSync(bin('tsc'), ['-p', root], { cwd: root, encoding: 'utf8' });
  assert.equal(r.status, 0, `tsc:\n${r.stdout}${r.stderr}`);
});

test('eslint js/ tests/ tools/ finds no problems', () => {
  const r = spawnSync(bin('eslint'), ['js/', 'tests/', 'tools/'], { cwd: root, encoding: 'utf8' });
  assert.equal(r.status, 0, `eslint:\n${r.stdout}${r.stderr}`);
});
