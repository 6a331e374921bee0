/* qw_pool.h - a fixed pool of worker threads that run one parallel task at a time.
 * Threads start once (qw_pool_new) and wait on a condition between tasks: no thread start per token.
 * Without thread support (wasm-st, WASI) the pool runs every task serially on the caller's thread. */
#ifndef QW_POOL_H
#define QW_POOL_H

typedef struct qw_pool qw_pool;

/* A task: called once per thread with ith in [0, nth). Split the work by ith; no allocation inside. */
typedef void (*qw_task_fn)(void *arg, int ith, int nth);

/* n_threads <= 0 picks the number of hardware threads. Returns NULL on failure (caller may run serial). */
qw_pool *qw_pool_new(int n_threads);
void qw_pool_free(qw_pool *pool);
/* Number of threads a task is split across (1 for a NULL pool). */
int qw_pool_threads(const qw_pool *pool);
/* Runs fn(arg, ith, nth) on every thread (the caller is thread 0) and returns when all are done.
 * A NULL pool runs fn(arg, 0, 1). */
void qw_pool_run(qw_pool *pool, qw_task_fn fn, void *arg);

#endif /* QW_POOL_H */
