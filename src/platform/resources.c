/* Control-plane resources in the registry: SageMaker models and endpoint
 * configurations (create, get, delete, list with keyset pagination).
 *
 * Each public call holds the registry mutex and is one transaction, so a
 * check ("does the model exist?") and the change that depends on it can
 * never be split by another request. Messages for missing and duplicate
 * resources are AWS's own wording, with the ARN of the resource asked for.
 */
#include "platform_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ARN_MAX 512

/* ------------------------------------------------------------- records */

void kn_model_rec_deinit(kn_model_rec *m)
{
    if (!m)
        return;
    free(m->name);
    free(m->arn);
    free(m->execution_role_arn);
    free(m->container_json);
    free(m->model_data_url);
    free(m->model_data_path);
    free(m->tags_json);
    memset(m, 0, sizeof *m);
}

void kn_endpoint_config_rec_deinit(kn_endpoint_config_rec *c)
{
    if (!c)
        return;
    free(c->name);
    free(c->arn);
    free(c->kms_key_id);
    free(c->tags_json);
    for (int i = 0; i < c->n_variants; i++) {
        free(c->variants[i].variant_name);
        free(c->variants[i].model_name);
        free(c->variants[i].instance_type);
    }
    free(c->variants);
    memset(c, 0, sizeof *c);
}

void kn_model_page_deinit(kn_model_page *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->n; i++)
        kn_model_rec_deinit(&p->items[i]);
    free(p->items);
    free(p->next_token);
    memset(p, 0, sizeof *p);
}

void kn_endpoint_config_page_deinit(kn_endpoint_config_page *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->n; i++)
        kn_endpoint_config_rec_deinit(&p->items[i]);
    free(p->items);
    free(p->next_token);
    memset(p, 0, sizeof *p);
}

kn_list_params kn_list_default_params(void)
{
    kn_list_params q;
    memset(&q, 0, sizeof q);
    q.sort_by = KN_SORT_CREATION_TIME;
    q.ascending = false;
    q.max_results = 10;
    return q;
}

/* ------------------------------------------------------------- helpers */

kn_status kn_registry__exists(kn_registry *r, const char *table, const char *name, bool *found,
                             kn_err *e)
{
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT 1 FROM %s WHERE name = ?", table);
    sqlite3_stmt *st;
    kn_status s = kn_registry__prepare(r, sql, &st, e);
    if (s)
        return s;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *found = true;
    else if (rc == SQLITE_DONE)
        *found = false;
    else
        s = kn_registry__sqlite_err(r, rc, "lookup", e);
    sqlite3_finalize(st);
    return s;
}

void kn_registry__bind_opt_text(sqlite3_stmt *st, int i, const char *v)
{
    if (v)
        sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, i);
}

static void bind_opt_int(sqlite3_stmt *st, int i, int v)
{
    if (v > 0)
        sqlite3_bind_int(st, i, v);
    else
        sqlite3_bind_null(st, i);
}

/* ---------------------------------------------------------------- models */

