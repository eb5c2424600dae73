/* The graph IR: construction with immediate shape inference, parameters,
 * validation, inference rewrites (batch-norm folding, activation fusion),
 * listing, FLOP count, initialisation and safetensors binding.
 *
 * Construction functions never fail loudly: a bad argument records the first
 * error on the graph and returns -1; kn_nn_graph_finalize reports it. This
 * keeps builders linear. A finalised graph is read-only.
 */
#include "nn_int.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *op_names[] = {
#define KN_X_NAME(n, s) s,
    KN_NN_OP_LIST(KN_X_NAME)
#undef KN_X_NAME
};

const char *kn_nn_op_name(kn_nn_op op)
{
    return (int)op >= 0 && op < KN_OP_COUNT ? op_names[op] : "?";
}

kn_nn_graph *kn_nn_graph_new(void)
{
    return calloc(1, sizeof(kn_nn_graph));
}

void kn_nn_graph_free(kn_nn_graph *g)
{
    if (!g)
        return;
    for (int i = 0; i < g->np; i++)
        kn_free_aligned(g->params[i].data);
    free(g->params);
    free(g->nodes);
    free(g);
}

static int fail(kn_nn_graph *g, kn_status code, const char *fmt, ...) KN_PRINTF(3, 4);
static int fail(kn_nn_graph *g, kn_status code, const char *fmt, ...)
{
    if (g->bad == KN_OK) {
        g->bad = code;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(g->bad_msg, sizeof g->bad_msg, fmt, ap);
        va_end(ap);
    }
    return -1;
}

size_t kn__nn_shape_numel(kn_nn_shape s)
{
    return (size_t)s.c * (size_t)s.h * (size_t)s.w;
}

int kn__nn_out_dim(int in, int k, int s, int p0, int p1, int d)
{
    long span = (long)d * (k - 1) + 1;
    long num = (long)in + p0 + p1 - span;
    if (num < 0 || s <= 0)
        return 0;
    return (int)(num / s + 1);
}

static int valid_in(kn_nn_graph *g, int in)
{
    return in >= 0 && in < g->n;
}

static kn_nn_node *push(kn_nn_graph *g, kn_nn_op op, const char *name, int in0, int in1)
{
    if (g->bad)
        return NULL;
    if (g->finalized) {
        fail(g, KN_INVALID, "graph is finalised; cannot add %s", kn_nn_op_name(op));
        return NULL;
    }
    if (op != KN_OP_INPUT && (!valid_in(g, in0) || (in1 != -1 && !valid_in(g, in1)))) {
        fail(g, KN_INVALID, "%s%s%s: input node index out of range", kn_nn_op_name(op),
             name ? " " : "", name ? name : "");
        return NULL;
    }
    if (g->n == g->cap) {
        int cap = g->cap ? g->cap * 2 : 64;
        kn_nn_node *p = realloc(g->nodes, (size_t)cap * sizeof *p);
        if (!p) {
            fail(g, KN_NOMEM, "out of memory growing the graph");
            return NULL;
        }
        g->nodes = p;
        g->cap = cap;
    }
    kn_nn_node *nd = &g->nodes[g->n++];
    memset(nd, 0, sizeof *nd);
    nd->op = op;
    nd->in[0] = in0;
    nd->in[1] = in1;
    nd->n_in = op == KN_OP_INPUT ? 0 : (in1 == -1 ? 1 : 2);
    nd->w = nd->b = nd->bn_mean = nd->bn_var = nd->bn_gamma = nd->bn_beta = -1;
    if (name)
        snprintf(nd->name, sizeof nd->name, "%s", name);
    if (op != KN_OP_INPUT)
        nd->shape = g->nodes[in0].shape;
    return nd;
}

int kn_nn_param_add(kn_nn_graph *g, const char *name, int ndim, const int64_t *dims)
{
    if (g->bad)
        return -1;
    if (ndim < 1 || ndim > KN_NN_MAX_DIMS)
        return fail(g, KN_INVALID, "parameter %s: %d dimensions", name, ndim);
    if (strlen(name) >= sizeof g->params[0].name)
        return fail(g, KN_INVALID, "parameter name too long: %s", name);
    if (kn_nn_graph_param_find(g, name) >= 0)
        return fail(g, KN_EXISTS, "parameter %s declared twice", name);
    size_t numel = 1;
    for (int i = 0; i < ndim; i++) {
        if (dims[i] <= 0 || !kn_mul_size(numel, (size_t)dims[i], &numel) ||
            numel > ((size_t)1 << 31))
            return fail(g, KN_INVALID, "parameter %s: bad dimension %lld", name,
                        (long long)dims[i]);
    }
    if (g->np == g->pcap) {
        int cap = g->pcap ? g->pcap * 2 : 128;
        kn_nn_param *p = realloc(g->params, (size_t)cap * sizeof *p);
        if (!p)
            return fail(g, KN_NOMEM, "out of memory adding parameter %s", name);
        g->params = p;
        g->pcap = cap;
    }
    kn_nn_param *p = &g->params[g->np];
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s", name);
    p->ndim = ndim;
    for (int i = 0; i < ndim; i++)
        p->dims[i] = dims[i];
    p->numel = numel;
    p->data = kn_alloc_aligned(numel * sizeof(float));
    if (!p->data)
        return fail(g, KN_NOMEM, "out of memory for parameter %s (%zu floats)", name, numel);
    memset(p->data, 0, numel * sizeof(float));
    return g->np++;
}

