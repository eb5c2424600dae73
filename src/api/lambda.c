/* Lambda's REST-JSON operations over the fn module: function CRUD,
 * versions, aliases, concurrency (reserved and provisioned), account
 * settings and Invoke. Errors take Lambda's shape: the x-amzn-ErrorType
 * header plus {"Type": "User", "message": ...} (and "Reason" for throttles,
 * with Retry-After). Request bodies are parsed here (REST-JSON gets no body
 * parsing from the dispatcher); FunctionName path segments arrive
 * percent-encoded and may be ARNs or hold ":qualifier".
 */
#include "api_int.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Maps a fn status onto Lambda's error names; anything else is a
 * ServiceException (500). */
static kn_status lambda_err(kn_api_call *c, kn_status s)
{
    static const struct {
        kn_status s;
        const char *code;
        int http;
    } map[] = {
        {KN_NOT_FOUND, "ResourceNotFoundException", 404},
        {KN_RESOURCE_NOT_FOUND, "ProvisionedConcurrencyConfigNotFoundException", 404},
        {KN_EXISTS, "ResourceConflictException", 409},
        {KN_INVALID, "InvalidParameterValueException", 400},
        {KN_SHAPE, "ValidationException", 400},
        {KN_BAD_FORMAT, "InvalidRequestContentException", 400},
    };
    c->err_code = "ServiceException";
    c->err_http = 500;
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (map[i].s == s) {
            c->err_code = map[i].code;
            c->err_http = map[i].http;
        }
    json_decref(c->err_extra);
    c->err_extra = json_pack("{s:s, s:s}", "Type", "User", "message", c->err.msg);
    return s;
}

static kn_status need_fn(kn_api_call *c)
{
    if (c->api->fn)
        return KN_OK;
    c->err_code = "ServiceException";
    c->err_http = 503;
    return kn_err_set(&c->err, KN_INTERNAL, "This kennel server does not run functions.");
}

/* FunctionName (and qualifier inside it) from the path. */
static kn_status path_fn(kn_api_call *c, char *name, size_t nn, char *qual, size_t qn)
{
    char raw[300];
    const char *seg = NULL;
    for (int i = 0; i < c->match->n_params; i++)
        if (strcmp(c->match->params[i].name, "FunctionName") == 0)
            seg = c->match->params[i].value;
    if (!seg || !kn_api__url_decode(seg, raw, sizeof raw) ||
        !kn_fn_name_parse(raw, name, nn, qual, qn)) {
        kn_err_set(&c->err, KN_SHAPE,
                   "1 validation error detected: Value '%.100s' at 'functionName' failed to "
                   "satisfy constraint: Member must satisfy regular expression pattern: "
                   "(arn:(aws[a-zA-Z-]*)?:lambda:)?([a-z]{2}(-gov)?-[a-z]+-\\d{1}:)?(\\d{12}:)?"
                   "(function:)?([a-zA-Z0-9-_]+)(:(\\$LATEST|[a-zA-Z0-9-_]+))?",
                   seg ? seg : "");
        kn_text_clean(c->err.msg);
        return lambda_err(c, KN_SHAPE);
    }
    return KN_OK;
}

static const char *path_param(kn_api_call *c, const char *pname, char *out, size_t n)
{
    for (int i = 0; i < c->match->n_params; i++)
        if (strcmp(c->match->params[i].name, pname) == 0 &&
            kn_api__url_decode(c->match->params[i].value, out, n))
            return out;
    return NULL;
}

static bool query_get(kn_api_call *c, const char *key, char *out, size_t n)
{
    const char *q = c->req->query;
    return q && kn_api__form_get(q, strlen(q), key, out, n);
}

/* The qualifier from ?Qualifier= or the name (the query wins when both agree). */
static kn_status qualifier(kn_api_call *c, char *qual, size_t qn)
{
    char q[160];
    if (query_get(c, "Qualifier", q, sizeof q)) {
        if (qual[0] && strcmp(qual, q) != 0) {
            kn_err_set(&c->err, KN_INVALID,
                       "The derived qualifier from the function name does not match the "
                       "specified qualifier.");
            return lambda_err(c, KN_INVALID);
        }
        snprintf(qual, qn, "%s", q);
    }
    return KN_OK;
}

static kn_status body_json(kn_api_call *c, json_t **out)
{
    *out = NULL;
    if (c->req->body_len == 0) {
        *out = json_object();
        return KN_OK;
    }
    json_error_t je;
    json_t *j = json_loadb((const char *)c->req->body, c->req->body_len, 0, &je);
    if (!j || !json_is_object(j)) {
        json_decref(j);
        kn_err_set(&c->err, KN_BAD_FORMAT, "Could not parse request body into json: %s",
                   j ? "not an object" : je.text);
        kn_text_clean(c->err.msg);
        return lambda_err(c, KN_BAD_FORMAT);
    }
    *out = j;
    return KN_OK;
}

