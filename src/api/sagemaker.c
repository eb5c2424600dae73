/* SageMaker control-plane operations (JSON 1.1, X-Amz-Target: SageMaker.*):
 * models, endpoint configurations and endpoints. Each handler validates its
 * input the way AWS does (kn_val), calls the registry or the fleet, and
 * builds the AWS output shape. Timestamps are epoch seconds, as botocore
 * reads them. Thread-safe: handlers keep no state.
 */
#include "api_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const sort_by_values[] = {"Name", "CreationTime", NULL};
static const char *const sort_order_values[] = {"Ascending", "Descending", NULL};

static kn_status need_fleet(kn_api_call *c)
{
    if (c->api->fleet)
        return KN_OK;
    c->err_code = "ServiceUnavailable";
    c->err_http = 503;
    return kn_err_set(&c->err, KN_INTERNAL, "This kennel server does not run endpoints.");
}

/* The common list parameters: NameContains, SortBy, SortOrder, MaxResults,
 * NextToken, CreationTimeBefore/After. */
static void list_params(kn_val *v, json_t *in, kn_list_params *q, const char *const *sort_values)
{
    *q = kn_list_default_params();
    static const kn_val_str_spec contains = {.max = 63};
    static const kn_val_str_spec token = {.max = 8192};
    q->name_contains = kn_val_str(v, in, "", "NameContains", &contains);
    const char *sb = kn_val_enum(v, in, "", "SortBy", false, sort_values);
    if (sb && strcmp(sb, "Name") == 0)
        q->sort_by = KN_SORT_NAME;
    const char *so = kn_val_enum(v, in, "", "SortOrder", false, sort_order_values);
    if (so)
        q->ascending = strcmp(so, "Ascending") == 0;
    long long max;
    if (kn_val_int(v, in, "", "MaxResults", false, 1, 100, &max))
        q->max_results = (int)max;
    q->next_token = kn_val_str(v, in, "", "NextToken", &token);
    q->has_created_before = kn_val_time(v, in, "", "CreationTimeBefore", &q->created_before);
    q->has_created_after = kn_val_time(v, in, "", "CreationTimeAfter", &q->created_after);
}

static json_t *parse_or_null(const char *text)
{
    return text ? json_loads(text, 0, NULL) : NULL;
}

/* ---------------------------------------------------------------- models */

kn_status kn_sm__create_model(kn_api_call *c)
{
    json_t *in = c->input;
    kn_val v;
    kn_val_init(&v);
    static const char *const unsupported[] = {"Containers", "InferenceExecutionConfig",
                                              "VpcConfig", NULL};
    static const kn_val_str_spec role = {.min = 20, .max = 2048};
    static const kn_val_str_spec url = {.required = true, .max = 1024};
    static const kn_val_str_spec image = {.max = 255};
    static const char *const modes[] = {"SingleModel", "MultiModel", NULL};
    const char *name = kn_val_str(&v, in, "", "ModelName", &kn_val_name_required);
    const char *role_arn = kn_val_str(&v, in, "", "ExecutionRoleArn", &role);
    bool isolation = false;
    kn_val_bool(&v, in, "", "EnableNetworkIsolation", &isolation);
    kn_val_unsupported(&v, in, "", unsupported);
    json_t *tags = kn_val_tags(&v, in, "");
    json_t *pc = kn_val_obj(&v, in, "", "PrimaryContainer", true);
    const char *data_url = NULL;
    if (pc) {
        static const char *const pc_unsupported[] = {"ModelPackageName", "ImageConfig",
                                                     "MultiModelConfig", "ModelDataSource",
                                                     "InferenceSpecificationName", NULL};
        kn_val_str(&v, pc, "primaryContainer", "Image", &image);
        kn_val_str(&v, pc, "primaryContainer", "ContainerHostname", &image);
        const char *mode = kn_val_enum(&v, pc, "primaryContainer", "Mode", false, modes);
        if (mode && strcmp(mode, "MultiModel") == 0)
            kn_val_fail(&v, "Value 'MultiModel' at 'primaryContainer.mode' is not supported by "
                            "kennel yet: use SingleModel");
        data_url = kn_val_str(&v, pc, "primaryContainer", "ModelDataUrl", &url);
        json_t *env = kn_val_obj(&v, pc, "primaryContainer", "Environment", false);
        if (env) {
            const char *k;
            json_t *val;
            if (json_object_size(env) > 100)
                kn_val_fail(&v, "Value at 'primaryContainer.environment' failed to satisfy "
                                "constraint: Member must have length less than or equal to 100");
            json_object_foreach(env, k, val)
            {
                if (!json_is_string(val)) {
                    kn_val_str_spec any = {0};
                    kn_val_str(&v, env, "primaryContainer.environment", k, &any);
                }
            }
        }
        kn_val_unsupported(&v, pc, "primaryContainer", pc_unsupported);
    }
    kn_status s = kn_val_finish(&v, &c->err);
    if (s)
        return s;

    char path[4096];
    if ((s = kn_platform_resolve_model_data(c->api->platform, data_url, path, sizeof path,
                                            &c->err)))
        return s;
    char *container = json_dumps(pc, JSON_COMPACT | JSON_SORT_KEYS);
    char *tags_text = tags ? json_dumps(tags, JSON_COMPACT) : NULL;
    kn_model_rec m;
    memset(&m, 0, sizeof m);
    m.name = (char *)name;
    m.execution_role_arn = (char *)(role_arn ? role_arn : "");
    m.container_json = container;
    m.model_data_url = (char *)data_url;
    m.model_data_path = path;
    m.network_isolation = isolation;
    m.tags_json = tags_text;
    if (!container || (tags && !tags_text))
        s = kn_err_set(&c->err, KN_NOMEM, "out of memory");
    else
        s = kn_registry_model_create(c->api->registry, &m, &c->err);
    if (!s)
        c->output = json_pack("{s:s}", "ModelArn", m.arn);
    free(m.arn);
    free(container);
    free(tags_text);
    return s;
}

