/* IAM policies: grammar errors name the problem; the reference project's
 * least-privilege role allows exactly its one endpoint; trust policies,
 * NotAction/NotResource, every condition operator family with IfExists and
 * the set qualifiers, policy variables and principals; and property tests —
 * the wildcard matcher against a plain recursive reference, an explicit deny
 * always wins, no statement means deny. */
#include "kennel/auth.h"
#include "kn_test.h"

#include <stdlib.h>
#include <string.h>

#define ACCT "123456789012"
#define EP(name) "arn:aws:sagemaker:us-east-1:" ACCT ":endpoint/" name

static kn_policy *parse(const char *json, kn_policy_kind kind)
{
    kn_policy *p = NULL;
    kn_err e = {0};
    kn_status rc = kn_policy_parse(json, strlen(json), kind, &p, &e);
    if (rc)
        fprintf(stderr, "parse: %s\n", e.msg);
    KN_CHECK_INT(rc, KN_OK);
    return p;
}

static kn_policy_effect eval1(const kn_policy *p, const char *action, const char *resource,
                              const kn_policy_key *keys, size_t nk)
{
    kn_policy_request r = {.action = action, .resource = resource,
                           .principal = "arn:aws:iam::" ACCT ":user/alice", .keys = keys,
                           .n_keys = nk};
    kn_policy_decision d;
    kn_policy_evaluate(&p, 1, &r, &d);
    return d.effect;
}

static void test_grammar_errors(void)
{
    static const struct {
        const char *doc;
        kn_policy_kind kind;
        const char *says;
    } bad[] = {
        {"{", KN_POLICY_IDENTITY, "not valid JSON"},
        {"[]", KN_POLICY_IDENTITY, "JSON object"},
        {"{\"Version\":\"2012-10-17\",\"Statment\":[]}", KN_POLICY_IDENTITY, "'Statment'"},
        {"{\"Version\":\"2013-01-01\",\"Statement\":[]}", KN_POLICY_IDENTITY, "Version"},
        {"{\"Version\":\"2012-10-17\"}", KN_POLICY_IDENTITY, "no Statement"},
        {"{\"Statement\":[]}", KN_POLICY_IDENTITY, "no Statement"},
        {"{\"Statement\":[1]}", KN_POLICY_IDENTITY, "Statement[0] must be an object"},
        {"{\"Statement\":{\"Effect\":\"Allow\",\"Action\":\"s3:*\",\"Resource\":\"*\",\"Foo\":1}}",
         KN_POLICY_IDENTITY, "unknown element 'Foo'"},
        {"{\"Statement\":{\"Sid\":\"a b\",\"Effect\":\"Allow\",\"Action\":\"s3:*\",\"Resource\":\"*\"}}",
         KN_POLICY_IDENTITY, "Sid"},
        {"{\"Statement\":{\"Effect\":\"allow\",\"Action\":\"s3:*\",\"Resource\":\"*\"}}",
         KN_POLICY_IDENTITY, "Effect"},
        {"{\"Statement\":{\"Effect\":\"Allow\",\"Resource\":\"*\"}}", KN_POLICY_IDENTITY,
         "exactly one of Action and NotAction"},
        {"{\"Statement\":{\"Effect\":\"Allow\",\"Action\":\"x\",\"NotAction\":\"y\",\"Resource\":\"*\"}}",
         KN_POLICY_IDENTITY, "exactly one of Action and NotAction"},
        {"{\"Statement\":{\"Effect\":\"Allow\",\"Action\":\"sagemaker\",\"Resource\":\"*\"}}",
         KN_POLICY_IDENTITY, "'service:Action'"},
        {"{\"Statement\":{\"Effect\":\"Allow\",\"Action\":\"sage maker:X\",\"Resource\":\"*\"}}",
         KN_POLICY_IDENTITY, "service prefix"},
        {"{\"Statement\":{\"Effect\":\"Allow\",\"Action\":\"s3:*\"}}", KN_POLICY_IDENTITY,
         "Resource or NotResource is required"},
        {"{\"Statement\":{\"Effect\":\"Allow\",\"Action\":\"s3:*\",\"Resource\":\"bucket\"}}",
         KN_POLICY_IDENTITY, "must be an ARN"},
        {"{\"Statement\":{\"Effect\":\"Allow\",\"Action\":[],\"Resource\":\"*\"}}",
         KN_POLICY_IDENTITY, "empty list"},
        {"{\"Statement\":{\"Effect\":\"Allow\",\"Action\":[\"s3:*\",7],\"Resource\":\"*\"}}",
         KN_POLICY_IDENTITY, "list of strings"},
        {"{\"Statement\":{\"Effect\":\"Allow\",\"Principal\":\"*\",\"Action\":\"s3:*\",\"Resource\":\"*\"}}",
         KN_POLICY_IDENTITY, "cannot name a Principal"},
        {"{\"Statement\":{\"Effect\":\"Allow\",\"Action\":\"sts:AssumeRole\"}}",
         KN_POLICY_RESOURCE, "Principal and NotPrincipal"},
        {"{\"Statement\":{\"Effect\":\"Allow\",\"Principal\":{\"Robot\":\"x\"},\"Action\":\"sts:AssumeRole\"}}",
         KN_POLICY_RESOURCE, "unknown type 'Robot'"},
        {"{\"Statement\":{\"Effect\":\"Allow\",\"Principal\":{\"AWS\":\"bob\"},\"Action\":\"sts:AssumeRole\"}}",
         KN_POLICY_RESOURCE, "Principal.AWS 'bob'"},
        {"{\"Statement\":{\"Effect\":\"Allow\",\"Action\":\"s3:*\",\"Resource\":\"*\",\"Condition\":{\"StringEqualz\":{\"a\":\"b\"}}}}",
         KN_POLICY_IDENTITY, "unknown condition operator 'StringEqualz'"},
        {"{\"Statement\":{\"Effect\":\"Allow\",\"Action\":\"s3:*\",\"Resource\":\"*\",\"Condition\":{\"NullIfExists\":{\"a\":\"true\"}}}}",
         KN_POLICY_IDENTITY, "NullIfExists"},
        {"{\"Statement\":{\"Effect\":\"Allow\",\"Action\":\"s3:*\",\"Resource\":\"*\",\"Condition\":{\"NumericLessThan\":{\"n\":\"ten\"}}}}",
         KN_POLICY_IDENTITY, "'ten' is not a valid value"},
        {"{\"Statement\":{\"Effect\":\"Allow\",\"Action\":\"s3:*\",\"Resource\":\"*\",\"Condition\":{\"DateLessThan\":{\"aws:CurrentTime\":\"2026-13-01\"}}}}",
         KN_POLICY_IDENTITY, "'2026-13-01'"},
        {"{\"Statement\":{\"Effect\":\"Allow\",\"Action\":\"s3:*\",\"Resource\":\"*\",\"Condition\":{\"IpAddress\":{\"aws:SourceIp\":\"10.0.0.0/33\"}}}}",
         KN_POLICY_IDENTITY, "'10.0.0.0/33'"},
        {"{\"Statement\":{\"Effect\":\"Allow\",\"Action\":\"s3:*\",\"Resource\":\"*\",\"Condition\":{\"Bool\":{\"aws:SecureTransport\":\"yes\"}}}}",
         KN_POLICY_IDENTITY, "'yes'"},
        {"{\"Statement\":{\"Effect\":\"Allow\",\"Action\":\"s3:*\",\"Effect\":\"Deny\",\"Resource\":\"*\"}}",
         KN_POLICY_IDENTITY, "not valid JSON"}, /* duplicate key */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        kn_policy *p = NULL;
        kn_err e = {0};
        kn_status rc = kn_policy_parse(bad[i].doc, strlen(bad[i].doc), bad[i].kind, &p, &e);
        KN_CHECK_INT(rc, KN_BAD_FORMAT);
        KN_CHECK(p == NULL);
        if (!strstr(e.msg, bad[i].says))
            fprintf(stderr, "case %zu: '%s' lacks '%s'\n", i, e.msg, bad[i].says);
        KN_CHECK(strstr(e.msg, bad[i].says) != NULL);
        KN_CHECK(strchr(e.msg, '\n') == NULL);
    }
    static char big[KN_POLICY_MAX_BYTES + 2];
    memset(big, ' ', sizeof big - 1);
    kn_policy *p = NULL;
    kn_err e = {0};
    KN_CHECK_INT(kn_policy_parse(big, sizeof big - 1, KN_POLICY_IDENTITY, &p, &e), KN_TOO_LARGE);
}

