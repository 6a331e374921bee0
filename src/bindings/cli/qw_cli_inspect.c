/* qw_cli_inspect.c - `qwasm inspect MODEL.onnx|MODEL_DIR [--json]`: what an ONNX file holds, without its weights.
 *
 * One cJSON object is built from the parsed model; --json prints it, otherwise it is printed as text. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "cJSON.h"
#include "qw_cli.h"
#include "qw_config.h"
#include "qw_onnx.h"
#include "qw_unicode.h"

typedef struct count_entry {
    char *key;
    double count, bytes;
} count_entry;
typedef struct counter {
    count_entry *e;
    int n, cap;
} counter;

static count_entry *counter_get(counter *c, const char *key) {
    for (int i = 0; i < c->n; i++)
        if (!strcmp(c->e[i].key, key)) return &c->e[i];
    if (c->n == c->cap) {
        int cap = c->cap ? c->cap * 2 : 16;
        count_entry *ne = realloc(c->e, sizeof *ne * (size_t)cap);
        if (!ne) return NULL;
        c->e = ne;
        c->cap = cap;
    }
    char *k = malloc(strlen(key) + 1);
    if (!k) return NULL;
    strcpy(k, key);
    c->e[c->n] = (count_entry){k, 0, 0};
    return &c->e[c->n++];
}

static void counter_free(counter *c) {
    for (int i = 0; i < c->n; i++) free(c->e[i].key);
    free(c->e);
}

static int by_count_desc(const void *a, const void *b) {
    const count_entry *x = a, *y = b;
    if (x->count != y->count) return x->count < y->count ? 1 : -1;
    return strcmp(x->key, y->key);
}

/* The order every counted listing is emitted in: most counted first, ties by key. */
static void counter_sort(counter *c) {
    if (c->n > 1) qsort(c->e, (size_t)c->n, sizeof *c->e, by_count_desc);
}

static cJSON *value_infos(const qw_onnx_model *m, const qw_onnx_value_info *v, int n, int skip_inits) {
    cJSON *arr = cJSON_CreateArray();
    for (int i = 0; i < n; i++) {
        if (skip_inits && qw_onnx_init_find(m, v[i].name)) continue; /* old IRs list initializers as inputs */
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", v[i].name);
        cJSON_AddStringToObject(o, "dtype", v[i].dtype ? qw_dtype_name(v[i].dtype) : "none");
        if (v[i].has_shape) {
            cJSON *s = cJSON_AddArrayToObject(o, "shape");
            for (int d = 0; d < v[i].ndim; d++) {
                const qw_onnx_dim *dm = &v[i].dims[d];
                if (dm->param)
                    cJSON_AddItemToArray(s, cJSON_CreateString(dm->param));
                else if (dm->value >= 0)
                    cJSON_AddItemToArray(s, cJSON_CreateNumber((double)dm->value));
                else
                    cJSON_AddItemToArray(s, cJSON_CreateNull());
            }
        } else {
            cJSON_AddNullToObject(o, "shape");
        }
        cJSON_AddItemToArray(arr, o);
    }
    return arr;
}

/* Appends v (a number or a string) to arr unless an equal value is there already, then frees v: the distinct
 * values in the order first seen. */
static void add_unique(cJSON *arr, cJSON *v) {
    cJSON *it;
    cJSON_ArrayForEach(it, arr) {
        if (cJSON_Compare(it, v, 1)) {
            cJSON_Delete(v);
            return;
        }
    }
    cJSON_AddItemToArray(arr, v);
}

/* {"count": count, "bytes": bytes} as to's member key; returned for members to follow. */
static cJSON *add_count_bytes(cJSON *to, const char *key, double count, double bytes) {
    cJSON *o = cJSON_AddObjectToObject(to, key);
    cJSON_AddNumberToObject(o, "count", count);
    cJSON_AddNumberToObject(o, "bytes", bytes);
    return o;
}

