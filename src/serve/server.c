/* The model server's HTTP side: libmicrohttpd, the route table, the
 * /invocations pipeline and kn_serve_* (see include/kennel/serve.h).
 *
 * Threads: libmicrohttpd runs one thread per connection (plus its listening
 * thread). A connection thread receives the body (bounded by max_body: the
 * Content-Length is checked before reading and the buffer refuses to grow
 * past it), parses it, fetches URLs, decodes and preprocesses the images
 * (at most decode_slots at once, bounding CPU and pixel memory), then queues
 * them with the batcher and blocks until their rows come back. Blocking is
 * fine in this mode, and keep-alive connections simply wait for their next
 * request.
 *
 * Answers decided from the headers alone (/ping, /metrics, and the refusals
 * 404, 405, 406, 413 by Content-Length, 415, 503) never store the body.
 * libmicrohttpd closes a connection whose answer is queued on the first
 * call, so the answer is held until the request has been read — a body is
 * read and dropped, up to 4 x max_body — and the connection stays usable;
 * answering and closing with the client's bytes unread would also reset the
 * connection under a client still sending and lose the answer. A client that
 * asked "Expect: 100-continue" gets the answer at once instead of "100
 * Continue".
 *
 * Shutdown (kn_serve_stop): the listening socket is closed, requests in
 * flight (admitted /invocations, counted from their headers to the end of
 * sending the answer) are finished within the drain time, new requests on kept-alive
 * connections get 503 with "Connection: close", then the daemon and the
 * batching thread stop.
 *
 * The routes are one table; a handler fills a reply and one function sends
 * every reply, so counting responses by status happens in one place. */
#include "serve_int.h"

#include "kennel/img.h"

#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <malloc.h>
#include <math.h>
#include <microhttpd.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

kn_serve_params kn_serve_default_params(void)
{
    kn_serve_params p;
    memset(&p, 0, sizeof p);
    p.load = kn_model_load_default_params();
    p.listen = "127.0.0.1";
    p.port = 8080;
    p.max_batch = 8;
    p.max_wait_us = 2000;
    p.threads = 2;
    p.backend = KN_NN_DNNL;
    p.max_body = (size_t)6 << 20; /* InvokeEndpoint's limit, 6291456 bytes */
    p.max_images = 64;
    p.max_pixels = (uint64_t)64 << 20;
    p.url_max_bytes = (size_t)16 << 20;
    p.url_max_total = (size_t)64 << 20;
    p.url_timeout_ms = 10000;
    p.url_max_redirects = 3;
    p.url_schemes = "http,https";
    p.max_connections = 256;
    p.idle_timeout_s = 60;
    p.decode_slots = 0;
    p.warmup = true;
    return p;
}

/* ---- replies ----------------------------------------------------------------- */

typedef struct reply {
    int status;
    const char *ctype; /* NULL: no Content-Type (empty body) */
    char *body;        /* malloc'd, handed to libmicrohttpd */
    size_t len;
    const char *allow; /* Allow header for 405 */
} reply;

static void reply_error(reply *r, kn__serr_code code, const char *msg)
{
    memset(r, 0, sizeof *r);
    r->status = kn__serr_http(code);
    r->ctype = "application/json";
    json_t *o = json_pack("{s:s,s:s}", "error", kn__serr_name(code), "message", msg);
    r->body = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!r->body) { /* messages are cleaned UTF-8, so only memory can fail here */
        static const char fallback[] = "{\"error\":\"InternalError\",\"message\":\"out of memory\"}";
        r->status = 500;
        r->body = strdup(fallback);
    }
    r->len = r->body ? strlen(r->body) : 0;
}

static void reply_serr(reply *r, const kn__serr *e)
{
    reply_error(r, e->code, e->msg);
}

static void reply_text(reply *r, int status, const char *ctype, char *body, size_t len)
{
    memset(r, 0, sizeof *r);
    r->status = status;
    r->ctype = ctype;
    r->body = body;
    r->len = len;
}

