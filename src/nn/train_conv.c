/* Training-mode conv, batch norm and pooling for the trainer (train.c): the
 * ops with spatial structure. Each op has two implementations behind the
 * kn__train_* entry points, selected by the trainer's params (backend):
 *
 *   KN_NN_REF   plain C loops here, written for obviousness: the oracle the
 *               fast path and PyTorch are tested against;
 *   KN_NN_DNNL  oneDNN forward-training and backward primitives
 *               (train_conv_dnnl.c).
 *
 * What both share lives here: argument checks, the fused-activation mask of
 * conv backward, batch-norm statistics bookkeeping (the per-node state is the
 * batch mean and biased variance, or the running statistics in eval mode, so
 * backward sees exactly what forward used) and the running-statistics update,
 * which follows torch.nn.BatchNorm2d: running = (1 - m) * running + m * batch,
 * with the unbiased variance (M / (M - 1), M = N * H * W).
 *
 * The reference works on NCHW values, the oneDNN path on the trainer's layout
 * (channels-last, see train.c); conv weights are [out][in/groups][kh][kw].
 * Backward writes or adds into t->grad[in] and adds into t->pgrad[*] (see
 * nn_int.h). OpenMP loops
 * split work so that no two threads write the same element: (sample, channel)
 * planes for activations, output channels for weight gradients.
 */
#include "nn_int.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static bool fast(const kn_nn_trainer *t)
{
    return t->p.backend == KN_NN_DNNL;
}

static float act_f(kn_nn_act a, float v)
{
    if (a == KN_ACT_RELU)
        return v > 0 ? v : 0;
    if (a == KN_ACT_RELU6)
        return v < 0 ? 0 : v > 6 ? 6 : v;
    return v;
}

/* d(act)/dx through the output y, as train.c (relu6: open interval). */
static float act_d(kn_nn_act a, float y)
{
    if (a == KN_ACT_RELU)
        return y > 0 ? 1.0f : 0.0f;
    if (a == KN_ACT_RELU6)
        return y > 0 && y < 6 ? 1.0f : 0.0f;
    return 1.0f;
}

static size_t plane(kn_nn_shape s)
{
    return (size_t)s.h * (size_t)s.w;
}

/* ---- conv: reference ----------------------------------------------------- */

/* Sums run in double (a per-thread plane), so the oracle is exact to the
 * final rounding: a float sum over in/groups * kh * kw terms drifts by
 * 1e-6 relative at ResNet sizes, enough to flip a relu downstream where a
 * pre-activation sits that close to zero. */
static kn_status ref_conv_fwd(kn_nn_trainer *t, int i, kn_err *e)
{
    const kn_nn_graph *g = t->g;
    const kn_nn_node *nd = &g->nodes[i];
    const kn_nn_window *k = &nd->win;
    kn_nn_shape is = g->nodes[nd->in[0]].shape, os = nd->shape;
    int n = t->n, icg = is.c / nd->groups, ocg = os.c / nd->groups;
    const float *in = t->val[nd->in[0]], *w = g->params[nd->w].data;
    const float *bias = nd->b >= 0 ? g->params[nd->b].data : NULL;
    float *out = t->val[i];
    bool oom = false;
#pragma omp parallel
    {
        double *acc = malloc(plane(os) * sizeof(double));
        if (!acc) {
#pragma omp atomic write
            oom = true;
        }
#pragma omp for collapse(2) schedule(static)
        for (int s = 0; s < n; s++) {
            for (int oc = 0; oc < os.c; oc++) {
                if (!acc)
                    continue;
                int grp = oc / ocg;
                double b0 = bias ? bias[oc] : 0.0;
                for (size_t j = 0; j < plane(os); j++)
                    acc[j] = b0;
                for (int ic = 0; ic < icg; ic++) {
                    const float *src =
                        in + ((size_t)s * is.c + (size_t)grp * icg + ic) * plane(is);
                    for (int ky = 0; ky < k->kh; ky++) {
                        for (int kx = 0; kx < k->kw; kx++) {
                            double wv = w[(((size_t)oc * icg + ic) * k->kh + ky) * k->kw + kx];
                            for (int oy = 0; oy < os.h; oy++) {
                                int iy = oy * k->sh - k->pt + ky * k->dh;
                                if (iy < 0 || iy >= is.h)
                                    continue;
                                const float *row = src + (size_t)iy * is.w;
                                double *arow = acc + (size_t)oy * os.w;
                                for (int ox = 0; ox < os.w; ox++) {
                                    int ix = ox * k->sw - k->pl + kx * k->dw;
                                    if (ix >= 0 && ix < is.w)
                                        arow[ox] += wv * row[ix];
                                }
                            }
                        }
                    }
                }
                float *o = out + ((size_t)s * os.c + oc) * plane(os);
                for (size_t j = 0; j < plane(os); j++)
                    o[j] = act_f(nd->act, (float)acc[j]);
            }
        }
        free(acc);
    }
    return oom ? kn_err_set(e, KN_NOMEM, "trainer: out of memory in conv %s", nd->name) : KN_OK;
}

