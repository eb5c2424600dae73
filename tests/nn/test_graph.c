/* Graph IR, optimiser and executors: every op runs on the reference and the
 * oneDNN backend and the two must agree; the reference itself is checked
 * against a direct computation in the test; builders are checked against
 * torchvision's parameter counts; bad graphs and bad weights give errors that
 * name the node or tensor. */
#include "kennel/nn.h"
#include "kn_test.h"

#include <stdint.h>
#include <unistd.h>

static kn_nn_window win(int kh, int kw, int s, int pt, int pl, int pb, int pr, int d)
{
    return (kn_nn_window){kh, kw, s, s, pt, pl, pb, pr, d, d};
}

static void fill(float *p, size_t n, uint64_t seed, float scale)
{
    kn_rng r;
    kn_rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++)
        p[i] = (float)((kn_rng_uniform(&r) * 2 - 1) * scale);
}

/* Runs g on both backends with batch n and compares; returns the max diff
 * relative to the output's scale. */
static double ref_vs_dnnl(kn_nn_graph *g, int max_batch, int n, float *out_ref)
{
    kn_err e = {0};
    kn_nn_shape is = kn_nn_graph_input_shape(g);
    size_t per_in = (size_t)is.c * is.h * is.w;
    float *in = malloc(per_in * (size_t)n * sizeof(float));
    fill(in, per_in * (size_t)n, 7, 1.0f);
    kn_nn_exec *xr = NULL, *xd = NULL;
    kn_nn_exec_params p = kn_nn_exec_default_params();
    p.max_batch = max_batch;
    p.backend = KN_NN_REF;
    kn_status rc = kn_nn_exec_new(g, &p, &xr, &e);
    KN_CHECK_INT(rc, KN_OK);
    if (rc)
        fprintf(stderr, "ref: %s\n", e.msg);
    p.backend = KN_NN_DNNL;
    rc = kn_nn_exec_new(g, &p, &xd, &e);
    KN_CHECK_INT(rc, KN_OK);
    if (rc)
        fprintf(stderr, "dnnl: %s\n", e.msg);
    double diff = INFINITY;
    if (xr && xd) {
        size_t per_out = kn_nn_exec_out_numel(xr);
        float *a = malloc(per_out * (size_t)n * sizeof(float));
        float *b = malloc(per_out * (size_t)n * sizeof(float));
        KN_CHECK_INT(kn_nn_exec_run(xr, in, n, a, &e), KN_OK);
        KN_CHECK_INT(kn_nn_exec_run(xd, in, n, b, &e), KN_OK);
        double scale = 1e-6;
        for (size_t i = 0; i < per_out * (size_t)n; i++)
            scale = fabs(a[i]) > scale ? fabs(a[i]) : scale;
        diff = kn_test_max_abs_diff(a, b, per_out * (size_t)n) / scale;
        if (out_ref)
            memcpy(out_ref, a, per_out * (size_t)n * sizeof(float));
        free(a);
        free(b);
    }
    kn_nn_exec_free(xr);
    kn_nn_exec_free(xd);
    free(in);
    return diff;
}

static void finish(kn_nn_graph *g, uint64_t seed)
{
    kn_err e = {0};
    kn_status rc = kn_nn_graph_finalize(g, &e);
    if (rc)
        fprintf(stderr, "finalize: %s\n", e.msg);
    KN_CHECK_INT(rc, KN_OK);
    kn_nn_graph_init_params(g, seed, true);
    kn_nn_graph_randomize_bn(g, seed + 1);
}

/* Conv variants: groups, depthwise, stride, dilation, asymmetric padding,
 * each followed by different activations and pools. */
