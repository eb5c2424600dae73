/* Execution environments: one process running a function's `bootstrap`,
 * and one thread that launched it and serves its Runtime API.
 *
 * The thread owns the listener (127.0.0.1, its own port, handed to the
 * process as AWS_LAMBDA_RUNTIME_API), the pipe carrying the process's
 * stdout and stderr (the function's log) and a pidfd telling when the
 * process is gone. It polls those and the runtime's connections, answers
 *   GET  /2018-06-01/runtime/invocation/next          (blocks for work)
 *   POST /2018-06-01/runtime/invocation/{id}/response  (202; 413 over 6291556 bytes)
 *   POST /2018-06-01/runtime/invocation/{id}/error     (202)
 *   POST /2018-06-01/runtime/init/error                (202)
 * and hands results to the invocation in flight (fn_inv) under f->mu. When
 * the process exits the thread finishes that invocation as Runtime.ExitError
 * (unless a timeout already decided it), unlinks the environment and frees
 * it. The thread forked the process, so PR_SET_PDEATHSIG kills the process
 * with the environment (and with the daemon).
 */
#include "fn_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNS 8

/* A sanitizer build's functions are instrumented too, and AddressSanitizer
 * maps terabytes of shadow memory: MemorySize cannot be enforced there. */
#if defined(__SANITIZE_ADDRESS__)
#define KN_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define KN_ASAN 1
#endif
#endif
#ifndef KN_ASAN
#define KN_ASAN 0
#endif
#define PREFIX "/2018-06-01/runtime/"

typedef struct conn {
    int fd;
    kn_buf in;
    bool have_head;
    kn_fn_http_req req;
    long long discard_left;   /* body bytes still to drop (oversized response) */
    bool discarding;
} conn;

void kn_fn__log_write(kn_fn *f, const char *name, const char *text, size_t n)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/functions/%s/function.log", f->data_dir, name);
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return;
    ssize_t w = write(fd, text, n);
    (void)w;
    close(fd);
}

void kn_fn__env_kill(fn_env *v)
{
    v->kill_requested = true;
    if (v->pid > 0)
        kill(-v->pid, SIGKILL);
    pthread_cond_broadcast(&v->cv);
}

static void send_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n) {
        ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;
        c += w;
        n -= (size_t)w;
    }
}

static void reply(int fd, int status, const char *reason, const char *body)
{
    char head[256];
    size_t bl = strlen(body);
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu"
                     "\r\n\r\n",
                     status, reason, bl);
    char out[1024];
    if ((size_t)n + bl < sizeof out) {
        memcpy(out, head, (size_t)n);
        memcpy(out + n, body, bl);
        send_all(fd, out, (size_t)n + bl);
    } else {
        send_all(fd, head, (size_t)n);
        send_all(fd, body, bl);
    }
}

static void reply_error(int fd, int status, const char *reason, const char *type,
                        const char *msg)
{
    char body[512];
    snprintf(body, sizeof body, "{\"errorMessage\":\"%s\",\"errorType\":\"%s\"}", msg, type);
    reply(fd, status, reason, body);
}

/* Appends log text to the invocation in flight (bounded) and the log file. */
static void env_log(fn_env *v, const char *text, size_t n)
{
    kn_fn *f = v->fn;
    kn_fn__log_write(f, v->name, text, n);
    pthread_mutex_lock(&f->mu);
    if (v->inv) {
        fn_inv *inv = v->inv;
        if (inv->log.len + n > 65536) {
            /* keep the tail: drop the older half */
            size_t keep = inv->log.len / 2;
            memmove(inv->log.data, inv->log.data + inv->log.len - keep, keep);
            inv->log.len = keep;
        }
        if (n <= 65536)
            kn_buf_append(&inv->log, text, n);
    }
    pthread_mutex_unlock(&f->mu);
}

static void drain_log(fn_env *v, int *logfd)
{
    if (*logfd < 0)
        return;
    char buf[8192];
    for (;;) {
        ssize_t n = read(*logfd, buf, sizeof buf);
        if (n > 0) {
            env_log(v, buf, (size_t)n);
            continue;
        }
        if (n == 0) {
            close(*logfd);
            *logfd = -1;
        }
        return; /* EAGAIN or EOF */
    }
}

