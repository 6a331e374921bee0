/* qw_protobuf.h - protobuf wire format read from a qw_fs through a small window, never whole.
 *
 * Positions are absolute byte offsets in the file. A message is a range [pos, end); qw_pb_next walks
 * its fields one by one and leaves length-delimited payloads where they are (pos, len), so callers
 * decide what to copy (names), decode (typed arrays) or only locate (raw_data). */
#ifndef QW_PROTOBUF_H
#define QW_PROTOBUF_H

#include "qwasm.h"

#define QW_PB_WINDOW (64u * 1024u)

enum { QW_PB_VARINT = 0, QW_PB_I64 = 1, QW_PB_LEN = 2, QW_PB_I32 = 5 };

typedef struct qw_pb_reader {
    const qw_fs *fs;
    const char *name; /* file name, for messages */
    uint64_t size;    /* file size */
    uint8_t *buf;     /* window */
    uint64_t win_off;
    size_t win_len, cap;
    qw_error *err;
} qw_pb_reader;

typedef struct qw_pb_field {
    uint32_t num;      /* field number */
    uint32_t wt;       /* wire type */
    uint64_t v;        /* VARINT value, or the raw bits of I32 / I64 */
    uint64_t pos, len; /* LEN payload: absolute position and length */
    uint64_t at;       /* position of the tag, for messages */
} qw_pb_field;

/* Opens name through fs (size via fs->size) with a window of QW_PB_WINDOW bytes. */
qw_status qw_pb_open(qw_pb_reader *r, const qw_fs *fs, const char *name, qw_error *err);
void qw_pb_close(qw_pb_reader *r);

/* Copies len bytes at pos into dst through the window. */
qw_status qw_pb_read(qw_pb_reader *r, uint64_t pos, void *dst, size_t len, const char *where);

/* Reads a varint at *pos (which must stay below end) and advances *pos. */
qw_status qw_pb_varint(qw_pb_reader *r, uint64_t *pos, uint64_t end, uint64_t *v, const char *where);

/* Reads an n-byte (4 or 8) little-endian value at *pos (below end) and advances *pos. */
qw_status qw_pb_fixed(qw_pb_reader *r, uint64_t *pos, uint64_t end, int n, uint64_t *v, const char *where);

/* Reads the next field of the message [*pos, end) and moves *pos past it. Groups and unknown wire types
 * are QW_E_FORMAT; so are lengths that run past end. */
qw_status qw_pb_next(qw_pb_reader *r, uint64_t *pos, uint64_t end, qw_pb_field *f, const char *where);

/* QW_E_FORMAT unless f has wire type wt, naming field and message. */
qw_status qw_pb_expect(qw_pb_reader *r, const qw_pb_field *f, uint32_t wt, const char *where);

/* Number of elements of a repeated scalar field occurrence: 1 when unpacked, else the count of varints
 * (elem_wt VARINT) or of 4/8-byte values (I32/I64) in the packed payload. */
qw_status qw_pb_count(qw_pb_reader *r, const qw_pb_field *f, uint32_t elem_wt, uint64_t *n, const char *where);

#endif /* QW_PROTOBUF_H */
