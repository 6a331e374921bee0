#!/usr/bin/env python3
"""Writes the seed corpora of the libFuzzer targets beyond the ONNX reader (tools/test/fuzz.sh) into tests/corpus/:
  config/             config.json / genai_config.json / generation_config.json shapes (fuzz_config)
  tokenizer/          tiny.json: a byte-level BPE tokenizer.json with the Qwen2 pipeline, 256 byte tokens, a few
                      merges and added tokens (fuzz_tokenizer, and the base of fuzz_tokenizer_config)
  tokenizer_config/   tokenizer_config.json shapes (fuzz_tokenizer_config)
  graph/              tiny decoders (fuzz_graph): one 1-layer Qwen2 from tools/gen/gen_model.py (q4f16, opset 14) and
                      the minimal graphs of tools/gen/gen_hostile.py
The outputs are committed; run this again only to change them. The Qwen2 pipeline (normalizer, pre-tokenizer
regex, decoder) is read from the npm tokenizer gen_model.py uses; the vocabulary is made here.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(REPO, 'tests', 'corpus')
sys.path.insert(0, os.path.join(REPO, 'tools', 'gen'))
import gen_hostile  # noqa: E402
from gen_model import TOKENIZER_JSON  # noqa: E402


def put(sub, name, text):
    d = os.path.join(OUT, sub)
    os.makedirs(d, exist_ok=True)
    mode = 'wb' if isinstance(text, bytes) else 'w'
    with open(os.path.join(d, name), mode) as f:
        f.write(text)


def byte_alphabet():
    """GPT-2's bytes_to_unicode: printable bytes stand for themselves, the others for U+0100 + n."""
    keep = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    out, n = {}, 0
    for b in range(256):
        if b in keep:
            out[b] = chr(b)
        else:
            out[b] = chr(256 + n)
            n += 1
    return out


def tokenizer():
    with open(TOKENIZER_JSON) as f:
        real = json.load(f)
    bm = byte_alphabet()
    vocab = {bm[b]: b for b in range(256)}
    merges = []
    for a, b in (('h', 'o'), ('l', 'a'), ('ho', 'la'), ('Ġ', 'p'), ('a', 'c'), ('ac', 'i'), ('e', 'n'), ('Ġp', 'aci')):
        vocab[a + b] = len(vocab)
        merges.append('%s %s' % (a, b))
    added = []
    for i, content in enumerate(('<|endoftext|>', '<|im_start|>', '<|im_end|>')):
        added.append({'id': 300 + i, 'content': content, 'single_word': False, 'lstrip': False, 'rstrip': False,
                      'normalized': False, 'special': True})
    tok = {'version': '1.0', 'truncation': None, 'padding': None, 'added_tokens': added,
           'normalizer': real.get('normalizer'), 'pre_tokenizer': real['pre_tokenizer'],
           'post_processor': real.get('post_processor'), 'decoder': real.get('decoder'),
           'model': {'type': 'BPE', 'dropout': None, 'unk_token': None, 'continuing_subword_prefix': '',
                     'end_of_word_suffix': '', 'fuse_unk': False, 'byte_fallback': False, 'ignore_merges': False,
                     'vocab': vocab, 'merges': merges}}
    put('tokenizer', 'tiny.json', json.dumps(tok, ensure_ascii=False))


