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
    if (cJSON_IsNumber(v))
        snprintf(got, sizeof got, "%.17g", v->valuedouble);
    else
        snprintf(got, sizeof got, "%s",
                 cJSON_IsString(v)  ? "a string"
                 : cJSON_IsBool(v)  ? "a boolean"
                 : cJSON_IsNull(v)  ? "null"
                 : cJSON_IsArray(v) ? "an array"
                                    : "an object");
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
    if (integer)
        snprintf(want, sizeof want, "an integer from %.17g to %.17g", lo, hi);
    else
        snprintf(want, sizeof want, "a number from %.9g to %.9g", lo, hi);
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
            if (!is_id(e)) {
                bad_value(J, "eos_token_id", e, want);
                return;
            }
            ids[n++] = (int32_t)e->valuedouble;
        }
        if (n) {
            memcpy(cfg->eos_ids, ids, sizeof ids);
            cfg->n_eos = n;
        }
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
    if (sst != QW_OK) /* refused by the containment rule, or there but unreadable (a directory, FIFO, device) */
        return qw_error_file(err, name, qw_error_set(err, sst, "%s: %s", name, qw_fs_cause(sst, name)));
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
    cfg->max_position_embeddings = json_int(J, c, "max_position_embeddings", cfg->max_position_embeddings, 1,
                                            QW_CFG_MAX_CONTEXT);
    cfg->rope_theta = json_float(J, c, "rope_theta", cfg->rope_theta, 1e-3, 1e12);
    cfg->rms_norm_eps = json_float(J, c, "rms_norm_eps", cfg->rms_norm_eps, 0, 1);
    const cJSON *tie = cJSON_GetObjectItemCaseSensitive(c, "tie_word_embeddings");
    if (cJSON_IsBool(tie)) cfg->tie_word_embeddings = cJSON_IsTrue(tie);
    cfg->bos_token_id = json_bos(J, c, cfg->bos_token_id);
    json_eos(J, c, cfg);
    const cJSON *tjs = cJSON_GetObjectItemCaseSensitive(c, "transformers.js_config");
    if (cJSON_IsObject(tjs)) {
        const cJSON *ext = cJSON_GetObjectItemCaseSensitive(tjs, "use_external_data_format");
        cfg->use_external_data = cJSON_IsTrue(ext) || cJSON_IsObject(ext) ||
                                 (cJSON_IsNumber(ext) && ext->valuedouble > 0);
    }
    cfg->has_config = 1;
}

static void apply_genai_config(jctx *J, const cJSON *g, qw_model_config *cfg) {
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(g, "model");
    if (!cJSON_IsObject(m)) return;
    json_str(m, "type", cfg->model_type, sizeof cfg->model_type);
    cfg->vocab_size = json_int(J, m, "vocab_size", cfg->vocab_size, 1, QW_CFG_MAX_VOCAB);
    cfg->max_position_embeddings = json_int(J, m, "context_length", cfg->max_position_embeddings, 1,
                                            QW_CFG_MAX_CONTEXT);
    cfg->bos_token_id = json_bos(J, m, cfg->bos_token_id);
    json_eos(J, m, cfg);
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(m, "decoder");
    if (cJSON_IsObject(d)) {
        cfg->hidden_size = json_int(J, d, "hidden_size", cfg->hidden_size, 1, QW_CFG_MAX_DIM);
        cfg->num_layers = json_int(J, d, "num_hidden_layers", cfg->num_layers, 1, 4096);
        cfg->num_heads = json_int(J, d, "num_attention_heads", cfg->num_heads, 1, 4096);
        cfg->num_kv_heads = json_int(J, d, "num_key_value_heads", cfg->num_heads, 1, 4096);
        cfg->head_dim = json_int(J, d, "head_size", cfg->head_dim, 1, QW_CFG_MAX_DIM);
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
    if (tp > 0)
        cfg->top_p = (float)tp;
    else
        bad_value(J, "top_p", cJSON_GetObjectItemCaseSensitive(g, "top_p"), "a number above 0, at most 1");
    cfg->top_k = json_int(J, g, "top_k", cfg->top_k, 0, QW_CFG_MAX_VOCAB);
    float rp = json_float(J, g, "repetition_penalty", cfg->repetition_penalty, 0, QW_SAMPLER_MAX_PENALTY);
    if (rp > 0)
        cfg->repetition_penalty = rp;
    else
        bad_value(J, "repetition_penalty", cJSON_GetObjectItemCaseSensitive(g, "repetition_penalty"),
                  "a number above 0");
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
        if (why) return qw_error_set(err, QW_E_FORMAT, "config.json: %s '%.40s': %s", key, dt->valuestring, why);
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
        jctx J = {files[i], cfg, i == 2, QW_OK, err};
        if (i == 0)
            apply_hf_config(&J, j, cfg);
        else if (i == 1)
            apply_genai_config(&J, j, cfg);
        else
            apply_generation_config(&J, j, cfg);
        st = J.st == QW_OK && i < 2 ? read_names(j, i, cfg, err) : J.st;
        cJSON_Delete(j);
        if (st != QW_OK) return qw_error_file(err, files[i], st);
    }

    if (!cfg->head_dim && cfg->num_heads) cfg->head_dim = cfg->hidden_size / cfg->num_heads;
    return QW_OK;
}

