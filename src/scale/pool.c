/* The function concurrency pool (see the second half of scale.h).
 *
 * One mutex guards everything: a lease is a few integer updates, and
 * invocations are far slower than the lock. Functions and provisioned
 * configurations live in small arrays searched linearly (an account holds
 * tens of functions, not thousands). Leases are recorded by id so a
 * release after the function was removed, or a second release, changes
 * nothing; a provisioned lease also names the generation of the
 * configuration it ran on, so replacing a configuration while leases are
 * out never lets their release free another configuration's environment. */
#include "kennel/scale.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define NAME_MAX_LEN 170 /* function names are at most 64, ARNs ~140 */

typedef struct fn_rec {
    char name[NAME_MAX_LEN];
    int reserved; /* -1: none */
    int on_demand;
} fn_rec;

typedef struct pc_rec {
    char fn[NAME_MAX_LEN];
    char qualifier[NAME_MAX_LEN];
    char version[NAME_MAX_LEN];
    int requested, allocated;
    bool ready;
    int running;            /* leases out on this configuration's environments */
    unsigned long long gen; /* which configuration: a lease names it */
} pc_rec;

typedef struct lease_rec {
    unsigned long long id;
    char fn[NAME_MAX_LEN];
    char version[NAME_MAX_LEN];
    bool provisioned;
    unsigned long long gen; /* provisioned: the configuration it runs on */
} lease_rec;

struct kn_scale_pool {
    kn_scale_pool_params p;
    pthread_mutex_t mu;
    fn_rec *f;
    int nf, capf;
    pc_rec *c;
    int nc, capc;
    lease_rec *l;
    int nl, capl;
    unsigned long long next_id;
    unsigned long long next_gen;
};

kn_scale_pool_params kn_scale_pool_default_params(void)
{
    return (kn_scale_pool_params){.account_limit = 1000, .min_unreserved = 100};
}

kn_status kn_scale_pool_new(const kn_scale_pool_params *p, kn_scale_pool **out, kn_err *e)
{
    *out = NULL;
    if (p->account_limit < 1 || p->min_unreserved < 0 || p->min_unreserved > p->account_limit)
        return kn_err_set(e, KN_INVALID,
                          "concurrency pool: limit %d and unreserved minimum %d are not "
                          "0 <= minimum <= limit, limit >= 1",
                          p->account_limit, p->min_unreserved);
    kn_scale_pool *pool = calloc(1, sizeof *pool);
    if (!pool)
        return kn_err_set(e, KN_NOMEM, "concurrency pool: out of memory");
    pool->p = *p;
    pool->next_id = 1;
    pool->next_gen = 1;
    pthread_mutex_init(&pool->mu, NULL);
    *out = pool;
    return KN_OK;
}

void kn_scale_pool_free(kn_scale_pool *pool)
{
    if (!pool)
        return;
    pthread_mutex_destroy(&pool->mu);
    free(pool->f);
    free(pool->c);
    free(pool->l);
    free(pool);
}

static bool grow(void **arr, int *cap, int n, size_t size)
{
    if (n < *cap)
        return true;
    int nc = *cap ? 2 * *cap : 16;
    void *a = realloc(*arr, (size_t)nc * size);
    if (!a)
        return false;
    *arr = a;
    *cap = nc;
    return true;
}

/* Names come from requests and go into messages: non-empty, bounded, and
 * without control bytes (no Lambda name, version or alias has any). */
static bool name_ok(const char *s)
{
    if (!s || !*s || strlen(s) >= NAME_MAX_LEN)
        return false;
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return false;
    return true;
}

static fn_rec *fn_find(kn_scale_pool *pool, const char *fn)
{
    for (int i = 0; i < pool->nf; i++)
        if (!strcmp(pool->f[i].name, fn))
            return &pool->f[i];
    return NULL;
}

static fn_rec *fn_get(kn_scale_pool *pool, const char *fn)
{
    fn_rec *r = fn_find(pool, fn);
    if (r || !grow((void **)&pool->f, &pool->capf, pool->nf, sizeof *pool->f))
        return r;
    r = &pool->f[pool->nf++];
    memset(r, 0, sizeof *r);
    memcpy(r->name, fn, strlen(fn) + 1);
    r->reserved = -1;
    return r;
}

