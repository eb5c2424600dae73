/* Internals of the serve module, shared by its files:
 *   body.c     request-body parsers (Content-Type, Accept, JSON bodies, base64)
 *   fetch.c    URL checks and bounded fetches with libcurl
 *   batch.c    the dynamic batching queue and its thread
 *   metrics.c  counters and their Prometheus text
 *   server.c   the HTTP side (libmicrohttpd), routes, kn_serve_* */
#ifndef KN_SERVE_INT_H
#define KN_SERVE_INT_H

#include "kennel/core.h"
#include "kennel/model.h"
#include "kennel/nn.h"
#include "kennel/serve.h"

#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>

/* ---- request errors --------------------------------------------------------
 * The one list of what a request can get wrong: HTTP status and the error
 * name of the JSON body {"error": NAME, "message": ...}. */
#define KN__SERR_LIST(X)                                                                     \
    X(NONE, 200, "")                                                                         \
    X(INVALID_JSON, 400, "InvalidJSON")                                                      \
    X(INVALID_REQUEST, 400, "InvalidRequest")                                                \
    X(INVALID_BASE64, 400, "InvalidBase64")                                                  \
    X(INVALID_URL, 400, "InvalidURL")                                                        \
    X(FETCH_FAILED, 400, "FetchFailed")                                                      \
    X(INVALID_IMAGE, 400, "InvalidImage")                                                    \
    X(NOT_FOUND, 404, "NotFound")                                                            \
    X(METHOD, 405, "MethodNotAllowed")                                                       \
    X(NOT_ACCEPTABLE, 406, "NotAcceptable")                                                  \
    X(TOO_LARGE, 413, "PayloadTooLarge")                                                     \
    X(MEDIA_TYPE, 415, "UnsupportedMediaType")                                               \
    X(INTERNAL, 500, "InternalError")                                                        \
    X(UNAVAILABLE, 503, "ServiceUnavailable")

typedef enum kn__serr_code {
#define KN__X_SERR(n, h, s) KN__SERR_##n,
    KN__SERR_LIST(KN__X_SERR)
#undef KN__X_SERR
        KN__SERR_COUNT
} kn__serr_code;

typedef struct kn__serr {
    kn__serr_code code;
    char msg[KN_ERR_MSG_MAX]; /* one line: control characters are replaced */
} kn__serr;

int kn__serr_http(kn__serr_code c);
const char *kn__serr_name(kn__serr_code c);
/* Sets e and returns c; the message is cleaned by kn__text_clean. */
kn__serr_code kn__serr_set(kn__serr *e, kn__serr_code c, const char *fmt, ...) KN_PRINTF(3, 4);
/* In place: control characters become spaces, invalid UTF-8 bytes '?'. */
void kn__text_clean(char *s);

/* ---- media types ---------------------------------------------------------- */

typedef enum kn__ctype {
    KN__CT_MISSING, /* no Content-Type */
    KN__CT_IMAGE,   /* image/jpeg, image/png, application/x-image */
    KN__CT_JSON,    /* application/json */
    KN__CT_OTHER
} kn__ctype;
kn__ctype kn__serve_ctype(const char *content_type);

typedef enum kn__fmt { KN__FMT_NONE, KN__FMT_JSON, KN__FMT_CSV } kn__fmt;
/* Content negotiation on an Accept header (NULL = absent): the supported
 * type with the highest q, the first listed on ties; q=0 excludes. */
kn__fmt kn__serve_accept(const char *accept);

/* ---- request bodies ------------------------------------------------------- */

typedef enum kn__item_kind { KN__ITEM_BYTES, KN__ITEM_URL } kn__item_kind;

typedef struct kn__item {
    kn__item_kind kind;
    const uint8_t *data; /* BYTES: image bytes (owned when `owned`) */
    size_t len;
    bool owned;
    char *url;           /* URL: owned, NUL-free */
} kn__item;

typedef struct kn__items {
    kn__item *v;
    int n;
    bool list;           /* the body was a JSON list: messages say "[i]" */
} kn__items;

void kn__items_free(kn__items *it);
/* Releases the bytes of item i (after decoding). */
void kn__item_release(kn__item *it);

/* Longest URL accepted in a body. */
#define KN__URL_MAX 8192

/* Parses an application/json body: an object with exactly one of "url",
 * "image", "b64", or a list of 1..max_images such objects. Base64 is
 * decoded here; URLs are only copied (see kn__url_check / kn__fetch_all).
 * On error *out is empty and e says what and where. */
kn__serr_code kn__serve_parse_json(const uint8_t *body, size_t len, int max_images,
                                   kn__items *out, kn__serr *e);

/* Decodes base64 (standard or URL-safe alphabet, padding optional, ASCII
 * whitespace ignored, an optional "data:<type>;base64," prefix). *out is
 * malloc'd (free it); KN__SERR_INVALID_BASE64 names the offending offset. */
kn__serr_code kn__b64_decode(const char *s, size_t n, uint8_t **out, size_t *out_len,
                             kn__serr *e);

/* ---- URL fetching --------------------------------------------------------- */

typedef struct kn__fetch_params {
    const char *schemes;   /* comma-separated allow list, lower case */
    size_t max_bytes;      /* per URL */
    size_t max_total;      /* all URLs of one request together */
    long timeout_ms;       /* for all URLs of one request together */
    int max_redirects;
} kn__fetch_params;

