/* The registry's database: opening kennel.db, its pragmas, the schema
 * migrations, account metadata, ARNs, transactions and pagination tokens.
 * The resources stored in it are in resources.c.
 *
 * Invariants: the schema is exactly the migrations up to
 * schema_migrations' highest version (each applied in one transaction, so a
 * crash leaves either the old or the new schema); a database migrated by a
 * newer kennel is refused rather than guessed at. Thread-safe: every public
 * call holds r->mu.
 */
#include "platform_int.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Append-only. A migration never changes once released: a fix is a new one. */
static const struct migration {
    int version;
    const char *name;
    const char *sql;
} migrations[] = {
    {1, "models and endpoint configurations",
     "CREATE TABLE meta (\n"
     "  key   TEXT PRIMARY KEY,\n"
     "  value TEXT NOT NULL\n"
     ") WITHOUT ROWID;\n"
     /* Names are unique regardless of letter case because the ARN, which
      * is the identity, lower-cases them. */
     "CREATE TABLE models (\n"
     "  id                 INTEGER PRIMARY KEY,\n"
     "  name               TEXT NOT NULL UNIQUE COLLATE NOCASE,\n"
     "  arn                TEXT NOT NULL,\n"
     "  execution_role_arn TEXT NOT NULL,\n"
     "  container          TEXT NOT NULL,\n" /* PrimaryContainer JSON as accepted */
     "  model_data_url     TEXT NOT NULL,\n"
     "  model_data_path    TEXT NOT NULL,\n"
     "  network_isolation  INTEGER NOT NULL DEFAULT 0,\n"
     "  tags               TEXT,\n"
     "  creation_time      REAL NOT NULL\n"
     ");\n"
     "CREATE INDEX models_by_time ON models (creation_time, id);\n"
     "CREATE TABLE endpoint_configs (\n"
     "  id            INTEGER PRIMARY KEY,\n"
     "  name          TEXT NOT NULL UNIQUE COLLATE NOCASE,\n"
     "  arn           TEXT NOT NULL,\n"
     "  kms_key_id    TEXT,\n"
     "  tags          TEXT,\n"
     "  creation_time REAL NOT NULL\n"
     ");\n"
     "CREATE INDEX endpoint_configs_by_time ON endpoint_configs (creation_time, id);\n"
     /* Variants name their model rather than reference it: AWS lets a model
      * be deleted while configurations still name it (CreateEndpoint is
      * where a missing model fails). */
     "CREATE TABLE production_variants (\n"
     "  config_id                INTEGER NOT NULL\n"
     "                           REFERENCES endpoint_configs (id) ON DELETE CASCADE,\n"
     "  position                 INTEGER NOT NULL,\n"
     "  variant_name             TEXT NOT NULL COLLATE NOCASE,\n"
     "  model_name               TEXT NOT NULL,\n"
     "  instance_type            TEXT NOT NULL,\n"
     "  initial_instance_count   INTEGER NOT NULL CHECK (initial_instance_count >= 1),\n"
     "  initial_variant_weight   REAL NOT NULL CHECK (initial_variant_weight >= 0),\n"
     "  volume_size_gb           INTEGER,\n"
     "  model_download_timeout_s INTEGER,\n"
     "  startup_health_timeout_s INTEGER,\n"
     "  PRIMARY KEY (config_id, position),\n"
     "  UNIQUE (config_id, variant_name)\n"
     ") WITHOUT ROWID;\n"},
    {2, "endpoints",
     /* An endpoint keeps a copy of its configuration's variants (with the
      * resolved model path) as they were when it was created or last
      * updated: AWS keeps an endpoint running after its configuration or
      * model is deleted. `status` is the AWS EndpointStatus it was last
      * in; the daemon brings endpoints back to it after a restart. */
     "CREATE TABLE endpoints (\n"
     "  id                 INTEGER PRIMARY KEY,\n"
     "  name               TEXT NOT NULL UNIQUE COLLATE NOCASE,\n"
     "  arn                TEXT NOT NULL,\n"
     "  config_name        TEXT NOT NULL,\n"
     "  status             TEXT NOT NULL,\n"
     "  failure_reason     TEXT,\n"
     "  tags               TEXT,\n"
     "  creation_time      REAL NOT NULL,\n"
     "  last_modified_time REAL NOT NULL\n"
     ");\n"
     "CREATE INDEX endpoints_by_time ON endpoints (creation_time, id);\n"
     "CREATE TABLE endpoint_variants (\n"
     "  endpoint_id              INTEGER NOT NULL\n"
     "                           REFERENCES endpoints (id) ON DELETE CASCADE,\n"
     "  position                 INTEGER NOT NULL,\n"
     "  variant_name             TEXT NOT NULL,\n"
     "  model_name               TEXT NOT NULL,\n"
     "  model_data_path          TEXT NOT NULL,\n"
     "  image                    TEXT,\n"
     "  instance_type            TEXT NOT NULL,\n"
     "  desired_count            INTEGER NOT NULL CHECK (desired_count >= 0),\n"
     "  desired_weight           REAL NOT NULL CHECK (desired_weight >= 0),\n"
     "  startup_health_timeout_s INTEGER,\n"
     "  PRIMARY KEY (endpoint_id, position)\n"
     ") WITHOUT ROWID;\n"},
    {3, "autoscaling and metrics",
     /* Application Auto Scaling state, keyed by ResourceId
      * ("endpoint/<E>/variant/<V>"), and the per-minute series of each
      * endpoint variant (minute = clock epoch seconds / 60). */
     "CREATE TABLE scalable_targets (\n"
     "  resource_id       TEXT PRIMARY KEY,\n"
     "  endpoint          TEXT NOT NULL,\n"
     "  variant           TEXT NOT NULL,\n"
     "  arn               TEXT NOT NULL,\n"
     "  min_capacity      INTEGER NOT NULL,\n"
     "  max_capacity      INTEGER NOT NULL CHECK (max_capacity >= min_capacity),\n"
     "  role_arn          TEXT,\n"
     "  suspended_in      INTEGER NOT NULL DEFAULT 0,\n"
     "  suspended_out     INTEGER NOT NULL DEFAULT 0,\n"
     "  suspended_sched   INTEGER NOT NULL DEFAULT 0,\n"
     "  creation_time     REAL NOT NULL\n"
     ") WITHOUT ROWID;\n"
     "CREATE TABLE scaling_policies (\n"
     "  resource_id        TEXT NOT NULL\n"
     "                     REFERENCES scalable_targets (resource_id) ON DELETE CASCADE,\n"
     "  name               TEXT NOT NULL,\n"
     "  arn                TEXT NOT NULL,\n"
     "  target_value       REAL NOT NULL,\n"
     "  scale_out_cooldown REAL NOT NULL,\n"
     "  scale_in_cooldown  REAL NOT NULL,\n"
     "  disable_scale_in   INTEGER NOT NULL,\n"
     "  config             TEXT NOT NULL,\n"
     "  alarm_high         TEXT NOT NULL,\n"
     "  alarm_low          TEXT NOT NULL,\n"
     "  creation_time      REAL NOT NULL,\n"
     "  PRIMARY KEY (resource_id, name)\n"
     ") WITHOUT ROWID;\n"
     "CREATE TABLE scaling_activities (\n"
     "  seq            INTEGER PRIMARY KEY,\n"
     "  id             TEXT NOT NULL UNIQUE,\n"
     "  resource_id    TEXT NOT NULL,\n"
     "  description    TEXT NOT NULL,\n"
     "  cause          TEXT NOT NULL,\n"
     "  status_code    TEXT NOT NULL,\n"
     "  status_message TEXT,\n"
     "  start_time     REAL NOT NULL,\n"
     "  end_time       REAL\n"
     ");\n"
     "CREATE INDEX scaling_activities_by_resource ON scaling_activities (resource_id, seq);\n"
     "CREATE TABLE variant_metrics (\n"
     "  endpoint            TEXT NOT NULL,\n"
     "  variant             TEXT NOT NULL,\n"
     "  minute              INTEGER NOT NULL,\n"
     "  invocations         INTEGER NOT NULL,\n"
     "  per_instance        REAL NOT NULL,\n"
     "  model_latency_us    REAL NOT NULL,\n"
     "  overhead_latency_us REAL NOT NULL,\n"
     "  errors_4xx          INTEGER NOT NULL,\n"
     "  errors_5xx          INTEGER NOT NULL,\n"
     "  instances           INTEGER NOT NULL,\n"
     "  PRIMARY KEY (endpoint, variant, minute)\n"
     ") WITHOUT ROWID;\n"},
    {4, "per-minute latency percentiles",
     "ALTER TABLE variant_metrics ADD COLUMN latency_p50_us REAL NOT NULL DEFAULT 0;\n"
     "ALTER TABLE variant_metrics ADD COLUMN latency_p99_us REAL NOT NULL DEFAULT 0;\n"},
};
#define N_MIGRATIONS ((int)(sizeof migrations / sizeof migrations[0]))

