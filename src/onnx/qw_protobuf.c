/* qw_protobuf.c - protobuf wire format through a 64 KiB window over a qw_fs file. */
#include <stdlib.h>
#include <string.h>
#include "qw_protobuf.h"

qw_status qw_pb_open(qw_pb_reader *r, const qw_fs *fs, const char *name, qw_error *err) {
    memset(r, 0, sizeof *r);
    r->fs = fs;
    r->name = name;
    r->err = err;
    if (!fs || !fs->size || !fs->read) return qw_error_set(err, QW_E_ARG, "%s: no file system given", name);
    qw_status st = fs->size(fs->ctx, name, &r->size);
    if (st != QW_OK) return qw_error_set(err, st, "%s: %s", name, qw_fs_cause(st, name));
    r->cap = QW_PB_WINDOW;
    r->buf = malloc(r->cap);
    if (!r->buf) return qw_error_set(err, QW_E_NOMEM, "%s: out of memory for the read window", name);
    return QW_OK;
}

void qw_pb_close(qw_pb_reader *r) {
    free(r->buf);
    r->buf = NULL;
}

static qw_status truncated(qw_pb_reader *r, uint64_t pos, const char *where) {
    return qw_error_set(r->err, QW_E_FORMAT, "%s: truncated protobuf at byte %llu in %s", r->name,
                        (unsigned long long)pos, where);
}

/* Moves the window so that it starts at pos. */
static qw_status refill(qw_pb_reader *r, uint64_t pos, const char *where) {
    if (pos >= r->size) return truncated(r, pos, where);
    uint64_t left = r->size - pos;
    size_t n = left < r->cap ? (size_t)left : r->cap;
    qw_status st = r->fs->read(r->fs->ctx, r->name, pos, r->buf, n);
    if (st != QW_OK) {
        r->win_len = 0;
        return qw_error_set(r->err, st, "%s: cannot read %zu bytes at byte %llu (%s)", r->name, n,
                            (unsigned long long)pos, qw_status_str(st));
    }
    r->win_off = pos;
    r->win_len = n;
    return QW_OK;
}

static inline qw_status get_byte(qw_pb_reader *r, uint64_t pos, uint8_t *b, const char *where) {
    if (pos - r->win_off >= r->win_len || pos < r->win_off) {
        qw_status st = refill(r, pos, where);
        if (st != QW_OK) return st;
    }
    *b = r->buf[pos - r->win_off];
    return QW_OK;
}

qw_status qw_pb_read(qw_pb_reader *r, uint64_t pos, void *dst, size_t len, const char *where) {
    uint8_t *d = dst;
    if (len > r->size || pos > r->size - len) return truncated(r, r->size, where);
    while (len > 0) {
        if (pos < r->win_off || pos - r->win_off >= r->win_len) {
            /* a large copy bypasses the window */
            if (len >= r->cap) {
                qw_status st = r->fs->read(r->fs->ctx, r->name, pos, d, len);
                if (st != QW_OK)
                    return qw_error_set(r->err, st, "%s: cannot read %zu bytes at byte %llu (%s)", r->name, len,
                                        (unsigned long long)pos, qw_status_str(st));
                return QW_OK;
            }
            qw_status st = refill(r, pos, where);
            if (st != QW_OK) return st;
        }
        size_t in = (size_t)(r->win_off + r->win_len - pos);
        size_t n = in < len ? in : len;
        memcpy(d, r->buf + (pos - r->win_off), n);
        d += n;
        pos += n;
        len -= n;
    }
    return QW_OK;
}

qw_status qw_pb_varint(qw_pb_reader *r, uint64_t *pos, uint64_t end, uint64_t *v, const char *where) {
    uint64_t p = *pos, x = 0;
    for (int shift = 0; shift < 70; shift += 7) {
        if (p >= end) return truncated(r, p, where);
        uint8_t b;
        qw_status st = get_byte(r, p, &b, where);
        if (st != QW_OK) return st;
        p++;
        if (shift == 63 && (b & 0x7e))
            return qw_error_set(r->err, QW_E_FORMAT, "%s: corrupt varint (over 64 bits) at byte %llu in %s", r->name,
                                (unsigned long long)*pos, where);
        x |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *pos = p;
            *v = x;
            return QW_OK;
        }
    }
    return qw_error_set(r->err, QW_E_FORMAT, "%s: corrupt varint (over 10 bytes) at byte %llu in %s", r->name,
                        (unsigned long long)*pos, where);
}

