/* kennel train: losses, optimisers with PyTorch's update rules, the feature
 * cache, and the transfer-learning loop that turns an ImageFolder data set
 * and a pretrained backbone into a model package.
 *
 * The loop logs one line per epoch and ends with the lines tuning jobs
 * match:  "Testing Loss: <float>"  and  "Testing Accuracy: <float>".
 * Same seed, data and thread count give bitwise-identical weights.
 */
#ifndef KENNEL_TRAIN_H
#define KENNEL_TRAIN_H

#include "kennel/core.h"
#include "kennel/data.h"
#include "kennel/model.h"
#include "kennel/nn.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Mean cross-entropy of logits (n x classes) against labels. Writes the loss,
 * d(loss)/d(logits) (may be NULL) and the number of correct top-1 guesses
 * (may be NULL). KN_INVALID for a label outside [0, classes). */
KN_API kn_status kn_train_cross_entropy(const float *logits, const int *labels, int n,
                                        int classes, float *loss, float *dlogits, int *correct,
                                        kn_err *e);

typedef enum kn_opt_kind { KN_OPT_SGD, KN_OPT_ADAM, KN_OPT_ADAMW } kn_opt_kind;
KN_API kn_status kn_opt_kind_parse(const char *s, kn_opt_kind *out);
KN_API const char *kn_opt_kind_name(kn_opt_kind k);

typedef struct kn_opt_params {
    kn_opt_kind kind;
    float lr;
    float momentum;     /* SGD */
    float dampening;    /* SGD */
    bool nesterov;      /* SGD */
    float weight_decay; /* L2 for SGD/Adam, decoupled for AdamW */
    float beta1, beta2, eps; /* Adam/AdamW */
} kn_opt_params;
/* Adam, lr 1e-3, betas (0.9, 0.999), eps 1e-8, as torch.optim.Adam. */
KN_API kn_opt_params kn_opt_default_params(void);

typedef struct kn_opt kn_opt;
/* An optimiser over every parameter of g that t computes a gradient for. */
KN_API kn_status kn_opt_new(const kn_opt_params *p, kn_nn_graph *g, kn_nn_trainer *t,
                            kn_opt **out, kn_err *e);
KN_API void kn_opt_free(kn_opt *o);
/* One update from the trainer's current gradients. */
KN_API void kn_opt_step(kn_opt *o);

/* ---- the training job ---------------------------------------------------- */

/* finetune value that trains every layer, the stem included (a stage count N
 * trains the last N stages: resnet layer1..layer4, mobilenet_v2
 * features.1..features.18, leaving the stem frozen). */
#define KN_TRAIN_FINETUNE_ALL (-1)

typedef struct kn_train_params {
    const char *data;        /* ImageFolder root */
    const char *arch;        /* torchvision architecture (with weights) */
    const char *weights;     /* backbone .safetensors with torchvision names, or NULL */
    const char *tflite;      /* backbone .tflite instead of arch + weights */
    kn_nn_head head;         /* hidden sizes, dropout; classes from the data set */
    int finetune;            /* unfrozen stages (0 = head only, KN_TRAIN_FINETUNE_ALL) */
    int image_size;          /* network input side for torchvision archs (0 = 224) */
    int epochs;
    int batch;
    kn_opt_params opt;
    int patience;            /* early stopping on valid loss; < 0 disables */
    kn_augment augment;
    uint64_t seed;
    int threads;
    double split[KN_SPLIT_COUNT]; /* ratios when the data set has no split folders */
    const char *model_dir;   /* package output */
    const char *cache_dir;   /* feature cache (NULL: no cache) */
    bool progress;           /* live progress line (on a TTY) */
    int max_steps;           /* stop after this many steps (0 = no limit) */
    bool mpi;                /* one rank of a data-parallel run (started by mpirun) */
} kn_train_params;
KN_API kn_train_params kn_train_default_params(void);

typedef struct kn_train_result {
    int epochs_run;
    int best_epoch;
    float test_loss, test_accuracy;
    int skipped_images;
    int cache_hits, cache_misses;
    double seconds;
} kn_train_result;

/* Runs the whole job: data set, backbone, head, epochs with early stopping,
 * test, package (model_dir/model.json, model.safetensors, model.tar.gz,
 * metrics.json). Progress and metric lines go to stdout. */
KN_API kn_status kn_train_run(const kn_train_params *p, kn_train_result *r, kn_err *e);

/* Data-parallel training (p->mpi): whether this build has MPI, and the end
 * of a rank's MPI session (a non-zero code aborts every rank). */
KN_API bool kn_train_mpi_built(void);
KN_API void kn_train_mpi_finish(int code);

#ifdef __cplusplus
}
#endif
#endif