static uint64_t epoch_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* GET /next: waits for an invocation and sends it. false: stop serving. */
static bool serve_next(fn_env *v, conn *c, int *logfd)
{
    kn_fn *f = v->fn;
    pthread_mutex_lock(&f->mu);
    if (v->state == ENV_STARTING || !v->ready_ns) {
        v->ready_ns = kn_now_ns();
        if (v->state == ENV_STARTING)
            v->state = v->inv ? ENV_BUSY : ENV_IDLE;
        v->idle_since_ns = v->ready_ns;
        if (v->provisioned)
            kn_fn__pc_env_event(f, v, false, NULL);
    }
    while (!v->inv && !v->kill_requested && !f->stopping)
        pthread_cond_wait(&v->cv, &f->mu);
    if (v->kill_requested || f->stopping || !v->inv) {
        pthread_mutex_unlock(&f->mu);
        return false;
    }
    fn_inv *inv = v->inv;
    inv->delivered = true;
    inv->delivered_ns = kn_now_ns();
    pthread_cond_broadcast(&inv->cv);
    char head[2048];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                     "Lambda-Runtime-Aws-Request-Id: %s\r\n"
                     "Lambda-Runtime-Deadline-Ms: %llu\r\n"
                     "Lambda-Runtime-Invoked-Function-Arn: %s\r\n"
                     "Lambda-Runtime-Trace-Id: Root=1-%08llx-%.24s;Parent=%.16s;Sampled=0\r\n"
                     "%s%s%s"
                     "Content-Length: %zu\r\n\r\n",
                     inv->request_id,
                     (unsigned long long)(epoch_ms() + (uint64_t)inv->timeout_s * 1000),
                     inv->arn, (unsigned long long)(epoch_ms() / 1000), "000000000000000000000000",
                     "0000000000000000",
                     inv->client_context ? "Lambda-Runtime-Client-Context: " : "",
                     inv->client_context ? inv->client_context : "",
                     inv->client_context ? "\r\n" : "", inv->len);
    char start[200];
    int sn = snprintf(start, sizeof start, "START RequestId: %s Version: %s\n", inv->request_id,
                      inv->version);
    const uint8_t *payload = inv->payload;
    size_t len = inv->len;
    pthread_mutex_unlock(&f->mu);
    (void)logfd;
    env_log(v, start, (size_t)sn);
    /* the payload stays valid: the invoker waits for env_done */
    if (len && (size_t)n + len < 65536) {
        char *out = malloc((size_t)n + len);
        if (out) {
            memcpy(out, head, (size_t)n);
            memcpy(out + n, payload, len);
            send_all(c->fd, out, (size_t)n + len);
            free(out);
            return true;
        }
    }
    send_all(c->fd, head, (size_t)n);
    send_all(c->fd, payload, len);
    return true;
}

/* Finishes the invocation in flight with `o`. Caller holds f->mu. */
static void finish(fn_env *v, fn_outcome o, const char *body, size_t len, const char *etype)
{
    fn_inv *inv = v->inv;
    if (!inv)
        return;
    if (inv->outcome == INV_PENDING) {
        inv->outcome = o;
        inv->done_ns = kn_now_ns();
        if (body && len)
            kn_buf_append(&inv->response, body, len);
        if (etype)
            snprintf(inv->error_type, sizeof inv->error_type, "%s", etype);
    }
    inv->env_done = true;
    pthread_cond_broadcast(&inv->cv);
    v->inv = NULL;
    if (!v->kill_requested && v->state == ENV_BUSY) {
        v->state = ENV_IDLE;
        v->idle_since_ns = kn_now_ns();
    }
}

