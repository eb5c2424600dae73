/* Signing the kennel CLI's own requests to the daemon (SigV4), as the AWS
 * CLI would. Credentials are looked up in this order:
 *   1. AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY (+ AWS_SESSION_TOKEN);
 *   2. the administrator key the daemon wrote on first start:
 *      $KENNEL_DATA_DIR/admin-credentials, else the default data dir's
 *      ($XDG_DATA_HOME/kennel or ~/.local/share/kennel);
 *   3. ~/.aws/credentials (or $AWS_SHARED_CREDENTIALS_FILE), profile
 *      $AWS_PROFILE or [default].
 * The region is $AWS_REGION, $AWS_DEFAULT_REGION or us-east-1. Without any
 * credentials requests go unsigned (a daemon started with
 * --insecure-no-auth accepts them). */
#include "cli.h"

#include "kennel/auth.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

typedef struct creds {
    char akid[130], secret[130], token[2048];
} creds;

static void trim(char *s)
{
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1]))
        s[--n] = 0;
    size_t i = 0;
    while (s[i] && isspace((unsigned char)s[i]))
        i++;
    memmove(s, s + i, strlen(s + i) + 1);
}

/* Reads a credentials-file profile; true when it has a key and a secret. */
static bool from_file(const char *path, const char *profile, creds *c)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    char line[2400];
    bool in = false;
    memset(c, 0, sizeof *c);
    while (fgets(line, sizeof line, f)) {
        trim(line);
        if (line[0] == '[') {
            char *end = strchr(line, ']');
            if (end)
                *end = 0;
            char *name = line + 1;
            trim(name);
            in = strcmp(name, profile) == 0;
            continue;
        }
        char *eq = strchr(line, '=');
        if (!in || !eq || line[0] == '#' || line[0] == ';')
            continue;
        *eq = 0;
        char *k = line, *v = eq + 1;
        trim(k);
        trim(v);
        if (!strcasecmp(k, "aws_access_key_id"))
            snprintf(c->akid, sizeof c->akid, "%s", v);
        else if (!strcasecmp(k, "aws_secret_access_key"))
            snprintf(c->secret, sizeof c->secret, "%s", v);
        else if (!strcasecmp(k, "aws_session_token"))
            snprintf(c->token, sizeof c->token, "%s", v);
    }
    fclose(f);
    return c->akid[0] && c->secret[0];
}

static bool find_creds(creds *c)
{
    memset(c, 0, sizeof *c);
    const char *k = getenv("AWS_ACCESS_KEY_ID"), *s = getenv("AWS_SECRET_ACCESS_KEY");
    if (k && *k && s && *s) {
        const char *t = getenv("AWS_SESSION_TOKEN");
        snprintf(c->akid, sizeof c->akid, "%s", k);
        snprintf(c->secret, sizeof c->secret, "%s", s);
        snprintf(c->token, sizeof c->token, "%s", t ? t : "");
        return true;
    }
    char path[4096];
    const char *dd = getenv("KENNEL_DATA_DIR"), *xdg = getenv("XDG_DATA_HOME"),
               *home = getenv("HOME");
    if (dd && *dd)
        snprintf(path, sizeof path, "%s/admin-credentials", dd);
    else if (xdg && xdg[0] == '/')
        snprintf(path, sizeof path, "%s/kennel/admin-credentials", xdg);
    else
        snprintf(path, sizeof path, "%s/.local/share/kennel/admin-credentials",
                 home ? home : "");
    if (from_file(path, "default", c))
        return true;
    const char *shared = getenv("AWS_SHARED_CREDENTIALS_FILE"), *prof = getenv("AWS_PROFILE");
    if (shared && *shared)
        snprintf(path, sizeof path, "%s", shared);
    else
        snprintf(path, sizeof path, "%s/.aws/credentials", home ? home : "");
    return from_file(path, prof && *prof ? prof : "default", c);
}

/* The signing name of a request to the daemon. */
static const char *service_of(const char *path, const char *target)
{
    if (target && !strncmp(target, "AnyScaleFrontendService.", 24))
        return "application-autoscaling";
    if (target && !strncmp(target, "AWSLambda", 9))
        return "lambda";
    if (!strncmp(path, "/20", 3) && strstr(path, "/functions"))
        return "lambda";
    return "sagemaker";
}

struct curl_slist;
bool kn_cli_sign(const char *base_url, const char *method, const char *path,
                 const char *const *headers, const void *body, size_t len, char out[][2200],
                 int *n_out)
{
    *n_out = 0;
    creds c;
    if (!find_creds(&c))
        return true;
    const char *host = strstr(base_url, "://");
    host = host ? host + 3 : base_url;
    char hostv[512];
    snprintf(hostv, sizeof hostv, "%.*s", (int)strcspn(host, "/"), host);
    char date[20];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(date, sizeof date, "%Y%m%dT%H%M%SZ", &tm);
    kn_auth_header h[24];
    char names[24][128], values[24][2048];
    size_t n = 0;
    const char *target = NULL;
    for (const char *const *p = headers; p && *p && n < 20; p++) {
        const char *colon = strchr(*p, ':');
        if (!colon || colon == *p || !colon[1])
            continue; /* "Expect:" and the like: removals */
        snprintf(names[n], sizeof names[n], "%.*s", (int)(colon - *p), *p);
        const char *v = colon + 1;
        while (*v == ' ')
            v++;
        snprintf(values[n], sizeof values[n], "%s", v);
        if (!strcasecmp(names[n], "X-Amz-Target"))
            target = values[n];
        h[n].name = names[n];
        h[n].value = values[n];
        n++;
    }
    h[n++] = (kn_auth_header){"Host", hostv};
    h[n++] = (kn_auth_header){"X-Amz-Date", date};
    if (c.token[0])
        h[n++] = (kn_auth_header){"X-Amz-Security-Token", c.token};
    char raw_path[2048];
    snprintf(raw_path, sizeof raw_path, "%s", path);
    char *qm = strchr(raw_path, '?');
    if (qm)
        *qm++ = 0;
    const char *region = getenv("AWS_REGION");
    if (!region || !*region)
        region = getenv("AWS_DEFAULT_REGION");
    if (!region || !*region)
        region = "us-east-1";
    kn_auth_request r = {.method = method,
                         .raw_path = raw_path,
                         .raw_query = qm,
                         .headers = h,
                         .n_headers = n,
                         .body = body,
                         .body_len = body ? len : 0};
    const char *service = service_of(raw_path, target);
    /* a Query body (IAM, STS): the signing name follows its Action */
    if (body && len > 7 && !memcmp(body, "Action=", 7))
        service = (len > 17 && !memcmp(body, "Action=AssumeRole", 17)) ||
                          (len > 24 && !memcmp(body, "Action=GetCallerIdentity", 24)) ||
                          (len > 22 && !memcmp(body, "Action=GetSessionToken", 22))
                      ? "sts"
                      : "iam";
    char authz[2100];
    kn_err e;
    if (kn_auth_sign(&r, c.akid, c.secret, region, service, authz,
                     sizeof authz, &e)) {
        fprintf(stderr, "kennel: cannot sign the request: %s\n", e.msg);
        return false;
    }
    snprintf(out[(*n_out)++], 2200, "Host: %s", hostv);
    snprintf(out[(*n_out)++], 2200, "X-Amz-Date: %s", date);
    if (c.token[0])
        snprintf(out[(*n_out)++], 2200, "X-Amz-Security-Token: %.2000s", c.token);
    snprintf(out[(*n_out)++], 2200, "Authorization: %s", authz);
    return true;
}
