/* The fast backend on oneDNN (C API, CPU engine, OpenMP runtime).
 *
 * At creation the graph is optimised (batch norm folded, activations fused)
 * and, per batch size, turned into a plan: a flat list of primitive calls
 * with every memory object bound to a slot of one activation arena. Layouts
 * are chosen by oneDNN (format_tag_any: nhwc activations, blocked weights,
 * brgconv kernels on AVX-512) and kept between layers; a reorder is inserted
 * only where a consumer wants a different layout. A conv whose only consumer
 * is a residual add gets the add as a `sum` post-op, writing into the other
 * operand's buffer when that operand dies at the add.
 *
 * Weights are reordered once into oneDNN's layout and shared by all plans;
 * the executor keeps no reference to the graph. Working memory (activation
 * slots and one user-mode scratchpad) is allocated when a plan is built, so a
 * run never allocates. Values whose spatial size is 1x1 are kept in plain
 * layout so flatten and linear can view them as 2-D without a copy.
 *
 * kn_nn_exec_share_weights moves the reordered weights into a file mapped
 * read-only and shared (see "the shared weights file" below), so processes
 * serving one model hold one copy of them.
 *
 * Not thread-safe: one executor, one thread at a time.
 */
#include "nn_int.h"

#include <errno.h>
#include <fcntl.h>
#include <oneapi/dnnl/dnnl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_ARGS 6

typedef struct wcache {
    int node;                 /* graph node the weights belong to */
    dnnl_memory_desc_t md;    /* oneDNN layout */
    void *data;
    dnnl_memory_t mem;
    bool shared;              /* data points into the mapped weights file */
} wcache;

/* A value's memory: a slot in the arena plus a descriptor. */
typedef struct value {
    dnnl_memory_desc_t md;
    int slot;                 /* -1: the user's input buffer */
    dnnl_memory_t mem;
} value;

typedef struct call {
    dnnl_primitive_t prim;    /* NULL for a plain memcpy */
    int nargs;
    int arg_kind[MAX_ARGS];
    /* what each argument is bound to: value (>= 0), temp slot, weights, bias,
     * scratchpad */
    enum { B_VALUE, B_TEMP, B_WEIGHTS, B_BIAS, B_SCRATCH, B_OUT } bind[MAX_ARGS];
    int ref[MAX_ARGS];
    dnnl_memory_desc_t temp_md[MAX_ARGS];
    dnnl_memory_t mem[MAX_ARGS];  /* owned when bind is B_TEMP or B_OUT */
    size_t copy_bytes;        /* memcpy call: from arg 0 to arg 1 */
} call;

typedef struct plan {
    int n;                    /* batch size */
    value *vals;              /* per node */
    call *calls;
    int ncalls, capcalls;
    size_t *slot_size;
    void **slot_ptr;
    int nslots, capslots;
    bool *slot_busy;
    dnnl_memory_t out_mem;
    dnnl_memory_desc_t out_md; /* plain layout of the output */
    void *own_arena;          /* the plan's own slots when the shared arena is too small */
} plan;

typedef struct dnnl_impl {
    kn_nn_graph *g;           /* optimised copy when the input needed rewriting */
    const kn_nn_graph *wsrc;  /* plain weights, valid only inside create */
    dnnl_engine_t eng;
    dnnl_stream_t stream;
    wcache *w;
    int nw, capw;
    float **bias;             /* per node, copies of biases (or NULL) */
    int nnodes;
    plan **plans;             /* index = batch size, 1..micro */
    int micro;                /* largest batch run in one pass (see dnnl_run) */
    void *arena;              /* slots of every plan that fits (plans never run at once) */
    size_t arena_size;
    void *scratch;
    size_t scratch_size;
    dnnl_memory_t scratch_mem;
    int *fuse_into;           /* add node -> conv node it is fused into, or -1 */
    int *fused_add;           /* conv node -> add node it absorbs, or -1 */
    int *last_use;
    kn_nn_node *nodes;        /* copy of the graph's nodes (topology, shapes) */
    kn_nn_param *params;      /* metadata only (data pointer cleared) */
    void *wmap;               /* shared weights file mapping (read-only), or NULL */
    size_t wmap_size;
} dnnl_impl;

#define DN(call_expr, what)                                                                   \
    do {                                                                                      \
        dnnl_status_t _s = (call_expr);                                                       \
        if (_s != dnnl_success) {                                                             \
            rc = kn_err_set(e, _s == dnnl_out_of_memory ? KN_NOMEM : KN_BACKEND,              \
                            "oneDNN: %s failed (status %d) at node %d", what, (int)_s, node); \
            goto out;                                                                         \
        }                                                                                     \
    } while (0)

/* ---- slots ---------------------------------------------------------------- */

static int slot_get(plan *p, size_t size)
{
    int best = -1;
    for (int i = 0; i < p->nslots; i++) {
        if (p->slot_busy[i])
            continue;
        if (best < 0)
            best = i;
        /* prefer the smallest slot that fits; otherwise the largest to grow */
        bool fits = p->slot_size[i] >= size, bfits = p->slot_size[best] >= size;
        if ((fits && (!bfits || p->slot_size[i] < p->slot_size[best])) ||
            (!fits && !bfits && p->slot_size[i] > p->slot_size[best]))
            best = i;
    }
    if (best < 0) {
        if (p->nslots == p->capslots) {
            int cap = p->capslots ? p->capslots * 2 : 16;
            size_t *s = realloc(p->slot_size, (size_t)cap * sizeof *s);
            if (s)
                p->slot_size = s;
            void **q = realloc(p->slot_ptr, (size_t)cap * sizeof *q);
            if (q)
                p->slot_ptr = q;
            bool *b = realloc(p->slot_busy, (size_t)cap * sizeof *b);
            if (b)
                p->slot_busy = b;
            if (!s || !q || !b)
                return -1;
            p->capslots = cap;
        }
        best = p->nslots++;
        p->slot_size[best] = 0;
        p->slot_ptr[best] = NULL;
    }
    if (p->slot_size[best] < size)
        p->slot_size[best] = size;
    p->slot_busy[best] = true;
    return best;
}

static void slot_put(plan *p, int s)
{
    if (s >= 0)
        p->slot_busy[s] = false;
}

static call *call_add(plan *p)
{
    if (p->ncalls == p->capcalls) {
        int cap = p->capcalls ? p->capcalls * 2 : 128;
        call *c = realloc(p->calls, (size_t)cap * sizeof *c);
        if (!c)
            return NULL;
        p->calls = c;
        p->capcalls = cap;
    }
    call *c = &p->calls[p->ncalls++];
    memset(c, 0, sizeof *c);
    return c;
}

static void call_arg(call *c, int kind, int bind, int ref)
{
    c->arg_kind[c->nargs] = kind;
    c->bind[c->nargs] = bind;
    c->ref[c->nargs] = ref;
    c->nargs++;
}

/* ---- helpers -------------------------------------------------------------- */

static void md_plain4(dnnl_memory_desc_t *md, int n, kn_nn_shape s, dnnl_format_tag_t tag)
{
    dnnl_dims_t d = {n, s.c, s.h, s.w};
    dnnl_memory_desc_init_by_tag(md, 4, d, dnnl_f32, tag);
}

static void md_2d(dnnl_memory_desc_t *md, int n, int c)
{
    dnnl_dims_t d = {n, c};
    dnnl_memory_desc_init_by_tag(md, 2, d, dnnl_f32, dnnl_nc);
}

