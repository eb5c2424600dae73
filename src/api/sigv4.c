/* Parsing the SigV4 Authorization header:
 *
 *   AWS4-HMAC-SHA256 Credential=AKID/20261125/us-east-1/sagemaker/aws4_request,
 *       SignedHeaders=content-type;host;x-amz-date, Signature=<64 hex>
 *
 * Components are separated by commas with optional spaces, in any order,
 * each exactly once. Only the parts are checked here (their syntax and
 * lengths); whether the signature is right is the auth module's question.
 * Pure function of its input: thread-safe.
 */
#include "api_int.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#define MAX_HEADER 4096

static bool is_token_char(char c)
{
    return isalnum((unsigned char)c) || c == '-' || c == '_' || c == '.';
}

/* Copies [s, s+n) into out (size cap) as a string; false if it does not fit. */
static bool copy(char *out, size_t cap, const char *s, size_t n)
{
    if (n >= cap)
        return false;
    memcpy(out, s, n);
    out[n] = '\0';
    return true;
}

static kn_status parse_credential(const char *v, size_t n, kn_sigv4_auth *out, kn_err *e)
{
    /* AKID/date/region/service/aws4_request */
    const char *part[5];
    size_t len[5];
    int k = 0;
    const char *p = v, *end = v + n;
    while (k < 5) {
        const char *slash = memchr(p, '/', (size_t)(end - p));
        const char *stop = slash ? slash : end;
        part[k] = p;
        len[k] = (size_t)(stop - p);
        k++;
        if (!slash)
            break;
        p = slash + 1;
    }
    if (k != 5 || part[4] + len[4] != end)
        return kn_err_set(e, KN_BAD_FORMAT,
                          "Credential should have 5 parts separated by '/' "
                          "(AKID/yyyymmdd/region/service/aws4_request)");
    if (len[0] == 0 || !copy(out->access_key, sizeof out->access_key, part[0], len[0]))
        return kn_err_set(e, KN_BAD_FORMAT, "the access key id in Credential is empty or too long");
    for (size_t i = 0; i < len[0]; i++)
        if (!isalnum((unsigned char)part[0][i]))
            return kn_err_set(e, KN_BAD_FORMAT,
                              "the access key id in Credential has a character other than "
                              "letters and digits");
    if (len[1] != 8)
        return kn_err_set(e, KN_BAD_FORMAT, "the date in Credential is not yyyymmdd");
    for (int i = 0; i < 8; i++)
        if (!isdigit((unsigned char)part[1][i]))
            return kn_err_set(e, KN_BAD_FORMAT, "the date in Credential is not yyyymmdd");
    copy(out->date, sizeof out->date, part[1], 8);
    if (len[2] == 0 || !copy(out->region, sizeof out->region, part[2], len[2]))
        return kn_err_set(e, KN_BAD_FORMAT, "the region in Credential is empty or too long");
    if (len[3] == 0 || !copy(out->service, sizeof out->service, part[3], len[3]))
        return kn_err_set(e, KN_BAD_FORMAT, "the service in Credential is empty or too long");
    for (size_t i = 0; i < len[2]; i++)
        if (!is_token_char(part[2][i]))
            return kn_err_set(e, KN_BAD_FORMAT, "the region in Credential has a bad character");
    for (size_t i = 0; i < len[3]; i++)
        if (!is_token_char(part[3][i]))
            return kn_err_set(e, KN_BAD_FORMAT, "the service in Credential has a bad character");
    if (len[4] != 12 || memcmp(part[4], "aws4_request", 12) != 0)
        return kn_err_set(e, KN_BAD_FORMAT,
                          "Credential should be scoped with a valid terminator: 'aws4_request'");
    return KN_OK;
}

