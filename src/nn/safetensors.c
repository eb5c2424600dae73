/* safetensors: reading and writing the Hugging Face tensor file format.
 *
 * A file is an 8-byte little-endian header length N, N bytes of JSON
 * ({"name": {"dtype", "shape", "data_offsets"}, ..., "__metadata__": {..}})
 * and then the data buffer; data offsets are relative to the buffer start.
 *
 * The reader never trusts the file: the header length, the JSON, every dtype,
 * shape and offset pair are checked before a tensor is handed out, and a
 * parsed kn_st_file only holds views into the caller's bytes (or the mapped
 * file). Those bytes may sit at any alignment, so element reads assemble
 * little-endian values byte by byte. Tensors are listed in data-offset order,
 * which is how the reference implementation orders them too.
 *
 * The writer produces what the reference writer does for float32: tensors
 * sorted by name and packed back to back, "__metadata__": {"format": "pt"},
 * header padded with spaces to a multiple of 8 so the data buffer starts
 * 8-byte aligned in the file (every F32 tensor is then 4-byte aligned).
 *
 * Thread-safety: a parsed file is immutable and may be read by many threads.
 */
#include "kennel/nn.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Bounds on what a header may describe (the first is the reference's). */
#define ST_MAX_HEADER 100000000u
#define ST_MAX_TENSORS 1000000u
#define ST_MAX_DIMS 8
#define ST_NAME_MAX 127
/* How much of a name to quote in an error message. */
#define ST_NAME_QUOTE 60

struct kn_st_file {
    kn_map map; /* set only by kn_st_open */
    int n;
    kn_st_tensor *t;
};

static const struct {
    const char *name;
    size_t size;
} dtype_table[KN_DT_COUNT] = {
    [KN_DT_F32] = {"F32", 4},  [KN_DT_F16] = {"F16", 2}, [KN_DT_BF16] = {"BF16", 2},
    [KN_DT_F64] = {"F64", 8},  [KN_DT_I64] = {"I64", 8}, [KN_DT_I32] = {"I32", 4},
    [KN_DT_I16] = {"I16", 2},  [KN_DT_I8] = {"I8", 1},   [KN_DT_U8] = {"U8", 1},
    [KN_DT_BOOL] = {"BOOL", 1},
};

const char *kn_dtype_name(kn_dtype t)
{
    return (int)t >= 0 && t < KN_DT_COUNT ? dtype_table[t].name : "?";
}

size_t kn_dtype_size(kn_dtype t)
{
    return (int)t >= 0 && t < KN_DT_COUNT ? dtype_table[t].size : 0;
}

static int dtype_from_name(const char *s)
{
    for (int i = 0; i < KN_DT_COUNT; i++)
        if (strcmp(s, dtype_table[i].name) == 0)
            return i;
    return -1;
}

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

/* ---- reading ------------------------------------------------------------- */

/* Element count of a shape, false on overflow. */
static bool shape_numel(int ndim, const int64_t *dims, size_t *out)
{
    size_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (dims[i] < 0 || (uint64_t)dims[i] > SIZE_MAX || !kn_mul_size(n, (size_t)dims[i], &n))
            return false;
    }
    *out = n;
    return true;
}

static bool json_is_uint(const json_t *v)
{
    return json_is_integer(v) && json_integer_value(v) >= 0;
}

