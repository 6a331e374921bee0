/* qw_cli_run.c - `qwasm run MODEL_DIR`: generate from a prompt, raw ids or an interactive chat.
 * Uses only the public API (qwasm.h), as any embedder would. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "cJSON.h"
#include "qwasm.h"
#include "qw_cli.h"
#if !defined(__wasi__)
#include <sys/resource.h>
#endif

#define MAX_STOPS 16
/* the library's limits (qw_sampler_params_check, qw_model_load, the pool): refused here first, naming the flag */
#define QW_CLI_MAX_CONTEXT (1 << 24)
#define QW_CLI_MAX_THREADS 64
#define QW_SAMPLER_MAX_TEMPERATURE 1e4
#define QW_SAMPLER_MAX_PENALTY 1e4

typedef struct run_args {
    const char *dir, *prompt, *prompt_ids, *system, *onnx, *dump, *dump_dir, *prompt_cache, *draft;
    int chat, raw, json, threads, greedy, exact_lm_head, embedding_resident, profile, max_context, kv_cache, prefetch,
        lookahead;
    double mem_cap_mb, draft_mem_cap_mb;
    int set_draft_cap;
    const char *stops[MAX_STOPS];
    int n_stops;
    qw_gen_params gp;
    int set_temp, set_topk, set_topp, set_minp, set_rep, set_max;
} run_args;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double peak_rss_mb(void) {
#if defined(__wasi__)
    return 0;
#else
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
    return ru.ru_maxrss / 1024.0; /* Linux reports KiB */
#endif
}

static void usage(void) {
    fprintf(stderr,
            "usage: qwasm run MODEL_DIR [--prompt TEXT | --prompt-ids 1,2,3 | --chat] [options]\n"
            "  --prompt TEXT        a user message, rendered with the chat template (--raw: no template)\n"
            "  --prompt-ids IDS     raw prompt ids, comma-separated (no template, no tokenizer needed)\n"
            "  --chat               interactive multi-turn chat on stdin\n"
            "  --system TEXT        system prompt (default: the template's)\n"
            "  --max-tokens N       new tokens (default 256)\n"
            "  --prefill-chunk N    prompt positions per prefill step (default 128)\n"
            "  --greedy             argmax decoding (same as --temperature 0)\n"
            "  --temperature F --top-k N --top-p F --min-p F --repeat-penalty F --seed N\n"
            "  --stop TEXT          stop string (repeatable)\n"
            "  --ignore-eos         keep generating past the eos ids (benchmarks)\n"
            "  --speculative MODE   prompt-lookup speculative decoding: auto (default: on, paused while\n"
            "                       few drafts are accepted), on, off; the tokens are the same\n"
            "  --spec-draft N       drafted tokens verified per step at most (default 8, at most 16)\n"
            "  --draft DIR          a draft model of the same tokenizer (Qwen2.5-0.5B for 1.5B): its greedy\n"
            "                       continuation is verified when prompt lookup finds no draft; the same tokens\n"
            "  --draft-mem-cap-mb N cap the draft's resident weights (default: --mem-cap-mb's value)\n"
            "  --spec-no-lookup     no prompt-lookup drafts, only the draft model's (benchmarks)\n"
            "  --threads N          compute threads (default: all)\n"
            "  --mem-cap-mb N       cap resident weights; the rest is paged from disk\n"
            "  --prefetch           under --mem-cap-mb, read the next paged weight ahead (cold cache, slow disk)\n"
            "  --max-context N      longest context (default: the model's limit; the KV cache grows as needed)\n"
            "  --kv-cache TYPE      KV cache rows: fp16 (default for fp16 models), int8, fp32\n"
            "  --lookahead MODE     decode look-ahead: auto (default: on natively, timed on decode steps in wasm), on, "
            "off\n"
            "  --prompt-cache FILE  keep the prompt's KV state in FILE: a later run whose prompt starts with the\n"
            "                       same tokens skips their prefill (a stale or damaged FILE is rebuilt)\n"
            "  --onnx FILE          which .onnx in the folder (default: from config.json)\n"
            "  --exact-lm-head      keep the exact fp16 lm_head path\n"
            "  --embedding-resident keep the tied embedding in memory (default: its rows are read from the\n"
            "                       file as needed once the int8 lm_head replaces its product)\n"
            "  --profile            print per-op time at the end (stderr, or in --json)\n"
            "  --json               one JSON object per token, then a summary object\n"
            "  --dump NAMES --dump-dir DIR  write the first value of each named graph tensor (comma-separated\n"
            "                       ONNX value names) as float32 to DIR/<i>.f32, listed in DIR/index.json\n");
}

