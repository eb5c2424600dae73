/* Functions: their stored documents, the control plane over them, and
 * invocation (lease, environment, wait, result, log lines, metrics).
 *
 * A function's document (persisted whole in the registry on every change):
 *   {"versions": {"$LATEST": cfg, "1": cfg, ...}, "next_version": 2,
 *    "aliases": {"live": AliasConfiguration}, "reserved": n,
 *    "pc": {"live": {"n", "status", "reason", "version", "modified"}},
 *    "gen": n}
 * where cfg is the FunctionConfiguration Lambda returns plus "_code" (the
 * extracted code directory, content-addressed by the zip's SHA-256, so
 * versions share it). "gen" changes with every $LATEST change so warm
 * environments of older code are not reused.
 *
 * The janitor thread reaps idle on-demand environments, keeps provisioned
 * configurations at their count and writes per-minute metrics; the events
 * thread runs queued Event invocations. Thread-safe (f->mu).
 */
#include "fn_int.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define LATEST "$LATEST"

kn_fn_params kn_fn_default_params(void)
{
    kn_fn_params p = {.account_limit = 1000,
                      .min_unreserved = 100,
                      .idle_ms = 600000,
                      .init_timeout_ms = 10000};
    return p;
}

void kn_fn_result_init(kn_fn_result *r)
{
    memset(r, 0, sizeof *r);
    kn_buf_init(&r->payload, KN_FN_MAX_RESPONSE + 4096);
}

void kn_fn_result_deinit(kn_fn_result *r)
{
    kn_buf_deinit(&r->payload);
}

/* ------------------------------------------------------------ helpers */

static void uuid(char *out, size_t n)
{
    uint8_t b[16] = {0};
    if (getrandom(b, sizeof b, 0) != (ssize_t)sizeof b) {
        uint64_t t = kn_now_ns();
        memcpy(b, &t, sizeof t);
    }
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
    snprintf(out, n, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
             b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12],
             b[13], b[14], b[15]);
}

static void timestamp(kn_fn *f, char *out, size_t n)
{
    double w = kn_clock_wall(f->clock);
    time_t t = (time_t)w;
    struct tm tm;
    gmtime_r(&t, &tm);
    int ms = (int)((w - (double)t) * 1000);
    char base[32];
    strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, n, "%s.%03d+0000", base, ms < 0 ? 0 : ms > 999 ? 999 : ms);
}

static void fn_arn(kn_fn *f, const char *name, const char *qual, char *out, size_t n)
{
    snprintf(out, n, "arn:aws:lambda:%s:%s:function:%s%s%s", f->region, f->account, name,
             qual && *qual ? ":" : "", qual && *qual ? qual : "");
}

static bool is_digits(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return false;
    return true;
}

static bool valid_name(const char *s)
{
    size_t n = strlen(s);
    if (n < 1 || n > 64)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '-' || *s == '_'))
            return false;
    return true;
}

bool kn_fn_name_parse(const char *in, char *name, size_t name_n, char *qual, size_t qual_n)
{
    name[0] = qual[0] = '\0';
    if (!in || !*in || strlen(in) > 170)
        return false;
    char tmp[180];
    snprintf(tmp, sizeof tmp, "%s", in);
    char *parts[8];
    int np = 0;
    char *save = NULL;
    /* split on ':' keeping empty parts out (an ARN has none) */
    for (char *t = strtok_r(tmp, ":", &save); t && np < 8; t = strtok_r(NULL, ":", &save))
        parts[np++] = t;
    const char *nm = NULL, *q = NULL;
    if (np >= 7 && strcmp(parts[0], "arn") == 0 && strcmp(parts[2], "lambda") == 0 &&
        strcmp(parts[5], "function") == 0) {
        if (np > 8)
            return false;
        nm = parts[6];
        q = np == 8 ? parts[7] : NULL;
    } else if (np >= 3 && strcmp(parts[1], "function") == 0) {
        if (np > 4)
            return false;
        nm = parts[2];
        q = np == 4 ? parts[3] : NULL;
    } else if (np == 1 || np == 2) {
        nm = parts[0];
        q = np == 2 ? parts[1] : NULL;
    } else {
        return false;
    }
    if (!valid_name(nm) || (q && (strlen(q) > 128 || !*q)))
        return false;
    snprintf(name, name_n, "%s", nm);
    if (q)
        snprintf(qual, qual_n, "%s", q);
    return true;
}

static kn_status not_found(kn_fn *f, const char *name, const char *qual, kn_err *e)
{
    char arn[320];
    fn_arn(f, name, qual, arn, sizeof arn);
    return kn_err_set(e, KN_NOT_FOUND, "Function not found: %s", arn);
}

static json_t *doc_of(kn_fn *f, const char *name)
{
    return json_object_get(f->funcs, name);
}

static kn_status save(kn_fn *f, const char *name, kn_err *e)
{
    json_t *d = doc_of(f, name);
    char *text = json_dumps(d, JSON_COMPACT);
    if (!text)
        return kn_err_set(e, KN_NOMEM, "out of memory");
    kn_status s = kn_registry_fn_save(f->reg, name, text, e);
    free(text);
    return s;
}

/* A copy of cfg without the internal members. */
static json_t *public_cfg(json_t *cfg)
{
    json_t *o = json_deep_copy(cfg);
    const char *k;
    json_t *v;
    void *tmp;
    json_object_foreach_safe(o, tmp, k, v)
    {
        (void)v;
        if (k[0] == '_')
            json_object_del(o, k);
    }
    return o;
}

/* Resolves a qualifier to a version string; NULL when unknown. */
static const char *resolve(json_t *doc, const char *qual)
{
    if (!qual || !*qual || strcmp(qual, LATEST) == 0)
        return LATEST;
    json_t *versions = json_object_get(doc, "versions");
    if (is_digits(qual))
        return json_object_get(versions, qual) ? qual : NULL;
    json_t *al = json_object_get(json_object_get(doc, "aliases"), qual);
    return al ? json_string_value(json_object_get(al, "FunctionVersion")) : NULL;
}

static fn_stats *stats_of(kn_fn *f, const char *name)
{
    for (fn_stats *s = f->stats; s; s = s->next)
        if (strcmp(s->name, name) == 0)
            return s;
    fn_stats *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    snprintf(s->name, sizeof s->name, "%s", name);
    s->cur.minute = (int64_t)(kn_clock_wall(f->clock) / 60);
    s->next = f->stats;
    f->stats = s;
    return s;
}

/* Starts the minute of `now` for s, storing the one that ended. Caller holds mu. */
static void stats_roll(kn_fn *f, fn_stats *s, int64_t minute)
{
    if (s->cur.minute == minute)
        return;
    kn_fn_minute done = s->cur;
    if (done.invocations || done.throttles || done.errors || done.pc_invocations) {
        kn_err e;
        if (kn_registry_fn_metrics_put(f->reg, s->name, &done, &e))
            kn_log(KN_LOG_WARN, "function metrics: %s", e.msg);
    }
    memset(&s->cur, 0, sizeof s->cur);
    s->cur.minute = minute;
    s->cur.concurrent_max = s->in_flight;
}

/* ----------------------------------------------------------- code */

static kn_status b64_sha(const uint8_t *p, size_t n, char *b64, char *hex)
{
    uint8_t d[32];
    kn_sha256(p, n, d);
    EVP_EncodeBlock((unsigned char *)b64, d, 32);
    kn_hex(d, 16, hex); /* 32 hex digits name the code directory */
    return KN_OK;
}

/* Extracts the zip into <data>/functions/<name>/code/<hash>/ (kept when it
 * already exists) and fills cfg's CodeSha256/CodeSize/_code. */
static kn_status store_code(kn_fn *f, const char *name, const uint8_t *zip, size_t len,
                            json_t *cfg, kn_err *e)
{
    if (len > KN_FN_MAX_ZIP)
        return kn_err_set(e, KN_INVALID,
                          "Unzipped size must be smaller than 262144000 bytes");
    char b64[48], hex[40];
    b64_sha(zip, len, b64, hex);
    char dir[1400], tmp[1500];
    snprintf(dir, sizeof dir, "%s/functions/%s/code/%s", f->data_dir, name, hex);
    struct stat st;
    size_t unzipped = 0;
    bool has_bootstrap = false;
    if (stat(dir, &st) != 0) {
        snprintf(tmp, sizeof tmp, "%s.tmp%llu", dir, (unsigned long long)kn_now_ns());
        kn_status s = kn_mkdirs(tmp, 0755, e);
        if (s)
            return s;
        s = kn_fn_zip_extract(zip, len, tmp, &unzipped, &has_bootstrap, e);
        if (s) {
            char cmd[1700];
            snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
            int rc = system(cmd);
            (void)rc;
            return s == KN_BAD_FORMAT ? kn_err_set(e, KN_INVALID, "%s", e->msg) : s;
        }
        if (rename(tmp, dir) != 0 && errno != EEXIST && errno != ENOTEMPTY)
            return kn_err_set(e, KN_IO, "cannot store code in %s: %s", dir, strerror(errno));
    }
    json_object_set_new(cfg, "CodeSha256", json_string(b64));
    json_object_set_new(cfg, "CodeSize", json_integer((json_int_t)len));
    json_object_set_new(cfg, "_code", json_string(dir));
    return KN_OK;
}

