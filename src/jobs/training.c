/* Training jobs: validation of CreateTrainingJob, the job's SM root, its
 * process, its log and metrics, its lifecycle (statuses and secondary
 * statuses as AWS reports them) and the supervisor thread that drives
 * both training and tuning jobs (see jobs.h). */
#include "jobs_int.h"

#include "kennel/train.h"

#include <archive.h>
#include <archive_entry.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define NAME_PATTERN "^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}"
#define MAX_SERIES 20000

double kn_jobs__now(kn_jobs *j)
{
    return kn_clock_wall(j->clock);
}

static uint64_t real_ns(void)
{
    return kn_now_ns();
}

json_t *kn_jobs__public(json_t *doc)
{
    json_t *c = json_deep_copy(doc);
    if (c)
        json_object_del(c, "_kn");
    return c;
}

static const char *sget(json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

static json_t *kn_of(json_t *doc)
{
    json_t *k = json_object_get(doc, "_kn");
    if (!k) {
        k = json_object();
        json_object_set_new(doc, "_kn", k);
    }
    return k;
}

kn_status kn_jobs__store(kn_jobs *j, kn_job_kind kind, json_t *doc, bool create, kn_err *e)
{
    const char *name = sget(doc, kind == KN_JOB_TUNING ? "HyperParameterTuningJobName"
                                                       : "TrainingJobName");
    const char *status = sget(doc, kind == KN_JOB_TUNING ? "HyperParameterTuningJobStatus"
                                                         : "TrainingJobStatus");
    char *text = json_dumps(doc, JSON_COMPACT);
    if (!text)
        return kn_err_set(e, KN_NOMEM, "out of memory storing job %s", name ? name : "?");
    kn_job_row row = {.name = (char *)name,
                      .parent = (char *)sget(json_object_get(doc, "_kn"), "tuning_job"),
                      .status = (char *)status,
                      .creation_time = json_number_value(json_object_get(doc, "CreationTime")),
                      .doc = text};
    kn_status s = kn_registry_job_put(j->reg, kind, &row, create, e);
    free(text);
    return s;
}

void kn_jobs__set_secondary(kn_jobs *j, json_t *doc, const char *status, const char *msg)
{
    double now = kn_jobs__now(j);
    json_t *tr = json_object_get(doc, "SecondaryStatusTransitions");
    if (!tr) {
        tr = json_array();
        json_object_set_new(doc, "SecondaryStatusTransitions", tr);
    }
    size_t n = json_array_size(tr);
    if (n) {
        json_t *last = json_array_get(tr, n - 1);
        if (!json_object_get(last, "EndTime"))
            json_object_set_new(last, "EndTime", json_real(now));
    }
    json_t *t = json_pack("{s:s, s:f, s:s}", "Status", status, "StartTime", now,
                          "StatusMessage", msg);
    bool terminal = !strcmp(status, "Completed") || !strcmp(status, "Failed") ||
                    !strcmp(status, "Stopped") || !strcmp(status, "MaxRuntimeExceeded");
    if (terminal)
        json_object_set_new(t, "EndTime", json_real(now));
    json_array_append_new(tr, t);
    json_object_set_new(doc, "SecondaryStatus", json_string(status));
    json_object_set_new(doc, "LastModifiedTime", json_real(now));
}

/* ------------------------------------------------------------ validation */

bool kn_jobs__is_name(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n == 0 || n > max || s[0] == '-' || s[n - 1] == '-')
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '-')
            return false;
    return true;
}

kn_status kn_jobs__name_error(const char *name, const char *member, size_t max, kn_err *e)
{
    if (!name)
        return kn_err_set(e, KN_INVALID,
                          "1 validation error detected: Value null at '%s' failed to satisfy "
                          "constraint: Member must not be null",
                          member);
    if (strlen(name) > max || !*name)
        return kn_err_set(e, KN_INVALID,
                          "1 validation error detected: Value '%.80s%s' at '%s' failed to "
                          "satisfy constraint: Member must have length %s %zu",
                          name, strlen(name) > 80 ? "..." : "", member,
                          *name ? "less than or equal to" : "greater than or equal to",
                          *name ? max : (size_t)1);
    return kn_err_set(e, KN_INVALID,
                      "1 validation error detected: Value '%s' at '%s' failed to satisfy "
                      "constraint: Member must satisfy regular expression pattern: %s",
                      name, member, NAME_PATTERN);
}

kn_status kn_jobs__name_arg(json_t *in, const char *key, size_t max, const char **name,
                            kn_err *e)
{
    *name = sget(in, key);
    if (*name && kn_jobs__is_name(*name, max))
        return KN_OK;
    char member[64];
    snprintf(member, sizeof member, "%c%s", tolower((unsigned char)key[0]), key + 1);
    return kn_jobs__name_error(*name, member, max, e);
}

kn_status kn_jobs__describe(kn_jobs *j, json_t *in, const char *key, size_t max,
                            kn_jobs_get_fn get, json_t **out, kn_err *e)
{
    const char *name;
    json_t *doc;
    kn_status s = kn_jobs__name_arg(in, key, max, &name, e);
    if (s || (s = get(j, name, &doc, e)))
        return s;
    *out = kn_jobs__public(doc);
    json_decref(doc);
    return KN_OK;
}

static kn_status need(json_t *o, const char *k, json_type type, const char *path, json_t **out,
                      bool required, kn_err *e)
{
    json_t *v = json_object_get(o, k);
    *out = NULL;
    if (!v || json_is_null(v)) {
        if (required)
            return kn_err_set(e, KN_INVALID,
                              "1 validation error detected: Value null at '%s' failed to "
                              "satisfy constraint: Member must not be null",
                              path);
        return KN_OK;
    }
    if (json_typeof(v) != type && !(type == JSON_REAL && json_is_integer(v)))
        return kn_err_set(e, KN_SERIALIZATION, "Unexpected type for member %s", path);
    *out = v;
    return KN_OK;
}

static kn_status string_map(json_t *m, const char *path, size_t max_entries, kn_err *e)
{
    if (json_object_size(m) > max_entries)
        return kn_err_set(e, KN_INVALID,
                          "1 validation error detected: Value at '%s' failed to satisfy "
                          "constraint: Member must have length less than or equal to %zu",
                          path, max_entries);
    const char *k;
    json_t *v;
    json_object_foreach(m, k, v)
    {
        if (!json_is_string(v))
            return kn_err_set(e, KN_SERIALIZATION,
                              "Unexpected type for %s.%s: every value is a string", path, k);
        if (strlen(k) > 256 || strlen(json_string_value(v)) > 2500)
            return kn_err_set(e, KN_INVALID,
                              "1 validation error detected: Value at '%s' failed to satisfy "
                              "constraint: Map value must satisfy constraint: [Member must "
                              "have length less than or equal to 2500]",
                              path);
    }
    return KN_OK;
}

/* A local location for a channel or an output path; "" when refused. */
static kn_status resolve_uri(kn_jobs *j, const char *uri, const char *what, char *out, size_t n,
                             kn_err *e)
{
    if (!strncmp(uri, "file://", 7))
        uri += 7;
    if (!strncmp(uri, "kennel://artifacts/", 19)) {
        const char *rel = uri + 19;
        if (strstr(rel, ".."))
            return kn_err_set(e, KN_INVALID, "%s '%s': '..' is not allowed in an artifact path",
                              what, uri);
        snprintf(out, n, "%s/%s", kn_platform_artifacts_dir(j->p), rel);
        return KN_OK;
    }
    if (uri[0] != '/')
        return kn_err_set(e, KN_INVALID,
                          "%s '%s' is not a location kennel can reach: give an absolute local "
                          "path, a file:// URL or kennel://artifacts/<path> (kennel has no S3)",
                          what, uri);
    snprintf(out, n, "%s", uri);
    size_t l = strlen(out);
    while (l > 1 && out[l - 1] == '/')
        out[--l] = 0;
    return KN_OK;
}

/* Multi-instance jobs run their instances as ranks of one mpirun on this
 * machine (data-parallel training; see kennel train --mpi). */
#define KN_MAX_INSTANCES 64

static bool find_mpirun(char out[PATH_MAX])
{
    const char *path = getenv("PATH");
    if (!path || !*path)
        path = "/usr/local/bin:/usr/bin:/bin";
    for (const char *p = path; *p;) {
        const char *c = strchr(p, ':');
        size_t n = c ? (size_t)(c - p) : strlen(p);
        if (n > 0 && n < PATH_MAX - 16) {
            snprintf(out, PATH_MAX, "%.*s/mpirun", (int)n, p);
            if (access(out, X_OK) == 0)
                return true;
        }
        p += n + (c ? 1 : 0);
    }
    return false;
}

static bool builtin_image(const char *image)
{
    return !image || !*image || !strcmp(image, "kennel") || !strncmp(image, "kennel:", 7);
}

