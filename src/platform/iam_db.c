/* IAM identities in kennel.db: users, access keys, roles, managed and
 * inline policies, STS sessions (see the IAM section of platform.h).
 *
 * The tables live in kennel.db beside the registry's, created with CREATE
 * TABLE IF NOT EXISTS (they are independent of the registry's numbered
 * migrations), and are reached through a connection of their own with
 * synchronous=NORMAL: the audit log (audit_db.c) writes a row per API
 * call and must not pay an fsync for each; in WAL mode a commit still
 * survives a crash of the process.
 *
 * Secrets are encrypted with AES-256-GCM under <data-dir>/iam.key (32
 * random bytes, mode 0600): SigV4 verification needs the secret itself, so
 * a one-way hash cannot be used. Each stored secret is hex(nonce 12 |
 * ciphertext | tag 16), the access key id being the additional data (a
 * secret copied onto another key's row does not decrypt).
 *
 * Thread-safe: every call holds iam->mu for its whole duration.
 */
#include "iam_int.h"

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char SCHEMA[] =
    "CREATE TABLE IF NOT EXISTS iam_users (\n"
    "  name        TEXT PRIMARY KEY COLLATE NOCASE,\n"
    "  path        TEXT NOT NULL,\n"
    "  user_id     TEXT NOT NULL UNIQUE,\n"
    "  arn         TEXT NOT NULL,\n"
    "  create_date REAL NOT NULL\n"
    ");\n"
    "CREATE TABLE IF NOT EXISTS iam_access_keys (\n"
    "  access_key_id TEXT PRIMARY KEY,\n"
    "  user_name     TEXT NOT NULL REFERENCES iam_users (name) ON DELETE CASCADE,\n"
    "  secret_enc    TEXT NOT NULL,\n"
    "  status        TEXT NOT NULL DEFAULT 'Active',\n"
    "  create_date   REAL NOT NULL\n"
    ");\n"
    "CREATE TABLE IF NOT EXISTS iam_roles (\n"
    "  name         TEXT PRIMARY KEY COLLATE NOCASE,\n"
    "  path         TEXT NOT NULL,\n"
    "  role_id      TEXT NOT NULL UNIQUE,\n"
    "  arn          TEXT NOT NULL,\n"
    "  trust_policy TEXT NOT NULL,\n"
    "  description  TEXT,\n"
    "  max_session  INTEGER NOT NULL DEFAULT 3600,\n"
    "  create_date  REAL NOT NULL\n"
    ");\n"
    "CREATE TABLE IF NOT EXISTS iam_policies (\n"
    "  arn             TEXT PRIMARY KEY,\n"
    "  name            TEXT NOT NULL,\n"
    "  path            TEXT NOT NULL,\n"
    "  policy_id       TEXT NOT NULL,\n"
    "  description     TEXT,\n"
    "  default_version TEXT NOT NULL,\n"
    "  create_date     REAL NOT NULL\n"
    ");\n"
    "CREATE TABLE IF NOT EXISTS iam_policy_versions (\n"
    "  policy_arn  TEXT NOT NULL REFERENCES iam_policies (arn) ON DELETE CASCADE,\n"
    "  version_id  TEXT NOT NULL,\n"
    "  document    TEXT NOT NULL,\n"
    "  create_date REAL NOT NULL,\n"
    "  PRIMARY KEY (policy_arn, version_id)\n"
    ");\n"
    "CREATE TABLE IF NOT EXISTS iam_attachments (\n"
    "  kind       TEXT NOT NULL,\n" /* user | role */
    "  owner      TEXT NOT NULL COLLATE NOCASE,\n"
    "  policy_arn TEXT NOT NULL REFERENCES iam_policies (arn),\n"
    "  PRIMARY KEY (kind, owner, policy_arn)\n"
    ");\n"
    "CREATE TABLE IF NOT EXISTS iam_inline_policies (\n"
    "  kind        TEXT NOT NULL,\n"
    "  owner       TEXT NOT NULL COLLATE NOCASE,\n"
    "  policy_name TEXT NOT NULL,\n"
    "  document    TEXT NOT NULL,\n"
    "  PRIMARY KEY (kind, owner, policy_name)\n"
    ");\n"
    "CREATE TABLE IF NOT EXISTS iam_sessions (\n"
    "  access_key_id   TEXT PRIMARY KEY,\n"
    "  secret_enc      TEXT NOT NULL,\n"
    "  token_sha256    TEXT NOT NULL,\n"
    "  role_name       TEXT NOT NULL,\n"
    "  role_arn        TEXT NOT NULL,\n"
    "  session_arn     TEXT NOT NULL,\n"
    "  assumed_role_id TEXT NOT NULL,\n"
    "  expiration      REAL NOT NULL,\n"
    "  create_date     REAL NOT NULL\n"
    ");\n"
    "CREATE TABLE IF NOT EXISTS audit_log (\n"
    "  seq        INTEGER PRIMARY KEY,\n"
    "  time       REAL NOT NULL,\n"
    "  principal  TEXT NOT NULL,\n"
    "  action     TEXT NOT NULL,\n"
    "  resource   TEXT NOT NULL,\n"
    "  source     TEXT NOT NULL,\n"
    "  decision   TEXT NOT NULL,\n"
    "  statement  TEXT NOT NULL,\n"
    "  request_id TEXT NOT NULL,\n"
    "  error_code TEXT NOT NULL\n"
    ");\n"
    "CREATE INDEX IF NOT EXISTS audit_by_time ON audit_log (time);\n";

static const char ADMIN_DOC[] =
    "{\"Version\":\"2012-10-17\",\"Statement\":[{\"Sid\":\"AdministratorAccess\","
    "\"Effect\":\"Allow\",\"Action\":\"*\",\"Resource\":\"*\"}]}";

double kn_iam__now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

kn_status kn_iam__sqlite_err(kn_iam *iam, int rc, const char *what, kn_err *e)
{
    kn_status s;
    switch (rc & 0xff) {
    case SQLITE_NOMEM: s = KN_NOMEM; break;
    case SQLITE_BUSY:
    case SQLITE_LOCKED: s = KN_TIMEOUT; break;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB: s = KN_BAD_FORMAT; break;
    default: s = KN_IO;
    }
    return kn_err_set(e, s, "kennel.db (iam): %s: %s", what,
                      iam && iam->db ? sqlite3_errmsg(iam->db) : sqlite3_errstr(rc));
}

kn_status kn_iam__prepare(kn_iam *iam, const char *sql, sqlite3_stmt **st, kn_err *e)
{
    int rc = sqlite3_prepare_v2(iam->db, sql, -1, st, NULL);
    if (rc != SQLITE_OK) {
        *st = NULL;
        return kn_iam__sqlite_err(iam, rc, "prepare", e);
    }
    return KN_OK;
}

static kn_status exec(kn_iam *iam, const char *sql, const char *what, kn_err *e)
{
    int rc = sqlite3_exec(iam->db, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? KN_OK : kn_iam__sqlite_err(iam, rc, what, e);
}

/* Runs a prepared statement to completion (no rows expected). */
static kn_status step_done(kn_iam *iam, sqlite3_stmt *st, const char *what, kn_err *e)
{
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc == SQLITE_DONE)
        return KN_OK;
    return kn_iam__sqlite_err(iam, rc, what, e);
}

