#!/usr/bin/env bash
# fuzz.sh [seconds] - builds the ONNX reader's libFuzzer target with clang (build/fuzz) and runs it for the given
# seconds (default 60) on a copy of tests/corpus/onnx (plus the onnxruntime-genai fixture when present); then the
# chat template engine's (fuzz_jinja) for the same time, seeded with tests/chat/*.jinja and the Qwen2.5 template.
# Exits nonzero when a fuzzer finds a crash; the input is left in build/fuzz/artifacts/.
set -euo pipefail
secs="${1:-60}"
root="$(cd "$(dirname "$0")/.." && pwd)"
build="$root/build/fuzz"
CC=clang cmake -S "$root" -B "$build" -DQWASM_FUZZ=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build "$build" -j2 --target fuzz_onnx fuzz_jinja
corpus="$build/corpus_onnx"
mkdir -p "$corpus" "$build/artifacts"
cp -n "$root"/tests/corpus/onnx/* "$corpus"/
fx="${QW_FIXTURES:-$root/../shared/fixtures}/tiny-llama-genai-fp16/model.onnx"
[ -f "$fx" ] && cp -n "$fx" "$corpus/genai_tiny_llama.onnx" || true
"$build/fuzz_onnx" -max_total_time="$secs" -max_len=65536 -rss_limit_mb=2048 -timeout=10 \
  -artifact_prefix="$build/artifacts/" -print_final_stats=1 "$corpus"
jcorpus="$build/corpus_jinja"
mkdir -p "$jcorpus"
cp -n "$root"/tests/chat/*.jinja "$jcorpus"/
qcfg="${QW_FIXTURES:-$root/../shared/fixtures}/qwen2.5/tokenizer_config.json"
[ -f "$qcfg" ] && node -e 'process.stdout.write(JSON.parse(require("fs").readFileSync(process.argv[1])).chat_template)' \
  "$qcfg" > "$jcorpus/qwen2.5.jinja" || true
exec "$build/fuzz_jinja" -max_total_time="$secs" -max_len=16384 -rss_limit_mb=2048 -timeout=10 \
  -artifact_prefix="$build/artifacts/" -print_final_stats=1 "$jcorpus"