static kn_status parse_signed_headers(const char *v, size_t n, kn_sigv4_auth *out, kn_err *e)
{
    if (n == 0 || !copy(out->signed_headers, sizeof out->signed_headers, v, n))
        return kn_err_set(e, KN_BAD_FORMAT, "SignedHeaders is empty or too long");
    int count = 1;
    bool host = false;
    const char *start = v;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || v[i] == ';') {
            size_t len = (size_t)(v + i - start);
            if (len == 0)
                return kn_err_set(e, KN_BAD_FORMAT, "SignedHeaders has an empty header name");
            if (len == 4 && memcmp(start, "host", 4) == 0)
                host = true;
            if (i < n) {
                count++;
                start = v + i + 1;
            }
            continue;
        }
        char c = v[i];
        if (!(islower((unsigned char)c) || isdigit((unsigned char)c) || c == '-' || c == '_' ||
              c == '.'))
            return kn_err_set(e, KN_BAD_FORMAT,
                              "SignedHeaders must list lower-case header names separated by ';'");
    }
    if (count > KN_SIGV4_MAX_SIGNED)
        return kn_err_set(e, KN_BAD_FORMAT, "SignedHeaders lists more than %d headers",
                          KN_SIGV4_MAX_SIGNED);
    if (!host)
        return kn_err_set(e, KN_BAD_FORMAT, "SignedHeaders must include 'host'");
    out->n_signed = count;
    return KN_OK;
}

kn_status kn_api__sigv4_parse(const char *value, size_t len, kn_sigv4_auth *out, kn_err *e)
{
    memset(out, 0, sizeof *out);
    if (len > MAX_HEADER)
        len = MAX_HEADER;
    size_t n = strnlen(value, len);
    const char *p = value, *end = value + n;
    while (p < end && *p == ' ')
        p++;
    static const char algo[] = "AWS4-HMAC-SHA256";
    size_t alen = sizeof algo - 1;
    const char *sp = memchr(p, ' ', (size_t)(end - p));
    size_t first = sp ? (size_t)(sp - p) : (size_t)(end - p);
    if (first != alen || memcmp(p, algo, alen) != 0)
        return kn_err_set(e, KN_INVALID,
                          "Authorization header requires the AWS4-HMAC-SHA256 algorithm");
    p += alen;
    bool have_cred = false, have_sh = false, have_sig = false;
    while (p < end) {
        while (p < end && (*p == ' ' || *p == ','))
            p++;
        if (p == end)
            break;
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *stop = comma ? comma : end;
        while (stop > p && stop[-1] == ' ')
            stop--;
        const char *eq = memchr(p, '=', (size_t)(stop - p));
        if (!eq)
            return kn_err_set(e, KN_BAD_FORMAT,
                              "Authorization header component '%.*s' is not 'Name=value'",
                              (int)((stop - p) > 40 ? 40 : (stop - p)), p);
        size_t klen = (size_t)(eq - p);
        const char *v = eq + 1;
        size_t vlen = (size_t)(stop - v);
        kn_status s;
        if (klen == 10 && memcmp(p, "Credential", 10) == 0) {
            if (have_cred)
                return kn_err_set(e, KN_BAD_FORMAT, "Authorization header repeats Credential");
            if ((s = parse_credential(v, vlen, out, e)))
                return s;
            have_cred = true;
        } else if (klen == 13 && memcmp(p, "SignedHeaders", 13) == 0) {
            if (have_sh)
                return kn_err_set(e, KN_BAD_FORMAT, "Authorization header repeats SignedHeaders");
            if ((s = parse_signed_headers(v, vlen, out, e)))
                return s;
            have_sh = true;
        } else if (klen == 9 && memcmp(p, "Signature", 9) == 0) {
            if (have_sig)
                return kn_err_set(e, KN_BAD_FORMAT, "Authorization header repeats Signature");
            if (vlen != 64)
                return kn_err_set(e, KN_BAD_FORMAT, "Signature must be 64 hex digits");
            for (size_t i = 0; i < 64; i++)
                if (!isxdigit((unsigned char)v[i]))
                    return kn_err_set(e, KN_BAD_FORMAT, "Signature must be 64 hex digits");
            for (size_t i = 0; i < 64; i++)
                out->signature[i] = (char)tolower((unsigned char)v[i]);
            out->signature[64] = '\0';
            have_sig = true;
        } else {
            return kn_err_set(e, KN_BAD_FORMAT,
                              "Authorization header has an unknown component '%.*s'",
                              (int)(klen > 40 ? 40 : klen), p);
        }
        p = comma ? comma + 1 : end;
    }
    if (!have_cred)
        return kn_err_set(e, KN_BAD_FORMAT, "Authorization header requires a 'Credential' parameter");
    if (!have_sh)
        return kn_err_set(e, KN_BAD_FORMAT,
                          "Authorization header requires a 'SignedHeaders' parameter");
    if (!have_sig)
        return kn_err_set(e, KN_BAD_FORMAT, "Authorization header requires a 'Signature' parameter");
    return KN_OK;
}