/* The execution role's credentials for `name` (cached). Caller holds mu. */
static kn_status role_creds(kn_fn *f, const char *name, const char *role,
                            const kn_iam_credentials **out, kn_err *e)
{
    double now = kn_clock_wall(f->clock);
    fn_creds *c;
    for (c = f->creds; c; c = c->next)
        if (strcmp(c->name, name) == 0)
            break;
    if (c && strcmp(c->role, role) == 0 && c->c.expiration - now > 300) {
        *out = &c->c;
        return KN_OK;
    }
    kn_iam_credentials fresh;
    kn_status s = kn_iam_execution_credentials(f->iam, role, "lambda.amazonaws.com", name, 0,
                                               &fresh, e);
    if (s)
        return s;
    if (!c) {
        c = calloc(1, sizeof *c);
        if (!c)
            return kn_err_set(e, KN_NOMEM, "out of memory");
        snprintf(c->name, sizeof c->name, "%s", name);
        c->next = f->creds;
        f->creds = c;
    }
    snprintf(c->role, sizeof c->role, "%s", role);
    c->c = fresh;
    *out = &c->c;
    return KN_OK;
}

/* Lambda refuses a role it cannot assume at create/update time. */
static kn_status check_role(kn_fn *f, const char *name, const char *role, kn_err *e)
{
    if (!f->iam || !role)
        return KN_OK;
    const kn_iam_credentials *c;
    kn_err why;
    pthread_mutex_lock(&f->mu);
    kn_status s = role_creds(f, name, role, &c, &why);
    pthread_mutex_unlock(&f->mu);
    if (s == KN_NOMEM || s == KN_IO)
        return kn_err_set(e, s, "%s", why.msg);
    if (s)
        return kn_err_set(e, KN_INVALID,
                          "The role defined for the function cannot be assumed by Lambda. (%s)",
                          why.msg);
    return KN_OK;
}

static const char *const reserved_vars[] = {
    "_HANDLER", "_X_AMZN_TRACE_ID", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_EXECUTION_ENV",
    "AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_INITIALIZATION_TYPE", "AWS_LAMBDA_LOG_GROUP_NAME", "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_LAMBDA_RUNTIME_API",
    "LAMBDA_TASK_ROOT", "LAMBDA_RUNTIME_DIR", NULL};

static kn_status apply_config(kn_fn *f, json_t *cfg, const kn_fn_config *c, kn_err *e)
{
    if (c->timeout_s && (c->timeout_s < 1 || c->timeout_s > 900))
        return kn_err_set(e, KN_SHAPE,
                          "1 validation error detected: Value '%d' at 'timeout' failed to satisfy "
                          "constraint: Member must have value %s",
                          c->timeout_s,
                          c->timeout_s < 1 ? "greater than or equal to 1"
                                           : "less than or equal to 900");
    if (c->memory_mb && (c->memory_mb < 128 || c->memory_mb > 10240))
        return kn_err_set(e, KN_SHAPE,
                          "1 validation error detected: Value '%d' at 'memorySize' failed to "
                          "satisfy constraint: Member must have value %s",
                          c->memory_mb,
                          c->memory_mb < 128 ? "greater than or equal to 128"
                                             : "less than or equal to 10240");
    if (c->environment) {
        const char *k;
        json_t *v;
        size_t total = 0;
        char used[256] = "";
        json_object_foreach(c->environment, k, v)
        {
            if (!json_is_string(v))
                return kn_err_set(e, KN_SHAPE, "Environment variable %s must be a string", k);
            total += strlen(k) + json_string_length(v);
            for (int i = 0; reserved_vars[i]; i++)
                if (strcmp(k, reserved_vars[i]) == 0)
                    snprintf(used + strlen(used), sizeof used - strlen(used), "%s%s",
                             used[0] ? ", " : "", k);
        }
        if (used[0])
            return kn_err_set(e, KN_INVALID,
                              "Lambda was unable to configure your environment variables "
                              "because the environment variables you have provided contains "
                              "reserved keys that are currently not supported for modification. "
                              "Reserved keys used in this request: %s",
                              used);
        if (total > 4096)
            return kn_err_set(e, KN_INVALID,
                              "Lambda was unable to configure your environment variables "
                              "because the environment variables you have provided exceeded "
                              "the 4KB limit. String measured: %zu",
                              total);
        json_object_set_new(cfg, "Environment",
                            json_pack("{s:O}", "Variables", c->environment));
    }
    if (c->runtime)
        json_object_set_new(cfg, "Runtime", json_string(c->runtime));
    if (c->role)
        json_object_set_new(cfg, "Role", json_string(c->role));
    if (c->handler)
        json_object_set_new(cfg, "Handler", json_string(c->handler));
    if (c->description)
        json_object_set_new(cfg, "Description", json_string(c->description));
    if (c->timeout_s)
        json_object_set_new(cfg, "Timeout", json_integer(c->timeout_s));
    if (c->memory_mb)
        json_object_set_new(cfg, "MemorySize", json_integer(c->memory_mb));
    char ts[40], rev[40];
    timestamp(f, ts, sizeof ts);
    uuid(rev, sizeof rev);
    json_object_set_new(cfg, "LastModified", json_string(ts));
    json_object_set_new(cfg, "RevisionId", json_string(rev));
    return KN_OK;
}

/* ------------------------------------------------------ control plane */

kn_status kn_fn_create(kn_fn *f, const char *name, const kn_fn_config *c, const uint8_t *zip,
                       size_t zip_len, bool publish, json_t **out, kn_err *e)
{
    *out = NULL;
    if (!valid_name(name))
        return kn_err_set(e, KN_SHAPE,
                          "1 validation error detected: Value '%.80s' at 'functionName' failed "
                          "to satisfy constraint: Member must satisfy regular expression pattern: "
                          "(arn:(aws[a-zA-Z-]*)?:lambda:)?([a-z]{2}(-gov)?-[a-z]+-\\d{1}:)?"
                          "(\\d{12}:)?(function:)?([a-zA-Z0-9-_]+)(:(\\$LATEST|[a-zA-Z0-9-_]+))?",
                          name);
    json_t *cfg = json_pack("{s:s, s:s, s:s, s:s, s:s, s:i, s:i, s:s, s:s, s:s, s:s, s:[s]}",
                            "FunctionName", name, "FunctionArn", "", "Runtime", "provided.al2023",
                            "Role", "", "Handler", "bootstrap", "Timeout", 3, "MemorySize", 128,
                            "Version", LATEST, "State", "Active", "LastUpdateStatus",
                            "Successful", "PackageType", "Zip", "Architectures", "x86_64");
    char arn[320];
    fn_arn(f, name, NULL, arn, sizeof arn);
    json_object_set_new(cfg, "FunctionArn", json_string(arn));
    json_object_set_new(cfg, "Description", json_string(""));
    kn_status s = apply_config(f, cfg, c, e);
    if (s || (s = check_role(f, name, c->role, e)))
        goto fail;
    pthread_mutex_lock(&f->mu);
    bool taken = doc_of(f, name) != NULL;
    pthread_mutex_unlock(&f->mu);
    if (taken) {
        s = kn_err_set(e, KN_EXISTS, "Function already exist: %s", name);
        goto fail;
    }
    if ((s = store_code(f, name, zip, zip_len, cfg, e)))
        goto fail;
    pthread_mutex_lock(&f->mu);
    if (doc_of(f, name)) {
        pthread_mutex_unlock(&f->mu);
        s = kn_err_set(e, KN_EXISTS, "Function already exist: %s", name);
        goto fail;
    }
    json_t *doc = json_pack("{s:{s:O}, s:i, s:{}, s:{}, s:I}", "versions", LATEST, cfg,
                            "next_version", 1, "aliases", "pc", "gen",
                            (json_int_t)kn_now_ns());
    json_object_set_new(f->funcs, name, doc);
    s = save(f, name, e);
    pthread_mutex_unlock(&f->mu);
    if (s)
        goto fail;
    json_decref(cfg);
    if (publish)
        return kn_fn_publish(f, name, NULL, out, e);
    return kn_fn_get(f, name, NULL, out, e);
fail:
    json_decref(cfg);
    return s;
}

kn_status kn_fn_get(kn_fn *f, const char *name, const char *qualifier, json_t **out, kn_err *e)
{
    *out = NULL;
    pthread_mutex_lock(&f->mu);
    json_t *doc = doc_of(f, name);
    const char *ver = doc ? resolve(doc, qualifier) : NULL;
    json_t *cfg = ver ? json_object_get(json_object_get(doc, "versions"), ver) : NULL;
    if (cfg)
        *out = public_cfg(cfg);
    pthread_mutex_unlock(&f->mu);
    if (!cfg)
        return not_found(f, name, qualifier, e);
    return KN_OK;
}

json_t *kn_fn_list(kn_fn *f)
{
    json_t *arr = json_array();
    pthread_mutex_lock(&f->mu);
    const char *k;
    json_t *doc;
    json_object_foreach(f->funcs, k, doc)
    {
        json_array_append_new(
            arr, public_cfg(json_object_get(json_object_get(doc, "versions"), LATEST)));
    }
    pthread_mutex_unlock(&f->mu);
    return arr;
}

kn_status kn_fn_list_versions(kn_fn *f, const char *name, json_t **out, kn_err *e)
{
    *out = NULL;
    pthread_mutex_lock(&f->mu);
    json_t *doc = doc_of(f, name);
    if (doc) {
        json_t *arr = json_array();
        json_t *vs = json_object_get(doc, "versions");
        json_array_append_new(arr, public_cfg(json_object_get(vs, LATEST)));
        int next = (int)json_integer_value(json_object_get(doc, "next_version"));
        for (int i = 1; i < next; i++) {
            char k[16];
            snprintf(k, sizeof k, "%d", i);
            json_t *cfg = json_object_get(vs, k);
            if (cfg)
                json_array_append_new(arr, public_cfg(cfg));
        }
        *out = arr;
    }
    pthread_mutex_unlock(&f->mu);
    return doc ? KN_OK : not_found(f, name, NULL, e);
}

