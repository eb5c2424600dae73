/* data module tests: synthetic data sets written and reopened; the flat
 * layout's seeded stratified split; layout errors with the folder named;
 * loaders (each item once per epoch, seeded shuffling, drop_last, both
 * augmentations against a recomputation); the crop-box rules of
 * RandomResizedCrop; unreadable files skipped, counted and reported.
 * Works in a fresh folder under $TMPDIR (or /tmp), removed at the end. */
#include "kennel/data.h"

#include "data_int.h"
#include "kn_test.h"

#include <ftw.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmp[1024];

/* ---- file-system helpers ---- */

static const char *at(char *buf, size_t n, const char *rel)
{
    snprintf(buf, n, "%s/%s", tmp, rel);
    return buf;
}

static void mkdirs(const char *rel)
{
    char p[2048];
    at(p, sizeof p, rel);
    for (char *s = p + strlen(tmp) + 1; *s; s++)
        if (*s == '/') {
            *s = '\0';
            mkdir(p, 0755);
            *s = '/';
        }
    mkdir(p, 0755);
}

static void put(const char *rel, const void *data, size_t n)
{
    char p[2048];
    FILE *f = fopen(at(p, sizeof p, rel), "wb");
    if (!f) {
        fprintf(stderr, "cannot write %s\n", p);
        exit(1);
    }
    fwrite(data, 1, n, f);
    fclose(f);
}

static void touch(const char *rel)
{
    put(rel, "x", 1);
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
    (void)st;
    (void)flag;
    (void)f;
    return remove(p);
}

