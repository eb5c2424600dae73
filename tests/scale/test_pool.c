/* Function concurrency: the reference project's reserved 5 / provisioned 2
 * on alias `live` (2 warm + 3 on demand, the sixth concurrent call
 * throttled, $LATEST limited to 3), AWS's configuration checks and
 * messages, the account pool for functions without reservations, and
 * leases taken and given back by many threads at once. */
#include "kennel/scale.h"
#include "kn_test.h"

#include <limits.h>
#include <pthread.h>
#include <string.h>

static kn_scale_pool *new_pool(int limit, int min_unreserved)
{
    kn_scale_pool_params p = kn_scale_pool_default_params();
    p.account_limit = limit;
    p.min_unreserved = min_unreserved;
    kn_scale_pool *pool = NULL;
    kn_err e = {0};
    KN_CHECK_INT(kn_scale_pool_new(&p, &pool, &e), KN_OK);
    return pool;
}

static void test_reference_function(void)
{
    kn_scale_pool *pool = new_pool(1000, 100);
    KN_REQUIRE(pool);
    kn_err e = {0};
    KN_CHECK_INT(kn_scale_pool_set_reserved(pool, "dog-fn", 5, &e), KN_OK);
    KN_CHECK_INT(kn_scale_pool_set_provisioned(pool, "dog-fn", "live", "1", 2, &e), KN_OK);
    kn_scale_lease l[8];
    kn_scale_throttle why;
    /* not READY yet: everything on demand, 5 - 2 = 3 of them */
    for (int i = 0; i < 3; i++) {
        KN_CHECK(kn_scale_pool_acquire(pool, "dog-fn", "1", &l[i], &why));
        KN_CHECK(!l[i].provisioned && l[i].spillover);
    }
    KN_CHECK(!kn_scale_pool_acquire(pool, "dog-fn", "1", &l[3], &why));
    KN_CHECK_INT(why, KN_SCALE_THROTTLE_RESERVED);
    KN_CHECK_STR(kn_scale_throttle_reason(why), "ReservedFunctionConcurrentInvocationLimitExceeded");
    for (int i = 0; i < 3; i++)
        kn_scale_pool_release(pool, &l[i]);

    KN_CHECK_INT(kn_scale_pool_set_ready(pool, "dog-fn", "live", 0, &e), KN_OK);
    int warm = 0, cold = 0;
    for (int i = 0; i < 5; i++) {
        KN_CHECK(kn_scale_pool_acquire(pool, "dog-fn", "1", &l[i], &why));
        warm += l[i].provisioned;
        cold += l[i].spillover;
    }
    KN_CHECK_INT(warm, 2); /* the warm environments first */
    KN_CHECK_INT(cold, 3);
    KN_CHECK(!l[0].spillover && l[0].provisioned && !l[4].provisioned);
    KN_CHECK(!kn_scale_pool_acquire(pool, "dog-fn", "1", &l[5], &why)); /* sixth: 429 */
    KN_CHECK_INT(why, KN_SCALE_THROTTLE_RESERVED);
    KN_CHECK(!kn_scale_pool_acquire(pool, "dog-fn", "$LATEST", &l[5], &why)); /* shares the 3 */
    kn_scale_fn_stats st;
    kn_scale_pool_stats(pool, "dog-fn", &st);
    KN_CHECK(st.reserved == 5 && st.provisioned == 2 && st.running_provisioned == 2 &&
             st.running_on_demand == 3);
    /* a warm one ends: the next call of the alias gets it */
    kn_scale_pool_release(pool, &l[0]);
    kn_scale_pool_release(pool, &l[0]); /* twice: ignored */
    KN_CHECK(kn_scale_pool_acquire(pool, "dog-fn", "1", &l[0], &why) && l[0].provisioned);
    for (int i = 0; i < 5; i++)
        kn_scale_pool_release(pool, &l[i]);
    /* $LATEST alone: 3 on demand, never the provisioned ones */
    for (int i = 0; i < 3; i++) {
        KN_CHECK(kn_scale_pool_acquire(pool, "dog-fn", "$LATEST", &l[i], &why));
        KN_CHECK(!l[i].provisioned && !l[i].spillover);
    }
    KN_CHECK(!kn_scale_pool_acquire(pool, "dog-fn", "$LATEST", &l[3], &why));
    KN_CHECK(kn_scale_pool_acquire(pool, "dog-fn", "1", &l[3], &why) && l[3].provisioned);
    for (int i = 0; i < 4; i++)
        kn_scale_pool_release(pool, &l[i]);
    kn_scale_pool_stats(pool, "dog-fn", &st);
    KN_CHECK(st.running_provisioned == 0 && st.running_on_demand == 0);
    KN_CHECK_INT(kn_scale_pool_unreserved(pool), 995);
    kn_scale_pool_free(pool);
}

