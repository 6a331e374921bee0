/* fuzz_jinja.c - libFuzzer target for the chat template engine (qw_jinja_parse.c, qw_jinja_run.c; run by
 * tools/test/fuzz.sh). The input is a template, rendered over a fixed conversation with tools and tool calls. Any
 * failure must say why and leave no output; the bounds of qw_jinja.h keep every input finite. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "qw_jinja.h"

static const char VARS[] =
    "{\"messages\": [{\"role\": \"system\", \"content\": \"S\"}, {\"role\": \"user\", \"content\": \"Hola "
    "<think>x</think>\"},"
    " {\"role\": \"assistant\", \"content\": \"\", \"tool_calls\": [{\"type\": \"function\", \"id\": \"call00001\","
    " \"function\": {\"name\": \"f\", \"arguments\": {\"a\": 1.5, \"b\": [true, null, \"s\"]}}}]},"
    " {\"role\": \"tool\", \"content\": \"{\\\"r\\\": 1}\", \"tool_call_id\": \"call00001\"}],"
    " \"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"f\", \"parameters\": {\"type\": \"object\"}}}],"
    " \"add_generation_prompt\": true, \"bos_token\": \"<s>\", \"eos_token\": \"</s>\", \"documents\": null}";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static cJSON *vars;
    if (!vars && !(vars = cJSON_Parse(VARS))) __builtin_trap();
    qw_jinja *t = NULL;
    qw_error err = {0};
    if (qw_jinja_parse((const char *)data, size, "tokenizer_config.json", &t, &err) != QW_OK) {
        if (t || !err.msg[0]) __builtin_trap();
        return 0;
    }
    char *out = NULL;
    size_t len = 0;
    err.msg[0] = 0;
    qw_status st = qw_jinja_render(t, vars, &out, &len, &err);
    if (st != QW_OK && (out || !err.msg[0])) __builtin_trap();
    if (st == QW_OK && (!out || strlen(out) > len)) __builtin_trap();
    free(out);
    qw_jinja_free(t);
    return 0;
}
