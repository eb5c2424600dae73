/* MetricDefinitions over training-log lines: the reference project's
 * `Testing Loss: ([0-9\.]+)`, SageMaker-style lazy groups, several values
 * on one line, lines that are not UTF-8 or hold NUL bytes, and the errors
 * that name the definition (bad regex with PCRE2's reason, no capture
 * group, duplicates, too many). */
#include "kennel/tune.h"
#include "kn_test.h"

#include <string.h>

typedef struct seen {
    int metric[16];
    double value[16];
    int n;
} seen;

static void collect(int metric, double value, void *arg)
{
    seen *s = arg;
    if (s->n < 16) {
        s->metric[s->n] = metric;
        s->value[s->n++] = value;
    }
}

static kn_tune_metrics *make(const char *json)
{
    kn_tune_metrics *m = NULL;
    kn_err e = {0};
    kn_status rc = kn_tune_metrics_new(json, strlen(json), &m, &e);
    if (rc)
        fprintf(stderr, "metrics: %s\n", e.msg);
    KN_CHECK_INT(rc, KN_OK);
    return m;
}

static int scan(const kn_tune_metrics *m, const char *line, seen *s)
{
    memset(s, 0, sizeof *s);
    return kn_tune_metrics_scan(m, line, strlen(line), collect, s);
}

static void test_reference_regex(void)
{
    kn_tune_metrics *m = make("[{\"Name\":\"Test Loss\",\"Regex\":\"Testing Loss: ([0-9\\\\.]+)\"},"
                              "{\"Name\":\"Test Accuracy\",\"Regex\":\"Testing Accuracy: ([0-9\\\\.]+)\"}]");
    KN_REQUIRE(m);
    KN_CHECK_INT(kn_tune_metrics_count(m), 2);
    KN_CHECK_STR(kn_tune_metrics_name(m, 1), "Test Accuracy");
    KN_CHECK_INT(kn_tune_metrics_find(m, "Test Loss"), 0);
    KN_CHECK_INT(kn_tune_metrics_find(m, "nope"), -1);
    seen s;
    KN_CHECK_INT(scan(m, "Testing Loss: 0.8421", &s), 1);
    KN_CHECK(s.metric[0] == 0 && s.value[0] == 0.8421);
    KN_CHECK_INT(scan(m, "epoch 3 Testing Accuracy: 0.5560 (chance 0.083)", &s), 1);
    KN_CHECK(s.metric[0] == 1 && s.value[0] == 0.556);
    KN_CHECK_INT(scan(m, "Training Loss: 1.2", &s), 0);
    KN_CHECK_INT(scan(m, "Testing Loss: .", &s), 0); /* not a number */
    KN_CHECK_INT(scan(m, "Testing Loss: 1.2.3", &s), 0);
    kn_tune_metrics_free(m);
}

static void test_sagemaker_style(void)
{
    kn_tune_metrics *m = make("[{\"Name\":\"train:loss\",\"Regex\":\"Train_loss=(.*?);\"},"
                              "{\"Name\":\"lr\",\"Regex\":\"(?:lr|learning_rate)\\\\s*=\\\\s*(\\\\d+(?:\\\\.\\\\d+)?(?:e-?\\\\d+)?)\"}]");
    KN_REQUIRE(m);
    seen s;
    KN_CHECK_INT(scan(m, "Train_loss=0.25; Train_loss=0.125; lr = 1e-3", &s), 3);
    KN_CHECK(s.metric[0] == 0 && s.value[0] == 0.25);
    KN_CHECK(s.metric[1] == 0 && s.value[1] == 0.125);
    KN_CHECK(s.metric[2] == 1 && s.value[2] == 1e-3);
    /* not UTF-8, and a NUL byte inside the line */
    const char raw[] = "\xff\xfe Train_loss=7;\0 Train_loss=8;";
    memset(&s, 0, sizeof s);
    KN_CHECK_INT(kn_tune_metrics_scan(m, raw, sizeof raw - 1, collect, &s), 2);
    KN_CHECK(s.value[0] == 7 && s.value[1] == 8);
    kn_tune_metrics_free(m);
}

