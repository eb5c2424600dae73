/* Application Auto Scaling (JSON 1.1, X-Amz-Target:
 * AnyScaleFrontendService.*) for SageMaker production variants: scalable
 * targets, target-tracking policies on SageMakerVariantInvocationsPerInstance
 * and scaling activities. State lives in the registry; after every change
 * the fleet reloads its trackers (the autoscaler itself is the fleet's).
 * Other namespaces, dimensions and policy types are refused with AWS's
 * ValidationException. Thread-safe: handlers keep no state.
 */
#include "api_int.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DIMENSION "sagemaker:variant:DesiredInstanceCount"

static const char *const namespaces[] = {
    "ecs",        "elasticmapreduce", "ec2",       "appstream",  "dynamodb",
    "rds",        "sagemaker",        "custom-resource", "comprehend", "lambda",
    "cassandra",  "kafka",            "elasticache", "neptune",  "workspaces", NULL};

static kn_status unsupported_target(kn_api_call *c)
{
    return kn_err_set(&c->err, KN_INVALID,
                      "Unsupported service namespace, resource type or scalable dimension");
}

/* "endpoint/<E>/variant/<V>" -> E, V (AWS's name pattern for both). */
static bool parse_resource(const char *id, char *ep, size_t epn, char *var, size_t varn)
{
    static const char a[] = "endpoint/", b[] = "/variant/";
    if (strncmp(id, a, sizeof a - 1) != 0)
        return false;
    const char *e = id + sizeof a - 1;
    const char *mid = strstr(e, b);
    if (!mid)
        return false;
    size_t el = (size_t)(mid - e);
    const char *v = mid + sizeof b - 1;
    if (el == 0 || el >= epn || strlen(v) >= varn)
        return false;
    memcpy(ep, e, el);
    ep[el] = '\0';
    snprintf(var, varn, "%s", v);
    return kn_val_is_name(ep) && kn_val_is_name(var);
}

/* The three members that name a scalable target. On success ep/var hold
 * the endpoint and variant names and *rid the ResourceId. */
static kn_status target_members(kn_api_call *c, kn_val *v, bool need_resource, const char **rid,
                                char *ep, char *var)
{
    static const kn_val_str_spec rid_spec = {.min = 1, .max = 1600};
    static const kn_val_str_spec dim_spec = {.max = 128};
    kn_val_str_spec rid_req = rid_spec;
    rid_req.required = need_resource;
    kn_val_str_spec dim_req = dim_spec;
    dim_req.required = need_resource;
    const char *ns = kn_val_enum(v, c->input, "", "ServiceNamespace", true, namespaces);
    *rid = kn_val_str(v, c->input, "", "ResourceId", &rid_req);
    const char *dim = kn_val_str(v, c->input, "", "ScalableDimension", &dim_req);
    kn_status s = kn_val_finish(v, &c->err);
    if (s)
        return s;
    if (strcmp(ns, "sagemaker") != 0 || (dim && strcmp(dim, DIMENSION) != 0))
        return unsupported_target(c);
    if (*rid && !parse_resource(*rid, ep, 64, var, 64))
        return unsupported_target(c);
    return KN_OK;
}

static void target_arn(kn_api_call *c, const char *rid, char *out, size_t n)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a: a stable id per resource */
    for (const char *p = rid; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ull;
    snprintf(out, n, "arn:aws:application-autoscaling:%s:%s:scalable-target/0s%016llx",
             kn_registry_region(c->api->registry), kn_registry_account(c->api->registry),
             (unsigned long long)h);
}

static kn_status reload(kn_api_call *c)
{
    if (!c->api->fleet)
        return KN_OK;
    return kn_fleet_autoscaling_reload(c->api->fleet, &c->err);
}

/* MaxResults / NextToken over a whole list: [*from, *to). */
static kn_status page(kn_api_call *c, kn_val *v, size_t total, size_t *from, size_t *to,
                      size_t dflt)
{
    long long max = (long long)dflt;
    kn_val_int(v, c->input, "", "MaxResults", false, 1, 50, &max);
    static const kn_val_str_spec tok = {.max = 64};
    const char *t = kn_val_str(v, c->input, "", "NextToken", &tok);
    kn_status s = kn_val_finish(v, &c->err);
    if (s)
        return s;
    size_t start = 0;
    if (t) {
        char *end;
        unsigned long long x = strtoull(t, &end, 10);
        if (!*t || *end || !isdigit((unsigned char)t[0]) || x > total)
            return kn_err_set(&c->err, KN_INVALID, "Invalid NextToken: %s", t);
        start = (size_t)x;
    }
    *from = start;
    *to = start + (size_t)max < total ? start + (size_t)max : total;
    return KN_OK;
}

