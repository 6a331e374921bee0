/* qw_config.c - model folder configuration: config.json / genai_config.json / generation_config.json. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include "cJSON.h"
#include "qw_json.h"
#include "qw_config.h"
#include "qw_sampler.h"

#define QW_CONFIG_MAX_BYTES (4u << 20) /* config files are small; a bigger one is not a config */

/* The file being applied: numbers are range-checked as they are read. A bad one in config.json or genai_config.json
 * (the model's structure) is an error naming the file and the key (the first one is kept); in
 * generation_config.json (sampling defaults) it is a warning in cfg->warnings and the default stays. */
typedef struct jctx {
    const char *file;
    qw_model_config *cfg;
    int warn_only;
    qw_status st;
    qw_error *err;
} jctx;

static void bad_value(jctx *J, const char *key, const cJSON *v, const char *want) {
    char got[48];
    if (cJSON_IsNumber(v)) snprintf(got, sizeof got, "%.17g", v->valuedouble);
    else snprintf(got, sizeof got, "%s", cJSON_IsString(v) ? "a string" : cJSON_IsBool(v) ? "a boolean" :
                                         cJSON_IsNull(v) ? "null" : cJSON_IsArray(v) ? "an array" : "an object");
    if (J->warn_only) {
        size_t k = strlen(J->cfg->warnings);
        snprintf(J->cfg->warnings + k, sizeof J->cfg->warnings - k, "%s%s: %s is %s, %s expected; the default is used",
                 k ? "\n" : "", J->file, key, got, want);
    } else if (J->st == QW_OK) {
        J->st = qw_error_set(J->err, QW_E_FORMAT, "%s: %s is %s, %s expected", J->file, key, got, want);
    }
}

/* key's number when present and valid: finite, integral when asked, in [lo, hi]; else def (and bad_value) */
static double json_num(jctx *J, const cJSON *o, const char *key, double def, double lo, double hi, int integer) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v) return def;
    double x = cJSON_IsNumber(v) ? v->valuedouble : NAN;
    if (x >= lo && x <= hi && (!integer || x == floor(x))) return x; /* NaN fails the first test */
    char want[96];
    if (integer) snprintf(want, sizeof want, "an integer from %.17g to %.17g", lo, hi);
    else snprintf(want, sizeof want, "a number from %.9g to %.9g", lo, hi);
    bad_value(J, key, v, want);
    return def;
}

static int json_int(jctx *J, const cJSON *o, const char *key, int def, int lo, int hi) {
    return (int)json_num(J, o, key, def, lo, hi, 1);
}

static float json_float(jctx *J, const cJSON *o, const char *key, float def, double lo, double hi) {
    return (float)json_num(J, o, key, def, lo, hi, 0);
}

/* limits of what qwasm reads: far above any Qwen2 model, low enough that sizes computed from them fit in 32 bits */
#define QW_CFG_MAX_DIM (1 << 20)
#define QW_CFG_MAX_VOCAB (1 << 24)

static void json_str(const cJSON *o, const char *key, char *dst, size_t cap) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (cJSON_IsString(v) && v->valuestring) snprintf(dst, cap, "%s", v->valuestring);
}

static int json_bos(jctx *J, const cJSON *o, int def) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "bos_token_id");
    return v && cJSON_IsNull(v) ? def : json_int(J, o, "bos_token_id", def, -1, QW_CFG_MAX_VOCAB - 1);
}

static int is_id(const cJSON *e) {
    return cJSON_IsNumber(e) && e->valuedouble >= 0 && e->valuedouble < QW_CFG_MAX_VOCAB &&
           e->valuedouble == floor(e->valuedouble);
}

/* eos_token_id may be a number or a list of numbers. */
static void json_eos(jctx *J, const cJSON *o, qw_model_config *cfg) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "eos_token_id");
    if (!v || cJSON_IsNull(v)) return;
    char want[80];
    snprintf(want, sizeof want, "an id from 0 to %d or a list of at most %d of them", QW_CFG_MAX_VOCAB - 1, QW_MAX_EOS);
    if (is_id(v)) {
        cfg->eos_ids[0] = (int32_t)v->valuedouble;
        cfg->n_eos = 1;
    } else if (cJSON_IsArray(v) && cJSON_GetArraySize(v) <= QW_MAX_EOS) {
        int32_t ids[QW_MAX_EOS];
        int n = 0;
        const cJSON *e;
        cJSON_ArrayForEach(e, v) {
            if (!is_id(e)) { bad_value(J, "eos_token_id", e, want); return; }
            ids[n++] = (int32_t)e->valuedouble;
        }
        if (n) { memcpy(cfg->eos_ids, ids, sizeof ids); cfg->n_eos = n; }
    } else {
        bad_value(J, "eos_token_id", v, want);
    }
}

/* Parses name when it exists: *out = NULL when missing, error when present but malformed. */
static qw_status read_json(const qw_fs *fs, const char *name, cJSON **out, qw_error *err) {
    *out = NULL;
    uint64_t size;
    qw_status sst = fs->size(fs->ctx, name, &size);
    if (sst == QW_E_NOTFOUND) return QW_OK;
    if (sst != QW_OK) /* there but unreadable (a directory, FIFO, device): not a missing file */
        return qw_error_set(err, sst, "%s: %s", name, sst == QW_E_UNSUPPORTED ? QW_FS_NOT_REGULAR : qw_status_str(sst));
    char *text = NULL;
    size_t len = 0;
    qw_status st = qw_fs_read_all(fs, name, QW_CONFIG_MAX_BYTES, &text, &len, err);
    if (st != QW_OK) return st;
    st = qw_json_parse(text, len, name, out, err);
    free(text);
    return st;
}

