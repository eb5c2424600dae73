/* Target-tracking decisions: scripted minute-by-minute loads give exactly
 * the capacities and activity times the rules imply — the reference
 * project's policy (1..3 instances, scale-in cooldown 300 s, scale-out
 * cooldown 30 s) first, then each rule on its own. */
#include "kennel/scale.h"
#include "kn_test.h"

#include <math.h>

typedef struct step {
    double invocations; /* total invocations in the minute, all instances */
    kn_scale_action action;
    int to;             /* capacity after the minute */
} step;

/* Feeds one datapoint per minute (t = 60, 120, ...) and applies every
 * decision at once; checks each minute's action and capacity. */
static int run(kn_scale_tracker *t, int capacity, const step *s, int n)
{
    for (int i = 0; i < n; i++) {
        kn_scale_decision d;
        double metric = capacity ? s[i].invocations / capacity : 0;
        kn_scale_observe(t, 60.0 * (i + 1), metric, capacity, &d);
        KN_CHECK_INT(d.from, capacity);
        if (d.action != s[i].action || d.to != s[i].to)
            fprintf(stderr, "minute %d: action %d -> %d (reason %s), want action %d -> %d\n",
                    i + 1, (int)d.action, d.to, kn_scale_reason_text(d.reason),
                    (int)s[i].action, s[i].to);
        KN_CHECK_INT(d.action, s[i].action);
        KN_CHECK_INT(d.to, s[i].to);
        capacity = d.to;
    }
    return capacity;
}

static kn_scale_tracker reference_policy(double target)
{
    kn_scale_params p = kn_scale_default_params();
    p.target = target;
    p.scale_out_cooldown_s = 30;
    p.scale_in_cooldown_s = 300;
    kn_scale_tracker t;
    kn_err e = {0};
    KN_CHECK_INT(kn_scale_tracker_init(&t, &p, 1, 3, &e), KN_OK);
    return t;
}

/* The reference project's policy under a burst: nothing for the first two
 * minutes above target, out at the third (to 3 at most, not the 5 the load
 * asks for), held at max, then after the load stops 15 quiet minutes before
 * going back to 1 — and no second scale-in inside 300 s. */
static void test_reference_burst(void)
{
    kn_scale_tracker t = reference_policy(70);
    const kn_scale_action N = KN_SCALE_NONE, O = KN_SCALE_OUT, I = KN_SCALE_IN;
    step s[40];
    int n = 0;
    s[n++] = (step){50, N, 1};   /* below target */
    s[n++] = (step){300, N, 1};  /* 1 point above */
    s[n++] = (step){300, N, 1};  /* 2 */
    s[n++] = (step){300, O, 3};  /* 3: ceil(300/70) = 5, clamped to 3 */
    s[n++] = (step){300, N, 3};  /* 100 per instance, at max */
    for (int i = 0; i < 14; i++) /* traffic stops: 14 low points, no action */
        s[n++] = (step){0, N, 3};
    s[n++] = (step){0, I, 1};    /* 15th low point: no traffic -> MinCapacity */
    for (int i = 0; i < 3; i++)
        s[n++] = (step){0, N, 1};
    KN_REQUIRE(n <= 40);
    KN_CHECK_INT(run(&t, 1, s, n), 1);
}

/* Scale-in in steps: 3 instances serving 100 per minute (33 each, below
 * 63) go to ceil(100/70) = 2 after 15 minutes; then 50 each is still low,
 * but the cooldown holds the next decision for 300 s, after which 2 is the
 * desired capacity and nothing changes. */
static void test_scale_in_cooldown(void)
{
    kn_scale_tracker t = reference_policy(70);
    step s[30];
    int n = 0;
    for (int i = 0; i < 14; i++)
        s[n++] = (step){100, KN_SCALE_NONE, 3};
    s[n++] = (step){100, KN_SCALE_IN, 2}; /* t = 900 */
    for (int i = 0; i < 8; i++)
        s[n++] = (step){100, KN_SCALE_NONE, 2};
    KN_CHECK_INT(run(&t, 3, s, n), 2);

    /* The reasons: inside the cooldown, then at the desired capacity. */
    kn_scale_tracker u = reference_policy(70);
    kn_scale_decision d;
    for (int i = 1; i <= 15; i++)
        kn_scale_observe(&u, 60.0 * i, 20, 3, &d); /* 60 in all -> desired 1 */
    KN_CHECK_INT(d.action, KN_SCALE_IN);
    KN_CHECK_INT(d.to, 1);
    kn_scale_tracker_set_range(&u, 1, 3, NULL);
    /* Back at 3 by hand, still quiet: blocked by the cooldown until 900 + 300. */
    kn_scale_observe(&u, 960, 20, 3, &d);
    KN_CHECK_INT(d.action, KN_SCALE_NONE);
    KN_CHECK_INT(d.reason, KN_SCALE_IN_COOLDOWN);
    KN_CHECK_STR(kn_scale_reason_code(d.reason), "AlreadyAtDesiredCapacity");
    kn_scale_observe(&u, 1199, 20, 3, &d);
    KN_CHECK_INT(d.reason, KN_SCALE_IN_COOLDOWN);
    kn_scale_observe(&u, 1200, 20, 3, &d);
    KN_CHECK_INT(d.action, KN_SCALE_IN);
    KN_CHECK_INT(d.to, 1);
}

