/* auth_bench: what authorising one request costs — SigV4 parse + verify of a
 * real-sized InvokeEndpoint request plus policy evaluation against policies
 * of 10 and 100 statements (the matching statement last, so every statement
 * is tried). Prints one JSON line per size with p50/p99 in microseconds.
 * Then the same through the daemon's front door (kn_api__authorize): a
 * real data dir and IAM store, user alice whose inline policy has 10 or 100
 * statements; per request: SigV4 parse and verify, the identity lookup (the
 * per-key cache, as in the daemon once a key has been seen), the resource
 * ARN from the route table, policy evaluation with the condition context.
 * Target (issue: security): p50 < 20 us.
 *
 *   auth_bench [--iters N]     (default 20000) */
#include "kennel/auth.h"

#include "api/api_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

/* The whole front-door authorization of a signed InvokeEndpoint by a user
 * whose one inline policy is `doc`. */
static int front_door(const char *doc, int ns, int iters, double *t)
{
    char root[256];
    snprintf(root, sizeof root, "/tmp/kn_auth_bench_XXXXXX");
    if (!mkdtemp(root))
        return 1;
    kn_log_set_level(KN_LOG_ERROR);
    kn_platform_params pp = kn_platform_default_params();
    pp.data_dir = root;
    kn_platform *plat = NULL;
    kn_iam *iam = NULL;
    kn_api *api = NULL;
    kn_err e;
    bool created;
    char path[1024], *json = NULL;
    const char *secret = "alice/secret/0123456789abcdefghijklmnopq";
    int rc = 1;
    if (kn_platform_open(&pp, &plat, &e) || kn_iam_open(plat, &iam, &e) ||
        kn_iam_bootstrap(iam, "AKIDBENCHADMIN", "bench-admin", &created, path, sizeof path,
                         &e) ||
        kn_iam_user_create(iam, "alice", "/", &json, &e)) {
        fprintf(stderr, "auth_bench: %s\n", e.msg);
        goto out;
    }
    free(json);
    json = NULL;
    if (kn_iam_access_key_create(iam, "alice", "AKIDALICE", secret, &json, &e) ||
        kn_iam_inline_put(iam, "user", "alice", "bench", doc, &e)) {
        fprintf(stderr, "auth_bench: %s\n", e.msg);
        goto out;
    }
    kn_api_params ap = kn_api_default_params();
    ap.iam = iam;
    if (kn_api_new(plat, &ap, &api, &e))
        goto out;
    const char *body = "{\"url\":\"http://127.0.0.1:1/dog.jpg\"}";
    time_t t0 = time(NULL);
    char amz[17], authz[1024];
    strftime(amz, sizeof amz, "%Y%m%dT%H%M%SZ", gmtime(&t0));
    kn_api_header h[6] = {{"Host", "127.0.0.1:18080"},
                          {"Accept-Encoding", "identity"},
                          {"Content-Type", "application/json"},
                          {"Accept", "application/json"},
                          {"X-Amz-Date", amz},
                          {"Authorization", NULL}};
    kn_auth_request ar = {.method = "POST", .raw_path = "/endpoints/dog-ep/invocations",
                          .headers = (const kn_auth_header *)h, .n_headers = 5, .body = body,
                          .body_len = strlen(body)};
    if (kn_auth_sign(&ar, "AKIDALICE", secret, "us-east-1", "sagemaker", authz, sizeof authz,
                     &e)) {
        fprintf(stderr, "auth_bench: sign: %s\n", e.msg);
        goto out;
    }
    h[5].value = authz;
    kn_api_request req = {.method = "POST", .path = "/endpoints/dog-ep/invocations",
                          .headers = h, .n_headers = 6, .body = (const uint8_t *)body,
                          .body_len = strlen(body), .source = "127.0.0.1"};
    kn_api_match m;
    kn_api__route_find(&req, NULL, &m);
    int ok = 0;
    for (int i = 0; i < iters; i++) {
        kn_api_call call;
        memset(&call, 0, sizeof call);
        call.api = api;
        call.req = &req;
        call.match = &m;
        kn_authz_result res;
        double a = now_us();
        kn_status s = kn_api__authorize(&call, &res);
        t[i] = now_us() - a;
        ok += s == KN_OK && !strcmp(res.decision, "Allow");
    }
    qsort(t, (size_t)iters, sizeof *t, cmp_d);
    printf("{\"bench\":\"auth_front_door\",\"statements\":%d,\"iters\":%d,\"allowed\":%d,"
           "\"p50_us\":%.2f,\"p99_us\":%.2f,\"target_p50_us\":20}\n",
           ns, iters, ok, t[iters / 2], t[iters * 99 / 100]);
    if (ok != iters)
        fprintf(stderr, "auth_bench: front door: %d of %d requests were not allowed\n",
                iters - ok, iters);
    else
        rc = 0;
out:
    free(json);
    kn_api_free(api);
    kn_iam_close(iam);
    kn_platform_close(plat);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    if (system(cmd) != 0)
        fprintf(stderr, "auth_bench: cannot remove %s\n", root);
    return rc;
}

