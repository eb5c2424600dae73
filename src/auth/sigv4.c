/* SigV4: parse, canonicalise, verify, sign (see include/kennel/auth.h).
 *
 * Every size that comes from the request is bounded before it is copied:
 * header and query values are truncated nowhere silently — an over-long
 * part is an IncompleteSignature naming it. The canonical request is built
 * in a kn_buf capped at 1 MiB (a signed request cannot reasonably need
 * more). Hashes and HMACs come from libcrypto; the signature comparison
 * is CRYPTO_memcmp. */
#include "kennel/auth.h"

#include <ctype.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define CANON_MAX (1u << 20)
#define MAX_QUERY_PARAMS 256
static const char ALGO[] = "AWS4-HMAC-SHA256";

/* ---- small helpers ------------------------------------------------------- */

/* At most 64 bytes of s for a message: control and non-ASCII bytes become
 * '?', so a message stays one printable line whatever the client sent. */
static const char *excerpt(const char *s, char out[72])
{
    size_t i = 0;
    for (; s[i] && i < 64; i++)
        out[i] = (unsigned char)s[i] < 0x20 || (unsigned char)s[i] >= 0x7f ? '?' : s[i];
    if (s[i])
        memcpy(out + i, "...", 4);
    else
        out[i] = 0;
    return out;
}

static kn_status failf(kn_auth_fail *fail, kn_auth_fail kind, kn_err *e, const char *fmt,
                       const char *a)
{
    char buf[72];
    *fail = kind;
    return kn_err_set(e, KN_INVALID, fmt, excerpt(a, buf));
}

static void sha256_hex(const void *p, size_t n, char out[65])
{
    uint8_t h[32];
    kn_sha256(p, n, h);
    kn_hex(h, 32, out);
}

static void hmac(const void *key, size_t klen, const void *msg, size_t mlen, uint8_t out[32])
{
    unsigned int len = 32;
    HMAC(EVP_sha256(), key, (int)klen, msg, mlen, out, &len);
}

static bool unreserved(unsigned char c)
{
    return isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~';
}

/* URI-encodes n bytes of s; '/' is kept when keep_slash. */
static kn_status encode(kn_buf *b, const char *s, size_t n, bool keep_slash)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        kn_status rc = unreserved(c) || (keep_slash && c == '/')
                           ? kn_buf_append(b, &c, 1)
                           : kn_buf_appendf(b, "%%%02X", c);
        if (rc)
            return rc;
    }
    return KN_OK;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decodes n bytes of s into out (at most cap - 1 bytes; false when
 * it does not fit). A '+' stays a '+' (canonically %2B), as AWS and the API
 * layer read it: were it a space, "a+b" and "a%20b" would share one
 * signature while the handler saw two different values. */
static bool decode(const char *s, size_t n, char *out, size_t cap, size_t *len)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '%' && i + 2 < n && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
            c = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
            i += 2;
        }
        if (o + 1 >= cap)
            return false;
        out[o++] = c;
    }
    out[o] = 0;
    *len = o;
    return true;
}

static const char *header(const kn_auth_request *r, const char *name)
{
    for (size_t i = 0; i < r->n_headers; i++)
        if (r->headers[i].name && !strcasecmp(r->headers[i].name, name))
            return r->headers[i].value ? r->headers[i].value : "";
    return NULL;
}

/* ---- query strings ------------------------------------------------------- */

typedef struct qparam {
    char *k, *v;     /* decoded (may hold NUL bytes: lengths below) */
    size_t klen, vlen;
    char *ek, *ev;   /* canonically re-encoded, NUL-terminated */
} qparam;

typedef struct query {
    qparam p[MAX_QUERY_PARAMS];
    int n;
    char *store;  /* decoded keys and values, NUL-separated */
    char *estore; /* their encoded forms, NUL-separated */
} query;

static void query_free(query *q)
{
    free(q->store);
    free(q->estore);
    q->store = q->estore = NULL;
    q->n = 0;
}

/* URI-encodes n bytes of s into out (room for 3n + 1 bytes); returns the
 * length written. */
static size_t encode_to(char *out, const char *s, size_t n)
{
    static const char d[] = "0123456789ABCDEF";
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (unreserved(c)) {
            out[o++] = (char)c;
        } else {
            out[o++] = '%';
            out[o++] = d[c >> 4];
            out[o++] = d[c & 15];
        }
    }
    out[o] = 0;
    return o;
}