kn_status kn_registry__sqlite_err(kn_registry *r, int rc, const char *what, kn_err *e)
{
    kn_status s;
    switch (rc & 0xff) {
    case SQLITE_NOMEM:
        s = KN_NOMEM;
        break;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        s = KN_TIMEOUT;
        break;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
        s = KN_BAD_FORMAT;
        break;
    case SQLITE_CONSTRAINT:
        s = KN_INVALID;
        break;
    case SQLITE_IOERR:
    case SQLITE_FULL:
    case SQLITE_CANTOPEN:
    case SQLITE_READONLY:
    case SQLITE_PERM:
        s = KN_IO;
        break;
    default:
        s = KN_INTERNAL;
    }
    const char *msg = r && r->db ? sqlite3_errmsg(r->db) : sqlite3_errstr(rc);
    return kn_err_set(e, s, "kennel.db: %s: %s", what, msg);
}

kn_status kn_registry__prepare(kn_registry *r, const char *sql, sqlite3_stmt **st, kn_err *e)
{
    int rc = sqlite3_prepare_v2(r->db, sql, -1, st, NULL);
    if (rc != SQLITE_OK) {
        *st = NULL;
        return kn_registry__sqlite_err(r, rc, "prepare", e);
    }
    return KN_OK;
}

kn_status kn_registry__begin(kn_registry *r, kn_err *e)
{
    int rc = sqlite3_exec(r->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    return rc == SQLITE_OK ? KN_OK : kn_registry__sqlite_err(r, rc, "begin transaction", e);
}

kn_status kn_registry__commit(kn_registry *r, kn_err *e)
{
    int rc = sqlite3_exec(r->db, "COMMIT", NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        return KN_OK;
    kn_status s = kn_registry__sqlite_err(r, rc, "commit", e);
    kn_registry__rollback(r);
    return s;
}

void kn_registry__rollback(kn_registry *r)
{
    if (!sqlite3_get_autocommit(r->db))
        sqlite3_exec(r->db, "ROLLBACK", NULL, NULL, NULL);
}

kn_status kn_registry__write_end(kn_registry *r, sqlite3_stmt *st, kn_status s, kn_err *e)
{
    if (!s)
        s = kn_registry__commit(r, e);
    sqlite3_finalize(st);
    if (s)
        kn_registry__rollback(r);
    pthread_mutex_unlock(&r->mu);
    return s;
}

char *kn_registry__col_strdup(sqlite3_stmt *st, int col, bool *oom)
{
    if (sqlite3_column_type(st, col) == SQLITE_NULL)
        return NULL;
    const unsigned char *t = sqlite3_column_text(st, col);
    if (!t) {
        *oom = true;
        return NULL;
    }
    char *s = strdup((const char *)t);
    if (!s)
        *oom = true;
    return s;
}

/* ------------------------------------------------------------- opening */

kn_registry_params kn_registry_default_params(void)
{
    kn_registry_params p = {
        .path = NULL, .clock = NULL, .region = "us-east-1", .account_id = "123456789012"};
    return p;
}

int kn_registry_latest_schema_version(void)
{
    return migrations[N_MIGRATIONS - 1].version;
}

static kn_status exec(kn_registry *r, const char *sql, const char *what, kn_err *e)
{
    char *err = NULL;
    int rc = sqlite3_exec(r->db, sql, NULL, NULL, &err);
    if (rc == SQLITE_OK)
        return KN_OK;
    kn_status s = kn_registry__sqlite_err(r, rc, what, e);
    if (err && e)
        snprintf(e->msg, sizeof e->msg, "kennel.db: %s: %s", what, err);
    sqlite3_free(err);
    return s;
}

static kn_status pragma_text(kn_registry *r, const char *sql, char *out, size_t n, kn_err *e)
{
    sqlite3_stmt *st;
    kn_status s = kn_registry__prepare(r, sql, &st, e);
    if (s)
        return s;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        const unsigned char *t = sqlite3_column_text(st, 0);
        snprintf(out, n, "%s", t ? (const char *)t : "");
        rc = SQLITE_DONE;
    }
    if (rc != SQLITE_DONE)
        s = kn_registry__sqlite_err(r, rc, sql, e);
    sqlite3_finalize(st);
    return s;
}

static kn_status current_version(kn_registry *r, int *version, kn_err *e)
{
    sqlite3_stmt *st;
    kn_status s = kn_registry__prepare(
        r, "SELECT coalesce(max(version), 0) FROM schema_migrations", &st, e);
    if (s)
        return s;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *version = sqlite3_column_int(st, 0);
    else
        s = kn_registry__sqlite_err(r, rc, "read schema version", e);
    sqlite3_finalize(st);
    return s;
}

static kn_status migrate(kn_registry *r, kn_err *e)
{
    kn_status s = exec(r,
                       "CREATE TABLE IF NOT EXISTS schema_migrations (\n"
                       "  version    INTEGER PRIMARY KEY,\n"
                       "  name       TEXT NOT NULL,\n"
                       "  applied_at REAL NOT NULL\n"
                       ")",
                       "create schema_migrations", e);
    if (s)
        return s;
    int have = 0;
    if ((s = current_version(r, &have, e)))
        return s;
    if (have > kn_registry_latest_schema_version())
        return kn_err_set(e, KN_BAD_FORMAT,
                          "kennel.db: schema version %d is newer than this kennel "
                          "understands (%d); use a newer kennel",
                          have, kn_registry_latest_schema_version());
    for (int i = 0; i < N_MIGRATIONS; i++) {
        const struct migration *m = &migrations[i];
        if (m->version <= have)
            continue;
        if ((s = kn_registry__begin(r, e)))
            return s;
        char what[160];
        snprintf(what, sizeof what, "migration %d (%s)", m->version, m->name);
        s = exec(r, m->sql, what, e);
        sqlite3_stmt *st = NULL;
        if (!s)
            s = kn_registry__prepare(
                r, "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                &st, e);
        if (!s) {
            sqlite3_bind_int(st, 1, m->version);
            sqlite3_bind_text(st, 2, m->name, -1, SQLITE_STATIC);
            sqlite3_bind_double(st, 3, kn_clock_wall(r->clock));
            int rc = sqlite3_step(st);
            if (rc != SQLITE_DONE)
                s = kn_registry__sqlite_err(r, rc, what, e);
        }
        sqlite3_finalize(st);
        if (!s)
            s = kn_registry__commit(r, e);
        if (s) {
            kn_registry__rollback(r);
            return s;
        }
        kn_log(KN_LOG_INFO, "kennel.db: applied %s", what);
    }
    return current_version(r, &r->schema_version, e);
}

/* meta rows are written once, when the database is created; afterwards the
 * stored values win so that ARNs never change under a client. */
static kn_status meta_init(kn_registry *r, const char *key, const char *dflt, char *out,
                           size_t n, kn_err *e)
{
    sqlite3_stmt *st;
    kn_status s =
        kn_registry__prepare(r, "INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)", &st, e);
    if (s)
        return s;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, dflt, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return kn_registry__sqlite_err(r, rc, "write meta", e);
    if ((s = kn_registry__prepare(r, "SELECT value FROM meta WHERE key = ?", &st, e)))
        return s;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        snprintf(out, n, "%s", (const char *)sqlite3_column_text(st, 0));
    else
        s = kn_registry__sqlite_err(r, rc, "read meta", e);
    sqlite3_finalize(st);
    return s;
}

static bool valid_region(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 32)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!(islower((unsigned char)s[i]) || isdigit((unsigned char)s[i]) || s[i] == '-'))
            return false;
    return true;
}

