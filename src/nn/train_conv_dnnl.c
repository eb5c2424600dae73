/* The fast path of training-mode conv, batch norm and pooling: oneDNN 2.6
 * forward-training and backward primitives (convolution backward data and
 * weights with bias, batch normalization with scale and shift, pooling_v2
 * with a workspace for max).
 *
 * With this backend the trainer keeps every value channels-last (NHWC, see
 * train.c), and convs, batch norm and pooling run on it directly: no
 * activation is reordered. (Letting oneDNN choose blocked activation layouts
 * for convs, KN_TRAIN_CONV_ANY, or running batch norm blocked,
 * KN_TRAIN_BN_BLOCKED, costs more in the reorders around each op than the
 * blocked kernels save: resnet50 full fine-tuning at batch 16 took 6-15 %
 * more CPU time per step either way here.) Weights are reordered from the
 * graph (PyTorch layout) at every forward and backward, since an optimiser
 * updates them in place between steps.
 *
 * Primitives are created once per (node, batch size) on first use and kept
 * in t->conv_ctx; working memory (layout temporaries, one user-mode
 * scratchpad) is shared by all nodes and grows to the largest need, so a step
 * allocates nothing once every batch size has been seen. Max-pool workspaces
 * live with their node (written by forward, read by backward).
 *
 * Gradients follow the trainer's contract (nn_int.h): the first op to
 * write a value's gradient in a pass has oneDNN write it directly; later
 * ones go through a temporary and are added (a reorder with a sum post-op,
 * or a loop when layouts agree).
 *
 * Not thread-safe (one trainer, one thread); oneDNN parallelises with OpenMP.
 */
#include "nn_int.h"

#include <oneapi/dnnl/dnnl.h>
#include <stdlib.h>
#include <string.h>

/* Activation layout of convs: oneDNN's choice (1) or the trainer's (0). */
#ifndef KN_TRAIN_CONV_ANY
#define KN_TRAIN_CONV_ANY 0
#endif
/* Batch norm in the blocked layout (1) or the trainer's (0). */
#ifndef KN_TRAIN_BN_BLOCKED
#define KN_TRAIN_BN_BLOCKED 0
#endif

/* The trainer's layout of values (train.c). */
static dnnl_format_tag_t user_tag(const kn_nn_trainer *t)
{
    return t->nhwc ? dnnl_nhwc : dnnl_nchw;
}

/* Shared temporaries, one role each so no op uses one buffer twice. */
enum { T_SRC, T_DST, T_DD2, T_DSRC, T_W, T_DW, T_SMALL, NTMP };

#define MAX_ARGS 10

/* Primitives of one node at one batch size. */
typedef struct entry {
    struct entry *next;
    int n;
    bool single;                    /* the input is read by this node only */
    /* user (NCHW / PyTorch) descriptors */
    dnnl_memory_desc_t x_md, y_md, w_plain, b_md;
    /* conv */
    dnnl_primitive_t fwd, bwd_d, bwd_w;
    dnnl_memory_desc_t src_md, w_md, dst_md;         /* forward */
    dnnl_memory_desc_t bd_dd_md, bd_w_md, bd_ds_md;  /* backward data */
    dnnl_memory_desc_t bw_src_md, bw_dd_md, bw_dw_md; /* backward weights */
    dnnl_primitive_t r_src, r_w, r_dst, r_dd, r_wbd, r_ds, r_bwsrc, r_bwdd, r_dw;
    /* batch norm: training (batch statistics) and eval (running ones) */
    dnnl_primitive_t bn_fwd[2], bn_bwd[2];
    /* pooling */
    dnnl_primitive_t pool_fwd, pool_bwd;
    dnnl_memory_desc_t ws_md;
    void *ws;
} entry;

typedef struct dn_ctx {
    dnnl_engine_t eng;
    dnnl_stream_t stream;
    entry **node;                   /* per graph node */
    int nnodes;
    void *tmp[NTMP];
    size_t tmp_size[NTMP], tmp_need[NTMP];
    void *scratch;
    size_t scratch_size, scratch_need;
    dnnl_memory_t scratch_mem;
} dn_ctx;

#define DN(call_expr, what)                                                                   \
    do {                                                                                      \
        dnnl_status_t _s = (call_expr);                                                       \
        if (_s != dnnl_success) {                                                             \
            rc = kn_err_set(e, _s == dnnl_out_of_memory ? KN_NOMEM : KN_BACKEND,              \
                            "oneDNN training: %s failed (status %d) at node %d (%s)", what,   \
                            (int)_s, node, t->g->nodes[node].name);                           \
            goto out;                                                                         \
        }                                                                                     \
    } while (0)

/* ---- context and working memory ----------------------------------------- */

static void entry_free(entry *en)
{
    dnnl_primitive_t *prims[] = {&en->fwd,       &en->bwd_d,     &en->bwd_w,     &en->r_src,
                                 &en->r_w,       &en->r_dst,     &en->r_dd,      &en->r_wbd,
                                 &en->r_ds,      &en->r_bwsrc,   &en->r_bwdd,    &en->r_dw,
                                 &en->bn_fwd[0], &en->bn_fwd[1], &en->bn_bwd[0], &en->bn_bwd[1],
                                 &en->pool_fwd,  &en->pool_bwd};
    for (size_t k = 0; k < sizeof prims / sizeof *prims; k++)
        if (*prims[k])
            dnnl_primitive_destroy(*prims[k]);
    kn_free_aligned(en->ws);
    free(en);
}

