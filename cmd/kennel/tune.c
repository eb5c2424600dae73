/* kennel tune / logs / plot: hyperparameter tuning jobs and training jobs
 * on a running kennel server, for a person.
 *
 *   kennel tune --config tuning.json   CreateHyperParameterTuningJob with the
 *                                      same JSON the API takes, then a live
 *                                      table of its trials until it ends
 *   kennel tune results JOB            the analytics table (hyperparameters,
 *                                      job, status, FinalObjectiveValue,
 *                                      start/end, elapsed), best first
 *   kennel tune best JOB [--deploy EP] the best job; --deploy creates model,
 *                                      endpoint configuration and endpoint EP
 *                                      from its model.tar.gz
 *   kennel tune plot JOB --out F.png   objective per trial over time and
 *                                      against each hyperparameter (cairo)
 *   kennel tune stop JOB
 *   kennel logs TRAINING-JOB           the job's log
 *   kennel plot metrics JOB --out F.png  the job's metric series (cairo)
 * Requests go through deploy.c's client (kn_cli_call / kn_cli_get). Exit
 * codes: 0 ok, 1 the server refused or the job did not succeed, 2 usage. */
#include "cli.h"

#include <cairo.h>
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static const char *str(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

static double num(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return v ? json_number_value(v) : NAN;
}

static double objective(json_t *sum)
{
    return num(json_object_get(sum, "FinalHyperParameterTuningJobObjectiveMetric"), "Value");
}

static void fmt_time(double t, char *out, size_t n)
{
    if (!isfinite(t)) {
        snprintf(out, n, "-");
        return;
    }
    time_t s = (time_t)t;
    struct tm tm;
    gmtime_r(&s, &tm);
    strftime(out, n, "%Y-%m-%d %H:%M:%S", &tm);
}

static json_t *describe(const char *url, const char *name)
{
    return kn_cli_call(url, "SageMaker.DescribeHyperParameterTuningJob",
                       json_pack("{s:s}", "HyperParameterTuningJobName", name));
}

/* Every child summary (all pages). */
static json_t *children(const char *url, const char *name)
{
    json_t *all = json_array();
    char *token = NULL;
    for (;;) {
        json_t *in = json_pack("{s:s, s:i}", "HyperParameterTuningJobName", name, "MaxResults",
                               100);
        if (token)
            json_object_set_new(in, "NextToken", json_string(token));
        free(token);
        token = NULL;
        json_t *o = kn_cli_call(url, "SageMaker.ListTrainingJobsForHyperParameterTuningJob", in);
        if (!o) {
            json_decref(all);
            return NULL;
        }
        json_array_extend(all, json_object_get(o, "TrainingJobSummaries"));
        const char *next = json_string_value(json_object_get(o, "NextToken"));
        token = next ? strdup(next) : NULL;
        json_decref(o);
        if (!token)
            break;
    }
    return all;
}

static bool maximize(json_t *desc)
{
    json_t *o = json_object_get(json_object_get(desc, "HyperParameterTuningJobConfig"),
                                "HyperParameterTuningJobObjective");
    return !strcmp(str(o, "Type"), "Maximize");
}

static const char *metric_name(json_t *desc)
{
    json_t *o = json_object_get(json_object_get(desc, "HyperParameterTuningJobConfig"),
                                "HyperParameterTuningJobObjective");
    return str(o, "MetricName");
}

/* The tuned parameter names, in the order the ranges list them. */
static json_t *param_names(json_t *desc)
{
    json_t *pr = json_object_get(json_object_get(desc, "HyperParameterTuningJobConfig"),
                                 "ParameterRanges");
    json_t *names = json_array();
    static const char *const kinds[] = {"ContinuousParameterRanges", "IntegerParameterRanges",
                                        "CategoricalParameterRanges"};
    for (int k = 0; k < 3; k++) {
        size_t i;
        json_t *r;
        json_array_foreach(json_object_get(pr, kinds[k]), i, r)
            json_array_append_new(names, json_string(str(r, "Name")));
    }
    return names;
}

static bool g_max;
static int cmp_best(const void *a, const void *b)
{
    double x = objective(*(json_t *const *)a), y = objective(*(json_t *const *)b);
    if (isnan(x) || isnan(y))
        return isnan(x) - isnan(y);
    int c = (x > y) - (x < y);
    return g_max ? -c : c;
}

/* Children sorted best first (no objective last). */
static json_t **sorted(json_t *kids, bool max, size_t *n)
{
    *n = json_array_size(kids);
    json_t **v = calloc(*n ? *n : 1, sizeof *v);
    for (size_t i = 0; v && i < *n; i++)
        v[i] = json_array_get(kids, i);
    g_max = max;
    if (v)
        qsort(v, *n, sizeof *v, cmp_best);
    return v;
}

static double elapsed(json_t *k, double now)
{
    double s = num(k, "TrainingStartTime"), e = num(k, "TrainingEndTime");
    if (!isfinite(s))
        return NAN;
    return (isfinite(e) ? e : now) - s;
}

/* The analytics table. */
static void print_results(json_t *desc, json_t *kids, FILE *f)
{
    json_t *names = param_names(desc);
    size_t n;
    json_t **v = sorted(kids, maximize(desc), &n);
    size_t i;
    json_t *nm;
    int wn = 16;
    for (size_t k = 0; k < n; k++)
        if ((int)strlen(str(v[k], "TrainingJobName")) > wn)
            wn = (int)strlen(str(v[k], "TrainingJobName"));
    json_array_foreach(names, i, nm) fprintf(f, "%-14s ", json_string_value(nm));
    fprintf(f, "%-*s %-17s %-19s %-19s %-19s %s\n", wn, "TrainingJobName", "TrainingJobStatus",
            "FinalObjectiveValue", "TrainingStartTime", "TrainingEndTime",
            "TrainingElapsedTimeSeconds");
    for (size_t k = 0; k < n; k++) {
        json_t *tuned = json_object_get(v[k], "TunedHyperParameters");
        json_array_foreach(names, i, nm)
            fprintf(f, "%-14s ", str(tuned, json_string_value(nm)));
        char st[32], en[32], ob[32];
        fmt_time(num(v[k], "TrainingStartTime"), st, sizeof st);
        fmt_time(num(v[k], "TrainingEndTime"), en, sizeof en);
        double o = objective(v[k]);
        if (isnan(o))
            snprintf(ob, sizeof ob, "-");
        else
            snprintf(ob, sizeof ob, "%.6g", o);
        double el = elapsed(v[k], (double)time(NULL));
        fprintf(f, "%-*s %-17s %-19s %-19s %-19s ", wn, str(v[k], "TrainingJobName"),
                str(v[k], "TrainingJobStatus"), ob, st, en);
        if (isfinite(el) && isfinite(num(v[k], "TrainingEndTime")))
            fprintf(f, "%.1f\n", el);
        else
            fprintf(f, "-\n");
    }
    free(v);
    json_decref(names);
}

static void print_outcome(json_t *desc)
{
    const char *st = str(desc, "HyperParameterTuningJobStatus");
    json_t *best = json_object_get(desc, "BestTrainingJob");
    printf("tuning job %s: %s\n", str(desc, "HyperParameterTuningJobName"), st);
    if (best) {
        printf("best: %s  %s = %.6g\n", str(best, "TrainingJobName"), metric_name(desc),
               objective(best));
    } else {
        json_t *c = json_object_get(desc, "ObjectiveStatusCounters");
        printf("no objective: no training job reported '%s' (%lld succeeded, %lld failed): "
               "check the MetricDefinitions regex against `kennel logs JOB`\n",
               metric_name(desc), (long long)json_integer_value(json_object_get(c, "Succeeded")),
               (long long)json_integer_value(json_object_get(c, "Failed")));
    }
    if (*str(desc, "FailureReason"))
        printf("failure: %s\n", str(desc, "FailureReason"));
}

static bool finished(const char *st)
{
    return !strcmp(st, "Completed") || !strcmp(st, "Stopped") || !strcmp(st, "Failed");
}

/* The live table: redrawn in place on a terminal, one line per change
 * otherwise. */
static int watch(const char *url, const char *name)
{
    bool tty = isatty(STDOUT_FILENO);
    int drawn = 0;
    json_t *seen = json_object();
    int rc = 1;
    for (;;) {
        json_t *desc = describe(url, name);
        json_t *kids = desc ? children(url, name) : NULL;
        if (!kids) {
            json_decref(desc);
            break;
        }
        double now = (double)time(NULL);
        json_t *names = param_names(desc);
        if (tty) {
            if (drawn)
                printf("\033[%dA\033[J", drawn);
            drawn = 0;
            printf("%-34s %-11s", "trial", "status");
            size_t i;
            json_t *nm;
            json_array_foreach(names, i, nm) printf(" %-14s", json_string_value(nm));
            printf(" %-12s %s\n", "objective", "elapsed");
            drawn++;
            for (size_t k = json_array_size(kids); k-- > 0;) { /* oldest first */
                json_t *c = json_array_get(kids, k);
                json_t *tuned = json_object_get(c, "TunedHyperParameters");
                printf("%-34s %-11s", str(c, "TrainingJobName"), str(c, "TrainingJobStatus"));
                json_array_foreach(names, i, nm) printf(" %-14s", str(tuned, json_string_value(nm)));
                double o = objective(c), el = elapsed(c, now);
                if (isnan(o))
                    printf(" %-12s", "-");
                else
                    printf(" %-12.6g", o);
                if (isfinite(el))
                    printf(" %.0f s\n", el);
                else
                    printf(" -\n");
                drawn++;
            }
        } else {
            for (size_t k = json_array_size(kids); k-- > 0;) {
                json_t *c = json_array_get(kids, k);
                const char *nm = str(c, "TrainingJobName"), *st = str(c, "TrainingJobStatus");
                if (!strcmp(str(seen, nm), st))
                    continue;
                json_object_set_new(seen, nm, json_string(st));
                json_t *tuned = json_object_get(c, "TunedHyperParameters");
                char *hp = json_dumps(tuned, JSON_COMPACT | JSON_SORT_KEYS);
                double o = objective(c);
                printf("%s %s %s", nm, st, hp ? hp : "{}");
                if (!isnan(o))
                    printf(" objective %.6g", o);
                printf("\n");
                free(hp);
            }
        }
        fflush(stdout);
        json_decref(names);
        json_decref(kids);
        if (finished(str(desc, "HyperParameterTuningJobStatus"))) {
            print_outcome(desc);
            rc = strcmp(str(desc, "HyperParameterTuningJobStatus"), "Completed") ? 1 : 0;
            json_decref(desc);
            break;
        }
        json_decref(desc);
        sleep(1);
    }
    json_decref(seen);
    return rc;
}

/* ---------------------------------------------------------------- plots */

typedef struct panel {
    double x, y, w, h;
} panel;

static void nice_range(double *lo, double *hi)
{
    if (!(*hi > *lo)) {
        double m = isfinite(*lo) ? *lo : 0;
        *lo = m - (fabs(m) > 0 ? fabs(m) * 0.1 : 1);
        *hi = m + (fabs(m) > 0 ? fabs(m) * 0.1 : 1);
    }
    double pad = (*hi - *lo) * 0.05;
    *lo -= pad;
    *hi += pad;
}

/* Axes, ticks and labels of one panel; returns the plotting area. */
static panel axes(cairo_t *cr, panel p, const char *title, const char *xl, const char *yl,
                  double x0, double x1, double y0, double y1, bool logx, json_t *xcats)
{
    panel a = {p.x + 70, p.y + 30, p.w - 90, p.h - 75};
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_rectangle(cr, p.x, p.y, p.w, p.h);
    cairo_fill(cr);
    cairo_set_source_rgb(cr, 0, 0, 0);
    cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_BOLD);
    cairo_set_font_size(cr, 13);
    cairo_move_to(cr, a.x, p.y + 18);
    cairo_show_text(cr, title);
    cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(cr, 10);
    cairo_set_line_width(cr, 1);
    cairo_rectangle(cr, a.x, a.y, a.w, a.h);
    cairo_stroke(cr);
    char t[64];
    for (int i = 0; i <= 4; i++) {
        double fy = a.y + a.h - a.h * i / 4.0;
        double v = y0 + (y1 - y0) * i / 4.0;
        snprintf(t, sizeof t, "%.4g", v);
        cairo_move_to(cr, a.x - 5, fy);
        cairo_line_to(cr, a.x, fy);
        cairo_stroke(cr);
        cairo_text_extents_t ex;
        cairo_text_extents(cr, t, &ex);
        cairo_move_to(cr, a.x - 8 - ex.width, fy + 4);
        cairo_show_text(cr, t);
    }
    size_t nc = json_array_size(xcats);
    int nt = nc ? (int)nc : 4;
    for (int i = 0; i <= nt; i++) {
        double fx, v;
        if (nc) {
            if (i == nt)
                break;
            v = i;
            snprintf(t, sizeof t, "%s", json_string_value(json_array_get(xcats, (size_t)i)));
        } else {
            v = x0 + (x1 - x0) * i / (double)nt;
            snprintf(t, sizeof t, "%.3g", logx ? pow(10, v) : v);
        }
        fx = a.x + a.w * (v - x0) / (x1 - x0);
        cairo_move_to(cr, fx, a.y + a.h);
        cairo_line_to(cr, fx, a.y + a.h + 5);
        cairo_stroke(cr);
        cairo_text_extents_t ex;
        cairo_text_extents(cr, t, &ex);
        cairo_move_to(cr, fx - ex.width / 2, a.y + a.h + 18);
        cairo_show_text(cr, t);
    }
    cairo_text_extents_t ex;
    cairo_text_extents(cr, xl, &ex);
    cairo_move_to(cr, a.x + a.w / 2 - ex.width / 2, a.y + a.h + 36);
    cairo_show_text(cr, xl);
    cairo_save(cr);
    cairo_move_to(cr, p.x + 14, a.y + a.h / 2 + 30);
    cairo_rotate(cr, -M_PI / 2);
    cairo_show_text(cr, yl);
    cairo_restore(cr);
    return a;
}

