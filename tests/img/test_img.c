/* Unit tests of the img module on images generated here with libpng and
 * TurboJPEG: every PNG colour type and depth, interlacing, palettes with
 * short PLTEs, baseline / progressive / gray / CMYK JPEG, all eight EXIF
 * orientations, malformed EXIF, truncated, corrupt, empty and non-image
 * data, the pixel limit, PIL-exact resizing (expected values were produced
 * once with PIL 9.4) and preprocessing.
 *
 * The binary also has helper modes used by test_preprocess_parity.py:
 *   --dump IMAGE OUT.bin          torchvision-recipe tensor, 3x224x224 float32
 *   --dump-rgb IMAGE OUT.bin      decoded image: int32 w, int32 h, RGB bytes
 *   --dump-resize IMAGE W H OUT   decoded then resized RGB bytes
 *   --dump-batch DIR IMAGE...     DIR/<i>.rgb, <i>.resized (224x224), <i>.tensor
 *   --write-samples DIR [SIZE]    writes the generated test images to DIR
 * and exit 0 on success, 1 on failure (message on stderr).
 */
#include "kennel/img.h"

#include "img_int.h"
#include "kn_test.h"

#include <errno.h>
#include <png.h>
#include <setjmp.h>
#include <stdint.h>
#include <sys/stat.h>
#include <turbojpeg.h>
#include <unistd.h>

#define BUF_MAX (64u << 20)

/* ------------------------------------------------------------------ */
/* Writers                                                             */
/* ------------------------------------------------------------------ */

typedef struct png_spec {
    int w, h, ctype, depth;
    bool interlace;
    const png_color *pal;
    int npal;
    const png_byte *trns; /* palette alpha entries */
    int ntrns;
    int exif_orientation; /* 0: no eXIf chunk */
} png_spec;

static void png_put(png_structp png, png_bytep d, size_t n)
{
    kn_buf *b = png_get_io_ptr(png);
    if (kn_buf_append(b, d, n))
        png_error(png, "buffer full");
}

static void png_flush_nop(png_structp png)
{
    (void)png;
}

/* Little-endian TIFF with one IFD0 entry: orientation (SHORT). */
static size_t tiff_orientation(uint8_t *t, int orientation, bool big_endian)
{
    static const uint8_t le[] = {'I', 'I', 42, 0, 8, 0, 0, 0, 1, 0, 0x12, 0x01, 3, 0, 1, 0, 0, 0,
                                 0, 0, 0, 0, 0, 0, 0, 0};
    static const uint8_t be[] = {'M', 'M', 0, 42, 0, 0, 0, 8, 0, 1, 0x01, 0x12, 0, 3, 0, 0, 0, 1,
                                 0, 0, 0, 0, 0, 0, 0, 0};
    memcpy(t, big_endian ? be : le, sizeof le);
    if (big_endian)
        t[19] = (uint8_t)orientation;
    else
        t[18] = (uint8_t)orientation;
    return sizeof le;
}

/* raw: h rows in PNG sample layout (packed below 8 bits, big-endian 16). */
static int write_png_rows(png_structp png, png_infop info, const png_spec *s, const uint8_t *raw,
                          size_t rowbytes)
{
    if (setjmp(png_jmpbuf(png)))
        return -1;
    png_set_IHDR(png, info, (png_uint_32)s->w, (png_uint_32)s->h, s->depth, s->ctype,
                 s->interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (s->pal) {
        png_set_PLTE(png, info, s->pal, s->npal);
        png_set_check_for_invalid_index(png, 0); /* we test indices past PLTE */
    }
    if (s->trns)
        png_set_tRNS(png, info, s->trns, s->ntrns, NULL);
    uint8_t tiff[32];
    if (s->exif_orientation) {
        size_t n = tiff_orientation(tiff, s->exif_orientation, true);
        png_set_eXIf_1(png, info, (png_uint_32)n, tiff);
    }
    png_write_info(png, info);
    int passes = png_set_interlace_handling(png);
    for (int pass = 0; pass < passes; pass++)
        for (int y = 0; y < s->h; y++)
            png_write_row(png, raw + (size_t)y * rowbytes);
    png_write_end(png, info);
    return 0;
}

static kn_buf make_png(const png_spec *s, const uint8_t *raw, size_t rowbytes)
{
    kn_buf b;
    kn_buf_init(&b, BUF_MAX);
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (png && info) {
        png_set_write_fn(png, &b, png_put, png_flush_nop);
        if (write_png_rows(png, info, s, raw, rowbytes) != 0)
            b.len = 0;
    }
    png_destroy_write_struct(&png, &info);
    return b;
}

/* JPEG from pixels in TurboJPEG pixel format pf. */
static kn_buf make_jpeg(const uint8_t *px, int w, int h, int pf, int subsamp, int quality,
                        bool progressive)
{
    kn_buf b;
    kn_buf_init(&b, BUF_MAX);
    tjhandle tj = tjInitCompress();
    unsigned char *jpg = NULL;
    unsigned long n = 0;
    int flags = TJFLAG_ACCURATEDCT | (progressive ? TJFLAG_PROGRESSIVE : 0);
    if (tj && tjCompress2(tj, px, w, 0, h, pf, &jpg, &n, subsamp, quality, flags) == 0)
        kn_buf_append(&b, jpg, n);
    else
        fprintf(stderr, "tjCompress2: %s\n", tjGetErrorStr2(tj));
    tjFree(jpg);
    if (tj)
        tjDestroy(tj);
    return b;
}

/* Copy of jpg with an APP1 segment (body given) right after SOI. */
static kn_buf with_app1(const kn_buf *jpg, const uint8_t *body, size_t n)
{
    kn_buf b;
    kn_buf_init(&b, BUF_MAX);
    uint8_t head[4] = {0xFF, 0xE1, (uint8_t)((n + 2) >> 8), (uint8_t)(n + 2)};
    kn_buf_append(&b, jpg->data, 2);
    kn_buf_append(&b, head, 4);
    kn_buf_append(&b, body, n);
    kn_buf_append(&b, jpg->data + 2, jpg->len - 2);
    return b;
}

/* Copy of jpg with two junk bytes before the segment that follows JFIF's
 * APP0 (at offset 20 in TurboJPEG's output): libjpeg warns "extraneous
 * bytes before marker" and decodes on, as PIL does. */
static kn_buf with_junk(const kn_buf *jpg)
{
    kn_buf b;
    kn_buf_init(&b, BUF_MAX);
    kn_buf_append(&b, jpg->data, 20);
    kn_buf_append(&b, "\0\0", 2);
    kn_buf_append(&b, jpg->data + 20, jpg->len - 20);
    return b;
}

static kn_buf with_exif(const kn_buf *jpg, int orientation, bool big_endian)
{
    uint8_t body[64] = "Exif\0";
    size_t n = 6 + tiff_orientation(body + 6, orientation, big_endian);
    return with_app1(jpg, body, n);
}

/* A colourful test pattern with distinct neighbours. */
static uint8_t *pattern_rgb(int w, int h)
{
    uint8_t *p = malloc((size_t)w * h * 3);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++)
                p[((size_t)y * w + x) * 3 + c] =
                    (uint8_t)((x * 37 + y * 91 + c * 53 + (x * y) % 7) & 255);
    return p;
}

/* Smooth content (JPEG-friendly): quadrants of colour plus a gradient. */
static uint8_t *smooth_rgb(int w, int h)
{
    uint8_t *p = malloc((size_t)w * h * 3);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint8_t *q = p + ((size_t)y * w + x) * 3;
            q[0] = (uint8_t)(x < w / 2 ? 220 : 30);
            q[1] = (uint8_t)(y < h / 2 ? 200 : 60);
            q[2] = (uint8_t)(x * 255 / (w > 1 ? w - 1 : 1));
        }
    return p;
}

