/* Fuzz target for SigV4: the input is split at its first two NUL bytes into
 * an Authorization header value, a raw query string and a raw path (the
 * body is the whole input), then parsed, canonicalised and verified against
 * a fixed secret; the same bytes also go through signing as a header value.
 * Promises checked (abort when broken): a failure always has a kind and a
 * one-line message; a parse success yields a NUL-terminated, well-formed
 * signature (64 hex digits, 8-digit scope date); kn_auth_sign's output, when
 * it succeeds, verifies. */
#include "kennel/auth.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void one_line(const kn_err *e)
{
    if (e->msg[0] == '\0')
        abort();
    for (const char *c = e->msg; *c; c++) /* one printable line */
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 16384)
        return 0;
    char *buf = malloc(size + 3);
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    buf[size] = buf[size + 1] = buf[size + 2] = 0;
    char *authz = buf;
    char *query = authz + strlen(authz) + 1;
    if (query > buf + size)
        query = buf + size + 1;
    char *path = query + strlen(query) + 1;
    if (path > buf + size + 1)
        path = buf + size + 2;

    kn_auth_header h[4] = {{"Host", "127.0.0.1:8080"},
                           {"X-Amz-Date", "20261125T091709Z"},
                           {"Authorization", authz},
                           {"X-Amz-Target", query}};
    kn_auth_request r = {.method = "POST", .raw_path = path, .raw_query = query,
                         .headers = h, .n_headers = 4, .body = data, .body_len = size};
    kn_auth_sig s;
    kn_auth_fail f;
    kn_err e;
    kn_err_clear(&e);
    if (kn_auth_parse(&r, &s, &f, &e) != KN_OK) {
        if (f == KN_AUTH_OK)
            abort();
        one_line(&e);
    } else {
        if (strlen(s.signature) != 64 || strlen(s.scope_date) != 8 || strlen(s.amz_date) != 16)
            abort();
        kn_err_clear(&e);
        if (kn_auth_verify(&r, &s, "secret", 1795598229.0, &f, &e) != KN_OK) {
            if (f == KN_AUTH_OK && e.code != KN_NOMEM && e.code != KN_TOO_LARGE)
                abort();
            one_line(&e);
        }
    }

    /* Sign with the fuzzed bytes as a header value, then verify. */
    kn_auth_header h2[3] = {{"Host", "h"}, {"X-Amz-Date", "20261125T091709Z"}, {"X-Fuzz", authz}};
    kn_auth_request r2 = {.method = "GET", .raw_path = path, .raw_query = query,
                          .headers = h2, .n_headers = 3, .body = data, .body_len = size};
    char out[2048];
    kn_err_clear(&e);
    if (kn_auth_sign(&r2, "AKID", "secret", "us-east-1", "lambda", out, sizeof out, &e) ==
        KN_OK) {
        kn_auth_header h3[4] = {h2[0], h2[1], h2[2], {"Authorization", out}};
        r2.headers = h3;
        r2.n_headers = 4;
        if (kn_auth_parse(&r2, &s, &f, &e) == KN_OK &&
            kn_auth_verify(&r2, &s, "secret", 1795598229.0, &f, &e) != KN_OK &&
            e.code != KN_TOO_LARGE && f != KN_AUTH_INCOMPLETE)
            abort();
    }
    free(buf);
    return 0;
}
