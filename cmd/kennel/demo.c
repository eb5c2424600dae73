/* kennel demo: the reference project's whole workflow in one command.
 *
 * Starts `kennel server` (this executable) on a free loopback port in a
 * temporary data directory with a fresh random administrator key, its
 * clock 10 times faster so autoscaling shows within the run, and drives it
 * through the same AWS requests a notebook would send: a tuning job with
 * the reference ranges, the best configuration retrained, endpoint dog-ep
 * with autoscaling 1..3, a least-privilege role for the function, the
 * dog-breed function with reserved and provisioned concurrency, one
 * invocation with a photo, then a load burst, and a report. Each step
 * prints one line with its duration. The server is stopped and the
 * directory removed at the end (--keep DIR keeps it).
 *
 * Data, in order: --data DIR (with --backbone or --arch/--weights);
 * --download (the reference dogImages archive and ResNet-50 weights, when
 * the network allows); ../shared/data (pets-cats, MobileNet V1 0.25);
 * else a synthetic data set and random weights, said so. */
#include "cli.h"

#include "kennel/auth.h"
#include "kennel/data.h"
#include "kennel/platform.h"

#include <archive.h>
#include <archive_entry.h>
#include <arpa/inet.h>
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CLOCK_RATE 10
#define ACCOUNT "123456789012"
#define DOGIMAGES_URL "https://s3-us-west-1.amazonaws.com/udacity-aind/dog-project/dogImages.zip"
#define RESNET50_URL "https://huggingface.co/timm/resnet50.tv_in1k/resolve/main/model.safetensors"

typedef struct demo {
    char exe[PATH_MAX], exe_dir[PATH_MAX];
    char root[PATH_MAX]; /* the temporary (or --keep) directory */
    char url[128];
    bool keep;
    pid_t server;
    double t0, step_t0;
    /* data */
    char data[PATH_MAX], backbone[PATH_MAX], arch[64], weights[PATH_MAX], photo[PATH_MAX];
    const char *split; /* "7,0,3" when the data set has no train/ directory */
    const char *epochs;
    char what[512];    /* what the data and backbone are, for a person */
    /* results */
    char artifact[PATH_MAX];
    char role_arn[256];
    char **labels;
    int n_labels;
    bool functions;
} demo;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void step_begin(demo *d, const char *title)
{
    d->step_t0 = now_s();
    printf("\n== %s\n", title);
    fflush(stdout);
}

/* One result line of the current step, with the step's time so far. */
static void say(demo *d, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("[%5.1f s] ", now_s() - d->step_t0);
    vprintf(fmt, ap);
    putchar('\n');
    va_end(ap);
    fflush(stdout);
}

static const char *str(json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "";
}

static bool is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static bool is_file(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
    (void)st;
    (void)flag;
    (void)f;
    remove(p);
    return 0;
}

static void rm_rf(const char *p)
{
    nftw(p, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void random_chars(char *out, size_t n, const char *alphabet)
{
    unsigned char b[64];
    size_t k = strlen(alphabet);
    int fd = open("/dev/urandom", O_RDONLY);
    ssize_t got = fd >= 0 ? read(fd, b, n < sizeof b ? n : sizeof b) : -1;
    if (fd >= 0)
        close(fd);
    for (size_t i = 0; i < n; i++)
        out[i] = alphabet[(got > (ssize_t)i ? b[i] : (unsigned char)rand()) % k];
    out[n] = 0;
}

/* ------------------------------------------------------------ requests */

static json_t *call(demo *d, const char *target, json_t *in)
{
    return kn_cli_call(d->url, target, in);
}

/* A REST-JSON request (Lambda); the parsed answer or NULL; *status set. */
static json_t *rest(demo *d, const char *method, const char *path, json_t *in, long *status)
{
    char *body = in ? json_dumps(in, JSON_COMPACT) : NULL;
    json_decref(in);
    const char *h[] = {"Content-Type: application/json", NULL};
    char *out = NULL;
    size_t n = 0;
    long st = kn_cli_request(d->url, method, path, h, body, body ? strlen(body) : 0, &out, &n,
                             NULL, NULL, 0);
    free(body);
    bool quiet = status && *status == -1; /* a probe: the caller explains */
    if (status)
        *status = st;
    json_t *j = out && n ? json_loadb(out, n, 0, NULL) : NULL;
    if (st && (st < 200 || st > 299) && !quiet)
        fprintf(stderr, "kennel demo: %s %s: HTTP %ld: %s\n", method, path, st,
                out ? out : "");
    free(out);
    if (st < 200 || st > 299) {
        json_decref(j);
        return NULL;
    }
    return j ? j : json_object();
}

/* An IAM Query call: form body; true on HTTP 200. */
static bool iam_query(demo *d, const char *form)
{
    const char *h[] = {"Content-Type: application/x-www-form-urlencoded; charset=utf-8", NULL};
    char *out = NULL;
    long st = kn_cli_request(d->url, "POST", "/", h, form, strlen(form), &out, NULL, NULL, NULL,
                             0);
    if (st != 200)
        fprintf(stderr, "kennel demo: IAM call failed (HTTP %ld): %s\n", st, out ? out : "");
    free(out);
    return st == 200;
}

static char *urlenc(const char *s)
{
    CURL *c = curl_easy_init();
    char *e = curl_easy_escape(c, s, 0);
    char *r = strdup(e ? e : "");
    curl_free(e);
    curl_easy_cleanup(c);
    return r;
}

/* ------------------------------------------------------------- server */

static bool port_free(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return true;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool ok = bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

static void tail_file(const char *path, int lines)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    char *all[64] = {0};
    char buf[1024];
    int n = 0;
    while (fgets(buf, sizeof buf, f)) {
        free(all[n % 64]);
        all[n % 64] = strdup(buf);
        n++;
    }
    fclose(f);
    for (int i = n > lines ? n - lines : 0; i < n; i++)
        fprintf(stderr, "   %s", all[i % 64]);
    for (int i = 0; i < 64; i++)
        free(all[i]);
}

static int start_server(demo *d, int port)
{
    char akid[21], secret[41], ready[PATH_MAX + 16], log[PATH_MAX + 16], dir[PATH_MAX + 16],
        cache[PATH_MAX + 16], portv[16], rate[16];
    memcpy(akid, "AKIA", 4);
    random_chars(akid + 4, 16, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567");
    random_chars(secret, 40, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789");
    snprintf(ready, sizeof ready, "%s/ready", d->root);
    snprintf(log, sizeof log, "%s/server.log", d->root);
    snprintf(dir, sizeof dir, "%s/server", d->root);
    snprintf(cache, sizeof cache, "%s/cache", d->root);
    snprintf(portv, sizeof portv, "%d", port);
    snprintf(rate, sizeof rate, "%d", CLOCK_RATE);
    /* the server seeds its administrator from these; the demo signs with them */
    setenv("KENNEL_ROOT_ACCESS_KEY_ID", akid, 1);
    setenv("KENNEL_ROOT_SECRET_ACCESS_KEY", secret, 1);
    setenv("AWS_ACCESS_KEY_ID", akid, 1);
    setenv("AWS_SECRET_ACCESS_KEY", secret, 1);
    unsetenv("AWS_SESSION_TOKEN");
    unsetenv("AWS_PROFILE");
    setenv("AWS_REGION", "us-east-1", 1);
    setenv("XDG_CACHE_HOME", cache, 1); /* backbone features, shared by the trials */
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "kennel demo: cannot start the server: %s\n", strerror(errno));
        return 1;
    }
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM); /* the demo dies: so does its server */
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        execl(d->exe, d->exe, "server", "--data-dir", dir, "--port", portv, "--ready-file",
              ready, "--clock-rate", rate, (char *)NULL);
        _exit(127);
    }
    d->server = pid;
    for (int i = 0; i < 300; i++) {
        FILE *f = fopen(ready, "r");
        char addr[96] = "";
        if (f) {
            bool ok = fgets(addr, sizeof addr, f) != NULL;
            fclose(f);
            addr[strcspn(addr, "\r\n")] = 0;
            if (ok && addr[0]) {
                snprintf(d->url, sizeof d->url, "http://%s", addr);
                return 0;
            }
        }
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            d->server = 0;
            fprintf(stderr, "kennel demo: the server stopped at start; its log (%s):\n", log);
            tail_file(log, 8);
            return 1;
        }
        sleep_ms(100);
    }
    fprintf(stderr, "kennel demo: the server did not answer within 30 s; its log (%s):\n", log);
    tail_file(log, 8);
    return 1;
}

