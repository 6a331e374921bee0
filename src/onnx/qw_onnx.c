/* qw_onnx.c - reads an ONNX ModelProto through a qw_fs window: structure into an arena, weights as locators.
 *
 * Each message is walked twice: once to count its repeated fields (so arrays are allocated exactly
 * once, in the arena) and once to fill them. raw_data is never read, only located; typed fields
 * (float_data, int32_data, ...) are decoded into the arena. Sub-graphs, sparse tensors and type protos in
 * attributes are recorded by type and skipped. Multi-byte data is little-endian, as on wasm and x86. */
#include <stdlib.h>
#include <string.h>
#include "qw_onnx.h"
#include "qw_protobuf.h"

/* ---- arena ------------------------------------------------------------------------------------ */

typedef struct arena_block {
    struct arena_block *next;
    size_t cap, used;
} arena_block;

#define ARENA_HDR ((sizeof(arena_block) + 15) & ~(size_t)15)
#define ARENA_CHUNK ((size_t)64 * 1024)

typedef struct ld {
    qw_pb_reader r;
    qw_onnx_model *m;
    const qw_fs *fs;
    const char *name; /* the .onnx, for messages */
    char *dir;        /* its folder with a trailing '/', or "" */
    qw_error *err;
    int32_t files_cap;
    const char **need_by; /* per file: the tensor whose locator reaches furthest */
    int32_t n_sparse;
    char **sparse; /* names of sparse initializers (unsupported when used) */
} ld;

static void *amalloc(ld *L, size_t n, size_t align) {
    arena_block *b = L->m->arena;
    if (n == 0) n = 1;
    if (b) {
        size_t at = (b->used + align - 1) & ~(align - 1);
        if (at <= b->cap && b->cap - at >= n) {
            b->used = at + n;
            void *p = (unsigned char *)b + ARENA_HDR + at;
            memset(p, 0, n);
            return p;
        }
    }
    size_t cap = n > ARENA_CHUNK ? n : ARENA_CHUNK;
    if (cap > SIZE_MAX - ARENA_HDR) return NULL;
    arena_block *nb = malloc(ARENA_HDR + cap);
    if (!nb) return NULL;
    nb->cap = cap;
    nb->used = n;
    /* a big one-off block goes behind the current one so the current block's free space stays usable */
    if (b && n > ARENA_CHUNK / 2) {
        nb->next = b->next;
        b->next = nb;
    } else {
        nb->next = b;
        L->m->arena = nb;
    }
    void *p = (unsigned char *)nb + ARENA_HDR;
    memset(p, 0, n);
    return p;
}

static qw_status nomem(ld *L, const char *what) {
    return qw_error_set(L->err, QW_E_NOMEM, "%s: out of memory reading %s", L->name, what);
}

/* n elements of size sz, zeroed; checks the product */
static qw_status aarray(ld *L, uint64_t n, size_t sz, void **out, const char *what) {
    if (n > (SIZE_MAX / 2) / sz) return nomem(L, what);
    *out = amalloc(L, (size_t)n * sz, sz >= 8 ? 8 : sz);
    return *out ? QW_OK : nomem(L, what);
}

static char *astrdup(ld *L, const char *s, size_t n) {
    char *p = amalloc(L, n + 1, 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = 0;
    }
    return p;
}

/* Copies a length-delimited field into a NUL-terminated arena string: at most cap bytes are kept, or with
 * cap 0 the whole string, which must be at most STR_MAX bytes. */
#define STR_MAX ((size_t)1 << 28)
#define NAME_CAP ((size_t)0) /* names and values: whole, or an error */

static qw_status astr(ld *L, const qw_pb_field *f, size_t cap, char **out, size_t *out_len, const char *where) {
    qw_status st = qw_pb_expect(&L->r, f, QW_PB_LEN, where);
    if (st != QW_OK) return st;
    if (cap == 0 && f->len > STR_MAX)
        return qw_error_set(L->err, QW_E_UNSUPPORTED, "%s: a %llu-byte string at byte %llu in %s is too long", L->name,
                            (unsigned long long)f->len, (unsigned long long)f->at, where);
    if (cap == 0) cap = STR_MAX;
    uint64_t n = f->len < cap ? f->len : cap;
    char *p = amalloc(L, (size_t)n + 1, 1);
    if (!p) return nomem(L, where);
    if (n && (st = qw_pb_read(&L->r, f->pos, p, (size_t)n, where)) != QW_OK) return st;
    p[n] = 0;
    *out = p;
    if (out_len) *out_len = (size_t)n;
    return QW_OK;
}

#define DOC_CAP ((size_t)64 * 1024) /* doc strings are informative only: longer ones are cut */

/* ---- repeated scalars, packed or not ----------------------------------------------------------- */

typedef struct rep {
    uint64_t pos, end;
    int single;
} rep;

static qw_status rep_begin(ld *L, const qw_pb_field *f, uint32_t wt, rep *it, const char *where) {
    if (f->wt == wt) {
        it->single = 1;
        it->pos = 0;
        it->end = 1;
        return QW_OK;
    }
    qw_status st = qw_pb_expect(&L->r, f, QW_PB_LEN, where);
    it->single = 0;
    it->pos = f->pos;
    it->end = f->pos + f->len;
    return st;
}

static qw_status rep_get(ld *L, const qw_pb_field *f, uint32_t wt, rep *it, uint64_t *v, const char *where) {
    if (it->single) {
        it->pos = 1;
        *v = f->v;
        return QW_OK;
    }
    if (wt == QW_PB_VARINT) return qw_pb_varint(&L->r, &it->pos, it->end, v, where);
    return qw_pb_fixed(&L->r, &it->pos, it->end, wt == QW_PB_I32 ? 4 : 8, v, where);
}

/* ---- files and locators ---------------------------------------------------------------------- */

static qw_status add_file(ld *L, const char *name, int32_t *idx) {
    qw_onnx_model *m = L->m;
    for (int32_t i = 0; i < m->n_files; i++)
        if (!strcmp(m->files[i].name, name)) {
            *idx = i;
            return QW_OK;
        }
    if (m->n_files == L->files_cap) {
        int32_t cap = L->files_cap ? L->files_cap * 2 : 4;
        qw_onnx_file *nf = amalloc(L, sizeof *nf * (size_t)cap, 8);
        const char **nb = amalloc(L, sizeof *nb * (size_t)cap, 8);
        if (!nf || !nb) return nomem(L, "the list of data files");
        if (m->n_files) {
            memcpy(nf, m->files, sizeof *nf * (size_t)m->n_files);
            memcpy(nb, L->need_by, sizeof *nb * (size_t)m->n_files);
        }
        m->files = nf;
        L->need_by = nb;
        L->files_cap = cap;
    }
    qw_onnx_file *f = &m->files[m->n_files];
    if (!(f->name = astrdup(L, name, strlen(name)))) return nomem(L, "a file name");
    L->need_by[m->n_files] = NULL;
    *idx = m->n_files++;
    return QW_OK;
}

