/* kennel fn: Lambda-compatible functions.
 *
 * A function is a zip whose executable `bootstrap` speaks the Lambda
 * Runtime API. kn_fn keeps every function (its $LATEST configuration,
 * published versions, aliases, reserved and provisioned concurrency) in
 * memory and in the registry, and runs execution environments for it:
 *
 *  - an environment is one process running `bootstrap` in the function's
 *    extracted code directory, with the environment variables Lambda gives
 *    (AWS_LAMBDA_RUNTIME_API, _HANDLER, AWS_LAMBDA_FUNCTION_NAME/VERSION/
 *    MEMORY_SIZE, AWS_REGION, the execution role's temporary credentials,
 *    AWS_ENDPOINT_URL = this daemon),
 *    its data size limited to MemorySize (RLIMIT_DATA), its stdout and stderr
 *    captured as the function's log. Each environment has its own Runtime
 *    API listener on 127.0.0.1 served by the environment's thread, so a
 *    request needs no lookup to know whose it is.
 *  - invocations take a lease from the concurrency pool (kn_scale_pool):
 *    provisioned environments first, then on-demand ones (reused while warm,
 *    started cold otherwise), or a throttle with Lambda's Reason.
 *  - a timeout kills the environment (Sandbox.Timedout), a process that
 *    exits mid-invocation is Runtime.ExitError, a response over 6291556
 *    bytes is Function.ResponseSizeTooLarge; each invocation writes START,
 *    END and REPORT lines (Init Duration on cold starts) to the log.
 *  - idle on-demand environments are reaped after idle_ms; Event
 *    invocations wait in a durable queue in the registry.
 *
 * Control-plane calls take and return JSON in Lambda's shapes
 * (FunctionConfiguration, AliasConfiguration, ...), owned by the caller.
 * Errors: KN_NOT_FOUND (ResourceNotFoundException), KN_EXISTS
 * (ResourceConflictException), KN_INVALID (InvalidParameterValueException),
 * KN_SHAPE (ValidationException), KN_RESOURCE_LIMIT (throttled), with
 * Lambda's message in kn_err. Thread-safe.
 */
#ifndef KENNEL_FN_H
#define KENNEL_FN_H

#include "kennel/core.h"
#include "kennel/platform.h"

#include <jansson.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Lambda's payload limits. */
#define KN_FN_MAX_RESPONSE ((size_t)6291556)
#define KN_FN_MAX_ZIP ((size_t)50 * 1024 * 1024)
#define KN_FN_MAX_UNZIPPED ((size_t)250 * 1024 * 1024)
#define KN_FN_TAIL_BYTES 4096

typedef struct kn_fn kn_fn;

typedef struct kn_fn_params {
    int account_limit;      /* ConcurrentExecutions, default 1000 */
    int min_unreserved;     /* default 100 */
    unsigned idle_ms;       /* reap idle on-demand environments after, default 600000 */
    unsigned init_timeout_ms; /* on-demand Init phase limit, default 10000 */
    kn_iam *iam;            /* execution roles: environments get temporary credentials of
                               the function's Role (which Lambda must be able to assume);
                               NULL (no authentication): the credentials below */
    const char *access_key; /* credentials given to environments without iam (NULL: none) */
    const char *secret_key;
    const char *session_token;
} kn_fn_params;
KN_API kn_fn_params kn_fn_default_params(void);

/* `p` must outlive the kn_fn. Loads the stored functions, brings their
 * provisioned concurrency back up and resumes queued Event invocations. */
KN_API kn_status kn_fn_start(kn_platform *p, const kn_fn_params *fp, kn_fn **out, kn_err *e);
/* Stops every environment (NULL ok). */
KN_API void kn_fn_stop(kn_fn *f);
/* AWS_ENDPOINT_URL given to environments started from now on. */
KN_API void kn_fn_set_endpoint_url(kn_fn *f, const char *url);

