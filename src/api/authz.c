/* The front door's authentication and authorization, between finding the
 * route and calling its handler:
 *
 *   1. SigV4: the signature (header or presigned query form) is parsed and
 *      its credential scope must name the operation's service and the
 *      daemon's region; the access key is looked up (a user key, or an STS
 *      session key whose X-Amz-Security-Token must be the one issued and not
 *      expired); then the signature is verified with the key's secret
 *      against real (calendar) time, ±15 minutes.
 *   2. Policy: the route's IAM action on the resource ARN built from the
 *      table below, evaluated over the caller's identity policies (a
 *      session's are its role's). Operations that hand a role to the
 *      service (ExecutionRoleArn, RoleArn, Role, RoleARN) also need
 *      iam:PassRole on that role.
 *
 * Each protocol gets its own error names (kn_auth_fail_code). Identities
 * and their parsed policies are cached per access key and dropped when the
 * IAM generation changes, so a request costs one HMAC chain and an
 * evaluation, not a database read and a JSON parse. Thread-safe: the cache
 * is under a mutex, entries are reference-counted and immutable.
 */
#include "api_int.h"

#include "kennel/auth.h"

#include <ctype.h>
#include <openssl/crypto.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* ---- resource ARNs --------------------------------------------------------
 * The resource each action is authorized on, as a template: {region},
 * {account}, {Member} (a path label, JSON member or Query parameter of the
 * request), {Member:lower} (SageMaker ARNs lower-case names), {Member:fn}
 * (a Lambda function name, name:qualifier or ARN), {Member:arn} (the value
 * is an ARN already). An action not listed is authorized on "*" (List and
 * Describe-all calls, Application Auto Scaling). `pass_role` names the
 * member carrying a role handed to the service (iam:PassRole is checked;
 * "A.B" is member B of member A). */
