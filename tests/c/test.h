/* A minimal C test harness: CHECK records a failure with file and line and
 * goes on; TEST_MAIN runs the listed tests and returns non-zero on failure. */
#ifndef LM_TEST_H
#define LM_TEST_H

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "lm_error.h"

static int test_failures, test_checks;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        test_checks++;                                                                             \
        if (!(cond)) {                                                                             \
            test_failures++;                                                                       \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);               \
        }                                                                                          \
    } while (0)

#define CHECK_OK(expr)                                                                             \
    do {                                                                                           \
        lm_status check_s_ = (expr);                                                               \
        test_checks++;                                                                             \
        if (check_s_ != LM_OK) {                                                                   \
            test_failures++;                                                                       \
            fprintf(stderr, "%s:%d: %s failed: %s\n", __FILE__, __LINE__, #expr, lm_last_error()); \
        }                                                                                          \
    } while (0)

/* expr must fail with `code` and a message containing `needle` */
#define CHECK_FAILS(expr, code, needle)                                                            \
    do {                                                                                           \
        lm_status check_s_ = (expr);                                                               \
        test_checks++;                                                                             \
        if (check_s_ != (code) || !strstr(lm_last_error(), (needle))) {                            \
            test_failures++;                                                                       \
            fprintf(stderr, "%s:%d: %s: expected failure %d with '%s', got %d: '%s'\n", __FILE__,  \
                    __LINE__, #expr, (int)(code), (needle), (int)check_s_, lm_last_error());       \
        }                                                                                          \
    } while (0)

#define CHECK_NEAR(a, b, tol)                                                                      \
    do {                                                                                           \
        double check_a_ = (a), check_b_ = (b);                                                     \
        test_checks++;                                                                             \
        if (!(fabs(check_a_ - check_b_) <= (tol))) {                                               \
            test_failures++;                                                                       \
            fprintf(stderr, "%s:%d: %s = %.9g, expected %.9g (tol %g)\n", __FILE__, __LINE__, #a,  \
                    check_a_, check_b_, (double)(tol));                                            \
        }                                                                                          \
    } while (0)

#define TEST_MAIN(...)                                                                             \
    int main(void) {                                                                               \
        void (*tests[])(void) = {__VA_ARGS__};                                                     \
        for (size_t i = 0; i < sizeof tests / sizeof *tests; i++) tests[i]();                      \
        printf("%d checks, %d failed\n", test_checks, test_failures);                              \
        return test_failures ? 1 : 0;                                                              \
    }

#endif
