/* Gradient checks of the trainer: every op that trains, on both backends
 * (plain-C reference and oneDNN), against double-precision central finite
 * differences of a scalar loss; then the two backends against each other on
 * a small ResNet-like graph, repeated backward passes (no stale gradients),
 * batch-norm running statistics against the formula, and max-pool tie
 * routing against PyTorch's rule.
 *
 * The loss is L = sum_k r_k * y_k with fixed random r in [-1, 1], so
 * dL/dy = r is what backward receives. For a sampled coordinate u (an input
 * element or a parameter element) the check compares the analytic dL/du
 * with (L(u + h) - L(u - h)) / 2h, h = 1e-3, L accumulated in double from
 * the float outputs.
 *
 * Tolerance: |analytic - fd| <= 1e-2 * S + 3 * noise, where S is the
 * tensor's largest analytic gradient magnitude and noise = 2^-24 * A / h
 * bounds the float rounding of the outputs as seen through the difference
 * (A = sum_k |r_k| * |y_k| + |L|, the loss's absolute mass; each output is
 * rounded to 24 bits, so L moves by at most about 2^-24 * A between two
 * evaluations for reasons other than u). Central differences are exact for
 * piecewise-linear ops away from kinks and O(h^2 f''') for batch norm, far
 * below 1e-2 S at h = 1e-3; errors from wrong indexing, a missing term or a
 * wrong divisor are O(S). Coordinates where the loss has a kink within h
 * (relu, max, clamp switching: the one-sided differences disagree by more
 * than the tolerance) are skipped and counted; at most a quarter of the
 * sampled coordinates of a tensor may be skipped.
 */
#include "kn_test.h"
#include "nn_int.h"

#include "kennel/nn.h"

#include <float.h>
#include <stdlib.h>

#define H 1e-3
#define RTOL 1e-2
#define MAX_SAMPLES 48

static const kn_nn_backend BACKENDS[2] = {KN_NN_REF, KN_NN_DNNL};

typedef int (*build_fn)(kn_nn_graph *g);

enum { IN_NORMAL, IN_SPACED, IN_KINKFREE, IN_RELU6 };

static kn_nn_window win(int kh, int kw, int s, int pt, int pl, int pb, int pr, int d)
{
    return (kn_nn_window){kh, kw, s, s, pt, pl, pb, pr, d, d};
}

static kn_nn_graph *make_graph(build_fn b, uint64_t seed)
{
    kn_nn_graph *g = kn_nn_graph_new();
    kn_err e = {0};
    if (b(g) < 0 || kn_nn_graph_finalize(g, &e)) {
        fprintf(stderr, "graph: %s\n", e.msg);
        kn_nn_graph_free(g);
        return NULL;
    }
    kn_nn_graph_init_params(g, seed, true);
    kn_nn_graph_randomize_bn(g, seed + 1);
    return g;
}

static void fill_input(float *x, size_t n, int mode, kn_rng *r)
{
    for (size_t k = 0; k < n; k++) {
        double v = kn_rng_normal(r);
        if (mode == IN_KINKFREE) /* away from relu's kink at 0 */
            v = v < 0 ? v - 0.05 : v + 0.05;
        else if (mode == IN_RELU6) { /* spread over [-4, 10], away from 0 and 6 */
            v = v * 4 + 3;
            if (fabs(v) < 0.05 || fabs(v - 6) < 0.05)
                v += 0.2;
        }
        x[k] = (float)v;
    }
    if (mode == IN_SPACED) { /* distinct values 0.01 apart, shuffled: no ties */
        for (size_t k = 0; k < n; k++)
            x[k] = (float)(0.01 * (double)k - 0.005 * (double)n);
        for (size_t k = n; k > 1; k--) {
            size_t j = kn_rng_next(r) % k;
            float tmp = x[k - 1];
            x[k - 1] = x[j];
            x[j] = tmp;
        }
    }
}

typedef struct fd_run {
    kn_nn_graph *g;
    kn_nn_trainer *t;
    kn_rng rng0; /* dropout: every forward draws the first forward's masks */
    float *x, *y, *r;
    size_t nin, nout;
    int n;
    bool training;
} fd_run;

static double loss(fd_run *f, double *mass)
{
    kn_err e = {0};
    f->t->rng = f->rng0;
    if (kn_nn_trainer_forward(f->t, f->x, f->n, f->training, f->y, &e)) {
        fprintf(stderr, "forward: %s\n", e.msg);
        return NAN;
    }
    double l = 0, m = 0;
    for (size_t k = 0; k < f->nout; k++) {
        l += (double)f->r[k] * f->y[k];
        m += fabs((double)f->r[k] * f->y[k]);
    }
    if (mass)
        *mass = m + fabs(l);
    return l;
}

/* Checks the analytic gradient an[] of tensor u[] (count elements). Returns
 * the largest error relative to S, for the report. */
