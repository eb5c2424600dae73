/* Registry and clock unit tests on a real SQLite file in a temp dir:
 * create/get/delete/list of models and endpoint configurations, name
 * uniqueness ignoring case, ARNs, keyset pagination in both orders and both
 * sort keys, token tampering, the data-dir lock, reopening (migrations run
 * once, rows survive), endpoints (snapshots, status, updates, desired
 * state, list filters), model data URL resolution, and the clock (rate,
 * manual advance, condition waits in clock time). */
#include "kn_test.h"
#include "platform_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char tmpdir[256];

static void rm_rf(const char *p)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", p);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", p);
}

static kn_model_rec model(const char *name, const char *path)
{
    kn_model_rec m;
    memset(&m, 0, sizeof m);
    m.name = (char *)name;
    m.execution_role_arn = (char *)"arn:aws:iam::123456789012:role/r";
    m.container_json = (char *)"{\"ModelDataUrl\":\"/x\"}";
    m.model_data_url = (char *)path;
    m.model_data_path = (char *)path;
    return m;
}

static kn_clock *manual_clock(double start)
{
    kn_clock_params cp = kn_clock_default_params();
    cp.manual = true;
    cp.start_wall = start;
    kn_clock *c = NULL;
    kn_err e;
    if (kn_clock_new(&cp, &c, &e) != KN_OK)
        return NULL;
    return c;
}

static kn_registry *open_reg(const char *path, kn_clock *c)
{
    kn_registry_params rp = kn_registry_default_params();
    rp.path = path;
    rp.clock = c;
    kn_registry *r = NULL;
    kn_err e;
    if (kn_registry_open(&rp, &r, &e) != KN_OK) {
        fprintf(stderr, "open: %s\n", e.msg);
        return NULL;
    }
    return r;
}

/* a model created with a name that only differs in case is refused; the
 * ARN lower-cases the name; delete works by any case */
static void test_models(void)
{
    kn_clock *c = manual_clock(1700000000);
    char db[300];
    snprintf(db, sizeof db, "%s/models.db", tmpdir);
    kn_registry *r = open_reg(db, c);
    KN_REQUIRE(r);
    KN_CHECK_INT(kn_registry_schema_version(r), kn_registry_latest_schema_version());
    kn_err e;
    kn_model_rec m = model("Dog-Model", "/srv/m");
    KN_CHECK_INT(kn_registry_model_create(r, &m, &e), KN_OK);
    KN_CHECK_STR(m.arn, "arn:aws:sagemaker:us-east-1:123456789012:model/dog-model");
    KN_CHECK_NEAR(m.creation_time, 1700000000, 1e-6);
    free(m.arn);

    kn_model_rec dup = model("dog-MODEL", "/srv/m");
    KN_CHECK_INT(kn_registry_model_create(r, &dup, &e), KN_EXISTS);
    KN_CHECK_CONTAINS(e.msg, "Cannot create already existing model");
    KN_CHECK_CONTAINS(e.msg, "model/dog-model");

    kn_model_rec got;
    KN_CHECK_INT(kn_registry_model_get(r, "DOG-model", &got, &e), KN_OK);
    KN_CHECK_STR(got.name, "Dog-Model");
    KN_CHECK_STR(got.model_data_path, "/srv/m");
    KN_CHECK_STR(got.container_json, "{\"ModelDataUrl\":\"/x\"}");
    KN_CHECK(got.tags_json == NULL);
    kn_model_rec_deinit(&got);

    KN_CHECK_INT(kn_registry_model_get(r, "nope", &got, &e), KN_NOT_FOUND);
    KN_CHECK_STR(e.msg, "Could not find model \"arn:aws:sagemaker:us-east-1:123456789012:model/nope\".");
    KN_CHECK_INT(kn_registry_model_delete(r, "nope", &e), KN_NOT_FOUND);
    KN_CHECK_INT(kn_registry_model_delete(r, "dog-model", &e), KN_OK);
    KN_CHECK_INT(kn_registry_model_get(r, "Dog-Model", &got, &e), KN_NOT_FOUND);
    kn_registry_close(r);
    kn_clock_free(c);
}