static kn_status query_parse(const char *raw, query *q, kn_auth_fail *fail, kn_err *e)
{
    q->n = 0;
    q->store = q->estore = NULL;
    if (!raw || !*raw)
        return KN_OK;
    size_t len = strlen(raw);
    if (len > CANON_MAX)
        return failf(fail, KN_AUTH_INCOMPLETE, e, "query string: %s", "too long");
    /* Decoding never grows, encoding at most triples; keys and values each
     * get a NUL. */
    q->store = malloc(len + 2 * MAX_QUERY_PARAMS + 2);
    q->estore = malloc(3 * len + 2 * MAX_QUERY_PARAMS + 2);
    if (!q->store || !q->estore) {
        query_free(q);
        return kn_err_set(e, KN_NOMEM, "query string: out of memory");
    }
    size_t used = 0, eused = 0;
    const char *s = raw;
    for (;;) { /* every segment counts, a trailing empty one too (botocore) */
        const char *amp = strchr(s, '&');
        size_t n = amp ? (size_t)(amp - s) : strlen(s);
        /* An empty pair ("a&&b", a trailing '&') is signed by botocore as
         * an empty key with an empty value: "=". */
        {
            if (q->n == MAX_QUERY_PARAMS) {
                query_free(q);
                return failf(fail, KN_AUTH_INCOMPLETE, e, "query string: %s",
                             "more than 256 parameters");
            }
            const char *eq = memchr(s, '=', n);
            size_t kl = eq ? (size_t)(eq - s) : n;
            qparam *p = &q->p[q->n++];
            p->k = q->store + used;
            decode(s, kl, p->k, len + 1, &p->klen);
            used += p->klen + 1;
            p->v = q->store + used;
            if (eq)
                decode(eq + 1, n - kl - 1, p->v, len + 1, &p->vlen);
            else
                p->v[0] = 0, p->vlen = 0;
            used += p->vlen + 1;
            p->ek = q->estore + eused;
            eused += encode_to(p->ek, p->k, p->klen) + 1;
            p->ev = q->estore + eused;
            eused += encode_to(p->ev, p->v, p->vlen) + 1;
        }
        if (!amp)
            break;
        s = amp + 1;
    }
    return KN_OK;
}

static const char *query_get(const query *q, const char *k)
{
    for (int i = 0; i < q->n; i++)
        if (!strcmp(q->p[i].k, k))
            return q->p[i].v;
    return NULL;
}

/* The canonical query is sorted by the encoded names, then values: the
 * decoded bytes sort differently ("a{" after "aa", but "a%7B" before). */
static int cmp_param(const void *a, const void *b)
{
    const qparam *x = a, *y = b;
    int c = strcmp(x->ek, y->ek);
    return c ? c : strcmp(x->ev, y->ev);
}

/* ---- parsing ------------------------------------------------------------- */

static bool copy_part(char *dst, size_t cap, const char *s, size_t n)
{
    if (n == 0 || n >= cap)
        return false;
    memcpy(dst, s, n);
    dst[n] = 0;
    return true;
}

/* "AKID/YYYYMMDD/region/service/aws4_request" */
static kn_status parse_credential(const char *c, size_t n, kn_auth_sig *s, kn_auth_fail *fail,
                                  kn_err *e)
{
    const char *part[5];
    size_t len[5];
    int k = 0;
    const char *p = c, *end = c + n;
    while (k < 5) {
        const char *slash = memchr(p, '/', (size_t)(end - p));
        part[k] = p;
        len[k] = slash ? (size_t)(slash - p) : (size_t)(end - p);
        k++;
        if (!slash)
            break;
        p = slash + 1;
    }
    if (k != 5 || part[4] + len[4] != end)
        return failf(fail, KN_AUTH_INCOMPLETE, e,
                     "Credential: '%s' is not AKID/date/region/service/aws4_request", "...");
    if (!copy_part(s->access_key, sizeof s->access_key, part[0], len[0]) ||
        !copy_part(s->scope_date, sizeof s->scope_date, part[1], len[1]) ||
        strlen(s->scope_date) != 8 ||
        !copy_part(s->region, sizeof s->region, part[2], len[2]) ||
        !copy_part(s->service, sizeof s->service, part[3], len[3]))
        return failf(fail, KN_AUTH_INCOMPLETE, e, "Credential: %s",
                     "an empty or over-long part");
    for (int i = 0; i < 8; i++)
        if (!isdigit((unsigned char)s->scope_date[i]))
            return failf(fail, KN_AUTH_INCOMPLETE, e, "Credential: date '%s' is not YYYYMMDD",
                         s->scope_date);
    if (len[4] != 12 || memcmp(part[4], "aws4_request", 12))
        return failf(fail, KN_AUTH_INCOMPLETE, e, "Credential: scope must end in %s",
                     "aws4_request");
    return KN_OK;
}