static kn_status config_from(kn_api_call *c, json_t *in, kn_fn_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    const char *str_members[] = {"Runtime", "Role", "Handler", "Description"};
    const char **dst[] = {&cfg->runtime, &cfg->role, &cfg->handler, &cfg->description};
    for (int i = 0; i < 4; i++) {
        json_t *v = json_object_get(in, str_members[i]);
        if (v && !json_is_string(v)) {
            kn_err_set(&c->err, KN_SERIALIZATION, "%s must be a string", str_members[i]);
            return lambda_err(c, KN_SHAPE);
        }
        *dst[i] = json_string_value(v);
    }
    if (cfg->runtime && strncmp(cfg->runtime, "provided", 8) != 0) {
        kn_err_set(&c->err, KN_INVALID,
                   "The runtime parameter of %.40s is not supported by kennel: use provided or "
                   "provided.al2023 with an executable bootstrap in the zip.",
                   cfg->runtime);
        kn_text_clean(c->err.msg);
        return lambda_err(c, KN_INVALID);
    }
    json_t *t = json_object_get(in, "Timeout"), *m = json_object_get(in, "MemorySize");
    if ((t && !json_is_integer(t)) || (m && !json_is_integer(m))) {
        kn_err_set(&c->err, KN_SHAPE, "Timeout and MemorySize must be integers");
        return lambda_err(c, KN_SHAPE);
    }
    if (t) {
        json_int_t x = json_integer_value(t);
        cfg->timeout_s = x < -1 ? -1 : x > 100000 ? 100000 : (int)x;
        if (cfg->timeout_s == 0)
            cfg->timeout_s = -1;
    }
    if (m) {
        json_int_t x = json_integer_value(m);
        cfg->memory_mb = x < -1 ? -1 : x > 1000000 ? 1000000 : (int)x;
        if (cfg->memory_mb == 0)
            cfg->memory_mb = -1;
    }
    json_t *env = json_object_get(in, "Environment");
    if (env) {
        json_t *vars = json_object_get(env, "Variables");
        if (!json_is_object(env) || (vars && !json_is_object(vars))) {
            kn_err_set(&c->err, KN_SHAPE, "Environment.Variables must be a map of strings");
            return lambda_err(c, KN_SHAPE);
        }
        cfg->environment = vars; /* NULL: {} given, which clears on update */
    }
    return KN_OK;
}

/* ZipFile (base64) or S3Bucket/S3Key in the artifact store, into buf. */
static kn_status code_from(kn_api_call *c, json_t *code, kn_buf *buf)
{
    json_t *zf = json_object_get(code, "ZipFile");
    if (json_is_string(zf)) {
        size_t n = json_string_length(zf);
        if (n > 4 * (KN_FN_MAX_ZIP / 3) + 4) {
            kn_err_set(&c->err, KN_INVALID, "Zipped size must be smaller than %zu bytes",
                       KN_FN_MAX_ZIP);
            return lambda_err(c, KN_INVALID);
        }
        if (kn_buf_reserve(buf, n) != KN_OK)
            return lambda_err(c, kn_err_set(&c->err, KN_NOMEM, "out of memory"));
        const char *s = json_string_value(zf);
        int out = n ? EVP_DecodeBlock(buf->data, (const unsigned char *)s, (int)n) : -1;
        if (out < 0 || n % 4) {
            kn_err_set(&c->err, KN_INVALID, "Could not unzip uploaded file. Please check your "
                                            "file, then try to upload again.");
            return lambda_err(c, KN_INVALID);
        }
        size_t pad = (n && s[n - 1] == '=') + (n > 1 && s[n - 2] == '=');
        buf->len = (size_t)out - pad;
        return KN_OK;
    }
    json_t *bk = json_object_get(code, "S3Bucket"), *key = json_object_get(code, "S3Key");
    if (json_is_string(bk) && json_is_string(key)) {
        const char *b = json_string_value(bk), *k = json_string_value(key);
        if (strstr(b, "..") || strstr(k, "..") || strchr(b, '/') || k[0] == '/') {
            kn_err_set(&c->err, KN_INVALID, "Error occurred while GetObject. S3 Error Code: "
                                            "InvalidArgument.");
            return lambda_err(c, KN_INVALID);
        }
        char path[2048];
        snprintf(path, sizeof path, "%s/%s/%s", kn_platform_artifacts_dir(c->api->platform), b,
                 k);
        kn_err e;
        if (kn_file_read(path, buf, &e)) {
            kn_err_set(&c->err, KN_INVALID,
                       "Error occurred while GetObject. S3 Error Code: NoSuchKey. S3 Error "
                       "Message: The specified key does not exist (%.200s/%.200s).",
                       b, k);
            kn_text_clean(c->err.msg);
            return lambda_err(c, KN_INVALID);
        }
        return KN_OK;
    }
    kn_err_set(&c->err, KN_INVALID,
               "Please provide a source for function code: Code.ZipFile, or Code.S3Bucket and "
               "Code.S3Key (kennel's artifact store).");
    return lambda_err(c, KN_INVALID);
}