/* dy is already multiplied by the activation's derivative. */
static kn_status ref_conv_bwd(kn_nn_trainer *t, int i, kn_err *e)
{
    const kn_nn_graph *g = t->g;
    const kn_nn_node *nd = &g->nodes[i];
    const kn_nn_window *k = &nd->win;
    int a = nd->in[0];
    kn_nn_shape is = g->nodes[a].shape, os = nd->shape;
    int n = t->n, icg = is.c / nd->groups, ocg = os.c / nd->groups;
    const float *x = t->val[a], *w = g->params[nd->w].data, *dy = t->grad[i];
    float *dw = t->pgrad[nd->w], *db = nd->b >= 0 ? t->pgrad[nd->b] : NULL;

    /* weights and bias: one output channel per iteration, no shared writes */
    if (dw || db) {
#pragma omp parallel for schedule(static)
        for (int oc = 0; oc < os.c; oc++) {
            int grp = oc / ocg;
            if (db) {
                double sum = 0;
                for (int s = 0; s < n; s++) {
                    const float *d = dy + ((size_t)s * os.c + oc) * plane(os);
                    for (size_t j = 0; j < plane(os); j++)
                        sum += d[j];
                }
                db[oc] += (float)sum;
            }
            if (!dw)
                continue;
            for (int ic = 0; ic < icg; ic++) {
                for (int ky = 0; ky < k->kh; ky++) {
                    for (int kx = 0; kx < k->kw; kx++) {
                        double acc = 0;
                        for (int s = 0; s < n; s++) {
                            const float *d = dy + ((size_t)s * os.c + oc) * plane(os);
                            const float *src =
                                x + ((size_t)s * is.c + (size_t)grp * icg + ic) * plane(is);
                            for (int oy = 0; oy < os.h; oy++) {
                                int iy = oy * k->sh - k->pt + ky * k->dh;
                                if (iy < 0 || iy >= is.h)
                                    continue;
                                const float *row = src + (size_t)iy * is.w;
                                const float *drow = d + (size_t)oy * os.w;
                                for (int ox = 0; ox < os.w; ox++) {
                                    int ix = ox * k->sw - k->pl + kx * k->dw;
                                    if (ix >= 0 && ix < is.w)
                                        acc += (double)drow[ox] * row[ix];
                                }
                            }
                        }
                        dw[(((size_t)oc * icg + ic) * k->kh + ky) * k->kw + kx] += (float)acc;
                    }
                }
            }
        }
    }

    /* input: one (sample, input channel) plane per iteration, summed in
     * double like the forward */
    if (!t->need_grad[a])
        return KN_OK;
    if (kn__train_grad_first(t, a)) /* the loops below add */
        kn__train_grad_zero(t, a);
    float *dx = t->grad[a];
    bool oom = false;
#pragma omp parallel
    {
        double *acc = malloc(plane(is) * sizeof(double));
        if (!acc) {
#pragma omp atomic write
            oom = true;
        }
#pragma omp for collapse(2) schedule(static)
        for (int s = 0; s < n; s++) {
            for (int c = 0; c < is.c; c++) {
                if (!acc)
                    continue;
                int grp = c / icg, ic = c % icg;
                memset(acc, 0, plane(is) * sizeof(double));
                for (int oc = grp * ocg; oc < (grp + 1) * ocg; oc++) {
                    const float *d = dy + ((size_t)s * os.c + oc) * plane(os);
                    for (int ky = 0; ky < k->kh; ky++) {
                        for (int kx = 0; kx < k->kw; kx++) {
                            double wv = w[(((size_t)oc * icg + ic) * k->kh + ky) * k->kw + kx];
                            for (int oy = 0; oy < os.h; oy++) {
                                int iy = oy * k->sh - k->pt + ky * k->dh;
                                if (iy < 0 || iy >= is.h)
                                    continue;
                                double *row = acc + (size_t)iy * is.w;
                                const float *drow = d + (size_t)oy * os.w;
                                for (int ox = 0; ox < os.w; ox++) {
                                    int ix = ox * k->sw - k->pl + kx * k->dw;
                                    if (ix >= 0 && ix < is.w)
                                        row[ix] += wv * drow[ox];
                                }
                            }
                        }
                    }
                }
                float *dplane = dx + ((size_t)s * is.c + c) * plane(is);
                for (size_t j = 0; j < plane(is); j++)
                    dplane[j] += (float)acc[j];
            }
        }
        free(acc);
    }
    return oom ? kn_err_set(e, KN_NOMEM, "trainer: out of memory in conv %s", nd->name) : KN_OK;
}

