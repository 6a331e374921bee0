/* qw_tokenizer.c - byte-level BPE from tokenizer.json (see qw_tokenizer.h).
 *
 * Pipeline of encode, as Hugging Face tokenizers runs it for Qwen2:
 *   added tokens split out of the raw text (leftmost, then longest) -> NFC of each remaining piece ->
 *   the Qwen2 Split regex (Isolated) -> each piece's bytes -> BPE (lowest merge rank first, leftmost on
 *   ties, as tokenizers' Word::merge_all) -> ids.
 * Vocabulary strings are kept as raw bytes (the GPT-2 bytes_to_unicode alphabet is undone at load), so
 * BPE starts from one symbol per byte and decoding is a concatenation. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cJSON.h"
#include "qw_json.h"
#include "qw_tokenizer.h"
#include "qw_unicode.h"

#define QW_TOK_MAX_FILE (64u << 20) /* tokenizer.json of Qwen2 is ~7 MB */
#define CACHE_MAX_WORD 128          /* longer words are not cached */

/* The only pre-tokenizer regex qwasm implements (Qwen2 / Qwen2.5 / Qwen3). */
static const char QWEN2_PATTERN[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

typedef struct tok_entry {
    uint32_t off, len; /* bytes in t->arena; len 0 with off UINT32_MAX: no token */
} tok_entry;

typedef struct added_tok {
    int32_t id;
    int special;
    uint32_t off, len;
} added_tok;

typedef struct merge_slot {
    uint64_t key; /* (a << 32 | b) + 1; 0 = empty */
    int32_t rank, id;
} merge_slot;

typedef struct cache_slot {
    uint32_t hash;
    uint32_t word_off, word_len; /* in cache_arena */
    uint32_t ids_off, n_ids;     /* in cache_ids */
    int used;
} cache_slot;

struct qw_tokenizer {
    char name[128];
    int32_t n_tokens;  /* max id + 1 */
    tok_entry *tokens; /* [n_tokens] */
    unsigned char *arena;
    size_t arena_len, arena_cap;
    int32_t *vocab_hash; /* open addressing over model vocab ids, by bytes; -1 empty */
    uint32_t vocab_hash_mask;
    merge_slot *merges;
    uint32_t merges_mask;
    int32_t byte_id[256];
    added_tok *added;
    int n_added;
    unsigned char *is_special; /* [n_tokens] */
    int normalize_nfc;
    int32_t eos_id, pad_id;
    /* word cache: open addressing, cleared when 3/4 full */
    cache_slot *cache;
    uint32_t cache_mask, cache_used;
    unsigned char *cache_arena;
    size_t cache_arena_len, cache_arena_cap;
    int32_t *cache_ids;
    size_t cache_ids_len, cache_ids_cap;
};

/* ---- small helpers ------------------------------------------------------------------------------ */

static uint32_t fnv1a(const unsigned char *s, size_t n) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= 16777619u;
    }
    return h;
}

static uint64_t mix64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

static int grow(void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return 1;
    size_t nc = *cap ? *cap : 64;
    while (nc < need) nc *= 2;
    void *np = realloc(*p, nc * elem);
    if (!np) return 0;
    *p = np;
    *cap = nc;
    return 1;
}

static uint32_t pow2_at_least(size_t n) {
    uint32_t c = 1;
    while (c < n) c <<= 1;
    return c;
}

/* GPT-2 bytes_to_unicode, inverted: code point of the byte-level alphabet -> byte, -1 if not in it. */
static int byte_of_unicode[324];
static int bytemap_ready;

static void bytemap_init(void) {
    for (int i = 0; i < 324; i++) byte_of_unicode[i] = -1;
    int n = 0;
    for (int b = 0; b < 256; b++) {
        int keep = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        if (keep)
            byte_of_unicode[b] = b;
        else
            byte_of_unicode[256 + n++] = b;
    }
    bytemap_ready = 1;
}

/* Byte-level string (UTF-8 of the GPT-2 alphabet) -> raw bytes appended to dst; 0 if not byte-level. */
static int bytelevel_decode(const char *s, unsigned char *dst, size_t *dst_len) {
    const unsigned char *u = (const unsigned char *)s;
    size_t n = strlen(s), w = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        i += qw_utf8_decode(u + i, n - i, &cp, NULL);
        if (cp >= 324 || byte_of_unicode[cp] < 0) return 0;
        dst[w++] = (unsigned char)byte_of_unicode[cp];
    }
    *dst_len = w;
    return 1;
}

static int32_t vocab_lookup(const qw_tokenizer *t, const unsigned char *s, size_t n) {
    uint32_t h = fnv1a(s, n) & t->vocab_hash_mask;
    for (;;) {
        int32_t id = t->vocab_hash[h];
        if (id < 0) return -1;
        const tok_entry *e = &t->tokens[id];
        if (e->len == n && !memcmp(t->arena + e->off, s, n)) return id;
        h = (h + 1) & t->vocab_hash_mask;
    }
}

