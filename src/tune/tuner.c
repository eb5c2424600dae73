/* Tuning strategies behind one ask/tell loop (see tune.h).
 *
 * Internally every objective is minimised: Maximize objectives are negated
 * on the way in and out. Trials live in one growing array in ask order;
 * a trial is running until told. The Gaussian process is refitted on every
 * Bayesian ask: tuning jobs have at most hundreds of trials and each trial
 * is a training run, so an O(n^3) fit per ask costs nothing that matters. */
#include "kennel/tune.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { RUNNING, DONE, FAILED };

typedef struct rec {
    kn_tune_trial t;
    int state;
    double y;      /* minimised objective, valid when DONE */
    bool promoted; /* Hyperband: a continuation was started from it */
} rec;

struct kn_tuner {
    kn_tune_space s;
    kn_tuner_params p;
    kn_rng rng;
    rec *tr;
    int n, cap;
    int running;
    int configs;     /* new configurations started (Hyperband promotions excluded) */
    int grid_total;
    int n_rungs;     /* Hyperband */
    double eta;
};

kn_tuner_params kn_tuner_default_params(void)
{
    return (kn_tuner_params){.strategy = KN_TUNE_BAYESIAN,
                             .max_jobs = 10,
                             .max_parallel = 1,
                             .maximize = false,
                             .seed = 0,
                             .min_resource = 1,
                             .max_resource = 27};
}

kn_status kn_tuner_new(const kn_tune_space *s, const kn_tuner_params *p, kn_tuner **out,
                       kn_err *e)
{
    *out = NULL;
    if (s->n < 1 || s->n > KN_TUNE_MAX_PARAMS)
        return kn_err_set(e, KN_INVALID, "tuner: %d parameters", s->n);
    if (p->max_parallel < 1)
        return kn_err_set(e, KN_INVALID, "MaxParallelTrainingJobs %d must be >= 1",
                          p->max_parallel);
    int grid = 1;
    if (p->strategy == KN_TUNE_GRID) {
        for (int i = 0; i < s->n; i++) {
            if (s->p[i].type != KN_TUNE_CATEGORICAL)
                return kn_err_set(e, KN_INVALID,
                                  "Grid search takes categorical parameters only; '%s' is not",
                                  s->p[i].name);
            if (grid > 100000 / s->p[i].n_values)
                return kn_err_set(e, KN_INVALID, "Grid search: the grid has over 100000 points");
            grid *= s->p[i].n_values;
        }
        if (p->max_jobs != 0 && p->max_jobs != grid)
            return kn_err_set(e, KN_INVALID,
                              "Grid search: MaxNumberOfTrainingJobs %d must equal the number of "
                              "combinations, %d (or be left out)",
                              p->max_jobs, grid);
    } else if (p->max_jobs < 1) {
        return kn_err_set(e, KN_INVALID, "MaxNumberOfTrainingJobs %d must be >= 1", p->max_jobs);
    }
    if (p->strategy == KN_TUNE_HYPERBAND &&
        !(p->min_resource > 0 && p->min_resource <= p->max_resource && isfinite(p->max_resource)))
        return kn_err_set(e, KN_INVALID,
                          "Hyperband: MinResource %g and MaxResource %g must satisfy 0 < min <= "
                          "max",
                          p->min_resource, p->max_resource);
    kn_tuner *t = calloc(1, sizeof *t);
    if (!t)
        return kn_err_set(e, KN_NOMEM, "tuner: out of memory");
    t->p = *p;
    t->s = *s;
    for (int i = 0; i < s->n; i++) /* own copies of the categorical values */
        for (int j = 0; j < s->p[i].n_values; j++)
            t->s.p[i].values[j] = NULL;
    for (int i = 0; i < s->n; i++)
        for (int j = 0; j < s->p[i].n_values; j++)
            if (!(t->s.p[i].values[j] = strdup(s->p[i].values[j]))) {
                kn_tuner_free(t);
                return kn_err_set(e, KN_NOMEM, "tuner: out of memory");
            }
    t->grid_total = grid;
    if (p->strategy == KN_TUNE_GRID)
        t->p.max_jobs = grid;
    kn_rng_seed(&t->rng, p->seed ? p->seed : 0x6b656e6e656cULL);
    t->eta = 3;
    t->n_rungs = 1;
    if (p->strategy == KN_TUNE_HYPERBAND)
        while (p->min_resource * pow(t->eta, t->n_rungs) <= p->max_resource * (1 + 1e-9))
            t->n_rungs++;
    *out = t;
    return KN_OK;
}

