/* The front door over HTTP/1.1: libmicrohttpd, one thread per connection
 * (keep-alive connections stay cheap to serve and a slow request never
 * blocks another). Each request's body is read into a buffer bounded by the
 * api's max_body: a larger Content-Length is refused before any of it is
 * read and a body that grows past it stops being kept, and either way the
 * answer is 413 in the protocol's error shape. The path reaches kn_api raw
 * (still percent-encoded), because the signature covers the raw path.
 * Thread-safe; kn_api_http_stop waits for requests in flight.
 */
#include "api_int.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_HEADERS 128

struct kn_api_http {
    kn_api *api;
    struct MHD_Daemon *d;
    int port;
};

typedef struct req_ctx {
    kn_buf body;
    bool too_large;
    bool started;
    char *raw_query;  /* the query exactly as sent (NULL if none): the signature
                       * covers it, empty pairs included */
} req_ctx;

kn_api_http_params kn_api_http_default_params(void)
{
    kn_api_http_params p = {
        .host = "127.0.0.1", .port = 0, .max_connections = 256, .idle_timeout_s = 120};
    return p;
}

typedef struct header_list {
    kn_api_header h[MAX_HEADERS];
    size_t n;
    char query[8192];
    size_t qlen;
    bool query_overflow;
} header_list;

static enum MHD_Result collect_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                      const char *value)
{
    (void)kind;
    header_list *l = cls;
    if (l->n < MAX_HEADERS) {
        l->h[l->n].name = key;
        l->h[l->n].value = value ? value : "";
        l->n++;
    }
    return MHD_YES;
}

/* Rebuilds the raw query string (values are not unescaped, see below). */
static enum MHD_Result collect_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                                   const char *value)
{
    (void)kind;
    header_list *l = cls;
    int n = snprintf(l->query + l->qlen, sizeof l->query - l->qlen, "%s%s%s%s",
                     l->qlen ? "&" : "", key, value ? "=" : "", value ? value : "");
    if (n < 0 || (size_t)n >= sizeof l->query - l->qlen)
        l->query_overflow = true;
    else
        l->qlen += (size_t)n;
    return MHD_YES;
}

/* Keeps the URL and arguments exactly as sent. */
static size_t no_unescape(void *cls, struct MHD_Connection *c, char *s)
{
    (void)cls, (void)c;
    return strlen(s);
}

static enum MHD_Result send_response(struct MHD_Connection *conn, kn_api_response *r)
{
    size_t len = r->body.len;
    uint8_t *data = kn_buf_take(&r->body, &len);
    struct MHD_Response *resp =
        data ? MHD_create_response_from_buffer(len, data, MHD_RESPMEM_MUST_FREE)
             : MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    if (!resp) {
        free(data);
        return MHD_NO;
    }
    if (r->content_type[0])
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, r->content_type);
    for (int i = 0; i < r->n_headers; i++)
        MHD_add_response_header(resp, r->headers[i].name, r->headers[i].value);
    enum MHD_Result ret = MHD_queue_response(conn, (unsigned)r->status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_size, void **con_cls)
{
    (void)version;
    kn_api_http *h = cls;
    req_ctx *ctx = *con_cls;
    if (!ctx)
        return MHD_NO;
    if (!ctx->started) {
        ctx->started = true;
        kn_buf_init(&ctx->body, h->api->max_body);
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                     MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl && strtoull(cl, NULL, 10) > h->api->max_body)
            ctx->too_large = true;
        *con_cls = ctx;
        return MHD_YES;
    }
    if (*upload_size) {
        if (!ctx->too_large && kn_buf_append(&ctx->body, upload_data, *upload_size) != KN_OK) {
            ctx->too_large = true;
            kn_buf_deinit(&ctx->body);
            kn_buf_init(&ctx->body, h->api->max_body);
        }
        *upload_size = 0;
        return MHD_YES;
    }
    header_list *hl = calloc(1, sizeof *hl);
    if (!hl)
        return MHD_NO;
    MHD_get_connection_values(conn, MHD_HEADER_KIND, collect_header, hl);
    MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, collect_arg, hl);
    char source[INET6_ADDRSTRLEN] = "";
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (ci && ci->client_addr) {
        const struct sockaddr *sa = ci->client_addr;
        if (sa->sa_family == AF_INET)
            inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, source, sizeof source);
        else if (sa->sa_family == AF_INET6)
            inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, source,
                      sizeof source);
    }
    kn_api_request req = {.method = method,
                          .path = url,
                          .query = ctx->raw_query ? ctx->raw_query : hl->qlen ? hl->query : NULL,
                          .headers = hl->h,
                          .n_headers = hl->n,
                          .body = ctx->body.data,
                          .body_len = ctx->body.len,
                          .body_too_large = ctx->too_large,
                          .source = source[0] ? source : NULL};
    kn_api_response resp;
    kn_api_response_init(&resp);
    kn_api_handle(h->api, &req, &resp);
    kn_log(KN_LOG_DEBUG, "%s %s %s -> %d %s (%s)", method, url, resp.operation, resp.status,
           resp.error_code, resp.request_id);
    enum MHD_Result ret = send_response(conn, &resp);
    kn_api_response_deinit(&resp);
    free(hl);
    return ret;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls, (void)conn, (void)toe;
    req_ctx *ctx = *con_cls;
    if (ctx) {
        kn_buf_deinit(&ctx->body);
        free(ctx->raw_query);
        free(ctx);
        *con_cls = NULL;
    }
}

/* Called with the request line's URI before libmicrohttpd parses it: the
 * context of the request starts here, keeping the raw query. */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
    (void)cls, (void)conn;
    req_ctx *ctx = calloc(1, sizeof *ctx);
    if (!ctx)
        return NULL;
    const char *q = uri ? strchr(uri, '?') : NULL;
    if (q && q[1] && strlen(q + 1) < 65536)
        ctx->raw_query = strdup(q + 1);
    return ctx;
}

kn_status kn_api_http_start(kn_api *a, const kn_api_http_params *p, kn_api_http **out,
                            kn_err *e)
{
    kn_api_http_params d = p ? *p : kn_api_http_default_params();
    *out = NULL;
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)d.port);
    if (d.port < 0 || d.port > 65535 || inet_pton(AF_INET, d.host ? d.host : "127.0.0.1",
                                                  &addr.sin_addr) != 1)
        return kn_err_set(e, KN_INVALID, "cannot listen on %s:%d: not an IPv4 address and port",
                          d.host ? d.host : "127.0.0.1", d.port);
    kn_api_http *h = calloc(1, sizeof *h);
    if (!h)
        return kn_err_set(e, KN_NOMEM, "out of memory");
    h->api = a;
    h->d = MHD_start_daemon(
        MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG,
        0, NULL, NULL, on_request, h, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)(d.max_connections ? d.max_connections : 256),
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)(d.idle_timeout_s ? d.idle_timeout_s : 120),
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, h, MHD_OPTION_URI_LOG_CALLBACK, on_uri, h,
        MHD_OPTION_UNESCAPE_CALLBACK, no_unescape,
        h, MHD_OPTION_END);
    if (!h->d) {
        free(h);
        return kn_err_set(e, KN_IO, "cannot listen on %s:%d (address in use or not available)",
                          d.host ? d.host : "127.0.0.1", d.port);
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
    h->port = info ? info->port : d.port;
    *out = h;
    return KN_OK;
}

int kn_api_http_port(const kn_api_http *h)
{
    return h->port;
}

void kn_api_http_stop(kn_api_http *h)
{
    if (!h)
        return;
    MHD_stop_daemon(h->d);
    free(h);
}
