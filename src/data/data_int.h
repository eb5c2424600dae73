/* Internal declarations shared by the data module's files: the limits on
 * what a data set may hold, seed derivation, the RandomResizedCrop +
 * RandomHorizontalFlip sampler and its application to a decoded image, and
 * the helper that turns a kn_img_load error into a bare reason.
 *
 * Everything here is pure or works on caller-owned state: thread-safe.
 */
#ifndef KN_DATA_INT_H
#define KN_DATA_INT_H

#include "kennel/data.h"

/* Bounds on what kn_dataset_open accepts from the file system. */
#define KN__DATA_MAX_CLASSES 100000
#define KN__DATA_MAX_FILES 10000000 /* over all splits */
#define KN__DATA_PATH_MAX 4096      /* a joined path, terminator included */

/* Domains that keep the random streams of different uses apart. */
#define KN__DATA_SEED_SPLIT 0x73706c6974ULL       /* "split" */
#define KN__DATA_SEED_SHUFFLE 0x73687566666cULL   /* "shuffl" */
#define KN__DATA_SEED_AUGMENT 0x6175676d656eULL   /* "augmen" */
#define KN__DATA_SEED_SYNTH 0x73796e7468ULL       /* "synth" */

/* A 64-bit seed from a domain and three values; a small change of any input
 * gives an unrelated seed (splitmix64 finaliser, chained). */
uint64_t kn__data_seed(uint64_t domain, uint64_t a, uint64_t b, uint64_t c);

/* A uniform integer in [0, n), n >= 1, without modulo bias. */
uint64_t kn__data_rng_below(kn_rng *r, uint64_t n);

/* FNV-1a of a string: class folders seed their split by name, so adding a
 * class does not reshuffle the others. */
uint64_t kn__data_hash(const char *s);

/* A crop box (top row, left column, height, width) and the flip decision. */
typedef struct kn__crop {
    int top, left, h, w;
    bool flip;
    bool fallback; /* true when the 10 attempts failed (central crop) */
} kn__crop;

/* torchvision's RandomResizedCrop.get_params for a W x H image:
 * 10 attempts drawing an area fraction uniformly in [smin, smax) and an
 * aspect ratio log-uniformly in [rmin, rmax); w = round(sqrt(area * ratio)),
 * h = round(sqrt(area / ratio)) with Python's round (half to even); the
 * first box with 0 < w <= W and 0 < h <= H is placed uniformly. Otherwise
 * the central crop of the whole image clamped to the ratio bounds. Does not
 * draw the flip. W, H >= 1. */
void kn__data_crop_params(kn_rng *r, int W, int H, double smin, double smax, double rmin,
                          double rmax, kn__crop *out);

/* The KN_AUG_RANDOM draw: crop params with scale (0.08, 1) and ratio
 * (3/4, 4/3), then the flip (uniform < 0.5), from one stream. */
void kn__data_aug_sample(kn_rng *r, int W, int H, kn__crop *out);

/* The stream for one item of one epoch of one loader seed. */
void kn__data_aug_rng(kn_rng *r, uint64_t seed, int epoch, int index);

/* Crops im to c, resizes the box to pre->w x pre->h (PIL bilinear),
 * mirrors it when c->flip and normalises into out (3 x h x w floats).
 * KN_NOMEM, or the status of kn_img_preprocess. */
kn_status kn__data_augment(const kn_img *im, const kn__crop *c, const kn_img_preproc *pre,
                           float *out, kn_err *e);

/* The reason part of a kn_img_load error: its message minus the leading
 * "PATH: " when present. Points into e->msg. */
const char *kn__data_reason(const kn_err *e, const char *path);

/* Whether a status from loading a file means "this file is unreadable"
 * (skip it) rather than a failure of the process (out of memory). */
bool kn__data_is_file_error(kn_status s);

#endif