void kn_tuner_free(kn_tuner *t)
{
    if (!t)
        return;
    kn_tune_space_deinit(&t->s);
    free(t->tr);
    free(t);
}

int kn_tuner_started(const kn_tuner *t)
{
    return t->n;
}

int kn_tuner_best(const kn_tuner *t, double *objective)
{
    int best = -1;
    for (int i = 0; i < t->n; i++)
        if (t->tr[i].state == DONE && (best < 0 || t->tr[i].y < t->tr[best].y))
            best = i;
    if (objective)
        *objective = best < 0 ? NAN : (t->p.maximize ? -t->tr[best].y : t->tr[best].y);
    return best;
}

void kn_tuner_tell(kn_tuner *t, int id, double objective, bool ok)
{
    if (id < 0 || id >= t->n || t->tr[id].state != RUNNING)
        return;
    rec *r = &t->tr[id];
    if (ok && isfinite(objective)) {
        r->state = DONE;
        r->y = t->p.maximize ? -objective : objective;
    } else {
        r->state = FAILED;
    }
    t->running--;
}

static rec *push(kn_tuner *t)
{
    if (t->n == t->cap) {
        int cap = t->cap ? 2 * t->cap : 32;
        rec *nr = realloc(t->tr, (size_t)cap * sizeof *nr);
        if (!nr)
            return NULL;
        t->tr = nr;
        t->cap = cap;
    }
    rec *r = &t->tr[t->n];
    memset(r, 0, sizeof *r);
    r->t.id = t->n++;
    r->t.continues = -1;
    r->state = RUNNING;
    t->running++;
    return r;
}

/* Categorical coordinates sit at the centre of their cell, so equal
 * choices have equal coordinates (and GP distances see them as equal). */
static double snap(const kn_tuner *t, int i, double u)
{
    const kn_tune_param *p = &t->s.p[i];
    if (p->type != KN_TUNE_CATEGORICAL)
        return u;
    int k = (int)(u * p->n_values);
    if (k >= p->n_values)
        k = p->n_values - 1;
    return (k + 0.5) / p->n_values;
}

static void random_point(kn_tuner *t, double *u)
{
    for (int i = 0; i < t->s.n; i++)
        u[i] = snap(t, i, kn_rng_uniform(&t->rng));
}

/* ---- Bayesian: Gaussian process + expected improvement -------------------- */

static double matern52(const double *a, const double *b, int d, double ell)
{
    double r2 = 0;
    for (int i = 0; i < d; i++)
        r2 += (a[i] - b[i]) * (a[i] - b[i]);
    double r = sqrt(r2) / ell;
    return (1 + sqrt(5.0) * r + 5.0 / 3.0 * r * r) * exp(-sqrt(5.0) * r);
}

typedef struct gp {
    int n, d;
    const double *x; /* n x d */
    double *L;       /* n x n Cholesky factor */
    double *alpha;   /* K^-1 y */
    double ell;
    double noise;    /* observation noise variance (standardised units) */
} gp;

/* Fits with length scale ell and noise variance `noise` on the diagonal;
 * returns the log marginal likelihood (or -inf when the matrix is not
 * positive definite). */