static json_t *with_code(json_t *cfg)
{
    return json_pack("{s:o, s:{s:s, s:s}}", "Configuration", cfg, "Code", "RepositoryType",
                     "S3", "Location", "");
}

static kn_status finish_raw(kn_api_call *c, int status, json_t *out)
{
    kn_api__json_response(c->resp, status, "application/json", out);
    json_decref(out);
    c->raw_response = true;
    return KN_OK;
}

/* A listing, one page of it: ?MaxItems (1..max; default 50) items of `all`
 * (taken) from ?Marker, a position this server issued (the offset, in
 * decimal), as {member: [...]} plus NextMarker while more remain. As with
 * Lambda's own markers, a function created or deleted between two pages can
 * shift what the next page starts with. */
static kn_status finish_page(kn_api_call *c, const char *member, json_t *all, long max)
{
    char mi[24], mk[32], *end;
    long n = 50, off = 0;
    size_t size = json_array_size(all);
    if (query_get(c, "MaxItems", mi, sizeof mi)) {
        n = strtol(mi, &end, 10);
        if (!*mi || *end || n < 1 || n > max) {
            json_decref(all);
            kn_err_set(&c->err, KN_SHAPE,
                       "1 validation error detected: Value '%.20s' at 'maxItems' failed to "
                       "satisfy constraint: Member must have value between 1 and %ld",
                       mi, max);
            return lambda_err(c, KN_SHAPE);
        }
    }
    if (query_get(c, "Marker", mk, sizeof mk)) {
        off = strtol(mk, &end, 10);
        if (!*mk || *end || off < 0 || (size_t)off > size) {
            json_decref(all);
            kn_err_set(&c->err, KN_INVALID, "Invalid Marker '%.30s': pass the NextMarker of "
                       "the previous page", mk);
            kn_text_clean(c->err.msg);
            return lambda_err(c, KN_INVALID);
        }
    }
    json_t *page = json_array();
    for (size_t i = (size_t)off; i < size && i < (size_t)(off + n); i++)
        json_array_append(page, json_array_get(all, i));
    json_t *o = json_pack("{s:o}", member, page);
    if ((size_t)(off + n) < size) {
        snprintf(mk, sizeof mk, "%ld", off + n);
        json_object_set_new(o, "NextMarker", json_string(mk));
    }
    json_decref(all);
    return finish_raw(c, 200, o);
}

static int by_function_name(const void *a, const void *b)
{
    const char *x = json_string_value(json_object_get(*(json_t *const *)a, "FunctionName"));
    const char *y = json_string_value(json_object_get(*(json_t *const *)b, "FunctionName"));
    return strcmp(x ? x : "", y ? y : "");
}

static void finish_empty(kn_api_call *c, int status)
{
    c->resp->status = status;
    c->resp->body.len = 0;
    c->resp->content_type[0] = '\0';
    c->raw_response = true;
}

static kn_status check_tags(kn_api_call *c, json_t *tags);

kn_status kn_lambda__create_function(kn_api_call *c)
{
    kn_status s = need_fn(c);
    if (s)
        return s;
    json_t *in;
    if ((s = body_json(c, &in)))
        return s;
    kn_fn_config cfg;
    kn_buf zip;
    kn_buf_init(&zip, KN_FN_MAX_ZIP + 16);
    json_t *out = NULL;
    json_t *name = json_object_get(in, "FunctionName");
    json_t *code = json_object_get(in, "Code");
    const char *missing = !json_is_string(name) ? "functionName"
                          : !json_is_string(json_object_get(in, "Role")) ? "role"
                          : !json_is_object(code) ? "code" : NULL;
    if (missing) {
        kn_err_set(&c->err, KN_SHAPE,
                   "1 validation error detected: Value null at '%s' failed to satisfy "
                   "constraint: Member must not be null",
                   missing);
        s = lambda_err(c, KN_SHAPE);
        goto out;
    }
    json_t *tags = json_object_get(in, "Tags");
    if ((s = config_from(c, in, &cfg)) || (tags && (s = check_tags(c, tags))) ||
        (s = code_from(c, code, &zip)))
        goto out;
    char fname[72], fq[136];
    if (!kn_fn_name_parse(json_string_value(name), fname, sizeof fname, fq, sizeof fq) ||
        fq[0]) {
        snprintf(fname, sizeof fname, "%.70s", json_string_value(name));
    }
    json_t *pub = json_object_get(in, "Publish");
    s = kn_fn_create(c->api->fn, fname, &cfg, zip.data, zip.len, json_is_true(pub), &out,
                     &c->err);
    if (!s && tags && json_object_size(tags) &&
        (s = kn_fn_tags_update(c->api->fn, fname, tags, NULL, 0, &c->err)))
        json_decref(out);
    if (s) {
        lambda_err(c, s);
        goto out;
    }
    s = finish_raw(c, 201, out);
out:
    kn_buf_deinit(&zip);
    json_decref(in);
    return s;
}