static bool valid_account(const char *s)
{
    if (strlen(s) != 12)
        return false;
    for (int i = 0; i < 12; i++)
        if (!isdigit((unsigned char)s[i]))
            return false;
    return true;
}

kn_status kn_registry_open(const kn_registry_params *p, kn_registry **out, kn_err *e)
{
    *out = NULL;
    if (!p || !p->path || !p->clock)
        return kn_err_set(e, KN_INVALID, "registry: a path and a clock are required");
    const char *region = p->region ? p->region : "us-east-1";
    const char *account = p->account_id ? p->account_id : "123456789012";
    if (!valid_region(region))
        return kn_err_set(e, KN_INVALID, "region '%s' is not a valid region name", region);
    if (!valid_account(account))
        return kn_err_set(e, KN_INVALID, "account id '%s' is not 12 digits", account);

    kn_registry *r = calloc(1, sizeof *r);
    if (!r)
        return kn_err_set(e, KN_NOMEM, "registry: out of memory");
    pthread_mutex_init(&r->mu, NULL);
    r->clock = p->clock;
    kn_status s = KN_OK;
    int rc = sqlite3_open_v2(p->path, &r->db,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX |
                                 SQLITE_OPEN_EXRESCODE,
                             NULL);
    if (rc != SQLITE_OK) {
        s = kn_registry__sqlite_err(r, rc, "open", e);
        goto fail;
    }
    sqlite3_busy_timeout(r->db, 5000);
    sqlite3_limit(r->db, SQLITE_LIMIT_LENGTH, 16 * 1024 * 1024);
    char mode[32];
    /* A file that is not a database fails here, on its first read. */
    if ((s = pragma_text(r, "PRAGMA journal_mode=WAL", mode, sizeof mode, e)))
        goto fail;
    if (strcmp(mode, "wal") != 0 && strcmp(mode, "memory") != 0) {
        s = kn_err_set(e, KN_IO, "kennel.db: cannot switch to WAL mode (got '%s')", mode);
        goto fail;
    }
    /* FULL: a committed control-plane change survives power loss, not only
     * a killed process; writes here are rare, so the fsync is cheap. */
    if ((s = exec(r, "PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;", "pragmas", e)))
        goto fail;
    char fk[8];
    if ((s = pragma_text(r, "PRAGMA foreign_keys", fk, sizeof fk, e)))
        goto fail;
    if (strcmp(fk, "1") != 0) {
        s = kn_err_set(e, KN_INTERNAL, "kennel.db: this SQLite cannot enforce foreign keys");
        goto fail;
    }
    if ((s = migrate(r, e)))
        goto fail;
    if ((s = meta_init(r, "region", region, r->region, sizeof r->region, e)) ||
        (s = meta_init(r, "account_id", account, r->account, sizeof r->account, e)))
        goto fail;
    *out = r;
    return KN_OK;
fail:
    kn_registry_close(r);
    return s;
}