static void set_next(kn_api_call *c, size_t to, size_t total)
{
    if (to < total) {
        char t[32];
        snprintf(t, sizeof t, "%zu", to);
        json_object_set_new(c->output, "NextToken", json_string(t));
    }
}

kn_status kn_aas__register_scalable_target(kn_api_call *c)
{
    kn_val v;
    kn_val_init(&v);
    const char *rid;
    char ep[64] = "", var[64] = "";
    long long min = -1, max = -1;
    kn_val_int(&v, c->input, "", "MinCapacity", false, 1, 10000, &min);
    kn_val_int(&v, c->input, "", "MaxCapacity", false, 1, 10000, &max);
    static const kn_val_str_spec role = {.min = 1, .max = 1600};
    const char *role_arn = kn_val_str(&v, c->input, "", "RoleARN", &role);
    json_t *susp = kn_val_obj(&v, c->input, "", "SuspendedState", false);
    bool sin = false, sout = false, ssched = false;
    if (susp) {
        kn_val_bool(&v, susp, "suspendedState", "DynamicScalingInSuspended", &sin);
        kn_val_bool(&v, susp, "suspendedState", "DynamicScalingOutSuspended", &sout);
        kn_val_bool(&v, susp, "suspendedState", "ScheduledScalingSuspended", &ssched);
    }
    kn_val_tags(&v, c->input, "");
    kn_status s = target_members(c, &v, true, &rid, ep, var);
    if (s)
        return s;
    /* the variant must exist */
    kn_endpoint_rec rec;
    if ((s = kn_registry_endpoint_get(c->api->registry, ep, &rec, &c->err)))
        return s;
    bool found = false;
    for (int i = 0; i < rec.n_variants; i++)
        found = found || strcmp(rec.variants[i].variant_name, var) == 0;
    kn_endpoint_rec_deinit(&rec);
    if (!found)
        return kn_err_set(&c->err, KN_INVALID,
                          "The variant %s does not exist on endpoint %s, so %s cannot be "
                          "registered",
                          var, ep, rid);
    char arn[256];
    target_arn(c, rid, arn, sizeof arn);
    kn_scalable_target_rec t = {.resource_id = (char *)rid,
                                .endpoint = ep,
                                .variant = var,
                                .arn = arn,
                                .min_capacity = (int)min,
                                .max_capacity = (int)max,
                                .role_arn = (char *)role_arn,
                                .suspended_in = sin,
                                .suspended_out = sout,
                                .suspended_scheduled = ssched};
    kn_scalable_target_rec out;
    bool created;
    if ((s = kn_registry_target_put(c->api->registry, &t, &created, &out, &c->err)))
        return s;
    c->output = json_pack("{s:s}", "ScalableTargetARN", out.arn);
    kn_scalable_target_rec_deinit(&out);
    return reload(c);
}

/* A Describe filter: true when the list (ResourceIds, PolicyNames) is absent
 * or empty, or holds value. */
static bool wanted(json_t *list, const char *value)
{
    if (json_array_size(list) == 0)
        return true;
    size_t k;
    json_t *x;
    json_array_foreach(list, k, x)
    {
        if (json_is_string(x) && strcmp(json_string_value(x), value) == 0)
            return true;
    }
    return false;
}

