/* kn_runtime: the Runtime API loop over one kept-alive TCP connection to
 * $AWS_LAMBDA_RUNTIME_API (host:port; loopback in practice). Responses are
 * read by Content-Length; a broken connection is reopened once per request.
 * No global state beyond the connection owned by kn_runtime_main's frame.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "kn_runtime.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_EVENT ((size_t)6 * 1024 * 1024 + 65536)

/* ------------------------------------------------------------ buffers */

static int reserve(kn_buf *b, size_t extra)
{
    if (b->len + extra + 1 <= b->cap)
        return 0;
    if (b->max && b->len + extra > b->max)
        return -1;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra + 1)
        cap *= 2;
    uint8_t *p = realloc(b->data, cap);
    if (!p)
        return -1;
    b->data = p;
    b->cap = cap;
    return 0;
}

int kn_runtime_append(kn_buf *b, const void *p, size_t n)
{
    if (reserve(b, n))
        return -1;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = 0;
    return 0;
}

int kn_runtime_appendf(kn_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || reserve(b, (size_t)n))
        return -1;
    va_start(ap, fmt);
    vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

int kn_runtime_append_json_string(kn_buf *b, const char *s, size_t n)
{
    if (kn_runtime_append(b, "\"", 1))
        return -1;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        int r;
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            r = kn_runtime_append(b, esc, 2);
        } else if (c == '\n') {
            r = kn_runtime_append(b, "\\n", 2);
        } else if (c < 0x20) {
            r = kn_runtime_appendf(b, "\\u%04x", c);
        } else {
            r = kn_runtime_append(b, &s[i], 1);
        }
        if (r)
            return -1;
    }
    return kn_runtime_append(b, "\"", 1);
}

/* --------------------------------------------------------------- HTTP */

static void copy_value(char *dst, size_t n, const char *v, size_t vl)
{
    size_t k = vl < n - 1 ? vl : n - 1;
    memcpy(dst, v, k);
    dst[k] = 0;
}

int kn_runtime_parse_head(const char *buf, size_t len, kn_runtime_head *h)
{
    memset(h, 0, sizeof *h);
    h->content_length = -1;
    const char *end = NULL;
    size_t lim = len < 65536 ? len : 65536;
    for (size_t i = 0; i + 3 < lim; i++)
        if (memcmp(buf + i, "\r\n\r\n", 4) == 0) {
            end = buf + i;
            break;
        }
    if (!end)
        return len >= 65536 ? -1 : 0;
    h->head_len = (size_t)(end - buf) + 4;
    if (end - buf < 12 || memcmp(buf, "HTTP/1.", 7) != 0 || buf[8] != ' ')
        return -1;
    int st = 0;
    for (int i = 9; i < 12; i++) {
        if (buf[i] < '0' || buf[i] > '9')
            return -1;
        st = st * 10 + (buf[i] - '0');
    }
    h->status = st;
    const char *p = memchr(buf, '\n', (size_t)(end - buf));
    while (p && p < end) {
        p++;
        const char *eol = memchr(p, '\r', (size_t)(end - p) + 1);
        if (!eol)
            break;
        const char *colon = memchr(p, ':', (size_t)(eol - p));
        if (colon) {
            size_t kl = (size_t)(colon - p);
            const char *v = colon + 1;
            while (v < eol && (*v == ' ' || *v == '\t'))
                v++;
            size_t vl = (size_t)(eol - v);
#define IS(name) (kl == sizeof name - 1 && strncasecmp(p, name, kl) == 0)
            if (IS("Content-Length")) {
                long long x = 0;
                if (vl == 0 || vl > 12)
                    return -1;
                for (size_t i = 0; i < vl; i++) {
                    if (v[i] < '0' || v[i] > '9')
                        return -1;
                    x = x * 10 + (v[i] - '0');
                }
                h->content_length = x;
            } else if (IS("Lambda-Runtime-Aws-Request-Id")) {
                copy_value(h->request_id, sizeof h->request_id, v, vl);
            } else if (IS("Lambda-Runtime-Deadline-Ms")) {
                copy_value(h->deadline, sizeof h->deadline, v, vl);
            } else if (IS("Lambda-Runtime-Invoked-Function-Arn")) {
                copy_value(h->arn, sizeof h->arn, v, vl);
            } else if (IS("Lambda-Runtime-Trace-Id")) {
                copy_value(h->trace_id, sizeof h->trace_id, v, vl);
            } else if (IS("Lambda-Runtime-Client-Context")) {
                copy_value(h->client_context, sizeof h->client_context, v, vl);
            }
#undef IS
        }
        p = eol + 1;
    }
    return 1;
}

