/* qw_wasm_api.c - the functions the JS glue (js/worker/qwasm-worker.js) calls in qwasm-mt / qwasm-st.
 *
 * Conventions, for every export below:
 *  - Errors: functions return a status int (0 = QW_OK, else a qw_status) or a handle/pointer that is 0 on
 *    failure. After a failure, qw_wasm_last_status() gives the qw_status, qw_wasm_last_error() the
 *    message (naming the file and the cause) and qw_wasm_last_error_file() the file (qw_error.file). All are
 *    per module instance (the runtime is driven by one JS thread: the worker hosting the module), valid until
 *    the next failing call.
 *  - Ownership: handles (qw_wasm_model*, qw_wasm_gen*) are owned by JS and released with the matching
 *    *_free. Strings returned as const char* are owned by the module (static, or by the model / generator
 *    they came from, valid until the next call on that object). Buffers marked "malloc'd" are owned by JS,
 *    which releases them with qw_wasm_free (in a `finally`). Inputs that JS allocates with qw_wasm_malloc
 *    are freed by JS after the call; C copies what it keeps.
 *  - Files: C reads every file through a qw_fs whose size/read are JS functions imported from
 *    js/worker/qw_library.js (qw_js_fs_size / qw_js_fs_read). A JS "file source" is registered in the worker under
 *    an integer id (fs_id) and passed here. Reads are synchronous (FileReaderSync on IndexedDB Blobs or
 *    picked Files, FileSystemSyncAccessHandle on OPFS, fs.readSync in Node) and happen on the thread that
 *    calls these exports (the JS sources live there); a read from another pthread fails with QW_E_IO.
 *  - Abort: qw_wasm_abort_flag() is the address of an int in wasm memory. JS stores 1 there to stop the
 *    current generation step (qw_gen_next then fails with QW_E_ABORTED); qw_wasm_gen_begin resets it.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <emscripten/emscripten.h>
#include "cJSON.h"
#include "qwasm.h"
#include "qw_onnx.h"
#include "qw_graph.h"
#include "qw_wasm_abi.h"

/* ---- imported from js/worker/qw_library.js --------------------------------------------------------------- */
/* Size of file `name` of source fs_id into out[0] (low 32 bits) and out[1] (high 32 bits); status. */
extern int qw_js_fs_size(int fs_id, const char *name, uint32_t *out);
/* Reads exactly len bytes of `name` at offset into dst; status (QW_E_RANGE on a short read). */
extern int qw_js_fs_read(int fs_id, const char *name, double offset, void *dst, size_t len);
/* Load progress: phase "graph" | "weights" | "repack" | "warmup"; done/total in bytes. */
extern void qw_js_progress(const char *phase, double done, double total);

/* ---- errors ----------------------------------------------------------------------------------------- */

static qw_error g_err;

static void set_err(const qw_error *e) { g_err = *e; }

/* The qw_status of the last failing call (0 when none yet). */
EMSCRIPTEN_KEEPALIVE int qw_wasm_last_status(void) { return (int)g_err.status; }
/* The message of the last failing call ("" when none yet). Static; valid until the next failure. */
EMSCRIPTEN_KEEPALIVE const char *qw_wasm_last_error(void) { return g_err.msg; }
/* The model-folder-relative file the last failing call is about ("" when none). Static, as qw_wasm_last_error. */
EMSCRIPTEN_KEEPALIVE const char *qw_wasm_last_error_file(void) { return g_err.file; }
/* Address of {name, op_type} of the running node (qw_graph.h), read by the glue after a trap. */
EMSCRIPTEN_KEEPALIVE const void *qw_wasm_running_op(void) { return &qw_graph_running; }
/* A static name for a status ("corrupt or truncated input", ...). */
EMSCRIPTEN_KEEPALIVE const char *qw_wasm_status_str(int s) { return qw_status_str((qw_status)s); }

/* ---- info, memory ------------------------------------------------------------------------------------ */

/* Build information as JSON: {"version","target","simd","relaxed_simd","threads","max_threads"}. Static. */
EMSCRIPTEN_KEEPALIVE const char *qw_wasm_info(void) { return qw_build_info_json(); }