void kn__train_dnnl_free(kn_nn_trainer *t)
{
    dn_ctx *c = t->conv_ctx;
    if (!c)
        return;
    for (int i = 0; i < c->nnodes; i++)
        while (c->node[i]) {
            entry *nx = c->node[i]->next;
            entry_free(c->node[i]);
            c->node[i] = nx;
        }
    free(c->node);
    for (int k = 0; k < NTMP; k++)
        kn_free_aligned(c->tmp[k]);
    if (c->scratch_mem)
        dnnl_memory_destroy(c->scratch_mem);
    kn_free_aligned(c->scratch);
    if (c->stream)
        dnnl_stream_destroy(c->stream);
    if (c->eng)
        dnnl_engine_destroy(c->eng);
    free(c);
    t->conv_ctx = NULL;
}

static kn_status ctx_get(kn_nn_trainer *t, dn_ctx **out, kn_err *e)
{
    if (t->conv_ctx) {
        *out = t->conv_ctx;
        return KN_OK;
    }
    kn_status rc = KN_OK;
    int node = 0;
    dn_ctx *c = calloc(1, sizeof *c);
    if (!c)
        return kn_err_set(e, KN_NOMEM, "oneDNN training: out of memory");
    t->conv_ctx = c;
    c->nnodes = t->g->n;
    c->node = calloc((size_t)c->nnodes, sizeof *c->node);
    if (!c->node) {
        rc = kn_err_set(e, KN_NOMEM, "oneDNN training: out of memory");
        goto out;
    }
    DN(dnnl_engine_create(&c->eng, dnnl_cpu, 0), "engine");
    DN(dnnl_stream_create(&c->stream, c->eng, dnnl_stream_default_flags), "stream");
    *out = c;
out:
    if (rc)
        kn__train_dnnl_free(t);
    return rc;
}

static void need_tmp(dn_ctx *c, int k, const dnnl_memory_desc_t *md)
{
    size_t sz = dnnl_memory_desc_get_size(md);
    if (sz > c->tmp_need[k])
        c->tmp_need[k] = sz;
}

static void need_scratch(dn_ctx *c, const_dnnl_primitive_desc_t pd)
{
    const dnnl_memory_desc_t *sp = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    size_t sz = sp ? dnnl_memory_desc_get_size(sp) : 0;
    if (sz > c->scratch_need)
        c->scratch_need = sz;
}

/* Grows temporaries and the scratchpad to what the entries created so far
 * need. Contents do not survive: called between ops only. */
static kn_status grow(kn_nn_trainer *t, dn_ctx *c, int node, kn_err *e)
{
    kn_status rc = KN_OK;
    for (int k = 0; k < NTMP; k++) {
        if (c->tmp_need[k] <= c->tmp_size[k])
            continue;
        kn_free_aligned(c->tmp[k]);
        c->tmp[k] = kn_alloc_aligned(c->tmp_need[k]);
        c->tmp_size[k] = c->tmp[k] ? c->tmp_need[k] : 0;
        if (!c->tmp[k])
            return kn_err_set(e, KN_NOMEM, "oneDNN training: cannot allocate %zu bytes",
                              c->tmp_need[k]);
    }
    if (c->scratch_mem && c->scratch_need <= c->scratch_size)
        return KN_OK;
    if (c->scratch_mem)
        dnnl_memory_destroy(c->scratch_mem);
    c->scratch_mem = NULL;
    kn_free_aligned(c->scratch);
    size_t sz = c->scratch_need > 64 ? c->scratch_need : 64;
    c->scratch = kn_alloc_aligned(sz);
    c->scratch_size = c->scratch ? sz : 0;
    if (!c->scratch)
        return kn_err_set(e, KN_NOMEM, "oneDNN training: cannot allocate %zu bytes of scratchpad",
                          sz);
    dnnl_memory_desc_t md;
    dnnl_dims_t dims = {(dnnl_dim_t)sz};
    dnnl_memory_desc_init_by_tag(&md, 1, dims, dnnl_u8, dnnl_x);
    DN(dnnl_memory_create(&c->scratch_mem, &md, c->eng, c->scratch), "scratchpad memory");
out:
    return rc;
}

static kn_status attr_new(dnnl_primitive_attr_t *attr, kn_nn_act act, bool sum,
                          kn_nn_trainer *t, int node, kn_err *e)
{
    kn_status rc = KN_OK;
    dnnl_post_ops_t po = NULL;
    *attr = NULL;
    DN(dnnl_primitive_attr_create(attr), "attr create");
    DN(dnnl_primitive_attr_set_scratchpad_mode(*attr, dnnl_scratchpad_mode_user), "scratchpad");
    if (act == KN_ACT_NONE && !sum)
        goto out;
    DN(dnnl_post_ops_create(&po), "post-ops create");
    if (sum)
        DN(dnnl_post_ops_append_sum(po, 1.0f), "sum post-op");
    if (act == KN_ACT_RELU)
        DN(dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_relu, 0.0f, 0.0f), "relu post-op");
    if (act == KN_ACT_RELU6)
        DN(dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_clip, 0.0f, 6.0f), "relu6 post-op");
    DN(dnnl_primitive_attr_set_post_ops(*attr, po), "set post-ops");
out:
    if (po)
        dnnl_post_ops_destroy(po);
    if (rc && *attr) {
        dnnl_primitive_attr_destroy(*attr);
        *attr = NULL;
    }
    return rc;
}

/* Creates the primitive of pd (accounting its scratchpad) and frees pd. */
static kn_status prim_take(dn_ctx *c, dnnl_primitive_desc_t pd, dnnl_primitive_t *prim,
                           kn_nn_trainer *t, int node, kn_err *e)
{
    kn_status rc = KN_OK;
    need_scratch(c, pd);
    DN(dnnl_primitive_create(prim, pd), "primitive create");
out:
    dnnl_primitive_desc_destroy(pd);
    return rc;
}