typedef struct rt_conn {
    int fd;
    char host[256];
    char port[16];
    kn_buf in;
} rt_conn;

static int rt_connect(rt_conn *c)
{
    if (c->fd >= 0)
        return 0;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res;
    if (getaddrinfo(c->host, c->port, &hints, &res) != 0)
        return -1;
    for (struct addrinfo *a = res; a; a = a->ai_next) {
        int fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, 0);
        if (fd < 0)
            continue;
        if (connect(fd, a->ai_addr, a->ai_addrlen) == 0) {
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            c->fd = fd;
            break;
        }
        close(fd);
    }
    freeaddrinfo(res);
    c->in.len = 0;
    return c->fd >= 0 ? 0 : -1;
}

static void rt_close(rt_conn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->in.len = 0;
}

static int send_all(int fd, const void *p, size_t n)
{
    const char *s = p;
    while (n) {
        ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        s += w;
        n -= (size_t)w;
    }
    return 0;
}

/* One request/response exchange; the body lands in *body (c->in). */
static int exchange(rt_conn *c, const char *method, const char *path, const char *extra,
                    const void *body, size_t blen, kn_runtime_head *h, const uint8_t **rbody)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        if (rt_connect(c))
            return -1;
        char head[1024];
        int n = snprintf(head, sizeof head,
                         "%s %s HTTP/1.1\r\nHost: %s:%s\r\n%sContent-Length: %zu\r\n\r\n", method,
                         path, c->host, c->port, extra ? extra : "", blen);
        int ok;
        if (blen && blen < 16384) {
            char *all = malloc((size_t)n + blen);
            if (!all)
                return -1;
            memcpy(all, head, (size_t)n);
            memcpy(all + n, body, blen);
            ok = send_all(c->fd, all, (size_t)n + blen);
            free(all);
        } else {
            ok = send_all(c->fd, head, (size_t)n);
            if (!ok && blen)
                ok = send_all(c->fd, body, blen);
        }
        if (ok) {
            rt_close(c);
            continue;
        }
        c->in.len = 0;
        int parsed = 0;
        for (;;) {
            if (reserve(&c->in, 65536))
                return -1;
            ssize_t got = recv(c->fd, c->in.data + c->in.len, 65536, 0);
            if (got < 0 && errno == EINTR)
                continue;
            if (got <= 0)
                break;
            c->in.len += (size_t)got;
            if (!parsed) {
                parsed = kn_runtime_parse_head((const char *)c->in.data, c->in.len, h);
                if (parsed < 0) {
                    rt_close(c);
                    return -1;
                }
            }
            if (parsed > 0) {
                size_t need = h->content_length > 0 ? (size_t)h->content_length : 0;
                if (need > MAX_EVENT) {
                    rt_close(c);
                    return -1;
                }
                if (c->in.len >= h->head_len + need) {
                    c->in.data[h->head_len + need] = 0;
                    *rbody = c->in.data + h->head_len;
                    return 0;
                }
            }
        }
        rt_close(c);
        if (attempt == 0 && parsed == 0)
            continue; /* the kept-alive connection had gone: once more */
        return -1;
    }
    return -1;
}

long long kn_runtime_remaining_ms(const kn_context *ctx)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    long long now = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    long long left = (long long)ctx->deadline_ms - now;
    return left > 0 ? left : 0;
}

static int setup(rt_conn *c)
{
    memset(c, 0, sizeof *c);
    c->fd = -1;
    const char *api = getenv("AWS_LAMBDA_RUNTIME_API");
    if (!api || !*api) {
        fprintf(stderr, "kn_runtime: AWS_LAMBDA_RUNTIME_API is not set\n");
        return -1;
    }
    const char *colon = strrchr(api, ':');
    if (!colon || colon == api || (size_t)(colon - api) >= sizeof c->host ||
        strlen(colon + 1) >= sizeof c->port) {
        fprintf(stderr, "kn_runtime: AWS_LAMBDA_RUNTIME_API '%s' is not host:port\n", api);
        return -1;
    }
    memcpy(c->host, api, (size_t)(colon - api));
    snprintf(c->port, sizeof c->port, "%s", colon + 1);
    return 0;
}