static cJSON *matmulnbits(const qw_onnx_model *m) {
    cJSON *o = cJSON_CreateObject();
    cJSON *bits = cJSON_CreateArray(), *blocks = cJSON_CreateArray(), *scales = cJSON_CreateArray();
    counter shapes = {0};
    int n = 0, with_zp = 0;
    for (int i = 0; i < m->n_nodes; i++) {
        const qw_onnx_node *nd = &m->nodes[i];
        if (strcmp(nd->op_type, "MatMulNBits") || strcmp(nd->domain, "com.microsoft")) continue;
        n++;
        const qw_onnx_attr *a;
        long long K = (a = qw_onnx_attr_find(nd, "K")) ? (long long)a->i : -1;
        long long N = (a = qw_onnx_attr_find(nd, "N")) ? (long long)a->i : -1;
        add_unique(bits, cJSON_CreateNumber((a = qw_onnx_attr_find(nd, "bits")) ? (double)a->i : 4));
        add_unique(blocks, cJSON_CreateNumber((a = qw_onnx_attr_find(nd, "block_size")) ? (double)a->i : -1));
        if (nd->n_inputs > 3 && nd->inputs[3][0]) with_zp++;
        const qw_onnx_tensor *s = nd->n_inputs > 2 ? qw_onnx_init_find(m, nd->inputs[2]) : NULL;
        add_unique(scales, cJSON_CreateString(s ? qw_dtype_name(s->dtype) : "unknown"));
        char key[64];
        snprintf(key, sizeof key, "%lldx%lld", K, N);
        count_entry *e = counter_get(&shapes, key); /* K and N are read back from the key */
        if (e) e->count++;
    }
    cJSON_AddNumberToObject(o, "count", n);
    cJSON_AddItemToObject(o, "bits", bits);
    cJSON_AddItemToObject(o, "block_sizes", blocks);
    cJSON_AddNumberToObject(o, "with_zero_points", with_zp);
    cJSON_AddItemToObject(o, "scale_dtypes", scales);
    counter_sort(&shapes);
    cJSON *sh = cJSON_AddArrayToObject(o, "shapes");
    for (int i = 0; i < shapes.n; i++) {
        long long K = 0, N = 0;
        sscanf(shapes.e[i].key, "%lldx%lld", &K, &N);
        cJSON *x = cJSON_CreateObject();
        cJSON_AddNumberToObject(x, "K", (double)K);
        cJSON_AddNumberToObject(x, "N", (double)N);
        cJSON_AddNumberToObject(x, "count", shapes.e[i].count);
        cJSON_AddItemToArray(sh, x);
    }
    counter_free(&shapes);
    return o;
}

static cJSON *config_json(const qw_model_config *c, const char *where) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "folder", where);
    cJSON_AddStringToObject(o, "model_type", c->model_type);
    cJSON_AddNumberToObject(o, "hidden_size", c->hidden_size);
    cJSON_AddNumberToObject(o, "intermediate_size", c->intermediate_size);
    cJSON_AddNumberToObject(o, "num_hidden_layers", c->num_layers);
    cJSON_AddNumberToObject(o, "num_attention_heads", c->num_heads);
    cJSON_AddNumberToObject(o, "num_key_value_heads", c->num_kv_heads);
    cJSON_AddNumberToObject(o, "head_dim", c->head_dim);
    cJSON_AddNumberToObject(o, "vocab_size", c->vocab_size);
    cJSON_AddNumberToObject(o, "max_position_embeddings", c->max_position_embeddings);
    cJSON_AddNumberToObject(o, "rope_theta", c->rope_theta);
    cJSON_AddNumberToObject(o, "rms_norm_eps", c->rms_norm_eps);
    cJSON_AddBoolToObject(o, "tie_word_embeddings", c->tie_word_embeddings);
    cJSON_AddStringToObject(o, "dtype", c->dtype);
    return o;
}

static void tensor_stats(counter *c, const qw_onnx_tensor *t, double *n, double *bytes) {
    count_entry *e = counter_get(c, qw_dtype_name(t->dtype));
    if (e) {
        e->count++;
        e->bytes += (double)t->nbytes;
    }
    *n += 1;
    *bytes += (double)t->nbytes;
}

