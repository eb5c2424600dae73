/* A function whose event says what to do, for the fault and concurrency
 * tests. Members (all optional, looked up by plain text search so the
 * function needs no JSON library):
 *   "sleep_ms": N   sleep N ms before answering
 *   "crash": 1      exit(3) mid-invocation
 *   "big": N        answer N bytes of a JSON string
 *   "fail": 1       return a handler error (Function.Error)
 *   "log": 1        print a line to stderr
 *   "alloc_mb": N   allocate and touch N MB (Runtime.OutOfMemory when refused)
 * Otherwise it answers {"init": "<AWS_LAMBDA_INITIALIZATION_TYPE>",
 * "pid": P, "version": V, "akid": <first 4 characters of AWS_ACCESS_KEY_ID>,
 * "event": <the event>}. With TESTFN_INIT_FAIL
 * set in its environment it reports /init/error and exits.
 */
#include "kn_runtime.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static long member(const char *event, const char *name)
{
    char key[64];
    snprintf(key, sizeof key, "\"%s\"", name);
    const char *p = strstr(event, key);
    if (!p)
        return -1;
    p += strlen(key);
    while (*p == ' ' || *p == ':')
        p++;
    return strtol(p, NULL, 10);
}

static int handler(const char *event, size_t len, kn_context *ctx, kn_buf *out)
{
    long v;
    if (member(event, "log") > 0)
        fprintf(stderr, "testfn: request %s\n", ctx->request_id);
    if ((v = member(event, "sleep_ms")) > 0) {
        struct timespec ts = {.tv_sec = v / 1000, .tv_nsec = (v % 1000) * 1000000};
        nanosleep(&ts, NULL);
    }
    if ((v = member(event, "alloc_mb")) > 0) {
        char *p = malloc((size_t)v << 20);
        if (!p) {
            ctx->error_type = "Runtime.OutOfMemory";
            return kn_runtime_appendf(out, "cannot allocate %ld MB", v) ? -1 : 1;
        }
        memset(p, 1, (size_t)v << 20);
        free(p);
    }
    if (member(event, "crash") > 0) {
        fprintf(stderr, "testfn: crashing as asked\n");
        exit(3);
    }
    if (member(event, "fail") > 0) {
        ctx->error_type = "Function.Error";
        return kn_runtime_appendf(out, "failed as asked") ? -1 : 1;
    }
    if ((v = member(event, "big")) > 0) {
        if (kn_runtime_append(out, "\"", 1))
            return -1;
        char chunk[4096];
        memset(chunk, 'x', sizeof chunk);
        for (long left = v; left > 0; left -= (long)sizeof chunk)
            if (kn_runtime_append(out, chunk, left < (long)sizeof chunk ? (size_t)left
                                                                        : sizeof chunk))
                return -1;
        return kn_runtime_append(out, "\"", 1);
    }
    const char *init = getenv("AWS_LAMBDA_INITIALIZATION_TYPE");
    const char *akid = getenv("AWS_ACCESS_KEY_ID");
    kn_runtime_appendf(out,
                       "{\"init\":\"%s\",\"pid\":%ld,\"version\":\"%s\",\"akid\":\"%.4s\","
                       "\"event\":",
                       init ? init : "", (long)getpid(),
                       ctx->function_version ? ctx->function_version : "", akid ? akid : "");
    kn_runtime_append(out, len ? event : "null", len ? len : 4);
    return kn_runtime_append(out, "}", 1);
}

int main(void)
{
    if (getenv("TESTFN_INIT_FAIL"))
        return kn_runtime_init_error("Runtime.InitError", "failing init as asked");
    return kn_runtime_main(handler);
}
