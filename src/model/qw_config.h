/* qw_config.h - what qwasm reads from a model folder's JSON files: config.json (Hugging Face),
 * genai_config.json (onnxruntime-genai), generation_config.json. */
#ifndef QW_CONFIG_H
#define QW_CONFIG_H

#include "qwasm.h"

#define QW_MAX_EOS 8
#define QW_DTYPE_MAX 16

typedef struct qw_model_config {
    char model_type[32]; /* "qwen2", "llama", ... */
    int hidden_size, intermediate_size, num_layers, num_heads, num_kv_heads, head_dim, vocab_size;
    int max_position_embeddings; /* the context limit */
    float rope_theta, rms_norm_eps;
    int tie_word_embeddings;
    int bos_token_id;            /* -1 when none */
    int32_t eos_ids[QW_MAX_EOS]; /* generation_config's eos ids, else config's */
    int n_eos;
    char onnx_file[QW_FS_NAME_MAX];  /* the .onnx to open, relative to the folder (qw_onnx_candidates' pick) */
    char genai_file[QW_FS_NAME_MAX]; /* genai_config.json's model.decoder.filename, checked, or "" */
    char dtype[QW_DTYPE_MAX];        /* transformers.js_config.dtype ("q4f16", "fp32", ...), checked, or "" */
    int use_external_data;           /* transformers.js_config.use_external_data_format (a hint) */
    int has_config;                  /* config.json or genai_config.json was found */
    /* generation_config.json sampling defaults; has_* says whether the file set them */
    int has_sampling;
    int do_sample;
    float temperature, top_p, repetition_penalty;
    int top_k;
    char warnings[1024]; /* values generation_config.json had wrong (defaults used), one per line, or "" */
} qw_model_config;

/* The longest context a config may declare (tokens): the buffers sized from it stay far inside 32 bits. */
#define QW_CFG_MAX_CONTEXT (1 << 24)

/* Reads the folder's JSON files through fs and picks the .onnx (qw_onnx_candidates). Missing files are fine
 * (defaults); malformed JSON, a file name or dtype that breaks the containment rule, and no .onnx found are
 * errors naming the file and the key. onnx_override (may be NULL) picks the .onnx instead. */
qw_status qw_config_load(const qw_fs *fs, const char *onnx_override, qw_model_config *cfg, qw_error *err);
/* The same with a dtype (NULL: the config's) choosing the .onnx as in qw_onnx_candidates; the first candidate
 * that exists is picked, else QW_E_NOTFOUND listing what was tried. */
qw_status qw_config_load_pick(const qw_fs *fs, const char *onnx_override, const char *dtype, qw_model_config *cfg,
                              qw_error *err);
/* Why dtype cannot name a file (NULL when it can): 1-15 characters of [a-z0-9_]. */
const char *qw_dtype_problem(const char *dtype);

#endif