static const merge_slot *merge_lookup(const qw_tokenizer *t, int32_t a, int32_t b) {
    uint64_t key = (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1;
    uint32_t h = (uint32_t)mix64(key) & t->merges_mask;
    for (;;) {
        const merge_slot *s = &t->merges[h];
        if (!s->key) return NULL;
        if (s->key == key) return s;
        h = (h + 1) & t->merges_mask;
    }
}

/* ---- loading ----------------------------------------------------------------------------------- */

void qw_tokenizer_free(qw_tokenizer *t) {
    if (!t) return;
    free(t->tokens);
    free(t->arena);
    free(t->vocab_hash);
    free(t->merges);
    free(t->added);
    free(t->is_special);
    free(t->cache);
    free(t->cache_arena);
    free(t->cache_ids);
    free(t);
}

static const char *jstr(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int jtrue(const cJSON *o, const char *key) { return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, key)); }

/* Checks normalizer and pre_tokenizer are ones qwasm implements exactly. */
static qw_status check_pipeline(qw_tokenizer *t, const cJSON *root, qw_error *err) {
    const char *nm = t->name;
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    const char *mtype = jstr(model, "type");
    if (!cJSON_IsObject(model)) return qw_error_set(err, QW_E_FORMAT, "%s: no \"model\" object", nm);
    if (!mtype || strcmp(mtype, "BPE"))
        return qw_error_set(err, QW_E_UNSUPPORTED,
                            "%s: model type \"%s\" is not supported; qwasm reads byte-level BPE "
                            "tokenizers (GPT-2/Qwen2) only, run the model with raw ids",
                            nm, mtype ? mtype : "?");
    if (jtrue(model, "byte_fallback"))
        return qw_error_set(err, QW_E_UNSUPPORTED,
                            "%s: a SentencePiece-style BPE (byte_fallback) is not supported; qwasm "
                            "reads byte-level BPE tokenizers (GPT-2/Qwen2) only, run the model with raw ids",
                            nm);
    const char *pfx = jstr(model, "continuing_subword_prefix"), *sfx = jstr(model, "end_of_word_suffix");
    if ((pfx && *pfx) || (sfx && *sfx))
        return qw_error_set(err, QW_E_UNSUPPORTED,
                            "%s: BPE with continuing_subword_prefix/end_of_word_suffix is not supported", nm);
    if (jtrue(model, "ignore_merges"))
        return qw_error_set(err, QW_E_UNSUPPORTED, "%s: BPE with ignore_merges is not supported", nm);
    const cJSON *dropout = cJSON_GetObjectItemCaseSensitive(model, "dropout");
    if (cJSON_IsNumber(dropout) && dropout->valuedouble > 0)
        return qw_error_set(err, QW_E_UNSUPPORTED, "%s: BPE dropout is not supported", nm);

    const cJSON *norm = cJSON_GetObjectItemCaseSensitive(root, "normalizer");
    if (norm && !cJSON_IsNull(norm)) {
        const char *nt = jstr(norm, "type");
        if (!nt || strcmp(nt, "NFC"))
            return qw_error_set(
                err, QW_E_UNSUPPORTED,
                "%s: normalizer \"%s\" is not supported (qwasm implements NFC, as "
                "Qwen2 uses; SentencePiece-style Prepend/Replace normalizers mean a Metaspace tokenizer)",
                nm, nt ? nt : "?");
        t->normalize_nfc = 1;
    }

    const cJSON *pre = cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer");
    const char *pt = jstr(pre, "type");
    int have_split = 0, have_bytelevel = 0;
    const cJSON *list = NULL;
    if (pt && !strcmp(pt, "Sequence")) list = cJSON_GetObjectItemCaseSensitive(pre, "pretokenizers");
    const cJSON *one = NULL;
    int count = list ? cJSON_GetArraySize(list) : (pt ? 1 : 0);
    for (int i = 0; i < count; i++) {
        one = list ? cJSON_GetArrayItem(list, i) : pre;
        const char *ty = jstr(one, "type");
        if (ty && !strcmp(ty, "Split") && !have_split && !have_bytelevel) {
            const cJSON *pat = cJSON_GetObjectItemCaseSensitive(one, "pattern");
            const char *re = jstr(pat, "Regex");
            const char *beh = jstr(one, "behavior");
            if (!re || strcmp(re, QWEN2_PATTERN))
                return qw_error_set(err, QW_E_UNSUPPORTED,
                                    "%s: pre-tokenizer regex is not Qwen2's; qwasm implements only "
                                    "the Qwen2 pattern",
                                    nm);
            if (!beh || strcmp(beh, "Isolated") || jtrue(one, "invert"))
                return qw_error_set(err, QW_E_UNSUPPORTED, "%s: Split pre-tokenizer behavior \"%s\" is not supported",
                                    nm, beh ? beh : "?");
            have_split = 1;
        } else if (ty && !strcmp(ty, "ByteLevel") && !have_bytelevel) {
            if (jtrue(one, "add_prefix_space") || jtrue(one, "use_regex"))
                return qw_error_set(err, QW_E_UNSUPPORTED,
                                    "%s: ByteLevel pre-tokenizer with add_prefix_space/use_regex "
                                    "(GPT-2's own regex) is not supported",
                                    nm);
            have_bytelevel = 1;
        } else {
            return qw_error_set(err, QW_E_UNSUPPORTED,
                                "%s: pre-tokenizer \"%s\" is not supported; qwasm reads byte-level "
                                "BPE tokenizers with the Qwen2 Split regex (Metaspace means SentencePiece-style), run "
                                "the model with raw ids",
                                nm, ty ? ty : "?");
        }
    }
    if (!have_split || !have_bytelevel)
        return qw_error_set(err, QW_E_UNSUPPORTED,
                            "%s: the pre-tokenizer is not the Qwen2 Split regex + ByteLevel that "
                            "qwasm implements (a SentencePiece-style tokenizer?); run the model with raw ids",
                            nm);
    return QW_OK;
}

