/* qw_weights.h - the weight store: the model's initializers, read through qw_fs in chunks straight into their
 * final buffers, handed to ops with acquire/release. Derived forms (fp32 scales, repacked layouts) made once at
 * load are owned by the store too and counted in the resident bytes.
 *
 * Without a cap (mem_cap_bytes = 0) every weight is loaded once and stays resident, except those marked read on
 * demand (qw_weights_set_on_demand: the tied embedding once the int8 lm_head has its rows), which never are.
 * Under a cap, small 1-D weights (norms, biases, scalars; <= 64 KB) are "sticky": loaded on first use and kept, so the build can
 * read them and their pointers stay valid. Every other weight is pageable: read on acquire, evicted when the
 * resident bytes would pass the cap. The executor touches the weights in the same order every step (a cycle,
 * where LRU misses every time), so the store keeps a stable set: the first pageable weights of the cycle that fit
 * into the cap minus a streaming reserve stay resident ("keep"), the others stream through the reserve, the most
 * recently used streamed weight evicted first. Natively, with prefetch set (qw_load_opts.prefetch), a reader thread
 * prefetches the next streamed weight (learned from the previous cycle) and the next lm_head chunk while the
 * current op computes (off by default: with the file in the page cache on 2 cores it cost more than it saved); in wasm the fs reads go through JS on the
 * worker's main thread, so there is no prefetch (reads are synchronous). Ops that need only part of a large weight
 * (Gather rows, lm_head row chunks) read ranges and never make it resident. */
#ifndef QW_WEIGHTS_H
#define QW_WEIGHTS_H

#include "qwasm.h"
#include "qw_onnx.h"

typedef struct qw_weights qw_weights;

/* fs and m must outlive the store. mem_cap_bytes: 0 = everything resident, else weights are paged. Under a cap
 * on native builds with prefetch set the store reads fs from its reader thread (under its own lock): nothing else
 * may read the same qw_fs concurrently while a model runs. */
qw_status qw_weights_new(const qw_fs *fs, const qw_onnx_model *m, uint64_t mem_cap_bytes, int prefetch,
                         qw_weights **out, qw_error *err);
void qw_weights_free(qw_weights *w);

const qw_onnx_tensor *qw_weights_info(const qw_weights *w, int id);

/* 1 when id is paged (a cap is set and it is not a sticky 1-D weight): it is not loaded at build, its bytes are
 * valid only between acquire and release, and ops that need part of it should use qw_weights_read_range. */
int qw_weights_pageable(const qw_weights *w, int id);

/* 1 when id is pageable and large against the cap (> cap / 8, e.g. the 467 MB embedding / tied lm_head under a
 * 512 MB cap): ops that can should read it by ranges (rows, chunks) instead of acquiring it whole. */
int qw_weights_streamed(const qw_weights *w, int id);

/* Marks id (not loaded yet) as read on demand: never made resident, with or without a cap; pageable and
 * streamed say 1, so its ops read the ranges they need (Gather rows, the int8 lm_head's rescored rows, row
 * chunks). Used for the tied embedding when the int8 lm_head replaces its product (the model's largest
 * tensor: 467 MB of fp16 in the 1.5B) and the fs reads ranges fast. */
qw_status qw_weights_set_on_demand(qw_weights *w, int id, qw_error *err);

/* A pointer to id's bytes (nbytes, little-endian), valid until the matching release. Loads when needed. */
qw_status qw_weights_acquire(qw_weights *w, int id, const void **data, qw_error *err);
void qw_weights_release(qw_weights *w, int id);
/* Frees id's bytes (no op acquires it any more, e.g. it was folded into a derived form; ranges may still be read). */
void qw_weights_drop(qw_weights *w, int id);

/* Copies bytes [offset, offset + len) of weight id into dst: from memory when resident, else from the fs (not
 * cached). The _start/_wait pair overlaps the read with computation (natively, under a cap, on the reader
 * thread; elsewhere _start reads synchronously): one read in flight, dst untouched by the caller until _wait. */
qw_status qw_weights_read_range(qw_weights *w, int id, uint64_t offset, size_t len, void *dst, qw_error *err);
qw_status qw_weights_read_range_start(qw_weights *w, int id, uint64_t offset, size_t len, void *dst, qw_error *err);
qw_status qw_weights_read_range_wait(qw_weights *w, qw_error *err);

