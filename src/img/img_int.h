/* Internal declarations shared by the img module's files: the per-format
 * decoders behind kn_img_decode, the EXIF orientation parser and the
 * orientation transform. Nothing here keeps state between calls. */
#ifndef KN_IMG_INT_H
#define KN_IMG_INT_H

#include "kennel/img.h"

/* EXIF orientation values (TIFF tag 0x0112); 0 means "absent or unusable". */
enum { KN__ORIENT_NONE = 0, KN__ORIENT_NORMAL = 1, KN__ORIENT_MAX = 8 };

/* Decodes a JPEG / PNG whose signature has already been checked. On success
 * *out owns w*h*3 RGB bytes and *orientation is the EXIF orientation found in
 * the file (0 if none); on failure *out is left empty and e says why. Both
 * check the declared size against p->max_pixels before decoding pixels. */
kn_status kn__img_decode_jpeg(const uint8_t *buf, size_t len, const kn_img_decode_params *p,
                              kn_img *out, int *orientation, kn_err *e);
kn_status kn__img_decode_png(const uint8_t *buf, size_t len, const kn_img_decode_params *p,
                             kn_img *out, int *orientation, kn_err *e);

/* Parses a TIFF structure (the body of a JPEG APP1 "Exif\0\0" segment or of a
 * PNG eXIf chunk) and returns the orientation of IFD0, 1..8, or 0 when the tag
 * is absent or anything about the structure is out of bounds or malformed. */
int kn__exif_orientation(const uint8_t *tiff, size_t len);

/* Rewrites im so it displays upright for the given EXIF orientation (2..8;
 * other values leave it untouched). KN_NOMEM leaves im unchanged. */
kn_status kn__img_orient(kn_img *im, int orientation);

/* The pixel-limit check shared by the decoders: KN_TOO_LARGE naming the
 * declared dimensions and the limit, KN_BAD_FORMAT for an empty image. */
kn_status kn__img_check_size(const char *fmt, uint64_t w, uint64_t h, uint64_t max_pixels,
                             kn_err *e);

#endif
