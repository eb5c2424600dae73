/* dog-breed: the reference project's function in C, on kn_runtime.
 *
 * Event: {"url": "http://..."} or {"image": "<base64 JPEG/PNG>"} (also
 * {"b64": ...}), passed unchanged as the JSON body of SageMaker Runtime
 * InvokeEndpoint on the endpoint named by ENDPOINT_NAME (default
 * "dog-ep") at $AWS_ENDPOINT_URL, signed with Signature Version 4 from the
 * execution role's credentials in the environment (AWS_ACCESS_KEY_ID,
 * AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION).
 *
 * Answer: {"statusCode": 200, "headers": {"Content-Type": "text/plain",
 * "Access-Control-Allow-Origin": "*"}, "body": "<the endpoint's JSON>"}.
 * An event with none of the members, or an endpoint error, is a handler
 * error (Function.BadEvent / Function.EndpointError) naming what failed.
 */
#include "kn_runtime.h"

#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static CURL *curl; /* kept across warm invocations: the connection stays open */

static void hexs(const unsigned char *p, size_t n, char *out)
{
    static const char d[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = d[p[i] >> 4];
        out[2 * i + 1] = d[p[i] & 15];
    }
    out[2 * n] = 0;
}

static void sha_hex(const void *p, size_t n, char out[65])
{
    unsigned char md[32];
    SHA256(p, n, md);
    hexs(md, 32, out);
}

static void hmac(const void *key, size_t kl, const char *msg, unsigned char out[32])
{
    unsigned int ol = 32;
    HMAC(EVP_sha256(), key, (int)kl, (const unsigned char *)msg, strlen(msg), out, &ol);
}

/* Authorization header value for POST `path` with `body` to `host`. */
static void sign(const char *host, const char *path, const char *ctype, const char *body,
                 size_t blen, const char *amzdate, const char *region, const char *akid,
                 const char *secret, const char *token, char *auth, size_t an)
{
    char date[9];
    memcpy(date, amzdate, 8);
    date[8] = 0;
    char body_hash[65];
    sha_hex(body, blen, body_hash);
    char canon[4096];
    const char *signed_headers =
        token ? "content-type;host;x-amz-date;x-amz-security-token" : "content-type;host;x-amz-date";
    snprintf(canon, sizeof canon,
             "POST\n%s\n\ncontent-type:%s\nhost:%s\nx-amz-date:%s\n%s%s%s\n%s\n%s", path, ctype,
             host, amzdate, token ? "x-amz-security-token:" : "", token ? token : "",
             token ? "\n" : "", signed_headers, body_hash);
    char canon_hash[65];
    sha_hex(canon, strlen(canon), canon_hash);
    char scope[128], sts[512];
    snprintf(scope, sizeof scope, "%s/%s/sagemaker/aws4_request", date, region);
    snprintf(sts, sizeof sts, "AWS4-HMAC-SHA256\n%s\n%s\n%s", amzdate, scope, canon_hash);
    char k0[300];
    snprintf(k0, sizeof k0, "AWS4%s", secret);
    unsigned char k1[32], k2[32], k3[32], k4[32], sig[32];
    hmac(k0, strlen(k0), date, k1);
    hmac(k1, 32, region, k2);
    hmac(k2, 32, "sagemaker", k3);
    hmac(k3, 32, "aws4_request", k4);
    hmac(k4, 32, sts, sig);
    char sighex[65];
    hexs(sig, 32, sighex);
    snprintf(auth, an, "AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, Signature=%s", akid,
             scope, signed_headers, sighex);
}

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    kn_buf *b = ud;
    return kn_runtime_append(b, p, size * n) ? 0 : size * n;
}

