/* qw_jinja_parse.c - template text to a syntax tree: the lexer (text, {{ }}, {% %}, {# #} and the tokens
 * inside tags) and a recursive-descent parser with Jinja2's precedence:
 *   cond (a if c else b) < or < and < not < compare (== != < <= > >= in, not in) < + - < ~ < * / // %
 *   < ** < unary - + < postfix (.name [i] [a:b:c] (args)) then filters (| f(args)) and tests (is [not] t)
 * Whitespace as @huggingface/jinja (and transformers' Python environment) configures it: one trailing newline
 * of the template dropped, lstrip_blocks (spaces and tabs before a {% or {# that starts a line), trim_blocks
 * (the newline after %} or #}), and {%- / -%} ({{- -}} {#- -#}) strip all whitespace on that side. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "qw_jinja_impl.h"

#define QW_STR2(x) #x
#define QW_STR(x) QW_STR2(x)
#define DEEP "nested too deeply (blocks and expressions: at most " QW_STR(QW_JINJA_MAX_DEPTH) " levels)"

/* ---- arena ------------------------------------------------------------------------------------ */

void *qw_jarena_alloc(qw_jarena *a, size_t n) {
    n = (n + 7) & ~(size_t)7;
    if (n > a->limit || a->total > a->limit - n) return NULL;
    qw_jarena_blk *b = a->head;
    if (!b || b->cap - b->used < n) {
        size_t cap = n > (64u << 10) ? n : (64u << 10);
        b = malloc(sizeof *b + cap);
        if (!b) return NULL;
        b->next = a->head;
        b->used = 0;
        b->cap = cap;
        a->head = b;
    }
    void *p = (char *)(b + 1) + b->used;
    b->used += n;
    a->total += n;
    memset(p, 0, n);
    return p;
}

void qw_jarena_free(qw_jarena *a) {
    for (qw_jarena_blk *b = a->head, *nb; b; b = nb) {
        nb = b->next;
        free(b);
    }
    a->head = NULL;
    a->total = 0;
}

void qw_jinja_where(const qw_jinja *t, uint32_t pos, char *buf, size_t cap) {
    int line = 1, col = 1;
    for (size_t i = 0; i < pos && i < t->len; i++) {
        if (t->src[i] == '\n') {
            line++;
            col = 1;
        } else if (((unsigned char)t->src[i] & 0xC0) != 0x80)
            col++;
    }
    snprintf(buf, cap, "%s: chat_template line %d col %d: ", t->name, line, col);
}

/* ---- lexer ------------------------------------------------------------------------------------ */

enum { TK_EOF, TK_NAME, TK_STR, TK_INT, TK_FLOAT, TK_OP, TK_END };

typedef struct parser {
    qw_jinja *t;
    const char *s; /* template */
    size_t len, p; /* p: lexer position */
    /* current token */
    int tk;
    size_t tpos, tlen; /* token's bytes in s (TK_NAME, TK_OP) */
    char *str;
    size_t slen; /* TK_STR: decoded */
    int64_t ival;
    double fval;
    int end_strip;  /* TK_END: the tag ended with -%} / -}} */
    int in_expr;    /* 1 inside {{ }}, 2 inside {% %} */
    int braces;     /* { } nesting inside {{ }}, so that `}}` of a dict literal does not end the tag */
    int strip_next; /* the previous tag ended with '-': strip leading whitespace of the next text */
    int trim_nl;    /* the previous tag was a block or comment: drop one leading newline */
    int depth;
    qw_error *err;
    int failed;
    qw_status status; /* of the first failure */
} parser;

static int fail(parser *P, size_t pos, const char *fmt, const char *arg) {
    if (P->failed) return -1;
    char where[256], what[256];
    qw_jinja_where(P->t, (uint32_t)pos, where, sizeof where);
    snprintf(what, sizeof what, fmt, arg ? arg : "");
    P->status = qw_error_set(P->err, QW_E_UNSUPPORTED, "%s%s", where, what);
    P->failed = 1;
    return -1;
}

static int nomem(parser *P) {
    if (!P->failed)
        P->status = qw_error_set(P->err, QW_E_NOMEM, "%s: chat_template: out of memory parsing", P->t->name);
    P->failed = 1;
    return -1;
}

static int is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
static int is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
static int is_digit(char c) { return c >= '0' && c <= '9'; }

static void put_utf8(char *o, size_t *n, uint32_t cp) {
    if (cp < 0x80)
        o[(*n)++] = (char)cp;
    else if (cp < 0x800) {
        o[(*n)++] = (char)(0xC0 | cp >> 6);
        o[(*n)++] = (char)(0x80 | (cp & 63));
    } else if (cp < 0x10000) {
        o[(*n)++] = (char)(0xE0 | cp >> 12);
        o[(*n)++] = (char)(0x80 | ((cp >> 6) & 63));
        o[(*n)++] = (char)(0x80 | (cp & 63));
    } else {
        o[(*n)++] = (char)(0xF0 | cp >> 18);
        o[(*n)++] = (char)(0x80 | ((cp >> 12) & 63));
        o[(*n)++] = (char)(0x80 | ((cp >> 6) & 63));
        o[(*n)++] = (char)(0x80 | (cp & 63));
    }
}