static kn_status post_ops_attr(dnnl_primitive_attr_t *attr, bool sum, kn_nn_act a, kn_err *e)
{
    kn_status rc = KN_OK;
    int node = -1;
    dnnl_post_ops_t po = NULL;
    DN(dnnl_primitive_attr_create(attr), "attr create");
    DN(dnnl_primitive_attr_set_scratchpad_mode(*attr, dnnl_scratchpad_mode_user), "scratchpad");
    if (!sum && a == KN_ACT_NONE)
        return KN_OK;
    DN(dnnl_post_ops_create(&po), "post-ops create");
    if (sum)
        DN(dnnl_post_ops_append_sum(po, 1.0f), "sum post-op");
    if (a == KN_ACT_RELU)
        DN(dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_relu, 0.0f, 0.0f), "relu post-op");
    if (a == KN_ACT_RELU6)
        DN(dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_clip, 0.0f, 6.0f), "relu6 post-op");
    DN(dnnl_primitive_attr_set_post_ops(*attr, po), "set post-ops");
out:
    if (po)
        dnnl_post_ops_destroy(po);
    return rc;
}

/* Finishes a primitive: creates it from pd, grows the shared scratchpad. */
static kn_status prim_from_pd(dnnl_impl *d, dnnl_primitive_desc_t pd, dnnl_primitive_t *prim,
                              int node, kn_err *e)
{
    kn_status rc = KN_OK;
    const dnnl_memory_desc_t *sp = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    size_t sz = sp ? dnnl_memory_desc_get_size(sp) : 0;
    if (sz > d->scratch_size)
        d->scratch_size = sz;
    DN(dnnl_primitive_create(prim, pd), "primitive create");
out:
    return rc;
}

/* Adds a reorder (or memcpy) from value-or-temp `src` to a temp of md dst.
 * Returns the temp slot index through *slot. */
static kn_status add_reorder(dnnl_impl *d, plan *p, int src_bind, int src_ref,
                             const dnnl_memory_desc_t *src_md, int dst_bind, int dst_ref,
                             const dnnl_memory_desc_t *dst_md, int node, kn_err *e)
{
    kn_status rc = KN_OK;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_primitive_attr_t attr = NULL;
    call *c = call_add(p);
    if (!c)
        return kn_err_set(e, KN_NOMEM, "oneDNN plan: out of memory");
    DN(dnnl_primitive_attr_create(&attr), "attr create");
    DN(dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user), "scratchpad");
    DN(dnnl_reorder_primitive_desc_create(&pd, src_md, d->eng, dst_md, d->eng, attr),
       "reorder");
    if ((rc = prim_from_pd(d, pd, &c->prim, node, e)))
        goto out;
    call_arg(c, DNNL_ARG_FROM, src_bind, src_ref);
    c->temp_md[0] = *src_md;
    call_arg(c, DNNL_ARG_TO, dst_bind, dst_ref);
    c->temp_md[1] = *dst_md;
    call_arg(c, DNNL_ARG_SCRATCHPAD, B_SCRATCH, 0);
out:
    if (pd)
        dnnl_primitive_desc_destroy(pd);
    if (attr)
        dnnl_primitive_attr_destroy(attr);
    return rc;
}

/* Returns the weights memory for node with layout md, reordering the plain
 * weights once (shared by every plan that asks for the same layout). */
static kn_status weights_for(dnnl_impl *d, int node, const dnnl_memory_desc_t *md,
                             const dnnl_memory_desc_t *plain, const float *src, int *out,
                             kn_err *e)
{
    kn_status rc = KN_OK;
    dnnl_primitive_desc_t rpd = NULL;
    dnnl_primitive_t r = NULL;
    dnnl_memory_t sm = NULL;
    for (int i = 0; i < d->nw; i++)
        if (d->w[i].node == node && dnnl_memory_desc_equal(&d->w[i].md, md)) {
            *out = i;
            return KN_OK;
        }
    const dnnl_memory_desc_t *from = plain;
    const void *from_data = src;
    if (!src) {
        /* The plain weights are gone (a batch size planned after creation):
         * convert from a layout this node already has. */
        for (int i = 0; i < d->nw && !from_data; i++)
            if (d->w[i].node == node) {
                from = &d->w[i].md;
                from_data = d->w[i].data;
            }
        if (!from_data)
            return kn_err_set(e, KN_INTERNAL, "oneDNN: no weights for node %d", node);
    }
    if (d->nw == d->capw) {
        int cap = d->capw ? d->capw * 2 : 64;
        wcache *w = realloc(d->w, (size_t)cap * sizeof *w);
        if (!w)
            return kn_err_set(e, KN_NOMEM, "oneDNN: out of memory");
        d->w = w;
        d->capw = cap;
    }
    wcache *w = &d->w[d->nw];
    memset(w, 0, sizeof *w);
    w->node = node;
    w->md = *md;
    size_t sz = dnnl_memory_desc_get_size(md);
    w->data = kn_alloc_aligned(sz);
    if (!w->data)
        return kn_err_set(e, KN_NOMEM, "oneDNN: cannot allocate %zu bytes of weights", sz);
    DN(dnnl_memory_create(&w->mem, md, d->eng, w->data), "weights memory");
    DN(dnnl_memory_create(&sm, from, d->eng, (void *)from_data), "weights source memory");
    DN(dnnl_reorder_primitive_desc_create(&rpd, from, d->eng, md, d->eng, NULL),
       "weights reorder");
    DN(dnnl_primitive_create(&r, rpd), "weights reorder primitive");
    dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, sm}, {DNNL_ARG_TO, w->mem}};
    DN(dnnl_primitive_execute(r, d->stream, 2, args), "weights reorder run");
    DN(dnnl_stream_wait(d->stream), "stream wait");
    *out = d->nw++;
out:
    if (rc && w->mem) {
        dnnl_memory_destroy(w->mem);
        w->mem = NULL;
    }
    if (rc)
        kn_free_aligned(w->data);
    if (r)
        dnnl_primitive_destroy(r);
    if (rpd)
        dnnl_primitive_desc_destroy(rpd);
    if (sm)
        dnnl_memory_destroy(sm);
    return rc;
}

/* Makes sure value v is available with layout want: binds the call argument
 * to v directly when layouts match, otherwise to a temp filled by a reorder
 * queued before the call. *temp_slot receives the temp (or -1). */
static kn_status src_as(dnnl_impl *d, plan *p, int v, const dnnl_memory_desc_t *want,
                        int *bind, int *ref, int *temp_slot, int node, kn_err *e)
{
    *temp_slot = -1;
    if (dnnl_memory_desc_equal(&p->vals[v].md, want)) {
        *bind = B_VALUE;
        *ref = v;
        return KN_OK;
    }
    int s = slot_get(p, dnnl_memory_desc_get_size(want));
    if (s < 0)
        return kn_err_set(e, KN_NOMEM, "oneDNN plan: out of memory");
    kn_status rc = add_reorder(d, p, B_VALUE, v, &p->vals[v].md, B_TEMP, s, want, node, e);
    if (rc)
        return rc;
    *bind = B_TEMP;
    *ref = s;
    *temp_slot = s;
    return KN_OK;
}

/* ---- planning ------------------------------------------------------------- */