kn_status kn__train_conv_fwd(kn_nn_trainer *t, int i, kn_err *e)
{
    if (fast(t))
        return kn__train_dnnl_conv_fwd(t, i, e);
    return ref_conv_fwd(t, i, e);
}

kn_status kn__train_conv_bwd(kn_nn_trainer *t, int i, kn_err *e)
{
    const kn_nn_node *nd = &t->g->nodes[i];
    if (nd->act != KN_ACT_NONE) { /* through the fused activation, in place */
        float *dy = t->grad[i];
        const float *y = t->val[i];
        size_t total = kn__nn_shape_numel(nd->shape) * (size_t)t->n;
#pragma omp parallel for schedule(static)
        for (size_t k = 0; k < total; k++)
            dy[k] *= act_d(nd->act, y[k]);
    }
    if (fast(t))
        return kn__train_dnnl_conv_bwd(t, i, e);
    return ref_conv_bwd(t, i, e);
}

/* ---- batch norm ---------------------------------------------------------- */

/* Per-node state: mean[C] then var[C] as forward used them (batch mean and
 * biased batch variance in training mode, running statistics in eval mode),
 * and the mode, so backward differentiates what forward computed. */
typedef struct bn_state {
    bool training;
    float data[]; /* mean[C], var[C] */
} bn_state;

static bn_state *bn_state_get(kn_nn_trainer *t, int i, kn_err *e)
{
    if (!t->state[i]) {
        int c = t->g->nodes[i].shape.c;
        t->state[i] = calloc(1, sizeof(bn_state) + 2 * (size_t)c * sizeof(float));
        if (!t->state[i])
            kn_err_set(e, KN_NOMEM, "trainer: out of memory for batch-norm statistics");
    }
    return t->state[i];
}

