/* finetune_bench: times one training step (forward, backward of the mean
 * cross-entropy, Adam update) of a torchvision network in kennel, the kennel
 * side of bench/finetune_torch.py (bench/train_run.sh runs both):
 *
 *   finetune  --finetune N: the last N stages + head train (resnet50, N = 1:
 *             layer4 + fc); the frozen prefix runs in inference mode on the
 *             executor (kn_nn_exec: batch norm folded), the tail on the
 *             trainer (batch statistics, gradients for every parameter);
 *   full      every parameter trains: the whole graph on the trainer.
 *
 * Weights and inputs are random (seeded): speed does not depend on them.
 * Batch 16, 2 threads by default. Prints a readable line and one JSON line
 * per mode: img/s = batch / median step time over --steps timed steps after
 * --warmup steps, with the median split into prefix, forward, backward and
 * optimiser (--opt none leaves the update out).
 *
 *   finetune_bench [finetune|full|both] [--arch resnet50] [--finetune 1]
 *                  [--batch 16] [--threads 2] [--steps 3] [--warmup 1]
 *                  [--backend dnnl|ref] [--opt adam|none]
 */
#include "kennel/nn.h"
#include "kennel/train.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct opts {
    const char *arch;
    int finetune, batch, threads, steps, warmup;
    kn_nn_backend backend;
    bool adam;
} opts;

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double ms_since(uint64_t t0)
{
    return (double)(kn_now_ns() - t0) * 1e-6;
}

/* CPU time of the process (all threads): on a shared machine it shows how
 * much of a step's wall time the process actually ran. */
static double cpu_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
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

/* d(mean cross-entropy)/d(logits) for fixed labels s % classes. */
static void ce_grad(const float *z, float *d, int n, int classes)
{
    for (int s = 0; s < n; s++) {
        const float *zs = z + (size_t)s * classes;
        float *ds = d + (size_t)s * classes;
        double mx = zs[0], sum = 0;
        for (int k = 1; k < classes; k++)
            mx = zs[k] > mx ? zs[k] : mx;
        for (int k = 0; k < classes; k++)
            sum += exp(zs[k] - mx);
        for (int k = 0; k < classes; k++)
            ds[k] = (float)((exp(zs[k] - mx) / sum - (k == (s * 7) % classes)) / n);
    }
}