static void test_conv_variants(void)
{
    struct {
        int in_c, out_c, groups, k, s, pt, pl, pb, pr, d;
        kn_nn_act act;
    } cases[] = {
        {3, 8, 1, 3, 1, 1, 1, 1, 1, 1, KN_ACT_NONE},  {8, 16, 1, 3, 2, 1, 1, 1, 1, 1, KN_ACT_RELU},
        {16, 16, 16, 3, 1, 1, 1, 1, 1, 1, KN_ACT_RELU6}, {16, 32, 16, 3, 2, 0, 0, 1, 1, 1, KN_ACT_RELU6},
        {8, 8, 2, 3, 1, 2, 2, 2, 2, 2, KN_ACT_RELU},  {6, 12, 3, 5, 2, 1, 2, 2, 1, 1, KN_ACT_NONE},
        {4, 8, 1, 1, 1, 0, 0, 0, 0, 1, KN_ACT_RELU},  {4, 4, 1, 7, 2, 3, 3, 3, 3, 1, KN_ACT_NONE},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        kn_nn_graph *g = kn_nn_graph_new();
        int x = kn_nn_input(g, cases[c].in_c, 17, 13);
        kn_nn_window w = win(cases[c].k, cases[c].k, cases[c].s, cases[c].pt, cases[c].pl,
                             cases[c].pb, cases[c].pr, cases[c].d);
        x = kn_nn_conv(g, x, "conv", cases[c].out_c, &w, cases[c].groups, c % 2 == 0,
                       cases[c].act);
        KN_CHECK(x > 0);
        finish(g, 100 + c);
        double d1 = ref_vs_dnnl(g, 1, 1, NULL), d3 = ref_vs_dnnl(g, 3, 3, NULL);
        if (d1 > 1e-5 || d3 > 1e-5)
            fprintf(stderr, "conv case %zu: diff %g / %g\n", c, d1, d3);
        KN_CHECK(d1 <= 1e-5);
        KN_CHECK(d3 <= 1e-5);
        kn_nn_graph_free(g);
    }
}

/* The reference conv against a direct computation written out here. */
static void test_ref_conv_direct(void)
{
    kn_nn_graph *g = kn_nn_graph_new();
    int x = kn_nn_input(g, 2, 5, 4);
    kn_nn_window w = win(3, 2, 2, 1, 0, 2, 1, 1); /* asymmetric: t1 l0 b2 r1 */
    x = kn_nn_conv(g, x, "c", 3, &w, 1, true, KN_ACT_NONE);
    finish(g, 5);
    const kn_nn_node *nd = kn_nn_graph_node(g, x);
    KN_CHECK_INT(nd->shape.h, (5 + 1 + 2 - 3) / 2 + 1);
    KN_CHECK_INT(nd->shape.w, (4 + 0 + 1 - 2) / 2 + 1);
    float in[2 * 5 * 4], out[64];
    fill(in, 40, 3, 1.0f);
    kn_nn_exec *xr;
    kn_err e = {0};
    kn_nn_exec_params p = kn_nn_exec_default_params();
    p.backend = KN_NN_REF;
    KN_REQUIRE(kn_nn_exec_new(g, &p, &xr, &e) == KN_OK);
    KN_CHECK_INT(kn_nn_exec_run(xr, in, 1, out, &e), KN_OK);
    const float *wt = kn_nn_graph_param_c(g, nd->w)->data, *b = kn_nn_graph_param_c(g, nd->b)->data;
    double maxd = 0;
    for (int oc = 0; oc < 3; oc++)
        for (int oy = 0; oy < nd->shape.h; oy++)
            for (int ox = 0; ox < nd->shape.w; ox++) {
                double acc = b[oc];
                for (int ic = 0; ic < 2; ic++)
                    for (int ky = 0; ky < 3; ky++)
                        for (int kx = 0; kx < 2; kx++) {
                            int iy = oy * 2 - 1 + ky, ix = ox * 2 - 0 + kx;
                            if (iy >= 0 && iy < 5 && ix >= 0 && ix < 4)
                                acc += wt[((oc * 2 + ic) * 3 + ky) * 2 + kx] * in[(ic * 5 + iy) * 4 + ix];
                        }
                double d = fabs(acc - out[(oc * nd->shape.h + oy) * nd->shape.w + ox]);
                maxd = d > maxd ? d : maxd;
            }
    KN_CHECK(maxd < 1e-5);
    kn_nn_exec_free(xr);
    kn_nn_graph_free(g);
}