static const struct resource_rule {
    const char *action;
    const char *arn;
    const char *pass_role;
} resource_rules[] = {
#define SMR(op, type, member)                                                                 \
    {"sagemaker:" op, "arn:aws:sagemaker:{region}:{account}:" type "/{" member ":lower}", NULL}
    {"sagemaker:CreateModel", "arn:aws:sagemaker:{region}:{account}:model/{ModelName:lower}",
     "ExecutionRoleArn"},
    SMR("DescribeModel", "model", "ModelName"),
    SMR("DeleteModel", "model", "ModelName"),
    SMR("CreateEndpointConfig", "endpoint-config", "EndpointConfigName"),
    SMR("DescribeEndpointConfig", "endpoint-config", "EndpointConfigName"),
    SMR("DeleteEndpointConfig", "endpoint-config", "EndpointConfigName"),
    SMR("CreateEndpoint", "endpoint", "EndpointName"),
    SMR("DescribeEndpoint", "endpoint", "EndpointName"),
    SMR("DeleteEndpoint", "endpoint", "EndpointName"),
    SMR("UpdateEndpoint", "endpoint", "EndpointName"),
    SMR("UpdateEndpointWeightsAndCapacities", "endpoint", "EndpointName"),
    SMR("InvokeEndpoint", "endpoint", "EndpointName"),
    {"sagemaker:CreateTrainingJob",
     "arn:aws:sagemaker:{region}:{account}:training-job/{TrainingJobName:lower}", "RoleArn"},
    SMR("DescribeTrainingJob", "training-job", "TrainingJobName"),
    SMR("StopTrainingJob", "training-job", "TrainingJobName"),
    {"sagemaker:CreateHyperParameterTuningJob",
     "arn:aws:sagemaker:{region}:{account}:hyper-parameter-tuning-job/"
     "{HyperParameterTuningJobName:lower}",
     "TrainingJobDefinition.RoleArn"},
    SMR("DescribeHyperParameterTuningJob", "hyper-parameter-tuning-job",
        "HyperParameterTuningJobName"),
    SMR("StopHyperParameterTuningJob", "hyper-parameter-tuning-job",
        "HyperParameterTuningJobName"),
#undef SMR
    {"application-autoscaling:RegisterScalableTarget", "*", "RoleARN"},
#define FN(op) {"lambda:" op, "arn:aws:lambda:{region}:{account}:function:{FunctionName:fn}", NULL}
    {"lambda:CreateFunction", "arn:aws:lambda:{region}:{account}:function:{FunctionName:fn}",
     "Role"},
    {"lambda:UpdateFunctionConfiguration",
     "arn:aws:lambda:{region}:{account}:function:{FunctionName:fn}", "Role"},
    FN("InvokeFunction"), FN("GetFunction"), FN("DeleteFunction"), FN("UpdateFunctionCode"),
    FN("GetFunctionConfiguration"), FN("PublishVersion"), FN("ListVersionsByFunction"),
    FN("CreateAlias"), FN("GetAlias"), FN("UpdateAlias"), FN("DeleteAlias"), FN("ListAliases"),
    FN("PutFunctionConcurrency"), FN("GetFunctionConcurrency"),
    FN("DeleteFunctionConcurrency"), FN("PutProvisionedConcurrencyConfig"),
    FN("GetProvisionedConcurrencyConfig"), FN("DeleteProvisionedConcurrencyConfig"),
    FN("ListProvisionedConcurrencyConfigs"),
#undef FN
    {"lambda:ListTags", "{ARN}", NULL},
    {"lambda:TagResource", "{ARN}", NULL},
    {"lambda:UntagResource", "{ARN}", NULL},
#define IAMR(op, type, member) {"iam:" op, "arn:aws:iam::{account}:" type "/{" member "}", NULL}
    IAMR("CreateUser", "user", "UserName"),
    IAMR("CreateAccessKey", "user", "UserName"),
    IAMR("DeleteAccessKey", "user", "UserName"),
    IAMR("ListAccessKeys", "user", "UserName"),
    IAMR("AttachUserPolicy", "user", "UserName"),
    IAMR("PutUserPolicy", "user", "UserName"),
    IAMR("ListAttachedUserPolicies", "user", "UserName"),
    IAMR("ListUserPolicies", "user", "UserName"),
    IAMR("ListAttachedRolePolicies", "role", "RoleName"),
    IAMR("ListRolePolicies", "role", "RoleName"),
    IAMR("CreateRole", "role", "RoleName"),
    IAMR("GetRole", "role", "RoleName"),
    IAMR("DeleteRole", "role", "RoleName"),
    IAMR("PutRolePolicy", "role", "RoleName"),
    IAMR("GetRolePolicy", "role", "RoleName"),
    IAMR("DeleteRolePolicy", "role", "RoleName"),
    IAMR("AttachRolePolicy", "role", "RoleName"),
    IAMR("DetachRolePolicy", "role", "RoleName"),
    IAMR("CreatePolicy", "policy", "PolicyName"),
#undef IAMR
    {"sts:AssumeRole", "{RoleArn:arn}", NULL},
};

/* A request member by name: path label (decoded), JSON body member, or
 * form parameter. */
static bool member_value(const kn_api_call *c, json_t *body, const char *name, char *out,
                         size_t n)
{
    const kn_api_match *m = c->match;
    for (int i = 0; i < m->n_params; i++)
        if (!strcmp(m->params[i].name, name))
            return kn_api__url_decode(m->params[i].value, out, n);
    if (body) {
        /* "TrainingJobDefinition.RoleArn": a member of a member */
        json_t *o = body;
        const char *part = name, *dot;
        char seg[64];
        while (o && (dot = strchr(part, '.')) && (size_t)(dot - part) < sizeof seg) {
            snprintf(seg, sizeof seg, "%.*s", (int)(dot - part), part);
            o = json_object_get(o, seg);
            part = dot + 1;
        }
        const char *v = json_string_value(json_object_get(o, part));
        if (v && strlen(v) < n) {
            snprintf(out, n, "%s", v);
            return true;
        }
        return false;
    }
    if (m->proto == KN_PROTO_QUERY)
        return kn_api__form_get((const char *)c->req->body, c->req->body_len, name, out, n);
    return false;
}

static void lambda_function_arn(const kn_api_call *c, const char *v, kn_buf *b)
{
    if (!strncmp(v, "arn:", 4)) {
        kn_buf_append(b, v, strlen(v));
        return;
    }
    (void)c;
    kn_buf_append(b, v, strlen(v)); /* name or name:qualifier */
}

