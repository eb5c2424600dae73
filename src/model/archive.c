/* Model package archives: extracting an untrusted model.tar.gz and packing a
 * package directory into one.
 *
 * Extraction treats the archive as hostile. Only gzip'd or plain tar is
 * read (no external decompressors, no other formats). Each entry's path is
 * normalised and must stay under the target directory: absolute paths and
 * ".." components are refused, and so are symbolic links, hard links,
 * devices, fifos and sockets. Directories are walked one component at a time
 * with O_NOFOLLOW, so even a symlink already present under the target cannot
 * redirect a write, and files are created fresh (an existing name is unlinked
 * first) so a pre-existing hard link is never written through. The unpacked
 * size is counted on the bytes actually written, not on header claims, and
 * the number of entries is bounded. On failure the target directory may hold
 * a partial extraction; nothing is ever written outside it.
 *
 * Packing writes a pax (ustar where possible) archive of the regular files at
 * the top of a directory, model.json first, then by name, with owner 0 and
 * mode 0644 so the result depends only on names, contents and mtimes.
 *
 * Thread-safety: no shared state; concurrent calls on distinct paths are safe.
 */
#include "kennel/model.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define AR_MAX_ENTRIES 10000
#define AR_MAX_PATH 1024
#define AR_CHUNK (64 * 1024)
/* How much of a hostile path to quote in an error message. */
#define AR_QUOTE 200

static const char *type_name(unsigned int ft)
{
    switch (ft) {
    case AE_IFREG: return "regular file";
    case AE_IFDIR: return "directory";
    case AE_IFLNK: return "symbolic link";
    case AE_IFCHR: return "character device";
    case AE_IFBLK: return "block device";
    case AE_IFIFO: return "fifo";
    case AE_IFSOCK: return "socket";
    default: return "entry of unknown type";
    }
}

/* Normalises an entry path into out ("a//./b/" -> "a/b"); out may end up
 * empty for the archive root. Refuses absolute paths and "..". */
static kn_status clean_path(const char *in, char *out, size_t cap, kn_err *e)
{
    if (in[0] == '\0')
        return kn_err_set(e, KN_BAD_FORMAT, "archive entry with an empty path");
    if (in[0] == '/')
        return kn_err_set(e, KN_BAD_FORMAT, "archive entry \"%.*s\": absolute path refused",
                          AR_QUOTE, in);
    size_t o = 0;
    const char *p = in;
    while (*p) {
        const char *s = p;
        while (*p && *p != '/')
            p++;
        size_t n = (size_t)(p - s);
        if (*p == '/')
            p++;
        if (n == 0 || (n == 1 && s[0] == '.'))
            continue;
        if (n == 2 && s[0] == '.' && s[1] == '.')
            return kn_err_set(e, KN_BAD_FORMAT,
                              "archive entry \"%.*s\": \"..\" path component refused", AR_QUOTE,
                              in);
        if (n > NAME_MAX || o + (o ? 1 : 0) + n >= cap)
            return kn_err_set(e, KN_BAD_FORMAT, "archive entry \"%.*s...\": path too long",
                              AR_QUOTE, in);
        if (o)
            out[o++] = '/';
        memcpy(out + o, s, n);
        o += n;
    }
    out[o] = '\0';
    return KN_OK;
}

/* Opens the directory holding the last component of rel (a clean path,
 * modified in place), creating missing directories on the way and never
 * following symlinks. *leaf points at the last component. Directories made
 * here count as entries (*count), so short paths cannot fan out into
 * millions of them. */
