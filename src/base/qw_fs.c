/* qw_fs.c - qw_fs over a directory on disk (native and WASI), and whole-file reads of small files. */
#define _XOPEN_SOURCE 700 /* realpath */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "qwasm.h"

#define QW_FS_OPEN_FILES 8

typedef struct dir_fs {
    char *dir;  /* the folder as given */
    char *real; /* its canonical path (realpath): every file must resolve under it */
    struct {
        char *name;
        int fd;
    } open[QW_FS_OPEN_FILES]; /* small cache: weights are read in many pieces */
    int next_slot;
} dir_fs;

const char *qw_fs_name_problem(const char *name) {
    if (!name || !*name) return "an empty name";
    size_t n = strlen(name);
    if (n >= QW_FS_NAME_MAX) return "a name longer than 255 bytes";
    if (name[0] == '/') return "an absolute path";
    for (const char *p = name; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '\\') return "a backslash (a Windows separator)";
        if (c == ':') return "a ':' (a drive letter or a stream name)";
        if (c < 0x20 || c == 0x7f) return "a control character";
    }
    for (const char *seg = name;;) { /* segments between '/': not empty, "." or ".." */
        const char *end = strchr(seg, '/');
        size_t len = end ? (size_t)(end - seg) : strlen(seg);
        if (len == 0) return "an empty path segment ('//' or a trailing '/')";
        if (len == 1 && seg[0] == '.') return "a '.' segment";
        if (len == 2 && seg[0] == '.' && seg[1] == '.') return "a '..' segment (it leaves the folder)";
        if (!end) break;
        seg = end + 1;
    }
    return NULL;
}

const char *qw_fs_refusal(const char *name) {
    const char *why = qw_fs_name_problem(name);
    return why ? why : "resolves outside the model folder (a symbolic link?)";
}

const char *qw_fs_cause(qw_status st, const char *name) {
    switch (st) {
    case QW_E_FORMAT: return qw_fs_refusal(name);
    case QW_E_UNSUPPORTED: return "not a regular file (a directory, FIFO or device)";
    case QW_E_NOTFOUND: return "file not found";
    default: return qw_status_str(st);
    }
}

static char *join_path(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + b + 2);
    if (!p) return NULL;
    memcpy(p, dir, a);
    p[a] = '/';
    memcpy(p + a + 1, name, b + 1);
    return p;
}

/* The path to open for name: checked by qw_fs_name_problem, and with symbolic links resolved, inside the
 * folder (a link to a file outside it is refused: QW_E_FORMAT). *path is malloc'd. */
static qw_status resolve(dir_fs *d, const char *name, char **path) {
    *path = NULL;
    if (qw_fs_name_problem(name)) return QW_E_FORMAT;
    char *joined = join_path(d->real, name);
    if (!joined) return QW_E_NOMEM;
#if defined __wasi__
    *path = joined; /* no realpath in WASI; the host's preopened directory is the sandbox there */
    return QW_OK;
#else
    char *r = realpath(joined, NULL);
    int e = errno;
    free(joined);
    if (!r) return e == ENOENT || e == ENOTDIR ? QW_E_NOTFOUND : e == ENOMEM ? QW_E_NOMEM : QW_E_IO;
    size_t n = strlen(d->real);
    int root = n == 1 && d->real[0] == '/';
    if (strncmp(r, d->real, n) != 0 || (!root && r[n] != '/')) {
        free(r);
        return QW_E_FORMAT;
    }
    *path = r;
    return QW_OK;
#endif
}

static qw_status dir_fd(dir_fs *d, const char *name, int *out) {
    for (int i = 0; i < QW_FS_OPEN_FILES; i++)
        if (d->open[i].name && strcmp(d->open[i].name, name) == 0) {
            *out = d->open[i].fd;
            return QW_OK;
        }
    char *path;
    qw_status st = resolve(d, name, &path);
    if (st != QW_OK) return st;
    int fd = open(path, O_RDONLY);
    free(path);
    if (fd < 0) return errno == ENOENT ? QW_E_NOTFOUND : QW_E_IO;
    int s = d->next_slot;
    d->next_slot = (s + 1) % QW_FS_OPEN_FILES;
    if (d->open[s].name) {
        close(d->open[s].fd);
        free(d->open[s].name);
    }
    d->open[s].name = strdup(name);
    d->open[s].fd = fd;
    if (!d->open[s].name) {
        close(fd);
        d->open[s].fd = -1;
        return QW_E_NOMEM;
    }
    *out = fd;
    return QW_OK;
}

