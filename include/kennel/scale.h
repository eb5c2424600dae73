/* kennel scale: target-tracking scaling decisions, as Application Auto
 * Scaling makes them for a SageMaker production variant.
 *
 * A tracker is fed one datapoint per minute — the variant's
 * InvocationsPerInstance for that minute (Sum of invocations over the minute
 * divided by the instances that served it) — and answers with what the
 * policy does at the end of that minute:
 *
 *   scale out  when the last 3 datapoints are all above the target (the
 *              AlarmHigh alarm), to ceil(current x metric / target), never
 *              above MaxCapacity. Inside the scale-out cooldown a further
 *              scale-out happens only when the new capacity exceeds the one
 *              the last scale-out set (the capacity already added counts).
 *   scale in   when the last 15 datapoints are all below 0.9 x target (the
 *              AlarmLow alarm), to the smallest capacity that keeps the
 *              metric at or under the target, never below MinCapacity (no
 *              traffic: MinCapacity); not inside the scale-in cooldown (which
 *              a scale-out cancels) and never when scale-in is disabled.
 *   range      a capacity outside [min, max] (after the range changed) is
 *              brought inside at once, whatever the alarms say.
 *
 * A capacity changed by hand (UpdateEndpointWeightsAndCapacities) needs no
 * call: the next datapoint is fed with the new `current`.
 *
 * Time is the caller's (clock seconds): the daemon's clock, which tests run
 * faster. Decisions carry AWS's NotScaledReason codes when nothing changes.
 * A tracker is plain data owned by the caller; it is not thread-safe.
 */
#ifndef KENNEL_SCALE_H
#define KENNEL_SCALE_H

#include "kennel/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The alarm rules of target tracking (fixed by AWS, named here once). */
#define KN_SCALE_HIGH_POINTS 3
#define KN_SCALE_LOW_POINTS 15
#define KN_SCALE_LOW_RATIO 0.9

typedef struct kn_scale_params {
    double target;               /* TargetValue, > 0 (invocations per instance per minute) */
    double scale_out_cooldown_s; /* ScaleOutCooldown, >= 0 (SageMaker default 300) */
    double scale_in_cooldown_s;  /* ScaleInCooldown, >= 0 (default 300) */
    bool disable_scale_in;       /* DisableScaleIn */
} kn_scale_params;
KN_API kn_scale_params kn_scale_default_params(void);

typedef struct kn_scale_tracker {
    kn_scale_params p;
    int min, max;           /* MinCapacity, MaxCapacity */
    int high_run, low_run;  /* consecutive datapoints above target / below 0.9 x target */
    bool out_active;        /* a scale-out cooldown started at out_at */
    double out_at;
    int out_capacity;       /* what that scale-out set */
    bool in_active;         /* a scale-in cooldown started at in_at */
    double in_at;
} kn_scale_tracker;

typedef enum kn_scale_action { KN_SCALE_NONE, KN_SCALE_OUT, KN_SCALE_IN } kn_scale_action;

/* Why a decision is what it is. The NOT_SCALED ones map to AWS's
 * NotScaledReasons codes (kn_scale_reason_code). */
typedef enum kn_scale_reason {
    KN_SCALE_NO_ALARM,       /* neither alarm is in ALARM state */
    KN_SCALE_ALARM_HIGH,     /* scaled out on AlarmHigh */
    KN_SCALE_ALARM_LOW,      /* scaled in on AlarmLow */
    KN_SCALE_RANGE,          /* brought inside [min, max] */
    KN_SCALE_AT_MAX,         /* AlreadyAtMaxCapacity */
    KN_SCALE_AT_MIN,         /* AlreadyAtMinCapacity */
    KN_SCALE_AT_DESIRED,     /* AlreadyAtDesiredCapacity */
    KN_SCALE_OUT_COOLDOWN,   /* inside the scale-out cooldown, nothing larger to add */
    KN_SCALE_IN_COOLDOWN,    /* inside the scale-in cooldown */
    KN_SCALE_IN_DISABLED     /* DisableScaleIn */
} kn_scale_reason;

typedef struct kn_scale_decision {
    kn_scale_action action;
    kn_scale_reason reason;
    int from, to;   /* capacity before and after (equal when NONE) */
    double metric;  /* the datapoint that was fed */
    int desired;    /* the capacity the metric asks for, before clamping */
} kn_scale_decision;

/* Validates p (target > 0 and finite, cooldowns >= 0 and finite) and the
 * range (1 <= min <= max <= 10000). KN_INVALID names the field. */
KN_API kn_status kn_scale_tracker_init(kn_scale_tracker *t, const kn_scale_params *p, int min,
                                       int max, kn_err *e);
/* A re-registration: new range (validated as above), alarm history and
 * cooldowns kept. */
KN_API kn_status kn_scale_tracker_set_range(kn_scale_tracker *t, int min, int max, kn_err *e);
/* Feeds the datapoint of the minute ending at now_s (metric >= 0; NaN or
 * negative counts as 0) for a variant at `current` instances, and decides.
 * The caller applies d->to when d->action != KN_SCALE_NONE. */
KN_API void kn_scale_observe(kn_scale_tracker *t, double now_s, double metric, int current,
                             kn_scale_decision *d);
/* "AlreadyAtMaxCapacity", ... for the NOT_SCALED reasons; NULL otherwise. */
KN_API const char *kn_scale_reason_code(kn_scale_reason r);
/* A short human description of the reason ("scale-in cooldown"). */
KN_API const char *kn_scale_reason_text(kn_scale_reason r);

#ifdef __cplusplus
}
#endif
#endif
