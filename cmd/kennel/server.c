/* kennel server: the daemon. Opens the data directory (exclusive lock,
 * SQLite registry, artifact store), starts the fleet that runs endpoint
 * instances (this same executable as `kennel model-server`, found through
 * /proc/self/exe), and serves the AWS-compatible front door until SIGTERM
 * or SIGINT, then stops in reverse order: no new requests, instances
 * stopped, database closed.
 *
 * Signals are blocked before any thread starts, so every thread inherits
 * the mask and main() receives them with sigwait(). */
#include "cli.h"

#include "kennel/api.h"
#include "kennel/jobs.h"
#include "kennel/fn.h"
#include "kennel/platform.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *f)
{
    fprintf(f,
            "usage: kennel server [options]\n"
            "\n"
            "Runs the kennel daemon: the SageMaker API (JSON 1.1, X-Amz-Target SageMaker.*:\n"
            "models, endpoints, training and tuning jobs), SageMaker Runtime (POST\n"
            "/endpoints/NAME/invocations), Application Auto Scaling\n"
            "(AnyScaleFrontendService.*), IAM and STS (Query), the endpoints' instances\n"
            "and the jobs' processes, with Prometheus text at GET /metrics and the web\n"
            "console at /console/. Point the AWS CLI or an SDK at it with --endpoint-url,\n"
            "or use kennel deploy / invoke / endpoints / autoscale / tune.\n"
            "Operations: docs/API.md; data dir, backup, ports, security: docs/OPERATIONS.md.\n"
            "\n"
            "  --data-dir DIR        state: kennel.db, artifacts/, instances/, weights/\n"
            "                        (the instances' shared weights files), training-jobs/,\n"
            "                        functions/, iam.key, admin-credentials (default\n"
            "                        $XDG_DATA_HOME/kennel or ~/.local/share/kennel)\n"
            "  --listen ADDR         IPv4 address to bind (default 127.0.0.1)\n"
            "  --port N              port (default 8080); 0 picks a free port\n"
            "  --ready-file F        once listening, write \"ADDR:PORT\" to F (removed at exit)\n"
            "  --clock-rate N        run the daemon's clock N times faster (default 1)\n"
            "  --startup-timeout S   seconds an instance has to answer /ping (default 240)\n"
            "  --health-interval-ms N  ping ready instances every N ms; 3 failures replace\n"
            "                        one (default 5000, 0 = never)\n"
            "  --insecure-no-auth    accept every request unsigned and unchecked (local\n"
            "                        experiments only; prints a warning)\n"
            "  --function-idle-ms N  stop a function's idle on-demand environment after N ms\n"
            "                        (default 600000)\n"
            "  --account-concurrency N  functions' account concurrency limit (default 1000)\n"
            "  --audit-retention-days N  keep audit-log rows N days of the daemon's clock\n"
            "                        (default 90, as CloudTrail's event history; 0 = forever)\n"
            "  --verbose             log every request\n"
            "\n"
            "Every API request must be signed (SigV4) with a key of the daemon's IAM and be\n"
            "allowed by its policies. On first start the daemon creates user admin with\n"
            "AdministratorAccess and writes its key to DIR/admin-credentials (mode 0600);\n"
            "with KENNEL_ROOT_ACCESS_KEY_ID and KENNEL_ROOT_SECRET_ACCESS_KEY set, that key\n"
            "is used instead of a random one.\n");
}

static bool parse_long(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

static bool write_ready(const char *path, const char *addr, int port)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp)
        return false;
    FILE *f = fopen(tmp, "w");
    if (!f)
        return false;
    bool ok = fprintf(f, "%s:%d\n", addr, port) > 0;
    ok = (fclose(f) == 0) && ok;
    if (ok && rename(tmp, path) != 0)
        ok = false;
    if (!ok)
        unlink(tmp);
    return ok;
}

