/* Training augmentation: torchvision's RandomResizedCrop((h, w)) followed by
 * RandomHorizontalFlip(0.5), on PIL-exact pixels.
 *
 * The box is drawn with the rules of RandomResizedCrop.get_params (see
 * data_int.h); the numbers differ from torch's because the generator is
 * kn_rng, not torch's. As torchvision does with a PIL image, the box is cut
 * out as whole pixels and resized with PIL's bilinear filter (kn_img's),
 * then mirrored, then normalised by kn_img_preprocess, which does not
 * resize again because the image already has the input size.
 *
 * Every draw comes from a stream seeded by (loader seed, epoch, item index),
 * so an item's augmentation does not depend on which thread decodes it or
 * in which order. Thread-safe: no shared state.
 */
#include "data_int.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void kn__data_crop_params(kn_rng *r, int W, int H, double smin, double smax, double rmin,
                          double rmax, kn__crop *out)
{
    const double area = (double)W * (double)H;
    const double lr0 = log(rmin), lr1 = log(rmax);
    out->flip = false;
    out->fallback = false;
    for (int attempt = 0; attempt < 10; attempt++) {
        double target = area * (smin + (smax - smin) * kn_rng_uniform(r));
        double aspect = exp(lr0 + (lr1 - lr0) * kn_rng_uniform(r));
        /* Python's round(): half to even, which rint() does in the default
         * rounding mode */
        double w = rint(sqrt(target * aspect)), h = rint(sqrt(target / aspect));
        if (w > 0 && w <= W && h > 0 && h <= H) {
            out->w = (int)w;
            out->h = (int)h;
            out->top = (int)kn__data_rng_below(r, (uint64_t)(H - out->h) + 1);
            out->left = (int)kn__data_rng_below(r, (uint64_t)(W - out->w) + 1);
            return;
        }
    }
    /* central crop, the image's own ratio clamped to [rmin, rmax] */
    double in_ratio = (double)W / (double)H;
    int w = W, h = H;
    if (in_ratio < rmin)
        h = (int)rint(w / rmin);
    else if (in_ratio > rmax)
        w = (int)rint(h * rmax);
    /* rounding cannot leave the image or reach 0, but keep the box valid
     * whatever the bounds were */
    w = w < 1 ? 1 : w > W ? W : w;
    h = h < 1 ? 1 : h > H ? H : h;
    out->w = w;
    out->h = h;
    out->top = (H - h) / 2;
    out->left = (W - w) / 2;
    out->fallback = true;
}

void kn__data_aug_sample(kn_rng *r, int W, int H, kn__crop *out)
{
    kn__data_crop_params(r, W, H, 0.08, 1.0, 3.0 / 4.0, 4.0 / 3.0, out);
    out->flip = kn_rng_uniform(r) < 0.5;
}

void kn__data_aug_rng(kn_rng *r, uint64_t seed, int epoch, int index)
{
    kn_rng_seed(r, kn__data_seed(KN__DATA_SEED_AUGMENT, seed, (uint64_t)(int64_t)epoch,
                                 (uint64_t)(int64_t)index));
}

static void mirror(kn_img *im)
{
    for (int y = 0; y < im->h; y++) {
        uint8_t *row = im->data + (size_t)y * (size_t)im->w * 3;
        for (int a = 0, b = im->w - 1; a < b; a++, b--)
            for (int c = 0; c < 3; c++) {
                uint8_t t = row[3 * a + c];
                row[3 * a + c] = row[3 * b + c];
                row[3 * b + c] = t;
            }
    }
}

kn_status kn__data_augment(const kn_img *im, const kn__crop *c, const kn_img_preproc *pre,
                           float *out, kn_err *e)
{
    if (!im || !im->data || !c || c->w < 1 || c->h < 1 || c->left < 0 || c->top < 0 ||
        c->left > im->w - c->w || c->top > im->h - c->h)
        return kn_err_set(e, KN_INVALID, "augment: crop box outside the image");
    kn_img box = {.w = c->w, .h = c->h}, sized = {0};
    const size_t row = (size_t)c->w * 3, src_row = (size_t)im->w * 3;
    kn_status rc = KN_OK;
    if (!(box.data = malloc(row * (size_t)c->h))) {
        rc = kn_err_set(e, KN_NOMEM, "augment: out of memory for a %dx%d crop", c->w, c->h);
        goto out;
    }
    for (int y = 0; y < c->h; y++)
        memcpy(box.data + (size_t)y * row,
               im->data + (size_t)(c->top + y) * src_row + (size_t)c->left * 3, row);
    kn_img *img = &box;
    if (c->w != pre->w || c->h != pre->h) {
        if ((rc = kn_img_resize_bilinear(&box, pre->w, pre->h, &sized))) {
            kn_err_set(e, rc, "augment: resizing %dx%d to %dx%d failed", c->w, c->h, pre->w,
                       pre->h);
            goto out;
        }
        img = &sized;
    }
    if (c->flip)
        mirror(img);
    rc = kn_img_preprocess(img, pre, out, e);
out:
    kn_img_deinit(&sized);
    kn_img_deinit(&box);
    return rc;
}

const char *kn__data_reason(const kn_err *e, const char *path)
{
    size_t n = strlen(path);
    if (strncmp(e->msg, path, n) == 0 && e->msg[n] == ':' && e->msg[n + 1] == ' ')
        return e->msg + n + 2;
    return e->msg[0] ? e->msg : kn_status_msg(e->code);
}

bool kn__data_is_file_error(kn_status s)
{
    return s != KN_OK && s != KN_NOMEM && s != KN_INTERNAL;
}