static kn_status check_executable(const char *path, const char *member, kn_err *e)
{
    struct stat st;
    if (path[0] != '/')
        return kn_err_set(e, KN_INVALID,
                          "%s '%s' must be an absolute path to a local executable (or 'kennel' "
                          "for the built-in trainer)",
                          member, path);
    if (stat(path, &st) != 0)
        return kn_err_set(e, KN_INVALID, "%s '%s' does not exist: %s", member, path,
                          strerror(errno));
    if (!S_ISREG(st.st_mode) || access(path, X_OK) != 0)
        return kn_err_set(e, KN_INVALID,
                          "%s '%s' is not an executable file (chmod +x it, and give "
                          "scripts a #! line)",
                          member, path);
    return KN_OK;
}

kn_status kn_jobs__training_doc(kn_jobs *j, json_t *in, const char *name, bool tuning_def,
                                json_t **docp, kn_err *e)
{
    *docp = NULL;
    kn_status s;
    json_t *alg, *v, *role, *inputs, *outc, *res, *stopc, *hp, *env;
    const char *pre = tuning_def ? "trainingJobDefinition." : "";
    char path[256];
#define P(m) (snprintf(path, sizeof path, "%s%s", pre, m), path)
    if ((s = need(in, "AlgorithmSpecification", JSON_OBJECT, P("algorithmSpecification"), &alg,
                  true, e)))
        return s;
    if ((s = need(alg, "TrainingInputMode", JSON_STRING,
                  P("algorithmSpecification.trainingInputMode"), &v, true, e)))
        return s;
    const char *mode = json_string_value(v);
    if (strcmp(mode, "File") && strcmp(mode, "FastFile") && strcmp(mode, "Pipe"))
        return kn_err_set(e, KN_INVALID,
                          "1 validation error detected: Value '%s' at "
                          "'%salgorithmSpecification.trainingInputMode' failed to satisfy "
                          "constraint: Member must satisfy enum value set: [Pipe, File, FastFile]",
                          mode, pre);
    if (!strcmp(mode, "Pipe"))
        return kn_err_set(e, KN_INVALID,
                          "TrainingInputMode Pipe is not supported by kennel: use File or "
                          "FastFile (channels are local directories)");
    if ((s = need(alg, "TrainingImage", JSON_STRING, P("algorithmSpecification.trainingImage"),
                  &v, false, e)))
        return s;
    const char *image = v ? json_string_value(v) : NULL;
    if ((s = need(alg, "AlgorithmName", JSON_STRING, P("algorithmSpecification.algorithmName"),
                  &v, false, e)))
        return s;
    if (v)
        return kn_err_set(e, KN_INVALID,
                          "AlgorithmName (marketplace algorithms) is not supported by kennel: "
                          "give TrainingImage ('kennel' or a local executable)");
    json_t *entry = json_object_get(alg, "ContainerEntrypoint");
    json_t *cargs = json_object_get(alg, "ContainerArguments");
    if (entry && (!json_is_array(entry) || json_array_size(entry) < 1 ||
                  json_array_size(entry) > 100))
        return kn_err_set(e, KN_INVALID,
                          "ContainerEntrypoint must be a list of 1 to 100 strings");
    if (cargs && (!json_is_array(cargs) || json_array_size(cargs) > 100))
        return kn_err_set(e, KN_INVALID, "ContainerArguments must be a list of up to 100 strings");
    size_t i;
    json_array_foreach(entry, i, v) if (!json_is_string(v)) return kn_err_set(
        e, KN_SERIALIZATION, "Unexpected type for ContainerEntrypoint member %zu", i + 1);
    json_array_foreach(cargs, i, v) if (!json_is_string(v)) return kn_err_set(
        e, KN_SERIALIZATION, "Unexpected type for ContainerArguments member %zu", i + 1);
    if (entry) {
        if ((s = check_executable(json_string_value(json_array_get(entry, 0)),
                                  "AlgorithmSpecification.ContainerEntrypoint[0]", e)))
            return s;
    } else if (!builtin_image(image)) {
        if ((s = check_executable(image, "AlgorithmSpecification.TrainingImage", e)))
            return s;
    }
    json_t *mdefs = json_object_get(alg, "MetricDefinitions");
    if (mdefs) {
        char *t = json_dumps(mdefs, JSON_COMPACT);
        kn_tune_metrics *m = NULL;
        s = t ? kn_tune_metrics_new(t, strlen(t), &m, e)
              : kn_err_set(e, KN_NOMEM, "out of memory");
        free(t);
        kn_tune_metrics_free(m);
        if (s)
            return kn_err_prefix(e, "AlgorithmSpecification.MetricDefinitions"), s;
    }
    if ((s = need(in, "RoleArn", JSON_STRING, P("roleArn"), &role, true, e)))
        return s;
    if (json_string_length(role) < 20 || json_string_length(role) > 2048)
        return kn_err_set(e, KN_INVALID,
                          "1 validation error detected: Value '%s' at '%sroleArn' failed to "
                          "satisfy constraint: Member must have length greater than or equal "
                          "to 20",
                          json_string_value(role), pre);
    if ((s = need(in, "InputDataConfig", JSON_ARRAY, P("inputDataConfig"), &inputs, false, e)))
        return s;
    if (inputs && (json_array_size(inputs) < 1 || json_array_size(inputs) > 20))
        return kn_err_set(e, KN_INVALID,
                          "1 validation error detected: Value at '%sinputDataConfig' failed to "
                          "satisfy constraint: Member must have length between 1 and 20",
                          pre);
    json_array_foreach(inputs, i, v)
    {
        json_t *cn, *ds, *s3;
        char p2[96];
        snprintf(p2, sizeof p2, "%sinputDataConfig.%zu.member.channelName", pre, i + 1);
        if (!json_is_object(v))
            return kn_err_set(e, KN_SERIALIZATION, "Unexpected type for %s", p2);
        if ((s = need(v, "ChannelName", JSON_STRING, p2, &cn, true, e)))
            return s;
        const char *c = json_string_value(cn);
        bool ok = *c && strlen(c) <= 64;
        for (const char *q = c; *q; q++)
            ok = ok && (isalnum((unsigned char)*q) || *q == '.' || *q == '-' || *q == '_');
        if (!ok)
            return kn_err_set(e, KN_INVALID,
                              "1 validation error detected: Value '%s' at '%s' failed to satisfy "
                              "constraint: Member must satisfy regular expression pattern: "
                              "[A-Za-z0-9\\.\\-_]+",
                              c, p2);
        snprintf(p2, sizeof p2, "%sinputDataConfig.%zu.member.dataSource", pre, i + 1);
        if ((s = need(v, "DataSource", JSON_OBJECT, p2, &ds, true, e)))
            return s;
        s3 = json_object_get(ds, "S3DataSource");
        if (!json_is_object(s3) || !json_is_string(json_object_get(s3, "S3Uri")))
            return kn_err_set(e, KN_INVALID,
                              "channel '%s': DataSource needs S3DataSource.S3Uri (a local "
                              "path, file:// URL or kennel://artifacts/... in kennel)",
                              c);
        char loc[PATH_MAX];
        char what[128];
        snprintf(what, sizeof what, "channel '%s' S3Uri", c);
        if ((s = resolve_uri(j, json_string_value(json_object_get(s3, "S3Uri")), what, loc,
                             sizeof loc, e)))
            return s;
    }
    if ((s = need(in, "OutputDataConfig", JSON_OBJECT, P("outputDataConfig"), &outc, true, e)))
        return s;
    if ((s = need(outc, "S3OutputPath", JSON_STRING, P("outputDataConfig.s3OutputPath"), &v,
                  true, e)))
        return s;
    char outdir[PATH_MAX];
    if ((s = resolve_uri(j, json_string_value(v), "OutputDataConfig.S3OutputPath", outdir,
                         sizeof outdir, e)))
        return s;
    if ((s = need(in, "ResourceConfig", JSON_OBJECT, P("resourceConfig"), &res, true, e)))
        return s;
    if ((s = need(res, "InstanceType", JSON_STRING, P("resourceConfig.instanceType"), &v, false,
                  e)))
        return s;
    const char *itype = v ? json_string_value(v) : "ml.m5.large";
    if (!kn_instance_type_find(itype))
        return kn_err_set(e, KN_INVALID,
                          "1 validation error detected: Value '%s' at '%sresourceConfig."
                          "instanceType' failed to satisfy constraint: kennel offers no such "
                          "instance type (see kennel server --help for the table)",
                          itype, pre);
    json_t *cnt = json_object_get(res, "InstanceCount");
    if (cnt && (!json_is_integer(cnt) || json_integer_value(cnt) < 1))
        return kn_err_set(e, KN_INVALID,
                          "1 validation error detected: Value '%s' at '%sresourceConfig."
                          "instanceCount' failed to satisfy constraint: Member must have value "
                          "greater than or equal to 1",
                          json_is_integer(cnt) ? "0" : "?", pre);
    if (cnt && json_integer_value(cnt) > KN_MAX_INSTANCES)
        return kn_err_set(e, KN_INVALID,
                          "1 validation error detected: Value '%lld' at '%sresourceConfig."
                          "instanceCount' failed to satisfy constraint: kennel runs at most %d "
                          "instances (MPI ranks) per training job",
                          (long long)json_integer_value(cnt), pre, KN_MAX_INSTANCES);
    char mpirun[PATH_MAX];
    if (cnt && json_integer_value(cnt) > 1 && (!kn_train_mpi_built() || !find_mpirun(mpirun)))
        return kn_err_set(e, KN_INVALID,
                          "ResourceConfig.InstanceCount %lld: multi-instance training runs the "
                          "instances as MPI ranks, and %s - install libopenmpi-dev and "
                          "openmpi-bin and rebuild kennel, or use InstanceCount 1",
                          (long long)json_integer_value(cnt),
                          !kn_train_mpi_built() ? "this kennel was built without MPI"
                                                : "mpirun is not on the PATH");
    if ((s = need(in, "StoppingCondition", JSON_OBJECT, P("stoppingCondition"), &stopc,
                  !tuning_def, e)))
        return s;
    json_t *mrt = json_object_get(stopc, "MaxRuntimeInSeconds");
    if (mrt && (!json_is_integer(mrt) || json_integer_value(mrt) < 1))
        return kn_err_set(e, KN_INVALID,
                          "1 validation error detected: Value at '%sstoppingCondition."
                          "maxRuntimeInSeconds' failed to satisfy constraint: Member must have "
                          "value greater than or equal to 1",
                          pre);
    const char *hpkey = tuning_def ? "StaticHyperParameters" : "HyperParameters";
    if ((s = need(in, hpkey, JSON_OBJECT, P(tuning_def ? "staticHyperParameters" : "hyperParameters"),
                  &hp, false, e)))
        return s;
    if (hp && (s = string_map(hp, path, 100, e)))
        return s;
    if ((s = need(in, "Environment", JSON_OBJECT, P("environment"), &env, false, e)))
        return s;
    if (env && (s = string_map(env, path, tuning_def ? 48 : 100, e)))
        return s;
#undef P

    double now = kn_jobs__now(j);
    char arn[512];
    kn_registry_arn(j->reg, "sagemaker", "training-job", name ? name : "", arn, sizeof arn);
    json_t *doc = json_object();
    if (name) {
        json_object_set_new(doc, "TrainingJobName", json_string(name));
        json_object_set_new(doc, "TrainingJobArn", json_string(arn));
    }
    json_object_set(doc, "AlgorithmSpecification", alg);
    json_object_set(doc, "RoleArn", role);
    if (inputs)
        json_object_set(doc, "InputDataConfig", inputs);
    json_object_set(doc, "OutputDataConfig", outc);
    json_t *rc = json_deep_copy(res);
    json_object_set_new(rc, "InstanceType", json_string(itype));
    if (!json_object_get(rc, "InstanceCount"))
        json_object_set_new(rc, "InstanceCount", json_integer(1));
    if (!json_object_get(rc, "VolumeSizeInGB"))
        json_object_set_new(rc, "VolumeSizeInGB", json_integer(30));
    json_object_set_new(doc, "ResourceConfig", rc);
    json_object_set_new(doc, "StoppingCondition",
                        stopc ? json_deep_copy(stopc)
                              : json_pack("{s:i}", "MaxRuntimeInSeconds", 86400));
    json_object_set_new(doc, "HyperParameters", hp ? json_deep_copy(hp) : json_object());
    if (env)
        json_object_set(doc, "Environment", env);
    json_object_set_new(doc, "EnableNetworkIsolation", json_false());
    json_object_set_new(doc, "EnableInterContainerTrafficEncryption", json_false());
    json_object_set_new(doc, "EnableManagedSpotTraining", json_false());
    json_object_set_new(doc, "TrainingJobStatus", json_string("InProgress"));
    json_object_set_new(doc, "CreationTime", json_real(now));
    json_object_set_new(doc, "LastModifiedTime", json_real(now));
    json_object_set_new(doc, "ModelArtifacts", json_pack("{s:s}", "S3ModelArtifacts", ""));
    json_t *k = kn_of(doc);
    json_object_set_new(k, "output_dir", json_string(outdir));
    json_object_set_new(k, "series", json_object());
    *docp = doc;
    return KN_OK;
}

