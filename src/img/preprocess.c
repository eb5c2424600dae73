/* Preprocessing recipes: resize to the network's input size, then turn the
 * 8-bit RGB pixels into CHW floats.
 *
 * KN_NORM_TORCHVISION computes, in float32 and in this order, exactly what
 * torchvision's ToTensor + Normalize do: x / 255, then (v - mean) / std with
 * mean and std rounded to float32. With the resize being PIL's, the tensor
 * matches torchvision's bit for bit. KN_NORM_TF is (x - 127.5) / 127.5 and
 * KN_NORM_NONE is x / 255.
 *
 * Thread-safe: no shared state.
 */
#include "img_int.h"

#include <stdlib.h>

kn_img_preproc kn_img_preproc_torchvision(void)
{
    return (kn_img_preproc){
        .h = 224,
        .w = 224,
        .norm = KN_NORM_TORCHVISION,
        .mean = {0.485f, 0.456f, 0.406f},
        .std = {0.229f, 0.224f, 0.225f},
    };
}

kn_img_preproc kn_img_preproc_tf(void)
{
    return (kn_img_preproc){
        .h = 224,
        .w = 224,
        .norm = KN_NORM_TF,
        .mean = {0.0f, 0.0f, 0.0f},
        .std = {1.0f, 1.0f, 1.0f},
    };
}

kn_status kn_img_preprocess(const kn_img *im, const kn_img_preproc *p, float *out, kn_err *e)
{
    if (!im || !im->data || im->w < 1 || im->h < 1)
        return kn_err_set(e, KN_INVALID, "preprocess: empty image");
    if (!p || !out)
        return kn_err_set(e, KN_INVALID, "preprocess: no recipe or output buffer");
    if (p->w < 1 || p->h < 1 || p->w > 16384 || p->h > 16384)
        return kn_err_set(e, KN_INVALID, "preprocess: bad input size %dx%d", p->w, p->h);
    if (p->norm != KN_NORM_TORCHVISION && p->norm != KN_NORM_TF && p->norm != KN_NORM_NONE)
        return kn_err_set(e, KN_INVALID, "preprocess: unknown normalisation %d", (int)p->norm);
    if (p->norm == KN_NORM_TORCHVISION)
        for (int c = 0; c < 3; c++)
            if (!(p->std[c] != 0.0f))
                return kn_err_set(e, KN_INVALID, "preprocess: std[%d] is zero", c);

    kn_img sized = {0};
    const kn_img *src = im;
    if (im->w != p->w || im->h != p->h) {
        kn_status rc = kn_img_resize_bilinear(im, p->w, p->h, &sized);
        if (rc)
            return kn_err_set(e, rc, "preprocess: resizing %dx%d to %dx%d failed", im->w, im->h,
                              p->w, p->h);
        src = &sized;
    }

    const size_t plane = (size_t)p->w * (size_t)p->h;
    const uint8_t *px = src->data;
    for (int c = 0; c < 3; c++) {
        float *o = out + (size_t)c * plane;
        const float mean = p->mean[c], std = p->std[c];
        switch (p->norm) {
        case KN_NORM_TORCHVISION:
            for (size_t i = 0; i < plane; i++)
                o[i] = ((float)px[3 * i + c] / 255.0f - mean) / std;
            break;
        case KN_NORM_TF:
            for (size_t i = 0; i < plane; i++)
                o[i] = ((float)px[3 * i + c] - 127.5f) / 127.5f;
            break;
        case KN_NORM_NONE:
            for (size_t i = 0; i < plane; i++)
                o[i] = (float)px[3 * i + c] / 255.0f;
            break;
        }
    }
    kn_img_deinit(&sized);
    return KN_OK;
}