static double gp_fit(gp *g, const double *y, double ell, double noise)
{
    int n = g->n;
    g->ell = ell;
    g->noise = noise;
    for (int i = 0; i < n; i++)
        for (int j = 0; j <= i; j++)
            g->L[i * n + j] = matern52(g->x + i * g->d, g->x + j * g->d, g->d, ell) +
                              (i == j ? noise : 0);
    for (int j = 0; j < n; j++) { /* in-place Cholesky, lower triangle */
        double s = g->L[j * n + j];
        for (int k = 0; k < j; k++)
            s -= g->L[j * n + k] * g->L[j * n + k];
        if (!(s > 0))
            return -INFINITY;
        double ljj = sqrt(s);
        g->L[j * n + j] = ljj;
        for (int i = j + 1; i < n; i++) {
            double v = g->L[i * n + j];
            for (int k = 0; k < j; k++)
                v -= g->L[i * n + k] * g->L[j * n + k];
            g->L[i * n + j] = v / ljj;
        }
    }
    /* alpha = L^-T L^-1 y */
    for (int i = 0; i < n; i++) {
        double v = y[i];
        for (int k = 0; k < i; k++)
            v -= g->L[i * n + k] * g->alpha[k];
        g->alpha[i] = v / g->L[i * n + i];
    }
    double fit = 0, logdet = 0;
    for (int i = 0; i < n; i++) {
        fit += g->alpha[i] * g->alpha[i];
        logdet += log(g->L[i * n + i]);
    }
    for (int i = n - 1; i >= 0; i--) {
        double v = g->alpha[i];
        for (int k = i + 1; k < n; k++)
            v -= g->L[k * n + i] * g->alpha[k];
        g->alpha[i] = v / g->L[i * n + i];
    }
    return -0.5 * fit - logdet;
}

static void gp_predict(const gp *g, const double *u, double *kv, double *mu, double *sd)
{
    int n = g->n;
    double m = 0;
    for (int i = 0; i < n; i++) {
        kv[i] = matern52(u, g->x + i * g->d, g->d, g->ell);
        m += kv[i] * g->alpha[i];
    }
    /* v = L^-1 k; var = 1 - v.v */
    double vv = 0;
    for (int i = 0; i < n; i++) {
        double v = kv[i];
        for (int k = 0; k < i; k++)
            v -= g->L[i * n + k] * kv[k];
        v /= g->L[i * n + i];
        kv[i] = v;
        vv += v * v;
    }
    *mu = m;
    *sd = sqrt(fmax(1 - vv, 1e-12));
}

static double expected_improvement(double best, double mu, double sd)
{
    const double xi = 0.01;
    double imp = best - mu - xi, z = imp / sd;
    double cdf = 0.5 * erfc(-z / sqrt(2.0)), pdf = exp(-0.5 * z * z) / sqrt(2 * M_PI);
    return imp * cdf + sd * pdf;
}

/* Picks the next point by EI; false on allocation failure (the caller then
 * draws at random). */
