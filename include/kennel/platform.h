/* kennel platform: the daemon's state and the time it runs on.
 *
 *  - kn_clock: the one clock of the daemon. Monotonic and wall time that can
 *    run N times faster than real time (--clock-rate N) or be advanced by hand
 *    (tests), with sleeping and condition waits measured in clock time, so a
 *    300 s cooldown is testable in seconds. All daemon time comes from here.
 *  - kn_platform: a data directory (lock file, kennel.db, artifacts/) opened
 *    by exactly one daemon at a time, with its clock and registry.
 *  - kn_registry: the SQLite store of control-plane resources (models,
 *    endpoint configurations; later endpoints, jobs, functions). Every state
 *    change is one transaction; the schema is versioned by migrations.
 *  - the instance-type table (vCPU, memory, price) endpoints are sized from.
 *
 * Messages left in kn_err are the AWS wording where AWS has one
 * ("Could not find model \"arn:...\"."), so the API layer can pass them on.
 * All objects here are thread-safe unless a comment says otherwise.
 */
#ifndef KENNEL_PLATFORM_H
#define KENNEL_PLATFORM_H

#include "kennel/core.h"

#include <pthread.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- clock */

typedef struct kn_clock kn_clock;

typedef struct kn_clock_params {
    double rate;       /* clock seconds per real second, (0, 1e6]; default 1 */
    bool manual;       /* time stands still until kn_clock_advance (tests) */
    double start_wall; /* wall time at creation, epoch seconds; 0 = now */
} kn_clock_params;
KN_API kn_clock_params kn_clock_default_params(void);

/* KN_INVALID for a rate outside (0, 1e6]. Free with kn_clock_free (NULL ok). */
KN_API kn_status kn_clock_new(const kn_clock_params *p, kn_clock **out, kn_err *e);
KN_API void kn_clock_free(kn_clock *c);

KN_API double kn_clock_rate(const kn_clock *c);
/* Clock-time nanoseconds since the clock was created (starts at 0). */
KN_API uint64_t kn_clock_mono_ns(const kn_clock *c);
/* Clock wall time in epoch seconds: start_wall + elapsed clock time. */
KN_API double kn_clock_wall(const kn_clock *c);
/* Converts a clock-time span to the real span it takes (ns); manual: 0. */
KN_API uint64_t kn_clock_real_ns(const kn_clock *c, uint64_t clock_ns);
/* Manual clocks only: moves time forward and wakes sleepers/waiters. */
KN_API void kn_clock_advance(kn_clock *c, uint64_t ns);

/* Sleeps for `ns` of clock time. */
KN_API void kn_clock_sleep_ns(kn_clock *c, uint64_t ns);
/* Initialises a condition variable that kn_clock_cond_wait can use
 * (CLOCK_MONOTONIC based). Destroy with pthread_cond_destroy. */
KN_API kn_status kn_clock_cond_init(pthread_cond_t *cv);
/* pthread_cond_wait with a deadline in clock time (kn_clock_mono_ns units).
 * `mu` is held on entry and on return. Returns 0 when woken (possibly
 * spuriously: re-check the predicate) and ETIMEDOUT once the deadline has
 * passed. Manual clocks check the deadline every millisecond of real time. */
KN_API int kn_clock_cond_wait(kn_clock *c, pthread_cond_t *cv, pthread_mutex_t *mu,
                              uint64_t deadline_ns);

/* ------------------------------------------------------- instance types */

/* An instance type endpoints can use. Prices are AWS's published on-demand
 * SageMaker real-time inference prices for us-east-1 (USD per hour, as
 * recalled when this table was written: check the AWS price list before
 * using them for a bill). kennel uses vcpu/memory to size an instance's
 * threads and to account for what a deployment would cost on AWS. */
typedef struct kn_instance_type {
    const char *name;   /* "ml.m5.large" */
    int vcpu;
    int memory_mib;
    double usd_per_hour;
} kn_instance_type;

/* NULL when kennel does not offer `name`. The returned entry is static. */
KN_API const kn_instance_type *kn_instance_type_find(const char *name);
/* The whole table; *n receives its length. */
KN_API const kn_instance_type *kn_instance_types(size_t *n);

/* -------------------------------------------------------------- registry */

typedef struct kn_registry kn_registry;

/* A model (SageMaker CreateModel). Strings are heap-owned by the record;
 * release with kn_model_rec_deinit. JSON members hold the AWS-shaped
 * sub-documents exactly as accepted, so Describe can echo them. */
typedef struct kn_model_rec {
    char *name;               /* as created; lookups ignore case */
    char *arn;                /* ...:model/<lower-cased name> */
    char *execution_role_arn;
    char *container_json;     /* the PrimaryContainer object */
    char *model_data_url;     /* as given */
    char *model_data_path;    /* resolved local path (file or directory) */
    bool network_isolation;
    char *tags_json;          /* [{"Key":..,"Value":..}] or NULL */
    double creation_time;     /* epoch seconds, clock time */
} kn_model_rec;
KN_API void kn_model_rec_deinit(kn_model_rec *m);