kn_status kn_aas__describe_scalable_targets(kn_api_call *c)
{
    kn_val v;
    kn_val_init(&v);
    json_t *ids = kn_val_list(&v, c->input, "", "ResourceIds", false, 0, 50);
    const char *rid;
    char ep[64], var[64];
    kn_status s = target_members(c, &v, false, &rid, ep, var);
    if (s)
        return s;
    kn_scalable_target_rec *ts;
    size_t n;
    if ((s = kn_registry_target_list(c->api->registry, NULL, &ts, &n, &c->err)))
        return s;
    json_t *items = json_array();
    for (size_t i = 0; i < n; i++) {
        if (!wanted(ids, ts[i].resource_id))
            continue;
        json_t *o = json_pack(
            "{s:s, s:s, s:s, s:i, s:i, s:f, s:{s:b, s:b, s:b}, s:s}", "ServiceNamespace",
            "sagemaker", "ResourceId", ts[i].resource_id, "ScalableDimension", DIMENSION,
            "MinCapacity", ts[i].min_capacity, "MaxCapacity", ts[i].max_capacity,
            "CreationTime", ts[i].creation_time, "SuspendedState", "DynamicScalingInSuspended",
            ts[i].suspended_in, "DynamicScalingOutSuspended", ts[i].suspended_out,
            "ScheduledScalingSuspended", ts[i].suspended_scheduled, "ScalableTargetARN",
            ts[i].arn);
        if (ts[i].role_arn)
            json_object_set_new(o, "RoleARN", json_string(ts[i].role_arn));
        json_array_append_new(items, o);
    }
    for (size_t i = 0; i < n; i++)
        kn_scalable_target_rec_deinit(&ts[i]);
    free(ts);
    size_t from, to, total = json_array_size(items);
    kn_val_init(&v);
    if ((s = page(c, &v, total, &from, &to, 50))) {
        json_decref(items);
        return s;
    }
    json_t *slice = json_array();
    for (size_t i = from; i < to; i++)
        json_array_append(slice, json_array_get(items, i));
    json_decref(items);
    c->output = json_pack("{s:o}", "ScalableTargets", slice);
    set_next(c, to, total);
    return KN_OK;
}

kn_status kn_aas__deregister_scalable_target(kn_api_call *c)
{
    kn_val v;
    kn_val_init(&v);
    const char *rid;
    char ep[64], var[64];
    kn_status s = target_members(c, &v, true, &rid, ep, var);
    if (s || (s = kn_registry_target_delete(c->api->registry, rid, &c->err)))
        return s;
    return reload(c);
}

static void new_uuid(char *out, size_t n)
{
    uint8_t b[16];
    kn_rng r;
    kn_rng_seed(&r, kn_now_ns() ^ (uint64_t)(uintptr_t)out);
    for (int i = 0; i < 16; i++)
        b[i] = (uint8_t)kn_rng_next(&r);
    snprintf(out, n, "%02x%02x%02x%02x-%02x%02x-4%x%02x-%x%x%02x-%02x%02x%02x%02x%02x%02x", b[0],
             b[1], b[2], b[3], b[4], b[5], b[6] & 15, b[7], 8 | (b[8] & 3), b[8] >> 4, b[9],
             b[10], b[11], b[12], b[13], b[14], b[15]);
}

static json_t *alarms_json(kn_api_call *c, const kn_scaling_policy_rec *p)
{
    const char *region = kn_registry_region(c->api->registry);
    const char *acct = kn_registry_account(c->api->registry);
    json_t *a = json_array();
    const char *names[2] = {p->alarm_high, p->alarm_low};
    for (int i = 0; i < 2; i++) {
        char arn[600];
        snprintf(arn, sizeof arn, "arn:aws:cloudwatch:%s:%s:alarm:%s", region, acct, names[i]);
        json_array_append_new(a, json_pack("{s:s, s:s}", "AlarmName", names[i], "AlarmARN", arn));
    }
    return a;
}

