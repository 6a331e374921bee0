// tools/serve/serve.mjs: headers, Range, HEAD, conditional requests, MIME types, redirects, traversal, test hooks.
// Pure Node (no browser).
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { REPO, server, assert, assertEq, runIfMain, tmpDir } from './lib.mjs';
import { startServer, mimeFor } from '../../tools/serve/serve.mjs';

function req(base, p, { method = 'GET', headers = {} } = {}) {
  return new Promise((resolve, reject) => {
    const u = new URL(base);
    const r = http.request({ host: u.hostname, port: u.port, path: p, method, headers }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks), complete: res.complete }));
      res.on('aborted', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks), complete: false }));
      res.on('error', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks), complete: false }));
    });
    r.on('error', reject);
    r.end();
  });
}

async function withServer(opts, fn) {
  const s = await server(opts);
  try { await fn(s); } finally { await s.close(); }
}

function fixtureRoot() {
  const root = tmpDir('qwasm-serve-');
  fs.mkdirSync(path.join(root, 'demo'));
  fs.writeFileSync(path.join(root, 'demo/index.html'), '<!doctype html><title>x</title>');
  fs.mkdirSync(path.join(root, 'm/onnx'), { recursive: true });
  const data = Buffer.alloc(100000);
  for (let i = 0; i < data.length; i++) data[i] = i & 255;
  fs.writeFileSync(path.join(root, 'm/onnx/model.onnx_data'), data);
  fs.writeFileSync(path.join(root, 'm/config.json'), '{"a":1}');
  fs.writeFileSync(path.join(root, 'empty.bin'), '');
  fs.writeFileSync(path.join(path.dirname(root), `secret-${path.basename(root)}.txt`), 'secret');
  return { root, data };
}

