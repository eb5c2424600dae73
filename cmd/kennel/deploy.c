/* kennel deploy / undeploy / endpoints / invoke / autoscale / activities /
 * metrics: a running kennel server driven without AWS tooling. Each command
 * sends the same AWS requests the AWS CLI would (JSON 1.1 to POST /, the
 * runtime's POST /endpoints/NAME/invocations) over libcurl to the daemon
 * named by --endpoint-url or $KENNEL_ENDPOINT (default
 * http://127.0.0.1:8080), and prints the answer for a person (or as JSON
 * with --json). Requests are signed with SigV4 (sign.c says where the
 * credentials come from). Exit codes: 0 ok, 1 the daemon refused or
 * could not be reached (its AWS error is printed), 2 bad usage. */
#include "cli.h"

#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define MAX_REPLY ((size_t)64 * 1024 * 1024)
#define MAX_BODY ((size_t)6 * 1024 * 1024)

typedef struct client {
    char base[1024];
    CURL *h;
} client;

typedef struct reply {
    long status;
    char *data;
    size_t len;
    char content_type[256];
    char variant[128];
    const char *want;   /* one more response header to keep (kn_cli_request) */
    char want_value[256];
} reply;

static size_t on_data(char *p, size_t sz, size_t n, void *ud)
{
    reply *r = ud;
    size_t k = sz * n;
    if (r->len + k > MAX_REPLY)
        return 0;
    char *grown = realloc(r->data, r->len + k + 1);
    if (!grown)
        return 0;
    r->data = grown;
    memcpy(r->data + r->len, p, k);
    r->len += k;
    r->data[r->len] = '\0';
    return k;
}

static void header_copy(const char *line, size_t len, const char *name, char *out, size_t n)
{
    size_t k = strlen(name);
    if (len <= k + 1 || strncasecmp(line, name, k) != 0 || line[k] != ':')
        return;
    const char *v = line + k + 1;
    size_t vl = len - k - 1;
    while (vl && (*v == ' ' || *v == '\t'))
        v++, vl--;
    while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n'))
        vl--;
    snprintf(out, n, "%.*s", (int)vl, v);
}

static size_t on_header(char *p, size_t sz, size_t n, void *ud)
{
    reply *r = ud;
    header_copy(p, sz * n, "Content-Type", r->content_type, sizeof r->content_type);
    header_copy(p, sz * n, "x-Amzn-Invoked-Production-Variant", r->variant, sizeof r->variant);
    if (r->want)
        header_copy(p, sz * n, r->want, r->want_value, sizeof r->want_value);
    return sz * n;
}

static bool client_init(client *c, const char *url)
{
    if (!url)
        url = getenv("KENNEL_ENDPOINT");
    if (!url || !*url)
        url = "http://127.0.0.1:8080";
    snprintf(c->base, sizeof c->base, "%s", url);
    size_t n = strlen(c->base);
    while (n && c->base[n - 1] == '/')
        c->base[--n] = '\0';
    curl_global_init(CURL_GLOBAL_DEFAULT);
    c->h = curl_easy_init();
    return c->h != NULL;
}

static void client_deinit(client *c)
{
    curl_easy_cleanup(c->h);
    curl_global_cleanup();
}

/* The response header kn_cli_request wants kept, for the next http() of
 * this thread. */
static _Thread_local const char *want_header;