static bool bayes_point(kn_tuner *t, double *u_out)
{
    int d = t->s.n, n = 0;
    for (int i = 0; i < t->n; i++)
        n += t->tr[i].state != FAILED;
    double *x = malloc(sizeof(double) * (size_t)n * (size_t)d);
    double *y = malloc(sizeof(double) * (size_t)n);
    double *L = malloc(sizeof(double) * (size_t)n * (size_t)n);
    double *alpha = malloc(sizeof(double) * (size_t)n);
    double *kv = malloc(sizeof(double) * (size_t)n);
    bool ok = false;
    if (!x || !y || !L || !alpha || !kv)
        goto out;
    /* observed points first (standardised), then running ones */
    int m = 0;
    double mean = 0, var = 0;
    for (int i = 0; i < t->n; i++)
        if (t->tr[i].state == DONE) {
            memcpy(x + m * d, t->tr[i].t.u, sizeof(double) * (size_t)d);
            y[m++] = t->tr[i].y;
            mean += t->tr[i].y;
        }
    int observed = m;
    mean /= observed;
    for (int i = 0; i < observed; i++)
        var += (y[i] - mean) * (y[i] - mean);
    double sd = observed > 1 ? sqrt(var / (observed - 1)) : 1;
    if (!(sd > 1e-12))
        sd = 1;
    double best = INFINITY;
    for (int i = 0; i < observed; i++) {
        y[i] = (y[i] - mean) / sd;
        best = fmin(best, y[i]);
    }
    gp g = {.n = observed, .d = d, .x = x, .L = L, .alpha = alpha};
    /* Length scale and noise by marginal likelihood. Training runs are
     * noisy, and the same configuration comes back (categorical cells,
     * coordinates clamped at 0 or 1): without a noise term two results at
     * one point that differ are a contradiction the fit resolves with
     * huge weights, and the surrogate predicts nothing useful. */
    static const double ells[] = {0.05, 0.1, 0.2, 0.3, 0.5, 0.8, 1.2};
    static const double noises[] = {1e-6, 1e-3, 1e-2, 0.1, 0.3};
    double best_ll = -INFINITY, ell = 0.3, noise = 1e-6;
    for (size_t i = 0; i < sizeof ells / sizeof ells[0]; i++)
        for (size_t k = 0; k < sizeof noises / sizeof noises[0]; k++) {
            double ll = gp_fit(&g, y, ells[i], noises[k]);
            if (ll > best_ll)
                best_ll = ll, ell = ells[i], noise = noises[k];
        }
    if (!isfinite(best_ll))
        goto out;
    /* constant liar: running trials join at their predicted mean */
    for (int i = 0; i < t->n; i++)
        if (t->tr[i].state == RUNNING) {
            double mu, s;
            gp_fit(&g, y, ell, noise);
            gp_predict(&g, t->tr[i].t.u, kv, &mu, &s);
            memcpy(x + m * d, t->tr[i].t.u, sizeof(double) * (size_t)d);
            y[m++] = mu;
            g.n = m;
        }
    if (!isfinite(gp_fit(&g, y, ell, noise)))
        goto out;
    /* candidates: uniform draws plus perturbations of the best points */
    double best_ei = -1, cand[KN_TUNE_MAX_PARAMS];
    double low_mu = INFINITY, low_u[KN_TUNE_MAX_PARAMS]; /* lowest predicted mean */
    int order[3] = {-1, -1, -1};
    for (int i = 0; i < observed; i++)
        for (int k = 0; k < 3; k++)
            if (order[k] < 0 || y[i] < y[order[k]]) {
                for (int j = 2; j > k; j--)
                    order[j] = order[j - 1];
                order[k] = i;
                break;
            }
    for (int c = 0; c < 2000 + 3 * 150; c++) {
        int base = c >= 2000 ? order[(c - 2000) / 150] : -1;
        for (int i = 0; i < d; i++) {
            double v = base < 0 ? kn_rng_uniform(&t->rng)
                                : x[base * d + i] + 0.08 * kn_rng_normal(&t->rng);
            cand[i] = snap(t, i, v < 0 ? 0 : v > 1 ? 1 : v);
        }
        double mu, s;
        gp_predict(&g, cand, kv, &mu, &s);
        double ei = expected_improvement(best, mu, s);
        if (ei > best_ei) {
            best_ei = ei;
            memcpy(u_out, cand, sizeof(double) * (size_t)d);
        }
        if (mu < low_mu) {
            low_mu = mu;
            memcpy(low_u, cand, sizeof(double) * (size_t)d);
        }
    }
    /* EI underflows to 0 everywhere once every candidate is a known point
     * (a small categorical space): then the lowest predicted mean, not
     * whichever candidate came first. */
    if (!(best_ei > 0) && isfinite(low_mu))
        memcpy(u_out, low_u, sizeof(double) * (size_t)d), best_ei = 0;
    ok = best_ei >= 0;
out:
    free(x);
    free(y);
    free(L);
    free(alpha);
    free(kv);
    return ok;
}

/* ---- Hyperband (asynchronous successive halving) -------------------------- */

static double rung_resource(const kn_tuner *t, int k)
{
    if (k >= t->n_rungs - 1)
        return t->p.max_resource;
    return t->p.min_resource * pow(t->eta, k);
}

static int cmp_y(const void *a, const void *b)
{
    const rec *const *x = a, *const *y = b;
    return ((*x)->y > (*y)->y) - ((*x)->y < (*y)->y);
}