/* The reference project's role: InvokeEndpoint on dog-ep only, plus logs. */
static void test_least_privilege(void)
{
    kn_policy *p = parse(
        "{\"Version\":\"2012-10-17\",\"Statement\":[{\"Sid\":\"InvokeOneEndpoint\",\"Effect\":"
        "\"Allow\",\"Action\":\"sagemaker:InvokeEndpoint\",\"Resource\":\"" EP("dog-ep") "\"},"
        "{\"Effect\":\"Allow\",\"Action\":[\"logs:CreateLogGroup\",\"logs:CreateLogStream\","
        "\"logs:PutLogEvents\"],\"Resource\":\"arn:aws:logs:us-east-1:" ACCT
        ":log-group:/aws/lambda/dog-fn:*\"}]}",
        KN_POLICY_IDENTITY);
    KN_REQUIRE(p);
    KN_CHECK_INT(kn_policy_statements(p), 2);
    kn_policy_request r = {.action = "sagemaker:InvokeEndpoint", .resource = EP("dog-ep"),
                           .principal = "arn:aws:sts::" ACCT ":assumed-role/dog-fn-role/dog-fn"};
    kn_policy_decision d;
    kn_policy_evaluate((const kn_policy *const *)&p, 1, &r, &d);
    KN_CHECK_INT(d.effect, KN_POLICY_ALLOW);
    KN_CHECK_INT(d.statement, 0);
    KN_CHECK_STR(d.sid, "InvokeOneEndpoint");
    /* action names are case-insensitive, ARNs are not */
    r.action = "SageMaker:invokeendpoint";
    kn_policy_evaluate((const kn_policy *const *)&p, 1, &r, &d);
    KN_CHECK_INT(d.effect, KN_POLICY_ALLOW);
    r.resource = EP("Dog-ep");
    kn_policy_evaluate((const kn_policy *const *)&p, 1, &r, &d);
    KN_CHECK_INT(d.effect, KN_POLICY_IMPLICIT_DENY);
    r.resource = EP("other-ep");
    r.action = "sagemaker:InvokeEndpoint";
    kn_policy_evaluate((const kn_policy *const *)&p, 1, &r, &d);
    KN_CHECK_INT(d.effect, KN_POLICY_IMPLICIT_DENY);
    KN_CHECK_INT(d.policy, -1);
    char msg[512];
    kn_policy_denied_message(&r, &d, msg, sizeof msg);
    KN_CHECK_STR(msg, "User: arn:aws:sts::" ACCT ":assumed-role/dog-fn-role/dog-fn is not "
                      "authorized to perform: sagemaker:InvokeEndpoint on resource: " EP(
                          "other-ep") " because no identity-based policy allows the "
                                      "sagemaker:InvokeEndpoint action");
    KN_CHECK_INT(eval1(p, "sagemaker:DeleteEndpoint", EP("dog-ep"), NULL, 0),
                 KN_POLICY_IMPLICIT_DENY);
    KN_CHECK_INT(eval1(p, "logs:PutLogEvents",
                       "arn:aws:logs:us-east-1:" ACCT ":log-group:/aws/lambda/dog-fn:log-stream:x",
                       NULL, 0),
                 KN_POLICY_ALLOW);
    KN_CHECK_INT(eval1(p, "logs:PutLogEvents",
                       "arn:aws:logs:us-east-1:" ACCT ":log-group:/aws/lambda/cat-fn:log-stream:x",
                       NULL, 0),
                 KN_POLICY_IMPLICIT_DENY);
    kn_policy_free(p);
}

