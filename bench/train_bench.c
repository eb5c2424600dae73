/* Training benchmarks for kennel (bench/train_run.sh runs them beside
 * bench/train_torch.py), printed as a readable line and one JSON line each:
 *   features: frozen resnet50 feature extraction (the backbone up to global
 *             pooling), batch 32, images/s over --iters batches;
 *   head:     one epoch of the reference head Linear(2048,128)-ReLU-
 *             Linear(128,133) with Adam on 6680 cached 2048-d features,
 *             batch 32, seconds per epoch (median of --epochs).
 * Weights and inputs are random (seeded): speed does not depend on them.
 * Usage: train_bench features|head [--threads N] [--iters N] [--epochs N] */
#include "kennel/nn.h"
#include "kennel/train.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static long vmhwm_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmHWM:", 6))
            kb = atol(line + 6);
    if (f)
        fclose(f);
    return kb;
}

static int features(int threads, int iters)
{
    kn_err e = {0};
    kn_nn_head head = {.classes = 133, .n_hidden = 1, .hidden = {128}};
    kn_nn_graph *g = kn_nn_graph_new(), *pre = NULL;
    int cut;
    if (kn_nn_build_arch(g, "resnet50", 224, 224, &head, &e))
        goto fail;
    kn_nn_graph_init_params(g, 1, true);
    kn_nn_graph_randomize_bn(g, 2);
    if (kn_nn_graph_head_cut(g, &cut, &e) || kn_nn_graph_split(g, cut, &pre, NULL, &e) ||
        kn_nn_graph_optimize_inplace(pre, &e))
        goto fail;
    kn_nn_graph_free(g);
    g = NULL;
    kn_nn_exec_params p = kn_nn_exec_default_params();
    p.max_batch = 32;
    p.threads = threads;
    kn_nn_exec *x;
    if (kn_nn_exec_new(pre, &p, &x, &e))
        goto fail;
    size_t in_n = (size_t)32 * 3 * 224 * 224;
    float *in = malloc(in_n * sizeof(float)), *out = malloc((size_t)32 * 2048 * sizeof(float));
    kn_rng r;
    kn_rng_seed(&r, 3);
    for (size_t i = 0; i < in_n; i++)
        in[i] = (float)kn_rng_normal(&r);
    for (int i = 0; i < 2; i++) /* warm-up */
        if (kn_nn_exec_run(x, in, 32, out, &e))
            goto fail;
    double *t = malloc((size_t)iters * sizeof(double));
    for (int i = 0; i < iters; i++) {
        uint64_t t0 = kn_now_ns();
        kn_nn_exec_run(x, in, 32, out, &e);
        t[i] = (kn_now_ns() - t0) / 1e9;
    }
    qsort(t, (size_t)iters, sizeof *t, cmp_d);
    printf("kennel resnet50 features batch 32, %d threads: %.2f img/s\n", threads,
           32 / t[iters / 2]);
    printf("{\"bench\":\"features\",\"engine\":\"kennel\",\"batch\":32,\"threads\":%d,"
           "\"img_per_s\":%.2f,\"vmhwm_kb\":%ld}\n", threads, 32 / t[iters / 2], vmhwm_kb());
    free(t);
    free(in);
    free(out);
    kn_nn_exec_free(x);
    kn_nn_graph_free(pre);
    return 0;
fail:
    fprintf(stderr, "train_bench: %s\n", e.msg);
    kn_nn_graph_free(g);
    kn_nn_graph_free(pre);
    return 1;
}

