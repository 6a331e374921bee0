/* qw_clock.h - a monotonic clock in milliseconds for profiles and load timings. The including file defines
 * _POSIX_C_SOURCE (clock_gettime) before its first #include. */
#ifndef QW_CLOCK_H
#define QW_CLOCK_H

#include <time.h>

static inline double qw_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

#endif /* QW_CLOCK_H */
