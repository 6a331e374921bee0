/* qw_jinja_run.c - renders a parsed template (qw_jinja_parse.c): values, scopes, operators, filters, tests,
 * methods and the global functions. Where Python's Jinja and @huggingface/jinja differ, this follows
 * @huggingface/jinja (what transformers.js renders): none and undefined print nothing, booleans print
 * true/false, lists and dicts print as JSON; tojson is Python's json.dumps (", " and ": ", non-ASCII kept).
 * Every value lives in the render's arena (capped); steps, output and value nesting are bounded too. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "qw_jinja_impl.h"

#define MAX_VALUE_DEPTH 128 /* nesting of lists/dicts that tojson, == and printing walk */
#define MAX_FRAMES (QW_JINJA_MAX_DEPTH + 2)

typedef enum { V_UNDEF, V_NONE, V_BOOL, V_INT, V_FLOAT, V_STR, V_LIST, V_DICT, V_NS } vtype;
typedef struct jstr {
    size_t n;
    char s[];
} jstr; /* NUL-terminated as well */
typedef struct jlist jlist;
typedef struct jdict jdict;
typedef struct jv {
    int t;
    union {
        int64_t i;
        double f;
        jstr *s;
        jlist *l;
        jdict *d;
    };
} jv;
struct jlist {
    size_t n, cap;
    jv *v;
};
struct jdict {
    size_t n, cap;
    jstr **k;
    jv *v;
}; /* insertion order, as JSON objects and Python dicts */

typedef struct sbuf {
    char *p;
    size_t n, cap;
} sbuf;

typedef struct rt {
    const qw_jinja *t;
    qw_jarena ar;
    sbuf *out; /* where output goes (a {% set %} block captures into another) */
    long steps;
    jdict *frames[MAX_FRAMES]; /* [0]: the template's scope; one more per for loop */
    int nframes;
    jdict *globals; /* the caller's variables */
    qw_error *err;
    qw_status st;
    int failed;
} rt;

static const jv UNDEF = {V_UNDEF, {0}};

static int rfail(rt *r, const qw_jnode *n, qw_status st, const char *fmt, ...) {
    if (r->failed) return -1;
    char where[256], what[400];
    qw_jinja_where(r->t, n ? n->pos : 0, where, sizeof where);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    r->st = qw_error_set(r->err, st, "%s%s", where, what);
    r->failed = 1;
    return -1;
}
#define FAIL(n, ...) rfail(r, n, QW_E_UNSUPPORTED, __VA_ARGS__)

static int nomem(rt *r, const qw_jnode *n) {
    return rfail(r, n, QW_E_NOMEM, "the template made more than %u MB of values", QW_JINJA_MAX_HEAP >> 20);
}

/* Steps: one per node evaluated, plus one per 64 bytes a string operation touches. */
static int cost(rt *r, const qw_jnode *n, size_t bytes) {
    r->steps += 1 + (long)(bytes >> 6);
    if (r->steps > QW_JINJA_MAX_STEPS)
        return rfail(r, n, QW_E_UNSUPPORTED, "the template ran more than %ld steps (a loop that does not end?)",
                     QW_JINJA_MAX_STEPS);
    return 0;
}

static void *alloc(rt *r, const qw_jnode *n, size_t bytes) {
    void *p = qw_jarena_alloc(&r->ar, bytes);
    if (!p) nomem(r, n);
    return p;
}

/* ---- buffers and values ------------------------------------------------------------------------ */

static int sb_put(rt *r, const qw_jnode *n, sbuf *b, const char *s, size_t l) {
    if (b->n + l + 1 > b->cap) {
        if (b->n + l > QW_JINJA_MAX_OUTPUT)
            return rfail(r, n, QW_E_UNSUPPORTED, "the template made a text of more than %u MB",
                         QW_JINJA_MAX_OUTPUT >> 20);
        size_t nc = b->cap ? b->cap : 1024;
        while (nc < b->n + l + 1) nc *= 2;
        char *np = realloc(b->p, nc);
        if (!np) return rfail(r, n, QW_E_NOMEM, "out of memory rendering");
        b->p = np;
        b->cap = nc;
    }
    memcpy(b->p + b->n, s, l);
    b->n += l;
    b->p[b->n] = 0;
    return 0;
}
static int sb_puts(rt *r, const qw_jnode *n, sbuf *b, const char *s) { return sb_put(r, n, b, s, strlen(s)); }

static jstr *mkjstr(rt *r, const qw_jnode *n, const char *s, size_t l) {
    jstr *j = alloc(r, n, sizeof *j + l + 1);
    if (!j) return NULL;
    j->n = l;
    if (l) memcpy(j->s, s, l);
    j->s[l] = 0;
    return j;
}
static int mkstr(rt *r, const qw_jnode *n, const char *s, size_t l, jv *out) {
    if (cost(r, n, l)) return -1;
    jstr *j = mkjstr(r, n, s, l);
    if (!j) return -1;
    out->t = V_STR;
    out->s = j;
    return 0;
}
static jv vint(int64_t i) {
    jv v = {V_INT, {0}};
    v.i = i;
    return v;
}
static jv vbool(int b) {
    jv v = {V_BOOL, {0}};
    v.i = !!b;
    return v;
}
static jv vfloat(double f) {
    jv v = {V_FLOAT, {0}};
    v.f = f;
    return v;
}

static jlist *mklist(rt *r, const qw_jnode *n, size_t cap) {
    jlist *l = alloc(r, n, sizeof *l);
    if (!l || !(l->v = alloc(r, n, (cap ? cap : 1) * sizeof *l->v))) return NULL;
    l->cap = cap ? cap : 1;
    return l;
}
static int list_push(rt *r, const qw_jnode *n, jlist *l, jv v) {
    if (l->n == l->cap) {
        jv *nv = alloc(r, n, l->cap * 2 * sizeof *nv);
        if (!nv) return -1;
        memcpy(nv, l->v, l->n * sizeof *nv);
        l->v = nv;
        l->cap *= 2;
    }
    l->v[l->n++] = v;
    return 0;
}
static jdict *mkdict(rt *r, const qw_jnode *n, size_t cap) {
    jdict *d = alloc(r, n, sizeof *d);
    if (!cap) cap = 4;
    if (!d || !(d->k = alloc(r, n, cap * sizeof *d->k)) || !(d->v = alloc(r, n, cap * sizeof *d->v))) return NULL;
    d->cap = cap;
    return d;
}
static jv *dict_find(rt *r, const jdict *d, const char *k, size_t l) {
    r->steps += (long)(d->n >> 4);
    for (size_t i = 0; i < d->n; i++)
        if (d->k[i]->n == l && !memcmp(d->k[i]->s, k, l)) return &d->v[i];
    return NULL;
}
static int dict_set(rt *r, const qw_jnode *n, jdict *d, const char *k, size_t l, jv v) {
    jv *slot = dict_find(r, d, k, l);
    if (slot) {
        *slot = v;
        return 0;
    }
    if (d->n == d->cap) {
        jstr **nk = alloc(r, n, d->cap * 2 * sizeof *nk);
        jv *nv = alloc(r, n, d->cap * 2 * sizeof *nv);
        if (!nk || !nv) return -1;
        memcpy(nk, d->k, d->n * sizeof *nk);
        memcpy(nv, d->v, d->n * sizeof *nv);
        d->k = nk;
        d->v = nv;
        d->cap *= 2;
    }
    if (!(d->k[d->n] = mkjstr(r, n, k, l))) return -1;
    d->v[d->n++] = v;
    return 0;
}

static const char *type_name(const jv *v) {
    static const char *names[] = {"undefined", "none", "boolean", "integer",  "float",
                                  "string",    "list", "dict",    "namespace"};
    return names[v->t];
}

static int truthy(const jv *v) {
    switch (v->t) {
    case V_BOOL:
    case V_INT: return v->i != 0;
    case V_FLOAT: return v->f != 0;
    case V_STR: return v->s->n > 0;
    case V_LIST: return v->l->n > 0;
    case V_DICT: return v->d->n > 0;
    case V_NS: return 1;
    default: return 0;
    }
}

/* ---- JSON in ------------------------------------------------------------------------------------ */

static int from_cjson(rt *r, const cJSON *c, jv *out, int depth) {
    if (depth > MAX_VALUE_DEPTH) return FAIL(NULL, "a variable is nested more than %d levels deep", MAX_VALUE_DEPTH);
    if (cost(r, NULL, 0)) return -1;
    *out = UNDEF;
    if (cJSON_IsNull(c))
        out->t = V_NONE;
    else if (cJSON_IsBool(c))
        *out = vbool(cJSON_IsTrue(c));
    else if (cJSON_IsNumber(c)) { /* integral numbers are integers, as JavaScript's JSON gives them */
        double f = c->valuedouble;
        *out = f == floor(f) && fabs(f) < 9007199254740992.0 ? vint((int64_t)f) : vfloat(f);
    } else if (cJSON_IsString(c))
        return mkstr(r, NULL, c->valuestring, strlen(c->valuestring), out);
    else if (cJSON_IsArray(c)) {
        jlist *l = mklist(r, NULL, (size_t)cJSON_GetArraySize(c));
        if (!l) return -1;
        for (const cJSON *e = c->child; e; e = e->next) {
            jv v;
            if (from_cjson(r, e, &v, depth + 1) || list_push(r, NULL, l, v)) return -1;
        }
        out->t = V_LIST;
        out->l = l;
    } else if (cJSON_IsObject(c)) {
        jdict *d = mkdict(r, NULL, (size_t)cJSON_GetArraySize(c));
        if (!d) return -1;
        for (const cJSON *e = c->child; e; e = e->next) {
            jv v;
            if (from_cjson(r, e, &v, depth + 1) || dict_set(r, NULL, d, e->string, strlen(e->string), v)) return -1;
        }
        out->t = V_DICT;
        out->d = d;
    }
    return 0;
}

