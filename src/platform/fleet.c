/* The fleet: endpoint instances as child processes, their supervision and
 * the router that sends invocations to them (see platform.h).
 *
 * State: a list of endpoints, each with variants, each with a list of
 * instances, all under f->mu. Only the supervisor thread frees endpoints
 * and instances, and it frees an instance only once its process was reaped
 * and no request is using it, so the supervisor may drop the lock while it
 * pings, and the router may hold an instance pointer across its request
 * (with `outstanding` counting it). Registry writes happen with f->mu held
 * (lock order: fleet, then registry).
 *
 * Children are forked by the supervisor thread, which lives as long as the
 * fleet: PR_SET_PDEATHSIG fires when the forking thread dies, so instances
 * go down with the daemon and never outlive it.
 */
#include "platform_int.h"

#include "kennel/scale.h"

#include <curl/curl.h>
#include <math.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

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
    bool broken;       /* a request failed at the transport level */
    bool pinging;
    int ping_failures;      /* consecutive failed health pings while ready */
    uint64_t started_ns, stop_sent_ns, pinged_ns;
    char timeout_reason[128]; /* set when it was killed for not answering /ping */
    char ready_file[PATH_MAX];
    char log_file[PATH_MAX];
} instance;

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

kn_fleet_params kn_fleet_default_params(void)
{
    kn_fleet_params p = {.instance_bin = NULL,
                         .poll_ms = 50,
                         .startup_timeout_s = 240,
                         .invoke_timeout_ms = 60000,
                         .health_interval_ms = 5000,
                         .stop_grace_ms = 30000};
    return p;
}

void kn_invoke_result_init(kn_invoke_result *r)
{
    memset(r, 0, sizeof *r);
    kn_buf_init(&r->body, MAX_RESPONSE);
}

void kn_invoke_result_deinit(kn_invoke_result *r)
{
    kn_buf_deinit(&r->body);
}

static uint64_t real_ns(void)
{
    return kn_now_ns();
}

static void deadline_in(struct timespec *ts, unsigned ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

/* ------------------------------------------------------------ curl pool */

static CURL *pool_get(kn_fleet *f)
{
    CURL *h = NULL;
    pthread_mutex_lock(&f->pool_mu);
    if (f->n_pool > 0)
        h = f->pool[--f->n_pool];
    pthread_mutex_unlock(&f->pool_mu);
    if (h)
        curl_easy_reset(h); /* keeps its connection cache */
    else
        h = curl_easy_init();
    return h;
}

static void pool_put(kn_fleet *f, CURL *h)
{
    if (!h)
        return;
    pthread_mutex_lock(&f->pool_mu);
    if (f->n_pool < CURL_POOL_MAX) {
        f->pool[f->n_pool++] = h;
        h = NULL;
    }
    pthread_mutex_unlock(&f->pool_mu);
    if (h)
        curl_easy_cleanup(h);
}

static size_t discard(char *p, size_t sz, size_t n, void *ud)
{
    (void)p, (void)ud;
    return sz * n;
}

/* GET /ping on an instance: true on 200. */
static bool ping(kn_fleet *f, int port)
{
    CURL *h = pool_get(f);
    if (!h)
        return false;
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/ping", port);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 2000L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
    long code = 0;
    bool ok = curl_easy_perform(h) == CURLE_OK &&
              curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code) == CURLE_OK && code == 200;
    pool_put(f, h);
    return ok;
}

/* ------------------------------------------------------------ processes */

static const char *const status_names[] = {"Creating", "InService",   "Updating",
                                           "SystemUpdating", "RollingBack", "Deleting",
                                           "Failed"};

static void set_status(kn_fleet *f, fendpoint *ep, const char *status, const char *reason)
{
    bool same = strcmp(ep->rec.status, status) == 0;
    for (size_t i = 0; i < sizeof status_names / sizeof status_names[0]; i++)
        if (strcmp(status_names[i], status) == 0) {
            free(ep->rec.status);
            ep->rec.status = strdup(status_names[i]);
        }
    free(ep->rec.failure_reason);
    ep->rec.failure_reason = reason ? strdup(reason) : NULL;
    if (!ep->rec.status)
        ep->rec.status = strdup("Failed"); /* a failed strdup above; keep a status */
    ep->rec.last_modified_time = kn_clock_wall(kn_platform_clock(f->platform));
    kn_err e;
    if (kn_registry_endpoint_set_status(f->reg, ep->rec.name, status, reason, &e))
        kn_log(KN_LOG_ERROR, "endpoint %s: cannot record status %s: %s", ep->rec.name, status,
               e.msg);
    if (!same)
        kn_log(KN_LOG_INFO, "endpoint %s: %s%s%s", ep->rec.name, status, reason ? ": " : "",
               reason ? reason : "");
}

/* The last non-empty line of an instance's log, without the
 * "kennel model-server: " prefix, as a FailureReason (<= 1024 chars). */
static void last_log_line(const char *path, char *out, size_t n)
{
    out[0] = '\0';
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    char buf[4096];
    off_t size = lseek(fd, 0, SEEK_END);
    off_t from = size > (off_t)sizeof buf - 1 ? size - (off_t)sizeof buf + 1 : 0;
    ssize_t k = pread(fd, buf, sizeof buf - 1, from);
    close(fd);
    if (k <= 0)
        return;
    buf[k] = '\0';
    while (k > 0 && (buf[k - 1] == '\n' || buf[k - 1] == '\r' || buf[k - 1] == ' '))
        buf[--k] = '\0';
    char *line = strrchr(buf, '\n');
    line = line ? line + 1 : buf;
    static const char prefix[] = "kennel model-server: ";
    if (strncmp(line, prefix, sizeof prefix - 1) == 0)
        line += sizeof prefix - 1;
    snprintf(out, n < 1025 ? n : 1025, "%s", line);
}

static int threads_for(const char *instance_type)
{
    const kn_instance_type *t = kn_instance_type_find(instance_type);
    return t ? t->vcpu : 2;
}

/* Starts one instance of v (f->mu held; only the supervisor thread). */
static void spawn(kn_fleet *f, fendpoint *ep, fvariant *v, int vindex)
{
    instance *in = calloc(1, sizeof *in);
    if (!in)
        return;
    in->id = ++f->next_id;
    snprintf(in->ready_file, sizeof in->ready_file, "%.3000s/v%d-%ld-%d.ready", ep->dir, vindex,
             (long)getpid(), in->id);
    snprintf(in->log_file, sizeof in->log_file, "%.3000s/v%d-%ld-%d.log", ep->dir, vindex,
             (long)getpid(), in->id);
    unlink(in->ready_file);

    char threads[16], omp[32];
    snprintf(threads, sizeof threads, "%d", v->threads);
    snprintf(omp, sizeof omp, "OMP_NUM_THREADS=%d", v->threads);
    char *argv[] = {f->bin,        "model-server", "--model", v->rec->model_data_path,
                    "--listen",    "127.0.0.1",    "--port",  "0",
                    "--ready-file", in->ready_file, "--threads", threads,
                    NULL};
    /* environment: ours, with OMP_NUM_THREADS replaced */
    extern char **environ;
    size_t ne = 0;
    while (environ[ne])
        ne++;
    char **envp = calloc(ne + 2, sizeof *envp);
    int logfd = open(in->log_file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (!envp || logfd < 0) {
        kn_log(KN_LOG_ERROR, "endpoint %s: cannot prepare an instance: %s", ep->rec.name,
               logfd < 0 ? strerror(errno) : "out of memory");
        free(envp);
        if (logfd >= 0)
            close(logfd);
        free(in);
        v->next_spawn_ns = real_ns() + 1000000000ull;
        return;
    }
    size_t k = 0;
    for (size_t i = 0; i < ne; i++)
        if (strncmp(environ[i], "OMP_NUM_THREADS=", 16) != 0)
            envp[k++] = environ[i];
    envp[k++] = omp;
    envp[k] = NULL;

    sigset_t none;
    sigemptyset(&none);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        /* async-signal-safe calls only until exec */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGPIPE, SIG_DFL);
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull >= 0)
            dup2(devnull, 0);
        dup2(logfd, 1);
        dup2(logfd, 2);
        syscall(SYS_close_range, 3u, ~0u, 0u);
        execve(f->bin, argv, envp);
        static const char msg[] = "kennel model-server: cannot execute the kennel binary\n";
        ssize_t w = write(2, msg, sizeof msg - 1);
        (void)w;
        _exit(127);
    }
    int err = errno;
    close(logfd);
    free(envp);
    if (pid < 0) {
        kn_log(KN_LOG_ERROR, "endpoint %s: fork: %s", ep->rec.name, strerror(err));
        free(in);
        v->next_spawn_ns = real_ns() + 1000000000ull;
        return;
    }
    in->pid = pid;
    in->state = INST_STARTING;
    in->started_ns = real_ns();
    in->next = v->insts;
    v->insts = in;
    kn_log(KN_LOG_INFO, "endpoint %s: variant %s: instance %d started (pid %ld, %d threads)",
           ep->rec.name, v->rec->variant_name, in->id, (long)pid, v->threads);
}

