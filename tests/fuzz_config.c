/* fuzz_config.c - libFuzzer target for the model folder's config files (tools/test/fuzz.sh): the input is read as
 * config.json, then as genai_config.json, then as generation_config.json (each alone in the folder). A failure must
 * say why; a success must leave numbers in their documented ranges. */
#include <stdint.h>
#include <string.h>
#include "qw_config.h"
#include "memfs.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const char *const names[] = {"config.json", "genai_config.json", "generation_config.json"};
    for (int i = 0; i < 3; i++) {
        memfs mf = {0};
        memfs_add(&mf, names[i], data, size);
        memfs_add(&mf, "onnx/model.onnx", "", 0); /* qw_config_load picks an .onnx that exists */
        qw_fs fs = memfs_fs(&mf);
        qw_model_config cfg;
        qw_error err = {0};
        if (qw_config_load(&fs, "onnx/model.onnx", &cfg, &err) != QW_OK) {
            if (!err.msg[0] || !strstr(err.msg, names[i])) __builtin_trap(); /* the error names the file */
            continue;
        }
        if (cfg.max_position_embeddings < 1 || cfg.max_position_embeddings > QW_CFG_MAX_CONTEXT) __builtin_trap();
        if (cfg.vocab_size < 0 || cfg.hidden_size < 0 || cfg.num_layers < 0 || cfg.head_dim < 0) __builtin_trap();
        if (cfg.n_eos < 0 || cfg.n_eos > QW_MAX_EOS) __builtin_trap();
        for (int k = 0; k < cfg.n_eos; k++)
            if (cfg.eos_ids[k] < 0) __builtin_trap();
        if (!(cfg.temperature >= 0) || !(cfg.top_p > 0 && cfg.top_p <= 1) || cfg.top_k < 0 ||
            !(cfg.repetition_penalty > 0))
            __builtin_trap();
        if (memchr(cfg.warnings, 0, sizeof cfg.warnings) == NULL) __builtin_trap();
    }
    return 0;
}
