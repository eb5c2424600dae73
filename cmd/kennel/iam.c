/* kennel iam: policy tools that need no server.
 *
 *   kennel iam lint [--trust] [--json] POLICY.json...
 *       parses each policy and prints its findings, one line each:
 *       FILE: Statement[i] (Sid): LEVEL Code: message
 *       Exit 0 when there is nothing to report, 1 when there are findings,
 *       2 for bad usage or a policy that does not parse (printed as
 *       MalformedPolicyDocument with the reason).
 *   kennel iam simulate --policy FILE [--policy FILE]... --action ACTION
 *                       [--resource ARN] [--principal ARN] [--service NAME]
 *                       [--context KEY=VALUE]... [--trust]
 *       evaluates one request against the policies as the server would and
 *       prints the decision with the statement that decided it (or AWS's
 *       AccessDenied message). Exit 0 allowed, 1 denied, 2 bad usage.
 *   kennel iam suggest --role R --since T
 *       the smallest policy for what the role did, from the audit log
 *       (audit.c). */
#include "cli.h"

#include "kennel/auth.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_POLICIES 32
#define MAX_CONTEXT 32

static void usage(FILE *f)
{
    fprintf(f,
            "usage: kennel iam lint [--trust] [--json] POLICY.json...\n"
            "       kennel iam simulate --policy FILE... --action ACTION [--resource ARN]\n"
            "                           [--principal ARN] [--service NAME]\n"
            "                           [--context KEY=VALUE]... [--trust]\n"
            "       kennel iam suggest --role R [--since T] [--data-dir D] [--out FILE]\n"
            "\n"
            "lint: report wildcard actions and resources, Allow with NotAction or\n"
            "  NotResource, privilege-escalation actions (iam:PassRole, iam:Put*Policy,\n"
            "  ...), unknown actions (typos grant nothing), unknown services and\n"
            "  Principal \"*\". Exit 0 clean, 1 findings, 2 malformed or unreadable.\n"
            "suggest: the smallest policy allowing what role R's sessions did since T,\n"
            "  from the daemon's audit log (kennel iam suggest --help).\n"
            "  --trust       the files are trust (resource) policies: Principal required\n"
            "  --json        one JSON object per finding instead of text lines\n"
            "\n"
            "simulate: evaluate one request against the policies: explicit deny, then\n"
            "  allow, else implicit deny, naming the deciding statement.\n"
            "  Exit 0 allowed, 1 denied.\n"
            "  --policy FILE     a policy that applies (repeat for several)\n"
            "  --action A        service:Action, e.g. sagemaker:InvokeEndpoint\n"
            "  --resource ARN    the resource (default \"*\")\n"
            "  --principal ARN   the caller (default arn:aws:iam::123456789012:user/you)\n"
            "  --service NAME    a calling service (lambda.amazonaws.com), for trust policies\n"
            "  --context K=V     a condition key (aws:SourceIp=10.0.0.1); repeat a key for\n"
            "                    several values\n");
}

static char *read_text(const char *path, size_t *len)
{
    kn_buf b;
    kn_err e = {0};
    kn_buf_init(&b, KN_POLICY_MAX_BYTES);
    if (kn_file_read(path, &b, &e) != KN_OK) {
        fprintf(stderr, "kennel iam: %s\n", e.msg);
        kn_buf_deinit(&b);
        return NULL;
    }
    return (char *)kn_buf_take(&b, len);
}

static void json_str(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c < 0x20)
            printf("\\u%04x", c);
        else
            putchar(c);
    }
    putchar('"');
}

