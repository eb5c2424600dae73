/* The img module's front door: sniffs the format from the first bytes,
 * hands JPEG and PNG to their decoders, names the formats we recognise but
 * do not decode, and applies the EXIF orientation afterwards.
 *
 * Invariants: on success *out owns w*h*3 RGB bytes; on any failure *out is
 * empty (data NULL, w = h = 0) and e holds a one-line reason. Input bytes
 * are never trusted: every decoder bounds its reads and checks the declared
 * size against max_pixels before allocating for pixels.
 *
 * Thread-safe: no shared state.
 */
#include "img_int.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_MAX_PIXELS (64u * 1000u * 1000u)

static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};

void kn_img_deinit(kn_img *im)
{
    if (!im)
        return;
    free(im->data);
    im->data = NULL;
    im->w = im->h = 0;
}

kn_img_decode_params kn_img_decode_default_params(void)
{
    return (kn_img_decode_params){.max_pixels = DEFAULT_MAX_PIXELS, .apply_exif = true};
}

kn_status kn__img_check_size(const char *fmt, uint64_t w, uint64_t h, uint64_t max_pixels,
                             kn_err *e)
{
    if (w == 0 || h == 0)
        return kn_err_set(e, KN_BAD_FORMAT, "%s declares an empty image (%" PRIu64 "x%" PRIu64 ")",
                          fmt, w, h);
    if (w * h > max_pixels) /* w, h < 2^32: the product fits */
        return kn_err_set(e, KN_TOO_LARGE,
                          "%s image is %" PRIu64 "x%" PRIu64 " (%" PRIu64
                          " pixels), over the limit of %" PRIu64 " pixels",
                          fmt, w, h, w * h, max_pixels);
    return KN_OK;
}

/* Formats people send that we recognise but do not decode. */
static const char *other_format(const uint8_t *b, size_t len)
{
    if (len >= 6 && (memcmp(b, "GIF87a", 6) == 0 || memcmp(b, "GIF89a", 6) == 0))
        return "GIF";
    if (len >= 12 && memcmp(b, "RIFF", 4) == 0 && memcmp(b + 8, "WEBP", 4) == 0)
        return "WebP";
    if (len >= 4 && (memcmp(b, "II*\0", 4) == 0 || memcmp(b, "MM\0*", 4) == 0))
        return "TIFF";
    if (len >= 12 && memcmp(b + 4, "ftyp", 4) == 0) {
        if (memcmp(b + 8, "avif", 4) == 0 || memcmp(b + 8, "avis", 4) == 0)
            return "AVIF";
        if (memcmp(b + 8, "hei", 3) == 0 || memcmp(b + 8, "mif1", 4) == 0 ||
            memcmp(b + 8, "msf1", 4) == 0)
            return "HEIF";
    }
    if (len >= 2 && b[0] == 'B' && b[1] == 'M')
        return "BMP";
    if (len >= 12 && memcmp(b, "\0\0\0\x0CjP  \r\n\x87\n", 12) == 0)
        return "JPEG 2000";
    if ((len >= 2 && b[0] == 0xFF && b[1] == 0x0A) ||
        (len >= 12 && memcmp(b, "\0\0\0\x0CJXL \r\n\x87\n", 12) == 0))
        return "JPEG XL";
    if (len >= 4 && memcmp(b, "8BPS", 4) == 0)
        return "Photoshop";
    if (len >= 4 && memcmp(b, "\0\0\1\0", 4) == 0)
        return "ICO";
    return NULL;
}

kn_status kn_img_decode(const void *buf, size_t len, const kn_img_decode_params *p, kn_img *out,
                        kn_err *e)
{
    if (!out)
        return kn_err_set(e, KN_INVALID, "kn_img_decode: no output image");
    out->w = out->h = 0;
    out->data = NULL;
    if (!buf && len)
        return kn_err_set(e, KN_INVALID, "kn_img_decode: no input buffer");
    kn_img_decode_params defaults = kn_img_decode_default_params();
    if (!p)
        p = &defaults;

    const uint8_t *b = buf;
    if (len == 0)
        return kn_err_set(e, KN_BAD_FORMAT, "empty image data (0 bytes)");
    int orientation = 0;
    kn_status rc;
    if (len >= 2 && b[0] == 0xFF && b[1] == 0xD8) {
        rc = kn__img_decode_jpeg(b, len, p, out, &orientation, e);
    } else if (len >= sizeof png_sig && memcmp(b, png_sig, sizeof png_sig) == 0) {
        rc = kn__img_decode_png(b, len, p, out, &orientation, e);
    } else if (len < sizeof png_sig && memcmp(b, png_sig, len) == 0) {
        return kn_err_set(e, KN_BAD_FORMAT, "truncated PNG: %zu bytes", len);
    } else {
        const char *name = other_format(b, len);
        if (name)
            return kn_err_set(e, KN_UNSUPPORTED, "%s images are not supported (JPEG and PNG only)",
                              name);
        return kn_err_set(e, KN_UNSUPPORTED,
                          "not a JPEG or PNG image (first bytes %02x %02x %02x %02x)", b[0],
                          len > 1 ? b[1] : 0, len > 2 ? b[2] : 0, len > 3 ? b[3] : 0);
    }
    if (rc)
        return rc;
    if (p->apply_exif && (rc = kn__img_orient(out, orientation))) {
        kn_img_deinit(out);
        return kn_err_set(e, rc, "out of memory applying EXIF orientation %d", orientation);
    }
    return KN_OK;
}

kn_status kn_img_load(const char *path, const kn_img_decode_params *p, kn_img *out, kn_err *e)
{
    if (out) {
        out->w = out->h = 0;
        out->data = NULL;
    }
    kn_map m;
    kn_status rc = kn_map_open(&m, path, e); /* its messages already name the path */
    if (rc)
        return rc;
    if ((rc = kn_img_decode(m.data, m.len, p, out, e)))
        kn_err_prefix(e, "%s", path);
    kn_map_close(&m);
    return rc;
}
