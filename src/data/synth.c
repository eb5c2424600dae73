/* kn_dataset_synth: a small, clearly synthetic ImageFolder data set for
 * smoke tests and demos.
 *
 * Class k (0-based) is a shape in a colour: colour k % 8, shape
 * (k + k / 8) % 8, which gives 64 distinct pairs (9 and 8 are coprime), so
 * at most 64 classes; folders are named "01.red_circle", "02.green_square",
 * ... Each image is 64..96 pixels a side: a noisy greyish background with a
 * tint, and the class's shape at a random position and size in a jittered
 * version of the class colour, plus per-pixel Gaussian noise, so a
 * classifier has to learn colour and shape rather than memorise pixels.
 * Files alternate between JPEG (TurboJPEG, quality 90, 4:2:0) and PNG
 * (libpng), with the starting format depending on the class.
 *
 * Every image draws from its own kn_rng stream seeded by (seed, split,
 * class, index): the output is the same for a seed, byte for byte (given
 * the same libpng and libjpeg-turbo). Single-threaded; no shared state.
 */
#include "data_int.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <turbojpeg.h>

#define MAX_CLASSES 64
#define MAX_PER_CLASS 10000
#define MIN_SIDE 64
#define MAX_SIDE 96

static const struct {
    const char *name;
    uint8_t rgb[3];
} colours[8] = {
    {"red", {220, 40, 40}},     {"green", {40, 190, 60}},  {"blue", {50, 80, 225}},
    {"yellow", {230, 215, 40}}, {"magenta", {215, 50, 200}}, {"cyan", {40, 205, 215}},
    {"orange", {245, 140, 30}}, {"white", {245, 245, 245}},
};

enum shape { CIRCLE, SQUARE, TRIANGLE, CROSS, RING, DIAMOND, STRIPES, ELLIPSE, N_SHAPES };
static const char *shape_names[N_SHAPES] = {"circle", "square",  "triangle", "cross",
                                            "ring",   "diamond", "stripes",  "ellipse"};

static int class_colour(int k)
{
    return k % 8;
}

static int class_shape(int k)
{
    return (k + k / 8) % N_SHAPES;
}

/* Whether the offset (dx, dy) from the shape's centre is inside it. */
static bool inside(enum shape s, double dx, double dy, double r)
{
    double ax = fabs(dx), ay = fabs(dy), d2 = dx * dx + dy * dy;
    switch (s) {
    case CIRCLE:
        return d2 <= r * r;
    case SQUARE:
        return ax <= 0.85 * r && ay <= 0.85 * r;
    case TRIANGLE: /* apex up */
        return dy >= -r && dy <= 0.75 * r && ax <= (dy + r) * 0.6;
    case CROSS:
        return (ax <= 0.3 * r && ay <= r) || (ay <= 0.3 * r && ax <= r);
    case RING:
        return d2 <= r * r && d2 >= 0.55 * 0.55 * r * r;
    case DIAMOND:
        return ax + ay <= r;
    case STRIPES:
        return ax <= 0.85 * r && ay <= 0.85 * r && ((int)floor((dy + r) / (0.34 * r)) % 2 == 0);
    case ELLIPSE:
        return (dx / r) * (dx / r) + (dy / (0.45 * r)) * (dy / (0.45 * r)) <= 1.0;
    case N_SHAPES:
        break;
    }
    return false;
}

static uint8_t clamp8(double v)
{
    return v <= 0 ? 0 : v >= 255 ? 255 : (uint8_t)lrint(v);
}

static int rand_int(kn_rng *r, int lo, int hi) /* [lo, hi] */
{
    return lo + (int)kn__data_rng_below(r, (uint64_t)(hi - lo) + 1);
}

