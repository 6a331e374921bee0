/* qw_chat_template.c - the model's chat_template from tokenizer_config.json, chosen and fed as transformers.js
 * does (a string, or a list of {name, template}: "tool_use" when tools are given, else "default"), with the
 * built-in ChatML (qw_chat.c) only for folders whose config has no template. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cJSON.h"
#include "qw_chat.h"
#include "qw_jinja.h"

static const char *const SPECIAL[] = {"bos_token", "eos_token", "unk_token", "sep_token",
                                      "pad_token", "cls_token", "mask_token"};
#define N_SPECIAL (sizeof SPECIAL / sizeof SPECIAL[0])

struct qw_chat_template {
    qw_jinja *deflt, *tool_use; /* both NULL: ChatML; tool_use NULL: deflt serves tools too */
    char *special[N_SPECIAL];   /* the special tokens' text, NULL when unset */
    char name[128];
};

void qw_chat_template_free(qw_chat_template *t) {
    if (!t) return;
    qw_jinja_free(t->deflt);
    qw_jinja_free(t->tool_use);
    for (size_t i = 0; i < N_SPECIAL; i++) free(t->special[i]);
    free(t);
}

const char *qw_chat_template_source(const qw_chat_template *t) {
    return t && (t->deflt || t->tool_use) ? t->name : "chatml";
}

static qw_status parse_one(const cJSON *s, const char *name, qw_jinja **out, qw_error *err) {
    if (!cJSON_IsString(s)) return qw_error_set(err, QW_E_FORMAT, "%s: chat_template is not a string", name);
    return qw_jinja_parse(s->valuestring, strlen(s->valuestring), name, out, err);
}

qw_status qw_chat_template_load(const char *json, size_t len, const char *name, qw_chat_template **out, qw_error *err) {
    *out = NULL;
    if (!name) name = "tokenizer_config.json";
    qw_chat_template *t = calloc(1, sizeof *t);
    if (!t) return qw_error_set(err, QW_E_NOMEM, "%s: out of memory", name);
    snprintf(t->name, sizeof t->name, "%s", name);
    if (!json) {
        *out = t;
        return QW_OK;
    }
    cJSON *root = cJSON_ParseWithLength(json, len);
    qw_status st = QW_OK;
    if (!cJSON_IsObject(root)) {
        const char *at = cJSON_GetErrorPtr();
        long off = root || !at || at < json || at > json + len ? -1 : (long)(at - json);
        if (off >= 0)
            st = qw_error_set(err, QW_E_FORMAT, "%s: not valid JSON (near byte %ld)", name, off);
        else
            st = qw_error_set(err, QW_E_FORMAT, "%s: not a JSON object", name);
    }
    for (size_t i = 0; !st && i < N_SPECIAL; i++) { /* a string, or an AddedToken {"content": ...} */
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, SPECIAL[i]);
        if (cJSON_IsObject(v)) v = cJSON_GetObjectItemCaseSensitive(v, "content");
        if (cJSON_IsString(v) && v->valuestring[0] && !(t->special[i] = strdup(v->valuestring)))
            st = qw_error_set(err, QW_E_NOMEM, "%s: out of memory", name);
    }
    const cJSON *ct = st ? NULL : cJSON_GetObjectItemCaseSensitive(root, "chat_template");
    if (cJSON_IsString(ct))
        st = parse_one(ct, name, &t->deflt, err);
    else if (cJSON_IsArray(ct)) {
        for (const cJSON *e = ct->child; !st && e; e = e->next) {
            const cJSON *nm = cJSON_GetObjectItemCaseSensitive(e, "name");
            const cJSON *tp = cJSON_GetObjectItemCaseSensitive(e, "template");
            if (!cJSON_IsString(nm) || !cJSON_IsString(tp))
                st = qw_error_set(err, QW_E_FORMAT, "%s: chat_template list entries need a \"name\" and a \"template\"",
                                  name);
            else if (!strcmp(nm->valuestring, "default") && !t->deflt)
                st = parse_one(tp, name, &t->deflt, err);
            else if (!strcmp(nm->valuestring, "tool_use") && !t->tool_use)
                st = parse_one(tp, name, &t->tool_use, err);
        }
        if (!st && !t->deflt)
            st = qw_error_set(err, QW_E_UNSUPPORTED, "%s: chat_template lists no \"default\" template", name);
    } else if (ct && !cJSON_IsNull(ct))
        st = qw_error_set(err, QW_E_FORMAT, "%s: chat_template must be a string or a list", name);
    cJSON_Delete(root);
    if (st) {
        qw_chat_template_free(t);
        return st;
    }
    *out = t;
    return QW_OK;
}

static qw_status parse_array(const char *json, const char *what, cJSON **out, qw_error *err) {
    *out = cJSON_Parse(json);
    if (!*out) return qw_error_set(err, QW_E_FORMAT, "qw_chat: %s are not valid JSON", what);
    if (!cJSON_IsArray(*out)) {
        cJSON_Delete(*out);
        *out = NULL;
        return qw_error_set(err, QW_E_FORMAT, "qw_chat: %s must be a JSON array", what);
    }
    return QW_OK;
}

qw_status qw_chat_template_render(const qw_chat_template *t, const char *messages_json, const char *tools_json,
                                  int add_generation_prompt, char **out, size_t *out_len, qw_error *err) {
    *out = NULL;
    if (!t || !messages_json) return qw_error_set(err, QW_E_ARG, "qw_chat: NULL argument");
    const qw_jinja *tpl = tools_json && t->tool_use ? t->tool_use : t->deflt;
    if (!tpl) {
        if (tools_json) {
            cJSON *tools = cJSON_Parse(tools_json);
            int none = cJSON_IsNull(tools) || (cJSON_IsArray(tools) && !cJSON_GetArraySize(tools));
            cJSON_Delete(tools);
            if (!none)
                return qw_error_set(err, QW_E_UNSUPPORTED,
                                    "qw_chat: the model folder has no chat_template (%s) and "
                                    "the built-in ChatML renders no tools",
                                    t->name);
        }
        return qw_chat_render_json(messages_json, strlen(messages_json), add_generation_prompt, out, out_len, err);
    }
    cJSON *vars = cJSON_CreateObject(), *msgs = NULL, *tools = NULL;
    qw_status st = vars ? parse_array(messages_json, "messages", &msgs, err)
                        : qw_error_set(err, QW_E_NOMEM, "qw_chat: out of memory");
    if (!st && tools_json) {
        tools = cJSON_Parse(tools_json);
        if (!tools || !(cJSON_IsArray(tools) || cJSON_IsNull(tools)))
            st = qw_error_set(err, QW_E_FORMAT, "qw_chat: tools must be a JSON array");
    }
    if (!st) {
        cJSON_AddItemToObject(vars, "messages", msgs);
        msgs = NULL;
        cJSON_AddItemToObject(vars, "add_generation_prompt", cJSON_CreateBool(add_generation_prompt));
        cJSON_AddItemToObject(vars, "tools", tools ? tools : cJSON_CreateNull());
        tools = NULL;
        cJSON_AddItemToObject(vars, "documents", cJSON_CreateNull());
        for (size_t i = 0; i < N_SPECIAL; i++)
            if (t->special[i]) cJSON_AddItemToObject(vars, SPECIAL[i], cJSON_CreateString(t->special[i]));
        st = qw_jinja_render(tpl, vars, out, out_len, err);
    }
    cJSON_Delete(msgs);
    cJSON_Delete(tools);
    cJSON_Delete(vars);
    return st;
}
