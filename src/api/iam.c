/* IAM and STS over the Query protocol: form POST bodies (Action=...&
 * Version=...), XML answers in AWS's shapes (<XResponse><XResult>...
 * </XResult><ResponseMetadata>), policy documents URL-encoded in answers as
 * IAM sends them (botocore decodes them). Policy documents are parsed before
 * they are stored: a bad one is MalformedPolicyDocument naming the problem.
 * Statuses from the platform's IAM store map to IAM's error names here.
 * Thread-safe: no state.
 */
#include "api_int.h"

#include "kennel/auth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define IAM_NS "https://iam.amazonaws.com/doc/2010-05-08/"
#define STS_NS "https://sts.amazonaws.com/doc/2011-06-15/"

/* ---- input --------------------------------------------------------------- */

/* A form parameter into a fresh buffer (NULL when absent); *bad when it is
 * present but malformed or longer than max. */
static char *param(kn_api_call *c, const char *key, size_t max, bool *bad)
{
    char *buf = malloc(max + 1);
    if (!buf) {
        *bad = true;
        return NULL;
    }
    if (kn_api__form_get((const char *)c->req->body, c->req->body_len, key, buf, max + 1))
        return buf;
    free(buf);
    /* present but unreadable (over-long or a bad escape)? */
    size_t kl = strlen(key);
    const char *b = (const char *)c->req->body;
    for (size_t i = 0; b && i + kl < c->req->body_len; i++)
        if ((i == 0 || b[i - 1] == '&') && !memcmp(b + i, key, kl) && b[i + kl] == '=') {
            *bad = true;
            break;
        }
    return NULL;
}

typedef struct args {
    char *v[8];
    int n;
} args;

static void args_free(args *a)
{
    for (int i = 0; i < a->n; i++)
        free(a->v[i]);
}

/* Reads one parameter into a (freed by args_free); a missing required one
 * or a bad one is a ValidationError naming it. */
static kn_status get(kn_api_call *c, args *a, const char *key, size_t max, bool required,
                     const char **out)
{
    bool bad = false;
    char *v = param(c, key, max, &bad);
    *out = v;
    if (v)
        a->v[a->n++] = v;
    if (bad)
        return kn_err_set(&c->err, KN_INVALID,
                          "1 validation error detected: Value at '%c%s' failed to satisfy "
                          "constraint: Member must have length less than or equal to %zu",
                          key[0] | 0x20, key + 1, max);
    if (!v && required)
        return kn_err_set(&c->err, KN_INVALID,
                          "1 validation error detected: Value null at '%c%s' failed to satisfy "
                          "constraint: Member must not be null",
                          key[0] | 0x20, key + 1);
    return KN_OK;
}

/* IAM's error names for the store's statuses. */
static kn_status iam_error(kn_api_call *c, kn_status s)
{
    switch (s) {
    case KN_EXISTS: c->err_code = "EntityAlreadyExists"; c->err_http = 409; break;
    case KN_NOT_FOUND: c->err_code = "NoSuchEntity"; c->err_http = 404; break;
    case KN_RESOURCE_IN_USE: c->err_code = "DeleteConflict"; c->err_http = 409; break;
    case KN_BAD_FORMAT: c->err_code = "MalformedPolicyDocument"; c->err_http = 400; break;
    case KN_RESOURCE_LIMIT: c->err_code = "LimitExceeded"; c->err_http = 409; break;
    case KN_INVALID: c->err_code = "ValidationError"; c->err_http = 400; break;
    default: break;
    }
    return s;
}

static kn_status check_policy(kn_api_call *c, const char *doc, kn_policy_kind kind)
{
    kn_policy *p = NULL;
    kn_err e;
    kn_status s = kn_policy_parse(doc, strlen(doc), kind, &p, &e);
    kn_policy_free(p);
    if (s == KN_OK)
        return KN_OK;
    kn_err_set(&c->err, KN_BAD_FORMAT, "%s", e.msg);
    c->err_code = s == KN_TOO_LARGE ? "LimitExceeded" : "MalformedPolicyDocument";
    c->err_http = s == KN_TOO_LARGE ? 409 : 400;
    return KN_BAD_FORMAT;
}

