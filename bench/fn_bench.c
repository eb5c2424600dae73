/* fn_bench: what the function platform costs, measured in-process through
 * the public fn API (the Lambda REST front door adds its own HTTP cost on
 * top; bench/router_bench.sh measures that kind of overhead):
 *
 *   cold    CreateFunction (unzip into the code store) -> first response:
 *           a new process per function, Init Duration included. p50/p99.
 *   warm    one warm environment, sequential invokes: p50/p99 of one
 *           invoke, and of calling the same handler directly in-process
 *           (the difference is the platform's overhead per invocation).
 *   load    T client threads invoking at once (T warm environments):
 *           invokes/s, and the p50/p99 of each invoke under that load.
 *
 * Usage: fn_bench ZIP [--cold N] [--warm N] [--threads T] [--seconds S]
 * where ZIP holds the empty function (functions/examples/empty.c, zipped by
 * `kennel function package`). Prints one JSON line per part and the load
 * average: the machine is shared, read medians with that in mind.
 */
#include "kennel/core.h"
#include "kennel/fn.h"
#include "kennel/platform.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static double pct(uint64_t *v, size_t n, double p)
{
    if (!n)
        return 0;
    qsort(v, n, sizeof *v, cmp_u64);
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return (double)v[i] / 1e3; /* us */
}

/* The empty function's handler, called directly. */
static int empty_handler(const char *event, size_t len, kn_buf *out)
{
    (void)event, (void)len;
    return kn_buf_append(out, "{}", 2) == KN_OK ? 0 : 1;
}

typedef struct worker {
    kn_fn *fn;
    const char *name;
    double seconds;
    uint64_t *lat;
    size_t n, cap;
    int errors;
} worker;