static void stop_instance(instance *in)
{
    if (in->state == INST_STARTING || in->state == INST_READY) {
        kill(in->pid, SIGTERM);
        in->state = INST_STOPPING;
        in->stop_sent_ns = real_ns();
    }
}

static void stop_vars(fvariant *vars, int n)
{
    for (int i = 0; vars && i < n; i++)
        for (instance *in = vars[i].insts; in; in = in->next)
            stop_instance(in);
}

static void stop_all(fendpoint *ep)
{
    stop_vars(ep->vars, ep->rec.n_variants);
    if (ep->has_next)
        stop_vars(ep->next_vars, ep->next_rec.n_variants);
}

static void free_vars(fvariant *vars, int n)
{
    for (int i = 0; vars && i < n; i++) {
        instance *in = vars[i].insts;
        while (in) {
            instance *nx = in->next;
            free(in);
            in = nx;
        }
    }
    free(vars);
}

static void free_endpoint(fendpoint *ep)
{
    if (!ep)
        return;
    free_vars(ep->vars, ep->rec.n_variants);
    kn_endpoint_rec_deinit(&ep->rec);
    if (ep->has_next) {
        free_vars(ep->next_vars, ep->next_rec.n_variants);
        kn_endpoint_rec_deinit(&ep->next_rec);
    }
    free(ep);
}

static fvariant *make_vars(kn_fleet *f, kn_endpoint_rec *rec)
{
    fvariant *vars = calloc((size_t)(rec->n_variants > 0 ? rec->n_variants : 1), sizeof *vars);
    if (!vars)
        return NULL;
    for (int i = 0; i < rec->n_variants; i++) {
        vars[i].rec = &rec->variants[i];
        vars[i].threads = threads_for(vars[i].rec->instance_type);
        vars[i].startup_timeout_s = vars[i].rec->startup_health_timeout_s > 0
                                        ? (unsigned)vars[i].rec->startup_health_timeout_s
                                        : f->p.startup_timeout_s;
    }
    return vars;
}

/* Builds the in-memory endpoint for a stored record (takes it over). */
static kn_status make_endpoint(kn_fleet *f, kn_endpoint_rec *rec, fendpoint **out, kn_err *e)
{
    fendpoint *ep = calloc(1, sizeof *ep);
    if (!ep)
        return kn_err_set(e, KN_NOMEM, "out of memory");
    ep->rec = *rec;
    memset(rec, 0, sizeof *rec);
    ep->vars = make_vars(f, &ep->rec);
    if (!ep->vars) {
        *rec = ep->rec;
        free(ep);
        return kn_err_set(e, KN_NOMEM, "out of memory");
    }
    char base[PATH_MAX];
    snprintf(base, sizeof base, "%.3000s/instances", kn_platform_data_dir(f->platform));
    mkdir(base, 0700);
    snprintf(ep->dir, sizeof ep->dir, "%.3000s/%.200s", base, ep->rec.name);
    if (mkdir(ep->dir, 0700) != 0 && errno != EEXIST) {
        kn_status s = kn_err_set(e, KN_IO, "cannot create %s: %s", ep->dir, strerror(errno));
        free_endpoint(ep);
        return s;
    }
    *out = ep;
    return KN_OK;
}

static void remove_dir_files(const char *dir, bool and_dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *de;
    char path[PATH_MAX];
    while ((de = readdir(d)))
        if (de->d_name[0] != '.') {
            snprintf(path, sizeof path, "%.3000s/%.255s", dir, de->d_name);
            unlink(path);
        }
    closedir(d);
    if (and_dir)
        rmdir(dir);
}

static int count_state(const fvariant *v, bool ready_only);

/* -------------------------------------------------------------- metrics */

static int64_t now_minute(kn_fleet *f)
{
    return (int64_t)floor(kn_clock_wall(kn_platform_clock(f->platform)) / 60.0);
}

/* Closes the minute being counted if it is over (f->mu held). */
static void roll_minute(fvariant *v, int64_t minute)
{
    if (v->acc.minute == minute)
        return;
    if (v->acc.invocations > 0 && v->n_done < (int)(sizeof v->done / sizeof v->done[0])) {
        kn_variant_minute m = v->acc;
        m.model_latency_us = v->model_us_sum / (double)m.invocations;
        m.overhead_latency_us = v->overhead_us_sum / (double)m.invocations;
        m.instances = count_state(v, true);
        v->done[v->n_done++] = m;
        int slot = v->n_recent++ % (int)(sizeof v->recent / sizeof v->recent[0]);
        v->recent[slot].minute = m.minute;
        v->recent[slot].per_instance = m.per_instance;
    }
    memset(&v->acc, 0, sizeof v->acc);
    v->acc.minute = minute;
    v->model_us_sum = v->overhead_us_sum = 0;
}

/* Counts one answered invocation (f->mu held). InvocationsPerInstance adds
 * 1/N, N the instances in service when it was answered. */
static void record(kn_fleet *f, fvariant *v, int status, double model_us, double total_us)
{
    roll_minute(v, now_minute(f));
    int n = count_state(v, true);
    v->acc.invocations++;
    v->acc.per_instance += 1.0 / (n > 0 ? n : 1);
    v->model_us_sum += model_us;
    v->overhead_us_sum += total_us > model_us ? total_us - model_us : 0;
    if (status >= 400 && status < 500)
        v->acc.errors_4xx++;
    else if (status >= 500 || status == 0)
        v->acc.errors_5xx++;
    v->total_invocations++;
    v->total_model_us += model_us;
    v->total_overhead_us += total_us > model_us ? total_us - model_us : 0;
    if (status >= 400 && status < 500)
        v->total_4xx++;
    else if (status >= 500 || status == 0)
        v->total_5xx++;
}

/* The InvocationsPerInstance datapoint of a finished minute: 0 when the
 * variant had no traffic then (AWS emits no datapoint, which target
 * tracking treats as zero load). */
static double per_instance_at(const fvariant *v, int64_t minute)
{
    int cap = (int)(sizeof v->recent / sizeof v->recent[0]);
    int n = v->n_recent < cap ? v->n_recent : cap;
    for (int i = 0; i < n; i++)
        if (v->recent[i].minute == minute)
            return v->recent[i].per_instance;
    return 0;
}

/* Writes finished minutes to the registry (f->mu held). */
static void flush_metrics(kn_fleet *f, fendpoint *ep, int64_t minute)
{
    for (int i = 0; i < ep->rec.n_variants; i++) {
        fvariant *v = &ep->vars[i];
        if (v->acc.minute < minute)
            roll_minute(v, minute);
        for (int k = 0; k < v->n_done; k++) {
            kn_err e;
            if (kn_registry_metrics_put(f->reg, ep->rec.name, v->rec->variant_name, &v->done[k],
                                        &e))
                kn_log(KN_LOG_WARN, "endpoint %s: metrics: %s", ep->rec.name, e.msg);
        }
        v->n_done = 0;
    }
}

/* ----------------------------------------------------------- autoscaler */

static fendpoint *find(kn_fleet *f, const char *name);
static bool status_is(const fendpoint *ep, const char *s);
static void persist(kn_fleet *f, fendpoint *ep);

static void new_id(kn_fleet *f, char *out, size_t n)
{
    uint64_t a = kn_rng_next(&f->rng), b = kn_rng_next(&f->rng);
    snprintf(out, n, "%08x-%04x-4%03x-%04x-%012llx", (unsigned)(a >> 32),
             (unsigned)(a >> 16) & 0xffff, (unsigned)a & 0xfff,
             (unsigned)(0x8000 | ((b >> 48) & 0x3fff)),
             (unsigned long long)(b & 0xffffffffffffull));
}

static void finish_activity(kn_fleet *f, fendpoint *ep, const char *status, const char *msg)
{
    if (!ep->activity[0])
        return;
    kn_err e;
    if (kn_registry_activity_finish(f->reg, ep->activity, status, msg,
                                    kn_clock_wall(kn_platform_clock(f->platform)), &e))
        kn_log(KN_LOG_WARN, "endpoint %s: %s", ep->rec.name, e.msg);
    ep->activity[0] = '\0';
}

/* Sets a variant's desired count on behalf of the autoscaler, as
 * UpdateEndpointWeightsAndCapacities would; false when the endpoint cannot
 * take a change now (being created, updated to another configuration,
 * deleted, failed). f->mu held. */
static bool apply_scale(kn_fleet *f, fendpoint *ep, int vi, int to)
{
    if (ep->deleting || ep->has_next ||
        !(status_is(ep, "InService") || (status_is(ep, "Updating") && ep->has_prev)))
        return false;
    if (!ep->has_prev)
        for (int j = 0; j < ep->rec.n_variants; j++) {
            ep->vars[j].prev_count = ep->rec.variants[j].desired_count;
            ep->vars[j].prev_weight = ep->rec.variants[j].desired_weight;
        }
    ep->rec.variants[vi].desired_count = to;
    ep->vars[vi].failures = 0;
    ep->vars[vi].next_spawn_ns = 0;
    ep->has_prev = true;
    set_status(f, ep, "Updating", NULL);
    persist(f, ep);
    return true;
}

