/* The api module without HTTP: kn_api_handle on requests built in memory
 * against a real platform (SQLite in a temp data dir, no fleet):
 * SigV4 header parsing (accepted shapes and each way it can be wrong),
 * routing by X-Amz-Target / path / Query Action, every error shape
 * (JSON 1.1 __type, REST x-amzn-ErrorType, Query XML), validation messages
 * naming the member, the service scope check, 413, and the model and
 * endpoint-configuration operations end to end. With ../shared present,
 * the Authorization header of every wire capture parses to the scope the
 * capture records, and every captured request is routed to the operation
 * its file names or answered with that protocol's unknown-operation error. */
#include "api_int.h"
#include "kn_test.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmpdir[256];
static kn_platform *plat;
static kn_api *api;

typedef struct reply {
    int status;
    json_t *body;
    char code[64];
    char text[4096];
    char request_id[64];
} reply;

static void call(const char *target, const char *body, const char *authz, reply *out)
{
    kn_api_header h[4];
    size_t n = 0;
    h[n++] = (kn_api_header){"Content-Type", "application/x-amz-json-1.1"};
    if (target)
        h[n++] = (kn_api_header){"X-Amz-Target", target};
    if (authz)
        h[n++] = (kn_api_header){"authorization", authz};
    kn_api_request req = {.method = "POST",
                          .path = "/",
                          .headers = h,
                          .n_headers = n,
                          .body = (const uint8_t *)body,
                          .body_len = body ? strlen(body) : 0};
    kn_api_response r;
    kn_api_response_init(&r);
    kn_api_handle(api, &req, &r);
    out->status = r.status;
    snprintf(out->code, sizeof out->code, "%s", r.error_code);
    snprintf(out->text, sizeof out->text, "%.*s", (int)r.body.len, r.body.data ? (char *)r.body.data : "");
    const char *rid = kn_api_response_header(&r, "x-amzn-RequestId");
    snprintf(out->request_id, sizeof out->request_id, "%s", rid ? rid : "");
    out->body = json_loadb((const char *)r.body.data, r.body.len, 0, NULL);
    kn_api_response_deinit(&r);
}

static const char *member(const reply *r, const char *key)
{
    return r->body ? json_string_value(json_object_get(r->body, key)) : NULL;
}

static void done(reply *r)
{
    json_decref(r->body);
    r->body = NULL;
}

