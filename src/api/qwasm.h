/* qwasm.h - the public C API of qwasm: Qwen2/Qwen2.5 ONNX decoders on CPU and in WebAssembly.
 *
 * Ownership and errors, for every function here:
 *  - Functions return a qw_status; QW_OK (0) is success. When a qw_error* is passed and the call fails,
 *    it is filled with the status and a message naming the file and the cause. Pass NULL to ignore it.
 *  - Objects created by qw_*_load / qw_*_new are owned by the caller and released with the matching
 *    qw_*_free, which accepts NULL. Strings returned as const char* are owned by the library and live as
 *    long as the object they came from (or forever, for static strings such as qw_status_str()).
 *  - No function calls exit() or abort(); out-of-memory is reported as QW_E_NOMEM.
 */
#ifndef QWASM_H
#define QWASM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define QW_VERSION_STRING "0.1.0"

typedef enum qw_status {
    QW_OK = 0,
    QW_E_ARG,         /* invalid argument from the caller */
    QW_E_IO,          /* a file could not be read */
    QW_E_NOTFOUND,    /* a file or name does not exist */
    QW_E_FORMAT,      /* corrupt or truncated input (protobuf, JSON, external data) */
    QW_E_UNSUPPORTED, /* valid input qwasm does not handle (op, dtype, attribute value, version) */
    QW_E_NOMEM,       /* allocation failed or the memory cap cannot be met */
    QW_E_RANGE,       /* a locator or index past the end of its data */
    QW_E_CONTEXT,     /* the context length of the model would be exceeded */
    QW_E_ABORTED,     /* cancelled by the caller */
    QW_E_INTERNAL,    /* a bug in qwasm */
    QW_STATUS_COUNT
} qw_status;

/* A static, human-readable name for a status ("ok", "corrupt or truncated input", ...). */
const char *qw_status_str(qw_status s);

#define QW_FS_NAME_MAX 256 /* longest name of a file in a model folder, NUL included (see qw_fs_name_problem) */

/* Details of a failure: the status plus a message that names the file and the cause. */
typedef struct qw_error {
    qw_status status;
    char msg[512];
    char file[QW_FS_NAME_MAX]; /* the model-folder-relative file the error is about ("config.json",
                                  "onnx/model_q4f16.onnx_data"); "" when none */
} qw_error;