void kn_registry_close(kn_registry *r)
{
    if (!r)
        return;
    if (r->db)
        sqlite3_close_v2(r->db);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

int kn_registry_schema_version(kn_registry *r)
{
    return r->schema_version;
}

const char *kn_registry_region(const kn_registry *r)
{
    return r->region;
}

const char *kn_registry_account(const kn_registry *r)
{
    return r->account;
}

void kn_registry_arn(const kn_registry *r, const char *service, const char *type,
                     const char *name, char *out, size_t n)
{
    int k = snprintf(out, n, "arn:aws:%s:%s:%s:%s/", service, r->region, r->account, type);
    if (k < 0 || (size_t)k >= n)
        return;
    size_t i = (size_t)k;
    for (const char *c = name; *c && i + 1 < n; c++)
        out[i++] = (char)tolower((unsigned char)*c);
    out[i] = '\0';
}

kn_status kn_registry__latest_time(kn_registry *r, double *out, kn_err *e)
{
    pthread_mutex_lock(&r->mu);
    sqlite3_stmt *st;
    kn_status s = kn_registry__prepare(
        r,
        "SELECT max(coalesce((SELECT max(creation_time) FROM models), 0), "
        "coalesce((SELECT max(creation_time) FROM endpoint_configs), 0), "
        "coalesce((SELECT max(last_modified_time) FROM endpoints), 0), "
        "coalesce((SELECT max(start_time) FROM scaling_activities), 0), "
        "coalesce((SELECT max(end_time) FROM scaling_activities), 0), "
        "coalesce((SELECT max(minute) * 60 + 60 FROM variant_metrics), 0))",
        &st, e);
    if (!s) {
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW)
            *out = sqlite3_column_double(st, 0);
        else
            s = kn_registry__sqlite_err(r, rc, "read latest time", e);
        sqlite3_finalize(st);
    }
    pthread_mutex_unlock(&r->mu);
    return s;
}