static int hexval(const char *s, int n, uint32_t *v) {
    *v = 0;
    for (int i = 0; i < n; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0) return 0;
        *v = *v * 16 + (uint32_t)d;
    }
    return 1;
}

/* A quoted string at P->p; escapes as Python's: \n \t \r \b \f \v \0 \\ \' \" \xHH \uHHHH, others kept. */
static int lex_string(parser *P) {
    char q = P->s[P->p];
    size_t start = P->p++, e = P->p;
    while (e < P->len && P->s[e] != q) e += P->s[e] == '\\' ? 2 : 1;
    if (e >= P->len) return fail(P, start, "unterminated string", NULL);
    char *o = qw_jarena_alloc(&P->t->arena, e - P->p + 1);
    if (!o) return nomem(P);
    size_t n = 0;
    for (size_t i = P->p; i < e; i++) {
        char c = P->s[i];
        if (c != '\\') {
            o[n++] = c;
            continue;
        }
        char x = P->s[++i];
        uint32_t cp;
        switch (x) {
        case 'n': o[n++] = '\n'; break;
        case 't': o[n++] = '\t'; break;
        case 'r': o[n++] = '\r'; break;
        case 'b': o[n++] = '\b'; break;
        case 'f': o[n++] = '\f'; break;
        case 'v': o[n++] = '\v'; break;
        case '0': o[n++] = '\0'; break;
        case '\\':
        case '\'':
        case '"': o[n++] = x; break;
        case 'x':
        case 'u': {
            int k = x == 'x' ? 2 : 4;
            if (i + k < e && hexval(P->s + i + 1, k, &cp) && !(cp >= 0xD800 && cp < 0xE000)) {
                put_utf8(o, &n, cp);
                i += k;
                break;
            }
        }
            /* fall through */
        default: o[n++] = '\\'; o[n++] = x;
        }
    }
    P->str = o;
    P->slen = n;
    P->p = e + 1;
    P->tk = TK_STR;
    return 0;
}

static const char *OPS[] = {"**", "//", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "~", "<",
                            ">",  "=",  "(",  ")",  "[",  "]",  "{", "}", ",", ".", ":", "|", NULL};

/* Next token inside a tag. */
static int next(parser *P) {
    while (P->p < P->len && is_ws(P->s[P->p])) P->p++;
    P->tpos = P->p;
    if (P->p >= P->len) {
        P->tk = TK_EOF;
        return 0;
    }
    const char *c = P->s + P->p;
    size_t left = P->len - P->p;
    int dash = c[0] == '-';
    const char *e = c + dash;
    size_t el = left - dash;
    if ((P->in_expr == 2 && el >= 2 && e[0] == '%' && e[1] == '}') ||
        (P->in_expr == 1 && P->braces == 0 && el >= 2 && e[0] == '}' && e[1] == '}')) {
        P->tk = TK_END;
        P->end_strip = dash;
        P->p += dash + 2;
        return 0;
    }
    if (is_alpha(c[0])) {
        size_t n = 1;
        while (n < left && (is_alpha(c[n]) || is_digit(c[n]))) n++;
        P->tk = TK_NAME;
        P->tlen = n;
        P->p += n;
        return 0;
    }
    if (is_digit(c[0])) {
        size_t n = 0;
        int flt = 0;
        while (n < left && (is_digit(c[n]) || c[n] == '_')) n++;
        if (n + 1 < left && c[n] == '.' && is_digit(c[n + 1])) {
            flt = 1;
            n++;
            while (n < left && is_digit(c[n])) n++;
        }
        if (n < left && (c[n] == 'e' || c[n] == 'E')) {
            size_t m = n + 1;
            if (m < left && (c[m] == '+' || c[m] == '-')) m++;
            if (m < left && is_digit(c[m])) {
                flt = 1;
                n = m;
                while (n < left && is_digit(c[n])) n++;
            }
        }
        char buf[64];
        size_t k = 0;
        for (size_t i = 0; i < n && k < sizeof buf - 1; i++)
            if (c[i] != '_') buf[k++] = c[i];
        buf[k] = 0;
        if (n >= sizeof buf) return fail(P, P->p, "number too long", NULL);
        P->tk = flt ? TK_FLOAT : TK_INT;
        if (flt)
            P->fval = strtod(buf, NULL);
        else {
            char *end;
            long long v = strtoll(buf, &end, 10);
            if (k > 18) return fail(P, P->p, "integer literal out of range", NULL);
            P->ival = v;
        }
        P->p += n;
        return 0;
    }
    if (c[0] == '\'' || c[0] == '"') return lex_string(P);
    for (int i = 0; OPS[i]; i++) {
        size_t n = strlen(OPS[i]);
        if (left >= n && !memcmp(c, OPS[i], n)) {
            P->tk = TK_OP;
            P->tlen = n;
            P->p += n;
            if (P->in_expr == 1 && c[0] == '{') P->braces++;
            if (P->in_expr == 1 && c[0] == '}' && P->braces > 0) P->braces--;
            return 0;
        }
    }
    char ch[8];
    snprintf(ch, sizeof ch, "%c", c[0]);
    return fail(P, P->p, "unexpected character '%s' in a tag", ch);
}

