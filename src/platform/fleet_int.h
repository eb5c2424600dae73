/* Cross-file internals of the fleet (fleet.c: processes, supervision,
 * health, endpoint operations; fleet_router.c: invocations; fleet_scaling.c:
 * metrics, the autoscaler and /metrics). Everything here is used with
 * f->mu held unless its comment says otherwise. */
#ifndef KN_FLEET_INT_H
#define KN_FLEET_INT_H

#include "platform_int.h"

#include "kennel/scale.h"

#include <curl/curl.h>
#include <limits.h>
#include <sys/types.h>
#include <time.h>

#define CURL_POOL_MAX 64
#define MAX_RESPONSE ((size_t)16 * 1024 * 1024)
#define NO_INSTANCE_WAIT_MS 30000u

typedef enum inst_state {
    INST_STARTING, /* process running, not yet answering /ping */
    INST_READY,    /* takes requests */
    INST_STOPPING, /* SIGTERM sent (scale-in, delete, failure) */
    INST_DEAD,     /* reaped; freed once no request uses it */
} inst_state;

typedef struct instance {
    struct instance *next;
    int id;
    pid_t pid;
    inst_state state;
    int port;
    int outstanding;
    uint64_t served;        /* requests it answered (for /metrics) */
    bool broken;       /* a request failed at the transport level */
    bool pinging;
    int ping_failures;      /* consecutive failed health pings while ready */
    uint64_t started_ns, stop_sent_ns, pinged_ns;
    char timeout_reason[128]; /* set when it was killed for not answering /ping */
    char ready_file[PATH_MAX];
    char log_file[PATH_MAX];
} instance;

/* Request latencies of a minute in buckets 3 % wide (1 us .. ~100 s), so a
 * minute's percentiles cost a fixed 2.5 KB per variant whatever the load. */
#define KN_LAT_BUCKETS 640
#define KN_LAT_GROWTH 1.03

typedef struct fvariant {
    kn_endpoint_variant_rec *rec; /* in the endpoint's record */
    int threads;
    unsigned startup_timeout_s;
    instance *insts;
    unsigned rr;
    int failures;           /* consecutive failed starts */
    uint64_t next_spawn_ns; /* back-off after failures */
    int prev_count;         /* UpdateEndpointWeightsAndCapacities: to roll back to */
    double prev_weight;
    /* metrics: the clock minute being counted and the last finished ones */
    kn_variant_minute acc;
    double model_us_sum, overhead_us_sum;
    uint32_t latency_hist[KN_LAT_BUCKETS]; /* this minute's request latencies */
    kn_variant_minute done[8];
    int n_done;
    /* totals since the daemon started, for /metrics */
    uint64_t total_invocations, total_4xx, total_5xx;
    double total_model_us, total_overhead_us;
    struct {
        int64_t minute;
        double per_instance;
    } recent[32]; /* ring of finished minutes, for the autoscaler */
    int n_recent;
} fvariant;

typedef struct fendpoint {
    struct fendpoint *next;
    kn_endpoint_rec rec;    /* rec.status is the current status */
    fvariant *vars;         /* serving */
    bool deleting;
    bool ghost;             /* the retired variants of an update: stopped, never stored */
    bool has_prev;          /* a capacity update is in progress (prev_* are set) */
    /* UpdateEndpoint: the new configuration, starting next to the old one */
    bool has_next;
    kn_endpoint_rec next_rec;
    fvariant *next_vars;
    char activity[64];      /* the scaling activity in progress, "" if none */
    char dir[PATH_MAX];
} fendpoint;

/* A target-tracking policy on a registered variant, with its tracker. */
typedef struct fpolicy {
    char resource_id[300];
    char endpoint[64];
    char variant[64];
    char name[256];
    char alarm_high[400], alarm_low[400];
    bool suspended_in, suspended_out;
    kn_scale_tracker t;
} fpolicy;

/* What happened to the instances of one variant set in one tick. */
typedef struct outcome {
    bool start_failed;
    char reason[1100];
} outcome;

struct kn_fleet {
    kn_platform *platform;
    kn_registry *reg;
    kn_fleet_params p;
    char bin[PATH_MAX];
    pthread_mutex_t mu;
    pthread_cond_t changed; /* CLOCK_MONOTONIC; instances became ready, stop */
    fendpoint *eps;
    int next_id;
    bool stopping;
    int invoke_waiters;     /* routed requests waiting on `changed` for an instance */
    bool thread_started, health_started;
    pthread_t thread, health_thread;
    kn_rng rng;
    pthread_mutex_t pool_mu;
    CURL *pool[CURL_POOL_MAX];
    int n_pool;
    fpolicy *pols;
    int n_pols;
    int64_t scaled_minute; /* the last clock minute the autoscaler evaluated */
};

/* fleet.c */
uint64_t kn_fleet__real_ns(void);
/* An absolute CLOCK_MONOTONIC deadline `ms` from now (real time). */
void kn_fleet__deadline_in(struct timespec *ts, unsigned ms);
/* A pooled curl handle (reset, connections kept) and its return; no lock needed. */
CURL *kn_fleet__pool_get(kn_fleet *f);
void kn_fleet__pool_put(kn_fleet *f, CURL *h);
fendpoint *kn_fleet__find(kn_fleet *f, const char *name);
bool kn_fleet__status_is(const fendpoint *ep, const char *s);
void kn_fleet__set_status(kn_fleet *f, fendpoint *ep, const char *status, const char *reason);
/* Stores the endpoint's variants, config name and status. */
void kn_fleet__persist(kn_fleet *f, fendpoint *ep);
/* Instances ready (ready_only) or ready and starting. */
int kn_fleet__count(const fvariant *v, bool ready_only);

/* fleet_scaling.c */
int64_t kn_fleet__now_minute(kn_fleet *f);
void kn_fleet__record(kn_fleet *f, fvariant *v, int status, double model_us, double total_us);
void kn_fleet__flush_metrics(kn_fleet *f, fendpoint *ep, int64_t minute);
void kn_fleet__finish_activity(kn_fleet *f, fendpoint *ep, const char *status,
                               const char *msg);
void kn_fleet__autoscale(kn_fleet *f);
void kn_fleet__adopt_activities(kn_fleet *f);

#endif
