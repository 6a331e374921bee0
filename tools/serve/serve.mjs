#!/usr/bin/env node
// qwasm development static server. No dependencies (Node >= 18).
//
//   node tools/serve/serve.mjs [--port N] [--host H] [--root DIR] [--no-isolation] [--quiet]
//
// Serves the repository root (default) with:
//   - COOP same-origin + COEP require-corp + CORP same-origin (cross-origin
//     isolation, needed for SharedArrayBuffer / wasm threads); all three are
//     omitted with --no-isolation to exercise the single-thread fallback.
//   - HTTP Range (single range: 206 + Content-Range; 416 when unsatisfiable),
//     HEAD, ETag / Last-Modified with If-None-Match / If-Modified-Since (304)
//     and If-Range.
//   - MIME types for .js/.mjs/.wasm/.json/.onnx/.onnx_data/.data/html/css/svg/png...
//   - `/` redirects to /demo/; directories redirect to a trailing slash and
//     serve their index.html; path traversal and dot-segments are refused.
//
// Test hooks (all OFF by default; only active when requested):
//   ?__drop=N      close the socket after sending N body bytes (simulates a
//                  dropped connection mid-download). Also env QWASM_SERVE_DROP=N
//                  applies to every file under a path containing "/models/".
//   ?__delay=MS    wait MS milliseconds before responding.
//   ?__status=CODE respond with CODE (e.g. 503, 404) and an empty body.
//   ?__throttle=B  send at most B bytes per 100 ms (to test progress / Stop).
//   env QWASM_SERVE_THROTTLE=B applies the throttle to "/models/" paths.
//   ?__stall=B     send B bytes, then nothing, keeping the connection open (a hung server: the stall watchdog).
//   startServer({drop, dropTimes, throttle, stall, stallTimes}) / env QWASM_SERVE_DROP_TIMES, QWASM_SERVE_STALL(_TIMES):
//                  the same for "/models/" paths,
//   settable at run time through srv.hooks (drop only hits responses longer than `drop`, `dropTimes` times).
//   Hooks are honoured only when startServer({testHooks: true}) or
//   --test-hooks / env QWASM_SERVE_TEST_HOOKS=1 is set.
//
// Programmatic use (tests):
//   import { startServer } from './tools/serve/serve.mjs';
//   const srv = await startServer({ port: 0, root, isolation: true });
//   srv.url  // 'http://127.0.0.1:PORT/'
//   srv.requests  // array of {method, url, status, range, time, sent (body bytes), ended (time), stalled}
//   await srv.close();

import http from 'node:http';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const REPO_ROOT = path.resolve(HERE, '..', '..');

export const MIME = {
  '.html': 'text/html; charset=utf-8',
  '.htm': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.cjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.wasm': 'application/wasm',
  '.onnx': 'application/octet-stream',
  '.onnx_data': 'application/octet-stream',
  '.data': 'application/octet-stream',
  '.bin': 'application/octet-stream',
  '.safetensors': 'application/octet-stream',
  '.gguf': 'application/octet-stream',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.gif': 'image/gif',
  '.webp': 'image/webp',
  '.ico': 'image/x-icon',
  '.txt': 'text/plain; charset=utf-8',
  '.md': 'text/markdown; charset=utf-8',
  '.jinja': 'text/plain; charset=utf-8',
  '.model': 'application/octet-stream',
  '.woff2': 'font/woff2',
  '.webmanifest': 'application/manifest+json',
};

export function mimeFor(file) {
  const base = path.basename(file).toLowerCase();
  // model shards such as model.onnx_data_1 / model_q4f16.onnx_data
  if (/\.onnx_data(_\d+)?$/.test(base)) return 'application/octet-stream';
  return MIME[path.extname(base)] || 'application/octet-stream';
}

function isolationHeaders(isolation) {
  return isolation
    ? {
        'Cross-Origin-Opener-Policy': 'same-origin',
        'Cross-Origin-Embedder-Policy': 'require-corp',
        'Cross-Origin-Resource-Policy': 'same-origin',
      }
    : {};
}