/* Flag values are parsed whole ("1e3", "abc", "12x", "" are refused, as is anything outside [lo, hi]); a refusal
 * prints a usage error naming the flag and returns 0. */
static int flag_int(const char *flag, const char *v, long long lo, long long hi, long long *out) {
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (end == v || *end || errno || x < lo || x > hi) {
        fprintf(stderr, "qwasm run: %s '%s': an integer from %lld to %lld expected\n", flag, v, lo, hi);
        return 0;
    }
    *out = x;
    return 1;
}

/* lo_open: lo itself is refused */
static int flag_num(const char *flag, const char *v, double lo, int lo_open, double hi, double *out) {
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (end == v || *end || errno || !(lo_open ? x > lo : x >= lo) || !(x <= hi)) { /* NaN fails */
        fprintf(stderr, "qwasm run: %s '%s': a number %s %g and at most %g expected\n", flag, v,
                lo_open ? "above" : "from", lo, hi);
        return 0;
    }
    *out = x;
    return 1;
}

static int flag_u64(const char *flag, const char *v, uint64_t *out) {
    char *end;
    errno = 0;
    unsigned long long x = v[0] >= '0' && v[0] <= '9' ? strtoull(v, &end, 10) : 0; /* strtoull takes "-1" */
    if (!(v[0] >= '0' && v[0] <= '9') || *end || errno) {
        fprintf(stderr, "qwasm run: %s '%s': an integer from 0 to %llu expected\n", flag, v,
                (unsigned long long)UINT64_MAX);
        return 0;
    }
    *out = x;
    return 1;
}

