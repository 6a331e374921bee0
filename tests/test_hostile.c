/* test_hostile.c - bad input refused with a clear error, never a crash (issue #16): shape products that overflow
 * (the folders of tools/gen/gen_hostile.py), out-of-range config numbers, generation_config.json values (warnings),
 * tokenizer files (fractional ids, deep nesting), sampling values, and ids with an lm_head row but no token
 * (the small model: 151936 rows, a tokenizer of 151669 ids). Run under ASan/UBSan too (build/asan). */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "qwasm.h"
#include "qw_config.h"
#include "qw_ops.h"
#include "qw_sampler.h"
#include "qw_tokenizer.h"
#include "qw_unicode.h"
#include <sys/wait.h>
#include "memfs.h"
#include "test_session.h"
#include "qw_test.h"

static char models[900];

/* ---- shape products (tools/gen/gen_hostile.py folders) ------------------------------------------------------ */

static void test_numel(void) {
    int64_t a[2] = {7, 0x6db6db6db6db6db7LL}, b[2] = {1LL << 40, 1LL << 40}, c[3] = {0, 1LL << 40, 1LL << 40};
    int64_t d[2] = {1 << 20, 1 << 20}, e[2] = {-1, 4};
    CHECK(qw_numel(2, a) == -1, "7 x 0x6db6db6db6db6db7 wraps to 1: refused");
    CHECK(qw_numel(2, b) == -1, "2^40 x 2^40 refused");
    CHECK(qw_numel(3, c) == -1, "a zero dim does not hide an overflowing sub-shape");
    CHECK(qw_numel(2, d) == (1LL << 40) || sizeof(size_t) < 8, "2^40 elements are fine on 64-bit");
    CHECK(qw_numel(2, e) == -1, "negative dim");
    CHECK(qw_mul_numel(1LL << 30, 1LL << 30) == -1 || QW_NUMEL_MAX >= (1LL << 60), "mul bounded");
}

typedef struct hostile_case {
    const char *dir;
    qw_status st;       /* QW_OK: loads and generates */
    const char *msg[3]; /* substrings the message must hold */
} hostile_case;

