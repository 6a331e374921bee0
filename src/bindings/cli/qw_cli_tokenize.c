/* qw_cli_tokenize.c - `qwasm tokenize` and `qwasm detokenize`: the tokenizer and chat template of a model
 * folder from the command line, one string or a JSON-lines batch (the Node parity test runs its whole
 * corpus through one process). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cJSON.h"
#include "qwasm.h"
#include "qw_cli.h"
#include "qw_chat.h"
#include "qw_tokenizer.h"

static const char TOK_USAGE[] =
    "usage: qwasm tokenize MODEL_DIR TEXT [--json]\n"
    "       qwasm tokenize MODEL_DIR --file PATH [--json]\n"
    "       qwasm tokenize MODEL_DIR --batch FILE.jsonl        (a JSON string per line -> a JSON array of ids per "
    "line)\n"
    "       qwasm tokenize MODEL_DIR --chat-json FILE [--tools FILE] [--render-only] [--no-generation-prompt] "
    "[--json]\n"
    "       qwasm tokenize MODEL_DIR --chat-batch FILE.jsonl   ({\"messages\": [...], \"add_generation_prompt\": b,\n"
    "                                                         \"tools\": [...]} per line -> the rendering as a JSON\n"
    "                                                         string per line)\n"
    "  Chats are rendered with MODEL_DIR's chat_template (tokenizer_config.json), ChatML when it has none.\n";
static const char DETOK_USAGE[] =
    "usage: qwasm detokenize MODEL_DIR IDS [--json] [--skip-special]   (IDS comma-separated)\n"
    "       qwasm detokenize MODEL_DIR --batch FILE.jsonl              (a JSON array of ids per line -> a JSON string "
    "per line)\n";

static char *read_path(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "qwasm: cannot open %s\n", path);
        return NULL;
    }
    size_t cap = 1 << 16, n = 0;
    char *b = malloc(cap);
    while (b) {
        if (n + 1 >= cap) {
            char *nb = realloc(b, cap * 2);
            if (!nb) {
                free(b);
                b = NULL;
                break;
            }
            b = nb;
            cap *= 2;
        }
        size_t r = fread(b + n, 1, cap - n - 1, f);
        if (!r) break;
        n += r;
    }
    int bad = ferror(f);
    fclose(f);
    if (!b || bad) {
        free(b);
        fprintf(stderr, "qwasm: cannot read %s\n", path);
        return NULL;
    }
    b[n] = 0;
    *len = n;
    return b;
}

/* tokenizer_config.json of dir: *cfg NULL when the folder has none. */
static int read_config(qw_fs *fs, char **cfg, size_t *cl) {
    uint64_t size;
    qw_error e;
    *cfg = NULL;
    *cl = 0;
    if (fs->size(fs->ctx, "tokenizer_config.json", &size) != QW_OK) return 1;
    if (qw_fs_read_all(fs, "tokenizer_config.json", 16u << 20, cfg, cl, &e)) {
        fprintf(stderr, "qwasm: %s\n", e.msg);
        return 0;
    }
    return 1;
}

static int load_tok(const char *dir, qw_tokenizer **t) {
    qw_fs fs;
    qw_error e;
    if (qw_fs_open_dir(dir, &fs, &e)) {
        fprintf(stderr, "qwasm: %s\n", e.msg);
        return 0;
    }
    if (qw_tokenizer_load_fs(&fs, "tokenizer.json", t, &e)) {
        fprintf(stderr, "qwasm: %s\n", e.msg);
        qw_fs_close(&fs);
        return 0;
    }
    char *cfg;
    size_t cl;
    int ok = read_config(&fs, &cfg, &cl); /* optional: eos/pad */
    if (ok && cfg && qw_tokenizer_apply_config_json(*t, cfg, cl, "tokenizer_config.json", &e)) {
        fprintf(stderr, "qwasm: %s\n", e.msg);
        ok = 0;
    }
    free(cfg);
    qw_fs_close(&fs);
    if (!ok) {
        qw_tokenizer_free(*t);
        *t = NULL;
    }
    return ok;
}

/* The chat template of dir (its tokenizer_config.json's, or ChatML). */
static int load_chat(const char *dir, qw_chat_template **ct) {
    qw_fs fs;
    qw_error e;
    if (qw_fs_open_dir(dir, &fs, &e)) {
        fprintf(stderr, "qwasm: %s\n", e.msg);
        return 0;
    }
    char *cfg;
    size_t cl;
    int ok = read_config(&fs, &cfg, &cl);
    if (ok && qw_chat_template_load(cfg, cl, "tokenizer_config.json", ct, &e)) {
        fprintf(stderr, "qwasm: %s\n", e.msg);
        ok = 0;
    }
    free(cfg);
    qw_fs_close(&fs);
    return ok;
}

static void print_ids(const int32_t *ids, size_t n, int json) {
    if (json) putchar('[');
    for (size_t i = 0; i < n; i++) printf(i ? (json ? ",%d" : " %d") : "%d", ids[i]);
    if (json) putchar(']');
    putchar('\n');
}

