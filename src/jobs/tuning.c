/* Hyperparameter tuning jobs: validation of CreateHyperParameterTuningJob,
 * the driver that turns a kn_tuner's trials into child training jobs, the
 * objective of each child (the last value of the objective metric, as AWS
 * takes it), BestTrainingJob, the counters, early stopping (Auto: the
 * median rule), warm start, stop, and recovery after a restart.
 *
 * Hyperband's resource is the child's "epochs" hyperparameter: a trial at
 * resource r trains for ceil(r) epochs, and a promotion is a new child
 * with the same configuration and more epochs (cheap with the feature
 * cache). Everything runs under kn_jobs.mu (see jobs_int.h). */
#include "jobs_int.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *sget(json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

void kn_jobs__tuning_free(kn_tuning *t)
{
    if (!t)
        return;
    kn_tuner_free(t->tuner);
    kn_tune_space_deinit(&t->space);
    for (int i = 0; i < t->n_child; i++)
        free(t->child[i]);
    free(t->child);
    json_decref(t->sums);
    json_decref(t->curves);
    json_decref(t->doc);
    free(t);
}

static kn_tuning *find(kn_jobs *j, const char *name)
{
    for (kn_tuning *t = j->tunings; t; t = t->next)
        if (!strcasecmp(t->name, name))
            return t;
    return NULL;
}

static void set_child(kn_tuning *t, int id, const char *name)
{
    if (id < 0)
        return;
    if (id >= t->cap_child) {
        int cap = t->cap_child ? t->cap_child : 32;
        while (cap <= id)
            cap *= 2;
        char **n = realloc(t->child, (size_t)cap * sizeof *n);
        if (!n)
            return;
        memset(n + t->cap_child, 0, (size_t)(cap - t->cap_child) * sizeof *n);
        t->child = n;
        t->cap_child = cap;
    }
    free(t->child[id]);
    t->child[id] = name ? strdup(name) : NULL;
    if (id >= t->n_child)
        t->n_child = id + 1;
}

/* The child's objective: the last value of the objective metric. */
static bool objective_of(kn_tuning *t, json_t *child, double *v)
{
    json_t *s = json_object_get(json_object_get(json_object_get(child, "_kn"), "series"),
                                t->metric);
    size_t n = json_array_size(s);
    if (!n)
        return false;
    *v = json_number_value(json_array_get(json_array_get(s, n - 1), 1));
    return isfinite(*v);
}

static json_t *summary_of(kn_tuning *t, json_t *child)
{
    json_t *s = json_object();
    static const char *const keys[] = {"TrainingJobName", "TrainingJobArn", "CreationTime",
                                       "TrainingStartTime", "TrainingEndTime",
                                       "TrainingJobStatus", "FailureReason", NULL};
    for (int k = 0; keys[k]; k++)
        if (json_object_get(child, keys[k]))
            json_object_set(s, keys[k], json_object_get(child, keys[k]));
    json_object_set_new(s, "TuningJobName", json_string(t->name));
    json_t *kn = json_object_get(child, "_kn");
    json_object_set(s, "TunedHyperParameters", json_object_get(kn, "tuned"));
    const char *st = sget(child, "TrainingJobStatus");
    bool running = !strcmp(st, "InProgress") || !strcmp(st, "Stopping");
    double v;
    const char *os = "Pending";
    if (!running) {
        bool usable = !strcmp(st, "Completed") ||
                      (!strcmp(st, "Stopped") && json_is_true(json_object_get(kn, "early_stopped")));
        if (usable && objective_of(t, child, &v)) {
            os = "Succeeded";
            json_object_set_new(s, "FinalHyperParameterTuningJobObjectiveMetric",
                                json_pack("{s:s, s:s, s:f}", "Type",
                                          t->maximize ? "Maximize" : "Minimize", "MetricName",
                                          t->metric, "Value", v));
        } else {
            os = "Failed";
        }
    }
    json_object_set_new(s, "ObjectiveStatus", json_string(os));
    return s;
}

static bool better(kn_tuning *t, double a, double b)
{
    return t->maximize ? a > b : a < b;
}

/* The children with an objective, in the order they ended. */
static int cmp_end(const void *a, const void *b)
{
    double x = json_number_value(json_object_get(*(json_t *const *)a, "TrainingEndTime"));
    double y = json_number_value(json_object_get(*(json_t *const *)b, "TrainingEndTime"));
    return (x > y) - (x < y);
}

/* TuningJobCompletionDetails.NumberOfTrainingJobsObjectiveNotImproving: of
 * the children with an objective, taken in the order they ended, how many
 * came after the last one that improved the best by more than 1 %. */
static int not_improving(kn_tuning *t)
{
    size_t n = json_object_size(t->sums), k = 0;
    json_t **v = calloc(n ? n : 1, sizeof *v);
    if (!v)
        return 0;
    const char *key;
    json_t *s;
    json_object_foreach(t->sums, key, s) if (!strcmp(sget(s, "ObjectiveStatus"), "Succeeded"))
        v[k++] = s;
    qsort(v, k, sizeof *v, cmp_end);
    int count = 0;
    double best = 0;
    for (size_t i = 0; i < k; i++) {
        double x = json_number_value(json_object_get(
            json_object_get(v[i], "FinalHyperParameterTuningJobObjectiveMetric"), "Value"));
        double margin = 0.01 * fabs(best);
        if (i == 0 || (t->maximize ? x > best + margin : x < best - margin)) {
            best = i == 0 || better(t, x, best) ? x : best;
            count = 0;
        } else {
            count++;
            if (better(t, x, best))
                best = x;
        }
    }
    free(v);
    return count;
}

