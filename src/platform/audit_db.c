/* The audit log (CloudTrail-like: one row per API call in kennel.db's
 * audit_log table) and execution-role credentials for services.
 *
 * Rows are written through the IAM connection (synchronous=NORMAL: no
 * fsync per call, a commit still survives a crash of the process).
 * kn_audit_read opens its own read-only connection, so `kennel audit` works
 * while the daemon runs. Thread-safe.
 */
#include "iam_int.h"

#include "kennel/auth.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

kn_status kn_iam_audit_add(kn_iam *iam, const kn_audit_rec *r, kn_err *e)
{
    pthread_mutex_lock(&iam->mu);
    sqlite3_stmt *st;
    kn_status s = kn_iam__prepare(iam,
                                  "INSERT INTO audit_log (time, principal, action, resource, "
                                  "source, decision, statement, request_id, error_code) VALUES "
                                  "(?, ?, ?, ?, ?, ?, ?, ?, ?)",
                                  &st, e);
    if (!s) {
        const char *v[] = {r->principal, r->action,    r->resource,   r->source,
                           r->decision,  r->statement, r->request_id, r->error_code};
        sqlite3_bind_double(st, 1, r->time);
        for (int i = 0; i < 8; i++)
            sqlite3_bind_text(st, i + 2, v[i] ? v[i] : "", -1, SQLITE_TRANSIENT);
        int rc = sqlite3_step(st);
        sqlite3_finalize(st);
        if (rc != SQLITE_DONE)
            s = kn_iam__sqlite_err(iam, rc, "audit", e);
    }
    pthread_mutex_unlock(&iam->mu);
    return s;
}

kn_status kn_audit_read(const char *data_dir, const kn_audit_query *q, kn_audit_fn fn, void *ctx,
                        kn_err *e)
{
    char path[PATH_MAX + 16];
    snprintf(path, sizeof path, "%.4000s/kennel.db", data_dir);
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL);
    if (rc != SQLITE_OK) {
        kn_status s = kn_err_set(e, KN_IO, "%s: %s", path,
                                 db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
        sqlite3_close(db);
        return s;
    }
    sqlite3_busy_timeout(db, 5000);
    sqlite3_stmt *st = NULL;
    rc = sqlite3_prepare_v2(db,
                            "SELECT time, principal, action, resource, source, decision, "
                            "statement, request_id, error_code FROM audit_log WHERE time >= ?1 "
                            "AND (?2 IS NULL OR instr(principal, ?2) > 0) AND (?3 IS NULL OR "
                            "action = ?3 COLLATE NOCASE) ORDER BY seq DESC LIMIT ?4",
                            -1, &st, NULL);
    if (rc != SQLITE_OK) {
        kn_status s = kn_err_set(e, KN_IO, "%s: no audit log here (%s)", path, sqlite3_errmsg(db));
        sqlite3_close(db);
        return s;
    }
    sqlite3_bind_double(st, 1, q ? q->since : 0);
    if (q && q->principal)
        sqlite3_bind_text(st, 2, q->principal, -1, SQLITE_TRANSIENT);
    if (q && q->action)
        sqlite3_bind_text(st, 3, q->action, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(st, 4, q && q->limit > 0 ? q->limit : 1000);
    /* newest N, handed over oldest first */
    typedef struct row {
        double t;
        char *v[8];
    } row;
    row *rows = NULL;
    size_t n = 0;
    kn_status s = KN_OK;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        row *nr = realloc(rows, (n + 1) * sizeof *nr);
        if (!nr) {
            s = kn_err_set(e, KN_NOMEM, "out of memory");
            break;
        }
        rows = nr;
        rows[n].t = sqlite3_column_double(st, 0);
        for (int i = 0; i < 8; i++) {
            const char *c = (const char *)sqlite3_column_text(st, i + 1);
            rows[n].v[i] = strdup(c ? c : "");
        }
        n++;
    }
    if (!s && rc != SQLITE_DONE)
        s = kn_err_set(e, KN_IO, "%s: %s", path, sqlite3_errmsg(db));
    sqlite3_finalize(st);
    sqlite3_close(db);
    for (size_t i = n; i-- > 0;) {
        if (!s) {
            kn_audit_rec r = {rows[i].t,    rows[i].v[0], rows[i].v[1], rows[i].v[2],
                              rows[i].v[3], rows[i].v[4], rows[i].v[5], rows[i].v[6],
                              rows[i].v[7]};
            bool ok = true;
            for (int k = 0; k < 8; k++)
                ok &= rows[i].v[k] != NULL;
            s = ok ? fn(&r, ctx) : kn_err_set(e, KN_NOMEM, "out of memory");
        }
        for (int k = 0; k < 8; k++)
            free(rows[i].v[k]);
    }
    free(rows);
    return s;
}

kn_status kn_iam_execution_credentials(kn_iam *iam, const char *role_arn, const char *service,
                                       const char *session_name, int duration_s,
                                       kn_iam_credentials *out, kn_err *e)
{
    memset(out, 0, sizeof *out);
    char *json = NULL;
    kn_status s = kn_iam_role_by_arn(iam, role_arn, &json, e);
    if (s)
        return s;
    json_t *role = json_loads(json, 0, NULL);
    free(json);
    const char *trust = json_string_value(json_object_get(role, "AssumeRolePolicyDocument"));
    kn_policy *p = NULL;
    if (!trust || (s = kn_policy_parse(trust, strlen(trust), KN_POLICY_RESOURCE, &p, e))) {
        json_decref(role);
        return s ? s : kn_err_set(e, KN_INTERNAL, "role without a trust policy");
    }
    kn_policy_request r = {.action = "sts:AssumeRole",
                           .resource = role_arn,
                           .principal = "",
                           .principal_service = service};
    kn_policy_decision d;
    const kn_policy *ps[1] = {p};
    kn_policy_evaluate(ps, 1, &r, &d);
    kn_policy_free(p);
    json_decref(role);
    if (d.effect != KN_POLICY_ALLOW)
        return kn_err_set(e, KN_INVALID,
                          "%s is not authorized to perform: sts:AssumeRole on resource: %s "
                          "(the role's trust policy does not allow the service)",
                          service, role_arn);
    return kn_iam_session_create(iam, role_arn, session_name, duration_s ? duration_s : 3600,
                                 out, e);
}
