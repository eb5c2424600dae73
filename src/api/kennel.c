/* kennel's own routes next to the AWS ones (REST, JSON answers, errors in
 * the REST-JSON shape):
 *   GET /kennel/health                           status, data dir, clock
 *   GET /metrics                                 Prometheus text (the fleet's figures)
 *   GET /kennel/endpoints/{EndpointName}/metrics per-minute series of every
 *       variant over the last `minutes` clock minutes (query, default 60,
 *       at most 1440): Invocations, InvocationsPerInstance, ModelLatency and
 *       OverheadLatency (mean, microseconds), Invocation4XXErrors,
 *       Invocation5XXErrors, InstanceCount. Minutes without traffic have no
 *       datapoint, as in CloudWatch.
 * Thread-safe: no state.
 */
#include "api_int.h"
#include "kennel/auth.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

kn_status kn_api__health(kn_api_call *c)
{
    c->output = json_pack("{s:s, s:s, s:f, s:f, s:s, s:s}", "status", "ok", "data_dir",
                          kn_platform_data_dir(c->api->platform), "clock",
                          kn_clock_wall(c->api->clock), "clock_rate",
                          kn_clock_rate(c->api->clock), "region",
                          kn_registry_region(c->api->registry), "account",
                          kn_registry_account(c->api->registry));
    return c->output ? KN_OK : kn_err_set(&c->err, KN_NOMEM, "out of memory");
}

kn_status kn_api__endpoint_metrics(kn_api_call *c)
{
    c->err_code = "ValidationError";
    char name[256];
    if (c->match->n_params < 1 ||
        !kn_api__url_decode(c->match->params[0].value, name, sizeof name) || !kn_val_is_name(name))
        return kn_err_set(&c->err, KN_INVALID, "The endpoint name in the path is not valid");
    long minutes = 60;
    char v[32];
    if (c->req->query &&
        kn_api__form_get(c->req->query, strlen(c->req->query), "minutes", v, sizeof v)) {
        char *end;
        minutes = strtol(v, &end, 10);
        if (!*v || *end || minutes < 1 || minutes > 1440)
            return kn_err_set(&c->err, KN_INVALID, "minutes must be in [1, 1440], not '%s'", v);
    }
    kn_endpoint_rec ep;
    kn_status s = kn_registry_endpoint_get(c->api->registry, name, &ep, &c->err);
    if (s)
        return s;
    int64_t now = (int64_t)floor(kn_clock_wall(c->api->clock) / 60.0);
    json_t *vars = json_object();
    for (int i = 0; !s && i < ep.n_variants; i++) {
        kn_variant_minute *m;
        size_t n;
        if ((s = kn_registry_metrics_get(c->api->registry, ep.name, ep.variants[i].variant_name,
                                         now - minutes, now, &m, &n, &c->err)))
            break;
        json_t *series = json_array();
        for (size_t k = 0; k < n; k++)
            json_array_append_new(
                series,
                json_pack("{s:I, s:I, s:f, s:f, s:f, s:f, s:f, s:I, s:I, s:i}", "Minute",
                          (json_int_t)(m[k].minute * 60), "Invocations",
                          (json_int_t)m[k].invocations, "InvocationsPerInstance",
                          m[k].per_instance, "ModelLatency", m[k].model_latency_us,
                          "OverheadLatency", m[k].overhead_latency_us, "LatencyP50",
                          m[k].latency_p50_us, "LatencyP99", m[k].latency_p99_us,
                          "Invocation4XXErrors",
                          (json_int_t)m[k].errors_4xx, "Invocation5XXErrors",
                          (json_int_t)m[k].errors_5xx, "InstanceCount", m[k].instances));
        json_object_set_new(vars, ep.variants[i].variant_name, series);
        free(m);
    }
    if (!s)
        c->output = json_pack("{s:s, s:f, s:o}", "EndpointName", ep.name, "Clock",
                              kn_clock_wall(c->api->clock), "Variants", vars);
    else
        json_decref(vars);
    kn_endpoint_rec_deinit(&ep);
    return s;
}

kn_status kn_api__prometheus(kn_api_call *c)
{
    if (!c->api->fleet) {
        c->err_code = "ServiceUnavailable";
        c->err_http = 503;
        return kn_err_set(&c->err, KN_INTERNAL, "This kennel server does not run endpoints.");
    }
    kn_api_response *r = c->resp;
    r->body.len = 0;
    kn_status s = kn_fleet_prometheus(c->api->fleet, &r->body);
    if (!s && c->api->fn)
        s = kn_fn_prometheus(c->api->fn, &r->body);
    if (s)
        return kn_err_set(&c->err, s, "cannot produce the metrics");
    r->status = 200;
    snprintf(r->content_type, sizeof r->content_type, "text/plain; version=0.0.4");
    c->raw_response = true;
    return KN_OK;
}