/* ---------------------------------------------------------------- runs */

kn_run *kn_jobs__run_find(kn_jobs *j, const char *name)
{
    for (kn_run *r = j->runs; r; r = r->next)
        if (!strcasecmp(r->name, name))
            return r;
    return NULL;
}

kn_run *kn_jobs__run_add(kn_jobs *j, json_t *doc, kn_tuning *t, int trial)
{
    kn_run *r = calloc(1, sizeof *r);
    if (!r) {
        json_decref(doc);
        return NULL;
    }
    snprintf(r->name, sizeof r->name, "%s", sget(doc, "TrainingJobName"));
    r->doc = doc;
    r->tuning = t;
    r->trial = trial;
    r->out_fd = -1;
    snprintf(r->dir, sizeof r->dir, "%s/%s", j->root, r->name);
    r->next = j->runs;
    j->runs = r;
    return r;
}

static void run_free(kn_run *r)
{
    if (r->out_fd >= 0)
        close(r->out_fd);
    if (r->log)
        fclose(r->log);
    kn_tune_metrics_free(r->metrics);
    json_decref(r->doc);
    free(r);
}

static void store_run(kn_jobs *j, kn_run *r)
{
    kn_err e;
    kn_err_clear(&e);
    if (kn_jobs__store(j, KN_JOB_TRAINING, r->doc, false, &e))
        kn_log(KN_LOG_ERROR, "training job %s: cannot store: %s", r->name, e.msg);
    r->dirty = false;
    r->stored_ns = real_ns();
}

static void metric_cb(int metric, double value, void *arg)
{
    void **a = arg;
    kn_run *r = a[0];
    kn_jobs *j = a[1];
    const char *name = kn_tune_metrics_name(r->metrics, metric);
    json_t *series = json_object_get(kn_of(r->doc), "series");
    json_t *s = json_object_get(series, name);
    if (!s) {
        s = json_array();
        json_object_set_new(series, name, s);
    }
    double now = kn_jobs__now(j);
    if (json_array_size(s) < MAX_SERIES)
        json_array_append_new(s, json_pack("[f,f]", now, value));
    json_t *fl = json_object_get(r->doc, "FinalMetricDataList");
    if (!fl) {
        fl = json_array();
        json_object_set_new(r->doc, "FinalMetricDataList", fl);
    }
    size_t i;
    json_t *it = NULL, *x;
    json_array_foreach(fl, i, x) if (!strcmp(sget(x, "MetricName"), name)) it = x;
    if (!it) {
        it = json_object();
        json_object_set_new(it, "MetricName", json_string(name));
        json_array_append_new(fl, it);
    }
    json_object_set_new(it, "Value", json_real(value));
    json_object_set_new(it, "Timestamp", json_real(now));
    r->dirty = true;
}

static void on_line(kn_jobs *j, kn_run *r, const char *line, size_t len)
{
    while (len && (line[len - 1] == '\r' || line[len - 1] == '\n'))
        len--;
    if (len) {
        /* a progress bar rewrites itself with \r: the last segment counts */
        size_t k = len;
        while (k && line[k - 1] != '\r')
            k--;
        snprintf(r->last_line, sizeof r->last_line, "%.*s", (int)(len - k), line + k);
    }
    if (r->metrics) {
        void *a[2] = {r, j};
        kn_tune_metrics_scan(r->metrics, line, len, metric_cb, a);
    }
}

static void drain(kn_jobs *j, kn_run *r)
{
    char buf[16384];
    for (;;) {
        ssize_t n = read(r->out_fd, buf, sizeof buf);
        if (n <= 0)
            break;
        if (r->log)
            fwrite(buf, 1, (size_t)n, r->log);
        for (ssize_t i = 0; i < n; i++) {
            char c = buf[i];
            if (c == '\n' || r->line_len == sizeof r->line - 1) {
                on_line(j, r, r->line, r->line_len);
                r->line_len = 0;
                if (c == '\n')
                    continue;
            }
            r->line[r->line_len++] = c;
        }
    }
    if (r->log)
        fflush(r->log);
}

static kn_status write_text(const char *path, const char *text, kn_err *e)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return kn_err_set(e, KN_IO, "cannot write %s: %s", path, strerror(errno));
    fputs(text, f);
    if (fclose(f) != 0)
        return kn_err_set(e, KN_IO, "cannot write %s: %s", path, strerror(errno));
    return KN_OK;
}

static kn_status write_json(const char *path, json_t *v, kn_err *e)
{
    char *t = json_dumps(v, JSON_INDENT(2) | JSON_SORT_KEYS);
    if (!t)
        return kn_err_set(e, KN_NOMEM, "out of memory");
    kn_status s = write_text(path, t, e);
    free(t);
    return s;
}

static void rm_rf(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        struct dirent *de;
        while (d && (de = readdir(d))) {
            if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
                continue;
            char sub[PATH_MAX];
            snprintf(sub, sizeof sub, "%.3000s/%s", path, de->d_name);
            rm_rf(sub);
        }
        if (d)
            closedir(d);
        rmdir(path);
    } else {
        unlink(path);
    }
}

