/* Search spaces: SageMaker ParameterRanges parsed and validated, and the map
 * between a parameter's [0, 1] coordinate and its value (see tune.h). */
#include "kennel/tune.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BAD(...) kn_err_set(e, KN_INVALID, __VA_ARGS__)


/* Messages quote names and values as sent (and jansson's, the bytes near
 * an error), and may be cut at their size limit. */
static kn_status one_line(kn_err *e, kn_status rc)
{
    kn_text_clean(e ? e->msg : NULL);
    return rc;
}

void kn_tune_space_deinit(kn_tune_space *s)
{
    for (int i = 0; i < s->n; i++)
        for (int j = 0; j < s->p[i].n_values; j++)
            free(s->p[i].values[j]);
    memset(s, 0, sizeof *s);
}

/* AWS sends Min/MaxValue as strings; numbers are accepted too. */
static bool num_field(json_t *o, const char *k, double *out)
{
    json_t *v = json_object_get(o, k);
    if (json_is_number(v)) {
        *out = json_number_value(v);
        return isfinite(*out);
    }
    const char *s = json_string_value(v);
    if (!s || !*s)
        return false;
    char *end;
    *out = strtod(s, &end);
    return !*end && isfinite(*out);
}

static kn_status parse_scaling(json_t *o, const char *where, kn_tune_scaling *out, kn_err *e)
{
    json_t *v = json_object_get(o, "ScalingType");
    if (!v) {
        *out = KN_TUNE_AUTO;
        return KN_OK;
    }
    const char *s = json_string_value(v);
    static const char *const names[] = {"Auto", "Linear", "Logarithmic", "ReverseLogarithmic"};
    for (int i = 0; s && i < 4; i++)
        if (!strcmp(s, names[i])) {
            *out = (kn_tune_scaling)i;
            return KN_OK;
        }
    return BAD("%s: ScalingType must be Auto, Linear, Logarithmic or ReverseLogarithmic", where);
}

static kn_status parse_name(json_t *o, const char *where, kn_tune_space *s, kn_tune_param *p,
                            kn_err *e)
{
    const char *n = json_string_value(json_object_get(o, "Name"));
    if (!n || !*n || strlen(n) >= sizeof p->name)
        return BAD("%s: Name must be a string of 1 to 256 characters", where);
    for (int i = 0; i < s->n; i++)
        if (!strcmp(s->p[i].name, n))
            return BAD("%s: parameter '%s' is given twice", where, n);
    memcpy(p->name, n, strlen(n) + 1);
    return KN_OK;
}

static kn_status parse_numeric(json_t *o, const char *where, kn_tune_type type,
                               kn_tune_space *s, kn_tune_param *p, kn_err *e)
{
    kn_status rc = parse_name(o, where, s, p, e);
    if (rc)
        return rc;
    p->type = type;
    if (!num_field(o, "MinValue", &p->min))
        return BAD("%s (%s): MinValue must be a number", where, p->name);
    if (!num_field(o, "MaxValue", &p->max))
        return BAD("%s (%s): MaxValue must be a number", where, p->name);
    if (type == KN_TUNE_INTEGER && (p->min != floor(p->min) || p->max != floor(p->max)))
        return BAD("%s (%s): MinValue and MaxValue must be integers", where, p->name);
    /* Past 2^53 a double no longer holds every integer, and the value is
     * printed through a long long. */
    if (type == KN_TUNE_INTEGER && (fabs(p->min) > 0x1p53 || fabs(p->max) > 0x1p53))
        return BAD("%s (%s): MinValue and MaxValue must be within +-2^53", where, p->name);
    if (!(p->min < p->max))
        return BAD("%s (%s): MinValue %g must be less than MaxValue %g", where, p->name, p->min,
                   p->max);
    if ((rc = parse_scaling(o, where, &p->scaling, e)))
        return rc;
    if (p->scaling == KN_TUNE_AUTO)
        p->scaling = p->min > 0 && p->max / p->min >= 100 ? KN_TUNE_LOG : KN_TUNE_LINEAR;
    if (p->scaling == KN_TUNE_LOG && p->min <= 0)
        return BAD("%s (%s): Logarithmic scaling needs MinValue > 0, not %g", where, p->name,
                   p->min);
    if (p->scaling == KN_TUNE_REVLOG) {
        if (type != KN_TUNE_CONTINUOUS)
            return BAD("%s (%s): ReverseLogarithmic scaling is for continuous ranges only", where,
                       p->name);
        if (p->min < 0 || p->max >= 1)
            return BAD("%s (%s): ReverseLogarithmic scaling needs 0 <= MinValue < MaxValue < 1",
                       where, p->name);
    }
    return KN_OK;
}