static kn_img_decode_params params(void)
{
    return kn_img_decode_default_params();
}

static kn_status decode_buf(const kn_buf *b, kn_img *im, kn_err *e)
{
    kn_img_decode_params p = params();
    kn_err_clear(e);
    return kn_img_decode(b->data, b->len, &p, im, e);
}

/* ------------------------------------------------------------------ */
/* PNG                                                                 */
/* ------------------------------------------------------------------ */

static int channels_of(int ctype)
{
    switch (ctype) {
    case PNG_COLOR_TYPE_GRAY: return 1;
    case PNG_COLOR_TYPE_GRAY_ALPHA: return 2;
    case PNG_COLOR_TYPE_RGB: return 3;
    case PNG_COLOR_TYPE_RGB_ALPHA: return 4;
    default: return 1; /* palette */
    }
}

static const png_color test_palette[] = {
    {250, 10, 20}, {15, 240, 30}, {25, 35, 230}, {200, 200, 0}, {0, 190, 180},
    {170, 0, 160}, {90, 90, 90}, {255, 255, 255}, {0, 0, 0},    {1, 2, 3},
};

/* Builds a PNG of the given kind with a deterministic sample pattern and
 * the RGB that PIL's convert("RGB") (with img.h's 16-bit rule) gives. */
static kn_buf png_case(int ctype, int depth, bool interlace, int w, int h, int npal,
                       uint8_t **expected)
{
    int ch = channels_of(ctype);
    size_t rowbytes = ((size_t)w * ch * depth + 7) / 8;
    uint8_t *raw = calloc((size_t)h, rowbytes);
    uint8_t *exp = malloc((size_t)w * h * 3);
    unsigned maxv = (1u << depth) - 1;
    for (int y = 0; y < h; y++) {
        for (int x = 0; x < w; x++) {
            uint8_t rgb[4] = {0};
            for (int c = 0; c < ch; c++) {
                unsigned v;
                if (ctype == PNG_COLOR_TYPE_PALETTE)
                    v = (unsigned)(x + 3 * y) & maxv;
                else if (depth == 16)
                    v = (unsigned)(x * 7919 + y * 104729 + c * 31337) & 0xFFFF;
                else
                    v = (unsigned)(x * 7 + y * 13 + c * 29 + 3) & maxv;
                size_t bit = ((size_t)x * ch + c) * depth;
                uint8_t *row = raw + (size_t)y * rowbytes;
                if (depth == 16) {
                    row[bit / 8] = (uint8_t)(v >> 8);
                    row[bit / 8 + 1] = (uint8_t)v;
                } else if (depth == 8) {
                    row[bit / 8] = (uint8_t)v;
                } else {
                    row[bit / 8] |= (uint8_t)(v << (8 - depth - bit % 8));
                }
                if (ctype == PNG_COLOR_TYPE_PALETTE) {
                    if ((int)v < npal && (int)v < (1 << depth)) {
                        rgb[0] = test_palette[v].red;
                        rgb[1] = test_palette[v].green;
                        rgb[2] = test_palette[v].blue;
                    } else {
                        rgb[0] = rgb[1] = rgb[2] = (uint8_t)v; /* PIL's gray ramp */
                    }
                } else if (c < 3) {
                    rgb[c] = depth == 16 ? (uint8_t)(v >> 8) : (uint8_t)(v * 255 / maxv);
                }
            }
            if (ch <= 2 && ctype != PNG_COLOR_TYPE_PALETTE)
                rgb[1] = rgb[2] = rgb[0];
            memcpy(exp + ((size_t)y * w + x) * 3, rgb, 3);
        }
    }
    static const png_byte trns[] = {0, 128, 255};
    png_spec s = {w, h, ctype, depth, interlace, NULL, 0, NULL, 0, 0};
    if (ctype == PNG_COLOR_TYPE_PALETTE) {
        s.pal = test_palette;
        s.npal = npal < (1 << depth) ? npal : 1 << depth;
        s.trns = trns;
        s.ntrns = s.npal < 3 ? s.npal : 3;
    }
    kn_buf b = make_png(&s, raw, rowbytes);
    free(raw);
    *expected = exp;
    return b;
}

static void check_png_case(int ctype, int depth, bool interlace, int npal)
{
    const int w = 37, h = 23;
    uint8_t *exp = NULL;
    kn_buf b = png_case(ctype, depth, interlace, w, h, npal, &exp);
    kn_img im;
    kn_err e;
    kn_status rc = decode_buf(&b, &im, &e);
    if (rc)
        fprintf(stderr, "ctype %d depth %d interlace %d: %s\n", ctype, depth, interlace, e.msg);
    KN_CHECK_INT(rc, KN_OK);
    if (rc == KN_OK) {
        KN_CHECK_INT(im.w, w);
        KN_CHECK_INT(im.h, h);
        int bad = 0;
        for (size_t i = 0; i < (size_t)w * h * 3; i++)
            bad += im.data[i] != exp[i];
        if (bad)
            fprintf(stderr, "ctype %d depth %d interlace %d: %d bytes differ\n", ctype, depth,
                    interlace, bad);
        KN_CHECK_INT(bad, 0);
    }
    kn_img_deinit(&im);
    free(exp);
    kn_buf_deinit(&b);
}

static void test_png_all_kinds(void)
{
    static const struct {
        int ctype, depth;
    } kinds[] = {
        {PNG_COLOR_TYPE_GRAY, 1},       {PNG_COLOR_TYPE_GRAY, 2},
        {PNG_COLOR_TYPE_GRAY, 4},       {PNG_COLOR_TYPE_GRAY, 8},
        {PNG_COLOR_TYPE_GRAY, 16},      {PNG_COLOR_TYPE_GRAY_ALPHA, 8},
        {PNG_COLOR_TYPE_GRAY_ALPHA, 16}, {PNG_COLOR_TYPE_RGB, 8},
        {PNG_COLOR_TYPE_RGB, 16},       {PNG_COLOR_TYPE_RGB_ALPHA, 8},
        {PNG_COLOR_TYPE_RGB_ALPHA, 16}, {PNG_COLOR_TYPE_PALETTE, 1},
        {PNG_COLOR_TYPE_PALETTE, 2},    {PNG_COLOR_TYPE_PALETTE, 4},
        {PNG_COLOR_TYPE_PALETTE, 8},
    };
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        for (int il = 0; il < 2; il++)
            check_png_case(kinds[i].ctype, kinds[i].depth, il, 10);
}

/* Indices past the end of PLTE read PIL's gray ramp, never out of bounds. */
static void test_png_short_palette(void)
{
    check_png_case(PNG_COLOR_TYPE_PALETTE, 8, false, 2);
    check_png_case(PNG_COLOR_TYPE_PALETTE, 4, true, 1);
}

static void test_png_exif_orientation(void)
{
    const int w = 5, h = 3;
    uint8_t raw[5 * 3 * 3];
    for (int i = 0; i < w * h * 3; i++)
        raw[i] = (uint8_t)(i * 17);
    png_spec s = {w, h, PNG_COLOR_TYPE_RGB, 8, false, NULL, 0, NULL, 0, 6};
    kn_buf b = make_png(&s, raw, (size_t)w * 3);
    kn_img im;
    kn_err e;
    KN_REQUIRE(decode_buf(&b, &im, &e) == KN_OK);
    KN_CHECK_INT(im.w, h); /* rotated 90 degrees clockwise */
    KN_CHECK_INT(im.h, w);
    /* Output (x, y) = input (y, h - 1 - x). */
    int bad = 0;
    for (int y = 0; y < im.h; y++)
        for (int x = 0; x < im.w; x++)
            bad += memcmp(im.data + ((size_t)y * im.w + x) * 3,
                          raw + ((size_t)(h - 1 - x) * w + y) * 3, 3) != 0;
    KN_CHECK_INT(bad, 0);
    kn_img_deinit(&im);
    kn_buf_deinit(&b);
}