/* Feeds every policy the datapoint of each clock minute that ended since
 * the last call and applies its decisions, recording scaling activities.
 * f->mu held. */
static void autoscale(kn_fleet *f)
{
    int64_t m = now_minute(f);
    if (f->scaled_minute == 0 || f->scaled_minute < m - 61)
        f->scaled_minute = m - 1; /* start (or a long stall): evaluate from here on */
    for (int64_t minute = f->scaled_minute + 1; minute < m; minute++) {
        double at = (double)(minute + 1) * 60.0; /* the end of that minute */
        for (int i = 0; i < f->n_pols; i++) {
            fpolicy *p = &f->pols[i];
            fendpoint *ep = find(f, p->endpoint);
            if (!ep || ep->deleting || status_is(ep, "Failed") || status_is(ep, "Creating"))
                continue;
            int vi = -1;
            for (int j = 0; j < ep->rec.n_variants; j++)
                if (strcmp(ep->rec.variants[j].variant_name, p->variant) == 0)
                    vi = j;
            if (vi < 0)
                continue;
            double metric = per_instance_at(&ep->vars[vi], minute);
            kn_scale_decision d;
            kn_scale_tracker before = p->t;
            kn_scale_observe(&p->t, at, metric, ep->rec.variants[vi].desired_count, &d);
            if (d.action == KN_SCALE_NONE ||
                (d.action == KN_SCALE_OUT && p->suspended_out) ||
                (d.action == KN_SCALE_IN && p->suspended_in))
                continue;
            if (status_is(ep, "SystemUpdating")) {
                /* instances are coming back after a restart: the decision
                 * waits for them (the alarm stays in ALARM and fires again
                 * next minute), and no cooldown starts */
                int h = p->t.high_run, l = p->t.low_run;
                p->t = before;
                p->t.high_run = h;
                p->t.low_run = l;
                continue;
            }
            char id[64], desc[128], cause[1024];
            new_id(f, id, sizeof id);
            snprintf(desc, sizeof desc, "Setting desired instance count to %d.", d.to);
            if (d.reason == KN_SCALE_ALARM_HIGH || d.reason == KN_SCALE_ALARM_LOW)
                snprintf(cause, sizeof cause,
                         "monitor alarm %s in state ALARM triggered policy %s",
                         d.reason == KN_SCALE_ALARM_HIGH ? p->alarm_high : p->alarm_low,
                         p->name);
            else
                snprintf(cause, sizeof cause,
                         "the desired instance count %d was outside the registered range "
                         "[%d, %d]",
                         d.from, p->t.min, p->t.max);
            finish_activity(f, ep, "Overridden", "A newer scaling activity replaced it.");
            bool ok = apply_scale(f, ep, vi, d.to);
            if (!ok) { /* nothing changed, so no cooldown either */
                int h = p->t.high_run, l = p->t.low_run;
                p->t = before;
                p->t.high_run = h;
                p->t.low_run = l;
            }
            kn_scaling_activity_rec a = {
                .id = id,
                .resource_id = p->resource_id,
                .description = desc,
                .cause = cause,
                .status_code = (char *)(ok ? "InProgress" : "Failed"),
                .status_message =
                    (char *)(ok ? NULL : "The endpoint could not take a capacity change now."),
                .start_time = at,
                .end_time = ok ? 0 : at};
            kn_err e;
            if (kn_registry_activity_add(f->reg, &a, &e))
                kn_log(KN_LOG_WARN, "endpoint %s: %s", ep->rec.name, e.msg);
            else if (ok)
                snprintf(ep->activity, sizeof ep->activity, "%s", id);
            kn_log(KN_LOG_INFO, "autoscaling %s: %d -> %d (%s, %.2f invocations per instance)",
                   p->resource_id, d.from, d.to, kn_scale_reason_text(d.reason), metric);
        }
    }
    f->scaled_minute = m - 1;
}

/* ------------------------------------------------------------ supervisor */

static bool status_is(const fendpoint *ep, const char *s)
{
    return strcmp(ep->rec.status, s) == 0;
}

/* Reaps exited instances of a variant set (f->mu held). An instance that
 * exits before answering /ping is a failed start: it is reported in `oc`
 * (the first one's reason) and its variant backs off before the next try. */
static void reap_vars(kn_fleet *f, fendpoint *ep, fvariant *vars, int n, outcome *oc)
{
    for (int vi = 0; vars && vi < n; vi++) {
        fvariant *v = &vars[vi];
        for (instance **pp = &v->insts; *pp;) {
            instance *in = *pp;
            if (in->state != INST_DEAD) {
                int st;
                pid_t r = waitpid(in->pid, &st, WNOHANG);
                if (r == in->pid || (r < 0 && errno == ECHILD)) {
                    inst_state was = in->state;
                    in->state = INST_DEAD;
                    if (was == INST_STARTING && !ep->deleting) {
                        char reason[1100];
                        if (in->timeout_reason[0])
                            snprintf(reason, sizeof reason, "%s", in->timeout_reason);
                        else
                            last_log_line(in->log_file, reason, sizeof reason);
                        if (!reason[0])
                            snprintf(reason, sizeof reason,
                                     "the instance exited before answering /ping");
                        v->failures++;
                        unsigned shift = v->failures < 6 ? (unsigned)v->failures : 6;
                        v->next_spawn_ns = real_ns() + (500000000ull << shift);
                        kn_log(KN_LOG_WARN, "endpoint %s: instance %d failed to start: %s",
                               ep->rec.name, in->id, reason);
                        if (!oc->start_failed) {
                            oc->start_failed = true;
                            snprintf(oc->reason, sizeof oc->reason, "%s", reason);
                        }
                    } else if (was == INST_READY && !ep->deleting) {
                        kn_log(KN_LOG_WARN, "endpoint %s: instance %d (pid %ld) exited; "
                               "replacing it", ep->rec.name, in->id, (long)in->pid);
                    }
                    unlink(in->ready_file);
                    if (was != INST_STARTING || ep->deleting)
                        unlink(in->log_file);
                }
            }
            if (in->state == INST_DEAD && in->outstanding == 0) {
                *pp = in->next;
                free(in);
                continue;
            }
            if (in->state == INST_STOPPING &&
                real_ns() - in->stop_sent_ns > (uint64_t)f->p.stop_grace_ms * 1000000ull)
                kill(in->pid, SIGKILL);
            pp = &in->next;
        }
    }
}

/* Reads "ADDR:PORT" from a ready file; 0 if absent or malformed. */
static int ready_port(const char *path)
{
    FILE *fp = fopen(path, "re");
    if (!fp)
        return 0;
    char line[256];
    int port = 0;
    if (fgets(line, sizeof line, fp)) {
        char *colon = strrchr(line, ':');
        if (colon) {
            long v = strtol(colon + 1, NULL, 10);
            if (v > 0 && v < 65536)
                port = (int)v;
        }
    }
    fclose(fp);
    return port;
}

/* Pings starting and suspect instances; may drop and retake f->mu (only
 * this thread frees instances, so the pointers stay valid). An instance
 * silent past its start-up time is killed and, once reaped, counts as a
 * failed start. */
static void health_vars(kn_fleet *f, fendpoint *ep, fvariant *vars, int n)
{
    for (int vi = 0; vars && vi < n; vi++) {
        fvariant *v = &vars[vi];
        for (instance *in = v->insts; in; in = in->next) {
            if (in->state == INST_STARTING && !in->pinging && !in->timeout_reason[0]) {
                int port = ready_port(in->ready_file);
                if (port) {
                    in->pinging = true;
                    pthread_mutex_unlock(&f->mu);
                    bool ok = ping(f, port);
                    pthread_mutex_lock(&f->mu);
                    in->pinging = false;
                    if (ok && in->state == INST_STARTING) {
                        in->port = port;
                        in->pinged_ns = real_ns();
                        in->state = INST_READY;
                        v->failures = 0;
                        kn_log(KN_LOG_INFO, "endpoint %s: instance %d ready on port %d",
                               ep->rec.name, in->id, port);
                        pthread_cond_broadcast(&f->changed);
                        continue;
                    }
                }
                if (in->state == INST_STARTING &&
                    real_ns() - in->started_ns > (uint64_t)v->startup_timeout_s * 1000000000ull) {
                    snprintf(in->timeout_reason, sizeof in->timeout_reason,
                             "the instance did not answer /ping within %u seconds",
                             v->startup_timeout_s);
                    kill(in->pid, SIGKILL);
                }
            }
        }
    }
}

/* The health thread: pings ready instances that are due (every
 * health_interval_ms) or suspect (a request failed on them), without
 * holding f->mu while it waits, so a hung instance (which accepts the
 * connection and never answers) costs the supervisor nothing. Results are
 * applied by instance id: the instance may have been reaped meanwhile. */
typedef struct due {
    int id;
    int port;
} due;