function parseRange(header, size) {
  // Returns null (ignore), 'bad' (416), or {start, end} (inclusive).
  if (!header) return null;
  const m = /^bytes=(.*)$/i.exec(header.trim());
  if (!m) return null; // unknown unit: ignore, send 200
  const specs = m[1].split(',').map((s) => s.trim()).filter(Boolean);
  if (specs.length !== 1) {
    // Multiple ranges: we do not do multipart/byteranges; serve the first if valid.
    if (specs.length === 0) return 'bad';
  }
  const spec = specs[0];
  const r = /^(\d*)-(\d*)$/.exec(spec);
  if (!r || (r[1] === '' && r[2] === '')) return 'bad';
  let start, end;
  if (r[1] === '') {
    const suffix = Number(r[2]);
    if (suffix === 0) return 'bad';
    start = Math.max(0, size - suffix);
    end = size - 1;
  } else {
    start = Number(r[1]);
    end = r[2] === '' ? size - 1 : Math.min(Number(r[2]), size - 1);
    if (r[2] !== '' && Number(r[2]) < start) return 'bad';
  }
  if (start >= size || size === 0) return 'bad';
  return { start, end };
}

function makeEtag(st) {
  return `"${st.size.toString(16)}-${Math.floor(st.mtimeMs).toString(16)}"`;
}

