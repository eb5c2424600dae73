/* The reference backend: plain C, NCHW float32, one buffer per node. It is
 * the oracle the fast backend is tested against, so it favours obviousness
 * over speed; loops are ordered so compilers vectorise the innermost one and
 * OpenMP splits work over (sample, channel). Its executor owns a copy of the
 * graph (weights included). */
#include "nn_int.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct ref_impl {
    kn_nn_graph *g;  /* private copy */
    float **buf;     /* per node, max_batch samples */
} ref_impl;

static void ref_destroy(kn_nn_exec *x)
{
    ref_impl *r = x->impl;
    if (!r)
        return;
    if (r->buf)
        for (int i = 0; i < r->g->n; i++)
            kn_free_aligned(r->buf[i]);
    free(r->buf);
    kn_nn_graph_free(r->g);
    free(r);
    x->impl = NULL;
}

static kn_status ref_create(kn_nn_exec *x, const kn_nn_graph *g, kn_err *e)
{
    ref_impl *r = calloc(1, sizeof *r);
    if (!r)
        return kn_err_set(e, KN_NOMEM, "reference backend: out of memory");
    x->impl = r;
    kn_status rc = kn_nn_graph_optimize(g, &r->g, e); /* a copy; also drops dropout */
    if (rc)
        goto fail;
    r->buf = calloc((size_t)r->g->n, sizeof *r->buf);
    if (!r->buf) {
        rc = kn_err_set(e, KN_NOMEM, "reference backend: out of memory");
        goto fail;
    }
    for (int i = 0; i < r->g->n; i++) {
        size_t bytes = kn__nn_shape_numel(r->g->nodes[i].shape) * (size_t)x->p.max_batch *
                       sizeof(float);
        r->buf[i] = kn_alloc_aligned(bytes);
        if (!r->buf[i]) {
            rc = kn_err_set(e, KN_NOMEM, "reference backend: cannot allocate %zu bytes", bytes);
            goto fail;
        }
    }
    return KN_OK;
fail:
    ref_destroy(x);
    return rc;
}

static float act(kn_nn_act a, float v)
{
    if (a == KN_ACT_RELU)
        return v > 0 ? v : 0;
    if (a == KN_ACT_RELU6)
        return v < 0 ? 0 : v > 6 ? 6 : v;
    return v;
}

static void conv(const kn_nn_graph *g, const kn_nn_node *nd, const float *in, kn_nn_shape is,
                 float *out, int n)
{
    const kn_nn_window *k = &nd->win;
    kn_nn_shape os = nd->shape;
    int icg = is.c / nd->groups, ocg = os.c / nd->groups;
    const float *w = g->params[nd->w].data;
    const float *bias = nd->b >= 0 ? g->params[nd->b].data : NULL;
#pragma omp parallel for collapse(2) schedule(static)
    for (int s = 0; s < n; s++) {
        for (int oc = 0; oc < os.c; oc++) {
            int grp = oc / ocg;
            float *o = out + ((size_t)s * os.c + oc) * os.h * os.w;
            float b0 = bias ? bias[oc] : 0.0f;
            for (int i = 0; i < os.h * os.w; i++)
                o[i] = b0;
            for (int ic = 0; ic < icg; ic++) {
                const float *src =
                    in + ((size_t)s * is.c + (size_t)grp * icg + ic) * is.h * is.w;
                for (int ky = 0; ky < k->kh; ky++) {
                    for (int kx = 0; kx < k->kw; kx++) {
                        float wv = w[(((size_t)oc * icg + ic) * k->kh + ky) * k->kw + kx];
                        for (int oy = 0; oy < os.h; oy++) {
                            int iy = oy * k->sh - k->pt + ky * k->dh;
                            if (iy < 0 || iy >= is.h)
                                continue;
                            const float *row = src + (size_t)iy * is.w;
                            float *orow = o + (size_t)oy * os.w;
                            for (int ox = 0; ox < os.w; ox++) {
                                int ix = ox * k->sw - k->pl + kx * k->dw;
                                if (ix >= 0 && ix < is.w)
                                    orow[ox] += wv * row[ix];
                            }
                        }
                    }
                }
            }
            if (nd->act != KN_ACT_NONE)
                for (int i = 0; i < os.h * os.w; i++)
                    o[i] = act(nd->act, o[i]);
        }
    }
}

static void pool(const kn_nn_node *nd, const float *in, kn_nn_shape is, float *out, int n)
{
    const kn_nn_window *k = &nd->win;
    kn_nn_shape os = nd->shape;
    bool is_max = nd->op == KN_OP_MAXPOOL;
#pragma omp parallel for collapse(2) schedule(static)
    for (int s = 0; s < n; s++) {
        for (int c = 0; c < is.c; c++) {
            const float *src = in + ((size_t)s * is.c + c) * is.h * is.w;
            float *o = out + ((size_t)s * os.c + c) * os.h * os.w;
            for (int oy = 0; oy < os.h; oy++) {
                for (int ox = 0; ox < os.w; ox++) {
                    int y0 = oy * k->sh - k->pt, x0 = ox * k->sw - k->pl;
                    float m = -FLT_MAX;
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
                            float v = src[(size_t)iy * is.w + ix];
                            m = v > m ? v : m;
                            sum += v;
                            cnt++;
                        }
                    }
                    if (is_max) {
                        o[oy * os.w + ox] = m;
                    } else {
                        int div = cnt;
                        if (nd->pool_count_pad) {
                            /* PyTorch: the window clipped to the padded input */
                            int y1 = y0 + k->kh, x1 = x0 + k->kw;
                            if (y1 > is.h + k->pb)
                                y1 = is.h + k->pb;
                            if (x1 > is.w + k->pr)
                                x1 = is.w + k->pr;
                            div = (y1 - y0) * (x1 - x0);
                        }
                        o[oy * os.w + ox] = div > 0 ? (float)(sum / div) : 0.0f;
                    }
                }
            }
        }
    }
}