/* malloc/free for the glue's buffers (strings and id arrays passed in, results handed out). */
EMSCRIPTEN_KEEPALIVE void *qw_wasm_malloc(size_t n) { return malloc(n ? n : 1); }
EMSCRIPTEN_KEEPALIVE void qw_wasm_free(void *p) { free(p); }

static volatile int g_abort;
/* Address of the abort flag (an int; JS writes 1 to cancel the running step). */
EMSCRIPTEN_KEEPALIVE volatile int *qw_wasm_abort_flag(void) { return &g_abort; }

/* ---- the qw_fs backed by a JS file source ------------------------------------------------------------- */

typedef struct js_fs {
    int id;
} js_fs;

static qw_status js_size(void *ctx, const char *name, uint64_t *size) {
    uint32_t v[2] = {0, 0};
    int st = qw_js_fs_size(((js_fs *)ctx)->id, name, v);
    if (st == QW_OK) *size = (uint64_t)v[0] | ((uint64_t)v[1] << 32);
    return (qw_status)st;
}

static qw_status js_read(void *ctx, const char *name, uint64_t offset, void *dst, size_t len) {
    if (len == 0) return QW_OK;
    return (qw_status)qw_js_fs_read(((js_fs *)ctx)->id, name, (double)offset, dst, len);
}

static void js_close(void *ctx) { free(ctx); }

static int js_fs_make(int fs_id, qw_fs *out) {
    js_fs *c = malloc(sizeof *c);
    if (!c) return 0;
    c->id = fs_id;
    out->ctx = c;
    out->size = js_size;
    out->read = js_read;
    out->close = js_close;
    return 1;
}

/* Parses the .onnx `onnx_name` of source fs_id (only its graph: external data files are not read, only
 * sized) and lists the files its tensor locators name, as JSON (malloc'd: JS releases it with qw_wasm_free):
 *   {"onnx":"onnx/model.onnx","opset":18,"files":[{"name":"onnx/model.onnx","size":N,"bytes_needed":N},
 *                                                  {"name":"onnx/model.onnx_data","size":N,"bytes_needed":N}]}
 * files[0] is the .onnx itself. The glue calls it before downloading the data files, with a source that
 * reports a placeholder size for files it does not have yet; bytes_needed is the end of the furthest
 * locator into each file. NULL on failure (see qw_wasm_last_error). */
EMSCRIPTEN_KEEPALIVE char *qw_wasm_onnx_files(int fs_id, const char *onnx_name) {
    qw_error err = {0};
    qw_fs fs;
    if (!js_fs_make(fs_id, &fs)) {
        qw_error_set(&err, QW_E_NOMEM, "%s: out of memory", onnx_name);
        set_err(&err);
        return NULL;
    }
    qw_onnx_model *m = NULL;
    qw_status st = qw_onnx_load(&fs, onnx_name, &m, &err);
    qw_fs_close(&fs);
    if (st != QW_OK) {
        set_err(&err);
        return NULL;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "onnx", onnx_name);
    cJSON_AddNumberToObject(o, "opset", (double)qw_onnx_opset_version(m, ""));
    cJSON_AddNumberToObject(o, "ir_version", (double)m->ir_version);
    cJSON *files = cJSON_AddArrayToObject(o, "files");
    for (int32_t i = 0; i < m->n_files; i++) {
        cJSON *f = cJSON_CreateObject();
        cJSON_AddStringToObject(f, "name", m->files[i].name);
        cJSON_AddNumberToObject(f, "size", (double)m->files[i].size);
        cJSON_AddNumberToObject(f, "bytes_needed", (double)m->files[i].bytes_needed);
        cJSON_AddItemToArray(files, f);
    }
    qw_onnx_free(m);
    char *json = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!json) {
        qw_error_set(&err, QW_E_NOMEM, "%s: out of memory", onnx_name);
        set_err(&err);
    }
    return json;
}

/* The .onnx files a load of source fs_id tries, in order (qw_onnx_candidates: the rule every source uses), as
 * JSON (malloc'd: JS releases it with qw_wasm_free): {"candidates":[{"name":"onnx/model_q4f16.onnx",
 * "from":"transformers.js_config.dtype"}, ...]}. onnx_file and dtype may be NULL or "". Only config.json and
 * genai_config.json are read; the URL glue probes the names over HTTP. NULL on failure. */