static kn_status list_all(kn_registry *r, kn_list_params q, char names[][16], int *n)
{
    *n = 0;
    kn_err e;
    char token[512] = "";
    for (int pages = 0; pages < 100; pages++) {
        q.next_token = token[0] ? token : NULL;
        kn_model_page p;
        kn_status s = kn_registry_model_list(r, &q, &p, &e);
        if (s)
            return s;
        for (size_t i = 0; i < p.n; i++)
            snprintf(names[(*n)++], 16, "%s", p.items[i].name);
        if (p.n > (size_t)q.max_results)
            return KN_INTERNAL;
        bool more = p.next_token != NULL;
        if (more)
            snprintf(token, sizeof token, "%s", p.next_token);
        kn_model_page_deinit(&p);
        if (!more)
            return KN_OK;
    }
    return KN_INTERNAL;
}

/* pages of every size cover every row exactly once, in order, for both
 * sort keys and orders, including rows with equal creation times */
static void test_pagination(void)
{
    kn_clock *c = manual_clock(1700000000);
    kn_registry *r = open_reg(":memory:", c);
    KN_REQUIRE(r);
    kn_err e;
    const char *names[] = {"m3", "m1", "m5", "m2", "m4", "m0", "m6"};
    for (int i = 0; i < 7; i++) {
        kn_model_rec m = model(names[i], "/p");
        KN_CHECK_INT(kn_registry_model_create(r, &m, &e), KN_OK);
        free(m.arn);
        if (i % 2 == 1) /* pairs share a creation time */
            kn_clock_advance(c, 1000000000ull);
    }
    char got[16][16];
    int n;
    for (int size = 1; size <= 8; size++) {
        kn_list_params q = kn_list_default_params();
        q.max_results = size;
        q.sort_by = KN_SORT_NAME;
        q.ascending = true;
        KN_CHECK_INT(list_all(r, q, got, &n), KN_OK);
        KN_CHECK_INT(n, 7);
        for (int i = 0; i < n && i < 7; i++) {
            char want[8];
            snprintf(want, sizeof want, "m%d", i);
            KN_CHECK_STR(got[i], want);
        }
        q.ascending = false;
        KN_CHECK_INT(list_all(r, q, got, &n), KN_OK);
        KN_CHECK_INT(n, 7);
        KN_CHECK_STR(got[0], "m6");
        KN_CHECK_STR(got[6], "m0");
        /* creation order, newest first (the default) */
        q = kn_list_default_params();
        q.max_results = size;
        KN_CHECK_INT(list_all(r, q, got, &n), KN_OK);
        KN_CHECK_INT(n, 7);
        for (int i = 0; i < n && i < 7; i++)
            KN_CHECK_STR(got[i], names[6 - i]);
        q.ascending = true;
        KN_CHECK_INT(list_all(r, q, got, &n), KN_OK);
        KN_CHECK_INT(n, 7);
        for (int i = 0; i < n && i < 7; i++)
            KN_CHECK_STR(got[i], names[i]);
    }
    /* filters */
    kn_list_params q = kn_list_default_params();
    q.name_contains = "M5";
    KN_CHECK_INT(list_all(r, q, got, &n), KN_OK);
    KN_CHECK_INT(n, 1);
    q = kn_list_default_params();
    q.has_created_after = true;
    q.created_after = 1700000001.5;
    KN_CHECK_INT(list_all(r, q, got, &n), KN_OK);
    KN_CHECK_INT(n, 3); /* m2 m4 at +2 s... m0 m6 at +3 s: created after 1.5 s */

    /* bad parameters and tokens */
    q = kn_list_default_params();
    q.max_results = 0;
    kn_model_page p;
    KN_CHECK_INT(kn_registry_model_list(r, &q, &p, &e), KN_INVALID);
    q.max_results = 2;
    KN_CHECK_INT(kn_registry_model_list(r, &q, &p, &e), KN_OK);
    KN_REQUIRE(p.next_token);
    char token[256];
    snprintf(token, sizeof token, "%s", p.next_token);
    kn_model_page_deinit(&p);
    q.next_token = token;
    q.sort_by = KN_SORT_NAME; /* a token from another listing */
    KN_CHECK_INT(kn_registry_model_list(r, &q, &p, &e), KN_INVALID);
    KN_CHECK_CONTAINS(e.msg, "Invalid pagination token");
    const char *bad[] = {"", "zz", "abc", "00", "6b317c747c647c317c32", /* k1|t|d|1|2 ok? */
                         "6b327c747c647c317c32"};
    for (size_t i = 1; i < sizeof bad / sizeof bad[0]; i++) {
        q = kn_list_default_params();
        q.next_token = bad[i];
        kn_status s = kn_registry_model_list(r, &q, &p, &e);
        if (s == KN_OK)
            kn_model_page_deinit(&p);
        if (i == 4)
            KN_CHECK_INT(s, KN_OK);
        else
            KN_CHECK_INT(s, KN_INVALID);
    }
    /* a token with a sixth field is not one kennel handed out */
    kn_page_pos pos;
    KN_CHECK_INT(kn_registry__token_decode("6b317c747c647c317c327c33", &pos, &e), KN_INVALID);
    kn_page_pos in = {.sort_by = KN_SORT_NAME, .ascending = true, .id = 42};
    snprintf(in.name, sizeof in.name, "dog-ep");
    char *tok = kn_registry__token_encode(&in);
    KN_REQUIRE(tok);
    KN_CHECK_INT(kn_registry__token_decode(tok, &pos, &e), KN_OK);
    KN_CHECK_STR(pos.name, "dog-ep");
    KN_CHECK_INT(pos.id, 42);
    KN_CHECK(pos.ascending && pos.sort_by == KN_SORT_NAME);
    free(tok);
    kn_registry_close(r);
    kn_clock_free(c);
}