kn_status kn_sm__describe_model(kn_api_call *c)
{
    kn_val v;
    kn_val_init(&v);
    const char *name = kn_val_str(&v, c->input, "", "ModelName", &kn_val_name_required);
    kn_status s = kn_val_finish(&v, &c->err);
    if (s)
        return s;
    kn_model_rec m;
    if ((s = kn_registry_model_get(c->api->registry, name, &m, &c->err)))
        return s;
    json_t *o = json_object();
    json_object_set_new(o, "ModelName", json_string(m.name));
    json_t *pc = parse_or_null(m.container_json);
    json_object_set_new(o, "PrimaryContainer", pc ? pc : json_object());
    if (m.execution_role_arn && *m.execution_role_arn)
        json_object_set_new(o, "ExecutionRoleArn", json_string(m.execution_role_arn));
    json_object_set_new(o, "CreationTime", json_real(m.creation_time));
    json_object_set_new(o, "ModelArn", json_string(m.arn));
    json_object_set_new(o, "EnableNetworkIsolation", json_boolean(m.network_isolation));
    c->output = o;
    kn_model_rec_deinit(&m);
    return KN_OK;
}

kn_status kn_sm__delete_model(kn_api_call *c)
{
    kn_val v;
    kn_val_init(&v);
    const char *name = kn_val_str(&v, c->input, "", "ModelName", &kn_val_name_required);
    kn_status s = kn_val_finish(&v, &c->err);
    if (s)
        return s;
    return kn_registry_model_delete(c->api->registry, name, &c->err);
}

kn_status kn_sm__list_models(kn_api_call *c)
{
    kn_val v;
    kn_val_init(&v);
    kn_list_params q;
    list_params(&v, c->input, &q, sort_by_values);
    kn_status s = kn_val_finish(&v, &c->err);
    if (s)
        return s;
    kn_model_page page;
    if ((s = kn_registry_model_list(c->api->registry, &q, &page, &c->err)))
        return s;
    json_t *items = json_array();
    for (size_t i = 0; i < page.n; i++)
        json_array_append_new(items, json_pack("{s:s, s:s, s:f}", "ModelName", page.items[i].name,
                                               "ModelArn", page.items[i].arn, "CreationTime",
                                               page.items[i].creation_time));
    c->output = json_pack("{s:o}", "Models", items);
    if (page.next_token)
        json_object_set_new(c->output, "NextToken", json_string(page.next_token));
    kn_model_page_deinit(&page);
    return KN_OK;
}