kn_status kn_aas__put_scaling_policy(kn_api_call *c)
{
    kn_val v;
    kn_val_init(&v);
    static const kn_val_str_spec pname = {.required = true, .min = 1, .max = 256};
    static const char *const types[] = {"StepScaling", "TargetTrackingScaling",
                                        "PredictiveScaling", NULL};
    static const char *const metric_types[] = {
        "SageMakerVariantInvocationsPerInstance",
        "SageMakerVariantProvisionedConcurrencyUtilization",
        "SageMakerVariantConcurrentRequestsPerModelHighResolution",
        "SageMakerInferenceComponentInvocationsPerCopy",
        "SageMakerInferenceComponentConcurrentRequestsPerCopyHighResolution", NULL};
    const char *name = kn_val_str(&v, c->input, "", "PolicyName", &pname);
    const char *type = kn_val_enum(&v, c->input, "", "PolicyType", false, types);
    json_t *cfg = kn_val_obj(&v, c->input, "", "TargetTrackingScalingPolicyConfiguration", false);
    static const char *const unsupported[] = {"StepScalingPolicyConfiguration",
                                              "PredictiveScalingPolicyConfiguration", NULL};
    kn_val_unsupported(&v, c->input, "", unsupported);
    double target = 0;
    long long out_cd = 300, in_cd = 300;
    bool disable_in = false;
    const char *metric = NULL;
    const char *cp = "targetTrackingScalingPolicyConfiguration";
    if (cfg) {
        kn_val_num(&v, cfg, cp, "TargetValue", true, 0, &target);
        kn_val_int(&v, cfg, cp, "ScaleOutCooldown", false, 0, 1000000000, &out_cd);
        kn_val_int(&v, cfg, cp, "ScaleInCooldown", false, 0, 1000000000, &in_cd);
        kn_val_bool(&v, cfg, cp, "DisableScaleIn", &disable_in);
        json_t *pm = kn_val_obj(&v, cfg, cp, "PredefinedMetricSpecification", false);
        static const char *const cfg_unsupported[] = {"CustomizedMetricSpecification", NULL};
        kn_val_unsupported(&v, cfg, cp, cfg_unsupported);
        if (pm) {
            char pp[128];
            snprintf(pp, sizeof pp, "%s.predefinedMetricSpecification", cp);
            metric = kn_val_enum(&v, pm, pp, "PredefinedMetricType", true, metric_types);
            static const kn_val_str_spec label = {.min = 1, .max = 1023};
            kn_val_str(&v, pm, pp, "ResourceLabel", &label);
        } else {
            kn_val_fail(&v, "Value null at '%s.predefinedMetricSpecification' failed to satisfy "
                            "constraint: Member must not be null",
                        cp);
        }
    }
    const char *rid;
    char ep[64], var[64];
    kn_status s = target_members(c, &v, true, &rid, ep, var);
    if (s)
        return s;
    if (type && strcmp(type, "TargetTrackingScaling") != 0)
        return kn_err_set(&c->err, KN_INVALID,
                          "kennel supports the TargetTrackingScaling policy type only, not %s",
                          type);
    if (!cfg)
        return kn_err_set(&c->err, KN_INVALID,
                          "TargetTrackingScalingPolicyConfiguration is required for a "
                          "TargetTrackingScaling policy");
    if (!(target > 0))
        return kn_err_set(&c->err, KN_INVALID,
                          "1 validation error detected: Value '%g' at "
                          "'targetTrackingScalingPolicyConfiguration.targetValue' failed to "
                          "satisfy constraint: Member must be greater than 0",
                          target);
    if (metric && strcmp(metric, "SageMakerVariantInvocationsPerInstance") != 0)
        return kn_err_set(&c->err, KN_INVALID,
                          "kennel tracks SageMakerVariantInvocationsPerInstance only, not %s",
                          metric);

    char uuid[40], uuid2[40], uuid3[40], arn[1024], high[600], low[600];
    new_uuid(uuid, sizeof uuid);
    new_uuid(uuid2, sizeof uuid2);
    new_uuid(uuid3, sizeof uuid3);
    snprintf(arn, sizeof arn,
             "arn:aws:autoscaling:%s:%s:scalingPolicy:%s:resource/sagemaker/%s:policyName/%s",
             kn_registry_region(c->api->registry), kn_registry_account(c->api->registry), uuid,
             rid, name);
    snprintf(high, sizeof high, "TargetTracking-%s-AlarmHigh-%s", rid, uuid2);
    snprintf(low, sizeof low, "TargetTracking-%s-AlarmLow-%s", rid, uuid3);
    char *config = json_dumps(cfg, JSON_COMPACT | JSON_SORT_KEYS);
    kn_scaling_policy_rec p = {.resource_id = (char *)rid,
                               .name = (char *)name,
                               .arn = arn,
                               .target_value = target,
                               .scale_out_cooldown = (double)out_cd,
                               .scale_in_cooldown = (double)in_cd,
                               .disable_scale_in = disable_in,
                               .config_json = config,
                               .alarm_high = high,
                               .alarm_low = low};
    s = config ? kn_registry_policy_put(c->api->registry, &p, &c->err)
               : kn_err_set(&c->err, KN_NOMEM, "out of memory");
    free(config);
    if (s)
        return s;
    /* answer with what is stored (a replaced policy keeps its ARN and alarms) */
    kn_scaling_policy_rec *ps;
    size_t n;
    if ((s = kn_registry_policy_list(c->api->registry, rid, &ps, &n, &c->err)))
        return s;
    for (size_t i = 0; i < n; i++) {
        if (!c->output && strcmp(ps[i].name, name) == 0)
            c->output = json_pack("{s:s, s:o}", "PolicyARN", ps[i].arn, "Alarms",
                                  alarms_json(c, &ps[i]));
        kn_scaling_policy_rec_deinit(&ps[i]);
    }
    free(ps);
    return reload(c);
}

