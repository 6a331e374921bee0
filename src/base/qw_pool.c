/* qw_pool.c - a fixed pool of worker threads (qw_pool.h).
 *
 * Decode runs ~200 matrix-vector products per token, each a few hundred microseconds at most, so a
 * dispatch must cost microseconds, not a thread wake-up through the kernel each time. Workers therefore
 * spin on a generation counter for a while after each task (catching the next matvec while it is still
 * hot) and only then sleep on a condition variable. The caller never blocks in the OS: it runs its own
 * share (ith = 0) and then spins until the workers are done, which is also what keeps the browser safe
 * (in a browser the pool is driven from a Web Worker; a spin never calls Atomics.wait on the main thread).
 *
 * QW_THREADS == 0 (wasm-st, WASI): every task runs serially on the caller's thread. */
#include "qw_pool.h"

#include <stdlib.h>

#if QW_THREADS
#include <pthread.h>
#include <stdatomic.h>
#include <sched.h>
#include <unistd.h>
#if defined(__EMSCRIPTEN__)
#include <emscripten/threading.h>
#endif
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define QW_CPU_RELAX() _mm_pause()
#else
#define QW_CPU_RELAX() ((void)0)
#endif

/* Spin iterations a worker polls before it sleeps: long enough to bridge the gap between two
 * matvecs of one token (norms, rope, attention on the caller: tens of microseconds), short enough not
 * to steal a shared core for long once decoding stops. */
#define QW_POOL_SPIN 20000

#define QW_MAX_THREADS 64

struct qw_pool {
    /* Written by the caller per task, read by workers after they see the new generation. */
    qw_task_fn fn;
    void *arg;
    int nth;
    /* Each hot atomic on its own cache line: workers poll gen, the caller polls pending. */
    _Alignas(64) atomic_uint gen;
    _Alignas(64) atomic_int pending;
    _Alignas(64) atomic_int n_sleeping;
    atomic_int stop;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t threads[QW_MAX_THREADS];
    int n_started;
};

typedef struct {
    qw_pool *pool;
    int ith;
} qw_worker_arg;

static void *qw_worker(void *p) {
    qw_pool *pool = ((qw_worker_arg *)p)->pool;
    int ith = ((qw_worker_arg *)p)->ith;
    free(p);
    unsigned seen = 0; /* gen at creation: a task posted before this thread got scheduled still counts */
    for (;;) {
        unsigned g;
        int spins = 0;
        while ((g = atomic_load_explicit(&pool->gen, memory_order_acquire)) == seen && spins < QW_POOL_SPIN) {
            QW_CPU_RELAX();
            /* With more threads than free cores (shared machines, other tabs) a pure spin would hold a
             * core the thread we wait for needs: yield now and then. */
            if ((++spins & 63) == 0) sched_yield();
        }
        if (g == seen) {
            /* Sleep. n_sleeping is raised before re-checking gen; the caller bumps gen before reading
             * n_sleeping (both seq_cst), so one of the two always sees the other: no lost wake-up. */
            pthread_mutex_lock(&pool->mu);
            atomic_fetch_add(&pool->n_sleeping, 1);
            while ((g = atomic_load(&pool->gen)) == seen) pthread_cond_wait(&pool->cv, &pool->mu);
            atomic_fetch_sub(&pool->n_sleeping, 1);
            pthread_mutex_unlock(&pool->mu);
        }
        seen = g;
        if (atomic_load_explicit(&pool->stop, memory_order_acquire)) break;
        if (ith < pool->nth) pool->fn(pool->arg, ith, pool->nth);
        atomic_fetch_sub_explicit(&pool->pending, 1, memory_order_release);
    }
    return NULL;
}

static int qw_hw_threads(void) {
#if defined(__EMSCRIPTEN__)
    int n = emscripten_num_logical_cores();
#else
    long n = sysconf(_SC_NPROCESSORS_ONLN);
#endif
    return n > 0 ? (int)n : 1;
}

qw_pool *qw_pool_new(int n_threads) {
    if (n_threads <= 0) n_threads = qw_hw_threads();
    if (n_threads > QW_MAX_THREADS) n_threads = QW_MAX_THREADS;
    qw_pool *pool = calloc(1, sizeof *pool);
    if (!pool) return NULL;
    pool->nth = n_threads;
    atomic_init(&pool->gen, 0);
    atomic_init(&pool->pending, 0);
    atomic_init(&pool->n_sleeping, 0);
    atomic_init(&pool->stop, 0);
    if (pthread_mutex_init(&pool->mu, NULL) != 0) {
        free(pool);
        return NULL;
    }
    if (pthread_cond_init(&pool->cv, NULL) != 0) {
        pthread_mutex_destroy(&pool->mu);
        free(pool);
        return NULL;
    }
    for (int i = 1; i < n_threads; i++) {
        qw_worker_arg *a = malloc(sizeof *a);
        if (!a) break;
        a->pool = pool;
        a->ith = i;
        if (pthread_create(&pool->threads[i], NULL, qw_worker, a) != 0) {
            free(a);
            break;
        }
        pool->n_started = i;
    }
    /* If fewer threads started than asked, run with what we have. */
    pool->nth = pool->n_started + 1;
    return pool;
}

void qw_pool_free(qw_pool *pool) {
    if (!pool) return;
    atomic_store(&pool->pending, pool->n_started);
    atomic_store(&pool->stop, 1);
    atomic_fetch_add(&pool->gen, 1);
    pthread_mutex_lock(&pool->mu);
    pthread_cond_broadcast(&pool->cv);
    pthread_mutex_unlock(&pool->mu);
    for (int i = 1; i <= pool->n_started; i++) pthread_join(pool->threads[i], NULL);
    pthread_cond_destroy(&pool->cv);
    pthread_mutex_destroy(&pool->mu);
    free(pool);
}

int qw_pool_threads(const qw_pool *pool) { return pool ? pool->nth : 1; }

void qw_pool_run(qw_pool *pool, qw_task_fn fn, void *arg) {
    if (!pool || pool->nth <= 1) {
        fn(arg, 0, 1);
        return;
    }
    pool->fn = fn;
    pool->arg = arg;
    atomic_store_explicit(&pool->pending, pool->n_started, memory_order_relaxed);
    atomic_fetch_add(&pool->gen, 1); /* seq_cst: publishes fn/arg/pending */
    if (atomic_load(&pool->n_sleeping) > 0) {
        pthread_mutex_lock(&pool->mu);
        pthread_cond_broadcast(&pool->cv);
        pthread_mutex_unlock(&pool->mu);
    }
    fn(arg, 0, pool->nth);
    for (unsigned spins = 1; atomic_load_explicit(&pool->pending, memory_order_acquire) > 0; spins++) {
        QW_CPU_RELAX();
        if ((spins & 63) == 0) sched_yield();
    }
}

#else /* !QW_THREADS: serial */

struct qw_pool {
    int unused;
};
static struct qw_pool qw_serial_pool;

qw_pool *qw_pool_new(int n_threads) {
    (void)n_threads;
    return &qw_serial_pool;
}
void qw_pool_free(qw_pool *pool) { (void)pool; }
int qw_pool_threads(const qw_pool *pool) {
    (void)pool;
    return 1;
}
void qw_pool_run(qw_pool *pool, qw_task_fn fn, void *arg) {
    (void)pool;
    fn(arg, 0, 1);
}

#endif