static void stop_server(demo *d)
{
    if (d->server <= 0)
        return;
    kill(d->server, SIGTERM);
    for (int i = 0; i < 300; i++) {
        if (waitpid(d->server, NULL, WNOHANG) == d->server) {
            d->server = 0;
            return;
        }
        sleep_ms(100);
    }
    kill(d->server, SIGKILL);
    waitpid(d->server, NULL, 0);
    d->server = 0;
}

/* ---------------------------------------------------------------- data */

/* Class directories of an ImageFolder (DIR/train/CLASS or DIR/CLASS); -1 if DIR
 * cannot be read. *first receives the first class's name. */
static int count_classes(const char *dir, char *first, size_t n)
{
    char base[PATH_MAX + 8];
    snprintf(base, sizeof base, "%s/train", dir);
    if (!is_dir(base))
        snprintf(base, sizeof base, "%s", dir);
    DIR *dp = opendir(base);
    if (!dp)
        return -1;
    int k = 0;
    struct dirent *e;
    char best[256] = "";
    while ((e = readdir(dp))) {
        if (e->d_name[0] == '.')
            continue;
        char p[PATH_MAX + 300];
        snprintf(p, sizeof p, "%s/%s", base, e->d_name);
        if (!is_dir(p))
            continue;
        k++;
        if (!best[0] || strcmp(e->d_name, best) < 0)
            snprintf(best, sizeof best, "%s", e->d_name);
    }
    closedir(dp);
    snprintf(first, n, "%s", best);
    return k;
}

/* The first image file (sorted) in DIR, into out. */
static bool first_image(const char *dir, char *out, size_t n)
{
    struct dirent **list;
    int k = scandir(dir, &list, NULL, alphasort);
    if (k < 0)
        return false;
    bool found = false;
    for (int i = 0; i < k; i++) {
        const char *dot = strrchr(list[i]->d_name, '.');
        if (!found && dot &&
            (!strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg") || !strcasecmp(dot, ".png"))) {
            snprintf(out, n, "%s/%s", dir, list[i]->d_name);
            found = true;
        }
        free(list[i]);
    }
    free(list);
    return found;
}

/* A photo from the data set: its test split's first class, else the root's. */
static void pick_photo(demo *d)
{
    char first[256], p[PATH_MAX + 300];
    const char *splits[] = {"test", "valid", "train", NULL};
    for (int i = 0; splits[i]; i++) {
        snprintf(p, sizeof p, "%s/%s", d->data, splits[i]);
        if (is_dir(p) && count_classes(p, first, sizeof first) > 0) {
            snprintf(p, sizeof p, "%s/%s/%s", d->data, splits[i], first);
            if (first_image(p, d->photo, sizeof d->photo))
                return;
        }
    }
    if (count_classes(d->data, first, sizeof first) > 0) {
        snprintf(p, sizeof p, "%s/%s", d->data, first);
        first_image(p, d->photo, sizeof d->photo);
    }
}

/* ../shared/data relative to the current directory or to the executable. */
static bool find_shared(demo *d, char *out, size_t n)
{
    char cwd[PATH_MAX];
    const char *bases[3] = {NULL, d->exe_dir, NULL};
    if (getcwd(cwd, sizeof cwd))
        bases[0] = cwd;
    const char *rels[] = {"../shared/data", "../../shared/data", NULL};
    for (int b = 0; b < 2; b++) {
        if (!bases[b])
            continue;
        for (int r = 0; rels[r]; r++) {
            char p[PATH_MAX * 2];
            snprintf(p, sizeof p, "%s/%s/pets-cats", bases[b], rels[r]);
            char q[PATH_MAX * 2];
            snprintf(q, sizeof q, "%s/%s/models/mobilenet_v1_0.25_224.tflite", bases[b],
                     rels[r]);
            if (is_dir(p) && is_file(q)) {
                char raw[PATH_MAX * 2];
                snprintf(raw, sizeof raw, "%s/%s", bases[b], rels[r]);
                if (realpath(raw, out) || (snprintf(out, n, "%s", raw), 1))
                    return true;
            }
        }
    }
    return false;
}

/* --download: fetch url to path (through path.part, renamed when whole)
 * with short connect timeouts. false after one line saying why. */
static bool fetch(const char *url, const char *path, long total_timeout)
{
    char part[PATH_MAX + 16];
    snprintf(part, sizeof part, "%s.part", path);
    FILE *f = fopen(part, "wb");
    if (!f) {
        printf("--download: cannot write %s: %s\n", part, strerror(errno));
        return false;
    }
    printf("--download: fetching %s\n", url);
    fflush(stdout);
    CURL *c = curl_easy_init();
    char err[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, f);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 5L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, total_timeout);
    curl_easy_setopt(c, CURLOPT_FAILONERROR, 1L);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, err);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    CURLcode rc = curl_easy_perform(c);
    curl_easy_cleanup(c);
    if (fclose(f) != 0 && rc == CURLE_OK)
        rc = CURLE_WRITE_ERROR;
    if (rc == CURLE_OK && rename(part, path) == 0)
        return true;
    unlink(part);
    if (rc == CURLE_OK || rc == CURLE_WRITE_ERROR) {
        printf("--download: cannot write %s: %s\n", path, strerror(errno));
        return false;
    }
    if (rc == CURLE_SSL_CACERT_BADFILE || rc == CURLE_PEER_FAILED_VERIFICATION)
        printf("--download: cannot verify %s (%s): install the Debian package ca-certificates "
               "(scripts/install-deps.sh does)\n",
               url, err[0] ? err : curl_easy_strerror(rc));
    else
        printf("--download: no network (%s: %s); falling back to the local data\n", url,
               err[0] ? err : curl_easy_strerror(rc));
    return false;
}

/* Unpacks zip below dir. Entries are taken by their relative names only:
 * an absolute name or a ".." component fails the whole archive, and links
 * are not followed out of dir. */
static bool unzip_to(const char *zip, const char *dir)
{
    struct archive *a = archive_read_new();
    archive_read_support_format_zip(a);
    struct archive *w = archive_write_disk_new();
    archive_write_disk_set_options(w, ARCHIVE_EXTRACT_SECURE_NODOTDOT |
                                          ARCHIVE_EXTRACT_SECURE_SYMLINKS);
    bool ok = archive_read_open_filename(a, zip, 1 << 16) == ARCHIVE_OK;
    struct archive_entry *e;
    int r = ARCHIVE_OK;
    while (ok && (r = archive_read_next_header(a, &e)) == ARCHIVE_OK) {
        const char *name = archive_entry_pathname(e);
        if (!name || name[0] == '/' || strcmp(name, "..") == 0 || strncmp(name, "../", 3) == 0 ||
            strstr(name, "/../")) {
            ok = false;
            break;
        }
        char p[PATH_MAX * 2];
        snprintf(p, sizeof p, "%s/%s", dir, name);
        archive_entry_set_pathname(e, p);
        if (archive_write_header(w, e) != ARCHIVE_OK) {
            ok = false;
            break;
        }
        const void *buf;
        size_t sz;
        la_int64_t off;
        int rd;
        while ((rd = archive_read_data_block(a, &buf, &sz, &off)) == ARCHIVE_OK)
            if (archive_write_data_block(w, buf, sz, off) != ARCHIVE_OK)
                rd = ARCHIVE_FATAL;
        if (rd != ARCHIVE_EOF || archive_write_finish_entry(w) != ARCHIVE_OK)
            ok = false;
    }
    if (ok && r != ARCHIVE_EOF)
        ok = false;
    archive_read_free(a);
    archive_write_free(w);
    return ok;
}

/* Where --download keeps what it fetched, so that the next run does not
 * fetch 1 GB again: $XDG_CACHE_HOME/kennel/downloads, else
 * ~/.cache/kennel/downloads, else the run's own directory (removed at the
 * end). */