static enum MHD_Result send_reply(kn_serve *s, struct MHD_Connection *c, reply *r)
{
    struct MHD_Response *resp;
    if (r->len)
        resp = MHD_create_response_from_buffer(r->len, r->body, MHD_RESPMEM_MUST_FREE);
    else
        resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
    if (!r->len || !resp)
        free(r->body);
    r->body = NULL;
    if (!resp)
        return MHD_NO;
    if (r->ctype)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, r->ctype);
    if (r->allow)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, r->allow);
    if (atomic_load(&s->stopping))
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)r->status, resp);
    MHD_destroy_response(resp);
    kn__metrics_response(&s->metrics, r->status);
    return ret;
}

/* ---- per-request state of /invocations ------------------------------------- */

typedef struct req {
    kn_buf body;
    kn__ctype ct;
    kn__fmt fmt;
    bool too_large, nomem;
    bool counted;      /* in metrics.inflight (an admitted /invocations) */
    bool expected;     /* announced to the batcher (kn__batcher_expect) */
    bool held;         /* `early` is the answer; the body is read and dropped */
    reply early;
    size_t discarded;
    uint64_t t0;
} req;

/* How much of a refused body is read and dropped so that the client, which
 * may be busy sending it, receives the answer instead of a reset. */
static size_t discard_cap(const kn_serve *s)
{
    return s->p.max_body <= SIZE_MAX / 4 ? 4 * s->p.max_body : SIZE_MAX;
}

/* ---- routes ----------------------------------------------------------------- */

typedef void (*handler_fn)(kn_serve *s, req *r, reply *out);

static void h_ping(kn_serve *s, req *r, reply *out)
{
    (void)s;
    (void)r;
    reply_text(out, 200, NULL, NULL, 0);
}

static void h_metrics(kn_serve *s, req *r, reply *out)
{
    (void)r;
    kn_buf b;
    kn_buf_init(&b, (size_t)1 << 20);
    if (kn_serve_metrics(s, &b)) {
        kn_buf_deinit(&b);
        reply_error(out, KN__SERR_INTERNAL, "cannot render the metrics");
        return;
    }
    size_t n;
    char *text = (char *)kn_buf_take(&b, &n);
    reply_text(out, 200, "text/plain; version=0.0.4; charset=utf-8", text, n);
}

static void h_execparams(kn_serve *s, req *r, reply *out)
{
    (void)r;
    char *body = NULL;
    int n = asprintf(&body,
                     "{\"MaxConcurrentTransforms\":%d,\"BatchStrategy\":\"MULTI_RECORD\","
                     "\"MaxPayloadInMB\":%zu}",
                     s->p.max_batch, (s->p.max_body + ((size_t)1 << 20) - 1) >> 20);
    if (n < 0) {
        reply_error(out, KN__SERR_INTERNAL, "out of memory");
        return;
    }
    reply_text(out, 200, "application/json", body, (size_t)n);
}

static void h_invocations(kn_serve *s, req *r, reply *out);

static const struct route {
    const char *path, *method;
    int metric;
    handler_fn fn;
    bool body; /* reads a request body (state in a req) */
} routes[] = {
    {"/ping", "GET", KN__ROUTE_PING, h_ping, false},
    {"/invocations", "POST", KN__ROUTE_INVOCATIONS, h_invocations, true},
    {"/metrics", "GET", KN__ROUTE_METRICS, h_metrics, false},
    {"/execution-parameters", "GET", KN__ROUTE_EXECPARAMS, h_execparams, false},
};

static const struct route *find_route(const char *path)
{
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++)
        if (strcmp(path, routes[i].path) == 0)
            return &routes[i];
    return NULL;
}

/* ---- /invocations ------------------------------------------------------------ */

/* Appends one score: %.9g (round-trips a float), and the non-finite values
 * as Python's json module writes them. */
static kn_status put_num(kn_buf *b, float v)
{
    if (isnan(v))
        return kn_buf_append(b, "NaN", 3);
    if (isinf(v))
        return v > 0 ? kn_buf_append(b, "Infinity", 8) : kn_buf_append(b, "-Infinity", 9);
    return kn_buf_appendf(b, "%.9g", (double)v);
}

/* Rows as JSON ([[s0, s1], [..]], spaced as predict --json) or CSV (one
 * row per line). */
