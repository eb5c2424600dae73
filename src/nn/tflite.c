/* TFLite import: reads a .tflite flatbuffer and builds the equivalent float
 * graph in kennel's NCHW IR, dequantizing uint8/int8 weights on the way.
 *
 * The reader is written against the FlatBuffers binary format and the parts
 * of TFLite's schema.fbs that a classifier needs; it never trusts the file.
 * Every table, vtable, field, vector and string is checked to lie inside the
 * buffer before it is read, every tensor, buffer and operator-code index is
 * range-checked, and every size is bounded before anything is allocated (a
 * weight is only materialised after its buffer was found to hold exactly
 * numel * element-size bytes, so allocations never exceed a small multiple
 * of the file size). Values are assembled byte by byte (little-endian, any
 * alignment). Malformed input gives KN_BAD_FORMAT, an operator or feature we
 * do not translate gives KN_UNSUPPORTED; either way the one-line reason names
 * the operator and tensor.
 *
 * Translation: activations are NHWC [1,H,W,C] in TFLite and (C,H,W) here.
 * Conv weights OHWI become OIHW, depthwise [1,KH,KW,C*M] becomes
 * [C*M][1][KH][KW] with groups = C; SAME padding becomes TensorFlow's explicit
 * asymmetric padding (the odd pixel at the bottom/right). A RESHAPE of a
 * spatial map to a vector keeps TFLite's HWC element order by permuting the
 * columns of the FULLY_CONNECTED that reads it. QUANTIZE/DEQUANTIZE are
 * identities in the float graph (DEQUANTIZE of a constant, e.g. float16
 * weights, is resolved at load). Of a quantized output's activation range
 * only a clamp at 0 (and at 6) is kept, see implied_act; otherwise the float
 * graph computes what the quantized one approximates.
 *
 * Thread-safety: kn_tflite_import touches only its arguments.
 */
#include "kennel/nn.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Bounds on what a file may declare before we allocate per-item state. */
#define TFL_MAX_TENSORS (1 << 18)
#define TFL_MAX_OPS (1 << 18)
#define TFL_MAX_CODES (1 << 16)
#define TFL_MAX_DIMS 6
#define TFL_MAX_INPUT (1 << 26) /* input values per sample (8192 x 8192 RGB) */
/* How much of a tensor name to quote in an error message. */
#define TFL_NAME_QUOTE 64

/* Schema: tensor types. */
enum { TT_FLOAT32 = 0, TT_FLOAT16 = 1, TT_INT32 = 2, TT_UINT8 = 3, TT_INT64 = 4, TT_INT8 = 9 };

/* Schema: builtin operator codes we translate. */
enum {
    OP_ADD = 0,
    OP_AVERAGE_POOL_2D = 1,
    OP_CONV_2D = 3,
    OP_DEPTHWISE_CONV_2D = 4,
    OP_DEQUANTIZE = 6,
    OP_FULLY_CONNECTED = 9,
    OP_MAX_POOL_2D = 17,
    OP_RESHAPE = 22,
    OP_SOFTMAX = 25,
    OP_CUSTOM = 32,
    OP_SQUEEZE = 43,
    OP_QUANTIZE = 114,
};

/* Schema: BuiltinOptions union members (type tag values). */
enum {
    OPT_CONV2D = 1,
    OPT_DEPTHWISE = 2,
    OPT_POOL2D = 5,
    OPT_FULLY_CONNECTED = 8,
    OPT_SOFTMAX = 9,
    OPT_ADD = 11,
    OPT_RESHAPE = 17,
    OPT_SQUEEZE = 30,
};

/* Schema: field slots (declaration order; a union takes two slots). */
enum { MODEL_VERSION = 0, MODEL_OPCODES = 1, MODEL_SUBGRAPHS = 2, MODEL_BUFFERS = 4 };
enum { OPC_DEPRECATED_CODE = 0, OPC_VERSION = 2, OPC_CODE = 3 };
enum { SG_TENSORS = 0, SG_INPUTS = 1, SG_OUTPUTS = 2, SG_OPERATORS = 3 };
enum { TEN_SHAPE = 0, TEN_TYPE = 1, TEN_BUFFER = 2, TEN_NAME = 3, TEN_QUANT = 4 };
enum { Q_SCALE = 2, Q_ZERO = 3, Q_DETAILS_TYPE = 4, Q_DIM = 6 };
enum { OPR_OPCODE = 0, OPR_INPUTS = 1, OPR_OUTPUTS = 2, OPR_OPT_TYPE = 3, OPR_OPT = 4 };
enum { BUF_DATA = 0, BUF_OFFSET = 1, BUF_SIZE = 2 };

/* Schema: Padding and ActivationFunctionType. */
enum { PAD_SAME = 0, PAD_VALID = 1 };
enum { FA_NONE = 0, FA_RELU = 1, FA_RELU_N1_TO_1 = 2, FA_RELU6 = 3, FA_TANH = 4 };

/* A table: its position, its vtable and their sizes (all checked). */
typedef struct fb_table {
    size_t pos, vt;
    uint16_t vt_len, len;
} fb_table;

/* A vector: position of element 0 and the count (checked to fit). */
typedef struct fb_vec {
    size_t pos;
    uint32_t n;
} fb_vec;

/* How an activation tensor relates to the kennel node holding it. */
typedef enum val_kind {
    VAL_NONE,     /* not produced yet (or a constant) */
    VAL_SAME,     /* [1,H,W,C] (or [1,C] with H = W = 1) is node (C,H,W) */
    VAL_FLAT_HWC, /* [1,H*W*C] in HWC order is the unflattened node (C,H,W) */
} val_kind;

typedef struct tfl_tensor {
    int ndim;
    int32_t dims[TFL_MAX_DIMS];
    int type;
    uint32_t buffer;
    fb_vec name; /* bytes, not NUL-terminated */
    bool has_quant;
    fb_vec scale, zero; /* float32, int64 */
    int32_t qdim;
    const uint8_t *data; /* constant contents (into the file), NULL if none */
    size_t data_len;
    int node;      /* kennel node holding the value, -1 */
    val_kind kind;
    int alias;     /* DEQUANTIZE of a constant: the constant's index, else -1 */
} tfl_tensor;

typedef struct importer {
    const uint8_t *p;
    size_t n;
    kn_err *e;
    kn_nn_graph *g;
    int32_t *codes;
    uint32_t n_codes;
    fb_vec buffers;
    tfl_tensor *t;
    uint32_t nt;
    int op;      /* operator being translated, -1 before */
    int op_code; /* its builtin code */
    bool quantized;
    bool has_softmax;
} importer;

/* ---- messages ----------------------------------------------------------- */

static const struct {
    int code;
    const char *name;
} op_names[] = {
    {0, "ADD"},         {1, "AVERAGE_POOL_2D"},
    {2, "CONCATENATION"}, {3, "CONV_2D"},
    {4, "DEPTHWISE_CONV_2D"}, {5, "DEPTH_TO_SPACE"},
    {6, "DEQUANTIZE"},  {9, "FULLY_CONNECTED"},
    {11, "L2_NORMALIZATION"}, {12, "L2_POOL_2D"},
    {14, "LOGISTIC"},   {16, "LSTM"},
    {17, "MAX_POOL_2D"}, {18, "MUL"},
    {19, "RELU"},       {21, "RELU6"},
    {22, "RESHAPE"},    {23, "RESIZE_BILINEAR"},
    {25, "SOFTMAX"},    {28, "TANH"},
    {32, "CUSTOM"},     {34, "PAD"},
    {39, "TRANSPOSE"},  {40, "MEAN"},
    {41, "SUB"},        {42, "DIV"},
    {43, "SQUEEZE"},    {45, "STRIDED_SLICE"},
    {49, "SPLIT"},      {53, "CAST"},
    {54, "PRELU"},      {55, "MAXIMUM"},
    {60, "PADV2"},      {67, "TRANSPOSE_CONV"},
    {70, "EXPAND_DIMS"}, {83, "PACK"},
    {97, "RESIZE_NEAREST_NEIGHBOR"}, {98, "LEAKY_RELU"},
    {114, "QUANTIZE"},  {117, "HARD_SWISH"},
};

static const char *op_name(int code, char *buf, size_t n)
{
    for (size_t i = 0; i < sizeof op_names / sizeof op_names[0]; i++)
        if (op_names[i].code == code)
            return op_names[i].name;
    snprintf(buf, n, "builtin operator %d", code);
    return buf;
}

