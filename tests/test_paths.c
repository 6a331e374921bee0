/* test_paths.c - the containment rule: every name that comes from a model file (genai_config.json's
 * decoder.filename, an external data location, a dtype) or from a file source stays inside the folder, and the
 * one .onnx pick of qw_onnx_candidates. Folders are made in a temporary directory from the generated tiny model
 * (tools/gen/gen_test_models.sh): build/models/tiny-fp32-op18-ext (onnx/model.onnx + onnx/model.onnx_data). */
#define _XOPEN_SOURCE 700
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "qwasm.h"
#include "qw_test.h"

static char src[900], tmp[256];

static uint8_t *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)len + 1);
    if (b && fread(b, 1, (size_t)len, f) != (size_t)len) {
        free(b);
        b = NULL;
    }
    fclose(f);
    *n = (size_t)len;
    return b;
}

static void put(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (f) {
        CHECK(fwrite(data, 1, n, f) == n);
        fclose(f);
    }
}

static void put_str(const char *path, const char *s) { put(path, s, strlen(s)); }

/* dst/<rel> = a copy of the generated model's <from> */
static void copy_in(const char *dst, const char *rel, const char *from) {
    char a[1200], b[1200];
    snprintf(a, sizeof a, "%s/%s", src, from);
    snprintf(b, sizeof b, "%s/%s", dst, rel);
    size_t n;
    uint8_t *d = slurp(a, &n);
    CHECK(d != NULL, "%s", a);
    if (d) put(b, d, n);
    free(d);
}

/* A fresh model folder tmp/<name> with onnx/model.onnx, its data and a config without transformers.js_config. */
static void make_folder(const char *name, char *dir, size_t cap) {
    snprintf(dir, cap, "%s/%s", tmp, name);
    char p[1200];
    mkdir(dir, 0755);
    snprintf(p, sizeof p, "%s/onnx", dir);
    mkdir(p, 0755);
    copy_in(dir, "onnx/model.onnx", "onnx/model.onnx");
    copy_in(dir, "onnx/model.onnx_data", "onnx/model.onnx_data");
    snprintf(p, sizeof p, "%s/config.json", dir);
    put_str(p, "{\"model_type\":\"qwen2\",\"hidden_size\":64,\"intermediate_size\":192,\"num_hidden_layers\":3,"
               "\"num_attention_heads\":4,\"num_key_value_heads\":2,\"vocab_size\":512,\"tie_word_embeddings\":true,"
               "\"max_position_embeddings\":4096}");
}

/* Loads dir with onnx_file / dtype; checks the status and that the message holds want1 and want2. */
static void expect_load(const char *dir, const char *onnx, const char *dtype, qw_status want, const char *want1,
                        const char *want2, const char *what) {
    qw_fs fs;
    qw_error err = {0};
    CHECK(qw_fs_open_dir(dir, &fs, &err) == QW_OK);
    qw_load_opts o = {0};
    o.onnx_file = onnx;
    o.dtype = dtype;
    o.threads = 1;
    o.max_context = 64;
    qw_model *m = NULL;
    qw_status st = qw_model_load(&fs, &o, &m, &err);
    CHECK(st == want && (want == QW_OK || ((!want1 || strstr(err.msg, want1)) && (!want2 || strstr(err.msg, want2)))),
          "%s: status %d (want %d): %s", what, st, want, st ? err.msg : "ok");
    if (st == QW_OK && want == QW_OK) {
        const char *info = qw_model_info_json(m);
        CHECK(!want1 || strstr(info, want1), "%s: %s", what, info);
    }
    qw_model_free(m);
    qw_fs_close(&fs);
}

