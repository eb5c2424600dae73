/* The training-mode executor: forward with saved activations, backward in
 * reverse topological order accumulating gradients. This file walks the
 * graph and implements the dense ops (linear on oneDNN's sgemm, relu, relu6,
 * add, dropout, flatten, global average pool); conv, batch norm and pooling
 * live in train_conv.c behind kn__train_*.
 *
 * A value read by several nodes (a residual connection) receives one
 * gradient contribution from each: the first op to reach it in a backward
 * pass writes its gradient, the later ones add (nn_int.h), so no pass clears
 * gigabytes of gradients up front. Parameter gradients are zeroed at the
 * start of each backward pass and accumulated by the ops. Values are NCHW
 * with the reference backend and channels-last with oneDNN (see "layout").
 * Deterministic for a given thread count.
 */
#include "nn_int.h"

#include <math.h>
#include <omp.h>
#include <oneapi/dnnl/dnnl.h>
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
    free(t->written);
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
    t->nhwc = p->backend == KN_NN_DNNL;
    kn_rng_seed(&t->rng, p->seed);
    t->val = calloc((size_t)g->n, sizeof *t->val);
    t->grad = calloc((size_t)g->n, sizeof *t->grad);
    t->state = calloc((size_t)g->n, sizeof *t->state);
    t->need_grad = calloc((size_t)g->n, sizeof *t->need_grad);
    t->written = calloc((size_t)g->n, sizeof *t->written);
    t->pgrad = calloc((size_t)(g->np ? g->np : 1), sizeof *t->pgrad);
    if (!t->val || !t->grad || !t->state || !t->need_grad || !t->written || !t->pgrad)
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

/* Loops split over threads only above this many elements: below it a
 * parallel region costs more than it saves, and on a busy machine every
 * region waits for its slowest thread to be scheduled (the head of a
 * transfer-learning job runs hundreds of small steps). */
#define PAR_MIN 32768

/* Elementwise passes over whole activations are memory-bound: one branch-free
 * loop per activation (and per write/add), which the compiler vectorises; the
 * generic act_f / act_d per element is several times slower. */

/* y = act(x (+ x1)); x1 may be NULL. */
static void act_fwd(kn_nn_act a, float *restrict y, const float *restrict x,
                    const float *restrict x1, size_t n)
{
    if (x1 && a == KN_ACT_NONE) {
#pragma omp parallel for simd schedule(static) if (n >= PAR_MIN)
        for (size_t k = 0; k < n; k++)
            y[k] = x[k] + x1[k];
    } else if (x1 && a == KN_ACT_RELU) {
#pragma omp parallel for simd schedule(static) if (n >= PAR_MIN)
        for (size_t k = 0; k < n; k++) {
            float v = x[k] + x1[k];
            y[k] = v > 0.0f ? v : 0.0f;
        }
    } else if (a == KN_ACT_RELU && !x1) {
#pragma omp parallel for simd schedule(static) if (n >= PAR_MIN)
        for (size_t k = 0; k < n; k++)
            y[k] = x[k] > 0.0f ? x[k] : 0.0f;
    } else {
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
        for (size_t k = 0; k < n; k++)
            y[k] = act_f(a, x1 ? x[k] + x1[k] : x[k]);
    }
}

/* dx = (first ? 0 : dx) + dy * act'(y), act' through the output y. */
static void act_bwd(kn_nn_act a, float *restrict dx, const float *restrict dy,
                    const float *restrict y, size_t n, bool first)
{
    /* both operands loaded unconditionally: a select, not a branch */
    if (a == KN_ACT_RELU && first) {
#pragma omp parallel for simd schedule(static) if (n >= PAR_MIN)
        for (size_t k = 0; k < n; k++) {
            float d = dy[k];
            dx[k] = y[k] > 0.0f ? d : 0.0f;
        }
    } else if (a == KN_ACT_RELU) {
#pragma omp parallel for simd schedule(static) if (n >= PAR_MIN)
        for (size_t k = 0; k < n; k++) {
            float d = dy[k], o = dx[k];
            dx[k] = y[k] > 0.0f ? o + d : o;
        }
    } else {
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
        for (size_t k = 0; k < n; k++) {
            float v = dy[k] * act_d(a, y[k]);
            dx[k] = first ? v : dx[k] + v;
        }
    }
}