static void rmrf(const char *path)
{
    nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static bool read_all(const char *path, kn_buf *b)
{
    kn_buf_init(b, 1 << 24);
    return kn_file_read(path, b, NULL) == KN_OK;
}

static kn_status open_rel(const char *rel, const kn_dataset_params *p, kn_dataset **d,
                          kn_err *e)
{
    char root[2048];
    kn_err_clear(e);
    return kn_dataset_open(at(root, sizeof root, rel), p, d, e);
}

/* ---- synth + open ---- */

static void test_synth_open(void)
{
    char root[2048];
    kn_err e;
    KN_REQUIRE(kn_dataset_synth(at(root, sizeof root, "syn"), 4, 8, 5, &e) == KN_OK);
    kn_dataset *d = NULL;
    KN_REQUIRE(open_rel("syn", NULL, &d, &e) == KN_OK);
    KN_CHECK_INT(d->n_classes, 4);
    KN_CHECK_STR(d->class_dirs[0], "01.red_circle");
    KN_CHECK_STR(d->class_dirs[1], "02.green_square");
    KN_CHECK_STR(d->class_dirs[2], "03.blue_triangle");
    KN_CHECK_STR(d->class_dirs[3], "04.yellow_cross");
    KN_CHECK_STR(d->class_names[0], "red_circle");
    KN_CHECK_STR(d->class_names[3], "yellow_cross");
    KN_CHECK_INT(d->count[KN_SPLIT_TRAIN], 32);
    KN_CHECK_INT(d->count[KN_SPLIT_VALID], 8);
    KN_CHECK_INT(d->count[KN_SPLIT_TEST], 8);
    KN_CHECK(!d->generated_split);
    KN_CHECK_STR(kn_split_name(KN_SPLIT_VALID), "valid");
    /* items class by class, names sorted, under split/<class>/ */
    for (int s = 0; s < KN_SPLIT_COUNT; s++)
        for (int i = 0; i < d->count[s]; i++) {
            const kn_ds_item *it = &d->items[s][i];
            char want[2048];
            snprintf(want, sizeof want, "%s/%s/%s/", root, kn_split_name((kn_split)s),
                     d->class_dirs[it->label]);
            KN_CHECK(strncmp(it->path, want, strlen(want)) == 0);
            if (i > 0) {
                const kn_ds_item *prev = &d->items[s][i - 1];
                KN_CHECK(prev->label < it->label ||
                         (prev->label == it->label && strcmp(prev->path, it->path) < 0));
            }
        }
    /* both formats, all decodable, 64..96 pixels */
    int jpg = 0, png = 0;
    for (int i = 0; i < d->count[KN_SPLIT_TRAIN]; i++) {
        const char *p = d->items[KN_SPLIT_TRAIN][i].path;
        jpg += strstr(p, ".jpg") != NULL;
        png += strstr(p, ".png") != NULL;
        kn_img im;
        KN_CHECK_INT(kn_img_load(p, NULL, &im, &e), KN_OK);
        KN_CHECK(im.w >= 64 && im.w <= 96 && im.h >= 64 && im.h <= 96);
        kn_img_deinit(&im);
    }
    KN_CHECK_INT(jpg, 16);
    KN_CHECK_INT(png, 16);
    kn_buf b;
    char readme[2048];
    KN_CHECK(read_all(at(readme, sizeof readme, "syn/README.txt"), &b));
    KN_CHECK_CONTAINS((const char *)b.data, "SYNTHETIC");
    KN_CHECK_CONTAINS((const char *)b.data, "kennel dataset synth");
    KN_CHECK_CONTAINS((const char *)b.data, "seed 5");
    kn_buf_deinit(&b);

    /* the same seed writes the same bytes; another seed other bytes */
    char r2[2048], r3[2048];
    KN_REQUIRE(kn_dataset_synth(at(r2, sizeof r2, "syn_same"), 4, 8, 5, &e) == KN_OK);
    KN_REQUIRE(kn_dataset_synth(at(r3, sizeof r3, "syn_other"), 4, 8, 6, &e) == KN_OK);
    int same = 0, differ = 0;
    for (int s = 0; s < KN_SPLIT_COUNT; s++)
        for (int i = 0; i < d->count[s]; i++) {
            const char *p = d->items[s][i].path;
            char q2[2048], q3[2048];
            snprintf(q2, sizeof q2, "%s%s", r2, p + strlen(root));
            snprintf(q3, sizeof q3, "%s%s", r3, p + strlen(root));
            kn_buf a, x, y;
            KN_CHECK(read_all(p, &a) && read_all(q2, &x) && read_all(q3, &y));
            same += a.len == x.len && memcmp(a.data, x.data, a.len) == 0;
            differ += !(a.len == y.len && memcmp(a.data, y.data, a.len) == 0);
            kn_buf_deinit(&a);
            kn_buf_deinit(&x);
            kn_buf_deinit(&y);
        }
    KN_CHECK_INT(same, 48);
    KN_CHECK_INT(differ, 48);
    kn_dataset_free(d);

    /* refuses a non-empty folder and bad sizes */
    KN_CHECK_INT(kn_dataset_synth(root, 4, 8, 5, &e), KN_EXISTS);
    KN_CHECK_CONTAINS(e.msg, "syn");
    KN_CHECK_INT(kn_dataset_synth(at(r2, sizeof r2, "syn_bad"), 0, 8, 5, &e), KN_INVALID);
    KN_CHECK_INT(kn_dataset_synth(r2, 65, 8, 5, &e), KN_INVALID);
    KN_CHECK_INT(kn_dataset_synth(r2, 4, 0, 5, &e), KN_INVALID);
    /* per_class below 4 still gives one valid and one test image */
    kn_dataset *small = NULL;
    KN_REQUIRE(kn_dataset_synth(at(r2, sizeof r2, "syn_small"), 2, 3, 1, &e) == KN_OK);
    KN_REQUIRE(open_rel("syn_small", NULL, &small, &e) == KN_OK);
    KN_CHECK_INT(small->count[KN_SPLIT_TRAIN], 6);
    KN_CHECK_INT(small->count[KN_SPLIT_VALID], 2);
    KN_CHECK_INT(small->count[KN_SPLIT_TEST], 2);
    kn_dataset_free(small);
}

/* ---- flat layout ---- */

static void make_flat(void)
{
    static const struct {
        const char *cls;
        int n;
    } classes[] = {{"b_cls", 10}, {"a_cls", 20}, {"c_cls", 7}, {"d_one", 1}};
    for (size_t c = 0; c < sizeof classes / sizeof classes[0]; c++) {
        char rel[256];
        snprintf(rel, sizeof rel, "flat/%s", classes[c].cls);
        mkdirs(rel);
        for (int i = 0; i < classes[c].n; i++) {
            snprintf(rel, sizeof rel, "flat/%s/img%02d.%s", classes[c].cls, i,
                     i % 3 == 0 ? "JPG" : i % 3 == 1 ? "png" : "jpeg");
            touch(rel);
        }
        /* ignored: hidden files, other extensions, sub-folders */
        snprintf(rel, sizeof rel, "flat/%s/.hidden.jpg", classes[c].cls);
        touch(rel);
        snprintf(rel, sizeof rel, "flat/%s/notes.txt", classes[c].cls);
        touch(rel);
        snprintf(rel, sizeof rel, "flat/%s/sub.jpg", classes[c].cls);
        mkdirs(rel);
    }
    mkdirs("flat/.cache");
    touch("flat/.cache/x.jpg");
    touch("flat/stray.jpg");
}

/* Which split each file went to, keyed by path, as a string of digits in
 * the order of the sorted full listing. */
static void split_signature(const kn_dataset *d, char *sig, size_t n)
{
    /* collect all items, sort by path, record split */
    int total = d->count[0] + d->count[1] + d->count[2];
    struct rec {
        const char *p;
        int s;
    } *r = calloc((size_t)total, sizeof *r);
    int k = 0;
    for (int s = 0; s < KN_SPLIT_COUNT; s++)
        for (int i = 0; i < d->count[s]; i++)
            r[k++] = (struct rec){d->items[s][i].path, s};
    for (int i = 1; i < total; i++) /* insertion sort: small */
        for (int j = i; j > 0 && strcmp(r[j - 1].p, r[j].p) > 0; j--) {
            struct rec t = r[j];
            r[j] = r[j - 1];
            r[j - 1] = t;
        }
    for (int i = 0; i < total && (size_t)i + 1 < n; i++)
        sig[i] = (char)('0' + r[i].s);
    sig[total < (int)n ? total : (int)n - 1] = '\0';
    free(r);
}

static int class_count(const kn_dataset *d, kn_split s, int label)
{
    int n = 0;
    for (int i = 0; i < d->count[s]; i++)
        n += d->items[s][i].label == label;
    return n;
}

static void test_flat_split(void)
{
    make_flat();
    kn_err e;
    kn_dataset *d = NULL;
    kn_dataset_params p = kn_dataset_default_params();
    p.seed = 1;
    KN_REQUIRE(open_rel("flat", &p, &d, &e) == KN_OK);
    KN_CHECK(d->generated_split);
    KN_CHECK_NEAR(d->ratio[KN_SPLIT_TEST], 0.15, 0);
    KN_CHECK_INT(d->n_classes, 4);
    KN_CHECK_STR(d->class_dirs[0], "a_cls");
    KN_CHECK_STR(d->class_dirs[1], "b_cls");
    KN_CHECK_STR(d->class_dirs[3], "d_one");
    /* per class: valid = test = round(0.15 n), the rest train */
    static const int n[4] = {20, 10, 7, 1}, v[4] = {3, 2, 1, 0};
    for (int c = 0; c < 4; c++) {
        KN_CHECK_INT(class_count(d, KN_SPLIT_VALID, c), v[c]);
        KN_CHECK_INT(class_count(d, KN_SPLIT_TEST, c), v[c]);
        KN_CHECK_INT(class_count(d, KN_SPLIT_TRAIN, c), n[c] - 2 * v[c]);
    }
    KN_CHECK_INT(d->count[0] + d->count[1] + d->count[2], 38);
    /* each split listed class by class, names sorted; all files distinct */
    for (int s = 0; s < KN_SPLIT_COUNT; s++)
        for (int i = 1; i < d->count[s]; i++) {
            const kn_ds_item *a = &d->items[s][i - 1], *b = &d->items[s][i];
            KN_CHECK(a->label < b->label || (a->label == b->label && strcmp(a->path, b->path) < 0));
        }
    char sig1[64], sig1b[64], sig2[64];
    split_signature(d, sig1, sizeof sig1);
    KN_CHECK_INT(strlen(sig1), 38);
    kn_dataset_free(d);

    KN_REQUIRE(open_rel("flat", &p, &d, &e) == KN_OK);
    split_signature(d, sig1b, sizeof sig1b);
    KN_CHECK_STR(sig1, sig1b);
    kn_dataset_free(d);

    p.seed = 2;
    KN_REQUIRE(open_rel("flat", &p, &d, &e) == KN_OK);
    split_signature(d, sig2, sizeof sig2);
    KN_CHECK(strcmp(sig1, sig2) != 0);
    for (int c = 0; c < 4; c++) /* still stratified */
        KN_CHECK_INT(class_count(d, KN_SPLIT_VALID, c), v[c]);
    kn_dataset_free(d);

    /* ratios: all to train; a large test share keeps one training file */
    p = (kn_dataset_params){.seed = 3, .ratio = {1, 0, 0}};
    KN_REQUIRE(open_rel("flat", &p, &d, &e) == KN_OK);
    KN_CHECK_INT(d->count[KN_SPLIT_TRAIN], 38);
    KN_CHECK_INT(d->count[KN_SPLIT_VALID] + d->count[KN_SPLIT_TEST], 0);
    kn_dataset_free(d);
    p = (kn_dataset_params){.seed = 3, .ratio = {0.05, 0.45, 0.5}};
    KN_REQUIRE(open_rel("flat", &p, &d, &e) == KN_OK);
    for (int c = 0; c < 4; c++)
        KN_CHECK(class_count(d, KN_SPLIT_TRAIN, c) >= 1);
    KN_CHECK_INT(class_count(d, KN_SPLIT_TEST, 0), 10);  /* 20: 9 + 10 + 1 */
    KN_CHECK_INT(class_count(d, KN_SPLIT_VALID, 0), 9);
    KN_CHECK_INT(class_count(d, KN_SPLIT_TRAIN, 3), 1);  /* the one-file class */
    kn_dataset_free(d);

    /* bad ratios */
    static const double bad[][3] = {{0.5, 0.5, 0.5}, {0, 0.5, 0.5}, {1.2, -0.1, -0.1}, {NAN, 0, 1}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        p = (kn_dataset_params){.ratio = {bad[i][0], bad[i][1], bad[i][2]}};
        KN_CHECK_INT(open_rel("flat", &p, &d, &e), KN_INVALID);
        KN_CHECK(d == NULL);
        KN_CHECK_CONTAINS(e.msg, "ratios");
    }
}

static void test_byte_order(void)
{
    /* strcmp order: upper case before '_' before lower case */
    mkdirs("order/train/a");
    mkdirs("order/train/B");
    mkdirs("order/train/_c");
    mkdirs("order/train/10.x");
    mkdirs("order/train/9.y");
    touch("order/train/a/2.jpg");
    touch("order/train/a/10.jpg");
    touch("order/train/a/Z.png");
    touch("order/train/B/1.jpg");
    touch("order/train/_c/1.jpg");
    touch("order/train/10.x/1.jpg");
    touch("order/train/9.y/1.jpg");
    kn_dataset *d = NULL;
    kn_err e;
    KN_REQUIRE(open_rel("order", NULL, &d, &e) == KN_OK);
    KN_REQUIRE(d->n_classes == 5);
    KN_CHECK_STR(d->class_dirs[0], "10.x");
    KN_CHECK_STR(d->class_dirs[1], "9.y");
    KN_CHECK_STR(d->class_dirs[2], "B");
    KN_CHECK_STR(d->class_dirs[3], "_c");
    KN_CHECK_STR(d->class_dirs[4], "a");
    KN_CHECK_STR(d->class_names[0], "x");
    KN_CHECK_STR(d->class_names[1], "y");
    KN_CHECK_INT(d->count[KN_SPLIT_VALID], 0);
    KN_CHECK_INT(d->count[KN_SPLIT_TEST], 0);
    KN_REQUIRE(d->count[KN_SPLIT_TRAIN] == 7);
    KN_CHECK_CONTAINS(d->items[0][4].path, "/a/10.jpg");
    KN_CHECK_CONTAINS(d->items[0][5].path, "/a/2.jpg");
    KN_CHECK_CONTAINS(d->items[0][6].path, "/a/Z.png");
    kn_dataset_free(d);
}

/* ---- errors name the folder ---- */

static void expect_error(const char *rel, kn_status want, const char *a, const char *b)
{
    kn_dataset *d = (kn_dataset *)1;
    kn_err e;
    kn_status rc = open_rel(rel, NULL, &d, &e);
    KN_CHECK_INT(rc, want);
    KN_CHECK(d == NULL);
    if (a)
        KN_CHECK_CONTAINS(e.msg, a);
    if (b)
        KN_CHECK_CONTAINS(e.msg, b);
    if (rc != want)
        fprintf(stderr, "  (%s: %s)\n", rel, e.msg);
}

static void test_errors(void)
{
    char p[2048];
    expect_error("missing", KN_NOT_FOUND, at(p, sizeof p, "missing"), NULL);
    touch("plainfile");
    expect_error("plainfile", KN_INVALID, "plainfile", "not a directory");

    mkdirs("empty");
    expect_error("empty", KN_BAD_FORMAT, at(p, sizeof p, "empty"), "no class folders");

    mkdirs("notrain/train");
    expect_error("notrain", KN_BAD_FORMAT, at(p, sizeof p, "notrain/train"), "no class folders");

    /* a class in valid/ that train/ lacks */
    mkdirs("extra/train/a");
    touch("extra/train/a/1.jpg");
    mkdirs("extra/valid/a");
    mkdirs("extra/valid/zebra");
    expect_error("extra", KN_BAD_FORMAT, at(p, sizeof p, "extra/valid/zebra"), "extra/train");

    /* a class of train/ missing from an existing test/ */
    mkdirs("lack/train/a");
    mkdirs("lack/train/b");
    touch("lack/train/a/1.jpg");
    touch("lack/train/b/1.jpg");
    mkdirs("lack/test/a");
    expect_error("lack", KN_BAD_FORMAT, at(p, sizeof p, "lack/train/b"), "lack/test");

    /* ...while a missing test/ is fine, and val/ stands for valid/ */
    mkdirs("lack2/train/a");
    mkdirs("lack2/train/b");
    touch("lack2/train/a/1.jpg");
    touch("lack2/train/b/1.png");
    mkdirs("lack2/val/a");
    mkdirs("lack2/val/b");
    touch("lack2/val/b/2.png");
    kn_dataset *d = NULL;
    kn_err e;
    KN_CHECK_INT(open_rel("lack2", NULL, &d, &e), KN_OK);
    if (d) {
        KN_CHECK_INT(d->count[KN_SPLIT_TRAIN], 2);
        KN_CHECK_INT(d->count[KN_SPLIT_VALID], 1);
        KN_CHECK_INT(d->count[KN_SPLIT_TEST], 0);
        KN_CHECK_CONTAINS(d->items[KN_SPLIT_VALID][0].path, "lack2/val/b/2.png");
        kn_dataset_free(d);
    }
    mkdirs("lack2/valid/a");
    expect_error("lack2", KN_BAD_FORMAT, "val/", "valid/");

    /* a training class without images (other files do not count) */
    mkdirs("noimg/train/a");
    mkdirs("noimg/train/b");
    touch("noimg/train/a/1.jpg");
    touch("noimg/train/b/readme.txt");
    touch("noimg/train/b/.hidden.jpg");
    expect_error("noimg", KN_BAD_FORMAT, at(p, sizeof p, "noimg/train/b"), "no .jpg");
    mkdirs("noimgflat/a");
    mkdirs("noimgflat/b");
    touch("noimgflat/a/1.jpg");
    expect_error("noimgflat", KN_BAD_FORMAT, at(p, sizeof p, "noimgflat/b"), "no .jpg");

    /* valid/ or test/ without train/ */
    mkdirs("notr/test/a");
    touch("notr/test/a/1.jpg");
    expect_error("notr", KN_BAD_FORMAT, at(p, sizeof p, "notr/test"), "train");

    /* empty valid class folders are allowed */
    mkdirs("emptyval/train/a");
    touch("emptyval/train/a/1.jpg");
    mkdirs("emptyval/valid/a");
    KN_CHECK_INT(open_rel("emptyval", NULL, &d, &e), KN_OK);
    kn_dataset_free(d);

    /* path too long for the root field */
    char longp[1200];
    memset(longp, 'x', sizeof longp - 1);
    longp[0] = '/';
    longp[sizeof longp - 1] = '\0';
    KN_CHECK_INT(kn_dataset_open(longp, NULL, &d, &e), KN_TOO_LARGE);
    KN_CHECK_INT(kn_dataset_open(NULL, NULL, &d, &e), KN_INVALID);
}

/* ---- loaders ---- */

static kn_dataset *synth_small(const char *rel, int classes, int per_class)
{
    char root[2048];
    kn_err e;
    kn_dataset *d = NULL;
    struct stat st;
    if (stat(at(root, sizeof root, rel), &st) != 0 &&
        kn_dataset_synth(root, classes, per_class, 11, &e) != KN_OK) {
        fprintf(stderr, "synth: %s\n", e.msg);
        return NULL;
    }
    if (kn_dataset_open(root, NULL, &d, &e) != KN_OK) {
        fprintf(stderr, "open: %s\n", e.msg);
        return NULL;
    }
    return d;
}

static kn_loader_params small_params(void)
{
    kn_loader_params lp = kn_loader_default_params();
    lp.pre.w = 24;
    lp.pre.h = 20;
    lp.batch = 7;
    return lp;
}

#define PER (3 * 24 * 20)

/* Runs one epoch; returns images seen and fills order[] with the indices. */
static int run_epoch(kn_loader *l, int epoch, int batch, int *order, int *sizes, int *n_batches,
                     float *all)
{
    float *img = malloc((size_t)batch * PER * sizeof *img);
    int *lab = malloc((size_t)batch * sizeof *lab), *idx = malloc((size_t)batch * sizeof *idx);
    int total = 0, nb = 0, n;
    kn_err e;
    kn_loader_start(l, epoch);
    while (kn_loader_next(l, img, lab, idx, &n, &e) == KN_OK && n > 0) {
        for (int i = 0; i < n; i++) {
            order[total] = idx[i];
            if (all)
                memcpy(all + (size_t)total * PER, img + (size_t)i * PER, PER * sizeof *img);
            total++;
        }
        if (sizes)
            sizes[nb] = n;
        nb++;
    }
    if (n_batches)
        *n_batches = nb;
    free(img);
    free(lab);
    free(idx);
    return total;
}

static void test_loader_epochs(void)
{
    kn_dataset *d = synth_small("ld", 4, 10);
    KN_REQUIRE(d != NULL);
    KN_REQUIRE(d->count[KN_SPLIT_TRAIN] == 40);
    kn_err e;
    kn_loader *l = NULL;
    kn_loader_params lp = small_params();
    lp.shuffle = false;
    KN_REQUIRE(kn_loader_new(d, KN_SPLIT_TRAIN, &lp, &l, &e) == KN_OK);
    int order[64], sizes[16], nb;
    /* in order, 5 full batches and a short one */
    KN_CHECK_INT(run_epoch(l, 0, 7, order, sizes, &nb, NULL), 40);
    KN_CHECK_INT(nb, 6);
    KN_CHECK_INT(sizes[5], 5);
    for (int i = 0; i < 40; i++)
        KN_CHECK_INT(order[i], i);
    /* after the end: nothing, until the next start */
    float img[7 * PER];
    int lab[7], n = -1;
    KN_CHECK_INT(kn_loader_next(l, img, lab, NULL, &n, &e), KN_OK);
    KN_CHECK_INT(n, 0);
    /* labels follow the items; indices may be NULL */
    kn_loader_start(l, 0);
    KN_CHECK_INT(kn_loader_next(l, img, lab, NULL, &n, &e), KN_OK);
    KN_CHECK_INT(n, 7);
    for (int i = 0; i < n; i++)
        KN_CHECK_INT(lab[i], d->items[KN_SPLIT_TRAIN][i].label);
    /* KN_AUG_NONE is kn_img_preprocess of the decoded image */
    float want[PER];
    kn_img im;
    KN_REQUIRE(kn_img_load(d->items[KN_SPLIT_TRAIN][3].path, NULL, &im, &e) == KN_OK);
    KN_REQUIRE(kn_img_preprocess(&im, &lp.pre, want, &e) == KN_OK);
    kn_img_deinit(&im);
    KN_CHECK(memcmp(want, img + 3 * PER, sizeof want) == 0);
    kn_loader_free(l);

    /* shuffled: a permutation, the same for the same (seed, epoch) */
    lp.shuffle = true;
    lp.seed = 42;
    kn_loader *a = NULL, *b = NULL, *c = NULL;
    KN_REQUIRE(kn_loader_new(d, KN_SPLIT_TRAIN, &lp, &a, &e) == KN_OK);
    KN_REQUIRE(kn_loader_new(d, KN_SPLIT_TRAIN, &lp, &b, &e) == KN_OK);
    lp.seed = 43;
    KN_REQUIRE(kn_loader_new(d, KN_SPLIT_TRAIN, &lp, &c, &e) == KN_OK);
    int o0[64], o1[64], o0b[64], o0c[64], o0again[64];
    KN_CHECK_INT(run_epoch(a, 0, 7, o0, NULL, NULL, NULL), 40);
    KN_CHECK_INT(run_epoch(a, 1, 7, o1, NULL, NULL, NULL), 40);
    KN_CHECK_INT(run_epoch(b, 0, 7, o0b, NULL, NULL, NULL), 40);
    KN_CHECK_INT(run_epoch(c, 0, 7, o0c, NULL, NULL, NULL), 40);
    KN_CHECK_INT(run_epoch(a, 0, 7, o0again, NULL, NULL, NULL), 40);
    int seen[40] = {0};
    for (int i = 0; i < 40; i++)
        seen[o0[i]]++;
    for (int i = 0; i < 40; i++)
        KN_CHECK_INT(seen[i], 1);
    KN_CHECK(memcmp(o0, o0b, sizeof(int) * 40) == 0);
    KN_CHECK(memcmp(o0, o0again, sizeof(int) * 40) == 0);
    KN_CHECK(memcmp(o0, o1, sizeof(int) * 40) != 0);
    KN_CHECK(memcmp(o0, o0c, sizeof(int) * 40) != 0);
    int ident = 1;
    for (int i = 0; i < 40; i++)
        ident &= o0[i] == i;
    KN_CHECK(!ident);
    kn_loader_free(a);
    kn_loader_free(b);
    kn_loader_free(c);

    /* drop_last: 5 batches of 7, each item at most once */
    lp.drop_last = true;
    lp.seed = 42;
    KN_REQUIRE(kn_loader_new(d, KN_SPLIT_TRAIN, &lp, &l, &e) == KN_OK);
    KN_CHECK_INT(run_epoch(l, 0, 7, order, sizes, &nb, NULL), 35);
    KN_CHECK_INT(nb, 5);
    for (int i = 0; i < nb; i++)
        KN_CHECK_INT(sizes[i], 7);
    memset(seen, 0, sizeof seen);
    for (int i = 0; i < 35; i++)
        seen[order[i]]++;
    for (int i = 0; i < 40; i++)
        KN_CHECK(seen[i] <= 1);
    KN_CHECK(memcmp(order, o0, sizeof(int) * 35) == 0); /* same order, tail dropped */
    kn_loader_free(l);

    /* the other splits; a batch larger than the split */
    lp.drop_last = false;
    lp.batch = 64;
    KN_REQUIRE(kn_loader_new(d, KN_SPLIT_TEST, &lp, &l, &e) == KN_OK);
    KN_CHECK_INT(run_epoch(l, 0, 64, order, sizes, &nb, NULL), 8);
    KN_CHECK_INT(nb, 1);
    kn_loader_free(l);
    lp.drop_last = true;
    KN_REQUIRE(kn_loader_new(d, KN_SPLIT_TEST, &lp, &l, &e) == KN_OK);
    KN_CHECK_INT(run_epoch(l, 0, 64, order, sizes, &nb, NULL), 0);
    kn_loader_free(l);

    /* parameter errors */
    lp = small_params();
    lp.batch = 0;
    KN_CHECK_INT(kn_loader_new(d, KN_SPLIT_TRAIN, &lp, &l, &e), KN_INVALID);
    KN_CHECK(l == NULL);
    lp = small_params();
    lp.pre.std[1] = 0;
    KN_CHECK_INT(kn_loader_new(d, KN_SPLIT_TRAIN, &lp, &l, &e), KN_INVALID);
    lp = small_params();
    KN_CHECK_INT(kn_loader_new(d, KN_SPLIT_COUNT, &lp, &l, &e), KN_INVALID);
    kn_dataset_free(d);
}

static void test_loader_augment(void)
{
    kn_dataset *d = synth_small("ld", 4, 10);
    KN_REQUIRE(d != NULL);
    kn_err e;
    kn_loader_params lp = small_params();
    lp.augment = KN_AUG_RANDOM;
    lp.seed = 9;
    lp.threads = 2;
    kn_loader *a = NULL, *b = NULL;
    KN_REQUIRE(kn_loader_new(d, KN_SPLIT_TRAIN, &lp, &a, &e) == KN_OK);
    lp.threads = 1;
    lp.batch = 3;
    KN_REQUIRE(kn_loader_new(d, KN_SPLIT_TRAIN, &lp, &b, &e) == KN_OK);
    float *x0 = malloc(40 * PER * sizeof *x0), *y0 = malloc(40 * PER * sizeof *y0),
          *x1 = malloc(40 * PER * sizeof *x1);
    int o0[64], p0[64], o1[64];
    KN_CHECK_INT(run_epoch(a, 2, 7, o0, NULL, NULL, x0), 40);
    KN_CHECK_INT(run_epoch(b, 2, 3, p0, NULL, NULL, y0), 40);
    KN_CHECK_INT(run_epoch(a, 3, 7, o1, NULL, NULL, x1), 40);
    /* same (seed, epoch, item): same pixels, whatever the threads and batch */
    KN_CHECK(memcmp(o0, p0, sizeof(int) * 40) == 0);
    KN_CHECK(memcmp(x0, y0, 40 * PER * sizeof *x0) == 0);
    /* and equal to the augmentation recomputed by hand */
    int differ = 0, flips = 0, fallbacks = 0;
    float *want = malloc(PER * sizeof *want);
    for (int i = 0; i < 40; i++) {
        kn_img im;
        KN_REQUIRE(kn_img_load(d->items[KN_SPLIT_TRAIN][o0[i]].path, NULL, &im, &e) == KN_OK);
        kn_rng r;
        kn__crop c;
        kn__data_aug_rng(&r, 9, 2, o0[i]);
        kn__data_aug_sample(&r, im.w, im.h, &c);
        flips += c.flip;
        fallbacks += c.fallback;
        KN_CHECK_INT(kn__data_augment(&im, &c, &lp.pre, want, &e), KN_OK);
        KN_CHECK(memcmp(want, x0 + (size_t)i * PER, PER * sizeof *want) == 0);
        kn_img_deinit(&im);
        /* the same item in epoch 3 looks different */
        for (int j = 0; j < 40; j++)
            if (o1[j] == o0[i])
                differ += memcmp(x1 + (size_t)j * PER, x0 + (size_t)i * PER,
                                 PER * sizeof *x0) != 0;
    }
    KN_CHECK(differ >= 38);
    KN_CHECK(flips > 5 && flips < 35);
    KN_CHECK(fallbacks < 5);
    /* values are normalised pixels */
    float lo = 1e9f, hi = -1e9f;
    for (size_t i = 0; i < 40 * PER; i++) {
        lo = x0[i] < lo ? x0[i] : lo;
        hi = x0[i] > hi ? x0[i] : hi;
    }
    KN_CHECK(lo >= -2.2f && hi <= 2.7f && hi > lo);
    free(want);
    free(x0);
    free(y0);
    free(x1);
    kn_loader_free(a);
    kn_loader_free(b);
    kn_dataset_free(d);
}

/* E[area fraction | the box fits] for RandomResizedCrop's defaults on a
 * W x H image, by midpoint integration over (scale, log ratio), ignoring
 * the rounding of the sides. */
static double accepted_area_mean(int W, int H)
{
    const int n = 400;
    const double A = (double)W * H, l0 = log(0.75), l1 = log(4.0 / 3.0);
    double num = 0, den = 0;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double sc = 0.08 + 0.92 * (i + 0.5) / n, r = exp(l0 + (l1 - l0) * (j + 0.5) / n);
            if (sqrt(sc * A * r) <= W && sqrt(sc * A / r) <= H) {
                num += sc;
                den += 1;
            }
        }
    return num / den;
}