/* ------------------------------------------------------------------ */
/* JPEG                                                                */
/* ------------------------------------------------------------------ */

/* TurboJPEG's own ISLOW decode, for comparison. */
static uint8_t *tj_decode(const kn_buf *b, int pf, int *w, int *h)
{
    tjhandle tj = tjInitDecompress();
    int ss, cs;
    uint8_t *px = NULL;
    if (tjDecompressHeader3(tj, b->data, b->len, w, h, &ss, &cs) == 0) {
        px = malloc((size_t)*w * *h * tjPixelSize[pf]);
        if (tjDecompress2(tj, b->data, b->len, px, *w, 0, *h, pf, TJFLAG_ACCURATEDCT) != 0) {
            free(px);
            px = NULL;
        }
    }
    tjDestroy(tj);
    return px;
}

static int max_diff(const uint8_t *a, const uint8_t *b, size_t n)
{
    int m = 0;
    for (size_t i = 0; i < n; i++) {
        int d = abs((int)a[i] - (int)b[i]);
        if (d > m)
            m = d;
    }
    return m;
}

static void test_jpeg_baseline_and_subsampling(void)
{
    const int w = 61, h = 45;
    uint8_t *src = smooth_rgb(w, h);
    static const int subs[] = {TJSAMP_444, TJSAMP_422, TJSAMP_420, TJSAMP_440, TJSAMP_411};
    for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++) {
        kn_buf b = make_jpeg(src, w, h, TJPF_RGB, subs[i], 95, false);
        kn_img im;
        kn_err e;
        kn_status rc = decode_buf(&b, &im, &e);
        KN_CHECK_INT(rc, KN_OK);
        if (rc == KN_OK) {
            KN_CHECK_INT(im.w, w);
            KN_CHECK_INT(im.h, h);
            int tw, th;
            uint8_t *ref = tj_decode(&b, TJPF_RGB, &tw, &th);
            KN_CHECK(ref != NULL);
            if (ref)
                KN_CHECK_INT(memcmp(ref, im.data, (size_t)w * h * 3), 0);
            free(ref);
            /* Colour edges blur under chroma subsampling; the quadrant
             * centres must survive. */
            const uint8_t *c = im.data + ((size_t)(h / 4) * w + w / 4) * 3;
            KN_CHECK_NEAR(c[0], 220, 6);
            KN_CHECK_NEAR(c[1], 200, 6);
        }
        kn_img_deinit(&im);
        kn_buf_deinit(&b);
    }
    free(src);
}

/* A progressive JPEG carries the same coefficients as the baseline one made
 * from the same pixels, so both must decode to the same bytes. */
static void test_jpeg_progressive(void)
{
    const int w = 70, h = 50;
    uint8_t *src = smooth_rgb(w, h);
    kn_buf base = make_jpeg(src, w, h, TJPF_RGB, TJSAMP_420, 90, false);
    kn_buf prog = make_jpeg(src, w, h, TJPF_RGB, TJSAMP_420, 90, true);
    KN_CHECK(prog.len > 0 && base.len > 0);
    KN_CHECK(prog.len > 3 && memmem(prog.data, prog.len, "\xFF\xC2", 2) != NULL);
    kn_img a, b;
    kn_err e;
    KN_REQUIRE(decode_buf(&base, &a, &e) == KN_OK);
    kn_status rc = decode_buf(&prog, &b, &e);
    KN_CHECK_INT(rc, KN_OK);
    if (rc == KN_OK) {
        KN_CHECK_INT(b.w, w);
        KN_CHECK_INT(memcmp(a.data, b.data, (size_t)w * h * 3), 0);
    }
    kn_img_deinit(&a);
    kn_img_deinit(&b);
    kn_buf_deinit(&base);
    kn_buf_deinit(&prog);
    free(src);
}

/* A warning that is not a truncation is decoded through (as PIL does); the
 * same file cut short is still refused although libjpeg's first warning is
 * about the junk. */
static void test_jpeg_recoverable_warning(void)
{
    const int w = 40, h = 24;
    uint8_t *src = smooth_rgb(w, h);
    kn_buf jpg = make_jpeg(src, w, h, TJPF_RGB, TJSAMP_420, 90, false);
    KN_REQUIRE(jpg.len > 22 && jpg.data[20] == 0xFF && jpg.data[2] == 0xFF &&
               jpg.data[3] == 0xE0);
    kn_buf junk = with_junk(&jpg);
    kn_img a, b;
    kn_err e;
    KN_REQUIRE(decode_buf(&jpg, &a, &e) == KN_OK);
    kn_status rc = decode_buf(&junk, &b, &e);
    if (rc)
        fprintf(stderr, "junk: %s\n", e.msg);
    KN_CHECK_INT(rc, KN_OK);
    if (rc == KN_OK)
        KN_CHECK_INT(memcmp(a.data, b.data, (size_t)w * h * 3), 0);
    kn_img_deinit(&b);
    for (size_t cut = 2; cut < 40; cut += 3) {
        rc = kn_img_decode(junk.data, junk.len - cut, NULL, &b, &e);
        KN_CHECK_INT(rc, KN_BAD_FORMAT);
        KN_CHECK_CONTAINS(e.msg, "truncated");
        kn_img_deinit(&b);
    }
    kn_img_deinit(&a);
    kn_buf_deinit(&junk);
    kn_buf_deinit(&jpg);
    free(src);
}

static void test_jpeg_gray(void)
{
    const int w = 33, h = 17;
    uint8_t *g = malloc((size_t)w * h);
    for (int i = 0; i < w * h; i++)
        g[i] = (uint8_t)(i % w * 255 / (w - 1));
    kn_buf b = make_jpeg(g, w, h, TJPF_GRAY, TJSAMP_GRAY, 95, false);
    kn_img im;
    kn_err e;
    KN_REQUIRE(decode_buf(&b, &im, &e) == KN_OK);
    int tw, th;
    uint8_t *ref = tj_decode(&b, TJPF_GRAY, &tw, &th);
    int bad = 0;
    for (int i = 0; ref && i < w * h; i++)
        bad += im.data[3 * i] != ref[i] || im.data[3 * i + 1] != ref[i] ||
               im.data[3 * i + 2] != ref[i];
    KN_CHECK(ref != NULL);
    KN_CHECK_INT(bad, 0);
    KN_CHECK(max_diff(ref, g, (size_t)w * h) < 12);
    free(ref);
    kn_img_deinit(&im);
    kn_buf_deinit(&b);
    free(g);
}

/* CMYK JPEGs are read as Adobe-inverted (as PIL 9.4 does for every CMYK
 * JPEG): stored (255,0,255,255) is C=0 M=255 Y=0 K=0, i.e. magenta. */