int main(int argc, char **argv)
{
    int iters = 20000;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--iters") && i + 1 < argc)
            iters = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: %s [--iters N]\n", argv[0]);
            return 2;
        }
    }
    if (iters < 100)
        iters = 100;
    const char *secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    char body[64];
    snprintf(body, sizeof body, "{\"url\":\"http://127.0.0.1:1/dog.jpg\"}");
    time_t t0 = time(NULL);
    char amz[17];
    strftime(amz, sizeof amz, "%Y%m%dT%H%M%SZ", gmtime(&t0));
    kn_auth_header h[6] = {{"Host", "127.0.0.1:18080"},
                           {"Accept-Encoding", "identity"},
                           {"Content-Type", "application/json"},
                           {"Accept", "application/json"},
                           {"X-Amz-Date", amz},
                           {"Authorization", NULL}};
    kn_auth_request r = {.method = "POST", .raw_path = "/endpoints/dog-ep/invocations",
                         .raw_query = "", .headers = h, .n_headers = 5, .body = body,
                         .body_len = strlen(body)};
    char authz[1024];
    kn_err e = {0};
    if (kn_auth_sign(&r, "AKIDEXAMPLE", secret, "us-east-1", "sagemaker", authz, sizeof authz,
                     &e)) {
        fprintf(stderr, "auth_bench: sign: %s\n", e.msg);
        return 1;
    }
    h[5].value = authz;
    r.n_headers = 6;
    double *t = malloc(sizeof(double) * (size_t)iters);
    const int sizes[] = {10, 100};
    for (size_t si = 0; si < 2; si++) {
        int ns = sizes[si];
        size_t cap = (size_t)ns * 256 + 64, o = 0;
        char *doc = malloc(cap);
        o += (size_t)snprintf(doc + o, cap - o, "{\"Version\":\"2012-10-17\",\"Statement\":[");
        for (int i = 0; i < ns - 1; i++)
            o += (size_t)snprintf(doc + o, cap - o,
                                  "{\"Effect\":\"Allow\",\"Action\":\"sagemaker:Describe*\","
                                  "\"Resource\":\"arn:aws:sagemaker:us-east-1:123456789012:"
                                  "endpoint/ep-%d\"},",
                                  i);
        snprintf(doc + o, cap - o,
                 "{\"Effect\":\"Allow\",\"Action\":\"sagemaker:InvokeEndpoint\",\"Resource\":"
                 "\"arn:aws:sagemaker:us-east-1:123456789012:endpoint/dog-ep\"}]}");
        kn_policy *p = NULL;
        if (kn_policy_parse(doc, strlen(doc), KN_POLICY_IDENTITY, &p, &e)) {
            fprintf(stderr, "auth_bench: policy: %s\n", e.msg);
            return 1;
        }
        const kn_policy *set[1] = {p};
        kn_policy_request q = {.action = "sagemaker:InvokeEndpoint",
                               .resource = "arn:aws:sagemaker:us-east-1:123456789012:endpoint/dog-ep",
                               .principal = "arn:aws:iam::123456789012:user/alice"};
        int ok = 0;
        for (int i = 0; i < iters; i++) {
            double a = now_us();
            kn_auth_sig s;
            kn_auth_fail f;
            kn_policy_decision d;
            if (kn_auth_parse(&r, &s, &f, &e) == KN_OK &&
                kn_auth_verify(&r, &s, secret, (double)t0, &f, &e) == KN_OK) {
                kn_policy_evaluate(set, 1, &q, &d);
                ok += d.effect == KN_POLICY_ALLOW;
            }
            t[i] = now_us() - a;
        }
        qsort(t, (size_t)iters, sizeof *t, cmp_d);
        printf("{\"bench\":\"auth\",\"statements\":%d,\"iters\":%d,\"allowed\":%d,"
               "\"p50_us\":%.2f,\"p99_us\":%.2f,\"target_p50_us\":20}\n",
               ns, iters, ok, t[iters / 2], t[iters * 99 / 100]);
        kn_policy_free(p);
        if (ok != iters) {
            fprintf(stderr, "auth_bench: %d of %d requests were not allowed\n", iters - ok,
                    iters);
            return 1;
        }
        if (front_door(doc, ns, iters, t))
            return 1;
        free(doc);
    }
    free(t);
    return 0;
}
