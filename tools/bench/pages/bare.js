// qwasm as a new user's page would call it: Qwasm.load({ model }) and nothing else (plus `cache` for the
// cache-'none' row, and `onnxFile` only where the folder needs it), so the bench shows what the defaults give
// beside the tuned rows of qwasm.js (threads, profile). Generation is greedy, as every engine's.
import { now, summarize, markReady, fail } from './common.js';

let rt = null;

async function load({ model, cache, onnxFile }) {
  const { Qwasm } = await import('/js/page/qwasm.js');
  const t0 = now();
  const opts = { model: new URL(model, location.href).href };
  if (cache) opts.cache = cache;
  if (onnxFile) opts.onnxFile = onnxFile;
  rt = await Qwasm.load(opts);
  const loadMs = now() - t0;
  const st = await rt.stats();
  return { loadMs, source: st.source, engine: st.engine, flavour: rt.flavour, onnx: rt.info && rt.info.onnx_file,
           residentWeightBytes: st.resident_weight_bytes };
}

async function generate({ promptIds, maxTokens = 128 }) {
  const tokens = [], times = [];
  let stats = null;
  const t0 = now();
  for await (const ev of rt.generate({ promptIds, maxTokens, greedy: true, ignoreEos: true })) {
    if (ev.kind === 'token') { times.push(now()); tokens.push(ev.id); }
    if (ev.stats) stats = ev.stats;
  }
  if (!times.length) throw new Error('qwasm generate produced no token events');
  return summarize(promptIds.length, t0, times, tokens, { stats });
}

async function unload() { if (rt) { try { await rt.dispose(); } catch {} rt = null; } }

try { markReady({ name: 'bare', load, generate, unload }); } catch (e) { fail(e); }
