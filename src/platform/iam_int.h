/* Internals shared by iam_db.c (identities) and audit_db.c (the audit log
 * and execution-role credentials). */
#ifndef KN_IAM_INT_H
#define KN_IAM_INT_H

#include "kennel/platform.h"

#include <limits.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

/* One queued audit row: the record's strings packed after the node. */
typedef struct kn_iam__audit_row {
    struct kn_iam__audit_row *next;
    double time;
    const char *v[8];
} kn_iam__audit_row;

struct kn_iam {
    sqlite3 *db;              /* own connection to kennel.db, synchronous=NORMAL */
    pthread_mutex_t mu;       /* held for every call */
    uint8_t key[32];          /* iam.key: AES-256-GCM key of stored secrets */
    _Atomic uint64_t generation;
    char account[16];
    char region[64];
    char data_dir[PATH_MAX];
    /* the audit writer (audit_db.c): rows queue here and a thread commits
     * them in batches; audit_mu guards the fields below */
    pthread_mutex_t audit_mu;
    pthread_cond_t audit_cv;      /* writer wakes: rows queued, flush, stop */
    pthread_cond_t audit_done_cv; /* flushers wake: a batch was committed */
    kn_iam__audit_row *audit_head, **audit_tail;
    size_t audit_queued;
    uint64_t audit_added, audit_written; /* rows enqueued / committed (or dropped) */
    bool audit_flush, audit_stop, audit_running;
    pthread_t audit_thread;
    sqlite3_stmt *audit_insert; /* cached; used under mu */
    double audit_retention_s;   /* 0 = keep every row */
    double audit_purged_at;     /* newest row time at the last purge (writer only) */
};

/* Starts / stops (after writing every queued row) the audit writer. */
kn_status kn_iam__audit_start(kn_iam *iam, kn_err *e);
void kn_iam__audit_stop(kn_iam *iam);

double kn_iam__now(void);
kn_status kn_iam__sqlite_err(kn_iam *iam, int rc, const char *what, kn_err *e);
kn_status kn_iam__prepare(kn_iam *iam, const char *sql, sqlite3_stmt **st, kn_err *e);
/* Encrypts/decrypts a secret bound to aad (the access key id). */
kn_status kn_iam__seal(kn_iam *iam, const char *aad, const char *secret, char *out, size_t n,
                       kn_err *e);
kn_status kn_iam__open_secret(kn_iam *iam, const char *aad, const char *hex, char *out,
                              size_t n, kn_err *e);

#endif