/* Batch norm folded into a conv equals conv followed by the BN formula. */
static void test_bn_fold(void)
{
    kn_nn_graph *g = kn_nn_graph_new();
    int x = kn_nn_input(g, 3, 6, 6);
    kn_nn_window w = win(3, 3, 1, 1, 1, 1, 1, 1);
    int c = kn_nn_conv(g, x, "c", 4, &w, 1, false, KN_ACT_NONE);
    int b = kn_nn_batchnorm(g, c, "bn", 1e-5f);
    int r = kn_nn_relu(g, b);
    KN_CHECK(r > 0);
    finish(g, 9);
    kn_err e = {0};
    kn_nn_graph *o = NULL;
    KN_REQUIRE(kn_nn_graph_optimize(g, &o, &e) == KN_OK);
    KN_CHECK_INT(kn_nn_graph_count(o), 2); /* input, conv+bias+relu */
    KN_CHECK_INT(kn_nn_graph_node(o, 1)->act, KN_ACT_RELU);
    KN_CHECK(kn_nn_graph_node(o, 1)->b >= 0);
    /* expected: direct conv (no bias), BN, relu */
    float in[3 * 36], got[4 * 36];
    fill(in, 108, 11, 1.0f);
    kn_nn_exec *xr;
    kn_nn_exec_params p = kn_nn_exec_default_params();
    p.backend = KN_NN_REF;
    KN_REQUIRE(kn_nn_exec_new(g, &p, &xr, &e) == KN_OK);
    KN_CHECK_INT(kn_nn_exec_run(xr, in, 1, got, &e), KN_OK);
    const kn_nn_node *cn = kn_nn_graph_node(g, c), *bn = kn_nn_graph_node(g, b);
    const float *wt = kn_nn_graph_param_c(g, cn->w)->data;
    const float *mean = kn_nn_graph_param_c(g, bn->bn_mean)->data;
    const float *var = kn_nn_graph_param_c(g, bn->bn_var)->data;
    const float *gam = kn_nn_graph_param_c(g, bn->bn_gamma)->data;
    const float *bet = kn_nn_graph_param_c(g, bn->bn_beta)->data;
    double maxd = 0;
    for (int oc = 0; oc < 4; oc++)
        for (int y = 0; y < 6; y++)
            for (int xx = 0; xx < 6; xx++) {
                double acc = 0;
                for (int ic = 0; ic < 3; ic++)
                    for (int ky = 0; ky < 3; ky++)
                        for (int kx = 0; kx < 3; kx++) {
                            int iy = y - 1 + ky, ix = xx - 1 + kx;
                            if (iy >= 0 && iy < 6 && ix >= 0 && ix < 6)
                                acc += wt[((oc * 3 + ic) * 3 + ky) * 3 + kx] * in[(ic * 6 + iy) * 6 + ix];
                        }
                double v = (acc - mean[oc]) / sqrt(var[oc] + 1e-5) * gam[oc] + bet[oc];
                v = v > 0 ? v : 0;
                double d = fabs(v - got[(oc * 6 + y) * 6 + xx]);
                maxd = d > maxd ? d : maxd;
            }
    KN_CHECK(maxd < 1e-5);
    KN_CHECK(ref_vs_dnnl(g, 2, 2, NULL) <= 1e-5);
    kn_nn_exec_free(xr);
    kn_nn_graph_free(o);
    kn_nn_graph_free(g);
}

/* Every other op, in one network shaped like a small classifier with a
 * residual block, a standalone batch norm, pools with padding and a
 * spatial flatten into a linear head. */
static void test_all_ops(void)
{
    for (int variant = 0; variant < 2; variant++) {
        kn_nn_graph *g = kn_nn_graph_new();
        int x = kn_nn_input(g, 3, 20, 18);
        kn_nn_window w3 = win(3, 3, 1, 1, 1, 1, 1, 1);
        int a = kn_nn_conv(g, x, "stem", 8, &w3, 1, true, KN_ACT_NONE);
        a = kn_nn_batchnorm(g, a, "stem_bn", 1e-3f);
        a = kn_nn_relu6(g, a);
        kn_nn_window mp = win(3, 3, 2, 1, 1, 1, 1, 1);
        a = kn_nn_maxpool(g, a, &mp);
        int b = kn_nn_conv(g, a, "b1", 8, &w3, 1, false, KN_ACT_RELU);
        b = kn_nn_conv(g, b, "b2", 8, &w3, 1, false, KN_ACT_NONE);
        a = kn_nn_add(g, b, a, variant ? KN_ACT_RELU : KN_ACT_NONE);
        a = kn_nn_batchnorm(g, a, "mid_bn", 1e-5f); /* not after a conv */
        a = kn_nn_relu(g, a);
        kn_nn_window ap = win(2, 3, 2, 0, 1, 1, 0, 1);
        a = kn_nn_avgpool(g, a, &ap, variant == 0);
        int f = kn_nn_flatten(g, a);
        f = kn_nn_dropout(g, f, 0.5f);
        f = kn_nn_linear(g, f, "fc1", 16, true, KN_ACT_RELU);
        f = kn_nn_linear(g, f, "fc2", 5, true, KN_ACT_NONE);
        f = kn_nn_softmax(g, f);
        KN_CHECK(f > 0);
        finish(g, 40 + variant);
        double d = ref_vs_dnnl(g, 4, 4, NULL);
        KN_CHECK(d <= 1e-5);
        /* a smaller batch after creation uses a new plan with converted weights */
        float full[4 * 5], part[2 * 5];
        ref_vs_dnnl(g, 4, 4, full);
        KN_CHECK(ref_vs_dnnl(g, 4, 2, part) <= 1e-5);
        KN_CHECK(kn_test_max_abs_diff(full, part, 10) < 1e-6); /* same inputs, same rows */
        kn_nn_graph_free(g);
    }
}