int kn_cli_server(int argc, char **argv)
{
    enum {
        O_DATA = 256,
        O_LISTEN,
        O_PORT,
        O_READY,
        O_RATE,
        O_STARTUP,
        O_HEALTH,
        O_VERBOSE,
        O_NO_AUTH,
        O_FN_IDLE,
        O_FN_LIMIT,
        O_AUDIT_DAYS
    };
    static const struct option opts[] = {
        {"data-dir", required_argument, NULL, O_DATA},
        {"listen", required_argument, NULL, O_LISTEN},
        {"port", required_argument, NULL, O_PORT},
        {"ready-file", required_argument, NULL, O_READY},
        {"clock-rate", required_argument, NULL, O_RATE},
        {"startup-timeout", required_argument, NULL, O_STARTUP},
        {"health-interval-ms", required_argument, NULL, O_HEALTH},
        {"verbose", no_argument, NULL, O_VERBOSE},
        {"insecure-no-auth", no_argument, NULL, O_NO_AUTH},
        {"function-idle-ms", required_argument, NULL, O_FN_IDLE},
        {"account-concurrency", required_argument, NULL, O_FN_LIMIT},
        {"audit-retention-days", required_argument, NULL, O_AUDIT_DAYS},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    kn_platform_params pp = kn_platform_default_params();
    kn_api_http_params hp = kn_api_http_default_params();
    kn_fleet_params fp = kn_fleet_default_params();
    kn_fn_params fnp = kn_fn_default_params();
    hp.port = 8080;
    const char *ready_file = NULL;
    bool no_auth = false;
    long audit_days = 90;
    long v;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case O_DATA:
            pp.data_dir = optarg;
            break;
        case O_LISTEN:
            hp.host = optarg;
            break;
        case O_PORT:
            if (!parse_long(optarg, 0, 65535, &v)) {
                fprintf(stderr, "kennel server: --port '%s' is not in [0, 65535]\n", optarg);
                return 2;
            }
            hp.port = (int)v;
            break;
        case O_READY:
            ready_file = optarg;
            break;
        case O_RATE: {
            char *end;
            double r = strtod(optarg, &end);
            if (end == optarg || *end || !(r > 0 && r <= 1e6)) {
                fprintf(stderr, "kennel server: --clock-rate '%s' is not in (0, 1000000]\n",
                        optarg);
                return 2;
            }
            pp.clock_rate = r;
            break;
        }
        case O_STARTUP:
            if (!parse_long(optarg, 1, 86400, &v)) {
                fprintf(stderr, "kennel server: --startup-timeout '%s' is not in [1, 86400]\n",
                        optarg);
                return 2;
            }
            fp.startup_timeout_s = (unsigned)v;
            break;
        case O_HEALTH:
            if (!parse_long(optarg, 0, 3600000, &v)) {
                fprintf(stderr, "kennel server: --health-interval-ms '%s' is not in [0, 3600000]\n",
                        optarg);
                return 2;
            }
            fp.health_interval_ms = (unsigned)v;
            break;
        case O_AUDIT_DAYS:
            if (!parse_long(optarg, 0, 36500, &audit_days)) {
                fprintf(stderr,
                        "kennel server: --audit-retention-days '%s' is not in [0, 36500] "
                        "(0 keeps every row)\n",
                        optarg);
                return 2;
            }
            break;
        case O_FN_IDLE:
            if (!parse_long(optarg, 1, 86400000, &v)) {
                fprintf(stderr, "kennel server: --function-idle-ms '%s' is not in [1, 86400000]\n",
                        optarg);
                return 2;
            }
            fnp.idle_ms = (unsigned)v;
            break;
        case O_FN_LIMIT:
            if (!parse_long(optarg, 100, 1000000, &v)) {
                fprintf(stderr,
                        "kennel server: --account-concurrency '%s' is not in [100, 1000000]\n",
                        optarg);
                return 2;
            }
            fnp.account_limit = (int)v;
            break;
        case O_VERBOSE:
            kn_log_set_level(KN_LOG_DEBUG);
            break;
        case O_NO_AUTH:
            no_auth = true;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "kennel server: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }

    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) {
        fprintf(stderr, "kennel server: cannot find its own executable: %s\n", strerror(errno));
        return 1;
    }
    self[n] = '\0';
    fp.instance_bin = self;

    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    int rc = 1;
    kn_err e;
    kn_err_clear(&e);
    kn_platform *p = NULL;
    kn_fleet *fleet = NULL;
    kn_jobs *jobs = NULL;
    kn_fn *fn = NULL;
    kn_api *api = NULL;
    kn_api_http *http = NULL;
    kn_iam *iam = NULL;
    if (no_auth)
        fprintf(stderr, "kennel server: WARNING: --insecure-no-auth: requests are neither "
                        "authenticated nor authorized; anyone who can reach the port controls "
                        "this daemon\n");
    if (kn_platform_open(&pp, &p, &e)) {
        fprintf(stderr, "kennel server: %s\n", e.msg);
        goto out;
    }
    if (!no_auth) {
        bool created = false;
        char cred[PATH_MAX + 64];
        if (kn_iam_open(p, &iam, &e) ||
            kn_iam_bootstrap(iam, getenv("KENNEL_ROOT_ACCESS_KEY_ID"),
                             getenv("KENNEL_ROOT_SECRET_ACCESS_KEY"), &created, cred,
                             sizeof cred, &e)) {
            fprintf(stderr, "kennel server: %s\n", e.msg);
            goto out;
        }
        kn_iam_set_audit_retention(iam, (double)audit_days * 86400.0);
        if (created)
            fprintf(stderr,
                    "kennel server: created IAM user admin (AdministratorAccess); its access "
                    "key is in %s (mode 0600)\n",
                    cred);
    }
    /* Environments get their execution role's temporary credentials from
     * IAM; without authentication, the daemon's configured ones. */
    fnp.iam = iam;
    fnp.access_key = getenv("KENNEL_ROOT_ACCESS_KEY_ID");
    fnp.secret_key = getenv("KENNEL_ROOT_SECRET_ACCESS_KEY");
    if (!fnp.access_key || !fnp.secret_key) {
        fnp.access_key = getenv("AWS_ACCESS_KEY_ID");
        fnp.secret_key = getenv("AWS_SECRET_ACCESS_KEY");
        fnp.session_token = getenv("AWS_SESSION_TOKEN");
    }
    kn_jobs_params jp = kn_jobs_default_params();
    jp.bin = self;
    if (kn_fleet_start(p, &fp, &fleet, &e) || kn_jobs_start(p, &jp, &jobs, &e) ||
        kn_fn_start(p, &fnp, &fn, &e)) {
        fprintf(stderr, "kennel server: %s\n", e.msg);
        goto out;
    }
    kn_api_params ap = kn_api_default_params();
    ap.fleet = fleet;
    ap.iam = iam;
    ap.jobs = jobs;
    ap.fn = fn;
    if (kn_api_new(p, &ap, &api, &e) || kn_api_http_start(api, &hp, &http, &e)) {
        fprintf(stderr, "kennel server: %s\n", e.msg);
        goto out;
    }
    int port = kn_api_http_port(http);
    char url[128];
    snprintf(url, sizeof url, "http://%s:%d",
             strcmp(hp.host, "0.0.0.0") == 0 ? "127.0.0.1" : hp.host, port);
    kn_fn_set_endpoint_url(fn, url);
    fprintf(stderr, "kennel server: data dir %s, clock rate %g\n", kn_platform_data_dir(p),
            kn_clock_rate(kn_platform_clock(p)));
    printf("listening on %s:%d\n", hp.host, port);
    fflush(stdout);
    if (ready_file && !write_ready(ready_file, hp.host, port)) {
        fprintf(stderr, "kennel server: cannot write %s: %s\n", ready_file, strerror(errno));
        goto out;
    }
    int sig = 0;
    while (sigwait(&sigs, &sig) != 0)
        ;
    fprintf(stderr, "kennel server: %s, stopping\n", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    if (ready_file)
        unlink(ready_file);
    rc = 0;
out:
    kn_api_http_stop(http);
    kn_jobs_stop(jobs);
    kn_fn_stop(fn);
    kn_fleet_stop(fleet);
    kn_api_free(api);
    kn_iam_close(iam);
    kn_platform_close(p);
    return rc;
}
