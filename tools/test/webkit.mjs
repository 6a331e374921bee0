// WebKit (Safari's engine) for the tests and the benchmark: Debian's WebKitGTK MiniBrowser driven by
// WebKitWebDriver (package webkit2gtk-driver) over classic W3C WebDriver (HTTP + JSON), with no client
// library. MiniBrowser is a GTK window: without a $DISPLAY it runs on its own Xvfb (package xvfb).
//
//   const wk = await launchWebKit({ safari: true });   // {newPage(), close(), pid, env}
//   const page = await wk.newPage(); await page.goto(url); await page.evaluate((a) => a + 1, 1);
//
// WebKitGTK's defaults differ from Safari's in two ways that matter to qwasm (WebKitGTK 2.50, Debian 12):
//  - SharedArrayBuffer: Safari's web process gets it for cross-origin isolated pages (the XPC bootstrap
//    flag "enable-shared-array-buffer", Cocoa only); WebKitGTK never does, even with crossOriginIsolated
//    true (no global SharedArrayBuffer, a shared wasm memory cannot be posted: DataCloneError). The
//    environment variable JSC_useSharedArrayBuffer=1 turns on what Safari turns on.
//  - navigator.storage (StorageAPI) and OPFS (FileSystem) are off in WebKitGTK, on in Safari (17+).
// safari: true sets both as Safari has them; safari: false leaves WebKitGTK's defaults (the page then
// has to fall back to the single-thread build and IndexedDB, which is worth testing too).
// MiniBrowser's automation sessions are ephemeral (as Safari's WebDriver sessions and Private Browsing): website
// data lives in memory, in WebKitNetworkProcess; OPFS's getDirectory() rejects and IndexedDB refuses Blobs
// there (js/cache/cache.js and js/cache/cache-idb.js fall back by feature detection).
// Pages must be opened at http://localhost:PORT/: WebKitGTK does not treat 127.0.0.1 as a secure context.
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { spawn } from 'node:child_process';

export const WEBKIT_DRIVER = process.env.QWASM_WEBKIT_DRIVER || '/usr/bin/WebKitWebDriver';
export const MINIBROWSER = process.env.QWASM_MINIBROWSER || '/usr/lib/x86_64-linux-gnu/webkit2gtk-4.1/MiniBrowser';
export const XVFB = '/usr/bin/Xvfb';
export const SAFARI_FEATURES = ['StorageAPI', 'StorageAPIEstimate', 'FileSystem', 'FileSystemWritableStream', 'AccessHandle'];

/** Why WebKit cannot run here (a sentence naming the missing file or package), or null. */
export function webkitMissing() {
  if (!fs.existsSync(WEBKIT_DRIVER)) return `${WEBKIT_DRIVER} missing (apt-get install webkit2gtk-driver)`;
  if (!fs.existsSync(MINIBROWSER)) return `${MINIBROWSER} missing (WebKitGTK's MiniBrowser, package libwebkit2gtk-4.1-0)`;
  if (!process.env.DISPLAY && !fs.existsSync(XVFB)) return `no $DISPLAY and ${XVFB} missing (apt-get install xvfb)`;
  return null;
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => resolve(p)); });
  });
}

/** Starts Xvfb on a free display (it writes the number to fd 3). Returns {display, proc}. */
function startXvfb() {
  return new Promise((resolve, reject) => {
    const proc = spawn(XVFB, ['-displayfd', '3', '-screen', '0', '1280x900x24', '-nolisten', 'tcp'],
      { stdio: ['ignore', 'ignore', 'pipe', 'pipe'] });
    let err = '', out = '';
    proc.stderr.on('data', (d) => { err += d; });
    const timer = setTimeout(() => { proc.kill(); reject(new Error(`Xvfb did not start within 20 s: ${err.slice(-400)}`)); }, 20000);
    proc.stdio[3].on('data', (d) => {
      out += d;
      if (out.includes('\n')) { clearTimeout(timer); resolve({ display: `:${out.trim()}`, proc }); }
    });
    proc.once('exit', (code) => { clearTimeout(timer); reject(new Error(`Xvfb exited with ${code}: ${err.slice(-400)}`)); });
  });
}

/** One WebDriver command. node:http, not fetch: undici gives up on a response after 300 s, and a model load
 *  inside one execute/async call may take longer. */
function request(port, method, path, body) {
  const data = body === undefined ? null : Buffer.from(JSON.stringify(body));
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path, headers: data ? { 'content-type': 'application/json', 'content-length': data.length } : {} }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        let j;
        try { j = JSON.parse(Buffer.concat(chunks).toString('utf8')); } catch { j = { value: { error: 'bad json', message: Buffer.concat(chunks).toString('utf8').slice(0, 300) } }; }
        if (res.statusCode >= 400 || (j.value && j.value.error)) {
          reject(Object.assign(new Error(`WebDriver ${method} ${path}: ${j.value.error}: ${j.value.message}`), { wd: j.value.error }));
        } else resolve(j.value);
      });
    });
    req.on('error', reject);
    if (data) req.write(data);
    req.end();
  });
}

/**
 * Launches MiniBrowser through WebKitWebDriver (and Xvfb when there is no $DISPLAY).
 * @param {{safari?: boolean, env?: object, args?: string[], tag?: string}} [opts] tag: a string put on
 *   MiniBrowser's command line (the benchmark finds its process tree by it)
 */
