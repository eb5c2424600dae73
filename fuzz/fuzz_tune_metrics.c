/* Fuzz target for MetricDefinitions and log scanning: the input up to its
 * first NUL byte is the definitions JSON, the rest is a log line (NUL bytes
 * and invalid UTF-8 included). Promises checked (abort when broken): a
 * refusal hands out nothing and says why on one printable line of valid
 * UTF-8; every value reported is finite and belongs to a defined metric; the
 * count returned is the count seen. */
#include "fuzz_common.h"
#include "kennel/tune.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct seen {
    int n, metrics;
} seen;

static void check(int metric, double value, void *arg)
{
    seen *s = arg;
    if (metric < 0 || metric >= s->metrics || !isfinite(value))
        abort();
    s->n++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, 0, size);
    size_t jlen = nul ? (size_t)(nul - data) : size;
    kn_tune_metrics *m = (kn_tune_metrics *)1;
    kn_err e;
    kn_err_clear(&e);
    if (kn_tune_metrics_new((const char *)data, jlen, &m, &e) != KN_OK) {
        if (m)
            abort();
        kn_fuzz_check_msg(e.msg, 1); /* one printable line */
        return 0;
    }
    seen s = {0, kn_tune_metrics_count(m)};
    const char *line = nul ? (const char *)nul + 1 : "";
    size_t llen = nul ? size - jlen - 1 : 0;
    int n = kn_tune_metrics_scan(m, line, llen, check, &s);
    if (n != s.n)
        abort();
    kn_tune_metrics_free(m);
    return 0;
}
