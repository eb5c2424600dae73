/* The router: InvokeEndpoint to an endpoint's instances. A variant is
 * chosen by the target-variant header or by weight, then its ready instance
 * with the fewest requests in flight; the body goes over a pooled,
 * kept-alive curl handle. A transport failure (the instance died) marks the
 * instance suspect for the health thread and the request is retried once
 * on another instance. Thread-safe: the fleet lock is held only to choose
 * and to count, never during the request.
 */
#include "fleet_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void kn_invoke_result_init(kn_invoke_result *r)
{
    memset(r, 0, sizeof *r);
    kn_buf_init(&r->body, MAX_RESPONSE);
}

void kn_invoke_result_deinit(kn_invoke_result *r)
{
    kn_buf_deinit(&r->body);
}

/* ---------------------------------------------------------------- router */

static size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
    kn_invoke_result *r = ud;
    return kn_buf_append(&r->body, p, sz * n) == KN_OK ? sz * n : 0;
}

static void header_value(const char *line, size_t len, const char *name, char *out, size_t n)
{
    size_t k = strlen(name);
    if (len <= k + 1 || strncasecmp(line, name, k) != 0 || line[k] != ':')
        return;
    const char *v = line + k + 1;
    size_t vl = len - k - 1;
    while (vl && (*v == ' ' || *v == '\t'))
        v++, vl--;
    while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' '))
        vl--;
    if (vl >= n)
        vl = n - 1;
    memcpy(out, v, vl);
    out[vl] = '\0';
}

static size_t on_header(char *p, size_t sz, size_t n, void *ud)
{
    kn_invoke_result *r = ud;
    header_value(p, sz * n, "Content-Type", r->content_type, sizeof r->content_type);
    header_value(p, sz * n, "X-Amzn-SageMaker-Custom-Attributes", r->custom_attributes,
                 sizeof r->custom_attributes);
    return sz * n;
}

/* Picks the variant (by target or weight) and its least-loaded ready
 * instance, skipping `exclude`. f->mu held. */
static instance *pick(kn_fleet *f, fendpoint *ep, const char *target, int exclude, int *vindex)
{
    double total = 0;
    for (int i = 0; i < ep->rec.n_variants; i++) {
        if (target && strcmp(ep->rec.variants[i].variant_name, target) != 0)
            continue;
        if (kn_fleet__count(&ep->vars[i], true) > 0)
            total += ep->rec.variants[i].desired_weight > 0 ? ep->rec.variants[i].desired_weight
                                                             : 1e-9;
    }
    if (total <= 0)
        return NULL;
    double x = kn_rng_uniform(&f->rng) * total;
    int chosen = -1;
    for (int i = 0; i < ep->rec.n_variants; i++) {
        if (target && strcmp(ep->rec.variants[i].variant_name, target) != 0)
            continue;
        if (kn_fleet__count(&ep->vars[i], true) == 0)
            continue;
        chosen = i;
        double w = ep->rec.variants[i].desired_weight > 0 ? ep->rec.variants[i].desired_weight
                                                          : 1e-9;
        if (x < w)
            break;
        x -= w;
    }
    if (chosen < 0)
        return NULL;
    fvariant *v = &ep->vars[chosen];
    instance *best = NULL;
    int n_ready = 0;
    for (instance *in = v->insts; in; in = in->next)
        if (in->state == INST_READY)
            n_ready++;
    /* start the scan at a rotating offset so equal loads share the work */
    unsigned start = n_ready ? v->rr++ % (unsigned)n_ready : 0;
    for (int pass = 0; pass < 2; pass++) {
        /* pass 0: ready instances from `start` on; pass 1: those before it */
        unsigned idx = 0;
        for (instance *in = v->insts; in; in = in->next) {
            if (in->state != INST_READY)
                continue;
            unsigned my = idx++;
            if ((pass == 0) != (my >= start))
                continue;
            if (in->broken || in->id == exclude)
                continue;
            if (!best || in->outstanding < best->outstanding)
                best = in;
        }
    }
    *vindex = chosen;
    return best;
}