static void download_dir(const demo *d, char *out, size_t n)
{
    const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    char base[PATH_MAX];
    if (xdg && *xdg)
        snprintf(base, sizeof base, "%s", xdg);
    else if (home && *home)
        snprintf(base, sizeof base, "%s/.cache", home);
    else
        base[0] = 0;
    if (base[0]) {
        char k[PATH_MAX + 16];
        snprintf(k, sizeof k, "%s/kennel", base);
        mkdir(base, 0755);
        mkdir(k, 0755);
        snprintf(out, n, "%s/downloads", k);
        if ((mkdir(out, 0755) == 0 || errno == EEXIST) && access(out, W_OK) == 0)
            return;
        printf("--download: cannot use %s (%s); keeping the downloads in the run's directory\n",
               out, strerror(errno));
    }
    snprintf(out, n, "%s/download", d->root);
    mkdir(out, 0700);
}

/* --download: the ResNet-50 weights and dogImages, from the cache when an
 * earlier run fetched them. The URLs can be pointed at a mirror with
 * KENNEL_RESNET50_URL and KENNEL_DOGIMAGES_URL. */
static bool download(demo *d)
{
    const char *wurl = getenv("KENNEL_RESNET50_URL"), *durl = getenv("KENNEL_DOGIMAGES_URL");
    if (!wurl || !*wurl)
        wurl = RESNET50_URL;
    if (!durl || !*durl)
        durl = DOGIMAGES_URL;
    char dir[PATH_MAX], w[PATH_MAX + 64], zip[PATH_MAX + 64], images[PATH_MAX + 64],
        part[PATH_MAX + 64], from[PATH_MAX * 2];
    download_dir(d, dir, sizeof dir);
    snprintf(w, sizeof w, "%s/resnet50.tv_in1k.safetensors", dir);
    snprintf(zip, sizeof zip, "%s/dogImages.zip", dir);
    snprintf(images, sizeof images, "%s/dogImages", dir);
    if (is_file(w))
        printf("--download: ResNet-50 weights from %s (fetched by an earlier run)\n", w);
    else if (!fetch(wurl, w, 600))
        return false;
    char train[PATH_MAX + 80], first[256];
    snprintf(train, sizeof train, "%s/train", images);
    if (is_dir(train) && count_classes(train, first, sizeof first) > 1) {
        printf("--download: dogImages from %s (fetched by an earlier run)\n", images);
    } else {
        if (!fetch(durl, zip, 1800))
            return false;
        /* unpacked beside, then moved into place whole: an interrupted run
         * leaves no half data set that the next one would take */
        snprintf(part, sizeof part, "%s/unpack.part", dir);
        rm_rf(part);
        mkdir(part, 0700);
        snprintf(from, sizeof from, "%s/dogImages", part);
        snprintf(train, sizeof train, "%s/train", from);
        if (!unzip_to(zip, part) || !is_dir(train)) {
            printf("--download: %s is not the dogImages archive (no dogImages/train/ in it); "
                   "falling back to the local data\n",
                   durl);
            rm_rf(part);
            unlink(zip);
            return false;
        }
        rm_rf(images);
        if (rename(from, images) != 0) {
            printf("--download: cannot move the data set to %s: %s\n", images, strerror(errno));
            rm_rf(part);
            return false;
        }
        rm_rf(part);
        unlink(zip);
    }
    snprintf(train, sizeof train, "%s/train", images);
    int k = count_classes(train, first, sizeof first);
    snprintf(d->data, sizeof d->data, "%s", images);
    snprintf(d->arch, sizeof d->arch, "resnet50");
    snprintf(d->weights, sizeof d->weights, "%s", w);
    d->epochs = "3";
    snprintf(d->what, sizeof d->what,
             "the reference project's dogImages (%d breeds, downloaded to %s) on ImageNet "
             "ResNet-50 weights (downloaded)",
             k, dir);
    return true;
}

static int pick_data(demo *d, const char *data, const char *backbone, const char *arch,
                     const char *weights, bool want_download)
{
    char shared[PATH_MAX];
    bool have_shared = find_shared(d, shared, sizeof shared);
    d->epochs = "5";
    if (want_download && !data && download(d))
        return 0;
    if (data) {
        char first[256];
        int k = count_classes(data, first, sizeof first);
        if (k < 0) {
            fprintf(stderr, "kennel demo: --data %s: cannot read it: %s\n", data,
                    strerror(errno));
            return 2;
        }
        if (k < 2) {
            fprintf(stderr,
                    "kennel demo: --data %s has %d class%s%s%s%s: a classifier needs at least "
                    "two; give it one directory of images per class (ImageFolder)\n",
                    data, k, k == 1 ? "" : "es", k == 1 ? " (" : "", k == 1 ? first : "",
                    k == 1 ? ")" : "");
            return 2;
        }
        if (!realpath(data, d->data))
            snprintf(d->data, sizeof d->data, "%s", data);
        char tr[PATH_MAX + 8];
        snprintf(tr, sizeof tr, "%s/train", d->data);
        d->split = is_dir(tr) ? NULL : "7,0,3";
        if (backbone) {
            if (!realpath(backbone, d->backbone)) {
                fprintf(stderr, "kennel demo: --backbone %s: %s\n", backbone, strerror(errno));
                return 2;
            }
            snprintf(d->what, sizeof d->what, "%s (%d classes, --data) on backbone %s", d->data,
                     k, d->backbone);
        } else if (arch && weights) {
            snprintf(d->arch, sizeof d->arch, "%s", arch);
            if (!realpath(weights, d->weights)) {
                fprintf(stderr, "kennel demo: --weights %s: %s\n", weights, strerror(errno));
                return 2;
            }
            snprintf(d->what, sizeof d->what, "%s (%d classes, --data) on %s weights %s",
                     d->data, k, arch, d->weights);
        } else if (have_shared) {
            snprintf(d->backbone, sizeof d->backbone, "%s/models/mobilenet_v1_0.25_224.tflite",
                     shared);
            snprintf(d->what, sizeof d->what,
                     "%s (%d classes, --data) on the MobileNet V1 0.25 ImageNet backbone of %s",
                     d->data, k, shared);
        } else {
            fprintf(stderr, "kennel demo: --data needs a backbone: --backbone FILE or --arch A "
                            "--weights FILE\n");
            return 2;
        }
        return 0;
    }
    if (have_shared) {
        snprintf(d->data, sizeof d->data, "%s/pets-cats", shared);
        snprintf(d->backbone, sizeof d->backbone, "%s/models/mobilenet_v1_0.25_224.tflite",
                 shared);
        d->split = "7,0,3";
        snprintf(d->photo, sizeof d->photo, "%s/images/cats_and_dogs.jpg", shared);
        snprintf(d->what, sizeof d->what,
                 "%s/pets-cats (12 cat breeds, 10 photos each, 7/3 split) on the frozen "
                 "MobileNet V1 0.25 ImageNet backbone (stand-ins for dogImages and ResNet-50)",
                 shared);
        return 0;
    }
    /* a bare clone: synthetic data and random weights */
    snprintf(d->data, sizeof d->data, "%s/synthetic", d->root);
    kn_err e;
    if (kn_dataset_synth(d->data, 3, 12, 1, &e)) {
        fprintf(stderr, "kennel demo: cannot write the synthetic data set: %s\n", e.msg);
        return 1;
    }
    char out[PATH_MAX + 16];
    snprintf(out, sizeof out, "%s/random-backbone", d->root);
    char *argv[] = {"model", "package", "--arch", "tiny", "--init", "random", "--classes",
                    "1000", "--image-size", "64", "--out", out, NULL};
    int saved = dup(1);
    int null = open("/dev/null", O_WRONLY);
    fflush(stdout);
    dup2(null, 1);
    int rc = kn_cli_model(12, argv);
    fflush(stdout);
    dup2(saved, 1);
    close(saved);
    close(null);
    if (rc)
        return 1;
    snprintf(d->arch, sizeof d->arch, "tiny");
    snprintf(d->weights, sizeof d->weights, "%s/model.safetensors", out);
    d->epochs = "10";
    snprintf(d->what, sizeof d->what,
             "SYNTHETIC data (3 classes of coloured shapes, kennel dataset synth) on a "
             "RANDOM-WEIGHT backbone: ../shared/data is absent and no --data was given; the "
             "numbers show the pipeline, not a real model");
    return 0;
}

/* ------------------------------------------------------------- training */

