/* Internal declarations of the train module. */
#ifndef KN_TRAIN_INT_H
#define KN_TRAIN_INT_H

#include "kennel/train.h"

/* In-memory feature cache backed by one append-only file (cache.c). */
typedef struct kn_fcache {
    int dim;
    int n, cap, loaded;  /* loaded: records already in the file */
    uint8_t *keys;       /* n x 32 */
    float *vals;         /* n x dim */
    int *table;          /* open addressing over keys */
    size_t tsize;
    bool stale;          /* file had another layout: rewrite it whole */
    char path[4096];     /* empty: memory only */
} kn_fcache;

kn_status kn__fcache_open(const char *dir, const char *key_hex, int dim, kn_fcache **out,
                          kn_err *e);
const float *kn__fcache_get(const kn_fcache *c, const uint8_t key[32]);
kn_status kn__fcache_put(kn_fcache *c, const uint8_t key[32], const float *v);
kn_status kn__fcache_flush(kn_fcache *c, kn_err *e);
void kn__fcache_free(kn_fcache *c);

kn_status kn__sha256_file(const char *path, uint8_t out[32], kn_err *e);

#endif
