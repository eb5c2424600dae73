/* Tuning: ParameterRanges parsing and errors, the value maps of every
 * scaling type, and the strategies on synthetic objectives with a known
 * optimum — Grid covers its grid exactly once, Random respects the
 * parallel limit and the budget, Bayesian reaches within 5 % of the optimum
 * in fewer trials than Random on average over seeds, Hyperband stops weak
 * trials early and spends less budget than Random for an equal best. */
#include "kennel/tune.h"
#include "kn_test.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* For helpers that return a value: a broken precondition ends the test. */
#define MUST(x)                                                                                \
    do {                                                                                       \
        if (!(x)) {                                                                            \
            fprintf(stderr, "%s:%d: %s failed\n", __FILE__, __LINE__, #x);                     \
            exit(1);                                                                           \
        }                                                                                      \
    } while (0)

static kn_status parse(const char *json, kn_tune_space *s, kn_err *e)
{
    return kn_tune_space_parse(json, strlen(json), s, e);
}

static void test_space(void)
{
    kn_tune_space s;
    kn_err e = {0};
    /* the reference project's ranges */
    const char *ref = "{\"ContinuousParameterRanges\":[{\"Name\":\"learning_rate\",\"MinValue\":"
                      "\"0.001\",\"MaxValue\":\"0.1\",\"ScalingType\":\"Auto\"}],"
                      "\"CategoricalParameterRanges\":[{\"Name\":\"batch_size\",\"Values\":"
                      "[\"32\",\"64\",\"128\",\"256\",\"512\"]}]}";
    KN_REQUIRE(parse(ref, &s, &e) == KN_OK);
    KN_CHECK_INT(s.n, 2);
    KN_CHECK_INT(s.p[0].scaling, KN_TUNE_LOG); /* Auto over two decades */
    KN_CHECK(fabs(kn_tune_space_value(&s, 0, 0.5) - 0.01) < 1e-12);
    KN_CHECK(fabs(kn_tune_space_value(&s, 0, 0) - 0.001) < 1e-15);
    KN_CHECK(fabs(kn_tune_space_value(&s, 0, 1) - 0.1) < 1e-15);
    char buf[64];
    kn_tune_space_format(&s, 0, 0.5, buf, sizeof buf);
    KN_CHECK_STR(buf, "0.01");
    kn_tune_space_format(&s, 1, 0.0, buf, sizeof buf);
    KN_CHECK_STR(buf, "32");
    kn_tune_space_format(&s, 1, 0.99, buf, sizeof buf);
    KN_CHECK_STR(buf, "512");
    kn_tune_space_format(&s, 1, 0.5, buf, sizeof buf);
    KN_CHECK_STR(buf, "128");
    kn_tune_space_deinit(&s);

    const char *more =
        "{\"IntegerParameterRanges\":[{\"Name\":\"epochs\",\"MinValue\":\"1\",\"MaxValue\":\"10\","
        "\"ScalingType\":\"Linear\"}],\"ContinuousParameterRanges\":[{\"Name\":\"momentum\","
        "\"MinValue\":\"0.9\",\"MaxValue\":\"0.999\",\"ScalingType\":\"ReverseLogarithmic\"},"
        "{\"Name\":\"dropout\",\"MinValue\":0,\"MaxValue\":0.5}]}";
    KN_REQUIRE(parse(more, &s, &e) == KN_OK);
    KN_CHECK(kn_tune_space_value(&s, 0, 0) == 1 && kn_tune_space_value(&s, 0, 1) == 10);
    KN_CHECK(kn_tune_space_value(&s, 0, 0.5) == 6); /* 5.5 rounds up */
    kn_tune_space_format(&s, 0, 0.3, buf, sizeof buf);
    KN_CHECK_STR(buf, "4");
    KN_CHECK(fabs(kn_tune_space_value(&s, 1, 0) - 0.9) < 1e-12);
    KN_CHECK(fabs(kn_tune_space_value(&s, 1, 1) - 0.999) < 1e-12);
    KN_CHECK(fabs(kn_tune_space_value(&s, 1, 0.5) - 0.99) < 1e-12); /* 1 - sqrt(0.1 * 0.001) */
    KN_CHECK_INT(s.p[2].scaling, KN_TUNE_LINEAR);
    KN_CHECK(fabs(kn_tune_space_value(&s, 2, 0.5) - 0.25) < 1e-12);
    kn_tune_space_deinit(&s);

    static const struct {
        const char *json, *says;
    } bad[] = {
        {"[", "not valid JSON"},
        {"{\"Ranges\":[]}", "unknown member 'Ranges'"},
        {"{}", "no parameter"},
        {"{\"ContinuousParameterRanges\":[{\"Name\":\"lr\",\"MinValue\":\"0.1\",\"MaxValue\":\"0.01\"}]}",
         "MinValue 0.1 must be less than MaxValue 0.01"},
        {"{\"ContinuousParameterRanges\":[{\"Name\":\"lr\",\"MinValue\":\"abc\",\"MaxValue\":\"1\"}]}",
         "ContinuousParameterRanges[0] (lr): MinValue must be a number"},
        {"{\"ContinuousParameterRanges\":[{\"Name\":\"lr\",\"MinValue\":\"0\",\"MaxValue\":\"1\",\"ScalingType\":\"Logarithmic\"}]}",
         "Logarithmic scaling needs MinValue > 0"},
        {"{\"ContinuousParameterRanges\":[{\"Name\":\"m\",\"MinValue\":\"0.5\",\"MaxValue\":\"1\",\"ScalingType\":\"ReverseLogarithmic\"}]}",
         "0 <= MinValue < MaxValue < 1"},
        {"{\"IntegerParameterRanges\":[{\"Name\":\"e\",\"MinValue\":\"1\",\"MaxValue\":\"5\",\"ScalingType\":\"ReverseLogarithmic\"}]}",
         "continuous ranges only"},
        {"{\"IntegerParameterRanges\":[{\"Name\":\"e\",\"MinValue\":\"1.5\",\"MaxValue\":\"5\"}]}",
         "must be integers"},
        {"{\"ContinuousParameterRanges\":[{\"Name\":\"m\",\"MinValue\":\"0\",\"MaxValue\":\"1\",\"ScalingType\":\"Cubic\"}]}",
         "ScalingType"},
        {"{\"CategoricalParameterRanges\":[{\"Name\":\"b\",\"Values\":[]}]}", "Values must be a list"},
        {"{\"CategoricalParameterRanges\":[{\"Name\":\"b\",\"Values\":[\"1\",\"1\"]}]}",
         "listed twice"},
        {"{\"CategoricalParameterRanges\":[{\"Name\":\"b\",\"Values\":[\"1\"]},{\"Name\":\"b\",\"Values\":[\"2\"]}]}",
         "given twice"},
        {"{\"CategoricalParameterRanges\":[{\"Values\":[\"1\"]}]}", "Name must be"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        KN_CHECK_INT(parse(bad[i].json, &s, &e), KN_INVALID);
        if (!strstr(e.msg, bad[i].says))
            fprintf(stderr, "case %zu: '%s' lacks '%s'\n", i, e.msg, bad[i].says);
        KN_CHECK(strstr(e.msg, bad[i].says) != NULL);
        KN_CHECK_INT(s.n, 0);
    }
    /* 31 parameters */
    char big[8192];
    size_t o = (size_t)snprintf(big, sizeof big, "{\"CategoricalParameterRanges\":[");
    for (int i = 0; i < 31; i++)
        o += (size_t)snprintf(big + o, sizeof big - o, "%s{\"Name\":\"p%d\",\"Values\":[\"a\"]}",
                              i ? "," : "", i);
    snprintf(big + o, sizeof big - o, "]}");
    KN_CHECK_INT(parse(big, &s, &e), KN_INVALID);
    KN_CHECK_CONTAINS(e.msg, "more than 30");
}

/* Ranges at the edges of double: values stay finite and inside the range
 * (a linear range wider than DBL_MAX once gave NaN), integers beyond 2^53
 * (not exact in a double, and overflowing the printed long long) are
 * refused, and messages quoting names stay one printable line. */
static void test_space_extremes(void)
{
    kn_tune_space s;
    kn_err e = {0};
    const char *wide = "{\"ContinuousParameterRanges\":[{\"Name\":\"w\",\"MinValue\":\"-1e308\","
                       "\"MaxValue\":\"1e308\",\"ScalingType\":\"Linear\"}]}";
    KN_REQUIRE(parse(wide, &s, &e) == KN_OK);
    for (int k = 0; k <= 4; k++) {
        double v = kn_tune_space_value(&s, 0, k / 4.0);
        KN_CHECK(isfinite(v) && v >= -1e308 && v <= 1e308);
        char buf[64];
        kn_tune_space_format(&s, 0, k / 4.0, buf, sizeof buf);
        KN_CHECK(strstr(buf, "nan") == NULL && strstr(buf, "inf") == NULL);
    }
    KN_CHECK(kn_tune_space_value(&s, 0, 0) == -1e308 && kn_tune_space_value(&s, 0, 1) == 1e308);
    kn_tune_space_deinit(&s);

    const char *huge = "{\"IntegerParameterRanges\":[{\"Name\":\"n\",\"MinValue\":\"-1e300\","
                       "\"MaxValue\":\"1e300\"}]}";
    KN_CHECK_INT(parse(huge, &s, &e), KN_INVALID);
    KN_CHECK(strstr(e.msg, "(n)") != NULL);
    const char *edge = "{\"IntegerParameterRanges\":[{\"Name\":\"n\",\"MinValue\":"
                       "\"-9007199254740992\",\"MaxValue\":\"9007199254740992\"}]}";
    KN_REQUIRE(parse(edge, &s, &e) == KN_OK);
    char buf[64];
    kn_tune_space_format(&s, 0, 1, buf, sizeof buf);
    KN_CHECK_STR(buf, "9007199254740992");
    kn_tune_space_format(&s, 0, 0, buf, sizeof buf);
    KN_CHECK_STR(buf, "-9007199254740992");
    kn_tune_space_deinit(&s);

    /* a coordinate that is not a number is the range's start, never an
     * out-of-range index */
    KN_REQUIRE(parse("{\"CategoricalParameterRanges\":[{\"Name\":\"c\",\"Values\":[\"x\",\"y\"]}],"
                     "\"IntegerParameterRanges\":[{\"Name\":\"i\",\"MinValue\":\"3\",\"MaxValue\":\"9\"}]}",
                     &s, &e) == KN_OK);
    KN_CHECK(kn_tune_space_value(&s, 0, NAN) == 0);
    KN_CHECK(kn_tune_space_value(&s, 1, NAN) == 3);
    kn_tune_space_format(&s, 0, NAN, buf, sizeof buf);
    KN_CHECK_STR(buf, "x");
    kn_tune_space_deinit(&s);

    /* a message cut at its size limit never ends inside a character */
    for (int shift = 0; shift < 2; shift++) {
        char doc[2048], name[300] = "", val[300] = "";
        for (int i = 0; i < 127; i++)
            strcat(name, "\xc3\xa9");
        while (strlen(val) + 3 <= (size_t)(255 - 3 * shift))
            strcat(val, "\xe2\x82\xac"); /* three bytes each */
        snprintf(doc, sizeof doc,
                 "{\"CategoricalParameterRanges\":[{\"Name\":\"%s%s\",\"Values\":[\"%s\",\"%s\"]}]}",
                 shift ? "x" : "", name, val, val);
        KN_CHECK_INT(parse(doc, &s, &e), KN_INVALID);
        if (strlen(e.msg) <= 400)
            fprintf(stderr, "short: %s\n", e.msg);
        KN_CHECK(strlen(e.msg) > 400); /* long enough to have been cut */
        const unsigned char *p = (const unsigned char *)e.msg;
        bool ok = true;
        while (*p && ok) { /* strict UTF-8 */
            int n = *p < 0x80 ? 0 : *p >= 0xc2 && *p <= 0xdf ? 1 : *p >= 0xe0 && *p <= 0xef ? 2
                    : *p >= 0xf0 && *p <= 0xf4 ? 3 : -1;
            ok = n >= 0;
            for (int i = 1; ok && i <= n; i++)
                ok = p[i] >= 0x80 && p[i] <= 0xbf;
            p += ok ? n + 1 : 0;
        }
        if (!ok)
            fprintf(stderr, "message not UTF-8 (shift %d): %s\n", shift, e.msg);
        KN_CHECK(ok);
    }

    static const char *const bad[] = {
        "{\"CategoricalParameterRanges\":[{\"Name\":\"a\\nb\",\"Values\":[\"x\"]},"
        "{\"Name\":\"a\\nb\",\"Values\":[\"y\"]}]}",
        "{\"CategoricalParameterRanges\":[{\"Name\":\"c\",\"Values\":[\"x\\u0007\\n\",\"x\\u0007\\n\"]}]}",
        "{\"ContinuousParameterRanges\":[{\"Name\":\"\\r\\n\u00e9\",\"MinValue\":\"1\",\"MaxValue\":\"0\"}]}",
        "{\"ContinuousParameterRanges\":[{\"Name\":\"x\",\"MinValue\":\"1\",\"MaxValue\":\"0\"}]\n\x01",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        KN_CHECK_INT(parse(bad[i], &s, &e), KN_INVALID);
        for (const char *c = e.msg; *c; c++)
            if ((unsigned char)*c < 0x20 || *c == 0x7f) {
                fprintf(stderr, "bad %zu: byte 0x%02x in '%s'\n", i, (unsigned char)*c, e.msg);
                KN_CHECK(0);
                break;
            }
    }
}

static void test_grid(void)
{
    kn_tune_space s;
    kn_err e = {0};
    KN_REQUIRE(parse("{\"CategoricalParameterRanges\":[{\"Name\":\"opt\",\"Values\":[\"sgd\","
                     "\"adam\",\"adamw\"]},{\"Name\":\"bs\",\"Values\":[\"32\",\"64\"]}]}",
                     &s, &e) == KN_OK);
    kn_tuner_params p = kn_tuner_default_params();
    p.strategy = KN_TUNE_GRID;
    p.max_jobs = 5;
    kn_tuner *t = NULL;
    KN_CHECK_INT(kn_tuner_new(&s, &p, &t, &e), KN_INVALID);
    KN_CHECK_CONTAINS(e.msg, "must equal the number of combinations, 6");
    p.max_jobs = 0;
    p.max_parallel = 4;
    KN_REQUIRE(kn_tuner_new(&s, &p, &t, &e) == KN_OK);
    int seen[3][2] = {{0}};
    int asked = 0;
    for (int guard = 0; guard < 100; guard++) {
        kn_tune_trial tr;
        kn_tune_ask a = kn_tuner_ask(t, &tr);
        if (a == KN_TUNE_DONE)
            break;
        if (a == KN_TUNE_WAIT) { /* four running: finish the oldest */
            for (int i = 0; i < kn_tuner_started(t); i++)
                kn_tuner_tell(t, i, 1.0, true);
            continue;
        }
        seen[(int)kn_tune_space_value(&s, 0, tr.u[0])][(int)kn_tune_space_value(&s, 1, tr.u[1])]++;
        asked++;
    }
    KN_CHECK_INT(asked, 6);
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 2; j++)
            KN_CHECK_INT(seen[i][j], 1);
    kn_tuner_free(t);
    kn_tune_space_deinit(&s);

    KN_REQUIRE(parse("{\"ContinuousParameterRanges\":[{\"Name\":\"lr\",\"MinValue\":\"0.1\","
                     "\"MaxValue\":\"1\"}]}",
                     &s, &e) == KN_OK);
    KN_CHECK_INT(kn_tuner_new(&s, &p, &t, &e), KN_INVALID);
    KN_CHECK_CONTAINS(e.msg, "categorical parameters only; 'lr'");
    kn_tune_space_deinit(&s);
}

static kn_tune_space objective_space(void)
{
    kn_tune_space s;
    kn_err e = {0};
    kn_status rc = parse("{\"ContinuousParameterRanges\":[{\"Name\":\"lr\",\"MinValue\":\"0.0001\","
                         "\"MaxValue\":\"1\",\"ScalingType\":\"Logarithmic\"},{\"Name\":\"m\","
                         "\"MinValue\":\"0\",\"MaxValue\":\"1\"}]}",
                         &s, &e);
    KN_CHECK_INT(rc, KN_OK);
    return s;
}

/* A smooth bowl with its optimum 1.0 at lr = 10^-2.3, m = 0.7. */
static double bowl(const kn_tune_space *s, const double *u)
{
    double lr = kn_tune_space_value(s, 0, u[0]), m = kn_tune_space_value(s, 1, u[1]);
    double a = log10(lr) + 2.3, b = m - 0.7;
    return 1 + 0.5 * a * a + 4 * b * b;
}

/* Trials until the objective is within 5 % of the optimum (cap if never). */
static int trials_to_optimum(kn_tune_strategy strat, uint64_t seed, int cap)
{
    kn_tune_space s = objective_space();
    kn_tuner_params p = kn_tuner_default_params();
    p.strategy = strat;
    p.max_jobs = cap;
    p.seed = seed;
    kn_tuner *t = NULL;
    kn_err e = {0};
    MUST(kn_tuner_new(&s, &p, &t, &e) == KN_OK);
    int n = cap;
    for (int i = 0; i < cap; i++) {
        kn_tune_trial tr;
        MUST(kn_tuner_ask(t, &tr) == KN_TUNE_TRIAL);
        double y = bowl(&s, tr.u);
        kn_tuner_tell(t, tr.id, y, true);
        if (y <= 1.05) {
            n = i + 1;
            break;
        }
    }
    kn_tuner_free(t);
    kn_tune_space_deinit(&s);
    return n;
}

static void test_bayesian_beats_random(void)
{
    const int seeds = 10, cap = 80;
    double sb = 0, sr = 0;
    for (int k = 1; k <= seeds; k++) {
        int b = trials_to_optimum(KN_TUNE_BAYESIAN, (uint64_t)k, cap);
        int r = trials_to_optimum(KN_TUNE_RANDOM, (uint64_t)k, cap);
        sb += b;
        sr += r;
    }
    printf("trials to within 5%% of the optimum, mean over %d seeds: Bayesian %.1f, Random %.1f\n",
           seeds, sb / seeds, sr / seeds);
    KN_CHECK(sb < sr);
}

/* Bayesian over a small categorical space, where every configuration comes
 * back many times with a noisy objective (training runs are noisy): the
 * surrogate must still find the best cell and keep choosing it. Random
 * picks it 1 time in 6; the fit once treated the repeated, differing
 * results as contradictions and did no better than random. */
static void test_bayesian_repeated_points(void)
{
    kn_tune_space s;
    kn_err e = {0};
    KN_REQUIRE(parse("{\"CategoricalParameterRanges\":[{\"Name\":\"a\",\"Values\":[\"0\",\"1\",\"2\"]},"
                     "{\"Name\":\"b\",\"Values\":[\"0\",\"1\"]}]}",
                     &s, &e) == KN_OK);
    for (int noisy = 0; noisy < 2; noisy++) {
        int best_picks = 0;
        for (uint64_t seed = 1; seed <= 5; seed++) {
            kn_tuner_params p = kn_tuner_default_params();
            p.max_jobs = 40;
            p.seed = seed;
            kn_tuner *t = NULL;
            KN_REQUIRE(kn_tuner_new(&s, &p, &t, &e) == KN_OK);
            kn_rng noise;
            kn_rng_seed(&noise, seed * 7919);
            for (int i = 0; i < 40; i++) {
                kn_tune_trial tr;
                KN_REQUIRE(kn_tuner_ask(t, &tr) == KN_TUNE_TRIAL);
                KN_CHECK(isfinite(tr.u[0]) && isfinite(tr.u[1]));
                int cell = (int)kn_tune_space_value(&s, 0, tr.u[0]) * 2 +
                           (int)kn_tune_space_value(&s, 1, tr.u[1]);
                best_picks += cell == 4;
                double y = (cell == 4 ? 0.0 : 1.0) +
                           (noisy ? 0.6 * (kn_rng_uniform(&noise) - 0.5) : 0);
                kn_tuner_tell(t, tr.id, y, true);
            }
            kn_tuner_free(t);
        }
        printf("best of 6 cells chosen in %d of 200 trials (%s objective)\n", best_picks,
               noisy ? "noisy" : "exact");
        KN_CHECK(best_picks >= 100); /* random: about 33 */
    }
    kn_tune_space_deinit(&s);
}

static void test_random_parallel_and_budget(void)
{
    kn_tune_space s = objective_space();
    kn_tuner_params p = kn_tuner_default_params();
    p.strategy = KN_TUNE_RANDOM;
    p.max_jobs = 5;
    p.max_parallel = 2;
    p.maximize = true;
    kn_tuner *t = NULL;
    kn_err e = {0};
    KN_REQUIRE(kn_tuner_new(&s, &p, &t, &e) == KN_OK);
    kn_tune_trial a, b, c;
    KN_CHECK_INT(kn_tuner_ask(t, &a), KN_TUNE_TRIAL);
    KN_CHECK_INT(kn_tuner_ask(t, &b), KN_TUNE_TRIAL);
    KN_CHECK_INT(kn_tuner_ask(t, &c), KN_TUNE_WAIT);
    kn_tuner_tell(t, a.id, 3.0, true);
    kn_tuner_tell(t, b.id, 0, false); /* a failed trial still counts */
    kn_tuner_tell(t, b.id, 9.0, true); /* told twice: ignored */
    for (int i = 0; i < 3; i++) {
        KN_CHECK_INT(kn_tuner_ask(t, &c), KN_TUNE_TRIAL);
        kn_tuner_tell(t, c.id, 5.0 + i, true);
    }
    KN_CHECK_INT(kn_tuner_ask(t, &c), KN_TUNE_DONE);
    double best;
    int id = kn_tuner_best(t, &best);
    KN_CHECK(best == 7.0); /* maximised */
    KN_CHECK_INT(id, 4);
    kn_tuner_free(t);
    kn_tune_space_deinit(&s);
}

/* Loss after r epochs: the bowl plus a term that training longer removes. */
static double with_epochs(const kn_tune_space *s, const double *u, double r)
{
    return bowl(s, u) + 3.0 / r;
}

typedef struct run_result {
    double best;
    double budget;   /* epochs trained in all */
    int stopped_early;
} run_result;

/* Random: every trial trained for the full 27 epochs. */
static run_result run_random(uint64_t seed, int jobs)
{
    kn_tune_space s = objective_space();
    kn_tuner_params p = kn_tuner_default_params();
    p.strategy = KN_TUNE_RANDOM;
    p.max_jobs = jobs;
    p.seed = seed;
    kn_tuner *t = NULL;
    kn_err e = {0};
    MUST(kn_tuner_new(&s, &p, &t, &e) == KN_OK);
    run_result r = {INFINITY, 0, 0};
    kn_tune_trial tr;
    while (kn_tuner_ask(t, &tr) == KN_TUNE_TRIAL) {
        double y = with_epochs(&s, tr.u, 27);
        r.budget += 27;
        r.best = fmin(r.best, y);
        kn_tuner_tell(t, tr.id, y, true);
    }
    kn_tuner_free(t);
    kn_tune_space_deinit(&s);
    return r;
}

/* Hyperband until its best reaches `target` (or its budget runs out);
 * promotions continue training, so they cost the extra epochs only. */
static run_result run_hyperband(uint64_t seed, double target)
{
    kn_tune_space s = objective_space();
    kn_tuner_params p = kn_tuner_default_params();
    p.strategy = KN_TUNE_HYPERBAND;
    p.max_jobs = 400;
    p.min_resource = 1;
    p.max_resource = 27;
    p.seed = seed;
    kn_tuner *t = NULL;
    kn_err e = {0};
    MUST(kn_tuner_new(&s, &p, &t, &e) == KN_OK);
    run_result r = {INFINITY, 0, 0};
    static double trained[4096];
    static bool continued[4096];
    memset(trained, 0, sizeof trained);
    memset(continued, 0, sizeof continued);
    kn_tune_trial tr;
    while (r.best > target && kn_tuner_ask(t, &tr) == KN_TUNE_TRIAL && tr.id < 4096) {
        double before = 0;
        if (tr.continues >= 0) { /* a promotion: more epochs, continued once */
            MUST(tr.continues < tr.id && !continued[tr.continues]);
            MUST(tr.resource > trained[tr.continues]);
            before = trained[tr.continues];
            continued[tr.continues] = true;
        }
        trained[tr.id] = tr.resource;
        r.budget += tr.resource - before;
        double y = with_epochs(&s, tr.u, tr.resource);
        r.best = fmin(r.best, y);
        kn_tuner_tell(t, tr.id, y, true);
    }
    /* configurations whose last trial stopped short of the full 27 epochs
     * (a trial that was continued is not where its configuration ended) */
    int n = kn_tuner_started(t);
    for (int i = 0; i < n && i < 4096; i++)
        r.stopped_early += !continued[i] && trained[i] < 27;
    kn_tuner_free(t);
    kn_tune_space_deinit(&s);
    return r;
}

static void test_hyperband(void)
{
    const int seeds = 8;
    double b_rand = 0, b_hb = 0;
    int early = 0;
    for (int k = 1; k <= seeds; k++) {
        run_result rr = run_random((uint64_t)k, 30);
        run_result hb = run_hyperband((uint64_t)k, rr.best);
        KN_CHECK(hb.best <= rr.best);
        b_rand += rr.budget;
        b_hb += hb.budget;
        early += hb.stopped_early;
    }
    printf("epochs spent for an equal best, mean over %d seeds: Hyperband %.0f, Random %.0f; "
           "trials stopped before the last rung: %d\n",
           seeds, b_hb / seeds, b_rand / seeds, early);
    KN_CHECK(b_hb < b_rand);
    KN_CHECK(early > 0);
}

static void test_hyperband_rungs(void)
{
    kn_tune_space s = objective_space();
    kn_tuner_params p = kn_tuner_default_params();
    p.strategy = KN_TUNE_HYPERBAND;
    p.max_jobs = 9;
    p.max_parallel = 9;
    kn_tuner *t = NULL;
    kn_err e = {0};
    KN_REQUIRE(kn_tuner_new(&s, &p, &t, &e) == KN_OK);
    kn_tune_trial tr[9];
    for (int i = 0; i < 9; i++) {
        KN_CHECK_INT(kn_tuner_ask(t, &tr[i]), KN_TUNE_TRIAL);
        KN_CHECK(tr[i].resource == 1 && tr[i].rung == 0 && tr[i].continues == -1);
    }
    kn_tune_trial x;
    KN_CHECK_INT(kn_tuner_ask(t, &x), KN_TUNE_WAIT); /* nine running */
    for (int i = 0; i < 9; i++)
        kn_tuner_tell(t, tr[i].id, 10.0 - i, true); /* the last ones are best */
    /* top third of nine: three promotions to 3 epochs, best first */
    int promoted = 0;
    while (kn_tuner_ask(t, &x) == KN_TUNE_TRIAL) {
        KN_CHECK(x.rung == 1 && x.resource == 3);
        KN_CHECK(x.continues >= 6);
        promoted++;
    }
    KN_CHECK_INT(promoted, 3);
    kn_tuner_free(t);
    p.min_resource = 0;
    KN_CHECK_INT(kn_tuner_new(&s, &p, &t, &e), KN_INVALID);
    kn_tune_space_deinit(&s);
}

/* A tuner rebuilt after a restart from the trials it had handed out
 * continues where it was: the same next trial for Random, the budget
 * counts the restored trials, a still-running trial ends with a tell, and
 * warm-start trials inform Bayesian without spending budget. */
static void test_restore(void)
{
    kn_tune_space s;
    kn_err e = {0};
    const char *ref = "{\"ContinuousParameterRanges\":[{\"Name\":\"lr\",\"MinValue\":"
                      "\"0.001\",\"MaxValue\":\"0.1\"}],"
                      "\"CategoricalParameterRanges\":[{\"Name\":\"bs\",\"Values\":"
                      "[\"32\",\"64\",\"128\"]}]}";
    KN_REQUIRE(parse(ref, &s, &e) == KN_OK);
    kn_tuner_params p = kn_tuner_default_params();
    p.strategy = KN_TUNE_RANDOM;
    p.max_jobs = 5;
    p.max_parallel = 2;
    p.seed = 42;
    kn_tuner *a, *b;
    KN_REQUIRE(kn_tuner_new(&s, &p, &a, &e) == KN_OK);
    kn_tune_trial tr[5];
    for (int i = 0; i < 5; i++) {
        KN_REQUIRE(kn_tuner_ask(a, &tr[i]) == KN_TUNE_TRIAL);
        if (i < 4)
            kn_tuner_tell(a, tr[i].id, 1.0 + i, i != 1);
        else
            kn_tuner_tell(a, tr[i].id, 0.5, true);
    }
    KN_REQUIRE(kn_tuner_new(&s, &p, &b, &e) == KN_OK);
    /* trials 0..2 finished (1 failed), trial 3 was running at the restart */
    KN_CHECK_INT(kn_tuner_restore(b, &tr[0], KN_TUNE_SUCCEEDED, 1.0, true), 0);
    KN_CHECK_INT(kn_tuner_restore(b, &tr[1], KN_TUNE_FAILED, 0, true), 1);
    KN_CHECK_INT(kn_tuner_restore(b, &tr[2], KN_TUNE_SUCCEEDED, 3.0, true), 2);
    KN_CHECK_INT(kn_tuner_restore(b, &tr[3], KN_TUNE_RUNNING, 0, true), 3);
    kn_tune_trial next;
    KN_REQUIRE(kn_tuner_ask(b, &next) == KN_TUNE_TRIAL);
    KN_CHECK_INT(next.id, 4);
    for (int i = 0; i < s.n; i++)
        KN_CHECK(fabs(next.u[i] - tr[4].u[i]) < 1e-15);
    KN_CHECK(kn_tuner_ask(b, &next) == KN_TUNE_WAIT); /* 2 running */
    kn_tuner_tell(b, 3, 4.0, true);
    kn_tuner_tell(b, 4, 0.5, true);
    KN_CHECK(kn_tuner_ask(b, &next) == KN_TUNE_DONE); /* the budget of 5 is spent */
    double best;
    KN_CHECK_INT(kn_tuner_best(b, &best), 4);
    KN_CHECK(best == 0.5);
    kn_tuner_free(a);
    kn_tuner_free(b);

    /* warm start: parent trials count for nothing but the model */
    p.strategy = KN_TUNE_BAYESIAN;
    p.max_jobs = 2;
    KN_REQUIRE(kn_tuner_new(&s, &p, &b, &e) == KN_OK);
    for (int i = 0; i < 4; i++)
        KN_CHECK_INT(kn_tuner_restore(b, &tr[i], KN_TUNE_SUCCEEDED, 1.0 + i, false), i);
    KN_CHECK_INT(kn_tuner_best(b, &best), 0);
    int asked = 0;
    while (kn_tuner_ask(b, &next) == KN_TUNE_TRIAL) {
        asked++;
        kn_tuner_tell(b, next.id, 9.0, true);
    }
    KN_CHECK_INT(asked, 2);
    kn_tuner_free(b);
    kn_tune_space_deinit(&s);
}

int main(void)
{
    KN_RUN(test_space);
    KN_RUN(test_space_extremes);
    KN_RUN(test_grid);
    KN_RUN(test_random_parallel_and_budget);
    KN_RUN(test_bayesian_beats_random);
    KN_RUN(test_bayesian_repeated_points);
    KN_RUN(test_hyperband_rungs);
    KN_RUN(test_hyperband);
    KN_RUN(test_restore);
    return kn_test_finish();
}