static qw_status arena_add(qw_tokenizer *t, const unsigned char *s, size_t n, uint32_t *off, qw_error *err) {
    if (!grow((void **)&t->arena, &t->arena_cap, t->arena_len + n + 1, 1))
        return qw_error_set(err, QW_E_NOMEM, "%s: out of memory for the vocabulary", t->name);
    memcpy(t->arena + t->arena_len, s, n);
    *off = (uint32_t)t->arena_len;
    t->arena_len += n;
    return QW_OK;
}

static qw_status build(qw_tokenizer *t, const cJSON *root, qw_error *err) {
    const char *nm = t->name;
    qw_status st = check_pipeline(t, root, err);
    if (st) return st;
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    if (!cJSON_IsObject(vocab)) return qw_error_set(err, QW_E_FORMAT, "%s: model.vocab is not an object", nm);
    if (!cJSON_IsArray(merges)) return qw_error_set(err, QW_E_FORMAT, "%s: model.merges is not an array", nm);

    /* ids span vocab and added tokens */
    int32_t max_id = -1;
    int n_vocab = 0;
    for (const cJSON *v = vocab->child; v; v = v->next) {
        if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 16777216.0 ||
            v->valuedouble != floor(v->valuedouble))
            return qw_error_set(err, QW_E_FORMAT,
                                "%s: vocab entry \"%.40s\" has no valid id (an integer from 0 to 16777216)", nm,
                                v->string ? v->string : "?");
        if (v->valueint > max_id) max_id = v->valueint;
        n_vocab++;
    }
    int n_added = cJSON_IsArray(added) ? cJSON_GetArraySize(added) : 0;
    for (int i = 0; i < n_added; i++) {
        const cJSON *a = cJSON_GetArrayItem(added, i);
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(a, "id");
        if (!cJSON_IsNumber(id) || id->valuedouble < 0 || id->valuedouble > 16777216.0 ||
            id->valuedouble != floor(id->valuedouble) || !jstr(a, "content"))
            return qw_error_set(err, QW_E_FORMAT, "%s: added_tokens[%d] has no valid id/content", nm, i);
        if (id->valueint > max_id) max_id = id->valueint;
    }
    if (n_vocab < 256)
        return qw_error_set(err, QW_E_FORMAT, "%s: vocabulary has %d entries, fewer than the 256 bytes", nm, n_vocab);
    t->n_tokens = max_id + 1;
    t->tokens = malloc((size_t)t->n_tokens * sizeof *t->tokens);
    t->is_special = calloc((size_t)t->n_tokens, 1);
    t->vocab_hash_mask = pow2_at_least((size_t)n_vocab * 2) - 1;
    t->vocab_hash = malloc(((size_t)t->vocab_hash_mask + 1) * sizeof *t->vocab_hash);
    if (!t->tokens || !t->is_special || !t->vocab_hash) return qw_error_set(err, QW_E_NOMEM, "%s: out of memory", nm);
    for (int32_t i = 0; i < t->n_tokens; i++) {
        t->tokens[i].off = UINT32_MAX;
        t->tokens[i].len = 0;
    }
    memset(t->vocab_hash, 0xff, ((size_t)t->vocab_hash_mask + 1) * sizeof *t->vocab_hash);
    for (int b = 0; b < 256; b++) t->byte_id[b] = -1;

    unsigned char buf[1024];
    for (const cJSON *v = vocab->child; v; v = v->next) {
        const char *key = v->string;
        size_t blen;
        if (!key || strlen(key) > sizeof buf || !bytelevel_decode(key, buf, &blen))
            return qw_error_set(err, QW_E_UNSUPPORTED,
                                "%s: vocab token \"%.40s\" is not in the byte-level (GPT-2) alphabet; "
                                "qwasm reads byte-level BPE tokenizers only, run the model with raw ids",
                                nm, key ? key : "?");
        int32_t id = v->valueint;
        if (t->tokens[id].off != UINT32_MAX)
            return qw_error_set(err, QW_E_FORMAT, "%s: vocab id %d appears twice", nm, id);
        if (vocab_lookup(t, buf, blen) >= 0)
            return qw_error_set(err, QW_E_FORMAT, "%s: vocab token \"%.40s\" appears twice", nm, key);
        if ((st = arena_add(t, buf, blen, &t->tokens[id].off, err))) return st;
        t->tokens[id].len = (uint32_t)blen;
        uint32_t h = fnv1a(buf, blen) & t->vocab_hash_mask;
        while (t->vocab_hash[h] >= 0) h = (h + 1) & t->vocab_hash_mask;
        t->vocab_hash[h] = id;
        if (blen == 1) t->byte_id[buf[0]] = id;
    }
    for (int b = 0; b < 256; b++)
        if (t->byte_id[b] < 0)
            return qw_error_set(err, QW_E_UNSUPPORTED, "%s: byte 0x%02x has no token; not a byte-level BPE vocabulary",
                                nm, b);

    /* merges: "a b" strings or ["a", "b"] pairs; rank = position */
    int n_merges = cJSON_GetArraySize(merges);
    t->merges_mask = pow2_at_least((size_t)n_merges * 2 + 2) - 1;
    t->merges = calloc((size_t)t->merges_mask + 1, sizeof *t->merges);
    if (!t->merges) return qw_error_set(err, QW_E_NOMEM, "%s: out of memory for %d merges", nm, n_merges);
    unsigned char ab[2048];
    int rank = 0;
    for (const cJSON *m = merges->child; m; m = m->next, rank++) {
        const char *sa, *sb;
        char tmp[1024];
        if (cJSON_IsString(m)) {
            const char *sp = strchr(m->valuestring, ' ');
            size_t la = sp ? (size_t)(sp - m->valuestring) : 0;
            if (!sp || la >= sizeof tmp || strchr(sp + 1, ' '))
                return qw_error_set(err, QW_E_FORMAT, "%s: merges[%d] \"%.40s\" is not \"a b\"", nm, rank,
                                    m->valuestring);
            memcpy(tmp, m->valuestring, la);
            tmp[la] = 0;
            sa = tmp;
            sb = sp + 1;
        } else if (cJSON_IsArray(m) && cJSON_GetArraySize(m) == 2 && cJSON_IsString(m->child) &&
                   cJSON_IsString(m->child->next)) {
            sa = m->child->valuestring;
            sb = m->child->next->valuestring;
        } else {
            return qw_error_set(err, QW_E_FORMAT, "%s: merges[%d] is neither \"a b\" nor [a, b]", nm, rank);
        }
        size_t la, lb;
        if (strlen(sa) >= 1024 || strlen(sb) >= 1024 || !bytelevel_decode(sa, ab, &la) ||
            !bytelevel_decode(sb, ab + la, &lb))
            return qw_error_set(err, QW_E_FORMAT, "%s: merges[%d] is not in the byte-level alphabet", nm, rank);
        int32_t ia = vocab_lookup(t, ab, la), ib = vocab_lookup(t, ab + la, lb), ic = vocab_lookup(t, ab, la + lb);
        if (ia < 0 || ib < 0 || ic < 0)
            return qw_error_set(err, QW_E_FORMAT,
                                "%s: merges[%d] (\"%.30s\" \"%.30s\") uses a token not in the vocabulary", nm, rank, sa,
                                sb);
        uint64_t key = (((uint64_t)(uint32_t)ia << 32) | (uint32_t)ib) + 1;
        uint32_t h = (uint32_t)mix64(key) & t->merges_mask;
        while (t->merges[h].key && t->merges[h].key != key) h = (h + 1) & t->merges_mask;
        if (t->merges[h].key) continue; /* a repeated pair keeps its first (lowest) rank, as tokenizers does */
        t->merges[h].key = key;
        t->merges[h].rank = rank;
        t->merges[h].id = ic;
    }

    /* added tokens: matched in the raw text, so stored as their UTF-8 content */
    if (n_added) {
        t->added = calloc((size_t)n_added, sizeof *t->added);
        if (!t->added) return qw_error_set(err, QW_E_NOMEM, "%s: out of memory", nm);
    }
    for (int i = 0; i < n_added; i++) {
        const cJSON *a = cJSON_GetArrayItem(added, i);
        const char *content = jstr(a, "content");
        int32_t id = cJSON_GetObjectItemCaseSensitive(a, "id")->valueint;
        size_t cl = strlen(content);
        if (!cl) continue;
        if (jtrue(a, "single_word") || jtrue(a, "lstrip") || jtrue(a, "rstrip"))
            return qw_error_set(err, QW_E_UNSUPPORTED,
                                "%s: added token \"%.40s\" uses single_word/lstrip/rstrip, which "
                                "qwasm does not implement",
                                nm, content);
        added_tok *at = &t->added[t->n_added++];
        at->id = id;
        at->special = jtrue(a, "special");
        at->len = (uint32_t)cl;
        if ((st = arena_add(t, (const unsigned char *)content, cl, &at->off, err))) return st;
        if (t->tokens[id].off == UINT32_MAX) { /* ids outside the model vocab decode to their content */
            t->tokens[id].off = at->off;
            t->tokens[id].len = at->len;
        }
        if (at->special) t->is_special[id] = 1;
    }

    t->cache_mask = 65535;
    t->cache = calloc((size_t)t->cache_mask + 1, sizeof *t->cache);
    if (!t->cache) return qw_error_set(err, QW_E_NOMEM, "%s: out of memory", nm);
    t->eos_id = -1;
    t->pad_id = -1;
    return QW_OK;
}