/* Fills the resource ARN of an action; "*" for actions not in the table
 * or when a member is missing (the handler then reports it). */
static void resource_arn(const kn_api_call *c, const char *action, json_t *body, char *out,
                         size_t n, const char **pass_role)
{
    *pass_role = NULL;
    const struct resource_rule *rule = NULL;
    for (size_t i = 0; i < sizeof resource_rules / sizeof resource_rules[0]; i++)
        if (!strcasecmp(resource_rules[i].action, action)) {
            rule = &resource_rules[i];
            break;
        }
    snprintf(out, n, "*");
    if (!rule)
        return;
    *pass_role = rule->pass_role;
    kn_buf b;
    kn_buf_init(&b, 4096);
    bool ok = true;
    for (const char *t = rule->arn; *t && ok;) {
        if (*t != '{') {
            size_t k = strcspn(t, "{");
            kn_buf_append(&b, t, k);
            t += k;
            continue;
        }
        const char *close = strchr(t, '}');
        char name[64], mod[16] = "";
        size_t len = (size_t)(close - t - 1);
        snprintf(name, sizeof name, "%.*s", (int)len, t + 1);
        char *colon = strchr(name, ':');
        if (colon) {
            snprintf(mod, sizeof mod, "%s", colon + 1);
            *colon = 0;
        }
        t = close + 1;
        if (!strcmp(name, "region")) {
            kn_buf_appendf(&b, "%s", kn_registry_region(c->api->registry));
        } else if (!strcmp(name, "account")) {
            kn_buf_appendf(&b, "%s", kn_registry_account(c->api->registry));
        } else {
            char v[1024];
            if (!member_value(c, body, name, v, sizeof v) || !v[0]) {
                ok = false;
                break;
            }
            if (!strcmp(mod, "lower"))
                for (char *p = v; *p; p++)
                    *p = (char)tolower((unsigned char)*p);
            if (!strcmp(mod, "fn") && !strncmp(v, "arn:", 4)) {
                kn_buf_deinit(&b);
                kn_buf_init(&b, 4096);
                lambda_function_arn(c, v, &b);
                break;
            }
            kn_buf_append(&b, v, strlen(v));
        }
    }
    if (ok && b.len && b.len < n)
        snprintf(out, n, "%s", (const char *)b.data);
    kn_buf_deinit(&b);
}

/* ---- identity cache ------------------------------------------------------ */

typedef struct ident {
    _Atomic int refs;
    uint64_t generation;
    kn_iam_identity id;
    kn_policy **policies;
    char **names;
    size_t n;
} ident;

#define CACHE_SLOTS 256

struct kn_api_authz {
    pthread_mutex_t mu;
    ident *slot[CACHE_SLOTS];
};

static void ident_release(ident *x)
{
    if (!x || atomic_fetch_sub(&x->refs, 1) != 1)
        return;
    for (size_t i = 0; i < x->n; i++)
        kn_policy_free(x->policies[i]);
    kn_iam_strings_free(x->names, x->n);
    free(x->policies);
    OPENSSL_cleanse(&x->id, sizeof x->id);
    free(x);
}

kn_status kn_api__authz_new(kn_api_authz **out)
{
    *out = calloc(1, sizeof **out);
    if (!*out)
        return KN_NOMEM;
    pthread_mutex_init(&(*out)->mu, NULL);
    return KN_OK;
}

void kn_api__authz_free(kn_api_authz *z)
{
    if (!z)
        return;
    for (int i = 0; i < CACHE_SLOTS; i++)
        ident_release(z->slot[i]);
    pthread_mutex_destroy(&z->mu);
    free(z);
}

static unsigned slot_of(const char *akid)
{
    unsigned h = 2166136261u;
    for (; *akid; akid++)
        h = (h ^ (unsigned char)*akid) * 16777619u;
    return h % CACHE_SLOTS;
}

/* The identity of an access key with its parsed policies (a reference the
 * caller releases); KN_NOT_FOUND for an unknown key. A stored policy that
 * no longer parses is left out (it grants nothing) with a warning. */