static void need(ld *L, int32_t file, uint64_t end, const char *tensor) {
    qw_onnx_file *f = &L->m->files[file];
    if (end > f->bytes_needed || !L->need_by[file]) {
        if (end > f->bytes_needed) f->bytes_needed = end;
        L->need_by[file] = tensor;
    }
}

/* Resolves an external_data location against the .onnx file's folder; refuses escapes from the folder. */
static qw_status resolve_location(ld *L, const char *loc, size_t len, const char *tensor, int32_t *idx) {
    if (len == 0 || memchr(loc, 0, len))
        return qw_error_set(L->err, QW_E_FORMAT, "%s: tensor '%s' has an empty or invalid external data location",
                            L->name, tensor);
    if (loc[0] == '/' || loc[0] == '\\' || (len >= 2 && loc[1] == ':'))
        return qw_error_set(L->err, QW_E_FORMAT, "%s: tensor '%s' has an absolute external data location '%s'", L->name,
                            tensor, loc);
    size_t dl = strlen(L->dir);
    char *path = malloc(dl + len + 1);
    if (!path) return nomem(L, "a location");
    memcpy(path, L->dir, dl);
    size_t o = dl;
    /* walk the components: "." is dropped, ".." refused, '\' is a separator as on Windows */
    size_t i = 0;
    while (i < len) {
        size_t j = i;
        while (j < len && loc[j] != '/' && loc[j] != '\\') j++;
        size_t cl = j - i;
        if (cl == 2 && loc[i] == '.' && loc[i + 1] == '.') {
            free(path);
            return qw_error_set(L->err, QW_E_FORMAT, "%s: tensor '%s' has an external data location with '..': '%s'",
                                L->name, tensor, loc);
        }
        if (cl > 0 && !(cl == 1 && loc[i] == '.')) {
            if (o > dl || (o > 0 && path[o - 1] != '/')) path[o++] = '/';
            memcpy(path + o, loc + i, cl);
            o += cl;
        }
        i = j + 1;
    }
    path[o] = 0;
    if (o == dl) {
        free(path);
        return qw_error_set(L->err, QW_E_FORMAT,
                            "%s: tensor '%s' has an external data location without a file name: '%s'", L->name, tensor,
                            loc);
    }
    const char *why = qw_fs_name_problem(path); /* the rule every file source applies: ':', controls, length */
    if (why) {
        qw_error_set(L->err, QW_E_FORMAT,
                     "%s: tensor '%s' has an external data location (key 'location') with "
                     "%s: '%.*s'",
                     L->name, tensor, why, (int)(len > 200 ? 200 : len), loc);
        free(path);
        return QW_E_FORMAT;
    }
    qw_status st = add_file(L, path, idx);
    free(path);
    return st;
}

static qw_status parse_u64_str(ld *L, const char *s, uint64_t *v, const char *what, const char *tensor) {
    uint64_t x = 0;
    if (!*s) goto bad;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9') goto bad;
        uint64_t d = (uint64_t)(*p - '0');
        if (x > (UINT64_MAX - d) / 10) goto bad;
        x = x * 10 + d;
    }
    *v = x;
    return QW_OK;
bad:
    return qw_error_set(L->err, QW_E_FORMAT, "%s: tensor '%s' has an invalid external data %s '%s'", L->name, tensor,
                        what, s);
}

/* ---- TensorProto ------------------------------------------------------------------------------ */

enum {
    T_DIMS = 1,
    T_TYPE = 2,
    T_SEGMENT = 3,
    T_FLOAT = 4,
    T_INT32 = 5,
    T_STRING = 6,
    T_INT64 = 7,
    T_NAME = 8,
    T_RAW = 9,
    T_DOUBLE = 10,
    T_UINT64 = 11,
    T_DOC = 12,
    T_EXTERNAL = 13,
    T_LOCATION = 14
};

/* The typed field that carries a dtype's values, per onnx.proto, and its element wire type. */
static int typed_field(int dt, uint32_t *wt) {
    switch (dt) {
    case QW_DT_F32: *wt = QW_PB_I32; return T_FLOAT;
    case QW_DT_I32:
    case QW_DT_I16:
    case QW_DT_I8:
    case QW_DT_U16:
    case QW_DT_U8:
    case QW_DT_BOOL:
    case QW_DT_F16:
    case QW_DT_BF16: *wt = QW_PB_VARINT; return T_INT32;
    case QW_DT_I64: *wt = QW_PB_VARINT; return T_INT64;
    case QW_DT_F64: *wt = QW_PB_I64; return T_DOUBLE;
    case QW_DT_U32:
    case QW_DT_U64: *wt = QW_PB_VARINT; return T_UINT64;
    default: *wt = 0; return 0;
    }
}

static void store_elem(int dt, void *data, uint64_t i, uint64_t v) {
    uint8_t *d = data;
    switch (qw_dtype_size(dt)) {
    case 1: d[i] = dt == QW_DT_BOOL ? (uint8_t)(v != 0) : (uint8_t)v; break;
    case 2: {
        uint16_t x = (uint16_t)v;
        memcpy(d + 2 * i, &x, 2);
        break;
    }
    case 4: {
        uint32_t x = (uint32_t)v;
        memcpy(d + 4 * i, &x, 4);
        break;
    }
    default: memcpy(d + 8 * i, &v, 8); break;
    }
}

