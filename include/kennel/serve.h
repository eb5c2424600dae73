/* kennel serve: the model server — one model behind the SageMaker inference
 * container contract, with dynamic batching.
 *
 *   GET  /ping                  200, empty body (the model is loaded before the
 *                               server listens, so a listening server is ready)
 *   POST /invocations           images in, one row of raw scores per image out
 *   GET  /metrics               Prometheus text: requests, errors by status,
 *                               batch sizes, latencies
 *   GET  /execution-parameters  batch-transform hints (SageMaker contract)
 *
 * /invocations bodies, by Content-Type (parameters such as charset ignored):
 *   image/jpeg, image/png, application/x-image   the raw bytes of one image
 *   application/json   {"url": "http://..."}     fetched with libcurl (schemes,
 *                                                size, time and redirects bounded)
 *                      {"image": "<base64>"}     also {"b64": "<base64>"}; standard
 *                                                or URL-safe alphabet, padding
 *                                                optional, whitespace ignored, an
 *                                                optional "data:...;base64," prefix
 *                      [obj, obj, ...]           several images in one request
 * Each object holds exactly one of "url", "image", "b64".
 *
 * Answers: Accept application/json (the default, also for * / *) gives
 * [[s0, ..., sN], ...] — one row per image, in request order, numbers printed
 * with %.9g; Accept text/csv gives one comma-separated row per line; any
 * other Accept is 406. The scores are the network's raw output: logits for
 * model packages, whatever the model ends in otherwise.
 *
 * Errors are JSON {"error": "<Name>", "message": "<one line>"}:
 *   400 InvalidJSON, InvalidBase64, InvalidURL, FetchFailed, InvalidImage,
 *       InvalidRequest     413 PayloadTooLarge     415 UnsupportedMediaType
 *   404 NotFound           405 MethodNotAllowed    406 NotAcceptable
 *   500 InternalError      503 ServiceUnavailable (shutting down)
 *
 * Threads: libmicrohttpd runs one thread per connection; each decodes and
 * preprocesses its own images (so decoding runs in parallel) and queues them;
 * one batching thread runs the network on up to max_batch queued images at a
 * time and hands every request its rows. Compute uses `threads` OpenMP
 * threads inside the batching thread.
 *
 * A kn_serve is driven by one thread (new, start, stop, free); requests are
 * served by its own threads.
 */
#ifndef KENNEL_SERVE_H
#define KENNEL_SERVE_H

#include "kennel/core.h"
#include "kennel/model.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kn_serve_params {
    const char *model;           /* package dir, model.tar.gz or .tflite (required) */
    kn_model_load_params load;   /* how to load it */
    const char *listen;          /* address to bind: "127.0.0.1" (IPv4 or IPv6 literal) */
    int port;                    /* 8080; 0 = any free port (see kn_serve_port) */
    int max_batch;               /* images per forward pass (8) */
    uint64_t max_wait_us;        /* how long the first queued image waits for
                                    company before its batch runs (2000); it
                                    waits only while other requests are being
                                    received or decoded */
    int threads;                 /* compute threads (2) */
    kn_nn_backend backend;       /* KN_NN_DNNL (default) or KN_NN_REF */
    size_t max_body;             /* request body limit, bytes (6 MiB = 6291456) */
    int max_images;              /* images in one request (64) */
    uint64_t max_pixels;         /* per decoded image (64 Mpx) */
    size_t url_max_bytes;        /* per fetched URL (16 MiB) */
    size_t url_max_total;        /* all URLs of one request together (64 MiB):
                                    max_images x url_max_bytes would let one
                                    request hold a gigabyte */
    long url_timeout_ms;         /* whole fetch of one request's URLs (10000) */
    int url_max_redirects;       /* 3 */
    const char *url_schemes;     /* comma-separated allow list ("http,https");
                                    "file" must be listed explicitly */
    unsigned max_connections;    /* concurrent connections (256) */
    unsigned idle_timeout_s;     /* idle keep-alive connections are closed (60) */
    int decode_slots;            /* images decoded at once (0 = 2 x CPUs) */
    bool warmup;                 /* prepare every batch size 1..max_batch at start
                                    (default true) so no request pays for it */
    const char *weights_cache;   /* directory of shared weights files (NULL: the
                                    weights stay private). With it, the
                                    executor's reordered weights are mapped
                                    read-only from one file per model that all
                                    servers of that model share (oneDNN only) */
} kn_serve_params;
KN_API kn_serve_params kn_serve_default_params(void);

typedef struct kn_serve kn_serve;

/* Loads the model, creates the executor for max_batch and starts the
 * batching thread, which runs batch size max_batch (with warmup: every size)
 * once before this returns. The graph's float weights are released once the
 * executor holds its own copy (kn_serve_model(s)->graph is NULL). Does not
 * listen yet. Errors: the loader's (KN_NOT_FOUND, KN_BAD_FORMAT, ...) with
 * its message, KN_INVALID for bad parameters. */
KN_API kn_status kn_serve_new(const kn_serve_params *p, kn_serve **out, kn_err *e);
/* Binds and listens. KN_IO when the address cannot be bound. */
KN_API kn_status kn_serve_start(kn_serve *s, kn_err *e);
/* The bound port (the picked one when the port was 0); 0 before start. */
KN_API int kn_serve_port(const kn_serve *s);
/* Graceful stop: stops accepting connections, lets requests in flight
 * finish (at most drain_ms), then closes the rest. Idempotent. */
KN_API void kn_serve_stop(kn_serve *s, unsigned drain_ms);
/* Stops (if needed) and frees; accepts NULL. */
KN_API void kn_serve_free(kn_serve *s);
/* The model being served (owned by s). */
KN_API const kn_model *kn_serve_model(const kn_serve *s);
/* Appends the Prometheus text of /metrics to b. */
KN_API kn_status kn_serve_metrics(kn_serve *s, kn_buf *b);

#ifdef __cplusplus
}
#endif
#endif
