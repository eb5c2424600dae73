/* Fetching images named by URL in a request body, with libcurl.
 *
 * Every bound comes from kn__fetch_params: allowed schemes (checked when the
 * URL is parsed and again by libcurl for the transfer and every redirect;
 * "file" is never followed through a redirect), a byte limit per URL (from
 * Content-Length before the body and while it arrives) and one for all URLs
 * of a request together (while they arrive), one deadline for all
 * URLs of a request (they are fetched in parallel with a multi handle) and a
 * redirect limit. libcurl's error codes become messages in one place,
 * fetch_error(). Thread-safe: each call has its own handles; curl_global_init
 * is done by kn_serve_new before any thread starts. */
#include "serve_int.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Is `scheme` (lower case) in the comma-separated list? */
static bool scheme_allowed(const char *list, const char *scheme)
{
    size_t n = strlen(scheme);
    for (const char *p = list; *p;) {
        size_t k = strcspn(p, ",");
        if (k == n && strncmp(p, scheme, n) == 0)
            return true;
        p += k;
        if (*p == ',')
            p++;
    }
    return false;
}

/* The URL shortened for messages. */
static void short_url(const char *url, char *out, size_t n)
{
    size_t len = strlen(url);
    if (len < n)
        snprintf(out, n, "%s", url);
    else
        snprintf(out, n, "%.*s...", (int)(n - 4), url);
}

static kn__serr_code parse_url(const char *url, const char *schemes, CURLU **out, kn__serr *e)
{
    *out = NULL;
    CURLU *u = curl_url();
    if (!u)
        return kn__serr_set(e, KN__SERR_INTERNAL, "out of memory");
    char shown[128];
    short_url(url, shown, sizeof shown);
    CURLUcode uc = curl_url_set(u, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME);
    if (uc) {
        curl_url_cleanup(u);
        return kn__serr_set(e, KN__SERR_INVALID_URL, "\"%s\" is not a usable URL: %s", shown,
                            curl_url_strerror(uc));
    }
    char *scheme = NULL;
    if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) || !scheme) {
        curl_url_cleanup(u);
        return kn__serr_set(e, KN__SERR_INVALID_URL, "\"%s\" has no scheme", shown);
    }
    bool ok = scheme_allowed(schemes, scheme);
    if (!ok)
        kn__serr_set(e, KN__SERR_INVALID_URL, "\"%s\": scheme \"%s\" is not allowed (allowed: %s)",
                     shown, scheme, schemes);
    curl_free(scheme);
    if (!ok) {
        curl_url_cleanup(u);
        return KN__SERR_INVALID_URL;
    }
    *out = u;
    return KN__SERR_NONE;
}

kn__serr_code kn__url_check(const char *url, const char *schemes, kn__serr *e)
{
    CURLU *u;
    kn__serr_code rc = parse_url(url, schemes, &u, e);
    curl_url_cleanup(u);
    return rc;
}

typedef struct fetch {
    int item;
    size_t *total;         /* bytes received by all transfers of the request */
    size_t max_total;
    bool over_total;       /* this transfer crossed max_total */
    CURL *h;
    CURLU *u;
    kn_buf buf;
    kn_status buf_rc;      /* why the write callback refused data */
    bool done;
    CURLcode res;
    char errbuf[CURL_ERROR_SIZE];
} fetch;

static size_t on_data(char *p, size_t size, size_t nmemb, void *ud)
{
    fetch *f = ud;
    size_t n = size * nmemb;
    if (n > f->max_total - *f->total) {
        f->over_total = true;
        return 0;
    }
    *f->total += n; /* one thread: the multi handle runs every callback here */
    kn_status rc = kn_buf_append(&f->buf, p, n);
    if (rc) {
        f->buf_rc = rc;
        return 0; /* anything but n aborts the transfer */
    }
    return n;
}