/* Reads one tensor entry into t. `data_len` is the size of the data buffer. */
static kn_status parse_entry(const char *name, json_t *obj, const uint8_t *base, size_t data_len,
                             kn_st_tensor *t, kn_err *e)
{
    size_t name_len = strlen(name);
    if (name_len > ST_NAME_MAX)
        return kn_err_set(e, KN_BAD_FORMAT,
                          "safetensors: tensor name too long (%zu bytes, at most %d): \"%.*s...\"",
                          name_len, ST_NAME_MAX, ST_NAME_QUOTE, name);
    memcpy(t->name, name, name_len + 1);

    if (!json_is_object(obj))
        return kn_err_set(e, KN_BAD_FORMAT, "safetensors: tensor \"%s\": entry is not an object",
                          name);

    json_t *dt = json_object_get(obj, "dtype");
    if (!json_is_string(dt))
        return kn_err_set(e, KN_BAD_FORMAT, "safetensors: tensor \"%s\": missing string \"dtype\"",
                          name);
    int d = dtype_from_name(json_string_value(dt));
    if (d < 0)
        return kn_err_set(e, KN_BAD_FORMAT, "safetensors: tensor \"%s\": unknown dtype \"%.32s\"",
                          name, json_string_value(dt));
    t->dtype = (kn_dtype)d;

    json_t *shape = json_object_get(obj, "shape");
    if (!json_is_array(shape))
        return kn_err_set(e, KN_BAD_FORMAT, "safetensors: tensor \"%s\": missing array \"shape\"",
                          name);
    size_t nd = json_array_size(shape);
    if (nd > ST_MAX_DIMS)
        return kn_err_set(e, KN_BAD_FORMAT,
                          "safetensors: tensor \"%s\": %zu dimensions (at most %d supported)", name,
                          nd, ST_MAX_DIMS);
    t->ndim = (int)nd;
    for (size_t i = 0; i < nd; i++) {
        json_t *v = json_array_get(shape, i);
        if (!json_is_uint(v))
            return kn_err_set(e, KN_BAD_FORMAT,
                              "safetensors: tensor \"%s\": shape[%zu] is not a non-negative "
                              "integer",
                              name, i);
        t->dims[i] = (int64_t)json_integer_value(v);
    }
    size_t numel, nbytes;
    if (!shape_numel(t->ndim, t->dims, &numel) || numel > (size_t)INT64_MAX ||
        !kn_mul_size(numel, kn_dtype_size(t->dtype), &nbytes))
        return kn_err_set(e, KN_BAD_FORMAT, "safetensors: tensor \"%s\": shape size overflows",
                          name);

    json_t *off = json_object_get(obj, "data_offsets");
    if (!json_is_array(off) || json_array_size(off) != 2 ||
        !json_is_uint(json_array_get(off, 0)) || !json_is_uint(json_array_get(off, 1)))
        return kn_err_set(e, KN_BAD_FORMAT,
                          "safetensors: tensor \"%s\": \"data_offsets\" is not two non-negative "
                          "integers",
                          name);
    uint64_t begin = (uint64_t)json_integer_value(json_array_get(off, 0));
    uint64_t end = (uint64_t)json_integer_value(json_array_get(off, 1));
    if (begin > end)
        return kn_err_set(e, KN_BAD_FORMAT,
                          "safetensors: tensor \"%s\": data_offsets [%llu, %llu] run backwards",
                          name, (unsigned long long)begin, (unsigned long long)end);
    if (end > data_len)
        return kn_err_set(e, KN_BAD_FORMAT,
                          "safetensors: tensor \"%s\": data_offsets [%llu, %llu] exceed the data "
                          "size %zu (file truncated?)",
                          name, (unsigned long long)begin, (unsigned long long)end, data_len);
    if (end - begin != nbytes)
        return kn_err_set(e, KN_BAD_FORMAT,
                          "safetensors: tensor \"%s\": data_offsets span %llu bytes but %s shape "
                          "needs %zu",
                          name, (unsigned long long)(end - begin), kn_dtype_name(t->dtype),
                          nbytes);
    t->data = base + begin;
    t->nbytes = nbytes;
    return KN_OK;
}

/* "__metadata__" must map strings to strings; nothing else is kept. */
static kn_status check_metadata(json_t *meta, kn_err *e)
{
    if (!json_is_object(meta))
        return kn_err_set(e, KN_BAD_FORMAT, "safetensors: \"__metadata__\" is not an object");
    const char *k;
    json_t *v;
    json_object_foreach(meta, k, v)
    {
        if (!json_is_string(v))
            return kn_err_set(e, KN_BAD_FORMAT,
                              "safetensors: \"__metadata__\" value for \"%.64s\" is not a string",
                              k);
    }
    return KN_OK;
}

