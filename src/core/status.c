/* Status codes and the error context: the one place status values turn into
 * words, HTTP codes and AWS error names. Thread-safe (tables are constant). */
#include "kennel/core.h"

#include <stdio.h>
#include <string.h>

static const struct {
    const char *name, *msg, *aws;
    int http;
} status_table[] = {
#define KN_X_ROW(n, m, h, a) {#n, m, a, h},
    KN_STATUS_LIST(KN_X_ROW)
#undef KN_X_ROW
};

static int valid(kn_status s)
{
    return (int)s >= 0 && s < KN_STATUS_COUNT;
}

const char *kn_status_name(kn_status s)
{
    return valid(s) ? status_table[s].name : "UNKNOWN";
}

const char *kn_status_msg(kn_status s)
{
    return valid(s) ? status_table[s].msg : "unknown status";
}

int kn_status_http(kn_status s)
{
    return valid(s) ? status_table[s].http : 500;
}

const char *kn_status_aws(kn_status s)
{
    return valid(s) ? status_table[s].aws : "InternalFailure";
}

void kn_err_clear(kn_err *e)
{
    if (e) {
        e->code = KN_OK;
        e->msg[0] = '\0';
    }
}

kn_status kn_err_set(kn_err *e, kn_status code, const char *fmt, ...)
{
    if (!e)
        return code;
    e->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    return code;
}

kn_status kn_err_prefix(kn_err *e, const char *fmt, ...)
{
    if (!e)
        return KN_OK;
    char head[KN_ERR_MSG_MAX], old[KN_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(head, sizeof head, fmt, ap);
    va_end(ap);
    memcpy(old, e->msg, sizeof old);
    if (old[0])
        snprintf(e->msg, sizeof e->msg, "%s: %s", head, old);
    else
        snprintf(e->msg, sizeof e->msg, "%s: %s", head, kn_status_msg(e->code));
    return e->code;
}

/* Well-formed UTF-8 per RFC 3629: no overlong forms, no surrogates, nothing
 * above U+10FFFF. */
void kn_text_clean(char *m)
{
    unsigned char *p = (unsigned char *)m;
    while (p && *p) {
        unsigned c = *p;
        int n = c < 0x80 ? 0 : c >= 0xc2 && c <= 0xdf ? 1 : c >= 0xe0 && c <= 0xef ? 2
              : c >= 0xf0 && c <= 0xf4 ? 3 : -1;
        unsigned lo = c == 0xe0 ? 0xa0 : c == 0xf0 ? 0x90 : 0x80;
        unsigned hi = c == 0xed ? 0x9f : c == 0xf4 ? 0x8f : 0xbf;
        bool ok = n >= 0;
        for (int i = 1; ok && i <= n; i++) /* stops at the NUL: never reads past it */
            ok = p[i] >= (i == 1 ? lo : 0x80u) && p[i] <= (i == 1 ? hi : 0xbfu);
        if (!ok || c < 0x20 || c == 0x7f) {
            *p++ = '?';
            continue;
        }
        p += n + 1;
    }
}