EMSCRIPTEN_KEEPALIVE char *qw_wasm_onnx_candidates(int fs_id, const char *onnx_file, const char *dtype) {
    qw_error err = {0};
    qw_fs fs;
    char names[8][QW_FS_NAME_MAX];
    const char *why[8];
    int n = 0;
    if (!js_fs_make(fs_id, &fs)) {
        qw_error_set(&err, QW_E_NOMEM, "config.json: out of memory");
        set_err(&err);
        return NULL;
    }
    qw_status st = qw_onnx_candidates(&fs, onnx_file && *onnx_file ? onnx_file : NULL, dtype && *dtype ? dtype : NULL,
                                      names, why, 8, &n, &err);
    qw_fs_close(&fs);
    if (st != QW_OK) {
        set_err(&err);
        return NULL;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON *a = cJSON_AddArrayToObject(o, "candidates");
    for (int i = 0; i < n; i++) {
        cJSON *c = cJSON_CreateObject();
        cJSON_AddStringToObject(c, "name", names[i]);
        cJSON_AddStringToObject(c, "from", why[i]);
        cJSON_AddItemToArray(a, c);
    }
    char *json = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!json) {
        qw_error_set(&err, QW_E_NOMEM, "config.json: out of memory");
        set_err(&err);
    }
    return json;
}

/* ---- models -------------------------------------------------------------------------------------------- */

typedef struct qw_wasm_model {
    qw_model *m;
    qw_fs fs;
} qw_wasm_model;

static void on_progress(void *user, const char *phase, uint64_t done, uint64_t total) {
    qw_js_progress(phase, (double)done, (double)total);
}

static double jnum(const cJSON *o, const char *k, double def) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : cJSON_IsBool(v) ? (cJSON_IsTrue(v) ? 1 : 0) : def;
}

/* The index of string option k among names (an enum in their order); 0 when absent; -1 for another name, which
 * qw_model_load refuses by the option's name. */
static int jname(const cJSON *o, const char *k, const char *const *names, int n) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!cJSON_IsString(v)) return 0;
    for (int i = 0; i < n; i++)
        if (!strcmp(v->valuestring, names[i])) return i;
    return -1;
}

/* Loads the model folder of source fs_id. opts_json (may be NULL or ""):
 *   {"onnx_file":"onnx/model_q4f16.onnx", "dtype":"q4f16", "threads":0, "mem_cap_mb":0, "exact_lm_head":false,
 *    "embedding_on_demand":false, "max_context":0, "kv_cache":"fp16"|"int8"|"fp32", "profile":false,
 *    "lookahead":"auto"|"on"|"off", "external_decoder":false}
 * Progress is reported through qw_js_progress. The source must stay registered until qw_wasm_model_free
 * (weights may be paged from it). Returns a handle, or 0 (see qw_wasm_last_error). */
