/* The outside input the fn module reads: function zips (CreateFunction's
 * ZipFile, extracted with libarchive) and request heads on the Runtime API
 * listeners. Pure functions; thread-safe. Both have fuzz targets.
 */
#include "fn_int.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_ENTRIES 10000
#define MAX_HEAD 16384

static bool safe_path(const char *p)
{
    if (!p || !*p || p[0] == '/' || strlen(p) > 1024)
        return false;
    const char *s = p;
    while (*s) {
        const char *slash = strchr(s, '/');
        size_t n = slash ? (size_t)(slash - s) : strlen(s);
        if (n == 2 && s[0] == '.' && s[1] == '.')
            return false;
        for (size_t i = 0; i < n; i++)
            if ((unsigned char)s[i] < 0x20)
                return false;
        if (!slash)
            break;
        s = slash + 1;
    }
    return true;
}

static kn_status make_parents(const char *dir, const char *rel, kn_err *e)
{
    char path[4096];
    int n = snprintf(path, sizeof path, "%s/%s", dir, rel);
    if (n < 0 || (size_t)n >= sizeof path)
        return kn_err_set(e, KN_BAD_FORMAT, "zip entry '%s': path too long", rel);
    char *last = strrchr(path, '/');
    if (!last)
        return KN_OK;
    *last = '\0';
    return kn_mkdirs(path, 0755, e);
}

kn_status kn_fn_zip_extract(const uint8_t *zip, size_t len, const char *dir, size_t *unzipped,
                            bool *has_bootstrap, kn_err *e)
{
    *unzipped = 0;
    *has_bootstrap = false;
    if (len < 22 || memcmp(zip, "PK", 2) != 0)
        return kn_err_set(e, KN_BAD_FORMAT, "Could not unzip uploaded file: not a zip archive");
    struct archive *a = archive_read_new();
    if (!a)
        return kn_err_set(e, KN_NOMEM, "out of memory");
    archive_read_support_format_zip(a);
    kn_status s = KN_OK;
    int fd = -1;
    char *buf = malloc(65536);
    if (!buf || archive_read_open_memory(a, zip, len) != ARCHIVE_OK) {
        s = kn_err_set(e, KN_BAD_FORMAT, "Could not unzip uploaded file: %s",
                       buf ? archive_error_string(a) : "out of memory");
        goto out;
    }
    struct archive_entry *ent;
    int entries = 0, rc;
    while ((rc = archive_read_next_header(a, &ent)) == ARCHIVE_OK ||
           rc == ARCHIVE_WARN) {
        const char *name = archive_entry_pathname(ent);
        if (++entries > MAX_ENTRIES) {
            s = kn_err_set(e, KN_BAD_FORMAT, "Could not unzip uploaded file: more than %d entries",
                           MAX_ENTRIES);
            goto out;
        }
        char clean[1100];
        snprintf(clean, sizeof clean, "%s", name ? name : "");
        while (strncmp(clean, "./", 2) == 0)
            memmove(clean, clean + 2, strlen(clean + 2) + 1);
        if (!safe_path(clean)) {
            s = kn_err_set(e, KN_BAD_FORMAT, "Could not unzip uploaded file: unsafe entry name '%.200s'",
                           name ? name : "");
            kn_text_clean(e->msg);
            goto out;
        }
        mode_t type = archive_entry_filetype(ent);
        size_t cl = strlen(clean);
        if (type == AE_IFDIR || (cl && clean[cl - 1] == '/')) {
            if (dir) {
                char path[4096];
                snprintf(path, sizeof path, "%s/%s", dir, clean);
                if ((s = kn_mkdirs(path, 0755, e)))
                    goto out;
            }
            continue;
        }
        if (type != AE_IFREG) {
            s = kn_err_set(e, KN_BAD_FORMAT,
                           "Could not unzip uploaded file: entry '%.200s' is not a regular file",
                           clean);
            kn_text_clean(e->msg);
            goto out;
        }
        if (strcmp(clean, "bootstrap") == 0)
            *has_bootstrap = true;
        mode_t mode = archive_entry_perm(ent) & 0777;
        if (!mode)
            mode = 0644;
        if (dir) {
            if ((s = make_parents(dir, clean, e)))
                goto out;
            char path[4096];
            snprintf(path, sizeof path, "%s/%s", dir, clean);
            fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
                      (mode | 0400) & 0755);
            if (fd < 0) {
                s = kn_err_set(e, KN_IO, "cannot write %s: %s", path, strerror(errno));
                goto out;
            }
        }
        la_ssize_t n;
        while ((n = archive_read_data(a, buf, 65536)) > 0) {
            *unzipped += (size_t)n;
            if (*unzipped > KN_FN_MAX_UNZIPPED) {
                s = kn_err_set(e, KN_BAD_FORMAT,
                               "Unzipped size must be smaller than %zu bytes", KN_FN_MAX_UNZIPPED);
                goto out;
            }
            if (fd >= 0 && write(fd, buf, (size_t)n) != n) {
                s = kn_err_set(e, KN_IO, "cannot write '%s': %s", clean, strerror(errno));
                goto out;
            }
        }
        if (n < 0) {
            s = kn_err_set(e, KN_BAD_FORMAT, "Could not unzip uploaded file: entry '%.200s': %s",
                           clean, archive_error_string(a));
            kn_text_clean(e->msg);
            goto out;
        }
        if (fd >= 0) {
            fchmod(fd, (mode | 0400) & 0755);
            close(fd);
            fd = -1;
        }
    }
    if (rc != ARCHIVE_EOF) {
        s = kn_err_set(e, KN_BAD_FORMAT, "Could not unzip uploaded file: %s",
                       archive_error_string(a) ? archive_error_string(a) : "corrupt archive");
        kn_text_clean(e->msg);
    }