/* Fills err (when not NULL) with status and a printf-style message, and empties err->file; returns status. */
qw_status qw_error_set(qw_error *err, qw_status status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
/* Names file as what a failure (st != QW_OK) is about, unless an inner call named one already (the innermost
 * file wins: the data file a .onnx points to, not the .onnx); returns st. err and file may be NULL. */
qw_status qw_error_file(qw_error *err, const char *file, qw_status st);

/* ---- build information ---------------------------------------------------------------------- */

typedef struct qw_build_info {
    const char *version; /* QW_VERSION_STRING */
    const char *target;  /* "native", "wasm-mt", "wasm-st", "wasi" */
    int simd;            /* 1 when built with SIMD kernels (wasm SIMD128, SSE/AVX2, NEON) */
    int relaxed_simd;    /* 1 when built with wasm relaxed SIMD */
    int threads;         /* 1 when the thread pool can run more than one thread */
    int max_threads;     /* hardware threads available to the pool (1 without threads) */
    int dot_add;         /* 1 when the 4-bit kernels use the relaxed i32 dot-add (checked on this engine) */
    const char *kernels; /* the 4-bit kernel table's row in use ("relaxed-dot-add", ...): after a model's load,
                            the prefill tile timed fastest on this engine (qw_kernels_choose_tile) */
} qw_build_info;

void qw_get_build_info(qw_build_info *out);

/* The build info as one JSON object (static buffer, valid until the next call). */
const char *qw_build_info_json(void);

/* ---- files: everything is read through this, in pieces ------------------------------------- */

/* A folder of model files, read by name in pieces. Names are relative to the folder ("config.json",
 * "onnx/model_q4f16.onnx", "onnx/model_q4f16.onnx_data"). The library never asks for a whole large
 * file in one read. Implementations: qw_fs_open_dir (POSIX, native and WASI) and the wasm glue (which
 * reads from the browser cache, a picked folder or Node's fs). */
typedef struct qw_fs {
    void *ctx;
    /* Size of a file in bytes; QW_E_NOTFOUND when it does not exist, QW_E_UNSUPPORTED when it is not a regular file
     * (a directory, FIFO or device: never read). */
    qw_status (*size)(void *ctx, const char *name, uint64_t *size);
    /* Reads exactly len bytes at offset into dst; QW_E_RANGE/QW_E_IO on short or failed reads. */
    qw_status (*read)(void *ctx, const char *name, uint64_t offset, void *dst, size_t len);
    /* Releases ctx; may be NULL. */
    void (*close)(void *ctx);
} qw_fs;

/* Why name may not be read from a model folder, or NULL when it may. One rule for every name that comes
 * from a file (genai_config.json's decoder.filename, a tensor's external data location, a dtype made into
 * a file name) and for every file source: relative, '/'-separated segments that are not empty, "." or "..",
 * no '\\', ':' (drive letters, streams), NUL or control byte, at most QW_FS_NAME_MAX - 1 bytes. The folder
 * sources also refuse names whose resolved path (symbolic links followed) leaves the folder (QW_E_FORMAT). */
const char *qw_fs_name_problem(const char *name);
/* The cause to print when a qw_fs refused name with QW_E_FORMAT: its qw_fs_name_problem, else that it
 * resolves outside the folder. Static. */
const char *qw_fs_refusal(const char *name);
/* The cause to print for any failed status st of qw_fs.size on name: the refusal (QW_E_FORMAT), "not a regular
 * file" (QW_E_UNSUPPORTED: a directory, FIFO or device), "file not found", else qw_status_str(st). Static. */
const char *qw_fs_cause(qw_status st, const char *name);

/* A qw_fs over a directory on disk. dir is copied. Free with qw_fs_close. A name that fails
 * qw_fs_name_problem, or resolves (through symbolic links) outside dir, gives QW_E_FORMAT. */
qw_status qw_fs_open_dir(const char *dir, qw_fs *out, qw_error *err);
void qw_fs_close(qw_fs *fs);

/* Reads a whole small file (config.json, tokenizer.json) into a new NUL-terminated buffer that the
 * caller frees with free(). max_bytes guards against reading a weight file by mistake. */
qw_status qw_fs_read_all(const qw_fs *fs, const char *name, size_t max_bytes, char **out, size_t *out_len,
                         qw_error *err);

/* ---- models ---------------------------------------------------------------------------------- */

typedef struct qw_model qw_model;
typedef struct qw_gen qw_gen;

/* Progress while loading: phase is "graph", "weights", "repack" or "warmup"; done/total in bytes. */
typedef void (*qw_progress_fn)(void *user, const char *phase, uint64_t done, uint64_t total);

/* KV cache rows. AUTO: fp16 when the graph's present is fp16 (every q4f16 / fp16 export: exact, half of fp32),
 * else fp32. INT8: one int8 per value plus an fp32 scale per kv head and position (a quarter of fp32; values
 * off by up to half a step of amax / 127 of their row). */
typedef enum qw_kv_cache_type {
    QW_KV_CACHE_AUTO = 0,
    QW_KV_CACHE_F16 = 1,
    QW_KV_CACHE_INT8 = 2,
    QW_KV_CACHE_F32 = 3
} qw_kv_cache_type;

/* The decode look-ahead (the next weight group's cache lines touched before the current group is computed).
 * AUTO: natively on (a prefetch, which never waits); in wasm, where it is a load that waits for its line and pays
 * on some CPUs and costs on others, on until the first 12 plain decode steps of a generation have run without and
 * with it alternately, then the faster by median kept. Process-wide: the last choice holds for every model. The
 * choice and its timings: "lookahead" in qw_model_stats_json. Tokens are the same either way. */
typedef enum qw_lookahead_mode { QW_LOOKAHEAD_AUTO = 0, QW_LOOKAHEAD_ON = 1, QW_LOOKAHEAD_OFF = 2 } qw_lookahead_mode;

typedef struct qw_load_opts {
    const char *onnx_file;   /* which .onnx in the folder; NULL: the first of qw_onnx_candidates that exists */
    const char *dtype;       /* NULL: config.json's transformers.js_config.dtype; else as Transformers.js's
                                  from_pretrained dtype ("q4f16", "fp16", "q8", "fp32"): [a-z0-9_], < 16 bytes */
    int threads;             /* <= 0: all hardware threads */
    uint64_t mem_cap_bytes;  /* 0: no cap (weights resident); else weights are paged from the fs */
    int exact_lm_head;       /* 1: keep the all-fp16 lm_head path (no int8 conversion) */
    int embedding_on_demand; /* 1: when the int8 lm_head replaces the tied embedding's product, that embedding
                                  (the model's largest tensor) is not loaded: its rows are read from fs when a
                                  token is embedded or a logit rescored. For an fs with fast random reads (files
                                  on disk, OPFS); saves its bytes (467 MB in the 1.5B model) */
    int max_context;         /* longest context in tokens; <= 0: the model's limit (config.json). Nothing is
                                  sized by it up front: the KV cache and its buffers grow as positions come */
    int kv_cache;            /* qw_kv_cache_type: the KV cache's rows */
    int profile;             /* 1: accumulate per-op time (qw_model_stats_json) */
    int prefetch;            /* 1, native builds under a mem_cap_bytes: a reader thread prefetches the next
                                  streamed weight while the current op computes (for a cold cache or a slow disk;
                                  with the file in the page cache on 2 cores it cost 5-10 % of decode speed) */
    int lm_head_min_rows;    /* 0: the int8 lm_head replaces a tied lm_head of at least 16384 rows and 8M
                                  elements; else of at least this many rows (tests: small models' heads) */
    int lookahead;           /* qw_lookahead_mode: whether the decode products touch the next weights ahead */
    int external_decoder;    /* 1: read config, tokenizer and template only, not the graph: another engine
                                  computes the logits, which qw_gen_next asks for with QW_GEN_FEED events */
    qw_progress_fn progress; /* may be NULL */
    void *progress_user;
} qw_load_opts;

/* The .onnx files a load of this folder tries, in order, the same for every file source (the browser glue
 * probes them over HTTP with this list): onnx_file when given (validated); else genai_config.json's
 * decoder.filename; else onnx/model_<dtype>.onnx for dtype (or config.json's transformers.js_config.dtype;
 * fp32 -> onnx/model.onnx, q8 -> onnx/model_quantized.onnx as Transformers.js names them), then
 * onnx/model.onnx, model.onnx, onnx/model_q4f16.onnx, onnx/model_q4.onnx, onnx/model_fp16.onnx.
 * Reads only config.json and genai_config.json through fs. Fills names[0..*n) (at most cap) and, when why is
 * not NULL, why[i]: a static word saying where names[i] comes from ("option", "genai_config.json",
 * "dtype", "transformers.js_config.dtype", "fallback"). A named file (option or genai_config.json) is the only
 * candidate. Errors: a name or dtype failing qw_fs_name_problem (QW_E_ARG for the arguments, QW_E_FORMAT
 * naming the file and the key for what a file says), malformed JSON. */
qw_status qw_onnx_candidates(const qw_fs *fs, const char *onnx_file, const char *dtype, char names[][QW_FS_NAME_MAX],
                             const char **why, int cap, int *n, qw_error *err);

/* Loads a Hugging Face-style model folder (config.json, generation_config.json, tokenizer.json, onnx/...)
 * through fs. fs must outlive the model (weights may be paged from it). A folder without a tokenizer
 * qwasm reads still loads: text functions then fail with QW_E_UNSUPPORTED and ids still work. */
qw_status qw_model_load(const qw_fs *fs, const qw_load_opts *opts, qw_model **out, qw_error *err);
void qw_model_free(qw_model *m);

/* Speculative decoding with a draft model: generations on target (with qw_gen_params.speculative on or auto) draft
 * with draft, a smaller model of the same tokenizer (Qwen2.5-0.5B for 1.5B), when the prompt-lookup draft finds
 * nothing. The draft model continues the text greedily (its argmax tokens), so the output is still exactly the
 * target's: the tokens of plain decoding, greedy or sampled with the same seed (qw_speculate.h has the argument).
 * draft is borrowed: the caller keeps owning it and frees it after target, or detaches it first (draft NULL);
 * freeing either model detaches them. While attached, draft runs on target's thread pool (load it with threads 1
 * so it starts no threads of its own), keeps its own KV cache and weights (under its own mem_cap_bytes: its bytes
 * are the "draft" object of target's stats and info) and cannot generate on its own. QW_E_ARG when the two
 * tokenizers' vocabularies (each id's bytes and special flag) or eos ids differ, when draft is target or already
 * drafts for another model, or when either is generating. */
qw_status qw_model_set_draft(qw_model *target, qw_model *draft, qw_error *err);

/* The model as JSON: config hyperparameters, onnx file, opset, engine, vocab, eos ids, memory figures,
 * tokenizer availability. Owned by the model; valid until the next call on it. */
const char *qw_model_info_json(qw_model *m);

/* 1 when the folder's tokenizer was loaded; otherwise qw_model_tokenizer_error says why (for example a
 * SentencePiece-style tokenizer.json, which qwasm does not read): ids still work. */
int qw_model_has_tokenizer(const qw_model *m);
/* Values of the folder's files that were refused and replaced by their defaults (generation_config.json's sampling
 * values), one per line naming the file and the key; "" when none. Also "warnings" in qw_model_info_json. */
const char *qw_model_warnings(const qw_model *m);
const char *qw_model_tokenizer_error(const qw_model *m);

/* ---- text ------------------------------------------------------------------------------------- */

/* Encodes UTF-8 text into ids (special tokens in the text are matched). *ids is malloc'd; free() it. */
qw_status qw_tokenize(qw_model *m, const char *text, size_t len, int32_t **ids, size_t *n, qw_error *err);
/* Decodes ids into UTF-8 text (malloc'd, NUL-terminated; free() it). */
qw_status qw_detokenize(qw_model *m, const int32_t *ids, size_t n, char **text, qw_error *err);
/* Renders a chat as the model's chat template (tokenizer_config.json's chat_template; ChatML when the folder has
 * none) does, as transformers' apply_chat_template. messages_json is a JSON array of messages
 * ({"role": ..., "content": ..., "tool_calls": ...}); with add_generation_prompt the assistant turn is opened.
 * *out is malloc'd; free() it. A template qwasm cannot render fails with a message naming the construct and its
 * line and column in tokenizer_config.json's chat_template; raise_exception in the template is QW_E_ARG. */
qw_status qw_chat_render(qw_model *m, const char *messages_json, int add_generation_prompt, char **out, qw_error *err);
/* Same, with tools_json (a JSON array of tool schemas, or NULL: tools is none in the template). */
qw_status qw_chat_render_tools(qw_model *m, const char *messages_json, const char *tools_json,
                               int add_generation_prompt, char **out, qw_error *err);

/* ---- generation: an iterator, so callers (CLI, JS worker) can stream and cancel between steps --- */

typedef struct qw_gen_params {
    int max_tokens;           /* new tokens to generate; <= 0: up to the context limit */
    float temperature;        /* <= 0: greedy */
    int top_k;                /* 0: off */
    float top_p;              /* 1: off */
    float min_p;              /* 0: off */
    float repetition_penalty; /* 1: off */
    uint64_t seed;
    int prefill_chunk;       /* prompt tokens per prefill step; <= 0: default (128) */
    const char *const *stop; /* stop strings (n_stop of them); the text stops before them */
    int n_stop;
    const int32_t *bias_ids; /* per-id logit bias */
    const float *bias_values;
    int n_bias;
    int ignore_eos;           /* 1: do not stop on the eos ids of generation_config.json */
    volatile int *abort_flag; /* when *abort_flag becomes nonzero, the current step stops: QW_E_ABORTED */
    int speculative;          /* speculative decoding: QW_SPEC_OFF (default), QW_SPEC_ON, or QW_SPEC_AUTO (on,
                                  paused while few drafts are accepted). Drafts come from prompt lookup, else from
                                  the draft model (qw_model_set_draft). The tokens are the ones plain decoding
                                  gives (greedy, and sampled with the same seed) */
    int spec_max_draft;       /* drafted tokens verified per step at most; <= 0: default (8), at most 16 */
    int spec_no_lookup;       /* 1: no prompt-lookup drafts, only the draft model's (tests, benchmarks) */
} qw_gen_params;

enum { QW_SPEC_OFF = 0, QW_SPEC_ON = 1, QW_SPEC_AUTO = 2 };

/* Defaults: greedy off (temperature 0.7, top_k 20, top_p 0.8 as Qwen2.5's generation_config when the
 * folder has none), max_tokens 256. qw_gen_params_init fills them; the model's generation_config.json
 * values take precedence when qw_gen_params_from_model is used. */
void qw_gen_params_init(qw_gen_params *p);
void qw_gen_params_from_model(const qw_model *m, qw_gen_params *p);

typedef enum qw_gen_event_kind {
    QW_GEN_PREFILL = 1, /* a chunk of the prompt was processed (n_prompt_done of n_prompt) */
    QW_GEN_TOKEN = 2,   /* a new token: id, text/text_len (complete UTF-8 only; may be empty) */
    QW_GEN_DONE = 3,    /* finished: stop_reason says why */
    QW_GEN_FEED = 4     /* external decoder only: run feed_ids (after the n_past ids it already
                                  holds; 0: start over) and pass the last position's logits to
                                  qw_gen_set_logits before the next qw_gen_next */
} qw_gen_event_kind;

typedef struct qw_gen_event {
    int kind; /* qw_gen_event_kind */
    int32_t id;
    const char *text; /* owned by the qw_gen; valid until the next qw_gen_next */
    size_t text_len;
    int n_prompt, n_prompt_done, n_generated;
    const char *stop_reason;               /* "eos", "max_tokens", "stop_string", "context" when DONE */
    double prefill_ms, decode_ms, step_ms; /* cumulative prefill and decode time; this step's time */
    const int32_t *feed_ids;               /* QW_GEN_FEED: the ids to run (owned by the qw_gen) */
    int n_feed, n_past;
    int spec_drafted, spec_accepted, spec_steps; /* this generation so far: tokens drafted, drafted tokens
                                                    accepted, verify steps run (speculative decoding) */
    int draft_drafted, draft_accepted;           /* of those, the draft model's (qw_model_set_draft) */
    double draft_ms;                             /* this generation's time in the draft model */
} qw_gen_event;

/* Starts generating after prompt (ids). The prompt is prefilled in chunks by qw_gen_next. */
qw_status qw_gen_begin(qw_model *m, const int32_t *prompt, size_t n_prompt, const qw_gen_params *p, qw_gen **out,
                       qw_error *err);
/* Advances by one step (a prefill chunk or one token). After QW_GEN_DONE, further calls return DONE. With
 * speculative decoding one call may run a verify step whose accepted tokens the next calls return without
 * running the model (their step_ms is then about 0). */
qw_status qw_gen_next(qw_gen *g, qw_gen_event *ev, qw_error *err);
/* External decoder: the logits (n_vocab floats) of the last id of the QW_GEN_FEED event just returned. */
qw_status qw_gen_set_logits(qw_gen *g, const float *logits, size_t n_vocab, qw_error *err);
/* All ids generated so far. */
const int32_t *qw_gen_ids(const qw_gen *g, size_t *n);
void qw_gen_free(qw_gen *g);

/* ---- debugging: intermediate tensors -------------------------------------------------------- */

/* Called after each graph node with each output it produced (name as in the ONNX graph). dtype numbers as ONNX
 * TensorProto (1 float, 10 float16, 7 int64, ...) and is the dtype qwasm holds the value in: an fp16 value that
 * only fp32 kernels read stays fp32 (as onnxruntime's CPU provider keeps it). data is valid during the call. */
typedef void (*qw_tap_fn)(void *user, const char *name, int dtype, int ndim, const int64_t *dims, const void *data);
/* Sets (fn NULL: clears) the tap for the next forward passes (layer_diff, tests); slower, not for production. */
void qw_model_set_tap(qw_model *m, qw_tap_fn fn, void *user);

/* ---- the KV cache of a model: rollback and a prompt cache ------------------------------------------- */

/* The ids whose keys and values the model holds (the last generation's prompt and tokens, less the last token
 * when it was not fed back), in order. Owned by the model; valid until the next generation. */
const int32_t *qw_model_kv_ids(const qw_model *m, size_t *n);
/* Keeps the first n cached positions (n <= what is cached): the next generation recomputes from there. */
qw_status qw_model_kv_truncate(qw_model *m, size_t n, qw_error *err);
/* Version of the prompt cache's file layout below: part of what a cache keys entries by. */
#define QW_KV_STATE_LAYOUT 1
/* The state of the first n cached positions as one malloc'd blob (free() it): a header (magic "QWKV", the
 * layout version, a hash of the model's files and shapes and of the row type, n, a checksum), the n ids, the
 * rows. A prompt prefix saved this way and imported at another load skips its prefill: qw_gen_begin keeps the
 * cached positions its prompt starts with. */
qw_status qw_model_kv_export(qw_model *m, size_t n, void **blob, size_t *len, qw_error *err);
/* Replaces the model's cache with a blob from qw_model_kv_export. A blob of another layout, model or row type
 * is QW_E_UNSUPPORTED, a damaged one QW_E_FORMAT (the message says which); the cache is then empty. */
qw_status qw_model_kv_import(qw_model *m, const void *blob, size_t len, qw_error *err);

/* Memory and timing counters as JSON (peak activation bytes, resident weight bytes, paging counts,
 * per-op time when profiling is on). Owned by the model; valid until the next call on it. */
const char *qw_model_stats_json(qw_model *m);

#ifdef __cplusplus
}
#endif
#endif /* QWASM_H */