static instance *find_instance(kn_fleet *f, int id, fendpoint **owner)
{
    for (fendpoint *ep = f->eps; ep; ep = ep->next)
        for (int set = 0; set < 2; set++) {
            fvariant *vars = set ? ep->next_vars : ep->vars;
            int n = set ? (ep->has_next ? ep->next_rec.n_variants : 0) : ep->rec.n_variants;
            for (int i = 0; vars && i < n; i++)
                for (instance *in = vars[i].insts; in; in = in->next)
                    if (in->id == id) {
                        *owner = ep;
                        return in;
                    }
        }
    return NULL;
}

static void *health(void *arg)
{
    kn_fleet *f = arg;
    due list[64];
    pthread_mutex_lock(&f->mu);
    while (!f->stopping) {
        int n = 0;
        uint64_t now = real_ns();
        for (fendpoint *ep = f->eps; ep && n < 64; ep = ep->next)
            for (int set = 0; set < 2; set++) {
                fvariant *vars = set ? ep->next_vars : ep->vars;
                int nv = set ? (ep->has_next ? ep->next_rec.n_variants : 0) : ep->rec.n_variants;
                for (int i = 0; vars && i < nv; i++)
                    for (instance *in = vars[i].insts; in && n < 64; in = in->next)
                        if (in->state == INST_READY && !in->pinging &&
                            (in->broken ||
                             (f->p.health_interval_ms &&
                              now - in->pinged_ns >=
                                  (uint64_t)f->p.health_interval_ms * 1000000ull))) {
                            in->pinging = true;
                            list[n++] = (due){in->id, in->port};
                        }
            }
        pthread_mutex_unlock(&f->mu);
        bool ok[64];
        for (int i = 0; i < n; i++)
            ok[i] = ping(f, list[i].port);
        pthread_mutex_lock(&f->mu);
        for (int i = 0; i < n; i++) {
            fendpoint *ep;
            instance *in = find_instance(f, list[i].id, &ep);
            if (!in)
                continue;
            in->pinging = false;
            in->pinged_ns = real_ns();
            if (ok[i]) {
                in->broken = false;
                in->ping_failures = 0;
            } else if (in->state == INST_READY && (in->broken || ++in->ping_failures >= 3)) {
                /* a suspect instance gets one chance; a routine check three */
                kn_log(KN_LOG_WARN, "endpoint %s: instance %d stopped answering /ping; "
                       "replacing it", ep->rec.name, in->id);
                kill(in->pid, SIGKILL);
                in->state = INST_STOPPING;
                in->stop_sent_ns = real_ns();
            }
        }
        if (!f->stopping) {
            struct timespec ts;
            deadline_in(&ts, 50);
            pthread_cond_timedwait(&f->changed, &f->mu, &ts);
        }
    }
    pthread_mutex_unlock(&f->mu);
    return NULL;
}

static int count_state(const fvariant *v, bool ready_only)
{
    int n = 0;
    for (const instance *in = v->insts; in; in = in->next)
        if (in->state == INST_READY || (!ready_only && in->state == INST_STARTING))
            n++;
    return n;
}

/* Starts missing instances and stops surplus idle ones (scale-in drains:
 * an instance with requests in flight is left until it is idle). */
static void spawn_vars(kn_fleet *f, fendpoint *ep, fvariant *vars, int n, int index_base)
{
    uint64_t now = real_ns();
    for (int vi = 0; vi < n; vi++) {
        fvariant *v = &vars[vi];
        int live = count_state(v, false);
        while (live < v->rec->desired_count && now >= v->next_spawn_ns && !f->stopping) {
            int before = live;
            spawn(f, ep, v, index_base + vi);
            live = count_state(v, false);
            if (live == before)
                break;
        }
        for (instance *in = v->insts; in && live > v->rec->desired_count; in = in->next)
            if (in->state == INST_STARTING || (in->state == INST_READY && in->outstanding == 0)) {
                stop_instance(in);
                live--;
            }
    }
}

/* Every variant has its desired count ready; `exact`: and nothing more is
 * running or stopping (a capacity update is only done when it is). */
static bool vars_settled(const fvariant *vars, int n, bool exact)
{
    for (int i = 0; i < n; i++) {
        int ready = count_state(&vars[i], true);
        if (ready < vars[i].rec->desired_count)
            return false;
        if (exact) {
            if (ready != vars[i].rec->desired_count)
                return false;
            for (const instance *in = vars[i].insts; in; in = in->next)
                if (in->state == INST_STOPPING || in->state == INST_STARTING)
                    return false;
        }
    }
    return true;
}

static void persist(kn_fleet *f, fendpoint *ep)
{
    kn_err e;
    if (kn_registry_endpoint_set_variants(f->reg, &ep->rec, &e))
        kn_log(KN_LOG_ERROR, "endpoint %s: cannot record its variants: %s", ep->rec.name,
               e.msg);
}

/* Moves a variant set into a ghost endpoint that stops its instances and
 * frees them once reaped and idle (requests in flight finish first). */
static void retire(kn_fleet *f, fendpoint *ep, kn_endpoint_rec *rec, fvariant *vars)
{
    fendpoint *g = calloc(1, sizeof *g);
    if (!g) { /* cannot keep them apart: stop them now and wait here */
        stop_vars(vars, rec->n_variants);
        for (int i = 0; i < rec->n_variants; i++)
            for (instance *in = vars[i].insts; in; in = in->next)
                if (in->state != INST_DEAD)
                    waitpid(in->pid, NULL, 0);
        free_vars(vars, rec->n_variants);
        kn_endpoint_rec_deinit(rec);
        return;
    }
    g->rec = *rec;
    memset(rec, 0, sizeof *rec);
    g->vars = vars;
    for (int i = 0; i < g->rec.n_variants; i++)
        g->vars[i].rec = &g->rec.variants[i];
    g->deleting = g->ghost = true;
    snprintf(g->dir, sizeof g->dir, "%s", ep->dir);
    stop_all(g);
    g->next = f->eps;
    f->eps = g;
}

static void tick(kn_fleet *f)
{
    int64_t minute = now_minute(f);
    for (fendpoint **pp = &f->eps; *pp;) {
        fendpoint *ep = *pp;
        outcome oc = {0}, oc_next = {0};
        if (!ep->ghost)
            flush_metrics(f, ep, minute);
        reap_vars(f, ep, ep->vars, ep->rec.n_variants, &oc);
        if (ep->has_next)
            reap_vars(f, ep, ep->next_vars, ep->next_rec.n_variants, &oc_next);
        if (ep->deleting) {
            stop_all(ep);
            bool any = false;
            for (int i = 0; i < ep->rec.n_variants; i++)
                any = any || ep->vars[i].insts != NULL;
            for (int i = 0; ep->has_next && i < ep->next_rec.n_variants; i++)
                any = any || ep->next_vars[i].insts != NULL;
            if (!any) {
                finish_activity(f, ep, "Failed", "The endpoint was deleted.");
                if (!ep->ghost) {
                    kn_err e;
                    if (kn_registry_endpoint_delete(f->reg, ep->rec.name, &e) &&
                        e.code != KN_NOT_FOUND)
                        kn_log(KN_LOG_ERROR, "endpoint %s: %s", ep->rec.name, e.msg);
                    kn_log(KN_LOG_INFO, "endpoint %s: deleted", ep->rec.name);
                    remove_dir_files(ep->dir, true);
                }
                *pp = ep->next;
                free_endpoint(ep);
                continue;
            }
            pp = &ep->next;
            continue;
        }
        if (status_is(ep, "Failed")) {
            pp = &ep->next;
            continue;
        }
        /* a start that fails while the endpoint is coming up fails it */
        if (oc.start_failed && (status_is(ep, "Creating") || status_is(ep, "SystemUpdating"))) {
            set_status(f, ep, "Failed", oc.reason);
            stop_all(ep);
            pp = &ep->next;
            continue;
        }
        /* a failed update rolls back to what was serving */
        if (oc_next.start_failed && ep->has_next) {
            kn_log(KN_LOG_WARN, "endpoint %s: update failed (%s); rolling back", ep->rec.name,
                   oc_next.reason);
            ep->has_next = false;
            retire(f, ep, &ep->next_rec, ep->next_vars);
            ep->next_vars = NULL;
            set_status(f, ep, "RollingBack", NULL);
            set_status(f, ep, "InService", NULL);
            persist(f, ep);
        }
        if (oc.start_failed && ep->has_prev && status_is(ep, "Updating")) {
            kn_log(KN_LOG_WARN, "endpoint %s: capacity update failed (%s); rolling back",
                   ep->rec.name, oc.reason);
            for (int i = 0; i < ep->rec.n_variants; i++) {
                ep->rec.variants[i].desired_count = ep->vars[i].prev_count;
                ep->rec.variants[i].desired_weight = ep->vars[i].prev_weight;
            }
            ep->has_prev = false;
            set_status(f, ep, "RollingBack", NULL);
            set_status(f, ep, "InService", NULL);
            persist(f, ep);
            finish_activity(f, ep, "Failed", oc.reason);
        }
        spawn_vars(f, ep, ep->vars, ep->rec.n_variants, 0);
        if (ep->has_next)
            spawn_vars(f, ep, ep->next_vars, ep->next_rec.n_variants, 100);
        health_vars(f, ep, ep->vars, ep->rec.n_variants);
        if (ep->has_next)
            health_vars(f, ep, ep->next_vars, ep->next_rec.n_variants);

        if (ep->has_next && vars_settled(ep->next_vars, ep->next_rec.n_variants, false)) {
            /* the new configuration is up: switch traffic, retire the old one */
            kn_endpoint_rec old = ep->rec;
            fvariant *old_vars = ep->vars;
            ep->rec = ep->next_rec;
            ep->vars = ep->next_vars;
            memset(&ep->next_rec, 0, sizeof ep->next_rec);
            ep->next_vars = NULL;
            ep->has_next = false;
            retire(f, ep, &old, old_vars);
            set_status(f, ep, "InService", NULL);
            pthread_cond_broadcast(&f->changed);
        } else if (!ep->has_next &&
                   (status_is(ep, "Creating") || status_is(ep, "SystemUpdating")) &&
                   vars_settled(ep->vars, ep->rec.n_variants, false)) {
            set_status(f, ep, "InService", NULL);
            /* a scaling activity interrupted by a restart: its count is back */
            finish_activity(f, ep, "Successful", NULL);
        } else if (!ep->has_next && status_is(ep, "Updating") &&
                   vars_settled(ep->vars, ep->rec.n_variants, true)) {
            ep->has_prev = false;
            set_status(f, ep, "InService", NULL);
            finish_activity(f, ep, "Successful", NULL);
        }
        pp = &ep->next;
    }
    autoscale(f);
}

