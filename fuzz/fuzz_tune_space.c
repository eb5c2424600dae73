/* Fuzz target for ParameterRanges (the tuning-job search space): parse, and
 * when it parses, map coordinates 0, 0.5 and 1 of every parameter to values
 * and strings, then run a few asks of a Bayesian and a Grid tuner over it.
 * Promises checked (abort when broken): a refusal leaves an empty space and
 * says why on one printable line of valid UTF-8; values stay within [min,
 * max] (numeric) or index a real value (categorical); formatted values are
 * non-empty and never "nan" or "inf". */
#include "fuzz_common.h"
#include "kennel/tune.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    kn_tune_space s;
    kn_err e;
    kn_err_clear(&e);
    if (kn_tune_space_parse((const char *)data, size, &s, &e) != KN_OK) {
        if (s.n != 0)
            abort();
        kn_fuzz_check_msg(e.msg, 1); /* one printable line */
        return 0;
    }
    for (int i = 0; i < s.n; i++) {
        const kn_tune_param *p = &s.p[i];
        for (int k = 0; k <= 2; k++) {
            double v = kn_tune_space_value(&s, i, k / 2.0);
            if (p->type == KN_TUNE_CATEGORICAL ? (v < 0 || v >= p->n_values)
                                               : (!(v >= p->min - 1e-9 * fabs(p->min)) ||
                                                  !(v <= p->max + 1e-9 * fabs(p->max))))
                abort();
            char buf[300];
            kn_tune_space_format(&s, i, k / 2.0, buf, sizeof buf);
            if (!buf[0] || (p->type != KN_TUNE_CATEGORICAL &&
                            (strstr(buf, "nan") || strstr(buf, "inf"))))
                abort();
        }
    }
    for (int strat = 0; strat < 2; strat++) {
        kn_tuner_params tp = kn_tuner_default_params();
        tp.strategy = strat ? KN_TUNE_GRID : KN_TUNE_BAYESIAN;
        tp.max_jobs = strat ? 0 : 6;
        kn_tuner *t = NULL;
        if (kn_tuner_new(&s, &tp, &t, &e) != KN_OK)
            continue;
        kn_tune_trial tr;
        for (int i = 0; i < 6 && kn_tuner_ask(t, &tr) == KN_TUNE_TRIAL; i++)
            kn_tuner_tell(t, tr.id, (double)(i * 7 % 5), true);
        kn_tuner_free(t);
    }
    kn_tune_space_deinit(&s);
    return 0;
}