/* "Downloading": the SM root — configuration files and the channels. */
static kn_status prepare(kn_jobs *j, kn_run *r, kn_err *e)
{
    char p[PATH_MAX + 64];
    kn_status s;
    /* a restarted trial starts from a clean root, keeping nothing half-written */
    char keep_log[PATH_MAX + 16];
    snprintf(keep_log, sizeof keep_log, "%s/log", r->dir);
    static const char *const sub[] = {"input", "model", "output"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/%s", r->dir, sub[i]);
        rm_rf(p);
    }
    static const char *const dirs[] = {"input/config", "input/data", "model", "output/data"};
    for (size_t i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s/%s", r->dir, dirs[i]);
        if ((s = kn_mkdirs(p, 0755, e)))
            return s;
    }
    snprintf(p, sizeof p, "%s/input/config/hyperparameters.json", r->dir);
    if ((s = write_json(p, json_object_get(r->doc, "HyperParameters"), e)))
        return s;
    json_t *hl = json_array();
    json_t *ic = json_object_get(json_object_get(r->doc, "ResourceConfig"), "InstanceCount");
    for (long long q = 1; q <= (ic && json_integer_value(ic) > 1 ? json_integer_value(ic) : 1);
         q++) {
        char h[32];
        snprintf(h, sizeof h, "algo-%lld", q);
        json_array_append_new(hl, json_string(h));
    }
    /* one file for every rank: current_host names the first (SM_CURRENT_HOST
     * is each rank's own) */
    json_t *rc = json_pack("{s:s, s:o, s:s}", "current_host", "algo-1", "hosts", hl,
                           "network_interface_name", "eth0");
    snprintf(p, sizeof p, "%s/input/config/resourceconfig.json", r->dir);
    s = write_json(p, rc, e);
    json_decref(rc);
    if (s)
        return s;
    json_t *idc = json_object();
    json_t *inputs = json_object_get(r->doc, "InputDataConfig");
    size_t i;
    json_t *c;
    json_array_foreach(inputs, i, c)
    {
        const char *cn = sget(c, "ChannelName");
        const char *uri = sget(json_object_get(json_object_get(c, "DataSource"), "S3DataSource"),
                               "S3Uri");
        char loc[PATH_MAX];
        if ((s = resolve_uri(j, uri, "S3Uri", loc, sizeof loc, e)))
            break;
        struct stat st;
        if (stat(loc, &st) != 0) {
            s = kn_err_set(e, KN_INVALID,
                           "ClientError: channel '%s': %s does not exist (%s) - give the data "
                           "set's location in InputDataConfig",
                           cn, loc, strerror(errno));
            break;
        }
        snprintf(p, sizeof p, "%s/input/data/%s", r->dir, cn);
        if (symlink(loc, p) != 0) {
            s = kn_err_set(e, KN_IO, "cannot link channel %s: %s", cn, strerror(errno));
            break;
        }
        json_object_set_new(idc, cn,
                            json_pack("{s:s, s:s, s:s}", "TrainingInputMode", "File",
                                      "S3DistributionType", "FullyReplicated",
                                      "RecordWrapperType", "None"));
    }
    if (!s) {
        snprintf(p, sizeof p, "%s/input/config/inputdataconfig.json", r->dir);
        s = write_json(p, idc, e);
    }
    json_decref(idc);
    return s;
}

static char *envdup(const char *k, const char *v)
{
    char *s = NULL;
    if (asprintf(&s, "%s=%s", k, v) < 0)
        return NULL;
    return s;
}

static void upper_name(char *dst, size_t n, const char *prefix, const char *name)
{
    size_t k = (size_t)snprintf(dst, n, "%s", prefix);
    for (const char *c = name; *c && k + 1 < n; c++)
        dst[k++] = isalnum((unsigned char)*c) ? (char)toupper((unsigned char)*c) : '_';
    dst[k] = 0;
}

/* Forks and execs the job's process ("Training"). */
static kn_status launch(kn_jobs *j, kn_run *r, kn_err *e)
{
    json_t *doc = r->doc;
    json_t *alg = json_object_get(doc, "AlgorithmSpecification");
    const kn_instance_type *it =
        kn_instance_type_find(sget(json_object_get(doc, "ResourceConfig"), "InstanceType"));
    int vcpu = it ? it->vcpu : 2;
    long mem_mib = it ? it->memory_mib : 8192;
    json_t *jcnt = json_object_get(json_object_get(doc, "ResourceConfig"), "InstanceCount");
    int ninst = jcnt && json_integer_value(jcnt) > 1 ? (int)json_integer_value(jcnt) : 1;
    /* the instances share this machine's cores: each rank gets its share of
     * the instance type's vCPUs, at least one */
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    int per = vcpu;
    if (ninst > 1) {
        int cores = ncpu > 0 && ncpu < vcpu * ninst ? (int)ncpu : vcpu * ninst;
        per = cores / ninst > 0 ? cores / ninst : 1;
    }
    char threads[16];
    snprintf(threads, sizeof threads, "%d", per);

    /* argv */
    char *argv[220];
    int ac = 0;
    kn_status s = KN_OK;
    json_t *entry = json_object_get(alg, "ContainerEntrypoint");
    json_t *cargs = json_object_get(alg, "ContainerArguments");
    const char *image = sget(alg, "TrainingImage");
    size_t i;
    json_t *v;
    if (entry) {
        json_array_foreach(entry, i, v) argv[ac++] = (char *)json_string_value(v);
        json_array_foreach(cargs, i, v) argv[ac++] = (char *)json_string_value(v);
    } else if (builtin_image(image)) {
        argv[ac++] = j->bin;
        argv[ac++] = "train";
        argv[ac++] = "--sm-root";
        argv[ac++] = r->dir;
        argv[ac++] = "--threads";
        argv[ac++] = threads;
        argv[ac++] = "--no-progress";
    } else {
        argv[ac++] = (char *)image;
        argv[ac++] = "train";
        json_array_foreach(cargs, i, v) argv[ac++] = (char *)json_string_value(v);
    }
    argv[ac] = NULL;

    /* several instances: one mpirun on loopback, one application context
     * per rank so each gets its own SM_CURRENT_HOST (algo-1 ... algo-N) */
    char **mpi_argv = NULL, **mpi_own = NULL, mpirun[PATH_MAX], hosts[16 * KN_MAX_INSTANCES];
    int mpi_no = 0;
    snprintf(hosts, sizeof hosts, "[\"algo-1\"]");
    if (ninst > 1) {
        if (!find_mpirun(mpirun))
            return kn_err_set(e, KN_IO, "ClientError: InstanceCount %d needs mpirun (apt-get "
                              "install openmpi-bin)", ninst);
        size_t hl = 0;
        for (int q = 0; q < ninst; q++)
            hl += (size_t)snprintf(hosts + hl, sizeof hosts - hl, "%s\"algo-%d\"%s",
                                   q ? "," : "[", q + 1, q == ninst - 1 ? "]" : "");
        mpi_argv = calloc((size_t)(16 + ninst * (ac + 5)), sizeof *mpi_argv);
        mpi_own = calloc((size_t)ninst + 1, sizeof *mpi_own);
        if (!mpi_argv || !mpi_own) {
            free(mpi_argv);
            free(mpi_own);
            return kn_err_set(e, KN_NOMEM, "out of memory");
        }
        int m = 0;
        mpi_argv[m++] = mpirun;
        if (geteuid() == 0)
            mpi_argv[m++] = "--allow-run-as-root";
        static char *const fixed[] = {"--oversubscribe", "--bind-to", "none", "--mca", "btl",
                                      "self,vader", "--mca", "oob_tcp_if_include", "lo"};
        for (size_t q = 0; q < sizeof fixed / sizeof *fixed; q++)
            mpi_argv[m++] = fixed[q];
        for (int q = 0; q < ninst; q++) {
            if (q)
                mpi_argv[m++] = ":";
            mpi_argv[m++] = "-np";
            mpi_argv[m++] = "1";
            mpi_argv[m++] = "/usr/bin/env";
            if (asprintf(&mpi_own[mpi_no], "SM_CURRENT_HOST=algo-%d", q + 1) < 0) {
                for (int f = 0; f < mpi_no; f++)
                    free(mpi_own[f]);
                free(mpi_own);
                free(mpi_argv);
                return kn_err_set(e, KN_NOMEM, "out of memory");
            }
            mpi_argv[m++] = mpi_own[mpi_no++];
            for (int a = 0; a < ac; a++)
                mpi_argv[m++] = argv[a];
        }
        mpi_argv[m] = NULL;
    }
    char **run_argv = mpi_argv ? mpi_argv : argv;

    /* environment: ours, minus what the contract sets */
    size_t ne = 0;
    while (environ[ne])
        ne++;
    json_t *uenv = json_object_get(doc, "Environment");
    json_t *hp = json_object_get(doc, "HyperParameters");
    json_t *inputs = json_object_get(doc, "InputDataConfig");
    size_t cap = ne + 40 + json_object_size(uenv) + json_object_size(hp) + json_array_size(inputs);
    char **envp = calloc(cap + 1, sizeof *envp);
    char **own = calloc(cap + 1, sizeof *own);
    int no = 0;
    size_t k = 0;
    if (!envp || !own) {
        s = kn_err_set(e, KN_NOMEM, "out of memory");
        goto out;
    }
    for (size_t q = 0; q < ne; q++)
        if (strncmp(environ[q], "OMP_NUM_THREADS=", 16) && strncmp(environ[q], "SM_", 3) &&
            strncmp(environ[q], "TRAINING_JOB_", 13))
            envp[k++] = environ[q];
    char buf[PATH_MAX + 64];
#define ADD(key, val)                                                                        \
    do {                                                                                     \
        char *x_ = envdup(key, val);                                                         \
        if (!x_) {                                                                           \
            s = kn_err_set(e, KN_NOMEM, "out of memory");                                    \
            goto out;                                                                        \
        }                                                                                    \
        own[no++] = x_;                                                                      \
        envp[k++] = x_;                                                                      \
    } while (0)
    ADD("OMP_NUM_THREADS", threads);
    ADD("SM_NUM_CPUS", threads);
    ADD("SM_NUM_GPUS", "0");
    ADD("SM_CURRENT_HOST", "algo-1"); /* each rank's own under mpirun */
    ADD("SM_HOSTS", hosts);
    ADD("SM_LOG_LEVEL", "20");
    ADD("SM_NETWORK_INTERFACE_NAME", "eth0");
    ADD("TRAINING_JOB_NAME", r->name);
    ADD("TRAINING_JOB_ARN", sget(doc, "TrainingJobArn"));
    snprintf(buf, sizeof buf, "%s/model", r->dir);
    ADD("SM_MODEL_DIR", buf);
    snprintf(buf, sizeof buf, "%s/input", r->dir);
    ADD("SM_INPUT_DIR", buf);
    snprintf(buf, sizeof buf, "%s/input/config", r->dir);
    ADD("SM_INPUT_CONFIG_DIR", buf);
    snprintf(buf, sizeof buf, "%s/output", r->dir);
    ADD("SM_OUTPUT_DIR", buf);
    snprintf(buf, sizeof buf, "%s/output/data", r->dir);
    ADD("SM_OUTPUT_DATA_DIR", buf);
    char *hps = json_dumps(hp, JSON_COMPACT | JSON_SORT_KEYS);
    if (hps) {
        char *x = envdup("SM_HPS", hps);
        free(hps);
        if (x) {
            own[no++] = x;
            envp[k++] = x;
        }
    }
    json_t *chans = json_array();
    json_array_foreach(inputs, i, v)
    {
        const char *cn = sget(v, "ChannelName");
        json_array_append_new(chans, json_string(cn));
        char key[128];
        upper_name(key, sizeof key, "SM_CHANNEL_", cn);
        snprintf(buf, sizeof buf, "%s/input/data/%s", r->dir, cn);
        ADD(key, buf);
    }
    char *cl = json_dumps(chans, JSON_COMPACT);
    json_decref(chans);
    if (cl) {
        char *x = envdup("SM_CHANNELS", cl);
        free(cl);
        if (x) {
            own[no++] = x;
            envp[k++] = x;
        }
    }
    const char *key;
    json_object_foreach(hp, key, v)
    {
        char ek[300];
        upper_name(ek, sizeof ek, "SM_HP_", key);
        ADD(ek, json_string_value(v));
    }
    /* OpenMP threads that sleep rather than spin between parallel regions,
     * as for endpoint instances (fleet.c), unless the daemon's environment
     * or the job's Environment says otherwise: a tuning job runs trials side
     * by side, and two spinning 2-thread trials on 2 cores took 5x as long
     * to extract their features (bench/tune_bench.sh) */
    bool wait_policy = json_object_get(uenv, "OMP_WAIT_POLICY") != NULL;
    for (size_t q = 0; q < ne && !wait_policy; q++)
        wait_policy = strncmp(environ[q], "OMP_WAIT_POLICY=", 16) == 0;
    if (!wait_policy)
        ADD("OMP_WAIT_POLICY", "PASSIVE");
    json_object_foreach(uenv, key, v) ADD(key, json_string_value(v));
#undef ADD
    envp[k] = NULL;

    snprintf(buf, sizeof buf, "%s/log", r->dir);
    r->log = fopen(buf, "a");
    if (!r->log) {
        s = kn_err_set(e, KN_IO, "cannot open %s: %s", buf, strerror(errno));
        goto out;
    }
    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC) != 0) {
        s = kn_err_set(e, KN_IO, "pipe: %s", strerror(errno));
        goto out;
    }
    struct rlimit lim = {.rlim_cur = (rlim_t)mem_mib << 20, .rlim_max = (rlim_t)mem_mib << 20};
    sigset_t none;
    sigemptyset(&none);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        /* async-signal-safe calls only until exec */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        setpgid(0, 0);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGPIPE, SIG_DFL);
