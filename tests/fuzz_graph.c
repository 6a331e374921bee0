/* fuzz_graph.c - libFuzzer target for the executor (tools/test/fuzz.sh): the input is onnx/model.onnx of a mutated tiny
 * decoder (seeds: tests/corpus/graph, from tools/gen/make_fuzz_seeds.py); every other name is a fixed 4 KiB data file.
 * A graph that builds runs a 3-token prefill and one decode step, under ASan/UBSan. Op outputs and scratch are
 * capped at 1 MiB (qw_graph_opts.max_tensor_bytes) so that a valid but huge shape is an error, not minutes of work.
 * A failure must say why; logits must be as wide as the decoder says. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "qw_decoder.h"
#include "qw_graph.h"
#include "qw_onnx.h"
#include "memfs.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    memfs mf = {0};
    qw_fs fs = memfs_fuzz_model(&mf, data, size);
    qw_onnx_model *m = NULL;
    qw_graph *g = NULL;
    qw_decoder *d = NULL;
    qw_error err = {0};
    qw_graph_opts go = {0};
    go.max_tensor_bytes = 1u << 20;
    float *logits = NULL;
    qw_status st = qw_onnx_load(&fs, "onnx/model.onnx", &m, &err);
    if (st == QW_OK) st = qw_graph_build(&fs, m, NULL, &go, &g, &err);
    if (st == QW_OK) st = qw_decoder_new(g, 16, &d, &err);
    if (st == QW_OK) {
        int V = qw_decoder_vocab(d);
        if (V <= 0 || V > (1 << 20)) {
            st = QW_E_UNSUPPORTED;
            err.msg[0] = 'x';
        } else if (!(logits = malloc((size_t)V * sizeof *logits)))
            st = QW_E_NOMEM, err.msg[0] = 'x';
        int32_t ids[3] = {1, 2, 3};
        for (int i = 0; i < 3; i++)
            if (V) ids[i] %= V;
        if (st == QW_OK) st = qw_decoder_forward(d, ids, 3, logits, NULL, NULL, &err);
        if (st == QW_OK) st = qw_decoder_forward(d, ids, 1, logits, NULL, NULL, &err);
    }
    if (st != QW_OK && !err.msg[0]) __builtin_trap(); /* a failure says why */
    free(logits);
    qw_decoder_free(d);
    qw_graph_free(g);
    qw_onnx_free(m);
    return 0;
}
