/* TFLite import on tiny hand-built models, needing nothing from ../shared:
 * a small flatbuffer writer (written here, independently of the importer's
 * reader) produces models whose float outputs are checked against a direct
 * NHWC computation, on both backends: OHWI and depthwise filter layouts, a
 * depth multiplier, TensorFlow's asymmetric SAME padding, in-bounds average
 * pooling, the HWC flatten order in front of FULLY_CONNECTED, uint8 per-tensor
 * and int8 per-channel weights with int32 biases, ReLU6 implied by a uint8
 * output range, float16 weights behind DEQUANTIZE and QUANTIZE/DEQUANTIZE at
 * the edges. Then malformed models —
 * one fault at a time in the description (bad tensor/buffer/opcode indices,
 * unsupported operators and activations, wrong sizes) and in the bytes (bad
 * offsets, vtables, vector lengths, truncation), and a sweep of prefixes and
 * random byte changes — must each give the expected status with a message
 * naming the operator or tensor, and never crash (run under ASan too).
 */
#include "kennel/nn.h"
#include "kn_test.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- small helpers ------------------------------------------------------ */

static int count_op(const kn_nn_graph *g, kn_nn_op op)
{
    int n = 0;
    for (int i = 0; i < kn_nn_graph_count(g); i++)
        n += kn_nn_graph_node(g, i)->op == op;
    return n;
}

/* Imports data; returns the status and leaves the message in e. */
static kn_status import(const uint8_t *data, size_t len, kn_tflite_info *info, kn_err *e,
                        kn_nn_graph **out)
{
    kn_nn_graph *g = kn_nn_graph_new();
    kn_err_clear(e);
    kn_status rc = kn_tflite_import(g, data, len, info, e);
    if (out && rc == KN_OK)
        *out = g;
    else
        kn_nn_graph_free(g);
    return rc;
}

/* ---- a tiny flatbuffer writer for hand-built models ---------------------- */

/* Objects are written front to back; an offset field is written as a
 * placeholder and patched once its target exists (targets always come
 * later, as the format requires). Each table's vtable sits just before it. */
typedef struct fbw {
    uint8_t *b;
    size_t n, cap;
} fbw;

static void fw_reserve(fbw *w, size_t extra)
{
    if (w->n + extra <= w->cap)
        return;
    while (w->cap < w->n + extra)
        w->cap = w->cap ? w->cap * 2 : 1024;
    w->b = realloc(w->b, w->cap);
    if (!w->b)
        abort();
}

static size_t fw_put(fbw *w, const void *p, size_t n)
{
    fw_reserve(w, n);
    size_t at = w->n;
    if (p)
        memcpy(w->b + at, p, n);
    else
        memset(w->b + at, 0, n);
    w->n += n;
    return at;
}

static void fw_align(fbw *w, size_t a)
{
    while (w->n % a)
        fw_put(w, NULL, 1);
}

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void fw_patch(fbw *w, size_t field, size_t target)
{
    put32(w->b + field, (uint32_t)(target - field));
}

/* A table of nf 4-byte slots; slot i is present when bit i of mask is set.
 * Returns the table position; slot i lives at pos + 4 + 4 * i. */
static size_t fw_table(fbw *w, int nf, const uint32_t *vals, uint32_t mask)
{
    fw_align(w, 4);
    size_t vt = fw_put(w, NULL, 4 + 2 * (size_t)nf);
    put16(w->b + vt, (uint16_t)(4 + 2 * nf));
    put16(w->b + vt + 2, (uint16_t)(4 + 4 * nf));
    for (int i = 0; i < nf; i++)
        put16(w->b + vt + 4 + 2 * i, (mask >> i) & 1 ? (uint16_t)(4 + 4 * i) : 0);
    fw_align(w, 4);
    size_t pos = fw_put(w, NULL, 4 + 4 * (size_t)nf);
    put32(w->b + pos, (uint32_t)(pos - vt));
    for (int i = 0; i < nf; i++)
        put32(w->b + pos + 4 + 4 * i, vals ? vals[i] : 0);
    return pos;
}

static size_t slot(size_t table, int i)
{
    return table + 4 + 4 * (size_t)i;
}

/* A vector of n elements of `size` bytes; returns the length field's position. */
static size_t fw_vec(fbw *w, size_t size, uint32_t n, const void *data, size_t align)
{
    fw_align(w, align > 4 ? align : 4);
    while ((w->n + 4) % (align > 4 ? align : 4))
        fw_put(w, NULL, 1);
    size_t at = fw_put(w, NULL, 4);
    put32(w->b + at, n);
    fw_put(w, data, size * n);
    return at;
}

/* ---- model descriptions --------------------------------------------------- */

enum { T_F32 = 0, T_F16 = 1, T_I32 = 2, T_U8 = 3, T_I8 = 9 };
enum {
    C_ADD = 0, C_AVG = 1, C_CONV = 3, C_DW = 4, C_DEQ = 6, C_FC = 9, C_LOGISTIC = 14,
    C_MAX = 17, C_RESHAPE = 22, C_SOFTMAX = 25, C_SQUEEZE = 43, C_QUANTIZE = 114,
    C_BIG = 200
};
enum { O_CONV = 1, O_DW = 2, O_POOL = 5, O_FC = 8, O_SOFTMAX = 9, O_ADD = 11, O_RESHAPE = 17 };

typedef struct tm_tensor {
    int ndim;
    int32_t dims[8];
    int type;
    const void *data; /* NULL: no buffer */
    size_t nbytes;
    int nq;
    const float *scale;
    const int64_t *zero;
    int qdim;
    int64_t buffer_override; /* >= 0 replaces the buffer index */
} tm_tensor;

