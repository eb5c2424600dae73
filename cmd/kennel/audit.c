/* kennel audit and kennel iam suggest: the daemon's audit log, read
 * straight from its data directory (read-only; the daemon may be running).
 *
 *   kennel audit [--data-dir D] [--since T] [--principal P] [--action A]
 *                [--limit N] [--json]
 *       one line per API call, oldest first: time, principal, action,
 *       resource, source address, decision, deciding statement, error.
 *   kennel iam suggest --role R [--since T] [--data-dir D]
 *                      [--include-denied] [--out FILE]
 *       the smallest identity policy that allows exactly what sessions of
 *       role R did (actions on the resources they touched; actions that
 *       share their resources share a statement).
 *
 * T is ISO 8601 (2026-11-30T07:00:00Z), epoch seconds, or an age such as
 * 90s, 15m, 2h, 7d. The data dir defaults to $KENNEL_DATA_DIR, else
 * $XDG_DATA_HOME/kennel or ~/.local/share/kennel. */
#include "cli.h"

#include "kennel/platform.h"

#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static bool parse_since(const char *s, double *out)
{
    char *end;
    double v = strtod(s, &end);
    if (end != s && *end == 0) {
        *out = v;
        return true;
    }
    if (end != s && end[1] == 0 && v >= 0) {
        double unit = end[0] == 's' ? 1 : end[0] == 'm' ? 60 : end[0] == 'h' ? 3600
                      : end[0] == 'd' ? 86400 : 0;
        if (unit > 0) {
            *out = (double)time(NULL) - v * unit;
            return true;
        }
    }
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *rest = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!rest)
        rest = strptime(s, "%Y-%m-%d", &tm);
    if (!rest || (*rest && strcmp(rest, "Z") != 0))
        return false;
    *out = (double)timegm(&tm);
    return true;
}

static const char *data_dir(const char *given, char *buf, size_t n)
{
    if (given)
        return given;
    const char *d = getenv("KENNEL_DATA_DIR"), *xdg = getenv("XDG_DATA_HOME"),
               *home = getenv("HOME");
    if (d && *d)
        return d;
    if (xdg && xdg[0] == '/')
        snprintf(buf, n, "%s/kennel", xdg);
    else
        snprintf(buf, n, "%s/.local/share/kennel", home ? home : "");
    return buf;
}

typedef struct print_ctx {
    bool json;
} print_ctx;

static kn_status print_row(const kn_audit_rec *r, void *ud)
{
    print_ctx *p = ud;
    char t[40];
    time_t s = (time_t)r->time;
    struct tm tm;
    gmtime_r(&s, &tm);
    strftime(t, sizeof t, "%Y-%m-%dT%H:%M:%SZ", &tm);
    if (p->json) {
        json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "time", t,
                              "principal", r->principal, "action", r->action, "resource",
                              r->resource, "source", r->source, "decision", r->decision,
                              "statement", r->statement, "requestId", r->request_id,
                              "errorCode", r->error_code);
        char *text = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
        if (text)
            printf("%s\n", text);
        free(text);
        json_decref(o);
    } else {
        printf("%s  %-12s %s %s %s %s%s%s%s%s\n", t, r->decision,
               r->principal[0] ? r->principal : "-", r->action, r->resource,
               r->source[0] ? r->source : "-", r->statement[0] ? "  by " : "", r->statement,
               r->error_code[0] ? "  -> " : "", r->error_code);
    }
    return KN_OK;
}

int kn_cli_audit(int argc, char **argv)
{
    static const struct option opts[] = {
        {"data-dir", required_argument, NULL, 'd'}, {"since", required_argument, NULL, 's'},
        {"principal", required_argument, NULL, 'p'}, {"action", required_argument, NULL, 'a'},
        {"limit", required_argument, NULL, 'n'},    {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},           {NULL, 0, NULL, 0}};
    const char *dir = NULL;
    kn_audit_query q = {0};
    print_ctx pc = {false};
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'd': dir = optarg; break;
        case 's':
            if (!parse_since(optarg, &q.since)) {
                fprintf(stderr, "kennel audit: --since '%s' is not a time (ISO 8601, epoch "
                                "seconds or an age like 15m)\n", optarg);
                return 2;
            }
            break;
        case 'p': q.principal = optarg; break;
        case 'a': q.action = optarg; break;
        case 'n': q.limit = atoi(optarg); break;
        case 'j': pc.json = true; break;
        case 'h':
            printf("usage: kennel audit [--data-dir D] [--since T] [--principal P] "
                   "[--action A] [--limit N] [--json]\n"
                   "Prints the daemon's audit log: every API call with its principal, action,\n"
                   "resource, source address, decision and deciding statement. T: ISO 8601,\n"
                   "epoch seconds or an age (15m, 2h, 7d). --principal matches a substring.\n");
            return 0;
        default: return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "kennel audit: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    char buf[4096];
    kn_err e;
    if (kn_audit_read(data_dir(dir, buf, sizeof buf), &q, print_row, &pc, &e)) {
        fprintf(stderr, "kennel audit: %s\n", e.msg);
        return 1;
    }
    return 0;
}