/* Counters and BestTrainingJob from the summaries. */
static void refresh(kn_jobs *j, kn_tuning *t)
{
    int completed = 0, inprog = 0, stopped = 0, nonretry = 0, succ = 0, pend = 0, ofail = 0;
    json_t *best = NULL;
    double bv = 0;
    const char *k;
    json_t *s;
    json_object_foreach(t->sums, k, s)
    {
        const char *st = sget(s, "TrainingJobStatus");
        if (!strcmp(st, "Completed"))
            completed++;
        else if (!strcmp(st, "InProgress") || !strcmp(st, "Stopping"))
            inprog++;
        else if (!strcmp(st, "Stopped"))
            stopped++;
        else
            nonretry++;
        const char *os = sget(s, "ObjectiveStatus");
        if (!strcmp(os, "Succeeded")) {
            succ++;
            double v = json_number_value(json_object_get(
                json_object_get(s, "FinalHyperParameterTuningJobObjectiveMetric"), "Value"));
            if (!best || better(t, v, bv)) {
                best = s;
                bv = v;
            }
        } else if (!strcmp(os, "Pending")) {
            pend++;
        } else {
            ofail++;
        }
    }
    json_t *d = t->doc;
    json_object_set_new(d, "TrainingJobStatusCounters",
                        json_pack("{s:i, s:i, s:i, s:i, s:i}", "Completed", completed,
                                  "InProgress", inprog, "RetryableError", 0, "NonRetryableError",
                                  nonretry, "Stopped", stopped));
    json_object_set_new(d, "ObjectiveStatusCounters",
                        json_pack("{s:i, s:i, s:i}", "Succeeded", succ, "Pending", pend,
                                  "Failed", ofail));
    if (best)
        json_object_set_new(d, "BestTrainingJob", json_deep_copy(best));
    json_t *pb = json_object_get(json_object_get(d, "_kn"), "parent_best");
    if (json_object_get(d, "WarmStartConfig")) {
        json_t *ob = best;
        if (pb) {
            double pv = json_number_value(json_object_get(
                json_object_get(pb, "FinalHyperParameterTuningJobObjectiveMetric"), "Value"));
            if (!ob || better(t, pv, bv))
                ob = pb;
        }
        if (ob)
            json_object_set_new(d, "OverallBestTrainingJob", json_deep_copy(ob));
    }
    double now = kn_jobs__now(j);
    json_t *end = json_object_get(d, "HyperParameterTuningEndTime");
    double ran = (end ? json_number_value(end) : now) -
                 json_number_value(json_object_get(d, "CreationTime"));
    json_object_set_new(d, "ConsumedResources",
                        json_pack("{s:i}", "RuntimeInSeconds", (int)(ran > 0 ? ran : 0)));
    json_object_set_new(d, "TuningJobCompletionDetails",
                        json_pack("{s:i}", "NumberOfTrainingJobsObjectiveNotImproving",
                                  not_improving(t)));
    json_object_set_new(d, "LastModifiedTime", json_real(now));
}

/* Whether a completion criterion of the tuning job is met (ResourceLimits.
 * MaxRuntimeInSeconds, TuningJobCompletionCriteria.TargetObjectiveMetricValue
 * or BestObjectiveNotImproving); why, for the log. */
static bool criterion_met(kn_jobs *j, kn_tuning *t, char *why, size_t n)
{
    json_t *cfg = json_object_get(t->doc, "HyperParameterTuningJobConfig");
    json_t *limit = json_object_get(json_object_get(cfg, "ResourceLimits"), "MaxRuntimeInSeconds");
    double ran = kn_jobs__now(j) - json_number_value(json_object_get(t->doc, "CreationTime"));
    if (limit && ran >= (double)json_integer_value(limit)) {
        snprintf(why, n, "MaxRuntimeInSeconds (%lld s) reached",
                 (long long)json_integer_value(limit));
        return true;
    }
    json_t *cc = json_object_get(cfg, "TuningJobCompletionCriteria");
    json_t *target = json_object_get(cc, "TargetObjectiveMetricValue");
    json_t *best = json_object_get(json_object_get(t->doc, "BestTrainingJob"),
                                   "FinalHyperParameterTuningJobObjectiveMetric");
    if (target && best) {
        double bv = json_number_value(json_object_get(best, "Value"));
        double tv = json_number_value(target);
        if (t->maximize ? bv >= tv : bv <= tv) {
            snprintf(why, n, "the best objective %g reached TargetObjectiveMetricValue %g", bv, tv);
            return true;
        }
    }
    json_t *ni = json_object_get(json_object_get(cc, "BestObjectiveNotImproving"),
                                 "MaxNumberOfTrainingJobsNotImproving");
    int count = ni ? not_improving(t) : 0; /* it sorts the summaries: only when asked */
    if (ni && count >= json_integer_value(ni)) {
        snprintf(why, n, "%d training jobs in a row did not improve the best objective by more "
                 "than 1 %% (MaxNumberOfTrainingJobsNotImproving %lld)",
                 count, (long long)json_integer_value(ni));
        return true;
    }
    return false;
}

static void store(kn_jobs *j, kn_tuning *t)
{
    kn_err e;
    kn_err_clear(&e);
    if (kn_jobs__store(j, KN_JOB_TUNING, t->doc, false, &e))
        kn_log(KN_LOG_ERROR, "tuning job %s: cannot store: %s", t->name, e.msg);
}

/* Builds the tuner (and the borrowed views) from the stored document. */
static kn_status setup(kn_jobs *j, kn_tuning *t, kn_err *e)
{
    (void)j;
    json_t *cfg = json_object_get(t->doc, "HyperParameterTuningJobConfig");
    t->def = json_object_get(t->doc, "TrainingJobDefinition");
    json_t *obj = json_object_get(cfg, "HyperParameterTuningJobObjective");
    t->metric = sget(obj, "MetricName");
    t->maximize = sget(obj, "Type") && !strcmp(sget(obj, "Type"), "Maximize");
    const char *es = sget(cfg, "TrainingJobEarlyStoppingType");
    t->early_stopping = es && !strcmp(es, "Auto");
    kn_tuner_params tp = kn_tuner_default_params();
    kn_status s = kn_tune_strategy_parse(sget(cfg, "Strategy"), &tp.strategy);
    if (s)
        return kn_err_set(e, KN_INVALID,
                          "1 validation error detected: Value '%s' at "
                          "'hyperParameterTuningJobConfig.strategy' failed to satisfy "
                          "constraint: Member must satisfy enum value set: [Bayesian, Random, "
                          "Hyperband, Grid]",
                          sget(cfg, "Strategy") ? sget(cfg, "Strategy") : "null");
    t->hyperband = tp.strategy == KN_TUNE_HYPERBAND;
    json_t *lim = json_object_get(cfg, "ResourceLimits");
    json_t *mj = json_object_get(lim, "MaxNumberOfTrainingJobs");
    tp.max_jobs = mj ? (int)json_integer_value(mj) : 0;
    tp.max_parallel = (int)json_integer_value(json_object_get(lim, "MaxParallelTrainingJobs"));
    tp.maximize = t->maximize;
    tp.seed = (uint64_t)json_integer_value(json_object_get(json_object_get(t->doc, "_kn"), "seed"));
    json_t *hb = json_object_get(json_object_get(cfg, "StrategyConfig"), "HyperbandStrategyConfig");
    if (json_object_get(hb, "MinResource"))
        tp.min_resource = (double)json_integer_value(json_object_get(hb, "MinResource"));
    if (json_object_get(hb, "MaxResource"))
        tp.max_resource = (double)json_integer_value(json_object_get(hb, "MaxResource"));
    json_t *pr = json_object_get(cfg, "ParameterRanges");
    char *text = json_dumps(pr ? pr : json_object(), JSON_COMPACT);
    if (!text)
        return kn_err_set(e, KN_NOMEM, "out of memory");
    s = kn_tune_space_parse(text, strlen(text), &t->space, e);
    free(text);
    if (s)
        return s;
    if ((s = kn_tuner_new(&t->space, &tp, &t->tuner, e)))
        return s;
    t->sums = json_object();
    t->curves = json_object();
    return KN_OK;
}