static void test_jpeg_cmyk(void)
{
    const int w = 32, h = 16;
    static const uint8_t stored[4][4] = {
        {255, 255, 255, 255}, /* white */
        {255, 0, 255, 255},   /* magenta */
        {0, 0, 0, 0},         /* black */
        {255, 255, 255, 128}, /* K = 127: gray 128 */
    };
    static const uint8_t want[4][3] = {{255, 255, 255}, {255, 0, 255}, {0, 0, 0}, {128, 128, 128}};
    uint8_t *px = malloc((size_t)w * h * 4);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            memcpy(px + ((size_t)y * w + x) * 4, stored[x / 8], 4);
    kn_buf b = make_jpeg(px, w, h, TJPF_CMYK, TJSAMP_444, 100, false);
    kn_img im;
    kn_err e;
    kn_status rc = decode_buf(&b, &im, &e);
    if (rc)
        fprintf(stderr, "cmyk: %s\n", e.msg);
    KN_REQUIRE(rc == KN_OK);
    for (int q = 0; q < 4; q++) {
        const uint8_t *c = im.data + ((size_t)(h / 2) * w + q * 8 + 4) * 3;
        for (int k = 0; k < 3; k++)
            KN_CHECK_NEAR(c[k], want[q][k], 3);
    }
    /* Exact arithmetic against TurboJPEG's raw CMYK. */
    int tw, th;
    uint8_t *raw = tj_decode(&b, TJPF_CMYK, &tw, &th);
    KN_REQUIRE(raw != NULL);
    int bad = 0;
    for (int i = 0; i < w * h; i++) {
        int nk = raw[4 * i + 3]; /* 255 - inverted K */
        for (int k = 0; k < 3; k++) {
            int c = 255 - raw[4 * i + k];
            int t = c * nk + 128;
            int v = nk - (((t >> 8) + t) >> 8);
            bad += im.data[3 * i + k] != v;
        }
    }
    KN_CHECK_INT(bad, 0);
    free(raw);
    kn_img_deinit(&im);
    kn_buf_deinit(&b);
    free(px);
}

/* ------------------------------------------------------------------ */
/* EXIF                                                                */
/* ------------------------------------------------------------------ */

/* Where output pixel (x, y) of an image shown with this orientation comes
 * from in the stored w x h image (written out case by case, independently
 * of the implementation's stride form). */
static void oriented_source(int o, int w, int h, int x, int y, int *sx, int *sy)
{
    switch (o) {
    case 2: *sx = w - 1 - x, *sy = y; break;
    case 3: *sx = w - 1 - x, *sy = h - 1 - y; break;
    case 4: *sx = x, *sy = h - 1 - y; break;
    case 5: *sx = y, *sy = x; break;
    case 6: *sx = y, *sy = h - 1 - x; break;
    case 7: *sx = w - 1 - y, *sy = h - 1 - x; break;
    case 8: *sx = w - 1 - y, *sy = x; break;
    default: *sx = x, *sy = y; break;
    }
}

static void test_exif_all_orientations(void)
{
    const int w = 24, h = 16;
    uint8_t *src = smooth_rgb(w, h);
    kn_buf jpg = make_jpeg(src, w, h, TJPF_RGB, TJSAMP_444, 95, false);
    kn_img base;
    kn_err e;
    KN_REQUIRE(decode_buf(&jpg, &base, &e) == KN_OK);
    for (int be = 0; be < 2; be++) {
        for (int o = 1; o <= 8; o++) {
            kn_buf b = with_exif(&jpg, o, be);
            kn_img im;
            kn_status rc = decode_buf(&b, &im, &e);
            KN_CHECK_INT(rc, KN_OK);
            if (rc == KN_OK) {
                bool swap = o >= 5;
                KN_CHECK_INT(im.w, swap ? h : w);
                KN_CHECK_INT(im.h, swap ? w : h);
                int bad = 0;
                for (int y = 0; y < im.h; y++)
                    for (int x = 0; x < im.w; x++) {
                        int sx, sy;
                        oriented_source(o, w, h, x, y, &sx, &sy);
                        bad += memcmp(im.data + ((size_t)y * im.w + x) * 3,
                                      base.data + ((size_t)sy * w + sx) * 3, 3) != 0;
                    }
                if (bad)
                    fprintf(stderr, "orientation %d (%s): %d pixels wrong\n", o,
                            be ? "MM" : "II", bad);
                KN_CHECK_INT(bad, 0);
            }
            kn_img_deinit(&im);
            /* apply_exif = false keeps the stored layout. */
            kn_img_decode_params p = params();
            p.apply_exif = false;
            rc = kn_img_decode(b.data, b.len, &p, &im, &e);
            KN_CHECK_INT(rc, KN_OK);
            if (rc == KN_OK) {
                KN_CHECK_INT(im.w, w);
                KN_CHECK_INT(memcmp(im.data, base.data, (size_t)w * h * 3), 0);
            }
            kn_img_deinit(&im);
            kn_buf_deinit(&b);
        }
    }
    kn_img_deinit(&base);
    kn_buf_deinit(&jpg);
    free(src);
}

static void test_exif_parser_malformed(void)
{
    uint8_t t[64];
    size_t n = tiff_orientation(t, 6, false);
    KN_CHECK_INT(kn__exif_orientation(t, n), 6);
    n = tiff_orientation(t, 3, true);
    KN_CHECK_INT(kn__exif_orientation(t, n), 3);
    /* Every truncation of a valid block is safe and ignored once the entry
     * is cut. */
    for (size_t k = 0; k < n; k++)
        KN_CHECK(kn__exif_orientation(t, k) == 0 || k >= 22);
    KN_CHECK_INT(kn__exif_orientation(NULL, 0), 0);

    uint8_t m[32];
    n = tiff_orientation(m, 6, false);
    m[0] = 'X'; /* bad byte order */
    KN_CHECK_INT(kn__exif_orientation(m, n), 0);
    n = tiff_orientation(m, 6, false);
    m[2] = 43; /* bad magic */
    KN_CHECK_INT(kn__exif_orientation(m, n), 0);
    n = tiff_orientation(m, 6, false);
    m[4] = 0xF0, m[5] = 0xFF, m[6] = 0xFF, m[7] = 0xFF; /* IFD offset past the end */
    KN_CHECK_INT(kn__exif_orientation(m, n), 0);
    n = tiff_orientation(m, 6, false);
    m[4] = 0xFF, m[5] = 0xFF, m[6] = 0xFF, m[7] = 0xFF; /* offset overflowing 32 bits */
    KN_CHECK_INT(kn__exif_orientation(m, n), 0);
    n = tiff_orientation(m, 6, false);
    m[8] = 0xFF, m[9] = 0xFF; /* 65535 entries claimed: only the one present is read */
    KN_CHECK_INT(kn__exif_orientation(m, n), 6);
    n = tiff_orientation(m, 9, false); /* out of range value */
    KN_CHECK_INT(kn__exif_orientation(m, n), 0);
    n = tiff_orientation(m, 0, false);
    KN_CHECK_INT(kn__exif_orientation(m, n), 0);
    n = tiff_orientation(m, 6, false);
    m[12] = 2; /* type ASCII */
    KN_CHECK_INT(kn__exif_orientation(m, n), 0);
    n = tiff_orientation(m, 6, false);
    m[14] = 2; /* count 2 */
    KN_CHECK_INT(kn__exif_orientation(m, n), 0);
    n = tiff_orientation(m, 6, false);
    m[12] = 4; /* LONG is accepted */
    KN_CHECK_INT(kn__exif_orientation(m, n), 6);
    n = tiff_orientation(m, 6, false);
    m[4] = 4; /* IFD inside the header */
    KN_CHECK_INT(kn__exif_orientation(m, n), 0);

    /* Decoding ignores broken EXIF blocks. */
    const int w = 16, h = 8;
    uint8_t *src = smooth_rgb(w, h);
    kn_buf jpg = make_jpeg(src, w, h, TJPF_RGB, TJSAMP_444, 90, false);
    static const uint8_t bodies[][16] = {
        "Exif\0\0",                       /* empty TIFF */
        "Exif\0\0MM\0*\0\0\0\x08\0",      /* IFD count cut */
        "Exif\0\0II*\0\xff\xff\0\0\0\0",  /* offset out of range */
        "Exif\0\0XX*\0\x08\0\0\0\0\0",    /* not TIFF */
    };
    static const size_t lens[] = {6, 15, 16, 16};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        kn_buf b = with_app1(&jpg, bodies[i], lens[i]);
        kn_img im;
        kn_err e;
        kn_status rc = decode_buf(&b, &im, &e);
        KN_CHECK_INT(rc, KN_OK);
        KN_CHECK_INT(im.w, w);
        kn_img_deinit(&im);
        kn_buf_deinit(&b);
    }
    kn_buf_deinit(&jpg);
    free(src);
}