static void test_configuration_checks(void)
{
    kn_scale_pool *pool = new_pool(1000, 100);
    KN_REQUIRE(pool);
    kn_err e = {0};
    KN_CHECK_INT(kn_scale_pool_set_reserved(pool, "a", 901, &e), KN_INVALID);
    KN_CHECK_CONTAINS(e.msg, "below its minimum value of [100]");
    KN_CHECK_INT(kn_scale_pool_set_reserved(pool, "a", 900, &e), KN_OK);
    KN_CHECK_INT(kn_scale_pool_unreserved(pool), 100);
    KN_CHECK_INT(kn_scale_pool_set_reserved(pool, "b", 1, &e), KN_INVALID);
    KN_CHECK_INT(kn_scale_pool_set_reserved(pool, "a", 400, &e), KN_OK); /* lowering is fine */
    /* provisioned concurrency */
    KN_CHECK_INT(kn_scale_pool_set_provisioned(pool, "a", "$LATEST", "$LATEST", 1, &e), KN_INVALID);
    KN_CHECK_CONTAINS(e.msg, "cannot be applied to unpublished function versions");
    KN_CHECK_INT(kn_scale_pool_set_provisioned(pool, "a", "live", "3", -1, &e), KN_SHAPE);
    KN_CHECK_CONTAINS(e.msg, "greater than or equal to 1");
    KN_CHECK_INT(kn_scale_pool_set_provisioned(pool, "a", "live", "3", 401, &e), KN_INVALID);
    KN_CHECK_CONTAINS(e.msg, "should not be greater than the reservedConcurrentExecution");
    KN_CHECK_INT(kn_scale_pool_set_provisioned(pool, "a", "live", "3", 300, &e), KN_OK);
    KN_CHECK_INT(kn_scale_pool_set_provisioned(pool, "a", "3", "3", 10, &e), KN_EXISTS);
    KN_CHECK_CONTAINS(e.msg, "live already has provisioned concurrency for version 3");
    KN_CHECK_INT(kn_scale_pool_set_provisioned(pool, "a", "old", "2", 100, &e), KN_OK);
    KN_CHECK_INT(kn_scale_pool_set_provisioned(pool, "a", "old", "2", 101, &e), KN_INVALID);
    KN_CHECK_INT(kn_scale_pool_set_reserved(pool, "a", 399, &e), KN_INVALID);
    KN_CHECK_CONTAINS(e.msg, "total provisioned concurrency [400]");
    KN_CHECK_INT(kn_scale_pool_set_provisioned(pool, "a", "live", "3", 250, &e), KN_OK); /* update */
    KN_CHECK_INT(kn_scale_pool_set_reserved(pool, "a", 350, &e), KN_OK);
    KN_CHECK_INT(kn_scale_pool_set_ready(pool, "a", "nope", 0, &e), KN_NOT_FOUND);
    /* without a reservation, provisioned concurrency comes out of the pool */
    KN_CHECK_INT(kn_scale_pool_set_provisioned(pool, "b", "v1", "1", 551, &e), KN_INVALID);
    KN_CHECK_CONTAINS(e.msg, "below its minimum value of [100]");
    KN_CHECK_INT(kn_scale_pool_set_provisioned(pool, "b", "v1", "1", 550, &e), KN_OK);
    KN_CHECK_INT(kn_scale_pool_unreserved(pool), 100);
    /* reserving for b moves its 550 inside the reservation */
    KN_CHECK_INT(kn_scale_pool_set_reserved(pool, "b", 549, &e), KN_INVALID);
    KN_CHECK_INT(kn_scale_pool_set_reserved(pool, "b", 550, &e), KN_OK);
    KN_CHECK_INT(kn_scale_pool_unreserved(pool), 100);
    KN_CHECK_INT(kn_scale_pool_set_provisioned(pool, "b", "v1", "1", 0, &e), KN_OK); /* delete */
    kn_scale_fn_stats st;
    kn_scale_pool_stats(pool, "b", &st);
    KN_CHECK(st.provisioned == 0 && st.reserved == 550);
    KN_CHECK_INT(kn_scale_pool_set_reserved(pool, "b", -1, &e), KN_OK);
    KN_CHECK_INT(kn_scale_pool_unreserved(pool), 650);
    kn_scale_pool_remove(pool, "a");
    KN_CHECK_INT(kn_scale_pool_unreserved(pool), 1000);
    /* counts from requests near INT_MAX are refused, never wrapped around */
    KN_CHECK_INT(kn_scale_pool_set_reserved(pool, "r", 10, &e), KN_OK);
    KN_CHECK_INT(kn_scale_pool_set_provisioned(pool, "r", "v1", "1", 5, &e), KN_OK);
    KN_CHECK_INT(kn_scale_pool_set_provisioned(pool, "r", "v2", "2", INT_MAX, &e), KN_INVALID);
    KN_CHECK_INT(kn_scale_pool_set_provisioned(pool, "p", "v1", "1", 5, &e), KN_OK);
    KN_CHECK_INT(kn_scale_pool_set_reserved(pool, "huge", INT_MAX, &e), KN_INVALID);
    KN_CHECK_INT(kn_scale_pool_set_provisioned(pool, "huge", "v", "1", INT_MAX, &e), KN_INVALID);
    KN_CHECK_INT(kn_scale_pool_set_provisioned(pool, "a", "v9", "9", INT_MAX, &e), KN_INVALID);
    KN_CHECK_INT(kn_scale_pool_set_provisioned(pool, "a", "v9", "9", INT_MAX - 200, &e),
                 KN_INVALID);
    /* names come from requests: control bytes are refused, and no message
     * ever carries them */
    KN_CHECK_INT(kn_scale_pool_set_reserved(pool, "f\nX", 1, &e), KN_INVALID);
    KN_CHECK_INT(kn_scale_pool_set_provisioned(pool, "b", "l\r\n", "1", 1, &e), KN_INVALID);
    KN_CHECK(strchr(e.msg, '\n') == NULL && strchr(e.msg, '\r') == NULL);
    KN_CHECK_INT(kn_scale_pool_set_ready(pool, "b\x1b[2J", "q\nX-Evil: 1", 0, &e), KN_INVALID);
    for (const char *c = e.msg; *c; c++)
        KN_CHECK((unsigned char)*c >= 0x20 && *c != 0x7f);
    kn_scale_lease l;
    kn_scale_throttle why;
    KN_CHECK(!kn_scale_pool_acquire(pool, "b\n", "1", &l, &why));
    kn_scale_pool_params bad = {.account_limit = 10, .min_unreserved = 11};
    kn_scale_pool *x = NULL;
    KN_CHECK_INT(kn_scale_pool_new(&bad, &x, &e), KN_INVALID);
    kn_scale_pool_free(pool);
}

