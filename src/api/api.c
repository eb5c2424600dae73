/* The front door's request handling: protocol detection, the route table,
 * dispatch to handlers and the AWS error shapes.
 *
 *   JSON 1.1    POST / with X-Amz-Target: <Prefix>.<Op>  -> body {"__type","message"}
 *   REST-JSON   method + path template                   -> x-amzn-ErrorType + JSON body
 *   Query       form body with Action=                   -> XML ErrorResponse
 *
 * The SigV4 Authorization header is parsed (not yet verified): a malformed
 * one is refused, and its credential scope must name the service of the
 * operation called. kn_api_handle never fails; every problem becomes a
 * response. Thread-safe: a kn_api is read-only after creation.
 */
#include "api_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

/* Every operation kennel answers, with its IAM action. One table: adding an
 * operation is adding a row. */
static const kn_api_route routes[] = {
#define SM(op, fn)                                                                           \
    {KN_PROTO_JSON, "sagemaker", #op, "SageMaker." #op, NULL, NULL, NULL, "sagemaker:" #op, fn}
    SM(CreateModel, kn_sm__create_model),
    SM(DescribeModel, kn_sm__describe_model),
    SM(DeleteModel, kn_sm__delete_model),
    SM(ListModels, kn_sm__list_models),
    SM(CreateEndpointConfig, kn_sm__create_endpoint_config),
    SM(DescribeEndpointConfig, kn_sm__describe_endpoint_config),
    SM(DeleteEndpointConfig, kn_sm__delete_endpoint_config),
    SM(ListEndpointConfigs, kn_sm__list_endpoint_configs),
    SM(CreateEndpoint, kn_sm__create_endpoint),
    SM(DescribeEndpoint, kn_sm__describe_endpoint),
    SM(DeleteEndpoint, kn_sm__delete_endpoint),
    SM(ListEndpoints, kn_sm__list_endpoints),
    SM(UpdateEndpoint, kn_sm__update_endpoint),
    SM(UpdateEndpointWeightsAndCapacities, kn_sm__update_endpoint_weights_and_capacities),
    SM(CreateTrainingJob, kn_sm__jobs),
    SM(DescribeTrainingJob, kn_sm__jobs),
    SM(ListTrainingJobs, kn_sm__jobs),
    SM(StopTrainingJob, kn_sm__jobs),
    SM(CreateHyperParameterTuningJob, kn_sm__jobs),
    SM(DescribeHyperParameterTuningJob, kn_sm__jobs),
    SM(ListHyperParameterTuningJobs, kn_sm__jobs),
    SM(ListTrainingJobsForHyperParameterTuningJob, kn_sm__jobs),
    SM(StopHyperParameterTuningJob, kn_sm__jobs),
#undef SM
#define AAS(op, fn)                                                                          \
    {KN_PROTO_JSON, "application-autoscaling", #op, "AnyScaleFrontendService." #op, NULL,     \
     NULL, NULL, "application-autoscaling:" #op, fn}
    AAS(RegisterScalableTarget, kn_aas__register_scalable_target),
    AAS(DescribeScalableTargets, kn_aas__describe_scalable_targets),
    AAS(DeregisterScalableTarget, kn_aas__deregister_scalable_target),
    AAS(PutScalingPolicy, kn_aas__put_scaling_policy),
    AAS(DescribeScalingPolicies, kn_aas__describe_scaling_policies),
    AAS(DeleteScalingPolicy, kn_aas__delete_scaling_policy),
    AAS(DescribeScalingActivities, kn_aas__describe_scaling_activities),
#undef AAS
#define IAM(op, fn)                                                                          \
    {KN_PROTO_QUERY, "iam", #op, NULL, NULL, NULL, "2010-05-08", "iam:" #op, fn}
    IAM(CreateUser, kn_iam__create_user),
    IAM(CreateAccessKey, kn_iam__create_access_key),
    IAM(DeleteAccessKey, kn_iam__delete_access_key),
    IAM(ListAccessKeys, kn_iam__list_access_keys),
    IAM(CreateRole, kn_iam__create_role),
    IAM(GetRole, kn_iam__get_role),
    IAM(DeleteRole, kn_iam__delete_role),
    IAM(PutRolePolicy, kn_iam__put_role_policy),
    IAM(GetRolePolicy, kn_iam__get_role_policy),
    IAM(DeleteRolePolicy, kn_iam__delete_role_policy),
    IAM(CreatePolicy, kn_iam__create_policy),
    IAM(AttachRolePolicy, kn_iam__attach_role_policy),
    IAM(DetachRolePolicy, kn_iam__detach_role_policy),
    IAM(AttachUserPolicy, kn_iam__attach_user_policy),
    IAM(PutUserPolicy, kn_iam__put_user_policy),
    IAM(ListUsers, kn_iam__list_users),
    IAM(ListRoles, kn_iam__list_roles),
    IAM(ListAttachedUserPolicies, kn_iam__list_attached_user_policies),
    IAM(ListAttachedRolePolicies, kn_iam__list_attached_role_policies),
    IAM(ListUserPolicies, kn_iam__list_user_policies),
    IAM(ListRolePolicies, kn_iam__list_role_policies),
#undef IAM
    {KN_PROTO_QUERY, "sts", "AssumeRole", NULL, NULL, NULL, "2011-06-15", "sts:AssumeRole",
     kn_sts__assume_role},
    {KN_PROTO_QUERY, "sts", "GetCallerIdentity", NULL, NULL, NULL, "2011-06-15",
     "sts:GetCallerIdentity", kn_sts__get_caller_identity},
    {KN_PROTO_REST_JSON, "sagemaker", "InvokeEndpoint", NULL, "POST",
     "/endpoints/{EndpointName}/invocations", NULL, "sagemaker:InvokeEndpoint",
     kn_smr__invoke_endpoint},
#define LAMBDA(op, method, path, fn)                                                         \
    {KN_PROTO_REST_JSON, "lambda", #op, NULL, method, path, NULL, "lambda:" #op, fn}
    LAMBDA(CreateFunction, "POST", "/2015-03-31/functions", kn_lambda__create_function),
    LAMBDA(ListFunctions, "GET", "/2015-03-31/functions/", kn_lambda__list_functions),
    LAMBDA(GetFunction, "GET", "/2015-03-31/functions/{FunctionName}", kn_lambda__get_function),
    LAMBDA(DeleteFunction, "DELETE", "/2015-03-31/functions/{FunctionName}",
           kn_lambda__delete_function),
    LAMBDA(GetFunctionConfiguration, "GET", "/2015-03-31/functions/{FunctionName}/configuration",
           kn_lambda__get_function_configuration),
    LAMBDA(UpdateFunctionConfiguration, "PUT",
           "/2015-03-31/functions/{FunctionName}/configuration",
           kn_lambda__update_function_configuration),
    LAMBDA(UpdateFunctionCode, "PUT", "/2015-03-31/functions/{FunctionName}/code",
           kn_lambda__update_function_code),
    LAMBDA(PublishVersion, "POST", "/2015-03-31/functions/{FunctionName}/versions",
           kn_lambda__publish_version),
    LAMBDA(ListVersionsByFunction, "GET", "/2015-03-31/functions/{FunctionName}/versions",
           kn_lambda__list_versions),
    LAMBDA(CreateAlias, "POST", "/2015-03-31/functions/{FunctionName}/aliases",
           kn_lambda__create_alias),
    LAMBDA(ListAliases, "GET", "/2015-03-31/functions/{FunctionName}/aliases",
           kn_lambda__list_aliases),
    LAMBDA(GetAlias, "GET", "/2015-03-31/functions/{FunctionName}/aliases/{Name}",
           kn_lambda__get_alias),
    LAMBDA(UpdateAlias, "PUT", "/2015-03-31/functions/{FunctionName}/aliases/{Name}",
           kn_lambda__update_alias),
    LAMBDA(DeleteAlias, "DELETE", "/2015-03-31/functions/{FunctionName}/aliases/{Name}",
           kn_lambda__delete_alias),
    /* the one Lambda operation whose IAM action is not named after it */
    {KN_PROTO_REST_JSON, "lambda", "Invoke", NULL, "POST",
     "/2015-03-31/functions/{FunctionName}/invocations", NULL, "lambda:InvokeFunction",
     kn_lambda__invoke},
    LAMBDA(PutFunctionConcurrency, "PUT", "/2017-10-31/functions/{FunctionName}/concurrency",
           kn_lambda__put_function_concurrency),
    LAMBDA(DeleteFunctionConcurrency, "DELETE",
           "/2017-10-31/functions/{FunctionName}/concurrency",
           kn_lambda__delete_function_concurrency),
    LAMBDA(GetFunctionConcurrency, "GET", "/2019-09-30/functions/{FunctionName}/concurrency",
           kn_lambda__get_function_concurrency),
    LAMBDA(PutProvisionedConcurrencyConfig, "PUT",
           "/2019-09-30/functions/{FunctionName}/provisioned-concurrency",
           kn_lambda__put_provisioned),
    LAMBDA(GetProvisionedConcurrencyConfig, "GET",
           "/2019-09-30/functions/{FunctionName}/provisioned-concurrency",
           kn_lambda__get_provisioned),
    LAMBDA(DeleteProvisionedConcurrencyConfig, "DELETE",
           "/2019-09-30/functions/{FunctionName}/provisioned-concurrency",
           kn_lambda__delete_provisioned),
    LAMBDA(GetAccountSettings, "GET", "/2016-08-19/account-settings/",
           kn_lambda__get_account_settings),
    LAMBDA(ListTags, "GET", "/2017-03-31/tags/{ARN}", kn_lambda__list_tags),
    LAMBDA(TagResource, "POST", "/2017-03-31/tags/{ARN}", kn_lambda__tag_resource),
    LAMBDA(UntagResource, "DELETE", "/2017-03-31/tags/{ARN}", kn_lambda__untag_resource),
#undef LAMBDA
    {KN_PROTO_KENNEL, NULL, "FunctionLogs", NULL, "GET", "/kennel/functions/{FunctionName}/logs",
     NULL, "lambda:GetFunction", kn_lambda__logs},
    {KN_PROTO_KENNEL, NULL, "FunctionMetrics", NULL, "GET",
     "/kennel/functions/{FunctionName}/metrics", NULL, "lambda:GetFunction", kn_lambda__metrics},
    {KN_PROTO_KENNEL, NULL, "Health", NULL, "GET", "/kennel/health", NULL, NULL,
     kn_api__health},
    {KN_PROTO_KENNEL, NULL, "EndpointMetrics", NULL, "GET",
     "/kennel/endpoints/{EndpointName}/metrics", NULL, "sagemaker:DescribeEndpoint",
     kn_api__endpoint_metrics},
    {KN_PROTO_KENNEL, NULL, "Metrics", NULL, "GET", "/metrics", NULL, NULL, kn_api__prometheus},
    {KN_PROTO_KENNEL, NULL, "InstanceTypes", NULL, "GET", "/kennel/instance-types", NULL, NULL,
     kn_api__instance_types},
    {KN_PROTO_KENNEL, NULL, "LintPolicy", NULL, "POST", "/kennel/iam/lint", NULL, NULL,
     kn_api__iam_lint},
    {KN_PROTO_KENNEL, "cloudtrail", "LookupEvents", NULL, "GET", "/kennel/audit", NULL,
     "cloudtrail:LookupEvents", kn_api__audit_events},
    /* the web console's files: public, no data in them (see console.c) */
    {KN_PROTO_KENNEL, NULL, "Console", NULL, "GET", "/console/", NULL, NULL, kn_api__console},
    {KN_PROTO_KENNEL, NULL, "Console", NULL, "GET", "/console/{File}", NULL, NULL,
     kn_api__console},
    {KN_PROTO_KENNEL, NULL, "TrainingJobLogs", NULL, "GET",
     "/kennel/training-jobs/{TrainingJobName}/logs", NULL, "sagemaker:DescribeTrainingJob",
     kn_api__job_logs},
    {KN_PROTO_KENNEL, NULL, "TrainingJobMetrics", NULL, "GET",
     "/kennel/training-jobs/{TrainingJobName}/metrics", NULL, "sagemaker:DescribeTrainingJob",
     kn_api__job_metrics},
};

const kn_api_route *kn_api__routes(size_t *n)
{
    *n = sizeof routes / sizeof routes[0];
    return routes;
}

kn_api_params kn_api_default_params(void)
{
    kn_api_params p = {.max_body = KN_API_MAX_BODY, .fleet = NULL, .jobs = NULL};
    return p;
}

kn_status kn_api_new(kn_platform *p, const kn_api_params *params, kn_api **out, kn_err *e)
{
    kn_api_params d = params ? *params : kn_api_default_params();
    *out = NULL;
    kn_api *a = calloc(1, sizeof *a);
    if (!a)
        return kn_err_set(e, KN_NOMEM, "out of memory");
    a->platform = p;
    a->registry = kn_platform_registry(p);
    a->clock = kn_platform_clock(p);
    a->fleet = d.fleet;
    a->jobs = d.jobs;
    a->fn = d.fn;
    a->max_body = d.max_body ? d.max_body : KN_API_MAX_BODY;
    a->iam = d.iam;
    a->auth_time = d.auth_time;
    if (a->iam && kn_api__authz_new(&a->authz) != KN_OK) {
        free(a);
        return kn_err_set(e, KN_NOMEM, "out of memory");
    }
    *out = a;
    return KN_OK;
}

void kn_api_free(kn_api *a)
{
    if (!a)
        return;
    kn_api__authz_free(a->authz);
    free(a);
}

void kn_api_response_init(kn_api_response *r)
{
    memset(r, 0, sizeof *r);
    kn_buf_init(&r->body, (size_t)64 * 1024 * 1024);
}

void kn_api_response_deinit(kn_api_response *r)
{
    kn_buf_deinit(&r->body);
}

const char *kn_api_response_header(const kn_api_response *r, const char *name)
{
    for (int i = 0; i < r->n_headers; i++)
        if (strcasecmp(r->headers[i].name, name) == 0)
            return r->headers[i].value;
    return NULL;
}

static void add_header(kn_api_response *r, const char *name, const char *value)
{
    if (r->n_headers >= KN_API_MAX_RESP_HEADERS)
        return;
    snprintf(r->headers[r->n_headers].name, sizeof r->headers[0].name, "%s", name);
    snprintf(r->headers[r->n_headers].value, sizeof r->headers[0].value, "%s", value);
    r->n_headers++;
}

void kn_api__add_header(kn_api_response *r, const char *name, const char *value)
{
    add_header(r, name, value);
}

const char *kn_api__header(const kn_api_request *req, const char *name)
{
    for (size_t i = 0; i < req->n_headers; i++)
        if (req->headers[i].name && strcasecmp(req->headers[i].name, name) == 0)
            return req->headers[i].value;
    return NULL;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

bool kn_api__url_decode(const char *s, char *out, size_t n)
{
    size_t j = 0;
    for (size_t i = 0; s[i]; i++) {
        char c = s[i];
        if (c == '%') {
            int hi = hexval(s[i + 1]);
            int lo = hi >= 0 ? hexval(s[i + 2]) : -1;
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
                return false;
            c = (char)(hi << 4 | lo);
            i += 2;
        } else if (c == '+') {
            c = '+'; /* a path keeps '+' literally */
        }
        if (j + 1 >= n)
            return false;
        out[j++] = c;
    }
    out[j] = '\0';
    return true;
}

bool kn_api__form_get(const char *form, size_t len, const char *key, char *out, size_t n)
{
    size_t klen = strlen(key);
    const char *p = form, *end = form + len;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *stop = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(stop - p));
        if (eq && (size_t)(eq - p) == klen && memcmp(p, key, klen) == 0) {
            size_t j = 0;
            for (const char *c = eq + 1; c < stop; c++) {
                char ch = *c;
                if (ch == '+') {
                    ch = ' ';
                } else if (ch == '%') {
                    if (stop - c < 3)
                        return false;
                    int hi = hexval(c[1]), lo = hexval(c[2]);
                    if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
                        return false;
                    ch = (char)(hi << 4 | lo);
                    c += 2;
                }
                if (j + 1 >= n)
                    return false;
                out[j++] = ch;
            }
            out[j] = '\0';
            return true;
        }
        p = amp ? amp + 1 : end;
    }
    return false;
}

/* Matches a path against a template with {Label} segments. */
static bool path_match(const char *tmpl, const char *path, kn_api_match *m)
{
    m->n_params = 0;
    const char *t = tmpl, *p = path;
    while (*t && *p) {
        if (*t == '{') {
            const char *close = strchr(t, '}');
            if (!close || m->n_params >= KN_API_MAX_PATH_PARAMS)
                return false;
            size_t seg = strcspn(p, "/");
            if (seg == 0 || seg >= sizeof m->params[0].value)
                return false;
            size_t nl = (size_t)(close - t - 1);
            if (nl >= sizeof m->params[0].name)
                return false;
            memcpy(m->params[m->n_params].name, t + 1, nl);
            m->params[m->n_params].name[nl] = '\0';
            memcpy(m->params[m->n_params].value, p, seg);
            m->params[m->n_params].value[seg] = '\0';
            m->n_params++;
            t = close + 1;
            p += seg;
        } else {
            if (*t != *p)
                return false;
            t++;
            p++;
        }
    }
    return *t == '\0' && *p == '\0';
}

void kn_api__route_find(const kn_api_request *req, const kn_sigv4_auth *auth, kn_api_match *m)
{
    memset(m, 0, sizeof *m);
    const char *target = kn_api__header(req, "X-Amz-Target");
    if (target) {
        m->proto = KN_PROTO_JSON;
        snprintf(m->op, sizeof m->op, "%s", target);
        for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++)
            if (routes[i].proto == KN_PROTO_JSON && strcmp(routes[i].target, target) == 0) {
                m->route = &routes[i];
                return;
            }
        return;
    }
    const char *ct = kn_api__header(req, "Content-Type");
    if (req->method && strcmp(req->method, "POST") == 0 && ct &&
        strncasecmp(ct, "application/x-www-form-urlencoded", 33) == 0 && req->path &&
        strcmp(req->path, "/") == 0) {
        m->proto = KN_PROTO_QUERY;
        char action[64];
        if (!kn_api__form_get((const char *)req->body, req->body_len, "Action", action,
                              sizeof action))
            return;
        snprintf(m->op, sizeof m->op, "%s", action);
        /* the scope's service picks among services, else the first row */
        for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++)
            if (routes[i].proto == KN_PROTO_QUERY && strcmp(routes[i].op, action) == 0 &&
                (!m->route || (auth && strcmp(routes[i].service, auth->service) == 0)))
                m->route = &routes[i];
        return;
    }
    m->proto = KN_PROTO_REST_JSON;
    snprintf(m->op, sizeof m->op, "%s %s", req->method ? req->method : "?",
             req->path ? req->path : "?");
    const kn_api_route *best = NULL;
    kn_api_match tmp;
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        const kn_api_route *r = &routes[i];
        if (r->proto != KN_PROTO_REST_JSON && r->proto != KN_PROTO_KENNEL)
            continue;
        if (!req->method || !req->path || strcmp(r->method, req->method) != 0 ||
            !path_match(r->path, req->path, &tmp))
            continue;
        /* two services may share a path shape: the credential scope decides */
        if (!best || (auth && r->service && strcmp(r->service, auth->service) == 0)) {
            best = r;
            memcpy(m->params, tmp.params, sizeof m->params);
            m->n_params = tmp.n_params;
        }
    }
    if (best) {
        m->route = best;
        m->proto = best->proto;
    }
}

