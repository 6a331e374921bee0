/* qw_config.c - model folder configuration: config.json / genai_config.json / generation_config.json. */
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include "cJSON.h"
#include "qw_config.h"

#define QW_CONFIG_MAX_BYTES (4u << 20) /* config files are small; a bigger one is not a config */

static int json_int(const cJSON *o, const char *key, int def) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? (int)v->valuedouble : def;
}

static float json_float(const cJSON *o, const char *key, float def) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? (float)v->valuedouble : def;
}

static void json_str(const cJSON *o, const char *key, char *dst, size_t cap) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (cJSON_IsString(v) && v->valuestring) snprintf(dst, cap, "%s", v->valuestring);
}

/* eos_token_id may be a number or a list of numbers. */
static void json_eos(const cJSON *o, qw_model_config *cfg) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "eos_token_id");
    if (cJSON_IsNumber(v)) {
        cfg->eos_ids[0] = (int32_t)v->valuedouble;
        cfg->n_eos = 1;
    } else if (cJSON_IsArray(v)) {
        int n = 0;
        const cJSON *e;
        cJSON_ArrayForEach(e, v) if (cJSON_IsNumber(e) && n < QW_MAX_EOS) cfg->eos_ids[n++] = (int32_t)e->valuedouble;
        if (n) cfg->n_eos = n;
    }
}

/* Parses name when it exists: *out = NULL when missing, error when present but malformed. */
static qw_status read_json(const qw_fs *fs, const char *name, cJSON **out, qw_error *err) {
    *out = NULL;
    uint64_t size;
    if (fs->size(fs->ctx, name, &size) != QW_OK) return QW_OK;
    char *text = NULL;
    size_t len = 0;
    qw_status st = qw_fs_read_all(fs, name, QW_CONFIG_MAX_BYTES, &text, &len, err);
    if (st != QW_OK) return st;
    *out = cJSON_ParseWithLength(text, len);
    if (!*out) {
        const char *at = cJSON_GetErrorPtr();
        long off = at && at >= text && at <= text + len ? (long)(at - text) : -1;
        free(text);
        return qw_error_set(err, QW_E_FORMAT, "%s: malformed JSON near byte %ld", name, off);
    }
    free(text);
    return QW_OK;
}

static void apply_hf_config(const cJSON *c, qw_model_config *cfg) {
    json_str(c, "model_type", cfg->model_type, sizeof cfg->model_type);
    cfg->hidden_size = json_int(c, "hidden_size", cfg->hidden_size);
    cfg->intermediate_size = json_int(c, "intermediate_size", cfg->intermediate_size);
    cfg->num_layers = json_int(c, "num_hidden_layers", cfg->num_layers);
    cfg->num_heads = json_int(c, "num_attention_heads", cfg->num_heads);
    cfg->num_kv_heads = json_int(c, "num_key_value_heads", cfg->num_heads);
    cfg->vocab_size = json_int(c, "vocab_size", cfg->vocab_size);
    cfg->max_position_embeddings = json_int(c, "max_position_embeddings", cfg->max_position_embeddings);
    cfg->rope_theta = json_float(c, "rope_theta", cfg->rope_theta);
    cfg->rms_norm_eps = json_float(c, "rms_norm_eps", cfg->rms_norm_eps);
    const cJSON *tie = cJSON_GetObjectItemCaseSensitive(c, "tie_word_embeddings");
    if (cJSON_IsBool(tie)) cfg->tie_word_embeddings = cJSON_IsTrue(tie);
    cfg->bos_token_id = json_int(c, "bos_token_id", cfg->bos_token_id);
    json_eos(c, cfg);
    const cJSON *tjs = cJSON_GetObjectItemCaseSensitive(c, "transformers.js_config");
    if (cJSON_IsObject(tjs)) {
        const cJSON *dt = cJSON_GetObjectItemCaseSensitive(tjs, "dtype");
        if (cJSON_IsString(dt)) snprintf(cfg->dtype, sizeof cfg->dtype, "%s", dt->valuestring);
        /* dtype may also be a per-module map: {"model": "q4f16", ...} */
        if (cJSON_IsObject(dt)) json_str(dt, "model", cfg->dtype, sizeof cfg->dtype);
        const cJSON *ext = cJSON_GetObjectItemCaseSensitive(tjs, "use_external_data_format");
        cfg->use_external_data = cJSON_IsTrue(ext) || cJSON_IsObject(ext) || (cJSON_IsNumber(ext) && ext->valuedouble > 0);
    }
    cfg->has_config = 1;
}