static int is_op(const parser *P, const char *op) {
    return P->tk == TK_OP && P->tlen == strlen(op) && !memcmp(P->s + P->tpos, op, P->tlen);
}
static int is_name(const parser *P, const char *nm) {
    return P->tk == TK_NAME && P->tlen == strlen(nm) && !memcmp(P->s + P->tpos, nm, P->tlen);
}
static int accept_op(parser *P, const char *op) {
    if (!is_op(P, op)) return 0;
    return next(P) ? -1 : 1;
}
static int expect_op(parser *P, const char *op) {
    if (!is_op(P, op)) return fail(P, P->tpos, "expected '%s'", op);
    return next(P);
}
static char *tok_text(parser *P, char *buf, size_t cap) {
    size_t n = P->tk == TK_EOF ? 0 : P->tk == TK_END ? 2 : P->tk == TK_STR ? 1 : P->p - P->tpos;
    if (n >= cap) n = cap - 1;
    memcpy(buf, P->s + P->tpos, n);
    buf[n] = 0;
    if (P->tk == TK_EOF) snprintf(buf, cap, "end of template");
    return buf;
}

/* ---- expressions ------------------------------------------------------------------------------ */

static qw_jnode *node(parser *P, int kind, size_t pos) {
    qw_jnode *n = qw_jarena_alloc(&P->t->arena, sizeof *n);
    if (!n) {
        nomem(P);
        return NULL;
    }
    n->kind = (uint8_t)kind;
    n->pos = (uint32_t)pos;
    return n;
}

/* A growable list of nodes in the arena (old arrays are left there; lists are short). */
typedef struct nlist {
    qw_jnode **v;
    int n, cap;
} nlist;
static int push(parser *P, nlist *l, qw_jnode *x) {
    if (l->n == l->cap) {
        int nc = l->cap ? l->cap * 2 : 4;
        qw_jnode **nv = qw_jarena_alloc(&P->t->arena, (size_t)nc * sizeof *nv);
        if (!nv) return nomem(P);
        if (l->n) memcpy(nv, l->v, (size_t)l->n * sizeof *nv);
        l->v = nv;
        l->cap = nc;
    }
    l->v[l->n++] = x;
    return 0;
}

static qw_jnode *parse_expr(parser *P);
static qw_jnode *parse_or(parser *P);
static qw_jnode *parse_unary(parser *P);

static qw_jnode *name_node(parser *P, int kind) {
    qw_jnode *n = node(P, kind, P->tpos);
    if (!n) return NULL;
    n->s = P->s + P->tpos;
    n->slen = P->tlen;
    return next(P) ? NULL : n;
}

/* Arguments of a call, filter or test: positional, then name=value. P is at '(' */
static int parse_args(parser *P, qw_jnode *call) {
    nlist l = {0};
    if (next(P)) return -1;
    while (!is_op(P, ")")) {
        qw_jnode *arg;
        size_t save_t = P->tpos;
        if (P->tk == TK_NAME) {
            size_t nlen = P->tlen;
            if (next(P)) return -1;
            if (is_op(P, "=")) {
                if (!(arg = node(P, JN_KWARG, save_t))) return -1;
                arg->s = P->s + save_t;
                arg->slen = nlen;
                if (next(P) || !(arg->a = parse_expr(P))) return -1;
            } else { /* not a keyword: parse it again as an expression */
                P->p = save_t;
                if (next(P) || !(arg = parse_expr(P))) return -1;
            }
        } else if (!(arg = parse_expr(P)))
            return -1;
        if (push(P, &l, arg)) return -1;
        if (!is_op(P, ",")) break;
        if (next(P)) return -1;
    }
    if (expect_op(P, ")")) return -1;
    call->kids = l.v;
    call->n = l.n;
    return 0;
}