kn_status kn_registry_model_create(kn_registry *r, kn_model_rec *m, kn_err *e)
{
    char arn[ARN_MAX];
    if (!m->name || !m->execution_role_arn || !m->container_json || !m->model_data_url ||
        !m->model_data_path)
        return kn_err_set(e, KN_INVALID, "model record is incomplete");
    kn_registry_arn(r, "sagemaker", "model", m->name, arn, sizeof arn);
    char *arn_copy = strdup(arn);
    if (!arn_copy)
        return kn_err_set(e, KN_NOMEM, "out of memory");

    pthread_mutex_lock(&r->mu);
    sqlite3_stmt *st = NULL;
    bool found = false;
    double now = kn_clock_wall(r->clock);
    kn_status s = kn_registry__begin(r, e);
    if (s)
        goto out;
    if ((s = kn_registry__exists(r, "models", m->name, &found, e)))
        goto out;
    if (found) {
        s = kn_err_set(e, KN_EXISTS, "Cannot create already existing model \"%s\".", arn);
        goto out;
    }
    if ((s = kn_registry__prepare(r,
                                  "INSERT INTO models (name, arn, execution_role_arn, container, "
                                  "model_data_url, model_data_path, network_isolation, tags, "
                                  "creation_time) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                                  &st, e)))
        goto out;
    sqlite3_bind_text(st, 1, m->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, arn, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, m->execution_role_arn, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, m->container_json, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, m->model_data_url, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 6, m->model_data_path, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 7, m->network_isolation ? 1 : 0);
    kn_registry__bind_opt_text(st, 8, m->tags_json);
    sqlite3_bind_double(st, 9, now);
    int rc = sqlite3_step(st);
    if (rc != SQLITE_DONE) {
        s = kn_registry__sqlite_err(r, rc, "insert model", e);
        goto out;
    }
out:
    s = kn_registry__write_end(r, st, s, e);
    if (s) {
        free(arn_copy);
        return s;
    }
    free(m->arn);
    m->arn = arn_copy;
    m->creation_time = now;
    return KN_OK;
}

/* Columns: name, arn, creation_time, then (full rows only) role, container,
 * url, path, isolation, tags. */
static kn_status model_from_row(sqlite3_stmt *st, bool full, kn_model_rec *m, kn_err *e)
{
    bool oom = false;
    memset(m, 0, sizeof *m);
    m->name = kn_registry__col_strdup(st, 0, &oom);
    m->arn = kn_registry__col_strdup(st, 1, &oom);
    m->creation_time = sqlite3_column_double(st, 2);
    if (full) {
        m->execution_role_arn = kn_registry__col_strdup(st, 3, &oom);
        m->container_json = kn_registry__col_strdup(st, 4, &oom);
        m->model_data_url = kn_registry__col_strdup(st, 5, &oom);
        m->model_data_path = kn_registry__col_strdup(st, 6, &oom);
        m->network_isolation = sqlite3_column_int(st, 7) != 0;
        m->tags_json = kn_registry__col_strdup(st, 8, &oom);
    }
    if (oom) {
        kn_model_rec_deinit(m);
        return kn_err_set(e, KN_NOMEM, "out of memory");
    }
    return KN_OK;
}

kn_status kn_registry_model_get(kn_registry *r, const char *name, kn_model_rec *out, kn_err *e)
{
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&r->mu);
    sqlite3_stmt *st;
    kn_status s = kn_registry__prepare(
        r,
        "SELECT name, arn, creation_time, execution_role_arn, container, model_data_url, "
        "model_data_path, network_isolation, tags FROM models WHERE name = ?",
        &st, e);
    if (!s) {
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            s = model_from_row(st, true, out, e);
        } else if (rc == SQLITE_DONE) {
            char arn[ARN_MAX];
            kn_registry_arn(r, "sagemaker", "model", name, arn, sizeof arn);
            s = kn_err_set(e, KN_NOT_FOUND, "Could not find model \"%s\".", arn);
        } else {
            s = kn_registry__sqlite_err(r, rc, "read model", e);
        }
        sqlite3_finalize(st);
    }
    pthread_mutex_unlock(&r->mu);
    return s;
}

static kn_status delete_named(kn_registry *r, const char *table, const char *type,
                              const char *what, const char *name, kn_err *e)
{
    char sql[128];
    snprintf(sql, sizeof sql, "DELETE FROM %s WHERE name = ?", table);
    pthread_mutex_lock(&r->mu);
    sqlite3_stmt *st = NULL;
    kn_status s = kn_registry__begin(r, e);
    if (s)
        goto out;
    if ((s = kn_registry__prepare(r, sql, &st, e)))
        goto out;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc != SQLITE_DONE) {
        s = kn_registry__sqlite_err(r, rc, "delete", e);
        goto out;
    }
    if (sqlite3_changes(r->db) == 0) {
        char arn[ARN_MAX];
        kn_registry_arn(r, "sagemaker", type, name, arn, sizeof arn);
        s = kn_err_set(e, KN_NOT_FOUND, "Could not find %s \"%s\".", what, arn);
        goto out;
    }
out:
    s = kn_registry__write_end(r, st, s, e);
    return s;
}

