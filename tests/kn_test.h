/* Minimal typed assertions for kennel's C tests. Each test file is one
 * executable: main() calls KN_RUN(test_fn) for each case and returns
 * kn_test_finish(). A failed check prints file:line and both values and
 * marks the run failed; the remaining checks still run. */
#ifndef KN_TEST_H
#define KN_TEST_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern int kn_test_failures;
extern int kn_test_checks;
extern const char *kn_test_current;

#define KN_CHECK(cond)                                                                     \
    do {                                                                                   \
        kn_test_checks++;                                                                  \
        if (!(cond)) {                                                                     \
            kn_test_failures++;                                                            \
            fprintf(stderr, "%s:%d: [%s] check failed: %s\n", __FILE__, __LINE__,          \
                    kn_test_current, #cond);                                               \
        }                                                                                  \
    } while (0)

#define KN_CHECK_INT(a, b)                                                                 \
    do {                                                                                   \
        long long _a = (long long)(a), _b = (long long)(b);                                \
        kn_test_checks++;                                                                  \
        if (_a != _b) {                                                                    \
            kn_test_failures++;                                                            \
            fprintf(stderr, "%s:%d: [%s] %s == %s failed: %lld vs %lld\n", __FILE__,       \
                    __LINE__, kn_test_current, #a, #b, _a, _b);                            \
        }                                                                                  \
    } while (0)

#define KN_CHECK_STR(a, b)                                                                 \
    do {                                                                                   \
        const char *_a = (a), *_b = (b);                                                   \
        kn_test_checks++;                                                                  \
        if (!_a || !_b || strcmp(_a, _b) != 0) {                                           \
            kn_test_failures++;                                                            \
            fprintf(stderr, "%s:%d: [%s] %s == %s failed: \"%s\" vs \"%s\"\n", __FILE__,   \
                    __LINE__, kn_test_current, #a, #b, _a ? _a : "(null)",                 \
                    _b ? _b : "(null)");                                                   \
        }                                                                                  \
    } while (0)

#define KN_CHECK_CONTAINS(hay, needle)                                                     \
    do {                                                                                   \
        const char *_h = (hay), *_n = (needle);                                            \
        kn_test_checks++;                                                                  \
        if (!_h || !strstr(_h, _n)) {                                                      \
            kn_test_failures++;                                                            \
            fprintf(stderr, "%s:%d: [%s] \"%s\" does not contain \"%s\"\n", __FILE__,      \
                    __LINE__, kn_test_current, _h ? _h : "(null)", _n);                    \
        }                                                                                  \
    } while (0)

#define KN_CHECK_NEAR(a, b, tol)                                                           \
    do {                                                                                   \
        double _a = (double)(a), _b = (double)(b), _t = (double)(tol);                     \
        kn_test_checks++;                                                                  \
        if (!(fabs(_a - _b) <= _t)) {                                                      \
            kn_test_failures++;                                                            \
            fprintf(stderr, "%s:%d: [%s] |%s - %s| <= %g failed: %.9g vs %.9g\n",          \
                    __FILE__, __LINE__, kn_test_current, #a, #b, _t, _a, _b);              \
        }                                                                                  \
    } while (0)

/* Fails the check and returns from the current test function. */
#define KN_REQUIRE(cond)                                                                   \
    do {                                                                                   \
        int _before = kn_test_failures;                                                    \
        KN_CHECK(cond);                                                                    \
        if (kn_test_failures != _before)                                                   \
            return;                                                                        \
    } while (0)

#define KN_RUN(fn)                                                                         \
    do {                                                                                   \
        kn_test_current = #fn;                                                             \
        int _f = kn_test_failures;                                                         \
        fn();                                                                              \
        printf("%s %s\n", kn_test_failures == _f ? "ok  " : "FAIL", #fn);                  \
    } while (0)

int kn_test_finish(void);
/* Returns $KN_SHARED/<rel> if that path exists, else NULL (caller skips). */
const char *kn_test_shared(const char *rel, char *buf, size_t n);
/* Prints the reason and exits 77 (CTest "skipped"). */
void kn_test_skip(const char *why);
/* Max absolute difference of two float arrays. */
double kn_test_max_abs_diff(const float *a, const float *b, size_t n);

#endif