static void test_deny_and_not(void)
{
    kn_policy *allow = parse("{\"Statement\":{\"Effect\":\"Allow\",\"Action\":\"*\","
                             "\"Resource\":\"*\"}}",
                             KN_POLICY_IDENTITY);
    kn_policy *deny = parse("{\"Statement\":[{\"Sid\":\"NoDelete\",\"Effect\":\"Deny\",\"Action\":"
                            "\"sagemaker:Delete*\",\"Resource\":\"*\"}]}",
                            KN_POLICY_IDENTITY);
    const kn_policy *set[] = {allow, NULL, deny};
    kn_policy_request r = {.action = "sagemaker:DeleteEndpoint", .resource = EP("x"),
                           .principal = "arn:aws:iam::" ACCT ":user/bob"};
    kn_policy_decision d;
    kn_policy_evaluate(set, 3, &r, &d);
    KN_CHECK_INT(d.effect, KN_POLICY_EXPLICIT_DENY);
    KN_CHECK_INT(d.policy, 2);
    KN_CHECK_STR(d.sid, "NoDelete");
    char msg[512];
    kn_policy_denied_message(&r, &d, msg, sizeof msg);
    KN_CHECK_CONTAINS(msg, "with an explicit deny in an identity-based policy");
    r.action = "sagemaker:DescribeEndpoint";
    kn_policy_evaluate(set, 3, &r, &d);
    KN_CHECK_INT(d.effect, KN_POLICY_ALLOW);
    KN_CHECK_INT(d.policy, 0);
    kn_policy_free(allow);
    kn_policy_free(deny);

    /* NotAction + Allow: everything but iam; NotResource + Deny: deny all but one */
    kn_policy *p = parse("{\"Statement\":[{\"Effect\":\"Allow\",\"NotAction\":\"iam:*\","
                         "\"Resource\":\"*\"},{\"Effect\":\"Deny\",\"Action\":"
                         "\"sagemaker:InvokeEndpoint\",\"NotResource\":\"" EP("dog-ep") "\"}]}",
                         KN_POLICY_IDENTITY);
    KN_CHECK_INT(eval1(p, "iam:CreateUser", "*", NULL, 0), KN_POLICY_IMPLICIT_DENY);
    KN_CHECK_INT(eval1(p, "lambda:InvokeFunction", "*", NULL, 0), KN_POLICY_ALLOW);
    KN_CHECK_INT(eval1(p, "sagemaker:InvokeEndpoint", EP("dog-ep"), NULL, 0), KN_POLICY_ALLOW);
    KN_CHECK_INT(eval1(p, "sagemaker:InvokeEndpoint", EP("cat-ep"), NULL, 0),
                 KN_POLICY_EXPLICIT_DENY);
    kn_policy_free(p);
}

static void test_trust_and_principals(void)
{
    kn_policy *t = parse("{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\","
                         "\"Principal\":{\"Service\":\"lambda.amazonaws.com\"},\"Action\":"
                         "\"sts:AssumeRole\"}]}",
                         KN_POLICY_RESOURCE);
    kn_policy_request r = {.action = "sts:AssumeRole", .resource = "*",
                           .principal_service = "lambda.amazonaws.com"};
    kn_policy_decision d;
    kn_policy_evaluate((const kn_policy *const *)&t, 1, &r, &d);
    KN_CHECK_INT(d.effect, KN_POLICY_ALLOW);
    r.principal_service = "ec2.amazonaws.com";
    kn_policy_evaluate((const kn_policy *const *)&t, 1, &r, &d);
    KN_CHECK_INT(d.effect, KN_POLICY_IMPLICIT_DENY);
    r.principal_service = NULL;
    r.principal = "arn:aws:iam::" ACCT ":user/alice";
    kn_policy_evaluate((const kn_policy *const *)&t, 1, &r, &d);
    KN_CHECK_INT(d.effect, KN_POLICY_IMPLICIT_DENY);
    kn_policy_free(t);

    kn_policy *a = parse("{\"Statement\":[{\"Effect\":\"Allow\",\"Principal\":{\"AWS\":[\"" ACCT
                         "\"]},\"Action\":\"lambda:InvokeFunction\"},{\"Effect\":\"Allow\","
                         "\"Principal\":{\"AWS\":\"arn:aws:iam::999999999999:role/r\"},"
                         "\"Action\":\"lambda:GetFunction\"}]}",
                         KN_POLICY_RESOURCE);
    r = (kn_policy_request){.action = "lambda:InvokeFunction", .resource = "*",
                            .principal = "arn:aws:iam::" ACCT ":user/anyone"};
    kn_policy_evaluate((const kn_policy *const *)&a, 1, &r, &d);
    KN_CHECK_INT(d.effect, KN_POLICY_ALLOW);
    r.principal = "arn:aws:iam::111111111111:user/anyone";
    kn_policy_evaluate((const kn_policy *const *)&a, 1, &r, &d);
    KN_CHECK_INT(d.effect, KN_POLICY_IMPLICIT_DENY);
    /* an assumed-role session counts as its role */
    r.action = "lambda:GetFunction";
    r.principal = "arn:aws:sts::999999999999:assumed-role/r/session-1";
    kn_policy_evaluate((const kn_policy *const *)&a, 1, &r, &d);
    KN_CHECK_INT(d.effect, KN_POLICY_ALLOW);
    r.principal = "arn:aws:sts::999999999999:assumed-role/rr/session-1";
    kn_policy_evaluate((const kn_policy *const *)&a, 1, &r, &d);
    KN_CHECK_INT(d.effect, KN_POLICY_IMPLICIT_DENY);
    kn_policy_free(a);

    /* a role ARN with a path names that role's sessions (a session ARN has
     * the role's name without its path); not another role of that name's
     * suffix, not a role of another account, not an IAM user */
    kn_policy *pa = parse("{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\","
                          "\"Principal\":{\"AWS\":\"arn:aws:iam::" ACCT
                          ":role/service-role/dog\"},\"Action\":\"sts:AssumeRole\"}]}",
                          KN_POLICY_RESOURCE);
    r = (kn_policy_request){.action = "sts:AssumeRole", .resource = "*",
                            .principal = "arn:aws:sts::" ACCT ":assumed-role/dog/s1"};
    kn_policy_evaluate((const kn_policy *const *)&pa, 1, &r, &d);
    KN_CHECK_INT(d.effect, KN_POLICY_ALLOW);
    r.principal = "arn:aws:iam::" ACCT ":role/service-role/dog";
    kn_policy_evaluate((const kn_policy *const *)&pa, 1, &r, &d);
    KN_CHECK_INT(d.effect, KN_POLICY_ALLOW);
    const char *others[] = {"arn:aws:sts::" ACCT ":assumed-role/hotdog/s1",
                            "arn:aws:sts::" ACCT ":assumed-role/do/s1",
                            "arn:aws:sts::999999999999:assumed-role/dog/s1",
                            "arn:aws:iam::" ACCT ":user/dog",
                            "arn:aws:iam::" ACCT ":assumed-role/dog/s1"};
    for (size_t i = 0; i < sizeof others / sizeof others[0]; i++) {
        r.principal = others[i];
        kn_policy_evaluate((const kn_policy *const *)&pa, 1, &r, &d);
        KN_CHECK_INT(d.effect, KN_POLICY_IMPLICIT_DENY);
    }
    kn_policy_free(pa);
}

