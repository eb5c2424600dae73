/* IAM policy documents: parsing into statements and evaluation (see the
 * second half of include/kennel/auth.h for the grammar and the rules).
 *
 * Parsing validates everything evaluation relies on, so evaluation cannot
 * fail: it only matches. A parsed policy owns its strings; it is never
 * modified after kn_policy_parse returns, so threads may share it. */
#include "auth_int.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define MAX_STATEMENTS 1000
#define MAX_LIST 1000

/* The one table of condition operators: name, base comparison, negation. */
static const struct {
    const char *name;
    base_op op;
    bool negate;
} OPS[] = {
    {"StringEquals", OP_STR_EQ, false},
    {"StringNotEquals", OP_STR_EQ, true},
    {"StringEqualsIgnoreCase", OP_STR_EQ_IC, false},
    {"StringNotEqualsIgnoreCase", OP_STR_EQ_IC, true},
    {"StringLike", OP_STR_LIKE, false},
    {"StringNotLike", OP_STR_LIKE, true},
    {"NumericEquals", OP_NUM_EQ, false},
    {"NumericNotEquals", OP_NUM_EQ, true},
    {"NumericLessThan", OP_NUM_LT, false},
    {"NumericLessThanEquals", OP_NUM_LE, false},
    {"NumericGreaterThan", OP_NUM_GT, false},
    {"NumericGreaterThanEquals", OP_NUM_GE, false},
    {"DateEquals", OP_DATE_EQ, false},
    {"DateNotEquals", OP_DATE_EQ, true},
    {"DateLessThan", OP_DATE_LT, false},
    {"DateLessThanEquals", OP_DATE_LE, false},
    {"DateGreaterThan", OP_DATE_GT, false},
    {"DateGreaterThanEquals", OP_DATE_GE, false},
    {"Bool", OP_BOOL, false},
    {"BinaryEquals", OP_BINARY, false},
    {"IpAddress", OP_IP, false},
    {"NotIpAddress", OP_IP, true},
    {"ArnEquals", OP_ARN, false},
    {"ArnLike", OP_ARN, false},
    {"ArnNotEquals", OP_ARN, true},
    {"ArnNotLike", OP_ARN, true},
    {"Null", OP_NULL, false},
};

/* ---- matching primitives ------------------------------------------------- */

/* ASCII case folding: names and actions are ASCII; no locale lookups. */
static inline char lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c | 0x20) : c;
}

/* With `esc`, '\\' makes the next pattern character literal: patterns
 * built by expanding policy variables (expand) mark that way what came
 * from a variable or from ${*} and ${?}. */
static bool glob(const char *p, const char *pe, const char *t, const char *te, bool fold,
                 bool esc)
{
    /* Iterative with one backtrack point: linear-ish, no recursion depth. */
    const char *star = NULL, *mark = NULL;
    while (t < te) {
        const char *lit = p;
        size_t step = 1;
        bool one = false;
        if (p < pe && *p == '*') {
            star = p++;
            mark = t;
            continue;
        }
        if (p < pe && esc && *p == '\\' && p + 1 < pe)
            lit = p + 1, step = 2;
        else if (p < pe && *p == '?')
            one = true;
        if (p < pe && (one || *lit == *t || (fold && lower(*lit) == lower(*t)))) {
            p += step;
            t++;
        } else if (star) {
            p = star + 1;
            t = ++mark;
        } else {
            return false;
        }
    }
    while (p < pe && *p == '*')
        p++;
    return p == pe;
}

bool kn__glob_n(const char *p, const char *pe, const char *t, const char *te, bool fold)
{
    return glob(p, pe, t, te, fold, false);
}

bool kn_policy_glob(const char *pattern, const char *text, bool fold)
{
    return kn__glob_n(pattern, pattern + strlen(pattern), text, text + strlen(text), fold);
}

/* ARN patterns: the first five ':'-separated segments match one by one,
 * the sixth (the resource, which may hold ':') as a whole. "*" alone
 * matches everything. */
static bool arn_match(const char *pat, const char *arn, bool esc)
{
    if (!strcmp(pat, "*"))
        return true;
    for (int seg = 0; seg < 6; seg++) {
        const char *pc = seg < 5 ? strchr(pat, ':') : NULL;
        const char *ac = seg < 5 ? strchr(arn, ':') : NULL;
        const char *pe = pc ? pc : pat + strlen(pat);
        const char *ae = ac ? ac : arn + strlen(arn);
        if (seg < 5 && (!pc || !ac))
            return false;
        if (!glob(pat, pe, arn, ae, false, esc))
            return false;
        if (seg == 5)
            return true;
        pat = pc + 1;
        arn = ac + 1;
    }
    return true;
}

/* ---- policy variables ---------------------------------------------------- */