/* The candidates of qw_onnx_candidates from a parsed folder. */
static qw_status candidates(const qw_model_config *cfg, const char *onnx_file, const char *dtype,
                            char names[][QW_FS_NAME_MAX], const char **why, int cap, int *n, qw_error *err) {
    *n = 0;
    if (cap < 1) return qw_error_set(err, QW_E_ARG, "qw_onnx_candidates: no room for a name");
#define ADD(name, from) \
    do { \
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
        if (!strcmp(dtype, "fp32"))
            snprintf(cand, sizeof cand, "onnx/model.onnx");
        else if (!strcmp(dtype, "q8") || !strcmp(dtype, "quantized"))
            snprintf(cand, sizeof cand, "onnx/model_quantized.onnx");
        else
            snprintf(cand, sizeof cand, "onnx/model_%s.onnx", dtype);
        ADD(cand, from);
    }
    static const char *const fallbacks[] = {"onnx/model.onnx", "model.onnx", "onnx/model_q4f16.onnx",
                                            "onnx/model_q4.onnx", "onnx/model_fp16.onnx"};
    for (size_t i = 0; i < sizeof fallbacks / sizeof fallbacks[0]; i++) ADD(fallbacks[i], "fallback");
#undef ADD
    return QW_OK;
}

qw_status qw_onnx_candidates(const qw_fs *fs, const char *onnx_file, const char *dtype, char names[][QW_FS_NAME_MAX],
                             const char **why, int cap, int *n, qw_error *err) {
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
            return qw_error_file(
                err, names[i],
                qw_error_set(err, QW_E_FORMAT, "%s (%s): %s", names[i], why[i], qw_fs_refusal(names[i])));
        if (st != QW_E_NOTFOUND)
            return qw_error_file(err, names[i], qw_error_set(err, st, "%s: %s", names[i], qw_fs_cause(st, names[i])));
        if (used < sizeof tried)
            used += (size_t)snprintf(tried + used, sizeof tried - used, "%s%s (%s)", i ? ", " : "", names[i], why[i]);
    }
    return qw_error_file(err, names[0],
                         qw_error_set(err, QW_E_NOTFOUND,
                                      "%s: not found; no .onnx file in the "
                                      "folder: tried %s",
                                      names[0], tried));
}

qw_status qw_config_load(const qw_fs *fs, const char *onnx_override, qw_model_config *cfg, qw_error *err) {
    return qw_config_load_pick(fs, onnx_override, NULL, cfg, err);
}
