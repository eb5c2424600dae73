/* The training-mode executor: forward with saved activations, backward in
 * reverse topological order accumulating gradients. This file walks the
 * graph and implements the dense ops (linear on OpenBLAS, relu, relu6, add,
 * dropout, flatten, global average pool); conv, batch norm and pooling live
 * in train_conv.c behind kn__train_*.
 *
 * Gradients of values accumulate (+=), since a value read by two nodes (a
 * residual connection) receives two contributions; parameter gradients are
 * zeroed at the start of each backward pass and accumulated by the ops.
 * Deterministic for a given thread count.
 */
#include "nn_int.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

kn_nn_train_params kn_nn_train_default_params(void)
{
    return (kn_nn_train_params){
        .max_batch = 32, .bn_momentum = 0.1f, .seed = 0, .backend = KN_NN_DNNL};
}

void kn_nn_trainer_free(kn_nn_trainer *t)
{
    if (!t)
        return;
    kn__train_conv_free(t);
    int n = t->g ? t->g->n : 0;
    for (int i = 0; i < n; i++) {
        if (t->val)
            kn_free_aligned(t->val[i]);
        if (t->grad)
            kn_free_aligned(t->grad[i]);
        if (t->state)
            free(t->state[i]);
    }
    if (t->pgrad)
        for (int i = 0; i < t->g->np; i++)
            kn_free_aligned(t->pgrad[i]);
    free(t->val);
    free(t->grad);
    free(t->pgrad);
    free(t->need_grad);
    free(t->state);
    free(t);
}

static bool is_running_stat(const kn_nn_graph *g, int param)
{
    for (int i = 0; i < g->n; i++)
        if (g->nodes[i].op == KN_OP_BATCHNORM &&
            (g->nodes[i].bn_mean == param || g->nodes[i].bn_var == param))
            return true;
    return false;
}

kn_status kn_nn_trainer_new(kn_nn_graph *g, const kn_nn_train_params *p, kn_nn_trainer **out,
                            kn_err *e)
{
    *out = NULL;
    if (!g->finalized)
        return kn_err_set(e, KN_INVALID, "trainer: graph is not finalised");
    if (p->max_batch < 1 || p->max_batch > 4096)
        return kn_err_set(e, KN_INVALID, "trainer: batch size %d is out of range [1, 4096]",
                          p->max_batch);
    for (int i = 0; i < g->np; i++)
        if (!g->params[i].loaded)
            return kn_err_set(e, KN_INVALID, "trainer: parameter %s has no value",
                              g->params[i].name);
    kn_nn_trainer *t = calloc(1, sizeof *t);
    if (!t)
        return kn_err_set(e, KN_NOMEM, "trainer: out of memory");
    t->g = g;
    t->p = *p;
    kn_rng_seed(&t->rng, p->seed);
    t->val = calloc((size_t)g->n, sizeof *t->val);
    t->grad = calloc((size_t)g->n, sizeof *t->grad);
    t->state = calloc((size_t)g->n, sizeof *t->state);
    t->need_grad = calloc((size_t)g->n, sizeof *t->need_grad);
    t->pgrad = calloc((size_t)(g->np ? g->np : 1), sizeof *t->pgrad);
    if (!t->val || !t->grad || !t->state || !t->need_grad || !t->pgrad)
        goto oom;
    for (int i = 0; i < g->n; i++) {
        size_t bytes = kn__nn_shape_numel(g->nodes[i].shape) * (size_t)p->max_batch * sizeof(float);
        t->val[i] = kn_alloc_aligned(bytes);
        t->grad[i] = kn_alloc_aligned(bytes);
        if (!t->val[i] || !t->grad[i])
            goto oom;
        memset(t->val[i], 0, bytes);
        memset(t->grad[i], 0, bytes);
        t->need_grad[i] = i > 0;
        if (g->nodes[i].op == KN_OP_SOFTMAX) {
            kn_nn_trainer_free(t);
            return kn_err_set(e, KN_UNSUPPORTED, "trainer: softmax at node %d; train on logits "
                              "with a cross-entropy loss instead", i);
        }
    }
    for (int i = 0; i < g->np; i++) {
        if (is_running_stat(g, i))
            continue;
        t->pgrad[i] = kn_alloc_aligned(g->params[i].numel * sizeof(float));
        if (!t->pgrad[i])
            goto oom;
        memset(t->pgrad[i], 0, g->params[i].numel * sizeof(float));
    }
    *out = t;
    return KN_OK;
oom:
    kn_nn_trainer_free(t);
    return kn_err_set(e, KN_NOMEM, "trainer: out of memory for batch %d", p->max_batch);
}

float *kn_nn_trainer_grad(kn_nn_trainer *t, int param)
{
    return param >= 0 && param < t->g->np ? t->pgrad[param] : NULL;
}

static float act_f(kn_nn_act a, float v)
{
    if (a == KN_ACT_RELU)
        return v > 0 ? v : 0;
    if (a == KN_ACT_RELU6)
        return v < 0 ? 0 : v > 6 ? 6 : v;
    return v;
}