/* dst = src, in parallel (memcpy alone runs on one core) */
static void copy_to(float *restrict dst, const float *restrict src, size_t n)
{
#pragma omp parallel for simd schedule(static) if (n >= PAR_MIN)
    for (size_t k = 0; k < n; k++)
        dst[k] = src[k];
}

/* dst += src */
static void add_to(float *restrict dst, const float *restrict src, size_t n)
{
#pragma omp parallel for simd schedule(static) if (n >= PAR_MIN)
    for (size_t k = 0; k < n; k++)
        dst[k] += src[k];
}

/* ---- layout ---------------------------------------------------------------- */

/* With the oneDNN backend every value is stored channels-last (NHWC): its
 * conv, batch-norm and pooling primitives then read and write the trainer's
 * buffers directly, with no reorder per op (a reorder of a resnet50
 * activation costs as much as a small conv). Elementwise ops do not care;
 * global pooling and flatten read the layout; the API's tensors (input,
 * output and their gradients) are NCHW, converted at the boundary. A value
 * with a 1x1 plane is the same in both layouts. The reference backend keeps
 * NCHW everywhere: it is the oracle, written for obviousness. */
static bool spatial(const kn_nn_trainer *t, kn_nn_shape s)
{
    return t->nhwc && s.h * s.w > 1 && s.c > 1;
}

/* dst = src (or dst += src) moved between NCHW and NHWC, n samples. */
static void relayout(float *dst, const float *src, int n, kn_nn_shape s, bool to_nhwc, bool add)
{
    int hw = s.h * s.w, c = s.c;
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)n * c * hw >= PAR_MIN)
    for (int b = 0; b < n; b++) {
        for (int p = 0; p < hw; p++) {
            const float *x = src + (size_t)b * c * hw;
            float *y = dst + (size_t)b * c * hw;
            for (int k = 0; k < c; k++) {
                size_t cl = (size_t)p * c + k, cf = (size_t)k * hw + p;
                float v = to_nhwc ? x[cf] : x[cl];
                float *o = to_nhwc ? &y[cl] : &y[cf];
                *o = add ? *o + v : v;
            }
        }
    }
}

/* ---- dense ops ------------------------------------------------------------ */

/* Products below this many multiply-adds (a few hundred microseconds on one
 * core) run on the calling thread: a transfer-learning head's are all below
 * it, so its hundreds of small steps never wait for a second thread — which
 * on a busy machine costs a scheduler time slice per region, and lets two
 * tuning trials share the two cores without getting in each other's way. */
#define GEMM_PAR_MIN 32e6

/* Row-major C = op(A) op(B) + beta * C, on oneDNN's sgemm: it dispatches on
 * the CPU it finds, where OpenBLAS 0.3.21 does not know this machine's and
 * falls back to SSE3 kernels (3-4x slower per thread on the head's shapes). */
static kn_status gemm(bool ta, bool tb, int m, int n, int k, const float *a, int lda,
                      const float *b, int ldb, float beta, float *c, int ldc, kn_err *e)
{
    int threads = omp_get_max_threads();
    bool serial = (double)m * n * k < GEMM_PAR_MIN && threads > 1;
    if (serial)
        omp_set_num_threads(1);
    dnnl_status_t s = dnnl_sgemm(ta ? 'T' : 'N', tb ? 'T' : 'N', m, n, k, 1.0f, a, lda, b, ldb,
                                 beta, c, ldc);
    if (serial)
        omp_set_num_threads(threads);
    if (s != dnnl_success)
        return kn_err_set(e, KN_BACKEND, "trainer: sgemm %dx%dx%d failed (oneDNN status %d)", m,
                          n, k, (int)s);
    return KN_OK;
}

