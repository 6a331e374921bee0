// chat_template.test.mjs - qwasm's chat templates (src/text/qw_jinja_*.c) against @huggingface/transformers'
// apply_chat_template, both run now on the same tokenizer_config.json: every conversation of tests/chat/cases.mjs
// (system prompts, multi-turn, tools, tool calls and results, add_generation_prompt true and false) with the
// Qwen2.5 (fixture), Qwen3 (npm package), Llama-3-, Mistral- and Gemma-style templates and one that prints
// every construct. Renderings must be equal byte for byte; where transformers.js throws, qwasm must fail too,
// with the same message when the template raised it. Then the errors and bounds, and the JS API (wasm).
//   node --test tests/node/chat_template.test.mjs      (CLI: build/native/qwasm or env QW_CLI)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { templates, cases, TOOLS } from '../chat/cases.mjs';
import { tokenizerFor, reference } from '../../tools/ref/chat_ref.mjs';
import { Qwasm } from '../../js/page/qwasm.js';
import { WASM_DIR, CLI as DEFAULT_CLI, modelDir, wasmReady } from './helpers.mjs';

const cli = process.env.QW_CLI || DEFAULT_CLI;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'qwasm-chat-'));

function folder(name, config) {
  const dir = path.join(tmp, name);
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), typeof config === 'string' ? config : JSON.stringify(config));
  return dir;
}
function run(args) {
  assert.ok(fs.existsSync(cli), `qwasm CLI not found at ${cli} (build it or set QW_CLI)`);
  return spawnSync(cli, args, { encoding: 'utf8', maxBuffer: 256 << 20 });
}
/** qwasm's rendering of one case through --chat-json: {status, out, err}. */
function renderOne(dir, c) {
  const m = path.join(tmp, 'messages.json');
  fs.writeFileSync(m, JSON.stringify(c.messages));
  const args = ['tokenize', dir, '--chat-json', m, '--render-only'];
  if (c.tools) { const t = path.join(tmp, 'tools.json'); fs.writeFileSync(t, JSON.stringify(c.tools)); args.push('--tools', t); }
  if (!c.add_generation_prompt) args.push('--no-generation-prompt');
  const r = run(args);
  return { status: r.status, out: r.stdout, err: r.stderr };
}

const all = cases();
const tpls = templates();

test('the golden set: at least 20 conversations with tools, system prompts and both generation prompts', () => {
  const convs = new Set(all.map((c) => c.name));
  assert.ok(convs.size >= 20, `${convs.size} conversations`);
  assert.ok(all.some((c) => c.tools) && all.some((c) => c.messages[0].role === 'system'));
  assert.ok(all.some((c) => c.messages.some((m) => m.tool_calls)) && all.some((c) => c.messages.some((m) => m.role === 'tool')));
  assert.ok(Object.keys(tpls).length >= 5);
});

for (const [name, config] of Object.entries(tpls)) {
  test(`${name}: qwasm renders as apply_chat_template`, () => {
    const tok = tokenizerFor(config);
    const dir = folder(name, config);
    const refs = all.map((c) => ({ c, ...reference(tok, c) }));
    const ok = refs.filter((r) => r.error === undefined);
    assert.ok(ok.length >= 16, `${name}: only ${ok.length} cases rendered by transformers.js`);
    // the renderings, in one CLI process
    const f = path.join(tmp, `${name}.jsonl`);
    fs.writeFileSync(f, ok.map(({ c }) => JSON.stringify({ messages: c.messages, tools: c.tools ?? null, add_generation_prompt: c.add_generation_prompt })).join('\n') + '\n');
    const r = run(['tokenize', dir, '--chat-batch', f]);
    assert.equal(r.status, 0, r.stderr);
    const got = r.stdout.split('\n').filter((l) => l.length).map((l) => JSON.parse(l));
    assert.equal(got.length, ok.length);
    ok.forEach(({ c, want }, i) => assert.equal(got[i], want, `${name}: "${c.name}", add_generation_prompt=${c.add_generation_prompt}`));
    // where transformers.js throws, qwasm fails too, naming the file and the place
    for (const { c, error } of refs.filter((x) => x.error !== undefined)) {
      const q = renderOne(dir, c);
      assert.notEqual(q.status, 0, `${name}: "${c.name}" rendered by qwasm but transformers.js threw: ${error}`);
      assert.match(q.err, /tokenizer_config\.json: chat_template line \d+ col \d+: /, q.err);
      const raised = config.chat_template.includes(error);
      if (raised) assert.ok(q.err.includes(`the template refused the conversation: ${error}`), q.err);
    }
    console.log(`# ${name}: ${ok.length} renderings equal, ${refs.length - ok.length} refusals matched`);
  });
}

test('raise_exception, unsupported constructs and syntax errors name the file, line, column and construct', () => {
  const c = { messages: [{ role: 'user', content: 'x' }], add_generation_prompt: true };
  const expect = (tpl, re, status = 1) => {
    const q = renderOne(folder('err', { chat_template: tpl }), c);
    assert.equal(q.status, status, q.err);
    assert.match(q.err, re);
  };
  expect('{{ raise_exception("no system message") }}', /chat_template line 1 col 4: the template refused the conversation: no system message/);
  expect('ok\n  {% macro m() %}{% endmacro %}', /tokenizer_config\.json: chat_template line 2 col 6: unsupported construct '\{% macro %\}'/);
  expect('{{ messages | wordcount }}', /line 1 col 13: unsupported filter 'wordcount' on list/);
  expect('{% for m in messages %}{{ m.role }}', /line 1 col 1: unclosed \{% for %\}/);
  expect('{{ messages[0].content.zfill(3) }}', /unsupported string method 'zfill'/);
  expect('{% if x %}a{% endfor %}', /unexpected \{% endfor %\}/);
  expect('{{ "unterminated }}', /unterminated string/);
  expect('{{ x is foo }}', /unsupported test 'foo'/);
});