/* ---- suggest ---- */

typedef struct suggest_ctx {
    char needle[200];
    bool denied;
    json_t *by_action; /* action -> {resource: true} */
    int rows;
} suggest_ctx;

static kn_status collect(const kn_audit_rec *r, void *ud)
{
    suggest_ctx *s = ud;
    if (!strstr(r->principal, s->needle))
        return KN_OK;
    bool allow = !strcmp(r->decision, "Allow");
    bool deny = !strcmp(r->decision, "ImplicitDeny") || !strcmp(r->decision, "ExplicitDeny");
    if (!allow && !(s->denied && deny))
        return KN_OK;
    /* calls that need no permission (who am I) belong in no policy */
    if (!strchr(r->action, ':') || !strcasecmp(r->action, "sts:GetCallerIdentity"))
        return KN_OK;
    json_t *set = json_object_get(s->by_action, r->action);
    if (!set) {
        set = json_object();
        json_object_set_new(s->by_action, r->action, set);
    }
    json_object_set_new(set, r->resource[0] ? r->resource : "*", json_true());
    s->rows++;
    return KN_OK;
}

int kn_cli_iam_suggest(int argc, char **argv)
{
    static const struct option opts[] = {
        {"role", required_argument, NULL, 'r'},   {"since", required_argument, NULL, 's'},
        {"data-dir", required_argument, NULL, 'd'}, {"out", required_argument, NULL, 'o'},
        {"include-denied", no_argument, NULL, 'x'}, {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    const char *role = NULL, *dir = NULL, *out = NULL;
    suggest_ctx sc;
    memset(&sc, 0, sizeof sc);
    kn_audit_query q = {.limit = 1000000};
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'r': role = optarg; break;
        case 'd': dir = optarg; break;
        case 'o': out = optarg; break;
        case 'x': sc.denied = true; break;
        case 's':
            if (!parse_since(optarg, &q.since)) {
                fprintf(stderr, "kennel iam suggest: --since '%s' is not a time\n", optarg);
                return 2;
            }
            break;
        case 'h':
            printf("usage: kennel iam suggest --role R [--since T] [--data-dir D] "
                   "[--include-denied] [--out FILE]\n"
                   "Writes the smallest policy that allows what sessions of role R did, from\n"
                   "the audit log (allowed calls; --include-denied adds the refused ones).\n");
            return 0;
        default: return 2;
        }
    }
    if (!role || strchr(role, '/')) {
        fprintf(stderr, "kennel iam suggest: --role NAME is required (the role's name)\n");
        return 2;
    }
    snprintf(sc.needle, sizeof sc.needle, ":assumed-role/%s/", role);
    sc.by_action = json_object();
    char buf[4096];
    kn_err e;
    if (kn_audit_read(data_dir(dir, buf, sizeof buf), &q, collect, &sc, &e)) {
        fprintf(stderr, "kennel iam suggest: %s\n", e.msg);
        json_decref(sc.by_action);
        return 1;
    }
    if (sc.rows == 0) {
        fprintf(stderr, "kennel iam suggest: role %s made no %scalls in that time\n", role,
                sc.denied ? "" : "allowed ");
        json_decref(sc.by_action);
        return 1;
    }
    /* actions with the same resource set share a statement */
    json_t *groups = json_object(); /* resources key -> [actions] */
    const char *action;
    json_t *set;
    json_object_foreach(sc.by_action, action, set)
    {
        char *key = json_dumps(set, JSON_COMPACT | JSON_SORT_KEYS);
        json_t *acts = json_object_get(groups, key);
        if (!acts) {
            acts = json_array();
            json_object_set_new(groups, key, acts);
        }
        json_array_append_new(acts, json_string(action));
        free(key);
    }
    json_t *stmts = json_array();
    const char *key;
    json_t *acts;
    json_object_foreach(groups, key, acts)
    {
        json_t *rs = json_loads(key, 0, NULL), *res = json_array();
        const char *r;
        json_t *v;
        json_object_foreach(rs, r, v)
            json_array_append_new(res, json_string(r));
        json_decref(rs);
        json_t *st = json_object();
        json_object_set_new(st, "Effect", json_string("Allow"));
        json_object_set(st, "Action", json_array_size(acts) == 1 ? json_array_get(acts, 0)
                                                                 : acts);
        json_object_set_new(st, "Resource",
                            json_array_size(res) == 1 ? json_incref(json_array_get(res, 0))
                                                      : json_incref(res));
        json_decref(res);
        json_array_append_new(stmts, st);
    }
    json_t *doc = json_pack("{s:s, s:o}", "Version", "2012-10-17", "Statement", stmts);
    char *text = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    int rc = 0;
    FILE *f = out ? fopen(out, "w") : stdout;
    if (!f || !text || fprintf(f, "%s\n", text) < 0) {
        fprintf(stderr, "kennel iam suggest: cannot write %s\n", out ? out : "stdout");
        rc = 1;
    }
    if (f && f != stdout && fclose(f) != 0)
        rc = 1;
    free(text);
    json_decref(doc);
    json_decref(groups);
    json_decref(sc.by_action);
    return rc;
}