static void test_folders(void) {
    static const hostile_case cases[] = {
        {"reshape_wrap", QW_E_FORMAT, {"node 'hostile'", "Reshape", "(7, 7905747460161236407)"}},
        {"reshape_huge", QW_E_FORMAT, {"node 'hostile'", "Reshape", "more than"}},
        {"cos_huge", QW_E_FORMAT, {"node 'hostile'", "ConstantOfShape", "more than"}},
        {"tile_huge", QW_E_FORMAT, {"node 'hostile'", "Tile", "repeats[1]"}},
        {"expand_huge", QW_E_FORMAT, {"node 'hostile'", "Expand", "more than"}},
        {"range_inf", QW_E_FORMAT, {"node 'hostile'", "Range", "no finite length"}},
        {"range_wide", QW_E_FORMAT, {"node 'hostile'", "Range", "too long"}},
        {"transpose_perm", QW_E_FORMAT, {"node 'hostile'", "Transpose", "not a permutation"}},
        {"slice_step_max", QW_OK, {NULL}},
        {"ext_dir", QW_E_UNSUPPORTED, {"onnx/model.onnx_data", "not a regular file", "onnx/model.onnx"}},
        {"ext_fifo", QW_E_UNSUPPORTED, {"onnx/model.onnx_data", "not a regular file", NULL}},
    };
    char dir[1200];
    snprintf(dir, sizeof dir, "%s/hostile/reshape_wrap/onnx/model.onnx", models);
    FILE *f = fopen(dir, "rb");
    if (!f) {
        printf("skip: %s/hostile not generated (tools/gen/gen_test_models.sh)\n", models);
        return;
    }
    fclose(f);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const hostile_case *c = &cases[i];
        snprintf(dir, sizeof dir, "%s/hostile/%s", models, c->dir);
        qw_fs fs;
        qw_error err = {0};
        qw_model *m = NULL;
        qw_load_opts lo = {0};
        lo.threads = 1;
        CHECK(qw_fs_open_dir(dir, &fs, &err) == QW_OK, "%s: %s", c->dir, err.msg);
        qw_status st = qw_model_load(&fs, &lo, &m, &err);
        CHECK(st == c->st, "%s: status %s (%s), %s expected", c->dir, qw_status_str(st), err.msg, qw_status_str(c->st));
        for (int k = 0; k < 3 && c->msg[k]; k++)
            CHECK(strstr(err.msg, c->msg[k]) != NULL, "%s: '%s' lacks '%s'", c->dir, err.msg, c->msg[k]);
        if (st == QW_OK) {
            int32_t prompt[2] = {1, 2};
            qw_gen_params p;
            qw_gen_params_init(&p);
            p.temperature = 0;
            p.max_tokens = 3;
            qw_gen *g = NULL;
            CHECK(qw_gen_begin(m, prompt, 2, &p, &g, &err) == QW_OK, "%s: %s", c->dir, err.msg);
            qw_gen_event ev = {0};
            while (g && qw_gen_next(g, &ev, &err) == QW_OK && ev.kind != QW_GEN_DONE) {}
            CHECK(g && ev.kind == QW_GEN_DONE, "%s: generation did not finish: %s", c->dir, err.msg);
            qw_gen_free(g);
            /* sampling values outside their ranges: QW_E_ARG from the C API, naming the value */
            static const struct {
                const char *what;
                float t, tp, mp, rp;
                int k;
            } bad[] = {
                {"temperature", NAN, 1, 0, 1, 0},
                {"temperature", -1, 1, 0, 1, 0},
                {"temperature", INFINITY, 1, 0, 1, 0},
                {"top_p", 1, 0, 0, 1, 0},
                {"top_p", 1, 1.5f, 0, 1, 0},
                {"top_p", 1, NAN, 0, 1, 0},
                {"min_p", 1, 1, -0.1f, 1, 0},
                {"min_p", 1, 1, 2, 1, 0},
                {"repetition_penalty", 1, 1, 0, 0, 0},
                {"repetition_penalty", 1, 1, 0, -1, 0},
                {"repetition_penalty", 1, 1, 0, NAN, 0},
                {"top_k", 1, 1, 0, 1, -1},
            };
            for (size_t b = 0; b < sizeof bad / sizeof bad[0]; b++) {
                qw_gen_params_init(&p);
                p.temperature = bad[b].t;
                p.top_p = bad[b].tp;
                p.min_p = bad[b].mp;
                p.repetition_penalty = bad[b].rp;
                p.top_k = bad[b].k;
                g = NULL;
                st = qw_gen_begin(m, prompt, 2, &p, &g, &err);
                CHECK(st == QW_E_ARG && g == NULL && strstr(err.msg, bad[b].what), "bad %s [%zu]: %s (%s)", bad[b].what,
                      b, qw_status_str(st), err.msg);
                qw_gen_free(g);
            }
            qw_model_free(m);
            /* a context above qwasm's limit is refused by name, not an "out of memory" */
            lo.max_context = QW_CFG_MAX_CONTEXT + 1;
            st = qw_model_load(&fs, &lo, &m, &err);
            CHECK(st == QW_E_ARG && strstr(err.msg, "max_context"), "max_context: %s", err.msg);
            qw_model_free(m);
        } else {
            CHECK(m == NULL, "%s: a refused load leaves no model", c->dir);
        }
        qw_fs_close(&fs);
    }
}

/* ---- config numbers (memfs) ---------------------------------------------------------------------------- */

static qw_status config_of(const char *name, const char *json, qw_model_config *cfg, qw_error *err) {
    memfs mf = {0};
    memfs_add(&mf, name, json, strlen(json));
    memfs_add(&mf, "model.onnx", "", 0); /* qw_config_load picks an .onnx that exists */
    qw_fs fs = memfs_fs(&mf);
    return qw_config_load(&fs, "model.onnx", cfg, err);
}

