/* kennel function: Lambda-style functions on a running kennel server,
 * without AWS tooling.
 *
 *   package DIR [--out ZIP]            zip a function directory (bootstrap kept executable)
 *   create NAME (--zip ZIP | --dir DIR) [--timeout S] [--memory MB] [--env K=V]...
 *          [--role ARN] [--publish]
 *   invoke NAME[:QUALIFIER] [--payload JSON] [--tail]
 *   logs NAME
 *   concurrency NAME (N | --delete)
 *   provisioned NAME QUALIFIER (N [--wait] | --delete)
 *
 * Requests are Lambda's REST-JSON ones, sent to --endpoint-url or
 * $KENNEL_ENDPOINT (default http://127.0.0.1:8080), signed like the other
 * client commands (kn_cli_sign). Exit codes: 0 ok, 1 the daemon refused or
 * could not be reached, 2 bad usage. */
#include "cli.h"

#include <archive.h>
#include <archive_entry.h>
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

typedef struct fbuf {
    char *data;
    size_t len;
} fbuf;

static size_t on_data(char *p, size_t sz, size_t n, void *ud)
{
    fbuf *b = ud;
    size_t k = sz * n;
    if (b->len + k > (size_t)80 << 20)
        return 0;
    char *g = realloc(b->data, b->len + k + 1);
    if (!g)
        return 0;
    b->data = g;
    memcpy(b->data + b->len, p, k);
    b->len += k;
    b->data[b->len] = 0;
    return k;
}

typedef struct hdrs {
    char function_error[64];
    char log_result[8192];
} hdrs;

static size_t on_header(char *p, size_t sz, size_t n, void *ud)
{
    hdrs *h = ud;
    size_t len = sz * n;
    const char *names[] = {"X-Amz-Function-Error:", "X-Amz-Log-Result:"};
    char *dst[] = {h->function_error, h->log_result};
    size_t cap[] = {sizeof h->function_error, sizeof h->log_result};
    for (int i = 0; i < 2; i++) {
        size_t k = strlen(names[i]);
        if (len > k && strncasecmp(p, names[i], k) == 0) {
            const char *v = p + k;
            size_t vl = len - k;
            while (vl && (*v == ' '))
                v++, vl--;
            while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n'))
                vl--;
            snprintf(dst[i], cap[i], "%.*s", (int)vl, v);
        }
    }
    return len;
}

static const char *base_url(const char *url)
{
    if (!url)
        url = getenv("KENNEL_ENDPOINT");
    return url && *url ? url : "http://127.0.0.1:8080";
}

/* One request; returns the HTTP status (0 if unreachable). */
static long request(const char *base, const char *method, const char *path,
                    const char *const *headers, const void *body, size_t len, fbuf *out,
                    hdrs *h)
{
    CURL *c = curl_easy_init();
    if (!c)
        return 0;
    char url[2048];
    snprintf(url, sizeof url, "%s%s", base, path);
    struct curl_slist *hd = curl_slist_append(NULL, "Expect:");
    for (const char *const *x = headers; x && *x; x++)
        hd = curl_slist_append(hd, *x);
    static char sig[4][2200];
    int n_sig = 0;
    if (!kn_cli_sign(base, method, path, headers, body, len, sig, &n_sig)) {
        curl_slist_free_all(hd);
        curl_easy_cleanup(c);
        return 0;
    }
    for (int i = 0; i < n_sig; i++)
        hd = curl_slist_append(hd, sig[i]);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, (const char *)body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hd);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
    if (h) {
        curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
        curl_easy_setopt(c, CURLOPT_HEADERDATA, h);
    }
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 960L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    CURLcode rc = curl_easy_perform(c);
    long status = 0;
    if (rc == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    else
        fprintf(stderr, "kennel: cannot reach the kennel server at %s: %s\n", base,
                curl_easy_strerror(rc));
    curl_slist_free_all(hd);
    curl_easy_cleanup(c);
    return status;
}

static int report(long status, fbuf *b, const char *op)
{
    if (status >= 200 && status < 300)
        return 0;
    if (!status)
        return 1;
    json_t *j = b->data ? json_loads(b->data, 0, NULL) : NULL;
    const char *type = json_string_value(json_object_get(j, "__type"));
    const char *msg = json_string_value(json_object_get(j, "message"));
    fprintf(stderr, "kennel function %s: %s (HTTP %ld): %s\n", op, type ? type : "error", status,
            msg ? msg : (b->data ? b->data : ""));
    json_decref(j);
    return 1;
}

