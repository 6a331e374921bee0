/* kernel_probe_stream.c - native streaming read bandwidth: sums a 1 GB buffer of int64 (AVX2 when built with
 * -march=native) with 1 and 2 threads, best of 5 passes; one JSON line. Built by tools/bench/kernel_probe.mjs:
 *   cc -O2 -march=native -pthread tools/bench/kernel_probe_stream.c -o build/tmp/kernel_probe_stream */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BYTES (1ull << 30)
static uint64_t *buf;
static volatile uint64_t sink;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

typedef struct {
    size_t lo, hi;
} range;
static void *sum_range(void *p) {
    range *r = p;
    uint64_t a = 0, b = 0, c = 0, d = 0;
    for (size_t i = r->lo; i < r->hi; i += 4) {
        a += buf[i];
        b += buf[i + 1];
        c += buf[i + 2];
        d += buf[i + 3];
    }
    sink += a + b + c + d;
    return NULL;
}

static double run(int nth) {
    size_t n = BYTES / 8;
    double best = 1e30;
    for (int rep = 0; rep < 5; rep++) {
        pthread_t t[8];
        range r[8];
        double t0 = now_s();
        for (int i = 0; i < nth; i++) {
            r[i].lo = n / nth * i, r[i].hi = n / nth * (i + 1);
            pthread_create(&t[i], NULL, sum_range, &r[i]);
        }
        for (int i = 0; i < nth; i++) pthread_join(t[i], NULL);
        double dt = now_s() - t0;
        if (dt < best) best = dt;
    }
    return BYTES / best * 1e-9;
}

int main(void) {
    buf = aligned_alloc(64, BYTES);
    if (!buf) return 1;
    memset(buf, 1, BYTES);
    double a = run(1), b = run(2);
    printf("{\"stream_1t_GBs\":%.2f,\"stream_2t_GBs\":%.2f}\n", a, b);
    return 0;
}