/* ---- output -------------------------------------------------------------- */

static void xml_text(kn_buf *b, const char *s)
{
    for (; s && *s; s++) {
        switch (*s) {
        case '<': kn_buf_append(b, "&lt;", 4); break;
        case '>': kn_buf_append(b, "&gt;", 4); break;
        case '&': kn_buf_append(b, "&amp;", 5); break;
        case '"': kn_buf_append(b, "&quot;", 6); break;
        default: kn_buf_append(b, s, 1);
        }
    }
}

static void url_encode(kn_buf *b, const char *s)
{
    for (; s && *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
            ch == '-' || ch == '_' || ch == '.' || ch == '~')
            kn_buf_append(b, s, 1);
        else
            kn_buf_appendf(b, "%%%02X", ch);
    }
}

static void open_response(kn_api_call *c, const char *ns)
{
    kn_api_response *r = c->resp;
    c->raw_response = true;
    r->status = 200;
    snprintf(r->content_type, sizeof r->content_type, "text/xml");
    r->body.len = 0;
    kn_buf_appendf(&r->body, "<%sResponse xmlns=\"%s\">", c->match->route->op, ns);
}

static void open_result(kn_api_call *c)
{
    kn_buf_appendf(&c->resp->body, "<%sResult>", c->match->route->op);
}

static void close_response(kn_api_call *c, bool result)
{
    kn_buf *b = &c->resp->body;
    if (result)
        kn_buf_appendf(b, "</%sResult>", c->match->route->op);
    kn_buf_appendf(b, "<ResponseMetadata><RequestId>%s</RequestId></ResponseMetadata></%sResponse>",
                   c->resp->request_id, c->match->route->op);
}

/* <Name>value</Name> for each string member of a JSON record; documents
 * (members ending in "Document") URL-encoded as IAM sends them. */
static void members(kn_buf *b, json_t *o)
{
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v)
    {
        kn_buf_appendf(b, "<%s>", k);
        if (json_is_string(v)) {
            size_t kl = strlen(k);
            if (kl > 8 && !strcmp(k + kl - 8, "Document"))
                url_encode(b, json_string_value(v));
            else
                xml_text(b, json_string_value(v));
        } else if (json_is_integer(v)) {
            kn_buf_appendf(b, "%lld", (long long)json_integer_value(v));
        } else if (json_is_boolean(v)) {
            kn_buf_appendf(b, "%s", json_is_true(v) ? "true" : "false");
        }
        kn_buf_appendf(b, "</%s>", k);
    }
}

/* Answers with one record wrapped in <elem> (elem NULL: no result). */
static kn_status answer(kn_api_call *c, const char *elem, const char *json)
{
    open_response(c, IAM_NS);
    if (elem) {
        open_result(c);
        json_t *o = json ? json_loads(json, 0, NULL) : NULL;
        kn_buf_appendf(&c->resp->body, "<%s>", elem);
        if (o)
            members(&c->resp->body, o);
        kn_buf_appendf(&c->resp->body, "</%s>", elem);
        json_decref(o);
    }
    close_response(c, elem != NULL);
    return KN_OK;
}

/* The end of an operation that answers nothing but its request id: the
 * empty answer when s is KN_OK; the arguments freed either way. */
static kn_status finish(kn_api_call *c, args *a, kn_status s)
{
    if (!s)
        answer(c, NULL, NULL);
    args_free(a);
    return s;
}

/* Answers a listing: <elem><member>record</member>...</elem> and
 * IsTruncated (kennel answers every listing in one page). With only set,
 * each member is that one string member of the record (PolicyNames). */
