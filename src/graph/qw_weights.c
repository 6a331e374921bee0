/* qw_weights.c - the weight store (see qw_weights.h): resident without a cap; under a cap, paged with a stable
 * "keep" set plus streamed weights, range reads, and (native) a reader thread for prefetch and overlapped reads.
 * Each initializer is read in chunks of at most QW_WEIGHTS_CHUNK bytes straight into its final buffer. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "qw_weights.h"
#include "qw_clock.h"

#define QW_WEIGHTS_CHUNK (4u << 20)
/* 1-D weights up to this stay resident under a cap (norms and biases: a few KB); larger ones (MatMulNBits
 * scales of the big projections, stored 1-D) are paged with their matrices */
#define QW_WEIGHTS_STICKY_MAX (64u << 10)
/* how far along the learned order the prefetcher looks for the next weight that is not resident */
#define QW_PREFETCH_HOPS 16

/* The reader thread only where fs reads may happen off the calling thread: native builds with threads. In wasm
 * the qw_fs reads go through JS objects that live on the worker's main thread, so a pthread cannot read them. */
#if defined(QW_THREADS) && QW_THREADS && !defined(__EMSCRIPTEN__) && !defined(__wasi__)
#define QW_WEIGHTS_READER 1
#include <pthread.h>
#else
#define QW_WEIGHTS_READER 0
#endif

typedef struct qw_weight {
    const qw_onnx_tensor *t;
    void *data;               /* (t->nbytes) once loaded, else NULL */
    int refs;                 /* acquires not yet released */
    uint8_t sticky;           /* under a cap: 1-D, loaded once and never evicted */
    uint8_t keep;             /* under a cap: member of the stable resident set */
    uint8_t loading;          /* a prefetch into data is in flight */
    uint8_t prefetched;       /* loaded by prefetch and not acquired since: not a victim while others exist */
    uint8_t on_demand;        /* never resident: read by ranges only (qw_weights_set_on_demand) */
    qw_weight_xform_fn xform; /* in-place layout change for resident copies (qw_weights_set_transform), or NULL */
    void *xform_ctx;
    uint8_t xformed;   /* data holds the changed layout */
    int next;          /* the pageable weight acquired after this one in the last cycle, -1 */
    uint64_t last_use; /* tick of the last acquire (MRU eviction) */
} qw_weight;

typedef struct qw_derived {
    struct qw_derived *next;
    size_t bytes;
} qw_derived;

#define QW_DERIVED_MAX_FILES 8
#define QW_DERIVED_MAX_SEGS 8
typedef struct qw_derived_file {
    char name[160];
    int source_file; /* index into the model's files, -1 */
    int loaded;      /* read from the fs (1) or computed at this load (0) */
    int n_segs;
    qw_derived_seg segs[QW_DERIVED_MAX_SEGS];
} qw_derived_file;

enum { JOB_IDLE = 0, JOB_PENDING = 1, JOB_DONE = 2 };
enum { KIND_WEIGHT = 1, KIND_RANGE = 2 };

struct qw_weights {
    const qw_fs *fs;
    const qw_onnx_model *m;
    int n;
    qw_weight *w;                                 /* (n) one per initializer, same order as m->inits */
    qw_derived *derived;                          /* list of derived buffers (header + bytes) */
    qw_derived_file dfiles[QW_DERIVED_MAX_FILES]; /* derived forms a cache may keep (qw_weights_derived_*) */
    int n_dfiles;
    uint64_t resident; /* weights (sticky + paged + in flight) + derived */
    uint64_t cap;
    uint64_t total;      /* bytes of all initializers */
    qw_weights_stats st; /* counters (st.resident/st.cap filled on read) */
    uint64_t tick;
    int last_acq; /* last pageable weight acquired, for learning the order */
    qw_progress_fn progress;
    void *progress_user;
    uint64_t progress_done, progress_total;
    /* one asynchronous read at a time: a weight prefetch or a range read */
    int job_state, job_kind, job_id;
    uint64_t job_off;
    size_t job_len;
    void *job_dst;
    qw_status job_status;
    qw_error job_err;
    qw_status range_status; /* result of the last range read started (synchronous mode) */
    qw_error range_err;
#if QW_WEIGHTS_READER
    int reader_on, quit, no_reader; /* no_reader: prefetch off (qw_weights_new) */
    pthread_t reader;
    pthread_mutex_t mu, fs_mu;
    pthread_cond_t cv;
#endif
};