static void test_errors(void)
{
    static const struct {
        const char *json, *says;
    } bad[] = {
        {"{", "not valid JSON"},
        {"{}", "must be a list"},
        {"[{\"Regex\":\"(x)\"}]", "MetricDefinitions[0].Name"},
        {"[{\"Name\":\"a\"}]", "MetricDefinitions[0].Regex (a)"},
        {"[{\"Name\":\"a\",\"Regex\":\"loss: ([0-9\"}]", "does not compile: missing terminating ]"},
        {"[{\"Name\":\"a\",\"Regex\":\"loss: [0-9]+\"}]", "no capture group"},
        {"[{\"Name\":\"a\",\"Regex\":\"(x)\"},{\"Name\":\"a\",\"Regex\":\"(y)\"}]", "defined twice"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        kn_tune_metrics *m = NULL;
        kn_err e = {0};
        KN_CHECK_INT(kn_tune_metrics_new(bad[i].json, strlen(bad[i].json), &m, &e), KN_INVALID);
        KN_CHECK(m == NULL);
        if (!strstr(e.msg, bad[i].says))
            fprintf(stderr, "case %zu: '%s' lacks '%s'\n", i, e.msg, bad[i].says);
        KN_CHECK(strstr(e.msg, bad[i].says) != NULL);
    }
    char big[8192];
    size_t o = (size_t)snprintf(big, sizeof big, "[");
    for (int i = 0; i < 41; i++)
        o += (size_t)snprintf(big + o, sizeof big - o, "%s{\"Name\":\"m%d\",\"Regex\":\"(x)\"}",
                              i ? "," : "", i);
    snprintf(big + o, sizeof big - o, "]");
    kn_tune_metrics *m = NULL;
    kn_err e = {0};
    KN_CHECK_INT(kn_tune_metrics_new(big, strlen(big), &m, &e), KN_INVALID);
    KN_CHECK_CONTAINS(e.msg, "at most 40");
}

/* A pattern with exponential backtracking (2^40 paths) stops at the match
 * limit instead of hanging the log reader. */
static void test_match_limit(void)
{
    kn_tune_metrics *m = make("[{\"Name\":\"evil\",\"Regex\":\"^(a|a)+(\\\\d)\"}]");
    KN_REQUIRE(m);
    char line[64];
    memset(line, 'a', 40);
    strcpy(line + 40, "!");
    seen s;
    KN_CHECK_INT(scan(m, line, &s), 0); /* (CTest's timeout catches a hang) */
    kn_tune_metrics_free(m);
}

/* A match whose value group did not take part ("(\\d+)?" on "loss=;")
 * yields nothing but does not end the scan of the line. */
static void test_optional_group(void)
{
    kn_tune_metrics *m = make("[{\"Name\":\"loss\",\"Regex\":\"loss=(\\\\d+)?;\"}]");
    KN_REQUIRE(m);
    seen s;
    KN_CHECK_INT(scan(m, "loss=; loss=5; loss=; loss=7;", &s), 2);
    KN_CHECK(s.n == 2 && s.value[0] == 5 && s.value[1] == 7);
    kn_tune_metrics_free(m);
}

/* Messages quote names the user sent: they stay one printable line. */
static void test_messages_one_line(void)
{
    static const char *const docs[] = {
        "[{\"Name\":\"a\\nb\\u0007\",\"Regex\":\"x\"}]",
        "[{\"Name\":\"a\\r\\nb\",\"Regex\":\"(\"}]",
        "[{\"Name\":\"l\\n\",\"Regex\":\"(\\\\d)\"},{\"Name\":\"l\\n\",\"Regex\":\"(x)\"}]",
        "[{\"Name\":\"\u00e9\\t\",\"Regex\":\"\"}]",
    };
    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
        kn_tune_metrics *m = NULL;
        kn_err e = {0};
        KN_CHECK_INT(kn_tune_metrics_new(docs[i], strlen(docs[i]), &m, &e), KN_INVALID);
        KN_CHECK(m == NULL && e.msg[0]);
        for (const char *c = e.msg; *c; c++)
            if ((unsigned char)*c < 0x20 || *c == 0x7f) {
                fprintf(stderr, "doc %zu: byte 0x%02x in '%s'\n", i, (unsigned char)*c, e.msg);
                KN_CHECK(0);
                break;
            }
    }
}

int main(void)
{
    KN_RUN(test_reference_regex);
    KN_RUN(test_sagemaker_style);
    KN_RUN(test_errors);
    KN_RUN(test_match_limit);
    KN_RUN(test_optional_group);
    KN_RUN(test_messages_one_line);
    return kn_test_finish();
}