static void bump(kn_iam *iam)
{
    atomic_fetch_add(&iam->generation, 1);
}

/* Runs a write whose parameters are all text (NULL-terminated list);
 * *changes (may be NULL) gets the rows it changed. */
static kn_status write_texts(kn_iam *iam, const char *sql, const char *what,
                             const char *const *vals, int *changes, kn_err *e)
{
    sqlite3_stmt *st;
    kn_status s = kn_iam__prepare(iam, sql, &st, e);
    if (s)
        return s;
    for (int i = 0; vals[i]; i++)
        sqlite3_bind_text(st, i + 1, vals[i], -1, SQLITE_TRANSIENT);
    s = step_done(iam, st, what, e);
    if (!s && changes)
        *changes = sqlite3_changes(iam->db);
    return s;
}

/* ---- random ids and secrets ---------------------------------------------- */

static void random_bytes(void *p, size_t n)
{
    uint8_t *b = p;
    size_t got = 0;
    while (got < n) {
        ssize_t r = getrandom(b + got, n - got, 0);
        if (r > 0)
            got += (size_t)r;
        else if (errno != EINTR)
            abort(); /* the kernel's random source is gone: nothing is safe */
    }
}

/* prefix + n characters of alphabet, as AWS ids look (AKIA..., AROA...). */
static void random_id(char *out, const char *prefix, size_t n, const char *alphabet)
{
    size_t al = strlen(alphabet), pl = strlen(prefix);
    uint8_t b[128];
    if (n > sizeof b)
        abort();
    random_bytes(b, n);
    memcpy(out, prefix, pl);
    for (size_t i = 0; i < n; i++)
        out[pl + i] = alphabet[b[i] % al];
    out[pl + n] = 0;
}

#define ID_ALPHA "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
#define SECRET_ALPHA "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

/* ---- secrets at rest ----------------------------------------------------- */

static kn_status load_key(kn_iam *iam, const char *dir, kn_err *e)
{
    char path[PATH_MAX + 16];
    snprintf(path, sizeof path, "%.4000s/iam.key", dir);
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0 && errno == ENOENT) {
        uint8_t k[32];
        random_bytes(k, sizeof k);
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0)
            return kn_err_set(e, KN_IO, "%s: cannot create: %s", path, strerror(errno));
        bool ok = write(fd, k, sizeof k) == (ssize_t)sizeof k && fsync(fd) == 0;
        close(fd);
        OPENSSL_cleanse(k, sizeof k);
        if (!ok)
            return kn_err_set(e, KN_IO, "%s: cannot write the key", path);
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    }
    if (fd < 0)
        return kn_err_set(e, KN_IO, "%s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || (st.st_mode & 077) != 0 || st.st_uid != geteuid()) {
        close(fd);
        return kn_err_set(e, KN_IO,
                          "%s: must be a file owned by this user and readable by it only "
                          "(chmod 600)", path);
    }
    ssize_t n = read(fd, iam->key, sizeof iam->key);
    close(fd);
    if (n != (ssize_t)sizeof iam->key)
        return kn_err_set(e, KN_BAD_FORMAT, "%s: not a 32-byte key", path);
    return KN_OK;
}

kn_status kn_iam__seal(kn_iam *iam, const char *aad, const char *secret, char *out, size_t n,
                       kn_err *e)
{
    size_t sl = strlen(secret);
    if (sl > 255 || n < 2 * (12 + sl + 16) + 1)
        return kn_err_set(e, KN_INVALID, "secret too long");
    uint8_t buf[12 + 256 + 16];
    random_bytes(buf, 12);
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int len = 0, ok = c != NULL;
    ok = ok && EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), NULL, iam->key, buf);
    ok = ok && EVP_EncryptUpdate(c, NULL, &len, (const uint8_t *)aad, (int)strlen(aad));
    ok = ok && EVP_EncryptUpdate(c, buf + 12, &len, (const uint8_t *)secret, (int)sl);
    ok = ok && EVP_EncryptFinal_ex(c, buf + 12 + len, &len);
    ok = ok && EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, 16, buf + 12 + sl);
    EVP_CIPHER_CTX_free(c);
    if (!ok)
        return kn_err_set(e, KN_INTERNAL, "cannot encrypt a secret (libcrypto)");
    kn_hex(buf, 12 + sl + 16, out);
    return KN_OK;
}

kn_status kn_iam__open_secret(kn_iam *iam, const char *aad, const char *hex, char *out, size_t n,
                              kn_err *e)
{
    size_t hl = strlen(hex);
    uint8_t buf[12 + 256 + 16];
    if (hl % 2 || hl / 2 < 28 || hl / 2 > sizeof buf || hl / 2 - 28 >= n)
        return kn_err_set(e, KN_BAD_FORMAT, "kennel.db: a stored secret is damaged");
    for (size_t i = 0; i < hl / 2; i++) {
        unsigned v;
        if (sscanf(hex + 2 * i, "%2x", &v) != 1)
            return kn_err_set(e, KN_BAD_FORMAT, "kennel.db: a stored secret is damaged");
        buf[i] = (uint8_t)v;
    }
    size_t sl = hl / 2 - 28;
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int len = 0, ok = c != NULL;
    ok = ok && EVP_DecryptInit_ex(c, EVP_aes_256_gcm(), NULL, iam->key, buf);
    ok = ok && EVP_DecryptUpdate(c, NULL, &len, (const uint8_t *)aad, (int)strlen(aad));
    ok = ok && EVP_DecryptUpdate(c, (uint8_t *)out, &len, buf + 12, (int)sl);
    ok = ok && EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, 16, buf + 12 + sl);
    ok = ok && EVP_DecryptFinal_ex(c, (uint8_t *)out + len, &len) > 0;
    EVP_CIPHER_CTX_free(c);
    if (!ok) {
        OPENSSL_cleanse(out, n);
        return kn_err_set(e, KN_BAD_FORMAT,
                          "kennel.db: a stored secret does not decrypt with iam.key "
                          "(the key file was replaced?)");
    }
    out[sl] = 0;
    return KN_OK;
}

/* ---- open / close -------------------------------------------------------- */