static int cmp_offset(const void *a, const void *b)
{
    const kn_st_tensor *x = a, *y = b;
    if (x->data != y->data)
        return x->data < y->data ? -1 : 1;
    if (x->nbytes != y->nbytes)
        return x->nbytes < y->nbytes ? -1 : 1;
    return strcmp(x->name, y->name);
}

/* With tensors sorted by start, no non-empty tensor may start before the
 * furthest end seen so far. Empty tensors occupy no bytes. */
static kn_status check_overlap(const kn_st_tensor *t, int n, const uint8_t *base, kn_err *e)
{
    const kn_st_tensor *prev = NULL;
    for (int i = 0; i < n; i++) {
        if (t[i].nbytes == 0)
            continue;
        if (prev && t[i].data < prev->data + prev->nbytes) {
            ptrdiff_t b = t[i].data - base, pb = prev->data - base;
            return kn_err_set(e, KN_BAD_FORMAT,
                              "safetensors: tensor \"%s\" (bytes %td..%td) overlaps tensor \"%s\" "
                              "(bytes %td..%td)",
                              t[i].name, b, b + (ptrdiff_t)t[i].nbytes, prev->name, pb,
                              pb + (ptrdiff_t)prev->nbytes);
        }
        if (!prev || t[i].data + t[i].nbytes > prev->data + prev->nbytes)
            prev = &t[i];
    }
    return KN_OK;
}

kn_status kn_st_parse(const uint8_t *data, size_t len, kn_st_file **out, kn_err *e)
{
    kn_status rc = KN_OK;
    json_t *root = NULL;
    kn_st_file *f = NULL;
    *out = NULL;

    if (len == 0)
        return kn_err_set(e, KN_BAD_FORMAT, "safetensors: empty file");
    if (len < 8)
        return kn_err_set(e, KN_BAD_FORMAT,
                          "safetensors: file too short (%zu bytes) for the 8-byte header length",
                          len);
    uint64_t hlen = rd64(data);
    if (hlen > ST_MAX_HEADER)
        return kn_err_set(e, KN_BAD_FORMAT,
                          "safetensors: header length %llu exceeds the %u-byte limit",
                          (unsigned long long)hlen, ST_MAX_HEADER);
    if (hlen > len - 8)
        return kn_err_set(e, KN_BAD_FORMAT,
                          "safetensors: header length %llu exceeds the %zu bytes after it "
                          "(file truncated?)",
                          (unsigned long long)hlen, len - 8);
    if (hlen < 2)
        return kn_err_set(e, KN_BAD_FORMAT, "safetensors: header length %llu is too small",
                          (unsigned long long)hlen);

    json_error_t jerr;
    root = json_loadb((const char *)data + 8, (size_t)hlen, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        rc = kn_err_set(e, KN_BAD_FORMAT, "safetensors: header is not valid JSON: %s (byte %d)",
                        jerr.text, jerr.position);
        goto out;
    }
    if (!json_is_object(root)) {
        rc = kn_err_set(e, KN_BAD_FORMAT, "safetensors: header is not a JSON object");
        goto out;
    }

    size_t count = json_object_size(root);
    json_t *meta = json_object_get(root, "__metadata__");
    if (meta) {
        if ((rc = check_metadata(meta, e)) != KN_OK)
            goto out;
        count--;
    }
    if (count > ST_MAX_TENSORS) {
        rc = kn_err_set(e, KN_BAD_FORMAT, "safetensors: %zu tensors (at most %u)", count,
                        ST_MAX_TENSORS);
        goto out;
    }

    f = calloc(1, sizeof *f);
    if (!f || (count && !(f->t = calloc(count, sizeof *f->t)))) {
        rc = kn_err_set(e, KN_NOMEM, "safetensors: out of memory for %zu tensors", count);
        goto out;
    }

    const uint8_t *base = data + 8 + hlen;
    size_t data_len = len - 8 - (size_t)hlen;
    const char *name;
    json_t *v;
    json_object_foreach(root, name, v)
    {
        if (v == meta)
            continue;
        if ((rc = parse_entry(name, v, base, data_len, &f->t[f->n], e)) != KN_OK)
            goto out;
        f->n++;
    }
    if (f->n > 1)
        qsort(f->t, (size_t)f->n, sizeof *f->t, cmp_offset);
    if ((rc = check_overlap(f->t, f->n, base, e)) != KN_OK)
        goto out;

    *out = f;
    f = NULL;
out:
    kn_st_free(f);
    json_decref(root);
    return rc;
}

