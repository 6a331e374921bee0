/* qw_jinja.h - the subset of Jinja that Hugging Face chat templates use, rendered as @huggingface/jinja
 * (transformers.js) renders it: trim_blocks and lstrip_blocks on, `{%-`/`-%}` whitespace control,
 * if/elif/else, for (loop.*, else, a filter, unpacking), set (namespace attributes, blocks), break/continue,
 * expressions, filters, tests, string/dict methods, raise_exception, range, namespace, strftime_now.
 *
 * The template comes from a file, so everything is bounded: template size, nesting depth, evaluation
 * steps, memory and output; a template that exceeds a bound or uses a construct outside the subset gives
 * an error naming the file (the name given to qw_jinja_parse), the line and column, and the construct. */
#ifndef QW_JINJA_H
#define QW_JINJA_H

#include <stddef.h>
#include "qwasm.h"
#include "cJSON.h"

#define QW_JINJA_MAX_SOURCE (1u << 20) /* template bytes */
#define QW_JINJA_MAX_DEPTH 64          /* nesting of blocks and of expressions */
#ifndef QW_JINJA_MAX_STEPS             /* the fuzz build lowers it, so that every input ends within its timeout */
#define QW_JINJA_MAX_STEPS 10000000L   /* evaluation steps (nodes and iterations, plus bytes touched / 64) */
#endif
#define QW_JINJA_MAX_HEAP (64u << 20)   /* bytes of values made while rendering */
#define QW_JINJA_MAX_OUTPUT (16u << 20) /* bytes of one text (the output, a {% set %} block, a ~ b) */

typedef struct qw_jinja qw_jinja;

/* Parses src[0..len). name (e.g. "tokenizer_config.json") prefixes every error of this template. */
qw_status qw_jinja_parse(const char *src, size_t len, const char *name, qw_jinja **out, qw_error *err);
void qw_jinja_free(qw_jinja *t);

/* Renders with the members of vars (a JSON object) as variables. *out is malloc'd, NUL-terminated. */
qw_status qw_jinja_render(const qw_jinja *t, const cJSON *vars, char **out, size_t *out_len, qw_error *err);

#endif /* QW_JINJA_H */