/* A reorder from -> to; with sum it adds into the destination. No primitive
 * (NULL) when the layouts agree and nothing is added: bind the buffer. */
static kn_status reorder_new(dn_ctx *c, const dnnl_memory_desc_t *from,
                             const dnnl_memory_desc_t *to, bool sum, dnnl_primitive_t *out,
                             kn_nn_trainer *t, int node, kn_err *e)
{
    *out = NULL;
    if (!sum && dnnl_memory_desc_equal(from, to))
        return KN_OK;
    kn_status rc;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_primitive_desc_t pd = NULL;
    if ((rc = attr_new(&attr, KN_ACT_NONE, sum, t, node, e)))
        return rc;
    DN(dnnl_reorder_primitive_desc_create(&pd, from, c->eng, to, c->eng, attr), "reorder");
    rc = prim_take(c, pd, out, t, node, e);
out:
    dnnl_primitive_attr_destroy(attr);
    return rc;
}

/* ---- execution ----------------------------------------------------------- */

typedef struct args {
    int n;
    dnnl_exec_arg_t a[MAX_ARGS];
} args;

static kn_status arg(dn_ctx *c, args *A, int kind, const dnnl_memory_desc_t *md, const void *ptr,
                     kn_nn_trainer *t, int node, kn_err *e)
{
    kn_status rc = KN_OK;
    dnnl_memory_t m = NULL;
    DN(dnnl_memory_create(&m, md, c->eng, (void *)ptr), "memory");
    A->a[A->n].arg = kind;
    A->a[A->n].memory = m;
    A->n++;
out:
    return rc;
}

/* Runs prim with A plus the scratchpad; releases A's memories. */
static kn_status run(dn_ctx *c, dnnl_primitive_t prim, args *A, kn_nn_trainer *t, int node,
                     kn_err *e)
{
    kn_status rc = KN_OK;
    A->a[A->n].arg = DNNL_ARG_SCRATCHPAD;
    A->a[A->n].memory = c->scratch_mem;
    DN(dnnl_primitive_execute(prim, c->stream, A->n + 1, A->a), "execute");
    DN(dnnl_stream_wait(c->stream), "stream wait");
out:
    for (int k = 0; k < A->n; k++)
        dnnl_memory_destroy(A->a[k].memory);
    A->n = 0;
    return rc;
}

/* dst (to) = src (from) through reorder r, or a copy when r is NULL. */
static kn_status move(dn_ctx *c, dnnl_primitive_t r, const dnnl_memory_desc_t *from,
                      const void *src, const dnnl_memory_desc_t *to, void *dst,
                      kn_nn_trainer *t, int node, kn_err *e)
{
    if (!r) {
        if (src != dst)
            memcpy(dst, src, dnnl_memory_desc_get_size(to));
        return KN_OK;
    }
    args A = {0};
    kn_status rc;
    if ((rc = arg(c, &A, DNNL_ARG_FROM, from, src, t, node, e)) ||
        (rc = arg(c, &A, DNNL_ARG_TO, to, dst, t, node, e))) {
        for (int k = 0; k < A.n; k++)
            dnnl_memory_destroy(A.a[k].memory);
        return rc;
    }
    return run(c, r, &A, t, node, e);
}

static void add_into(float *restrict dst, const float *restrict src, size_t count)
{
#pragma omp parallel for simd schedule(static) if (count >= 32768)
    for (size_t k = 0; k < count; k++)
        dst[k] += src[k];
}

static entry *entry_find(dn_ctx *c, int i, int n)
{
    for (entry *en = c->node[i]; en; en = en->next)
        if (en->n == n)
            return en;
    return NULL;
}

static int readers(const kn_nn_graph *g, int v)
{
    return kn__nn_use_count(g, v);
}

static void md4(dnnl_memory_desc_t *md, int n, kn_nn_shape s, dnnl_format_tag_t tag)
{
    dnnl_dims_t d = {n, s.c, s.h, s.w};
    dnnl_memory_desc_init_by_tag(md, 4, d, dnnl_f32, tag);
}

static void md1(dnnl_memory_desc_t *md, int c)
{
    dnnl_dims_t d = {c};
    dnnl_memory_desc_init_by_tag(md, 1, d, dnnl_f32, dnnl_x);
}

/* ---- conv ---------------------------------------------------------------- */