static kn_status format_rows(const float *v, int n, size_t per, kn__fmt fmt, kn_buf *b)
{
    bool json = fmt == KN__FMT_JSON;
    const char *sep = json ? ", " : ",";
    kn_buf_init(b, SIZE_MAX / 2);
    size_t est;
    kn_status rc = KN_OK;
    if (!kn_mul_size((size_t)n * per, 18, &est) || (rc = kn_buf_reserve(b, est + 16)))
        return rc ? rc : KN_NOMEM;
    if (json)
        rc = kn_buf_append(b, "[", 1);
    for (int i = 0; i < n && !rc; i++) {
        if (json)
            rc = kn_buf_append(b, i ? ", [" : "[", i ? 3 : 1);
        for (size_t k = 0; k < per && !rc; k++) {
            if (k)
                rc = kn_buf_append(b, sep, strlen(sep));
            if (!rc)
                rc = put_num(b, v[per * (size_t)i + k]);
        }
        if (!rc)
            rc = kn_buf_append(b, json ? "]" : "\n", 1);
    }
    if (json && !rc)
        rc = kn_buf_append(b, "]", 1);
    return rc;
}

/* Decodes and preprocesses one image into `dst`. */
static kn__serr_code decode_one(kn_serve *s, const kn__item *it, bool list, int i, float *dst,
                                kn__serr *err)
{
    while (sem_wait(&s->decode_sem) != 0 && errno == EINTR)
        ;
    kn_img_decode_params dp = kn_img_decode_default_params();
    dp.max_pixels = s->p.max_pixels;
    kn_img im = {0};
    kn_err e;
    kn_err_clear(&e);
    kn_status rc = kn_img_decode(it->data, it->len, &dp, &im, &e);
    if (rc == KN_OK)
        rc = kn_img_preprocess(&im, &s->model->preproc, dst, &e);
    kn_img_deinit(&im);
    sem_post(&s->decode_sem);
    if (rc == KN_OK)
        return KN__SERR_NONE;
    char w[24] = "";
    if (list)
        snprintf(w, sizeof w, "[%d] ", i);
    return kn__serr_set(err, rc == KN_NOMEM ? KN__SERR_INTERNAL : KN__SERR_INVALID_IMAGE,
                        "%s%s", w, e.msg[0] ? e.msg : kn_status_msg(rc));
}

static void h_invocations(kn_serve *s, req *r, reply *out)
{
    kn__serr err = {0};
    kn__items items = {0};
    float *in = NULL, *rows = NULL;
    kn_buf text = {0};
    if (r->too_large) {
        char m[160];
        snprintf(m, sizeof m, "the request body is larger than the %zu-byte limit",
                 s->p.max_body);
        reply_error(out, KN__SERR_TOO_LARGE, m);
        return;
    }
    if (r->nomem) {
        reply_error(out, KN__SERR_INTERNAL, "out of memory receiving the body");
        return;
    }
    if (r->ct == KN__CT_IMAGE) {
        if (r->body.len == 0) {
            kn__serr_set(&err, KN__SERR_INVALID_IMAGE, "the body is empty; expected image bytes");
            goto out;
        }
        if (!(items.v = calloc(1, sizeof *items.v))) {
            kn__serr_set(&err, KN__SERR_INTERNAL, "out of memory");
            goto out;
        }
        items.n = 1;
        items.v[0].kind = KN__ITEM_BYTES;
        items.v[0].data = r->body.data; /* borrowed: r->body outlives the items */
        items.v[0].len = r->body.len;
    } else {
        if (kn__serve_parse_json(r->body.data, r->body.len, s->p.max_images, &items, &err))
            goto out;
        kn_buf_deinit(&r->body); /* the items own what they need */
        kn__fetch_params fp = {.schemes = s->p.url_schemes,
                               .max_bytes = s->p.url_max_bytes,
                               .max_total = s->p.url_max_total,
                               .timeout_ms = s->p.url_timeout_ms,
                               .max_redirects = s->p.url_max_redirects};
        if (kn__fetch_all(&fp, &items, &err))
            goto out;
    }
    int n = items.n;
    in = kn_alloc_aligned((size_t)n * s->per_in * sizeof(float));
    rows = malloc((size_t)n * s->per_out * sizeof(float));
    if (!in || !rows) {
        kn__serr_set(&err, KN__SERR_INTERNAL, "out of memory for %d images", n);
        goto out;
    }
    for (int i = 0; i < n; i++) {
        if (decode_one(s, &items.v[i], items.list, i, in + s->per_in * (size_t)i, &err))
            goto out;
        kn__item_release(&items.v[i]); /* free encoded bytes as soon as possible */
    }
    kn_buf_deinit(&r->body);
    kn__job job;
    memset(&job, 0, sizeof job);
    job.n = n;
    job.in = in;
    job.out = rows;
    r->expected = false;
    kn_status rc = kn__batcher_run(&s->batcher, &job, true);
    if (rc == KN_IO) {
        kn__serr_set(&err, KN__SERR_UNAVAILABLE, "%s", job.msg);
        goto out;
    }
    if (rc) {
        kn_log(KN_LOG_ERROR, "forward pass failed: %s", job.msg);
        kn__serr_set(&err, KN__SERR_INTERNAL, "the forward pass failed: %s", job.msg);
        goto out;
    }
    if (format_rows(rows, n, s->per_out, r->fmt, &text)) {
        kn__serr_set(&err, KN__SERR_INTERNAL, "out of memory formatting %d rows", n);
        goto out;
    }
    atomic_fetch_add_explicit(&s->metrics.images, (uint64_t)n, memory_order_relaxed);
    size_t len;
    char *body = (char *)kn_buf_take(&text, &len);
    reply_text(out, 200, r->fmt == KN__FMT_CSV ? "text/csv" : "application/json", body, len);
out:
    if (err.code)
        reply_serr(out, &err);
    kn_buf_deinit(&text);
    kn__items_free(&items);
    kn_free_aligned(in);
    free(rows);
}