typedef struct kn_variant_rec {
    char *variant_name;
    char *model_name;
    char *instance_type;
    int initial_instance_count;
    double initial_variant_weight;
    int volume_size_gb;                /* 0 = not given */
    int model_download_timeout_s;      /* 0 = not given */
    int startup_health_timeout_s;      /* 0 = not given */
} kn_variant_rec;

typedef struct kn_endpoint_config_rec {
    char *name;
    char *arn;                /* ...:endpoint-config/<lower-cased name> */
    char *kms_key_id;         /* NULL if not given */
    char *tags_json;
    kn_variant_rec *variants;
    int n_variants;
    double creation_time;
} kn_endpoint_config_rec;
KN_API void kn_endpoint_config_rec_deinit(kn_endpoint_config_rec *c);

/* A list request: filters, order and a page. */
typedef enum kn_sort_key { KN_SORT_CREATION_TIME, KN_SORT_NAME } kn_sort_key;
typedef struct kn_list_params {
    const char *name_contains;   /* case-insensitive substring, NULL = all */
    kn_sort_key sort_by;         /* default creation time */
    bool ascending;              /* default false (descending) */
    int max_results;             /* 1..100, default 10 */
    const char *next_token;      /* from the previous page, NULL = first */
    bool has_created_before, has_created_after;
    double created_before, created_after;
    const char *status_equals;   /* endpoints only: an EndpointStatus, NULL = any */
} kn_list_params;
KN_API kn_list_params kn_list_default_params(void);

/* One page of a list: `items` (kn_model_rec or kn_endpoint_config_rec
 * without variants) and the token of the next page (NULL on the last). */
typedef struct kn_model_page {
    kn_model_rec *items;
    size_t n;
    char *next_token;
} kn_model_page;
typedef struct kn_endpoint_config_page {
    kn_endpoint_config_rec *items;
    size_t n;
    char *next_token;
} kn_endpoint_config_page;
KN_API void kn_model_page_deinit(kn_model_page *p);
KN_API void kn_endpoint_config_page_deinit(kn_endpoint_config_page *p);

typedef struct kn_registry_params {
    const char *path;        /* SQLite file, or ":memory:" */
    kn_clock *clock;         /* creation times come from here (required) */
    const char *region;      /* recorded at creation; default "us-east-1" */
    const char *account_id;  /* recorded at creation; default "123456789012" */
} kn_registry_params;
KN_API kn_registry_params kn_registry_default_params(void);

/* Opens (creating if needed) and migrates the database: WAL mode, foreign
 * keys on, busy timeout, schema brought to the current version in one
 * transaction per migration. KN_IO for SQLite failures, KN_BAD_FORMAT for a
 * file that is not a kennel database or whose schema is newer than this
 * build. Free with kn_registry_close (NULL ok). */
KN_API kn_status kn_registry_open(const kn_registry_params *p, kn_registry **out, kn_err *e);
KN_API void kn_registry_close(kn_registry *r);
KN_API int kn_registry_schema_version(kn_registry *r);
KN_API int kn_registry_latest_schema_version(void);
KN_API const char *kn_registry_region(const kn_registry *r);
KN_API const char *kn_registry_account(const kn_registry *r);
/* "arn:aws:sagemaker:<region>:<account>:<type>/<lower-cased name>". */
KN_API void kn_registry_arn(const kn_registry *r, const char *service, const char *type,
                            const char *name, char *out, size_t n);

/* Models. create: m->name, execution_role_arn, container_json,
 * model_data_url/path, network_isolation, tags_json are read; arn and
 * creation_time are assigned (and written back into *m). KN_EXISTS when the
 * name is taken (any letter case). get/delete: KN_NOT_FOUND when absent. */
KN_API kn_status kn_registry_model_create(kn_registry *r, kn_model_rec *m, kn_err *e);
KN_API kn_status kn_registry_model_get(kn_registry *r, const char *name, kn_model_rec *out,
                                       kn_err *e);
KN_API kn_status kn_registry_model_delete(kn_registry *r, const char *name, kn_err *e);
/* KN_INVALID for a next_token this list did not hand out. */
KN_API kn_status kn_registry_model_list(kn_registry *r, const kn_list_params *q,
                                        kn_model_page *out, kn_err *e);

/* Endpoint configurations. create checks, in the same transaction, that
 * every variant's model exists (KN_NOT_FOUND naming it) and that the name is
 * free (KN_EXISTS). */
KN_API kn_status kn_registry_endpoint_config_create(kn_registry *r, kn_endpoint_config_rec *c,
                                                    kn_err *e);
KN_API kn_status kn_registry_endpoint_config_get(kn_registry *r, const char *name,
                                                 kn_endpoint_config_rec *out, kn_err *e);
KN_API kn_status kn_registry_endpoint_config_delete(kn_registry *r, const char *name,
                                                    kn_err *e);
KN_API kn_status kn_registry_endpoint_config_list(kn_registry *r, const kn_list_params *q,
                                                  kn_endpoint_config_page *out, kn_err *e);

/* Endpoints. An endpoint holds a snapshot of its configuration's variants
 * (with each model's resolved path), so it keeps running when the
 * configuration or model is deleted, as on AWS. `status` is the AWS
 * EndpointStatus ("Creating", "InService", "Updating", "SystemUpdating",
 * "Deleting", "Failed"). current_* fields are runtime figures that the
 * fleet fills in; the registry leaves them 0. */