static kn_status conv_entry(kn_nn_trainer *t, dn_ctx *c, int i, entry **out, kn_err *e)
{
    const kn_nn_node *nd = &t->g->nodes[i];
    const kn_nn_node *src = &t->g->nodes[nd->in[0]];
    int node = i, n = t->n, G = nd->groups;
    kn_status rc = KN_OK;
    dnnl_primitive_attr_t attr = NULL, attr_b = NULL;
    dnnl_primitive_desc_t fpd = NULL, pd = NULL;
    entry *en = calloc(1, sizeof *en);
    if (!en)
        return kn_err_set(e, KN_NOMEM, "oneDNN training: out of memory");
    en->n = n;
    en->single = readers(t->g, nd->in[0]) == 1;
    md4(&en->x_md, n, src->shape, user_tag(t));
    md4(&en->y_md, n, nd->shape, user_tag(t));
    dnnl_memory_desc_t a_src, a_dst, a_w;
    dnnl_format_tag_t act_tag = KN_TRAIN_CONV_ANY ? dnnl_format_tag_any : user_tag(t);
    md4(&a_src, n, src->shape, act_tag);
    md4(&a_dst, n, nd->shape, act_tag);
    if (G == 1) {
        dnnl_dims_t wd = {nd->out_c, src->shape.c, nd->win.kh, nd->win.kw};
        dnnl_memory_desc_init_by_tag(&a_w, 4, wd, dnnl_f32, dnnl_format_tag_any);
        dnnl_memory_desc_init_by_tag(&en->w_plain, 4, wd, dnnl_f32, dnnl_oihw);
    } else {
        dnnl_dims_t wd = {G, nd->out_c / G, src->shape.c / G, nd->win.kh, nd->win.kw};
        dnnl_memory_desc_init_by_tag(&a_w, 5, wd, dnnl_f32, dnnl_format_tag_any);
        dnnl_memory_desc_init_by_tag(&en->w_plain, 5, wd, dnnl_f32, dnnl_goihw);
    }
    md1(&en->b_md, nd->out_c);
    const dnnl_memory_desc_t *bias = nd->b >= 0 ? &en->b_md : NULL;
    dnnl_dims_t strides = {nd->win.sh, nd->win.sw};
    dnnl_dims_t dil = {nd->win.dh - 1, nd->win.dw - 1};
    dnnl_dims_t pl = {nd->win.pt, nd->win.pl}, pr = {nd->win.pb, nd->win.pr};
    dnnl_convolution_desc_t cd;

    /* forward (training: the backward passes take it as their hint) */
    DN(dnnl_dilated_convolution_forward_desc_init(&cd, dnnl_forward_training,
                                                  dnnl_convolution_direct, &a_src, &a_w, bias,
                                                  &a_dst, strides, dil, pl, pr),
       "convolution forward descriptor");
    if ((rc = attr_new(&attr, nd->act, false, t, node, e)))
        goto out;
    DN(dnnl_primitive_desc_create(&fpd, &cd, attr, c->eng, NULL), "convolution forward");
    en->src_md = *dnnl_primitive_desc_query_md(fpd, dnnl_query_src_md, 0);
    en->w_md = *dnnl_primitive_desc_query_md(fpd, dnnl_query_weights_md, 0);
    en->dst_md = *dnnl_primitive_desc_query_md(fpd, dnnl_query_dst_md, 0);
    need_scratch(c, fpd);
    DN(dnnl_primitive_create(&en->fwd, fpd), "convolution forward primitive");

    /* backward data */
    DN(dnnl_dilated_convolution_backward_data_desc_init(&cd, dnnl_convolution_direct, &a_src,
                                                        &a_w, &a_dst, strides, dil, pl, pr),
       "convolution backward data descriptor");
    if ((rc = attr_new(&attr_b, KN_ACT_NONE, false, t, node, e)))
        goto out;
    DN(dnnl_primitive_desc_create(&pd, &cd, attr_b, c->eng, fpd), "convolution backward data");
    en->bd_dd_md = *dnnl_primitive_desc_query_md(pd, dnnl_query_diff_dst_md, 0);
    en->bd_w_md = *dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    en->bd_ds_md = *dnnl_primitive_desc_query_md(pd, dnnl_query_diff_src_md, 0);
    rc = prim_take(c, pd, &en->bwd_d, t, node, e);
    pd = NULL;
    if (rc)
        goto out;

    /* backward weights (and bias) */
    DN(dnnl_dilated_convolution_backward_weights_desc_init(&cd, dnnl_convolution_direct, &a_src,
                                                           &a_w, bias, &a_dst, strides, dil, pl,
                                                           pr),
       "convolution backward weights descriptor");
    DN(dnnl_primitive_desc_create(&pd, &cd, attr_b, c->eng, fpd), "convolution backward weights");
    en->bw_src_md = *dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0);
    en->bw_dd_md = *dnnl_primitive_desc_query_md(pd, dnnl_query_diff_dst_md, 0);
    en->bw_dw_md = *dnnl_primitive_desc_query_md(pd, dnnl_query_diff_weights_md, 0);
    rc = prim_take(c, pd, &en->bwd_w, t, node, e);
    pd = NULL;
    if (rc)
        goto out;

    /* reorders between the user's layouts and oneDNN's */
    bool acc = !en->single;
    if ((rc = reorder_new(c, &en->x_md, &en->src_md, false, &en->r_src, t, node, e)) ||
        (rc = reorder_new(c, &en->w_plain, &en->w_md, false, &en->r_w, t, node, e)) ||
        (rc = reorder_new(c, &en->dst_md, &en->y_md, false, &en->r_dst, t, node, e)) ||
        (rc = reorder_new(c, &en->y_md, &en->bd_dd_md, false, &en->r_dd, t, node, e)) ||
        (rc = reorder_new(c, &en->w_plain, &en->bd_w_md, false, &en->r_wbd, t, node, e)) ||
        (rc = reorder_new(c, &en->bd_ds_md, &en->x_md,
                          acc && !dnnl_memory_desc_equal(&en->bd_ds_md, &en->x_md), &en->r_ds, t,
                          node, e)) ||
        (rc = reorder_new(c, &en->x_md, &en->bw_src_md, false, &en->r_bwsrc, t, node, e)) ||
        (rc = reorder_new(c, &en->y_md, &en->bw_dd_md, false, &en->r_bwdd, t, node, e)) ||
        (rc = reorder_new(c, &en->bw_dw_md, &en->w_plain,
                          !dnnl_memory_desc_equal(&en->bw_dw_md, &en->w_plain), &en->r_dw, t,
                          node, e)))
        goto out;
    need_tmp(c, T_SRC, &en->src_md);
    need_tmp(c, T_SRC, &en->bw_src_md);
    need_tmp(c, T_DST, &en->dst_md);
    need_tmp(c, T_DST, &en->bd_dd_md);
    need_tmp(c, T_DD2, &en->bw_dd_md);
    need_tmp(c, T_DSRC, &en->bd_ds_md);
    need_tmp(c, T_W, &en->w_md);
    need_tmp(c, T_W, &en->bd_w_md);
    need_tmp(c, T_DW, &en->bw_dw_md);
    need_tmp(c, T_SMALL, &en->b_md);
    if ((rc = grow(t, c, node, e)))
        goto out;
    en->next = c->node[i];
    c->node[i] = en;
    *out = en;