/* The one place libcurl's outcome becomes words. */
static kn__serr_code fetch_error(const kn__fetch_params *p, const fetch *f, const char *w,
                                 const char *shown, kn__serr *e)
{
    long code = 0;
    curl_easy_getinfo(f->h, CURLINFO_RESPONSE_CODE, &code);
    if (!f->done)
        return kn__serr_set(e, KN__SERR_FETCH_FAILED, "%s%s: did not finish within %ld ms", w,
                            shown, p->timeout_ms);
    if (f->buf_rc == KN_NOMEM)
        return kn__serr_set(e, KN__SERR_INTERNAL, "%s%s: out of memory", w, shown);
    if (f->over_total)
        return kn__serr_set(e, KN__SERR_FETCH_FAILED,
                            "%s%s: the request's images are larger than the %zu-byte limit "
                            "together", w, shown, p->max_total);
    if (f->buf_rc == KN_TOO_LARGE || f->res == CURLE_FILESIZE_EXCEEDED)
        return kn__serr_set(e, KN__SERR_FETCH_FAILED,
                            "%s%s: the image is larger than the %zu-byte limit", w, shown,
                            p->max_bytes);
    switch (f->res) {
    case CURLE_OK:
        break;
    case CURLE_OPERATION_TIMEDOUT:
        return kn__serr_set(e, KN__SERR_FETCH_FAILED, "%s%s: timed out after %ld ms", w, shown,
                            p->timeout_ms);
    case CURLE_TOO_MANY_REDIRECTS:
        return kn__serr_set(e, KN__SERR_FETCH_FAILED, "%s%s: more than %d redirects", w, shown,
                            p->max_redirects);
    case CURLE_UNSUPPORTED_PROTOCOL:
        return kn__serr_set(e, KN__SERR_FETCH_FAILED,
                            "%s%s: redirected to a scheme that is not allowed (allowed: %s)", w,
                            shown, p->schemes);
    default:
        return kn__serr_set(e, KN__SERR_FETCH_FAILED, "%s%s: %s", w, shown,
                            f->errbuf[0] ? f->errbuf : curl_easy_strerror(f->res));
    }
    if (code != 0 && (code < 200 || code > 299))
        return kn__serr_set(e, KN__SERR_FETCH_FAILED, "%s%s: the server answered HTTP %ld", w,
                            shown, code);
    if (f->buf.len == 0)
        return kn__serr_set(e, KN__SERR_FETCH_FAILED, "%s%s: the response body is empty", w,
                            shown);
    return KN__SERR_NONE;
}

static kn_status setup(const kn__fetch_params *p, const char *redir, fetch *f)
{
    CURL *h = f->h;
    long connect_ms = p->timeout_ms < 5000 ? p->timeout_ms : 5000;
    bool ok = curl_easy_setopt(h, CURLOPT_CURLU, f->u) == CURLE_OK &&
              curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, p->schemes) == CURLE_OK &&
              curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L) == CURLE_OK &&
              curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, p->timeout_ms) == CURLE_OK &&
              curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, connect_ms) == CURLE_OK &&
              curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)p->max_bytes) ==
                  CURLE_OK &&
              curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data) == CURLE_OK &&
              curl_easy_setopt(h, CURLOPT_WRITEDATA, f) == CURLE_OK &&
              curl_easy_setopt(h, CURLOPT_PRIVATE, f) == CURLE_OK &&
              curl_easy_setopt(h, CURLOPT_ERRORBUFFER, f->errbuf) == CURLE_OK &&
              curl_easy_setopt(h, CURLOPT_USERAGENT, "kennel-model-server") == CURLE_OK;
    if (ok && redir[0] && p->max_redirects > 0)
        ok = curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L) == CURLE_OK &&
             curl_easy_setopt(h, CURLOPT_MAXREDIRS, (long)p->max_redirects) == CURLE_OK &&
             curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, redir) == CURLE_OK;
    return ok ? KN_OK : KN_INTERNAL;
}