static kn_status check_signed_headers(kn_auth_sig *s, kn_auth_fail *fail, kn_err *e)
{
    int n = 1;
    for (const char *p = s->signed_headers; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == ';')
            n++;
        else if (!(islower(c) || isdigit(c) || c == '-' || c == '_' || c == '.'))
            return failf(fail, KN_AUTH_INCOMPLETE, e,
                         "SignedHeaders: '%s' is not a ';'-separated list of lower-case names",
                         s->signed_headers);
    }
    if (n > KN_AUTH_MAX_SIGNED || strstr(s->signed_headers, ";;") ||
        s->signed_headers[strlen(s->signed_headers) - 1] == ';')
        return failf(fail, KN_AUTH_INCOMPLETE, e, "SignedHeaders: '%s' is malformed",
                     s->signed_headers);
    /* As AWS: a signature that does not cover Host could be replayed to
     * another server that knows the key. */
    bool host = false;
    for (const char *p = s->signed_headers; *p && !host;) {
        size_t len = strcspn(p, ";");
        host = len == 4 && !memcmp(p, "host", 4);
        p += len + (p[len] == ';');
    }
    if (!host)
        return failf(fail, KN_AUTH_INCOMPLETE, e, "SignedHeaders: '%s' must include host",
                     s->signed_headers);
    return KN_OK;
}

static kn_status check_signature(kn_auth_sig *s, kn_auth_fail *fail, kn_err *e)
{
    if (strlen(s->signature) != 64)
        return failf(fail, KN_AUTH_INCOMPLETE, e, "Signature: '%s' is not 64 hex digits",
                     s->signature);
    for (int i = 0; i < 64; i++) {
        char c = s->signature[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return failf(fail, KN_AUTH_INCOMPLETE, e, "Signature: '%s' is not lower-case hex",
                         s->signature);
    }
    return KN_OK;
}

static int digits(const char *p, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++)
        v = v * 10 + (p[i] - '0');
    return v;
}

/* YYYYMMDDTHHMMSSZ to epoch seconds; false when malformed. */
static bool parse_amz_date(const char *d, double *out)
{
    if (strlen(d) != 16 || d[8] != 'T' || d[15] != 'Z')
        return false;
    for (int i = 0; i < 15; i++)
        if (i != 8 && !isdigit((unsigned char)d[i]))
            return false;
    struct tm tm = {0};
    tm.tm_year = digits(d, 4) - 1900;
    tm.tm_mon = digits(d + 4, 2) - 1;
    tm.tm_mday = digits(d + 6, 2);
    tm.tm_hour = digits(d + 9, 2);
    tm.tm_min = digits(d + 11, 2);
    tm.tm_sec = digits(d + 13, 2);
    if (tm.tm_mon < 0 || tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_mday > 31 ||
        tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 60)
        return false;
    *out = (double)timegm(&tm);
    return true;
}