/* Settable configuration; NULL / 0 members are "not given". */
typedef struct kn_fn_config {
    const char *runtime, *role, *handler, *description;
    int timeout_s;          /* 1..900, default 3 */
    int memory_mb;          /* 128..10240, default 128 */
    json_t *environment;    /* {"VAR": "value"} (borrowed), or NULL */
} kn_fn_config;

/* CreateFunction from zip bytes; `publish` also publishes version 1. */
KN_API kn_status kn_fn_create(kn_fn *f, const char *name, const kn_fn_config *c,
                              const uint8_t *zip, size_t zip_len, bool publish, json_t **out,
                              kn_err *e);
/* FunctionConfiguration of name[:qualifier] (qualifier NULL = $LATEST). */
KN_API kn_status kn_fn_get(kn_fn *f, const char *name, const char *qualifier, json_t **out,
                           kn_err *e);
/* An array of the $LATEST configurations, by name. */
KN_API json_t *kn_fn_list(kn_fn *f);
/* All versions of a function ($LATEST first). */
KN_API kn_status kn_fn_list_versions(kn_fn *f, const char *name, json_t **out, kn_err *e);
/* DeleteFunction (qualifier NULL: the whole function; else one version). */
KN_API kn_status kn_fn_delete(kn_fn *f, const char *name, const char *qualifier, kn_err *e);
KN_API kn_status kn_fn_update_code(kn_fn *f, const char *name, const uint8_t *zip,
                                   size_t zip_len, bool publish, json_t **out, kn_err *e);
KN_API kn_status kn_fn_update_config(kn_fn *f, const char *name, const kn_fn_config *c,
                                     json_t **out, kn_err *e);
KN_API kn_status kn_fn_publish(kn_fn *f, const char *name, const char *description,
                               json_t **out, kn_err *e);

/* Aliases. put: create (KN_EXISTS if taken) or update (KN_NOT_FOUND if
 * absent); version NULL keeps it on update. */
KN_API kn_status kn_fn_alias_put(kn_fn *f, const char *name, const char *alias,
                                 const char *version, const char *description, bool create,
                                 json_t **out, kn_err *e);
KN_API kn_status kn_fn_alias_get(kn_fn *f, const char *name, const char *alias, json_t **out,
                                 kn_err *e);
KN_API kn_status kn_fn_alias_delete(kn_fn *f, const char *name, const char *alias, kn_err *e);
KN_API kn_status kn_fn_alias_list(kn_fn *f, const char *name, json_t **out, kn_err *e);

/* Reserved concurrency; n < 0 deletes it. get: *n = -1 when none. */
KN_API kn_status kn_fn_reserved_set(kn_fn *f, const char *name, int n, kn_err *e);
KN_API kn_status kn_fn_reserved_get(kn_fn *f, const char *name, int *n, kn_err *e);
/* Provisioned concurrency on a version or alias: put starts its
 * environments (IN_PROGRESS, then READY or FAILED). */
KN_API kn_status kn_fn_provisioned_put(kn_fn *f, const char *name, const char *qualifier,
                                       int n, json_t **out, kn_err *e);
KN_API kn_status kn_fn_provisioned_get(kn_fn *f, const char *name, const char *qualifier,
                                       json_t **out, kn_err *e);
KN_API kn_status kn_fn_provisioned_delete(kn_fn *f, const char *name, const char *qualifier,
                                          kn_err *e);
KN_API kn_status kn_fn_provisioned_list(kn_fn *f, const char *name, json_t **out, kn_err *e);

/* GetAccountSettings: {AccountLimit{...}, AccountUsage{...}}. */
KN_API json_t *kn_fn_account(kn_fn *f);

typedef enum kn_fn_invoke_type {
    KN_FN_REQUEST_RESPONSE,
    KN_FN_EVENT,
    KN_FN_DRY_RUN
} kn_fn_invoke_type;

typedef struct kn_fn_invoke_params {
    const char *name;          /* name, ARN or partial ARN, may hold ":qualifier" */
    const char *qualifier;     /* NULL = from the name, else $LATEST */
    kn_fn_invoke_type type;
    bool tail;                 /* X-Amz-Log-Type: Tail */
    const char *client_context; /* base64, or NULL */
    const uint8_t *payload;
    size_t len;
} kn_fn_invoke_params;

