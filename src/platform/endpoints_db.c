/* Endpoints in the registry: create (snapshotting the configuration's
 * variants with each model's resolved path), get, status changes, delete
 * and list. The processes behind an endpoint are the fleet's (fleet.c);
 * this file only keeps what must survive a restart.
 *
 * Thread-safe: every public call holds r->mu and is one transaction.
 */
#include "platform_int.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ARN_MAX 512

void kn_endpoint_rec_deinit(kn_endpoint_rec *ep)
{
    if (!ep)
        return;
    free(ep->name);
    free(ep->arn);
    free(ep->config_name);
    free(ep->status);
    free(ep->failure_reason);
    free(ep->tags_json);
    for (int i = 0; i < ep->n_variants; i++) {
        kn_endpoint_variant_rec *v = &ep->variants[i];
        free(v->variant_name);
        free(v->model_name);
        free(v->model_data_path);
        free(v->image);
        free(v->instance_type);
    }
    free(ep->variants);
    memset(ep, 0, sizeof *ep);
}

void kn_endpoint_page_deinit(kn_endpoint_page *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->n; i++)
        kn_endpoint_rec_deinit(&p->items[i]);
    free(p->items);
    free(p->next_token);
    memset(p, 0, sizeof *p);
}

/* Columns: name, arn, creation_time, config_name, status, failure_reason,
 * tags, last_modified_time. */
#define EP_COLS                                                                              \
    "name, arn, creation_time, config_name, status, failure_reason, tags, last_modified_time"

static kn_status endpoint_from_row(sqlite3_stmt *st, kn_endpoint_rec *ep, kn_err *e)
{
    bool oom = false;
    memset(ep, 0, sizeof *ep);
    ep->name = kn_registry__col_strdup(st, 0, &oom);
    ep->arn = kn_registry__col_strdup(st, 1, &oom);
    ep->creation_time = sqlite3_column_double(st, 2);
    ep->config_name = kn_registry__col_strdup(st, 3, &oom);
    ep->status = kn_registry__col_strdup(st, 4, &oom);
    ep->failure_reason = kn_registry__col_strdup(st, 5, &oom);
    ep->tags_json = kn_registry__col_strdup(st, 6, &oom);
    ep->last_modified_time = sqlite3_column_double(st, 7);
    if (oom) {
        kn_endpoint_rec_deinit(ep);
        return kn_err_set(e, KN_NOMEM, "out of memory");
    }
    return KN_OK;
}

static kn_status load_variants(kn_registry *r, int64_t id, kn_endpoint_rec *ep, kn_err *e)
{
    sqlite3_stmt *st;
    kn_status s = kn_registry__prepare(
        r,
        "SELECT variant_name, model_name, model_data_path, image, instance_type, "
        "desired_count, desired_weight, startup_health_timeout_s FROM endpoint_variants "
        "WHERE endpoint_id = ? ORDER BY position",
        &st, e);
    if (s)
        return s;
    sqlite3_bind_int64(st, 1, id);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        kn_endpoint_variant_rec *v =
            realloc(ep->variants, (size_t)(ep->n_variants + 1) * sizeof *v);
        if (!v) {
            s = kn_err_set(e, KN_NOMEM, "out of memory");
            break;
        }
        ep->variants = v;
        v = &ep->variants[ep->n_variants++];
        memset(v, 0, sizeof *v);
        bool oom = false;
        v->variant_name = kn_registry__col_strdup(st, 0, &oom);
        v->model_name = kn_registry__col_strdup(st, 1, &oom);
        v->model_data_path = kn_registry__col_strdup(st, 2, &oom);
        v->image = kn_registry__col_strdup(st, 3, &oom);
        v->instance_type = kn_registry__col_strdup(st, 4, &oom);
        v->desired_count = sqlite3_column_int(st, 5);
        v->desired_weight = sqlite3_column_double(st, 6);
        v->startup_health_timeout_s = sqlite3_column_int(st, 7);
        if (oom) {
            s = kn_err_set(e, KN_NOMEM, "out of memory");
            break;
        }
    }
    if (!s && rc != SQLITE_DONE)
        s = kn_registry__sqlite_err(r, rc, "read endpoint variants", e);
    sqlite3_finalize(st);
    return s;
}