/* NotPrincipal + Deny: the caller is exempt only when every identity it is
 * — the account, the role and its session, or the service — is listed
 * (AWS's rule); naming the account does not exempt everyone in it. */
static void test_not_principal(void)
{
    kn_policy *p = parse(
        "{\"Statement\":[{\"Effect\":\"Allow\",\"Principal\":\"*\",\"Action\":\"lambda:*\"},"
        "{\"Sid\":\"OnlyBobAndRole\",\"Effect\":\"Deny\",\"NotPrincipal\":{\"AWS\":["
        "\"arn:aws:iam::" ACCT ":user/bob\",\"arn:aws:iam::" ACCT ":root\","
        "\"arn:aws:iam::" ACCT ":role/r\",\"arn:aws:sts::" ACCT ":assumed-role/r/s1\"],"
        "\"Service\":\"lambda.amazonaws.com\"},\"Action\":\"lambda:*\"}]}",
        KN_POLICY_RESOURCE);
    KN_REQUIRE(p);
    static const struct {
        const char *principal, *service;
        kn_policy_effect want;
    } cases[] = {
        {"arn:aws:iam::" ACCT ":user/bob", NULL, KN_POLICY_ALLOW},
        {"arn:aws:iam::" ACCT ":user/alice", NULL, KN_POLICY_EXPLICIT_DENY},
        {"arn:aws:iam::" ACCT ":root", NULL, KN_POLICY_ALLOW},
        {"arn:aws:iam::999999999999:user/bob", NULL, KN_POLICY_EXPLICIT_DENY},
        {"arn:aws:sts::" ACCT ":assumed-role/r/s1", NULL, KN_POLICY_ALLOW},
        {"arn:aws:sts::" ACCT ":assumed-role/r/s2", NULL, KN_POLICY_EXPLICIT_DENY},
        {NULL, "lambda.amazonaws.com", KN_POLICY_ALLOW},
        {NULL, "ec2.amazonaws.com", KN_POLICY_EXPLICIT_DENY},
        {NULL, NULL, KN_POLICY_EXPLICIT_DENY},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        kn_policy_request r = {.action = "lambda:InvokeFunction", .resource = "*",
                               .principal = cases[i].principal,
                               .principal_service = cases[i].service};
        kn_policy_decision d;
        kn_policy_evaluate((const kn_policy *const *)&p, 1, &r, &d);
        if (d.effect != cases[i].want)
            fprintf(stderr, "case %zu (%s %s): effect %d\n", i,
                    cases[i].principal ? cases[i].principal : "-",
                    cases[i].service ? cases[i].service : "-", (int)d.effect);
        KN_CHECK_INT(d.effect, cases[i].want);
    }
    kn_policy_free(p);
    /* without the account in the list, even bob is denied (AWS's example) */
    p = parse("{\"Statement\":[{\"Effect\":\"Allow\",\"Principal\":\"*\",\"Action\":\"lambda:*\"},"
              "{\"Effect\":\"Deny\",\"NotPrincipal\":{\"AWS\":\"arn:aws:iam::" ACCT
              ":user/bob\"},\"Action\":\"lambda:*\"}]}",
              KN_POLICY_RESOURCE);
    kn_policy_request r = {.action = "lambda:InvokeFunction", .resource = "*",
                           .principal = "arn:aws:iam::" ACCT ":user/bob"};
    kn_policy_decision d;
    kn_policy_evaluate((const kn_policy *const *)&p, 1, &r, &d);
    KN_CHECK_INT(d.effect, KN_POLICY_EXPLICIT_DENY);
    kn_policy_free(p);
    /* NotPrincipal "*" leaves nobody in */
    p = parse("{\"Statement\":[{\"Effect\":\"Allow\",\"NotPrincipal\":\"*\",\"Action\":\"lambda:*\"}]}",
              KN_POLICY_RESOURCE);
    kn_policy_evaluate((const kn_policy *const *)&p, 1, &r, &d);
    KN_CHECK_INT(d.effect, KN_POLICY_IMPLICIT_DENY);
    kn_policy_free(p);
}

static bool has_finding(const kn_lint_finding *f, size_t n, const char *code)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(f[i].code, code))
            return true;
    return false;
}

/* Principal {"AWS": "*"} is as public as Principal "*"; NotPrincipal "*"
 * is nobody. */