kn_status kn_lambda__get_function(kn_api_call *c)
{
    char name[72], qual[136];
    kn_status s = need_fn(c);
    if (s || (s = path_fn(c, name, sizeof name, qual, sizeof qual)) ||
        (s = qualifier(c, qual, sizeof qual)))
        return s;
    json_t *cfg;
    if ((s = kn_fn_get(c->api->fn, name, qual, &cfg, &c->err)))
        return lambda_err(c, s);
    int reserved = -1;
    kn_fn_reserved_get(c->api->fn, name, &reserved, &c->err);
    json_t *o = with_code(cfg);
    if (reserved >= 0)
        json_object_set_new(o, "Concurrency",
                            json_pack("{s:i}", "ReservedConcurrentExecutions", reserved));
    json_t *tags = NULL;
    if (kn_fn_tags_get(c->api->fn, name, &tags, &c->err) == KN_OK && json_object_size(tags))
        json_object_set_new(o, "Tags", tags);
    else
        json_decref(tags);
    return finish_raw(c, 200, o);
}

kn_status kn_lambda__get_function_configuration(kn_api_call *c)
{
    char name[72], qual[136];
    kn_status s = need_fn(c);
    if (s || (s = path_fn(c, name, sizeof name, qual, sizeof qual)) ||
        (s = qualifier(c, qual, sizeof qual)))
        return s;
    json_t *cfg;
    if ((s = kn_fn_get(c->api->fn, name, qual, &cfg, &c->err)))
        return lambda_err(c, s);
    return finish_raw(c, 200, cfg);
}

kn_status kn_lambda__list_functions(kn_api_call *c)
{
    kn_status s = need_fn(c);
    if (s)
        return s;
    /* by name, so that pages follow one order across restarts */
    json_t *all = kn_fn_list(c->api->fn);
    size_t n = json_array_size(all);
    json_t **v = malloc((n ? n : 1) * sizeof *v);
    if (!v) {
        json_decref(all);
        kn_err_set(&c->err, KN_NOMEM, "out of memory");
        return lambda_err(c, KN_NOMEM);
    }
    for (size_t i = 0; i < n; i++)
        v[i] = json_incref(json_array_get(all, i));
    qsort(v, n, sizeof *v, by_function_name);
    json_array_clear(all);
    for (size_t i = 0; i < n; i++)
        json_array_append_new(all, v[i]);
    free(v);
    return finish_page(c, "Functions", all, 10000);
}

kn_status kn_lambda__delete_function(kn_api_call *c)
{
    char name[72], qual[136];
    kn_status s = need_fn(c);
    if (s || (s = path_fn(c, name, sizeof name, qual, sizeof qual)) ||
        (s = qualifier(c, qual, sizeof qual)))
        return s;
    if ((s = kn_fn_delete(c->api->fn, name, qual[0] ? qual : NULL, &c->err)))
        return lambda_err(c, s);
    finish_empty(c, 204);
    return KN_OK;
}

kn_status kn_lambda__update_function_code(kn_api_call *c)
{
    char name[72], qual[136];
    kn_status s = need_fn(c);
    if (s || (s = path_fn(c, name, sizeof name, qual, sizeof qual)))
        return s;
    json_t *in;
    if ((s = body_json(c, &in)))
        return s;
    kn_buf zip;
    kn_buf_init(&zip, KN_FN_MAX_ZIP + 16);
    json_t *out = NULL;
    if (!(s = code_from(c, in, &zip))) {
        s = kn_fn_update_code(c->api->fn, name, zip.data, zip.len,
                              json_is_true(json_object_get(in, "Publish")), &out, &c->err);
        if (s)
            lambda_err(c, s);
        else
            s = finish_raw(c, 200, out);
    }
    kn_buf_deinit(&zip);
    json_decref(in);
    return s;
}

kn_status kn_lambda__update_function_configuration(kn_api_call *c)
{
    char name[72], qual[136];
    kn_status s = need_fn(c);
    if (s || (s = path_fn(c, name, sizeof name, qual, sizeof qual)))
        return s;
    json_t *in;
    if ((s = body_json(c, &in)))
        return s;
    kn_fn_config cfg;
    json_t *out = NULL;
    if (!(s = config_from(c, in, &cfg))) {
        if (json_object_get(in, "Environment") && !cfg.environment) {
            json_t *empty = json_object();
            cfg.environment = empty;
            s = kn_fn_update_config(c->api->fn, name, &cfg, &out, &c->err);
            json_decref(empty);
        } else {
            s = kn_fn_update_config(c->api->fn, name, &cfg, &out, &c->err);
        }
        if (s)
            lambda_err(c, s);
        else
            s = finish_raw(c, 200, out);
    }
    json_decref(in);
    return s;
}

