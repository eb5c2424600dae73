/* Shared support for kennel's C tests (see kn_test.h). */
#include "kn_test.h"

#include <sys/stat.h>

int kn_test_failures;
int kn_test_checks;
const char *kn_test_current = "";

int kn_test_finish(void)
{
    if (kn_test_checks == 0) {
        fprintf(stderr, "no checks ran\n");
        return 1;
    }
    printf("%d checks, %d failed\n", kn_test_checks, kn_test_failures);
    return kn_test_failures ? 1 : 0;
}

const char *kn_test_shared(const char *rel, char *buf, size_t n)
{
    const char *root = getenv("KN_SHARED");
    if (!root || !*root)
        root = "../shared";
    snprintf(buf, n, "%s/%s", root, rel);
    struct stat st;
    return stat(buf, &st) == 0 ? buf : NULL;
}

void kn_test_skip(const char *why)
{
    printf("SKIP: %s\n", why);
    exit(77);
}

double kn_test_max_abs_diff(const float *a, const float *b, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (d > m || d != d)
            m = d != d ? INFINITY : d;
    }
    return m;
}