static json_t *job_definition(demo *d, json_t *static_hp)
{
    char uri[PATH_MAX + 16], outp[PATH_MAX + 32];
    snprintf(uri, sizeof uri, "file://%s", d->data);
    snprintf(outp, sizeof outp, "file://%s/jobs", d->root);
    return json_pack(
        "{s:o, s:{s:s, s:s, s:[{s:s, s:s}, {s:s, s:s}]}, s:s, s:[{s:s, s:{s:{s:s, s:s, s:s}}}],"
        " s:{s:s}, s:{s:s, s:i, s:i}, s:{s:i}}",
        "StaticHyperParameters", static_hp, "AlgorithmSpecification", "TrainingImage", "kennel",
        "TrainingInputMode", "File", "MetricDefinitions", "Name", "Test Loss", "Regex",
        "Testing Loss: ([0-9\\.]+)", "Name", "Test Accuracy", "Regex",
        "Testing Accuracy: ([0-9\\.]+)", "RoleArn", "arn:aws:iam::" ACCOUNT ":role/kennel-training",
        "InputDataConfig", "ChannelName", "training", "DataSource", "S3DataSource", "S3DataType",
        "S3Prefix", "S3Uri", uri, "S3DataDistributionType", "FullyReplicated",
        "OutputDataConfig", "S3OutputPath", outp, "ResourceConfig", "InstanceType",
        "ml.m5.large", "InstanceCount", 1, "VolumeSizeInGB", 5, "StoppingCondition",
        "MaxRuntimeInSeconds", 3600);
}

static json_t *static_hyperparameters(demo *d)
{
    json_t *hp = json_pack("{s:s, s:s}", "epochs", d->epochs, "seed", "0");
    if (d->backbone[0])
        json_object_set_new(hp, "backbone", json_string(d->backbone));
    if (d->arch[0])
        json_object_set_new(hp, "arch", json_string(d->arch));
    if (d->weights[0])
        json_object_set_new(hp, "weights", json_string(d->weights));
    if (!strcmp(d->arch, "tiny"))
        json_object_set_new(hp, "image-size", json_string("64"));
    if (d->split)
        json_object_set_new(hp, "split", json_string(d->split));
    return hp;
}

static double final_metric(json_t *job, const char *name)
{
    size_t i;
    json_t *m;
    json_array_foreach(json_object_get(job, "FinalMetricDataList"), i, m)
    {
        if (!strcmp(str(m, "MetricName"), name))
            return json_number_value(json_object_get(m, "Value"));
    }
    return NAN;
}

static int tune(demo *d, char *best, size_t best_n)
{
    step_begin(d, "1. Tuning job dog-hpo: learning_rate 0.001..0.1 (continuous), batch_size "
                  "32|64|128|256|512, minimise \"Test Loss\", 2 jobs, 2 in parallel");
    json_t *in = json_pack(
        "{s:s, s:{s:s, s:{s:s, s:s}, s:{s:i, s:i}, s:{s:[{s:s, s:s, s:s, s:s}],"
        " s:[{s:s, s:[s, s, s, s, s]}]}, s:s}, s:o}",
        "HyperParameterTuningJobName", "dog-hpo", "HyperParameterTuningJobConfig", "Strategy",
        "Bayesian", "HyperParameterTuningJobObjective", "Type", "Minimize", "MetricName",
        "Test Loss", "ResourceLimits", "MaxNumberOfTrainingJobs", 2, "MaxParallelTrainingJobs",
        2, "ParameterRanges", "ContinuousParameterRanges", "Name", "learning_rate", "MinValue",
        "0.001", "MaxValue", "0.1", "ScalingType", "Auto", "CategoricalParameterRanges", "Name",
        "batch_size", "Values", "32", "64", "128", "256", "512", "TrainingJobEarlyStoppingType",
        "Off", "TrainingJobDefinition", job_definition(d, static_hyperparameters(d)));
    json_t *o = call(d, "SageMaker.CreateHyperParameterTuningJob", in);
    if (!o)
        return 1;
    json_decref(o);
    say(d, "started %s", "dog-hpo");
    json_t *seen = json_object();
    const char *status = "InProgress";
    json_t *desc = NULL;
    for (int i = 0; i < 3600; i++) {
        json_t *l = call(d, "SageMaker.ListTrainingJobsForHyperParameterTuningJob",
                         json_pack("{s:s}", "HyperParameterTuningJobName", "dog-hpo"));
        size_t k;
        json_t *j;
        json_array_foreach(json_object_get(l, "TrainingJobSummaries"), k, j)
        {
            const char *st = str(j, "TrainingJobStatus");
            const char *name = str(j, "TrainingJobName");
            if (json_object_get(seen, name) ||
                (strcmp(st, "Completed") && strcmp(st, "Failed") && strcmp(st, "Stopped")))
                continue;
            json_object_set_new(seen, name, json_true());
            json_t *hp = json_object_get(j, "TunedHyperParameters");
            json_t *obj = json_object_get(j, "FinalHyperParameterTuningJobObjectiveMetric");
            if (obj)
                say(d, "trial %s: learning_rate %s, batch_size %s -> Test Loss %.4f", name,
                    str(hp, "learning_rate"), str(hp, "batch_size"),
                    json_number_value(json_object_get(obj, "Value")));
            else
                say(d, "trial %s: learning_rate %s, batch_size %s -> %s %s", name,
                    str(hp, "learning_rate"), str(hp, "batch_size"), st,
                    str(j, "FailureReason"));
        }
        json_decref(l);
        json_decref(desc);
        desc = call(d, "SageMaker.DescribeHyperParameterTuningJob",
                    json_pack("{s:s}", "HyperParameterTuningJobName", "dog-hpo"));
        if (!desc)
            break;
        status = str(desc, "HyperParameterTuningJobStatus");
        if (strcmp(status, "InProgress") && strcmp(status, "Stopping") &&
            json_object_size(seen) >= 2)
            break;
        if (strcmp(status, "InProgress") && strcmp(status, "Stopping") && i > 20)
            break;
        sleep_ms(300);
    }
    json_decref(seen);
    json_t *b = json_object_get(desc, "BestTrainingJob");
    if (!desc || strcmp(status, "Completed") || !b) {
        fprintf(stderr, "kennel demo: tuning job dog-hpo ended %s with no best job: %s\n",
                desc ? status : "?", desc ? str(desc, "FailureReason") : "");
        json_decref(desc);
        return 1;
    }
    snprintf(best, best_n, "%s", str(b, "TrainingJobName"));
    json_t *hp = json_object_get(b, "TunedHyperParameters");
    say(d, "best: %s (learning_rate %s, batch_size %s, Test Loss %.4f)", best,
        str(hp, "learning_rate"), str(hp, "batch_size"),
        json_number_value(
            json_object_get(json_object_get(b, "FinalHyperParameterTuningJobObjectiveMetric"),
                            "Value")));
    json_decref(desc);
    return 0;
}

static int retrain(demo *d, const char *best)
{
    step_begin(d, "2. Retrain the best configuration: training job dog-best");
    json_t *bj = call(d, "SageMaker.DescribeTrainingJob",
                      json_pack("{s:s}", "TrainingJobName", best));
    if (!bj)
        return 1;
    json_t *hp = json_object();
    const char *k;
    json_t *v;
    json_object_foreach(json_object_get(bj, "HyperParameters"), k, v)
    {
        if (k[0] != '_' && strncmp(k, "sagemaker_", 10) && json_is_string(v))
            json_object_set(hp, k, v);
    }
    json_decref(bj);
    json_t *in = job_definition(d, hp);
    json_object_set_new(in, "HyperParameters", json_object_get(in, "StaticHyperParameters"));
    json_incref(json_object_get(in, "HyperParameters"));
    json_object_del(in, "StaticHyperParameters");
    json_object_set_new(in, "TrainingJobName", json_string("dog-best"));
    json_t *o = call(d, "SageMaker.CreateTrainingJob", in);
    if (!o)
        return 1;
    json_decref(o);
    for (int i = 0; i < 6000; i++) {
        json_t *j = call(d, "SageMaker.DescribeTrainingJob",
                         json_pack("{s:s}", "TrainingJobName", "dog-best"));
        if (!j)
            return 1;
        const char *st = str(j, "TrainingJobStatus");
        if (!strcmp(st, "Completed")) {
            snprintf(d->artifact, sizeof d->artifact, "%s",
                     str(json_object_get(j, "ModelArtifacts"), "S3ModelArtifacts"));
            say(d, "dog-best Completed: Test Loss %.4f, Test Accuracy %.3f; model %s",
                final_metric(j, "Test Loss"), final_metric(j, "Test Accuracy"), d->artifact);
            json_decref(j);
            return 0;
        }
        if (!strcmp(st, "Failed") || !strcmp(st, "Stopped")) {
            fprintf(stderr, "kennel demo: training job dog-best %s: %s\n", st,
                    str(j, "FailureReason"));
            json_decref(j);
            return 1;
        }
        json_decref(j);
        sleep_ms(300);
    }
    return 1;
}

