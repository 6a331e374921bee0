// gen_abi_js.mjs - writes js/worker/qwasm-abi.js: the numbers the JS glue shares with the C core, from the C headers.
//   node tools/build/gen_abi_js.mjs            rewrites js/worker/qwasm-abi.js
//   node tools/build/gen_abi_js.mjs --check    exits 1, printing the difference, when js/worker/qwasm-abi.js is not what it writes
//
// The headers give only the names: the enumerators of qwasm.h's enums and the fields of the structs JS reads
// from wasm memory (qw_wasm_abi.h, qw_graph.h). Their values, offsets and sizes come from the compiler: a small C
// program naming each one is compiled with emcc (wasm32, as the module) and run with Node. The output is
// committed in js/ so the glue runs as-is (served by tools/serve/serve.mjs, imported from Node) with no build step of
// its own; tests/node/abi.test.mjs runs --check.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const OUT = path.join(root, 'js', 'worker', 'qwasm-abi.js');

const ENUMS = [ // [header, C declaration's opening, exported name, what]
  ['qwasm.h', 'typedef enum qw_status {', 'QW_STATUS', 'enum qw_status: what every C call returns'],
  ['qwasm.h', 'typedef enum qw_gen_event_kind {', 'QW_GEN_EVENT', 'enum qw_gen_event_kind: qw_wasm_event.kind'],
  ['qwasm.h', 'enum { QW_SPEC_OFF', 'QW_SPEC', 'qw_gen_params.speculative (qw_wasm_gen_begin\'s "speculative")'],
];
const STRUCTS = [ // [header, struct tag, exported name, what]
  ['qw_wasm_abi.h', 'qw_wasm_event', 'QW_WASM_EVENT', 'the event qw_wasm_gen_event points to'],
  ['qw_graph.h', 'qw_graph_running_op', 'QW_RUNNING_OP', 'qw_graph_running (qw_wasm_running_op), read after a trap'],
];

// the headers' layer folders (src/README.md)
const LAYER = { 'qwasm.h': 'api', 'qw_wasm_abi.h': 'bindings/wasm', 'qw_graph.h': 'graph', 'qw_onnx.h': 'onnx',
  'qw_pool.h': 'base', 'qw_kernels.h': 'kernels' };
const header = (name) => readFileSync(path.join(root, 'src', LAYER[name], name), 'utf8');
const stripComments = (s) => s.replace(/\/\*[\s\S]*?\*\//g, ' ').replace(/\/\/.*$/gm, ' ');

/** The enumerator names of the enum whose declaration starts with `open`. */
function enumNames(file, open) {
  const s = stripComments(header(file));
  const at = s.indexOf(open);
  if (at < 0) throw new Error(`src/${LAYER[file]}/${file}: '${open}' not found`);
  const body = s.slice(s.indexOf('{', at) + 1, s.indexOf('}', at));
  return body.split(',').map((e) => e.split('=')[0].trim()).filter((n) => n && !/_COUNT$/.test(n));
}

/** The field names of `typedef struct tag { ... }`, in order (declarators split at commas and '*'). */
function structFields(file, tag) {
  const s = stripComments(header(file));
  const at = s.indexOf(`typedef struct ${tag} {`);
  if (at < 0) throw new Error(`src/${LAYER[file]}/${file}: 'typedef struct ${tag} {' not found`);
  const body = s.slice(s.indexOf('{', at) + 1, s.indexOf('}', at));
  const names = [];
  for (const decl of body.split(';').map((d) => d.trim()).filter(Boolean)) {
    const parts = decl.split(',');
    // the first declarator follows the type: its name is the last identifier of the first part
    names.push(...parts.map((p) => (p.match(/([A-Za-z_]\w*)\s*(\[[^\]]*\])?\s*$/) || [])[1]));
  }
  if (names.some((n) => !n)) throw new Error(`src/${LAYER[file]}/${file}: cannot read the fields of ${tag}`);
  return names;
}