static qw_status parse_tensor(ld *L, uint64_t start, uint64_t end, qw_onnx_tensor *t, const char *owner) {
    static const char W[] = "TensorProto";
    qw_pb_reader *r = &L->r;
    qw_pb_field f;
    qw_status st;
    uint64_t pos = start, ndims = 0, counts[16] = {0}, raw_pos = 0, raw_len = 0, ext_off = 0, ext_len = 0;
    int has_raw = 0, has_off = 0, has_len = 0, location = 0;
    char *ext_loc = NULL;
    size_t ext_loc_len = 0;
    memset(t, 0, sizeof *t);
    t->file = -1;
    while (pos < end) {
        if ((st = qw_pb_next(r, &pos, end, &f, W)) != QW_OK) return st;
        switch (f.num) {
        case T_DIMS: {
            rep it;
            if ((st = rep_begin(L, &f, QW_PB_VARINT, &it, W)) != QW_OK) return st;
            while (it.pos < it.end) {
                uint64_t v;
                if ((st = rep_get(L, &f, QW_PB_VARINT, &it, &v, W)) != QW_OK) return st;
                if (ndims < QW_MAX_DIMS) t->dims[ndims] = (int64_t)v;
                ndims++;
            }
            break;
        }
        case T_TYPE:
            if ((st = qw_pb_expect(r, &f, QW_PB_VARINT, W)) != QW_OK) return st;
            t->dtype = (int32_t)f.v;
            if ((uint64_t)t->dtype != f.v) t->dtype = -1;
            break;
        case T_SEGMENT: return qw_error_set(L->err, QW_E_UNSUPPORTED, "%s: segmented tensor in %s", L->name, owner);
        case T_FLOAT:
        case T_INT32:
        case T_INT64:
        case T_DOUBLE:
        case T_UINT64: {
            uint32_t ewt = f.num == T_FLOAT ? QW_PB_I32 : f.num == T_DOUBLE ? QW_PB_I64 : QW_PB_VARINT;
            uint64_t n;
            if ((st = qw_pb_count(r, &f, ewt, &n, W)) != QW_OK) return st;
            counts[f.num] += n;
            break;
        }
        case T_STRING:
            if ((st = qw_pb_expect(r, &f, QW_PB_LEN, W)) != QW_OK) return st;
            counts[T_STRING]++;
            break;
        case T_NAME:
            if ((st = astr(L, &f, NAME_CAP, &t->name, NULL, W)) != QW_OK) return st;
            break;
        case T_RAW:
            if ((st = qw_pb_expect(r, &f, QW_PB_LEN, W)) != QW_OK) return st;
            has_raw = 1;
            raw_pos = f.pos;
            raw_len = f.len;
            break;
        case T_EXTERNAL: {
            if ((st = qw_pb_expect(r, &f, QW_PB_LEN, W)) != QW_OK) return st;
            uint64_t p2 = f.pos, e2 = f.pos + f.len;
            char *key = NULL, *val = NULL;
            size_t val_len = 0;
            while (p2 < e2) {
                qw_pb_field g;
                if ((st = qw_pb_next(r, &p2, e2, &g, "StringStringEntryProto")) != QW_OK) return st;
                if (g.num == 1 && (st = astr(L, &g, NAME_CAP, &key, NULL, "StringStringEntryProto")) != QW_OK)
                    return st;
                if (g.num == 2 && (st = astr(L, &g, NAME_CAP, &val, &val_len, "StringStringEntryProto")) != QW_OK)
                    return st;
            }
            if (!key || !val) break;
            const char *tn = t->name ? t->name : owner;
            if (!strcmp(key, "location")) {
                ext_loc = val;
                ext_loc_len = val_len;
            } else if (!strcmp(key, "offset")) {
                if ((st = parse_u64_str(L, val, &ext_off, "offset", tn)) != QW_OK) return st;
                has_off = 1;
            } else if (!strcmp(key, "length")) {
                if ((st = parse_u64_str(L, val, &ext_len, "length", tn)) != QW_OK) return st;
                has_len = 1;
            }
            break;
        }
        case T_LOCATION:
            if ((st = qw_pb_expect(r, &f, QW_PB_VARINT, W)) != QW_OK) return st;
            location = (int)(f.v > 1 ? 2 : f.v);
            break;
        default: break; /* doc_string and unknown fields */
        }
    }
    if (!t->name && !(t->name = astrdup(L, "", 0))) return nomem(L, W);
    const char *tn = t->name[0] ? t->name : owner;
    if (ndims > QW_MAX_DIMS)
        return qw_error_set(L->err, QW_E_UNSUPPORTED, "%s: tensor '%s' has %llu dimensions (qwasm handles %d)", L->name,
                            tn, (unsigned long long)ndims, QW_MAX_DIMS);
    t->ndim = (int32_t)ndims;
    int64_t numel = 1, nz = 1; /* nz: product of the nonzero dims, bounded so every sub-shape's product is too */
    for (int i = 0; i < t->ndim; i++) {
        if (t->dims[i] < 0)
            return qw_error_set(L->err, QW_E_FORMAT, "%s: tensor '%s' has a negative dimension", L->name, tn);
        if (t->dims[i] == 0) {
            numel = 0;
            continue;
        }
        if (nz > ((int64_t)1 << 48) / t->dims[i])
            return qw_error_set(L->err, QW_E_FORMAT, "%s: tensor '%s' has too many elements", L->name, tn);
        nz *= t->dims[i];
    }
    if (numel) numel = nz;
    t->numel = numel;
    if (t->dtype == QW_DT_STRING) {
        /* strings are not read: the tensor is described, with no bytes */
        t->nbytes = 0;
        t->data = amalloc(L, 1, 1);
        return t->data ? QW_OK : nomem(L, W);
    }
    size_t es = qw_dtype_size(t->dtype);
    if (es == 0)
        return qw_error_set(L->err, QW_E_UNSUPPORTED, "%s: tensor '%s' has unsupported data type %d", L->name, tn,
                            (int)t->dtype);
    if ((uint64_t)numel > UINT64_MAX / es)
        return qw_error_set(L->err, QW_E_FORMAT, "%s: tensor '%s' has too many elements", L->name, tn);
    t->nbytes = (uint64_t)numel * es;

    if (location == 2)
        return qw_error_set(L->err, QW_E_UNSUPPORTED, "%s: tensor '%s' has an unknown data_location", L->name, tn);
    if (location == 1) {
        if (!ext_loc)
            return qw_error_set(L->err, QW_E_FORMAT, "%s: tensor '%s' is external but has no location", L->name, tn);
        if (has_len && ext_len != t->nbytes)
            return qw_error_set(L->err, QW_E_FORMAT,
                                "%s: tensor '%s' has external length %llu, but its shape and type need %llu bytes",
                                L->name, tn, (unsigned long long)ext_len, (unsigned long long)t->nbytes);
        (void)has_off;
        if (ext_off > UINT64_MAX - t->nbytes)
            return qw_error_set(L->err, QW_E_RANGE, "%s: tensor '%s' has an external offset past any file", L->name,
                                tn);
        if ((st = resolve_location(L, ext_loc, ext_loc_len, tn, &t->file)) != QW_OK) return st;
        t->offset = ext_off;
        need(L, t->file, ext_off + t->nbytes, tn);
        return QW_OK;
    }
    if (has_raw) {
        if (raw_len != t->nbytes)
            return qw_error_set(L->err, QW_E_FORMAT,
                                "%s: tensor '%s' has %llu bytes of raw_data, but its shape and type need %llu", L->name,
                                tn, (unsigned long long)raw_len, (unsigned long long)t->nbytes);
        t->file = 0;
        t->offset = raw_pos;
        need(L, 0, raw_pos + raw_len, tn);
        return QW_OK;
    }
    uint32_t ewt;
    int tf = typed_field(t->dtype, &ewt);
    for (int k = T_FLOAT; k <= T_UINT64; k++)
        if (counts[k] && k != tf && k != T_STRING)
            return qw_error_set(L->err, QW_E_FORMAT, "%s: tensor '%s' of type %s has values in the wrong field (%d)",
                                L->name, tn, qw_dtype_name(t->dtype), k);
    if (counts[tf] != (uint64_t)numel)
        return qw_error_set(L->err, QW_E_FORMAT, "%s: tensor '%s' has %llu values, but its shape needs %lld", L->name,
                            tn, (unsigned long long)counts[tf], (long long)numel);
    if (t->nbytes > SIZE_MAX / 2 || !(t->data = amalloc(L, (size_t)t->nbytes, 8))) return nomem(L, tn);
    uint64_t idx = 0;
    for (pos = start; pos < end;) {
        if ((st = qw_pb_next(r, &pos, end, &f, W)) != QW_OK) return st;
        if ((int)f.num != tf) continue;
        rep it;
        if ((st = rep_begin(L, &f, ewt, &it, W)) != QW_OK) return st;
        while (it.pos < it.end) {
            uint64_t v;
            if ((st = rep_get(L, &f, ewt, &it, &v, W)) != QW_OK) return st;
            if (idx >= (uint64_t)numel)
                return qw_error_set(L->err, QW_E_INTERNAL, "%s: tensor '%s' recount", L->name, tn);
            store_elem(t->dtype, t->data, idx++, v);
        }
    }
    return QW_OK;
}