/* The class names of the trained package (model.json's "classes"). */
static void read_labels(demo *d)
{
    const char *p = d->artifact;
    if (!strncmp(p, "file://", 7))
        p += 7;
    struct archive *a = archive_read_new();
    archive_read_support_format_tar(a);
    archive_read_support_filter_gzip(a);
    if (archive_read_open_filename(a, p, 1 << 16) != ARCHIVE_OK) {
        archive_read_free(a);
        return;
    }
    struct archive_entry *e;
    while (archive_read_next_header(a, &e) == ARCHIVE_OK) {
        const char *name = archive_entry_pathname(e);
        const char *base = strrchr(name, '/') ? strrchr(name, '/') + 1 : name;
        if (strcmp(base, "model.json"))
            continue;
        la_int64_t sz = archive_entry_size(e);
        if (sz <= 0 || sz > (16 << 20))
            break;
        char *buf = malloc((size_t)sz);
        if (buf && archive_read_data(a, buf, (size_t)sz) == sz) {
            json_t *j = json_loadb(buf, (size_t)sz, 0, NULL);
            json_t *c = json_object_get(j, "classes");
            d->n_labels = (int)json_array_size(c);
            d->labels = calloc((size_t)d->n_labels + 1, sizeof *d->labels);
            for (int i = 0; d->labels && i < d->n_labels; i++) {
                json_t *x = json_array_get(c, (size_t)i);
                const char *s = json_is_string(x) ? json_string_value(x)
                                                  : str(x, "name");
                d->labels[i] = strdup(s);
            }
            json_decref(j);
        }
        free(buf);
        break;
    }
    archive_read_free(a);
}

/* --------------------------------------------------------------- deploy */

static int deploy(demo *d)
{
    step_begin(d, "3. Deploy dog-ep (model, endpoint configuration, endpoint) and autoscale it "
                  "1..3 on invocations per instance, scale-in cooldown 300 s, scale-out 30 s");
    json_t *o = call(d, "SageMaker.CreateModel",
                     json_pack("{s:s, s:s, s:{s:s}}", "ModelName", "dog-model",
                               "ExecutionRoleArn", "arn:aws:iam::" ACCOUNT ":role/kennel-model",
                               "PrimaryContainer", "ModelDataUrl", d->artifact));
    if (!o)
        return 1;
    json_decref(o);
    o = call(d, "SageMaker.CreateEndpointConfig",
             json_pack("{s:s, s:[{s:s, s:s, s:i, s:s, s:f}]}", "EndpointConfigName",
                       "dog-ep-config", "ProductionVariants", "VariantName", "AllTraffic",
                       "ModelName", "dog-model", "InitialInstanceCount", 1, "InstanceType",
                       "ml.m5.large", "InitialVariantWeight", 1.0));
    if (!o)
        return 1;
    json_decref(o);
    o = call(d, "SageMaker.CreateEndpoint",
             json_pack("{s:s, s:s}", "EndpointName", "dog-ep", "EndpointConfigName",
                       "dog-ep-config"));
    if (!o)
        return 1;
    json_decref(o);
    for (int i = 0;; i++) {
        json_t *j = call(d, "SageMaker.DescribeEndpoint",
                         json_pack("{s:s}", "EndpointName", "dog-ep"));
        if (!j)
            return 1;
        const char *st = str(j, "EndpointStatus");
        if (!strcmp(st, "InService")) {
            say(d, "dog-ep InService, 1 x ml.m5.large");
            json_decref(j);
            break;
        }
        if (!strcmp(st, "Failed") || i > 1200) {
            fprintf(stderr, "kennel demo: endpoint dog-ep %s: %s\n", st,
                    str(j, "FailureReason"));
            json_decref(j);
            return 1;
        }
        json_decref(j);
        sleep_ms(200);
    }
    const char *rid = "endpoint/dog-ep/variant/AllTraffic";
    o = call(d, "AnyScaleFrontendService.RegisterScalableTarget",
             json_pack("{s:s, s:s, s:s, s:i, s:i}", "ServiceNamespace", "sagemaker",
                       "ResourceId", rid, "ScalableDimension",
                       "sagemaker:variant:DesiredInstanceCount", "MinCapacity", 1,
                       "MaxCapacity", 3));
    if (!o)
        return 1;
    json_decref(o);
    o = call(d, "AnyScaleFrontendService.PutScalingPolicy",
             json_pack("{s:s, s:s, s:s, s:s, s:s, s:{s:f, s:{s:s}, s:i, s:i}}", "PolicyName",
                       "dog-ep-invocations", "ServiceNamespace", "sagemaker", "ResourceId", rid,
                       "ScalableDimension", "sagemaker:variant:DesiredInstanceCount",
                       "PolicyType", "TargetTrackingScaling",
                       "TargetTrackingScalingPolicyConfiguration", "TargetValue", 70.0,
                       "PredefinedMetricSpecification", "PredefinedMetricType",
                       "SageMakerVariantInvocationsPerInstance", "ScaleInCooldown", 300,
                       "ScaleOutCooldown", 30));
    if (!o)
        return 1;
    json_decref(o);
    say(d, "autoscaling: 1..3 instances, target 70 invocations per instance per minute, "
           "cooldowns in 300 s / out 30 s");
    return 0;
}

/* ------------------------------------------------------------------ IAM */

static int role(demo *d)
{
    step_begin(d, "4. Role dog-fn-role for the function: trust lambda.amazonaws.com, allow "
                  "sagemaker:InvokeEndpoint on dog-ep only");
    const char *trust = "{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\","
                        "\"Principal\":{\"Service\":\"lambda.amazonaws.com\"},"
                        "\"Action\":\"sts:AssumeRole\"}]}";
    const char *policy =
        "{\"Version\":\"2012-10-17\",\"Statement\":[{\"Sid\":\"InvokeOneEndpoint\","
        "\"Effect\":\"Allow\",\"Action\":\"sagemaker:InvokeEndpoint\","
        "\"Resource\":\"arn:aws:sagemaker:us-east-1:" ACCOUNT ":endpoint/dog-ep\"}]}";
    kn_lint_finding *f = NULL;
    size_t n = 0, n2 = 0;
    kn_err e;
    if (kn_policy_lint(policy, strlen(policy), KN_POLICY_IDENTITY, &f, &n, &e)) {
        fprintf(stderr, "kennel demo: the policy does not parse: %s\n", e.msg);
        return 1;
    }
    for (size_t i = 0; i < n; i++)
        say(d, "lint: %s %s", f[i].code, f[i].message);
    free(f);
    f = NULL;
    if (kn_policy_lint(trust, strlen(trust), KN_POLICY_RESOURCE, &f, &n2, &e)) {
        fprintf(stderr, "kennel demo: the trust policy does not parse: %s\n", e.msg);
        return 1;
    }
    for (size_t i = 0; i < n2; i++)
        say(d, "lint (trust): %s %s", f[i].code, f[i].message);
    free(f);
    if (n + n2 == 0)
        say(d, "kennel iam lint: no findings in the role's policy or its trust policy");
    char *t = urlenc(trust), *p = urlenc(policy);
    size_t len = strlen(t) + strlen(p) + 256;
    char *form = malloc(len);
    snprintf(form, len,
             "Action=CreateRole&Version=2010-05-08&RoleName=dog-fn-role&"
             "AssumeRolePolicyDocument=%s",
             t);
    bool ok = iam_query(d, form);
    if (ok) {
        snprintf(form, len,
                 "Action=PutRolePolicy&Version=2010-05-08&RoleName=dog-fn-role&"
                 "PolicyName=invoke-dog-ep&PolicyDocument=%s",
                 p);
        ok = iam_query(d, form);
    }
    free(form);
    free(t);
    free(p);
    if (!ok)
        return 1;
    snprintf(d->role_arn, sizeof d->role_arn, "arn:aws:iam::" ACCOUNT ":role/dog-fn-role");
    say(d, "created %s with inline policy invoke-dog-ep", d->role_arn);
    return 0;
}