static int cmd_lint(int argc, char **argv)
{
    bool trust = false, json = false;
    static const struct option opts[] = {{"trust", no_argument, NULL, 't'},
                                         {"json", no_argument, NULL, 'j'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 't')
            trust = true;
        else if (c == 'j')
            json = true;
        else if (c == 'h') {
            usage(stdout);
            return 0;
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (optind >= argc) {
        fprintf(stderr, "kennel iam lint: no policy file given\n");
        return 2;
    }
    int rc = 0;
    size_t total = 0;
    for (int i = optind; i < argc; i++) {
        size_t len;
        char *text = read_text(argv[i], &len);
        if (!text) {
            rc = 2;
            continue;
        }
        kn_lint_finding *f = NULL;
        size_t n = 0;
        kn_err e = {0};
        if (kn_policy_lint(text, len, trust ? KN_POLICY_RESOURCE : KN_POLICY_IDENTITY, &f, &n,
                           &e) != KN_OK) {
            fprintf(stderr, "%s: MalformedPolicyDocument: %s\n", argv[i], e.msg);
            rc = 2;
        }
        for (size_t k = 0; k < n; k++) {
            const char *lvl = f[k].level == KN_LINT_ERROR ? "error" : "warning";
            if (json) {
                printf("{\"file\":");
                json_str(argv[i]);
                printf(",\"statement\":%d,\"sid\":", f[k].statement);
                json_str(f[k].sid);
                printf(",\"level\":\"%s\",\"code\":", lvl);
                json_str(f[k].code);
                printf(",\"message\":");
                json_str(f[k].message);
                printf("}\n");
            } else {
                printf("%s: Statement[%d]%s%s%s: %s %s: %s\n", argv[i], f[k].statement,
                       f[k].sid[0] ? " (" : "", f[k].sid, f[k].sid[0] ? ")" : "", lvl,
                       f[k].code, f[k].message);
            }
        }
        total += n;
        if (n && rc == 0)
            rc = 1;
        free(f);
        free(text);
    }
    if (!json)
        fprintf(stderr, "kennel iam lint: %zu finding%s in %d file%s\n", total,
                total == 1 ? "" : "s", argc - optind, argc - optind == 1 ? "" : "s");
    return rc;
}

static int cmd_simulate(int argc, char **argv)
{
    const char *paths[MAX_POLICIES];
    int np = 0;
    kn_policy_request r = {.resource = "*", .principal = "arn:aws:iam::123456789012:user/you"};
    bool trust = false;
    char *ctx_names[MAX_CONTEXT];
    const char *ctx_vals[MAX_CONTEXT][MAX_CONTEXT];
    kn_policy_key keys[MAX_CONTEXT];
    int nk = 0;
    static const struct option opts[] = {
        {"policy", required_argument, NULL, 'p'},    {"action", required_argument, NULL, 'a'},
        {"resource", required_argument, NULL, 'r'},  {"principal", required_argument, NULL, 'P'},
        {"service", required_argument, NULL, 's'},   {"context", required_argument, NULL, 'c'},
        {"trust", no_argument, NULL, 't'},           {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    int c, rc = 2;
    kn_policy *ps[MAX_POLICIES] = {0};
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'p':
            if (np == MAX_POLICIES) {
                fprintf(stderr, "kennel iam simulate: at most %d policies\n", MAX_POLICIES);
                goto out;
            }
            paths[np++] = optarg;
            break;
        case 'a':
            r.action = optarg;
            break;
        case 'r':
            r.resource = optarg;
            break;
        case 'P':
            r.principal = optarg;
            break;
        case 's':
            r.principal_service = optarg;
            break;
        case 't':
            trust = true;
            break;
        case 'c': {
            char *eq = strchr(optarg, '=');
            if (!eq || eq == optarg) {
                fprintf(stderr, "kennel iam simulate: --context '%s' is not KEY=VALUE\n", optarg);
                goto out;
            }
            *eq = 0;
            int k = 0;
            while (k < nk && strcmp(ctx_names[k], optarg))
                k++;
            if (k == nk) {
                if (nk == MAX_CONTEXT) {
                    fprintf(stderr, "kennel iam simulate: at most %d context keys\n",
                            MAX_CONTEXT);
                    goto out;
                }
                ctx_names[nk] = optarg;
                keys[nk] = (kn_policy_key){optarg, ctx_vals[nk], 0};
                nk++;
            }
            if (keys[k].n_values == MAX_CONTEXT) {
                fprintf(stderr, "kennel iam simulate: too many values for %s\n", optarg);
                goto out;
            }
            ctx_vals[k][keys[k].n_values++] = eq + 1;
            break;
        }
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            goto out;
        }
    }
    if (!np || !r.action || optind != argc) {
        fprintf(stderr, "kennel iam simulate: --policy and --action are required%s\n",
                optind != argc ? " (and no other arguments)" : "");
        goto out;
    }
    r.keys = keys;
    r.n_keys = (size_t)nk;
    for (int i = 0; i < np; i++) {
        size_t len;
        char *text = read_text(paths[i], &len);
        if (!text)
            goto out;
        kn_err e = {0};
        kn_status st = kn_policy_parse(text, len, trust ? KN_POLICY_RESOURCE : KN_POLICY_IDENTITY,
                                       &ps[i], &e);
        free(text);
        if (st) {
            fprintf(stderr, "%s: MalformedPolicyDocument: %s\n", paths[i], e.msg);
            goto out;
        }
    }
    kn_policy_decision d;
    kn_policy_evaluate((const kn_policy *const *)ps, (size_t)np, &r, &d);
    if (d.effect == KN_POLICY_ALLOW) {
        printf("allowed: %s on %s, by %s Statement[%d]%s%s%s\n", r.action, r.resource,
               paths[d.policy], d.statement, d.sid[0] ? " (" : "", d.sid, d.sid[0] ? ")" : "");
        rc = 0;
    } else {
        char msg[1024];
        kn_policy_denied_message(&r, &d, msg, sizeof msg);
        if (d.effect == KN_POLICY_EXPLICIT_DENY)
            printf("denied: explicit deny in %s Statement[%d]%s%s%s\n", paths[d.policy],
                   d.statement, d.sid[0] ? " (" : "", d.sid, d.sid[0] ? ")" : "");
        else
            printf("denied: no statement allows it (implicit deny)\n");
        printf("AccessDenied: %s\n", msg);
        rc = 1;
    }
out:
    for (int i = 0; i < np; i++)
        kn_policy_free(ps[i]);
    return rc;
}

int kn_cli_iam(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
        !strcmp(argv[1], "help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "lint"))
        return cmd_lint(argc - 1, argv + 1);
    if (!strcmp(argv[1], "simulate"))
        return cmd_simulate(argc - 1, argv + 1);
    if (!strcmp(argv[1], "suggest"))
        return kn_cli_iam_suggest(argc - 1, argv + 1);
    fprintf(stderr, "kennel iam: unknown subcommand '%s' (lint, simulate or suggest)\n",
            argv[1]);
    return 2;
}