static void *supervise(void *arg)
{
    kn_fleet *f = arg;
    pthread_mutex_lock(&f->mu);
    while (!f->stopping) {
        tick(f);
        struct timespec ts;
        deadline_in(&ts, f->p.poll_ms);
        pthread_cond_timedwait(&f->changed, &f->mu, &ts);
    }
    pthread_mutex_unlock(&f->mu);
    return NULL;
}

/* ------------------------------------------------------------ lifecycle */

static kn_status restore(kn_fleet *f, kn_err *e)
{
    kn_list_params q = kn_list_default_params();
    q.ascending = true;
    q.max_results = 100;
    char token[512] = "";
    for (;;) {
        q.next_token = token[0] ? token : NULL;
        kn_endpoint_page page;
        kn_status s = kn_registry_endpoint_list(f->reg, &q, &page, e);
        if (s)
            return s;
        for (size_t i = 0; i < page.n; i++) {
            kn_endpoint_rec rec;
            const char *name = page.items[i].name;
            if ((s = kn_registry_endpoint_get(f->reg, name, &rec, e)))
                break;
            if (strcmp(rec.status, "Deleting") == 0) {
                /* its instances died with the previous daemon */
                kn_endpoint_rec_deinit(&rec);
                if ((s = kn_registry_endpoint_delete(f->reg, name, e)))
                    break;
                continue;
            }
            fendpoint *ep;
            if ((s = make_endpoint(f, &rec, &ep, e))) {
                kn_endpoint_rec_deinit(&rec);
                break;
            }
            remove_dir_files(ep->dir, false);
            if (strcmp(ep->rec.status, "InService") == 0 ||
                strcmp(ep->rec.status, "Updating") == 0)
                set_status(f, ep, "SystemUpdating", NULL);
            kn_log(KN_LOG_INFO, "endpoint %s: restoring (%s)", ep->rec.name, ep->rec.status);
            ep->next = f->eps;
            f->eps = ep;
        }
        bool more = !s && page.next_token;
        if (more)
            snprintf(token, sizeof token, "%s", page.next_token);
        kn_endpoint_page_deinit(&page);
        if (s)
            return s;
        if (!more)
            return KN_OK;
    }
}

/* Scaling activities a killed daemon left InProgress: the newest of each
 * endpoint ends when the endpoint is back in service (its desired count was
 * stored), older ones were overridden, those of gone endpoints failed. */
static void adopt_activities(kn_fleet *f)
{
    kn_scaling_activity_rec *as = NULL;
    size_t n = 0;
    kn_err e;
    if (kn_registry_activity_list(f->reg, NULL, &as, &n, &e))
        return;
    double now = kn_clock_wall(kn_platform_clock(f->platform));
    for (size_t i = 0; i < n; i++) { /* newest first */
        if (strcmp(as[i].status_code, "InProgress") != 0)
            continue;
        char name[128] = "";
        sscanf(as[i].resource_id, "endpoint/%127[^/]/", name);
        fendpoint *ep = find(f, name);
        if (ep && !ep->activity[0] && !status_is(ep, "Failed"))
            snprintf(ep->activity, sizeof ep->activity, "%s", as[i].id);
        else
            kn_registry_activity_finish(f->reg, as[i].id, ep ? "Overridden" : "Failed",
                                        ep ? "A newer scaling activity replaced it."
                                           : "The endpoint is gone.",
                                        now, &e);
    }
    for (size_t i = 0; i < n; i++)
        kn_scaling_activity_rec_deinit(&as[i]);
    free(as);
}

kn_status kn_fleet_start(kn_platform *p, const kn_fleet_params *fp, kn_fleet **out, kn_err *e)
{
    *out = NULL;
    kn_fleet_params d = fp ? *fp : kn_fleet_default_params();
    if (!d.instance_bin || access(d.instance_bin, X_OK) != 0)
        return kn_err_set(e, KN_INVALID, "instance binary %s is not executable",
                          d.instance_bin ? d.instance_bin : "(none)");
    if (d.poll_ms == 0)
        d.poll_ms = 50;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return kn_err_set(e, KN_INTERNAL, "libcurl initialisation failed");
    kn_fleet *f = calloc(1, sizeof *f);
    if (!f) {
        curl_global_cleanup();
        return kn_err_set(e, KN_NOMEM, "out of memory");
    }
    f->platform = p;
    f->reg = kn_platform_registry(p);
    f->p = d;
    snprintf(f->bin, sizeof f->bin, "%s", d.instance_bin);
    pthread_mutex_init(&f->mu, NULL);
    pthread_mutex_init(&f->pool_mu, NULL);
    kn_clock_cond_init(&f->changed);
    kn_rng_seed(&f->rng, (uint64_t)getpid() ^ kn_now_ns());
    kn_status s = restore(f, e);
    if (!s)
        s = kn_fleet_autoscaling_reload(f, e);
    if (!s)
        adopt_activities(f);
    if (!s) {
        if (pthread_create(&f->thread, NULL, supervise, f) != 0)
            s = kn_err_set(e, KN_INTERNAL, "cannot start the supervisor thread");
        else
            f->thread_started = true;
        if (!s && pthread_create(&f->health_thread, NULL, health, f) != 0)
            s = kn_err_set(e, KN_INTERNAL, "cannot start the health thread");
        else if (!s)
            f->health_started = true;
    }
    if (s) {
        kn_fleet_stop(f);
        return s;
    }
    *out = f;
    return KN_OK;
}

void kn_fleet_stop(kn_fleet *f)
{
    if (!f)
        return;
    pthread_mutex_lock(&f->mu);
    f->stopping = true;
    pthread_cond_broadcast(&f->changed);
    pthread_mutex_unlock(&f->mu);
    if (f->thread_started)
        pthread_join(f->thread, NULL);
    if (f->health_started)
        pthread_join(f->health_thread, NULL);
    /* stop every instance, then wait for them (bounded by the grace time) */
    pthread_mutex_lock(&f->mu);
    for (fendpoint *ep = f->eps; ep; ep = ep->next)
        stop_all(ep);
    uint64_t until = real_ns() + (uint64_t)f->p.stop_grace_ms * 1000000ull;
    for (;;) {
        bool any = false;
        for (fendpoint *ep = f->eps; ep; ep = ep->next)
            for (int set = 0; set < 2; set++) {
                fvariant *vars = set ? ep->next_vars : ep->vars;
                int n = set ? (ep->has_next ? ep->next_rec.n_variants : 0) : ep->rec.n_variants;
                for (int i = 0; vars && i < n; i++)
                    for (instance *in = vars[i].insts; in; in = in->next) {
                        if (in->state == INST_DEAD)
                            continue;
                        int st;
                        pid_t r = waitpid(in->pid, &st, WNOHANG);
                        if (r == in->pid || (r < 0 && errno == ECHILD)) {
                            in->state = INST_DEAD;
                            unlink(in->ready_file);
                            unlink(in->log_file);
                        } else {
                            if (real_ns() > until)
                                kill(in->pid, SIGKILL);
                            any = true;
                        }
                    }
            }
        if (!any)
            break;
        pthread_mutex_unlock(&f->mu);
        struct timespec ts = {0, 20000000L};
        nanosleep(&ts, NULL);
        pthread_mutex_lock(&f->mu);
    }
    while (f->eps) {
        fendpoint *ep = f->eps;
        f->eps = ep->next;
        free_endpoint(ep);
    }
    pthread_mutex_unlock(&f->mu);
    for (int i = 0; i < f->n_pool; i++)
        curl_easy_cleanup(f->pool[i]);
    free(f->pols);
    pthread_cond_destroy(&f->changed);
    pthread_mutex_destroy(&f->pool_mu);
    pthread_mutex_destroy(&f->mu);
    free(f);
    curl_global_cleanup();
}

