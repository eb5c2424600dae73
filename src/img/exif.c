/* EXIF orientation: a small TIFF reader that finds tag 0x0112 in IFD0, and
 * the eight flips/rotations that make an image display upright.
 *
 * The TIFF bytes come straight from an untrusted file. Every offset is
 * checked against the buffer length before it is read, all arithmetic is
 * done in size_t after that check, and anything unexpected (bad byte order,
 * offsets past the end, an orientation that is not a single SHORT/LONG in
 * 1..8) makes the parser answer "no orientation" rather than fail: a broken
 * EXIF block must never stop an image from decoding. Same result as
 * PIL.ImageOps.exif_transpose for every well-formed block.
 *
 * Thread-safe: no state.
 */
#include "img_int.h"

#include <stdlib.h>
#include <string.h>

#define TIFF_TAG_ORIENTATION 0x0112
#define TIFF_TYPE_SHORT 3
#define TIFF_TYPE_LONG 4
#define TIFF_ENTRY_SIZE 12

typedef struct tiff {
    const uint8_t *p;
    size_t len;
    bool big_endian;
} tiff;

/* Callers check off + 2 <= len / off + 4 <= len first. */
static uint32_t rd16(const tiff *t, size_t off)
{
    const uint8_t *q = t->p + off;
    return t->big_endian ? (uint32_t)q[0] << 8 | q[1] : (uint32_t)q[1] << 8 | q[0];
}

static uint32_t rd32(const tiff *t, size_t off)
{
    const uint8_t *q = t->p + off;
    if (t->big_endian)
        return (uint32_t)q[0] << 24 | (uint32_t)q[1] << 16 | (uint32_t)q[2] << 8 | q[3];
    return (uint32_t)q[3] << 24 | (uint32_t)q[2] << 16 | (uint32_t)q[1] << 8 | q[0];
}

int kn__exif_orientation(const uint8_t *buf, size_t len)
{
    if (!buf || len < 8)
        return KN__ORIENT_NONE;
    tiff t = {buf, len, false};
    if (buf[0] == 'M' && buf[1] == 'M')
        t.big_endian = true;
    else if (!(buf[0] == 'I' && buf[1] == 'I'))
        return KN__ORIENT_NONE;
    if (rd16(&t, 2) != 42)
        return KN__ORIENT_NONE;
    size_t ifd = rd32(&t, 4);
    if (ifd < 8 || ifd > len - 2)
        return KN__ORIENT_NONE;
    size_t count = rd16(&t, ifd);
    size_t room = (len - ifd - 2) / TIFF_ENTRY_SIZE; /* entries that fit */
    if (count > room)
        count = room;
    for (size_t i = 0; i < count; i++) {
        size_t ent = ifd + 2 + i * TIFF_ENTRY_SIZE;
        if (rd16(&t, ent) != TIFF_TAG_ORIENTATION)
            continue;
        uint32_t type = rd16(&t, ent + 2), n = rd32(&t, ent + 4);
        if (n != 1)
            return KN__ORIENT_NONE;
        uint32_t v;
        if (type == TIFF_TYPE_SHORT)
            v = rd16(&t, ent + 8);
        else if (type == TIFF_TYPE_LONG)
            v = rd32(&t, ent + 8);
        else
            return KN__ORIENT_NONE;
        return v >= 1 && v <= KN__ORIENT_MAX ? (int)v : KN__ORIENT_NONE;
    }
    return KN__ORIENT_NONE;
}

kn_status kn__img_orient(kn_img *im, int orientation)
{
    if (orientation < 2 || orientation > KN__ORIENT_MAX || !im->data)
        return KN_OK;
    const ptrdiff_t w = im->w, h = im->h;
    /* Output pixel (x, y) reads source pixel origin + x * dx + y * dy. */
    ptrdiff_t origin, dx, dy;
    switch (orientation) {
    case 2: origin = w - 1, dx = -1, dy = w; break;              /* mirror horizontally */
    case 3: origin = (h - 1) * w + w - 1, dx = -1, dy = -w; break; /* rotate 180 */
    case 4: origin = (h - 1) * w, dx = 1, dy = -w; break;         /* mirror vertically */
    case 5: origin = 0, dx = w, dy = 1; break;                    /* transpose */
    case 6: origin = (h - 1) * w, dx = -w, dy = 1; break;         /* rotate 90 clockwise */
    case 7: origin = (h - 1) * w + w - 1, dx = -w, dy = -1; break; /* transverse */
    default: origin = w - 1, dx = w, dy = -1; break;              /* 8: rotate 90 ccw */
    }
    const bool swap = orientation >= 5;
    const ptrdiff_t ow = swap ? h : w, oh = swap ? w : h;
    uint8_t *dst = malloc((size_t)w * (size_t)h * 3);
    if (!dst)
        return KN_NOMEM;
    const uint8_t *src = im->data;
    uint8_t *o = dst;
    for (ptrdiff_t y = 0; y < oh; y++) {
        ptrdiff_t s = origin + y * dy;
        for (ptrdiff_t x = 0; x < ow; x++, s += dx, o += 3) {
            const uint8_t *q = src + s * 3;
            o[0] = q[0];
            o[1] = q[1];
            o[2] = q[2];
        }
    }
    free(im->data);
    im->data = dst;
    im->w = (int)ow;
    im->h = (int)oh;
    return KN_OK;
}