/** The C program printing every value as JSON. */
function probeSource(enums, structs) {
  const lines = ['#include <stddef.h>', '#include <stdio.h>', '#include "qwasm.h"', '#include "qw_wasm_abi.h"',
    '#include "qw_graph.h"', 'int main(void) {', '  printf("{");'];
  let first = true;
  const key = (k) => { const s = `${first ? '' : ','}\\"${k}\\":`; first = false; return s; };
  for (const e of enums) for (const n of e.names) lines.push(`  printf("${key(`${e.name}.${n}`)}%d", (int)(${n}));`);
  for (const st of structs) {
    lines.push(`  printf("${key(`${st.name}.size`)}%zu", sizeof(${st.tag}));`);
    for (const f of st.fields) {
      lines.push(`  printf("${key(`${st.name}.${f}.offset`)}%zu", offsetof(${st.tag}, ${f}));`);
      lines.push(`  printf("${key(`${st.name}.${f}.size`)}%zu", sizeof(((${st.tag} *)0)->${f}));`);
    }
  }
  lines.push('  printf("}\\n");', '  return 0;', '}', '');
  return lines.join('\n');
}

/** Compiles and runs the probe with emcc (emsdk.env puts it on PATH, as for the wasm build). */
function runProbe(src) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'qw-abi-'));
  try {
    writeFileSync(path.join(dir, 'probe.c'), src);
    const out = path.join(dir, 'probe.js');
    const cmd = `. "${root}/emsdk.env" && [ "$QW_EMCC_OK" = 1 ] && ` +
      `emcc -O0 -sENVIRONMENT=node -sSINGLE_FILE=1 ${Object.values(LAYER).map((l) => `-I"${root}/src/${l}"`).join(' ')} "${dir}/probe.c" -o "${out}"`;
    execFileSync('bash', ['-c', cmd], { stdio: ['ignore', 'ignore', 'inherit'], cwd: root });
    // emcc's classic output is CommonJS, and /tmp may sit under a package.json of type module: run it as .cjs
    writeFileSync(path.join(dir, 'probe.cjs'), readFileSync(out));
    return JSON.parse(execFileSync(process.execPath, [path.join(dir, 'probe.cjs')], { encoding: 'utf8' }));
  } finally { rmSync(dir, { recursive: true, force: true }); }
}

function generate() {
  const enums = ENUMS.map(([file, open, name, what]) => ({ file, name, what, names: enumNames(file, open) }));
  const structs = STRUCTS.map(([file, tag, name, what]) => ({ file, tag, name, what, fields: structFields(file, tag) }));
  const v = runProbe(probeSource(enums, structs));
  const out = [
    '// qwasm-abi.js - GENERATED by tools/build/gen_abi_js.mjs from src/api/qwasm.h, src/bindings/wasm/qw_wasm_abi.h and src/graph/qw_graph.h:',
    '// the values, offsets and sizes are emcc\'s (wasm32). Do not edit: run `node tools/build/gen_abi_js.mjs` after',
    '// changing those headers (tests/node/abi.test.mjs fails while this file differs from what it writes).',
    '',
  ];
  for (const e of enums) {
    out.push(`/** ${e.what} (src/${LAYER[e.file]}/${e.file}). */`);
    out.push(`export const ${e.name} = Object.freeze({`);
    for (const n of e.names) out.push(`  ${n}: ${v[`${e.name}.${n}`]},`);
    out.push('});', '');
  }
  for (const st of structs) {
    out.push(`/** struct ${st.tag} (src/${LAYER[st.file]}/${st.file}): ${st.what}.`, ' *  Its size, and the byte offset and size of each field. */');
    out.push(`export const ${st.name} = Object.freeze({`);
    out.push(`  size: ${v[`${st.name}.size`]},`);
    for (const f of st.fields) {
      out.push(`  ${f}: Object.freeze({ offset: ${v[`${st.name}.${f}.offset`]}, size: ${v[`${st.name}.${f}.size`]} }),`);
    }
    out.push('});', '');
  }
  return out.join('\n');
}

const text = generate();
if (process.argv.includes('--check')) {
  const have = readFileSync(OUT, 'utf8');
  if (have !== text) {
    const a = have.split('\n'), b = text.split('\n');
    for (let i = 0; i < Math.max(a.length, b.length); i++) {
      if (a[i] !== b[i]) console.error(`js/worker/qwasm-abi.js:${i + 1}:\n  is   ${a[i] ?? '(end)'}\n  want ${b[i] ?? '(end)'}`);
    }
    console.error('js/worker/qwasm-abi.js is stale: run node tools/build/gen_abi_js.mjs');
    process.exit(1);
  }
  console.log('js/worker/qwasm-abi.js is up to date');
} else {
  writeFileSync(OUT, text);
  console.log(`wrote ${path.relative(root, OUT)}`);
}
