/* Cross-file internals of the fn module: the daemon-wide state (kn_fn),
 * execution environments (env.c) and invocations in flight.
 *
 * Locking: one mutex, f->mu, guards the function documents, the list of
 * environments, their states and the invocations handed to them. An
 * environment's thread blocks on its own condition variable (with f->mu)
 * while its runtime waits in /next; an invoker blocks on its invocation's.
 */
#ifndef KN_FN_INT_H
#define KN_FN_INT_H

#include "kennel/fn.h"
#include "kennel/scale.h"

#include <pthread.h>
#include <sys/types.h>

typedef enum fn_env_state { ENV_STARTING, ENV_IDLE, ENV_BUSY, ENV_DEAD } fn_env_state;
typedef enum fn_outcome {
    INV_PENDING,
    INV_OK,
    INV_ERROR,      /* the runtime posted /error */
    INV_TIMEOUT,
    INV_EXIT,       /* the process exited */
    INV_TOO_LARGE,
    INV_INIT_ERROR  /* the runtime posted /init/error */
} fn_outcome;

typedef struct fn_inv {
    char request_id[40];
    const uint8_t *payload;
    size_t len;
    const char *client_context;
    char arn[320];
    char version[16];
    int timeout_s;
    bool delivered;
    uint64_t delivered_ns, done_ns;
    fn_outcome outcome;
    bool env_done;          /* the environment's thread no longer touches this */
    int exit_status;        /* INV_EXIT: wait status */
    kn_buf response;        /* the runtime's answer or error document */
    char error_type[128];
    kn_buf log;             /* this invocation's log lines */
    pthread_cond_t cv;
} fn_inv;

typedef struct fn_env {
    struct kn_fn *fn;
    int id;
    char name[72];
    char version[16];
    unsigned long long gen;  /* the configuration generation it runs */
    bool provisioned;
    char pc_qualifier[136];
    char code_dir[1024];
    int memory_mb;
    char **envp;             /* NULL-terminated; AWS_LAMBDA_RUNTIME_API filled by the thread */
    fn_env_state state;
    bool kill_requested;
    pid_t pid;
    int port;
    uint64_t spawn_ns, ready_ns, idle_since_ns;
    char init_error[512];
    fn_inv *inv;
    pthread_cond_t cv;
    struct fn_env *next;
} fn_env;

/* Temporary credentials of a function's execution role, reused until
 * five minutes before they expire. */
typedef struct fn_creds {
    char name[72];
    char role[600];
    kn_iam_credentials c;
    struct fn_creds *next;
} fn_creds;

typedef struct fn_stats {
    char name[72];
    kn_fn_minute cur;                 /* the minute being counted */
    long long invocations, errors, throttles, cold_starts;
    double duration_ms;
    int in_flight, in_flight_pc;
    struct fn_stats *next;
} fn_stats;

struct kn_fn {
    kn_platform *p;
    kn_registry *reg;
    kn_clock *clock;
    char data_dir[1024];
    kn_fn_params params;
    char access_key[256], secret_key[256], session_token[2048];
    char endpoint_url[256];
    char region[64], account[32];
    kn_scale_pool *pool;
    pthread_mutex_t mu;
    json_t *funcs;            /* name -> stored document */
    fn_env *envs;
    int env_threads;          /* environment threads still running */
    int next_env_id;
    fn_stats *stats;
    kn_iam *iam;
    fn_creds *creds;
    bool stopping;
    pthread_cond_t cv;        /* env_threads changes; event queue */
    pthread_t janitor, events;
    bool have_janitor, have_events;
};

/* env.c. Starts a thread that launches the process (so its parent-death
 * signal follows the environment, not a request thread). Caller holds
 * f->mu; `v` is linked into f->envs. */
kn_status kn_fn__env_start(kn_fn *f, fn_env *v, kn_err *e);
/* Asks the environment to go away (kills its process group). Caller holds f->mu. */
void kn_fn__env_kill(fn_env *v);
/* Appends to the function's log file (one write). */
void kn_fn__log_write(kn_fn *f, const char *name, const char *text, size_t n);
/* fn.c: an environment of a provisioned configuration became ready or
 * failed. Caller holds f->mu. */
void kn_fn__pc_env_event(kn_fn *f, fn_env *v, bool failed, const char *reason);

#endif