out:
    if (fd >= 0)
        close(fd);
    free(buf);
    archive_read_free(a);
    return s;
}

static bool header_is(const char *line, size_t n, const char *name, const char **val,
                      size_t *vlen)
{
    size_t k = strlen(name);
    if (n <= k || line[k] != ':' || strncasecmp(line, name, k) != 0)
        return false;
    const char *v = line + k + 1, *end = line + n;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    *val = v;
    *vlen = (size_t)(end - v);
    return true;
}

kn_status kn_fn_http_parse(const char *buf, size_t len, kn_fn_http_req *r, kn_err *e)
{
    memset(r, 0, sizeof *r);
    r->content_length = -1;
    size_t scan = len < MAX_HEAD ? len : MAX_HEAD;
    const char *end = NULL;
    for (size_t i = 0; i + 3 < scan; i++)
        if (buf[i] == '\r' && buf[i + 1] == '\n' && buf[i + 2] == '\r' && buf[i + 3] == '\n') {
            end = buf + i;
            break;
        }
    if (!end)
        return len >= MAX_HEAD ? kn_err_set(e, KN_BAD_FORMAT, "request head over %d bytes",
                                            MAX_HEAD)
                               : KN_NOT_FOUND;
    r->head_len = (size_t)(end - buf) + 4;
    const char *p = buf;
    const char *eol = memchr(p, '\r', (size_t)(end - p) + 1);
    /* request line: METHOD SP PATH SP HTTP/1.x */
    const char *sp1 = memchr(p, ' ', (size_t)(eol - p));
    if (!sp1 || sp1 == p || (size_t)(sp1 - p) >= sizeof r->method)
        return kn_err_set(e, KN_BAD_FORMAT, "malformed request line");
    memcpy(r->method, p, (size_t)(sp1 - p));
    const char *sp2 = memchr(sp1 + 1, ' ', (size_t)(eol - sp1 - 1));
    if (!sp2 || sp2 == sp1 + 1 || (size_t)(sp2 - sp1 - 1) >= sizeof r->path)
        return kn_err_set(e, KN_BAD_FORMAT, "malformed request target");
    memcpy(r->path, sp1 + 1, (size_t)(sp2 - sp1 - 1));
    if ((size_t)(eol - sp2 - 1) != 8 || strncmp(sp2 + 1, "HTTP/1.", 7) != 0)
        return kn_err_set(e, KN_BAD_FORMAT, "not an HTTP/1.x request");
    if (sp2[8] == '0')
        r->close = true;
    for (const char *c = r->method; *c; c++)
        if (*c < 'A' || *c > 'Z')
            return kn_err_set(e, KN_BAD_FORMAT, "malformed method");
    p = eol + 2;
    while (p < end + 2 && p <= end) {
        const char *le = memchr(p, '\r', (size_t)(end - p) + 1);
        if (!le)
            break;
        size_t n = (size_t)(le - p);
        if (n == 0)
            break;
        const char *v;
        size_t vl;
        if (!memchr(p, ':', n))
            return kn_err_set(e, KN_BAD_FORMAT, "malformed header line");
        if (header_is(p, n, "Content-Length", &v, &vl)) {
            if (vl == 0 || vl > 12)
                return kn_err_set(e, KN_BAD_FORMAT, "bad Content-Length");
            long long x = 0;
            for (size_t i = 0; i < vl; i++) {
                if (v[i] < '0' || v[i] > '9')
                    return kn_err_set(e, KN_BAD_FORMAT, "bad Content-Length");
                x = x * 10 + (v[i] - '0');
            }
            if (r->content_length >= 0 && r->content_length != x)
                return kn_err_set(e, KN_BAD_FORMAT, "conflicting Content-Length");
            r->content_length = x;
        } else if (header_is(p, n, "Transfer-Encoding", &v, &vl)) {
            if (vl == 7 && strncasecmp(v, "chunked", 7) == 0)
                r->chunked = true;
            else
                return kn_err_set(e, KN_BAD_FORMAT, "unsupported Transfer-Encoding");
        } else if (header_is(p, n, "Connection", &v, &vl)) {
            if (vl == 5 && strncasecmp(v, "close", 5) == 0)
                r->close = true;
        } else if (header_is(p, n, "Lambda-Runtime-Function-Error-Type", &v, &vl)) {
            size_t k = vl < sizeof r->error_type - 1 ? vl : sizeof r->error_type - 1;
            memcpy(r->error_type, v, k);
            r->error_type[k] = '\0';
            kn_text_clean(r->error_type);
        }
        p = le + 2;
    }
    if (r->chunked && r->content_length >= 0)
        return kn_err_set(e, KN_BAD_FORMAT, "both Content-Length and chunked");
    return KN_OK;
}