EMSCRIPTEN_KEEPALIVE qw_wasm_model *qw_wasm_model_load(int fs_id, const char *opts_json) {
    qw_error err = {0};
    cJSON *o = opts_json && *opts_json ? cJSON_Parse(opts_json) : cJSON_CreateObject();
    if (!o) {
        qw_error_set(&err, QW_E_ARG, "model options: invalid JSON");
        set_err(&err);
        return NULL;
    }
    qw_wasm_model *w = calloc(1, sizeof *w);
    if (!w || !js_fs_make(fs_id, &w->fs)) {
        free(w);
        cJSON_Delete(o);
        qw_error_set(&err, QW_E_NOMEM, "qw_model_load: out of memory");
        set_err(&err);
        return NULL;
    }
    /* numbers checked before the casts to int (undefined for 1e300 or NaN), named when refused */
    static const struct {
        const char *k;
        double hi;
    } lim[] = {{"threads", 1024}, {"mem_cap_mb", 4194304}, {"max_context", 16777216}};
    for (int i = 0; i < 3; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, lim[i].k);
        if (v && !cJSON_IsNull(v) &&
            (!cJSON_IsNumber(v) || !(v->valuedouble >= 0 && v->valuedouble <= lim[i].hi) ||
             (i != 1 && v->valuedouble != (double)(int64_t)v->valuedouble))) {
            qw_error_set(&err, QW_E_ARG, "model options: %s must be %s from 0 to %.0f", lim[i].k,
                         i == 1 ? "a number" : "an integer", lim[i].hi);
            set_err(&err);
            qw_fs_close(&w->fs);
            free(w);
            cJSON_Delete(o);
            return NULL;
        }
    }
    qw_load_opts lo = {0};
    const cJSON *onnx = cJSON_GetObjectItemCaseSensitive(o, "onnx_file");
    lo.onnx_file = cJSON_IsString(onnx) && onnx->valuestring[0] ? onnx->valuestring : NULL;
    const cJSON *dtype = cJSON_GetObjectItemCaseSensitive(o, "dtype");
    lo.dtype = cJSON_IsString(dtype) && dtype->valuestring[0] ? dtype->valuestring : NULL;
    lo.threads = (int)jnum(o, "threads", 0);
    lo.mem_cap_bytes = (uint64_t)(jnum(o, "mem_cap_mb", 0) * 1048576.0);
    lo.exact_lm_head = (int)jnum(o, "exact_lm_head", 0);
    lo.embedding_on_demand = (int)jnum(o, "embedding_on_demand", 0);
    lo.max_context = (int)jnum(o, "max_context", 0);
    static const char *const kv_names[] = {"auto", "fp16", "int8", "fp32"}; /* qw_kv_cache_type's order */
    static const char *const la_names[] = {"auto", "on", "off"};            /* qw_lookahead_mode's order */
    lo.kv_cache = jname(o, "kv_cache", kv_names, 4);
    lo.lookahead = jname(o, "lookahead", la_names, 3);
    lo.profile = (int)jnum(o, "profile", 0);
    lo.external_decoder = (int)jnum(o, "external_decoder", 0);
    lo.progress = on_progress;
    qw_status st = qw_model_load(&w->fs, &lo, &w->m, &err);
    cJSON_Delete(o);
    if (st != QW_OK) {
        set_err(&err);
        qw_fs_close(&w->fs);
        free(w);
        return NULL;
    }
    return w;
}

/* Frees the model (0 is accepted). The JS source may be unregistered afterwards. */
EMSCRIPTEN_KEEPALIVE void qw_wasm_model_free(qw_wasm_model *w) {
    if (!w) return;
    qw_model_free(w->m);
    qw_fs_close(&w->fs);
    free(w);
}

/* qw_model_set_draft: draft (0: none) drafts for target's generations; free target before draft. Returns a status
 * (see qw_wasm_last_error). */
EMSCRIPTEN_KEEPALIVE int qw_wasm_model_set_draft(qw_wasm_model *target, qw_wasm_model *draft) {
    qw_error err = {0};
    if (!target) {
        qw_error_set(&err, QW_E_ARG, "set_draft: no model");
        set_err(&err);
        return QW_E_ARG;
    }
    qw_status st = qw_model_set_draft(target->m, draft ? draft->m : NULL, &err);
    if (st != QW_OK) set_err(&err);
    return (int)st;
}

/* qw_model_info_json / qw_model_stats_json (owned by the model, valid until the next call on it). */
EMSCRIPTEN_KEEPALIVE const char *qw_wasm_model_info(qw_wasm_model *w) { return w ? qw_model_info_json(w->m) : "{}"; }
EMSCRIPTEN_KEEPALIVE const char *qw_wasm_model_stats(qw_wasm_model *w) { return w ? qw_model_stats_json(w->m) : "{}"; }

/* ---- text ---------------------------------------------------------------------------------------------- */

/* Encodes len bytes of UTF-8 text. Returns the ids (malloc'd int32 array; count in *n_out), or 0 on failure.
 * An empty text gives a valid pointer and *n_out = 0. */
EMSCRIPTEN_KEEPALIVE int32_t *qw_wasm_tokenize(qw_wasm_model *w, const char *text, size_t len, int *n_out) {
    qw_error err = {0};
    int32_t *ids = NULL;
    size_t n = 0;
    *n_out = 0;
    if (!w) {
        qw_error_set(&err, QW_E_ARG, "tokenize: no model");
        set_err(&err);
        return NULL;
    }
    qw_status st = qw_tokenize(w->m, text, len, &ids, &n, &err);
    if (st != QW_OK) {
        set_err(&err);
        free(ids);
        return NULL;
    }
    if (!ids) ids = malloc(sizeof(int32_t));
    *n_out = (int)n;
    return ids;
}