static qw_jnode *parse_primary(parser *P) {
    size_t pos = P->tpos;
    qw_jnode *n;
    char buf[64];
    if (P->tk == TK_STR) { /* adjacent literals join, as in Python */
        if (!(n = node(P, JN_STR, pos))) return NULL;
        n->s = P->str;
        n->slen = P->slen;
        if (next(P)) return NULL;
        while (P->tk == TK_STR) {
            char *j = qw_jarena_alloc(&P->t->arena, n->slen + P->slen + 1);
            if (!j) {
                nomem(P);
                return NULL;
            }
            memcpy(j, n->s, n->slen);
            memcpy(j + n->slen, P->str, P->slen);
            n->s = j;
            n->slen += P->slen;
            if (next(P)) return NULL;
        }
        return n;
    }
    if (P->tk == TK_INT || P->tk == TK_FLOAT) {
        if (!(n = node(P, P->tk == TK_INT ? JN_INT : JN_FLOAT, pos))) return NULL;
        n->i = P->ival;
        n->f = P->fval;
        return next(P) ? NULL : n;
    }
    if (P->tk == TK_NAME) {
        if (is_name(P, "true") || is_name(P, "True") || is_name(P, "false") || is_name(P, "False")) {
            if (!(n = node(P, JN_BOOL, pos))) return NULL;
            n->i = P->s[P->tpos] == 't' || P->s[P->tpos] == 'T';
            return next(P) ? NULL : n;
        }
        if (is_name(P, "none") || is_name(P, "None")) {
            if (!(n = node(P, JN_NONE, pos))) return NULL;
            return next(P) ? NULL : n;
        }
        return name_node(P, JN_NAME);
    }
    if (is_op(P, "(")) { /* parenthesised expression or tuple */
        if (next(P)) return NULL;
        nlist l = {0};
        int tuple = 0;
        while (!is_op(P, ")")) {
            qw_jnode *x = parse_expr(P);
            if (!x || push(P, &l, x)) return NULL;
            if (!is_op(P, ",")) break;
            tuple = 1;
            if (next(P)) return NULL;
        }
        if (expect_op(P, ")")) return NULL;
        if (l.n == 1 && !tuple) return l.v[0];
        if (!(n = node(P, JN_TUPLE, pos))) return NULL;
        n->kids = l.v;
        n->n = l.n;
        return n;
    }
    if (is_op(P, "[") || is_op(P, "{")) {
        int dict = is_op(P, "{");
        const char *close = dict ? "}" : "]";
        if (!(n = node(P, dict ? JN_DICT : JN_LIST, pos)) || next(P)) return NULL;
        nlist l = {0};
        while (!is_op(P, close)) {
            qw_jnode *x = parse_expr(P);
            if (!x || push(P, &l, x)) return NULL;
            if (dict) {
                if (expect_op(P, ":") || !(x = parse_expr(P)) || push(P, &l, x)) return NULL;
            }
            if (!is_op(P, ",")) break;
            if (next(P)) return NULL;
        }
        if (expect_op(P, close)) return NULL;
        n->kids = l.v;
        n->n = l.n;
        return n;
    }
    fail(P, pos, "expected an expression, found '%s'", tok_text(P, buf, sizeof buf));
    return NULL;
}

/* .name, [index], [a:b:c], (args) after a primary. */
static qw_jnode *parse_postfix(parser *P, qw_jnode *x) {
    for (;;) {
        size_t pos = P->tpos;
        qw_jnode *n;
        if (is_op(P, ".")) {
            if (next(P)) return NULL;
            if (P->tk != TK_NAME && P->tk != TK_INT) {
                fail(P, P->tpos, "expected a name after '.'", NULL);
                return NULL;
            }
            if (P->tk == TK_INT) { /* x.0 is x[0] */
                if (!(n = node(P, JN_INDEX, pos))) return NULL;
                if (!(n->b = node(P, JN_INT, P->tpos))) return NULL;
                n->b->i = P->ival;
                if (next(P)) return NULL;
            } else if (!(n = name_node(P, JN_ATTR)))
                return NULL;
            n->a = x;
        } else if (is_op(P, "[")) {
            if (next(P)) return NULL;
            qw_jnode *part[3] = {0};
            int k = 0, colons = 0;
            for (;;) {
                if (is_op(P, ":")) {
                    if (++colons > 2) {
                        fail(P, P->tpos, "too many ':' in a slice", NULL);
                        return NULL;
                    }
                    k++;
                    if (next(P)) return NULL;
                    continue;
                }
                if (is_op(P, "]")) break;
                if (part[k]) {
                    fail(P, P->tpos, "expected ']'", NULL);
                    return NULL;
                }
                if (!(part[k] = parse_expr(P))) return NULL;
            }
            if (next(P)) return NULL;
            if (!colons && !part[0]) {
                fail(P, pos, "empty subscript", NULL);
                return NULL;
            }
            if (!(n = node(P, colons ? JN_SLICE : JN_INDEX, pos))) return NULL;
            n->a = x;
            if (colons) {
                n->b = part[0];
                n->c = part[1];
                n->d = part[2];
            } else
                n->b = part[0];
        } else if (is_op(P, "(")) { /* errors of a call point at its callee */
            if (!(n = node(P, JN_CALL, x->pos))) return NULL;
            n->a = x;
            if (parse_args(P, n)) return NULL;
        } else
            return x;
        x = n;
    }
}