/* Kills every environment of name (and version, if given). Caller holds mu. */
static void kill_envs(kn_fn *f, const char *name, const char *version)
{
    for (fn_env *v = f->envs; v; v = v->next)
        if (strcmp(v->name, name) == 0 && (!version || strcmp(v->version, version) == 0) &&
            !v->inv)
            kn_fn__env_kill(v);
}

kn_status kn_fn_delete(kn_fn *f, const char *name, const char *qualifier, kn_err *e)
{
    pthread_mutex_lock(&f->mu);
    json_t *doc = doc_of(f, name);
    kn_status s = KN_OK;
    if (!doc) {
        s = not_found(f, name, qualifier, e);
    } else if (qualifier && *qualifier && strcmp(qualifier, LATEST) != 0) {
        json_t *vs = json_object_get(doc, "versions");
        if (!is_digits(qualifier)) {
            s = kn_err_set(e, KN_INVALID, "Deletion of aliases is not supported by this "
                                          "operation: use DeleteAlias.");
        } else if (!json_object_get(vs, qualifier)) {
            s = not_found(f, name, qualifier, e);
        } else {
            const char *k;
            json_t *al;
            json_object_foreach(json_object_get(doc, "aliases"), k, al)
            {
                if (strcmp(json_string_value(json_object_get(al, "FunctionVersion")),
                           qualifier) == 0) {
                    s = kn_err_set(e, KN_EXISTS,
                                   "Unable to delete version because the following aliases "
                                   "reference it: [%s]",
                                   k);
                    break;
                }
            }
            if (!s) {
                json_object_del(vs, qualifier);
                kill_envs(f, name, qualifier);
                s = save(f, name, e);
            }
        }
    } else {
        kn_scale_pool_remove(f->pool, name);
        kill_envs(f, name, NULL);
        for (fn_env *v = f->envs; v; v = v->next)
            if (strcmp(v->name, name) == 0)
                v->gen = 0; /* never reused again */
        json_object_del(f->funcs, name);
        s = kn_registry_fn_delete(f->reg, name, e);
    }
    pthread_mutex_unlock(&f->mu);
    return s;
}

kn_status kn_fn_update_code(kn_fn *f, const char *name, const uint8_t *zip, size_t zip_len,
                            bool publish, json_t **out, kn_err *e)
{
    *out = NULL;
    json_t *code = json_object();
    pthread_mutex_lock(&f->mu);
    bool found = doc_of(f, name) != NULL;
    pthread_mutex_unlock(&f->mu);
    kn_status s = found ? store_code(f, name, zip, zip_len, code, e) : not_found(f, name, NULL, e);
    if (!s) {
        pthread_mutex_lock(&f->mu);
        json_t *doc = doc_of(f, name);
        if (!doc) {
            s = not_found(f, name, NULL, e);
        } else {
            json_t *cfg = json_object_get(json_object_get(doc, "versions"), LATEST);
            json_object_update(cfg, code);
            kn_fn_config none = {0};
            apply_config(f, cfg, &none, e);
            json_object_set_new(doc, "gen", json_integer((json_int_t)kn_now_ns()));
            kill_envs(f, name, LATEST);
            s = save(f, name, e);
        }
        pthread_mutex_unlock(&f->mu);
    }
    json_decref(code);
    if (s)
        return s;
    return publish ? kn_fn_publish(f, name, NULL, out, e) : kn_fn_get(f, name, NULL, out, e);
}

kn_status kn_fn_update_config(kn_fn *f, const char *name, const kn_fn_config *c, json_t **out,
                              kn_err *e)
{
    *out = NULL;
    kn_status rs = check_role(f, name, c->role, e);
    if (rs)
        return rs;
    pthread_mutex_lock(&f->mu);
    json_t *doc = doc_of(f, name);
    kn_status s;
    if (!doc) {
        s = not_found(f, name, NULL, e);
    } else {
        json_t *cfg = json_deep_copy(json_object_get(json_object_get(doc, "versions"), LATEST));
        s = apply_config(f, cfg, c, e);
        if (!s) {
            json_object_set_new(json_object_get(doc, "versions"), LATEST, cfg);
            json_object_set_new(doc, "gen", json_integer((json_int_t)kn_now_ns()));
            kill_envs(f, name, LATEST);
            s = save(f, name, e);
        } else {
            json_decref(cfg);
        }
    }
    pthread_mutex_unlock(&f->mu);
    return s ? s : kn_fn_get(f, name, NULL, out, e);
}

/* Takes f->mu and finds the function's document: KN_OK with the lock held,
 * else its ResourceNotFound with the lock released. */
static kn_status lock_doc(kn_fn *f, const char *name, json_t **doc, kn_err *e)
{
    pthread_mutex_lock(&f->mu);
    if ((*doc = doc_of(f, name)))
        return KN_OK;
    pthread_mutex_unlock(&f->mu);
    return not_found(f, name, NULL, e);
}

kn_status kn_fn_publish(kn_fn *f, const char *name, const char *description, json_t **out,
                        kn_err *e)
{
    *out = NULL;
    json_t *doc;
    kn_status s = lock_doc(f, name, &doc, e);
    if (s)
        return s;
    json_t *vs = json_object_get(doc, "versions");
    json_t *latest = json_object_get(vs, LATEST);
    int next = (int)json_integer_value(json_object_get(doc, "next_version"));
    /* Lambda publishes nothing new when $LATEST equals the last version */
    char last[16];
    snprintf(last, sizeof last, "%d", next - 1);
    json_t *prev = next > 1 ? json_object_get(vs, last) : NULL;
    if (prev && json_equal(json_object_get(prev, "CodeSha256"),
                           json_object_get(latest, "CodeSha256")) &&
        json_equal(json_object_get(prev, "_src_rev"), json_object_get(latest, "RevisionId"))) {
        *out = public_cfg(prev);
        pthread_mutex_unlock(&f->mu);
        return KN_OK;
    }
    char ver[16], arn[320];
    snprintf(ver, sizeof ver, "%d", next);
    json_t *cfg = json_deep_copy(latest);
    fn_arn(f, name, ver, arn, sizeof arn);
    json_object_set_new(cfg, "Version", json_string(ver));
    json_object_set_new(cfg, "FunctionArn", json_string(arn));
    json_object_set(cfg, "_src_rev", json_object_get(latest, "RevisionId"));
    if (description)
        json_object_set_new(cfg, "Description", json_string(description));
    json_object_set_new(vs, ver, cfg);
    json_object_set_new(doc, "next_version", json_integer(next + 1));
    s = save(f, name, e);
    if (!s)
        *out = public_cfg(cfg);
    pthread_mutex_unlock(&f->mu);
    return s;
}

/* ------------------------------------------------------------ aliases */

static json_t *alias_out(json_t *al)
{
    return json_deep_copy(al);
}

kn_status kn_fn_alias_put(kn_fn *f, const char *name, const char *alias, const char *version,
                          const char *description, bool create, json_t **out, kn_err *e)
{
    *out = NULL;
    if (!alias || !*alias || is_digits(alias) || strcmp(alias, LATEST) == 0 ||
        strlen(alias) > 128)
        return kn_err_set(e, KN_SHAPE,
                          "1 validation error detected: Value '%.128s' at 'name' failed to "
                          "satisfy constraint: Member must satisfy regular expression pattern: "
                          "(?!^[0-9]+$)([a-zA-Z0-9-_]+)",
                          alias ? alias : "");
    pthread_mutex_lock(&f->mu);
    json_t *doc = doc_of(f, name);
    kn_status s = KN_OK;
    if (!doc) {
        s = not_found(f, name, NULL, e);
        goto out;
    }
    json_t *aliases = json_object_get(doc, "aliases");
    json_t *al = json_object_get(aliases, alias);
    if (create && al) {
        char arn[320];
        fn_arn(f, name, alias, arn, sizeof arn);
        s = kn_err_set(e, KN_EXISTS, "Alias already exists: %s", arn);
        goto out;
    }
    if (!create && !al) {
        char arn[320];
        fn_arn(f, name, alias, arn, sizeof arn);
        s = kn_err_set(e, KN_NOT_FOUND, "Alias not found: %s", arn);
        goto out;
    }
    if (version && strcmp(version, LATEST) != 0 &&
        !json_object_get(json_object_get(doc, "versions"), version)) {
        s = not_found(f, name, version, e);
        goto out;
    }
    if (version && strcmp(version, LATEST) == 0 && json_object_get(json_object_get(doc, "pc"), alias)) {
        s = kn_err_set(e, KN_EXISTS, "Alias with provisioned concurrency cannot point to $LATEST");
        goto out;
    }
    if (!al) {
        char arn[320];
        fn_arn(f, name, alias, arn, sizeof arn);
        al = json_pack("{s:s, s:s, s:s, s:s}", "AliasArn", arn, "Name", alias,
                       "FunctionVersion", version ? version : LATEST, "Description", "");
        json_object_set_new(aliases, alias, al);
    } else if (version) {
        json_t *pc = json_object_get(json_object_get(doc, "pc"), alias);
        json_object_set_new(al, "FunctionVersion", json_string(version));
        if (pc) {
            /* the configuration follows the alias to its new version */
            json_object_set_new(pc, "version", json_string(version));
            json_object_set_new(pc, "status", json_string("IN_PROGRESS"));
            kn_err e2;
            kn_scale_pool_set_provisioned(f->pool, name, alias, version,
                                          (int)json_integer_value(json_object_get(pc, "n")), &e2);
            for (fn_env *v = f->envs; v; v = v->next)
                if (v->provisioned && strcmp(v->name, name) == 0 &&
                    strcmp(v->pc_qualifier, alias) == 0)
                    kn_fn__env_kill(v);
        }
    }
    if (description)
        json_object_set_new(al, "Description", json_string(description));
    char rev[40];
    uuid(rev, sizeof rev);
    json_object_set_new(al, "RevisionId", json_string(rev));
    s = save(f, name, e);
    if (!s)
        *out = alias_out(al);
out:
    pthread_mutex_unlock(&f->mu);
    return s;
}