kn_status kn_iam_open(kn_platform *p, kn_iam **out, kn_err *e)
{
    *out = NULL;
    kn_iam *iam = calloc(1, sizeof *iam);
    if (!iam)
        return kn_err_set(e, KN_NOMEM, "out of memory");
    pthread_mutex_init(&iam->mu, NULL);
    pthread_mutex_init(&iam->audit_mu, NULL);
    pthread_cond_init(&iam->audit_cv, NULL);
    pthread_cond_init(&iam->audit_done_cv, NULL);
    iam->audit_tail = &iam->audit_head;
    kn_registry *reg = kn_platform_registry(p);
    snprintf(iam->account, sizeof iam->account, "%s", kn_registry_account(reg));
    snprintf(iam->region, sizeof iam->region, "%s", kn_registry_region(reg));
    snprintf(iam->data_dir, sizeof iam->data_dir, "%s", kn_platform_data_dir(p));
    kn_status s;
    if ((s = load_key(iam, iam->data_dir, e)))
        goto fail;
    char db[PATH_MAX + 16];
    snprintf(db, sizeof db, "%.4000s/kennel.db", iam->data_dir);
    int rc = sqlite3_open_v2(db, &iam->db,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX |
                                 SQLITE_OPEN_EXRESCODE,
                             NULL);
    if (rc != SQLITE_OK) {
        s = kn_iam__sqlite_err(iam, rc, "open", e);
        goto fail;
    }
    sqlite3_busy_timeout(iam->db, 5000);
    if ((s = exec(iam, "PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;", "pragmas", e)) ||
        (s = exec(iam, "BEGIN IMMEDIATE", "begin", e)))
        goto fail;
    if ((s = exec(iam, SCHEMA, "create the IAM tables", e))) {
        exec(iam, "ROLLBACK", "rollback", NULL);
        goto fail;
    }
    sqlite3_stmt *st;
    if ((s = kn_iam__prepare(iam,
                             "INSERT OR IGNORE INTO iam_policies (arn, name, path, policy_id, "
                             "description, default_version, create_date) VALUES (?, "
                             "'AdministratorAccess', '/', 'ANPAIWMBCKSKIEE64ZLYK', 'Provides full "
                             "access to AWS services and resources.', 'v1', 0)",
                             &st, e))) {
        exec(iam, "ROLLBACK", "rollback", NULL);
        goto fail;
    }
    sqlite3_bind_text(st, 1, KN_IAM_ADMIN_POLICY_ARN, -1, SQLITE_STATIC);
    if ((s = step_done(iam, st, "seed AdministratorAccess", e)) ||
        (s = kn_iam__prepare(iam,
                             "INSERT OR IGNORE INTO iam_policy_versions (policy_arn, version_id, "
                             "document, create_date) VALUES (?, 'v1', ?, 0)",
                             &st, e))) {
        exec(iam, "ROLLBACK", "rollback", NULL);
        goto fail;
    }
    sqlite3_bind_text(st, 1, KN_IAM_ADMIN_POLICY_ARN, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, ADMIN_DOC, -1, SQLITE_STATIC);
    if ((s = step_done(iam, st, "seed AdministratorAccess", e))) {
        exec(iam, "ROLLBACK", "rollback", NULL);
        goto fail;
    }
    if ((s = exec(iam, "COMMIT", "commit", e)) || (s = kn_iam__audit_start(iam, e)))
        goto fail;
    *out = iam;
    return KN_OK;
fail:
    kn_iam_close(iam);
    return s;
}

void kn_iam_close(kn_iam *iam)
{
    if (!iam)
        return;
    kn_iam__audit_stop(iam);
    sqlite3_close_v2(iam->db);
    OPENSSL_cleanse(iam->key, sizeof iam->key);
    pthread_mutex_destroy(&iam->mu);
    pthread_mutex_destroy(&iam->audit_mu);
    pthread_cond_destroy(&iam->audit_cv);
    pthread_cond_destroy(&iam->audit_done_cv);
    free(iam);
}

const char *kn_iam_account(const kn_iam *iam)
{
    return iam->account;
}

const char *kn_iam_region(const kn_iam *iam)
{
    return iam->region;
}

uint64_t kn_iam_generation(const kn_iam *iam)
{
    return atomic_load(&((kn_iam *)iam)->generation);
}

void kn_iam_strings_free(char **v, size_t n)
{
    if (!v)
        return;
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

/* ---- helpers for records ------------------------------------------------- */

static void iso_time(double t, char out[32])
{
    time_t s = (time_t)t;
    struct tm tm;
    gmtime_r(&s, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void set_str(json_t *o, const char *k, const char *v)
{
    if (v)
        json_object_set_new(o, k, json_string(v));
}

static void set_time(json_t *o, const char *k, double t)
{
    char b[32];
    iso_time(t, b);
    json_object_set_new(o, k, json_string(b));
}

static kn_status take_json(json_t *o, char **out, kn_err *e)
{
    *out = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return *out ? KN_OK : kn_err_set(e, KN_NOMEM, "out of memory");
}

static const char *col(sqlite3_stmt *st, int i)
{
    const char *s = (const char *)sqlite3_column_text(st, i);
    return s ? s : "";
}

static bool name_ok(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n == 0 || n > max)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              strchr("+=,.@_-", c)))
            return false;
    }
    return true;
}

static bool path_ok(const char *p)
{
    size_t n = strlen(p);
    if (n == 0 || n > 512 || p[0] != '/' || p[n - 1] != '/')
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)p[i] < 0x21 || (unsigned char)p[i] > 0x7e)
            return false;
    return true;
}

static kn_status check_name(const char *what, const char *name, size_t max, kn_err *e)
{
    if (!name || !name_ok(name, max))
        return kn_err_set(e, KN_INVALID,
                          "1 validation error detected: Value '%.*s' at '%s' failed to satisfy "
                          "constraint: Member must satisfy regular expression pattern: "
                          "[\\w+=,.@-]+ and have length between 1 and %zu",
                          128, name ? name : "", what, max);
    return KN_OK;
}

static kn_status check_path(const char *path, kn_err *e)
{
    if (path && !path_ok(path))
        return kn_err_set(e, KN_INVALID,
                          "The specified value for path is invalid. It must begin and end with / "
                          "and contain only alphanumeric characters and/or / characters.");
    return KN_OK;
}

/* ---- bootstrap ----------------------------------------------------------- */