/* Reads one endpoint with its variants; the caller holds r->mu. */
static kn_status get_locked(kn_registry *r, const char *name, kn_endpoint_rec *out, kn_err *e)
{
    sqlite3_stmt *st;
    kn_status s =
        kn_registry__prepare(r, "SELECT " EP_COLS ", id FROM endpoints WHERE name = ?", &st, e);
    if (s)
        return s;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        int64_t id = sqlite3_column_int64(st, 8);
        if (!(s = endpoint_from_row(st, out, e)) && (s = load_variants(r, id, out, e)))
            kn_endpoint_rec_deinit(out);
    } else if (rc == SQLITE_DONE) {
        char arn[ARN_MAX];
        kn_registry_arn(r, "sagemaker", "endpoint", name, arn, sizeof arn);
        s = kn_err_set(e, KN_NOT_FOUND, "Could not find endpoint \"%s\".", arn);
    } else {
        s = kn_registry__sqlite_err(r, rc, "read endpoint", e);
    }
    sqlite3_finalize(st);
    return s;
}

/* PrimaryContainer.Image of a model's stored container JSON, or NULL. */
static char *container_image(const char *container_json)
{
    json_t *c = container_json ? json_loads(container_json, 0, NULL) : NULL;
    const char *img = c ? json_string_value(json_object_get(c, "Image")) : NULL;
    char *out = img ? strdup(img) : NULL;
    json_decref(c);
    return out;
}

/* Copies a configuration's variants, joined with their models, into
 * endpoint_variants for endpoint `id` (replacing what was there). The
 * caller holds r->mu inside a transaction. KN_NOT_FOUND names a missing
 * configuration or model. */
static kn_status snapshot_config(kn_registry *r, int64_t id, const char *config_name, kn_err *e)
{
    sqlite3_stmt *vs = NULL, *st = NULL, *del = NULL;
    kn_status s;
    if ((s = kn_registry__prepare(
             r,
             "SELECT c.id, v.variant_name, v.model_name, m.model_data_path, m.container, "
             "v.instance_type, v.initial_instance_count, v.initial_variant_weight, "
             "v.startup_health_timeout_s FROM endpoint_configs c "
             "LEFT JOIN production_variants v ON v.config_id = c.id "
             "LEFT JOIN models m ON m.name = v.model_name "
             "WHERE c.name = ? ORDER BY v.position",
             &vs, e)))
        goto out;
    sqlite3_bind_text(vs, 1, config_name, -1, SQLITE_STATIC);
    int rc = sqlite3_step(vs);
    if (rc == SQLITE_DONE) {
        char carn[ARN_MAX];
        kn_registry_arn(r, "sagemaker", "endpoint-config", config_name, carn, sizeof carn);
        s = kn_err_set(e, KN_NOT_FOUND, "Could not find endpoint configuration \"%s\".", carn);
        goto out;
    }
    if ((s = kn_registry__prepare(r, "DELETE FROM endpoint_variants WHERE endpoint_id = ?", &del,
                                  e)))
        goto out;
    sqlite3_bind_int64(del, 1, id);
    if (sqlite3_step(del) != SQLITE_DONE) {
        s = kn_registry__sqlite_err(r, sqlite3_errcode(r->db), "replace endpoint variants", e);
        goto out;
    }
    if ((s = kn_registry__prepare(
             r,
             "INSERT INTO endpoint_variants (endpoint_id, position, variant_name, model_name, "
             "model_data_path, image, instance_type, desired_count, desired_weight, "
             "startup_health_timeout_s) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
             &st, e)))
        goto out;
    for (int pos = 0; rc == SQLITE_ROW; pos++, rc = sqlite3_step(vs)) {
        const char *model = (const char *)sqlite3_column_text(vs, 2);
        if (!model)
            break; /* a configuration without variants cannot be stored, but be safe */
        if (sqlite3_column_type(vs, 3) == SQLITE_NULL) {
            char marn[ARN_MAX];
            kn_registry_arn(r, "sagemaker", "model", model, marn, sizeof marn);
            s = kn_err_set(e, KN_NOT_FOUND, "Could not find model \"%s\".", marn);
            goto out;
        }
        char *image = container_image((const char *)sqlite3_column_text(vs, 4));
        sqlite3_reset(st);
        sqlite3_bind_int64(st, 1, id);
        sqlite3_bind_int(st, 2, pos);
        sqlite3_bind_value(st, 3, sqlite3_column_value(vs, 1));
        sqlite3_bind_value(st, 4, sqlite3_column_value(vs, 2));
        sqlite3_bind_value(st, 5, sqlite3_column_value(vs, 3));
        kn_registry__bind_opt_text(st, 6, image);
        sqlite3_bind_value(st, 7, sqlite3_column_value(vs, 5));
        sqlite3_bind_value(st, 8, sqlite3_column_value(vs, 6));
        sqlite3_bind_value(st, 9, sqlite3_column_value(vs, 7));
        sqlite3_bind_value(st, 10, sqlite3_column_value(vs, 8));
        int rc2 = sqlite3_step(st);
        free(image);
        if (rc2 != SQLITE_DONE) {
            s = kn_registry__sqlite_err(r, rc2, "insert endpoint variant", e);
            goto out;
        }
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        s = kn_registry__sqlite_err(r, rc, "read endpoint configuration", e);
out:
    sqlite3_finalize(vs);
    sqlite3_finalize(st);
    sqlite3_finalize(del);
    return s;
}

static kn_status endpoint_id(kn_registry *r, const char *name, int64_t *id, kn_err *e)
{
    sqlite3_stmt *st;
    kn_status s = kn_registry__prepare(r, "SELECT id FROM endpoints WHERE name = ?", &st, e);
    if (s)
        return s;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *id = sqlite3_column_int64(st, 0);
    } else if (rc == SQLITE_DONE) {
        char arn[ARN_MAX];
        kn_registry_arn(r, "sagemaker", "endpoint", name, arn, sizeof arn);
        s = kn_err_set(e, KN_NOT_FOUND, "Could not find endpoint \"%s\".", arn);
    } else {
        s = kn_registry__sqlite_err(r, rc, "read endpoint", e);
    }
    sqlite3_finalize(st);
    return s;
}

