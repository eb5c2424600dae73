/* Tests for the safetensors reader and writer: round trips through
 * kn_st_write, half/bfloat/double conversions against known bit patterns,
 * unaligned images, and a catalogue of malformed headers that must each be
 * refused with KN_BAD_FORMAT and a message naming the problem.
 *
 * With arguments the binary is a helper for test_safetensors_torch.py:
 *   --compare GOT EXPECTED  converts every tensor of GOT to float32 and
 *                           compares it bit for bit with EXPECTED's F32 tensor
 *   --write OUT             writes the fixed tensors described in write_fixed()
 */
#include "kennel/nn.h"
#include "kn_test.h"

#include <stdint.h>
#include <unistd.h>

static char tmp_path[256];

static const char *tmp_file(const char *tag)
{
    snprintf(tmp_path, sizeof tmp_path, "st_%s_%d.safetensors", tag, (int)getpid());
    return tmp_path;
}

/* A hand-built image: optional lead bytes (to misalign it), the 8-byte
 * length of `json`, `json`, then data (or zeros when data is NULL). */
static uint8_t *build(const char *json, const void *data, size_t data_len, size_t lead,
                      size_t *len)
{
    size_t h = strlen(json);
    *len = 8 + h + data_len;
    uint8_t *b = calloc(1, lead + *len + 1);
    for (int i = 0; i < 8; i++)
        b[lead + i] = (uint8_t)((uint64_t)h >> (8 * i));
    memcpy(b + lead + 8, json, h);
    if (data && data_len)
        memcpy(b + lead + 8 + h, data, data_len);
    return b;
}

/* Parses json + data_len zero bytes; expects KN_BAD_FORMAT mentioning `want`. */
static void expect_bad(const char *json, size_t data_len, const char *want)
{
    size_t len;
    uint8_t *b = build(json, NULL, data_len, 0, &len);
    kn_st_file *f = (kn_st_file *)1;
    kn_err e;
    kn_err_clear(&e);
    kn_status rc = kn_st_parse(b, len, &f, &e);
    KN_CHECK_STR(kn_status_name(rc), "BAD_FORMAT");
    KN_CHECK(f == NULL);
    KN_CHECK_CONTAINS(e.msg, want);
    KN_CHECK(strchr(e.msg, '\n') == NULL);
    kn_st_free(rc == KN_OK ? f : NULL);
    free(b);
}

static void expect_ok(const char *json, size_t data_len, int count)
{
    size_t len;
    uint8_t *b = build(json, NULL, data_len, 0, &len);
    kn_st_file *f = NULL;
    kn_err e;
    kn_err_clear(&e);
    kn_status rc = kn_st_parse(b, len, &f, &e);
    KN_CHECK_STR(kn_status_name(rc), "OK");
    if (rc != KN_OK)
        fprintf(stderr, "  json %s: %s\n", json, e.msg);
    KN_CHECK_INT(kn_st_count(f), count);
    kn_st_free(f);
    free(b);
}

static void set_param(kn_nn_param *p, const char *name, int ndim, const int64_t *dims, float base)
{
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s", name);
    p->ndim = ndim;
    p->numel = 1;
    for (int i = 0; i < ndim; i++) {
        p->dims[i] = dims[i];
        p->numel *= (size_t)dims[i];
    }
    p->data = p->numel ? malloc(p->numel * sizeof(float)) : NULL;
    for (size_t i = 0; i < p->numel; i++)
        p->data[i] = base + 0.125f * (float)i - (float)(i % 3) * 1e-3f;
}

static void test_dtypes(void)
{
    KN_CHECK_STR(kn_dtype_name(KN_DT_F32), "F32");
    KN_CHECK_STR(kn_dtype_name(KN_DT_BF16), "BF16");
    KN_CHECK_STR(kn_dtype_name(KN_DT_BOOL), "BOOL");
    KN_CHECK_STR(kn_dtype_name(KN_DT_COUNT), "?");
    KN_CHECK_INT(kn_dtype_size(KN_DT_F64), 8);
    KN_CHECK_INT(kn_dtype_size(KN_DT_F16), 2);
    KN_CHECK_INT(kn_dtype_size(KN_DT_I8), 1);
    KN_CHECK_INT(kn_dtype_size(KN_DT_I64), 8);
    KN_CHECK_INT(kn_dtype_size(KN_DT_COUNT), 0);
}