static int handler(const char *event, size_t len, kn_context *ctx, kn_buf *out)
{
    if (!strstr(event, "\"url\"") && !strstr(event, "\"image\"") && !strstr(event, "\"b64\"")) {
        ctx->error_type = "Function.BadEvent";
        return kn_runtime_appendf(out, "the event needs \"url\" or \"image\" (base64)") ? -1 : 1;
    }
    const char *base = getenv("AWS_ENDPOINT_URL");
    const char *ep = getenv("ENDPOINT_NAME");
    const char *region = getenv("AWS_REGION");
    const char *akid = getenv("AWS_ACCESS_KEY_ID"), *secret = getenv("AWS_SECRET_ACCESS_KEY");
    const char *token = getenv("AWS_SESSION_TOKEN");
    if (!base || !akid || !secret) {
        ctx->error_type = "Function.Configuration";
        return kn_runtime_appendf(out, "AWS_ENDPOINT_URL and credentials must be set") ? -1 : 1;
    }
    if (!ep || !*ep)
        ep = "dog-ep";
    if (!region || !*region)
        region = "us-east-1";
    if (token && !*token)
        token = NULL;
    const char *hs = strstr(base, "://");
    hs = hs ? hs + 3 : base;
    char host[256];
    snprintf(host, sizeof host, "%.*s", (int)strcspn(hs, "/"), hs);
    char path[400], url[700];
    snprintf(path, sizeof path, "/endpoints/%s/invocations", ep);
    snprintf(url, sizeof url, "%.*s%s", (int)(hs - base) + (int)strlen(host), base, path);
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    char amzdate[20];
    strftime(amzdate, sizeof amzdate, "%Y%m%dT%H%M%SZ", &tm);
    const char *ctype = "application/json";
    char auth[600];
    sign(host, path, ctype, event, len, amzdate, region, akid, secret, token, auth, sizeof auth);
    char h_auth[700], h_date[64], h_tok[2200], h_ct[64];
    snprintf(h_auth, sizeof h_auth, "Authorization: %s", auth);
    snprintf(h_date, sizeof h_date, "X-Amz-Date: %s", amzdate);
    snprintf(h_ct, sizeof h_ct, "Content-Type: %s", ctype);
    struct curl_slist *hl = NULL;
    hl = curl_slist_append(hl, h_auth);
    hl = curl_slist_append(hl, h_date);
    hl = curl_slist_append(hl, h_ct);
    hl = curl_slist_append(hl, "Accept: application/json");
    hl = curl_slist_append(hl, "Expect:");
    if (token) {
        snprintf(h_tok, sizeof h_tok, "X-Amz-Security-Token: %s", token);
        hl = curl_slist_append(hl, h_tok);
    }
    kn_buf resp = {0};
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, event);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, (long)len);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &resp);
    long left = (long)kn_runtime_remaining_ms(ctx);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, left > 0 ? left : 1L);
    CURLcode cc = curl_easy_perform(curl);
    long status = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(hl);
    int rc;
    if (cc != CURLE_OK || status != 200) {
        ctx->error_type = "Function.EndpointError";
        rc = kn_runtime_appendf(out, "InvokeEndpoint %s: %s %ld: %.*s", ep,
                                cc != CURLE_OK ? curl_easy_strerror(cc) : "HTTP", status,
                                (int)(resp.len > 400 ? 400 : resp.len),
                                resp.data ? (const char *)resp.data : "")
                 ? -1
                 : 1;
    } else {
        fprintf(stderr, "dog-breed: %s answered %zu bytes\n", ep, resp.len);
        rc = kn_runtime_appendf(out, "{\"statusCode\":200,\"headers\":{\"Content-Type\":"
                                     "\"text/plain\",\"Access-Control-Allow-Origin\":\"*\"},"
                                     "\"body\":") ||
                     kn_runtime_append_json_string(out, (const char *)resp.data, resp.len) ||
                     kn_runtime_append(out, "}", 1)
                 ? -1
                 : 0;
    }
    free(resp.data);
    return rc;
}

int main(void)
{
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0 || !(curl = curl_easy_init()))
        return kn_runtime_init_error("Runtime.InitError", "cannot initialise libcurl");
    int rc = kn_runtime_main(handler);
    curl_easy_cleanup(curl);
    curl_global_cleanup();
    return rc;
}