static double fd_tensor(fd_run *f, const char *what, float *u, const float *an, size_t count,
                        bool *ok)
{
    double scale = 0;
    for (size_t k = 0; k < count; k++)
        scale = fmax(scale, fabs(an[k]));
    double mass;
    double l0 = loss(f, &mass);
    double tol = RTOL * scale + 3 * ldexp(1.0, -24) * mass / H;
    int checked = 0, skipped = 0;
    double worst = 0;
    size_t step = count <= MAX_SAMPLES ? 1 : count / MAX_SAMPLES;
    for (size_t k = 0; k < count; k += step) {
        float keep = u[k];
        u[k] = (float)(keep + H);
        double hp = (double)u[k] - keep; /* the step float actually took */
        double lp = loss(f, NULL);
        u[k] = (float)(keep - H);
        double hm = keep - (double)u[k];
        double lm = loss(f, NULL);
        u[k] = keep;
        double fd = (lp - lm) / (hp + hm);
        double fp = (lp - l0) / hp, fmn = (l0 - lm) / hm;
        checked++;
        if (fabs(fp - fmn) > 2 * tol) { /* a kink within h: FD is meaningless */
            skipped++;
            continue;
        }
        double err = fabs(fd - an[k]);
        worst = fmax(worst, err / (scale > 0 ? scale : 1));
        if (!(err <= tol)) {
            fprintf(stderr, "  %s[%zu]: analytic %.7g vs fd %.7g (tol %.3g, scale %.3g)\n", what,
                    k, an[k], fd, tol, scale);
            *ok = false;
        }
    }
    if (skipped * 4 > checked) {
        fprintf(stderr, "  %s: %d of %d coordinates at kinks\n", what, skipped, checked);
        *ok = false;
    }
    return worst;
}

static void fd_case(const char *name, build_fn b, int n, int in_mode, bool training)
{
    for (int bi = 0; bi < 2; bi++) {
        kn_nn_graph *g = make_graph(b, 11);
        KN_REQUIRE(g != NULL);
        fd_run f = {.g = g, .n = n, .training = training};
        kn_nn_train_params p = kn_nn_train_default_params();
        p.max_batch = n;
        p.backend = BACKENDS[bi];
        p.seed = 5;
        kn_err e = {0};
        kn_status rc = kn_nn_trainer_new(g, &p, &f.t, &e);
        KN_CHECK_INT(rc, KN_OK);
        if (rc) {
            fprintf(stderr, "%s\n", e.msg);
            kn_nn_graph_free(g);
            return;
        }
        f.nin = kn__nn_shape_numel(kn_nn_graph_input_shape(g)) * (size_t)n;
        f.nout = kn__nn_shape_numel(kn_nn_graph_output_shape(g)) * (size_t)n;
        f.x = malloc(f.nin * sizeof(float));
        f.y = malloc(f.nout * sizeof(float));
        f.r = malloc(f.nout * sizeof(float));
        float *din = malloc(f.nin * sizeof(float));
        kn_rng r;
        kn_rng_seed(&r, 1234);
        fill_input(f.x, f.nin, in_mode, &r);
        for (size_t k = 0; k < f.nout; k++)
            f.r[k] = (float)(2 * kn_rng_uniform(&r) - 1);
        f.rng0 = f.t->rng;
        bool ok = !isnan(loss(&f, NULL));
        rc = kn_nn_trainer_backward(f.t, f.r, din, &e);
        KN_CHECK_INT(rc, KN_OK);
        if (rc)
            fprintf(stderr, "%s\n", e.msg);
        double worst = 0;
        if (!rc && ok) {
            worst = fd_tensor(&f, "input", f.x, din, f.nin, &ok);
            for (int pi = 0; pi < g->np; pi++) {
                const float *pg = kn_nn_trainer_grad(f.t, pi);
                if (!pg)
                    continue;
                kn_nn_param *prm = kn_nn_graph_param(g, pi);
                float *an = malloc(prm->numel * sizeof(float));
                memcpy(an, pg, prm->numel * sizeof(float));
                worst = fmax(worst, fd_tensor(&f, prm->name, prm->data, an, prm->numel, &ok));
                free(an);
            }
        }
        printf("  %-28s %-4s worst |analytic - fd| / max|grad| = %.2e\n", name,
               kn_nn_backend_name(BACKENDS[bi]), worst);
        if (!ok)
            fprintf(stderr, "  -> %s on %s failed\n", name, kn_nn_backend_name(BACKENDS[bi]));
        KN_CHECK(ok);
        free(f.x);
        free(f.y);
        free(f.r);
        free(din);
        kn_nn_trainer_free(f.t);
        kn_nn_graph_free(g);
    }
}

/* ---- graphs -------------------------------------------------------------- */