/* A scale-out cancels the scale-in cooldown; scale-in needs 15 fresh low
 * points after any high one. */
static void test_out_cancels_in_cooldown(void)
{
    kn_scale_params p = kn_scale_default_params();
    p.target = 10;
    p.scale_out_cooldown_s = 0;
    p.scale_in_cooldown_s = 3600;
    kn_scale_tracker t;
    KN_REQUIRE(kn_scale_tracker_init(&t, &p, 1, 4, NULL) == KN_OK);
    kn_scale_decision d;
    double now = 0;
    for (int i = 0; i < 15; i++)
        kn_scale_observe(&t, now += 60, 1, 4, &d);
    KN_CHECK_INT(d.action, KN_SCALE_IN); /* 4 -> 1 */
    KN_CHECK_INT(d.to, 1);
    for (int i = 0; i < 3; i++)
        kn_scale_observe(&t, now += 60, 25, 1, &d);
    KN_CHECK_INT(d.action, KN_SCALE_OUT);
    KN_CHECK_INT(d.to, 3);
    for (int i = 0; i < 14; i++) {
        kn_scale_observe(&t, now += 60, 1, 3, &d);
        KN_CHECK_INT(d.action, KN_SCALE_NONE);
    }
    kn_scale_observe(&t, now += 60, 1, 3, &d); /* well inside 3600 s of the scale-in */
    KN_CHECK_INT(d.action, KN_SCALE_IN);
    KN_CHECK_INT(d.to, 1);
}

/* Inside the scale-out cooldown a larger capacity goes through at once; the
 * same capacity again (instances still starting, so `current` lags) does
 * not. */
static void test_scale_out_cooldown(void)
{
    kn_scale_params p = kn_scale_default_params();
    p.target = 100;
    p.scale_out_cooldown_s = 300;
    kn_scale_tracker t;
    KN_REQUIRE(kn_scale_tracker_init(&t, &p, 1, 10, NULL) == KN_OK);
    kn_scale_decision d;
    for (int i = 1; i <= 3; i++)
        kn_scale_observe(&t, 60.0 * i, 250, 1, &d);
    KN_CHECK_INT(d.action, KN_SCALE_OUT);
    KN_CHECK_INT(d.to, 3);
    /* Still 1 serving, same load: 3 again, inside the cooldown: held. */
    kn_scale_observe(&t, 240, 250, 1, &d);
    KN_CHECK_INT(d.action, KN_SCALE_NONE);
    KN_CHECK_INT(d.reason, KN_SCALE_OUT_COOLDOWN);
    /* More load: 6 > 3, through despite the cooldown. */
    kn_scale_observe(&t, 300, 560, 1, &d);
    KN_CHECK_INT(d.action, KN_SCALE_OUT);
    KN_CHECK_INT(d.to, 6);
    /* After the cooldown, the same rule as ever: 3 serving at 250 -> 8. */
    kn_scale_observe(&t, 600, 250, 3, &d);
    KN_CHECK_INT(d.action, KN_SCALE_OUT);
    KN_CHECK_INT(d.to, 8);
}

/* The alarm needs consecutive points: one dip resets it. Exactly the target
 * is not above it. */
static void test_consecutive_points(void)
{
    kn_scale_tracker t = reference_policy(70);
    const kn_scale_action N = KN_SCALE_NONE;
    step s[] = {{80, N, 1}, {80, N, 1}, {70, N, 1}, {80, N, 1}, {80, N, 1},
                {20, N, 1}, {80, N, 1}, {80, N, 1}, {80, KN_SCALE_OUT, 2}};
    KN_CHECK_INT(run(&t, 1, s, (int)(sizeof s / sizeof s[0])), 2);
    /* 140 on 2 instances is exactly 70 each: no alarm, and 2 is enough. */
    kn_scale_decision d;
    kn_scale_observe(&t, 1000, 70, 2, &d);
    KN_CHECK_INT(d.reason, KN_SCALE_NO_ALARM);
    KN_CHECK_INT(d.desired, 2);
}

/* Never outside [min, max]; a capacity outside the range after a
 * re-registration is brought in at once; scale-in disabled holds. */