static int parse_args(int argc, char **argv, run_args *a) {
    memset(a, 0, sizeof *a);
    qw_gen_params_init(&a->gp);
    a->gp.speculative = QW_SPEC_AUTO;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define NEED_V() \
    do { \
        if (!v) { \
            fprintf(stderr, "qwasm run: %s needs a value\n", o); \
            return 2; \
        } \
        i++; \
    } while (0)
        if (!strcmp(o, "--prompt")) {
            NEED_V();
            a->prompt = v;
        } else if (!strcmp(o, "--prompt-ids")) {
            NEED_V();
            a->prompt_ids = v;
        } else if (!strcmp(o, "--system")) {
            NEED_V();
            a->system = v;
        } else if (!strcmp(o, "--onnx")) {
            NEED_V();
            a->onnx = v;
        } else if (!strcmp(o, "--dump")) {
            NEED_V();
            a->dump = v;
        } else if (!strcmp(o, "--dump-dir")) {
            NEED_V();
            a->dump_dir = v;
        } else if (!strcmp(o, "--chat"))
            a->chat = 1;
        else if (!strcmp(o, "--raw"))
            a->raw = 1;
        else if (!strcmp(o, "--json"))
            a->json = 1;
        else if (!strcmp(o, "--greedy"))
            a->greedy = 1;
        else if (!strcmp(o, "--exact-lm-head"))
            a->exact_lm_head = 1;
        else if (!strcmp(o, "--embedding-resident"))
            a->embedding_resident = 1;
        else if (!strcmp(o, "--profile"))
            a->profile = 1;
        else if (!strcmp(o, "--prefetch"))
            a->prefetch = 1;
        else if (!strcmp(o, "--ignore-eos"))
            a->gp.ignore_eos = 1;
#define INT_FLAG(dst, lo, hi) \
    do { \
        long long x_; \
        NEED_V(); \
        if (!flag_int(o, v, lo, hi, &x_)) return 2; \
        dst = (int)x_; \
    } while (0)
#define NUM_FLAG(dst, lo, open, hi) \
    do { \
        double x_; \
        NEED_V(); \
        if (!flag_num(o, v, lo, open, hi, &x_)) return 2; \
        dst = x_; \
    } while (0)
        else if (!strcmp(o, "--max-tokens")) {
            INT_FLAG(a->gp.max_tokens, 1, QW_CLI_MAX_CONTEXT);
            a->set_max = 1;
        } else if (!strcmp(o, "--temperature")) {
            NUM_FLAG(a->gp.temperature, 0, 0, QW_SAMPLER_MAX_TEMPERATURE);
            a->set_temp = 1;
        } else if (!strcmp(o, "--top-k")) {
            INT_FLAG(a->gp.top_k, 0, INT32_MAX);
            a->set_topk = 1;
        } else if (!strcmp(o, "--top-p")) {
            NUM_FLAG(a->gp.top_p, 0, 1, 1);
            a->set_topp = 1;
        } else if (!strcmp(o, "--min-p")) {
            NUM_FLAG(a->gp.min_p, 0, 0, 1);
            a->set_minp = 1;
        } else if (!strcmp(o, "--repeat-penalty")) {
            NUM_FLAG(a->gp.repetition_penalty, 0, 1, QW_SAMPLER_MAX_PENALTY);
            a->set_rep = 1;
        } else if (!strcmp(o, "--prefill-chunk"))
            INT_FLAG(a->gp.prefill_chunk, 1, QW_CLI_MAX_CONTEXT);
        else if (!strcmp(o, "--seed")) {
            NEED_V();
            if (!flag_u64(o, v, &a->gp.seed)) return 2;
        } else if (!strcmp(o, "--threads"))
            INT_FLAG(a->threads, 1, QW_CLI_MAX_THREADS);
        else if (!strcmp(o, "--mem-cap-mb"))
            NUM_FLAG(a->mem_cap_mb, 0, 1, 1 << 22); /* fractions: tiny test models */
        else if (!strcmp(o, "--max-context"))
            INT_FLAG(a->max_context, 1, QW_CLI_MAX_CONTEXT);
        else if (!strcmp(o, "--speculative")) {
            NEED_V();
            if (!strcmp(v, "auto"))
                a->gp.speculative = QW_SPEC_AUTO;
            else if (!strcmp(v, "on"))
                a->gp.speculative = QW_SPEC_ON;
            else if (!strcmp(v, "off"))
                a->gp.speculative = QW_SPEC_OFF;
            else {
                fprintf(stderr, "qwasm run: --speculative takes auto, on or off, not '%s'\n", v);
                return 2;
            }
        } else if (!strcmp(o, "--spec-draft"))
            INT_FLAG(a->gp.spec_max_draft, 1, 16); /* QW_SPEC_MAX_DRAFT */
        else if (!strcmp(o, "--draft")) {
            NEED_V();
            a->draft = v;
        } else if (!strcmp(o, "--draft-mem-cap-mb")) {
            NUM_FLAG(a->draft_mem_cap_mb, 0, 1, 1 << 22);
            a->set_draft_cap = 1;
        } else if (!strcmp(o, "--spec-no-lookup"))
            a->gp.spec_no_lookup = 1;
        else if (!strcmp(o, "--prompt-cache")) {
            NEED_V();
            a->prompt_cache = v;
        } else if (!strcmp(o, "--kv-cache")) {
            NEED_V();
            if (!strcmp(v, "fp16"))
                a->kv_cache = QW_KV_CACHE_F16;
            else if (!strcmp(v, "int8"))
                a->kv_cache = QW_KV_CACHE_INT8;
            else if (!strcmp(v, "fp32"))
                a->kv_cache = QW_KV_CACHE_F32;
            else {
                fprintf(stderr, "qwasm run: --kv-cache takes fp16, int8 or fp32, not '%s'\n", v);
                return 2;
            }
        } else if (!strcmp(o, "--lookahead")) {
            NEED_V();
            a->lookahead = !strcmp(v, "on")     ? QW_LOOKAHEAD_ON
                           : !strcmp(v, "off")  ? QW_LOOKAHEAD_OFF
                           : !strcmp(v, "auto") ? QW_LOOKAHEAD_AUTO
                                                : -1;
            if (a->lookahead < 0) {
                fprintf(stderr, "qwasm run: --lookahead takes auto, on or off, not '%s'\n", v);
                return 2;
            }
        }
#undef INT_FLAG
#undef NUM_FLAG
        else if (!strcmp(o, "--stop")) {
            NEED_V();
            if (a->n_stops == MAX_STOPS) {
                fprintf(stderr, "qwasm run: at most %d --stop\n", MAX_STOPS);
                return 2;
            }
            a->stops[a->n_stops++] = v;
        } else if (!strcmp(o, "--help") || !strcmp(o, "-h")) {
            usage();
            return 2;
        } else if (o[0] == '-') {
            fprintf(stderr, "qwasm run: unknown option %s\n", o);
            usage();
            return 2;
        } else if (!a->dir)
            a->dir = o;
        else {
            fprintf(stderr, "qwasm run: unexpected argument %s\n", o);
            return 2;
        }
#undef NEED_V
    }
    if (!a->dir) {
        usage();
        return 2;
    }
    if (!a->dump != !a->dump_dir) {
        fprintf(stderr, "qwasm run: --dump and --dump-dir go together\n");
        return 2;
    }
    if (a->draft && a->gp.speculative == QW_SPEC_OFF) {
        fprintf(stderr, "qwasm run: --draft drafts for speculative decoding: not with --speculative off\n");
        return 2;
    }
    if ((a->set_draft_cap || a->gp.spec_no_lookup) && !a->draft) {
        fprintf(stderr, "qwasm run: %s needs --draft\n", a->set_draft_cap ? "--draft-mem-cap-mb" : "--spec-no-lookup");
        return 2;
    }
    if (!!a->prompt + !!a->prompt_ids + a->chat != 1) {
        fprintf(stderr, "qwasm run: give exactly one of --prompt, --prompt-ids, --chat\n");
        return 2;
    }
    return 0;
}

