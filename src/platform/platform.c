/* The data directory and the platform object that owns the daemon's state.
 *
 * <data-dir>/kennel.lock  exclusive flock held while a daemon uses the dir
 *                         (contents: that daemon's pid, for the message)
 * <data-dir>/kennel.db    the registry (SQLite, WAL: also -wal and -shm)
 * <data-dir>/artifacts/   the artifact store (kennel://artifacts/<path>)
 *
 * The lock is an flock on an O_CLOEXEC descriptor: the kernel drops it when
 * the daemon dies, even by SIGKILL, so a restart never finds a stale lock,
 * and child processes (instances, jobs) never inherit it. Also here:
 * resolving a ModelDataUrl to a local path. Thread-safe after open.
 */
#include "platform_int.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

struct kn_platform {
    char data_dir[PATH_MAX];
    char artifacts_dir[PATH_MAX];
    int lock_fd;
    kn_clock *clock;
    kn_registry *registry;
};

kn_platform_params kn_platform_default_params(void)
{
    kn_platform_params p = {.data_dir = NULL,
                            .clock_rate = 1.0,
                            .manual_clock = false,
                            .region = "us-east-1",
                            .account_id = "123456789012"};
    return p;
}

static kn_status default_data_dir(char *out, size_t n, kn_err *e)
{
    const char *xdg = getenv("XDG_DATA_HOME");
    if (xdg && xdg[0] == '/') {
        snprintf(out, n, "%s/kennel", xdg);
        return KN_OK;
    }
    const char *home = getenv("HOME");
    if (!home || home[0] != '/')
        return kn_err_set(e, KN_INVALID, "HOME is not set: give --data-dir");
    snprintf(out, n, "%s/.local/share/kennel", home);
    return KN_OK;
}

/* The data directory holds the database, the IAM key and the administrator's
 * credentials: it must be this user's own, also for root (files root writes
 * into another user's directory are then neither that user's nor safe). */
static kn_status check_owner(const char *dir, kn_err *e)
{
    struct stat st;
    if (stat(dir, &st) != 0)
        return kn_err_set(e, KN_IO, "%s: %s", dir, strerror(errno));
    uid_t me = geteuid();
    if (st.st_uid == me)
        return KN_OK;
    const struct passwd *pw = getpwuid(st.st_uid);
    char owner[96];
    if (pw)
        snprintf(owner, sizeof owner, "%u (%.64s)", (unsigned)st.st_uid, pw->pw_name);
    else
        snprintf(owner, sizeof owner, "%u", (unsigned)st.st_uid);
    return kn_err_set(e, KN_IO,
                      "data dir %s is owned by uid %s, not by this user (uid %u): kennel keeps "
                      "its database and keys there and must own it; run kennel as that user, "
                      "or choose another --data-dir",
                      dir, owner, (unsigned)me);
}

static kn_status take_lock(kn_platform *p, kn_err *e)
{
    char path[PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/kennel.lock", p->data_dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return kn_err_set(e, KN_IO, "cannot open %s: %s", path, strerror(errno));
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int err = errno;
        char pid[32] = "";
        ssize_t k = pread(fd, pid, sizeof pid - 1, 0);
        close(fd);
        if (err != EWOULDBLOCK)
            return kn_err_set(e, KN_IO, "cannot lock %s: %s", path, strerror(err));
        pid[k > 0 ? k : 0] = '\0';
        pid[strcspn(pid, "\r\n")] = '\0';
        return kn_err_set(e, KN_RESOURCE_IN_USE,
                          "data dir %s is in use by another kennel server (pid %s); "
                          "stop it or choose another --data-dir",
                          p->data_dir, pid[0] ? pid : "unknown");
    }
    char pid[32];
    int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)n, 0) != n) {
        int err = errno;
        close(fd);
        return kn_err_set(e, KN_IO, "cannot write %s: %s", path, strerror(err));
    }
    p->lock_fd = fd;
    return KN_OK;
}