static void ref_bn_fwd(kn_nn_trainer *t, int i, float *mean, float *var)
{
    const kn_nn_graph *g = t->g;
    const kn_nn_node *nd = &g->nodes[i];
    kn_nn_shape s = nd->shape;
    int n = t->n;
    size_t hw = plane(s);
    const float *x = t->val[nd->in[0]];
    const float *ga = g->params[nd->bn_gamma].data, *be = g->params[nd->bn_beta].data;
    float *y = t->val[i];
    bool training = t->training;
#pragma omp parallel for schedule(static)
    for (int c = 0; c < s.c; c++) {
        if (training) {
            /* two passes in double: mean, then the biased variance */
            double sum = 0, sq = 0, m = (double)n * (double)hw;
            for (int b = 0; b < n; b++) {
                const float *p = x + ((size_t)b * s.c + c) * hw;
                for (size_t j = 0; j < hw; j++)
                    sum += p[j];
            }
            double mu = sum / m;
            for (int b = 0; b < n; b++) {
                const float *p = x + ((size_t)b * s.c + c) * hw;
                for (size_t j = 0; j < hw; j++)
                    sq += (p[j] - mu) * (p[j] - mu);
            }
            mean[c] = (float)mu;
            var[c] = (float)(sq / m);
        }
        /* (x - mean) * scale + beta, as PyTorch and oneDNN: folding beta and
         * the mean into one shift loses the bits of outputs near zero */
        double sc = ga[c] / sqrt((double)var[c] + nd->eps), mu = mean[c];
        for (int b = 0; b < n; b++) {
            const float *p = x + ((size_t)b * s.c + c) * hw;
            float *q = y + ((size_t)b * s.c + c) * hw;
            for (size_t j = 0; j < hw; j++)
                q[j] = (float)((p[j] - mu) * sc + be[c]);
        }
    }
}

static void ref_bn_bwd(kn_nn_trainer *t, int i, const float *mean, const float *var,
                       bool training)
{
    const kn_nn_graph *g = t->g;
    const kn_nn_node *nd = &g->nodes[i];
    kn_nn_shape s = nd->shape;
    int n = t->n, a = nd->in[0];
    size_t hw = plane(s);
    const float *x = t->val[a], *dy = t->grad[i], *ga = g->params[nd->bn_gamma].data;
    float *dga = t->pgrad[nd->bn_gamma], *dbe = t->pgrad[nd->bn_beta];
    if (t->need_grad[a] && kn__train_grad_first(t, a)) /* the loop below adds */
        kn__train_grad_zero(t, a);
    float *dx = t->need_grad[a] ? t->grad[a] : NULL;
    double m = (double)n * (double)hw;
#pragma omp parallel for schedule(static)
    for (int c = 0; c < s.c; c++) {
        double inv = 1.0 / sqrt((double)var[c] + nd->eps), mu = mean[c];
        double sdy = 0, sdyx = 0; /* sum dy, sum dy * xhat */
        for (int b = 0; b < n; b++) {
            const float *p = x + ((size_t)b * s.c + c) * hw;
            const float *d = dy + ((size_t)b * s.c + c) * hw;
            for (size_t j = 0; j < hw; j++) {
                sdy += d[j];
                sdyx += d[j] * ((p[j] - mu) * inv);
            }
        }
        if (dga)
            dga[c] += (float)sdyx;
        if (dbe)
            dbe[c] += (float)sdy;
        if (!dx)
            continue;
        /* training: the batch statistics depend on x too,
         * dx = gamma * inv / M * (M * dy - sum(dy) - xhat * sum(dy * xhat)) */
        double k = ga[c] * inv;
        double k1 = training ? sdy / m : 0, k2 = training ? sdyx / m : 0;
        for (int b = 0; b < n; b++) {
            const float *p = x + ((size_t)b * s.c + c) * hw;
            const float *d = dy + ((size_t)b * s.c + c) * hw;
            float *q = dx + ((size_t)b * s.c + c) * hw;
            for (size_t j = 0; j < hw; j++)
                q[j] += (float)(k * (d[j] - k1 - (p[j] - mu) * inv * k2));
        }
    }
}

