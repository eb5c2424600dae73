/* The daemon's clock: real monotonic time scaled by a rate, or a manual
 * clock that only moves when a test advances it.
 *
 * Clock time t(real) = (real_mono - real_mono_at_creation) * rate, so spans
 * scale and a sleep of s clock seconds takes s / rate real seconds. Wall
 * time is start_wall + t: with a rate above 1 the daemon's idea of "now"
 * runs ahead of the calendar, which is the point (timestamps, cooldowns and
 * metric periods all agree with each other).
 *
 * Thread-safe: rated clocks are immutable after creation; manual clocks
 * keep their time under a mutex and broadcast on every advance.
 */
#include "platform_int.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <time.h>

struct kn_clock {
    double rate;
    bool manual;
    uint64_t real0_ns;  /* CLOCK_MONOTONIC at creation */
    double wall0;       /* epoch seconds at creation */
    /* manual clocks */
    pthread_mutex_t mu;
    pthread_cond_t tick;
    uint64_t manual_ns;
};

static uint64_t real_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static struct timespec real_deadline(uint64_t real_ns_from_now)
{
    uint64_t t = real_mono_ns() + real_ns_from_now;
    struct timespec ts = {.tv_sec = (time_t)(t / 1000000000ull),
                          .tv_nsec = (long)(t % 1000000000ull)};
    return ts;
}

kn_clock_params kn_clock_default_params(void)
{
    kn_clock_params p = {.rate = 1.0, .manual = false, .start_wall = 0};
    return p;
}

kn_status kn_clock_new(const kn_clock_params *p, kn_clock **out, kn_err *e)
{
    kn_clock_params d = p ? *p : kn_clock_default_params();
    *out = NULL;
    if (!d.manual && !(d.rate > 0 && d.rate <= 1e6))
        return kn_err_set(e, KN_INVALID, "clock rate %g is outside (0, 1000000]", d.rate);
    if (!(d.start_wall >= 0 && isfinite(d.start_wall)))
        return kn_err_set(e, KN_INVALID, "clock start time %g is not a valid epoch time",
                          d.start_wall);
    kn_clock *c = calloc(1, sizeof *c);
    if (!c)
        return kn_err_set(e, KN_NOMEM, "clock: out of memory");
    c->manual = d.manual;
    c->rate = d.manual ? 0 : d.rate;
    c->real0_ns = real_mono_ns();
    if (d.start_wall > 0) {
        c->wall0 = d.start_wall;
    } else {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        c->wall0 = (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
    }
    pthread_mutex_init(&c->mu, NULL);
    if (kn_clock_cond_init(&c->tick) != KN_OK) {
        pthread_mutex_destroy(&c->mu);
        free(c);
        return kn_err_set(e, KN_INTERNAL, "clock: cannot create a monotonic condition");
    }
    *out = c;
    return KN_OK;
}

void kn_clock_free(kn_clock *c)
{
    if (!c)
        return;
    pthread_cond_destroy(&c->tick);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

double kn_clock_rate(const kn_clock *c)
{
    return c->rate;
}

uint64_t kn_clock_mono_ns(const kn_clock *c)
{
    if (c->manual) {
        pthread_mutex_t *mu = (pthread_mutex_t *)&c->mu; /* logically const */
        pthread_mutex_lock(mu);
        uint64_t t = c->manual_ns;
        pthread_mutex_unlock(mu);
        return t;
    }
    uint64_t real = real_mono_ns() - c->real0_ns;
    if (c->rate == 1.0)
        return real;
    long double t = (long double)real * (long double)c->rate;
    return t >= 1.8e19L ? UINT64_MAX : (uint64_t)t;
}

double kn_clock_wall(const kn_clock *c)
{
    return c->wall0 + (double)kn_clock_mono_ns(c) * 1e-9;
}

uint64_t kn_clock_real_ns(const kn_clock *c, uint64_t clock_ns)
{
    if (c->manual)
        return 0;
    long double r = (long double)clock_ns / (long double)c->rate;
    return r >= 1.8e19L ? UINT64_MAX : (uint64_t)r;
}

void kn_clock_advance(kn_clock *c, uint64_t ns)
{
    if (!c->manual)
        return;
    pthread_mutex_lock(&c->mu);
    c->manual_ns = ns > UINT64_MAX - c->manual_ns ? UINT64_MAX : c->manual_ns + ns;
    pthread_cond_broadcast(&c->tick);
    pthread_mutex_unlock(&c->mu);
}

void kn_clock_sleep_ns(kn_clock *c, uint64_t ns)
{
    if (c->manual) {
        pthread_mutex_lock(&c->mu);
        uint64_t until = ns > UINT64_MAX - c->manual_ns ? UINT64_MAX : c->manual_ns + ns;
        while (c->manual_ns < until)
            pthread_cond_wait(&c->tick, &c->mu);
        pthread_mutex_unlock(&c->mu);
        return;
    }
    uint64_t real = kn_clock_real_ns(c, ns);
    struct timespec ts = {.tv_sec = (time_t)(real / 1000000000ull),
                          .tv_nsec = (long)(real % 1000000000ull)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

kn_status kn_clock_cond_init(pthread_cond_t *cv)
{
    pthread_condattr_t a;
    if (pthread_condattr_init(&a) != 0)
        return KN_INTERNAL;
    int rc = pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    if (rc == 0)
        rc = pthread_cond_init(cv, &a);
    pthread_condattr_destroy(&a);
    return rc == 0 ? KN_OK : KN_INTERNAL;
}

int kn_clock_cond_wait(kn_clock *c, pthread_cond_t *cv, pthread_mutex_t *mu, uint64_t deadline_ns)
{
    uint64_t now = kn_clock_mono_ns(c);
    if (now >= deadline_ns)
        return ETIMEDOUT;
    /* Manual time moves only by kn_clock_advance, which cannot signal the
     * caller's condition: wake every millisecond to look at the clock. */
    uint64_t real = c->manual ? 1000000ull : kn_clock_real_ns(c, deadline_ns - now);
    if (real > 3600ull * 1000000000ull)
        real = 3600ull * 1000000000ull; /* bound the timespec; the caller loops */
    struct timespec ts = real_deadline(real);
    int rc = pthread_cond_timedwait(cv, mu, &ts);
    if (rc == ETIMEDOUT)
        return kn_clock_mono_ns(c) >= deadline_ns ? ETIMEDOUT : 0;
    return 0;
}

void kn_clock__continue_from(kn_clock *c, double wall)
{
    double now = kn_clock_wall(c);
    if (wall > now)
        c->wall0 += wall - now;
}