/* A global-pool head (resnet-like tail) and a standalone add + relu. */
static void test_gap_head(void)
{
    kn_nn_graph *g = kn_nn_graph_new();
    int x = kn_nn_input(g, 4, 7, 7);
    kn_nn_window w1 = win(1, 1, 1, 0, 0, 0, 0, 1);
    int a = kn_nn_conv(g, x, "a", 16, &w1, 1, true, KN_ACT_RELU);
    int b = kn_nn_conv(g, x, "b", 16, &w1, 1, true, KN_ACT_RELU);
    int s = kn_nn_relu(g, kn_nn_add(g, a, b, KN_ACT_NONE)); /* both producers have acts */
    s = kn_nn_gap(g, s);
    s = kn_nn_flatten(g, s);
    s = kn_nn_linear(g, s, "fc", 3, true, KN_ACT_NONE);
    KN_CHECK(s > 0);
    finish(g, 77);
    KN_CHECK(ref_vs_dnnl(g, 1, 1, NULL) <= 1e-5);
    KN_CHECK(ref_vs_dnnl(g, 5, 5, NULL) <= 1e-5);
    kn_nn_graph_free(g);
}

/* Batches beyond the oneDNN micro-batch run in passes: every row must come
 * out as the reference computes it, for a batch that is not a multiple of
 * the pass size, one smaller than it, and a pass size of 1. */
static void test_micro_batches(void)
{
    kn_nn_graph *g = kn_nn_graph_new();
    int x = kn_nn_input(g, 3, 9, 9);
    kn_nn_window w3 = win(3, 3, 2, 1, 1, 1, 1, 1);
    x = kn_nn_conv(g, x, "c", 8, &w3, 1, true, KN_ACT_RELU);
    x = kn_nn_gap(g, x);
    x = kn_nn_flatten(g, x);
    x = kn_nn_linear(g, x, "fc", 5, true, KN_ACT_NONE);
    finish(g, 91);
    enum { N = 11 };
    size_t per_in = 3 * 9 * 9, per_out = 5;
    float *in = malloc(per_in * N * sizeof(float));
    fill(in, per_in * N, 3, 1.0f);
    float ref[N * 5], got[N * 5];
    kn_err e = {0};
    kn_nn_exec_params p = kn_nn_exec_default_params();
    p.backend = KN_NN_REF;
    p.max_batch = N;
    kn_nn_exec *xr = NULL;
    KN_REQUIRE(kn_nn_exec_new(g, &p, &xr, &e) == KN_OK);
    KN_CHECK_INT(kn_nn_exec_run(xr, in, N, ref, &e), KN_OK);
    const int micro[] = {4, 1, 0, 64};
    for (size_t m = 0; m < sizeof micro / sizeof micro[0]; m++) {
        p.backend = KN_NN_DNNL;
        p.micro_batch = micro[m];
        kn_nn_exec *xd = NULL;
        KN_REQUIRE(kn_nn_exec_new(g, &p, &xd, &e) == KN_OK);
        for (int n = N; n >= 3; n -= 8) {
            memset(got, 0, sizeof got);
            KN_CHECK_INT(kn_nn_exec_run(xd, in, n, got, &e), KN_OK);
            double d = kn_test_max_abs_diff(ref, got, per_out * (size_t)n);
            if (d > 1e-5)
                fprintf(stderr, "micro %d batch %d: max diff %g\n", micro[m], n, d);
            KN_CHECK(d <= 1e-5);
        }
        kn_nn_exec_free(xd);
    }
    kn_nn_exec_free(xr);
    free(in);
    kn_nn_graph_free(g);
}

