/* Every request captured from the real clients (../shared/wire/captures:
 * AWS CLI v2, two boto3s, the JS SDK v3) goes through the daemon's front
 * door with IAM on — kn_api_handle with the administrator key AKIDEXAMPLE
 * and the README's secret — with the clock set to the capture's X-Amz-Date
 * (the 15-minute check is the only thing disabled). None may fail
 * authentication or authorization: whatever the answer (a missing endpoint,
 * an operation this daemon lacks), it is never a signature, token or access
 * error (AssumeRole's refusal by the role's trust policy excepted). The same requests with one byte of the body changed fail as
 * InvalidSignatureException / SignatureDoesNotMatch. The session-token
 * capture (074, ASIAEXAMPLETEMP) is unknown to this daemon's IAM and must be
 * refused as an unrecognized key. */
#include "kn_test.h"

#include "api_int.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static char tmpdir[256];
static kn_platform *plat;
static kn_iam *iam;

static int b64(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    return c == '+' ? 62 : c == '/' ? 63 : -1;
}

static size_t b64_decode(const char *s, size_t n, uint8_t *out)
{
    size_t o = 0;
    unsigned acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64(s[i]);
        if (v < 0)
            continue;
        acc = acc << 6 | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (uint8_t)(acc >> bits);
        }
    }
    return o;
}