/* ---- libmicrohttpd callbacks ------------------------------------------------- */

static const char *header(struct MHD_Connection *c, const char *name)
{
    return MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);
}

/* First call of a POST /invocations: everything that can be refused before
 * the body is read. Returns false with *out filled when refused. */
static bool admit(kn_serve *s, struct MHD_Connection *c, req *r, reply *out)
{
    char m[KN_ERR_MSG_MAX];
    if (atomic_load(&s->stopping)) {
        reply_error(out, KN__SERR_UNAVAILABLE, "the server is shutting down");
        return false;
    }
    const char *ct = header(c, MHD_HTTP_HEADER_CONTENT_TYPE);
    r->ct = kn__serve_ctype(ct);
    if (r->ct == KN__CT_MISSING || r->ct == KN__CT_OTHER) {
        if (r->ct == KN__CT_MISSING)
            snprintf(m, sizeof m, "a Content-Type is required: image/jpeg, image/png, "
                                  "application/x-image or application/json");
        else
            snprintf(m, sizeof m, "Content-Type \"%.100s\" is not supported; use image/jpeg, "
                                  "image/png, application/x-image or application/json", ct);
        kn__text_clean(m);
        reply_error(out, KN__SERR_MEDIA_TYPE, m);
        return false;
    }
    const char *acc = header(c, MHD_HTTP_HEADER_ACCEPT);
    r->fmt = kn__serve_accept(acc);
    if (r->fmt == KN__FMT_NONE) {
        snprintf(m, sizeof m, "Accept \"%.100s\" is not supported; use application/json or "
                              "text/csv", acc);
        kn__text_clean(m);
        reply_error(out, KN__SERR_NOT_ACCEPTABLE, m);
        return false;
    }
    const char *cl = header(c, MHD_HTTP_HEADER_CONTENT_LENGTH);
    unsigned long long len = 0;
    if (cl) {
        char *end;
        errno = 0;
        len = strtoull(cl, &end, 10);
        if (errno || end == cl || len > s->p.max_body) { /* libmicrohttpd checked the syntax */
            snprintf(m, sizeof m, "the request body is %.30s bytes; the limit is %zu", cl,
                     s->p.max_body);
            kn__text_clean(m);
            reply_error(out, KN__SERR_TOO_LARGE, m);
            return false;
        }
    }
    kn_buf_init(&r->body, s->p.max_body);
    if (len && kn_buf_reserve(&r->body, (size_t)len)) {
        reply_error(out, KN__SERR_INTERNAL, "out of memory for the request body");
        return false;
    }
    return true;
}