static void test_builders(void)
{
    struct {
        const char *arch;
        size_t params;
        double gflops;
    } cases[] = {
        /* torchvision's parameter counts for 1000 classes */
        {"resnet18", 11689512, 3.64}, {"resnet34", 21797672, 7.34},
        {"resnet50", 25557032, 8.21}, {"mobilenet_v2", 3504872, 0.63},
    };
    kn_nn_head head = {.classes = 1000};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        kn_nn_graph *g = kn_nn_graph_new();
        kn_err e = {0};
        KN_CHECK_INT(kn_nn_build_arch(g, cases[i].arch, 224, 224, &head, &e), KN_OK);
        size_t n = kn_nn_graph_param_numel(g);
        /* torchvision counts BN running stats as buffers, not parameters */
        size_t bn_buffers = 0;
        for (int k = 0; k < kn_nn_graph_param_count(g); k++) {
            const char *nm = kn_nn_graph_param_c(g, k)->name;
            if (strstr(nm, "running_"))
                bn_buffers += kn_nn_graph_param_c(g, k)->numel;
        }
        KN_CHECK_INT(n - bn_buffers, cases[i].params);
        KN_CHECK_NEAR(kn_nn_graph_flops(g) / 1e9, cases[i].gflops, 0.08);
        KN_CHECK_STR(kn_nn_graph_node(g, kn_nn_graph_count(g) - 1)->name,
                     strcmp(cases[i].arch, "mobilenet_v2") ? "fc" : "classifier.1");
        kn_nn_graph_free(g);
    }
    /* the dog head: fc.0 (2048 -> 128), ReLU, fc.2 (128 -> 133) */
    kn_nn_head dog = {.classes = 133, .n_hidden = 1, .hidden = {128}};
    kn_nn_graph *g = kn_nn_graph_new();
    kn_err e = {0};
    KN_CHECK_INT(kn_nn_build_resnet(g, 50, 224, 224, &dog, &e), KN_OK);
    int w0 = kn_nn_graph_param_find(g, "fc.0.weight"), w2 = kn_nn_graph_param_find(g, "fc.2.weight");
    KN_REQUIRE(w0 >= 0 && w2 >= 0);
    KN_CHECK_INT(kn_nn_graph_param_c(g, w0)->dims[0], 128);
    KN_CHECK_INT(kn_nn_graph_param_c(g, w0)->dims[1], 2048);
    KN_CHECK_INT(kn_nn_graph_param_c(g, w2)->dims[0], 133);
    KN_CHECK(kn_nn_graph_param_find(g, "layer4.2.bn3.running_var") >= 0);
    KN_CHECK(kn_nn_graph_param_find(g, "layer3.0.downsample.0.weight") >= 0);
    kn_nn_graph_free(g);
    /* tiny: conv1 3x3/2 (3 -> 16) + bn1 + ReLU, pool, fc (16 -> 10); runs on
     * both backends alike at a small input */
    kn_nn_head ten = {.classes = 10};
    g = kn_nn_graph_new();
    KN_CHECK_INT(kn_nn_build_arch(g, "tiny", 16, 16, &ten, &e), KN_OK);
    KN_CHECK(kn_nn_graph_param_find(g, "bn1.running_mean") >= 0);
    int fw = kn_nn_graph_param_find(g, "fc.weight");
    KN_REQUIRE(fw >= 0);
    KN_CHECK_INT(kn_nn_graph_param_c(g, fw)->dims[1], 16);
    KN_CHECK_INT(kn_nn_graph_param_numel(g) - 32, 3 * 16 * 9 + 2 * 16 + 16 * 10 + 10);
    kn_nn_graph_init_params(g, 3, true);
    kn_nn_graph_randomize_bn(g, 4);
    KN_CHECK(ref_vs_dnnl(g, 2, 2, NULL) <= 1e-5);
    kn_nn_graph_free(g);
    /* unknown architecture, bad depth, bad head */
    g = kn_nn_graph_new();
    KN_CHECK_INT(kn_nn_build_arch(g, "vgg16", 224, 224, &head, &e), KN_INVALID);
    KN_CHECK_CONTAINS(e.msg, "vgg16");
    KN_CHECK_INT(kn_nn_build_arch(g, "resnet20", 224, 224, &head, &e), KN_INVALID);
    kn_nn_head bad = {.classes = 0};
    KN_CHECK_INT(kn_nn_build_arch(g, "resnet18", 224, 224, &bad, &e), KN_INVALID);
    kn_nn_graph_free(g);
}

