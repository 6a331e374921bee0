// Bad input from the JS side and the CLI (issue #16): sampling options refused with code ARG naming the option,
// generation_config.json's bad values as warnings, non-regular files as external data, wasm traps reported as
// INTERNAL with the running node, and the CLI's numeric flags parsed strictly (usage error naming the flag).
// Uses build/models/hostile (tools/gen/gen_hostile.py, run by tools/gen/gen_test_models.sh); skips what is missing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Qwasm } from '../../js/page/qwasm.js';
import { checkSampling, checkLoadOptions, wasmTrapError } from '../../js/worker/protocol.js';
import { MODELS, WASM_DIR, CLI, wasmReady } from './helpers.mjs';

const H = path.join(MODELS, 'hostile');
const ok = path.join(H, 'slice_step_max');
const haveModels = fs.existsSync(path.join(ok, 'onnx', 'model.onnx'));
const skipJs = !wasmReady() ? 'build/wasm has no model exports' : !haveModels ? `${H} not generated` : false;
const skipCli = !fs.existsSync(CLI) ? `${CLI} not built` : !haveModels ? `${H} not generated` : false;

test('sampling options: NaN, Infinity, out of range and wrong types are refused by name', () => {
  const bad = [
    ['temperature', NaN], ['temperature', -0.5], ['temperature', Infinity], ['topP', 0], ['topP', 1.01],
    ['topP', NaN], ['minP', -0.1], ['minP', 1.5], ['repetitionPenalty', 0], ['repetitionPenalty', -1],
    ['topK', -1], ['topK', 2.5], ['maxTokens', 0], ['maxTokens', -1], ['maxTokens', 1e12], ['seed', -1],
    ['seed', 1.5], ['temperature', '0.7'], ['prefillChunk', 0], ['specMaxDraft', 0], ['specMaxDraft', 17],
    ['speculative', 'yes'], ['cachePrefix', -2], ['cachePrefix', 'x'],
  ];
  for (const [k, v] of bad) {
    assert.throws(() => checkSampling({ [k]: v }), (e) => e.code === 'ARG' && e.message.includes(k), `${k} = ${v}`);
  }
  assert.throws(() => checkSampling({ logitBias: { 5: NaN } }), (e) => e.code === 'ARG' && /logitBias/.test(e.message));
  assert.throws(() => checkSampling({ logitBias: { '-3': 1 } }), (e) => e.code === 'ARG');
  checkSampling({ temperature: 0, topP: 1, topK: 0, minP: 0, repetitionPenalty: 1.05, maxTokens: 1, seed: 0,
                  logitBias: { 5: -Infinity, 6: 2 } });
});

test('load options: a kvCache outside its names is refused by name', () => {
  for (const [k, v] of [['kvCache', 'fp8'], ['kvCache', 1], ['maxContext', -1]]) {
    assert.throws(() => checkLoadOptions({ [k]: v }), (e) => e.code === 'ARG' && e.message.includes(k), `${k} = ${v}`);
  }
  checkLoadOptions({ kvCache: 'int8', dtype: 'q4f16', maxContext: 32768 });
});

test('a wasm trap is INTERNAL naming the node; only a failed allocation is OUT_OF_MEMORY', () => {
  const e = wasmTrapError(new WebAssembly.RuntimeError('memory access out of bounds'), "'/model/Reshape' (Reshape)");
  assert.equal(e.code, 'INTERNAL');
  assert.match(e.message, /in node '\/model\/Reshape' \(Reshape\): memory access out of bounds/);
  assert.equal(wasmTrapError(new Error('Cannot enlarge memory arrays'), null).code, 'OUT_OF_MEMORY');
  assert.equal(wasmTrapError(new RangeError('Array buffer allocation failed'), null).code, 'OUT_OF_MEMORY');
  assert.equal(wasmTrapError(new WebAssembly.RuntimeError('unreachable'), null).code, 'INTERNAL');
});

