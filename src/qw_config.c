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
    qw_status sst = fs->size(fs->ctx, name, &size);
    if (sst == QW_E_NOTFOUND) return QW_OK;
    if (sst == QW_E_FORMAT) return qw_error_set(err, QW_E_FORMAT, "%s: %s", name, qw_fs_refusal(name));
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

/* The names a folder's JSON gives for its files, checked by the one rule of qw_fs_name_problem: a dtype is
 * made into a file name, so it is held to [a-z0-9_] too. which: 0 config.json, 1 genai_config.json. */
static qw_status read_names(const cJSON *j, int which, qw_model_config *cfg, qw_error *err) {
    if (which == 0) {
        const cJSON *tjs = cJSON_GetObjectItemCaseSensitive(j, "transformers.js_config");
        const cJSON *dt = cJSON_IsObject(tjs) ? cJSON_GetObjectItemCaseSensitive(tjs, "dtype") : NULL;
        const char *key = "transformers.js_config.dtype";
        if (cJSON_IsObject(dt)) { /* a per-module map: {"model": "q4f16", ...} */
            const cJSON *m = cJSON_GetObjectItemCaseSensitive(dt, "model");
            key = "transformers.js_config.dtype.model";
            if (!m) {
                m = cJSON_GetObjectItemCaseSensitive(dt, "decoder_model_merged");
                key = "transformers.js_config.dtype.decoder_model_merged";
            }
            dt = m;
        }
        if (!cJSON_IsString(dt)) return QW_OK;
        const char *why = qw_dtype_problem(dt->valuestring);
        if (why)
            return qw_error_set(err, QW_E_FORMAT, "config.json: %s '%.40s': %s", key, dt->valuestring, why);
        snprintf(cfg->dtype, sizeof cfg->dtype, "%s", dt->valuestring);
        return QW_OK;
    }
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "model");
    const cJSON *d = cJSON_IsObject(m) ? cJSON_GetObjectItemCaseSensitive(m, "decoder") : NULL;
    const cJSON *fn = cJSON_IsObject(d) ? cJSON_GetObjectItemCaseSensitive(d, "filename") : NULL;
    if (!cJSON_IsString(fn) || !fn->valuestring[0]) return QW_OK;
    const char *why = qw_fs_name_problem(fn->valuestring);
    if (why)
        return qw_error_set(err, QW_E_FORMAT, "genai_config.json: model.decoder.filename '%.200s': %s", fn->valuestring,
                            why);
    snprintf(cfg->genai_file, sizeof cfg->genai_file, "%s", fn->valuestring);
    return QW_OK;
}