/* RFC 1123 Date header to YYYYMMDDTHHMMSSZ. */
static bool date_header(const char *v, char out[17], double *t)
{
    struct tm tm = {0};
    const char *end = strptime(v, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    if (!end || *end)
        return false;
    time_t tt = timegm(&tm);
    *t = (double)tt;
    return strftime(out, 17, "%Y%m%dT%H%M%SZ", &tm) == 16;
}

/* Authorization: AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=... */
static kn_status parse_header_form(const char *v, kn_auth_sig *s, kn_auth_fail *fail, kn_err *e)
{
    size_t vlen = strlen(v);
    if (vlen > 8192)
        return failf(fail, KN_AUTH_INCOMPLETE, e, "Authorization: %s", "over 8192 bytes");
    if (strncmp(v, ALGO, sizeof ALGO - 1) || (v[sizeof ALGO - 1] != ' '))
        return failf(fail, KN_AUTH_INCOMPLETE, e,
                     "Authorization: the algorithm must be %s", ALGO);
    bool got_c = false, got_h = false, got_s = false;
    const char *p = v + sizeof ALGO;
    while (*p) {
        while (*p == ' ' || *p == ',')
            p++;
        if (!*p)
            break;
        const char *eq = strchr(p, '=');
        if (!eq)
            return failf(fail, KN_AUTH_INCOMPLETE, e, "Authorization: '%s' has no '='", p);
        const char *val = eq + 1;
        size_t n = strcspn(val, ",");
        while (n && val[n - 1] == ' ')
            n--;
        size_t klen = (size_t)(eq - p);
        if (klen == 10 && !strncmp(p, "Credential", 10)) {
            kn_status rc = parse_credential(val, n, s, fail, e);
            if (rc)
                return rc;
            got_c = true;
        } else if (klen == 13 && !strncmp(p, "SignedHeaders", 13)) {
            if (!copy_part(s->signed_headers, sizeof s->signed_headers, val, n))
                return failf(fail, KN_AUTH_INCOMPLETE, e, "SignedHeaders: %s",
                             "empty or over-long");
            got_h = true;
        } else if (klen == 9 && !strncmp(p, "Signature", 9)) {
            if (!copy_part(s->signature, sizeof s->signature, val, n))
                return failf(fail, KN_AUTH_INCOMPLETE, e, "Signature: %s",
                             "empty or not 64 hex digits");
            got_s = true;
        }
        p = val + strcspn(val, ",");
    }
    if (!got_c)
        return failf(fail, KN_AUTH_INCOMPLETE, e, "Authorization: %s",
                     "Credential is missing");
    if (!got_h)
        return failf(fail, KN_AUTH_INCOMPLETE, e, "Authorization: %s",
                     "SignedHeaders is missing");
    if (!got_s)
        return failf(fail, KN_AUTH_INCOMPLETE, e, "Authorization: %s", "Signature is missing");
    return KN_OK;
}

kn_status kn_auth_parse(const kn_auth_request *r, kn_auth_sig *s, kn_auth_fail *fail, kn_err *e)
{
    memset(s, 0, sizeof *s);
    *fail = KN_AUTH_OK;
    kn_status rc = KN_OK;
    query q;
    const char *authz = header(r, "authorization");
    if ((rc = query_parse(r->raw_query, &q, fail, e)))
        return rc;
    const char *qalgo = query_get(&q, "X-Amz-Algorithm");
    if (authz) {
        if ((rc = parse_header_form(authz, s, fail, e)))
            goto out;
        const char *d = header(r, "x-amz-date");
        if (d) {
            if (!copy_part(s->amz_date, sizeof s->amz_date, d, strlen(d)) ||
                !parse_amz_date(s->amz_date, &s->time)) {
                rc = failf(fail, KN_AUTH_INCOMPLETE, e,
                           "X-Amz-Date: '%s' is not YYYYMMDDTHHMMSSZ", d);
                goto out;
            }
        } else if ((d = header(r, "date"))) {
            if (!date_header(d, s->amz_date, &s->time)) {
                rc = failf(fail, KN_AUTH_INCOMPLETE, e, "Date: '%s' is not an RFC 1123 date",
                           d);
                goto out;
            }
        } else {
            rc = failf(fail, KN_AUTH_INCOMPLETE, e, "%s",
                       "the request has neither X-Amz-Date nor Date");
            goto out;
        }
        const char *tok = header(r, "x-amz-security-token");
        if (tok && !copy_part(s->session_token, sizeof s->session_token, tok, strlen(tok)) &&
            *tok) {
            rc = failf(fail, KN_AUTH_INCOMPLETE, e, "X-Amz-Security-Token: %s", "over-long");
            goto out;
        }
    } else if (qalgo) {
        s->presigned = true;
        static const char *const need[] = {"X-Amz-Credential", "X-Amz-Date",
                                           "X-Amz-SignedHeaders", "X-Amz-Signature"};
        for (size_t i = 0; i < sizeof need / sizeof need[0]; i++)
            if (!query_get(&q, need[i])) {
                rc = failf(fail, KN_AUTH_INCOMPLETE, e, "presigned URL: %s is missing",
                           need[i]);
                goto out;
            }
        if (strcmp(qalgo, ALGO)) {
            rc = failf(fail, KN_AUTH_INCOMPLETE, e, "X-Amz-Algorithm: '%s' is not supported",
                       qalgo);
            goto out;
        }
        const char *c = query_get(&q, "X-Amz-Credential");
        if ((rc = parse_credential(c, strlen(c), s, fail, e)))
            goto out;
        const char *d = query_get(&q, "X-Amz-Date");
        if (!copy_part(s->amz_date, sizeof s->amz_date, d, strlen(d)) ||
            !parse_amz_date(s->amz_date, &s->time)) {
            rc = failf(fail, KN_AUTH_INCOMPLETE, e, "X-Amz-Date: '%s' is not YYYYMMDDTHHMMSSZ",
                       d);
            goto out;
        }
        const char *sh = query_get(&q, "X-Amz-SignedHeaders");
        const char *sg = query_get(&q, "X-Amz-Signature");
        if (!copy_part(s->signed_headers, sizeof s->signed_headers, sh, strlen(sh)) ||
            !copy_part(s->signature, sizeof s->signature, sg, strlen(sg))) {
            rc = failf(fail, KN_AUTH_INCOMPLETE, e, "presigned URL: %s",
                       "SignedHeaders or Signature empty or over-long");
            goto out;
        }
        const char *x = query_get(&q, "X-Amz-Expires");
        if (x) {
            char *end;
            long v = strtol(x, &end, 10);
            if (!*x || *end || v < 1 || v > 604800) {
                rc = failf(fail, KN_AUTH_INCOMPLETE, e,
                           "X-Amz-Expires: '%s' is not in [1, 604800]", x);
                goto out;
            }
            s->expires_s = v;
        } else {
            s->expires_s = KN_AUTH_MAX_SKEW_S;
        }
        const char *tok = query_get(&q, "X-Amz-Security-Token");
        if (tok && *tok &&
            !copy_part(s->session_token, sizeof s->session_token, tok, strlen(tok))) {
            rc = failf(fail, KN_AUTH_INCOMPLETE, e, "X-Amz-Security-Token: %s", "over-long");
            goto out;
        }
    } else {
        rc = failf(fail, KN_AUTH_MISSING, e, "%s",
                   "the request has no Authorization header and is not presigned");
        goto out;
    }
    if ((rc = check_signed_headers(s, fail, e)) || (rc = check_signature(s, fail, e)))
        goto out;
    if (strncmp(s->scope_date, s->amz_date, 8)) {
        *fail = KN_AUTH_BAD_SCOPE;
        rc = kn_err_set(e, KN_INVALID,
                        "Date in Credential scope (%s) does not match the request's date (%.8s)",
                        s->scope_date, s->amz_date);
    }
out:
    query_free(&q);
    return rc;
}

/* ---- canonical request --------------------------------------------------- */

/* Whitespace as botocore trims and collapses header values (Python's
 * str.split(): space, \t \n \v \f \r and the separators \x1c-\x1f). */
static bool blank(char c)
{
    return c == ' ' || (c >= '\t' && c <= '\r') || (c >= 0x1c && c <= 0x1f);
}

/* Appends "name:value\n" for one signed header: every value of that name,
 * trimmed, inner whitespace runs collapsed, joined by ','. */
static kn_status canon_header(kn_buf *b, const kn_auth_request *r, const char *name, size_t nlen,
                              bool *found)
{
    kn_status rc = kn_buf_append(b, name, nlen);
    if (!rc)
        rc = kn_buf_append(b, ":", 1);
    bool first = true;
    *found = false;
    for (size_t i = 0; i < r->n_headers && !rc; i++) {
        const char *hn = r->headers[i].name;
        if (!hn || strlen(hn) != nlen || strncasecmp(hn, name, nlen))
            continue;
        *found = true;
        if (!first)
            rc = kn_buf_append(b, ",", 1);
        first = false;
        const char *v = r->headers[i].value ? r->headers[i].value : "";
        while (blank(*v))
            v++;
        bool space = false;
        for (; *v && !rc; v++) {
            if (blank(*v)) {
                space = true;
                continue;
            }
            if (space)
                rc = kn_buf_append(b, " ", 1);
            space = false;
            if (!rc)
                rc = kn_buf_append(b, v, 1);
        }
    }
    if (!rc)
        rc = kn_buf_append(b, "\n", 1);
    return rc;
}

/* The canonical URI of a raw path, as the SDKs sign it for every service
 * but S3: "." and ".." segments removed and runs of '/' folded (RFC 3986
 * 5.2.4), a trailing '/' kept, then the raw path URI-encoded again. */
static kn_status canon_path(kn_buf *b, const char *raw, kn_err *e)
{
    size_t n = raw ? strlen(raw) : 0;
    if (n > CANON_MAX)
        return KN_TOO_LARGE;
    char *out = malloc(n + 2);
    if (!out)
        return kn_err_set(e, KN_NOMEM, "path: out of memory");
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        size_t seg = strcspn(raw + i, "/");
        if (seg == 2 && raw[i] == '.' && raw[i + 1] == '.') {
            while (o > 0 && out[o - 1] != '/') /* drop the last segment */
                o--;
            if (o > 0)
                o--;
        } else if (seg && !(seg == 1 && raw[i] == '.')) {
            out[o++] = '/';
            memcpy(out + o, raw + i, seg);
            o += seg;
        }
        i += seg + (raw[i + seg] == '/');
    }
    if (o == 0 || (n && raw[n - 1] == '/'))
        out[o++] = '/';
    kn_status rc = encode(b, out, o, true);
    free(out);
    return rc;
}