out:
    if (fpd)
        dnnl_primitive_desc_destroy(fpd);
    if (pd)
        dnnl_primitive_desc_destroy(pd);
    if (attr)
        dnnl_primitive_attr_destroy(attr);
    if (attr_b)
        dnnl_primitive_attr_destroy(attr_b);
    if (rc)
        entry_free(en);
    return rc;
}

static kn_status conv_get(kn_nn_trainer *t, int i, dn_ctx **cp, entry **ep, kn_err *e)
{
    kn_status rc = ctx_get(t, cp, e);
    if (rc)
        return rc;
    *ep = entry_find(*cp, i, t->n);
    return *ep ? KN_OK : conv_entry(t, *cp, i, ep, e);
}

kn_status kn__train_dnnl_conv_fwd(kn_nn_trainer *t, int i, kn_err *e)
{
    const kn_nn_node *nd = &t->g->nodes[i];
    dn_ctx *c;
    entry *en;
    int node = i;
    kn_status rc = conv_get(t, i, &c, &en, e);
    if (rc)
        return rc;
    const void *src = t->val[nd->in[0]], *w = t->g->params[nd->w].data;
    if (en->r_src) {
        if ((rc = move(c, en->r_src, &en->x_md, src, &en->src_md, c->tmp[T_SRC], t, node, e)))
            return rc;
        src = c->tmp[T_SRC];
    }
    if (en->r_w) {
        if ((rc = move(c, en->r_w, &en->w_plain, w, &en->w_md, c->tmp[T_W], t, node, e)))
            return rc;
        w = c->tmp[T_W];
    }
    void *dst = en->r_dst ? c->tmp[T_DST] : t->val[i];
    args A = {0};
    if ((rc = arg(c, &A, DNNL_ARG_SRC, &en->src_md, src, t, node, e)) ||
        (rc = arg(c, &A, DNNL_ARG_WEIGHTS, &en->w_md, w, t, node, e)) ||
        (nd->b >= 0 &&
         (rc = arg(c, &A, DNNL_ARG_BIAS, &en->b_md, t->g->params[nd->b].data, t, node, e))) ||
        (rc = arg(c, &A, DNNL_ARG_DST, &en->dst_md, dst, t, node, e)) ||
        (rc = run(c, en->fwd, &A, t, node, e)))
        goto out;
    if (en->r_dst)
        rc = move(c, en->r_dst, &en->dst_md, dst, &en->y_md, t->val[i], t, node, e);
out:
    for (int k = 0; k < A.n; k++)
        dnnl_memory_destroy(A.a[k].memory);
    return rc;
}

kn_status kn__train_dnnl_conv_bwd(kn_nn_trainer *t, int i, kn_err *e)
{
    const kn_nn_node *nd = &t->g->nodes[i];
    dn_ctx *c;
    entry *en;
    int node = i, a = nd->in[0];
    kn_status rc = conv_get(t, i, &c, &en, e);
    if (rc)
        return rc;
    args A = {0};
    /* d(loss)/d(out) in the backward-data layout */
    const void *dd = t->grad[i];
    if (en->r_dd) {
        if ((rc = move(c, en->r_dd, &en->y_md, dd, &en->bd_dd_md, c->tmp[T_DST], t, node, e)))
            goto out;
        dd = c->tmp[T_DST];
    }
    if (t->need_grad[a]) {
        const void *w = t->g->params[nd->w].data;
        if (en->r_wbd) {
            if ((rc = move(c, en->r_wbd, &en->w_plain, w, &en->bd_w_md, c->tmp[T_W], t, node, e)))
                goto out;
            w = c->tmp[T_W];
        }
        /* write straight into the input's gradient when this is its first
         * write of the pass and the layouts agree; otherwise through a
         * temporary, added (into zeros, the first time) */
        bool first = kn__train_grad_first(t, a);
        bool direct = first && dnnl_memory_desc_equal(&en->bd_ds_md, &en->x_md);
        if (first && !direct)
            kn__train_grad_zero(t, a);
        void *ds = direct ? t->grad[a] : c->tmp[T_DSRC];
        if ((rc = arg(c, &A, DNNL_ARG_DIFF_DST, &en->bd_dd_md, dd, t, node, e)) ||
            (rc = arg(c, &A, DNNL_ARG_WEIGHTS, &en->bd_w_md, w, t, node, e)) ||
            (rc = arg(c, &A, DNNL_ARG_DIFF_SRC, &en->bd_ds_md, ds, t, node, e)) ||
            (rc = run(c, en->bwd_d, &A, t, node, e)))
            goto out;
        if (!direct) {
            if (en->r_ds)
                rc = move(c, en->r_ds, &en->bd_ds_md, ds, &en->x_md, t->grad[a], t, node, e);
            else
                add_into(t->grad[a], ds, kn__nn_shape_numel(t->g->nodes[a].shape) * (size_t)t->n);
            if (rc)
                goto out;
        }
    }
    /* weights and bias */
    const void *src = t->val[a], *dd2 = dd;
    if (en->r_bwsrc) {
        if ((rc = move(c, en->r_bwsrc, &en->x_md, src, &en->bw_src_md, c->tmp[T_SRC], t, node,
                       e)))
            goto out;
        src = c->tmp[T_SRC];
    }
    if (!dnnl_memory_desc_equal(&en->bw_dd_md, &en->bd_dd_md)) {
        dd2 = t->grad[i];
        if (en->r_bwdd) {
            if ((rc = move(c, en->r_bwdd, &en->y_md, dd2, &en->bw_dd_md, c->tmp[T_DD2], t, node,
                           e)))
                goto out;
            dd2 = c->tmp[T_DD2];
        }
    }
    float *db = c->tmp[T_SMALL];
    if ((rc = arg(c, &A, DNNL_ARG_SRC, &en->bw_src_md, src, t, node, e)) ||
        (rc = arg(c, &A, DNNL_ARG_DIFF_DST, &en->bw_dd_md, dd2, t, node, e)) ||
        (rc = arg(c, &A, DNNL_ARG_DIFF_WEIGHTS, &en->bw_dw_md, c->tmp[T_DW], t, node, e)) ||
        (nd->b >= 0 && (rc = arg(c, &A, DNNL_ARG_DIFF_BIAS, &en->b_md, db, t, node, e))) ||
        (rc = run(c, en->bwd_w, &A, t, node, e)))
        goto out;
    if (t->pgrad[nd->w]) {
        if (en->r_dw)
            rc = move(c, en->r_dw, &en->bw_dw_md, c->tmp[T_DW], &en->w_plain, t->pgrad[nd->w], t,
                      node, e);
        else
            add_into(t->pgrad[nd->w], c->tmp[T_DW], t->g->params[nd->w].numel);
        if (rc)
            goto out;
    }
    if (nd->b >= 0 && t->pgrad[nd->b])
        add_into(t->pgrad[nd->b], db, (size_t)nd->out_c);
out:
    for (int k = 0; k < A.n; k++)
        dnnl_memory_destroy(A.a[k].memory);
    return rc;
}