kn_status kn_st_open(const char *path, kn_st_file **out, kn_err *e)
{
    kn_map m;
    *out = NULL;
    kn_status rc = kn_map_open(&m, path, e);
    if (rc != KN_OK)
        return rc;
    rc = kn_st_parse(m.data, m.len, out, e);
    if (rc != KN_OK) {
        kn_map_close(&m);
        return kn_err_prefix(e, "%s", path);
    }
    (*out)->map = m;
    return KN_OK;
}

void kn_st_free(kn_st_file *f)
{
    if (!f)
        return;
    kn_map_close(&f->map);
    free(f->t);
    free(f);
}

int kn_st_count(const kn_st_file *f)
{
    return f ? f->n : 0;
}

const kn_st_tensor *kn_st_get(const kn_st_file *f, int i)
{
    return f && i >= 0 && i < f->n ? &f->t[i] : NULL;
}

const kn_st_tensor *kn_st_find(const kn_st_file *f, const char *name)
{
    if (!f || !name)
        return NULL;
    for (int i = 0; i < f->n; i++)
        if (strcmp(f->t[i].name, name) == 0)
            return &f->t[i];
    return NULL;
}

kn_status kn_st_to_f32(const kn_st_tensor *t, float *dst, size_t numel, kn_err *e)
{
    size_t have, nbytes;
    if (t->ndim < 0 || t->ndim > ST_MAX_DIMS || !shape_numel(t->ndim, t->dims, &have) ||
        !kn_mul_size(have, kn_dtype_size(t->dtype), &nbytes) || nbytes != t->nbytes ||
        kn_dtype_size(t->dtype) == 0)
        return kn_err_set(e, KN_INVALID, "tensor \"%.127s\": inconsistent descriptor", t->name);
    if (have != numel)
        return kn_err_set(e, KN_SHAPE, "tensor \"%.127s\": has %zu elements, %zu expected",
                          t->name, have, numel);
    const uint8_t *p = t->data;
    switch (t->dtype) {
    case KN_DT_F32:
        for (size_t i = 0; i < numel; i++) {
            uint32_t b = rd32(p + 4 * i);
            memcpy(&dst[i], &b, 4);
        }
        return KN_OK;
    case KN_DT_F16:
        for (size_t i = 0; i < numel; i++)
            dst[i] = kn_f16_to_f32(rd16(p + 2 * i));
        return KN_OK;
    case KN_DT_BF16:
        for (size_t i = 0; i < numel; i++)
            dst[i] = kn_bf16_to_f32(rd16(p + 2 * i));
        return KN_OK;
    case KN_DT_F64:
        for (size_t i = 0; i < numel; i++) {
            uint64_t b = rd64(p + 8 * i);
            double d;
            memcpy(&d, &b, 8);
            dst[i] = (float)d;
        }
        return KN_OK;
    default:
        return kn_err_set(e, KN_UNSUPPORTED,
                          "tensor \"%.127s\": dtype %s cannot be converted to float32", t->name,
                          kn_dtype_name(t->dtype));
    }
}

/* ---- writing ------------------------------------------------------------- */

static int cmp_param_name(const void *a, const void *b)
{
    const kn_nn_param *const *x = a, *const *y = b;
    return strcmp((*x)->name, (*y)->name);
}