static void test_lint_public_principal(void)
{
    static const struct {
        const char *doc;
        bool public_;
    } cases[] = {
        {"{\"Statement\":{\"Effect\":\"Allow\",\"Principal\":\"*\",\"Action\":\"lambda:InvokeFunction\"}}",
         true},
        {"{\"Statement\":{\"Effect\":\"Allow\",\"Principal\":{\"AWS\":\"*\"},\"Action\":\"lambda:InvokeFunction\"}}",
         true},
        {"{\"Statement\":{\"Effect\":\"Allow\",\"Principal\":{\"AWS\":[\"" ACCT "\",\"*\"]},\"Action\":\"lambda:InvokeFunction\"}}",
         true},
        {"{\"Statement\":{\"Effect\":\"Allow\",\"Principal\":{\"AWS\":\"" ACCT "\"},\"Action\":\"lambda:InvokeFunction\"}}",
         false},
        {"{\"Statement\":{\"Effect\":\"Allow\",\"NotPrincipal\":\"*\",\"Action\":\"lambda:InvokeFunction\"}}",
         false},
        {"{\"Statement\":{\"Effect\":\"Allow\",\"Principal\":{\"AWS\":\"*\"},\"Action\":\"lambda:InvokeFunction\","
         "\"Condition\":{\"StringEquals\":{\"aws:SourceAccount\":\"" ACCT "\"}}}}",
         false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        kn_lint_finding *f = NULL;
        size_t n = 0;
        kn_err e = {0};
        KN_CHECK_INT(kn_policy_lint(cases[i].doc, strlen(cases[i].doc), KN_POLICY_RESOURCE, &f,
                                    &n, &e),
                     KN_OK);
        if (has_finding(f, n, "PublicPrincipal") != cases[i].public_)
            fprintf(stderr, "lint case %zu: PublicPrincipal %d\n", i, !cases[i].public_);
        KN_CHECK(has_finding(f, n, "PublicPrincipal") == cases[i].public_);
        free(f);
    }
}

#define COND_POLICY(ops)                                                                       \
    "{\"Version\":\"2012-10-17\",\"Statement\":{\"Effect\":\"Allow\",\"Action\":\"s3:*\","    \
    "\"Resource\":\"*\",\"Condition\":" ops "}}"

static kn_policy_effect with_key(const char *doc, const char *key, const char *const *vals,
                                 size_t nv)
{
    kn_policy *p = parse(doc, KN_POLICY_IDENTITY);
    if (!p)
        return (kn_policy_effect)-1;
    kn_policy_key k = {key, vals, nv};
    kn_policy_effect r = eval1(p, "s3:GetObject", "*", key ? &k : NULL, key ? 1 : 0);
    kn_policy_free(p);
    return r;
}

static void test_conditions(void)
{
    const kn_policy_effect A = KN_POLICY_ALLOW, N = KN_POLICY_IMPLICIT_DENY;
    const char *v_prod[] = {"prod"}, *v_dev[] = {"dev"}, *v_both[] = {"dev", "prod"};
    const char *eq = COND_POLICY("{\"StringEquals\":{\"aws:RequestTag/env\":[\"prod\",\"qa\"]}}");
    KN_CHECK_INT(with_key(eq, "aws:RequestTag/env", v_prod, 1), A);
    KN_CHECK_INT(with_key(eq, "AWS:requesttag/ENV", v_prod, 1), A); /* key names fold */
    KN_CHECK_INT(with_key(eq, "aws:RequestTag/env", v_dev, 1), N);
    KN_CHECK_INT(with_key(eq, NULL, NULL, 0), N); /* missing key fails */
    const char *ne = COND_POLICY("{\"StringNotEquals\":{\"k\":[\"prod\",\"qa\"]}}");
    KN_CHECK_INT(with_key(ne, "k", v_dev, 1), A);
    KN_CHECK_INT(with_key(ne, "k", v_prod, 1), N);
    KN_CHECK_INT(with_key(ne, NULL, NULL, 0), A); /* negated: missing passes */
    const char *ic = COND_POLICY("{\"StringEqualsIgnoreCase\":{\"k\":\"PROD\"}}");
    KN_CHECK_INT(with_key(ic, "k", v_prod, 1), A);
    const char *like = COND_POLICY("{\"StringLike\":{\"k\":\"p?o*\"}}");
    KN_CHECK_INT(with_key(like, "k", v_prod, 1), A);
    KN_CHECK_INT(with_key(like, "k", v_dev, 1), N);
    const char *ifx = COND_POLICY("{\"StringEqualsIfExists\":{\"k\":\"prod\"}}");
    KN_CHECK_INT(with_key(ifx, NULL, NULL, 0), A);
    KN_CHECK_INT(with_key(ifx, "k", v_dev, 1), N);
    /* set qualifiers */
    const char *any = COND_POLICY("{\"ForAnyValue:StringEquals\":{\"k\":\"prod\"}}");
    KN_CHECK_INT(with_key(any, "k", v_both, 2), A);
    KN_CHECK_INT(with_key(any, NULL, NULL, 0), N);
    const char *all = COND_POLICY("{\"ForAllValues:StringEquals\":{\"k\":[\"prod\",\"qa\"]}}");
    KN_CHECK_INT(with_key(all, "k", v_both, 2), N);
    KN_CHECK_INT(with_key(all, "k", v_prod, 1), A);
    KN_CHECK_INT(with_key(all, NULL, NULL, 0), A); /* true on the empty set */
    /* two operators / two keys AND */
    const char *and2 = COND_POLICY("{\"StringEquals\":{\"k\":\"prod\"},\"Null\":{\"j\":\"false\"}}");
    KN_CHECK_INT(with_key(and2, "k", v_prod, 1), N); /* j absent */
    const char *nul = COND_POLICY("{\"Null\":{\"k\":\"true\"}}");
    KN_CHECK_INT(with_key(nul, NULL, NULL, 0), A);
    KN_CHECK_INT(with_key(nul, "k", v_prod, 1), N);
    /* numbers: unquoted values are accepted */
    const char *v5[] = {"5"}, *v50[] = {"50"}, *vx[] = {"five"};
    const char *lt = COND_POLICY("{\"NumericLessThan\":{\"n\":10}}");
    KN_CHECK_INT(with_key(lt, "n", v5, 1), A);
    KN_CHECK_INT(with_key(lt, "n", v50, 1), N);
    KN_CHECK_INT(with_key(lt, "n", vx, 1), N);
    const char *nne = COND_POLICY("{\"NumericNotEquals\":{\"n\":\"5\"}}");
    KN_CHECK_INT(with_key(nne, "n", v50, 1), A);
    KN_CHECK_INT(with_key(nne, "n", v5, 1), N);
    /* dates: ISO 8601 and epoch on either side */
    const char *t1[] = {"2026-11-30T04:00:00Z"}, *t2[] = {"1830000000"};
    const char *before = COND_POLICY("{\"DateLessThan\":{\"aws:CurrentTime\":\"2027-01-01T00:00:00Z\"}}");
    KN_CHECK_INT(with_key(before, "aws:CurrentTime", t1, 1), A);
    KN_CHECK_INT(with_key(before, "aws:CurrentTime", t2, 1), N); /* 2027-12 */
    const char *offs = COND_POLICY("{\"DateGreaterThanEquals\":{\"t\":\"2026-11-30T05:00:00+01:00\"}}");
    KN_CHECK_INT(with_key(offs, "t", t1, 1), A); /* equal instants */
    /* Bool, Binary */
    const char *vt[] = {"true"}, *vf[] = {"false"};
    const char *bl = COND_POLICY("{\"Bool\":{\"aws:SecureTransport\":true}}");
    KN_CHECK_INT(with_key(bl, "aws:SecureTransport", vt, 1), A);
    KN_CHECK_INT(with_key(bl, "aws:SecureTransport", vf, 1), N);
    const char *vb[] = {"QmluYXJ5"};
    KN_CHECK_INT(with_key(COND_POLICY("{\"BinaryEquals\":{\"b\":\"QmluYXJ5\"}}"), "b", vb, 1), A);
    /* IP addresses */
    const char *ip_in[] = {"10.1.2.3"}, *ip_out[] = {"11.0.0.1"}, *ip6[] = {"2001:db8::7"};
    const char *ip = COND_POLICY("{\"IpAddress\":{\"aws:SourceIp\":[\"10.0.0.0/8\",\"2001:db8::/32\"]}}");
    KN_CHECK_INT(with_key(ip, "aws:SourceIp", ip_in, 1), A);
    KN_CHECK_INT(with_key(ip, "aws:SourceIp", ip_out, 1), N);
    KN_CHECK_INT(with_key(ip, "aws:SourceIp", ip6, 1), A);
    const char *nip = COND_POLICY("{\"NotIpAddress\":{\"aws:SourceIp\":\"127.0.0.1/32\"}}");
    KN_CHECK_INT(with_key(nip, "aws:SourceIp", ip_in, 1), A);
    const char *lo[] = {"127.0.0.1"};
    KN_CHECK_INT(with_key(nip, "aws:SourceIp", lo, 1), N);
    /* ARNs */
    const char *role[] = {"arn:aws:iam::" ACCT ":role/service/dog-fn-role"};
    const char *arn = COND_POLICY("{\"ArnLike\":{\"aws:SourceArn\":\"arn:aws:iam::*:role/*\"}}");
    KN_CHECK_INT(with_key(arn, "aws:SourceArn", role, 1), A);
    const char *arn2 = COND_POLICY("{\"ArnNotEquals\":{\"aws:SourceArn\":\"arn:aws:iam::*:user/*\"}}");
    KN_CHECK_INT(with_key(arn2, "aws:SourceArn", role, 1), A);
}

static void test_variables(void)
{
    const char *doc =
        "{\"Version\":\"2012-10-17\",\"Statement\":{\"Effect\":\"Allow\",\"Action\":"
        "\"iam:CreateAccessKey\",\"Resource\":\"arn:aws:iam::" ACCT ":user/${aws:username}\"}}";
    kn_policy *p = parse(doc, KN_POLICY_IDENTITY);
    const char *alice[] = {"alice"};
    kn_policy_key k = {"aws:username", alice, 1};
    KN_CHECK_INT(eval1(p, "iam:CreateAccessKey", "arn:aws:iam::" ACCT ":user/alice", &k, 1),
                 KN_POLICY_ALLOW);
    KN_CHECK_INT(eval1(p, "iam:CreateAccessKey", "arn:aws:iam::" ACCT ":user/bob", &k, 1),
                 KN_POLICY_IMPLICIT_DENY);
    KN_CHECK_INT(eval1(p, "iam:CreateAccessKey", "arn:aws:iam::" ACCT ":user/alice", NULL, 0),
                 KN_POLICY_IMPLICIT_DENY); /* variable without a value matches nothing */
    kn_policy_free(p);
    /* 2008-10-17: no variables, the text is literal */
    const char *old =
        "{\"Version\":\"2008-10-17\",\"Statement\":{\"Effect\":\"Allow\",\"Action\":"
        "\"iam:CreateAccessKey\",\"Resource\":\"arn:aws:iam::" ACCT ":user/${aws:username}\"}}";
    p = parse(old, KN_POLICY_IDENTITY);
    KN_CHECK_INT(eval1(p, "iam:CreateAccessKey", "arn:aws:iam::" ACCT ":user/alice", &k, 1),
                 KN_POLICY_IMPLICIT_DENY);
    KN_CHECK_INT(eval1(p, "iam:CreateAccessKey", "arn:aws:iam::" ACCT ":user/${aws:username}",
                       &k, 1),
                 KN_POLICY_ALLOW);
    kn_policy_free(p);
}

/* ${*} ${?} ${$} stand for the characters themselves, and a value put in
 * by a variable is text: neither becomes a wildcard. */
static void test_variable_literals(void)
{
    kn_policy *p = parse(
        "{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\",\"Action\":"
        "\"s3:GetObject\",\"Resource\":[\"arn:aws:s3:::b/star-${*}\",\"arn:aws:s3:::b/q-${?}\","
        "\"arn:aws:s3:::b/home/${aws:username}/*\"]},{\"Effect\":\"Allow\",\"Action\":"
        "\"s3:ListBucket\",\"Resource\":\"*\",\"Condition\":{\"StringLike\":{\"s3:prefix\":"
        "\"home/${aws:username}/*\"},\"StringEquals\":{\"s3:delimiter\":\"${aws:username}\"}}}]}",
        KN_POLICY_IDENTITY);
    KN_REQUIRE(p);
    const char *star_user[] = {"a*"}, *pfx_ok[] = {"home/a*/x"}, *pfx_bad[] = {"home/abc/x"};
    kn_policy_key k[3] = {{"aws:username", star_user, 1}, {"s3:prefix", pfx_ok, 1},
                          {"s3:delimiter", star_user, 1}};
    KN_CHECK_INT(eval1(p, "s3:GetObject", "arn:aws:s3:::b/star-*", k, 1), KN_POLICY_ALLOW);
    KN_CHECK_INT(eval1(p, "s3:GetObject", "arn:aws:s3:::b/star-anything", k, 1),
                 KN_POLICY_IMPLICIT_DENY);
    KN_CHECK_INT(eval1(p, "s3:GetObject", "arn:aws:s3:::b/q-?", k, 1), KN_POLICY_ALLOW);
    KN_CHECK_INT(eval1(p, "s3:GetObject", "arn:aws:s3:::b/q-x", k, 1), KN_POLICY_IMPLICIT_DENY);
    KN_CHECK_INT(eval1(p, "s3:GetObject", "arn:aws:s3:::b/home/a*/f", k, 1), KN_POLICY_ALLOW);
    KN_CHECK_INT(eval1(p, "s3:GetObject", "arn:aws:s3:::b/home/abc/f", k, 1),
                 KN_POLICY_IMPLICIT_DENY);
    /* in conditions: StringLike keeps the policy's own '*', the value's is
     * literal; StringEquals compares the value as it is */
    KN_CHECK_INT(eval1(p, "s3:ListBucket", "*", k, 3), KN_POLICY_ALLOW);
    k[1].values = pfx_bad;
    KN_CHECK_INT(eval1(p, "s3:ListBucket", "*", k, 3), KN_POLICY_IMPLICIT_DENY);
    kn_policy_free(p);
}

/* ${key, 'default'}: the default stands in when the key is absent. */
static void test_variable_defaults(void)
{
    kn_policy *p = parse(
        "{\"Version\":\"2012-10-17\",\"Statement\":{\"Effect\":\"Allow\",\"Action\":"
        "\"s3:GetObject\",\"Resource\":\"arn:aws:s3:::b/${aws:PrincipalTag/team , 'shared*'}/*\"}}",
        KN_POLICY_IDENTITY);
    KN_REQUIRE(p);
    KN_CHECK_INT(eval1(p, "s3:GetObject", "arn:aws:s3:::b/shared*/x", NULL, 0), KN_POLICY_ALLOW);
    KN_CHECK_INT(eval1(p, "s3:GetObject", "arn:aws:s3:::b/shared-2/x", NULL, 0),
                 KN_POLICY_IMPLICIT_DENY); /* the default is text too */
    const char *ml[] = {"ml"};
    kn_policy_key k = {"aws:PrincipalTag/team", ml, 1};
    KN_CHECK_INT(eval1(p, "s3:GetObject", "arn:aws:s3:::b/ml/x", &k, 1), KN_POLICY_ALLOW);
    KN_CHECK_INT(eval1(p, "s3:GetObject", "arn:aws:s3:::b/shared*/x", &k, 1),
                 KN_POLICY_IMPLICIT_DENY);
    kn_policy_free(p);
}

/* Strict UTF-8 (what JSON encoders such as jansson accept). */
static bool valid_utf8(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        int n = *p < 0x80 ? 0 : *p >= 0xc2 && *p <= 0xdf ? 1 : *p >= 0xe0 && *p <= 0xef ? 2
                : *p >= 0xf0 && *p <= 0xf4 ? 3 : -1;
        if (n < 0)
            return false;
        unsigned lo = *p == 0xe0 ? 0xa0 : *p == 0xf0 ? 0x90 : 0x80;
        unsigned hi = *p == 0xed ? 0x9f : *p == 0xf4 ? 0x8f : 0xbf;
        for (int i = 1; i <= n; i++)
            if (p[i] < (i == 1 ? lo : 0x80) || p[i] > (i == 1 ? hi : 0xbf))
                return false;
        p += n + 1;
    }
    return true;
}