kn__serr_code kn__fetch_all(const kn__fetch_params *p, kn__items *items, kn__serr *e)
{
    int n = 0;
    for (int i = 0; i < items->n; i++)
        n += items->v[i].kind == KN__ITEM_URL;
    if (n == 0)
        return KN__SERR_NONE;

    /* redirects may go to any allowed scheme except file: */
    char redir[64] = "";
    if (scheme_allowed(p->schemes, "http"))
        strcat(redir, "http");
    if (scheme_allowed(p->schemes, "https"))
        strcat(redir, redir[0] ? ",https" : "https");

    kn__serr_code rc = KN__SERR_NONE;
    CURLM *m = NULL;
    size_t total = 0;
    fetch *f = calloc((size_t)n, sizeof *f);
    if (!f)
        return kn__serr_set(e, KN__SERR_INTERNAL, "out of memory");
    for (int i = 0, k = 0; i < items->n; i++)
        if (items->v[i].kind == KN__ITEM_URL) {
            f[k].item = i;
            f[k].total = &total;
            f[k].max_total = p->max_total;
            kn_buf_init(&f[k].buf, p->max_bytes);
            k++;
        }
    /* check every URL before fetching any */
    for (int k = 0; k < n && !rc; k++) {
        kn__serr ue = {0};
        if (parse_url(items->v[f[k].item].url, p->schemes, &f[k].u, &ue)) {
            char w[24] = "";
            if (items->list)
                snprintf(w, sizeof w, "[%d] ", f[k].item);
            rc = kn__serr_set(e, ue.code, "%s%s", w, ue.msg);
        }
    }
    if (rc)
        goto out;
    if (!(m = curl_multi_init())) {
        rc = kn__serr_set(e, KN__SERR_INTERNAL, "cannot create an HTTP client");
        goto out;
    }
    for (int k = 0; k < n; k++) {
        if (!(f[k].h = curl_easy_init()) || setup(p, redir, &f[k]) ||
            curl_multi_add_handle(m, f[k].h) != CURLM_OK) {
            rc = kn__serr_set(e, KN__SERR_INTERNAL, "cannot set up an HTTP client");
            goto out;
        }
    }
    /* Each transfer carries the whole timeout and all start together, so the
     * loop ends by then; the extra wall-clock check is a safety net. */
    uint64_t deadline = kn_now_ns() + (uint64_t)p->timeout_ms * 1000000u + 2000000000u;
    int running = 1;
    while (running) {
        if (curl_multi_perform(m, &running) != CURLM_OK) {
            rc = kn__serr_set(e, KN__SERR_INTERNAL, "the HTTP client failed");
            goto out;
        }
        if (!running || kn_now_ns() > deadline)
            break;
        curl_multi_poll(m, NULL, 0, 200, NULL);
    }
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(m, &left))) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        char *priv = NULL;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
        fetch *ff = (fetch *)priv;
        if (ff) {
            ff->done = true;
            ff->res = msg->data.result;
        }
    }
    for (int k = 0; k < n && !rc; k++) {
        kn__item *it = &items->v[f[k].item];
        char w[24] = "", shown[128];
        if (items->list)
            snprintf(w, sizeof w, "[%d] ", f[k].item);
        short_url(it->url, shown, sizeof shown);
        if ((rc = fetch_error(p, &f[k], w, shown, e)))
            break;
    }
    if (rc)
        goto out;
    for (int k = 0; k < n; k++) {
        kn__item *it = &items->v[f[k].item];
        free(it->url);
        it->url = NULL;
        it->kind = KN__ITEM_BYTES;
        it->data = kn_buf_take(&f[k].buf, &it->len);
        it->owned = true;
    }
out:
    for (int k = 0; k < n; k++) {
        if (f[k].h) {
            if (m)
                curl_multi_remove_handle(m, f[k].h);
            curl_easy_cleanup(f[k].h);
        }
        curl_url_cleanup(f[k].u);
        kn_buf_deinit(&f[k].buf);
    }
    curl_multi_cleanup(m);
    free(f);
    return rc;
}