static kn_status open_parent(int root, char *rel, int *parent, const char **leaf, int *count,
                             const char *shown, kn_err *e)
{
    int cur = root;
    char *comp = rel, *slash;
    while ((slash = strchr(comp, '/')) != NULL) {
        *slash = '\0';
        int made = mkdirat(cur, comp, 0755);
        if ((made != 0 && errno != EEXIST) || (made == 0 && ++*count > AR_MAX_ENTRIES)) {
            int err = errno;
            if (cur != root)
                close(cur);
            if (made == 0)
                return kn_err_set(e, KN_TOO_LARGE,
                                  "archive entry \"%.*s\": more than %d entries (counting "
                                  "implied directories)",
                                  AR_QUOTE, shown, AR_MAX_ENTRIES);
            return kn_err_set(e, KN_IO, "archive entry \"%.*s\": cannot create directory: %s",
                              AR_QUOTE, shown, strerror(err));
        }
        int next = openat(cur, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        int err = errno;
        if (cur != root)
            close(cur);
        if (next < 0)
            return kn_err_set(e, err == ELOOP || err == ENOTDIR ? KN_BAD_FORMAT : KN_IO,
                              "archive entry \"%.*s\": \"%s\" is not a directory: %s", AR_QUOTE,
                              shown, comp, strerror(err));
        *slash = '/';
        cur = next;
        comp = slash + 1;
    }
    *parent = cur;
    *leaf = comp;
    return KN_OK;
}

static kn_status make_dir(int root, char *rel, int *count, const char *shown, kn_err *e)
{
    int parent;
    const char *leaf;
    kn_status rc = open_parent(root, rel, &parent, &leaf, count, shown, e);
    if (rc != KN_OK)
        return rc;
    struct stat st;
    if (mkdirat(parent, leaf, 0755) != 0 && errno != EEXIST)
        rc = kn_err_set(e, KN_IO, "archive entry \"%.*s\": cannot create directory: %s",
                        AR_QUOTE, shown, strerror(errno));
    else if (fstatat(parent, leaf, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISDIR(st.st_mode))
        rc = kn_err_set(e, KN_BAD_FORMAT,
                        "archive entry \"%.*s\": a non-directory of that name exists", AR_QUOTE,
                        shown);
    if (parent != root)
        close(parent);
    return rc;
}

/* Creates a fresh file for an entry: whatever had the name before (a file,
 * a symlink, a hard link to something elsewhere) is unlinked, not followed. */
static kn_status create_file(int root, char *rel, int *fd, int *count, const char *shown,
                             kn_err *e)
{
    int parent;
    const char *leaf;
    kn_status rc = open_parent(root, rel, &parent, &leaf, count, shown, e);
    if (rc != KN_OK)
        return rc;
    const int flags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC;
    *fd = openat(parent, leaf, flags, 0644);
    if (*fd < 0 && errno == EEXIST && unlinkat(parent, leaf, 0) == 0)
        *fd = openat(parent, leaf, flags, 0644);
    if (*fd < 0)
        rc = kn_err_set(e, errno == EISDIR ? KN_BAD_FORMAT : KN_IO,
                        "archive entry \"%.*s\": cannot create file: %s", AR_QUOTE, shown,
                        strerror(errno));
    if (parent != root)
        close(parent);
    return rc;
}

static bool write_full(int fd, const void *p, size_t n)
{
    const uint8_t *b = p;
    while (n) {
        ssize_t w = write(fd, b, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        b += w;
        n -= (size_t)w;
    }
    return true;
}

/* Streams the current entry's data into fd, counting against the budget. */
static kn_status copy_data(struct archive *a, int fd, uint8_t *buf, size_t *total,
                           size_t max_bytes, const char *shown, kn_err *e)
{
    for (;;) {
        la_ssize_t r = archive_read_data(a, buf, AR_CHUNK);
        if (r == 0)
            return KN_OK;
        if (r < 0)
            return kn_err_set(e, KN_BAD_FORMAT, "archive entry \"%.*s\": %s", AR_QUOTE, shown,
                              archive_error_string(a) ? archive_error_string(a) : "read error");
        if ((size_t)r > max_bytes - *total)
            return kn_err_set(e, KN_TOO_LARGE,
                              "archive entry \"%.*s\": unpacked size exceeds the %zu-byte limit",
                              AR_QUOTE, shown, max_bytes);
        *total += (size_t)r;
        if (!write_full(fd, buf, (size_t)r))
            return kn_err_set(e, KN_IO, "archive entry \"%.*s\": write failed: %s", AR_QUOTE,
                              shown, strerror(errno));
    }
}

/* mkdir -p for the (trusted) target directory. */
static kn_status make_target(const char *dir, kn_err *e)
{
    char path[PATH_MAX];
    size_t n = strlen(dir);
    if (n == 0 || n >= sizeof path)
        return kn_err_set(e, KN_INVALID, "extract: bad target directory \"%.*s\"", AR_QUOTE,
                          dir);
    memcpy(path, dir, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (path[i] != '/' && path[i] != '\0')
            continue;
        char c = path[i];
        path[i] = '\0';
        if (mkdir(path, 0755) != 0 && errno != EEXIST)
            return kn_err_set(e, KN_IO, "%s: cannot create directory: %s", path,
                              strerror(errno));
        path[i] = c;
    }
    return KN_OK;
}

kn_status kn_archive_extract(const void *buf, size_t len, const char *dir, size_t max_bytes,
                             kn_err *e)
{
    kn_status rc = KN_OK;
    struct archive *a = NULL;
    uint8_t *chunk = NULL;
    int root = -1, fd = -1;
    size_t total = 0;
    int entries = 0;

    if (!buf || len == 0)
        return kn_err_set(e, KN_BAD_FORMAT, "archive is empty");
    if ((rc = make_target(dir, e)) != KN_OK)
        return rc;
    root = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (root < 0)
        return kn_err_set(e, KN_IO, "%s: %s", dir, strerror(errno));

    chunk = malloc(AR_CHUNK);
    a = archive_read_new();
    if (!chunk || !a) {
        rc = kn_err_set(e, KN_NOMEM, "extract: out of memory");
        goto out;
    }
    /* The "none" filter is always on, so plain tar is accepted too. */
    archive_read_support_filter_gzip(a);
    archive_read_support_format_tar(a);
    if (archive_read_open_memory(a, buf, len) != ARCHIVE_OK) {
        rc = kn_err_set(e, KN_BAD_FORMAT, "not a tar or tar.gz archive: %s",
                        archive_error_string(a) ? archive_error_string(a) : "unknown format");
        goto out;
    }

    for (;;) {
        struct archive_entry *ent;
        int r = archive_read_next_header(a, &ent);
        if (r == ARCHIVE_EOF)
            break;
        if (r < ARCHIVE_WARN) {
            rc = kn_err_set(e, KN_BAD_FORMAT, "archive: %s",
                            archive_error_string(a) ? archive_error_string(a) : "read error");
            goto out;
        }
        if (++entries > AR_MAX_ENTRIES) {
            rc = kn_err_set(e, KN_TOO_LARGE, "archive has more than %d entries",
                            AR_MAX_ENTRIES);
            goto out;
        }
        const char *name = archive_entry_pathname(ent);
        if (!name)
            name = archive_entry_pathname_utf8(ent);
        if (!name) {
            rc = kn_err_set(e, KN_BAD_FORMAT, "archive entry with no readable path");
            goto out;
        }
        unsigned int ft = archive_entry_filetype(ent);
        if (archive_entry_hardlink(ent)) {
            rc = kn_err_set(e, KN_BAD_FORMAT,
                            "archive entry \"%.*s\": hard link refused (to \"%.*s\")", AR_QUOTE,
                            name, AR_QUOTE, archive_entry_hardlink(ent));
            goto out;
        }
        if (ft == AE_IFLNK) {
            const char *to = archive_entry_symlink(ent);
            rc = kn_err_set(e, KN_BAD_FORMAT,
                            "archive entry \"%.*s\": symbolic link refused (to \"%.*s\")",
                            AR_QUOTE, name, AR_QUOTE, to ? to : "?");
            goto out;
        }
        if (ft != AE_IFREG && ft != AE_IFDIR) {
            rc = kn_err_set(e, KN_BAD_FORMAT, "archive entry \"%.*s\": %s refused", AR_QUOTE,
                            name, type_name(ft));
            goto out;
        }
        char rel[AR_MAX_PATH];
        if ((rc = clean_path(name, rel, sizeof rel, e)) != KN_OK)
            goto out;
        /* Header sizes only allow an early refusal; the budget itself is
         * charged with bytes as they are written. */
        int64_t declared = archive_entry_size_is_set(ent) ? archive_entry_size(ent) : 0;
        if (declared < 0 || (uint64_t)declared > max_bytes - total) {
            rc = kn_err_set(e, KN_TOO_LARGE,
                            "archive entry \"%.*s\" (%lld bytes): unpacked size would exceed "
                            "the %zu-byte limit",
                            AR_QUOTE, name, (long long)declared, max_bytes);
            goto out;
        }
        if (ft == AE_IFDIR) {
            /* Any data a directory entry carries is skipped, i.e. still
             * decompressed: charge it. */
            total += (size_t)declared;
            if (rel[0] && (rc = make_dir(root, rel, &entries, name, e)) != KN_OK)
                goto out;
            continue;
        }
        if (rel[0] == '\0') {
            rc = kn_err_set(e, KN_BAD_FORMAT, "archive entry \"%.*s\": file with no name",
                            AR_QUOTE, name);
            goto out;
        }
        if ((rc = create_file(root, rel, &fd, &entries, name, e)) != KN_OK ||
            (rc = copy_data(a, fd, chunk, &total, max_bytes, name, e)) != KN_OK)
            goto out;
        if (close(fd) != 0) {
            fd = -1;
            rc = kn_err_set(e, KN_IO, "archive entry \"%.*s\": write failed: %s", AR_QUOTE,
                            name, strerror(errno));
            goto out;
        }
        fd = -1;
    }
out:
    if (fd >= 0)
        close(fd);
    if (a)
        archive_read_free(a);
    free(chunk);
    close(root);
    return rc;
}

/* ---- packing ------------------------------------------------------------- */

static int cmp_pack_name(const void *a, const void *b)
{
    const char *x = *(const char *const *)a, *y = *(const char *const *)b;
    bool mx = strcmp(x, "model.json") == 0, my = strcmp(y, "model.json") == 0;
    if (mx != my)
        return mx ? -1 : 1;
    return strcmp(x, y);
}

/* Lists the regular files at the top of dfd, skipping the output file. */
static kn_status list_files(int dfd, const struct stat *skip, const char *dir, char ***names,
                            int *count, kn_err *e)
{
    kn_status rc = KN_OK;
    int n = 0, cap = 0;
    char **v = NULL;
    int dup_fd = dup(dfd);
    DIR *d = dup_fd >= 0 ? fdopendir(dup_fd) : NULL;
    if (!d) {
        rc = kn_err_set(e, KN_IO, "%s: %s", dir, strerror(errno));
        if (dup_fd >= 0)
            close(dup_fd);
        goto out;
    }
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        struct stat st;
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode))
            continue;
        if (st.st_dev == skip->st_dev && st.st_ino == skip->st_ino)
            continue;
        if (n == AR_MAX_ENTRIES) {
            rc = kn_err_set(e, KN_TOO_LARGE, "%s: more than %d files to pack", dir,
                            AR_MAX_ENTRIES);
            goto out;
        }
        if (n == cap) {
            int ncap = cap ? 2 * cap : 16;
            char **nv = realloc(v, (size_t)ncap * sizeof *nv);
            if (!nv) {
                rc = kn_err_set(e, KN_NOMEM, "pack: out of memory");
                goto out;
            }
            v = nv;
            cap = ncap;
        }
        if (!(v[n] = strdup(de->d_name))) {
            rc = kn_err_set(e, KN_NOMEM, "pack: out of memory");
            goto out;
        }
        n++;
    }
    if (n > 1)
        qsort(v, (size_t)n, sizeof *v, cmp_pack_name);
out:
    if (d)
        closedir(d);
    if (rc != KN_OK) {
        for (int i = 0; i < n; i++)
            free(v[i]);
        free(v);
        return rc;
    }
    *names = v;
    *count = n;
    return KN_OK;
}