/* ---- batch norm ---------------------------------------------------------- */

/* Batch norm runs in the blocked layout (nChw16c) when the channels allow:
 * oneDNN's jit kernel there is 5-15x faster than its plain-layout one
 * (ncsp_bnorm), which far outweighs the reorders in and out (memory-bound,
 * 30+ GB/s). The primitives of both modes share these reorders. */
static kn_status bn_prims(kn_nn_trainer *t, dn_ctx *c, entry *en, int i, bool training,
                          kn_err *e)
{
    const kn_nn_node *nd = &t->g->nodes[i];
    int node = i, m = training ? 0 : 1;
    kn_status rc = KN_OK;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_primitive_desc_t fpd = NULL, pd = NULL;
    unsigned flags = dnnl_use_scale | dnnl_use_shift | (training ? 0u : dnnl_use_global_stats);
    dnnl_batch_normalization_desc_t bd;
    if (!en->bn_fwd[0] && !en->bn_fwd[1]) {
        md4(&en->src_md, en->n, nd->shape,
            (KN_TRAIN_BN_BLOCKED || !t->nhwc) && nd->shape.c % 16 == 0 ? dnnl_nChw16c
                                                                      : user_tag(t));
        bool blocked = !dnnl_memory_desc_equal(&en->src_md, &en->y_md);
        if ((rc = reorder_new(c, &en->x_md, &en->src_md, false, &en->r_src, t, node, e)) ||
            (rc = reorder_new(c, &en->src_md, &en->y_md, false, &en->r_dst, t, node, e)) ||
            (rc = reorder_new(c, &en->src_md, &en->x_md, blocked && !en->single, &en->r_ds, t,
                              node, e)))
            goto out;
        need_tmp(c, T_SRC, &en->src_md);
        need_tmp(c, T_DST, &en->src_md);
        need_tmp(c, T_DSRC, &en->src_md);
        dnnl_memory_desc_t sm;
        md1(&sm, 2 * nd->shape.c);
        need_tmp(c, T_SMALL, &sm);
    }
    if ((rc = attr_new(&attr, KN_ACT_NONE, false, t, node, e)))
        goto out;
    DN(dnnl_batch_normalization_forward_desc_init(&bd, dnnl_forward_training, &en->src_md,
                                                  nd->eps, flags),
       "batch norm forward descriptor");
    DN(dnnl_primitive_desc_create(&fpd, &bd, attr, c->eng, NULL), "batch norm forward");
    need_scratch(c, fpd);
    DN(dnnl_primitive_create(&en->bn_fwd[m], fpd), "batch norm forward primitive");
    DN(dnnl_batch_normalization_backward_desc_init(&bd, dnnl_backward, &en->src_md, &en->src_md,
                                                   nd->eps, flags),
       "batch norm backward descriptor");
    DN(dnnl_primitive_desc_create(&pd, &bd, attr, c->eng, fpd), "batch norm backward");
    rc = prim_take(c, pd, &en->bn_bwd[m], t, node, e);
    pd = NULL;
    if (rc)
        goto out;
    rc = grow(t, c, node, e);
out:
    if (fpd)
        dnnl_primitive_desc_destroy(fpd);
    if (pd)
        dnnl_primitive_desc_destroy(pd);
    if (attr)
        dnnl_primitive_attr_destroy(attr);
    return rc;
}

static kn_status simple_get(kn_nn_trainer *t, int i, dn_ctx **cp, entry **ep, kn_err *e)
{
    kn_status rc = ctx_get(t, cp, e);
    if (rc)
        return rc;
    if ((*ep = entry_find(*cp, i, t->n)))
        return KN_OK;
    entry *en = calloc(1, sizeof *en);
    if (!en)
        return kn_err_set(e, KN_NOMEM, "oneDNN training: out of memory");
    const kn_nn_node *nd = &t->g->nodes[i];
    en->n = t->n;
    en->single = readers(t->g, nd->in[0]) == 1;
    md4(&en->x_md, t->n, t->g->nodes[nd->in[0]].shape, user_tag(t));
    md4(&en->y_md, t->n, nd->shape, user_tag(t));
    en->next = (*cp)->node[i];
    (*cp)->node[i] = en;
    *ep = en;
    return KN_OK;
}

