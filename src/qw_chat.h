/* qw_chat.h - ChatML prompts exactly as Qwen2.5's chat_template renders them when no tools are given. */
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

#endif /* QW_CHAT_H */
