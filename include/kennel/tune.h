/* kennel tune: hyperparameter search spaces and the strategies that pick
 * trials from them — Random, Grid, Bayesian and Hyperband, with
 * SageMaker's ParameterRanges and their scaling types.
 *
 * A space is parsed from the `ParameterRanges` object of
 * CreateHyperParameterTuningJob (Min/MaxValue are strings there, as AWS
 * has them). Every parameter maps to one coordinate in [0, 1]:
 *   Linear              v = min + u (max - min)
 *   Logarithmic         log v uniform between log min and log max (min > 0)
 *   ReverseLogarithmic  log (1 - v) uniform (continuous, 0 <= min < max < 1):
 *                       fine steps near 1, for momentum-like values
 *   Auto                Logarithmic when min > 0 and max / min >= 100,
 *                       else Linear (so the reference project's learning
 *                       rate 0.001..0.1 is searched in log space)
 * Integers round to the nearest integer of the scaled value; categoricals
 * take the value at floor(u * n).
 *
 * A tuner is an ask/tell loop driven by the tuning-job runner:
 *   kn_tuner_ask   the next trial to start (its coordinates, and for
 *                  Hyperband the resource — epochs — to train it for), or
 *                  "wait" when the strategy needs results first, or "done";
 *   kn_tuner_tell  a trial's objective (or that it failed).
 * Strategies:
 *   Random     independent uniform draws (seeded): all trials can run at once.
 *   Grid       categorical parameters only; every combination exactly once.
 *   Bayesian   a Gaussian-process surrogate (Matern 5/2 kernel on the unit
 *              cube, length scale and observation noise chosen by marginal
 *              likelihood, so repeated configurations with differing results
 *              are noise, not contradictions) with expected improvement
 *              (the lowest predicted mean when no candidate improves), after
 *              a few random trials; pending trials
 *              count as their predicted mean ("constant liar") so parallel
 *              trials spread out. Sequential model-based search is what needs
 *              the fewest expensive trials on smooth, low-dimensional
 *              objectives such as learning rate x batch size.
 *   Hyperband  asynchronous successive halving: trials start at the minimum
 *              resource; a finished trial in the top 1/3 of its rung is
 *              promoted to 3x the resource (a continuation of the same
 *              configuration); weak trials stop at the rung they reached.
 * The objective is minimised or maximised; "better" below follows it.
 * Tuners are not thread-safe: one driver thread asks and tells.
 */
#ifndef KENNEL_TUNE_H
#define KENNEL_TUNE_H

#include "kennel/core.h"