kn_status kn_registry_endpoint_create(kn_registry *r, const char *name, const char *config_name,
                                      const char *tags_json, kn_endpoint_rec *out, kn_err *e)
{
    memset(out, 0, sizeof *out);
    char arn[ARN_MAX];
    kn_registry_arn(r, "sagemaker", "endpoint", name, arn, sizeof arn);
    pthread_mutex_lock(&r->mu);
    sqlite3_stmt *ins = NULL;
    double now = kn_clock_wall(r->clock);
    bool found = false;
    kn_status s = kn_registry__begin(r, e);
    if (s)
        goto out;
    if ((s = kn_registry__exists(r, "endpoints", name, &found, e)))
        goto out;
    if (found) {
        s = kn_err_set(e, KN_EXISTS, "Cannot create already existing endpoint \"%s\".", arn);
        goto out;
    }
    if ((s = kn_registry__prepare(r,
                                  "INSERT INTO endpoints (name, arn, config_name, status, tags, "
                                  "creation_time, last_modified_time) "
                                  "VALUES (?, ?, ?, 'Creating', ?, ?, ?)",
                                  &ins, e)))
        goto out;
    sqlite3_bind_text(ins, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_text(ins, 2, arn, -1, SQLITE_STATIC);
    sqlite3_bind_text(ins, 3, config_name, -1, SQLITE_STATIC);
    kn_registry__bind_opt_text(ins, 4, tags_json);
    sqlite3_bind_double(ins, 5, now);
    sqlite3_bind_double(ins, 6, now);
    int rc = sqlite3_step(ins);
    if (rc != SQLITE_DONE) {
        s = kn_registry__sqlite_err(r, rc, "insert endpoint", e);
        goto out;
    }
    if ((s = snapshot_config(r, sqlite3_last_insert_rowid(r->db), config_name, e)))
        goto out;
    if ((s = get_locked(r, name, out, e)))
        goto out;
    if ((s = kn_registry__commit(r, e)))
        kn_endpoint_rec_deinit(out);
out:
    sqlite3_finalize(ins);
    if (s)
        kn_registry__rollback(r);
    pthread_mutex_unlock(&r->mu);
    return s;
}

kn_status kn_registry_endpoint_update_config(kn_registry *r, const char *name,
                                             const char *config_name, kn_endpoint_rec *out,
                                             kn_err *e)
{
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&r->mu);
    sqlite3_stmt *up = NULL;
    int64_t id = 0;
    kn_status s = kn_registry__begin(r, e);
    if (s || (s = endpoint_id(r, name, &id, e)) || (s = snapshot_config(r, id, config_name, e)))
        goto out;
    if ((s = kn_registry__prepare(r,
                                  "UPDATE endpoints SET config_name = ?, status = 'Updating', "
                                  "failure_reason = NULL, last_modified_time = ? WHERE id = ?",
                                  &up, e)))
        goto out;
    sqlite3_bind_text(up, 1, config_name, -1, SQLITE_STATIC);
    sqlite3_bind_double(up, 2, kn_clock_wall(r->clock));
    sqlite3_bind_int64(up, 3, id);
    int rc = sqlite3_step(up);
    if (rc != SQLITE_DONE) {
        s = kn_registry__sqlite_err(r, rc, "update endpoint", e);
        goto out;
    }
    if ((s = get_locked(r, name, out, e)))
        goto out;
    if ((s = kn_registry__commit(r, e)))
        kn_endpoint_rec_deinit(out);
out:
    sqlite3_finalize(up);
    if (s)
        kn_registry__rollback(r);
    pthread_mutex_unlock(&r->mu);
    return s;
}