/* Decodes n ids into UTF-8 text (malloc'd, NUL-terminated), or 0 on failure. */
EMSCRIPTEN_KEEPALIVE char *qw_wasm_detokenize(qw_wasm_model *w, const int32_t *ids, int n) {
    qw_error err = {0};
    char *text = NULL;
    if (!w) {
        qw_error_set(&err, QW_E_ARG, "detokenize: no model");
        set_err(&err);
        return NULL;
    }
    if (qw_detokenize(w->m, ids, (size_t)(n < 0 ? 0 : n), &text, &err) != QW_OK) {
        set_err(&err);
        free(text);
        return NULL;
    }
    return text;
}

/* Renders a chat (JSON array of messages; tools_json a JSON array of tools or 0) with the model's template
 * (malloc'd), or 0 on failure. */
EMSCRIPTEN_KEEPALIVE char *qw_wasm_chat_render(qw_wasm_model *w, const char *messages_json, const char *tools_json,
                                               int add_generation_prompt) {
    qw_error err = {0};
    char *out = NULL;
    if (!w) {
        qw_error_set(&err, QW_E_ARG, "chat: no model");
        set_err(&err);
        return NULL;
    }
    if (qw_chat_render_tools(w->m, messages_json, tools_json, add_generation_prompt, &out, &err) != QW_OK) {
        set_err(&err);
        free(out);
        return NULL;
    }
    return out;
}

/* ---- generation ------------------------------------------------------------------------------------------ */

typedef struct qw_wasm_gen {
    qw_gen *g;
    qw_wasm_event ev;
    char **stop;
    int n_stop;
    int32_t *bias_ids;
    float *bias_values;
} qw_wasm_gen;

static void gen_release(qw_wasm_gen *h) {
    if (!h) return;
    qw_gen_free(h->g);
    for (int i = 0; i < h->n_stop; i++) free(h->stop[i]);
    free(h->stop);
    free(h->bias_ids);
    free(h->bias_values);
    free(h);
}

/* Starts generating after n prompt ids. params_json (may be NULL or ""): the model's generation_config.json
 * values, overridden by any of
 *   {"max_tokens","temperature","top_k","top_p","min_p","repetition_penalty","seed","prefill_chunk",
 *    "ignore_eos", "speculative" (QW_SPEC_OFF/ON/AUTO: 0/1/2), "spec_max_draft", "spec_no_lookup", "stop":["..."],
 *    "bias":{"<id>": value}}
 * Resets the abort flag. Returns a generator handle, or 0 (see qw_wasm_last_error). */
