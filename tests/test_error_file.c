/* test_error_file.c - qw_error.file names the model-folder-relative file a failure is about (the JS glue passes it
 * on as QwasmError.file instead of reading it out of the message): a missing external data file, a truncated one,
 * a bad config key, a missing .onnx; empty for errors about no file. The tiny q4f16 folder (tools/gen/gen_test_models.sh)
 * read into a memfs, with one file dropped, cut or replaced per case. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "qwasm.h"
#include "memfs.h"

static int failures, checks;
#define CHECK(cond, ...) \
    do { \
        checks++; \
        if (!(cond)) { \
            failures++; \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
            fprintf(stderr, __VA_ARGS__); \
            fputc('\n', stderr); \
        } \
    } while (0)

#define DATA "onnx/model_q4f16.onnx_data"
static const char *const FILES[] = {"config.json",           "generation_config.json", "tokenizer.json",
                                    "tokenizer_config.json", "onnx/model_q4f16.onnx",  DATA};
#define N_FILES (sizeof FILES / sizeof FILES[0])
static uint8_t *bytes[N_FILES];
static size_t sizes[N_FILES];

static int read_file(const char *path, uint8_t **out, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    *out = malloc(len > 0 ? (size_t)len : 1);
    *n = *out ? fread(*out, 1, (size_t)len, f) : 0;
    fclose(f);
    return *out && *n == (size_t)len;
}

/* Loads the folder with file `skip` left out, `cut` bytes off the data file, and `name` replaced by `json`. */
static qw_status load(const char *skip, size_t cut, const char *name, const char *json, qw_error *err) {
    memfs mf = {0};
    for (size_t i = 0; i < N_FILES; i++) {
        if (skip && !strcmp(FILES[i], skip)) continue;
        if (name && !strcmp(FILES[i], name))
            memfs_add(&mf, FILES[i], json, strlen(json));
        else
            memfs_add(&mf, FILES[i], bytes[i], sizes[i] - (strcmp(FILES[i], DATA) ? 0 : cut));
    }
    qw_fs fs = memfs_fs(&mf);
    qw_load_opts lo = {0};
    lo.threads = 1;
    qw_model *m = NULL;
    qw_status st = qw_model_load(&fs, &lo, &m, err);
    qw_model_free(m);
    return st;
}

int main(void) {
    const char *bd = getenv("QW_BUILD_DIR");
    char path[1200];
    for (size_t i = 0; i < N_FILES; i++) {
        snprintf(path, sizeof path, "%s/../models/tiny-q4f16-op18-ext/%s", bd ? bd : ".", FILES[i]);
        if (!read_file(path, &bytes[i], &sizes[i])) {
            printf("skip: %s not generated (tools/gen/gen_test_models.sh)\n", path);
            return 0;
        }
    }
    qw_error err = {0};
    qw_status st = load(NULL, 0, NULL, NULL, &err);
    CHECK(st == QW_OK, "the folder as it is loads: %s", err.msg);

    st = load(DATA, 0, NULL, NULL, &err);
    CHECK(st == QW_E_NOTFOUND && !strcmp(err.file, DATA), "missing data file: %s, file '%s' (%s)", qw_status_str(st),
          err.file, err.msg);
    st = load(NULL, 1000, NULL, NULL, &err);
    CHECK(st == QW_E_RANGE && !strcmp(err.file, DATA) && strstr(err.msg, "1000 bytes missing"),
          "truncated data file: %s, file '%s' (%s)", qw_status_str(st), err.file, err.msg);
    st = load("onnx/model_q4f16.onnx", 0, NULL, NULL, &err);
    CHECK(st == QW_E_NOTFOUND && !strcmp(err.file, "onnx/model_q4f16.onnx"), "missing .onnx: %s, file '%s' (%s)",
          qw_status_str(st), err.file, err.msg);
    st = load(NULL, 0, "config.json", "{\"hidden_size\": 1e300}", &err);
    CHECK(st == QW_E_FORMAT && !strcmp(err.file, "config.json") && strstr(err.msg, "hidden_size"),
          "bad config key: %s, file '%s' (%s)", qw_status_str(st), err.file, err.msg);
    st = load(NULL, 0, "config.json", "{\"hidden_size\": ", &err);
    CHECK(st == QW_E_FORMAT && !strcmp(err.file, "config.json"), "malformed config.json: file '%s' (%s)", err.file,
          err.msg);
    st = load(NULL, 0, "tokenizer_config.json", "[1]", &err);
    CHECK(st == QW_E_FORMAT && !strcmp(err.file, "tokenizer_config.json"), "tokenizer_config.json: file '%s' (%s)",
          err.file, err.msg);

    /* a node the graph refuses: the .onnx; a data file that is a directory: that file (tools/gen/gen_hostile.py) */
    static const struct {
        const char *dir, *file;
        qw_status st;
    } hostile[] = {{"reshape_wrap", "onnx/model.onnx", QW_E_FORMAT},
                   {"ext_dir", "onnx/model.onnx_data", QW_E_UNSUPPORTED}};
    for (size_t i = 0; i < sizeof hostile / sizeof hostile[0]; i++) {
        snprintf(path, sizeof path, "%s/../models/hostile/%s", bd ? bd : ".", hostile[i].dir);
        qw_fs dfs;
        qw_model *m = NULL;
        qw_load_opts lo = {0};
        lo.threads = 1;
        CHECK(qw_fs_open_dir(path, &dfs, &err) == QW_OK, "%s: %s", path, err.msg);
        st = qw_model_load(&dfs, &lo, &m, &err);
        CHECK(st == hostile[i].st && !strcmp(err.file, hostile[i].file), "%s: %s, file '%s' (%s)", hostile[i].dir,
              qw_status_str(st), err.file, err.msg);
        qw_model_free(m);
        qw_fs_close(&dfs);
    }

    /* qw_fs_read_all names the file; qw_error_set empties the name of an earlier failure */
    memfs mf = {0};
    qw_fs fs = memfs_fs(&mf);
    char *text = NULL;
    st = qw_fs_read_all(&fs, "tokenizer.json", 1 << 20, &text, NULL, &err);
    CHECK(st == QW_E_NOTFOUND && !strcmp(err.file, "tokenizer.json"), "read_all: file '%s' (%s)", err.file, err.msg);
    qw_error_set(&err, QW_E_ARG, "no file here");
    CHECK(err.file[0] == '\0', "qw_error_set leaves file '%s'", err.file);
    CHECK(qw_error_file(&err, "a.json", QW_E_ARG) == QW_E_ARG && !strcmp(err.file, "a.json"), "named: '%s'", err.file);
    CHECK(qw_error_file(&err, "b.json", QW_E_ARG) == QW_E_ARG && !strcmp(err.file, "a.json"), "innermost: '%s'",
          err.file);

    for (size_t i = 0; i < N_FILES; i++) free(bytes[i]);
    printf("%s (%d checks, %d failures)\n", failures ? "FAILED" : "ok", checks, failures);
    return failures ? 1 : 0;
}