kn_status kn_registry_endpoint_set_variants(kn_registry *r, const kn_endpoint_rec *ep,
                                            kn_err *e)
{
    pthread_mutex_lock(&r->mu);
    sqlite3_stmt *del = NULL, *st = NULL, *up = NULL;
    int64_t id = 0;
    kn_status s = kn_registry__begin(r, e);
    if (s || (s = endpoint_id(r, ep->name, &id, e)))
        goto out;
    if ((s = kn_registry__prepare(r, "DELETE FROM endpoint_variants WHERE endpoint_id = ?", &del,
                                  e)) ||
        (s = kn_registry__prepare(
             r,
             "INSERT INTO endpoint_variants (endpoint_id, position, variant_name, model_name, "
             "model_data_path, image, instance_type, desired_count, desired_weight, "
             "startup_health_timeout_s) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
             &st, e)) ||
        (s = kn_registry__prepare(r,
                                  "UPDATE endpoints SET config_name = ?, status = ?, "
                                  "failure_reason = ?, last_modified_time = ? WHERE id = ?",
                                  &up, e)))
        goto out;
    sqlite3_bind_int64(del, 1, id);
    int rc = sqlite3_step(del);
    for (int i = 0; rc == SQLITE_DONE && i < ep->n_variants; i++) {
        const kn_endpoint_variant_rec *v = &ep->variants[i];
        sqlite3_reset(st);
        sqlite3_bind_int64(st, 1, id);
        sqlite3_bind_int(st, 2, i);
        sqlite3_bind_text(st, 3, v->variant_name, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, v->model_name, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 5, v->model_data_path, -1, SQLITE_STATIC);
        kn_registry__bind_opt_text(st, 6, v->image);
        sqlite3_bind_text(st, 7, v->instance_type, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 8, v->desired_count);
        sqlite3_bind_double(st, 9, v->desired_weight);
        if (v->startup_health_timeout_s > 0)
            sqlite3_bind_int(st, 10, v->startup_health_timeout_s);
        else
            sqlite3_bind_null(st, 10);
        rc = sqlite3_step(st);
    }
    if (rc == SQLITE_DONE) {
        sqlite3_bind_text(up, 1, ep->config_name, -1, SQLITE_STATIC);
        sqlite3_bind_text(up, 2, ep->status, -1, SQLITE_STATIC);
        kn_registry__bind_opt_text(up, 3, ep->failure_reason);
        sqlite3_bind_double(up, 4, kn_clock_wall(r->clock));
        sqlite3_bind_int64(up, 5, id);
        rc = sqlite3_step(up);
    }
    if (rc != SQLITE_DONE) {
        s = kn_registry__sqlite_err(r, rc, "update endpoint variants", e);
        goto out;
    }
    s = kn_registry__commit(r, e);
out:
    sqlite3_finalize(del);
    sqlite3_finalize(st);
    sqlite3_finalize(up);
    if (s)
        kn_registry__rollback(r);
    pthread_mutex_unlock(&r->mu);
    return s;
}