static void test_sigv4_parse(void)
{
    kn_sigv4_auth a;
    kn_err e;
    const char *ok = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261125/us-east-1/sagemaker/"
                     "aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-target, "
                     "Signature=7d4b7e27528d254d406b0dd91ca728ff367a5f4fd13167318feb8c7c37f2bf19";
    KN_CHECK_INT(kn_api__sigv4_parse(ok, strlen(ok), &a, &e), KN_OK);
    KN_CHECK_STR(a.access_key, "AKIDEXAMPLE");
    KN_CHECK_STR(a.date, "20261125");
    KN_CHECK_STR(a.region, "us-east-1");
    KN_CHECK_STR(a.service, "sagemaker");
    KN_CHECK_STR(a.signed_headers, "content-type;host;x-amz-date;x-amz-target");
    KN_CHECK_INT(a.n_signed, 4);
    KN_CHECK_STR(a.signature, "7d4b7e27528d254d406b0dd91ca728ff367a5f4fd13167318feb8c7c37f2bf19");
    /* no spaces, another order, upper-case hex */
    const char *ok2 = "AWS4-HMAC-SHA256 SignedHeaders=host;x-amz-date,Signature="
                      "7D4B7E27528D254D406B0DD91CA728FF367A5F4FD13167318FEB8C7C37F2BF19,"
                      "Credential=ASIAEXAMPLETEMP/20261125/eu-west-2/application-autoscaling/"
                      "aws4_request";
    KN_CHECK_INT(kn_api__sigv4_parse(ok2, strlen(ok2), &a, &e), KN_OK);
    KN_CHECK_STR(a.service, "application-autoscaling");
    KN_CHECK_STR(a.region, "eu-west-2");
    KN_CHECK(a.signature[0] == '7' && a.signature[1] == 'd');

    static const struct {
        const char *h;
        kn_status want;
        const char *msg;
    } bad[] = {
        {"AWS4-HMAC-SHA1 Credential=a/20261125/r/s/aws4_request", KN_INVALID, "AWS4-HMAC-SHA256"},
        {"Bearer xyz", KN_INVALID, "AWS4-HMAC-SHA256"},
        {"", KN_INVALID, "AWS4-HMAC-SHA256"},
        {"AWS4-HMAC-SHA256", KN_BAD_FORMAT, "Credential"},
        {"AWS4-HMAC-SHA256 Credential=A/20261125/r/s/aws4_request, SignedHeaders=host",
         KN_BAD_FORMAT, "Signature"},
        {"AWS4-HMAC-SHA256 Credential=A/2026112/r/s/aws4_request, SignedHeaders=host, "
         "Signature=0000000000000000000000000000000000000000000000000000000000000000",
         KN_BAD_FORMAT, "yyyymmdd"},
        {"AWS4-HMAC-SHA256 Credential=A/20261125/r/s/aws5_request, SignedHeaders=host, "
         "Signature=0000000000000000000000000000000000000000000000000000000000000000",
         KN_BAD_FORMAT, "aws4_request"},
        {"AWS4-HMAC-SHA256 Credential=A/20261125/r/aws4_request, SignedHeaders=host, "
         "Signature=0000000000000000000000000000000000000000000000000000000000000000",
         KN_BAD_FORMAT, "5 parts"},
        {"AWS4-HMAC-SHA256 Credential=A/20261125/r/s/x/aws4_request, SignedHeaders=host, "
         "Signature=0000000000000000000000000000000000000000000000000000000000000000",
         KN_BAD_FORMAT, "5 parts"},
        {"AWS4-HMAC-SHA256 Credential=A/20261125//s/aws4_request, SignedHeaders=host, "
         "Signature=0000000000000000000000000000000000000000000000000000000000000000",
         KN_BAD_FORMAT, "region"},
        {"AWS4-HMAC-SHA256 Credential=A/20261125/r/s/aws4_request, SignedHeaders=Host, "
         "Signature=0000000000000000000000000000000000000000000000000000000000000000",
         KN_BAD_FORMAT, "lower-case"},
        {"AWS4-HMAC-SHA256 Credential=A/20261125/r/s/aws4_request, SignedHeaders=x-amz-date, "
         "Signature=0000000000000000000000000000000000000000000000000000000000000000",
         KN_BAD_FORMAT, "'host'"},
        {"AWS4-HMAC-SHA256 Credential=A/20261125/r/s/aws4_request, SignedHeaders=host;;a, "
         "Signature=0000000000000000000000000000000000000000000000000000000000000000",
         KN_BAD_FORMAT, "empty header"},
        {"AWS4-HMAC-SHA256 Credential=A/20261125/r/s/aws4_request, SignedHeaders=host, "
         "Signature=00", KN_BAD_FORMAT, "64 hex"},
        {"AWS4-HMAC-SHA256 Credential=A/20261125/r/s/aws4_request, SignedHeaders=host, "
         "Signature=000000000000000000000000000000000000000000000000000000000000000g",
         KN_BAD_FORMAT, "64 hex"},
        {"AWS4-HMAC-SHA256 Credential=A/20261125/r/s/aws4_request, SignedHeaders=host, "
         "Signature=0000000000000000000000000000000000000000000000000000000000000000, Foo=1",
         KN_BAD_FORMAT, "unknown component"},
        {"AWS4-HMAC-SHA256 Credential=A/20261125/r/s/aws4_request, Credential=A/20261125/r/s/"
         "aws4_request, SignedHeaders=host, "
         "Signature=0000000000000000000000000000000000000000000000000000000000000000",
         KN_BAD_FORMAT, "repeats"},
        {"AWS4-HMAC-SHA256 Credential", KN_BAD_FORMAT, "Name=value"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        kn_err_clear(&e);
        kn_status s = kn_api__sigv4_parse(bad[i].h, strlen(bad[i].h), &a, &e);
        KN_CHECK_INT(s, bad[i].want);
        KN_CHECK_CONTAINS(e.msg, bad[i].msg);
    }
    /* not NUL-terminated within len: only len bytes are read */
    char buf[300];
    memcpy(buf, ok, 200);
    KN_CHECK(kn_api__sigv4_parse(buf, 200, &a, &e) != KN_OK);
}

static void test_errors(void)
{
    reply r;
    call("SageMaker.Frobnicate", "{}", NULL, &r);
    KN_CHECK_INT(r.status, 400);
    KN_CHECK_STR(member(&r, "__type"), "UnknownOperationException");
    KN_CHECK_CONTAINS(member(&r, "message"), "SageMaker.Frobnicate");
    KN_CHECK_INT(strlen(r.request_id), 36);
    done(&r);

    call("SageMaker.DescribeModel", "{\"ModelName\": ", NULL, &r);
    KN_CHECK_INT(r.status, 400);
    KN_CHECK_STR(member(&r, "__type"), "SerializationException");
    done(&r);
    call("SageMaker.DescribeModel", "[1, 2]", NULL, &r);
    KN_CHECK_STR(member(&r, "__type"), "SerializationException");
    done(&r);
    call("SageMaker.DescribeModel", "{\"ModelName\": \"a\", \"ModelName\": \"b\"}", NULL, &r);
    KN_CHECK_STR(member(&r, "__type"), "SerializationException");
    done(&r);
    call("SageMaker.DescribeModel", "{\"ModelName\": [\"x\"]}", NULL, &r);
    KN_CHECK_STR(member(&r, "__type"), "SerializationException");
    KN_CHECK_CONTAINS(member(&r, "message"), "'modelName'");
    done(&r);

    call("SageMaker.DescribeModel", "{}", NULL, &r);
    KN_CHECK_STR(member(&r, "__type"), "ValidationException");
    KN_CHECK_STR(member(&r, "message"),
                 "1 validation error detected: Value null at 'modelName' failed to satisfy "
                 "constraint: Member must not be null");
    done(&r);
    call("SageMaker.DescribeModel", "", NULL, &r); /* empty body = {} */
    KN_CHECK_STR(member(&r, "__type"), "ValidationException");
    done(&r);
    call("SageMaker.CreateModel",
         "{\"ModelName\": \"-x\", \"PrimaryContainer\": {\"Mode\": \"Bogus\"}, "
         "\"VpcConfig\": {}}",
         NULL, &r);
    KN_CHECK_STR(member(&r, "__type"), "ValidationException");
    KN_CHECK_CONTAINS(member(&r, "message"), "4 validation errors detected");
    KN_CHECK_CONTAINS(member(&r, "message"), "Value '-x' at 'modelName'");
    KN_CHECK_CONTAINS(member(&r, "message"), "'vpcConfig' is not supported");
    KN_CHECK_CONTAINS(member(&r, "message"), "enum value set: [SingleModel, MultiModel]");
    KN_CHECK_CONTAINS(member(&r, "message"), "'primaryContainer.modelDataUrl'");
    done(&r);

    const char *lambda_scope =
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261125/us-east-1/lambda/aws4_request, "
        "SignedHeaders=host;x-amz-date, "
        "Signature=0000000000000000000000000000000000000000000000000000000000000000";
    call("SageMaker.ListModels", "{}", lambda_scope, &r);
    KN_CHECK_INT(r.status, 403);
    KN_CHECK_STR(member(&r, "__type"), "InvalidSignatureException");
    KN_CHECK_CONTAINS(member(&r, "message"), "'sagemaker'");
    done(&r);
    call("SageMaker.ListModels", "{}", "AWS4-HMAC-SHA256 Credential=AKID", &r);
    KN_CHECK_INT(r.status, 400);
    KN_CHECK_STR(member(&r, "__type"), "IncompleteSignatureException");
    done(&r);

    /* no fleet in this test: endpoints are unavailable, not a crash */
    call("SageMaker.DescribeEndpoint", "{\"EndpointName\": \"e\"}", NULL, &r);
    KN_CHECK_INT(r.status, 503);
    KN_CHECK_STR(member(&r, "__type"), "ServiceUnavailable");
    done(&r);
    call("SageMaker.UpdateEndpoint", "{}", NULL, &r);
    KN_CHECK_STR(member(&r, "__type"), "ServiceUnavailable");
    done(&r);

    /* REST: unknown path, runtime without a fleet, 413 */
    kn_api_header h[] = {{"Content-Type", "image/jpeg"}};
    kn_api_request req = {.method = "GET", .path = "/nothing/here", .headers = h, .n_headers = 1};
    kn_api_response resp;
    kn_api_response_init(&resp);
    kn_api_handle(api, &req, &resp);
    KN_CHECK_INT(resp.status, 404);
    KN_CHECK_STR(kn_api_response_header(&resp, "x-amzn-ErrorType"), "UnknownOperationException");
    KN_CHECK_STR(resp.content_type, "application/json");
    req.method = "POST";
    req.path = "/endpoints/dog-ep/invocations";
    kn_api_handle(api, &req, &resp);
    KN_CHECK_INT(resp.status, 503);
    KN_CHECK_STR(resp.operation, "POST /endpoints/dog-ep/invocations");
    req.body_too_large = true;
    kn_api_handle(api, &req, &resp);
    KN_CHECK_INT(resp.status, 413);
    KN_CHECK_STR(kn_api_response_header(&resp, "x-amzn-ErrorType"),
                 "RequestEntityTooLargeException");
    KN_CHECK_CONTAINS((const char *)resp.body.data, "InvokeEndpoint");
    /* Query: XML error (an IAM action kennel does not offer) */
    kn_api_header qh[] = {{"Content-Type", "application/x-www-form-urlencoded; charset=utf-8"}};
    const char *form = "Action=CreateGroup&Version=2010-05-08&RoleName=r%3Cx%3E";
    kn_api_request q = {.method = "POST",
                        .path = "/",
                        .headers = qh,
                        .n_headers = 1,
                        .body = (const uint8_t *)form,
                        .body_len = strlen(form)};
    kn_api_handle(api, &q, &resp);
    KN_CHECK_INT(resp.status, 400);
    KN_CHECK_STR(resp.content_type, "text/xml");
    KN_CHECK_CONTAINS((const char *)resp.body.data,
                      "<Error><Type>Sender</Type><Code>InvalidAction</Code>");
    KN_CHECK_CONTAINS((const char *)resp.body.data, "CreateGroup");
    kn_api_response_deinit(&resp);

    char v[64];
    KN_CHECK(kn_api__form_get(form, strlen(form), "RoleName", v, sizeof v));
    KN_CHECK_STR(v, "r<x>");
    KN_CHECK(!kn_api__form_get(form, strlen(form), "Role", v, sizeof v));
    KN_CHECK(!kn_api__form_get("a=%zz", 5, "a", v, sizeof v));
    KN_CHECK(kn_api__url_decode("dog-fn%3Alive", v, sizeof v));
    KN_CHECK_STR(v, "dog-fn:live");
    KN_CHECK(!kn_api__url_decode("a%00b", v, sizeof v));
    KN_CHECK(!kn_api__url_decode("a%4", v, sizeof v));
}

static void test_models_and_configs(void)
{
    char pkg[400], body[1200];
    snprintf(pkg, sizeof pkg, "%s/pkg", tmpdir);
    mkdir(pkg, 0700);
    char mj[500];
    snprintf(mj, sizeof mj, "%s/model.json", pkg);
    kn_err e;
    KN_REQUIRE(kn_file_write(mj, "{}", 2, &e) == KN_OK);

    reply r;
    snprintf(body, sizeof body,
             "{\"ModelName\": \"Dog\", \"ExecutionRoleArn\": \"arn:aws:iam::123456789012:role/r\","
             " \"PrimaryContainer\": {\"ModelDataUrl\": \"file://%s\", \"Environment\": "
             "{\"K\": \"V\"}}, \"Tags\": [{\"Key\": \"team\", \"Value\": \"dogs\"}]}",
             pkg);
    call("SageMaker.CreateModel", body, NULL, &r);
    KN_CHECK_INT(r.status, 200);
    KN_CHECK_STR(member(&r, "ModelArn"), "arn:aws:sagemaker:us-east-1:123456789012:model/dog");
    done(&r);
    call("SageMaker.CreateModel", body, NULL, &r);
    KN_CHECK_STR(member(&r, "__type"), "ValidationException");
    KN_CHECK_CONTAINS(member(&r, "message"), "Cannot create already existing model");
    done(&r);
    snprintf(body, sizeof body,
             "{\"ModelName\": \"s3\", \"PrimaryContainer\": {\"ModelDataUrl\": \"s3://b/k\"}}");
    call("SageMaker.CreateModel", body, NULL, &r);
    KN_CHECK_STR(member(&r, "__type"), "ValidationException");
    KN_CHECK_CONTAINS(member(&r, "message"), "S3");
    done(&r);

    call("SageMaker.DescribeModel", "{\"ModelName\": \"dog\"}", NULL, &r);
    KN_CHECK_INT(r.status, 200);
    KN_CHECK_STR(member(&r, "ModelName"), "Dog");
    json_t *pc = r.body ? json_object_get(r.body, "PrimaryContainer") : NULL;
    KN_CHECK_STR(json_string_value(json_object_get(json_object_get(pc, "Environment"), "K")),
                 "V");
    KN_CHECK(r.body && json_is_number(json_object_get(r.body, "CreationTime")));
    done(&r);

    call("SageMaker.CreateEndpointConfig",
         "{\"EndpointConfigName\": \"cfg\", \"ProductionVariants\": ["
         "{\"VariantName\": \"A\", \"ModelName\": \"dog\", \"InitialInstanceCount\": 1, "
         "\"InstanceType\": \"ml.m5.large\"},"
         "{\"VariantName\": \"A\", \"ModelName\": \"dog\", \"InitialInstanceCount\": 1, "
         "\"InstanceType\": \"ml.m5.large\", \"InitialVariantWeight\": -1}]}",
         NULL, &r);
    KN_CHECK_STR(member(&r, "__type"), "ValidationException");
    KN_CHECK_CONTAINS(member(&r, "message"), "2 validation errors");
    KN_CHECK_CONTAINS(member(&r, "message"), "'productionVariants.2.member.initialVariantWeight'");
    KN_CHECK_CONTAINS(member(&r, "message"), "variant names must be unique");
    done(&r);
    call("SageMaker.CreateEndpointConfig",
         "{\"EndpointConfigName\": \"cfg\", \"ProductionVariants\": ["
         "{\"VariantName\": \"A\", \"ModelName\": \"dog\", \"InitialInstanceCount\": 1, "
         "\"InstanceType\": \"ml.q1.none\"}]}",
         NULL, &r);
    KN_CHECK_CONTAINS(member(&r, "message"), "Value 'ml.q1.none' at "
                                             "'productionVariants.1.member.instanceType'");
    KN_CHECK_CONTAINS(member(&r, "message"), "ml.m5.large");
    done(&r);
    call("SageMaker.CreateEndpointConfig",
         "{\"EndpointConfigName\": \"cfg\", \"ProductionVariants\": []}", NULL, &r);
    KN_CHECK_CONTAINS(member(&r, "message"), "'productionVariants'");
    done(&r);
    call("SageMaker.CreateEndpointConfig",
         "{\"EndpointConfigName\": \"cfg\", \"ProductionVariants\": ["
         "{\"VariantName\": \"AllTraffic\", \"ModelName\": \"dog\", \"InitialInstanceCount\": 3, "
         "\"InstanceType\": \"ml.m5.large\", \"InitialVariantWeight\": 0.5}]}",
         NULL, &r);
    KN_CHECK_INT(r.status, 200);
    KN_CHECK_STR(member(&r, "EndpointConfigArn"),
                 "arn:aws:sagemaker:us-east-1:123456789012:endpoint-config/cfg");
    done(&r);
    call("SageMaker.DescribeEndpointConfig", "{\"EndpointConfigName\": \"cfg\"}", NULL, &r);
    json_t *pv = r.body ? json_array_get(json_object_get(r.body, "ProductionVariants"), 0) : NULL;
    KN_CHECK_INT(json_integer_value(json_object_get(pv, "InitialInstanceCount")), 3);
    KN_CHECK_NEAR(json_number_value(json_object_get(pv, "InitialVariantWeight")), 0.5, 0);
    done(&r);
    call("SageMaker.ListEndpointConfigs", "{\"NameContains\": \"CF\"}", NULL, &r);
    KN_CHECK_INT(json_array_size(json_object_get(r.body, "EndpointConfigs")), 1);
    done(&r);
    call("SageMaker.ListModels", "{\"SortBy\": \"Size\"}", NULL, &r);
    KN_CHECK_CONTAINS(member(&r, "message"), "enum value set: [Name, CreationTime]");
    done(&r);
    call("SageMaker.ListModels", "{\"NextToken\": \"nonsense\"}", NULL, &r);
    KN_CHECK_CONTAINS(member(&r, "message"), "Invalid pagination token");
    done(&r);
    call("SageMaker.DeleteEndpointConfig", "{\"EndpointConfigName\": \"cfg\"}", NULL, &r);
    KN_CHECK_INT(r.status, 200);
    KN_CHECK_STR(r.text, "{}");
    done(&r);
    call("SageMaker.DeleteModel", "{\"ModelName\": \"DOG\"}", NULL, &r);
    KN_CHECK_INT(r.status, 200);
    done(&r);
    call("SageMaker.DeleteModel", "{\"ModelName\": \"dog\"}", NULL, &r);
    KN_CHECK_STR(member(&r, "__type"), "ValidationException");
    KN_CHECK_CONTAINS(member(&r, "message"), "Could not find model");
    done(&r);
}

/* --------------------------------------------------- wire captures */

/* Finds "name: value" (name case-insensitive) in the capture's request head. */
static bool head_value(const char *text, const char *name, char *out, size_t n)
{
    const char *head = strstr(text, "=== RAW REQUEST HEAD");
    const char *end = head ? strstr(head, "=== BODY") : NULL;
    if (!head || !end)
        return false;
    size_t k = strlen(name);
    for (const char *line = head; line && line < end; line = strchr(line, '\n')) {
        if (*line == '\n')
            line++;
        if (strncasecmp(line, name, k) == 0 && line[k] == ':') {
            const char *v = line + k + 1;
            while (*v == ' ')
                v++;
            size_t len = strcspn(v, "\r\n");
            snprintf(out, n, "%.*s", (int)len, v);
            return true;
        }
    }
    return false;
}

static bool parsed_value(const char *text, const char *label, char *out, size_t n)
{
    const char *p = strstr(text, label);
    if (!p)
        return false;
    p = strchr(p, ':');
    if (!p)
        return false;
    p++;
    while (*p == ' ')
        p++;
    snprintf(out, n, "%.*s", (int)strcspn(p, "\r\n"), p);
    return true;
}

static void test_wire_captures(void)
{
    char dir[512];
    if (!kn_test_shared("wire/captures", dir, sizeof dir)) {
        printf("     (../shared/wire/captures absent: capture checks skipped)\n");
        return;
    }
    DIR *d = opendir(dir);
    KN_REQUIRE(d);
    struct dirent *de;
    int n = 0;
    while ((de = readdir(d))) {
        size_t len = strlen(de->d_name);
        if (len < 5 || strcmp(de->d_name + len - 4, ".txt") != 0)
            continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        kn_buf b;
        kn_buf_init(&b, 1 << 22);
        kn_err e;
        if (kn_file_read(path, &b, &e) != KN_OK) {
            kn_buf_deinit(&b);
            continue;
        }
        const char *text = (const char *)b.data;
        char authz[2048], scope_service[128], signed_h[1024], target[128];
        if (!head_value(text, "Authorization", authz, sizeof authz)) {
            kn_buf_deinit(&b);
            continue;
        }
        n++;
        kn_sigv4_auth a;
        kn_test_current = de->d_name;
        KN_CHECK_INT(kn_api__sigv4_parse(authz, strlen(authz), &a, &e), KN_OK);
        if (parsed_value(text, "SigV4 signing service", scope_service, sizeof scope_service))
            KN_CHECK_STR(a.service, scope_service);
        if (parsed_value(text, "SigV4 signed headers", signed_h, sizeof signed_h))
            KN_CHECK_STR(a.signed_headers, signed_h);
        KN_CHECK_STR(a.region, "us-east-1");
        /* routing: the captured operation, or that protocol's unknown-operation error */
        kn_api_header h[3] = {{"Authorization", authz}};
        size_t nh = 1;
        if (head_value(text, "X-Amz-Target", target, sizeof target))
            h[nh++] = (kn_api_header){"X-Amz-Target", target};
        char ct[256];
        if (head_value(text, "Content-Type", ct, sizeof ct))
            h[nh++] = (kn_api_header){"Content-Type", ct};
        char reqline[1024] = "";
        const char *rl = strstr(text, "=== RAW REQUEST HEAD");
        rl = rl ? strchr(rl, '\n') : NULL;
        if (rl)
            snprintf(reqline, sizeof reqline, "%.*s", (int)strcspn(rl + 1, "\r\n"), rl + 1);
        char method[16] = "", rawpath[900] = "";
        sscanf(reqline, "%15s %899s", method, rawpath);
        char *qm = strchr(rawpath, '?');
        if (qm)
            *qm++ = '\0';
        kn_api_request req = {.method = method,
                              .path = rawpath,
                              .query = qm,
                              .headers = h,
                              .n_headers = nh,
                              .body = (const uint8_t *)"{}",
                              .body_len = 2};
        kn_api_match m;
        kn_api__route_find(&req, &a, &m);
        bool sagemaker = strstr(de->d_name, "_sm_") || strstr(de->d_name, "smr");
        if (sagemaker && !strstr(de->d_name, "Training") && !strstr(de->d_name, "Tuning")) {
            KN_CHECK(m.route != NULL);
            if (m.route)
                KN_CHECK_STR(m.route->service, a.service);
        }
        kn_api_response resp;
        kn_api_response_init(&resp);
        kn_api_handle(api, &req, &resp);
        KN_CHECK(resp.status >= 200 && resp.status < 600);
        if (!m.route) {
            if (m.proto == KN_PROTO_JSON)
                KN_CHECK_STR(resp.error_code, "UnknownOperationException");
            else if (m.proto == KN_PROTO_REST_JSON)
                KN_CHECK_STR(resp.error_code, "UnknownOperationException");
        }
        kn_api_response_deinit(&resp);
        kn_buf_deinit(&b);
    }
    closedir(d);
    kn_test_current = "test_wire_captures";
    KN_CHECK(n >= 70);
}

int main(void)
{
    const char *base = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/kn_api_XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(tmpdir))
        return 1;
    kn_log_set_level(KN_LOG_WARN);
    char data[300];
    snprintf(data, sizeof data, "%s/data", tmpdir);
    kn_platform_params pp = kn_platform_default_params();
    pp.data_dir = data;
    pp.manual_clock = true;
    kn_err e;
    if (kn_platform_open(&pp, &plat, &e) || kn_api_new(plat, NULL, &api, &e)) {
        fprintf(stderr, "setup: %s\n", e.msg);
        return 1;
    }
    KN_RUN(test_sigv4_parse);
    KN_RUN(test_errors);
    KN_RUN(test_models_and_configs);
    KN_RUN(test_wire_captures);
    kn_api_free(api);
    kn_platform_close(plat);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", tmpdir);
    return kn_test_finish();
}