typedef struct kn_endpoint_variant_rec {
    char *variant_name;
    char *model_name;
    char *model_data_path;
    char *image;                  /* PrimaryContainer.Image, NULL if none */
    char *instance_type;
    int desired_count;
    double desired_weight;
    int startup_health_timeout_s; /* 0 = not given */
    int current_count;            /* runtime: instances answering /ping */
    double current_weight;        /* runtime */
} kn_endpoint_variant_rec;

typedef struct kn_endpoint_rec {
    char *name;
    char *arn;
    char *config_name;
    char *status;
    char *failure_reason;         /* NULL unless Failed */
    char *tags_json;
    double creation_time, last_modified_time;
    kn_endpoint_variant_rec *variants;
    int n_variants;
} kn_endpoint_rec;
KN_API void kn_endpoint_rec_deinit(kn_endpoint_rec *e);

typedef struct kn_endpoint_page {
    kn_endpoint_rec *items;       /* without variants */
    size_t n;
    char *next_token;
} kn_endpoint_page;
KN_API void kn_endpoint_page_deinit(kn_endpoint_page *p);

/* Creates the endpoint in status Creating, in one transaction that checks
 * the name is free (KN_EXISTS), the configuration exists (KN_NOT_FOUND) and
 * every variant's model exists (KN_NOT_FOUND naming it). `out` receives the
 * stored record. */
KN_API kn_status kn_registry_endpoint_create(kn_registry *r, const char *name,
                                             const char *config_name, const char *tags_json,
                                             kn_endpoint_rec *out, kn_err *e);
KN_API kn_status kn_registry_endpoint_get(kn_registry *r, const char *name, kn_endpoint_rec *out,
                                          kn_err *e);
/* UpdateEndpoint: replaces the endpoint's variants by a snapshot of
 * `config_name` (KN_NOT_FOUND for a missing configuration or model) and
 * sets status Updating, in one transaction; `out` receives the record. */
KN_API kn_status kn_registry_endpoint_update_config(kn_registry *r, const char *name,
                                                    const char *config_name,
                                                    kn_endpoint_rec *out, kn_err *e);
/* Stores ep->variants (desired counts and weights), config_name, status
 * and failure_reason of the endpoint named ep->name, in one transaction. */
KN_API kn_status kn_registry_endpoint_set_variants(kn_registry *r, const kn_endpoint_rec *ep,
                                                   kn_err *e);
/* Sets status (and failure_reason, NULL to clear) and LastModifiedTime. */
KN_API kn_status kn_registry_endpoint_set_status(kn_registry *r, const char *name,
                                                 const char *status, const char *failure_reason,
                                                 kn_err *e);
/* Removes the endpoint row and its variants; KN_NOT_FOUND when absent. */
KN_API kn_status kn_registry_endpoint_delete(kn_registry *r, const char *name, kn_err *e);
KN_API kn_status kn_registry_endpoint_list(kn_registry *r, const kn_list_params *q,
                                           kn_endpoint_page *out, kn_err *e);

/* Training jobs and hyperparameter tuning jobs (the jobs module owns the
 * document's shape: its Describe answer plus private "_kn" members). */
typedef enum kn_job_kind { KN_JOB_TRAINING, KN_JOB_TUNING } kn_job_kind;
typedef struct kn_job_row {
    char *name;
    char *parent;        /* training job: its tuning job, or NULL */
    char *status;        /* TrainingJobStatus / HyperParameterTuningJobStatus */
    double creation_time;
    char *doc;           /* JSON document */
} kn_job_row;
KN_API void kn_job_row_deinit(kn_job_row *row);
/* Creates the job tables if missing (idempotent). */
KN_API kn_status kn_registry_jobs_init(kn_registry *r, kn_err *e);
/* create: KN_RESOURCE_IN_USE when the name exists (any letter case);
 * update: KN_NOT_FOUND when it does not. One transaction. */
KN_API kn_status kn_registry_job_put(kn_registry *r, kn_job_kind kind, const kn_job_row *row,
                                     bool create, kn_err *e);
/* KN_NOT_FOUND when absent (lookups ignore case). */
KN_API kn_status kn_registry_job_get(kn_registry *r, kn_job_kind kind, const char *name,
                                     kn_job_row *out, kn_err *e);
/* Every job (or every child of `parent`), oldest first; the caller deinits
 * each row and frees the array. */
KN_API kn_status kn_registry_job_list(kn_registry *r, kn_job_kind kind, const char *parent,
                                      kn_job_row **rows, size_t *n, kn_err *e);

/* ----------------------------------------------------------------- fleet */