/* | filter(args) and is [not] test(args) after a postfix expression. */
static qw_jnode *parse_filters(parser *P, qw_jnode *x) {
    for (;;) {
        size_t pos = P->tpos;
        qw_jnode *n;
        if (is_op(P, "|")) {
            if (next(P)) return NULL;
            if (P->tk != TK_NAME) {
                fail(P, P->tpos, "expected a filter name after '|'", NULL);
                return NULL;
            }
            if (!(n = name_node(P, JN_FILTER))) return NULL;
            n->pos = (uint32_t)pos;
            n->a = x;
            if (is_op(P, "(") && parse_args(P, n)) return NULL;
        } else if (is_name(P, "is")) {
            if (!(n = node(P, JN_TEST, pos)) || next(P)) return NULL;
            if (is_name(P, "not")) {
                n->op = 1;
                if (next(P)) return NULL;
            }
            if (P->tk != TK_NAME && !is_op(P, "==") && !is_op(P, "!=") && !is_op(P, "<") && !is_op(P, ">") &&
                !is_op(P, "<=") && !is_op(P, ">=")) {
                fail(P, P->tpos, "expected a test name after 'is'", NULL);
                return NULL;
            }
            n->s = P->s + P->tpos;
            n->slen = P->tk == TK_NAME ? P->tlen : P->p - P->tpos;
            if (next(P)) return NULL;
            n->a = x;
            if (is_op(P, "(")) {
                if (parse_args(P, n)) return NULL;
            } else if ((P->tk == TK_STR || P->tk == TK_INT || P->tk == TK_FLOAT || P->tk == TK_NAME) &&
                       !is_name(P, "else") && !is_name(P, "and") && !is_name(P, "or") && !is_name(P, "if") &&
                       !is_name(P, "in") && !is_name(P, "is") && !is_name(P, "not")) {
                qw_jnode *arg = parse_primary(P); /* x is divisibleby 3, x is sameas none */
                if (!arg) return NULL;
                if (!(n->kids = qw_jarena_alloc(&P->t->arena, sizeof *n->kids))) {
                    nomem(P);
                    return NULL;
                }
                n->kids[0] = arg;
                n->n = 1;
            }
        } else
            return x;
        x = n;
    }
}

/* As Jinja2: the filters after a negated operand apply to the negation (-5|abs is 5). */
static qw_jnode *parse_unary_f(parser *P, int with_filters) {
    size_t pos = P->tpos;
    if (++P->depth > QW_JINJA_MAX_DEPTH) {
        fail(P, pos, DEEP, NULL);
        return NULL;
    }
    qw_jnode *x;
    if (is_op(P, "-") || is_op(P, "+")) {
        int neg = is_op(P, "-");
        if (next(P)) return NULL;
        qw_jnode *n = node(P, neg ? JN_NEG : JN_POS, pos);
        if (!n || !(n->a = parse_unary_f(P, 0))) return NULL;
        x = n;
    } else {
        if (!(x = parse_primary(P)) || !(x = parse_postfix(P, x))) return NULL;
    }
    if (with_filters) x = parse_filters(P, x);
    P->depth--;
    return x;
}

static qw_jnode *parse_unary(parser *P) { return parse_unary_f(P, 1); }

static qw_jnode *binary(parser *P, int op, size_t pos, qw_jnode *a, qw_jnode *b) {
    if (!b) return NULL;
    qw_jnode *n = node(P, JN_BIN, pos);
    if (!n) return NULL;
    n->op = (uint8_t)op;
    n->a = a;
    n->b = b;
    return n;
}

static qw_jnode *parse_pow(parser *P) {
    qw_jnode *x = parse_unary(P);
    while (x && is_op(P, "**")) {
        size_t pos = P->tpos;
        if (next(P)) return NULL;
        x = binary(P, JOP_POW, pos, x, parse_unary(P));
    }
    return x;
}

static qw_jnode *parse_math2(parser *P) {
    qw_jnode *x = parse_pow(P);
    for (;;) {
        int op = is_op(P, "*")    ? JOP_MUL
                 : is_op(P, "/")  ? JOP_DIV
                 : is_op(P, "//") ? JOP_FLOORDIV
                 : is_op(P, "%")  ? JOP_MOD
                                  : -1;
        if (!x || op < 0) return x;
        size_t pos = P->tpos;
        if (next(P)) return NULL;
        x = binary(P, op, pos, x, parse_pow(P));
    }
}

static qw_jnode *parse_concat(parser *P) {
    qw_jnode *x = parse_math2(P);
    while (x && is_op(P, "~")) {
        size_t pos = P->tpos;
        if (next(P)) return NULL;
        x = binary(P, JOP_CONCAT, pos, x, parse_math2(P));
    }
    return x;
}