/* ---- AttributeProto --------------------------------------------------------------------------- */

static qw_status parse_attr(ld *L, uint64_t start, uint64_t end, qw_onnx_attr *a, const char *node) {
    static const char W[] = "AttributeProto";
    qw_pb_reader *r = &L->r;
    qw_pb_field f;
    qw_status st;
    uint64_t pos = start, nf = 0, ni = 0, ns = 0, nt = 0, ng = 0, nsp = 0, ntp = 0;
    int has_t = 0, has_g = 0, has_sp = 0, has_tp = 0, has_f = 0, has_i = 0, has_s = 0;
    memset(a, 0, sizeof *a);
    while (pos < end) {
        if ((st = qw_pb_next(r, &pos, end, &f, W)) != QW_OK) return st;
        uint64_t n;
        switch (f.num) {
        case 1:
            if ((st = astr(L, &f, NAME_CAP, &a->name, NULL, W)) != QW_OK) return st;
            break;
        case 2:
            if ((st = qw_pb_expect(r, &f, QW_PB_I32, W)) != QW_OK) return st;
            {
                uint32_t b = (uint32_t)f.v;
                memcpy(&a->f, &b, 4);
            }
            has_f = 1;
            break;
        case 3:
            if ((st = qw_pb_expect(r, &f, QW_PB_VARINT, W)) != QW_OK) return st;
            a->i = (int64_t)f.v;
            has_i = 1;
            break;
        case 4:
            if ((st = astr(L, &f, 0, &a->s, &a->s_len, W)) != QW_OK) return st;
            has_s = 1;
            break;
        case 5:
            if ((st = qw_pb_expect(r, &f, QW_PB_LEN, W)) != QW_OK) return st;
            has_t = 1;
            break;
        case 6:
            if ((st = qw_pb_expect(r, &f, QW_PB_LEN, W)) != QW_OK) return st;
            has_g = 1;
            break;
        case 7:
            if ((st = qw_pb_count(r, &f, QW_PB_I32, &n, W)) != QW_OK) return st;
            nf += n;
            break;
        case 8:
            if ((st = qw_pb_count(r, &f, QW_PB_VARINT, &n, W)) != QW_OK) return st;
            ni += n;
            break;
        case 9:
            if ((st = qw_pb_expect(r, &f, QW_PB_LEN, W)) != QW_OK) return st;
            ns++;
            break;
        case 10:
            if ((st = qw_pb_expect(r, &f, QW_PB_LEN, W)) != QW_OK) return st;
            nt++;
            break;
        case 11: ng++; break;
        case 14: has_tp = 1; break;
        case 15: ntp++; break;
        case 20:
            if ((st = qw_pb_expect(r, &f, QW_PB_VARINT, W)) != QW_OK) return st;
            a->type = f.v <= QW_ATTR_TYPE_PROTOS ? (int32_t)f.v : -1;
            break;
        case 22: has_sp = 1; break;
        case 23: nsp++; break;
        default: break;
        }
    }
    if (!a->name && !(a->name = astrdup(L, "", 0))) return nomem(L, W);
    if (a->type < 0)
        return qw_error_set(L->err, QW_E_UNSUPPORTED, "%s: attribute '%s' of node '%s' has an unknown type", L->name,
                            a->name, node);
    if (a->type == QW_ATTR_UNDEFINED) { /* IR < 3 writers left the type out: infer it from the value */
        a->type = nf       ? QW_ATTR_FLOATS
                  : ni     ? QW_ATTR_INTS
                  : ns     ? QW_ATTR_STRINGS
                  : nt     ? QW_ATTR_TENSORS
                  : ng     ? QW_ATTR_GRAPHS
                  : has_t  ? QW_ATTR_TENSOR
                  : has_g  ? QW_ATTR_GRAPH
                  : has_s  ? QW_ATTR_STRING
                  : has_i  ? QW_ATTR_INT
                  : has_f  ? QW_ATTR_FLOAT
                  : has_sp ? QW_ATTR_SPARSE_TENSOR
                  : nsp    ? QW_ATTR_SPARSE_TENSORS
                  : has_tp ? QW_ATTR_TYPE_PROTO
                  : ntp    ? QW_ATTR_TYPE_PROTOS
                           : QW_ATTR_UNDEFINED;
    }
    switch (a->type) {
    case QW_ATTR_FLOATS:
        a->n = (size_t)nf;
        st = aarray(L, nf, sizeof(float), (void **)&a->floats, W);
        break;
    case QW_ATTR_INTS:
        a->n = (size_t)ni;
        st = aarray(L, ni, sizeof(int64_t), (void **)&a->ints, W);
        break;
    case QW_ATTR_STRINGS:
        a->n = (size_t)ns;
        st = aarray(L, ns, sizeof(char *), (void **)&a->strings, W);
        break;
    case QW_ATTR_TENSORS:
        a->n = (size_t)nt;
        st = aarray(L, nt, sizeof(qw_onnx_tensor), (void **)&a->t, W);
        break;
    case QW_ATTR_TENSOR:
        if (!has_t)
            return qw_error_set(L->err, QW_E_FORMAT, "%s: attribute '%s' of node '%s' has no tensor", L->name, a->name,
                                node);
        a->n = 1;
        st = aarray(L, 1, sizeof(qw_onnx_tensor), (void **)&a->t, W);
        break;
    case QW_ATTR_GRAPHS:
        a->n = (size_t)ng;
        st = QW_OK;
        break;
    case QW_ATTR_SPARSE_TENSORS:
        a->n = (size_t)nsp;
        st = QW_OK;
        break;
    case QW_ATTR_TYPE_PROTOS:
        a->n = (size_t)ntp;
        st = QW_OK;
        break;
    case QW_ATTR_STRING:
        if (!a->s && !(a->s = astrdup(L, "", 0))) return nomem(L, W);
        st = QW_OK;
        break;
    default: st = QW_OK; break;
    }
    if (st != QW_OK) return st;
    size_t kf = 0, ki = 0, ks = 0, kt = 0;
    for (pos = start; pos < end;) {
        if ((st = qw_pb_next(r, &pos, end, &f, W)) != QW_OK) return st;
        if (f.num == 7 && a->type == QW_ATTR_FLOATS) {
            rep it;
            if ((st = rep_begin(L, &f, QW_PB_I32, &it, W)) != QW_OK) return st;
            while (it.pos < it.end && kf < a->n) {
                uint64_t v;
                if ((st = rep_get(L, &f, QW_PB_I32, &it, &v, W)) != QW_OK) return st;
                uint32_t b = (uint32_t)v;
                memcpy(&a->floats[kf++], &b, 4);
            }
        } else if (f.num == 8 && a->type == QW_ATTR_INTS) {
            rep it;
            if ((st = rep_begin(L, &f, QW_PB_VARINT, &it, W)) != QW_OK) return st;
            while (it.pos < it.end && ki < a->n) {
                uint64_t v;
                if ((st = rep_get(L, &f, QW_PB_VARINT, &it, &v, W)) != QW_OK) return st;
                a->ints[ki++] = (int64_t)v;
            }
        } else if (f.num == 9 && a->type == QW_ATTR_STRINGS && ks < a->n) {
            if ((st = astr(L, &f, 0, &a->strings[ks++], NULL, W)) != QW_OK) return st;
        } else if (f.num == 10 && a->type == QW_ATTR_TENSORS && kt < a->n) {
            if ((st = parse_tensor(L, f.pos, f.pos + f.len, &a->t[kt++], a->name)) != QW_OK) return st;
        } else if (f.num == 5 && a->type == QW_ATTR_TENSOR) {
            /* a repeated singular field: the last one wins, as in protobuf */
            if ((st = parse_tensor(L, f.pos, f.pos + f.len, &a->t[0], a->name)) != QW_OK) return st;
        }
    }
    return QW_OK;
}