/* ---------------------------------------------------- pagination tokens */

/* Plain text "k1|<t|n>|<a|d>|<value>|<id>", hex-encoded so that clients
 * treat it as opaque. Names cannot hold '|' (their pattern forbids it). */
char *kn_registry__token_encode(const kn_page_pos *pos)
{
    char plain[256];
    if (pos->sort_by == KN_SORT_NAME)
        snprintf(plain, sizeof plain, "k1|n|%c|%s|%" PRId64, pos->ascending ? 'a' : 'd',
                 pos->name, pos->id);
    else
        snprintf(plain, sizeof plain, "k1|t|%c|%.17g|%" PRId64, pos->ascending ? 'a' : 'd',
                 pos->time, pos->id);
    size_t n = strlen(plain);
    char *hex = malloc(2 * n + 1);
    if (!hex)
        return NULL;
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        hex[2 * i] = digits[(unsigned char)plain[i] >> 4];
        hex[2 * i + 1] = digits[(unsigned char)plain[i] & 15];
    }
    hex[2 * n] = '\0';
    return hex;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

kn_status kn_registry__token_decode(const char *token, kn_page_pos *pos, kn_err *e)
{
    size_t n = strlen(token);
    char plain[256];
    if (n == 0 || n % 2 || n / 2 >= sizeof plain)
        goto bad;
    for (size_t i = 0; i < n / 2; i++) {
        int hi = hexval(token[2 * i]), lo = hexval(token[2 * i + 1]);
        if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
            goto bad;
        plain[i] = (char)(hi << 4 | lo);
    }
    plain[n / 2] = '\0';
    /* fields: k1 | kind | order | value | id */
    char *f[5], *p = plain;
    int nf = 0;
    /* count every field: a sixth one makes the token invalid, not ignored */
    for (char *tok; (tok = strsep(&p, "|")) != NULL; nf++)
        if (nf < 5)
            f[nf] = tok;
    if (nf != 5 || strcmp(f[0], "k1") != 0)
        goto bad;
    if (strcmp(f[1], "n") == 0)
        pos->sort_by = KN_SORT_NAME;
    else if (strcmp(f[1], "t") == 0)
        pos->sort_by = KN_SORT_CREATION_TIME;
    else
        goto bad;
    if (strcmp(f[2], "a") == 0)
        pos->ascending = true;
    else if (strcmp(f[2], "d") == 0)
        pos->ascending = false;
    else
        goto bad;
    char *end;
    long long id = strtoll(f[4], &end, 10);
    if (!*f[4] || *end || id < 0)
        goto bad;
    pos->id = id;
    pos->name[0] = '\0';
    pos->time = 0;
    if (pos->sort_by == KN_SORT_NAME) {
        if (!*f[3] || strlen(f[3]) >= sizeof pos->name)
            goto bad;
        snprintf(pos->name, sizeof pos->name, "%s", f[3]);
    } else {
        double t = strtod(f[3], &end);
        if (!*f[3] || *end || !(t >= 0 && t < 1e15))
            goto bad;
        pos->time = t;
    }
    return KN_OK;
bad:
    return kn_err_set(e, KN_INVALID, "Invalid pagination token: %.64s%s", token,
                      n > 64 ? "..." : "");
}