/* The parents' finished trials, told to the tuner (warm start). */
static void warm_start(kn_jobs *j, kn_tuning *t)
{
    json_t *ws = json_object_get(t->doc, "WarmStartConfig");
    json_t *parents = json_object_get(ws, "ParentHyperParameterTuningJobs");
    size_t i;
    json_t *p;
    json_array_foreach(parents, i, p)
    {
        const char *pn = sget(p, "HyperParameterTuningJobName");
        kn_job_row *rows;
        size_t n;
        kn_err e;
        kn_err_clear(&e);
        if (!pn || kn_registry_job_list(j->reg, KN_JOB_TRAINING, pn, &rows, &n, &e))
            continue;
        kn_job_row prow;
        json_t *pdoc = NULL;
        if (!kn_registry_job_get(j->reg, KN_JOB_TUNING, pn, &prow, &e)) {
            pdoc = json_loads(prow.doc, 0, NULL);
            kn_job_row_deinit(&prow);
        }
        for (size_t r = 0; r < n; r++) {
            json_t *c = json_loads(rows[r].doc, 0, NULL);
            json_t *kn = json_object_get(c, "_kn");
            json_t *tuned = json_object_get(kn, "tuned");
            json_t *u = json_object_get(json_object_get(kn, "trial"), "u");
            double v;
            bool ok = !strcmp(rows[r].status, "Completed") && objective_of(t, c, &v);
            /* the trial's coordinates, by parameter name in this space */
            kn_tune_trial tr;
            memset(&tr, 0, sizeof tr);
            tr.continues = -1;
            bool all = ok && json_array_size(u) > 0;
            json_t *pspace = json_object_get(json_object_get(kn, "trial"), "names");
            for (int q = 0; all && q < t->space.n; q++) {
                size_t w;
                json_t *nm;
                bool found = false;
                json_array_foreach(pspace, w, nm) if (!strcmp(json_string_value(nm),
                                                              t->space.p[q].name))
                {
                    tr.u[q] = json_number_value(json_array_get(u, w));
                    found = true;
                }
                all = found && json_object_get(tuned, t->space.p[q].name);
            }
            if (all) {
                int id = kn_tuner_restore(t->tuner, &tr, KN_TUNE_SUCCEEDED, v, false);
                set_child(t, id, NULL);
            }
            json_decref(c);
        }
        for (size_t r = 0; r < n; r++)
            kn_job_row_deinit(&rows[r]);
        free(rows);
        json_decref(pdoc);
    }
}

/* --------------------------------------------------------------- create */

static kn_status rnf(kn_jobs *j, const char *name, kn_err *e)
{
    (void)j;
    return kn_err_set(e, KN_RESOURCE_NOT_FOUND,
                      "Amazon SageMaker can't find a tuning job with name %s", name);
}