/* Provisioned total of one function, leaving out one configuration. */
static int pc_total(const kn_scale_pool *pool, const char *fn, const pc_rec *skip)
{
    int n = 0;
    for (int i = 0; i < pool->nc; i++)
        if (&pool->c[i] != skip && !strcmp(pool->c[i].fn, fn))
            n += pool->c[i].requested;
    return n;
}

/* What is taken from the pool by reservations and by the provisioned
 * concurrency of non-reserving functions; `skip_fn` and `skip_pc` leave out
 * one function's reservation or one configuration (for what-if checks). */
static int committed(const kn_scale_pool *pool, const char *skip_fn, const pc_rec *skip_pc)
{
    int n = 0;
    for (int i = 0; i < pool->nf; i++)
        if (pool->f[i].reserved >= 0 && !(skip_fn && !strcmp(pool->f[i].name, skip_fn)))
            n += pool->f[i].reserved;
    for (int i = 0; i < pool->nc; i++) {
        const pc_rec *c = &pool->c[i];
        if (c == skip_pc)
            continue;
        const fn_rec *f = NULL;
        for (int j = 0; j < pool->nf; j++)
            if (!strcmp(pool->f[j].name, c->fn))
                f = &pool->f[j];
        bool reserving = f && f->reserved >= 0 && !(skip_fn && !strcmp(c->fn, skip_fn));
        if (!reserving)
            n += c->requested;
    }
    return n;
}

kn_status kn_scale_pool_set_reserved(kn_scale_pool *pool, const char *fn, int reserved,
                                     kn_err *e)
{
    if (!name_ok(fn))
        return kn_err_set(e, KN_INVALID, "function name is empty, too long or not printable");
    kn_status rc = KN_OK;
    pthread_mutex_lock(&pool->mu);
    if (reserved < 0) {
        fn_rec *f = fn_find(pool, fn);
        if (f)
            f->reserved = -1;
        goto out;
    }
    int pcs = pc_total(pool, fn, NULL);
    if (reserved < pcs) {
        rc = kn_err_set(e, KN_INVALID,
                        "ReservedConcurrentExecutions %d should not be lower than function's "
                        "total provisioned concurrency [%d].",
                        reserved, pcs);
        goto out;
    }
    /* With the reservation, the function's provisioned concurrency counts
     * inside it rather than against the pool. */
    /* 64-bit: reserved comes from the request and may be near INT_MAX */
    long long after = (long long)committed(pool, fn, NULL) - pcs + reserved;
    if (pool->p.account_limit - after < pool->p.min_unreserved) {
        rc = kn_err_set(e, KN_INVALID,
                        "Specified ReservedConcurrentExecutions for function decreases "
                        "account's UnreservedConcurrentExecution below its minimum value of "
                        "[%d].",
                        pool->p.min_unreserved);
        goto out;
    }
    fn_rec *f = fn_get(pool, fn);
    if (!f) {
        rc = kn_err_set(e, KN_NOMEM, "concurrency pool: out of memory");
        goto out;
    }
    f->reserved = reserved;
out:
    pthread_mutex_unlock(&pool->mu);
    return rc;
}

static pc_rec *pc_find(kn_scale_pool *pool, const char *fn, const char *qualifier)
{
    for (int i = 0; i < pool->nc; i++)
        if (!strcmp(pool->c[i].fn, fn) && !strcmp(pool->c[i].qualifier, qualifier))
            return &pool->c[i];
    return NULL;
}