static kn_status build(const kn_auth_request *r, const kn_auth_sig *s, kn_buf *canon,
                       char sts_hash[65], kn_err *e)
{
    kn_status rc = KN_OK;
    query q = {0};
    kn_auth_fail fail;
    /* method, path */
    if ((rc = kn_buf_appendf(canon, "%s\n", r->method ? r->method : "")))
        goto out;
    if ((rc = canon_path(canon, r->raw_path, e)) || (rc = kn_buf_append(canon, "\n", 1)))
        goto out;
    /* query: decoded, re-encoded, sorted; the signature itself is not signed */
    if ((rc = query_parse(r->raw_query, &q, &fail, e)))
        goto out;
    qparam *sorted = q.p;
    int n = 0;
    for (int i = 0; i < q.n; i++)
        if (!(s->presigned && !strcmp(q.p[i].k, "X-Amz-Signature")))
            sorted[n++] = q.p[i];
    qsort(sorted, (size_t)n, sizeof *sorted, cmp_param);
    for (int i = 0; i < n && !rc; i++) {
        if (i)
            rc = kn_buf_append(canon, "&", 1);
        if (!rc)
            rc = kn_buf_appendf(canon, "%s=%s", sorted[i].ek, sorted[i].ev);
    }
    if (rc || (rc = kn_buf_append(canon, "\n", 1)))
        goto out;
    /* headers */
    for (const char *p = s->signed_headers; *p && !rc;) {
        size_t nlen = strcspn(p, ";");
        bool found;
        rc = canon_header(canon, r, p, nlen, &found);
        p += nlen;
        if (*p == ';')
            p++;
    }
    if (rc || (rc = kn_buf_appendf(canon, "\n%s\n", s->signed_headers)))
        goto out;
    /* payload */
    const char *ph = header(r, "x-amz-content-sha256");
    char body_hash[65];
    if (!ph) {
        sha256_hex(r->body ? r->body : "", r->body ? r->body_len : 0, body_hash);
        ph = body_hash;
    }
    if ((rc = kn_buf_appendf(canon, "%s", ph)))
        goto out;
    sha256_hex(canon->data, canon->len, sts_hash);
out:
    query_free(&q);
    if (rc == KN_TOO_LARGE)
        kn_err_set(e, KN_TOO_LARGE, "canonical request over %u bytes", CANON_MAX);
    else if (rc && rc != KN_INVALID && rc != KN_NOMEM)
        kn_err_set(e, rc, "canonical request: %s", kn_status_name(rc));
    return rc;
}