/* Functions without reservations share what the reservations leave. */
static void test_account_pool(void)
{
    kn_scale_pool *pool = new_pool(10, 2);
    KN_REQUIRE(pool);
    kn_err e = {0};
    KN_CHECK_INT(kn_scale_pool_set_reserved(pool, "big", 4, &e), KN_OK);
    kn_scale_lease l[12];
    kn_scale_throttle why;
    int got = 0;
    for (int i = 0; i < 12; i++)
        got += kn_scale_pool_acquire(pool, i % 2 ? "f" : "g", "$LATEST", &l[i], &why);
    KN_CHECK_INT(got, 6); /* 10 - 4 reserved */
    KN_CHECK_INT(why, KN_SCALE_THROTTLE_ACCOUNT);
    KN_CHECK_STR(kn_scale_throttle_reason(why), "ConcurrentInvocationLimitExceeded");
    /* the reserving function still has its 4 */
    kn_scale_lease r[5];
    for (int i = 0; i < 4; i++)
        KN_CHECK(kn_scale_pool_acquire(pool, "big", "$LATEST", &r[i], &why));
    KN_CHECK(!kn_scale_pool_acquire(pool, "big", "$LATEST", &r[4], &why));
    KN_CHECK_INT(why, KN_SCALE_THROTTLE_RESERVED);
    for (int i = 0; i < 12; i++)
        kn_scale_pool_release(pool, &l[i]); /* the throttled ones hold no lease */
    KN_CHECK(kn_scale_pool_acquire(pool, "f", "$LATEST", &l[0], &why));
    /* reserved 0 throttles everything */
    KN_CHECK_INT(kn_scale_pool_set_reserved(pool, "off", 0, &e), KN_OK);
    KN_CHECK(!kn_scale_pool_acquire(pool, "off", "$LATEST", &l[1], &why));
    kn_scale_pool_free(pool);
}