kn_status kn_fn_alias_get(kn_fn *f, const char *name, const char *alias, json_t **out, kn_err *e)
{
    *out = NULL;
    pthread_mutex_lock(&f->mu);
    json_t *doc = doc_of(f, name);
    json_t *al = doc ? json_object_get(json_object_get(doc, "aliases"), alias) : NULL;
    if (al)
        *out = alias_out(al);
    pthread_mutex_unlock(&f->mu);
    if (!doc)
        return not_found(f, name, NULL, e);
    if (!al) {
        char arn[320];
        fn_arn(f, name, alias, arn, sizeof arn);
        return kn_err_set(e, KN_NOT_FOUND, "Alias not found: %s", arn);
    }
    return KN_OK;
}

static void pc_remove(kn_fn *f, json_t *doc, const char *name, const char *qual)
{
    kn_err e;
    json_t *pc = json_object_get(doc, "pc");
    json_t *cfg = json_object_get(pc, qual);
    if (!cfg)
        return;
    kn_scale_pool_set_provisioned(f->pool, name, qual,
                                  json_string_value(json_object_get(cfg, "version")), 0, &e);
    json_object_del(pc, qual);
    for (fn_env *v = f->envs; v; v = v->next)
        if (v->provisioned && strcmp(v->name, name) == 0 && strcmp(v->pc_qualifier, qual) == 0) {
            if (v->inv)
                v->provisioned = false; /* finishes its work as on-demand, then goes */
            kn_fn__env_kill(v);
        }
}

kn_status kn_fn_alias_delete(kn_fn *f, const char *name, const char *alias, kn_err *e)
{
    pthread_mutex_lock(&f->mu);
    json_t *doc = doc_of(f, name);
    kn_status s = KN_OK;
    if (!doc) {
        s = not_found(f, name, NULL, e);
    } else {
        pc_remove(f, doc, name, alias);
        json_object_del(json_object_get(doc, "aliases"), alias);
        s = save(f, name, e);
    }
    pthread_mutex_unlock(&f->mu);
    return s;
}

/* The entries of one object member of a function's document ("aliases",
 * "pc") as an array, each in its API form from entry(); the function's
 * ResourceNotFound without it. */
typedef json_t *(*entry_fn)(kn_fn *f, const char *name, const char *key, json_t *v);
static kn_status list_entries(kn_fn *f, const char *name, const char *member, entry_fn entry,
                              json_t **out, kn_err *e)
{
    *out = NULL;
    pthread_mutex_lock(&f->mu);
    json_t *doc = doc_of(f, name);
    if (doc) {
        json_t *arr = json_array();
        const char *k;
        json_t *v;
        json_object_foreach(json_object_get(doc, member), k, v)
            json_array_append_new(arr, entry(f, name, k, v));
        *out = arr;
    }
    pthread_mutex_unlock(&f->mu);
    return doc ? KN_OK : not_found(f, name, NULL, e);
}

static json_t *alias_entry(kn_fn *f, const char *name, const char *key, json_t *v)
{
    (void)f;
    (void)name;
    (void)key;
    return alias_out(v);
}

kn_status kn_fn_alias_list(kn_fn *f, const char *name, json_t **out, kn_err *e)
{
    return list_entries(f, name, "aliases", alias_entry, out, e);
}

/* -------------------------------------------------------- concurrency */

kn_status kn_fn_reserved_set(kn_fn *f, const char *name, int n, kn_err *e)
{
    pthread_mutex_lock(&f->mu);
    json_t *doc = doc_of(f, name);
    kn_status s;
    if (!doc) {
        s = not_found(f, name, NULL, e);
    } else {
        s = kn_scale_pool_set_reserved(f->pool, name, n, e);
        if (!s) {
            if (n < 0)
                json_object_del(doc, "reserved");
            else
                json_object_set_new(doc, "reserved", json_integer(n));
            s = save(f, name, e);
        }
    }
    pthread_mutex_unlock(&f->mu);
    return s;
}

kn_status kn_fn_reserved_get(kn_fn *f, const char *name, int *n, kn_err *e)
{
    pthread_mutex_lock(&f->mu);
    json_t *doc = doc_of(f, name);
    json_t *r = doc ? json_object_get(doc, "reserved") : NULL;
    *n = r ? (int)json_integer_value(r) : -1;
    pthread_mutex_unlock(&f->mu);
    return doc ? KN_OK : not_found(f, name, NULL, e);
}

static int pc_live(kn_fn *f, const char *name, const char *qual, bool ready_only)
{
    int n = 0;
    for (fn_env *v = f->envs; v; v = v->next)
        if (v->provisioned && !v->kill_requested && strcmp(v->name, name) == 0 &&
            strcmp(v->pc_qualifier, qual) == 0 && (!ready_only || v->ready_ns))
            n++;
    return n;
}

static json_t *pc_out(kn_fn *f, const char *name, const char *qual, json_t *cfg)
{
    int n = (int)json_integer_value(json_object_get(cfg, "n"));
    const char *status = json_string_value(json_object_get(cfg, "status"));
    int ready = pc_live(f, name, qual, true);
    if (ready > n)
        ready = n;
    char arn[320];
    fn_arn(f, name, qual, arn, sizeof arn);
    json_t *o = json_pack("{s:i, s:i, s:i, s:s, s:s}", "RequestedProvisionedConcurrentExecutions",
                          n, "AvailableProvisionedConcurrentExecutions", ready,
                          "AllocatedProvisionedConcurrentExecutions",
                          strcmp(status, "READY") == 0 ? n : ready, "Status", status,
                          "LastModified",
                          json_string_value(json_object_get(cfg, "modified")));
    json_object_set_new(o, "FunctionArn", json_string(arn));
    const char *reason = json_string_value(json_object_get(cfg, "reason"));
    if (reason && *reason)
        json_object_set_new(o, "StatusReason", json_string(reason));
    return o;
}

/* Starts environments until qual has n of them. Caller holds mu. */
static void pc_fill(kn_fn *f, const char *name, const char *qual, json_t *doc);

kn_status kn_fn_provisioned_put(kn_fn *f, const char *name, const char *qualifier, int n,
                                json_t **out, kn_err *e)
{
    *out = NULL;
    if (n < 1)
        return kn_err_set(e, KN_SHAPE,
                          "1 validation error detected: Value '%d' at "
                          "'provisionedConcurrentExecutions' failed to satisfy constraint: "
                          "Member must have value greater than or equal to 1",
                          n);
    pthread_mutex_lock(&f->mu);
    json_t *doc = doc_of(f, name);
    kn_status s = KN_OK;
    if (!doc) {
        s = not_found(f, name, NULL, e);
        goto out;
    }
    const char *ver = resolve(doc, qualifier);
    if (!qualifier || !*qualifier || (ver && strcmp(ver, LATEST) == 0)) {
        s = kn_err_set(e, KN_INVALID, "Provisioned Concurrency Configs cannot be applied to "
                                      "unpublished function versions.");
        goto out;
    }
    if (!ver) {
        s = not_found(f, name, qualifier, e);
        goto out;
    }
    char vcopy[16];
    snprintf(vcopy, sizeof vcopy, "%s", ver);
    s = kn_scale_pool_set_provisioned(f->pool, name, qualifier, vcopy, n, e);
    if (s) {
        if (s == KN_EXISTS)
            snprintf(e->msg, sizeof e->msg, "%s",
                     "Alias can't be used for Provisioned Concurrency configuration on an "
                     "already Provisioned version");
        goto out;
    }
    json_t *pc = json_object_get(doc, "pc");
    char ts[40];
    timestamp(f, ts, sizeof ts);
    json_t *cfg = json_pack("{s:i, s:s, s:s, s:s, s:s}", "n", n, "status", "IN_PROGRESS",
                            "reason", "", "version", vcopy, "modified", ts);
    json_object_set_new(pc, qualifier, cfg);
    /* surplus environments of a smaller count go */
    int live = pc_live(f, name, qualifier, false);
    for (fn_env *v = f->envs; v && live > n; v = v->next)
        if (v->provisioned && !v->kill_requested && !v->inv && strcmp(v->name, name) == 0 &&
            strcmp(v->pc_qualifier, qualifier) == 0) {
            kn_fn__env_kill(v);
            live--;
        }
    pc_fill(f, name, qualifier, doc);
    if (pc_live(f, name, qualifier, true) >= n)
        kn_fn__pc_env_event(f, NULL, false, NULL);
    s = save(f, name, e);
    if (!s)
        *out = pc_out(f, name, qualifier, json_object_get(pc, qualifier));
out:
    pthread_mutex_unlock(&f->mu);
    return s;
}

static kn_status pc_not_found(kn_err *e)
{
    return kn_err_set(e, KN_RESOURCE_NOT_FOUND,
                      "No Provisioned Concurrency Config found for this function");
}