static kn_status write_credentials(const char *path, const char *akid, const char *secret,
                                   kn_err *e)
{
    char tmp[PATH_MAX + 32];
    snprintf(tmp, sizeof tmp, "%.4000s.tmp.%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return kn_err_set(e, KN_IO, "%s: %s", tmp, strerror(errno));
    char text[512];
    int n = snprintf(text, sizeof text,
                     "# kennel administrator (user admin); created by the first start of "
                     "kennel server\n[default]\naws_access_key_id = %s\naws_secret_access_key = "
                     "%s\n",
                     akid, secret);
    bool ok = n > 0 && write(fd, text, (size_t)n) == n && fsync(fd) == 0;
    OPENSSL_cleanse(text, sizeof text);
    ok = close(fd) == 0 && ok;
    if (!ok || rename(tmp, path) != 0) {
        unlink(tmp);
        return kn_err_set(e, KN_IO, "%s: cannot write: %s", path, strerror(errno));
    }
    return KN_OK;
}

kn_status kn_iam_bootstrap(kn_iam *iam, const char *access_key, const char *secret,
                           bool *created, char *path, size_t path_n, kn_err *e)
{
    *created = false;
    snprintf(path, path_n, "%s/%s", iam->data_dir, KN_IAM_CREDENTIALS_FILE);
    sqlite3_stmt *st;
    pthread_mutex_lock(&iam->mu);
    kn_status s = kn_iam__prepare(iam, "SELECT count(*) FROM iam_users", &st, e);
    int users = 0;
    if (!s) {
        if (sqlite3_step(st) == SQLITE_ROW)
            users = sqlite3_column_int(st, 0);
        sqlite3_finalize(st);
    }
    pthread_mutex_unlock(&iam->mu);
    if (s || users > 0)
        return s;
    if ((access_key && *access_key) != (secret && *secret))
        return kn_err_set(e, KN_INVALID,
                          "KENNEL_ROOT_ACCESS_KEY_ID and KENNEL_ROOT_SECRET_ACCESS_KEY must be "
                          "set together");
    char *json = NULL;
    if ((s = kn_iam_user_create(iam, "admin", "/", &json, e)))
        return s;
    free(json);
    if ((s = kn_iam_policy_attach(iam, "user", "admin", KN_IAM_ADMIN_POLICY_ARN, e)) ||
        (s = kn_iam_access_key_create(iam, "admin", access_key && *access_key ? access_key : NULL,
                                      secret && *secret ? secret : NULL, &json, e)))
        return s;
    json_t *k = json_loads(json, 0, NULL);
    free(json);
    const char *akid = json_string_value(json_object_get(k, "AccessKeyId"));
    const char *sec = json_string_value(json_object_get(k, "SecretAccessKey"));
    s = akid && sec ? write_credentials(path, akid, sec, e)
                    : kn_err_set(e, KN_INTERNAL, "bootstrap: no key made");
    json_decref(k);
    if (!s)
        *created = true;
    return s;
}

/* ---- users and keys ------------------------------------------------------ */

static kn_status user_exists(kn_iam *iam, const char *name, bool *found, kn_err *e)
{
    sqlite3_stmt *st;
    kn_status s = kn_iam__prepare(iam, "SELECT 1 FROM iam_users WHERE name = ?", &st, e);
    if (s)
        return s;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
    *found = sqlite3_step(st) == SQLITE_ROW;
    sqlite3_finalize(st);
    return KN_OK;
}

kn_status kn_iam_user_create(kn_iam *iam, const char *name, const char *path, char **json,
                             kn_err *e)
{
    *json = NULL;
    kn_status s;
    if ((s = check_name("userName", name, 64, e)) || (s = check_path(path, e)))
        return s;
    if (!path)
        path = "/";
    char id[32], arn[700];
    random_id(id, "AIDA", 17, ID_ALPHA);
    snprintf(arn, sizeof arn, "arn:aws:iam::%s:user%s%s", iam->account, path, name);
    double now = kn_iam__now();
    pthread_mutex_lock(&iam->mu);
    sqlite3_stmt *st;
    bool found = false;
    if ((s = user_exists(iam, name, &found, e)))
        goto out;
    if (found) {
        s = kn_err_set(e, KN_EXISTS, "User with name %s already exists.", name);
        goto out;
    }
    if ((s = kn_iam__prepare(iam,
                             "INSERT INTO iam_users (name, path, user_id, arn, create_date) "
                             "VALUES (?, ?, ?, ?, ?)",
                             &st, e)))
        goto out;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, path, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 3, id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 4, arn, -1, SQLITE_TRANSIENT);
    sqlite3_bind_double(st, 5, now);
    if ((s = step_done(iam, st, "CreateUser", e)))
        goto out;
    bump(iam);
    json_t *o = json_object();
    set_str(o, "Path", path);
    set_str(o, "UserName", name);
    set_str(o, "UserId", id);
    set_str(o, "Arn", arn);
    set_time(o, "CreateDate", now);
    s = take_json(o, json, e);
out:
    pthread_mutex_unlock(&iam->mu);
    return s;
}

static kn_status no_user(const char *name, kn_err *e)
{
    return kn_err_set(e, KN_NOT_FOUND, "The user with name %.128s cannot be found.", name);
}

kn_status kn_iam_access_key_create(kn_iam *iam, const char *user, const char *access_key,
                                   const char *secret, char **json, kn_err *e)
{
    *json = NULL;
    char akid[32], sec[64], enc[2 * (12 + 64 + 16) + 1];
    if (access_key) {
        if (strlen(access_key) < 3 || strlen(access_key) >= sizeof akid ||
            strlen(secret) < 1 || strlen(secret) >= sizeof sec)
            return kn_err_set(e, KN_INVALID,
                              "access key id must be 3..31 and secret 1..63 characters");
        snprintf(akid, sizeof akid, "%s", access_key);
        snprintf(sec, sizeof sec, "%s", secret);
    } else {
        random_id(akid, "AKIA", 16, ID_ALPHA);
        random_id(sec, "", 40, SECRET_ALPHA);
    }
    kn_status s = kn_iam__seal(iam, akid, sec, enc, sizeof enc, e);
    if (s)
        return s;
    double now = kn_iam__now();
    pthread_mutex_lock(&iam->mu);
    sqlite3_stmt *st;
    bool found = false;
    int count = 0;
    if ((s = user_exists(iam, user, &found, e)))
        goto out;
    if (!found) {
        s = no_user(user, e);
        goto out;
    }
    if ((s = kn_iam__prepare(iam, "SELECT count(*) FROM iam_access_keys WHERE user_name = ?",
                             &st, e)))
        goto out;
    sqlite3_bind_text(st, 1, user, -1, SQLITE_TRANSIENT);
    if (sqlite3_step(st) == SQLITE_ROW)
        count = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    if (count >= 2) {
        s = kn_err_set(e, KN_RESOURCE_LIMIT, "Cannot exceed quota for AccessKeysPerUser: 2");
        goto out;
    }
    if ((s = kn_iam__prepare(iam,
                             "INSERT INTO iam_access_keys (access_key_id, user_name, secret_enc, "
                             "create_date) SELECT ?, name, ?, ? FROM iam_users WHERE name = ?",
                             &st, e)))
        goto out;
    sqlite3_bind_text(st, 1, akid, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, enc, -1, SQLITE_TRANSIENT);
    sqlite3_bind_double(st, 3, now);
    sqlite3_bind_text(st, 4, user, -1, SQLITE_TRANSIENT);
    if ((s = step_done(iam, st, "CreateAccessKey", e))) {
        if (s == KN_IO && sqlite3_extended_errcode(iam->db) == SQLITE_CONSTRAINT_PRIMARYKEY)
            s = kn_err_set(e, KN_EXISTS, "Access key %s already exists.", akid);
        goto out;
    }
    bump(iam);
    json_t *o = json_object();
    set_str(o, "UserName", user);
    set_str(o, "AccessKeyId", akid);
    set_str(o, "Status", "Active");
    set_str(o, "SecretAccessKey", sec);
    set_time(o, "CreateDate", now);
    s = take_json(o, json, e);
out:
    pthread_mutex_unlock(&iam->mu);
    OPENSSL_cleanse(sec, sizeof sec);
    return s;
}

kn_status kn_iam_access_key_delete(kn_iam *iam, const char *user, const char *access_key,
                                   kn_err *e)
{
    pthread_mutex_lock(&iam->mu);
    sqlite3_stmt *st;
    kn_status s = kn_iam__prepare(
        iam,
        user ? "DELETE FROM iam_access_keys WHERE access_key_id = ? AND user_name = ?"
             : "DELETE FROM iam_access_keys WHERE access_key_id = ?",
        &st, e);
    if (!s) {
        sqlite3_bind_text(st, 1, access_key, -1, SQLITE_TRANSIENT);
        if (user)
            sqlite3_bind_text(st, 2, user, -1, SQLITE_TRANSIENT);
        s = step_done(iam, st, "DeleteAccessKey", e);
    }
    if (!s && sqlite3_changes(iam->db) == 0)
        s = kn_err_set(e, KN_NOT_FOUND, "The Access Key with id %.64s cannot be found.",
                       access_key);
    if (!s)
        bump(iam);
    pthread_mutex_unlock(&iam->mu);
    return s;
}