static void add_resident(qw_weights *w, uint64_t n) {
    w->resident += n;
    if (w->resident > w->st.peak_resident) w->st.peak_resident = w->resident;
}

/* Reads [off, off+len) of tensor t in chunks; the fs lock is taken per chunk so that the reader thread and the
 * calling thread interleave their reads (qw_fs implementations are not thread-safe). */
static qw_status read_chunks(qw_weights *w, const qw_onnx_tensor *t, uint64_t off, size_t len, void *dst, int progress,
                             qw_error *err) {
    for (size_t done = 0; done < len;) {
        size_t n = len - done > QW_WEIGHTS_CHUNK ? QW_WEIGHTS_CHUNK : len - done;
#if QW_WEIGHTS_READER
        if (w->cap) pthread_mutex_lock(&w->fs_mu);
#endif
        qw_status st = qw_onnx_tensor_read(w->fs, w->m, t, off + done, (uint8_t *)dst + done, n, err);
#if QW_WEIGHTS_READER
        if (w->cap) pthread_mutex_unlock(&w->fs_mu);
#endif
        if (st != QW_OK) return st;
        done += n;
        if (progress && w->progress) {
            w->progress_done += n;
            w->progress(w->progress_user, "weights", w->progress_done, w->progress_total);
        }
    }
    return QW_OK;
}

/* ---- the reader thread ------------------------------------------------------------------------- */

#if QW_WEIGHTS_READER
static void *reader_main(void *p) {
    qw_weights *w = p;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (w->job_state != JOB_PENDING && !w->quit) pthread_cond_wait(&w->cv, &w->mu);
        if (w->quit) break;
        const qw_onnx_tensor *t = w->w[w->job_id].t;
        uint64_t off = w->job_off;
        size_t len = w->job_len;
        void *dst = w->job_dst;
        pthread_mutex_unlock(&w->mu);
        qw_error e = {0};
        qw_status st = read_chunks(w, t, off, len, dst, 0, &e);
        pthread_mutex_lock(&w->mu);
        w->job_status = st;
        w->job_err = e;
        w->job_state = JOB_DONE;
        pthread_cond_broadcast(&w->cv);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}
#endif

/* Waits for the job in flight (if any) and settles it: a prefetched weight becomes resident (or is freed when
 * its read failed), a range read leaves its status in range_status. */
static void job_finish(qw_weights *w) {
    if (w->job_state == JOB_IDLE) return;
#if QW_WEIGHTS_READER
    double t0 = qw_now_ms();
    pthread_mutex_lock(&w->mu);
    while (w->job_state == JOB_PENDING) pthread_cond_wait(&w->cv, &w->mu);
    pthread_mutex_unlock(&w->mu);
    w->st.prefetch_wait_ms += qw_now_ms() - t0;
#endif
    if (w->job_kind == KIND_WEIGHT) {
        qw_weight *x = &w->w[w->job_id];
        x->loading = 0;
        if (w->job_status != QW_OK) { /* a failed prefetch is retried (and reported) by the synchronous load */
            free(x->data);
            x->data = NULL;
            w->resident -= x->t->nbytes;
            x->keep = 0;
        } else {
            x->prefetched = 1;
            w->st.bytes_read += x->t->nbytes;
            w->st.loads++;
        }
    } else {
        w->range_status = w->job_status;
        w->range_err = w->job_err;
    }
    w->job_state = JOB_IDLE;
}

/* Hands a read to the reader thread; 0 when there is none (the caller reads synchronously). */
static int job_submit(qw_weights *w, int kind, int id, uint64_t off, size_t len, void *dst) {
#if QW_WEIGHTS_READER
    if (!w->cap || w->no_reader) return 0;
    job_finish(w);
    if (!w->reader_on) {
        if (pthread_create(&w->reader, NULL, reader_main, w) != 0) return 0;
        w->reader_on = 1;
    }
    pthread_mutex_lock(&w->mu);
    w->job_kind = kind;
    w->job_id = id;
    w->job_off = off;
    w->job_len = len;
    w->job_dst = dst;
    w->job_status = QW_OK;
    w->job_state = JOB_PENDING;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    return 1;
#else
    (void)w;
    (void)kind;
    (void)id;
    (void)off;
    (void)len;
    (void)dst;
    return 0;
#endif
}