/* Comma-separated ids -> malloc'd array. */
static int parse_ids(const char *s, int32_t **ids, size_t *n) {
    size_t cap = 16, k = 0;
    int32_t *v = malloc(cap * sizeof *v);
    if (!v) return -1;
    const char *p = s;
    while (*p) {
        char *end;
        long long x = strtoll(p, &end, 10); /* long is 32 bits on WASI */
        if (end == p || x < 0 || x > INT32_MAX) {
            free(v);
            return -1;
        }
        if (k == cap) {
            int32_t *nv = realloc(v, (cap *= 2) * sizeof *v);
            if (!nv) {
                free(v);
                return -1;
            }
            v = nv;
        }
        v[k++] = (int32_t)x;
        p = end;
        while (*p == ',' || *p == ' ') p++;
    }
    *ids = v;
    *n = k;
    return 0;
}

static void json_print_string(FILE *f, const char *s, size_t len) {
    char *tmp = malloc(len + 1);
    if (!tmp) return;
    memcpy(tmp, s, len);
    tmp[len] = 0;
    cJSON *str = cJSON_CreateString(tmp);
    char *out = str ? cJSON_PrintUnformatted(str) : NULL;
    fputs(out ? out : "\"\"", f);
    free(out);
    cJSON_Delete(str);
    free(tmp);
}

typedef struct run_result {
    char *text; /* all generated text (malloc'd) */
    size_t len, cap;
} run_result;

static void result_append(run_result *r, const char *s, size_t n) {
    if (r->len + n + 1 > r->cap) {
        size_t nc = (r->len + n + 1) * 2;
        char *nt = realloc(r->text, nc);
        if (!nt) return;
        r->text = nt;
        r->cap = nc;
    }
    memcpy(r->text + r->len, s, n);
    r->len += n;
    r->text[r->len] = 0;
}

/* ---- --dump: named intermediate tensors through the tap (qw_model_set_tap) ---- */
typedef struct dump_state {
    const char *dir;
    char *names;       /* the --dump list, split in place at the commas */
    const char **name; /* (n) */
    int *written;      /* (n) 1 once name[i] was written */
    int n, failed;
    cJSON *index;
} dump_state;

static float half_to_float(uint16_t h) {
    int e = (h >> 10) & 31, f = h & 1023;
    float v = e == 0    ? f * (1.0f / 16777216.0f)
              : e == 31 ? (f ? 0.0f / 0.0f : 1.0f / 0.0f)
                        : (1024 + f) * ldexpf(1.0f, e - 25);
    return h & 0x8000 ? -v : v;
}