/* ------------------------------------------------------------ package */

static int add_tree(struct archive *a, const char *root, const char *rel)
{
    char path[4096];
    snprintf(path, sizeof path, "%s%s%s", root, rel[0] ? "/" : "", rel);
    DIR *d = opendir(path);
    if (!d) {
        fprintf(stderr, "kennel function package: cannot read %s: %s\n", path, strerror(errno));
        return -1;
    }
    struct dirent *de;
    int rc = 0;
    while (!rc && (de = readdir(d))) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        char r2[4096], full[8192];
        snprintf(r2, sizeof r2, "%s%s%s", rel, rel[0] ? "/" : "", de->d_name);
        snprintf(full, sizeof full, "%s/%s", root, r2);
        struct stat st;
        if (stat(full, &st) != 0)
            continue;
        if (S_ISDIR(st.st_mode)) {
            rc = add_tree(a, root, r2);
            continue;
        }
        if (!S_ISREG(st.st_mode))
            continue;
        struct archive_entry *e = archive_entry_new();
        archive_entry_set_pathname(e, r2);
        archive_entry_set_size(e, st.st_size);
        archive_entry_set_filetype(e, AE_IFREG);
        archive_entry_set_perm(e, st.st_mode & 0755);
        archive_entry_set_mtime(e, st.st_mtime, 0);
        if (archive_write_header(a, e) != ARCHIVE_OK) {
            fprintf(stderr, "kennel function package: %s: %s\n", r2, archive_error_string(a));
            rc = -1;
        }
        int fd = rc ? -1 : open(full, O_RDONLY | O_CLOEXEC);
        char buf[65536];
        ssize_t n;
        while (fd >= 0 && (n = read(fd, buf, sizeof buf)) > 0)
            archive_write_data(a, buf, (size_t)n);
        if (fd >= 0)
            close(fd);
        archive_entry_free(e);
    }
    closedir(d);
    return rc;
}

static int package(const char *dir, const char *out)
{
    char bs[4096];
    snprintf(bs, sizeof bs, "%s/bootstrap", dir);
    if (access(bs, X_OK) != 0)
        fprintf(stderr, "kennel function package: warning: %s is missing or not executable\n",
                bs);
    struct archive *a = archive_write_new();
    archive_write_set_format_zip(a);
    if (archive_write_open_filename(a, out) != ARCHIVE_OK) {
        fprintf(stderr, "kennel function package: cannot write %s: %s\n", out,
                archive_error_string(a));
        archive_write_free(a);
        return 1;
    }
    int rc = add_tree(a, dir, "");
    archive_write_close(a);
    archive_write_free(a);
    if (rc)
        return 1;
    printf("%s\n", out);
    return 0;
}

static bool read_all(const char *path, fbuf *b)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "kennel function: cannot read %s: %s\n", path, strerror(errno));
        return false;
    }
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        if (on_data(buf, 1, n, b) != n) {
            fclose(f);
            return false;
        }
    fclose(f);
    return true;
}

/* ------------------------------------------------------------- verbs */

static int usage_to(FILE *f, int rc)
{
    fprintf(f,
            "usage: kennel function package DIR [--out ZIP]\n"
            "       kennel function create NAME (--zip ZIP | --dir DIR) [--timeout S] "
            "[--memory MB]\n"
            "                              [--env K=V]... [--role ARN] [--publish]\n"
            "       kennel function invoke NAME[:QUALIFIER] [--payload JSON] [--tail]\n"
            "       kennel function logs NAME\n"
            "       kennel function concurrency NAME (N | --delete)\n"
            "       kennel function provisioned NAME QUALIFIER (N [--wait] | --delete)\n"
            "options: --endpoint-url URL (default $KENNEL_ENDPOINT or http://127.0.0.1:8080)\n"
            "\n"
            "Lambda-style functions on a kennel server: package zips a directory whose\n"
            "executable bootstrap speaks the Lambda Runtime API; create uploads it\n"
            "(CreateFunction); invoke calls it and prints the response (--tail: the log\n"
            "tail too); logs prints its log; concurrency sets reserved concurrency;\n"
            "provisioned keeps N environments of a version or alias ready.\n");
    return rc;
}