static int run(const opts *o, bool full)
{
    kn_err e = {0};
    kn_nn_head head = {.classes = 1000};
    kn_nn_graph *g = kn_nn_graph_new(), *pre = NULL, *tail = NULL;
    kn_nn_exec *x = NULL;
    kn_nn_trainer *t = NULL;
    kn_opt *opt = NULL;
    float *in = NULL, *feat = NULL, *logits = NULL, *dl = NULL;
    double *step = NULL, *pms = NULL, *fms = NULL, *bms = NULL, *oms = NULL, *cpu = NULL;
    int rc = 1, cut = 0, n = o->batch;
    uint64_t t0 = kn_now_ns();
    if (kn_nn_build_arch(g, o->arch, 224, 224, &head, &e))
        goto out;
    kn_nn_graph_init_params(g, 1, true);
    kn_nn_graph_randomize_bn(g, 2);
    if (!full) {
        if (kn_nn_graph_stage_cut(g, o->arch, o->finetune, &cut, &e) ||
            kn_nn_graph_split(g, cut, &pre, &tail, &e))
            goto out;
        kn_nn_exec_params xp = kn_nn_exec_default_params();
        xp.backend = o->backend;
        xp.max_batch = n;
        xp.threads = o->threads;
        if (kn_nn_exec_new(pre, &xp, &x, &e))
            goto out;
        kn_nn_graph_free(pre);
        pre = NULL;
    }
    kn_nn_graph *tg = full ? g : tail;
    kn_nn_train_params tp = kn_nn_train_default_params();
    tp.max_batch = n;
    tp.backend = o->backend;
    if (kn_nn_trainer_new(tg, &tp, &t, &e))
        goto out;
    kn_opt_params op = kn_opt_default_params();
    if (o->adam && kn_opt_new(&op, tg, t, &opt, &e))
        goto out;
    kn_nn_shape is = kn_nn_graph_input_shape(g), fs = kn_nn_graph_input_shape(tg);
    int classes = kn_nn_graph_output_shape(g).c;
    size_t nin = (size_t)is.c * is.h * is.w * n, nfeat = (size_t)fs.c * fs.h * fs.w * n;
    in = malloc(nin * sizeof(float));
    feat = full ? NULL : malloc(nfeat * sizeof(float));
    logits = malloc((size_t)n * classes * sizeof(float));
    dl = malloc((size_t)n * classes * sizeof(float));
    int total = o->warmup + o->steps;
    step = calloc((size_t)total, sizeof(double));
    pms = calloc((size_t)total, sizeof(double));
    fms = calloc((size_t)total, sizeof(double));
    bms = calloc((size_t)total, sizeof(double));
    oms = calloc((size_t)total, sizeof(double));
    cpu = calloc((size_t)total, sizeof(double));
    if (!in || (!full && !feat) || !logits || !dl || !step || !pms || !fms || !bms || !oms ||
        !cpu) {
        fprintf(stderr, "finetune_bench: out of memory\n");
        goto out;
    }
    kn_rng r;
    kn_rng_seed(&r, 3);
    for (size_t k = 0; k < nin; k++)
        in[k] = (float)kn_rng_normal(&r);
    double setup_ms = ms_since(t0);
    for (int it = 0; it < total; it++) {
        uint64_t s0 = kn_now_ns();
        double c0 = cpu_ms();
        const float *tin = in;
        if (!full) {
            if (kn_nn_exec_run(x, in, n, feat, &e))
                goto out;
            tin = feat;
        }
        pms[it] = ms_since(s0);
        uint64_t s1 = kn_now_ns();
        if (kn_nn_trainer_forward(t, tin, n, true, logits, &e))
            goto out;
        fms[it] = ms_since(s1);
        ce_grad(logits, dl, n, classes);
        uint64_t s2 = kn_now_ns();
        if (kn_nn_trainer_backward(t, dl, NULL, &e))
            goto out;
        bms[it] = ms_since(s2);
        uint64_t s3 = kn_now_ns();
        if (opt)
            kn_opt_step(opt);
        oms[it] = ms_since(s3);
        step[it] = ms_since(s0);
        cpu[it] = cpu_ms() - c0;
    }
    double *ts[6] = {step, pms, fms, bms, oms, cpu};
    for (int k = 0; k < 6; k++)
        qsort(ts[k] + o->warmup, (size_t)o->steps, sizeof(double), cmp_d);
    int mid = o->warmup + o->steps / 2;
    double ips = n / (step[mid] * 1e-3);
    char what[64];
    if (full)
        snprintf(what, sizeof what, "full");
    else
        snprintf(what, sizeof what, "finetune%d", o->finetune);
    printf("kennel %s %s %s batch %d, %d threads: %.2f img/s (step %.0f ms = prefix %.0f + "
           "forward %.0f + backward %.0f + %s %.0f; cpu %.0f ms; setup %.0f ms)\n",
           o->arch, what, kn_nn_backend_name(o->backend), n, o->threads, ips, step[mid],
           pms[mid], fms[mid], bms[mid], opt ? "adam" : "no optimiser", oms[mid], cpu[mid],
           setup_ms);
    printf("{\"bench\": \"%s\", \"engine\": \"kennel\", \"arch\": \"%s\", \"backend\": \"%s\", "
           "\"batch\": %d, \"threads\": %d, \"optimizer\": \"%s\", \"img_per_s\": %.2f, "
           "\"step_ms\": %.1f, \"prefix_ms\": %.1f, \"forward_ms\": %.1f, "
           "\"backward_ms\": %.1f, \"opt_ms\": %.1f, \"cpu_ms\": %.1f, \"vmhwm_kb\": %ld}\n",
           what, o->arch, kn_nn_backend_name(o->backend), n, o->threads, opt ? "adam" : "none",
           ips, step[mid], pms[mid], fms[mid], bms[mid], oms[mid], cpu[mid], vmhwm_kb());
    fflush(stdout);
    rc = 0;
out:
    if (rc)
        fprintf(stderr, "finetune_bench: %s\n", e.msg);
    free(in);
    free(feat);
    free(logits);
    free(dl);
    free(step);
    free(pms);
    free(fms);
    free(bms);
    free(oms);
    free(cpu);
    kn_opt_free(opt);
    kn_nn_trainer_free(t);
    kn_nn_exec_free(x);
    kn_nn_graph_free(pre);
    kn_nn_graph_free(tail);
    kn_nn_graph_free(g);
    return rc;
}

int main(int argc, char **argv)
{
    opts o = {.arch = "resnet50", .finetune = 1, .batch = 16, .threads = 2, .steps = 3,
              .warmup = 1, .backend = KN_NN_DNNL, .adam = true};
    const char *mode = "both";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (a[0] != '-') {
            mode = a;
            continue;
        }
        if (!v) {
            fprintf(stderr, "finetune_bench: %s needs a value\n", a);
            return 2;
        }
        i++;
        if (!strcmp(a, "--arch"))
            o.arch = v;
        else if (!strcmp(a, "--finetune"))
            o.finetune = atoi(v);
        else if (!strcmp(a, "--batch"))
            o.batch = atoi(v);
        else if (!strcmp(a, "--threads"))
            o.threads = atoi(v);
        else if (!strcmp(a, "--steps"))
            o.steps = atoi(v);
        else if (!strcmp(a, "--warmup"))
            o.warmup = atoi(v);
        else if (!strcmp(a, "--opt")) {
            if (strcmp(v, "adam") && strcmp(v, "none")) {
                fprintf(stderr, "finetune_bench: --opt adam|none\n");
                return 2;
            }
            o.adam = !strcmp(v, "adam");
        } else if (!strcmp(a, "--backend")) {
            if (kn_nn_backend_parse(v, &o.backend)) {
                fprintf(stderr, "finetune_bench: unknown backend %s\n", v);
                return 2;
            }
        } else {
            fprintf(stderr, "finetune_bench: unknown option %s\n", a);
            return 2;
        }
    }
    if (o.batch < 1 || o.threads < 1 || o.steps < 1 || o.warmup < 0 ||
        (strcmp(mode, "finetune") && strcmp(mode, "full") && strcmp(mode, "both"))) {
        fprintf(stderr, "usage: finetune_bench [finetune|full|both] [--arch A] [--finetune N] "
                        "[--batch B] [--threads T] [--steps S] [--warmup W] [--backend B] "
                        "[--opt adam|none]\n");
        return 2;
    }
    omp_set_num_threads(o.threads);
    int rc = 0;
    if (strcmp(mode, "full"))
        rc |= run(&o, false);
    if (strcmp(mode, "finetune"))
        rc |= run(&o, true);
    return rc;
}
