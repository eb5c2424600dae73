/* Internals shared by iam_db.c (identities) and audit_db.c (the audit log
 * and execution-role credentials). */
#ifndef KN_IAM_INT_H
#define KN_IAM_INT_H

#include "kennel/platform.h"

#include <limits.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdint.h>

struct kn_iam {
    sqlite3 *db;              /* own connection to kennel.db, synchronous=NORMAL */
    pthread_mutex_t mu;       /* held for every call */
    uint8_t key[32];          /* iam.key: AES-256-GCM key of stored secrets */
    _Atomic uint64_t generation;
    char account[16];
    char region[64];
    char data_dir[PATH_MAX];
};

double kn_iam__now(void);
kn_status kn_iam__sqlite_err(kn_iam *iam, int rc, const char *what, kn_err *e);
kn_status kn_iam__prepare(kn_iam *iam, const char *sql, sqlite3_stmt **st, kn_err *e);
/* Encrypts/decrypts a secret bound to aad (the access key id). */
kn_status kn_iam__seal(kn_iam *iam, const char *aad, const char *secret, char *out, size_t n,
                       kn_err *e);
kn_status kn_iam__open_secret(kn_iam *iam, const char *aad, const char *hex, char *out,
                              size_t n, kn_err *e);

#endif
