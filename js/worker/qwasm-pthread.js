// qwasm-pthread.js - a classic worker, started by the page, that hosts one emscripten pthread of qwasm-mt.
//
// Why the page starts it: Firefox (ESR 153 here) can block forever in a `new Worker()` called inside a worker
// (about one load in ten in our tests), and emscripten creates its pthread pool from the runtime worker. So
// the runtime worker asks the page for each pthread (js/page/qwasm.js), the page starts this script and hands it
// one end of a MessageChannel; the runtime worker holds the other end as if it were the Worker.
//
// Protocol: the first message is {cmd:'qw-port', port}. From then on the port carries emscripten's own
// pthread messages both ways; this script loads emscripten's worker script (its same-origin URL in ?src=)
// and answers {cmd:'qw-pthread-up'} over the port once it is in place.
const src = new URL(new URL(self.location.href).searchParams.get('src') || '', self.location.href);

self.onmessage = (first) => {
  const port = first.data && first.data.port;
  if (!port) throw new Error('qwasm-pthread.js: expected {cmd:"qw-port", port} first');
  if (src.origin !== self.location.origin || !/\.worker\.js$/.test(src.pathname)) {
    throw new Error(`qwasm-pthread.js: refusing to load ${src.href} (expected a same-origin emscripten .worker.js)`);
  }
  self.onmessage = null;
  // emscripten's worker script replies with the global postMessage and listens with self.onmessage.
  self.postMessage = (m, transfer) => port.postMessage(m, transfer);
  port.onmessage = (e) => { if (self.onmessage) self.onmessage(e); };
  importScripts(src.href);
  port.postMessage({ cmd: 'qw-pthread-up' });
};