/* ------------------------------------------------------------ functions */

static char *b64_file(const char *path, size_t max)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    unsigned char *buf = malloc(max);
    size_t n = buf ? fread(buf, 1, max, f) : 0;
    fclose(f);
    if (!buf || n == 0 || n == max) {
        free(buf);
        return NULL;
    }
    char *out = malloc(4 * ((n + 2) / 3) + 1);
    if (out)
        EVP_EncodeBlock((unsigned char *)out, buf, (int)n);
    free(buf);
    return out;
}

/* The dog-breed bootstrap zipped (base64), or NULL. */
static char *function_zip(const char *bootstrap)
{
    FILE *f = fopen(bootstrap, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *bin = sz > 0 ? malloc((size_t)sz) : NULL;
    bool ok = bin && fread(bin, 1, (size_t)sz, f) == (size_t)sz;
    fclose(f);
    if (!ok) {
        free(bin);
        return NULL;
    }
    size_t cap = (size_t)sz + 65536, used = 0;
    char *zip = malloc(cap);
    struct archive *a = archive_write_new();
    archive_write_set_format_zip(a);
    archive_write_open_memory(a, zip, cap, &used);
    struct archive_entry *e = archive_entry_new();
    archive_entry_set_pathname(e, "bootstrap");
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0755);
    archive_entry_set_size(e, sz);
    archive_write_header(a, e);
    archive_write_data(a, bin, (size_t)sz);
    archive_entry_free(e);
    archive_write_close(a);
    archive_write_free(a);
    free(bin);
    char *out = malloc(4 * ((used + 2) / 3) + 1);
    if (out)
        EVP_EncodeBlock((unsigned char *)out, (unsigned char *)zip, (int)used);
    free(zip);
    return out;
}

static int function(demo *d)
{
    step_begin(d, "5. Function dog-breed (C, kn_runtime) with role dog-fn-role: version, alias "
                  "live, reserved concurrency 5, provisioned 2 on live");
    long st = -1;
    json_t *probe = rest(d, "GET", "/2015-03-31/functions/", NULL, &st);
    json_decref(probe);
    if (!probe) {
        say(d, "functions are not available in this build (the Lambda API answered HTTP %ld); "
               "the function steps are skipped",
            st);
        return 0;
    }
    char bs[PATH_MAX + 64];
    snprintf(bs, sizeof bs, "%s/functions/dog-breed/bootstrap", d->exe_dir);
    if (access(bs, X_OK) != 0) {
        say(d, "the dog-breed function is not built (%s is missing): run `cmake --build build` "
               "(target fn_dog-breed); the function steps are skipped",
            bs);
        return 0;
    }
    char *zip = function_zip(bs);
    if (!zip) {
        fprintf(stderr, "kennel demo: cannot zip %s\n", bs);
        return 1;
    }
    json_t *o = rest(d, "POST", "/2015-03-31/functions",
                     json_pack("{s:s, s:s, s:s, s:s, s:{s:s}, s:i, s:{s:{s:s}}}",
                               "FunctionName", "dog-breed", "Runtime", "provided.al2023",
                               "Role", d->role_arn, "Handler", "bootstrap", "Code", "ZipFile",
                               zip, "Timeout", 30, "Environment", "Variables", "ENDPOINT_NAME",
                               "dog-ep"),
                     NULL);
    free(zip);
    if (!o)
        return 1;
    json_decref(o);
    o = rest(d, "POST", "/2015-03-31/functions/dog-breed/versions", json_object(), NULL);
    if (!o)
        return 1;
    char version[32];
    snprintf(version, sizeof version, "%s", str(o, "Version"));
    json_decref(o);
    o = rest(d, "POST", "/2015-03-31/functions/dog-breed/aliases",
             json_pack("{s:s, s:s}", "Name", "live", "FunctionVersion", version), NULL);
    if (!o)
        return 1;
    json_decref(o);
    o = rest(d, "PUT", "/2017-10-31/functions/dog-breed/concurrency",
             json_pack("{s:i}", "ReservedConcurrentExecutions", 5), NULL);
    if (!o)
        return 1;
    json_decref(o);
    const char *pc = "/2019-09-30/functions/dog-breed/provisioned-concurrency?Qualifier=live";
    o = rest(d, "PUT", pc, json_pack("{s:i}", "ProvisionedConcurrentExecutions", 2), NULL);
    if (!o)
        return 1;
    json_decref(o);
    say(d, "dog-breed version %s, alias live, reserved 5, provisioned 2 requested", version);
    for (int i = 0; i < 600; i++) {
        o = rest(d, "GET", pc, NULL, NULL);
        if (!o)
            return 1;
        const char *s = str(o, "Status");
        if (!strcmp(s, "READY")) {
            say(d, "provisioned concurrency on live: READY (%lld of 2 environments warm)",
                (long long)json_integer_value(
                    json_object_get(o, "AvailableProvisionedConcurrentExecutions")));
            json_decref(o);
            d->functions = true;
            return 0;
        }
        if (!strcmp(s, "FAILED")) {
            fprintf(stderr, "kennel demo: provisioned concurrency FAILED: %s\n",
                    str(o, "StatusReason"));
            json_decref(o);
            return 1;
        }
        json_decref(o);
        sleep_ms(200);
    }
    fprintf(stderr, "kennel demo: provisioned concurrency is not READY after 120 s\n");
    return 1;
}

typedef struct score {
    double v;
    int i;
} score;

static int by_score(const void *a, const void *b)
{
    double x = ((const score *)a)->v, y = ((const score *)b)->v;
    return x < y ? 1 : x > y ? -1 : 0;
}

static void print_top5(demo *d, const char *scores_json)
{
    json_t *j = json_loads(scores_json, 0, NULL);
    json_t *row = json_array_get(j, 0);
    size_t n = json_array_size(row);
    if (!n) {
        json_decref(j);
        return;
    }
    score *s = calloc(n, sizeof *s);
    for (size_t i = 0; i < n; i++)
        s[i] = (score){json_number_value(json_array_get(row, i)), (int)i};
    qsort(s, n, sizeof *s, by_score);
    for (size_t i = 0; i < n && i < 5; i++)
        say(d, "  %zu. %-28s %.4f", i + 1,
            s[i].i < d->n_labels ? d->labels[s[i].i] : "(class)", s[i].v);
    free(s);
    json_decref(j);
}

static int invoke(demo *d)
{
    char *img = b64_file(d->photo, 6 << 20);
    if (!img) {
        fprintf(stderr, "kennel demo: cannot read the photo %s\n", d->photo);
        return 1;
    }
    if (d->functions) {
        step_begin(d, "6. Invoke dog-breed:live with a photo (the function calls dog-ep)");
        size_t len = strlen(img) + 32;
        char *ev = malloc(len);
        snprintf(ev, len, "{\"image\":\"%s\"}", img);
        const char *h[] = {"Content-Type: application/json", NULL};
        char *out = NULL, ferr[256] = "";
        long st = kn_cli_request(d->url, "POST",
                                 "/2015-03-31/functions/dog-breed/invocations?Qualifier=live",
                                 h, ev, strlen(ev), &out, NULL, "X-Amz-Function-Error", ferr,
                                 sizeof ferr);
        free(ev);
        json_t *r = out ? json_loads(out, 0, NULL) : NULL;
        if (st != 200 || ferr[0] || !r) {
            fprintf(stderr, "kennel demo: invoking dog-breed failed (HTTP %ld%s%s): %s\n", st,
                    ferr[0] ? ", " : "", ferr, out ? out : "");
            free(out);
            json_decref(r);
            free(img);
            return 1;
        }
        say(d, "photo %s -> statusCode %lld; top 5:", d->photo,
            (long long)json_integer_value(json_object_get(r, "statusCode")));
        print_top5(d, str(r, "body"));
        printf("response: %.400s%s\n", out, strlen(out) > 400 ? " ..." : "");
        free(out);
        json_decref(r);
    } else {
        step_begin(d, "6. Invoke dog-ep with a photo (SageMaker Runtime InvokeEndpoint)");
        size_t len = strlen(img) + 32;
        char *ev = malloc(len);
        snprintf(ev, len, "{\"image\":\"%s\"}", img);
        char *out = NULL;
        const char *h[] = {"Content-Type: application/json", "Accept: application/json", NULL};
        long st = kn_cli_request(d->url, "POST", "/endpoints/dog-ep/invocations", h, ev,
                                 strlen(ev), &out, NULL, NULL, NULL, 0);
        free(ev);
        if (st != 200) {
            fprintf(stderr, "kennel demo: invoking dog-ep failed (HTTP %ld): %s\n", st,
                    out ? out : "");
            free(out);
            free(img);
            return 1;
        }
        say(d, "photo %s; top 5:", d->photo);
        print_top5(d, out);
        printf("response: %.400s%s\n", out, strlen(out) > 400 ? " ..." : "");
        free(out);
    }
    free(img);
    return 0;
}