static kn_status ident_get(kn_api *a, const char *akid, ident **out, kn_err *e)
{
    *out = NULL;
    uint64_t gen = kn_iam_generation(a->iam);
    unsigned h = slot_of(akid);
    pthread_mutex_lock(&a->authz->mu);
    ident *x = a->authz->slot[h];
    if (x && x->generation == gen && !strcmp(x->id.access_key, akid)) {
        atomic_fetch_add(&x->refs, 1);
        *out = x;
    }
    pthread_mutex_unlock(&a->authz->mu);
    if (*out)
        return KN_OK;
    x = calloc(1, sizeof *x);
    if (!x)
        return kn_err_set(e, KN_NOMEM, "out of memory");
    x->refs = 1;
    x->generation = gen;
    char **docs = NULL;
    kn_status s = kn_iam_lookup_key(a->iam, akid, &x->id, e);
    if (!s)
        s = kn_iam_identity_policies(a->iam, &x->id, &docs, &x->names, &x->n, e);
    if (!s && x->n && !(x->policies = calloc(x->n, sizeof *x->policies)))
        s = kn_err_set(e, KN_NOMEM, "out of memory");
    for (size_t i = 0; !s && i < x->n; i++) {
        kn_err pe;
        if (kn_policy_parse(docs[i], strlen(docs[i]), KN_POLICY_IDENTITY, &x->policies[i], &pe))
            kn_log(KN_LOG_WARN, "policy %s of %s does not parse, ignored: %s", x->names[i],
                   x->id.arn, pe.msg);
    }
    kn_iam_strings_free(docs, x->n);
    if (s) {
        ident_release(x);
        return s;
    }
    atomic_fetch_add(&x->refs, 1); /* the cache's reference */
    pthread_mutex_lock(&a->authz->mu);
    ident *old = a->authz->slot[h];
    a->authz->slot[h] = x;
    pthread_mutex_unlock(&a->authz->mu);
    ident_release(old);
    *out = x;
    return KN_OK;
}

/* ---- the check ----------------------------------------------------------- */

static double real_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static kn_status fail(kn_api_call *c, kn_authz_result *res, const char *code, int http,
                      const char *decision, const char *fmt, const char *arg)
{
    c->err_code = code;
    c->err_http = http;
    snprintf(res->decision, sizeof res->decision, "%s", decision);
    return kn_err_set(&c->err, KN_INVALID, fmt, arg);
}

static void statement_label(const ident *x, const kn_policy_decision *d, char *out, size_t n)
{
    if (d->policy < 0) {
        snprintf(out, n, "%s", "");
        return;
    }
    /* d->policy indexes the evaluated list, which skips no entry */
    snprintf(out, n, "%s#%d%s%s", x->names[d->policy], d->statement, d->sid[0] ? "/" : "",
             d->sid);
}

static void evaluate(const ident *x, kn_policy_request *r, const char *source,
                     const kn_policy_key *extra, kn_policy_decision *d)
{
    const char *ip[1] = {source && *source ? source : "127.0.0.1"};
    char epoch[32], iso[32];
    double now = real_now();
    time_t t = (time_t)now;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(iso, sizeof iso, "%Y-%m-%dT%H:%M:%SZ", &tm);
    snprintf(epoch, sizeof epoch, "%lld", (long long)now);
    const char *iso_v[1] = {iso}, *epoch_v[1] = {epoch}, *arn_v[1] = {x->id.arn},
               *user_v[1] = {x->id.name}, *uid_v[1] = {x->id.user_id},
               *type_v[1] = {x->id.kind == KN_IAM_USER ? "User" : "AssumedRole"},
               *false_v[1] = {"false"}, *role_v[1] = {x->id.role_arn};
    kn_policy_key keys[] = {
        {"aws:SourceIp", ip, 1},
        {"aws:CurrentTime", iso_v, 1},
        {"aws:EpochTime", epoch_v, 1},
        {"aws:PrincipalArn", x->id.kind == KN_IAM_USER ? arn_v : role_v, 1},
        {"aws:userid", uid_v, 1},
        {"aws:PrincipalType", type_v, 1},
        {"aws:SecureTransport", false_v, 1},
        {"aws:username", user_v, x->id.kind == KN_IAM_USER ? 1u : 0u},
        {"", NULL, 0},
    };
    if (extra)
        keys[sizeof keys / sizeof keys[0] - 1] = *extra;
    r->principal = x->id.arn;
    r->keys = keys;
    r->n_keys = sizeof keys / sizeof keys[0];
    kn_policy_evaluate((const kn_policy *const *)x->policies, x->n, r, d);
    r->keys = NULL;
    r->n_keys = 0;
}