static void dump_tap(void *user, const char *name, int dtype, int ndim, const int64_t *dims, const void *data) {
    dump_state *d = user;
    int i = 0;
    while (i < d->n && strcmp(d->name[i], name)) i++;
    if (i == d->n || d->written[i] || (dtype != 1 && dtype != 10)) return;
    d->written[i] = 1;
    size_t numel = 1;
    cJSON *shape = cJSON_CreateArray();
    for (int k = 0; k < ndim; k++) {
        numel *= (size_t)dims[k];
        cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)dims[k]));
    }
    char path[4096], file[32];
    snprintf(file, sizeof file, "%d.f32", i);
    snprintf(path, sizeof path, "%s/%s", d->dir, file);
    FILE *f = fopen(path, "wb");
    int ok = f != NULL;
    for (size_t j = 0; ok && j < numel; j++) {
        float v = dtype == 1 ? ((const float *)data)[j] : half_to_float(((const uint16_t *)data)[j]);
        ok = fwrite(&v, 4, 1, f) == 1;
    }
    if (f && fclose(f) != 0) ok = 0;
    if (!ok) {
        fprintf(stderr, "qwasm run: --dump: cannot write %s\n", path);
        d->failed = 1;
    }
    cJSON *e = cJSON_CreateObject();
    cJSON_AddStringToObject(e, "name", name);
    cJSON_AddStringToObject(e, "file", file);
    cJSON_AddStringToObject(e, "dtype", dtype == 1 ? "float32" : "float16");
    cJSON_AddItemToObject(e, "dims", shape);
    cJSON_AddItemToArray(d->index, e);
}

static int dump_begin(dump_state *d, const char *names, const char *dir) {
    memset(d, 0, sizeof *d);
    d->dir = dir;
    d->names = strdup(names);
    size_t len = strlen(names);
    d->name = calloc(len + 1, sizeof *d->name);
    d->written = calloc(len + 1, sizeof *d->written);
    d->index = cJSON_CreateArray();
    if (!d->names || !d->name || !d->written || !d->index) return -1;
    for (char *p = d->names; *p;) {
        char *c = strchr(p, ',');
        if (c) *c = 0;
        if (*p) d->name[d->n++] = p;
        if (!c) break;
        p = c + 1;
    }
    return 0;
}

/* Writes DIR/index.json; returns 0 when every file was written. */
static int dump_end(dump_state *d) {
    char path[4096];
    snprintf(path, sizeof path, "%s/index.json", d->dir);
    char *s = d->index ? cJSON_Print(d->index) : NULL;
    FILE *f = s ? fopen(path, "w") : NULL;
    int ok = f && fputs(s, f) >= 0;
    if (f && fclose(f) != 0) ok = 0;
    if (!ok) fprintf(stderr, "qwasm run: --dump: cannot write %s\n", path);
    for (int i = 0; i < d->n; i++)
        if (!d->written[i]) fprintf(stderr, "qwasm run: --dump: no float tensor named '%s' was computed\n", d->name[i]);
    free(s);
    cJSON_Delete(d->index);
    free(d->names);
    free(d->name);
    free(d->written);
    return ok && !d->failed ? 0 : -1;
}

/* --prompt-cache: the KV state of an earlier prompt, when FILE holds one this model reads; a missing file is
 * the first run, a stale or damaged one is reported and rebuilt after this run's prefill */
static void prompt_cache_load(qw_model *m, const char *file) {
    FILE *f = fopen(file, "rb");
    if (!f) return;
    void *buf = NULL;
    long len = -1;
    if (fseek(f, 0, SEEK_END) == 0 && (len = ftell(f)) > 0 && fseek(f, 0, SEEK_SET) == 0 &&
        (buf = malloc((size_t)len)) && fread(buf, 1, (size_t)len, f) != (size_t)len)
        len = -1;
    fclose(f);
    qw_error err = {0};
    if (!buf || len <= 0 || qw_model_kv_import(m, buf, (size_t)len, &err) != QW_OK)
        fprintf(stderr, "qwasm run: %s: %s; making it again\n", file, err.msg[0] ? err.msg : "unreadable");
    free(buf);
}

/* the KV state of the prompt's n_prompt positions into FILE (written next to it, then renamed: a run cut short
 * leaves the old file or none) */
static void prompt_cache_save(qw_model *m, const char *file, size_t n_prompt) {
    void *blob = NULL;
    size_t len = 0;
    qw_error err = {0};
    if (qw_model_kv_export(m, n_prompt, &blob, &len, &err) != QW_OK) {
        fprintf(stderr, "qwasm run: %s: %s\n", file, err.msg);
        return;
    }
    size_t fl = strlen(file);
    char *tmp = malloc(fl + 8);
    FILE *f = tmp ? (memcpy(tmp, file, fl), memcpy(tmp + fl, ".tmp", 5), fopen(tmp, "wb")) : NULL;
    int ok = f && fwrite(blob, 1, len, f) == len;
    if (f && fclose(f) != 0) ok = 0;
    if (ok && rename(tmp, file) != 0) ok = 0;
    if (!ok) {
        fprintf(stderr, "qwasm run: %s: could not be written\n", file);
        if (tmp) remove(tmp);
    }
    free(tmp);
    free(blob);
}