static void test_bad_graphs(void)
{
    kn_err e = {0};
    kn_nn_graph *g = kn_nn_graph_new();
    int x = kn_nn_input(g, 3, 8, 8);
    kn_nn_window w = win(3, 3, 1, 0, 0, 0, 0, 1);
    int a = kn_nn_conv(g, x, "a", 4, &w, 1, false, KN_ACT_NONE); /* 6x6 */
    KN_CHECK(kn_nn_add(g, a, x, KN_ACT_NONE) < 0);               /* 4x6x6 + 3x8x8 */
    KN_CHECK_INT(kn_nn_graph_finalize(g, &e), KN_SHAPE);
    KN_CHECK_CONTAINS(e.msg, "add");
    kn_nn_graph_free(g);

    g = kn_nn_graph_new();
    x = kn_nn_input(g, 3, 4, 4);
    kn_nn_window big = win(7, 7, 1, 0, 0, 0, 0, 1);
    KN_CHECK(kn_nn_conv(g, x, "toobig", 4, &big, 1, false, KN_ACT_NONE) < 0);
    KN_CHECK_INT(kn_nn_graph_finalize(g, &e), KN_SHAPE);
    KN_CHECK_CONTAINS(e.msg, "toobig");
    kn_nn_graph_free(g);

    g = kn_nn_graph_new();
    x = kn_nn_input(g, 3, 4, 4);
    KN_CHECK(kn_nn_conv(g, x, "grp", 4, &w, 2, false, KN_ACT_NONE) < 0); /* 3 % 2 */
    KN_CHECK_INT(kn_nn_graph_finalize(g, &e), KN_SHAPE);
    KN_CHECK_CONTAINS(e.msg, "groups");
    kn_nn_graph_free(g);

    g = kn_nn_graph_new();
    x = kn_nn_input(g, 3, 4, 4);
    KN_CHECK(kn_nn_linear(g, x, "fc", 2, true, KN_ACT_NONE) < 0); /* not flat */
    KN_CHECK_INT(kn_nn_graph_finalize(g, &e), KN_SHAPE);
    KN_CHECK_CONTAINS(e.msg, "flatten");
    kn_nn_graph_free(g);

    g = kn_nn_graph_new();
    KN_CHECK(kn_nn_input(g, 0, 4, 4) < 0);
    KN_CHECK_INT(kn_nn_graph_finalize(g, &e), KN_INVALID);
    kn_nn_graph_free(g);

    /* executor limits */
    g = kn_nn_graph_new();
    x = kn_nn_input(g, 2, 3, 3);
    kn_nn_gap(g, x);
    KN_REQUIRE(kn_nn_graph_finalize(g, &e) == KN_OK);
    kn_nn_exec *ex;
    kn_nn_exec_params p = kn_nn_exec_default_params();
    p.max_batch = 0;
    KN_CHECK_INT(kn_nn_exec_new(g, &p, &ex, &e), KN_INVALID);
    p.max_batch = 2;
    KN_REQUIRE(kn_nn_exec_new(g, &p, &ex, &e) == KN_OK);
    float in[3 * 18] = {0}, out[6];
    KN_CHECK_INT(kn_nn_exec_run(ex, in, 3, out, &e), KN_INVALID);
    KN_CHECK_CONTAINS(e.msg, "batch of 3");
    KN_CHECK_INT(kn_nn_exec_run(ex, in, 2, out, &e), KN_OK);
    kn_nn_exec_free(ex);
    kn_nn_graph_free(g);
}

/* Weights from safetensors: found by name; missing and misshaped tensors are
 * named with both shapes; F16 values convert. */