static void dot(cairo_t *cr, panel a, double x, double y, double x0, double x1, double y0,
                double y1)
{
    cairo_arc(cr, a.x + a.w * (x - x0) / (x1 - x0), a.y + a.h - a.h * (y - y0) / (y1 - y0), 4,
              0, 2 * M_PI);
    cairo_fill(cr);
}

static int write_png(cairo_surface_t *s, const char *out)
{
    cairo_status_t st = cairo_surface_write_to_png(s, out);
    if (st != CAIRO_STATUS_SUCCESS) {
        fprintf(stderr, "kennel: cannot write %s: %s\n", out, cairo_status_to_string(st));
        return 1;
    }
    printf("wrote %s\n", out);
    return 0;
}

/* Whether a parameter is searched in log space (as the tuner resolves Auto). */
static bool log_scaled(json_t *desc, const char *name, json_t **cats)
{
    json_t *pr = json_object_get(json_object_get(desc, "HyperParameterTuningJobConfig"),
                                 "ParameterRanges");
    *cats = NULL;
    size_t i;
    json_t *r;
    json_array_foreach(json_object_get(pr, "CategoricalParameterRanges"), i, r)
        if (!strcmp(str(r, "Name"), name))
            *cats = json_object_get(r, "Values");
    static const char *const kinds[] = {"ContinuousParameterRanges", "IntegerParameterRanges"};
    for (int k = 0; k < 2; k++)
        json_array_foreach(json_object_get(pr, kinds[k]), i, r)
        {
            if (strcmp(str(r, "Name"), name))
                continue;
            const char *sc = str(r, "ScalingType");
            double lo = atof(str(r, "MinValue")), hi = atof(str(r, "MaxValue"));
            if (!strcmp(sc, "Logarithmic"))
                return true;
            if ((!*sc || !strcmp(sc, "Auto")) && lo > 0 && hi / lo >= 100)
                return true;
        }
    return false;
}