qw_status qw_tokenizer_load_json(const char *json, size_t len, const char *name, qw_tokenizer **out, qw_error *err) {
    if (!out || !json) return qw_error_set(err, QW_E_ARG, "qw_tokenizer_load_json: NULL argument");
    *out = NULL;
    if (!name) name = "tokenizer.json";
    if (!bytemap_ready) bytemap_init();
    cJSON *root;
    qw_status pst = qw_json_parse(json, len, name, &root, err);
    if (pst != QW_OK) return pst;
    qw_tokenizer *t = calloc(1, sizeof *t);
    if (!t) {
        cJSON_Delete(root);
        return qw_error_set(err, QW_E_NOMEM, "%s: out of memory", name);
    }
    snprintf(t->name, sizeof t->name, "%s", name);
    qw_status st = cJSON_IsObject(root) ? build(t, root, err)
                                        : qw_error_set(err, QW_E_FORMAT, "%s: top level is not an object", name);
    cJSON_Delete(root);
    if (st) {
        qw_tokenizer_free(t);
        return qw_error_file(err, name, st);
    }
    *out = t;
    return QW_OK;
}

qw_status qw_tokenizer_load_fs(const qw_fs *fs, const char *name, qw_tokenizer **out, qw_error *err) {
    if (!name) name = "tokenizer.json";
    char *buf = NULL;
    size_t len = 0;
    qw_status st = qw_fs_read_all(fs, name, QW_TOK_MAX_FILE, &buf, &len, err);
    if (st) return st;
    st = qw_tokenizer_load_json(buf, len, name, out, err);
    free(buf);
    return st;
}