static kn_status string_to_sign(const kn_auth_sig *s, const char *canon_hash, kn_buf *b)
{
    return kn_buf_appendf(b, "%s\n%s\n%s/%s/%s/aws4_request\n%s", ALGO, s->amz_date,
                          s->scope_date, s->region, s->service, canon_hash);
}

kn_status kn_auth_canonical(const kn_auth_request *r, const kn_auth_sig *s, kn_buf *canon,
                            kn_buf *to_sign, kn_err *e)
{
    char h[65];
    kn_status rc = build(r, s, canon, h, e);
    if (!rc && to_sign)
        rc = string_to_sign(s, h, to_sign);
    return rc;
}

/* The signing key HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region),
 * service), "aws4_request") changes once a day per (secret, region,
 * service): derived keys are kept in a small direct-mapped cache so that a
 * request costs one HMAC (over the string to sign) instead of five. An entry
 * matches only on the whole secret, date, region and service; it holds
 * nothing the identity cache of the caller does not already hold. */
enum { KEY_CACHE_SLOTS = 64, KEY_CACHE_SECRET_MAX = 128 };
typedef struct key_slot {
    bool used;
    char secret[KEY_CACHE_SECRET_MAX];
    char date[9];
    char region[33];
    char service[65];
    uint8_t key[32];
} key_slot;
static key_slot key_cache[KEY_CACHE_SLOTS];
static pthread_mutex_t key_cache_mu = PTHREAD_MUTEX_INITIALIZER;

static unsigned key_hash(const char *secret, const kn_auth_sig *s)
{
    uint32_t h = 2166136261u;
    const char *parts[4] = {secret, s->scope_date, s->region, s->service};
    for (int i = 0; i < 4; i++) {
        for (const unsigned char *p = (const unsigned char *)parts[i]; *p; p++)
            h = (h ^ *p) * 16777619u;
        h = (h ^ 0xff) * 16777619u;
    }
    return h % KEY_CACHE_SLOTS;
}

static bool key_slot_matches(const key_slot *k, const char *secret, const kn_auth_sig *s)
{
    return k->used && !strcmp(k->secret, secret) && !strcmp(k->date, s->scope_date) &&
           !strcmp(k->region, s->region) && !strcmp(k->service, s->service);
}

