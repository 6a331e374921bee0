/* fuzz_onnx.c - libFuzzer target for the ONNX reader (built by tools/build/cmake/qw_fuzz.cmake, run by tools/test/fuzz.sh).
 * The input is "onnx/model.onnx"; every other name (external data) is a fixed 4 KiB file, except names
 * containing "missing". A model that loads is walked and its tensors are read. */
#include <stdint.h>
#include <string.h>
#include "qw_onnx.h"
#include "memfs.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    memfs mf = {0};
    qw_fs fs = memfs_fuzz_model(&mf, data, size);
    qw_onnx_model *m = NULL;
    qw_error err;
    if (qw_onnx_load(&fs, "onnx/model.onnx", &m, &err) != QW_OK) {
        if (m != NULL || !err.msg[0]) __builtin_trap(); /* a failure must say why and leave nothing behind */
        return 0;
    }
    uint8_t buf[64];
    (void)qw_onnx_opset_version(m, "");
    (void)qw_onnx_opset_version(m, "com.microsoft");
    for (int i = 0; i < m->n_inits; i++) {
        const qw_onnx_tensor *t = &m->inits[i];
        size_t len = t->nbytes < sizeof buf ? (size_t)t->nbytes : sizeof buf;
        if (qw_onnx_tensor_read(&fs, m, t, t->nbytes - len, buf, len, &err) != QW_OK) __builtin_trap();
        if (qw_onnx_init_find(m, t->name) == NULL) __builtin_trap();
    }
    for (int i = 0; i < m->n_nodes; i++) {
        const qw_onnx_node *n = &m->nodes[i];
        size_t sum = strlen(n->name) + strlen(n->op_type) + strlen(n->domain);
        for (int j = 0; j < n->n_inputs; j++) sum += strlen(n->inputs[j]);
        for (int j = 0; j < n->n_outputs; j++) sum += strlen(n->outputs[j]);
        for (int j = 0; j < n->n_attrs; j++) {
            const qw_onnx_attr *a = &n->attrs[j];
            if (qw_onnx_attr_find(n, a->name) == NULL) __builtin_trap();
            if (a->type == QW_ATTR_TENSOR || a->type == QW_ATTR_TENSORS)
                for (size_t k = 0; k < a->n; k++) {
                    size_t len = a->t[k].nbytes < sizeof buf ? (size_t)a->t[k].nbytes : sizeof buf;
                    if (qw_onnx_tensor_read(&fs, m, &a->t[k], 0, buf, len, &err) != QW_OK) __builtin_trap();
                }
            if (a->type == QW_ATTR_STRINGS)
                for (size_t k = 0; k < a->n; k++) sum += strlen(a->strings[k]);
            if (a->type == QW_ATTR_INTS && a->n) sum += (size_t)a->ints[a->n - 1];
            if (a->type == QW_ATTR_FLOATS && a->n) sum += (size_t)(a->floats[a->n - 1] != 0);
        }
        buf[0] = (uint8_t)sum;
    }
    for (int i = 0; i < m->n_inputs; i++)
        for (int d = 0; d < m->inputs[i].ndim; d++)
            if (m->inputs[i].dims[d].param) buf[0] ^= (uint8_t)strlen(m->inputs[i].dims[d].param);
    for (int i = 0; i < m->n_files; i++)
        if (m->files[i].bytes_needed > m->files[i].size) __builtin_trap();
    qw_onnx_free(m);
    return 0;
}
