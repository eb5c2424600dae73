/* Unit tests for the model server's request parsing (src/serve/body.c and
 * fetch.c): Content-Type and Accept negotiation, base64 in every accepted
 * variant and every refusal (with the offset it names), JSON bodies and their
 * errors (which field, which list item), message cleaning, the status table,
 * URL checks against the scheme allow list, and bounded fetches (per URL and
 * per request) through libcurl from file:// URLs and a closed loopback port. */
#include "serve_int.h"
#include "kn_test.h"

#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- media types ------------------------------------------------------------ */

static void test_ctype(void)
{
    KN_CHECK_INT(kn__serve_ctype("image/jpeg"), KN__CT_IMAGE);
    KN_CHECK_INT(kn__serve_ctype("image/jpg"), KN__CT_IMAGE);
    KN_CHECK_INT(kn__serve_ctype("IMAGE/PNG; charset=binary"), KN__CT_IMAGE);
    KN_CHECK_INT(kn__serve_ctype("application/x-image"), KN__CT_IMAGE);
    KN_CHECK_INT(kn__serve_ctype("application/json"), KN__CT_JSON);
    KN_CHECK_INT(kn__serve_ctype("  application/json ;charset=utf-8"), KN__CT_JSON);
    KN_CHECK_INT(kn__serve_ctype("Application/JSON\t"), KN__CT_JSON);
    KN_CHECK_INT(kn__serve_ctype(NULL), KN__CT_MISSING);
    KN_CHECK_INT(kn__serve_ctype(""), KN__CT_MISSING);
    KN_CHECK_INT(kn__serve_ctype("  ; charset=utf-8"), KN__CT_MISSING);
    KN_CHECK_INT(kn__serve_ctype("text/plain"), KN__CT_OTHER);
    KN_CHECK_INT(kn__serve_ctype("image/gif"), KN__CT_OTHER);
    KN_CHECK_INT(kn__serve_ctype("application/jsonx"), KN__CT_OTHER);
    KN_CHECK_INT(kn__serve_ctype("application/json-seq"), KN__CT_OTHER);
    KN_CHECK_INT(kn__serve_ctype("image/jpe"), KN__CT_OTHER);
    char longtype[200];
    memset(longtype, 'a', sizeof longtype - 1);
    longtype[sizeof longtype - 1] = 0;
    KN_CHECK_INT(kn__serve_ctype(longtype), KN__CT_OTHER);
}

static void test_accept(void)
{
    KN_CHECK_INT(kn__serve_accept(NULL), KN__FMT_JSON);
    KN_CHECK_INT(kn__serve_accept(""), KN__FMT_JSON);
    KN_CHECK_INT(kn__serve_accept(" , "), KN__FMT_JSON);
    KN_CHECK_INT(kn__serve_accept("*/*"), KN__FMT_JSON);
    KN_CHECK_INT(kn__serve_accept("application/json"), KN__FMT_JSON);
    KN_CHECK_INT(kn__serve_accept("application/*"), KN__FMT_JSON);
    KN_CHECK_INT(kn__serve_accept("text/csv"), KN__FMT_CSV);
    KN_CHECK_INT(kn__serve_accept("TEXT/CSV; charset=utf-8"), KN__FMT_CSV);
    KN_CHECK_INT(kn__serve_accept("text/*"), KN__FMT_CSV);
    /* ties go to the first listed; q decides otherwise */
    KN_CHECK_INT(kn__serve_accept("text/csv, application/json"), KN__FMT_CSV);
    KN_CHECK_INT(kn__serve_accept("application/json, text/csv"), KN__FMT_JSON);
    KN_CHECK_INT(kn__serve_accept("application/json;q=0.5, text/csv"), KN__FMT_CSV);
    KN_CHECK_INT(kn__serve_accept("application/json; q=0.9, text/csv;q=0.1"), KN__FMT_JSON);
    KN_CHECK_INT(kn__serve_accept("image/png, text/csv;q=0.2"), KN__FMT_CSV);
    /* q=0 excludes */
    KN_CHECK_INT(kn__serve_accept("text/csv;q=0, */*"), KN__FMT_JSON);
    KN_CHECK_INT(kn__serve_accept("application/json;q=0"), KN__FMT_NONE);
    KN_CHECK_INT(kn__serve_accept("image/png"), KN__FMT_NONE);
    KN_CHECK_INT(kn__serve_accept("text/html, image/*"), KN__FMT_NONE);
    /* a malformed q counts as 1 rather than refusing the request */
    KN_CHECK_INT(kn__serve_accept("text/csv;q=abc"), KN__FMT_CSV);
    KN_CHECK_INT(kn__serve_accept("text/csv;q=7"), KN__FMT_CSV);
}

