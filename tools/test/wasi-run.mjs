// Runs the WASI build of the qwasm CLI under Node's WASI: node tools/test/wasi-run.mjs [qwasm args...]
// The current directory is preopened as "." (and "/" maps to the filesystem root) so model paths work.
import { readFile } from 'node:fs/promises';
import { WASI } from 'node:wasi';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const here = path.dirname(fileURLToPath(import.meta.url));
const wasmPath = process.env.QW_WASI_BIN || path.join(here, '..', '..', 'build', 'wasi', 'qwasm.wasm');
const wasi = new WASI({
  version: 'preview1',
  args: ['qwasm', ...process.argv.slice(2)],
  env: {},
  preopens: { '.': process.cwd(), '/': '/' },
  returnOnExit: true,
});
const module = await WebAssembly.compile(await readFile(wasmPath));
const instance = await WebAssembly.instantiate(module, wasi.getImportObject());
process.exitCode = wasi.start(instance);