static const kn_policy_key *find_key(const kn_policy_request *r, const char *name, size_t len)
{
    for (size_t i = 0; i < r->n_keys; i++)
        if (r->keys[i].name && strlen(r->keys[i].name) == len &&
            !strncasecmp(r->keys[i].name, name, len))
            return &r->keys[i];
    return NULL;
}

/* Expands ${key} (first value of the key), ${key, 'default'} (the default
 * when the key is absent), ${*} ${?} ${$} into out. False when a referenced
 * key is missing without a default (the pattern then matches nothing) or
 * the result does not fit. For a pattern (`esc`), what a variable put in
 * and the characters ${*} ${?} stand for are literal: they are written
 * '\\'-escaped, as is any '\\' (see glob). */
static bool expand(const char *s, const kn_policy_request *r, char *out, size_t cap, bool esc)
{
    size_t o = 0;
    while (*s) {
        const char *add = s;
        size_t n = 1;
        bool literal = false;
        if (s[0] == '$' && s[1] == '{') {
            const char *end = strchr(s + 2, '}');
            if (end) {
                size_t klen = (size_t)(end - s - 2);
                literal = true;
                if (klen == 1 && strchr("*?$", s[2])) {
                    add = s + 2;
                } else {
                    /* ${key} or ${key, 'default'} */
                    const char *comma = memchr(s + 2, ',', klen), *def = NULL;
                    size_t dlen = 0, kl = comma ? (size_t)(comma - s - 2) : klen;
                    while (kl && s[2 + kl - 1] == ' ')
                        kl--;
                    if (comma) {
                        const char *q = comma + 1, *qe = end;
                        while (q < qe && *q == ' ')
                            q++;
                        while (qe > q && qe[-1] == ' ')
                            qe--;
                        if (qe - q < 2 || *q != '\'' || qe[-1] != '\'')
                            return false; /* malformed: matches nothing */
                        def = q + 1;
                        dlen = (size_t)(qe - q - 2);
                    }
                    const kn_policy_key *k = find_key(r, s + 2, kl);
                    if (k && k->n_values >= 1 && k->values[0]) {
                        add = k->values[0];
                        n = strlen(add);
                    } else if (def) {
                        add = def;
                        n = dlen;
                    } else {
                        return false;
                    }
                }
                s = end + 1;
            } else {
                s++;
            }
        } else {
            s++;
        }
        for (size_t i = 0; i < n; i++) {
            char c = add[i];
            bool escape = esc && (c == '\\' || (literal && (c == '*' || c == '?')));
            if (o + 1 + escape >= cap)
                return false;
            if (escape)
                out[o++] = '\\';
            out[o++] = c;
        }
    }
    out[o] = 0;
    return true;
}

/* A policy value, expanded when the policy has variables; *esc tells a
 * pattern (`pattern`) that came back '\\'-escaped. */
static const char *value(const kn_policy *p, const char *v, const kn_policy_request *r,
                         char *buf, size_t cap, bool pattern, bool *esc)
{
    *esc = false;
    if (!p->vars || !strstr(v, "${"))
        return v;
    if (!expand(v, r, buf, cap, pattern))
        return NULL;
    *esc = pattern;
    return buf;
}

/* ---- condition comparisons ----------------------------------------------- */

static bool parse_num(const char *s, double *out)
{
    char *end;
    if (!*s)
        return false;
    *out = strtod(s, &end);
    return *end == 0 && isfinite(*out);
}

static int digits(const char *p, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)p[i]))
            return -1;
        v = v * 10 + (p[i] - '0');
    }
    return v;
}

/* ISO 8601 (YYYY-MM-DD, optionally THH:MM[:SS[.fff]] and Z or +hh:mm) or
 * epoch seconds. */
static bool parse_date(const char *s, double *out)
{
    if (parse_num(s, out))
        return true;
    size_t n = strlen(s);
    if (n < 10 || s[4] != '-' || s[7] != '-')
        return false;
    struct tm tm = {0};
    int y = digits(s, 4), mo = digits(s + 5, 2), d = digits(s + 8, 2);
    if (y < 0 || mo < 1 || mo > 12 || d < 1 || d > 31)
        return false;
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    const char *p = s + 10;
    double frac = 0, offset = 0;
    if (*p == 'T' || *p == 't') {
        if (strlen(p) < 6 || p[3] != ':') /* THH:MM at least */
            return false;
        int h = digits(p + 1, 2), mi = digits(p + 4, 2);
        if (h < 0 || h > 23 || mi < 0 || mi > 59)
            return false;
        tm.tm_hour = h;
        tm.tm_min = mi;
        p += 6;
        if (*p == ':') {
            if (strlen(p) < 3)
                return false;
            int sec = digits(p + 1, 2);
            if (sec < 0 || sec > 60)
                return false;
            tm.tm_sec = sec;
            p += 3;
            if (*p == '.') {
                char *end;
                frac = strtod(p, &end);
                p = end;
            }
        }
        if (*p == 'Z' || *p == 'z') {
            p++;
        } else if (*p == '+' || *p == '-') {
            size_t rest = strlen(p); /* +hh:mm or +hhmm */
            if (rest < 5 || (p[3] == ':' && rest < 6))
                return false;
            int oh = digits(p + 1, 2), om = p[3] == ':' ? digits(p + 4, 2) : digits(p + 3, 2);
            if (oh < 0 || om < 0)
                return false;
            offset = (*p == '+' ? 1 : -1) * (oh * 3600.0 + om * 60.0);
            p += p[3] == ':' ? 6 : 5;
        }
    }
    if (*p)
        return false;
    *out = (double)timegm(&tm) + frac - offset;
    return true;
}