typedef struct kn_fn_result {
    int status;                 /* 200, 202, 204 */
    char executed_version[16];
    char function_error[16];    /* "", "Unhandled" or "Handled" */
    kn_buf payload;             /* the function's answer, or the error document */
    char log_tail[5600];        /* base64 of the last 4 KB of the log (tail only) */
    const char *throttle_reason; /* on KN_RESOURCE_LIMIT */
    bool provisioned;           /* ran on a provisioned environment */
    bool cold;                  /* started an environment (has Init Duration) */
} kn_fn_result;
KN_API void kn_fn_result_init(kn_fn_result *r);
KN_API void kn_fn_result_deinit(kn_fn_result *r);

/* Invoke. KN_OK with the result filled in (function errors included);
 * KN_NOT_FOUND for an unknown function or qualifier; KN_RESOURCE_LIMIT
 * when throttled (r->throttle_reason); KN_INVALID for a payload that is not
 * JSON. */
KN_API kn_status kn_fn_invoke(kn_fn *f, const kn_fn_invoke_params *p, kn_fn_result *r,
                              kn_err *e);

/* Splits a FunctionName (name, ARN "arn:aws:lambda:r:a:function:n[:q]" or
 * partial "a:function:n[:q]", or "n:q") into name and qualifier ("" when
 * none). false when it is none of those. */
KN_API bool kn_fn_name_parse(const char *in, char *name, size_t name_n, char *qual,
                             size_t qual_n);

/* Tags of a function ({"key": "value"}, a copy), and changes to them:
 * `set` merged in (borrowed, may be NULL), then the `remove` keys dropped;
 * more than KN_FN_MAX_TAGS is KN_INVALID and changes nothing. */
#define KN_FN_MAX_TAGS 50
KN_API kn_status kn_fn_tags_get(kn_fn *f, const char *name, json_t **out, kn_err *e);
KN_API kn_status kn_fn_tags_update(kn_fn *f, const char *name, json_t *set,
                                   const char *const *remove, size_t n_remove, kn_err *e);

/* Prometheus text about every function. */
KN_API kn_status kn_fn_prometheus(kn_fn *f, kn_buf *b);
/* The function's log file (whole), into b. */
KN_API kn_status kn_fn_logs(kn_fn *f, const char *name, kn_buf *b, kn_err *e);
/* Per-minute metrics as JSON. */
KN_API kn_status kn_fn_metrics(kn_fn *f, const char *name, int minutes, json_t **out,
                               kn_err *e);

/* ---- pieces exposed for tests and fuzzing ---- */

/* Walks a zip held in memory; with `dir` non-NULL extracts it there
 * (which must exist and be empty). Refuses absolute paths, "..", links,
 * devices, more than 10000 entries or more than KN_FN_MAX_UNZIPPED bytes.
 * *has_bootstrap tells whether a regular file "bootstrap" is at the top.
 * KN_BAD_FORMAT naming the entry. */
KN_API kn_status kn_fn_zip_extract(const uint8_t *zip, size_t len, const char *dir,
                                   size_t *unzipped, bool *has_bootstrap, kn_err *e);

/* One HTTP/1.1 request head as the Runtime API reads it. */
typedef struct kn_fn_http_req {
    char method[8];
    char path[256];
    long long content_length;   /* -1: none */
    bool chunked;
    bool close;                 /* Connection: close */
    char error_type[128];       /* Lambda-Runtime-Function-Error-Type */
    size_t head_len;            /* bytes of the head incl. the blank line */
} kn_fn_http_req;
/* KN_OK when a whole head is in buf (fills r); KN_NOT_FOUND when more
 * bytes are needed; KN_BAD_FORMAT for a malformed or oversized head. */
KN_API kn_status kn_fn_http_parse(const char *buf, size_t len, kn_fn_http_req *r, kn_err *e);

#ifdef __cplusplus
}
#endif
#endif