static int tune_plot(const char *url, const char *name, const char *out)
{
    json_t *desc = describe(url, name);
    json_t *kids = desc ? children(url, name) : NULL;
    if (!kids) {
        json_decref(desc);
        return 1;
    }
    json_t *names = param_names(desc);
    int np = (int)json_array_size(names) + 1;
    int cols = np > 1 ? 2 : 1, rows = (np + cols - 1) / cols;
    const double W = 520, H = 360;
    cairo_surface_t *s =
        cairo_image_surface_create(CAIRO_FORMAT_RGB24, (int)(W * cols), (int)(H * rows));
    cairo_t *cr = cairo_create(s);
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);
    double t0 = num(desc, "CreationTime");
    /* objective over time (end of each trial), with the best so far */
    size_t n = json_array_size(kids);
    double *xs = calloc(n + 1, sizeof *xs), *ys = calloc(n + 1, sizeof *ys);
    int m = 0;
    double y0 = INFINITY, y1 = -INFINITY, x1 = 0;
    for (size_t k = 0; k < n; k++) {
        json_t *c = json_array_get(kids, k);
        double o = objective(c), e = num(c, "TrainingEndTime");
        if (isnan(o) || !isfinite(e))
            continue;
        xs[m] = e - t0;
        ys[m] = o;
        y0 = fmin(y0, o);
        y1 = fmax(y1, o);
        x1 = fmax(x1, xs[m]);
        m++;
    }
    if (!m) {
        y0 = 0;
        y1 = 1;
    }
    double xa = 0, xb = x1 > 0 ? x1 : 1;
    nice_range(&y0, &y1);
    nice_range(&xa, &xb);
    char yl[300];
    snprintf(yl, sizeof yl, "%s (%s)", metric_name(desc), maximize(desc) ? "max" : "min");
    panel a = axes(cr, (panel){0, 0, W, H}, "objective per trial over time",
                   "seconds since the tuning job started", yl, xa, xb, y0, y1, false, NULL);
    /* best-so-far step line */
    for (int i = 0; i < m; i++)
        for (int k = i + 1; k < m; k++)
            if (xs[k] < xs[i]) {
                double tx = xs[i], ty = ys[i];
                xs[i] = xs[k], ys[i] = ys[k];
                xs[k] = tx, ys[k] = ty;
            }
    cairo_set_source_rgb(cr, 0.85, 0.4, 0.1);
    cairo_set_line_width(cr, 2);
    double best = NAN;
    for (int i = 0; i < m; i++) {
        bool imp = isnan(best) || (maximize(desc) ? ys[i] > best : ys[i] < best);
        double px = a.x + a.w * (xs[i] - xa) / (xb - xa);
        if (imp) {
            if (!isnan(best))
                cairo_line_to(cr, px, a.y + a.h - a.h * (best - y0) / (y1 - y0));
            best = ys[i];
        }
        double py = a.y + a.h - a.h * (best - y0) / (y1 - y0);
        if (i == 0)
            cairo_move_to(cr, px, py);
        else
            cairo_line_to(cr, px, py);
    }
    if (m)
        cairo_stroke(cr);
    cairo_set_source_rgb(cr, 0.1, 0.35, 0.75);
    for (int i = 0; i < m; i++)
        dot(cr, a, xs[i], ys[i], xa, xb, y0, y1);
    /* objective against each hyperparameter */
    size_t pi;
    json_t *pn;
    json_array_foreach(names, pi, pn)
    {
        const char *p = json_string_value(pn);
        json_t *cats;
        bool lg = log_scaled(desc, p, &cats);
        int q = 0;
        double xa2 = INFINITY, xb2 = -INFINITY;
        for (size_t k = 0; k < n; k++) {
            json_t *c = json_array_get(kids, k);
            double o = objective(c);
            const char *v = str(json_object_get(c, "TunedHyperParameters"), p);
            if (isnan(o) || !*v)
                continue;
            double x;
            if (cats) {
                x = -1;
                size_t ci;
                json_t *cv;
                json_array_foreach(cats, ci, cv) if (!strcmp(json_string_value(cv), v)) x =
                    (double)ci;
                if (x < 0)
                    continue;
            } else {
                x = atof(v);
                if (lg) {
                    if (!(x > 0))
                        continue;
                    x = log10(x);
                }
            }
            xs[q] = x;
            ys[q] = o;
            xa2 = fmin(xa2, x);
            xb2 = fmax(xb2, x);
            q++;
        }
        if (cats) {
            xa2 = -0.5;
            xb2 = (double)json_array_size(cats) - 0.5;
        } else {
            if (!q)
                xa2 = 0, xb2 = 1;
            nice_range(&xa2, &xb2);
        }
        int idx = (int)pi + 1;
        panel pp = {W * (idx % cols), H * (idx / cols), W, H};
        char title[300], xl[300];
        snprintf(title, sizeof title, "objective against %s", p);
        snprintf(xl, sizeof xl, "%s%s", p, lg ? " (log scale)" : "");
        panel a2 = axes(cr, pp, title, xl, yl, xa2, xb2, y0, y1, lg && !cats, cats);
        cairo_set_source_rgb(cr, 0.1, 0.35, 0.75);
        for (int i = 0; i < q; i++)
            dot(cr, a2, xs[i], ys[i], xa2, xb2, y0, y1);
    }
    int rc = write_png(s, out);
    cairo_destroy(cr);
    cairo_surface_destroy(s);
    free(xs);
    free(ys);
    json_decref(names);
    json_decref(kids);
    json_decref(desc);
    return rc;
}