static void test_config(void) {
    static const struct {
        const char *file, *json, *key;
        qw_status st;
    } cases[] = {
        {"config.json", "{\"max_position_embeddings\": 2e9}", "max_position_embeddings", QW_E_FORMAT},
        {"config.json", "{\"hidden_size\": 1e300}", "hidden_size", QW_E_FORMAT},
        {"config.json", "{\"num_hidden_layers\": 2.5}", "num_hidden_layers", QW_E_FORMAT},
        {"config.json", "{\"vocab_size\": -5}", "vocab_size", QW_E_FORMAT},
        {"config.json", "{\"num_attention_heads\": \"14\"}", "num_attention_heads", QW_E_FORMAT},
        {"config.json", "{\"rope_theta\": -1}", "rope_theta", QW_E_FORMAT},
        {"config.json", "{\"rms_norm_eps\": 1e400}", "rms_norm_eps", QW_E_FORMAT},
        {"config.json", "{\"bos_token_id\": 1.5}", "bos_token_id", QW_E_FORMAT},
        {"config.json", "{\"eos_token_id\": [1, -2]}", "eos_token_id", QW_E_FORMAT},
        {"config.json", "{\"eos_token_id\": 4294967296}", "eos_token_id", QW_E_FORMAT},
        {"genai_config.json", "{\"model\": {\"context_length\": -1}}", "context_length", QW_E_FORMAT},
        {"genai_config.json", "{\"model\": {\"decoder\": {\"head_size\": 0}}}", "head_size", QW_E_FORMAT},
    };
    qw_model_config cfg;
    qw_error err = {0};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        qw_status st = config_of(cases[i].file, cases[i].json, &cfg, &err);
        CHECK(st == cases[i].st && strstr(err.msg, cases[i].file) && strstr(err.msg, cases[i].key), "%s %s: %s (%s)",
              cases[i].file, cases[i].json, qw_status_str(st), err.msg);
    }
    /* valid values still load */
    CHECK(config_of("config.json",
                    "{\"max_position_embeddings\": 32768, \"hidden_size\": 896, \"eos_token_id\": "
                    "[151645, 151643], \"bos_token_id\": null, \"rms_norm_eps\": 1e-06}",
                    &cfg, &err) == QW_OK &&
              cfg.max_position_embeddings == 32768 && cfg.n_eos == 2 && cfg.eos_ids[1] == 151643,
          "valid config: %s", err.msg);

    /* generation_config.json: a warning naming the file and the key, and the default */
    qw_status st = config_of("generation_config.json",
                             "{\"do_sample\": true, \"temperature\": -3, \"top_p\": 0, "
                             "\"top_k\": 1e300, \"repetition_penalty\": 0, \"eos_token_id\": 2.5}",
                             &cfg, &err);
    CHECK(st == QW_OK, "generation_config: %s", err.msg);
    static const char *const keys[] = {"temperature", "top_p", "top_k", "repetition_penalty", "eos_token_id"};
    for (int k = 0; k < 5; k++) {
        char want[64];
        snprintf(want, sizeof want, "generation_config.json: %s", keys[k]);
        CHECK(strstr(cfg.warnings, want) != NULL, "no warning for %s: '%s'", keys[k], cfg.warnings);
    }
    CHECK(cfg.temperature == 1.0f && cfg.top_p == 1.0f && cfg.top_k == 0 && cfg.repetition_penalty == 1.0f &&
              cfg.n_eos == 0,
          "defaults kept (t %g p %g k %d rp %g eos %d)", cfg.temperature, cfg.top_p, cfg.top_k, cfg.repetition_penalty,
          cfg.n_eos);

    /* nesting far past any real file: named as such, not "malformed near byte 1000" */
    size_t depth = 100000;
    char *deep = malloc(2 * depth + 1);
    memset(deep, '[', depth);
    memset(deep + depth, ']', depth);
    deep[2 * depth] = 0;
    st = config_of("config.json", deep, &cfg, &err);
    CHECK(st == QW_E_FORMAT && strstr(err.msg, "config.json") && strstr(err.msg, "nested deeper"), "deep: %s", err.msg);
    qw_tokenizer *t = NULL;
    st = qw_tokenizer_load_json(deep, 2 * depth, "tokenizer.json", &t, &err);
    CHECK(st == QW_E_FORMAT && t == NULL && strstr(err.msg, "tokenizer.json") && strstr(err.msg, "nested deeper"),
          "deep tokenizer: %s", err.msg);
    free(deep);
    /* a '[' inside a string does not count */
    CHECK(config_of("config.json",
                    "{\"model_type\": \"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["
                    "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["
                    "[[[[[[[[[[\"}",
                    &cfg, &err) == QW_OK,
          "brackets in a string: %s", err.msg);
}

/* ---- tokenizer.json: a fractional id (the small model's real tokenizer with "Hello": 9707.5) ----------- */

