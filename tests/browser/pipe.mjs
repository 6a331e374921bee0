// A DevTools-free Chromium driver: CDP over --remote-debugging-pipe (fds 3/4, NUL-terminated JSON), attached to
// the page target only and using only the Runtime and Page domains. Nothing turns on Network tracking, so the
// browser keeps no response bodies (Playwright's Network agent keeps ~200 MB of them in the renderer), and the
// tab's memory is what a user's tab holds. Used by the big test's cache-'none' memory assertion.
import fs from 'node:fs';
import { spawn } from 'node:child_process';
import { CHROMIUM, CHROME_ARGS, tmpDir } from './lib.mjs';

/** Starts headless Chromium on a fresh profile -> {userDataDir, goto(url), evaluate(expr), close()}. */
export async function pipeChromium() {
  const userDataDir = tmpDir('qwasm-pipe-');
  const proc = spawn(CHROMIUM, ['--headless', ...CHROME_ARGS, '--remote-debugging-pipe', `--user-data-dir=${userDataDir}`, 'about:blank'],
    { stdio: ['ignore', 'ignore', 'ignore', 'pipe', 'pipe'] });
  const out = proc.stdio[3], inp = proc.stdio[4];
  const waiting = new Map(); // replies by id; events (messages without one) are not used
  let id = 0, buf = '';
  inp.on('data', (d) => {
    buf += d.toString('utf8');
    for (let i = buf.indexOf('\0'); i >= 0; i = buf.indexOf('\0')) {
      const m = JSON.parse(buf.slice(0, i));
      buf = buf.slice(i + 1);
      const w = waiting.get(m.id);
      if (w) { waiting.delete(m.id); if (m.error) w.reject(new Error(`CDP ${w.method}: ${m.error.message}`)); else w.resolve(m.result); }
    }
  });
  const send = (method, params = {}, sessionId) => new Promise((resolve, reject) => {
    waiting.set(++id, { resolve, reject, method });
    out.write(`${JSON.stringify({ id, method, params, ...(sessionId ? { sessionId } : {}) })}\0`);
  });
  const { targetInfos } = await send('Target.getTargets');
  const target = targetInfos.find((t) => t.type === 'page');
  const { sessionId } = await send('Target.attachToTarget', { targetId: target.targetId, flatten: true });
  const evaluate = async (expression) => {
    const r = await send('Runtime.evaluate', { expression, awaitPromise: true, returnByValue: true }, sessionId);
    if (r.exceptionDetails) throw new Error(`page: ${r.exceptionDetails.exception?.description || r.exceptionDetails.text}`);
    return r.result.value;
  };
  return {
    userDataDir, evaluate,
    async goto(url, ready) {
      await send('Page.navigate', { url }, sessionId);
      for (let t = Date.now(); !(await evaluate(ready).catch(() => false)); await new Promise((r) => setTimeout(r, 100)))
        if (Date.now() - t > 30000) throw new Error(`${url}: not ready (${ready}) after 30 s`);
    },
    async close() {
      await send('Browser.close').catch(() => {});
      await new Promise((r) => { if (proc.exitCode !== null) r(); else { proc.once('exit', r); setTimeout(() => { proc.kill(); r(); }, 5000); } });
      fs.rmSync(userDataDir, { recursive: true, force: true });
    },
  };
}
