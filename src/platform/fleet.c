/* The fleet: endpoint instances as child processes and their supervision
 * (see platform.h): spawning, reaping, start-up and health pings, status
 * transitions, updates, restart, and the endpoint operations. Invocations
 * are in fleet_router.c, metrics and autoscaling in fleet_scaling.c.
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
#include "fleet_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

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

uint64_t kn_fleet__real_ns(void)
{
    return kn_now_ns();
}

void kn_fleet__deadline_in(struct timespec *ts, unsigned ms)
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

CURL *kn_fleet__pool_get(kn_fleet *f)
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

void kn_fleet__pool_put(kn_fleet *f, CURL *h)
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
    CURL *h = kn_fleet__pool_get(f);
    if (!h)
        return false;
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/ping", port);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_PROXY, ""); /* loopback: never via a proxy */
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 2000L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
    long code = 0;
    bool ok = curl_easy_perform(h) == CURLE_OK &&
              curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code) == CURLE_OK && code == 200;
    kn_fleet__pool_put(f, h);
    return ok;
}

/* ------------------------------------------------------------ processes */

static const char *const status_names[] = {"Creating", "InService",   "Updating",
                                           "SystemUpdating", "RollingBack", "Deleting",
                                           "Failed"};

void kn_fleet__set_status(kn_fleet *f, fendpoint *ep, const char *status, const char *reason)
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

    char threads[16], omp[32], wcache[PATH_MAX];
    snprintf(threads, sizeof threads, "%d", v->threads);
    /* instances of one model map one file of its weights (see serve.h) */
    snprintf(wcache, sizeof wcache, "%.3000s/weights", kn_platform_data_dir(f->platform));
    snprintf(omp, sizeof omp, "OMP_NUM_THREADS=%d", v->threads);
    char *argv[] = {f->bin,        "model-server", "--model", v->rec->model_data_path,
                    "--listen",    "127.0.0.1",    "--port",  "0",
                    "--ready-file", in->ready_file, "--threads", threads,
                    "--weights-cache", wcache, NULL};
    /* environment: ours, with OMP_NUM_THREADS replaced, and OpenMP threads
     * that sleep rather than spin between parallel regions unless
     * OMP_WAIT_POLICY says otherwise: a spinning instance burns a core
     * between requests (a tiny model took 200 us of CPU per request instead
     * of 50), which other instances and the router need; resnet50's forward
     * pass is no slower (bench/router_bench.sh, bench/README.md) */
    extern char **environ;
    size_t ne = 0;
    bool wait_policy = false;
    while (environ[ne])
        wait_policy = wait_policy || strncmp(environ[ne++], "OMP_WAIT_POLICY=", 16) == 0;
    char **envp = calloc(ne + 3, sizeof *envp);
    int logfd = open(in->log_file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (!envp || logfd < 0) {
        kn_log(KN_LOG_ERROR, "endpoint %s: cannot prepare an instance: %s", ep->rec.name,
               logfd < 0 ? strerror(errno) : "out of memory");
        free(envp);
        if (logfd >= 0)
            close(logfd);
        free(in);
        v->next_spawn_ns = kn_fleet__real_ns() + 1000000000ull;
        return;
    }
    size_t k = 0;
    for (size_t i = 0; i < ne; i++)
        if (strncmp(environ[i], "OMP_NUM_THREADS=", 16) != 0)
            envp[k++] = environ[i];
    envp[k++] = omp;
    if (!wait_policy)
        envp[k++] = "OMP_WAIT_POLICY=PASSIVE";
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
        v->next_spawn_ns = kn_fleet__real_ns() + 1000000000ull;
        return;
    }
    in->pid = pid;
    in->state = INST_STARTING;
    in->started_ns = kn_fleet__real_ns();
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
        in->stop_sent_ns = kn_fleet__real_ns();
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

/* ------------------------------------------------------------ supervisor */