kn_status kn_registry_model_delete(kn_registry *r, const char *name, kn_err *e)
{
    return delete_named(r, "models", "model", "model", name, e);
}

/* ------------------------------------------------------------- listing */

/* Runs a filtered, ordered, keyset-paginated SELECT of `cols` (the first
 * three are name, arn, creation_time; the last is id) over `table`, calling
 * `fn` for up to max_results rows. status_equals needs a `status` column.
 * The caller holds r->mu. */
kn_status kn_registry__list_rows(kn_registry *r, const char *table, const char *cols,
                                 const kn_list_params *q, kn_registry__row_fn fn, void *ctx,
                                 char **next_token, kn_err *e)
{
    *next_token = NULL;
    int max = q->max_results;
    if (max < 1 || max > 100)
        return kn_err_set(e, KN_INVALID, "MaxResults %d is outside 1..100", max);
    kn_page_pos after;
    bool has_after = false;
    if (q->next_token && *q->next_token) {
        kn_status s = kn_registry__token_decode(q->next_token, &after, e);
        if (s)
            return s;
        if (after.sort_by != q->sort_by || after.ascending != q->ascending)
            return kn_err_set(e, KN_INVALID,
                              "Invalid pagination token: it belongs to a listing with a "
                              "different SortBy or SortOrder");
        has_after = true;
    }
    bool by_name = q->sort_by == KN_SORT_NAME;
    const char *dir = q->ascending ? "ASC" : "DESC";
    const char *cmp = q->ascending ? ">" : "<";
    char sql[1024];
    int n = snprintf(sql, sizeof sql, "SELECT %s FROM %s WHERE 1", cols, table);
    if (q->name_contains)
        n += snprintf(sql + n, sizeof sql - (size_t)n,
                      " AND instr(lower(name), lower(?1)) > 0");
    if (q->has_created_before)
        n += snprintf(sql + n, sizeof sql - (size_t)n, " AND creation_time < ?2");
    if (q->has_created_after)
        n += snprintf(sql + n, sizeof sql - (size_t)n, " AND creation_time > ?3");
    if (q->status_equals)
        n += snprintf(sql + n, sizeof sql - (size_t)n, " AND status = ?8");
    if (has_after) {
        if (by_name)
            n += snprintf(sql + n, sizeof sql - (size_t)n, " AND name %s ?4", cmp);
        else
            n += snprintf(sql + n, sizeof sql - (size_t)n,
                          " AND (creation_time %s ?5 OR (creation_time = ?5 AND id %s ?6))", cmp,
                          cmp);
    }
    if (by_name)
        snprintf(sql + n, sizeof sql - (size_t)n, " ORDER BY name %s LIMIT ?7", dir);
    else
        snprintf(sql + n, sizeof sql - (size_t)n, " ORDER BY creation_time %s, id %s LIMIT ?7",
                 dir, dir);

    sqlite3_stmt *st;
    kn_status s = kn_registry__prepare(r, sql, &st, e);
    if (s)
        return s;
    if (q->name_contains)
        sqlite3_bind_text(st, 1, q->name_contains, -1, SQLITE_STATIC);
    if (q->has_created_before)
        sqlite3_bind_double(st, 2, q->created_before);
    if (q->has_created_after)
        sqlite3_bind_double(st, 3, q->created_after);
    if (has_after) {
        if (by_name) {
            sqlite3_bind_text(st, 4, after.name, -1, SQLITE_STATIC);
        } else {
            sqlite3_bind_double(st, 5, after.time);
            sqlite3_bind_int64(st, 6, after.id);
        }
    }
    if (q->status_equals)
        sqlite3_bind_text(st, 8, q->status_equals, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 7, max + 1);
    int rows = 0, rc;
    kn_page_pos last = {.sort_by = q->sort_by, .ascending = q->ascending};
    int id_col = sqlite3_column_count(st) - 1;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (rows == max) { /* one more row exists: hand out a token */
            *next_token = kn_registry__token_encode(&last);
            if (!*next_token)
                s = kn_err_set(e, KN_NOMEM, "out of memory");
            break;
        }
        if ((s = fn(st, ctx, e)))
            break;
        rows++;
        const unsigned char *nm = sqlite3_column_text(st, 0);
        snprintf(last.name, sizeof last.name, "%s", nm ? (const char *)nm : "");
        last.time = sqlite3_column_double(st, 2);
        last.id = sqlite3_column_int64(st, id_col);
    }
    if (!s && rc != SQLITE_ROW && rc != SQLITE_DONE)
        s = kn_registry__sqlite_err(r, rc, "list", e);
    sqlite3_finalize(st);
    if (s) {
        free(*next_token);
        *next_token = NULL;
    }
    return s;
}