static kn_status create(kn_jobs *j, json_t *in, json_t **out, kn_err *e)
{
    const char *name;
    kn_status s = kn_jobs__name_arg(in, "HyperParameterTuningJobName", 32, &name, e);
    if (s)
        return s;
    json_t *cfg = json_object_get(in, "HyperParameterTuningJobConfig");
    if (!json_is_object(cfg))
        return kn_err_set(e, KN_INVALID,
                          "1 validation error detected: Value null at "
                          "'hyperParameterTuningJobConfig' failed to satisfy constraint: Member "
                          "must not be null");
    if (json_object_get(in, "TrainingJobDefinitions"))
        return kn_err_set(e, KN_INVALID,
                          "TrainingJobDefinitions (several algorithms in one tuning job) is not "
                          "supported by kennel: give one TrainingJobDefinition");
    json_t *def = json_object_get(in, "TrainingJobDefinition");
    if (!json_is_object(def))
        return kn_err_set(e, KN_INVALID,
                          "1 validation error detected: Value null at 'trainingJobDefinition' "
                          "failed to satisfy constraint: Member must not be null");
    json_t *obj = json_object_get(cfg, "HyperParameterTuningJobObjective");
    const char *strategy = sget(cfg, "Strategy");
    if (!json_is_object(obj) || !sget(obj, "MetricName") || !sget(obj, "Type"))
        return kn_err_set(e, KN_INVALID,
                          "1 validation error detected: Value null at "
                          "'hyperParameterTuningJobConfig.hyperParameterTuningJobObjective' "
                          "failed to satisfy constraint: Member must not be null (Type and "
                          "MetricName)");
    const char *otype = sget(obj, "Type");
    if (strcmp(otype, "Minimize") && strcmp(otype, "Maximize"))
        return kn_err_set(e, KN_INVALID,
                          "1 validation error detected: Value '%s' at "
                          "'hyperParameterTuningJobConfig.hyperParameterTuningJobObjective.type' "
                          "failed to satisfy constraint: Member must satisfy enum value set: "
                          "[Maximize, Minimize]",
                          otype);
    json_t *lim = json_object_get(cfg, "ResourceLimits");
    json_t *mp = json_object_get(lim, "MaxParallelTrainingJobs");
    json_t *mj = json_object_get(lim, "MaxNumberOfTrainingJobs");
    if (!json_is_integer(mp) || json_integer_value(mp) < 1)
        return kn_err_set(e, KN_INVALID,
                          "1 validation error detected: Value at "
                          "'hyperParameterTuningJobConfig.resourceLimits.maxParallelTrainingJobs' "
                          "failed to satisfy constraint: Member must have value greater than or "
                          "equal to 1");
    if (json_integer_value(mp) > 10)
        return kn_err_set(e, KN_RESOURCE_LIMIT,
                          "The value of MaxParallelTrainingJobs (%lld) exceeds the limit of 10 "
                          "parallel training jobs per tuning job.",
                          (long long)json_integer_value(mp));
    if (mj && (!json_is_integer(mj) || json_integer_value(mj) < 1))
        return kn_err_set(e, KN_INVALID,
                          "1 validation error detected: Value at "
                          "'hyperParameterTuningJobConfig.resourceLimits.maxNumberOfTrainingJobs' "
                          "failed to satisfy constraint: Member must have value greater than or "
                          "equal to 1");
    if (mj && json_integer_value(mj) > 750)
        return kn_err_set(e, KN_RESOURCE_LIMIT,
                          "The value of MaxNumberOfTrainingJobs (%lld) exceeds the limit of 750 "
                          "training jobs per tuning job.",
                          (long long)json_integer_value(mj));
    if (!mj && !(strategy && !strcmp(strategy, "Grid")))
        return kn_err_set(e, KN_INVALID,
                          "ResourceLimits.MaxNumberOfTrainingJobs is required unless the "
                          "strategy is Grid");
    json_t *mrt = json_object_get(lim, "MaxRuntimeInSeconds");
    if (mrt && (!json_is_integer(mrt) || json_integer_value(mrt) < 120 ||
                json_integer_value(mrt) > 15768000))
        return kn_err_set(e, KN_INVALID,
                          "1 validation error detected: Value at "
                          "'hyperParameterTuningJobConfig.resourceLimits.maxRuntimeInSeconds' "
                          "failed to satisfy constraint: Member must have value greater than or "
                          "equal to 120 and less than or equal to 15768000");
    json_t *cc = json_object_get(cfg, "TuningJobCompletionCriteria");
    json_t *tov = json_object_get(cc, "TargetObjectiveMetricValue");
    json_t *ni = json_object_get(json_object_get(cc, "BestObjectiveNotImproving"),
                                 "MaxNumberOfTrainingJobsNotImproving");
    const char *conv = sget(json_object_get(cc, "ConvergenceDetected"), "CompleteOnConvergence");
    if (cc && !json_is_object(cc))
        return kn_err_set(e, KN_INVALID,
                          "TuningJobCompletionCriteria must be an object");
    if (tov && !json_is_number(tov))
        return kn_err_set(e, KN_INVALID,
                          "1 validation error detected: Value at "
                          "'hyperParameterTuningJobConfig.tuningJobCompletionCriteria."
                          "targetObjectiveMetricValue' failed to satisfy constraint: Member must "
                          "be a number");
    if (ni && (!json_is_integer(ni) || json_integer_value(ni) < 3))
        return kn_err_set(e, KN_INVALID,
                          "1 validation error detected: Value at "
                          "'hyperParameterTuningJobConfig.tuningJobCompletionCriteria."
                          "bestObjectiveNotImproving.maxNumberOfTrainingJobsNotImproving' failed "
                          "to satisfy constraint: Member must have value greater than or equal "
                          "to 3");
    if (conv && strcmp(conv, "Disabled") && strcmp(conv, "Enabled"))
        return kn_err_set(e, KN_INVALID,
                          "1 validation error detected: Value '%s' at "
                          "'hyperParameterTuningJobConfig.tuningJobCompletionCriteria."
                          "convergenceDetected.completeOnConvergence' failed to satisfy "
                          "constraint: Member must satisfy enum value set: [Disabled, Enabled]",
                          conv);
    const char *es = sget(cfg, "TrainingJobEarlyStoppingType");
    if (es && strcmp(es, "Off") && strcmp(es, "Auto"))
        return kn_err_set(e, KN_INVALID,
                          "1 validation error detected: Value '%s' at "
                          "'hyperParameterTuningJobConfig.trainingJobEarlyStoppingType' failed "
                          "to satisfy constraint: Member must satisfy enum value set: [Off, Auto]",
                          es);
    if (es && !strcmp(es, "Auto") && strategy && !strcmp(strategy, "Hyperband"))
        return kn_err_set(e, KN_INVALID,
                          "TrainingJobEarlyStoppingType must be Off with the Hyperband "
                          "strategy: Hyperband stops weak trials itself");
    json_t *tdoc;
    s = kn_jobs__training_doc(j, def, NULL, true, &tdoc, e);
    if (s)
        return s;
    json_decref(tdoc);
    /* the objective must be one of the metric definitions */
    json_t *md = json_object_get(json_object_get(def, "AlgorithmSpecification"),
                                 "MetricDefinitions");
    size_t i;
    json_t *m;
    bool found = false;
    json_array_foreach(md, i, m) found = found || (sget(m, "Name") &&
                                                   !strcmp(sget(m, "Name"), sget(obj, "MetricName")));
    if (!found)
        return kn_err_set(e, KN_INVALID,
                          "The objective metric '%s' is not among the training job definition's "
                          "MetricDefinitions: add {\"Name\": \"%s\", \"Regex\": ...} to "
                          "AlgorithmSpecification.MetricDefinitions",
                          sget(obj, "MetricName"), sget(obj, "MetricName"));
    /* tuned parameters may not also be static */
    json_t *pr = json_object_get(cfg, "ParameterRanges");
    json_t *shp = json_object_get(def, "StaticHyperParameters");
    static const char *const kinds[] = {"ContinuousParameterRanges", "IntegerParameterRanges",
                                        "CategoricalParameterRanges"};
    for (int q = 0; q < 3; q++)
        json_array_foreach(json_object_get(pr, kinds[q]), i, m)
        {
            const char *pn = sget(m, "Name");
            if (pn && json_object_get(shp, pn))
                return kn_err_set(e, KN_INVALID,
                                  "Hyperparameter '%s' is both tuned (ParameterRanges) and "
                                  "static (StaticHyperParameters): remove one",
                                  pn);
        }

    double now = kn_jobs__now(j);
    char arn[512];
    kn_registry_arn(j->reg, "sagemaker", "hyper-parameter-tuning-job", name, arn, sizeof arn);
    kn_tuning *t = calloc(1, sizeof *t);
    if (!t)
        return kn_err_set(e, KN_NOMEM, "out of memory");
    snprintf(t->name, sizeof t->name, "%s", name);
    t->doc = json_object();
    json_object_set_new(t->doc, "HyperParameterTuningJobName", json_string(name));
    json_object_set_new(t->doc, "HyperParameterTuningJobArn", json_string(arn));
    json_t *c2 = json_deep_copy(cfg);
    if (!json_object_get(c2, "TrainingJobEarlyStoppingType"))
        json_object_set_new(c2, "TrainingJobEarlyStoppingType", json_string("Off"));
    json_object_set_new(t->doc, "HyperParameterTuningJobConfig", c2);
    json_object_set(t->doc, "TrainingJobDefinition", def);
    json_t *ws = json_object_get(in, "WarmStartConfig");
    json_t *parent_best = NULL;
    if (ws) {
        json_t *parents = json_object_get(ws, "ParentHyperParameterTuningJobs");
        const char *wt = sget(ws, "WarmStartType");
        if (!wt || (strcmp(wt, "IdenticalDataAndAlgorithm") && strcmp(wt, "TransferLearning")))
            s = kn_err_set(e, KN_INVALID,
                           "WarmStartConfig.WarmStartType must be IdenticalDataAndAlgorithm or "
                           "TransferLearning");
        else if (!json_is_array(parents) || json_array_size(parents) < 1 ||
                 json_array_size(parents) > 5)
            s = kn_err_set(e, KN_INVALID,
                           "WarmStartConfig.ParentHyperParameterTuningJobs must list 1 to 5 "
                           "tuning jobs");
        json_array_foreach(parents, i, m)
        {
            if (s)
                break;
            const char *pn = sget(m, "HyperParameterTuningJobName");
            kn_job_row row;
            kn_err e2;
            if (!pn || kn_registry_job_get(j->reg, KN_JOB_TUNING, pn, &row, &e2)) {
                s = rnf(j, pn ? pn : "null", e);
                break;
            }
            json_t *pd = json_loads(row.doc, 0, NULL);
            const char *pst = row.status;
            if (strcmp(pst, "Completed") && strcmp(pst, "Stopped") && strcmp(pst, "Failed"))
                s = kn_err_set(e, KN_INVALID,
                               "Warm start parent %s is %s: a parent must have finished "
                               "(Completed, Stopped or Failed)",
                               pn, pst);
            json_t *pobj = json_object_get(json_object_get(pd, "HyperParameterTuningJobConfig"),
                                           "HyperParameterTuningJobObjective");
            if (!s && (!json_equal(json_object_get(pobj, "MetricName"),
                                   json_object_get(obj, "MetricName")) ||
                       !json_equal(json_object_get(pobj, "Type"), json_object_get(obj, "Type"))))
                s = kn_err_set(e, KN_INVALID,
                               "Warm start parent %s has a different objective: a warm start "
                               "needs the same MetricName and Type",
                               pn);
            json_t *pb = json_object_get(pd, "OverallBestTrainingJob");
            if (!pb)
                pb = json_object_get(pd, "BestTrainingJob");
            if (!s && pb) {
                double v = json_number_value(json_object_get(
                    json_object_get(pb, "FinalHyperParameterTuningJobObjectiveMetric"), "Value"));
                double bv = parent_best
                                ? json_number_value(json_object_get(
                                      json_object_get(parent_best,
                                                      "FinalHyperParameterTuningJobObjectiveMetric"),
                                      "Value"))
                                : 0;
                bool mx = !strcmp(otype, "Maximize");
                if (!parent_best || (mx ? v > bv : v < bv)) {
                    json_decref(parent_best);
                    parent_best = json_deep_copy(pb);
                }
            }
            json_decref(pd);
            kn_job_row_deinit(&row);
        }
        if (!s)
            json_object_set(t->doc, "WarmStartConfig", ws);
    }
    if (s) {
        json_decref(parent_best);
        kn_jobs__tuning_free(t);
        return s;
    }
    json_object_set_new(t->doc, "HyperParameterTuningJobStatus", json_string("InProgress"));
    json_object_set_new(t->doc, "CreationTime", json_real(now));
    json_object_set_new(t->doc, "LastModifiedTime", json_real(now));
    json_t *kn = json_object();
    json_t *seed = json_object_get(cfg, "RandomSeed");
    json_object_set_new(kn, "seed",
                        json_integer(seed ? json_integer_value(seed)
                                          : (json_int_t)(kn_rng_next(&j->rng) >> 2)));
    if (parent_best)
        json_object_set_new(kn, "parent_best", parent_best);
    json_object_set_new(t->doc, "_kn", kn);
    if ((s = setup(j, t, e))) {
        kn_jobs__tuning_free(t);
        return s;
    }
    warm_start(j, t);
    refresh(j, t);
    if ((s = kn_jobs__store(j, KN_JOB_TUNING, t->doc, true, e))) {
        kn_jobs__tuning_free(t);
        return s;
    }
    t->next = j->tunings;
    j->tunings = t;
    *out = json_pack("{s:s}", "HyperParameterTuningJobArn", arn);
    kn_log(KN_LOG_INFO, "tuning job %s: created (%s)", name, strategy);
    return KN_OK;
}