kn_status kn_iam_access_key_list(kn_iam *iam, const char *user, char **json, kn_err *e)
{
    *json = NULL;
    pthread_mutex_lock(&iam->mu);
    sqlite3_stmt *st;
    bool found = false;
    kn_status s = user_exists(iam, user, &found, e);
    if (!s && !found)
        s = no_user(user, e);
    if (!s)
        s = kn_iam__prepare(iam,
                            "SELECT access_key_id, status, create_date, user_name FROM "
                            "iam_access_keys WHERE user_name = ? ORDER BY create_date",
                            &st, e);
    if (!s) {
        sqlite3_bind_text(st, 1, user, -1, SQLITE_TRANSIENT);
        json_t *a = json_array();
        while (sqlite3_step(st) == SQLITE_ROW) {
            json_t *o = json_object();
            set_str(o, "UserName", col(st, 3));
            set_str(o, "AccessKeyId", col(st, 0));
            set_str(o, "Status", col(st, 1));
            set_time(o, "CreateDate", sqlite3_column_double(st, 2));
            json_array_append_new(a, o);
        }
        sqlite3_finalize(st);
        s = take_json(a, json, e);
    }
    pthread_mutex_unlock(&iam->mu);
    return s;
}

/* ---- lookup -------------------------------------------------------------- */

kn_status kn_iam_lookup_key(kn_iam *iam, const char *access_key, kn_iam_identity *out,
                            kn_err *e)
{
    memset(out, 0, sizeof *out);
    if (strlen(access_key) >= sizeof out->access_key)
        return kn_err_set(e, KN_NOT_FOUND, "unknown access key");
    snprintf(out->access_key, sizeof out->access_key, "%s", access_key);
    pthread_mutex_lock(&iam->mu);
    sqlite3_stmt *st;
    char enc[512] = "";
    kn_status s = kn_iam__prepare(iam,
                                  "SELECT k.secret_enc, u.arn, u.user_id, u.name FROM "
                                  "iam_access_keys k JOIN iam_users u ON u.name = k.user_name "
                                  "WHERE k.access_key_id = ? AND k.status = 'Active'",
                                  &st, e);
    if (s)
        goto out;
    sqlite3_bind_text(st, 1, access_key, -1, SQLITE_TRANSIENT);
    if (sqlite3_step(st) == SQLITE_ROW) {
        out->kind = KN_IAM_USER;
        snprintf(enc, sizeof enc, "%s", col(st, 0));
        snprintf(out->arn, sizeof out->arn, "%s", col(st, 1));
        snprintf(out->user_id, sizeof out->user_id, "%s", col(st, 2));
        snprintf(out->name, sizeof out->name, "%s", col(st, 3));
        sqlite3_finalize(st);
    } else {
        sqlite3_finalize(st);
        if ((s = kn_iam__prepare(iam,
                                 "SELECT secret_enc, session_arn, assumed_role_id, role_name, "
                                 "role_arn, token_sha256, expiration FROM iam_sessions WHERE "
                                 "access_key_id = ?",
                                 &st, e)))
            goto out;
        sqlite3_bind_text(st, 1, access_key, -1, SQLITE_TRANSIENT);
        if (sqlite3_step(st) != SQLITE_ROW) {
            sqlite3_finalize(st);
            s = kn_err_set(e, KN_NOT_FOUND, "unknown access key");
            goto out;
        }
        out->kind = KN_IAM_SESSION;
        snprintf(enc, sizeof enc, "%s", col(st, 0));
        snprintf(out->arn, sizeof out->arn, "%s", col(st, 1));
        snprintf(out->user_id, sizeof out->user_id, "%s", col(st, 2));
        snprintf(out->name, sizeof out->name, "%s", col(st, 3));
        snprintf(out->role_arn, sizeof out->role_arn, "%s", col(st, 4));
        snprintf(out->token_sha256, sizeof out->token_sha256, "%s", col(st, 5));
        out->expiration = sqlite3_column_double(st, 6);
        sqlite3_finalize(st);
    }
    s = kn_iam__open_secret(iam, access_key, enc, out->secret, sizeof out->secret, e);
out:
    pthread_mutex_unlock(&iam->mu);
    return s;
}

/* Appends the documents of one query's rows (col 0 name, col 1 document). */
static kn_status collect(kn_iam *iam, const char *sql, const char *kind, const char *owner,
                         char ***docs, char ***names, size_t *n, kn_err *e)
{
    sqlite3_stmt *st;
    kn_status s = kn_iam__prepare(iam, sql, &st, e);
    if (s)
        return s;
    sqlite3_bind_text(st, 1, kind, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, owner, -1, SQLITE_TRANSIENT);
    while (sqlite3_step(st) == SQLITE_ROW) {
        char **d = realloc(*docs, (*n + 1) * sizeof *d);
        if (d)
            *docs = d;
        char **nm = realloc(*names, (*n + 1) * sizeof *nm);
        if (nm)
            *names = nm;
        if (!d || !nm) {
            s = kn_err_set(e, KN_NOMEM, "out of memory");
            break;
        }
        (*docs)[*n] = strdup(col(st, 1));
        (*names)[*n] = strdup(col(st, 0));
        (*n)++;
        if (!(*docs)[*n - 1] || !(*names)[*n - 1]) {
            s = kn_err_set(e, KN_NOMEM, "out of memory");
            break;
        }
    }
    sqlite3_finalize(st);
    return s;
}

kn_status kn_iam_identity_policies(kn_iam *iam, const kn_iam_identity *id, char ***docs,
                                   char ***names, size_t *n, kn_err *e)
{
    *docs = *names = NULL;
    *n = 0;
    const char *kind = id->kind == KN_IAM_USER ? "user" : "role";
    pthread_mutex_lock(&iam->mu);
    kn_status s = collect(iam,
                          "SELECT 'inline:' || policy_name, document FROM iam_inline_policies "
                          "WHERE kind = ?1 AND owner = ?2 ORDER BY policy_name",
                          kind, id->name, docs, names, n, e);
    if (!s)
        s = collect(iam,
                    "SELECT a.policy_arn, v.document FROM iam_attachments a JOIN iam_policies p "
                    "ON p.arn = a.policy_arn JOIN iam_policy_versions v ON v.policy_arn = p.arn "
                    "AND v.version_id = p.default_version WHERE a.kind = ?1 AND a.owner = ?2 "
                    "ORDER BY a.policy_arn",
                    kind, id->name, docs, names, n, e);
    pthread_mutex_unlock(&iam->mu);
    if (s) {
        kn_iam_strings_free(*docs, *n);
        kn_iam_strings_free(*names, *n);
        *docs = *names = NULL;
        *n = 0;
    }
    return s;
}

/* ---- roles --------------------------------------------------------------- */

static json_t *role_row_json(sqlite3_stmt *st)
{
    /* name, path, role_id, arn, trust_policy, description, max_session, create_date */
    json_t *o = json_object();
    set_str(o, "Path", col(st, 1));
    set_str(o, "RoleName", col(st, 0));
    set_str(o, "RoleId", col(st, 2));
    set_str(o, "Arn", col(st, 3));
    set_time(o, "CreateDate", sqlite3_column_double(st, 7));
    set_str(o, "AssumeRolePolicyDocument", col(st, 4));
    if (sqlite3_column_type(st, 5) != SQLITE_NULL)
        set_str(o, "Description", col(st, 5));
    json_object_set_new(o, "MaxSessionDuration", json_integer(sqlite3_column_int(st, 6)));
    return o;
}

#define ROLE_COLS "name, path, role_id, arn, trust_policy, description, max_session, create_date"

