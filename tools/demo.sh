#!/usr/bin/env bash
# The main job: sets up, builds, generates the bundled default model (random weights in the layout of a
# real Qwen2.5 q4f16 export, with the real Qwen tokenizer) and serves the demo page.
#   bash tools/demo.sh [--port 8080]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash tools/build/bootstrap.sh
bash tools/build/build.sh native wasm wasm-relaxed
bash tools/gen/gen_test_models.sh demo >/dev/null
exec node tools/serve/serve.mjs "$@"
