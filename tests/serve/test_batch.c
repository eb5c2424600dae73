/* Unit tests for the dynamic batching queue (src/serve/batch.c) on a small
 * real network (flatten + linear on the reference executor):
 *   - many threads queue jobs of 1..6 images with max_batch 4, so jobs are
 *     split across forward passes and passes mix jobs; every job gets exactly
 *     the rows its images give one at a time, in order;
 *   - the batch-size histogram adds up to the images queued;
 *   - a partial batch waits for company only while a request is announced
 *     as coming (kn__batcher_expect): a lone job runs at once, and a job
 *     waiting for an announced request runs when that one withdraws;
 *   - stopping runs what is queued without waiting out max_wait,
 *     and a job queued after the stop is refused with KN_IO.
 * Where a job must not wait, max_wait is an hour: a batcher that waited
 * would hang the test until CTest's timeout, so nothing here is timed. */
#include "serve_int.h"
#include "kn_test.h"

#include <pthread.h>
#include <time.h>

#define C 3
#define H 4
#define W 4
#define PER_IN (C * H * W)
#define CLASSES 5
#define POOL 16
#define THREADS 8
#define JOBS 60

static float pool_in[POOL][PER_IN];
static float pool_out[POOL][CLASSES];

static kn_nn_graph *tiny_graph(void)
{
    kn_nn_graph *g = kn_nn_graph_new();
    if (!g)
        return NULL;
    int x = kn_nn_input(g, C, H, W);
    x = kn_nn_flatten(g, x);
    kn_nn_linear(g, x, "fc", CLASSES, true, KN_ACT_NONE);
    kn_nn_graph_init_params(g, 7, true);
    kn_err e;
    kn_err_clear(&e);
    if (kn_nn_graph_finalize(g, &e)) {
        fprintf(stderr, "graph: %s\n", e.msg);
        kn_nn_graph_free(g);
        return NULL;
    }
    return g;
}

typedef struct worker {
    kn__batcher *b;
    int id;
    int bad_rows, bad_rc;
} worker;

static void *work(void *arg)
{
    worker *w = arg;
    float in[6 * PER_IN], out[6 * CLASSES];
    int pick[6];
    for (int j = 0; j < JOBS; j++) {
        int n = 1 + (w->id + j) % 6;
        kn__batcher_expect(w->b); /* as a connection does from the headers on */
        for (int i = 0; i < n; i++) {
            pick[i] = (w->id * 7 + j * 3 + i * 5) % POOL;
            memcpy(in + i * PER_IN, pool_in[pick[i]], sizeof pool_in[0]);
        }
        memset(out, 0xff, sizeof out);
        kn__job job;
        memset(&job, 0, sizeof job);
        job.n = n;
        job.in = in;
        job.out = out;
        if (kn__batcher_run(w->b, &job, true) != KN_OK) {
            w->bad_rc++;
            continue;
        }
        for (int i = 0; i < n; i++)
            if (kn_test_max_abs_diff(out + i * CLASSES, pool_out[pick[i]], CLASSES) > 1e-6)
                w->bad_rows++;
    }
    return NULL;
}

static kn_nn_exec *make_exec(kn_nn_graph *g, int max_batch)
{
    kn_nn_exec_params xp = kn_nn_exec_default_params();
    xp.backend = KN_NN_REF;
    xp.max_batch = max_batch;
    xp.threads = 1;
    kn_nn_exec *x = NULL;
    kn_err e;
    kn_err_clear(&e);
    if (kn_nn_exec_new(g, &xp, &x, &e))
        fprintf(stderr, "exec: %s\n", e.msg);
    return x;
}

static void test_concurrent_jobs(void)
{
    kn_nn_graph *g = tiny_graph();
    KN_REQUIRE(g);
    kn_nn_exec *x = make_exec(g, 4);
    KN_REQUIRE(x);
    kn_err e;
    kn_err_clear(&e);
    /* the rows of each pool image alone */
    for (int k = 0; k < POOL; k++) {
        for (int i = 0; i < PER_IN; i++)
            pool_in[k][i] = (float)((k * 31 + i * 17) % 23) / 11.0f - 1.0f;
        KN_CHECK_INT(kn_nn_exec_run(x, pool_in[k], 1, pool_out[k], &e), KN_OK);
    }
    KN_CHECK(kn_test_max_abs_diff(pool_out[0], pool_out[1], CLASSES) > 1e-3);

    kn__metrics m;
    KN_REQUIRE(kn__metrics_init(&m, 4) == KN_OK);
    kn__batcher b;
    KN_REQUIRE(kn__batcher_init(&b, x, 4, 2000000, PER_IN, CLASSES, &m, &e) == KN_OK);
    KN_REQUIRE(kn__batcher_start(&b, true, &e) == KN_OK);

    worker w[THREADS];
    pthread_t th[THREADS];
    int images = 0;
    for (int t = 0; t < THREADS; t++) {
        w[t] = (worker){.b = &b, .id = t};
        KN_CHECK_INT(pthread_create(&th[t], NULL, work, &w[t]), 0);
        for (int j = 0; j < JOBS; j++)
            images += 1 + (t + j) % 6;
    }
    for (int t = 0; t < THREADS; t++) {
        pthread_join(th[t], NULL);
        KN_CHECK_INT(w[t].bad_rc, 0);
        KN_CHECK_INT(w[t].bad_rows, 0);
    }
    uint64_t sum = 0;
    for (int s = 1; s <= 4; s++)
        sum += (uint64_t)s * atomic_load(&m.batches[s]);
    KN_CHECK_INT(sum, images);
    KN_CHECK_INT(atomic_load(&m.batches[0]), 0);
    KN_CHECK_INT(atomic_load(&m.queued), 0);

    kn__batcher_deinit(&b);
    kn__metrics_deinit(&m);
    kn_nn_exec_free(x);
    kn_nn_graph_free(g);
}