/* ------------------------------------------------ endpoint configurations */

kn_status kn_sm__create_endpoint_config(kn_api_call *c)
{
    json_t *in = c->input;
    kn_val v;
    kn_val_init(&v);
    static const char *const unsupported[] = {
        "DataCaptureConfig", "AsyncInferenceConfig", "ExplainerConfig",
        "ShadowProductionVariants", "ExecutionRoleArn", "VpcConfig", NULL};
    static const char *const variant_unsupported[] = {
        "ServerlessConfig", "AcceleratorType", "CoreDumpConfig", "ManagedInstanceScaling",
        "RoutingConfig", "InferenceAmiVersion", NULL};
    static const kn_val_str_spec kms = {.max = 2048};
    static const kn_val_str_spec model_name = {.required = true,
                                               .max = 63,
                                               .check = kn_val_is_name,
                                               .pattern = KN_NAME_PATTERN};
    /* AWS's InstanceType is an enum: kennel's is its instance-type table */
    const char *types[32];
    size_t nt;
    const kn_instance_type *tt = kn_instance_types(&nt);
    for (size_t i = 0; i < nt && i < 31; i++)
        types[i] = tt[i].name;
    types[nt < 31 ? nt : 31] = NULL;
    kn_val_str_spec itype = {.required = true, .max = 64, .enum_values = types};
    const char *name = kn_val_str(&v, in, "", "EndpointConfigName", &kn_val_name_required);
    const char *kms_key = kn_val_str(&v, in, "", "KmsKeyId", &kms);
    kn_val_unsupported(&v, in, "", unsupported);
    json_t *tags = kn_val_tags(&v, in, "");
    json_t *list = kn_val_list(&v, in, "", "ProductionVariants", true, 1, 10);
    size_t n = list ? json_array_size(list) : 0;
    kn_variant_rec *vars = n ? calloc(n, sizeof *vars) : NULL;
    if (n && !vars)
        return kn_err_set(&c->err, KN_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        char prefix[64];
        snprintf(prefix, sizeof prefix, "productionVariants.%zu.member", i + 1);
        json_t *pv = json_array_get(list, i);
        if (!json_is_object(pv)) {
            kn_val_fail(&v, "Value at '%s' must be an object", prefix);
            continue;
        }
        kn_variant_rec *r = &vars[i];
        r->variant_name = (char *)kn_val_str(&v, pv, prefix, "VariantName", &kn_val_name_required);
        r->model_name = (char *)kn_val_str(&v, pv, prefix, "ModelName", &model_name);
        r->instance_type = (char *)kn_val_str(&v, pv, prefix, "InstanceType", &itype);
        long long x;
        r->initial_instance_count = 1;
        if (kn_val_int(&v, pv, prefix, "InitialInstanceCount", true, 1, 100, &x))
            r->initial_instance_count = (int)x;
        r->initial_variant_weight = 1.0;
        kn_val_num(&v, pv, prefix, "InitialVariantWeight", false, 0, &r->initial_variant_weight);
        if (kn_val_int(&v, pv, prefix, "VolumeSizeInGB", false, 1, 512, &x))
            r->volume_size_gb = (int)x;
        if (kn_val_int(&v, pv, prefix, "ModelDataDownloadTimeoutInSeconds", false, 60, 3600, &x))
            r->model_download_timeout_s = (int)x;
        if (kn_val_int(&v, pv, prefix, "ContainerStartupHealthCheckTimeoutInSeconds", false, 60,
                       3600, &x))
            r->startup_health_timeout_s = (int)x;
        kn_val_unsupported(&v, pv, prefix, variant_unsupported);
        for (size_t j = 0; j < i; j++)
            if (r->variant_name && vars[j].variant_name &&
                strcmp(r->variant_name, vars[j].variant_name) == 0)
                kn_val_fail(&v, "Value '%s' at '%s.variantName' is used by another production "
                                "variant: variant names must be unique",
                            r->variant_name, prefix);
    }
    kn_status s = kn_val_finish(&v, &c->err);
    if (s) {
        free(vars);
        return s;
    }
    char *tags_text = tags ? json_dumps(tags, JSON_COMPACT) : NULL;
    kn_endpoint_config_rec cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.name = (char *)name;
    cfg.kms_key_id = (char *)kms_key;
    cfg.tags_json = tags_text;
    cfg.variants = vars;
    cfg.n_variants = (int)n;
    s = kn_registry_endpoint_config_create(c->api->registry, &cfg, &c->err);
    if (!s)
        c->output = json_pack("{s:s}", "EndpointConfigArn", cfg.arn);
    free(cfg.arn);
    free(tags_text);
    free(vars);
    return s;
}

