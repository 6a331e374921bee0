// stall-timer.js - a timeout that measures waiting, not wall time: the downloads' stall watchdog (fetch.js) and
// the OPFS calls' deadline (cache-opfs.js). A worker blocked in synchronous work (a cache write, a long wasm call)
// would otherwise find every pending timer expired when it returns, and take its own pause for a stall.

/**
 * Calls onStall once `ms` of waiting have passed, counting only the time this thread could have run: it ticks,
 * and a tick that comes late (the thread was busy, e.g. in a synchronous cache write or a page in the
 * background) adds at most two ticks' worth, so a slow disk is not taken for a stalled connection.
 * Returns stop(). ms <= 0: never.
 */
export function stallTimer(ms, onStall) {
  if (!(ms > 0)) return () => {};
  const tick = Math.max(10, Math.min(1000, ms / 4));
  let waited = 0, prev = Date.now(), t = null;
  const step = () => {
    const now = Date.now();
    waited += Math.min(now - prev, 2 * tick);
    prev = now;
    if (waited >= ms) onStall(); else t = setTimeout(step, tick);
  };
  t = setTimeout(step, tick);
  return () => clearTimeout(t);
}
