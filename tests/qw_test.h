/* qw_test.h - the one CHECK of the C tests (tests/test_*.c), header-only: one test program per file.
 *
 *   CHECK(cond)               counts a check; when cond is false prints "FAIL file:line: cond" to stderr
 *   CHECK(cond, fmt, ...)     the same with a printf message instead of the condition's text
 *   CHECK_EQ(a, b)            integers: on failure prints both values ("a = 3, expected b = 4")
 *   CHECK_STREQ(a, b)         strings (NULL is not equal to anything): prints both
 *   qw_test_failures          failures so far (a test may stop early once one failed)
 *   qw_test_summary(name)     prints "name: N checks, F failed" and returns the exit code: 0 = all passed
 * A test that cannot run at all (a missing input) says so and returns 1 itself. */
#ifndef QW_TEST_H
#define QW_TEST_H

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int qw_test_checks, qw_test_failures;

/* fmt starts with ": " (added by CHECK, so that a message-less CHECK still passes a non-empty format and the
 * compiler checks every message's arguments); just ": " means no message: the condition's text is printed */
__attribute__((format(printf, 4, 5))) static void qw_test_fail(const char *file, int line, const char *cond,
                                                               const char *fmt, ...) {
    qw_test_failures++;
    fprintf(stderr, "FAIL %s:%d: ", file, line);
    if (!fmt[2]) {
        fprintf(stderr, "%s\n", cond);
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt + 2, ap);
    va_end(ap);
    fputc('\n', stderr);
}

#define CHECK(cond, ...) \
    do { \
        qw_test_checks++; \
        if (!(cond)) qw_test_fail(__FILE__, __LINE__, #cond, ": " __VA_ARGS__); \
    } while (0)

#define CHECK_EQ(a, b) \
    do { \
        long long qw_a_ = (long long)(a), qw_b_ = (long long)(b); \
        CHECK(qw_a_ == qw_b_, "%s = %lld, expected %s = %lld", #a, qw_a_, #b, qw_b_); \
    } while (0)

#define CHECK_STREQ(a, b) \
    do { \
        const char *qw_a_ = (a), *qw_b_ = (b); \
        CHECK(qw_a_ &&qw_b_ && !strcmp(qw_a_, qw_b_), "%s = \"%s\", expected \"%s\"", #a, qw_a_ ? qw_a_ : "(null)", \
              qw_b_ ? qw_b_ : "(null)"); \
    } while (0)

static inline int qw_test_summary(const char *name) {
    printf("%s: %d checks, %d failed\n", name, qw_test_checks, qw_test_failures);
    return qw_test_failures ? 1 : 0;
}

#endif /* QW_TEST_H */