static void test_load_weights(void)
{
    char dir[] = "/tmp/kn-test-weights-XXXXXX";
    KN_REQUIRE(mkdtemp(dir) != NULL);
    char path[256];
    snprintf(path, sizeof path, "%s/w.safetensors", dir);
    kn_err e = {0};

    kn_nn_graph *g = kn_nn_graph_new();
    int x = kn_nn_input(g, 3, 4, 4);
    kn_nn_window w = win(3, 3, 1, 1, 1, 1, 1, 1);
    x = kn_nn_conv(g, x, "conv1", 4, &w, 1, true, KN_ACT_NONE);
    KN_REQUIRE(kn_nn_graph_finalize(g, &e) == KN_OK);
    kn_nn_graph_init_params(g, 3, true);
    KN_REQUIRE(kn_nn_graph_save_st(g, path, &e) == KN_OK);

    /* round trip into a fresh graph */
    kn_nn_graph *h = kn_nn_graph_new();
    x = kn_nn_input(h, 3, 4, 4);
    kn_nn_conv(h, x, "conv1", 4, &w, 1, true, KN_ACT_NONE);
    KN_REQUIRE(kn_nn_graph_finalize(h, &e) == KN_OK);
    kn_st_file *st = NULL;
    KN_REQUIRE(kn_st_open(path, &st, &e) == KN_OK);
    KN_CHECK_INT(kn_nn_graph_load_st(h, st, NULL, false, &e), KN_OK);
    const kn_nn_param *pa = kn_nn_graph_param_c(g, 0), *pb = kn_nn_graph_param_c(h, 0);
    KN_CHECK(kn_test_max_abs_diff(pa->data, pb->data, pa->numel) == 0);
    kn_st_free(st);
    kn_nn_graph_free(h);

    /* a graph wanting 8 output channels: the error names tensor and shapes */
    h = kn_nn_graph_new();
    x = kn_nn_input(h, 3, 4, 4);
    kn_nn_conv(h, x, "conv1", 8, &w, 1, true, KN_ACT_NONE);
    KN_REQUIRE(kn_nn_graph_finalize(h, &e) == KN_OK);
    KN_REQUIRE(kn_st_open(path, &st, &e) == KN_OK);
    KN_CHECK_INT(kn_nn_graph_load_st(h, st, NULL, false, &e), KN_SHAPE);
    KN_CHECK_CONTAINS(e.msg, "conv1.weight");
    KN_CHECK_CONTAINS(e.msg, "[4, 3, 3, 3]");
    KN_CHECK_CONTAINS(e.msg, "[8, 3, 3, 3]");
    kn_st_free(st);
    kn_nn_graph_free(h);

    /* a graph wanting a tensor the file lacks */
    h = kn_nn_graph_new();
    x = kn_nn_input(h, 3, 4, 4);
    x = kn_nn_conv(h, x, "conv1", 4, &w, 1, true, KN_ACT_NONE);
    kn_nn_batchnorm(h, x, "bn1", 1e-5f);
    KN_REQUIRE(kn_nn_graph_finalize(h, &e) == KN_OK);
    KN_REQUIRE(kn_st_open(path, &st, &e) == KN_OK);
    KN_CHECK_INT(kn_nn_graph_load_st(h, st, NULL, false, &e), KN_NOT_FOUND);
    KN_CHECK_CONTAINS(e.msg, "bn1.running_mean");
    KN_CHECK_INT(kn_nn_graph_load_st(h, st, NULL, true, &e), KN_OK);
    kn_st_free(st);
    kn_nn_graph_free(h);

    /* an executor refuses parameters that were never given values */
    h = kn_nn_graph_new();
    x = kn_nn_input(h, 3, 4, 4);
    kn_nn_conv(h, x, "conv1", 4, &w, 1, true, KN_ACT_NONE);
    KN_REQUIRE(kn_nn_graph_finalize(h, &e) == KN_OK);
    kn_nn_exec *ex = NULL;
    kn_nn_exec_params p = kn_nn_exec_default_params();
    KN_CHECK_INT(kn_nn_exec_new(h, &p, &ex, &e), KN_INVALID);
    KN_CHECK_CONTAINS(e.msg, "conv1.weight");
    kn_nn_graph_free(h);

    kn_nn_graph_free(g);
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    KN_RUN(test_ref_conv_direct);
    KN_RUN(test_conv_variants);
    KN_RUN(test_bn_fold);
    KN_RUN(test_all_ops);
    KN_RUN(test_gap_head);
    KN_RUN(test_micro_batches);
    KN_RUN(test_builders);
    KN_RUN(test_bad_graphs);
    KN_RUN(test_load_weights);
    return kn_test_finish();
}
