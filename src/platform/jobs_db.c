/* Training jobs and hyperparameter tuning jobs in the registry.
 *
 * A job is stored as one document: the JSON its Describe call answers with
 * (plus kennel's private members under "_kn"), next to the few columns the
 * daemon selects on (name, owning tuning job, status, creation time). The
 * jobs module owns the document's shape; this file only keeps it durable,
 * one transaction per change, so a restart finds every job as it was last
 * written. The tables are created with CREATE TABLE IF NOT EXISTS when the
 * jobs module starts rather than by a numbered migration: they are
 * independent of every other table and may be added to any data dir.
 * Thread-safe (the registry mutex). */
#include "platform_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *table_of(kn_job_kind k)
{
    return k == KN_JOB_TUNING ? "tuning_jobs" : "training_jobs";
}

void kn_job_row_deinit(kn_job_row *row)
{
    if (!row)
        return;
    free(row->name);
    free(row->parent);
    free(row->status);
    free(row->doc);
    memset(row, 0, sizeof *row);
}

kn_status kn_registry_jobs_init(kn_registry *r, kn_err *e)
{
    static const char *sql =
        "CREATE TABLE IF NOT EXISTS training_jobs (\n"
        "  id            INTEGER PRIMARY KEY,\n"
        "  name          TEXT NOT NULL UNIQUE COLLATE NOCASE,\n"
        "  parent        TEXT COLLATE NOCASE,\n"
        "  status        TEXT NOT NULL,\n"
        "  creation_time REAL NOT NULL,\n"
        "  doc           TEXT NOT NULL\n"
        ");\n"
        "CREATE INDEX IF NOT EXISTS training_jobs_by_parent ON training_jobs (parent);\n"
        "CREATE TABLE IF NOT EXISTS tuning_jobs (\n"
        "  id            INTEGER PRIMARY KEY,\n"
        "  name          TEXT NOT NULL UNIQUE COLLATE NOCASE,\n"
        "  parent        TEXT COLLATE NOCASE,\n"
        "  status        TEXT NOT NULL,\n"
        "  creation_time REAL NOT NULL,\n"
        "  doc           TEXT NOT NULL\n"
        ");\n";
    pthread_mutex_lock(&r->mu);
    char *msg = NULL;
    int rc = sqlite3_exec(r->db, sql, NULL, NULL, &msg);
    sqlite3_free(msg);
    kn_status s = rc == SQLITE_OK ? KN_OK : kn_registry__sqlite_err(r, rc, "create job tables", e);
    pthread_mutex_unlock(&r->mu);
    return s;
}

kn_status kn_registry_job_put(kn_registry *r, kn_job_kind kind, const kn_job_row *row,
                              bool create, kn_err *e)
{
    if (!row->name || !row->status || !row->doc)
        return kn_err_set(e, KN_INVALID, "job record is incomplete");
    const char *table = table_of(kind);
    char sql[256];
    if (create)
        snprintf(sql, sizeof sql,
                 "INSERT INTO %s (name, parent, status, creation_time, doc) VALUES (?1, ?2, ?3, "
                 "?4, ?5)",
                 table);
    else
        snprintf(sql, sizeof sql,
                 "UPDATE %s SET parent = ?2, status = ?3, creation_time = ?4, doc = ?5 WHERE "
                 "name = ?1",
                 table);
    pthread_mutex_lock(&r->mu);
    sqlite3_stmt *st = NULL;
    bool found = false;
    kn_status s = kn_registry__begin(r, e);
    if (s)
        goto out;
    if ((s = kn_registry__exists(r, table, row->name, &found, e)))
        goto out;
    if (create && found) {
        char arn[512];
        kn_registry_arn(r, "sagemaker",
                        kind == KN_JOB_TUNING ? "hyper-parameter-tuning-job" : "training-job",
                        row->name, arn, sizeof arn);
        s = kn_err_set(e, KN_RESOURCE_IN_USE, "%s %s already exists: %s",
                       kind == KN_JOB_TUNING ? "Hyperparameter tuning job" : "Training job",
                       row->name, arn);
        goto out;
    }
    if (!create && !found) {
        s = kn_err_set(e, KN_NOT_FOUND, "no job %s to update", row->name);
        goto out;
    }
    if ((s = kn_registry__prepare(r, sql, &st, e)))
        goto out;
    sqlite3_bind_text(st, 1, row->name, -1, SQLITE_STATIC);
    kn_registry__bind_opt_text(st, 2, row->parent);
    sqlite3_bind_text(st, 3, row->status, -1, SQLITE_STATIC);
    sqlite3_bind_double(st, 4, row->creation_time);
    sqlite3_bind_text(st, 5, row->doc, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc != SQLITE_DONE) {
        s = kn_registry__sqlite_err(r, rc, "store job", e);
        goto out;
    }
out:
    s = kn_registry__write_end(r, st, s, e);
    return s;
}