static void apply_genai_config(const cJSON *g, qw_model_config *cfg) {
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(g, "model");
    if (!cJSON_IsObject(m)) return;
    json_str(m, "type", cfg->model_type, sizeof cfg->model_type);
    cfg->vocab_size = json_int(m, "vocab_size", cfg->vocab_size);
    cfg->max_position_embeddings = json_int(m, "context_length", cfg->max_position_embeddings);
    cfg->bos_token_id = json_int(m, "bos_token_id", cfg->bos_token_id);
    json_eos(m, cfg);
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(m, "decoder");
    if (cJSON_IsObject(d)) {
        cfg->hidden_size = json_int(d, "hidden_size", cfg->hidden_size);
        cfg->num_layers = json_int(d, "num_hidden_layers", cfg->num_layers);
        cfg->num_heads = json_int(d, "num_attention_heads", cfg->num_heads);
        cfg->num_kv_heads = json_int(d, "num_key_value_heads", cfg->num_heads);
        cfg->head_dim = json_int(d, "head_size", cfg->head_dim);
        char fn[256] = "";
        json_str(d, "filename", fn, sizeof fn);
        if (fn[0] && !cfg->onnx_file[0]) snprintf(cfg->onnx_file, sizeof cfg->onnx_file, "%s", fn);
    }
    cfg->has_config = 1;
}

static void apply_generation_config(const cJSON *g, qw_model_config *cfg) {
    json_eos(g, cfg);
    cfg->bos_token_id = json_int(g, "bos_token_id", cfg->bos_token_id);
    const cJSON *ds = cJSON_GetObjectItemCaseSensitive(g, "do_sample");
    cfg->do_sample = cJSON_IsTrue(ds);
    cfg->temperature = json_float(g, "temperature", cfg->temperature);
    cfg->top_p = json_float(g, "top_p", cfg->top_p);
    cfg->top_k = json_int(g, "top_k", cfg->top_k);
    cfg->repetition_penalty = json_float(g, "repetition_penalty", cfg->repetition_penalty);
    cfg->has_sampling = 1;
}

/* The .onnx Transformers.js would open: onnx/model_<dtype>.onnx (fp32 -> model.onnx), else the first of
 * onnx/model.onnx and model.onnx that exists. */
static void pick_onnx_file(const qw_fs *fs, qw_model_config *cfg) {
    if (cfg->onnx_file[0]) return;
    uint64_t size;
    char cand[256];
    if (cfg->dtype[0] && strcmp(cfg->dtype, "fp32") != 0 && strcmp(cfg->dtype, "auto") != 0) {
        snprintf(cand, sizeof cand, "onnx/model_%s.onnx", cfg->dtype);
        if (fs->size(fs->ctx, cand, &size) == QW_OK) { snprintf(cfg->onnx_file, sizeof cfg->onnx_file, "%s", cand); return; }
    }
    static const char *const fallbacks[] = {"onnx/model.onnx", "model.onnx", "onnx/model_q4f16.onnx",
                                            "onnx/model_q4.onnx", "onnx/model_fp16.onnx"};
    for (size_t i = 0; i < sizeof fallbacks / sizeof fallbacks[0]; i++)
        if (fs->size(fs->ctx, fallbacks[i], &size) == QW_OK) {
            snprintf(cfg->onnx_file, sizeof cfg->onnx_file, "%s", fallbacks[i]);
            return;
        }
    snprintf(cfg->onnx_file, sizeof cfg->onnx_file, "onnx/model.onnx"); /* the error will name it */
}

qw_status qw_config_load(const qw_fs *fs, const char *onnx_override, qw_model_config *cfg, qw_error *err) {
    memset(cfg, 0, sizeof *cfg);
    cfg->bos_token_id = -1;
    cfg->max_position_embeddings = 32768;
    cfg->rope_theta = 10000.0f;
    cfg->rms_norm_eps = 1e-6f;
    cfg->temperature = 1.0f;
    cfg->top_p = 1.0f;
    cfg->repetition_penalty = 1.0f;
    if (onnx_override && *onnx_override) snprintf(cfg->onnx_file, sizeof cfg->onnx_file, "%s", onnx_override);

    static const char *const files[] = {"config.json", "genai_config.json", "generation_config.json"};
    for (int i = 0; i < 3; i++) {
        cJSON *j = NULL;
        qw_status st = read_json(fs, files[i], &j, err);
        if (st != QW_OK) return st;
        if (!j) continue;
        if (i == 0) apply_hf_config(j, cfg);
        else if (i == 1) apply_genai_config(j, cfg);
        else apply_generation_config(j, cfg);
        cJSON_Delete(j);
    }
    if (!cfg->head_dim && cfg->num_heads) cfg->head_dim = cfg->hidden_size / cfg->num_heads;
    pick_onnx_file(fs, cfg);
    return QW_OK;
}