export const tests = [
  {
    name: 'server: isolation headers, MIME types, ETag, HEAD',
    fn: () => withServer({}, async (s) => {
      const r = await req(s.url, '/package.json');
      assertEq(r.status, 200, 'status');
      assertEq(r.headers['cross-origin-opener-policy'], 'same-origin', 'COOP');
      assertEq(r.headers['cross-origin-embedder-policy'], 'require-corp', 'COEP');
      assertEq(r.headers['cross-origin-resource-policy'], 'same-origin', 'CORP');
      assert(/^application\/json/.test(r.headers['content-type']), 'json type');
      assertEq(r.headers['accept-ranges'], 'bytes', 'accept-ranges');
      assert(r.headers.etag && r.headers['last-modified'], 'etag + last-modified');
      assertEq(Number(r.headers['content-length']), fs.statSync(path.join(REPO, 'package.json')).size, 'length');
      const h = await req(s.url, '/package.json', { method: 'HEAD' });
      assertEq(h.status, 200, 'HEAD status'); assertEq(h.body.length, 0, 'HEAD body');
      assertEq(h.headers['content-length'], r.headers['content-length'], 'HEAD length');
      const c = await req(s.url, '/package.json', { headers: { 'if-none-match': r.headers.etag } });
      assertEq(c.status, 304, 'If-None-Match');
      const c2 = await req(s.url, '/package.json', { headers: { 'if-modified-since': r.headers['last-modified'] } });
      assertEq(c2.status, 304, 'If-Modified-Since');
      const types = {
        'a.mjs': 'text/javascript', 'a.js': 'text/javascript', 'a.wasm': 'application/wasm', 'a.json': 'application/json',
        'a.onnx': 'application/octet-stream', 'a.onnx_data': 'application/octet-stream', 'a.data': 'application/octet-stream',
        'model.onnx_data_1': 'application/octet-stream', 'a.html': 'text/html', 'a.css': 'text/css', 'a.svg': 'image/svg+xml', 'a.png': 'image/png',
      };
      for (const [f, t] of Object.entries(types)) assert(mimeFor(f).startsWith(t), `${f} -> ${t} (got ${mimeFor(f)})`);
      const js = await req(s.url, '/tools/serve/serve.mjs');
      assert(js.headers['content-type'].startsWith('text/javascript'), '.mjs served as text/javascript');
    }),
  },
  {
    name: 'server: Range requests (206, suffix, open-ended, 416, If-Range)',
    fn: async () => {
      const { root, data } = fixtureRoot();
      await withServer({ root }, async (s) => {
        const p = '/m/onnx/model.onnx_data';
        let r = await req(s.url, p, { headers: { range: 'bytes=10-19' } });
        assertEq(r.status, 206, 'status'); assertEq(r.headers['content-range'], `bytes 10-19/${data.length}`, 'content-range');
        assert(r.body.equals(data.subarray(10, 20)), 'body 10-19');
        r = await req(s.url, p, { headers: { range: 'bytes=99990-' } });
        assertEq(r.status, 206, 'open'); assert(r.body.equals(data.subarray(99990)), 'open body');
        r = await req(s.url, p, { headers: { range: 'bytes=-5' } });
        assertEq(r.headers['content-range'], `bytes 99995-99999/${data.length}`, 'suffix'); assertEq(r.body.length, 5, 'suffix len');
        r = await req(s.url, p, { headers: { range: 'bytes=99999-200000' } });
        assertEq(r.status, 206, 'clamped'); assertEq(r.body.length, 1, 'clamped len');
        r = await req(s.url, p, { headers: { range: `bytes=${data.length}-` } });
        assertEq(r.status, 416, '416'); assertEq(r.headers['content-range'], `bytes */${data.length}`, '416 content-range');
        r = await req(s.url, p, { headers: { range: 'bytes=20-10' } });
        assertEq(r.status, 416, 'reversed range');
        r = await req(s.url, p, { method: 'HEAD', headers: { range: 'bytes=0-0' } });
        assertEq(r.status, 206, 'HEAD range'); assertEq(r.headers['content-length'], '1', 'HEAD range length');
        const full = await req(s.url, p);
        r = await req(s.url, p, { headers: { range: 'bytes=0-9', 'if-range': full.headers.etag } });
        assertEq(r.status, 206, 'If-Range match');
        r = await req(s.url, p, { headers: { range: 'bytes=0-9', 'if-range': '"stale"' } });
        assertEq(r.status, 200, 'If-Range mismatch -> full'); assertEq(r.body.length, data.length, 'full length');
        r = await req(s.url, '/empty.bin');
        assertEq(r.status, 200, 'empty file'); assertEq(r.body.length, 0, 'empty body');
      });
      fs.rmSync(root, { recursive: true, force: true });
    },
  },
  {
    name: 'server: redirects, 404, 405, traversal refused',
    fn: async () => {
      const { root } = fixtureRoot();
      await withServer({ root }, async (s) => {
        let r = await req(s.url, '/');
        assertEq(r.status, 302, '/ redirect'); assertEq(r.headers.location, '/demo/', 'location');
        r = await req(s.url, '/?model=small');
        assertEq(r.headers.location, '/demo/?model=small', 'query kept');
        r = await req(s.url, '/demo');
        assertEq(r.status, 301, 'dir slash'); assertEq(r.headers.location, '/demo/', 'dir location');
        r = await req(s.url, '/demo/');
        assertEq(r.status, 200, 'index'); assert(r.headers['content-type'].startsWith('text/html'), 'index html');
        r = await req(s.url, '/nope.json');
        assertEq(r.status, 404, '404'); assertEq(r.headers['cross-origin-embedder-policy'], 'require-corp', 'COEP on 404');
        r = await req(s.url, '/demo/', { method: 'POST' });
        assertEq(r.status, 405, 'POST');
        const secret = `/secret-${path.basename(root)}.txt`;
        for (const p of [`/..${secret}`, `/%2e%2e${secret}`, `/demo/..%2f..${secret}`, `/demo/%2e%2e/%2e%2e${secret}`, `/demo/..\\..${secret}`, '/%00', `/./demo/`]) {
          r = await req(s.url, p);
          assert(r.status === 403 || r.status === 400 || r.status === 404, `${p} refused (got ${r.status})`);
          assert(r.body.toString() !== 'secret', `${p} leaked`);
        }
      });
      fs.rmSync(path.join(path.dirname(root), `secret-${path.basename(root)}.txt`), { force: true });
      fs.rmSync(root, { recursive: true, force: true });
    },
  },
  {
    name: 'server: --no-isolation omits COOP/COEP/CORP',
    fn: () => withServer({ isolation: false }, async (s) => {
      const r = await req(s.url, '/package.json');
      assertEq(r.status, 200, 'status');
      for (const h of ['cross-origin-opener-policy', 'cross-origin-embedder-policy', 'cross-origin-resource-policy']) assert(!(h in r.headers), `${h} absent`);
    }),
  },
  {
    name: 'server: test hooks (off by default; drop, status, throttle when enabled)',
    fn: async () => {
      const { root, data } = fixtureRoot();
      await withServer({ root, testHooks: false }, async (s) => {
        const r = await req(s.url, '/m/onnx/model.onnx_data?__drop=100&__status=500');
        assertEq(r.status, 200, 'hooks ignored by default'); assertEq(r.body.length, data.length, 'full body');
      });
      await withServer({ root, testHooks: true }, async (s) => {
        let r = await req(s.url, '/m/onnx/model.onnx_data?__drop=1000');
        assert(r.body.length === 1000 && !r.complete, `dropped after 1000 bytes (got ${r.body.length}, complete ${r.complete})`);
        r = await req(s.url, '/m/config.json?__status=503');
        assertEq(r.status, 503, '__status');
        const t0 = Date.now();
        r = await req(s.url, '/m/onnx/model.onnx_data?__throttle=50000');
        assertEq(r.body.length, data.length, 'throttled body'); assert(Date.now() - t0 >= 100, `throttled time ${Date.now() - t0} ms`);
      });
      fs.rmSync(root, { recursive: true, force: true });
    },
  },
  {
    name: 'server: CLI prints the URL and serves',
    fn: async () => {
      const child = spawn(process.execPath, [path.join(REPO, 'tools/serve/serve.mjs'), '--port', '0', '--quiet'], { stdio: ['ignore', 'pipe', 'pipe'] });
      try {
        const url = await new Promise((resolve, reject) => {
          let out = '';
          const to = setTimeout(() => reject(new Error(`no URL printed: ${out}`)), 5000);
          child.stdout.on('data', (d) => { out += d; const m = /(http:\/\/[^\s]+\/)demo\//.exec(out); if (m) { clearTimeout(to); resolve(m[1]); } });
          child.on('exit', (c) => reject(new Error(`exited ${c}: ${out}`)));
        });
        const r = await req(url, '/demo/');
        assertEq(r.status, 200, 'demo page served');
      } finally { child.kill('SIGTERM'); }
    },
  },
  {
    name: 'server: startServer port 0 picks a free port',
    fn: async () => {
      const a = await startServer({ port: 0 }); const b = await startServer({ port: 0 });
      try { assert(a.port > 0 && b.port > 0 && a.port !== b.port, 'two random ports'); } finally { await a.close(); await b.close(); }
    },
  },
];

await runIfMain(import.meta.url, tests);