#ifndef __SANITIZE_ADDRESS__
        /* (a sanitizer build's own shadow mappings count against
         * RLIMIT_DATA: there the bound would stop every process at start) */
        setrlimit(RLIMIT_DATA, &lim);
#else
        (void)lim;
#endif
        if (chdir(r->dir) != 0)
            _exit(127);
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull >= 0)
            dup2(devnull, 0);
        dup2(pfd[1], 1);
        dup2(pfd[1], 2);
        syscall(SYS_close_range, 3u, ~0u, 0u);
        execve(run_argv[0], run_argv, envp);
        static const char msg[] = "cannot execute the training entry point\n";
        ssize_t w = write(2, msg, sizeof msg - 1);
        (void)w;
        _exit(127);
    }
    int err = errno;
    close(pfd[1]);
    if (pid < 0) {
        close(pfd[0]);
        s = kn_err_set(e, KN_IO, "fork: %s", strerror(err));
        goto out;
    }
    fcntl(pfd[0], F_SETFL, O_NONBLOCK);
    r->out_fd = pfd[0];
    r->pid = pid;
    if (ninst > 1)
        kn_log(KN_LOG_INFO, "training job %s: started (mpirun pid %ld, %d instances x %d "
               "threads)", r->name, (long)pid, ninst, per);
    else
        kn_log(KN_LOG_INFO, "training job %s: started (pid %ld, %d threads)", r->name,
               (long)pid, per);
out:
    if (own)
        for (int q = 0; q < no; q++)
            free(own[q]);
    free(own);
    free(envp);
    for (int q = 0; q < mpi_no; q++)
        free(mpi_own[q]);
    free(mpi_own);
    free(mpi_argv);
    return s;
}

/* Writes dir's tree into a gzip'd tar (paths relative to dir). */
static kn_status tar_add(struct archive *a, const char *root, const char *rel, kn_err *e)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s%s%s", root, *rel ? "/" : "", rel);
    DIR *d = opendir(path);
    if (!d)
        return kn_err_set(e, KN_IO, "cannot read %s: %s", path, strerror(errno));
    struct dirent *de;
    kn_status s = KN_OK;
    while (!s && (de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        char r2[PATH_MAX], full[PATH_MAX + 8];
        snprintf(r2, sizeof r2, "%.2000s%s%s", rel, *rel ? "/" : "", de->d_name);
        snprintf(full, sizeof full, "%.2000s/%.2000s", root, r2);
        struct stat st;
        if (stat(full, &st) != 0)
            continue;
        struct archive_entry *en = archive_entry_new();
        archive_entry_set_pathname(en, r2);
        archive_entry_set_mtime(en, st.st_mtime, 0);
        if (S_ISDIR(st.st_mode)) {
            archive_entry_set_filetype(en, AE_IFDIR);
            archive_entry_set_perm(en, 0755);
            archive_write_header(a, en);
            archive_entry_free(en);
            s = tar_add(a, root, r2, e);
            continue;
        }
        if (!S_ISREG(st.st_mode)) {
            archive_entry_free(en);
            continue;
        }
        archive_entry_set_filetype(en, AE_IFREG);
        archive_entry_set_perm(en, 0644);
        archive_entry_set_size(en, st.st_size);
        if (archive_write_header(a, en) != ARCHIVE_OK)
            s = kn_err_set(e, KN_IO, "tar: %s", archive_error_string(a));
        archive_entry_free(en);
        FILE *f = s ? NULL : fopen(full, "rb");
        char buf[65536];
        size_t n;
        while (f && (n = fread(buf, 1, sizeof buf, f)) > 0)
            archive_write_data(a, buf, n);
        if (f)
            fclose(f);
    }
    closedir(d);
    return s;
}

static kn_status copy_file(const char *from, const char *to, kn_err *e)
{
    FILE *in = fopen(from, "rb");
    if (!in)
        return kn_err_set(e, KN_IO, "cannot read %s: %s", from, strerror(errno));
    FILE *out = fopen(to, "wb");
    if (!out) {
        fclose(in);
        return kn_err_set(e, KN_IO, "cannot write %s: %s", to, strerror(errno));
    }
    char buf[65536];
    size_t n;
    bool ok = true;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        ok = ok && fwrite(buf, 1, n, out) == n;
    fclose(in);
    ok = (fclose(out) == 0) && ok;
    return ok ? KN_OK : kn_err_set(e, KN_IO, "cannot write %s", to);
}

