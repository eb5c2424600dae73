/* The fleet's figures and the autoscaler: per-variant counting of
 * invocations into clock minutes (persisted once a minute is over), the
 * target-tracking trackers of Application Auto Scaling policies fed at each
 * minute boundary and their decisions applied as capacity updates with
 * scaling activities, trackers rebuilt from stored minutes and activities
 * after a restart, and the Prometheus text of /metrics. Called from the
 * supervisor and router threads with f->mu held, except the public entry
 * points, which take it.
 */
#include "fleet_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* -------------------------------------------------------------- metrics */

int64_t kn_fleet__now_minute(kn_fleet *f)
{
    return (int64_t)floor(kn_clock_wall(kn_platform_clock(f->platform)) / 60.0);
}

static int lat_bucket(double us)
{
    if (!(us > 1))
        return 0;
    int b = (int)(log(us) / log(KN_LAT_GROWTH)) + 1;
    return b < KN_LAT_BUCKETS ? b : KN_LAT_BUCKETS - 1;
}

/* The q-quantile of a minute's histogram: the geometric middle of the
 * bucket holding the ceil(q * n)-th request. */
static double lat_quantile(const uint32_t *h, uint64_t n, double q)
{
    uint64_t rank = (uint64_t)ceil(q * (double)n), seen = 0;
    if (rank < 1)
        rank = 1;
    for (int b = 0; b < KN_LAT_BUCKETS; b++) {
        seen += h[b];
        if (seen >= rank)
            return b == 0 ? 1.0 : pow(KN_LAT_GROWTH, b - 0.5);
    }
    return pow(KN_LAT_GROWTH, KN_LAT_BUCKETS - 1);
}

/* Closes the minute being counted if it is over (f->mu held). */
static void roll_minute(fvariant *v, int64_t minute)
{
    if (v->acc.minute == minute)
        return;
    if (v->acc.invocations > 0 && v->n_done < (int)(sizeof v->done / sizeof v->done[0])) {
        kn_variant_minute m = v->acc;
        m.model_latency_us = v->model_us_sum / (double)m.invocations;
        m.overhead_latency_us = v->overhead_us_sum / (double)m.invocations;
        m.latency_p50_us = lat_quantile(v->latency_hist, m.invocations, 0.50);
        m.latency_p99_us = lat_quantile(v->latency_hist, m.invocations, 0.99);
        m.instances = kn_fleet__count(v, true);
        v->done[v->n_done++] = m;
        int slot = v->n_recent++ % (int)(sizeof v->recent / sizeof v->recent[0]);
        v->recent[slot].minute = m.minute;
        v->recent[slot].per_instance = m.per_instance;
    }
    memset(&v->acc, 0, sizeof v->acc);
    v->acc.minute = minute;
    v->model_us_sum = v->overhead_us_sum = 0;
    memset(v->latency_hist, 0, sizeof v->latency_hist);
}

/* Counts one answered invocation (f->mu held). InvocationsPerInstance adds
 * 1/N, N the instances in service when it was answered. */
void kn_fleet__record(kn_fleet *f, fvariant *v, int status, double model_us, double total_us)
{
    roll_minute(v, kn_fleet__now_minute(f));
    int n = kn_fleet__count(v, true);
    v->acc.invocations++;
    v->acc.per_instance += 1.0 / (n > 0 ? n : 1);
    v->model_us_sum += model_us;
    v->overhead_us_sum += total_us > model_us ? total_us - model_us : 0;
    v->latency_hist[lat_bucket(total_us > model_us ? total_us : model_us)]++;
    if (status >= 400 && status < 500)
        v->acc.errors_4xx++;
    else if (status >= 500 || status == 0)
        v->acc.errors_5xx++;
    v->total_invocations++;
    v->total_model_us += model_us;
    v->total_overhead_us += total_us > model_us ? total_us - model_us : 0;
    if (status >= 400 && status < 500)
        v->total_4xx++;
    else if (status >= 500 || status == 0)
        v->total_5xx++;
}