/* ---- store ------------------------------------------------------------------------------------- */

qw_status qw_weights_new(const qw_fs *fs, const qw_onnx_model *m, uint64_t mem_cap_bytes, int prefetch,
                         qw_weights **out, qw_error *err) {
    *out = NULL;
    qw_weights *w = calloc(1, sizeof *w);
    if (!w) return qw_error_set(err, QW_E_NOMEM, "weights: out of memory");
    w->fs = fs;
    w->m = m;
    w->cap = mem_cap_bytes;
    w->n = m->n_inits;
    w->last_acq = -1;
    w->w = calloc(w->n > 0 ? (size_t)w->n : 1, sizeof *w->w);
    if (!w->w) {
        free(w);
        return qw_error_set(err, QW_E_NOMEM, "weights: out of memory");
    }
    for (int i = 0; i < w->n; i++) {
        qw_weight *x = &w->w[i];
        x->t = &m->inits[i];
        x->next = -1;
        w->total += x->t->nbytes;
        /* norms, biases and scalars stay: the build reads them (fusions) and they are a few KB each */
        x->sticky = !w->cap || (x->t->ndim <= 1 && x->t->nbytes <= QW_WEIGHTS_STICKY_MAX);
    }
#if QW_WEIGHTS_READER
    if (w->cap) {
        pthread_mutex_init(&w->mu, NULL);
        pthread_mutex_init(&w->fs_mu, NULL);
        pthread_cond_init(&w->cv, NULL);
        /* measured on the 1.5B model under a 512 MB cap (file in the page cache, 2 shared cores): the reader thread
         * competes with the compute threads and decode was ~5-10 % slower with it, so it is opt-in (prefetch,
         * for a cold cache or a slow disk) */
        w->no_reader = !prefetch;
    }
#endif
    *out = w;
    return QW_OK;
}

void qw_weights_free(qw_weights *w) {
    if (!w) return;
    job_finish(w);
#if QW_WEIGHTS_READER
    if (w->cap) {
        if (w->reader_on) {
            pthread_mutex_lock(&w->mu);
            w->quit = 1;
            pthread_cond_broadcast(&w->cv);
            pthread_mutex_unlock(&w->mu);
            pthread_join(w->reader, NULL);
        }
        pthread_mutex_destroy(&w->mu);
        pthread_mutex_destroy(&w->fs_mu);
        pthread_cond_destroy(&w->cv);
    }
#endif
    for (int i = 0; i < w->n; i++) free(w->w[i].data);
    for (qw_derived *d = w->derived; d;) {
        qw_derived *nx = d->next;
        free(d);
        d = nx;
    }
    free(w->w);
    free(w);
}

const qw_onnx_tensor *qw_weights_info(const qw_weights *w, int id) { return id >= 0 && id < w->n ? w->w[id].t : NULL; }

int qw_weights_pageable(const qw_weights *w, int id) {
    return id >= 0 && id < w->n && ((w->cap && !w->w[id].sticky) || w->w[id].on_demand);
}

int qw_weights_streamed(const qw_weights *w, int id) {
    if (id >= 0 && id < w->n && w->w[id].on_demand) return 1;
    /* when the whole model fits, nothing streams: everything becomes resident once */
    return qw_weights_pageable(w, id) && w->w[id].t->nbytes > w->cap / 8 && w->total > w->cap;
}

qw_status qw_weights_set_on_demand(qw_weights *w, int id, qw_error *err) {
    if (id < 0 || id >= w->n) return qw_error_set(err, QW_E_ARG, "weights: bad id %d", id);
    qw_weight *x = &w->w[id];
    if (x->data || x->refs || x->xform)
        return qw_error_set(err, QW_E_ARG, "weights: '%s' is already loaded or repacked", x->t->name);
    if (!x->on_demand) w->st.on_demand += x->t->nbytes;
    x->on_demand = 1;
    return QW_OK;
}

void qw_weights_set_progress(qw_weights *w, qw_progress_fn fn, void *user, uint64_t total) {
    w->progress = fn;
    w->progress_user = user;
    w->progress_total = total;
    w->progress_done = 0;
}

/* Bytes that the stable set may hold: the cap less what must stay (sticky, derived) and a reserve for streaming
 * (the largest weight read whole so far, twice: one in use, one prefetched). */