static kn_status plan_conv(dnnl_impl *d, plan *p, int i, kn_err *e)
{
    const kn_nn_node *nd = &d->nodes[i];
    const kn_nn_node *src = &d->nodes[nd->in[0]];
    int node = i, n = p->n;
    kn_status rc = KN_OK;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_primitive_attr_t attr = NULL;
    int add = d->fused_add[i];
    kn_nn_act a = add >= 0 ? d->nodes[add].act : nd->act;

    dnnl_memory_desc_t src_md, w_md, b_md, dst_md, w_plain;
    dnnl_dims_t sd = {n, src->shape.c, src->shape.h, src->shape.w};
    dnnl_dims_t dd = {n, nd->shape.c, nd->shape.h, nd->shape.w};
    dnnl_memory_desc_init_by_tag(&src_md, 4, sd, dnnl_f32, dnnl_format_tag_any);
    bool plain_out = nd->shape.h == 1 && nd->shape.w == 1;
    dnnl_memory_desc_init_by_tag(&dst_md, 4, dd, dnnl_f32,
                                 plain_out ? dnnl_nhwc : dnnl_format_tag_any);
    int G = nd->groups;
    if (G == 1) {
        dnnl_dims_t wd = {nd->out_c, src->shape.c, nd->win.kh, nd->win.kw};
        dnnl_memory_desc_init_by_tag(&w_md, 4, wd, dnnl_f32, dnnl_format_tag_any);
        dnnl_memory_desc_init_by_tag(&w_plain, 4, wd, dnnl_f32, dnnl_oihw);
    } else {
        dnnl_dims_t wd = {G, nd->out_c / G, src->shape.c / G, nd->win.kh, nd->win.kw};
        dnnl_memory_desc_init_by_tag(&w_md, 5, wd, dnnl_f32, dnnl_format_tag_any);
        dnnl_memory_desc_init_by_tag(&w_plain, 5, wd, dnnl_f32, dnnl_goihw);
    }
    dnnl_dims_t bd = {nd->out_c};
    dnnl_memory_desc_init_by_tag(&b_md, 1, bd, dnnl_f32, dnnl_x);
    dnnl_dims_t strides = {nd->win.sh, nd->win.sw};
    dnnl_dims_t dil = {nd->win.dh - 1, nd->win.dw - 1};
    dnnl_dims_t pl = {nd->win.pt, nd->win.pl}, pr = {nd->win.pb, nd->win.pr};
    dnnl_convolution_desc_t cd;
    DN(dnnl_dilated_convolution_forward_desc_init(&cd, dnnl_forward_inference,
                                                  dnnl_convolution_direct, &src_md, &w_md,
                                                  d->bias[i] ? &b_md : NULL, &dst_md, strides,
                                                  dil, pl, pr),
       "convolution descriptor");
    if ((rc = post_ops_attr(&attr, add >= 0, a, e)))
        goto out;
    DN(dnnl_primitive_desc_create(&pd, &cd, attr, d->eng, NULL), "convolution");

    const dnnl_memory_desc_t *q_src = dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0);
    const dnnl_memory_desc_t *q_w = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    const dnnl_memory_desc_t *q_dst = dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0);

    int sb, sr, tmp;
    if ((rc = src_as(d, p, nd->in[0], q_src, &sb, &sr, &tmp, node, e)))
        goto out;
    int wi;
    if ((rc = weights_for(d, i, q_w, &w_plain, d->wsrc ? d->wsrc->params[nd->w].data : NULL, &wi, e)))
        goto out;

    /* The output value. With a fused add, dst first holds the other operand:
     * reuse its buffer when it dies here and has the same layout, else copy. */
    int out_v = add >= 0 ? add : i;
    p->vals[i].md = *q_dst;
    if (add >= 0) {
        int other = d->nodes[add].in[0] == i ? d->nodes[add].in[1] : d->nodes[add].in[0];
        p->vals[add].md = *q_dst;
        if (d->last_use[other] == add && p->vals[other].slot >= 0 &&
            dnnl_memory_desc_equal(&p->vals[other].md, q_dst)) {
            p->vals[add].slot = p->vals[other].slot; /* shared: other dies here */
        } else {
            int s = slot_get(p, dnnl_memory_desc_get_size(q_dst));
            if (s < 0) {
                rc = kn_err_set(e, KN_NOMEM, "oneDNN plan: out of memory");
                goto out;
            }
            p->vals[add].slot = s;
            if ((rc = add_reorder(d, p, B_VALUE, other, &p->vals[other].md, B_VALUE, add, q_dst,
                                  node, e)))
                goto out;
        }
        p->vals[i].slot = p->vals[add].slot;
    } else {
        int s = slot_get(p, dnnl_memory_desc_get_size(q_dst));
        if (s < 0) {
            rc = kn_err_set(e, KN_NOMEM, "oneDNN plan: out of memory");
            goto out;
        }
        p->vals[i].slot = s;
    }
    call *c = call_add(p);
    if (!c) {
        rc = kn_err_set(e, KN_NOMEM, "oneDNN plan: out of memory");
        goto out;
    }
    if ((rc = prim_from_pd(d, pd, &c->prim, node, e)))
        goto out;
    call_arg(c, DNNL_ARG_SRC, sb, sr);
    c->temp_md[0] = *q_src;
    call_arg(c, DNNL_ARG_WEIGHTS, B_WEIGHTS, wi);
    if (d->bias[i]) {
        call_arg(c, DNNL_ARG_BIAS, B_BIAS, i);
        c->temp_md[2] = b_md;
    }
    call_arg(c, DNNL_ARG_DST, B_VALUE, out_v);
    call_arg(c, DNNL_ARG_SCRATCHPAD, B_SCRATCH, 0);
    slot_put(p, tmp);
out:
    if (pd)
        dnnl_primitive_desc_destroy(pd);
    if (attr)
        dnnl_primitive_attr_destroy(attr);
    return rc;
}

/* True when md holds n x c x 1 x 1 floats densely as a plain n x c matrix
 * (nchw and nhwc are the same bytes at 1x1; blocked layouts are not). */
static bool md_is_flat(const dnnl_memory_desc_t *md)
{
    if (md->format_kind != dnnl_blocked || md->format_desc.blocking.inner_nblks != 0 ||
        md->data_type != dnnl_f32)
        return false;
    for (int k = 2; k < md->ndims; k++)
        if (md->dims[k] != 1)
            return false;
    const dnnl_dims_t *st = &md->format_desc.blocking.strides;
    return md->padded_dims[1] == md->dims[1] && (*st)[1] == 1 &&
           (md->dims[0] == 1 || (*st)[0] == md->dims[1]);
}

/* A 2-D view {n, c} of a value whose spatial size is 1x1 and layout flat. */
static bool view_2d(plan *p, int v, const kn_nn_node *nd, dnnl_memory_desc_t *md)
{
    if (p->vals[v].md.ndims == 2) {
        *md = p->vals[v].md;
        return true;
    }
    if (nd->shape.h == 1 && nd->shape.w == 1 && md_is_flat(&p->vals[v].md)) {
        md_2d(md, p->n, nd->shape.c);
        return true;
    }
    return false;
}

static kn_status new_value_slot(plan *p, int v, kn_err *e)
{
    int s = slot_get(p, dnnl_memory_desc_get_size(&p->vals[v].md));
    if (s < 0)
        return kn_err_set(e, KN_NOMEM, "oneDNN plan: out of memory");
    p->vals[v].slot = s;
    return KN_OK;
}

