/* Policy findings (kennel iam lint) and the table of actions kennel knows.
 *
 * The table lists, per service kennel speaks (or that a function's role
 * commonly names: logs, cloudwatch), the IAM actions of that service's
 * operations. An action a policy names is checked against it: an unknown
 * action of a known service is almost always a typo that silently grants
 * nothing. Findings are plain data; the CLI prints them. */
#include "auth_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* service prefix, then its actions; NULL ends a service, NULL NULL the table */
static const char *const ACTIONS[] = {
    "sagemaker",
    "CreateModel", "DescribeModel", "DeleteModel", "ListModels",
    "CreateEndpointConfig", "DescribeEndpointConfig", "DeleteEndpointConfig",
    "ListEndpointConfigs", "CreateEndpoint", "DescribeEndpoint", "ListEndpoints",
    "UpdateEndpoint", "UpdateEndpointWeightsAndCapacities", "DeleteEndpoint",
    "InvokeEndpoint", "InvokeEndpointAsync", "CreateTrainingJob", "DescribeTrainingJob",
    "ListTrainingJobs", "StopTrainingJob", "CreateHyperParameterTuningJob",
    "DescribeHyperParameterTuningJob", "ListHyperParameterTuningJobs",
    "ListTrainingJobsForHyperParameterTuningJob", "StopHyperParameterTuningJob",
    "AddTags", "DeleteTags", "ListTags", NULL,
    "lambda",
    "CreateFunction", "GetFunction", "GetFunctionConfiguration", "ListFunctions",
    "DeleteFunction", "UpdateFunctionCode", "UpdateFunctionConfiguration", "PublishVersion",
    "ListVersionsByFunction", "CreateAlias", "GetAlias", "UpdateAlias", "DeleteAlias",
    "ListAliases", "InvokeFunction", "GetAccountSettings", "PutFunctionConcurrency",
    "GetFunctionConcurrency", "DeleteFunctionConcurrency", "PutProvisionedConcurrencyConfig",
    "GetProvisionedConcurrencyConfig", "DeleteProvisionedConcurrencyConfig",
    "ListProvisionedConcurrencyConfigs", "AddPermission", "RemovePermission", "GetPolicy",
    "TagResource", "UntagResource", "ListTags", NULL,
    "application-autoscaling",
    "RegisterScalableTarget", "DescribeScalableTargets", "DeregisterScalableTarget",
    "PutScalingPolicy", "DescribeScalingPolicies", "DeleteScalingPolicy",
    "DescribeScalingActivities", NULL,
    "iam",
    "CreateUser", "GetUser", "DeleteUser", "ListUsers", "CreateAccessKey", "DeleteAccessKey",
    "ListAccessKeys", "UpdateAccessKey", "CreateRole", "GetRole", "DeleteRole", "ListRoles",
    "UpdateAssumeRolePolicy", "PutRolePolicy", "GetRolePolicy", "DeleteRolePolicy",
    "ListRolePolicies", "PutUserPolicy", "GetUserPolicy", "DeleteUserPolicy",
    "ListUserPolicies", "CreatePolicy", "GetPolicy", "DeletePolicy", "ListPolicies",
    "CreatePolicyVersion", "GetPolicyVersion", "DeletePolicyVersion", "ListPolicyVersions",
    "SetDefaultPolicyVersion", "AttachRolePolicy", "DetachRolePolicy",
    "ListAttachedRolePolicies", "AttachUserPolicy", "DetachUserPolicy",
    "ListAttachedUserPolicies", "PassRole", "CreateServiceLinkedRole", NULL,
    "sts",
    "AssumeRole", "GetCallerIdentity", "GetSessionToken", NULL,
    "logs",
    "CreateLogGroup", "CreateLogStream", "PutLogEvents", "DescribeLogGroups",
    "DescribeLogStreams", "GetLogEvents", "FilterLogEvents", NULL,
    "cloudwatch",
    "PutMetricData", "GetMetricData", "GetMetricStatistics", "ListMetrics", "PutMetricAlarm",
    "DescribeAlarms", "DeleteAlarms", NULL,
    NULL,
};

/* Actions that let a principal give itself (or a function) more rights. */
static const char *const ESCALATION[] = {
    "iam:PassRole",          "iam:PutRolePolicy",         "iam:PutUserPolicy",
    "iam:AttachRolePolicy",  "iam:AttachUserPolicy",      "iam:CreatePolicyVersion",
    "iam:SetDefaultPolicyVersion", "iam:CreateAccessKey", "iam:UpdateAssumeRolePolicy",
    "iam:CreateRole",        "sts:AssumeRole",            "lambda:UpdateFunctionCode",
    "lambda:CreateFunction",
};

/* Calls fn for every known action ("service:Name"); stops when it returns
 * false. */
static void each_action(bool (*fn)(const char *action, void *arg), void *arg)
{
    const char *const *p = ACTIONS;
    while (*p) {
        const char *svc = *p++;
        for (; *p; p++) {
            char a[160];
            snprintf(a, sizeof a, "%s:%s", svc, *p);
            if (!fn(a, arg))
                return;
        }
        p++;
    }
}

static bool service_known(const char *prefix, size_t n)
{
    const char *const *p = ACTIONS;
    while (*p) {
        if (strlen(*p) == n && !strncasecmp(*p, prefix, n))
            return true;
        p++;
        while (*p)
            p++;
        p++;
    }
    return false;
}

typedef struct count_arg {
    const char *pattern;
    int n;
} count_arg;

static bool count_one(const char *action, void *arg)
{
    count_arg *c = arg;
    c->n += kn_policy_glob(c->pattern, action, true);
    return true;
}

int kn_auth_actions_matching(const char *pattern)
{
    count_arg c = {pattern, 0};
    each_action(count_one, &c);
    return c.n;
}