/* Appends one file (opened from dfd) to the archive. */
static kn_status pack_file(struct archive *a, int dfd, const char *name, const char *dir,
                           uint8_t *buf, kn_err *e)
{
    kn_status rc = KN_OK;
    struct archive_entry *ent = NULL;
    int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        rc = kn_err_set(e, KN_IO, "%s/%s: %s", dir, name, strerror(errno));
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = kn_err_set(e, KN_IO, "%s/%s: no longer a regular file", dir, name);
        goto out;
    }
    if (!(ent = archive_entry_new())) {
        rc = kn_err_set(e, KN_NOMEM, "pack: out of memory");
        goto out;
    }
    archive_entry_set_pathname(ent, name);
    archive_entry_set_filetype(ent, AE_IFREG);
    archive_entry_set_perm(ent, 0644);
    archive_entry_set_size(ent, st.st_size);
    archive_entry_set_mtime(ent, st.st_mtim.tv_sec, 0);
    archive_entry_set_uid(ent, 0);
    archive_entry_set_gid(ent, 0);
    if (archive_write_header(a, ent) != ARCHIVE_OK) {
        rc = kn_err_set(e, KN_IO, "%s/%s: cannot add to archive: %s", dir, name,
                        archive_error_string(a));
        goto out;
    }
    /* Exactly st_size bytes go in, as the header promised. */
    for (off_t left = st.st_size; left > 0;) {
        size_t want = left < AR_CHUNK ? (size_t)left : AR_CHUNK;
        ssize_t r = read(fd, buf, want);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            rc = kn_err_set(e, KN_IO, "%s/%s: %s", dir, name,
                            r < 0 ? strerror(errno) : "file shrank while packing");
            goto out;
        }
        if (archive_write_data(a, buf, (size_t)r) != r) {
            rc = kn_err_set(e, KN_IO, "%s/%s: archive write failed: %s", dir, name,
                            archive_error_string(a));
            goto out;
        }
        left -= r;
    }