/* ------------------------------------------------------------------ */
/* Bad input                                                           */
/* ------------------------------------------------------------------ */

static void expect_fail(const void *p, size_t n, kn_status want, const char *needle,
                        const char *what)
{
    kn_img im = {7, 7, (uint8_t *)"x"};
    kn_err e;
    kn_err_clear(&e);
    kn_img_decode_params prm = params();
    kn_status rc = kn_img_decode(p, n, &prm, &im, &e);
    if (rc != want)
        fprintf(stderr, "%s: got %s (%s)\n", what, kn_status_name(rc), e.msg);
    KN_CHECK_INT(rc, want);
    KN_CHECK(im.data == NULL && im.w == 0 && im.h == 0);
    KN_CHECK(e.msg[0] != '\0' && strchr(e.msg, '\n') == NULL);
    if (needle)
        KN_CHECK_CONTAINS(e.msg, needle);
}

static void test_empty_and_not_images(void)
{
    expect_fail("", 0, KN_BAD_FORMAT, "empty", "empty");
    expect_fail(NULL, 0, KN_BAD_FORMAT, "empty", "NULL empty");
    expect_fail("hello, world\n", 13, KN_UNSUPPORTED, "not a JPEG or PNG", "text");
    expect_fail("x", 1, KN_UNSUPPORTED, "not a JPEG or PNG", "one byte");
    expect_fail("GIF89a\1\0\1\0", 10, KN_UNSUPPORTED, "GIF", "gif");
    expect_fail("BM\0\0\0\0\0\0", 8, KN_UNSUPPORTED, "BMP", "bmp");
    expect_fail("RIFF\0\0\0\0WEBPVP8 ", 16, KN_UNSUPPORTED, "WebP", "webp");
    expect_fail("\x89PNG\r", 5, KN_BAD_FORMAT, "truncated PNG", "png prefix");
    expect_fail("\xFF\xD8", 2, KN_BAD_FORMAT, "truncated JPEG", "bare SOI");
    expect_fail("\xFF\xD8\xFF\xD9", 4, KN_BAD_FORMAT, "no image", "SOI EOI");
    kn_err e;
    KN_CHECK_INT(kn_img_decode("x", 1, NULL, NULL, &e), KN_INVALID);
}

static void test_truncated_jpeg(void)
{
    const int w = 48, h = 40;
    uint8_t *src = pattern_rgb(w, h);
    for (int prog = 0; prog < 2; prog++) {
        kn_buf b = make_jpeg(src, w, h, TJPF_RGB, TJSAMP_420, 90, prog);
        KN_REQUIRE(b.len > 100);
        /* Every cut loses the EOI, so every cut must fail. */
        int wrong = 0;
        for (size_t cut = 2; cut < b.len - 1; cut += (cut < 700 ? 1 : 7)) {
            kn_img im;
            kn_err e;
            kn_status rc = kn_img_decode(b.data, cut, NULL, &im, &e);
            if (rc != KN_BAD_FORMAT || e.msg[0] == '\0') {
                if (wrong++ < 3)
                    fprintf(stderr, "cut at %zu/%zu: %s %s\n", cut, b.len, kn_status_name(rc),
                            e.msg);
            }
            kn_img_deinit(&im);
        }
        KN_CHECK_INT(wrong, 0);
        /* A cut inside the scan says "truncated". */
        kn_img im;
        kn_err e;
        KN_CHECK_INT(kn_img_decode(b.data, b.len - 40, NULL, &im, &e), KN_BAD_FORMAT);
        KN_CHECK_CONTAINS(e.msg, "truncated");
        kn_buf_deinit(&b);
    }
    free(src);
}

static void test_truncated_png(void)
{
    uint8_t *exp;
    kn_buf b = png_case(PNG_COLOR_TYPE_RGB, 8, true, 40, 30, 0, &exp);
    free(exp);
    int wrong = 0;
    /* The image data ends 12 bytes before the end (IEND is not needed). */
    for (size_t cut = 0; cut + 12 < b.len; cut++) {
        kn_img im;
        kn_err e;
        kn_status rc = kn_img_decode(b.data, cut, NULL, &im, &e);
        if (rc != KN_BAD_FORMAT && rc != KN_UNSUPPORTED)
            wrong++;
        kn_img_deinit(&im);
    }
    KN_CHECK_INT(wrong, 0);
    kn_img im;
    kn_err e;
    KN_CHECK_INT(kn_img_decode(b.data, b.len / 2, NULL, &im, &e), KN_BAD_FORMAT);
    KN_CHECK_CONTAINS(e.msg, "PNG");
    kn_buf_deinit(&b);
}

static void test_corrupt_data(void)
{
    const int w = 40, h = 32;
    uint8_t *src = pattern_rgb(w, h);
    kn_buf jpg = make_jpeg(src, w, h, TJPF_RGB, TJSAMP_420, 90, false);
    /* Garbage in place of the quantisation tables and frame header. */
    kn_buf bad;
    kn_buf_init(&bad, BUF_MAX);
    kn_buf_append(&bad, jpg.data, 2);
    kn_rng r;
    kn_rng_seed(&r, 7);
    for (int i = 0; i < 500; i++) {
        uint8_t v = (uint8_t)kn_rng_next(&r);
        kn_buf_append(&bad, &v, 1);
    }
    expect_fail(bad.data, bad.len, KN_BAD_FORMAT, NULL, "random after SOI");
    kn_buf_deinit(&bad);

    /* Bit flips anywhere: any status, never a crash, always a message. */
    for (int t = 0; t < 300; t++) {
        kn_buf c;
        kn_buf_init(&c, BUF_MAX);
        kn_buf_append(&c, jpg.data, jpg.len);
        for (int k = 0; k < 4; k++)
            c.data[2 + kn_rng_next(&r) % (c.len - 2)] ^= (uint8_t)(1u << (kn_rng_next(&r) % 8));
        kn_img im;
        kn_err e;
        kn_err_clear(&e);
        kn_status rc = kn_img_decode(c.data, c.len, NULL, &im, &e);
        if (rc == KN_OK)
            KN_CHECK(im.w > 0 && im.data != NULL);
        else
            KN_CHECK(e.msg[0] != '\0');
        kn_img_deinit(&im);
        kn_buf_deinit(&c);
    }

    /* A PNG with a damaged IDAT fails its CRC. */
    uint8_t *exp;
    kn_buf png = png_case(PNG_COLOR_TYPE_RGB, 8, false, 40, 30, 0, &exp);
    free(exp);
    uint8_t *idat = memmem(png.data, png.len, "IDAT", 4);
    KN_REQUIRE(idat != NULL);
    idat[10] ^= 0x55;
    expect_fail(png.data, png.len, KN_BAD_FORMAT, "PNG", "damaged IDAT");
    kn_buf_deinit(&png);
    kn_buf_deinit(&jpg);
    free(src);
}

