/* Cross-file internals of the jobs module: the supervisor's state, shared
 * by training jobs (training.c) and the tuning driver (tuning.c). Every
 * field is guarded by kn_jobs.mu unless a comment says otherwise; the lock
 * order is jobs.mu, then the registry's mutex. */
#ifndef KN_JOBS_INT_H
#define KN_JOBS_INT_H

#include "kennel/jobs.h"
#include "kennel/tune.h"

#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/types.h>

typedef struct kn_tuning kn_tuning;

/* A training job the supervisor is running or about to start. */
typedef struct kn_run {
    struct kn_run *next;
    char name[64];
    json_t *doc;             /* Describe document + "_kn" (owned) */
    kn_tuning *tuning;       /* owning tuning job, or NULL */
    int trial;               /* the tuner's trial id (tuning children) */
    char dir[PATH_MAX];      /* the job's SM root */
    pid_t pid;               /* 0 = not started */
    int out_fd;              /* read end of the process's stdout/stderr */
    FILE *log;
    char line[8192];
    size_t line_len;
    char last_line[512];     /* the last non-empty log line (failure reasons) */
    kn_tune_metrics *metrics;
    uint64_t deadline_ns;    /* MaxRuntimeInSeconds, clock mono; 0 = none */
    uint64_t term_ns;        /* when SIGTERM was sent (clock mono), 0 = not */
    bool stop;               /* stop requested */
    const char *stop_status; /* secondary status for the stop: Stopped, MaxRuntimeExceeded */
    bool early_stopped;      /* stopped by the tuner's early stopping */
    size_t es_seen;          /* objective values early stopping has looked at */
    bool dirty;              /* doc changed since last stored */
    uint64_t stored_ns;      /* real time of the last store */
    bool done;               /* finished: remove from the list */
} kn_run;

struct kn_tuning {
    kn_tuning *next;
    char name[40];
    json_t *doc;             /* Describe document + "_kn" (owned) */
    kn_tune_space space;
    kn_tuner *tuner;
    char **child;            /* tuner id -> child name (NULL for warm-start trials) */
    int n_child, cap_child;
    int own;                 /* children created so far (NNN of the next one is own+1) */
    json_t *sums;            /* child name -> HyperParameterTrainingJobSummary */
    json_t *curves;          /* finished child name -> objective values in order */
    json_t *def;             /* the TrainingJobDefinition (borrowed from doc) */
    const char *metric;      /* objective metric name (borrowed from doc) */
    bool maximize;
    bool early_stopping;
    bool hyperband;
    bool stop;
    bool completing;         /* a completion criterion was met: stop the children, Completed */
    bool done;
};

struct kn_jobs {
    kn_platform *p;
    kn_registry *reg;
    kn_clock *clock;
    kn_jobs_params params;
    char bin[PATH_MAX];
    char root[PATH_MAX];     /* <data-dir>/training-jobs */
    pthread_mutex_t mu;
    pthread_t thread;
    bool quit;
    kn_run *runs;
    kn_tuning *tunings;
    kn_rng rng;
};

/* training.c */
double kn_jobs__now(kn_jobs *j);
kn_status kn_jobs__store(kn_jobs *j, kn_job_kind kind, json_t *doc, bool create, kn_err *e);
json_t *kn_jobs__public(json_t *doc);   /* a copy without "_kn" (new reference) */
/* Validates a training job definition (CreateTrainingJob's body or a
 * tuning job's TrainingJobDefinition) and builds the job's document. */
kn_status kn_jobs__training_doc(kn_jobs *j, json_t *in, const char *name, bool tuning_def,
                                json_t **doc, kn_err *e);
/* Registers a stored training job document to run (takes doc). */
kn_run *kn_jobs__run_add(kn_jobs *j, json_t *doc, kn_tuning *t, int trial);
kn_run *kn_jobs__run_find(kn_jobs *j, const char *name);
void kn_jobs__run_stop(kn_jobs *j, kn_run *r, const char *secondary);
/* A training job's document: in memory if running, else from the registry
 * (new reference). KN_NOT_FOUND with AWS's message. */
kn_status kn_jobs__training_get(kn_jobs *j, const char *name, json_t **doc, kn_err *e);
void kn_jobs__set_secondary(kn_jobs *j, json_t *doc, const char *status, const char *msg);

/* The AWS ValidationException message for a bad resource name. */
kn_status kn_jobs__name_error(const char *name, const char *member, size_t max, kn_err *e);
bool kn_jobs__is_name(const char *s, size_t max);
/* Reads the resource name member `key` of a request (at most max chars):
 * KN_OK with *name, or the ValidationException naming the member as AWS
 * does (key with a lower-case first letter). */
kn_status kn_jobs__name_arg(json_t *in, const char *key, size_t max, const char **name,
                            kn_err *e);
/* A Describe operation: the name member `key` of `in`, the stored document
 * from get(), its public copy in *out. */
typedef kn_status (*kn_jobs_get_fn)(kn_jobs *j, const char *name, json_t **doc, kn_err *e);
kn_status kn_jobs__describe(kn_jobs *j, json_t *in, const char *key, size_t max,
                            kn_jobs_get_fn get, json_t **out, kn_err *e);
/* Sorts (SortBy/SortOrder of `in`; "Name" means name_key, "Status" the
 * status member, "FinalObjectiveMetricValue" the objective), pages
 * (MaxResults, NextToken = decimal offset) a list of summaries. */
kn_status kn_jobs__page(json_t *items, json_t *in, const char *default_sort, const char *name_key,
                        const char *status_key, json_t **page, char **next, kn_err *e);

/* tuning.c */
kn_status kn_jobs__tuning_call(kn_jobs *j, const char *op, json_t *in, json_t **out, kn_err *e);
/* A child finished (its doc is final): tell the tuner. */
void kn_jobs__tuning_child_done(kn_jobs *j, kn_tuning *t, kn_run *r);
/* Asks the tuners for trials, applies early stopping, finishes jobs. */
void kn_jobs__tuning_tick(kn_jobs *j);
/* Rebuilds InProgress tuning jobs after a restart. */
kn_status kn_jobs__tuning_recover(kn_jobs *j, kn_err *e);
void kn_jobs__tuning_free(kn_tuning *t);

#endif
