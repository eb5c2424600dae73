/* JPEG decoding with libjpeg-turbo's TurboJPEG API into 8-bit RGB,
 * bit-identical to PIL's Image.open(...).convert("RGB") (PIL drives the
 * same libjpeg-turbo with its defaults: ISLOW DCT, fancy upsampling, block
 * smoothing for progressive scans; so does TurboJPEG).
 *
 * Before libjpeg sees the data we walk the marker segments up to the first
 * SOS ourselves, bounds-checking every length: that gives the frame size
 * (checked against max_pixels before any pixel is decoded), the component
 * count and precision (unsupported kinds are refused with a clear reason)
 * and the first APP1 "Exif" block (for the orientation).
 *
 * Colour: 1 component decodes as gray and is replicated; 3 components
 * decode to RGB (libjpeg picks YCbCr or RGB from JFIF/Adobe markers); 4
 * components decode to CMYK, which PIL 9.4 always reads as Adobe-inverted
 * ("CMYK;I", whether or not an Adobe marker is present) and converts with
 * R = nk - nk*c/255 (rounded), nk = 255 - k; we do the same arithmetic.
 *
 * Errors: TurboJPEG catches libjpeg's error_exit with setjmp/longjmp and
 * returns -1, so corrupt data never exits the process. Warnings matter too:
 * a truncated file only produces the warning "Premature end of JPEG file"
 * (libjpeg pads the data with a fake EOI). We first decode with
 * TJFLAG_STOPONWARNING; a truncation warning is an error. Any other warning
 * is a recoverable corruption that PIL decodes through, so we decode again
 * tolerating warnings, after checking ourselves that an EOI marker is
 * reachable in the data (otherwise the file is truncated as well).
 *
 * Thread-safe: one TurboJPEG handle per call; TurboJPEG's error string is
 * thread-local.
 */
#include "img_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <turbojpeg.h>

/* Marker codes (second byte after 0xFF). */
#define M_SOF0 0xC0
#define M_DHT 0xC4
#define M_JPG 0xC8
#define M_DAC 0xCC
#define M_SOF15 0xCF
#define M_RST0 0xD0
#define M_RST7 0xD7
#define M_SOI 0xD8
#define M_EOI 0xD9
#define M_SOS 0xDA
#define M_APP1 0xE1
#define M_TEM 0x01

typedef struct jpeg_hdr {
    int sof; /* SOFn marker code, 0 until seen */
    int precision, w, h, ncomp;
    const uint8_t *exif; /* TIFF bytes of the first APP1 Exif segment */
    size_t exif_len;
    size_t scan; /* offset just past the first SOS segment */
} jpeg_hdr;

static size_t be16(const uint8_t *p)
{
    return (size_t)p[0] << 8 | p[1];
}

static bool is_sof(int m)
{
    return m >= M_SOF0 && m <= M_SOF15 && m != M_DHT && m != M_JPG && m != M_DAC;
}

/* Finds the next marker at or after *pos the way libjpeg's next_marker
 * does: skips bytes up to an 0xFF, then fill bytes. Returns the marker code
 * and leaves *pos after it, or -1 at the end of the data. */
static int next_marker(const uint8_t *b, size_t len, size_t *pos)
{
    size_t i = *pos;
    for (;;) {
        while (i < len && b[i] != 0xFF)
            i++;
        while (i < len && b[i] == 0xFF)
            i++;
        if (i >= len)
            return -1;
        int m = b[i++];
        if (m != 0x00) { /* FF 00 is a stuffed data byte, not a marker */
            *pos = i;
            return m;
        }
    }
}