/* Generates after prompt ids, streaming to stdout; returns 0 on success. */
static int generate(qw_model *m, const run_args *a, const int32_t *prompt, size_t n_prompt, int have_text,
                    double load_s, run_result *res) {
    qw_error err = {0};
    qw_gen *g = NULL;
    size_t n_had = 0;
    double pc_ms = 0; /* reading and importing the prompt cache: part of the time to the first token */
    if (a->prompt_cache) {
        double t0 = now_s();
        prompt_cache_load(m, a->prompt_cache);
        pc_ms = (now_s() - t0) * 1000;
        const int32_t *had = qw_model_kv_ids(m, &n_had);
        size_t same = 0; /* positions of the file that this prompt reuses */
        while (same < n_had && same < n_prompt && had[same] == prompt[same]) same++;
        n_had = same;
    }
    if (qw_gen_begin(m, prompt, n_prompt, &a->gp, &g, &err) != QW_OK) {
        fprintf(stderr, "qwasm run: %s\n", err.msg);
        return 1;
    }
    qw_gen_event ev;
    int rc = 0;
    for (;;) {
        if (qw_gen_next(g, &ev, &err) != QW_OK) {
            fprintf(stderr, "qwasm run: %s\n", err.msg);
            rc = 1;
            break;
        }
        if (ev.kind == QW_GEN_TOKEN) {
            if (have_text) result_append(res, ev.text, ev.text_len);
            if (a->json) {
                printf("{\"id\":%d,\"step_ms\":%.2f", ev.id, ev.step_ms);
                if (have_text) {
                    fputs(",\"text\":", stdout);
                    json_print_string(stdout, ev.text, ev.text_len);
                }
                fputs("}\n", stdout);
            } else if (have_text) {
                fwrite(ev.text, 1, ev.text_len, stdout);
            } else {
                printf("%s%d", ev.n_generated > 1 ? "," : "", ev.id);
            }
            fflush(stdout);
        } else if (ev.kind == QW_GEN_DONE) {
            break;
        }
        /* the prompt is in the cache once its prefill is done: saved unless the file held all of it already */
        if (a->prompt_cache && ev.kind == QW_GEN_TOKEN && ev.n_generated == 1 && n_had + 1 < n_prompt)
            prompt_cache_save(m, a->prompt_cache, n_prompt);
    }
    if (rc == 0) {
        size_t n_ids = 0;
        const int32_t *ids = qw_gen_ids(g, &n_ids);
        double prefill_tps = ev.prefill_ms > 0 ? ev.n_prompt / (ev.prefill_ms / 1000.0) : 0;
        /* decode rate over the tokens after the first (the first comes from the prefill's logits) */
        double decode_tps = ev.decode_ms > 0 && n_ids > 1 ? (double)(n_ids - 1) / (ev.decode_ms / 1000.0) : 0;
        if (a->json) {
            fputs("{\"ids\":[", stdout);
            for (size_t i = 0; i < n_ids; i++) printf("%s%d", i ? "," : "", ids[i]);
            fputs("]", stdout);
            if (have_text) {
                fputs(",\"text\":", stdout);
                json_print_string(stdout, res->text ? res->text : "", res->len);
            }
            printf(",\"n_prompt\":%d,\"stop_reason\":\"%s\",\"load_s\":%.3f,\"prefill_tok_s\":%.2f,"
                   "\"decode_tok_s\":%.2f,\"peak_rss_mb\":%.1f,\"prefill_ms\":%.1f,\"prompt_cached\":%zu,"
                   "\"prompt_cache_ms\":%.1f",
                   ev.n_prompt, ev.stop_reason ? ev.stop_reason : "", load_s, prefill_tps, decode_tps, peak_rss_mb(),
                   ev.prefill_ms, n_had, pc_ms);
            printf(",\"spec_drafted\":%d,\"spec_accepted\":%d,\"spec_steps\":%d", ev.spec_drafted, ev.spec_accepted,
                   ev.spec_steps);
            if (a->draft)
                printf(",\"draft_drafted\":%d,\"draft_accepted\":%d,\"draft_ms\":%.1f", ev.draft_drafted,
                       ev.draft_accepted, ev.draft_ms);
            if (a->profile) printf(",\"stats\":%s", qw_model_stats_json(m));
            fputs("}\n", stdout);
        } else {
            fprintf(stderr,
                    "\n[%zu tokens, %s; load %.2f s, prefill %.1f tok/s, decode %.1f tok/s, peak RSS %.0f MB]\n", n_ids,
                    ev.stop_reason ? ev.stop_reason : "", load_s, prefill_tps, decode_tps, peak_rss_mb());
            if (a->profile) fprintf(stderr, "%s\n", qw_model_stats_json(m));
        }
    }
    qw_gen_free(g);
    return rc;
}