static void list_answer(kn_api_call *c, const char *elem, const char *json, const char *only)
{
    open_response(c, IAM_NS);
    open_result(c);
    kn_buf *b = &c->resp->body;
    kn_buf_appendf(b, "<%s>", elem);
    json_t *arr = json ? json_loads(json, 0, NULL) : NULL;
    size_t i;
    json_t *o;
    json_array_foreach(arr, i, o)
    {
        kn_buf_appendf(b, "<member>");
        if (only)
            xml_text(b, json_string_value(json_object_get(o, only)));
        else
            members(b, o);
        kn_buf_appendf(b, "</member>");
    }
    json_decref(arr);
    kn_buf_appendf(b, "</%s><IsTruncated>false</IsTruncated>", elem);
    close_response(c, true);
}

static kn_status need_iam(kn_api_call *c)
{
    if (c->api->iam)
        return KN_OK;
    c->err_code = "ServiceUnavailable";
    c->err_http = 503;
    return kn_err_set(&c->err, KN_UNSUPPORTED,
                      "IAM is off: this daemon runs with --insecure-no-auth");
}

/* ---- IAM ----------------------------------------------------------------- */

kn_status kn_iam__create_user(kn_api_call *c)
{
    args a = {0};
    const char *name, *path;
    char *json = NULL;
    kn_status s = need_iam(c);
    if (!s && !(s = get(c, &a, "UserName", 64, true, &name)) &&
        !(s = get(c, &a, "Path", 512, false, &path)))
        s = iam_error(c, kn_iam_user_create(c->api->iam, name, path, &json, &c->err));
    if (!s)
        answer(c, "User", json);
    free(json);
    args_free(&a);
    return s;
}

/* UserName, or the calling user's own name when absent (as IAM does). */
static kn_status user_or_self(kn_api_call *c, args *a, const char **name)
{
    kn_status s = get(c, a, "UserName", 64, false, name);
    if (s || *name)
        return s;
    if (c->caller && c->caller->kind == KN_IAM_USER) {
        *name = c->caller->name;
        return KN_OK;
    }
    return kn_err_set(&c->err, KN_INVALID,
                      "Must specify userName when calling with non-User credentials");
}

kn_status kn_iam__create_access_key(kn_api_call *c)
{
    args a = {0};
    const char *name;
    char *json = NULL;
    kn_status s = need_iam(c);
    if (!s && !(s = user_or_self(c, &a, &name)))
        s = iam_error(c, kn_iam_access_key_create(c->api->iam, name, NULL, NULL, &json,
                                                  &c->err));
    if (!s)
        answer(c, "AccessKey", json);
    free(json);
    args_free(&a);
    return s;
}

kn_status kn_iam__delete_access_key(kn_api_call *c)
{
    args a = {0};
    const char *name, *key;
    kn_status s = need_iam(c);
    if (!s && !(s = get(c, &a, "AccessKeyId", 128, true, &key)) &&
        !(s = user_or_self(c, &a, &name)))
        s = iam_error(c, kn_iam_access_key_delete(c->api->iam, name, key, &c->err));
    return finish(c, &a, s);
}

kn_status kn_iam__list_access_keys(kn_api_call *c)
{
    args a = {0};
    const char *name;
    char *json = NULL;
    kn_status s = need_iam(c);
    if (!s && !(s = user_or_self(c, &a, &name)))
        s = iam_error(c, kn_iam_access_key_list(c->api->iam, name, &json, &c->err));
    if (!s)
        list_answer(c, "AccessKeyMetadata", json, NULL);
    free(json);
    args_free(&a);
    return s;
}