static void apply_hf_config(jctx *J, const cJSON *c, qw_model_config *cfg) {
    json_str(c, "model_type", cfg->model_type, sizeof cfg->model_type);
    cfg->hidden_size = json_int(J, c, "hidden_size", cfg->hidden_size, 1, QW_CFG_MAX_DIM);
    cfg->intermediate_size = json_int(J, c, "intermediate_size", cfg->intermediate_size, 1, QW_CFG_MAX_DIM);
    cfg->num_layers = json_int(J, c, "num_hidden_layers", cfg->num_layers, 1, 4096);
    cfg->num_heads = json_int(J, c, "num_attention_heads", cfg->num_heads, 1, 4096);
    cfg->num_kv_heads = json_int(J, c, "num_key_value_heads", cfg->num_heads, 1, 4096);
    cfg->vocab_size = json_int(J, c, "vocab_size", cfg->vocab_size, 1, QW_CFG_MAX_VOCAB);
    cfg->max_position_embeddings =
        json_int(J, c, "max_position_embeddings", cfg->max_position_embeddings, 1, QW_CFG_MAX_CONTEXT);
    cfg->rope_theta = json_float(J, c, "rope_theta", cfg->rope_theta, 1e-3, 1e12);
    cfg->rms_norm_eps = json_float(J, c, "rms_norm_eps", cfg->rms_norm_eps, 0, 1);
    const cJSON *tie = cJSON_GetObjectItemCaseSensitive(c, "tie_word_embeddings");
    if (cJSON_IsBool(tie)) cfg->tie_word_embeddings = cJSON_IsTrue(tie);
    cfg->bos_token_id = json_bos(J, c, cfg->bos_token_id);
    json_eos(J, c, cfg);
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

static void apply_genai_config(jctx *J, const cJSON *g, qw_model_config *cfg) {
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(g, "model");
    if (!cJSON_IsObject(m)) return;
    json_str(m, "type", cfg->model_type, sizeof cfg->model_type);
    cfg->vocab_size = json_int(J, m, "vocab_size", cfg->vocab_size, 1, QW_CFG_MAX_VOCAB);
    cfg->max_position_embeddings =
        json_int(J, m, "context_length", cfg->max_position_embeddings, 1, QW_CFG_MAX_CONTEXT);
    cfg->bos_token_id = json_bos(J, m, cfg->bos_token_id);
    json_eos(J, m, cfg);
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(m, "decoder");
    if (cJSON_IsObject(d)) {
        cfg->hidden_size = json_int(J, d, "hidden_size", cfg->hidden_size, 1, QW_CFG_MAX_DIM);
        cfg->num_layers = json_int(J, d, "num_hidden_layers", cfg->num_layers, 1, 4096);
        cfg->num_heads = json_int(J, d, "num_attention_heads", cfg->num_heads, 1, 4096);
        cfg->num_kv_heads = json_int(J, d, "num_key_value_heads", cfg->num_heads, 1, 4096);
        cfg->head_dim = json_int(J, d, "head_size", cfg->head_dim, 1, QW_CFG_MAX_DIM);
        char fn[256] = "";
        json_str(d, "filename", fn, sizeof fn);
        if (fn[0] && !cfg->onnx_file[0]) snprintf(cfg->onnx_file, sizeof cfg->onnx_file, "%s", fn);
    }
    cfg->has_config = 1;
}

/* The sampling values take the ranges qw_sampler_params_check accepts (temperature 0 = greedy). */
static void apply_generation_config(jctx *J, const cJSON *g, qw_model_config *cfg) {
    json_eos(J, g, cfg);
    cfg->bos_token_id = json_bos(J, g, cfg->bos_token_id);
    const cJSON *ds = cJSON_GetObjectItemCaseSensitive(g, "do_sample");
    cfg->do_sample = cJSON_IsTrue(ds);
    cfg->temperature = json_float(J, g, "temperature", cfg->temperature, 0, QW_SAMPLER_MAX_TEMPERATURE);
    double tp = json_num(J, g, "top_p", cfg->top_p, 0, 1, 0); /* (0, 1]: only an exact 0 passes the range */
    if (tp > 0) cfg->top_p = (float)tp;
    else bad_value(J, "top_p", cJSON_GetObjectItemCaseSensitive(g, "top_p"), "a number above 0, at most 1");
    cfg->top_k = json_int(J, g, "top_k", cfg->top_k, 0, QW_CFG_MAX_VOCAB);
    float rp = json_float(J, g, "repetition_penalty", cfg->repetition_penalty, 0, QW_SAMPLER_MAX_PENALTY);
    if (rp > 0) cfg->repetition_penalty = rp;
    else bad_value(J, "repetition_penalty", cJSON_GetObjectItemCaseSensitive(g, "repetition_penalty"),
                   "a number above 0");
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
        jctx J = {files[i], cfg, i == 2, QW_OK, err};
        if (i == 0) apply_hf_config(&J, j, cfg);
        else if (i == 1) apply_genai_config(&J, j, cfg);
        else apply_generation_config(&J, j, cfg);
        cJSON_Delete(j);
        if (J.st != QW_OK) return J.st;
    }

    if (!cfg->head_dim && cfg->num_heads) cfg->head_dim = cfg->hidden_size / cfg->num_heads;
    pick_onnx_file(fs, cfg);
    return QW_OK;
}
