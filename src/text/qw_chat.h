/* qw_chat.h - chat prompts: the model's own chat_template (tokenizer_config.json, rendered by qw_jinja) and,
 * for folders without one, ChatML exactly as Qwen2.5's chat_template renders it when no tools are given. */
#ifndef QW_CHAT_H
#define QW_CHAT_H

#include <stddef.h>
#include "qwasm.h"

/* The system prompt Qwen2.5's template inserts when the first message is not a system message. */
#define QW_CHAT_DEFAULT_SYSTEM "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."

typedef struct qw_chat_msg {
    const char *role;    /* "system", "user", "assistant", "tool"; other roles render nothing, as in the template */
    const char *content; /* UTF-8, NUL-terminated */
} qw_chat_msg;

/* Renders msgs[0..n) (n >= 1). *out is malloc'd, NUL-terminated. */
qw_status qw_chat_render_msgs(const qw_chat_msg *msgs, int n, int add_generation_prompt, char **out, size_t *out_len,
                              qw_error *err);

/* Same from a JSON array of {"role": ..., "content": "..."} (json[0..len), need not be NUL-terminated).
 * Content must be a string; assistant messages with tool_calls are QW_E_UNSUPPORTED. */
qw_status qw_chat_render_json(const char *json, size_t len, int add_generation_prompt, char **out, size_t *out_len,
                              qw_error *err);

/* ---- the model's template (qw_chat_template.c) ---------------------------------------------------- */

typedef struct qw_chat_template qw_chat_template;

/* From the text of tokenizer_config.json (name: the file's name, for errors). json == NULL (no such file) or a
 * config without chat_template gives the built-in ChatML. A config that is not a JSON object is QW_E_FORMAT;
 * a template outside qw_jinja's subset is QW_E_UNSUPPORTED naming the construct, line and column. */
qw_status qw_chat_template_load(const char *json, size_t len, const char *name, qw_chat_template **out, qw_error *err);
void qw_chat_template_free(qw_chat_template *t);
/* "tokenizer_config.json" (the model's template) or "chatml" (the built-in fallback). */
const char *qw_chat_template_source(const qw_chat_template *t);

/* Renders as transformers' apply_chat_template(messages, {tools, add_generation_prompt}) does: the variables are
 * messages, tools (null when tools_json is NULL), documents (null), add_generation_prompt and the special tokens
 * of tokenizer_config.json (bos_token, eos_token, unk_token, sep_token, pad_token, cls_token, mask_token) that
 * are set. messages_json: a JSON array of message objects; tools_json: a JSON array or NULL. */
qw_status qw_chat_template_render(const qw_chat_template *t, const char *messages_json, const char *tools_json,
                                  int add_generation_prompt, char **out, size_t *out_len, qw_error *err);

#endif /* QW_CHAT_H */
