/* Counters of the model server and their Prometheus text (GET /metrics).
 *
 * All counters are relaxed atomics bumped by connection threads and the
 * batching thread; a scrape reads them without a lock, so one scrape may see
 * a request counted before its latency — harmless for rates. Series names
 * start with kennel_ and are stable: the daemon reads them. */
#include "serve_int.h"

#include <stdlib.h>
#include <string.h>

static const int codes[KN__METRIC_CODES] = {200, 400, 404, 405, 406, 413, 415, 500, 503, 0};
static const char *const routes[KN__ROUTE_COUNT] = {"/ping", "/invocations", "/metrics",
                                                    "/execution-parameters", "other"};

kn_status kn__metrics_init(kn__metrics *m, int max_batch)
{
    memset(m, 0, sizeof *m);
    m->max_batch = max_batch;
    m->batches = calloc((size_t)max_batch + 1, sizeof *m->batches);
    return m->batches ? KN_OK : KN_NOMEM;
}

void kn__metrics_deinit(kn__metrics *m)
{
    free((void *)m->batches);
    m->batches = NULL;
}

void kn__metrics_response(kn__metrics *m, int status)
{
    int i = 0;
    while (i < KN__METRIC_CODES - 1 && codes[i] != status)
        i++;
    atomic_fetch_add_explicit(&m->responses[i], 1, memory_order_relaxed);
}

static uint64_t get(_Atomic uint64_t *v)
{
    return atomic_load_explicit(v, memory_order_relaxed);
}

kn_status kn__metrics_render(kn__metrics *m, kn_buf *b)
{
    kn_status rc = KN_OK;
#define OUT(...)                                                                             \
    do {                                                                                     \
        if (!rc)                                                                             \
            rc = kn_buf_appendf(b, __VA_ARGS__);                                             \
    } while (0)
    OUT("# HELP kennel_requests_total HTTP requests received, by route.\n"
        "# TYPE kennel_requests_total counter\n");
    for (int i = 0; i < KN__ROUTE_COUNT; i++)
        OUT("kennel_requests_total{route=\"%s\"} %llu\n", routes[i],
            (unsigned long long)get(&m->requests[i]));
    OUT("# HELP kennel_responses_total HTTP responses sent, by status code (code=\"other\" "
        "for the rest).\n# TYPE kennel_responses_total counter\n");
    for (int i = 0; i < KN__METRIC_CODES; i++) {
        if (codes[i])
            OUT("kennel_responses_total{code=\"%d\"} %llu\n", codes[i],
                (unsigned long long)get(&m->responses[i]));
        else
            OUT("kennel_responses_total{code=\"other\"} %llu\n",
                (unsigned long long)get(&m->responses[i]));
    }
    uint64_t errors = 0;
    for (int i = 1; i < KN__METRIC_CODES; i++)
        errors += get(&m->responses[i]);
    OUT("# HELP kennel_errors_total HTTP responses with a status other than 200.\n"
        "# TYPE kennel_errors_total counter\nkennel_errors_total %llu\n",
        (unsigned long long)errors);
    OUT("# HELP kennel_images_total Images classified.\n# TYPE kennel_images_total counter\n"
        "kennel_images_total %llu\n", (unsigned long long)get(&m->images));

    /* batch sizes: buckets at powers of two and at max_batch */
    OUT("# HELP kennel_batch_size Images per forward pass.\n"
        "# TYPE kennel_batch_size histogram\n");
    uint64_t cum = 0, count = 0, sum = 0;
    int next = 1;
    for (int s = 1; s <= m->max_batch; s++) {
        uint64_t c = get(&m->batches[s]);
        cum += c;
        count += c;
        sum += c * (uint64_t)s;
        if (s == next || s == m->max_batch) {
            OUT("kennel_batch_size_bucket{le=\"%d\"} %llu\n", s, (unsigned long long)cum);
            while (next <= s)
                next *= 2;
        }
    }
    OUT("kennel_batch_size_bucket{le=\"+Inf\"} %llu\nkennel_batch_size_sum %llu\n"
        "kennel_batch_size_count %llu\n",
        (unsigned long long)count, (unsigned long long)sum, (unsigned long long)count);

    OUT("# HELP kennel_model_latency_seconds Time in the network's forward pass, per batch.\n"
        "# TYPE kennel_model_latency_seconds summary\n"
        "kennel_model_latency_seconds_sum %.9f\nkennel_model_latency_seconds_count %llu\n",
        (double)get(&m->model_ns) * 1e-9, (unsigned long long)get(&m->model_count));
    OUT("# HELP kennel_invocation_latency_seconds Time from a /invocations request's arrival "
        "to its answer.\n# TYPE kennel_invocation_latency_seconds summary\n"
        "kennel_invocation_latency_seconds_sum %.9f\n"
        "kennel_invocation_latency_seconds_count %llu\n",
        (double)get(&m->request_ns) * 1e-9, (unsigned long long)get(&m->request_count));
    OUT("# HELP kennel_inflight_requests /invocations requests being served.\n"
        "# TYPE kennel_inflight_requests gauge\nkennel_inflight_requests %lld\n",
        (long long)atomic_load_explicit(&m->inflight, memory_order_relaxed));
    OUT("# HELP kennel_queued_images Images waiting for a forward pass.\n"
        "# TYPE kennel_queued_images gauge\nkennel_queued_images %lld\n",
        (long long)atomic_load_explicit(&m->queued, memory_order_relaxed));
#undef OUT
    return rc;
}