/* PNG's CRC-32 (zlib is not linked into the tests directly). */
static uint32_t crc32_png(const uint8_t *p, size_t n)
{
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
    }
    return c ^ 0xFFFFFFFFu;
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* Headers declaring 20000 x 20000 are refused before any pixel work: the
 * files carry no pixel data at all, so any decoding attempt would report a
 * truncation instead. */
static void test_pixel_limit(void)
{
    static const uint8_t jpeg_hdr[] = {
        0xFF, 0xD8,                                                  /* SOI */
        0xFF, 0xC0, 0x00, 0x11, 0x08, 0x4E, 0x20, 0x4E, 0x20, 0x03, /* SOF0 20000x20000 */
        0x01, 0x22, 0x00, 0x02, 0x11, 0x01, 0x03, 0x11, 0x01,
        0xFF, 0xDA, 0x00, 0x0C, 0x03, 0x01, 0x00, 0x02, 0x11, 0x03, 0x11, 0x00, 0x3F, 0x00,
    };
    expect_fail(jpeg_hdr, sizeof jpeg_hdr, KN_TOO_LARGE, "20000x20000", "jpeg 20000^2");
    kn_img im;
    kn_err e;
    kn_img_decode(jpeg_hdr, sizeof jpeg_hdr, NULL, &im, &e);
    KN_CHECK_CONTAINS(e.msg, "64000000");

    uint8_t png[8 + 25] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
    uint8_t *c = png + 8;
    put_be32(c, 13);
    memcpy(c + 4, "IHDR", 4);
    put_be32(c + 8, 20000);
    put_be32(c + 12, 20000);
    c[16] = 8, c[17] = 2, c[18] = 0, c[19] = 0, c[20] = 0;
    put_be32(c + 21, crc32_png(c + 4, 17));
    expect_fail(png, sizeof png, KN_TOO_LARGE, "20000x20000", "png 20000^2");

    /* A caller's tighter limit. */
    uint8_t *src = smooth_rgb(16, 16);
    kn_buf jpg = make_jpeg(src, 16, 16, TJPF_RGB, TJSAMP_444, 90, false);
    kn_img_decode_params p = params();
    p.max_pixels = 255;
    KN_CHECK_INT(kn_img_decode(jpg.data, jpg.len, &p, &im, &e), KN_TOO_LARGE);
    KN_CHECK_CONTAINS(e.msg, "16x16 (256 pixels)");
    KN_CHECK_CONTAINS(e.msg, "limit of 255");
    p.max_pixels = 256;
    KN_CHECK_INT(kn_img_decode(jpg.data, jpg.len, &p, &im, &e), KN_OK);
    kn_img_deinit(&im);
    kn_buf_deinit(&jpg);
    free(src);

    /* Zero-sized frames are malformed. */
    uint8_t zero[sizeof jpeg_hdr];
    memcpy(zero, jpeg_hdr, sizeof zero);
    zero[7] = zero[8] = 0;
    expect_fail(zero, sizeof zero, KN_BAD_FORMAT, "empty", "jpeg height 0");
}

static void test_unsupported_jpeg_kinds(void)
{
    uint8_t hdr[] = {
        0xFF, 0xD8, 0xFF, 0xC3, 0x00, 0x0B, 0x08, 0x00, 0x10, 0x00, 0x10, 0x01, 0x01, 0x11, 0x00,
        0xFF, 0xDA, 0x00, 0x08, 0x01, 0x01, 0x00, 0x00, 0x3F, 0x00,
    };
    expect_fail(hdr, sizeof hdr, KN_UNSUPPORTED, "lossless", "SOF3");
    hdr[3] = 0xC0;
    hdr[6] = 12;
    expect_fail(hdr, sizeof hdr, KN_UNSUPPORTED, "12-bit", "12-bit");
    hdr[6] = 8;
    hdr[11] = 2; /* two components (the segment is short, but the count decides) */
    expect_fail(hdr, sizeof hdr, KN_UNSUPPORTED, "2 components", "2 comps");
}

static char tmpdir[256];

static void test_load_prefixes_path(void)
{
    char path[512];
    snprintf(path, sizeof path, "%s/broken.jpg", tmpdir);
    uint8_t *src = smooth_rgb(32, 32);
    kn_buf jpg = make_jpeg(src, 32, 32, TJPF_RGB, TJSAMP_420, 90, false);
    kn_err e;
    KN_REQUIRE(kn_file_write(path, jpg.data, jpg.len / 2, &e) == KN_OK);
    kn_img im;
    KN_CHECK_INT(kn_img_load(path, NULL, &im, &e), KN_BAD_FORMAT);
    KN_CHECK(strncmp(e.msg, path, strlen(path)) == 0);
    KN_CHECK_CONTAINS(e.msg, "truncated JPEG");
    KN_CHECK(im.data == NULL);

    snprintf(path, sizeof path, "%s/good.jpg", tmpdir);
    KN_REQUIRE(kn_file_write(path, jpg.data, jpg.len, &e) == KN_OK);
    KN_CHECK_INT(kn_img_load(path, NULL, &im, &e), KN_OK);
    KN_CHECK_INT(im.w, 32);
    kn_img_deinit(&im);
    unlink(path);

    snprintf(path, sizeof path, "%s/empty.png", tmpdir);
    KN_REQUIRE(kn_file_write(path, "", 0, &e) == KN_OK);
    KN_CHECK_INT(kn_img_load(path, NULL, &im, &e), KN_BAD_FORMAT);
    KN_CHECK(strncmp(e.msg, path, strlen(path)) == 0);
    KN_CHECK_CONTAINS(e.msg, "empty");
    unlink(path);

    snprintf(path, sizeof path, "%s/missing.png", tmpdir);
    KN_CHECK_INT(kn_img_load(path, NULL, &im, &e), KN_NOT_FOUND);
    KN_CHECK_CONTAINS(e.msg, path);
    snprintf(path, sizeof path, "%s/broken.jpg", tmpdir);
    unlink(path);
    kn_buf_deinit(&jpg);
    free(src);
}

/* ------------------------------------------------------------------ */
/* Resize and preprocessing                                            */
/* ------------------------------------------------------------------ */

static uint32_t fnv1a(const uint8_t *p, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 16777619u;
    return h;
}