const char *qw_dtype_problem(const char *dtype) {
    size_t n = strlen(dtype);
    if (n == 0 || n >= QW_DTYPE_MAX) return "a dtype is 1 to 15 characters";
    for (size_t i = 0; i < n; i++) {
        char c = dtype[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
            return "a dtype is made of a-z, 0-9 and '_' only";
    }
    return NULL;
}

/* Parses the folder's JSON files; the .onnx is not picked yet. */
static qw_status parse_folder(const qw_fs *fs, qw_model_config *cfg, qw_error *err) {
    memset(cfg, 0, sizeof *cfg);
    cfg->bos_token_id = -1;
    cfg->max_position_embeddings = 32768;
    cfg->rope_theta = 10000.0f;
    cfg->rms_norm_eps = 1e-6f;
    cfg->temperature = 1.0f;
    cfg->top_p = 1.0f;
    cfg->repetition_penalty = 1.0f;
    static const char *const files[] = {"config.json", "genai_config.json", "generation_config.json"};
    for (int i = 0; i < 3; i++) {
        cJSON *j = NULL;
        qw_status st = read_json(fs, files[i], &j, err);
        if (st != QW_OK) return st;
        if (!j) continue;
        if (i == 0) apply_hf_config(j, cfg);
        else if (i == 1) apply_genai_config(j, cfg);
        else apply_generation_config(j, cfg);
        st = i < 2 ? read_names(j, i, cfg, err) : QW_OK;
        cJSON_Delete(j);
        if (st != QW_OK) return st;
    }
    if (!cfg->head_dim && cfg->num_heads) cfg->head_dim = cfg->hidden_size / cfg->num_heads;
    return QW_OK;
}

/* The candidates of qw_onnx_candidates from a parsed folder. */
static qw_status candidates(const qw_model_config *cfg, const char *onnx_file, const char *dtype,
                            char names[][QW_FS_NAME_MAX], const char **why, int cap, int *n, qw_error *err) {
    *n = 0;
    if (cap < 1) return qw_error_set(err, QW_E_ARG, "qw_onnx_candidates: no room for a name");
#define ADD(name, from) do { \
        int dup_ = 0; \
        for (int k_ = 0; k_ < *n; k_++) dup_ |= !strcmp(names[k_], name); \
        if (!dup_ && *n < cap) { \
            snprintf(names[*n], QW_FS_NAME_MAX, "%s", name); \
            if (why) why[*n] = from; \
            (*n)++; \
        } \
    } while (0)
    if (onnx_file && *onnx_file) {
        const char *p = qw_fs_name_problem(onnx_file);
        if (p) return qw_error_set(err, QW_E_ARG, "onnx_file option '%.200s': %s", onnx_file, p);
        ADD(onnx_file, "option");
        return QW_OK;
    }
    if (cfg->genai_file[0]) {
        ADD(cfg->genai_file, "genai_config.json");
        return QW_OK;
    }
    const char *from = "dtype";
    if (dtype && *dtype) {
        const char *p = qw_dtype_problem(dtype);
        if (p) return qw_error_set(err, QW_E_ARG, "dtype option '%.40s': %s", dtype, p);
    } else {
        dtype = cfg->dtype;
        from = "transformers.js_config.dtype";
    }
    /* Transformers.js's file names: fp32 has no suffix, q8 is "_quantized" (DEFAULT_DTYPE_SUFFIX_MAPPING) */
    if (dtype[0] && strcmp(dtype, "auto") != 0) {
        char cand[QW_FS_NAME_MAX];
        if (!strcmp(dtype, "fp32")) snprintf(cand, sizeof cand, "onnx/model.onnx");
        else if (!strcmp(dtype, "q8") || !strcmp(dtype, "quantized"))
            snprintf(cand, sizeof cand, "onnx/model_quantized.onnx");
        else snprintf(cand, sizeof cand, "onnx/model_%s.onnx", dtype);
        ADD(cand, from);
    }
    static const char *const fallbacks[] = {"onnx/model.onnx", "model.onnx", "onnx/model_q4f16.onnx",
                                            "onnx/model_q4.onnx", "onnx/model_fp16.onnx"};
    for (size_t i = 0; i < sizeof fallbacks / sizeof fallbacks[0]; i++) ADD(fallbacks[i], "fallback");
#undef ADD
    return QW_OK;
}

qw_status qw_onnx_candidates(const qw_fs *fs, const char *onnx_file, const char *dtype,
                             char names[][QW_FS_NAME_MAX], const char **why, int cap, int *n, qw_error *err) {
    qw_model_config cfg;
    *n = 0;
    qw_status st = parse_folder(fs, &cfg, err);
    return st != QW_OK ? st : candidates(&cfg, onnx_file, dtype, names, why, cap, n, err);
}

#define QW_ONNX_CANDIDATES 8

qw_status qw_config_load_pick(const qw_fs *fs, const char *onnx_override, const char *dtype, qw_model_config *cfg,
                              qw_error *err) {
    qw_status st = parse_folder(fs, cfg, err);
    char names[QW_ONNX_CANDIDATES][QW_FS_NAME_MAX];
    const char *why[QW_ONNX_CANDIDATES];
    int n = 0;
    if (st == QW_OK) st = candidates(cfg, onnx_override, dtype, names, why, QW_ONNX_CANDIDATES, &n, err);
    if (st != QW_OK) return st;
    char tried[400] = "";
    size_t used = 0;
    for (int i = 0; i < n; i++) {
        uint64_t size;
        st = fs->size(fs->ctx, names[i], &size);
        if (st == QW_OK) {
            snprintf(cfg->onnx_file, sizeof cfg->onnx_file, "%s", names[i]);
            return QW_OK;
        }
        if (st == QW_E_FORMAT)
            return qw_error_set(err, QW_E_FORMAT, "%s (%s): %s", names[i], why[i], qw_fs_refusal(names[i]));
        if (st != QW_E_NOTFOUND) return qw_error_set(err, st, "%s: %s", names[i], qw_status_str(st));
        if (used < sizeof tried)
            used += (size_t)snprintf(tried + used, sizeof tried - used, "%s%s (%s)", i ? ", " : "", names[i], why[i]);
    }
    return qw_error_set(err, QW_E_NOTFOUND, "%s: not found; no .onnx file in the folder: tried %s",
                        names[0], tried);
}

qw_status qw_config_load(const qw_fs *fs, const char *onnx_override, qw_model_config *cfg, qw_error *err) {
    return qw_config_load_pick(fs, onnx_override, NULL, cfg, err);
}