/* Walks the segments between SOI and the first SOS. */
static kn_status scan_header(const uint8_t *b, size_t len, jpeg_hdr *hd, kn_err *e)
{
    memset(hd, 0, sizeof *hd);
    size_t pos = 2; /* after SOI, checked by the caller */
    for (;;) {
        int m = next_marker(b, len, &pos);
        if (m < 0)
            return kn_err_set(e, KN_BAD_FORMAT, "truncated JPEG: data ends before the first scan");
        if (m == M_TEM || (m >= M_RST0 && m <= M_RST7) || m == M_SOI)
            continue; /* no length; libjpeg itself rejects a second SOI */
        if (m == M_EOI)
            return kn_err_set(e, KN_BAD_FORMAT, "JPEG contains no image (EOI before any scan)");
        if (len - pos < 2)
            return kn_err_set(e, KN_BAD_FORMAT, "truncated JPEG: marker 0x%02X cut short", m);
        size_t seg = be16(b + pos);
        if (seg < 2)
            return kn_err_set(e, KN_BAD_FORMAT, "corrupt JPEG: marker 0x%02X has length %zu", m,
                              seg);
        if (seg > len - pos)
            return kn_err_set(e, KN_BAD_FORMAT,
                              "truncated JPEG: marker 0x%02X segment runs past the end", m);
        const uint8_t *d = b + pos + 2;
        size_t n = seg - 2;
        pos += seg;
        if (m == M_SOS) {
            if (!hd->sof)
                return kn_err_set(e, KN_BAD_FORMAT, "corrupt JPEG: scan before frame header");
            hd->scan = pos;
            return KN_OK;
        }
        if (is_sof(m) && !hd->sof) {
            if (n < 6)
                return kn_err_set(e, KN_BAD_FORMAT, "corrupt JPEG: frame header too short");
            hd->sof = m;
            hd->precision = d[0];
            hd->h = (int)be16(d + 1);
            hd->w = (int)be16(d + 3);
            hd->ncomp = d[5];
        } else if (m == M_APP1 && !hd->exif && n >= 6 && memcmp(d, "Exif\0", 5) == 0) {
            hd->exif = d + 6;
            hd->exif_len = n - 6;
        }
    }
}

/* True when libjpeg, reading on from the first scan, would meet an EOI
 * marker before the data ends: entropy-coded bytes never contain FF
 * followed by anything but 00 or RSTn, and other segments are skipped by
 * their length. */
static bool reaches_eoi(const uint8_t *b, size_t len, size_t pos)
{
    for (;;) {
        int m = next_marker(b, len, &pos);
        if (m < 0)
            return false;
        if (m == M_EOI)
            return true;
        if (m == M_TEM || (m >= M_RST0 && m <= M_RST7) || m == M_SOI)
            continue;
        if (len - pos < 2)
            return false;
        size_t seg = be16(b + pos);
        if (seg < 2 || seg > len - pos)
            return false;
        pos += seg;
    }
}

static kn_status check_kind(const jpeg_hdr *hd, kn_err *e)
{
    int m = hd->sof;
    if (m == 0xC3 || m == 0xC7 || m == 0xCB || m == 0xCF)
        return kn_err_set(e, KN_UNSUPPORTED, "lossless JPEG (SOF 0x%02X) is not supported", m);
    if (m == 0xC5 || m == 0xC6 || m == 0xCD || m == 0xCE)
        return kn_err_set(e, KN_UNSUPPORTED, "hierarchical JPEG (SOF 0x%02X) is not supported",
                          m);
    if (hd->precision != 8)
        return kn_err_set(e, KN_UNSUPPORTED, "%d-bit JPEG is not supported (8-bit only)",
                          hd->precision);
    if (hd->ncomp != 1 && hd->ncomp != 3 && hd->ncomp != 4)
        return kn_err_set(e, KN_UNSUPPORTED, "JPEG with %d components is not supported",
                          hd->ncomp);
    return KN_OK;
}

/* a * b / 255 rounded to nearest, computed as PIL's MULDIV255 does. */
static inline unsigned muldiv255(unsigned a, unsigned b)
{
    unsigned t = a * b + 128;
    return ((t >> 8) + t) >> 8;
}

/* In place, front to back: 4 bytes of CMYK per pixel become 3 of RGB. The
 * stored values are inverted first (PIL's "CMYK;I"). */
static void cmyk_to_rgb(uint8_t *px, size_t npx)
{
    for (size_t i = 0; i < npx; i++) {
        const uint8_t *s = px + 4 * i;
        unsigned c = 255u - s[0], m = 255u - s[1], y = 255u - s[2], k = 255u - s[3];
        unsigned nk = 255u - k;
        uint8_t *d = px + 3 * i;
        d[0] = (uint8_t)(nk - muldiv255(c, nk));
        d[1] = (uint8_t)(nk - muldiv255(m, nk));
        d[2] = (uint8_t)(nk - muldiv255(y, nk));
    }
}