/* The InvocationsPerInstance datapoint of a finished minute: 0 when the
 * variant had no traffic then (AWS emits no datapoint, which target
 * tracking treats as zero load). */
static double per_instance_at(const fvariant *v, int64_t minute)
{
    int cap = (int)(sizeof v->recent / sizeof v->recent[0]);
    int n = v->n_recent < cap ? v->n_recent : cap;
    for (int i = 0; i < n; i++)
        if (v->recent[i].minute == minute)
            return v->recent[i].per_instance;
    return 0;
}

/* Writes finished minutes to the registry (f->mu held). */
void kn_fleet__flush_metrics(kn_fleet *f, fendpoint *ep, int64_t minute)
{
    for (int i = 0; i < ep->rec.n_variants; i++) {
        fvariant *v = &ep->vars[i];
        if (v->acc.minute < minute)
            roll_minute(v, minute);
        for (int k = 0; k < v->n_done; k++) {
            kn_err e;
            if (kn_registry_metrics_put(f->reg, ep->rec.name, v->rec->variant_name, &v->done[k],
                                        &e))
                kn_log(KN_LOG_WARN, "endpoint %s: metrics: %s", ep->rec.name, e.msg);
        }
        v->n_done = 0;
    }
}

/* ----------------------------------------------------------- autoscaler */

static void new_id(kn_fleet *f, char *out, size_t n)
{
    uint64_t a = kn_rng_next(&f->rng), b = kn_rng_next(&f->rng);
    snprintf(out, n, "%08x-%04x-4%03x-%04x-%012llx", (unsigned)(a >> 32),
             (unsigned)(a >> 16) & 0xffff, (unsigned)a & 0xfff,
             (unsigned)(0x8000 | ((b >> 48) & 0x3fff)),
             (unsigned long long)(b & 0xffffffffffffull));
}

void kn_fleet__finish_activity(kn_fleet *f, fendpoint *ep, const char *status, const char *msg)
{
    if (!ep->activity[0])
        return;
    kn_err e;
    if (kn_registry_activity_finish(f->reg, ep->activity, status, msg,
                                    kn_clock_wall(kn_platform_clock(f->platform)), &e))
        kn_log(KN_LOG_WARN, "endpoint %s: %s", ep->rec.name, e.msg);
    ep->activity[0] = '\0';
}

/* Sets a variant's desired count on behalf of the autoscaler, as
 * UpdateEndpointWeightsAndCapacities would; false when the endpoint cannot
 * take a change now (being created, updated to another configuration,
 * deleted, failed). f->mu held. */
static bool apply_scale(kn_fleet *f, fendpoint *ep, int vi, int to)
{
    if (ep->deleting || ep->has_next ||
        !(kn_fleet__status_is(ep, "InService") || (kn_fleet__status_is(ep, "Updating") && ep->has_prev)))
        return false;
    if (!ep->has_prev)
        for (int j = 0; j < ep->rec.n_variants; j++) {
            ep->vars[j].prev_count = ep->rec.variants[j].desired_count;
            ep->vars[j].prev_weight = ep->rec.variants[j].desired_weight;
        }
    ep->rec.variants[vi].desired_count = to;
    ep->vars[vi].failures = 0;
    ep->vars[vi].next_spawn_ns = 0;
    ep->has_prev = true;
    kn_fleet__set_status(f, ep, "Updating", NULL);
    kn_fleet__persist(f, ep);
    return true;
}

/* Feeds every policy the datapoint of each clock minute that ended since
 * the last call and applies its decisions, recording scaling activities.
 * f->mu held. */