/* Checks one parameter and returns its data size in bytes. */
static kn_status check_param(const kn_nn_param *p, int i, size_t *nbytes, kn_err *e)
{
    if (!p)
        return kn_err_set(e, KN_INVALID, "safetensors write: parameter %d is NULL", i);
    if (memchr(p->name, '\0', sizeof p->name) == NULL)
        return kn_err_set(e, KN_INVALID, "safetensors write: parameter %d: name not terminated",
                          i);
    if (p->name[0] == '\0')
        return kn_err_set(e, KN_INVALID, "safetensors write: parameter %d has an empty name", i);
    size_t numel;
    if (p->ndim < 0 || p->ndim > KN_NN_MAX_DIMS || !shape_numel(p->ndim, p->dims, &numel))
        return kn_err_set(e, KN_INVALID, "safetensors write: \"%s\": bad shape (%d dims)",
                          p->name, p->ndim);
    if (numel != p->numel)
        return kn_err_set(e, KN_SHAPE, "safetensors write: \"%s\": shape holds %zu elements, "
                          "numel is %zu", p->name, numel, p->numel);
    if (numel && !p->data)
        return kn_err_set(e, KN_INVALID, "safetensors write: \"%s\": no data", p->name);
    if (!kn_mul_size(numel, 4, nbytes))
        return kn_err_set(e, KN_TOO_LARGE, "safetensors write: \"%s\": too large", p->name);
    return KN_OK;
}

/* Builds the padded header for params (sorted by name) into *hdr. */
static kn_status build_header(const kn_nn_param **sorted, int n, char **hdr, size_t *hlen,
                              kn_err *e)
{
    kn_status rc = KN_OK;
    json_t *root = json_object(), *meta = json_object();
    char *text = NULL;
    if (!root || !meta || json_object_set_new(meta, "format", json_string("pt")) != 0 ||
        json_object_set(root, "__metadata__", meta) != 0) {
        rc = kn_err_set(e, KN_NOMEM, "safetensors write: out of memory");
        goto out;
    }
    size_t offset = 0;
    for (int i = 0; i < n; i++) {
        const kn_nn_param *p = sorted[i];
        size_t nbytes = p->numel * 4; /* checked by check_param */
        if (i > 0 && strcmp(sorted[i - 1]->name, p->name) == 0) {
            rc = kn_err_set(e, KN_INVALID, "safetensors write: duplicate tensor name \"%s\"",
                            p->name);
            goto out;
        }
        if (strcmp(p->name, "__metadata__") == 0) {
            rc = kn_err_set(e, KN_INVALID, "safetensors write: \"__metadata__\" is reserved");
            goto out;
        }
        if (offset + nbytes < offset) {
            rc = kn_err_set(e, KN_TOO_LARGE, "safetensors write: total size overflows");
            goto out;
        }
        json_t *shape = json_array(), *off = json_array(), *ent = json_object();
        bool ok = shape && off && ent;
        for (int d = 0; ok && d < p->ndim; d++)
            ok = json_array_append_new(shape, json_integer((json_int_t)p->dims[d])) == 0;
        ok = ok && json_array_append_new(off, json_integer((json_int_t)offset)) == 0 &&
             json_array_append_new(off, json_integer((json_int_t)(offset + nbytes))) == 0 &&
             json_object_set_new(ent, "dtype", json_string("F32")) == 0;
        /* set_new steals the reference even on failure */
        ok = json_object_set_new(ent, "shape", shape) == 0 && ok;
        ok = json_object_set_new(ent, "data_offsets", off) == 0 && ok;
        if (!ok || json_object_set_new(root, p->name, ent) != 0) {
            if (!ok)
                json_decref(ent);
            rc = kn_err_set(e, KN_INVALID,
                            "safetensors write: \"%s\": cannot encode (name not UTF-8?)",
                            p->name);
            goto out;
        }
        offset += nbytes;
    }
    text = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!text) {
        rc = kn_err_set(e, KN_NOMEM, "safetensors write: cannot encode the header");
        goto out;
    }
    size_t len = strlen(text), padded = (len + 7) & ~(size_t)7;
    char *buf = malloc(padded + 1);
    if (!buf) {
        rc = kn_err_set(e, KN_NOMEM, "safetensors write: out of memory");
        goto out;
    }
    memcpy(buf, text, len);
    memset(buf + len, ' ', padded - len);
    buf[padded] = '\0';
    *hdr = buf;
    *hlen = padded;
