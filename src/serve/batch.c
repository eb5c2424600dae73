/* Dynamic batching: connection threads queue their requests' preprocessed
 * images; one batching thread runs the network on up to max_batch of them at
 * a time and hands each request its rows.
 *
 * Policy: the batch starts when max_batch images are queued, or when the
 * oldest queued image has waited max_wait (measured from its arrival, so an
 * image that queued while a batch was running does not wait again), or when
 * no other request is on its way (announced with kn__batcher_expect: being
 * received, fetched or decoded) — waiting is only worth it for company that
 * is coming, so a lone request does not pay max_wait — or at once while
 * stopping. A request's images may be split across batches; they
 * stay in order.
 *
 * Invariants: the queue, `coming`, and every queued job's `taken`/`remaining`
 * are guarded by mu. A job is owned by its connection thread, which waits on
 * job->done until remaining == 0, so the batching thread may use the job
 * until it has decremented its last image. Inputs are copied into the
 * batch buffer and outputs out of it without the lock: those regions of a
 * job are touched only by the batching thread while the job waits.
 *
 * Memory: the batch input/output buffers are allocated at init for
 * max_batch; the executor reserves its own working memory per batch size
 * (all sizes at start with warmup_all), so serving never allocates here. */
#include "serve_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void abs_deadline(struct timespec *ts, uint64_t ns)
{
    ts->tv_sec = (time_t)(ns / 1000000000u);
    ts->tv_nsec = (long)(ns % 1000000000u);
}

kn_status kn__batcher_init(kn__batcher *b, kn_nn_exec *x, int max_batch, uint64_t max_wait_ns,
                           size_t per_in, size_t per_out, kn__metrics *m, kn_err *e)
{
    memset(b, 0, sizeof *b);
    b->x = x;
    b->max_batch = max_batch;
    b->max_wait_ns = max_wait_ns;
    b->per_in = per_in;
    b->per_out = per_out;
    b->metrics = m;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&b->mu, NULL);
    pthread_cond_init(&b->wake, &ca);
    pthread_cond_init(&b->ready, NULL);
    pthread_condattr_destroy(&ca);
    b->inited = true;
    size_t nin, nout;
    if (!kn_mul_size(per_in, (size_t)max_batch * sizeof(float), &nin) ||
        !kn_mul_size(per_out, (size_t)max_batch * sizeof(float), &nout)) {
        kn__batcher_deinit(b);
        return kn_err_set(e, KN_TOO_LARGE, "batch buffers overflow");
    }
    b->in = kn_alloc_aligned(nin);
    b->out = kn_alloc_aligned(nout);
    b->slots = calloc((size_t)max_batch, sizeof *b->slots);
    if (!b->in || !b->out || !b->slots) {
        kn__batcher_deinit(b);
        return kn_err_set(e, KN_NOMEM, "out of memory for a batch of %d", max_batch);
    }
    memset(b->in, 0, nin);
    return KN_OK;
}

/* Runs one batch of n slots (the lock is not held). */
static void run_batch(kn__batcher *b, int n)
{
    for (int i = 0; i < n; i++)
        memcpy(b->in + b->per_in * (size_t)i,
               b->slots[i].job->in + b->per_in * (size_t)b->slots[i].idx,
               b->per_in * sizeof(float));
    kn_err e;
    kn_err_clear(&e);
    uint64_t t0 = kn_now_ns();
    kn_status rc = kn_nn_exec_run(b->x, b->in, n, b->out, &e);
    uint64_t dt = kn_now_ns() - t0;
    kn__metrics *m = b->metrics;
    atomic_fetch_add_explicit(&m->model_ns, dt, memory_order_relaxed);
    atomic_fetch_add_explicit(&m->model_count, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&m->batches[n], 1, memory_order_relaxed);
    if (rc == KN_OK)
        for (int i = 0; i < n; i++)
            memcpy(b->slots[i].job->out + b->per_out * (size_t)b->slots[i].idx,
                   b->out + b->per_out * (size_t)i, b->per_out * sizeof(float));
    pthread_mutex_lock(&b->mu);
    for (int i = 0; i < n; i++) {
        kn__job *j = b->slots[i].job;
        if (rc && j->rc == KN_OK) {
            j->rc = rc;
            snprintf(j->msg, sizeof j->msg, "%s", e.msg);
        }
        if (--j->remaining == 0)
            pthread_cond_signal(&j->done); /* j may be gone once we unlock */
    }
    pthread_mutex_unlock(&b->mu);
}

static kn_status warm_up(kn__batcher *b, kn_err *e)
{
    /* the largest batch first: it is the one prepared eagerly */
    for (int n = b->max_batch; n >= 1; n--) {
        kn_status rc = kn_nn_exec_run(b->x, b->in, n, b->out, e);
        if (rc)
            return rc;
        if (!b->warmup_all)
            break;
    }
    return KN_OK;
}

