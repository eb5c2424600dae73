/* Cross-entropy against finite differences and a hand computation; SGD
 * (momentum, dampening, nesterov, weight decay), Adam and AdamW updates
 * against PyTorch's formulas written out step by step here; the trainer's
 * dense backward against finite differences of the loss. */
#include "kennel/nn.h"
#include "kennel/train.h"
#include "kn_test.h"

static void test_cross_entropy(void)
{
    float z[2 * 3] = {1.0f, 2.0f, 0.5f, -1.0f, 0.0f, 3.0f};
    int y[2] = {1, 0};
    float loss, d[6];
    int correct;
    kn_err e = {0};
    KN_REQUIRE(kn_train_cross_entropy(z, y, 2, 3, &loss, d, &correct, &e) == KN_OK);
    double l0 = log(exp(1) + exp(2) + exp(0.5)) - 2, l1 = log(exp(-1) + exp(0) + exp(3)) + 1;
    KN_CHECK_NEAR(loss, (l0 + l1) / 2, 1e-6);
    KN_CHECK_INT(correct, 1);
    for (int i = 0; i < 6; i++) {
        float zp[6], zm[6], lp, lm;
        memcpy(zp, z, sizeof z);
        memcpy(zm, z, sizeof z);
        zp[i] += 1e-2f;
        zm[i] -= 1e-2f;
        kn_train_cross_entropy(zp, y, 2, 3, &lp, NULL, NULL, &e);
        kn_train_cross_entropy(zm, y, 2, 3, &lm, NULL, NULL, &e);
        KN_CHECK_NEAR(d[i], (lp - lm) / 2e-2, 2e-4);
    }
    int bad[2] = {1, 3};
    KN_CHECK_INT(kn_train_cross_entropy(z, bad, 2, 3, &loss, NULL, NULL, &e), KN_INVALID);
    KN_CHECK_CONTAINS(e.msg, "label 3");
}

/* A one-parameter graph (linear 1 -> 1, no bias) so the optimiser can be
 * driven with chosen gradients: loss = g * w gives dL/dw = g * x. */
typedef struct rig {
    kn_nn_graph *g;
    kn_nn_trainer *t;
    kn_opt *o;
} rig;

static void rig_new(rig *r, const kn_opt_params *op, float w0)
{
    kn_err e = {0};
    r->g = kn_nn_graph_new();
    int x = kn_nn_input(r->g, 1, 1, 1);
    kn_nn_linear(r->g, kn_nn_flatten(r->g, x), "w", 1, false, KN_ACT_NONE);
    kn_nn_graph_finalize(r->g, &e);
    kn_nn_graph_param(r->g, 0)->data[0] = w0;
    kn_nn_graph_param(r->g, 0)->loaded = true;
    kn_nn_train_params tp = kn_nn_train_default_params();
    tp.max_batch = 1;
    kn_nn_trainer_new(r->g, &tp, &r->t, &e);
    kn_opt_new(op, r->g, r->t, &r->o, &e);
}

static float rig_step(rig *r, float grad)
{
    kn_err e = {0};
    float one = 1.0f, out, dout = grad;
    kn_nn_trainer_forward(r->t, &one, 1, true, &out, &e);
    kn_nn_trainer_backward(r->t, &dout, NULL, &e);
    kn_opt_step(r->o);
    return kn_nn_graph_param(r->g, 0)->data[0];
}

static void rig_free(rig *r)
{
    kn_opt_free(r->o);
    kn_nn_trainer_free(r->t);
    kn_nn_graph_free(r->g);
}

static void test_sgd(void)
{
    const float grads[3] = {0.5f, -0.25f, 1.0f};
    struct {
        float mom, damp, wd;
        bool nesterov;
    } cases[] = {{0, 0, 0, false}, {0.9f, 0, 0, false}, {0.9f, 0.1f, 0.01f, false},
                 {0.9f, 0, 0.01f, true}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        kn_opt_params op = kn_opt_default_params();
        op.kind = KN_OPT_SGD;
        op.lr = 0.1f;
        op.momentum = cases[c].mom;
        op.dampening = cases[c].damp;
        op.weight_decay = cases[c].wd;
        op.nesterov = cases[c].nesterov;
        rig r;
        rig_new(&r, &op, 1.0f);
        double w = 1.0, buf = 0;
        for (int s = 0; s < 3; s++) {
            double d = grads[s] + cases[c].wd * w;
            if (cases[c].mom != 0) {
                buf = s == 0 ? d : cases[c].mom * buf + (1 - cases[c].damp) * d;
                d = cases[c].nesterov ? d + cases[c].mom * buf : buf;
            }
            w -= 0.1 * d;
            KN_CHECK_NEAR(rig_step(&r, grads[s]), w, 1e-6);
        }
        rig_free(&r);
    }
}

