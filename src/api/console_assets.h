/* The web console's files, embedded at build time (cmake/embed.cmake writes
 * the table; a NULL name ends it). */
#ifndef KN_CONSOLE_ASSETS_H
#define KN_CONSOLE_ASSETS_H
#include <stddef.h>

typedef struct kn_console_asset {
    const char *name;          /* file name under /console/ */
    const char *content_type;
    const unsigned char *data; /* NUL-terminated for convenience; size excludes it */
    size_t size;
} kn_console_asset;

extern const kn_console_asset kn_console_assets[];

#endif