static void *batch_main(void *arg)
{
    kn__batcher *b = arg;
    kn_err e;
    kn_err_clear(&e);
    kn_status rc = warm_up(b, &e);
    pthread_mutex_lock(&b->mu);
    b->warm = true;
    b->warm_rc = rc;
    b->warm_err = e;
    pthread_cond_broadcast(&b->ready);
    if (rc) {
        pthread_mutex_unlock(&b->mu);
        return NULL;
    }
    for (;;) {
        while (!b->head && !b->stop)
            pthread_cond_wait(&b->wake, &b->mu);
        if (!b->head)
            break; /* stopping and nothing left */
        uint64_t deadline = b->head->t_enq + b->max_wait_ns;
        while (b->queued < b->max_batch && b->coming > 0 && !b->stop) {
            if (kn_now_ns() >= deadline)
                break;
            struct timespec ts;
            abs_deadline(&ts, deadline);
            pthread_cond_timedwait(&b->wake, &b->mu, &ts);
        }
        int n = 0;
        while (b->head && n < b->max_batch) {
            kn__job *j = b->head;
            int k = j->n - j->taken;
            if (k > b->max_batch - n)
                k = b->max_batch - n;
            for (int i = 0; i < k; i++) {
                b->slots[n].job = j;
                b->slots[n].idx = j->taken + i;
                n++;
            }
            j->taken += k;
            b->queued -= k;
            if (j->taken == j->n) {
                b->head = j->next;
                if (!b->head)
                    b->tail = NULL;
            }
        }
        atomic_store_explicit(&b->metrics->queued, b->queued, memory_order_relaxed);
        pthread_mutex_unlock(&b->mu);
        run_batch(b, n);
        pthread_mutex_lock(&b->mu);
    }
    pthread_mutex_unlock(&b->mu);
    return NULL;
}

kn_status kn__batcher_start(kn__batcher *b, bool warmup_all, kn_err *e)
{
    b->warmup_all = warmup_all;
    int err = pthread_create(&b->th, NULL, batch_main, b);
    if (err)
        return kn_err_set(e, KN_INTERNAL, "cannot start the batching thread: %s",
                          strerror(err));
    b->started = true;
    pthread_mutex_lock(&b->mu);
    while (!b->warm)
        pthread_cond_wait(&b->ready, &b->mu);
    kn_status rc = b->warm_rc;
    if (rc)
        kn_err_set(e, rc, "warm-up: %s", b->warm_err.msg);
    pthread_mutex_unlock(&b->mu);
    if (rc) {
        pthread_join(b->th, NULL);
        b->started = false;
    }
    return rc;
}

void kn__batcher_expect(kn__batcher *b)
{
    pthread_mutex_lock(&b->mu);
    b->coming++;
    pthread_mutex_unlock(&b->mu);
}

void kn__batcher_unexpect(kn__batcher *b)
{
    pthread_mutex_lock(&b->mu);
    if (--b->coming == 0)
        pthread_cond_signal(&b->wake); /* a partial batch need not wait */
    pthread_mutex_unlock(&b->mu);
}

kn_status kn__batcher_run(kn__batcher *b, kn__job *job, bool expected)
{
    job->taken = 0;
    job->remaining = job->n;
    job->rc = KN_OK;
    job->msg[0] = 0;
    job->next = NULL;
    pthread_cond_init(&job->done, NULL);
    pthread_mutex_lock(&b->mu);
    if (expected)
        b->coming--;
    if (b->stop || !b->started) {
        pthread_mutex_unlock(&b->mu);
        pthread_cond_destroy(&job->done);
        snprintf(job->msg, sizeof job->msg, "the server is shutting down");
        return KN_IO;
    }
    job->t_enq = kn_now_ns();
    if (b->tail)
        b->tail->next = job;
    else
        b->head = job;
    b->tail = job;
    b->queued += job->n;
    atomic_store_explicit(&b->metrics->queued, b->queued, memory_order_relaxed);
    pthread_cond_signal(&b->wake);
    while (job->remaining > 0)
        pthread_cond_wait(&job->done, &b->mu);
    pthread_mutex_unlock(&b->mu);
    pthread_cond_destroy(&job->done);
    return job->rc;
}

void kn__batcher_stop(kn__batcher *b)
{
    if (!b->started)
        return;
    pthread_mutex_lock(&b->mu);
    b->stop = true;
    pthread_cond_broadcast(&b->wake);
    pthread_mutex_unlock(&b->mu);
    pthread_join(b->th, NULL);
    b->started = false;
}

void kn__batcher_deinit(kn__batcher *b)
{
    kn__batcher_stop(b);
    if (b->inited) {
        pthread_cond_destroy(&b->ready);
        pthread_cond_destroy(&b->wake);
        pthread_mutex_destroy(&b->mu);
    }
    kn_free_aligned(b->in);
    kn_free_aligned(b->out);
    free(b->slots);
    memset(b, 0, sizeof *b);
}