static kn_status parse_categorical(json_t *o, const char *where, kn_tune_space *s,
                                   kn_tune_param *p, kn_err *e)
{
    kn_status rc = parse_name(o, where, s, p, e);
    if (rc)
        return rc;
    p->type = KN_TUNE_CATEGORICAL;
    p->scaling = KN_TUNE_LINEAR;
    json_t *v = json_object_get(o, "Values");
    size_t n = json_array_size(v);
    if (!json_is_array(v) || n < 1 || n > KN_TUNE_MAX_VALUES)
        return BAD("%s (%s): Values must be a list of 1 to %d strings", where, p->name,
                   KN_TUNE_MAX_VALUES);
    for (size_t i = 0; i < n; i++) {
        const char *x = json_string_value(json_array_get(v, i));
        if (!x || !*x || strlen(x) > 256)
            return BAD("%s (%s): Values[%zu] must be a string of 1 to 256 characters", where,
                       p->name, i);
        for (size_t j = 0; j < i; j++)
            if (!strcmp(p->values[j], x))
                return BAD("%s (%s): value '%s' is listed twice", where, p->name, x);
        if (!(p->values[i] = strdup(x)))
            return kn_err_set(e, KN_NOMEM, "out of memory");
        p->n_values++;
    }
    return KN_OK;
}

kn_status kn_tune_space_parse(const char *text, size_t len, kn_tune_space *out, kn_err *e)
{
    memset(out, 0, sizeof *out);
    json_error_t je;
    json_t *root = json_loadb(text, len, 0, &je);
    if (!root)
        return one_line(e, BAD("ParameterRanges is not valid JSON: %s", je.text));
    kn_status rc = KN_OK;
    static const char *const kinds[] = {"ContinuousParameterRanges", "IntegerParameterRanges",
                                        "CategoricalParameterRanges"};
    if (!json_is_object(root)) {
        rc = BAD("ParameterRanges must be an object");
        goto out;
    }
    const char *k;
    json_t *v;
    json_object_foreach(root, k, v) {
        int kind = -1;
        for (int i = 0; i < 3; i++)
            if (!strcmp(k, kinds[i]))
                kind = i;
        if (kind < 0) {
            rc = BAD("ParameterRanges: unknown member '%.64s'", k);
            goto out;
        }
        if (!json_is_array(v)) {
            rc = BAD("ParameterRanges.%s must be a list", k);
            goto out;
        }
        for (size_t i = 0; i < json_array_size(v); i++) {
            char where[96];
            snprintf(where, sizeof where, "%s[%zu]", k, i);
            json_t *o = json_array_get(v, i);
            if (!json_is_object(o)) {
                rc = BAD("%s must be an object", where);
                goto out;
            }
            if (out->n == KN_TUNE_MAX_PARAMS) {
                rc = BAD("ParameterRanges: more than %d parameters", KN_TUNE_MAX_PARAMS);
                goto out;
            }
            kn_tune_param *p = &out->p[out->n];
            memset(p, 0, sizeof *p);
            rc = kind == 2 ? parse_categorical(o, where, out, p, e)
                           : parse_numeric(o, where, kind ? KN_TUNE_INTEGER : KN_TUNE_CONTINUOUS,
                                           out, p, e);
            out->n++; /* counted even on error, so deinit frees its values */
            if (rc)
                goto out;
        }
    }
    if (out->n == 0)
        rc = BAD("ParameterRanges: no parameter to tune");
out:
    json_decref(root);
    if (rc)
        kn_tune_space_deinit(out);
    return one_line(e, rc);
}

static double clamp01(double u)
{
    return !(u >= 0) ? 0 : u > 1 ? 1 : u; /* NaN -> 0: never an index out of range */
}

double kn_tune_space_value(const kn_tune_space *s, int i, double u)
{
    const kn_tune_param *p = &s->p[i];
    u = clamp01(u);
    if (p->type == KN_TUNE_CATEGORICAL) {
        int k = (int)(u * p->n_values);
        return k >= p->n_values ? p->n_values - 1 : k;
    }
    double v;
    switch (p->scaling) {
    case KN_TUNE_LOG:
        v = exp(log(p->min) + u * (log(p->max) - log(p->min)));
        break;
    case KN_TUNE_REVLOG: {
        /* 1 - v log-uniform in (1 - max, 1 - min]: u = 0 gives min. */
        double a = log(1 - p->max), b = log(1 - p->min);
        v = 1 - exp(b + u * (a - b));
        break;
    }
    default:
        /* max - min overflows for ranges wider than DBL_MAX */
        v = isfinite(p->max - p->min) ? p->min + u * (p->max - p->min)
                                       : (1 - u) * p->min + u * p->max;
    }
    if (v < p->min)
        v = p->min;
    if (v > p->max)
        v = p->max;
    if (p->type == KN_TUNE_INTEGER)
        v = floor(v + 0.5);
    return v;
}

void kn_tune_space_format(const kn_tune_space *s, int i, double u, char *out, size_t n)
{
    const kn_tune_param *p = &s->p[i];
    double v = kn_tune_space_value(s, i, u);
    if (p->type == KN_TUNE_CATEGORICAL)
        snprintf(out, n, "%s", p->values[(int)v]);
    else if (p->type == KN_TUNE_INTEGER)
        snprintf(out, n, "%lld", (long long)v);
    else
        snprintf(out, n, "%.10g", v);
}

kn_status kn_tune_strategy_parse(const char *s, kn_tune_strategy *out)
{
    static const char *const names[] = {"Random", "Grid", "Bayesian", "Hyperband"};
    for (int i = 0; s && i < 4; i++)
        if (!strcmp(s, names[i])) {
            *out = (kn_tune_strategy)i;
            return KN_OK;
        }
    return KN_INVALID;
}