bool kn_auth_action_known(const char *action)
{
    return !strchr(action, '*') && !strchr(action, '?') && kn_auth_actions_matching(action) == 1;
}

/* ---- findings -------------------------------------------------------------- */

typedef struct out {
    kn_lint_finding *f;
    size_t n, cap;
    bool oom;
} out;

static void add(out *o, const stmt *s, int si, kn_lint_level level, const char *code,
                const char *fmt, ...) KN_PRINTF(6, 7);

static void add(out *o, const stmt *s, int si, kn_lint_level level, const char *code,
                const char *fmt, ...)
{
    if (o->oom)
        return;
    if (o->n == o->cap) {
        size_t cap = o->cap ? 2 * o->cap : 8;
        kn_lint_finding *nf = realloc(o->f, cap * sizeof *nf);
        if (!nf) {
            o->oom = true;
            return;
        }
        o->f = nf;
        o->cap = cap;
    }
    kn_lint_finding *f = &o->f[o->n++];
    memset(f, 0, sizeof *f);
    f->level = level;
    f->statement = si;
    snprintf(f->sid, sizeof f->sid, "%s", s->sid);
    snprintf(f->code, sizeof f->code, "%s", code);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->message, sizeof f->message, fmt, ap);
    va_end(ap);
}

static void lint_action(out *o, const stmt *s, int si, const char *a)
{
    if (!strcmp(a, "*")) {
        if (!s->deny && !s->not_action)
            add(o, s, si, KN_LINT_WARNING, "WildcardAction",
                "Action \"*\" allows every action of every service");
        return;
    }
    const char *colon = strchr(a, ':');
    size_t plen = (size_t)(colon - a);
    if (!service_known(a, plen)) {
        add(o, s, si, KN_LINT_WARNING, "UnknownService",
            "service '%.*s' in '%s' is not one kennel knows; the statement has no effect here",
            (int)plen, a, a);
        return;
    }
    int n = kn_auth_actions_matching(a);
    bool wild = strchr(a, '*') || strchr(a, '?');
    if (n == 0)
        add(o, s, si, KN_LINT_ERROR, "UnknownAction",
            "'%s' matches no %.*s action (a typo %s nothing)", a, (int)plen, a,
            s->not_action ? "excludes" : s->deny ? "denies" : "grants");
    if (n == 0 || s->not_action) /* NotAction lists what is left out: no grants to judge */
        return;
    if (wild && !s->deny && !strcmp(colon + 1, "*"))
        add(o, s, si, KN_LINT_WARNING, "WildcardAction",
            "'%s' allows all %d %.*s actions", a, n, (int)plen, a);
    else if (wild && !s->deny && n > 1)
        add(o, s, si, KN_LINT_WARNING, "WildcardAction", "'%s' allows %d actions", a, n);
    /* Escalation is about what an identity may do; a trust or resource
     * policy names who may call (sts:AssumeRole there is the point). */
    if (s->deny || s->has_principal)
        return;
    for (size_t i = 0; i < sizeof ESCALATION / sizeof ESCALATION[0]; i++)
        if (kn_policy_glob(a, ESCALATION[i], true)) {
            bool any_resource = !s->has_resource || s->not_resource;
            for (int r = 0; r < s->resource.n && !any_resource; r++)
                any_resource = !strcmp(s->resource.v[r], "*");
            add(o, s, si, any_resource ? KN_LINT_ERROR : KN_LINT_WARNING,
                "PrivilegeEscalation",
                "%s%s can be used to gain further permissions%s", ESCALATION[i],
                strcmp(a, ESCALATION[i]) ? " (through a wildcard)" : "",
                any_resource ? ", and here on every resource" : "");
        }
}

kn_status kn_policy_lint(const char *json, size_t len, kn_policy_kind kind,
                         kn_lint_finding **findings, size_t *n, kn_err *e)
{
    *findings = NULL;
    *n = 0;
    kn_policy *p = NULL;
    kn_status rc = kn_policy_parse(json, len, kind, &p, e);
    if (rc)
        return rc;
    out o = {0};
    for (int si = 0; si < p->n; si++) {
        const stmt *s = &p->s[si];
        if (!s->deny && s->not_action)
            add(&o, s, si, KN_LINT_WARNING, "AllowNotAction",
                "Allow with NotAction allows every action not listed, including future ones");
        if (!s->deny && s->not_resource)
            add(&o, s, si, KN_LINT_WARNING, "AllowNotResource",
                "Allow with NotResource allows every resource not listed");
        for (int i = 0; i < s->action.n; i++)
            lint_action(&o, s, si, s->action.v[i]);
        if (!s->deny && !s->not_action && s->has_resource && !s->not_resource && s->nconds == 0)
            for (int i = 0; i < s->resource.n; i++)
                if (!strcmp(s->resource.v[i], "*")) {
                    add(&o, s, si, KN_LINT_WARNING, "WildcardResource",
                        "Resource \"*\" applies the statement to every resource; name the ARNs");
                    break;
                }
        bool public_ = s->principal_any;
        for (int i = 0; i < s->principal_aws.n && !public_; i++)
            public_ = !strcmp(s->principal_aws.v[i], "*"); /* {"AWS": "*"} is "*" too */
        if (!s->deny && s->has_principal && !s->not_principal && public_ && s->nconds == 0)
            add(&o, s, si, KN_LINT_ERROR, "PublicPrincipal",
                "Principal \"*\" without a condition lets anyone in");
    }
    kn_policy_free(p);
    if (o.oom) {
        free(o.f);
        return kn_err_set(e, KN_NOMEM, "lint: out of memory");
    }
    *findings = o.f;
    *n = o.n;
    return KN_OK;
}
