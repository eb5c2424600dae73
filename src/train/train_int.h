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

/* Data-parallel collectives (dist.c); the identity on one process. Sums
 * are in place; reduce_* leave the result on rank 0; bcast is from rank 0;
 * agree says whether every rank passed the same value. */
kn_status kn__dist_init(int *rank, int *size, kn_err *e);
int kn__dist_rank(void);
int kn__dist_size(void);
void kn__dist_sum_f(float *buf, size_t n);
void kn__dist_sum_d(double *buf, int n);
void kn__dist_reduce_sum_f(float *buf, size_t n);
void kn__dist_reduce_min_i(int *buf, int n);
void kn__dist_bcast(void *buf, size_t bytes);
bool kn__dist_agree(uint64_t v);

#endif
