/* Input validation with AWS's wording. Constraint violations are collected
 * and reported together as one ValidationException ("2 validation errors
 * detected: Value null at 'modelName' failed to satisfy constraint: Member
 * must not be null; ..."); a member of the wrong JSON type is a
 * SerializationException naming the member, as AWS's JSON services do.
 * Member paths are lower-camel, list items "<list>.<n>.member".
 * Stateless apart from the kn_val being filled: thread-safe.
 */
#include "api_int.h"

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void kn_val_init(kn_val *v)
{
    memset(v, 0, sizeof *v);
}

bool kn_val_ok(const kn_val *v)
{
    return v->n_errors == 0 && !v->serialization;
}

void kn_val_fail(kn_val *v, const char *fmt, ...)
{
    if (v->n_errors < KN_VAL_KEEP) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(v->msgs[v->n_errors], sizeof v->msgs[0], fmt, ap);
        va_end(ap);
    }
    v->n_errors++;
}

static void ser_fail(kn_val *v, const char *path, const char *want)
{
    if (!v->serialization)
        snprintf(v->ser_msg, sizeof v->ser_msg, "Value at '%s' must be %s", path, want);
    v->serialization = true;
}

kn_status kn_val_finish(const kn_val *v, kn_err *e)
{
    if (v->serialization)
        return kn_err_set(e, KN_SERIALIZATION, "%s", v->ser_msg);
    if (v->n_errors == 0)
        return KN_OK;
    char msg[KN_ERR_MSG_MAX];
    int n = snprintf(msg, sizeof msg, "%d validation error%s detected: ", v->n_errors,
                     v->n_errors == 1 ? "" : "s");
    int kept = v->n_errors < KN_VAL_KEEP ? v->n_errors : KN_VAL_KEEP;
    for (int i = 0; i < kept && n < (int)sizeof msg; i++)
        n += snprintf(msg + n, sizeof msg - (size_t)n, "%s%s", i ? "; " : "", v->msgs[i]);
    return kn_err_set(e, KN_INVALID, "%s", msg);
}

void kn_val_path(char *out, size_t n, const char *prefix, const char *member)
{
    char m[128];
    snprintf(m, sizeof m, "%s", member);
    m[0] = (char)tolower((unsigned char)m[0]);
    if (prefix && *prefix)
        snprintf(out, n, "%s.%s", prefix, m);
    else
        snprintf(out, n, "%s", m);
}

/* Quotes a value for a message, cut to a readable length. */
static void quoted(char *out, size_t n, const char *s)
{
    size_t len = strlen(s);
    if (len > 100)
        snprintf(out, n, "'%.100s...'", s);
    else
        snprintf(out, n, "'%s'", s);
}

/* Length in characters (UTF-8 code points). */
static size_t utf8_len(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xc0) != 0x80)
            n++;
    return n;
}

/* obj's member `member`, its path (prefix.member) in path: NULL when it is
 * absent or null, after the "must not be null" failure when required. */
static json_t *member_of(kn_val *v, json_t *obj, const char *prefix, const char *member,
                         bool required, char path[256])
{
    kn_val_path(path, 256, prefix, member);
    json_t *j = json_object_get(obj, member);
    if (j && !json_is_null(j))
        return j;
    if (required)
        kn_val_fail(v, "Value null at '%s' failed to satisfy constraint: Member must not be null",
                    path);
    return NULL;
}

const char *kn_val_str(kn_val *v, json_t *obj, const char *prefix, const char *member,
                       const kn_val_str_spec *spec)
{
    char path[256];
    json_t *j = member_of(v, obj, prefix, member, spec->required, path);
    if (!j)
        return NULL;
    if (!json_is_string(j)) {
        ser_fail(v, path, "a string");
        return NULL;
    }
    const char *s = json_string_value(j);
    if (strlen(s) != json_string_length(j)) {
        ser_fail(v, path, "a string without NUL characters");
        return NULL;
    }
    char q[128];
    quoted(q, sizeof q, s);
    size_t len = utf8_len(s);
    bool ok = true;
    if (spec->max && len > spec->max) {
        kn_val_fail(v, "Value %s at '%s' failed to satisfy constraint: Member must have length "
                       "less than or equal to %zu",
                    q, path, spec->max);
        ok = false;
    }
    if (len < spec->min) {
        kn_val_fail(v, "Value %s at '%s' failed to satisfy constraint: Member must have length "
                       "greater than or equal to %zu",
                    q, path, spec->min);
        ok = false;
    }
    if (ok && spec->check && !spec->check(s)) {
        kn_val_fail(v, "Value %s at '%s' failed to satisfy constraint: Member must satisfy "
                       "regular expression pattern: %s",
                    q, path, spec->pattern ? spec->pattern : "(see the API reference)");
        ok = false;
    }
    if (ok && spec->enum_values) {
        bool found = false;
        char set[256] = "";
        size_t k = 0;
        for (const char *const *ev = spec->enum_values; *ev; ev++) {
            found = found || strcmp(*ev, s) == 0;
            k += (size_t)snprintf(set + k, k < sizeof set ? sizeof set - k : 0, "%s%s",
                                  ev == spec->enum_values ? "" : ", ", *ev);
        }
        if (!found) {
            kn_val_fail(v, "Value %s at '%s' failed to satisfy constraint: Member must satisfy "
                           "enum value set: [%s]",
                        q, path, set);
            ok = false;
        }
    }
    return ok ? s : NULL;
}