static void test_tokenizer_ids(void) {
    qw_fs fs;
    if (!open_small_model(&fs)) return;
    char *j = NULL;
    size_t n = 0;
    qw_error err = {0};
    CHECK(qw_fs_read_all(&fs, "tokenizer.json", 64u << 20, &j, &n, &err) == QW_OK, "%s", err.msg);
    qw_fs_close(&fs);
    char *at = j ? strstr(j, "\"Hello\": 9707,") : NULL;
    CHECK(at != NULL, "tokenizer.json has no \"Hello\": 9707");
    if (!at) {
        free(j);
        return;
    }
    size_t off = (size_t)(at - j) + strlen("\"Hello\": 9707");
    char *k = malloc(n + 3);
    memcpy(k, j, off);
    memcpy(k + off, ".5", 2);
    memcpy(k + off + 2, j + off, n - off + 1);
    qw_tokenizer *t = NULL;
    qw_status st = qw_tokenizer_load_json(k, n + 2, "tokenizer.json", &t, &err);
    CHECK(st == QW_E_FORMAT && strstr(err.msg, "\"Hello\"") && strstr(err.msg, "no valid id") &&
              !strstr(err.msg, "twice"),
          "id 9707.5: %s (%s)", qw_status_str(st), err.msg);
    qw_tokenizer_free(t);
    free(k);
    free(j);
}

/* ---- the sampler ------------------------------------------------------------------------------------------ */

static void test_sampler_values(void) {
    qw_sampler_params p;
    qw_sampler *s = NULL;
    qw_error err = {0};
    qw_sampler_params_init(&p);
    p.temperature = NAN;
    CHECK(qw_sampler_new(&p, 8, &s, &err) == QW_E_ARG && s == NULL && strstr(err.msg, "temperature"), "nan: %s",
          err.msg);
    /* a temperature so small the logits overflow: the argmax (its limit), not an arbitrary id */
    qw_sampler_params_init(&p);
    p.temperature = 1e-40f;
    p.seed = 3;
    CHECK(qw_sampler_new(&p, 8, &s, &err) == QW_OK, "1e-40: %s", err.msg);
    for (int r = 0; r < 20 && s; r++) {
        float x[8] = {0.5f, -1, 3.25f, 3.0f, 2, -7, 1, 0};
        int32_t id = -1;
        CHECK(qw_sampler_sample(s, x, &id, &err) == QW_OK && id == 2, "1e-40 picked %d, the argmax is 2", id);
    }
    qw_sampler_free(s);
    /* a -inf bias bans an id; NaN and +inf biases are refused */
    int32_t bid = 2;
    float bv = -INFINITY;
    qw_sampler_params_init(&p);
    p.temperature = 0;
    p.bias_ids = &bid;
    p.bias_values = &bv;
    p.n_bias = 1;
    CHECK(qw_sampler_new(&p, 8, &s, &err) == QW_OK, "-inf bias: %s", err.msg);
    float x[8] = {0.5f, -1, 3.25f, 3.0f, 2, -7, 1, 0};
    int32_t id = -1;
    CHECK(s && qw_sampler_sample(s, x, &id, &err) == QW_OK && id == 3, "banned 2, got %d", id);
    qw_sampler_free(s);
    bv = NAN;
    s = NULL;
    CHECK(qw_sampler_new(&p, 8, &s, &err) == QW_E_ARG && !s, "nan bias: %s", err.msg);
}

/* ---- ids with an lm_head row but no token (the small model) ------------------------------------------------ */

