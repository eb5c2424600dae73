/* Batch loading: an epoch's order over one split, parallel decoding into
 * the caller's batch, augmentation, and skipping of unreadable files.
 *
 * Order: the items in data-set order, or, when shuffling, a Fisher-Yates
 * permutation drawn from kn_rng seeded by (seed, epoch) alone, so an epoch
 * is reproducible whatever happened before it. Each batch decodes its
 * candidates in parallel (OpenMP, one slot per image, no shared writes);
 * an image that cannot be read is dropped from the batch, which is topped
 * up from the next items, so a batch never holds a failed image. A failed
 * file is logged once (path and reason), counted, remembered and not tried
 * again in later epochs. With drop_last a final batch with fewer than
 * `batch` readable images is not returned.
 *
 * Augmentation draws come from (seed, epoch, item index) (augment.c), so
 * the images do not depend on thread scheduling or batch composition.
 *
 * A loader belongs to one thread (it runs its own OpenMP team inside
 * kn_loader_next); the data set it reads must outlive it.
 */
#include "data_int.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

#define MAX_BATCH 65536
#define MAX_THREADS 1024
#define MAX_SIDE 16384

struct kn_loader {
    const kn_dataset *d;
    kn_split split;
    kn_loader_params p;
    kn_img_decode_params dec;
    int n;              /* items in the split */
    int *order;         /* this epoch's order */
    int pos;            /* next position in order */
    int remaining;      /* items at order[pos..] not known to fail */
    int epoch;
    unsigned char *failed; /* per item: skipped once, never tried again */
    int n_failed;
    char **skipped;     /* paths of failed items, in the order found */
    /* per batch slot */
    int *cand;
    kn_status *st;
    bool *fatal;        /* the failure was not the file's fault */
    kn_err *errs;
};

kn_loader_params kn_loader_default_params(void)
{
    return (kn_loader_params){
        .batch = 32,
        .shuffle = true,
        .drop_last = false,
        .seed = 0,
        .augment = KN_AUG_NONE,
        .pre = kn_img_preproc_torchvision(),
        .threads = 0,
        .max_pixels = 0,
    };
}

static kn_status check_params(const kn_loader_params *p, kn_err *e)
{
    if (p->batch < 1 || p->batch > MAX_BATCH)
        return kn_err_set(e, KN_INVALID, "loader: batch %d is not in [1, %d]", p->batch,
                          MAX_BATCH);
    if (p->threads < 0 || p->threads > MAX_THREADS)
        return kn_err_set(e, KN_INVALID, "loader: threads %d is not in [0, %d]", p->threads,
                          MAX_THREADS);
    if (p->augment != KN_AUG_NONE && p->augment != KN_AUG_RANDOM)
        return kn_err_set(e, KN_INVALID, "loader: unknown augmentation %d", (int)p->augment);
    const kn_img_preproc *pre = &p->pre;
    if (pre->w < 1 || pre->h < 1 || pre->w > MAX_SIDE || pre->h > MAX_SIDE)
        return kn_err_set(e, KN_INVALID, "loader: input size %dx%d is not in [1, %d]", pre->w,
                          pre->h, MAX_SIDE);
    if (pre->norm != KN_NORM_TORCHVISION && pre->norm != KN_NORM_TF && pre->norm != KN_NORM_NONE)
        return kn_err_set(e, KN_INVALID, "loader: unknown normalisation %d", (int)pre->norm);
    if (pre->norm == KN_NORM_TORCHVISION)
        for (int c = 0; c < 3; c++)
            if (!(pre->std[c] != 0.0f))
                return kn_err_set(e, KN_INVALID, "loader: std[%d] is zero", c);
    return KN_OK;
}

kn_status kn_loader_new(const kn_dataset *d, kn_split s, const kn_loader_params *p,
                        kn_loader **out, kn_err *e)
{
    if (out)
        *out = NULL;
    if (!d || !out)
        return kn_err_set(e, KN_INVALID, "loader: no data set or output");
    if ((unsigned)s >= KN_SPLIT_COUNT)
        return kn_err_set(e, KN_INVALID, "loader: unknown split %d", (int)s);
    kn_loader_params lp = p ? *p : kn_loader_default_params();
    kn_status rc = check_params(&lp, e);
    if (rc)
        return rc;
    kn_loader *l = calloc(1, sizeof *l);
    if (!l)
        return kn_err_set(e, KN_NOMEM, "loader: out of memory");
    l->d = d;
    l->split = s;
    l->p = lp;
    l->dec = kn_img_decode_default_params();
    if (lp.max_pixels)
        l->dec.max_pixels = lp.max_pixels;
    l->n = d->count[s];
    const size_t nb = (size_t)lp.batch, ni = (size_t)(l->n ? l->n : 1);
    l->order = malloc(ni * sizeof *l->order);
    l->failed = calloc(ni, 1);
    l->cand = malloc(nb * sizeof *l->cand);
    l->st = malloc(nb * sizeof *l->st);
    l->fatal = malloc(nb * sizeof *l->fatal);
    l->errs = malloc(nb * sizeof *l->errs);
    if (!l->order || !l->failed || !l->cand || !l->st || !l->fatal || !l->errs) {
        kn_loader_free(l);
        return kn_err_set(e, KN_NOMEM, "loader: out of memory for %d items", l->n);
    }
    kn_loader_start(l, 0);
    *out = l;
    return KN_OK;
}