void kn_fleet__autoscale(kn_fleet *f)
{
    int64_t m = kn_fleet__now_minute(f);
    if (f->scaled_minute == 0 || f->scaled_minute < m - 61)
        f->scaled_minute = m - 1; /* start (or a long stall): evaluate from here on */
    for (int64_t minute = f->scaled_minute + 1; minute < m; minute++) {
        double at = (double)(minute + 1) * 60.0; /* the end of that minute */
        for (int i = 0; i < f->n_pols; i++) {
            fpolicy *p = &f->pols[i];
            fendpoint *ep = kn_fleet__find(f, p->endpoint);
            if (!ep || ep->deleting || kn_fleet__status_is(ep, "Failed") || kn_fleet__status_is(ep, "Creating"))
                continue;
            int vi = -1;
            for (int j = 0; j < ep->rec.n_variants; j++)
                if (strcmp(ep->rec.variants[j].variant_name, p->variant) == 0)
                    vi = j;
            if (vi < 0)
                continue;
            double metric = per_instance_at(&ep->vars[vi], minute);
            kn_scale_decision d;
            kn_scale_tracker before = p->t;
            kn_scale_observe(&p->t, at, metric, ep->rec.variants[vi].desired_count, &d);
            if (d.action == KN_SCALE_NONE ||
                (d.action == KN_SCALE_OUT && p->suspended_out) ||
                (d.action == KN_SCALE_IN && p->suspended_in))
                continue;
            if (kn_fleet__status_is(ep, "SystemUpdating")) {
                /* instances are coming back after a restart: the decision
                 * waits for them (the alarm stays in ALARM and fires again
                 * next minute), and no cooldown starts */
                int h = p->t.high_run, l = p->t.low_run;
                p->t = before;
                p->t.high_run = h;
                p->t.low_run = l;
                continue;
            }
            char id[64], desc[128], cause[1024];
            new_id(f, id, sizeof id);
            snprintf(desc, sizeof desc, "Setting desired instance count to %d.", d.to);
            if (d.reason == KN_SCALE_ALARM_HIGH || d.reason == KN_SCALE_ALARM_LOW)
                snprintf(cause, sizeof cause,
                         "monitor alarm %s in state ALARM triggered policy %s",
                         d.reason == KN_SCALE_ALARM_HIGH ? p->alarm_high : p->alarm_low,
                         p->name);
            else
                snprintf(cause, sizeof cause,
                         "the desired instance count %d was outside the registered range "
                         "[%d, %d]",
                         d.from, p->t.min, p->t.max);
            kn_fleet__finish_activity(f, ep, "Overridden", "A newer scaling activity replaced it.");
            bool ok = apply_scale(f, ep, vi, d.to);
            if (!ok) { /* nothing changed, so no cooldown either */
                int h = p->t.high_run, l = p->t.low_run;
                p->t = before;
                p->t.high_run = h;
                p->t.low_run = l;
            }
            kn_scaling_activity_rec a = {
                .id = id,
                .resource_id = p->resource_id,
                .description = desc,
                .cause = cause,
                .status_code = (char *)(ok ? "InProgress" : "Failed"),
                .status_message =
                    (char *)(ok ? NULL : "The endpoint could not take a capacity change now."),
                .start_time = at,
                .end_time = ok ? 0 : at};
            kn_err e;
            if (kn_registry_activity_add(f->reg, &a, &e))
                kn_log(KN_LOG_WARN, "endpoint %s: %s", ep->rec.name, e.msg);
            else if (ok)
                snprintf(ep->activity, sizeof ep->activity, "%s", id);
            kn_log(KN_LOG_INFO, "autoscaling %s: %d -> %d (%s, %.2f invocations per instance)",
                   p->resource_id, d.from, d.to, kn_scale_reason_text(d.reason), metric);
        }
    }
    f->scaled_minute = m - 1;
}

/* Scaling activities a killed daemon left InProgress: the newest of each
 * endpoint ends when the endpoint is back in service (its desired count was
 * stored), older ones were overridden, those of gone endpoints failed. */