/* ------------------------------------------------------------- children */

static void start_child(kn_jobs *j, kn_tuning *t, const kn_tune_trial *tr)
{
    char name[64];
    uint32_t h = (uint32_t)kn_rng_next(&j->rng);
    snprintf(name, sizeof name, "%s-%03d-%08x", t->name, t->own + 1, h);
    kn_err e;
    kn_err_clear(&e);
    json_t *doc;
    if (kn_jobs__training_doc(j, t->def, name, true, &doc, &e)) {
        kn_log(KN_LOG_ERROR, "tuning job %s: cannot define a child: %s", t->name, e.msg);
        kn_tuner_tell(t->tuner, tr->id, NAN, false);
        return;
    }
    t->own++;
    json_t *hp = json_object_get(doc, "HyperParameters");
    json_t *tuned = json_object();
    json_t *u = json_array(), *names = json_array();
    for (int i = 0; i < t->space.n; i++) {
        char v[128];
        kn_tune_space_format(&t->space, i, tr->u[i], v, sizeof v);
        json_object_set_new(tuned, t->space.p[i].name, json_string(v));
        json_object_set_new(hp, t->space.p[i].name, json_string(v));
        json_array_append_new(u, json_real(tr->u[i]));
        json_array_append_new(names, json_string(t->space.p[i].name));
    }
    if (t->hyperband) {
        char ep[32];
        snprintf(ep, sizeof ep, "%d", (int)ceil(tr->resource - 1e-9));
        json_object_set_new(hp, "epochs", json_string(ep));
    }
    char quoted[300];
    snprintf(quoted, sizeof quoted, "\"%s\"", t->metric);
    json_object_set_new(hp, "_tuning_objective_metric", json_string(quoted));
    json_object_set(doc, "TuningJobArn", json_object_get(t->doc, "HyperParameterTuningJobArn"));
    json_t *kn = json_object_get(doc, "_kn");
    json_object_set_new(kn, "tuning_job", json_string(t->name));
    json_object_set_new(kn, "tuned", tuned);
    json_object_set_new(kn, "trial",
                        json_pack("{s:i, s:o, s:o, s:f, s:i, s:i}", "id", tr->id, "u", u,
                                  "names", names, "resource", tr->resource, "continues",
                                  tr->continues, "rung", tr->rung));
    kn_jobs__set_secondary(j, doc, "Starting", "Starting the training job");
    if (kn_jobs__store(j, KN_JOB_TRAINING, doc, true, &e)) {
        kn_log(KN_LOG_ERROR, "tuning job %s: cannot store child %s: %s", t->name, name, e.msg);
        json_decref(doc);
        kn_tuner_tell(t->tuner, tr->id, NAN, false);
        return;
    }
    set_child(t, tr->id, name);
    json_object_set_new(t->sums, name, summary_of(t, doc));
    kn_jobs__run_add(j, doc, t, tr->id);
    refresh(j, t);
    store(j, t);
}