/* ---- NodeProto -------------------------------------------------------------------------------- */

static qw_status parse_node(ld *L, uint64_t start, uint64_t end, qw_onnx_node *n) {
    static const char W[] = "NodeProto";
    qw_pb_reader *r = &L->r;
    qw_pb_field f;
    qw_status st;
    uint64_t pos = start, ni = 0, no = 0, na = 0;
    memset(n, 0, sizeof *n);
    while (pos < end) {
        if ((st = qw_pb_next(r, &pos, end, &f, W)) != QW_OK) return st;
        switch (f.num) {
        case 1:
            if ((st = qw_pb_expect(r, &f, QW_PB_LEN, W)) != QW_OK) return st;
            ni++;
            break;
        case 2:
            if ((st = qw_pb_expect(r, &f, QW_PB_LEN, W)) != QW_OK) return st;
            no++;
            break;
        case 3:
            if ((st = astr(L, &f, NAME_CAP, &n->name, NULL, W)) != QW_OK) return st;
            break;
        case 4:
            if ((st = astr(L, &f, NAME_CAP, &n->op_type, NULL, W)) != QW_OK) return st;
            break;
        case 5:
            if ((st = qw_pb_expect(r, &f, QW_PB_LEN, W)) != QW_OK) return st;
            na++;
            break;
        case 7:
            if ((st = astr(L, &f, NAME_CAP, &n->domain, NULL, W)) != QW_OK) return st;
            break;
        default: break;
        }
    }
    if (ni > INT32_MAX || no > INT32_MAX || na > INT32_MAX)
        return qw_error_set(L->err, QW_E_UNSUPPORTED, "%s: node with too many inputs, outputs or attributes", L->name);
    if (!n->name && !(n->name = astrdup(L, "", 0))) return nomem(L, W);
    if (!n->op_type && !(n->op_type = astrdup(L, "", 0))) return nomem(L, W);
    if (!n->domain && !(n->domain = astrdup(L, "", 0))) return nomem(L, W);
    if (!strcmp(n->domain, "ai.onnx")) n->domain[0] = 0; /* one spelling for the default domain */
    if ((st = aarray(L, ni, sizeof(char *), (void **)&n->inputs, W)) != QW_OK) return st;
    if ((st = aarray(L, no, sizeof(char *), (void **)&n->outputs, W)) != QW_OK) return st;
    if ((st = aarray(L, na, sizeof(qw_onnx_attr), (void **)&n->attrs, W)) != QW_OK) return st;
    const char *label = n->name[0] ? n->name : n->op_type;
    for (pos = start; pos < end;) {
        if ((st = qw_pb_next(r, &pos, end, &f, W)) != QW_OK) return st;
        if (f.num == 1)
            st = astr(L, &f, NAME_CAP, &n->inputs[n->n_inputs++], NULL, W);
        else if (f.num == 2)
            st = astr(L, &f, NAME_CAP, &n->outputs[n->n_outputs++], NULL, W);
        else if (f.num == 5)
            st = parse_attr(L, f.pos, f.pos + f.len, &n->attrs[n->n_attrs++], label);
        if (st != QW_OK) return st;
    }
    return QW_OK;
}

/* ---- ValueInfoProto --------------------------------------------------------------------------- */