kn_status kn__train_bn_fwd(kn_nn_trainer *t, int i, kn_err *e)
{
    kn_nn_graph *g = t->g;
    const kn_nn_node *nd = &g->nodes[i];
    int c = nd->shape.c;
    double m = (double)t->n * (double)plane(nd->shape);
    if (t->training && m < 2)
        return kn_err_set(e, KN_INVALID,
                          "trainer: batch norm %s needs more than one value per channel in "
                          "training mode (batch %d of %dx%d)",
                          nd->name, t->n, nd->shape.h, nd->shape.w);
    bn_state *st = bn_state_get(t, i, e);
    if (!st)
        return KN_NOMEM;
    float *mean = st->data, *var = st->data + c;
    float *rm = g->params[nd->bn_mean].data, *rv = g->params[nd->bn_var].data;
    st->training = t->training;
    if (!t->training) {
        memcpy(mean, rm, (size_t)c * sizeof(float));
        memcpy(var, rv, (size_t)c * sizeof(float));
    }
    kn_status rc = KN_OK;
    if (fast(t))
        rc = kn__train_dnnl_bn_fwd(t, i, mean, var, e);
    else
        ref_bn_fwd(t, i, mean, var);
    if (rc || !t->training)
        return rc;
    float mom = t->p.bn_momentum;
    for (int k = 0; k < c; k++) {
        rm[k] = (1.0f - mom) * rm[k] + mom * mean[k];
        rv[k] = (1.0f - mom) * rv[k] + mom * (float)(var[k] * (m / (m - 1)));
    }
    return KN_OK;
}

kn_status kn__train_bn_bwd(kn_nn_trainer *t, int i, kn_err *e)
{
    bn_state *st = t->state[i];
    if (!st)
        return kn_err_set(e, KN_INTERNAL, "trainer: batch norm %d: backward before forward", i);
    int c = t->g->nodes[i].shape.c;
    if (fast(t))
        return kn__train_dnnl_bn_bwd(t, i, st->data, st->data + c, e);
    ref_bn_bwd(t, i, st->data, st->data + c, st->training);
    return KN_OK;
}

/* ---- pooling: reference -------------------------------------------------- */

/* PyTorch's divisor for average pooling: with count_pad the window clipped to
 * the padded input, otherwise its in-bounds part. */
static int avg_div(const kn_nn_node *nd, kn_nn_shape is, int y0, int x0, int cnt)
{
    const kn_nn_window *k = &nd->win;
    if (!nd->pool_count_pad)
        return cnt;
    int y1 = y0 + k->kh, x1 = x0 + k->kw;
    if (y1 > is.h + k->pb)
        y1 = is.h + k->pb;
    if (x1 > is.w + k->pr)
        x1 = is.w + k->pr;
    return (y1 - y0) * (x1 - x0);
}

/* Max pooling keeps, per output, the index of its input in the plane: the
 * first maximum in window order (rows, then columns), as PyTorch. */
static kn_status ref_pool_fwd(kn_nn_trainer *t, int i, kn_err *e)
{
    const kn_nn_node *nd = &t->g->nodes[i];
    const kn_nn_window *k = &nd->win;
    kn_nn_shape is = t->g->nodes[nd->in[0]].shape, os = nd->shape;
    int n = t->n;
    bool is_max = nd->op == KN_OP_MAXPOOL;
    int32_t *arg = NULL;
    if (is_max) {
        if (!t->state[i])
            t->state[i] = malloc(kn__nn_shape_numel(os) * (size_t)t->p.max_batch *
                                 sizeof(int32_t));
        if (!t->state[i])
            return kn_err_set(e, KN_NOMEM, "trainer: out of memory for pooling indices");
        arg = t->state[i];
    }
    const float *in = t->val[nd->in[0]];
    float *out = t->val[i];
#pragma omp parallel for collapse(2) schedule(static)
    for (int s = 0; s < n; s++) {
        for (int c = 0; c < is.c; c++) {
            const float *src = in + ((size_t)s * is.c + c) * plane(is);
            size_t ob = ((size_t)s * os.c + c) * plane(os);
            for (int oy = 0; oy < os.h; oy++) {
                for (int ox = 0; ox < os.w; ox++) {
                    int y0 = oy * k->sh - k->pt, x0 = ox * k->sw - k->pl;
                    float m = -INFINITY;
                    int32_t mi = -1;
                    double sum = 0;
                    int cnt = 0;
                    for (int ky = 0; ky < k->kh; ky++) {
                        int iy = y0 + ky * k->dh;
                        if (iy < 0 || iy >= is.h)
                            continue;
                        for (int kx = 0; kx < k->kw; kx++) {
                            int ix = x0 + kx * k->dw;
                            if (ix < 0 || ix >= is.w)
                                continue;
                            int32_t idx = iy * is.w + ix;
                            float v = src[idx];
                            if (mi < 0 || v > m || isnan(v)) {
                                m = v;
                                mi = idx;
                            }
                            sum += v;
                            cnt++;
                        }
                    }
                    size_t o = ob + (size_t)oy * os.w + ox;
                    if (is_max) {
                        out[o] = m;
                        arg[o] = mi;
                    } else {
                        int div = avg_div(nd, is, y0, x0, cnt);
                        out[o] = div > 0 ? (float)(sum / div) : 0.0f;
                    }
                }
            }
        }
    }
    return KN_OK;
}