EMSCRIPTEN_KEEPALIVE qw_wasm_gen *qw_wasm_gen_begin(qw_wasm_model *w, const int32_t *ids, int n,
                                                    const char *params_json) {
    qw_error err = {0};
    if (!w) {
        qw_error_set(&err, QW_E_ARG, "generate: no model");
        set_err(&err);
        return NULL;
    }
    cJSON *o = params_json && *params_json ? cJSON_Parse(params_json) : cJSON_CreateObject();
    qw_wasm_gen *h = calloc(1, sizeof *h);
    if (!o || !h) {
        qw_error_set(&err, o ? QW_E_NOMEM : QW_E_ARG, o ? "generate: out of memory" : "generate options: invalid JSON");
        set_err(&err);
        cJSON_Delete(o);
        free(h);
        return NULL;
    }
    qw_gen_params p;
    qw_gen_params_init(&p);
    qw_gen_params_from_model(w->m, &p);
    /* integers are range-checked before the casts (a cast of 1e300 to int is undefined); the sampling values are
     * checked by qw_gen_begin */
    static const char *const ikeys[] = {"max_tokens", "top_k", "seed", "prefill_chunk"};
    for (int i = 0; i < 4; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, ikeys[i]);
        double x = cJSON_IsNumber(v) ? v->valuedouble : 0, hi = i == 2 ? 9007199254740991.0 : 2147483647.0;
        if (v && !cJSON_IsNull(v) && (!cJSON_IsNumber(v) || !(x >= 0 && x <= hi) || x != (double)(int64_t)x)) {
            qw_error_set(&err, QW_E_ARG, "generate: %s must be an integer from 0 to %.0f", ikeys[i], hi);
            set_err(&err);
            cJSON_Delete(o);
            free(h);
            return NULL;
        }
    }
    p.max_tokens = (int)jnum(o, "max_tokens", p.max_tokens);
    p.temperature = (float)jnum(o, "temperature", p.temperature);
    p.top_k = (int)jnum(o, "top_k", p.top_k);
    p.top_p = (float)jnum(o, "top_p", p.top_p);
    p.min_p = (float)jnum(o, "min_p", p.min_p);
    p.repetition_penalty = (float)jnum(o, "repetition_penalty", p.repetition_penalty);
    p.seed = (uint64_t)jnum(o, "seed", (double)p.seed);
    p.prefill_chunk = (int)jnum(o, "prefill_chunk", p.prefill_chunk);
    p.ignore_eos = (int)jnum(o, "ignore_eos", p.ignore_eos);
    p.speculative = (int)jnum(o, "speculative", p.speculative);
    if (p.speculative < QW_SPEC_OFF || p.speculative > QW_SPEC_AUTO) p.speculative = QW_SPEC_OFF;
    p.spec_max_draft = (int)jnum(o, "spec_max_draft", p.spec_max_draft);
    p.spec_no_lookup = (int)jnum(o, "spec_no_lookup", 0) != 0;
    int oom = 0;
    const cJSON *stop = cJSON_GetObjectItemCaseSensitive(o, "stop");
    if (cJSON_IsArray(stop) && cJSON_GetArraySize(stop) > 0) {
        int ns = cJSON_GetArraySize(stop);
        h->stop = calloc((size_t)ns, sizeof *h->stop);
        oom |= !h->stop;
        const cJSON *s;
        cJSON_ArrayForEach(s, stop) {
            if (oom || !cJSON_IsString(s) || !s->valuestring[0]) continue;
            if (!(h->stop[h->n_stop] = strdup(s->valuestring)))
                oom = 1;
            else
                h->n_stop++;
        }
        p.stop = (const char *const *)h->stop;
        p.n_stop = h->n_stop;
    }
    const cJSON *bias = cJSON_GetObjectItemCaseSensitive(o, "bias");
    if (cJSON_IsObject(bias) && cJSON_GetArraySize(bias) > 0 && !oom) {
        int nb = cJSON_GetArraySize(bias), k = 0;
        h->bias_ids = malloc((size_t)nb * sizeof *h->bias_ids);
        h->bias_values = malloc((size_t)nb * sizeof *h->bias_values);
        oom |= !h->bias_ids || !h->bias_values;
        const cJSON *b;
        if (!oom) cJSON_ArrayForEach(b, bias) {
                if (!cJSON_IsNumber(b)) continue;
                long long id = strtoll(b->string, NULL, 10); /* out of range: -1, which qw_gen_begin refuses */
                h->bias_ids[k] = id >= 0 && id <= INT32_MAX ? (int32_t)id : -1;
                h->bias_values[k++] = (float)b->valuedouble;
            }
        p.bias_ids = h->bias_ids;
        p.bias_values = h->bias_values;
        p.n_bias = k;
    }
    cJSON_Delete(o);
    if (oom) {
        gen_release(h);
        qw_error_set(&err, QW_E_NOMEM, "generate: out of memory");
        set_err(&err);
        return NULL;
    }
    g_abort = 0;
    p.abort_flag = &g_abort;
    if (qw_gen_begin(w->m, ids, (size_t)(n < 0 ? 0 : n), &p, &h->g, &err) != QW_OK) {
        set_err(&err);
        gen_release(h);
        return NULL;
    }
    return h;
}

/* One step (a prefill chunk or one token). Returns 0 and fills the event (qw_wasm_gen_event), or a status
 * (QW_E_ABORTED after an abort; the generator must then be freed, the model stays usable). */