qw_status qw_pb_fixed(qw_pb_reader *r, uint64_t *pos, uint64_t end, int n, uint64_t *v, const char *where) {
    if (end < *pos || end - *pos < (uint64_t)n) return truncated(r, end, where);
    uint8_t b[8];
    qw_status st = qw_pb_read(r, *pos, b, (size_t)n, where);
    if (st != QW_OK) return st;
    uint64_t x = 0;
    for (int i = n - 1; i >= 0; i--) x = (x << 8) | b[i];
    *v = x;
    *pos += (uint64_t)n;
    return QW_OK;
}

qw_status qw_pb_next(qw_pb_reader *r, uint64_t *pos, uint64_t end, qw_pb_field *f, const char *where) {
    uint64_t key;
    memset(f, 0, sizeof *f);
    f->at = *pos;
    qw_status st = qw_pb_varint(r, pos, end, &key, where);
    if (st != QW_OK) return st;
    f->wt = (uint32_t)(key & 7);
    uint64_t num = key >> 3;
    if (num == 0 || num > 536870911u)
        return qw_error_set(r->err, QW_E_FORMAT, "%s: corrupt protobuf (field number %llu) at byte %llu in %s", r->name,
                            (unsigned long long)num, (unsigned long long)f->at, where);
    f->num = (uint32_t)num;
    switch (f->wt) {
    case QW_PB_VARINT: return qw_pb_varint(r, pos, end, &f->v, where);
    case QW_PB_I64: return qw_pb_fixed(r, pos, end, 8, &f->v, where);
    case QW_PB_I32: return qw_pb_fixed(r, pos, end, 4, &f->v, where);
    case QW_PB_LEN:
        st = qw_pb_varint(r, pos, end, &f->len, where);
        if (st != QW_OK) return st;
        if (f->len > end - *pos)
            return qw_error_set(
                r->err, QW_E_FORMAT,
                "%s: truncated protobuf at byte %llu in %s (field %u of %llu bytes at byte %llu ends past %llu)",
                r->name, (unsigned long long)end, where, f->num, (unsigned long long)f->len, (unsigned long long)f->at,
                (unsigned long long)end);
        f->pos = *pos;
        *pos += f->len;
        return QW_OK;
    default:
        return qw_error_set(r->err, QW_E_FORMAT, "%s: corrupt protobuf (wire type %u) at byte %llu in %s", r->name,
                            f->wt, (unsigned long long)f->at, where);
    }
}

qw_status qw_pb_expect(qw_pb_reader *r, const qw_pb_field *f, uint32_t wt, const char *where) {
    if (f->wt == wt) return QW_OK;
    return qw_error_set(r->err, QW_E_FORMAT,
                        "%s: corrupt protobuf (field %u has wire type %u, expected %u) at byte %llu in %s", r->name,
                        f->num, f->wt, wt, (unsigned long long)f->at, where);
}

qw_status qw_pb_count(qw_pb_reader *r, const qw_pb_field *f, uint32_t elem_wt, uint64_t *n, const char *where) {
    if (f->wt == elem_wt) {
        *n = 1;
        return QW_OK;
    }
    qw_status st = qw_pb_expect(r, f, QW_PB_LEN, where);
    if (st != QW_OK) return st;
    if (elem_wt == QW_PB_I32 || elem_wt == QW_PB_I64) {
        uint64_t w = elem_wt == QW_PB_I32 ? 4 : 8;
        if (f->len % w)
            return qw_error_set(r->err, QW_E_FORMAT,
                                "%s: corrupt packed field %u (%llu bytes, not a multiple of %llu) at byte %llu in %s",
                                r->name, f->num, (unsigned long long)f->len, (unsigned long long)w,
                                (unsigned long long)f->at, where);
        *n = f->len / w;
        return QW_OK;
    }
    /* varints: one ends at each byte without the continuation bit */
    uint64_t c = 0, end = f->pos + f->len;
    uint8_t last = 0;
    for (uint64_t p = f->pos; p < end; p++) {
        st = get_byte(r, p, &last, where);
        if (st != QW_OK) return st;
        if (!(last & 0x80)) c++;
    }
    if (last & 0x80) return truncated(r, end, where);
    *n = c;
    return QW_OK;
}