kn_status kn_fleet_invoke(kn_fleet *f, const kn_invoke_request *rq, kn_invoke_result *out,
                          kn_err *e)
{
    int exclude = 0;
    for (int attempt = 0; attempt < 2; attempt++) {
        pthread_mutex_lock(&f->mu);
        fendpoint *ep = kn_fleet__find(f, rq->endpoint);
        if (!ep || ep->deleting) {
            pthread_mutex_unlock(&f->mu);
            return kn_err_set(e, KN_NOT_FOUND, "Endpoint %s of account %s not found.",
                              rq->endpoint, kn_registry_account(f->reg));
        }
        if (rq->target_variant) {
            bool found = false;
            for (int i = 0; i < ep->rec.n_variants; i++)
                found = found || strcmp(ep->rec.variants[i].variant_name, rq->target_variant) == 0;
            if (!found) {
                pthread_mutex_unlock(&f->mu);
                return kn_err_set(e, KN_INVALID,
                                  "Endpoint %s does not have a variant named %s.", rq->endpoint,
                                  rq->target_variant);
            }
        }
        int vindex = 0;
        uint64_t t0 = kn_now_ns();
        instance *in = pick(f, ep, rq->target_variant, exclude, &vindex);
        if (!in) {
            /* between instances (a replacement is starting): wait for one,
             * unless the endpoint is not serving at all */
            struct timespec until;
            kn_fleet__deadline_in(&until, NO_INSTANCE_WAIT_MS);
            f->invoke_waiters++;
            while (!in && !f->stopping && !ep->deleting &&
                   (strcmp(ep->rec.status, "InService") == 0 ||
                    strcmp(ep->rec.status, "SystemUpdating") == 0 ||
                    strcmp(ep->rec.status, "Updating") == 0)) {
                if (pthread_cond_timedwait(&f->changed, &f->mu, &until) == ETIMEDOUT)
                    break;
                in = pick(f, ep, rq->target_variant, exclude, &vindex);
            }
            f->invoke_waiters--;
        }
        if (!in) {
            kn_status s;
            if (strcmp(ep->rec.status, "Creating") == 0 || strcmp(ep->rec.status, "Failed") == 0)
                s = kn_err_set(e, KN_INVALID,
                               "Endpoint %s is %s; it can be invoked once it is InService.",
                               ep->rec.name, ep->rec.status);
            else
                s = kn_err_set(e, KN_IO, "No instance of endpoint %s could take the request.",
                               ep->rec.name);
            pthread_mutex_unlock(&f->mu);
            return s;
        }
        in->outstanding++;
        fvariant *var = &ep->vars[vindex]; /* lives while `in` is outstanding */
        int port = in->port, id = in->id;
        snprintf(out->variant, sizeof out->variant, "%s", ep->rec.variants[vindex].variant_name);
        pthread_mutex_unlock(&f->mu);

        CURL *h = kn_fleet__pool_get(f);
        CURLcode rc = CURLE_FAILED_INIT;
        long code = 0;
        double model_us = 0;
        out->body.len = 0;
        out->content_type[0] = out->custom_attributes[0] = '\0';
        if (h) {
            char url[64], ct[1200], acc[1200], ca[1200];
            snprintf(url, sizeof url, "http://127.0.0.1:%d/invocations", port);
            struct curl_slist *hd = NULL;
            snprintf(ct, sizeof ct, "Content-Type: %s",
                     rq->content_type ? rq->content_type : "application/octet-stream");
            hd = curl_slist_append(hd, ct);
            if (rq->accept) {
                snprintf(acc, sizeof acc, "Accept: %s", rq->accept);
                hd = curl_slist_append(hd, acc);
            }
            if (rq->custom_attributes) {
                snprintf(ca, sizeof ca, "X-Amzn-SageMaker-Custom-Attributes: %s",
                         rq->custom_attributes);
                hd = curl_slist_append(hd, ca);
            }
            hd = curl_slist_append(hd, "Expect:");
            curl_easy_setopt(h, CURLOPT_URL, url);
            /* an instance is on loopback: never through a proxy named in the
             * environment (and no proxy variables looked up per request) */
            curl_easy_setopt(h, CURLOPT_PROXY, "");
            curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
            curl_easy_setopt(h, CURLOPT_POST, 1L);
            curl_easy_setopt(h, CURLOPT_POSTFIELDS, rq->body_len ? (const char *)rq->body : "");
            curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)rq->body_len);
            curl_easy_setopt(h, CURLOPT_HTTPHEADER, hd);
            curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)f->p.invoke_timeout_ms);
            curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 2000L);
            curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
            curl_easy_setopt(h, CURLOPT_WRITEDATA, out);
            curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
            curl_easy_setopt(h, CURLOPT_HEADERDATA, out);
            rc = curl_easy_perform(h);
            if (rc == CURLE_OK)
                curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
            curl_off_t us = 0;
            curl_easy_getinfo(h, CURLINFO_TOTAL_TIME_T, &us);
            model_us = (double)us;
            curl_slist_free_all(hd);
        }
        kn_fleet__pool_put(f, h);

        bool transport = rc != CURLE_OK && rc != CURLE_OPERATION_TIMEDOUT &&
                         rc != CURLE_WRITE_ERROR;
        pthread_mutex_lock(&f->mu);
        if (rc == CURLE_OK || rc == CURLE_OPERATION_TIMEDOUT)
            kn_fleet__record(f, var, rc == CURLE_OK ? (int)code : 0, model_us,
                   (double)(kn_now_ns() - t0) / 1000.0);
        in->outstanding--;
        if (rc == CURLE_OK)
            in->served++;
        if (transport)
            in->broken = true;
        /* Wake the supervisor and health threads only when this completion
         * matters to them: a suspect instance, a stopping or dead one (or
         * one a scale-in waits for) going idle, or a request waiting for an
         * instance. Waking them on every request made each one run a pass
         * under f->mu: most of the router's cost at high request rates. */
        if (transport || f->invoke_waiters > 0 ||
            (in->outstanding == 0 &&
             (in->state != INST_READY || kn_fleet__count(var, false) > var->rec->desired_count)))
            pthread_cond_broadcast(&f->changed);
        pthread_mutex_unlock(&f->mu);

        if (rc == CURLE_OK) {
            out->status = (int)code;
            return KN_OK;
        }
        if (rc == CURLE_OPERATION_TIMEDOUT)
            return kn_err_set(e, KN_TIMEOUT,
                              "Your invocation timed out while waiting for a response from "
                              "container %s.",
                              out->variant);
        if (rc == CURLE_WRITE_ERROR)
            return kn_err_set(e, KN_TOO_LARGE, "The instance's response is larger than %zu bytes.",
                              MAX_RESPONSE);
        kn_log(KN_LOG_WARN, "endpoint %s: instance %d: %s%s", rq->endpoint, id,
               curl_easy_strerror(rc), attempt == 0 ? "; retrying on another instance" : "");
        exclude = id;
        if (attempt == 1)
            return kn_err_set(e, KN_IO, "The instance failed to answer: %s.",
                              curl_easy_strerror(rc));
    }
    return kn_err_set(e, KN_IO, "no instance answered");
}