EMSCRIPTEN_KEEPALIVE int qw_wasm_gen_next(qw_wasm_gen *h) {
    qw_error err = {0};
    if (!h) {
        qw_error_set(&err, QW_E_ARG, "generate: no generator");
        set_err(&err);
        return QW_E_ARG;
    }
    qw_gen_event ev;
    memset(&ev, 0, sizeof ev);
    qw_status st = qw_gen_next(h->g, &ev, &err);
    if (st != QW_OK) {
        set_err(&err);
        return (int)st;
    }
    qw_wasm_event *e = &h->ev;
    e->kind = ev.kind;
    e->id = ev.id;
    e->n_prompt = ev.n_prompt;
    e->n_prompt_done = ev.n_prompt_done;
    e->n_generated = ev.n_generated;
    e->text = (int32_t)(intptr_t)ev.text;
    e->text_len = (int32_t)ev.text_len;
    e->stop_reason = ev.kind == QW_GEN_DONE ? (int32_t)(intptr_t)ev.stop_reason : 0;
    e->prefill_ms = ev.prefill_ms;
    e->decode_ms = ev.decode_ms;
    e->step_ms = ev.step_ms;
    e->feed_ids = (int32_t)(intptr_t)ev.feed_ids;
    e->n_feed = ev.n_feed;
    e->n_past = ev.n_past;
    e->spec_drafted = ev.spec_drafted;
    e->spec_accepted = ev.spec_accepted;
    e->spec_steps = ev.spec_steps;
    e->draft_drafted = ev.draft_drafted;
    e->draft_accepted = ev.draft_accepted;
    e->draft_ms = ev.draft_ms;
    return QW_OK;
}

/* External decoder: hands over the logits (n floats, copied) asked for by the QW_GEN_FEED event just
 * returned. Returns 0 or a status (see qw_wasm_last_error). */
EMSCRIPTEN_KEEPALIVE int qw_wasm_gen_logits(qw_wasm_gen *h, const float *logits, int n) {
    qw_error err = {0};
    if (!h) {
        qw_error_set(&err, QW_E_ARG, "generate: no generator");
        set_err(&err);
        return QW_E_ARG;
    }
    qw_status st = qw_gen_set_logits(h->g, logits, (size_t)(n < 0 ? 0 : n), &err);
    if (st != QW_OK) set_err(&err);
    return (int)st;
}

/* The address of the generator's event (qw_wasm_event, qw_wasm_abi.h). */
EMSCRIPTEN_KEEPALIVE const qw_wasm_event *qw_wasm_gen_event(const qw_wasm_gen *h) { return h ? &h->ev : NULL; }

/* All ids generated so far (owned by the generator); count in *n_out. */
EMSCRIPTEN_KEEPALIVE const int32_t *qw_wasm_gen_ids(const qw_wasm_gen *h, int *n_out) {
    size_t n = 0;
    const int32_t *ids = h ? qw_gen_ids(h->g, &n) : NULL;
    *n_out = (int)n;
    return ids;
}

/* Frees a generator (0 is accepted). */
EMSCRIPTEN_KEEPALIVE void qw_wasm_gen_free(qw_wasm_gen *h) { gen_release(h); }

/* ---- the KV cache: the prompt cache's blobs (qw_model_kv_export / import) ---- */

/* The ids the model's KV cache holds (owned by the model); *n_out their count. */
EMSCRIPTEN_KEEPALIVE const int32_t *qw_wasm_kv_ids(qw_wasm_model *w, int *n_out) {
    size_t n = 0;
    const int32_t *ids = w ? qw_model_kv_ids(w->m, &n) : NULL;
    *n_out = (int)n;
    return ids;
}

/* The state of the first n cached positions: a malloc'd blob (qw_wasm_free) of *len_out bytes, or 0. */
EMSCRIPTEN_KEEPALIVE void *qw_wasm_kv_export(qw_wasm_model *w, int n, int *len_out) {
    qw_error err = {0};
    void *blob = NULL;
    size_t len = 0;
    *len_out = 0;
    if (!w || n < 0) {
        qw_error_set(&err, QW_E_ARG, "no model");
        set_err(&err);
        return NULL;
    }
    if (qw_model_kv_export(w->m, (size_t)n, &blob, &len, &err) != QW_OK) {
        set_err(&err);
        return NULL;
    }
    *len_out = (int)len;
    return blob;
}

/* Replaces the model's KV cache with a blob; returns a qw_status (the message: qw_wasm_last_error). */
EMSCRIPTEN_KEEPALIVE int qw_wasm_kv_import(qw_wasm_model *w, const void *blob, int len) {
    qw_error err = {0};
    qw_status st = w && len >= 0 ? qw_model_kv_import(w->m, blob, (size_t)len, &err)
                                 : qw_error_set(&err, QW_E_ARG, "no model");
    if (st != QW_OK) set_err(&err);
    return (int)st;
}