static void test_roundtrip(void)
{
    kn_nn_param p[4];
    const int64_t d0[] = {3, 2, 2, 2}, d1[] = {3}, d3[] = {0, 5};
    set_param(&p[0], "layer.weight", 4, d0, -1.0f);
    set_param(&p[1], "bias", 1, d1, 0.5f);
    set_param(&p[2], "scalar", 0, NULL, 42.0f);
    set_param(&p[3], "empty", 2, d3, 0.0f);
    const kn_nn_param *list[] = {&p[0], &p[1], &p[2], &p[3]};
    const char *path = tmp_file("roundtrip");
    kn_err e;
    kn_err_clear(&e);
    KN_CHECK_STR(kn_status_name(kn_st_write(path, list, 4, &e)), "OK");

    /* The layout the reference writer produces. */
    kn_buf raw;
    kn_buf_init(&raw, 1 << 20);
    KN_REQUIRE(kn_file_read(path, &raw, &e) == KN_OK);
    KN_REQUIRE(raw.len >= 8);
    uint64_t hlen = 0;
    for (int i = 0; i < 8; i++)
        hlen |= (uint64_t)raw.data[i] << (8 * i);
    KN_CHECK_INT(hlen % 8, 0);
    KN_CHECK_INT(raw.len, 8 + hlen + 4 * (24 + 3 + 1));
    const char *hdr = (const char *)raw.data + 8;
    KN_CHECK(strncmp(hdr, "{\"__metadata__\":{\"format\":\"pt\"},\"bias\":", 38) == 0);
    KN_CHECK(strstr(hdr, "\"bias\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]}"));
    KN_CHECK(strstr(hdr, "\"empty\":{\"dtype\":\"F32\",\"shape\":[0,5],\"data_offsets\":[12,12]}"));
    KN_CHECK(strstr(hdr, "\"layer.weight\":{\"dtype\":\"F32\",\"shape\":[3,2,2,2],"
                         "\"data_offsets\":[12,108]}"));
    KN_CHECK(strstr(hdr, "\"scalar\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[108,112]}"));
    for (size_t i = 8 + strcspn(hdr, " "); i < 8 + hlen; i++)
        KN_CHECK(raw.data[i] == ' ');
    kn_buf_deinit(&raw);

    kn_st_file *f = NULL;
    KN_REQUIRE(kn_st_open(path, &f, &e) == KN_OK);
    KN_CHECK_INT(kn_st_count(f), 4);
    const char *order[] = {"bias", "empty", "layer.weight", "scalar"};
    for (int i = 0; i < 4; i++)
        KN_CHECK_STR(kn_st_get(f, i)->name, order[i]);
    KN_CHECK(kn_st_get(f, 4) == NULL);
    KN_CHECK(kn_st_get(f, -1) == NULL);
    KN_CHECK(kn_st_find(f, "nope") == NULL);
    for (int i = 0; i < 4; i++) {
        const kn_st_tensor *t = kn_st_find(f, p[i].name);
        KN_REQUIRE(t != NULL);
        KN_CHECK_INT(t->dtype, KN_DT_F32);
        KN_CHECK_INT(t->ndim, p[i].ndim);
        for (int d = 0; d < t->ndim; d++)
            KN_CHECK_INT(t->dims[d], p[i].dims[d]);
        KN_CHECK_INT(t->nbytes, 4 * p[i].numel);
        float got[32] = {0};
        KN_CHECK_STR(kn_status_name(kn_st_to_f32(t, got, p[i].numel, &e)), "OK");
        if (p[i].numel)
            KN_CHECK(memcmp(got, p[i].data, 4 * p[i].numel) == 0);
    }
    const kn_st_tensor *w = kn_st_find(f, "layer.weight");
    float small[4];
    KN_CHECK_STR(kn_status_name(kn_st_to_f32(w, small, 4, &e)), "SHAPE");
    KN_CHECK_CONTAINS(e.msg, "layer.weight");
    KN_CHECK_CONTAINS(e.msg, "24 elements");
    kn_st_free(f);

    /* No tensors at all is still a valid file. */
    KN_CHECK_STR(kn_status_name(kn_st_write(path, NULL, 0, &e)), "OK");
    KN_REQUIRE(kn_st_open(path, &f, &e) == KN_OK);
    KN_CHECK_INT(kn_st_count(f), 0);
    kn_st_free(f);

    /* Names that need JSON escaping come back unchanged. */
    snprintf(p[1].name, sizeof p[1].name, "blocks.0/attn \"q\\k\" \xc3\xa9\t");
    const kn_nn_param *odd[] = {&p[1]};
    KN_CHECK_STR(kn_status_name(kn_st_write(path, odd, 1, &e)), "OK");
    KN_REQUIRE(kn_st_open(path, &f, &e) == KN_OK);
    KN_CHECK_INT(kn_st_count(f), 1);
    KN_CHECK_STR(kn_st_get(f, 0)->name, p[1].name);
    kn_st_free(f);
    /* ... but a name that is not UTF-8 cannot go into the JSON header. */
    snprintf(p[1].name, sizeof p[1].name, "bad\xff");
    KN_CHECK_STR(kn_status_name(kn_st_write(path, odd, 1, &e)), "INVALID");
    KN_CHECK_CONTAINS(e.msg, "UTF-8");

    remove(path);
    for (int i = 0; i < 4; i++)
        free(p[i].data);
}