static qw_jnode *parse_math1(parser *P) {
    qw_jnode *x = parse_concat(P);
    for (;;) {
        int op = is_op(P, "+") ? JOP_ADD : is_op(P, "-") ? JOP_SUB : -1;
        if (!x || op < 0) return x;
        size_t pos = P->tpos;
        if (next(P)) return NULL;
        x = binary(P, op, pos, x, parse_concat(P));
    }
}

static qw_jnode *parse_compare(parser *P) {
    qw_jnode *x = parse_math1(P);
    for (;;) {
        if (!x) return NULL;
        size_t pos = P->tpos;
        int op = is_op(P, "==")     ? JOP_EQ
                 : is_op(P, "!=")   ? JOP_NE
                 : is_op(P, "<")    ? JOP_LT
                 : is_op(P, "<=")   ? JOP_LE
                 : is_op(P, ">")    ? JOP_GT
                 : is_op(P, ">=")   ? JOP_GE
                 : is_name(P, "in") ? JOP_IN
                                    : -1;
        if (op < 0 && is_name(P, "not")) { /* `not in`; a lone `not` here ends the comparison */
            if (next(P)) return NULL;
            if (!is_name(P, "in")) {
                P->p = pos;
                return next(P) ? NULL : x;
            }
            op = JOP_NOTIN;
        }
        if (op < 0) return x;
        if (next(P)) return NULL;
        x = binary(P, op, pos, x, parse_math1(P));
    }
}

static qw_jnode *parse_not(parser *P) {
    if (is_name(P, "not")) {
        size_t pos = P->tpos;
        if (++P->depth > QW_JINJA_MAX_DEPTH) {
            fail(P, pos, DEEP, NULL);
            return NULL;
        }
        if (next(P)) return NULL;
        qw_jnode *n = node(P, JN_NOT, pos);
        if (!n || !(n->a = parse_not(P))) return NULL;
        P->depth--;
        return n;
    }
    return parse_compare(P);
}

static qw_jnode *parse_and(parser *P) {
    qw_jnode *x = parse_not(P);
    while (x && is_name(P, "and")) {
        qw_jnode *n = node(P, JN_AND, P->tpos);
        if (!n || next(P)) return NULL;
        n->a = x;
        if (!(n->b = parse_not(P))) return NULL;
        x = n;
    }
    return x;
}

static qw_jnode *parse_or(parser *P) {
    qw_jnode *x = parse_and(P);
    while (x && is_name(P, "or")) {
        qw_jnode *n = node(P, JN_OR, P->tpos);
        if (!n || next(P)) return NULL;
        n->a = x;
        if (!(n->b = parse_and(P))) return NULL;
        x = n;
    }
    return x;
}

static qw_jnode *parse_expr(parser *P) {
    qw_jnode *x = parse_or(P);
    while (x && is_name(P, "if")) { /* a if cond [else b] */
        qw_jnode *n = node(P, JN_COND, P->tpos);
        if (!n || next(P)) return NULL;
        n->a = x;
        if (!(n->b = parse_or(P))) return NULL;
        if (is_name(P, "else")) {
            if (next(P) || !(n->c = parse_expr(P))) return NULL;
        }
        x = n;
    }
    return x;
}

/* ---- statements ------------------------------------------------------------------------------- */

static int expect_end(parser *P) {
    char buf[64];
    if (P->tk != TK_END)
        return fail(P, P->tpos, "expected the end of the tag, found '%s'", tok_text(P, buf, sizeof buf));
    P->in_expr = 0;
    P->strip_next = P->end_strip;
    return 0;
}

/* Parses text and tags until a {% name %} in stops (returned in *which, the lexer at the token after the
 * name) or the end of the template (stops == NULL only). */
static int parse_body(parser *P, const char *const *stops, nlist *out, int *which, size_t open_pos, const char *open);

static int parse_if(parser *P, qw_jnode **res, size_t pos) {
    static const char *const stops[] = {"elif", "else", "endif", NULL};
    qw_jnode *n = node(P, JN_IF, pos);
    if (!n || !(n->a = parse_expr(P)) || expect_end(P)) return -1;
    *res = n;
    for (;;) {
        nlist body = {0};
        int which;
        if (parse_body(P, stops, &body, &which, pos, "if")) return -1;
        n->kids = body.v;
        n->n = body.n;
        if (which == 2) return expect_end(P);
        if (which == 1) {
            nlist eb = {0};
            int w2;
            static const char *const stops2[] = {"endif", NULL};
            if (expect_end(P) || parse_body(P, stops2, &eb, &w2, pos, "if")) return -1;
            n->kids2 = eb.v;
            n->n2 = eb.n;
            return expect_end(P);
        }
        /* elif: an if nested in the else branch */
        qw_jnode *e = node(P, JN_IF, P->tpos);
        if (!e || !(e->a = parse_expr(P)) || expect_end(P)) return -1;
        if (!(n->kids2 = qw_jarena_alloc(&P->t->arena, sizeof *n->kids2))) return nomem(P);
        n->kids2[0] = e;
        n->n2 = 1;
        n = e;
    }
}