typedef struct tm_op {
    int code;
    int n_in, in[3], out;
    int opt_type;      /* 0: no options */
    int n_opt;
    uint32_t opt[8];
    uint32_t opt_mask;
    int64_t opcode_override; /* >= 0 replaces the opcode index */
} tm_op;

typedef struct tm_model {
    uint32_t version;
    int nt, nops;
    tm_tensor t[24];
    tm_op op[12];
    int input, output;
} tm_model;

/* Positions of a few fields, for byte-level faults. */
typedef struct tm_pos {
    size_t model, tensors_field, tensors_vec, tensor0, ops_vec, op0_inputs_vec;
} tm_pos;

static uint8_t *tm_build(const tm_model *m, size_t *len, tm_pos *pos)
{
    fbw w = {0};
    tm_pos scratch;
    if (!pos)
        pos = &scratch;
    size_t root = fw_put(&w, NULL, 4);
    fw_put(&w, "TFL3", 4);
    /* Model: version, operator_codes, subgraphs, description, buffers */
    uint32_t mv[5] = {m->version};
    size_t model = fw_table(&w, 5, mv, 1 | 2 | 4 | 16);
    fw_patch(&w, root, model);
    pos->model = model;

    size_t codes = fw_vec(&w, 4, (uint32_t)m->nops, NULL, 4);
    fw_patch(&w, slot(model, 1), codes);
    for (int i = 0; i < m->nops; i++) {
        int c = m->op[i].code;
        uint32_t v[4] = {(uint32_t)(c < 127 ? c : 127), 0, 1, (uint32_t)c};
        size_t t = fw_table(&w, 4, v, 1 | 4 | 8);
        fw_patch(&w, codes + 4 + 4 * (size_t)i, t);
    }

    size_t sgs = fw_vec(&w, 4, 1, NULL, 4);
    fw_patch(&w, slot(model, 2), sgs);
    size_t sg = fw_table(&w, 4, NULL, 15);
    fw_patch(&w, sgs + 4, sg);
    pos->tensors_field = slot(sg, 0);

    size_t tv = fw_vec(&w, 4, (uint32_t)m->nt, NULL, 4);
    fw_patch(&w, slot(sg, 0), tv);
    pos->tensors_vec = tv;
    uint32_t nbuf = 1;
    for (int i = 0; i < m->nt; i++) {
        const tm_tensor *t = &m->t[i];
        uint32_t buf = 0;
        if (t->data)
            buf = nbuf++;
        if (t->buffer_override >= 0)
            buf = (uint32_t)t->buffer_override;
        uint32_t v[5] = {0, (uint32_t)t->type, buf, 0, 0};
        size_t tt = fw_table(&w, 5, v, 1 | 2 | 4 | 8 | (t->nq ? 16 : 0));
        if (i == 0)
            pos->tensor0 = tt;
        fw_patch(&w, tv + 4 + 4 * (size_t)i, tt);
        fw_patch(&w, slot(tt, 0), fw_vec(&w, 4, (uint32_t)t->ndim, t->dims, 4));
        char name[16];
        int nl = snprintf(name, sizeof name, "t%d", i);
        size_t s = fw_vec(&w, 1, (uint32_t)nl + 1, name, 4);
        put32(w.b + s, (uint32_t)nl); /* string: the NUL is not counted */
        fw_patch(&w, slot(tt, 3), s);
        if (t->nq) {
            /* QuantizationParameters: min, max, scale, zero_point,
             * details_type, details, quantized_dimension */
            uint32_t qv[7] = {0, 0, 0, 0, 0, 0, (uint32_t)t->qdim};
            size_t q = fw_table(&w, 7, qv, 4 | 8 | 64);
            fw_patch(&w, slot(tt, 4), q);
            fw_patch(&w, slot(q, 2), fw_vec(&w, 4, (uint32_t)t->nq, t->scale, 4));
            int64_t zeros[64] = {0};
            fw_patch(&w, slot(q, 3),
                     fw_vec(&w, 8, (uint32_t)t->nq, t->zero ? t->zero : zeros, 8));
        }
    }
    int32_t io[1] = {m->input};
    fw_patch(&w, slot(sg, 1), fw_vec(&w, 4, 1, io, 4));
    io[0] = m->output;
    fw_patch(&w, slot(sg, 2), fw_vec(&w, 4, 1, io, 4));

    size_t ov = fw_vec(&w, 4, (uint32_t)m->nops, NULL, 4);
    fw_patch(&w, slot(sg, 3), ov);
    pos->ops_vec = ov;
    for (int i = 0; i < m->nops; i++) {
        const tm_op *o = &m->op[i];
        uint32_t idx = o->opcode_override >= 0 ? (uint32_t)o->opcode_override : (uint32_t)i;
        /* Operator: opcode_index, inputs, outputs, builtin_options_type,
         * builtin_options */
        uint32_t v[5] = {idx, 0, 0, (uint32_t)o->opt_type, 0};
        size_t ot = fw_table(&w, 5, v, 1 | 2 | 4 | (o->opt_type ? 8 | 16 : 0));
        fw_patch(&w, ov + 4 + 4 * (size_t)i, ot);
        size_t iv = fw_vec(&w, 4, (uint32_t)o->n_in, o->in, 4);
        if (i == 0)
            pos->op0_inputs_vec = iv;
        fw_patch(&w, slot(ot, 1), iv);
        int32_t out[1] = {o->out};
        fw_patch(&w, slot(ot, 2), fw_vec(&w, 4, 1, out, 4));
        if (o->opt_type)
            fw_patch(&w, slot(ot, 4), fw_table(&w, o->n_opt, o->opt, o->opt_mask));
    }

    size_t bv = fw_vec(&w, 4, nbuf, NULL, 4);
    fw_patch(&w, slot(model, 4), bv);
    size_t b0 = fw_table(&w, 1, NULL, 0);
    fw_patch(&w, bv + 4, b0);
    uint32_t k = 1;
    for (int i = 0; i < m->nt; i++) {
        if (!m->t[i].data)
            continue;
        size_t bt = fw_table(&w, 1, NULL, 1);
        fw_patch(&w, bv + 4 + 4 * (size_t)k++, bt);
        fw_patch(&w, slot(bt, 0), fw_vec(&w, 1, (uint32_t)m->t[i].nbytes, m->t[i].data, 16));
    }
    *len = w.n;
    return w.b;
}

