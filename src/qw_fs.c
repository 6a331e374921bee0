/* qw_fs.c - qw_fs over a directory on disk (native and WASI), and whole-file reads of small files. */
#define _POSIX_C_SOURCE 200809L
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
    char *dir;
    struct { char *name; int fd; } open[QW_FS_OPEN_FILES]; /* small cache: weights are read in many pieces */
    int next_slot;
} dir_fs;

static char *join_path(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + b + 2);
    if (!p) return NULL;
    memcpy(p, dir, a);
    p[a] = '/';
    memcpy(p + a + 1, name, b + 1);
    return p;
}

static int dir_fd(dir_fs *d, const char *name) {
    for (int i = 0; i < QW_FS_OPEN_FILES; i++)
        if (d->open[i].name && strcmp(d->open[i].name, name) == 0) return d->open[i].fd;
    char *path = join_path(d->dir, name);
    if (!path) return -1;
    int fd = open(path, O_RDONLY);
    free(path);
    if (fd < 0) return -1;
    int s = d->next_slot;
    d->next_slot = (s + 1) % QW_FS_OPEN_FILES;
    if (d->open[s].name) { close(d->open[s].fd); free(d->open[s].name); }
    d->open[s].name = strdup(name);
    d->open[s].fd = fd;
    if (!d->open[s].name) { close(fd); d->open[s].fd = -1; return -1; }
    return fd;
}

static qw_status dir_size(void *ctx, const char *name, uint64_t *size) {
    dir_fs *d = ctx;
    char *path = join_path(d->dir, name);
    if (!path) return QW_E_NOMEM;
    struct stat st;
    int rc = stat(path, &st);
    free(path);
    if (rc != 0) return errno == ENOENT || errno == ENOTDIR ? QW_E_NOTFOUND : QW_E_IO;
    if (!S_ISREG(st.st_mode)) return QW_E_UNSUPPORTED; /* a directory, FIFO or device: never opened (a FIFO blocks) */
    *size = (uint64_t)st.st_size;
    return QW_OK;
}

static qw_status dir_read(void *ctx, const char *name, uint64_t offset, void *dst, size_t len) {
    dir_fs *d = ctx;
    int fd = dir_fd(d, name);
    if (fd < 0) return errno == ENOENT ? QW_E_NOTFOUND : QW_E_IO;
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
        if (d->open[i].name) { close(d->open[i].fd); free(d->open[i].name); }
    free(d->dir);
    free(d);
}

qw_status qw_fs_open_dir(const char *dir, qw_fs *out, qw_error *err) {
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return qw_error_set(err, QW_E_NOTFOUND, "%s: not a directory", dir);
    dir_fs *d = calloc(1, sizeof *d);
    if (!d || !(d->dir = strdup(dir))) {
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
    if (st != QW_OK)
        return qw_error_set(err, st, "%s: %s", name, st == QW_E_UNSUPPORTED ? QW_FS_NOT_REGULAR : qw_status_str(st));
    if (size > max_bytes)
        return qw_error_set(err, QW_E_RANGE, "%s: %llu bytes, more than the %zu expected for this file", name,
                            (unsigned long long)size, max_bytes);
    char *buf = malloc((size_t)size + 1);
    if (!buf) return qw_error_set(err, QW_E_NOMEM, "%s: out of memory reading %llu bytes", name,
                                  (unsigned long long)size);
    if (size && (st = fs->read(fs->ctx, name, 0, buf, (size_t)size)) != QW_OK) {
        free(buf);
        return qw_error_set(err, st, "%s: %s", name, qw_status_str(st));
    }
    buf[size] = 0;
    *out = buf;
    if (out_len) *out_len = (size_t)size;
    return QW_OK;
}