const char *kn_val_enum(kn_val *v, json_t *obj, const char *prefix, const char *member,
                        bool required, const char *const *values)
{
    kn_val_str_spec spec = {.required = required, .enum_values = values};
    return kn_val_str(v, obj, prefix, member, &spec);
}

bool kn_val_int(kn_val *v, json_t *obj, const char *prefix, const char *member, bool required,
                long long min, long long max, long long *out)
{
    char path[256];
    json_t *j = member_of(v, obj, prefix, member, required, path);
    if (!j)
        return false;
    if (!json_is_integer(j)) {
        ser_fail(v, path, "an integer");
        return false;
    }
    long long x = (long long)json_integer_value(j);
    if (x < min) {
        kn_val_fail(v, "Value '%lld' at '%s' failed to satisfy constraint: Member must have "
                       "value greater than or equal to %lld",
                    x, path, min);
        return false;
    }
    if (x > max) {
        kn_val_fail(v, "Value '%lld' at '%s' failed to satisfy constraint: Member must have "
                       "value less than or equal to %lld",
                    x, path, max);
        return false;
    }
    *out = x;
    return true;
}

bool kn_val_num(kn_val *v, json_t *obj, const char *prefix, const char *member, bool required,
                double min, double *out)
{
    char path[256];
    json_t *j = member_of(v, obj, prefix, member, required, path);
    if (!j)
        return false;
    if (!json_is_number(j)) {
        ser_fail(v, path, "a number");
        return false;
    }
    double x = json_number_value(j);
    if (!isfinite(x) || x < min) {
        kn_val_fail(v, "Value '%g' at '%s' failed to satisfy constraint: Member must have value "
                       "greater than or equal to %g",
                    x, path, min);
        return false;
    }
    *out = x;
    return true;
}

bool kn_val_bool(kn_val *v, json_t *obj, const char *prefix, const char *member, bool *out)
{
    char path[256];
    json_t *j = member_of(v, obj, prefix, member, false, path);
    if (!j)
        return false;
    if (!json_is_boolean(j)) {
        ser_fail(v, path, "a boolean");
        return false;
    }
    *out = json_is_true(j);
    return true;
}

json_t *kn_val_obj(kn_val *v, json_t *obj, const char *prefix, const char *member,
                   bool required)
{
    char path[256];
    json_t *j = member_of(v, obj, prefix, member, required, path);
    if (!j)
        return NULL;
    if (!json_is_object(j)) {
        ser_fail(v, path, "an object");
        return NULL;
    }
    return j;
}

json_t *kn_val_list(kn_val *v, json_t *obj, const char *prefix, const char *member,
                    bool required, size_t min, size_t max)
{
    char path[256];
    json_t *j = member_of(v, obj, prefix, member, required, path);
    if (!j)
        return NULL;
    if (!json_is_array(j)) {
        ser_fail(v, path, "a list");
        return NULL;
    }
    size_t n = json_array_size(j);
    if (n < min) {
        kn_val_fail(v, "Value '[]' at '%s' failed to satisfy constraint: Member must have length "
                       "greater than or equal to %zu",
                    path, min);
        return NULL;
    }
    if (max && n > max) {
        kn_val_fail(v, "Value at '%s' failed to satisfy constraint: Member must have length less "
                       "than or equal to %zu",
                    path, max);
        return NULL;
    }
    return j;
}

bool kn_val_time(kn_val *v, json_t *obj, const char *prefix, const char *member, double *out)
{
    char path[256];
    json_t *j = member_of(v, obj, prefix, member, false, path);
    if (!j)
        return false;
    if (!json_is_number(j)) {
        ser_fail(v, path, "a timestamp in epoch seconds");
        return false;
    }
    *out = json_number_value(j);
    return true;
}

json_t *kn_val_tags(kn_val *v, json_t *obj, const char *prefix)
{
    char path[256];
    kn_val_path(path, sizeof path, prefix, "Tags");
    json_t *tags = kn_val_list(v, obj, prefix, "Tags", false, 0, 50);
    if (!tags)
        return NULL;
    size_t i;
    json_t *t;
    static const kn_val_str_spec key = {.required = true, .min = 1, .max = 128};
    static const kn_val_str_spec val = {.required = false, .max = 256};
    json_array_foreach(tags, i, t)
    {
        char item[300];
        snprintf(item, sizeof item, "%s.%zu.member", path, i + 1);
        if (!json_is_object(t)) {
            ser_fail(v, item, "an object");
            return NULL;
        }
        const char *k = kn_val_str(v, t, item, "Key", &key);
        kn_val_str(v, t, item, "Value", &val);
        if (k && strncmp(k, "aws:", 4) == 0)
            kn_val_fail(v, "Value '%s' at '%s.key' failed to satisfy constraint: Member must not "
                           "begin with 'aws:'",
                        k, item);
    }
    return tags;
}

void kn_val_unsupported(kn_val *v, json_t *obj, const char *prefix, const char *const *members)
{
    for (const char *const *m = members; *m; m++) {
        json_t *j = json_object_get(obj, *m);
        if (j && !json_is_null(j)) {
            char path[256];
            kn_val_path(path, sizeof path, prefix, *m);
            kn_val_fail(v, "Value at '%s' is not supported by kennel yet: leave it out", path);
        }
    }
}

bool kn_val_is_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 63 || s[0] == '-' || s[n - 1] == '-')
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '-')
            return false;
    return true;
}

const kn_val_str_spec kn_val_name_required = {
    .required = true, .max = 63, .check = kn_val_is_name, .pattern = KN_NAME_PATTERN};