static void test_adam(void)
{
    const float grads[4] = {0.5f, -0.25f, 1.0f, 0.0f};
    for (int decoupled = 0; decoupled < 2; decoupled++) {
        kn_opt_params op = kn_opt_default_params();
        op.kind = decoupled ? KN_OPT_ADAMW : KN_OPT_ADAM;
        op.lr = 0.01f;
        op.weight_decay = 0.1f;
        rig r;
        rig_new(&r, &op, 1.0f);
        double w = 1.0, m = 0, v = 0;
        for (int s = 1; s <= 4; s++) {
            double g = grads[s - 1];
            if (decoupled)
                w *= 1 - 0.01 * 0.1;
            else
                g += 0.1 * w;
            m = 0.9 * m + 0.1 * g;
            v = 0.999 * v + 0.001 * g * g;
            double bc1 = 1 - pow(0.9, s), bc2 = 1 - pow(0.999, s);
            w -= 0.01 / bc1 * m / (sqrt(v) / sqrt(bc2) + 1e-8);
            KN_CHECK_NEAR(rig_step(&r, grads[s - 1]), w, 1e-6);
        }
        rig_free(&r);
    }
    kn_opt_params bad = kn_opt_default_params();
    bad.lr = -1;
    rig r;
    kn_err e = {0};
    r.g = kn_nn_graph_new();
    kn_nn_input(r.g, 1, 1, 1);
    kn_opt *o = NULL;
    KN_CHECK_INT(kn_opt_new(&bad, r.g, NULL, &o, &e), KN_INVALID);
    KN_CHECK_CONTAINS(e.msg, "learning rate");
    kn_nn_graph_free(r.g);
}

/* Head backward (linear, relu, dropout off, flatten) against central
 * differences of the cross-entropy. */
static void test_head_grad(void)
{
    kn_err e = {0};
    kn_nn_graph *g = kn_nn_graph_new();
    kn_nn_head h = {.classes = 4, .n_hidden = 1, .hidden = {5}};
    int x = kn_nn_input(g, 6, 1, 1);
    kn_nn_head_append(g, x, &h);
    KN_REQUIRE(kn_nn_graph_finalize(g, &e) == KN_OK);
    kn_nn_graph_init_params(g, 3, true);
    kn_nn_train_params tp = kn_nn_train_default_params();
    tp.max_batch = 3;
    kn_nn_trainer *t;
    KN_REQUIRE(kn_nn_trainer_new(g, &tp, &t, &e) == KN_OK);
    float in[18], out[12], dout[12], din[18];
    int y[3] = {0, 3, 2};
    kn_rng r;
    kn_rng_seed(&r, 9);
    for (int i = 0; i < 18; i++)
        in[i] = (float)kn_rng_normal(&r);
    float loss;
    kn_nn_trainer_forward(t, in, 3, true, out, &e);
    kn_train_cross_entropy(out, y, 3, 4, &loss, dout, NULL, &e);
    KN_REQUIRE(kn_nn_trainer_backward(t, dout, din, &e) == KN_OK);
    double worst = 0;
    for (int pi = 0; pi < kn_nn_graph_param_count(g); pi++) {
        kn_nn_param *p = kn_nn_graph_param(g, pi);
        const float *grad = kn_nn_trainer_grad(t, pi);
        KN_REQUIRE(grad != NULL);
        float saved[64];
        memcpy(saved, grad, p->numel * sizeof(float));
        for (size_t k = 0; k < p->numel; k++) {
            float keep = p->data[k], lp, lm;
            p->data[k] = keep + 1e-3f;
            kn_nn_trainer_forward(t, in, 3, true, out, &e);
            kn_train_cross_entropy(out, y, 3, 4, &lp, NULL, NULL, &e);
            p->data[k] = keep - 1e-3f;
            kn_nn_trainer_forward(t, in, 3, true, out, &e);
            kn_train_cross_entropy(out, y, 3, 4, &lm, NULL, NULL, &e);
            p->data[k] = keep;
            double fd = (lp - lm) / 2e-3, d = fabs(fd - saved[k]);
            worst = d > worst ? d : worst;
        }
    }
    KN_CHECK(worst < 2e-3);
    /* the input gradient too */
    for (int i = 0; i < 18; i++) {
        float keep = in[i], lp, lm;
        in[i] = keep + 1e-3f;
        kn_nn_trainer_forward(t, in, 3, true, out, &e);
        kn_train_cross_entropy(out, y, 3, 4, &lp, NULL, NULL, &e);
        in[i] = keep - 1e-3f;
        kn_nn_trainer_forward(t, in, 3, true, out, &e);
        kn_train_cross_entropy(out, y, 3, 4, &lm, NULL, NULL, &e);
        in[i] = keep;
        KN_CHECK_NEAR(din[i], (lp - lm) / 2e-3, 2e-3);
    }
    kn_nn_trainer_free(t);
    kn_nn_graph_free(g);
}

int main(void)
{
    KN_RUN(test_cross_entropy);
    KN_RUN(test_sgd);
    KN_RUN(test_adam);
    KN_RUN(test_head_grad);
    return kn_test_finish();
}
