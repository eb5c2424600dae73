/* Autoscaling state and metrics in the registry: scalable targets, scaling
 * policies, scaling activities (Application Auto Scaling) and the
 * per-minute series of endpoint variants. Lists are small (a handful of
 * targets per endpoint), so they are returned whole; the API pages them.
 *
 * Thread-safe: every public call holds r->mu and is one statement or one
 * transaction.
 */
#include "platform_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ROWS 10000

void kn_scalable_target_rec_deinit(kn_scalable_target_rec *t)
{
    if (!t)
        return;
    free(t->resource_id);
    free(t->endpoint);
    free(t->variant);
    free(t->arn);
    free(t->role_arn);
    memset(t, 0, sizeof *t);
}

void kn_scaling_policy_rec_deinit(kn_scaling_policy_rec *p)
{
    if (!p)
        return;
    free(p->resource_id);
    free(p->name);
    free(p->arn);
    free(p->config_json);
    free(p->alarm_high);
    free(p->alarm_low);
    memset(p, 0, sizeof *p);
}

void kn_scaling_activity_rec_deinit(kn_scaling_activity_rec *a)
{
    if (!a)
        return;
    free(a->id);
    free(a->resource_id);
    free(a->description);
    free(a->cause);
    free(a->status_code);
    free(a->status_message);
    memset(a, 0, sizeof *a);
}

static kn_status not_registered(const char *resource_id, kn_err *e)
{
    return kn_err_set(e, KN_OBJECT_NOT_FOUND,
                      "No scalable target registered for service namespace: sagemaker, "
                      "resource ID: %s, scalable dimension: "
                      "sagemaker:variant:DesiredInstanceCount",
                      resource_id);
}

/* ------------------------------------------------------------- targets */

#define TARGET_COLS                                                                          \
    "resource_id, endpoint, variant, arn, min_capacity, max_capacity, role_arn, "            \
    "suspended_in, suspended_out, suspended_sched, creation_time"

static kn_status target_from_row(sqlite3_stmt *st, kn_scalable_target_rec *t, kn_err *e)
{
    bool oom = false;
    memset(t, 0, sizeof *t);
    t->resource_id = kn_registry__col_strdup(st, 0, &oom);
    t->endpoint = kn_registry__col_strdup(st, 1, &oom);
    t->variant = kn_registry__col_strdup(st, 2, &oom);
    t->arn = kn_registry__col_strdup(st, 3, &oom);
    t->min_capacity = sqlite3_column_int(st, 4);
    t->max_capacity = sqlite3_column_int(st, 5);
    t->role_arn = kn_registry__col_strdup(st, 6, &oom);
    t->suspended_in = sqlite3_column_int(st, 7) != 0;
    t->suspended_out = sqlite3_column_int(st, 8) != 0;
    t->suspended_scheduled = sqlite3_column_int(st, 9) != 0;
    t->creation_time = sqlite3_column_double(st, 10);
    if (oom) {
        kn_scalable_target_rec_deinit(t);
        return kn_err_set(e, KN_NOMEM, "out of memory");
    }
    return KN_OK;
}

/* Collects the rows of a prepared statement through `conv` into a growing
 * array of `size`-byte records. The caller holds r->mu. */
typedef kn_status (*conv_fn)(sqlite3_stmt *st, void *rec, kn_err *e);

static kn_status collect(kn_registry *r, sqlite3_stmt *st, conv_fn conv, size_t size,
                         void **items, size_t *n, kn_err *e)
{
    *items = NULL;
    *n = 0;
    kn_status s = KN_OK;
    int rc;
    char *arr = NULL;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW && *n < MAX_ROWS) {
        char *grown = realloc(arr, (*n + 1) * size);
        if (!grown) {
            s = kn_err_set(e, KN_NOMEM, "out of memory");
            break;
        }
        arr = grown;
        if ((s = conv(st, arr + *n * size, e)))
            break;
        (*n)++;
    }
    if (!s && rc != SQLITE_ROW && rc != SQLITE_DONE)
        s = kn_registry__sqlite_err(r, rc, "list", e);
    *items = arr;
    return s;
}