void kn_fleet__adopt_activities(kn_fleet *f)
{
    kn_scaling_activity_rec *as = NULL;
    size_t n = 0;
    kn_err e;
    if (kn_registry_activity_list(f->reg, NULL, &as, &n, &e))
        return;
    double now = kn_clock_wall(kn_platform_clock(f->platform));
    for (size_t i = 0; i < n; i++) { /* newest first */
        if (strcmp(as[i].status_code, "InProgress") != 0)
            continue;
        char name[128] = "";
        sscanf(as[i].resource_id, "endpoint/%127[^/]/", name);
        fendpoint *ep = kn_fleet__find(f, name);
        if (ep && !ep->activity[0] && !kn_fleet__status_is(ep, "Failed"))
            snprintf(ep->activity, sizeof ep->activity, "%s", as[i].id);
        else
            kn_registry_activity_finish(f->reg, as[i].id, ep ? "Overridden" : "Failed",
                                        ep ? "A newer scaling activity replaced it."
                                           : "The endpoint is gone.",
                                        now, &e);
    }
    for (size_t i = 0; i < n; i++)
        kn_scaling_activity_rec_deinit(&as[i]);
    free(as);
}

/* A new tracker starts from what is stored, as CloudWatch alarms would
 * see it: the alarm runs from the last 15 recorded minutes (no datapoint
 * counts as 0) and the cooldowns from the latest scaling activities. This
 * is what makes autoscaling survive a daemon restart. f->mu held. */
static void restore_tracker(kn_fleet *f, fpolicy *p)
{
    fendpoint *ep = kn_fleet__find(f, p->endpoint);
    int64_t m = kn_fleet__now_minute(f);
    kn_variant_minute *pts = NULL;
    size_t n = 0;
    kn_err e;
    if (ep && !kn_registry_metrics_get(f->reg, ep->rec.name, p->variant, m - 15, m - 1, &pts, &n,
                                       &e)) {
        size_t k = 0;
        for (int64_t minute = m - 15; minute < m; minute++) {
            double v = 0;
            if (k < n && pts[k].minute == minute)
                v = pts[k++].per_instance;
            p->t.high_run = v > p->t.p.target ? p->t.high_run + 1 : 0;
            p->t.low_run = v < KN_SCALE_LOW_RATIO * p->t.p.target ? p->t.low_run + 1 : 0;
        }
    }
    free(pts);
    kn_scaling_activity_rec *as = NULL;
    if (kn_registry_activity_list(f->reg, p->resource_id, &as, &n, &e))
        return;
    bool out_seen = false, in_seen = false;
    for (size_t i = 0; i < n; i++) { /* newest first */
        const kn_scaling_activity_rec *a = &as[i];
        bool took = strcmp(a->status_code, "Failed") != 0;
        int to = 0;
        if (took && !out_seen && strstr(a->cause, "-AlarmHigh-") &&
            sscanf(a->description, "Setting desired instance count to %d", &to) == 1) {
            out_seen = true;
            p->t.out_active = true;
            p->t.out_at = a->start_time;
            p->t.out_capacity = to;
        } else if (took && !in_seen && strstr(a->cause, "-AlarmLow-")) {
            in_seen = true;
            /* a later scale-out cancelled it */
            if (!out_seen) {
                p->t.in_active = true;
                p->t.in_at = a->start_time;
            }
        }
    }
    for (size_t i = 0; i < n; i++)
        kn_scaling_activity_rec_deinit(&as[i]);
    free(as);
}