static int parse_for(parser *P, qw_jnode **res, size_t pos) {
    static const char *const stops[] = {"else", "endfor", NULL};
    qw_jnode *n = node(P, JN_FOR, pos);
    if (!n) return -1;
    nlist vars = {0};
    int paren = 0;
    if ((paren = accept_op(P, "(")) < 0) return -1;
    for (;;) {
        if (P->tk != TK_NAME) return fail(P, P->tpos, "expected a loop variable name", NULL);
        qw_jnode *v = name_node(P, JN_NAME);
        if (!v || push(P, &vars, v)) return -1;
        if (!is_op(P, ",")) break;
        if (next(P)) return -1;
    }
    if (paren && expect_op(P, ")")) return -1;
    if (!is_name(P, "in")) return fail(P, P->tpos, "expected 'in' in a for loop", NULL);
    if (next(P) || !(n->a = parse_or(P))) return -1;
    if (is_name(P, "if")) {
        if (next(P) || !(n->b = parse_expr(P))) return -1;
    }
    if (is_name(P, "recursive")) return fail(P, P->tpos, "unsupported construct 'recursive' loops", NULL);
    if (expect_end(P)) return -1;
    n->kids2 = vars.v;
    n->n2 = vars.n;
    nlist body = {0};
    int which;
    if (parse_body(P, stops, &body, &which, pos, "for")) return -1;
    n->kids = body.v;
    n->n = body.n;
    if (which == 0) { /* {% else %}: rendered when nothing was iterated; kept in n->c as a block */
        static const char *const stops2[] = {"endfor", NULL};
        nlist eb = {0};
        int w2;
        if (expect_end(P) || parse_body(P, stops2, &eb, &w2, pos, "for")) return -1;
        if (!(n->c = node(P, JN_IF, pos))) return -1;
        n->c->kids = eb.v;
        n->c->n = eb.n;
    }
    *res = n;
    return expect_end(P);
}

static int parse_set(parser *P, qw_jnode **res, size_t pos) {
    qw_jnode *n = node(P, JN_SET, pos);
    if (!n) return -1;
    if (P->tk != TK_NAME) return fail(P, P->tpos, "expected a name after 'set'", NULL);
    if (!(n->a = name_node(P, JN_NAME))) return -1;
    if (is_op(P, ".")) { /* ns.attr = ... */
        if (next(P)) return -1;
        if (P->tk != TK_NAME) return fail(P, P->tpos, "expected an attribute name", NULL);
        qw_jnode *at = name_node(P, JN_ATTR);
        if (!at) return -1;
        at->a = n->a;
        n->a = at;
    }
    if (is_op(P, ",")) return fail(P, P->tpos, "unsupported construct 'set' with several targets", NULL);
    *res = n;
    if (accept_op(P, "=") == 1) {
        if (!(n->b = parse_expr(P))) return -1;
        return expect_end(P);
    }
    if (P->failed) return -1;
    /* {% set x %}...{% endset %}: the rendered block */
    static const char *const stops[] = {"endset", NULL};
    nlist body = {0};
    int which;
    if (expect_end(P) || parse_body(P, stops, &body, &which, pos, "set")) return -1;
    n->kids = body.v;
    n->n = body.n;
    return expect_end(P);
}