static int32_t config_token(const qw_tokenizer *t, const cJSON *root, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    const char *s = cJSON_IsString(v) ? v->valuestring : jstr(v, "content");
    return s ? qw_tokenizer_token_id(t, s) : -1;
}

qw_status qw_tokenizer_apply_config_json(qw_tokenizer *t, const char *json, size_t len, const char *name,
                                         qw_error *err) {
    if (!name) name = "tokenizer_config.json";
    cJSON *root;
    qw_status pst = qw_json_parse(json, len, name, &root, err);
    if (pst != QW_OK) return pst;
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return qw_error_file(err, name, qw_error_set(err, QW_E_FORMAT, "%s: not a JSON object", name));
    }
    int32_t e = config_token(t, root, "eos_token"), p = config_token(t, root, "pad_token");
    if (e >= 0) t->eos_id = e;
    if (p >= 0) t->pad_id = p;
    cJSON_Delete(root);
    return QW_OK;
}

/* ---- queries ----------------------------------------------------------------------------------- */

int32_t qw_tokenizer_token_id(const qw_tokenizer *t, const char *text) {
    size_t n = strlen(text);
    for (int i = 0; i < t->n_added; i++)
        if (t->added[i].len == n && !memcmp(t->arena + t->added[i].off, text, n)) return t->added[i].id;
    return vocab_lookup(t, (const unsigned char *)text, n);
}

const unsigned char *qw_tokenizer_token_bytes(const qw_tokenizer *t, int32_t id, size_t *len) {
    if (id < 0 || id >= t->n_tokens || t->tokens[id].off == UINT32_MAX) {
        if (len) *len = 0;
        return NULL;
    }
    if (len) *len = t->tokens[id].len;
    return t->arena + t->tokens[id].off;
}

int qw_tokenizer_is_special(const qw_tokenizer *t, int32_t id) {
    return id >= 0 && id < t->n_tokens && t->is_special[id];
}

int32_t qw_tokenizer_n_tokens(const qw_tokenizer *t) { return t->n_tokens; }

int32_t qw_tokenizer_eos_id(const qw_tokenizer *t) {
    if (t->eos_id >= 0) return t->eos_id;
    int32_t id = qw_tokenizer_token_id(t, "<|im_end|>");
    return id >= 0 ? id : qw_tokenizer_token_id(t, "<|endoftext|>");
}

int32_t qw_tokenizer_pad_id(const qw_tokenizer *t) {
    return t->pad_id >= 0 ? t->pad_id : qw_tokenizer_token_id(t, "<|endoftext|>");
}

/* ---- the Qwen2 pre-tokenizer ---------------------------------------------------------------------
 * (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
 * Returns the end of the match at pos, trying the alternatives in order as a backtracking engine
 * (Oniguruma, fancy-regex, JS) does. Every character starts some alternative, so the pieces tile the
 * text. Ill-formed bytes count as one "other" character each. */

typedef struct ch {
    uint32_t cp;
    size_t len;
    unsigned cls;
} ch;

static inline ch char_at(const unsigned char *s, size_t n, size_t pos) {
    ch c;
    if (s[pos] < 0x80) {
        c.cp = s[pos];
        c.len = 1;
    } else
        c.len = qw_utf8_decode(s + pos, n - pos, &c.cp, NULL);
    c.cls = qw_uc_class(c.cp);
    return c;
}

#define IS_CRLF(cp) ((cp) == '\r' || (cp) == '\n')
#define IS_PUNCT(c) (((c).cls & (QW_UC_L | QW_UC_N | QW_UC_WS)) == 0) /* [^\s\p{L}\p{N}] */

static size_t scan_letters(const unsigned char *s, size_t n, size_t pos) {
    while (pos < n) {
        ch c = char_at(s, n, pos);
        if (!(c.cls & QW_UC_L)) break;
        pos += c.len;
    }
    return pos;
}