kn_status kn_fleet_autoscaling_reload(kn_fleet *f, kn_err *e)
{
    kn_scalable_target_rec *ts = NULL;
    kn_scaling_policy_rec *ps = NULL;
    size_t nt = 0, np = 0;
    kn_status s = kn_registry_target_list(f->reg, NULL, &ts, &nt, e);
    if (!s)
        s = kn_registry_policy_list(f->reg, NULL, &ps, &np, e);
    fpolicy *pols = NULL;
    int n = 0;
    if (!s && np && !(pols = calloc(np, sizeof *pols)))
        s = kn_err_set(e, KN_NOMEM, "out of memory");
    pthread_mutex_lock(&f->mu);
    for (size_t i = 0; !s && i < np; i++) {
        const kn_scalable_target_rec *t = NULL;
        for (size_t j = 0; j < nt; j++)
            if (strcmp(ts[j].resource_id, ps[i].resource_id) == 0)
                t = &ts[j];
        if (!t)
            continue;
        fpolicy *p = &pols[n];
        snprintf(p->resource_id, sizeof p->resource_id, "%s", t->resource_id);
        snprintf(p->endpoint, sizeof p->endpoint, "%s", t->endpoint);
        snprintf(p->variant, sizeof p->variant, "%s", t->variant);
        snprintf(p->name, sizeof p->name, "%s", ps[i].name);
        snprintf(p->alarm_high, sizeof p->alarm_high, "%s", ps[i].alarm_high);
        snprintf(p->alarm_low, sizeof p->alarm_low, "%s", ps[i].alarm_low);
        p->suspended_in = t->suspended_in;
        p->suspended_out = t->suspended_out;
        kn_scale_params sp = kn_scale_default_params();
        sp.target = ps[i].target_value;
        sp.scale_out_cooldown_s = ps[i].scale_out_cooldown;
        sp.scale_in_cooldown_s = ps[i].scale_in_cooldown;
        sp.disable_scale_in = ps[i].disable_scale_in;
        const fpolicy *old = NULL;
        for (int k = 0; k < f->n_pols; k++)
            if (strcmp(f->pols[k].resource_id, p->resource_id) == 0 &&
                strcmp(f->pols[k].name, p->name) == 0)
                old = &f->pols[k];
        kn_err e2;
        if (old) { /* keep the alarm history and cooldowns */
            p->t = old->t;
            p->t.p = sp;
            if (kn_scale_tracker_set_range(&p->t, t->min_capacity, t->max_capacity, &e2))
                continue;
        } else if (kn_scale_tracker_init(&p->t, &sp, t->min_capacity, t->max_capacity, &e2)) {
            kn_log(KN_LOG_WARN, "autoscaling %s: policy %s ignored: %s", p->resource_id, p->name,
                   e2.msg);
            continue;
        } else {
            restore_tracker(f, p);
        }
        n++;
    }
    if (!s) {
        free(f->pols);
        f->pols = pols;
        f->n_pols = n;
        pols = NULL;
    }
    pthread_mutex_unlock(&f->mu);
    free(pols);
    for (size_t i = 0; i < nt; i++)
        kn_scalable_target_rec_deinit(&ts[i]);
    for (size_t i = 0; i < np; i++)
        kn_scaling_policy_rec_deinit(&ps[i]);
    free(ts);
    free(ps);
    return s;
}

/* Prometheus label values: backslash, quote and newline escaped. */
static void label(kn_buf *b, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\' || *v == '"')
            kn_buf_appendf(b, "\\%c", *v);
        else if (*v == '\n')
            kn_buf_append(b, "\\n", 2);
        else
            kn_buf_append(b, v, 1);
    }
}

static void series(kn_buf *b, const char *metric, const fendpoint *ep, const fvariant *v,
                   const char *extra_name, const char *extra_value)
{
    kn_buf_appendf(b, "%s{endpoint=\"", metric);
    label(b, ep->rec.name);
    kn_buf_appendf(b, "\",variant=\"");
    label(b, v->rec->variant_name);
    if (extra_name) {
        kn_buf_appendf(b, "\",%s=\"", extra_name);
        label(b, extra_value);
    }
    kn_buf_appendf(b, "\"} ");
}