static int g_conv_plain(kn_nn_graph *g)
{
    kn_nn_window w = win(3, 3, 1, 1, 1, 1, 1, 1);
    return kn_nn_conv(g, kn_nn_input(g, 3, 6, 6), "c", 4, &w, 1, true, KN_ACT_NONE);
}
static int g_conv_grouped(kn_nn_graph *g)
{
    kn_nn_window w = win(3, 3, 1, 1, 1, 1, 1, 1);
    return kn_nn_conv(g, kn_nn_input(g, 4, 5, 5), "c", 6, &w, 2, false, KN_ACT_NONE);
}
static int g_conv_depthwise(kn_nn_graph *g)
{
    kn_nn_window w = win(3, 3, 1, 1, 1, 1, 1, 1);
    return kn_nn_conv(g, kn_nn_input(g, 4, 5, 5), "c", 4, &w, 4, true, KN_ACT_NONE);
}
static int g_conv_stride2(kn_nn_graph *g)
{
    kn_nn_window w = win(3, 3, 2, 1, 1, 1, 1, 1);
    return kn_nn_conv(g, kn_nn_input(g, 3, 7, 7), "c", 5, &w, 1, false, KN_ACT_NONE);
}
static int g_conv_dilated(kn_nn_graph *g)
{
    kn_nn_window w = win(3, 3, 1, 2, 2, 2, 2, 2);
    return kn_nn_conv(g, kn_nn_input(g, 3, 6, 6), "c", 4, &w, 1, true, KN_ACT_NONE);
}
static int g_conv_asym(kn_nn_graph *g)
{
    /* 2x3 kernel, stride 2, padding top 0, left 1, bottom 1, right 2 */
    kn_nn_window w = {2, 3, 2, 2, 0, 1, 1, 2, 1, 1};
    return kn_nn_conv(g, kn_nn_input(g, 3, 6, 7), "c", 4, &w, 1, true, KN_ACT_NONE);
}
static int g_conv_relu(kn_nn_graph *g)
{
    kn_nn_window w = win(3, 3, 1, 1, 1, 1, 1, 1);
    return kn_nn_conv(g, kn_nn_input(g, 3, 5, 5), "c", 4, &w, 1, true, KN_ACT_RELU);
}
static int g_conv_relu6(kn_nn_graph *g)
{
    kn_nn_window w = win(1, 1, 1, 0, 0, 0, 0, 1);
    return kn_nn_conv(g, kn_nn_input(g, 3, 4, 4), "c", 4, &w, 1, false, KN_ACT_RELU6);
}
static int g_bn(kn_nn_graph *g)
{
    return kn_nn_batchnorm(g, kn_nn_input(g, 3, 4, 4), "bn", 1e-5f);
}
/* 16 channels: the oneDNN path runs batch norm in the blocked layout; the
 * input is also read by the add, so its gradient accumulates */
static int g_bn16(kn_nn_graph *g)
{
    int x = kn_nn_input(g, 16, 3, 3);
    return kn_nn_add(g, kn_nn_batchnorm(g, x, "bn", 1e-5f), x, KN_ACT_NONE);
}
static int g_conv_bn_relu(kn_nn_graph *g)
{
    kn_nn_window w = win(3, 3, 1, 1, 1, 1, 1, 1);
    int x = kn_nn_conv(g, kn_nn_input(g, 3, 5, 5), "c", 4, &w, 1, false, KN_ACT_NONE);
    return kn_nn_relu(g, kn_nn_batchnorm(g, x, "bn", 1e-5f));
}
static int g_maxpool(kn_nn_graph *g)
{
    kn_nn_window w = win(3, 3, 2, 1, 1, 1, 1, 1);
    return kn_nn_maxpool(g, kn_nn_input(g, 2, 7, 7), &w);
}
static int g_maxpool_k2(kn_nn_graph *g)
{
    kn_nn_window w = win(2, 2, 2, 0, 0, 0, 0, 1);
    return kn_nn_maxpool(g, kn_nn_input(g, 2, 6, 6), &w);
}
static int g_maxpool_dil(kn_nn_graph *g)
{
    kn_nn_window w = win(2, 2, 1, 1, 0, 1, 0, 2);
    return kn_nn_maxpool(g, kn_nn_input(g, 2, 5, 5), &w);
}
static int g_avgpool_pad(kn_nn_graph *g)
{
    kn_nn_window w = win(3, 3, 2, 1, 1, 1, 1, 1);
    return kn_nn_avgpool(g, kn_nn_input(g, 2, 7, 7), &w, true);
}
static int g_avgpool_nopad(kn_nn_graph *g)
{
    kn_nn_window w = win(3, 3, 2, 1, 1, 1, 1, 1);
    return kn_nn_avgpool(g, kn_nn_input(g, 2, 7, 7), &w, false);
}
static int g_avgpool_asym(kn_nn_graph *g)
{
    kn_nn_window w = {2, 3, 2, 2, 0, 1, 1, 1, 1, 1};
    int x = kn_nn_input(g, 2, 6, 6);
    int a = kn_nn_avgpool(g, x, &w, false);
    int b = kn_nn_avgpool(g, x, &w, true);
    return kn_nn_add(g, a, b, KN_ACT_NONE);
}
static int g_relu(kn_nn_graph *g)
{
    return kn_nn_relu(g, kn_nn_input(g, 3, 4, 4));
}
static int g_relu6(kn_nn_graph *g)
{
    return kn_nn_relu6(g, kn_nn_input(g, 3, 4, 4));
}
/* the input is read twice (conv and add): its gradient accumulates */
static int g_add(kn_nn_graph *g)
{
    kn_nn_window w = win(3, 3, 1, 1, 1, 1, 1, 1);
    int x = kn_nn_input(g, 3, 5, 5);
    int c = kn_nn_conv(g, x, "c", 3, &w, 1, true, KN_ACT_NONE);
    return kn_nn_add(g, c, x, KN_ACT_NONE);
}
static int g_add_relu(kn_nn_graph *g)
{
    int x = kn_nn_input(g, 3, 4, 4);
    kn_nn_window w = win(1, 1, 1, 0, 0, 0, 0, 1);
    int c = kn_nn_conv(g, x, "c", 3, &w, 1, false, KN_ACT_NONE);
    return kn_nn_add(g, x, c, KN_ACT_RELU);
}
static int g_linear(kn_nn_graph *g)
{
    int x = kn_nn_flatten(g, kn_nn_input(g, 6, 1, 1));
    x = kn_nn_linear(g, x, "fc1", 5, true, KN_ACT_RELU);
    return kn_nn_linear(g, x, "fc2", 3, false, KN_ACT_NONE);
}
static int g_gap(kn_nn_graph *g)
{
    int x = kn_nn_gap(g, kn_nn_input(g, 3, 4, 5));
    return kn_nn_linear(g, kn_nn_flatten(g, x), "fc", 4, true, KN_ACT_NONE);
}
static int g_flatten(kn_nn_graph *g)
{
    int x = kn_nn_flatten(g, kn_nn_input(g, 2, 3, 3));
    return kn_nn_linear(g, x, "fc", 4, true, KN_ACT_NONE);
}
static int g_dropout0(kn_nn_graph *g)
{
    int x = kn_nn_flatten(g, kn_nn_input(g, 8, 1, 1));
    x = kn_nn_dropout(g, x, 0.0f);
    return kn_nn_linear(g, x, "fc", 3, true, KN_ACT_NONE);
}
static int g_dropout(kn_nn_graph *g)
{
    int x = kn_nn_flatten(g, kn_nn_input(g, 8, 1, 1));
    x = kn_nn_linear(g, x, "fc1", 8, true, KN_ACT_NONE);
    x = kn_nn_dropout(g, x, 0.5f);
    return kn_nn_linear(g, x, "fc2", 3, true, KN_ACT_NONE);
}