static void linear(const kn_nn_graph *g, const kn_nn_node *nd, const float *in, int in_f,
                   float *out, int n)
{
    const float *w = g->params[nd->w].data;
    const float *b = nd->b >= 0 ? g->params[nd->b].data : NULL;
    int of = nd->out_c;
#pragma omp parallel for collapse(2) schedule(static)
    for (int s = 0; s < n; s++) {
        for (int o = 0; o < of; o++) {
            const float *x = in + (size_t)s * in_f, *wr = w + (size_t)o * in_f;
            double acc = b ? b[o] : 0.0;
            for (int i = 0; i < in_f; i++)
                acc += (double)wr[i] * x[i];
            out[(size_t)s * of + o] = act(nd->act, (float)acc);
        }
    }
}

static kn_status ref_run(kn_nn_exec *x, const float *in, int n, float *out, kn_err *e)
{
    ref_impl *r = x->impl;
    const kn_nn_graph *g = r->g;
    memcpy(r->buf[0], in, kn__nn_shape_numel(g->nodes[0].shape) * (size_t)n * sizeof(float));
    for (int i = 1; i < g->n; i++) {
        const kn_nn_node *nd = &g->nodes[i];
        const float *a = r->buf[nd->in[0]];
        kn_nn_shape is = g->nodes[nd->in[0]].shape;
        float *o = r->buf[i];
        size_t per = kn__nn_shape_numel(nd->shape), total = per * (size_t)n;
        switch (nd->op) {
        case KN_OP_CONV:
            conv(g, nd, a, is, o, n);
            break;
        case KN_OP_BATCHNORM: {
            /* only reached for graphs the optimiser left alone; it turns
             * batch norms into convs, so this is a defensive path */
            const float *m = g->params[nd->bn_mean].data, *v = g->params[nd->bn_var].data;
            const float *ga = g->params[nd->bn_gamma].data, *be = g->params[nd->bn_beta].data;
            size_t hw = (size_t)is.h * is.w;
            for (size_t j = 0; j < total; j++) {
                int c = (int)((j / hw) % (size_t)is.c);
                o[j] = (a[j] - m[c]) / sqrtf(v[c] + nd->eps) * ga[c] + be[c];
            }
            break;
        }
        case KN_OP_RELU:
        case KN_OP_RELU6:
            for (size_t j = 0; j < total; j++)
                o[j] = act(nd->op == KN_OP_RELU ? KN_ACT_RELU : KN_ACT_RELU6, a[j]);
            break;
        case KN_OP_ADD: {
            const float *b = r->buf[nd->in[1]];
            for (size_t j = 0; j < total; j++)
                o[j] = act(nd->act, a[j] + b[j]);
            break;
        }
        case KN_OP_MAXPOOL:
        case KN_OP_AVGPOOL:
            pool(nd, a, is, o, n);
            break;
        case KN_OP_GAP: {
            size_t hw = (size_t)is.h * is.w;
            for (size_t j = 0; j < total; j++) {
                double sum = 0;
                for (size_t k = 0; k < hw; k++)
                    sum += a[j * hw + k];
                o[j] = (float)(sum / (double)hw);
            }
            break;
        }
        case KN_OP_FLATTEN:
        case KN_OP_DROPOUT:
            memcpy(o, a, total * sizeof(float));
            break;
        case KN_OP_LINEAR:
            linear(g, nd, a, is.c, o, n);
            break;
        case KN_OP_SOFTMAX:
            for (int s = 0; s < n; s++) {
                const float *v = a + (size_t)s * per;
                float *d = o + (size_t)s * per, mx = -FLT_MAX;
                for (size_t j = 0; j < per; j++)
                    mx = v[j] > mx ? v[j] : mx;
                double sum = 0;
                for (size_t j = 0; j < per; j++)
                    sum += (d[j] = expf(v[j] - mx));
                for (size_t j = 0; j < per; j++)
                    d[j] = (float)(d[j] / sum);
            }
            break;
        default:
            return kn_err_set(e, KN_INTERNAL, "reference backend: op %s at node %d",
                              kn_nn_op_name(nd->op), i);
        }
    }
    memcpy(out, r->buf[g->n - 1],
           kn__nn_shape_numel(g->nodes[g->n - 1].shape) * (size_t)n * sizeof(float));
    return KN_OK;
}

const kn_nn_backend_ops kn__nn_ref_ops = {ref_create, ref_run, ref_destroy, NULL};