/* A message cut inside a multi-byte character would be invalid UTF-8,
 * which JSON error bodies cannot carry (the message would vanish). */
static void test_message_utf8(void)
{
    char doc[1024], act[400] = "s3:";
    for (int i = 0; i < 100; i++)
        strcat(act, "\xc3\xa9"); /* e-acute, two bytes each */
    for (int shift = 0; shift < 2; shift++) {
        snprintf(doc, sizeof doc,
                 "{\"Statement\":{\"Effect\":\"Allow\",\"Action\":\"%s%s\",\"Resource\":\"*\"}}",
                 shift ? "x" : "", act);
        kn_policy *p = NULL;
        kn_err e = {0};
        KN_CHECK_INT(kn_policy_parse(doc, strlen(doc), KN_POLICY_IDENTITY, &p, &e), KN_BAD_FORMAT);
        if (!valid_utf8(e.msg))
            fprintf(stderr, "not UTF-8: %s\n", e.msg);
        KN_CHECK(valid_utf8(e.msg));
    }
}

/* The AccessDenied message quotes the request: one printable line. */
static void test_denied_message_one_line(void)
{
    kn_policy_request r = {.action = "sagemaker:Invoke\nEndpoint",
                           .resource = EP("dog\r\nX-Injected: 1"),
                           .principal = "arn:aws:iam::" ACCT ":user/a\tb\x1b[31m"};
    kn_policy_decision d;
    kn_policy_evaluate(NULL, 0, &r, &d);
    char msg[512];
    kn_policy_denied_message(&r, &d, msg, sizeof msg);
    KN_CHECK_CONTAINS(msg, "is not authorized to perform");
    for (const char *c = msg; *c; c++)
        KN_CHECK((unsigned char)*c >= 0x20 && *c != 0x7f);
    r.resource = EP("dog\xc3(\xff\xe2\x82"); /* bytes a decoded path may hold */
    kn_policy_denied_message(&r, &d, msg, sizeof msg);
    KN_CHECK(valid_utf8(msg));
    KN_CHECK_CONTAINS(msg, "endpoint/dog?(??");
}