static void test_write_errors(void)
{
    kn_nn_param a, b;
    const int64_t d[] = {2};
    set_param(&a, "w", 1, d, 1.0f);
    set_param(&b, "w", 1, d, 2.0f);
    const kn_nn_param *list[] = {&a, &b};
    const char *path = tmp_file("werr");
    kn_err e;
    remove(path);

    KN_CHECK_STR(kn_status_name(kn_st_write(path, list, 2, &e)), "INVALID");
    KN_CHECK_CONTAINS(e.msg, "duplicate tensor name \"w\"");
    KN_CHECK(access(path, F_OK) != 0);

    snprintf(b.name, sizeof b.name, "__metadata__");
    KN_CHECK_STR(kn_status_name(kn_st_write(path, list, 2, &e)), "INVALID");
    KN_CHECK_CONTAINS(e.msg, "reserved");

    snprintf(b.name, sizeof b.name, "v");
    b.numel = 3;
    KN_CHECK_STR(kn_status_name(kn_st_write(path, list, 2, &e)), "SHAPE");
    KN_CHECK_CONTAINS(e.msg, "\"v\"");
    b.numel = 2;

    memset(b.name, 'x', sizeof b.name);
    KN_CHECK_STR(kn_status_name(kn_st_write(path, list, 2, &e)), "INVALID");
    KN_CHECK_CONTAINS(e.msg, "not terminated");
    snprintf(b.name, sizeof b.name, "v");

    KN_CHECK_STR(kn_status_name(kn_st_write("no/such/dir/x.safetensors", list, 2, &e)),
                 "NOT_FOUND");
    KN_CHECK_CONTAINS(e.msg, "no/such/dir/x.safetensors");
    KN_CHECK(access(path, F_OK) != 0);
    free(a.data);
    free(b.data);
}