/* Checks that url parses and its scheme is allowed. KN__SERR_INVALID_URL. */
kn__serr_code kn__url_check(const char *url, const char *schemes, kn__serr *e);
/* Replaces every URL item by the bytes it points to, fetching them in
 * parallel. The first failure (in item order) is reported:
 * KN__SERR_INVALID_URL or KN__SERR_FETCH_FAILED. Thread-safe. */
kn__serr_code kn__fetch_all(const kn__fetch_params *p, kn__items *items, kn__serr *e);

/* ---- metrics -------------------------------------------------------------- */

/* Routes counted by /metrics (index into kn__metrics.requests). */
enum { KN__ROUTE_PING, KN__ROUTE_INVOCATIONS, KN__ROUTE_METRICS, KN__ROUTE_EXECPARAMS,
       KN__ROUTE_OTHER, KN__ROUTE_COUNT };

#define KN__METRIC_CODES 10 /* 200 400 404 405 406 413 415 500 503 other */

typedef struct kn__metrics {
    _Atomic uint64_t requests[KN__ROUTE_COUNT];
    _Atomic uint64_t responses[KN__METRIC_CODES];
    _Atomic uint64_t images;            /* images answered */
    _Atomic uint64_t *batches;          /* [max_batch + 1]: batches run, by size */
    int max_batch;
    _Atomic uint64_t model_ns, model_count;   /* forward passes */
    _Atomic uint64_t request_ns, request_count; /* /invocations, arrival to answer */
    _Atomic int64_t inflight;
    _Atomic int64_t queued;             /* images waiting for the batching thread */
} kn__metrics;

kn_status kn__metrics_init(kn__metrics *m, int max_batch);
void kn__metrics_deinit(kn__metrics *m);
void kn__metrics_response(kn__metrics *m, int http_status);
kn_status kn__metrics_render(kn__metrics *m, kn_buf *b);

/* ---- dynamic batching ----------------------------------------------------- */

/* One request's images: n preprocessed inputs in, n rows out. */
typedef struct kn__job {
    int n;
    const float *in;       /* n x per_in */
    float *out;            /* n x per_out */
    /* owned by the batcher while queued (under its mutex) */
    int taken;             /* images handed to a batch */
    int remaining;         /* images without a result yet */
    uint64_t t_enq;
    kn_status rc;
    char msg[KN_ERR_MSG_MAX];
    pthread_cond_t done;
    struct kn__job *next;
} kn__job;

typedef struct kn__batch_slot {
    kn__job *job;
    int idx;
} kn__batch_slot;

typedef struct kn__batcher {
    pthread_mutex_t mu;
    pthread_cond_t wake;   /* the batching thread waits here for work */
    pthread_cond_t ready;  /* start() waits here for the warm-up */
    kn__job *head, *tail;
    int queued;            /* images queued and not yet taken */
    int coming;            /* requests expected and not yet queued */
    bool inited, stop, started, warm;
    kn_status warm_rc;
    kn_err warm_err;
    pthread_t th;
    kn_nn_exec *x;
    int max_batch;
    bool warmup_all;
    uint64_t max_wait_ns;
    size_t per_in, per_out;
    float *in, *out;       /* max_batch x per_in / per_out, reserved at start */
    kn__batch_slot *slots;
    kn__metrics *metrics;
} kn__batcher;

kn_status kn__batcher_init(kn__batcher *b, kn_nn_exec *x, int max_batch, uint64_t max_wait_ns,
                           size_t per_in, size_t per_out, kn__metrics *m, kn_err *e);
/* Starts the thread; it first runs batch size max_batch (and with warmup_all
 * every size 1..max_batch) once, and this returns when that is done. */
kn_status kn__batcher_start(kn__batcher *b, bool warmup_all, kn_err *e);
/* Announces a request that will queue images soon (it is being received,
 * fetched or decoded): while any is announced, a partial batch waits for
 * company (at most max_wait); with none, it runs at once. Each expect is
 * matched by one kn__batcher_unexpect or one kn__batcher_run(.., true). */
void kn__batcher_expect(kn__batcher *b);
void kn__batcher_unexpect(kn__batcher *b);
/* Queues job's images and blocks until all have rows; `expected` ends the
 * caller's kn__batcher_expect. KN_TIMEOUT-free: the batching thread always
 * answers; KN_IO when the batcher is stopping, the executor's status
 * (message in job->msg) when the forward pass failed. */
kn_status kn__batcher_run(kn__batcher *b, kn__job *job, bool expected);
/* Lets the thread finish what is queued, then joins it. Idempotent. */
void kn__batcher_stop(kn__batcher *b);
void kn__batcher_deinit(kn__batcher *b);

/* ---- the server ----------------------------------------------------------- */

struct MHD_Daemon;

struct kn_serve {
    kn_serve_params p;     /* strings point into the copies below */
    char *model_path, *listen, *schemes;
    kn_model *model;
    kn_nn_exec *x;
    kn_nn_shared_weights shared; /* where the weights are mapped from, if shared */
    size_t per_in, per_out;
    kn__batcher batcher;
    kn__metrics metrics;
    sem_t decode_sem;
    bool sem_ok, curl_ok, batcher_ok;
    struct MHD_Daemon *d;
    int port;
    atomic_bool stopping;
    bool stopped;
};

#endif