static cJSON *build(const qw_onnx_model *m, const char *onnx_name, const qw_model_config *cfg, const char *cfg_where) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "file", onnx_name);
    cJSON_AddNumberToObject(o, "ir_version", (double)m->ir_version);
    cJSON_AddStringToObject(o, "producer", m->producer_name);
    cJSON *ops = cJSON_AddObjectToObject(o, "opsets");
    for (int i = 0; i < m->n_opsets; i++)
        cJSON_AddNumberToObject(ops, m->opsets[i].domain[0] ? m->opsets[i].domain : "ai.onnx",
                                (double)m->opsets[i].version);
    cJSON_AddItemToObject(o, "inputs", value_infos(m, m->inputs, m->n_inputs, 1));
    cJSON_AddItemToObject(o, "outputs", value_infos(m, m->outputs, m->n_outputs, 0));

    counter hist = {0};
    double n_const = 0, const_bytes = 0;
    counter cdt = {0};
    for (int i = 0; i < m->n_nodes; i++) {
        const qw_onnx_node *nd = &m->nodes[i];
        char key[512];
        if (nd->domain[0])
            snprintf(key, sizeof key, "%s.%s", nd->domain, nd->op_type);
        else
            snprintf(key, sizeof key, "%s", nd->op_type);
        count_entry *e = counter_get(&hist, key);
        if (e) e->count++;
        for (int a = 0; a < nd->n_attrs; a++)
            if (nd->attrs[a].type == QW_ATTR_TENSOR && nd->attrs[a].t)
                tensor_stats(&cdt, nd->attrs[a].t, &n_const, &const_bytes);
    }
    counter_sort(&hist);
    cJSON *h = cJSON_AddObjectToObject(o, "ops");
    for (int i = 0; i < hist.n; i++) cJSON_AddNumberToObject(h, hist.e[i].key, hist.e[i].count);
    cJSON_AddNumberToObject(o, "nodes", m->n_nodes);
    counter_free(&hist);
    counter_free(&cdt);

    counter idt = {0};
    double n_init = 0, init_bytes = 0, in_onnx = 0, external = 0, decoded = 0;
    for (int i = 0; i < m->n_inits; i++) {
        const qw_onnx_tensor *t = &m->inits[i];
        tensor_stats(&idt, t, &n_init, &init_bytes);
        if (t->data)
            decoded += (double)t->nbytes;
        else if (t->file == 0)
            in_onnx += (double)t->nbytes;
        else
            external += (double)t->nbytes;
    }
    cJSON *in = add_count_bytes(o, "initializers", n_init, init_bytes);
    cJSON_AddNumberToObject(in, "bytes_in_onnx_file", in_onnx);
    cJSON_AddNumberToObject(in, "bytes_external", external);
    cJSON_AddNumberToObject(in, "bytes_decoded", decoded);
    counter_sort(&idt);
    cJSON *bd = cJSON_AddObjectToObject(in, "by_dtype");
    for (int i = 0; i < idt.n; i++) add_count_bytes(bd, idt.e[i].key, idt.e[i].count, idt.e[i].bytes);
    counter_free(&idt);
    add_count_bytes(in, "constants", n_const, const_bytes);

    cJSON *ext = cJSON_AddArrayToObject(o, "external_data");
    for (int i = 1; i < m->n_files; i++) {
        cJSON *x = cJSON_CreateObject();
        cJSON_AddStringToObject(x, "file", m->files[i].name);
        cJSON_AddNumberToObject(x, "size", (double)m->files[i].size);
        cJSON_AddNumberToObject(x, "bytes_needed", (double)m->files[i].bytes_needed);
        cJSON_AddBoolToObject(x, "covered", m->files[i].bytes_needed <= m->files[i].size);
        cJSON_AddItemToArray(ext, x);
    }
    cJSON_AddItemToObject(o, "matmulnbits", matmulnbits(m));
    if (cfg)
        cJSON_AddItemToObject(o, "config", config_json(cfg, cfg_where));
    else
        cJSON_AddNullToObject(o, "config");
    return o;
}

/* ---- text ------------------------------------------------------------------------------------- */

static void print_shape(const cJSON *s) {
    if (!cJSON_IsArray(s)) {
        printf("?");
        return;
    }
    printf("[");
    const cJSON *d;
    int first = 1;
    cJSON_ArrayForEach(d, s) {
        printf("%s", first ? "" : ", ");
        first = 0;
        if (cJSON_IsString(d))
            printf("%s", d->valuestring);
        else if (cJSON_IsNumber(d))
            printf("%.0f", d->valuedouble);
        else
            printf("?");
    }
    printf("]");
}

static void print_values(const char *title, const cJSON *arr) {
    printf("%s (%d):\n", title, cJSON_GetArraySize(arr));
    const cJSON *v;
    cJSON_ArrayForEach(v, arr) {
        printf("  %-32s %-9s ", cJSON_GetObjectItem(v, "name")->valuestring,
               cJSON_GetObjectItem(v, "dtype")->valuestring);
        print_shape(cJSON_GetObjectItem(v, "shape"));
        printf("\n");
    }
}