static void test_vocab_past_tokenizer(void) {
    qw_fs fs;
    if (!open_small_model(&fs)) return;
    qw_model *m = NULL;
    qw_error err = {0};
    qw_load_opts lo = {0};
    lo.max_context = 64;
    CHECK(qw_model_load(&fs, &lo, &m, &err) == QW_OK, "small: %s", err.msg);
    if (!m) {
        qw_fs_close(&fs);
        return;
    }
    int vocab = 0;
    {
        const char *info = qw_model_info_json(m);
        vocab = (int)json_num(info, "vocab_size");
    }
    /* the tokenizer's ids: the first id past them has no token */
    int32_t last = vocab - 1;
    char *text = NULL;
    int32_t ids[3] = {9707, last, 11};
    CHECK(qw_detokenize(m, ids, 3, &text, &err) == QW_OK && text && !strcmp(text, "Hello,"),
          "detokenize 9707,%d,11: '%s' (%s)", last, text ? text : "", err.msg);
    free(text);
    /* generation with every id past the tokenizer raised by a bias of +100: none is sampled, and the stream
     * decodes nothing for them (ASan: no read past the token table) */
    int n_extra = 0;
    int32_t bias_ids[512];
    float bias_vals[512];
    for (int32_t i = vocab - 1; i >= 0 && n_extra < 512; i--) {
        char *tx = NULL;
        int32_t one = i;
        if (qw_detokenize(m, &one, 1, &tx, &err) == QW_OK && tx && !tx[0]) {
            bias_ids[n_extra] = i;
            bias_vals[n_extra++] = 100;
        }
        free(tx);
        if (i < vocab - 600) break;
    }
    CHECK(n_extra >= 200, "the small model has %d ids without a token (Qwen2.5: 151936 - 151669 = 267 expected)",
          n_extra);
    qw_gen_params p;
    qw_gen_params_init(&p);
    p.temperature = 1.0f;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.max_tokens = 8;
    p.ignore_eos = 1;
    p.bias_ids = bias_ids;
    p.bias_values = bias_vals;
    p.n_bias = n_extra;
    int32_t prompt[3] = {9707, 11, 1879};
    for (int greedy = 0; greedy < 2; greedy++) {
        p.temperature = greedy ? 0 : 1.0f;
        qw_gen *g = NULL;
        CHECK(qw_gen_begin(m, prompt, 3, &p, &g, &err) == QW_OK, "begin: %s", err.msg);
        qw_gen_event ev = {0};
        while (g && qw_gen_next(g, &ev, &err) == QW_OK && ev.kind != QW_GEN_DONE)
            if (ev.kind == QW_GEN_TOKEN)
                for (int e = 0; e < n_extra; e++)
                    CHECK(ev.id != bias_ids[e], "%s sampled id %d, which has no token", greedy ? "greedy" : "sampling",
                          ev.id);
        CHECK(ev.kind == QW_GEN_DONE, "generation: %s", err.msg);
        qw_gen_free(g);
    }
    qw_model_free(m);
    qw_fs_close(&fs);

    /* the detokenizer's stream directly */
    qw_fs tfs;
    if (!open_small_model(&tfs)) return;
    qw_tokenizer *t = NULL;
    CHECK(qw_tokenizer_load_fs(&tfs, "tokenizer.json", &t, &err) == QW_OK, "%s", err.msg);
    if (t) {
        qw_detok_stream ds;
        qw_detok_stream_init(&ds, t, 1);
        const char *out = NULL;
        size_t ol = 99;
        CHECK(qw_detok_stream_push(&ds, qw_tokenizer_n_tokens(t) + 5, &out, &ol, &err) == QW_OK && ol == 0,
              "stream push past the tokenizer: %zu bytes (%s)", ol, err.msg);
        CHECK(qw_detok_stream_push(&ds, 1 << 30, &out, &ol, &err) == QW_OK && ol == 0, "stream push 2^30: %zu", ol);
        qw_detok_stream_free(&ds);
        qw_tokenizer_free(t);
    }
    qw_fs_close(&tfs);
}

/* ---- the CLI ($QW_CLI): tokenize's error path frees its fs (LeakSanitizer in build/asan), inspect --json is UTF-8 */

static void test_cli(void) {
    const char *cli = getenv("QW_CLI");
    char cmd[2600], dir[1200];
    snprintf(dir, sizeof dir, "%s/hostile/tok_bad", models);
    FILE *f;
    snprintf(cmd, sizeof cmd, "%s/tokenizer.json", dir);
    if (!cli || !(f = fopen(cmd, "rb"))) {
        printf("skip: no QW_CLI or %s not generated\n", dir);
        return;
    }
    fclose(f);
    /* exit 1 is the CLI's own failure; a leak report would exit 23 */
    snprintf(cmd, sizeof cmd, "LSAN_OPTIONS=exitcode=23 '%s' tokenize '%s' hola 2>/dev/null", cli, dir);
    int rc = system(cmd);
    CHECK(WIFEXITED(rc) && WEXITSTATUS(rc) == 1, "tokenize on a bad tokenizer.json: exit %d", WEXITSTATUS(rc));
    snprintf(cmd, sizeof cmd, "'%s' inspect '%s/hostile/utf8_name/onnx/model.onnx' --json", cli, models);
    FILE *p = popen(cmd, "r");
    static char out[1 << 16];
    size_t n = p ? fread(out, 1, sizeof out - 1, p) : 0;
    if (p) pclose(p);
    out[n] = 0;
    size_t bad = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        i += qw_utf8_decode((const unsigned char *)out + i, n - i, &cp, NULL);
        bad += cp == QW_UC_BAD;
    }
    CHECK(n > 0 && bad == 0 && strstr(out, "hostile-\xEF\xBF\xBD"), "inspect --json: %zu bytes, %zu ill-formed", n,
          bad);
}