test('a broken tokenizer_config.json is an error; a folder without a template gets ChatML', () => {
  const c = { messages: [{ role: 'user', content: 'Hi' }], add_generation_prompt: true };
  let q = renderOne(folder('badjson', '{"chat_template": "x",'), c);
  assert.equal(q.status, 1);
  assert.match(q.err, /tokenizer_config\.json: not valid JSON/);
  q = renderOne(folder('badtype', { chat_template: 42 }), c);
  assert.match(q.err, /tokenizer_config\.json: chat_template must be a string or a list/);
  q = renderOne(folder('notemplate', { eos_token: '<|im_end|>' }), c);
  assert.equal(q.status, 0, q.err);
  const qwen = reference(tokenizerFor(tpls['qwen2.5']), c).want;
  assert.equal(q.out, qwen, 'the ChatML fallback is Qwen2.5\'s template without tools');
  q = renderOne(folder('notemplate', { eos_token: '<|im_end|>' }), { ...c, tools: TOOLS });
  assert.match(q.err, /has no chat_template .* renders no tools/);
  // a list of named templates: tool_use when tools are given, as transformers.js picks
  const list = { chat_template: [{ name: 'default', template: 'D{{ tools }}' }, { name: 'tool_use', template: 'T{{ tools | length }}' }] };
  const dir = folder('list', list);
  const tok = tokenizerFor(list);
  assert.equal(renderOne(dir, c).out, reference(tok, c).want);
  assert.equal(renderOne(dir, { ...c, tools: TOOLS }).out, reference(tok, { ...c, tools: TOOLS }).want);
});

test('hostile templates stop at their bounds with a clear error', () => {
  const c = { messages: [{ role: 'user', content: 'x' }], add_generation_prompt: true };
  const expect = (tpl, re) => {
    const t0 = Date.now();
    const q = renderOne(folder('hostile', { chat_template: tpl }), c);
    assert.equal(q.status, 1, q.out.slice(0, 200));
    assert.match(q.err, re);
    assert.ok(Date.now() - t0 < 30000, 'bounded time');
  };
  expect('{% set r = range(5000) %}{% for a in r %}{% for b in r %}{% endfor %}{% endfor %}', /ran more than \d+ steps/);
  expect('{% set r = range(2000) %}{% for a in r %}{% for b in r %}{{ "0123456789" }}{% endfor %}{% endfor %}', /made a text of more than 16 MB/);
  expect('{% for a in range(100000) %}{% set x = range(100000) %}{% endfor %}', /made more than 64 MB of values/);
  expect('{% set ns = namespace(s="xxxxxxxxxxxxxxxx") %}{% for i in range(40) %}{% set ns.s = ns.s + ns.s %}{% endfor %}', /more than 64 MB of values/);
  expect('{% set ns = namespace(x=[]) %}{% for i in range(1000) %}{% set ns.x = [ns.x] %}{% endfor %}{{ ns.x | tojson }}', /nested more than 128 levels/);
  expect('{{ ' + '('.repeat(200) + '1' + ')'.repeat(200) + ' }}', /nested too deeply/);
  expect('{% if 1 %}'.repeat(100) + '{% endif %}'.repeat(100), /nested too deeply/);
});

// The JS API: the wasm core renders the model folder's template (generated models carry the fixture's Qwen2.5 one)
const MODEL = 'small-q4f16-op18-ext'; // the full Qwen vocabulary: the rendered prompt's ids are in range
const dir = modelDir(MODEL);
const skip = !wasmReady() ? 'build/wasm has no model exports (build the wasm target)' : !dir ? `build/models/${MODEL} is missing (run tools/gen/gen_test_models.sh)` : false;
test('rt.applyChatTemplate and generate({messages, tools}) use the model\'s template', { skip }, async () => {
  const rt = await Qwasm.load({ model: dir, wasmBase: WASM_DIR });
  try {
    const config = JSON.parse(fs.readFileSync(path.join(dir, 'tokenizer_config.json'), 'utf8'));
    const tok = tokenizerFor(config);
    for (const c of all.filter((x) => x.tools).slice(0, 6)) {
      const want = reference(tok, c).want;
      assert.equal(await rt.applyChatTemplate(c.messages, c.add_generation_prompt, { tools: c.tools }), want, c.name);
    }
    assert.equal(rt.info.chat_template, 'tokenizer_config.json');
    const c = all.find((x) => x.name === 'tools with a system message');
    const prompt = await rt.applyChatTemplate(c.messages, true, { tools: c.tools });
    const ids = await rt.tokenize(prompt);
    let last = null;
    for await (const ev of rt.generate({ messages: c.messages, tools: c.tools, maxTokens: 1, greedy: true })) last = ev;
    assert.equal(last.nPrompt, ids.length, 'generate({messages, tools}) prefilled the template\'s prompt');
  } finally { await rt.dispose(); }
});