kn_status kn_iam_role_create(kn_iam *iam, const char *name, const char *path, const char *trust,
                             const char *description, int max_session_s, char **json, kn_err *e)
{
    *json = NULL;
    kn_status s;
    if ((s = check_name("roleName", name, 64, e)) || (s = check_path(path, e)))
        return s;
    if (!path)
        path = "/";
    if (max_session_s == 0)
        max_session_s = 3600;
    if (max_session_s < 3600 || max_session_s > 43200)
        return kn_err_set(e, KN_INVALID,
                          "1 validation error detected: Value '%d' at 'maxSessionDuration' "
                          "failed to satisfy constraint: Member must have value less than or "
                          "equal to 43200 and greater than or equal to 3600",
                          max_session_s);
    char id[32], arn[700];
    random_id(id, "AROA", 17, ID_ALPHA);
    snprintf(arn, sizeof arn, "arn:aws:iam::%s:role%s%s", iam->account, path, name);
    pthread_mutex_lock(&iam->mu);
    sqlite3_stmt *st;
    if ((s = kn_iam__prepare(iam, "SELECT 1 FROM iam_roles WHERE name = ?", &st, e)))
        goto out;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
    bool found = sqlite3_step(st) == SQLITE_ROW;
    sqlite3_finalize(st);
    if (found) {
        s = kn_err_set(e, KN_EXISTS, "Role with name %s already exists.", name);
        goto out;
    }
    if ((s = kn_iam__prepare(iam, "INSERT INTO iam_roles (" ROLE_COLS
                                  ") VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING " ROLE_COLS,
                             &st, e)))
        goto out;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, path, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 3, id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 4, arn, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 5, trust, -1, SQLITE_TRANSIENT);
    if (description)
        sqlite3_bind_text(st, 6, description, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(st, 7, max_session_s);
    sqlite3_bind_double(st, 8, kn_iam__now());
    int rc = sqlite3_step(st);
    json_t *o = rc == SQLITE_ROW ? role_row_json(st) : NULL;
    if (rc == SQLITE_ROW)
        rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        json_decref(o);
        s = kn_iam__sqlite_err(iam, rc, "CreateRole", e);
        goto out;
    }
    bump(iam);
    s = take_json(o, json, e);
out:
    pthread_mutex_unlock(&iam->mu);
    return s;
}

static kn_status role_get_locked(kn_iam *iam, const char *by, const char *v, char **json,
                                 kn_err *e)
{
    sqlite3_stmt *st;
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT " ROLE_COLS " FROM iam_roles WHERE %s = ?", by);
    kn_status s = kn_iam__prepare(iam, sql, &st, e);
    if (s)
        return s;
    sqlite3_bind_text(st, 1, v, -1, SQLITE_TRANSIENT);
    if (sqlite3_step(st) != SQLITE_ROW) {
        sqlite3_finalize(st);
        return kn_err_set(e, KN_NOT_FOUND, "The role with name %.128s cannot be found.", v);
    }
    json_t *o = role_row_json(st);
    sqlite3_finalize(st);
    return take_json(o, json, e);
}

kn_status kn_iam_role_get(kn_iam *iam, const char *name, char **json, kn_err *e)
{
    *json = NULL;
    pthread_mutex_lock(&iam->mu);
    kn_status s = role_get_locked(iam, "name", name, json, e);
    pthread_mutex_unlock(&iam->mu);
    return s;
}

kn_status kn_iam_role_by_arn(kn_iam *iam, const char *arn, char **json, kn_err *e)
{
    *json = NULL;
    /* arn:aws:iam::<account>:role/<path/>name: the name is the last segment */
    char prefix[64];
    snprintf(prefix, sizeof prefix, "arn:aws:iam::%s:role/", iam->account);
    const char *slash = strrchr(arn, '/');
    if (strncmp(arn, prefix, strlen(prefix)) != 0 || !slash || !slash[1])
        return kn_err_set(e, KN_NOT_FOUND, "The role %.256s cannot be found.", arn);
    pthread_mutex_lock(&iam->mu);
    kn_status s = role_get_locked(iam, "arn", arn, json, e);
    pthread_mutex_unlock(&iam->mu);
    return s;
}

static int count_rows(kn_iam *iam, const char *sql, const char *a, const char *b)
{
    sqlite3_stmt *st;
    if (kn_iam__prepare(iam, sql, &st, NULL))
        return -1;
    sqlite3_bind_text(st, 1, a, -1, SQLITE_TRANSIENT);
    if (b)
        sqlite3_bind_text(st, 2, b, -1, SQLITE_TRANSIENT);
    int n = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : -1;
    sqlite3_finalize(st);
    return n;
}

kn_status kn_iam_role_delete(kn_iam *iam, const char *name, kn_err *e)
{
    pthread_mutex_lock(&iam->mu);
    kn_status s = KN_OK;
    if (count_rows(iam, "SELECT count(*) FROM iam_roles WHERE name = ?", name, NULL) <= 0) {
        s = kn_err_set(e, KN_NOT_FOUND, "The role with name %.128s cannot be found.", name);
        goto out;
    }
    if (count_rows(iam, "SELECT count(*) FROM iam_attachments WHERE kind = 'role' AND owner = ?",
                   name, NULL) > 0) {
        s = kn_err_set(e, KN_RESOURCE_IN_USE,
                       "Cannot delete entity, must detach all policies first.");
        goto out;
    }
    if (count_rows(iam,
                   "SELECT count(*) FROM iam_inline_policies WHERE kind = 'role' AND owner = ?",
                   name, NULL) > 0) {
        s = kn_err_set(e, KN_RESOURCE_IN_USE,
                       "Cannot delete entity, must delete policies first.");
        goto out;
    }
    if (!(s = write_texts(iam, "DELETE FROM iam_roles WHERE name = ?", "DeleteRole",
                          (const char *[]){name, NULL}, NULL, e)))
        bump(iam);
out:
    pthread_mutex_unlock(&iam->mu);
    return s;
}

/* ---- policies ------------------------------------------------------------ */

static kn_status owner_check(kn_iam *iam, const char *kind, const char *owner, kn_err *e)
{
    bool user = strcmp(kind, "user") == 0;
    int n = count_rows(iam,
                       user ? "SELECT count(*) FROM iam_users WHERE name = ?"
                            : "SELECT count(*) FROM iam_roles WHERE name = ?",
                       owner, NULL);
    if (n > 0)
        return KN_OK;
    if (n < 0)
        return kn_iam__sqlite_err(iam, sqlite3_errcode(iam->db), "lookup", e);
    return kn_err_set(e, KN_NOT_FOUND, "The %s with name %.128s cannot be found.", kind, owner);
}

kn_status kn_iam_inline_put(kn_iam *iam, const char *kind, const char *owner,
                            const char *policy_name, const char *doc, kn_err *e)
{
    kn_status s = check_name("policyName", policy_name, 128, e);
    if (s)
        return s;
    pthread_mutex_lock(&iam->mu);
    if (!(s = owner_check(iam, kind, owner, e)) &&
        !(s = write_texts(iam,
                          "INSERT INTO iam_inline_policies (kind, owner, policy_name, "
                          "document) VALUES (?, ?, ?, ?) ON CONFLICT (kind, owner, "
                          "policy_name) DO UPDATE SET document = excluded.document",
                          "PutPolicy", (const char *[]){kind, owner, policy_name, doc, NULL},
                          NULL, e)))
        bump(iam);
    pthread_mutex_unlock(&iam->mu);
    return s;
}