static int param2(kn_nn_graph *g, const char *node, const char *suffix, int ndim,
                  const int64_t *dims)
{
    char name[160];
    snprintf(name, sizeof name, "%s.%s", node, suffix);
    return kn_nn_param_add(g, name, ndim, dims);
}

int kn_nn_input(kn_nn_graph *g, int c, int h, int w)
{
    if (g->n != 0)
        return fail(g, KN_INVALID, "the input must be the first node");
    if (c <= 0 || h <= 0 || w <= 0 || c > 65536 || h > 65536 || w > 65536)
        return fail(g, KN_INVALID, "input shape %dx%dx%d is invalid", c, h, w);
    kn_nn_node *nd = push(g, KN_OP_INPUT, "input", -1, -1);
    if (!nd)
        return -1;
    nd->shape = (kn_nn_shape){c, h, w};
    return g->n - 1;
}

static bool window_ok(const kn_nn_window *w)
{
    return w->kh > 0 && w->kw > 0 && w->sh > 0 && w->sw > 0 && w->pt >= 0 && w->pl >= 0 &&
           w->pb >= 0 && w->pr >= 0 && w->dh > 0 && w->dw > 0 && w->kh <= 1024 &&
           w->kw <= 1024 && w->sh <= 1024 && w->sw <= 1024 && w->pt < 1024 && w->pl < 1024 &&
           w->pb < 1024 && w->pr < 1024 && w->dh <= 1024 && w->dw <= 1024;
}

static bool apply_window(kn_nn_graph *g, kn_nn_node *nd, const kn_nn_window *win)
{
    if (!window_ok(win)) {
        fail(g, KN_INVALID, "%s %s: invalid kernel/stride/padding/dilation",
             kn_nn_op_name(nd->op), nd->name);
        return false;
    }
    nd->win = *win;
    int oh = kn__nn_out_dim(nd->shape.h, win->kh, win->sh, win->pt, win->pb, win->dh);
    int ow = kn__nn_out_dim(nd->shape.w, win->kw, win->sw, win->pl, win->pr, win->dw);
    if (oh <= 0 || ow <= 0) {
        fail(g, KN_SHAPE, "%s %s: %dx%d window does not fit a %dx%d input",
             kn_nn_op_name(nd->op), nd->name, win->kh, win->kw, nd->shape.h, nd->shape.w);
        return false;
    }
    nd->shape.h = oh;
    nd->shape.w = ow;
    return true;
}

int kn_nn_conv(kn_nn_graph *g, int in, const char *name, int out_c, const kn_nn_window *win,
               int groups, bool bias, kn_nn_act act)
{
    kn_nn_node *nd = push(g, KN_OP_CONV, name, in, -1);
    if (!nd)
        return -1;
    int in_c = nd->shape.c;
    if (groups <= 0 || out_c <= 0 || in_c % groups || out_c % groups)
        return fail(g, KN_SHAPE, "conv %s: %d in / %d out channels do not divide into %d groups",
                    name, in_c, out_c, groups);
    nd->groups = groups;
    nd->out_c = out_c;
    nd->act = act;
    if (!apply_window(g, nd, win))
        return -1;
    nd->shape.c = out_c;
    int idx = g->n - 1;
    int64_t wd[4] = {out_c, in_c / groups, win->kh, win->kw};
    int wi = param2(g, name, "weight", 4, wd);
    int bi = -1;
    if (bias) {
        int64_t bd[1] = {out_c};
        bi = param2(g, name, "bias", 1, bd);
    }
    if (wi < 0 || (bias && bi < 0))
        return -1;
    g->nodes[idx].w = wi;
    g->nodes[idx].b = bi;
    return idx;
}

int kn_nn_batchnorm(kn_nn_graph *g, int in, const char *name, float eps)
{
    kn_nn_node *nd = push(g, KN_OP_BATCHNORM, name, in, -1);
    if (!nd)
        return -1;
    nd->eps = eps;
    int idx = g->n - 1;
    int64_t d[1] = {nd->shape.c};
    int m = param2(g, name, "running_mean", 1, d);
    int v = param2(g, name, "running_var", 1, d);
    int w = param2(g, name, "weight", 1, d);
    int b = param2(g, name, "bias", 1, d);
    if (m < 0 || v < 0 || w < 0 || b < 0)
        return -1;
    nd = &g->nodes[idx];
    nd->bn_mean = m;
    nd->bn_var = v;
    nd->bn_gamma = w;
    nd->bn_beta = b;
    /* Identity statistics until loaded: var 1, gamma 1. */
    for (int i = 0; i < d[0]; i++) {
        g->params[v].data[i] = 1.0f;
        g->params[w].data[i] = 1.0f;
    }
    return idx;
}