static void print_json_string(const char *s) {
    cJSON *j = cJSON_CreateString(s);
    char *o = j ? cJSON_PrintUnformatted(j) : NULL;
    if (o) fputs(o, stdout);
    free(o);
    cJSON_Delete(j);
}

/* Calls fn on every non-empty line of path; stops at the first failure. */
static int each_line(const char *path, int (*fn)(void *, const char *, size_t), void *ctx) {
    size_t len;
    char *buf = read_path(path, &len);
    if (!buf) return 1;
    int rc = 0, lineno = 0;
    for (char *p = buf; !rc && p < buf + len;) {
        char *nl = memchr(p, '\n', (size_t)(buf + len - p));
        size_t l = nl ? (size_t)(nl - p) : (size_t)(buf + len - p);
        lineno++;
        if (l && p[l - 1] == '\r') l--;
        if (l) {
            rc = fn(ctx, p, l);
            if (rc) fprintf(stderr, "qwasm: %s:%d: failed\n", path, lineno);
        }
        if (!nl) break;
        p = nl + 1;
    }
    free(buf);
    return rc;
}

static int batch_tokenize_line(void *ctx, const char *line, size_t len) {
    cJSON *j = cJSON_ParseWithLength(line, len);
    if (!cJSON_IsString(j)) {
        cJSON_Delete(j);
        fprintf(stderr, "qwasm: batch line is not a JSON string\n");
        return 1;
    }
    int32_t *ids;
    size_t n;
    qw_error e;
    qw_status st = qw_tokenizer_encode(ctx, j->valuestring, strlen(j->valuestring), &ids, &n, &e);
    cJSON_Delete(j);
    if (st) {
        fprintf(stderr, "qwasm: %s\n", e.msg);
        return 1;
    }
    print_ids(ids, n, 1);
    free(ids);
    return 0;
}

static int chat_batch_line(void *ctx, const char *line, size_t len) {
    cJSON *j = cJSON_ParseWithLength(line, len);
    cJSON *msgs = cJSON_GetObjectItemCaseSensitive(j, "messages");
    cJSON *tools = cJSON_GetObjectItemCaseSensitive(j, "tools");
    int gen = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "add_generation_prompt"));
    char *m = msgs ? cJSON_PrintUnformatted(msgs) : NULL;
    char *t = tools && !cJSON_IsNull(tools) ? cJSON_PrintUnformatted(tools) : NULL;
    cJSON_Delete(j);
    if (!m) {
        free(t);
        fprintf(stderr, "qwasm: chat batch line has no \"messages\"\n");
        return 1;
    }
    char *out;
    qw_error e;
    qw_status st = qw_chat_template_render(ctx, m, t, gen, &out, NULL, &e);
    free(m);
    free(t);
    if (st) {
        fprintf(stderr, "qwasm: %s\n", e.msg);
        return 1;
    }
    print_json_string(out);
    putchar('\n');
    free(out);
    return 0;
}

int qw_cli_tokenize(int argc, char **argv) {
    const char *dir = NULL, *text = NULL, *file = NULL, *batch = NULL, *chat = NULL, *chat_batch = NULL, *tools = NULL;
    int json = 0, render_only = 0, gen_prompt = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--json"))
            json = 1;
        else if (!strcmp(a, "--render-only"))
            render_only = 1;
        else if (!strcmp(a, "--no-generation-prompt"))
            gen_prompt = 0;
        else if (!strcmp(a, "--file") && i + 1 < argc)
            file = argv[++i];
        else if (!strcmp(a, "--batch") && i + 1 < argc)
            batch = argv[++i];
        else if (!strcmp(a, "--chat-json") && i + 1 < argc)
            chat = argv[++i];
        else if (!strcmp(a, "--chat-batch") && i + 1 < argc)
            chat_batch = argv[++i];
        else if (!strcmp(a, "--tools") && i + 1 < argc)
            tools = argv[++i];
        else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(TOK_USAGE, stdout);
            return 0;
        } else if (a[0] == '-' && a[1] == '-') {
            fprintf(stderr, "qwasm tokenize: unknown option %s\n%s", a, TOK_USAGE);
            return 2;
        } else if (!dir)
            dir = a;
        else if (!text)
            text = a;
        else {
            fputs(TOK_USAGE, stderr);
            return 2;
        }
    }
    int modes = (text != NULL) + (file != NULL) + (batch != NULL) + (chat != NULL) + (chat_batch != NULL);
    if (!dir || modes != 1) {
        fputs(TOK_USAGE, stderr);
        return 2;
    }
    if (tools && !chat) {
        fputs(TOK_USAGE, stderr);
        return 2;
    }
    if (chat_batch) {
        qw_chat_template *ct;
        if (!load_chat(dir, &ct)) return 1;
        int rc = each_line(chat_batch, chat_batch_line, ct) ? 1 : 0;
        qw_chat_template_free(ct);
        return rc;
    }

    char *owned = NULL;
    size_t len = 0;
    if (chat) {
        size_t cl, tl;
        qw_chat_template *ct;
        char *cj = read_path(chat, &cl), *tj = tools ? read_path(tools, &tl) : NULL;
        if (!cj || (tools && !tj) || !load_chat(dir, &ct)) {
            free(cj);
            free(tj);
            return 1;
        }
        qw_error e;
        qw_status st = qw_chat_template_render(ct, cj, tj, gen_prompt, &owned, &len, &e);
        qw_chat_template_free(ct);
        free(cj);
        free(tj);
        if (st) {
            fprintf(stderr, "qwasm: %s: %s\n", chat, e.msg);
            return 1;
        }
        if (render_only) {
            if (json) {
                print_json_string(owned);
                putchar('\n');
            } else
                fwrite(owned, 1, len, stdout);
            free(owned);
            return 0;
        }
        text = owned;
    } else if (file) {
        if (!(owned = read_path(file, &len))) return 1;
        text = owned;
    } else if (text) {
        len = strlen(text);
    }

    qw_tokenizer *t;
    if (!load_tok(dir, &t)) {
        free(owned);
        return 1;
    }
    int rc = 0;
    if (batch) {
        rc = each_line(batch, batch_tokenize_line, t) ? 1 : 0;
    } else {
        int32_t *ids;
        size_t n;
        qw_error e;
        if (qw_tokenizer_encode(t, text, len, &ids, &n, &e)) {
            fprintf(stderr, "qwasm: %s\n", e.msg);
            rc = 1;
        } else {
            print_ids(ids, n, json);
            free(ids);
        }
    }
    qw_tokenizer_free(t);
    free(owned);
    return rc;
}