/* Known bit patterns and what they mean in float32. */
static void test_conversions(void)
{
    const uint16_t f16[] = {0x3C00, 0xC000, 0x7BFF, 0x0001, 0x0400, 0x3555, 0x7C00, 0x8000};
    const float f16_want[] = {1.0f, -2.0f, 65504.0f, 0x1p-24f, 0x1p-14f, 0.333251953125f,
                              INFINITY, -0.0f};
    const uint16_t bf16[] = {0x3F80, 0xC049, 0x7F80, 0x0001, 0x4780};
    const float bf16_want[] = {1.0f, -3.140625f, INFINITY, 0x1p-133f, 65536.0f};
    const double f64[] = {3.141592653589793, -1e-3, 1e40, 1e-50};
    const float f64_want[] = {3.14159274f, -1e-3f, INFINITY, 0.0f};
    const float f32[] = {1.5f, -0.25f, 0x1p-149f};
    const int32_t i32[] = {7, -7};

    /* One F16 element first so every later tensor is misaligned; the image
     * itself is placed at an odd address as well. */
    uint8_t data[16 + 10 + 32 + 12 + 8 + 2];
    size_t o = 0;
    memcpy(data + o, f16, 16), o += 16;
    memcpy(data + o, bf16, 10), o += 10;
    memcpy(data + o, f64, 32), o += 32;
    memcpy(data + o, f32, 12), o += 12;
    memcpy(data + o, i32, 8), o += 8;
    memcpy(data + o, f16, 2), o += 2;
    const char *json = "{\"h\":{\"dtype\":\"F16\",\"shape\":[2,4],\"data_offsets\":[0,16]},"
                       "\"b\":{\"dtype\":\"BF16\",\"shape\":[5],\"data_offsets\":[16,26]},"
                       "\"d\":{\"dtype\":\"F64\",\"shape\":[4],\"data_offsets\":[26,58]},"
                       "\"f\":{\"dtype\":\"F32\",\"shape\":[3,1],\"data_offsets\":[58,70]},"
                       "\"i\":{\"dtype\":\"I32\",\"shape\":[2],\"data_offsets\":[70,78]},"
                       "\"one\":{\"dtype\":\"F16\",\"shape\":[],\"data_offsets\":[78,80]},"
                       "\"__metadata__\":{\"note\":\"hand built\"}}";
    size_t len;
    uint8_t *img = build(json, data, o, 1, &len);
    kn_st_file *f = NULL;
    kn_err e;
    kn_err_clear(&e);
    KN_CHECK_STR(kn_status_name(kn_st_parse(img + 1, len, &f, &e)), "OK");
    KN_REQUIRE(f != NULL);
    KN_CHECK_INT(kn_st_count(f), 6);
    KN_CHECK_STR(kn_st_get(f, 0)->name, "h");
    KN_CHECK_STR(kn_st_get(f, 5)->name, "one");

    float got[8];
    KN_CHECK_INT(kn_st_to_f32(kn_st_find(f, "h"), got, 8, &e), KN_OK);
    for (int i = 0; i < 8; i++)
        KN_CHECK(memcmp(&got[i], &f16_want[i], 4) == 0);
    KN_CHECK_INT(kn_st_to_f32(kn_st_find(f, "b"), got, 5, &e), KN_OK);
    for (int i = 0; i < 5; i++)
        KN_CHECK(memcmp(&got[i], &bf16_want[i], 4) == 0);
    KN_CHECK_INT(kn_st_to_f32(kn_st_find(f, "d"), got, 4, &e), KN_OK);
    for (int i = 0; i < 4; i++)
        KN_CHECK(memcmp(&got[i], &f64_want[i], 4) == 0);
    KN_CHECK_INT(kn_st_to_f32(kn_st_find(f, "f"), got, 3, &e), KN_OK);
    KN_CHECK(memcmp(got, f32, 12) == 0);
    KN_CHECK_INT(kn_st_to_f32(kn_st_find(f, "one"), got, 1, &e), KN_OK);
    KN_CHECK(got[0] == 1.0f);

    const kn_st_tensor *ti = kn_st_find(f, "i");
    KN_CHECK_INT(ti->dtype, KN_DT_I32);
    KN_CHECK(memcmp(ti->data, i32, 8) == 0);
    KN_CHECK_STR(kn_status_name(kn_st_to_f32(ti, got, 2, &e)), "UNSUPPORTED");
    KN_CHECK_CONTAINS(e.msg, "\"i\"");
    KN_CHECK_CONTAINS(e.msg, "I32");
    KN_CHECK_STR(kn_status_name(kn_st_to_f32(kn_st_find(f, "h"), got, 7, &e)), "SHAPE");
    kn_st_free(f);
    free(img);
}