function etagMatches(header, etag) {
  if (!header) return false;
  if (header.trim() === '*') return true;
  return header.split(',').some((t) => t.trim().replace(/^W\//, '') === etag);
}

/**
 * Start the server. Resolves to {server, port, url, origin, requests, close()}.
 * @param {{port?: number, host?: string, root?: string, isolation?: boolean,
 *          quiet?: boolean, testHooks?: boolean, log?: (s: string) => void}} opts
 */
export function startServer(opts = {}) {
  const root = path.resolve(opts.root || REPO_ROOT);
  const isolation = opts.isolation !== false;
  const host = opts.host || '127.0.0.1';
  const quiet = opts.quiet ?? true;
  const testHooks = !!(opts.testHooks ?? (process.env.QWASM_SERVE_TEST_HOOKS === '1'));
  // model-path hooks: options win over the environment; `drop` applies to the first `dropTimes` responses only
  const hooks = {
    drop: testHooks ? Number(opts.drop ?? process.env.QWASM_SERVE_DROP ?? 0) : 0,
    dropTimes: Number(opts.dropTimes ?? process.env.QWASM_SERVE_DROP_TIMES ?? Infinity),
    throttle: testHooks ? Number(opts.throttle ?? process.env.QWASM_SERVE_THROTTLE ?? 0) : 0,
    stall: testHooks ? Number(opts.stall ?? process.env.QWASM_SERVE_STALL ?? 0) : 0,
    stallTimes: Number(opts.stallTimes ?? process.env.QWASM_SERVE_STALL_TIMES ?? Infinity),
  };
  const log = opts.log || ((s) => { if (!quiet) console.log(s); });
  const requests = [];
  const sockets = new Set();

  const server = http.createServer(async (req, res) => {
    const rec = { method: req.method, url: req.url, status: 0, range: req.headers.range || null, time: Date.now() };
    requests.push(rec);
    const base = {
      ...isolationHeaders(isolation),
      'X-Content-Type-Options': 'nosniff',
      'Cache-Control': 'no-cache',
      'Access-Control-Expose-Headers': 'Content-Length, Content-Range, Accept-Ranges, ETag',
    };
    const finish = (status, headers = {}, body = '') => {
      rec.status = status;
      res.writeHead(status, { ...base, ...headers });
      if (req.method === 'HEAD') res.end(); else res.end(body);
      log(`${req.method} ${req.url} ${status}`);
    };
    try {
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        return finish(405, { Allow: 'GET, HEAD', 'Content-Type': 'text/plain; charset=utf-8' }, 'Method not allowed\n');
      }
      let u;
      try { u = new URL(req.url, 'http://localhost'); } catch { return finish(400, { 'Content-Type': 'text/plain' }, 'Bad request\n'); }
      const q = u.searchParams;
      const hook = (name) => (testHooks && q.has(name) ? Number(q.get(name)) : 0);

      if (hook('__delay') > 0) await new Promise((r) => setTimeout(r, hook('__delay')));
      if (hook('__status') >= 100) {
        return finish(hook('__status'), { 'Content-Type': 'text/plain; charset=utf-8' }, '');
      }

      if (u.pathname === '/' ) {
        return finish(302, { Location: '/demo/' + u.search, 'Content-Type': 'text/plain' }, 'See /demo/\n');
      }

      // Refuse traversal: raw and decoded checks.
      let rel;
      try { rel = decodeURIComponent(u.pathname); } catch { return finish(400, { 'Content-Type': 'text/plain' }, 'Bad path\n'); }
      const rawSegs = req.url.split('?')[0].split('/');
      if (rel.includes('\0') || rel.includes('\\') ||
          rel.split('/').some((s) => s === '..' || s === '.') ||
          rawSegs.some((s) => /^(\.|%2e){1,2}$/i.test(s))) {
        return finish(403, { 'Content-Type': 'text/plain; charset=utf-8' }, 'Forbidden\n');
      }
      const file = path.resolve(root, '.' + rel);
      if (file !== root && !file.startsWith(root + path.sep)) {
        return finish(403, { 'Content-Type': 'text/plain; charset=utf-8' }, 'Forbidden\n');
      }
      let st;
      try { st = await fsp.stat(file); } catch {
        return finish(404, { 'Content-Type': 'text/plain; charset=utf-8' }, `Not found: ${rel}\n`);
      }
      // Symlinks pointing outside the root are refused too.
      let real;
      try { real = await fsp.realpath(file); } catch { real = file; }
      const realRoot = await fsp.realpath(root).catch(() => root);
      if (real !== realRoot && !real.startsWith(realRoot + path.sep)) {
        return finish(403, { 'Content-Type': 'text/plain; charset=utf-8' }, 'Forbidden\n');
      }
      let target = file;
      if (st.isDirectory()) {
        if (!u.pathname.endsWith('/')) {
          return finish(301, { Location: u.pathname + '/' + u.search, 'Content-Type': 'text/plain' }, 'Moved\n');
        }
        target = path.join(file, 'index.html');
        try { st = await fsp.stat(target); } catch {
          return finish(404, { 'Content-Type': 'text/plain; charset=utf-8' }, `Not found: ${rel}index.html\n`);
        }
      }
      if (!st.isFile()) return finish(404, { 'Content-Type': 'text/plain' }, 'Not found\n');

      const size = st.size;
      const etag = makeEtag(st);
      const lastMod = new Date(Math.floor(st.mtimeMs / 1000) * 1000).toUTCString();
      const headers = {
        'Content-Type': mimeFor(target),
        'Accept-Ranges': 'bytes',
        ETag: etag,
        'Last-Modified': lastMod,
      };

      // Conditional GET
      const inm = req.headers['if-none-match'];
      const ims = req.headers['if-modified-since'];
      if (inm ? etagMatches(inm, etag) : (ims && Date.parse(ims) >= Date.parse(lastMod))) {
        rec.status = 304;
        res.writeHead(304, { ...base, ETag: etag, 'Last-Modified': lastMod });
        res.end();
        log(`${req.method} ${req.url} 304`);
        return;
      }

      let range = parseRange(req.headers.range, size);
      const ifRange = req.headers['if-range'];
      if (range && ifRange) {
        const ok = ifRange.startsWith('"') || ifRange.startsWith('W/') ? ifRange === etag : Date.parse(ifRange) >= Date.parse(lastMod);
        if (!ok) range = null;
      }
      if (range === 'bad') {
        return finish(416, { 'Content-Range': `bytes */${size}`, 'Content-Type': 'text/plain', 'Accept-Ranges': 'bytes' }, 'Range not satisfiable\n');
      }
      let status = 200, start = 0, end = size - 1;
      if (range) {
        status = 206; start = range.start; end = range.end;
        headers['Content-Range'] = `bytes ${start}-${end}/${size}`;
      }
      const length = size === 0 ? 0 : end - start + 1;
      headers['Content-Length'] = String(length);
      rec.status = status;
      res.writeHead(status, { ...base, ...headers });
      log(`${req.method} ${req.url} ${status}${range ? ` ${start}-${end}/${size}` : ''}`);
      if (req.method === 'HEAD' || length === 0) return res.end();

      const isModel = u.pathname.includes('/models/');
      let drop = hook('__drop');
      if (!drop && isModel && hooks.drop > 0 && length > hooks.drop && hooks.dropTimes > 0) { drop = hooks.drop; hooks.dropTimes--; }
      let stall = drop ? 0 : hook('__stall');
      if (!drop && !stall && isModel && hooks.stall > 0 && length > hooks.stall && hooks.stallTimes > 0) { stall = hooks.stall; hooks.stallTimes--; }
      const throttle = hook('__throttle') || (isModel ? hooks.throttle : 0);
      const stream = fs.createReadStream(target, { start, end, highWaterMark: throttle ? Math.max(1, Math.min(throttle, 65536)) : 1 << 20 });
      let sent = 0;
      req.on('close', () => stream.destroy());
      stream.on('error', () => res.destroy());
      stream.on('data', (chunk) => {
        if (drop > 0 && sent + chunk.length >= drop) {
          const part = chunk.subarray(0, Math.max(0, drop - sent));
          stream.destroy();
          res.write(part, () => setTimeout(() => res.socket?.destroy(), 20));
          return;
        }
        if (stall > 0 && sent + chunk.length >= stall) {
          // a hung server: the bytes up to `stall`, then nothing, the connection left open until the client goes
          stream.destroy();
          rec.stalled = true;
          res.write(chunk.subarray(0, Math.max(0, stall - sent)));
          return;
        }
        sent += chunk.length;
        rec.sent = sent;
        const more = res.write(chunk);
        if (throttle > 0) {
          stream.pause();
          setTimeout(() => { if (!stream.destroyed) stream.resume(); }, Math.max(1, Math.round(100 * chunk.length / throttle)));
        } else if (!more) {
          stream.pause();
          res.once('drain', () => stream.resume());
        }
      });
      stream.on('end', () => { rec.ended = Date.now(); res.end(); });
    } catch (err) {
      if (!res.headersSent) finish(500, { 'Content-Type': 'text/plain' }, 'Internal error\n');
      else res.destroy();
      console.error(err);
    }
  });
  server.on('connection', (s) => { sockets.add(s); s.on('close', () => sockets.delete(s)); });

  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 8080, host, () => {
      const port = server.address().port;
      const hostForUrl = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host;
      const origin = `http://${hostForUrl}:${port}`;
      resolve({
        server, port, origin, url: origin + '/', root, isolation, requests, hooks,
        close: () => new Promise((r) => { for (const s of sockets) s.destroy(); server.close(() => r()); }),
      });
    });
  });
}