out:
    free(text);
    json_decref(meta);
    json_decref(root);
    return rc;
}

static kn_status write_all(FILE *fp, const void *p, size_t n, const char *path, kn_err *e)
{
    if (n && fwrite(p, 1, n, fp) != n)
        return kn_err_set(e, KN_IO, "%s: write failed: %s", path, strerror(errno));
    return KN_OK;
}

/* Writes float data as little-endian bytes in chunks. */
static kn_status write_f32(FILE *fp, const float *src, size_t numel, const char *path,
                           kn_err *e)
{
    uint8_t chunk[4096];
    size_t per = sizeof chunk / 4;
    for (size_t i = 0; i < numel; i += per) {
        size_t m = numel - i < per ? numel - i : per;
        for (size_t j = 0; j < m; j++) {
            uint32_t b;
            memcpy(&b, &src[i + j], 4);
            chunk[4 * j] = (uint8_t)b;
            chunk[4 * j + 1] = (uint8_t)(b >> 8);
            chunk[4 * j + 2] = (uint8_t)(b >> 16);
            chunk[4 * j + 3] = (uint8_t)(b >> 24);
        }
        kn_status rc = write_all(fp, chunk, 4 * m, path, e);
        if (rc != KN_OK)
            return rc;
    }
    return KN_OK;
}

kn_status kn_st_write(const char *path, const kn_nn_param *const *params, int n, kn_err *e)
{
    kn_status rc = KN_OK;
    const kn_nn_param **sorted = NULL;
    char *hdr = NULL;
    size_t hlen = 0;
    FILE *fp = NULL;
    bool created = false;

    if (n < 0 || (n > 0 && !params))
        return kn_err_set(e, KN_INVALID, "safetensors write: bad parameter list");
    for (int i = 0; i < n; i++) {
        size_t nbytes;
        if ((rc = check_param(params[i], i, &nbytes, e)) != KN_OK)
            return rc;
    }
    if (n > 0 && !(sorted = malloc((size_t)n * sizeof *sorted)))
        return kn_err_set(e, KN_NOMEM, "safetensors write: out of memory");
    for (int i = 0; i < n; i++)
        sorted[i] = params[i];
    if (n > 1)
        qsort(sorted, (size_t)n, sizeof *sorted, cmp_param_name);
    if ((rc = build_header(sorted, n, &hdr, &hlen, e)) != KN_OK)
        goto out;

    fp = fopen(path, "wb");
    if (!fp) {
        rc = kn_err_set(e, errno == ENOENT ? KN_NOT_FOUND : KN_IO, "%s: %s", path,
                        strerror(errno));
        goto out;
    }
    created = true;
    uint8_t lenb[8];
    for (int i = 0; i < 8; i++)
        lenb[i] = (uint8_t)((uint64_t)hlen >> (8 * i));
    if ((rc = write_all(fp, lenb, 8, path, e)) != KN_OK ||
        (rc = write_all(fp, hdr, hlen, path, e)) != KN_OK)
        goto out;
    for (int i = 0; i < n; i++)
        if ((rc = write_f32(fp, sorted[i]->data, sorted[i]->numel, path, e)) != KN_OK)
            goto out;
    int closed = fclose(fp);
    fp = NULL;
    if (closed != 0)
        rc = kn_err_set(e, KN_IO, "%s: write failed: %s", path, strerror(errno));
out:
    if (fp)
        fclose(fp);
    if (rc != KN_OK && created)
        remove(path); /* do not leave half a file behind */
    free(hdr);
    free(sorted);
    return rc;
}