kn_status kn_lambda__publish_version(kn_api_call *c)
{
    char name[72], qual[136];
    kn_status s = need_fn(c);
    if (s || (s = path_fn(c, name, sizeof name, qual, sizeof qual)))
        return s;
    json_t *in;
    if ((s = body_json(c, &in)))
        return s;
    json_t *out;
    s = kn_fn_publish(c->api->fn, name, json_string_value(json_object_get(in, "Description")),
                      &out, &c->err);
    json_decref(in);
    if (s)
        return lambda_err(c, s);
    return finish_raw(c, 201, out);
}

kn_status kn_lambda__list_versions(kn_api_call *c)
{
    char name[72], qual[136];
    kn_status s = need_fn(c);
    if (s || (s = path_fn(c, name, sizeof name, qual, sizeof qual)))
        return s;
    json_t *out;
    if ((s = kn_fn_list_versions(c->api->fn, name, &out, &c->err)))
        return lambda_err(c, s);
    return finish_page(c, "Versions", out, 10000);
}

static kn_status alias_put(kn_api_call *c, bool create)
{
    char name[72], qual[136], alias[160];
    kn_status s = need_fn(c);
    if (s || (s = path_fn(c, name, sizeof name, qual, sizeof qual)))
        return s;
    json_t *in;
    if ((s = body_json(c, &in)))
        return s;
    const char *an = create ? json_string_value(json_object_get(in, "Name"))
                            : path_param(c, "Name", alias, sizeof alias);
    const char *ver = json_string_value(json_object_get(in, "FunctionVersion"));
    if (create && (!an || !ver)) {
        kn_err_set(&c->err, KN_SHAPE,
                   "1 validation error detected: Value null at '%s' failed to satisfy "
                   "constraint: Member must not be null",
                   !an ? "name" : "functionVersion");
        json_decref(in);
        return lambda_err(c, KN_SHAPE);
    }
    json_t *out;
    s = kn_fn_alias_put(c->api->fn, name, an, ver,
                        json_string_value(json_object_get(in, "Description")), create, &out,
                        &c->err);
    json_decref(in);
    if (s)
        return lambda_err(c, s);
    return finish_raw(c, create ? 201 : 200, out);
}

kn_status kn_lambda__create_alias(kn_api_call *c)
{
    return alias_put(c, true);
}

kn_status kn_lambda__update_alias(kn_api_call *c)
{
    return alias_put(c, false);
}

kn_status kn_lambda__get_alias(kn_api_call *c)
{
    char name[72], qual[136], alias[160];
    kn_status s = need_fn(c);
    if (s || (s = path_fn(c, name, sizeof name, qual, sizeof qual)))
        return s;
    json_t *out;
    if ((s = kn_fn_alias_get(c->api->fn, name,
                             path_param(c, "Name", alias, sizeof alias) ? alias : "", &out,
                             &c->err)))
        return lambda_err(c, s);
    return finish_raw(c, 200, out);
}

kn_status kn_lambda__delete_alias(kn_api_call *c)
{
    char name[72], qual[136], alias[160];
    kn_status s = need_fn(c);
    if (s || (s = path_fn(c, name, sizeof name, qual, sizeof qual)))
        return s;
    if ((s = kn_fn_alias_delete(c->api->fn, name,
                                path_param(c, "Name", alias, sizeof alias) ? alias : "",
                                &c->err)))
        return lambda_err(c, s);
    finish_empty(c, 204);
    return KN_OK;
}

kn_status kn_lambda__list_aliases(kn_api_call *c)
{
    char name[72], qual[136];
    kn_status s = need_fn(c);
    if (s || (s = path_fn(c, name, sizeof name, qual, sizeof qual)))
        return s;
    json_t *out;
    if ((s = kn_fn_alias_list(c->api->fn, name, &out, &c->err)))
        return lambda_err(c, s);
    return finish_page(c, "Aliases", out, 10000);
}

