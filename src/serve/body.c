/* Request-body parsers for /invocations: media types (Content-Type, Accept),
 * JSON bodies ({"url"}, {"image"}, {"b64"} or a list of them) and base64.
 *
 * Everything here reads bytes a client sent, so every input is bounded and
 * every refusal is a status with a one-line message naming the field and,
 * for base64, the offset. Pure functions, no state: thread-safe. The fuzz
 * target fuzz/fuzz_serve_body.c drives this file. */
#include "serve_int.h"

#include <ctype.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- errors ---------------------------------------------------------------- */

static const struct {
    int http;
    const char *name;
} serr_table[] = {
#define KN__X_ROW(n, h, s) {h, s},
    KN__SERR_LIST(KN__X_ROW)
#undef KN__X_ROW
};

int kn__serr_http(kn__serr_code c)
{
    return (int)c >= 0 && c < KN__SERR_COUNT ? serr_table[c].http : 500;
}

const char *kn__serr_name(kn__serr_code c)
{
    return (int)c >= 0 && c < KN__SERR_COUNT ? serr_table[c].name : "InternalError";
}

kn__serr_code kn__serr_set(kn__serr *e, kn__serr_code c, const char *fmt, ...)
{
    if (!e)
        return c;
    e->code = c;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    kn__text_clean(e->msg);
    return c;
}

/* Length of the valid UTF-8 sequence at p (RFC 3629: no overlongs, no
 * surrogates, nothing above U+10FFFF), or 0. */
static int utf8_len(const unsigned char *p)
{
    unsigned char c = p[0];
    int len = c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
    if (!len)
        return 0;
    unsigned char lo = 0x80, hi = 0xbf;
    if (c == 0xe0)
        lo = 0xa0;
    else if (c == 0xed)
        hi = 0x9f;
    else if (c == 0xf0)
        lo = 0x90;
    else if (c == 0xf4)
        hi = 0x8f;
    if (p[1] < lo || p[1] > hi)
        return 0;
    for (int k = 2; k < len; k++)
        if ((p[k] & 0xc0) != 0x80)
            return 0;
    return len;
}

void kn__text_clean(char *s)
{
    /* messages quote what clients sent (names, URLs, paths): keep them one
     * valid UTF-8 line so they can go into a JSON string and a log line */
    unsigned char *p = (unsigned char *)s;
    while (*p) {
        if (*p < 0x20 || *p == 0x7f) {
            *p++ = ' ';
        } else if (*p < 0x80) {
            p++;
        } else {
            int n = utf8_len(p);
            if (n)
                p += n;
            else
                *p++ = '?';
        }
    }
}

/* ---- media types ----------------------------------------------------------- */

/* Copies the media type of a header value (before ';'), trimmed and lower
 * case, into out. Returns false when it does not fit. */
