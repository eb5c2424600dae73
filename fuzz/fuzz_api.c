/* Fuzz target for the front door's parsing of outside input: the SigV4
 * Authorization header parser, form (Query) decoding, path decoding and
 * kn_api_handle itself on a JSON 1.1 request, against a real platform in a
 * temp data dir (no fleet, so nothing is spawned).
 *
 * Input layout (text, lines split at the first two '\n'):
 *   line 1: the X-Amz-Target value ("-" = none: routed as REST/Query)
 *   line 2: the Authorization header value ("-" = none)
 *   rest:   the request body
 * The target also doubles as the REST path when it starts with '/'.
 * Invariants checked (abort on violation): the parser either succeeds with
 * NUL-terminated, in-bounds fields or leaves a message; every response has a
 * status in 200..599 and, for JSON protocols, a body that parses as a JSON
 * object with "__type" on errors. */
#include "fuzz_common.h"
#include "api/api_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The platform outlives every input (opening SQLite per input would be all
 * the fuzzer measures); the fuzzer and the replay runner are single-threaded. */
static kn_platform *plat;
static kn_api *api;
static char root[512];

static void cleanup(void)
{
    kn_api_free(api);
    kn_fuzz_platform_close(plat, root);
}

static bool setup(void)
{
    if (api)
        return true;
    if (!kn_fuzz_platform_open("api", root, sizeof root, &plat))
        return false;
    kn_err e;
    if (kn_api_new(plat, NULL, &api, &e))
        return false;
    atexit(cleanup);
    return true;
}

static char *line(const uint8_t **p, const uint8_t *end)
{
    const uint8_t *nl = memchr(*p, '\n', (size_t)(end - *p));
    const uint8_t *stop = nl ? nl : end;
    size_t n = (size_t)(stop - *p);
    char *s = malloc(n + 1);
    memcpy(s, *p, n);
    s[n] = '\0';
    *p = nl ? nl + 1 : end;
    return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!setup())
        abort();
    const uint8_t *p = data, *end = data + size;
    char *target = line(&p, end);
    char *authz = line(&p, end);

    kn_sigv4_auth a;
    kn_err e;
    kn_err_clear(&e);
    if (kn_api__sigv4_parse(authz, strlen(authz), &a, &e) == KN_OK) {
        if (strnlen(a.service, sizeof a.service) == sizeof a.service ||
            strnlen(a.signature, sizeof a.signature) != 64 || !a.service[0] || !a.region[0] ||
            a.n_signed < 1 || a.n_signed > KN_SIGV4_MAX_SIGNED)
            abort();
    } else if (!e.msg[0]) {
        abort();
    }
    char out[256];
    kn_api__form_get((const char *)p, (size_t)(end - p), "Action", out, sizeof out);
    kn_api__url_decode(target, out, sizeof out);

    bool rest = target[0] == '/';
    kn_api_header h[3];
    size_t nh = 0;
    if (!rest && strcmp(target, "-") != 0)
        h[nh++] = (kn_api_header){"X-Amz-Target", target};
    if (strcmp(authz, "-") != 0)
        h[nh++] = (kn_api_header){"Authorization", authz};
    h[nh++] = (kn_api_header){"Content-Type", rest ? "image/jpeg"
                                                   : strcmp(target, "-") == 0
                                                         ? "application/x-www-form-urlencoded"
                                                         : "application/x-amz-json-1.1"};
    kn_api_request req = {.method = "POST",
                          .path = rest ? target : "/",
                          .headers = h,
                          .n_headers = nh,
                          .body = p,
                          .body_len = (size_t)(end - p)};
    kn_api_response r;
    kn_api_response_init(&r);
    kn_api_handle(api, &req, &r);
    if (r.status < 200 || r.status > 599)
        abort();
    if (strstr(r.content_type, "json")) {
        json_t *j = json_loadb((const char *)r.body.data, r.body.len, 0, NULL);
        if (!json_is_object(j) || (r.status >= 400 && !json_object_get(j, "__type")))
            abort();
        json_decref(j);
    }
    kn_api_response_deinit(&r);
    free(target);
    free(authz);
    return 0;
}