/* addr in CIDR ("10.0.0.0/8", "2001:db8::/32", or a bare address). */
static bool ip_match(const char *cidr, const char *addr)
{
    unsigned char a[16], n[16];
    char buf[64];
    size_t len = strcspn(cidr, "/");
    if (len >= sizeof buf)
        return false;
    memcpy(buf, cidr, len);
    buf[len] = 0;
    int fam = strchr(buf, ':') ? AF_INET6 : AF_INET;
    if ((fam == AF_INET6) != (strchr(addr, ':') != NULL))
        return false;
    if (inet_pton(fam, buf, n) != 1 || inet_pton(fam, addr, a) != 1)
        return false;
    int bits = fam == AF_INET ? 32 : 128;
    if (cidr[len] == '/') {
        char *end;
        long b = strtol(cidr + len + 1, &end, 10);
        if (*end || b < 0 || b > bits || !cidr[len + 1])
            return false;
        bits = (int)b;
    }
    for (int i = 0; i < bits / 8; i++)
        if (a[i] != n[i])
            return false;
    if (bits % 8) {
        unsigned char mask = (unsigned char)(0xff << (8 - bits % 8));
        if ((a[bits / 8] & mask) != (n[bits / 8] & mask))
            return false;
    }
    return true;
}

static bool valid_cidr(const char *cidr)
{
    unsigned char n[16];
    char buf[64];
    size_t len = strcspn(cidr, "/");
    if (len >= sizeof buf)
        return false;
    memcpy(buf, cidr, len);
    buf[len] = 0;
    bool v6 = strchr(buf, ':') != NULL;
    if (inet_pton(v6 ? AF_INET6 : AF_INET, buf, n) != 1)
        return false;
    if (!cidr[len])
        return true;
    char *end;
    long b = strtol(cidr + len + 1, &end, 10);
    return cidr[len + 1] && !*end && b >= 0 && b <= (v6 ? 128 : 32);
}

/* The positive comparison of one request value with one policy value
 * (`esc`: pv is an escaped pattern, see expand). */
static bool compare(base_op op, const char *pv, const char *rv, bool esc)
{
    double x = 0, y = 0;
    switch (op) {
    case OP_STR_EQ:
    case OP_BINARY:
        return !strcmp(pv, rv);
    case OP_STR_EQ_IC:
        return !strcasecmp(pv, rv);
    case OP_STR_LIKE:
        return glob(pv, pv + strlen(pv), rv, rv + strlen(rv), false, esc);
    case OP_NUM_EQ:
    case OP_NUM_LT:
    case OP_NUM_LE:
    case OP_NUM_GT:
    case OP_NUM_GE:
        if (!parse_num(rv, &x) || !parse_num(pv, &y))
            return false;
        break;
    case OP_DATE_EQ:
    case OP_DATE_LT:
    case OP_DATE_LE:
    case OP_DATE_GT:
    case OP_DATE_GE:
        if (!parse_date(rv, &x) || !parse_date(pv, &y))
            return false;
        break;
    case OP_BOOL:
        return !strcasecmp(pv, rv) && (!strcasecmp(rv, "true") || !strcasecmp(rv, "false"));
    case OP_IP:
        return ip_match(pv, rv);
    case OP_ARN:
        return arn_match(pv, rv, esc);
    case OP_NULL:
        return false; /* handled by the caller */
    }
    switch (op) {
    case OP_NUM_EQ:
    case OP_DATE_EQ:
        return x == y;
    case OP_NUM_LT:
    case OP_DATE_LT:
        return x < y;
    case OP_NUM_LE:
    case OP_DATE_LE:
        return x <= y;
    case OP_NUM_GT:
    case OP_DATE_GT:
        return x > y;
    default:
        return x >= y;
    }
}

