// Loads build/<prog>.js (an emscripten build of tests/test_kernels.c, a classic script) with the page's
// query as its arguments, collects what it prints, and publishes window.kernelRun = {done, exitCode, lines}
// for the driver (tools/bench/kernel_probe.mjs, tests/browser/kernels.test.mjs).
(function () {
  'use strict';
  var q = new URLSearchParams(location.search);
  var prog = q.get('prog') || '';
  var run = { done: false, exitCode: null, lines: [], error: null, isolated: self.crossOriginIsolated === true };
  window.kernelRun = run;
  var log = document.getElementById('log');
  function out(t) { run.lines.push(String(t)); log.textContent += t + '\n'; }
  function finish(code, err) {
    if (run.done) return;
    run.done = true; run.exitCode = code;
    if (err) { run.error = String(err && err.message || err); out('error: ' + run.error); }
  }
  if (!/^[\w.-]+\/test_kernels-[\w-]+$/.test(prog)) { finish(2, 'bad prog ' + prog); return; }
  window.Module = {
    arguments: (q.get('args') || '').split(',').filter(Boolean),
    print: out,
    printErr: out,
    onExit: function (code) { finish(code); },
    onAbort: function (what) { finish(1, what); },
  };
  window.addEventListener('error', function (e) { finish(1, e.message); });
  var s = document.createElement('script');
  s.src = '/build/' + prog + '.js';
  s.onerror = function () { finish(2, 'cannot load ' + s.src); };
  document.body.appendChild(s);
})();
