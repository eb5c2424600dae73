/* The audit log (CloudTrail-like: one row per API call in kennel.db's
 * audit_log table) and execution-role credentials for services.
 *
 * Rows are written through the IAM connection (synchronous=NORMAL: no
 * fsync per call, a commit still survives a crash of the process) by a
 * writer thread, in batches (see "the audit writer" below).
 * kn_audit_read opens its own read-only connection, so `kennel audit` works
 * while the daemon runs. Thread-safe.
 */
#include "iam_int.h"

#include "kennel/auth.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- the audit writer ---------------------------------------------------
 *
 * kn_iam_audit_add copies the row into a queue and returns; a writer thread
 * commits the queue as one transaction (a cached INSERT per row) once rows
 * have waited AUDIT_BATCH_MS, AUDIT_BATCH_ROWS are queued, or someone asked
 * for a flush. One commit per batch instead of one per API call is what
 * keeps the audit log off the request path. Readers in this process flush
 * first (kn_iam_audit_flush; GET /kennel/audit does), other processes
 * (`kennel audit`) see a row at most a few milliseconds after its call, and
 * kn_iam_close writes every queued row before it returns. Crash window: rows
 * of the calls answered in the last AUDIT_BATCH_MS (plus one commit) before
 * the process is killed (SIGKILL, a crash) are lost; a clean stop loses
 * none. If the writer falls AUDIT_MAX_QUEUED rows behind (the database
 * locked by another writer), callers wait rather than drop rows. */

enum { AUDIT_BATCH_MS = 4, AUDIT_BATCH_ROWS = 512, AUDIT_MAX_QUEUED = 65536 };

