#!/usr/bin/env bash
# Generates the random-weight Qwen2 test models the tests use into build/models/ and their
# onnxruntime-node greedy references (ref.json in each folder: fixed prompt ids, 32 steps).
# Idempotent: gen_model.py skips folders whose stamp matches, ort_ref.mjs --if-stale skips references
# that are current. Takes a few seconds from nothing.
#   bash tools/gen/gen_test_models.sh           the test set
#   bash tools/gen/gen_test_models.sh --big     also qwen2.5-0.5b (~475 MB, ~10 s) and qwen2.5-1.5b (~1.2 GB, ~20 s),
#                                           structure only (no references: random full-size weights are chaotic),
#                                           and qwen2.5-1.5b-calm (gen_model.py --calm: wide greedy margins) with
#                                           its reference for the chat prompt below (~1 min of onnxruntime)
#   bash tools/gen/gen_test_models.sh demo      also build/models/demo: the demo page's bundled model, in the
#                                           Qwen2.5-0.5B shape (q4f16, one file, opset 14, real tokenizer)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
PY=/usr/bin/python3
gen() { "$PY" tools/gen/gen_model.py "$@"; }
ref() { node tools/ref/ort_ref.mjs "$@" --steps 32 --threads 2 --if-stale; }

# tiny: vocab 512, hidden 64, 3 layers, 4 heads / 2 KV heads (raw-id unit tests). Logit std 2, not 4:
# fp32 graphs are checked to 1e-4 absolute, and the summation-order noise scales with the logits.
gen --size tiny --logit-std 2 --dtype fp32 --opset 14                  # tiny-fp32-op14       onnx/model.onnx
gen --size tiny --logit-std 2 --dtype fp32 --opset 18 --external       # tiny-fp32-op18-ext   onnx/model.onnx + _data
gen --size tiny --logit-std 2 --dtype q4 --opset 14                    # tiny-q4-op14         onnx/model_q4.onnx (fp32 scales)
gen --size tiny --logit-std 2 --dtype q4f16 --opset 18 --external      # tiny-q4f16-op18-ext  onnx/model_q4f16.onnx + _data
# the same with accuracy_level 4 (int8 activations in onnxruntime's MLAS and in qwasm): tools/ref/layer_diff.mjs's test.
# No greedy reference: from decode step 10 on, onnxruntime's own decode logits differ from its prefill of the
# same ids by 3e-2 (int8 codes amplify a 3e-7 difference), beyond test_decoder's fp16 tolerance
gen --size tiny --logit-std 2 --dtype q4f16 --opset 18 --external --accuracy-level 4 --name tiny-q4f16-acc4
# tiny-copy: repeats the text of tests/data/copy_text_ids.json (speculative decoding accepts its drafts); hidden 256
# keeps its lookup table's embeddings apart
gen --size tiny --hidden 256 --intermediate 256 --dtype q4f16 --opset 18 --external --copy-ids tests/data/copy_text_ids.json --name tiny-copy
# small: real vocab 151936 + real tokenizer, hidden 32, 2 layers (chat / tokenizer tests)
gen --size small --dtype q4f16 --opset 18 --external     # small-q4f16-op18-ext
# hostile: minimal decoders with one bad node each, bad external data (tests/test_hostile.c)
"$PY" tools/gen/gen_hostile.py

TINY_PROMPT=1,2,3,4,5,6,7,8,9,10,11
# "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\n"
CHAT_PROMPT=151644,8948,198,2610,525,264,10950,17847,13,151645,198,151644,872,198,9707,0,151645,198,151644,77091,198
for m in tiny-fp32-op14 tiny-fp32-op18-ext tiny-q4-op14 tiny-q4f16-op18-ext; do
  ref "build/models/$m" --prompt-ids "$TINY_PROMPT"
done
# the first 40 ids of its text: the model goes on copying it
ref build/models/tiny-copy --prompt-ids 28,70,315,394,75,265,442,276,415,145,153,75,153,145,366,463,113,475,81,281,122,253,218,463,208,239,446,101,425,153,75,153,187,157,311,78,208,239,228,139
ref build/models/small-q4f16-op18-ext --prompt-ids "$CHAT_PROMPT"

case "${1:-}" in
  --big)
    gen --size 0.5b        # qwen2.5-0.5b-q4f16-op14      single file, opset 14
    gen --size 1.5b        # qwen2.5-1.5b-q4f16-op18-ext  external data, opset 18
    gen --size 1.5b --calm # qwen2.5-1.5b-calm-q4f16-op18-ext
    ref build/models/qwen2.5-1.5b-calm-q4f16-op18-ext --prompt-ids "$CHAT_PROMPT" ;;
  demo)
    gen --size 0.5b --name demo ;;
  "") ;;
  *) echo "gen_test_models.sh: unknown argument '$1' (use --big or demo)" >&2; exit 2 ;;
esac
