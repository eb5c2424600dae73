/* Cross-file internals of the platform module. */
#ifndef KN_PLATFORM_INT_H
#define KN_PLATFORM_INT_H

#include "kennel/platform.h"

#include <sqlite3.h>

/* The registry: one SQLite connection used under one mutex. Every public
 * registry call takes the mutex for its whole duration, so a call is one
 * transaction and callers on different threads never interleave. (Reads are
 * a few microseconds; a read-connection pool is the step up if they ever
 * contend.) */
struct kn_registry {
    sqlite3 *db;
    pthread_mutex_t mu;
    kn_clock *clock;
    int schema_version;
    char region[64];
    char account[16];
};

/* Moves the clock's wall time forward to `wall` if it is behind it. Only
 * before the clock is shared with other threads (kn_platform_open). */
void kn_clock__continue_from(kn_clock *c, double wall);

/* The latest time any stored row records (0 for an empty database). */
kn_status kn_registry__latest_time(kn_registry *r, double *out, kn_err *e);

/* The one place SQLite result codes become kn_status; the detail names the
 * database, what was being done and SQLite's message. */
kn_status kn_registry__sqlite_err(kn_registry *r, int rc, const char *what, kn_err *e);

/* Transactions (the caller holds r->mu). begin: BEGIN IMMEDIATE. */
kn_status kn_registry__begin(kn_registry *r, kn_err *e);
kn_status kn_registry__commit(kn_registry *r, kn_err *e);
void kn_registry__rollback(kn_registry *r);
/* The end of a write transaction under r->mu: committed when s is KN_OK,
 * st finalized, rolled back when s (or the commit) failed, r->mu released;
 * returns the outcome. */
kn_status kn_registry__write_end(kn_registry *r, sqlite3_stmt *st, kn_status s, kn_err *e);

/* Prepares `sql` (the caller holds r->mu); KN_IO etc. on failure. */
kn_status kn_registry__prepare(kn_registry *r, const char *sql, sqlite3_stmt **st, kn_err *e);

/* Duplicates a column as a heap string (NULL for SQL NULL); *oom is set
 * when allocation fails. */
char *kn_registry__col_strdup(sqlite3_stmt *st, int col, bool *oom);

/* SELECT 1 FROM table WHERE name = ? (case-insensitive). Caller holds r->mu. */
kn_status kn_registry__exists(kn_registry *r, const char *table, const char *name, bool *found,
                              kn_err *e);
void kn_registry__bind_opt_text(sqlite3_stmt *st, int i, const char *v);

/* Filtered, ordered, keyset-paginated listing (resources.c): `cols` start
 * with name, arn, creation_time and end with id; `fn` is called per row. */
typedef kn_status (*kn_registry__row_fn)(sqlite3_stmt *st, void *ctx, kn_err *e);
kn_status kn_registry__list_rows(kn_registry *r, const char *table, const char *cols,
                                 const kn_list_params *q, kn_registry__row_fn fn, void *ctx,
                                 char **next_token, kn_err *e);

/* Pagination tokens: opaque to clients (hex), bound to the sort key and
 * order they were issued for. A position is the last row's sort value
 * (creation time or name) and row id. */
typedef struct kn_page_pos {
    kn_sort_key sort_by;
    bool ascending;
    double time;
    char name[128];
    int64_t id;
} kn_page_pos;
char *kn_registry__token_encode(const kn_page_pos *pos);
kn_status kn_registry__token_decode(const char *token, kn_page_pos *pos, kn_err *e);

#endif
