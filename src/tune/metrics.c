/* MetricDefinitions: PCRE2 regexes over training-log lines (see tune.h).
 *
 * PCRE2 rather than POSIX regex: the definitions users copy from SageMaker
 * examples use lazy quantifiers (`(.*?)`), \d and \s, which POSIX ERE does
 * not have. Each compiled pattern is shared read-only; scans create their
 * own match data, so one kn_tune_metrics serves many threads. A match
 * limit bounds the work a hostile pattern can cause per line. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "kennel/tune.h"

#include <jansson.h>
#include <math.h>
#include <pcre2.h>
#include <stdlib.h>
#include <string.h>

#define MATCH_LIMIT 100000
#define NAME_MAX_LEN 255
#define REGEX_MAX_LEN 500

typedef struct metric {
    char name[NAME_MAX_LEN + 1];
    pcre2_code *re;
} metric;

struct kn_tune_metrics {
    metric m[KN_TUNE_MAX_METRICS];
    int n;
    pcre2_match_context *mctx;
};

/* Messages quote names as sent: one printable line of valid UTF-8. */
static kn_status one_line(kn_err *e, kn_status rc)
{
    kn_text_clean(e ? e->msg : NULL);
    return rc;
}

void kn_tune_metrics_free(kn_tune_metrics *m)
{
    if (!m)
        return;
    for (int i = 0; i < m->n; i++)
        pcre2_code_free(m->m[i].re);
    pcre2_match_context_free(m->mctx);
    free(m);
}

kn_status kn_tune_metrics_new(const char *json, size_t len, kn_tune_metrics **out, kn_err *e)
{
    *out = NULL;
    json_error_t je;
    json_t *root = json_loadb(json, len, 0, &je);
    if (!root)
        return one_line(e, kn_err_set(e, KN_INVALID, "MetricDefinitions is not valid JSON: %s",
                                      je.text));
    kn_status rc = KN_OK;
    kn_tune_metrics *m = calloc(1, sizeof *m);
    if (!m || !(m->mctx = pcre2_match_context_create(NULL))) {
        rc = kn_err_set(e, KN_NOMEM, "MetricDefinitions: out of memory");
        goto out;
    }
    pcre2_set_match_limit(m->mctx, MATCH_LIMIT);
    if (!json_is_array(root) || json_array_size(root) > KN_TUNE_MAX_METRICS) {
        rc = kn_err_set(e, KN_INVALID, "MetricDefinitions must be a list of at most %d "
                        "{\"Name\", \"Regex\"} objects", KN_TUNE_MAX_METRICS);
        goto out;
    }
    for (size_t i = 0; i < json_array_size(root); i++) {
        json_t *d = json_array_get(root, i);
        const char *name = json_string_value(json_object_get(d, "Name"));
        const char *rx = json_string_value(json_object_get(d, "Regex"));
        if (!name || !*name || strlen(name) > NAME_MAX_LEN) {
            rc = kn_err_set(e, KN_INVALID,
                            "MetricDefinitions[%zu].Name must be a string of 1 to %d characters",
                            i, NAME_MAX_LEN);
            goto out;
        }
        if (!rx || !*rx || strlen(rx) > REGEX_MAX_LEN) {
            rc = kn_err_set(e, KN_INVALID,
                            "MetricDefinitions[%zu].Regex (%s) must be a string of 1 to %d "
                            "characters",
                            i, name, REGEX_MAX_LEN);
            goto out;
        }
        for (int k = 0; k < m->n; k++)
            if (!strcmp(m->m[k].name, name)) {
                rc = kn_err_set(e, KN_INVALID, "MetricDefinitions: metric '%s' is defined twice",
                                name);
                goto out;
            }
        int err;
        PCRE2_SIZE off;
        pcre2_code *re = pcre2_compile((PCRE2_SPTR)rx, PCRE2_ZERO_TERMINATED, 0, &err,
                                       &off, NULL);
        if (!re) {
            PCRE2_UCHAR msg[160];
            pcre2_get_error_message(err, msg, sizeof msg);
            rc = kn_err_set(e, KN_INVALID,
                            "MetricDefinitions[%zu].Regex (%s) does not compile: %s at offset %zu",
                            i, name, (const char *)msg, (size_t)off);
            goto out;
        }
        uint32_t groups = 0;
        pcre2_pattern_info(re, PCRE2_INFO_CAPTURECOUNT, &groups);
        if (groups < 1) {
            pcre2_code_free(re);
            rc = kn_err_set(e, KN_INVALID,
                            "MetricDefinitions[%zu].Regex (%s) has no capture group: the first "
                            "group is the value",
                            i, name);
            goto out;
        }
        metric *mt = &m->m[m->n++];
        memcpy(mt->name, name, strlen(name) + 1);
        mt->re = re;
    }
out:
    json_decref(root);
    if (rc) {
        kn_tune_metrics_free(m);
        return one_line(e, rc);
    }
    *out = m;
    return KN_OK;
}

int kn_tune_metrics_count(const kn_tune_metrics *m)
{
    return m ? m->n : 0;
}

const char *kn_tune_metrics_name(const kn_tune_metrics *m, int i)
{
    return m && i >= 0 && i < m->n ? m->m[i].name : NULL;
}

int kn_tune_metrics_find(const kn_tune_metrics *m, const char *name)
{
    for (int i = 0; m && name && i < m->n; i++)
        if (!strcmp(m->m[i].name, name))
            return i;
    return -1;
}

int kn_tune_metrics_scan(const kn_tune_metrics *m, const char *line, size_t len,
                         void (*fn)(int metric, double value, void *arg), void *arg)
{
    int found = 0;
    for (int i = 0; i < m->n; i++) {
        pcre2_match_data *md = pcre2_match_data_create_from_pattern(m->m[i].re, NULL);
        if (!md)
            return found;
        PCRE2_SIZE start = 0;
        while (start <= len) {
            /* Byte mode (patterns compiled without UTF): log lines need not
             * be valid UTF-8. A line that hits the match limit yields
             * nothing more. */
            int rc = pcre2_match(m->m[i].re, (PCRE2_SPTR)line, len, start, 0, md, m->mctx);
            if (rc < 1) /* no match, or an error such as the match limit */
                break;
            PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
            /* rc 1: matched without the value group ("(\d+)?"): nothing
             * to read here, but later matches on the line still count */
            if (rc >= 2 && ov[2] != PCRE2_UNSET && ov[3] > ov[2] && ov[3] - ov[2] < 64) {
                char num[64];
                size_t n = ov[3] - ov[2];
                memcpy(num, line + ov[2], n);
                num[n] = 0;
                char *end;
                double v = strtod(num, &end);
                while (*end == ' ' || *end == '\t')
                    end++;
                if (end != num && !*end && isfinite(v)) {
                    fn(i, v, arg);
                    found++;
                }
            }
            start = ov[1] > ov[0] ? ov[1] : ov[0] + 1; /* no empty-match loops */
        }
        pcre2_match_data_free(md);
    }
    return found;
}