/* The processes behind endpoints. Each endpoint variant runs
 * desired_count instances, each a `<instance_bin> model-server --model
 * <path> --port 0 --ready-file F --threads <vCPU of the instance type>`
 * child. A supervisor thread (real time: process start-up is real work,
 * not clock time) starts them, reaps them, pings them and:
 *   Creating / SystemUpdating -> InService once every instance answers
 *   /ping; -> Failed (FailureReason = the instance's last stderr line, i.e.
 *   the model loader's message) when an instance exits or stays silent
 *   before that; an instance of an InService endpoint that exits, or fails
 *   three health pings in a row, is replaced (with back-off when it keeps
 *   failing to start); Deleting -> instances
 *   get SIGTERM (SIGKILL after the grace time) and the endpoint row goes.
 * Instances die with the daemon (PR_SET_PDEATHSIG), so a killed daemon
 * leaves none behind; on start the fleet brings every stored endpoint back
 * (InService ones through SystemUpdating). Instance logs and ready files
 * live in <data-dir>/instances/<endpoint>/.
 *
 * Invocations go to the ready instance of the chosen variant with the
 * fewest requests in flight, over kept-alive connections; a request whose
 * instance fails at the transport level is retried once on another one.
 * Thread-safe. */
typedef struct kn_fleet kn_fleet;
typedef struct kn_platform kn_platform;

typedef struct kn_fleet_params {
    const char *instance_bin;    /* the kennel executable (required) */
    unsigned poll_ms;            /* supervision tick in real ms (default 50) */
    unsigned startup_timeout_s;  /* real seconds to answer /ping (default 240); a
                                    variant's ContainerStartupHealthCheckTimeout wins */
    unsigned invoke_timeout_ms;  /* per attempt (default 60000) */
    unsigned stop_grace_ms;      /* SIGTERM to SIGKILL (default 30000) */
    unsigned health_interval_ms; /* /ping of ready instances, real ms (default 5000, 0 =
                                    never); 3 failures in a row replace the instance */
} kn_fleet_params;
KN_API kn_fleet_params kn_fleet_default_params(void);

/* Starts supervising and brings back the endpoints stored in p's registry.
 * `p` must outlive the fleet. Stop with kn_fleet_stop (NULL ok), which
 * stops every instance (the endpoints stay stored as they are). */
KN_API kn_status kn_fleet_start(kn_platform *p, const kn_fleet_params *fp, kn_fleet **out,
                                kn_err *e);
KN_API void kn_fleet_stop(kn_fleet *f);

/* CreateEndpoint: stores it (see kn_registry_endpoint_create) and starts
 * its instances. */
KN_API kn_status kn_fleet_endpoint_create(kn_fleet *f, const char *name, const char *config_name,
                                          const char *tags_json, kn_endpoint_rec *out,
                                          kn_err *e);
/* The stored endpoint with its runtime figures filled in. */
KN_API kn_status kn_fleet_endpoint_describe(kn_fleet *f, const char *name, kn_endpoint_rec *out,
                                            kn_err *e);
/* UpdateEndpoint: the new configuration's instances start next to the
 * serving ones (status Updating); once they all answer /ping, traffic
 * switches and the old instances drain and stop (InService). If one fails
 * to start the update rolls back (RollingBack, then InService on the old
 * configuration). KN_INVALID when the endpoint is not InService. */
KN_API kn_status kn_fleet_endpoint_update(kn_fleet *f, const char *name, const char *config_name,
                                          kn_err *e);
/* UpdateEndpointWeightsAndCapacities: new desired weights and/or instance
 * counts per variant (Updating until the counts are reached exactly;
 * scale-in stops idle instances only; a failed scale-out rolls back). */
typedef struct kn_variant_capacity {
    const char *variant_name;
    bool has_weight, has_count;
    double weight;
    int count;
} kn_variant_capacity;
KN_API kn_status kn_fleet_endpoint_update_capacity(kn_fleet *f, const char *name,
                                                   const kn_variant_capacity *caps, int n,
                                                   kn_err *e);
/* Re-reads scalable targets and policies after an Application Auto
 * Scaling change. A policy's tracker keeps its alarm history and cooldowns
 * across reloads. The fleet's autoscaler feeds each policy the variant's
 * InvocationsPerInstance of every clock minute (0 without traffic) and
 * applies its decisions as capacity updates, recording scaling activities
 * (InProgress, then Successful once the instances are in service, Failed
 * or Overridden). Per-minute metrics of every variant go to the registry. */
KN_API kn_status kn_fleet_autoscaling_reload(kn_fleet *f, kn_err *e);
/* Appends Prometheus text (exposition format 0.0.4) about every endpoint:
 * invocations, errors and latency totals since the daemon started,
 * instances by state, desired instances, requests in flight, status. */
KN_API kn_status kn_fleet_prometheus(kn_fleet *f, kn_buf *b);
/* DeleteEndpoint: status Deleting now, gone once its instances exited. */
KN_API kn_status kn_fleet_endpoint_delete(kn_fleet *f, const char *name, kn_err *e);

typedef struct kn_invoke_request {
    const char *endpoint;
    const char *target_variant;     /* NULL = by weight */
    const char *content_type;       /* NULL = application/octet-stream */
    const char *accept;             /* NULL = not sent */
    const char *custom_attributes;  /* NULL = not sent */
    const uint8_t *body;
    size_t body_len;
} kn_invoke_request;

typedef struct kn_invoke_result {
    int status;                     /* the instance's HTTP status */
    char content_type[256];
    char custom_attributes[1024];
    char variant[128];              /* the variant that answered */
    kn_buf body;                    /* the instance's body (bounded) */
} kn_invoke_result;
KN_API void kn_invoke_result_init(kn_invoke_result *r);
KN_API void kn_invoke_result_deinit(kn_invoke_result *r);