static void test_endpoint_configs(void)
{
    kn_clock *c = manual_clock(1700000000);
    kn_registry *r = open_reg(":memory:", c);
    KN_REQUIRE(r);
    kn_err e;
    kn_model_rec m = model("dog", "/p");
    KN_CHECK_INT(kn_registry_model_create(r, &m, &e), KN_OK);
    free(m.arn);
    kn_variant_rec v[2] = {
        {.variant_name = "AllTraffic", .model_name = "dog", .instance_type = "ml.m5.large",
         .initial_instance_count = 2, .initial_variant_weight = 1.0},
        {.variant_name = "B", .model_name = "cat", .instance_type = "ml.t2.medium",
         .initial_instance_count = 1, .initial_variant_weight = 0.5,
         .startup_health_timeout_s = 600},
    };
    kn_endpoint_config_rec cfg = {.name = "Cfg", .variants = v, .n_variants = 2};
    KN_CHECK_INT(kn_registry_endpoint_config_create(r, &cfg, &e), KN_NOT_FOUND);
    KN_CHECK_CONTAINS(e.msg, "model/cat");
    m = model("cat", "/q");
    KN_CHECK_INT(kn_registry_model_create(r, &m, &e), KN_OK);
    free(m.arn);
    KN_CHECK_INT(kn_registry_endpoint_config_create(r, &cfg, &e), KN_OK);
    KN_CHECK_STR(cfg.arn, "arn:aws:sagemaker:us-east-1:123456789012:endpoint-config/cfg");
    free(cfg.arn);
    cfg.arn = NULL;
    KN_CHECK_INT(kn_registry_endpoint_config_create(r, &cfg, &e), KN_EXISTS);

    kn_endpoint_config_rec got;
    KN_CHECK_INT(kn_registry_endpoint_config_get(r, "cfg", &got, &e), KN_OK);
    KN_CHECK_INT(got.n_variants, 2);
    if (got.n_variants == 2) {
        KN_CHECK_STR(got.variants[0].variant_name, "AllTraffic");
        KN_CHECK_INT(got.variants[0].initial_instance_count, 2);
        KN_CHECK_STR(got.variants[1].instance_type, "ml.t2.medium");
        KN_CHECK_NEAR(got.variants[1].initial_variant_weight, 0.5, 0);
        KN_CHECK_INT(got.variants[1].startup_health_timeout_s, 600);
        KN_CHECK_INT(got.variants[0].startup_health_timeout_s, 0);
    }
    kn_endpoint_config_rec_deinit(&got);

    kn_endpoint_config_page p;
    kn_list_params q = kn_list_default_params();
    KN_CHECK_INT(kn_registry_endpoint_config_list(r, &q, &p, &e), KN_OK);
    KN_CHECK_INT(p.n, 1);
    kn_endpoint_config_page_deinit(&p);

    /* AWS lets a model go while a configuration still names it */
    KN_CHECK_INT(kn_registry_model_delete(r, "cat", &e), KN_OK);
    KN_CHECK_INT(kn_registry_endpoint_config_delete(r, "CFG", &e), KN_OK);
    KN_CHECK_INT(kn_registry_endpoint_config_get(r, "cfg", &got, &e), KN_NOT_FOUND);
    KN_CHECK_CONTAINS(e.msg, "Could not find endpoint configuration");
    /* the variants went with it: the same name can be created again */
    v[1].model_name = "dog";
    KN_CHECK_INT(kn_registry_endpoint_config_create(r, &cfg, &e), KN_OK);
    free(cfg.arn);
    kn_registry_close(r);
    kn_clock_free(c);
}