/* A small ResNet-like graph with every spatial op: stem conv + bn + relu,
 * max pool, a residual block with a projection shortcut, a grouped conv,
 * relu6, average pool, global pool and a linear head. */
static int g_block(kn_nn_graph *g)
{
    kn_nn_window k3 = win(3, 3, 1, 1, 1, 1, 1, 1), k3s2 = win(3, 3, 2, 1, 1, 1, 1, 1);
    kn_nn_window k1s2 = win(1, 1, 2, 0, 0, 0, 0, 1);
    int x = kn_nn_input(g, 3, 16, 16);
    x = kn_nn_conv(g, x, "stem", 8, &k3, 1, false, KN_ACT_NONE);
    x = kn_nn_relu(g, kn_nn_batchnorm(g, x, "stem_bn", 1e-5f));
    x = kn_nn_maxpool(g, x, &k3s2);
    int y = kn_nn_conv(g, x, "b.conv1", 16, &k3s2, 1, false, KN_ACT_NONE);
    y = kn_nn_relu(g, kn_nn_batchnorm(g, y, "b.bn1", 1e-5f));
    y = kn_nn_conv(g, y, "b.conv2", 16, &k3, 1, false, KN_ACT_NONE);
    y = kn_nn_batchnorm(g, y, "b.bn2", 1e-5f);
    int s = kn_nn_conv(g, x, "b.down", 16, &k1s2, 1, false, KN_ACT_NONE);
    s = kn_nn_batchnorm(g, s, "b.down_bn", 1e-5f);
    x = kn_nn_relu(g, kn_nn_add(g, y, s, KN_ACT_NONE));
    x = kn_nn_conv(g, x, "grp", 16, &k3, 4, true, KN_ACT_RELU6);
    kn_nn_window ap = win(2, 2, 2, 0, 0, 0, 0, 1);
    x = kn_nn_avgpool(g, x, &ap, true);
    x = kn_nn_flatten(g, kn_nn_gap(g, x));
    return kn_nn_linear(g, x, "fc", 5, true, KN_ACT_NONE);
}

/* The block's composition without kinks (no relu, no max): finite
 * differences through two batch norms in series, a residual add whose
 * input is read by two convs, a grouped conv and the pools. (With relus and
 * batch statistics a weight perturbation moves every pre-activation of the
 * batch, so some relu always switches within h and FD says nothing.) */
static int g_block_smooth(kn_nn_graph *g)
{
    kn_nn_window k3 = win(3, 3, 1, 1, 1, 1, 1, 1), k3s2 = win(3, 3, 2, 1, 1, 1, 1, 1);
    kn_nn_window k1s2 = win(1, 1, 2, 0, 0, 0, 0, 1);
    int x = kn_nn_input(g, 3, 8, 8);
    x = kn_nn_batchnorm(g, kn_nn_conv(g, x, "stem", 6, &k3, 1, false, KN_ACT_NONE), "bn0", 1e-5f);
    int y = kn_nn_conv(g, x, "b.conv1", 8, &k3s2, 1, false, KN_ACT_NONE);
    y = kn_nn_batchnorm(g, y, "b.bn1", 1e-5f);
    int s = kn_nn_conv(g, x, "b.down", 8, &k1s2, 1, true, KN_ACT_NONE);
    x = kn_nn_add(g, y, s, KN_ACT_NONE);
    x = kn_nn_conv(g, x, "grp", 8, &k3, 2, true, KN_ACT_NONE);
    kn_nn_window ap = win(2, 2, 2, 0, 0, 0, 0, 1);
    x = kn_nn_avgpool(g, x, &ap, true);
    x = kn_nn_flatten(g, kn_nn_gap(g, x));
    return kn_nn_linear(g, x, "fc", 5, true, KN_ACT_NONE);
}

