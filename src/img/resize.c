/* Bilinear resize that reproduces PIL's Image.resize(size, BILINEAR) on an
 * 8-bit RGB image byte for byte, which is what torchvision's Resize does to
 * a PIL image.
 *
 * The algorithm (PIL's "convolution" resampler): the image is resized in
 * two separable passes, horizontal first, each output sample being a
 * weighted sum of input samples under a triangle filter. When shrinking by
 * a factor s > 1 the triangle is stretched to support s on each side (that
 * is the antialiasing); when enlarging it keeps support 1. For output
 * position i the filter is centred at (i + 0.5) * s in input coordinates,
 * the window is [round(c - support), round(c + support)) clipped to the
 * image, and the weights are normalised to sum to 1. They are then turned
 * into fixed point with 22 fractional bits (rounded half away from zero),
 * each pass accumulates in 32-bit integers starting from one half, and the
 * result is shifted back and clamped to 0..255, so the intermediate image
 * between the passes is 8-bit as in PIL. The weights are computed in
 * double with the same operations in the same order, which is what makes
 * the fixed-point values, and so the output, identical.
 *
 * The horizontal pass only produces the rows the vertical pass will read.
 * Thread-safe: no shared state; the source is only read.
 */
#include "img_int.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define PRECISION_BITS 22 /* 32 - 8 - 2, as in PIL */
#define HALF (1 << (PRECISION_BITS - 1))

typedef struct coeffs {
    int ksize;      /* weights stored per output sample */
    int *bounds;    /* per output sample: first input index, number of taps */
    int32_t *k;     /* out_size * ksize fixed-point weights */
} coeffs;

static void coeffs_deinit(coeffs *c)
{
    free(c->bounds);
    free(c->k);
}

static double triangle(double x)
{
    if (x < 0.0)
        x = -x;
    return x < 1.0 ? 1.0 - x : 0.0;
}

static kn_status coeffs_init(coeffs *c, int in_size, int out_size)
{
    memset(c, 0, sizeof *c);
    /* PIL takes the box edges as floats: in1 - in0 = (float)in_size. */
    double scale = (double)((float)in_size - 0.0f) / out_size;
    double filterscale = scale < 1.0 ? 1.0 : scale;
    double support = 1.0 * filterscale;
    double ss = 1.0 / filterscale;
    double cap = ceil(support);
    if (cap > (INT_MAX - 1) / 2)
        return KN_INVALID;
    c->ksize = (int)cap * 2 + 1;
    size_t nk;
    if (!kn_mul_size((size_t)out_size, (size_t)c->ksize, &nk))
        return KN_NOMEM;
    c->bounds = malloc((size_t)out_size * 2 * sizeof *c->bounds);
    c->k = calloc(nk, sizeof *c->k);
    double *w = malloc((size_t)c->ksize * sizeof *w);
    kn_status rc = KN_OK;
    if (!c->bounds || !c->k || !w) {
        rc = KN_NOMEM;
        goto out;
    }
    for (int xx = 0; xx < out_size; xx++) {
        double center = 0.0 + (xx + 0.5) * scale;
        double ww = 0.0;
        int xmin = (int)(center - support + 0.5);
        if (xmin < 0)
            xmin = 0;
        int xmax = (int)(center + support + 0.5);
        if (xmax > in_size)
            xmax = in_size;
        xmax -= xmin;
        if (xmax > c->ksize) /* cannot happen; keeps the writes provably in bounds */
            xmax = c->ksize;
        for (int x = 0; x < xmax; x++) {
            w[x] = triangle((x + xmin - center + 0.5) * ss);
            ww += w[x];
        }
        int32_t *k = c->k + (size_t)xx * (size_t)c->ksize;
        for (int x = 0; x < xmax; x++) {
            double v = ww != 0.0 ? w[x] / ww : w[x];
            k[x] = v < 0 ? (int32_t)(-0.5 + v * (1 << PRECISION_BITS))
                         : (int32_t)(0.5 + v * (1 << PRECISION_BITS));
        }
        c->bounds[2 * xx] = xmin;
        c->bounds[2 * xx + 1] = xmax < 0 ? 0 : xmax;
    }
out:
    free(w);
    if (rc)
        coeffs_deinit(c);
    return rc;
}

static inline uint8_t clip8(int32_t v)
{
    v >>= PRECISION_BITS; /* arithmetic shift, as PIL relies on */
    return v < 0 ? 0 : v > 255 ? 255 : (uint8_t)v;
}

/* Rows [row0, row0 + rows) of src (width in_w) -> rows 0.. of dst (width
 * out_w). */