/* Draws one image of class k into im (allocated here). */
static kn_status draw(kn_rng *r, int k, kn_img *im)
{
    int w = rand_int(r, MIN_SIDE, MAX_SIDE), h = rand_int(r, MIN_SIDE, MAX_SIDE);
    if (!(im->data = malloc((size_t)w * (size_t)h * 3)))
        return KN_NOMEM;
    im->w = w;
    im->h = h;
    double bg[3], fg[3];
    double grey = rand_int(r, 40, 120);
    for (int c = 0; c < 3; c++)
        bg[c] = grey + rand_int(r, -20, 20);
    const uint8_t *base = colours[class_colour(k)].rgb;
    for (int c = 0; c < 3; c++)
        fg[c] = base[c] + rand_int(r, -25, 25);
    int side = w < h ? w : h;
    double rad = side * (0.18 + 0.17 * kn_rng_uniform(r));
    double cx = rad + (w - 2 * rad) * kn_rng_uniform(r);
    double cy = rad + (h - 2 * rad) * kn_rng_uniform(r);
    /* a gentle background gradient, so the background is not flat */
    double gx = (kn_rng_uniform(r) - 0.5) * 40.0 / w, gy = (kn_rng_uniform(r) - 0.5) * 40.0 / h;
    enum shape s = (enum shape)class_shape(k);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            bool in = inside(s, x + 0.5 - cx, y + 0.5 - cy, rad);
            uint8_t *px = im->data + ((size_t)y * (size_t)w + (size_t)x) * 3;
            for (int c = 0; c < 3; c++) {
                double v = in ? fg[c] : bg[c] + gx * x + gy * y;
                px[c] = clamp8(v + 10.0 * kn_rng_normal(r));
            }
        }
    return KN_OK;
}

static kn_status write_jpeg(tjhandle tj, const kn_img *im, const char *path, kn_err *e)
{
    unsigned char *jpg = NULL;
    unsigned long n = 0;
    if (tjCompress2(tj, im->data, im->w, 0, im->h, TJPF_RGB, &jpg, &n, TJSAMP_420, 90,
                    TJFLAG_ACCURATEDCT) != 0) {
        kn_status rc = kn_err_set(e, KN_INTERNAL, "%s: JPEG encoding failed: %s", path,
                                  tjGetErrorStr2(tj));
        tjFree(jpg);
        return rc;
    }
    kn_status rc = kn_file_write(path, jpg, n, e);
    tjFree(jpg);
    return rc;
}

static kn_status write_png(const kn_img *im, const char *path, kn_err *e)
{
    png_image pi;
    memset(&pi, 0, sizeof pi);
    pi.version = PNG_IMAGE_VERSION;
    pi.width = (png_uint_32)im->w;
    pi.height = (png_uint_32)im->h;
    pi.format = PNG_FORMAT_RGB;
    png_alloc_size_t n = 0;
    if (!png_image_write_to_memory(&pi, NULL, &n, 0, im->data, 0, NULL) || n == 0) {
        kn_status rc = kn_err_set(e, KN_INTERNAL, "%s: PNG encoding failed: %s", path,
                                  pi.message);
        png_image_free(&pi);
        return rc;
    }
    void *buf = malloc(n);
    if (!buf) {
        png_image_free(&pi);
        return kn_err_set(e, KN_NOMEM, "%s: out of memory", path);
    }
    kn_status rc = KN_OK;
    if (!png_image_write_to_memory(&pi, buf, &n, 0, im->data, 0, NULL))
        rc = kn_err_set(e, KN_INTERNAL, "%s: PNG encoding failed: %s", path, pi.message);
    else
        rc = kn_file_write(path, buf, n, e);
    png_image_free(&pi);
    free(buf);
    return rc;
}

static kn_status make_dir(const char *path, kn_err *e)
{
    if (mkdir(path, 0755) != 0)
        return kn_err_set(e, errno == EEXIST ? KN_EXISTS : KN_IO, "%s: %s", path,
                          strerror(errno));
    return KN_OK;
}

/* Creates dir, or accepts it when it exists and is empty. */
static kn_status make_root(const char *dir, kn_err *e)
{
    if (mkdir(dir, 0755) == 0)
        return KN_OK;
    if (errno != EEXIST)
        return kn_err_set(e, KN_IO, "%s: %s", dir, strerror(errno));
    DIR *d = opendir(dir);
    if (!d)
        return kn_err_set(e, KN_EXISTS, "%s: exists and is not a directory", dir);
    struct dirent *de;
    bool empty = true;
    while (empty && (de = readdir(d)))
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
            empty = false;
    closedir(d);
    if (!empty)
        return kn_err_set(e, KN_EXISTS, "%s: exists and is not empty", dir);
    return KN_OK;
}

static kn_status path_fmt(char *out, kn_err *e, const char *fmt, ...) KN_PRINTF(3, 4);
static kn_status path_fmt(char *out, kn_err *e, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out, KN__DATA_PATH_MAX, fmt, ap);
    va_end(ap);
    if (n < 0 || n >= KN__DATA_PATH_MAX)
        return kn_err_set(e, KN_TOO_LARGE, "synth: path longer than %d bytes",
                          KN__DATA_PATH_MAX - 1);
    return KN_OK;
}