static void test_range_and_disable(void)
{
    kn_scale_params p = kn_scale_default_params();
    p.target = 50;
    p.disable_scale_in = true;
    kn_scale_tracker t;
    KN_REQUIRE(kn_scale_tracker_init(&t, &p, 2, 5, NULL) == KN_OK);
    kn_scale_decision d;
    kn_scale_observe(&t, 60, 0, 1, &d);
    KN_CHECK_INT(d.action, KN_SCALE_OUT);
    KN_CHECK_INT(d.reason, KN_SCALE_RANGE);
    KN_CHECK_INT(d.to, 2);
    for (int i = 2; i <= 20; i++)
        kn_scale_observe(&t, 60.0 * i, 0, 2, &d);
    KN_CHECK_INT(d.action, KN_SCALE_NONE);
    KN_CHECK_INT(d.reason, KN_SCALE_IN_DISABLED);
    for (int i = 21; i <= 30; i++) {
        kn_scale_observe(&t, 60.0 * i, 1e9, 5, &d);
        KN_CHECK(d.to <= 5);
    }
    KN_CHECK_INT(d.reason, KN_SCALE_AT_MAX);
    KN_CHECK_STR(kn_scale_reason_code(d.reason), "AlreadyAtMaxCapacity");
    KN_CHECK_INT(kn_scale_tracker_set_range(&t, 1, 3, NULL), KN_OK);
    kn_scale_observe(&t, 60.0 * 31, 10, 5, &d);
    KN_CHECK_INT(d.action, KN_SCALE_IN);
    KN_CHECK_INT(d.reason, KN_SCALE_RANGE);
    KN_CHECK_INT(d.to, 3);
    /* An infinite metric is the largest load, never a NaN capacity (with
     * no instance serving, inf x 0 once made the desired capacity NaN). */
    kn_scale_observe(&t, 60.0 * 31.5, INFINITY, 0, &d);
    KN_CHECK(d.desired >= 0 && d.desired <= 10000);
    KN_CHECK(isfinite(d.metric));
    KN_CHECK_INT(d.to, 1);
    kn_scale_observe(&t, 60.0 * 31.6, INFINITY, 2, &d);
    KN_CHECK_INT(d.desired, 10000);
    KN_CHECK(isfinite(d.metric));
    /* Garbage metrics count as no traffic. */
    kn_scale_observe(&t, 60.0 * 32, NAN, 3, &d);
    KN_CHECK(d.metric == 0);
    kn_scale_observe(&t, 60.0 * 33, -5, 3, &d);
    KN_CHECK(d.metric == 0);
}

static void test_bad_params(void)
{
    kn_scale_params p = kn_scale_default_params();
    kn_scale_tracker t;
    kn_err e = {0};
    p.target = 0;
    KN_CHECK_INT(kn_scale_tracker_init(&t, &p, 1, 3, &e), KN_INVALID);
    KN_CHECK_CONTAINS(e.msg, "TargetValue");
    p.target = NAN;
    KN_CHECK_INT(kn_scale_tracker_init(&t, &p, 1, 3, &e), KN_INVALID);
    p = kn_scale_default_params();
    p.scale_in_cooldown_s = -1;
    KN_CHECK_INT(kn_scale_tracker_init(&t, &p, 1, 3, &e), KN_INVALID);
    KN_CHECK_CONTAINS(e.msg, "ScaleInCooldown");
    p = kn_scale_default_params();
    p.scale_out_cooldown_s = INFINITY;
    KN_CHECK_INT(kn_scale_tracker_init(&t, &p, 1, 3, &e), KN_INVALID);
    KN_CHECK_CONTAINS(e.msg, "ScaleOutCooldown");
    p = kn_scale_default_params();
    KN_CHECK_INT(kn_scale_tracker_init(&t, &p, 0, 3, &e), KN_INVALID);
    KN_CHECK_CONTAINS(e.msg, "MinCapacity 0");
    KN_CHECK_INT(kn_scale_tracker_init(&t, &p, 3, 2, &e), KN_INVALID);
    KN_CHECK_CONTAINS(e.msg, "MaxCapacity 2");
    KN_CHECK_INT(kn_scale_tracker_init(&t, &p, 1, 3, &e), KN_OK);
    KN_CHECK_INT(kn_scale_tracker_set_range(&t, 4, 3, &e), KN_INVALID);
    KN_CHECK_INT(t.min, 1); /* unchanged on error */
    KN_CHECK_INT(t.max, 3);
}

int main(void)
{
    KN_RUN(test_reference_burst);
    KN_RUN(test_scale_in_cooldown);
    KN_RUN(test_out_cancels_in_cooldown);
    KN_RUN(test_scale_out_cooldown);
    KN_RUN(test_consecutive_points);
    KN_RUN(test_range_and_disable);
    KN_RUN(test_bad_params);
    return kn_test_finish();
}