static bool signing_key(const kn_auth_sig *s, const char *secret, uint8_t key[32])
{
    size_t sl = strlen(secret);
    bool cacheable = sl < KEY_CACHE_SECRET_MAX;
    unsigned slot = cacheable ? key_hash(secret, s) : 0;
    if (cacheable) {
        pthread_mutex_lock(&key_cache_mu);
        bool hit = key_slot_matches(&key_cache[slot], secret, s);
        if (hit)
            memcpy(key, key_cache[slot].key, 32);
        pthread_mutex_unlock(&key_cache_mu);
        if (hit)
            return true;
    }
    char stack[256];
    char *k = sl + 5 <= sizeof stack ? stack : malloc(sl + 5);
    uint8_t a[32];
    if (!k)
        return false;
    memcpy(k, "AWS4", 4);
    memcpy(k + 4, secret, sl + 1);
    hmac(k, sl + 4, s->scope_date, strlen(s->scope_date), a);
    hmac(a, 32, s->region, strlen(s->region), key);
    hmac(key, 32, s->service, strlen(s->service), a);
    hmac(a, 32, "aws4_request", 12, key);
    OPENSSL_cleanse(k, sl + 4);
    OPENSSL_cleanse(a, sizeof a);
    if (k != stack)
        free(k);
    if (cacheable) {
        pthread_mutex_lock(&key_cache_mu);
        key_slot *ks = &key_cache[slot];
        OPENSSL_cleanse(ks, sizeof *ks);
        ks->used = true;
        memcpy(ks->secret, secret, sl + 1);
        snprintf(ks->date, sizeof ks->date, "%s", s->scope_date);
        snprintf(ks->region, sizeof ks->region, "%s", s->region);
        snprintf(ks->service, sizeof ks->service, "%s", s->service);
        memcpy(ks->key, key, 32);
        pthread_mutex_unlock(&key_cache_mu);
    }
    return true;
}

static void signature(const kn_auth_sig *s, const char *secret, const kn_buf *sts, char out[65])
{
    uint8_t key[32], a[32];
    if (!signing_key(s, secret, key)) {
        out[0] = 0;
        return;
    }
    hmac(key, 32, sts->data, sts->len, a);
    kn_hex(a, 32, out);
    OPENSSL_cleanse(key, sizeof key);
}

kn_status kn_auth_verify(const kn_auth_request *r, const kn_auth_sig *s, const char *secret,
                         double now, kn_auth_fail *fail, kn_err *e)
{
    *fail = KN_AUTH_OK;
    if (s->presigned) {
        if (now > s->time + (double)s->expires_s || s->time > now + KN_AUTH_MAX_SKEW_S) {
            *fail = KN_AUTH_EXPIRED;
            return kn_err_set(e, KN_INVALID, "Signature expired: the URL signed at %s was "
                              "valid for %ld s", s->amz_date, s->expires_s);
        }
    } else if (s->time < now - KN_AUTH_MAX_SKEW_S || s->time > now + KN_AUTH_MAX_SKEW_S) {
        *fail = KN_AUTH_EXPIRED;
        return kn_err_set(e, KN_INVALID,
                          "Signature expired: %s is more than 15 minutes from the server's time",
                          s->amz_date);
    }
    kn_buf canon, sts;
    kn_buf_init(&canon, CANON_MAX);
    kn_buf_init(&sts, 4096);
    char h[65], want[65];
    kn_status rc = build(r, s, &canon, h, e);
    if (!rc)
        rc = string_to_sign(s, h, &sts);
    if (!rc) {
        signature(s, secret, &sts, want);
        if (strlen(want) != 64) {
            rc = kn_err_set(e, KN_NOMEM, "signature: out of memory");
        } else if (CRYPTO_memcmp(want, s->signature, 64) != 0) {
            *fail = KN_AUTH_MISMATCH;
            rc = kn_err_set(e, KN_INVALID,
                            "The request signature we calculated does not match the signature "
                            "you provided. Check your AWS Secret Access Key and signing method.");
        } else {
            /* The signature covers the declared payload hash: the body must
             * be the one declared (UNSIGNED-PAYLOAD leaves it uncovered). */
            const char *ph = header(r, "x-amz-content-sha256");
            char body_hash[65];
            if (ph && strcmp(ph, "UNSIGNED-PAYLOAD")) {
                sha256_hex(r->body ? r->body : "", r->body ? r->body_len : 0, body_hash);
                if (strlen(ph) != 64 || strcasecmp(ph, body_hash)) {
                    *fail = KN_AUTH_MISMATCH;
                    rc = kn_err_set(e, KN_INVALID,
                                    "X-Amz-Content-SHA256 does not match the SHA-256 of the body");
                }
            }
        }
    }
    kn_buf_deinit(&canon);
    kn_buf_deinit(&sts);
    return rc;
}

/* ---- signing ------------------------------------------------------------- */

