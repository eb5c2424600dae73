/* kennel data: ImageFolder data sets, splits, augmentation and batch loading.
 *
 * Layouts accepted under a root directory:
 *   root/train/<class>/NAME.jpg, root/valid/<class>/..., root/test/<class>/...
 *       (valid/ and test/ optional; "val" is accepted for "valid")
 *   root/<class>/NAME.jpg
 *       (no split folders: a seeded stratified split by the ratios given)
 * Classes are the folder names of the training split sorted by byte order
 * (as torchvision's ImageFolder sorts them); display names drop a numeric
 * prefix ("001.Affenpinscher" -> "Affenpinscher"). Files are listed sorted by
 * name; extensions accepted: .jpg .jpeg .png (any case).
 *
 * A data set is immutable once opened and may be shared between threads; a
 * loader belongs to one thread.
 */
#ifndef KENNEL_DATA_H
#define KENNEL_DATA_H

#include "kennel/core.h"
#include "kennel/img.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum kn_split { KN_SPLIT_TRAIN, KN_SPLIT_VALID, KN_SPLIT_TEST, KN_SPLIT_COUNT } kn_split;
KN_API const char *kn_split_name(kn_split s); /* "train", "valid", "test" */

typedef struct kn_ds_item {
    char *path;
    int label;
} kn_ds_item;

typedef struct kn_dataset {
    char root[1024];
    int n_classes;
    char **class_dirs;   /* folder names, sorted */
    char **class_names;  /* display names */
    kn_ds_item *items[KN_SPLIT_COUNT];
    int count[KN_SPLIT_COUNT];
    bool generated_split;           /* true when the split was made by seed */
    double ratio[KN_SPLIT_COUNT];   /* the ratios used when generated */
} kn_dataset;

typedef struct kn_dataset_params {
    uint64_t seed;                  /* split seed (default 0) */
    double ratio[KN_SPLIT_COUNT];   /* for a flat layout (default 0.7, 0.15, 0.15) */
} kn_dataset_params;
KN_API kn_dataset_params kn_dataset_default_params(void);

/* Scans root. Errors name the folder: missing root, no classes, a class in
 * valid/ or test/ that train/ lacks (or the reverse), an empty class in
 * train. Ratios must be >= 0, sum to 1 and give train > 0.
 * Flat-layout split per class of n files: round(ratio * n) files (half away
 * from zero) to valid and to test, lowered (test first) while that leaves no
 * training file; which files is drawn from the seed and the folder's name.
 * On success *out is owned by the caller (kn_dataset_free). Statuses:
 * KN_NOT_FOUND (root missing), KN_INVALID (bad ratios, root not a folder),
 * KN_BAD_FORMAT (layout problems above), KN_TOO_LARGE (more than 100000
 * classes or 10 million files, paths too long), KN_IO, KN_NOMEM. */
KN_API kn_status kn_dataset_open(const char *root, const kn_dataset_params *p,
                                 kn_dataset **out, kn_err *e);
KN_API void kn_dataset_free(kn_dataset *d);

/* Augmentation applied to each image before normalisation. */
typedef enum kn_augment {
    KN_AUG_NONE,   /* Resize((h, w)) as at inference */
    KN_AUG_RANDOM  /* RandomResizedCrop((h, w), scale (0.08, 1), ratio (3/4, 4/3))
                      + RandomHorizontalFlip(0.5), torchvision's sampling rules,
                      seeded */
} kn_augment;

typedef struct kn_loader_params {
    int batch;           /* images per batch */
    bool shuffle;        /* new order each epoch, from seed and epoch */
    bool drop_last;      /* drop a final short batch */
    uint64_t seed;
    kn_augment augment;
    kn_img_preproc pre;  /* size and normalisation */
    int threads;         /* decoding threads (0 = OpenMP default) */
    uint64_t max_pixels; /* decode limit (0 = img default) */
} kn_loader_params;
KN_API kn_loader_params kn_loader_default_params(void);

typedef struct kn_loader kn_loader;

/* A loader over one split. Images that cannot be decoded are skipped: each
 * is logged once (path and reason) and counted. p may be NULL (defaults).
 * KN_INVALID for bad parameters (batch outside 1..65536, threads outside
 * 0..1024, bad size or normalisation), KN_NOMEM. The loader starts at epoch
 * 0; free it with kn_loader_free (accepts NULL). */
KN_API kn_status kn_loader_new(const kn_dataset *d, kn_split s, const kn_loader_params *p,
                               kn_loader **out, kn_err *e);
KN_API void kn_loader_free(kn_loader *l);
/* Starts epoch `epoch` (order = f(seed, epoch) when shuffling). */
KN_API void kn_loader_start(kn_loader *l, int epoch);
/* Fills up to batch images (n x 3 x h x w floats), their labels and their
 * item indices (index into d->items[s]; `indices` may be NULL); *n = 0 at
 * the end of the epoch. Decoding runs in parallel. A failed image is
 * replaced by the next ones, so a batch holds only readable images. Errors
 * other than unreadable files (KN_NOMEM) are returned and lose the batch. */
KN_API kn_status kn_loader_next(kn_loader *l, float *images, int *labels, int *indices,
                                int *n, kn_err *e);
KN_API int kn_loader_skipped(const kn_loader *l);
/* Paths of skipped files so far (owned by the loader). */
KN_API const char *kn_loader_skipped_path(const kn_loader *l, int i);

/* Checks every file of every split: counts per class and split, unreadable
 * files with reasons. Writes a human report to `report`. Returns KN_OK even
 * when files are unreadable (they are listed); *bad receives their count. */
KN_API kn_status kn_dataset_check(const kn_dataset *d, kn_buf *report, int *bad, kn_err *e);

/* Writes a small, clearly synthetic data set (train/valid/test, `classes`
 * classes of generated shapes/colours as PNG and JPEG, `per_class` training
 * images each, max(1, per_class / 4) in valid and test) for smoke tests; a
 * README.txt inside says what it is. The same seed writes the same files.
 * dir is created, or must be empty. KN_INVALID (classes outside 1..64,
 * per_class outside 1..10000), KN_EXISTS (dir not empty), KN_IO. */
KN_API kn_status kn_dataset_synth(const char *dir, int classes, int per_class, uint64_t seed,
                                  kn_err *e);

#ifdef __cplusplus
}
#endif
#endif