static int tm_tensor_add(tm_model *m, int ndim, const int32_t *dims, int type, const void *data,
                         size_t nbytes)
{
    tm_tensor *t = &m->t[m->nt];
    memset(t, 0, sizeof *t);
    t->ndim = ndim;
    memcpy(t->dims, dims, (size_t)ndim * sizeof *dims);
    t->type = type;
    t->data = data;
    t->nbytes = nbytes;
    t->buffer_override = -1;
    return m->nt++;
}

static tm_op *tm_op_add(tm_model *m, int code, int n_in, const int *in, int out, int opt_type,
                        int n_opt, const uint32_t *opt)
{
    tm_op *o = &m->op[m->nops++];
    memset(o, 0, sizeof *o);
    o->code = code;
    o->n_in = n_in;
    memcpy(o->in, in, (size_t)n_in * sizeof *in);
    o->out = out;
    o->opt_type = opt_type;
    o->n_opt = n_opt;
    if (opt)
        memcpy(o->opt, opt, (size_t)n_opt * sizeof *opt);
    o->opt_mask = (1u << n_opt) - 1;
    o->opcode_override = -1;
    return o;
}

/* ---- the tiny network and its direct NHWC computation ------------------- */

/* input [1,6,6,2] -> conv 3x3/2 SAME (4, relu) -> dwconv 3x3/1 SAME x2 (8,
 * relu6) ; conv 1x1 (8) on the first conv ; add (relu) -> avgpool 2x2/2
 * SAME -> maxpool 2x2/1 SAME -> reshape [1,32] -> fc 5 -> softmax */
#define NET_H 6
#define NET_C 2

typedef struct net_w {
    float c1w[4 * 3 * 3 * 2], c1b[4];
    float dww[1 * 3 * 3 * 8], dwb[8];
    float pww[8 * 1 * 1 * 4], pwb[8];
    float fcw[5 * 32], fcb[5];
} net_w;

/* Quantized storage for the same weights (see net_quantize). */
typedef struct net_q {
    uint8_t c1w[72];
    int32_t c1b[4];
    int8_t dww[72];
    int32_t dwb[8];
    int8_t pww[32];
    uint8_t fcw[160];
    float c1s, c1bs, dws[8], dwbs[8], pws[8], fcs;
    int64_t c1z, dwz[8], pwz[8], fcz;
} net_q;

static void fill(kn_rng *r, float *p, size_t n, double a)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (float)((kn_rng_uniform(r) * 2 - 1) * a);
}

static void net_init(net_w *w, uint64_t seed)
{
    kn_rng r;
    kn_rng_seed(&r, seed);
    fill(&r, w->c1w, 72, 0.5);
    fill(&r, w->c1b, 4, 0.2);
    fill(&r, w->dww, 72, 0.5);
    fill(&r, w->dwb, 8, 0.2);
    fill(&r, w->pww, 32, 0.5);
    fill(&r, w->pwb, 8, 0.2);
    fill(&r, w->fcw, 160, 0.5);
    fill(&r, w->fcb, 5, 0.2);
}