void kn_api__json_response(kn_api_response *r, int status, const char *content_type,
                           json_t *body)
{
    r->status = status;
    snprintf(r->content_type, sizeof r->content_type, "%s", content_type);
    r->body.len = 0;
    char *text = body ? json_dumps(body, JSON_COMPACT | JSON_REAL_PRECISION(17)) : NULL;
    if (text) {
        kn_buf_append(&r->body, text, strlen(text));
        free(text);
    } else {
        kn_buf_append(&r->body, "{}", 2);
    }
}

static void request_id(char *out, size_t n)
{
    uint8_t b[16] = {0};
    if (getrandom(b, sizeof b, 0) != (ssize_t)sizeof b) {
        uint64_t t = kn_now_ns();
        memcpy(b, &t, sizeof t);
    }
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
    snprintf(out, n,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
             b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
             b[15]);
}

static void xml_escape(kn_buf *b, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '<': kn_buf_append(b, "&lt;", 4); break;
        case '>': kn_buf_append(b, "&gt;", 4); break;
        case '&': kn_buf_append(b, "&amp;", 5); break;
        case '"': kn_buf_append(b, "&quot;", 6); break;
        default: kn_buf_append(b, s, 1);
        }
    }
}

/* Writes the error in the shape of the protocol the client spoke. */
static void error_response(kn_api_response *r, kn_api_proto proto, int http, const char *code,
                           const char *message, json_t *extra)
{
    snprintf(r->error_code, sizeof r->error_code, "%s", code);
    r->body.len = 0;
    r->status = http;
    if (proto == KN_PROTO_QUERY) {
        snprintf(r->content_type, sizeof r->content_type, "text/xml");
        kn_buf_appendf(&r->body, "<ErrorResponse><Error><Type>%s</Type><Code>",
                       http >= 500 ? "Receiver" : "Sender");
        xml_escape(&r->body, code);
        kn_buf_appendf(&r->body, "</Code><Message>");
        xml_escape(&r->body, message);
        kn_buf_appendf(&r->body, "</Message></Error><RequestId>%s</RequestId></ErrorResponse>",
                       r->request_id);
        return;
    }
    json_t *body = extra ? json_incref(extra) : json_object();
    json_object_set_new(body, "__type", json_string(code));
    if (!json_object_get(body, "message"))
        json_object_set_new(body, "message", json_string(message));
    kn_api__json_response(r, http,
                          proto == KN_PROTO_JSON ? "application/x-amz-json-1.1"
                                                 : "application/json",
                          body);
    json_decref(body);
    add_header(r, "x-amzn-ErrorType", code);
}