static void test_valid_edges(void)
{
    expect_ok("{}", 0, 0);
    expect_ok("{}      ", 0, 0);
    expect_ok("{\"__metadata__\":{}}", 0, 0);
    expect_ok("{\"__metadata__\":{\"format\":\"pt\",\"x\":\"y\"}}", 5, 0);
    /* Empty tensors take no bytes, wherever they point. */
    expect_ok("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
              "\"z\":{\"dtype\":\"F32\",\"shape\":[0,3],\"data_offsets\":[4,4]},"
              "\"y\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[8,8]}}",
              8, 3);
    /* Gaps between tensors are tolerated. */
    expect_ok("{\"a\":{\"dtype\":\"I8\",\"shape\":[1],\"data_offsets\":[3,4]},"
              "\"b\":{\"dtype\":\"BOOL\",\"shape\":[2,2],\"data_offsets\":[10,14]}}",
              20, 2);
    /* Every dtype name, eight dimensions. */
    expect_ok("{\"a\":{\"dtype\":\"I64\",\"shape\":[1,1,1,1,1,1,1,1],\"data_offsets\":[0,8]},"
              "\"b\":{\"dtype\":\"I16\",\"shape\":[1],\"data_offsets\":[8,10]}}",
              10, 2);
}

static void test_malformed(void)
{
    /* Framing. */
    kn_st_file *f = NULL;
    kn_err e;
    KN_CHECK_INT(kn_st_parse((const uint8_t *)"", 0, &f, &e), KN_BAD_FORMAT);
    KN_CHECK_CONTAINS(e.msg, "empty file");
    KN_CHECK_INT(kn_st_parse((const uint8_t *)"\x02\0\0\0", 4, &f, &e), KN_BAD_FORMAT);
    KN_CHECK_CONTAINS(e.msg, "too short (4 bytes)");
    uint8_t huge[16] = {0, 0, 0, 0, 0, 0, 0, 0x80, '{', '}'};
    KN_CHECK_INT(kn_st_parse(huge, sizeof huge, &f, &e), KN_BAD_FORMAT);
    KN_CHECK_CONTAINS(e.msg, "limit");
    uint8_t past[12] = {200, 0, 0, 0, 0, 0, 0, 0, '{', '}', ' ', ' '};
    KN_CHECK_INT(kn_st_parse(past, sizeof past, &f, &e), KN_BAD_FORMAT);
    KN_CHECK_CONTAINS(e.msg, "header length 200 exceeds the 4 bytes");
    uint8_t zero[8] = {0};
    KN_CHECK_INT(kn_st_parse(zero, sizeof zero, &f, &e), KN_BAD_FORMAT);
    KN_CHECK_CONTAINS(e.msg, "too small");
    KN_CHECK(f == NULL);

    /* JSON. */
    expect_bad("{\"a\": {\"dtype\": \"F32\",", 0, "not valid JSON");
    expect_bad("[1, 2, 3]", 0, "not a JSON object");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]},"
               "\"a\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[4,8]}}",
               8, "duplicate");
    expect_bad("{\"\xff\xfe\":{}}", 0, "not valid JSON");
    expect_bad("{\"a\\u0000b\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]}}", 4,
               "not valid JSON");
    expect_bad("{\"a\":5}", 0, "tensor \"a\": entry is not an object");
    expect_bad("{\"__metadata__\":{\"format\":1}}", 0, "\"__metadata__\" value for \"format\"");
    expect_bad("{\"__metadata__\":[]}", 0, "\"__metadata__\" is not an object");

    /* dtype. */
    expect_bad("{\"w\":{\"dtype\":\"F17\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
               "tensor \"w\": unknown dtype \"F17\"");
    expect_bad("{\"w\":{\"dtype\":\"f32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
               "unknown dtype");
    expect_bad("{\"w\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "tensor \"w\": missing string "
               "\"dtype\"");

    /* shape. */
    expect_bad("{\"w\":{\"dtype\":\"F32\",\"shape\":3,\"data_offsets\":[0,4]}}", 4,
               "tensor \"w\": missing array \"shape\"");
    expect_bad("{\"w\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4,
               "tensor \"w\": shape[0] is not a non-negative integer");
    expect_bad("{\"w\":{\"dtype\":\"F32\",\"shape\":[2,1.5],\"data_offsets\":[0,4]}}", 4,
               "shape[1] is not a non-negative integer");
    expect_bad("{\"w\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}",
               4, "9 dimensions");
    expect_bad("{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],"
               "\"data_offsets\":[0,4]}}",
               4, "tensor \"w\": shape size overflows");
    expect_bad("{\"w\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904],"
               "\"data_offsets\":[0,4]}}",
               4, "shape size overflows");
    expect_bad("{\"w\":{\"dtype\":\"U8\",\"shape\":[99999999999999999999],"
               "\"data_offsets\":[0,4]}}",
               4, "not valid JSON"); /* integer overflow inside the JSON parser */

    /* data_offsets. */
    expect_bad("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4,
               "tensor \"w\": data_offsets [0, 8] exceed the data size 4");
    expect_bad("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,4]}}", 8,
               "run backwards");
    expect_bad("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", 4,
               "tensor \"w\": \"data_offsets\" is not two");
    expect_bad("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", 4,
               "\"data_offsets\" is not two non-negative integers");
    expect_bad("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":\"0-4\"}}", 4,
               "data_offsets");
    expect_bad("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", 8,
               "tensor \"w\": data_offsets span 4 bytes but F32 shape needs 8");
    expect_bad("{\"w\":{\"dtype\":\"F16\",\"shape\":[2,2],\"data_offsets\":[0,16]}}", 16,
               "span 16 bytes but F16 shape needs 8");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
               "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
               12, "tensor \"b\" (bytes 4..12) overlaps tensor \"a\" (bytes 0..8)");
    expect_bad("{\"a\":{\"dtype\":\"U8\",\"shape\":[10],\"data_offsets\":[0,10]},"
               "\"b\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[2,4]},"
               "\"c\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[6,8]}}",
               10, "overlaps tensor \"a\"");
    expect_bad("{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]},"
               "\"b\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]}}",
               4, "overlaps");

    /* Names. */
    char json[512], name[201];
    memset(name, 'n', 200);
    name[200] = '\0';
    snprintf(json, sizeof json,
             "{\"%s\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", name);
    expect_bad(json, 4, "tensor name too long (200 bytes, at most 127)");
    name[127] = '\0';
    snprintf(json, sizeof json,
             "{\"%s\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", name);
    expect_ok(json, 4, 1);
}