/* InvokeEndpoint. KN_OK: out->status is whatever the instance answered.
 * KN_NOT_FOUND: no such endpoint ("Endpoint X of account N not found.");
 * KN_INVALID: the endpoint has no instance to serve (Creating, Failed) or
 * the target variant does not exist; KN_TIMEOUT: the instance took longer
 * than invoke_timeout_ms; KN_IO: no instance could take the request. */
KN_API kn_status kn_fleet_invoke(kn_fleet *f, const kn_invoke_request *rq,
                                 kn_invoke_result *out, kn_err *e);

/* ------------------------------------------------------- autoscaling */

/* Application Auto Scaling state for SageMaker variants. ResourceId is
 * "endpoint/<EndpointName>/variant/<VariantName>". */
typedef struct kn_scalable_target_rec {
    char *resource_id;
    char *endpoint, *variant;
    char *arn;
    int min_capacity, max_capacity;
    char *role_arn;                 /* NULL if none */
    bool suspended_in, suspended_out, suspended_scheduled;
    double creation_time;
} kn_scalable_target_rec;
KN_API void kn_scalable_target_rec_deinit(kn_scalable_target_rec *t);

typedef struct kn_scaling_policy_rec {
    char *resource_id;
    char *name;
    char *arn;
    double target_value;
    double scale_out_cooldown, scale_in_cooldown;  /* seconds */
    bool disable_scale_in;
    char *config_json;              /* TargetTrackingScalingPolicyConfiguration as accepted */
    char *alarm_high, *alarm_low;   /* alarm names */
    double creation_time;
} kn_scaling_policy_rec;
KN_API void kn_scaling_policy_rec_deinit(kn_scaling_policy_rec *p);

typedef struct kn_scaling_activity_rec {
    char *id;
    char *resource_id;
    char *description;
    char *cause;
    char *status_code;              /* Pending, InProgress, Successful, Failed, ... */
    char *status_message;           /* NULL if none */
    double start_time, end_time;    /* end_time 0 = not ended */
} kn_scaling_activity_rec;
KN_API void kn_scaling_activity_rec_deinit(kn_scaling_activity_rec *a);

/* RegisterScalableTarget: creates the target, or on re-registration
 * updates the fields given (min/max < 0 and NULL role keep the stored
 * value). A new target needs both capacities (KN_INVALID otherwise). `out`
 * receives the stored row; *created tells which it was. */
KN_API kn_status kn_registry_target_put(kn_registry *r, const kn_scalable_target_rec *t,
                                        bool *created, kn_scalable_target_rec *out, kn_err *e);
/* Targets (all, or the one with `resource_id`), oldest first. The caller
 * frees each with kn_scalable_target_rec_deinit and the array with free(). */
KN_API kn_status kn_registry_target_list(kn_registry *r, const char *resource_id,
                                         kn_scalable_target_rec **items, size_t *n, kn_err *e);
/* KN_OBJECT_NOT_FOUND when absent; the target's policies go with it. */
KN_API kn_status kn_registry_target_delete(kn_registry *r, const char *resource_id, kn_err *e);
/* PutScalingPolicy (create or replace); KN_OBJECT_NOT_FOUND when the
 * target is not registered. */
KN_API kn_status kn_registry_policy_put(kn_registry *r, const kn_scaling_policy_rec *p,
                                        kn_err *e);
KN_API kn_status kn_registry_policy_list(kn_registry *r, const char *resource_id,
                                         kn_scaling_policy_rec **items, size_t *n, kn_err *e);
KN_API kn_status kn_registry_policy_delete(kn_registry *r, const char *resource_id,
                                           const char *name, kn_err *e);
KN_API kn_status kn_registry_activity_add(kn_registry *r, const kn_scaling_activity_rec *a,
                                          kn_err *e);
/* Ends an activity: status, message (NULL ok) and end time. */
KN_API kn_status kn_registry_activity_finish(kn_registry *r, const char *id, const char *status,
                                             const char *message, double end_time, kn_err *e);
/* Activities, newest first, of one resource (NULL = all). */
KN_API kn_status kn_registry_activity_list(kn_registry *r, const char *resource_id,
                                           kn_scaling_activity_rec **items, size_t *n,
                                           kn_err *e);

/* One endpoint variant's figures for one clock minute. */
typedef struct kn_variant_minute {
    int64_t minute;                 /* clock epoch seconds / 60 */
    uint64_t invocations;
    double per_instance;            /* InvocationsPerInstance: sum of 1/N per request */
    double model_latency_us;        /* mean */
    double overhead_latency_us;     /* mean */
    double latency_p50_us;          /* model + overhead, per request: median */
    double latency_p99_us;          /* and 99th percentile (within 3 %) */
    uint64_t errors_4xx, errors_5xx;
    int instances;                  /* instances in service at the minute's end */
} kn_variant_minute;
KN_API kn_status kn_registry_metrics_put(kn_registry *r, const char *endpoint,
                                         const char *variant, const kn_variant_minute *m,
                                         kn_err *e);