/* d(act)/dx expressed through the output y. */
static float act_d(kn_nn_act a, float y)
{
    if (a == KN_ACT_RELU)
        return y > 0 ? 1.0f : 0.0f;
    if (a == KN_ACT_RELU6)
        return y > 0 && y < 6 ? 1.0f : 0.0f;
    return 1.0f;
}

/* ---- dense ops ------------------------------------------------------------ */

static kn_status linear_fwd(kn_nn_trainer *t, int i)
{
    const kn_nn_node *nd = &t->g->nodes[i];
    int n = t->n, in_f = t->g->nodes[nd->in[0]].shape.c, of = nd->out_c;
    const float *x = t->val[nd->in[0]], *w = t->g->params[nd->w].data;
    float *y = t->val[i];
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, of, in_f, 1.0f, x, in_f, w, in_f,
                0.0f, y, of);
    const float *b = nd->b >= 0 ? t->g->params[nd->b].data : NULL;
    for (int s = 0; s < n; s++)
        for (int o = 0; o < of; o++) {
            float v = y[(size_t)s * of + o] + (b ? b[o] : 0.0f);
            y[(size_t)s * of + o] = act_f(nd->act, v);
        }
    return KN_OK;
}

static kn_status linear_bwd(kn_nn_trainer *t, int i, kn_err *e)
{
    const kn_nn_node *nd = &t->g->nodes[i];
    int n = t->n, in_f = t->g->nodes[nd->in[0]].shape.c, of = nd->out_c;
    const float *x = t->val[nd->in[0]], *w = t->g->params[nd->w].data;
    float *dy = t->grad[i];
    if (nd->act != KN_ACT_NONE) /* through the fused activation, in place */
        for (size_t k = 0; k < (size_t)n * of; k++)
            dy[k] *= act_d(nd->act, t->val[i][k]);
    if (t->pgrad[nd->w])
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, of, in_f, n, 1.0f, dy, of, x, in_f,
                    1.0f, t->pgrad[nd->w], in_f);
    if (nd->b >= 0 && t->pgrad[nd->b]) {
        float *db = t->pgrad[nd->b];
        for (int s = 0; s < n; s++)
            for (int o = 0; o < of; o++)
                db[o] += dy[(size_t)s * of + o];
    }
    if (t->need_grad[nd->in[0]])
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, in_f, of, 1.0f, dy, of, w, in_f,
                    1.0f, t->grad[nd->in[0]], in_f);
    (void)e;
    return KN_OK;
}

static size_t numel_n(const kn_nn_trainer *t, int i)
{
    return kn__nn_shape_numel(t->g->nodes[i].shape) * (size_t)t->n;
}

static kn_status fwd(kn_nn_trainer *t, int i, kn_err *e)
{
    const kn_nn_node *nd = &t->g->nodes[i];
    const float *x = nd->n_in ? t->val[nd->in[0]] : NULL;
    float *y = t->val[i];
    size_t total = numel_n(t, i);
    switch (nd->op) {
    case KN_OP_LINEAR:
        return linear_fwd(t, i);
    case KN_OP_RELU:
    case KN_OP_RELU6: {
        kn_nn_act a = nd->op == KN_OP_RELU ? KN_ACT_RELU : KN_ACT_RELU6;
        for (size_t k = 0; k < total; k++)
            y[k] = act_f(a, x[k]);
        return KN_OK;
    }
    case KN_OP_ADD: {
        const float *x1 = t->val[nd->in[1]];
        for (size_t k = 0; k < total; k++)
            y[k] = act_f(nd->act, x[k] + x1[k]);
        return KN_OK;
    }
    case KN_OP_FLATTEN:
        memcpy(y, x, total * sizeof(float));
        return KN_OK;
    case KN_OP_DROPOUT: {
        if (!t->training || nd->rate <= 0) {
            memcpy(y, x, total * sizeof(float));
            return KN_OK;
        }
        /* inverted dropout as PyTorch: keep with 1 - p, scale by 1 / (1 - p);
         * the mask (the scale per element, 0 or 1/(1-p)) is kept for backward */
        float *mask = t->state[i];
        if (!mask) {
            mask = malloc(kn__nn_shape_numel(nd->shape) * (size_t)t->p.max_batch * sizeof(float));
            if (!mask)
                return kn_err_set(e, KN_NOMEM, "trainer: out of memory for a dropout mask");
            t->state[i] = mask;
        }
        float scale = 1.0f / (1.0f - nd->rate);
        for (size_t k = 0; k < total; k++) {
            mask[k] = kn_rng_uniform(&t->rng) < nd->rate ? 0.0f : scale;
            y[k] = x[k] * mask[k];
        }
        return KN_OK;
    }
    case KN_OP_GAP: {
        kn_nn_shape is = t->g->nodes[nd->in[0]].shape;
        size_t hw = (size_t)is.h * is.w;
        for (size_t k = 0; k < total; k++) {
            double sum = 0;
            for (size_t j = 0; j < hw; j++)
                sum += x[k * hw + j];
            y[k] = (float)(sum / (double)hw);
        }
        return KN_OK;
    }
    case KN_OP_CONV:
        return kn__train_conv_fwd(t, i, e);
    case KN_OP_BATCHNORM:
        return kn__train_bn_fwd(t, i, e);
    case KN_OP_MAXPOOL:
    case KN_OP_AVGPOOL:
        return kn__train_pool_fwd(t, i, e);
    default:
        return kn_err_set(e, KN_UNSUPPORTED, "trainer: op %s at node %d",
                          kn_nn_op_name(nd->op), i);
    }
}