/* ---- base64 ----------------------------------------------------------------- */

/* Decodes s and compares with want (want == NULL: expects a refusal whose
 * message contains `msg`). */
static void b64_case(const char *s, const char *want, size_t want_len, const char *msg)
{
    uint8_t *out = (uint8_t *)"x";
    size_t n = 99;
    kn__serr e = {0};
    kn__serr_code rc = kn__b64_decode(s, strlen(s), &out, &n, &e);
    if (want) {
        KN_CHECK_INT(rc, KN__SERR_NONE);
        KN_CHECK_INT(n, want_len);
        KN_CHECK(out && memcmp(out, want, want_len) == 0);
        if (rc)
            fprintf(stderr, "  input \"%s\": %s\n", s, e.msg);
    } else {
        KN_CHECK_INT(rc, KN__SERR_INVALID_BASE64);
        KN_CHECK_INT(e.code, KN__SERR_INVALID_BASE64);
        KN_CHECK(out == NULL);
        KN_CHECK_INT(n, 0);
        KN_CHECK_CONTAINS(e.msg, msg);
    }
    free(rc ? NULL : out);
}

static void test_b64(void)
{
    b64_case("aGVsbG8=", "hello", 5, NULL);
    b64_case("aGVsbG8", "hello", 5, NULL);          /* padding optional */
    b64_case("aGVsbA==", "hell", 4, NULL);
    b64_case("aGVsbA", "hell", 4, NULL);
    b64_case("aGVs", "hel", 3, NULL);
    b64_case("", "", 0, NULL);
    b64_case(" aGVs\r\n bG8=\t", "hello", 5, NULL); /* whitespace anywhere */
    b64_case("aGVsbA=\n=", "hell", 4, NULL);
    b64_case("+/8=", "\xfb\xff", 2, NULL);          /* standard alphabet */
    b64_case("-_8=", "\xfb\xff", 2, NULL);          /* URL-safe alphabet */
    b64_case("-_8", "\xfb\xff", 2, NULL);
    b64_case("data:image/png;base64,aGVsbG8=", "hello", 5, NULL);
    b64_case("DATA:image/jpeg;BASE64,aGVsbG8", "hello", 5, NULL);
    b64_case("data:;base64,aGk=", "hi", 2, NULL);

    b64_case("aGVsbG8*", NULL, 0, "'*' at offset 7 is not base64");
    b64_case("aGV\x01sbG8", NULL, 0, "byte 0x01 at offset 3");
    b64_case("aGVsbG8=x", NULL, 0, "'x' at offset 8 follows the '=' padding");
    b64_case("aGVsbA==aGk=", NULL, 0, "follows the '=' padding");
    b64_case("a", NULL, 0, "ends mid-group (1 characters)");
    b64_case("aGVsb", NULL, 0, "ends mid-group");
    b64_case("aGVsbG8==", NULL, 0, "bad padding");
    b64_case("aGVsbA=", NULL, 0, "bad padding");
    b64_case("====", NULL, 0, "bad padding");
    b64_case("=", NULL, 0, "bad padding");
    b64_case("data:image/png,aGVsbG8=", NULL, 0, "only base64 data: URIs");
    b64_case("data:image/png;base64", NULL, 0, "needs a ','");
    b64_case("data:,aGk=", NULL, 0, "only base64 data: URIs");

    /* the comma of a data: URI must come early: a long header is not scanned */
    char *big = malloc(400);
    KN_REQUIRE(big);
    memcpy(big, "data:", 5);
    memset(big + 5, 'a', 300);
    memcpy(big + 305, ";base64,aGk=", 13);
    b64_case(big, NULL, 0, "within its first 256 characters");
    free(big);

    /* a long input: every byte value survives the round trip */
    static const char alpha[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    uint8_t raw[256 * 3];
    for (int i = 0; i < (int)sizeof raw; i++)
        raw[i] = (uint8_t)(i * 7 + i / 256);
    char enc[sizeof raw / 3 * 4 + 1];
    for (size_t i = 0, o = 0; i < sizeof raw; i += 3) {
        uint32_t v = (uint32_t)raw[i] << 16 | (uint32_t)raw[i + 1] << 8 | raw[i + 2];
        enc[o++] = alpha[v >> 18 & 63];
        enc[o++] = alpha[v >> 12 & 63];
        enc[o++] = alpha[v >> 6 & 63];
        enc[o++] = alpha[v & 63];
        enc[o] = 0;
    }
    b64_case(enc, (const char *)raw, sizeof raw, NULL);
}

/* ---- JSON bodies ------------------------------------------------------------ */

static kn__serr_code parse(const char *body, int max_images, kn__items *it, kn__serr *e)
{
    memset(e, 0, sizeof *e);
    return kn__serve_parse_json((const uint8_t *)body, strlen(body), max_images, it, e);
}

static void test_json_ok(void)
{
    kn__items it;
    kn__serr e;
    KN_CHECK_INT(parse("{\"url\": \"http://127.0.0.1:9/a.jpg\"}", 64, &it, &e), KN__SERR_NONE);
    KN_REQUIRE(it.n == 1);
    KN_CHECK(!it.list);
    KN_CHECK_INT(it.v[0].kind, KN__ITEM_URL);
    KN_CHECK_STR(it.v[0].url, "http://127.0.0.1:9/a.jpg");
    kn__items_free(&it);
    KN_CHECK(it.v == NULL && it.n == 0);

    KN_CHECK_INT(parse("{\"image\": \"aGVsbG8=\"}", 64, &it, &e), KN__SERR_NONE);
    KN_REQUIRE(it.n == 1);
    KN_CHECK_INT(it.v[0].kind, KN__ITEM_BYTES);
    KN_CHECK_INT(it.v[0].len, 5);
    KN_CHECK(memcmp(it.v[0].data, "hello", 5) == 0);
    KN_CHECK(it.v[0].owned);
    kn__item_release(&it.v[0]);
    KN_CHECK(it.v[0].data == NULL && it.v[0].len == 0);
    kn__items_free(&it);

    KN_CHECK_INT(parse("{\"b64\": \"data:image/png;base64,-_8\"}", 64, &it, &e),
                 KN__SERR_NONE);
    KN_REQUIRE(it.n == 1);
    KN_CHECK_INT(it.v[0].len, 2);
    KN_CHECK(memcmp(it.v[0].data, "\xfb\xff", 2) == 0);
    kn__items_free(&it);

    const char *list = "[{\"image\": \"aGk=\"}, {\"url\": \"https://example.com/x.png\"},"
                       " {\"b64\": \"aGVs\\nbG8=\"}]";
    KN_CHECK_INT(parse(list, 3, &it, &e), KN__SERR_NONE);
    KN_REQUIRE(it.n == 3);
    KN_CHECK(it.list);
    KN_CHECK_INT(it.v[0].kind, KN__ITEM_BYTES);
    KN_CHECK_INT(it.v[1].kind, KN__ITEM_URL);
    KN_CHECK_STR(it.v[1].url, "https://example.com/x.png");
    KN_CHECK_INT(it.v[2].len, 5);
    kn__items_free(&it);

    /* whitespace and a UTF-8 BOM-free body with trailing space */
    KN_CHECK_INT(parse("\n [ {\"image\":\"aGk=\"} ] \n", 64, &it, &e), KN__SERR_NONE);
    KN_CHECK_INT(it.n, 1);
    kn__items_free(&it);
}

/* Expects a refusal with code and a message containing msg. */
static void json_bad(const char *body, int max_images, kn__serr_code code, const char *msg)
{
    kn__items it;
    kn__serr e;
    kn__serr_code rc = parse(body, max_images, &it, &e);
    KN_CHECK_INT(rc, code);
    KN_CHECK_INT(e.code, code);
    KN_CHECK(it.v == NULL && it.n == 0);
    KN_CHECK_CONTAINS(e.msg, msg);
    kn__items_free(&it);
}

static void test_json_errors(void)
{
    json_bad("", 64, KN__SERR_INVALID_JSON, "the body is empty");
    json_bad("{", 64, KN__SERR_INVALID_JSON, "line 1");
    json_bad("{\"url\": \"a\",}", 64, KN__SERR_INVALID_JSON, "column");
    json_bad("{\"url\": \"a\"} x", 64, KN__SERR_INVALID_JSON, "line 1");
    json_bad("\xff\xfe{}", 64, KN__SERR_INVALID_JSON, "");
    json_bad("{\"url\": \"a\", \"url\": \"b\"}", 64, KN__SERR_INVALID_JSON, "duplicate");
    json_bad("{\"url\": \"a\\u0000b\"}", 64, KN__SERR_INVALID_JSON, "");

    json_bad("42", 64, KN__SERR_INVALID_REQUEST, "the body is a number");
    json_bad("\"http://x\"", 64, KN__SERR_INVALID_REQUEST, "the body is a string");
    json_bad("null", 64, KN__SERR_INVALID_REQUEST, "the body is null");
    json_bad("[]", 64, KN__SERR_INVALID_REQUEST, "the list of images is empty");
    json_bad("[{\"image\":\"aGk=\"},{\"image\":\"aGk=\"},{\"image\":\"aGk=\"}]", 2,
             KN__SERR_INVALID_REQUEST, "3 images in one request; the limit is 2");
    json_bad("{}", 64, KN__SERR_INVALID_REQUEST, "needs one of \"url\", \"image\" or \"b64\"");
    json_bad("{\"URL\": \"http://x\"}", 64, KN__SERR_INVALID_REQUEST, "unknown field \"URL\"");
    json_bad("{\"url\": \"http://x\", \"image\": \"aGk=\"}", 64, KN__SERR_INVALID_REQUEST,
             "has both \"url\" and \"image\"");
    json_bad("{\"url\": 7}", 64, KN__SERR_INVALID_REQUEST, "\"url\" is a number; expected a string");
    json_bad("{\"image\": [1]}", 64, KN__SERR_INVALID_REQUEST, "\"image\" is a list");
    json_bad("{\"b64\": {}}", 64, KN__SERR_INVALID_REQUEST, "\"b64\" is an object");
    json_bad("{\"image\": true}", 64, KN__SERR_INVALID_REQUEST, "a boolean");
    json_bad("[{\"image\": \"aGk=\"}, 3]", 64, KN__SERR_INVALID_REQUEST,
             "[1] is a number; expected an object");
    json_bad("[{\"image\": \"aGk=\"}, {\"image\": \"aGk=\", \"x\": 1}]", 64,
             KN__SERR_INVALID_REQUEST, "[1] unknown field \"x\"");

    json_bad("{\"url\": \"\"}", 64, KN__SERR_INVALID_URL, "\"url\" is empty");
    json_bad("{\"image\": \"\"}", 64, KN__SERR_INVALID_IMAGE, "\"image\" holds no bytes");
    json_bad("{\"b64\": \"  \\n \"}", 64, KN__SERR_INVALID_IMAGE, "\"b64\" holds no bytes");
    json_bad("{\"image\": \"aGk*\"}", 64, KN__SERR_INVALID_BASE64,
             "\"image\": '*' at offset 3 is not base64");
    json_bad("[{\"image\": \"aGk=\"}, {\"image\": \"aGk=\"}, {\"b64\": \"a\"}]", 64,
             KN__SERR_INVALID_BASE64, "[2] \"b64\": the data ends mid-group");

    /* a URL longer than the limit */
    size_t n = KN__URL_MAX + 100;
    char *body = malloc(n + 32);
    KN_REQUIRE(body);
    int k = snprintf(body, n + 32, "{\"url\": \"http://x/");
    memset(body + k, 'a', n - (size_t)k);
    snprintf(body + n, 32, "\"}");
    json_bad(body, 64, KN__SERR_INVALID_URL, "characters; the limit is 8192");
    free(body);

    /* a field name with control characters and invalid UTF-8 comes back as
     * one clean line */
    kn__items it;
    kn__serr e;
    KN_CHECK_INT(parse("{\"a\\nb\\u0007\": 1}", 64, &it, &e), KN__SERR_INVALID_REQUEST);
    KN_CHECK_CONTAINS(e.msg, "unknown field \"a b \"");
    KN_CHECK(strchr(e.msg, '\n') == NULL);
}

/* ---- errors and messages ---------------------------------------------------- */

static void test_serr(void)
{
    KN_CHECK_INT(kn__serr_http(KN__SERR_NONE), 200);
    KN_CHECK_INT(kn__serr_http(KN__SERR_INVALID_JSON), 400);
    KN_CHECK_INT(kn__serr_http(KN__SERR_INVALID_IMAGE), 400);
    KN_CHECK_INT(kn__serr_http(KN__SERR_NOT_FOUND), 404);
    KN_CHECK_INT(kn__serr_http(KN__SERR_METHOD), 405);
    KN_CHECK_INT(kn__serr_http(KN__SERR_NOT_ACCEPTABLE), 406);
    KN_CHECK_INT(kn__serr_http(KN__SERR_TOO_LARGE), 413);
    KN_CHECK_INT(kn__serr_http(KN__SERR_MEDIA_TYPE), 415);
    KN_CHECK_INT(kn__serr_http(KN__SERR_UNAVAILABLE), 503);
    KN_CHECK_INT(kn__serr_http(KN__SERR_COUNT), 500);
    KN_CHECK_STR(kn__serr_name(KN__SERR_MEDIA_TYPE), "UnsupportedMediaType");
    KN_CHECK_STR(kn__serr_name(KN__SERR_TOO_LARGE), "PayloadTooLarge");
    KN_CHECK_STR(kn__serr_name(KN__SERR_INVALID_BASE64), "InvalidBase64");
    KN_CHECK_STR(kn__serr_name((kn__serr_code)-1), "InternalError");

    char s[64];
    snprintf(s, sizeof s, "a\tb\nc\x7f" "d");
    kn__text_clean(s);
    KN_CHECK_STR(s, "a b c d");
    snprintf(s, sizeof s, "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x90\x95");
    kn__text_clean(s);
    KN_CHECK_STR(s, "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x90\x95"); /* valid UTF-8 kept */
    snprintf(s, sizeof s, "\xc0\xaf|\xed\xa0\x80|\xff|\xe2\x82");
    kn__text_clean(s);
    KN_CHECK_STR(s, "??|???|?|??"); /* overlong, surrogate, stray, cut short */

    kn__serr e = {0};
    KN_CHECK_INT(kn__serr_set(&e, KN__SERR_INVALID_URL, "bad %s", "x\ny"), KN__SERR_INVALID_URL);
    KN_CHECK_INT(e.code, KN__SERR_INVALID_URL);
    KN_CHECK_STR(e.msg, "bad x y");
    KN_CHECK_INT(kn__serr_set(NULL, KN__SERR_INTERNAL, "ignored"), KN__SERR_INTERNAL);
}

/* ---- URLs ------------------------------------------------------------------- */

static void url_case(const char *url, const char *schemes, kn__serr_code want, const char *msg)
{
    kn__serr e = {0};
    KN_CHECK_INT(kn__url_check(url, schemes, &e), want);
    if (msg)
        KN_CHECK_CONTAINS(e.msg, msg);
}

static void test_url_check(void)
{
    url_case("http://127.0.0.1:8080/a.jpg", "http,https", KN__SERR_NONE, NULL);
    url_case("HTTPS://example.com/a.jpg?x=1", "http,https", KN__SERR_NONE, NULL);
    url_case("file:///etc/passwd", "http,https", KN__SERR_INVALID_URL,
             "scheme \"file\" is not allowed (allowed: http,https)");
    url_case("file:///tmp/a.jpg", "http,file", KN__SERR_NONE, NULL);
    url_case("ftp://example.com/a.jpg", "http,https", KN__SERR_INVALID_URL, "\"ftp\"");
    url_case("gopher://example.com/", "http,https,file", KN__SERR_INVALID_URL, "not allowed");
    url_case("https://example.com/", "http", KN__SERR_INVALID_URL, "not allowed");
    url_case("not a url", "http,https", KN__SERR_INVALID_URL, "not a usable URL");
    url_case("http://", "http,https", KN__SERR_INVALID_URL, "not a usable URL");
    url_case("http://exa mple.com/", "http,https", KN__SERR_INVALID_URL, "");
}

static char tmpdir[256];

static void write_file(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, 1, n, f) != n || fclose(f) != 0) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(1);
    }
}

