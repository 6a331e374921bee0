#!/usr/bin/env bash
# bench_kernels.sh - GB/s of weight bytes streamed by the decode kernels (q4 matvec at 1.5B shapes,
# the fp16 lm_head 151936x1536), one JSON line per configuration: native 1 and 2 threads, then Node
# wasm st / mt (and relaxed if build/wasm-relaxed exists). Keep it short: the machine is shared.
#   tools/bench/bench_kernels.sh [native_build_dir] [wasm_build_dir] [wasm_relaxed_build_dir]
set -u
root="$(cd "$(dirname "$0")/../.." && pwd)"
nat="${1:-$root/build/native}"
wasm="${2:-$root/build/wasm}"
rel="${3:-$root/build/wasm-relaxed}"
if [ -x "$nat/test_kernels" ]; then
  "$nat/test_kernels" bench 1
  "$nat/test_kernels" bench 2
else
  echo "bench_kernels: no $nat/test_kernels (build native first)" >&2
fi
for fl in st mt; do
  [ -f "$wasm/test_kernels-$fl.mjs" ] && node "$wasm/test_kernels-$fl.mjs" bench 2
done
for fl in st mt; do
  [ -f "$rel/test_kernels-$fl-relaxed.mjs" ] && node --experimental-wasm-relaxed-simd "$rel/test_kernels-$fl-relaxed.mjs" bench 2
done
exit 0
