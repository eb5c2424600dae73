/* Cross-file internals of the api module: the SigV4 header parser, the
 * route table and matcher, the handler calling convention and the input
 * validation helpers that reproduce AWS's error messages. */
#ifndef KN_API_INT_H
#define KN_API_INT_H

#include "kennel/api.h"
#include "kennel/jobs.h"
#include "kennel/fn.h"

#include <jansson.h>

struct kn_api {
    kn_platform *platform;
    kn_registry *registry;
    kn_clock *clock;
    kn_fleet *fleet;          /* NULL: endpoint operations answer ServiceUnavailable */
    kn_jobs *jobs;            /* NULL: job operations answer ServiceUnavailable */
    kn_fn *fn;                /* NULL: function operations answer ServiceException */
    size_t max_body;
    kn_iam *iam;              /* NULL: no authentication (--insecure-no-auth, tests) */
    struct kn_api_authz *authz; /* identity cache (authz.c) */
    double auth_time;         /* 0, or the fixed time of kn_api_params */
};

/* ------------------------------------------------------------- SigV4 */

/* The parts of an `Authorization: AWS4-HMAC-SHA256 Credential=AKID/date/
 * region/service/aws4_request, SignedHeaders=a;b, Signature=hex` header.
 * Parsing only: verification belongs to the auth module (it will move
 * there with the parser when IAM lands). */
#define KN_SIGV4_MAX_SIGNED 64
typedef struct kn_sigv4_auth {
    char access_key[129];
    char date[9];            /* YYYYMMDD */
    char region[33];
    char service[65];
    char signed_headers[1024];           /* as given: "content-type;host;..." */
    int n_signed;
    char signature[65];                  /* 64 lower-case hex digits */
} kn_sigv4_auth;

/* KN_BAD_FORMAT with a message naming the part that is wrong; KN_INVALID
 * for an algorithm other than AWS4-HMAC-SHA256. `value` need not be
 * NUL-terminated beyond `len`; at most 4096 bytes are considered. */
kn_status kn_api__sigv4_parse(const char *value, size_t len, kn_sigv4_auth *out, kn_err *e);

/* ------------------------------------------------------------- routes */

typedef enum kn_api_proto {
    KN_PROTO_JSON,       /* POST /, X-Amz-Target: <prefix>.<Op>, JSON 1.1 body */
    KN_PROTO_REST_JSON,  /* method + path template */
    KN_PROTO_QUERY,      /* form body (or query string) Action=<Op>&Version=..., XML replies */
    KN_PROTO_KENNEL,     /* kennel's own JSON routes (health) */
} kn_api_proto;

typedef struct kn_api_call kn_api_call;
typedef kn_status (*kn_api_handler)(kn_api_call *call);

typedef struct kn_api_route {
    kn_api_proto proto;
    const char *service;     /* SigV4 signing name: sagemaker, lambda, iam, ... */
    const char *op;          /* operation name (Query: Action) */
    const char *target;      /* JSON: X-Amz-Target value */
    const char *method;      /* REST/kennel: HTTP method */
    const char *path;        /* REST/kennel: template, {Label} = one segment */
    const char *version;     /* Query: API version */
    const char *iam_action;  /* "sagemaker:CreateModel"; NULL: needs no authorization */
    kn_api_handler handler;  /* NULL: known operation, not implemented yet */
} kn_api_route;

const kn_api_route *kn_api__routes(size_t *n);

#define KN_API_MAX_PATH_PARAMS 4
typedef struct kn_api_match {
    const kn_api_route *route;   /* NULL: no route matched */
    kn_api_proto proto;          /* protocol the request spoke (for the error shape) */
    char op[96];                 /* what the client asked for: target/Action/path */
    struct {
        char name[32];
        char value[256];         /* raw (still percent-encoded) segment */
    } params[KN_API_MAX_PATH_PARAMS];
    int n_params;
} kn_api_match;

/* Case-insensitive header lookup; NULL if absent. */
const char *kn_api__header(const kn_api_request *req, const char *name);

/* Finds the route for a request. `auth` (NULL if unsigned) breaks ties
 * between services. Query requests need the body (Action=). Never fails: a
 * miss leaves m->route NULL with m->proto set to the shape the error should
 * take. */
