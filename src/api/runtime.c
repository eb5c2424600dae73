/* SageMaker Runtime InvokeEndpoint (REST-JSON): POST
 * /endpoints/{EndpointName}/invocations with the raw body, handed to the
 * fleet's router. The instance's answer comes back as is with
 * x-Amzn-Invoked-Production-Variant; an instance error becomes AWS's
 * ModelError (424) carrying OriginalStatusCode and OriginalMessage.
 * Errors of this service use the code ValidationError (not
 * ValidationException). Thread-safe: no state.
 */
#include "api_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Header values longer than AWS's limits are refused rather than cut. */
static const char *header_bounded(kn_api_call *c, const char *name, size_t max, bool *bad)
{
    const char *v = kn_api__header(c->req, name);
    if (v && strlen(v) > max) {
        *bad = true;
        kn_err_set(&c->err, KN_INVALID,
                   "1 validation error detected: Value at '%s' failed to satisfy constraint: "
                   "Member must have length less than or equal to %zu",
                   name, max);
    }
    return v;
}

/* The message of an instance's error body: its JSON "message" when there
 * is one, else the text itself (bounded). */
static void original_message(const kn_buf *b, char *out, size_t n)
{
    json_t *j = json_loadb((const char *)b->data, b->len, 0, NULL);
    const char *m = j ? json_string_value(json_object_get(j, "message")) : NULL;
    if (m)
        snprintf(out, n, "%s", m);
    else
        snprintf(out, n, "%.*s", (int)(b->len < n ? b->len : n - 1), b->data ? (const char *)b->data : "");
    json_decref(j);
}

static kn_status model_error(kn_api_call *c, const char *endpoint, int status,
                             const char *original, const char *variant)
{
    const char *region = kn_registry_region(c->api->registry);
    const char *account = kn_registry_account(c->api->registry);
    char log_arn[512];
    snprintf(log_arn, sizeof log_arn,
             "arn:aws:logs:%s:%s:log-group:/aws/sagemaker/Endpoints/%s", region, account,
             endpoint);
    bool client = status >= 400 && status < 500;
    char msg[1400];
    snprintf(msg, sizeof msg,
             "Received %s error (%d) from %s with message \"%.900s\". See the instance logs in "
             "the kennel data directory (instances/%s) for more information.",
             client ? "client" : "server", status, variant, original, endpoint);
    c->err_code = "ModelError";
    c->err_http = 424;
    c->err_extra = json_pack("{s:s, s:s, s:s, s:s, s:i}", "ErrorCode",
                             client ? "CLIENT_ERROR_FROM_MODEL" : "SERVER_ERROR_FROM_MODEL",
                             "LogStreamArn", log_arn, "Message", msg, "OriginalMessage",
                             original, "OriginalStatusCode", status);
    return kn_err_set(&c->err, KN_INVALID, "%.500s", msg);
}

kn_status kn_smr__invoke_endpoint(kn_api_call *c)
{
    c->err_code = "ValidationError";
    if (!c->api->fleet) {
        c->err_code = "ServiceUnavailable";
        c->err_http = 503;
        return kn_err_set(&c->err, KN_INTERNAL, "This kennel server does not run endpoints.");
    }
    char name[256];
    if (c->match->n_params < 1 ||
        !kn_api__url_decode(c->match->params[0].value, name, sizeof name) || !kn_val_is_name(name))
        return kn_err_set(&c->err, KN_INVALID,
                          "1 validation error detected: Value at 'endpointName' failed to "
                          "satisfy constraint: Member must satisfy regular expression pattern: "
                          "%s",
                          KN_NAME_PATTERN);
    bool bad = false;
    kn_invoke_request rq = {.endpoint = name};
    rq.content_type = header_bounded(c, "Content-Type", 1024, &bad);
    rq.accept = header_bounded(c, "Accept", 1024, &bad);
    rq.custom_attributes = header_bounded(c, "X-Amzn-SageMaker-Custom-Attributes", 1024, &bad);
    rq.target_variant = header_bounded(c, "X-Amzn-SageMaker-Target-Variant", 63, &bad);
    if (bad)
        return KN_INVALID;
    rq.body = c->req->body;
    rq.body_len = c->req->body_len;

    kn_invoke_result r;
    kn_invoke_result_init(&r);
    kn_status s = kn_fleet_invoke(c->api->fleet, &rq, &r, &c->err);
    if (s == KN_TIMEOUT) {
        char original[600];
        snprintf(original, sizeof original, "%s", c->err.msg);
        kn_err_clear(&c->err);
        s = model_error(c, name, 0, original, r.variant[0] ? r.variant : "primary");
    } else if (s == KN_IO) {
        c->err_code = "ServiceUnavailable";
        c->err_http = 503;
    } else if (s == KN_TOO_LARGE) {
        c->err_code = "InternalFailure";
        c->err_http = 500;
    } else if (s == KN_OK && (r.status < 200 || r.status > 299)) {
        char original[1024];
        original_message(&r.body, original, sizeof original);
        s = model_error(c, name, r.status, original, r.variant);
    } else if (s == KN_OK) {
        kn_api_response *resp = c->resp;
        resp->status = 200;
        snprintf(resp->content_type, sizeof resp->content_type, "%s",
                 r.content_type[0] ? r.content_type : "application/json");
        kn_buf_deinit(&resp->body);
        resp->body = r.body;
        kn_buf_init(&r.body, 0);
        kn_api__add_header(resp, "x-Amzn-Invoked-Production-Variant", r.variant);
        if (r.custom_attributes[0])
            kn_api__add_header(resp, "X-Amzn-SageMaker-Custom-Attributes", r.custom_attributes);
        c->raw_response = true;
    }
    kn_invoke_result_deinit(&r);
    return s;
}