/* The instance-type table (vCPU, memory, hourly price): what the console
 * and `kennel endpoints` use to show what a deployment would cost on AWS. */
kn_status kn_api__instance_types(kn_api_call *c)
{
    size_t n;
    const kn_instance_type *t = kn_instance_types(&n);
    json_t *items = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(items, json_pack("{s:s, s:i, s:i, s:f}", "InstanceType", t[i].name,
                                               "VCpu", t[i].vcpu, "MemoryMiB", t[i].memory_mib,
                                               "UsdPerHour", t[i].usd_per_hour));
    c->output = json_pack("{s:o}", "InstanceTypes", items);
    return c->output ? KN_OK : kn_err_set(&c->err, KN_NOMEM, "out of memory");
}

/* POST /kennel/iam/lint (body: a policy document; ?kind=trust for a role's
 * trust policy): the findings `kennel iam lint` prints, for the console's
 * IAM page. A document that does not parse is MalformedPolicyDocument. */
kn_status kn_api__iam_lint(kn_api_call *c)
{
    kn_policy_kind kind = KN_POLICY_IDENTITY;
    char v[16];
    if (c->req->query && kn_api__form_get(c->req->query, strlen(c->req->query), "kind", v, sizeof v))
        kind = strcmp(v, "trust") == 0 ? KN_POLICY_RESOURCE : KN_POLICY_IDENTITY;
    kn_lint_finding *f = NULL;
    size_t n = 0;
    kn_status s = kn_policy_lint((const char *)c->req->body, c->req->body_len, kind, &f, &n,
                                 &c->err);
    if (s) {
        c->err_code = "MalformedPolicyDocument";
        return s;
    }
    json_t *items = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(
            items, json_pack("{s:s, s:i, s:s, s:s, s:s}", "Level",
                             f[i].level == KN_LINT_ERROR ? "error" : "warning", "Statement",
                             f[i].statement, "Sid", f[i].sid, "Code", f[i].code, "Message",
                             f[i].message));
    free(f);
    c->output = json_pack("{s:o}", "Findings", items);
    return c->output ? KN_OK : kn_err_set(&c->err, KN_NOMEM, "out of memory");
}

/* GET /kennel/audit[?decision=Deny][&principal=P][&action=A][&limit=N]: the
 * newest N (default 50, at most 1000) audit records, newest first, whose
 * decision contains `decision` (Deny matches ImplicitDeny and ExplicitDeny)
 * — what `kennel audit` prints, for the console's IAM page. */
typedef struct audit_ctx {
    json_t *items;
    const char *decision;
} audit_ctx;

static kn_status audit_row(const kn_audit_rec *r, void *ud)
{
    audit_ctx *a = ud;
    if (a->decision[0] && !strstr(r->decision, a->decision))
        return KN_OK;
    json_array_insert_new(
        a->items, 0,
        json_pack("{s:f, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "Time", r->time, "Principal",
                  r->principal, "Action", r->action, "Resource", r->resource, "SourceAddress",
                  r->source, "Decision", r->decision, "Statement", r->statement, "ErrorCode",
                  r->error_code));
    return KN_OK;
}

kn_status kn_api__audit_events(kn_api_call *c)
{
    char decision[32] = "", principal[256] = "", action[128] = "", lim[16] = "50";
    const char *q = c->req->query ? c->req->query : "";
    size_t ql = strlen(q);
    kn_api__form_get(q, ql, "decision", decision, sizeof decision);
    kn_api__form_get(q, ql, "principal", principal, sizeof principal);
    kn_api__form_get(q, ql, "action", action, sizeof action);
    kn_api__form_get(q, ql, "limit", lim, sizeof lim);
    char *end;
    long limit = strtol(lim, &end, 10);
    if (!*lim || *end || limit < 1 || limit > 1000) {
        c->err_code = "ValidationError";
        return kn_err_set(&c->err, KN_INVALID, "limit must be in [1, 1000], not '%s'", lim);
    }
    /* filter on decision here: read enough newest rows to find `limit` */
    kn_audit_query aq = {.principal = principal[0] ? principal : NULL,
                         .action = action[0] ? action : NULL,
                         .limit = decision[0] ? 20000 : (int)limit};
    audit_ctx a = {.items = json_array(), .decision = decision};
    kn_iam_audit_flush(c->api->iam); /* rows still queued for the writer */
    kn_status s = kn_audit_read(kn_platform_data_dir(c->api->platform), &aq, audit_row, &a,
                                &c->err);
    if (s) {
        json_decref(a.items);
        return s;
    }
    while (json_array_size(a.items) > (size_t)limit)
        json_array_remove(a.items, json_array_size(a.items) - 1);
    c->output = json_pack("{s:o}", "Events", a.items);
    return c->output ? KN_OK : kn_err_set(&c->err, KN_NOMEM, "out of memory");
}