/* ---- text out ----------------------------------------------------------------------------------- */

/* Number as JavaScript's Number.prototype.toString writes it (shortest digits that read back). */
static void fmt_double(double f, char *buf, size_t cap) {
    if (isnan(f)) {
        snprintf(buf, cap, "NaN");
        return;
    }
    if (isinf(f)) {
        snprintf(buf, cap, f < 0 ? "-Infinity" : "Infinity");
        return;
    }
    if (f == 0) {
        snprintf(buf, cap, "0");
        return;
    }
    char e[40];
    int p;
    for (p = 1; p <= 17; p++) {
        snprintf(e, sizeof e, "%.*e", p - 1, f);
        if (strtod(e, NULL) == f) break;
    }
    /* e: [-]d.ddde[+-]xx -> digits and exponent */
    char digits[24];
    int nd = 0, neg = e[0] == '-';
    const char *q = e + neg;
    for (; *q && *q != 'e'; q++)
        if (*q != '.') digits[nd++] = *q;
    digits[nd] = 0;
    int x = atoi(q + 1); /* value = 0.digits * 10^(x+1) */
    char *o = buf;
    size_t left = cap;
#define OUT(...) \
    do { \
        int w = snprintf(o, left, __VA_ARGS__); \
        if (w < 0 || (size_t)w >= left) return; \
        o += w; \
        left -= (size_t)w; \
    } while (0)
    if (neg) OUT("-");
    if (x >= 21 || x < -6) {
        OUT("%c", digits[0]);
        if (nd > 1) OUT(".%s", digits + 1);
        OUT("e%c%d", x < 0 ? '-' : '+', x < 0 ? -x : x);
    } else if (x < 0) {
        OUT("0.");
        for (int i = -1; i > x; i--) OUT("0");
        OUT("%s", digits);
    } else {
        for (int i = 0; i <= x; i++) OUT("%c", i < nd ? digits[i] : '0');
        if (nd > x + 1) OUT(".%s", digits + x + 1);
    }
#undef OUT
}

static int json_str(rt *r, const qw_jnode *n, sbuf *b, const char *s, size_t l) {
    if (cost(r, n, l) || sb_put(r, n, b, "\"", 1)) return -1;
    size_t run = 0;
    for (size_t i = 0; i < l; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *esc = NULL;
        char u[8];
        switch (c) {
        case '"': esc = "\\\""; break;
        case '\\': esc = "\\\\"; break;
        case '\n': esc = "\\n"; break;
        case '\r': esc = "\\r"; break;
        case '\t': esc = "\\t"; break;
        case '\b': esc = "\\b"; break;
        case '\f': esc = "\\f"; break;
        default:
            if (c < 0x20) {
                snprintf(u, sizeof u, "\\u%04x", c);
                esc = u;
            }
        }
        if (!esc) continue;
        if (sb_put(r, n, b, s + run, i - run) || sb_puts(r, n, b, esc)) return -1;
        run = i + 1;
    }
    return sb_put(r, n, b, s + run, l - run) || sb_put(r, n, b, "\"", 1) ? -1 : 0;
}

typedef struct json_opts {
    int indent;
    int sort_keys;
} json_opts;

static int key_cmp(const void *a, const void *b) {
    const jstr *x = **(jstr *const *const *)a, *y = **(jstr *const *const *)b;
    size_t m = x->n < y->n ? x->n : y->n;
    int c = memcmp(x->s, y->s, m);
    return c ? c : (x->n > y->n) - (x->n < y->n);
}

/* tojson: Python's json.dumps(x, ensure_ascii=False, indent=..., sort_keys=...), which is also what
 * @huggingface/jinja writes. undef_null: undefined as null (tojson) or as "undefined" (printing). */
static int to_json(rt *r, const qw_jnode *n, sbuf *b, const jv *v, const json_opts *o, int depth, int undef_null) {
    if (depth > MAX_VALUE_DEPTH) return FAIL(n, "a value is nested more than %d levels deep", MAX_VALUE_DEPTH);
    if (cost(r, n, 0)) return -1;
    char num[40];
    switch (v->t) {
    case V_UNDEF: return sb_puts(r, n, b, undef_null ? "null" : "undefined");
    case V_NONE: return sb_puts(r, n, b, "null");
    case V_BOOL: return sb_puts(r, n, b, v->i ? "true" : "false");
    case V_INT: snprintf(num, sizeof num, "%lld", (long long)v->i); return sb_puts(r, n, b, num);
    case V_FLOAT: fmt_double(v->f, num, sizeof num); return sb_puts(r, n, b, num);
    case V_STR: return json_str(r, n, b, v->s->s, v->s->n);
    default: break;
    }
    int list = v->t == V_LIST;
    size_t cnt = list ? v->l->n : v->d->n;
    const char *item_sep = o->indent ? "," : ", ";
    if (sb_puts(r, n, b, list ? "[" : "{")) return -1;
    jstr ***order = NULL; /* sort_keys: pointers to the keys, sorted */
    if (!list && o->sort_keys && cnt) {
        if (!(order = alloc(r, n, cnt * sizeof *order))) return -1;
        for (size_t i = 0; i < cnt; i++) order[i] = &v->d->k[i];
        qsort(order, cnt, sizeof *order, key_cmp);
    }
    for (size_t i = 0; i < cnt; i++) {
        if (i && sb_puts(r, n, b, item_sep)) return -1;
        if (o->indent) {
            if (sb_puts(r, n, b, "\n")) return -1;
            for (int k = 0; k < (depth + 1) * o->indent; k++)
                if (sb_put(r, n, b, " ", 1)) return -1;
        }
        if (list) {
            if (to_json(r, n, b, &v->l->v[i], o, depth + 1, undef_null)) return -1;
            continue;
        }
        size_t j = order ? (size_t)(order[i] - v->d->k) : i;
        if (json_str(r, n, b, v->d->k[j]->s, v->d->k[j]->n) || sb_puts(r, n, b, ": ") ||
            to_json(r, n, b, &v->d->v[j], o, depth + 1, undef_null))
            return -1;
    }
    if (o->indent && cnt) {
        if (sb_puts(r, n, b, "\n")) return -1;
        for (int k = 0; k < depth * o->indent; k++)
            if (sb_put(r, n, b, " ", 1)) return -1;
    }
    return sb_puts(r, n, b, list ? "]" : "}");
}

/* The text of a value when printed or joined: strings as they are, others as @huggingface/jinja's toString. */
static int to_text(rt *r, const qw_jnode *n, sbuf *b, const jv *v) {
    static const json_opts plain = {0, 0};
    char num[48];
    switch (v->t) {
    case V_UNDEF:
    case V_NONE: return 0;
    case V_STR: return cost(r, n, v->s->n) || sb_put(r, n, b, v->s->s, v->s->n);
    case V_FLOAT:
        if (v->f == floor(v->f) && fabs(v->f) < 1e21) { /* JavaScript's FloatValue: 3.0 */
            snprintf(num, sizeof num, "%.1f", v->f);
            return sb_puts(r, n, b, num);
        }
        /* fall through */
    default: return to_json(r, n, b, v, &plain, 0, 0);
    }
}

/* The value as a string value (for ~, join, the string filter). */
static int stringify(rt *r, const qw_jnode *n, const jv *v, jv *out) {
    if (v->t == V_STR) {
        *out = *v;
        return 0;
    }
    sbuf b = {0};
    int rc = to_text(r, n, &b, v) || mkstr(r, n, b.p ? b.p : "", b.n, out);
    free(b.p);
    return rc ? -1 : 0;
}

/* ---- comparisons ------------------------------------------------------------------------------ */

static int is_num(const jv *v) { return v->t == V_INT || v->t == V_FLOAT || v->t == V_BOOL; }
static double num(const jv *v) { return v->t == V_FLOAT ? v->f : (double)v->i; }

/* Python's == (1 == 1.0, lists and dicts by content); -1 when nested too deeply. */
static int equal(rt *r, const jv *a, const jv *b, int depth) {
    if (depth > MAX_VALUE_DEPTH) return -1;
    if (is_num(a) && is_num(b)) return a->t != V_FLOAT && b->t != V_FLOAT ? a->i == b->i : num(a) == num(b);
    if (a->t != b->t) return 0;
    switch (a->t) {
    case V_UNDEF:
    case V_NONE: return 1;
    case V_STR: r->steps += (long)(a->s->n >> 6); return a->s->n == b->s->n && !memcmp(a->s->s, b->s->s, a->s->n);
    case V_LIST:
        if (a->l->n != b->l->n) return 0;
        for (size_t i = 0; i < a->l->n; i++) {
            int e = equal(r, &a->l->v[i], &b->l->v[i], depth + 1);
            if (e != 1) return e;
        }
        return 1;
    case V_DICT:
    case V_NS:
        if (a->d->n != b->d->n) return 0;
        for (size_t i = 0; i < a->d->n; i++) {
            jv *o = dict_find(r, b->d, a->d->k[i]->s, a->d->k[i]->n);
            if (!o) return 0;
            int e = equal(r, &a->d->v[i], o, depth + 1);
            if (e != 1) return e;
        }
        return 1;
    default: return 0;
    }
}

