// port-worker.js - a Worker look-alike over a MessagePort, for a worker that someone else (the page) started.
// emscripten's pthread pool uses: onmessage, onerror, postMessage(msg, transfer), terminate(); qwasm's loader
// also addEventListener('message' | 'error'). See js/worker/qwasm-pthread.js for why the page starts the pthreads.

export class PortWorker extends EventTarget {
  /** @param {MessagePort} port @param {() => void} kill asks the owner to terminate the real worker */
  constructor(port, kill) {
    super();
    this.port = port;
    this.kill = kill;
    this.onmessage = null;
    this.onerror = null;
    port.onmessage = (e) => {
      if (this.onmessage) this.onmessage(e);
      this.dispatchEvent(new MessageEvent('message', { data: e.data }));
    };
  }

  postMessage(msg, transfer) { this.port.postMessage(msg, transfer || []); }

  terminate() {
    this.port.onmessage = null;
    this.port.close();
    this.kill();
  }

  /** The owner reports an error event of the real worker: {message, filename, lineno}. */
  reportError(info) {
    const ev = new ErrorEvent('error', { message: info.message || 'worker error', filename: info.filename || '', lineno: info.lineno || 0, cancelable: true });
    this.dispatchEvent(ev);
    // emscripten's handler logs and rethrows: keep that from tearing down this worker's message loop.
    if (this.onerror) { try { this.onerror(ev); } catch (e) { console.error(e); } }
  }
}