void kn_jobs__tuning_child_done(kn_jobs *j, kn_tuning *t, kn_run *r)
{
    json_t *kn = json_object_get(r->doc, "_kn");
    if (r->early_stopped)
        json_object_set_new(kn, "early_stopped", json_true());
    json_t *sum = summary_of(t, r->doc);
    const char *os = sget(sum, "ObjectiveStatus");
    bool ok = !strcmp(os, "Succeeded");
    double v = ok ? json_number_value(json_object_get(
                        json_object_get(sum, "FinalHyperParameterTuningJobObjectiveMetric"),
                        "Value"))
                  : NAN;
    if (ok)
        json_object_set(r->doc, "FinalHyperParameterTuningJobObjectiveMetric",
                        json_object_get(sum, "FinalHyperParameterTuningJobObjectiveMetric"));
    if (!ok && !strcmp(sget(r->doc, "TrainingJobStatus"), "Completed"))
        kn_log(KN_LOG_WARN,
               "tuning job %s: child %s completed without the objective metric '%s' in its log",
               t->name, r->name, t->metric);
    json_object_set_new(t->sums, r->name, sum);
    json_t *s = json_object_get(json_object_get(kn, "series"), t->metric);
    json_t *vals = json_array();
    size_t i;
    json_t *p;
    json_array_foreach(s, i, p) json_array_append(vals, json_array_get(p, 1));
    json_object_set_new(t->curves, r->name, vals);
    kn_tuner_tell(t->tuner, r->trial, v, ok);
    refresh(j, t);
    store(j, t);
}