/* ----------------------------------------------------------------- load */

typedef struct burst {
    demo *d;
    pthread_barrier_t *go;
    const char *body;
    long status;
    char reason[128];
} burst;

static void *burst_one(void *arg)
{
    burst *b = arg;
    pthread_barrier_wait(b->go);
    const char *h[] = {"Content-Type: application/json", NULL};
    char *out = NULL;
    b->status = kn_cli_request(b->d->url, "POST",
                               "/2015-03-31/functions/dog-breed/invocations?Qualifier=live", h,
                               b->body, strlen(b->body), &out, NULL, NULL, NULL, 0);
    json_t *j = out ? json_loads(out, 0, NULL) : NULL;
    snprintf(b->reason, sizeof b->reason, "%s", str(j, "Reason"));
    json_decref(j);
    free(out);
    return NULL;
}

typedef struct loader {
    demo *d;
    const char *body;
    size_t len;
    volatile bool *stop;
    long ok, failed;
} loader;

static void *load_one(void *arg)
{
    loader *l = arg;
    const char *h[] = {"Content-Type: application/json", "Accept: application/json", NULL};
    while (!*l->stop) {
        char *out = NULL;
        long st = kn_cli_request(l->d->url, "POST", "/endpoints/dog-ep/invocations", h, l->body,
                                 l->len, &out, NULL, NULL, NULL, 0);
        free(out);
        if (st == 200)
            l->ok++;
        else
            l->failed++;
    }
    return NULL;
}

static int instances(demo *d)
{
    json_t *j = call(d, "SageMaker.DescribeEndpoint", json_pack("{s:s}", "EndpointName", "dog-ep"));
    json_t *v = json_array_get(json_object_get(j, "ProductionVariants"), 0);
    int n = (int)json_integer_value(json_object_get(v, "CurrentInstanceCount"));
    json_decref(j);
    return n;
}

static int load(demo *d, int seconds)
{
    char *img = b64_file(d->photo, 6 << 20);
    if (!img)
        return 1;
    size_t len = strlen(img) + 32;
    char *ev = malloc(len);
    snprintf(ev, len, "{\"image\":\"%s\"}", img);
    free(img);
    if (d->functions) {
        step_begin(d, "7. Load burst: 10 simultaneous invocations of dog-breed:live (reserved "
                      "concurrency 5)");
        enum { N = 10 };
        burst b[N];
        pthread_t t[N];
        pthread_barrier_t go;
        pthread_barrier_init(&go, NULL, N);
        for (int i = 0; i < N; i++) {
            b[i] = (burst){.d = d, .go = &go, .body = ev};
            pthread_create(&t[i], NULL, burst_one, &b[i]);
        }
        int ok = 0, thr = 0, other = 0;
        char reason[128] = "";
        for (int i = 0; i < N; i++) {
            pthread_join(t[i], NULL);
            if (b[i].status == 200)
                ok++;
            else if (b[i].status == 429) {
                thr++;
                if (!reason[0])
                    snprintf(reason, sizeof reason, "%s", b[i].reason);
            } else
                other++;
        }
        pthread_barrier_destroy(&go);
        say(d, "%d answered, %d throttled (TooManyRequestsException%s%s%s), %d other errors", ok,
            thr, reason[0] ? ", Reason " : "", reason, reason[0] ? "" : "", other);
    }
    step_begin(d, "8. Endpoint load: 2 clients invoking dog-ep back to back");
    printf("(the server's clock runs %dx faster: %d s here are %d s = %.1f minutes of the "
           "daemon's time; a scale-out needs 3 one-minute datapoints above the target)\n",
           CLOCK_RATE, seconds, seconds * CLOCK_RATE, seconds * CLOCK_RATE / 60.0);
    volatile bool stop = false;
    loader l[2];
    pthread_t t[2];
    for (int i = 0; i < 2; i++) {
        l[i] = (loader){.d = d, .body = ev, .len = strlen(ev), .stop = &stop};
        pthread_create(&t[i], NULL, load_one, &l[i]);
    }
    double end = now_s() + seconds;
    int last = 1;
    while (now_s() < end) {
        sleep_ms(1000);
        int n = instances(d);
        if (n && n != last) {
            say(d, "dog-ep now has %d instance%s", n, n == 1 ? "" : "s");
            last = n;
        }
    }
    stop = true;
    long ok = 0, failed = 0;
    for (int i = 0; i < 2; i++) {
        pthread_join(t[i], NULL);
        ok += l[i].ok;
        failed += l[i].failed;
    }
    free(ev);
    say(d, "%ld invocations answered, %ld failed, %.0f per second", ok, failed,
        (double)ok / seconds);
    return 0;
}

static int report(demo *d)
{
    step_begin(d, "9. What happened: scaling activities, latency, cost");
    json_t *o = call(d, "AnyScaleFrontendService.DescribeScalingActivities",
                     json_pack("{s:s, s:s, s:i}", "ServiceNamespace", "sagemaker", "ResourceId",
                               "endpoint/dog-ep/variant/AllTraffic", "MaxResults", 50));
    size_t i, n = json_array_size(json_object_get(o, "ScalingActivities"));
    json_t *a;
    if (!n)
        say(d, "no scaling activity");
    for (i = n; i-- > 0;) {
        a = json_array_get(json_object_get(o, "ScalingActivities"), i);
        say(d, "scaling: %s %s (%s)", str(a, "StatusCode"), str(a, "Description"),
            str(a, "Cause"));
    }
    json_decref(o);
    size_t len = 0;
    char *m = kn_cli_get(d->url, "/kennel/endpoints/dog-ep/metrics?minutes=60", &len);
    json_t *j = m ? json_loadb(m, len, 0, NULL) : NULL;
    free(m);
    json_t *series = json_object_get(json_object_get(j, "Variants"), "AllTraffic");
    const kn_instance_type *it = kn_instance_type_find("ml.m5.large");
    double inst_minutes = 0, p50 = 0, p99 = 0;
    long invocations = 0;
    json_array_foreach(series, i, a)
    {
        long k = (long)json_integer_value(json_object_get(a, "Invocations"));
        inst_minutes += (double)json_integer_value(json_object_get(a, "InstanceCount"));
        invocations += k;
        if (k > 0) {
            double x = json_number_value(json_object_get(a, "LatencyP50"));
            double y = json_number_value(json_object_get(a, "LatencyP99"));
            say(d, "minute %zu: %ld invocations, %lld instance(s), p50 %.1f ms, p99 %.1f ms", i,
                k, (long long)json_integer_value(json_object_get(a, "InstanceCount")),
                x / 1000, y / 1000);
            if (y > p99)
                p99 = y;
            if (x > p50)
                p50 = x;
        }
    }
    say(d, "latency (per-minute p50 / p99, worst minute): p50 %.1f ms, p99 %.1f ms over %ld "
           "invocations",
        p50 / 1000, p99 / 1000, invocations);
    if (it)
        say(d, "cost: %.0f instance-minutes of %s at $%.3f/hour = $%.4f (daemon clock; what the "
               "same would cost on AWS)",
            inst_minutes, it->name, it->usd_per_hour, inst_minutes * it->usd_per_hour / 60);
    json_decref(j);
    return 0;
}

/* ------------------------------------------------------------- command */

