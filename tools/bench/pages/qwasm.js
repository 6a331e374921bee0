// qwasm through its JS API (js/page/qwasm.js): Qwasm.load({model, threads[, memoryCapMB]}) then
// for await (ev of rt.generate({promptIds, maxTokens, greedy: true, ignoreEos: true})): one event per token,
// the last one (done) with ev.stats and every generated id.
import { now, summarize, markReady, fail } from './common.js';

let Q = null;
let rt = null;

let profiling = false;

async function load({ model, threads = 2, memoryCapMB = undefined, profile = false, cache = undefined, embeddingOnDemand = undefined, maxContext = 0, kvCache = undefined, lookahead = undefined }) {
  const t0 = now();
  profiling = profile;
  const mod = await import('/js/page/qwasm.js');
  Q = mod.Qwasm || mod.default || mod;
  if (!Q || typeof Q.load !== 'function') throw new Error('js/page/qwasm.js exports no Qwasm.load');
  const opts = { model: new URL(model, location.href).href, threads };
  if (memoryCapMB) opts.memoryCapMB = memoryCapMB;
  if (cache) opts.cache = cache;
  if (embeddingOnDemand !== undefined) opts.embeddingOnDemand = embeddingOnDemand;
  if (maxContext) opts.maxContext = maxContext; // --long: the KV cache sized for the longest prompt
  if (kvCache) opts.kvCache = kvCache;
  if (lookahead) opts.lookahead = lookahead;
  if (profile) opts.profile = true; // qwasm's per-op counters (two clock reads per node)
  // where the load time goes: ms from the start of the load to the first event of each progress phase
  const phases = {};
  opts.onProgress = (p) => {
    if (!(p.phase in phases)) phases[p.phase] = Math.round(now() - t0);
    window.__benchLastProgress = { ms: Math.round(now() - t0), phase: p.phase, file: p.file, bytesDone: p.bytesDone, bytesTotal: p.bytesTotal }; // a timeout's message
  };
  rt = await Q.load(opts);
  const loadMs = now() - t0;
  // inside the core: reading whole weights into the heap, and making derived forms (repacking, int8 lm_head)
  let st = await rt.stats();
  const w = st.paging || {};
  // the int8 lm_head rows made at a cold load are saved to the cache in the background: wait for it (not timed
  // as load), so the next (warm) load finds them, as it would for a user who loads the model again later
  const t1 = now();
  while (st.derived_cache && st.derived_cache.state === 'saving' && now() - t1 < 120000) {
    await new Promise((r) => setTimeout(r, 100));
    st = await rt.stats();
  }
  return { loadMs, phases, coreLoadMs: rt.info && rt.info.load_ms, readMs: w.read_ms, deriveMs: w.derive_ms,
           derivedCache: st.derived_cache && st.derived_cache.state, derivedSaveMs: Math.round(now() - t1),
           kernels: st.build && st.build.kernels }; // the 4-bit kernel row timed fastest at load
}

async function generate({ promptIds, maxTokens = 128, sampling = null, cachePrefix = undefined, profileSplit: split = true, prefillChunk = undefined }) {
  // generate() is an async generator of GenEvents: kind 'token' with the new id, a last done event with
  // stats and every generated id (options go to a worker: no callbacks in them).
  const tokens = [], times = [], coreSteps = [];
  let stats = null, last = null;
  const t0 = now();
  const how = sampling ? { ...sampling } : { greedy: true, speculative: 'off' }; // plain decode (qwasmspec: 'auto')
  for await (const ev of rt.generate({ promptIds, maxTokens, ...how, ignoreEos: true, ...(cachePrefix ? { cachePrefix } : {}), ...(prefillChunk ? { prefillChunk } : {}) })) {
    const t = now();
    if (ev.kind === 'token') { times.push(t); coreSteps.push(ev.stepMs); if (typeof ev.id === 'number') tokens.push(ev.id); }
    if (ev.stats) stats = ev.stats;
    last = ev;
    if (ev.done && ev.ids) { tokens.length = 0; tokens.push(...Array.from(ev.ids)); }
  }
  if (!times.length) throw new Error('qwasm generate produced no token events');
  while (times.length < tokens.length) times.push(times[times.length - 1]);
  const r = summarize(promptIds.length, t0, times, tokens, { stats, stopReason: last && last.stopReason, coreDecodeMs: last && last.decodeMs, corePrefillMs: last && last.prefillMs });
  r.nGenerated = tokens.length;
  // warm-up check (issue #10: the first decode steps no slower than the tenth): ms of decode steps 1..10
  r.firstStepsMs = times.slice(0, 11).map((t, i, a) => (i ? Math.round((t - a[i - 1]) * 10) / 10 : null)).slice(1);
  // the same steps timed inside the core (the graph and the sampler, without the message to the page)
  r.coreStepsMs = coreSteps.slice(1, 11).map((x) => Math.round(x * 10) / 10);
  if (profiling) r.profileTotal = (await rt.stats()).profile; // the counters since load
  if (profiling && split) r.profile = await profileSplit(promptIds, tokens.length);
  return r;
}

// Where the time goes: the counters add up since load, so after the timed run (prefill + decode) one
// more prefill of as many tokens gives the prefill's share; decode = the rest, per token. That prompt is
// the same ids reversed: the same prompt would reuse the cached KV prefix and prefill one token.
async function profileSplit(promptIds, nGenerated) {
  const ms = (st) => Object.fromEntries(Object.entries(st.profile || {}).map(([k, v]) => [k, v.ms]));
  const p1 = ms(await rt.stats());
  for await (const ev of rt.generate({ promptIds: [...promptIds].reverse(), maxTokens: 1, greedy: true, ignoreEos: true })) void ev;
  const p2 = ms(await rt.stats());
  const prefill = {}, decodePerToken = {};
  for (const k of Object.keys(p2)) {
    prefill[k] = (p2[k] || 0) - (p1[k] || 0);
    decodePerToken[k] = ((p1[k] || 0) - prefill[k]) / Math.max(1, nGenerated - 1);
  }
  return { prefillMs: prefill, decodeMsPerToken: decodePerToken };
}

async function unload() { if (rt) { try { await (rt.dispose || rt.close || (() => {})).call(rt); } catch {} rt = null; } }

try { markReady({ name: 'qwasm', load, generate, unload }); } catch (e) { fail(e); }