static kn_status model_row(sqlite3_stmt *st, void *ctx, kn_err *e)
{
    kn_model_page *p = ctx;
    kn_model_rec *items = realloc(p->items, (p->n + 1) * sizeof *items);
    if (!items)
        return kn_err_set(e, KN_NOMEM, "out of memory");
    p->items = items;
    kn_status s = model_from_row(st, false, &items[p->n], e);
    if (!s)
        p->n++;
    return s;
}

kn_status kn_registry_model_list(kn_registry *r, const kn_list_params *q, kn_model_page *out,
                                 kn_err *e)
{
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&r->mu);
    char *token = NULL;
    kn_status s = kn_registry__list_rows(r, "models", "name, arn, creation_time, id", q, model_row, out,
                            &token, e);
    pthread_mutex_unlock(&r->mu);
    if (s) {
        kn_model_page_deinit(out);
        return s;
    }
    out->next_token = token;
    return KN_OK;
}

/* ------------------------------------------------ endpoint configurations */

kn_status kn_registry_endpoint_config_create(kn_registry *r, kn_endpoint_config_rec *c,
                                             kn_err *e)
{
    char arn[ARN_MAX];
    if (!c->name || c->n_variants < 1)
        return kn_err_set(e, KN_INVALID, "endpoint configuration record is incomplete");
    for (int i = 0; i < c->n_variants; i++)
        if (!c->variants[i].variant_name || !c->variants[i].model_name ||
            !c->variants[i].instance_type)
            return kn_err_set(e, KN_INVALID, "production variant %d is incomplete", i + 1);
    kn_registry_arn(r, "sagemaker", "endpoint-config", c->name, arn, sizeof arn);
    char *arn_copy = strdup(arn);
    if (!arn_copy)
        return kn_err_set(e, KN_NOMEM, "out of memory");

    pthread_mutex_lock(&r->mu);
    sqlite3_stmt *st = NULL;
    bool found = false;
    double now = kn_clock_wall(r->clock);
    kn_status s = kn_registry__begin(r, e);
    if (s)
        goto out;
    if ((s = kn_registry__exists(r, "endpoint_configs", c->name, &found, e)))
        goto out;
    if (found) {
        s = kn_err_set(e, KN_EXISTS,
                       "Cannot create already existing endpoint configuration \"%s\".", arn);
        goto out;
    }
    for (int i = 0; i < c->n_variants; i++) {
        if ((s = kn_registry__exists(r, "models", c->variants[i].model_name, &found, e)))
            goto out;
        if (!found) {
            char marn[ARN_MAX];
            kn_registry_arn(r, "sagemaker", "model", c->variants[i].model_name, marn,
                            sizeof marn);
            s = kn_err_set(e, KN_NOT_FOUND, "Could not find model \"%s\".", marn);
            goto out;
        }
    }
    if ((s = kn_registry__prepare(r,
                                  "INSERT INTO endpoint_configs (name, arn, kms_key_id, tags, "
                                  "creation_time) VALUES (?, ?, ?, ?, ?)",
                                  &st, e)))
        goto out;
    sqlite3_bind_text(st, 1, c->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, arn, -1, SQLITE_STATIC);
    kn_registry__bind_opt_text(st, 3, c->kms_key_id);
    kn_registry__bind_opt_text(st, 4, c->tags_json);
    sqlite3_bind_double(st, 5, now);
    int rc = sqlite3_step(st);
    if (rc != SQLITE_DONE) {
        s = kn_registry__sqlite_err(r, rc, "insert endpoint configuration", e);
        goto out;
    }
    int64_t id = sqlite3_last_insert_rowid(r->db);
    sqlite3_finalize(st);
    st = NULL;
    if ((s = kn_registry__prepare(
             r,
             "INSERT INTO production_variants (config_id, position, variant_name, model_name, "
             "instance_type, initial_instance_count, initial_variant_weight, volume_size_gb, "
             "model_download_timeout_s, startup_health_timeout_s) "
             "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
             &st, e)))
        goto out;
    for (int i = 0; i < c->n_variants; i++) {
        const kn_variant_rec *v = &c->variants[i];
        sqlite3_reset(st);
        sqlite3_bind_int64(st, 1, id);
        sqlite3_bind_int(st, 2, i);
        sqlite3_bind_text(st, 3, v->variant_name, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, v->model_name, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 5, v->instance_type, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 6, v->initial_instance_count);
        sqlite3_bind_double(st, 7, v->initial_variant_weight);
        bind_opt_int(st, 8, v->volume_size_gb);
        bind_opt_int(st, 9, v->model_download_timeout_s);
        bind_opt_int(st, 10, v->startup_health_timeout_s);
        rc = sqlite3_step(st);
        if (rc != SQLITE_DONE) {
            s = kn_registry__sqlite_err(r, rc, "insert production variant", e);
            goto out;
        }
    }
out:
    s = kn_registry__write_end(r, st, s, e);
    if (s) {
        free(arn_copy);
        return s;
    }
    free(c->arn);
    c->arn = arn_copy;
    c->creation_time = now;
    return KN_OK;
}