/* Renders [system?, ...history, user] through the model's chat template and tokenizes it. */
static int chat_prompt(qw_model *m, cJSON *messages, int32_t **ids, size_t *n) {
    qw_error err = {0};
    char *json = cJSON_PrintUnformatted(messages);
    char *text = NULL;
    int rc = 1;
    if (json && qw_chat_render(m, json, 1, &text, &err) == QW_OK &&
        qw_tokenize(m, text, strlen(text), ids, n, &err) == QW_OK)
        rc = 0;
    else
        fprintf(stderr, "qwasm run: %s\n", err.msg[0] ? err.msg : "out of memory");
    free(text);
    free(json);
    return rc;
}

static cJSON *message(const char *role, const char *content) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "role", role);
    cJSON_AddStringToObject(o, "content", content);
    return o;
}

int qw_cli_run(int argc, char **argv) {
    run_args a;
    int rc = parse_args(argc, argv, &a);
    if (rc) return rc;
    qw_error err = {0};
    qw_fs fs;
    if (qw_fs_open_dir(a.dir, &fs, &err) != QW_OK) {
        fprintf(stderr, "qwasm run: %s\n", err.msg);
        return 1;
    }
    qw_load_opts lo = {0};
    lo.onnx_file = a.onnx;
    lo.threads = a.threads;
    lo.mem_cap_bytes = (uint64_t)(a.mem_cap_mb * 1024 * 1024);
    lo.exact_lm_head = a.exact_lm_head;
    lo.prefetch = a.prefetch;
    lo.embedding_on_demand = !a.embedding_resident; /* files on disk: a row read is a pread from the page cache */
    lo.max_context = a.max_context;
    lo.kv_cache = a.kv_cache;
    lo.lookahead = a.lookahead;
    lo.profile = a.profile;
    double t0 = now_s();
    qw_model *m = NULL;
    if (qw_model_load(&fs, &lo, &m, &err) != QW_OK) {
        fprintf(stderr, "qwasm run: %s\n", err.msg);
        qw_fs_close(&fs);
        return 1;
    }
    /* the draft model: its own folder and cap, the target's threads (it runs on the target's pool) */
    qw_fs dfs;
    qw_model *dm = NULL;
    if (a.draft) {
        qw_load_opts dlo = lo;
        dlo.onnx_file = NULL;
        dlo.threads = 1;
        dlo.profile = 0;
        dlo.mem_cap_bytes = a.set_draft_cap ? (uint64_t)(a.draft_mem_cap_mb * 1024 * 1024) : lo.mem_cap_bytes;
        int opened = qw_fs_open_dir(a.draft, &dfs, &err) == QW_OK;
        if (!opened || qw_model_load(&dfs, &dlo, &dm, &err) != QW_OK || qw_model_set_draft(m, dm, &err) != QW_OK) {
            fprintf(stderr, "qwasm run: --draft %s: %s\n", a.draft, err.msg);
            qw_model_free(dm);
            if (opened) qw_fs_close(&dfs);
            qw_model_free(m);
            qw_fs_close(&fs);
            return 1;
        }
    }
    double load_s = now_s() - t0;
    for (const char *w = qw_model_warnings(m); *w;) { /* generation_config.json values replaced by defaults */
        const char *e = strchr(w, '\n');
        int l = e ? (int)(e - w) : (int)strlen(w);
        fprintf(stderr, "qwasm run: warning: %.*s\n", l, w);
        w += l + (e != NULL);
    }

    /* the model's generation_config.json gives the sampling defaults; flags override them */
    qw_gen_params defaults = a.gp;
    qw_gen_params_from_model(m, &a.gp);
    if (a.set_temp) a.gp.temperature = defaults.temperature;
    if (a.set_topk) a.gp.top_k = defaults.top_k;
    if (a.set_topp) a.gp.top_p = defaults.top_p;
    if (a.set_minp) a.gp.min_p = defaults.min_p;
    if (a.set_rep) a.gp.repetition_penalty = defaults.repetition_penalty;
    if (a.set_max) a.gp.max_tokens = defaults.max_tokens;
    a.gp.seed = defaults.seed;
    a.gp.ignore_eos = defaults.ignore_eos;
    if (a.greedy) {
        a.gp.temperature = 0;
        a.gp.repetition_penalty = 1;
    }
    a.gp.stop = a.stops;
    a.gp.n_stop = a.n_stops;

    dump_state dump;
    if (a.dump) {
        if (dump_begin(&dump, a.dump, a.dump_dir) != 0) {
            fprintf(stderr, "qwasm run: out of memory\n");
            qw_model_free(m);
            if (dm) {
                qw_model_free(dm);
                qw_fs_close(&dfs);
            }
            qw_fs_close(&fs);
            return 1;
        }
        qw_model_set_tap(m, dump_tap, &dump); /* after the load: its warm-up step is not dumped */
    }
    int have_text = qw_model_has_tokenizer(m);
    run_result res = {0};
    int32_t *ids = NULL;
    size_t n = 0;
    if (a.prompt_ids) {
        if (parse_ids(a.prompt_ids, &ids, &n) != 0 || n == 0) {
            fprintf(stderr, "qwasm run: --prompt-ids: expected comma-separated non-negative ids\n");
            rc = 2;
        } else {
            if (!have_text)
                fprintf(stderr, "qwasm run: warning: %s; printing ids only, text is omitted\n",
                        qw_model_tokenizer_error(m));
            rc = generate(m, &a, ids, n, have_text, load_s, &res);
        }
    } else if (!have_text) {
        fprintf(stderr, "qwasm run: %s; use --prompt-ids\n", qw_model_tokenizer_error(m));
        rc = 1;
    } else if (a.prompt) {
        if (a.raw) {
            if (qw_tokenize(m, a.prompt, strlen(a.prompt), &ids, &n, &err) != QW_OK) {
                fprintf(stderr, "qwasm run: %s\n", err.msg);
                rc = 1;
            }
        } else {
            cJSON *msgs = cJSON_CreateArray();
            if (a.system) cJSON_AddItemToArray(msgs, message("system", a.system));
            cJSON_AddItemToArray(msgs, message("user", a.prompt));
            rc = chat_prompt(m, msgs, &ids, &n);
            cJSON_Delete(msgs);
        }
        if (rc == 0) rc = generate(m, &a, ids, n, 1, load_s, &res);
        if (rc == 0 && !a.json) putchar('\n');
    } else { /* --chat: the history grows each turn; the KV cache keeps the common prefix */
        cJSON *msgs = cJSON_CreateArray();
        if (a.system) cJSON_AddItemToArray(msgs, message("system", a.system));
        char line[8192];
        for (;;) {
            if (!a.json) {
                fputs("> ", stdout);
                fflush(stdout);
            }
            if (!fgets(line, sizeof line, stdin)) break;
            line[strcspn(line, "\r\n")] = 0;
            if (!line[0]) continue;
            if (!strcmp(line, "/exit") || !strcmp(line, "/quit")) break;
            cJSON_AddItemToArray(msgs, message("user", line));
            free(ids);
            ids = NULL;
            if ((rc = chat_prompt(m, msgs, &ids, &n)) != 0) break;
            res.len = 0;
            if ((rc = generate(m, &a, ids, n, 1, load_s, &res)) != 0) break;
            if (!a.json) putchar('\n');
            cJSON_AddItemToArray(msgs, message("assistant", res.text ? res.text : ""));
        }
        cJSON_Delete(msgs);
    }
    if (a.dump && dump_end(&dump) != 0 && rc == 0) rc = 1;
    free(ids);
    free(res.text);
    qw_model_free(m); /* the target first: it detaches the draft */
    qw_fs_close(&fs);
    if (dm) {
        qw_model_free(dm);
        qw_fs_close(&dfs);
    }
    return rc;
}