static kn_status plan_simple(dnnl_impl *d, plan *p, int i, kn_err *e)
{
    const kn_nn_node *nd = &d->nodes[i];
    const kn_nn_node *s0 = &d->nodes[nd->in[0]];
    int node = i, n = p->n, v0 = nd->in[0];
    kn_status rc = KN_OK;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_primitive_attr_t attr = NULL;
    call *c = NULL;
    int tmp = -1, extra_tmp = -1;

    switch (nd->op) {
    case KN_OP_DROPOUT:
    case KN_OP_FLATTEN: {
        dnnl_memory_desc_t md2;
        if (view_2d(p, v0, s0, &md2) || nd->op == KN_OP_DROPOUT) {
            /* alias: same bytes, 2-D view when flattening */
            p->vals[i].md = nd->op == KN_OP_FLATTEN ? md2 : p->vals[v0].md;
            p->vals[i].slot = p->vals[v0].slot;
            return KN_OK;
        }
        /* flatten of a spatial tensor: reorder into plain NCHW, view as 2-D */
        dnnl_memory_desc_t plain4;
        md_plain4(&plain4, n, s0->shape, dnnl_nchw);
        md_2d(&p->vals[i].md, n, nd->shape.c);
        int s = slot_get(p, dnnl_memory_desc_get_size(&plain4));
        if (s < 0)
            return kn_err_set(e, KN_NOMEM, "oneDNN plan: out of memory");
        p->vals[i].slot = s;
        return add_reorder(d, p, B_VALUE, v0, &p->vals[v0].md, B_TEMP, s, &plain4, node, e);
    }
    case KN_OP_MAXPOOL:
    case KN_OP_AVGPOOL:
    case KN_OP_GAP: {
        dnnl_memory_desc_t dst_md;
        dnnl_dims_t dd = {n, nd->shape.c, nd->shape.h, nd->shape.w};
        bool plain_out = nd->shape.h == 1 && nd->shape.w == 1;
        dnnl_memory_desc_init_by_tag(&dst_md, 4, dd, dnnl_f32,
                                     plain_out ? dnnl_nhwc : dnnl_format_tag_any);
        kn_nn_window w = nd->win;
        if (nd->op == KN_OP_GAP)
            w = (kn_nn_window){s0->shape.h, s0->shape.w, 1, 1, 0, 0, 0, 0, 1, 1};
        dnnl_dims_t st = {w.sh, w.sw}, k = {w.kh, w.kw}, dl = {w.dh - 1, w.dw - 1};
        dnnl_dims_t pl = {w.pt, w.pl}, pr = {w.pb, w.pr};
        dnnl_alg_kind_t alg = nd->op == KN_OP_MAXPOOL ? dnnl_pooling_max
                              : (nd->op == KN_OP_AVGPOOL && nd->pool_count_pad)
                                  ? dnnl_pooling_avg_include_padding
                                  : dnnl_pooling_avg_exclude_padding;
        dnnl_pooling_v2_desc_t pdsc;
        DN(dnnl_pooling_v2_forward_desc_init(&pdsc, dnnl_forward_inference, alg,
                                             &p->vals[v0].md, &dst_md, st, k, dl, pl, pr),
           "pooling descriptor");
        if ((rc = post_ops_attr(&attr, false, KN_ACT_NONE, e)))
            goto out;
        DN(dnnl_primitive_desc_create(&pd, &pdsc, attr, d->eng, NULL), "pooling");
        p->vals[i].md = *dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0);
        break;
    }
    case KN_OP_LINEAR: {
        dnnl_memory_desc_t src2, w_md, w_plain, b_md, dst_md;
        if (!view_2d(p, v0, s0, &src2)) {
            rc = kn_err_set(e, KN_INTERNAL, "oneDNN: linear input at node %d is not flat", i);
            goto out;
        }
        dnnl_dims_t wd = {nd->out_c, s0->shape.c};
        dnnl_memory_desc_init_by_tag(&w_md, 2, wd, dnnl_f32, dnnl_format_tag_any);
        dnnl_memory_desc_init_by_tag(&w_plain, 2, wd, dnnl_f32, dnnl_oi);
        dnnl_dims_t bd = {nd->out_c};
        dnnl_memory_desc_init_by_tag(&b_md, 1, bd, dnnl_f32, dnnl_x);
        md_2d(&dst_md, n, nd->out_c);
        dnnl_inner_product_desc_t ipd;
        DN(dnnl_inner_product_forward_desc_init(&ipd, dnnl_forward_inference, &src2, &w_md,
                                                d->bias[i] ? &b_md : NULL, &dst_md),
           "inner product descriptor");
        if ((rc = post_ops_attr(&attr, false, nd->act, e)))
            goto out;
        DN(dnnl_primitive_desc_create(&pd, &ipd, attr, d->eng, NULL), "inner product");
        const dnnl_memory_desc_t *q_w = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
        const dnnl_memory_desc_t *q_src = dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0);
        int wi;
        if ((rc = weights_for(d, i, q_w, &w_plain, d->wsrc ? d->wsrc->params[nd->w].data : NULL, &wi,
                              e)))
            goto out;
        int sb = B_VALUE, sr = v0;
        if (!dnnl_memory_desc_equal(q_src, &src2)) {
            rc = kn_err_set(e, KN_INTERNAL, "oneDNN: inner product wants a different layout");
            goto out;
        }
        p->vals[i].md = dst_md;
        if ((rc = new_value_slot(p, i, e)))
            goto out;
        c = call_add(p);
        if (!c) {
            rc = kn_err_set(e, KN_NOMEM, "oneDNN plan: out of memory");
            goto out;
        }
        if ((rc = prim_from_pd(d, pd, &c->prim, node, e)))
            goto out;
        call_arg(c, DNNL_ARG_SRC, sb, sr);
        c->temp_md[0] = src2; /* the 2-D view of the producer's bytes */
        call_arg(c, DNNL_ARG_WEIGHTS, B_WEIGHTS, wi);
        if (d->bias[i]) {
            call_arg(c, DNNL_ARG_BIAS, B_BIAS, i);
            c->temp_md[2] = b_md;
        }
        call_arg(c, DNNL_ARG_DST, B_VALUE, i);
        call_arg(c, DNNL_ARG_SCRATCHPAD, B_SCRATCH, 0);
        /* the source binding needs the 2-D descriptor, not the producer's */
        c->bind[0] = B_TEMP;
        c->ref[0] = p->vals[v0].slot;
        goto out;
    }
    case KN_OP_SOFTMAX: {
        dnnl_memory_desc_t src2;
        if (!view_2d(p, v0, s0, &src2)) {
            rc = kn_err_set(e, KN_INTERNAL, "oneDNN: softmax input at node %d is not flat", i);
            goto out;
        }
        dnnl_softmax_desc_t sd;
        DN(dnnl_softmax_forward_desc_init(&sd, dnnl_forward_inference, &src2, 1),
           "softmax descriptor");
        if ((rc = post_ops_attr(&attr, false, KN_ACT_NONE, e)))
            goto out;
        DN(dnnl_primitive_desc_create(&pd, &sd, attr, d->eng, NULL), "softmax");
        p->vals[i].md = src2;
        if ((rc = new_value_slot(p, i, e)))
            goto out;
        c = call_add(p);
        if (!c) {
            rc = kn_err_set(e, KN_NOMEM, "oneDNN plan: out of memory");
            goto out;
        }
        if ((rc = prim_from_pd(d, pd, &c->prim, node, e)))
            goto out;
        call_arg(c, DNNL_ARG_SRC, B_TEMP, p->vals[v0].slot);
        c->temp_md[0] = src2;
        call_arg(c, DNNL_ARG_DST, B_VALUE, i);
        call_arg(c, DNNL_ARG_SCRATCHPAD, B_SCRATCH, 0);
        goto out;
    }
    case KN_OP_RELU:
    case KN_OP_RELU6: {
        dnnl_eltwise_desc_t ed;
        DN(dnnl_eltwise_forward_desc_init(&ed, dnnl_forward_inference,
                                          nd->op == KN_OP_RELU ? dnnl_eltwise_relu
                                                               : dnnl_eltwise_clip,
                                          &p->vals[v0].md, 0.0f,
                                          nd->op == KN_OP_RELU ? 0.0f : 6.0f),
           "eltwise descriptor");
        if ((rc = post_ops_attr(&attr, false, KN_ACT_NONE, e)))
            goto out;
        DN(dnnl_primitive_desc_create(&pd, &ed, attr, d->eng, NULL), "eltwise");
        p->vals[i].md = p->vals[v0].md;
        break;
    }
    case KN_OP_ADD: {
        int v1 = nd->in[1], b1, r1;
        if ((rc = src_as(d, p, v1, &p->vals[v0].md, &b1, &r1, &extra_tmp, node, e)))
            goto out;
        dnnl_binary_desc_t bd;
        DN(dnnl_binary_desc_init(&bd, dnnl_binary_add, &p->vals[v0].md, &p->vals[v0].md,
                                 &p->vals[v0].md),
           "binary descriptor");
        if ((rc = post_ops_attr(&attr, false, nd->act, e)))
            goto out;
        DN(dnnl_primitive_desc_create(&pd, &bd, attr, d->eng, NULL), "binary add");
        p->vals[i].md = p->vals[v0].md;
        if ((rc = new_value_slot(p, i, e)))
            goto out;
        c = call_add(p);
        if (!c) {
            rc = kn_err_set(e, KN_NOMEM, "oneDNN plan: out of memory");
            goto out;
        }
        if ((rc = prim_from_pd(d, pd, &c->prim, node, e)))
            goto out;
        call_arg(c, DNNL_ARG_SRC_0, B_VALUE, v0);
        call_arg(c, DNNL_ARG_SRC_1, b1, r1);
        c->temp_md[1] = p->vals[v0].md;
        call_arg(c, DNNL_ARG_DST, B_VALUE, i);
        call_arg(c, DNNL_ARG_SCRATCHPAD, B_SCRATCH, 0);
        slot_put(p, extra_tmp);
        goto out;
    }
    default:
        rc = kn_err_set(e, KN_UNSUPPORTED, "oneDNN backend: op %s at node %d",
                        kn_nn_op_name(nd->op), i);
        goto out;
    }
    /* single-input, single-output primitives: pooling, eltwise */
    if ((rc = new_value_slot(p, i, e)))
        goto out;
    c = call_add(p);
    if (!c) {
        rc = kn_err_set(e, KN_NOMEM, "oneDNN plan: out of memory");
        goto out;
    }
    if ((rc = prim_from_pd(d, pd, &c->prim, node, e)))
        goto out;
    call_arg(c, DNNL_ARG_SRC, B_VALUE, v0);
    call_arg(c, DNNL_ARG_DST, B_VALUE, i);
    call_arg(c, DNNL_ARG_SCRATCHPAD, B_SCRATCH, 0);