void kn_api_handle(kn_api *a, const kn_api_request *req, kn_api_response *resp)
{
    resp->body.len = 0;
    resp->n_headers = 0;
    resp->error_code[0] = resp->operation[0] = '\0';
    request_id(resp->request_id, sizeof resp->request_id);
    add_header(resp, "x-amzn-RequestId", resp->request_id);

    kn_api_call call;
    memset(&call, 0, sizeof call);
    call.api = a;
    call.req = req;
    call.resp = resp;
    kn_err_clear(&call.err);

    kn_sigv4_auth auth;
    bool have_auth = false;
    kn_status auth_status = KN_OK;
    kn_authz_result verdict;
    memset(&verdict, 0, sizeof verdict);
    /* With IAM the signature is parsed and checked by kn_api__authorize;
     * the scope's service still breaks ties between routes. */
    const char *authz = a->iam ? NULL : kn_api__header(req, "Authorization");
    if (a->iam) {
        const char *h = kn_api__header(req, "Authorization");
        kn_err ignore;
        if (h && kn_api__sigv4_parse(h, strlen(h), &auth, &ignore) == KN_OK)
            have_auth = true;
    }
    if (authz) {
        auth_status = kn_api__sigv4_parse(authz, strlen(authz), &auth, &call.err);
        have_auth = auth_status == KN_OK;
    }
    kn_api_match m;
    kn_api__route_find(req, have_auth ? &auth : NULL, &m);
    call.match = &m;
    call.auth = have_auth ? &auth : NULL;
    snprintf(resp->operation, sizeof resp->operation, "%s", m.op);

    /* A JSON 1.1 body is parsed once, here: authorization reads the members
     * that name the resource from it, the handler gets it as its input. A
     * body that does not parse is reported after authorization, so an
     * unsigned caller learns nothing from it. */
    json_error_t body_err = {0};
    if (m.proto == KN_PROTO_JSON && req->body_len && !req->body_too_large)
        call.input = json_loadb((const char *)req->body, req->body_len, JSON_REJECT_DUPLICATES,
                                &body_err);

    kn_status s = KN_OK;
    if (req->body_too_large) {
        s = kn_err_set(&call.err, KN_REQUEST_TOO_LARGE,
                       "Request must be smaller than %zu bytes for the %s operation",
                       a->max_body, m.route ? m.route->op : "requested");
        goto fail;
    }
    /* Authentication comes before everything but the size limit, so an
     * unsigned caller learns nothing about routes or resources; kennel's
     * own routes without an IAM action (health, /metrics) stay open. */
    if (a->iam && !(m.route && !m.route->iam_action)) {
        if ((s = kn_api__authorize(&call, &verdict)))
            goto fail;
    }
    if (authz && auth_status != KN_OK) {
        call.err_code = "IncompleteSignatureException";
        call.err_http = 400;
        s = call.err.code;
        goto fail;
    }
    if (!m.route) {
        if (m.proto == KN_PROTO_JSON)
            s = kn_err_set(&call.err, KN_UNKNOWN_OPERATION, "Operation %s is not supported.",
                           m.op);
        else if (m.proto == KN_PROTO_QUERY)
            s = kn_err_set(&call.err, KN_INVALID_ACTION,
                           "Could not find operation %s for this service.", m.op);
        else
            s = kn_err_set(&call.err, KN_NO_ROUTE, "No operation matches %s.", m.op);
        goto fail;
    }
    if (!a->iam && have_auth && m.route->service && strcmp(auth.service, m.route->service) != 0) {
        call.err_code = "InvalidSignatureException";
        call.err_http = 403;
        s = kn_err_set(&call.err, KN_INVALID,
                       "Credential should be scoped to correct service: '%s'.",
                       m.route->service);
        goto fail;
    }
    if (!m.route->handler) {
        call.err_code = "UnknownOperationException";
        s = kn_err_set(&call.err, KN_UNKNOWN_OPERATION,
                       "Operation %s is known but kennel does not implement it yet.", m.op);
        goto fail;
    }
    if (m.proto == KN_PROTO_JSON) {
        if (req->body_len == 0) {
            call.input = json_object();
        } else {
            if (!call.input) {
                s = kn_err_set(&call.err, KN_SERIALIZATION,
                               "The request body is not valid JSON: %s (at byte %d)",
                               body_err.text, body_err.position);
                goto fail;
            }
            if (!json_is_object(call.input)) {
                s = kn_err_set(&call.err, KN_SERIALIZATION,
                               "The request body must be a JSON object");
                goto fail;
            }
        }
    } else {
        call.input = json_object();
    }
    if (!call.input) {
        s = kn_err_set(&call.err, KN_NOMEM, "out of memory");
        goto fail;
    }
    s = m.route->handler(&call);
    if (s)
        goto fail;
    if (!call.raw_response)
        kn_api__json_response(resp, 200,
                              m.proto == KN_PROTO_JSON ? "application/x-amz-json-1.1"
                                                       : "application/json",
                              call.output);
    goto out;
fail:
    if (call.err.code == KN_OK)
        call.err.code = s;
    if (!call.err.msg[0])
        snprintf(call.err.msg, sizeof call.err.msg, "%s", kn_status_msg(s));
    error_response(resp, m.proto == KN_PROTO_KENNEL ? KN_PROTO_REST_JSON : m.proto,
                   call.err_http ? call.err_http : kn_status_http(call.err.code),
                   call.err_code ? call.err_code : kn_status_aws(call.err.code), call.err.msg,
                   call.err_extra);
out:
    if (a->iam && !(m.route && !m.route->iam_action))
        kn_api__audit(&call, &verdict);
    json_decref(call.input);
    json_decref(call.output);
    json_decref(call.err_extra);
}