kn_status kn_aas__describe_scaling_policies(kn_api_call *c)
{
    kn_val v;
    kn_val_init(&v);
    json_t *names = kn_val_list(&v, c->input, "", "PolicyNames", false, 0, 50);
    const char *rid;
    char ep[64], var[64];
    kn_status s = target_members(c, &v, false, &rid, ep, var);
    if (s)
        return s;
    kn_scaling_policy_rec *ps;
    size_t n;
    if ((s = kn_registry_policy_list(c->api->registry, rid, &ps, &n, &c->err)))
        return s;
    json_t *items = json_array();
    for (size_t i = 0; i < n; i++) {
        if (wanted(names, ps[i].name)) {
            json_t *cfg = json_loads(ps[i].config_json, 0, NULL);
            json_array_append_new(
                items, json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:o, s:o, s:f}", "PolicyARN",
                                 ps[i].arn, "PolicyName", ps[i].name, "ServiceNamespace",
                                 "sagemaker", "ResourceId", ps[i].resource_id,
                                 "ScalableDimension", DIMENSION, "PolicyType",
                                 "TargetTrackingScaling",
                                 "TargetTrackingScalingPolicyConfiguration",
                                 cfg ? cfg : json_object(), "Alarms", alarms_json(c, &ps[i]),
                                 "CreationTime", ps[i].creation_time));
        }
        kn_scaling_policy_rec_deinit(&ps[i]);
    }
    free(ps);
    size_t from, to, total = json_array_size(items);
    kn_val_init(&v);
    if ((s = page(c, &v, total, &from, &to, 50))) {
        json_decref(items);
        return s;
    }
    json_t *slice = json_array();
    for (size_t i = from; i < to; i++)
        json_array_append(slice, json_array_get(items, i));
    json_decref(items);
    c->output = json_pack("{s:o}", "ScalingPolicies", slice);
    set_next(c, to, total);
    return KN_OK;
}

kn_status kn_aas__delete_scaling_policy(kn_api_call *c)
{
    kn_val v;
    kn_val_init(&v);
    static const kn_val_str_spec pname = {.required = true, .min = 1, .max = 256};
    const char *name = kn_val_str(&v, c->input, "", "PolicyName", &pname);
    const char *rid;
    char ep[64], var[64];
    kn_status s = target_members(c, &v, true, &rid, ep, var);
    if (s || (s = kn_registry_policy_delete(c->api->registry, rid, name, &c->err)))
        return s;
    return reload(c);
}

kn_status kn_aas__describe_scaling_activities(kn_api_call *c)
{
    kn_val v;
    kn_val_init(&v);
    bool not_scaled = false;
    kn_val_bool(&v, c->input, "", "IncludeNotScaledActivities", &not_scaled);
    const char *rid;
    char ep[64], var[64];
    kn_status s = target_members(c, &v, false, &rid, ep, var);
    if (s)
        return s;
    kn_scaling_activity_rec *as;
    size_t n;
    if ((s = kn_registry_activity_list(c->api->registry, rid, &as, &n, &c->err)))
        return s;
    size_t from = 0, to = 0;
    kn_val_init(&v);
    if ((s = page(c, &v, n, &from, &to, 50)))
        goto out;
    json_t *items = json_array();
    for (size_t i = from; i < to; i++) {
        json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:f, s:s}", "ActivityId",
                              as[i].id, "ServiceNamespace", "sagemaker", "ResourceId",
                              as[i].resource_id, "ScalableDimension", DIMENSION, "Description",
                              as[i].description, "Cause", as[i].cause, "StartTime",
                              as[i].start_time, "StatusCode", as[i].status_code);
        if (as[i].end_time > 0)
            json_object_set_new(o, "EndTime", json_real(as[i].end_time));
        if (as[i].status_message)
            json_object_set_new(o, "StatusMessage", json_string(as[i].status_message));
        json_array_append_new(items, o);
    }
    c->output = json_pack("{s:o}", "ScalingActivities", items);
    set_next(c, to, n);
out:
    for (size_t i = 0; i < n; i++)
        kn_scaling_activity_rec_deinit(&as[i]);
    free(as);
    return s;
}
