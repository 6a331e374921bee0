/* fuzz_tokenizer_config.c - libFuzzer target for tokenizer_config.json (tools/test/fuzz.sh): applied to a small valid
 * tokenizer (tests/corpus/tokenizer/tiny.json, read once), then the eos/pad ids are used. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "qw_tokenizer.h"

#ifndef QW_FUZZ_SOURCE_DIR
#define QW_FUZZ_SOURCE_DIR "."
#endif

static char *base;
static size_t base_len;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    FILE *f = fopen(QW_FUZZ_SOURCE_DIR "/tests/corpus/tokenizer/tiny.json", "rb");
    if (!f) {
        fprintf(stderr, "fuzz_tokenizer_config: tests/corpus/tokenizer/tiny.json missing\n");
        abort();
    }
    base = malloc(1 << 20);
    base_len = fread(base, 1, 1 << 20, f);
    fclose(f);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    qw_tokenizer *t = NULL;
    qw_error err = {0};
    if (qw_tokenizer_load_json(base, base_len, "tokenizer.json", &t, &err) != QW_OK) __builtin_trap();
    if (qw_tokenizer_apply_config_json(t, (const char *)data, size, "tokenizer_config.json", &err) != QW_OK &&
        (!err.msg[0] || !strstr(err.msg, "tokenizer_config.json")))
        __builtin_trap();
    int32_t e = qw_tokenizer_eos_id(t), p = qw_tokenizer_pad_id(t);
    size_t len;
    if (e >= 0) qw_tokenizer_token_bytes(t, e, &len);
    if (p >= 0) qw_tokenizer_token_bytes(t, p, &len);
    if (e >= qw_tokenizer_n_tokens(t) || p >= qw_tokenizer_n_tokens(t)) __builtin_trap();
    qw_tokenizer_free(t);
    return 0;
}