void kn_api__route_find(const kn_api_request *req, const kn_sigv4_auth *auth, kn_api_match *m);

/* Value of `key` in an application/x-www-form-urlencoded string, decoded
 * into out; false if absent, malformed or too long. */
bool kn_api__form_get(const char *form, size_t len, const char *key, char *out, size_t n);

/* --------------------------------------------------------- handlers */

struct kn_api_call {
    kn_api *api;
    const kn_api_request *req;
    const kn_api_match *match;
    const kn_sigv4_auth *auth;   /* NULL when unsigned or the header was malformed */
    json_t *input;               /* JSON protocols: the body object (never NULL) */
    json_t *output;              /* JSON protocols: set by the handler; NULL = {} */
    kn_api_response *resp;
    kn_err err;                  /* on failure: code + message for the client */
    /* on failure, optional overrides of the error's shape */
    const char *err_code;        /* AWS error name instead of kn_status_aws(err.code) */
    int err_http;                /* HTTP status instead of kn_status_http(err.code) */
    json_t *err_extra;           /* more members for a JSON error body (owned) */
    bool raw_response;           /* REST handlers that filled resp themselves */
    const kn_iam_identity *caller; /* the authenticated caller (secret wiped); NULL
                                    * without authentication */
};

/* --------------------------------------------------- authorization (authz.c) */

typedef struct kn_api_authz kn_api_authz;
kn_status kn_api__authz_new(kn_api_authz **out);
void kn_api__authz_free(kn_api_authz *z);

/* What the front door decided about a call, for the audit log. */
typedef struct kn_authz_result {
    bool authenticated;
    char principal[600];
    char action[128];
    char resource[1100];
    char decision[24];      /* Allow, ImplicitDeny, ExplicitDeny, AuthFailure, Error */
    char statement[300];    /* "<policy>#<index>[/<Sid>]" */
    kn_iam_identity caller; /* secret wiped */
} kn_authz_result;

/* Verifies the call's SigV4 signature and evaluates its route's IAM action
 * (and iam:PassRole for a role handed over). On failure the call's err,
 * err_code and err_http are set in the protocol's AWS shape. Sets
 * c->caller on success. */
kn_status kn_api__authorize(kn_api_call *c, kn_authz_result *res);
/* Writes the call's audit row (no-op without IAM). */
void kn_api__audit(kn_api_call *c, const kn_authz_result *res);

