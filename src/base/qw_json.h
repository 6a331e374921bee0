/* qw_json.h - parsing a JSON file from a model folder (cJSON) with an error that says what is wrong. Internal. */
#ifndef QW_JSON_H
#define QW_JSON_H

#include <stddef.h>
#include "cJSON.h"
#include "qwasm.h"

/* Deeper nesting than this is refused before cJSON sees it (the model folder's files nest under 10 levels; cJSON's
 * own limit is 1000, and a deeper file would only say "malformed" where it stopped). */
#define QW_JSON_MAX_DEPTH 128

/* *out = the parsed text (cJSON_Delete it), or QW_E_FORMAT naming name: nested too deep (and where), or malformed
 * near a byte offset. */
qw_status qw_json_parse(const char *text, size_t len, const char *name, cJSON **out, qw_error *err);

#endif