static fendpoint *find(kn_fleet *f, const char *name)
{
    for (fendpoint *ep = f->eps; ep; ep = ep->next)
        if (!ep->ghost && strcasecmp(ep->rec.name, name) == 0)
            return ep;
    return NULL;
}

kn_status kn_fleet_endpoint_create(kn_fleet *f, const char *name, const char *config_name,
                                   const char *tags_json, kn_endpoint_rec *out, kn_err *e)
{
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&f->mu);
    /* an endpoint still being deleted holds its name until it is gone */
    fendpoint *old = find(f, name);
    if (old) {
        char arn[512];
        kn_registry_arn(f->reg, "sagemaker", "endpoint", name, arn, sizeof arn);
        pthread_mutex_unlock(&f->mu);
        return kn_err_set(e, KN_EXISTS, "Cannot create already existing endpoint \"%s\".", arn);
    }
    kn_endpoint_rec rec;
    kn_status s = kn_registry_endpoint_create(f->reg, name, config_name, tags_json, &rec, e);
    if (!s) {
        fendpoint *ep;
        if ((s = make_endpoint(f, &rec, &ep, e))) {
            kn_err e2;
            kn_registry_endpoint_delete(f->reg, rec.name, &e2);
            kn_endpoint_rec_deinit(&rec);
        } else {
            ep->next = f->eps;
            f->eps = ep;
            s = kn_registry_endpoint_get(f->reg, ep->rec.name, out, e);
            pthread_cond_broadcast(&f->changed);
        }
    }
    pthread_mutex_unlock(&f->mu);
    return s;
}

kn_status kn_fleet_endpoint_describe(kn_fleet *f, const char *name, kn_endpoint_rec *out,
                                     kn_err *e)
{
    pthread_mutex_lock(&f->mu);
    kn_status s = kn_registry_endpoint_get(f->reg, name, out, e);
    fendpoint *ep = s ? NULL : find(f, name);
    /* the stored variants are the desired ones; current figures come from
     * the variants serving now (the old configuration during an update) */
    for (int i = 0; ep && i < out->n_variants; i++)
        for (int j = 0; j < ep->rec.n_variants; j++)
            if (strcmp(out->variants[i].variant_name, ep->rec.variants[j].variant_name) == 0) {
                out->variants[i].current_count = count_state(&ep->vars[j], true);
                out->variants[i].current_weight = ep->rec.variants[j].desired_weight;
            }
    pthread_mutex_unlock(&f->mu);
    return s;
}

kn_status kn_fleet_endpoint_delete(kn_fleet *f, const char *name, kn_err *e)
{
    pthread_mutex_lock(&f->mu);
    fendpoint *ep = find(f, name);
    kn_status s = KN_OK;
    if (!ep) {
        char arn[512];
        kn_registry_arn(f->reg, "sagemaker", "endpoint", name, arn, sizeof arn);
        s = kn_err_set(e, KN_NOT_FOUND, "Could not find endpoint \"%s\".", arn);
    } else if (!ep->deleting) {
        ep->deleting = true;
        set_status(f, ep, "Deleting", NULL);
        stop_all(ep);
        pthread_cond_broadcast(&f->changed);
    }
    pthread_mutex_unlock(&f->mu);
    return s;
}

static kn_status in_progress(kn_fleet *f, const char *name, kn_err *e)
{
    char arn[512];
    kn_registry_arn(f->reg, "sagemaker", "endpoint", name, arn, sizeof arn);
    return kn_err_set(e, KN_INVALID, "Cannot update in-progress endpoint \"%s\".", arn);
}

kn_status kn_fleet_endpoint_update(kn_fleet *f, const char *name, const char *config_name,
                                   kn_err *e)
{
    pthread_mutex_lock(&f->mu);
    fendpoint *ep = find(f, name);
    kn_status s = KN_OK;
    if (!ep) {
        char arn[512];
        kn_registry_arn(f->reg, "sagemaker", "endpoint", name, arn, sizeof arn);
        s = kn_err_set(e, KN_NOT_FOUND, "Could not find endpoint \"%s\".", arn);
    } else if (ep->deleting || !status_is(ep, "InService")) {
        s = in_progress(f, ep->rec.name, e);
    } else {
        kn_endpoint_rec rec;
        if (!(s = kn_registry_endpoint_update_config(f->reg, ep->rec.name, config_name, &rec,
                                                     e))) {
            ep->next_rec = rec;
            ep->next_vars = make_vars(f, &ep->next_rec);
            if (!ep->next_vars) {
                kn_endpoint_rec_deinit(&ep->next_rec);
                persist(f, ep);
                s = kn_err_set(e, KN_NOMEM, "out of memory");
            } else {
                ep->has_next = true;
                set_status(f, ep, "Updating", NULL);
                pthread_cond_broadcast(&f->changed);
            }
        }
    }
    pthread_mutex_unlock(&f->mu);
    return s;
}

kn_status kn_fleet_endpoint_update_capacity(kn_fleet *f, const char *name,
                                            const kn_variant_capacity *caps, int n, kn_err *e)
{
    pthread_mutex_lock(&f->mu);
    fendpoint *ep = find(f, name);
    kn_status s = KN_OK;
    if (!ep) {
        char arn[512];
        kn_registry_arn(f->reg, "sagemaker", "endpoint", name, arn, sizeof arn);
        s = kn_err_set(e, KN_NOT_FOUND, "Could not find endpoint \"%s\".", arn);
        goto out;
    }
    if (ep->deleting || !status_is(ep, "InService")) {
        s = in_progress(f, ep->rec.name, e);
        goto out;
    }
    for (int i = 0; i < n; i++) {
        bool found = false;
        for (int j = 0; j < ep->rec.n_variants; j++)
            found = found || strcmp(caps[i].variant_name, ep->rec.variants[j].variant_name) == 0;
        if (!found) {
            s = kn_err_set(e, KN_INVALID,
                           "The variant name \"%s\" is not present in endpoint \"%s\".",
                           caps[i].variant_name, ep->rec.name);
            goto out;
        }
    }
    for (int j = 0; j < ep->rec.n_variants; j++) {
        ep->vars[j].prev_count = ep->rec.variants[j].desired_count;
        ep->vars[j].prev_weight = ep->rec.variants[j].desired_weight;
    }
    for (int i = 0; i < n; i++)
        for (int j = 0; j < ep->rec.n_variants; j++)
            if (strcmp(caps[i].variant_name, ep->rec.variants[j].variant_name) == 0) {
                if (caps[i].has_count)
                    ep->rec.variants[j].desired_count = caps[i].count;
                if (caps[i].has_weight)
                    ep->rec.variants[j].desired_weight = caps[i].weight;
                ep->vars[j].failures = 0;
                ep->vars[j].next_spawn_ns = 0;
            }
    ep->has_prev = true;
    set_status(f, ep, "Updating", NULL);
    persist(f, ep);
    pthread_cond_broadcast(&f->changed);
out:
    pthread_mutex_unlock(&f->mu);
    return s;
}

/* A new tracker starts from what is stored, as CloudWatch alarms would
 * see it: the alarm runs from the last 15 recorded minutes (no datapoint
 * counts as 0) and the cooldowns from the latest scaling activities. This
 * is what makes autoscaling survive a daemon restart. f->mu held. */
static void restore_tracker(kn_fleet *f, fpolicy *p)
{
    fendpoint *ep = find(f, p->endpoint);
    int64_t m = now_minute(f);
    kn_variant_minute *pts = NULL;
    size_t n = 0;
    kn_err e;
    if (ep && !kn_registry_metrics_get(f->reg, ep->rec.name, p->variant, m - 15, m - 1, &pts, &n,
                                       &e)) {
        size_t k = 0;
        for (int64_t minute = m - 15; minute < m; minute++) {
            double v = 0;
            if (k < n && pts[k].minute == minute)
                v = pts[k++].per_instance;
            p->t.high_run = v > p->t.p.target ? p->t.high_run + 1 : 0;
            p->t.low_run = v < KN_SCALE_LOW_RATIO * p->t.p.target ? p->t.low_run + 1 : 0;
        }
    }
    free(pts);
    kn_scaling_activity_rec *as = NULL;
    if (kn_registry_activity_list(f->reg, p->resource_id, &as, &n, &e))
        return;
    bool out_seen = false, in_seen = false;
    for (size_t i = 0; i < n; i++) { /* newest first */
        const kn_scaling_activity_rec *a = &as[i];
        bool took = strcmp(a->status_code, "Failed") != 0;
        int to = 0;
        if (took && !out_seen && strstr(a->cause, "-AlarmHigh-") &&
            sscanf(a->description, "Setting desired instance count to %d", &to) == 1) {
            out_seen = true;
            p->t.out_active = true;
            p->t.out_at = a->start_time;
            p->t.out_capacity = to;
        } else if (took && !in_seen && strstr(a->cause, "-AlarmLow-")) {
            in_seen = true;
            /* a later scale-out cancelled it */
            if (!out_seen) {
                p->t.in_active = true;
                p->t.in_at = a->start_time;
            }
        }
    }
    for (size_t i = 0; i < n; i++)
        kn_scaling_activity_rec_deinit(&as[i]);
    free(as);
}

