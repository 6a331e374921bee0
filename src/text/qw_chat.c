/* qw_chat.c - Qwen2.5's chat_template (tokenizer_config.json), the branch without tools, written out:
 *
 *   system turn:  messages[0] is system ? <|im_start|>system\n{content}<|im_end|>\n
 *                                       : <|im_start|>system\n{QW_CHAT_DEFAULT_SYSTEM}<|im_end|>\n
 *   each message: user, system (not first), assistant (no tool_calls):
 *                   <|im_start|>{role}\n{content}<|im_end|>\n
 *                 tool: runs of tool messages share one user turn:
 *                   [<|im_start|>user]\n<tool_response>\n{content}\n</tool_response>[<|im_end|>\n]
 *                 any other role: nothing
 *   add_generation_prompt: <|im_start|>assistant\n
 * Contents are inserted verbatim (the template does no trimming). */
#include <stdlib.h>
#include <string.h>
#include "cJSON.h"
#include "qw_chat.h"

typedef struct sbuf {
    char *p;
    size_t n, cap;
    int oom;
} sbuf;

static void put(sbuf *b, const char *s) {
    size_t l = strlen(s);
    if (b->oom) return;
    if (b->n + l + 1 > b->cap) {
        size_t nc = b->cap ? b->cap : 256;
        while (nc < b->n + l + 1) nc *= 2;
        char *np = realloc(b->p, nc);
        if (!np) {
            b->oom = 1;
            return;
        }
        b->p = np;
        b->cap = nc;
    }
    memcpy(b->p + b->n, s, l + 1);
    b->n += l;
}

qw_status qw_chat_render_msgs(const qw_chat_msg *msgs, int n, int add_generation_prompt, char **out, size_t *out_len,
                              qw_error *err) {
    if (!out || (!msgs && n)) return qw_error_set(err, QW_E_ARG, "qw_chat: NULL argument");
    if (n < 1) return qw_error_set(err, QW_E_ARG, "qw_chat: no messages (the template reads messages[0])");
    for (int i = 0; i < n; i++)
        if (!msgs[i].role || !msgs[i].content)
            return qw_error_set(err, QW_E_ARG, "qw_chat: message %d has no role or content", i);
    sbuf b = {0};
    put(&b, "<|im_start|>system\n");
    put(&b, !strcmp(msgs[0].role, "system") ? msgs[0].content : QW_CHAT_DEFAULT_SYSTEM);
    put(&b, "<|im_end|>\n");
    for (int i = 0; i < n; i++) {
        const char *role = msgs[i].role;
        if (!strcmp(role, "user") || (!strcmp(role, "system") && i > 0) || !strcmp(role, "assistant")) {
            put(&b, "<|im_start|>");
            put(&b, role);
            put(&b, "\n");
            put(&b, msgs[i].content);
            put(&b, "<|im_end|>\n");
        } else if (!strcmp(role, "tool")) {
            if (i == 0 || strcmp(msgs[i - 1].role, "tool")) put(&b, "<|im_start|>user");
            put(&b, "\n<tool_response>\n");
            put(&b, msgs[i].content);
            put(&b, "\n</tool_response>");
            if (i == n - 1 || strcmp(msgs[i + 1].role, "tool")) put(&b, "<|im_end|>\n");
        }
    }
    if (add_generation_prompt) put(&b, "<|im_start|>assistant\n");
    if (b.oom) {
        free(b.p);
        return qw_error_set(err, QW_E_NOMEM, "qw_chat: out of memory rendering %d messages", n);
    }
    *out = b.p;
    if (out_len) *out_len = b.n;
    return QW_OK;
}

qw_status qw_chat_render_json(const char *json, size_t len, int add_generation_prompt, char **out, size_t *out_len,
                              qw_error *err) {
    if (!json || !out) return qw_error_set(err, QW_E_ARG, "qw_chat: NULL argument");
    cJSON *root = cJSON_ParseWithLength(json, len);
    if (!root) return qw_error_set(err, QW_E_FORMAT, "qw_chat: messages are not valid JSON");
    qw_status st = QW_OK;
    int n = cJSON_IsArray(root) ? cJSON_GetArraySize(root) : -1;
    qw_chat_msg *msgs = n > 0 ? calloc((size_t)n, sizeof *msgs) : NULL;
    if (n < 0)
        st = qw_error_set(err, QW_E_FORMAT, "qw_chat: messages must be a JSON array of {role, content}");
    else if (n == 0)
        st = qw_error_set(err, QW_E_ARG, "qw_chat: no messages (the template reads messages[0])");
    else if (!msgs)
        st = qw_error_set(err, QW_E_NOMEM, "qw_chat: out of memory");
    for (int i = 0; !st && i < n; i++) {
        const cJSON *m = cJSON_GetArrayItem(root, i);
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content");
        const cJSON *calls = cJSON_GetObjectItemCaseSensitive(m, "tool_calls");
        if (!cJSON_IsObject(m) || !cJSON_IsString(role))
            st = qw_error_set(err, QW_E_FORMAT, "qw_chat: message %d has no string \"role\"", i);
        else if (calls && !cJSON_IsNull(calls) && !(cJSON_IsArray(calls) && cJSON_GetArraySize(calls) == 0))
            st = qw_error_set(err, QW_E_UNSUPPORTED, "qw_chat: message %d has tool_calls, which qwasm does not render",
                              i);
        else if (!cJSON_IsString(content))
            st = qw_error_set(err, QW_E_UNSUPPORTED,
                              "qw_chat: message %d: content must be a string (multimodal parts are "
                              "not supported)",
                              i);
        else {
            msgs[i].role = role->valuestring;
            msgs[i].content = content->valuestring;
        }
    }
    if (!st) st = qw_chat_render_msgs(msgs, n, add_generation_prompt, out, out_len, err);
    free(msgs);
    cJSON_Delete(root);
    return st;
}