static size_t qwen2_match(const unsigned char *s, size_t n, size_t pos) {
    ch c = char_at(s, n, pos);
    size_t nx = pos + c.len;
    /* 1: (?i:'s|'t|'re|'ve|'m|'ll|'d) */
    if (c.cp == '\'' && nx < n) {
        ch c2 = char_at(s, n, nx);
        uint32_t f = qw_uc_fold_ascii(c2.cp);
        if (f == 's' || f == 't' || f == 'm' || f == 'd') return nx + c2.len;
        if ((f == 'r' || f == 'v' || f == 'l') && nx + c2.len < n) {
            ch c3 = char_at(s, n, nx + c2.len);
            uint32_t f3 = qw_uc_fold_ascii(c3.cp);
            if ((f != 'l' && f3 == 'e') || (f == 'l' && f3 == 'l')) return nx + c2.len + c3.len;
        }
    }
    /* 2: [^\r\n\p{L}\p{N}]?\p{L}+ */
    if (c.cls & QW_UC_L) return scan_letters(s, n, nx);
    if (!IS_CRLF(c.cp) && !(c.cls & QW_UC_N) && nx < n) {
        ch c2 = char_at(s, n, nx);
        if (c2.cls & QW_UC_L) return scan_letters(s, n, nx + c2.len);
    }
    /* 3: \p{N} */
    if (c.cls & QW_UC_N) return nx;
    /* 4:  ?[^\s\p{L}\p{N}]+[\r\n]* */
    size_t p4 = n + 1;
    if (IS_PUNCT(c))
        p4 = pos;
    else if (c.cp == ' ' && nx < n && IS_PUNCT(char_at(s, n, nx)))
        p4 = nx;
    if (p4 <= n) {
        while (p4 < n) {
            ch d = char_at(s, n, p4);
            if (!IS_PUNCT(d)) break;
            p4 += d.len;
        }
        while (p4 < n && IS_CRLF(s[p4])) p4++;
        return p4;
    }
    /* c is whitespace here. Scan its run [pos, e): the last CR/LF and where the last character starts. */
    size_t e = pos, last_crlf = n + 1, last_start = pos;
    int count = 0;
    while (e < n) {
        ch d = char_at(s, n, e);
        if (!(d.cls & QW_UC_WS)) break;
        if (IS_CRLF(d.cp)) last_crlf = e;
        last_start = e;
        count++;
        e += d.len;
    }
    /* 5: \s*[\r\n]+ : \s* backs off to the last CR/LF of the run, [\r\n]+ takes it */
    if (last_crlf <= n) return last_crlf + 1;
    /* 6: \s+(?!\S) : the whole run at the end of text, else the run minus its last character */
    if (e == n) return e;
    if (count >= 2) return last_start;
    /* 7: \s+ */
    return e;
}

/* ---- BPE ----------------------------------------------------------------------------------------- */

typedef struct bpe_item {
    int32_t rank, pos, id;
} bpe_item;

typedef struct bpe_work {
    int32_t *sym, *prev, *next;
    bpe_item *heap;
    size_t cap, heap_n;
} bpe_work;

static inline int item_less(const bpe_item *a, const bpe_item *b) {
    return a->rank < b->rank || (a->rank == b->rank && a->pos < b->pos);
}

static void heap_push(bpe_work *w, bpe_item it) {
    size_t i = w->heap_n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!item_less(&it, &w->heap[p])) break;
        w->heap[i] = w->heap[p];
        i = p;
    }
    w->heap[i] = it;
}

static bpe_item heap_pop(bpe_work *w) {
    bpe_item top = w->heap[0], last = w->heap[--w->heap_n];
    size_t i = 0, n = w->heap_n;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const bpe_item *best = &last;
        if (l < n && item_less(&w->heap[l], best)) {
            m = l;
            best = &w->heap[l];
        }
        if (r < n && item_less(&w->heap[r], best)) { m = r; }
        if (m == i) break;
        w->heap[i] = w->heap[m];
        i = m;
    }
    if (n) w->heap[i] = last;
    return top;
}

static void push_pair(const qw_tokenizer *t, bpe_work *w, int32_t pos) {
    if (pos < 0) return;
    int32_t nx = w->next[pos];
    if (nx < 0) return;
    const merge_slot *m = merge_lookup(t, w->sym[pos], w->sym[nx]);
    if (m) heap_push(w, (bpe_item){m->rank, pos, m->id});
}

/* BPE of one word; appends ids to *out. */
static int bpe_word(const qw_tokenizer *t, bpe_work *w, const unsigned char *s, size_t n, int32_t **out, size_t *out_n,
                    size_t *out_cap) {
    if (n > w->cap) {
        size_t nc = n < 64 ? 64 : n * 2;
        int32_t *a = realloc(w->sym, nc * sizeof *a);
        if (!a) return 0;
        w->sym = a;
        if (!(a = realloc(w->prev, nc * sizeof *a))) return 0;
        w->prev = a;
        if (!(a = realloc(w->next, nc * sizeof *a))) return 0;
        w->next = a;
        bpe_item *h = realloc(w->heap, nc * 3 * sizeof *h); /* n-1 initial pairs + 2 per merge */
        if (!h) return 0;
        w->heap = h;
        w->cap = nc;
    }
    for (size_t i = 0; i < n; i++) {
        w->sym[i] = t->byte_id[s[i]];
        w->prev[i] = (int32_t)i - 1;
        w->next[i] = i + 1 < n ? (int32_t)i + 1 : -1;
    }
    w->heap_n = 0;
    for (size_t i = 0; i + 1 < n; i++) push_pair(t, w, (int32_t)i);
    while (w->heap_n) {
        bpe_item it = heap_pop(w);
        int32_t pos = it.pos;
        if (w->sym[pos] < 0) continue; /* merged into its left neighbour */
        int32_t nx = w->next[pos];
        if (nx < 0) continue;
        const merge_slot *m = merge_lookup(t, w->sym[pos], w->sym[nx]);
        if (!m || m->id != it.id) continue; /* stale: the pair changed since it was queued */
        w->sym[pos] = it.id;
        w->sym[nx] = -1;
        w->next[pos] = w->next[nx];
        if (w->next[nx] >= 0) w->prev[w->next[nx]] = pos;
        push_pair(t, w, w->prev[pos]);
        push_pair(t, w, pos);
    }
    for (int32_t i = 0; i >= 0; i = w->next[i]) {
        if (!grow((void **)out, out_cap, *out_n + 1, sizeof **out)) return 0;
        (*out)[(*out_n)++] = w->sym[i];
    }
    return 1;
}