/* Provisioned configurations replaced while leases are out: a lease
 * counts against the configuration it ran on and nothing else. Deleting
 * and re-creating a configuration, or pointing the alias at another
 * version, starts from zero running; the old leases, released later, do
 * not free the new environments; a change of count for the same version
 * keeps its running leases. */
static void test_reconfigure_with_leases_out(void)
{
    kn_scale_pool *pool = new_pool(1000, 100);
    KN_REQUIRE(pool);
    kn_err e = {0};
    kn_scale_throttle why;
    kn_scale_fn_stats st;
    KN_CHECK_INT(kn_scale_pool_set_reserved(pool, "f", 10, &e), KN_OK);
    KN_CHECK_INT(kn_scale_pool_set_provisioned(pool, "f", "live", "1", 2, &e), KN_OK);
    KN_CHECK_INT(kn_scale_pool_set_ready(pool, "f", "live", 0, &e), KN_OK);
    kn_scale_lease old[2], fresh[3];
    for (int i = 0; i < 2; i++) {
        KN_CHECK(kn_scale_pool_acquire(pool, "f", "1", &old[i], &why));
        KN_CHECK(old[i].provisioned);
    }
    /* delete and re-create: two new warm environments */
    KN_CHECK_INT(kn_scale_pool_set_provisioned(pool, "f", "live", "1", 0, &e), KN_OK);
    KN_CHECK_INT(kn_scale_pool_set_provisioned(pool, "f", "live", "1", 2, &e), KN_OK);
    KN_CHECK_INT(kn_scale_pool_set_ready(pool, "f", "live", 0, &e), KN_OK);
    for (int i = 0; i < 2; i++) {
        KN_CHECK(kn_scale_pool_acquire(pool, "f", "1", &fresh[i], &why));
        KN_CHECK(fresh[i].provisioned);
    }
    for (int i = 0; i < 2; i++)
        kn_scale_pool_release(pool, &old[i]); /* must not free the new ones */
    kn_scale_pool_stats(pool, "f", &st);
    KN_CHECK_INT(st.running_provisioned, 2);
    KN_CHECK(kn_scale_pool_acquire(pool, "f", "1", &fresh[2], &why));
    KN_CHECK(!fresh[2].provisioned && fresh[2].spillover); /* both warm ones are busy */
    for (int i = 0; i < 3; i++)
        kn_scale_pool_release(pool, &fresh[i]);
    kn_scale_pool_stats(pool, "f", &st);
    KN_CHECK(st.running_provisioned == 0 && st.running_on_demand == 0);

    /* the alias moves to version 2: its environments start empty, and the
     * version-1 leases still out are released into nothing */
    for (int i = 0; i < 2; i++)
        KN_CHECK(kn_scale_pool_acquire(pool, "f", "1", &old[i], &why) && old[i].provisioned);
    KN_CHECK_INT(kn_scale_pool_set_provisioned(pool, "f", "live", "2", 2, &e), KN_OK);
    KN_CHECK_INT(kn_scale_pool_set_ready(pool, "f", "live", 0, &e), KN_OK);
    for (int i = 0; i < 2; i++) {
        KN_CHECK(kn_scale_pool_acquire(pool, "f", "2", &fresh[i], &why));
        KN_CHECK(fresh[i].provisioned);
    }
    for (int i = 0; i < 2; i++) {
        kn_scale_pool_release(pool, &old[i]);
        kn_scale_pool_release(pool, &fresh[i]);
    }
    kn_scale_pool_stats(pool, "f", &st);
    KN_CHECK(st.running_provisioned == 0 && st.running_on_demand == 0);

    /* same version, more environments: the running lease keeps counting */
    KN_CHECK(kn_scale_pool_acquire(pool, "f", "2", &old[0], &why) && old[0].provisioned);
    KN_CHECK_INT(kn_scale_pool_set_provisioned(pool, "f", "live", "2", 3, &e), KN_OK);
    KN_CHECK_INT(kn_scale_pool_set_ready(pool, "f", "live", 0, &e), KN_OK);
    for (int i = 0; i < 3; i++)
        KN_CHECK(kn_scale_pool_acquire(pool, "f", "2", &fresh[i], &why));
    KN_CHECK(fresh[0].provisioned && fresh[1].provisioned && !fresh[2].provisioned);
    kn_scale_pool_release(pool, &old[0]);
    for (int i = 0; i < 3; i++)
        kn_scale_pool_release(pool, &fresh[i]);
    kn_scale_pool_stats(pool, "f", &st);
    KN_CHECK(st.running_provisioned == 0 && st.running_on_demand == 0);
    kn_scale_pool_free(pool);
}