static bool cond_holds(const kn_policy *p, const cond *c, const kn_policy_request *r)
{
    const kn_policy_key *k = find_key(r, c->key, strlen(c->key));
    bool present = k && k->n_values > 0;
    if (c->op == OP_NULL) {
        for (int i = 0; i < c->values.n; i++)
            if (!strcasecmp(c->values.v[i], "true") ? !present : present)
                return true;
        return false;
    }
    if (!present)
        return c->set == SET_ALL || c->if_exists || (c->negate && c->set != SET_ANY);
    bool any = false, all = true;
    char buf[2048];
    for (size_t j = 0; j < k->n_values; j++) {
        const char *rv = k->values[j] ? k->values[j] : "";
        bool m = false;
        bool pattern = c->op == OP_STR_LIKE || c->op == OP_ARN, esc;
        for (int i = 0; i < c->values.n && !m; i++) {
            const char *pv = value(p, c->values.v[i], r, buf, sizeof buf, pattern, &esc);
            m = pv && compare(c->op, pv, rv, esc);
        }
        if (c->negate)
            m = !m;
        any |= m;
        all &= m;
    }
    if (c->set == SET_ALL || (c->set == SET_NONE && c->negate))
        return all;
    return any;
}

/* ---- statements ---------------------------------------------------------- */

static bool list_has_action(const strlist *l, const char *action)
{
    for (int i = 0; i < l->n; i++)
        if (kn_policy_glob(l->v[i], action, true))
            return true;
    return false;
}

static bool list_has_resource(const kn_policy *p, const strlist *l, const char *res,
                              const kn_policy_request *r)
{
    char buf[2048];
    for (int i = 0; i < l->n; i++) {
        bool esc;
        const char *pat = value(p, l->v[i], r, buf, sizeof buf, true, &esc);
        if (pat && arn_match(pat, res, esc))
            return true;
    }
    return false;
}

/* True when `want` is the ARN of the role named role[0..rlen) in account
 * acct, whatever its path: "arn:aws:iam::<acct>:role/<path/>name". A
 * session ARN (arn:aws:sts::<acct>:assumed-role/<name>/<session>) carries
 * the role's name without its path, and names are unique in an account. */
static bool role_arn_names(const char *want, const char *acct, const char *role, size_t rlen)
{
    char prefix[64];
    int w = snprintf(prefix, sizeof prefix, "arn:aws:iam::%s:role/", acct);
    if (w < 0 || (size_t)w >= sizeof prefix || strncmp(want, prefix, (size_t)w) != 0)
        return false;
    const char *name = strrchr(want + w, '/');
    name = name ? name + 1 : want + w;
    return strlen(name) == rlen && rlen > 0 && !strncmp(name, role, rlen);
}

/* "123456789012" or ...:root names the whole account; an assumed-role
 * session is also its role (with or without a path). */
static bool principal_is(const char *want, const char *who)
{
    if (!who)
        return false;
    if (!strcmp(want, "*") || !strcmp(want, who))
        return true;
    /* account of `who`: the fifth segment */
    const char *p = who;
    for (int i = 0; i < 4 && p; i++)
        if ((p = strchr(p, ':')))
            p++;
    if (!p)
        return false;
    size_t alen = strcspn(p, ":");
    char acct[32];
    if (alen == 0 || alen >= sizeof acct)
        return false;
    memcpy(acct, p, alen);
    acct[alen] = 0;
    if (!strcmp(want, acct))
        return true;
    char root[96];
    snprintf(root, sizeof root, "arn:aws:iam::%s:root", acct);
    if (!strcmp(want, root))
        return true;
    const char *ar = strstr(p, ":assumed-role/");
    if (ar && !strncmp(who, "arn:aws:sts::", 13)) {
        const char *role = ar + 14;
        if (role_arn_names(want, acct, role, strcspn(role, "/")))
            return true;
    }
    return false;
}

static bool service_listed(const stmt *s, const char *svc)
{
    for (int i = 0; svc && i < s->principal_service.n; i++)
        if (!strcasecmp(s->principal_service.v[i], svc))
            return true;
    return false;
}

/* For NotPrincipal: one identity named exactly ("*" names all; an account
 * id is its root ARN). */
static bool aws_listed(const stmt *s, const char *id)
{
    for (int i = 0; i < s->principal_aws.n; i++) {
        const char *v = s->principal_aws.v[i];
        if (!strcmp(v, "*") || !strcmp(v, id))
            return true;
        if (strlen(v) == 12 && !strncmp(id, "arn:aws:iam::", 13) && !strncmp(id + 13, v, 12) &&
            !strcmp(id + 25, ":root"))
            return true;
    }
    return false;
}

/* NotPrincipal leaves a caller out only when it names every identity the
 * caller is: its account (root), a role and that role's session, or the
 * calling service. Naming the account does not leave out everyone in it
 * (unlike Principal, where it delegates to the account), and naming a role
 * without its session still leaves the session in — AWS's rule. */