kn_status kn_lambda__put_function_concurrency(kn_api_call *c)
{
    char name[72], qual[136];
    kn_status s = need_fn(c);
    if (s || (s = path_fn(c, name, sizeof name, qual, sizeof qual)))
        return s;
    json_t *in;
    if ((s = body_json(c, &in)))
        return s;
    json_t *n = json_object_get(in, "ReservedConcurrentExecutions");
    if (!json_is_integer(n) || json_integer_value(n) < 0) {
        if (!n)
            kn_err_set(&c->err, KN_SHAPE,
                       "1 validation error detected: Value null at "
                       "'reservedConcurrentExecutions' failed to satisfy constraint: Member must "
                       "not be null");
        else
            kn_err_set(&c->err, KN_SHAPE,
                       "1 validation error detected: Value '%lld' at "
                       "'reservedConcurrentExecutions' failed to satisfy constraint: Member must "
                       "have value greater than or equal to 0",
                       (long long)json_integer_value(n));
        json_decref(in);
        return lambda_err(c, KN_SHAPE);
    }
    json_int_t v = json_integer_value(n);
    int iv = v > 100000 ? 100000 : (int)v;
    s = kn_fn_reserved_set(c->api->fn, name, iv, &c->err);
    json_decref(in);
    if (s)
        return lambda_err(c, s);
    return finish_raw(c, 200, json_pack("{s:i}", "ReservedConcurrentExecutions", iv));
}

kn_status kn_lambda__get_function_concurrency(kn_api_call *c)
{
    char name[72], qual[136];
    kn_status s = need_fn(c);
    if (s || (s = path_fn(c, name, sizeof name, qual, sizeof qual)))
        return s;
    int n;
    if ((s = kn_fn_reserved_get(c->api->fn, name, &n, &c->err)))
        return lambda_err(c, s);
    return finish_raw(c, 200,
                      n >= 0 ? json_pack("{s:i}", "ReservedConcurrentExecutions", n)
                             : json_object());
}

kn_status kn_lambda__delete_function_concurrency(kn_api_call *c)
{
    char name[72], qual[136];
    kn_status s = need_fn(c);
    if (s || (s = path_fn(c, name, sizeof name, qual, sizeof qual)))
        return s;
    if ((s = kn_fn_reserved_set(c->api->fn, name, -1, &c->err)))
        return lambda_err(c, s);
    finish_empty(c, 204);
    return KN_OK;
}

static kn_status pc_qualifier(kn_api_call *c, char *qual, size_t qn)
{
    kn_status s = qualifier(c, qual, qn);
    if (!s && !qual[0]) {
        kn_err_set(&c->err, KN_SHAPE,
                   "1 validation error detected: Value null at 'qualifier' failed to satisfy "
                   "constraint: Member must not be null");
        return lambda_err(c, KN_SHAPE);
    }
    return s;
}

kn_status kn_lambda__put_provisioned(kn_api_call *c)
{
    char name[72], qual[136];
    kn_status s = need_fn(c);
    if (s || (s = path_fn(c, name, sizeof name, qual, sizeof qual)) ||
        (s = pc_qualifier(c, qual, sizeof qual)))
        return s;
    json_t *in;
    if ((s = body_json(c, &in)))
        return s;
    json_t *n = json_object_get(in, "ProvisionedConcurrentExecutions");
    if (!json_is_integer(n)) {
        kn_err_set(&c->err, KN_SHAPE,
                   "1 validation error detected: Value null at "
                   "'provisionedConcurrentExecutions' failed to satisfy constraint: Member must "
                   "not be null");
        json_decref(in);
        return lambda_err(c, KN_SHAPE);
    }
    json_int_t v = json_integer_value(n);
    json_t *out;
    s = kn_fn_provisioned_put(c->api->fn, name, qual,
                              v < -1 ? -1 : v > 100000 ? 100000 : (int)v, &out, &c->err);
    json_decref(in);
    if (s)
        return lambda_err(c, s);
    return finish_raw(c, 202, out);
}

kn_status kn_lambda__get_provisioned(kn_api_call *c)
{
    char name[72], qual[136], list[16];
    kn_status s = need_fn(c);
    if (s || (s = path_fn(c, name, sizeof name, qual, sizeof qual)))
        return s;
    json_t *out;
    if (query_get(c, "List", list, sizeof list)) {
        if ((s = kn_fn_provisioned_list(c->api->fn, name, &out, &c->err)))
            return lambda_err(c, s);
        return finish_page(c, "ProvisionedConcurrencyConfigs", out, 50);
    }
    if ((s = pc_qualifier(c, qual, sizeof qual)))
        return s;
    if ((s = kn_fn_provisioned_get(c->api->fn, name, qual, &out, &c->err)))
        return lambda_err(c, s);
    json_object_del(out, "FunctionArn");
    return finish_raw(c, 200, out);
}

kn_status kn_lambda__delete_provisioned(kn_api_call *c)
{
    char name[72], qual[136];
    kn_status s = need_fn(c);
    if (s || (s = path_fn(c, name, sizeof name, qual, sizeof qual)) ||
        (s = pc_qualifier(c, qual, sizeof qual)))
        return s;
    if ((s = kn_fn_provisioned_delete(c->api->fn, name, qual, &c->err)))
        return lambda_err(c, s);
    finish_empty(c, 204);
    return KN_OK;
}

kn_status kn_lambda__get_account_settings(kn_api_call *c)
{
    kn_status s = need_fn(c);
    if (s)
        return s;
    return finish_raw(c, 200, kn_fn_account(c->api->fn));
}

