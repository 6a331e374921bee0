/* memfs.h - an in-memory qw_fs for tests and fuzzers: a few named byte buffers (not owned). */
#ifndef QW_TEST_MEMFS_H
#define QW_TEST_MEMFS_H

#include <string.h>
#include "qwasm.h"

#define MEMFS_MAX 8

typedef struct memfs {
    int n;
    const char *names[MEMFS_MAX];
    const uint8_t *data[MEMFS_MAX];
    size_t size[MEMFS_MAX];
    const uint8_t *other; /* when not NULL: every unknown name is this file (fuzzing) */
    size_t other_size;
    long reads;      /* fs->read calls */
    size_t max_read; /* largest single read */
} memfs;

static int memfs_find(memfs *m, const char *name, const uint8_t **d, size_t *n) {
    for (int i = 0; i < m->n; i++)
        if (!strcmp(m->names[i], name)) {
            *d = m->data[i];
            *n = m->size[i];
            return 1;
        }
    if (m->other && !strstr(name, "missing")) {
        *d = m->other;
        *n = m->other_size;
        return 1;
    }
    return 0;
}

static qw_status memfs_size(void *ctx, const char *name, uint64_t *size) {
    const uint8_t *d;
    size_t n;
    if (!memfs_find(ctx, name, &d, &n)) return QW_E_NOTFOUND;
    *size = n;
    return QW_OK;
}

static qw_status memfs_read(void *ctx, const char *name, uint64_t off, void *dst, size_t len) {
    memfs *m = ctx;
    const uint8_t *d;
    size_t n;
    if (!memfs_find(m, name, &d, &n)) return QW_E_NOTFOUND;
    m->reads++;
    if (len > m->max_read) m->max_read = len;
    if (off > n || len > n - off) return QW_E_RANGE;
    if (len) memcpy(dst, d + off, len);
    return QW_OK;
}

static void memfs_add(memfs *m, const char *name, const void *data, size_t size) {
    if (m->n >= MEMFS_MAX) return;
    m->names[m->n] = name;
    m->data[m->n] = data;
    m->size[m->n] = size;
    m->n++;
}

static qw_fs memfs_fs(memfs *m) {
    qw_fs fs = {m, memfs_size, memfs_read, NULL};
    return fs;
}

/* The fuzz targets' folder: the input as onnx/model.onnx, and every other name (external data) one fixed pattern
 * of bytes, so locators into any external file read something. */
static inline qw_fs memfs_fuzz_model(memfs *m, const uint8_t *data, size_t size) {
    static uint8_t fake_data[4096];
    for (size_t i = 0; i < sizeof fake_data; i++) fake_data[i] = (uint8_t)(i * 31u);
    memfs_add(m, "onnx/model.onnx", data, size);
    m->other = fake_data;
    m->other_size = sizeof fake_data;
    return memfs_fs(m);
}

#endif