static uint64_t keep_budget(const qw_weights *w) {
    uint64_t fixed = w->st.sticky + w->st.derived + 2 * w->st.largest_unit;
    return w->cap > fixed ? w->cap - fixed : 0;
}

static void evict(qw_weights *w, qw_weight *x) {
    free(x->data);
    x->data = NULL;
    x->xformed = 0;
    w->resident -= x->t->nbytes;
    if (x->keep) {
        w->st.keep -= x->t->nbytes;
        x->keep = 0;
    }
    x->prefetched = 0;
    w->st.evictions++;
}

/* Picks the victim: unpinned paged weights, streamed before kept, most recently used first (the access order is
 * a cycle: the weight used last is the one needed latest). A prefetched weight not used yet goes last. With
 * stream_only, kept weights are not touched (a prefetch must not shrink the stable set). */
static qw_weight *victim(qw_weights *w, int stream_only) {
    qw_weight *best = NULL;
    int best_rank = 99;
    for (int i = 0; i < w->n; i++) {
        qw_weight *x = &w->w[i];
        if (!x->data || x->sticky || x->refs || x->loading) continue;
        if (stream_only && x->keep) continue;
        int rank = (x->prefetched ? 2 : 0) + (x->keep ? 1 : 0);
        if (rank < best_rank || (rank == best_rank && x->last_use > best->last_use)) {
            best = x;
            best_rank = rank;
        }
    }
    return best;
}

/* Evicts until need more bytes fit under the cap; 0 when pinned weights make that impossible. */
static int make_room(qw_weights *w, uint64_t need, int stream_only) {
    while (w->resident + need > w->cap) {
        qw_weight *v = victim(w, stream_only);
        if (!v) return 0;
        evict(w, v);
    }
    return 1;
}

static qw_status load_one(qw_weights *w, int id, qw_error *err) {
    qw_weight *x = &w->w[id];
    if (x->loading) job_finish(w);
    if (x->data) return QW_OK;
    uint64_t nb = x->t->nbytes;
    if (w->cap && !x->sticky) {
        if (nb > w->st.largest_unit) w->st.largest_unit = nb;
        make_room(w, nb, 0); /* over the cap only when the pinned inputs of one node do not fit */
    }
    x->data = malloc(nb > 0 ? (size_t)nb : 1);
    if (!x->data)
        return qw_error_set(err, QW_E_NOMEM, "weights: out of memory for %s (%llu bytes)", x->t->name,
                            (unsigned long long)nb);
    double t0 = qw_now_ms();
    qw_status st = read_chunks(w, x->t, 0, (size_t)nb, x->data, !w->cap, err);
    double t1 = qw_now_ms();
    w->st.read_ms += t1 - t0;
    /* the layout change only for copies that stay: a streamed page would pay for it at every read */
    int stays = !w->cap || x->sticky || w->st.keep + nb <= keep_budget(w);
    if (st == QW_OK && x->xform && stays) st = x->xform(x->xform_ctx, x->data, nb, x->t->name, err);
    if (x->xform && stays) w->st.derive_ms += qw_now_ms() - t1;
    if (st != QW_OK) {
        free(x->data);
        x->data = NULL;
        return st;
    }
    x->xformed = x->xform && stays;
    add_resident(w, nb);
    if (w->cap) {
        if (x->sticky) {
            w->st.sticky += nb;
        } else {
            w->st.bytes_read += nb;
            w->st.loads++;
            if (stays) {
                x->keep = 1;
                w->st.keep += nb;
            }
        }
    }
    return QW_OK;
}

/* Starts reading the next weight of the learned order that is not resident, if it fits without touching the
 * stable set and the reader is free. */
static void prefetch_after(qw_weights *w, int id) {
#if QW_WEIGHTS_READER
    pthread_mutex_lock(&w->mu);
    int busy = w->job_state == JOB_PENDING;
    pthread_mutex_unlock(&w->mu);
    if (busy || w->no_reader) return;
    int y = w->w[id].next;
    for (int hop = 0; y >= 0 && hop < QW_PREFETCH_HOPS && w->w[y].data; hop++) y = w->w[y].next;
    if (y < 0 || y == id || w->w[y].data) return;
    qw_weight *x = &w->w[y];
    uint64_t nb = x->t->nbytes;
    if (!make_room(w, nb, 1)) return;
    x->data = malloc(nb > 0 ? (size_t)nb : 1);
    if (!x->data) return;
    x->loading = 1;
    add_resident(w, nb);
    if (!job_submit(w, KIND_WEIGHT, y, 0, (size_t)nb, x->data)) {
        free(x->data);
        x->data = NULL;
        x->loading = 0;
        w->resident -= nb;
        return;
    }
    w->st.prefetches++;
#else
    (void)w;
    (void)id;
#endif
}