/* One HTTP request; false (with a message on stderr) if it could not be made. */
static bool http(client *c, const char *method, const char *path, const char *const *headers,
                 const void *body, size_t len, reply *r)
{
    memset(r, 0, sizeof *r);
    r->want = want_header;
    want_header = NULL;
    char url[2048];
    snprintf(url, sizeof url, "%s%s", c->base, path);
    curl_easy_reset(c->h);
    struct curl_slist *hd = NULL;
    for (const char *const *h = headers; h && *h; h++)
        hd = curl_slist_append(hd, *h);
    hd = curl_slist_append(hd, "Expect:");
    char sig[4][2200]; /* not static: kennel demo calls from several threads */
    int n_sig = 0;
    if (!kn_cli_sign(c->base, method, path, headers, body, len, sig, &n_sig)) {
        curl_slist_free_all(hd);
        return false;
    }
    for (int i = 0; i < n_sig; i++)
        hd = curl_slist_append(hd, sig[i]);
    curl_easy_setopt(c->h, CURLOPT_URL, url);
    curl_easy_setopt(c->h, CURLOPT_CUSTOMREQUEST, method);
    if (body) {
        curl_easy_setopt(c->h, CURLOPT_POSTFIELDS, (const char *)body);
        curl_easy_setopt(c->h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    }
    curl_easy_setopt(c->h, CURLOPT_HTTPHEADER, hd);
    curl_easy_setopt(c->h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c->h, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c->h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c->h, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(c->h, CURLOPT_TIMEOUT, 90L);
    curl_easy_setopt(c->h, CURLOPT_NOSIGNAL, 1L);
    CURLcode rc = curl_easy_perform(c->h);
    curl_slist_free_all(hd);
    if (rc != CURLE_OK) {
        fprintf(stderr, "kennel: cannot reach the kennel server at %s: %s\n", c->base,
                curl_easy_strerror(rc));
        free(r->data);
        r->data = NULL;
        return false;
    }
    curl_easy_getinfo(c->h, CURLINFO_RESPONSE_CODE, &r->status);
    return true;
}

/* Prints an AWS error reply as the AWS CLI does. */
static void print_error(const reply *r, const char *op)
{
    json_t *j = r->data ? json_loadb(r->data, r->len, 0, NULL) : NULL;
    const char *code = j ? json_string_value(json_object_get(j, "__type")) : NULL;
    const char *msg = j ? json_string_value(json_object_get(j, "message")) : NULL;
    if (j && !msg)
        msg = json_string_value(json_object_get(j, "Message"));
    fprintf(stderr, "kennel: %s failed (%s, HTTP %ld): %s\n", op, code ? code : "error",
            r->status, msg ? msg : (r->data ? r->data : ""));
    json_decref(j);
}

/* A JSON 1.1 call; returns the parsed output (caller decrefs) or NULL after
 * printing the error. */
static json_t *call(client *c, const char *target, json_t *input)
{
    char *body = json_dumps(input, JSON_COMPACT);
    json_decref(input);
    char th[256];
    snprintf(th, sizeof th, "X-Amz-Target: %s", target);
    const char *headers[] = {"Content-Type: application/x-amz-json-1.1", th, NULL};
    reply r;
    bool ok = body && http(c, "POST", "/", headers, body, strlen(body), &r);
    free(body);
    if (!ok)
        return NULL;
    const char *op = strchr(target, '.') ? strchr(target, '.') + 1 : target;
    if (r.status != 200) {
        print_error(&r, op);
        free(r.data);
        return NULL;
    }
    json_t *out = json_loadb(r.data ? r.data : "{}", r.data ? r.len : 2, 0, NULL);
    if (!out)
        fprintf(stderr, "kennel: %s: the server's answer is not JSON\n", op);
    free(r.data);
    return out;
}

static const char *str(json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "";
}

static void fmt_time(double t, char *out, size_t n)
{
    time_t s = (time_t)t;
    struct tm tm;
    gmtime_r(&s, &tm);
    strftime(out, n, "%Y-%m-%d %H:%M:%S", &tm);
}

static bool parse_int(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Waits until the endpoint leaves Creating/Updating/SystemUpdating. */
static int wait_endpoint(client *c, const char *name, long timeout_s)
{
    for (long i = 0; i < timeout_s * 5; i++) {
        json_t *d = call(c, "SageMaker.DescribeEndpoint", json_pack("{s:s}", "EndpointName", name));
        if (!d)
            return 1;
        const char *st = str(d, "EndpointStatus");
        if (strcmp(st, "InService") == 0) {
            printf("endpoint %s is InService\n", name);
            json_decref(d);
            return 0;
        }
        if (strcmp(st, "Failed") == 0) {
            fprintf(stderr, "kennel: endpoint %s failed: %s\n", name, str(d, "FailureReason"));
            json_decref(d);
            return 1;
        }
        json_decref(d);
        sleep_ms(200);
    }
    fprintf(stderr, "kennel: endpoint %s is not InService after %ld s\n", name, timeout_s);
    return 1;
}

/* ------------------------------------------------------------- commands */

enum { O_URL = 300, O_JSON, O_NAME, O_TYPE, O_COUNT, O_WAIT, O_MIN, O_MAX, O_TARGET,
       O_IN_CD, O_OUT_CD, O_VARIANT, O_CT, O_ACCEPT, O_MINUTES, O_KEEP };

static int deploy(int argc, char **argv)
{
    static const struct option opts[] = {
        {"endpoint-url", required_argument, NULL, O_URL},
        {"model", required_argument, NULL, 'm'},
        {"name", required_argument, NULL, O_NAME},
        {"instance-type", required_argument, NULL, O_TYPE},
        {"instances", required_argument, NULL, O_COUNT},
        {"wait", no_argument, NULL, O_WAIT},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    const char *url = NULL, *model = NULL, *name = NULL, *type = "ml.m5.large";
    long count = 1;
    bool wait = false;
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "m:h", opts, NULL)) != -1) {
        switch (ch) {
        case O_URL: url = optarg; break;
        case 'm': model = optarg; break;
        case O_NAME: name = optarg; break;
        case O_TYPE: type = optarg; break;
        case O_COUNT:
            if (!parse_int(optarg, 1, 100, &count)) {
                fprintf(stderr, "kennel deploy: --instances '%s' is not in [1, 100]\n", optarg);
                return 2;
            }
            break;
        case O_WAIT: wait = true; break;
        case 'h':
            printf("usage: kennel deploy --model PATH --name NAME [--instance-type T]\n"
                   "                     [--instances N] [--wait] [--endpoint-url URL]\n"
                   "Creates model NAME, endpoint configuration NAME-config (one variant,\n"
                   "AllTraffic) and endpoint NAME; --wait waits until it is InService.\n");
            return 0;
        default: return 2;
        }
    }
    if (!model || !name || optind < argc) {
        fprintf(stderr, "kennel deploy: --model and --name are required\n");
        return 2;
    }
    char abs[PATH_MAX];
    if (!strstr(model, "://") && !realpath(model, abs)) {
        fprintf(stderr, "kennel deploy: %s: %s\n", model, strerror(errno));
        return 1;
    }
    client c;
    if (!client_init(&c, url))
        return 1;
    int rc = 1;
    char cfg[128];
    snprintf(cfg, sizeof cfg, "%.60s-config", name);
    json_t *o = call(&c, "SageMaker.CreateModel",
                     json_pack("{s:s, s:{s:s}}", "ModelName", name, "PrimaryContainer",
                               "ModelDataUrl", strstr(model, "://") ? model : abs));
    if (!o)
        goto out;
    json_decref(o);
    o = call(&c, "SageMaker.CreateEndpointConfig",
             json_pack("{s:s, s:[{s:s, s:s, s:i, s:s, s:f}]}", "EndpointConfigName", cfg,
                       "ProductionVariants", "VariantName", "AllTraffic", "ModelName", name,
                       "InitialInstanceCount", (int)count, "InstanceType", type,
                       "InitialVariantWeight", 1.0));
    if (!o)
        goto out;
    json_decref(o);
    o = call(&c, "SageMaker.CreateEndpoint",
             json_pack("{s:s, s:s}", "EndpointName", name, "EndpointConfigName", cfg));
    if (!o)
        goto out;
    printf("%s\n", str(o, "EndpointArn"));
    json_decref(o);
    rc = wait ? wait_endpoint(&c, name, 600) : 0;
out:
    client_deinit(&c);
    return rc;
}

static int undeploy(int argc, char **argv)
{
    static const struct option opts[] = {{"endpoint-url", required_argument, NULL, O_URL},
                                         {"keep-model", no_argument, NULL, O_KEEP},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *url = NULL;
    bool keep = false;
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (ch == O_URL)
            url = optarg;
        else if (ch == O_KEEP)
            keep = true;
        else if (ch == 'h') {
            printf("usage: kennel undeploy NAME [--keep-model] [--endpoint-url URL]\n"
                   "Deletes endpoint NAME, waits until it is gone, then deletes the\n"
                   "configuration NAME-config and (unless --keep-model) model NAME.\n");
            return 0;
        } else
            return 2;
    }
    if (optind != argc - 1) {
        fprintf(stderr, "kennel undeploy: give one endpoint name\n");
        return 2;
    }
    const char *name = argv[optind];
    client c;
    if (!client_init(&c, url))
        return 1;
    int rc = 1;
    json_t *o = call(&c, "SageMaker.DeleteEndpoint", json_pack("{s:s}", "EndpointName", name));
    if (!o)
        goto out;
    json_decref(o);
    for (int i = 0; i < 3000; i++) { /* until DescribeEndpoint no longer finds it */
        char th[] = "X-Amz-Target: SageMaker.DescribeEndpoint";
        const char *headers[] = {"Content-Type: application/x-amz-json-1.1", th, NULL};
        char body[200];
        snprintf(body, sizeof body, "{\"EndpointName\": \"%.100s\"}", name);
        reply r;
        if (!http(&c, "POST", "/", headers, body, strlen(body), &r))
            goto out;
        free(r.data);
        if (r.status == 400)
            break;
        sleep_ms(100);
    }
    char cfg[128];
    snprintf(cfg, sizeof cfg, "%.60s-config", name);
    o = call(&c, "SageMaker.DeleteEndpointConfig", json_pack("{s:s}", "EndpointConfigName", cfg));
    json_decref(o);
    if (!keep) {
        o = call(&c, "SageMaker.DeleteModel", json_pack("{s:s}", "ModelName", name));
        json_decref(o);
    }
    printf("endpoint %s deleted\n", name);
    rc = 0;
out:
    client_deinit(&c);
    return rc;
}

static int endpoints(int argc, char **argv)
{
    static const struct option opts[] = {{"endpoint-url", required_argument, NULL, O_URL},
                                         {"json", no_argument, NULL, O_JSON},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *url = NULL;
    bool as_json = false;
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (ch == O_URL)
            url = optarg;
        else if (ch == O_JSON)
            as_json = true;
        else if (ch == 'h') {
            printf("usage: kennel endpoints [--json] [--endpoint-url URL]\n"
                   "Lists endpoints: status, instances per variant, instance type.\n");
            return 0;
        } else
            return 2;
    }
    client c;
    if (!client_init(&c, url))
        return 1;
    int rc = 1;
    json_t *all = json_array();
    char *token = NULL;
    for (;;) {
        json_t *in = json_pack("{s:i, s:s, s:s}", "MaxResults", 100, "SortBy", "Name",
                               "SortOrder", "Ascending");
        if (token)
            json_object_set_new(in, "NextToken", json_string(token));
        free(token);
        token = NULL;
        json_t *page = call(&c, "SageMaker.ListEndpoints", in);
        if (!page)
            goto out;
        size_t i;
        json_t *e;
        json_array_foreach(json_object_get(page, "Endpoints"), i, e)
        {
            json_t *d = call(&c, "SageMaker.DescribeEndpoint",
                             json_pack("{s:s}", "EndpointName", str(e, "EndpointName")));
            if (d)
                json_array_append_new(all, d);
        }
        const char *nt = json_string_value(json_object_get(page, "NextToken"));
        token = nt ? strdup(nt) : NULL;
        json_decref(page);
        if (!token)
            break;
    }
    if (as_json) {
        char *s = json_dumps(all, JSON_INDENT(2));
        printf("%s\n", s ? s : "[]");
        free(s);
    } else {
        printf("%-32s %-14s %-12s %s\n", "ENDPOINT", "STATUS", "VARIANT", "INSTANCES");
        size_t i;
        json_t *d;
        json_array_foreach(all, i, d)
        {
            size_t k;
            json_t *v;
            json_array_foreach(json_object_get(d, "ProductionVariants"), k, v)
            printf("%-32s %-14s %-12s %lld/%lld\n", k ? "" : str(d, "EndpointName"),
                   k ? "" : str(d, "EndpointStatus"), str(v, "VariantName"),
                   (long long)json_integer_value(json_object_get(v, "CurrentInstanceCount")),
                   (long long)json_integer_value(json_object_get(v, "DesiredInstanceCount")));
            if (*str(d, "FailureReason"))
                printf("  failure: %s\n", str(d, "FailureReason"));
        }
    }
    rc = 0;
out:
    free(token);
    json_decref(all);
    client_deinit(&c);
    return rc;
}

static const char *content_type_for(const char *path)
{
    const char *dot = strrchr(path, '.');
    if (dot && strcasecmp(dot, ".png") == 0)
        return "image/png";
    if (dot && (strcasecmp(dot, ".jpg") == 0 || strcasecmp(dot, ".jpeg") == 0))
        return "image/jpeg";
    if (dot && strcasecmp(dot, ".json") == 0)
        return "application/json";
    return "application/x-image";
}

static int invoke(int argc, char **argv)
{
    static const struct option opts[] = {{"endpoint-url", required_argument, NULL, O_URL},
                                         {"content-type", required_argument, NULL, O_CT},
                                         {"accept", required_argument, NULL, O_ACCEPT},
                                         {"variant", required_argument, NULL, O_VARIANT},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *url = NULL, *ct = NULL, *accept = "application/json", *variant = NULL;
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (ch) {
        case O_URL: url = optarg; break;
        case O_CT: ct = optarg; break;
        case O_ACCEPT: accept = optarg; break;
        case O_VARIANT: variant = optarg; break;
        case 'h':
            printf("usage: kennel invoke ENDPOINT FILE|URL [--content-type T] [--accept A]\n"
                   "                     [--variant V] [--endpoint-url URL]\n"
                   "Sends an image file (content type from its extension) or an\n"
                   "http(s) URL (as {\"url\": ...}) and prints the answer.\n");
            return 0;
        default: return 2;
        }
    }
    if (optind != argc - 2) {
        fprintf(stderr, "kennel invoke: give ENDPOINT and FILE or URL\n");
        return 2;
    }
    const char *name = argv[optind], *what = argv[optind + 1];
    char *body = NULL;
    size_t len = 0;
    if (strncmp(what, "http://", 7) == 0 || strncmp(what, "https://", 8) == 0) {
        json_t *j = json_pack("{s:s}", "url", what);
        body = json_dumps(j, JSON_COMPACT);
        json_decref(j);
        len = body ? strlen(body) : 0;
        if (!ct)
            ct = "application/json";
    } else {
        FILE *f = fopen(what, "rb");
        if (!f) {
            fprintf(stderr, "kennel invoke: %s: %s\n", what, strerror(errno));
            return 1;
        }
        body = malloc(MAX_BODY + 1);
        len = body ? fread(body, 1, MAX_BODY + 1, f) : 0;
        fclose(f);
        if (!body || len > MAX_BODY) {
            fprintf(stderr, "kennel invoke: %s is larger than 6 MiB, InvokeEndpoint's limit\n",
                    what);
            free(body);
            return 1;
        }
        if (!ct)
            ct = content_type_for(what);
    }
    client c;
    if (!client_init(&c, url)) {
        free(body);
        return 1;
    }
    char h1[300], h2[300], h3[300], path[300];
    snprintf(h1, sizeof h1, "Content-Type: %s", ct);
    snprintf(h2, sizeof h2, "Accept: %s", accept);
    snprintf(h3, sizeof h3, "X-Amzn-SageMaker-Target-Variant: %s", variant ? variant : "");
    const char *headers[] = {h1, h2, variant ? h3 : NULL, NULL};
    snprintf(path, sizeof path, "/endpoints/%.200s/invocations", name);
    reply r;
    int rc = 1;
    if (http(&c, "POST", path, headers, body ? body : "", len, &r)) {
        if (r.status == 200) {
            fwrite(r.data ? r.data : "", 1, r.len, stdout);
            if (r.len && r.data[r.len - 1] != '\n')
                putchar('\n');
            rc = 0;
        } else {
            print_error(&r, "InvokeEndpoint");
        }
        free(r.data);
    }
    free(body);
    client_deinit(&c);
    return rc;
}

static int autoscale(int argc, char **argv)
{
    static const struct option opts[] = {
        {"endpoint-url", required_argument, NULL, O_URL},
        {"variant", required_argument, NULL, O_VARIANT},
        {"min", required_argument, NULL, O_MIN},
        {"max", required_argument, NULL, O_MAX},
        {"target", required_argument, NULL, O_TARGET},
        {"scale-in-cooldown", required_argument, NULL, O_IN_CD},
        {"scale-out-cooldown", required_argument, NULL, O_OUT_CD},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    const char *url = NULL, *variant = "AllTraffic";
    long min = -1, max = -1, in_cd = 300, out_cd = 300;
    double target = -1;
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        char *end;
        switch (ch) {
        case O_URL: url = optarg; break;
        case O_VARIANT: variant = optarg; break;
        case O_MIN:
        case O_MAX:
            if (!parse_int(optarg, 1, 10000, ch == O_MIN ? &min : &max)) {
                fprintf(stderr, "kennel autoscale: --%s '%s' is not in [1, 10000]\n",
                        ch == O_MIN ? "min" : "max", optarg);
                return 2;
            }
            break;
        case O_TARGET:
            target = strtod(optarg, &end);
            if (end == optarg || *end || !(target > 0) || !isfinite(target)) {
                fprintf(stderr, "kennel autoscale: --target '%s' is not a positive number\n",
                        optarg);
                return 2;
            }
            break;
        case O_IN_CD:
        case O_OUT_CD:
            if (!parse_int(optarg, 0, 86400, ch == O_IN_CD ? &in_cd : &out_cd)) {
                fprintf(stderr, "kennel autoscale: cooldown '%s' is not in [0, 86400]\n",
                        optarg);
                return 2;
            }
            break;
        case 'h':
            printf("usage: kennel autoscale ENDPOINT --min N --max N --target INVOCATIONS\n"
                   "                        [--scale-in-cooldown S] [--scale-out-cooldown S]\n"
                   "                        [--variant V] [--endpoint-url URL]\n"
                   "Registers the variant with Application Auto Scaling and puts a\n"
                   "target-tracking policy on invocations per instance per minute.\n");
            return 0;
        default: return 2;
        }
    }
    if (optind != argc - 1 || min < 0 || max < 0 || target < 0) {
        fprintf(stderr, "kennel autoscale: give ENDPOINT, --min, --max and --target\n");
        return 2;
    }
    char rid[300];
    snprintf(rid, sizeof rid, "endpoint/%.100s/variant/%.100s", argv[optind], variant);
    client c;
    if (!client_init(&c, url))
        return 1;
    int rc = 1;
    json_t *o = call(&c, "AnyScaleFrontendService.RegisterScalableTarget",
                     json_pack("{s:s, s:s, s:s, s:i, s:i}", "ServiceNamespace", "sagemaker",
                               "ResourceId", rid, "ScalableDimension",
                               "sagemaker:variant:DesiredInstanceCount", "MinCapacity", (int)min,
                               "MaxCapacity", (int)max));
    if (!o)
        goto out;
    json_decref(o);
    o = call(&c, "AnyScaleFrontendService.PutScalingPolicy",
             json_pack("{s:s, s:s, s:s, s:s, s:s, s:{s:f, s:{s:s}, s:i, s:i}}", "PolicyName",
                       "kennel-target-tracking", "ServiceNamespace", "sagemaker", "ResourceId",
                       rid, "ScalableDimension", "sagemaker:variant:DesiredInstanceCount",
                       "PolicyType", "TargetTrackingScaling",
                       "TargetTrackingScalingPolicyConfiguration", "TargetValue", target,
                       "PredefinedMetricSpecification", "PredefinedMetricType",
                       "SageMakerVariantInvocationsPerInstance", "ScaleInCooldown", (int)in_cd,
                       "ScaleOutCooldown", (int)out_cd));
    if (!o)
        goto out;
    printf("%s: %ld..%ld instances, target %g invocations per instance per minute\n"
           "policy %s\n",
           rid, min, max, target, str(o, "PolicyARN"));
    json_decref(o);
    rc = 0;
out:
    client_deinit(&c);
    return rc;
}

static int activities(int argc, char **argv)
{
    static const struct option opts[] = {{"endpoint-url", required_argument, NULL, O_URL},
                                         {"variant", required_argument, NULL, O_VARIANT},
                                         {"json", no_argument, NULL, O_JSON},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *url = NULL, *variant = "AllTraffic";
    bool as_json = false;
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (ch == O_URL)
            url = optarg;
        else if (ch == O_VARIANT)
            variant = optarg;
        else if (ch == O_JSON)
            as_json = true;
        else if (ch == 'h') {
            printf("usage: kennel activities ENDPOINT [--variant V] [--json]\n"
                   "Lists the variant's scaling activities, newest first.\n");
            return 0;
        } else
            return 2;
    }
    if (optind != argc - 1) {
        fprintf(stderr, "kennel activities: give ENDPOINT\n");
        return 2;
    }
    char rid[300];
    snprintf(rid, sizeof rid, "endpoint/%.100s/variant/%.100s", argv[optind], variant);
    client c;
    if (!client_init(&c, url))
        return 1;
    json_t *o = call(&c, "AnyScaleFrontendService.DescribeScalingActivities",
                     json_pack("{s:s, s:s, s:i}", "ServiceNamespace", "sagemaker", "ResourceId",
                               rid, "MaxResults", 50));
    int rc = o ? 0 : 1;
    if (o && as_json) {
        char *s = json_dumps(json_object_get(o, "ScalingActivities"), JSON_INDENT(2));
        printf("%s\n", s ? s : "[]");
        free(s);
    } else if (o) {
        size_t i;
        json_t *a;
        json_array_foreach(json_object_get(o, "ScalingActivities"), i, a)
        {
            char t[32];
            fmt_time(json_number_value(json_object_get(a, "StartTime")), t, sizeof t);
            printf("%s  %-11s %s\n    %s\n", t, str(a, "StatusCode"), str(a, "Description"),
                   str(a, "Cause"));
        }
    }
    json_decref(o);
    client_deinit(&c);
    return rc;
}

static int metrics(int argc, char **argv)
{
    static const struct option opts[] = {{"endpoint-url", required_argument, NULL, O_URL},
                                         {"minutes", required_argument, NULL, O_MINUTES},
                                         {"json", no_argument, NULL, O_JSON},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *url = NULL;
    long minutes = 60;
    bool as_json = false;
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (ch == O_URL)
            url = optarg;
        else if (ch == O_JSON)
            as_json = true;
        else if (ch == O_MINUTES) {
            if (!parse_int(optarg, 1, 1440, &minutes)) {
                fprintf(stderr, "kennel metrics: --minutes '%s' is not in [1, 1440]\n", optarg);
                return 2;
            }
        } else if (ch == 'h') {
            printf("usage: kennel metrics ENDPOINT [--minutes N] [--json]\n"
                   "Per-minute figures of each variant (daemon clock): invocations,\n"
                   "invocations per instance, latencies (us), errors, instances.\n");
            return 0;
        } else
            return 2;
    }
    if (optind != argc - 1) {
        fprintf(stderr, "kennel metrics: give ENDPOINT\n");
        return 2;
    }
    client c;
    if (!client_init(&c, url))
        return 1;
    char path[300];
    snprintf(path, sizeof path, "/kennel/endpoints/%.200s/metrics?minutes=%ld", argv[optind],
             minutes);
    reply r;
    int rc = 1;
    if (http(&c, "GET", path, NULL, NULL, 0, &r)) {
        json_t *o = r.status == 200 ? json_loadb(r.data, r.len, 0, NULL) : NULL;
        if (!o) {
            print_error(&r, "metrics");
        } else if (as_json) {
            fwrite(r.data, 1, r.len, stdout);
            putchar('\n');
            rc = 0;
        } else {
            const char *vn;
            json_t *series;
            json_object_foreach(json_object_get(o, "Variants"), vn, series)
            {
                printf("variant %s\n%-20s %11s %11s %13s %13s %5s %5s %9s\n", vn, "MINUTE",
                       "INVOCATIONS", "PER-INST", "MODEL-US", "OVERHEAD-US", "4XX", "5XX",
                       "INSTANCES");
                size_t i;
                json_t *p;
                json_array_foreach(series, i, p)
                {
                    char t[32];
                    fmt_time((double)json_integer_value(json_object_get(p, "Minute")), t,
                             sizeof t);
                    printf("%-20s %11lld %11.2f %13.0f %13.0f %5lld %5lld %9lld\n", t,
                           (long long)json_integer_value(json_object_get(p, "Invocations")),
                           json_number_value(json_object_get(p, "InvocationsPerInstance")),
                           json_number_value(json_object_get(p, "ModelLatency")),
                           json_number_value(json_object_get(p, "OverheadLatency")),
                           (long long)json_integer_value(
                               json_object_get(p, "Invocation4XXErrors")),
                           (long long)json_integer_value(
                               json_object_get(p, "Invocation5XXErrors")),
                           (long long)json_integer_value(json_object_get(p, "InstanceCount")));
                }
            }
            rc = 0;
        }
        json_decref(o);
        free(r.data);
    }
    client_deinit(&c);
    return rc;
}

int kn_cli_deploy(int argc, char **argv)
{
    return deploy(argc, argv);
}

int kn_cli_undeploy(int argc, char **argv)
{
    return undeploy(argc, argv);
}

int kn_cli_endpoints(int argc, char **argv)
{
    return endpoints(argc, argv);
}

int kn_cli_invoke(int argc, char **argv)
{
    return invoke(argc, argv);
}

int kn_cli_autoscale(int argc, char **argv)
{
    return autoscale(argc, argv);
}

int kn_cli_activities(int argc, char **argv)
{
    return activities(argc, argv);
}

int kn_cli_metrics(int argc, char **argv)
{
    return metrics(argc, argv);
}

/* ---------------------------------------------- for other client commands */

json_t *kn_cli_call(const char *url, const char *target, json_t *input)
{
    client c;
    if (!client_init(&c, url)) {
        json_decref(input);
        return NULL;
    }
    json_t *out = call(&c, target, input);
    client_deinit(&c);
    return out;
}

char *kn_cli_get(const char *url, const char *path, size_t *len)
{
    client c;
    if (!client_init(&c, url))
        return NULL;
    reply r;
    char *out = NULL;
    if (http(&c, "GET", path, NULL, NULL, 0, &r)) {
        if (r.status == 200) {
            out = r.data ? r.data : strdup("");
            *len = r.data ? r.len : 0;
            r.data = NULL;
        } else {
            print_error(&r, path);
        }
        free(r.data);
    }
    client_deinit(&c);
    return out;
}

long kn_cli_request(const char *url, const char *method, const char *path,
                    const char *const *headers, const void *body, size_t len, char **out,
                    size_t *out_len, const char *want, char *want_value, size_t want_n)
{
    *out = NULL;
    if (out_len)
        *out_len = 0;
    client c;
    if (!client_init(&c, url))
        return 0;
    reply r;
    want_header = want;
    long status = 0;
    if (http(&c, method, path, headers, body, len, &r)) {
        status = r.status;
        *out = r.data ? r.data : strdup("");
        if (out_len)
            *out_len = r.data ? r.len : 0;
        if (want_value && want_n)
            snprintf(want_value, want_n, "%s", r.want_value);
    }
    client_deinit(&c);
    return status;
}
