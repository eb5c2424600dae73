/* The feature cache: backbone outputs keyed by the SHA-256 of the image file
 * and a key of the backbone (its weights file, cut point and preprocessing),
 * so features are computed once per image and reused across epochs, runs and
 * tuning trials. One append-only file per backbone key:
 *
 *   "KNFC1\n" | u32 dim | records of { 32-byte image hash, dim float32 }
 *
 * A file whose header or dimension does not match is ignored (and replaced
 * on the next write); a torn final record is ignored. Appends hold an
 * exclusive flock so parallel jobs can share the cache. */
#include "train_int.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAGIC "KNFC1\n"

kn_status kn__sha256_file(const char *path, uint8_t out[32], kn_err *e)
{
    kn_map m;
    kn_status rc = kn_map_open(&m, path, e);
    if (rc)
        return rc;
    unsigned int len = 0;
    int ok = EVP_Digest(m.data ? m.data : (const uint8_t *)"", m.len, out, &len, EVP_sha256(),
                        NULL);
    kn_map_close(&m);
    return ok ? KN_OK : kn_err_set(e, KN_INTERNAL, "%s: SHA-256 failed", path);
}

static uint64_t h64(const uint8_t *k)
{
    uint64_t v;
    memcpy(&v, k, 8);
    return v;
}

void kn__fcache_free(kn_fcache *c)
{
    if (!c)
        return;
    free(c->keys);
    free(c->vals);
    free(c->table);
    free(c);
}

static kn_status grow(kn_fcache *c)
{
    if (c->n < c->cap)
        return KN_OK;
    int cap = c->cap ? c->cap * 2 : 1024;
    uint8_t *k = realloc(c->keys, (size_t)cap * 32);
    if (!k)
        return KN_NOMEM;
    c->keys = k;
    float *v = realloc(c->vals, (size_t)cap * c->dim * sizeof(float));
    if (!v)
        return KN_NOMEM;
    c->vals = v;
    c->cap = cap;
    /* rebuild the open-addressing table at twice the capacity */
    free(c->table);
    c->tsize = (size_t)cap * 2;
    c->table = malloc(c->tsize * sizeof(int));
    if (!c->table)
        return KN_NOMEM;
    for (size_t i = 0; i < c->tsize; i++)
        c->table[i] = -1;
    for (int i = 0; i < c->n; i++) {
        size_t h = h64(c->keys + (size_t)i * 32) % c->tsize;
        while (c->table[h] >= 0)
            h = (h + 1) % c->tsize;
        c->table[h] = i;
    }
    return KN_OK;
}

const float *kn__fcache_get(const kn_fcache *c, const uint8_t key[32])
{
    if (!c->tsize)
        return NULL;
    size_t h = h64(key) % c->tsize;
    while (c->table[h] >= 0) {
        int i = c->table[h];
        if (memcmp(c->keys + (size_t)i * 32, key, 32) == 0)
            return c->vals + (size_t)i * c->dim;
        h = (h + 1) % c->tsize;
    }
    return NULL;
}

kn_status kn__fcache_put(kn_fcache *c, const uint8_t key[32], const float *v)
{
    if (kn__fcache_get(c, key))
        return KN_OK;
    if (grow(c))
        return KN_NOMEM;
    int i = c->n++;
    memcpy(c->keys + (size_t)i * 32, key, 32);
    memcpy(c->vals + (size_t)i * c->dim, v, (size_t)c->dim * sizeof(float));
    size_t h = h64(key) % c->tsize;
    while (c->table[h] >= 0)
        h = (h + 1) % c->tsize;
    c->table[h] = i;
    return KN_OK;
}

kn_status kn__fcache_open(const char *dir, const char *key_hex, int dim, kn_fcache **out,
                          kn_err *e)
{
    kn_fcache *c = calloc(1, sizeof *c);
    if (!c)
        return kn_err_set(e, KN_NOMEM, "feature cache: out of memory");
    c->dim = dim;
    *out = c;
    if (!dir)
        return KN_OK;
    kn_status rc = kn_mkdirs(dir, 0755, e);
    if (rc)
        return kn_err_prefix(e, "feature cache");
    snprintf(c->path, sizeof c->path, "%s/features-%.32s.bin", dir, key_hex);
    int fd = open(c->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return KN_OK; /* nothing cached yet */
    flock(fd, LOCK_SH);
    FILE *f = fdopen(fd, "rb");
    char magic[6];
    uint32_t fdim = 0;
    if (f && fread(magic, 1, 6, f) == 6 && memcmp(magic, MAGIC, 6) == 0 &&
        fread(&fdim, 4, 1, f) == 1 && (int)fdim == dim) {
        uint8_t key[32];
        float *v = malloc((size_t)dim * sizeof(float));
        while (v && fread(key, 1, 32, f) == 32 && fread(v, sizeof(float), (size_t)dim, f) ==
                                                       (size_t)dim) {
            if (kn__fcache_put(c, key, v)) {
                free(v);
                fclose(f);
                return kn_err_set(e, KN_NOMEM, "feature cache: out of memory");
            }
        }
        free(v);
    } else {
        c->stale = true; /* different layout: start it again */
    }
    c->loaded = c->n;
    if (f)
        fclose(f); /* releases the lock */
    else
        close(fd);
    return KN_OK;
}

kn_status kn__fcache_flush(kn_fcache *c, kn_err *e)
{
    if (!c->path[0] || (c->n == c->loaded && !c->stale))
        return KN_OK;
    /* a stale file is rewritten whole; otherwise only new records are
     * appended (other jobs may append concurrently: the lock orders them) */
    int flags = O_WRONLY | O_CREAT | O_CLOEXEC | (c->stale ? O_TRUNC : O_APPEND);
    int fd = open(c->path, flags, 0644);
    if (fd < 0)
        return kn_err_set(e, KN_IO, "feature cache %s: %s", c->path, strerror(errno));
    flock(fd, LOCK_EX);
    struct stat st;
    bool empty = fstat(fd, &st) == 0 && st.st_size == 0;
    FILE *f = fdopen(fd, "ab");
    if (!f) {
        close(fd);
        return kn_err_set(e, KN_IO, "feature cache %s: %s", c->path, strerror(errno));
    }
    int from = c->stale ? 0 : c->loaded;
    if (empty) {
        uint32_t d = (uint32_t)c->dim;
        fwrite(MAGIC, 1, 6, f);
        fwrite(&d, 4, 1, f);
    }
    for (int i = from; i < c->n; i++) {
        fwrite(c->keys + (size_t)i * 32, 1, 32, f);
        fwrite(c->vals + (size_t)i * c->dim, sizeof(float), (size_t)c->dim, f);
    }
    int bad = ferror(f);
    if (fclose(f) != 0 || bad)
        return kn_err_set(e, KN_IO, "feature cache %s: write failed", c->path);
    c->loaded = c->n;
    c->stale = false;
    return KN_OK;
}