static qw_status parse_shape(ld *L, uint64_t start, uint64_t end, qw_onnx_value_info *v) {
    static const char W[] = "TensorShapeProto";
    qw_pb_reader *r = &L->r;
    qw_pb_field f, g;
    qw_status st;
    v->has_shape = 1;
    for (uint64_t pos = start; pos < end;) {
        if ((st = qw_pb_next(r, &pos, end, &f, W)) != QW_OK) return st;
        if (f.num != 1) continue;
        if ((st = qw_pb_expect(r, &f, QW_PB_LEN, W)) != QW_OK) return st;
        if (v->ndim == QW_MAX_DIMS)
            return qw_error_set(L->err, QW_E_UNSUPPORTED, "%s: value '%s' has more than %d dimensions", L->name,
                                v->name, QW_MAX_DIMS);
        qw_onnx_dim *d = &v->dims[v->ndim++];
        d->value = -1;
        for (uint64_t p2 = f.pos, e2 = f.pos + f.len; p2 < e2;) {
            if ((st = qw_pb_next(r, &p2, e2, &g, "TensorShapeProto.Dimension")) != QW_OK) return st;
            if (g.num == 1) {
                if ((st = qw_pb_expect(r, &g, QW_PB_VARINT, W)) != QW_OK) return st;
                d->value = (int64_t)g.v < 0 ? -1 : (int64_t)g.v;
                d->param = NULL;
            } else if (g.num == 2) {
                if ((st = astr(L, &g, NAME_CAP, &d->param, NULL, W)) != QW_OK) return st;
                d->value = -1;
            }
        }
    }
    return QW_OK;
}

static qw_status parse_value_info(ld *L, uint64_t start, uint64_t end, qw_onnx_value_info *v) {
    static const char W[] = "ValueInfoProto";
    qw_pb_reader *r = &L->r;
    qw_pb_field f, g, h;
    qw_status st;
    uint64_t type_pos = 0, type_len = 0;
    int has_type = 0;
    memset(v, 0, sizeof *v);
    for (uint64_t pos = start; pos < end;) {
        if ((st = qw_pb_next(r, &pos, end, &f, W)) != QW_OK) return st;
        if (f.num == 1 && (st = astr(L, &f, NAME_CAP, &v->name, NULL, W)) != QW_OK) return st;
        if (f.num == 2) {
            if ((st = qw_pb_expect(r, &f, QW_PB_LEN, W)) != QW_OK) return st;
            has_type = 1;
            type_pos = f.pos;
            type_len = f.len;
        }
    }
    if (!v->name && !(v->name = astrdup(L, "", 0))) return nomem(L, W);
    if (!has_type) return QW_OK;
    /* TypeProto.tensor_type (1): elem_type (1), shape (2); other kinds (sequence, map, ...) stay dtype 0 */
    for (uint64_t pos = type_pos, end2 = type_pos + type_len; pos < end2;) {
        if ((st = qw_pb_next(r, &pos, end2, &g, "TypeProto")) != QW_OK) return st;
        if (g.num != 1) continue;
        if ((st = qw_pb_expect(r, &g, QW_PB_LEN, "TypeProto")) != QW_OK) return st;
        for (uint64_t p2 = g.pos, e2 = g.pos + g.len; p2 < e2;) {
            if ((st = qw_pb_next(r, &p2, e2, &h, "TypeProto.Tensor")) != QW_OK) return st;
            if (h.num == 1) {
                if ((st = qw_pb_expect(r, &h, QW_PB_VARINT, "TypeProto.Tensor")) != QW_OK) return st;
                v->dtype = (int32_t)h.v;
            } else if (h.num == 2) {
                if ((st = qw_pb_expect(r, &h, QW_PB_LEN, "TypeProto.Tensor")) != QW_OK) return st;
                v->ndim = 0;
                if ((st = parse_shape(L, h.pos, h.pos + h.len, v)) != QW_OK) return st;
            }
        }
    }
    return QW_OK;
}

/* ---- GraphProto ------------------------------------------------------------------------------- */

static qw_status sparse_name(ld *L, const qw_pb_field *sp, char **out) {
    qw_pb_field f, g;
    qw_status st;
    *out = NULL;
    if ((st = qw_pb_expect(&L->r, sp, QW_PB_LEN, "SparseTensorProto")) != QW_OK) return st;
    for (uint64_t pos = sp->pos, end = sp->pos + sp->len; pos < end;) {
        if ((st = qw_pb_next(&L->r, &pos, end, &f, "SparseTensorProto")) != QW_OK) return st;
        if (f.num != 1) continue;
        if ((st = qw_pb_expect(&L->r, &f, QW_PB_LEN, "SparseTensorProto")) != QW_OK) return st;
        for (uint64_t p2 = f.pos, e2 = f.pos + f.len; p2 < e2;) {
            if ((st = qw_pb_next(&L->r, &p2, e2, &g, "TensorProto")) != QW_OK) return st;
            if (g.num == T_NAME && (st = astr(L, &g, NAME_CAP, out, NULL, "TensorProto")) != QW_OK) return st;
        }
    }
    if (!*out && !(*out = astrdup(L, "", 0))) return nomem(L, "SparseTensorProto");
    return QW_OK;
}

static qw_status parse_graph(ld *L, uint64_t start, uint64_t end) {
    static const char W[] = "GraphProto";
    qw_onnx_model *m = L->m;
    qw_pb_reader *r = &L->r;
    qw_pb_field f;
    qw_status st;
    uint64_t c[16] = {0};
    for (uint64_t pos = start; pos < end;) {
        if ((st = qw_pb_next(r, &pos, end, &f, W)) != QW_OK) return st;
        if (f.num == 2) {
            if ((st = astr(L, &f, NAME_CAP, &m->graph_name, NULL, W)) != QW_OK) return st;
        } else if (f.num < 16) {
            if ((f.num == 1 || f.num == 5 || f.num == 11 || f.num == 12 || f.num == 13 || f.num == 15) &&
                (st = qw_pb_expect(r, &f, QW_PB_LEN, W)) != QW_OK)
                return st;
            c[f.num]++;
        }
    }
    for (int i = 0; i < 16; i++)
        if (c[i] > INT32_MAX) return qw_error_set(L->err, QW_E_UNSUPPORTED, "%s: graph too large", L->name);
    if (!m->graph_name && !(m->graph_name = astrdup(L, "", 0))) return nomem(L, W);
    if ((st = aarray(L, c[1], sizeof(qw_onnx_node), (void **)&m->nodes, W)) != QW_OK ||
        (st = aarray(L, c[5], sizeof(qw_onnx_tensor), (void **)&m->inits, W)) != QW_OK ||
        (st = aarray(L, c[11], sizeof(qw_onnx_value_info), (void **)&m->inputs, W)) != QW_OK ||
        (st = aarray(L, c[12], sizeof(qw_onnx_value_info), (void **)&m->outputs, W)) != QW_OK ||
        (st = aarray(L, c[13], sizeof(qw_onnx_value_info), (void **)&m->value_info, W)) != QW_OK ||
        (st = aarray(L, c[15], sizeof(char *), (void **)&L->sparse, W)) != QW_OK)
        return st;
    for (uint64_t pos = start; pos < end;) {
        if ((st = qw_pb_next(r, &pos, end, &f, W)) != QW_OK) return st;
        uint64_t s = f.pos, e = f.pos + f.len;
        switch (f.num) {
        case 1: st = parse_node(L, s, e, &m->nodes[m->n_nodes++]); break;
        case 5: st = parse_tensor(L, s, e, &m->inits[m->n_inits++], "an initializer"); break;
        case 11: st = parse_value_info(L, s, e, &m->inputs[m->n_inputs++]); break;
        case 12: st = parse_value_info(L, s, e, &m->outputs[m->n_outputs++]); break;
        case 13: st = parse_value_info(L, s, e, &m->value_info[m->n_value_info++]); break;
        case 15: st = sparse_name(L, &f, &L->sparse[L->n_sparse++]); break;
        default: break;
        }
        if (st != QW_OK) return st;
    }
    /* sparse initializers are only an error when something reads them */
    for (int32_t k = 0; k < L->n_sparse; k++) {
        for (int32_t i = 0; i < m->n_nodes; i++)
            for (int32_t j = 0; j < m->nodes[i].n_inputs; j++)
                if (!strcmp(m->nodes[i].inputs[j], L->sparse[k]))
                    return qw_error_set(L->err, QW_E_UNSUPPORTED,
                                        "%s: node '%s' uses sparse initializer '%s' (sparse tensors are not supported)",
                                        L->name, m->nodes[i].name, L->sparse[k]);
        for (int32_t i = 0; i < m->n_outputs; i++)
            if (!strcmp(m->outputs[i].name, L->sparse[k]))
                return qw_error_set(L->err, QW_E_UNSUPPORTED,
                                    "%s: graph output is sparse initializer '%s' (sparse tensors are not supported)",
                                    L->name, L->sparse[k]);
    }
    return QW_OK;
}