test('JS API: bad sampling values reject with ARG; the model keeps working', { skip: skipJs }, async () => {
  const rt = await Qwasm.load({ model: ok, wasmBase: WASM_DIR, flavour: 'st' });
  try {
    for (const [k, v] of [['temperature', NaN], ['topP', 0], ['repetitionPenalty', 0], ['topK', -1], ['maxTokens', 0]]) {
      await assert.rejects((async () => { for await (const _ of rt.generate({ promptIds: [1, 2], [k]: v })) { /* none */ } })(),
        (e) => e.code === 'ARG' && e.message.includes(k), `${k} = ${v}`);
    }
    const ids = [];
    for await (const ev of rt.generate({ promptIds: [1, 2], maxTokens: 3, greedy: true })) if (ev.id != null) ids.push(ev.id);
    assert.equal(ids.length, 3);
  } finally { await rt.dispose(); }
});

test('JS API: generation_config.json values out of range are warnings naming file and key', { skip: skipJs }, async () => {
  const rt = await Qwasm.load({ model: path.join(H, 'genconfig_bad'), wasmBase: WASM_DIR, flavour: 'st' });
  try {
    const w = rt.info.warnings || [];
    for (const k of ['temperature', 'top_p', 'top_k', 'repetition_penalty']) {
      assert.ok(w.some((s) => s.startsWith(`generation_config.json: ${k} `)), `no warning for ${k}: ${JSON.stringify(w)}`);
    }
  } finally { await rt.dispose(); }
});

test('JS API: a directory or FIFO as external data is UNSUPPORTED "not a regular file"', { skip: skipJs }, async () => {
  for (const c of ['ext_dir', 'ext_fifo']) {
    await assert.rejects(Qwasm.load({ model: path.join(H, c), wasmBase: WASM_DIR, flavour: 'st' }),
      (e) => e.code === 'UNSUPPORTED' && /not a regular file/.test(e.message) && /model\.onnx_data/.test(e.message), c);
  }
});

test('JS API: an overflowing Reshape is CORRUPT naming the node, not a crash', { skip: skipJs }, async () => {
  await assert.rejects(Qwasm.load({ model: path.join(H, 'reshape_wrap'), wasmBase: WASM_DIR, flavour: 'st' }),
    (e) => e.code === 'CORRUPT' && /node 'hostile' \(Reshape/.test(e.message));
});

function cli(args) { return spawnSync(CLI, args, { encoding: 'utf8' }); }

test('CLI: numeric flags are parsed whole; a bad value is a usage error naming the flag', { skip: skipCli }, () => {
  const bad = [
    ['--max-tokens', '0'], ['--max-tokens', '-1'], ['--max-tokens', 'abc'], ['--max-tokens', '99999999999'],
    ['--max-tokens', '1e3'], ['--max-tokens', ''], ['--temperature', 'nan'], ['--temperature', '-1'],
    ['--temperature', 'inf'], ['--temperature', '0.7x'], ['--top-k', '-1'], ['--top-k', '2.5'], ['--top-p', '0'],
    ['--top-p', '1.5'], ['--min-p', '-0.1'], ['--repeat-penalty', '0'], ['--seed', '-1'], ['--seed', 'x'],
    ['--threads', '0'], ['--threads', '1000'], ['--threads', '-1'], ['--mem-cap-mb', '-1'], ['--mem-cap-mb', '0'],
    ['--max-context', '0'], ['--max-context', '-1'], ['--max-context', '99999999999'],
  ];
  for (const [flag, v] of bad) {
    const r = cli(['run', ok, '--prompt-ids', '1,2', flag, v]);
    assert.equal(r.status, 2, `${flag} ${v}: exit ${r.status} ${r.stderr}`);
    assert.ok(r.stderr.includes(flag) && r.stderr.includes(`'${v}'`), `${flag} ${v}: ${r.stderr}`);
  }
  const good = cli(['run', ok, '--prompt-ids', '1,2', '--max-tokens', '2', '--temperature', '0.5', '--top-p', '1',
                    '--top-k', '0', '--min-p', '0', '--repeat-penalty', '1.1', '--seed', '18446744073709551615',
                    '--threads', '1', '--mem-cap-mb', '0.5', '--max-context', '16', '--json']);
  assert.equal(good.status, 0, good.stderr);
});

test('CLI: --prompt-ids refuses ids past int32 (also where long is 32 bits)', { skip: skipCli }, () => {
  const r = cli(['run', ok, '--prompt-ids', '1,4294967297']);
  assert.equal(r.status, 2, r.stderr);
});