/* The crop-box rules of RandomResizedCrop.get_params. */
static void test_crop_rules(void)
{
    static const int sizes[][2] = {{500, 400}, {400, 500}, {224, 224}, {97, 61}, {3, 2}};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        int W = sizes[s][0], H = sizes[s][1];
        kn_rng r;
        kn_rng_seed(&r, 1000 + s);
        int n = 4000, fallback = 0, flips = 0, accepted = 0;
        double area_sum = 0, left_sum = 0, area_min = 1, area_max = 0;
        int left_n = 0;
        for (int i = 0; i < n; i++) {
            kn__crop c;
            kn__data_aug_sample(&r, W, H, &c);
            flips += c.flip;
            KN_CHECK(c.w >= 1 && c.h >= 1 && c.w <= W && c.h <= H);
            KN_CHECK(c.left >= 0 && c.top >= 0 && c.left + c.w <= W && c.top + c.h <= H);
            if (c.fallback) {
                fallback++;
                continue;
            }
            accepted++;
            double frac = (double)c.w * c.h / ((double)W * H);
            area_sum += frac;
            area_min = frac < area_min ? frac : area_min;
            area_max = frac > area_max ? frac : area_max;
            if (W >= 97) {
                /* rounding each side by at most 0.5 pixel */
                double tol = 1.0 / (W < H ? W : H) * 2.5 * sqrt(1.0 / 0.08);
                KN_CHECK(frac >= 0.08 * (1 - tol) && frac <= 1.0 + tol);
                double ar = (double)c.w / c.h;
                KN_CHECK(ar >= 0.75 * (1 - tol) && ar <= 4.0 / 3.0 * (1 + tol));
            }
            if (W - c.w > 0) {
                left_sum += (double)c.left / (W - c.w);
                left_n++;
            }
        }
        KN_CHECK_NEAR((double)flips / n, 0.5, 0.04);
        if (W >= 97) {
            KN_CHECK(fallback < n / 20);
            /* accepted boxes follow the area distribution conditioned on
             * fitting, which the oracle integrates independently */
            double mean = area_sum / accepted, want = accepted_area_mean(W, H);
            if (fabs(mean - want) > 0.02)
                fprintf(stderr, "  %dx%d: mean accepted area %.4f, expected %.4f\n", W, H,
                        mean, want);
            KN_CHECK_NEAR(mean, want, 0.02);
            KN_CHECK(area_min < 0.12 && area_max > 0.8);
            KN_CHECK_NEAR(left_sum / left_n, 0.5, 0.05);
        }
    }
    /* extreme shapes: every attempt fails, central crop clamped to the ratio */
    kn_rng r;
    kn_rng_seed(&r, 7);
    kn__crop c;
    kn__data_crop_params(&r, 1000, 10, 0.08, 1.0, 0.75, 4.0 / 3.0, &c);
    KN_CHECK(c.fallback);
    KN_CHECK_INT(c.h, 10);
    KN_CHECK_INT(c.w, 13);
    KN_CHECK_INT(c.top, 0);
    KN_CHECK_INT(c.left, (1000 - 13) / 2);
    kn__data_crop_params(&r, 10, 1000, 0.08, 1.0, 0.75, 4.0 / 3.0, &c);
    KN_CHECK(c.fallback);
    KN_CHECK_INT(c.w, 10);
    KN_CHECK_INT(c.h, 13);
    KN_CHECK_INT(c.top, (1000 - 13) / 2);
    KN_CHECK_INT(c.left, 0);
    /* scale (1, 1) at an in-range ratio: whole image, or fallback to it */
    kn__data_crop_params(&r, 120, 100, 1.0, 1.0, 1.2, 1.2, &c);
    KN_CHECK_INT(c.w, 120);
    KN_CHECK_INT(c.h, 100);
    KN_CHECK_INT(c.left, 0);
    KN_CHECK_INT(c.top, 0);
    /* 1 x 1 image */
    kn__data_aug_sample(&r, 1, 1, &c);
    KN_CHECK(c.w == 1 && c.h == 1 && c.left == 0 && c.top == 0);

    /* the flip mirrors columns */
    uint8_t px[2 * 2 * 3] = {10, 20, 30, 200, 210, 220, 40, 50, 60, 100, 110, 120};
    kn_img im = {.w = 2, .h = 2, .data = px};
    kn_img_preproc pre = {.w = 2, .h = 2, .norm = KN_NORM_NONE};
    float out[12], outf[12];
    kn__crop whole = {.top = 0, .left = 0, .w = 2, .h = 2, .flip = false};
    kn_err e;
    KN_CHECK_INT(kn__data_augment(&im, &whole, &pre, out, &e), KN_OK);
    whole.flip = true;
    KN_CHECK_INT(kn__data_augment(&im, &whole, &pre, outf, &e), KN_OK);
    for (int ch = 0; ch < 3; ch++)
        for (int y = 0; y < 2; y++)
            for (int x = 0; x < 2; x++)
                KN_CHECK(out[ch * 4 + y * 2 + x] == outf[ch * 4 + y * 2 + (1 - x)]);
    KN_CHECK_NEAR(out[0], 10 / 255.0, 1e-6);
    /* a crop outside the image is refused */
    kn__crop bad = {.top = 1, .left = 0, .w = 2, .h = 2};
    KN_CHECK_INT(kn__data_augment(&im, &bad, &pre, out, &e), KN_INVALID);
}