static void test_resize_matches_pil(void)
{
    /* Expected bytes from PIL 9.4 Image.resize(size, BILINEAR) on the same
     * pattern_rgb() images. */
    static const uint8_t r7x5_3x2[] = {100, 128, 137, 132, 113, 134, 132, 124, 119,
                                       108, 136, 148, 122, 125, 131, 132, 100, 110};
    static const uint8_t r13x11_13x4_head[] = {81, 134, 125, 119, 110, 163, 95, 148, 102, 133};
    static const uint8_t r13x11_5x11_head[] = {39, 92, 145, 124, 177, 192, 142, 99, 94, 64};
    static const uint8_t r7x5_11x9_head[] = {0, 53, 106, 17, 70, 123, 40, 93, 146, 64, 117, 170};
    static const struct {
        int w, h, ow, oh;
        const uint8_t *head;
        size_t nhead;
        uint32_t hash;
    } cases[] = {
        {7, 5, 3, 2, r7x5_3x2, sizeof r7x5_3x2, 0},
        {7, 5, 11, 9, r7x5_11x9_head, sizeof r7x5_11x9_head, 0},
        {13, 11, 5, 11, r13x11_5x11_head, sizeof r13x11_5x11_head, 0},
        {13, 11, 13, 4, r13x11_13x4_head, sizeof r13x11_13x4_head, 0},
        {640, 480, 224, 224, NULL, 0, 0xd25d9c55u},
        {100, 300, 224, 224, NULL, 0, 0x3c3122e5u},
        {1001, 37, 224, 224, NULL, 0, 0xaa0436e2u},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        kn_img src = {cases[i].w, cases[i].h, pattern_rgb(cases[i].w, cases[i].h)};
        kn_img dst;
        KN_CHECK_INT(kn_img_resize_bilinear(&src, cases[i].ow, cases[i].oh, &dst), KN_OK);
        KN_CHECK_INT(dst.w, cases[i].ow);
        KN_CHECK_INT(dst.h, cases[i].oh);
        if (cases[i].head)
            KN_CHECK_INT(memcmp(dst.data, cases[i].head, cases[i].nhead), 0);
        else
            KN_CHECK_INT(fnv1a(dst.data, (size_t)dst.w * dst.h * 3), cases[i].hash);
        kn_img_deinit(&dst);
        kn_img_deinit(&src);
    }
}

static void test_resize_properties(void)
{
    /* Constant images stay constant at any size. */
    kn_img src = {50, 30, malloc(50 * 30 * 3)};
    memset(src.data, 77, 50 * 30 * 3);
    static const int sizes[][2] = {{1, 1}, {224, 224}, {13, 97}, {50, 30}, {50, 7}, {3, 30}};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        kn_img dst;
        KN_REQUIRE(kn_img_resize_bilinear(&src, sizes[i][0], sizes[i][1], &dst) == KN_OK);
        size_t n = (size_t)dst.w * dst.h * 3;
        int bad = 0;
        for (size_t k = 0; k < n; k++)
            bad += dst.data[k] != 77;
        KN_CHECK_INT(bad, 0);
        kn_img_deinit(&dst);
    }
    /* Same size is a copy; in-place (dst == src) is allowed. */
    kn_img copy;
    KN_REQUIRE(kn_img_resize_bilinear(&src, 50, 30, &copy) == KN_OK);
    KN_CHECK_INT(memcmp(copy.data, src.data, 50 * 30 * 3), 0);
    KN_CHECK(copy.data != src.data);
    KN_CHECK_INT(kn_img_resize_bilinear(&copy, 10, 10, &copy), KN_OK);
    KN_CHECK_INT(copy.w, 10);
    kn_img_deinit(&copy);
    /* Bad arguments. */
    kn_img dst;
    KN_CHECK_INT(kn_img_resize_bilinear(&src, 0, 10, &dst), KN_INVALID);
    KN_CHECK_INT(kn_img_resize_bilinear(&src, 10, -1, &dst), KN_INVALID);
    KN_CHECK_INT(kn_img_resize_bilinear(NULL, 10, 10, &dst), KN_INVALID);
    kn_img empty = {0};
    KN_CHECK_INT(kn_img_resize_bilinear(&empty, 10, 10, &dst), KN_INVALID);
    kn_img_deinit(&src);
}

static void test_preprocess(void)
{
    kn_img im = {300, 200, malloc(300 * 200 * 3)};
    for (int i = 0; i < 300 * 200; i++) {
        im.data[3 * i] = 0;
        im.data[3 * i + 1] = 128;
        im.data[3 * i + 2] = 255;
    }
    kn_img_preproc tv = kn_img_preproc_torchvision();
    KN_CHECK_INT(tv.w, 224);
    KN_CHECK_INT(tv.h, 224);
    float *out = malloc(3 * 224 * 224 * sizeof *out);
    kn_err e;
    KN_REQUIRE(kn_img_preprocess(&im, &tv, out, &e) == KN_OK);
    const size_t plane = 224 * 224;
    KN_CHECK_NEAR(out[0], (0.0 - 0.485) / 0.229, 1e-6);
    KN_CHECK_NEAR(out[plane + 1000], (128 / 255.0 - 0.456) / 0.224, 1e-6);
    KN_CHECK_NEAR(out[2 * plane + plane - 1], (1.0 - 0.406) / 0.225, 1e-6);

    kn_img_preproc tf = kn_img_preproc_tf();
    KN_CHECK_INT(tf.norm, KN_NORM_TF);
    KN_REQUIRE(kn_img_preprocess(&im, &tf, out, &e) == KN_OK);
    KN_CHECK_NEAR(out[5], -1.0, 0);
    KN_CHECK_NEAR(out[plane + 5], (128 - 127.5) / 127.5, 1e-7);
    KN_CHECK_NEAR(out[2 * plane + 5], 1.0, 0);

    kn_img_preproc none = {.h = 10, .w = 20, .norm = KN_NORM_NONE};
    KN_REQUIRE(kn_img_preprocess(&im, &none, out, &e) == KN_OK);
    KN_CHECK_NEAR(out[0], 0.0, 0);
    KN_CHECK_NEAR(out[200 + 3], 128 / 255.0, 1e-7);
    KN_CHECK_NEAR(out[400 + 199], 1.0, 0);

    kn_img_preproc bad = tv;
    bad.w = 0;
    KN_CHECK_INT(kn_img_preprocess(&im, &bad, out, &e), KN_INVALID);
    bad = tv;
    bad.std[1] = 0;
    KN_CHECK_INT(kn_img_preprocess(&im, &bad, out, &e), KN_INVALID);
    kn_img empty = {0};
    KN_CHECK_INT(kn_img_preprocess(&empty, &tv, out, &e), KN_INVALID);
    free(out);
    kn_img_deinit(&im);
}

/* ------------------------------------------------------------------ */
/* Helper modes for the Python parity test                             */
/* ------------------------------------------------------------------ */