qw_status qw_weights_acquire(qw_weights *w, int id, const void **data, qw_error *err) {
    if (id < 0 || id >= w->n) return qw_error_set(err, QW_E_ARG, "weights: bad id %d", id);
    qw_weight *x = &w->w[id];
    int paged = w->cap && !x->sticky;
    if (paged) {
        if (x->loading) job_finish(w);
        if (x->data && x->prefetched)
            w->st.prefetch_hits++;
        else if (x->data)
            w->st.hits++;
    }
    qw_status st = load_one(w, id, err);
    if (st != QW_OK) return st;
    x->refs++;
    *data = x->data;
    if (paged) {
        x->prefetched = 0;
        x->last_use = ++w->tick;
        if (w->last_acq >= 0 && w->last_acq != id) w->w[w->last_acq].next = id;
        w->last_acq = id;
        prefetch_after(w, id);
    }
    return QW_OK;
}

void qw_weights_release(qw_weights *w, int id) {
    if (id >= 0 && id < w->n && w->w[id].refs > 0) w->w[id].refs--;
}

void qw_weights_drop(qw_weights *w, int id) {
    if (id < 0 || id >= w->n || !w->w[id].data || w->w[id].refs > 0) return;
    qw_weight *x = &w->w[id];
    if (x->loading) job_finish(w);
    if (!x->data) return;
    w->resident -= x->t->nbytes;
    if (w->cap && x->sticky) w->st.sticky -= x->t->nbytes;
    if (x->keep) {
        w->st.keep -= x->t->nbytes;
        x->keep = 0;
    }
    free(x->data);
    x->data = NULL;
    x->xformed = 0;
}

static qw_status range_check(qw_weights *w, int id, uint64_t offset, size_t len, qw_error *err) {
    if (id < 0 || id >= w->n) return qw_error_set(err, QW_E_ARG, "weights: bad id %d", id);
    const qw_onnx_tensor *t = w->w[id].t;
    if (w->w[id].xform)
        return qw_error_set(err, QW_E_ARG, "weights: '%s' is kept in a repacked layout and read whole only", t->name);
    if (offset > t->nbytes || len > t->nbytes - offset)
        return qw_error_set(err, QW_E_RANGE, "weights: range %llu+%zu is past the %llu bytes of '%s'",
                            (unsigned long long)offset, len, (unsigned long long)t->nbytes, t->name);
    return QW_OK;
}

qw_status qw_weights_read_range(qw_weights *w, int id, uint64_t offset, size_t len, void *dst, qw_error *err) {
    qw_status st = range_check(w, id, offset, len, err);
    if (st != QW_OK) return st;
    qw_weight *x = &w->w[id];
    if (x->loading) job_finish(w);
    w->st.range_reads++;
    if (x->data) {
        memcpy(dst, (const uint8_t *)x->data + offset, len);
        return QW_OK;
    }
    w->st.range_bytes += len;
    w->st.bytes_read += len;
    double t0 = qw_now_ms();
    st = read_chunks(w, x->t, offset, len, dst, 0, err);
    w->st.range_ms += qw_now_ms() - t0;
    return st;
}

qw_status qw_weights_read_range_start(qw_weights *w, int id, uint64_t offset, size_t len, void *dst, qw_error *err) {
    qw_status st = range_check(w, id, offset, len, err);
    if (st != QW_OK) return st;
    qw_weight *x = &w->w[id];
    if (x->loading) job_finish(w);
    if (!x->data && job_submit(w, KIND_RANGE, id, offset, len, dst)) {
        w->st.range_reads++;
        w->st.range_bytes += len;
        w->st.bytes_read += len;
        return QW_OK;
    }
    job_finish(w); /* keep one read in flight at a time */
    w->range_status = qw_weights_read_range(w, id, offset, len, dst, &w->range_err);
    return QW_OK;
}

