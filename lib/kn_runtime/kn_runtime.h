/* kn_runtime: a Lambda custom runtime for C functions.
 *
 * A function is a `bootstrap` executable whose main() calls
 * kn_runtime_main(handler). The library speaks the Lambda Runtime API at
 * $AWS_LAMBDA_RUNTIME_API (kennel's or AWS's): it long-polls
 * /invocation/next, calls the handler with the event, and posts the
 * handler's output to /response (handler returned 0) or an error document
 * to /error (non-zero). Standalone: it needs only libc, over one kept-alive
 * loopback connection.
 *
 *   static int handler(const char *event, size_t len, kn_context *ctx, kn_buf *out)
 *   {
 *       return kn_runtime_append(out, "{\"ok\":true}", 11);
 *   }
 *   int main(void) { return kn_runtime_main(handler); }
 *
 * Not thread-safe: one invocation at a time, as Lambda runs them.
 */
#ifndef KN_RUNTIME_H
#define KN_RUNTIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#ifndef KENNEL_CORE_H
/* The same layout as kennel core's kn_buf: a growable byte buffer with a
 * hard maximum (0 = none), always NUL-terminated. */
typedef struct kn_buf {
    uint8_t *data;
    size_t len, cap, max;
} kn_buf;
#endif

typedef struct kn_context {
    const char *request_id;            /* Lambda-Runtime-Aws-Request-Id */
    uint64_t deadline_ms;              /* epoch ms when the invocation times out */
    const char *invoked_function_arn;
    const char *trace_id;
    const char *client_context;        /* NULL if none */
    const char *function_name;         /* AWS_LAMBDA_FUNCTION_NAME */
    const char *function_version;
    int memory_mb;
    const char *error_type;            /* set by a failing handler; default "Function.Error" */
} kn_context;

/* 0: `out` is the response. Non-zero: `out` is the error message. */
typedef int (*kn_handler)(const char *event, size_t len, kn_context *ctx, kn_buf *out);

/* Runs the loop until the Runtime API goes away; returns the exit code. */
int kn_runtime_main(kn_handler h);
/* Reports a failed initialisation (/init/error) and returns 1. */
int kn_runtime_init_error(const char *error_type, const char *message);
/* Milliseconds left before the deadline (0 when past). */
long long kn_runtime_remaining_ms(const kn_context *ctx);

/* Buffer helpers (return 0, or -1 when out of memory or past max). */
int kn_runtime_append(kn_buf *b, const void *p, size_t n);
int kn_runtime_appendf(kn_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends s as a JSON string literal (quotes and escapes included). */
int kn_runtime_append_json_string(kn_buf *b, const char *s, size_t n);

/* The head of one HTTP response, as the loop reads it (exposed for fuzzing). */
typedef struct kn_runtime_head {
    int status;
    long long content_length;          /* -1: none */
    size_t head_len;
    char request_id[128];
    char deadline[32];
    char arn[512];
    char trace_id[256];
    char client_context[4096];
} kn_runtime_head;
/* 1: parsed; 0: need more bytes; -1: malformed. */
int kn_runtime_parse_head(const char *buf, size_t len, kn_runtime_head *h);

#ifdef __cplusplus
}
#endif
#endif