static bool media_type(const char *s, size_t n, char *out, size_t cap)
{
    while (n && (*s == ' ' || *s == '\t'))
        s++, n--;
    const char *semi = memchr(s, ';', n);
    if (semi)
        n = (size_t)(semi - s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    if (n >= cap)
        return false;
    for (size_t i = 0; i < n; i++)
        out[i] = (char)tolower((unsigned char)s[i]);
    out[n] = 0;
    return true;
}

kn__ctype kn__serve_ctype(const char *ct)
{
    static const struct {
        const char *type;
        kn__ctype kind;
    } types[] = {
        {"image/jpeg", KN__CT_IMAGE},        {"image/jpg", KN__CT_IMAGE},
        {"image/png", KN__CT_IMAGE},         {"application/x-image", KN__CT_IMAGE},
        {"application/json", KN__CT_JSON},
    };
    char t[64];
    if (!ct || !media_type(ct, strlen(ct), t, sizeof t))
        return ct ? KN__CT_OTHER : KN__CT_MISSING;
    if (!t[0])
        return KN__CT_MISSING;
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (strcmp(t, types[i].type) == 0)
            return types[i].kind;
    return KN__CT_OTHER;
}

/* q of a media range's parameters ("; q=0.5"); 1 when absent or malformed. */
static double range_q(const char *p, size_t n)
{
    const char *end = p + n;
    while (p < end) {
        const char *semi = memchr(p, ';', (size_t)(end - p));
        if (!semi)
            break;
        p = semi + 1;
        while (p < end && (*p == ' ' || *p == '\t'))
            p++;
        if (end - p >= 2 && (p[0] == 'q' || p[0] == 'Q') && p[1] == '=') {
            char num[16];
            size_t k = 0;
            for (p += 2; p < end && k + 1 < sizeof num && *p != ';' && *p != ' '; p++)
                num[k++] = *p;
            num[k] = 0;
            char *e;
            double q = strtod(num, &e);
            if (e == num || *e || !(q >= 0 && q <= 1))
                return 1;
            return q;
        }
    }
    return 1;
}

kn__fmt kn__serve_accept(const char *accept)
{
    static const struct {
        const char *type;
        kn__fmt fmt;
    } types[] = {
        {"application/json", KN__FMT_JSON}, {"*/*", KN__FMT_JSON},
        {"application/*", KN__FMT_JSON},    {"text/csv", KN__FMT_CSV},
        {"text/*", KN__FMT_CSV},
    };
    if (!accept)
        return KN__FMT_JSON;
    kn__fmt best = KN__FMT_NONE;
    double best_q = 0;
    bool any = false;
    const char *p = accept;
    for (int ranges = 0; *p && ranges < 64; ranges++) {
        size_t n = strcspn(p, ",");
        char t[64];
        if (media_type(p, n, t, sizeof t) && t[0]) {
            any = true;
            double q = range_q(p, n);
            for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
                if (strcmp(t, types[i].type) == 0 && q > best_q) {
                    best = types[i].fmt;
                    best_q = q;
                }
        }
        p += n;
        if (*p == ',')
            p++;
    }
    return any ? best : KN__FMT_JSON; /* "Accept:" with nothing in it: the default */
}

/* ---- base64 ---------------------------------------------------------------- */

enum { B64_BAD = -1, B64_SPACE = -2, B64_PAD = -3 };

static int b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+' || c == '-')
        return 62;
    if (c == '/' || c == '_')
        return 63;
    if (c == '=')
        return B64_PAD;
    if (c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v')
        return B64_SPACE;
    return B64_BAD;
}

static void describe_char(unsigned char c, char *out, size_t n)
{
    if (c >= 0x21 && c < 0x7f && c != '\'')
        snprintf(out, n, "'%c'", c);
    else
        snprintf(out, n, "byte 0x%02x", c);
}

kn__serr_code kn__b64_decode(const char *s, size_t n, uint8_t **out, size_t *out_len,
                             kn__serr *e)
{
    *out = NULL;
    *out_len = 0;
    size_t i = 0;
    /* data URI: "data:image/png;base64,...." */
    if (n >= 5 && strncasecmp(s, "data:", 5) == 0) {
        size_t lim = n < 256 ? n : 256;
        const char *comma = memchr(s, ',', lim);
        if (!comma)
            return kn__serr_set(e, KN__SERR_INVALID_BASE64,
                                "a data: URI needs a ',' within its first 256 characters");
        size_t head = (size_t)(comma - s);
        if (head < 12 || strncasecmp(comma - 7, ";base64", 7) != 0)
            return kn__serr_set(e, KN__SERR_INVALID_BASE64,
                                "only base64 data: URIs are accepted (\";base64,\")");
        i = head + 1;
    }
    uint8_t *buf = malloc(n / 4 * 3 + 3);
    if (!buf)
        return kn__serr_set(e, KN__SERR_INTERNAL, "out of memory decoding base64");
    size_t o = 0, sextets = 0, pads = 0;
    uint32_t acc = 0;
    for (; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        int v = b64_value(c);
        if (v == B64_SPACE)
            continue;
        if (v == B64_PAD) {
            pads++;
            continue;
        }
        char what[16];
        if (v == B64_BAD || pads) {
            describe_char(c, what, sizeof what);
            free(buf);
            return kn__serr_set(e, KN__SERR_INVALID_BASE64, "%s at offset %zu %s", what, i,
                                v == B64_BAD ? "is not base64" : "follows the '=' padding");
        }
        acc = (acc << 6) | (uint32_t)v;
        if (++sextets % 4 == 0) {
            buf[o++] = (uint8_t)(acc >> 16);
            buf[o++] = (uint8_t)(acc >> 8);
            buf[o++] = (uint8_t)acc;
            acc = 0;
        }
    }
    size_t rest = sextets % 4;
    if (rest == 1 || pads > 2 || (pads && rest + pads != 4)) {
        free(buf);
        return kn__serr_set(e, KN__SERR_INVALID_BASE64,
                            "the data ends mid-group (%zu characters%s)", sextets,
                            pads ? " with bad padding" : "");
    }
    if (rest == 2) {
        buf[o++] = (uint8_t)(acc >> 4);
    } else if (rest == 3) {
        buf[o++] = (uint8_t)(acc >> 10);
        buf[o++] = (uint8_t)(acc >> 2);
    }
    *out = buf;
    *out_len = o;
    return KN__SERR_NONE;
}

/* ---- JSON bodies ----------------------------------------------------------- */

void kn__item_release(kn__item *it)
{
    if (it->owned)
        free((void *)it->data);
    it->data = NULL;
    it->len = 0;
    it->owned = false;
    free(it->url);
    it->url = NULL;
}

void kn__items_free(kn__items *it)
{
    if (!it)
        return;
    for (int i = 0; i < it->n; i++)
        kn__item_release(&it->v[i]);
    free(it->v);
    it->v = NULL;
    it->n = 0;
}

static const char *json_kind(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "a list";
    case JSON_STRING: return "a string";
    case JSON_INTEGER:
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
    }
    return "a value";
}

/* Where an item sits, for messages: "" for a single object, "[i] " in a list. */
static void where(char *w, size_t n, bool list, int idx)
{
    if (list)
        snprintf(w, n, "[%d] ", idx);
    else
        w[0] = 0;
}