static void audit_write(kn_iam *iam, kn_iam__audit_row *rows, size_t n)
{
    static const char *ins = "INSERT INTO audit_log (time, principal, action, resource, "
                             "source, decision, statement, request_id, error_code) VALUES "
                             "(?, ?, ?, ?, ?, ?, ?, ?, ?)";
    pthread_mutex_lock(&iam->mu);
    int rc = SQLITE_OK;
    const char *what = "prepare";
    if (!iam->audit_insert)
        rc = sqlite3_prepare_v3(iam->db, ins, -1, SQLITE_PREPARE_PERSISTENT, &iam->audit_insert,
                                NULL);
    if (rc == SQLITE_OK) {
        what = "begin";
        rc = sqlite3_exec(iam->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    }
    if (rc == SQLITE_OK) {
        sqlite3_stmt *st = iam->audit_insert;
        what = "insert";
        for (kn_iam__audit_row *r = rows; r && rc == SQLITE_OK; r = r->next) {
            sqlite3_bind_double(st, 1, r->time);
            for (int i = 0; i < 8; i++)
                sqlite3_bind_text(st, i + 2, r->v[i], -1, SQLITE_STATIC);
            rc = sqlite3_step(st);
            sqlite3_reset(st);
            rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
        }
        sqlite3_clear_bindings(st);
        if (rc == SQLITE_OK) {
            what = "commit";
            rc = sqlite3_exec(iam->db, "COMMIT", NULL, NULL, NULL);
        }
        if (rc != SQLITE_OK && !sqlite3_get_autocommit(iam->db))
            sqlite3_exec(iam->db, "ROLLBACK", NULL, NULL, NULL);
    }
    if (rc != SQLITE_OK)
        kn_log(KN_LOG_WARN, "audit log: %zu rows lost (%s: %s)", n, what, sqlite3_errmsg(iam->db));
    pthread_mutex_unlock(&iam->mu);
}

/* Retention: removes the rows older than cutoff, in rounds of
 * AUDIT_PURGE_ROWS so that IAM lookups (which need iam->mu) wait for one
 * round at the most. */
enum { AUDIT_PURGE_ROWS = 5000 };

static void audit_purge(kn_iam *iam, double cutoff)
{
    static const char *del = "DELETE FROM audit_log WHERE rowid IN (SELECT rowid FROM audit_log "
                             "WHERE time < ?1 ORDER BY time LIMIT 5000)";
    long total = 0;
    for (;;) {
        pthread_mutex_lock(&iam->mu);
        sqlite3_stmt *st = NULL;
        int rc = sqlite3_prepare_v2(iam->db, del, -1, &st, NULL), n = 0;
        if (rc == SQLITE_OK) {
            sqlite3_bind_double(st, 1, cutoff);
            rc = sqlite3_step(st);
            n = sqlite3_changes(iam->db);
        }
        if (rc != SQLITE_DONE)
            kn_log(KN_LOG_WARN, "audit log: removing rows past the retention failed: %s",
                   sqlite3_errmsg(iam->db));
        sqlite3_finalize(st);
        pthread_mutex_unlock(&iam->mu);
        if (rc != SQLITE_DONE)
            return;
        total += n;
        if (n < AUDIT_PURGE_ROWS)
            break;
    }
    if (total)
        kn_log(KN_LOG_INFO, "audit log: removed %ld rows past the retention", total);
}

static void free_rows(kn_iam__audit_row *r)
{
    while (r) {
        kn_iam__audit_row *next = r->next;
        free(r);
        r = next;
    }
}

static void *audit_writer(void *arg)
{
    kn_iam *iam = arg;
    pthread_mutex_lock(&iam->audit_mu);
    for (;;) {
        while (!iam->audit_head && !iam->audit_stop)
            pthread_cond_wait(&iam->audit_cv, &iam->audit_mu);
        if (!iam->audit_head)
            break; /* stopping, nothing left */
        /* let a batch gather */
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += AUDIT_BATCH_MS * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        while (!iam->audit_flush && !iam->audit_stop && iam->audit_queued < AUDIT_BATCH_ROWS)
            if (pthread_cond_timedwait(&iam->audit_cv, &iam->audit_mu, &until))
                break;
        kn_iam__audit_row *rows = iam->audit_head;
        size_t n = iam->audit_queued;
        iam->audit_head = NULL;
        iam->audit_tail = &iam->audit_head;
        iam->audit_queued = 0;
        iam->audit_flush = false;
        pthread_cond_broadcast(&iam->audit_done_cv); /* room in the queue */
        double keep = iam->audit_retention_s;
        pthread_mutex_unlock(&iam->audit_mu);
        audit_write(iam, rows, n);
        double newest = 0;
        for (kn_iam__audit_row *r = rows; r; r = r->next)
            newest = r->time > newest ? r->time : newest;
        free_rows(rows);
        if (keep > 0 && newest - iam->audit_purged_at >= 60) {
            iam->audit_purged_at = newest;
            audit_purge(iam, newest - keep);
        }
        pthread_mutex_lock(&iam->audit_mu);
        iam->audit_written += n;
        pthread_cond_broadcast(&iam->audit_done_cv);
    }
    pthread_mutex_unlock(&iam->audit_mu);
    return NULL;
}

kn_status kn_iam__audit_start(kn_iam *iam, kn_err *e)
{
    int rc = pthread_create(&iam->audit_thread, NULL, audit_writer, iam);
    if (rc)
        return kn_err_set(e, KN_IO, "audit log: cannot start its writer thread (%s)",
                          strerror(rc));
    iam->audit_running = true;
    return KN_OK;
}

void kn_iam__audit_stop(kn_iam *iam)
{
    if (iam->audit_running) {
        pthread_mutex_lock(&iam->audit_mu);
        iam->audit_stop = true;
        pthread_cond_signal(&iam->audit_cv);
        pthread_mutex_unlock(&iam->audit_mu);
        pthread_join(iam->audit_thread, NULL);
        iam->audit_running = false;
    }
    sqlite3_finalize(iam->audit_insert);
    iam->audit_insert = NULL;
}

kn_status kn_iam_audit_add(kn_iam *iam, const kn_audit_rec *r, kn_err *e)
{
    const char *v[8] = {r->principal, r->action,    r->resource,   r->source,
                        r->decision,  r->statement, r->request_id, r->error_code};
    size_t len[8], total = 0;
    for (int i = 0; i < 8; i++) {
        len[i] = v[i] ? strlen(v[i]) : 0;
        total += len[i] + 1;
    }
    kn_iam__audit_row *row = malloc(sizeof *row + total);
    if (!row)
        return kn_err_set(e, KN_NOMEM, "audit log: out of memory");
    row->next = NULL;
    row->time = r->time;
    char *p = (char *)(row + 1);
    for (int i = 0; i < 8; i++) {
        if (len[i])
            memcpy(p, v[i], len[i]);
        p[len[i]] = 0;
        row->v[i] = p;
        p += len[i] + 1;
    }
    pthread_mutex_lock(&iam->audit_mu);
    if (!iam->audit_running || iam->audit_stop) { /* no writer (closing): write it now */
        pthread_mutex_unlock(&iam->audit_mu);
        audit_write(iam, row, 1);
        free(row);
        return KN_OK;
    }
    while (iam->audit_queued >= AUDIT_MAX_QUEUED && !iam->audit_stop)
        pthread_cond_wait(&iam->audit_done_cv, &iam->audit_mu);
    *iam->audit_tail = row;
    iam->audit_tail = &row->next;
    iam->audit_added++;
    if (++iam->audit_queued == 1 || iam->audit_queued >= AUDIT_BATCH_ROWS)
        pthread_cond_signal(&iam->audit_cv);
    pthread_mutex_unlock(&iam->audit_mu);
    return KN_OK;
}

void kn_iam_set_audit_retention(kn_iam *iam, double seconds)
{
    pthread_mutex_lock(&iam->audit_mu);
    iam->audit_retention_s = seconds > 0 ? seconds : 0;
    pthread_mutex_unlock(&iam->audit_mu);
}

void kn_iam_audit_flush(kn_iam *iam)
{
    if (!iam)
        return;
    pthread_mutex_lock(&iam->audit_mu);
    uint64_t target = iam->audit_added;
    while (iam->audit_running && iam->audit_written < target) {
        iam->audit_flush = true;
        pthread_cond_signal(&iam->audit_cv);
        pthread_cond_wait(&iam->audit_done_cv, &iam->audit_mu);
    }
    pthread_mutex_unlock(&iam->audit_mu);
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