kn_status kn_iam__create_role(kn_api_call *c)
{
    args a = {0};
    const char *name, *path, *trust, *desc, *max;
    char *json = NULL;
    kn_status s = need_iam(c);
    if (!s && !(s = get(c, &a, "RoleName", 64, true, &name)) &&
        !(s = get(c, &a, "Path", 512, false, &path)) &&
        !(s = get(c, &a, "AssumeRolePolicyDocument", KN_POLICY_MAX_BYTES, true, &trust)) &&
        !(s = get(c, &a, "Description", 1000, false, &desc)) &&
        !(s = get(c, &a, "MaxSessionDuration", 16, false, &max)) &&
        !(s = check_policy(c, trust, KN_POLICY_RESOURCE)))
        s = iam_error(c, kn_iam_role_create(c->api->iam, name, path, trust, desc,
                                            max ? atoi(max) : 0, &json, &c->err));
    if (!s)
        answer(c, "Role", json);
    free(json);
    args_free(&a);
    return s;
}

kn_status kn_iam__get_role(kn_api_call *c)
{
    args a = {0};
    const char *name;
    char *json = NULL;
    kn_status s = need_iam(c);
    if (!s && !(s = get(c, &a, "RoleName", 64, true, &name)))
        s = iam_error(c, kn_iam_role_get(c->api->iam, name, &json, &c->err));
    if (!s)
        answer(c, "Role", json);
    free(json);
    args_free(&a);
    return s;
}

kn_status kn_iam__delete_role(kn_api_call *c)
{
    args a = {0};
    const char *name;
    kn_status s = need_iam(c);
    if (!s && !(s = get(c, &a, "RoleName", 64, true, &name)))
        s = iam_error(c, kn_iam_role_delete(c->api->iam, name, &c->err));
    return finish(c, &a, s);
}

static kn_status put_inline(kn_api_call *c, const char *kind, const char *owner_key)
{
    args a = {0};
    const char *owner, *pname, *doc;
    kn_status s = need_iam(c);
    if (!s && !(s = get(c, &a, owner_key, 64, true, &owner)) &&
        !(s = get(c, &a, "PolicyName", 128, true, &pname)) &&
        !(s = get(c, &a, "PolicyDocument", KN_POLICY_MAX_BYTES, true, &doc)) &&
        !(s = check_policy(c, doc, KN_POLICY_IDENTITY)))
        s = iam_error(c, kn_iam_inline_put(c->api->iam, kind, owner, pname, doc, &c->err));
    return finish(c, &a, s);
}

kn_status kn_iam__put_role_policy(kn_api_call *c)
{
    return put_inline(c, "role", "RoleName");
}

kn_status kn_iam__put_user_policy(kn_api_call *c)
{
    return put_inline(c, "user", "UserName");
}

kn_status kn_iam__get_role_policy(kn_api_call *c)
{
    args a = {0};
    const char *owner, *pname;
    char *doc = NULL;
    kn_status s = need_iam(c);
    if (!s && !(s = get(c, &a, "RoleName", 64, true, &owner)) &&
        !(s = get(c, &a, "PolicyName", 128, true, &pname)))
        s = iam_error(c, kn_iam_inline_get(c->api->iam, "role", owner, pname, &doc, &c->err));
    if (!s) {
        json_t *o = json_pack("{s:s, s:s, s:s}", "RoleName", owner, "PolicyName", pname,
                              "PolicyDocument", doc);
        char *text = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
        json_decref(o);
        open_response(c, IAM_NS);
        open_result(c);
        json_t *r = text ? json_loads(text, 0, NULL) : NULL;
        if (r)
            members(&c->resp->body, r);
        json_decref(r);
        free(text);
        close_response(c, true);
    }
    free(doc);
    args_free(&a);
    return s;
}

kn_status kn_iam__delete_role_policy(kn_api_call *c)
{
    args a = {0};
    const char *owner, *pname;
    kn_status s = need_iam(c);
    if (!s && !(s = get(c, &a, "RoleName", 64, true, &owner)) &&
        !(s = get(c, &a, "PolicyName", 128, true, &pname)))
        s = iam_error(c, kn_iam_inline_delete(c->api->iam, "role", owner, pname, &c->err));
    return finish(c, &a, s);
}