/* Must the answer go out on the first call, before the body? For a client
 * that asked "Expect: 100-continue" (it gets the answer instead of "100
 * Continue" and has sent nothing to drop) and for one announcing more than
 * discard_cap (it loses the connection as the answer is sent). */
static bool answer_now(kn_serve *s, struct MHD_Connection *c)
{
    const char *expect = header(c, MHD_HTTP_HEADER_EXPECT);
    if (expect && strcasecmp(expect, "100-continue") == 0)
        return true;
    const char *cl = header(c, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (!cl)
        return false;
    char *end;
    errno = 0;
    unsigned long long len = strtoull(cl, &end, 10);
    return errno || end == cl || len > discard_cap(s);
}

static void req_free(kn_serve *s, req *r)
{
    if (!r)
        return;
    if (r->counted)
        atomic_fetch_sub(&s->metrics.inflight, 1);
    if (r->expected)
        kn__batcher_unexpect(&s->batcher);
    kn_buf_deinit(&r->body);
    free(r->early.body);
    free(r);
}

/* An answer decided on the first call, from the headers alone. libmicrohttpd
 * closes the connection after an answer queued that early, so it is held
 * until the request has been read (its body, if any, is dropped) and sent
 * then, keeping the connection alive — unless answer_now(). Takes r (may be
 * NULL). */
static enum MHD_Result answer(kn_serve *s, struct MHD_Connection *c, req *r, reply *out,
                              void **con_cls)
{
    if (answer_now(s, c) || !(r || (r = calloc(1, sizeof *r)))) {
        req_free(s, r);
        return send_reply(s, c, out);
    }
    if (r->counted) {
        atomic_fetch_sub(&s->metrics.inflight, 1);
        r->counted = false;
    }
    kn_buf_deinit(&r->body);
    r->held = true;
    r->early = *out;
    *con_cls = r;
    return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version,
                                  const char *upload, size_t *upload_size, void **con_cls)
{
    (void)version;
    kn_serve *s = cls;
    req *r = *con_cls;
    reply out;
    if (!r) {
        const struct route *rt = find_route(url);
        atomic_fetch_add_explicit(&s->metrics.requests[rt ? rt->metric : KN__ROUTE_OTHER], 1,
                                  memory_order_relaxed);
        char m[KN_ERR_MSG_MAX];
        if (!rt) {
            snprintf(m, sizeof m, "no such path: %.200s (try POST /invocations or GET /ping)",
                     url);
            kn__text_clean(m);
            reply_error(&out, KN__SERR_NOT_FOUND, m);
            return answer(s, c, NULL, &out, con_cls);
        }
        bool get_like = strcmp(rt->method, "GET") == 0;
        if (strcmp(method, rt->method) != 0 && !(get_like && strcmp(method, "HEAD") == 0)) {
            snprintf(m, sizeof m, "%.20s is not allowed on %s; use %s", method, rt->path,
                     rt->method);
            kn__text_clean(m);
            reply_error(&out, KN__SERR_METHOD, m);
            out.allow = get_like ? "GET, HEAD" : rt->method;
            return answer(s, c, NULL, &out, con_cls);
        }
        if (!rt->body) {
            rt->fn(s, NULL, &out);
            return answer(s, c, NULL, &out, con_cls);
        }
        if (!(r = calloc(1, sizeof *r))) {
            reply_error(&out, KN__SERR_INTERNAL, "out of memory");
            return send_reply(s, c, &out);
        }
        r->t0 = kn_now_ns();
        /* Counted before `stopping` is read (both sequentially consistent):
         * either kn_serve_stop sees this request and waits for it, or this
         * request sees the stop and is refused. */
        atomic_fetch_add(&s->metrics.inflight, 1);
        r->counted = true;
        if (!admit(s, c, r, &out))
            return answer(s, c, r, &out, con_cls);
        kn__batcher_expect(&s->batcher);
        r->expected = true;
        *con_cls = r;
        return MHD_YES;
    }
    if (*upload_size) {
        size_t n = *upload_size;
        *upload_size = 0;
        if (r->held || r->too_large || r->nomem) {
            /* Keep reading so the client gets its answer; one that keeps
             * sending well past the limit loses the connection instead. */
            r->discarded += n;
            return r->discarded > discard_cap(s) ? MHD_NO : MHD_YES;
        }
        kn_status rc = kn_buf_append(&r->body, upload, n);
        if (rc) {
            r->too_large = rc == KN_TOO_LARGE;
            r->nomem = !r->too_large;
            r->discarded = r->body.len + n;
            kn_buf_deinit(&r->body);
            if (r->expected) { /* it will not queue anything */
                kn__batcher_unexpect(&s->batcher);
                r->expected = false;
            }
        }
        return MHD_YES;
    }
    if (r->held)
        return send_reply(s, c, &r->early);
    h_invocations(s, r, &out);
    if (r->expected) { /* refused before queueing */
        kn__batcher_unexpect(&s->batcher);
        r->expected = false;
    }
    uint64_t dt = kn_now_ns() - r->t0;
    atomic_fetch_add_explicit(&s->metrics.request_ns, dt, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->metrics.request_count, 1, memory_order_relaxed);
    return send_reply(s, c, &out);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)c;
    (void)toe;
    req_free(cls, *con_cls);
    *con_cls = NULL;
}