kn_status kn_platform_open(const kn_platform_params *params, kn_platform **out, kn_err *e)
{
    kn_platform_params d = params ? *params : kn_platform_default_params();
    *out = NULL;
    kn_platform *p = calloc(1, sizeof *p);
    if (!p)
        return kn_err_set(e, KN_NOMEM, "out of memory");
    p->lock_fd = -1;
    kn_status s;
    char dir[PATH_MAX];
    if (d.data_dir && *d.data_dir) {
        if (snprintf(dir, sizeof dir, "%s", d.data_dir) >= (int)sizeof dir) {
            s = kn_err_set(e, KN_INVALID, "data dir path too long");
            goto fail;
        }
    } else if ((s = default_data_dir(dir, sizeof dir, e))) {
        goto fail;
    }
    if ((s = kn_mkdirs(dir, 0700, e)))
        goto fail;
    if (!realpath(dir, p->data_dir)) {
        s = kn_err_set(e, KN_IO, "%s: %s", dir, strerror(errno));
        goto fail;
    }
    if ((s = check_owner(p->data_dir, e)) || (s = take_lock(p, e)))
        goto fail;
    snprintf(p->artifacts_dir, sizeof p->artifacts_dir, "%.4000s/artifacts", p->data_dir);
    if ((s = kn_mkdirs(p->artifacts_dir, 0700, e)))
        goto fail;

    kn_clock_params cp = kn_clock_default_params();
    cp.rate = d.clock_rate;
    cp.manual = d.manual_clock;
    if ((s = kn_clock_new(&cp, &p->clock, e)))
        goto fail;

    char db[PATH_MAX + 16];
    snprintf(db, sizeof db, "%s/kennel.db", p->data_dir);
    kn_registry_params rp = kn_registry_default_params();
    rp.path = db;
    rp.clock = p->clock;
    rp.region = d.region;
    rp.account_id = d.account_id;
    if ((s = kn_registry_open(&rp, &p->registry, e)))
        goto fail;
    /* A clock that ran faster than real time in an earlier run left times
     * ahead of the calendar: continue from there, so that time never runs
     * backwards across a restart (cooldowns, metric minutes, ordering). */
    double latest = 0;
    if ((s = kn_registry__latest_time(p->registry, &latest, e)))
        goto fail;
    if (!d.manual_clock)
        kn_clock__continue_from(p->clock, latest);
    *out = p;
    return KN_OK;
fail:
    kn_platform_close(p);
    return s;
}

void kn_platform_close(kn_platform *p)
{
    if (!p)
        return;
    kn_registry_close(p->registry);
    kn_clock_free(p->clock);
    if (p->lock_fd >= 0)
        close(p->lock_fd); /* releases the flock */
    free(p);
}

kn_clock *kn_platform_clock(kn_platform *p)
{
    return p->clock;
}

kn_registry *kn_platform_registry(kn_platform *p)
{
    return p->registry;
}

const char *kn_platform_data_dir(const kn_platform *p)
{
    return p->data_dir;
}

const char *kn_platform_artifacts_dir(const kn_platform *p)
{
    return p->artifacts_dir;
}

/* ------------------------------------------------------ model data URLs */