static int head_epoch(int threads, int epochs)
{
    (void)threads; /* OpenBLAS threads follow OPENBLAS_NUM_THREADS / OMP */
    const int N = 6680, D = 2048, B = 32;
    kn_err e = {0};
    kn_nn_head head = {.classes = 133, .n_hidden = 1, .hidden = {128}};
    kn_nn_graph *g = kn_nn_graph_new();
    int x = kn_nn_input(g, D, 1, 1);
    kn_nn_head_append(g, x, &head);
    kn_nn_trainer *t = NULL;
    kn_opt *o = NULL;
    kn_nn_train_params tp = kn_nn_train_default_params();
    tp.max_batch = B;
    kn_opt_params op = kn_opt_default_params();
    if (kn_nn_graph_finalize(g, &e))
        goto fail;
    kn_nn_graph_init_params(g, 1, true);
    if (kn_nn_trainer_new(g, &tp, &t, &e) || kn_opt_new(&op, g, t, &o, &e))
        goto fail;
    float *f = malloc((size_t)N * D * sizeof(float));
    int *y = malloc((size_t)N * sizeof(int)), *order = malloc((size_t)N * sizeof(int));
    float *xb = malloc((size_t)B * D * sizeof(float)), *out = malloc((size_t)B * 133 * sizeof(float));
    float *dout = malloc((size_t)B * 133 * sizeof(float));
    int *yb = malloc((size_t)B * sizeof(int));
    kn_rng r;
    kn_rng_seed(&r, 4);
    for (size_t i = 0; i < (size_t)N * D; i++)
        f[i] = (float)(kn_rng_uniform(&r) * 2);
    for (int i = 0; i < N; i++)
        y[i] = (int)(kn_rng_next(&r) % 133);
    double *sec = malloc((size_t)(epochs + 1) * sizeof(double));
    double phase[3] = {0}; /* forward, loss + backward, optimiser (ns, timed epochs) */
    for (int ep = 0; ep <= epochs; ep++) { /* epoch 0 is a warm-up */
        for (int i = 0; i < N; i++)
            order[i] = i;
        for (int i = N - 1; i > 0; i--) {
            int k = (int)(kn_rng_next(&r) % (uint64_t)(i + 1)), tmp = order[i];
            order[i] = order[k];
            order[k] = tmp;
        }
        uint64_t t0 = kn_now_ns();
        for (int b = 0; b < N; b += B) {
            int n = N - b < B ? N - b : B;
            for (int k = 0; k < n; k++) {
                memcpy(xb + (size_t)k * D, f + (size_t)order[b + k] * D, D * sizeof(float));
                yb[k] = y[order[b + k]];
            }
            float loss;
            uint64_t p0 = kn_now_ns();
            kn_nn_trainer_forward(t, xb, n, true, out, &e);
            uint64_t p1 = kn_now_ns();
            kn_train_cross_entropy(out, yb, n, 133, &loss, dout, NULL, &e);
            kn_nn_trainer_backward(t, dout, NULL, &e);
            uint64_t p2 = kn_now_ns();
            kn_opt_step(o);
            uint64_t p3 = kn_now_ns();
            if (ep > 0) {
                phase[0] += (double)(p1 - p0);
                phase[1] += (double)(p2 - p1);
                phase[2] += (double)(p3 - p2);
            }
        }
        sec[ep] = (kn_now_ns() - t0) / 1e9;
    }
    qsort(sec + 1, (size_t)epochs, sizeof *sec, cmp_d);
    printf("kennel head epoch, mean per epoch: forward %.4f s, loss + backward %.4f s, "
           "Adam %.4f s\n", phase[0] / 1e9 / epochs, phase[1] / 1e9 / epochs,
           phase[2] / 1e9 / epochs);
    printf("kennel head epoch (%d x %d, batch %d, Adam): %.4f s\n", N, D, B,
           sec[1 + epochs / 2]);
    printf("{\"bench\":\"head_epoch\",\"engine\":\"kennel\",\"n\":%d,\"batch\":%d,"
           "\"seconds\":%.4f,\"vmhwm_kb\":%ld}\n", N, B, sec[1 + epochs / 2], vmhwm_kb());
    free(sec);
    free(f);
    free(y);
    free(order);
    free(xb);
    free(out);
    free(dout);
    free(yb);
    kn_opt_free(o);
    kn_nn_trainer_free(t);
    kn_nn_graph_free(g);
    return 0;
fail:
    fprintf(stderr, "train_bench: %s\n", e.msg);
    kn_opt_free(o);
    kn_nn_trainer_free(t);
    kn_nn_graph_free(g);
    return 1;
}

int main(int argc, char **argv)
{
    int threads = 2, iters = 5, epochs = 5;
    if (argc < 2) {
        fprintf(stderr, "usage: train_bench features|head [--threads N] [--iters N] [--epochs N]\n");
        return 2;
    }
    for (int i = 2; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--threads"))
            threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--iters"))
            iters = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--epochs"))
            epochs = atoi(argv[i + 1]);
    }
    if (!strcmp(argv[1], "features"))
        return features(threads, iters < 1 ? 1 : iters);
    if (!strcmp(argv[1], "head"))
        return head_epoch(threads, epochs < 1 ? 1 : epochs);
    fprintf(stderr, "train_bench: unknown benchmark %s\n", argv[1]);
    return 2;
}