static void pass_horizontal(const uint8_t *src, int in_w, int row0, int rows, uint8_t *dst,
                            int out_w, const coeffs *c)
{
    for (int y = 0; y < rows; y++) {
        const uint8_t *s = src + (size_t)(row0 + y) * (size_t)in_w * 3;
        uint8_t *d = dst + (size_t)y * (size_t)out_w * 3;
        for (int xx = 0; xx < out_w; xx++) {
            const int xmin = c->bounds[2 * xx], n = c->bounds[2 * xx + 1];
            const int32_t *k = c->k + (size_t)xx * (size_t)c->ksize;
            const uint8_t *p = s + (size_t)xmin * 3;
            int32_t s0 = HALF, s1 = HALF, s2 = HALF;
            for (int x = 0; x < n; x++, p += 3) {
                s0 += p[0] * k[x];
                s1 += p[1] * k[x];
                s2 += p[2] * k[x];
            }
            d[3 * xx] = clip8(s0);
            d[3 * xx + 1] = clip8(s1);
            d[3 * xx + 2] = clip8(s2);
        }
    }
}

/* src rows are `width` pixels; bounds index src rows after subtracting
 * row_shift. acc has width * 3 entries. */
static void pass_vertical(const uint8_t *src, int width, int row_shift, uint8_t *dst, int out_h,
                          const coeffs *c, int32_t *acc)
{
    const size_t n = (size_t)width * 3;
    for (int yy = 0; yy < out_h; yy++) {
        const int ymin = c->bounds[2 * yy] - row_shift, taps = c->bounds[2 * yy + 1];
        const int32_t *k = c->k + (size_t)yy * (size_t)c->ksize;
        for (size_t j = 0; j < n; j++)
            acc[j] = HALF;
        for (int y = 0; y < taps; y++) {
            const uint8_t *s = src + (size_t)(ymin + y) * n;
            const int32_t ky = k[y];
            for (size_t j = 0; j < n; j++)
                acc[j] += s[j] * ky;
        }
        uint8_t *d = dst + (size_t)yy * n;
        for (size_t j = 0; j < n; j++)
            d[j] = clip8(acc[j]);
    }
}

kn_status kn_img_resize_bilinear(const kn_img *src, int w, int h, kn_img *dst)
{
    if (!src || !dst || !src->data || src->w < 1 || src->h < 1 || w < 1 || h < 1)
        return KN_INVALID;
    size_t out_bytes, row_bytes;
    if (!kn_mul_size((size_t)w, 3, &row_bytes) || !kn_mul_size(row_bytes, (size_t)h, &out_bytes))
        return KN_TOO_LARGE;
    const int in_w = src->w, in_h = src->h;
    const bool need_h = w != in_w, need_v = h != in_h;
    coeffs ch = {0}, cv = {0};
    uint8_t *tmp = NULL, *out = NULL;
    int32_t *acc = NULL;
    kn_status rc = KN_OK;

    if (!(out = malloc(out_bytes))) {
        rc = KN_NOMEM;
        goto fail;
    }
    if (!need_h && !need_v) {
        memcpy(out, src->data, out_bytes);
        goto done;
    }
    if (need_h && (rc = coeffs_init(&ch, in_w, w)))
        goto fail;
    if (need_v && (rc = coeffs_init(&cv, in_h, h)))
        goto fail;

    if (!need_v) {
        pass_horizontal(src->data, in_w, 0, in_h, out, w, &ch);
        goto done;
    }
    const uint8_t *vsrc = src->data;
    int shift = 0;
    if (need_h) {
        /* Only the input rows some output row reads. */
        int first = cv.bounds[0];
        int last = cv.bounds[2 * (h - 1)] + cv.bounds[2 * (h - 1) + 1];
        if (!(tmp = malloc(row_bytes * (size_t)(last - first)))) {
            rc = KN_NOMEM;
            goto fail;
        }
        pass_horizontal(src->data, in_w, first, last - first, tmp, w, &ch);
        vsrc = tmp;
        shift = first;
    }
    if (!(acc = malloc(row_bytes * sizeof *acc))) {
        rc = KN_NOMEM;
        goto fail;
    }
    pass_vertical(vsrc, w, shift, out, h, &cv, acc);

done:
    free(acc);
    free(tmp);
    coeffs_deinit(&cv);
    coeffs_deinit(&ch);
    if (dst == src)
        free(dst->data);
    dst->w = w;
    dst->h = h;
    dst->data = out;
    return KN_OK;
fail:
    free(acc);
    free(tmp);
    free(out);
    coeffs_deinit(&cv);
    coeffs_deinit(&ch);
    return rc;
}
