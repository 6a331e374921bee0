#!/usr/bin/env node
// Runs every browser test: node tests/browser/run.mjs [--filter REGEX] [--no-firefox] [--no-webkit]
// Prints "N passed, N failed" (and skipped), exits 1 on any failure. Screenshots: build/test-artifacts/*.png,
// a JSON report: build/test-artifacts/browser-report.json.
import fs from 'node:fs';
import path from 'node:path';
import { runTests, ARTIFACTS } from './lib.mjs';

const args = process.argv.slice(2);
const fi = args.indexOf('--filter');
const filter = fi >= 0 ? new RegExp(args[fi + 1]) : process.env.QWASM_TEST_FILTER ? new RegExp(process.env.QWASM_TEST_FILTER) : null;
const noFirefox = args.includes('--no-firefox') || process.env.QWASM_NO_FIREFOX === '1';
// WebKit missing is a failure (tools/build/bootstrap.sh installs it), not a skip: leaving it out must be asked for.
const noWebkit = args.includes('--no-webkit') || process.env.QWASM_NO_WEBKIT === '1';

const files = ['server.test.mjs', 'kernels.test.mjs', 'page.test.mjs', 'chat.test.mjs', 'folder.test.mjs', 'sources.test.mjs', 'fallback.test.mjs'];
if (!noFirefox) files.push('firefox.mjs');
if (!noWebkit) files.push('webkit.mjs');
else console.log('webkit.mjs left out (--no-webkit / QWASM_NO_WEBKIT=1)');

fs.mkdirSync(ARTIFACTS, { recursive: true });
const all = [];
const t0 = Date.now();
for (const f of files) {
  const p = path.join(path.dirname(new URL(import.meta.url).pathname), f);
  if (!fs.existsSync(p)) continue;
  console.log(`${f}`);
  const mod = await import(p);
  const r = await runTests(mod.tests, { filter });
  all.push(...r.results.map((x) => ({ file: f, ...x })));
}
const passed = all.filter((r) => r.status === 'pass').length;
const failed = all.filter((r) => r.status === 'fail').length;
const skipped = all.filter((r) => r.status === 'skip').length;
fs.writeFileSync(path.join(ARTIFACTS, 'browser-report.json'), JSON.stringify({ passed, failed, skipped, seconds: (Date.now() - t0) / 1000, results: all }, null, 2));
if (failed) {
  console.log('\nfailures:');
  for (const r of all.filter((x) => x.status === 'fail')) console.log(`- ${r.file}: ${r.name}\n  ${String(r.error).split('\n').slice(0, 8).join('\n  ')}`);
}
console.log(`\n${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''} (${((Date.now() - t0) / 1000).toFixed(0)} s; screenshots in ${path.relative(process.cwd(), ARTIFACTS) || ARTIFACTS})`);
process.exit(failed ? 1 : 0);