/* Eight threads against reserved 5 / provisioned 2: in each round every
 * thread tries once while all hold what they got (a barrier), so exactly 2
 * warm + 3 on-demand leases succeed and exactly 3 calls are throttled per
 * round, whatever the scheduling; between the rounds everything is given
 * back. A second phase lets the threads run free, checking the caps from
 * inside. */
enum { THREADS = 8, ROUNDS = 300, FREE_RUNS = 3000 };

typedef struct hammer {
    kn_scale_pool *pool;
    pthread_barrier_t bar;
    int over_cap;
    int throttled, warm, cold;
} hammer;

static void *hammer_thread(void *arg)
{
    hammer *h = arg;
    for (int r = 0; r < ROUNDS; r++) {
        kn_scale_lease l;
        kn_scale_throttle why;
        bool got = kn_scale_pool_acquire(h->pool, "dog-fn", "1", &l, &why);
        if (got) {
            __atomic_add_fetch(l.provisioned ? &h->warm : &h->cold, 1, __ATOMIC_RELAXED);
        } else {
            __atomic_add_fetch(&h->throttled, 1, __ATOMIC_RELAXED);
            if (why != KN_SCALE_THROTTLE_RESERVED)
                __atomic_store_n(&h->over_cap, 1, __ATOMIC_RELAXED);
        }
        pthread_barrier_wait(&h->bar); /* everyone has tried */
        if (got)
            kn_scale_pool_release(h->pool, &l);
        pthread_barrier_wait(&h->bar); /* everything is back */
    }
    for (int i = 0; i < FREE_RUNS; i++) {
        kn_scale_lease l;
        kn_scale_throttle why;
        if (kn_scale_pool_acquire(h->pool, "dog-fn", "1", &l, &why)) {
            kn_scale_fn_stats st;
            kn_scale_pool_stats(h->pool, "dog-fn", &st);
            if (st.running_on_demand > 3 || st.running_provisioned > 2)
                __atomic_store_n(&h->over_cap, 1, __ATOMIC_RELAXED);
            kn_scale_pool_release(h->pool, &l);
        }
    }
    return NULL;
}

static void test_threads(void)
{
    kn_scale_pool *pool = new_pool(1000, 100);
    KN_REQUIRE(pool);
    kn_err e = {0};
    KN_CHECK_INT(kn_scale_pool_set_reserved(pool, "dog-fn", 5, &e), KN_OK);
    KN_CHECK_INT(kn_scale_pool_set_provisioned(pool, "dog-fn", "live", "1", 2, &e), KN_OK);
    KN_CHECK_INT(kn_scale_pool_set_ready(pool, "dog-fn", "live", 2, &e), KN_OK);
    hammer h = {.pool = pool};
    pthread_barrier_init(&h.bar, NULL, THREADS);
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        pthread_create(&t[i], NULL, hammer_thread, &h);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    pthread_barrier_destroy(&h.bar);
    KN_CHECK_INT(h.over_cap, 0);
    KN_CHECK_INT(h.warm, 2 * ROUNDS);
    KN_CHECK_INT(h.cold, 3 * ROUNDS);
    KN_CHECK_INT(h.throttled, 3 * ROUNDS);
    kn_scale_fn_stats st;
    kn_scale_pool_stats(pool, "dog-fn", &st);
    KN_CHECK(st.running_on_demand == 0 && st.running_provisioned == 0); /* all given back */
    kn_scale_pool_free(pool);
}

int main(void)
{
    KN_RUN(test_reference_function);
    KN_RUN(test_configuration_checks);
    KN_RUN(test_account_pool);
    KN_RUN(test_reconfigure_with_leases_out);
    KN_RUN(test_threads);
    return kn_test_finish();
}