bool kn_fleet__status_is(const fendpoint *ep, const char *s)
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
                        v->next_spawn_ns = kn_fleet__real_ns() + (500000000ull << shift);
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
                kn_fleet__real_ns() - in->stop_sent_ns > (uint64_t)f->p.stop_grace_ms * 1000000ull)
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
                        in->pinged_ns = kn_fleet__real_ns();
                        in->state = INST_READY;
                        v->failures = 0;
                        kn_log(KN_LOG_INFO, "endpoint %s: instance %d ready on port %d",
                               ep->rec.name, in->id, port);
                        pthread_cond_broadcast(&f->changed);
                        continue;
                    }
                }
                if (in->state == INST_STARTING &&
                    kn_fleet__real_ns() - in->started_ns > (uint64_t)v->startup_timeout_s * 1000000000ull) {
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
        uint64_t now = kn_fleet__real_ns();
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
            in->pinged_ns = kn_fleet__real_ns();
            if (ok[i]) {
                in->broken = false;
                in->ping_failures = 0;
            } else if (in->state == INST_READY && (in->broken || ++in->ping_failures >= 3)) {
                /* a suspect instance gets one chance; a routine check three */
                kn_log(KN_LOG_WARN, "endpoint %s: instance %d stopped answering /ping; "
                       "replacing it", ep->rec.name, in->id);
                kill(in->pid, SIGKILL);
                in->state = INST_STOPPING;
                in->stop_sent_ns = kn_fleet__real_ns();
            }
        }
        if (!f->stopping) {
            struct timespec ts;
            kn_fleet__deadline_in(&ts, 50);
            pthread_cond_timedwait(&f->changed, &f->mu, &ts);
        }
    }
    pthread_mutex_unlock(&f->mu);
    return NULL;
}