kn_status kn_fn_provisioned_get(kn_fn *f, const char *name, const char *qualifier, json_t **out,
                                kn_err *e)
{
    *out = NULL;
    pthread_mutex_lock(&f->mu);
    json_t *doc = doc_of(f, name);
    json_t *cfg = doc ? json_object_get(json_object_get(doc, "pc"), qualifier ? qualifier : "")
                      : NULL;
    if (cfg)
        *out = pc_out(f, name, qualifier, cfg);
    pthread_mutex_unlock(&f->mu);
    if (!doc)
        return not_found(f, name, NULL, e);
    return cfg ? KN_OK : pc_not_found(e);
}

kn_status kn_fn_provisioned_delete(kn_fn *f, const char *name, const char *qualifier, kn_err *e)
{
    pthread_mutex_lock(&f->mu);
    json_t *doc = doc_of(f, name);
    kn_status s = KN_OK;
    if (!doc)
        s = not_found(f, name, NULL, e);
    else if (!json_object_get(json_object_get(doc, "pc"), qualifier ? qualifier : ""))
        s = pc_not_found(e);
    else {
        pc_remove(f, doc, name, qualifier);
        s = save(f, name, e);
    }
    pthread_mutex_unlock(&f->mu);
    return s;
}

kn_status kn_fn_provisioned_list(kn_fn *f, const char *name, json_t **out, kn_err *e)
{
    return list_entries(f, name, "pc", pc_out, out, e);
}

json_t *kn_fn_account(kn_fn *f)
{
    pthread_mutex_lock(&f->mu);
    int count = (int)json_object_size(f->funcs);
    pthread_mutex_unlock(&f->mu);
    return json_pack("{s:{s:I, s:I, s:i, s:i, s:I}, s:{s:I, s:i}}", "AccountLimit",
                     "TotalCodeSize", (json_int_t)80530636800LL, "CodeSizeUnzipped",
                     (json_int_t)KN_FN_MAX_UNZIPPED, "ConcurrentExecutions",
                     f->params.account_limit, "UnreservedConcurrentExecutions",
                     kn_scale_pool_unreserved(f->pool), "CodeSizeZipped",
                     (json_int_t)KN_FN_MAX_ZIP, "AccountUsage", "TotalCodeSize", (json_int_t)0,
                     "FunctionCount", count);
}

/* ------------------------------------------------------- environments */

static char *envstr(const char *k, const char *v)
{
    size_t n = strlen(k) + strlen(v) + 2;
    char *s = malloc(n);
    if (s)
        snprintf(s, n, "%s=%s", k, v);
    return s;
}

/* A new environment for cfg (not started). Caller holds mu. */
static fn_env *env_new(kn_fn *f, const char *name, const char *version, json_t *doc,
                       json_t *cfg, bool provisioned, const char *pc_qual)
{
    fn_env *v = calloc(1, sizeof *v);
    if (!v)
        return NULL;
    v->fn = f;
    v->id = ++f->next_env_id;
    snprintf(v->name, sizeof v->name, "%s", name);
    snprintf(v->version, sizeof v->version, "%s", version);
    v->gen = (unsigned long long)json_integer_value(json_object_get(doc, "gen"));
    v->provisioned = provisioned;
    snprintf(v->pc_qualifier, sizeof v->pc_qualifier, "%s", pc_qual ? pc_qual : "");
    snprintf(v->code_dir, sizeof v->code_dir, "%s",
             json_string_value(json_object_get(cfg, "_code")));
    v->memory_mb = (int)json_integer_value(json_object_get(cfg, "MemorySize"));
    pthread_cond_init(&v->cv, NULL);
    json_t *vars = json_object_get(json_object_get(cfg, "Environment"), "Variables");
    size_t cap = json_object_size(vars) + 40, n = 0;
    v->envp = calloc(cap, sizeof *v->envp);
    if (!v->envp) {
        free(v);
        return NULL;
    }
    char buf[1200];
    const char *k;
    json_t *val;
    json_object_foreach(vars, k, val) v->envp[n++] = envstr(k, json_string_value(val));
    v->envp[n++] = envstr("AWS_LAMBDA_RUNTIME_API", "");
    v->envp[n++] = envstr("_HANDLER", json_string_value(json_object_get(cfg, "Handler")));
    v->envp[n++] = envstr("AWS_LAMBDA_FUNCTION_NAME", name);
    v->envp[n++] = envstr("AWS_LAMBDA_FUNCTION_VERSION", version);
    snprintf(buf, sizeof buf, "%d", v->memory_mb);
    v->envp[n++] = envstr("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", buf);
    v->envp[n++] = envstr("AWS_LAMBDA_INITIALIZATION_TYPE",
                          provisioned ? "provisioned-concurrency" : "on-demand");
    v->envp[n++] = envstr("AWS_REGION", f->region);
    v->envp[n++] = envstr("AWS_DEFAULT_REGION", f->region);
    snprintf(buf, sizeof buf, "AWS_Lambda_%s",
             json_string_value(json_object_get(cfg, "Runtime")));
    v->envp[n++] = envstr("AWS_EXECUTION_ENV", buf);
    snprintf(buf, sizeof buf, "/aws/lambda/%s", name);
    v->envp[n++] = envstr("AWS_LAMBDA_LOG_GROUP_NAME", buf);
    snprintf(buf, sizeof buf, "kennel/[%s]%d", version, v->id);
    v->envp[n++] = envstr("AWS_LAMBDA_LOG_STREAM_NAME", buf);
    v->envp[n++] = envstr("LAMBDA_TASK_ROOT", v->code_dir);
    v->envp[n++] = envstr("LAMBDA_RUNTIME_DIR", v->code_dir);
    snprintf(buf, sizeof buf, "%s/lib", v->code_dir);
    v->envp[n++] = envstr("LD_LIBRARY_PATH", buf);
    v->envp[n++] = envstr("PATH", "/usr/local/bin:/usr/bin:/bin");
    v->envp[n++] = envstr("LANG", "en_US.UTF-8");
    v->envp[n++] = envstr("TZ", ":UTC");
    v->envp[n++] = envstr("AWS_XRAY_CONTEXT_MISSING", "LOG_ERROR");
    const char *role = json_string_value(json_object_get(cfg, "Role"));
    const kn_iam_credentials *rc = NULL;
    kn_err ce;
    if (f->iam && role && role_creds(f, name, role, &rc, &ce) != KN_OK) {
        kn_log(KN_LOG_WARN, "function %s: no credentials for role %s: %s", name, role, ce.msg);
        rc = NULL;
    }
    if (rc) {
        v->envp[n++] = envstr("AWS_ACCESS_KEY_ID", rc->access_key);
        v->envp[n++] = envstr("AWS_SECRET_ACCESS_KEY", rc->secret);
        v->envp[n++] = envstr("AWS_SESSION_TOKEN", rc->session_token);
    } else if (!f->iam && f->access_key[0]) {
        v->envp[n++] = envstr("AWS_ACCESS_KEY_ID", f->access_key);
        v->envp[n++] = envstr("AWS_SECRET_ACCESS_KEY", f->secret_key);
        if (f->session_token[0])
            v->envp[n++] = envstr("AWS_SESSION_TOKEN", f->session_token);
    }
    if (f->endpoint_url[0])
        v->envp[n++] = envstr("AWS_ENDPOINT_URL", f->endpoint_url);
    v->envp[n] = NULL;
    for (size_t i = 0; i < n; i++)
        if (!v->envp[i]) {
            for (size_t j = 0; j < n; j++)
                free(v->envp[j]);
            free(v->envp);
            free(v);
            return NULL;
        }
    return v;
}

void kn_fn__pc_env_event(kn_fn *f, fn_env *v, bool failed, const char *reason)
{
    /* re-evaluates every configuration of the function (cheap: a handful) */
    const char *name = v ? v->name : NULL;
    const char *k;
    json_t *doc;
    json_object_foreach(f->funcs, k, doc)
    {
        if (name && strcmp(k, name) != 0)
            continue;
        const char *q;
        json_t *cfg;
        json_object_foreach(json_object_get(doc, "pc"), q, cfg)
        {
            if (v && strcmp(q, v->pc_qualifier) != 0)
                continue;
            const char *st = json_string_value(json_object_get(cfg, "status"));
            int n = (int)json_integer_value(json_object_get(cfg, "n"));
            kn_err e;
            if (failed && strcmp(st, "IN_PROGRESS") == 0) {
                json_object_set_new(cfg, "status", json_string("FAILED"));
                json_object_set_new(cfg, "reason", json_string(reason ? reason : "failed"));
                save(f, k, &e);
            } else if (!failed && strcmp(st, "READY") != 0 && pc_live(f, k, q, true) >= n) {
                json_object_set_new(cfg, "status", json_string("READY"));
                json_object_set_new(cfg, "reason", json_string(""));
                kn_scale_pool_set_ready(f->pool, k, q, n, &e);
                save(f, k, &e);
            }
        }
    }
}

static void pc_fill(kn_fn *f, const char *name, const char *qual, json_t *doc)
{
    json_t *cfg = json_object_get(json_object_get(doc, "pc"), qual);
    if (!cfg || strcmp(json_string_value(json_object_get(cfg, "status")), "FAILED") == 0)
        return;
    const char *ver = json_string_value(json_object_get(cfg, "version"));
    json_t *vcfg = json_object_get(json_object_get(doc, "versions"), ver);
    if (!vcfg)
        return;
    int n = (int)json_integer_value(json_object_get(cfg, "n"));
    for (int live = pc_live(f, name, qual, false); live < n; live++) {
        fn_env *v = env_new(f, name, ver, doc, vcfg, true, qual);
        kn_err e;
        if (!v || kn_fn__env_start(f, v, &e)) {
            free(v);
            return;
        }
    }
}

/* ------------------------------------------------------------- invoke */