/* A whole request (head + body) is in c->in. false: stop serving. */
static bool handle(fn_env *v, conn *c, const uint8_t *body, size_t blen, bool too_large,
                   int *logfd)
{
    kn_fn *f = v->fn;
    const char *path = c->req.path;
    if (strncmp(path, PREFIX, sizeof PREFIX - 1) != 0) {
        reply_error(c->fd, 404, "Not Found", "NotFound", "no such Runtime API route");
        return true;
    }
    path += sizeof PREFIX - 1;
    if (strcmp(c->req.method, "GET") == 0 && strcmp(path, "invocation/next") == 0)
        return serve_next(v, c, logfd);
    if (strcmp(c->req.method, "POST") != 0) {
        reply_error(c->fd, 405, "Method Not Allowed", "MethodNotAllowed", "use POST");
        return true;
    }
    if (strcmp(path, "init/error") == 0) {
        drain_log(v, logfd);
        pthread_mutex_lock(&f->mu);
        snprintf(v->init_error, sizeof v->init_error, "%.*s",
                 (int)(blen < 400 ? blen : 400), (const char *)body);
        if (v->inv)
            finish(v, INV_INIT_ERROR, (const char *)body, blen,
                   c->req.error_type[0] ? c->req.error_type : "Runtime.Unknown");
        if (v->provisioned)
            kn_fn__pc_env_event(f, v, true, "The function failed to initialize.");
        kn_fn__env_kill(v);
        pthread_mutex_unlock(&f->mu);
        reply(c->fd, 202, "Accepted", "{\"status\":\"OK\"}");
        return true;
    }
    if (strncmp(path, "invocation/", 11) != 0) {
        reply_error(c->fd, 404, "Not Found", "NotFound", "no such Runtime API route");
        return true;
    }
    const char *id = path + 11;
    const char *slash = strchr(id, '/');
    if (!slash || (strcmp(slash, "/response") != 0 && strcmp(slash, "/error") != 0)) {
        reply_error(c->fd, 404, "Not Found", "NotFound", "no such Runtime API route");
        return true;
    }
    bool is_error = strcmp(slash, "/error") == 0;
    drain_log(v, logfd);
    pthread_mutex_lock(&f->mu);
    fn_inv *inv = v->inv;
    if (!inv || !inv->delivered || strlen(inv->request_id) != (size_t)(slash - id) ||
        strncmp(inv->request_id, id, (size_t)(slash - id)) != 0) {
        pthread_mutex_unlock(&f->mu);
        reply_error(c->fd, 400, "Bad Request", "InvalidRequestID", "Invalid request ID");
        return true;
    }
    if (too_large && !is_error) {
        static const char msg[] =
            "{\"errorMessage\":\"Response payload size exceeded maximum allowed payload size "
            "(6291556 bytes).\",\"errorType\":\"Function.ResponseSizeTooLarge\"}";
        finish(v, INV_TOO_LARGE, msg, sizeof msg - 1, "Function.ResponseSizeTooLarge");
        pthread_mutex_unlock(&f->mu);
        reply_error(c->fd, 413, "Request Entity Too Large", "RequestEntityTooLarge",
                    "Exceeded maximum allowed payload size (6291556 bytes).");
        return true;
    }
    if (is_error)
        finish(v, INV_ERROR, (const char *)body, too_large ? 0 : blen,
               c->req.error_type[0] ? c->req.error_type : "Runtime.Unknown");
    else
        finish(v, INV_OK, (const char *)body, blen, NULL);
    pthread_mutex_unlock(&f->mu);
    reply(c->fd, 202, "Accepted", "{\"status\":\"OK\"}");
    return true;
}

/* Tries to complete a request from c->in; returns 1 when one was handled,
 * 0 when more bytes are needed, -1 to drop the connection, -2 to stop. */
static int try_request(fn_env *v, conn *c, int *logfd)
{
    kn_err e;
    if (!c->have_head) {
        kn_status s = kn_fn_http_parse((const char *)c->in.data, c->in.len, &c->req, &e);
        if (s == KN_NOT_FOUND)
            return 0;
        if (s) {
            reply_error(c->fd, 400, "Bad Request", "InvalidRequest", "malformed request");
            return -1;
        }
        c->have_head = true;
        if (c->req.content_length > (long long)KN_FN_MAX_RESPONSE) {
            c->discarding = true;
            c->discard_left = c->req.content_length;
            size_t have = c->in.len - c->req.head_len;
            size_t drop = (long long)have < c->discard_left ? have : (size_t)c->discard_left;
            c->discard_left -= (long long)drop;
            memmove(c->in.data, c->in.data + c->req.head_len + drop,
                    c->in.len - c->req.head_len - drop);
            c->in.len -= c->req.head_len + drop;
            c->req.head_len = 0;
        }
    }
    const uint8_t *body = c->in.data + c->req.head_len;
    size_t avail = c->in.len - c->req.head_len, blen = 0, used = 0;
    bool too_large = false;
    uint8_t *decoded = NULL;
    if (c->discarding) {
        if (c->discard_left > 0)
            return 0;
        too_large = true;
    } else if (c->req.chunked) {
        /* decode size-prefixed chunks; trailers are not supported */
        size_t pos = 0;
        kn_buf out;
        kn_buf_init(&out, KN_FN_MAX_RESPONSE + 1);
        for (;;) {
            const uint8_t *eol = memchr(body + pos, '\n', avail - pos);
            if (!eol) {
                kn_buf_deinit(&out);
                return 0;
            }
            size_t sz = 0;
            const uint8_t *h = body + pos;
            int digits = 0;
            while (h < eol && digits < 9) {
                int d = (*h >= '0' && *h <= '9')   ? *h - '0'
                        : (*h >= 'a' && *h <= 'f') ? *h - 'a' + 10
                        : (*h >= 'A' && *h <= 'F') ? *h - 'A' + 10
                                                   : -1;
                if (d < 0)
                    break;
                sz = sz * 16 + (size_t)d;
                h++, digits++;
            }
            if (!digits) {
                kn_buf_deinit(&out);
                reply_error(c->fd, 400, "Bad Request", "InvalidRequest", "malformed chunk");
                return -1;
            }
            pos = (size_t)(eol - body) + 1;
            if (sz == 0) {
                if (avail - pos < 2) {
                    kn_buf_deinit(&out);
                    return 0;
                }
                pos += 2;
                break;
            }
            if (avail - pos < sz + 2) {
                kn_buf_deinit(&out);
                return 0;
            }
            if (!too_large && kn_buf_append(&out, body + pos, sz) != KN_OK)
                too_large = true;
            pos += sz + 2;
        }
        used = pos;
        blen = out.len;
        decoded = kn_buf_take(&out, &blen);
        kn_buf_deinit(&out);
    } else {
        blen = c->req.content_length > 0 ? (size_t)c->req.content_length : 0;
        if (avail < blen)
            return 0;
        used = blen;
    }
    bool keep = handle(v, c, decoded ? decoded : body, blen, too_large, logfd);
    free(decoded);
    size_t consumed = c->req.head_len + used;
    memmove(c->in.data, c->in.data + consumed, c->in.len - consumed);
    c->in.len -= consumed;
    c->have_head = false;
    c->discarding = false;
    if (!keep)
        return -2;
    return c->req.close ? -1 : 1;
}

