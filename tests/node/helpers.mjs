// Shared helpers of the runtime tests: a tiny Range-capable HTTP server with failure hooks, paths, skips.
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const MODELS = path.join(ROOT, 'build', 'models');
export const WASM_DIR = path.join(ROOT, 'build', 'wasm');
export const CLI = path.join(ROOT, 'build', 'native', 'qwasm');

/** Whether the wasm build has the model exports (the C core has landed and build/wasm was built). */
export function wasmReady() {
  try {
    const js = fs.readFileSync(path.join(WASM_DIR, 'qwasm-st.mjs'), 'utf8');
    return js.includes('_qw_wasm_model_load') && js.includes('_qw_wasm_gen_next');
  } catch { return false; }
}

export function modelDir(name) {
  const d = path.join(MODELS, name);
  return fs.existsSync(path.join(d, 'config.json')) ? d : null;
}

/**
 * Serves `root` with single-range support. hooks:
 *   drop(req, start, end) -> number|null : close the socket after that many body bytes
 *   status(req) -> number|null           : respond with that status, empty body
 *   truncate: {relPath: bytes}           : serve the file as if it had that many bytes
 *   noRange: boolean                     : ignore Range (200 + whole body)
 *   delay(req, rel) -> ms                : wait before answering
 *   noContentRange: boolean              : 206 without Content-Range (as a cross-origin response that does not expose it)
 */
export async function startTestServer(root, hooks = {}) {
  const requests = [];
  const server = http.createServer(async (req, res) => {
    const ms = hooks.delay ? hooks.delay(req, decodeURIComponent(new URL(req.url, 'http://x').pathname).replace(/^\/+/, '')) : 0;
    if (ms) await new Promise((r) => setTimeout(r, ms));
    const u = new URL(req.url, 'http://x');
    const rel = decodeURIComponent(u.pathname).replace(/^\/+/, '');
    const range = req.headers.range || null;
    requests.push({ method: req.method, path: u.pathname, range });
    const st = hooks.status && hooks.status(req, rel);
    if (st) { res.writeHead(st, { 'Content-Length': 0 }); res.end(); return; }
    const file = path.join(root, rel);
    if (!file.startsWith(root) || !fs.existsSync(file) || !fs.statSync(file).isFile()) { res.writeHead(404, { 'Content-Length': 0 }); res.end(); return; }
    let size = fs.statSync(file).size;
    if (hooks.truncate && hooks.truncate[rel] != null) size = hooks.truncate[rel];
    const etag = `"${size}-${Math.floor(fs.statSync(file).mtimeMs)}"`;
    let start = 0, end = size - 1, status = 200;
    const m = /^bytes=(\d+)-(\d*)$/.exec(range || '');
    if (m && !hooks.noRange) {
      start = +m[1]; end = m[2] ? Math.min(+m[2], size - 1) : size - 1;
      if (start >= size) { res.writeHead(416, { 'Content-Range': `bytes */${size}` }); res.end(); return; }
      status = 206;
    }
    const headers = { 'Content-Length': end - start + 1, 'Accept-Ranges': hooks.noRange ? 'none' : 'bytes', ETag: etag, 'Content-Type': 'application/octet-stream' };
    if (status === 206 && !hooks.noContentRange) headers['Content-Range'] = `bytes ${start}-${end}/${size}`;
    res.writeHead(status, headers);
    if (req.method === 'HEAD') { res.end(); return; }
    const dropAt = hooks.drop ? hooks.drop(req, start, end, rel) : null;
    // stall: send that many bytes, then nothing more, keeping the connection open (a hung server or proxy)
    const stallAt = dropAt == null && hooks.stall ? hooks.stall(req, start, end, rel) : null;
    const cut = dropAt != null ? dropAt : stallAt;
    const stream = fs.createReadStream(file, { start, end: cut != null ? Math.min(end, start + cut - 1) : end });
    if (dropAt != null) {
      stream.on('end', () => res.socket && res.socket.destroy());
      stream.pipe(res, { end: false });
    } else if (stallAt != null) stream.pipe(res, { end: false });
    else stream.pipe(res);
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${server.address().port}/`,
    requests,
    hooks,
    close: () => new Promise((r) => { server.closeAllConnections && server.closeAllConnections(); server.close(() => r()); }),
  };
}

/** The bytes of a complete file in a cache store (js/cache*.js), read through its synchronous reader. */
export async function cachedBytes(store, name) {
  const meta = await store.getMeta(name);
  const r = await store.openReader(name, meta);
  const out = Buffer.alloc(meta.size);
  r.read(0, out);
  r.close();
  return out;
}