/* In place, back to front: 1 gray byte per pixel becomes 3. */
static void gray_to_rgb(uint8_t *px, size_t npx)
{
    for (size_t i = npx; i-- > 0;) {
        uint8_t v = px[i];
        px[3 * i] = px[3 * i + 1] = px[3 * i + 2] = v;
    }
}

static kn_status decode_pixels(tjhandle tj, const uint8_t *buf, size_t len, const jpeg_hdr *hd,
                               uint8_t *px, int pf, int bpp, kn_err *e)
{
    const int flags = TJFLAG_ACCURATEDCT | TJFLAG_LIMITSCANS;
    char msg[200]; /* TurboJPEG messages are shorter (JMSG_LENGTH_MAX) */
    if (tjDecompress2(tj, buf, (unsigned long)len, px, hd->w, hd->w * bpp, hd->h, pf,
                      flags | TJFLAG_STOPONWARNING) == 0)
        return KN_OK;
    snprintf(msg, sizeof msg, "%s", tjGetErrorStr2(tj));
    if (tjGetErrorCode(tj) == TJERR_FATAL)
        return kn_err_set(e, KN_BAD_FORMAT, "corrupt JPEG: %s", msg);
    if (strstr(msg, "Premature end of JPEG file"))
        return kn_err_set(e, KN_BAD_FORMAT, "truncated JPEG: %s", msg);
    /* A recoverable corruption: decode through it as PIL does, unless the
     * data also ends before an EOI (libjpeg would report that only as a
     * second warning, which TurboJPEG does not show us). */
    if (!reaches_eoi(buf, len, hd->scan))
        return kn_err_set(e, KN_BAD_FORMAT, "truncated JPEG: no end-of-image marker (and %s)",
                          msg);
    if (tjDecompress2(tj, buf, (unsigned long)len, px, hd->w, hd->w * bpp, hd->h, pf, flags) !=
            0 &&
        tjGetErrorCode(tj) == TJERR_FATAL)
        return kn_err_set(e, KN_BAD_FORMAT, "corrupt JPEG: %s", tjGetErrorStr2(tj));
    return KN_OK;
}

kn_status kn__img_decode_jpeg(const uint8_t *buf, size_t len, const kn_img_decode_params *p,
                              kn_img *out, int *orientation, kn_err *e)
{
    jpeg_hdr hd;
    kn_status rc = scan_header(buf, len, &hd, e);
    if (rc)
        return rc;
    if ((rc = kn__img_check_size("JPEG", (uint64_t)hd.w, (uint64_t)hd.h, p->max_pixels, e)))
        return rc;
    if ((rc = check_kind(&hd, e)))
        return rc;

    int pf = hd.ncomp == 1 ? TJPF_GRAY : hd.ncomp == 3 ? TJPF_RGB : TJPF_CMYK;
    int bpp = tjPixelSize[pf];
    size_t npx = (size_t)hd.w * (size_t)hd.h; /* both < 65536: no overflow */
    /* Zeroed so that no byte of the result is ever uninitialised memory. */
    uint8_t *px = calloc(npx, bpp > 3 ? (size_t)bpp : 3);
    tjhandle tj = NULL;
    if (!px) {
        rc = kn_err_set(e, KN_NOMEM, "JPEG %dx%d: out of memory", hd.w, hd.h);
        goto out;
    }
    if (!(tj = tjInitDecompress())) {
        rc = kn_err_set(e, KN_NOMEM, "JPEG: cannot create decoder: %s", tjGetErrorStr2(NULL));
        goto out;
    }
    if ((rc = decode_pixels(tj, buf, len, &hd, px, pf, bpp, e)))
        goto out;

    if (pf == TJPF_GRAY) {
        gray_to_rgb(px, npx);
    } else if (pf == TJPF_CMYK) {
        cmyk_to_rgb(px, npx);
        uint8_t *shrunk = realloc(px, npx * 3);
        if (shrunk)
            px = shrunk;
    }
    out->w = hd.w;
    out->h = hd.h;
    out->data = px;
    px = NULL;
    *orientation = p->apply_exif ? kn__exif_orientation(hd.exif, hd.exif_len) : 0;
out:
    if (tj)
        tjDestroy(tj);
    free(px);
    return rc;
}