/* "Uploading": <model dir> -> <output>/<job>/output/model.tar.gz. The
 * built-in trainer already packed its package as model.tar.gz: that file
 * is the artifact; anything else is packed as found. */
static kn_status upload(kn_jobs *j, kn_run *r, kn_err *e)
{
    (void)j;
    const char *outdir = sget(kn_of(r->doc), "output_dir");
    char dst[PATH_MAX + 128], md[PATH_MAX + 16], pk[PATH_MAX + 32], js[PATH_MAX + 32];
    snprintf(dst, sizeof dst, "%s/%s/output", outdir, r->name);
    kn_status s = kn_mkdirs(dst, 0755, e);
    if (s)
        return s;
    snprintf(dst, sizeof dst, "%s/%s/output/model.tar.gz", outdir, r->name);
    snprintf(md, sizeof md, "%s/model", r->dir);
    snprintf(pk, sizeof pk, "%s/model.tar.gz", md);
    snprintf(js, sizeof js, "%s/model.json", md);
    if (access(pk, R_OK) == 0 && access(js, R_OK) == 0) {
        s = copy_file(pk, dst, e);
    } else {
        struct archive *a = archive_write_new();
        archive_write_add_filter_gzip(a);
        archive_write_set_format_pax_restricted(a);
        if (archive_write_open_filename(a, dst) != ARCHIVE_OK)
            s = kn_err_set(e, KN_IO, "cannot write %s: %s", dst, archive_error_string(a));
        else
            s = tar_add(a, md, "", e);
        if (archive_write_close(a) != ARCHIVE_OK && !s)
            s = kn_err_set(e, KN_IO, "cannot write %s: %s", dst, archive_error_string(a));
        archive_write_free(a);
    }
    if (s)
        return s;
    const char *given = sget(json_object_get(r->doc, "OutputDataConfig"), "S3OutputPath");
    char url[PATH_MAX + 256];
    size_t gl = strlen(given);
    while (gl > 1 && given[gl - 1] == '/')
        gl--;
    if (!strncmp(given, "kennel://", 9) || !strncmp(given, "file://", 7))
        snprintf(url, sizeof url, "%.*s/%s/output/model.tar.gz", (int)gl, given, r->name);
    else
        snprintf(url, sizeof url, "file://%s", dst);
    json_object_set_new(r->doc, "ModelArtifacts", json_pack("{s:s}", "S3ModelArtifacts", url));
    return KN_OK;
}

static const char *signame(int sig)
{
    switch (sig) {
    case SIGKILL:
        return "SIGKILL";
    case SIGTERM:
        return "SIGTERM";
    case SIGSEGV:
        return "SIGSEGV";
    case SIGABRT:
        return "SIGABRT";
    case SIGBUS:
        return "SIGBUS";
    case SIGINT:
        return "SIGINT";
    default:
        return "a signal";
    }
}

static void finish(kn_jobs *j, kn_run *r, const char *status, const char *secondary,
                   const char *msg, const char *reason)
{
    double now = kn_jobs__now(j);
    json_t *doc = r->doc;
    json_object_set_new(doc, "TrainingJobStatus", json_string(status));
    if (reason)
        json_object_set_new(doc, "FailureReason", json_string(reason));
    kn_jobs__set_secondary(j, doc, secondary, msg);
    json_object_set_new(doc, "TrainingEndTime", json_real(now));
    json_t *st = json_object_get(doc, "TrainingStartTime");
    long secs = st ? (long)ceil(now - json_number_value(st)) : 0;
    json_object_set_new(doc, "TrainingTimeInSeconds", json_integer(secs));
    json_object_set_new(doc, "BillableTimeInSeconds", json_integer(secs));
    r->done = true;
    if (r->tuning)
        kn_jobs__tuning_child_done(j, r->tuning, r);
    store_run(j, r);
    kn_log(KN_LOG_INFO, "training job %s: %s%s%s", r->name, status, reason ? ": " : "",
           reason ? reason : "");
}

static void fail_early(kn_jobs *j, kn_run *r, const char *why)
{
    char reason[1100];
    snprintf(reason, sizeof reason, "%.1024s", why);
    finish(j, r, "Failed", "Failed", "Training job failed", reason);
}

static void exited(kn_jobs *j, kn_run *r, int wst)
{
    drain(j, r);
    if (r->line_len) {
        on_line(j, r, r->line, r->line_len);
        r->line_len = 0;
    }
    close(r->out_fd);
    r->out_fd = -1;
    r->pid = 0;
    bool ok = WIFEXITED(wst) && WEXITSTATUS(wst) == 0;
    if (r->stop) {
        kn_err e;
        kn_err_clear(&e);
        if (ok || r->early_stopped || !strcmp(r->stop_status, "MaxRuntimeExceeded")) {
            /* AWS keeps what the job saved by the time it stopped */
            kn_jobs__set_secondary(j, r->doc, "Uploading", "Uploading generated training model");
            upload(j, r, &e);
        }
        const char *msg = !strcmp(r->stop_status, "MaxRuntimeExceeded")
                              ? "Training job stopped: MaxRuntimeInSeconds exceeded"
                              : "Training job stopped";
        finish(j, r, "Stopped", r->stop_status, msg, NULL);
        return;
    }
    if (ok) {
        kn_jobs__set_secondary(j, r->doc, "Uploading", "Uploading generated training model");
        kn_err e;
        kn_err_clear(&e);
        if (upload(j, r, &e)) {
            char why[1200];
            snprintf(why, sizeof why, "InternalServerError: uploading the model failed: %s",
                     e.msg);
            fail_early(j, r, why);
            return;
        }
        finish(j, r, "Completed", "Completed", "Training job completed", NULL);
        return;
    }
    char path[PATH_MAX + 32], why[1400];
    snprintf(path, sizeof path, "%s/output/failure", r->dir);
    kn_buf b;
    kn_buf_init(&b, 4096);
    kn_err e;
    kn_err_clear(&e);
    if (kn_file_read(path, &b, &e) == KN_OK && b.len) {
        char text[1100];
        snprintf(text, sizeof text, "%.*s", (int)(b.len < 1024 ? b.len : 1024), (char *)b.data);
        text[strcspn(text, "\0")] = 0;
        size_t l = strlen(text);
        while (l && (text[l - 1] == '\n' || text[l - 1] == ' '))
            text[--l] = 0;
        snprintf(why, sizeof why, "AlgorithmError: %s", text);
    } else if (WIFSIGNALED(wst)) {
        snprintf(why, sizeof why,
                 "AlgorithmError: the training process was killed by signal %d (%s)%s%s",
                 WTERMSIG(wst), signame(WTERMSIG(wst)),
                 WTERMSIG(wst) == SIGKILL ? " - killed from outside, or out of memory for "
                                            "the instance type"
                                          : "",
                 "");
    } else {
        snprintf(why, sizeof why,
                 "AlgorithmError: the training process exited with status %d%s%.512s",
                 WIFEXITED(wst) ? WEXITSTATUS(wst) : -1, r->last_line[0] ? "; last output: " : "",
                 r->last_line);
    }
    kn_buf_deinit(&b);
    fail_early(j, r, why);
}

void kn_jobs__run_stop(kn_jobs *j, kn_run *r, const char *secondary)
{
    if (r->stop || r->done)
        return;
    r->stop = true;
    r->stop_status = secondary;
    json_object_set_new(r->doc, "TrainingJobStatus", json_string("Stopping"));
    kn_jobs__set_secondary(j, r->doc, "Stopping", "Stopping the training job");
    r->dirty = true;
    store_run(j, r);
    if (r->pid > 0) {
        kill(-r->pid, SIGTERM);
        kill(r->pid, SIGTERM);
        r->term_ns = kn_clock_mono_ns(j->clock) + 1;
    }
}

static void start_run(kn_jobs *j, kn_run *r)
{
    kn_err e;
    kn_err_clear(&e);
    kn_jobs__set_secondary(j, r->doc, "Downloading", "Downloading input data");
    store_run(j, r);
    json_t *mdefs = json_object_get(json_object_get(r->doc, "AlgorithmSpecification"),
                                    "MetricDefinitions");
    if (mdefs) {
        char *t = json_dumps(mdefs, JSON_COMPACT);
        if (!t || kn_tune_metrics_new(t, strlen(t), &r->metrics, &e)) {
            free(t);
            fail_early(j, r, e.msg);
            return;
        }
        free(t);
    }
    if (prepare(j, r, &e) || (kn_jobs__set_secondary(j, r->doc, "Training",
                                                      "Training image download completed. "
                                                      "Training in progress."),
                              json_object_set_new(r->doc, "TrainingStartTime",
                                                  json_real(kn_jobs__now(j))),
                              launch(j, r, &e))) {
        fail_early(j, r, e.msg);
        return;
    }
    json_t *mrt = json_object_get(json_object_get(r->doc, "StoppingCondition"),
                                  "MaxRuntimeInSeconds");
    if (mrt)
        r->deadline_ns =
            kn_clock_mono_ns(j->clock) + (uint64_t)json_integer_value(mrt) * 1000000000ull;
    store_run(j, r);
}