/* The minutes in [from, to] (NULL items when none), oldest first. */
KN_API kn_status kn_registry_metrics_get(kn_registry *r, const char *endpoint,
                                         const char *variant, int64_t from, int64_t to,
                                         kn_variant_minute **items, size_t *n, kn_err *e);

/* ------------------------------------------------------------ functions */

/* Lambda functions as stored documents (the fn module owns their shape),
 * their queued Event invocations and their per-minute metrics. init
 * creates the tables when missing (kn_fn_start calls it). */
KN_API kn_status kn_registry_fn_init(kn_registry *r, kn_err *e);
KN_API kn_status kn_registry_fn_save(kn_registry *r, const char *name, const char *doc,
                                     kn_err *e);
KN_API kn_status kn_registry_fn_delete(kn_registry *r, const char *name, kn_err *e);
/* Calls fn(name, doc, ctx) for every stored function, by name. */
KN_API kn_status kn_registry_fn_each(kn_registry *r,
                                     void (*fn)(const char *name, const char *doc, void *ctx),
                                     void *ctx, kn_err *e);
/* Event queue: add returns the row id; next gives the oldest row with an id
 * above `after` (KN_NOT_FOUND when none; *payload is malloc'd, free it). */
KN_API kn_status kn_registry_fn_event_add(kn_registry *r, const char *function,
                                          const char *qualifier, const void *payload,
                                          size_t len, int64_t *id, kn_err *e);
KN_API kn_status kn_registry_fn_event_next(kn_registry *r, int64_t after, int64_t *id,
                                           char *function, size_t fn_n, char *qualifier,
                                           size_t q_n, uint8_t **payload, size_t *len,
                                           kn_err *e);
KN_API kn_status kn_registry_fn_event_done(kn_registry *r, int64_t id, kn_err *e);

typedef struct kn_fn_minute {
    int64_t minute; /* clock minute (epoch seconds / 60) */
    long long invocations, errors, throttles;
    double duration_ms, duration_max; /* sum and max of durations */
    int concurrent_max;
    long long pc_invocations, pc_spillover;
    double pc_utilization; /* max in-flight on provisioned / allocated */
} kn_fn_minute;
KN_API kn_status kn_registry_fn_metrics_put(kn_registry *r, const char *function,
                                            const kn_fn_minute *m, kn_err *e);
/* The last `minutes` rows of a function, oldest first; free *out. */
KN_API kn_status kn_registry_fn_metrics_get(kn_registry *r, const char *function, int minutes,
                                            kn_fn_minute **out, size_t *n, kn_err *e);

/* -------------------------------------------------------------- platform */

typedef struct kn_platform_params {
    const char *data_dir;    /* NULL = $XDG_DATA_HOME/kennel or ~/.local/share/kennel */
    double clock_rate;       /* default 1 */
    bool manual_clock;       /* tests */
    const char *region;      /* for a new data dir; default us-east-1 */
    const char *account_id;  /* for a new data dir; default 123456789012 */
} kn_platform_params;
KN_API kn_platform_params kn_platform_default_params(void);

/* Opens a data directory (created 0700 if missing): takes the exclusive
 * lock on <dir>/kennel.lock (KN_RESOURCE_IN_USE if another process holds it;
 * the message names the directory and that process's pid), creates
 * artifacts/, starts the clock and opens <dir>/kennel.db. The lock is held
 * until kn_platform_close and is not inherited by child processes. */
KN_API kn_status kn_platform_open(const kn_platform_params *p, kn_platform **out, kn_err *e);
KN_API void kn_platform_close(kn_platform *p);

KN_API kn_clock *kn_platform_clock(kn_platform *p);
KN_API kn_registry *kn_platform_registry(kn_platform *p);
KN_API const char *kn_platform_data_dir(const kn_platform *p);
KN_API const char *kn_platform_artifacts_dir(const kn_platform *p);

/* Model data locations. A ModelDataUrl may be
 *   - an absolute local path:            /srv/models/dog
 *   - a file URL:                        file:///srv/models/dog.tar.gz
 *   - an artifact-store reference:       kennel://artifacts/dog/model.tar.gz
 *     (a path under <data-dir>/artifacts/; ".." and links out are refused)
 * naming a package directory (holding model.json) or a gzip'd tar. s3://
 * and http(s):// are refused: kennel has no network access to object stores.
 * On success `out` receives the resolved absolute path. KN_INVALID with a
 * message a person can act on otherwise. */
KN_API kn_status kn_platform_resolve_model_data(const kn_platform *p, const char *url,
                                                char *out, size_t n, kn_err *e);

