#!/usr/bin/env bash
# Runs every qwasm test from nothing: set-up, builds, native unit tests (plain and ASan/UBSan), a short
# fuzz run, test models + onnxruntime references, Node tests (wasm in Node, tokenizer parity, runtime),
# browser tests (Chromium via Playwright, Firefox via WebDriver BiDi, WebKitGTK via WebDriver), the full-size
# model in Chromium.
#   bash tools/test.sh            everything
#   QW_TEST_SKIP="browser fuzz"   skips the named stages (for local iteration only; CI runs all)
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export QW_JOBS="${QW_JOBS:-2}"
skip=" ${QW_TEST_SKIP:-} "
failed=()

stage() { # name, command...
  local name="$1"; shift
  if [[ "$skip" == *" $name "* ]]; then echo "== $name: skipped (QW_TEST_SKIP)"; return; fi
  echo "== $name"
  local t0=$SECONDS
  if "$@"; then echo "== $name: ok ($((SECONDS - t0)) s)"; else echo "== $name: FAILED ($((SECONDS - t0)) s)"; failed+=("$name"); fi
}

ctest_in() { (cd "$1" && ctest --output-on-failure -j"$QW_JOBS" "${@:2}"); }

stage setup bash tools/build/bootstrap.sh || exit 1
stage build bash tools/build/build.sh native asan wasm wasm-relaxed wasi
[ ${#failed[@]} -eq 0 ] || { echo "build failed: ${failed[*]}"; exit 1; }
stage models bash tools/gen/gen_test_models.sh
stage wasi node --no-warnings tools/test/wasi-run.mjs --version
[ -x tools/test/fuzz.sh ] && stage fuzz bash tools/test/fuzz.sh 12 # six targets, 12 s each (tools/test/fuzz.sh --long: 600 s)
# (under ASan, test_decoder skips the calm 1.5B's reference that a previous run's big stage left: minutes there)
QW_TEST_MAX_MB=600 stage asan ctest_in build/asan
stage node node tools/test/run_node_tests.mjs
stage browser node tests/browser/run.mjs
# the full-size model (1.2 GB, Qwen2.5-1.5B shape) in Chromium: load, cached reload, 512 MB cap; the calm 1.5B's
# 32 greedy tokens natively and in Chromium = onnxruntime-node's; speculative decoding on the 1.5B copy model
stage big bash -c 'bash tools/gen/gen_test_models.sh --big >/dev/null && node tests/browser/big.test.mjs && node --test tests/node/on_demand.test.mjs && QW_SPEC_BIG=1 node --test tests/node/speculate.test.mjs tests/node/draft.test.mjs'
stage native ctest_in build/native

echo
if [ ${#failed[@]} -gt 0 ]; then
  echo "tools/test.sh: FAILED stages: ${failed[*]}"
  exit 1
fi
echo "tools/test.sh: all stages passed"