static bool auth_error(const char *code)
{
    static const char *const bad[] = {
        "InvalidSignatureException", "SignatureDoesNotMatch", "UnrecognizedClientException",
        "InvalidClientTokenId", "IncompleteSignatureException", "IncompleteSignature",
        "MissingAuthenticationTokenException", "MissingAuthenticationToken",
        "ExpiredTokenException", "ExpiredToken", "AccessDeniedException", "AccessDenied",
        "RequestExpired"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (!strcmp(code, bad[i]))
            return true;
    return false;
}

/* One capture: method, raw path and query, every header, the body. */
typedef struct capture {
    char method[16], path[1024], *query;
    kn_api_header h[48];
    char names[48][128], values[48][2200];
    size_t nh;
    uint8_t *body;
    size_t body_len;
    double when;
} capture;

static bool parse(const char *text, capture *c)
{
    memset(c, 0, sizeof *c);
    const char *head = strstr(text, "=== RAW REQUEST HEAD");
    const char *bodyhdr = head ? strstr(head, "=== BODY:") : NULL;
    if (!head || !bodyhdr)
        return false;
    const char *line = strchr(head, '\n') + 1;
    if (sscanf(line, "%15s %1023s", c->method, c->path) != 2)
        return false;
    char *qm = strchr(c->path, '?');
    if (qm) {
        *qm = 0;
        c->query = qm + 1;
    }
    for (line = strchr(line, '\n') + 1; line < bodyhdr && *line != '\n';
         line = strchr(line, '\n') + 1) {
        const char *colon = strchr(line, ':');
        size_t len = strcspn(line, "\n");
        if (!colon || colon > line + len || c->nh == 48)
            continue;
        const char *v = colon + 1;
        while (*v == ' ')
            v++;
        snprintf(c->names[c->nh], 128, "%.*s", (int)(colon - line), line);
        snprintf(c->values[c->nh], 2200, "%.*s", (int)(line + len - v), v);
        c->h[c->nh] = (kn_api_header){c->names[c->nh], c->values[c->nh]};
        if (!strcasecmp(c->names[c->nh], "X-Amz-Date")) {
            struct tm tm;
            memset(&tm, 0, sizeof tm);
            if (strptime(c->values[c->nh], "%Y%m%dT%H%M%SZ", &tm))
                c->when = (double)timegm(&tm);
        }
        c->nh++;
    }
    size_t n = 0;
    char enc[32] = "";
    if (sscanf(bodyhdr, "=== BODY: %zu bytes, framing=%*[^,], encoding in this file=%31[^,]", &n,
               enc) != 2)
        return false;
    const char *start = strchr(bodyhdr, '\n') + 1;
    const char *end = strstr(start, "\n=== PARSED");
    if (!end)
        return false;
    c->body = malloc(n + 1);
    if (!strcmp(enc, "base64"))
        c->body_len = b64_decode(start, (size_t)(end - start), c->body);
    else if (!strcmp(enc, "empty"))
        c->body_len = 0;
    else {
        c->body_len = n;
        memcpy(c->body, start, n);
    }
    return c->body_len == n;
}

static void test_captures(void)
{
    char dir[512];
    if (!kn_test_shared("wire/captures", dir, sizeof dir)) {
        printf("     (../shared/wire/captures absent: skipped)\n");
        return;
    }
    DIR *d = opendir(dir);
    KN_REQUIRE(d);
    struct dirent *de;
    int n = 0, ok = 0;
    static capture c;
    while ((de = readdir(d))) {
        size_t len = strlen(de->d_name);
        if (len < 5 || strcmp(de->d_name + len - 4, ".txt") != 0)
            continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        kn_buf b;
        kn_buf_init(&b, 1 << 22);
        kn_err e;
        kn_test_current = de->d_name;
        if (kn_file_read(path, &b, &e) != KN_OK || !parse((const char *)b.data, &c)) {
            KN_CHECK(!"capture parses");
            kn_buf_deinit(&b);
            continue;
        }
        n++;
        kn_api_params ap = kn_api_default_params();
        ap.iam = iam;
        ap.auth_time = c.when;
        kn_api *api = NULL;
        KN_CHECK_INT(kn_api_new(plat, &ap, &api, &e), KN_OK);
        kn_api_request req = {.method = c.method, .path = c.path, .query = c.query,
                              .headers = c.h, .n_headers = c.nh, .body = c.body,
                              .body_len = c.body_len, .source = "127.0.0.1"};
        kn_api_response resp;
        kn_api_response_init(&resp);
        kn_api_handle(api, &req, &resp);
        bool session = strstr((const char *)b.data, "ASIAEXAMPLETEMP") != NULL &&
                       strstr(de->d_name, "sessionToken");
        if (session) {
            KN_CHECK(!strcmp(resp.error_code, "UnrecognizedClientException"));
        } else {
            /* AssumeRole of dog-role (trusting sagemaker.amazonaws.com only, when
             * the CreateRole capture ran first) is refused by the role's trust
             * policy, after the signature and the admin's permission passed */
            bool trust_refusal = strstr(de->d_name, "AssumeRole") &&
                                 !strcmp(resp.error_code, "AccessDenied") &&
                                 strstr((const char *)resp.body.data, "sts:AssumeRole");
            bool failed = auth_error(resp.error_code) && !trust_refusal;
            if (failed)
                fprintf(stderr, "%s: %d %s: %.300s\n", de->d_name, resp.status,
                        resp.error_code, (const char *)resp.body.data);
            KN_CHECK(!failed);
            ok += !failed;
            /* one byte of the body changed: the signature no longer matches
             * (or, with x-amz-content-sha256, the declared hash) */
            if (c.body_len) {
                kn_api_response_deinit(&resp);
                kn_api_response_init(&resp);
                c.body[c.body_len / 2] ^= 1;
                kn_api_handle(api, &req, &resp);
                bool q = c.body_len > 7 && !memcmp(c.body, "Action=", 7); /* Query */
                KN_CHECK_STR(resp.error_code,
                             q ? "SignatureDoesNotMatch" : "InvalidSignatureException");
            }
        }
        kn_api_response_deinit(&resp);
        kn_api_free(api);
        free(c.body);
        kn_buf_deinit(&b);
    }
    closedir(d);
    kn_test_current = "test_captures";
    printf("     %d captures, %d through the front door without an auth error\n", n, ok);
    KN_CHECK(n >= 70);
}

int main(void)
{
    const char *base = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/kn_auth_cap_XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(tmpdir))
        return 1;
    kn_log_set_level(KN_LOG_ERROR);
    char data[300], path[1024];
    snprintf(data, sizeof data, "%s/data", tmpdir);
    kn_platform_params pp = kn_platform_default_params();
    pp.data_dir = data;
    pp.manual_clock = true;
    kn_err e;
    bool created;
    if (kn_platform_open(&pp, &plat, &e) || kn_iam_open(plat, &iam, &e) ||
        kn_iam_bootstrap(iam, "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                         &created, path, sizeof path, &e)) {
        fprintf(stderr, "setup: %s\n", e.msg);
        return 1;
    }
    KN_RUN(test_captures);
    kn_iam_close(iam);
    kn_platform_close(plat);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", tmpdir);
    return kn_test_finish();
}