/* ---- finite-difference tests -------------------------------------------- */

static void test_fd_conv(void)
{
    fd_case("conv 3x3 pad 1 + bias", g_conv_plain, 2, IN_NORMAL, true);
    fd_case("conv grouped (2)", g_conv_grouped, 2, IN_NORMAL, true);
    fd_case("conv depthwise + bias", g_conv_depthwise, 2, IN_NORMAL, true);
    fd_case("conv stride 2", g_conv_stride2, 2, IN_NORMAL, true);
    fd_case("conv dilation 2", g_conv_dilated, 2, IN_NORMAL, true);
    fd_case("conv 2x3 asymmetric pad", g_conv_asym, 2, IN_NORMAL, true);
    fd_case("conv + fused relu", g_conv_relu, 2, IN_NORMAL, true);
    fd_case("conv 1x1 + fused relu6", g_conv_relu6, 2, IN_RELU6, true);
}

static void test_fd_batchnorm(void)
{
    fd_case("batch norm (training)", g_bn, 4, IN_NORMAL, true);
    fd_case("batch norm (eval)", g_bn, 3, IN_NORMAL, false);
    fd_case("batch norm 16 ch + add", g_bn16, 3, IN_NORMAL, true);
    fd_case("batch norm 16 ch (eval)", g_bn16, 2, IN_NORMAL, false);
    fd_case("conv + bn + relu (training)", g_conv_bn_relu, 3, IN_NORMAL, true);
}

static void test_fd_pool(void)
{
    fd_case("max pool 3x3 s2 p1", g_maxpool, 2, IN_SPACED, true);
    fd_case("max pool 2x2 s2", g_maxpool_k2, 2, IN_SPACED, true);
    fd_case("max pool dilation 2 asym pad", g_maxpool_dil, 2, IN_SPACED, true);
    fd_case("avg pool count_pad", g_avgpool_pad, 2, IN_NORMAL, true);
    fd_case("avg pool exclude pad", g_avgpool_nopad, 2, IN_NORMAL, true);
    fd_case("avg pool 2x3 asym, both", g_avgpool_asym, 2, IN_NORMAL, true);
}

static void test_fd_dense(void)
{
    fd_case("relu", g_relu, 2, IN_KINKFREE, true);
    fd_case("relu6", g_relu6, 2, IN_RELU6, true);
    fd_case("add (input read twice)", g_add, 2, IN_NORMAL, true);
    fd_case("add + fused relu", g_add_relu, 2, IN_NORMAL, true);
    fd_case("linear (+relu) x2", g_linear, 3, IN_NORMAL, true);
    fd_case("global avg pool", g_gap, 2, IN_NORMAL, true);
    fd_case("flatten", g_flatten, 2, IN_NORMAL, true);
    fd_case("dropout p=0", g_dropout0, 3, IN_NORMAL, true);
    fd_case("dropout p=0.5 (mask reused)", g_dropout, 3, IN_NORMAL, true);
}

static void test_fd_block(void)
{
    fd_case("block without kinks", g_block_smooth, 3, IN_NORMAL, true);
}

/* ---- reference vs oneDNN ------------------------------------------------- */

static double rel_diff(const float *a, const float *b, size_t n)
{
    double m = 0;
    for (size_t k = 0; k < n; k++)
        m = fmax(m, fabs(a[k]));
    return kn_test_max_abs_diff(a, b, n) / (m > 0 ? m : 1);
}

/* Two steps (batch 4, then 3: a second primitive set) of the block on both
 * backends from identical graphs: outputs, input gradient, every parameter
 * gradient and the running statistics agree to float rounding. */