qw_status qw_weights_read_range_wait(qw_weights *w, qw_error *err) {
    if (w->job_state != JOB_IDLE && w->job_kind == KIND_RANGE) job_finish(w);
    qw_status st = w->range_status;
    if (st != QW_OK && err) *err = w->range_err;
    w->range_status = QW_OK;
    return st;
}

qw_status qw_weights_set_transform(qw_weights *w, int id, qw_weight_xform_fn fn, void *ctx, qw_error *err) {
    if (id < 0 || id >= w->n) return qw_error_set(err, QW_E_ARG, "weights: bad id %d", id);
    qw_weight *x = &w->w[id];
    if (x->xform) return qw_error_set(err, QW_E_ARG, "weights: '%s' already has a layout change", x->t->name);
    if (x->loading) job_finish(w);
    if (x->data && (!w->cap || x->sticky || x->keep)) {
        double t0 = qw_now_ms();
        qw_status st = fn(ctx, x->data, x->t->nbytes, x->t->name, err);
        w->st.derive_ms += qw_now_ms() - t0;
        if (st != QW_OK) return st;
        x->xformed = 1;
    }
    x->xform = fn;
    x->xform_ctx = ctx;
    return QW_OK;
}

int qw_weights_transformed(const qw_weights *w, int id) {
    return id >= 0 && id < w->n && w->w[id].data && w->w[id].xformed;
}

void qw_weights_add_derive_ms(qw_weights *w, double ms) { w->st.derive_ms += ms; }

qw_status qw_weights_derived_read(qw_weights *w, const char *name, const qw_derived_seg *segs, int n, int *found,
                                  qw_error *err) {
    *found = 0;
    uint64_t total = 0, size = 0;
    for (int i = 0; i < n; i++) total += segs[i].len;
    if (n < 1 || w->fs->size(w->fs->ctx, name, &size) != QW_OK || size != total) return QW_OK;
    double t0 = qw_now_ms();
    /* the header must be the one the caller expects (layout version, shapes): read it aside first */
    uint8_t head[256];
    if (segs[0].len > sizeof head)
        return qw_error_set(err, QW_E_ARG, "weights: derived header of %zu bytes", segs[0].len);
    if (w->fs->read(w->fs->ctx, name, 0, head, segs[0].len) != QW_OK || memcmp(head, segs[0].p, segs[0].len))
        return QW_OK;
    uint64_t off = segs[0].len;
    for (int i = 1; i < n; i++)
        for (size_t done = 0; done < segs[i].len;) {
            size_t len = segs[i].len - done > QW_WEIGHTS_CHUNK ? QW_WEIGHTS_CHUNK : segs[i].len - done;
            qw_status st = w->fs->read(w->fs->ctx, name, off, (uint8_t *)segs[i].p + done, len);
            if (st != QW_OK)
                return qw_error_file(
                    err, name,
                    qw_error_set(err, st, "weights: reading %s at %llu failed", name, (unsigned long long)off));
            off += len;
            done += len;
        }
    w->st.read_ms += qw_now_ms() - t0;
    *found = 1;
    return QW_OK;
}

qw_status qw_weights_derived_register(qw_weights *w, const char *name, int source_file, const qw_derived_seg *segs,
                                      int n, int loaded) {
    if (w->n_dfiles >= QW_DERIVED_MAX_FILES || n > QW_DERIVED_MAX_SEGS || strlen(name) >= sizeof w->dfiles[0].name)
        return QW_E_ARG;
    qw_derived_file *f = &w->dfiles[w->n_dfiles++];
    snprintf(f->name, sizeof f->name, "%s", name);
    f->source_file = source_file;
    f->loaded = loaded;
    f->n_segs = n;
    memcpy(f->segs, segs, (size_t)n * sizeof *segs);
    return QW_OK;
}