kn_status kn_sm__describe_endpoint_config(kn_api_call *c)
{
    kn_val v;
    kn_val_init(&v);
    const char *name = kn_val_str(&v, c->input, "", "EndpointConfigName", &kn_val_name_required);
    kn_status s = kn_val_finish(&v, &c->err);
    if (s)
        return s;
    kn_endpoint_config_rec cfg;
    if ((s = kn_registry_endpoint_config_get(c->api->registry, name, &cfg, &c->err)))
        return s;
    json_t *pvs = json_array();
    for (int i = 0; i < cfg.n_variants; i++) {
        const kn_variant_rec *r = &cfg.variants[i];
        json_t *o = json_pack("{s:s, s:s, s:i, s:s, s:f}", "VariantName", r->variant_name,
                              "ModelName", r->model_name, "InitialInstanceCount",
                              r->initial_instance_count, "InstanceType", r->instance_type,
                              "InitialVariantWeight", r->initial_variant_weight);
        if (r->volume_size_gb)
            json_object_set_new(o, "VolumeSizeInGB", json_integer(r->volume_size_gb));
        if (r->model_download_timeout_s)
            json_object_set_new(o, "ModelDataDownloadTimeoutInSeconds",
                                json_integer(r->model_download_timeout_s));
        if (r->startup_health_timeout_s)
            json_object_set_new(o, "ContainerStartupHealthCheckTimeoutInSeconds",
                                json_integer(r->startup_health_timeout_s));
        json_array_append_new(pvs, o);
    }
    json_t *o = json_pack("{s:s, s:s, s:o, s:f}", "EndpointConfigName", cfg.name,
                          "EndpointConfigArn", cfg.arn, "ProductionVariants", pvs,
                          "CreationTime", cfg.creation_time);
    if (cfg.kms_key_id)
        json_object_set_new(o, "KmsKeyId", json_string(cfg.kms_key_id));
    c->output = o;
    kn_endpoint_config_rec_deinit(&cfg);
    return KN_OK;
}

kn_status kn_sm__delete_endpoint_config(kn_api_call *c)
{
    kn_val v;
    kn_val_init(&v);
    const char *name = kn_val_str(&v, c->input, "", "EndpointConfigName", &kn_val_name_required);
    kn_status s = kn_val_finish(&v, &c->err);
    if (s)
        return s;
    return kn_registry_endpoint_config_delete(c->api->registry, name, &c->err);
}

kn_status kn_sm__list_endpoint_configs(kn_api_call *c)
{
    kn_val v;
    kn_val_init(&v);
    kn_list_params q;
    list_params(&v, c->input, &q, sort_by_values);
    kn_status s = kn_val_finish(&v, &c->err);
    if (s)
        return s;
    kn_endpoint_config_page page;
    if ((s = kn_registry_endpoint_config_list(c->api->registry, &q, &page, &c->err)))
        return s;
    json_t *items = json_array();
    for (size_t i = 0; i < page.n; i++)
        json_array_append_new(items,
                              json_pack("{s:s, s:s, s:f}", "EndpointConfigName",
                                        page.items[i].name, "EndpointConfigArn",
                                        page.items[i].arn, "CreationTime",
                                        page.items[i].creation_time));
    c->output = json_pack("{s:o}", "EndpointConfigs", items);
    if (page.next_token)
        json_object_set_new(c->output, "NextToken", json_string(page.next_token));
    kn_endpoint_config_page_deinit(&page);
    return KN_OK;
}

/* ------------------------------------------------------------- endpoints */

