/* kn_bench: times kennel's CNN inference for one (arch, batch) cell and prints
 * one JSON line, the kennel side of bench/run.sh (bench/ref_torch.py and
 * bench/ref_ort.js are the references and print the same fields).
 *
 * Goes through the public API only, as a server would: build the torchvision
 * architecture, fill weights (seeded PyTorch-style init, or --weights FILE
 * with the exact weights the references use, written by export_onnx.py),
 * finalize, optimize (BN folding, activation fusion), create an executor for
 * --batch with --threads, then warm up and time kn_nn_exec_run. The graphs
 * are freed once the executor exists (it keeps its own copy of the weights),
 * so VmRSS at the end is the steady state; VmHWM also counts setup.
 *
 * The timed region is an NCHW float32 batch in, logits out, as for the other
 * engines. Input values follow x[i] = (i % 251) / 125 - 1 over the flat batch,
 * the pattern every engine reproduces, so with --weights the logits can be
 * compared with PyTorch and ONNX Runtime.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kennel/core.h"
#include "kennel/nn.h"

typedef struct args {
    const char *arch;
    const char *weights; /* safetensors file, or NULL for seeded init */
    kn_nn_backend backend;
    int batch, threads, warmup, iters, size, micro;
    uint64_t seed;
} args;

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Peak and current resident set size in kB from /proc/self/status. */
static void vm_status(long *hwm, long *rss)
{
    char line[256];
    FILE *f = fopen("/proc/self/status", "r");
    *hwm = *rss = -1;
    if (!f)
        return;
    while (fgets(line, sizeof(line), f)) {
        if (!strncmp(line, "VmHWM:", 6))
            *hwm = strtol(line + 6, NULL, 10);
        else if (!strncmp(line, "VmRSS:", 6))
            *rss = strtol(line + 6, NULL, 10);
    }
    fclose(f);
}

static void usage(const char *argv0)
{
    fprintf(stderr,
            "usage: %s --arch resnet50|mobilenet_v2|resnet18.. [--batch N] [--threads N]\n"
            "          [--warmup N] [--iters N] [--backend ref|dnnl] [--size 224] [--micro-batch N]\n"
            "          [--seed N] [--weights FILE.safetensors]\n",
            argv0);
}

static int parse_int(const char *s, int lo, int hi, int *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v < lo || v > hi)
        return -1;
    *out = (int)v;
    return 0;
}

static int parse_args(int argc, char **argv, args *a)
{
    *a = (args){.arch = NULL, .backend = KN_NN_DNNL, .batch = 1, .threads = 2,
                .warmup = 10, .iters = 30, .size = 224, .seed = 0};
    for (int i = 1; i < argc; i++) {
        const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int bad = v == NULL, tmp = 0;
        if (!strcmp(k, "--arch") && v)
            a->arch = v;
        else if (!strcmp(k, "--weights") && v)
            a->weights = v;
        else if (!strcmp(k, "--batch") && v)
            bad = parse_int(v, 1, 4096, &a->batch);
        else if (!strcmp(k, "--threads") && v)
            bad = parse_int(v, 0, 1024, &a->threads);
        else if (!strcmp(k, "--warmup") && v)
            bad = parse_int(v, 0, 1000000, &a->warmup);
        else if (!strcmp(k, "--iters") && v)
            bad = parse_int(v, 1, 1000000, &a->iters);
        else if (!strcmp(k, "--micro-batch") && v)
            bad = parse_int(v, 0, 4096, &a->micro);
        else if (!strcmp(k, "--size") && v)
            bad = parse_int(v, 32, 4096, &a->size);
        else if (!strcmp(k, "--seed") && v) {
            bad = parse_int(v, 0, 1 << 30, &tmp);
            a->seed = (uint64_t)tmp;
        } else if (!strcmp(k, "--backend") && v)
            bad = kn_nn_backend_parse(v, &a->backend) != KN_OK;
        else
            bad = 1;
        if (bad) {
            fprintf(stderr, "kn_bench: bad argument %s%s%s\n", k, v ? " " : "", v ? v : "");
            return -1;
        }
        i++;
    }
    if (!a->arch) {
        fprintf(stderr, "kn_bench: --arch is required\n");
        return -1;
    }
    return 0;
}

/* Builds, loads or initialises, finalizes and optimizes the graph. */
static kn_status prepare_graph(const args *a, kn_nn_graph **out, double *flops, kn_err *e)
{
    kn_nn_graph *g = kn_nn_graph_new();
    kn_st_file *st = NULL;
    kn_nn_head head = {.classes = 1000, .n_hidden = 0};
    kn_status rc;

    *out = NULL;
    if (!g)
        return kn_err_set(e, KN_NOMEM, "graph");
    rc = kn_nn_build_arch(g, a->arch, a->size, a->size, &head, e);
    if (rc != KN_OK) {
        kn_err_prefix(e, "build %s", a->arch);
        goto out;
    }
    if (a->weights) {
        rc = kn_st_open(a->weights, &st, e);
        if (rc == KN_OK)
            rc = kn_nn_graph_load_st(g, st, NULL, false, e);
        if (rc != KN_OK) {
            kn_err_prefix(e, "weights %s", a->weights);
            goto out;
        }
        /* As the model loader does: the file's pages leave the process once
         * the graph holds the converted weights. */
        kn_st_free(st);
        st = NULL;
    } else {
        kn_nn_graph_init_params(g, a->seed, true);
    }
    rc = kn_nn_graph_finalize(g, e);
    if (rc != KN_OK) {
        kn_err_prefix(e, "finalize");
        goto out;
    }
    *flops = kn_nn_graph_flops(g);
    rc = kn_nn_graph_optimize(g, out, e);
    if (rc != KN_OK)
        kn_err_prefix(e, "optimize");
out:
    kn_st_free(st);
    kn_nn_graph_free(g);
    return rc;
}