/* Columns: name, arn, creation_time, then (full rows only) kms key, tags. */
static kn_status config_from_row(sqlite3_stmt *st, bool full, kn_endpoint_config_rec *c,
                                 kn_err *e)
{
    bool oom = false;
    memset(c, 0, sizeof *c);
    c->name = kn_registry__col_strdup(st, 0, &oom);
    c->arn = kn_registry__col_strdup(st, 1, &oom);
    c->creation_time = sqlite3_column_double(st, 2);
    if (full) {
        c->kms_key_id = kn_registry__col_strdup(st, 3, &oom);
        c->tags_json = kn_registry__col_strdup(st, 4, &oom);
    }
    if (oom) {
        kn_endpoint_config_rec_deinit(c);
        return kn_err_set(e, KN_NOMEM, "out of memory");
    }
    return KN_OK;
}

static kn_status load_variants(kn_registry *r, int64_t id, kn_endpoint_config_rec *c, kn_err *e)
{
    sqlite3_stmt *st;
    kn_status s = kn_registry__prepare(
        r,
        "SELECT variant_name, model_name, instance_type, initial_instance_count, "
        "initial_variant_weight, volume_size_gb, model_download_timeout_s, "
        "startup_health_timeout_s FROM production_variants WHERE config_id = ? "
        "ORDER BY position",
        &st, e);
    if (s)
        return s;
    sqlite3_bind_int64(st, 1, id);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        kn_variant_rec *v = realloc(c->variants, (size_t)(c->n_variants + 1) * sizeof *v);
        if (!v) {
            s = kn_err_set(e, KN_NOMEM, "out of memory");
            break;
        }
        c->variants = v;
        v = &c->variants[c->n_variants++];
        memset(v, 0, sizeof *v);
        bool oom = false;
        v->variant_name = kn_registry__col_strdup(st, 0, &oom);
        v->model_name = kn_registry__col_strdup(st, 1, &oom);
        v->instance_type = kn_registry__col_strdup(st, 2, &oom);
        v->initial_instance_count = sqlite3_column_int(st, 3);
        v->initial_variant_weight = sqlite3_column_double(st, 4);
        v->volume_size_gb = sqlite3_column_int(st, 5);
        v->model_download_timeout_s = sqlite3_column_int(st, 6);
        v->startup_health_timeout_s = sqlite3_column_int(st, 7);
        if (oom) {
            s = kn_err_set(e, KN_NOMEM, "out of memory");
            break;
        }
    }
    if (!s && rc != SQLITE_DONE)
        s = kn_registry__sqlite_err(r, rc, "read production variants", e);
    sqlite3_finalize(st);
    return s;
}