/* endpoints: created from a configuration (snapshot of its variants with
 * the model paths), survive the configuration's deletion, status changes,
 * updates to another configuration, desired counts, list filters */
static void test_endpoints(void)
{
    kn_clock *c = manual_clock(1700000000);
    kn_registry *r = open_reg(":memory:", c);
    KN_REQUIRE(r);
    kn_err e;
    kn_model_rec m = model("dog", "/models/dog");
    m.container_json = (char *)"{\"Image\":\"img:1\",\"ModelDataUrl\":\"/models/dog\"}";
    KN_CHECK_INT(kn_registry_model_create(r, &m, &e), KN_OK);
    free(m.arn);
    kn_variant_rec v = {.variant_name = "AllTraffic", .model_name = "dog",
                        .instance_type = "ml.m5.large", .initial_instance_count = 2,
                        .initial_variant_weight = 1.0, .startup_health_timeout_s = 120};
    kn_endpoint_config_rec cfg = {.name = "cfg", .variants = &v, .n_variants = 1};
    KN_CHECK_INT(kn_registry_endpoint_config_create(r, &cfg, &e), KN_OK);
    free(cfg.arn);

    kn_endpoint_rec ep;
    KN_CHECK_INT(kn_registry_endpoint_create(r, "ep", "nope", NULL, &ep, &e), KN_NOT_FOUND);
    KN_CHECK_CONTAINS(e.msg, "endpoint-config/nope");
    KN_CHECK_INT(kn_registry_endpoint_get(r, "ep", &ep, &e), KN_NOT_FOUND); /* rolled back */
    KN_CHECK_STR(e.msg, "Could not find endpoint \"arn:aws:sagemaker:us-east-1:123456789012:endpoint/ep\".");
    KN_CHECK_INT(kn_registry_endpoint_create(r, "Ep", "CFG", "[]", &ep, &e), KN_OK);
    KN_CHECK_STR(ep.status, "Creating");
    KN_CHECK_STR(ep.arn, "arn:aws:sagemaker:us-east-1:123456789012:endpoint/ep");
    KN_CHECK_INT(ep.n_variants, 1);
    if (ep.n_variants == 1) {
        KN_CHECK_STR(ep.variants[0].model_data_path, "/models/dog");
        KN_CHECK_STR(ep.variants[0].image, "img:1");
        KN_CHECK_INT(ep.variants[0].desired_count, 2);
        KN_CHECK_INT(ep.variants[0].startup_health_timeout_s, 120);
    }
    kn_endpoint_rec_deinit(&ep);
    KN_CHECK_INT(kn_registry_endpoint_create(r, "EP", "cfg", NULL, &ep, &e), KN_EXISTS);

    /* the configuration and the model can go; the endpoint keeps its snapshot */
    KN_CHECK_INT(kn_registry_endpoint_config_delete(r, "cfg", &e), KN_OK);
    KN_CHECK_INT(kn_registry_model_delete(r, "dog", &e), KN_OK);
    kn_clock_advance(c, 5000000000ull);
    KN_CHECK_INT(kn_registry_endpoint_set_status(r, "ep", "Failed", "it broke", &e), KN_OK);
    KN_CHECK_INT(kn_registry_endpoint_get(r, "ep", &ep, &e), KN_OK);
    KN_CHECK_STR(ep.status, "Failed");
    KN_CHECK_STR(ep.failure_reason, "it broke");
    KN_CHECK_STR(ep.config_name, "CFG");
    KN_CHECK_NEAR(ep.last_modified_time - ep.creation_time, 5, 1e-6);
    KN_CHECK_INT(ep.n_variants, 1);

    /* desired state written back */
    free(ep.status);
    ep.status = strdup("InService");
    free(ep.failure_reason);
    ep.failure_reason = NULL;
    ep.variants[0].desired_count = 3;
    ep.variants[0].desired_weight = 0.25;
    KN_CHECK_INT(kn_registry_endpoint_set_variants(r, &ep, &e), KN_OK);
    kn_endpoint_rec_deinit(&ep);
    KN_CHECK_INT(kn_registry_endpoint_get(r, "ep", &ep, &e), KN_OK);
    KN_CHECK_STR(ep.status, "InService");
    KN_CHECK(ep.failure_reason == NULL);
    KN_CHECK_INT(ep.variants[0].desired_count, 3);
    KN_CHECK_NEAR(ep.variants[0].desired_weight, 0.25, 0);
    kn_endpoint_rec_deinit(&ep);

    /* update to another configuration: a missing model leaves everything as it was */
    kn_variant_rec v2[2] = {
        {.variant_name = "Blue", .model_name = "cat", .instance_type = "ml.t2.medium",
         .initial_instance_count = 1, .initial_variant_weight = 1.0},
        {.variant_name = "Green", .model_name = "cat", .instance_type = "ml.t2.medium",
         .initial_instance_count = 4, .initial_variant_weight = 3.0}};
    m = model("cat", "/models/cat");
    KN_CHECK_INT(kn_registry_model_create(r, &m, &e), KN_OK);
    free(m.arn);
    kn_endpoint_config_rec cfg2 = {.name = "cfg2", .variants = v2, .n_variants = 2};
    KN_CHECK_INT(kn_registry_endpoint_config_create(r, &cfg2, &e), KN_OK);
    free(cfg2.arn);
    KN_CHECK_INT(kn_registry_model_delete(r, "cat", &e), KN_OK);
    KN_CHECK_INT(kn_registry_endpoint_update_config(r, "ep", "cfg2", &ep, &e), KN_NOT_FOUND);
    KN_CHECK_CONTAINS(e.msg, "model/cat");
    KN_CHECK_INT(kn_registry_endpoint_get(r, "ep", &ep, &e), KN_OK);
    KN_CHECK_STR(ep.config_name, "CFG");
    KN_CHECK_INT(ep.n_variants, 1);
    kn_endpoint_rec_deinit(&ep);
    m = model("cat", "/models/cat");
    KN_CHECK_INT(kn_registry_model_create(r, &m, &e), KN_OK);
    free(m.arn);
    KN_CHECK_INT(kn_registry_endpoint_update_config(r, "ep", "cfg2", &ep, &e), KN_OK);
    KN_CHECK_STR(ep.status, "Updating");
    KN_CHECK_STR(ep.config_name, "cfg2");
    KN_CHECK_INT(ep.n_variants, 2);
    if (ep.n_variants == 2) {
        KN_CHECK_STR(ep.variants[1].variant_name, "Green");
        KN_CHECK_INT(ep.variants[1].desired_count, 4);
        KN_CHECK_STR(ep.variants[1].model_data_path, "/models/cat");
        KN_CHECK(ep.variants[1].image == NULL);
    }
    kn_endpoint_rec_deinit(&ep);

    /* list with a status filter */
    m = model("m2", "/p");
    KN_CHECK_INT(kn_registry_model_create(r, &m, &e), KN_OK);
    free(m.arn);
    KN_CHECK_INT(kn_registry_endpoint_create(r, "other", "cfg2", NULL, &ep, &e), KN_OK);
    kn_endpoint_rec_deinit(&ep);
    kn_endpoint_page page;
    kn_list_params q = kn_list_default_params();
    KN_CHECK_INT(kn_registry_endpoint_list(r, &q, &page, &e), KN_OK);
    KN_CHECK_INT(page.n, 2);
    kn_endpoint_page_deinit(&page);
    q.status_equals = "Creating";
    KN_CHECK_INT(kn_registry_endpoint_list(r, &q, &page, &e), KN_OK);
    KN_CHECK_INT(page.n, 1);
    if (page.n == 1)
        KN_CHECK_STR(page.items[0].name, "other");
    kn_endpoint_page_deinit(&page);

    KN_CHECK_INT(kn_registry_endpoint_delete(r, "EP", &e), KN_OK);
    KN_CHECK_INT(kn_registry_endpoint_delete(r, "ep", &e), KN_NOT_FOUND);
    KN_CHECK_INT(kn_registry_endpoint_set_status(r, "ep", "InService", NULL, &e), KN_NOT_FOUND);
    kn_registry_close(r);
    kn_clock_free(c);
}

