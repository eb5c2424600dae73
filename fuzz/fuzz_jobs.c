/* Fuzz target for the training and tuning job operations' request parsing
 * and validation (kn_jobs_call: CreateTrainingJob's AlgorithmSpecification,
 * channels, resource config and hyperparameters; the tuning job's config,
 * ranges, objective, warm start; the list calls' paging), against a real
 * platform in a temp data dir with the jobs module paused, so nothing runs.
 *
 * Input: line 1 = the operation name, the rest = the JSON body.
 * Invariants (abort on violation): success comes with a JSON object answer;
 * failure with a status and a non-empty message; never a crash. */
#include "fuzz_common.h"
#include "kennel/jobs.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static kn_platform *plat;
static kn_jobs *jobs;
static char root[512];

static void cleanup(void)
{
    kn_jobs_stop(jobs);
    kn_fuzz_platform_close(plat, root);
}

static bool setup(void)
{
    if (jobs)
        return true;
    if (!kn_fuzz_platform_open("jobs", root, sizeof root, &plat))
        return false;
    kn_jobs_params jp = kn_jobs_default_params();
    jp.bin = "/bin/false";
    jp.paused = true;
    kn_err e;
    if (kn_jobs_start(plat, &jp, &jobs, &e))
        return false;
    atexit(cleanup);
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!setup())
        abort();
    const uint8_t *nl = memchr(data, '\n', size);
    size_t n = nl ? (size_t)(nl - data) : size;
    char op[128];
    snprintf(op, sizeof op, "%.*s", (int)(n < 127 ? n : 127), (const char *)data);
    const uint8_t *body = nl ? nl + 1 : data + size;
    size_t blen = (size_t)(data + size - body);
    char *in = malloc(blen + 1);
    if (!in)
        return 0;
    memcpy(in, body, blen);
    in[blen] = '\0';
    char *out = NULL;
    kn_err e;
    kn_err_clear(&e);
    kn_status s = kn_jobs_call(jobs, op, in, &out, &e);
    if (s == KN_OK) {
        json_t *j = out ? json_loads(out, 0, NULL) : NULL;
        if (!json_is_object(j))
            abort();
        json_decref(j);
    } else if (!e.msg[0] || out) {
        abort();
    }
    free(out);
    free(in);
    return 0;
}
