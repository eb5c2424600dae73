/* ImageFolder data sets: scanning a root directory into classes and the
 * files of each split, and the seeded stratified split of a flat layout.
 *
 * Layouts: root/train/<class>/... (+ optional valid/ or val/, test/), or
 * root/<class>/... split by ratios. Class folders are sorted with strcmp
 * (byte order, which is code-point order for UTF-8: what Python's sorted()
 * gives torchvision's ImageFolder), files sorted the same way, and a split's
 * items are listed class by class, files in name order. Names starting with
 * '.' are ignored; only regular files (or links to them) ending in .jpg,
 * .jpeg or .png (any case) count as images, directly inside the class
 * folder: sub-folders of a class folder are not searched.
 *
 * The flat-layout split, per class of n files: n_valid = round(r_valid * n)
 * and n_test = round(r_test * n), rounding half away from zero; while that
 * leaves no training file, n_test (then n_valid) is lowered by one. The
 * class's files are shuffled (Fisher-Yates, kn_rng seeded from the split
 * seed and a hash of the class folder's name, so adding a class leaves the
 * other classes' splits alone); the first n_valid go to valid, the next
 * n_test to test, the rest to train.
 *
 * Limits: KN__DATA_MAX_CLASSES class folders, KN__DATA_MAX_FILES images over
 * all splits, KN__DATA_PATH_MAX bytes per path; passing one is KN_TOO_LARGE.
 * A kn_dataset is immutable after kn_dataset_open and may be read by any
 * number of threads.
 */
#include "data_int.h"

#include "kennel/model.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

/* ---- small shared helpers ---- */

static uint64_t fmix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

uint64_t kn__data_seed(uint64_t domain, uint64_t a, uint64_t b, uint64_t c)
{
    uint64_t z = fmix64(domain + 0x9e3779b97f4a7c15ULL);
    z = fmix64(z + a);
    z = fmix64(z + b);
    return fmix64(z + c);
}

uint64_t kn__data_rng_below(kn_rng *r, uint64_t n)
{
    /* reject the few values of the last incomplete block of n */
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do
        x = kn_rng_next(r);
    while (x >= limit);
    return x % n;
}

uint64_t kn__data_hash(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
    return h;
}

const char *kn_split_name(kn_split s)
{
    static const char *names[KN_SPLIT_COUNT] = {"train", "valid", "test"};
    return (unsigned)s < KN_SPLIT_COUNT ? names[s] : "?";
}

kn_dataset_params kn_dataset_default_params(void)
{
    return (kn_dataset_params){.seed = 0, .ratio = {0.7, 0.15, 0.15}};
}

/* ---- directory listing ---- */

typedef struct names {
    char **v;
    int n, cap;
} names;

