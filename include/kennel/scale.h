/* kennel scale: how much capacity may be used — target-tracking scaling
 * decisions for endpoint variants (first half) and the concurrency pool of
 * functions (second half).
 *
 * Target tracking, as Application Auto Scaling does it for a SageMaker
 * production variant.
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
 * negative counts as 0, +inf as DBL_MAX) for a variant at `current`
 * instances, and decides.
 * The caller applies d->to when d->action != KN_SCALE_NONE. */
KN_API void kn_scale_observe(kn_scale_tracker *t, double now_s, double metric, int current,
                             kn_scale_decision *d);
/* "AlreadyAtMaxCapacity", ... for the NOT_SCALED reasons; NULL otherwise. */
KN_API const char *kn_scale_reason_code(kn_scale_reason r);
/* A short human description of the reason ("scale-in cooldown"). */
KN_API const char *kn_scale_reason_text(kn_scale_reason r);

/* ==== Function concurrency ===================================================
 *
 * The account's concurrency pool, as Lambda accounts for it:
 *
 *   account limit (1000) = sum of reserved concurrency of the functions that
 *   reserve + provisioned concurrency of the others + on-demand executions
 *   of the others; at least min_unreserved (100) must stay unreserved.
 *
 * Configuration follows PutFunctionConcurrency and
 * PutProvisionedConcurrencyConfig with AWS's checks and messages:
 *   KN_INVALID   InvalidParameterValueException (400): unreserved would drop
 *                below its minimum; reserved below the function's provisioned
 *                total; provisioned above reserved; provisioned on $LATEST
 *   KN_EXISTS    ResourceConflictException (409): another qualifier already
 *                has provisioned concurrency for that version
 *   KN_SHAPE     ValidationException: a count below 1 (provisioned) or 0
 * Names (function, qualifier, version) that are empty, over 169 bytes or
 * hold control bytes are KN_INVALID, and acquire throttles them.
 *
 * An invocation takes a lease (kn_scale_pool_acquire) and gives it back
 * when it ends:
 *   1. the version has READY provisioned concurrency with a free slot: the
 *      lease runs on a provisioned environment;
 *   2. else, if the function reserves R: on-demand while its on-demand
 *      executions < R - its provisioned total (a "spillover" when the version
 *      has provisioned concurrency), else throttled with
 *      ReservedFunctionConcurrentInvocationLimitExceeded;
 *   3. else on-demand while the pool has room, else throttled with
 *      ConcurrentInvocationLimitExceeded.
 * So with reserved 5 and provisioned 2 on an alias, the alias runs 2 warm
 * plus 3 on demand and the sixth concurrent call gets 429; $LATEST gets 3.
 *
 * A pool is thread-safe: invocations acquire and release from any thread. */

typedef struct kn_scale_pool kn_scale_pool;

typedef struct kn_scale_pool_params {
    int account_limit;  /* ConcurrentExecutions (1000) */
    int min_unreserved; /* UnreservedConcurrentExecutions minimum (100) */
} kn_scale_pool_params;
KN_API kn_scale_pool_params kn_scale_pool_default_params(void);

KN_API kn_status kn_scale_pool_new(const kn_scale_pool_params *p, kn_scale_pool **out,
                                   kn_err *e);
KN_API void kn_scale_pool_free(kn_scale_pool *pool);

/* Reserved concurrency of a function; reserved < 0 removes it
 * (DeleteFunctionConcurrency). */
KN_API kn_status kn_scale_pool_set_reserved(kn_scale_pool *pool, const char *fn, int reserved,
                                            kn_err *e);
/* Provisioned concurrency for a qualifier (alias or version number) that
 * resolves to `version`; n = 0 removes it. A new or changed configuration
 * is IN_PROGRESS until kn_scale_pool_set_ready. Leases out on a
 * configuration that is removed or moved to another version are released
 * into nothing; a new count for the same version keeps them running. */
KN_API kn_status kn_scale_pool_set_provisioned(kn_scale_pool *pool, const char *fn,
                                               const char *qualifier, const char *version,
                                               int n, kn_err *e);
/* The environments of a configuration are up: READY with `allocated`
 * (0 = as requested). KN_NOT_FOUND when there is no such configuration,
 * KN_INVALID for a name as above. */
KN_API kn_status kn_scale_pool_set_ready(kn_scale_pool *pool, const char *fn,
                                         const char *qualifier, int allocated, kn_err *e);
/* Forgets a function: its reservation and provisioned configurations.
 * Leases still out are released into nothing. */
KN_API void kn_scale_pool_remove(kn_scale_pool *pool, const char *fn);

typedef enum kn_scale_throttle {
    KN_SCALE_THROTTLE_NONE,
    KN_SCALE_THROTTLE_RESERVED, /* ReservedFunctionConcurrentInvocationLimitExceeded */
    KN_SCALE_THROTTLE_ACCOUNT   /* ConcurrentInvocationLimitExceeded */
} kn_scale_throttle;
KN_API const char *kn_scale_throttle_reason(kn_scale_throttle t);

typedef struct kn_scale_lease {
    unsigned long long id; /* 0 = no lease */
    bool provisioned;      /* runs on a provisioned environment */
    bool spillover;        /* on demand although the version has provisioned concurrency */
} kn_scale_lease;

/* Takes a lease for an invocation of fn at `version` ("$LATEST", "3");
 * false with *why set when throttled. */
KN_API bool kn_scale_pool_acquire(kn_scale_pool *pool, const char *fn, const char *version,
                                  kn_scale_lease *lease, kn_scale_throttle *why);
/* Gives a lease back (unknown or repeated ids are ignored). */
KN_API void kn_scale_pool_release(kn_scale_pool *pool, const kn_scale_lease *lease);

typedef struct kn_scale_fn_stats {
    int reserved;          /* -1 when the function reserves nothing */
    int provisioned;       /* requested provisioned concurrency, all qualifiers */
    int running_provisioned;
    int running_on_demand;
} kn_scale_fn_stats;
KN_API void kn_scale_pool_stats(kn_scale_pool *pool, const char *fn, kn_scale_fn_stats *out);
/* UnreservedConcurrentExecutions: the limit minus all reservations and the
 * provisioned concurrency of functions that reserve nothing. */
KN_API int kn_scale_pool_unreserved(kn_scale_pool *pool);

#ifdef __cplusplus
}
#endif
#endif