static int write_or_complain(const char *path, const void *p, size_t n)
{
    kn_err e;
    if (kn_file_write(path, p, n, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return 1;
    }
    return 0;
}

static int load_or_complain(const char *path, kn_img *im)
{
    kn_err e;
    if (kn_img_load(path, NULL, im, &e)) {
        fprintf(stderr, "%s: %s\n", kn_status_name(e.code), e.msg);
        return 1;
    }
    return 0;
}

static int dump_rgb(const kn_img *im, const char *out)
{
    size_t n = (size_t)im->w * im->h * 3;
    uint8_t *b = malloc(8 + n);
    int32_t wh[2] = {im->w, im->h};
    memcpy(b, wh, 8);
    memcpy(b + 8, im->data, n);
    int rc = write_or_complain(out, b, 8 + n);
    free(b);
    return rc;
}

static int dump_tensor(const kn_img *im, const char *out)
{
    kn_img_preproc p = kn_img_preproc_torchvision();
    size_t n = 3 * (size_t)p.w * p.h;
    float *t = malloc(n * sizeof *t);
    kn_err e;
    int rc = kn_img_preprocess(im, &p, t, &e) ? 1 : 0;
    if (rc)
        fprintf(stderr, "%s\n", e.msg);
    else
        rc = write_or_complain(out, t, n * sizeof *t);
    free(t);
    return rc;
}

static int dump_resized(const kn_img *im, int w, int h, const char *out)
{
    kn_img r;
    if (kn_img_resize_bilinear(im, w, h, &r)) {
        fprintf(stderr, "resize failed\n");
        return 1;
    }
    int rc = write_or_complain(out, r.data, (size_t)w * h * 3);
    kn_img_deinit(&r);
    return rc;
}

static int write_samples(const char *dir, int size)
{
    char path[1024];
    int rc = 0, w = size, h = size * 3 / 4 > 0 ? size * 3 / 4 : 1;
    kn_buf b;
#define SAVE(name, buf)                                                                       \
    do {                                                                                      \
        snprintf(path, sizeof path, "%s/%s", dir, name);                                      \
        rc |= (buf).len == 0 || write_or_complain(path, (buf).data, (buf).len);              \
    } while (0)
    uint8_t *rgb = smooth_rgb(w, h);
    for (int q = 0; q < 2; q++) {
        b = make_jpeg(rgb, w, h, TJPF_RGB, q ? TJSAMP_444 : TJSAMP_420, 85, false);
        SAVE(q ? "baseline444.jpg" : "baseline420.jpg", b);
        kn_buf_deinit(&b);
    }
    b = make_jpeg(rgb, w, h, TJPF_RGB, TJSAMP_422, 85, true);
    SAVE("progressive.jpg", b);
    kn_buf_deinit(&b);
    b = make_jpeg(rgb, w, h, TJPF_RGB, TJSAMP_420, 85, false);
    kn_buf junk = with_junk(&b);
    SAVE("junk_before_marker.jpg", junk);
    kn_buf_deinit(&junk);
    kn_buf_deinit(&b);
    b = make_jpeg(rgb, w, h, TJPF_GRAY, TJSAMP_GRAY, 85, false);
    SAVE("gray.jpg", b);
    kn_buf_deinit(&b);
    uint8_t *cmyk = malloc((size_t)w * h * 4);
    for (int i = 0; i < w * h; i++) {
        cmyk[4 * i] = rgb[3 * i];
        cmyk[4 * i + 1] = rgb[3 * i + 1];
        cmyk[4 * i + 2] = rgb[3 * i + 2];
        cmyk[4 * i + 3] = (uint8_t)(255 - i % 97);
    }
    b = make_jpeg(cmyk, w, h, TJPF_CMYK, TJSAMP_420, 85, false);
    SAVE("cmyk.jpg", b);
    kn_buf base = make_jpeg(rgb, w, h, TJPF_RGB, TJSAMP_420, 85, false);
    for (int o = 2; o <= 8; o++) {
        kn_buf x = with_exif(&base, o, o % 2);
        char name[32];
        snprintf(name, sizeof name, "exif%d.jpg", o);
        SAVE(name, x);
        kn_buf_deinit(&x);
    }
    kn_buf_deinit(&base);
    kn_buf_deinit(&b);
    free(cmyk);
    static const struct {
        const char *name;
        int ctype, depth;
        bool interlace;
    } pngs[] = {
        {"gray1.png", PNG_COLOR_TYPE_GRAY, 1, false},
        {"gray4.png", PNG_COLOR_TYPE_GRAY, 4, false},
        {"gray8.png", PNG_COLOR_TYPE_GRAY, 8, false},
        {"gray16.png", PNG_COLOR_TYPE_GRAY, 16, false},
        {"graya8.png", PNG_COLOR_TYPE_GRAY_ALPHA, 8, false},
        {"graya16.png", PNG_COLOR_TYPE_GRAY_ALPHA, 16, false},
        {"rgb8.png", PNG_COLOR_TYPE_RGB, 8, false},
        {"rgb16.png", PNG_COLOR_TYPE_RGB, 16, false},
        {"rgba8.png", PNG_COLOR_TYPE_RGB_ALPHA, 8, false},
        {"rgba16.png", PNG_COLOR_TYPE_RGB_ALPHA, 16, false},
        {"pal2.png", PNG_COLOR_TYPE_PALETTE, 2, false},
        {"pal8.png", PNG_COLOR_TYPE_PALETTE, 8, false},
        {"rgb8_interlaced.png", PNG_COLOR_TYPE_RGB, 8, true},
        {"pal4_interlaced.png", PNG_COLOR_TYPE_PALETTE, 4, true},
    };
    for (size_t i = 0; i < sizeof pngs / sizeof pngs[0]; i++) {
        uint8_t *exp;
        b = png_case(pngs[i].ctype, pngs[i].depth, pngs[i].interlace, w, h, 7, &exp);
        SAVE(pngs[i].name, b);
        free(exp);
        kn_buf_deinit(&b);
    }
    free(rgb);
#undef SAVE
    return rc;
}

static int helper_main(int argc, char **argv)
{
    kn_img im;
    const char *mode = argv[1];
    if (strcmp(mode, "--dump") == 0 && argc == 4) {
        if (load_or_complain(argv[2], &im))
            return 1;
        int rc = dump_tensor(&im, argv[3]);
        kn_img_deinit(&im);
        return rc;
    }
    if (strcmp(mode, "--dump-rgb") == 0 && argc == 4) {
        if (load_or_complain(argv[2], &im))
            return 1;
        int rc = dump_rgb(&im, argv[3]);
        kn_img_deinit(&im);
        return rc;
    }
    if (strcmp(mode, "--dump-resize") == 0 && argc == 6) {
        if (load_or_complain(argv[2], &im))
            return 1;
        int rc = dump_resized(&im, atoi(argv[3]), atoi(argv[4]), argv[5]);
        kn_img_deinit(&im);
        return rc;
    }
    if (strcmp(mode, "--dump-batch") == 0 && argc >= 3) {
        int rc = 0;
        for (int i = 3; i < argc; i++) {
            char out[1024];
            if (load_or_complain(argv[i], &im)) {
                rc = 1;
                continue;
            }
            snprintf(out, sizeof out, "%s/%d.rgb", argv[2], i - 3);
            rc |= dump_rgb(&im, out);
            snprintf(out, sizeof out, "%s/%d.resized", argv[2], i - 3);
            rc |= dump_resized(&im, 224, 224, out);
            snprintf(out, sizeof out, "%s/%d.tensor", argv[2], i - 3);
            rc |= dump_tensor(&im, out);
            kn_img_deinit(&im);
        }
        return rc;
    }
    if (strcmp(mode, "--write-samples") == 0 && (argc == 3 || argc == 4))
        return write_samples(argv[2], argc == 4 ? atoi(argv[3]) : 64);
    fprintf(stderr, "usage: %s [--dump IMAGE OUT | --dump-rgb IMAGE OUT | "
                    "--dump-resize IMAGE W H OUT | --dump-batch DIR IMAGE... | "
                    "--write-samples DIR [SIZE]]\n",
            argv[0]);
    return 2;
}

int main(int argc, char **argv)
{
    if (argc > 1)
        return helper_main(argc, argv);
    const char *t = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/kn_img_XXXXXX", t && *t ? t : "/tmp");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    KN_RUN(test_png_all_kinds);
    KN_RUN(test_png_short_palette);
    KN_RUN(test_png_exif_orientation);
    KN_RUN(test_jpeg_baseline_and_subsampling);
    KN_RUN(test_jpeg_progressive);
    KN_RUN(test_jpeg_recoverable_warning);
    KN_RUN(test_jpeg_gray);
    KN_RUN(test_jpeg_cmyk);
    KN_RUN(test_exif_all_orientations);
    KN_RUN(test_exif_parser_malformed);
    KN_RUN(test_empty_and_not_images);
    KN_RUN(test_truncated_jpeg);
    KN_RUN(test_truncated_png);
    KN_RUN(test_corrupt_data);
    KN_RUN(test_pixel_limit);
    KN_RUN(test_unsupported_jpeg_kinds);
    KN_RUN(test_load_prefixes_path);
    KN_RUN(test_resize_matches_pil);
    KN_RUN(test_resize_properties);
    KN_RUN(test_preprocess);
    rmdir(tmpdir);
    return kn_test_finish();
}
