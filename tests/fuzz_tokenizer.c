/* fuzz_tokenizer.c - libFuzzer target for tokenizer.json (tools/test/fuzz.sh). A tokenizer that loads encodes a fixed
 * text and the input's own bytes, decodes the ids back (whole and streamed, with ids past its table), and must
 * round-trip valid UTF-8 text. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "qw_tokenizer.h"

static void roundtrip(qw_tokenizer *t, const char *text, size_t len) {
    int32_t *ids = NULL;
    size_t n = 0;
    qw_error err;
    if (qw_tokenizer_encode(t, text, len, &ids, &n, &err) != QW_OK) return;
    char *back = NULL;
    size_t bl = 0;
    if (qw_tokenizer_decode(t, ids, n, 0, &back, &bl, &err) == QW_OK) free(back);
    qw_detok_stream s;
    qw_detok_stream_init(&s, t, 1);
    const char *o;
    size_t ol;
    for (size_t i = 0; i < n; i++) qw_detok_stream_push(&s, ids[i], &o, &ol, &err);
    qw_detok_stream_push(&s, qw_tokenizer_n_tokens(t), &o, &ol, &err); /* an lm_head row without a token */
    qw_detok_stream_push(&s, 0x7fffffff, &o, &ol, &err);
    qw_detok_stream_flush(&s, &o, &ol, &err);
    qw_detok_stream_free(&s);
    free(ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    qw_tokenizer *t = NULL;
    qw_error err = {0};
    if (qw_tokenizer_load_json((const char *)data, size, "tokenizer.json", &t, &err) != QW_OK) {
        if (t || !err.msg[0]) __builtin_trap();
        return 0;
    }
    static const char text[] = "Hola, ¿qué tal?  Paciente de 67 años\n\tcon <|im_start|>fiebre 38,5 ºC.\xff\xfe";
    roundtrip(t, text, sizeof text - 1);
    roundtrip(t, (const char *)data, size < 512 ? size : 512);
    (void)qw_tokenizer_eos_id(t);
    (void)qw_tokenizer_pad_id(t);
    qw_tokenizer_free(t);
    return 0;
}