export async function launchWebKit(opts = {}) {
  const why = webkitMissing();
  if (why) throw Object.assign(new Error(why), { code: 'WEBKIT_MISSING' });
  const safari = opts.safari !== false;
  const procs = [];
  const env = { ...process.env, ...(opts.env || {}) };
  if (safari) env.JSC_useSharedArrayBuffer = '1';
  try {
    if (!env.DISPLAY) {
      const x = await startXvfb();
      procs.push(x.proc);
      env.DISPLAY = x.display;
    }
    const port = await freePort();
    const driver = spawn(WEBKIT_DRIVER, [`--port=${port}`], { env, stdio: ['ignore', 'ignore', 'pipe'] });
    procs.push(driver);
    let driverErr = '';
    driver.stderr.on('data', (d) => { driverErr = (driverErr + d).slice(-2000); });
    for (let t0 = Date.now(); ;) {
      try { await request(port, 'GET', '/status'); break; } catch (e) {
        if (driver.exitCode != null) throw new Error(`WebKitWebDriver exited with ${driver.exitCode}: ${driverErr}`, { cause: e });
        if (Date.now() - t0 > 20000) throw new Error(`WebKitWebDriver did not answer within 20 s: ${e.message}`, { cause: e });
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    const args = ['--automation', ...(safari ? [`--features=${SAFARI_FEATURES.map((f) => '+' + f).join(',')}`] : []), ...(opts.args || [])];
    if (opts.tag) args.push(`--name=${opts.tag}`);
    const caps = { capabilities: { alwaysMatch: { 'webkitgtk:browserOptions': { binary: MINIBROWSER, args } } } };
    let s;
    try { s = await request(port, 'POST', '/session', caps); } catch (e) { throw new Error(`${e.message}\n  driver: ${driverErr.slice(-600)}`, { cause: e }); }
    const sid = s.sessionId;
    const wd = (method, p, body) => request(port, method, `/session/${sid}${p}`, body);
    await wd('POST', '/timeouts', { script: 2 ** 31 - 1, pageLoad: 300000 });
    const state = { reuse: true }; // the session's own window is free: the next newPage takes it
    return {
      env, port, sessionId: sid, driverPid: driver.pid, capabilities: s.capabilities, wd,
      /** The session's window for the first call, then a new window (tab) each time. */
      async newPage() {
        if (!state.reuse) {
          const w = await wd('POST', '/window/new', { type: 'tab' });
          await wd('POST', '/window', { handle: w.handle });
        }
        state.reuse = false;
        return makePage(wd, state);
      },
      async close() {
        await wd('DELETE', '').catch(() => {});
        for (const p of procs.reverse()) await stop(p);
      },
    };
  } catch (e) {
    for (const p of procs.reverse()) await stop(p);
    throw e;
  }
}

function stop(p) {
  if (p.exitCode != null || p.signalCode != null) return Promise.resolve();
  return new Promise((resolve) => {
    const t = setTimeout(() => { try { p.kill('SIGKILL'); } catch {} resolve(); }, 5000);
    p.once('exit', () => { clearTimeout(t); resolve(); });
    p.kill('SIGTERM');
  });
}

/** A page object with the few calls the tests and the benchmark use (Playwright-like names). */
function makePage(wd, state) {
  const page = {
    async goto(url) { await wd('POST', '/url', { url }); },
    async reload() { await wd('POST', '/refresh', {}); },
    /** Runs fn(arg) in the page and returns its (awaited, JSON-serialisable) result; throws the page's error. */
    async evaluate(fn, arg) {
      const script = `const done = arguments[arguments.length - 1];
        Promise.resolve().then(() => (${fn.toString()})(arguments[0]))
          .then((v) => done({ ok: v === undefined ? null : v }),
            (e) => done({ err: e && e.message !== undefined ? e.name + ': ' + e.message + (e.stack ? '\\n' + e.stack : '') : String(e) }));`;
      const r = await wd('POST', '/execute/async', { script, args: [arg === undefined ? null : arg] });
      if (r && r.err !== undefined) throw new Error(`in the page: ${r.err}`);
      return r && r.ok;
    },
    async waitForFunction(fn, arg, { timeout = 30000, polling = 100 } = {}) {
      for (const t0 = Date.now(); ;) {
        const v = await page.evaluate(fn, arg);
        if (v) return v;
        if (Date.now() - t0 > timeout) throw Object.assign(new Error(`waitForFunction: ${timeout} ms exceeded`), { name: 'TimeoutError' });
        await new Promise((r) => setTimeout(r, polling));
      }
    },
    /** Real key events through WebDriver: types text into the element matched by css, then optional Enter. */
    async type(css, text, { enter = false } = {}) {
      const el = await wd('POST', '/element', { using: 'css selector', value: css });
      const id = Object.values(el)[0];
      await wd('POST', `/element/${id}/clear`, {});
      await wd('POST', `/element/${id}/value`, { text: text + (enter ? '\uE007' : '') });
    },
    async click(css) {
      const el = await wd('POST', '/element', { using: 'css selector', value: css });
      await wd('POST', `/element/${Object.values(el)[0]}/click`, {});
    },
    async screenshot({ path }) {
      const b64 = await wd('GET', '/screenshot');
      fs.writeFileSync(path, Buffer.from(b64, 'base64'));
    },
    on() {}, // no page events in classic WebDriver: the tests read errors from the page itself
    // Closing the session's last window would end the session: a blank tab is opened first (and taken by the
    // next newPage). Navigating away instead would leave the page alive in WebKit's back/forward cache.
    async close() {
      const handles = await wd('GET', '/window/handles');
      if (handles.length === 1) {
        await wd('POST', '/window/new', { type: 'tab' });
        state.reuse = true;
      }
      const left = await wd('DELETE', '/window');
      await wd('POST', '/window', { handle: left[0] });
    },
  };
  return page;
}
