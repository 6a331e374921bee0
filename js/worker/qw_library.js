// qw_library.js - emscripten --js-library: the JS functions C imports (declared in src/bindings/wasm/qw_wasm_api.c).
//
// C reads model files through a qw_fs whose size/read call these. They dispatch to "file sources"
// registered by the worker (js/worker/qwasm-worker.js) in Module.qwFs (a Map: fs_id -> source). A source is
//   { size(name) -> number (bytes) | -1 when the file does not exist,
//     read(name, offset, dst: Uint8Array) -> void, fills dst exactly or throws }
// Both are synchronous. Thrown errors become a qw_status (error.qwStatus, else QW_E_IO) and are kept in
// Module.qwFsLastError = {file, message, code} so the glue can name the file and the cause.
// Status values: Module.qwStatus, js/worker/qwasm-abi.js's QW_STATUS (set by js/worker/qwasm-loader.js; a --js-library is not
// an ES module and cannot import it).
mergeInto(LibraryManager.library, {
  qw_js_fs_size: function (fsId, namePtr, outPtr) {
    var name = UTF8ToString(namePtr);
    var src = Module['qwFs'] && Module['qwFs'].get(fsId);
    if (!src) {
      Module['qwFsLastError'] = { file: name, code: 'IO', message: name + ': no file source ' + fsId + ' on this thread (reads must happen on the runtime thread)' };
      return 2; /* QW_E_IO: a pthread's Module has no qwStatus (tests/node/abi.test.mjs checks the number) */
    }
    try {
      var n = src.size(name);
      if (n < 0) return Module['qwStatus'].QW_E_NOTFOUND;
      var v = new Uint32Array(wasmMemory.buffer, outPtr, 2);
      v[0] = n % 4294967296;
      v[1] = Math.floor(n / 4294967296);
      return Module['qwStatus'].QW_OK;
    } catch (e) {
      Module['qwFsLastError'] = { file: name, code: e.code || 'IO', message: String(e && e.message || e) };
      return e.qwStatus || Module['qwStatus'].QW_E_IO;
    }
  },
  qw_js_fs_read: function (fsId, namePtr, offset, dst, len) {
    var name = UTF8ToString(namePtr);
    var src = Module['qwFs'] && Module['qwFs'].get(fsId);
    if (!src) {
      Module['qwFsLastError'] = { file: name, code: 'IO', message: name + ': no file source ' + fsId + ' on this thread (reads must happen on the runtime thread)' };
      return 2; /* QW_E_IO: a pthread's Module has no qwStatus (tests/node/abi.test.mjs checks the number) */
    }
    try {
      src.read(name, offset, new Uint8Array(wasmMemory.buffer, dst, len));
      return Module['qwStatus'].QW_OK;
    } catch (e) {
      Module['qwFsLastError'] = { file: name, code: e.code || 'IO', message: String(e && e.message || e) };
      return e.qwStatus || Module['qwStatus'].QW_E_IO;
    }
  },
  qw_js_progress: function (phasePtr, done, total) {
    var cb = Module['qwOnProgress'];
    if (cb) { try { cb(UTF8ToString(phasePtr), done, total); } catch (e) { /* progress must never fail a load */ } }
  },
});
