#!/usr/bin/env bash
# Installs what qwasm's build, demo and tests need, on Debian/Ubuntu; elsewhere prints what to install.
# Idempotent and quiet when everything is present. Called by tools/demo.sh and tools/test.sh.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

debs=(cmake make gcc clang lld clang-16 lld-16 llvm-16 emscripten wasi-libc libclang-rt-14-dev-wasm32 libclang-rt-14-dev
      libcjson-dev python3-onnx python3-numpy unicode-data chromium chromium-driver firefox-esr
      webkit2gtk-driver xvfb
      dpkg-dev clang-format nodejs npm)

if command -v dpkg-query >/dev/null && command -v apt-get >/dev/null; then
  missing=()
  for p in "${debs[@]}"; do
    # nodejs from nodesource also provides npm: do not ask apt for Debian's npm then.
    if [ "$p" = npm ] && command -v npm >/dev/null; then continue; fi
    if [ "$p" = nodejs ] && command -v node >/dev/null; then continue; fi
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "bootstrap: installing ${missing[*]}"
    sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
else
  echo "bootstrap: not a Debian/Ubuntu system. Install: a C11 compiler, cmake >= 3.16, emscripten 3.1.x,"
  echo "  clang/lld 16 (relaxed SIMD builds), wasi-libc + clang's wasm32 builtins, cJSON, Python 3 with"
  echo "  onnx and numpy, the Unicode Character Database (UnicodeData.txt), Node.js >= 20 with npm,"
  echo "  Chromium, Firefox ESR, WebKitGTK's WebKitWebDriver and MiniBrowser, Xvfb. Then run this script again."
  for c in cmake cc emcc node npm chromium firefox-esr; do command -v "$c" >/dev/null || echo "  missing: $c"; done
  exit 1
fi

node_major="$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)"
if [ "$node_major" -lt 20 ]; then
  echo "bootstrap: Node.js >= 20 is required (found $(node --version 2>/dev/null || echo none))." >&2
  exit 1
fi

# JS development dependencies (reference engines, tokenizer, browser drivers). onnxruntime-node's
# install script downloads from a host we cannot reach; its CPU binary ships inside the package.
cd "$root"
if [ ! -f node_modules/.package-lock.json ] || [ package.json -nt node_modules/.package-lock.json ]; then
  echo "bootstrap: npm install"
  ONNXRUNTIME_NODE_INSTALL=skip npm install --no-audit --no-fund --loglevel=error >/dev/null
  touch node_modules/.package-lock.json
fi