static void test_open_errors(void)
{
    kn_st_file *f = (kn_st_file *)1;
    kn_err e;
    KN_CHECK_STR(kn_status_name(kn_st_open("does-not-exist.safetensors", &f, &e)), "NOT_FOUND");
    KN_CHECK(f == NULL);
    KN_CHECK_CONTAINS(e.msg, "does-not-exist.safetensors");

    const char *path = tmp_file("bad");
    KN_REQUIRE(kn_file_write(path, "", 0, &e) == KN_OK);
    KN_CHECK_STR(kn_status_name(kn_st_open(path, &f, &e)), "BAD_FORMAT");
    KN_CHECK_CONTAINS(e.msg, path);
    KN_CHECK_CONTAINS(e.msg, "empty file");

    /* A valid file cut short in its data. */
    kn_nn_param p;
    const int64_t d[] = {16};
    set_param(&p, "t", 1, d, 0.0f);
    const kn_nn_param *list[] = {&p};
    KN_REQUIRE(kn_st_write(path, list, 1, &e) == KN_OK);
    kn_buf raw;
    kn_buf_init(&raw, 1 << 16);
    KN_REQUIRE(kn_file_read(path, &raw, &e) == KN_OK);
    KN_REQUIRE(kn_file_write(path, raw.data, raw.len - 5, &e) == KN_OK);
    KN_CHECK_STR(kn_status_name(kn_st_open(path, &f, &e)), "BAD_FORMAT");
    KN_CHECK_CONTAINS(e.msg, "tensor \"t\": data_offsets [0, 64] exceed the data size 59");
    /* ... and cut short in its header. */
    KN_REQUIRE(kn_file_write(path, raw.data, 20, &e) == KN_OK);
    KN_CHECK_STR(kn_status_name(kn_st_open(path, &f, &e)), "BAD_FORMAT");
    KN_CHECK_CONTAINS(e.msg, "file truncated?");
    kn_buf_deinit(&raw);
    free(p.data);
    remove(path);
}

/* ---- helpers for test_safetensors_torch.py ------------------------------- */