kn_status kn_api__authorize(kn_api_call *c, kn_authz_result *res)
{
    kn_api *a = c->api;
    const kn_api_request *req = c->req;
    const kn_api_match *m = c->match;
    bool q = m->proto == KN_PROTO_QUERY;
    kn_auth_proto ap = q ? KN_AUTH_PROTO_QUERY : KN_AUTH_PROTO_JSON;
    memset(res, 0, sizeof *res);
    const kn_auth_request ar = {.method = req->method,
                                .raw_path = req->path,
                                .raw_query = req->query,
                                .headers = (const kn_auth_header *)req->headers,
                                .n_headers = req->n_headers,
                                .body = req->body,
                                .body_len = req->body_len};
    kn_auth_sig sig;
    kn_auth_fail f = KN_AUTH_OK;
    kn_err pe;
    kn_err_clear(&pe);
    if (kn_auth_parse(&ar, &sig, &f, &pe)) {
        c->err_code = kn_auth_fail_code(f, ap);
        c->err_http = kn_auth_fail_http(f, ap);
        snprintf(res->decision, sizeof res->decision, "AuthFailure");
        if (f == KN_AUTH_MISSING)
            return kn_err_set(&c->err, KN_INVALID, "%s", "Missing Authentication Token");
        return kn_err_set(&c->err, KN_INVALID, "%s", pe.msg);
    }
    const char *svc = m->route ? m->route->service : NULL;
    if (svc && strcmp(sig.service, svc) != 0)
        return fail(c, res, q ? "SignatureDoesNotMatch" : "InvalidSignatureException", 403,
                    "AuthFailure", "Credential should be scoped to correct service: '%s'.", svc);
    const char *region = kn_registry_region(a->registry);
    /* IAM and STS are global: their scope says us-east-1 whatever the daemon's region */
    bool global = svc && (!strcmp(svc, "iam") || !strcmp(svc, "sts"));
    if (!global && strcmp(sig.region, region) != 0)
        return fail(c, res, q ? "SignatureDoesNotMatch" : "InvalidSignatureException", 403,
                    "AuthFailure", "Credential should be scoped to a valid Region, not '%s'.",
                    sig.region);
    ident *x = NULL;
    kn_err le;
    kn_status s = ident_get(a, sig.access_key, &x, &le);
    if (s == KN_NOT_FOUND)
        return fail(c, res, q ? "InvalidClientTokenId" : "UnrecognizedClientException", 403,
                    "AuthFailure", "%s", "The security token included in the request is invalid.");
    if (s) {
        c->err = le;
        snprintf(res->decision, sizeof res->decision, "Error");
        return s;
    }
    snprintf(res->principal, sizeof res->principal, "%s", x->id.arn);
    if (x->id.kind == KN_IAM_SESSION || sig.session_token[0]) {
        char th[65] = "";
        uint8_t h[32];
        kn_sha256(sig.session_token, strlen(sig.session_token), h);
        kn_hex(h, 32, th);
        if (x->id.kind != KN_IAM_SESSION || !sig.session_token[0] ||
            CRYPTO_memcmp(th, x->id.token_sha256, 64) != 0) {
            ident_release(x);
            return fail(c, res, q ? "InvalidClientTokenId" : "UnrecognizedClientException",
                        403, "AuthFailure", "%s",
                        "The security token included in the request is invalid.");
        }
        if (x->id.expiration <= (a->auth_time ? a->auth_time : real_now())) {
            ident_release(x);
            return fail(c, res, q ? "ExpiredToken" : "ExpiredTokenException", q ? 403 : 403,
                        "AuthFailure", "%s",
                        "The security token included in the request is expired");
        }
    }
    if (kn_auth_verify(&ar, &sig, x->id.secret, a->auth_time ? a->auth_time : real_now(), &f,
                       &pe)) {
        ident_release(x);
        c->err_code = kn_auth_fail_code(f, ap);
        c->err_http = kn_auth_fail_http(f, ap);
        snprintf(res->decision, sizeof res->decision, "AuthFailure");
        return kn_err_set(&c->err, KN_INVALID, "%s", pe.msg);
    }
    res->authenticated = true;
    if (!m->route || !m->route->iam_action) {
        ident_release(x);
        return KN_OK; /* the handler reports an unknown operation */
    }
    const char *action = m->route->iam_action;
    snprintf(res->action, sizeof res->action, "%s", action);
    /* every identity may ask who it is (AWS: no permission needed) */
    if (!strcasecmp(action, "sts:GetCallerIdentity")) {
        snprintf(res->decision, sizeof res->decision, "Allow");
        c->caller = &res->caller;
        res->caller = x->id;
        OPENSSL_cleanse(res->caller.secret, sizeof res->caller.secret);
        ident_release(x);
        return KN_OK;
    }
    /* a JSON 1.1 body, parsed once by the front door (NULL when not an object) */
    json_t *body = json_is_object(c->input) ? c->input : NULL;
    const char *pass_member = NULL;
    resource_arn(c, action, body, res->resource, sizeof res->resource, &pass_member);
    kn_policy_request pr = {.action = action, .resource = res->resource};
    kn_policy_decision d;
    evaluate(x, &pr, req->source, NULL, &d);
    statement_label(x, &d, res->statement, sizeof res->statement);
    char pass_arn[1024] = "";
    if (d.effect == KN_POLICY_ALLOW && pass_member &&
        member_value(c, body, pass_member, pass_arn, sizeof pass_arn) && pass_arn[0]) {
        /* handing a role to the service: iam:PassRole on that role */
        const char *svc_principal = m->route->service;
        char passed[128];
        snprintf(passed, sizeof passed, "%s.amazonaws.com", svc_principal ? svc_principal : "");
        const char *pv[1] = {passed};
        kn_policy_request rr = {.action = "iam:PassRole", .resource = pass_arn};
        kn_policy_decision pd;
        const kn_policy_key passed_to = {"iam:PassedToService", pv, 1};
        evaluate(x, &rr, req->source, &passed_to, &pd);
        if (pd.effect != KN_POLICY_ALLOW) {
            d = pd;
            pr = rr;
            snprintf(res->action, sizeof res->action, "iam:PassRole");
            snprintf(res->resource, sizeof res->resource, "%s", pass_arn);
            statement_label(x, &d, res->statement, sizeof res->statement);
        }
    }
    if (d.effect != KN_POLICY_ALLOW) {
        char msg[1400];
        pr.principal = x->id.arn;
        kn_policy_denied_message(&pr, &d, msg, sizeof msg);
        snprintf(res->decision, sizeof res->decision, "%s",
                 d.effect == KN_POLICY_EXPLICIT_DENY ? "ExplicitDeny" : "ImplicitDeny");
        ident_release(x);
        c->err_code = q ? "AccessDenied" : "AccessDeniedException";
        /* SageMaker and Application Auto Scaling (JSON 1.1) answer 400, the
         * REST services (Lambda, SageMaker Runtime) and IAM/STS 403 */
        c->err_http = m->proto == KN_PROTO_JSON ? 400 : 403;
        return kn_err_set(&c->err, KN_INVALID, "%s", msg);
    }
    snprintf(res->decision, sizeof res->decision, "Allow");
    res->caller = x->id;
    OPENSSL_cleanse(res->caller.secret, sizeof res->caller.secret);
    c->caller = &res->caller;
    ident_release(x);
    return KN_OK;
}

void kn_api__audit(kn_api_call *c, const kn_authz_result *res)
{
    if (!c->api->iam)
        return;
    const kn_api_response *r = c->resp;
    kn_audit_rec rec = {.time = real_now(),
                        .principal = res->principal,
                        .action = res->action[0] ? res->action : r->operation,
                        .resource = res->resource[0] ? res->resource : "*",
                        .source = c->req->source ? c->req->source : "",
                        .decision = res->decision[0] ? res->decision : "Error",
                        .statement = res->statement,
                        .request_id = r->request_id,
                        .error_code = r->error_code};
    kn_err e;
    if (kn_iam_audit_add(c->api->iam, &rec, &e))
        kn_log(KN_LOG_WARN, "audit log: %s", e.msg);
}