static bool not_principal_excludes(const stmt *s, const kn_policy_request *r)
{
    if (s->principal_any)
        return true;
    if (!r->principal && !r->principal_service)
        return false;
    if (r->principal_service && !service_listed(s, r->principal_service))
        return false;
    const char *who = r->principal;
    if (!who)
        return true;
    if (!aws_listed(s, who))
        return false;
    /* the account: fifth ':'-separated segment */
    const char *p = who;
    for (int i = 0; i < 4 && p; i++)
        if ((p = strchr(p, ':')))
            p++;
    size_t alen = p ? strcspn(p, ":") : 0;
    if (alen == 0 || alen > 32)
        return false;
    char id[600];
    snprintf(id, sizeof id, "arn:aws:iam::%.*s:root", (int)alen, p);
    if (!aws_listed(s, id))
        return false;
    const char *ar = strstr(p, ":assumed-role/");
    if (ar) {
        /* the session's role must be listed too, under any path */
        const char *role = ar + 14;
        char acct[33];
        snprintf(acct, sizeof acct, "%.*s", (int)alen, p);
        bool listed = false;
        for (int i = 0; i < s->principal_aws.n && !listed; i++)
            listed = !strcmp(s->principal_aws.v[i], "*") ||
                     role_arn_names(s->principal_aws.v[i], acct, role, strcspn(role, "/"));
        if (!listed)
            return false;
    }
    return true;
}

static bool principal_match(const stmt *s, const kn_policy_request *r)
{
    if (s->not_principal)
        return !not_principal_excludes(s, r);
    bool in = s->principal_any;
    for (int i = 0; i < s->principal_aws.n && !in; i++)
        in = principal_is(s->principal_aws.v[i], r->principal);
    if (!in)
        in = service_listed(s, r->principal_service);
    return in;
}

static bool stmt_applies(const kn_policy *p, const stmt *s, const kn_policy_request *r)
{
    const char *action = r->action ? r->action : "";
    if (list_has_action(&s->action, action) == s->not_action)
        return false;
    if (s->has_resource &&
        list_has_resource(p, &s->resource, r->resource ? r->resource : "*", r) == s->not_resource)
        return false;
    if (s->has_principal && !principal_match(s, r))
        return false;
    for (int i = 0; i < s->nconds; i++)
        if (!cond_holds(p, &s->conds[i], r))
            return false;
    return true;
}

void kn_policy_evaluate(const kn_policy *const *ps, size_t n, const kn_policy_request *r,
                        kn_policy_decision *d)
{
    memset(d, 0, sizeof *d);
    d->effect = KN_POLICY_IMPLICIT_DENY;
    d->policy = d->statement = -1;
    for (size_t i = 0; i < n; i++) {
        const kn_policy *p = ps[i];
        for (int j = 0; p && j < p->n; j++) {
            const stmt *s = &p->s[j];
            if (!stmt_applies(p, s, r))
                continue;
            if (s->deny || d->effect == KN_POLICY_IMPLICIT_DENY) {
                d->effect = s->deny ? KN_POLICY_EXPLICIT_DENY : KN_POLICY_ALLOW;
                d->policy = (int)i;
                d->statement = j;
                memcpy(d->sid, s->sid, sizeof d->sid);
                if (s->deny)
                    return; /* an explicit deny wins */
            }
        }
    }
}


void kn_policy_denied_message(const kn_policy_request *r, const kn_policy_decision *d,
                              char *out, size_t n)
{
    const char *a = r->action ? r->action : "";
    const char *who = r->principal ? r->principal : "anonymous";
    if (d->effect == KN_POLICY_EXPLICIT_DENY)
        snprintf(out, n,
                 "User: %s is not authorized to perform: %s on resource: %s with an explicit "
                 "deny in an identity-based policy",
                 who, a, r->resource ? r->resource : "*");
    else
        snprintf(out, n,
                 "User: %s is not authorized to perform: %s on resource: %s because no "
                 "identity-based policy allows the %s action",
                 who, a, r->resource ? r->resource : "*", a);
    /* The request's names go back to the client and into logs: whatever
     * they hold, the message stays one printable line. */
    if (n)
        kn_text_clean(out);
}

/* ---- parsing ------------------------------------------------------------- */

