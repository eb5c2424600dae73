/* img tests on the real photos in ../shared/data: every file decodes to the
 * size PIL reports, truncated real photos (baseline and progressive) are
 * refused, the pixel limit applies, and preprocessing gives values in the
 * normalised range. Skips (exit 77) when ../shared is absent. */
#include "kennel/img.h"

#include "kn_test.h"

#include <dirent.h>

static char root[1024];

static const char *shared_path(const char *rel, char *buf, size_t n)
{
    snprintf(buf, n, "%s/%s", root, rel);
    return buf;
}

static void test_photos_decode(void)
{
    static const struct {
        const char *rel;
        int w, h;
    } photos[] = {
        {"images/burger.jpg", 480, 325},
        {"images/cats_and_dogs.jpg", 1200, 600}, /* progressive */
        {"images/sparrow.png", 1280, 851},       /* RGBA */
        {"images/dogs/American_water_spaniel_00648.jpg", 500, 375},
        {"images/dogs/Brittany_02625.jpg", 450, 664},
        {"images/dogs/Curly-coated_retriever_03896.jpg", 640, 480},
        {"images/dogs/Labrador_retriever_06449.jpg", 625, 469},
        {"images/dogs/Labrador_retriever_06455.jpg", 700, 487},
        {"images/dogs/Labrador_retriever_06457.jpg", 500, 546},
        {"images/dogs/Welsh_springer_spaniel_08203.jpg", 500, 374},
    };
    for (size_t i = 0; i < sizeof photos / sizeof photos[0]; i++) {
        char path[2048];
        kn_img im;
        kn_err e;
        kn_status rc = kn_img_load(shared_path(photos[i].rel, path, sizeof path), NULL, &im, &e);
        if (rc)
            fprintf(stderr, "%s\n", e.msg);
        KN_CHECK_INT(rc, KN_OK);
        KN_CHECK_INT(im.w, photos[i].w);
        KN_CHECK_INT(im.h, photos[i].h);
        kn_img_deinit(&im);
    }
}

static void test_pets_cats_all_decode(void)
{
    char dir[2048];
    shared_path("pets-cats", dir, sizeof dir);
    DIR *top = opendir(dir);
    KN_REQUIRE(top != NULL);
    int n = 0, bad = 0;
    struct dirent *breed;
    while ((breed = readdir(top))) {
        if (breed->d_name[0] == '.')
            continue;
        char sub[4096];
        snprintf(sub, sizeof sub, "%s/%s", dir, breed->d_name);
        DIR *d = opendir(sub);
        struct dirent *f;
        while (d && (f = readdir(d))) {
            if (f->d_name[0] == '.')
                continue;
            char path[8192];
            snprintf(path, sizeof path, "%s/%s", sub, f->d_name);
            kn_img im;
            kn_err e;
            if (kn_img_load(path, NULL, &im, &e) != KN_OK || im.w < 1 || im.h < 1) {
                fprintf(stderr, "%s\n", e.msg);
                bad++;
            }
            kn_img_deinit(&im);
            n++;
        }
        if (d)
            closedir(d);
    }
    closedir(top);
    KN_CHECK_INT(n, 120);
    KN_CHECK_INT(bad, 0);
}

static void test_truncated_photos(void)
{
    static const char *rels[] = {"images/burger.jpg", "images/cats_and_dogs.jpg",
                                 "images/sparrow.png"};
    for (size_t i = 0; i < sizeof rels / sizeof rels[0]; i++) {
        char path[2048];
        kn_buf b;
        kn_err e;
        kn_buf_init(&b, 64u << 20);
        KN_REQUIRE(kn_file_read(shared_path(rels[i], path, sizeof path), &b, &e) == KN_OK);
        static const double fracs[] = {0.01, 0.3, 0.5, 0.9, 0.999};
        for (size_t k = 0; k < sizeof fracs / sizeof fracs[0]; k++) {
            kn_img im;
            size_t cut = (size_t)(b.len * fracs[k]);
            kn_status rc = kn_img_decode(b.data, cut, NULL, &im, &e);
            KN_CHECK_INT(rc, KN_BAD_FORMAT);
            KN_CHECK(rc != KN_OK || im.data == NULL);
            kn_img_deinit(&im);
        }
        /* Without its final marker (EOI / IEND's CRC). */
        kn_img im;
        KN_CHECK_INT(kn_img_decode(b.data, b.len - 2, NULL, &im, &e),
                     strstr(rels[i], ".png") ? KN_OK : KN_BAD_FORMAT);
        kn_img_deinit(&im);
        kn_buf_deinit(&b);
    }
}

static void test_limit_on_photo(void)
{
    char path[2048];
    kn_img im;
    kn_err e;
    kn_img_decode_params p = kn_img_decode_default_params();
    p.max_pixels = 700000;
    KN_CHECK_INT(kn_img_load(shared_path("images/cats_and_dogs.jpg", path, sizeof path), &p, &im,
                             &e),
                 KN_TOO_LARGE);
    KN_CHECK_CONTAINS(e.msg, "1200x600");
    KN_CHECK_CONTAINS(e.msg, "700000");
    KN_CHECK(strncmp(e.msg, path, strlen(path)) == 0);
}

static void test_preprocess_photo(void)
{
    char path[2048];
    kn_img im;
    kn_err e;
    KN_REQUIRE(kn_img_load(shared_path("images/burger.jpg", path, sizeof path), NULL, &im, &e) ==
               KN_OK);
    kn_img_preproc p = kn_img_preproc_torchvision();
    size_t n = 3 * (size_t)p.w * p.h;
    float *t = malloc(n * sizeof *t);
    KN_REQUIRE(kn_img_preprocess(&im, &p, t, &e) == KN_OK);
    int out_of_range = 0;
    for (size_t i = 0; i < n; i++) {
        int c = (int)(i / ((size_t)p.w * p.h));
        float lo = (0.0f - p.mean[c]) / p.std[c], hi = (1.0f - p.mean[c]) / p.std[c];
        out_of_range += !(t[i] >= lo && t[i] <= hi);
    }
    KN_CHECK_INT(out_of_range, 0);
    kn_img_preproc tf = kn_img_preproc_tf();
    KN_REQUIRE(kn_img_preprocess(&im, &tf, t, &e) == KN_OK);
    for (size_t i = 0; i < n; i++)
        out_of_range += !(t[i] >= -1.0f && t[i] <= 1.0f);
    KN_CHECK_INT(out_of_range, 0);
    free(t);
    kn_img_deinit(&im);
}

int main(void)
{
    char buf[1024];
    const char *r = kn_test_shared("data/images", buf, sizeof buf);
    if (!r)
        kn_test_skip("../shared/data/images not found (set KN_SHARED)");
    snprintf(root, sizeof root, "%s", r);
    root[strlen(root) - strlen("/images")] = '\0';
    KN_RUN(test_photos_decode);
    KN_RUN(test_pets_cats_all_decode);
    KN_RUN(test_truncated_photos);
    KN_RUN(test_limit_on_photo);
    KN_RUN(test_preprocess_photo);
    return kn_test_finish();
}