static int eq(rt *r, const qw_jnode *n, const jv *a, const jv *b, int *res) {
    int e = equal(r, a, b, 0);
    if (e < 0) return FAIL(n, "values nested more than %d levels deep compared", MAX_VALUE_DEPTH);
    *res = e;
    return cost(r, n, 0);
}

static int contains(rt *r, const qw_jnode *n, const jv *item, const jv *seq, int *res) {
    *res = 0;
    if (seq->t == V_UNDEF) return 0; /* anything in undefined is false, as @huggingface/jinja has it */
    if (seq->t == V_STR) {
        if (item->t != V_STR) return FAIL(n, "'in <string>' needs a string on the left, not %s", type_name(item));
        if (cost(r, n, seq->s->n)) return -1;
        if (!item->s->n) {
            *res = 1;
            return 0;
        }
        for (size_t i = 0; i + item->s->n <= seq->s->n; i++)
            if (!memcmp(seq->s->s + i, item->s->s, item->s->n)) {
                *res = 1;
                break;
            }
        return 0;
    }
    if (seq->t == V_LIST) {
        for (size_t i = 0; i < seq->l->n && !*res; i++)
            if (eq(r, n, item, &seq->l->v[i], res)) return -1;
        return 0;
    }
    if (seq->t == V_DICT || seq->t == V_NS) {
        *res = item->t == V_STR && dict_find(r, seq->d, item->s->s, item->s->n) != NULL;
        return 0;
    }
    return FAIL(n, "'in' needs a string, list or dict on the right, not %s", type_name(seq));
}

static int order(rt *r, const qw_jnode *n, const jv *a, const jv *b, int *res) {
    if (is_num(a) && is_num(b)) {
        double x = num(a), y = num(b);
        *res = (x > y) - (x < y);
        return 0;
    }
    if (a->t == V_STR && b->t == V_STR) {
        size_t m = a->s->n < b->s->n ? a->s->n : b->s->n;
        int c = memcmp(a->s->s, b->s->s, m);
        *res = c ? (c > 0) - (c < 0) : (a->s->n > b->s->n) - (a->s->n < b->s->n);
        return cost(r, n, m);
    }
    return FAIL(n, "cannot compare %s with %s", type_name(a), type_name(b));
}

/* ---- scopes ------------------------------------------------------------------------------------- */

static jv lookup(rt *r, const char *k, size_t l) {
    for (int i = r->nframes - 1; i >= 0; i--) {
        jv *v = dict_find(r, r->frames[i], k, l);
        if (v) return *v;
    }
    jv *v = dict_find(r, r->globals, k, l);
    return v ? *v : UNDEF;
}

/* ---- strings ------------------------------------------------------------------------------------ */

static size_t utf8_len(const char *s, size_t n) {
    size_t c = 0;
    for (size_t i = 0; i < n; i++) c += ((unsigned char)s[i] & 0xC0) != 0x80;
    return c;
}
/* Byte offset of code point i (clamped to n). */
static size_t utf8_off(const char *s, size_t n, size_t i) {
    size_t b = 0;
    while (b < n && i) {
        b++;
        while (b < n && ((unsigned char)s[b] & 0xC0) == 0x80) b++;
        i--;
    }
    return b;
}

static int is_space(unsigned char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}
static int in_set(unsigned char c, const jstr *set) { return set ? memchr(set->s, c, set->n) != NULL : is_space(c); }

/* strip/lstrip/rstrip/trim: whitespace, or the bytes of chars. */
static int strip(rt *r, const qw_jnode *n, const jstr *s, const jstr *chars, int left, int right, jv *out) {
    size_t a = 0, b = s->n;
    if (left)
        while (a < b && in_set((unsigned char)s->s[a], chars)) a++;
    if (right)
        while (b > a && in_set((unsigned char)s->s[b - 1], chars)) b--;
    return mkstr(r, n, s->s + a, b - a, out);
}