/* ---- ModelProto ------------------------------------------------------------------------------- */

static qw_status parse_model(ld *L) {
    static const char W[] = "ModelProto";
    qw_onnx_model *m = L->m;
    qw_pb_reader *r = &L->r;
    qw_pb_field f, g;
    qw_status st;
    uint64_t end = r->size, n_ops = 0, n_meta = 0, graph_pos = 0, graph_len = 0;
    int has_graph = 0, has_ir = 0;
    for (uint64_t pos = 0; pos < end;) {
        if ((st = qw_pb_next(r, &pos, end, &f, W)) != QW_OK) return st;
        switch (f.num) {
        case 1:
            if ((st = qw_pb_expect(r, &f, QW_PB_VARINT, W)) != QW_OK) return st;
            m->ir_version = (int64_t)f.v;
            has_ir = 1;
            break;
        case 2:
            if ((st = astr(L, &f, NAME_CAP, &m->producer_name, NULL, W)) != QW_OK) return st;
            break;
        case 3:
            if ((st = astr(L, &f, NAME_CAP, &m->producer_version, NULL, W)) != QW_OK) return st;
            break;
        case 4:
            if ((st = astr(L, &f, NAME_CAP, &m->domain, NULL, W)) != QW_OK) return st;
            break;
        case 5:
            if ((st = qw_pb_expect(r, &f, QW_PB_VARINT, W)) != QW_OK) return st;
            m->model_version = (int64_t)f.v;
            break;
        case 6:
            if ((st = astr(L, &f, DOC_CAP, &m->doc_string, NULL, W)) != QW_OK) return st;
            break;
        case 7:
            if ((st = qw_pb_expect(r, &f, QW_PB_LEN, W)) != QW_OK) return st;
            has_graph = 1;
            graph_pos = f.pos;
            graph_len = f.len;
            break;
        case 8:
            if ((st = qw_pb_expect(r, &f, QW_PB_LEN, W)) != QW_OK) return st;
            n_ops++;
            break;
        case 14:
            if ((st = qw_pb_expect(r, &f, QW_PB_LEN, W)) != QW_OK) return st;
            n_meta++;
            break;
        default: break;
        }
    }
    if (!has_ir) return qw_error_set(L->err, QW_E_FORMAT, "%s: not an ONNX model (no ir_version)", L->name);
    if (m->ir_version < 3 || m->ir_version > 11)
        return qw_error_set(L->err, QW_E_UNSUPPORTED, "%s: IR version %lld is not supported (qwasm reads 3..11)",
                            L->name, (long long)m->ir_version);
    if (n_ops == 0) return qw_error_set(L->err, QW_E_FORMAT, "%s: the model imports no opset", L->name);
    if (!has_graph) return qw_error_set(L->err, QW_E_FORMAT, "%s: the model has no graph", L->name);
    if (n_ops > 1u << 20 || n_meta > 1u << 20)
        return qw_error_set(L->err, QW_E_UNSUPPORTED, "%s: too many opsets or metadata entries", L->name);
    if ((st = aarray(L, n_ops, sizeof *m->opsets, (void **)&m->opsets, W)) != QW_OK ||
        (st = aarray(L, n_meta, sizeof(char *), (void **)&m->meta_keys, W)) != QW_OK ||
        (st = aarray(L, n_meta, sizeof(char *), (void **)&m->meta_values, W)) != QW_OK)
        return st;
    for (uint64_t pos = 0; pos < end;) {
        if ((st = qw_pb_next(r, &pos, end, &f, W)) != QW_OK) return st;
        if (f.num == 8) {
            qw_onnx_opset *o = &m->opsets[m->n_opsets++];
            for (uint64_t p2 = f.pos, e2 = f.pos + f.len; p2 < e2;) {
                if ((st = qw_pb_next(r, &p2, e2, &g, "OperatorSetIdProto")) != QW_OK) return st;
                if (g.num == 1 && (st = astr(L, &g, NAME_CAP, &o->domain, NULL, "OperatorSetIdProto")) != QW_OK)
                    return st;
                if (g.num == 2) {
                    if ((st = qw_pb_expect(r, &g, QW_PB_VARINT, "OperatorSetIdProto")) != QW_OK) return st;
                    o->version = (int64_t)g.v;
                }
            }
            if (!o->domain && !(o->domain = astrdup(L, "", 0))) return nomem(L, W);
            if ((!o->domain[0] || !strcmp(o->domain, "ai.onnx")) && (o->version < 7 || o->version > 23))
                return qw_error_set(L->err, QW_E_UNSUPPORTED,
                                    "%s: default-domain opset %lld is not supported (qwasm reads 7..23)", L->name,
                                    (long long)o->version);
        } else if (f.num == 14) {
            int32_t k = m->n_meta++;
            for (uint64_t p2 = f.pos, e2 = f.pos + f.len; p2 < e2;) {
                if ((st = qw_pb_next(r, &p2, e2, &g, "StringStringEntryProto")) != QW_OK) return st;
                if (g.num == 1 && (st = astr(L, &g, NAME_CAP, &m->meta_keys[k], NULL, W)) != QW_OK) return st;
                if (g.num == 2 && (st = astr(L, &g, DOC_CAP, &m->meta_values[k], NULL, W)) != QW_OK) return st;
            }
            if (!m->meta_keys[k] && !(m->meta_keys[k] = astrdup(L, "", 0))) return nomem(L, W);
            if (!m->meta_values[k] && !(m->meta_values[k] = astrdup(L, "", 0))) return nomem(L, W);
        }
    }
    char **strs[] = {&m->producer_name, &m->producer_version, &m->domain, &m->doc_string};
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
        if (!*strs[i] && !(*strs[i] = astrdup(L, "", 0))) return nomem(L, W);
    return parse_graph(L, graph_pos, graph_pos + graph_len);
}

