/* qw_json.c - JSON files of a model folder: nesting checked first, then cJSON (see qw_json.h). */
#include "qw_json.h"

/* byte offset where the nesting passes max, or -1; brackets inside strings do not count */
static long too_deep(const char *s, size_t n, int max) {
    int depth = 0, in_str = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (in_str) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_str = 0;
        } else if (c == '"') {
            in_str = 1;
        } else if (c == '[' || c == '{') {
            if (++depth > max) return (long)i;
        } else if (c == ']' || c == '}') {
            depth--;
        }
    }
    return -1;
}

static qw_status parse(const char *text, size_t len, const char *name, cJSON **out, qw_error *err) {
    *out = NULL;
    long at = too_deep(text, len, QW_JSON_MAX_DEPTH);
    if (at >= 0)
        return qw_error_set(err, QW_E_FORMAT, "%s: JSON nested deeper than %d levels (at byte %ld)", name,
                            QW_JSON_MAX_DEPTH, at);
    *out = cJSON_ParseWithLength(text, len);
    if (*out) return QW_OK;
    const char *e = cJSON_GetErrorPtr();
    long off = e && e >= text && e <= text + len ? (long)(e - text) : -1;
    return qw_error_set(err, QW_E_FORMAT, "%s: malformed JSON near byte %ld", name, off);
}

qw_status qw_json_parse(const char *text, size_t len, const char *name, cJSON **out, qw_error *err) {
    return qw_error_file(err, name, parse(text, len, name, out, err));
}