/* a second open of the same data dir is refused naming the holder; rows and
 * the account survive a reopen; a non-database file is refused */
static void test_platform_dir(void)
{
    char dir[300];
    snprintf(dir, sizeof dir, "%s/data", tmpdir);
    kn_platform_params pp = kn_platform_default_params();
    pp.data_dir = dir;
    pp.account_id = "111122223333";
    kn_platform *p = NULL;
    kn_err e;
    KN_REQUIRE(kn_platform_open(&pp, &p, &e) == KN_OK);
    kn_model_rec m = model("keep", "/p");
    KN_CHECK_INT(kn_registry_model_create(kn_platform_registry(p), &m, &e), KN_OK);
    KN_CHECK_CONTAINS(m.arn, ":111122223333:model/keep");
    free(m.arn);

    /* another process cannot take the lock while we hold it */
    pid_t pid = fork();
    if (pid == 0) {
        kn_platform *q = NULL;
        kn_err e2;
        kn_status s = kn_platform_open(&pp, &q, &e2);
        char want[64];
        snprintf(want, sizeof want, "(pid %ld)", (long)getppid());
        _exit(s == KN_RESOURCE_IN_USE && strstr(e2.msg, dir) && strstr(e2.msg, want) ? 0 : 1);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    KN_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    kn_platform_close(p);

    pp.account_id = "999999999999"; /* ignored: the stored account wins */
    KN_REQUIRE(kn_platform_open(&pp, &p, &e) == KN_OK);
    kn_model_rec got;
    KN_CHECK_INT(kn_registry_model_get(kn_platform_registry(p), "keep", &got, &e), KN_OK);
    KN_CHECK_CONTAINS(got.arn, ":111122223333:");
    kn_model_rec_deinit(&got);
    KN_CHECK_STR(kn_registry_account(kn_platform_registry(p)), "111122223333");

    /* an accelerated clock's times are ahead of the calendar; a restart
     * continues from them instead of going back */
    kn_platform_close(p);
    pp.clock_rate = 1e6;
    KN_REQUIRE(kn_platform_open(&pp, &p, &e) == KN_OK);
    kn_clock_sleep_ns(kn_platform_clock(p), 3600ull * 1000000000ull); /* an hour, in 3.6 ms */
    m = model("later", "/p");
    KN_CHECK_INT(kn_registry_model_create(kn_platform_registry(p), &m, &e), KN_OK);
    double later = m.creation_time;
    free(m.arn);
    kn_platform_close(p);
    pp.clock_rate = 1;
    KN_REQUIRE(kn_platform_open(&pp, &p, &e) == KN_OK);
    KN_CHECK(kn_clock_wall(kn_platform_clock(p)) >= later);

    /* model data URLs */
    char pkg[400], out[4096], url[600];
    snprintf(pkg, sizeof pkg, "%s/artifacts/dog", kn_platform_data_dir(p));
    KN_CHECK_INT(mkdir(pkg, 0700), 0);
    char mj[500];
    snprintf(mj, sizeof mj, "%s/model.json", pkg);
    KN_CHECK_INT(kn_file_write(mj, "{}", 2, &e), KN_OK);
    KN_CHECK_INT(kn_platform_resolve_model_data(p, "kennel://artifacts/dog", out, sizeof out, &e),
                 KN_OK);
    KN_CHECK_STR(out, pkg);
    snprintf(url, sizeof url, "file://%s", pkg);
    KN_CHECK_INT(kn_platform_resolve_model_data(p, url, out, sizeof out, &e), KN_OK);
    KN_CHECK_INT(kn_platform_resolve_model_data(p, pkg, out, sizeof out, &e), KN_OK);
    KN_CHECK_INT(kn_platform_resolve_model_data(p, "kennel://artifacts/../kennel.db", out,
                                                sizeof out, &e),
                 KN_INVALID);
    KN_CHECK_INT(kn_platform_resolve_model_data(p, "kennel://artifacts/%2e%2e/kennel.db", out,
                                                sizeof out, &e),
                 KN_INVALID);
    KN_CHECK_INT(kn_platform_resolve_model_data(p, "s3://b/k", out, sizeof out, &e), KN_INVALID);
    KN_CHECK_CONTAINS(e.msg, "S3");
    KN_CHECK_INT(kn_platform_resolve_model_data(p, "relative/dir", out, sizeof out, &e),
                 KN_INVALID);
    snprintf(url, sizeof url, "%s/kennel.db", kn_platform_data_dir(p));
    KN_CHECK_INT(kn_platform_resolve_model_data(p, url, out, sizeof out, &e), KN_INVALID);
    KN_CHECK_CONTAINS(e.msg, "neither a model package");
    /* a link out of the store is refused */
    char link[500];
    snprintf(link, sizeof link, "%s/artifacts/out", kn_platform_data_dir(p));
    KN_CHECK_INT(symlink(tmpdir, link), 0);
    char outside[400];
    snprintf(outside, sizeof outside, "%s/pkg2", tmpdir);
    KN_CHECK_INT(mkdir(outside, 0700), 0);
    snprintf(mj, sizeof mj, "%s/model.json", outside);
    KN_CHECK_INT(kn_file_write(mj, "{}", 2, &e), KN_OK);
    KN_CHECK_INT(kn_platform_resolve_model_data(p, "kennel://artifacts/out/pkg2", out,
                                                sizeof out, &e),
                 KN_INVALID);
    KN_CHECK_CONTAINS(e.msg, "leads out of the artifact store");
    /* while a link that stays inside is followed */
    KN_CHECK_INT(kn_platform_resolve_model_data(p, "kennel://artifacts/out/data/artifacts/dog",
                                                out, sizeof out, &e),
                 KN_OK);
    kn_platform_close(p);

    /* not a database */
    char junk[400];
    snprintf(junk, sizeof junk, "%s/junk.db", tmpdir);
    KN_CHECK_INT(kn_file_write(junk, "this is not sqlite, not at all, no.....", 40, &e), KN_OK);
    kn_clock *c = manual_clock(0);
    kn_registry_params rp = kn_registry_default_params();
    rp.path = junk;
    rp.clock = c;
    kn_registry *r = NULL;
    KN_CHECK(kn_registry_open(&rp, &r, &e) != KN_OK);
    KN_CHECK(r == NULL);
    kn_clock_free(c);
}

static void test_clock(void)
{
    kn_err e;
    kn_clock_params cp = kn_clock_default_params();
    cp.rate = 0;
    kn_clock *c = NULL;
    KN_CHECK_INT(kn_clock_new(&cp, &c, &e), KN_INVALID);
    cp.rate = 2e6;
    KN_CHECK_INT(kn_clock_new(&cp, &c, &e), KN_INVALID);

    /* a rated clock: spans scale by the rate */
    cp.rate = 1000;
    cp.start_wall = 1000;
    KN_REQUIRE(kn_clock_new(&cp, &c, &e) == KN_OK);
    KN_CHECK_INT(kn_clock_real_ns(c, 300000000000ull), 300000000ull);
    uint64_t t0 = kn_clock_mono_ns(c);
    kn_clock_sleep_ns(c, 2000000000ull); /* 2 clock seconds */
    uint64_t t1 = kn_clock_mono_ns(c);
    KN_CHECK(t1 - t0 >= 2000000000ull);
    KN_CHECK(kn_clock_wall(c) >= 1002.0);
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t cv;
    KN_CHECK_INT(kn_clock_cond_init(&cv), KN_OK);
    pthread_mutex_lock(&mu);
    uint64_t deadline = kn_clock_mono_ns(c) + 5000000000ull;
    int rc;
    while ((rc = kn_clock_cond_wait(c, &cv, &mu, deadline)) == 0) {
    }
    pthread_mutex_unlock(&mu);
    KN_CHECK_INT(rc, ETIMEDOUT);
    KN_CHECK(kn_clock_mono_ns(c) >= deadline);
    kn_clock_free(c);

    /* a manual clock stands still until advanced */
    cp = kn_clock_default_params();
    cp.manual = true;
    cp.start_wall = 5000;
    KN_REQUIRE(kn_clock_new(&cp, &c, &e) == KN_OK);
    KN_CHECK_INT(kn_clock_mono_ns(c), 0);
    KN_CHECK_NEAR(kn_clock_wall(c), 5000, 0);
    kn_clock_advance(c, 300000000000ull);
    KN_CHECK_INT(kn_clock_mono_ns(c), 300000000000ull);
    KN_CHECK_NEAR(kn_clock_wall(c), 5300, 1e-9);
    pthread_mutex_lock(&mu);
    KN_CHECK_INT(kn_clock_cond_wait(c, &cv, &mu, 400000000000ull), 0); /* not yet */
    kn_clock_advance(c, 100000000000ull);
    KN_CHECK_INT(kn_clock_cond_wait(c, &cv, &mu, 400000000000ull), ETIMEDOUT);
    pthread_mutex_unlock(&mu);
    pthread_cond_destroy(&cv);
    kn_clock_free(c);

    /* instance types */
    const kn_instance_type *t = kn_instance_type_find("ml.m5.xlarge");
    KN_REQUIRE(t);
    KN_CHECK_INT(t->vcpu, 4);
    KN_CHECK(kn_instance_type_find("ml.bogus") == NULL);
    size_t n;
    KN_CHECK(kn_instance_types(&n) != NULL && n >= 4);
}

int main(void)
{
    const char *base = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/kn_registry_XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    kn_log_set_level(KN_LOG_WARN);
    KN_RUN(test_models);
    KN_RUN(test_pagination);
    KN_RUN(test_endpoint_configs);
    KN_RUN(test_endpoints);
    KN_RUN(test_platform_dir);
    KN_RUN(test_clock);
    rm_rf(tmpdir);
    return kn_test_finish();
}
