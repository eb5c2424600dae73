/* kennel core: status codes, error context, logging, bounded buffers, file
 * reading and mapping, aligned memory.
 *
 * Every fallible function returns a kn_status (0 = KN_OK) and, when given a
 * kn_err, leaves a one-line human detail there ("photo.jpg: truncated JPEG").
 * Nothing here keeps mutable global state except the log threshold, which
 * main() sets once before starting threads.
 */
#ifndef KENNEL_CORE_H
#define KENNEL_CORE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define KN_API __attribute__((visibility("default")))
#define KN_PRINTF(f, a) __attribute__((format(printf, f, a)))

/* The one status list: name, message, HTTP status, AWS error name.
 * Append only: values are stored in logs and databases. */
#define KN_STATUS_LIST(X)                                                                    \
    X(OK, "ok", 200, "")                                                                     \
    X(INVALID, "invalid argument", 400, "ValidationException")                               \
    X(NOT_FOUND, "not found", 400, "ValidationException")                                    \
    X(IO, "input/output error", 500, "InternalFailure")                                      \
    X(NOMEM, "out of memory", 500, "InternalFailure")                                        \
    X(TOO_LARGE, "too large", 413, "PayloadTooLarge")                                        \
    X(BAD_FORMAT, "malformed input", 400, "ValidationException")                             \
    X(UNSUPPORTED, "unsupported", 415, "UnsupportedMediaType")                               \
    X(SHAPE, "shape mismatch", 400, "ValidationException")                                   \
    X(BACKEND, "compute backend failure", 500, "InternalFailure")                            \
    X(INTERNAL, "internal error", 500, "InternalFailure")                                    \
    X(EXISTS, "already exists", 400, "ValidationException")                                  \
    X(TIMEOUT, "timed out", 504, "ServiceUnavailable")                                       \
    X(SERIALIZATION, "malformed request body", 400, "SerializationException")                \
    X(UNKNOWN_OPERATION, "unknown operation", 400, "UnknownOperationException")              \
    X(NO_ROUTE, "no such resource path", 404, "UnknownOperationException")                   \
    X(INVALID_ACTION, "unknown query action", 400, "InvalidAction")                          \
    X(REQUEST_TOO_LARGE, "request too large", 413, "RequestEntityTooLargeException")         \
    X(RESOURCE_IN_USE, "resource in use", 400, "ResourceInUse")                              \
    X(RESOURCE_NOT_FOUND, "resource not found", 400, "ResourceNotFound")                     \
    X(RESOURCE_LIMIT, "resource limit exceeded", 400, "ResourceLimitExceeded")             \
    X(OBJECT_NOT_FOUND, "object not found", 400, "ObjectNotFoundException")

typedef enum kn_status {
#define KN_X_ENUM(name, msg, http, aws) KN_##name,
    KN_STATUS_LIST(KN_X_ENUM)
#undef KN_X_ENUM
        KN_STATUS_COUNT
} kn_status;

KN_API const char *kn_status_name(kn_status s); /* "BAD_FORMAT" */
KN_API const char *kn_status_msg(kn_status s);  /* "malformed input" */
KN_API int kn_status_http(kn_status s);
KN_API const char *kn_status_aws(kn_status s);

/* Error context: the status plus a one-line detail for a person. */
#define KN_ERR_MSG_MAX 512
typedef struct kn_err {
    kn_status code;
    char msg[KN_ERR_MSG_MAX];
} kn_err;

KN_API void kn_err_clear(kn_err *e);
/* Sets e (may be NULL) and returns code, so callers can `return kn_err_set(...)`. */
KN_API kn_status kn_err_set(kn_err *e, kn_status code, const char *fmt, ...) KN_PRINTF(3, 4);
/* Prepends "prefix: " to the existing detail; returns e->code (KN_OK if e is NULL). */
KN_API kn_status kn_err_prefix(kn_err *e, const char *fmt, ...) KN_PRINTF(2, 3);
/* Makes s (may be NULL) one printable line of valid UTF-8, in place: control
 * bytes and bytes outside a well-formed UTF-8 sequence (a quoted name cut
 * mid-character) become '?'. For messages that quote client input and go
 * into JSON error bodies, which cannot carry invalid UTF-8. */