static kn_status linear_fwd(kn_nn_trainer *t, int i, kn_err *e)
{
    const kn_nn_node *nd = &t->g->nodes[i];
    int n = t->n, in_f = t->g->nodes[nd->in[0]].shape.c, of = nd->out_c;
    const float *x = t->val[nd->in[0]], *w = t->g->params[nd->w].data;
    float *y = t->val[i];
    kn_status rc = gemm(false, true, n, of, in_f, x, in_f, w, in_f, 0.0f, y, of, e);
    if (rc)
        return rc;
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
    kn_status rc = KN_OK;
    if (nd->act != KN_ACT_NONE) /* through the fused activation, in place */
        for (size_t k = 0; k < (size_t)n * of; k++)
            dy[k] *= act_d(nd->act, t->val[i][k]);
    if (t->pgrad[nd->w])
        if ((rc = gemm(true, false, of, in_f, n, dy, of, x, in_f, 1.0f, t->pgrad[nd->w], in_f,
                       e)))
            return rc;
    if (nd->b >= 0 && t->pgrad[nd->b]) {
        float *db = t->pgrad[nd->b];
        for (int s = 0; s < n; s++)
            for (int o = 0; o < of; o++)
                db[o] += dy[(size_t)s * of + o];
    }
    if (t->need_grad[nd->in[0]]) {
        float beta = kn__train_grad_first(t, nd->in[0]) ? 0.0f : 1.0f;
        rc = gemm(false, false, n, in_f, of, dy, of, w, in_f, beta, t->grad[nd->in[0]], in_f, e);
    }
    return rc;
}

/* memset in parallel: value gradients of a network are gigabytes per step */
static void zero(float *p, size_t count)
{
    const size_t chunk = (size_t)1 << 16;
    size_t pieces = (count + chunk - 1) / chunk;
#pragma omp parallel for schedule(static) if (pieces > 4)
    for (size_t k = 0; k < pieces; k++) {
        size_t n = count - k * chunk < chunk ? count - k * chunk : chunk;
        memset(p + k * chunk, 0, n * sizeof(float));
    }
}

static size_t numel_n(const kn_nn_trainer *t, int i)
{
    return kn__nn_shape_numel(t->g->nodes[i].shape) * (size_t)t->n;
}

bool kn__train_grad_first(kn_nn_trainer *t, int v)
{
    bool first = !t->written[v];
    t->written[v] = true;
    return first;
}

void kn__train_grad_zero(kn_nn_trainer *t, int v)
{
    zero(t->grad[v], numel_n(t, v));
}