static kn_status conv_target(sqlite3_stmt *st, void *rec, kn_err *e)
{
    return target_from_row(st, rec, e);
}

kn_status kn_registry_target_put(kn_registry *r, const kn_scalable_target_rec *t, bool *created,
                                 kn_scalable_target_rec *out, kn_err *e)
{
    memset(out, 0, sizeof *out);
    *created = false;
    pthread_mutex_lock(&r->mu);
    sqlite3_stmt *get = NULL, *put = NULL;
    kn_status s = kn_registry__begin(r, e);
    if (s)
        goto out;
    if ((s = kn_registry__prepare(
             r, "SELECT " TARGET_COLS " FROM scalable_targets WHERE resource_id = ?", &get, e)))
        goto out;
    sqlite3_bind_text(get, 1, t->resource_id, -1, SQLITE_STATIC);
    kn_scalable_target_rec cur;
    int rc = sqlite3_step(get);
    bool have = rc == SQLITE_ROW;
    if (have) {
        if ((s = target_from_row(get, &cur, e)))
            goto out;
    } else if (rc != SQLITE_DONE) {
        s = kn_registry__sqlite_err(r, rc, "read scalable target", e);
        goto out;
    } else {
        if (t->min_capacity < 0 || t->max_capacity < 0) {
            s = kn_err_set(e, KN_INVALID,
                           "MinCapacity and MaxCapacity are required to register a new "
                           "scalable target");
            goto out;
        }
        memset(&cur, 0, sizeof cur);
        cur.creation_time = kn_clock_wall(r->clock);
    }
    int min = t->min_capacity >= 0 ? t->min_capacity : cur.min_capacity;
    int max = t->max_capacity >= 0 ? t->max_capacity : cur.max_capacity;
    const char *role = t->role_arn ? t->role_arn : cur.role_arn;
    double created_at = cur.creation_time;
    if (min > max) {
        kn_scalable_target_rec_deinit(&cur);
        s = kn_err_set(e, KN_INVALID,
                       "Minimum capacity (%d) cannot be greater than maximum capacity (%d)", min,
                       max);
        goto out;
    }
    if ((s = kn_registry__prepare(
             r,
             "INSERT OR REPLACE INTO scalable_targets (" TARGET_COLS ") "
             "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
             &put, e))) {
        kn_scalable_target_rec_deinit(&cur);
        goto out;
    }
    sqlite3_bind_text(put, 1, t->resource_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(put, 2, t->endpoint, -1, SQLITE_STATIC);
    sqlite3_bind_text(put, 3, t->variant, -1, SQLITE_STATIC);
    sqlite3_bind_text(put, 4, t->arn, -1, SQLITE_STATIC);
    sqlite3_bind_int(put, 5, min);
    sqlite3_bind_int(put, 6, max);
    kn_registry__bind_opt_text(put, 7, role);
    sqlite3_bind_int(put, 8, t->suspended_in);
    sqlite3_bind_int(put, 9, t->suspended_out);
    sqlite3_bind_int(put, 10, t->suspended_scheduled);
    sqlite3_bind_double(put, 11, created_at);
    rc = sqlite3_step(put);
    kn_scalable_target_rec_deinit(&cur);
    if (rc != SQLITE_DONE) {
        s = kn_registry__sqlite_err(r, rc, "write scalable target", e);
        goto out;
    }
    /* read back what is stored */
    sqlite3_reset(get);
    if (sqlite3_step(get) != SQLITE_ROW || (s = target_from_row(get, out, e))) {
        if (!s)
            s = kn_registry__sqlite_err(r, sqlite3_errcode(r->db), "read scalable target", e);
        goto out;
    }
    if ((s = kn_registry__commit(r, e)))
        kn_scalable_target_rec_deinit(out);
    else
        *created = !have;
out:
    sqlite3_finalize(get);
    sqlite3_finalize(put);
    if (s)
        kn_registry__rollback(r);
    pthread_mutex_unlock(&r->mu);
    return s;
}

kn_status kn_registry_target_list(kn_registry *r, const char *resource_id,
                                  kn_scalable_target_rec **items, size_t *n, kn_err *e)
{
    pthread_mutex_lock(&r->mu);
    sqlite3_stmt *st;
    kn_status s = kn_registry__prepare(r,
                                       resource_id
                                           ? "SELECT " TARGET_COLS " FROM scalable_targets "
                                             "WHERE resource_id = ?"
                                           : "SELECT " TARGET_COLS " FROM scalable_targets "
                                             "ORDER BY creation_time, resource_id",
                                       &st, e);
    void *arr = NULL;
    *n = 0;
    if (!s) {
        if (resource_id)
            sqlite3_bind_text(st, 1, resource_id, -1, SQLITE_STATIC);
        s = collect(r, st, conv_target, sizeof(kn_scalable_target_rec), &arr, n, e);
        sqlite3_finalize(st);
    }
    pthread_mutex_unlock(&r->mu);
    *items = arr;
    if (s) {
        for (size_t i = 0; i < *n; i++)
            kn_scalable_target_rec_deinit(&(*items)[i]);
        free(*items);
        *items = NULL;
        *n = 0;
    }
    return s;
}

static kn_status delete_where(kn_registry *r, const char *sql, const char *a, const char *b,
                              const char *resource_id, bool policy, kn_err *e)
{
    pthread_mutex_lock(&r->mu);
    sqlite3_stmt *st;
    kn_status s = kn_registry__prepare(r, sql, &st, e);
    if (!s) {
        sqlite3_bind_text(st, 1, a, -1, SQLITE_STATIC);
        if (b)
            sqlite3_bind_text(st, 2, b, -1, SQLITE_STATIC);
        int rc = sqlite3_step(st);
        if (rc != SQLITE_DONE)
            s = kn_registry__sqlite_err(r, rc, "delete", e);
        else if (sqlite3_changes(r->db) == 0)
            s = policy ? kn_err_set(e, KN_OBJECT_NOT_FOUND,
                                    "No scaling policy found for service namespace: sagemaker, "
                                    "resource ID: %s, scalable dimension: "
                                    "sagemaker:variant:DesiredInstanceCount, policy name: %s",
                                    resource_id, b)
                       : not_registered(resource_id, e);
        sqlite3_finalize(st);
    }
    pthread_mutex_unlock(&r->mu);
    return s;
}

kn_status kn_registry_target_delete(kn_registry *r, const char *resource_id, kn_err *e)
{
    return delete_where(r, "DELETE FROM scalable_targets WHERE resource_id = ?", resource_id,
                        NULL, resource_id, false, e);
}

/* ------------------------------------------------------------ policies */

#define POLICY_COLS                                                                          \
    "resource_id, name, arn, target_value, scale_out_cooldown, scale_in_cooldown, "          \
    "disable_scale_in, config, alarm_high, alarm_low, creation_time"

static kn_status conv_policy(sqlite3_stmt *st, void *rec, kn_err *e)
{
    kn_scaling_policy_rec *p = rec;
    bool oom = false;
    memset(p, 0, sizeof *p);
    p->resource_id = kn_registry__col_strdup(st, 0, &oom);
    p->name = kn_registry__col_strdup(st, 1, &oom);
    p->arn = kn_registry__col_strdup(st, 2, &oom);
    p->target_value = sqlite3_column_double(st, 3);
    p->scale_out_cooldown = sqlite3_column_double(st, 4);
    p->scale_in_cooldown = sqlite3_column_double(st, 5);
    p->disable_scale_in = sqlite3_column_int(st, 6) != 0;
    p->config_json = kn_registry__col_strdup(st, 7, &oom);
    p->alarm_high = kn_registry__col_strdup(st, 8, &oom);
    p->alarm_low = kn_registry__col_strdup(st, 9, &oom);
    p->creation_time = sqlite3_column_double(st, 10);
    if (oom) {
        kn_scaling_policy_rec_deinit(p);
        return kn_err_set(e, KN_NOMEM, "out of memory");
    }
    return KN_OK;
}

kn_status kn_registry_policy_put(kn_registry *r, const kn_scaling_policy_rec *p, kn_err *e)
{
    pthread_mutex_lock(&r->mu);
    sqlite3_stmt *st = NULL;
    kn_status s = kn_registry__begin(r, e);
    bool found = false;
    if (s)
        goto out;
    if ((s = kn_registry__prepare(r, "SELECT 1 FROM scalable_targets WHERE resource_id = ?", &st,
                                  e)))
        goto out;
    sqlite3_bind_text(st, 1, p->resource_id, -1, SQLITE_STATIC);
    found = sqlite3_step(st) == SQLITE_ROW;
    sqlite3_finalize(st);
    st = NULL;
    if (!found) {
        s = not_registered(p->resource_id, e);
        goto out;
    }
    if ((s = kn_registry__prepare(
             r,
             "INSERT INTO scaling_policies (" POLICY_COLS ") VALUES "
             "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (resource_id, name) DO UPDATE SET "
             "target_value = excluded.target_value, "
             "scale_out_cooldown = excluded.scale_out_cooldown, "
             "scale_in_cooldown = excluded.scale_in_cooldown, "
             "disable_scale_in = excluded.disable_scale_in, config = excluded.config",
             &st, e)))
        goto out;
    sqlite3_bind_text(st, 1, p->resource_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, p->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, p->arn, -1, SQLITE_STATIC);
    sqlite3_bind_double(st, 4, p->target_value);
    sqlite3_bind_double(st, 5, p->scale_out_cooldown);
    sqlite3_bind_double(st, 6, p->scale_in_cooldown);
    sqlite3_bind_int(st, 7, p->disable_scale_in);
    sqlite3_bind_text(st, 8, p->config_json, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 9, p->alarm_high, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 10, p->alarm_low, -1, SQLITE_STATIC);
    sqlite3_bind_double(st, 11, kn_clock_wall(r->clock));
    int rc = sqlite3_step(st);
    if (rc != SQLITE_DONE) {
        s = kn_registry__sqlite_err(r, rc, "write scaling policy", e);
        goto out;
    }
out:
    s = kn_registry__write_end(r, st, s, e);
    return s;
}

kn_status kn_registry_policy_list(kn_registry *r, const char *resource_id,
                                  kn_scaling_policy_rec **items, size_t *n, kn_err *e)
{
    pthread_mutex_lock(&r->mu);
    sqlite3_stmt *st;
    kn_status s = kn_registry__prepare(r,
                                       resource_id
                                           ? "SELECT " POLICY_COLS " FROM scaling_policies "
                                             "WHERE resource_id = ? ORDER BY creation_time"
                                           : "SELECT " POLICY_COLS " FROM scaling_policies "
                                             "ORDER BY creation_time",
                                       &st, e);
    void *arr = NULL;
    *n = 0;
    if (!s) {
        if (resource_id)
            sqlite3_bind_text(st, 1, resource_id, -1, SQLITE_STATIC);
        s = collect(r, st, conv_policy, sizeof(kn_scaling_policy_rec), &arr, n, e);
        sqlite3_finalize(st);
    }
    pthread_mutex_unlock(&r->mu);
    *items = arr;
    if (s) {
        for (size_t i = 0; i < *n; i++)
            kn_scaling_policy_rec_deinit(&(*items)[i]);
        free(*items);
        *items = NULL;
        *n = 0;
    }
    return s;
}

kn_status kn_registry_policy_delete(kn_registry *r, const char *resource_id, const char *name,
                                    kn_err *e)
{
    return delete_where(r, "DELETE FROM scaling_policies WHERE resource_id = ? AND name = ?",
                        resource_id, name, resource_id, true, e);
}

/* ---------------------------------------------------------- activities */

kn_status kn_registry_activity_add(kn_registry *r, const kn_scaling_activity_rec *a, kn_err *e)
{
    pthread_mutex_lock(&r->mu);
    sqlite3_stmt *st;
    kn_status s = kn_registry__prepare(
        r,
        "INSERT INTO scaling_activities (id, resource_id, description, cause, status_code, "
        "status_message, start_time, end_time) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        &st, e);
    if (!s) {
        sqlite3_bind_text(st, 1, a->id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, a->resource_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, a->description, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, a->cause, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 5, a->status_code, -1, SQLITE_STATIC);
        kn_registry__bind_opt_text(st, 6, a->status_message);
        sqlite3_bind_double(st, 7, a->start_time);
        if (a->end_time > 0)
            sqlite3_bind_double(st, 8, a->end_time);
        else
            sqlite3_bind_null(st, 8);
        int rc = sqlite3_step(st);
        if (rc != SQLITE_DONE)
            s = kn_registry__sqlite_err(r, rc, "write scaling activity", e);
        sqlite3_finalize(st);
    }
    pthread_mutex_unlock(&r->mu);
    return s;
}

kn_status kn_registry_activity_finish(kn_registry *r, const char *id, const char *status,
                                      const char *message, double end_time, kn_err *e)
{
    pthread_mutex_lock(&r->mu);
    sqlite3_stmt *st;
    kn_status s = kn_registry__prepare(r,
                                       "UPDATE scaling_activities SET status_code = ?, "
                                       "status_message = ?, end_time = ? WHERE id = ?",
                                       &st, e);
    if (!s) {
        sqlite3_bind_text(st, 1, status, -1, SQLITE_STATIC);
        kn_registry__bind_opt_text(st, 2, message);
        sqlite3_bind_double(st, 3, end_time);
        sqlite3_bind_text(st, 4, id, -1, SQLITE_STATIC);
        int rc = sqlite3_step(st);
        if (rc != SQLITE_DONE)
            s = kn_registry__sqlite_err(r, rc, "update scaling activity", e);
        sqlite3_finalize(st);
    }
    pthread_mutex_unlock(&r->mu);
    return s;
}

static kn_status conv_activity(sqlite3_stmt *st, void *rec, kn_err *e)
{
    kn_scaling_activity_rec *a = rec;
    bool oom = false;
    memset(a, 0, sizeof *a);
    a->id = kn_registry__col_strdup(st, 0, &oom);
    a->resource_id = kn_registry__col_strdup(st, 1, &oom);
    a->description = kn_registry__col_strdup(st, 2, &oom);
    a->cause = kn_registry__col_strdup(st, 3, &oom);
    a->status_code = kn_registry__col_strdup(st, 4, &oom);
    a->status_message = kn_registry__col_strdup(st, 5, &oom);
    a->start_time = sqlite3_column_double(st, 6);
    a->end_time = sqlite3_column_type(st, 7) == SQLITE_NULL ? 0 : sqlite3_column_double(st, 7);
    if (oom) {
        kn_scaling_activity_rec_deinit(a);
        return kn_err_set(e, KN_NOMEM, "out of memory");
    }
    return KN_OK;
}

kn_status kn_registry_activity_list(kn_registry *r, const char *resource_id,
                                    kn_scaling_activity_rec **items, size_t *n, kn_err *e)
{
    pthread_mutex_lock(&r->mu);
    sqlite3_stmt *st;
    static const char cols[] = "id, resource_id, description, cause, status_code, "
                               "status_message, start_time, end_time";
    char sql[400];
    snprintf(sql, sizeof sql, "SELECT %s FROM scaling_activities %s ORDER BY seq DESC LIMIT %d",
             cols, resource_id ? "WHERE resource_id = ?" : "", MAX_ROWS);
    kn_status s = kn_registry__prepare(r, sql, &st, e);
    void *arr = NULL;
    *n = 0;
    if (!s) {
        if (resource_id)
            sqlite3_bind_text(st, 1, resource_id, -1, SQLITE_STATIC);
        s = collect(r, st, conv_activity, sizeof(kn_scaling_activity_rec), &arr, n, e);
        sqlite3_finalize(st);
    }
    pthread_mutex_unlock(&r->mu);
    *items = arr;
    if (s) {
        for (size_t i = 0; i < *n; i++)
            kn_scaling_activity_rec_deinit(&(*items)[i]);
        free(*items);
        *items = NULL;
        *n = 0;
    }
    return s;
}

/* ------------------------------------------------------------- metrics */

kn_status kn_registry_metrics_put(kn_registry *r, const char *endpoint, const char *variant,
                                  const kn_variant_minute *m, kn_err *e)
{
    pthread_mutex_lock(&r->mu);
    sqlite3_stmt *st;
    kn_status s = kn_registry__prepare(
        r,
        "INSERT OR REPLACE INTO variant_metrics (endpoint, variant, minute, invocations, "
        "per_instance, model_latency_us, overhead_latency_us, errors_4xx, errors_5xx, "
        "instances, latency_p50_us, latency_p99_us) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        &st, e);
    if (!s) {
        sqlite3_bind_text(st, 1, endpoint, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, variant, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, m->minute);
        sqlite3_bind_int64(st, 4, (sqlite3_int64)m->invocations);
        sqlite3_bind_double(st, 5, m->per_instance);
        sqlite3_bind_double(st, 6, m->model_latency_us);
        sqlite3_bind_double(st, 7, m->overhead_latency_us);
        sqlite3_bind_int64(st, 8, (sqlite3_int64)m->errors_4xx);
        sqlite3_bind_int64(st, 9, (sqlite3_int64)m->errors_5xx);
        sqlite3_bind_int(st, 10, m->instances);
        sqlite3_bind_double(st, 11, m->latency_p50_us);
        sqlite3_bind_double(st, 12, m->latency_p99_us);
        int rc = sqlite3_step(st);
        if (rc != SQLITE_DONE)
            s = kn_registry__sqlite_err(r, rc, "write metrics", e);
        sqlite3_finalize(st);
    }
    pthread_mutex_unlock(&r->mu);
    return s;
}

static kn_status conv_minute(sqlite3_stmt *st, void *rec, kn_err *e)
{
    (void)e;
    kn_variant_minute *m = rec;
    m->minute = sqlite3_column_int64(st, 0);
    m->invocations = (uint64_t)sqlite3_column_int64(st, 1);
    m->per_instance = sqlite3_column_double(st, 2);
    m->model_latency_us = sqlite3_column_double(st, 3);
    m->overhead_latency_us = sqlite3_column_double(st, 4);
    m->errors_4xx = (uint64_t)sqlite3_column_int64(st, 5);
    m->errors_5xx = (uint64_t)sqlite3_column_int64(st, 6);
    m->instances = sqlite3_column_int(st, 7);
    m->latency_p50_us = sqlite3_column_double(st, 8);
    m->latency_p99_us = sqlite3_column_double(st, 9);
    return KN_OK;
}

kn_status kn_registry_metrics_get(kn_registry *r, const char *endpoint, const char *variant,
                                  int64_t from, int64_t to, kn_variant_minute **items, size_t *n,
                                  kn_err *e)
{
    pthread_mutex_lock(&r->mu);
    sqlite3_stmt *st;
    kn_status s = kn_registry__prepare(
        r,
        "SELECT minute, invocations, per_instance, model_latency_us, overhead_latency_us, "
        "errors_4xx, errors_5xx, instances, latency_p50_us, latency_p99_us FROM "
        "variant_metrics WHERE endpoint = ? AND "
        "variant = ? AND minute BETWEEN ? AND ? ORDER BY minute",
        &st, e);
    void *arr = NULL;
    *n = 0;
    if (!s) {
        sqlite3_bind_text(st, 1, endpoint, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, variant, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, from);
        sqlite3_bind_int64(st, 4, to);
        s = collect(r, st, conv_minute, sizeof(kn_variant_minute), &arr, n, e);
        sqlite3_finalize(st);
    }
    pthread_mutex_unlock(&r->mu);
    *items = arr;
    if (s) {
        free(*items);
        *items = NULL;
        *n = 0;
    }
    return s;
}