/* A layout change made in place on a weight's bytes when they become resident for good (repacking for a
 * kernel): without a cap once (now, if id is resident), under a cap each time id is read into the stable set;
 * streamed pages keep the file's layout (changing it at every read would cost more than the faster kernel
 * saves). qw_weights_transformed says which layout the bytes of an acquired weight have. ctx must outlive the
 * store's use of id. A weight with a layout change is read whole only (range reads fail). */
typedef qw_status (*qw_weight_xform_fn)(void *ctx, void *data, uint64_t nbytes, const char *name, qw_error *err);
qw_status qw_weights_set_transform(qw_weights *w, int id, qw_weight_xform_fn fn, void *ctx, qw_error *err);
int qw_weights_transformed(const qw_weights *w, int id);

/* A zeroed buffer owned by the store (freed with it), counted as resident: derived forms made at load. */
void *qw_weights_derived_alloc(qw_weights *w, size_t bytes);

/* End of the build: under a cap, QW_E_NOMEM naming the cap and the minimum when the bytes that must stay
 * resident (sticky weights + derived forms) do not fit. */
qw_status qw_weights_check_cap(const qw_weights *w, qw_error *err);

uint64_t qw_weights_resident_bytes(const qw_weights *w);
void qw_weights_set_progress(qw_weights *w, qw_progress_fn fn, void *user, uint64_t total);

/* Paging counters as a JSON object: {"cap_bytes":..,"resident_bytes":..,"peak_resident_bytes":..,
 * "derived_bytes":..,"sticky_bytes":..,"keep_bytes":..,"largest_unit_bytes":..,"bytes_read":..,"loads":..,
 * "evictions":..,"hits":..,"range_reads":..,"range_bytes":..,"prefetches":..,"prefetch_hits":..,
 * "prefetch_wait_ms":..,"read_ms":..,"derive_ms":..,"on_demand_bytes":..,"range_ms":..}. Writes at most cap bytes (NUL-terminated); returns the length. */
size_t qw_weights_stats_json(const qw_weights *w, char *buf, size_t cap);

typedef struct qw_weights_stats {
    uint64_t cap, resident, peak_resident, derived, sticky, keep, largest_unit;
    uint64_t bytes_read, loads, evictions, hits, range_reads, range_bytes, prefetches, prefetch_hits;
    double prefetch_wait_ms;
    double read_ms;     /* time in reads of whole weights (the load, page-ins) */
    double derive_ms;   /* time making derived forms and layout changes (qw_weights_add_derive_ms) */
    uint64_t on_demand; /* bytes of the weights read on demand only (qw_weights_set_on_demand) */
    double range_ms;    /* time in synchronous range reads from the fs (rows, streamed chunks) */
} qw_weights_stats;
/* ---- derived files: forms made at load that a cache may keep for the next load --------------------------
 * A derived form (the int8 lm_head rows, ...) is described as segments of buffers the caller owns (a header
 * first, then the data), under a name that encodes its layout version and source tensor (DERIVED_DIR/...).
 * qw_weights_derived_read fills the segments from the fs when it holds that name with exactly their total
 * size and the same header bytes (*found = 1); else the caller computes the form. Either way it registers the
 * file, so the host (the browser runtime) can save the ones computed at this load into its cache, with the
 * source file's identity beside them, and drop stale ones (qw_weights_derived_json). */
#define QW_DERIVED_DIR "qwasm-derived/"
typedef struct qw_derived_seg {
    void *p;
    size_t len;
} qw_derived_seg;
qw_status qw_weights_derived_read(qw_weights *w, const char *name, const qw_derived_seg *segs, int n, int *found,
                                  qw_error *err);
qw_status qw_weights_derived_register(qw_weights *w, const char *name, int source_file, const qw_derived_seg *segs,
                                      int n, int loaded);
/* [{"name":..,"size":..,"loaded":0|1,"source":"<data file name>","segments":[[address,len],...]}] of this
 * load; addresses are the buffers' (valid while the model lives). Writes at most cap bytes; returns the length. */
size_t qw_weights_derived_json(const qw_weights *w, char *buf, size_t cap);

/* Adds time spent making a derived form (an op's work at load) to the derive_ms counter. */
void qw_weights_add_derive_ms(qw_weights *w, double ms);

#endif /* QW_WEIGHTS_H */