static void b64(const uint8_t *p, size_t n, char *out, size_t cap)
{
    if (4 * ((n + 2) / 3) + 1 > cap) {
        out[0] = '\0';
        return;
    }
    EVP_EncodeBlock((unsigned char *)out, p, (int)n);
}

/* The environment's peak resident memory (VmHWM) while it is alive. */
static long max_rss_mb(pid_t pid)
{
    if (pid <= 0)
        return 0;
    char path[64], buf[4096];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    const char *h = strstr(buf, "VmHWM:");
    return h ? (strtol(h + 6, NULL, 10) + 1023) / 1024 : 0;
}

static void error_doc(kn_buf *b, const char *type, const char *request_id, const char *msg)
{
    json_t *o = json_pack("{s:s, s:s}", "errorType", type, "errorMessage", "");
    char m[700];
    if (request_id)
        snprintf(m, sizeof m, "RequestId: %s Error: %s", request_id, msg);
    else
        snprintf(m, sizeof m, "%s", msg);
    kn_text_clean(m);
    json_object_set_new(o, "errorMessage", json_string(m));
    char *t = json_dumps(o, JSON_COMPACT);
    b->len = 0;
    if (t)
        kn_buf_append(b, t, strlen(t));
    free(t);
    json_decref(o);
}

static kn_status queue_event(kn_fn *f, const char *name, const char *qual,
                             const kn_fn_invoke_params *p, kn_fn_result *r, kn_err *e)
{
    int64_t id;
    kn_status s = kn_registry_fn_event_add(f->reg, name, qual, p->payload, p->len, &id, e);
    if (s)
        return s;
    pthread_mutex_lock(&f->mu);
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
    r->status = 202;
    return KN_OK;
}

kn_status kn_fn_invoke(kn_fn *f, const kn_fn_invoke_params *p, kn_fn_result *r, kn_err *e)
{
    char name[72], qual[136];
    if (!kn_fn_name_parse(p->name, name, sizeof name, qual, sizeof qual))
        return kn_err_set(e, KN_SHAPE,
                          "1 validation error detected: Value '%.80s' at 'functionName' failed "
                          "to satisfy constraint: Member must satisfy regular expression pattern: "
                          "(arn:(aws[a-zA-Z-]*)?:lambda:)?([a-z]{2}(-gov)?-[a-z]+-\\d{1}:)?"
                          "(\\d{12}:)?(function:)?([a-zA-Z0-9-_]+)(:(\\$LATEST|[a-zA-Z0-9-_]+))?",
                          p->name);
    if (p->qualifier && *p->qualifier) {
        if (qual[0] && strcmp(qual, p->qualifier) != 0)
            return kn_err_set(e, KN_INVALID,
                              "The derived qualifier from the function name does not match the "
                              "specified qualifier.");
        snprintf(qual, sizeof qual, "%s", p->qualifier);
    }
    if (p->len) {
        json_error_t je;
        json_t *ev = json_loadb((const char *)p->payload, p->len,
                                JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
        if (!ev) {
            kn_err_set(e, KN_BAD_FORMAT, "Could not parse request body into json: %s (line %d "
                                         "column %d)",
                       je.text, je.line, je.column);
            kn_text_clean(e->msg);
            return KN_BAD_FORMAT;
        }
        json_decref(ev);
    }
    pthread_mutex_lock(&f->mu);
    json_t *doc = doc_of(f, name);
    const char *verp = doc ? resolve(doc, qual) : NULL;
    json_t *cfg = verp ? json_object_get(json_object_get(doc, "versions"), verp) : NULL;
    if (!cfg) {
        pthread_mutex_unlock(&f->mu);
        return not_found(f, name, qual, e);
    }
    char version[16];
    snprintf(version, sizeof version, "%s", verp);
    snprintf(r->executed_version, sizeof r->executed_version, "%s", version);
    int timeout_s = (int)json_integer_value(json_object_get(cfg, "Timeout"));
    int memory_mb = (int)json_integer_value(json_object_get(cfg, "MemorySize"));
    char code_dir[1024];
    snprintf(code_dir, sizeof code_dir, "%s", json_string_value(json_object_get(cfg, "_code")));
    unsigned long long gen = (unsigned long long)json_integer_value(json_object_get(doc, "gen"));
    pthread_mutex_unlock(&f->mu);

    if (p->type == KN_FN_DRY_RUN) {
        r->status = 204;
        return KN_OK;
    }
    if (p->type == KN_FN_EVENT)
        return queue_event(f, name, qual[0] ? qual : LATEST, p, r, e);

    kn_scale_lease lease;
    kn_scale_throttle why;
    if (!kn_scale_pool_acquire(f->pool, name, version, &lease, &why)) {
        pthread_mutex_lock(&f->mu);
        fn_stats *st = stats_of(f, name);
        if (st) {
            stats_roll(f, st, (int64_t)(kn_clock_wall(f->clock) / 60));
            st->cur.throttles++;
            st->throttles++;
        }
        pthread_mutex_unlock(&f->mu);
        r->throttle_reason = kn_scale_throttle_reason(why);
        return kn_err_set(e, KN_RESOURCE_LIMIT, "Rate Exceeded.");
    }
    r->provisioned = lease.provisioned;

    fn_inv inv;
    memset(&inv, 0, sizeof inv);
    uuid(inv.request_id, sizeof inv.request_id);
    inv.payload = p->len ? p->payload : (const uint8_t *)"{}";
    inv.len = p->len ? p->len : 2;
    inv.client_context = p->client_context;
    fn_arn(f, name, qual[0] ? qual : NULL, inv.arn, sizeof inv.arn);
    snprintf(inv.version, sizeof inv.version, "%s", version);
    inv.timeout_s = timeout_s;
    kn_buf_init(&inv.response, KN_FN_MAX_RESPONSE + 1);
    kn_buf_init(&inv.log, 1 << 20);
    kn_clock_cond_init(&inv.cv);

    uint64_t t0 = kn_now_ns();
    fn_env *env = NULL;
    bool cold = false;
    char bootstrap[1100];
    snprintf(bootstrap, sizeof bootstrap, "%s/bootstrap", code_dir);
    struct stat bst;
    bool bad_entry = stat(bootstrap, &bst) != 0 || !S_ISREG(bst.st_mode) ||
                     access(bootstrap, X_OK) != 0;
    pthread_mutex_lock(&f->mu);
    fn_stats *st = stats_of(f, name);
    if (st) {
        stats_roll(f, st, (int64_t)(kn_clock_wall(f->clock) / 60));
        st->in_flight++;
        if (lease.provisioned)
            st->in_flight_pc++;
        if (st->in_flight > st->cur.concurrent_max)
            st->cur.concurrent_max = st->in_flight;
    }
    if (bad_entry) {
        inv.outcome = INV_EXIT;
        inv.env_done = true;
    } else {
        for (fn_env *v = f->envs; v; v = v->next) {
            if (v->state == ENV_IDLE && !v->inv && !v->kill_requested && v->gen == gen &&
                v->provisioned == lease.provisioned && strcmp(v->name, name) == 0 &&
                strcmp(v->version, version) == 0) {
                env = v;
                break;
            }
        }
        if (!env) {
            env = env_new(f, name, version, doc_of(f, name) ? doc_of(f, name) : NULL,
                          json_object_get(json_object_get(doc_of(f, name), "versions"), version),
                          false, NULL);
            kn_err e2;
            if (env && kn_fn__env_start(f, env, &e2)) {
                pthread_cond_destroy(&env->cv);
                for (char **q = env->envp; *q; q++)
                    free(*q);
                free(env->envp);
                free(env);
                env = NULL;
            }
            cold = env != NULL;
            if (!env) {
                inv.outcome = INV_EXIT;
                inv.env_done = true;
            }
        }
    }
    if (env) {
        env->inv = &inv;
        if (env->state == ENV_IDLE)
            env->state = ENV_BUSY;
        pthread_cond_broadcast(&env->cv);
        /* wait: Init (on-demand limit), then the function's timeout */
        uint64_t init_deadline = kn_now_ns() + (uint64_t)f->params.init_timeout_ms * 1000000ull;
        for (;;) {
            if (inv.outcome != INV_PENDING && inv.env_done)
                break;
            uint64_t deadline =
                inv.outcome != INV_PENDING
                    ? kn_now_ns() + 100000000ull
                    : (inv.delivered ? inv.delivered_ns + (uint64_t)timeout_s * 1000000000ull
                                     : init_deadline);
            if (inv.outcome == INV_PENDING && kn_now_ns() >= deadline) {
                inv.outcome = INV_TIMEOUT;
                inv.done_ns = kn_now_ns();
                kn_fn__env_kill(env);
                continue;
            }
            struct timespec ts = {.tv_sec = (time_t)(deadline / 1000000000ull),
                                  .tv_nsec = (long)(deadline % 1000000000ull)};
            pthread_cond_timedwait(&inv.cv, &f->mu, &ts);
        }
    }
    /* env may be gone (its thread frees it, unlinked, under mu): read its
     * pid only while it is still listed */
    pid_t env_pid = 0;
    for (fn_env *v = f->envs; env && v; v = v->next)
        if (v == env && !v->kill_requested)
            env_pid = v->pid;
    pthread_mutex_unlock(&f->mu);

    uint64_t t1 = inv.done_ns ? inv.done_ns : kn_now_ns();
    double dur_ms = (double)(t1 - (inv.delivered_ns ? inv.delivered_ns : t0)) / 1e6;
    r->status = 200;
    r->cold = cold;
    switch (inv.outcome) {
    case INV_OK:
        kn_buf_append(&r->payload, inv.response.data, inv.response.len);
        break;
    case INV_ERROR:
    case INV_INIT_ERROR:
        snprintf(r->function_error, sizeof r->function_error, "Unhandled");
        if (inv.response.len)
            kn_buf_append(&r->payload, inv.response.data, inv.response.len);
        else
            error_doc(&r->payload, inv.error_type, inv.request_id, "the runtime reported an error");
        break;
    case INV_TIMEOUT: {
        snprintf(r->function_error, sizeof r->function_error, "Unhandled");
        char m[128];
        snprintf(m, sizeof m, "Task timed out after %d.00 seconds", timeout_s);
        error_doc(&r->payload, "Sandbox.Timedout", inv.request_id, m);
        dur_ms = (double)timeout_s * 1000;
        break;
    }
    case INV_TOO_LARGE:
        snprintf(r->function_error, sizeof r->function_error, "Unhandled");
        kn_buf_append(&r->payload, inv.response.data, inv.response.len);
        break;
    case INV_EXIT:
    default:
        snprintf(r->function_error, sizeof r->function_error, "Unhandled");
        if (bad_entry) {
            char m[1300];
            if (stat(bootstrap, &bst) != 0)
                snprintf(m, sizeof m,
                         "Couldn't find valid bootstrap(s): [%s/bootstrap /opt/bootstrap]",
                         code_dir);
            else
                snprintf(m, sizeof m, "fork/exec %s: permission denied", bootstrap);
            error_doc(&r->payload, "Runtime.InvalidEntrypoint", inv.request_id, m);
        } else {
            inv.response.data[inv.response.len] = 0;
            error_doc(&r->payload, "Runtime.ExitError", inv.request_id,
                      inv.response.len ? (const char *)inv.response.data
                                       : "Runtime exited without providing a reason");
        }
        break;
    }
    /* END and REPORT lines */
    char lines[600];
    int ln = snprintf(lines, sizeof lines,
                      "END RequestId: %s\nREPORT RequestId: %s\tDuration: %.2f ms\tBilled "
                      "Duration: %.0f ms\tMemory Size: %d MB\tMax Memory Used: %ld MB\t",
                      inv.request_id, inv.request_id, dur_ms, dur_ms < 1 ? 1 : dur_ms + 0.5,
                      memory_mb, max_rss_mb(env_pid));
    if (cold && inv.delivered) {
        /* Init Duration: from the process start to its first /next */
        double init = (double)(inv.delivered_ns - t0) / 1e6;
        ln += snprintf(lines + ln, sizeof lines - (size_t)ln, "Init Duration: %.2f ms\t", init);
    }
    if (inv.outcome == INV_TIMEOUT)
        ln += snprintf(lines + ln, sizeof lines - (size_t)ln, "Status: timeout");
    ln += snprintf(lines + ln, sizeof lines - (size_t)ln, "\n");
    if (inv.outcome == INV_TIMEOUT || bad_entry) {
        char extra[1400];
        int xn = snprintf(extra, sizeof extra, "%s%.*s\n",
                          bad_entry ? "" : "", (int)r->payload.len, (const char *)r->payload.data);
        if (!inv.delivered && bad_entry) {
            char start[200];
            int sn = snprintf(start, sizeof start, "START RequestId: %s Version: %s\n",
                              inv.request_id, version);
            kn_buf_append(&inv.log, start, (size_t)sn);
            kn_fn__log_write(f, name, start, (size_t)sn);
        }
        kn_buf_append(&inv.log, extra, (size_t)xn);
        kn_fn__log_write(f, name, extra, (size_t)xn);
    }
    kn_buf_append(&inv.log, lines, (size_t)ln);
    kn_fn__log_write(f, name, lines, (size_t)ln);
    if (p->tail) {
        size_t off = inv.log.len > KN_FN_TAIL_BYTES ? inv.log.len - KN_FN_TAIL_BYTES : 0;
        b64(inv.log.data + off, inv.log.len - off, r->log_tail, sizeof r->log_tail);
    }
    pthread_mutex_lock(&f->mu);
    if (st) {
        stats_roll(f, st, (int64_t)(kn_clock_wall(f->clock) / 60));
        st->in_flight--;
        if (lease.provisioned)
            st->in_flight_pc--;
        st->cur.invocations++;
        st->invocations++;
        if (cold)
            st->cold_starts++;
        if (r->function_error[0]) {
            st->cur.errors++;
            st->errors++;
        }
        st->cur.duration_ms += dur_ms;
        st->duration_ms += dur_ms;
        if (dur_ms > st->cur.duration_max)
            st->cur.duration_max = dur_ms;
        if (lease.provisioned)
            st->cur.pc_invocations++;
        if (lease.spillover)
            st->cur.pc_spillover++;
        kn_scale_fn_stats ps;
        kn_scale_pool_stats(f->pool, name, &ps);
        if (ps.provisioned > 0) {
            double u = (double)(st->in_flight_pc + (lease.provisioned ? 1 : 0)) / ps.provisioned;
            if (u > st->cur.pc_utilization)
                st->cur.pc_utilization = u;
        }
    }
    pthread_mutex_unlock(&f->mu);
    kn_scale_pool_release(f->pool, &lease);
    pthread_cond_destroy(&inv.cv);
    kn_buf_deinit(&inv.response);
    kn_buf_deinit(&inv.log);
    return KN_OK;
}

/* ----------------------------------------------------- background */

static void *janitor_main(void *arg)
{
    kn_fn *f = arg;
    pthread_mutex_lock(&f->mu);
    while (!f->stopping) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_nsec += 200000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&f->cv, &f->mu, &ts);
        if (f->stopping)
            break;
        uint64_t now = kn_now_ns();
        for (fn_env *v = f->envs; v; v = v->next) {
            if (v->state != ENV_IDLE || v->inv || v->kill_requested)
                continue;
            json_t *doc = doc_of(f, v->name);
            bool stale = !doc || (unsigned long long)json_integer_value(
                                     json_object_get(doc, "gen")) != v->gen;
            if (stale || (!v->provisioned &&
                          now - v->idle_since_ns > (uint64_t)f->params.idle_ms * 1000000ull))
                kn_fn__env_kill(v);
        }
        const char *k;
        json_t *doc;
        json_object_foreach(f->funcs, k, doc)
        {
            const char *q;
            json_t *cfg;
            json_object_foreach(json_object_get(doc, "pc"), q, cfg) pc_fill(f, k, q, doc);
        }
        int64_t minute = (int64_t)(kn_clock_wall(f->clock) / 60);
        for (fn_stats *s = f->stats; s; s = s->next)
            stats_roll(f, s, minute);
    }
    pthread_mutex_unlock(&f->mu);
    return NULL;
}

