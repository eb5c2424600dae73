/* Target-tracking decisions (see include/kennel/scale.h for the rules).
 *
 * One call per one-minute datapoint. The two alarms are run lengths over the
 * datapoints; the cooldowns are the times of the last scale-out and scale-in.
 * Capacities are computed from the minute's total invocations (metric x
 * instances that served it) over the target, rounded up, with a small
 * tolerance so that a metric exactly on a multiple of the target does not
 * round up through float noise. */
#include "kennel/scale.h"

#include <float.h>
#include <math.h>

#define MAX_CAPACITY 10000

kn_scale_params kn_scale_default_params(void)
{
    return (kn_scale_params){.target = 70.0,
                             .scale_out_cooldown_s = 300.0,
                             .scale_in_cooldown_s = 300.0,
                             .disable_scale_in = false};
}

static kn_status check_range(int min, int max, kn_err *e)
{
    if (min < 1 || min > MAX_CAPACITY)
        return kn_err_set(e, KN_INVALID, "MinCapacity %d is outside [1, %d]", min, MAX_CAPACITY);
    if (max < min || max > MAX_CAPACITY)
        return kn_err_set(e, KN_INVALID, "MaxCapacity %d is outside [MinCapacity %d, %d]", max,
                          min, MAX_CAPACITY);
    return KN_OK;
}

kn_status kn_scale_tracker_init(kn_scale_tracker *t, const kn_scale_params *p, int min, int max,
                                kn_err *e)
{
    if (!(p->target > 0) || !isfinite(p->target))
        return kn_err_set(e, KN_INVALID, "TargetValue %g must be a positive number", p->target);
    if (!(p->scale_out_cooldown_s >= 0) || !isfinite(p->scale_out_cooldown_s))
        return kn_err_set(e, KN_INVALID, "ScaleOutCooldown %g must be >= 0",
                          p->scale_out_cooldown_s);
    if (!(p->scale_in_cooldown_s >= 0) || !isfinite(p->scale_in_cooldown_s))
        return kn_err_set(e, KN_INVALID, "ScaleInCooldown %g must be >= 0",
                          p->scale_in_cooldown_s);
    kn_status rc = check_range(min, max, e);
    if (rc)
        return rc;
    *t = (kn_scale_tracker){.p = *p, .min = min, .max = max};
    return KN_OK;
}

kn_status kn_scale_tracker_set_range(kn_scale_tracker *t, int min, int max, kn_err *e)
{
    kn_status rc = check_range(min, max, e);
    if (rc)
        return rc;
    t->min = min;
    t->max = max;
    return KN_OK;
}

/* ceil(total / target) for the minute's total invocations. */
static int needed(double metric, int current, double target)
{
    double x = metric * (double)current / target;
    if (x > MAX_CAPACITY)
        return MAX_CAPACITY;
    return (int)ceil(x - 1e-9);
}

static int clamp(int v, int lo, int hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

static void set(kn_scale_decision *d, kn_scale_action a, kn_scale_reason r, int to)
{
    d->action = a;
    d->reason = r;
    d->to = to;
}

void kn_scale_observe(kn_scale_tracker *t, double now_s, double metric, int current,
                      kn_scale_decision *d)
{
    if (!(metric > 0)) /* NaN, negative, zero */
        metric = 0;
    else if (!isfinite(metric)) /* the largest load: inf x 0 instances would be NaN */
        metric = DBL_MAX;
    if (current < 0)
        current = 0;
    const double target = t->p.target;
    t->high_run = metric > target ? t->high_run + 1 : 0;
    t->low_run = metric < KN_SCALE_LOW_RATIO * target ? t->low_run + 1 : 0;
    *d = (kn_scale_decision){.from = current, .to = current, .metric = metric};
    d->desired = needed(metric, current, target);
    if (t->out_active && now_s - t->out_at >= t->p.scale_out_cooldown_s)
        t->out_active = false;
    if (t->in_active && now_s - t->in_at >= t->p.scale_in_cooldown_s)
        t->in_active = false;

    if (current < t->min || current > t->max) {
        set(d, current < t->min ? KN_SCALE_OUT : KN_SCALE_IN, KN_SCALE_RANGE,
            clamp(current, t->min, t->max));
        return;
    }
    if (t->high_run >= KN_SCALE_HIGH_POINTS) {
        int to = clamp(d->desired, t->min, t->max);
        if (current >= t->max)
            set(d, KN_SCALE_NONE, KN_SCALE_AT_MAX, current);
        else if (to <= current)
            set(d, KN_SCALE_NONE, KN_SCALE_AT_DESIRED, current);
        else if (t->out_active && to <= t->out_capacity)
            set(d, KN_SCALE_NONE, KN_SCALE_OUT_COOLDOWN, current);
        else {
            set(d, KN_SCALE_OUT, KN_SCALE_ALARM_HIGH, to);
            t->out_active = true;
            t->out_at = now_s;
            t->out_capacity = to;
            t->in_active = false; /* a scale-out cancels the scale-in cooldown */
        }
        return;
    }
    if (t->low_run >= KN_SCALE_LOW_POINTS) {
        int to = clamp(d->desired, t->min, t->max);
        if (t->p.disable_scale_in)
            set(d, KN_SCALE_NONE, KN_SCALE_IN_DISABLED, current);
        else if (current <= t->min)
            set(d, KN_SCALE_NONE, KN_SCALE_AT_MIN, current);
        else if (to >= current)
            set(d, KN_SCALE_NONE, KN_SCALE_AT_DESIRED, current);
        else if (t->in_active)
            set(d, KN_SCALE_NONE, KN_SCALE_IN_COOLDOWN, current);
        else {
            set(d, KN_SCALE_IN, KN_SCALE_ALARM_LOW, to);
            t->in_active = true;
            t->in_at = now_s;
        }
        return;
    }
    set(d, KN_SCALE_NONE, KN_SCALE_NO_ALARM, current);
}

const char *kn_scale_reason_code(kn_scale_reason r)
{
    switch (r) {
    case KN_SCALE_AT_MAX:
        return "AlreadyAtMaxCapacity";
    case KN_SCALE_AT_MIN:
        return "AlreadyAtMinCapacity";
    case KN_SCALE_AT_DESIRED:
    case KN_SCALE_OUT_COOLDOWN:
    case KN_SCALE_IN_COOLDOWN:
    case KN_SCALE_IN_DISABLED:
        return "AlreadyAtDesiredCapacity";
    default:
        return NULL;
    }
}

const char *kn_scale_reason_text(kn_scale_reason r)
{
    switch (r) {
    case KN_SCALE_NO_ALARM:
        return "metric within the alarm thresholds";
    case KN_SCALE_ALARM_HIGH:
        return "AlarmHigh: 3 datapoints above the target";
    case KN_SCALE_ALARM_LOW:
        return "AlarmLow: 15 datapoints below 0.9 x target";
    case KN_SCALE_RANGE:
        return "capacity outside [MinCapacity, MaxCapacity]";
    case KN_SCALE_AT_MAX:
        return "already at MaxCapacity";
    case KN_SCALE_AT_MIN:
        return "already at MinCapacity";
    case KN_SCALE_AT_DESIRED:
        return "already at the desired capacity";
    case KN_SCALE_OUT_COOLDOWN:
        return "scale-out cooldown";
    case KN_SCALE_IN_COOLDOWN:
        return "scale-in cooldown";
    case KN_SCALE_IN_DISABLED:
        return "scale-in disabled";
    }
    return "?";
}
