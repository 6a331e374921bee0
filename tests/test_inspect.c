/* test_inspect.c - `qwasm inspect` ($QW_CLI) on the onnxruntime-genai fixture and on seed models. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include "cJSON.h"
#include "qw_test.h"

/* Runs a shell command; returns its stdout (malloc'd) and exit code. */
static char *run(const char *cmd, int *code) {
    FILE *p = popen(cmd, "r");
    if (!p) {
        *code = -1;
        return NULL;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    size_t k;
    while (buf && (k = fread(buf + n, 1, cap - n - 1, p)) > 0) {
        n += k;
        if (cap - n < 4096) {
            cap *= 2;
            buf = realloc(buf, cap);
        }
    }
    int st = pclose(p);
    *code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    if (buf) buf[n] = 0;
    return buf;
}

static cJSON *inspect_json(const char *cli, const char *model) {
    char cmd[4096];
    int code;
    snprintf(cmd, sizeof cmd, "'%s' inspect '%s' --json", cli, model);
    char *out = run(cmd, &code);
    CHECK(code == 0);
    cJSON *j = out ? cJSON_Parse(out) : NULL;
    if (!j) fprintf(stderr, "not JSON from %s:\n%s\n", cmd, out ? out : "(nothing)");
    free(out);
    return j;
}

int main(void) {
    const char *cli = getenv("QW_CLI"), *fx = getenv("QW_FIXTURES"), *src = getenv("QW_SOURCE_DIR");
    if (!cli || !fx || !src) {
        fprintf(stderr, "QW_CLI, QW_FIXTURES and QW_SOURCE_DIR must be set\n");
        return 1;
    }
    char path[2048];

    snprintf(path, sizeof path, "%s/tiny-llama-genai-fp16/model.onnx", fx);
    cJSON *j = inspect_json(cli, path);
    CHECK(j != NULL);
    if (j) {
        static const char *const keys[] = {"ir_version", "opsets",       "inputs",        "outputs",     "ops",
                                           "nodes",      "initializers", "external_data", "matmulnbits", "config"};
        for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
            CHECK(cJSON_HasObjectItem(j, keys[i]), "missing key %s", keys[i]);
        }
        CHECK(cJSON_GetObjectItem(j, "ir_version")->valuedouble == 7);
        const cJSON *ops = cJSON_GetObjectItem(j, "ops");
        CHECK(cJSON_GetObjectItem(ops, "com.microsoft.MultiHeadAttention") &&
              cJSON_GetObjectItem(ops, "com.microsoft.MultiHeadAttention")->valuedouble == 2);
        CHECK(cJSON_GetObjectItem(ops, "com.microsoft.RotaryEmbedding") != NULL);
        CHECK(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "opsets"), "com.microsoft") != NULL);
        const cJSON *ext = cJSON_GetObjectItem(j, "external_data");
        CHECK(cJSON_GetArraySize(ext) == 1);
        const cJSON *e0 = cJSON_GetArrayItem(ext, 0);
        CHECK(e0 && !strcmp(cJSON_GetObjectItem(e0, "file")->valuestring, "model.onnx.data"));
        CHECK(e0 && cJSON_IsTrue(cJSON_GetObjectItem(e0, "covered")));
        const cJSON *in0 = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "inputs"), 0);
        CHECK(in0 && !strcmp(cJSON_GetObjectItem(in0, "name")->valuestring, "input_ids"));
        CHECK(in0 && !strcmp(cJSON_GetArrayItem(cJSON_GetObjectItem(in0, "shape"), 0)->valuestring, "batch_size"));
        cJSON_Delete(j);
    }

    /* a folder: the .onnx comes from genai_config.json here */
    snprintf(path, sizeof path, "%s/tiny-llama-genai-fp16", fx);
    j = inspect_json(cli, path);
    CHECK(j && cJSON_GetObjectItem(j, "nodes") && cJSON_GetObjectItem(j, "nodes")->valuedouble == 104);
    cJSON_Delete(j);

    /* a folder with config.json's transformers.js_config dtype -> onnx/model_ext.onnx, two data files */
    snprintf(path, sizeof path, "%s/tests/data/onnx/ext", src);
    j = inspect_json(cli, path);
    CHECK(j && !strcmp(cJSON_GetObjectItem(j, "file")->valuestring, "onnx/model_ext.onnx"));
    CHECK(j && cJSON_GetArraySize(cJSON_GetObjectItem(j, "external_data")) == 2);
    CHECK(j && cJSON_IsObject(cJSON_GetObjectItem(j, "config")) &&
          cJSON_GetObjectItem(cJSON_GetObjectItem(j, "config"), "hidden_size")->valuedouble == 8);
    cJSON_Delete(j);

    /* a file one folder below its config.json */
    snprintf(path, sizeof path, "%s/tests/data/onnx/ext/onnx/model_ext.onnx", src);
    j = inspect_json(cli, path);
    CHECK(j && cJSON_IsObject(cJSON_GetObjectItem(j, "config")));
    cJSON_Delete(j);

    snprintf(path, sizeof path, "%s/tests/data/onnx/matmulnbits.onnx", src);
    j = inspect_json(cli, path);
    const cJSON *q = j ? cJSON_GetObjectItem(j, "matmulnbits") : NULL;
    CHECK(q && cJSON_GetObjectItem(q, "count")->valuedouble == 2);
    CHECK(q && cJSON_GetObjectItem(q, "with_zero_points")->valuedouble == 1);
    CHECK(q && cJSON_GetArraySize(cJSON_GetObjectItem(q, "shapes")) == 2);
    CHECK(q && !strcmp(cJSON_GetArrayItem(cJSON_GetObjectItem(q, "scale_dtypes"), 0)->valuestring, "float16"));
    CHECK(j && cJSON_IsNull(cJSON_GetObjectItem(j, "config")));
    cJSON_Delete(j);

    /* text output and errors */
    int code;
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "'%s' inspect '%s/tiny-llama-genai-fp16/model.onnx'", cli, fx);
    char *out = run(cmd, &code);
    CHECK(code == 0 && out && strstr(out, "com.microsoft.MultiHeadAttention") && strstr(out, "model.onnx.data"));
    free(out);
    snprintf(cmd, sizeof cmd, "'%s' inspect '%s/tests/data/onnx/ext/onnx/bad_ext_missing.onnx' 2>&1", cli, src);
    out = run(cmd, &code);
    CHECK(code == 1 && out && strstr(out, "nope.bin"));
    free(out);
    snprintf(cmd, sizeof cmd, "'%s' inspect '%s/tests/data/onnx/bad_ir_high.onnx' --json 2>/dev/null", cli, src);
    out = run(cmd, &code);
    CHECK(code == 1 && out && out[0] == 0);
    free(out);

    return qw_test_summary("test_inspect");
}
