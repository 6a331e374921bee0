/* test_chat.c - ChatML rendering as Qwen2.5's chat_template (fixtures' tokenizer_config.json) renders it.
 * The Node parity test compares against the template itself through @huggingface/jinja; these are the
 * expected strings written out, so the C build checks them without Node. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "qw_chat.h"
#include "qw_test.h"

#define SYS_DEFAULT \
    "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"

static void expect(const char *json, int gen, const char *want) {
    char *out = NULL;
    qw_error e;
    qw_status st = qw_chat_render_json(json, strlen(json), gen, &out, NULL, &e);
    CHECK(st == QW_OK, "render %s: %s", json, e.msg);
    if (st) return;
    CHECK(!strcmp(out, want), "render %s\n got: [%s]\nwant: [%s]", json, out, want);
    free(out);
}

static void expect_status(const char *json, qw_status want) {
    char *out = NULL;
    qw_error e = {0};
    qw_status st = qw_chat_render_json(json, strlen(json), 1, &out, NULL, &e);
    CHECK(st == want, "render %s: status %d, want %d (%s)", json, st, want, e.msg);
    free(out);
}

int main(void) {
    expect("[{\"role\":\"user\",\"content\":\"Hi\"}]", 1,
           SYS_DEFAULT "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
    expect("[{\"role\":\"user\",\"content\":\"Hi\"}]", 0, SYS_DEFAULT "<|im_start|>user\nHi<|im_end|>\n");
    expect("[{\"role\":\"system\",\"content\":\"Eres un asistente "
           "m\u00e9dico.\"},{\"role\":\"user\",\"content\":\"Dosis: 5 mg/kg/d\u00eda\"},"
           "{\"role\":\"assistant\",\"content\":\"De acuerdo.\"},{\"role\":\"user\",\"content\":\"\u00bfY en "
           "ni\u00f1os?\"}]",
           1,
           "<|im_start|>system\nEres un asistente m\u00e9dico.<|im_end|>\n<|im_start|>user\nDosis: 5 "
           "mg/kg/d\u00eda<|im_end|>\n"
           "<|im_start|>assistant\nDe acuerdo.<|im_end|>\n<|im_start|>user\n\u00bfY en "
           "ni\u00f1os?<|im_end|>\n<|im_start|>assistant\n");
    /* a later system message renders as its own turn; contents are verbatim (no trimming) */
    expect("[{\"role\":\"user\",\"content\":\"  a \\n\"},{\"role\":\"system\",\"content\":\"S2\"}]", 0,
           SYS_DEFAULT "<|im_start|>user\n  a \n<|im_end|>\n<|im_start|>system\nS2<|im_end|>\n");
    /* an empty system message still replaces the default */
    expect("[{\"role\":\"system\",\"content\":\"\"},{\"role\":\"user\",\"content\":\"x\"}]", 0,
           "<|im_start|>system\n<|im_end|>\n<|im_start|>user\nx<|im_end|>\n");
    /* tool responses: consecutive ones share one user turn; unknown roles render nothing */
    expect("[{\"role\":\"user\",\"content\":\"q\"},{\"role\":\"tool\",\"content\":\"r1\"},{\"role\":\"tool\","
           "\"content\":\"r2\"},"
           "{\"role\":\"critic\",\"content\":\"dropped\"}]",
           0,
           SYS_DEFAULT "<|im_start|>user\nq<|im_end|>\n<|im_start|>user\n<tool_response>\nr1\n</tool_response>\n"
                       "<tool_response>\nr2\n</tool_response><|im_end|>\n");
    expect("[{\"role\":\"assistant\",\"content\":\"a\",\"tool_calls\":[]}]", 0,
           SYS_DEFAULT "<|im_start|>assistant\na<|im_end|>\n");
    expect_status("[]", QW_E_ARG);
    expect_status("{\"role\":\"user\"}", QW_E_FORMAT);
    expect_status("[{\"role\":\"user\",\"content\":\"x\"", QW_E_FORMAT);
    expect_status("[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"x\"}]}]", QW_E_UNSUPPORTED);
    expect_status("[{\"role\":\"assistant\",\"content\":\"\",\"tool_calls\":[{\"function\":{\"name\":\"f\"}}]}]",
                  QW_E_UNSUPPORTED);
    expect_status("[{\"content\":\"x\"}]", QW_E_FORMAT);

    /* the fixture's template is the one written out in qw_chat.c */
    const char *fx = getenv("QW_FIXTURES");
    char path[2048];
    snprintf(path, sizeof path, "%s/qwen2.5/tokenizer_config.json", fx && *fx ? fx : "../shared/fixtures");
    FILE *f = fopen(path, "rb");
    CHECK(f != NULL, "cannot open %s (set QW_FIXTURES)", path);
    if (f) {
        static char buf[1 << 20];
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        buf[n] = 0;
        fclose(f);
        CHECK(strstr(buf, QW_CHAT_DEFAULT_SYSTEM) != NULL, "default system prompt in the fixture's template");
        CHECK(
            strstr(buf, "{{- '<|im_start|>' + message.role + '\\\\n' + message.content + '<|im_end|>' + '\\\\n' }}") !=
                NULL,
            "message line of the fixture's template");
        CHECK(strstr(buf, "{{- '<|im_start|>assistant\\\\n' }}") != NULL,
              "generation prompt of the fixture's template");
    }
    return qw_test_summary("test_chat");
}