static kn_status bwd(kn_nn_trainer *t, int i, kn_err *e)
{
    const kn_nn_node *nd = &t->g->nodes[i];
    float *dy = t->grad[i];
    size_t total = numel_n(t, i);
    int a = nd->n_in ? nd->in[0] : -1;
    switch (nd->op) {
    case KN_OP_LINEAR:
        return linear_bwd(t, i, e);
    case KN_OP_RELU:
    case KN_OP_RELU6: {
        if (!t->need_grad[a])
            return KN_OK;
        kn_nn_act act = nd->op == KN_OP_RELU ? KN_ACT_RELU : KN_ACT_RELU6;
        float *dx = t->grad[a];
        const float *y = t->val[i];
        for (size_t k = 0; k < total; k++)
            dx[k] += dy[k] * act_d(act, y[k]);
        return KN_OK;
    }
    case KN_OP_ADD: {
        if (nd->act != KN_ACT_NONE)
            for (size_t k = 0; k < total; k++)
                dy[k] *= act_d(nd->act, t->val[i][k]);
        for (int k = 0; k < 2; k++) {
            int src = nd->in[k];
            if (!t->need_grad[src])
                continue;
            float *dx = t->grad[src];
            for (size_t j = 0; j < total; j++)
                dx[j] += dy[j];
        }
        return KN_OK;
    }
    case KN_OP_FLATTEN:
    case KN_OP_DROPOUT: {
        if (!t->need_grad[a])
            return KN_OK;
        float *dx = t->grad[a];
        const float *mask = nd->op == KN_OP_DROPOUT && t->training && nd->rate > 0
                                ? t->state[i] : NULL;
        for (size_t k = 0; k < total; k++)
            dx[k] += mask ? dy[k] * mask[k] : dy[k];
        return KN_OK;
    }
    case KN_OP_GAP: {
        if (!t->need_grad[a])
            return KN_OK;
        kn_nn_shape is = t->g->nodes[a].shape;
        size_t hw = (size_t)is.h * is.w;
        float *dx = t->grad[a];
        for (size_t k = 0; k < total; k++) {
            float g = dy[k] / (float)hw;
            for (size_t j = 0; j < hw; j++)
                dx[k * hw + j] += g;
        }
        return KN_OK;
    }
    case KN_OP_CONV:
        return kn__train_conv_bwd(t, i, e);
    case KN_OP_BATCHNORM:
        return kn__train_bn_bwd(t, i, e);
    case KN_OP_MAXPOOL:
    case KN_OP_AVGPOOL:
        return kn__train_pool_bwd(t, i, e);
    default:
        return kn_err_set(e, KN_UNSUPPORTED, "trainer: backward of %s at node %d",
                          kn_nn_op_name(nd->op), i);
    }
}

kn_status kn_nn_trainer_forward(kn_nn_trainer *t, const float *in, int n, bool training,
                                float *out, kn_err *e)
{
    if (n < 1 || n > t->p.max_batch)
        return kn_err_set(e, KN_INVALID, "batch of %d is outside [1, %d]", n, t->p.max_batch);
    t->n = n;
    t->training = training;
    memcpy(t->val[0], in, numel_n(t, 0) * sizeof(float));
    for (int i = 1; i < t->g->n; i++) {
        kn_status rc = fwd(t, i, e);
        if (rc)
            return rc;
    }
    if (out)
        memcpy(out, t->val[t->g->n - 1], numel_n(t, t->g->n - 1) * sizeof(float));
    return KN_OK;
}

kn_status kn_nn_trainer_backward(kn_nn_trainer *t, const float *dout, float *din, kn_err *e)
{
    if (t->n < 1)
        return kn_err_set(e, KN_INVALID, "backward before any forward pass");
    const kn_nn_graph *g = t->g;
    t->need_grad[0] = din != NULL;
    for (int i = 0; i < g->n; i++)
        memset(t->grad[i], 0, numel_n(t, i) * sizeof(float));
    for (int i = 0; i < g->np; i++)
        if (t->pgrad[i])
            memset(t->pgrad[i], 0, g->params[i].numel * sizeof(float));
    memcpy(t->grad[g->n - 1], dout, numel_n(t, g->n - 1) * sizeof(float));
    for (int i = g->n - 1; i > 0; i--) {
        kn_status rc = bwd(t, i, e);
        if (rc)
            return rc;
    }
    if (din)
        memcpy(din, t->grad[0], numel_n(t, 0) * sizeof(float));
    return KN_OK;
}