KN_API void kn_text_clean(char *s);

/* Logging to stderr. */
typedef enum kn_log_level { KN_LOG_DEBUG, KN_LOG_INFO, KN_LOG_WARN, KN_LOG_ERROR } kn_log_level;
KN_API void kn_log_set_level(kn_log_level lvl);
KN_API void kn_log(kn_log_level lvl, const char *fmt, ...) KN_PRINTF(2, 3);

/* Growable byte buffer with a hard maximum: growing past `max` is
 * KN_TOO_LARGE, never an unbounded allocation. Always NUL-terminated. */
typedef struct kn_buf {
    uint8_t *data;
    size_t len, cap, max;
} kn_buf;

KN_API void kn_buf_init(kn_buf *b, size_t max);
KN_API void kn_buf_deinit(kn_buf *b);
KN_API kn_status kn_buf_reserve(kn_buf *b, size_t extra);
KN_API kn_status kn_buf_append(kn_buf *b, const void *p, size_t n);
KN_API kn_status kn_buf_appendf(kn_buf *b, const char *fmt, ...) KN_PRINTF(2, 3);
/* Hands the data to the caller (free() it); the buffer is reset to empty. */
KN_API uint8_t *kn_buf_take(kn_buf *b, size_t *len);

/* Reads a whole file into b (bounded by b->max). */
KN_API kn_status kn_file_read(const char *path, kn_buf *b, kn_err *e);
KN_API kn_status kn_file_write(const char *path, const void *p, size_t n, kn_err *e);
/* mkdir -p: creates path and its missing parents with `mode` (existing ones
 * are left as they are). KN_IO naming the directory that could not be
 * made, or a path that exists but is not a directory. */
KN_API kn_status kn_mkdirs(const char *path, unsigned mode, kn_err *e);
/* SHA-256 of n bytes (libcrypto); lower-case hex of n bytes into out
 * (2n + 1 bytes, NUL-terminated). */
KN_API void kn_sha256(const void *p, size_t n, uint8_t out[32]);
KN_API void kn_hex(const uint8_t *p, size_t n, char *out);

/* Read-only memory map of a whole file. An empty file maps to len 0. */
typedef struct kn_map {
    const uint8_t *data;
    size_t len;
} kn_map;
KN_API kn_status kn_map_open(kn_map *m, const char *path, kn_err *e);
KN_API void kn_map_close(kn_map *m);

/* Aligned allocation (64 bytes) for tensors; returns NULL on failure or
 * when n == 0. Free with kn_free_aligned (accepts NULL). */
KN_API void *kn_alloc_aligned(size_t n);
KN_API void kn_free_aligned(void *p);

/* Overflow-checked size arithmetic: returns false on overflow. */
static inline bool kn_mul_size(size_t a, size_t b, size_t *out)
{
    return !__builtin_mul_overflow(a, b, out);
}

/* Monotonic time in nanoseconds. */
KN_API uint64_t kn_now_ns(void);

/* Deterministic random numbers (xoshiro256**), seeded by splitmix64. */
typedef struct kn_rng {
    uint64_t s[4];
} kn_rng;
KN_API void kn_rng_seed(kn_rng *r, uint64_t seed);
KN_API uint64_t kn_rng_next(kn_rng *r);
KN_API double kn_rng_uniform(kn_rng *r); /* [0, 1) */
KN_API double kn_rng_normal(kn_rng *r);

/* Half-precision conversions. */
KN_API float kn_f16_to_f32(uint16_t h);
KN_API float kn_bf16_to_f32(uint16_t h);
KN_API uint16_t kn_f32_to_bf16(float f);

#ifdef __cplusplus
}
#endif
#endif
