/* SageMaker training and tuning job operations, and kennel's routes for a
 * training job's log and metric series:
 *   GET /kennel/training-jobs/{TrainingJobName}/logs     text/plain
 *   GET /kennel/training-jobs/{TrainingJobName}/metrics  {"Metric": [[time, value], ...]}
 * The jobs module validates and answers (kn_jobs_call); this file only
 * carries requests to it. Thread-safe: no state. */
#include "api_int.h"

#include "kennel/jobs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static kn_status need_jobs(kn_api_call *c)
{
    if (c->api->jobs)
        return KN_OK;
    c->err_code = "ServiceUnavailable";
    c->err_http = 503;
    return kn_err_set(&c->err, KN_INTERNAL, "This kennel server does not run training jobs.");
}

kn_status kn_sm__jobs(kn_api_call *c)
{
    kn_status s = need_jobs(c);
    if (s)
        return s;
    char *in = json_dumps(c->input, JSON_COMPACT);
    if (!in)
        return kn_err_set(&c->err, KN_NOMEM, "out of memory");
    char *out = NULL;
    s = kn_jobs_call(c->api->jobs, c->match->route->op, in, &out, &c->err);
    free(in);
    if (s)
        return s;
    json_error_t je;
    c->output = json_loads(out, 0, &je);
    free(out);
    return c->output ? KN_OK : kn_err_set(&c->err, KN_INTERNAL, "bad jobs answer: %s", je.text);
}

static kn_status job_name(kn_api_call *c, char *name, size_t n)
{
    if (c->match->n_params < 1 || !kn_api__url_decode(c->match->params[0].value, name, n) ||
        !kn_val_is_name(name))
        return kn_err_set(&c->err, KN_INVALID, "The training job name in the path is not valid");
    return KN_OK;
}

kn_status kn_api__job_logs(kn_api_call *c)
{
    char name[256];
    kn_status s = need_jobs(c);
    if (s || (s = job_name(c, name, sizeof name)))
        return s;
    kn_api_response *r = c->resp;
    r->body.len = 0;
    if ((s = kn_jobs_log(c->api->jobs, name, &r->body, &c->err)))
        return s;
    r->status = 200;
    snprintf(r->content_type, sizeof r->content_type, "text/plain; charset=utf-8");
    c->raw_response = true;
    return KN_OK;
}

kn_status kn_api__job_metrics(kn_api_call *c)
{
    char name[256];
    kn_status s = need_jobs(c);
    if (s || (s = job_name(c, name, sizeof name)))
        return s;
    char *text = NULL;
    if ((s = kn_jobs_series(c->api->jobs, name, &text, &c->err)))
        return s;
    c->output = json_loads(text, 0, NULL);
    free(text);
    return c->output ? KN_OK : kn_err_set(&c->err, KN_NOMEM, "out of memory");
}