static void list_free(strlist *l)
{
    for (int i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

static void stmt_free(stmt *s)
{
    list_free(&s->action);
    list_free(&s->resource);
    list_free(&s->principal_aws);
    list_free(&s->principal_service);
    for (int i = 0; i < s->nconds; i++) {
        free(s->conds[i].key);
        list_free(&s->conds[i].values);
    }
    free(s->conds);
}

void kn_policy_free(kn_policy *p)
{
    if (!p)
        return;
    for (int i = 0; i < p->n; i++)
        stmt_free(&p->s[i]);
    free(p->s);
    free(p);
}

int kn_policy_statements(const kn_policy *p)
{
    return p ? p->n : 0;
}

#define BAD(...) kn_err_set(e, KN_BAD_FORMAT, __VA_ARGS__)

/* A string or a non-empty array of strings (numbers and booleans too, when
 * `scalars`: condition values may be written unquoted). */
static kn_status get_list(json_t *v, bool scalars, strlist *out, const char *where, int si,
                          kn_err *e)
{
    json_t *one = v;
    size_t n = json_is_array(v) ? json_array_size(v) : 1;
    if (json_is_array(v) && n == 0)
        return BAD("Statement[%d]: %s is an empty list", si, where);
    if (n > MAX_LIST)
        return BAD("Statement[%d]: %s has more than %d entries", si, where, MAX_LIST);
    if (!(out->v = calloc(n, sizeof *out->v)))
        return kn_err_set(e, KN_NOMEM, "policy: out of memory");
    for (size_t i = 0; i < n; i++) {
        if (json_is_array(v))
            one = json_array_get(v, i);
        char num[64];
        const char *s = NULL;
        if (json_is_string(one))
            s = json_string_value(one);
        else if (scalars && json_is_integer(one))
            snprintf(num, sizeof num, "%lld", (long long)json_integer_value(one)), s = num;
        else if (scalars && json_is_real(one))
            snprintf(num, sizeof num, "%.17g", json_real_value(one)), s = num;
        else if (scalars && json_is_boolean(one))
            s = json_is_true(one) ? "true" : "false";
        if (!s)
            return BAD("Statement[%d]: %s must be a string or a list of strings", si, where);
        if (!(out->v[out->n] = strdup(s)))
            return kn_err_set(e, KN_NOMEM, "policy: out of memory");
        out->n++;
    }
    return KN_OK;
}

static kn_status check_action(const char *a, int si, kn_err *e)
{
    if (!strcmp(a, "*"))
        return KN_OK;
    const char *colon = strchr(a, ':');
    if (!colon || colon == a || !colon[1])
        return BAD("Statement[%d]: Action '%.64s' must be 'service:Action' or '*'", si, a);
    for (const char *p = a; p < colon; p++)
        if (!(isalnum((unsigned char)*p) || *p == '-'))
            return BAD("Statement[%d]: Action '%.64s' has an invalid service prefix", si, a);
    for (const char *p = colon + 1; *p; p++)
        if (!(isalnum((unsigned char)*p) || *p == '*' || *p == '?' || *p == '-' || *p == '_'))
            return BAD("Statement[%d]: Action '%.64s' has an invalid character", si, a);
    return KN_OK;
}

static kn_status check_resource(const char *r, int si, kn_err *e)
{
    if (!strcmp(r, "*"))
        return KN_OK;
    int colons = 0;
    for (const char *p = r; *p; p++)
        colons += *p == ':';
    if (strncmp(r, "arn:", 4) || colons < 5)
        return BAD("Statement[%d]: Resource '%.64s' must be an ARN "
                   "(arn:partition:service:region:account:resource) or '*'",
                   si, r);
    return KN_OK;
}

static kn_status parse_principal(json_t *v, stmt *s, int si, kn_err *e)
{
    if (json_is_string(v)) {
        if (strcmp(json_string_value(v), "*"))
            return BAD("Statement[%d]: Principal must be \"*\" or an object such as "
                       "{\"AWS\": ...} or {\"Service\": ...}",
                       si);
        s->principal_any = true;
        return KN_OK;
    }
    if (!json_is_object(v) || json_object_size(v) == 0)
        return BAD("Statement[%d]: Principal must be \"*\" or a non-empty object", si);
    const char *k;
    json_t *x;
    json_object_foreach(v, k, x) {
        kn_status rc;
        if (!strcmp(k, "AWS")) {
            if ((rc = get_list(x, false, &s->principal_aws, "Principal.AWS", si, e)))
                return rc;
            for (int i = 0; i < s->principal_aws.n; i++) {
                const char *p = s->principal_aws.v[i];
                bool acct = strlen(p) == 12 && strspn(p, "0123456789") == 12;
                if (strcmp(p, "*") && !acct && strncmp(p, "arn:", 4))
                    return BAD("Statement[%d]: Principal.AWS '%.64s' must be an ARN, an "
                               "account id or \"*\"",
                               si, p);
            }
        } else if (!strcmp(k, "Service")) {
            if ((rc = get_list(x, false, &s->principal_service, "Principal.Service", si, e)))
                return rc;
        } else if (!strcmp(k, "Federated") || !strcmp(k, "CanonicalUser")) {
            strlist ignored = {0}; /* valid, but no such callers exist here */
            rc = get_list(x, false, &ignored, k, si, e);
            list_free(&ignored);
            if (rc)
                return rc;
        } else {
            return BAD("Statement[%d]: Principal has an unknown type '%.64s'", si, k);
        }
    }
    return KN_OK;
}

static kn_status parse_conditions(json_t *v, stmt *s, int si, kn_err *e)
{
    if (!json_is_object(v))
        return BAD("Statement[%d]: Condition must be an object", si);
    size_t total = 0;
    const char *opname;
    json_t *block;
    json_object_foreach(v, opname, block) {
        if (!json_is_object(block) || json_object_size(block) == 0)
            return BAD("Statement[%d]: Condition operator %.64s needs an object of keys", si,
                       opname);
        total += json_object_size(block);
    }
    if (total > MAX_LIST)
        return BAD("Statement[%d]: Condition has more than %d keys", si, MAX_LIST);
    if (!(s->conds = calloc(total ? total : 1, sizeof *s->conds)))
        return kn_err_set(e, KN_NOMEM, "policy: out of memory");
    json_object_foreach(v, opname, block) {
        int set = SET_NONE;
        const char *name = opname;
        if (!strncmp(name, "ForAnyValue:", 12))
            set = SET_ANY, name += 12;
        else if (!strncmp(name, "ForAllValues:", 13))
            set = SET_ALL, name += 13;
        size_t nl = strlen(name);
        bool if_exists = nl > 8 && !strcmp(name + nl - 8, "IfExists");
        if (if_exists)
            nl -= 8;
        int found = -1;
        for (size_t i = 0; i < sizeof OPS / sizeof OPS[0] && found < 0; i++)
            if (strlen(OPS[i].name) == nl && !strncmp(OPS[i].name, name, nl))
                found = (int)i;
        if (found < 0 || (if_exists && OPS[found].op == OP_NULL))
            return BAD("Statement[%d]: unknown condition operator '%.64s'", si, opname);
        const char *key;
        json_t *vals;
        json_object_foreach(block, key, vals) {
            cond *c = &s->conds[s->nconds++];
            *c = (cond){.op = OPS[found].op, .negate = OPS[found].negate,
                        .if_exists = if_exists, .set = set};
            if (!(c->key = strdup(key)))
                return kn_err_set(e, KN_NOMEM, "policy: out of memory");
            char where[160];
            snprintf(where, sizeof where, "Condition %.64s.%.64s", opname, key);
            kn_status rc = get_list(vals, true, &c->values, where, si, e);
            if (rc)
                return rc;
            for (int i = 0; i < c->values.n; i++) {
                const char *pv = c->values.v[i];
                double x;
                bool ok = true;
                if (c->op >= OP_NUM_EQ && c->op <= OP_NUM_GE)
                    ok = parse_num(pv, &x);
                else if (c->op >= OP_DATE_EQ && c->op <= OP_DATE_GE)
                    ok = parse_date(pv, &x);
                else if (c->op == OP_BOOL || c->op == OP_NULL)
                    ok = !strcasecmp(pv, "true") || !strcasecmp(pv, "false");
                else if (c->op == OP_IP)
                    ok = valid_cidr(pv);
                if (!ok)
                    return BAD("Statement[%d]: %s: '%.64s' is not a valid value for %.32s", si,
                               where, pv, OPS[found].name);
            }
        }
    }
    return KN_OK;
}

static kn_status parse_statement(json_t *o, kn_policy_kind kind, stmt *s, int si, kn_err *e)
{
    if (!json_is_object(o))
        return BAD("Statement[%d] must be an object", si);
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v) {
        static const char *const known[] = {"Sid",         "Effect",    "Action",
                                            "NotAction",   "Resource",  "NotResource",
                                            "Principal",   "NotPrincipal", "Condition"};
        bool ok = false;
        for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
            ok |= !strcmp(k, known[i]);
        if (!ok)
            return BAD("Statement[%d]: unknown element '%.64s'", si, k);
    }
    json_t *sid = json_object_get(o, "Sid");
    if (sid) {
        const char *t = json_string_value(sid);
        if (!t || strlen(t) >= sizeof s->sid)
            return BAD("Statement[%d]: Sid must be a string of at most 128 characters", si);
        for (const char *p = t; *p; p++)
            if (!isalnum((unsigned char)*p))
                return BAD("Statement[%d]: Sid '%.64s' may hold only letters and digits", si, t);
        memcpy(s->sid, t, strlen(t) + 1);
    }
    const char *eff = json_string_value(json_object_get(o, "Effect"));
    if (!eff || (strcmp(eff, "Allow") && strcmp(eff, "Deny")))
        return BAD("Statement[%d]: Effect must be \"Allow\" or \"Deny\"", si);
    s->deny = !strcmp(eff, "Deny");

    json_t *a = json_object_get(o, "Action"), *na = json_object_get(o, "NotAction");
    if (!!a == !!na)
        return BAD("Statement[%d]: exactly one of Action and NotAction is required", si);
    s->not_action = na != NULL;
    kn_status rc = get_list(a ? a : na, false, &s->action, a ? "Action" : "NotAction", si, e);
    if (rc)
        return rc;
    for (int i = 0; i < s->action.n; i++)
        if ((rc = check_action(s->action.v[i], si, e)))
            return rc;

    json_t *r = json_object_get(o, "Resource"), *nr = json_object_get(o, "NotResource");
    if (r && nr)
        return BAD("Statement[%d]: Resource and NotResource cannot both be given", si);
    if (!r && !nr && kind == KN_POLICY_IDENTITY)
        return BAD("Statement[%d]: Resource or NotResource is required", si);
    if (r || nr) {
        s->has_resource = true;
        s->not_resource = nr != NULL;
        if ((rc = get_list(r ? r : nr, false, &s->resource, r ? "Resource" : "NotResource", si,
                           e)))
            return rc;
        for (int i = 0; i < s->resource.n; i++)
            if ((rc = check_resource(s->resource.v[i], si, e)))
                return rc;
    }

    json_t *pr = json_object_get(o, "Principal"), *npr = json_object_get(o, "NotPrincipal");
    if (kind == KN_POLICY_IDENTITY && (pr || npr))
        return BAD("Statement[%d]: an identity-based policy cannot name a Principal", si);
    if (kind == KN_POLICY_RESOURCE) {
        if (!!pr == !!npr)
            return BAD("Statement[%d]: exactly one of Principal and NotPrincipal is required",
                       si);
        s->has_principal = true;
        s->not_principal = npr != NULL;
        if ((rc = parse_principal(pr ? pr : npr, s, si, e)))
            return rc;
    }
    json_t *c = json_object_get(o, "Condition");
    if (c && (rc = parse_conditions(c, s, si, e)))
        return rc;
    return KN_OK;
}

kn_status kn_policy_parse(const char *text, size_t len, kn_policy_kind kind, kn_policy **out,
                          kn_err *e)
{
    *out = NULL;
    if (len > KN_POLICY_MAX_BYTES)
        return kn_err_set(e, KN_TOO_LARGE, "policy document of %zu bytes is over the %u-byte "
                          "limit", len, KN_POLICY_MAX_BYTES);
    json_error_t je;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        BAD("policy is not valid JSON: %s at line %d column %d", je.text, je.line, je.column);
        kn_text_clean(e ? e->msg : NULL);
        return KN_BAD_FORMAT;
    }
    kn_status rc = KN_OK;
    kn_policy *p = calloc(1, sizeof *p);
    if (!p) {
        rc = kn_err_set(e, KN_NOMEM, "policy: out of memory");
        goto out;
    }
    p->kind = kind;
    if (!json_is_object(root)) {
        rc = BAD("policy must be a JSON object");
        goto out;
    }
    const char *k;
    json_t *v;
    json_object_foreach(root, k, v) {
        if (strcmp(k, "Version") && strcmp(k, "Id") && strcmp(k, "Statement")) {
            rc = BAD("policy has an unknown top-level element '%.64s'", k);
            goto out;
        }
    }
    json_t *ver = json_object_get(root, "Version");
    if (ver) {
        const char *vs = json_string_value(ver);
        if (!vs || (strcmp(vs, "2012-10-17") && strcmp(vs, "2008-10-17"))) {
            rc = BAD("Version must be \"2012-10-17\" or \"2008-10-17\"");
            goto out;
        }
        p->vars = !strcmp(vs, "2012-10-17");
    }
    json_t *id = json_object_get(root, "Id");
    if (id && !json_is_string(id)) {
        rc = BAD("Id must be a string");
        goto out;
    }
    json_t *st = json_object_get(root, "Statement");
    if (!st || (json_is_array(st) && json_array_size(st) == 0)) {
        rc = BAD("policy has no Statement");
        goto out;
    }
    size_t n = json_is_array(st) ? json_array_size(st) : 1;
    if (n > MAX_STATEMENTS) {
        rc = BAD("policy has more than %d statements", MAX_STATEMENTS);
        goto out;
    }
    if (!(p->s = calloc(n, sizeof *p->s))) {
        rc = kn_err_set(e, KN_NOMEM, "policy: out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        p->n++;
        if ((rc = parse_statement(json_is_array(st) ? json_array_get(st, i) : st, kind,
                                  &p->s[i], (int)i, e)))
            goto out;
    }
out:
    json_decref(root);
    if (rc) {
        kn_text_clean(e ? e->msg : NULL); /* messages quote the document */
        kn_policy_free(p);
        return rc;
    }
    *out = p;
    return KN_OK;
}
