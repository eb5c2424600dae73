/* What the fuzz harnesses share: a temp data dir holding a real platform
 * (opened once, removed at exit), and the check that an error message is
 * one printable line of strict UTF-8.  Header-only, static inline, so each
 * harness stays one file for both the replay runner and libFuzzer. */
#ifndef KN_FUZZ_COMMON_H
#define KN_FUZZ_COMMON_H

#include "kennel/platform.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Strict UTF-8, as JSON encoders require of a message. */
static inline int kn_fuzz_valid_utf8(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        int n = *p < 0x80 ? 0 : *p >= 0xc2 && *p <= 0xdf ? 1 : *p >= 0xe0 && *p <= 0xef ? 2
                : *p >= 0xf0 && *p <= 0xf4 ? 3 : -1;
        if (n < 0)
            return 0;
        unsigned lo = *p == 0xe0 ? 0xa0 : *p == 0xf0 ? 0x90 : 0x80;
        unsigned hi = *p == 0xed ? 0x9f : *p == 0xf4 ? 0x8f : 0xbf;
        for (int i = 1; i <= n; i++)
            if (p[i] < (i == 1 ? lo : 0x80u) || p[i] > (i == 1 ? hi : 0xbfu))
                return 0;
        p += n + 1;
    }
    return 1;
}

/* Aborts unless msg is non-empty, has no byte below 0x20 (nor 0x7f when
 * no_del) and is strict UTF-8. */
static inline void kn_fuzz_check_msg(const char *msg, int no_del)
{
    if (!msg[0])
        abort();
    for (const char *c = msg; *c; c++)
        if ((unsigned char)*c < 0x20 || (no_del && *c == 0x7f))
            abort();
    if (!kn_fuzz_valid_utf8(msg))
        abort();
}

/* Makes root ("$TMPDIR/kn_fuzz_<tag>_XXXXXX"), quiets the log and opens a
 * platform there with a manual clock.  false on failure. */
static inline bool kn_fuzz_platform_open(const char *tag, char *root, size_t n,
                                         kn_platform **plat)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(root, n, "%s/kn_fuzz_%s_XXXXXX", tmp && *tmp ? tmp : "/tmp", tag);
    if (!mkdtemp(root))
        return false;
    kn_log_set_level(KN_LOG_ERROR);
    kn_platform_params pp = kn_platform_default_params();
    pp.data_dir = root;
    pp.manual_clock = true;
    kn_err e;
    if (kn_platform_open(&pp, plat, &e)) {
        fprintf(stderr, "setup: %s\n", e.msg);
        return false;
    }
    return true;
}

/* Closes the platform and removes root. */
static inline void kn_fuzz_platform_close(kn_platform *plat, const char *root)
{
    kn_platform_close(plat);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", root);
}

#endif