static bool has_prefix(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decodes src into dst; false on a bad escape, %00 or overflow. */
static bool url_decode(const char *src, char *dst, size_t n)
{
    size_t j = 0;
    for (size_t i = 0; src[i]; i++) {
        char c = src[i];
        if (c == '%') {
            int hi = src[i + 1] ? hexval(src[i + 1]) : -1;
            int lo = hi >= 0 && src[i + 2] ? hexval(src[i + 2]) : -1;
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
                return false;
            c = (char)(hi << 4 | lo);
            i += 2;
        }
        if (j + 1 >= n)
            return false;
        dst[j++] = c;
    }
    dst[j] = '\0';
    return true;
}

/* True when some '/'-separated component of rel is "..". */
static bool has_dotdot(const char *rel)
{
    for (const char *c = rel; *c;) {
        size_t len = strcspn(c, "/");
        if (len == 2 && c[0] == '.' && c[1] == '.')
            return true;
        c += len;
        if (*c == '/')
            c++;
    }
    return false;
}

kn_status kn_platform_resolve_model_data(const kn_platform *p, const char *url, char *out,
                                         size_t n, kn_err *e)
{
    static const char store[] = "kennel://artifacts/";
    char path[PATH_MAX];
    bool in_store = false;
    if (has_prefix(url, "s3://"))
        return kn_err_set(e, KN_INVALID,
                          "ModelDataUrl '%.300s' is an S3 location, and kennel has no access to "
                          "S3. Copy the model package into kennel's artifact store and use "
                          "kennel://artifacts/<path>, or give a local path or file:// URL",
                          url);
    if (has_prefix(url, "http://") || has_prefix(url, "https://"))
        return kn_err_set(e, KN_INVALID,
                          "ModelDataUrl '%.300s' is a web address; kennel does not download "
                          "model data. Use a local path, a file:// URL or "
                          "kennel://artifacts/<path>",
                          url);
    if (has_prefix(url, store)) {
        const char *rel = url + sizeof store - 1;
        char dec[PATH_MAX];
        if (!*rel || !url_decode(rel, dec, sizeof dec) || dec[0] == '/' || has_dotdot(dec))
            return kn_err_set(e, KN_INVALID,
                              "ModelDataUrl '%.300s' is not a valid artifact reference: "
                              "expected kennel://artifacts/<relative path> without '..'",
                              url);
        if (snprintf(path, sizeof path, "%s/%s", p->artifacts_dir, dec) >= (int)sizeof path)
            return kn_err_set(e, KN_INVALID, "ModelDataUrl is too long");
        in_store = true;
    } else if (has_prefix(url, "file://")) {
        const char *rest = url + 7;
        if (has_prefix(rest, "localhost/"))
            rest += 9;
        if (rest[0] != '/' || !url_decode(rest, path, sizeof path))
            return kn_err_set(e, KN_INVALID,
                              "ModelDataUrl '%.300s' is not a valid file URL: expected "
                              "file:///absolute/path",
                              url);
    } else if (url[0] == '/') {
        if (snprintf(path, sizeof path, "%s", url) >= (int)sizeof path)
            return kn_err_set(e, KN_INVALID, "ModelDataUrl is too long");
    } else if (strstr(url, "://")) {
        return kn_err_set(e, KN_INVALID,
                          "ModelDataUrl '%.300s' has a scheme kennel does not read; use a local "
                          "path, file:// or kennel://artifacts/<path>",
                          url);
    } else {
        return kn_err_set(e, KN_INVALID,
                          "ModelDataUrl '%.300s' must be an absolute local path, a file:// URL "
                          "or kennel://artifacts/<path> (the daemon's working directory is not "
                          "the client's)",
                          url);
    }

    char real[PATH_MAX];
    if (!realpath(path, real))
        return kn_err_set(e, KN_INVALID, "ModelDataUrl '%.300s': %s: %s", url, path,
                          strerror(errno));
    if (in_store) {
        size_t k = strlen(p->artifacts_dir);
        if (strncmp(real, p->artifacts_dir, k) != 0 || real[k] != '/')
            return kn_err_set(e, KN_INVALID,
                              "ModelDataUrl '%.300s' leads out of the artifact store", url);
    }
    struct stat st;
    if (stat(real, &st) != 0)
        return kn_err_set(e, KN_INVALID, "ModelDataUrl '%.300s': %s", url, strerror(errno));
    if (S_ISDIR(st.st_mode)) {
        char mj[PATH_MAX + 16];
        snprintf(mj, sizeof mj, "%s/model.json", real);
        struct stat ms;
        if (stat(mj, &ms) != 0 || !S_ISREG(ms.st_mode))
            return kn_err_set(e, KN_INVALID,
                              "ModelDataUrl '%.300s' is a directory without model.json, so it is "
                              "not a model package",
                              url);
    } else if (S_ISREG(st.st_mode)) {
        unsigned char magic[2] = {0, 0};
        int fd = open(real, O_RDONLY | O_CLOEXEC);
        ssize_t k = fd >= 0 ? read(fd, magic, 2) : -1;
        if (fd >= 0)
            close(fd);
        if (k != 2 || magic[0] != 0x1f || magic[1] != 0x8b)
            return kn_err_set(e, KN_INVALID,
                              "ModelDataUrl '%.300s' is neither a model package directory nor a "
                              "gzip'd tar (model.tar.gz)",
                              url);
    } else {
        return kn_err_set(e, KN_INVALID,
                          "ModelDataUrl '%.300s' is not a regular file or directory", url);
    }
    if (snprintf(out, n, "%s", real) >= (int)n)
        return kn_err_set(e, KN_INVALID, "ModelDataUrl resolves to a path that is too long");
    return KN_OK;
}