static int change_case(rt *r, const qw_jnode *n, const jstr *s, int mode, jv *out) { /* 0 upper 1 lower 2 title 3 cap */
    if (mkstr(r, n, s->s, s->n, out)) return -1;
    char *p = out->s->s;
    int start = 1;
    for (size_t i = 0; i < s->n; i++) {
        char c = p[i];
        int up = mode == 0 || ((mode == 2 || mode == 3) && start);
        if (mode == 3 && i > 0) up = 0;
        if (up && c >= 'a' && c <= 'z')
            p[i] = (char)(c - 32);
        else if (!up && c >= 'A' && c <= 'Z')
            p[i] = (char)(c + 32);
        start = mode == 2 ? !((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) : 0;
    }
    return 0;
}

static int replace(rt *r, const qw_jnode *n, const jstr *s, const jstr *from, const jstr *to, int64_t count, jv *out) {
    sbuf b = {0};
    size_t i = 0;
    int rc = cost(r, n, s->n);
    int64_t done = 0;
    while (!rc && i <= s->n) {
        if ((count < 0 || done < count) && from->n == 0) { /* Python inserts between every character */
            rc = sb_put(r, n, &b, to->s, to->n);
            done++;
            if (i == s->n) break;
            size_t nx = utf8_off(s->s + i, s->n - i, 1);
            if (!rc) rc = sb_put(r, n, &b, s->s + i, nx);
            i += nx;
            if (!rc) rc = cost(r, n, to->n);
            continue;
        }
        const char *hit = NULL;
        if (count < 0 || done < count)
            for (size_t k = i; k + from->n <= s->n; k++)
                if (!memcmp(s->s + k, from->s, from->n)) {
                    hit = s->s + k;
                    break;
                }
        if (!hit) {
            rc = sb_put(r, n, &b, s->s + i, s->n - i);
            break;
        }
        rc = sb_put(r, n, &b, s->s + i, (size_t)(hit - s->s) - i) || sb_put(r, n, &b, to->s, to->n) ||
             cost(r, n, to->n);
        i = (size_t)(hit - s->s) + from->n;
        done++;
    }
    if (!rc) rc = mkstr(r, n, b.p ? b.p : "", b.n, out);
    free(b.p);
    return rc ? -1 : 0;
}

static int split(rt *r, const qw_jnode *n, const jstr *s, const jstr *sep, int64_t maxsplit, jv *out) {
    jlist *l = mklist(r, n, 4);
    if (!l || cost(r, n, s->n)) return -1;
    jv part;
    size_t i = 0;
    int64_t done = 0;
    if (!sep) { /* runs of whitespace, no empty parts */
        for (;;) {
            while (i < s->n && is_space((unsigned char)s->s[i])) i++;
            if (i >= s->n) break;
            size_t e = i;
            if (maxsplit >= 0 && done >= maxsplit)
                e = s->n;
            else
                while (e < s->n && !is_space((unsigned char)s->s[e])) e++;
            if (mkstr(r, n, s->s + i, e - i, &part) || list_push(r, n, l, part)) return -1;
            done++;
            i = e;
        }
    } else {
        if (!sep->n) return FAIL(n, "split: empty separator");
        for (;;) {
            const char *hit = NULL;
            if (maxsplit < 0 || done < maxsplit)
                for (size_t k = i; k + sep->n <= s->n; k++)
                    if (!memcmp(s->s + k, sep->s, sep->n)) {
                        hit = s->s + k;
                        break;
                    }
            size_t e = hit ? (size_t)(hit - s->s) : s->n;
            if (mkstr(r, n, s->s + i, e - i, &part) || list_push(r, n, l, part)) return -1;
            if (!hit) break;
            i = e + sep->n;
            done++;
        }
    }
    out->t = V_LIST;
    out->l = l;
    return 0;
}

/* ---- indexing ----------------------------------------------------------------------------------- */

static int get_attr(rt *r, const qw_jnode *n, const jv *obj, const char *k, size_t l, jv *out) {
    *out = UNDEF;
    if (obj->t == V_DICT || obj->t == V_NS) {
        jv *v = dict_find(r, obj->d, k, l);
        if (v) *out = *v;
        return 0;
    }
    if (obj->t == V_UNDEF) return FAIL(n, "'%.*s' of an undefined value", (int)l, k);
    return 0; /* other types have no attributes here: undefined, as Jinja gives */
}

static int get_item(rt *r, const qw_jnode *n, const jv *obj, const jv *key, jv *out) {
    *out = UNDEF;
    if (obj->t == V_DICT || obj->t == V_NS) {
        if (key->t == V_STR) return get_attr(r, n, obj, key->s->s, key->s->n, out);
        return 0;
    }
    if (obj->t == V_LIST || obj->t == V_STR) {
        if (key->t != V_INT) return FAIL(n, "%s indices must be integers, not %s", type_name(obj), type_name(key));
        int64_t len = obj->t == V_LIST ? (int64_t)obj->l->n : (int64_t)utf8_len(obj->s->s, obj->s->n);
        int64_t i = key->i < 0 ? key->i + len : key->i;
        if (i < 0 || i >= len) return 0;
        if (obj->t == V_LIST) {
            *out = obj->l->v[i];
            return 0;
        }
        size_t a = utf8_off(obj->s->s, obj->s->n, (size_t)i);
        size_t b = a + utf8_off(obj->s->s + a, obj->s->n - a, 1);
        return cost(r, n, obj->s->n) || mkstr(r, n, obj->s->s + a, b - a, out);
    }
    if (obj->t == V_UNDEF) return FAIL(n, "subscript of an undefined value");
    return 0;
}

/* Python's slice semantics, on lists and strings (code points). */
static int slice(rt *r, const qw_jnode *n, const jv *obj, const jv *jstart, const jv *jstop, const jv *jstep, jv *out) {
    if (obj->t != V_LIST && obj->t != V_STR) return FAIL(n, "cannot slice %s", type_name(obj));
    const jv *parts[3] = {jstart, jstop, jstep};
    for (int i = 0; i < 3; i++)
        if (parts[i]->t != V_UNDEF && parts[i]->t != V_NONE && parts[i]->t != V_INT)
            return FAIL(n, "slice bounds must be integers");
    int64_t len = obj->t == V_LIST ? (int64_t)obj->l->n : (int64_t)utf8_len(obj->s->s, obj->s->n);
    int64_t step = jstep->t == V_INT ? jstep->i : 1;
    if (!step) return FAIL(n, "slice step cannot be zero");
    int64_t lo = step < 0 ? -1 : 0, hi = step < 0 ? len - 1 : len;
    int64_t a = step < 0 ? hi : lo, b = step < 0 ? lo : hi;
    if (jstart->t == V_INT) {
        a = jstart->i < 0 ? jstart->i + len : jstart->i;
        a = a < lo ? lo : a > hi ? hi : a;
    }
    if (jstop->t == V_INT) {
        b = jstop->i < 0 ? jstop->i + len : jstop->i;
        b = b < lo ? lo : b > hi ? hi : b;
    }
    if (cost(r, n, obj->t == V_STR ? obj->s->n : (size_t)len)) return -1;
    if (obj->t == V_LIST) {
        jlist *l = mklist(r, n, 4);
        if (!l) return -1;
        for (int64_t i = a; step > 0 ? i < b : i > b; i += step)
            if (list_push(r, n, l, obj->l->v[i])) return -1;
        out->t = V_LIST;
        out->l = l;
        return 0;
    }
    /* strings: code point offsets, then bytes */
    size_t *offs = alloc(r, n, ((size_t)len + 1) * sizeof *offs);
    if (!offs) return -1;
    for (int64_t i = 0, o = 0; i <= len; i++) {
        offs[i] = (size_t)o;
        if (i < len) o += (int64_t)utf8_off(obj->s->s + o, obj->s->n - (size_t)o, 1);
    }
    sbuf sb = {0};
    int rc = 0;
    for (int64_t i = a; !rc && (step > 0 ? i < b : i > b); i += step)
        rc = sb_put(r, n, &sb, obj->s->s + offs[i], offs[i + 1] - offs[i]);
    if (!rc) rc = mkstr(r, n, sb.p ? sb.p : "", sb.n, out);
    free(sb.p);
    return rc ? -1 : 0;
}

/* Items to iterate: a list's items, a dict's keys, a string's characters. */
static int iterable(rt *r, const qw_jnode *n, const jv *v, jlist **out) {
    if (v->t == V_LIST) {
        *out = v->l;
        return 0;
    }
    jlist *l = mklist(r, n, 4);
    if (!l) return -1;
    *out = l;
    if (v->t == V_DICT) {
        for (size_t i = 0; i < v->d->n; i++) {
            jv k = {V_STR, {0}};
            k.s = v->d->k[i];
            if (list_push(r, n, l, k)) return -1;
        }
        return 0;
    }
    if (v->t == V_STR) {
        for (size_t i = 0; i < v->s->n;) {
            size_t k = utf8_off(v->s->s + i, v->s->n - i, 1);
            jv c;
            if (mkstr(r, n, v->s->s + i, k, &c) || list_push(r, n, l, c)) return -1;
            i += k;
        }
        return 0;
    }
    if (v->t == V_UNDEF || v->t == V_NONE) return 0; /* as @huggingface/jinja: nothing to iterate */
    return FAIL(n, "%s is not iterable", type_name(v));
}

static int items(rt *r, const qw_jnode *n, const jv *d, jv *out) {
    if (d->t != V_DICT) return FAIL(n, "items() of %s (needs a dict)", type_name(d));
    jlist *l = mklist(r, n, d->d->n);
    if (!l) return -1;
    for (size_t i = 0; i < d->d->n; i++) {
        jlist *pair = mklist(r, n, 2);
        if (!pair) return -1;
        pair->v[0].t = V_STR;
        pair->v[0].s = d->d->k[i];
        pair->v[1] = d->d->v[i];
        pair->n = 2;
        jv p = {V_LIST, {0}};
        p.l = pair;
        if (list_push(r, n, l, p)) return -1;
    }
    out->t = V_LIST;
    out->l = l;
    return 0;
}

/* ---- evaluation --------------------------------------------------------------------------------- */

static int eval(rt *r, const qw_jnode *n, jv *out);
static int run_test(rt *r, const qw_jnode *n, const char *name, size_t nlen, const jv *x, const jv *args, int nargs,
                    int *res);

static int name_is(const char *s, size_t l, const char *lit) { return l == strlen(lit) && !memcmp(s, lit, l); }

/* Evaluated arguments of a call/filter/test: positional in pos[], keyword in kw (names) / kwv. */
#define MAX_ARGS 8
typedef struct args {
    jv pos[MAX_ARGS];
    int npos;
    const qw_jnode *kwn[MAX_ARGS];
    jv kwv[MAX_ARGS];
    int nkw;
} args;

static int eval_args(rt *r, const qw_jnode *n, args *a, int skip) {
    a->npos = a->nkw = 0;
    for (int i = skip; i < n->n; i++) {
        const qw_jnode *x = n->kids[i];
        if (a->npos + a->nkw >= MAX_ARGS) return FAIL(x, "more than %d arguments", MAX_ARGS);
        if (x->kind == JN_KWARG) {
            a->kwn[a->nkw] = x;
            if (eval(r, x->a, &a->kwv[a->nkw])) return -1;
            a->nkw++;
        } else {
            if (a->nkw) return FAIL(x, "positional argument after a keyword argument");
            if (eval(r, x, &a->pos[a->npos++])) return -1;
        }
    }
    return 0;
}

/* Argument i by position, or by keyword name (NULL: none); undefined when absent. */
static jv arg(const args *a, int i, const char *kw) {
    if (i >= 0 && i < a->npos) return a->pos[i];
    for (int k = 0; kw && k < a->nkw; k++)
        if (name_is(a->kwn[k]->s, a->kwn[k]->slen, kw)) return a->kwv[k];
    return UNDEF;
}

static int need_str(rt *r, const qw_jnode *n, const jv *v, const char *what) {
    if (v->t != V_STR) return FAIL(n, "%s needs a string, not %s", what, type_name(v));
    return 0;
}

static int int_arg(rt *r, const qw_jnode *n, jv v, int64_t dflt, const char *what, int64_t *out) {
    if (v.t == V_UNDEF || v.t == V_NONE) {
        *out = dflt;
        return 0;
    }
    if (v.t != V_INT && v.t != V_BOOL) return FAIL(n, "%s needs an integer, not %s", what, type_name(&v));
    *out = v.i;
    return 0;
}

static int str_method(rt *r, const qw_jnode *n, const jv *s, const char *m, size_t ml, const args *a, jv *out) {
    const jstr *S = s->s;
    jv a0 = arg(a, 0, NULL), a1 = arg(a, 1, NULL);
    if (name_is(m, ml, "startswith") || name_is(m, ml, "endswith")) {
        int end = m[0] == 'e', hit = 0;
        const jv *cands = &a0;
        size_t nc = 1;
        if (a0.t == V_LIST) {
            cands = a0.l->v;
            nc = a0.l->n;
        } /* a tuple of prefixes */
        for (size_t i = 0; i < nc && !hit; i++) {
            if (need_str(r, n, &cands[i], end ? "endswith" : "startswith")) return -1;
            const jstr *p = cands[i].s;
            hit = p->n <= S->n && !memcmp(end ? S->s + S->n - p->n : S->s, p->s, p->n);
        }
        *out = vbool(hit);
        return cost(r, n, S->n);
    }
    if (name_is(m, ml, "strip") || name_is(m, ml, "lstrip") || name_is(m, ml, "rstrip")) {
        if (a0.t != V_UNDEF && a0.t != V_NONE && need_str(r, n, &a0, "strip")) return -1;
        return strip(r, n, S, a0.t == V_STR ? a0.s : NULL, m[0] != 'r', m[0] != 'l', out);
    }
    if (name_is(m, ml, "upper")) return change_case(r, n, S, 0, out);
    if (name_is(m, ml, "lower")) return change_case(r, n, S, 1, out);
    if (name_is(m, ml, "title")) return change_case(r, n, S, 2, out);
    if (name_is(m, ml, "capitalize")) return change_case(r, n, S, 3, out);
    if (name_is(m, ml, "split")) {
        int64_t maxs = -1;
        if (a0.t != V_UNDEF && a0.t != V_NONE && need_str(r, n, &a0, "split")) return -1;
        if (int_arg(r, n, a1, -1, "split", &maxs)) return -1;
        return split(r, n, S, a0.t == V_STR ? a0.s : NULL, maxs, out);
    }
    if (name_is(m, ml, "replace")) {
        int64_t count = -1;
        if (need_str(r, n, &a0, "replace") || need_str(r, n, &a1, "replace") ||
            int_arg(r, n, arg(a, 2, NULL), -1, "replace", &count))
            return -1;
        return replace(r, n, S, a0.s, a1.s, count, out);
    }
    if (name_is(m, ml, "find") || name_is(m, ml, "count")) {
        if (need_str(r, n, &a0, "find")) return -1;
        int64_t found = -1, cnt = 0;
        for (size_t k = 0; k + a0.s->n <= S->n; k++)
            if (!memcmp(S->s + k, a0.s->s, a0.s->n)) {
                if (found < 0) found = (int64_t)utf8_len(S->s, k);
                cnt++;
                if (a0.s->n) k += a0.s->n - 1;
            }
        *out = vint(m[0] == 'f' ? found : cnt);
        return cost(r, n, S->n);
    }
    if (name_is(m, ml, "join")) { /* 'sep'.join(list) */
        jlist *l;
        if (iterable(r, n, &a0, &l)) return -1;
        sbuf b = {0};
        int rc = 0;
        for (size_t i = 0; !rc && i < l->n; i++)
            rc = (i && sb_put(r, n, &b, S->s, S->n)) || to_text(r, n, &b, &l->v[i]);
        if (!rc) rc = mkstr(r, n, b.p ? b.p : "", b.n, out);
        free(b.p);
        return rc ? -1 : 0;
    }
    return FAIL(n, "unsupported string method '%.*s'", (int)ml, m);
}

static int dict_method(rt *r, const qw_jnode *n, const jv *d, const char *m, size_t ml, const args *a, jv *out) {
    if (name_is(m, ml, "items")) return items(r, n, d, out);
    if (name_is(m, ml, "keys") || name_is(m, ml, "values")) {
        jlist *l = mklist(r, n, d->d->n);
        if (!l) return -1;
        for (size_t i = 0; i < d->d->n; i++) {
            jv v = d->d->v[i];
            if (m[0] == 'k') {
                v.t = V_STR;
                v.s = d->d->k[i];
            }
            if (list_push(r, n, l, v)) return -1;
        }
        out->t = V_LIST;
        out->l = l;
        return 0;
    }
    if (name_is(m, ml, "get")) {
        jv k = arg(a, 0, NULL);
        if (get_item(r, n, d, &k, out)) return -1;
        if (out->t == V_UNDEF) {
            *out = arg(a, 1, NULL);
            if (out->t == V_UNDEF) out->t = V_NONE;
        }
        return 0;
    }
    return FAIL(n, "unsupported dict method '%.*s'", (int)ml, m);
}

static int call(rt *r, const qw_jnode *n, jv *out) {
    args a;
    const qw_jnode *f = n->a;
    *out = UNDEF;
    if (f->kind == JN_ATTR) { /* a method */
        jv obj;
        if (eval(r, f->a, &obj) || eval_args(r, n, &a, 0)) return -1;
        if (obj.t == V_STR) return str_method(r, n, &obj, f->s, f->slen, &a, out);
        if (obj.t == V_DICT) return dict_method(r, n, &obj, f->s, f->slen, &a, out);
        return FAIL(n, "unsupported method '%.*s' of %s", (int)f->slen, f->s, type_name(&obj));
    }
    if (f->kind != JN_NAME) return FAIL(n, "only named functions and methods can be called");
    if (eval_args(r, n, &a, 0)) return -1;
    const char *fn = f->s;
    size_t fl = f->slen;
    if (name_is(fn, fl, "raise_exception")) {
        jv msg = arg(&a, 0, NULL), s;
        if (stringify(r, n, &msg, &s)) return -1;
        return rfail(r, n, QW_E_ARG, "the template refused the conversation: %s", s.s->s);
    }
    if (name_is(fn, fl, "namespace") || name_is(fn, fl, "dict")) {
        jdict *d = mkdict(r, n, 4);
        if (!d) return -1;
        if (a.npos > 1) return FAIL(n, "%.*s() takes at most one positional argument", (int)fl, fn);
        if (a.npos == 1) {
            if (a.pos[0].t != V_DICT) return FAIL(n, "%.*s() of %s", (int)fl, fn, type_name(&a.pos[0]));
            for (size_t i = 0; i < a.pos[0].d->n; i++)
                if (dict_set(r, n, d, a.pos[0].d->k[i]->s, a.pos[0].d->k[i]->n, a.pos[0].d->v[i])) return -1;
        }
        for (int k = 0; k < a.nkw; k++)
            if (dict_set(r, n, d, a.kwn[k]->s, a.kwn[k]->slen, a.kwv[k])) return -1;
        out->t = fn[0] == 'n' ? V_NS : V_DICT;
        out->d = d;
        return 0;
    }
    if (name_is(fn, fl, "range")) {
        int64_t v[3] = {0, 0, 1};
        if (a.npos < 1 || a.npos > 3) return FAIL(n, "range() takes 1 to 3 arguments");
        for (int i = 0; i < a.npos; i++)
            if (int_arg(r, n, a.pos[i], 0, "range", &v[a.npos == 1 ? 1 : i])) return -1;
        if (!v[2]) return FAIL(n, "range() step cannot be zero");
        jlist *l = mklist(r, n, 4);
        if (!l) return -1;
        for (int64_t i = v[0]; v[2] > 0 ? i < v[1] : i > v[1]; i += v[2])
            if (cost(r, n, 0) || list_push(r, n, l, vint(i))) return -1;
        out->t = V_LIST;
        out->l = l;
        return 0;
    }
    if (name_is(fn, fl, "strftime_now")) { /* Llama 3.x templates print today's date */
        jv fmt = arg(&a, 0, NULL);
        if (need_str(r, n, &fmt, "strftime_now")) return -1;
        time_t now = time(NULL);
        struct tm tmv, *tm = localtime_r(&now, &tmv);
        char buf[256];
        size_t l = tm ? strftime(buf, sizeof buf, fmt.s->s, tm) : 0;
        return mkstr(r, n, buf, l, out);
    }
    jv v = lookup(r, fn, fl);
    if (v.t != V_UNDEF) return FAIL(n, "'%.*s' is a %s, not a function", (int)fl, fn, type_name(&v));
    return FAIL(n, "unsupported function '%.*s'", (int)fl, fn);
}

/* select/reject/selectattr/rejectattr/map over a list. */
static int filter_seq(rt *r, const qw_jnode *n, const char *f, size_t fl, const jv *x, const args *a, jv *out) {
    jlist *src, *l;
    if (iterable(r, n, x, &src) || !(l = mklist(r, n, 4))) return -1;
    int attr = fl > 4 && !memcmp(f + fl - 4, "attr", 4), keep_if = f[0] == 's';
    if (name_is(f, fl, "map")) {
        jv at = arg(a, -1, "attribute"), dflt = arg(a, -1, "default");
        if (at.t != V_STR) return FAIL(n, "map: only map(attribute='name') is supported");
        for (size_t i = 0; i < src->n; i++) {
            jv v;
            if (get_item(r, n, &src->v[i], &at, &v)) return -1;
            if (v.t == V_UNDEF && dflt.t != V_UNDEF) v = dflt;
            if (list_push(r, n, l, v)) return -1;
        }
    } else {
        int base = attr ? 1 : 0;
        jv at = arg(a, 0, NULL), test = arg(a, base, NULL);
        if (attr && at.t != V_STR) return FAIL(n, "%.*s needs an attribute name", (int)fl, f);
        if (test.t != V_UNDEF && test.t != V_STR) return FAIL(n, "%.*s needs a test name", (int)fl, f);
        jv targs[MAX_ARGS];
        int nt = 0;
        for (int i = base + 1; i < a->npos; i++) targs[nt++] = a->pos[i];
        for (size_t i = 0; i < src->n; i++) {
            jv v = src->v[i];
            int ok;
            if (attr && get_item(r, n, &src->v[i], &at, &v)) return -1;
            if (test.t == V_UNDEF)
                ok = truthy(&v);
            else if (run_test(r, n, test.s->s, test.s->n, &v, targs, nt, &ok))
                return -1;
            if (ok == keep_if && list_push(r, n, l, src->v[i])) return -1;
        }
    }
    out->t = V_LIST;
    out->l = l;
    return 0;
}

static int apply_filter(rt *r, const qw_jnode *n, const jv *x, jv *out) {
    args a;
    const char *f = n->s;
    size_t fl = n->slen;
    if (eval_args(r, n, &a, 0)) return -1;
    jv a0 = arg(&a, 0, NULL);
    *out = UNDEF;
    if (name_is(f, fl, "tojson")) {
        json_opts o = {0, 0};
        int64_t ind = 0;
        jv iv = arg(&a, 0, "indent"), sk = arg(&a, -1, "sort_keys"), ea = arg(&a, -1, "ensure_ascii");
        if (int_arg(r, n, iv, 0, "tojson indent", &ind)) return -1;
        if (ind < 0 || ind > 16) return FAIL(n, "tojson: indent %lld out of range", (long long)ind);
        if (truthy(&ea)) return FAIL(n, "tojson: ensure_ascii=true is not supported");
        if (arg(&a, -1, "separators").t != V_UNDEF) return FAIL(n, "tojson: separators are not supported");
        o.indent = (int)ind;
        o.sort_keys = truthy(&sk);
        sbuf b = {0};
        int rc = to_json(r, n, &b, x, &o, 0, 1) || mkstr(r, n, b.p ? b.p : "", b.n, out);
        free(b.p);
        return rc ? -1 : 0;
    }
    if (name_is(f, fl, "safe") || (name_is(f, fl, "list") && x->t == V_LIST)) {
        *out = *x;
        return 0;
    }
    if (name_is(f, fl, "default") || name_is(f, fl, "d")) {
        jv boolean = arg(&a, 1, "boolean");
        int use = x->t == V_UNDEF || (truthy(&boolean) && !truthy(x));
        *out = use ? a0 : *x;
        if (use && out->t == V_UNDEF) return mkstr(r, n, "", 0, out);
        return 0;
    }
    if (name_is(f, fl, "length") || name_is(f, fl, "count")) {
        if (x->t == V_STR)
            *out = vint((int64_t)utf8_len(x->s->s, x->s->n));
        else if (x->t == V_LIST)
            *out = vint((int64_t)x->l->n);
        else if (x->t == V_DICT || x->t == V_NS)
            *out = vint((int64_t)x->d->n);
        else
            return FAIL(n, "length of %s", type_name(x));
        return 0;
    }
    if (name_is(f, fl, "string")) return stringify(r, n, x, out);
    if (name_is(f, fl, "items")) return items(r, n, x, out);
    if (name_is(f, fl, "select") || name_is(f, fl, "reject") || name_is(f, fl, "selectattr") ||
        name_is(f, fl, "rejectattr") || name_is(f, fl, "map"))
        return filter_seq(r, n, f, fl, x, &a, out);
    if (name_is(f, fl, "join")) {
        jlist *l;
        jv sep = arg(&a, 0, "d"), at = arg(&a, 1, "attribute");
        if (x->t == V_STR) {
            *out = *x;
            return 0;
        }
        if (iterable(r, n, x, &l)) return -1;
        if (sep.t != V_UNDEF && need_str(r, n, &sep, "join")) return -1;
        sbuf b = {0};
        int rc = 0;
        for (size_t i = 0; !rc && i < l->n; i++) {
            jv v = l->v[i];
            if (at.t != V_UNDEF) rc = get_item(r, n, &l->v[i], &at, &v);
            if (!rc && i && sep.t == V_STR) rc = sb_put(r, n, &b, sep.s->s, sep.s->n);
            if (!rc) rc = to_text(r, n, &b, &v);
        }
        if (!rc) rc = mkstr(r, n, b.p ? b.p : "", b.n, out);
        free(b.p);
        return rc ? -1 : 0;
    }
    if (x->t == V_LIST) {
        if (name_is(f, fl, "first")) {
            if (x->l->n) *out = x->l->v[0];
            return 0;
        }
        if (name_is(f, fl, "last")) {
            if (x->l->n) *out = x->l->v[x->l->n - 1];
            return 0;
        }
        if (name_is(f, fl, "reverse")) {
            jlist *l = mklist(r, n, x->l->n);
            if (!l) return -1;
            for (size_t i = x->l->n; i-- > 0;) l->v[l->n++] = x->l->v[i];
            out->t = V_LIST;
            out->l = l;
            return cost(r, n, x->l->n);
        }
        if (name_is(f, fl, "unique")) {
            jlist *l = mklist(r, n, 4);
            if (!l) return -1;
            for (size_t i = 0; i < x->l->n; i++) {
                int seen = 0;
                for (size_t k = 0; k < l->n && !seen; k++)
                    if (eq(r, n, &x->l->v[i], &l->v[k], &seen)) return -1;
                if (!seen && list_push(r, n, l, x->l->v[i])) return -1;
            }
            out->t = V_LIST;
            out->l = l;
            return 0;
        }
    }
    if (x->t == V_STR) {
        if (name_is(f, fl, "trim")) {
            if (a0.t != V_UNDEF && need_str(r, n, &a0, "trim")) return -1;
            return strip(r, n, x->s, a0.t == V_STR ? a0.s : NULL, 1, 1, out);
        }
        if (name_is(f, fl, "upper")) return change_case(r, n, x->s, 0, out);
        if (name_is(f, fl, "lower")) return change_case(r, n, x->s, 1, out);
        if (name_is(f, fl, "title")) return change_case(r, n, x->s, 2, out);
        if (name_is(f, fl, "capitalize")) return change_case(r, n, x->s, 3, out);
        if (name_is(f, fl, "replace")) {
            args b = a;
            return str_method(r, n, x, "replace", 7, &b, out);
        }
        if (name_is(f, fl, "first") || name_is(f, fl, "last")) {
            jv i = vint(f[0] == 'f' ? 0 : -1);
            return get_item(r, n, x, &i, out);
        }
        if (name_is(f, fl, "reverse")) {
            jv none = UNDEF, step = vint(-1);
            return slice(r, n, x, &none, &none, &step, out);
        }
        if (name_is(f, fl, "list")) {
            jlist *l;
            if (iterable(r, n, x, &l)) return -1;
            out->t = V_LIST;
            out->l = l;
            return 0;
        }
        if (name_is(f, fl, "indent")) { /* indent(width=4, first=False, blank=False) */
            int64_t w = 4;
            jv wv = arg(&a, 0, "width"), first = arg(&a, 1, "first"), blank = arg(&a, 2, "blank");
            if (wv.t == V_STR) return FAIL(n, "indent: a string width is not supported");
            if (int_arg(r, n, wv, 4, "indent", &w)) return -1;
            if (w < 0 || w > 256) return FAIL(n, "indent: width out of range");
            sbuf b = {0};
            int rc = 0;
            const char *s = x->s->s, *end = s + x->s->n;
            for (int line = 0; !rc && s <= end; line++) {
                const char *nl = memchr(s, '\n', (size_t)(end - s));
                const char *e = nl ? nl : end;
                if ((line || truthy(&first)) && (e > s || truthy(&blank)))
                    for (int64_t k = 0; !rc && k < w; k++) rc = sb_put(r, n, &b, " ", 1);
                if (!rc) rc = sb_put(r, n, &b, s, (size_t)(e - s));
                if (!rc && nl) rc = sb_put(r, n, &b, "\n", 1);
                if (!nl) break;
                s = nl + 1;
            }
            if (!rc) rc = mkstr(r, n, b.p ? b.p : "", b.n, out);
            free(b.p);
            return rc ? -1 : 0;
        }
    }
    if (name_is(f, fl, "int") || name_is(f, fl, "float")) {
        int isint = f[0] == 'i';
        double v = 0;
        if (is_num(x))
            v = num(x);
        else if (x->t == V_STR)
            v = strtod(x->s->s, NULL);
        else if (x->t != V_NONE && x->t != V_UNDEF)
            return FAIL(n, "%.*s of %s", (int)fl, f, type_name(x));
        if (!isfinite(v) || fabs(v) > 9e18) v = 0;
        *out = isint ? vint((int64_t)floor(v)) : vfloat(v);
        return 0;
    }
    if (name_is(f, fl, "abs") && is_num(x)) {
        *out = x->t == V_FLOAT ? vfloat(fabs(x->f)) : vint(x->i < 0 ? -x->i : x->i);
        return 0;
    }
    if (name_is(f, fl, "bool")) {
        *out = vbool(truthy(x));
        return 0;
    }
    return FAIL(n, "unsupported filter '%.*s' on %s", (int)fl, f, type_name(x));
}

static int run_test(rt *r, const qw_jnode *n, const char *t, size_t tl, const jv *x, const jv *av, int na, int *res) {
    jv y = na > 0 ? av[0] : UNDEF;
    int c;
#define T(name) name_is(t, tl, name)
    if (T("defined"))
        *res = x->t != V_UNDEF;
    else if (T("undefined"))
        *res = x->t == V_UNDEF;
    else if (T("none"))
        *res = x->t == V_NONE;
    else if (T("string"))
        *res = x->t == V_STR;
    else if (T("number"))
        *res = x->t == V_INT || x->t == V_FLOAT;
    else if (T("integer"))
        *res = x->t == V_INT;
    else if (T("float"))
        *res = x->t == V_FLOAT;
    else if (T("boolean"))
        *res = x->t == V_BOOL;
    else if (T("true"))
        *res = x->t == V_BOOL && x->i;
    else if (T("false"))
        *res = x->t == V_BOOL && !x->i;
    else if (T("mapping"))
        *res = x->t == V_DICT;
    else if (T("iterable"))
        *res = x->t == V_LIST || x->t == V_STR || x->t == V_DICT;
    else if (T("sequence"))
        *res = x->t == V_LIST || x->t == V_STR || x->t == V_DICT;
    else if (T("callable"))
        *res = 0;
    else if (T("odd") || T("even")) {
        if (x->t != V_INT) return FAIL(n, "'%.*s' test of %s", (int)tl, t, type_name(x));
        *res = (x->i % 2 != 0) == T("odd");
    } else if (T("divisibleby")) {
        if (x->t != V_INT || y.t != V_INT || !y.i) return FAIL(n, "divisibleby needs integers");
        *res = x->i % y.i == 0;
    } else if (T("lower") || T("upper")) {
        if (x->t != V_STR) {
            *res = 0;
            return 0;
        }
        *res = 1;
        for (size_t i = 0; i < x->s->n; i++) {
            char ch = x->s->s[i];
            if (T("lower") ? (ch >= 'A' && ch <= 'Z') : (ch >= 'a' && ch <= 'z')) *res = 0;
        }
    } else if (T("eq") || T("equalto") || T("==") || T("sameas"))
        return eq(r, n, x, &y, res);
    else if (T("ne") || T("!=")) {
        if (eq(r, n, x, &y, res)) return -1;
        *res = !*res;
    } else if (T("lt") || T("lessthan") || T("<")) {
        if (order(r, n, x, &y, &c)) return -1;
        *res = c < 0;
    } else if (T("le") || T("<=")) {
        if (order(r, n, x, &y, &c)) return -1;
        *res = c <= 0;
    } else if (T("gt") || T("greaterthan") || T(">")) {
        if (order(r, n, x, &y, &c)) return -1;
        *res = c > 0;
    } else if (T("ge") || T(">=")) {
        if (order(r, n, x, &y, &c)) return -1;
        *res = c >= 0;
    } else if (T("in"))
        return contains(r, n, x, &y, res);
    else
        return FAIL(n, "unsupported test '%.*s'", (int)tl, t);
#undef T
    return 0;
}

static int arith(rt *r, const qw_jnode *n, int op, const jv *a, const jv *b, jv *out) {
    if (op == JOP_CONCAT) { /* ~ joins the text of both sides (undefined and none as nothing) */
        sbuf s = {0};
        int rc = to_text(r, n, &s, a) || to_text(r, n, &s, b) || mkstr(r, n, s.p ? s.p : "", s.n, out);
        free(s.p);
        return rc ? -1 : 0;
    }
    if (op == JOP_ADD && a->t == V_STR && b->t == V_STR) {
        if (cost(r, n, a->s->n + b->s->n)) return -1;
        jstr *j = alloc(r, n, sizeof *j + a->s->n + b->s->n + 1);
        if (!j) return -1;
        memcpy(j->s, a->s->s, a->s->n);
        memcpy(j->s + a->s->n, b->s->s, b->s->n);
        j->n = a->s->n + b->s->n;
        j->s[j->n] = 0;
        out->t = V_STR;
        out->s = j;
        return 0;
    }
    if (op == JOP_ADD && a->t == V_LIST && b->t == V_LIST) {
        jlist *l = mklist(r, n, a->l->n + b->l->n);
        if (!l || cost(r, n, a->l->n + b->l->n)) return -1;
        memcpy(l->v, a->l->v, a->l->n * sizeof *l->v);
        memcpy(l->v + a->l->n, b->l->v, b->l->n * sizeof *l->v);
        l->n = a->l->n + b->l->n;
        out->t = V_LIST;
        out->l = l;
        return 0;
    }
    if (op == JOP_MUL && ((a->t == V_STR && b->t == V_INT) || (a->t == V_INT && b->t == V_STR))) {
        const jv *s = a->t == V_STR ? a : b;
        int64_t k = a->t == V_INT ? a->i : b->i;
        if (k <= 0) return mkstr(r, n, "", 0, out);
        if ((uint64_t)k * s->s->n > QW_JINJA_MAX_OUTPUT)
            return FAIL(n, "string repeated to more than %u MB", QW_JINJA_MAX_OUTPUT >> 20);
        size_t len = (size_t)k * s->s->n;
        jstr *j = alloc(r, n, sizeof *j + len + 1);
        if (!j || cost(r, n, len)) return -1;
        for (int64_t i = 0; i < k; i++) memcpy(j->s + (size_t)i * s->s->n, s->s->s, s->s->n);
        j->n = len;
        j->s[len] = 0;
        out->t = V_STR;
        out->s = j;
        return 0;
    }
    static const char *sym[] = {"+", "-", "*", "/", "//", "%", "**"};
    if (!is_num(a) || !is_num(b) || a->t == V_BOOL || b->t == V_BOOL)
        return FAIL(n, "unsupported operand types for %s: %s and %s", sym[op], type_name(a), type_name(b));
    int flt = a->t == V_FLOAT || b->t == V_FLOAT;
    double x = num(a), y = num(b);
    if ((op == JOP_DIV || op == JOP_FLOORDIV || op == JOP_MOD) && y == 0) return FAIL(n, "division by zero");
    switch (op) {
    case JOP_ADD: *out = flt ? vfloat(x + y) : vint((int64_t)((uint64_t)a->i + (uint64_t)b->i)); break;
    case JOP_SUB: *out = flt ? vfloat(x - y) : vint((int64_t)((uint64_t)a->i - (uint64_t)b->i)); break;
    case JOP_MUL: *out = flt ? vfloat(x * y) : vint((int64_t)((uint64_t)a->i * (uint64_t)b->i)); break;
    case JOP_DIV: *out = vfloat(x / y); break;
    case JOP_FLOORDIV:
        if (flt)
            *out = vfloat(floor(x / y));
        else {
            int64_t q = a->i / b->i;
            if ((a->i % b->i != 0) && ((a->i < 0) != (b->i < 0))) q--;
            *out = vint(q);
        }
        break;
    case JOP_MOD:
        if (flt) {
            double m = fmod(x, y);
            if (m != 0 && (m < 0) != (y < 0)) m += y;
            *out = vfloat(m);
        } else {
            int64_t m = a->i % b->i;
            if (m != 0 && (m < 0) != (b->i < 0)) m += b->i;
            *out = vint(m);
        }
        break;
    case JOP_POW:
        if (!flt && b->i >= 0) {
            int64_t p = 1;
            for (int64_t i = 0; i < b->i && i < 64; i++) p = (int64_t)((uint64_t)p * (uint64_t)a->i);
            *out = vint(p);
        } else
            *out = vfloat(pow(x, y));
        break;
    }
    return 0;
}

static int eval(rt *r, const qw_jnode *n, jv *out) {
    if (cost(r, n, 0)) return -1;
    jv a, b, c;
    int res;
    *out = UNDEF;
    switch (n->kind) {
    case JN_STR: out->t = V_STR; return !(out->s = mkjstr(r, n, n->s, n->slen)) ? -1 : 0;
    case JN_INT: *out = vint(n->i); return 0;
    case JN_FLOAT: *out = vfloat(n->f); return 0;
    case JN_BOOL: *out = vbool((int)n->i); return 0;
    case JN_NONE: out->t = V_NONE; return 0;
    case JN_NAME: *out = lookup(r, n->s, n->slen); return 0;
    case JN_LIST:
    case JN_TUPLE: {
        jlist *l = mklist(r, n, (size_t)n->n);
        if (!l) return -1;
        for (int i = 0; i < n->n; i++)
            if (eval(r, n->kids[i], &l->v[i])) return -1;
        l->n = (size_t)n->n;
        out->t = V_LIST;
        out->l = l;
        return 0;
    }
    case JN_DICT: {
        jdict *d = mkdict(r, n, (size_t)n->n / 2);
        if (!d) return -1;
        for (int i = 0; i + 1 < n->n; i += 2) {
            if (eval(r, n->kids[i], &a) || eval(r, n->kids[i + 1], &b)) return -1;
            if (a.t != V_STR) return FAIL(n->kids[i], "dict keys must be strings, not %s", type_name(&a));
            if (dict_set(r, n, d, a.s->s, a.s->n, b)) return -1;
        }
        out->t = V_DICT;
        out->d = d;
        return 0;
    }
    case JN_ATTR: return eval(r, n->a, &a) || get_attr(r, n, &a, n->s, n->slen, out);
    case JN_INDEX: return eval(r, n->a, &a) || eval(r, n->b, &b) || get_item(r, n, &a, &b, out);
    case JN_SLICE: {
        jv s0 = UNDEF, s1 = UNDEF, s2 = UNDEF;
        if (eval(r, n->a, &a) || (n->b && eval(r, n->b, &s0)) || (n->c && eval(r, n->c, &s1)) ||
            (n->d && eval(r, n->d, &s2)))
            return -1;
        return slice(r, n, &a, &s0, &s1, &s2, out);
    }
    case JN_CALL: return call(r, n, out);
    case JN_FILTER: return eval(r, n->a, &a) || apply_filter(r, n, &a, out);
    case JN_TEST: {
        args ar;
        if (eval(r, n->a, &a) || eval_args(r, n, &ar, 0)) return -1;
        if (ar.nkw) return FAIL(n, "keyword arguments to a test");
        if (run_test(r, n, n->s, n->slen, &a, ar.pos, ar.npos, &res)) return -1;
        *out = vbool(n->op ? !res : res);
        return 0;
    }
    case JN_NOT:
        if (eval(r, n->a, &a)) return -1;
        *out = vbool(!truthy(&a));
        return 0;
    case JN_NEG:
    case JN_POS:
        if (eval(r, n->a, &a)) return -1;
        if (a.t != V_INT && a.t != V_FLOAT)
            return FAIL(n, "unary %c of %s", n->kind == JN_NEG ? '-' : '+', type_name(&a));
        *out = n->kind == JN_POS ? a : a.t == V_INT ? vint((int64_t)(0 - (uint64_t)a.i)) : vfloat(-a.f);
        return 0;
    case JN_AND:
    case JN_OR: /* short-circuit, giving the deciding operand as Python does */
        if (eval(r, n->a, &a)) return -1;
        if (truthy(&a) == (n->kind == JN_OR)) {
            *out = a;
            return 0;
        }
        return eval(r, n->b, out);
    case JN_COND:
        if (eval(r, n->b, &c)) return -1;
        if (truthy(&c)) return eval(r, n->a, out);
        return n->c ? eval(r, n->c, out) : 0;
    case JN_BIN:
        if (eval(r, n->a, &a) || eval(r, n->b, &b)) return -1;
        switch (n->op) {
        case JOP_EQ:
        case JOP_NE:
            if (eq(r, n, &a, &b, &res)) return -1;
            *out = vbool(n->op == JOP_EQ ? res : !res);
            return 0;
        case JOP_IN:
        case JOP_NOTIN:
            if (contains(r, n, &a, &b, &res)) return -1;
            *out = vbool(n->op == JOP_IN ? res : !res);
            return 0;
        case JOP_LT:
        case JOP_LE:
        case JOP_GT:
        case JOP_GE:
            if (order(r, n, &a, &b, &res)) return -1;
            *out = vbool(n->op == JOP_LT ? res < 0 : n->op == JOP_LE ? res <= 0 : n->op == JOP_GT ? res > 0 : res >= 0);
            return 0;
        default: return arith(r, n, n->op, &a, &b, out);
        }
    default: return FAIL(n, "internal: node %d is not an expression", n->kind);
    }
}

/* ---- statements --------------------------------------------------------------------------------- */

enum { EX_OK = 0, EX_FAIL = -1, EX_BREAK = 1, EX_CONTINUE = 2 };

static int exec_body(rt *r, qw_jnode *const *body, int nb, int in_loop);

/* Binds a loop item to the loop variables (one, or several unpacked from a list: for k, v in d.items()). */
static int bind(rt *r, const qw_jnode *n, jdict *scope, const jv *item) {
    if (n->n2 == 1) return dict_set(r, n, scope, n->kids2[0]->s, n->kids2[0]->slen, *item);
    if (item->t != V_LIST || item->l->n != (size_t)n->n2)
        return FAIL(n, "cannot unpack %s into %d loop variables", type_name(item), n->n2);
    for (int k = 0; k < n->n2; k++)
        if (dict_set(r, n, scope, n->kids2[k]->s, n->kids2[k]->slen, item->l->v[k])) return -1;
    return 0;
}

static int exec_for(rt *r, const qw_jnode *n) {
    jv seq;
    jlist *items_;
    if (eval(r, n->a, &seq) || iterable(r, n, &seq, &items_)) return EX_FAIL;
    if (r->nframes >= MAX_FRAMES) return FAIL(n, "for loops nested too deeply");
    jlist *it = items_;
    if (n->b) { /* {% for x in xs if cond %}: filter first, so loop.* count the kept items */
        jdict *tmp = mkdict(r, n, 4);
        if (!tmp || !(it = mklist(r, n, 4))) return EX_FAIL;
        r->frames[r->nframes++] = tmp;
        int rc = 0;
        for (size_t i = 0; !rc && i < items_->n; i++) {
            jv ok;
            rc = bind(r, n, tmp, &items_->v[i]) || eval(r, n->b, &ok) ||
                 (truthy(&ok) && list_push(r, n, it, items_->v[i]));
        }
        r->nframes--;
        if (rc) return EX_FAIL;
    }
    if (!it->n) return n->c ? exec_body(r, n->c->kids, n->c->n, 0) : EX_OK;
    jdict *scope = mkdict(r, n, 8), *loop = mkdict(r, n, 9);
    if (!scope || !loop) return EX_FAIL;
    jv lv = {V_DICT, {0}};
    lv.d = loop;
    static const char *const keys[] = {"index", "index0", "revindex", "revindex0", "first",
                                       "last",  "length", "previtem", "nextitem"};
    for (int k = 0; k < 9; k++)
        if (dict_set(r, n, loop, keys[k], strlen(keys[k]), UNDEF)) return EX_FAIL;
    if (dict_set(r, n, scope, "loop", 4, lv)) return EX_FAIL;
    r->frames[r->nframes++] = scope;
    int rc = EX_OK;
    size_t len = it->n;
    for (size_t i = 0; i < len && rc == EX_OK; i++) {
        if (cost(r, n, 0)) {
            rc = EX_FAIL;
            break;
        }
        jv *L = loop->v; /* updated in place: one loop dict per loop, not per iteration */
        L[0] = vint((int64_t)i + 1);
        L[1] = vint((int64_t)i);
        L[2] = vint((int64_t)(len - i));
        L[3] = vint((int64_t)(len - i - 1));
        L[4] = vbool(i == 0);
        L[5] = vbool(i == len - 1);
        L[6] = vint((int64_t)len);
        L[7] = i ? it->v[i - 1] : UNDEF;
        L[8] = i + 1 < len ? it->v[i + 1] : UNDEF;
        if (bind(r, n, scope, &it->v[i])) {
            rc = EX_FAIL;
            break;
        }
        rc = exec_body(r, n->kids, n->n, 1);
        if (rc == EX_BREAK) {
            rc = EX_OK;
            break;
        }
        if (rc == EX_CONTINUE) rc = EX_OK;
    }
    r->nframes--;
    return rc;
}

static int exec_set(rt *r, const qw_jnode *n) {
    jv v;
    if (n->b) {
        if (eval(r, n->b, &v)) return EX_FAIL;
    } else { /* block set: capture the body's output */
        sbuf cap = {0}, *saved = r->out;
        r->out = &cap;
        int rc = exec_body(r, n->kids, n->n, 0);
        r->out = saved;
        if (rc == EX_OK) rc = mkstr(r, n, cap.p ? cap.p : "", cap.n, &v);
        free(cap.p);
        if (rc) return EX_FAIL;
    }
    const qw_jnode *t = n->a;
    if (t->kind == JN_NAME) return dict_set(r, n, r->frames[r->nframes - 1], t->s, t->slen, v) ? EX_FAIL : EX_OK;
    jv ns = lookup(r, t->a->s, t->a->slen);
    if (ns.t != V_NS) return FAIL(n, "cannot set an attribute of %s (only of a namespace())", type_name(&ns));
    return dict_set(r, n, ns.d, t->s, t->slen, v) ? EX_FAIL : EX_OK;
}

static int exec_body(rt *r, qw_jnode *const *body, int nb, int in_loop) {
    for (int i = 0; i < nb; i++) {
        const qw_jnode *n = body[i];
        jv v;
        int rc = EX_OK;
        if (cost(r, n, 0)) return EX_FAIL;
        switch (n->kind) {
        case JN_TEXT: rc = sb_put(r, n, r->out, n->s, n->slen); break;
        case JN_OUT: rc = eval(r, n->a, &v) || to_text(r, n, r->out, &v) ? EX_FAIL : EX_OK; break;
        case JN_IF:
            if (eval(r, n->a, &v)) return EX_FAIL;
            rc = truthy(&v) ? exec_body(r, n->kids, n->n, in_loop) : exec_body(r, n->kids2, n->n2, in_loop);
            break;
        case JN_FOR: rc = exec_for(r, n); break;
        case JN_SET: rc = exec_set(r, n); break;
        case JN_BREAK:
        case JN_CONTINUE:
            if (!in_loop) return FAIL(n, "'%s' outside a for loop", n->kind == JN_BREAK ? "break" : "continue");
            return n->kind == JN_BREAK ? EX_BREAK : EX_CONTINUE;
        default: return FAIL(n, "internal: node %d is not a statement", n->kind);
        }
        if (rc) return rc < 0 ? EX_FAIL : rc;
    }
    return EX_OK;
}

qw_status qw_jinja_render(const qw_jinja *t, const cJSON *vars, char **out, size_t *out_len, qw_error *err) {
    *out = NULL;
    if (!t) return qw_error_set(err, QW_E_ARG, "qw_jinja_render: no template");
    if (vars && !cJSON_IsObject(vars))
        return qw_error_set(err, QW_E_ARG, "%s: template variables must be an object", t->name);
    rt R = {.t = t, .err = err};
    rt *r = &R;
    R.ar.limit = QW_JINJA_MAX_HEAP;
    sbuf o = {0};
    R.out = &o;
    int rc = -1;
    if ((R.globals = mkdict(r, NULL, 16)) && (R.frames[0] = mkdict(r, NULL, 8))) {
        R.nframes = 1;
        rc = 0;
        for (const cJSON *e = vars ? vars->child : NULL; !rc && e; e = e->next) {
            jv v;
            rc = from_cjson(r, e, &v, 0) || dict_set(r, NULL, R.globals, e->string, strlen(e->string), v);
        }
        if (!rc) rc = exec_body(r, t->body, t->n, 0);
        if (!rc && !o.p) rc = sb_put(r, NULL, &o, "", 0);
    } else
        nomem(r, NULL);
    qw_jarena_free(&R.ar);
    if (rc) {
        free(o.p);
        return R.failed ? R.st : qw_error_set(err, QW_E_INTERNAL, "%s: chat_template: render failed", t->name);
    }
    *out = o.p;
    if (out_len) *out_len = o.n;
    return QW_OK;
}
