// Expected outputs of the single-op models of tools/gen/gen_op_models.py, computed with onnxruntime-node.
//   node tools/ref/op_ref.mjs OPS_DIR
// For every OPS_DIR/<case>.onnx with <case>.in, writes <case>.out (all graph outputs, in graph order) in the
// same "QWT1" tensor format as the inputs (see gen_op_models.py), or <case>.skip with onnxruntime's error when
// onnxruntime cannot run the case.
import ort from 'onnxruntime-node';
import fs from 'node:fs';
import path from 'node:path';

const TYPES = { 1: ['float32', Float32Array], 10: ['float16', Uint16Array], 7: ['int64', BigInt64Array],
  6: ['int32', Int32Array], 3: ['int8', Int8Array], 2: ['uint8', Uint8Array], 9: ['bool', Uint8Array] };
const CODE = { float32: 1, float16: 10, int64: 7, int32: 6, int8: 3, uint8: 2, bool: 9 };

function readTensors(file) {
  const b = fs.readFileSync(file);
  if (b.toString('latin1', 0, 4) !== 'QWT1') throw new Error(`${file}: bad magic`);
  let o = 4;
  const n = b.readUInt32LE(o); o += 4;
  const out = {};
  for (let i = 0; i < n; i++) {
    const nl = b.readUInt32LE(o); o += 4;
    const name = b.toString('utf8', o, o + nl); o += nl;
    const dt = b.readInt32LE(o); const nd = b.readInt32LE(o + 4); o += 8;
    const dims = [];
    for (let d = 0; d < nd; d++) { dims.push(Number(b.readBigInt64LE(o))); o += 8; }
    const [tname, Arr] = TYPES[dt];
    const count = dims.reduce((a, c) => a * c, 1);
    const bytes = count * Arr.BYTES_PER_ELEMENT;
    const raw = new Uint8Array(bytes);
    b.copy(raw, 0, o, o + bytes); o += bytes;
    let data = new Arr(raw.buffer, 0, count);
    if (tname === 'bool') data = Uint8Array.from(data);
    out[name] = new ort.Tensor(tname, data, dims);
  }
  return out;
}

function writeTensors(file, named) {
  const parts = [Buffer.from('QWT1'), u32(named.length)];
  for (const [name, t] of named) {
    const nb = Buffer.from(name, 'utf8');
    parts.push(u32(nb.length), nb);
    const h = Buffer.alloc(8 + 8 * t.dims.length);
    h.writeInt32LE(CODE[t.type], 0);
    h.writeInt32LE(t.dims.length, 4);
    t.dims.forEach((d, i) => h.writeBigInt64LE(BigInt(d), 8 + 8 * i));
    parts.push(h);
    const d = t.data;
    parts.push(Buffer.from(d.buffer, d.byteOffset, d.byteLength));
  }
  fs.writeFileSync(file, Buffer.concat(parts));
}
function u32(v) { const b = Buffer.alloc(4); b.writeUInt32LE(v); return b; }

const dir = process.argv[2] || 'build/ops';
let ok = 0, skipped = 0;
for (const f of fs.readdirSync(dir).filter((x) => x.endsWith('.onnx')).sort()) {
  const base = path.join(dir, f.slice(0, -5));
  try {
    const sess = await ort.InferenceSession.create(base + '.onnx', { graphOptimizationLevel: 'disabled', logSeverityLevel: 3, intraOpNumThreads: 1 });
    const feeds = readTensors(base + '.in');
    const res = await sess.run(feeds);
    writeTensors(base + '.out', sess.outputNames.map((n) => [n, res[n]]));
    if (fs.existsSync(base + '.skip')) fs.unlinkSync(base + '.skip');
    ok++;
  } catch (e) {
    fs.writeFileSync(base + '.skip', String(e.message || e).split('\n')[0] + '\n');
    skipped++;
  }
}
console.log(`op_ref: ${ok} references, ${skipped} cases onnxruntime cannot run -> ${dir}`);
