/* kennel jobs: SageMaker training jobs and hyperparameter tuning jobs run
 * by the daemon.
 *
 * A training job is one process under the SageMaker training contract,
 * rooted at <data-dir>/training-jobs/<name>/ (input/config/ files,
 * input/data/<channel> -> the channel's local data, model/, output/):
 *   - the algorithm is kennel's built-in trainer (`kennel train --sm-root
 *     DIR`) when AlgorithmSpecification.TrainingImage is absent, "kennel"
 *     or starts with "kennel:"; otherwise TrainingImage names a local
 *     executable started as `<image> train` (the `docker run <image> train`
 *     of AWS), or ContainerEntrypoint (+ ContainerArguments) is executed
 *     as given. It gets SM_* and TRAINING_JOB_* in its environment, its
 *     threads bounded by the instance type's vCPUs (OMP_NUM_THREADS,
 *     SM_NUM_CPUS; the built-in trainer also --threads) and its memory by
 *     RLIMIT_DATA = the type's memory.
 *   - stdout and stderr go to <dir>/log (`kennel logs JOB`); every line is
 *     scanned with the MetricDefinitions and the series kept with the job.
 *   - exit 0: <model dir> becomes <S3OutputPath>/<job>/output/model.tar.gz
 *     (S3OutputPath a local path, file:// or kennel://artifacts/...);
 *     otherwise Failed with output/failure's first 1024 characters.
 *   - StopTrainingJob and MaxRuntimeInSeconds: SIGTERM to the job's process
 *     group, SIGKILL after the grace period (clock time, default 120 s).
 * A tuning job drives a kn_tuner: it starts child training jobs named
 * <tuning-job>-NNN-<8 hex> as the strategy asks for them, tells it each
 * child's objective (the last value of the objective metric), and fills
 * BestTrainingJob as AWS does. A failed child does not stop tuning.
 *
 * Everything is stored in the registry as it changes. On start, training
 * jobs found InProgress whose process is gone (the daemon died) become
 * Failed with a reason; children of an InProgress tuning job are restarted
 * in place and the tuner is rebuilt from the stored trials, so completed
 * trials are never run again. Job processes die with the daemon
 * (PR_SET_PDEATHSIG). Thread-safe.
 */
#ifndef KENNEL_JOBS_H
#define KENNEL_JOBS_H

#include "kennel/core.h"
#include "kennel/platform.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kn_jobs kn_jobs;

typedef struct kn_jobs_params {
    const char *bin;        /* the kennel executable (built-in trainer); required */
    unsigned poll_ms;       /* supervision tick, real ms (default 50) */
    double stop_grace_s;    /* SIGTERM -> SIGKILL, clock seconds (default 120) */
    bool paused;            /* no supervisor: jobs are stored and answered for but
                               never run, nothing is recovered (fuzzing) */
} kn_jobs_params;
KN_API kn_jobs_params kn_jobs_default_params(void);

/* Creates the job tables, recovers stored jobs (see above) and starts the
 * supervisor thread. `p` must outlive the kn_jobs. */
KN_API kn_status kn_jobs_start(kn_platform *p, const kn_jobs_params *jp, kn_jobs **out,
                               kn_err *e);
/* Stops supervising; running job processes are killed (their jobs stay
 * InProgress in the registry and are recovered by the next start). */
KN_API void kn_jobs_stop(kn_jobs *j);

/* One SageMaker operation on jobs: op is the operation name
 * ("CreateTrainingJob", "DescribeHyperParameterTuningJob", ...), input its
 * JSON request body; *output receives the JSON answer (malloc'd). Errors:
 * KN_INVALID (ValidationException, also for a missing training job, as
 * AWS), KN_RESOURCE_NOT_FOUND (a missing tuning job), KN_RESOURCE_IN_USE
 * (a name taken), KN_UNKNOWN_OPERATION, with the AWS-worded message in e. */
KN_API kn_status kn_jobs_call(kn_jobs *j, const char *op, const char *input, char **output,
                              kn_err *e);
/* A training job's log (everything its process wrote), appended to out. */
KN_API kn_status kn_jobs_log(kn_jobs *j, const char *name, kn_buf *out, kn_err *e);
/* A training job's metric series as JSON {"Metric": [[time, value], ...]}. */
KN_API kn_status kn_jobs_series(kn_jobs *j, const char *name, char **json, kn_err *e);

#ifdef __cplusplus
}
#endif
#endif