kn_status kn_sm__create_endpoint(kn_api_call *c)
{
    kn_status s = need_fleet(c);
    if (s)
        return s;
    kn_val v;
    kn_val_init(&v);
    static const char *const unsupported[] = {"DeploymentConfig", NULL};
    const char *name = kn_val_str(&v, c->input, "", "EndpointName", &kn_val_name_required);
    const char *cfg = kn_val_str(&v, c->input, "", "EndpointConfigName", &kn_val_name_required);
    json_t *tags = kn_val_tags(&v, c->input, "");
    kn_val_unsupported(&v, c->input, "", unsupported);
    if ((s = kn_val_finish(&v, &c->err)))
        return s;
    char *tags_text = tags ? json_dumps(tags, JSON_COMPACT) : NULL;
    kn_endpoint_rec ep;
    s = kn_fleet_endpoint_create(c->api->fleet, name, cfg, tags_text, &ep, &c->err);
    free(tags_text);
    if (s)
        return s;
    c->output = json_pack("{s:s}", "EndpointArn", ep.arn);
    kn_endpoint_rec_deinit(&ep);
    return KN_OK;
}

kn_status kn_sm__describe_endpoint(kn_api_call *c)
{
    kn_status s = need_fleet(c);
    if (s)
        return s;
    kn_val v;
    kn_val_init(&v);
    const char *name = kn_val_str(&v, c->input, "", "EndpointName", &kn_val_name_required);
    if ((s = kn_val_finish(&v, &c->err)))
        return s;
    kn_endpoint_rec ep;
    if ((s = kn_fleet_endpoint_describe(c->api->fleet, name, &ep, &c->err)))
        return s;
    json_t *pvs = json_array();
    for (int i = 0; i < ep.n_variants; i++) {
        const kn_endpoint_variant_rec *r = &ep.variants[i];
        const char *image = r->image ? r->image : "kennel-model-server";
        json_t *img = json_pack("[{s:s, s:s, s:f}]", "SpecifiedImage", image, "ResolvedImage",
                                image, "ResolutionTime", ep.creation_time);
        json_array_append_new(
            pvs, json_pack("{s:s, s:o, s:f, s:f, s:i, s:i}", "VariantName", r->variant_name,
                           "DeployedImages", img, "CurrentWeight", r->current_weight,
                           "DesiredWeight", r->desired_weight, "CurrentInstanceCount",
                           r->current_count, "DesiredInstanceCount", r->desired_count));
    }
    json_t *o = json_pack("{s:s, s:s, s:s, s:o, s:s, s:f, s:f}", "EndpointName", ep.name,
                          "EndpointArn", ep.arn, "EndpointConfigName", ep.config_name,
                          "ProductionVariants", pvs, "EndpointStatus", ep.status,
                          "CreationTime", ep.creation_time, "LastModifiedTime",
                          ep.last_modified_time);
    if (ep.failure_reason)
        json_object_set_new(o, "FailureReason", json_string(ep.failure_reason));
    c->output = o;
    kn_endpoint_rec_deinit(&ep);
    return KN_OK;
}

kn_status kn_sm__delete_endpoint(kn_api_call *c)
{
    kn_status s = need_fleet(c);
    if (s)
        return s;
    kn_val v;
    kn_val_init(&v);
    const char *name = kn_val_str(&v, c->input, "", "EndpointName", &kn_val_name_required);
    if ((s = kn_val_finish(&v, &c->err)))
        return s;
    return kn_fleet_endpoint_delete(c->api->fleet, name, &c->err);
}

kn_status kn_sm__list_endpoints(kn_api_call *c)
{
    static const char *const statuses[] = {"OutOfService", "Creating", "Updating",
                                           "SystemUpdating", "RollingBack", "InService",
                                           "Deleting", "Failed", "UpdateRollbackFailed", NULL};
    static const char *const unsupported[] = {"LastModifiedTimeBefore", "LastModifiedTimeAfter",
                                              NULL};
    kn_val v;
    kn_val_init(&v);
    kn_list_params q;
    list_params(&v, c->input, &q, sort_by_values);
    q.status_equals = kn_val_enum(&v, c->input, "", "StatusEquals", false, statuses);
    kn_val_unsupported(&v, c->input, "", unsupported);
    kn_status s = kn_val_finish(&v, &c->err);
    if (s)
        return s;
    kn_endpoint_page page;
    if ((s = kn_registry_endpoint_list(c->api->registry, &q, &page, &c->err)))
        return s;
    json_t *items = json_array();
    for (size_t i = 0; i < page.n; i++) {
        const kn_endpoint_rec *r = &page.items[i];
        json_array_append_new(items, json_pack("{s:s, s:s, s:f, s:f, s:s}", "EndpointName",
                                               r->name, "EndpointArn", r->arn, "CreationTime",
                                               r->creation_time, "LastModifiedTime",
                                               r->last_modified_time, "EndpointStatus",
                                               r->status));
    }
    c->output = json_pack("{s:o}", "Endpoints", items);
    if (page.next_token)
        json_object_set_new(c->output, "NextToken", json_string(page.next_token));
    kn_endpoint_page_deinit(&page);
    return KN_OK;
}