static int usage(void)
{
    return usage_to(stderr, 2);
}

int kn_cli_function(int argc, char **argv)
{
    if (argc < 2)
        return usage();
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return usage_to(stdout, 0);
    const char *verb = argv[1];
    const char *url = NULL, *zip = NULL, *dir = NULL, *out = NULL, *payload = NULL,
               *role = "arn:aws:iam::123456789012:role/kennel-function";
    long timeout = 0, memory = 0;
    bool publish = false, tail = false, del = false, wait = false;
    const char *pos[4] = {0};
    int npos = 0;
    json_t *vars = json_object();
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define OPT(name) (strcmp(a, name) == 0 && v && (i++, 1))
        if (OPT("--endpoint-url"))
            url = v;
        else if (OPT("--zip"))
            zip = v;
        else if (OPT("--dir"))
            dir = v;
        else if (OPT("--out"))
            out = v;
        else if (OPT("--payload"))
            payload = v;
        else if (OPT("--role"))
            role = v;
        else if (OPT("--timeout"))
            timeout = strtol(v, NULL, 10);
        else if (OPT("--memory"))
            memory = strtol(v, NULL, 10);
        else if (OPT("--env")) {
            const char *eq = strchr(v, '=');
            if (!eq) {
                fprintf(stderr, "kennel function: --env '%s' is not K=V\n", v);
                json_decref(vars);
                return 2;
            }
            char k[256];
            snprintf(k, sizeof k, "%.*s", (int)(eq - v), v);
            json_object_set_new(vars, k, json_string(eq + 1));
        } else if (strcmp(a, "--publish") == 0)
            publish = true;
        else if (strcmp(a, "--tail") == 0)
            tail = true;
        else if (strcmp(a, "--delete") == 0)
            del = true;
        else if (strcmp(a, "--wait") == 0)
            wait = true;
        else if (a[0] == '-' && a[1] == '-') {
            fprintf(stderr, "kennel function %s: unknown or incomplete option '%s'\n", verb, a);
            json_decref(vars);
            return 2;
        } else if (npos < 4)
            pos[npos++] = a;
#undef OPT
    }
    const char *base = base_url(url);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    fbuf b = {0};
    int rc = 2;
    char path[1024];
    if (strcmp(verb, "package") == 0 && npos == 1) {
        char def[4096];
        snprintf(def, sizeof def, "%s.zip", pos[0]);
        while (strlen(def) > 5 && def[strlen(def) - 5] == '/')
            memmove(&def[strlen(def) - 5], ".zip", 5);
        rc = package(pos[0], out ? out : def);
    } else if (strcmp(verb, "create") == 0 && npos == 1 && (zip || dir)) {
        char tmpzip[] = "/tmp/kennel-fn-XXXXXX";
        if (dir) {
            int fd = mkstemp(tmpzip);
            if (fd < 0 || (close(fd), package(dir, tmpzip) != 0)) {
                rc = 1;
                goto out;
            }
            zip = tmpzip;
        }
        fbuf z = {0};
        bool ok = read_all(zip, &z);
        if (dir)
            unlink(tmpzip);
        if (!ok) {
            rc = 1;
            goto out;
        }
        char *b64 = malloc(4 * ((z.len + 2) / 3) + 1);
        EVP_EncodeBlock((unsigned char *)b64, (unsigned char *)z.data, (int)z.len);
        free(z.data);
        json_t *in = json_pack("{s:s, s:s, s:s, s:s, s:{s:s}, s:b}", "FunctionName", pos[0],
                               "Runtime", "provided.al2023", "Role", role, "Handler",
                               "bootstrap", "Code", "ZipFile", b64, "Publish", publish);
        free(b64);
        if (timeout)
            json_object_set_new(in, "Timeout", json_integer(timeout));
        if (memory)
            json_object_set_new(in, "MemorySize", json_integer(memory));
        if (json_object_size(vars))
            json_object_set_new(in, "Environment", json_pack("{s:O}", "Variables", vars));
        char *text = json_dumps(in, JSON_COMPACT);
        json_decref(in);
        const char *h[] = {"Content-Type: application/json", NULL};
        long st = request(base, "POST", "/2015-03-31/functions", h, text, strlen(text), &b, NULL);
        free(text);
        rc = report(st, &b, "create");
        if (!rc)
            printf("%s\n", b.data);
    } else if (strcmp(verb, "invoke") == 0 && npos == 1) {
        char enc[512];
        CURL *c = curl_easy_init();
        char *e = curl_easy_escape(c, pos[0], 0);
        snprintf(enc, sizeof enc, "%s", e);
        curl_free(e);
        curl_easy_cleanup(c);
        snprintf(path, sizeof path, "/2015-03-31/functions/%s/invocations", enc);
        const char *h[] = {"Content-Type: application/json",
                           tail ? "X-Amz-Log-Type: Tail" : NULL, NULL};
        hdrs hd = {0};
        const char *p = payload ? payload : "{}";
        long st = request(base, "POST", path, h, p, strlen(p), &b, &hd);
        rc = report(st, &b, "invoke");
        if (!rc) {
            printf("%s\n", b.data ? b.data : "");
            if (hd.function_error[0]) {
                fprintf(stderr, "kennel function invoke: function error (%s)\n",
                        hd.function_error);
                rc = 1;
            }
            if (tail && hd.log_result[0]) {
                unsigned char *logs = malloc(strlen(hd.log_result) + 4);
                int n = EVP_DecodeBlock(logs, (unsigned char *)hd.log_result,
                                        (int)strlen(hd.log_result));
                if (n > 0) {
                    while (n > 0 && logs[n - 1] == 0)
                        n--;
                    fprintf(stderr, "%.*s", n, logs);
                }
                free(logs);
            }
        }
    } else if (strcmp(verb, "logs") == 0 && npos == 1) {
        snprintf(path, sizeof path, "/kennel/functions/%s/logs", pos[0]);
        long st = request(base, "GET", path, NULL, NULL, 0, &b, NULL);
        rc = report(st, &b, "logs");
        if (!rc && b.data)
            fputs(b.data, stdout);
    } else if (strcmp(verb, "concurrency") == 0 && npos == (del ? 1 : 2)) {
        snprintf(path, sizeof path, "/2017-10-31/functions/%s/concurrency", pos[0]);
        long st;
        if (del) {
            st = request(base, "DELETE", path, NULL, NULL, 0, &b, NULL);
        } else {
            char body[64];
            snprintf(body, sizeof body, "{\"ReservedConcurrentExecutions\":%ld",
                     strtol(pos[1], NULL, 10));
            strcat(body, "}");
            const char *h[] = {"Content-Type: application/json", NULL};
            st = request(base, "PUT", path, h, body, strlen(body), &b, NULL);
        }
        rc = report(st, &b, "concurrency");
        if (!rc)
            printf("%s\n", b.data ? b.data : "deleted");
    } else if (strcmp(verb, "provisioned") == 0 && npos == (del ? 2 : 3)) {
        snprintf(path, sizeof path,
                 "/2019-09-30/functions/%s/provisioned-concurrency?Qualifier=%s", pos[0],
                 pos[1]);
        long st;
        if (del) {
            st = request(base, "DELETE", path, NULL, NULL, 0, &b, NULL);
        } else {
            char body[64];
            snprintf(body, sizeof body, "{\"ProvisionedConcurrentExecutions\":%ld}",
                     strtol(pos[2], NULL, 10));
            const char *h[] = {"Content-Type: application/json", NULL};
            st = request(base, "PUT", path, h, body, strlen(body), &b, NULL);
        }
        rc = report(st, &b, "provisioned");
        for (int i = 0; !rc && wait && i < 600; i++) {
            free(b.data);
            memset(&b, 0, sizeof b);
            st = request(base, "GET", path, NULL, NULL, 0, &b, NULL);
            if ((rc = report(st, &b, "provisioned")))
                break;
            if (strstr(b.data, "\"READY\"") || strstr(b.data, "\"FAILED\""))
                break;
            struct timespec ts = {0, 100000000};
            nanosleep(&ts, NULL);
        }
        if (!rc)
            printf("%s\n", b.data ? b.data : "deleted");
    } else {
        rc = usage();
    }
out:
    free(b.data);
    json_decref(vars);
    curl_global_cleanup();
    return rc;
}