out:
    slot_put(p, tmp);
    if (pd)
        dnnl_primitive_desc_destroy(pd);
    if (attr)
        dnnl_primitive_attr_destroy(attr);
    return rc;
}

static void plan_free(plan *p)
{
    if (!p)
        return;
    for (int i = 0; i < p->ncalls; i++) {
        call *c = &p->calls[i];
        if (c->prim)
            dnnl_primitive_destroy(c->prim);
        for (int k = 0; k < c->nargs; k++)
            if (c->mem[k])
                dnnl_memory_destroy(c->mem[k]);
    }
    kn_free_aligned(p->own_arena);
    if (p->out_mem)
        dnnl_memory_destroy(p->out_mem);
    free(p->calls);
    free(p->slot_size);
    free(p->slot_ptr);
    free(p->slot_busy);
    free(p->vals);
    free(p);
}

static void *value_ptr(plan *p, int v)
{
    int s = p->vals[v].slot;
    return s >= 0 ? p->slot_ptr[s] : NULL;
}

static kn_status plan_new(dnnl_impl *d, int n, plan **out, kn_err *e)
{
    kn_status rc = KN_OK;
    int node = -1;
    plan *p = calloc(1, sizeof *p);
    if (!p)
        return kn_err_set(e, KN_NOMEM, "oneDNN plan: out of memory");
    p->n = n;
    p->vals = calloc((size_t)d->nnodes, sizeof *p->vals);
    if (!p->vals) {
        rc = kn_err_set(e, KN_NOMEM, "oneDNN plan: out of memory");
        goto out;
    }
    /* input: the user's NCHW samples are copied into a slot at run time
     * (a few hundred KB; it keeps every value in the arena) */
    md_plain4(&p->vals[0].md, n, d->nodes[0].shape, dnnl_nchw);
    if ((rc = new_value_slot(p, 0, e)))
        goto out;
    for (int i = 1; i < d->nnodes; i++) {
        node = i;
        if (d->fuse_into[i] < 0) { /* fused adds are planned with their conv */
            if (d->nodes[i].op == KN_OP_CONV)
                rc = plan_conv(d, p, i, e);
            else
                rc = plan_simple(d, p, i, e);
            if (rc)
                goto out;
        }
        /* release slots of values that die here (aliases share slots: a slot
         * is released once no live value refers to it) */
        for (int v = 0; v < i; v++) {
            if (d->last_use[v] != i || p->vals[v].slot < 0)
                continue;
            int s = p->vals[v].slot;
            bool shared = false;
            for (int u = 0; u <= i && !shared; u++)
                shared = u != v && p->vals[u].slot == s && d->last_use[u] > i;
            if (!shared)
                slot_put(p, s);
        }
    }
    /* the output in plain layout */
    kn_nn_shape os = d->nodes[d->nnodes - 1].shape;
    if (os.h == 1 && os.w == 1)
        md_2d(&p->out_md, n, os.c);
    else
        md_plain4(&p->out_md, n, os, dnnl_nchw);
    /* Lay the slots out in one arena, then bind memories. Plans run one at
     * a time and keep nothing in their slots between runs, so they all use
     * the executor's arena, sized by the first (largest) batch; a plan that
     * does not fit gets its own. */
    size_t total = 0;
    for (int s = 0; s < p->nslots; s++)
        total += (p->slot_size[s] + 63) & ~(size_t)63;
    if (total == 0)
        total = 64;
    uint8_t *base;
    if (!d->arena || total > d->arena_size) {
        base = kn_alloc_aligned(total);
        if (!base) {
            rc = kn_err_set(e, KN_NOMEM, "oneDNN plan: cannot allocate %zu bytes", total);
            goto out;
        }
        /* touch every page now so no run takes a page fault */
        memset(base, 0, total);
        if (!d->arena) {
            d->arena = base;
            d->arena_size = total;
        } else {
            p->own_arena = base;
        }
    } else {
        base = d->arena;
    }
    size_t off = 0;
    for (int s = 0; s < p->nslots; s++) {
        p->slot_ptr[s] = base + off;
        off += (p->slot_size[s] + 63) & ~(size_t)63;
    }
    DN(dnnl_memory_create(&p->out_mem, &p->out_md, d->eng, DNNL_MEMORY_NONE), "output memory");
    for (int ci = 0; ci < p->ncalls; ci++) {
        call *c = &p->calls[ci];
        for (int k = 0; k < c->nargs; k++) {
            switch (c->bind[k]) {
            case B_VALUE: {
                int v = c->ref[k];
                DN(dnnl_memory_create(&c->mem[k], &p->vals[v].md, d->eng, value_ptr(p, v)),
                   "value memory");
                break;
            }
            case B_TEMP:
                DN(dnnl_memory_create(&c->mem[k], &c->temp_md[k], d->eng,
                                      c->ref[k] >= 0 ? p->slot_ptr[c->ref[k]] : DNNL_MEMORY_NONE),
                   "temp memory");
                break;
            case B_BIAS:
                DN(dnnl_memory_create(&c->mem[k], &c->temp_md[k], d->eng, d->bias[c->ref[k]]),
                   "bias memory");
                break;
            default:
                break;
            }
        }
    }
    *out = p;
    return KN_OK;
out:
    plan_free(p);
    return rc;
}