static kn_status write_readme(const char *dir, int classes, int per_class, int per_eval,
                              uint64_t seed, kn_err *e)
{
    char path[KN__DATA_PATH_MAX];
    kn_status rc = path_fmt(path, e, "%s/README.txt", dir);
    if (rc)
        return rc;
    kn_buf b;
    kn_buf_init(&b, 1 << 16);
    rc = kn_buf_appendf(&b,
                        "SYNTHETIC DATA SET - not photographs.\n"
                        "\n"
                        "Made by `kennel dataset synth` with seed %llu: %d classes of coloured\n"
                        "shapes on noisy backgrounds, %d training images per class and %d per\n"
                        "class in valid/ and test/, as JPEG and PNG files of 64 to 96 pixels a\n"
                        "side. Each class is one shape in one colour (the folder name says\n"
                        "which); position, size, tint and noise are random. It exists for\n"
                        "smoke tests and demos of kennel's training pipeline; the same seed\n"
                        "gives the same files.\n",
                        (unsigned long long)seed, classes, per_class, per_eval);
    if (!rc)
        rc = kn_file_write(path, b.data, b.len, e);
    else
        kn_err_set(e, rc, "synth: README too long");
    kn_buf_deinit(&b);
    return rc;
}

kn_status kn_dataset_synth(const char *dir, int classes, int per_class, uint64_t seed,
                           kn_err *e)
{
    if (!dir || !*dir)
        return kn_err_set(e, KN_INVALID, "synth: no directory");
    if (classes < 1 || classes > MAX_CLASSES)
        return kn_err_set(e, KN_INVALID, "synth: classes %d is not in [1, %d]", classes,
                          MAX_CLASSES);
    if (per_class < 1 || per_class > MAX_PER_CLASS)
        return kn_err_set(e, KN_INVALID, "synth: per-class %d is not in [1, %d]", per_class,
                          MAX_PER_CLASS);
    if (strlen(dir) > KN__DATA_PATH_MAX - 64)
        return kn_err_set(e, KN_TOO_LARGE, "synth: directory path longer than %d bytes",
                          KN__DATA_PATH_MAX - 64);
    const int per_eval = per_class / 4 > 1 ? per_class / 4 : 1;
    kn_status rc = make_root(dir, e);
    if (rc)
        return rc;
    tjhandle tj = tjInitCompress();
    if (!tj)
        return kn_err_set(e, KN_INTERNAL, "synth: TurboJPEG: %s", tjGetErrorStr2(NULL));
    char path[KN__DATA_PATH_MAX];
    kn_img im = {0};
    for (int s = 0; s < KN_SPLIT_COUNT; s++) {
        if ((rc = path_fmt(path, e, "%s/%s", dir, kn_split_name((kn_split)s))) ||
            (rc = make_dir(path, e)))
            goto out;
        int count = s == KN_SPLIT_TRAIN ? per_class : per_eval;
        for (int k = 0; k < classes; k++) {
            char cls[64];
            snprintf(cls, sizeof cls, "%02d.%s_%s", k + 1, colours[class_colour(k)].name,
                     shape_names[class_shape(k)]);
            if ((rc = path_fmt(path, e, "%s/%s/%s", dir, kn_split_name((kn_split)s), cls)) ||
                (rc = make_dir(path, e)))
                goto out;
            for (int i = 0; i < count; i++) {
                kn_rng r;
                kn_rng_seed(&r, kn__data_seed(KN__DATA_SEED_SYNTH, seed,
                                              (uint64_t)s << 32 | (uint64_t)k, (uint64_t)i));
                if ((rc = draw(&r, k, &im))) {
                    kn_err_set(e, rc, "synth: out of memory");
                    goto out;
                }
                bool jpeg = (i + k) % 2 == 0;
                if ((rc = path_fmt(path, e, "%s/%s/%s/%s_%04d.%s", dir,
                                   kn_split_name((kn_split)s), cls, kn_split_name((kn_split)s),
                                   i + 1, jpeg ? "jpg" : "png")))
                    goto out;
                rc = jpeg ? write_jpeg(tj, &im, path, e) : write_png(&im, path, e);
                kn_img_deinit(&im);
                if (rc)
                    goto out;
            }
        }
    }
    rc = write_readme(dir, classes, per_class, per_eval, seed, e);
out:
    kn_img_deinit(&im);
    tjDestroy(tj);
    return rc;
}