static void *events_main(void *arg)
{
    kn_fn *f = arg;
    int64_t after = 0;
    for (;;) {
        pthread_mutex_lock(&f->mu);
        bool stop = f->stopping;
        pthread_mutex_unlock(&f->mu);
        if (stop)
            break;
        int64_t id;
        char name[72], qual[136];
        uint8_t *payload;
        size_t len;
        kn_err e;
        kn_status s = kn_registry_fn_event_next(f->reg, after, &id, name, sizeof name, qual,
                                                sizeof qual, &payload, &len, &e);
        if (s) {
            pthread_mutex_lock(&f->mu);
            if (!f->stopping) {
                struct timespec ts;
                clock_gettime(CLOCK_MONOTONIC, &ts);
                ts.tv_sec += 1;
                pthread_cond_timedwait(&f->cv, &f->mu, &ts);
            }
            pthread_mutex_unlock(&f->mu);
            after = 0;
            continue;
        }
        kn_fn_invoke_params p = {.name = name,
                                 .qualifier = qual,
                                 .type = KN_FN_REQUEST_RESPONSE,
                                 .payload = payload,
                                 .len = len};
        kn_fn_result r;
        kn_fn_result_init(&r);
        s = kn_fn_invoke(f, &p, &r, &e);
        kn_fn_result_deinit(&r);
        free(payload);
        if (s == KN_RESOURCE_LIMIT) {
            after = id; /* retried on the next pass */
            continue;
        }
        kn_registry_fn_event_done(f->reg, id, &e);
    }
    return NULL;
}

/* ------------------------------------------------------------ lifecycle */

static void load_one(const char *name, const char *text, void *ctx)
{
    kn_fn *f = ctx;
    json_error_t je;
    json_t *doc = json_loads(text, 0, &je);
    if (!doc) {
        kn_log(KN_LOG_WARN, "function %s: stored document unreadable: %s", name, je.text);
        return;
    }
    json_object_set_new(f->funcs, name, doc);
    kn_err e;
    json_t *r = json_object_get(doc, "reserved");
    if (r)
        kn_scale_pool_set_reserved(f->pool, name, (int)json_integer_value(r), &e);
    const char *q;
    json_t *cfg;
    json_object_foreach(json_object_get(doc, "pc"), q, cfg)
    {
        json_object_set_new(cfg, "status", json_string("IN_PROGRESS"));
        kn_scale_pool_set_provisioned(f->pool, name, q,
                                      json_string_value(json_object_get(cfg, "version")),
                                      (int)json_integer_value(json_object_get(cfg, "n")), &e);
    }
}