/* ---- backend entry points ------------------------------------------------ */

static void dnnl_destroy(kn_nn_exec *x)
{
    dnnl_impl *d = x->impl;
    if (!d)
        return;
    if (d->plans)
        for (int n = 0; n <= d->micro; n++)
            plan_free(d->plans[n]);
    free(d->plans);
    kn_free_aligned(d->arena);
    for (int i = 0; i < d->nw; i++) {
        if (d->w[i].mem)
            dnnl_memory_destroy(d->w[i].mem);
        if (!d->w[i].shared)
            kn_free_aligned(d->w[i].data);
    }
    free(d->w);
    if (d->wmap)
        munmap(d->wmap, d->wmap_size);
    if (d->bias)
        for (int i = 0; i < d->nnodes; i++)
            kn_free_aligned(d->bias[i]);
    free(d->bias);
    if (d->scratch_mem)
        dnnl_memory_destroy(d->scratch_mem);
    kn_free_aligned(d->scratch);
    if (d->stream)
        dnnl_stream_destroy(d->stream);
    if (d->eng)
        dnnl_engine_destroy(d->eng);
    free(d->fuse_into);
    free(d->fused_add);
    free(d->last_use);
    free(d->nodes);
    kn_nn_graph_free(d->g);
    free(d);
    x->impl = NULL;
}

static kn_status ensure_scratch(dnnl_impl *d, kn_err *e)
{
    kn_status rc = KN_OK;
    int node = -1;
    if (d->scratch_mem) {
        const dnnl_memory_desc_t *md;
        dnnl_memory_get_memory_desc(d->scratch_mem, &md);
        if (dnnl_memory_desc_get_size(md) >= d->scratch_size)
            return KN_OK;
        dnnl_memory_destroy(d->scratch_mem);
        d->scratch_mem = NULL;
        kn_free_aligned(d->scratch);
        d->scratch = NULL;
    }
    size_t sz = d->scratch_size ? d->scratch_size : 64;
    d->scratch = kn_alloc_aligned(sz);
    if (!d->scratch)
        return kn_err_set(e, KN_NOMEM, "oneDNN: cannot allocate %zu bytes of scratchpad", sz);
    memset(d->scratch, 0, sz);
    dnnl_memory_desc_t md;
    dnnl_dims_t dims = {(dnnl_dim_t)sz};
    dnnl_memory_desc_init_by_tag(&md, 1, dims, dnnl_u8, dnnl_x);
    DN(dnnl_memory_create(&d->scratch_mem, &md, d->eng, d->scratch), "scratchpad memory");
out:
    return rc;
}

static kn_status get_plan(dnnl_impl *d, int n, plan **out, kn_err *e)
{
    if (d->plans[n]) {
        *out = d->plans[n];
        return KN_OK;
    }
    kn_status rc = plan_new(d, n, &d->plans[n], e);
    if (rc)
        return rc;
    if ((rc = ensure_scratch(d, e)))
        return rc;
    *out = d->plans[n];
    return KN_OK;
}

/* True when kn_nn_graph_optimize would change g. */
static bool needs_rewrite(const kn_nn_graph *g)
{
    for (int i = 1; i < g->n; i++) {
        const kn_nn_node *nd = &g->nodes[i];
        if (nd->op == KN_OP_BATCHNORM || nd->op == KN_OP_DROPOUT)
            return true;
        if (nd->op == KN_OP_FLATTEN && g->nodes[nd->in[0]].shape.h == 1 &&
            g->nodes[nd->in[0]].shape.w == 1)
            return true;
        if (nd->op == KN_OP_RELU || nd->op == KN_OP_RELU6) {
            const kn_nn_node *p = &g->nodes[nd->in[0]];
            if ((p->op == KN_OP_CONV || p->op == KN_OP_LINEAR || p->op == KN_OP_ADD) &&
                p->act == KN_ACT_NONE && kn__nn_use_count(g, nd->in[0]) == 1)
                return true;
        }
    }
    return false;
}

static kn_status dnnl_create(kn_nn_exec *x, const kn_nn_graph *g, kn_err *e)
{
    kn_status rc = KN_OK;
    int node = -1;
    dnnl_impl *d = calloc(1, sizeof *d);
    if (!d)
        return kn_err_set(e, KN_NOMEM, "oneDNN backend: out of memory");
    x->impl = d;
    /* Rewrite (on a copy) only when needed: an already optimised graph is
     * read in place, so loading a model costs one copy of the weights. */
    d->wsrc = g;
    if (needs_rewrite(g)) {
        if ((rc = kn_nn_graph_optimize(g, &d->g, e)))
            goto out;
        d->wsrc = d->g;
    }
    d->nnodes = d->wsrc->n;
    int nn = d->nnodes;
    d->nodes = malloc((size_t)nn * sizeof *d->nodes);
    d->bias = calloc((size_t)nn, sizeof *d->bias);
    d->fuse_into = malloc((size_t)nn * sizeof(int));
    d->fused_add = malloc((size_t)nn * sizeof(int));
    d->last_use = malloc((size_t)nn * sizeof(int));
    d->micro = x->p.micro_batch > 0 ? x->p.micro_batch : KN_NN_MICRO_BATCH_DEFAULT;
    if (d->micro > x->p.max_batch)
        d->micro = x->p.max_batch;
    d->plans = calloc((size_t)d->micro + 1, sizeof *d->plans);
    if (!d->nodes || !d->bias || !d->fuse_into || !d->fused_add || !d->last_use || !d->plans) {
        rc = kn_err_set(e, KN_NOMEM, "oneDNN backend: out of memory");
        goto out;
    }
    memcpy(d->nodes, d->wsrc->nodes, (size_t)nn * sizeof *d->nodes);
    for (int i = 0; i < nn; i++) {
        d->fuse_into[i] = d->fused_add[i] = -1;
        d->last_use[i] = i == nn - 1 ? nn : -1;
    }
    for (int i = 1; i < nn; i++)
        for (int k = 0; k < d->nodes[i].n_in; k++)
            d->last_use[d->nodes[i].in[k]] = i;
    /* Residual adds fold into the later of their two producers when it is a
     * conv without its own activation read only by the add. */
    for (int i = 1; i < nn; i++) {
        const kn_nn_node *nd = &d->nodes[i];
        if (nd->op != KN_OP_ADD)
            continue;
        int a = nd->in[0], b = nd->in[1];
        int late = a > b ? a : b;
        if (late == 0 || a == b || d->nodes[late].op != KN_OP_CONV ||
            d->nodes[late].act != KN_ACT_NONE || kn__nn_use_count(d->wsrc, late) != 1)
            continue;
        d->fuse_into[i] = late;
        d->fused_add[late] = i;
    }
    /* Biases in plain float, owned here. */
    for (int i = 1; i < nn; i++) {
        const kn_nn_node *nd = &d->nodes[i];
        if ((nd->op == KN_OP_CONV || nd->op == KN_OP_LINEAR) && nd->b >= 0) {
            size_t bytes = (size_t)nd->out_c * sizeof(float);
            d->bias[i] = kn_alloc_aligned(bytes);
            if (!d->bias[i]) {
                rc = kn_err_set(e, KN_NOMEM, "oneDNN backend: out of memory");
                goto out;
            }
            memcpy(d->bias[i], d->wsrc->params[nd->b].data, bytes);
        }
    }
    DN(dnnl_engine_create(&d->eng, dnnl_cpu, 0), "engine");
    DN(dnnl_stream_create(&d->stream, d->eng, dnnl_stream_default_flags), "stream");
    plan *p;
    if ((rc = get_plan(d, d->micro, &p, e)))
        goto out;
    /* Weights for the main batch size are reordered now; smaller batches
     * planned later share those layouts or convert from them. */
out:
    d->wsrc = NULL;
    kn_nn_graph_free(d->g);
    d->g = NULL;
    if (rc)
        dnnl_destroy(x);
    return rc;
}