static void test_ref_vs_dnnl(void)
{
    kn_nn_graph *g[2] = {make_graph(g_block, 21), make_graph(g_block, 21)};
    KN_REQUIRE(g[0] && g[1]);
    kn_nn_trainer *t[2] = {NULL, NULL};
    kn_err e = {0};
    for (int b = 0; b < 2; b++) {
        kn_nn_train_params p = kn_nn_train_default_params();
        p.max_batch = 4;
        p.backend = BACKENDS[b];
        KN_CHECK_INT(kn_nn_trainer_new(g[b], &p, &t[b], &e), KN_OK);
    }
    KN_REQUIRE(t[0] && t[1]);
    size_t in_per = kn__nn_shape_numel(kn_nn_graph_input_shape(g[0]));
    size_t out_per = kn__nn_shape_numel(kn_nn_graph_output_shape(g[0]));
    float *x = malloc(in_per * 4 * sizeof(float)), *r = malloc(out_per * 4 * sizeof(float));
    float *y[2], *din[2];
    for (int b = 0; b < 2; b++) {
        y[b] = malloc(out_per * 4 * sizeof(float));
        din[b] = malloc(in_per * 4 * sizeof(float));
    }
    kn_rng rng;
    kn_rng_seed(&rng, 77);
    int batches[3] = {4, 3, 4};
    for (int step = 0; step < 3; step++) {
        int n = batches[step];
        fill_input(x, in_per * (size_t)n, IN_NORMAL, &rng);
        for (size_t k = 0; k < out_per * (size_t)n; k++)
            r[k] = (float)(2 * kn_rng_uniform(&rng) - 1);
        for (int b = 0; b < 2; b++) {
            KN_CHECK_INT(kn_nn_trainer_forward(t[b], x, n, true, y[b], &e), KN_OK);
            KN_CHECK_INT(kn_nn_trainer_backward(t[b], r, din[b], &e), KN_OK);
        }
        double d = rel_diff(y[0], y[1], out_per * (size_t)n);
        printf("  step %d batch %d: output %.2e", step, n, d);
        KN_CHECK(d < 1e-4);
        d = rel_diff(din[0], din[1], in_per * (size_t)n);
        printf(", input grad %.2e", d);
        KN_CHECK(d < 1e-4);
        double worst = 0, worst_stat = 0;
        for (int pi = 0; pi < g[0]->np; pi++) {
            kn_nn_param *p0 = kn_nn_graph_param(g[0], pi), *p1 = kn_nn_graph_param(g[1], pi);
            const float *g0 = kn_nn_trainer_grad(t[0], pi), *g1 = kn_nn_trainer_grad(t[1], pi);
            if (!g0) { /* running statistics */
                double ds = rel_diff(p0->data, p1->data, p0->numel);
                worst_stat = fmax(worst_stat, ds);
                KN_CHECK(ds < 1e-5);
                continue;
            }
            KN_REQUIRE(g1 != NULL);
            double dg = rel_diff(g0, g1, p0->numel);
            if (dg >= 1e-4)
                fprintf(stderr, "  %s: gradients differ by %.2e\n", p0->name, dg);
            KN_CHECK(dg < 1e-4);
            worst = fmax(worst, dg);
        }
        printf(", params %.2e, running stats %.2e (relative to max abs)\n", worst, worst_stat);
    }
    /* eval mode: running statistics in use on both, none updated */
    for (int b = 0; b < 2; b++)
        KN_CHECK_INT(kn_nn_trainer_forward(t[b], x, 4, false, y[b], &e), KN_OK);
    KN_CHECK(rel_diff(y[0], y[1], out_per * 4) < 1e-4);
    for (int b = 0; b < 2; b++) {
        free(y[b]);
        free(din[b]);
        kn_nn_trainer_free(t[b]);
        kn_nn_graph_free(g[b]);
    }
    free(x);
    free(r);
}

/* Value gradients are not cleared before a backward pass: the first op to
 * reach a value writes its gradient, later ones add, and a value nobody reads
 * gets zeros. So a backward pass must not see the previous pass's numbers:
 * backward with r1, with r2, then with r1 again gives the first pass's
 * gradients exactly. The graph has a value read by three ops (conv, add,
 * relu), a value nobody reads, a spatial flatten into a linear layer, and a
 * max pool whose input is read twice. */
static int g_reuse(kn_nn_graph *g)
{
    kn_nn_window k3 = win(3, 3, 1, 1, 1, 1, 1, 1), k2 = win(2, 2, 2, 0, 0, 0, 0, 1);
    int x = kn_nn_input(g, 3, 6, 6);
    int a = kn_nn_conv(g, x, "c0", 8, &k3, 1, true, KN_ACT_NONE);
    int y = kn_nn_conv(g, a, "c1", 8, &k3, 1, true, KN_ACT_NONE);
    kn_nn_relu(g, a); /* read by nobody */
    int z = kn_nn_add(g, y, a, KN_ACT_NONE);
    int p = kn_nn_maxpool(g, z, &k2);
    int q = kn_nn_add(g, kn_nn_relu(g, z), z, KN_ACT_NONE);
    q = kn_nn_avgpool(g, q, &k2, true);
    int s = kn_nn_add(g, p, q, KN_ACT_NONE);
    return kn_nn_linear(g, kn_nn_flatten(g, s), "fc", 4, true, KN_ACT_NONE);
}