/* ---- properties ------------------------------------------------------------ */

static bool ref_glob(const char *p, const char *t, bool fold)
{
    if (!*p)
        return !*t;
    if (*p == '*')
        return ref_glob(p + 1, t, fold) || (*t && ref_glob(p, t + 1, fold));
    if (!*t)
        return false;
    bool same = *p == '?' || *p == *t ||
                (fold && (*p | 32) == (*t | 32) && ((*p | 32) >= 'a' && (*p | 32) <= 'z'));
    return same && ref_glob(p + 1, t + 1, fold);
}

static void rand_str(kn_rng *r, char *out, int max, const char *alpha)
{
    int n = (int)(kn_rng_next(r) % (uint64_t)(max + 1));
    size_t na = strlen(alpha);
    for (int i = 0; i < n; i++)
        out[i] = alpha[kn_rng_next(r) % na];
    out[n] = 0;
}

static void test_glob_property(void)
{
    kn_rng r;
    kn_rng_seed(&r, 42);
    int matches = 0;
    for (int i = 0; i < 200000; i++) {
        char p[12], t[12];
        rand_str(&r, p, 8, "aAb*?");
        rand_str(&r, t, 8, "aAb");
        bool fold = i & 1;
        bool got = kn_policy_glob(p, t, fold), want = ref_glob(p, t, fold);
        if (got != want)
            fprintf(stderr, "glob('%s', '%s', fold %d): %d, reference %d\n", p, t, fold, got,
                    want);
        KN_CHECK(got == want);
        matches += want;
        if (got != want)
            break;
    }
    KN_CHECK(matches > 10000); /* the test exercised both outcomes */
}