static float clampf(float v, float lo, float hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

/* Quantizes w (uint8 per tensor for conv1 and fc, int8 per channel for the
 * depthwise and 1x1 convs, int32 biases) and replaces w by the dequantized
 * values, which the float graph must then reproduce. */
static void net_quantize(net_w *w, net_q *q)
{
    q->c1s = 1.0f / 200;
    q->c1z = 120;
    for (int i = 0; i < 72; i++) {
        q->c1w[i] = (uint8_t)clampf(roundf(w->c1w[i] / q->c1s) + 120, 0, 255);
        w->c1w[i] = q->c1s * ((float)q->c1w[i] - 120);
    }
    q->c1bs = 1.0f / 4000;
    for (int i = 0; i < 4; i++) {
        q->c1b[i] = (int32_t)roundf(w->c1b[i] / q->c1bs);
        w->c1b[i] = (float)((double)q->c1bs * q->c1b[i]);
    }
    for (int c = 0; c < 8; c++) {
        q->dws[c] = (1.0f + (float)c) / 256;
        q->dwz[c] = 0;
        q->dwbs[c] = q->dws[c] / 64;
        for (int k = 0; k < 9; k++) {
            int i = k * 8 + c; /* [1][kh][kw][8]: channel is the last axis */
            q->dww[i] = (int8_t)clampf(roundf(w->dww[i] / q->dws[c]), -127, 127);
            w->dww[i] = q->dws[c] * q->dww[i];
        }
        q->dwb[c] = (int32_t)roundf(w->dwb[c] / q->dwbs[c]);
        w->dwb[c] = (float)((double)q->dwbs[c] * q->dwb[c]);
        q->pws[c] = (2.0f + (float)c) / 300;
        q->pwz[c] = c % 3 - 1;
        for (int k = 0; k < 4; k++) {
            int i = c * 4 + k; /* [8][1][1][4]: channel is the first axis */
            q->pww[i] = (int8_t)clampf(roundf(w->pww[i] / q->pws[c]) + (float)q->pwz[c], -128,
                                       127);
            w->pww[i] = q->pws[c] * ((float)q->pww[i] - (float)q->pwz[c]);
        }
    }
    q->fcs = 1.0f / 128;
    q->fcz = 128;
    for (int i = 0; i < 160; i++) {
        q->fcw[i] = (uint8_t)clampf(roundf(w->fcw[i] / q->fcs) + 128, 0, 255);
        w->fcw[i] = q->fcs * ((float)q->fcw[i] - 128);
    }
}

static int same_out(int in, int s)
{
    return (in + s - 1) / s;
}

static int same_pad_before(int in, int k, int s)
{
    int total = (same_out(in, s) - 1) * s + k - in;
    return total > 0 ? total / 2 : 0;
}

/* NHWC conv; depthwise when mult > 0 (w is [1][k][k][C*mult]). */
static void ref_conv(const float *x, int h, int wd, int c, const float *w, const float *b, int oc,
                     int k, int s, int mult, int act, float *y)
{
    int oh = same_out(h, s), ow = same_out(wd, s);
    int pt = same_pad_before(h, k, s), pl = same_pad_before(wd, k, s);
    for (int i = 0; i < oh; i++)
        for (int j = 0; j < ow; j++)
            for (int o = 0; o < oc; o++) {
                double acc = b[o];
                for (int u = 0; u < k; u++)
                    for (int v = 0; v < k; v++) {
                        int yy = i * s - pt + u, xx = j * s - pl + v;
                        if (yy < 0 || yy >= h || xx < 0 || xx >= wd)
                            continue;
                        const float *px = x + ((size_t)yy * wd + xx) * c;
                        if (mult)
                            acc += (double)px[o / mult] * w[(u * k + v) * oc + o];
                        else
                            for (int ci = 0; ci < c; ci++)
                                acc += (double)px[ci] * w[((o * k + u) * k + v) * c + ci];
                    }
                float r = (float)acc;
                if (act >= 1)
                    r = r > 0 ? r : 0;
                if (act == 3)
                    r = r < 6 ? r : 6;
                y[((size_t)i * ow + j) * oc + o] = r;
            }
}

static void ref_pool(const float *x, int h, int wd, int c, int k, int s, bool avg, float *y)
{
    int oh = same_out(h, s), ow = same_out(wd, s);
    int pt = same_pad_before(h, k, s), pl = same_pad_before(wd, k, s);
    for (int i = 0; i < oh; i++)
        for (int j = 0; j < ow; j++)
            for (int ch = 0; ch < c; ch++) {
                double acc = avg ? 0 : -1e30;
                int n = 0;
                for (int u = 0; u < k; u++)
                    for (int v = 0; v < k; v++) {
                        int yy = i * s - pt + u, xx = j * s - pl + v;
                        if (yy < 0 || yy >= h || xx < 0 || xx >= wd)
                            continue;
                        double val = x[((size_t)yy * wd + xx) * c + ch];
                        acc = avg ? acc + val : (val > acc ? val : acc);
                        n++;
                    }
                y[((size_t)i * ow + j) * c + ch] = (float)(avg ? acc / n : acc);
            }
}

/* The whole tiny network on one NHWC input; out has 5 probabilities.
 * c1_act: the first conv's activation (1 relu, 3 relu6). */
static void net_ref(const net_w *w, const float *x, int c1_act, float *out)
{
    float a[3 * 3 * 4], d[3 * 3 * 8], p[3 * 3 * 8], s[3 * 3 * 8], ap[2 * 2 * 8], mp[2 * 2 * 8];
    ref_conv(x, NET_H, NET_H, NET_C, w->c1w, w->c1b, 4, 3, 2, 0, c1_act, a);
    ref_conv(a, 3, 3, 4, w->dww, w->dwb, 8, 3, 1, 2, 3, d);
    ref_conv(a, 3, 3, 4, w->pww, w->pwb, 8, 1, 1, 0, 0, p);
    for (int i = 0; i < 72; i++)
        s[i] = d[i] + p[i] > 0 ? d[i] + p[i] : 0;
    ref_pool(s, 3, 3, 8, 2, 2, true, ap);
    ref_pool(ap, 2, 2, 8, 2, 1, false, mp);
    double logits[5], mx = -1e30, sum = 0;
    for (int o = 0; o < 5; o++) {
        double acc = w->fcb[o];
        for (int i = 0; i < 32; i++)
            acc += (double)w->fcw[o * 32 + i] * mp[i]; /* mp is NHWC-flat, as TFLite */
        logits[o] = acc;
        mx = acc > mx ? acc : mx;
    }
    for (int o = 0; o < 5; o++)
        sum += exp(logits[o] - mx);
    for (int o = 0; o < 5; o++)
        out[o] = (float)(exp(logits[o] - mx) / sum);
}

/* Describes the tiny network; q (may be NULL) selects quantized weights. */
static void net_model(tm_model *m, const net_w *w, const net_q *q)
{
    memset(m, 0, sizeof *m);
    m->version = 3;
    static const int32_t din[4] = {1, NET_H, NET_H, NET_C}, dc1[4] = {4, 3, 3, 2}, d4[1] = {4},
                         da[4] = {1, 3, 3, 4}, ddw[4] = {1, 3, 3, 8}, d8[1] = {8},
                         dd[4] = {1, 3, 3, 8}, dpw[4] = {8, 1, 1, 4}, dap[4] = {1, 2, 2, 8},
                         dflat[2] = {1, 32}, dshape[1] = {2}, dfc[2] = {5, 32}, d5[1] = {5},
                         dout[2] = {1, 5};
    static const int32_t shape_val[2] = {1, 32};
    int x = tm_tensor_add(m, 4, din, q ? T_U8 : T_F32, NULL, 0);
    int c1w, c1b, dww, dwb, pww, pwb, fcw, fcb;
    if (!q) {
        c1w = tm_tensor_add(m, 4, dc1, T_F32, w->c1w, sizeof w->c1w);
        c1b = tm_tensor_add(m, 1, d4, T_F32, w->c1b, sizeof w->c1b);
        dww = tm_tensor_add(m, 4, ddw, T_F32, w->dww, sizeof w->dww);
        dwb = tm_tensor_add(m, 1, d8, T_F32, w->dwb, sizeof w->dwb);
        pww = tm_tensor_add(m, 4, dpw, T_F32, w->pww, sizeof w->pww);
        pwb = tm_tensor_add(m, 1, d8, T_F32, w->pwb, sizeof w->pwb);
        fcw = tm_tensor_add(m, 2, dfc, T_F32, w->fcw, sizeof w->fcw);
        fcb = tm_tensor_add(m, 1, d5, T_F32, w->fcb, sizeof w->fcb);
    } else {
        static const float in_scale = 1.0f / 128;
        static const int64_t in_zero = 128;
        m->t[x].nq = 1;
        m->t[x].scale = &in_scale;
        m->t[x].zero = &in_zero;
        c1w = tm_tensor_add(m, 4, dc1, T_U8, q->c1w, sizeof q->c1w);
        m->t[c1w].nq = 1, m->t[c1w].scale = &q->c1s, m->t[c1w].zero = &q->c1z;
        c1b = tm_tensor_add(m, 1, d4, T_I32, q->c1b, sizeof q->c1b);
        m->t[c1b].nq = 1, m->t[c1b].scale = &q->c1bs;
        dww = tm_tensor_add(m, 4, ddw, T_I8, q->dww, sizeof q->dww);
        m->t[dww].nq = 8, m->t[dww].scale = q->dws, m->t[dww].zero = q->dwz, m->t[dww].qdim = 3;
        dwb = tm_tensor_add(m, 1, d8, T_I32, q->dwb, sizeof q->dwb);
        m->t[dwb].nq = 8, m->t[dwb].scale = q->dwbs;
        pww = tm_tensor_add(m, 4, dpw, T_I8, q->pww, sizeof q->pww);
        m->t[pww].nq = 8, m->t[pww].scale = q->pws, m->t[pww].zero = q->pwz, m->t[pww].qdim = 0;
        pwb = tm_tensor_add(m, 1, d8, T_F32, w->pwb, sizeof w->pwb);
        fcw = tm_tensor_add(m, 2, dfc, T_U8, q->fcw, sizeof q->fcw);
        m->t[fcw].nq = 1, m->t[fcw].scale = &q->fcs, m->t[fcw].zero = &q->fcz;
        fcb = tm_tensor_add(m, 1, d5, T_F32, w->fcb, sizeof w->fcb);
    }
    int a = tm_tensor_add(m, 4, da, q ? T_U8 : T_F32, NULL, 0);
    if (q) {
        /* uint8 output over [0, 6] with no fused activation: ReLU6 as
         * TOCO-era files express it */
        static const float a_scale = 6.0f / 255;
        static const int64_t a_zero = 0;
        m->t[a].nq = 1, m->t[a].scale = &a_scale, m->t[a].zero = &a_zero;
    }
    int d = tm_tensor_add(m, 4, dd, T_F32, NULL, 0);
    int p = tm_tensor_add(m, 4, dd, T_F32, NULL, 0);
    int s = tm_tensor_add(m, 4, dd, T_F32, NULL, 0);
    int ap = tm_tensor_add(m, 4, dap, T_F32, NULL, 0);
    int mp = tm_tensor_add(m, 4, dap, T_F32, NULL, 0);
    int shp = tm_tensor_add(m, 1, dshape, T_I32, shape_val, sizeof shape_val);
    int flat = tm_tensor_add(m, 2, dflat, T_F32, NULL, 0);
    int logits = tm_tensor_add(m, 2, dout, T_F32, NULL, 0);
    int prob = tm_tensor_add(m, 2, dout, T_F32, NULL, 0);
    m->input = x;
    m->output = prob;
    /* Conv2DOptions: padding, stride_w, stride_h, act, dil_w, dil_h */
    tm_op_add(m, C_CONV, 3, (int[]){x, c1w, c1b}, a, O_CONV, 6,
              (uint32_t[]){0, 2, 2, q ? 0 : 1, 1, 1});
    /* DepthwiseConv2DOptions: padding, stride_w, stride_h, mult, act, dil */
    tm_op_add(m, C_DW, 3, (int[]){a, dww, dwb}, d, O_DW, 7,
              (uint32_t[]){0, 1, 1, 2, 3, 1, 1});
    tm_op_add(m, C_CONV, 3, (int[]){a, pww, pwb}, p, O_CONV, 4, (uint32_t[]){1, 1, 1, 0});
    tm_op_add(m, C_ADD, 2, (int[]){d, p}, s, O_ADD, 1, (uint32_t[]){1});
    /* Pool2DOptions: padding, stride_w, stride_h, filter_w, filter_h, act */
    tm_op_add(m, C_AVG, 1, (int[]){s}, ap, O_POOL, 6, (uint32_t[]){0, 2, 2, 2, 2, 0});
    tm_op_add(m, C_MAX, 1, (int[]){ap}, mp, O_POOL, 6, (uint32_t[]){0, 1, 1, 2, 2, 0});
    tm_op_add(m, C_RESHAPE, 2, (int[]){mp, shp}, flat, 0, 0, NULL);
    tm_op_add(m, C_FC, 3, (int[]){flat, fcw, fcb}, logits, O_FC, 1, (uint32_t[]){0});
    uint32_t one;
    float f1 = 1.0f;
    memcpy(&one, &f1, 4);
    tm_op_add(m, C_SOFTMAX, 1, (int[]){logits}, prob, O_SOFTMAX, 1, &one);
}

/* Runs g on NHWC input x with backend b; out gets the outputs. */
static bool run_graph(const kn_nn_graph *g, kn_nn_backend b, const float *x_nhwc, int h, int w,
                      int c, float *out)
{
    kn_nn_exec_params p = kn_nn_exec_default_params();
    p.backend = b;
    p.threads = 1;
    kn_nn_exec *x = NULL;
    kn_err e;
    float *chw = malloc((size_t)h * w * c * sizeof *chw);
    bool ok = chw && kn_nn_exec_new(g, &p, &x, &e) == KN_OK;
    if (ok) {
        for (int i = 0; i < h * w; i++)
            for (int ch = 0; ch < c; ch++)
                chw[(size_t)ch * h * w + i] = x_nhwc[(size_t)i * c + ch];
        ok = kn_nn_exec_run(x, chw, 1, out, &e) == KN_OK;
    }
    if (!ok)
        fprintf(stderr, "run (%s): %s\n", kn_nn_backend_name(b), e.msg);
    kn_nn_exec_free(x);
    free(chw);
    return ok;
}

static void check_tiny(bool quant)
{
    net_w w;
    net_q q;
    net_init(&w, quant ? 7 : 3);
    if (quant)
        net_quantize(&w, &q);
    tm_model m;
    net_model(&m, &w, quant ? &q : NULL);
    size_t len;
    uint8_t *bytes = tm_build(&m, &len, NULL);
    kn_tflite_info info;
    kn_err e;
    kn_nn_graph *g = NULL;
    kn_status rc = import(bytes, len, &info, &e, &g);
    if (rc)
        fprintf(stderr, "tiny import: %s\n", e.msg);
    KN_CHECK_INT(rc, KN_OK);
    free(bytes);
    if (rc)
        return;
    KN_CHECK_INT(info.in_h, NET_H);
    KN_CHECK_INT(info.in_w, NET_H);
    KN_CHECK_INT(info.in_c, NET_C);
    KN_CHECK_INT(info.out_n, 5);
    KN_CHECK(info.has_softmax);
    KN_CHECK_INT(info.quantized, quant);
    KN_CHECK_NEAR(info.in_scale, quant ? 1.0 / 128 : 1.0, 1e-9);
    KN_CHECK_NEAR(info.in_zero, quant ? 128 : 0, 0);
    /* input conv dwconv conv add avgpool maxpool flatten linear softmax */
    KN_CHECK_INT(kn_nn_graph_count(g), 10);
    KN_CHECK_INT(count_op(g, KN_OP_CONV), 3);
    KN_CHECK_INT(count_op(g, KN_OP_FLATTEN), 1);
    const kn_nn_node *c1 = kn_nn_graph_node(g, 1), *dw = kn_nn_graph_node(g, 2);
    /* SAME 3x3/2 on 6: one pixel of padding, at the bottom/right */
    KN_CHECK_INT(c1->win.pt, 0);
    KN_CHECK_INT(c1->win.pb, 1);
    KN_CHECK_INT(c1->win.pl, 0);
    KN_CHECK_INT(c1->win.pr, 1);
    KN_CHECK_INT(c1->act, quant ? KN_ACT_RELU6 : KN_ACT_RELU);
    KN_CHECK_INT(dw->groups, 4);
    KN_CHECK_INT(dw->out_c, 8);
    KN_CHECK_INT(dw->act, KN_ACT_RELU6);

    kn_rng r;
    kn_rng_seed(&r, 11);
    for (int trial = 0; trial < 3; trial++) {
        float x[NET_H * NET_H * NET_C], want[5], got[5];
        fill(&r, x, sizeof x / sizeof x[0], 1.5);
        net_ref(&w, x, quant ? 3 : 1, want);
        for (int b = 0; b < 2; b++) {
            kn_nn_backend be = b ? KN_NN_DNNL : KN_NN_REF;
            memset(got, 0, sizeof got);
            KN_CHECK(run_graph(g, be, x, NET_H, NET_H, NET_C, got));
            KN_CHECK_NEAR(kn_test_max_abs_diff(got, want, 5), 0, 1e-5);
        }
    }
    kn_nn_graph_free(g);
}

static void test_tiny_float(void)
{
    check_tiny(false);
}

static void test_tiny_quant(void)
{
    check_tiny(true);
}

/* A DEQUANTIZE of float16 weights feeding FULLY_CONNECTED, and QUANTIZE /
 * DEQUANTIZE around the activations, as float16 and int8 converters write. */
static void test_dequantize_edges(void)
{
    tm_model m = {.version = 3};
    static const uint16_t w16[6] = {0x3c00, 0xc000, 0x3800, 0x0000, 0xbc00, 0x4200};
    static const float in_scale = 0.5f;
    static const int64_t in_zero = 3;
    int x = tm_tensor_add(&m, 4, (int32_t[]){1, 1, 1, 3}, T_F32, NULL, 0);
    int xq = tm_tensor_add(&m, 4, (int32_t[]){1, 1, 1, 3}, T_I8, NULL, 0);
    m.t[xq].nq = 1, m.t[xq].scale = &in_scale, m.t[xq].zero = &in_zero;
    int w = tm_tensor_add(&m, 2, (int32_t[]){2, 3}, T_F16, w16, sizeof w16);
    int wf = tm_tensor_add(&m, 2, (int32_t[]){2, 3}, T_F32, NULL, 0);
    int y = tm_tensor_add(&m, 2, (int32_t[]){1, 2}, T_I8, NULL, 0);
    int yf = tm_tensor_add(&m, 2, (int32_t[]){1, 2}, T_F32, NULL, 0);
    m.input = x;
    m.output = yf;
    tm_op_add(&m, C_QUANTIZE, 1, (int[]){x}, xq, 0, 0, NULL);
    tm_op_add(&m, C_DEQ, 1, (int[]){w}, wf, 0, 0, NULL);
    tm_op_add(&m, C_FC, 2, (int[]){xq, wf}, y, O_FC, 1, (uint32_t[]){0});
    tm_op_add(&m, C_DEQ, 1, (int[]){y}, yf, 0, 0, NULL);
    size_t len;
    uint8_t *bytes = tm_build(&m, &len, NULL);
    kn_tflite_info info;
    kn_err e;
    kn_nn_graph *g = NULL;
    kn_status rc = import(bytes, len, &info, &e, &g);
    free(bytes);
    if (rc)
        fprintf(stderr, "%s\n", e.msg);
    KN_REQUIRE(rc == KN_OK);
    KN_CHECK_INT(info.out_n, 2);
    KN_CHECK(!info.has_softmax);
    KN_CHECK_INT(kn_nn_graph_count(g), 2);
    float in[3] = {1, 2, 3}, out[2];
    KN_CHECK(run_graph(g, KN_NN_REF, in, 1, 1, 3, out));
    /* rows (1, -2, 0.5) and (0, -1, 3) */
    KN_CHECK_NEAR(out[0], 1 - 4 + 1.5, 1e-6);
    KN_CHECK_NEAR(out[1], 0 - 2 + 9, 1e-6);
    kn_nn_graph_free(g);
}

/* ---- malformed input ---------------------------------------------------- */

typedef struct fault {
    const char *what;
    kn_status want;
    const char *msg; /* expected substring */
} fault;

/* Imports a broken model and checks the status and the message. */
static void expect_fault(const fault *f, const uint8_t *bytes, size_t len)
{
    kn_tflite_info info;
    kn_err e;
    kn_status rc = import(bytes, len, &info, &e, NULL);
    if (rc != f->want || !strstr(e.msg, f->msg) || strncmp(e.msg, "tflite: ", 8) != 0)
        fprintf(stderr, "fault '%s': got %s \"%s\", want %s containing \"%s\"\n", f->what,
                kn_status_name(rc), e.msg, kn_status_name(f->want), f->msg);
    else
        printf("  %-28s -> %s: %s\n", f->what, kn_status_name(rc), e.msg);
    KN_CHECK_INT(rc, f->want);
    KN_CHECK_CONTAINS(e.msg, f->msg);
    KN_CHECK(strncmp(e.msg, "tflite: ", 8) == 0);
    KN_CHECK_INT(info.out_n, 0);
}

static void test_spec_faults(void)
{
    net_w w;
    net_init(&w, 5);
    for (int k = 0;; k++) {
        tm_model m;
        net_model(&m, &w, NULL);
        fault f = {0};
        static const int32_t big_dims[7] = {1, 1, 1, 1, 1, 1, 1};
        static const float two_scales[2] = {1, 1};
        switch (k) {
        case 0:
            f = (fault){"tensor index", KN_BAD_FORMAT, "operator 1 (DEPTHWISE_CONV_2D): filter "
                                                         "tensor index 99 out of range"};
            m.op[1].in[1] = 99;
            break;
        case 1:
            f = (fault){"negative tensor index", KN_BAD_FORMAT, "bias tensor index -7"};
            m.op[0].in[2] = -7;
            break;
        case 2:
            f = (fault){"buffer index", KN_BAD_FORMAT, "tensor 1: buffer index 999 out of "
                                                       "range"};
            m.t[1].buffer_override = 999;
            break;
        case 3:
            f = (fault){"opcode index", KN_BAD_FORMAT, "operator 3: opcode index 50 out of "
                                                       "range"};
            m.op[3].opcode_override = 50;
            break;
        case 4:
            f = (fault){"unsupported op", KN_UNSUPPORTED, "operator 4 (LOGISTIC): operator is "
                                                          "not supported"};
            m.op[4].code = C_LOGISTIC;
            break;
        case 5:
            f = (fault){"unsupported op > 127", KN_UNSUPPORTED, "builtin operator 200"};
            m.op[2].code = C_BIG;
            break;
        case 6:
            f = (fault){"fused TANH", KN_UNSUPPORTED, "operator 0 (CONV_2D): fused activation "
                                                      "TANH"};
            m.op[0].opt[3] = 4;
            break;
        case 7:
            f = (fault){"padding mode", KN_BAD_FORMAT, "padding mode 7"};
            m.op[1].opt[0] = 7;
            break;
        case 8:
            f = (fault){"zero stride", KN_BAD_FORMAT, "operator 4 (AVERAGE_POOL_2D): stride"};
            m.op[4].opt[1] = 0;
            break;
        case 9:
            f = (fault){"short weight buffer", KN_BAD_FORMAT, "buffer holds 284 bytes, shape "
                                                              "needs 288"};
            m.t[1].nbytes -= 4;
            break;
        case 10:
            f = (fault){"scale count", KN_BAD_FORMAT, "2 scales do not match"};
            m.t[1].nq = 2, m.t[1].scale = two_scales, m.t[1].type = T_U8;
            m.t[1].nbytes = 72;
            break;
        case 11:
            f = (fault){"schema version", KN_UNSUPPORTED, "schema version 2"};
            m.version = 2;
            break;
        case 12:
            f = (fault){"missing options", KN_BAD_FORMAT, "operator 5 (MAX_POOL_2D): options "
                                                          "are missing"};
            m.op[5].opt_type = 0;
            break;
        case 13:
            f = (fault){"wrong options type", KN_BAD_FORMAT, "options of type 1, expected 5"};
            m.op[4].opt_type = O_CONV;
            break;
        case 14:
            f = (fault){"read before write", KN_BAD_FORMAT, "is read before any operator "
                                                            "writes it"};
            m.op[1].in[0] = 14; /* the add's output, written later */
            break;
        case 15:
            f = (fault){"written twice", KN_BAD_FORMAT, "is written twice"};
            m.op[2].out = m.op[1].out;
            break;
        case 16:
            f = (fault){"rank 7", KN_UNSUPPORTED, "has 7 dimensions"};
            m.t[12].ndim = 7;
            memcpy(m.t[12].dims, big_dims, sizeof big_dims);
            break;
        case 17:
            f = (fault){"declared shape", KN_BAD_FORMAT, "is declared 3x3x5 (HxWxC) but "
                                                         "computes to 3x3x8"};
            m.t[11].dims[3] = 5;
            break;
        case 18:
            f = (fault){"filter/channels", KN_BAD_FORMAT, "does not fit 4 input channels"};
            m.t[5].dims[3] = 3;
            break;
        case 19:
            f = (fault){"softmax beta", KN_UNSUPPORTED, "softmax with beta 2"};
            m.op[8].opt[0] = 0x40000000u;
            break;
        case 20:
            f = (fault){"weights not constant", KN_UNSUPPORTED, "is not a constant"};
            m.op[7].in[1] = 9; /* an activation as FC weights */
            break;
        default:
            return;
        }
        size_t len;
        uint8_t *bytes = tm_build(&m, &len, NULL);
        expect_fault(&f, bytes, len);
        free(bytes);
    }
}

static void test_byte_faults(void)
{
    net_w w;
    net_init(&w, 5);
    tm_model m;
    net_model(&m, &w, NULL);
    size_t len;
    tm_pos pos;
    uint8_t *good = tm_build(&m, &len, &pos);
    uint8_t *b = malloc(len);
    KN_REQUIRE(b);
    kn_err e;
    KN_CHECK_INT(import(good, len, NULL, &e, NULL), KN_OK);
    for (int k = 0;; k++) {
        memcpy(b, good, len);
        size_t n = len;
        fault f;
        switch (k) {
        case 0:
            f = (fault){"empty", KN_BAD_FORMAT, "0 bytes is not a model"};
            n = 0;
            break;
        case 1:
            f = (fault){"identifier", KN_BAD_FORMAT, "no TFL3 file identifier"};
            memcpy(b + 4, "TFL2", 4);
            break;
        case 2:
            f = (fault){"root offset", KN_BAD_FORMAT, "model: table offset"};
            put32(b, 0xfffffff0u);
            break;
        case 3:
            f = (fault){"vtable offset", KN_BAD_FORMAT, "tensor 0: vtable offset is outside"};
            put32(b + pos.tensor0, 0x80000000u);
            break;
        case 4:
            f = (fault){"vector length", KN_BAD_FORMAT, "subgraph tensors: vector of "
                                                        "4000000000 elements runs past"};
            put32(b + pos.tensors_vec, 4000000000u);
            break;
        case 5:
            f = (fault){"field offset", KN_BAD_FORMAT, "subgraph tensors: offset"};
            put32(b + pos.tensors_field, 0x7ffffff0u);
            break;
        case 6:
            f = (fault){"op input count", KN_BAD_FORMAT, "operator 0 (CONV_2D): missing input"};
            put32(b + pos.op0_inputs_vec, 0);
            break;
        case 7:
            f = (fault){"truncated", KN_BAD_FORMAT, "runs past the end"};
            n = len - 3;
            break;
        case 8:
            f = (fault){"vtable size", KN_BAD_FORMAT, "model: bad vtable"};
            put16(b + pos.model - 16, 0xfff0); /* the model's vtable: 5 slots + pad */
            break;
        default:
            free(b);
            free(good);
            return;
        }
        expect_fault(&f, b, n);
    }
}

/* Every prefix and many random byte changes of the tiny model: a status,
 * never a crash (the sanitizer build turns any overread into a failure). */
static void test_mutation_sweep(void)
{
    net_w w;
    net_init(&w, 9);
    tm_model m;
    net_model(&m, &w, NULL);
    size_t len;
    uint8_t *good = tm_build(&m, &len, NULL);
    uint8_t *b = malloc(len);
    KN_REQUIRE(b);
    int ok = 0, failed = 0, no_msg = 0;
    for (size_t n = 0; n < len; n += 1 + n / 64) {
        memcpy(b, good, n);
        kn_err e;
        kn_status rc = import(b, n, NULL, &e, NULL);
        rc ? failed++ : ok++;
        no_msg += rc && strncmp(e.msg, "tflite: ", 8) != 0;
    }
    KN_CHECK_INT(ok, 0); /* a strict prefix is never a whole model */
    kn_rng r;
    kn_rng_seed(&r, 1234);
    for (int it = 0; it < 3000; it++) {
        memcpy(b, good, len);
        int flips = 1 + (int)(kn_rng_next(&r) % 4);
        for (int k = 0; k < flips; k++) {
            size_t at = (size_t)(kn_rng_next(&r) % len);
            uint64_t how = kn_rng_next(&r);
            b[at] = how & 1 ? (uint8_t)(how >> 8) : (uint8_t)(b[at] ^ (1u << ((how >> 8) & 7)));
        }
        kn_err e;
        kn_tflite_info info;
        kn_nn_graph *g = NULL;
        kn_status rc = import(b, len, &info, &e, &g);
        if (rc == KN_OK) {
            ok++;
            KN_CHECK(info.out_n > 0);
            kn_nn_graph_free(g);
        } else {
            failed++;
            no_msg += strncmp(e.msg, "tflite: ", 8) != 0;
        }
    }
    printf("  mutation sweep: %d imported, %d rejected\n", ok, failed);
    KN_CHECK_INT(no_msg, 0);
    free(b);
    free(good);
}

int main(void)
{
    KN_RUN(test_tiny_float);
    KN_RUN(test_tiny_quant);
    KN_RUN(test_dequantize_edges);
    KN_RUN(test_spec_faults);
    KN_RUN(test_byte_faults);
    KN_RUN(test_mutation_sweep);
    return kn_test_finish();
}