kn_status kn_iam_inline_get(kn_iam *iam, const char *kind, const char *owner,
                            const char *policy_name, char **doc, kn_err *e)
{
    *doc = NULL;
    pthread_mutex_lock(&iam->mu);
    sqlite3_stmt *st;
    kn_status s = owner_check(iam, kind, owner, e);
    if (!s &&
        !(s = kn_iam__prepare(iam,
                              "SELECT document FROM iam_inline_policies WHERE kind = ? AND "
                              "owner = ? AND policy_name = ?",
                              &st, e))) {
        sqlite3_bind_text(st, 1, kind, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 2, owner, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 3, policy_name, -1, SQLITE_TRANSIENT);
        if (sqlite3_step(st) == SQLITE_ROW) {
            *doc = strdup(col(st, 0));
            if (!*doc)
                s = kn_err_set(e, KN_NOMEM, "out of memory");
        } else {
            s = kn_err_set(e, KN_NOT_FOUND,
                           "The %s policy with name %.128s cannot be found.", kind,
                           policy_name);
        }
        sqlite3_finalize(st);
    }
    pthread_mutex_unlock(&iam->mu);
    return s;
}

kn_status kn_iam_inline_delete(kn_iam *iam, const char *kind, const char *owner,
                               const char *policy_name, kn_err *e)
{
    pthread_mutex_lock(&iam->mu);
    int changed = 0;
    kn_status s = owner_check(iam, kind, owner, e);
    if (!s) {
        s = write_texts(iam,
                        "DELETE FROM iam_inline_policies WHERE kind = ? AND owner = ? AND "
                        "policy_name = ?",
                        "DeletePolicy", (const char *[]){kind, owner, policy_name, NULL},
                        &changed, e);
        if (!s && changed == 0)
            s = kn_err_set(e, KN_NOT_FOUND,
                           "The %s policy with name %.128s cannot be found.", kind,
                           policy_name);
        if (!s)
            bump(iam);
    }
    pthread_mutex_unlock(&iam->mu);
    return s;
}

kn_status kn_iam_policy_create(kn_iam *iam, const char *name, const char *path, const char *doc,
                               const char *description, char **json, kn_err *e)
{
    *json = NULL;
    kn_status s;
    if ((s = check_name("policyName", name, 128, e)) || (s = check_path(path, e)))
        return s;
    if (!path)
        path = "/";
    char id[32], arn[700];
    random_id(id, "ANPA", 17, ID_ALPHA);
    snprintf(arn, sizeof arn, "arn:aws:iam::%s:policy%s%s", iam->account, path, name);
    double now = kn_iam__now();
    pthread_mutex_lock(&iam->mu);
    sqlite3_stmt *st;
    if (count_rows(iam, "SELECT count(*) FROM iam_policies WHERE arn = ?", arn, NULL) > 0) {
        s = kn_err_set(e, KN_EXISTS, "A policy called %s already exists. Duplicate names are "
                       "not allowed.", name);
        goto out;
    }
    if ((s = exec(iam, "BEGIN IMMEDIATE", "begin", e)))
        goto out;
    if (!(s = kn_iam__prepare(iam,
                              "INSERT INTO iam_policies (arn, name, path, policy_id, description, "
                              "default_version, create_date) VALUES (?, ?, ?, ?, ?, 'v1', ?)",
                              &st, e))) {
        sqlite3_bind_text(st, 1, arn, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 2, name, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 3, path, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 4, id, -1, SQLITE_TRANSIENT);
        if (description)
            sqlite3_bind_text(st, 5, description, -1, SQLITE_TRANSIENT);
        sqlite3_bind_double(st, 6, now);
        s = step_done(iam, st, "CreatePolicy", e);
    }
    if (!s && !(s = kn_iam__prepare(iam,
                                    "INSERT INTO iam_policy_versions (policy_arn, version_id, "
                                    "document, create_date) VALUES (?, 'v1', ?, ?)",
                                    &st, e))) {
        sqlite3_bind_text(st, 1, arn, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 2, doc, -1, SQLITE_TRANSIENT);
        sqlite3_bind_double(st, 3, now);
        s = step_done(iam, st, "CreatePolicy", e);
    }
    if (s) {
        exec(iam, "ROLLBACK", "rollback", NULL);
        goto out;
    }
    if ((s = exec(iam, "COMMIT", "commit", e)))
        goto out;
    bump(iam);
    json_t *o = json_object();
    set_str(o, "PolicyName", name);
    set_str(o, "PolicyId", id);
    set_str(o, "Arn", arn);
    set_str(o, "Path", path);
    set_str(o, "DefaultVersionId", "v1");
    json_object_set_new(o, "AttachmentCount", json_integer(0));
    json_object_set_new(o, "IsAttachable", json_true());
    if (description)
        set_str(o, "Description", description);
    set_time(o, "CreateDate", now);
    set_time(o, "UpdateDate", now);
    s = take_json(o, json, e);
out:
    pthread_mutex_unlock(&iam->mu);
    return s;
}

kn_status kn_iam_policy_attach(kn_iam *iam, const char *kind, const char *owner,
                               const char *policy_arn, kn_err *e)
{
    pthread_mutex_lock(&iam->mu);
    kn_status s = owner_check(iam, kind, owner, e);
    if (!s && count_rows(iam, "SELECT count(*) FROM iam_policies WHERE arn = ?", policy_arn,
                         NULL) <= 0)
        s = kn_err_set(e, KN_NOT_FOUND, "Policy %.256s does not exist or is not attachable.",
                       policy_arn);
    if (!s && !(s = write_texts(iam,
                                "INSERT OR IGNORE INTO iam_attachments (kind, owner, "
                                "policy_arn) VALUES (?, ?, ?)",
                                "AttachPolicy", (const char *[]){kind, owner, policy_arn, NULL},
                                NULL, e)))
        bump(iam);
    pthread_mutex_unlock(&iam->mu);
    return s;
}

kn_status kn_iam_policy_detach(kn_iam *iam, const char *kind, const char *owner,
                               const char *policy_arn, kn_err *e)
{
    pthread_mutex_lock(&iam->mu);
    int changed = 0;
    kn_status s = owner_check(iam, kind, owner, e);
    if (!s) {
        s = write_texts(iam,
                        "DELETE FROM iam_attachments WHERE kind = ? AND owner = ? AND "
                        "policy_arn = ?",
                        "DetachPolicy", (const char *[]){kind, owner, policy_arn, NULL},
                        &changed, e);
        if (!s && changed == 0)
            s = kn_err_set(e, KN_NOT_FOUND, "Policy %.256s was not found.", policy_arn);
        if (!s)
            bump(iam);
    }
    pthread_mutex_unlock(&iam->mu);
    return s;
}

/* ---- STS sessions -------------------------------------------------------- */