static void names_free(names *l)
{
    for (int i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = l->cap = 0;
}

static kn_status names_push(names *l, const char *s)
{
    if (l->n == l->cap) {
        int cap = l->cap ? l->cap * 2 : 16;
        char **v = realloc(l->v, (size_t)cap * sizeof *v);
        if (!v)
            return KN_NOMEM;
        l->v = v;
        l->cap = cap;
    }
    if (!(l->v[l->n] = strdup(s)))
        return KN_NOMEM;
    l->n++;
    return KN_OK;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool names_has(const names *l, const char *s)
{
    return bsearch(&s, l->v, (size_t)l->n, sizeof *l->v, cmp_str) != NULL;
}

static bool has_image_ext(const char *name)
{
    const char *dot = strrchr(name, '.');
    return dot && (strcasecmp(dot, ".jpg") == 0 || strcasecmp(dot, ".jpeg") == 0 ||
                   strcasecmp(dot, ".png") == 0);
}

enum list_kind { LIST_DIRS, LIST_IMAGES };

/* Lists dir's visible sub-folders or image files, sorted; at most max of
 * them (KN_TOO_LARGE beyond, with what_max naming the limit). */
static kn_status list_dir(const char *dir, enum list_kind kind, int max, const char *what_max,
                          names *out, kn_err *e)
{
    memset(out, 0, sizeof *out);
    DIR *d = opendir(dir);
    if (!d)
        return kn_err_set(e, errno == ENOENT ? KN_NOT_FOUND : KN_IO, "%s: %s", dir,
                          strerror(errno));
    kn_status rc = KN_OK;
    struct dirent *de;
    for (errno = 0; (de = readdir(d)); errno = 0) {
        if (de->d_name[0] == '.')
            continue;
        if (kind == LIST_IMAGES && !has_image_ext(de->d_name))
            continue;
        bool is_dir = de->d_type == DT_DIR, is_file = de->d_type == DT_REG;
        if (de->d_type == DT_LNK || de->d_type == DT_UNKNOWN) {
            struct stat st;
            if (fstatat(dirfd(d), de->d_name, &st, 0) == 0) {
                is_dir = S_ISDIR(st.st_mode);
                is_file = S_ISREG(st.st_mode);
            } else {
                /* a dangling link named like an image is listed, so that
                 * checking reports it rather than hiding it */
                is_file = true;
            }
        }
        if (kind == LIST_DIRS ? !is_dir : !is_file)
            continue;
        if (out->n >= max) {
            rc = kn_err_set(e, KN_TOO_LARGE, "%s: more than %d %s", dir, max, what_max);
            goto out;
        }
        if ((rc = names_push(out, de->d_name))) {
            kn_err_set(e, rc, "%s: out of memory listing the folder", dir);
            goto out;
        }
    }
    if (errno) {
        rc = kn_err_set(e, KN_IO, "%s: %s", dir, strerror(errno));
        goto out;
    }
    if (out->n > 1)
        qsort(out->v, (size_t)out->n, sizeof *out->v, cmp_str);
out:
    closedir(d);
    if (rc)
        names_free(out);
    return rc;
}

static kn_status join(char *out, const char *a, const char *b, kn_err *e)
{
    int n = snprintf(out, KN__DATA_PATH_MAX, "%s/%s", a, b);
    if (n < 0 || n >= KN__DATA_PATH_MAX)
        return kn_err_set(e, KN_TOO_LARGE, "%s/%s: path longer than %d bytes", a, b,
                          KN__DATA_PATH_MAX - 1);
    return KN_OK;
}

static bool is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* ---- building the item lists ---- */

typedef struct builder {
    kn_dataset *d;
    int cap[KN_SPLIT_COUNT];
    int budget; /* files still allowed */
} builder;

static kn_status add_item(builder *b, kn_split s, const char *dir, const char *file, int label,
                          kn_err *e)
{
    kn_dataset *d = b->d;
    char path[KN__DATA_PATH_MAX];
    kn_status rc = join(path, dir, file, e);
    if (rc)
        return rc;
    if (d->count[s] == b->cap[s]) {
        int cap = b->cap[s] ? b->cap[s] * 2 : 64;
        kn_ds_item *v = realloc(d->items[s], (size_t)cap * sizeof *v);
        if (!v)
            return kn_err_set(e, KN_NOMEM, "%s: out of memory listing files", dir);
        d->items[s] = v;
        b->cap[s] = cap;
    }
    kn_ds_item *it = &d->items[s][d->count[s]];
    if (!(it->path = strdup(path)))
        return kn_err_set(e, KN_NOMEM, "%s: out of memory listing files", dir);
    it->label = label;
    d->count[s]++;
    return KN_OK;
}

/* Lists the images of one class folder within the file budget. */
static kn_status list_class(builder *b, const char *dir, names *files, kn_err *e)
{
    kn_status rc = list_dir(dir, LIST_IMAGES, b->budget, "image files in the data set", files, e);
    if (!rc)
        b->budget -= files->n;
    return rc;
}

static kn_status take_classes(kn_dataset *d, names *cls, kn_err *e)
{
    d->class_dirs = cls->v;
    d->n_classes = cls->n;
    memset(cls, 0, sizeof *cls);
    if (!(d->class_names = calloc((size_t)d->n_classes, sizeof *d->class_names)))
        return kn_err_set(e, KN_NOMEM, "out of memory for %d class names", d->n_classes);
    for (int c = 0; c < d->n_classes; c++) {
        size_t n = strlen(d->class_dirs[c]) + 1;
        if (!(d->class_names[c] = malloc(n)))
            return kn_err_set(e, KN_NOMEM, "out of memory for class names");
        kn_class_display_name(d->class_dirs[c], d->class_names[c], n);
    }
    return KN_OK;
}

/* root/train/<class>/..., with valid/ (or val/) and test/ when present. */
static kn_status open_split_layout(builder *b, char dirs[KN_SPLIT_COUNT][KN__DATA_PATH_MAX],
                                   const bool present[KN_SPLIT_COUNT], kn_err *e)
{
    kn_dataset *d = b->d;
    names cls = {0}, other = {0}, files = {0};
    char cdir[KN__DATA_PATH_MAX];
    kn_status rc = list_dir(dirs[KN_SPLIT_TRAIN], LIST_DIRS, KN__DATA_MAX_CLASSES,
                            "class folders", &cls, e);
    if (rc)
        goto out;
    if (cls.n == 0) {
        rc = kn_err_set(e, KN_BAD_FORMAT, "%s: no class folders", dirs[KN_SPLIT_TRAIN]);
        goto out;
    }
    if ((rc = take_classes(d, &cls, e)))
        goto out;
    /* the same class folders in every split that exists */
    names train_cls = {.v = d->class_dirs, .n = d->n_classes};
    for (int s = KN_SPLIT_VALID; s < KN_SPLIT_COUNT; s++) {
        if (!present[s])
            continue;
        if ((rc = list_dir(dirs[s], LIST_DIRS, KN__DATA_MAX_CLASSES, "class folders", &other,
                           e)))
            goto out;
        for (int i = 0; i < other.n; i++)
            if (!names_has(&train_cls, other.v[i])) {
                rc = kn_err_set(e, KN_BAD_FORMAT, "%s/%s: class folder not in %s", dirs[s],
                                other.v[i], dirs[KN_SPLIT_TRAIN]);
                goto out;
            }
        for (int c = 0; c < d->n_classes; c++)
            if (!names_has(&other, d->class_dirs[c])) {
                rc = kn_err_set(e, KN_BAD_FORMAT, "%s/%s: class folder missing from %s",
                                dirs[KN_SPLIT_TRAIN], d->class_dirs[c], dirs[s]);
                goto out;
            }
        names_free(&other);
    }
    for (int s = 0; s < KN_SPLIT_COUNT; s++) {
        if (!present[s])
            continue;
        for (int c = 0; c < d->n_classes; c++) {
            if ((rc = join(cdir, dirs[s], d->class_dirs[c], e)) ||
                (rc = list_class(b, cdir, &files, e)))
                goto out;
            if (s == KN_SPLIT_TRAIN && files.n == 0) {
                rc = kn_err_set(e, KN_BAD_FORMAT, "%s: no .jpg, .jpeg or .png files", cdir);
                goto out;
            }
            for (int i = 0; i < files.n; i++)
                if ((rc = add_item(b, (kn_split)s, cdir, files.v[i], c, e)))
                    goto out;
            names_free(&files);
        }
    }
out:
    names_free(&files);
    names_free(&other);
    names_free(&cls);
    return rc;
}

/* How many of a class's n files go to valid and test (see the top). */
static void split_counts(const double ratio[KN_SPLIT_COUNT], int n, int *nv, int *nt)
{
    long v = lround(ratio[KN_SPLIT_VALID] * n), t = lround(ratio[KN_SPLIT_TEST] * n);
    while (v + t > n - 1) {
        if (t > 0)
            t--;
        else
            v--;
    }
    *nv = (int)v;
    *nt = (int)t;
}

/* root/<class>/..., split per class by the ratios. */
static kn_status open_flat_layout(builder *b, const kn_dataset_params *p, kn_err *e)
{
    kn_dataset *d = b->d;
    names cls = {0}, files = {0};
    char cdir[KN__DATA_PATH_MAX];
    int *perm = NULL;
    unsigned char *where = NULL;
    kn_status rc = list_dir(d->root, LIST_DIRS, KN__DATA_MAX_CLASSES, "class folders", &cls, e);
    if (rc)
        goto out;
    if (cls.n == 0) {
        rc = kn_err_set(e, KN_BAD_FORMAT,
                        "%s: no class folders (expected %s/<class>/*.jpg or %s/train/<class>/)",
                        d->root, d->root, d->root);
        goto out;
    }
    if ((rc = take_classes(d, &cls, e)))
        goto out;
    d->generated_split = true;
    for (int s = 0; s < KN_SPLIT_COUNT; s++)
        d->ratio[s] = p->ratio[s];
    for (int c = 0; c < d->n_classes; c++) {
        if ((rc = join(cdir, d->root, d->class_dirs[c], e)) ||
            (rc = list_class(b, cdir, &files, e)))
            goto out;
        int n = files.n;
        if (n == 0) {
            rc = kn_err_set(e, KN_BAD_FORMAT, "%s: no .jpg, .jpeg or .png files", cdir);
            goto out;
        }
        free(perm);
        free(where);
        perm = malloc((size_t)n * sizeof *perm);
        where = malloc((size_t)n);
        if (!perm || !where) {
            rc = kn_err_set(e, KN_NOMEM, "%s: out of memory splitting %d files", cdir, n);
            goto out;
        }
        kn_rng r;
        kn_rng_seed(&r, kn__data_seed(KN__DATA_SEED_SPLIT, p->seed,
                                      kn__data_hash(d->class_dirs[c]), 0));
        for (int i = 0; i < n; i++)
            perm[i] = i;
        for (int i = n - 1; i > 0; i--) {
            int j = (int)kn__data_rng_below(&r, (uint64_t)i + 1);
            int t = perm[i];
            perm[i] = perm[j];
            perm[j] = t;
        }
        int nv, nt;
        split_counts(p->ratio, n, &nv, &nt);
        for (int k = 0; k < n; k++)
            where[perm[k]] = k < nv ? KN_SPLIT_VALID : k < nv + nt ? KN_SPLIT_TEST : KN_SPLIT_TRAIN;
        for (int i = 0; i < n; i++)
            if ((rc = add_item(b, (kn_split)where[i], cdir, files.v[i], c, e)))
                goto out;
        names_free(&files);
    }
out:
    free(where);
    free(perm);
    names_free(&files);
    names_free(&cls);
    return rc;
}

static kn_status check_params(const kn_dataset_params *p, kn_err *e)
{
    double sum = 0;
    for (int s = 0; s < KN_SPLIT_COUNT; s++) {
        if (!isfinite(p->ratio[s]) || p->ratio[s] < 0)
            goto bad;
        sum += p->ratio[s];
    }
    if (fabs(sum - 1.0) > 1e-6 || !(p->ratio[KN_SPLIT_TRAIN] > 0))
        goto bad;
    return KN_OK;
bad:
    return kn_err_set(e, KN_INVALID,
                      "split ratios %g,%g,%g: each must be >= 0, they must sum to 1 and train "
                      "must be > 0",
                      p->ratio[0], p->ratio[1], p->ratio[2]);
}

kn_status kn_dataset_open(const char *root, const kn_dataset_params *p, kn_dataset **out,
                          kn_err *e)
{
    if (out)
        *out = NULL;
    if (!root || !out)
        return kn_err_set(e, KN_INVALID, "dataset: no root or output");
    kn_dataset_params dp = p ? *p : kn_dataset_default_params();
    kn_status rc = check_params(&dp, e);
    if (rc)
        return rc;
    size_t rl = strlen(root);
    while (rl > 1 && root[rl - 1] == '/')
        rl--;
    if (rl == 0)
        return kn_err_set(e, KN_INVALID, "dataset: empty root path");
    if (rl >= sizeof((kn_dataset *)0)->root)
        return kn_err_set(e, KN_TOO_LARGE, "dataset: root path longer than %zu bytes",
                          sizeof((kn_dataset *)0)->root - 1);
    struct stat st;
    if (stat(root, &st) != 0)
        return kn_err_set(e, errno == ENOENT ? KN_NOT_FOUND : KN_IO, "%.*s: %s", (int)rl, root,
                          errno == ENOENT ? "no such directory" : strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return kn_err_set(e, KN_INVALID, "%.*s: not a directory", (int)rl, root);

    kn_dataset *d = calloc(1, sizeof *d);
    if (!d)
        return kn_err_set(e, KN_NOMEM, "dataset: out of memory");
    memcpy(d->root, root, rl);
    d->root[rl] = '\0';
    builder b = {.d = d, .budget = KN__DATA_MAX_FILES};

    /* which layout: a train/ folder makes it the split layout */
    char dirs[KN_SPLIT_COUNT][KN__DATA_PATH_MAX], val[KN__DATA_PATH_MAX];
    bool present[KN_SPLIT_COUNT];
    if ((rc = join(dirs[KN_SPLIT_TRAIN], d->root, "train", e)) ||
        (rc = join(dirs[KN_SPLIT_VALID], d->root, "valid", e)) ||
        (rc = join(val, d->root, "val", e)) || (rc = join(dirs[KN_SPLIT_TEST], d->root, "test", e)))
        goto out;
    for (int s = 0; s < KN_SPLIT_COUNT; s++)
        present[s] = is_dir(dirs[s]);
    if (is_dir(val)) {
        if (present[KN_SPLIT_VALID]) {
            rc = kn_err_set(e, KN_BAD_FORMAT, "%s: both valid/ and val/ exist; keep one",
                            d->root);
            goto out;
        }
        memcpy(dirs[KN_SPLIT_VALID], val, sizeof val);
        present[KN_SPLIT_VALID] = true;
    }
    if (present[KN_SPLIT_TRAIN]) {
        rc = open_split_layout(&b, dirs, present, e);
    } else if (present[KN_SPLIT_VALID] || present[KN_SPLIT_TEST]) {
        rc = kn_err_set(e, KN_BAD_FORMAT, "%s exists but %s does not",
                        dirs[present[KN_SPLIT_VALID] ? KN_SPLIT_VALID : KN_SPLIT_TEST],
                        dirs[KN_SPLIT_TRAIN]);
    } else {
        rc = open_flat_layout(&b, &dp, e);
    }
out:
    if (rc) {
        kn_dataset_free(d);
        return rc;
    }
    *out = d;
    return KN_OK;
}

void kn_dataset_free(kn_dataset *d)
{
    if (!d)
        return;
    for (int s = 0; s < KN_SPLIT_COUNT; s++) {
        for (int i = 0; i < d->count[s]; i++)
            free(d->items[s][i].path);
        free(d->items[s]);
    }
    for (int c = 0; c < d->n_classes; c++) {
        free(d->class_dirs[c]);
        if (d->class_names)
            free(d->class_names[c]);
    }
    free(d->class_dirs);
    free(d->class_names);
    free(d);
}
