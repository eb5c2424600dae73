/* Logging, bounded buffers, files and maps, aligned memory, clock, random
 * numbers, half-precision conversion. The log threshold is the only mutable
 * process state; it is set by main() before threads start. */
#include "kennel/core.h"

#include <openssl/evp.h>

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <limits.h>
#include <unistd.h>

static kn_log_level log_threshold = KN_LOG_INFO;

void kn_log_set_level(kn_log_level lvl)
{
    log_threshold = lvl;
}

void kn_log(kn_log_level lvl, const char *fmt, ...)
{
    static const char *tags[] = {"debug", "info", "warn", "error"};
    if (lvl < log_threshold)
        return;
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "kennel: %s: %s\n", tags[lvl], line);
}

void kn_buf_init(kn_buf *b, size_t max)
{
    b->data = NULL;
    b->len = b->cap = 0;
    b->max = max;
}

void kn_buf_deinit(kn_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

kn_status kn_buf_reserve(kn_buf *b, size_t extra)
{
    if (extra > b->max || b->len > b->max - extra)
        return KN_TOO_LARGE;
    size_t need = b->len + extra + 1; /* room for the terminator */
    if (need <= b->cap)
        return KN_OK;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    if (cap > b->max + 1)
        cap = b->max + 1;
    uint8_t *p = realloc(b->data, cap);
    if (!p)
        return KN_NOMEM;
    b->data = p;
    b->cap = cap;
    return KN_OK;
}

kn_status kn_buf_append(kn_buf *b, const void *p, size_t n)
{
    kn_status rc = kn_buf_reserve(b, n);
    if (rc)
        return rc;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = 0;
    return KN_OK;
}

kn_status kn_buf_appendf(kn_buf *b, const char *fmt, ...)
{
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        va_end(ap2);
        return KN_INVALID;
    }
    kn_status rc = kn_buf_reserve(b, (size_t)n);
    if (rc == KN_OK) {
        vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap2);
        b->len += (size_t)n;
    }
    va_end(ap2);
    return rc;
}

uint8_t *kn_buf_take(kn_buf *b, size_t *len)
{
    uint8_t *p = b->data;
    if (len)
        *len = b->len;
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}

kn_status kn_file_read(const char *path, kn_buf *b, kn_err *e)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return kn_err_set(e, errno == ENOENT ? KN_NOT_FOUND : KN_IO, "%s: %s", path,
                          strerror(errno));
    struct stat st;
    if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
        close(fd);
        return kn_err_set(e, KN_INVALID, "%s: is a directory", path);
    }
    if (fstat(fd, &st) == 0 && (uint64_t)st.st_size > b->max) {
        close(fd);
        return kn_err_set(e, KN_TOO_LARGE, "%s: %lld bytes, limit is %zu", path,
                          (long long)st.st_size, b->max);
    }
    kn_status rc = KN_OK;
    for (;;) {
        if ((rc = kn_buf_reserve(b, 65536 < b->max - b->len ? 65536 : b->max - b->len)))
            break;
        size_t room = b->cap - 1 - b->len;
        if (room == 0) {
            char probe;
            ssize_t r = read(fd, &probe, 1);
            if (r > 0)
                rc = KN_TOO_LARGE;
            break;
        }
        ssize_t r = read(fd, b->data + b->len, room);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            rc = KN_IO;
            break;
        }
        if (r == 0)
            break;
        b->len += (size_t)r;
        b->data[b->len] = 0;
    }
    close(fd);
    if (rc == KN_TOO_LARGE)
        return kn_err_set(e, rc, "%s: larger than the limit of %zu bytes", path, b->max);
    if (rc)
        return kn_err_set(e, rc, "%s: read failed: %s", path, strerror(errno));
    return KN_OK;
}

kn_status kn_file_write(const char *path, const void *p, size_t n, kn_err *e)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return kn_err_set(e, KN_IO, "%s: %s", path, strerror(errno));
    size_t w = fwrite(p, 1, n, f);
    int c = fclose(f);
    if (w != n || c != 0)
        return kn_err_set(e, KN_IO, "%s: write failed", path);
    return KN_OK;
}

kn_status kn_map_open(kn_map *m, const char *path, kn_err *e)
{
    m->data = NULL;
    m->len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return kn_err_set(e, errno == ENOENT ? KN_NOT_FOUND : KN_IO, "%s: %s", path,
                          strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return kn_err_set(e, KN_INVALID, "%s: not a regular file", path);
    }
    if (st.st_size == 0) {
        close(fd);
        return KN_OK;
    }
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (p == MAP_FAILED)
        return kn_err_set(e, KN_IO, "%s: mmap failed: %s", path, strerror(errno));
    m->data = p;
    m->len = (size_t)st.st_size;
    return KN_OK;
}

void kn_map_close(kn_map *m)
{
    if (m && m->data && m->len)
        munmap((void *)m->data, m->len);
    if (m) {
        m->data = NULL;
        m->len = 0;
    }
}

void *kn_alloc_aligned(size_t n)
{
    if (n == 0)
        return NULL;
    void *p = NULL;
    size_t rounded = (n + 63) & ~(size_t)63;
    if (rounded < n || posix_memalign(&p, 64, rounded) != 0)
        return NULL;
    return p;
}

void kn_free_aligned(void *p)
{
    free(p);
}

uint64_t kn_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void kn_rng_seed(kn_rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&seed);
}

static inline uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t kn_rng_next(kn_rng *r)
{
    uint64_t *s = r->s;
    uint64_t out = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

double kn_rng_uniform(kn_rng *r)
{
    return (double)(kn_rng_next(r) >> 11) * 0x1.0p-53;
}

double kn_rng_normal(kn_rng *r)
{
    double u1 = kn_rng_uniform(r), u2 = kn_rng_uniform(r);
    if (u1 < 1e-300)
        u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

float kn_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else { /* subnormal: renormalise */
            exp = 127 - 15 + 1;
            while (!(man & 0x400)) {
                man <<= 1;
                exp--;
            }
            man &= 0x3ff;
            bits = sign | (exp << 23) | (man << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (man << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

float kn_bf16_to_f32(uint16_t h)
{
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t kn_f32_to_bf16(float f)
{
    uint32_t bits;
    memcpy(&bits, &f, 4);
    if ((bits & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((bits >> 16) | 0x40); /* quiet NaN */
    bits += 0x7fff + ((bits >> 16) & 1);        /* round to nearest even */
    return (uint16_t)(bits >> 16);
}

kn_status kn_mkdirs(const char *path, unsigned mode, kn_err *e)
{
    char buf[PATH_MAX];
    if (!path || !*path)
        return kn_err_set(e, KN_INVALID, "empty directory path");
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
        return kn_err_set(e, KN_INVALID, "%s: path too long", path);
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char c = *p;
            *p = '\0';
            if (mkdir(buf, (mode_t)mode) != 0 && errno != EEXIST)
                return kn_err_set(e, KN_IO, "cannot create %s: %s", buf, strerror(errno));
            *p = c;
            if (c == '\0')
                break;
        }
    }
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
        return kn_err_set(e, KN_IO, "%s is not a directory", path);
    return KN_OK;
}

void kn_sha256(const void *p, size_t n, uint8_t out[32])
{
    unsigned int len = 0;
    EVP_Digest(p, n, out, &len, EVP_sha256(), NULL);
}

void kn_hex(const uint8_t *p, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * n] = 0;
}