kn_status kn_scale_pool_set_provisioned(kn_scale_pool *pool, const char *fn,
                                        const char *qualifier, const char *version, int n,
                                        kn_err *e)
{
    if (!name_ok(fn) || !name_ok(qualifier) || !name_ok(version))
        return kn_err_set(e, KN_INVALID,
                          "function, qualifier or version is empty, too long or not printable");
    if (n < 0)
        return kn_err_set(e, KN_SHAPE,
                          "1 validation error detected: Value '%d' at "
                          "'provisionedConcurrentExecutions' failed to satisfy constraint: "
                          "Member must have value greater than or equal to 1",
                          n);
    kn_status rc = KN_OK;
    pthread_mutex_lock(&pool->mu);
    pc_rec *c = pc_find(pool, fn, qualifier);
    if (n == 0) { /* DeleteProvisionedConcurrencyConfig */
        if (c) {
            *c = pool->c[--pool->nc];
        }
        goto out;
    }
    if (!strcmp(version, "$LATEST") || !strcmp(qualifier, "$LATEST")) {
        rc = kn_err_set(e, KN_INVALID,
                        "Provisioned Concurrency Configs cannot be applied to unpublished "
                        "function versions.");
        goto out;
    }
    for (int i = 0; i < pool->nc; i++)
        if (&pool->c[i] != c && !strcmp(pool->c[i].fn, fn) &&
            !strcmp(pool->c[i].version, version)) {
            rc = kn_err_set(e, KN_EXISTS,
                            "Alias or version %s already has provisioned concurrency for "
                            "version %s of function %s",
                            pool->c[i].qualifier, version, fn);
            goto out;
        }
    const fn_rec *f = fn_find(pool, fn);
    if (f && f->reserved >= 0) {
        if ((long long)pc_total(pool, fn, c) + n > f->reserved) {
            rc = kn_err_set(e, KN_INVALID,
                            "Requested Provisioned Concurrency should not be greater than the "
                            "reservedConcurrentExecution for function");
            goto out;
        }
    } else if (pool->p.account_limit - ((long long)committed(pool, NULL, c) + n) <
               pool->p.min_unreserved) {
        rc = kn_err_set(e, KN_INVALID,
                        "Requested Provisioned Concurrency decreases account's "
                        "UnreservedConcurrentExecution below its minimum value of [%d].",
                        pool->p.min_unreserved);
        goto out;
    }
    if (!c) {
        if (!grow((void **)&pool->c, &pool->capc, pool->nc, sizeof *pool->c)) {
            rc = kn_err_set(e, KN_NOMEM, "concurrency pool: out of memory");
            goto out;
        }
        c = &pool->c[pool->nc++];
        memset(c, 0, sizeof *c);
        memcpy(c->fn, fn, strlen(fn) + 1);
        memcpy(c->qualifier, qualifier, strlen(qualifier) + 1);
    }
    /* Another version is other environments: leases on the old ones are
     * released into nothing. The same version keeps its running leases. */
    if (!c->gen || strcmp(c->version, version)) {
        c->gen = pool->next_gen++;
        c->running = 0;
    }
    memcpy(c->version, version, strlen(version) + 1);
    c->requested = n;
    c->ready = false;
    c->allocated = 0;
out:
    pthread_mutex_unlock(&pool->mu);
    return rc;
}

kn_status kn_scale_pool_set_ready(kn_scale_pool *pool, const char *fn, const char *qualifier,
                                  int allocated, kn_err *e)
{
    if (!name_ok(fn) || !name_ok(qualifier))
        return kn_err_set(e, KN_INVALID,
                          "function or qualifier is empty, too long or not printable");
    kn_status rc = KN_OK;
    pthread_mutex_lock(&pool->mu);
    pc_rec *c = pc_find(pool, fn, qualifier);
    if (!c)
        rc = kn_err_set(e, KN_NOT_FOUND, "no provisioned concurrency configuration for %s:%s",
                        fn, qualifier);
    else {
        c->ready = true;
        c->allocated = allocated > 0 && allocated < c->requested ? allocated : c->requested;
    }
    pthread_mutex_unlock(&pool->mu);
    return rc;
}

void kn_scale_pool_remove(kn_scale_pool *pool, const char *fn)
{
    if (!fn)
        return;
    pthread_mutex_lock(&pool->mu);
    for (int i = pool->nc - 1; i >= 0; i--)
        if (!strcmp(pool->c[i].fn, fn))
            pool->c[i] = pool->c[--pool->nc];
    for (int i = pool->nf - 1; i >= 0; i--)
        if (!strcmp(pool->f[i].name, fn))
            pool->f[i] = pool->f[--pool->nf];
    for (int i = pool->nl - 1; i >= 0; i--)
        if (!strcmp(pool->l[i].fn, fn))
            pool->l[i] = pool->l[--pool->nl];
    pthread_mutex_unlock(&pool->mu);
}

const char *kn_scale_throttle_reason(kn_scale_throttle t)
{
    switch (t) {
    case KN_SCALE_THROTTLE_RESERVED:
        return "ReservedFunctionConcurrentInvocationLimitExceeded";
    case KN_SCALE_THROTTLE_ACCOUNT:
        return "ConcurrentInvocationLimitExceeded";
    default:
        return "";
    }
}