/* Sets e to "tflite: [operator N (NAME): ]<detail>". */
static kn_status fail(importer *m, kn_status code, const char *fmt, ...) KN_PRINTF(3, 4);
static kn_status fail(importer *m, kn_status code, const char *fmt, ...)
{
    char detail[KN_ERR_MSG_MAX], nb[32];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    if (m->op >= 0)
        return kn_err_set(m->e, code, "tflite: operator %d (%s): %s", m->op,
                          op_name(m->op_code, nb, sizeof nb), detail);
    return kn_err_set(m->e, code, "tflite: %s", detail);
}

/* "tensor 12 'name'" with the name sanitised and shortened. */
static const char *tname(const importer *m, int64_t ti, char *buf, size_t n)
{
    if (ti < 0 || ti >= m->nt) {
        snprintf(buf, n, "tensor %lld", (long long)ti);
        return buf;
    }
    const tfl_tensor *t = &m->t[ti];
    char name[TFL_NAME_QUOTE + 4];
    size_t k = 0;
    for (uint32_t i = 0; i < t->name.n && k < TFL_NAME_QUOTE; i++) {
        uint8_t c = m->p[t->name.pos + i];
        name[k++] = c >= 0x20 && c < 0x7f && c != '\'' ? (char)c : '?';
    }
    if (t->name.n > TFL_NAME_QUOTE) {
        memcpy(name + k, "...", 3);
        k += 3;
    }
    name[k] = '\0';
    snprintf(buf, n, "tensor %lld '%s'", (long long)ti, name);
    return buf;
}

/* ---- flatbuffer access -------------------------------------------------- */

static uint16_t rd16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (uint16_t)p[1] << 8);
}

static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t rd64(const uint8_t *p)
{
    return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32;
}