kn_status kn__train_dnnl_bn_fwd(kn_nn_trainer *t, int i, float *mean, float *var, kn_err *e)
{
    const kn_nn_node *nd = &t->g->nodes[i];
    dn_ctx *c;
    entry *en;
    int node = i, m = t->training ? 0 : 1;
    kn_status rc = simple_get(t, i, &c, &en, e);
    if (rc)
        return rc;
    if (!en->bn_fwd[m] && (rc = bn_prims(t, c, en, i, t->training, e)))
        return rc;
    const kn_nn_graph *g = t->g;
    const void *src = t->val[nd->in[0]];
    void *dst = en->r_dst ? c->tmp[T_DST] : t->val[i];
    if (en->r_src) {
        if ((rc = move(c, en->r_src, &en->x_md, src, &en->src_md, c->tmp[T_SRC], t, node, e)))
            return rc;
        src = c->tmp[T_SRC];
    }
    args A = {0};
    dnnl_memory_desc_t cmd;
    md1(&cmd, nd->shape.c);
    if ((rc = arg(c, &A, DNNL_ARG_SRC, &en->src_md, src, t, node, e)) ||
        (rc = arg(c, &A, DNNL_ARG_DST, &en->src_md, dst, t, node, e)) ||
        (rc = arg(c, &A, DNNL_ARG_SCALE, &cmd, g->params[nd->bn_gamma].data, t, node, e)) ||
        (rc = arg(c, &A, DNNL_ARG_SHIFT, &cmd, g->params[nd->bn_beta].data, t, node, e)) ||
        (rc = arg(c, &A, DNNL_ARG_MEAN, &cmd, mean, t, node, e)) ||
        (rc = arg(c, &A, DNNL_ARG_VARIANCE, &cmd, var, t, node, e)))
        goto out;
    if ((rc = run(c, en->bn_fwd[m], &A, t, node, e)))
        goto out;
    if (en->r_dst)
        rc = move(c, en->r_dst, &en->src_md, dst, &en->y_md, t->val[i], t, node, e);
out:
    for (int k = 0; k < A.n; k++)
        dnnl_memory_destroy(A.a[k].memory);
    return rc;
}

kn_status kn__train_dnnl_bn_bwd(kn_nn_trainer *t, int i, const float *mean, const float *var,
                                kn_err *e)
{
    const kn_nn_node *nd = &t->g->nodes[i];
    dn_ctx *c;
    entry *en;
    int node = i, m = t->training ? 0 : 1, a = nd->in[0], C = nd->shape.c;
    kn_status rc = simple_get(t, i, &c, &en, e);
    if (rc)
        return rc;
    if (!en->bn_bwd[m] && (rc = bn_prims(t, c, en, i, t->training, e)))
        return rc;
    const kn_nn_graph *g = t->g;
    const void *src = t->val[a], *dd = t->grad[i];
    if (en->r_src) {
        if ((rc = move(c, en->r_src, &en->x_md, src, &en->src_md, c->tmp[T_SRC], t, node, e)) ||
            (rc = move(c, en->r_src, &en->y_md, dd, &en->src_md, c->tmp[T_DST], t, node, e)))
            return rc;
        src = c->tmp[T_SRC];
        dd = c->tmp[T_DST];
    }
    /* the input's gradient: written in place on its first write of the
     * pass when no reorder is needed, else through a temporary (reordered,
     * or added; into zeros the first time) */
    bool first = t->need_grad[a] && kn__train_grad_first(t, a);
    bool direct = first && !en->r_src;
    if (first && !direct)
        kn__train_grad_zero(t, a);
    void *ds = direct ? t->grad[a] : c->tmp[T_DSRC];
    float *dsc = c->tmp[T_SMALL], *dsh = dsc + C;
    args A = {0};
    dnnl_memory_desc_t cmd;
    md1(&cmd, C);
    if ((rc = arg(c, &A, DNNL_ARG_SRC, &en->src_md, src, t, node, e)) ||
        (rc = arg(c, &A, DNNL_ARG_MEAN, &cmd, mean, t, node, e)) ||
        (rc = arg(c, &A, DNNL_ARG_VARIANCE, &cmd, var, t, node, e)) ||
        (rc = arg(c, &A, DNNL_ARG_DIFF_DST, &en->src_md, dd, t, node, e)) ||
        (rc = arg(c, &A, DNNL_ARG_SCALE, &cmd, g->params[nd->bn_gamma].data, t, node, e)) ||
        (rc = arg(c, &A, DNNL_ARG_SHIFT, &cmd, g->params[nd->bn_beta].data, t, node, e)) ||
        (rc = arg(c, &A, DNNL_ARG_DIFF_SRC, &en->src_md, ds, t, node, e)) ||
        (rc = arg(c, &A, DNNL_ARG_DIFF_SCALE, &cmd, dsc, t, node, e)) ||
        (rc = arg(c, &A, DNNL_ARG_DIFF_SHIFT, &cmd, dsh, t, node, e)))
        goto out;
    if ((rc = run(c, en->bn_bwd[m], &A, t, node, e)))
        goto out;
    if (t->need_grad[a] && !direct) {
        if (en->r_ds)
            rc = move(c, en->r_ds, &en->src_md, ds, &en->x_md, t->grad[a], t, node, e);
        else
            add_into(t->grad[a], ds, kn__nn_shape_numel(nd->shape) * (size_t)t->n);
        if (rc)
            goto out;
    }
    if (t->pgrad[nd->bn_gamma])
        add_into(t->pgrad[nd->bn_gamma], dsc, (size_t)C);
    if (t->pgrad[nd->bn_beta])
        add_into(t->pgrad[nd->bn_beta], dsh, (size_t)C);
out:
    for (int k = 0; k < A.n; k++)
        dnnl_memory_destroy(A.a[k].memory);
    return rc;
}

