// format.test.mjs - the C sources are as clang-format (.clang-format at the top) writes them: src/, tests/, tools/.
// clang-format comes from Debian (tools/build/bootstrap.sh installs it). Reformat with:
//   clang-format -i $(git ls-files 'src/*.[ch]' 'tests/*.[ch]' 'tools/*.c')
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

test('clang-format finds nothing to change in the C sources', () => {
  const ls = spawnSync('git', ['ls-files', 'src/*.[ch]', 'tests/*.[ch]', 'tools/*.c'], { cwd: root, encoding: 'utf8' });
  assert.equal(ls.status, 0, ls.stderr);
  const files = ls.stdout.split('\n').filter(Boolean);
  assert.ok(files.length > 50, `${files.length} C files`);
  const r = spawnSync('clang-format', ['--dry-run', '--Werror', ...files], { cwd: root, encoding: 'utf8' });
  assert.ok(!r.error, `clang-format: ${r.error?.message} (tools/build/bootstrap.sh installs it)`);
  assert.equal(r.status, 0, `not formatted (clang-format -i the files):\n${r.stderr.slice(0, 3000)}`);
});