int kn_nn_relu(kn_nn_graph *g, int in)
{
    return push(g, KN_OP_RELU, NULL, in, -1) ? g->n - 1 : -1;
}

int kn_nn_relu6(kn_nn_graph *g, int in)
{
    return push(g, KN_OP_RELU6, NULL, in, -1) ? g->n - 1 : -1;
}

int kn_nn_add(kn_nn_graph *g, int a, int b, kn_nn_act act)
{
    kn_nn_node *nd = push(g, KN_OP_ADD, NULL, a, b);
    if (!nd)
        return -1;
    kn_nn_shape sa = g->nodes[a].shape, sb = g->nodes[b].shape;
    if (sa.c != sb.c || sa.h != sb.h || sa.w != sb.w)
        return fail(g, KN_SHAPE, "add: shapes %dx%dx%d and %dx%dx%d differ", sa.c, sa.h, sa.w,
                    sb.c, sb.h, sb.w);
    nd->act = act;
    return g->n - 1;
}

int kn_nn_maxpool(kn_nn_graph *g, int in, const kn_nn_window *win)
{
    kn_nn_node *nd = push(g, KN_OP_MAXPOOL, NULL, in, -1);
    if (!nd || !apply_window(g, nd, win))
        return -1;
    if (win->pt >= win->kh || win->pb >= win->kh || win->pl >= win->kw || win->pr >= win->kw)
        return fail(g, KN_INVALID, "max_pool: padding must be smaller than the kernel");
    return g->n - 1;
}

int kn_nn_avgpool(kn_nn_graph *g, int in, const kn_nn_window *win, bool count_pad)
{
    kn_nn_node *nd = push(g, KN_OP_AVGPOOL, NULL, in, -1);
    if (!nd || !apply_window(g, nd, win))
        return -1;
    if (win->dh != 1 || win->dw != 1)
        return fail(g, KN_UNSUPPORTED, "avg_pool: dilation is not supported");
    if (win->pt >= win->kh || win->pb >= win->kh || win->pl >= win->kw || win->pr >= win->kw)
        return fail(g, KN_INVALID, "avg_pool: padding must be smaller than the kernel");
    nd->pool_count_pad = count_pad;
    return g->n - 1;
}

int kn_nn_gap(kn_nn_graph *g, int in)
{
    kn_nn_node *nd = push(g, KN_OP_GAP, NULL, in, -1);
    if (!nd)
        return -1;
    nd->shape.h = nd->shape.w = 1;
    return g->n - 1;
}

int kn_nn_flatten(kn_nn_graph *g, int in)
{
    kn_nn_node *nd = push(g, KN_OP_FLATTEN, NULL, in, -1);
    if (!nd)
        return -1;
    size_t n = kn__nn_shape_numel(nd->shape);
    if (n > (1u << 30))
        return fail(g, KN_SHAPE, "flatten: %zu features is too many", n);
    nd->shape = (kn_nn_shape){(int)n, 1, 1};
    return g->n - 1;
}

int kn_nn_linear(kn_nn_graph *g, int in, const char *name, int out_f, bool bias, kn_nn_act act)
{
    kn_nn_node *nd = push(g, KN_OP_LINEAR, name, in, -1);
    if (!nd)
        return -1;
    if (nd->shape.h != 1 || nd->shape.w != 1)
        return fail(g, KN_SHAPE, "linear %s: input is %dx%dx%d; flatten it first", name,
                    nd->shape.c, nd->shape.h, nd->shape.w);
    if (out_f <= 0)
        return fail(g, KN_SHAPE, "linear %s: %d outputs", name, out_f);
    int in_f = nd->shape.c;
    nd->out_c = out_f;
    nd->act = act;
    nd->shape.c = out_f;
    int idx = g->n - 1;
    int64_t wd[2] = {out_f, in_f};
    int wi = param2(g, name, "weight", 2, wd);
    int bi = -1;
    if (bias) {
        int64_t bd[1] = {out_f};
        bi = param2(g, name, "bias", 1, bd);
    }
    if (wi < 0 || (bias && bi < 0))
        return -1;
    g->nodes[idx].w = wi;
    g->nodes[idx].b = bi;
    return idx;
}

int kn_nn_softmax(kn_nn_graph *g, int in)
{
    kn_nn_node *nd = push(g, KN_OP_SOFTMAX, NULL, in, -1);
    if (!nd)
        return -1;
    if (nd->shape.h != 1 || nd->shape.w != 1)
        return fail(g, KN_SHAPE, "softmax: input must be flat, got %dx%dx%d", nd->shape.c,
                    nd->shape.h, nd->shape.w);
    return g->n - 1;
}

int kn_nn_dropout(kn_nn_graph *g, int in, float p)
{
    kn_nn_node *nd = push(g, KN_OP_DROPOUT, NULL, in, -1);
    if (!nd)
        return -1;
    if (!(p >= 0 && p < 1))
        return fail(g, KN_INVALID, "dropout: probability %g is not in [0, 1)", p);
    nd->rate = p;
    return g->n - 1;
}

