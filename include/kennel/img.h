/* kennel img: image decoding (JPEG via libjpeg-turbo, PNG via libpng),
 * EXIF orientation, resizing and normalisation that reproduce torchvision's
 * PIL-based transforms, and TF-style preprocessing.
 *
 * Decoded images are 8-bit RGB, interleaved (HWC), rows packed. Grayscale,
 * CMYK, palette, 16-bit and alpha inputs are converted to RGB the way PIL's
 * Image.convert("RGB") does: alpha is dropped (not composited), 16-bit
 * samples keep their high byte.
 *
 * All functions are thread-safe; nothing here keeps global state.
 */
#ifndef KENNEL_IMG_H
#define KENNEL_IMG_H

#include "kennel/core.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kn_img {
    int w, h;      /* pixels */
    uint8_t *data; /* w * h * 3 bytes, RGB; owned, free with kn_img_deinit */
} kn_img;

KN_API void kn_img_deinit(kn_img *im);

typedef struct kn_img_decode_params {
    uint64_t max_pixels;   /* refuse headers declaring more (default 64 Mpx) */
    bool apply_exif;       /* apply EXIF orientation (default true) */
} kn_img_decode_params;
KN_API kn_img_decode_params kn_img_decode_default_params(void);

/* Decodes a JPEG or PNG held in memory (format sniffed from the bytes).
 * KN_UNSUPPORTED for other formats, KN_BAD_FORMAT for corrupt or truncated
 * data, KN_TOO_LARGE when the header declares more than max_pixels (checked
 * before any pixel is decoded). */
KN_API kn_status kn_img_decode(const void *buf, size_t len, const kn_img_decode_params *p,
                               kn_img *out, kn_err *e);
/* Reads and decodes a file; errors are prefixed with the path. */
KN_API kn_status kn_img_load(const char *path, const kn_img_decode_params *p, kn_img *out,
                             kn_err *e);

/* Resizes to w x h with PIL's bilinear filter (antialiased when shrinking,
 * 8-bit output), as torchvision.transforms.Resize((h, w)) does on a PIL
 * image. */
KN_API kn_status kn_img_resize_bilinear(const kn_img *src, int w, int h, kn_img *dst);

/* Preprocessing recipe stored in a model package. */
typedef enum kn_img_norm {
    KN_NORM_TORCHVISION, /* x/255, then (x - mean) / std per channel */
    KN_NORM_TF,          /* (x - 127.5) / 127.5 */
    KN_NORM_NONE         /* x/255 */
} kn_img_norm;

typedef struct kn_img_preproc {
    int h, w;          /* network input size; the image is resized to it */
    kn_img_norm norm;
    float mean[3], std[3]; /* KN_NORM_TORCHVISION */
} kn_img_preproc;
/* torchvision ImageNet defaults at 224 x 224. */
KN_API kn_img_preproc kn_img_preproc_torchvision(void);
KN_API kn_img_preproc kn_img_preproc_tf(void);

/* Resizes im as the recipe says and writes 3 x h x w floats (CHW, one sample)
 * to out. */
KN_API kn_status kn_img_preprocess(const kn_img *im, const kn_img_preproc *p, float *out,
                                   kn_err *e);

#ifdef __cplusplus
}
#endif
#endif