static void on_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char line[512];
    vsnprintf(line, sizeof line, fmt, ap);
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = 0;
    kn_log(KN_LOG_DEBUG, "http: %s", line);
}

/* ---- lifecycle ---------------------------------------------------------------- */

static kn_status check_params(const kn_serve_params *p, kn_err *e)
{
    if (!p->model || !p->model[0])
        return kn_err_set(e, KN_INVALID, "no model given");
    if (p->max_batch < 1 || p->max_batch > 1024)
        return kn_err_set(e, KN_INVALID, "max batch %d is not in [1, 1024]", p->max_batch);
    if (p->max_wait_us > 10000000)
        return kn_err_set(e, KN_INVALID, "max wait %llu us is over 10 s",
                          (unsigned long long)p->max_wait_us);
    if (p->threads < 0 || p->threads > 1024)
        return kn_err_set(e, KN_INVALID, "threads %d is not in [0, 1024]", p->threads);
    if (p->max_body < 1 || p->max_body > ((size_t)1 << 32))
        return kn_err_set(e, KN_INVALID, "max body %zu is not in [1, 4 GiB]", p->max_body);
    if (p->max_images < 1 || p->max_images > 4096)
        return kn_err_set(e, KN_INVALID, "max images %d is not in [1, 4096]", p->max_images);
    if (p->max_pixels < 1)
        return kn_err_set(e, KN_INVALID, "max pixels must be positive");
    if (p->url_max_bytes < 1 || p->url_max_bytes > ((size_t)1 << 32))
        return kn_err_set(e, KN_INVALID, "URL byte limit %zu is not in [1, 4 GiB]",
                          p->url_max_bytes);
    if (p->url_max_total < 1 || p->url_max_total > ((size_t)1 << 34))
        return kn_err_set(e, KN_INVALID, "URL total byte limit %zu is not in [1, 16 GiB]",
                          p->url_max_total);
    if (p->url_timeout_ms < 1 || p->url_timeout_ms > 3600000)
        return kn_err_set(e, KN_INVALID, "URL timeout %ld ms is not in [1, 3600000]",
                          p->url_timeout_ms);
    if (p->url_max_redirects < 0 || p->url_max_redirects > 50)
        return kn_err_set(e, KN_INVALID, "URL redirects %d is not in [0, 50]",
                          p->url_max_redirects);
    if (p->port < 0 || p->port > 65535)
        return kn_err_set(e, KN_INVALID, "port %d is not in [0, 65535]", p->port);
    if (p->max_connections < 1 || p->max_connections > 65536)
        return kn_err_set(e, KN_INVALID, "max connections %u is not in [1, 65536]",
                          p->max_connections);
    if (p->decode_slots < 0 || p->decode_slots > 4096)
        return kn_err_set(e, KN_INVALID, "decode slots %d is not in [0, 4096]",
                          p->decode_slots);
    return KN_OK;
}