static qw_status dir_size(void *ctx, const char *name, uint64_t *size) {
    dir_fs *d = ctx;
    char *path;
    qw_status st = resolve(d, name, &path);
    if (st != QW_OK) return st;
    struct stat sb;
    int rc = stat(path, &sb);
    free(path);
    if (rc != 0) return errno == ENOENT || errno == ENOTDIR ? QW_E_NOTFOUND : QW_E_IO;
    if (!S_ISREG(sb.st_mode)) return QW_E_UNSUPPORTED; /* a directory, FIFO or device: never opened (a FIFO blocks) */
    *size = (uint64_t)sb.st_size;
    return QW_OK;
}

static qw_status dir_read(void *ctx, const char *name, uint64_t offset, void *dst, size_t len) {
    dir_fs *d = ctx;
    int fd;
    qw_status st = dir_fd(d, name, &fd);
    if (st != QW_OK) return st;
    uint8_t *p = dst;
    while (len > 0) {
        ssize_t n = pread(fd, p, len, (off_t)offset);
        if (n < 0) {
            if (errno == EINTR) continue;
            return QW_E_IO;
        }
        if (n == 0) return QW_E_RANGE; /* past the end of the file */
        p += n;
        len -= (size_t)n;
        offset += (uint64_t)n;
    }
    return QW_OK;
}

static void dir_close(void *ctx) {
    dir_fs *d = ctx;
    if (!d) return;
    for (int i = 0; i < QW_FS_OPEN_FILES; i++)
        if (d->open[i].name) {
            close(d->open[i].fd);
            free(d->open[i].name);
        }
    free(d->dir);
    free(d->real);
    free(d);
}

qw_status qw_fs_open_dir(const char *dir, qw_fs *out, qw_error *err) {
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return qw_error_set(err, QW_E_NOTFOUND, "%s: not a directory", dir);
    dir_fs *d = calloc(1, sizeof *d);
#if defined __wasi__
    if (d) d->real = strdup(dir);
#else
    if (d) d->real = realpath(dir, NULL);
#endif
    if (!d || !(d->dir = strdup(dir)) || !d->real) {
        if (d) {
            free(d->dir);
            free(d->real);
        }
        free(d);
        return qw_error_set(err, QW_E_NOMEM, "%s: out of memory", dir);
    }
    out->ctx = d;
    out->size = dir_size;
    out->read = dir_read;
    out->close = dir_close;
    return QW_OK;
}

void qw_fs_close(qw_fs *fs) {
    if (fs && fs->close) fs->close(fs->ctx);
    if (fs) memset(fs, 0, sizeof *fs);
}

qw_status qw_fs_read_all(const qw_fs *fs, const char *name, size_t max_bytes, char **out, size_t *out_len,
                         qw_error *err) {
    uint64_t size = 0;
    qw_status st = fs->size(fs->ctx, name, &size);
    if (st != QW_OK) return qw_error_file(err, name, qw_error_set(err, st, "%s: %s", name, qw_fs_cause(st, name)));
    if (size > max_bytes)
        return qw_error_file(err, name,
                             qw_error_set(err, QW_E_RANGE,
                                          "%s: %llu bytes, more than the %zu expected "
                                          "for this file",
                                          name, (unsigned long long)size, max_bytes));
    char *buf = malloc((size_t)size + 1);
    if (!buf)
        return qw_error_file(
            err, name,
            qw_error_set(err, QW_E_NOMEM, "%s: out of memory reading %llu bytes", name, (unsigned long long)size));
    if (size && (st = fs->read(fs->ctx, name, 0, buf, (size_t)size)) != QW_OK) {
        free(buf);
        return qw_error_file(err, name, qw_error_set(err, st, "%s: %s", name, qw_status_str(st)));
    }
    buf[size] = 0;
    *out = buf;
    if (out_len) *out_len = (size_t)size;
    return QW_OK;
}