/* SageMaker control plane (sagemaker.c). */
kn_status kn_sm__create_model(kn_api_call *c);
kn_status kn_sm__describe_model(kn_api_call *c);
kn_status kn_sm__delete_model(kn_api_call *c);
kn_status kn_sm__list_models(kn_api_call *c);
kn_status kn_sm__create_endpoint_config(kn_api_call *c);
kn_status kn_sm__describe_endpoint_config(kn_api_call *c);
kn_status kn_sm__delete_endpoint_config(kn_api_call *c);
kn_status kn_sm__list_endpoint_configs(kn_api_call *c);
kn_status kn_sm__create_endpoint(kn_api_call *c);
kn_status kn_sm__describe_endpoint(kn_api_call *c);
kn_status kn_sm__delete_endpoint(kn_api_call *c);
kn_status kn_sm__list_endpoints(kn_api_call *c);
kn_status kn_sm__update_endpoint(kn_api_call *c);
kn_status kn_sm__update_endpoint_weights_and_capacities(kn_api_call *c);
/* Training and tuning jobs, all through kn_jobs_call (jobs.c). */
kn_status kn_sm__jobs(kn_api_call *c);
kn_status kn_api__job_logs(kn_api_call *c);
kn_status kn_api__job_metrics(kn_api_call *c);
/* Application Auto Scaling (autoscaling.c). */
kn_status kn_aas__register_scalable_target(kn_api_call *c);
kn_status kn_aas__describe_scalable_targets(kn_api_call *c);
kn_status kn_aas__deregister_scalable_target(kn_api_call *c);
kn_status kn_aas__put_scaling_policy(kn_api_call *c);
kn_status kn_aas__describe_scaling_policies(kn_api_call *c);
kn_status kn_aas__delete_scaling_policy(kn_api_call *c);
kn_status kn_aas__describe_scaling_activities(kn_api_call *c);
/* SageMaker Runtime (runtime.c). */
kn_status kn_smr__invoke_endpoint(kn_api_call *c);
/* IAM and STS, Query protocol (iam.c). */
kn_status kn_iam__create_user(kn_api_call *c);
kn_status kn_iam__create_access_key(kn_api_call *c);
kn_status kn_iam__delete_access_key(kn_api_call *c);
kn_status kn_iam__list_access_keys(kn_api_call *c);
kn_status kn_iam__create_role(kn_api_call *c);
kn_status kn_iam__get_role(kn_api_call *c);
kn_status kn_iam__delete_role(kn_api_call *c);
kn_status kn_iam__put_role_policy(kn_api_call *c);
kn_status kn_iam__get_role_policy(kn_api_call *c);
kn_status kn_iam__delete_role_policy(kn_api_call *c);
kn_status kn_iam__create_policy(kn_api_call *c);
kn_status kn_iam__attach_role_policy(kn_api_call *c);
kn_status kn_iam__detach_role_policy(kn_api_call *c);
kn_status kn_iam__attach_user_policy(kn_api_call *c);
kn_status kn_iam__put_user_policy(kn_api_call *c);
kn_status kn_iam__list_users(kn_api_call *c);
kn_status kn_iam__list_roles(kn_api_call *c);
kn_status kn_iam__list_attached_user_policies(kn_api_call *c);
kn_status kn_iam__list_attached_role_policies(kn_api_call *c);
kn_status kn_iam__list_user_policies(kn_api_call *c);
kn_status kn_iam__list_role_policies(kn_api_call *c);
kn_status kn_sts__assume_role(kn_api_call *c);
kn_status kn_sts__get_caller_identity(kn_api_call *c);
/* Lambda (lambda.c). */
kn_status kn_lambda__create_function(kn_api_call *c);
kn_status kn_lambda__get_function(kn_api_call *c);
kn_status kn_lambda__get_function_configuration(kn_api_call *c);
kn_status kn_lambda__list_functions(kn_api_call *c);
kn_status kn_lambda__delete_function(kn_api_call *c);
kn_status kn_lambda__update_function_code(kn_api_call *c);
kn_status kn_lambda__update_function_configuration(kn_api_call *c);
kn_status kn_lambda__publish_version(kn_api_call *c);
kn_status kn_lambda__list_versions(kn_api_call *c);
kn_status kn_lambda__create_alias(kn_api_call *c);
kn_status kn_lambda__get_alias(kn_api_call *c);
kn_status kn_lambda__update_alias(kn_api_call *c);
kn_status kn_lambda__delete_alias(kn_api_call *c);
kn_status kn_lambda__list_aliases(kn_api_call *c);
kn_status kn_lambda__put_function_concurrency(kn_api_call *c);
kn_status kn_lambda__get_function_concurrency(kn_api_call *c);
kn_status kn_lambda__delete_function_concurrency(kn_api_call *c);
kn_status kn_lambda__put_provisioned(kn_api_call *c);
kn_status kn_lambda__get_provisioned(kn_api_call *c);
kn_status kn_lambda__delete_provisioned(kn_api_call *c);
kn_status kn_lambda__get_account_settings(kn_api_call *c);
kn_status kn_lambda__list_tags(kn_api_call *c);
kn_status kn_lambda__tag_resource(kn_api_call *c);
kn_status kn_lambda__untag_resource(kn_api_call *c);
kn_status kn_lambda__invoke(kn_api_call *c);
kn_status kn_lambda__logs(kn_api_call *c);
kn_status kn_lambda__metrics(kn_api_call *c);
/* kennel's own routes (kennel.c) */
kn_status kn_api__health(kn_api_call *c);
kn_status kn_api__endpoint_metrics(kn_api_call *c);
kn_status kn_api__prometheus(kn_api_call *c);
kn_status kn_api__instance_types(kn_api_call *c);
kn_status kn_api__iam_lint(kn_api_call *c);
kn_status kn_api__audit_events(kn_api_call *c);
/* Adds a response header (silently dropped beyond KN_API_MAX_RESP_HEADERS). */
void kn_api__add_header(kn_api_response *r, const char *name, const char *value);
/* console.c: the web console's embedded files */
kn_status kn_api__console(kn_api_call *c);
const unsigned char *kn_api__console_asset(const char *name, size_t *size, const char **type);