static void test_backward_repeat(void)
{
    build_fn graphs[2] = {g_reuse, g_block};
    for (int gi = 0; gi < 2; gi++) {
        for (int b = 0; b < 2; b++) {
            kn_nn_graph *g = make_graph(graphs[gi], 5);
            KN_REQUIRE(g != NULL);
            kn_nn_train_params p = kn_nn_train_default_params();
            p.max_batch = 3;
            p.backend = BACKENDS[b];
            kn_nn_trainer *t = NULL;
            kn_err e = {0};
            KN_CHECK_INT(kn_nn_trainer_new(g, &p, &t, &e), KN_OK);
            KN_REQUIRE(t != NULL);
            size_t in_n = kn__nn_shape_numel(kn_nn_graph_input_shape(g)) * 3;
            size_t out_n = kn__nn_shape_numel(kn_nn_graph_output_shape(g)) * 3;
            float *x = malloc(in_n * sizeof(float)), *y = malloc(out_n * sizeof(float));
            float *r1 = malloc(out_n * sizeof(float)), *r2 = malloc(out_n * sizeof(float));
            float *din[2] = {malloc(in_n * sizeof(float)), malloc(in_n * sizeof(float))};
            size_t total = 0;
            for (int pi = 0; pi < g->np; pi++)
                total += kn_nn_trainer_grad(t, pi) ? g->params[pi].numel : 0;
            float *grads[2] = {malloc(total * sizeof(float)), malloc(total * sizeof(float))};
            kn_rng rng;
            kn_rng_seed(&rng, 9);
            fill_input(x, in_n, IN_NORMAL, &rng);
            for (size_t k = 0; k < out_n; k++) {
                r1[k] = (float)(2 * kn_rng_uniform(&rng) - 1);
                r2[k] = (float)(4 * kn_rng_uniform(&rng) - 2);
            }
            const float *rs[3] = {r1, r2, r1};
            for (int pass = 0; pass < 3; pass++) {
                int slot = pass == 0 ? 0 : 1;
                KN_CHECK_INT(kn_nn_trainer_forward(t, x, 3, true, y, &e), KN_OK);
                KN_CHECK_INT(kn_nn_trainer_backward(t, rs[pass], din[slot], &e), KN_OK);
                size_t off = 0;
                for (int pi = 0; pi < g->np; pi++) {
                    const float *gr = kn_nn_trainer_grad(t, pi);
                    if (!gr)
                        continue;
                    memcpy(grads[slot] + off, gr, g->params[pi].numel * sizeof(float));
                    off += g->params[pi].numel;
                }
            }
            KN_CHECK(memcmp(din[0], din[1], in_n * sizeof(float)) == 0);
            KN_CHECK(memcmp(grads[0], grads[1], total * sizeof(float)) == 0);
            printf("  %s %s: input grad %.2e, params %.2e apart after another pass\n",
                   gi ? "block" : "reuse", kn_nn_backend_name(BACKENDS[b]),
                   rel_diff(din[0], din[1], in_n), rel_diff(grads[0], grads[1], total));
            free(x);
            free(y);
            free(r1);
            free(r2);
            for (int k = 0; k < 2; k++) {
                free(din[k]);
                free(grads[k]);
            }
            kn_nn_trainer_free(t);
            kn_nn_graph_free(g);
        }
    }
}

/* ---- running statistics -------------------------------------------------- */