#ifdef __cplusplus
extern "C" {
#endif

#define KN_TUNE_MAX_PARAMS 30
#define KN_TUNE_MAX_VALUES 30

typedef enum kn_tune_type { KN_TUNE_CONTINUOUS, KN_TUNE_INTEGER, KN_TUNE_CATEGORICAL } kn_tune_type;
typedef enum kn_tune_scaling {
    KN_TUNE_AUTO,
    KN_TUNE_LINEAR,
    KN_TUNE_LOG,
    KN_TUNE_REVLOG
} kn_tune_scaling;

typedef struct kn_tune_param {
    char name[257];
    kn_tune_type type;
    kn_tune_scaling scaling;  /* as resolved: never AUTO after parsing */
    double min, max;          /* continuous and integer */
    char *values[KN_TUNE_MAX_VALUES]; /* categorical */
    int n_values;
} kn_tune_param;

typedef struct kn_tune_space {
    kn_tune_param p[KN_TUNE_MAX_PARAMS];
    int n;
} kn_tune_space;

/* Parses a ParameterRanges object ({"ContinuousParameterRanges": [...],
 * "IntegerParameterRanges": [...], "CategoricalParameterRanges": [...]}).
 * KN_INVALID (AWS: ValidationException) naming the range and field: bad
 * numbers, min >= max, integer bounds past +-2^53, log scales with min <= 0,
 * reverse-log outside [0, 1),
 * empty or over-long categoricals, duplicate names, more than 30 parameters. */
KN_API kn_status kn_tune_space_parse(const char *json, size_t len, kn_tune_space *out,
                                     kn_err *e);
KN_API void kn_tune_space_deinit(kn_tune_space *s);

/* The value of parameter i at coordinate u, as the string a training job
 * receives ("0.0031622777", "64", "adam"), and as a number (categoricals:
 * the index). */
KN_API void kn_tune_space_format(const kn_tune_space *s, int i, double u, char *out, size_t n);
KN_API double kn_tune_space_value(const kn_tune_space *s, int i, double u);

typedef enum kn_tune_strategy {
    KN_TUNE_RANDOM,
    KN_TUNE_GRID,
    KN_TUNE_BAYESIAN,
    KN_TUNE_HYPERBAND
} kn_tune_strategy;
/* "Random", "Grid", "Bayesian", "Hyperband"; KN_INVALID otherwise. */
KN_API kn_status kn_tune_strategy_parse(const char *s, kn_tune_strategy *out);

typedef struct kn_tuner_params {
    kn_tune_strategy strategy;
    int max_jobs;        /* MaxNumberOfTrainingJobs (Grid: 0 = the grid's size) */
    int max_parallel;    /* MaxParallelTrainingJobs */
    bool maximize;       /* objective Type Maximize (default Minimize) */
    uint64_t seed;       /* RandomSeed */
    double min_resource; /* Hyperband: MinResource (epochs, default 1) */
    double max_resource; /* Hyperband: MaxResource (default 27) */
} kn_tuner_params;
KN_API kn_tuner_params kn_tuner_default_params(void);

typedef struct kn_tune_trial {
    int id;                          /* 0, 1, 2, ... in ask order */
    double u[KN_TUNE_MAX_PARAMS];    /* coordinates, one per parameter */
    double resource;                 /* Hyperband: epochs to train; else 0 */
    int continues;                   /* Hyperband: id of the trial this one
                                        continues (promotion), else -1 */
    int rung;                        /* Hyperband rung, else 0 */
} kn_tune_trial;

typedef enum kn_tune_ask { KN_TUNE_TRIAL, KN_TUNE_WAIT, KN_TUNE_DONE } kn_tune_ask;

typedef struct kn_tuner kn_tuner;

/* The space is copied. KN_INVALID for bad parameters (Grid with a
 * non-categorical parameter or a max_jobs that is not the grid's size,
 * Hyperband resources out of order). */
KN_API kn_status kn_tuner_new(const kn_tune_space *s, const kn_tuner_params *p, kn_tuner **out,
                              kn_err *e);
KN_API void kn_tuner_free(kn_tuner *t);
/* The next trial, or WAIT (max_parallel trials running, or Hyperband needs a
 * rung's results), or DONE (the budget is spent and nothing is running). */
KN_API kn_tune_ask kn_tuner_ask(kn_tuner *t, kn_tune_trial *out);
/* A trial's final objective; ok = false for a failed trial (it counts
 * against the budget and is never promoted). Unknown ids are ignored. */
KN_API void kn_tuner_tell(kn_tuner *t, int id, double objective, bool ok);
/* Restores a trial the tuner did not hand out in this process:
 *  - warm start (counts = false): a finished trial of a parent tuning job.
 *    It informs the strategy (the Bayesian model sees it, Hyperband ranks
 *    nothing against it) but spends no budget and is never promoted;
 *  - resume (counts = true): one of this job's own trials after a restart,
 *    restored in the order they were asked so ids match, with its state:
 *    finished (ok or failed) or still running (a later tell ends it).
 * Returns the id given to the trial, -1 on allocation failure. */
typedef enum kn_tune_state { KN_TUNE_RUNNING, KN_TUNE_SUCCEEDED, KN_TUNE_FAILED } kn_tune_state;
KN_API int kn_tuner_restore(kn_tuner *t, const kn_tune_trial *trial, kn_tune_state state,
                            double objective, bool counts);
/* The best finished trial so far (-1 if none) and its objective. */
KN_API int kn_tuner_best(const kn_tuner *t, double *objective);
/* Trials started so far (Hyperband promotions included). */
KN_API int kn_tuner_started(const kn_tuner *t);

/* ==== Metrics from training logs =============================================
 *
 * MetricDefinitions ([{"Name": ..., "Regex": ...}], at most 40) as
 * CreateTrainingJob and tuning jobs give them: each regex is applied to every
 * log line and its first capture group, read as a number, is one value of
 * the metric ("Testing Loss: ([0-9\\.]+)"). Regexes are PCRE2, the dialect
 * users write for SageMaker (lazy quantifiers such as `loss=(.*?);`, \d, \s,
 * non-capturing groups); matching is bounded (match limit, no JIT stack
 * surprises) and a line is scanned for every match, so a line with two
 * values yields both. A tuning job's objective is the last value of its
 * objective metric. */

typedef struct kn_tune_metrics kn_tune_metrics;

#define KN_TUNE_MAX_METRICS 40

/* KN_INVALID (ValidationException) naming the definition: missing Name or
 * Regex, a regex that does not compile (PCRE2's message and offset), a regex
 * without a capture group, more than 40 definitions or duplicate names. */
KN_API kn_status kn_tune_metrics_new(const char *json, size_t len, kn_tune_metrics **out,
                                     kn_err *e);
KN_API void kn_tune_metrics_free(kn_tune_metrics *m);
KN_API int kn_tune_metrics_count(const kn_tune_metrics *m);
KN_API const char *kn_tune_metrics_name(const kn_tune_metrics *m, int i);
/* Index of a metric by name, or -1. */
KN_API int kn_tune_metrics_find(const kn_tune_metrics *m, const char *name);

/* Applies every definition to one line (no newline needed; NUL bytes are
 * fine); calls fn(metric index, value, arg) for each value found, in line
 * order per metric. Captures that are not finite numbers are skipped.
 * Returns how many values were found. Thread-safe for a shared m. */
KN_API int kn_tune_metrics_scan(const kn_tune_metrics *m, const char *line, size_t len,
                                void (*fn)(int metric, double value, void *arg), void *arg);

#ifdef __cplusplus
}
#endif
#endif