static kn_status read_row(sqlite3_stmt *st, kn_job_row *out, kn_err *e)
{
    bool oom = false;
    out->name = kn_registry__col_strdup(st, 0, &oom);
    out->parent = kn_registry__col_strdup(st, 1, &oom);
    out->status = kn_registry__col_strdup(st, 2, &oom);
    out->creation_time = sqlite3_column_double(st, 3);
    out->doc = kn_registry__col_strdup(st, 4, &oom);
    if (oom || !out->name || !out->status || !out->doc) {
        kn_job_row_deinit(out);
        return kn_err_set(e, KN_NOMEM, "out of memory reading a job");
    }
    return KN_OK;
}

kn_status kn_registry_job_get(kn_registry *r, kn_job_kind kind, const char *name,
                              kn_job_row *out, kn_err *e)
{
    memset(out, 0, sizeof *out);
    char sql[160];
    snprintf(sql, sizeof sql,
             "SELECT name, parent, status, creation_time, doc FROM %s WHERE name = ?",
             table_of(kind));
    pthread_mutex_lock(&r->mu);
    sqlite3_stmt *st = NULL;
    kn_status s = kn_registry__prepare(r, sql, &st, e);
    if (!s) {
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW)
            s = read_row(st, out, e);
        else if (rc == SQLITE_DONE)
            s = kn_err_set(e, KN_NOT_FOUND, "no job %s", name);
        else
            s = kn_registry__sqlite_err(r, rc, "read job", e);
    }
    sqlite3_finalize(st);
    pthread_mutex_unlock(&r->mu);
    return s;
}

kn_status kn_registry_job_list(kn_registry *r, kn_job_kind kind, const char *parent,
                               kn_job_row **rows, size_t *n, kn_err *e)
{
    *rows = NULL;
    *n = 0;
    char sql[200];
    snprintf(sql, sizeof sql,
             "SELECT name, parent, status, creation_time, doc FROM %s %s ORDER BY id",
             table_of(kind), parent ? "WHERE parent = ?" : "");
    pthread_mutex_lock(&r->mu);
    sqlite3_stmt *st = NULL;
    kn_job_row *v = NULL;
    size_t cnt = 0, cap = 0;
    kn_status s = kn_registry__prepare(r, sql, &st, e);
    if (s)
        goto out;
    if (parent)
        sqlite3_bind_text(st, 1, parent, -1, SQLITE_STATIC);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (cnt == cap) {
            size_t nc = cap ? 2 * cap : 16;
            kn_job_row *nv = realloc(v, nc * sizeof *nv);
            if (!nv) {
                s = kn_err_set(e, KN_NOMEM, "out of memory listing jobs");
                goto out;
            }
            v = nv;
            cap = nc;
        }
        memset(&v[cnt], 0, sizeof v[cnt]);
        if ((s = read_row(st, &v[cnt], e)))
            goto out;
        cnt++;
    }
    if (rc != SQLITE_DONE)
        s = kn_registry__sqlite_err(r, rc, "list jobs", e);
out:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&r->mu);
    if (s) {
        for (size_t i = 0; i < cnt; i++)
            kn_job_row_deinit(&v[i]);
        free(v);
        return s;
    }
    *rows = v;
    *n = cnt;
    return KN_OK;
}