static kn__serr_code parse_item(const json_t *o, bool list, int idx, kn__item *it, kn__serr *e)
{
    char w[24];
    where(w, sizeof w, list, idx);
    if (!json_is_object(o))
        return kn__serr_set(e, KN__SERR_INVALID_REQUEST,
                            "%sis %s; expected an object with \"url\", \"image\" or \"b64\"", w,
                            json_kind(o));
    const char *key, *found = NULL;
    const json_t *val, *fval = NULL;
    json_object_foreach((json_t *)o, key, val) {
        if (strcmp(key, "url") != 0 && strcmp(key, "image") != 0 && strcmp(key, "b64") != 0) {
            char k[64];
            snprintf(k, sizeof k, "%s", key);
            return kn__serr_set(e, KN__SERR_INVALID_REQUEST,
                                "%sunknown field \"%s%s\" (expected one of \"url\", \"image\", "
                                "\"b64\")", w, k, strlen(key) >= sizeof k ? "..." : "");
        }
        if (found)
            return kn__serr_set(e, KN__SERR_INVALID_REQUEST,
                                "%shas both \"%s\" and \"%s\"; give one image source per object",
                                w, found, key);
        found = key;
        fval = val;
    }
    if (!found)
        return kn__serr_set(e, KN__SERR_INVALID_REQUEST,
                            "%sneeds one of \"url\", \"image\" or \"b64\"", w);
    if (!json_is_string(fval))
        return kn__serr_set(e, KN__SERR_INVALID_REQUEST, "%s\"%s\" is %s; expected a string", w,
                            found, json_kind(fval));
    const char *str = json_string_value(fval);
    size_t len = json_string_length(fval);
    if (strcmp(found, "url") == 0) {
        if (len == 0)
            return kn__serr_set(e, KN__SERR_INVALID_URL, "%s\"url\" is empty", w);
        if (len > KN__URL_MAX)
            return kn__serr_set(e, KN__SERR_INVALID_URL,
                                "%s\"url\" is %zu characters; the limit is %d", w, len,
                                KN__URL_MAX);
        if (memchr(str, 0, len))
            return kn__serr_set(e, KN__SERR_INVALID_URL, "%s\"url\" contains a NUL character",
                                w);
        it->kind = KN__ITEM_URL;
        if (!(it->url = strdup(str)))
            return kn__serr_set(e, KN__SERR_INTERNAL, "out of memory");
        return KN__SERR_NONE;
    }
    uint8_t *bytes;
    size_t n;
    kn__serr be = {0};
    if (kn__b64_decode(str, len, &bytes, &n, &be))
        return kn__serr_set(e, be.code, "%s\"%s\": %s", w, found, be.msg);
    if (n == 0) {
        free(bytes);
        return kn__serr_set(e, KN__SERR_INVALID_IMAGE, "%s\"%s\" holds no bytes", w, found);
    }
    it->kind = KN__ITEM_BYTES;
    it->data = bytes;
    it->len = n;
    it->owned = true;
    return KN__SERR_NONE;
}

kn__serr_code kn__serve_parse_json(const uint8_t *body, size_t len, int max_images,
                                   kn__items *out, kn__serr *e)
{
    memset(out, 0, sizeof *out);
    if (len == 0)
        return kn__serr_set(e, KN__SERR_INVALID_JSON, "the body is empty; expected JSON");
    json_error_t je;
    json_t *root = json_loadb((const char *)body, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
    if (!root)
        return kn__serr_set(e, KN__SERR_INVALID_JSON, "line %d, column %d: %s", je.line,
                            je.column, je.text);
    kn__serr_code rc = KN__SERR_NONE;
    size_t n = 1;
    bool list = json_is_array(root);
    if (list) {
        n = json_array_size(root);
        if (n == 0) {
            rc = kn__serr_set(e, KN__SERR_INVALID_REQUEST, "the list of images is empty");
            goto out;
        }
        if (n > (size_t)max_images) {
            rc = kn__serr_set(e, KN__SERR_INVALID_REQUEST,
                              "%zu images in one request; the limit is %d", n, max_images);
            goto out;
        }
    } else if (!json_is_object(root)) {
        rc = kn__serr_set(e, KN__SERR_INVALID_REQUEST,
                          "the body is %s; expected an object with \"url\", \"image\" or "
                          "\"b64\", or a list of them", json_kind(root));
        goto out;
    }
    if (!(out->v = calloc(n, sizeof *out->v))) {
        rc = kn__serr_set(e, KN__SERR_INTERNAL, "out of memory");
        goto out;
    }
    out->list = list;
    for (size_t i = 0; i < n; i++) {
        const json_t *o = list ? json_array_get(root, i) : root;
        out->n = (int)i + 1; /* so a partial item is released on error */
        if ((rc = parse_item(o, list, (int)i, &out->v[i], e)))
            break;
    }
out:
    json_decref(root);
    if (rc)
        kn__items_free(out);
    return rc;
}
