/* kennel api: the daemon's front door and its AWS protocol adapters.
 *
 * Two layers:
 *  - kn_api turns one HTTP request (method, raw path, headers, body) into one
 *    response. It detects the protocol (JSON 1.1 by X-Amz-Target, Query by a
 *    form body with Action=, REST-JSON by method + path), reads the SigV4
 *    Authorization header's credential scope to tell services apart, finds
 *    the operation in one declarative route table (which also names each
 *    operation's IAM action), validates the input the way AWS does and calls
 *    the handler. Errors come back in the protocol's AWS shape with the
 *    request id. kn_api_handle never fails: every problem is a response.
 *  - kn_api_http serves kn_api over HTTP/1.1 with libmicrohttpd (a thread
 *    per connection; request bodies are bounded before they are read).
 *
 * Both are thread-safe; a kn_api must outlive the kn_api_http serving it.
 */
#ifndef KENNEL_API_H
#define KENNEL_API_H

#include "kennel/core.h"
#include "kennel/platform.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The largest request body accepted: 6 MiB, InvokeEndpoint's limit. */
#define KN_API_MAX_BODY ((size_t)6 * 1024 * 1024)

typedef struct kn_api kn_api;

typedef struct kn_api_params {
    size_t max_body;        /* default KN_API_MAX_BODY */
    kn_fleet *fleet;        /* runs endpoints; NULL = endpoint operations are unavailable */
    kn_iam *iam;            /* identities: every call is SigV4-verified and authorized
                             * against IAM policies, and audited; NULL = no
                             * authentication at all (--insecure-no-auth) */
    struct kn_jobs *jobs;   /* runs training/tuning jobs (kennel/jobs.h); NULL = unavailable */
    double auth_time;       /* fixed calendar time (epoch s) for signature and
                             * session-expiry checks, for replaying recorded
                             * requests in tests; 0 = the system clock */
    struct kn_fn *fn;       /* runs functions; NULL = function operations are unavailable */
} kn_api_params;
KN_API kn_api_params kn_api_default_params(void);

/* `p` is borrowed and must outlive the kn_api. Free with kn_api_free (NULL ok). */
KN_API kn_status kn_api_new(kn_platform *p, const kn_api_params *params, kn_api **out,
                            kn_err *e);
KN_API void kn_api_free(kn_api *a);

typedef struct kn_api_header {
    const char *name;       /* any letter case */
    const char *value;
} kn_api_header;

/* A request as read off the wire; everything is borrowed for the call. */
typedef struct kn_api_request {
    const char *method;     /* "POST" */
    const char *path;       /* raw (percent-encoded) path without the query */
    const char *query;      /* raw query without '?', or NULL */
    const kn_api_header *headers;
    size_t n_headers;
    const uint8_t *body;
    size_t body_len;
    bool body_too_large;    /* the front door stopped reading: answer 413 */
    const char *source;     /* client address ("127.0.0.1"), NULL if unknown */
} kn_api_request;

#define KN_API_MAX_RESP_HEADERS 8
typedef struct kn_api_response {
    int status;
    char content_type[64];
    struct {
        char name[48];
        char value[5632];   /* X-Amz-Log-Result: base64 of 4 KB */
    } headers[KN_API_MAX_RESP_HEADERS];
    int n_headers;
    kn_buf body;            /* take it with kn_buf_take, or deinit the response */
    /* for the access log */
    char request_id[40];
    char operation[96];     /* "SageMaker.CreateModel", "" if none matched */
    char error_code[64];    /* AWS error name, "" on success */
} kn_api_response;

KN_API void kn_api_response_init(kn_api_response *r);
KN_API void kn_api_response_deinit(kn_api_response *r);
/* Value of a response header (case-insensitive name), NULL if absent. */
KN_API const char *kn_api_response_header(const kn_api_response *r, const char *name);

/* Answers one request: `resp` must be initialised; it is filled in. */
KN_API void kn_api_handle(kn_api *a, const kn_api_request *req, kn_api_response *resp);

/* ---------------------------------------------------------- HTTP server */

typedef struct kn_api_http kn_api_http;

typedef struct kn_api_http_params {
    const char *host;           /* IPv4 address to bind, default "127.0.0.1" */
    int port;                   /* 0 = any free port */
    unsigned max_connections;   /* default 256 */
    unsigned idle_timeout_s;    /* close idle keep-alive connections, default 120 */
} kn_api_http_params;
KN_API kn_api_http_params kn_api_http_default_params(void);

/* Binds and starts serving `a` on background threads. KN_INVALID for a bad
 * address, KN_IO when the port cannot be bound. Stop with kn_api_http_stop
 * (NULL ok), which waits for requests in flight. */
KN_API kn_status kn_api_http_start(kn_api *a, const kn_api_http_params *p, kn_api_http **out,
                                   kn_err *e);
KN_API int kn_api_http_port(const kn_api_http *h);
KN_API void kn_api_http_stop(kn_api_http *h);

#ifdef __cplusplus
}
#endif
#endif