/* A finished trial in the top 1/eta of its rung that has not been promoted,
 * highest rung first; NULL when there is none. */
static rec *promotable(kn_tuner *t)
{
    rec **done = malloc(sizeof(rec *) * (size_t)(t->n ? t->n : 1));
    if (!done)
        return NULL;
    rec *pick = NULL;
    for (int k = t->n_rungs - 2; k >= 0 && !pick; k--) {
        int m = 0;
        for (int i = 0; i < t->n; i++)
            if (t->tr[i].t.rung == k && t->tr[i].state == DONE)
                done[m++] = &t->tr[i];
        int top = (int)(m / t->eta);
        qsort(done, (size_t)m, sizeof *done, cmp_y);
        for (int i = 0; i < top && !pick; i++)
            if (!done[i]->promoted)
                pick = done[i];
    }
    free(done);
    return pick;
}

/* ---- restore (warm start, resume) ---------------------------------------- */

int kn_tuner_restore(kn_tuner *t, const kn_tune_trial *trial, kn_tune_state state,
                     double objective, bool counts)
{
    rec *r = push(t);
    if (!r)
        return -1;
    int id = r->t.id;
    r->t = *trial;
    r->t.id = id;
    if (counts) {
        if (trial->continues >= 0 && trial->continues < id) {
            t->tr[trial->continues].promoted = true;
        } else {
            t->configs++;
            /* the draws this configuration took when it was asked, so a
             * resumed Random search continues its sequence instead of
             * repeating it */
            for (int i = 0; i < t->s.n; i++)
                kn_rng_uniform(&t->rng);
        }
    } else {
        r->promoted = true; /* a parent's trial: never continued here */
        r->t.rung = -1;
        r->t.continues = -1;
    }
    if (state != KN_TUNE_RUNNING)
        kn_tuner_tell(t, id, objective, state == KN_TUNE_SUCCEEDED);
    return id;
}

/* ---- ask -------------------------------------------------------------------- */

kn_tune_ask kn_tuner_ask(kn_tuner *t, kn_tune_trial *out)
{
    if (t->running >= t->p.max_parallel)
        return KN_TUNE_WAIT;
    int d = t->s.n;
    if (t->p.strategy == KN_TUNE_HYPERBAND) {
        rec *from = promotable(t);
        if (from) {
            from->promoted = true;
            kn_tune_trial base = from->t;
            rec *r = push(t);
            if (!r)
                return KN_TUNE_WAIT;
            memcpy(r->t.u, base.u, sizeof(double) * (size_t)d);
            r->t.rung = base.rung + 1;
            r->t.resource = rung_resource(t, r->t.rung);
            r->t.continues = base.id;
            *out = r->t;
            return KN_TUNE_TRIAL;
        }
    }
    if (t->configs >= t->p.max_jobs)
        return t->running > 0 ? KN_TUNE_WAIT : KN_TUNE_DONE;
    double u[KN_TUNE_MAX_PARAMS];
    switch (t->p.strategy) {
    case KN_TUNE_GRID: {
        int idx = t->configs;
        for (int i = d - 1; i >= 0; i--) { /* last parameter varies fastest */
            int nv = t->s.p[i].n_values;
            u[i] = (idx % nv + 0.5) / nv;
            idx /= nv;
        }
        break;
    }
    case KN_TUNE_BAYESIAN: {
        int done = 0;
        for (int i = 0; i < t->n; i++)
            done += t->tr[i].state == DONE;
        int n_init = d + 1 < 3 ? 3 : d + 1;
        if (t->configs < n_init || done < 2 || !bayes_point(t, u))
            random_point(t, u);
        break;
    }
    default:
        random_point(t, u);
    }
    rec *r = push(t);
    if (!r)
        return KN_TUNE_WAIT;
    t->configs++;
    memcpy(r->t.u, u, sizeof(double) * (size_t)d);
    if (t->p.strategy == KN_TUNE_HYPERBAND)
        r->t.resource = rung_resource(t, 0);
    *out = r->t;
    return KN_TUNE_TRIAL;
}