static double num(const cJSON *o, const char *k) {
    const cJSON *x = cJSON_GetObjectItem(o, k);
    return cJSON_IsNumber(x) ? x->valuedouble : 0;
}

static void print_text(const cJSON *o) {
    const cJSON *x;
    printf("file:        %s\n", cJSON_GetObjectItem(o, "file")->valuestring);
    printf("IR version:  %.0f (producer %s)\n", num(o, "ir_version"), cJSON_GetObjectItem(o, "producer")->valuestring);
    printf("opsets:     ");
    cJSON_ArrayForEach(x, cJSON_GetObjectItem(o, "opsets")) printf(" %s %.0f", x->string, x->valuedouble);
    printf("\n");
    print_values("inputs", cJSON_GetObjectItem(o, "inputs"));
    print_values("outputs", cJSON_GetObjectItem(o, "outputs"));
    printf("nodes (%.0f):\n", num(o, "nodes"));
    cJSON_ArrayForEach(x, cJSON_GetObjectItem(o, "ops")) printf("  %6.0f  %s\n", x->valuedouble, x->string);
    const cJSON *in = cJSON_GetObjectItem(o, "initializers");
    printf("initializers: %.0f, %.0f bytes (%.0f in the .onnx, %.0f external, %.0f decoded)\n", num(in, "count"),
           num(in, "bytes"), num(in, "bytes_in_onnx_file"), num(in, "bytes_external"), num(in, "bytes_decoded"));
    cJSON_ArrayForEach(x, cJSON_GetObjectItem(in, "by_dtype"))
        printf("  %-9s %6.0f tensors %14.0f bytes\n", x->string, num(x, "count"), num(x, "bytes"));
    const cJSON *co = cJSON_GetObjectItem(in, "constants");
    printf("constant-node tensors: %.0f, %.0f bytes\n", num(co, "count"), num(co, "bytes"));
    const cJSON *ext = cJSON_GetObjectItem(o, "external_data");
    printf("external data files (%d):\n", cJSON_GetArraySize(ext));
    cJSON_ArrayForEach(x, ext) printf(
        "  %s: %.0f bytes, locators reach %.0f: %s\n", cJSON_GetObjectItem(x, "file")->valuestring, num(x, "size"),
        num(x, "bytes_needed"), cJSON_IsTrue(cJSON_GetObjectItem(x, "covered")) ? "covered" : "NOT covered");
    const cJSON *q = cJSON_GetObjectItem(o, "matmulnbits");
    if (num(q, "count") > 0) {
        printf("MatMulNBits: %.0f nodes, bits", num(q, "count"));
        cJSON_ArrayForEach(x, cJSON_GetObjectItem(q, "bits")) printf(" %.0f", x->valuedouble);
        printf(", block sizes");
        cJSON_ArrayForEach(x, cJSON_GetObjectItem(q, "block_sizes")) printf(" %.0f", x->valuedouble);
        printf(", scales");
        cJSON_ArrayForEach(x, cJSON_GetObjectItem(q, "scale_dtypes")) printf(" %s", x->valuestring);
        printf(", %.0f with zero points\n", num(q, "with_zero_points"));
        cJSON_ArrayForEach(x, cJSON_GetObjectItem(q, "shapes"))
            printf("  K %-6.0f N %-6.0f x%.0f\n", num(x, "K"), num(x, "N"), num(x, "count"));
    }
    const cJSON *c = cJSON_GetObjectItem(o, "config");
    if (cJSON_IsObject(c)) {
        printf("config (%s): %s, hidden %.0f, layers %.0f, heads %.0f/%.0f kv, head_dim %.0f, ffn %.0f, vocab %.0f, "
               "context %.0f, rope_theta %g, rms_norm_eps %g%s\n",
               cJSON_GetObjectItem(c, "folder")->valuestring, cJSON_GetObjectItem(c, "model_type")->valuestring,
               num(c, "hidden_size"), num(c, "num_hidden_layers"), num(c, "num_attention_heads"),
               num(c, "num_key_value_heads"), num(c, "head_dim"), num(c, "intermediate_size"), num(c, "vocab_size"),
               num(c, "max_position_embeddings"), num(c, "rope_theta"), num(c, "rms_norm_eps"),
               cJSON_IsTrue(cJSON_GetObjectItem(c, "tie_word_embeddings")) ? ", tied embeddings" : "");
    }
}