/* ---- queries ------------------------------------------------------------ */

int kn_nn_graph_count(const kn_nn_graph *g)
{
    return g->n;
}

const kn_nn_node *kn_nn_graph_node(const kn_nn_graph *g, int i)
{
    return i >= 0 && i < g->n ? &g->nodes[i] : NULL;
}

int kn_nn_graph_param_count(const kn_nn_graph *g)
{
    return g->np;
}

kn_nn_param *kn_nn_graph_param(kn_nn_graph *g, int i)
{
    return i >= 0 && i < g->np ? &g->params[i] : NULL;
}

const kn_nn_param *kn_nn_graph_param_c(const kn_nn_graph *g, int i)
{
    return i >= 0 && i < g->np ? &g->params[i] : NULL;
}

int kn_nn_graph_param_find(const kn_nn_graph *g, const char *name)
{
    for (int i = 0; i < g->np; i++)
        if (strcmp(g->params[i].name, name) == 0)
            return i;
    return -1;
}

kn_nn_shape kn_nn_graph_input_shape(const kn_nn_graph *g)
{
    return g->n ? g->nodes[0].shape : (kn_nn_shape){0, 0, 0};
}

kn_nn_shape kn_nn_graph_output_shape(const kn_nn_graph *g)
{
    return g->n ? g->nodes[g->n - 1].shape : (kn_nn_shape){0, 0, 0};
}

size_t kn_nn_graph_param_numel(const kn_nn_graph *g)
{
    size_t n = 0;
    for (int i = 0; i < g->np; i++)
        n += g->params[i].numel;
    return n;
}

int kn__nn_use_count(const kn_nn_graph *g, int i)
{
    int uses = 0;
    for (int j = i + 1; j < g->n; j++)
        for (int k = 0; k < g->nodes[j].n_in; k++)
            uses += g->nodes[j].in[k] == i;
    return uses;
}

double kn_nn_graph_flops(const kn_nn_graph *g)
{
    double f = 0;
    for (int i = 1; i < g->n; i++) {
        const kn_nn_node *nd = &g->nodes[i];
        kn_nn_shape in = g->nodes[nd->in[0]].shape;
        if (nd->op == KN_OP_CONV)
            f += 2.0 * nd->shape.c * nd->shape.h * nd->shape.w * (in.c / nd->groups) *
                 nd->win.kh * nd->win.kw;
        else if (nd->op == KN_OP_LINEAR)
            f += 2.0 * in.c * nd->out_c;
    }
    return f;
}

kn_status kn_nn_graph_finalize(kn_nn_graph *g, kn_err *e)
{
    if (g->bad)
        return kn_err_set(e, g->bad, "%s", g->bad_msg);
    if (g->n < 2 || g->nodes[0].op != KN_OP_INPUT)
        return kn_err_set(e, KN_INVALID, "graph has no input or no operations");
    for (int i = 0; i < g->n; i++) {
        const kn_nn_node *nd = &g->nodes[i];
        for (int k = 0; k < nd->n_in; k++)
            if (nd->in[k] < 0 || nd->in[k] >= i)
                return kn_err_set(e, KN_INVALID, "node %d (%s) reads a later node", i,
                                  kn_nn_op_name(nd->op));
    }
    g->finalized = true;
    return KN_OK;
}

void kn_nn_graph_reopen(kn_nn_graph *g)
{
    g->finalized = false;
}

/* ---- rewrites ----------------------------------------------------------- */

static kn_status clone(const kn_nn_graph *g, kn_nn_graph **out, kn_err *e)
{
    kn_nn_graph *c = kn_nn_graph_new();
    if (!c)
        return kn_err_set(e, KN_NOMEM, "out of memory cloning a graph");
    c->nodes = malloc((size_t)(g->n ? g->n : 1) * sizeof *c->nodes);
    c->params = calloc((size_t)(g->np ? g->np : 1), sizeof *c->params);
    if (!c->nodes || !c->params)
        goto oom;
    memcpy(c->nodes, g->nodes, (size_t)g->n * sizeof *c->nodes);
    c->n = c->cap = g->n;
    c->pcap = g->np ? g->np : 1;
    for (int i = 0; i < g->np; i++) {
        c->params[i] = g->params[i];
        c->params[i].data = kn_alloc_aligned(g->params[i].numel * sizeof(float));
        c->np = i + 1;
        if (!c->params[i].data)
            goto oom;
        memcpy(c->params[i].data, g->params[i].data, g->params[i].numel * sizeof(float));
    }
    c->finalized = g->finalized;
    *out = c;
    return KN_OK;
oom:
    kn_nn_graph_free(c);
    return kn_err_set(e, KN_NOMEM, "out of memory cloning a graph");
}

static bool fusable_act(const kn_nn_node *nd)
{
    return (nd->op == KN_OP_CONV || nd->op == KN_OP_LINEAR || nd->op == KN_OP_ADD) &&
           nd->act == KN_ACT_NONE;
}