static void *work(void *arg)
{
    worker *w = arg;
    uint64_t end = kn_now_ns() + (uint64_t)(w->seconds * 1e9);
    kn_fn_result r;
    kn_fn_result_init(&r);
    while (kn_now_ns() < end && w->n < w->cap) {
        kn_fn_invoke_params p = {.name = w->name, .payload = (const uint8_t *)"{}", .len = 2};
        r.payload.len = 0;
        kn_err e;
        uint64_t t0 = kn_now_ns();
        if (kn_fn_invoke(w->fn, &p, &r, &e) != KN_OK || r.function_error[0])
            w->errors++;
        w->lat[w->n++] = kn_now_ns() - t0;
    }
    kn_fn_result_deinit(&r);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: fn_bench ZIP [--cold N] [--warm N] [--threads T] [--seconds S]\n");
        return 2;
    }
    const char *zip_path = argv[1];
    int cold_n = 30, warm_n = 5000, threads = 2;
    double seconds = 5;
    for (int i = 2; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--cold"))
            cold_n = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--warm"))
            warm_n = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--threads"))
            threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--seconds"))
            seconds = atof(argv[i + 1]);
    }
    kn_err e;
    kn_buf zip;
    kn_buf_init(&zip, KN_FN_MAX_ZIP);
    if (kn_file_read(zip_path, &zip, &e)) {
        fprintf(stderr, "fn_bench: %s\n", e.msg);
        return 1;
    }
    char dir[] = "/tmp/kn-fn-bench-XXXXXX";
    if (!mkdtemp(dir))
        return 1;
    kn_platform_params pp = kn_platform_default_params();
    pp.data_dir = dir;
    kn_platform *p = NULL;
    kn_fn *fn = NULL;
    if (kn_platform_open(&pp, &p, &e) || kn_fn_start(p, NULL, &fn, &e)) {
        fprintf(stderr, "fn_bench: %s\n", e.msg);
        return 1;
    }
    kn_fn_config cfg = {.runtime = "provided.al2023", .role = "arn:aws:iam::123456789012:role/b"};
    kn_fn_result r;
    kn_fn_result_init(&r);

    /* cold: create -> first response */
    uint64_t *cold = calloc((size_t)cold_n, sizeof *cold);
    uint64_t *cold_create = calloc((size_t)cold_n, sizeof *cold);
    int cold_ok = 0;
    for (int i = 0; i < cold_n; i++) {
        char name[32];
        snprintf(name, sizeof name, "cold-%d", i);
        json_t *out = NULL;
        uint64_t t0 = kn_now_ns();
        kn_status s = kn_fn_create(fn, name, &cfg, zip.data, zip.len, false, &out, &e);
        json_decref(out);
        cold_create[i] = kn_now_ns() - t0;
        kn_fn_invoke_params ip = {.name = name, .payload = (const uint8_t *)"{}", .len = 2};
        r.payload.len = 0;
        if (!s)
            s = kn_fn_invoke(fn, &ip, &r, &e);
        cold[i] = kn_now_ns() - t0;
        cold_ok += !s && !r.function_error[0] && r.cold;
        kn_fn_delete(fn, name, NULL, &e); /* its environment goes too */
    }
    uint64_t *cold_inv = calloc((size_t)cold_n, sizeof *cold);
    for (int i = 0; i < cold_n; i++)
        cold_inv[i] = cold[i] - cold_create[i];
    printf("{\"part\": \"cold\", \"n\": %d, \"ok\": %d, \"p50_ms\": %.3f, \"p99_ms\": %.3f, "
           "\"create_p50_ms\": %.3f, \"first_invoke_p50_ms\": %.3f}\n",
           cold_n, cold_ok, pct(cold, (size_t)cold_n, 0.5) / 1e3,
           pct(cold, (size_t)cold_n, 0.99) / 1e3, pct(cold_create, (size_t)cold_n, 0.5) / 1e3,
           pct(cold_inv, (size_t)cold_n, 0.5) / 1e3);
    free(cold_create);
    free(cold_inv);

    /* warm: one environment, sequential */
    json_t *out = NULL;
    kn_fn_create(fn, "warm", &cfg, zip.data, zip.len, false, &out, &e);
    json_decref(out);
    kn_fn_invoke_params ip = {.name = "warm", .payload = (const uint8_t *)"{}", .len = 2};
    for (int i = 0; i < 100; i++) {
        r.payload.len = 0;
        kn_fn_invoke(fn, &ip, &r, &e);
    }
    uint64_t *warm = calloc((size_t)warm_n, sizeof *warm);
    uint64_t *direct = calloc((size_t)warm_n, sizeof *direct);
    int warm_err = 0;
    for (int i = 0; i < warm_n; i++) {
        r.payload.len = 0;
        uint64_t t0 = kn_now_ns();
        if (kn_fn_invoke(fn, &ip, &r, &e) != KN_OK || r.function_error[0])
            warm_err++;
        warm[i] = kn_now_ns() - t0;
    }
    kn_buf hb;
    kn_buf_init(&hb, 1 << 20);
    for (int i = 0; i < warm_n; i++) {
        hb.len = 0;
        uint64_t t0 = kn_now_ns();
        empty_handler("{}", 2, &hb);
        direct[i] = kn_now_ns() - t0;
    }
    kn_buf_deinit(&hb);
    double w50 = pct(warm, (size_t)warm_n, 0.5), w99 = pct(warm, (size_t)warm_n, 0.99);
    double d50 = pct(direct, (size_t)warm_n, 0.5), d99 = pct(direct, (size_t)warm_n, 0.99);
    printf("{\"part\": \"warm\", \"n\": %d, \"errors\": %d, \"invoke_p50_us\": %.1f, "
           "\"invoke_p99_us\": %.1f, \"direct_p50_us\": %.3f, \"direct_p99_us\": %.3f, "
           "\"overhead_p50_us\": %.1f, \"overhead_p99_us\": %.1f}\n",
           warm_n, warm_err, w50, w99, d50, d99, w50 - d50, w99 - d99);

    /* load: T threads at once */
    worker *ws = calloc((size_t)threads, sizeof *ws);
    pthread_t *ts = calloc((size_t)threads, sizeof *ts);
    for (int t = 0; t < threads; t++) {
        ws[t] = (worker){.fn = fn, .name = "warm", .seconds = seconds, .cap = 2000000};
        ws[t].lat = calloc(ws[t].cap, sizeof *ws[t].lat);
    }
    uint64_t t0 = kn_now_ns();
    for (int t = 0; t < threads; t++)
        pthread_create(&ts[t], NULL, work, &ws[t]);
    size_t total = 0;
    int errs = 0;
    for (int t = 0; t < threads; t++) {
        pthread_join(ts[t], NULL);
        total += ws[t].n;
        errs += ws[t].errors;
    }
    double el = (double)(kn_now_ns() - t0) / 1e9;
    uint64_t *all = calloc(total ? total : 1, sizeof *all);
    size_t k = 0;
    for (int t = 0; t < threads; t++) {
        memcpy(all + k, ws[t].lat, ws[t].n * sizeof *all);
        k += ws[t].n;
        free(ws[t].lat);
    }
    printf("{\"part\": \"load\", \"threads\": %d, \"invokes\": %zu, \"errors\": %d, "
           "\"per_s\": %.0f, \"p50_us\": %.1f, \"p99_us\": %.1f}\n",
           threads, total, errs, (double)total / el, pct(all, total, 0.5), pct(all, total, 0.99));
    double la[3] = {0};
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf %lf %lf", &la[0], &la[1], &la[2]) != 3)
            la[0] = -1;
        fclose(f);
    }
    printf("{\"part\": \"machine\", \"cpus\": %ld, \"loadavg_1m\": %.2f}\n",
           sysconf(_SC_NPROCESSORS_ONLN), la[0]);
    free(all);
    free(ws);
    free(ts);
    free(cold);
    free(warm);
    free(direct);
    kn_fn_result_deinit(&r);
    kn_fn_stop(fn);
    kn_platform_close(p);
    kn_buf_deinit(&zip);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : 1;
}