/* generation_config.json's bad values reach the model as warnings (qw_model_warnings, info "warnings") */
static void test_model_warnings(void) {
    char dir[1200];
    snprintf(dir, sizeof dir, "%s/hostile/genconfig_bad", models);
    qw_fs fs;
    qw_error err = {0};
    if (qw_fs_open_dir(dir, &fs, &err) != QW_OK) {
        printf("skip: %s not generated\n", dir);
        return;
    }
    qw_model *m = NULL;
    qw_load_opts lo = {0};
    lo.threads = 1;
    CHECK(qw_model_load(&fs, &lo, &m, &err) == QW_OK, "%s: %s", dir, err.msg);
    if (m) {
        const char *w = qw_model_warnings(m);
        CHECK(strstr(w, "generation_config.json: temperature is a string") && strstr(w, "top_p is 1.5") &&
                  strstr(w, "top_k is -4") && strstr(w, "repetition_penalty is 0"),
              "warnings: '%s'", w);
        CHECK(strstr(qw_model_info_json(m), "\"warnings\":[\"generation_config.json: temperature"), "info: %s",
              qw_model_info_json(m));
        qw_gen_params p;
        qw_gen_params_init(&p);
        qw_gen_params_from_model(m, &p);
        CHECK(p.temperature == 1.0f && p.top_p == 1.0f && p.top_k == 0 && p.repetition_penalty == 1.0f,
              "defaults: t %g p %g k %d rp %g", p.temperature, p.top_p, p.top_k, p.repetition_penalty);
        qw_model_free(m);
    }
    qw_fs_close(&fs);
}

/* ---- inputs the fuzzers found (tests/corpus/graph/regress_*.onnx): refused with a message, no crash ------- */

static void test_fuzz_regressions(void) {
    static const struct {
        const char *file, *msg;
    } cases[] = {
        {"regress_cast_no_input.onnx", "required"}, /* a Cast with no input read stack garbage as its input */
    };
    const char *src = getenv("QW_SOURCE_DIR");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char path[1200];
        snprintf(path, sizeof path, "%s/tests/corpus/graph/%s", src ? src : ".", cases[i].file);
        FILE *f = fopen(path, "rb");
        if (!f) {
            CHECK(0, "%s missing", path);
            continue;
        }
        static uint8_t buf[1 << 16];
        size_t n = fread(buf, 1, sizeof buf, f);
        fclose(f);
        memfs mf = {0};
        memfs_add(&mf, "onnx/model.onnx", buf, n);
        qw_fs fs = memfs_fs(&mf);
        qw_onnx_model *m = NULL;
        qw_graph *g = NULL;
        qw_error err = {0};
        qw_graph_opts go = {0};
        go.max_tensor_bytes = 1u << 20;
        qw_status st = qw_onnx_load(&fs, "onnx/model.onnx", &m, &err);
        if (st == QW_OK) st = qw_graph_build(&fs, m, NULL, &go, &g, &err);
        CHECK(st == QW_E_FORMAT && strstr(err.msg, cases[i].msg), "%s: %s (%s)", cases[i].file, qw_status_str(st),
              err.msg);
        qw_graph_free(g);
        qw_onnx_free(m);
    }
}

int main(void) {
    const char *bd = getenv("QW_BUILD_DIR");
    snprintf(models, sizeof models, "%s/../models", bd ? bd : ".");
    test_numel();
    test_folders();
    test_config();
    test_tokenizer_ids();
    test_sampler_values();
    test_vocab_past_tokenizer();
    test_cli();
    test_model_warnings();
    test_fuzz_regressions();
    return qw_test_summary("test_hostile");
}