/* One supervision pass over the runs (j->mu held). */
static void supervise(kn_jobs *j)
{
    uint64_t now = kn_clock_mono_ns(j->clock);
    for (kn_run *r = j->runs; r; r = r->next) {
        if (r->done)
            continue;
        if (r->pid == 0) {
            if (r->stop) {
                finish(j, r, "Stopped", r->stop_status, "Training job stopped", NULL);
                continue;
            }
            start_run(j, r);
            continue;
        }
        drain(j, r);
        int wst;
        pid_t w = waitpid(r->pid, &wst, WNOHANG);
        if (w == r->pid) {
            exited(j, r, wst);
            continue;
        }
        if (!r->stop && r->deadline_ns && now >= r->deadline_ns)
            kn_jobs__run_stop(j, r, "MaxRuntimeExceeded");
        if (r->term_ns &&
            now - r->term_ns >= (uint64_t)(j->params.stop_grace_s * 1e9)) {
            kill(-r->pid, SIGKILL);
            kill(r->pid, SIGKILL);
            r->term_ns = UINT64_MAX / 2; /* once */
        }
        if (r->dirty && real_ns() - r->stored_ns > 1000000000ull)
            store_run(j, r);
    }
    kn_jobs__tuning_tick(j);
    for (kn_run **pp = &j->runs; *pp;) {
        kn_run *r = *pp;
        if (r->done) {
            *pp = r->next;
            run_free(r);
        } else {
            pp = &r->next;
        }
    }
}

static void *supervisor(void *arg)
{
    kn_jobs *j = arg;
    for (;;) {
        pthread_mutex_lock(&j->mu);
        if (j->quit) {
            pthread_mutex_unlock(&j->mu);
            break;
        }
        supervise(j);
        pthread_mutex_unlock(&j->mu);
        struct timespec ts = {0, (long)j->params.poll_ms * 1000000L};
        nanosleep(&ts, NULL);
    }
    return NULL;
}

/* ----------------------------------------------------------- operations */

kn_status kn_jobs__training_get(kn_jobs *j, const char *name, json_t **doc, kn_err *e)
{
    kn_run *r = kn_jobs__run_find(j, name);
    if (r) {
        *doc = json_incref(r->doc);
        return KN_OK;
    }
    kn_job_row row;
    kn_err e2;
    kn_err_clear(&e2);
    kn_status s = kn_registry_job_get(j->reg, KN_JOB_TRAINING, name, &row, &e2);
    if (s == KN_NOT_FOUND) {
        char arn[512];
        kn_registry_arn(j->reg, "sagemaker", "training-job", name, arn, sizeof arn);
        return kn_err_set(e, KN_NOT_FOUND, "Requested resource not found: Could not find "
                                           "training job '%s'.", arn);
    }
    if (s)
        return kn_err_set(e, s, "%s", e2.msg);
    json_error_t je;
    *doc = json_loads(row.doc, 0, &je);
    kn_job_row_deinit(&row);
    if (!*doc)
        return kn_err_set(e, KN_INTERNAL, "stored training job %s is corrupt: %s", name,
                          je.text);
    return KN_OK;
}

static kn_status create_training(kn_jobs *j, json_t *in, json_t **out, kn_err *e)
{
    const char *name;
    kn_status s = kn_jobs__name_arg(in, "TrainingJobName", 63, &name, e);
    if (s)
        return s;
    json_t *doc;
    s = kn_jobs__training_doc(j, in, name, false, &doc, e);
    if (s)
        return s;
    kn_jobs__set_secondary(j, doc, "Starting", "Starting the training job");
    if ((s = kn_jobs__store(j, KN_JOB_TRAINING, doc, true, e))) {
        json_decref(doc);
        return s;
    }
    *out = json_pack("{s:O}", "TrainingJobArn", json_object_get(doc, "TrainingJobArn"));
    kn_jobs__run_add(j, doc, NULL, -1);
    return KN_OK;
}

static kn_status describe_training(kn_jobs *j, json_t *in, json_t **out, kn_err *e)
{
    return kn_jobs__describe(j, in, "TrainingJobName", 63, kn_jobs__training_get, out, e);
}

static kn_status stop_training(kn_jobs *j, json_t *in, json_t **out, kn_err *e)
{
    const char *name;
    kn_status s = kn_jobs__name_arg(in, "TrainingJobName", 63, &name, e);
    if (s)
        return s;
    kn_run *r = kn_jobs__run_find(j, name);
    if (!r) {
        json_t *doc;
        s = kn_jobs__training_get(j, name, &doc, e);
        if (s)
            return s;
        s = kn_err_set(e, KN_INVALID,
                       "The request was rejected because the training job is in status %s.",
                       sget(doc, "TrainingJobStatus"));
        json_decref(doc);
        return s;
    }
    kn_jobs__run_stop(j, r, "Stopped");
    *out = json_object();
    return KN_OK;
}

static int cmp_str(const char *a, const char *b)
{
    return strcasecmp(a ? a : "", b ? b : "");
}

typedef struct sortctx {
    const char *key;
    bool asc;
} sortctx;
static __thread sortctx g_sort;

static int cmp_summary(const void *a, const void *b)
{
    json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
    int c;
    if (!strcmp(g_sort.key, "FinalHyperParameterTuningJobObjectiveMetric")) {
        json_t *p = json_object_get(json_object_get(x, g_sort.key), "Value");
        json_t *q = json_object_get(json_object_get(y, g_sort.key), "Value");
        if (!p || !q) /* jobs without an objective go last either way */
            return (!p) - (!q);
        double u = json_number_value(p), w = json_number_value(q);
        c = (u > w) - (u < w);
    } else if (!strcmp(g_sort.key, "CreationTime")) {
        double p = json_number_value(json_object_get(x, "CreationTime"));
        double q = json_number_value(json_object_get(y, "CreationTime"));
        c = (p > q) - (p < q);
    } else {
        c = cmp_str(sget(x, g_sort.key), sget(y, g_sort.key));
    }
    return g_sort.asc ? c : -c;
}

kn_status kn_jobs__page(json_t *items, json_t *in, const char *default_sort, const char *name_key,
                        const char *status_key, json_t **page, char **next, kn_err *e)
{
    *page = NULL;
    *next = NULL;
    const char *sb = sget(in, "SortBy");
    const char *so = sget(in, "SortOrder");
    json_t *mr = json_object_get(in, "MaxResults");
    long max = 100;
    if (mr) {
        if (!json_is_integer(mr) || json_integer_value(mr) < 1 || json_integer_value(mr) > 100)
            return kn_err_set(e, KN_INVALID,
                              "1 validation error detected: Value at 'maxResults' failed to "
                              "satisfy constraint: Member must have value between 1 and 100");
        max = (long)json_integer_value(mr);
    }
    if (so && strcmp(so, "Ascending") && strcmp(so, "Descending"))
        return kn_err_set(e, KN_INVALID,
                          "1 validation error detected: Value '%s' at 'sortOrder' failed to "
                          "satisfy constraint: Member must satisfy enum value set: [Ascending, "
                          "Descending]",
                          so);
    const char *key = default_sort;
    if (sb) {
        if (!strcmp(sb, "Name"))
            key = name_key;
        else if (!strcmp(sb, "CreationTime"))
            key = "CreationTime";
        else if (!strcmp(sb, "Status"))
            key = status_key;
        else if (!strcmp(sb, "FinalObjectiveMetricValue") &&
                 !strcmp(default_sort, "CreationTime") && !strcmp(status_key, "TrainingJobStatus") &&
                 !strcmp(name_key, "TrainingJobName") && json_object_get(in, "HyperParameterTuningJobName"))
            key = "FinalHyperParameterTuningJobObjectiveMetric";
        else
            return kn_err_set(e, KN_INVALID,
                              "1 validation error detected: Value '%s' at 'sortBy' failed to "
                              "satisfy constraint: Member must satisfy enum value set: [Name, "
                              "CreationTime, Status]",
                              sb);
    }
    size_t n = json_array_size(items);
    json_t **v = calloc(n ? n : 1, sizeof *v);
    if (!v)
        return kn_err_set(e, KN_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++)
        v[i] = json_array_get(items, i);
    g_sort.key = key;
    g_sort.asc = so && !strcmp(so, "Ascending");
    qsort(v, n, sizeof *v, cmp_summary);
    long off = 0;
    const char *tok = sget(in, "NextToken");
    if (tok) {
        char *end;
        off = strtol(tok, &end, 10);
        if (*end || off < 0)
            off = 0;
    }
    *page = json_array();
    for (long i = off; i < (long)n && i < off + max; i++)
        json_array_append(*page, v[i]);
    if (off + max < (long)n)
        asprintf(next, "%ld", off + max) < 0 ? (void)(*next = NULL) : (void)0;
    free(v);
    return KN_OK;
}