kn_status kn_lambda__invoke(kn_api_call *c)
{
    kn_status s = need_fn(c);
    if (s)
        return s;
    char raw[300], qual[160] = "";
    const char *seg = c->match->params[0].value;
    if (!kn_api__url_decode(seg, raw, sizeof raw)) {
        kn_err_set(&c->err, KN_SHAPE, "1 validation error detected: Value at 'functionName' "
                                      "failed to satisfy constraint: Member must have length "
                                      "less than or equal to 170");
        return lambda_err(c, KN_SHAPE);
    }
    query_get(c, "Qualifier", qual, sizeof qual);
    const char *type = kn_api__header(c->req, "X-Amz-Invocation-Type");
    const char *log = kn_api__header(c->req, "X-Amz-Log-Type");
    kn_fn_invoke_params p = {.name = raw,
                             .qualifier = qual[0] ? qual : NULL,
                             .type = KN_FN_REQUEST_RESPONSE,
                             .tail = log && strcmp(log, "Tail") == 0,
                             .client_context = kn_api__header(c->req, "X-Amz-Client-Context"),
                             .payload = c->req->body,
                             .len = c->req->body_len};
    if (type && strcmp(type, "Event") == 0)
        p.type = KN_FN_EVENT;
    else if (type && strcmp(type, "DryRun") == 0)
        p.type = KN_FN_DRY_RUN;
    else if (type && strcmp(type, "RequestResponse") != 0) {
        kn_err_set(&c->err, KN_SHAPE,
                   "1 validation error detected: Value '%.40s' at 'invocationType' failed to "
                   "satisfy constraint: Member must satisfy enum value set: [Event, "
                   "RequestResponse, DryRun]",
                   type);
        kn_text_clean(c->err.msg);
        return lambda_err(c, KN_SHAPE);
    }
    if (p.type == KN_FN_EVENT && p.len > 1048576) {
        c->err_code = "RequestTooLargeException";
        c->err_http = 413;
        kn_err_set(&c->err, KN_REQUEST_TOO_LARGE,
                   "Request must be smaller than 1048576 bytes for the InvokeAsync operation");
        c->err_extra = json_pack("{s:s, s:s}", "Type", "User", "message", c->err.msg);
        return KN_REQUEST_TOO_LARGE;
    }
    kn_fn_result r;
    kn_fn_result_init(&r);
    s = kn_fn_invoke(c->api->fn, &p, &r, &c->err);
    if (s == KN_RESOURCE_LIMIT) {
        c->err_code = "TooManyRequestsException";
        c->err_http = 429;
        c->err_extra = json_pack("{s:s, s:s, s:s}", "Type", "User", "message", "Rate Exceeded.",
                                 "Reason", r.throttle_reason);
        kn_api__add_header(c->resp, "Retry-After", "1");
        kn_fn_result_deinit(&r);
        return s;
    }
    if (s) {
        kn_fn_result_deinit(&r);
        return lambda_err(c, s);
    }
    kn_api_response *resp = c->resp;
    resp->status = r.status;
    resp->body.len = 0;
    if (r.status == 200) {
        snprintf(resp->content_type, sizeof resp->content_type, "application/json");
        kn_api__add_header(resp, "X-Amz-Executed-Version", r.executed_version);
        if (r.function_error[0])
            kn_api__add_header(resp, "X-Amz-Function-Error", r.function_error);
        if (p.tail && r.log_tail[0])
            kn_api__add_header(resp, "X-Amz-Log-Result", r.log_tail);
        kn_buf_deinit(&resp->body);
        resp->body = r.payload;
        kn_buf_init(&r.payload, 0);
    } else {
        resp->content_type[0] = '\0';
    }
    kn_fn_result_deinit(&r);
    c->raw_response = true;
    return KN_OK;
}

/* kennel's own: the function's log and per-minute metrics. */
kn_status kn_lambda__logs(kn_api_call *c)
{
    char name[72], qual[136];
    kn_status s = need_fn(c);
    if (s || (s = path_fn(c, name, sizeof name, qual, sizeof qual)))
        return s;
    kn_buf b;
    kn_buf_init(&b, (size_t)64 * 1024 * 1024);
    if ((s = kn_fn_logs(c->api->fn, name, &b, &c->err))) {
        kn_buf_deinit(&b);
        return lambda_err(c, s);
    }
    kn_buf_deinit(&c->resp->body);
    c->resp->body = b;
    c->resp->status = 200;
    snprintf(c->resp->content_type, sizeof c->resp->content_type, "text/plain");
    c->raw_response = true;
    return KN_OK;
}