static void print_json(const args *a, const char *weights_desc, double setup_ms, double flops,
                       const double *times, const float *out, size_t out_n)
{
    double *s = malloc(sizeof(double) * (size_t)a->iters);
    double med = NAN, sum = 0, absmax = 0;
    long hwm, rss;

    vm_status(&hwm, &rss);
    if (s) {
        memcpy(s, times, sizeof(double) * (size_t)a->iters);
        qsort(s, (size_t)a->iters, sizeof(double), cmp_double);
        int n = a->iters;
        med = n % 2 ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
        free(s);
    }
    for (size_t i = 0; i < out_n * (size_t)a->batch; i++) {
        sum += out[i];
        if (fabs(out[i]) > absmax)
            absmax = fabs(out[i]);
    }
    printf("{\"engine\":\"kennel\",\"arch\":\"%s\",\"batch\":%d,"
           "\"threads\":%d,\"mode\":\"%s,%s\",\"warmup\":%d,\"iters\":%d,\"setup_ms\":%.1f,"
           "\"times_ms\":[",
           a->arch, a->batch, a->threads,
           kn_nn_backend_name(a->backend), weights_desc, a->warmup, a->iters, setup_ms);
    for (int i = 0; i < a->iters; i++)
        printf("%s%.4f", i ? "," : "", times[i]);
    printf("],\"median_ms\":%.4f,\"vmhwm_kb\":%ld,\"vmrss_kb\":%ld,"
           "\"flops_per_image\":%.0f,\"checksum\":%.9g,\"out_absmax\":%.9g,\"out_head\":[",
           med, hwm, rss, flops, sum, absmax);
    for (size_t i = 0; i < out_n && i < 8; i++)
        printf("%s%.9g", i ? "," : "", out[i]);
    printf("]}\n");
    fflush(stdout);
}

int main(int argc, char **argv)
{
    args a;
    kn_err e;
    kn_nn_graph *opt = NULL;
    kn_nn_exec *x = NULL;
    float *in = NULL, *out = NULL;
    double *times = NULL, flops = 0;
    int rc = 1;

    kn_err_clear(&e);
    if (parse_args(argc, argv, &a) != 0) {
        usage(argv[0]);
        return 2;
    }

    double t0 = now_ms();
    if (prepare_graph(&a, &opt, &flops, &e) != KN_OK)
        goto fail;
    kn_nn_exec_params p = kn_nn_exec_default_params();
    p.backend = a.backend;
    p.max_batch = a.batch;
    p.micro_batch = a.micro;
    p.threads = a.threads;
    if (kn_nn_exec_new(opt, &p, &x, &e) != KN_OK) {
        kn_err_prefix(&e, "exec_new %s", kn_nn_backend_name(a.backend));
        goto fail;
    }
    kn_nn_graph_free(opt); /* the executor holds its own weights */
    opt = NULL;

    size_t in_n = (size_t)a.batch * 3 * (size_t)a.size * (size_t)a.size;
    size_t out_n = kn_nn_exec_out_numel(x);
    in = kn_alloc_aligned(in_n * sizeof(float));
    out = kn_alloc_aligned((size_t)a.batch * out_n * sizeof(float));
    times = calloc((size_t)a.iters, sizeof(double));
    if (!in || !out || !times) {
        kn_err_set(&e, KN_NOMEM, "input/output buffers");
        goto fail;
    }
    for (size_t i = 0; i < in_n; i++)
        in[i] = (float)(i % 251) / 125.0f - 1.0f;
    double setup_ms = now_ms() - t0;

    for (int i = 0; i < a.warmup; i++)
        if (kn_nn_exec_run(x, in, a.batch, out, &e) != KN_OK)
            goto fail_run;
    for (int i = 0; i < a.iters; i++) {
        double s = now_ms();
        if (kn_nn_exec_run(x, in, a.batch, out, &e) != KN_OK)
            goto fail_run;
        times[i] = now_ms() - s;
    }
    print_json(&a, a.weights ? "weights=file" : "weights=seeded-init", setup_ms, flops, times,
               out, out_n);
    rc = 0;
    goto out;

fail_run:
    kn_err_prefix(&e, "run batch %d", a.batch);
fail:
    fprintf(stderr, "kn_bench: %s: %s\n", kn_status_name(e.code), e.msg);
out:
    free(times);
    kn_free_aligned(out);
    kn_free_aligned(in);
    kn_nn_exec_free(x);
    kn_nn_graph_free(opt);
    return rc;
}
