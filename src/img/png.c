/* PNG decoding with libpng into 8-bit RGB, matching PIL's
 * Image.open(...).convert("RGB"):
 *   - gray 1/2/4/8 bit is scaled to 8 bit and replicated to R=G=B;
 *   - 16-bit samples keep their high byte (see img.h; PIL 9.4 instead clips
 *     16-bit *grayscale* to 255, a quirk we do not copy);
 *   - alpha is dropped, never composited; tRNS is ignored;
 *   - palette indices go through the PLTE, and indices past its end read
 *     the gray ramp (i, i, i), which is what PIL's palette holds there;
 *   - Adam7 interlacing is undone by libpng.
 * libpng reports errors through png_error, which we route to a longjmp back
 * into run(); the libpng calls and their setjmp live in run() alone and
 * everything they touch is reached through the job pointer, so no local is
 * modified between setjmp and longjmp. Warnings are dropped.
 *
 * The width and height from IHDR are checked against max_pixels before any
 * row is decompressed. Thread-safe: no shared state.
 */
#include "img_int.h"

#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PNG_MSG_MAX 160

typedef struct png_job {
    png_structp png;
    png_infop info;
    const uint8_t *buf;
    size_t len, pos;
    const kn_img_decode_params *p;
    uint8_t *pix;    /* w*h*3 output, owned until handed to out */
    png_bytep *rows; /* row pointers into pix */
    int w, h, orientation;
    char msg[PNG_MSG_MAX]; /* libpng's error text */
} png_job;

static void on_error(png_structp png, png_const_charp msg)
{
    png_job *j = png_get_error_ptr(png);
    snprintf(j->msg, sizeof j->msg, "%s", msg ? msg : "libpng error");
    png_longjmp(png, 1);
}

static void on_warning(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg;
}

static void on_read(png_structp png, png_bytep dst, size_t n)
{
    png_job *j = png_get_io_ptr(png);
    if (n > j->len - j->pos)
        png_error(png, "truncated PNG data");
    memcpy(dst, j->buf + j->pos, n);
    j->pos += n;
}

/* Turns the w*h index bytes at the front of j->pix into RGB, back to front
 * so each index is read before its bytes are overwritten. */
static void expand_palette(png_job *j)
{
    uint8_t lut[256][3];
    for (int i = 0; i < 256; i++)
        lut[i][0] = lut[i][1] = lut[i][2] = (uint8_t)i;
    png_colorp pal = NULL;
    int n = 0;
    if (png_get_PLTE(j->png, j->info, &pal, &n) & PNG_INFO_PLTE) {
        for (int i = 0; i < n && i < 256; i++) {
            lut[i][0] = pal[i].red;
            lut[i][1] = pal[i].green;
            lut[i][2] = pal[i].blue;
        }
    }
    size_t npx = (size_t)j->w * (size_t)j->h;
    for (size_t i = npx; i-- > 0;) {
        const uint8_t *c = lut[j->pix[i]];
        j->pix[3 * i + 0] = c[0];
        j->pix[3 * i + 1] = c[1];
        j->pix[3 * i + 2] = c[2];
    }
}