size_t qw_weights_derived_json(const qw_weights *w, char *buf, size_t cap) {
    size_t o = 0;
#define QW_PUT(...) \
    do { \
        int k_ = snprintf(buf + o, o < cap ? cap - o : 0, __VA_ARGS__); \
        if (k_ > 0) o += (size_t)k_; \
    } while (0)
    QW_PUT("[");
    for (int i = 0; i < w->n_dfiles; i++) {
        const qw_derived_file *f = &w->dfiles[i];
        uint64_t size = 0;
        for (int k = 0; k < f->n_segs; k++) size += f->segs[k].len;
        const char *src = f->source_file >= 0 && f->source_file < w->m->n_files ? w->m->files[f->source_file].name : "";
        QW_PUT("%s{\"name\":\"%s\",\"size\":%llu,\"loaded\":%d,\"source\":\"", i ? "," : "", f->name,
               (unsigned long long)size, f->loaded);
        for (const char *c = src; *c; c++) /* a file name from the graph: JSON-escaped */
            if (*c == '"' || *c == '\\')
                QW_PUT("\\%c", *c);
            else if ((unsigned char)*c < 0x20)
                QW_PUT("\\u%04x", *c);
            else
                QW_PUT("%c", *c);
        QW_PUT("\",\"segments\":[");
        for (int k = 0; k < f->n_segs; k++)
            QW_PUT("%s[%llu,%llu]", k ? "," : "", (unsigned long long)(uintptr_t)f->segs[k].p,
                   (unsigned long long)f->segs[k].len);
        QW_PUT("]}");
    }
    QW_PUT("]");
#undef QW_PUT
    if (cap) buf[o < cap ? o : cap - 1] = 0;
    return o < cap ? o : cap ? cap - 1 : 0;
}

void *qw_weights_derived_alloc(qw_weights *w, size_t bytes) {
    qw_derived *d = calloc(1, sizeof(qw_derived) + bytes + 64);
    if (!d) return NULL;
    d->bytes = bytes;
    d->next = w->derived;
    w->derived = d;
    add_resident(w, bytes);
    w->st.derived += bytes;
    uintptr_t p = (uintptr_t)(d + 1);
    p = (p + 63) & ~(uintptr_t)63;
    return (void *)p;
}

qw_status qw_weights_check_cap(const qw_weights *w, qw_error *err) {
    if (!w->cap) return QW_OK;
    uint64_t need = w->st.sticky + w->st.derived;
    if (need > w->cap)
        return qw_error_set(err, QW_E_NOMEM,
                            "weights: the memory cap of %.1f MB is below the %.1f MB that must stay resident "
                            "(%.1f MB of norms/biases, %.1f MB of derived forms); use a cap of at least %.1f MB",
                            w->cap / 1048576.0, need / 1048576.0, w->st.sticky / 1048576.0, w->st.derived / 1048576.0,
                            need / 1048576.0 + 1);
    if (w->progress) w->progress(w->progress_user, "weights", w->progress_total, w->progress_total);
    return QW_OK;
}

uint64_t qw_weights_resident_bytes(const qw_weights *w) { return w->resident; }

static void get_stats(const qw_weights *w, qw_weights_stats *out) {
    *out = w->st;
    out->cap = w->cap;
    out->resident = w->resident;
}

size_t qw_weights_stats_json(const qw_weights *w, char *buf, size_t cap) {
    qw_weights_stats s;
    get_stats(w, &s);
    int n = snprintf(buf, cap,
                     "{\"cap_bytes\":%llu,\"resident_bytes\":%llu,\"peak_resident_bytes\":%llu,\"derived_bytes\":%llu,"
                     "\"sticky_bytes\":%llu,\"keep_bytes\":%llu,\"largest_unit_bytes\":%llu,\"bytes_read\":%llu,"
                     "\"loads\":%llu,\"evictions\":%llu,\"hits\":%llu,\"range_reads\":%llu,\"range_bytes\":%llu,"
                     "\"prefetches\":%llu,\"prefetch_hits\":%llu,\"prefetch_wait_ms\":%.3f,\"read_ms\":%.1f,"
                     "\"derive_ms\":%.1f,\"on_demand_bytes\":%llu,\"range_ms\":%.1f}",
                     (unsigned long long)s.cap, (unsigned long long)s.resident, (unsigned long long)s.peak_resident,
                     (unsigned long long)s.derived, (unsigned long long)s.sticky, (unsigned long long)s.keep,
                     (unsigned long long)s.largest_unit, (unsigned long long)s.bytes_read, (unsigned long long)s.loads,
                     (unsigned long long)s.evictions, (unsigned long long)s.hits, (unsigned long long)s.range_reads,
                     (unsigned long long)s.range_bytes, (unsigned long long)s.prefetches,
                     (unsigned long long)s.prefetch_hits, s.prefetch_wait_ms, s.read_ms, s.derive_ms,
                     (unsigned long long)s.on_demand, s.range_ms);
    return n < 0 ? 0 : (size_t)n < cap ? (size_t)n : cap ? cap - 1 : 0;
}