kn_status kn_registry_endpoint_config_get(kn_registry *r, const char *name,
                                          kn_endpoint_config_rec *out, kn_err *e)
{
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&r->mu);
    sqlite3_stmt *st = NULL;
    /* a read transaction: the config and its variants come from one snapshot */
    kn_status s = kn_registry__begin(r, e);
    if (s)
        goto out;
    if ((s = kn_registry__prepare(r,
                                  "SELECT name, arn, creation_time, kms_key_id, tags, id "
                                  "FROM endpoint_configs WHERE name = ?",
                                  &st, e)))
        goto out;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        int64_t id = sqlite3_column_int64(st, 5);
        if (!(s = config_from_row(st, true, out, e)))
            s = load_variants(r, id, out, e);
    } else if (rc == SQLITE_DONE) {
        char arn[ARN_MAX];
        kn_registry_arn(r, "sagemaker", "endpoint-config", name, arn, sizeof arn);
        s = kn_err_set(e, KN_NOT_FOUND, "Could not find endpoint configuration \"%s\".", arn);
    } else {
        s = kn_registry__sqlite_err(r, rc, "read endpoint configuration", e);
    }
    if (!s)
        s = kn_registry__commit(r, e);
out:
    sqlite3_finalize(st);
    kn_registry__rollback(r);
    pthread_mutex_unlock(&r->mu);
    if (s)
        kn_endpoint_config_rec_deinit(out);
    return s;
}

kn_status kn_registry_endpoint_config_delete(kn_registry *r, const char *name, kn_err *e)
{
    /* production_variants go with it (ON DELETE CASCADE) */
    return delete_named(r, "endpoint_configs", "endpoint-config", "endpoint configuration", name,
                        e);
}

static kn_status config_row(sqlite3_stmt *st, void *ctx, kn_err *e)
{
    kn_endpoint_config_page *p = ctx;
    kn_endpoint_config_rec *items = realloc(p->items, (p->n + 1) * sizeof *items);
    if (!items)
        return kn_err_set(e, KN_NOMEM, "out of memory");
    p->items = items;
    kn_status s = config_from_row(st, false, &items[p->n], e);
    if (!s)
        p->n++;
    return s;
}

kn_status kn_registry_endpoint_config_list(kn_registry *r, const kn_list_params *q,
                                           kn_endpoint_config_page *out, kn_err *e)
{
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&r->mu);
    char *token = NULL;
    kn_status s = kn_registry__list_rows(r, "endpoint_configs", "name, arn, creation_time, id", q, config_row,
                            out, &token, e);
    pthread_mutex_unlock(&r->mu);
    if (s) {
        kn_endpoint_config_page_deinit(out);
        return s;
    }
    out->next_token = token;
    return KN_OK;
}