/* Lower-cases and checks the scheme list; only http, https and file. */
static kn_status copy_schemes(const char *in, char **out, kn_err *e)
{
    char *s = strdup(in ? in : "");
    if (!s)
        return kn_err_set(e, KN_NOMEM, "out of memory");
    for (char *p = s; *p; p++)
        *p = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
    for (const char *p = s; *p;) {
        size_t k = strcspn(p, ",");
        if (!((k == 4 && !strncmp(p, "http", 4)) || (k == 5 && !strncmp(p, "https", 5)) ||
              (k == 4 && !strncmp(p, "file", 4)))) {
            kn_err_set(e, KN_INVALID, "URL scheme \"%.*s\" is not one of http, https, file",
                       (int)(k < 32 ? k : 32), p);
            free(s);
            return KN_INVALID;
        }
        p += k;
        if (*p == ',')
            p++;
    }
    *out = s;
    return KN_OK;
}

kn_status kn_serve_new(const kn_serve_params *p, kn_serve **out, kn_err *e)
{
    *out = NULL;
    kn_status rc = check_params(p, e);
    if (rc)
        return rc;
    kn_serve *s = calloc(1, sizeof *s);
    if (!s)
        return kn_err_set(e, KN_NOMEM, "out of memory");
    s->p = *p;
    s->p.weights_cache = NULL; /* used only here, not copied */
    if (!(s->model_path = strdup(p->model)) ||
        !(s->listen = strdup(p->listen ? p->listen : "127.0.0.1"))) {
        rc = kn_err_set(e, KN_NOMEM, "out of memory");
        goto fail;
    }
    if ((rc = copy_schemes(p->url_schemes, &s->schemes, e)))
        goto fail;
    s->p.model = s->model_path;
    s->p.listen = s->listen;
    s->p.url_schemes = s->schemes;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        rc = kn_err_set(e, KN_INTERNAL, "libcurl failed to initialise");
        goto fail;
    }
    s->curl_ok = true;

    if ((rc = kn_model_load(s->model_path, &p->load, &s->model, e)))
        goto fail;
    kn_nn_shape ish = kn_nn_graph_input_shape(s->model->graph);
    if (ish.c != 3 || ish.h != s->model->preproc.h || ish.w != s->model->preproc.w) {
        rc = kn_err_set(e, KN_SHAPE, "%s: the network takes %dx%dx%d but the images are "
                        "prepared as 3x%dx%d", s->model_path, ish.c, ish.h, ish.w,
                        s->model->preproc.h, s->model->preproc.w);
        goto fail;
    }
    kn_nn_exec_params xp = kn_nn_exec_default_params();
    xp.backend = p->backend;
    xp.max_batch = p->max_batch;
    xp.threads = p->threads;
    if ((rc = kn_nn_exec_new(s->model->graph, &xp, &s->x, e)))
        goto fail;
    s->per_in = (size_t)3 * (size_t)ish.h * (size_t)ish.w;
    s->per_out = kn_nn_exec_out_numel(s->x);
    /* The executor has its own (reordered) copy of the weights: drop the
     * graph's and give the pages back, so an instance holds one copy. */
    if (p->backend == KN_NN_DNNL) {
        kn_nn_graph_free(s->model->graph);
        s->model->graph = NULL;
        malloc_trim(0);
    }

    if ((rc = kn__metrics_init(&s->metrics, p->max_batch))) {
        kn_err_set(e, rc, "out of memory");
        goto fail;
    }
    int slots = p->decode_slots;
    if (slots == 0) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        slots = cpus > 0 ? (int)(cpus < 512 ? 2 * cpus : 1024) : 4;
    }
    if (sem_init(&s->decode_sem, 0, (unsigned)slots)) {
        rc = kn_err_set(e, KN_INTERNAL, "sem_init: %s", strerror(errno));
        goto fail;
    }
    s->sem_ok = true;
    if ((rc = kn__batcher_init(&s->batcher, s->x, p->max_batch, p->max_wait_us * 1000u,
                               s->per_in, s->per_out, &s->metrics, e)))
        goto fail;
    if ((rc = kn__batcher_start(&s->batcher, p->warmup, e)))
        goto fail;
    /* Warm-up has made every layout the batch sizes use, and the batching
     * thread is idle until the server listens: the weights can move into the
     * shared file now. Not fatal: a server whose file cannot be written or
     * mapped serves from its private copy. */
    if (p->weights_cache && p->backend == KN_NN_DNNL) {
        kn_err se;
        kn_err_clear(&se);
        if (kn_nn_exec_share_weights(s->x, p->weights_cache, &s->shared, &se))
            kn_log(KN_LOG_WARN, "weights not shared: %s", se.msg);
        else
            kn_log(KN_LOG_INFO, "weights: %zu bytes mapped from %s%s", s->shared.bytes,
                   s->shared.path, s->shared.built ? " (written now)" : "");
    }
    malloc_trim(0);
    *out = s;
    return KN_OK;