static int parse_body(parser *P, const char *const *stops, nlist *out, int *which, size_t open_pos, const char *open) {
    if (++P->depth > QW_JINJA_MAX_DEPTH) return fail(P, open_pos, DEEP, NULL);
    for (;;) {
        /* text up to the next tag */
        size_t start = P->p, e = P->p;
        while (e + 1 < P->len && !(P->s[e] == '{' && strchr("{%#", P->s[e + 1]))) e++;
        if (e + 1 >= P->len) e = P->len;
        size_t tend = e;
        int tag = e < P->len ? P->s[e + 1] : 0;
        if (P->strip_next)
            while (start < tend && is_ws(P->s[start])) start++;
        else if (P->trim_nl && start < tend && P->s[start] == '\n')
            start++;
        if (tag && e + 2 < P->len && P->s[e + 2] == '-')
            while (tend > start && is_ws(P->s[tend - 1])) tend--;
        else if (tag == '%' || tag == '#') { /* lstrip_blocks: only blanks between the line start and the tag */
            size_t k = tend;
            while (k > start && (P->s[k - 1] == ' ' || P->s[k - 1] == '\t')) k--;
            if (k == 0 || P->s[k - 1] == '\n') tend = k;
        }
        P->strip_next = P->trim_nl = 0;
        if (tend > start) {
            qw_jnode *t = node(P, JN_TEXT, start);
            if (!t) return -1;
            t->s = P->s + start;
            t->slen = tend - start;
            if (push(P, out, t)) return -1;
        }
        if (!tag) {
            if (!stops) {
                P->depth--;
                return 0;
            }
            char what[64];
            snprintf(what, sizeof what, "%s", open);
            return fail(P, open_pos, "unclosed {%% %s %%} (end of template reached)", what);
        }
        size_t tpos = e;
        P->p = e + 2 + (e + 2 < P->len && P->s[e + 2] == '-');
        if (tag == '#') {
            const char *c = NULL;
            for (size_t k = P->p; k + 1 < P->len && !c; k++)
                if (P->s[k] == '#' && P->s[k + 1] == '}') c = P->s + k;
            if (!c) return fail(P, tpos, "unterminated comment", NULL);
            P->strip_next = c > P->s + P->p && c[-1] == '-';
            P->trim_nl = 1;
            P->p = (size_t)(c - P->s) + 2;
            continue;
        }
        if (tag == '{') {
            P->in_expr = 1;
            P->braces = 0;
            qw_jnode *o = node(P, JN_OUT, tpos);
            if (!o || next(P) || !(o->a = parse_expr(P)) || expect_end(P) || push(P, out, o)) return -1;
            continue;
        }
        P->in_expr = 2;
        P->trim_nl = 1;
        if (next(P)) return -1;
        if (P->tk != TK_NAME) return fail(P, P->tpos, "expected a tag name after '{%%'", NULL);
        if (stops)
            for (int i = 0; stops[i]; i++)
                if (is_name(P, stops[i])) {
                    *which = i;
                    P->depth--;
                    return next(P);
                }
        qw_jnode *st = NULL;
        size_t npos = P->tpos;
        int rc;
        if (is_name(P, "if"))
            rc = next(P) || parse_if(P, &st, tpos);
        else if (is_name(P, "for"))
            rc = next(P) || parse_for(P, &st, tpos);
        else if (is_name(P, "set"))
            rc = next(P) || parse_set(P, &st, tpos);
        else if (is_name(P, "break") || is_name(P, "continue")) {
            if (!(st = node(P, is_name(P, "break") ? JN_BREAK : JN_CONTINUE, tpos))) return -1;
            rc = next(P) || expect_end(P);
        } else if (is_name(P, "generation") || is_name(P, "endgeneration")) { /* transformers' marker: no output */
            rc = next(P) || expect_end(P);
        } else {
            char nm[64];
            size_t l = P->tlen < sizeof nm - 1 ? P->tlen : sizeof nm - 1;
            memcpy(nm, P->s + npos, l);
            nm[l] = 0;
            if (!strncmp(nm, "end", 3) || !strcmp(nm, "elif") || !strcmp(nm, "else"))
                return fail(P, npos, "unexpected {%% %s %%}", nm);
            return fail(P, npos, "unsupported construct '{%% %s %%}'", nm);
        }
        if (rc || P->failed) return -1;
        if (st && push(P, out, st)) return -1;
    }
}

qw_status qw_jinja_parse(const char *src, size_t len, const char *name, qw_jinja **out, qw_error *err) {
    *out = NULL;
    if (!name) name = "template";
    if (len > QW_JINJA_MAX_SOURCE)
        return qw_error_set(err, QW_E_UNSUPPORTED, "%s: chat_template is %zu bytes (at most %u)", name, len,
                            QW_JINJA_MAX_SOURCE);
    qw_jinja *t = calloc(1, sizeof *t);
    if (!t) return qw_error_set(err, QW_E_NOMEM, "%s: out of memory", name);
    t->arena.limit = QW_JINJA_MAX_HEAP;
    snprintf(t->name, sizeof t->name, "%s", name);
    if (len && src[len - 1] == '\n') len--; /* a single trailing newline is dropped, as Jinja does */
    t->src = malloc(len + 1);
    if (!t->src) {
        free(t);
        return qw_error_set(err, QW_E_NOMEM, "%s: out of memory", name);
    }
    memcpy(t->src, src, len);
    t->src[len] = 0;
    t->len = len;
    parser P = {.t = t, .s = t->src, .len = len, .err = err};
    nlist body = {0};
    if (parse_body(&P, NULL, &body, NULL, 0, NULL) || P.failed) {
        qw_status st = P.failed ? P.status : qw_error_set(err, QW_E_INTERNAL, "%s: chat_template: parse failed", name);
        qw_jinja_free(t);
        return st;
    }
    t->body = body.v;
    t->n = body.n;
    *out = t;
    return QW_OK;
}

void qw_jinja_free(qw_jinja *t) {
    if (!t) return;
    qw_jarena_free(&t->arena);
    free(t->src);
    free(t);
}