void kn_loader_free(kn_loader *l)
{
    if (!l)
        return;
    for (int i = 0; i < l->n_failed; i++)
        free(l->skipped[i]);
    free(l->skipped);
    free(l->errs);
    free(l->fatal);
    free(l->st);
    free(l->cand);
    free(l->failed);
    free(l->order);
    free(l);
}

void kn_loader_start(kn_loader *l, int epoch)
{
    if (!l)
        return;
    l->epoch = epoch;
    l->pos = 0;
    l->remaining = l->n - l->n_failed;
    for (int i = 0; i < l->n; i++)
        l->order[i] = i;
    if (!l->p.shuffle)
        return;
    kn_rng r;
    kn_rng_seed(&r, kn__data_seed(KN__DATA_SEED_SHUFFLE, l->p.seed, (uint64_t)(int64_t)epoch, 0));
    for (int i = l->n - 1; i > 0; i--) {
        int j = (int)kn__data_rng_below(&r, (uint64_t)i + 1);
        int t = l->order[i];
        l->order[i] = l->order[j];
        l->order[j] = t;
    }
}

/* Decodes and transforms item idx into out (3 x h x w floats). *fatal is
 * set when the failure is not the file's (e.g. out of memory). */
static kn_status load_item(const kn_loader *l, int idx, float *out, bool *fatal, kn_err *e)
{
    const char *path = l->d->items[l->split][idx].path;
    kn_img im;
    *fatal = false;
    kn_status rc = kn_img_load(path, &l->dec, &im, e);
    if (rc) {
        *fatal = !kn__data_is_file_error(rc);
        return rc;
    }
    if (l->p.augment == KN_AUG_RANDOM) {
        kn_rng r;
        kn__crop c;
        kn__data_aug_rng(&r, l->p.seed, l->epoch, idx);
        kn__data_aug_sample(&r, im.w, im.h, &c);
        rc = kn__data_augment(&im, &c, &l->p.pre, out, e);
    } else {
        rc = kn_img_preprocess(&im, &l->p.pre, out, e);
    }
    if (rc) {
        *fatal = true;
        kn_err_prefix(e, "%s", path);
    }
    kn_img_deinit(&im);
    return rc;
}

static kn_status record_failure(kn_loader *l, int idx, const kn_err *err, kn_err *e)
{
    const char *path = l->d->items[l->split][idx].path;
    char **v = realloc(l->skipped, (size_t)(l->n_failed + 1) * sizeof *v);
    if (!v)
        return kn_err_set(e, KN_NOMEM, "loader: out of memory");
    l->skipped = v;
    if (!(v[l->n_failed] = strdup(path)))
        return kn_err_set(e, KN_NOMEM, "loader: out of memory");
    l->failed[idx] = 1;
    l->n_failed++;
    kn_log(KN_LOG_WARN, "skipping %s: %s", path, kn__data_reason(err, path));
    return KN_OK;
}

kn_status kn_loader_next(kn_loader *l, float *images, int *labels, int *indices, int *n,
                         kn_err *e)
{
    if (n)
        *n = 0;
    if (!l || !images || !labels || !n)
        return kn_err_set(e, KN_INVALID, "loader: missing output buffer");
    const int batch = l->p.batch;
    const size_t per = (size_t)3 * (size_t)l->p.pre.w * (size_t)l->p.pre.h;
    const kn_ds_item *items = l->d->items[l->split];
    int filled = 0;
    while (filled < batch) {
        if (l->p.drop_last && filled + l->remaining < batch) {
            /* not enough readable items left for a full batch */
            l->pos = l->n;
            l->remaining = 0;
            filled = 0;
            break;
        }
        int k = 0;
        while (k < batch - filled && l->pos < l->n) {
            int idx = l->order[l->pos++];
            if (l->failed[idx])
                continue;
            l->cand[k++] = idx;
            l->remaining--;
        }
        if (k == 0)
            break;
        float *base = images + (size_t)filled * per;
        int nt = l->p.threads > 0 ? l->p.threads : omp_get_max_threads();
        if (nt > k)
            nt = k;
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1) if (nt > 1)
        for (int t = 0; t < k; t++) {
            kn_err_clear(&l->errs[t]);
            l->st[t] = load_item(l, l->cand[t], base + (size_t)t * per, &l->fatal[t], &l->errs[t]);
        }
        /* keep the good ones, in order, packed from `filled` on; a slot only
         * ever moves down, onto one already read */
        for (int t = 0; t < k; t++) {
            int idx = l->cand[t];
            if (l->st[t]) {
                if (l->fatal[t]) {
                    kn_err_set(e, l->st[t], "%s", l->errs[t].msg);
                    return l->st[t];
                }
                kn_status rc = record_failure(l, idx, &l->errs[t], e);
                if (rc)
                    return rc;
                continue;
            }
            float *src = base + (size_t)t * per, *dst = images + (size_t)filled * per;
            if (dst != src)
                memmove(dst, src, per * sizeof *dst);
            labels[filled] = items[idx].label;
            if (indices)
                indices[filled] = idx;
            filled++;
        }
    }
    if (l->p.drop_last && filled < batch)
        filled = 0;
    *n = filled;
    return KN_OK;
}

int kn_loader_skipped(const kn_loader *l)
{
    return l ? l->n_failed : 0;
}

const char *kn_loader_skipped_path(const kn_loader *l, int i)
{
    return l && i >= 0 && i < l->n_failed ? l->skipped[i] : NULL;
}