def configs():
    put('config', 'hf.json', json.dumps({
        'model_type': 'qwen2', 'hidden_size': 896, 'intermediate_size': 4864, 'num_hidden_layers': 24,
        'num_attention_heads': 14, 'num_key_value_heads': 2, 'vocab_size': 151936, 'max_position_embeddings': 32768,
        'rope_theta': 1000000.0, 'rms_norm_eps': 1e-06, 'tie_word_embeddings': True, 'bos_token_id': 151643,
        'eos_token_id': 151645, 'transformers.js_config': {'dtype': 'q4f16', 'use_external_data_format': True}}))
    put('config', 'genai.json', json.dumps({'model': {
        'type': 'llama', 'vocab_size': 32000, 'context_length': 2048, 'bos_token_id': 1, 'eos_token_id': [2, 3],
        'decoder': {'hidden_size': 64, 'num_hidden_layers': 2, 'num_attention_heads': 4, 'num_key_value_heads': 2,
                    'head_size': 16, 'filename': 'model.onnx'}}}))
    put('config', 'generation.json', json.dumps({
        'bos_token_id': 151643, 'do_sample': True, 'eos_token_id': [151645, 151643], 'pad_token_id': 151643,
        'repetition_penalty': 1.05, 'temperature': 0.7, 'top_p': 0.8, 'top_k': 20}))
    put('config', 'bad_numbers.json', '{"max_position_embeddings": 2e9, "hidden_size": 1e300, '
        '"num_hidden_layers": 2.5, "temperature": -1, "top_p": 0, "eos_token_id": [1.5, -2]}')
    put('tokenizer_config', 'qwen.json', json.dumps({
        'add_prefix_space': False, 'bos_token': None, 'eos_token': '<|im_end|>', 'pad_token': '<|endoftext|>',
        'model_max_length': 131072, 'chat_template': "{% for m in messages %}{{ m['content'] }}{% endfor %}",
        'added_tokens_decoder': {'300': {'content': '<|endoftext|>', 'special': True}}}))
    put('tokenizer_config', 'objects.json', json.dumps({
        'eos_token': {'content': '<|endoftext|>', 'lstrip': False}, 'pad_token': {'content': 'hola'}}))


def graphs():
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.check_call([sys.executable, os.path.join(REPO, 'tools', 'gen', 'gen_model.py'), '--size', 'tiny',
                               '--layers', '1', '--hidden', '32', '--intermediate', '32', '--heads', '2',
                               '--kv-heads', '1', '--vocab', '32', '--max-pos', '64', '--dtype', 'q4f16',
                               '--opset', '14', '--single-file', '--name', 'seed', '--out-dir', tmp],
                              stdout=subprocess.DEVNULL)
        shutil.copyfile(os.path.join(tmp, 'seed', 'onnx', 'model_q4f16.onnx'),
                        os.path.join(OUT, 'graph', 'qwen2_1layer_q4f16.onnx'))
    N = gen_hostile.helper.make_node
    i64 = gen_hostile.i64
    cases = {
        'identity': ([N('Identity', ['x'], ['hostile_out'], name='hostile')], []),
        'reshape_wrap': ([N('Reshape', ['x', 'shape'], ['hostile_out'], name='hostile')],
                         [i64('shape', [7, 0x6db6db6db6db6db7])]),
        'slice_step': ([N('Slice', ['x', 's0', 's1', 's2', 's3'], ['hostile_out'], name='hostile')],
                       [i64('s0', [0]), i64('s1', [1]), i64('s2', [2]), i64('s3', [(1 << 63) - 1])]),
        'range_i64': ([N('Range', ['r0', 'r1', 'r2'], ['hostile_out'], name='hostile')],
                      [i64('r0', 0), i64('r1', 5), i64('r2', 2)]),
        'tile': ([N('Tile', ['x', 'rep'], ['hostile_out'], name='hostile')], [i64('rep', [1, 2, 3])]),
        'transpose': ([N('Transpose', ['x'], ['hostile_out'], perm=[2, 0, 1], name='hostile')], []),
    }
    for name, (nodes, inits) in cases.items():
        put('graph', 'min_%s.onnx' % name, gen_hostile.model(nodes, inits).SerializeToString())


def main():
    os.makedirs(os.path.join(OUT, 'graph'), exist_ok=True)
    tokenizer()
    configs()
    graphs()
    for sub in ('config', 'tokenizer', 'tokenizer_config', 'graph'):
        d = os.path.join(OUT, sub)
        print('make_fuzz_seeds: %s: %d files, %d bytes' % (
            sub, len(os.listdir(d)), sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))))
    return 0


if __name__ == '__main__':
    sys.exit(main())