static void test_names(void) {
    static const char *const good[] = {"config.json", "onnx/model_q4f16.onnx", "a/b/c.bin", "..a", "a..", ".hidden"};
    static const char *const bad[] = {"",    "/etc/passwd", "../x",  "a/../../x", "a/..", "..",
                                      ".",   "./a",         "a//b",  "a/",        "a\\b", "..\\..\\x",
                                      "C:x", "C:/x",        "c:\\x", "a\nb",      "a\x7f"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        CHECK(qw_fs_name_problem(good[i]) == NULL, "'%s' refused: %s", good[i], qw_fs_name_problem(good[i]));
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK(qw_fs_name_problem(bad[i]) != NULL, "'%s' taken", bad[i]);
    char longn[300];
    memset(longn, 'a', sizeof longn - 1);
    longn[sizeof longn - 1] = 0;
    CHECK(qw_fs_name_problem(longn) != NULL);
}

/* genai_config.json's decoder.filename and config.json's dtype: each escape is refused, naming file and key. */
static void test_config_names(void) {
    char dir[600], p[1200], out[700];
    make_folder("outside", out, sizeof out); /* a loadable model outside the folder under test */
    static const char *const escapes[] = {"../outside/onnx/model.onnx",
                                          "onnx/../../outside/onnx/model.onnx",
                                          "/tmp/model.onnx",
                                          "C:/model.onnx",
                                          "..\\\\outside\\\\onnx\\\\model.onnx",
                                          "onnx/./model.onnx"};
    for (size_t i = 0; i < sizeof escapes / sizeof escapes[0]; i++) {
        make_folder("genai", dir, sizeof dir);
        snprintf(p, sizeof p, "%s/genai_config.json", dir);
        char js[400];
        snprintf(js, sizeof js, "{\"model\":{\"type\":\"qwen2\",\"decoder\":{\"filename\":\"%s\"}}}", escapes[i]);
        put_str(p, js);
        expect_load(dir, NULL, NULL, QW_E_FORMAT, "genai_config.json", "model.decoder.filename", escapes[i]);
    }
    snprintf(p, sizeof p, "%s/genai_config.json", dir);
    put_str(p, "{\"model\":{\"type\":\"qwen2\",\"decoder\":{\"filename\":\"onnx/model.onnx\"}}}");
    expect_load(dir, NULL, NULL, QW_OK, "onnx/model.onnx", NULL, "genai filename inside");
    unlink(p);

    static const char *const dtypes[] = {"../../outside/onnx/model", "q4/../x", "Q4F16", "q4 f16", "q4f16\\\\x",
                                         "a_very_long_dtype_name"};
    for (size_t i = 0; i < sizeof dtypes / sizeof dtypes[0]; i++) {
        snprintf(p, sizeof p, "%s/config.json", dir);
        char js[400];
        snprintf(js, sizeof js, "{\"model_type\":\"qwen2\",\"transformers.js_config\":{\"dtype\":\"%s\"}}", dtypes[i]);
        put_str(p, js);
        expect_load(dir, NULL, NULL, QW_E_FORMAT, "config.json", "transformers.js_config.dtype", dtypes[i]);
        snprintf(js, sizeof js, "{\"model_type\":\"qwen2\",\"transformers.js_config\":{\"dtype\":{\"model\":\"%s\"}}}",
                 dtypes[i]);
        put_str(p, js);
        expect_load(dir, NULL, NULL, QW_E_FORMAT, "config.json", "transformers.js_config.dtype.model", dtypes[i]);
        expect_load(out, NULL, dtypes[i], QW_E_ARG, "dtype option", NULL, dtypes[i]);
    }
    expect_load(out, "../genai/onnx/model.onnx", NULL, QW_E_ARG, "onnx_file option", "..", "onnx_file ..");
    expect_load(out, "/etc/passwd", NULL, QW_E_ARG, "onnx_file option", "absolute", "onnx_file absolute");
}

/* External data locations: replaced in the graph's bytes by names of the same length (the protobuf stays valid). */
static void test_locations(void) {
    static const char *const locs[] = {"../model.onnx_d", "/tmp/model.onnx",  "C:model.onnx_da", "..\\model.onnx_",
                                       "a:model.onnx_da", "a\nmodel.onnx_da", "a\0model.onnx_da"};
    size_t n;
    char path[1200], dir[600];
    snprintf(path, sizeof path, "%s/onnx/model.onnx", src);
    uint8_t *g = slurp(path, &n);
    CHECK(g != NULL);
    if (!g) return;
    const char *orig = "model.onnx_data"; /* 15 bytes, as every replacement */
    for (size_t k = 0; k < sizeof locs / sizeof locs[0]; k++) {
        uint8_t *c = malloc(n);
        memcpy(c, g, n);
        int hits = 0;
        for (size_t i = 0; i + 15 <= n; i++)
            if (!memcmp(c + i, orig, 15)) {
                memcpy(c + i, locs[k], 15);
                hits++;
            }
        CHECK(hits > 0);
        make_folder("loc", dir, sizeof dir);
        snprintf(path, sizeof path, "%s/onnx/model.onnx", dir);
        put(path, c, n);
        free(c);
        char what[64];
        snprintf(what, sizeof what, "location %zu", k);
        expect_load(dir, NULL, NULL, QW_E_FORMAT, "onnx/model.onnx", "external data location", what);
    }
    free(g);
}

/* Symbolic links: resolved, and refused when they leave the folder (the data, the graph, config.json). */
static void test_symlinks(void) {
    char dir[600], out[600], p[1200], t[1200];
    make_folder("outside2", out, sizeof out);
    make_folder("links", dir, sizeof dir);
    snprintf(p, sizeof p, "%s/onnx/model.onnx_data", dir);
    snprintf(t, sizeof t, "%s/onnx/model.onnx_data", out);
    unlink(p);
    CHECK(symlink(t, p) == 0);
    expect_load(dir, NULL, NULL, QW_E_FORMAT, "onnx/model.onnx_data", "outside the model folder", "data symlink out");
    unlink(p);
    CHECK(symlink("../../outside2/onnx/model.onnx_data", p) == 0); /* relative, same escape */
    expect_load(dir, NULL, NULL, QW_E_FORMAT, "onnx/model.onnx_data", "outside the model folder", "relative symlink");
    unlink(p);
    copy_in(dir, "onnx/model.onnx_data", "onnx/model.onnx_data");
    snprintf(p, sizeof p, "%s/onnx/model.onnx", dir);
    snprintf(t, sizeof t, "%s/onnx/model.onnx", out);
    unlink(p);
    CHECK(symlink(t, p) == 0);
    expect_load(dir, NULL, NULL, QW_E_FORMAT, "onnx/model.onnx", "outside the model folder", "graph symlink out");
    unlink(p);
    copy_in(dir, "onnx/model.onnx", "onnx/model.onnx");
    snprintf(p, sizeof p, "%s/config.json", dir);
    snprintf(t, sizeof t, "%s/config.json", out);
    unlink(p);
    CHECK(symlink(t, p) == 0);
    expect_load(dir, NULL, NULL, QW_E_FORMAT, "config.json", "outside the model folder", "config symlink out");
    unlink(p);
    /* a link that stays inside is followed */
    snprintf(t, sizeof t, "%s/real.json", dir);
    put_str(t, "{\"model_type\":\"qwen2\",\"vocab_size\":512,\"max_position_embeddings\":4096}");
    CHECK(symlink("real.json", p) == 0);
    expect_load(dir, NULL, NULL, QW_OK, "onnx/model.onnx", NULL, "symlink inside");
}

/* The one pick: dtype from the option or the config, then the fallbacks; the error lists what was tried. */
static void test_pick(void) {
    char dir[600], p[1200];
    make_folder("pick", dir, sizeof dir);
    qw_fs fs;
    qw_error err = {0};
    CHECK(qw_fs_open_dir(dir, &fs, &err) == QW_OK);
    char names[8][QW_FS_NAME_MAX];
    const char *why[8];
    int n = 0;
    CHECK(qw_onnx_candidates(&fs, NULL, "q4f16", names, why, 8, &n, &err) == QW_OK);
    CHECK(n == 5 && !strcmp(names[0], "onnx/model_q4f16.onnx") && !strcmp(why[0], "dtype") &&
          !strcmp(names[1], "onnx/model.onnx") && !strcmp(names[2], "model.onnx"));
    CHECK(qw_onnx_candidates(&fs, NULL, "q8", names, why, 8, &n, &err) == QW_OK);
    CHECK(n == 6 && !strcmp(names[0], "onnx/model_quantized.onnx"));
    CHECK(qw_onnx_candidates(&fs, NULL, "fp32", names, why, 8, &n, &err) == QW_OK);
    CHECK(n == 5 && !strcmp(names[0], "onnx/model.onnx") && !strcmp(why[0], "dtype"));
    CHECK(qw_onnx_candidates(&fs, "onnx/x.onnx", "q4", names, why, 8, &n, &err) == QW_OK);
    CHECK(n == 1 && !strcmp(names[0], "onnx/x.onnx") && !strcmp(why[0], "option"));
    qw_fs_close(&fs);
    /* no transformers.js_config: the fallbacks find onnx/model.onnx; a dtype whose file is absent falls back */
    expect_load(dir, NULL, NULL, QW_OK, "\"onnx_file\":\"onnx/model.onnx\"", NULL, "no transformers.js_config");
    expect_load(dir, NULL, "q4", QW_OK, "\"onnx_file\":\"onnx/model.onnx\"", NULL, "dtype q4 absent");
    /* the graph moved to onnx/model_q4f16.onnx (what optimum writes), still no transformers.js_config */
    char a[1200], b[1200];
    snprintf(a, sizeof a, "%s/onnx/model.onnx", dir);
    snprintf(b, sizeof b, "%s/onnx/model_q4f16.onnx", dir);
    CHECK(rename(a, b) == 0);
    expect_load(dir, NULL, NULL, QW_OK, "\"onnx_file\":\"onnx/model_q4f16.onnx\"", NULL, "fallback q4f16");
    snprintf(a, sizeof a, "%s/onnx/model_fp16.onnx", dir);
    CHECK(rename(b, a) == 0);
    snprintf(p, sizeof p, "%s/config.json", dir);
    put_str(p, "{\"model_type\":\"qwen2\",\"transformers.js_config\":{\"dtype\":\"fp16\"}}");
    expect_load(dir, NULL, NULL, QW_OK, "\"onnx_file\":\"onnx/model_fp16.onnx\"", NULL, "config dtype fp16");
    CHECK(unlink(a) == 0);
    expect_load(dir, NULL, NULL, QW_E_NOTFOUND,
                "tried onnx/model_fp16.onnx (transformers.js_config.dtype), onnx/model.onnx",
                "onnx/model_q4.onnx (fallback)", "none found");
}

int main(void) {
    const char *bd = getenv("QW_BUILD_DIR");
    snprintf(src, sizeof src, "%s/../models/tiny-fp32-op18-ext", bd ? bd : "build/native");
    char probe[1000];
    snprintf(probe, sizeof probe, "%s/onnx/model.onnx_data", src);
    if (access(probe, R_OK) != 0) {
        printf("skip: %s not generated (tools/gen/gen_test_models.sh)\nok (0 failures)\n", src);
        return 0;
    }
    snprintf(tmp, sizeof tmp, "/tmp/qw_test_paths_XXXXXX");
    if (!mkdtemp(tmp)) {
        perror("mkdtemp");
        return 1;
    }
    test_names();
    test_config_names();
    test_locations();
    test_symlinks();
    test_pick();
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmp);
    return qw_test_summary("test_paths");
}