static float rdf32(const uint8_t *p)
{
    uint32_t u = rd32(p);
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* Does [at, at + len) lie inside the buffer? */
static bool in_file(const importer *m, size_t at, size_t len)
{
    return at <= m->n && len <= m->n - at;
}

static kn_status fb_open(importer *m, size_t pos, fb_table *t, const char *what)
{
    if (!in_file(m, pos, 4))
        return fail(m, KN_BAD_FORMAT, "%s: table offset %zu is outside the file", what, pos);
    int32_t soff = (int32_t)rd32(m->p + pos);
    int64_t vt = (int64_t)pos - (int64_t)soff;
    if (vt < 0 || !in_file(m, (size_t)vt, 4))
        return fail(m, KN_BAD_FORMAT, "%s: vtable offset is outside the file", what);
    t->pos = pos;
    t->vt = (size_t)vt;
    t->vt_len = rd16(m->p + t->vt);
    t->len = rd16(m->p + t->vt + 2);
    if (t->vt_len < 4 || (t->vt_len & 1) || !in_file(m, t->vt, t->vt_len))
        return fail(m, KN_BAD_FORMAT, "%s: bad vtable (%u bytes)", what, t->vt_len);
    if (t->len < 4 || !in_file(m, pos, t->len))
        return fail(m, KN_BAD_FORMAT, "%s: table of %u bytes runs past the end", what, t->len);
    return KN_OK;
}

/* Position of field `slot` of size `size`, or 0 when absent. */
static kn_status fb_field(importer *m, const fb_table *t, int slot, size_t size, size_t *at,
                          const char *what)
{
    *at = 0;
    size_t vo = 4 + 2 * (size_t)slot;
    if (vo + 2 > t->vt_len)
        return KN_OK;
    uint16_t off = rd16(m->p + t->vt + vo);
    if (off == 0)
        return KN_OK;
    if (off < 4 || (size_t)off + size > t->len)
        return fail(m, KN_BAD_FORMAT, "%s: field %d lies outside its table", what, slot);
    *at = t->pos + off;
    return KN_OK;
}

static kn_status fb_int(importer *m, const fb_table *t, int slot, int size, bool is_signed,
                        int64_t def, int64_t *out, const char *what)
{
    size_t at;
    kn_status rc = fb_field(m, t, slot, (size_t)size, &at, what);
    if (rc)
        return rc;
    if (!at) {
        *out = def;
        return KN_OK;
    }
    const uint8_t *p = m->p + at;
    switch (size) {
    case 1:
        *out = is_signed ? (int64_t)(int8_t)p[0] : (int64_t)p[0];
        break;
    case 4:
        *out = is_signed ? (int64_t)(int32_t)rd32(p) : (int64_t)rd32(p);
        break;
    default:
        *out = (int64_t)rd64(p);
        break;
    }
    return KN_OK;
}

static kn_status fb_float(importer *m, const fb_table *t, int slot, float def, float *out,
                          const char *what)
{
    size_t at;
    kn_status rc = fb_field(m, t, slot, 4, &at, what);
    if (rc)
        return rc;
    *out = at ? rdf32(m->p + at) : def;
    return KN_OK;
}

/* Follows an offset field; *target = 0 when the field is absent. */
static kn_status fb_ref(importer *m, const fb_table *t, int slot, size_t *target,
                        const char *what)
{
    size_t at;
    kn_status rc = fb_field(m, t, slot, 4, &at, what);
    if (rc || !at) {
        *target = 0;
        return rc;
    }
    uint32_t rel = rd32(m->p + at);
    if (rel == 0 || rel > m->n - at)
        return fail(m, KN_BAD_FORMAT, "%s: offset %u points outside the file", what, rel);
    *target = at + rel;
    return KN_OK;
}

/* Vector field; absent gives an empty vector. */
static kn_status fb_vector(importer *m, const fb_table *t, int slot, size_t elem, fb_vec *v,
                           const char *what)
{
    size_t at;
    kn_status rc = fb_ref(m, t, slot, &at, what);
    v->pos = 0;
    v->n = 0;
    if (rc || !at)
        return rc;
    if (!in_file(m, at, 4))
        return fail(m, KN_BAD_FORMAT, "%s: vector header is outside the file", what);
    uint32_t n = rd32(m->p + at);
    if ((uint64_t)n * elem > m->n - at - 4)
        return fail(m, KN_BAD_FORMAT, "%s: vector of %u elements runs past the end", what, n);
    v->pos = at + 4;
    v->n = n;
    return KN_OK;
}

/* Sub-table field; *present is false when absent. */
static kn_status fb_subtable(importer *m, const fb_table *t, int slot, fb_table *out,
                             bool *present, const char *what)
{
    size_t at;
    kn_status rc = fb_ref(m, t, slot, &at, what);
    *present = false;
    if (rc || !at)
        return rc;
    *present = true;
    return fb_open(m, at, out, what);
}

/* Element i of a vector of tables. */
static kn_status fb_vec_table(importer *m, const fb_vec *v, uint32_t i, fb_table *out,
                              const char *what)
{
    size_t el = v->pos + 4 * (size_t)i;
    uint32_t rel = rd32(m->p + el);
    if (rel == 0 || rel > m->n - el)
        return fail(m, KN_BAD_FORMAT, "%s: offset %u points outside the file", what, rel);
    return fb_open(m, el + rel, out, what);
}

static int32_t vec_i32(const importer *m, const fb_vec *v, uint32_t i)
{
    return (int32_t)rd32(m->p + v->pos + 4 * (size_t)i);
}

/* ---- model tables ------------------------------------------------------- */

static kn_status read_opcodes(importer *m, const fb_table *model)
{
    fb_vec v;
    kn_status rc = fb_vector(m, model, MODEL_OPCODES, 4, &v, "model operator_codes");
    if (rc)
        return rc;
    if (v.n > TFL_MAX_CODES)
        return fail(m, KN_TOO_LARGE, "%u operator codes (at most %d)", v.n, TFL_MAX_CODES);
    m->codes = calloc(v.n ? v.n : 1, sizeof *m->codes);
    if (!m->codes)
        return fail(m, KN_NOMEM, "out of memory for operator codes");
    m->n_codes = v.n;
    for (uint32_t i = 0; i < v.n; i++) {
        char what[48];
        snprintf(what, sizeof what, "operator code %u", i);
        fb_table oc;
        int64_t dep, code;
        if ((rc = fb_vec_table(m, &v, i, &oc, what)) ||
            (rc = fb_int(m, &oc, OPC_DEPRECATED_CODE, 1, true, 0, &dep, what)) ||
            (rc = fb_int(m, &oc, OPC_CODE, 4, true, 0, &code, what)))
            return rc;
        /* builtin_code superseded the int8 field once codes passed 127;
         * older writers fill only the deprecated one: take the larger. */
        m->codes[i] = (int32_t)(dep > code ? dep : code);
        if (m->codes[i] < 0)
            return fail(m, KN_BAD_FORMAT, "%s: negative builtin code %d", what, m->codes[i]);
    }
    return KN_OK;
}

static kn_status tensor_bytes(importer *m, int ti, const uint8_t **data, size_t *len);

static kn_status read_tensor(importer *m, const fb_vec *tv, uint32_t i)
{
    char what[48];
    snprintf(what, sizeof what, "tensor %u", i);
    tfl_tensor *t = &m->t[i];
    t->node = -1;
    t->alias = -1;
    t->kind = VAL_NONE;
    fb_table tt;
    fb_vec shape;
    int64_t type, buffer;
    kn_status rc;
    if ((rc = fb_vec_table(m, tv, i, &tt, what)) ||
        (rc = fb_vector(m, &tt, TEN_SHAPE, 4, &shape, what)) ||
        (rc = fb_int(m, &tt, TEN_TYPE, 1, true, TT_FLOAT32, &type, what)) ||
        (rc = fb_int(m, &tt, TEN_BUFFER, 4, false, 0, &buffer, what)) ||
        (rc = fb_vector(m, &tt, TEN_NAME, 1, &t->name, what)))
        return rc;
    if (shape.n > TFL_MAX_DIMS)
        return fail(m, KN_UNSUPPORTED, "%s has %u dimensions (at most %d)", what, shape.n,
                    TFL_MAX_DIMS);
    t->ndim = (int)shape.n;
    for (uint32_t k = 0; k < shape.n; k++) {
        t->dims[k] = vec_i32(m, &shape, k);
        if (t->dims[k] < 0)
            return fail(m, KN_BAD_FORMAT, "%s: dimension %u is %d", what, k, t->dims[k]);
    }
    t->type = (int)type;
    t->buffer = (uint32_t)buffer;
    if (t->buffer >= m->buffers.n)
        return fail(m, KN_BAD_FORMAT, "%s: buffer index %u out of range (%u buffers)", what,
                    t->buffer, m->buffers.n);
    fb_table q;
    bool has_q;
    if ((rc = fb_subtable(m, &tt, TEN_QUANT, &q, &has_q, what)))
        return rc;
    if (has_q) {
        int64_t qdim, details;
        if ((rc = fb_vector(m, &q, Q_SCALE, 4, &t->scale, what)) ||
            (rc = fb_vector(m, &q, Q_ZERO, 8, &t->zero, what)) ||
            (rc = fb_int(m, &q, Q_DETAILS_TYPE, 1, false, 0, &details, what)) ||
            (rc = fb_int(m, &q, Q_DIM, 4, true, 0, &qdim, what)))
            return rc;
        t->has_quant = t->scale.n > 0;
        t->qdim = (int32_t)qdim;
        if (details != 0)
            return fail(m, KN_UNSUPPORTED, "%s uses custom quantization details", what);
    }
    return tensor_bytes(m, (int)i, &t->data, &t->data_len);
}

/* The constant bytes of tensor ti (following DEQUANTIZE aliases); *len = 0
 * when it has none. */
static kn_status tensor_bytes(importer *m, int ti, const uint8_t **data, size_t *len)
{
    char tn[112], what[128];
    *data = NULL;
    *len = 0;
    const tfl_tensor *t = &m->t[ti];
    if (t->buffer == 0)
        return KN_OK;
    snprintf(what, sizeof what, "%s: buffer %u", tname(m, ti, tn, sizeof tn), t->buffer);
    fb_table bt;
    fb_vec data_v;
    kn_status rc;
    if ((rc = fb_vec_table(m, &m->buffers, t->buffer, &bt, what)) ||
        (rc = fb_vector(m, &bt, BUF_DATA, 1, &data_v, what)))
        return rc;
    if (data_v.n) {
        *data = m->p + data_v.pos;
        *len = data_v.n;
        return KN_OK;
    }
    /* Files over 2 GB keep data outside the flatbuffer: offset and size are
     * relative to the start of the file. */
    int64_t off, size;
    if ((rc = fb_int(m, &bt, BUF_OFFSET, 8, false, 0, &off, what)) ||
        (rc = fb_int(m, &bt, BUF_SIZE, 8, false, 0, &size, what)))
        return rc;
    if (off > 1 && size > 0) {
        if (!in_file(m, (uint64_t)off, (uint64_t)size))
            return fail(m, KN_BAD_FORMAT, "%s: data [%llu, +%llu) is outside the file", what,
                        (unsigned long long)off, (unsigned long long)size);
        *data = m->p + off;
        *len = (size_t)size;
    }
    return KN_OK;
}

static bool is_const(const importer *m, int ti)
{
    for (int hops = 0; m->t[ti].alias >= 0 && hops < 4; hops++)
        ti = m->t[ti].alias;
    return m->t[ti].data_len > 0;
}

static size_t type_size(int type)
{
    switch (type) {
    case TT_FLOAT32:
    case TT_INT32:
        return 4;
    case TT_FLOAT16:
        return 2;
    case TT_UINT8:
    case TT_INT8:
        return 1;
    default:
        return 0;
    }
}

static const char *type_name(int type)
{
    static const char *names[] = {"float32", "float16", "int32", "uint8", "int64",
                                  "string",  "bool",    "int16", "complex64", "int8"};
    return type >= 0 && type < (int)(sizeof names / sizeof names[0]) ? names[type] : "unknown";
}

/* Element count of a tensor, bounded so that float copies stay addressable. */
static bool tensor_numel(const tfl_tensor *t, size_t *out)
{
    size_t n = 1;
    for (int k = 0; k < t->ndim; k++)
        if (!kn_mul_size(n, (size_t)t->dims[k], &n) || n > ((size_t)1 << 31))
            return false;
    *out = n;
    return true;
}

/* The values of constant tensor ti as float32 in its own (TFLite) layout,
 * dequantized per tensor or per channel. The caller frees *out. */
static kn_status tensor_floats(importer *m, int ti, const char *role, float **out,
                               size_t *numel)
{
    char tn[112];
    *out = NULL;
    int src = ti;
    for (int hops = 0; m->t[src].alias >= 0 && hops < 4; hops++)
        src = m->t[src].alias;
    const tfl_tensor *t = &m->t[src];
    const uint8_t *d = t->data;
    size_t len = t->data_len, n;
    tname(m, ti, tn, sizeof tn);
    if (len == 0)
        return fail(m, KN_UNSUPPORTED, "%s %s is not a constant", role, tn);
    if (!tensor_numel(&m->t[ti], &n) || !tensor_numel(t, numel) || n != *numel)
        return fail(m, KN_BAD_FORMAT, "%s %s: bad element count", role, tn);
    size_t es = type_size(t->type);
    if (es == 0)
        return fail(m, KN_UNSUPPORTED, "%s %s has type %s", role, tn, type_name(t->type));
    if (n == 0 || len != n * es)
        return fail(m, KN_BAD_FORMAT, "%s %s: buffer holds %zu bytes, shape needs %zu", role,
                    tn, len, n * es);
    bool quant = t->type == TT_UINT8 || t->type == TT_INT8 || t->type == TT_INT32;
    size_t channels = 1, inner = 1;
    if (quant) {
        if (!t->has_quant)
            return fail(m, KN_BAD_FORMAT, "%s %s (%s) has no quantization scale", role, tn,
                        type_name(t->type));
        if (t->scale.n > 1) {
            if (t->qdim < 0 || t->qdim >= t->ndim || (size_t)t->dims[t->qdim] != t->scale.n)
                return fail(m, KN_BAD_FORMAT,
                            "%s %s: %u scales do not match quantized dimension %d", role, tn,
                            t->scale.n, t->qdim);
            channels = t->scale.n;
            for (int k = t->qdim + 1; k < t->ndim; k++)
                inner *= (size_t)t->dims[k];
        }
        if (t->zero.n != 0 && t->zero.n != t->scale.n)
            return fail(m, KN_BAD_FORMAT, "%s %s: %u zero points for %u scales", role, tn,
                        t->zero.n, t->scale.n);
        for (uint32_t k = 0; k < t->scale.n; k++) {
            float s = rdf32(m->p + t->scale.pos + 4 * (size_t)k);
            int64_t z = t->zero.n ? (int64_t)rd64(m->p + t->zero.pos + 8 * (size_t)k) : 0;
            if (!isfinite(s) || s <= 0 || z < -65536 || z > 65536)
                return fail(m, KN_BAD_FORMAT, "%s %s: bad scale %g / zero point %lld", role,
                            tn, (double)s, (long long)z);
        }
        if (t->type != TT_INT32)
            m->quantized = true;
    }
    float *f = malloc(n * sizeof *f);
    if (!f)
        return fail(m, KN_NOMEM, "out of memory for %s %s", role, tn);
    for (size_t i = 0; i < n; i++) {
        const uint8_t *p = d + i * es;
        float v;
        switch (t->type) {
        case TT_FLOAT32:
            v = rdf32(p);
            break;
        case TT_FLOAT16:
            v = kn_f16_to_f32(rd16(p));
            break;
        case TT_UINT8:
            v = (float)p[0];
            break;
        case TT_INT8:
            v = (float)(int8_t)p[0];
            break;
        default:
            v = (float)(int32_t)rd32(p);
            break;
        }
        if (quant) {
            size_t c = channels > 1 ? (i / inner) % channels : 0;
            float s = rdf32(m->p + t->scale.pos + 4 * c);
            int64_t z = t->zero.n ? (int64_t)rd64(m->p + t->zero.pos + 8 * c) : 0;
            v = (float)((double)s * ((double)v - (double)z));
        }
        if (!isfinite(v)) {
            free(f);
            return fail(m, KN_BAD_FORMAT, "%s %s holds a non-finite value", role, tn);
        }
        f[i] = v;
    }
    *out = f;
    return KN_OK;
}

/* ---- values ------------------------------------------------------------- */

/* The (C,H,W) view of an activation tensor: [1,H,W,C], [1,N] or [N]. */
static kn_status tensor_chw(importer *m, int ti, kn_nn_shape *s)
{
    char tn[112];
    const tfl_tensor *t = &m->t[ti];
    const int32_t *d = t->dims;
    if (t->ndim == 4 && d[0] == 1)
        *s = (kn_nn_shape){d[3], d[1], d[2]};
    else if (t->ndim == 2 && d[0] == 1)
        *s = (kn_nn_shape){d[1], 1, 1};
    else if (t->ndim == 1)
        *s = (kn_nn_shape){d[0], 1, 1};
    else if (t->ndim == 3 && d[0] == 1 && d[1] == 1)
        *s = (kn_nn_shape){d[2], 1, 1};
    else
        return fail(m, KN_UNSUPPORTED, "%s: shape of rank %d with batch %d is not supported",
                    tname(m, ti, tn, sizeof tn), t->ndim, t->ndim ? d[0] : 0);
    if (s->c <= 0 || s->h <= 0 || s->w <= 0)
        return fail(m, KN_BAD_FORMAT, "%s has an empty dimension", tname(m, ti, tn, sizeof tn));
    return KN_OK;
}

/* Checks an operator's tensor index list and returns entry k (or -1 for an
 * omitted optional input). */
static kn_status tensor_index(importer *m, const fb_vec *v, uint32_t k, bool optional,
                              const char *role, int *ti)
{
    if (k >= v->n) {
        if (optional) {
            *ti = -1;
            return KN_OK;
        }
        return fail(m, KN_BAD_FORMAT, "missing %s tensor", role);
    }
    int32_t i = vec_i32(m, v, k);
    if (i == -1 && optional) {
        *ti = -1;
        return KN_OK;
    }
    if (i < 0 || (uint32_t)i >= m->nt)
        return fail(m, KN_BAD_FORMAT, "%s tensor index %d out of range (%u tensors)", role, i,
                    m->nt);
    *ti = i;
    return KN_OK;
}

/* The node holding activation ti. */
static kn_status value(importer *m, int ti, const char *role, int *node)
{
    char tn[112];
    if (m->t[ti].node < 0)
        return fail(m, is_const(m, ti) ? KN_UNSUPPORTED : KN_BAD_FORMAT,
                    "%s %s %s", role, tname(m, ti, tn, sizeof tn),
                    is_const(m, ti) ? "is a constant (only activations are supported here)"
                                    : "is read before any operator writes it");
    *node = m->t[ti].node;
    return KN_OK;
}

/* Weights and biases must be constants in the file. */
static kn_status need_const(importer *m, int ti, const char *role)
{
    char tn[112];
    if (ti >= 0 && !is_const(m, ti))
        return fail(m, KN_UNSUPPORTED, "%s %s is not a constant", role,
                    tname(m, ti, tn, sizeof tn));
    return KN_OK;
}

/* The node holding a [1,H,W,C] input of a conv or pooling. */
static kn_status map_input(importer *m, int ti, int *node)
{
    char tn[112];
    kn_status rc = value(m, ti, "input", node);
    if (rc)
        return rc;
    if (m->t[ti].ndim != 4 || m->t[ti].kind != VAL_SAME)
        return fail(m, KN_BAD_FORMAT, "input %s is not a [1,H,W,C] map",
                    tname(m, ti, tn, sizeof tn));
    return KN_OK;
}

/* Records that node holds activation tensor ti, checking the shapes agree. */
static kn_status produce(importer *m, int ti, int node, val_kind kind)
{
    char tn[112];
    tfl_tensor *t = &m->t[ti];
    if (t->node >= 0 || t->alias >= 0)
        return fail(m, KN_BAD_FORMAT, "%s is written twice", tname(m, ti, tn, sizeof tn));
    if (is_const(m, ti))
        return fail(m, KN_BAD_FORMAT, "%s is a constant but an operator writes it",
                    tname(m, ti, tn, sizeof tn));
    const kn_nn_node *nd = kn_nn_graph_node(m->g, node);
    if (!nd)
        return fail(m, KN_INTERNAL, "no node %d", node);
    if (kind == VAL_SAME) {
        kn_nn_shape s;
        kn_status rc = tensor_chw(m, ti, &s);
        if (rc)
            return rc;
        if (s.c != nd->shape.c || s.h != nd->shape.h || s.w != nd->shape.w)
            return fail(m, KN_BAD_FORMAT,
                        "%s is declared %dx%dx%d (HxWxC) but computes to %dx%dx%d",
                        tname(m, ti, tn, sizeof tn), s.h, s.w, s.c, nd->shape.h, nd->shape.w,
                        nd->shape.c);
    }
    t->node = node;
    t->kind = kind;
    return KN_OK;
}

/* A graph construction call failed: fetch the reason recorded on the graph. */
static kn_status graph_fail(importer *m)
{
    kn_err ge;
    kn_err_clear(&ge);
    kn_status rc = kn_nn_graph_finalize(m->g, &ge);
    if (rc == KN_OK)
        return fail(m, KN_INTERNAL, "graph construction failed without a reason");
    /* window or shape problems come from the file's numbers */
    return fail(m, rc == KN_NOMEM ? KN_NOMEM : KN_BAD_FORMAT, "%s", ge.msg);
}

/* ---- operator options --------------------------------------------------- */

/* The builtin options table, checked to be of the expected union member;
 * *present is false when the operator has none. */
static kn_status options(importer *m, const fb_table *opt, int want, fb_table *out,
                         bool *present)
{
    int64_t type;
    kn_status rc = fb_int(m, opt, OPR_OPT_TYPE, 1, false, 0, &type, "options");
    if (rc || (rc = fb_subtable(m, opt, OPR_OPT, out, present, "options")))
        return rc;
    if (*present && type != want)
        return fail(m, KN_BAD_FORMAT, "options of type %lld, expected %d", (long long)type,
                    want);
    return KN_OK;
}

static kn_status activation(importer *m, int64_t fa, kn_nn_act *act)
{
    switch (fa) {
    case FA_NONE:
        *act = KN_ACT_NONE;
        return KN_OK;
    case FA_RELU:
        *act = KN_ACT_RELU;
        return KN_OK;
    case FA_RELU6:
        *act = KN_ACT_RELU6;
        return KN_OK;
    case FA_RELU_N1_TO_1:
        return fail(m, KN_UNSUPPORTED, "fused activation RELU_N1_TO_1");
    case FA_TANH:
        return fail(m, KN_UNSUPPORTED, "fused activation TANH");
    default:
        return fail(m, KN_UNSUPPORTED, "fused activation %lld", (long long)fa);
    }
}

/* A quantized output clamps to its representable range. Converters of the
 * TOCO era express ReLU6 only that way (fused activation NONE, output range
 * [0, 6]), so the float graph keeps such a clamp: a range starting at 0 adds
 * ReLU, or ReLU6 when it ends at 6 (within one step). Saturation elsewhere
 * is what the float graph approximates, not part of the network. */
static kn_nn_act implied_act(const importer *m, int yi, kn_nn_act act)
{
    const tfl_tensor *t = &m->t[yi];
    if ((t->type != TT_UINT8 && t->type != TT_INT8) || !t->has_quant)
        return act;
    int64_t qmin = t->type == TT_UINT8 ? 0 : -128, qmax = t->type == TT_UINT8 ? 255 : 127;
    double s = rdf32(m->p + t->scale.pos);
    int64_t z = t->zero.n ? (int64_t)rd64(m->p + t->zero.pos) : 0;
    if (!isfinite(s) || s <= 0 || z != qmin)
        return act;
    double hi = s * (double)(qmax - z);
    if (fabs(hi - 6.0) <= s)
        return KN_ACT_RELU6;
    return act == KN_ACT_NONE ? KN_ACT_RELU : act;
}

/* Window numbers common to conv and pooling, after reading the options. */
typedef struct win_opts {
    int64_t padding, stride_w, stride_h, dil_w, dil_h;
} win_opts;

/* Fills the window for a kernel over an input, with TensorFlow's SAME rule:
 * out = ceil(in / stride), the total padding split with the odd pixel at the
 * bottom/right. */
static kn_status make_window(importer *m, const win_opts *o, int in_h, int in_w, int kh, int kw,
                             kn_nn_window *w)
{
    if (o->stride_h < 1 || o->stride_w < 1 || o->stride_h > 1024 || o->stride_w > 1024)
        return fail(m, KN_BAD_FORMAT, "stride %lldx%lld", (long long)o->stride_h,
                    (long long)o->stride_w);
    if (o->dil_h < 1 || o->dil_w < 1 || o->dil_h > 1024 || o->dil_w > 1024)
        return fail(m, KN_BAD_FORMAT, "dilation %lldx%lld", (long long)o->dil_h,
                    (long long)o->dil_w);
    if (kh < 1 || kw < 1 || kh > 1024 || kw > 1024)
        return fail(m, KN_BAD_FORMAT, "kernel %dx%d", kh, kw);
    *w = (kn_nn_window){.kh = kh, .kw = kw, .sh = (int)o->stride_h, .sw = (int)o->stride_w,
                        .dh = (int)o->dil_h, .dw = (int)o->dil_w};
    int64_t eh = (int64_t)(kh - 1) * w->dh + 1, ew = (int64_t)(kw - 1) * w->dw + 1;
    if (o->padding == PAD_VALID) {
        if (eh > in_h || ew > in_w)
            return fail(m, KN_BAD_FORMAT, "%lldx%lld window does not fit a %dx%d input",
                        (long long)eh, (long long)ew, in_h, in_w);
        return KN_OK;
    }
    if (o->padding != PAD_SAME)
        return fail(m, KN_BAD_FORMAT, "padding mode %lld", (long long)o->padding);
    int64_t oh = (in_h + w->sh - 1) / w->sh, ow = (in_w + w->sw - 1) / w->sw;
    int64_t th = (oh - 1) * w->sh + eh - in_h, tw = (ow - 1) * w->sw + ew - in_w;
    th = th > 0 ? th : 0;
    tw = tw > 0 ? tw : 0;
    if (th > 2046 || tw > 2046)
        return fail(m, KN_UNSUPPORTED, "SAME padding of %lldx%lld", (long long)th,
                    (long long)tw);
    w->pt = (int)(th / 2);
    w->pb = (int)(th - th / 2);
    w->pl = (int)(tw / 2);
    w->pr = (int)(tw - tw / 2);
    return KN_OK;
}

/* ---- operators ---------------------------------------------------------- */

typedef struct op_io {
    fb_table tab; /* the Operator table */
    fb_vec in, out;
    int y;        /* output tensor */
    char name[32];
} op_io;

static kn_status fill_param(importer *m, const char *node, const char *suffix, const float *src,
                            size_t numel)
{
    char pn[160];
    snprintf(pn, sizeof pn, "%s.%s", node, suffix);
    kn_nn_param *p = kn_nn_graph_param(m->g, kn_nn_graph_param_find(m->g, pn));
    if (!p || p->numel != numel)
        return fail(m, KN_INTERNAL, "parameter %s missing or misshaped", pn);
    memcpy(p->data, src, numel * sizeof *src);
    p->loaded = true;
    return KN_OK;
}

/* Bias vector of `n` values (absent: no bias). */
static kn_status load_bias(importer *m, int bi, int n, float **bias)
{
    char tn[112];
    size_t numel;
    *bias = NULL;
    if (bi < 0)
        return KN_OK;
    kn_status rc = tensor_floats(m, bi, "bias", bias, &numel);
    if (rc)
        return rc;
    if (numel != (size_t)n) {
        free(*bias);
        *bias = NULL;
        return fail(m, KN_BAD_FORMAT, "bias %s has %zu values for %d channels",
                    tname(m, bi, tn, sizeof tn), numel, n);
    }
    return KN_OK;
}

static kn_status op_conv(importer *m, op_io *io, bool depthwise)
{
    char tn[112];
    int xi, wi, bi, x;
    kn_status rc;
    if ((rc = tensor_index(m, &io->in, 0, false, "input", &xi)) ||
        (rc = tensor_index(m, &io->in, 1, false, "filter", &wi)) ||
        (rc = tensor_index(m, &io->in, 2, true, "bias", &bi)) ||
        (rc = need_const(m, wi, "filter")) || (rc = need_const(m, bi, "bias")) ||
        (rc = map_input(m, xi, &x)))
        return rc;
    kn_nn_shape in = kn_nn_graph_node(m->g, x)->shape;
    const tfl_tensor *wt = &m->t[wi];
    if (wt->ndim != 4)
        return fail(m, KN_BAD_FORMAT, "filter %s has %d dimensions, expected 4",
                    tname(m, wi, tn, sizeof tn), wt->ndim);
    int oc, kh = wt->dims[1], kw = wt->dims[2], groups;
    if (depthwise) {
        oc = wt->dims[3];
        if (wt->dims[0] != 1 || oc < in.c || oc % in.c)
            return fail(m, KN_BAD_FORMAT, "depthwise filter %s [%d,%d,%d,%d] does not fit %d "
                        "input channels", tname(m, wi, tn, sizeof tn), wt->dims[0], kh, kw, oc,
                        in.c);
        groups = in.c;
    } else {
        oc = wt->dims[0];
        int per = wt->dims[3];
        if (per < 1 || in.c % per || oc < 1 || oc % (in.c / per))
            return fail(m, KN_BAD_FORMAT, "filter %s [%d,%d,%d,%d] does not fit %d input "
                        "channels", tname(m, wi, tn, sizeof tn), oc, kh, kw, per, in.c);
        groups = in.c / per;
    }
    fb_table o;
    bool has_o;
    win_opts wo = {PAD_SAME, 1, 1, 1, 1};
    int64_t fa = 0, mult = 0;
    if ((rc = options(m, &io->tab, depthwise ? OPT_DEPTHWISE : OPT_CONV2D, &o, &has_o)))
        return rc;
    if (!has_o)
        return fail(m, KN_BAD_FORMAT, "options are missing");
    if ((rc = fb_int(m, &o, 0, 1, true, PAD_SAME, &wo.padding, "options")) ||
        (rc = fb_int(m, &o, 1, 4, true, 0, &wo.stride_w, "options")) ||
        (rc = fb_int(m, &o, 2, 4, true, 0, &wo.stride_h, "options")))
        return rc;
    if (depthwise) {
        if ((rc = fb_int(m, &o, 3, 4, true, 0, &mult, "options")) ||
            (rc = fb_int(m, &o, 4, 1, true, 0, &fa, "options")) ||
            (rc = fb_int(m, &o, 5, 4, true, 1, &wo.dil_w, "options")) ||
            (rc = fb_int(m, &o, 6, 4, true, 1, &wo.dil_h, "options")))
            return rc;
        /* newer writers leave depth_multiplier 0: the filter decides */
        if (mult != 0 && mult * in.c != oc)
            return fail(m, KN_BAD_FORMAT, "depth_multiplier %lld does not match filter %s",
                        (long long)mult, tname(m, wi, tn, sizeof tn));
    } else if ((rc = fb_int(m, &o, 3, 1, true, 0, &fa, "options")) ||
               (rc = fb_int(m, &o, 4, 4, true, 1, &wo.dil_w, "options")) ||
               (rc = fb_int(m, &o, 5, 4, true, 1, &wo.dil_h, "options"))) {
        return rc;
    }
    kn_nn_act act;
    kn_nn_window win;
    if ((rc = activation(m, fa, &act)) || (rc = make_window(m, &wo, in.h, in.w, kh, kw, &win)))
        return rc;
    act = implied_act(m, io->y, act);

    float *w = NULL, *b = NULL, *dst = NULL;
    size_t numel;
    if ((rc = tensor_floats(m, wi, "filter", &w, &numel)) || (rc = load_bias(m, bi, oc, &b)))
        goto out;
    int node = kn_nn_conv(m->g, x, io->name, oc, &win, groups, bi >= 0, act);
    if (node < 0) {
        rc = graph_fail(m);
        goto out;
    }
    dst = malloc(numel * sizeof *dst);
    if (!dst) {
        rc = fail(m, KN_NOMEM, "out of memory for filter");
        goto out;
    }
    size_t khw = (size_t)kh * (size_t)kw;
    if (depthwise) {
        /* [1][kh][kw][oc] -> [oc][1][kh][kw] */
        for (size_t k = 0; k < khw; k++)
            for (int c = 0; c < oc; c++)
                dst[(size_t)c * khw + k] = w[k * (size_t)oc + (size_t)c];
    } else {
        /* [oc][kh][kw][ic] -> [oc][ic][kh][kw] */
        size_t ic = (size_t)wt->dims[3];
        for (size_t c = 0; c < (size_t)oc; c++)
            for (size_t k = 0; k < khw; k++)
                for (size_t i = 0; i < ic; i++)
                    dst[(c * ic + i) * khw + k] = w[(c * khw + k) * ic + i];
    }
    if ((rc = fill_param(m, io->name, "weight", dst, numel)) ||
        (b && (rc = fill_param(m, io->name, "bias", b, (size_t)oc))))
        goto out;
    rc = produce(m, io->y, node, VAL_SAME);
out:
    free(dst);
    free(b);
    free(w);
    return rc;
}

static kn_status op_pool(importer *m, op_io *io, bool avg)
{
    int xi, x;
    kn_status rc;
    if ((rc = tensor_index(m, &io->in, 0, false, "input", &xi)) ||
        (rc = map_input(m, xi, &x)))
        return rc;
    kn_nn_shape in = kn_nn_graph_node(m->g, x)->shape;
    fb_table o;
    bool has_o;
    win_opts wo = {PAD_SAME, 1, 1, 1, 1};
    int64_t fw, fh, fa;
    if ((rc = options(m, &io->tab, OPT_POOL2D, &o, &has_o)))
        return rc;
    if (!has_o)
        return fail(m, KN_BAD_FORMAT, "options are missing");
    if ((rc = fb_int(m, &o, 0, 1, true, PAD_SAME, &wo.padding, "options")) ||
        (rc = fb_int(m, &o, 1, 4, true, 0, &wo.stride_w, "options")) ||
        (rc = fb_int(m, &o, 2, 4, true, 0, &wo.stride_h, "options")) ||
        (rc = fb_int(m, &o, 3, 4, true, 0, &fw, "options")) ||
        (rc = fb_int(m, &o, 4, 4, true, 0, &fh, "options")) ||
        (rc = fb_int(m, &o, 5, 1, true, 0, &fa, "options")))
        return rc;
    kn_nn_act act;
    kn_nn_window win;
    if (fw < 1 || fh < 1 || fw > 1024 || fh > 1024)
        return fail(m, KN_BAD_FORMAT, "filter %lldx%lld", (long long)fh, (long long)fw);
    if ((rc = activation(m, fa, &act)) ||
        (rc = make_window(m, &wo, in.h, in.w, (int)fh, (int)fw, &win)))
        return rc;
    /* TFLite averages over the in-bounds part of the window only. */
    int node = avg ? kn_nn_avgpool(m->g, x, &win, false) : kn_nn_maxpool(m->g, x, &win);
    if (node >= 0 && act == KN_ACT_RELU)
        node = kn_nn_relu(m->g, node);
    else if (node >= 0 && act == KN_ACT_RELU6)
        node = kn_nn_relu6(m->g, node);
    if (node < 0)
        return graph_fail(m);
    return produce(m, io->y, node, VAL_SAME);
}

static kn_status op_add(importer *m, op_io *io)
{
    int ai, bi, a, b;
    kn_status rc;
    if ((rc = tensor_index(m, &io->in, 0, false, "first input", &ai)) ||
        (rc = tensor_index(m, &io->in, 1, false, "second input", &bi)) ||
        (rc = value(m, ai, "first input", &a)) || (rc = value(m, bi, "second input", &b)))
        return rc;
    if (m->t[ai].kind != m->t[bi].kind)
        return fail(m, KN_UNSUPPORTED, "adding a flattened map to an unflattened one");
    fb_table o;
    bool has_o;
    int64_t fa = 0;
    kn_nn_act act;
    if ((rc = options(m, &io->tab, OPT_ADD, &o, &has_o)) ||
        (has_o && (rc = fb_int(m, &o, 0, 1, true, 0, &fa, "options"))) ||
        (rc = activation(m, fa, &act)))
        return rc;
    act = implied_act(m, io->y, act);
    kn_nn_shape sa = kn_nn_graph_node(m->g, a)->shape, sb = kn_nn_graph_node(m->g, b)->shape;
    if (sa.c != sb.c || sa.h != sb.h || sa.w != sb.w)
        return fail(m, KN_UNSUPPORTED, "broadcasting add of %dx%dx%d and %dx%dx%d (HxWxC)",
                    sa.h, sa.w, sa.c, sb.h, sb.w, sb.c);
    int node = kn_nn_add(m->g, a, b, act);
    if (node < 0)
        return graph_fail(m);
    return produce(m, io->y, node, m->t[ai].kind);
}

/* RESHAPE, SQUEEZE, QUANTIZE, DEQUANTIZE: no node, the output tensor names
 * the input's node, possibly with a new relation to it. */
static kn_status op_alias(importer *m, op_io *io)
{
    char tn[112];
    int xi, x;
    kn_status rc = tensor_index(m, &io->in, 0, false, "input", &xi);
    if (rc)
        return rc;
    if (m->op_code == OP_DEQUANTIZE && is_const(m, xi)) {
        /* e.g. float16 weights: resolved when a consumer loads them */
        tfl_tensor *y = &m->t[io->y];
        size_t ny, nx;
        if (y->node >= 0 || y->alias >= 0 || is_const(m, io->y))
            return fail(m, KN_BAD_FORMAT, "%s is written twice",
                        tname(m, io->y, tn, sizeof tn));
        if (!tensor_numel(y, &ny) || !tensor_numel(&m->t[xi], &nx) || nx != ny)
            return fail(m, KN_BAD_FORMAT, "output %s does not match input size",
                        tname(m, io->y, tn, sizeof tn));
        if (m->t[xi].alias >= 0)
            return fail(m, KN_UNSUPPORTED, "chained DEQUANTIZE of a constant");
        y->alias = xi;
        return KN_OK;
    }
    if ((rc = value(m, xi, "input", &x)))
        return rc;
    if (m->op_code == OP_RESHAPE) {
        /* new_shape (if given) must agree with the declared output. */
        fb_table o;
        bool has_o;
        fb_vec ns;
        if ((rc = options(m, &io->tab, OPT_RESHAPE, &o, &has_o)) ||
            (has_o && (rc = fb_vector(m, &o, 0, 4, &ns, "options"))))
            return rc;
        if (has_o && ns.n) {
            const tfl_tensor *y = &m->t[io->y];
            bool ok = ns.n == (uint32_t)y->ndim;
            for (uint32_t k = 0; ok && k < ns.n; k++)
                ok = vec_i32(m, &ns, k) == -1 || vec_i32(m, &ns, k) == y->dims[k];
            if (!ok)
                return fail(m, KN_BAD_FORMAT, "new_shape disagrees with output %s",
                            tname(m, io->y, tn, sizeof tn));
        }
    } else if (m->op_code == OP_SQUEEZE) {
        fb_table o;
        bool has_o;
        fb_vec dims;
        if ((rc = options(m, &io->tab, OPT_SQUEEZE, &o, &has_o)) ||
            (has_o && (rc = fb_vector(m, &o, 0, 4, &dims, "options"))))
            return rc;
    }
    kn_nn_shape s = kn_nn_graph_node(m->g, x)->shape;
    const tfl_tensor *y = &m->t[io->y];
    size_t ny;
    if (!tensor_numel(y, &ny) || ny != (size_t)s.c * (size_t)s.h * (size_t)s.w)
        return fail(m, KN_BAD_FORMAT, "output %s has a different element count than the input",
                    tname(m, io->y, tn, sizeof tn));
    if (s.h == 1 && s.w == 1)
        return produce(m, io->y, x, VAL_SAME);
    /* A spatial map: either the same 4-D shape again or its HWC flattening. */
    kn_nn_shape ys;
    if ((rc = tensor_chw(m, io->y, &ys)))
        return rc;
    if (ys.c == s.c && ys.h == s.h && ys.w == s.w)
        return produce(m, io->y, x, VAL_SAME);
    if (ys.h == 1 && ys.w == 1)
        return produce(m, io->y, x, VAL_FLAT_HWC);
    return fail(m, KN_UNSUPPORTED, "reshape of %dx%dx%d (HxWxC) into %s", s.h, s.w, s.c,
                tname(m, io->y, tn, sizeof tn));
}

static kn_status op_fc(importer *m, op_io *io)
{
    char tn[112];
    int xi, wi, bi, x;
    kn_status rc;
    if ((rc = tensor_index(m, &io->in, 0, false, "input", &xi)) ||
        (rc = tensor_index(m, &io->in, 1, false, "weights", &wi)) ||
        (rc = tensor_index(m, &io->in, 2, true, "bias", &bi)) ||
        (rc = need_const(m, wi, "weights")) || (rc = need_const(m, bi, "bias")) ||
        (rc = value(m, xi, "input", &x)))
        return rc;
    fb_table o;
    bool has_o;
    int64_t fa = 0, fmt = 0;
    kn_nn_act act;
    if ((rc = options(m, &io->tab, OPT_FULLY_CONNECTED, &o, &has_o)) ||
        (has_o && ((rc = fb_int(m, &o, 0, 1, true, 0, &fa, "options")) ||
                   (rc = fb_int(m, &o, 1, 1, true, 0, &fmt, "options")))) ||
        (rc = activation(m, fa, &act)))
        return rc;
    if (fmt != 0)
        return fail(m, KN_UNSUPPORTED, "shuffled weights format %lld", (long long)fmt);
    act = implied_act(m, io->y, act);
    const tfl_tensor *wt = &m->t[wi];
    kn_nn_shape s = kn_nn_graph_node(m->g, x)->shape;
    size_t in_f = (size_t)s.c * (size_t)s.h * (size_t)s.w;
    if (wt->ndim != 2 || wt->dims[0] < 1 || (size_t)wt->dims[1] != in_f)
        return fail(m, KN_UNSUPPORTED, "weights %s do not match %zu input features (batch 1)",
                    tname(m, wi, tn, sizeof tn), in_f);
    int out_f = wt->dims[0];
    float *w = NULL, *b = NULL, *perm = NULL;
    size_t numel;
    if ((rc = tensor_floats(m, wi, "weights", &w, &numel)) ||
        (rc = load_bias(m, bi, out_f, &b)))
        goto out;
    int src = x;
    if (s.h != 1 || s.w != 1) {
        /* TFLite flattens in HWC order, the IR in CHW: permute columns. */
        src = kn_nn_flatten(m->g, x);
        if (src < 0) {
            rc = graph_fail(m);
            goto out;
        }
        perm = malloc(numel * sizeof *perm);
        if (!perm) {
            rc = fail(m, KN_NOMEM, "out of memory for weights");
            goto out;
        }
        size_t hw = (size_t)s.h * (size_t)s.w, c = (size_t)s.c;
        for (size_t r = 0; r < (size_t)out_f; r++)
            for (size_t ch = 0; ch < c; ch++)
                for (size_t p = 0; p < hw; p++)
                    perm[r * in_f + ch * hw + p] = w[r * in_f + p * c + ch];
    }
    int node = kn_nn_linear(m->g, src, io->name, out_f, bi >= 0, act);
    if (node < 0) {
        rc = graph_fail(m);
        goto out;
    }
    if ((rc = fill_param(m, io->name, "weight", perm ? perm : w, numel)) ||
        (b && (rc = fill_param(m, io->name, "bias", b, (size_t)out_f))))
        goto out;
    /* [1,N] or, with keep_num_dims, [1,1,1,N]: both are node (N,1,1) */
    rc = produce(m, io->y, node, VAL_SAME);
out:
    free(perm);
    free(b);
    free(w);
    return rc;
}

static kn_status op_softmax(importer *m, op_io *io)
{
    int xi, x;
    kn_status rc;
    if ((rc = tensor_index(m, &io->in, 0, false, "input", &xi)) ||
        (rc = value(m, xi, "input", &x)))
        return rc;
    fb_table o;
    bool has_o;
    float beta = 0;
    if ((rc = options(m, &io->tab, OPT_SOFTMAX, &o, &has_o)) ||
        (has_o && (rc = fb_float(m, &o, 0, 0.0f, &beta, "options"))))
        return rc;
    if (!(fabsf(beta - 1.0f) <= 1e-6f))
        return fail(m, KN_UNSUPPORTED, "softmax with beta %g", (double)beta);
    kn_nn_shape s = kn_nn_graph_node(m->g, x)->shape;
    if (s.h != 1 || s.w != 1)
        return fail(m, KN_UNSUPPORTED, "softmax over a %dx%dx%d (HxWxC) map", s.h, s.w, s.c);
    int node = kn_nn_softmax(m->g, x);
    if (node < 0)
        return graph_fail(m);
    return produce(m, io->y, node, VAL_SAME);
}

static kn_status translate_op(importer *m, const fb_vec *ops, uint32_t i)
{
    char what[48];
    snprintf(what, sizeof what, "operator %u", i);
    op_io io = {.name = ""};
    int64_t opc;
    kn_status rc;
    m->op = -1; /* errors before the code is known name only the index */
    if ((rc = fb_vec_table(m, ops, i, &io.tab, what)) ||
        (rc = fb_int(m, &io.tab, OPR_OPCODE, 4, false, 0, &opc, what)))
        return rc;
    if (opc >= m->n_codes)
        return fail(m, KN_BAD_FORMAT, "%s: opcode index %lld out of range (%u codes)", what,
                    (long long)opc, m->n_codes);
    m->op = (int)i;
    m->op_code = m->codes[opc];
    if ((rc = fb_vector(m, &io.tab, OPR_INPUTS, 4, &io.in, "inputs")) ||
        (rc = fb_vector(m, &io.tab, OPR_OUTPUTS, 4, &io.out, "outputs")))
        return rc;
    switch (m->op_code) {
    case OP_CONV_2D:
    case OP_DEPTHWISE_CONV_2D:
    case OP_AVERAGE_POOL_2D:
    case OP_MAX_POOL_2D:
    case OP_ADD:
    case OP_RESHAPE:
    case OP_SQUEEZE:
    case OP_FULLY_CONNECTED:
    case OP_SOFTMAX:
    case OP_QUANTIZE:
    case OP_DEQUANTIZE:
        break;
    case OP_CUSTOM:
        return fail(m, KN_UNSUPPORTED, "custom operators are not supported");
    default:
        return fail(m, KN_UNSUPPORTED, "operator is not supported");
    }
    if (io.out.n != 1)
        return fail(m, KN_BAD_FORMAT, "%u outputs, expected 1", io.out.n);
    if ((rc = tensor_index(m, &io.out, 0, false, "output", &io.y)))
        return rc;
    switch (m->op_code) {
    case OP_CONV_2D:
        snprintf(io.name, sizeof io.name, "conv_%u", i);
        return op_conv(m, &io, false);
    case OP_DEPTHWISE_CONV_2D:
        snprintf(io.name, sizeof io.name, "dwconv_%u", i);
        return op_conv(m, &io, true);
    case OP_AVERAGE_POOL_2D:
        return op_pool(m, &io, true);
    case OP_MAX_POOL_2D:
        return op_pool(m, &io, false);
    case OP_ADD:
        return op_add(m, &io);
    case OP_FULLY_CONNECTED:
        snprintf(io.name, sizeof io.name, "fc_%u", i);
        return op_fc(m, &io);
    case OP_SOFTMAX:
        return op_softmax(m, &io);
    default:
        return op_alias(m, &io);
    }
}

/* ---- entry point -------------------------------------------------------- */

static kn_status import(importer *m, kn_tflite_info *info)
{
    if (m->n < 8)
        return fail(m, KN_BAD_FORMAT, "%zu bytes is not a model", m->n);
    if (m->n > (size_t)UINT32_MAX)
        return fail(m, KN_TOO_LARGE, "%zu bytes: files over 4 GB are not supported", m->n);
    if (memcmp(m->p + 4, "TFL3", 4) != 0)
        return fail(m, KN_BAD_FORMAT, "no TFL3 file identifier");
    fb_table model, sg;
    int64_t version;
    fb_vec subgraphs, tv, ops, ins, outs;
    kn_status rc;
    if ((rc = fb_open(m, rd32(m->p), &model, "model")) ||
        (rc = fb_int(m, &model, MODEL_VERSION, 4, false, 0, &version, "model")))
        return rc;
    if (version != 3)
        return fail(m, KN_UNSUPPORTED, "schema version %lld (expected 3)", (long long)version);
    if ((rc = read_opcodes(m, &model)) ||
        (rc = fb_vector(m, &model, MODEL_BUFFERS, 4, &m->buffers, "model buffers")) ||
        (rc = fb_vector(m, &model, MODEL_SUBGRAPHS, 4, &subgraphs, "model subgraphs")))
        return rc;
    if (subgraphs.n < 1)
        return fail(m, KN_BAD_FORMAT, "the model has no subgraph");
    if ((rc = fb_vec_table(m, &subgraphs, 0, &sg, "subgraph 0")) ||
        (rc = fb_vector(m, &sg, SG_TENSORS, 4, &tv, "subgraph tensors")) ||
        (rc = fb_vector(m, &sg, SG_INPUTS, 4, &ins, "subgraph inputs")) ||
        (rc = fb_vector(m, &sg, SG_OUTPUTS, 4, &outs, "subgraph outputs")) ||
        (rc = fb_vector(m, &sg, SG_OPERATORS, 4, &ops, "subgraph operators")))
        return rc;
    if (tv.n > TFL_MAX_TENSORS || ops.n > TFL_MAX_OPS)
        return fail(m, KN_TOO_LARGE, "%u tensors / %u operators (at most %d / %d)", tv.n, ops.n,
                    TFL_MAX_TENSORS, TFL_MAX_OPS);
    m->t = calloc(tv.n ? tv.n : 1, sizeof *m->t);
    if (!m->t)
        return fail(m, KN_NOMEM, "out of memory for %u tensors", tv.n);
    m->nt = tv.n;
    for (uint32_t i = 0; i < tv.n; i++)
        if ((rc = read_tensor(m, &tv, i)))
            return rc;

    /* The input: one [1,H,W,C] tensor. */
    char tn[112];
    int xi;
    if (ins.n != 1)
        return fail(m, KN_UNSUPPORTED, "%u graph inputs (expected 1)", ins.n);
    if ((rc = tensor_index(m, &ins, 0, false, "graph input", &xi)))
        return rc;
    const tfl_tensor *xt = &m->t[xi];
    if (xt->ndim != 4 || xt->dims[0] != 1)
        return fail(m, KN_UNSUPPORTED, "graph input %s is not [1,H,W,C]",
                    tname(m, xi, tn, sizeof tn));
    if (xt->type != TT_FLOAT32 && xt->type != TT_UINT8 && xt->type != TT_INT8)
        return fail(m, KN_UNSUPPORTED, "graph input %s has type %s", tname(m, xi, tn, sizeof tn),
                    type_name(xt->type));
    if (xt->dims[1] < 1 || xt->dims[2] < 1 || xt->dims[3] < 1 ||
        (int64_t)xt->dims[1] * xt->dims[2] > TFL_MAX_INPUT ||
        (int64_t)xt->dims[1] * xt->dims[2] * xt->dims[3] > TFL_MAX_INPUT)
        return fail(m, KN_TOO_LARGE, "graph input %s is %dx%dx%d (at most %d values)",
                    tname(m, xi, tn, sizeof tn), xt->dims[1], xt->dims[2], xt->dims[3],
                    TFL_MAX_INPUT);
    info->in_h = xt->dims[1];
    info->in_w = xt->dims[2];
    info->in_c = xt->dims[3];
    info->in_scale = 1.0f;
    info->in_zero = 0.0f;
    if (xt->type != TT_FLOAT32) {
        if (!xt->has_quant)
            return fail(m, KN_BAD_FORMAT, "quantized graph input %s has no scale",
                        tname(m, xi, tn, sizeof tn));
        info->in_scale = rdf32(m->p + xt->scale.pos);
        int64_t z = xt->zero.n ? (int64_t)rd64(m->p + xt->zero.pos) : 0;
        if (!isfinite(info->in_scale) || info->in_scale <= 0 || z < -65536 || z > 65536)
            return fail(m, KN_BAD_FORMAT, "graph input %s: bad scale / zero point",
                        tname(m, xi, tn, sizeof tn));
        info->in_zero = (float)z;
    }
    int in = kn_nn_input(m->g, info->in_c, info->in_h, info->in_w);
    if (in < 0)
        return graph_fail(m);
    if ((rc = produce(m, xi, in, VAL_SAME)))
        return rc;

    for (uint32_t i = 0; i < ops.n; i++)
        if ((rc = translate_op(m, &ops, i)))
            return rc;
    m->op = -1;

    /* The output: the value of the last node. */
    int yi;
    if (outs.n != 1)
        return fail(m, KN_UNSUPPORTED, "%u graph outputs (expected 1)", outs.n);
    if ((rc = tensor_index(m, &outs, 0, false, "graph output", &yi)))
        return rc;
    const tfl_tensor *yt = &m->t[yi];
    int last = kn_nn_graph_count(m->g) - 1;
    if (yt->node < 0)
        return fail(m, KN_BAD_FORMAT, "graph output %s is never written",
                    tname(m, yi, tn, sizeof tn));
    if (yt->node != last || last < 1)
        return fail(m, KN_UNSUPPORTED, "graph output %s is not computed by the last operator",
                    tname(m, yi, tn, sizeof tn));
    kn_nn_shape os = kn_nn_graph_output_shape(m->g);
    if (os.h != 1 || os.w != 1 || yt->kind != VAL_SAME)
        return fail(m, KN_UNSUPPORTED, "graph output %s is not a vector",
                    tname(m, yi, tn, sizeof tn));
    info->out_n = os.c;
    info->has_softmax = kn_nn_graph_node(m->g, last)->op == KN_OP_SOFTMAX;
    info->quantized = m->quantized;
    if ((rc = kn_nn_graph_finalize(m->g, m->e)))
        kn_err_prefix(m->e, "tflite");
    return rc;
}

kn_status kn_tflite_import(kn_nn_graph *g, const uint8_t *data, size_t len,
                           kn_tflite_info *info, kn_err *e)
{
    kn_tflite_info scratch;
    if (!info)
        info = &scratch;
    memset(info, 0, sizeof *info);
    if (!g || (!data && len))
        return kn_err_set(e, KN_INVALID, "tflite: no graph or no data");
    if (kn_nn_graph_count(g) != 0)
        return kn_err_set(e, KN_INVALID, "tflite: the graph must be empty");
    importer m = {.p = data, .n = len, .e = e, .g = g, .op = -1};
    kn_status rc = import(&m, info);
    free(m.t);
    free(m.codes);
    if (rc)
        memset(info, 0, sizeof *info);
    return rc;
}
