/* The IAM store (iam_db.c, audit_db.c) on a real data dir: first start makes
 * the administrator and its 0600 credentials file (and only once); secrets
 * are not in kennel.db in clear and do not decrypt under another iam.key;
 * the identity of a key and the policies that apply to it; execution-role
 * credentials for a service are minted only when the role's trust policy
 * names that service, and authorize as the role's session; the audit log
 * reads back filtered. */
#include "kn_test.h"

#include "kennel/auth.h"
#include "kennel/platform.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static char tmpdir[256];

static char last_rid[64];
static kn_status last_row(const kn_audit_rec *r, void *ctx)
{
    snprintf(ctx, sizeof last_rid, "%s", r->request_id);
    return KN_OK;
}

static kn_status count_row(const kn_audit_rec *r, void *ctx)
{
    (void)r;
    (*(int *)ctx)++;
    return KN_OK;
}

static bool file_has(const char *path, const char *needle)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return false;
    static char buf[1 << 22];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    return memmem(buf, n, needle, strlen(needle)) != NULL;
}

static void test_iam(void)
{
    char dir[300], path[1024], other[300];
    snprintf(dir, sizeof dir, "%s/data", tmpdir);
    kn_platform_params pp = kn_platform_default_params();
    pp.data_dir = dir;
    kn_platform *p = NULL;
    kn_iam *iam = NULL;
    kn_err e;
    KN_REQUIRE(kn_platform_open(&pp, &p, &e) == KN_OK);
    KN_REQUIRE(kn_iam_open(p, &iam, &e) == KN_OK);
    bool created = false;
    const char *secret = "test/secret/AAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    KN_CHECK_INT(kn_iam_bootstrap(iam, "AKIDTEST1", secret, &created, path, sizeof path, &e),
                 KN_OK);
    KN_CHECK(created);
    struct stat st;
    KN_CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600);
    KN_CHECK(file_has(path, "aws_secret_access_key = test/secret/AAAAAAAAAAAAAAAAAAAAAAAAAAAA"));
    snprintf(other, sizeof other, "%s/iam.key", dir);
    KN_CHECK(stat(other, &st) == 0 && (st.st_mode & 0777) == 0600);
    /* a second start does not make another administrator */
    KN_CHECK_INT(kn_iam_bootstrap(iam, "AKIDOTHER", "x", &created, path, sizeof path, &e),
                 KN_OK);
    KN_CHECK(!created);

    kn_iam_identity id;
    KN_CHECK_INT(kn_iam_lookup_key(iam, "AKIDTEST1", &id, &e), KN_OK);
    KN_CHECK_STR(id.secret, secret);
    KN_CHECK_STR(id.arn, "arn:aws:iam::123456789012:user/admin");
    KN_CHECK_INT(kn_iam_lookup_key(iam, "AKIDOTHER", &id, &e), KN_NOT_FOUND);
    char **docs = NULL, **names = NULL;
    size_t n = 0;
    KN_CHECK_INT(kn_iam_lookup_key(iam, "AKIDTEST1", &id, &e), KN_OK);
    KN_CHECK_INT(kn_iam_identity_policies(iam, &id, &docs, &names, &n, &e), KN_OK);
    KN_CHECK_INT(n, 1);
    if (n == 1)
        KN_CHECK_STR(names[0], KN_IAM_ADMIN_POLICY_ARN);
    kn_iam_strings_free(docs, n);
    kn_iam_strings_free(names, n);

    /* execution roles */
    const char *trust_fn = "{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\","
                           "\"Principal\":{\"Service\":\"lambda.amazonaws.com\"},"
                           "\"Action\":\"sts:AssumeRole\"}]}";
    char *json = NULL;
    KN_CHECK_INT(kn_iam_role_create(iam, "fn-role", "/service-role/", trust_fn, NULL, 0, &json,
                                    &e),
                 KN_OK);
    free(json);
    const char *role = "arn:aws:iam::123456789012:role/service-role/fn-role";
    KN_CHECK_INT(kn_iam_inline_put(iam, "role", "fn-role", "invoke",
                                   "{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":"
                                   "\"Allow\",\"Action\":\"sagemaker:InvokeEndpoint\","
                                   "\"Resource\":\"*\"}]}",
                                   &e),
                 KN_OK);
    kn_iam_credentials cr;
    KN_CHECK_INT(kn_iam_execution_credentials(iam, role, "sagemaker.amazonaws.com", "s1", 0, &cr,
                                              &e),
                 KN_INVALID);
    KN_CHECK_CONTAINS(e.msg, "sagemaker.amazonaws.com is not authorized");
    KN_CHECK_INT(kn_iam_execution_credentials(iam, "arn:aws:iam::123456789012:role/none",
                                              "lambda.amazonaws.com", "s1", 0, &cr, &e),
                 KN_NOT_FOUND);
    double before = (double)time(NULL);
    KN_CHECK_INT(kn_iam_execution_credentials(iam, role, "lambda.amazonaws.com", "dog-fn", 0,
                                              &cr, &e),
                 KN_OK);
    KN_CHECK(!strncmp(cr.access_key, "ASIA", 4));
    KN_CHECK_STR(cr.session_arn, "arn:aws:sts::123456789012:assumed-role/fn-role/dog-fn");
    KN_CHECK(cr.expiration >= before + 3599 && cr.expiration <= before + 3601);
    KN_CHECK_INT(kn_iam_lookup_key(iam, cr.access_key, &id, &e), KN_OK);
    KN_CHECK(id.kind == KN_IAM_SESSION);
    KN_CHECK_STR(id.secret, cr.secret);
    KN_CHECK_STR(id.role_arn, role);
    KN_CHECK_INT(kn_iam_identity_policies(iam, &id, &docs, &names, &n, &e), KN_OK);
    KN_CHECK_INT(n, 1);
    if (n == 1)
        KN_CHECK_STR(names[0], "inline:invoke");
    kn_iam_strings_free(docs, n);
    kn_iam_strings_free(names, n);
    /* a role with policies cannot be deleted */
    KN_CHECK_INT(kn_iam_role_delete(iam, "fn-role", &e), KN_RESOURCE_IN_USE);

    /* audit */
    kn_audit_rec r = {.time = before, .principal = cr.session_arn,
                      .action = "sagemaker:InvokeEndpoint", .resource = "*",
                      .source = "127.0.0.1", .decision = "Allow", .statement = "inline:invoke#0",
                      .request_id = "r1", .error_code = ""};
    KN_CHECK_INT(kn_iam_audit_add(iam, &r, &e), KN_OK);
    r.action = "sagemaker:ListEndpoints";
    r.decision = "ImplicitDeny";
    KN_CHECK_INT(kn_iam_audit_add(iam, &r, &e), KN_OK);
    int rows = 0;
    kn_audit_query q = {.action = "SAGEMAKER:invokeendpoint"};
    kn_iam_audit_flush(iam); /* rows are written in batches by a thread */
    KN_CHECK_INT(kn_audit_read(dir, &q, count_row, &rows, &e), KN_OK);
    KN_CHECK_INT(rows, 1);
    rows = 0;
    q = (kn_audit_query){.principal = "assumed-role/fn-role/"};
    KN_CHECK_INT(kn_audit_read(dir, &q, count_row, &rows, &e), KN_OK);
    KN_CHECK_INT(rows, 2);
    rows = 0;
    q = (kn_audit_query){.since = before + 10};
    KN_CHECK_INT(kn_audit_read(dir, &q, count_row, &rows, &e), KN_OK);
    KN_CHECK_INT(rows, 0);
    /* rows still queued when the IAM store closes are written, in order */
    for (int i = 0; i < 1500; i++) {
        char rid[32];
        snprintf(rid, sizeof rid, "bulk-%d", i);
        r.request_id = rid;
        r.principal = "arn:aws:iam::000000000000:user/bulk";
        KN_CHECK_INT(kn_iam_audit_add(iam, &r, &e), KN_OK);
    }
    kn_iam_close(iam);
    iam = NULL;
    rows = 0;
    q = (kn_audit_query){.principal = "user/bulk", .limit = 5000};
    KN_CHECK_INT(kn_audit_read(dir, &q, count_row, &rows, &e), KN_OK);
    KN_CHECK_INT(rows, 1500);
    last_rid[0] = 0;
    q = (kn_audit_query){.principal = "user/bulk", .limit = 1};
    KN_CHECK_INT(kn_audit_read(dir, &q, last_row, last_rid, &e), KN_OK);
    KN_CHECK_STR(last_rid, "bulk-1499");

    /* no secret in clear anywhere in the database files */
    char db[400];
    snprintf(db, sizeof db, "%s/kennel.db", dir);
    KN_CHECK(!file_has(db, secret) && !file_has(db, cr.secret));
    snprintf(db, sizeof db, "%s/kennel.db-wal", dir);
    KN_CHECK(!file_has(db, secret) && !file_has(db, cr.secret));

    /* another key file: secrets do not decrypt (and say why) */
    snprintf(other, sizeof other, "%s/iam.key", dir);
    FILE *f = fopen(other, "r+b");
    KN_REQUIRE(f != NULL);
    fputc('X', f);
    fclose(f);
    KN_REQUIRE(kn_iam_open(p, &iam, &e) == KN_OK);
    KN_CHECK_INT(kn_iam_lookup_key(iam, "AKIDTEST1", &id, &e), KN_BAD_FORMAT);
    KN_CHECK_CONTAINS(e.msg, "iam.key");
    kn_iam_close(iam);
    /* a key file others can read is refused */
    chmod(other, 0644);
    KN_CHECK_INT(kn_iam_open(p, &iam, &e), KN_IO);
    KN_CHECK_CONTAINS(e.msg, "chmod 600");
    kn_platform_close(p);
}

int main(void)
{
    const char *base = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/kn_iam_XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    kn_log_set_level(KN_LOG_WARN);
    KN_RUN(test_iam);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", tmpdir);
    return kn_test_finish();
}
