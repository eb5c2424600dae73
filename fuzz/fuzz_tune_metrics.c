/* Fuzz target for MetricDefinitions and log scanning: the input up to its
 * first NUL byte is the definitions JSON, the rest is a log line (NUL bytes
 * and invalid UTF-8 included). Promises checked (abort when broken): a
 * refusal hands out nothing and says why on one printable line of valid
 * UTF-8; every value reported is finite and belongs to a defined metric; the
 * count returned is the count seen. */
#include "kennel/tune.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

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

/* Strict UTF-8, as JSON encoders require of a message. */
static int valid_utf8(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        int n = *p < 0x80 ? 0 : *p >= 0xc2 && *p <= 0xdf ? 1 : *p >= 0xe0 && *p <= 0xef ? 2
                : *p >= 0xf0 && *p <= 0xf4 ? 3 : -1;
        if (n < 0)
            return 0;
        unsigned lo = *p == 0xe0 ? 0xa0 : *p == 0xf0 ? 0x90 : 0x80;
        unsigned hi = *p == 0xed ? 0x9f : *p == 0xf4 ? 0x8f : 0xbf;
        for (int i = 1; i <= n; i++)
            if (p[i] < (i == 1 ? lo : 0x80u) || p[i] > (i == 1 ? hi : 0xbfu))
                return 0;
        p += n + 1;
    }
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, 0, size);
    size_t jlen = nul ? (size_t)(nul - data) : size;
    kn_tune_metrics *m = (kn_tune_metrics *)1;
    kn_err e;
    kn_err_clear(&e);
    if (kn_tune_metrics_new((const char *)data, jlen, &m, &e) != KN_OK) {
        if (m || !e.msg[0])
            abort();
        for (const char *c = e.msg; *c; c++) /* one printable line */
            if ((unsigned char)*c < 0x20 || *c == 0x7f)
                abort();
        if (!valid_utf8(e.msg))
            abort();
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