static double mean_first(json_t *vals, size_t k)
{
    double s = 0;
    for (size_t i = 0; i < k; i++)
        s += json_number_value(json_array_get(vals, i));
    return s / (double)k;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Early stopping Auto, the median rule: a running child whose running
 * average of the objective after k values is worse than the median of
 * the finished children's running averages after k values stops. */
static void early_stop(kn_jobs *j, kn_tuning *t)
{
    for (kn_run *r = j->runs; r; r = r->next) {
        if (r->tuning != t || r->done || r->stop || r->pid == 0)
            continue;
        json_t *s = json_object_get(json_object_get(json_object_get(r->doc, "_kn"), "series"),
                                    t->metric);
        size_t k = json_array_size(s);
        if (k == 0 || k == r->es_seen)
            continue;
        r->es_seen = k;
        json_t *vals = json_array();
        size_t i;
        json_t *p;
        json_array_foreach(s, i, p) json_array_append(vals, json_array_get(p, 1));
        double mine = mean_first(vals, k);
        json_decref(vals);
        double others[1024];
        int n = 0;
        const char *key;
        json_t *c;
        json_object_foreach(t->curves, key, c) if (json_array_size(c) >= k && n < 1024)
            others[n++] = mean_first(c, k);
        if (n < 3)
            continue;
        qsort(others, (size_t)n, sizeof *others, cmp_d);
        double med = n % 2 ? others[n / 2] : 0.5 * (others[n / 2 - 1] + others[n / 2]);
        if (better(t, med, mine)) {
            kn_log(KN_LOG_INFO,
                   "tuning job %s: early-stopping %s (objective average %g after %zu values; "
                   "median %g)",
                   t->name, r->name, mine, k, med);
            r->early_stopped = true;
            kn_jobs__run_stop(j, r, "Stopped");
        }
    }
}

static void conclude(kn_jobs *j, kn_tuning *t, const char *status)
{
    refresh(j, t);
    json_object_set_new(t->doc, "HyperParameterTuningJobStatus", json_string(status));
    json_object_set_new(t->doc, "HyperParameterTuningEndTime", json_real(kn_jobs__now(j)));
    json_t *c = json_object_get(t->doc, "ObjectiveStatusCounters");
    if (!json_object_get(t->doc, "BestTrainingJob") && json_object_size(t->sums) > 0)
        kn_log(KN_LOG_WARN,
               "tuning job %s: %s without an objective: no training job reported '%s' "
               "(%d failed objective(s)); check the regex against the jobs' logs",
               t->name, status, t->metric,
               (int)json_integer_value(json_object_get(c, "Failed")));
    store(j, t);
    t->done = true;
    kn_log(KN_LOG_INFO, "tuning job %s: %s", t->name, status);
}

void kn_jobs__tuning_tick(kn_jobs *j)
{
    for (kn_tuning *t = j->tunings; t; t = t->next) {
        if (t->done)
            continue;
        char why[200];
        if (!t->stop && !t->completing && criterion_met(j, t, why, sizeof why)) {
            kn_log(KN_LOG_INFO, "tuning job %s: completing: %s; no further training jobs",
                   t->name, why);
            t->completing = true;
        }
        if (t->stop || t->completing) {
            bool running = false;
            for (kn_run *r = j->runs; r; r = r->next)
                if (r->tuning == t && !r->done) {
                    running = true;
                    kn_jobs__run_stop(j, r, "Stopped");
                }
            if (!running)
                conclude(j, t, t->stop ? "Stopped" : "Completed");
            continue;
        }
        if (t->early_stopping)
            early_stop(j, t);
        for (;;) {
            kn_tune_trial tr;
            kn_tune_ask a = kn_tuner_ask(t->tuner, &tr);
            if (a == KN_TUNE_WAIT)
                break;
            if (a == KN_TUNE_DONE) {
                conclude(j, t, "Completed");
                break;
            }
            start_child(j, t, &tr);
        }
    }
    for (kn_tuning **pp = &j->tunings; *pp;) {
        kn_tuning *t = *pp;
        bool busy = false;
        for (kn_run *r = j->runs; r; r = r->next)
            busy = busy || r->tuning == t;
        if (t->done && !busy) {
            *pp = t->next;
            kn_jobs__tuning_free(t);
        } else {
            pp = &t->next;
        }
    }
}

/* -------------------------------------------------------------- recover */

static int cmp_trial(const void *a, const void *b)
{
    json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
    json_int_t p = json_integer_value(
        json_object_get(json_object_get(json_object_get(x, "_kn"), "trial"), "id"));
    json_int_t q = json_integer_value(
        json_object_get(json_object_get(json_object_get(y, "_kn"), "trial"), "id"));
    return (p > q) - (p < q);
}

static void recover_one(kn_jobs *j, json_t *doc)
{
    kn_err e;
    kn_err_clear(&e);
    kn_tuning *t = calloc(1, sizeof *t);
    if (!t) {
        json_decref(doc);
        return;
    }
    snprintf(t->name, sizeof t->name, "%s", sget(doc, "HyperParameterTuningJobName"));
    t->doc = doc;
    if (setup(j, t, &e)) {
        kn_log(KN_LOG_ERROR, "tuning job %s: cannot resume: %s", t->name, e.msg);
        json_object_set_new(doc, "HyperParameterTuningJobStatus", json_string("Failed"));
        json_object_set_new(doc, "FailureReason", json_string(e.msg));
        store(j, t);
        kn_jobs__tuning_free(t);
        return;
    }
    if (!strcmp(sget(doc, "HyperParameterTuningJobStatus"), "Stopping"))
        t->stop = true;
    warm_start(j, t);
    kn_job_row *rows;
    size_t n;
    if (kn_registry_job_list(j->reg, KN_JOB_TRAINING, t->name, &rows, &n, &e)) {
        kn_log(KN_LOG_ERROR, "tuning job %s: cannot list its children: %s", t->name, e.msg);
        n = 0;
        rows = NULL;
    }
    json_t **kids = calloc(n ? n : 1, sizeof *kids);
    size_t nk = 0;
    for (size_t i = 0; kids && i < n; i++) {
        json_t *c = json_loads(rows[i].doc, 0, NULL);
        if (c)
            kids[nk++] = c;
    }
    if (kids)
        qsort(kids, nk, sizeof *kids, cmp_trial);
    int restarted = 0, kept = 0;
    for (size_t i = 0; i < nk; i++) {
        json_t *c = kids[i];
        json_t *kn = json_object_get(c, "_kn");
        json_t *tj = json_object_get(kn, "trial");
        kn_tune_trial tr;
        memset(&tr, 0, sizeof tr);
        json_t *u = json_object_get(tj, "u");
        for (int q = 0; q < t->space.n; q++)
            tr.u[q] = json_number_value(json_array_get(u, (size_t)q));
        tr.resource = json_number_value(json_object_get(tj, "resource"));
        tr.continues = (int)json_integer_value(json_object_get(tj, "continues"));
        tr.rung = (int)json_integer_value(json_object_get(tj, "rung"));
        const char *st = sget(c, "TrainingJobStatus");
        const char *cname = sget(c, "TrainingJobName");
        t->own++;
        if (!strcmp(st, "InProgress") || !strcmp(st, "Stopping")) {
            int id = kn_tuner_restore(t->tuner, &tr, KN_TUNE_RUNNING, 0, true);
            set_child(t, id, cname);
            json_object_set_new(json_object_get(kn, "trial"), "id", json_integer(id));
            /* the process died with the daemon: run the trial again from the
             * start, under the same name (AWS's "Restarting") */
            json_object_set_new(c, "TrainingJobStatus", json_string("InProgress"));
            json_object_del(c, "TrainingStartTime");
            json_object_del(c, "FinalMetricDataList");
            json_object_set_new(kn, "series", json_object());
            kn_jobs__set_secondary(j, c, "Restarting",
                                   "Restarting the training job: the kennel server restarted "
                                   "while it ran");
            json_object_set_new(t->sums, cname, summary_of(t, c));
            kn_run *r = kn_jobs__run_add(j, json_incref(c), t, id);
            if (r && t->stop) {
                r->stop = true;
                r->stop_status = "Stopped";
            }
            restarted++;
        } else {
            json_t *sum = summary_of(t, c);
            bool ok = !strcmp(sget(sum, "ObjectiveStatus"), "Succeeded");
            double v = ok ? json_number_value(json_object_get(
                                json_object_get(sum, "FinalHyperParameterTuningJobObjectiveMetric"),
                                "Value"))
                          : NAN;
            int id = kn_tuner_restore(t->tuner, &tr, ok ? KN_TUNE_SUCCEEDED : KN_TUNE_FAILED, v,
                                      true);
            set_child(t, id, cname);
            json_object_set_new(t->sums, cname, sum);
            json_t *s = json_object_get(json_object_get(kn, "series"), t->metric);
            json_t *vals = json_array();
            size_t w;
            json_t *p;
            json_array_foreach(s, w, p) json_array_append(vals, json_array_get(p, 1));
            json_object_set_new(t->curves, cname, vals);
            kept++;
        }
    }
    for (size_t i = 0; i < nk; i++)
        json_decref(kids[i]);
    free(kids);
    for (size_t i = 0; i < n; i++)
        kn_job_row_deinit(&rows[i]);
    free(rows);
    refresh(j, t);
    store(j, t);
    t->next = j->tunings;
    j->tunings = t;
    kn_log(KN_LOG_INFO,
           "tuning job %s: resumed after a restart: %d finished trial(s) kept, %d restarted",
           t->name, kept, restarted);
}

kn_status kn_jobs__tuning_recover(kn_jobs *j, kn_err *e)
{
    kn_job_row *rows;
    size_t n;
    kn_status s = kn_registry_job_list(j->reg, KN_JOB_TUNING, NULL, &rows, &n, e);
    if (s)
        return s;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(rows[i].status, "InProgress") && strcmp(rows[i].status, "Stopping"))
            continue;
        json_t *doc = json_loads(rows[i].doc, 0, NULL);
        if (doc)
            recover_one(j, doc);
    }
    for (size_t i = 0; i < n; i++)
        kn_job_row_deinit(&rows[i]);
    free(rows);
    return KN_OK;
}

/* ----------------------------------------------------------- operations */

static kn_status get_doc(kn_jobs *j, const char *name, json_t **doc, kn_err *e)
{
    kn_tuning *t = find(j, name);
    if (t) {
        *doc = json_incref(t->doc);
        return KN_OK;
    }
    kn_job_row row;
    kn_err e2;
    if (kn_registry_job_get(j->reg, KN_JOB_TUNING, name, &row, &e2))
        return rnf(j, name, e);
    *doc = json_loads(row.doc, 0, NULL);
    kn_job_row_deinit(&row);
    return *doc ? KN_OK : kn_err_set(e, KN_INTERNAL, "stored tuning job %s is corrupt", name);
}

static kn_status describe(kn_jobs *j, json_t *in, json_t **out, kn_err *e)
{
    return kn_jobs__describe(j, in, "HyperParameterTuningJobName", 32, get_doc, out, e);
}