static int usage(FILE *f)
{
    fprintf(f,
            "usage: kennel demo [--data DIR [--backbone FILE | --arch A --weights FILE]]\n"
            "                   [--download] [--port N] [--keep DIR] [--load-seconds S]\n"
            "\n"
            "The reference project's whole workflow against a temporary kennel server:\n"
            "a tuning job (learning_rate 0.001..0.1, batch_size 32..512, 2 jobs, 2 in\n"
            "parallel), the best configuration retrained, endpoint dog-ep with autoscaling\n"
            "1..3, a least-privilege role, the dog-breed function with reserved 5 and\n"
            "provisioned 2 concurrency, one invocation with a photo, a load burst, and what\n"
            "happened. The server's clock runs %dx faster so that autoscaling shows.\n"
            "\n"
            "  --data DIR        an ImageFolder data set (DIR/CLASS/*.jpg or DIR/train/...)\n"
            "  --backbone FILE   a TFLite/safetensors backbone for --data\n"
            "  --arch A --weights FILE   a torchvision architecture and its weights\n"
            "  --download        fetch the reference dogImages and ResNet-50 weights first\n"
            "  --port N          the server's port (default: a free one)\n"
            "  --keep DIR        work in DIR (new or empty) and keep it afterwards\n"
            "  --load-seconds S  how long the endpoint load lasts (default 25)\n"
            "\n"
            "Without --data: ../shared/data (pets-cats, MobileNet) when present, else a\n"
            "synthetic data set and random weights, said so.\n"
            "\n"
            "--download keeps what it fetched in $XDG_CACHE_HOME/kennel/downloads (else\n"
            "~/.cache/kennel/downloads) and takes it from there next time; the environment\n"
            "variables KENNEL_RESNET50_URL and KENNEL_DOGIMAGES_URL point it at a mirror.\n",
            CLOCK_RATE);
    return f == stdout ? 0 : 2;
}

static int prepare_root(demo *d, const char *keep)
{
    if (keep) {
        if (mkdir(keep, 0700) != 0 && errno != EEXIST) {
            fprintf(stderr, "kennel demo: --keep %s: cannot create it: %s; give a directory "
                            "you can write\n",
                    keep, strerror(errno));
            return 2;
        }
        struct stat st;
        if (stat(keep, &st) != 0 || !S_ISDIR(st.st_mode)) {
            fprintf(stderr, "kennel demo: --keep %s is not a directory\n", keep);
            return 2;
        }
        if (st.st_uid != geteuid()) {
            fprintf(stderr, "kennel demo: --keep %s is owned by uid %u, not you (uid %u): "
                            "give a directory of your own\n",
                    keep, (unsigned)st.st_uid, (unsigned)geteuid());
            return 2;
        }
        if (access(keep, W_OK | X_OK) != 0) {
            fprintf(stderr, "kennel demo: --keep %s is not writable: chmod u+w it or give "
                            "another directory\n",
                    keep);
            return 2;
        }
        DIR *dp = opendir(keep);
        struct dirent *e;
        int n = 0;
        while (dp && (e = readdir(dp)))
            n += e->d_name[0] != '.' || (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."));
        if (dp)
            closedir(dp);
        if (n) {
            fprintf(stderr, "kennel demo: --keep %s is not empty: give a new or empty "
                            "directory\n",
                    keep);
            return 2;
        }
        if (!realpath(keep, d->root))
            return 2;
        d->keep = true;
        return 0;
    }
    const char *tmp = getenv("TMPDIR");
    if (!tmp || !*tmp)
        tmp = "/tmp";
    snprintf(d->root, sizeof d->root, "%s/kennel-demo-XXXXXX", tmp);
    if (!mkdtemp(d->root)) {
        fprintf(stderr, "kennel demo: cannot make a temporary directory in %s: %s; set TMPDIR "
                        "to a directory you can write, or use --keep DIR\n",
                tmp, strerror(errno));
        return 2;
    }
    return 0;
}

int kn_cli_demo(int argc, char **argv)
{
    enum { O_DATA = 256, O_BACKBONE, O_ARCH, O_WEIGHTS, O_DOWNLOAD, O_PORT, O_KEEP, O_LOAD };
    static const struct option opts[] = {
        {"data", required_argument, NULL, O_DATA},
        {"backbone", required_argument, NULL, O_BACKBONE},
        {"arch", required_argument, NULL, O_ARCH},
        {"weights", required_argument, NULL, O_WEIGHTS},
        {"download", no_argument, NULL, O_DOWNLOAD},
        {"port", required_argument, NULL, O_PORT},
        {"keep", required_argument, NULL, O_KEEP},
        {"load-seconds", required_argument, NULL, O_LOAD},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    const char *data = NULL, *backbone = NULL, *arch = NULL, *weights = NULL, *keep = NULL;
    bool download = false;
    long port = 0, load_s = 25;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        char *end;
        switch (c) {
        case O_DATA: data = optarg; break;
        case O_BACKBONE: backbone = optarg; break;
        case O_ARCH: arch = optarg; break;
        case O_WEIGHTS: weights = optarg; break;
        case O_DOWNLOAD: download = true; break;
        case O_KEEP: keep = optarg; break;
        case O_PORT:
        case O_LOAD:
            errno = 0;
            long v = strtol(optarg, &end, 10);
            if (errno || *end || end == optarg || v < (c == O_PORT ? 1 : 1) ||
                v > (c == O_PORT ? 65535 : 600)) {
                fprintf(stderr, "kennel demo: --%s '%s' is out of range\n",
                        c == O_PORT ? "port" : "load-seconds", optarg);
                return 2;
            }
            *(c == O_PORT ? &port : &load_s) = v;
            break;
        case 'h': return usage(stdout);
        default: return usage(stderr);
        }
    }
    if (optind < argc)
        return usage(stderr);
    if ((arch && !weights) || (!arch && weights)) {
        fprintf(stderr, "kennel demo: --arch and --weights go together\n");
        return 2;
    }
    if ((backbone || arch) && !data) {
        fprintf(stderr, "kennel demo: --backbone/--arch need --data\n");
        return 2;
    }
    if (port && !port_free((int)port)) {
        fprintf(stderr, "kennel demo: port %ld on 127.0.0.1 is busy: pick another with --port N "
                        "or leave --port out for a free one\n",
                port);
        return 2;
    }
    demo d = {0};
    d.t0 = d.step_t0 = now_s();
    ssize_t n = readlink("/proc/self/exe", d.exe, sizeof d.exe - 1);
    if (n <= 0) {
        fprintf(stderr, "kennel demo: cannot find this executable (/proc/self/exe): is /proc "
                        "mounted?\n");
        return 1;
    }
    d.exe[n] = 0;
    snprintf(d.exe_dir, sizeof d.exe_dir, "%s", d.exe);
    *strrchr(d.exe_dir, '/') = 0;
    int rc = prepare_root(&d, keep);
    if (rc)
        return rc;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    signal(SIGPIPE, SIG_IGN);
    printf("kennel demo: the reference project's workflow against a temporary kennel server\n");
    step_begin(&d, "0. Data, backbone and server");
    rc = pick_data(&d, data, backbone, arch, weights, download);
    if (rc)
        goto out;
    if (!is_file(d.photo))
        pick_photo(&d);
    say(&d, "data: %s", d.what);
    if ((rc = start_server(&d, (int)port)))
        goto out;
    say(&d, "server: %s, data directory %s%s, a fresh random administrator key", d.url, d.root,
        d.keep ? " (kept: --keep)" : " (removed at the end)");
    say(&d, "clock: the server's clock runs %dx faster than real time (--clock-rate %d) so "
            "that autoscaling cooldowns and per-minute metrics show within the run",
        CLOCK_RATE, CLOCK_RATE);
    say(&d, "console: %s/console/ (open it while the demo runs)", d.url);
    char best[256];
    rc = 1;
    if (tune(&d, best, sizeof best) || retrain(&d, best))
        goto out;
    read_labels(&d);
    if (deploy(&d) || role(&d) || function(&d) || invoke(&d) || load(&d, (int)load_s) ||
        report(&d))
        goto out;
    rc = 0;
out:
    if (d.server > 0) {
        printf("\n== Stopping the server%s\n", d.keep ? "" : " and removing its directory");
        stop_server(&d);
    }
    if (!d.keep && d.root[0])
        rm_rf(d.root);
    else if (d.keep)
        printf("kept %s (server log, registry, jobs, models)\n", d.root);
    for (int i = 0; i < d.n_labels; i++)
        free(d.labels[i]);
    free(d.labels);
    curl_global_cleanup();
    printf("%s in %.1f s\n", rc ? "kennel demo FAILED" : "kennel demo done", now_s() - d.t0);
    return rc;
}