static dnnl_memory_t arg_mem(dnnl_impl *d, plan *p, call *c, int k)
{
    switch (c->bind[k]) {
    case B_WEIGHTS:
        return d->w[c->ref[k]].mem;
    case B_SCRATCH:
        return d->scratch_mem;
    default:
        return c->mem[k];
    }
}

static kn_status run_pass(dnnl_impl *d, const float *in, int n, float *out, kn_err *e)
{
    plan *p;
    kn_status rc = get_plan(d, n, &p, e);
    int node = -1;
    if (rc)
        return rc;
    memcpy(value_ptr(p, 0), in, dnnl_memory_desc_get_size(&p->vals[0].md));
    for (int ci = 0; ci < p->ncalls; ci++) {
        call *c = &p->calls[ci];
        dnnl_exec_arg_t args[MAX_ARGS];
        for (int k = 0; k < c->nargs; k++) {
            args[k].arg = c->arg_kind[k];
            args[k].memory = arg_mem(d, p, c, k);
        }
        DN(dnnl_primitive_execute(c->prim, d->stream, c->nargs, args), "execute");
    }
    /* output: plain already (1x1 values and linear outputs are plain); copy
     * or reorder from the last value */
    int last = d->nnodes - 1;
    void *src = value_ptr(p, last);
    if (dnnl_memory_desc_equal(&p->vals[last].md, &p->out_md) ||
        (p->out_md.ndims == 2 && md_is_flat(&p->vals[last].md))) {
        memcpy(out, src, dnnl_memory_desc_get_size(&p->out_md));
    } else {
        dnnl_primitive_desc_t rpd = NULL;
        dnnl_primitive_t r = NULL;
        dnnl_memory_t sm = NULL;
        dnnl_status_t s = dnnl_reorder_primitive_desc_create(&rpd, &p->vals[last].md, d->eng,
                                                             &p->out_md, d->eng, NULL);
        if (s == dnnl_success)
            s = dnnl_primitive_create(&r, rpd);
        if (s == dnnl_success)
            s = dnnl_memory_create(&sm, &p->vals[last].md, d->eng, src);
        if (s == dnnl_success)
            s = dnnl_memory_set_data_handle(p->out_mem, out);
        if (s == dnnl_success) {
            dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, sm}, {DNNL_ARG_TO, p->out_mem}};
            s = dnnl_primitive_execute(r, d->stream, 2, args);
        }
        if (sm)
            dnnl_memory_destroy(sm);
        if (r)
            dnnl_primitive_destroy(r);
        if (rpd)
            dnnl_primitive_desc_destroy(rpd);
        if (s != dnnl_success)
            return kn_err_set(e, KN_BACKEND, "oneDNN: output reorder failed (%d)", (int)s);
    }
    DN(dnnl_stream_wait(d->stream), "stream wait");
out:
    return rc;
}

/* Big batches run as passes of at most d->micro samples: the activations of
 * a pass stay in the caches (resnet50 at batch 32 is ~10 % slower per image
 * than at batch 8 here), and working memory is sized for one pass. */
static kn_status dnnl_run(kn_nn_exec *x, const float *in, int n, float *out, kn_err *e)
{
    dnnl_impl *d = x->impl;
    size_t in_numel = kn__nn_shape_numel(x->in_shape);
    size_t out_numel = kn__nn_shape_numel(x->out_shape);
    for (int off = 0; off < n; off += d->micro) {
        int k = n - off < d->micro ? n - off : d->micro;
        kn_status rc = run_pass(d, in + (size_t)off * in_numel, k, out + (size_t)off * out_numel, e);
        if (rc)
            return rc;
    }
    return KN_OK;
}

/* ---- the shared weights file ---------------------------------------------
 *
 * One file per distinct set of reordered weights: a header, a table of
 * (offset, size) per weights entry, then the entries (64-byte aligned) in the
 * executor's order. Its name is the hex SHA-256 of every entry's node, layout
 * and bytes, so other weights, another oneDNN layout or ISA give another
 * name. Executors map it read-only and shared; nothing ever writes a file in
 * place (a new one is written to a temp name and renamed over), so a mapping
 * never changes under a running executor. */

#define WFILE_MAGIC "KNWGHT01"
#define WFILE_DATA_ALIGN 4096u

typedef struct wfile_head {
    char magic[8];
    uint32_t count;
    uint32_t reserved;
    uint64_t file_size;
    uint8_t key[32];
} wfile_head;

typedef struct wfile_entry {
    uint64_t off, size;
} wfile_entry;

static size_t align_up(size_t v, size_t a)
{
    return (v + a - 1) / a * a;
}

/* The layout part of the key: what decides where each weight lands. */
typedef struct wkey_rec {
    int64_t node, ndims, data_type, format_kind, size, inner_nblks;
    int64_t dims[DNNL_MAX_NDIMS], padded_dims[DNNL_MAX_NDIMS], strides[DNNL_MAX_NDIMS];
    int64_t inner_blks[DNNL_MAX_NDIMS], inner_idxs[DNNL_MAX_NDIMS];
    uint8_t digest[32];
} wkey_rec;