fail:
    kn_serve_free(s);
    return rc;
}

kn_status kn_serve_start(kn_serve *s, kn_err *e)
{
    if (s->d)
        return kn_err_set(e, KN_INVALID, "the server is already listening");
    struct addrinfo hints, *ai = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    char port[16];
    snprintf(port, sizeof port, "%d", s->p.port);
    int gai = getaddrinfo(s->listen, port, &hints, &ai);
    if (gai || !ai)
        return kn_err_set(e, KN_INVALID, "cannot use listen address \"%s\": %s", s->listen,
                          gai ? gai_strerror(gai) : "no address");
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    memcpy(&ss, ai->ai_addr, ai->ai_addrlen < sizeof ss ? ai->ai_addrlen : sizeof ss);
    bool v6 = ai->ai_family == AF_INET6;
    freeaddrinfo(ai);

    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                     MHD_USE_POLL | MHD_USE_ITC | MHD_USE_ERROR_LOG;
    if (v6)
        flags |= MHD_USE_IPv6;
    errno = 0;
    s->d = MHD_start_daemon(flags, (uint16_t)s->p.port, NULL, NULL, on_request, s,
                            MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)s->p.max_connections,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)s->p.idle_timeout_s,
                            MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                            MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)65536,
                            MHD_OPTION_LISTEN_BACKLOG_SIZE, 511u,
                            MHD_OPTION_EXTERNAL_LOGGER, on_log, s, MHD_OPTION_END);
    if (!s->d)
        return kn_err_set(e, KN_IO, "cannot listen on %s port %d%s%s", s->listen, s->p.port,
                          errno ? ": " : "", errno ? strerror(errno) : "");
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    s->port = info ? info->port : s->p.port;
    return KN_OK;
}

int kn_serve_port(const kn_serve *s)
{
    return s->d ? s->port : 0;
}

const kn_model *kn_serve_model(const kn_serve *s)
{
    return s->model;
}

kn_status kn_serve_metrics(kn_serve *s, kn_buf *b)
{
    return kn__metrics_render(&s->metrics, b);
}

void kn_serve_stop(kn_serve *s, unsigned drain_ms)
{
    if (!s || s->stopped)
        return;
    s->stopped = true;
    atomic_store(&s->stopping, true);
    if (s->d) {
        MHD_socket fd = MHD_quiesce_daemon(s->d);
        if (fd != MHD_INVALID_SOCKET)
            close(fd);
        uint64_t deadline = kn_now_ns() + (uint64_t)drain_ms * 1000000u;
        while (atomic_load(&s->metrics.inflight) > 0 && kn_now_ns() < deadline) {
            struct timespec ts = {0, 2000000};
            nanosleep(&ts, NULL);
        }
        MHD_stop_daemon(s->d);
        s->d = NULL;
    }
    kn__batcher_stop(&s->batcher);
}

void kn_serve_free(kn_serve *s)
{
    if (!s)
        return;
    kn_serve_stop(s, 0);
    kn__batcher_deinit(&s->batcher);
    kn__metrics_deinit(&s->metrics);
    if (s->sem_ok)
        sem_destroy(&s->decode_sem);
    kn_nn_exec_free(s->x);
    kn_model_free(s->model);
    if (s->curl_ok)
        curl_global_cleanup();
    free(s->model_path);
    free(s->listen);
    free(s->schemes);
    free(s);
}