static void cache_clear(qw_tokenizer *t) {
    memset(t->cache, 0, ((size_t)t->cache_mask + 1) * sizeof *t->cache);
    t->cache_used = 0;
    t->cache_arena_len = 0;
    t->cache_ids_len = 0;
}

static int encode_word(qw_tokenizer *t, bpe_work *w, const unsigned char *s, size_t n, int32_t **out, size_t *out_n,
                       size_t *out_cap) {
    if (n == 1) { /* every byte is a token */
        if (!grow((void **)out, out_cap, *out_n + 1, sizeof **out)) return 0;
        (*out)[(*out_n)++] = t->byte_id[s[0]];
        return 1;
    }
    if (n > CACHE_MAX_WORD) return bpe_word(t, w, s, n, out, out_n, out_cap);
    uint32_t hash = fnv1a(s, n), h = hash & t->cache_mask;
    for (;;) {
        cache_slot *c = &t->cache[h];
        if (!c->used) break;
        if (c->hash == hash && c->word_len == n && !memcmp(t->cache_arena + c->word_off, s, n)) {
            if (!grow((void **)out, out_cap, *out_n + c->n_ids, sizeof **out)) return 0;
            memcpy(*out + *out_n, t->cache_ids + c->ids_off, c->n_ids * sizeof **out);
            *out_n += c->n_ids;
            return 1;
        }
        h = (h + 1) & t->cache_mask;
    }
    size_t start = *out_n;
    if (!bpe_word(t, w, s, n, out, out_n, out_cap)) return 0;
    size_t k = *out_n - start;
    if (t->cache_used * 4 >= (t->cache_mask + 1) * 3) {
        cache_clear(t);
        h = hash & t->cache_mask;
    }
    if (!grow((void **)&t->cache_arena, &t->cache_arena_cap, t->cache_arena_len + n, 1) ||
        !grow((void **)&t->cache_ids, &t->cache_ids_cap, t->cache_ids_len + k, sizeof *t->cache_ids))
        return 1; /* the cache is an optimisation; the word is encoded */
    cache_slot *c = &t->cache[h];
    c->used = 1;
    c->hash = hash;
    c->word_off = (uint32_t)t->cache_arena_len;
    c->word_len = (uint32_t)n;
    c->ids_off = (uint32_t)t->cache_ids_len;
    c->n_ids = (uint32_t)k;
    memcpy(t->cache_arena + t->cache_arena_len, s, n);
    memcpy(t->cache_ids + t->cache_ids_len, *out + start, k * sizeof **out);
    t->cache_arena_len += n;
    t->cache_ids_len += k;
    t->cache_used++;
    return 1;
}

/* Normalises, pre-tokenizes and BPE-encodes one piece of text without added tokens. */
static qw_status encode_piece(qw_tokenizer *t, bpe_work *w, const char *text, size_t len, int32_t **out, size_t *out_n,
                              size_t *out_cap, qw_error *err) {
    char *norm = NULL;
    if (t->normalize_nfc && !qw_nfc_quick_check(text, len)) {
        qw_status st = qw_nfc(text, len, &norm, &len, err);
        if (st) return st;
        text = norm;
    }
    const unsigned char *s = (const unsigned char *)text;
    for (size_t pos = 0; pos < len;) {
        size_t end = qwen2_match(s, len, pos);
        if (!encode_word(t, w, s + pos, end - pos, out, out_n, out_cap)) {
            free(norm);
            return qw_error_set(err, QW_E_NOMEM, "%s: out of memory encoding", t->name);
        }
        pos = end;
    }
    free(norm);
    return QW_OK;
}

qw_status qw_tokenizer_encode(qw_tokenizer *t, const char *text, size_t len, int32_t **ids, size_t *n, qw_error *err) {
    if (!t || !ids || !n || (!text && len)) return qw_error_set(err, QW_E_ARG, "qw_tokenizer_encode: NULL argument");
    *ids = NULL;
    *n = 0;
    int32_t *out = NULL;
    size_t out_n = 0, out_cap = 0;
    bpe_work w = {0};
    qw_status st = QW_OK;
    /* first bytes of the added tokens, to skip positions quickly */
    unsigned char first[256] = {0};
    for (int i = 0; i < t->n_added; i++) first[t->arena[t->added[i].off]] = 1;
    const unsigned char *s = (const unsigned char *)text;
    size_t piece = 0;
    for (size_t pos = 0; pos < len && !st;) {
        int best = -1;
        if (first[s[pos]]) {
            for (int i = 0; i < t->n_added; i++) {
                const added_tok *a = &t->added[i];
                if (a->len <= len - pos && (best < 0 || a->len > t->added[best].len) &&
                    !memcmp(s + pos, t->arena + a->off, a->len))
                    best = i;
            }
        }
        if (best < 0) {
            pos++;
            continue;
        }
        if (pos > piece) st = encode_piece(t, &w, text + piece, pos - piece, &out, &out_n, &out_cap, err);
        if (st) break;
        if (!grow((void **)&out, &out_cap, out_n + 1, sizeof *out)) {
            st = qw_error_set(err, QW_E_NOMEM, "%s: out of memory encoding", t->name);
            break;
        }
        out[out_n++] = t->added[best].id;
        pos += t->added[best].len;
        piece = pos;
    }
    if (!st && piece < len) st = encode_piece(t, &w, text + piece, len - piece, &out, &out_n, &out_cap, err);
    free(w.sym);
    free(w.prev);
    free(w.next);
    free(w.heap);
    if (st) {
        free(out);
        return st;
    }
    if (!out) out = malloc(sizeof *out); /* a valid pointer even for no ids */
    if (!out) return qw_error_set(err, QW_E_NOMEM, "%s: out of memory encoding", t->name);
    *ids = out;
    *n = out_n;
    return QW_OK;
}