static void test_fetch(void)
{
    char a[512], b[512], urla[600], urlb[600], urlmissing[600];
    snprintf(a, sizeof a, "%s/a.bin", tmpdir);
    snprintf(b, sizeof b, "%s/b.bin", tmpdir);
    uint8_t data[3000];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (uint8_t)(i * 13);
    write_file(a, data, sizeof data);
    write_file(b, data, 100);
    snprintf(urla, sizeof urla, "file://%s", a);
    snprintf(urlb, sizeof urlb, "file://%s", b);
    snprintf(urlmissing, sizeof urlmissing, "file://%s/missing.bin", tmpdir);

    kn__fetch_params fp = {.schemes = "file", .max_bytes = 4096, .max_total = 1 << 20,
                           .timeout_ms = 10000, .max_redirects = 3};
    /* bytes items pass through; URL items become their bytes, in order */
    kn__items it = {0};
    it.n = 3;
    it.list = true;
    it.v = calloc(3, sizeof *it.v);
    KN_REQUIRE(it.v);
    it.v[0].kind = KN__ITEM_URL;
    it.v[0].url = strdup(urlb);
    it.v[1].kind = KN__ITEM_BYTES;
    it.v[1].data = (const uint8_t *)"raw";
    it.v[1].len = 3;
    it.v[2].kind = KN__ITEM_URL;
    it.v[2].url = strdup(urla);
    kn__serr e = {0};
    KN_CHECK_INT(kn__fetch_all(&fp, &it, &e), KN__SERR_NONE);
    KN_CHECK_INT(it.v[0].kind, KN__ITEM_BYTES);
    KN_CHECK_INT(it.v[0].len, 100);
    KN_CHECK(it.v[0].url == NULL && it.v[0].owned);
    KN_CHECK(it.v[0].data && memcmp(it.v[0].data, data, 100) == 0);
    KN_CHECK_INT(it.v[1].len, 3);
    KN_CHECK_INT(it.v[2].len, sizeof data);
    KN_CHECK(it.v[2].data && memcmp(it.v[2].data, data, sizeof data) == 0);
    kn__items_free(&it);

    /* one URL at a time from here on */
    struct {
        const char *url, *schemes;
        size_t max_bytes;
        kn__serr_code want;
        const char *msg;
    } cases[] = {
        {urla, "file", 2999, KN__SERR_FETCH_FAILED, "larger than the 2999-byte limit"},
        {urla, "file", 3000, KN__SERR_NONE, NULL},
        {urlmissing, "file", 4096, KN__SERR_FETCH_FAILED, "missing.bin"},
        {urla, "http,https", 4096, KN__SERR_INVALID_URL, "scheme \"file\" is not allowed"},
        /* port 1 on loopback: nothing listens there in a test environment */
        {"http://127.0.0.1:1/a.jpg", "http", 4096, KN__SERR_FETCH_FAILED, "127.0.0.1:1"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        kn__items one = {0};
        one.n = 1;
        one.v = calloc(1, sizeof *one.v);
        KN_REQUIRE(one.v);
        one.v[0].kind = KN__ITEM_URL;
        one.v[0].url = strdup(cases[i].url);
        kn__fetch_params p = fp;
        p.schemes = cases[i].schemes;
        p.max_bytes = cases[i].max_bytes;
        kn__serr ee = {0};
        KN_CHECK_INT(kn__fetch_all(&p, &one, &ee), cases[i].want);
        if (cases[i].msg)
            KN_CHECK_CONTAINS(ee.msg, cases[i].msg);
        if (cases[i].want == KN__SERR_NONE)
            KN_CHECK_INT(one.v[0].len, 3000);
        else
            KN_CHECK_INT(one.v[0].kind, KN__ITEM_URL); /* untouched on failure */
        kn__items_free(&one);
    }

    /* the first failing item is named by its list position */
    kn__items two = {0};
    two.n = 2;
    two.list = true;
    two.v = calloc(2, sizeof *two.v);
    KN_REQUIRE(two.v);
    two.v[0].kind = two.v[1].kind = KN__ITEM_URL;
    two.v[0].url = strdup(urlb);
    two.v[1].url = strdup(urlmissing);
    kn__serr e2 = {0};
    KN_CHECK_INT(kn__fetch_all(&fp, &two, &e2), KN__SERR_FETCH_FAILED);
    KN_CHECK_CONTAINS(e2.msg, "[1] ");
    kn__items_free(&two);

    /* each URL within its limit, together over the request's */
    kn__items pair = {0};
    pair.n = 2;
    pair.list = true;
    pair.v = calloc(2, sizeof *pair.v);
    KN_REQUIRE(pair.v);
    pair.v[0].kind = pair.v[1].kind = KN__ITEM_URL;
    pair.v[0].url = strdup(urla);
    pair.v[1].url = strdup(urla);
    kn__fetch_params tight = fp;
    tight.max_total = 5000;
    kn__serr e3 = {0};
    KN_CHECK_INT(kn__fetch_all(&tight, &pair, &e3), KN__SERR_FETCH_FAILED);
    KN_CHECK_CONTAINS(e3.msg, "larger than the 5000-byte limit together");
    KN_CHECK_INT(pair.v[0].kind, KN__ITEM_URL);
    tight.max_total = 6000;
    KN_CHECK_INT(kn__fetch_all(&tight, &pair, &e3), KN__SERR_NONE);
    KN_CHECK_INT(pair.v[0].len + pair.v[1].len, 6000);
    kn__items_free(&pair);

    unlink(a);
    unlink(b);
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/kn_test_serve_body.XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    KN_RUN(test_ctype);
    KN_RUN(test_accept);
    KN_RUN(test_b64);
    KN_RUN(test_json_ok);
    KN_RUN(test_json_errors);
    KN_RUN(test_serr);
    KN_RUN(test_url_check);
    KN_RUN(test_fetch);
    curl_global_cleanup();
    rmdir(tmpdir);
    return kn_test_finish();
}