static kn_status fwd(kn_nn_trainer *t, int i, kn_err *e)
{
    const kn_nn_node *nd = &t->g->nodes[i];
    const float *x = nd->n_in ? t->val[nd->in[0]] : NULL;
    float *y = t->val[i];
    size_t total = numel_n(t, i);
    switch (nd->op) {
    case KN_OP_LINEAR:
        return linear_fwd(t, i, e);
    case KN_OP_RELU:
    case KN_OP_RELU6: {
        act_fwd(nd->op == KN_OP_RELU ? KN_ACT_RELU : KN_ACT_RELU6, y, x, NULL, total);
        return KN_OK;
    }
    case KN_OP_ADD: {
        act_fwd(nd->act, y, x, t->val[nd->in[1]], total);
        return KN_OK;
    }
    case KN_OP_FLATTEN: {
        kn_nn_shape is = t->g->nodes[nd->in[0]].shape;
        if (spatial(t, is)) /* flattened in PyTorch's (C, H, W) order */
            relayout(y, x, t->n, is, false, false);
        else
            memcpy(y, x, total * sizeof(float));
        return KN_OK;
    }
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
        /* element j of the plane of (sample, channel) k: NCHW k * hw + j,
         * NHWC (sample * hw + j) * C + channel */
        bool cl = spatial(t, is);
#pragma omp parallel for schedule(static) if (total >= PAR_MIN)
        for (size_t k = 0; k < total; k++) {
            double sum = 0;
            size_t base = cl ? (k / is.c) * hw * is.c + k % is.c : k * hw;
            size_t step = cl ? (size_t)is.c : 1;
            for (size_t j = 0; j < hw; j++)
                sum += x[base + j * step];
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
        act_bwd(act, t->grad[a], dy, t->val[i], total, kn__train_grad_first(t, a));
        return KN_OK;
    }
    case KN_OP_ADD: {
        if (nd->act != KN_ACT_NONE) { /* through the fused activation, in place */
            const float *y = t->val[i];
#pragma omp parallel for schedule(static) if (total >= PAR_MIN)
            for (size_t k = 0; k < total; k++)
                dy[k] *= act_d(nd->act, y[k]);
        }
        for (int k = 0; k < 2; k++) {
            int src = nd->in[k];
            if (!t->need_grad[src])
                continue;
            float *dx = t->grad[src];
            if (kn__train_grad_first(t, src))
                copy_to(dx, dy, total);
            else
                add_to(dx, dy, total);
        }
        return KN_OK;
    }
    case KN_OP_FLATTEN:
    case KN_OP_DROPOUT: {
        if (!t->need_grad[a])
            return KN_OK;
        float *dx = t->grad[a];
        kn_nn_shape is = t->g->nodes[a].shape;
        bool first = kn__train_grad_first(t, a);
        if (nd->op == KN_OP_FLATTEN && spatial(t, is)) {
            relayout(dx, dy, t->n, is, true, !first);
            return KN_OK;
        }
        const float *mask = nd->op == KN_OP_DROPOUT && t->training && nd->rate > 0
                                ? t->state[i] : NULL;
#pragma omp parallel for schedule(static) if (total >= PAR_MIN)
        for (size_t k = 0; k < total; k++) {
            float v = mask ? dy[k] * mask[k] : dy[k];
            dx[k] = first ? v : dx[k] + v;
        }
        return KN_OK;
    }
    case KN_OP_GAP: {
        if (!t->need_grad[a])
            return KN_OK;
        kn_nn_shape is = t->g->nodes[a].shape;
        size_t hw = (size_t)is.h * is.w;
        float *dx = t->grad[a];
        bool cl = spatial(t, is);
        bool first = kn__train_grad_first(t, a);
#pragma omp parallel for schedule(static) if (total >= PAR_MIN)
        for (size_t k = 0; k < total; k++) {
            float g = dy[k] / (float)hw;
            size_t base = cl ? (k / is.c) * hw * is.c + k % is.c : k * hw;
            size_t step = cl ? (size_t)is.c : 1;
            for (size_t j = 0; j < hw; j++) {
                float *o = &dx[base + j * step];
                *o = first ? g : *o + g;
            }
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
    const kn_nn_graph *g = t->g;
    if (spatial(t, g->nodes[0].shape))
        relayout(t->val[0], in, n, g->nodes[0].shape, true, false);
    else
        memcpy(t->val[0], in, numel_n(t, 0) * sizeof(float));
    for (int i = 1; i < t->g->n; i++) {
        kn_status rc = fwd(t, i, e);
        if (rc)
            return rc;
    }
    int last = g->n - 1;
    if (out && spatial(t, g->nodes[last].shape))
        relayout(out, t->val[last], n, g->nodes[last].shape, false, false);
    else if (out)
        memcpy(out, t->val[last], numel_n(t, last) * sizeof(float));
    return KN_OK;
}

kn_status kn_nn_trainer_backward(kn_nn_trainer *t, const float *dout, float *din, kn_err *e)
{
    if (t->n < 1)
        return kn_err_set(e, KN_INVALID, "backward before any forward pass");
    const kn_nn_graph *g = t->g;
    t->need_grad[0] = din != NULL;
    memset(t->written, 0, (size_t)g->n * sizeof *t->written);
    for (int i = 0; i < g->np; i++)
        if (t->pgrad[i])
            memset(t->pgrad[i], 0, g->params[i].numel * sizeof(float));
    int last = g->n - 1;
    if (spatial(t, g->nodes[last].shape))
        relayout(t->grad[last], dout, t->n, g->nodes[last].shape, true, false);
    else
        memcpy(t->grad[last], dout, numel_n(t, last) * sizeof(float));
    t->written[last] = true;
    for (int i = g->n - 1; i > 0; i--) {
        if (!t->written[i]) /* no reader: its gradient is zero */
            kn__train_grad_zero(t, i);
        t->written[i] = true;
        kn_status rc = bwd(t, i, e);
        if (rc)
            return rc;
    }
    if (din && !t->written[0])
        kn__train_grad_zero(t, 0);
    if (din && spatial(t, g->nodes[0].shape))
        relayout(din, t->grad[0], t->n, g->nodes[0].shape, false, false);
    else if (din)
        memcpy(din, t->grad[0], numel_n(t, 0) * sizeof(float));
    return KN_OK;
}