kn_status kn_fleet_autoscaling_reload(kn_fleet *f, kn_err *e)
{
    kn_scalable_target_rec *ts = NULL;
    kn_scaling_policy_rec *ps = NULL;
    size_t nt = 0, np = 0;
    kn_status s = kn_registry_target_list(f->reg, NULL, &ts, &nt, e);
    if (!s)
        s = kn_registry_policy_list(f->reg, NULL, &ps, &np, e);
    fpolicy *pols = NULL;
    int n = 0;
    if (!s && np && !(pols = calloc(np, sizeof *pols)))
        s = kn_err_set(e, KN_NOMEM, "out of memory");
    pthread_mutex_lock(&f->mu);
    for (size_t i = 0; !s && i < np; i++) {
        const kn_scalable_target_rec *t = NULL;
        for (size_t j = 0; j < nt; j++)
            if (strcmp(ts[j].resource_id, ps[i].resource_id) == 0)
                t = &ts[j];
        if (!t)
            continue;
        fpolicy *p = &pols[n];
        snprintf(p->resource_id, sizeof p->resource_id, "%s", t->resource_id);
        snprintf(p->endpoint, sizeof p->endpoint, "%s", t->endpoint);
        snprintf(p->variant, sizeof p->variant, "%s", t->variant);
        snprintf(p->name, sizeof p->name, "%s", ps[i].name);
        snprintf(p->alarm_high, sizeof p->alarm_high, "%s", ps[i].alarm_high);
        snprintf(p->alarm_low, sizeof p->alarm_low, "%s", ps[i].alarm_low);
        p->suspended_in = t->suspended_in;
        p->suspended_out = t->suspended_out;
        kn_scale_params sp = kn_scale_default_params();
        sp.target = ps[i].target_value;
        sp.scale_out_cooldown_s = ps[i].scale_out_cooldown;
        sp.scale_in_cooldown_s = ps[i].scale_in_cooldown;
        sp.disable_scale_in = ps[i].disable_scale_in;
        const fpolicy *old = NULL;
        for (int k = 0; k < f->n_pols; k++)
            if (strcmp(f->pols[k].resource_id, p->resource_id) == 0 &&
                strcmp(f->pols[k].name, p->name) == 0)
                old = &f->pols[k];
        kn_err e2;
        if (old) { /* keep the alarm history and cooldowns */
            p->t = old->t;
            p->t.p = sp;
            if (kn_scale_tracker_set_range(&p->t, t->min_capacity, t->max_capacity, &e2))
                continue;
        } else if (kn_scale_tracker_init(&p->t, &sp, t->min_capacity, t->max_capacity, &e2)) {
            kn_log(KN_LOG_WARN, "autoscaling %s: policy %s ignored: %s", p->resource_id, p->name,
                   e2.msg);
            continue;
        } else {
            restore_tracker(f, p);
        }
        n++;
    }
    if (!s) {
        free(f->pols);
        f->pols = pols;
        f->n_pols = n;
        pols = NULL;
    }
    pthread_mutex_unlock(&f->mu);
    free(pols);
    for (size_t i = 0; i < nt; i++)
        kn_scalable_target_rec_deinit(&ts[i]);
    for (size_t i = 0; i < np; i++)
        kn_scaling_policy_rec_deinit(&ps[i]);
    free(ts);
    free(ps);
    return s;
}

/* Prometheus label values: backslash, quote and newline escaped. */
static void label(kn_buf *b, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\' || *v == '"')
            kn_buf_appendf(b, "\\%c", *v);
        else if (*v == '\n')
            kn_buf_append(b, "\\n", 2);
        else
            kn_buf_append(b, v, 1);
    }
}

static void series(kn_buf *b, const char *metric, const fendpoint *ep, const fvariant *v,
                   const char *extra_name, const char *extra_value)
{
    kn_buf_appendf(b, "%s{endpoint=\"", metric);
    label(b, ep->rec.name);
    kn_buf_appendf(b, "\",variant=\"");
    label(b, v->rec->variant_name);
    if (extra_name) {
        kn_buf_appendf(b, "\",%s=\"", extra_name);
        label(b, extra_value);
    }
    kn_buf_appendf(b, "\"} ");
}

kn_status kn_fleet_prometheus(kn_fleet *f, kn_buf *b)
{
    static const struct {
        const char *name, *type, *help;
    } metrics[] = {
        {"kennel_endpoint_invocations_total", "counter", "Invocations answered by instances"},
        {"kennel_endpoint_invocation_errors_total", "counter",
         "Invocations the instance answered with an error, by class"},
        {"kennel_endpoint_model_latency_microseconds_total", "counter",
         "Time spent in instances (sum over invocations)"},
        {"kennel_endpoint_overhead_latency_microseconds_total", "counter",
         "Time spent in the daemon around the instance (sum over invocations)"},
        {"kennel_endpoint_instances", "gauge", "Instances by state"},
        {"kennel_endpoint_desired_instances", "gauge", "Desired instance count"},
        {"kennel_endpoint_requests_in_flight", "gauge", "Requests being answered"},
        {"kennel_endpoint_status", "gauge", "1 for the endpoint's current status"},
    };
    pthread_mutex_lock(&f->mu);
    for (size_t m = 0; m < sizeof metrics / sizeof metrics[0]; m++) {
        kn_buf_appendf(b, "# HELP %s %s\n# TYPE %s %s\n", metrics[m].name, metrics[m].help,
                       metrics[m].name, metrics[m].type);
        for (const fendpoint *ep = f->eps; ep; ep = ep->next) {
            if (ep->ghost)
                continue;
            if (m == 7) {
                kn_buf_appendf(b, "%s{endpoint=\"", metrics[m].name);
                label(b, ep->rec.name);
                kn_buf_appendf(b, "\",status=\"%s\"} 1\n", ep->rec.status);
                continue;
            }
            for (int i = 0; i < ep->rec.n_variants; i++) {
                const fvariant *v = &ep->vars[i];
                int starting = 0, ready = 0, stopping = 0, flight = 0;
                for (const instance *in = v->insts; in; in = in->next) {
                    starting += in->state == INST_STARTING;
                    ready += in->state == INST_READY;
                    stopping += in->state == INST_STOPPING;
                    flight += in->outstanding;
                }
                switch (m) {
                case 0:
                    series(b, metrics[m].name, ep, v, NULL, NULL);
                    kn_buf_appendf(b, "%llu\n", (unsigned long long)v->total_invocations);
                    break;
                case 1:
                    series(b, metrics[m].name, ep, v, "class", "4xx");
                    kn_buf_appendf(b, "%llu\n", (unsigned long long)v->total_4xx);
                    series(b, metrics[m].name, ep, v, "class", "5xx");
                    kn_buf_appendf(b, "%llu\n", (unsigned long long)v->total_5xx);
                    break;
                case 2:
                    series(b, metrics[m].name, ep, v, NULL, NULL);
                    kn_buf_appendf(b, "%.0f\n", v->total_model_us);
                    break;
                case 3:
                    series(b, metrics[m].name, ep, v, NULL, NULL);
                    kn_buf_appendf(b, "%.0f\n", v->total_overhead_us);
                    break;
                case 4:
                    series(b, metrics[m].name, ep, v, "state", "starting");
                    kn_buf_appendf(b, "%d\n", starting);
                    series(b, metrics[m].name, ep, v, "state", "ready");
                    kn_buf_appendf(b, "%d\n", ready);
                    series(b, metrics[m].name, ep, v, "state", "stopping");
                    kn_buf_appendf(b, "%d\n", stopping);
                    break;
                case 5:
                    series(b, metrics[m].name, ep, v, NULL, NULL);
                    kn_buf_appendf(b, "%d\n", v->rec->desired_count);
                    break;
                case 6:
                    series(b, metrics[m].name, ep, v, NULL, NULL);
                    kn_buf_appendf(b, "%d\n", flight);
                    break;
                }
            }
        }
    }
    pthread_mutex_unlock(&f->mu);
    return KN_OK;
}

/* ---------------------------------------------------------------- router */

typedef struct resp_ctx {
    kn_invoke_result *out;
} resp_ctx;

static size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
    kn_invoke_result *r = ud;
    return kn_buf_append(&r->body, p, sz * n) == KN_OK ? sz * n : 0;
}

