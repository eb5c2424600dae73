/* kennel model-server: serve one model over HTTP under the SageMaker
 * inference container contract (GET /ping, POST /invocations), with dynamic
 * batching. The work is in the serve module; this file reads options, waits
 * for SIGTERM/SIGINT and shuts down gracefully.
 *
 * SIGTERM/SIGINT: a handler writes the signal number to a pipe that main()
 * reads. Waiting with sigwait() on a blocked mask is not enough here: threads
 * that libraries start before main() (OpenBLAS's pool) never block the
 * signals, so one arriving while main() is not inside sigwait() — during the
 * model load, or a second SIGTERM while draining — would be delivered there
 * with its default action and kill the process. With the handler, any signal
 * at any time only asks for the graceful stop. The threads the server starts
 * inherit a mask blocking both, so the handler runs in main() when it can. */
#include "cli.h"

#include "kennel/serve.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

static void usage(FILE *f)
{
    fprintf(f,
            "usage: kennel model-server --model PATH [options]\n"
            "\n"
            "Serves GET /ping, POST /invocations, GET /metrics.\n"
            "\n"
            "  --model PATH            package directory, model.tar.gz, .tflite, or\n"
            "                          .safetensors with --arch\n"
            "  --arch NAME             architecture of a bare .safetensors\n"
            "  --hidden N              hidden layer of a bare .safetensors head (repeatable)\n"
            "  --labels FILE           class names, one per line (.tflite, .safetensors)\n"
            "  --listen ADDR           address to bind (default 127.0.0.1)\n"
            "  --port N                port (default $SAGEMAKER_BIND_TO_PORT, else 8080);\n"
            "                          0 picks a free port\n"
            "  --max-batch N           images per forward pass (default 8)\n"
            "  --max-wait-us N         longest a queued image waits for company while\n"
            "                          other requests are arriving (default 2000)\n"
            "  --threads N             compute threads (default 2)\n"
            "  --backend B             dnnl (default) or ref\n"
            "  --max-body SIZE         request body limit (default 6MiB)\n"
            "  --max-images N          images in one request (default 64)\n"
            "  --max-pixels N          refuse images declaring more pixels (default 64M)\n"
            "  --url-max-bytes SIZE    limit per fetched URL (default 16MiB)\n"
            "  --url-max-total SIZE    limit for all URLs of one request (default 64MiB)\n"
            "  --url-timeout-ms N      time for a request's URL fetches (default 10000)\n"
            "  --url-max-redirects N   redirects followed (default 3)\n"
            "  --allow-url-schemes L   comma-separated: http, https, file\n"
            "                          (default http,https)\n"
            "  --max-connections N     concurrent connections (default 256)\n"
            "  --idle-timeout-s N      close idle keep-alive connections (default 60)\n"
            "  --drain-ms N            on SIGTERM, time for requests in flight (default 30000)\n"
            "  --no-warmup             prepare only the largest batch size at start\n"
            "  --ready-file F          once listening, write \"ADDR:PORT\" to F (removed at exit)\n"
            "  --weights-cache DIR     map the weights read-only from a file in DIR that every\n"
            "                          server of the same model shares (written once)\n"
            "\n"
            "SIZE takes a suffix: K/KiB, M/MiB, G/GiB (1024-based) or KB, MB, GB.\n");
}

/* "6MiB", "512K", "1000000" -> bytes. */
static bool parse_size(const char *s, uint64_t *out)
{
    static const struct {
        const char *suffix;
        uint64_t mul;
    } units[] = {
        {"", 1},          {"b", 1},          {"k", 1u << 10},   {"kib", 1u << 10},
        {"kb", 1000},     {"m", 1u << 20},   {"mib", 1u << 20}, {"mb", 1000000},
        {"g", 1u << 30},  {"gib", 1u << 30}, {"gb", 1000000000},
    };
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || s[0] == '-')
        return false;
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (strcasecmp(end, units[i].suffix) == 0) {
            if (v > UINT64_MAX / units[i].mul)
                return false;
            *out = v * units[i].mul;
            return true;
        }
    return false;
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

/* Write end of the signal pipe: the process's one piece of signal state. */
static int stop_pipe_wr = -1;

static void on_stop_signal(int sig)
{
    int saved = errno;
    unsigned char b = (unsigned char)sig;
    if (write(stop_pipe_wr, &b, 1) < 0) {
        /* the pipe is full of earlier requests to stop: nothing to add */
    }
    errno = saved;
}

/* Installs the handler; *rd is the end main() reads. */
static bool stop_signals_init(int *rd)
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0)
        return false;
    fcntl(fds[1], F_SETFL, O_NONBLOCK);
    stop_pipe_wr = fds[1];
    *rd = fds[0];
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    return sigaction(SIGTERM, &sa, NULL) == 0 && sigaction(SIGINT, &sa, NULL) == 0;
}