/* Folds y = gamma * (x - mean) / sqrt(var + eps) + beta into conv weights. */
static kn_status fold_bn(kn_nn_graph *g, kn_nn_node *conv, const kn_nn_node *bn, kn_err *e)
{
    int oc = conv->out_c;
    if (conv->b < 0) {
        char name[160];
        snprintf(name, sizeof name, "%s.bias", conv->name);
        int64_t d[1] = {oc};
        /* conv may move when params grow: remember its index */
        int ci = (int)(conv - g->nodes);
        int bi = kn_nn_param_add(g, name, 1, d);
        if (bi < 0)
            return kn_err_set(e, g->bad, "%s", g->bad_msg);
        conv = &g->nodes[ci];
        conv->b = bi;
        g->params[bi].loaded = true;
    }
    const float *mean = g->params[bn->bn_mean].data, *var = g->params[bn->bn_var].data;
    const float *gamma = g->params[bn->bn_gamma].data, *beta = g->params[bn->bn_beta].data;
    float *w = g->params[conv->w].data, *b = g->params[conv->b].data;
    size_t per = g->params[conv->w].numel / (size_t)oc;
    for (int o = 0; o < oc; o++) {
        double s = (double)gamma[o] / sqrt((double)var[o] + (double)bn->eps);
        for (size_t k = 0; k < per; k++)
            w[(size_t)o * per + k] = (float)(w[(size_t)o * per + k] * s);
        b[o] = (float)(((double)b[o] - mean[o]) * s + beta[o]);
    }
    return KN_OK;
}

/* Turns a batch norm that follows no conv into a depthwise 1x1 conv, so every
 * backend handles it with the conv path. */
static kn_status bn_to_conv(kn_nn_graph *g, int idx, kn_err *e)
{
    kn_nn_node bn = g->nodes[idx];
    int c = bn.shape.c;
    char name[160];
    int64_t wd[4] = {c, 1, 1, 1}, bd[1] = {c};
    snprintf(name, sizeof name, "%s.affine.weight", bn.name);
    int wi = kn_nn_param_add(g, name, 4, wd);
    snprintf(name, sizeof name, "%s.affine.bias", bn.name);
    int bi = kn_nn_param_add(g, name, 1, bd);
    if (wi < 0 || bi < 0)
        return kn_err_set(e, g->bad, "%s", g->bad_msg);
    for (int i = 0; i < c; i++)
        g->params[wi].data[i] = 1.0f;
    g->params[wi].loaded = g->params[bi].loaded = true;
    kn_nn_node *nd = &g->nodes[idx];
    nd->op = KN_OP_CONV;
    nd->win = (kn_nn_window){1, 1, 1, 1, 0, 0, 0, 0, 1, 1};
    nd->groups = c;
    nd->out_c = c;
    nd->act = KN_ACT_NONE;
    nd->w = wi;
    nd->b = bi;
    return fold_bn(g, nd, &bn, e);
}

/* Frees parameters no node refers to and renumbers the rest. */
static kn_status prune_params(kn_nn_graph *g)
{
    bool *used = calloc((size_t)(g->np ? g->np : 1), sizeof *used);
    int *pmap = malloc((size_t)(g->np ? g->np : 1) * sizeof *pmap);
    if (!used || !pmap) {
        free(used);
        free(pmap);
        return KN_NOMEM;
    }
    for (int i = 0; i < g->n; i++) {
        const kn_nn_node *nd = &g->nodes[i];
        int ids[6] = {nd->w, nd->b, nd->bn_mean, nd->bn_var, nd->bn_gamma, nd->bn_beta};
        for (int k = 0; k < 6; k++)
            if (ids[k] >= 0)
                used[ids[k]] = true;
    }
    int q = 0;
    for (int i = 0; i < g->np; i++) {
        if (!used[i]) {
            kn_free_aligned(g->params[i].data);
            pmap[i] = -1;
            continue;
        }
        pmap[i] = q;
        g->params[q++] = g->params[i];
    }
    g->np = q;
    for (int i = 0; i < g->n; i++) {
        kn_nn_node *nd = &g->nodes[i];
        int *ids[6] = {&nd->w, &nd->b, &nd->bn_mean, &nd->bn_var, &nd->bn_gamma, &nd->bn_beta};
        for (int k = 0; k < 6; k++)
            if (*ids[k] >= 0)
                *ids[k] = pmap[*ids[k]];
    }
    free(pmap);
    free(used);
    return KN_OK;
}

/* Uses of src by nodes still alive, seen through the rewrite map. */
static int live_uses(const kn_nn_graph *g, const int *map, const bool *dead, int src)
{
    int uses = 0;
    for (int j = src + 1; j < g->n; j++)
        for (int k = 0; !dead[j] && k < g->nodes[j].n_in; k++)
            uses += map[g->nodes[j].in[k]] == src;
    return uses;
}