kn_status kn_registry_endpoint_get(kn_registry *r, const char *name, kn_endpoint_rec *out,
                                   kn_err *e)
{
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&r->mu);
    kn_status s = kn_registry__begin(r, e);
    if (!s && !(s = get_locked(r, name, out, e)) && (s = kn_registry__commit(r, e)))
        kn_endpoint_rec_deinit(out);
    kn_registry__rollback(r);
    pthread_mutex_unlock(&r->mu);
    return s;
}

kn_status kn_registry_endpoint_set_status(kn_registry *r, const char *name, const char *status,
                                          const char *failure_reason, kn_err *e)
{
    pthread_mutex_lock(&r->mu);
    sqlite3_stmt *st;
    kn_status s = kn_registry__prepare(r,
                                       "UPDATE endpoints SET status = ?, failure_reason = ?, "
                                       "last_modified_time = ? WHERE name = ?",
                                       &st, e);
    if (!s) {
        sqlite3_bind_text(st, 1, status, -1, SQLITE_STATIC);
        kn_registry__bind_opt_text(st, 2, failure_reason);
        sqlite3_bind_double(st, 3, kn_clock_wall(r->clock));
        sqlite3_bind_text(st, 4, name, -1, SQLITE_STATIC);
        int rc = sqlite3_step(st);
        if (rc != SQLITE_DONE) {
            s = kn_registry__sqlite_err(r, rc, "update endpoint", e);
        } else if (sqlite3_changes(r->db) == 0) {
            char arn[ARN_MAX];
            kn_registry_arn(r, "sagemaker", "endpoint", name, arn, sizeof arn);
            s = kn_err_set(e, KN_NOT_FOUND, "Could not find endpoint \"%s\".", arn);
        }
        sqlite3_finalize(st);
    }
    pthread_mutex_unlock(&r->mu);
    return s;
}

kn_status kn_registry_endpoint_delete(kn_registry *r, const char *name, kn_err *e)
{
    pthread_mutex_lock(&r->mu);
    sqlite3_stmt *st;
    kn_status s = kn_registry__prepare(r, "DELETE FROM endpoints WHERE name = ?", &st, e);
    if (!s) {
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
        int rc = sqlite3_step(st);
        if (rc != SQLITE_DONE) {
            s = kn_registry__sqlite_err(r, rc, "delete endpoint", e);
        } else if (sqlite3_changes(r->db) == 0) {
            char arn[ARN_MAX];
            kn_registry_arn(r, "sagemaker", "endpoint", name, arn, sizeof arn);
            s = kn_err_set(e, KN_NOT_FOUND, "Could not find endpoint \"%s\".", arn);
        }
        sqlite3_finalize(st);
    }
    pthread_mutex_unlock(&r->mu);
    return s;
}

static kn_status endpoint_row(sqlite3_stmt *st, void *ctx, kn_err *e)
{
    kn_endpoint_page *p = ctx;
    kn_endpoint_rec *items = realloc(p->items, (p->n + 1) * sizeof *items);
    if (!items)
        return kn_err_set(e, KN_NOMEM, "out of memory");
    p->items = items;
    kn_status s = endpoint_from_row(st, &items[p->n], e);
    if (!s)
        p->n++;
    return s;
}

kn_status kn_registry_endpoint_list(kn_registry *r, const kn_list_params *q,
                                    kn_endpoint_page *out, kn_err *e)
{
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&r->mu);
    char *token = NULL;
    kn_status s = kn_registry__list_rows(r, "endpoints", EP_COLS ", id", q, endpoint_row, out,
                                         &token, e);
    pthread_mutex_unlock(&r->mu);
    if (s) {
        kn_endpoint_page_deinit(out);
        return s;
    }
    out->next_token = token;
    return KN_OK;
}
