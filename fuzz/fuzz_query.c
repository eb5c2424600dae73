/* Fuzz target for the Query protocol (IAM and STS): the form body decoder
 * (kn_api__form_get), the Query route lookup and every IAM/STS handler —
 * parameter reading, policy documents, the IAM store and the XML answers —
 * against a real platform and IAM store in a temp data dir. Signatures are
 * the front door's (fuzzed by fuzz_sigv4): here the call runs as the
 * administrator, as an authorized call would.
 *
 * Input: the raw form body ("Action=CreateRole&RoleName=...").
 * Invariants (abort on violation): a response status in 200..599; a 200
 * answer is an XML document of the operation's <XResponse>; an error has an
 * AWS error code and a one-line message. */
#include "fuzz_common.h"
#include "api/api_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static kn_platform *plat;
static kn_iam *iam;
static kn_api *api;
static char root[512];
static kn_iam_identity admin;

static void cleanup(void)
{
    kn_api_free(api);
    kn_iam_close(iam);
    kn_fuzz_platform_close(plat, root);
}

static bool setup(void)
{
    if (api)
        return true;
    if (!kn_fuzz_platform_open("query", root, sizeof root, &plat))
        return false;
    kn_err e;
    bool created;
    char path[1024];
    if (kn_iam_open(plat, &iam, &e) ||
        kn_iam_bootstrap(iam, "AKIDFUZZ", "fuzz-secret", &created, path, sizeof path, &e) ||
        kn_iam_lookup_key(iam, "AKIDFUZZ", &admin, &e)) {
        fprintf(stderr, "setup: %s\n", e.msg);
        return false;
    }
    kn_api_params ap = kn_api_default_params();
    ap.iam = iam;
    if (kn_api_new(plat, &ap, &api, &e))
        return false;
    atexit(cleanup);
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!setup())
        abort();
    /* the decoder alone, on a few keys */
    static const char *const keys[] = {"Action", "RoleName", "PolicyDocument", "", "="};
    char small[64];
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (kn_api__form_get((const char *)data, size, keys[i], small, sizeof small) &&
            strlen(small) >= sizeof small)
            abort();

    kn_api_header h[1] = {{"Content-Type", "application/x-www-form-urlencoded; charset=utf-8"}};
    kn_api_request req = {.method = "POST", .path = "/", .headers = h, .n_headers = 1,
                          .body = data, .body_len = size};
    kn_api_match m;
    kn_api__route_find(&req, NULL, &m);
    if (!m.route)
        return 0;
    if (m.route->proto != KN_PROTO_QUERY)
        abort();
    kn_api_response resp;
    kn_api_response_init(&resp);
    snprintf(resp.request_id, sizeof resp.request_id, "fuzz");
    kn_api_call call;
    memset(&call, 0, sizeof call);
    call.api = api;
    call.req = &req;
    call.match = &m;
    call.resp = &resp;
    call.caller = &admin;
    call.input = json_object();
    kn_err_clear(&call.err);
    kn_status s = m.route->handler(&call);
    if (s == KN_OK) {
        char open[160];
        snprintf(open, sizeof open, "<%sResponse xmlns=", m.route->op);
        if (!call.raw_response || resp.status != 200 || resp.body.len < strlen(open) ||
            memcmp(resp.body.data, open, strlen(open)) != 0)
            abort();
    } else {
        int http = call.err_http ? call.err_http : kn_status_http(call.err.code);
        if (http < 400 || http > 599 || !call.err.msg[0] || strchr(call.err.msg, '\n'))
            abort();
    }
    json_decref(call.input);
    json_decref(call.output);
    json_decref(call.err_extra);
    kn_api_response_deinit(&resp);
    return 0;
}