kn_status kn_fn_start(kn_platform *p, const kn_fn_params *fp, kn_fn **out, kn_err *e)
{
    *out = NULL;
    kn_fn *f = calloc(1, sizeof *f);
    if (!f)
        return kn_err_set(e, KN_NOMEM, "out of memory");
    f->p = p;
    f->reg = kn_platform_registry(p);
    f->clock = kn_platform_clock(p);
    f->params = fp ? *fp : kn_fn_default_params();
    snprintf(f->data_dir, sizeof f->data_dir, "%s", kn_platform_data_dir(p));
    snprintf(f->region, sizeof f->region, "%s", kn_registry_region(f->reg));
    snprintf(f->account, sizeof f->account, "%s", kn_registry_account(f->reg));
    if (f->params.access_key)
        snprintf(f->access_key, sizeof f->access_key, "%s", f->params.access_key);
    if (f->params.secret_key)
        snprintf(f->secret_key, sizeof f->secret_key, "%s", f->params.secret_key);
    if (f->params.session_token)
        snprintf(f->session_token, sizeof f->session_token, "%s", f->params.session_token);
    f->params.access_key = f->params.secret_key = f->params.session_token = NULL;
    f->iam = f->params.iam;
    pthread_mutex_init(&f->mu, NULL);
    kn_clock_cond_init(&f->cv);
    f->funcs = json_object();
    kn_scale_pool_params pp = kn_scale_pool_default_params();
    pp.account_limit = f->params.account_limit;
    pp.min_unreserved = f->params.min_unreserved;
    char dir[1100];
    snprintf(dir, sizeof dir, "%s/functions", f->data_dir);
    kn_status s = kn_registry_fn_init(f->reg, e);
    if (!s)
        s = kn_scale_pool_new(&pp, &f->pool, e);
    if (!s)
        s = kn_mkdirs(dir, 0755, e);
    if (!s)
        s = kn_registry_fn_each(f->reg, load_one, f, e);
    if (s) {
        kn_fn_stop(f);
        return s;
    }
    /* make sure every function has its log directory */
    const char *k;
    json_t *doc;
    json_object_foreach(f->funcs, k, doc)
    {
        snprintf(dir, sizeof dir, "%s/functions/%s", f->data_dir, k);
        kn_mkdirs(dir, 0755, e);
    }
    pthread_mutex_lock(&f->mu);
    json_object_foreach(f->funcs, k, doc)
    {
        const char *q;
        json_t *cfg;
        json_object_foreach(json_object_get(doc, "pc"), q, cfg) pc_fill(f, k, q, doc);
    }
    pthread_mutex_unlock(&f->mu);
    f->have_janitor = pthread_create(&f->janitor, NULL, janitor_main, f) == 0;
    f->have_events = pthread_create(&f->events, NULL, events_main, f) == 0;
    *out = f;
    return KN_OK;
}

void kn_fn_set_endpoint_url(kn_fn *f, const char *url)
{
    pthread_mutex_lock(&f->mu);
    snprintf(f->endpoint_url, sizeof f->endpoint_url, "%s", url ? url : "");
    pthread_mutex_unlock(&f->mu);
}

void kn_fn_stop(kn_fn *f)
{
    if (!f)
        return;
    pthread_mutex_lock(&f->mu);
    f->stopping = true;
    pthread_cond_broadcast(&f->cv);
    for (fn_env *v = f->envs; v; v = v->next)
        kn_fn__env_kill(v);
    pthread_mutex_unlock(&f->mu);
    if (f->have_janitor)
        pthread_join(f->janitor, NULL);
    if (f->have_events)
        pthread_join(f->events, NULL);
    pthread_mutex_lock(&f->mu);
    while (f->env_threads > 0) {
        for (fn_env *v = f->envs; v; v = v->next)
            kn_fn__env_kill(v);
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_nsec += 50000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&f->cv, &f->mu, &ts);
    }
    int64_t minute = (int64_t)(kn_clock_wall(f->clock) / 60) + 1;
    for (fn_stats *s = f->stats; s; s = s->next)
        stats_roll(f, s, minute);
    pthread_mutex_unlock(&f->mu);
    while (f->creds) {
        fn_creds *n = f->creds->next;
        free(f->creds);
        f->creds = n;
    }
    while (f->stats) {
        fn_stats *n = f->stats->next;
        free(f->stats);
        f->stats = n;
    }
    kn_scale_pool_free(f->pool);
    json_decref(f->funcs);
    pthread_cond_destroy(&f->cv);
    pthread_mutex_destroy(&f->mu);
    free(f);
}

/* ------------------------------------------------------------ observe */

kn_status kn_fn_prometheus(kn_fn *f, kn_buf *b)
{
    pthread_mutex_lock(&f->mu);
    kn_buf_appendf(b, "# TYPE kennel_function_invocations_total counter\n");
    for (fn_stats *s = f->stats; s; s = s->next) {
        kn_scale_fn_stats ps;
        kn_scale_pool_stats(f->pool, s->name, &ps);
        kn_buf_appendf(b,
                       "kennel_function_invocations_total{function=\"%s\"} %lld\n"
                       "kennel_function_errors_total{function=\"%s\"} %lld\n"
                       "kennel_function_throttles_total{function=\"%s\"} %lld\n"
                       "kennel_function_cold_starts_total{function=\"%s\"} %lld\n"
                       "kennel_function_duration_ms_total{function=\"%s\"} %.3f\n"
                       "kennel_function_concurrent_executions{function=\"%s\"} %d\n"
                       "kennel_function_provisioned_concurrent_executions{function=\"%s\"} %d\n"
                       "kennel_function_provisioned_concurrency{function=\"%s\"} %d\n"
                       "kennel_function_reserved_concurrency{function=\"%s\"} %d\n",
                       s->name, s->invocations, s->name, s->errors, s->name, s->throttles,
                       s->name, s->cold_starts, s->name, s->duration_ms, s->name, s->in_flight,
                       s->name, s->in_flight_pc, s->name, ps.provisioned, s->name, ps.reserved);
    }
    int envs = 0;
    for (fn_env *v = f->envs; v; v = v->next)
        envs++;
    kn_buf_appendf(b, "kennel_function_environments %d\n", envs);
    pthread_mutex_unlock(&f->mu);
    return KN_OK;
}

kn_status kn_fn_logs(kn_fn *f, const char *name, kn_buf *b, kn_err *e)
{
    pthread_mutex_lock(&f->mu);
    bool found = doc_of(f, name) != NULL;
    pthread_mutex_unlock(&f->mu);
    if (!found)
        return not_found(f, name, NULL, e);
    char path[1200];
    snprintf(path, sizeof path, "%s/functions/%s/function.log", f->data_dir, name);
    struct stat st;
    if (stat(path, &st) != 0)
        return KN_OK;
    return kn_file_read(path, b, e);
}

kn_status kn_fn_metrics(kn_fn *f, const char *name, int minutes, json_t **out, kn_err *e)
{
    *out = NULL;
    pthread_mutex_lock(&f->mu);
    bool found = doc_of(f, name) != NULL;
    kn_fn_minute cur = {0};
    fn_stats *st = found ? stats_of(f, name) : NULL;
    if (st)
        cur = st->cur;
    pthread_mutex_unlock(&f->mu);
    if (!found)
        return not_found(f, name, NULL, e);
    kn_fn_minute *m;
    size_t n;
    kn_status s = kn_registry_fn_metrics_get(f->reg, name, minutes, &m, &n, e);
    if (s)
        return s;
    json_t *arr = json_array();
    for (size_t i = 0; i <= n; i++) {
        kn_fn_minute *x = i < n ? &m[i] : &cur;
        if (i == n && !x->invocations && !x->throttles)
            break;
        json_array_append_new(
            arr, json_pack("{s:I, s:I, s:I, s:I, s:f, s:f, s:i, s:I, s:I, s:f}", "Minute",
                           (json_int_t)(x->minute * 60), "Invocations",
                           (json_int_t)x->invocations, "Errors", (json_int_t)x->errors,
                           "Throttles", (json_int_t)x->throttles, "Duration",
                           x->invocations ? x->duration_ms / (double)x->invocations : 0.0,
                           "DurationMax", x->duration_max, "ConcurrentExecutions",
                           x->concurrent_max, "ProvisionedConcurrencyInvocations",
                           (json_int_t)x->pc_invocations,
                           "ProvisionedConcurrencySpilloverInvocations",
                           (json_int_t)x->pc_spillover, "ProvisionedConcurrencyUtilization",
                           x->pc_utilization));
    }
    free(m);
    *out = json_pack("{s:s, s:o}", "FunctionName", name, "Metrics", arr);
    return KN_OK;
}

/* ---- tags ------------------------------------------------------------------ */

kn_status kn_fn_tags_get(kn_fn *f, const char *name, json_t **out, kn_err *e)
{
    *out = NULL;
    pthread_mutex_lock(&f->mu);
    json_t *doc = doc_of(f, name);
    if (doc) {
        json_t *t = json_object_get(doc, "tags");
        *out = t ? json_deep_copy(t) : json_object();
    }
    pthread_mutex_unlock(&f->mu);
    return doc ? KN_OK : not_found(f, name, NULL, e);
}

kn_status kn_fn_tags_update(kn_fn *f, const char *name, json_t *set, const char *const *remove,
                            size_t n_remove, kn_err *e)
{
    json_t *doc;
    kn_status s = lock_doc(f, name, &doc, e);
    if (s)
        return s;
    json_t *t = json_object_get(doc, "tags");
    json_t *next = t ? json_deep_copy(t) : json_object();
    if (set)
        json_object_update(next, set);
    for (size_t i = 0; i < n_remove; i++)
        json_object_del(next, remove[i]);
    if (json_object_size(next) > KN_FN_MAX_TAGS) {
        s = kn_err_set(e, KN_INVALID, "A function can have at most %d tags (this would make %zu)",
                       KN_FN_MAX_TAGS, json_object_size(next));
        json_decref(next);
    } else {
        json_object_set_new(doc, "tags", next);
        s = save(f, name, e);
    }
    pthread_mutex_unlock(&f->mu);
    return s;
}