/* Data file i must exist and hold the bytes its locators reach. */
static qw_status check_file(ld *L, int32_t i) {
    qw_onnx_file *f = &L->m->files[i];
    if (i > 0) {
        qw_status st = L->fs->size(L->fs->ctx, f->name, &f->size);
        if (st == QW_E_NOTFOUND)
            return qw_error_set(L->err, QW_E_NOTFOUND,
                                "%s: external data file not found (tensor '%s' of %s needs %llu bytes of it)", f->name,
                                L->need_by[i] ? L->need_by[i] : "?", L->name, (unsigned long long)f->bytes_needed);
        if (st == QW_E_FORMAT)
            return qw_error_set(L->err, QW_E_FORMAT, "%s: external data location of tensor '%s' in %s: %s", f->name,
                                L->need_by[i] ? L->need_by[i] : "?", L->name, qw_fs_refusal(f->name));
        if (st != QW_OK)
            return qw_error_set(L->err, st, "%s: %s (external data of %s)", f->name, qw_fs_cause(st, f->name), L->name);
    }
    if (f->bytes_needed > f->size)
        return qw_error_set(L->err, QW_E_RANGE,
                            "%s: file has %llu bytes, but tensor '%s' of %s needs %llu (%llu bytes missing)", f->name,
                            (unsigned long long)f->size, L->need_by[i] ? L->need_by[i] : "?", L->name,
                            (unsigned long long)f->bytes_needed, (unsigned long long)(f->bytes_needed - f->size));
    return QW_OK;
}

/* Every data file must exist and hold the bytes its locators reach; an error names the file (err->file). */
static qw_status check_files(ld *L) {
    L->m->files[0].size = L->r.size;
    for (int32_t i = 0; i < L->m->n_files; i++) {
        qw_status st = check_file(L, i);
        if (st != QW_OK) return qw_error_file(L->err, L->m->files[i].name, st);
    }
    return QW_OK;
}

qw_status qw_onnx_load(const qw_fs *fs, const char *onnx_name, qw_onnx_model **out, qw_error *err) {
    if (out) *out = NULL;
    if (!fs || !onnx_name || !out) return qw_error_set(err, QW_E_ARG, "qw_onnx_load: missing argument");
    ld L;
    memset(&L, 0, sizeof L);
    L.fs = fs;
    L.name = onnx_name;
    L.err = err;
    if (!(L.m = calloc(1, sizeof *L.m))) return qw_error_set(err, QW_E_NOMEM, "%s: out of memory", onnx_name);
    qw_status st = qw_pb_open(&L.r, fs, onnx_name, err);
    if (st == QW_OK) {
        const char *slash = strrchr(onnx_name, '/');
        size_t dl = slash ? (size_t)(slash - onnx_name + 1) : 0;
        int32_t idx;
        if (!(L.dir = astrdup(&L, onnx_name, dl)))
            st = nomem(&L, "the file name");
        else if ((st = add_file(&L, onnx_name, &idx)) == QW_OK && (st = parse_model(&L)) == QW_OK)
            st = check_files(&L);
    }
    qw_pb_close(&L.r);
    if (st != QW_OK) {
        qw_onnx_free(L.m);
        return qw_error_file(err, onnx_name, st);
    }
    *out = L.m;
    return QW_OK;
}

void qw_onnx_free(qw_onnx_model *m) {
    if (!m) return;
    arena_block *b = m->arena;
    while (b) {
        arena_block *n = b->next;
        free(b);
        b = n;
    }
    free(m);
}

int64_t qw_onnx_opset_version(const qw_onnx_model *m, const char *domain) {
    int def = !domain || !domain[0] || !strcmp(domain, "ai.onnx");
    for (int32_t i = 0; i < m->n_opsets; i++) {
        const char *d = m->opsets[i].domain;
        int ddef = !d[0] || !strcmp(d, "ai.onnx");
        if (def ? ddef : !strcmp(d, domain)) return m->opsets[i].version;
    }
    return -1;
}

const qw_onnx_attr *qw_onnx_attr_find(const qw_onnx_node *n, const char *name) {
    for (int32_t i = 0; i < n->n_attrs; i++)
        if (!strcmp(n->attrs[i].name, name)) return &n->attrs[i];
    return NULL;
}

const qw_onnx_tensor *qw_onnx_init_find(const qw_onnx_model *m, const char *name) {
    for (int32_t i = 0; i < m->n_inits; i++)
        if (!strcmp(m->inits[i].name, name)) return &m->inits[i];
    return NULL;
}

qw_status qw_onnx_tensor_read(const qw_fs *fs, const qw_onnx_model *m, const qw_onnx_tensor *t, uint64_t off, void *dst,
                              size_t len, qw_error *err) {
    if (!m || !t || (len && !dst)) return qw_error_set(err, QW_E_ARG, "qw_onnx_tensor_read: missing argument");
    if (off > t->nbytes || len > t->nbytes - off)
        return qw_error_set(err, QW_E_RANGE, "tensor '%s': read of %zu bytes at %llu is past its %llu bytes", t->name,
                            len, (unsigned long long)off, (unsigned long long)t->nbytes);
    if (len == 0) return QW_OK;
    if (t->data) {
        memcpy(dst, (const uint8_t *)t->data + off, len);
        return QW_OK;
    }
    if (!fs || t->file < 0 || t->file >= m->n_files)
        return qw_error_set(err, QW_E_ARG, "tensor '%s': no data and no file to read it from", t->name);
    const char *fn = m->files[t->file].name;
    qw_status st = fs->read(fs->ctx, fn, t->offset + off, dst, len);
    if (st != QW_OK)
        return qw_error_file(err, fn,
                             qw_error_set(err, st, "%s: cannot read %zu bytes at %llu for tensor '%s' (%s)", fn, len,
                                          (unsigned long long)(t->offset + off), t->name, qw_status_str(st)));
    return QW_OK;
}