/* ------------------------------------------------------- validation */

/* Collects input errors the way AWS's JSON services report them:
 * constraint violations become one ValidationException listing them all
 * ("2 validation errors detected: Value null at 'modelName' failed to
 * satisfy constraint: Member must not be null; ..."), and a member of the
 * wrong JSON type is a SerializationException naming the member. Paths are
 * AWS's: lower-camel member names, list items as "<list>.<1-based>.member". */
#define KN_VAL_KEEP 8
typedef struct kn_val {
    int n_errors;                 /* constraint violations seen */
    char msgs[KN_VAL_KEEP][320];  /* the first KN_VAL_KEEP of them */
    bool serialization;           /* a type error was seen (wins) */
    char ser_msg[320];
} kn_val;

void kn_val_init(kn_val *v);
bool kn_val_ok(const kn_val *v);
/* Records a constraint violation (printf-style, already "Value ... at ..."). */
void kn_val_fail(kn_val *v, const char *fmt, ...) KN_PRINTF(2, 3);
/* Turns the collected errors into a status + message; KN_OK if none. */
kn_status kn_val_finish(const kn_val *v, kn_err *e);
/* AWS member path: prefix "" + "ModelName" -> "modelName";
 * "primaryContainer" + "ModelDataUrl" -> "primaryContainer.modelDataUrl". */
void kn_val_path(char *out, size_t n, const char *prefix, const char *member);

typedef bool (*kn_val_check)(const char *s);
typedef struct kn_val_str_spec {
    bool required;
    size_t min, max;          /* length bounds in characters (max 0 = none) */
    kn_val_check check;       /* pattern check, NULL = any */
    const char *pattern;      /* the pattern as AWS prints it */
    const char *const *enum_values; /* NULL-terminated, or NULL */
} kn_val_str_spec;

/* Each getter returns the member (NULL/false if absent or wrong) and records
 * what is wrong. `prefix` is the AWS path of `obj` ("" at the top). */
const char *kn_val_str(kn_val *v, json_t *obj, const char *prefix, const char *member,
                       const kn_val_str_spec *spec);
bool kn_val_int(kn_val *v, json_t *obj, const char *prefix, const char *member, bool required,
                long long min, long long max, long long *out);
bool kn_val_num(kn_val *v, json_t *obj, const char *prefix, const char *member, bool required,
                double min, double *out);
bool kn_val_bool(kn_val *v, json_t *obj, const char *prefix, const char *member, bool *out);
json_t *kn_val_obj(kn_val *v, json_t *obj, const char *prefix, const char *member,
                   bool required);
json_t *kn_val_list(kn_val *v, json_t *obj, const char *prefix, const char *member,
                    bool required, size_t min, size_t max);
/* A timestamp member (epoch seconds, as botocore sends them). */
bool kn_val_time(kn_val *v, json_t *obj, const char *prefix, const char *member, double *out);
/* Tags: [{Key, Value}] with AWS's limits; returns the list or NULL. */
json_t *kn_val_tags(kn_val *v, json_t *obj, const char *prefix);
/* An enum member: one of `values` (NULL-terminated). */
const char *kn_val_enum(kn_val *v, json_t *obj, const char *prefix, const char *member,
                        bool required, const char *const *values);
/* Refuses members kennel does not implement, naming them. */
void kn_val_unsupported(kn_val *v, json_t *obj, const char *prefix,
                        const char *const *members);

/* Resource names: ^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$, at most 63 chars. */
bool kn_val_is_name(const char *s);
extern const kn_val_str_spec kn_val_name_required;
#define KN_NAME_PATTERN "^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}"

/* Percent-decodes a path segment into out; false on a bad escape, a NUL
 * byte or overflow. */
bool kn_api__url_decode(const char *s, char *out, size_t n);
/* Fills the call's response from a JSON value (handlers' output). */
void kn_api__json_response(kn_api_response *r, int status, const char *content_type,
                           json_t *body);

#endif