out:
    archive_entry_free(ent);
    if (fd >= 0)
        close(fd);
    return rc;
}

kn_status kn_model_pack(const char *dir, const char *tar_gz, kn_err *e)
{
    kn_status rc = KN_OK;
    int dfd = -1, out_fd = -1;
    struct archive *a = NULL;
    char **names = NULL;
    int n = 0;
    uint8_t *buf = NULL;
    struct stat out_st;
    bool created = false;

    dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return kn_err_set(e, errno == ENOENT ? KN_NOT_FOUND : KN_IO, "%s: %s", dir,
                          strerror(errno));
    out_fd = open(tar_gz, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    created = out_fd >= 0;
    if (out_fd < 0 || fstat(out_fd, &out_st) != 0) {
        rc = kn_err_set(e, KN_IO, "%s: %s", tar_gz, strerror(errno));
        goto out;
    }
    if ((rc = list_files(dfd, &out_st, dir, &names, &n, e)) != KN_OK)
        goto out;

    buf = malloc(AR_CHUNK);
    a = archive_write_new();
    if (!buf || !a) {
        rc = kn_err_set(e, KN_NOMEM, "pack: out of memory");
        goto out;
    }
    if (archive_write_add_filter_gzip(a) != ARCHIVE_OK ||
        archive_write_set_format_pax_restricted(a) != ARCHIVE_OK) {
        rc = kn_err_set(e, KN_INTERNAL, "pack: %s", archive_error_string(a));
        goto out;
    }
    /* Reproducible output: no build time in the gzip header (older
     * libarchive lacks the option, which only costs reproducibility). */
    archive_write_set_filter_option(a, "gzip", "timestamp", NULL);
    if (archive_write_open_fd(a, out_fd) != ARCHIVE_OK) {
        rc = kn_err_set(e, KN_IO, "%s: %s", tar_gz, archive_error_string(a));
        goto out;
    }
    for (int i = 0; i < n; i++)
        if ((rc = pack_file(a, dfd, names[i], dir, buf, e)) != KN_OK)
            goto out;
    if (archive_write_close(a) != ARCHIVE_OK) {
        rc = kn_err_set(e, KN_IO, "%s: %s", tar_gz, archive_error_string(a));
        goto out;
    }
    if (close(out_fd) != 0) {
        out_fd = -1;
        rc = kn_err_set(e, KN_IO, "%s: %s", tar_gz, strerror(errno));
        goto out;
    }
    out_fd = -1;
out:
    if (a)
        archive_write_free(a);
    free(buf);
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(names);
    if (out_fd >= 0)
        close(out_fd);
    if (rc != KN_OK && created)
        unlink(tar_gz); /* no half-written package */
    close(dfd);
    return rc;
}