static void conn_close(conn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    kn_buf_deinit(&c->in);
}

static int open_listener(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) || listen(fd, 16) ||
        getsockname(fd, (struct sockaddr *)&a, &al)) {
        close(fd);
        return -1;
    }
    *port = ntohs(a.sin_port);
    return fd;
}

static pid_t launch(fn_env *v, int logw, const char *bootstrap)
{
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    /* child: only async-signal-safe calls until execve */
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(127);
    int nul = open("/dev/null", O_RDONLY);
    if (nul >= 0)
        dup2(nul, 0);
    dup2(logw, 1);
    dup2(logw, 2);
#if !KN_ASAN
    struct rlimit rl;
    rl.rlim_cur = rl.rlim_max = (rlim_t)v->memory_mb * 1024 * 1024;
    setrlimit(RLIMIT_DATA, &rl);
#endif
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);
    if (chdir(v->code_dir) != 0)
        _exit(127);
    char *argv[] = {(char *)bootstrap, NULL};
    execve(bootstrap, argv, v->envp);
    static const char msg[] = "kennel: cannot execute bootstrap\n";
    ssize_t w = write(2, msg, sizeof msg - 1);
    (void)w;
    _exit(127);
}

static void *env_main(void *arg)
{
    fn_env *v = arg;
    kn_fn *f = v->fn;
    conn conns[MAX_CONNS];
    for (int i = 0; i < MAX_CONNS; i++)
        conns[i].fd = -1;
    int lfd = -1, logfd = -1, pidfd = -1, pfd[2] = {-1, -1};
    lfd = open_listener(&v->port);
    char api[64];
    snprintf(api, sizeof api, "AWS_LAMBDA_RUNTIME_API=127.0.0.1:%d", v->port);
    for (char **p = v->envp; *p; p++)
        if (strncmp(*p, "AWS_LAMBDA_RUNTIME_API=", 23) == 0) {
            free(*p);
            *p = strdup(api);
        }
    char bootstrap[1100];
    snprintf(bootstrap, sizeof bootstrap, "%s/bootstrap", v->code_dir);
    if (lfd >= 0 && pipe2(pfd, O_CLOEXEC) == 0) {
        v->spawn_ns = kn_now_ns();
        pid_t pid = launch(v, pfd[1], bootstrap);
        close(pfd[1]);
        logfd = pfd[0];
        fcntl(logfd, F_SETFL, O_NONBLOCK);
        if (pid > 0) {
            pthread_mutex_lock(&f->mu);
            v->pid = pid;
            if (v->kill_requested)
                kill(-pid, SIGKILL);
            pthread_mutex_unlock(&f->mu);
            pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
        }
    }
    bool alive = v->pid > 0 && pidfd >= 0;
    int status = 0;
    while (alive) {
        struct pollfd pf[MAX_CONNS + 3];
        int n = 0;
        pf[n++] = (struct pollfd){.fd = pidfd, .events = POLLIN};
        pf[n++] = (struct pollfd){.fd = lfd, .events = POLLIN};
        pf[n++] = (struct pollfd){.fd = logfd, .events = POLLIN};
        for (int i = 0; i < MAX_CONNS; i++)
            pf[n++] = (struct pollfd){.fd = conns[i].fd, .events = POLLIN};
        int r = poll(pf, (nfds_t)n, -1);
        if (r < 0 && errno != EINTR)
            break;
        if (r <= 0)
            continue;
        if (pf[2].revents)
            drain_log(v, &logfd);
        for (int i = 0; i < MAX_CONNS && alive; i++) {
            conn *c = &conns[i];
            if (c->fd < 0 || !pf[3 + i].revents)
                continue;
            uint8_t buf[65536];
            ssize_t got = recv(c->fd, buf, sizeof buf, 0);
            if (got <= 0) {
                if (got < 0 && (errno == EINTR || errno == EAGAIN))
                    continue;
                conn_close(c);
                continue;
            }
            if (c->discarding) {
                long long drop = got < c->discard_left ? got : c->discard_left;
                c->discard_left -= drop;
                if (drop < got)
                    kn_buf_append(&c->in, buf + drop, (size_t)(got - drop));
            } else if (kn_buf_append(&c->in, buf, (size_t)got) != KN_OK) {
                reply_error(c->fd, 413, "Request Entity Too Large", "RequestEntityTooLarge",
                            "request too large");
                conn_close(c);
                continue;
            }
            int tr;
            while ((tr = try_request(v, c, &logfd)) == 1)
                ;
            if (tr == -1)
                conn_close(c);
            if (tr == -2)
                alive = false;
        }
        if (alive && pf[1].revents) {
            int cfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
            if (cfd >= 0) {
                int one = 1;
                setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                int slot = -1;
                for (int i = 0; i < MAX_CONNS; i++)
                    if (conns[i].fd < 0) {
                        slot = i;
                        break;
                    }
                if (slot < 0) {
                    conn_close(&conns[0]);
                    slot = 0;
                }
                conns[slot].fd = cfd;
                conns[slot].have_head = conns[slot].discarding = false;
                kn_buf_init(&conns[slot].in, KN_FN_MAX_RESPONSE + 65536);
            }
        }
        if (pf[0].revents)
            alive = false;
    }
    /* the process is gone or must go */
    if (v->pid > 0) {
        kill(-v->pid, SIGKILL);
        waitpid(v->pid, &status, 0);
    }
    drain_log(v, &logfd);
    for (int i = 0; i < MAX_CONNS; i++)
        if (conns[i].fd >= 0)
            conn_close(&conns[i]);
    if (lfd >= 0)
        close(lfd);
    if (logfd >= 0)
        close(logfd);
    if (pidfd >= 0)
        close(pidfd);
    pthread_mutex_lock(&f->mu);
    if (v->inv) {
        char msg[256];
        if (WIFSIGNALED(status))
            snprintf(msg, sizeof msg, "Runtime exited with error: signal: %s",
                     WTERMSIG(status) == SIGKILL ? "killed" : strsignal(WTERMSIG(status)));
        else
            snprintf(msg, sizeof msg, "Runtime exited with error: exit status %d",
                     WIFEXITED(status) ? WEXITSTATUS(status) : -1);
        v->inv->exit_status = status;
        finish(v, INV_EXIT, msg, strlen(msg), "Runtime.ExitError");
    }
    if (v->provisioned && !v->ready_ns)
        kn_fn__pc_env_event(f, v, true, "The function failed to initialize.");
    v->state = ENV_DEAD;
    for (fn_env **pp = &f->envs; *pp; pp = &(*pp)->next)
        if (*pp == v) {
            *pp = v->next;
            break;
        }
    f->env_threads--;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
    for (char **p = v->envp; p && *p; p++)
        free(*p);
    free(v->envp);
    pthread_cond_destroy(&v->cv);
    free(v);
    return NULL;
}

kn_status kn_fn__env_start(kn_fn *f, fn_env *v, kn_err *e)
{
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&at, 512 * 1024);
    pthread_t t;
    v->state = ENV_STARTING;
    v->next = f->envs;
    f->envs = v;
    f->env_threads++;
    int rc = pthread_create(&t, &at, env_main, v);
    pthread_attr_destroy(&at);
    if (rc) {
        f->envs = v->next;
        f->env_threads--;
        return kn_err_set(e, KN_INTERNAL, "cannot start an environment thread: %s",
                          strerror(rc));
    }
    return KN_OK;
}