int kn_runtime_init_error(const char *error_type, const char *message)
{
    rt_conn c;
    if (setup(&c))
        return 1;
    kn_buf body = {0};
    kn_runtime_append(&body, "{\"errorMessage\":", 16);
    kn_runtime_append_json_string(&body, message, strlen(message));
    kn_runtime_append(&body, ",\"errorType\":", 13);
    kn_runtime_append_json_string(&body, error_type, strlen(error_type));
    kn_runtime_append(&body, "}", 1);
    char extra[256];
    snprintf(extra, sizeof extra, "Lambda-Runtime-Function-Error-Type: %s\r\n", error_type);
    kn_runtime_head h;
    const uint8_t *rb;
    exchange(&c, "POST", "/2018-06-01/runtime/init/error", extra, body.data, body.len, &h, &rb);
    free(body.data);
    rt_close(&c);
    free(c.in.data);
    return 1;
}

int kn_runtime_main(kn_handler handler)
{
    rt_conn c;
    if (setup(&c))
        return 1;
    const char *mem = getenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE");
    kn_context ctx;
    kn_buf out = {0}, err = {0};
    char *event = NULL;
    size_t event_cap = 0;
    int rc = 0;
    for (;;) {
        kn_runtime_head h;
        const uint8_t *body;
        if (exchange(&c, "GET", "/2018-06-01/runtime/invocation/next", NULL, NULL, 0, &h,
                     &body)) {
            rc = 0; /* the Runtime API went away: the environment is ending */
            break;
        }
        if (h.status != 200 || !h.request_id[0]) {
            fprintf(stderr, "kn_runtime: /next answered %d\n", h.status);
            rc = 1;
            break;
        }
        size_t len = h.content_length > 0 ? (size_t)h.content_length : 0;
        if (len + 1 > event_cap) {
            char *p = realloc(event, len + 1);
            if (!p) {
                rc = 1;
                break;
            }
            event = p;
            event_cap = len + 1;
        }
        memcpy(event, body, len);
        event[len] = 0;
        char request_id[128];
        snprintf(request_id, sizeof request_id, "%s", h.request_id);
        memset(&ctx, 0, sizeof ctx);
        ctx.request_id = request_id;
        ctx.deadline_ms = strtoull(h.deadline, NULL, 10);
        ctx.invoked_function_arn = h.arn;
        ctx.trace_id = h.trace_id;
        ctx.client_context = h.client_context[0] ? h.client_context : NULL;
        ctx.function_name = getenv("AWS_LAMBDA_FUNCTION_NAME");
        ctx.function_version = getenv("AWS_LAMBDA_FUNCTION_VERSION");
        ctx.memory_mb = mem ? atoi(mem) : 0;
        if (h.trace_id[0])
            setenv("_X_AMZN_TRACE_ID", h.trace_id, 1);
        out.len = 0;
        int hr = handler(event, len, &ctx, &out);
        char path[256];
        kn_runtime_head rh;
        const uint8_t *rb;
        int x;
        if (hr == 0) {
            snprintf(path, sizeof path, "/2018-06-01/runtime/invocation/%s/response", request_id);
            x = exchange(&c, "POST", path, NULL, out.data, out.len, &rh, &rb);
        } else {
            const char *type = ctx.error_type ? ctx.error_type : "Function.Error";
            err.len = 0;
            kn_runtime_append(&err, "{\"errorMessage\":", 16);
            kn_runtime_append_json_string(&err, out.data ? (const char *)out.data : "",
                                          out.len);
            kn_runtime_append(&err, ",\"errorType\":", 13);
            kn_runtime_append_json_string(&err, type, strlen(type));
            kn_runtime_append(&err, ",\"stackTrace\":[]}", 17);
            char extra[256];
            snprintf(extra, sizeof extra, "Lambda-Runtime-Function-Error-Type: %.200s\r\n", type);
            snprintf(path, sizeof path, "/2018-06-01/runtime/invocation/%s/error", request_id);
            x = exchange(&c, "POST", path, extra, err.data, err.len, &rh, &rb);
        }
        if (x) {
            rc = 0;
            break;
        }
        if (out.cap > (size_t)8 << 20) { /* do not keep a huge buffer warm */
            free(out.data);
            memset(&out, 0, sizeof out);
        }
    }
    free(event);
    free(out.data);
    free(err.data);
    rt_close(&c);
    free(c.in.data);
    return rc;
}
