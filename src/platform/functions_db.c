/* Functions in the registry: one JSON document per function (the fn module
 * gives it meaning), the durable queue of Event invocations and the
 * per-minute metrics of each function.
 *
 * Thread-safe: every public call holds r->mu and is one statement.
 */
#include "platform_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static kn_status step_done(kn_registry *r, sqlite3_stmt *st, const char *what, kn_err *e)
{
    int rc = sqlite3_step(st);
    kn_status s = rc == SQLITE_DONE ? KN_OK : kn_registry__sqlite_err(r, rc, what, e);
    sqlite3_finalize(st);
    return s;
}

kn_status kn_registry_fn_init(kn_registry *r, kn_err *e)
{
    /* A function is one JSON document (its versions, aliases and
     * concurrency settings, in the shapes Lambda returns them): the fn
     * module owns its meaning. Event invocations wait in lambda_events
     * until an environment has run them. */
    static const char *sql =
        "CREATE TABLE IF NOT EXISTS lambda_functions (\n"
        "  name TEXT PRIMARY KEY,\n"
        "  doc  TEXT NOT NULL\n"
        ");\n"
        "CREATE TABLE IF NOT EXISTS lambda_events (\n"
        "  id        INTEGER PRIMARY KEY AUTOINCREMENT,\n"
        "  function  TEXT NOT NULL,\n"
        "  qualifier TEXT NOT NULL,\n"
        "  payload   BLOB NOT NULL,\n"
        "  enqueued  REAL NOT NULL\n"
        ");\n"
        "CREATE TABLE IF NOT EXISTS lambda_metrics (\n"
        "  function       TEXT NOT NULL,\n"
        "  minute         INTEGER NOT NULL,\n"
        "  invocations    INTEGER NOT NULL,\n"
        "  errors         INTEGER NOT NULL,\n"
        "  throttles      INTEGER NOT NULL,\n"
        "  duration_ms    REAL NOT NULL,\n"
        "  duration_max   REAL NOT NULL,\n"
        "  concurrent_max INTEGER NOT NULL,\n"
        "  pc_invocations INTEGER NOT NULL,\n"
        "  pc_spillover   INTEGER NOT NULL,\n"
        "  pc_utilization REAL NOT NULL,\n"
        "  PRIMARY KEY (function, minute)\n"
        ") WITHOUT ROWID;\n";
    pthread_mutex_lock(&r->mu);
    char *msg = NULL;
    int rc = sqlite3_exec(r->db, sql, NULL, NULL, &msg);
    sqlite3_free(msg);
    kn_status s =
        rc == SQLITE_OK ? KN_OK : kn_registry__sqlite_err(r, rc, "create function tables", e);
    pthread_mutex_unlock(&r->mu);
    return s;
}

kn_status kn_registry_fn_save(kn_registry *r, const char *name, const char *doc, kn_err *e)
{
    pthread_mutex_lock(&r->mu);
    sqlite3_stmt *st;
    kn_status s = kn_registry__prepare(
        r, "INSERT INTO lambda_functions (name, doc) VALUES (?, ?) "
           "ON CONFLICT(name) DO UPDATE SET doc = excluded.doc", &st, e);
    if (!s) {
        sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 2, doc, -1, SQLITE_TRANSIENT);
        s = step_done(r, st, "save function", e);
    }
    pthread_mutex_unlock(&r->mu);
    return s;
}

kn_status kn_registry_fn_delete(kn_registry *r, const char *name, kn_err *e)
{
    pthread_mutex_lock(&r->mu);
    sqlite3_stmt *st;
    kn_status s = kn_registry__prepare(r, "DELETE FROM lambda_functions WHERE name = ?", &st, e);
    if (!s) {
        sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
        s = step_done(r, st, "delete function", e);
    }
    if (!s && kn_registry__prepare(r, "DELETE FROM lambda_events WHERE function = ?", &st, e) ==
                  KN_OK) {
        sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
        s = step_done(r, st, "delete function events", e);
    }
    pthread_mutex_unlock(&r->mu);
    return s;
}

kn_status kn_registry_fn_each(kn_registry *r,
                              void (*fn)(const char *name, const char *doc, void *ctx),
                              void *ctx, kn_err *e)
{
    pthread_mutex_lock(&r->mu);
    sqlite3_stmt *st;
    kn_status s =
        kn_registry__prepare(r, "SELECT name, doc FROM lambda_functions ORDER BY name", &st, e);
    if (!s) {
        int rc;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW)
            fn((const char *)sqlite3_column_text(st, 0), (const char *)sqlite3_column_text(st, 1),
               ctx);
        if (rc != SQLITE_DONE)
            s = kn_registry__sqlite_err(r, rc, "list functions", e);
        sqlite3_finalize(st);
    }
    pthread_mutex_unlock(&r->mu);
    return s;
}

kn_status kn_registry_fn_event_add(kn_registry *r, const char *function, const char *qualifier,
                                   const void *payload, size_t len, int64_t *id, kn_err *e)
{
    pthread_mutex_lock(&r->mu);
    sqlite3_stmt *st;
    kn_status s = kn_registry__prepare(
        r, "INSERT INTO lambda_events (function, qualifier, payload, enqueued) VALUES (?,?,?,?)",
        &st, e);
    if (!s) {
        sqlite3_bind_text(st, 1, function, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 2, qualifier, -1, SQLITE_TRANSIENT);
        sqlite3_bind_blob64(st, 3, len ? payload : "", len, SQLITE_TRANSIENT);
        sqlite3_bind_double(st, 4, kn_clock_wall(r->clock));
        s = step_done(r, st, "queue event", e);
        if (!s && id)
            *id = sqlite3_last_insert_rowid(r->db);
    }
    pthread_mutex_unlock(&r->mu);
    return s;
}