typedef struct one_job {
    kn__batcher *b;
    float in[PER_IN], out[CLASSES];
    kn_status rc;
} one_job;

static void *run_one(void *arg)
{
    one_job *o = arg;
    kn__job job;
    memset(&job, 0, sizeof job);
    job.n = 1;
    job.in = o->in;
    job.out = o->out;
    o->rc = kn__batcher_run(o->b, &job, false);
    return NULL;
}

static void test_stop(void)
{
    kn_nn_graph *g = tiny_graph();
    KN_REQUIRE(g);
    kn_nn_exec *x = make_exec(g, 4);
    KN_REQUIRE(x);
    kn_err e;
    kn_err_clear(&e);
    kn__metrics m;
    KN_REQUIRE(kn__metrics_init(&m, 4) == KN_OK);
    kn__batcher b;
    /* one image would wait an hour for an announced request that never comes:
     * only the stop can run it */
    KN_REQUIRE(kn__batcher_init(&b, x, 4, 3600000000000ull, PER_IN, CLASSES, &m, &e) == KN_OK);
    KN_REQUIRE(kn__batcher_start(&b, false, &e) == KN_OK);
    kn__batcher_expect(&b);
    one_job o = {.b = &b};
    memcpy(o.in, pool_in[3], sizeof o.in);
    pthread_t th;
    KN_REQUIRE(pthread_create(&th, NULL, run_one, &o) == 0);
    while (atomic_load(&m.queued) != 1) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    kn__batcher_stop(&b);
    pthread_join(th, NULL);
    KN_CHECK_INT(o.rc, KN_OK);
    KN_CHECK(kn_test_max_abs_diff(o.out, pool_out[3], CLASSES) <= 1e-6);
    KN_CHECK_INT(atomic_load(&m.batches[1]), 1);

    one_job late = {.b = &b};
    run_one(&late);
    KN_CHECK_INT(late.rc, KN_IO);
    kn__batcher_unexpect(&b);
    kn__batcher_stop(&b); /* idempotent */
    kn__batcher_deinit(&b);
    kn__metrics_deinit(&m);
    kn_nn_exec_free(x);
    kn_nn_graph_free(g);
}

static void test_wait_only_for_coming(void)
{
    kn_nn_graph *g = tiny_graph();
    KN_REQUIRE(g);
    kn_nn_exec *x = make_exec(g, 4);
    KN_REQUIRE(x);
    kn_err e;
    kn_err_clear(&e);
    kn__metrics m;
    KN_REQUIRE(kn__metrics_init(&m, 4) == KN_OK);
    kn__batcher b;
    KN_REQUIRE(kn__batcher_init(&b, x, 4, 3600000000000ull, PER_IN, CLASSES, &m, &e) == KN_OK);
    KN_REQUIRE(kn__batcher_start(&b, false, &e) == KN_OK);

    /* nobody is coming: a lone image runs at once */
    one_job o = {.b = &b};
    memcpy(o.in, pool_in[5], sizeof o.in);
    run_one(&o);
    KN_CHECK_INT(o.rc, KN_OK);
    KN_CHECK(kn_test_max_abs_diff(o.out, pool_out[5], CLASSES) <= 1e-6);

    /* a request is announced: the queued image waits for it, and runs once
     * it withdraws (a refused request, say) */
    kn__batcher_expect(&b);
    one_job o2 = {.b = &b};
    memcpy(o2.in, pool_in[6], sizeof o2.in);
    pthread_t th;
    KN_REQUIRE(pthread_create(&th, NULL, run_one, &o2) == 0);
    while (atomic_load(&m.queued) != 1) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    kn__batcher_unexpect(&b);
    pthread_join(th, NULL);
    KN_CHECK_INT(o2.rc, KN_OK);
    KN_CHECK(kn_test_max_abs_diff(o2.out, pool_out[6], CLASSES) <= 1e-6);

    /* an announced request that queues joins the waiting one's batch */
    kn__batcher_expect(&b);
    kn__batcher_expect(&b);
    one_job a = {.b = &b}, c = {.b = &b};
    memcpy(a.in, pool_in[7], sizeof a.in);
    memcpy(c.in, pool_in[8], sizeof c.in);
    kn__batcher_unexpect(&b); /* a is queued below as not announced */
    KN_REQUIRE(pthread_create(&th, NULL, run_one, &a) == 0);
    while (atomic_load(&m.queued) != 1) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    kn__job job;
    memset(&job, 0, sizeof job);
    job.n = 1;
    job.in = c.in;
    job.out = c.out;
    KN_CHECK_INT(kn__batcher_run(&b, &job, true), KN_OK);
    pthread_join(th, NULL);
    KN_CHECK_INT(a.rc, KN_OK);
    KN_CHECK(kn_test_max_abs_diff(a.out, pool_out[7], CLASSES) <= 1e-6);
    KN_CHECK(kn_test_max_abs_diff(c.out, pool_out[8], CLASSES) <= 1e-6);
    KN_CHECK_INT(atomic_load(&m.batches[1]), 2);
    KN_CHECK_INT(atomic_load(&m.batches[2]), 1);

    kn__batcher_deinit(&b);
    kn__metrics_deinit(&m);
    kn_nn_exec_free(x);
    kn_nn_graph_free(g);
}

int main(void)
{
    KN_RUN(test_concurrent_jobs);
    KN_RUN(test_wait_only_for_coming);
    KN_RUN(test_stop);
    return kn_test_finish();
}
