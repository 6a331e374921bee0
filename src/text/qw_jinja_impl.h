/* qw_jinja_impl.h - internal to qw_jinja_parse.c / qw_jinja_run.c: the arena and the syntax tree. */
#ifndef QW_JINJA_IMPL_H
#define QW_JINJA_IMPL_H

#include <stddef.h>
#include <stdint.h>
#include "qw_jinja.h"

/* Bump allocator with a byte cap: the tree and every value made while rendering live in one, freed at once,
 * so values need no reference counts and a hostile template runs into the cap instead of the tab's memory. */
typedef struct qw_jarena_blk {
    struct qw_jarena_blk *next;
    size_t used, cap;
} qw_jarena_blk;
typedef struct qw_jarena {
    qw_jarena_blk *head;
    size_t total, limit;
} qw_jarena;

void *qw_jarena_alloc(qw_jarena *a, size_t n); /* 8-byte aligned, zeroed; NULL past the limit or out of memory */
void qw_jarena_free(qw_jarena *a);

typedef enum {
    /* statements */
    JN_TEXT,
    JN_OUT,
    JN_IF,
    JN_FOR,
    JN_SET,
    JN_BREAK,
    JN_CONTINUE,
    /* expressions */
    JN_STR,
    JN_INT,
    JN_FLOAT,
    JN_BOOL,
    JN_NONE,
    JN_NAME,
    JN_LIST,
    JN_TUPLE,
    JN_DICT,
    JN_ATTR,
    JN_INDEX,
    JN_SLICE,
    JN_CALL,
    JN_KWARG,
    JN_FILTER,
    JN_TEST,
    JN_NEG,
    JN_POS,
    JN_NOT,
    JN_AND,
    JN_OR,
    JN_BIN,
    JN_COND,
} qw_jnode_kind;

typedef enum {
    JOP_ADD,
    JOP_SUB,
    JOP_MUL,
    JOP_DIV,
    JOP_FLOORDIV,
    JOP_MOD,
    JOP_POW,
    JOP_CONCAT,
    JOP_EQ,
    JOP_NE,
    JOP_LT,
    JOP_LE,
    JOP_GT,
    JOP_GE,
    JOP_IN,
    JOP_NOTIN
} qw_jop;

typedef struct qw_jnode qw_jnode;
struct qw_jnode {
    uint8_t kind, op; /* qw_jnode_kind; qw_jop for JN_BIN; negated for JN_TEST */
    uint32_t pos;     /* byte offset in the template, for errors */
    const char *s;    /* JN_TEXT, JN_STR: bytes; JN_NAME, JN_ATTR, JN_FILTER, JN_TEST, JN_KWARG: name */
    size_t slen;
    int64_t i;           /* JN_INT, JN_BOOL */
    double f;            /* JN_FLOAT */
    qw_jnode *a, *b, *c; /* operands: IF cond; FOR iterable, filter; SET target, value; COND then, cond, else;
                              * SLICE obj, start, stop (d = step) ... */
    qw_jnode *d;
    qw_jnode **kids; /* bodies, items, arguments; JN_DICT: key, value, key, value ... */
    int n;
    qw_jnode **kids2; /* else bodies; JN_FOR: loop variable names (JN_NAME nodes) */
    int n2;
};

struct qw_jinja {
    qw_jarena arena;
    char *src; /* the template as given (positions index it) */
    size_t len;
    char name[128];
    qw_jnode **body;
    int n;
};

/* "name: chat_template line L col C: " for the byte offset pos, into buf. */
void qw_jinja_where(const qw_jinja *t, uint32_t pos, char *buf, size_t cap);

#endif /* QW_JINJA_IMPL_H */