kn_status kn_registry_fn_event_next(kn_registry *r, int64_t after, int64_t *id, char *function,
                                    size_t fn_n, char *qualifier, size_t q_n, uint8_t **payload,
                                    size_t *len, kn_err *e)
{
    *payload = NULL;
    *len = 0;
    pthread_mutex_lock(&r->mu);
    sqlite3_stmt *st;
    kn_status s = kn_registry__prepare(
        r, "SELECT id, function, qualifier, payload FROM lambda_events WHERE id > ? "
           "ORDER BY id LIMIT 1", &st, e);
    if (!s) {
        sqlite3_bind_int64(st, 1, after);
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            *id = sqlite3_column_int64(st, 0);
            snprintf(function, fn_n, "%s", (const char *)sqlite3_column_text(st, 1));
            snprintf(qualifier, q_n, "%s", (const char *)sqlite3_column_text(st, 2));
            int n = sqlite3_column_bytes(st, 3);
            *payload = malloc((size_t)n + 1);
            if (!*payload) {
                s = kn_err_set(e, KN_NOMEM, "out of memory");
            } else {
                if (n)
                    memcpy(*payload, sqlite3_column_blob(st, 3), (size_t)n);
                (*payload)[n] = 0;
                *len = (size_t)n;
            }
        } else if (rc == SQLITE_DONE) {
            s = KN_NOT_FOUND;
        } else {
            s = kn_registry__sqlite_err(r, rc, "read event queue", e);
        }
        sqlite3_finalize(st);
    }
    pthread_mutex_unlock(&r->mu);
    return s;
}

kn_status kn_registry_fn_event_done(kn_registry *r, int64_t id, kn_err *e)
{
    pthread_mutex_lock(&r->mu);
    sqlite3_stmt *st;
    kn_status s = kn_registry__prepare(r, "DELETE FROM lambda_events WHERE id = ?", &st, e);
    if (!s) {
        sqlite3_bind_int64(st, 1, id);
        s = step_done(r, st, "dequeue event", e);
    }
    pthread_mutex_unlock(&r->mu);
    return s;
}

kn_status kn_registry_fn_metrics_put(kn_registry *r, const char *function, const kn_fn_minute *m,
                                     kn_err *e)
{
    pthread_mutex_lock(&r->mu);
    sqlite3_stmt *st;
    kn_status s = kn_registry__prepare(
        r, "INSERT OR REPLACE INTO lambda_metrics VALUES (?,?,?,?,?,?,?,?,?,?,?)", &st, e);
    if (!s) {
        sqlite3_bind_text(st, 1, function, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(st, 2, m->minute);
        sqlite3_bind_int64(st, 3, m->invocations);
        sqlite3_bind_int64(st, 4, m->errors);
        sqlite3_bind_int64(st, 5, m->throttles);
        sqlite3_bind_double(st, 6, m->duration_ms);
        sqlite3_bind_double(st, 7, m->duration_max);
        sqlite3_bind_int(st, 8, m->concurrent_max);
        sqlite3_bind_int64(st, 9, m->pc_invocations);
        sqlite3_bind_int64(st, 10, m->pc_spillover);
        sqlite3_bind_double(st, 11, m->pc_utilization);
        s = step_done(r, st, "store function metrics", e);
    }
    pthread_mutex_unlock(&r->mu);
    return s;
}

kn_status kn_registry_fn_metrics_get(kn_registry *r, const char *function, int minutes,
                                     kn_fn_minute **out, size_t *n, kn_err *e)
{
    *out = NULL;
    *n = 0;
    if (minutes < 1)
        minutes = 1;
    if (minutes > 10080)
        minutes = 10080;
    kn_fn_minute *v = calloc((size_t)minutes, sizeof *v);
    if (!v)
        return kn_err_set(e, KN_NOMEM, "out of memory");
    pthread_mutex_lock(&r->mu);
    sqlite3_stmt *st;
    kn_status s = kn_registry__prepare(
        r, "SELECT * FROM (SELECT minute, invocations, errors, throttles, duration_ms, "
           "duration_max, concurrent_max, pc_invocations, pc_spillover, pc_utilization "
           "FROM lambda_metrics WHERE function = ? ORDER BY minute DESC LIMIT ?) "
           "ORDER BY minute", &st, e);
    if (!s) {
        sqlite3_bind_text(st, 1, function, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int(st, 2, minutes);
        int rc;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW && *n < (size_t)minutes) {
            kn_fn_minute *m = &v[(*n)++];
            m->minute = sqlite3_column_int64(st, 0);
            m->invocations = sqlite3_column_int64(st, 1);
            m->errors = sqlite3_column_int64(st, 2);
            m->throttles = sqlite3_column_int64(st, 3);
            m->duration_ms = sqlite3_column_double(st, 4);
            m->duration_max = sqlite3_column_double(st, 5);
            m->concurrent_max = sqlite3_column_int(st, 6);
            m->pc_invocations = sqlite3_column_int64(st, 7);
            m->pc_spillover = sqlite3_column_int64(st, 8);
            m->pc_utilization = sqlite3_column_double(st, 9);
        }
        if (rc != SQLITE_DONE && rc != SQLITE_ROW)
            s = kn_registry__sqlite_err(r, rc, "read function metrics", e);
        sqlite3_finalize(st);
    }
    pthread_mutex_unlock(&r->mu);
    if (s) {
        free(v);
        *n = 0;
    } else {
        *out = v;
    }
    return s;
}
