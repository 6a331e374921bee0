#!/usr/bin/env bash
# fuzz.sh [seconds] [target...] - builds the libFuzzer targets (tests/fuzz_*.c) with clang and ASan/UBSan
# (build/fuzz) and runs each for the given seconds (default 20) on a copy of its seed corpus in tests/corpus/:
#   onnx              the ONNX reader (tests/corpus/onnx, plus the onnxruntime-genai fixture when present)
#   config            config.json / genai_config.json / generation_config.json (tests/corpus/config)
#   tokenizer         tokenizer.json (tests/corpus/tokenizer)
#   tokenizer_config  tokenizer_config.json on a small tokenizer (tests/corpus/tokenizer_config)
#   graph             a mutated tiny decoder: build + 3-token prefill + one decode step (tests/corpus/graph)
#   jinja             the chat template engine (tests/chat/*.jinja and the Qwen2.5 fixture's template)
# Targets default to all six; tools/test.sh runs 12 s each (about 75 s, plus the build).
#   fuzz.sh --long [target...]   600 s per target (or give the seconds)
# The corpora grow in build/fuzz/corpus_<target> and are kept between runs. Exits nonzero when a fuzzer finds a
# crash, a sanitizer report or a timeout; the input is left in build/fuzz/artifacts/.
set -euo pipefail
secs=20
if [ "${1:-}" = --long ]; then secs=600; shift
elif [[ "${1:-}" =~ ^[0-9]+$ ]]; then secs="$1"; shift; fi
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(onnx config tokenizer tokenizer_config graph jinja)
root="$(cd "$(dirname "$0")/../.." && pwd)"
build="$root/build/fuzz"
CC=clang cmake -S "$root" -B "$build" -DQWASM_FUZZ=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build "$build" -j"${QW_JOBS:-2}" --target "${targets[@]/#/fuzz_}"
mkdir -p "$build/artifacts"
# huge requests from mutated inputs must fail as qwasm reports them (NULL from malloc), not abort in ASan
export ASAN_OPTIONS="${ASAN_OPTIONS:-allocator_may_return_null=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
rc=0
for t in "${targets[@]}"; do
  case "$t" in
    onnx|graph) max_len=65536 ;;
    tokenizer|jinja) max_len=16384 ;;
    *) max_len=4096 ;;
  esac
  corpus="$build/corpus_$t"
  mkdir -p "$corpus"
  if [ "$t" = jinja ]; then
    cp -n "$root"/tests/chat/*.jinja "$corpus"/
    qcfg="${QW_FIXTURES:-$root/../shared/fixtures}/qwen2.5/tokenizer_config.json"
    [ -f "$qcfg" ] && node -e 'process.stdout.write(JSON.parse(require("fs").readFileSync(process.argv[1])).chat_template)' \
      "$qcfg" > "$corpus/qwen2.5.jinja" || true
  else
    cp -n "$root"/tests/corpus/"$t"/* "$corpus"/
  fi
  if [ "$t" = onnx ]; then
    fx="${QW_FIXTURES:-$root/../shared/fixtures}/tiny-llama-genai-fp16/model.onnx"
    [ -f "$fx" ] && cp -n "$fx" "$corpus/genai_tiny_llama.onnx" || true
  fi
  echo "== fuzz_$t: ${secs} s"
  "$build/fuzz_$t" -max_total_time="$secs" -max_len="$max_len" -rss_limit_mb=2048 -timeout=10 \
    -artifact_prefix="$build/artifacts/$t-" -print_final_stats=1 "$corpus" 2>"$build/fuzz_$t.log" || {
      rc=1; tail -60 "$build/fuzz_$t.log"; echo "fuzz_$t: FAILED (input in $build/artifacts/, log $build/fuzz_$t.log)"; }
  grep -E "^stat::number_of_executed_units|^stat::new_units_added" "$build/fuzz_$t.log" | tr '\n' ' ' || true
  echo
done
exit $rc