kn_status kn_iam_session_create(kn_iam *iam, const char *role_arn, const char *session_name,
                                int duration_s, kn_iam_credentials *out, kn_err *e)
{
    memset(out, 0, sizeof *out);
    kn_status s = check_name("roleSessionName", session_name, 64, e);
    if (s)
        return s;
    char *json = NULL;
    if ((s = kn_iam_role_by_arn(iam, role_arn, &json, e)))
        return s;
    json_t *role = json_loads(json, 0, NULL);
    free(json);
    const char *rname = json_string_value(json_object_get(role, "RoleName"));
    const char *rid = json_string_value(json_object_get(role, "RoleId"));
    const char *rarn = json_string_value(json_object_get(role, "Arn"));
    int max = (int)json_integer_value(json_object_get(role, "MaxSessionDuration"));
    if (!rname || !rid || !rarn) {
        json_decref(role);
        return kn_err_set(e, KN_INTERNAL, "role record incomplete");
    }
    if (duration_s == 0)
        duration_s = 3600;
    if (duration_s < 900 || duration_s > (max ? max : 3600)) {
        json_decref(role);
        return kn_err_set(e, KN_INVALID,
                          "The requested DurationSeconds exceeds the MaxSessionDuration set for "
                          "this role.");
    }
    random_id(out->access_key, "ASIA", 16, ID_ALPHA);
    random_id(out->secret, "", 40, SECRET_ALPHA);
    random_id(out->session_token, "IQoJb3JpZ2luX2VjE", 120, SECRET_ALPHA);
    out->expiration = (double)(long long)kn_iam__now() + duration_s;
    snprintf(out->session_arn, sizeof out->session_arn, "arn:aws:sts::%s:assumed-role/%s/%s",
             iam->account, rname, session_name);
    snprintf(out->assumed_role_id, sizeof out->assumed_role_id, "%s:%s", rid, session_name);
    char enc[2 * (12 + 64 + 16) + 1], tok[65];
    uint8_t h[32];
    kn_sha256(out->session_token, strlen(out->session_token), h);
    kn_hex(h, 32, tok);
    if ((s = kn_iam__seal(iam, out->access_key, out->secret, enc, sizeof enc, e))) {
        json_decref(role);
        return s;
    }
    pthread_mutex_lock(&iam->mu);
    sqlite3_stmt *st;
    /* expired sessions are dropped as new ones are made */
    if (!(s = kn_iam__prepare(iam, "DELETE FROM iam_sessions WHERE expiration < ?", &st, e))) {
        sqlite3_bind_double(st, 1, kn_iam__now() - 86400);
        s = step_done(iam, st, "expire sessions", e);
    }
    if (!s && !(s = kn_iam__prepare(iam,
                                    "INSERT INTO iam_sessions (access_key_id, secret_enc, "
                                    "token_sha256, role_name, role_arn, session_arn, "
                                    "assumed_role_id, expiration, create_date) VALUES (?, ?, ?, "
                                    "?, ?, ?, ?, ?, ?)",
                                    &st, e))) {
        sqlite3_bind_text(st, 1, out->access_key, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 2, enc, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 3, tok, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 4, rname, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 5, rarn, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 6, out->session_arn, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 7, out->assumed_role_id, -1, SQLITE_TRANSIENT);
        sqlite3_bind_double(st, 8, out->expiration);
        sqlite3_bind_double(st, 9, kn_iam__now());
        s = step_done(iam, st, "AssumeRole", e);
    }
    pthread_mutex_unlock(&iam->mu);
    json_decref(role);
    return s;
}

/* ---- listings -------------------------------------------------------------- */

/* One query per listing; every column is text, named as IAM names the
 * member. Owner-scoped listings bind the owner (its kind is in the SQL). */
static const struct listing {
    kn_iam_list_kind kind;
    const char *sql;
    bool owner;
} listings[] = {
    {KN_IAM_LIST_USERS,
     "SELECT name AS UserName, user_id AS UserId, arn AS Arn, path AS Path, create_date "
     "FROM iam_users ORDER BY name",
     false},
    {KN_IAM_LIST_ROLES,
     "SELECT name AS RoleName, role_id AS RoleId, arn AS Arn, path AS Path, trust_policy AS "
     "AssumeRolePolicyDocument, coalesce(description, '') AS Description, create_date "
     "FROM iam_roles ORDER BY name",
     false},
    {KN_IAM_LIST_ATTACHED_USER,
     "SELECT p.name AS PolicyName, p.arn AS PolicyArn FROM iam_attachments a JOIN "
     "iam_policies p ON p.arn = a.policy_arn WHERE a.kind = 'user' AND a.owner = ? "
     "ORDER BY p.name",
     true},
    {KN_IAM_LIST_ATTACHED_ROLE,
     "SELECT p.name AS PolicyName, p.arn AS PolicyArn FROM iam_attachments a JOIN "
     "iam_policies p ON p.arn = a.policy_arn WHERE a.kind = 'role' AND a.owner = ? "
     "ORDER BY p.name",
     true},
    {KN_IAM_LIST_INLINE_USER,
     "SELECT policy_name AS PolicyName FROM iam_inline_policies WHERE kind = 'user' AND "
     "owner = ? ORDER BY policy_name",
     true},
    {KN_IAM_LIST_INLINE_ROLE,
     "SELECT policy_name AS PolicyName FROM iam_inline_policies WHERE kind = 'role' AND "
     "owner = ? ORDER BY policy_name",
     true},
};

kn_status kn_iam_list(kn_iam *iam, kn_iam_list_kind kind, const char *owner, char **json,
                      kn_err *e)
{
    *json = NULL;
    const struct listing *l = NULL;
    for (size_t i = 0; i < sizeof listings / sizeof listings[0]; i++)
        if (listings[i].kind == kind)
            l = &listings[i];
    if (!l)
        return kn_err_set(e, KN_INVALID, "unknown IAM listing %d", (int)kind);
    pthread_mutex_lock(&iam->mu);
    kn_status s = KN_OK;
    if (l->owner) { /* the owner must exist: NoSuchEntity otherwise, as IAM */
        bool found = false;
        bool role = kind == KN_IAM_LIST_ATTACHED_ROLE || kind == KN_IAM_LIST_INLINE_ROLE;
        sqlite3_stmt *q;
        s = kn_iam__prepare(iam,
                            role ? "SELECT 1 FROM iam_roles WHERE name = ?"
                                 : "SELECT 1 FROM iam_users WHERE name = ?",
                            &q, e);
        if (!s) {
            sqlite3_bind_text(q, 1, owner ? owner : "", -1, SQLITE_TRANSIENT);
            found = sqlite3_step(q) == SQLITE_ROW;
            sqlite3_finalize(q);
            if (!found)
                s = kn_err_set(e, KN_NOT_FOUND, "The %s with name %s cannot be found.",
                               role ? "role" : "user", owner ? owner : "");
        }
    }
    sqlite3_stmt *st;
    if (!s)
        s = kn_iam__prepare(iam, l->sql, &st, e);
    if (!s) {
        if (l->owner)
            sqlite3_bind_text(st, 1, owner, -1, SQLITE_TRANSIENT);
        json_t *a = json_array();
        while (sqlite3_step(st) == SQLITE_ROW) {
            json_t *o = json_object();
            for (int i = 0; i < sqlite3_column_count(st); i++) {
                const char *name = sqlite3_column_name(st, i);
                if (!strcmp(name, "create_date"))
                    set_time(o, "CreateDate", sqlite3_column_double(st, i));
                else
                    set_str(o, name, col(st, i));
            }
            json_array_append_new(a, o);
        }
        sqlite3_finalize(st);
        s = take_json(a, json, e);
    }
    pthread_mutex_unlock(&iam->mu);
    return s;
}
