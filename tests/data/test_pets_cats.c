/* data tests on the real photos of ../shared/data/pets-cats (12 breeds x 10,
 * flat ImageFolder layout): classes sorted as torchvision sorts them, the
 * seeded 7/3 split per class, loaders over real JPEGs and the check
 * report. Skips (exit 77) when ../shared is absent. */
#include "kennel/data.h"

#include "kn_test.h"

static char root[1024];

static void test_split_70_30(void)
{
    kn_dataset_params p = {.seed = 0, .ratio = {0.7, 0.0, 0.3}};
    kn_dataset *d = NULL;
    kn_err e;
    kn_status rc = kn_dataset_open(root, &p, &d, &e);
    if (rc)
        fprintf(stderr, "%s\n", e.msg);
    KN_REQUIRE(rc == KN_OK);
    KN_CHECK_INT(d->n_classes, 12);
    KN_CHECK(d->generated_split);
    KN_CHECK_STR(d->class_dirs[0], "Abyssinian");
    KN_CHECK_STR(d->class_dirs[11], "Sphynx");
    for (int c = 1; c < d->n_classes; c++)
        KN_CHECK(strcmp(d->class_dirs[c - 1], d->class_dirs[c]) < 0);
    KN_CHECK_STR(d->class_names[4], d->class_dirs[4]); /* no numeric prefix */
    KN_CHECK_INT(d->count[KN_SPLIT_TRAIN], 84);
    KN_CHECK_INT(d->count[KN_SPLIT_VALID], 0);
    KN_CHECK_INT(d->count[KN_SPLIT_TEST], 36);
    int per[2][12] = {{0}};
    for (int i = 0; i < d->count[KN_SPLIT_TRAIN]; i++)
        per[0][d->items[KN_SPLIT_TRAIN][i].label]++;
    for (int i = 0; i < d->count[KN_SPLIT_TEST]; i++)
        per[1][d->items[KN_SPLIT_TEST][i].label]++;
    for (int c = 0; c < 12; c++) {
        KN_CHECK_INT(per[0][c], 7);
        KN_CHECK_INT(per[1][c], 3);
    }
    /* another seed: the same counts, other files */
    kn_dataset *d2 = NULL;
    p.seed = 1;
    KN_REQUIRE(kn_dataset_open(root, &p, &d2, &e) == KN_OK);
    KN_CHECK_INT(d2->count[KN_SPLIT_TEST], 36);
    int same = 0;
    for (int i = 0; i < 36; i++)
        same += strcmp(d->items[KN_SPLIT_TEST][i].path, d2->items[KN_SPLIT_TEST][i].path) == 0;
    KN_CHECK(same < 36);
    kn_dataset_free(d2);

    /* default ratios: round(1.5) = 2 of 10 to valid and to test */
    KN_REQUIRE(kn_dataset_open(root, NULL, &d2, &e) == KN_OK);
    KN_CHECK_INT(d2->count[KN_SPLIT_TRAIN], 72);
    KN_CHECK_INT(d2->count[KN_SPLIT_VALID], 24);
    KN_CHECK_INT(d2->count[KN_SPLIT_TEST], 24);
    kn_dataset_free(d2);

    /* every test photo loads; augmented training batches have the shape */
    kn_loader_params lp = kn_loader_default_params();
    lp.pre.w = lp.pre.h = 64;
    lp.batch = 16;
    lp.shuffle = false;
    kn_loader *l = NULL;
    KN_REQUIRE(kn_loader_new(d, KN_SPLIT_TEST, &lp, &l, &e) == KN_OK);
    float *img = malloc((size_t)16 * 3 * 64 * 64 * sizeof *img);
    int lab[16], idx[16], n, total = 0;
    while (kn_loader_next(l, img, lab, idx, &n, &e) == KN_OK && n > 0)
        total += n;
    KN_CHECK_INT(total, 36);
    KN_CHECK_INT(kn_loader_skipped(l), 0);
    kn_loader_free(l);
    lp.augment = KN_AUG_RANDOM;
    lp.shuffle = true;
    lp.drop_last = true;
    KN_REQUIRE(kn_loader_new(d, KN_SPLIT_TRAIN, &lp, &l, &e) == KN_OK);
    int batches = 0;
    total = 0;
    while (kn_loader_next(l, img, lab, idx, &n, &e) == KN_OK && n > 0) {
        KN_CHECK_INT(n, 16);
        for (int i = 0; i < n; i++)
            KN_CHECK_INT(lab[i], d->items[KN_SPLIT_TRAIN][idx[i]].label);
        total += n;
        batches++;
    }
    KN_CHECK_INT(batches, 5);
    KN_CHECK_INT(total, 80);
    kn_loader_free(l);
    free(img);

    kn_buf rep;
    kn_buf_init(&rep, 1 << 20);
    int bad = -1;
    KN_CHECK_INT(kn_dataset_check(d, &rep, &bad, &e), KN_OK);
    KN_CHECK_INT(bad, 0);
    KN_CHECK_CONTAINS((const char *)rep.data,
                      "train  Abyssinian                  7           0\n");
    KN_CHECK_CONTAINS((const char *)rep.data,
                      "test   (total)                    36           0\n");
    KN_CHECK(strstr((const char *)rep.data, "unreadable:") == NULL);
    kn_buf_deinit(&rep);
    kn_dataset_free(d);
}

int main(void)
{
    if (!kn_test_shared("data/pets-cats", root, sizeof root))
        kn_test_skip("../shared/data/pets-cats not found");
    KN_RUN(test_split_70_30);
    return kn_test_finish();
}