kn_status kn_sm__update_endpoint(kn_api_call *c)
{
    kn_status s = need_fleet(c);
    if (s)
        return s;
    kn_val v;
    kn_val_init(&v);
    static const char *const unsupported[] = {"ExcludeRetainedVariantProperties",
                                              "DeploymentConfig", NULL};
    const char *name = kn_val_str(&v, c->input, "", "EndpointName", &kn_val_name_required);
    const char *cfg = kn_val_str(&v, c->input, "", "EndpointConfigName", &kn_val_name_required);
    bool retain = false;
    if (kn_val_bool(&v, c->input, "", "RetainAllVariantProperties", &retain) && retain)
        kn_val_fail(&v, "Value 'true' at 'retainAllVariantProperties' is not supported by "
                        "kennel yet: leave it out");
    bool retain_dc = false;
    if (kn_val_bool(&v, c->input, "", "RetainDeploymentConfig", &retain_dc) && retain_dc)
        kn_val_fail(&v, "Value 'true' at 'retainDeploymentConfig' is not supported by kennel "
                        "yet: leave it out");
    kn_val_unsupported(&v, c->input, "", unsupported);
    if ((s = kn_val_finish(&v, &c->err)))
        return s;
    if ((s = kn_fleet_endpoint_update(c->api->fleet, name, cfg, &c->err)))
        return s;
    char arn[512];
    kn_registry_arn(c->api->registry, "sagemaker", "endpoint", name, arn, sizeof arn);
    c->output = json_pack("{s:s}", "EndpointArn", arn);
    return KN_OK;
}

kn_status kn_sm__update_endpoint_weights_and_capacities(kn_api_call *c)
{
    kn_status s = need_fleet(c);
    if (s)
        return s;
    kn_val v;
    kn_val_init(&v);
    const char *name = kn_val_str(&v, c->input, "", "EndpointName", &kn_val_name_required);
    json_t *list = kn_val_list(&v, c->input, "", "DesiredWeightsAndCapacities", true, 1, 10);
    size_t n = list ? json_array_size(list) : 0;
    kn_variant_capacity caps[10];
    memset(caps, 0, sizeof caps);
    static const char *const unsupported[] = {"ServerlessUpdateConfig", NULL};
    for (size_t i = 0; i < n && i < 10; i++) {
        char prefix[64];
        snprintf(prefix, sizeof prefix, "desiredWeightsAndCapacities.%zu.member", i + 1);
        json_t *item = json_array_get(list, i);
        if (!json_is_object(item)) {
            kn_val_fail(&v, "Value at '%s' must be an object", prefix);
            continue;
        }
        caps[i].variant_name = kn_val_str(&v, item, prefix, "VariantName", &kn_val_name_required);
        caps[i].has_weight = kn_val_num(&v, item, prefix, "DesiredWeight", false, 0,
                                        &caps[i].weight);
        long long count;
        if (kn_val_int(&v, item, prefix, "DesiredInstanceCount", false, 1, 100, &count)) {
            caps[i].has_count = true;
            caps[i].count = (int)count;
        }
        kn_val_unsupported(&v, item, prefix, unsupported);
    }
    if ((s = kn_val_finish(&v, &c->err)))
        return s;
    if ((s = kn_fleet_endpoint_update_capacity(c->api->fleet, name, caps, (int)n, &c->err)))
        return s;
    char arn[512];
    kn_registry_arn(c->api->registry, "sagemaker", "endpoint", name, arn, sizeof arn);
    c->output = json_pack("{s:s}", "EndpointArn", arn);
    return KN_OK;
}