/* Blocks until SIGTERM or SIGINT has arrived (maybe long ago); returns it. */
static int stop_signals_wait(int rd)
{
    unsigned char b = 0;
    for (;;) {
        ssize_t n = read(rd, &b, 1);
        if (n == 1)
            return b;
        if (n < 0 && errno != EINTR)
            return SIGTERM; /* cannot happen with a pipe we own; stop anyway */
    }
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

int kn_cli_model_server(int argc, char **argv)
{
    enum {
        O_ARCH = 256, O_HIDDEN, O_LABELS, O_LISTEN, O_PORT, O_MAX_BATCH, O_MAX_WAIT, O_THREADS,
        O_BACKEND, O_MAX_BODY, O_MAX_IMAGES, O_MAX_PIXELS, O_URL_BYTES, O_URL_TOTAL, O_URL_TIMEOUT,
        O_URL_REDIRS, O_SCHEMES, O_MAX_CONN, O_IDLE, O_DRAIN, O_NO_WARMUP, O_READY,
        O_WEIGHTS_CACHE,
    };
    static const struct option opts[] = {
        {"model", required_argument, NULL, 'm'},
        {"arch", required_argument, NULL, O_ARCH},
        {"hidden", required_argument, NULL, O_HIDDEN},
        {"labels", required_argument, NULL, O_LABELS},
        {"listen", required_argument, NULL, O_LISTEN},
        {"port", required_argument, NULL, O_PORT},
        {"max-batch", required_argument, NULL, O_MAX_BATCH},
        {"max-wait-us", required_argument, NULL, O_MAX_WAIT},
        {"threads", required_argument, NULL, O_THREADS},
        {"backend", required_argument, NULL, O_BACKEND},
        {"max-body", required_argument, NULL, O_MAX_BODY},
        {"max-images", required_argument, NULL, O_MAX_IMAGES},
        {"max-pixels", required_argument, NULL, O_MAX_PIXELS},
        {"url-max-bytes", required_argument, NULL, O_URL_BYTES},
        {"url-max-total", required_argument, NULL, O_URL_TOTAL},
        {"url-timeout-ms", required_argument, NULL, O_URL_TIMEOUT},
        {"url-max-redirects", required_argument, NULL, O_URL_REDIRS},
        {"allow-url-schemes", required_argument, NULL, O_SCHEMES},
        {"max-connections", required_argument, NULL, O_MAX_CONN},
        {"idle-timeout-s", required_argument, NULL, O_IDLE},
        {"drain-ms", required_argument, NULL, O_DRAIN},
        {"no-warmup", no_argument, NULL, O_NO_WARMUP},
        {"ready-file", required_argument, NULL, O_READY},
        {"weights-cache", required_argument, NULL, O_WEIGHTS_CACHE},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    kn_serve_params p = kn_serve_default_params();
    const char *ready_file = NULL;
    bool port_given = false;
    long drain_ms = 30000, v;
    uint64_t sz;
    optind = 1;
    int c;
#define BAD(...)                                                                             \
    do {                                                                                     \
        fprintf(stderr, "kennel model-server: " __VA_ARGS__);                                \
        fputc('\n', stderr);                                                                 \
        return 2;                                                                            \
    } while (0)
    while ((c = getopt_long(argc, argv, "m:h", opts, NULL)) != -1) {
        switch (c) {
        case 'm':
            p.model = optarg;
            break;
        case O_ARCH:
            p.load.arch = optarg;
            break;
        case O_HIDDEN:
            if (p.load.head.n_hidden == KN_NN_MAX_HIDDEN)
                BAD("at most %d --hidden layers", KN_NN_MAX_HIDDEN);
            if (!parse_long(optarg, 1, 1 << 20, &v))
                BAD("--hidden '%s' is not a positive number", optarg);
            p.load.head.hidden[p.load.head.n_hidden++] = (int)v;
            break;
        case O_LABELS:
            p.load.labels = optarg;
            break;
        case O_LISTEN:
            p.listen = optarg;
            break;
        case O_PORT:
            if (!parse_long(optarg, 0, 65535, &v))
                BAD("--port '%s' is not in [0, 65535]", optarg);
            p.port = (int)v;
            port_given = true;
            break;
        case O_MAX_BATCH:
            if (!parse_long(optarg, 1, 1024, &v))
                BAD("--max-batch '%s' is not in [1, 1024]", optarg);
            p.max_batch = (int)v;
            break;
        case O_MAX_WAIT:
            if (!parse_long(optarg, 0, 10000000, &v))
                BAD("--max-wait-us '%s' is not in [0, 10000000]", optarg);
            p.max_wait_us = (uint64_t)v;
            break;
        case O_THREADS:
            if (!parse_long(optarg, 1, 1024, &v))
                BAD("--threads '%s' is not in [1, 1024]", optarg);
            p.threads = (int)v;
            break;
        case O_BACKEND:
            if (kn_nn_backend_parse(optarg, &p.backend))
                BAD("--backend '%s' (dnnl or ref)", optarg);
            break;
        case O_MAX_BODY:
            if (!parse_size(optarg, &sz) || sz < 1 || sz > ((uint64_t)1 << 32))
                BAD("--max-body '%s' is not a size in [1, 4GiB]", optarg);
            p.max_body = (size_t)sz;
            break;
        case O_MAX_IMAGES:
            if (!parse_long(optarg, 1, 4096, &v))
                BAD("--max-images '%s' is not in [1, 4096]", optarg);
            p.max_images = (int)v;
            break;
        case O_MAX_PIXELS:
            if (!parse_size(optarg, &sz) || sz < 1)
                BAD("--max-pixels '%s' is not a positive number", optarg);
            p.max_pixels = sz;
            break;
        case O_URL_BYTES:
            if (!parse_size(optarg, &sz) || sz < 1 || sz > ((uint64_t)1 << 32))
                BAD("--url-max-bytes '%s' is not a size in [1, 4GiB]", optarg);
            p.url_max_bytes = (size_t)sz;
            break;
        case O_URL_TOTAL:
            if (!parse_size(optarg, &sz) || sz < 1 || sz > ((uint64_t)1 << 34))
                BAD("--url-max-total '%s' is not a size in [1, 16GiB]", optarg);
            p.url_max_total = (size_t)sz;
            break;
        case O_URL_TIMEOUT:
            if (!parse_long(optarg, 1, 3600000, &v))
                BAD("--url-timeout-ms '%s' is not in [1, 3600000]", optarg);
            p.url_timeout_ms = v;
            break;
        case O_URL_REDIRS:
            if (!parse_long(optarg, 0, 50, &v))
                BAD("--url-max-redirects '%s' is not in [0, 50]", optarg);
            p.url_max_redirects = (int)v;
            break;
        case O_SCHEMES:
            p.url_schemes = optarg;
            break;
        case O_MAX_CONN:
            if (!parse_long(optarg, 1, 65536, &v))
                BAD("--max-connections '%s' is not in [1, 65536]", optarg);
            p.max_connections = (unsigned)v;
            break;
        case O_IDLE:
            if (!parse_long(optarg, 1, 86400, &v))
                BAD("--idle-timeout-s '%s' is not in [1, 86400]", optarg);
            p.idle_timeout_s = (unsigned)v;
            break;
        case O_DRAIN:
            if (!parse_long(optarg, 0, 3600000, &v))
                BAD("--drain-ms '%s' is not in [0, 3600000]", optarg);
            drain_ms = v;
            break;
        case O_NO_WARMUP:
            p.warmup = false;
            break;
        case O_READY:
            ready_file = optarg;
            break;
        case O_WEIGHTS_CACHE:
            p.weights_cache = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc)
        BAD("unexpected argument '%s'", argv[optind]);
    if (!p.model) {
        fprintf(stderr, "kennel model-server: --model is required\n");
        usage(stderr);
        return 2;
    }
    if (!port_given) {
        const char *env = getenv("SAGEMAKER_BIND_TO_PORT");
        if (env && env[0]) {
            if (!parse_long(env, 0, 65535, &v))
                BAD("SAGEMAKER_BIND_TO_PORT '%s' is not in [0, 65535]", env);
            p.port = (int)v;
        }
    }
#undef BAD

    int stop_rd = -1;
    if (!stop_signals_init(&stop_rd)) {
        fprintf(stderr, "kennel model-server: cannot set up signal handling: %s\n",
                strerror(errno));
        return 1;
    }
    /* every thread started from here on inherits this mask */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    kn_err e;
    kn_err_clear(&e);
    kn_serve *s = NULL;
    if (kn_serve_new(&p, &s, &e)) {
        fprintf(stderr, "kennel model-server: %s\n", e.msg);
        return 1;
    }
    if (kn_serve_start(s, &e)) {
        fprintf(stderr, "kennel model-server: %s\n", e.msg);
        kn_serve_free(s);
        return 1;
    }
    int port = kn_serve_port(s);
    bool v6 = strchr(p.listen, ':') != NULL;
    char addr[300];
    snprintf(addr, sizeof addr, v6 ? "[%s]" : "%s", p.listen);
    const kn_model *m = kn_serve_model(s);
    fprintf(stderr, "kennel model-server: %s (%s, %d classes), batch <= %d, wait <= %llu us\n",
            m->source, m->arch, m->n_classes, p.max_batch, (unsigned long long)p.max_wait_us);
    printf("listening on %s:%d\n", addr, port);
    fflush(stdout);
    if (ready_file && !write_ready(ready_file, addr, port)) {
        fprintf(stderr, "kennel model-server: cannot write %s: %s\n", ready_file,
                strerror(errno));
        kn_serve_free(s);
        return 1;
    }

    pthread_sigmask(SIG_UNBLOCK, &sigs, NULL); /* the server's threads are started */
    int sig = stop_signals_wait(stop_rd);
    fprintf(stderr, "kennel model-server: %s, finishing requests in flight\n",
            sig == SIGTERM ? "SIGTERM" : "SIGINT");
    if (ready_file)
        unlink(ready_file);
    kn_serve_stop(s, (unsigned)drain_ms);
    kn_serve_free(s);
    return 0;
}