static bool never_signed(const char *n)
{
    static const char *const skip[] = {"authorization", "connection", "expect", "keep-alive",
                                       "proxy-authenticate", "proxy-authorization", "te",
                                       "trailer", "transfer-encoding", "upgrade", "user-agent",
                                       "x-amzn-trace-id", "content-length"};
    for (size_t i = 0; i < sizeof skip / sizeof skip[0]; i++)
        if (!strcasecmp(n, skip[i]))
            return true;
    return false;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

kn_status kn_auth_sign(const kn_auth_request *r, const char *access_key, const char *secret,
                       const char *region, const char *service, char *out, size_t out_size,
                       kn_err *e)
{
    kn_auth_sig s;
    memset(&s, 0, sizeof s);
    const char *d = header(r, "x-amz-date");
    if (!d || !copy_part(s.amz_date, sizeof s.amz_date, d, strlen(d)) ||
        !parse_amz_date(s.amz_date, &s.time))
        return kn_err_set(e, KN_INVALID, "sign: the request needs X-Amz-Date (YYYYMMDDTHHMMSSZ)");
    if (!header(r, "host"))
        return kn_err_set(e, KN_INVALID, "sign: the request needs a Host header");
    if (!copy_part(s.access_key, sizeof s.access_key, access_key, strlen(access_key)) ||
        !copy_part(s.region, sizeof s.region, region, strlen(region)) ||
        !copy_part(s.service, sizeof s.service, service, strlen(service)))
        return kn_err_set(e, KN_INVALID, "sign: empty or over-long key, region or service");
    memcpy(s.scope_date, s.amz_date, 8);
    /* signed headers: lower-cased, sorted, unique */
    char names[KN_AUTH_MAX_SIGNED][128];
    const char *sorted[KN_AUTH_MAX_SIGNED];
    int n = 0;
    for (size_t i = 0; i < r->n_headers; i++) {
        const char *hn = r->headers[i].name;
        if (!hn || never_signed(hn))
            continue;
        size_t l = strlen(hn);
        if (l == 0 || l >= 128 || n == KN_AUTH_MAX_SIGNED) {
            char buf[72];
            return kn_err_set(e, KN_INVALID, "sign: header '%s' is empty, over-long or one too "
                              "many", excerpt(hn, buf));
        }
        for (size_t j = 0; j <= l; j++)
            names[n][j] = (char)tolower((unsigned char)hn[j]);
        bool dup = false;
        for (int j = 0; j < n; j++)
            dup |= !strcmp(names[j], names[n]);
        if (!dup) {
            sorted[n] = names[n];
            n++;
        }
    }
    qsort(sorted, (size_t)n, sizeof *sorted, cmp_str);
    size_t used = 0;
    for (int i = 0; i < n; i++) {
        int w = snprintf(s.signed_headers + used, sizeof s.signed_headers - used, "%s%s",
                         i ? ";" : "", sorted[i]);
        if (w < 0 || (size_t)w >= sizeof s.signed_headers - used)
            return kn_err_set(e, KN_INVALID, "sign: too many signed headers");
        used += (size_t)w;
    }
    kn_buf canon, sts;
    kn_buf_init(&canon, CANON_MAX);
    kn_buf_init(&sts, 4096);
    char h[65], sig[65];
    kn_status rc = build(r, &s, &canon, h, e);
    if (!rc)
        rc = string_to_sign(&s, h, &sts);
    if (!rc) {
        signature(&s, secret, &sts, sig);
        int w = snprintf(out, out_size,
                         "%s Credential=%s/%s/%s/%s/aws4_request, SignedHeaders=%s, Signature=%s",
                         ALGO, s.access_key, s.scope_date, s.region, s.service, s.signed_headers,
                         sig);
        if (w < 0 || (size_t)w >= out_size)
            rc = kn_err_set(e, KN_INVALID, "sign: output buffer of %zu bytes is too small",
                            out_size);
    }
    kn_buf_deinit(&canon);
    kn_buf_deinit(&sts);
    return rc;
}

/* ---- errors -------------------------------------------------------------- */

const char *kn_auth_fail_code(kn_auth_fail f, kn_auth_proto p)
{
    bool q = p == KN_AUTH_PROTO_QUERY;
    switch (f) {
    case KN_AUTH_OK:
        return "";
    case KN_AUTH_MISSING:
        return q ? "MissingAuthenticationToken" : "MissingAuthenticationTokenException";
    case KN_AUTH_INCOMPLETE:
    case KN_AUTH_BAD_SCOPE:
        return q ? "IncompleteSignature" : "IncompleteSignatureException";
    case KN_AUTH_EXPIRED:
        return q ? "RequestExpired" : "InvalidSignatureException";
    case KN_AUTH_MISMATCH:
        return q ? "SignatureDoesNotMatch" : "InvalidSignatureException";
    }
    return "InvalidSignatureException";
}

int kn_auth_fail_http(kn_auth_fail f, kn_auth_proto p)
{
    switch (f) {
    case KN_AUTH_OK:
        return 200;
    case KN_AUTH_INCOMPLETE:
    case KN_AUTH_BAD_SCOPE:
        return 400;
    case KN_AUTH_EXPIRED:
        return p == KN_AUTH_PROTO_QUERY ? 400 : 403;
    default:
        return 403;
    }
}
