// The copy-heavy benchmark prompt of speculative decoding: a long synthetic Spanish clinical note (made up from
// templates with a seeded generator: no real patient data) and a request to summarise it, as one ChatML prompt,
// tokenized with the test tokenizer (the Qwen2.5 BPE every generated model folder carries).
//   node tools/gen/spec_prompt.mjs [--model DIR] [--days N] [--out build/spec/note.json]
// Writes {text, ids} (ids: the whole rendered prompt) and prints the number of ids.
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

export function clinicalNote(days = 4, seed = 7) {
  let s = seed >>> 0;
  const rnd = () => ((s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 32);
  const pick = (xs) => xs[Math.floor(rnd() * xs.length)];
  const drugs = [['enalapril', '10 mg', 'cada 12 horas'], ['metformina', '850 mg', 'cada 8 horas'],
    ['furosemida', '40 mg', 'cada 24 horas'], ['omeprazol', '20 mg', 'en ayunas'],
    ['atorvastatina', '40 mg', 'por la noche'], ['bisoprolol', '2,5 mg', 'cada 24 horas'],
    ['amoxicilina-ácido clavulánico', '875/125 mg', 'cada 8 horas'], ['paracetamol', '1 g', 'cada 8 horas si dolor'],
    ['enoxaparina', '40 mg subcutánea', 'cada 24 horas'], ['insulina glargina', '18 UI', 'por la noche']];
  const dx = ['insuficiencia cardiaca descompensada', 'neumonía adquirida en la comunidad del lóbulo inferior derecho',
    'diabetes mellitus tipo 2 con mal control metabólico', 'enfermedad renal crónica estadio 3a',
    'hipertensión arterial esencial', 'fibrilación auricular paroxística'];
  const out = [];
  out.push('NOTA CLÍNICA DE HOSPITALIZACIÓN. Servicio de Medicina Interna. Paciente varón de 78 años, ' +
    'historia clínica 000000 (datos ficticios), ingresado el 3 de marzo por disnea progresiva y fiebre.');
  out.push('Antecedentes personales: ' + dx.slice(2).join('; ') + '. Alergia a penicilina no conocida. ' +
    'Exfumador desde hace 15 años. Vive con su esposa, independiente para las actividades básicas.');
  out.push('Tratamiento habitual: ' + drugs.slice(0, 6).map(([d, q, f]) => `${d} ${q} ${f}`).join('; ') + '.');
  out.push('Diagnósticos al ingreso: ' + dx.slice(0, 2).join(' y ') + '.');
  for (let d = 1; d <= days; d++) {
    const t = (36.5 + rnd() * 2).toFixed(1), fc = 70 + Math.floor(rnd() * 40), sat = 88 + Math.floor(rnd() * 9);
    const pcr = (20 + rnd() * 150).toFixed(0), cr = (1.1 + rnd() * 0.8).toFixed(2), k = (3.6 + rnd() * 1.4).toFixed(1);
    const g = 120 + Math.floor(rnd() * 140), hb = (10.5 + rnd() * 3).toFixed(1);
    out.push(`Evolución día ${d} (${3 + d} de marzo): temperatura ${t} ºC, frecuencia cardiaca ${fc} lpm, ` +
      `saturación de oxígeno ${sat} % con gafas nasales a 2 litros por minuto. ${pick(['Refiere mejoría de la disnea.',
        'Persiste la tos con expectoración purulenta.', 'Descansa bien por la noche.', 'Tolera la dieta oral.'])} ` +
      `Analítica: proteína C reactiva ${pcr} mg/L, creatinina ${cr} mg/dL, potasio ${k} mEq/L, glucosa ${g} mg/dL, ` +
      `hemoglobina ${hb} g/dL. Se mantiene ${drugs[6][0]} ${drugs[6][1]} ${drugs[6][2]} y ${drugs[2][0]} ` +
      `${drugs[2][1]} ${drugs[2][2]}. ${pick(['Se ajusta la pauta de insulina glargina a 18 UI por la noche.',
        'Se solicita radiografía de tórax de control.', 'Se retira la sueroterapia.',
        'Balance hídrico negativo de 800 mL.'])}`);
  }
  out.push('Radiografía de tórax de control: mejoría de la consolidación en el lóbulo inferior derecho, ' +
    'sin derrame pleural. Ecocardiograma: fracción de eyección del ventrículo izquierdo del 45 %.');
  out.push('Tratamiento al alta: ' + drugs.map(([d, q, f]) => `${d} ${q} ${f}`).join('; ') + '. ' +
    'Control en consultas externas de Medicina Interna en 2 semanas con analítica (creatinina y potasio).');
  return out.join('\n');
}

export function renderPrompt(note) {
  return '<|im_start|>system\nEres un asistente médico que redacta informes de alta hospitalaria.<|im_end|>\n' +
    '<|im_start|>user\n' + note + '\n\nRedacta el informe de alta de este paciente: motivo de ingreso, ' +
    'antecedentes, evolución, diagnósticos y tratamiento al alta con las dosis exactas.<|im_end|>\n' +
    '<|im_start|>assistant\n';
}

export function tokenize(dir, text) {
  const cli = process.env.QW_CLI || path.join(root, 'build', 'native', 'qwasm');
  const r = spawnSync(cli, ['tokenize', dir, text, '--json'], { encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`qwasm tokenize failed: ${r.stderr.trim()}`);
  return JSON.parse(r.stdout.trim().split('\n').pop());   // [ids]
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const a = process.argv.slice(2);
  const opt = (n, d) => { const i = a.indexOf(n); return i < 0 ? d : a[i + 1]; };
  const dir = opt('--model', path.join(root, 'build', 'models', 'small-q4f16-op18-ext'));
  const out = opt('--out', path.join(root, 'build', 'spec', 'note.json'));
  const text = clinicalNote(+opt('--days', 4));
  const ids = tokenize(dir, renderPrompt(text));
  mkdirSync(path.dirname(out), { recursive: true });
  writeFileSync(out, JSON.stringify({ text, ids }));
  writeFileSync(out.replace(/\.json$/, '.ids.json'), JSON.stringify(ids));
  // what a copy model (tools/gen/gen_model.py --copy-ids) learns to repeat: the note, entered from the prompt's last id
  writeFileSync(out.replace(/\.json$/, '.copy.json'), JSON.stringify([ids[ids.length - 1], ...tokenize(dir, text)]));
  console.log(`spec_prompt: ${ids.length} ids -> ${out}`);
}