function parseArgs(argv) {
  const o = { port: 8080, root: REPO_ROOT, isolation: true, host: '127.0.0.1', quiet: false, testHooks: undefined };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => { const v = argv[++i]; if (v === undefined) throw new Error(`${a} needs a value`); return v; };
    if (a === '--port' || a === '-p') o.port = Number(val());
    else if (a.startsWith('--port=')) o.port = Number(a.slice(7));
    else if (a === '--root') o.root = path.resolve(val());
    else if (a.startsWith('--root=')) o.root = path.resolve(a.slice(7));
    else if (a === '--host') o.host = val();
    else if (a.startsWith('--host=')) o.host = a.slice(7);
    else if (a === '--no-isolation') o.isolation = false;
    else if (a === '--quiet' || a === '-q') o.quiet = true;
    else if (a === '--test-hooks') o.testHooks = true;
    else if (a === '--help' || a === '-h') {
      console.log('usage: node tools/serve/serve.mjs [--port N] [--host H] [--root DIR] [--no-isolation] [--quiet] [--test-hooks]');
      process.exit(0);
    } else throw new Error(`unknown argument: ${a}`);
  }
  if (!Number.isInteger(o.port) || o.port < 0 || o.port > 65535) throw new Error('bad --port');
  return o;
}

const isMain = process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href;
if (isMain) {
  let o;
  try { o = parseArgs(process.argv.slice(2)); } catch (e) { console.error(e.message); process.exit(2); }
  startServer(o).then((s) => {
    console.log(`qwasm dev server: ${s.url}demo/  (root ${s.root})`);
    console.log(s.isolation
      ? 'cross-origin isolated (COOP/COEP/CORP): multi-threaded wasm available'
      : 'isolation headers OFF (--no-isolation): single-thread fallback');
    if (s.server.address().address === '127.0.0.1' && o.host !== '127.0.0.1') console.log(`listening on ${o.host}`);
  }, (e) => {
    console.error(`cannot listen on ${o.host}:${o.port}: ${e.message}`);
    process.exit(1);
  });
  const stop = () => process.exit(0);
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}