static kn_status run(png_job *j, kn_err *e)
{
    if (setjmp(png_jmpbuf(j->png)))
        return kn_err_set(e, KN_BAD_FORMAT, "corrupt PNG: %s", j->msg);

    /* Ancillary chunks we never use: skip them instead of inflating them. */
    static const png_byte skip[] = "iCCP\0zTXt\0iTXt\0tEXt\0sPLT\0";
    png_set_keep_unknown_chunks(j->png, PNG_HANDLE_CHUNK_NEVER, skip, 5);
    /* Our own max_pixels bound replaces libpng's 1M x 1M default. */
    png_set_user_limits(j->png, 0x7fffffff, 0x7fffffff);
    png_set_read_fn(j->png, j, on_read);
    png_read_info(j->png, j->info);

    png_uint_32 w, h;
    int depth, ctype, interlace;
    png_get_IHDR(j->png, j->info, &w, &h, &depth, &ctype, &interlace, NULL, NULL);
    kn_status rc = kn__img_check_size("PNG", w, h, j->p->max_pixels, e);
    if (rc)
        return rc;
    size_t npx = (size_t)w * (size_t)h, nbytes;
    if (!kn_mul_size(npx, 3, &nbytes) || w > 0x7fffffff / 3)
        return kn_err_set(e, KN_TOO_LARGE, "PNG is %ux%u, too large to decode", (unsigned)w,
                          (unsigned)h);
    j->w = (int)w;
    j->h = (int)h;

    if (j->p->apply_exif) {
        png_uint_32 exif_len = 0;
        png_bytep exif = NULL;
        if (png_get_eXIf_1(j->png, j->info, &exif_len, &exif) & PNG_INFO_eXIf)
            j->orientation = kn__exif_orientation(exif, exif_len);
    }

    const bool palette = ctype == PNG_COLOR_TYPE_PALETTE;
    if (depth == 16)
        png_set_strip_16(j->png); /* keeps the high byte */
    if (palette) {
        if (depth < 8)
            png_set_packing(j->png); /* one index per byte */
    } else {
        if (depth < 8)
            png_set_expand_gray_1_2_4_to_8(j->png); /* only gray has < 8 bits */
        if (ctype & PNG_COLOR_MASK_ALPHA)
            png_set_strip_alpha(j->png);
        if (!(ctype & PNG_COLOR_MASK_COLOR))
            png_set_gray_to_rgb(j->png);
    }
    png_set_interlace_handling(j->png);
    png_read_update_info(j->png, j->info);

    size_t want = palette ? (size_t)w : (size_t)w * 3;
    if (png_get_rowbytes(j->png, j->info) != want)
        return kn_err_set(e, KN_UNSUPPORTED, "PNG with color type %d, depth %d", ctype, depth);

    j->pix = malloc(nbytes);
    j->rows = malloc((size_t)h * sizeof *j->rows);
    if (!j->pix || !j->rows)
        return kn_err_set(e, KN_NOMEM, "PNG %ux%u: out of memory", (unsigned)w, (unsigned)h);
    for (size_t y = 0; y < h; y++)
        j->rows[y] = j->pix + y * want;
    png_read_image(j->png, j->rows);
    /* The chunks after the image data (IEND included) are not read: like PIL
     * we accept a file whose pixels are complete. */
    if (palette)
        expand_palette(j);
    return KN_OK;
}

kn_status kn__img_decode_png(const uint8_t *buf, size_t len, const kn_img_decode_params *p,
                             kn_img *out, int *orientation, kn_err *e)
{
    png_job j = {.buf = buf, .len = len, .p = p};
    kn_status rc;
    /* IHDR must come first; its size is checked before libpng reads on
     * (png_read_info goes as far as the first IDAT). */
    if (len >= 8 + 8 + 13 && memcmp(buf + 12, "IHDR", 4) == 0) {
        uint32_t w = (uint32_t)buf[16] << 24 | (uint32_t)buf[17] << 16 | (uint32_t)buf[18] << 8 |
                     buf[19];
        uint32_t h = (uint32_t)buf[20] << 24 | (uint32_t)buf[21] << 16 | (uint32_t)buf[22] << 8 |
                     buf[23];
        if (w && h && (rc = kn__img_check_size("PNG", w, h, p->max_pixels, e)))
            return rc;
    }
    j.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &j, on_error, on_warning);
    if (!j.png)
        return kn_err_set(e, KN_NOMEM, "PNG: cannot create decoder");
    j.info = png_create_info_struct(j.png);
    if (!j.info) {
        rc = kn_err_set(e, KN_NOMEM, "PNG: cannot create decoder");
        goto out;
    }
    rc = run(&j, e);
    if (rc == KN_OK) {
        out->w = j.w;
        out->h = j.h;
        out->data = j.pix;
        j.pix = NULL;
        *orientation = j.orientation;
    }
out:
    free(j.rows);
    free(j.pix);
    png_destroy_read_struct(&j.png, j.info ? &j.info : NULL, NULL);
    return rc;
}