kn_status kn_iam__create_policy(kn_api_call *c)
{
    args a = {0};
    const char *name, *path, *doc, *desc;
    char *json = NULL;
    kn_status s = need_iam(c);
    if (!s && !(s = get(c, &a, "PolicyName", 128, true, &name)) &&
        !(s = get(c, &a, "Path", 512, false, &path)) &&
        !(s = get(c, &a, "PolicyDocument", KN_POLICY_MAX_BYTES, true, &doc)) &&
        !(s = get(c, &a, "Description", 1000, false, &desc)) &&
        !(s = check_policy(c, doc, KN_POLICY_IDENTITY)))
        s = iam_error(c, kn_iam_policy_create(c->api->iam, name, path, doc, desc, &json,
                                              &c->err));
    if (!s)
        answer(c, "Policy", json);
    free(json);
    args_free(&a);
    return s;
}

static kn_status attach(kn_api_call *c, const char *kind, const char *owner_key, bool detach)
{
    args a = {0};
    const char *owner, *arn;
    kn_status s = need_iam(c);
    if (!s && !(s = get(c, &a, owner_key, 64, true, &owner)) &&
        !(s = get(c, &a, "PolicyArn", 2048, true, &arn)))
        s = iam_error(c, detach ? kn_iam_policy_detach(c->api->iam, kind, owner, arn, &c->err)
                                : kn_iam_policy_attach(c->api->iam, kind, owner, arn, &c->err));
    return finish(c, &a, s);
}

kn_status kn_iam__attach_role_policy(kn_api_call *c)
{
    return attach(c, "role", "RoleName", false);
}

kn_status kn_iam__detach_role_policy(kn_api_call *c)
{
    return attach(c, "role", "RoleName", true);
}

kn_status kn_iam__attach_user_policy(kn_api_call *c)
{
    return attach(c, "user", "UserName", false);
}

/* ---- STS ----------------------------------------------------------------- */