/* ---- pooling ------------------------------------------------------------- */

static kn_status pool_prims(kn_nn_trainer *t, dn_ctx *c, entry *en, int i, kn_err *e)
{
    const kn_nn_node *nd = &t->g->nodes[i];
    int node = i;
    kn_status rc = KN_OK;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_primitive_desc_t fpd = NULL, pd = NULL;
    const kn_nn_window *w = &nd->win;
    dnnl_dims_t st = {w->sh, w->sw}, k = {w->kh, w->kw}, dl = {w->dh - 1, w->dw - 1};
    dnnl_dims_t pl = {w->pt, w->pl}, pr = {w->pb, w->pr};
    dnnl_alg_kind_t alg = nd->op == KN_OP_MAXPOOL ? dnnl_pooling_max
                          : nd->pool_count_pad    ? dnnl_pooling_avg_include_padding
                                                  : dnnl_pooling_avg_exclude_padding;
    dnnl_pooling_v2_desc_t pdsc;
    if ((rc = attr_new(&attr, KN_ACT_NONE, false, t, node, e)))
        goto out;
    DN(dnnl_pooling_v2_forward_desc_init(&pdsc, dnnl_forward_training, alg, &en->x_md, &en->y_md,
                                         st, k, dl, pl, pr),
       "pooling forward descriptor");
    DN(dnnl_primitive_desc_create(&fpd, &pdsc, attr, c->eng, NULL), "pooling forward");
    const dnnl_memory_desc_t *ws = dnnl_primitive_desc_query_md(fpd, dnnl_query_workspace_md, 0);
    if (ws && dnnl_memory_desc_get_size(ws) > 0) {
        en->ws_md = *ws;
        en->ws = kn_alloc_aligned(dnnl_memory_desc_get_size(ws));
        if (!en->ws) {
            rc = kn_err_set(e, KN_NOMEM, "oneDNN training: out of memory for a workspace");
            goto out;
        }
    }
    need_scratch(c, fpd);
    DN(dnnl_primitive_create(&en->pool_fwd, fpd), "pooling forward primitive");
    DN(dnnl_pooling_v2_backward_desc_init(&pdsc, alg, &en->x_md, &en->y_md, st, k, dl, pl, pr),
       "pooling backward descriptor");
    DN(dnnl_primitive_desc_create(&pd, &pdsc, attr, c->eng, fpd), "pooling backward");
    rc = prim_take(c, pd, &en->pool_bwd, t, node, e);
    pd = NULL;
    if (rc)
        goto out;
    need_tmp(c, T_DSRC, &en->x_md);
    rc = grow(t, c, node, e);
out:
    if (fpd)
        dnnl_primitive_desc_destroy(fpd);
    if (pd)
        dnnl_primitive_desc_destroy(pd);
    if (attr)
        dnnl_primitive_attr_destroy(attr);
    return rc;
}

kn_status kn__train_dnnl_pool_fwd(kn_nn_trainer *t, int i, kn_err *e)
{
    const kn_nn_node *nd = &t->g->nodes[i];
    dn_ctx *c;
    entry *en;
    int node = i;
    kn_status rc = simple_get(t, i, &c, &en, e);
    if (rc)
        return rc;
    if (!en->pool_fwd && (rc = pool_prims(t, c, en, i, e)))
        return rc;
    args A = {0};
    if ((rc = arg(c, &A, DNNL_ARG_SRC, &en->x_md, t->val[nd->in[0]], t, node, e)) ||
        (rc = arg(c, &A, DNNL_ARG_DST, &en->y_md, t->val[i], t, node, e)) ||
        (en->ws && (rc = arg(c, &A, DNNL_ARG_WORKSPACE, &en->ws_md, en->ws, t, node, e))))
        goto out;
    rc = run(c, en->pool_fwd, &A, t, node, e);
out:
    for (int k = 0; k < A.n; k++)
        dnnl_memory_destroy(A.a[k].memory);
    return rc;
}

kn_status kn__train_dnnl_pool_bwd(kn_nn_trainer *t, int i, kn_err *e)
{
    const kn_nn_node *nd = &t->g->nodes[i];
    dn_ctx *c;
    entry *en;
    int node = i, a = nd->in[0];
    kn_status rc = simple_get(t, i, &c, &en, e);
    if (rc)
        return rc;
    if (!en->pool_bwd)
        return kn_err_set(e, KN_INTERNAL, "trainer: pooling %d: backward before forward", i);
    /* pooling backward writes every element of diff_src */
    bool first = kn__train_grad_first(t, a);
    void *ds = first ? t->grad[a] : c->tmp[T_DSRC];
    args A = {0};
    if ((rc = arg(c, &A, DNNL_ARG_DIFF_DST, &en->y_md, t->grad[i], t, node, e)) ||
        (rc = arg(c, &A, DNNL_ARG_DIFF_SRC, &en->x_md, ds, t, node, e)) ||
        (en->ws && (rc = arg(c, &A, DNNL_ARG_WORKSPACE, &en->ws_md, en->ws, t, node, e))))
        goto out;
    if ((rc = run(c, en->pool_bwd, &A, t, node, e)))
        goto out;
    if (!first)
        add_into(t->grad[a], ds, kn__nn_shape_numel(t->g->nodes[a].shape) * (size_t)t->n);
out:
    for (int k = 0; k < A.n; k++)
        dnnl_memory_destroy(A.a[k].memory);
    return rc;
}