kn_status kn_nn_graph_optimize_inplace(kn_nn_graph *g, kn_err *e)
{
    if (!g->finalized)
        return kn_err_set(e, KN_INVALID, "optimize: graph is not finalised");
    int n = g->n;
    int *map = malloc((size_t)n * sizeof *map);   /* old index -> new index */
    bool *dead = calloc((size_t)n, sizeof *dead);
    kn_status rc = KN_OK;
    if (!map || !dead) {
        rc = kn_err_set(e, KN_NOMEM, "optimize: out of memory");
        goto out;
    }
    for (int i = 0; i < n; i++)
        map[i] = i;
    /* Pass 1 on old indices: decide which nodes vanish into their producer. */
    for (int i = 1; i < n; i++) {
        kn_nn_node *nd = &g->nodes[i];
        for (int k = 0; k < nd->n_in; k++)
            nd->in[k] = map[nd->in[k]];
        int src = nd->in[0];
        kn_nn_node *p = &g->nodes[src];
        bool single = live_uses(g, map, dead, src) == 1 && src != 0;
        if (nd->op == KN_OP_DROPOUT ||
            (nd->op == KN_OP_FLATTEN && nd->shape.c == p->shape.c && p->shape.h == 1 &&
             p->shape.w == 1)) {
            map[i] = src;
            dead[i] = true;
        } else if (nd->op == KN_OP_BATCHNORM && single && p->op == KN_OP_CONV &&
                   p->act == KN_ACT_NONE) {
            if ((rc = fold_bn(g, p, nd, e)))
                goto out;
            map[i] = src;
            dead[i] = true;
        } else if (nd->op == KN_OP_BATCHNORM) {
            if ((rc = bn_to_conv(g, i, e)))
                goto out;
        } else if ((nd->op == KN_OP_RELU || nd->op == KN_OP_RELU6) && single &&
                   fusable_act(p)) {
            p->act = nd->op == KN_OP_RELU ? KN_ACT_RELU : KN_ACT_RELU6;
            map[i] = src;
            dead[i] = true;
        }
    }
    /* Pass 2: compact, renumbering inputs. Node inputs already point at
     * surviving old indices; build old->new positions. */
    int *pos = malloc((size_t)n * sizeof *pos);
    if (!pos) {
        rc = kn_err_set(e, KN_NOMEM, "optimize: out of memory");
        goto out;
    }
    int m = 0;
    for (int i = 0; i < n; i++) {
        if (dead[i]) {
            pos[i] = -1;
            continue;
        }
        pos[i] = m;
        kn_nn_node nd = g->nodes[i];
        for (int k = 0; k < nd.n_in; k++)
            nd.in[k] = pos[nd.in[k]];
        g->nodes[m++] = nd;
    }
    /* The graph's output is its last node; if the last was folded away, the
     * node it folded into is now last, since folds only merge into earlier
     * nodes that had a single use. */
    g->n = m;
    free(pos);
    /* Drop the batch-norm parameters that folding consumed. */
    if (prune_params(g)) {
        rc = kn_err_set(e, KN_NOMEM, "optimize: out of memory");
        goto out;
    }
out:
    free(map);
    free(dead);
    return rc;
}

kn_status kn_nn_graph_optimize(const kn_nn_graph *g, kn_nn_graph **out, kn_err *e)
{
    kn_nn_graph *c = NULL;
    kn_status rc = clone(g, &c, e);
    if (rc)
        return rc;
    if ((rc = kn_nn_graph_optimize_inplace(c, e))) {
        kn_nn_graph_free(c);
        return rc;
    }
    *out = c;
    return KN_OK;
}

/* ---- listing ------------------------------------------------------------ */

static const char *act_name(kn_nn_act a)
{
    return a == KN_ACT_RELU ? "+relu" : a == KN_ACT_RELU6 ? "+relu6" : "";
}

kn_status kn_nn_graph_dump(const kn_nn_graph *g, kn_buf *b)
{
    kn_status rc = KN_OK;
    for (int i = 0; i < g->n && !rc; i++) {
        const kn_nn_node *nd = &g->nodes[i];
        rc = kn_buf_appendf(b, "%4d %-16s%-7s %-28s", i, kn_nn_op_name(nd->op), act_name(nd->act),
                            nd->name);
        if (!rc && nd->n_in)
            rc = kn_buf_appendf(b, " in=%d%s", nd->in[0], nd->n_in > 1 ? "," : "");
        if (!rc && nd->n_in > 1)
            rc = kn_buf_appendf(b, "%d", nd->in[1]);
        if (!rc && (nd->op == KN_OP_CONV || nd->op == KN_OP_MAXPOOL || nd->op == KN_OP_AVGPOOL))
            rc = kn_buf_appendf(b, " k=%dx%d s=%d,%d p=%d,%d,%d,%d%s", nd->win.kh, nd->win.kw,
                                nd->win.sh, nd->win.sw, nd->win.pt, nd->win.pl, nd->win.pb,
                                nd->win.pr, nd->win.dh > 1 || nd->win.dw > 1 ? " dilated" : "");
        if (!rc && nd->op == KN_OP_CONV && nd->groups > 1)
            rc = kn_buf_appendf(b, " groups=%d", nd->groups);
        if (!rc)
            rc = kn_buf_appendf(b, " -> %dx%dx%d\n", nd->shape.c, nd->shape.h, nd->shape.w);
    }
    return rc;
}