static kn_status weights_key(const dnnl_impl *d, const wfile_entry *ent, uint8_t key[32],
                             kn_err *e)
{
    wkey_rec *r = calloc((size_t)d->nw, sizeof *r);
    if (!r)
        return kn_err_set(e, KN_NOMEM, "shared weights: out of memory");
    for (int i = 0; i < d->nw; i++) {
        const dnnl_memory_desc_t *md = &d->w[i].md;
        r[i].node = d->w[i].node;
        r[i].ndims = md->ndims;
        r[i].data_type = md->data_type;
        r[i].format_kind = md->format_kind;
        r[i].size = (int64_t)ent[i].size;
        for (int k = 0; k < md->ndims && k < DNNL_MAX_NDIMS; k++) {
            r[i].dims[k] = md->dims[k];
            r[i].padded_dims[k] = md->padded_dims[k];
        }
        if (md->format_kind == dnnl_blocked) {
            const dnnl_blocking_desc_t *b = &md->format_desc.blocking;
            r[i].inner_nblks = b->inner_nblks;
            for (int k = 0; k < md->ndims && k < DNNL_MAX_NDIMS; k++)
                r[i].strides[k] = b->strides[k];
            for (int k = 0; k < b->inner_nblks && k < DNNL_MAX_NDIMS; k++) {
                r[i].inner_blks[k] = b->inner_blks[k];
                r[i].inner_idxs[k] = b->inner_idxs[k];
            }
        }
        kn_sha256(d->w[i].data, ent[i].size, r[i].digest);
    }
    kn_sha256(r, (size_t)d->nw * sizeof *r, key);
    free(r);
    return KN_OK;
}

static bool write_all(int fd, const void *p, size_t n, uint64_t off)
{
    const char *c = p;
    while (n > 0) {
        ssize_t k = pwrite(fd, c, n > ((size_t)1 << 30) ? (size_t)1 << 30 : n, (off_t)off);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return false;
        c += k;
        n -= (size_t)k;
        off += (uint64_t)k;
    }
    return true;
}

/* Writes the file under a temp name and renames it over path. */
static kn_status wfile_write(const char *path, const dnnl_impl *d, const wfile_head *h,
                             const wfile_entry *ent, kn_err *e)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return kn_err_set(e, KN_IO, "shared weights: cannot create %s: %s", tmp, strerror(errno));
    bool ok = write_all(fd, h, sizeof *h, 0) &&
              write_all(fd, ent, (size_t)h->count * sizeof *ent, sizeof *h);
    for (int i = 0; ok && i < d->nw; i++)
        ok = write_all(fd, d->w[i].data, ent[i].size, ent[i].off);
    ok = ok && ftruncate(fd, (off_t)h->file_size) == 0;
    int err = errno;
    if (close(fd) != 0 && ok) {
        ok = false;
        err = errno;
    }
    if (ok && rename(tmp, path) != 0) {
        ok = false;
        err = errno;
    }
    if (!ok) {
        unlink(tmp);
        return kn_err_set(e, KN_IO, "shared weights: cannot write %s: %s", path, strerror(err));
    }
    return KN_OK;
}

/* Maps path and checks that it is exactly this executor's weights file:
 * size, header, table and every byte. NULL (with the reason) otherwise. */
static void *wfile_map(const char *path, const dnnl_impl *d, const wfile_head *h,
                       const wfile_entry *ent, const char **why)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        *why = errno == ENOENT ? "missing" : "unreadable";
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size != h->file_size) {
        close(fd);
        *why = "wrong size";
        return NULL;
    }
    void *m = mmap(NULL, h->file_size, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (m == MAP_FAILED) {
        *why = "cannot be mapped";
        return NULL;
    }
    const uint8_t *b = m;
    *why = NULL;
    if (memcmp(b, h, sizeof *h) != 0 ||
        memcmp(b + sizeof *h, ent, (size_t)h->count * sizeof *ent) != 0)
        *why = "wrong header";
    for (int i = 0; !*why && i < d->nw; i++)
        if (memcmp(b + ent[i].off, d->w[i].data, ent[i].size) != 0)
            *why = "wrong content";
    if (*why) {
        munmap(m, h->file_size);
        return NULL;
    }
    return m;
}

static kn_status dnnl_share(kn_nn_exec *x, const char *dir, kn_nn_shared_weights *info,
                            kn_err *e)
{
    dnnl_impl *d = x->impl;
    kn_status rc = KN_OK;
    int dfd = -1;
    void *m = NULL;
    if (d->wmap)
        return kn_err_set(e, KN_INVALID, "shared weights: already shared");
    if (d->nw == 0)
        return KN_OK;
    wfile_entry *ent = calloc((size_t)d->nw, sizeof *ent);
    if (!ent)
        return kn_err_set(e, KN_NOMEM, "shared weights: out of memory");
    wfile_head h;
    memset(&h, 0, sizeof h);
    memcpy(h.magic, WFILE_MAGIC, sizeof h.magic);
    h.count = (uint32_t)d->nw;
    size_t off = align_up(sizeof h + (size_t)d->nw * sizeof *ent, WFILE_DATA_ALIGN);
    for (int i = 0; i < d->nw; i++) {
        ent[i].off = off;
        ent[i].size = dnnl_memory_desc_get_size(&d->w[i].md);
        off = align_up(off + ent[i].size, 64);
        info->bytes += ent[i].size;
    }
    h.file_size = off;
    if ((rc = weights_key(d, ent, h.key, e)))
        goto out;
    char hex[65];
    kn_hex(h.key, sizeof h.key, hex);
    if ((rc = kn_mkdirs(dir, 0755, e)))
        goto out;
    if (snprintf(info->path, sizeof info->path, "%s/%s.weights", dir, hex) >=
        (int)sizeof info->path) {
        rc = kn_err_set(e, KN_INVALID, "shared weights: directory name too long");
        goto out;
    }
    /* One builder at a time: instances starting together map one file
     * instead of each renaming its own over the others'. */
    dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 || flock(dfd, LOCK_EX) != 0) {
        rc = kn_err_set(e, KN_IO, "shared weights: cannot lock %s: %s", dir, strerror(errno));
        goto out;
    }
    const char *why = NULL;
    m = wfile_map(info->path, d, &h, ent, &why);
    if (!m) {
        if ((rc = wfile_write(info->path, d, &h, ent, e)))
            goto out;
        info->built = true;
        m = wfile_map(info->path, d, &h, ent, &why);
        if (!m) {
            rc = kn_err_set(e, KN_IO, "shared weights: %s is %s right after writing it",
                            info->path, why);
            goto out;
        }
    }
    for (int i = 0; i < d->nw; i++) {
        void *p = (uint8_t *)m + ent[i].off;
        int node = d->w[i].node;
        /* oneDNN only reads weights of inference primitives: the handle is
         * const in practice */
        DN(dnnl_memory_set_data_handle(d->w[i].mem, p), "weights handle");
        kn_free_aligned(d->w[i].data);
        d->w[i].data = p;
        d->w[i].shared = true;
    }
    d->wmap = m;
    d->wmap_size = h.file_size;
    m = NULL;
out:
    if (rc && d->wmap == NULL && m) {
        /* entries already switched point into m: switching back would need
         * the private copies, so keep the mapping alive */
        bool used = false;
        for (int i = 0; i < d->nw; i++)
            used = used || d->w[i].shared;
        if (used) {
            d->wmap = m;
            d->wmap_size = h.file_size;
        } else {
            munmap(m, h.file_size);
        }
    }
    if (dfd >= 0)
        close(dfd); /* releases the lock */
    free(ent);
    return rc;
}

const kn_nn_backend_ops kn__nn_dnnl_ops = {dnnl_create, dnnl_run, dnnl_destroy, dnnl_share};