/* ------------------------------------------------------------------- IAM
 *
 * Identities and the audit log, in tables of kennel.db reached through a
 * connection of their own (iam_db.c, audit_db.c): the account's users and
 * their access keys, roles with trust policies, managed policies (versions,
 * attachments), inline policies of users and roles, STS sessions, and the
 * audit log of every API call.
 *
 * Secrets at rest: SigV4 verification needs the secret itself (the server
 * recomputes the HMAC), so a hash cannot work. Secret access keys and
 * session secrets are stored encrypted with AES-256-GCM under a key kept in
 * <data-dir>/iam.key (mode 0600, created on first open). Whoever can read
 * both kennel.db and iam.key has every secret; protect the data dir.
 * Session tokens are stored as SHA-256 digests.
 *
 * Times here are real (calendar) time, not the daemon's clock: signatures
 * and session expiries are made with the clients' calendar.
 *
 * Messages in kn_err use IAM's wording ("The role with name X cannot be
 * found."); KN_EXISTS (EntityAlreadyExists), KN_NOT_FOUND (NoSuchEntity),
 * KN_RESOURCE_IN_USE (DeleteConflict), KN_BAD_FORMAT (MalformedPolicyDocument)
 * and KN_RESOURCE_LIMIT (LimitExceeded) are the statuses the API maps. All
 * calls are thread-safe. */
typedef struct kn_iam kn_iam;

#define KN_IAM_ADMIN_POLICY_ARN "arn:aws:iam::aws:policy/AdministratorAccess"
#define KN_IAM_CREDENTIALS_FILE "admin-credentials"

/* Opens the IAM tables of p's data directory (creating them and iam.key if
 * missing). Free with kn_iam_close (NULL ok) before kn_platform_close. */
KN_API kn_status kn_iam_open(kn_platform *p, kn_iam **out, kn_err *e);
KN_API void kn_iam_close(kn_iam *iam);
KN_API const char *kn_iam_account(const kn_iam *iam);
KN_API const char *kn_iam_region(const kn_iam *iam);
/* Bumped by every change of identities or policies (caches compare it). */
KN_API uint64_t kn_iam_generation(const kn_iam *iam);

/* First start: when the account has no user yet, creates user "admin" with
 * AdministratorAccess attached and an access key — access_key/secret when
 * both are given (KENNEL_ROOT_ACCESS_KEY_ID / _SECRET_ACCESS_KEY), else a
 * random one — and writes it in AWS credentials-file format ([default]) to
 * <data-dir>/admin-credentials, mode 0600. *created says whether this
 * happened; path receives the file's path either way. */
KN_API kn_status kn_iam_bootstrap(kn_iam *iam, const char *access_key, const char *secret,
                                  bool *created, char *path, size_t path_n, kn_err *e);

/* Who an access key belongs to (kn_iam_lookup_key). */
typedef enum kn_iam_kind { KN_IAM_USER, KN_IAM_SESSION } kn_iam_kind;
typedef struct kn_iam_identity {
    kn_iam_kind kind;
    char access_key[32];
    char secret[64];
    char arn[600];          /* user ARN, or arn:aws:sts::<acct>:assumed-role/<role>/<session> */
    char user_id[160];      /* AIDA... for a user; AROA...:<session> for a session */
    char name[130];         /* user name, or role name for a session */
    char role_arn[600];     /* sessions: the role's ARN (with its path) */
    char token_sha256[65];  /* sessions: hex SHA-256 of the session token */
    double expiration;      /* sessions: epoch seconds; users: 0 */
} kn_iam_identity;

/* KN_NOT_FOUND for an unknown or inactive key (expired sessions are
 * returned: the caller says ExpiredToken). */
KN_API kn_status kn_iam_lookup_key(kn_iam *iam, const char *access_key, kn_iam_identity *out,
                                   kn_err *e);
/* The identity policy documents that apply to an identity: inline ones and
 * the default versions of attached managed ones (for a session, its
 * role's). *docs is a malloc'ed array of malloc'ed strings, *names their
 * names ("inline:<name>" or the policy ARN); free with kn_iam_strings_free. */
KN_API kn_status kn_iam_identity_policies(kn_iam *iam, const kn_iam_identity *id, char ***docs,
                                          char ***names, size_t *n, kn_err *e);
KN_API void kn_iam_strings_free(char **v, size_t n);

/* Users and access keys. Records are plain text (JSON objects with IAM's
 * member names: UserName, UserId, Arn, Path, CreateDate, ...), malloc'ed;
 * the API turns them into XML. */
KN_API kn_status kn_iam_user_create(kn_iam *iam, const char *name, const char *path,
                                    char **json, kn_err *e);
KN_API kn_status kn_iam_access_key_create(kn_iam *iam, const char *user, const char *access_key,
                                          const char *secret, char **json, kn_err *e);
KN_API kn_status kn_iam_access_key_delete(kn_iam *iam, const char *user, const char *access_key,
                                          kn_err *e);
KN_API kn_status kn_iam_access_key_list(kn_iam *iam, const char *user, char **json, kn_err *e);

/* Roles. trust is the AssumeRolePolicyDocument (checked by the caller). */
KN_API kn_status kn_iam_role_create(kn_iam *iam, const char *name, const char *path,
                                    const char *trust, const char *description,
                                    int max_session_s, char **json, kn_err *e);
KN_API kn_status kn_iam_role_get(kn_iam *iam, const char *name, char **json, kn_err *e);
/* KN_RESOURCE_IN_USE while policies are attached or inline. */
KN_API kn_status kn_iam_role_delete(kn_iam *iam, const char *name, kn_err *e);
/* The role named by an ARN (path ignored: names are unique), as JSON. */
KN_API kn_status kn_iam_role_by_arn(kn_iam *iam, const char *arn, char **json, kn_err *e);