static int parse_ids(const char *s, int32_t **ids, size_t *n) {
    size_t cap = 16;
    *n = 0;
    *ids = malloc(cap * sizeof **ids);
    while (*ids && *s) {
        while (*s == ' ' || *s == ',' || *s == '[' || *s == ']' || *s == '\n') s++;
        if (!*s) break;
        char *end;
        long long v = strtoll(s, &end, 10); /* long is 32 bits on WASI */
        if (end == s || v < 0 || v > 0x7fffffff) {
            fprintf(stderr, "qwasm: bad id list near \"%.20s\"\n", s);
            free(*ids);
            return 0;
        }
        if (*n == cap) {
            int32_t *ni = realloc(*ids, cap * 2 * sizeof *ni);
            if (!ni) break;
            *ids = ni;
            cap *= 2;
        }
        (*ids)[(*n)++] = (int32_t)v;
        s = end;
    }
    return *ids != NULL;
}

typedef struct detok_ctx {
    qw_tokenizer *t;
    int skip;
} detok_ctx;

static int batch_detok_line(void *ctx, const char *line, size_t len) {
    detok_ctx *c = ctx;
    char *l = malloc(len + 1);
    if (!l) return 1;
    memcpy(l, line, len);
    l[len] = 0;
    int32_t *ids;
    size_t n;
    int ok = parse_ids(l, &ids, &n);
    free(l);
    if (!ok) return 1;
    char *txt;
    qw_error e;
    qw_status st = qw_tokenizer_decode(c->t, ids, n, c->skip, &txt, NULL, &e);
    free(ids);
    if (st) {
        fprintf(stderr, "qwasm: %s\n", e.msg);
        return 1;
    }
    print_json_string(txt);
    putchar('\n');
    free(txt);
    return 0;
}

int qw_cli_detokenize(int argc, char **argv) {
    const char *dir = NULL, *list = NULL, *batch = NULL;
    int json = 0, skip = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--json"))
            json = 1;
        else if (!strcmp(a, "--skip-special"))
            skip = 1;
        else if (!strcmp(a, "--batch") && i + 1 < argc)
            batch = argv[++i];
        else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(DETOK_USAGE, stdout);
            return 0;
        } else if (a[0] == '-' && a[1] == '-') {
            fprintf(stderr, "qwasm detokenize: unknown option %s\n%s", a, DETOK_USAGE);
            return 2;
        } else if (!dir)
            dir = a;
        else if (!list)
            list = a;
        else {
            fputs(DETOK_USAGE, stderr);
            return 2;
        }
    }
    if (!dir || (list != NULL) == (batch != NULL)) {
        fputs(DETOK_USAGE, stderr);
        return 2;
    }
    detok_ctx c = {NULL, skip};
    if (!load_tok(dir, &c.t)) return 1;
    int rc = 0;
    if (batch) {
        rc = each_line(batch, batch_detok_line, &c) ? 1 : 0;
    } else {
        int32_t *ids;
        size_t n;
        if (!parse_ids(list, &ids, &n))
            rc = 2;
        else {
            char *txt;
            size_t tl;
            qw_error e;
            if (qw_tokenizer_decode(c.t, ids, n, skip, &txt, &tl, &e)) {
                fprintf(stderr, "qwasm: %s\n", e.msg);
                rc = 1;
            } else {
                if (json) {
                    print_json_string(txt);
                    putchar('\n');
                } else
                    fwrite(txt, 1, tl, stdout);
                free(txt);
            }
            free(ids);
        }
    }
    qw_tokenizer_free(c.t);
    return rc;
}