static void ref_pool_bwd(kn_nn_trainer *t, int i)
{
    const kn_nn_node *nd = &t->g->nodes[i];
    const kn_nn_window *k = &nd->win;
    int a = nd->in[0];
    kn_nn_shape is = t->g->nodes[a].shape, os = nd->shape;
    int n = t->n;
    bool is_max = nd->op == KN_OP_MAXPOOL;
    const int32_t *arg = t->state[i];
    const float *dy = t->grad[i];
    if (kn__train_grad_first(t, a)) /* the loops below add */
        kn__train_grad_zero(t, a);
    float *dx = t->grad[a];
#pragma omp parallel for collapse(2) schedule(static)
    for (int s = 0; s < n; s++) {
        for (int c = 0; c < is.c; c++) {
            float *d = dx + ((size_t)s * is.c + c) * plane(is);
            size_t ob = ((size_t)s * os.c + c) * plane(os);
            for (int oy = 0; oy < os.h; oy++) {
                for (int ox = 0; ox < os.w; ox++) {
                    size_t o = ob + (size_t)oy * os.w + ox;
                    if (is_max) {
                        if (arg[o] >= 0)
                            d[arg[o]] += dy[o];
                        continue;
                    }
                    int y0 = oy * k->sh - k->pt, x0 = ox * k->sw - k->pl, cnt = 0;
                    for (int ky = 0; ky < k->kh; ky++) {
                        int iy = y0 + ky * k->dh;
                        for (int kx = 0; kx < k->kw; kx++) {
                            int ix = x0 + kx * k->dw;
                            cnt += iy >= 0 && iy < is.h && ix >= 0 && ix < is.w;
                        }
                    }
                    int div = avg_div(nd, is, y0, x0, cnt);
                    if (div <= 0)
                        continue;
                    float gv = dy[o] / (float)div;
                    for (int ky = 0; ky < k->kh; ky++) {
                        int iy = y0 + ky * k->dh;
                        if (iy < 0 || iy >= is.h)
                            continue;
                        for (int kx = 0; kx < k->kw; kx++) {
                            int ix = x0 + kx * k->dw;
                            if (ix >= 0 && ix < is.w)
                                d[(size_t)iy * is.w + ix] += gv;
                        }
                    }
                }
            }
        }
    }
}

kn_status kn__train_pool_fwd(kn_nn_trainer *t, int i, kn_err *e)
{
    if (fast(t))
        return kn__train_dnnl_pool_fwd(t, i, e);
    return ref_pool_fwd(t, i, e);
}

kn_status kn__train_pool_bwd(kn_nn_trainer *t, int i, kn_err *e)
{
    if (!t->need_grad[t->g->nodes[i].in[0]])
        return KN_OK; /* pooling has no parameters */
    if (fast(t))
        return kn__train_dnnl_pool_bwd(t, i, e);
    if (t->g->nodes[i].op == KN_OP_MAXPOOL && !t->state[i])
        return kn_err_set(e, KN_INTERNAL, "trainer: max pool %d: backward before forward", i);
    ref_pool_bwd(t, i);
    return KN_OK;
}

void kn__train_conv_free(kn_nn_trainer *t)
{
    kn__train_dnnl_free(t);
}