static int metrics_plot(const char *url, const char *job, const char *out)
{
    char path[512];
    snprintf(path, sizeof path, "/kennel/training-jobs/%s/metrics", job);
    size_t len = 0;
    char *body = kn_cli_get(url, path, &len);
    if (!body)
        return 1;
    json_t *series = json_loadb(body, len, 0, NULL);
    free(body);
    if (!json_is_object(series)) {
        fprintf(stderr, "kennel plot: the server's answer is not JSON\n");
        json_decref(series);
        return 1;
    }
    int np = (int)json_object_size(series);
    if (np == 0) {
        fprintf(stderr,
                "kennel plot: training job %s has no metric values (no MetricDefinitions, or "
                "no log line matched them)\n",
                job);
        json_decref(series);
        return 1;
    }
    int cols = np > 1 ? 2 : 1, rows = (np + cols - 1) / cols;
    const double W = 520, H = 360;
    cairo_surface_t *s =
        cairo_image_surface_create(CAIRO_FORMAT_RGB24, (int)(W * cols), (int)(H * rows));
    cairo_t *cr = cairo_create(s);
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);
    const char *mname;
    json_t *pts;
    int idx = 0;
    json_object_foreach(series, mname, pts)
    {
        size_t n = json_array_size(pts);
        double y0 = INFINITY, y1 = -INFINITY;
        for (size_t i = 0; i < n; i++) {
            double v = json_number_value(json_array_get(json_array_get(pts, i), 1));
            y0 = fmin(y0, v);
            y1 = fmax(y1, v);
        }
        double xa = 1, xb = (double)(n > 1 ? n : 2);
        nice_range(&y0, &y1);
        nice_range(&xa, &xb);
        panel pp = {W * (idx % cols), H * (idx / cols), W, H};
        char title[300];
        snprintf(title, sizeof title, "%s - %s", mname, job);
        panel a = axes(cr, pp, title, "value number (log order)", mname, xa, xb, y0, y1, false,
                       NULL);
        cairo_set_source_rgb(cr, 0.1, 0.35, 0.75);
        cairo_set_line_width(cr, 2);
        for (size_t i = 0; i < n; i++) {
            double v = json_number_value(json_array_get(json_array_get(pts, i), 1));
            double px = a.x + a.w * ((double)(i + 1) - xa) / (xb - xa);
            double py = a.y + a.h - a.h * (v - y0) / (y1 - y0);
            if (i == 0)
                cairo_move_to(cr, px, py);
            else
                cairo_line_to(cr, px, py);
        }
        cairo_stroke(cr);
        for (size_t i = 0; i < n; i++)
            dot(cr, a, (double)(i + 1),
                json_number_value(json_array_get(json_array_get(pts, i), 1)), xa, xb, y0, y1);
        idx++;
    }
    int rc = write_png(s, out);
    cairo_destroy(cr);
    cairo_surface_destroy(s);
    json_decref(series);
    return rc;
}