static pc_rec *pc_for_version(kn_scale_pool *pool, const char *fn, const char *version)
{
    for (int i = 0; i < pool->nc; i++)
        if (!strcmp(pool->c[i].fn, fn) && !strcmp(pool->c[i].version, version))
            return &pool->c[i];
    return NULL;
}

bool kn_scale_pool_acquire(kn_scale_pool *pool, const char *fn, const char *version,
                           kn_scale_lease *lease, kn_scale_throttle *why)
{
    memset(lease, 0, sizeof *lease);
    *why = KN_SCALE_THROTTLE_NONE;
    if (!name_ok(fn) || !name_ok(version)) {
        *why = KN_SCALE_THROTTLE_ACCOUNT;
        return false;
    }
    bool ok = false;
    pthread_mutex_lock(&pool->mu);
    if (!grow((void **)&pool->l, &pool->capl, pool->nl, sizeof *pool->l)) {
        *why = KN_SCALE_THROTTLE_ACCOUNT;
        goto out;
    }
    fn_rec *f = fn_get(pool, fn);
    if (!f) {
        *why = KN_SCALE_THROTTLE_ACCOUNT;
        goto out;
    }
    pc_rec *c = pc_for_version(pool, fn, version);
    if (c && c->ready && c->running < c->allocated) {
        c->running++;
        lease->provisioned = true;
        ok = true;
    } else if (f->reserved >= 0) {
        ok = f->on_demand < f->reserved - pc_total(pool, fn, NULL);
        if (!ok)
            *why = KN_SCALE_THROTTLE_RESERVED;
    } else {
        int used = committed(pool, NULL, NULL);
        for (int i = 0; i < pool->nf; i++)
            if (pool->f[i].reserved < 0)
                used += pool->f[i].on_demand;
        ok = used < pool->p.account_limit;
        if (!ok)
            *why = KN_SCALE_THROTTLE_ACCOUNT;
    }
    if (!ok)
        goto out;
    if (!lease->provisioned) {
        f->on_demand++;
        lease->spillover = c != NULL;
    }
    lease->id = pool->next_id++;
    lease_rec *l = &pool->l[pool->nl++];
    l->id = lease->id;
    memcpy(l->fn, fn, strlen(fn) + 1);
    memcpy(l->version, version, strlen(version) + 1);
    l->provisioned = lease->provisioned;
    l->gen = lease->provisioned ? c->gen : 0;
out:
    pthread_mutex_unlock(&pool->mu);
    return ok;
}

void kn_scale_pool_release(kn_scale_pool *pool, const kn_scale_lease *lease)
{
    if (!lease || !lease->id)
        return;
    pthread_mutex_lock(&pool->mu);
    for (int i = 0; i < pool->nl; i++) {
        lease_rec *l = &pool->l[i];
        if (l->id != lease->id)
            continue;
        if (l->provisioned) {
            /* only the configuration it ran on: one deleted or moved to
             * another version since must not free the new environments */
            for (int k = 0; k < pool->nc; k++)
                if (pool->c[k].gen == l->gen && pool->c[k].running > 0)
                    pool->c[k].running--;
        } else {
            fn_rec *f = fn_find(pool, l->fn);
            if (f && f->on_demand > 0)
                f->on_demand--;
        }
        *l = pool->l[--pool->nl];
        break;
    }
    pthread_mutex_unlock(&pool->mu);
}

void kn_scale_pool_stats(kn_scale_pool *pool, const char *fn, kn_scale_fn_stats *out)
{
    memset(out, 0, sizeof *out);
    out->reserved = -1;
    if (!fn)
        return;
    pthread_mutex_lock(&pool->mu);
    const fn_rec *f = fn_find(pool, fn);
    if (f) {
        out->reserved = f->reserved;
        out->running_on_demand = f->on_demand;
    }
    for (int i = 0; i < pool->nc; i++)
        if (!strcmp(pool->c[i].fn, fn)) {
            out->provisioned += pool->c[i].requested;
            out->running_provisioned += pool->c[i].running;
        }
    pthread_mutex_unlock(&pool->mu);
}

int kn_scale_pool_unreserved(kn_scale_pool *pool)
{
    pthread_mutex_lock(&pool->mu);
    int n = pool->p.account_limit - committed(pool, NULL, NULL);
    pthread_mutex_unlock(&pool->mu);
    return n;
}