static kn_status stop(kn_jobs *j, json_t *in, json_t **out, kn_err *e)
{
    const char *name;
    kn_status s = kn_jobs__name_arg(in, "HyperParameterTuningJobName", 32, &name, e);
    if (s)
        return s;
    kn_tuning *t = find(j, name);
    if (!t || t->done) {
        json_t *doc;
        s = get_doc(j, name, &doc, e);
        if (s)
            return s;
        s = kn_err_set(e, KN_INVALID,
                       "The request was rejected because the tuning job is in status %s.",
                       sget(doc, "HyperParameterTuningJobStatus"));
        json_decref(doc);
        return s;
    }
    t->stop = true;
    json_object_set_new(t->doc, "HyperParameterTuningJobStatus", json_string("Stopping"));
    store(j, t);
    *out = json_object();
    return KN_OK;
}

static bool time_ok(json_t *in, json_t *doc)
{
    double t = json_number_value(json_object_get(doc, "CreationTime"));
    json_t *a = json_object_get(in, "CreationTimeAfter"), *b = json_object_get(in, "CreationTimeBefore");
    return !(a && !(t > json_number_value(a))) && !(b && !(t < json_number_value(b)));
}

static kn_status list(kn_jobs *j, json_t *in, json_t **out, kn_err *e)
{
    kn_job_row *rows;
    size_t n;
    kn_status s = kn_registry_job_list(j->reg, KN_JOB_TUNING, NULL, &rows, &n, e);
    if (s)
        return s;
    const char *contains = sget(in, "NameContains");
    const char *status = sget(in, "StatusEquals");
    json_t *items = json_array();
    for (size_t i = 0; i < n; i++) {
        kn_tuning *t = find(j, rows[i].name);
        json_t *doc = t ? json_incref(t->doc) : json_loads(rows[i].doc, 0, NULL);
        if (!doc)
            continue;
        const char *nm = sget(doc, "HyperParameterTuningJobName");
        const char *st = sget(doc, "HyperParameterTuningJobStatus");
        if ((!contains || strcasestr(nm, contains)) && (!status || !strcmp(st, status)) &&
            time_ok(in, doc)) {
            json_t *cfg = json_object_get(doc, "HyperParameterTuningJobConfig");
            json_t *it = json_object();
            static const char *const keys[] = {
                "HyperParameterTuningJobName", "HyperParameterTuningJobArn",
                "HyperParameterTuningJobStatus", "CreationTime", "HyperParameterTuningEndTime",
                "LastModifiedTime", "TrainingJobStatusCounters", "ObjectiveStatusCounters", NULL};
            for (int k = 0; keys[k]; k++)
                if (json_object_get(doc, keys[k]))
                    json_object_set(it, keys[k], json_object_get(doc, keys[k]));
            json_object_set(it, "Strategy", json_object_get(cfg, "Strategy"));
            json_object_set(it, "ResourceLimits", json_object_get(cfg, "ResourceLimits"));
            json_array_append_new(items, it);
        }
        json_decref(doc);
    }
    for (size_t i = 0; i < n; i++)
        kn_job_row_deinit(&rows[i]);
    free(rows);
    json_t *page;
    char *next;
    s = kn_jobs__page(items, in, "CreationTime", "HyperParameterTuningJobName",
                      "HyperParameterTuningJobStatus", &page, &next, e);
    json_decref(items);
    if (s)
        return s;
    *out = json_pack("{s:o}", "HyperParameterTuningJobSummaries", page);
    if (next)
        json_object_set_new(*out, "NextToken", json_string(next));
    free(next);
    return KN_OK;
}

static kn_status list_children(kn_jobs *j, json_t *in, json_t **out, kn_err *e)
{
    const char *name;
    kn_status s = kn_jobs__name_arg(in, "HyperParameterTuningJobName", 32, &name, e);
    if (s)
        return s;
    json_t *tdoc;
    s = get_doc(j, name, &tdoc, e);
    if (s)
        return s;
    kn_tuning tmp;
    memset(&tmp, 0, sizeof tmp);
    snprintf(tmp.name, sizeof tmp.name, "%s", sget(tdoc, "HyperParameterTuningJobName"));
    json_t *obj = json_object_get(json_object_get(tdoc, "HyperParameterTuningJobConfig"),
                                  "HyperParameterTuningJobObjective");
    tmp.metric = sget(obj, "MetricName");
    tmp.maximize = sget(obj, "Type") && !strcmp(sget(obj, "Type"), "Maximize");
    kn_job_row *rows;
    size_t n;
    s = kn_registry_job_list(j->reg, KN_JOB_TRAINING, tmp.name, &rows, &n, e);
    if (s) {
        json_decref(tdoc);
        return s;
    }
    const char *status = sget(in, "StatusEquals");
    json_t *items = json_array();
    for (size_t i = 0; i < n; i++) {
        kn_run *r = kn_jobs__run_find(j, rows[i].name);
        json_t *doc = r ? json_incref(r->doc) : json_loads(rows[i].doc, 0, NULL);
        if (!doc)
            continue;
        if (!status || !strcmp(sget(doc, "TrainingJobStatus"), status))
            json_array_append_new(items, summary_of(&tmp, doc));
        json_decref(doc);
    }
    for (size_t i = 0; i < n; i++)
        kn_job_row_deinit(&rows[i]);
    free(rows);
    json_decref(tdoc);
    json_t *page;
    char *next;
    s = kn_jobs__page(items, in, "CreationTime", "TrainingJobName", "TrainingJobStatus", &page,
                      &next, e);
    json_decref(items);
    if (s)
        return s;
    *out = json_pack("{s:o}", "TrainingJobSummaries", page);
    if (next)
        json_object_set_new(*out, "NextToken", json_string(next));
    free(next);
    return KN_OK;
}

kn_status kn_jobs__tuning_call(kn_jobs *j, const char *op, json_t *in, json_t **out, kn_err *e)
{
    if (!strcmp(op, "CreateHyperParameterTuningJob"))
        return create(j, in, out, e);
    if (!strcmp(op, "DescribeHyperParameterTuningJob"))
        return describe(j, in, out, e);
    if (!strcmp(op, "ListHyperParameterTuningJobs"))
        return list(j, in, out, e);
    if (!strcmp(op, "ListTrainingJobsForHyperParameterTuningJob"))
        return list_children(j, in, out, e);
    if (!strcmp(op, "StopHyperParameterTuningJob"))
        return stop(j, in, out, e);
    return kn_err_set(e, KN_UNKNOWN_OPERATION, "unknown jobs operation %s", op);
}