/* Inline policies; kind "user" or "role". */
KN_API kn_status kn_iam_inline_put(kn_iam *iam, const char *kind, const char *owner,
                                   const char *policy_name, const char *doc, kn_err *e);
KN_API kn_status kn_iam_inline_get(kn_iam *iam, const char *kind, const char *owner,
                                   const char *policy_name, char **doc, kn_err *e);
KN_API kn_status kn_iam_inline_delete(kn_iam *iam, const char *kind, const char *owner,
                                      const char *policy_name, kn_err *e);
/* Managed policies: version v1 is the default; attach/detach by ARN. */
KN_API kn_status kn_iam_policy_create(kn_iam *iam, const char *name, const char *path,
                                      const char *doc, const char *description, char **json,
                                      kn_err *e);
KN_API kn_status kn_iam_policy_attach(kn_iam *iam, const char *kind, const char *owner,
                                      const char *policy_arn, kn_err *e);
KN_API kn_status kn_iam_policy_detach(kn_iam *iam, const char *kind, const char *owner,
                                      const char *policy_arn, kn_err *e);

/* Listings for the IAM List* operations: a JSON array of records with
 * IAM's member names (users, roles; a user's or role's attached policies
 * {PolicyName, PolicyArn}; its inline policies {PolicyName}). Owner-scoped
 * listings of an unknown owner are KN_NOT_FOUND. */
typedef enum kn_iam_list_kind {
    KN_IAM_LIST_USERS,
    KN_IAM_LIST_ROLES,
    KN_IAM_LIST_ATTACHED_USER,
    KN_IAM_LIST_ATTACHED_ROLE,
    KN_IAM_LIST_INLINE_USER,
    KN_IAM_LIST_INLINE_ROLE
} kn_iam_list_kind;
KN_API kn_status kn_iam_list(kn_iam *iam, kn_iam_list_kind kind, const char *owner, char **json,
                             kn_err *e);

/* Temporary credentials of an STS session for a role. */
typedef struct kn_iam_credentials {
    char access_key[32];    /* ASIA... */
    char secret[64];
    char session_token[160];
    double expiration;      /* epoch seconds */
    char session_arn[600];  /* arn:aws:sts::<acct>:assumed-role/<role>/<session> */
    char assumed_role_id[200]; /* AROA...:<session> */
} kn_iam_credentials;

/* Mints a session for role_arn (its trust policy is the caller's to check,
 * as the STS API does). duration_s in [900, the role's MaxSessionDuration].
 * KN_NOT_FOUND for an unknown role. */
KN_API kn_status kn_iam_session_create(kn_iam *iam, const char *role_arn,
                                       const char *session_name, int duration_s,
                                       kn_iam_credentials *out, kn_err *e);

/* Execution roles: temporary credentials for a service (a function,
 * "lambda.amazonaws.com") to act as role_arn. The role's trust policy must
 * allow sts:AssumeRole by that service principal (KN_ACCESS... returns
 * KN_INVALID with the reason otherwise). Sessions last duration_s (0 =
 * 3600); refresh by calling again before `expiration`. */
KN_API kn_status kn_iam_execution_credentials(kn_iam *iam, const char *role_arn,
                                              const char *service, const char *session_name,
                                              int duration_s, kn_iam_credentials *out,
                                              kn_err *e);

/* ---- audit log ---- */
typedef struct kn_audit_rec {
    double time;            /* epoch seconds */
    const char *principal;  /* ARN, "" when unauthenticated */
    const char *action;     /* "sagemaker:InvokeEndpoint" or the operation */
    const char *resource;
    const char *source;     /* client address */
    const char *decision;   /* Allow, ImplicitDeny, ExplicitDeny, AuthFailure, ... */
    const char *statement;  /* "<policy>#<index>[/<Sid>]", "" */
    const char *request_id;
    const char *error_code; /* "" on success */
} kn_audit_rec;
/* Queues the row; a writer thread commits queued rows in batches a few
 * milliseconds apart (kn_iam_close writes all that are queued). */
KN_API kn_status kn_iam_audit_add(kn_iam *iam, const kn_audit_rec *r, kn_err *e);
/* Returns once every row added before the call is committed. */
KN_API void kn_iam_audit_flush(kn_iam *iam);
/* Keeps audit rows for `seconds` of calendar time, the rows' own (0, the
 * default: forever): after a commit, at most once a minute, the writer
 * removes the rows older than the newest it committed minus `seconds`. */
KN_API void kn_iam_set_audit_retention(kn_iam *iam, double seconds);

typedef struct kn_audit_query {
    double since;           /* 0 = all */
    const char *principal;  /* substring, NULL = all */
    const char *action;     /* exact (case-insensitive), NULL = all */
    int limit;              /* 0 = 1000 */
} kn_audit_query;
typedef kn_status (*kn_audit_fn)(const kn_audit_rec *r, void *ctx);
/* Reads the audit log of a data directory (read-only; the daemon may be
 * running), oldest first. */
KN_API kn_status kn_audit_read(const char *data_dir, const kn_audit_query *q, kn_audit_fn fn,
                               void *ctx, kn_err *e);

#ifdef __cplusplus
}
#endif
#endif