static int same_bits(float a, float b)
{
    return memcmp(&a, &b, 4) == 0 || (a != a && b != b);
}

static int compare_files(const char *got_path, const char *want_path)
{
    kn_st_file *got = NULL, *want = NULL;
    kn_err e;
    int bad = 0;
    if (kn_st_open(got_path, &got, &e) != KN_OK || kn_st_open(want_path, &want, &e) != KN_OK) {
        fprintf(stderr, "compare: %s\n", e.msg);
        kn_st_free(got);
        return 1;
    }
    if (kn_st_count(got) != kn_st_count(want)) {
        fprintf(stderr, "compare: %d tensors vs %d\n", kn_st_count(got), kn_st_count(want));
        bad++;
    }
    for (int i = 0; i < kn_st_count(want); i++) {
        const kn_st_tensor *w = kn_st_get(want, i), *g = kn_st_find(got, w->name);
        size_t n = w->nbytes / 4;
        if (!g) {
            fprintf(stderr, "compare: %s missing\n", w->name);
            bad++;
            continue;
        }
        float *a = malloc((n ? n : 1) * 4), *b = malloc((n ? n : 1) * 4);
        if (kn_st_to_f32(g, a, n, &e) != KN_OK || kn_st_to_f32(w, b, n, &e) != KN_OK) {
            fprintf(stderr, "compare: %s: %s\n", w->name, e.msg);
            bad++;
        } else {
            int diffs = 0;
            for (size_t j = 0; j < n; j++)
                if (!same_bits(a[j], b[j]) && diffs++ < 5)
                    fprintf(stderr, "compare: %s[%zu]: %.9g vs %.9g\n", w->name, j, a[j], b[j]);
            bad += diffs != 0;
            printf("%-12s %-4s %zu values %s\n", w->name, kn_dtype_name(g->dtype), n,
                   diffs ? "DIFFER" : "match");
        }
        free(a);
        free(b);
    }
    kn_st_free(got);
    kn_st_free(want);
    return bad ? 1 : 0;
}

/* Fixed tensors whose values the Python side recomputes exactly. */
static int write_fixed(const char *path)
{
    kn_nn_param p[3];
    const int64_t d0[] = {2, 3}, d1[] = {3}, d2[] = {4, 1, 1, 5};
    memset(p, 0, sizeof p);
    const char *names[] = {"conv.weight", "odd", "alpha"};
    const int nd[] = {2, 1, 4};
    const int64_t *dims[] = {d0, d1, d2};
    for (int i = 0; i < 3; i++) {
        snprintf(p[i].name, sizeof p[i].name, "%s", names[i]);
        p[i].ndim = nd[i];
        p[i].numel = 1;
        for (int d = 0; d < nd[i]; d++)
            p[i].numel *= (size_t)(p[i].dims[d] = dims[i][d]);
        p[i].data = malloc(p[i].numel * 4);
    }
    for (size_t j = 0; j < 6; j++)
        p[0].data[j] = (float)j * 0.25f - 1.0f;
    p[1].data[0] = 0x1p-100f;
    p[1].data[1] = -0x1.8p127f;
    p[1].data[2] = 7.0f;
    for (size_t j = 0; j < 20; j++)
        p[2].data[j] = ((float)j - 10.0f) / 8.0f;
    const kn_nn_param *list[] = {&p[0], &p[1], &p[2]};
    kn_err e;
    kn_status rc = kn_st_write(path, list, 3, &e);
    if (rc != KN_OK)
        fprintf(stderr, "write: %s\n", e.msg);
    for (int i = 0; i < 3; i++)
        free(p[i].data);
    return rc == KN_OK ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "--compare") == 0)
        return compare_files(argv[2], argv[3]);
    if (argc == 3 && strcmp(argv[1], "--write") == 0)
        return write_fixed(argv[2]);
    KN_RUN(test_dtypes);
    KN_RUN(test_roundtrip);
    KN_RUN(test_write_errors);
    KN_RUN(test_conversions);
    KN_RUN(test_valid_edges);
    KN_RUN(test_malformed);
    KN_RUN(test_open_errors);
    return kn_test_finish();
}