static void iso(double t, char out[32])
{
    time_t s = (time_t)t;
    struct tm tm;
    gmtime_r(&s, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

kn_status kn_sts__assume_role(kn_api_call *c)
{
    args a = {0};
    const char *arn, *session, *dur;
    char *json = NULL;
    kn_policy *trust = NULL;
    kn_status s = need_iam(c);
    if (s || (s = get(c, &a, "RoleArn", 2048, true, &arn)) ||
        (s = get(c, &a, "RoleSessionName", 64, true, &session)) ||
        (s = get(c, &a, "DurationSeconds", 16, false, &dur)))
        goto out;
    if ((s = kn_iam_role_by_arn(c->api->iam, arn, &json, &c->err))) {
        /* AWS does not say whether a role exists to someone who may not assume it */
        c->err_code = "AccessDenied";
        c->err_http = 403;
        s = kn_err_set(&c->err, KN_INVALID,
                       "User: %s is not authorized to perform: sts:AssumeRole on resource: %s",
                       c->caller ? c->caller->arn : "", arn);
        goto out;
    }
    json_t *role = json_loads(json, 0, NULL);
    const char *doc = json_string_value(json_object_get(role, "AssumeRolePolicyDocument"));
    kn_err pe;
    kn_policy_decision d = {.effect = KN_POLICY_IMPLICIT_DENY};
    if (doc && kn_policy_parse(doc, strlen(doc), KN_POLICY_RESOURCE, &trust, &pe) == KN_OK) {
        kn_policy_request r = {.action = "sts:AssumeRole",
                               .resource = arn,
                               .principal = c->caller ? c->caller->arn : ""};
        const kn_policy *ps[1] = {trust};
        kn_policy_evaluate(ps, 1, &r, &d);
    }
    json_decref(role);
    if (d.effect != KN_POLICY_ALLOW) {
        c->err_code = "AccessDenied";
        c->err_http = 403;
        s = kn_err_set(&c->err, KN_INVALID,
                       "User: %s is not authorized to perform: sts:AssumeRole on resource: %s",
                       c->caller ? c->caller->arn : "", arn);
        goto out;
    }
    kn_iam_credentials cr;
    if ((s = iam_error(c, kn_iam_session_create(c->api->iam, arn, session, dur ? atoi(dur) : 0,
                                                &cr, &c->err))))
        goto out;
    open_response(c, STS_NS);
    open_result(c);
    kn_buf *b = &c->resp->body;
    char exp[32];
    iso(cr.expiration, exp);
    kn_buf_appendf(b, "<AssumedRoleUser><AssumedRoleId>");
    xml_text(b, cr.assumed_role_id);
    kn_buf_appendf(b, "</AssumedRoleId><Arn>");
    xml_text(b, cr.session_arn);
    kn_buf_appendf(b,
                   "</Arn></AssumedRoleUser><Credentials><AccessKeyId>%s</AccessKeyId>"
                   "<SecretAccessKey>%s</SecretAccessKey><SessionToken>%s</SessionToken>"
                   "<Expiration>%s</Expiration></Credentials>",
                   cr.access_key, cr.secret, cr.session_token, exp);
    close_response(c, true);
out:
    kn_policy_free(trust);
    free(json);
    args_free(&a);
    return s;
}

kn_status kn_sts__get_caller_identity(kn_api_call *c)
{
    kn_status s = need_iam(c);
    if (s)
        return s;
    open_response(c, STS_NS);
    open_result(c);
    kn_buf *b = &c->resp->body;
    kn_buf_appendf(b, "<Arn>");
    xml_text(b, c->caller ? c->caller->arn : "");
    kn_buf_appendf(b, "</Arn><UserId>");
    xml_text(b, c->caller ? c->caller->user_id : "");
    kn_buf_appendf(b, "</UserId><Account>%s</Account>", kn_iam_account(c->api->iam));
    close_response(c, true);
    return KN_OK;
}

/* ---- listings ------------------------------------------------------------ */

static kn_status list_op(kn_api_call *c, kn_iam_list_kind kind, const char *owner_key,
                         const char *elem, const char *only)
{
    args a = {0};
    const char *owner = NULL;
    char *json = NULL;
    kn_status s = need_iam(c);
    if (!s && owner_key)
        s = get(c, &a, owner_key, 64, true, &owner);
    if (!s)
        s = iam_error(c, kn_iam_list(c->api->iam, kind, owner, &json, &c->err));
    if (!s)
        list_answer(c, elem, json, only);
    free(json);
    args_free(&a);
    return s;
}

kn_status kn_iam__list_users(kn_api_call *c)
{
    return list_op(c, KN_IAM_LIST_USERS, NULL, "Users", NULL);
}

kn_status kn_iam__list_roles(kn_api_call *c)
{
    return list_op(c, KN_IAM_LIST_ROLES, NULL, "Roles", NULL);
}

kn_status kn_iam__list_attached_user_policies(kn_api_call *c)
{
    return list_op(c, KN_IAM_LIST_ATTACHED_USER, "UserName", "AttachedPolicies", NULL);
}

kn_status kn_iam__list_attached_role_policies(kn_api_call *c)
{
    return list_op(c, KN_IAM_LIST_ATTACHED_ROLE, "RoleName", "AttachedPolicies", NULL);
}

kn_status kn_iam__list_user_policies(kn_api_call *c)
{
    return list_op(c, KN_IAM_LIST_INLINE_USER, "UserName", "PolicyNames", "PolicyName");
}

kn_status kn_iam__list_role_policies(kn_api_call *c)
{
    return list_op(c, KN_IAM_LIST_INLINE_ROLE, "RoleName", "PolicyNames", "PolicyName");
}