/* ------------------------------------------------------------- commands */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: kennel tune --config tuning.json [--no-wait] [--endpoint-url URL]\n"
            "       kennel tune results JOB [--json]\n"
            "       kennel tune best JOB [--deploy ENDPOINT [--instance-type T]]\n"
            "       kennel tune plot JOB --out tuning.png\n"
            "       kennel tune stop JOB\n"
            "\n"
            "--config takes the CreateHyperParameterTuningJob request (the JSON the AWS API\n"
            "and `aws sagemaker create-hyper-parameter-tuning-job --cli-input-json` take)\n"
            "and shows the trials live until the job ends. results prints the analytics\n"
            "table, best first; best names the best training job and with --deploy creates\n"
            "model, endpoint configuration and endpoint ENDPOINT from its model.\n"
            "The server is --endpoint-url or $KENNEL_ENDPOINT (default http://127.0.0.1:8080).\n");
}

int kn_cli_tune(int argc, char **argv)
{
    enum { O_URL = 300, O_CONFIG, O_NOWAIT, O_JSON, O_DEPLOY, O_OUT, O_TYPE };
    static const struct option opts[] = {
        {"endpoint-url", required_argument, NULL, O_URL},
        {"config", required_argument, NULL, O_CONFIG},
        {"no-wait", no_argument, NULL, O_NOWAIT},
        {"json", no_argument, NULL, O_JSON},
        {"deploy", required_argument, NULL, O_DEPLOY},
        {"instance-type", required_argument, NULL, O_TYPE},
        {"out", required_argument, NULL, O_OUT},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    const char *url = NULL, *config = NULL, *deploy_ep = NULL, *out = NULL, *type = NULL;
    bool nowait = false, as_json = false;
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (ch) {
        case O_URL: url = optarg; break;
        case O_CONFIG: config = optarg; break;
        case O_NOWAIT: nowait = true; break;
        case O_JSON: as_json = true; break;
        case O_DEPLOY: deploy_ep = optarg; break;
        case O_TYPE: type = optarg; break;
        case O_OUT: out = optarg; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (config) {
        if (optind < argc) {
            fprintf(stderr, "kennel tune: unexpected argument '%s'\n", argv[optind]);
            return 2;
        }
        json_error_t je;
        json_t *in = json_load_file(config, 0, &je);
        if (!json_is_object(in)) {
            fprintf(stderr, "kennel tune: %s:%d: %s\n", config, je.line,
                    in ? "not a JSON object" : je.text);
            json_decref(in);
            return 2;
        }
        char name[64];
        snprintf(name, sizeof name, "%s", str(in, "HyperParameterTuningJobName"));
        json_t *o = kn_cli_call(url, "SageMaker.CreateHyperParameterTuningJob", in);
        if (!o)
            return 1;
        printf("%s\n", str(o, "HyperParameterTuningJobArn"));
        json_decref(o);
        return nowait ? 0 : watch(url, name);
    }
    if (argc - optind != 2) {
        usage(stderr);
        return 2;
    }
    const char *sub = argv[optind], *job = argv[optind + 1];
    if (!strcmp(sub, "stop")) {
        json_t *o = kn_cli_call(url, "SageMaker.StopHyperParameterTuningJob",
                                json_pack("{s:s}", "HyperParameterTuningJobName", job));
        json_decref(o);
        return o ? 0 : 1;
    }
    if (!strcmp(sub, "plot")) {
        if (!out) {
            fprintf(stderr, "kennel tune plot: --out FILE.png is required\n");
            return 2;
        }
        return tune_plot(url, job, out);
    }
    if (strcmp(sub, "results") && strcmp(sub, "best")) {
        fprintf(stderr, "kennel tune: unknown subcommand '%s'\n", sub);
        return 2;
    }
    json_t *desc = describe(url, job);
    if (!desc)
        return 1;
    int rc = 0;
    if (!strcmp(sub, "results")) {
        json_t *kids = children(url, job);
        if (!kids) {
            json_decref(desc);
            return 1;
        }
        if (as_json) {
            size_t n;
            json_t **v = sorted(kids, maximize(desc), &n);
            json_t *arr = json_array();
            for (size_t k = 0; k < n; k++)
                json_array_append(arr, v[k]);
            char *t = json_dumps(arr, JSON_INDENT(2));
            printf("%s\n", t ? t : "[]");
            free(t);
            free(v);
            json_decref(arr);
        } else {
            print_results(desc, kids, stdout);
        }
        json_decref(kids);
        json_decref(desc);
        return 0;
    }
    /* best */
    json_t *best = json_object_get(desc, "BestTrainingJob");
    if (!best) {
        print_outcome(desc);
        json_decref(desc);
        return 1;
    }
    json_t *bd = kn_cli_call(url, "SageMaker.DescribeTrainingJob",
                             json_pack("{s:s}", "TrainingJobName", str(best, "TrainingJobName")));
    if (!bd) {
        json_decref(desc);
        return 1;
    }
    const char *model = str(json_object_get(bd, "ModelArtifacts"), "S3ModelArtifacts");
    char *hp = json_dumps(json_object_get(best, "TunedHyperParameters"),
                          JSON_COMPACT | JSON_SORT_KEYS);
    printf("best training job: %s\n%s: %.6g\nhyperparameters: %s\nmodel: %s\n",
           str(best, "TrainingJobName"), metric_name(desc), objective(best), hp ? hp : "{}",
           model);
    free(hp);
    if (deploy_ep) {
        char *m = strdup(model);
        char *dargs[12];
        int na = 0;
        dargs[na++] = "deploy";
        dargs[na++] = "--model";
        dargs[na++] = m;
        dargs[na++] = "--name";
        dargs[na++] = (char *)deploy_ep;
        dargs[na++] = "--wait";
        if (url) {
            dargs[na++] = "--endpoint-url";
            dargs[na++] = (char *)url;
        }
        if (type) {
            dargs[na++] = "--instance-type";
            dargs[na++] = (char *)type;
        }
        dargs[na] = NULL;
        rc = kn_cli_deploy(na, dargs);
        free(m);
    }
    json_decref(bd);
    json_decref(desc);
    return rc;
}

int kn_cli_logs(int argc, char **argv)
{
    enum { O_URL = 300 };
    static const struct option opts[] = {{"endpoint-url", required_argument, NULL, O_URL},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *url = NULL;
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (ch == O_URL)
            url = optarg;
        else if (ch == 'h') {
            printf("usage: kennel logs TRAINING-JOB [--endpoint-url URL]\n"
                   "Prints everything the training job's process wrote (stdout and stderr).\n");
            return 0;
        } else
            return 2;
    }
    if (argc - optind != 1) {
        fprintf(stderr, "usage: kennel logs TRAINING-JOB\n");
        return 2;
    }
    char path[512];
    snprintf(path, sizeof path, "/kennel/training-jobs/%s/logs", argv[optind]);
    size_t len = 0;
    char *body = kn_cli_get(url, path, &len);
    if (!body)
        return 1;
    fwrite(body, 1, len, stdout);
    free(body);
    return 0;
}

int kn_cli_plot(int argc, char **argv)
{
    enum { O_URL = 300, O_OUT };
    static const struct option opts[] = {{"endpoint-url", required_argument, NULL, O_URL},
                                         {"out", required_argument, NULL, O_OUT},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *url = NULL, *out = NULL;
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (ch == O_URL)
            url = optarg;
        else if (ch == O_OUT)
            out = optarg;
        else if (ch == 'h') {
            printf("usage: kennel plot metrics TRAINING-JOB --out curves.png\n"
                   "Draws each metric the job's MetricDefinitions found in its log, in log "
                   "order.\n");
            return 0;
        } else
            return 2;
    }
    if (argc - optind != 2 || strcmp(argv[optind], "metrics") || !out) {
        fprintf(stderr, "usage: kennel plot metrics TRAINING-JOB --out curves.png\n");
        return 2;
    }
    return metrics_plot(url, argv[optind + 1], out);
}