/* ---- unreadable files ---- */

static void test_corrupt_skipped(void)
{
    char root[2048], p[2048];
    kn_err e;
    KN_REQUIRE(kn_dataset_synth(at(root, sizeof root, "bad"), 2, 10, 4, &e) == KN_OK);
    /* truncate one JPEG, replace a PNG's pixels with garbage, add an empty
     * file and a text file named .jpg */
    kn_buf b;
    KN_REQUIRE(read_all(at(p, sizeof p, "bad/train/01.red_circle/train_0003.jpg"), &b));
    put("bad/train/01.red_circle/train_0003.jpg", b.data, b.len / 3);
    kn_buf_deinit(&b);
    KN_REQUIRE(read_all(at(p, sizeof p, "bad/train/02.green_square/train_0001.png"), &b));
    memset(b.data + 40, 0xA5, b.len - 60);
    put("bad/train/02.green_square/train_0001.png", b.data, b.len);
    kn_buf_deinit(&b);
    put("bad/train/02.green_square/train_0005.png", "", 0);
    put("bad/train/01.red_circle/notes.jpg", "hello\n", 6);

    kn_dataset *d = NULL;
    KN_REQUIRE(kn_dataset_open(root, NULL, &d, &e) == KN_OK);
    KN_REQUIRE(d->count[KN_SPLIT_TRAIN] == 21);
    kn_loader_params lp = small_params();
    lp.batch = 4;
    lp.shuffle = false;
    kn_loader *l = NULL;
    KN_REQUIRE(kn_loader_new(d, KN_SPLIT_TRAIN, &lp, &l, &e) == KN_OK);
    int order[64], sizes[16], nb;
    KN_CHECK_INT(run_epoch(l, 0, 4, order, sizes, &nb, NULL), 17);
    KN_CHECK_INT(nb, 5);
    for (int i = 0; i < 4; i++) /* full batches, topped up past the bad files */
        KN_CHECK_INT(sizes[i], 4);
    KN_CHECK_INT(sizes[4], 1);
    KN_CHECK_INT(kn_loader_skipped(l), 4);
    for (int i = 0; i < 17; i++) {
        const char *path = d->items[KN_SPLIT_TRAIN][order[i]].path;
        KN_CHECK(!strstr(path, "train_0003.jpg") || strstr(path, "green"));
        KN_CHECK(!strstr(path, "notes.jpg"));
    }
    int found = 0;
    for (int i = 0; i < kn_loader_skipped(l); i++) {
        const char *sp = kn_loader_skipped_path(l, i);
        KN_REQUIRE(sp != NULL);
        found += strstr(sp, "01.red_circle/train_0003.jpg") != NULL;
        found += strstr(sp, "01.red_circle/notes.jpg") != NULL;
        found += strstr(sp, "02.green_square/train_0001.png") != NULL;
        found += strstr(sp, "02.green_square/train_0005.png") != NULL;
    }
    KN_CHECK_INT(found, 4);
    KN_CHECK(kn_loader_skipped_path(l, 4) == NULL);
    KN_CHECK(kn_loader_skipped_path(l, -1) == NULL);
    /* a later epoch does not try or count them again */
    KN_CHECK_INT(run_epoch(l, 1, 4, order, sizes, &nb, NULL), 17);
    KN_CHECK_INT(kn_loader_skipped(l), 4);
    kn_loader_free(l);
    /* drop_last counts readable images only: 17 give 4 full batches */
    lp.drop_last = true;
    KN_REQUIRE(kn_loader_new(d, KN_SPLIT_TRAIN, &lp, &l, &e) == KN_OK);
    KN_CHECK_INT(run_epoch(l, 0, 4, order, sizes, &nb, NULL), 16);
    KN_CHECK_INT(nb, 4);
    KN_CHECK_INT(run_epoch(l, 1, 4, order, sizes, &nb, NULL), 16);
    KN_CHECK_INT(kn_loader_skipped(l), 4);
    kn_loader_free(l);

    /* the check report */
    kn_buf rep;
    kn_buf_init(&rep, 1 << 20);
    int bad = -1;
    KN_REQUIRE(kn_dataset_check(d, &rep, &bad, &e) == KN_OK);
    KN_CHECK_INT(bad, 4);
    const char *t = (const char *)rep.data;
    KN_CHECK(strncmp(t, "split  class                  images  unreadable\n", 49) == 0);
    char line[256];
    snprintf(line, sizeof line, "%-6s %-22s %6d  %10d\n", "train", "01.red_circle", 11, 2);
    KN_CHECK_CONTAINS(t, line);
    snprintf(line, sizeof line, "%-6s %-22s %6d  %10d\n", "train", "02.green_square", 10, 2);
    KN_CHECK_CONTAINS(t, line);
    snprintf(line, sizeof line, "%-6s %-22s %6d  %10d\n", "valid", "(total)", 4, 0);
    KN_CHECK_CONTAINS(t, line);
    snprintf(line, sizeof line, "%-6s %-22s %6d  %10d\n", "all", "(total)", 29, 4);
    KN_CHECK_CONTAINS(t, line);
    snprintf(line, sizeof line, "unreadable: %s/train/01.red_circle/train_0003.jpg: ", root);
    KN_CHECK_CONTAINS(t, line);
    snprintf(line, sizeof line, "unreadable: %s/train/02.green_square/train_0005.png: ", root);
    KN_CHECK_CONTAINS(t, line);
    /* the reason does not repeat the path */
    const char *u = strstr(t, "unreadable: ");
    KN_REQUIRE(u != NULL);
    const char *nl = strchr(u, '\n');
    KN_REQUIRE(nl != NULL);
    int count = 0;
    for (const char *q = strstr(u, root); q && q < nl; q = strstr(q + 1, root))
        count++;
    KN_CHECK_INT(count, 1);
    kn_buf_deinit(&rep);

    /* a report that does not fit */
    kn_buf_init(&rep, 64);
    KN_CHECK_INT(kn_dataset_check(d, &rep, &bad, &e), KN_TOO_LARGE);
    kn_buf_deinit(&rep);
    kn_dataset_free(d);
}

int main(void)
{
    const char *base = getenv("TMPDIR");
    snprintf(tmp, sizeof tmp, "%s/kn_data_XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(tmp)) {
        perror("mkdtemp");
        return 1;
    }
    kn_log_set_level(KN_LOG_ERROR); /* the skipped files' warnings are expected */
    KN_RUN(test_synth_open);
    KN_RUN(test_flat_split);
    KN_RUN(test_byte_order);
    KN_RUN(test_errors);
    KN_RUN(test_loader_epochs);
    KN_RUN(test_loader_augment);
    KN_RUN(test_crop_rules);
    KN_RUN(test_corrupt_skipped);
    rmrf(tmp);
    return kn_test_finish();
}