/* ---- command ---------------------------------------------------------------------------------- */

static char *dup_n(const char *s, size_t n) {
    char *p = malloc(n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = 0;
    }
    return p;
}

int qw_cli_inspect(int argc, char **argv) {
    const char *path = NULL;
    int json = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json"))
            json = 1;
        else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: qwasm inspect MODEL.onnx|MODEL_DIR [--json]\n");
            return 0;
        } else if (!path && argv[i][0] != '-')
            path = argv[i];
        else {
            fprintf(stderr, "qwasm inspect: unexpected argument '%s'\n", argv[i]);
            return 2;
        }
    }
    if (!path) {
        fprintf(stderr, "usage: qwasm inspect MODEL.onnx|MODEL_DIR [--json]\n");
        return 2;
    }

    struct stat sb;
    if (stat(path, &sb) != 0) {
        fprintf(stderr, "qwasm inspect: %s: not found\n", path);
        return 1;
    }
    int is_dir = S_ISDIR(sb.st_mode);
    char *root = NULL, *parent = NULL;
    const char *onnx_name = NULL;
    if (is_dir) {
        root = dup_n(path, strlen(path));
    } else {
        const char *slash = strrchr(path, '/');
        root = slash ? dup_n(path, (size_t)(slash == path ? 1 : slash - path)) : dup_n(".", 1);
        onnx_name = slash ? slash + 1 : path;
    }
    if (!root) {
        fprintf(stderr, "qwasm inspect: out of memory\n");
        return 1;
    }

    qw_fs fs = {0}, pfs = {0};
    qw_error err = {0};
    qw_model_config cfg, pcfg;
    const qw_model_config *cfgp = NULL;
    const char *cfg_where = NULL;
    int rc = 1;
    qw_onnx_model *m = NULL;
    if (qw_fs_open_dir(root, &fs, &err) != QW_OK) {
        fprintf(stderr, "qwasm inspect: %s\n", err.msg);
        goto done;
    }
    /* config.json (or genai_config.json) in the model's folder, else in its parent */
    if (qw_config_load(&fs, onnx_name, &cfg, &err) != QW_OK) {
        fprintf(stderr, "qwasm inspect: %s\n", err.msg);
        goto done;
    }
    if (cfg.has_config) {
        cfgp = &cfg;
        cfg_where = root;
    } else if (!is_dir) {
        size_t n = strlen(root);
        parent = malloc(n + 4);
        if (parent) {
            snprintf(parent, n + 4, "%s/..", root);
            if (qw_fs_open_dir(parent, &pfs, &err) == QW_OK && qw_config_load(&pfs, NULL, &pcfg, &err) == QW_OK &&
                pcfg.has_config) {
                cfgp = &pcfg;
                cfg_where = parent;
            }
        }
    }
    if (is_dir) onnx_name = cfg.onnx_file;
    if (qw_onnx_load(&fs, onnx_name, &m, &err) != QW_OK) {
        fprintf(stderr, "qwasm inspect: %s/%s\n", root, err.msg);
        goto done;
    }
    cJSON *o = build(m, onnx_name, cfgp, cfg_where);
    if (!o) {
        fprintf(stderr, "qwasm inspect: out of memory\n");
        goto done;
    }
    if (json) {
        /* names come from the file as bytes and cJSON copies them as they are: ill-formed UTF-8 becomes U+FFFD, so
         * the output is valid JSON for any reader (the structure is ASCII and unaffected) */
        char *s = cJSON_Print(o), *u = NULL;
        size_t ul = 0;
        if (s && qw_utf8_lossy((const unsigned char *)s, strlen(s), &u, &ul, NULL) == QW_OK) {
            fwrite(u, 1, ul, stdout);
            putchar('\n');
            rc = 0;
        } else {
            fprintf(stderr, "qwasm inspect: out of memory\n");
        }
        free(s);
        free(u);
    } else {
        print_text(o);
        rc = 0;
    }
    cJSON_Delete(o);
done:
    qw_onnx_free(m);
    if (fs.ctx) qw_fs_close(&fs);
    if (pfs.ctx) qw_fs_close(&pfs);
    free(root);
    free(parent);
    return rc;
}
