/* Fuzz target for image decoding: kn_img_decode on arbitrary bytes (JPEG,
 * PNG, anything else) with a 4 Mpx limit, then a resize of the result to
 * 32x32; the same bytes also go straight to the EXIF/TIFF parser. Promises
 * checked (abort when broken): a refusal hands out no image and always says
 * why on one line; a success hands out w*h*3 readable bytes within the
 * limit; the orientation parser answers 0..8. */
#include "kennel/img.h"

#include "img/img_int.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_MAX_PIXELS (4u << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int o = kn__exif_orientation(data, size);
    if (o < 0 || o > 8)
        abort();

    kn_img_decode_params p = kn_img_decode_default_params();
    p.max_pixels = FUZZ_MAX_PIXELS;
    kn_img im;
    kn_err e;
    kn_err_clear(&e);
    if (kn_img_decode(data, size, &p, &im, &e) != KN_OK) {
        if (im.data || im.w || im.h || e.msg[0] == '\0' || strchr(e.msg, '\n'))
            abort();
        return 0;
    }
    if (!im.data || im.w < 1 || im.h < 1 || (uint64_t)im.w * (uint64_t)im.h > FUZZ_MAX_PIXELS)
        abort();
    /* Touch the first and last byte so ASan sees a short buffer. */
    size_t n = (size_t)im.w * (size_t)im.h * 3;
    volatile uint8_t sink = (uint8_t)(im.data[0] ^ im.data[n - 1]);
    (void)sink;

    kn_img small;
    if (kn_img_resize_bilinear(&im, 32, 32, &small) != KN_OK)
        abort();
    if (small.w != 32 || small.h != 32)
        abort();
    kn_img_deinit(&small);
    kn_img_deinit(&im);
    return 0;
}
