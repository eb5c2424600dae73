/* kennel model: model packages and everything needed to classify an image
 * with one — graph, weights, preprocessing recipe and class names.
 *
 * A package is a directory or a model.tar.gz holding:
 *   model.json         {"format": "kennel-model", "version": 1,
 *                       "arch": "resnet50" | "mobilenet_v2" | "tflite",
 *                       "head": {"hidden": [128], "dropout": 0},
 *                       "num_classes": 133, "classes": [...],
 *                       "input": {"height": 224, "width": 224},
 *                       "preprocess": {"norm": "torchvision", "mean": [...],
 *                                      "std": [...]},
 *                       "weights": "model.safetensors" | "model.tflite",
 *                       "output": "logits" | "probabilities"}
 *   model.safetensors  weights with torchvision names (or model.tflite)
 *
 * The module sits between nn/img and data: it knows both the network and the
 * image recipe. A loaded model is immutable and can be shared by threads;
 * executors are per thread.
 */
#ifndef KENNEL_MODEL_H
#define KENNEL_MODEL_H

#include "kennel/core.h"
#include "kennel/img.h"
#include "kennel/nn.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kn_model {
    char arch[32];           /* "resnet50", "mobilenet_v2", "tflite" */
    kn_nn_head head;
    kn_nn_graph *graph;      /* finalised and optimised for inference */
    kn_img_preproc preproc;
    int n_classes;
    char **classes;          /* n_classes display names */
    bool outputs_probabilities; /* graph ends in softmax */
    char source[1024];       /* where it was loaded from */
} kn_model;

typedef struct kn_model_load_params {
    const char *arch;        /* for a bare .safetensors (else NULL) */
    const char *labels;      /* labels file for .tflite / .safetensors (else NULL) */
    kn_nn_head head;         /* head for a bare .safetensors; classes 0 = infer */
    size_t max_archive_bytes;/* bound on unpacked model.tar.gz (default 2 GiB) */
} kn_model_load_params;
KN_API kn_model_load_params kn_model_load_default_params(void);

/* Loads a package directory, a model.tar.gz, a .safetensors (needs arch) or a
 * .tflite file. Errors name the file and what is wrong with it. */
KN_API kn_status kn_model_load(const char *path, const kn_model_load_params *p,
                               kn_model **out, kn_err *e);
KN_API void kn_model_free(kn_model *m);

/* Writes a package directory: model.json + model.safetensors from the
 * (unoptimised) graph `g` and the model's metadata. */
KN_API kn_status kn_model_save_dir(const kn_model *m, const kn_nn_graph *g, const char *dir,
                                   kn_err *e);
/* Packs a package directory into a gzip'd tar (model.json first). */
KN_API kn_status kn_model_pack(const char *dir, const char *tar_gz, kn_err *e);

/* Extracts a tar.gz held in memory into dir. Only regular files and
 * directories; absolute paths, "..", links and devices are refused; the
 * total unpacked size is bounded by max_bytes. */
KN_API kn_status kn_archive_extract(const void *buf, size_t len, const char *dir,
                                    size_t max_bytes, kn_err *e);

/* Reads a labels file: one name per line; blank trailing lines ignored. */
KN_API kn_status kn_labels_read(const char *path, char ***names, int *n, kn_err *e);
KN_API void kn_labels_free(char **names, int n);
/* "001.Affenpinscher" -> "Affenpinscher"; "n02085620_Chihuahua" unchanged. */
KN_API void kn_class_display_name(const char *folder, char *out, size_t n);

#ifdef __cplusplus
}
#endif
#endif