/* ---- decoding ------------------------------------------------------------------------------------ */

/* Models pad their embedding past the tokenizer (Qwen2.5: 151936 rows, 151665 tokens); like Hugging Face's
 * decode, an id without a token decodes to nothing. */
static int has_token(const qw_tokenizer *t, int32_t id) {
    return id >= 0 && id < t->n_tokens && t->tokens[id].off != UINT32_MAX;
}

qw_status qw_tokenizer_decode(const qw_tokenizer *t, const int32_t *ids, size_t n, int skip_special, char **text,
                              size_t *text_len, qw_error *err) {
    if (!t || !text || (!ids && n)) return qw_error_set(err, QW_E_ARG, "qw_tokenizer_decode: NULL argument");
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0) return qw_error_set(err, QW_E_RANGE, "%s: id %d is negative", t->name, ids[i]);
        if (!has_token(t, ids[i])) continue;
        total += t->tokens[ids[i]].len;
    }
    unsigned char *raw = malloc(total + 1);
    if (!raw) return qw_error_set(err, QW_E_NOMEM, "%s: out of memory decoding", t->name);
    size_t w = 0;
    for (size_t i = 0; i < n; i++) {
        if (!has_token(t, ids[i]) || (skip_special && t->is_special[ids[i]])) continue;
        memcpy(raw + w, t->arena + t->tokens[ids[i]].off, t->tokens[ids[i]].len);
        w += t->tokens[ids[i]].len;
    }
    qw_status st = qw_utf8_lossy(raw, w, text, text_len, err);
    free(raw);
    return st;
}

void qw_detok_stream_init(qw_detok_stream *s, const qw_tokenizer *t, int skip_special) {
    memset(s, 0, sizeof *s);
    s->tok = t;
    s->skip_special = skip_special;
}

void qw_detok_stream_free(qw_detok_stream *s) {
    if (!s) return;
    free(s->buf);
    s->buf = NULL;
    s->cap = 0;
}

qw_status qw_detok_stream_push(qw_detok_stream *s, int32_t id, const char **text, size_t *len, qw_error *err) {
    const qw_tokenizer *t = s->tok;
    if (id < 0) return qw_error_set(err, QW_E_RANGE, "%s: id %d is negative", t->name, id);
    /* an id with an lm_head row but no token (past the tokenizer's ids, or a hole) decodes to nothing */
    size_t tl = !has_token(t, id) || (s->skip_special && t->is_special[id]) ? 0 : t->tokens[id].len;
    size_t n = (size_t)s->npend + tl;
    /* output <= 3 bytes per input byte (U+FFFD for each) */
    if (!grow((void **)&s->buf, &s->cap, n * 3 + 1 + n, 1))
        return qw_error_set(err, QW_E_NOMEM, "%s: out of memory decoding", t->name);
    unsigned char *in = (unsigned char *)s->buf + n * 3 + 1; /* scratch after the output area */
    memcpy(in, s->pend, (size_t)s->npend);
    if (tl) memcpy(in + s->npend, t->arena + t->tokens[id].off, tl);
    s->npend = 0;
    size_t w = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        int trunc;
        size_t l = qw_utf8_decode(in + i, n - i, &cp, &trunc);
        if (cp == QW_UC_BAD && trunc) { /* a character the next token may complete */
            memcpy(s->pend, in + i, l);
            s->npend = (int)l;
            break;
        }
        if (cp == QW_UC_BAD) {
            memcpy(s->buf + w, "\xEF\xBF\xBD", 3);
            w += 3;
        } else {
            memmove(s->buf + w, in + i, l);
            w += l;
        }
        i += l;
    }
    s->buf[w] = 0;
    *text = s->buf;
    if (len) *len = w;
    return QW_OK;
}

qw_status qw_detok_stream_flush(qw_detok_stream *s, const char **text, size_t *len, qw_error *err) {
    if (!grow((void **)&s->buf, &s->cap, 4, 1))
        return qw_error_set(err, QW_E_NOMEM, "%s: out of memory decoding", s->tok->name);
    size_t w = 0;
    if (s->npend) {
        memcpy(s->buf, "\xEF\xBF\xBD", 3);
        w = 3;
    }
    s->npend = 0;
    s->buf[w] = 0;
    *text = s->buf;
    if (len) *len = w;
    return QW_OK;
}