/* Random policy sets over a small vocabulary: adding a matching Deny makes
 * any decision EXPLICIT_DENY; an empty set denies; without a Deny, adding
 * Allow * makes it ALLOW. */
static void test_deny_wins_property(void)
{
    static const char *const acts[] = {"sagemaker:InvokeEndpoint", "sagemaker:*",
                                       "lambda:Invoke*", "*", "sagemaker:Describe?ndpoint"};
    static const char *const res[] = {EP("dog-ep"), EP("*"), "*", EP("d?g-ep"),
                                      "arn:aws:lambda:*:*:function:f"};
    kn_rng r;
    kn_rng_seed(&r, 7);
    kn_policy_request q = {.action = "sagemaker:InvokeEndpoint", .resource = EP("dog-ep"),
                           .principal = "arn:aws:iam::" ACCT ":user/u"};
    kn_policy_decision d;
    kn_policy_evaluate(NULL, 0, &q, &d);
    KN_CHECK_INT(d.effect, KN_POLICY_IMPLICIT_DENY);
    int seen[3] = {0};
    for (int iter = 0; iter < 300; iter++) {
        kn_policy *set[5] = {0};
        int n = 1 + (int)(kn_rng_next(&r) % 3);
        bool any_deny = false;
        for (int i = 0; i < n; i++) {
            char doc[2048];
            size_t o = (size_t)snprintf(doc, sizeof doc, "{\"Statement\":[");
            int ns = 1 + (int)(kn_rng_next(&r) % 3);
            for (int j = 0; j < ns; j++) {
                bool deny = kn_rng_next(&r) % 4 == 0;
                any_deny |= deny;
                o += (size_t)snprintf(doc + o, sizeof doc - o,
                                      "%s{\"Effect\":\"%s\",\"%s\":\"%s\",\"Resource\":\"%s\"}",
                                      j ? "," : "", deny ? "Deny" : "Allow",
                                      kn_rng_next(&r) % 5 ? "Action" : "NotAction",
                                      acts[kn_rng_next(&r) % 5], res[kn_rng_next(&r) % 5]);
            }
            snprintf(doc + o, sizeof doc - o, "]}");
            set[i] = parse(doc, KN_POLICY_IDENTITY);
        }
        kn_policy_evaluate((const kn_policy *const *)set, (size_t)n, &q, &d);
        seen[d.effect]++;
        if (d.effect == KN_POLICY_EXPLICIT_DENY)
            KN_CHECK(any_deny);
        if (d.effect != KN_POLICY_IMPLICIT_DENY) { /* the deciding statement is real */
            KN_CHECK(d.policy >= 0 && d.policy < n);
            KN_CHECK(d.statement >= 0 && d.statement < kn_policy_statements(set[d.policy]));
        }
        /* add Allow *: only an explicit deny can keep it from ALLOW */
        set[n] = parse("{\"Statement\":{\"Effect\":\"Allow\",\"Action\":\"*\",\"Resource\":\"*\"}}",
                       KN_POLICY_IDENTITY);
        kn_policy_decision d2;
        kn_policy_evaluate((const kn_policy *const *)set, (size_t)n + 1, &q, &d2);
        KN_CHECK_INT(d2.effect, d.effect == KN_POLICY_EXPLICIT_DENY ? KN_POLICY_EXPLICIT_DENY
                                                                    : KN_POLICY_ALLOW);
        /* add a matching Deny anywhere: always EXPLICIT_DENY */
        set[n + 1] = parse("{\"Statement\":{\"Effect\":\"Deny\",\"Action\":\"sagemaker:Invoke*\","
                           "\"Resource\":\"" EP("*") "\"}}",
                           KN_POLICY_IDENTITY);
        kn_policy *tmp = set[0];
        set[0] = set[n + 1];
        set[n + 1] = tmp; /* the deny first, to show order does not matter */
        kn_policy_evaluate((const kn_policy *const *)set, (size_t)n + 2, &q, &d2);
        KN_CHECK_INT(d2.effect, KN_POLICY_EXPLICIT_DENY);
        for (int i = 0; i < n + 2; i++)
            kn_policy_free(set[i]);
    }
    KN_CHECK(seen[0] > 0 && seen[1] > 0 && seen[2] > 0);
}

int main(void)
{
    KN_RUN(test_grammar_errors);
    KN_RUN(test_least_privilege);
    KN_RUN(test_deny_and_not);
    KN_RUN(test_trust_and_principals);
    KN_RUN(test_not_principal);
    KN_RUN(test_lint_public_principal);
    KN_RUN(test_conditions);
    KN_RUN(test_variables);
    KN_RUN(test_variable_literals);
    KN_RUN(test_variable_defaults);
    KN_RUN(test_denied_message_one_line);
    KN_RUN(test_message_utf8);
    KN_RUN(test_glob_property);
    KN_RUN(test_deny_wins_property);
    return kn_test_finish();
}