static void header_value(const char *line, size_t len, const char *name, char *out, size_t n)
{
    size_t k = strlen(name);
    if (len <= k + 1 || strncasecmp(line, name, k) != 0 || line[k] != ':')
        return;
    const char *v = line + k + 1;
    size_t vl = len - k - 1;
    while (vl && (*v == ' ' || *v == '\t'))
        v++, vl--;
    while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' '))
        vl--;
    if (vl >= n)
        vl = n - 1;
    memcpy(out, v, vl);
    out[vl] = '\0';
}

static size_t on_header(char *p, size_t sz, size_t n, void *ud)
{
    kn_invoke_result *r = ud;
    header_value(p, sz * n, "Content-Type", r->content_type, sizeof r->content_type);
    header_value(p, sz * n, "X-Amzn-SageMaker-Custom-Attributes", r->custom_attributes,
                 sizeof r->custom_attributes);
    return sz * n;
}

/* Picks the variant (by target or weight) and its least-loaded ready
 * instance, skipping `exclude`. f->mu held. */
static instance *pick(kn_fleet *f, fendpoint *ep, const char *target, int exclude, int *vindex)
{
    double total = 0;
    for (int i = 0; i < ep->rec.n_variants; i++) {
        if (target && strcmp(ep->rec.variants[i].variant_name, target) != 0)
            continue;
        if (count_state(&ep->vars[i], true) > 0)
            total += ep->rec.variants[i].desired_weight > 0 ? ep->rec.variants[i].desired_weight
                                                             : 1e-9;
    }
    if (total <= 0)
        return NULL;
    double x = kn_rng_uniform(&f->rng) * total;
    int chosen = -1;
    for (int i = 0; i < ep->rec.n_variants; i++) {
        if (target && strcmp(ep->rec.variants[i].variant_name, target) != 0)
            continue;
        if (count_state(&ep->vars[i], true) == 0)
            continue;
        chosen = i;
        double w = ep->rec.variants[i].desired_weight > 0 ? ep->rec.variants[i].desired_weight
                                                          : 1e-9;
        if (x < w)
            break;
        x -= w;
    }
    if (chosen < 0)
        return NULL;
    fvariant *v = &ep->vars[chosen];
    instance *best = NULL;
    int n_ready = 0;
    for (instance *in = v->insts; in; in = in->next)
        if (in->state == INST_READY)
            n_ready++;
    /* start the scan at a rotating offset so equal loads share the work */
    unsigned start = n_ready ? v->rr++ % (unsigned)n_ready : 0, idx = 0;
    for (int pass = 0; pass < 2; pass++)
        for (instance *in = v->insts; in; in = in->next) {
            if (in->state != INST_READY)
                continue;
            unsigned my = idx++;
            if ((pass == 0) != (my >= start))
                continue;
            if (in->broken || in->id == exclude)
                continue;
            if (!best || in->outstanding < best->outstanding)
                best = in;
        }
    *vindex = chosen;
    return best;
}

kn_status kn_fleet_invoke(kn_fleet *f, const kn_invoke_request *rq, kn_invoke_result *out,
                          kn_err *e)
{
    int exclude = 0;
    for (int attempt = 0; attempt < 2; attempt++) {
        pthread_mutex_lock(&f->mu);
        fendpoint *ep = find(f, rq->endpoint);
        if (!ep || ep->deleting) {
            pthread_mutex_unlock(&f->mu);
            return kn_err_set(e, KN_NOT_FOUND, "Endpoint %s of account %s not found.",
                              rq->endpoint, kn_registry_account(f->reg));
        }
        if (rq->target_variant) {
            bool found = false;
            for (int i = 0; i < ep->rec.n_variants; i++)
                found = found || strcmp(ep->rec.variants[i].variant_name, rq->target_variant) == 0;
            if (!found) {
                pthread_mutex_unlock(&f->mu);
                return kn_err_set(e, KN_INVALID,
                                  "Endpoint %s does not have a variant named %s.", rq->endpoint,
                                  rq->target_variant);
            }
        }
        int vindex = 0;
        uint64_t t0 = kn_now_ns();
        instance *in = pick(f, ep, rq->target_variant, exclude, &vindex);
        if (!in) {
            /* between instances (a replacement is starting): wait for one,
             * unless the endpoint is not serving at all */
            struct timespec until;
            deadline_in(&until, NO_INSTANCE_WAIT_MS);
            while (!in && !f->stopping && !ep->deleting &&
                   (strcmp(ep->rec.status, "InService") == 0 ||
                    strcmp(ep->rec.status, "SystemUpdating") == 0 ||
                    strcmp(ep->rec.status, "Updating") == 0)) {
                if (pthread_cond_timedwait(&f->changed, &f->mu, &until) == ETIMEDOUT)
                    break;
                in = pick(f, ep, rq->target_variant, exclude, &vindex);
            }
        }
        if (!in) {
            kn_status s;
            if (strcmp(ep->rec.status, "Creating") == 0 || strcmp(ep->rec.status, "Failed") == 0)
                s = kn_err_set(e, KN_INVALID,
                               "Endpoint %s is %s; it can be invoked once it is InService.",
                               ep->rec.name, ep->rec.status);
            else
                s = kn_err_set(e, KN_IO, "No instance of endpoint %s could take the request.",
                               ep->rec.name);
            pthread_mutex_unlock(&f->mu);
            return s;
        }
        in->outstanding++;
        fvariant *var = &ep->vars[vindex]; /* lives while `in` is outstanding */
        int port = in->port, id = in->id;
        snprintf(out->variant, sizeof out->variant, "%s", ep->rec.variants[vindex].variant_name);
        pthread_mutex_unlock(&f->mu);

        CURL *h = pool_get(f);
        CURLcode rc = CURLE_FAILED_INIT;
        long code = 0;
        double model_us = 0;
        out->body.len = 0;
        out->content_type[0] = out->custom_attributes[0] = '\0';
        if (h) {
            char url[64], ct[1200], acc[1200], ca[1200];
            snprintf(url, sizeof url, "http://127.0.0.1:%d/invocations", port);
            struct curl_slist *hd = NULL;
            snprintf(ct, sizeof ct, "Content-Type: %s",
                     rq->content_type ? rq->content_type : "application/octet-stream");
            hd = curl_slist_append(hd, ct);
            if (rq->accept) {
                snprintf(acc, sizeof acc, "Accept: %s", rq->accept);
                hd = curl_slist_append(hd, acc);
            }
            if (rq->custom_attributes) {
                snprintf(ca, sizeof ca, "X-Amzn-SageMaker-Custom-Attributes: %s",
                         rq->custom_attributes);
                hd = curl_slist_append(hd, ca);
            }
            hd = curl_slist_append(hd, "Expect:");
            curl_easy_setopt(h, CURLOPT_URL, url);
            curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
            curl_easy_setopt(h, CURLOPT_POST, 1L);
            curl_easy_setopt(h, CURLOPT_POSTFIELDS, rq->body_len ? (const char *)rq->body : "");
            curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)rq->body_len);
            curl_easy_setopt(h, CURLOPT_HTTPHEADER, hd);
            curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)f->p.invoke_timeout_ms);
            curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 2000L);
            curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
            curl_easy_setopt(h, CURLOPT_WRITEDATA, out);
            curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
            curl_easy_setopt(h, CURLOPT_HEADERDATA, out);
            rc = curl_easy_perform(h);
            if (rc == CURLE_OK)
                curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
            curl_off_t us = 0;
            curl_easy_getinfo(h, CURLINFO_TOTAL_TIME_T, &us);
            model_us = (double)us;
            curl_slist_free_all(hd);
        }
        pool_put(f, h);

        bool transport = rc != CURLE_OK && rc != CURLE_OPERATION_TIMEDOUT &&
                         rc != CURLE_WRITE_ERROR;
        pthread_mutex_lock(&f->mu);
        if (rc == CURLE_OK || rc == CURLE_OPERATION_TIMEDOUT)
            record(f, var, rc == CURLE_OK ? (int)code : 0, model_us,
                   (double)(kn_now_ns() - t0) / 1000.0);
        in->outstanding--;
        if (transport)
            in->broken = true;
        pthread_cond_broadcast(&f->changed);
        pthread_mutex_unlock(&f->mu);

        if (rc == CURLE_OK) {
            out->status = (int)code;
            return KN_OK;
        }
        if (rc == CURLE_OPERATION_TIMEDOUT)
            return kn_err_set(e, KN_TIMEOUT,
                              "Your invocation timed out while waiting for a response from "
                              "container %s.",
                              out->variant);
        if (rc == CURLE_WRITE_ERROR)
            return kn_err_set(e, KN_TOO_LARGE, "The instance's response is larger than %zu bytes.",
                              MAX_RESPONSE);
        kn_log(KN_LOG_WARN, "endpoint %s: instance %d: %s%s", rq->endpoint, id,
               curl_easy_strerror(rc), attempt == 0 ? "; retrying on another instance" : "");
        exclude = id;
        if (attempt == 1)
            return kn_err_set(e, KN_IO, "The instance failed to answer: %s.",
                              curl_easy_strerror(rc));
    }
    return kn_err_set(e, KN_IO, "no instance answered");
}