int kn_fleet__count(const fvariant *v, bool ready_only)
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
    uint64_t now = kn_fleet__real_ns();
    for (int vi = 0; vi < n; vi++) {
        fvariant *v = &vars[vi];
        int live = kn_fleet__count(v, false);
        while (live < v->rec->desired_count && now >= v->next_spawn_ns && !f->stopping) {
            int before = live;
            spawn(f, ep, v, index_base + vi);
            live = kn_fleet__count(v, false);
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
        int ready = kn_fleet__count(&vars[i], true);
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

void kn_fleet__persist(kn_fleet *f, fendpoint *ep)
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
    int64_t minute = kn_fleet__now_minute(f);
    for (fendpoint **pp = &f->eps; *pp;) {
        fendpoint *ep = *pp;
        outcome oc = {0}, oc_next = {0};
        if (!ep->ghost)
            kn_fleet__flush_metrics(f, ep, minute);
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
                kn_fleet__finish_activity(f, ep, "Failed", "The endpoint was deleted.");
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
        if (kn_fleet__status_is(ep, "Failed")) {
            pp = &ep->next;
            continue;
        }
        /* a start that fails while the endpoint is coming up fails it */
        if (oc.start_failed && (kn_fleet__status_is(ep, "Creating") || kn_fleet__status_is(ep, "SystemUpdating"))) {
            kn_fleet__set_status(f, ep, "Failed", oc.reason);
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
            kn_fleet__set_status(f, ep, "RollingBack", NULL);
            kn_fleet__set_status(f, ep, "InService", NULL);
            kn_fleet__persist(f, ep);
        }
        if (oc.start_failed && ep->has_prev && kn_fleet__status_is(ep, "Updating")) {
            kn_log(KN_LOG_WARN, "endpoint %s: capacity update failed (%s); rolling back",
                   ep->rec.name, oc.reason);
            for (int i = 0; i < ep->rec.n_variants; i++) {
                ep->rec.variants[i].desired_count = ep->vars[i].prev_count;
                ep->rec.variants[i].desired_weight = ep->vars[i].prev_weight;
            }
            ep->has_prev = false;
            kn_fleet__set_status(f, ep, "RollingBack", NULL);
            kn_fleet__set_status(f, ep, "InService", NULL);
            kn_fleet__persist(f, ep);
            kn_fleet__finish_activity(f, ep, "Failed", oc.reason);
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
            kn_fleet__set_status(f, ep, "InService", NULL);
            pthread_cond_broadcast(&f->changed);
        } else if (!ep->has_next &&
                   (kn_fleet__status_is(ep, "Creating") || kn_fleet__status_is(ep, "SystemUpdating")) &&
                   vars_settled(ep->vars, ep->rec.n_variants, false)) {
            kn_fleet__set_status(f, ep, "InService", NULL);
            /* a scaling activity interrupted by a restart: its count is back */
            kn_fleet__finish_activity(f, ep, "Successful", NULL);
        } else if (!ep->has_next && kn_fleet__status_is(ep, "Updating") &&
                   vars_settled(ep->vars, ep->rec.n_variants, true)) {
            ep->has_prev = false;
            kn_fleet__set_status(f, ep, "InService", NULL);
            kn_fleet__finish_activity(f, ep, "Successful", NULL);
        }
        pp = &ep->next;
    }
    kn_fleet__autoscale(f);
}

static void *supervise(void *arg)
{
    kn_fleet *f = arg;
    pthread_mutex_lock(&f->mu);
    while (!f->stopping) {
        tick(f);
        struct timespec ts;
        kn_fleet__deadline_in(&ts, f->p.poll_ms);
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
                kn_fleet__set_status(f, ep, "SystemUpdating", NULL);
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
        kn_fleet__adopt_activities(f);
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
    uint64_t until = kn_fleet__real_ns() + (uint64_t)f->p.stop_grace_ms * 1000000ull;
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
                            if (kn_fleet__real_ns() > until)
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

fendpoint *kn_fleet__find(kn_fleet *f, const char *name)
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
    fendpoint *old = kn_fleet__find(f, name);
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
    fendpoint *ep = s ? NULL : kn_fleet__find(f, name);
    /* the stored variants are the desired ones; current figures come from
     * the variants serving now (the old configuration during an update) */
    for (int i = 0; ep && i < out->n_variants; i++)
        for (int j = 0; j < ep->rec.n_variants; j++)
            if (strcmp(out->variants[i].variant_name, ep->rec.variants[j].variant_name) == 0) {
                out->variants[i].current_count = kn_fleet__count(&ep->vars[j], true);
                out->variants[i].current_weight = ep->rec.variants[j].desired_weight;
            }
    pthread_mutex_unlock(&f->mu);
    return s;
}

kn_status kn_fleet_endpoint_delete(kn_fleet *f, const char *name, kn_err *e)
{
    pthread_mutex_lock(&f->mu);
    fendpoint *ep = kn_fleet__find(f, name);
    kn_status s = KN_OK;
    if (!ep) {
        char arn[512];
        kn_registry_arn(f->reg, "sagemaker", "endpoint", name, arn, sizeof arn);
        s = kn_err_set(e, KN_NOT_FOUND, "Could not find endpoint \"%s\".", arn);
    } else if (!ep->deleting) {
        ep->deleting = true;
        kn_fleet__set_status(f, ep, "Deleting", NULL);
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
    fendpoint *ep = kn_fleet__find(f, name);
    kn_status s = KN_OK;
    if (!ep) {
        char arn[512];
        kn_registry_arn(f->reg, "sagemaker", "endpoint", name, arn, sizeof arn);
        s = kn_err_set(e, KN_NOT_FOUND, "Could not find endpoint \"%s\".", arn);
    } else if (ep->deleting || !kn_fleet__status_is(ep, "InService")) {
        s = in_progress(f, ep->rec.name, e);
    } else {
        kn_endpoint_rec rec;
        if (!(s = kn_registry_endpoint_update_config(f->reg, ep->rec.name, config_name, &rec,
                                                     e))) {
            ep->next_rec = rec;
            ep->next_vars = make_vars(f, &ep->next_rec);
            if (!ep->next_vars) {
                kn_endpoint_rec_deinit(&ep->next_rec);
                kn_fleet__persist(f, ep);
                s = kn_err_set(e, KN_NOMEM, "out of memory");
            } else {
                ep->has_next = true;
                kn_fleet__set_status(f, ep, "Updating", NULL);
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
    fendpoint *ep = kn_fleet__find(f, name);
    kn_status s = KN_OK;
    if (!ep) {
        char arn[512];
        kn_registry_arn(f->reg, "sagemaker", "endpoint", name, arn, sizeof arn);
        s = kn_err_set(e, KN_NOT_FOUND, "Could not find endpoint \"%s\".", arn);
        goto out;
    }
    if (ep->deleting || !kn_fleet__status_is(ep, "InService")) {
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
    kn_fleet__set_status(f, ep, "Updating", NULL);
    kn_fleet__persist(f, ep);
    pthread_cond_broadcast(&f->changed);
out:
    pthread_mutex_unlock(&f->mu);
    return s;
}
