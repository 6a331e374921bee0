#!/usr/bin/env bash
# Builds qwasm: tools/build/build.sh [native|asan|wasm|wasm-relaxed|wasi|all]...  (default: native wasm)
#   native       build/native: libqwasm_core.a, build/native/qwasm, unit tests
#   asan         build/asan: the same with AddressSanitizer + UBSan
#   wasm         build/wasm: qwasm-mt.{mjs,wasm} and qwasm-st.{mjs,wasm} (SIMD128)
#   wasm-relaxed build/wasm-relaxed: the same with relaxed SIMD (clang-16 under emcc)
#   wasi         build/wasi/qwasm.wasm: the CLI for WASI hosts
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
mkdir -p build
jobs="${QW_JOBS:-$(nproc 2>/dev/null || echo 2)}"
[ $# -gt 0 ] || set -- native wasm
[ "$1" = all ] && set -- native asan wasm wasm-relaxed wasi

cfg() { # dir, extra cmake args...
  local dir="$1"; shift
  if [ ! -f "$dir/CMakeCache.txt" ]; then "$@" >"$dir.configure.log" 2>&1 || { cat "$dir.configure.log"; return 1; }; fi
}

for what in "$@"; do
  case "$what" in
    native) cfg build/native cmake -S . -B build/native -DCMAKE_BUILD_TYPE=Release
            cmake --build build/native -j"$jobs" ;;
    asan)   cfg build/asan cmake -S . -B build/asan -DCMAKE_BUILD_TYPE=Debug -DQWASM_SANITIZE=ON
            cmake --build build/asan -j"$jobs" ;;
    wasm)   # shellcheck disable=SC1091
            source "$root/emsdk.env"; [ "$QW_EMCC_OK" = 1 ] || exit 1
            cfg build/wasm emcmake cmake -S . -B build/wasm -DCMAKE_BUILD_TYPE=Release
            cmake --build build/wasm -j"$jobs" ;;
    wasm-relaxed)
            # shellcheck disable=SC1091
            source "$root/emsdk.env"; [ "$QW_EMCC_OK" = 1 ] || exit 1
            export EM_LLVM_ADD_VERSION=16 EM_CLANG_ADD_VERSION=16
            cfg build/wasm-relaxed emcmake cmake -S . -B build/wasm-relaxed -DCMAKE_BUILD_TYPE=Release -DQWASM_RELAXED_SIMD=ON
            cmake --build build/wasm-relaxed -j"$jobs" ;;
    wasi)   cfg build/wasi cmake -S . -B build/wasi -DCMAKE_BUILD_TYPE=Release -DCMAKE_TOOLCHAIN_FILE=tools/build/cmake/wasi-toolchain.cmake
            cmake --build build/wasi -j"$jobs" ;;
    *) echo "build.sh: unknown target '$what'" >&2; exit 2 ;;
  esac
done