/* ---- initialisation ----------------------------------------------------- */

static void fill_uniform(kn_rng *r, float *p, size_t n, double bound)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (float)((kn_rng_uniform(r) * 2.0 - 1.0) * bound);
}

void kn_nn_graph_init_params(kn_nn_graph *g, uint64_t seed, bool all)
{
    kn_rng r;
    kn_rng_seed(&r, seed);
    for (int i = 0; i < g->n; i++) {
        const kn_nn_node *nd = &g->nodes[i];
        if (nd->op == KN_OP_CONV || nd->op == KN_OP_LINEAR) {
            kn_nn_param *w = &g->params[nd->w];
            size_t fan_in = w->numel / (size_t)w->dims[0];
            double bound = 1.0 / sqrt((double)fan_in);
            if (all || !w->loaded) {
                fill_uniform(&r, w->data, w->numel, bound);
                w->loaded = true;
            }
            if (nd->b >= 0 && (all || !g->params[nd->b].loaded)) {
                fill_uniform(&r, g->params[nd->b].data, g->params[nd->b].numel, bound);
                g->params[nd->b].loaded = true;
            }
        } else if (nd->op == KN_OP_BATCHNORM) {
            int ids[4] = {nd->bn_mean, nd->bn_var, nd->bn_gamma, nd->bn_beta};
            float val[4] = {0, 1, 1, 0};
            for (int k = 0; k < 4; k++) {
                kn_nn_param *p = &g->params[ids[k]];
                if (!all && p->loaded)
                    continue;
                for (size_t j = 0; j < p->numel; j++)
                    p->data[j] = val[k];
                p->loaded = true;
            }
        }
    }
}

void kn_nn_graph_randomize_bn(kn_nn_graph *g, uint64_t seed)
{
    kn_rng r;
    kn_rng_seed(&r, seed);
    for (int i = 0; i < g->n; i++) {
        const kn_nn_node *nd = &g->nodes[i];
        if (nd->op != KN_OP_BATCHNORM)
            continue;
        size_t c = g->params[nd->bn_mean].numel;
        for (size_t j = 0; j < c; j++) {
            g->params[nd->bn_mean].data[j] = (float)(kn_rng_uniform(&r) * 0.2 - 0.1);
            g->params[nd->bn_var].data[j] = (float)(0.5 + kn_rng_uniform(&r));
            g->params[nd->bn_gamma].data[j] = (float)(0.5 + kn_rng_uniform(&r));
            g->params[nd->bn_beta].data[j] = (float)(kn_rng_uniform(&r) * 0.2 - 0.1);
        }
    }
}

/* ---- safetensors binding ------------------------------------------------ */

static void shape_str(char *buf, size_t n, int ndim, const int64_t *dims)
{
    size_t off = 0;
    off += (size_t)snprintf(buf + off, n - off, "[");
    for (int i = 0; i < ndim && off < n; i++)
        off += (size_t)snprintf(buf + off, n - off, "%s%lld", i ? ", " : "", (long long)dims[i]);
    if (off < n)
        snprintf(buf + off, n - off, "]");
}

kn_status kn_nn_graph_load_st(kn_nn_graph *g, const kn_st_file *f, const char *prefix,
                              bool allow_missing, kn_err *e)
{
    for (int i = 0; i < g->np; i++) {
        kn_nn_param *p = &g->params[i];
        char name[256];
        snprintf(name, sizeof name, "%s%s", prefix ? prefix : "", p->name);
        const kn_st_tensor *t = kn_st_find(f, name);
        if (!t) {
            /* batch norm's num_batches_tracked is never needed; other
             * absences are errors unless the caller allows them */
            if (allow_missing)
                continue;
            return kn_err_set(e, KN_NOT_FOUND, "tensor %s is missing from the weights file",
                              name);
        }
        bool same = t->ndim == p->ndim;
        for (int k = 0; same && k < p->ndim; k++)
            same = t->dims[k] == p->dims[k];
        if (!same) {
            char want[96], got[96];
            shape_str(want, sizeof want, p->ndim, p->dims);
            shape_str(got, sizeof got, t->ndim, t->dims);
            return kn_err_set(e, KN_SHAPE, "tensor %s has shape %s, expected %s", name, got,
                              want);
        }
        kn_status rc = kn_st_to_f32(t, p->data, p->numel, e);
        if (rc)
            return kn_err_prefix(e, "tensor %s", name);
        p->loaded = true;
    }
    return KN_OK;
}

kn_status kn_nn_graph_save_st(const kn_nn_graph *g, const char *path, kn_err *e)
{
    const kn_nn_param **list = malloc((size_t)(g->np ? g->np : 1) * sizeof *list);
    if (!list)
        return kn_err_set(e, KN_NOMEM, "out of memory");
    for (int i = 0; i < g->np; i++)
        list[i] = &g->params[i];
    kn_status rc = kn_st_write(path, list, g->np, e);
    free(list);
    return rc;
}

/* ---- splitting ---------------------------------------------------------- */