static bool time_filter(json_t *in, double t)
{
    json_t *a = json_object_get(in, "CreationTimeAfter");
    json_t *b = json_object_get(in, "CreationTimeBefore");
    if (a && json_is_number(a) && !(t > json_number_value(a)))
        return false;
    if (b && json_is_number(b) && !(t < json_number_value(b)))
        return false;
    return true;
}

static kn_status list_training(kn_jobs *j, json_t *in, json_t **out, kn_err *e)
{
    kn_job_row *rows;
    size_t n;
    kn_status s = kn_registry_job_list(j->reg, KN_JOB_TRAINING, NULL, &rows, &n, e);
    if (s)
        return s;
    const char *contains = sget(in, "NameContains");
    const char *status = sget(in, "StatusEquals");
    json_t *items = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *doc = NULL;
        kn_run *r = kn_jobs__run_find(j, rows[i].name);
        doc = r ? json_incref(r->doc) : json_loads(rows[i].doc, 0, NULL);
        if (!doc)
            continue;
        const char *nm = sget(doc, "TrainingJobName");
        const char *st = sget(doc, "TrainingJobStatus");
        if ((!contains || strcasestr(nm, contains)) && (!status || !strcmp(st, status)) &&
            time_filter(in, json_number_value(json_object_get(doc, "CreationTime")))) {
            json_t *it = json_object();
            static const char *const keys[] = {"TrainingJobName", "TrainingJobArn",
                                               "CreationTime", "TrainingEndTime",
                                               "LastModifiedTime", "TrainingJobStatus",
                                               "SecondaryStatus", NULL};
            for (int k = 0; keys[k]; k++)
                if (json_object_get(doc, keys[k]))
                    json_object_set(it, keys[k], json_object_get(doc, keys[k]));
            json_array_append_new(items, it);
        }
        json_decref(doc);
    }
    for (size_t i = 0; i < n; i++)
        kn_job_row_deinit(&rows[i]);
    free(rows);
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

kn_status kn_jobs_call(kn_jobs *j, const char *op, const char *input, char **output, kn_err *e)
{
    *output = NULL;
    json_error_t je;
    json_t *in = json_loads(input && *input ? input : "{}", 0, &je);
    if (!in || !json_is_object(in)) {
        json_decref(in);
        return kn_err_set(e, KN_SERIALIZATION, "the request body is not a JSON object");
    }
    json_t *out = NULL;
    kn_status s;
    pthread_mutex_lock(&j->mu);
    if (!strcmp(op, "CreateTrainingJob"))
        s = create_training(j, in, &out, e);
    else if (!strcmp(op, "DescribeTrainingJob"))
        s = describe_training(j, in, &out, e);
    else if (!strcmp(op, "ListTrainingJobs"))
        s = list_training(j, in, &out, e);
    else if (!strcmp(op, "StopTrainingJob"))
        s = stop_training(j, in, &out, e);
    else
        s = kn_jobs__tuning_call(j, op, in, &out, e);
    pthread_mutex_unlock(&j->mu);
    json_decref(in);
    if (s) {
        json_decref(out);
        return s;
    }
    *output = json_dumps(out ? out : json_object(), JSON_COMPACT);
    json_decref(out);
    return *output ? KN_OK : kn_err_set(e, KN_NOMEM, "out of memory");
}

kn_status kn_jobs_log(kn_jobs *j, const char *name, kn_buf *out, kn_err *e)
{
    json_t *doc;
    pthread_mutex_lock(&j->mu);
    kn_status s = kn_jobs__training_get(j, name, &doc, e);
    kn_run *r = s ? NULL : kn_jobs__run_find(j, name);
    if (r && r->log)
        fflush(r->log);
    pthread_mutex_unlock(&j->mu);
    if (s)
        return s;
    char path[PATH_MAX + 80];
    snprintf(path, sizeof path, "%s/%s/log", j->root, sget(doc, "TrainingJobName"));
    json_decref(doc);
    if (access(path, F_OK) != 0)
        return KN_OK; /* not started yet */
    return kn_file_read(path, out, e);
}

kn_status kn_jobs_series(kn_jobs *j, const char *name, char **json, kn_err *e)
{
    json_t *doc;
    pthread_mutex_lock(&j->mu);
    kn_status s = kn_jobs__training_get(j, name, &doc, e);
    pthread_mutex_unlock(&j->mu);
    if (s)
        return s;
    json_t *series = json_object_get(json_object_get(doc, "_kn"), "series");
    *json = json_dumps(series ? series : json_object(), JSON_COMPACT);
    json_decref(doc);
    return *json ? KN_OK : kn_err_set(e, KN_NOMEM, "out of memory");
}

/* ------------------------------------------------------------- lifecycle */

kn_jobs_params kn_jobs_default_params(void)
{
    return (kn_jobs_params){.bin = NULL, .poll_ms = 50, .stop_grace_s = 120, .paused = false};
}

/* Training jobs that were running when the daemon stopped: their process
 * died with it. Tuning children of InProgress tuning jobs were taken back
 * by the tuning recovery already. */
static kn_status recover_training(kn_jobs *j, kn_err *e)
{
    kn_job_row *rows;
    size_t n;
    kn_status s = kn_registry_job_list(j->reg, KN_JOB_TRAINING, NULL, &rows, &n, e);
    if (s)
        return s;
    for (size_t i = 0; i < n && !s; i++) {
        if (strcmp(rows[i].status, "InProgress") && strcmp(rows[i].status, "Stopping"))
            continue;
        if (kn_jobs__run_find(j, rows[i].name))
            continue;
        json_t *doc = json_loads(rows[i].doc, 0, NULL);
        if (!doc)
            continue;
        kn_run *r = kn_jobs__run_add(j, doc, NULL, -1);
        if (!r)
            continue;
        if (!strcmp(rows[i].status, "Stopping")) {
            r->stop = true;
            r->stop_status = "Stopped";
            finish(j, r, "Stopped", "Stopped", "Training job stopped", NULL);
        } else {
            fail_early(j, r,
                       "InternalServerError: the kennel server stopped while this job was "
                       "running and its process is gone; create the job again (under a new "
                       "name) to rerun it");
        }
    }
    for (size_t i = 0; i < n; i++)
        kn_job_row_deinit(&rows[i]);
    free(rows);
    for (kn_run **pp = &j->runs; *pp;) {
        kn_run *r = *pp;
        if (r->done) {
            *pp = r->next;
            run_free(r);
        } else {
            pp = &r->next;
        }
    }
    return s;
}

kn_status kn_jobs_start(kn_platform *p, const kn_jobs_params *jp, kn_jobs **out, kn_err *e)
{
    *out = NULL;
    kn_jobs_params d = jp ? *jp : kn_jobs_default_params();
    if (!d.bin)
        return kn_err_set(e, KN_INVALID, "jobs: the kennel executable is required");
    if (d.poll_ms == 0)
        d.poll_ms = 50;
    if (!(d.stop_grace_s >= 0))
        d.stop_grace_s = 120;
    kn_jobs *j = calloc(1, sizeof *j);
    if (!j)
        return kn_err_set(e, KN_NOMEM, "out of memory");
    j->p = p;
    j->reg = kn_platform_registry(p);
    j->clock = kn_platform_clock(p);
    j->params = d;
    snprintf(j->bin, sizeof j->bin, "%s", d.bin);
    snprintf(j->root, sizeof j->root, "%.4000s/training-jobs", kn_platform_data_dir(p));
    pthread_mutex_init(&j->mu, NULL);
    kn_rng_seed(&j->rng, kn_now_ns() ^ (uint64_t)getpid() << 32);
    kn_status s;
    if ((s = kn_mkdirs(j->root, 0700, e)) || (s = kn_registry_jobs_init(j->reg, e)) ||
        (!d.paused && ((s = kn_jobs__tuning_recover(j, e)) || (s = recover_training(j, e))))) {
        kn_jobs_stop(j);
        return s;
    }
    if (d.paused) {
        *out = j;
        return KN_OK;
    }
    if (pthread_create(&j->thread, NULL, supervisor, j) != 0) {
        kn_jobs_stop(j);
        return kn_err_set(e, KN_INTERNAL, "jobs: cannot start the supervisor thread");
    }
    *out = j;
    return KN_OK;
}

void kn_jobs_stop(kn_jobs *j)
{
    if (!j)
        return;
    pthread_mutex_lock(&j->mu);
    bool running = j->thread != 0;
    j->quit = true;
    pthread_mutex_unlock(&j->mu);
    if (running)
        pthread_join(j->thread, NULL);
    while (j->runs) {
        kn_run *r = j->runs;
        j->runs = r->next;
        if (r->pid > 0) {
            kill(-r->pid, SIGKILL);
            kill(r->pid, SIGKILL);
            waitpid(r->pid, NULL, 0);
        }
        if (r->dirty)
            store_run(j, r);
        run_free(r);
    }
    while (j->tunings) {
        kn_tuning *t = j->tunings;
        j->tunings = t->next;
        kn_jobs__tuning_free(t);
    }
    pthread_mutex_destroy(&j->mu);
    free(j);
}