kn_status kn_lambda__metrics(kn_api_call *c)
{
    char name[72], qual[136], mins[16];
    kn_status s = need_fn(c);
    if (s || (s = path_fn(c, name, sizeof name, qual, sizeof qual)))
        return s;
    int minutes = query_get(c, "Minutes", mins, sizeof mins) ? atoi(mins) : 60;
    json_t *out;
    if ((s = kn_fn_metrics(c->api->fn, name, minutes, &out, &c->err)))
        return lambda_err(c, s);
    return finish_raw(c, 200, out);
}

/* ---- tags ---------------------------------------------------------------- */

/* A Tags map as Lambda takes it: at most KN_FN_MAX_TAGS string values, keys
 * of 1..128 characters not starting with "aws:", values of at most 256.
 * Values are free text: the console shows them as text. */
static kn_status check_tags(kn_api_call *c, json_t *tags)
{
    if (!json_is_object(tags)) {
        kn_err_set(&c->err, KN_SHAPE, "Tags must be a map of strings");
        return lambda_err(c, KN_SHAPE);
    }
    if (json_object_size(tags) > KN_FN_MAX_TAGS) {
        kn_err_set(&c->err, KN_INVALID, "A function can have at most %d tags (%zu given)",
                   KN_FN_MAX_TAGS, json_object_size(tags));
        return lambda_err(c, KN_INVALID);
    }
    const char *k;
    json_t *v;
    json_object_foreach(tags, k, v)
    {
        size_t kl = strlen(k);
        if (!json_is_string(v) || kl < 1 || kl > 128 || json_string_length(v) > 256 ||
            strncmp(k, "aws:", 4) == 0) {
            kn_err_set(&c->err, KN_INVALID,
                       "Tag '%.60s' is not valid: keys are 1 to 128 characters and do not "
                       "start with 'aws:', values are strings of at most 256 characters",
                       k);
            kn_text_clean(c->err.msg);
            return lambda_err(c, KN_INVALID);
        }
    }
    return KN_OK;
}

/* The function named by the {ARN} path label (a function ARN, unqualified). */
static kn_status tag_target(kn_api_call *c, char *name, size_t nn)
{
    char arn[400], qual[136];
    if (!path_param(c, "ARN", arn, sizeof arn) || strncmp(arn, "arn:", 4) != 0 ||
        !kn_fn_name_parse(arn, name, nn, qual, sizeof qual) || qual[0]) {
        kn_err_set(&c->err, KN_SHAPE, "The resource ARN '%.200s' is not an unqualified function ARN",
                   arn);
        kn_text_clean(c->err.msg);
        return lambda_err(c, KN_SHAPE);
    }
    return KN_OK;
}

kn_status kn_lambda__list_tags(kn_api_call *c)
{
    char name[72];
    kn_status s = need_fn(c);
    if (s || (s = tag_target(c, name, sizeof name)))
        return s;
    json_t *tags;
    if ((s = kn_fn_tags_get(c->api->fn, name, &tags, &c->err)))
        return lambda_err(c, s);
    return finish_raw(c, 200, json_pack("{s:o}", "Tags", tags));
}

kn_status kn_lambda__tag_resource(kn_api_call *c)
{
    char name[72];
    kn_status s = need_fn(c);
    if (s || (s = tag_target(c, name, sizeof name)))
        return s;
    json_t *in;
    if ((s = body_json(c, &in)))
        return s;
    json_t *tags = json_object_get(in, "Tags");
    if (!(s = check_tags(c, tags))) {
        s = kn_fn_tags_update(c->api->fn, name, tags, NULL, 0, &c->err);
        if (s)
            lambda_err(c, s);
        else
            finish_empty(c, 204);
    }
    json_decref(in);
    return s;
}

kn_status kn_lambda__untag_resource(kn_api_call *c)
{
    char name[72];
    kn_status s = need_fn(c);
    if (s || (s = tag_target(c, name, sizeof name)))
        return s;
    /* ?tagKeys=a&tagKeys=b */
    char keys[KN_FN_MAX_TAGS][160];
    const char *list[KN_FN_MAX_TAGS];
    size_t n = 0;
    const char *q = c->req->query ? c->req->query : "";
    for (const char *p = q; *p && n < KN_FN_MAX_TAGS;) {
        const char *amp = strchr(p, '&');
        size_t len = amp ? (size_t)(amp - p) : strlen(p);
        if (len > 8 && strncmp(p, "tagKeys=", 8) == 0 &&
            kn_api__form_get(p, len, "tagKeys", keys[n], sizeof keys[n]))
            list[n] = keys[n], n++;
        p += len + (amp ? 1 : 0);
    }
    if (n == 0) {
        kn_err_set(&c->err, KN_SHAPE, "1 validation error detected: Value null at 'tagKeys' "
                                      "failed to satisfy constraint: Member must not be null");
        return lambda_err(c, KN_SHAPE);
    }
    if ((s = kn_fn_tags_update(c->api->fn, name, NULL, list, n, &c->err)))
        return lambda_err(c, s);
    finish_empty(c, 204);
    return KN_OK;
}