kn_status kn_fleet_prometheus(kn_fleet *f, kn_buf *b)
{
    static const struct {
        const char *name, *type, *help;
    } metrics[] = {
        {"kennel_endpoint_invocations_total", "counter", "Invocations answered by instances"},
        {"kennel_endpoint_invocation_errors_total", "counter",
         "Invocations the instance answered with an error, by class"},
        {"kennel_endpoint_model_latency_microseconds_total", "counter",
         "Time spent in instances (sum over invocations)"},
        {"kennel_endpoint_overhead_latency_microseconds_total", "counter",
         "Time spent in the daemon around the instance (sum over invocations)"},
        {"kennel_endpoint_instances", "gauge", "Instances by state"},
        {"kennel_endpoint_desired_instances", "gauge", "Desired instance count"},
        {"kennel_endpoint_requests_in_flight", "gauge", "Requests being answered"},
        {"kennel_endpoint_status", "gauge", "1 for the endpoint's current status"},
        {"kennel_instance_invocations_total", "counter",
         "Invocations answered by each ready instance (pid)"},
    };
    pthread_mutex_lock(&f->mu);
    for (size_t m = 0; m < sizeof metrics / sizeof metrics[0]; m++) {
        kn_buf_appendf(b, "# HELP %s %s\n# TYPE %s %s\n", metrics[m].name, metrics[m].help,
                       metrics[m].name, metrics[m].type);
        for (const fendpoint *ep = f->eps; ep; ep = ep->next) {
            if (ep->ghost)
                continue;
            if (m == 7) {
                kn_buf_appendf(b, "%s{endpoint=\"", metrics[m].name);
                label(b, ep->rec.name);
                kn_buf_appendf(b, "\",status=\"%s\"} 1\n", ep->rec.status);
                continue;
            }
            if (m == 8) {
                for (int i = 0; i < ep->rec.n_variants; i++)
                    for (const instance *in = ep->vars[i].insts; in; in = in->next) {
                        if (in->state != INST_READY)
                            continue;
                        char pid[24];
                        snprintf(pid, sizeof pid, "%ld", (long)in->pid);
                        series(b, metrics[m].name, ep, &ep->vars[i], "pid", pid);
                        kn_buf_appendf(b, "%llu\n", (unsigned long long)in->served);
                    }
                continue;
            }
            for (int i = 0; i < ep->rec.n_variants; i++) {
                const fvariant *v = &ep->vars[i];
                int starting = 0, ready = 0, stopping = 0, flight = 0;
                for (const instance *in = v->insts; in; in = in->next) {
                    starting += in->state == INST_STARTING;
                    ready += in->state == INST_READY;
                    stopping += in->state == INST_STOPPING;
                    flight += in->outstanding;
                }
                switch (m) {
                case 0:
                    series(b, metrics[m].name, ep, v, NULL, NULL);
                    kn_buf_appendf(b, "%llu\n", (unsigned long long)v->total_invocations);
                    break;
                case 1:
                    series(b, metrics[m].name, ep, v, "class", "4xx");
                    kn_buf_appendf(b, "%llu\n", (unsigned long long)v->total_4xx);
                    series(b, metrics[m].name, ep, v, "class", "5xx");
                    kn_buf_appendf(b, "%llu\n", (unsigned long long)v->total_5xx);
                    break;
                case 2:
                    series(b, metrics[m].name, ep, v, NULL, NULL);
                    kn_buf_appendf(b, "%.0f\n", v->total_model_us);
                    break;
                case 3:
                    series(b, metrics[m].name, ep, v, NULL, NULL);
                    kn_buf_appendf(b, "%.0f\n", v->total_overhead_us);
                    break;
                case 4:
                    series(b, metrics[m].name, ep, v, "state", "starting");
                    kn_buf_appendf(b, "%d\n", starting);
                    series(b, metrics[m].name, ep, v, "state", "ready");
                    kn_buf_appendf(b, "%d\n", ready);
                    series(b, metrics[m].name, ep, v, "state", "stopping");
                    kn_buf_appendf(b, "%d\n", stopping);
                    break;
                case 5:
                    series(b, metrics[m].name, ep, v, NULL, NULL);
                    kn_buf_appendf(b, "%d\n", v->rec->desired_count);
                    break;
                case 6:
                    series(b, metrics[m].name, ep, v, NULL, NULL);
                    kn_buf_appendf(b, "%d\n", flight);
                    break;
                }
            }
        }
    }
    pthread_mutex_unlock(&f->mu);
    return KN_OK;
}