kn_status kn_nn_graph_split(const kn_nn_graph *g, int cut, kn_nn_graph **prefix,
                            kn_nn_graph **tail, kn_err *e)
{
    if (prefix)
        *prefix = NULL;
    if (tail)
        *tail = NULL;
    if (!g->finalized || cut < 0 || cut >= g->n)
        return kn_err_set(e, KN_INVALID, "split: node %d is not in the graph", cut);
    for (int j = cut + 1; j < g->n; j++)
        for (int k = 0; k < g->nodes[j].n_in; k++)
            if (g->nodes[j].in[k] < cut)
                return kn_err_set(e, KN_INVALID,
                                  "split: node %d (%s) reads node %d across the cut at %d", j,
                                  kn_nn_op_name(g->nodes[j].op), g->nodes[j].in[k], cut);
    kn_status rc = KN_OK;
    kn_nn_graph *pre = NULL, *t = NULL;
    if (prefix) {
        if ((rc = clone(g, &pre, e)))
            goto out;
        pre->n = cut + 1;
        if (prune_params(pre)) {
            rc = kn_err_set(e, KN_NOMEM, "split: out of memory");
            goto out;
        }
    }
    if (tail) {
        t = kn_nn_graph_new();
        if (!t) {
            rc = kn_err_set(e, KN_NOMEM, "split: out of memory");
            goto out;
        }
        kn_nn_shape s0 = g->nodes[cut].shape;
        kn_nn_input(t, s0.c, s0.h, s0.w);
        for (int j = cut + 1; j < g->n && !t->bad; j++) {
            kn_nn_node nd = g->nodes[j];
            for (int k = 0; k < nd.n_in; k++)
                nd.in[k] -= cut;
            int *ids[6] = {&nd.w, &nd.b, &nd.bn_mean, &nd.bn_var, &nd.bn_gamma, &nd.bn_beta};
            for (int k = 0; k < 6 && !t->bad; k++) {
                if (*ids[k] < 0)
                    continue;
                const kn_nn_param *src = &g->params[*ids[k]];
                int pi = kn_nn_param_add(t, src->name, src->ndim, src->dims);
                if (pi >= 0) {
                    memcpy(t->params[pi].data, src->data, src->numel * sizeof(float));
                    t->params[pi].loaded = src->loaded;
                }
                *ids[k] = pi;
            }
            kn_nn_node *slot = push(t, nd.op, NULL, nd.in[0], nd.in[1]);
            if (slot)
                *slot = nd;
        }
        if ((rc = kn_nn_graph_finalize(t, e)))
            goto out;
    }
out:
    if (rc) {
        kn_nn_graph_free(pre);
        kn_nn_graph_free(t);
        return rc;
    }
    if (prefix)
        *prefix = pre;
    if (tail)
        *tail = t;
    return KN_OK;
}

kn_status kn_nn_graph_head_cut(const kn_nn_graph *g, int *cut, kn_err *e)
{
    for (int i = 1; i < g->n; i++) {
        if (g->nodes[i].op != KN_OP_LINEAR)
            continue;
        int c = g->nodes[i].in[0];
        while (c > 0 && (g->nodes[c].op == KN_OP_DROPOUT || g->nodes[c].op == KN_OP_FLATTEN))
            c = g->nodes[c].in[0];
        *cut = c;
        return KN_OK;
    }
    for (int i = g->n - 1; i > 0; i--)
        if ((g->nodes[i].op == KN_OP_GAP || g->nodes[i].op == KN_OP_AVGPOOL) &&
            g->nodes[i].shape.h == 1 && g->nodes[i].shape.w == 1) {
            *cut = i;
            return KN_OK;
        }
    return kn_err_set(e, KN_UNSUPPORTED,
                      "the network has no linear layer or global pool to put a new head on");
}

kn_status kn_nn_graph_stage_cut(const kn_nn_graph *g, const char *arch, int n, int *cut,
                                kn_err *e)
{
    if (n == 0)
        return kn_nn_graph_head_cut(g, cut, e);
    char prefix[64];
    int stages;
    if (strncmp(arch, "resnet", 6) == 0) {
        stages = 4;
        if (n < 0 || n > stages)
            return kn_err_set(e, KN_INVALID, "finetune: %s has %d stages; %d asked", arch,
                              stages, n);
        snprintf(prefix, sizeof prefix, "layer%d.0.", stages + 1 - n);
    } else if (strcmp(arch, "mobilenet_v2") == 0) {
        stages = 18;
        if (n < 0 || n > stages)
            return kn_err_set(e, KN_INVALID, "finetune: %s has %d stages; %d asked", arch,
                              stages, n);
        snprintf(prefix, sizeof prefix, "features.%d.", stages + 1 - n);
    } else {
        return kn_err_set(e, KN_UNSUPPORTED, "finetune: stages of '%s' are not known", arch);
    }
    for (int i = 1; i < g->n; i++)
        if (strncmp(g->nodes[i].name, prefix, strlen(prefix)) == 0) {
            *cut = g->nodes[i].in[0];
            return KN_OK;
        }
    return kn_err_set(e, KN_INVALID, "finetune: no node named %s* in the graph", prefix);
}