static void test_running_stats(void)
{
    for (int b = 0; b < 2; b++) {
        kn_nn_graph *g = make_graph(g_bn, 3);
        KN_REQUIRE(g != NULL);
        const kn_nn_node *bn = kn_nn_graph_node(g, 1);
        kn_nn_param *rm = kn_nn_graph_param(g, bn->bn_mean), *rv = kn_nn_graph_param(g, bn->bn_var);
        kn_nn_param *ga = kn_nn_graph_param(g, bn->bn_gamma), *be = kn_nn_graph_param(g, bn->bn_beta);
        kn_nn_train_params p = kn_nn_train_default_params();
        p.max_batch = 5;
        p.backend = BACKENDS[b];
        p.bn_momentum = 0.3f;
        kn_nn_trainer *t = NULL;
        kn_err e = {0};
        KN_CHECK_INT(kn_nn_trainer_new(g, &p, &t, &e), KN_OK);
        KN_REQUIRE(t != NULL);
        int n = 5, C = 3, HW = 16;
        float x[5 * 3 * 16], y[5 * 3 * 16];
        kn_rng r;
        kn_rng_seed(&r, 9);
        double want_m[3], want_v[3];
        for (int c = 0; c < C; c++) {
            want_m[c] = rm->data[c];
            want_v[c] = rv->data[c];
        }
        for (int step = 0; step < 2; step++) {
            for (int k = 0; k < n * C * HW; k++)
                x[k] = (float)(kn_rng_normal(&r) * (1 + step) + 0.5);
            KN_CHECK_INT(kn_nn_trainer_forward(t, x, n, true, y, &e), KN_OK);
            double maxd = 0;
            for (int c = 0; c < C; c++) {
                double s = 0, ss = 0, m = n * HW;
                for (int s_ = 0; s_ < n; s_++)
                    for (int j = 0; j < HW; j++)
                        s += x[(s_ * C + c) * HW + j];
                double mu = s / m;
                for (int s_ = 0; s_ < n; s_++)
                    for (int j = 0; j < HW; j++) {
                        double d = x[(s_ * C + c) * HW + j] - mu;
                        ss += d * d;
                    }
                want_m[c] = 0.7 * want_m[c] + 0.3 * mu;
                want_v[c] = 0.7 * want_v[c] + 0.3 * ss / (m - 1); /* unbiased */
                KN_CHECK_NEAR(rm->data[c], want_m[c], 1e-5);
                KN_CHECK_NEAR(rv->data[c], want_v[c], 1e-5 * want_v[c]);
                /* the output uses the biased batch variance */
                double inv = 1 / sqrt(ss / m + 1e-5);
                for (int s_ = 0; s_ < n; s_++)
                    for (int j = 0; j < HW; j++) {
                        int k = (s_ * C + c) * HW + j;
                        double want = (x[k] - mu) * inv * ga->data[c] + be->data[c];
                        maxd = fmax(maxd, fabs(y[k] - want));
                    }
            }
            KN_CHECK(maxd < 1e-5);
        }
        /* eval: running statistics used, not updated */
        float m0[3], v0[3];
        memcpy(m0, rm->data, sizeof m0);
        memcpy(v0, rv->data, sizeof v0);
        KN_CHECK_INT(kn_nn_trainer_forward(t, x, n, false, y, &e), KN_OK);
        KN_CHECK(memcmp(m0, rm->data, sizeof m0) == 0 && memcmp(v0, rv->data, sizeof v0) == 0);
        double maxd = 0;
        for (int k = 0; k < n * C * HW; k++) {
            int c = (k / HW) % C;
            double want = (x[k] - m0[c]) / sqrt(v0[c] + 1e-5) * ga->data[c] + be->data[c];
            maxd = fmax(maxd, fabs(y[k] - want));
        }
        KN_CHECK(maxd < 1e-5);
        /* one value per channel cannot train (as PyTorch) */
        kn_nn_graph *g1 = kn_nn_graph_new();
        kn_nn_batchnorm(g1, kn_nn_input(g1, 2, 1, 1), "bn", 1e-5f);
        KN_CHECK_INT(kn_nn_graph_finalize(g1, &e), KN_OK);
        kn_nn_graph_init_params(g1, 1, true);
        kn_nn_trainer *t1 = NULL;
        p.max_batch = 1;
        KN_CHECK_INT(kn_nn_trainer_new(g1, &p, &t1, &e), KN_OK);
        float one[2] = {1, 2}, out1[2];
        KN_CHECK_INT(kn_nn_trainer_forward(t1, one, 1, true, out1, &e), KN_INVALID);
        KN_CHECK_CONTAINS(e.msg, "more than one value per channel");
        KN_CHECK_INT(kn_nn_trainer_forward(t1, one, 1, false, out1, &e), KN_OK);
        kn_nn_trainer_free(t1);
        kn_nn_graph_free(g1);
        kn_nn_trainer_free(t);
        kn_nn_graph_free(g);
    }
}

/* ---- max-pool ties ------------------------------------------------------- */

/* Equal values in a window: the gradient goes to the first in window order
 * (row by row), as PyTorch's max_pool2d. Zeros after a relu make this the
 * common case, not a corner. */
static void test_maxpool_ties(void)
{
    for (int b = 0; b < 2; b++) {
        kn_nn_graph *g = kn_nn_graph_new();
        kn_nn_window w = win(2, 2, 2, 0, 0, 0, 0, 1);
        kn_nn_maxpool(g, kn_nn_input(g, 1, 4, 4), &w);
        kn_err e = {0};
        KN_REQUIRE(kn_nn_graph_finalize(g, &e) == KN_OK);
        kn_nn_train_params p = kn_nn_train_default_params();
        p.max_batch = 1;
        p.backend = BACKENDS[b];
        kn_nn_trainer *t = NULL;
        KN_REQUIRE(kn_nn_trainer_new(g, &p, &t, &e) == KN_OK);
        /* windows: all zero | max at (0,1) and (1,0) | max at (1,0),(1,1) | distinct */
        float x[16] = {0, 0, 1, 3,
                       0, 0, 3, 2,
                       5, 4, 7, 1,
                       5, 5, 2, 9};
        float y[4], dy[4] = {1, 2, 3, 4}, dx[16];
        KN_CHECK_INT(kn_nn_trainer_forward(t, x, 1, true, y, &e), KN_OK);
        KN_CHECK_INT(kn_nn_trainer_backward(t, dy, dx, &e), KN_OK);
        float want[16] = {1, 0, 0, 2,
                          0, 0, 0, 0,
                          3, 0, 0, 0,
                          0, 0, 0, 4};
        KN_CHECK(kn_test_max_abs_diff(dx, want, 16) == 0);
        if (kn_test_max_abs_diff(dx, want, 16) != 0)
            for (int k = 0; k < 16; k++)
                fprintf(stderr, "%s dx[%d] = %g (want %g)\n", kn_nn_backend_name(BACKENDS[b]),
                        k, dx[k], want[k]);
        kn_nn_trainer_free(t);
        kn_nn_graph_free(g);
    }
}

int main(void)
{
    KN_RUN(test_fd_conv);
    KN_RUN(test_fd_batchnorm);
    KN_RUN(test_fd_pool);
    KN_RUN(test_fd_dense);
    KN_RUN(test_fd_block);
    KN_RUN(test_ref_vs_dnnl);
    KN_RUN(test_backward_repeat);
    KN_RUN(test_running_stats);
    KN_RUN(test_maxpool_ties);
    return kn_test_finish();
}
