/* kennel nn: a small graph IR for vision networks, its executors (a plain-C
 * reference and a fast oneDNN backend), builders for torchvision networks,
 * and weight I/O (safetensors, TFLite import).
 *
 * Data layout at the API boundary is always NCHW float32 (batch first).  A
 * graph is a list of nodes in topological order; node i produces value i.
 * Node 0 is the input.  Per-sample shapes are (c, h, w); after flatten,
 * global pooling or linear the value is (c, 1, 1).
 *
 * Parameters (weights) are named tensors owned by the graph, in PyTorch's
 * layouts: conv weight [out][in/groups][kh][kw], linear weight [out][in].
 *
 * Thread-safety: a graph is immutable once finalised and may be shared by
 * many executors; an executor is used by one thread at a time.
 */
#ifndef KENNEL_NN_H
#define KENNEL_NN_H

#include "kennel/core.h"

#ifdef __cplusplus
extern "C" {
#endif

#define KN_NN_OP_LIST(X)                                                                     \
    X(INPUT, "input")                                                                        \
    X(CONV, "conv2d")                                                                        \
    X(BATCHNORM, "batch_norm")                                                               \
    X(RELU, "relu")                                                                          \
    X(RELU6, "relu6")                                                                        \
    X(ADD, "add")                                                                            \
    X(MAXPOOL, "max_pool")                                                                   \
    X(AVGPOOL, "avg_pool")                                                                   \
    X(GAP, "global_avg_pool")                                                                \
    X(FLATTEN, "flatten")                                                                    \
    X(LINEAR, "linear")                                                                      \
    X(SOFTMAX, "softmax")                                                                    \
    X(DROPOUT, "dropout")

typedef enum kn_nn_op {
#define KN_X_OP(n, s) KN_OP_##n,
    KN_NN_OP_LIST(KN_X_OP)
#undef KN_X_OP
        KN_OP_COUNT
} kn_nn_op;

KN_API const char *kn_nn_op_name(kn_nn_op op);

/* Activation fused into conv, linear or add (applied after the op). */
typedef enum kn_nn_act { KN_ACT_NONE, KN_ACT_RELU, KN_ACT_RELU6 } kn_nn_act;

typedef struct kn_nn_shape {
    int c, h, w;
} kn_nn_shape;

/* Spatial window for conv and pooling. Padding may be asymmetric. */
typedef struct kn_nn_window {
    int kh, kw;             /* kernel */
    int sh, sw;             /* stride */
    int pt, pl, pb, pr;     /* padding top, left, bottom, right */
    int dh, dw;             /* dilation (1 = dense) */
} kn_nn_window;

typedef struct kn_nn_node {
    kn_nn_op op;
    char name[96];       /* e.g. "layer1.0.conv1"; parameters are name + ".weight" */
    int in[2];           /* input node indices (-1 unused) */
    int n_in;
    kn_nn_shape shape;   /* output, per sample */
    kn_nn_window win;    /* conv, maxpool, avgpool */
    int groups;          /* conv */
    int out_c;           /* conv out channels, linear out features */
    kn_nn_act act;       /* fused activation: conv, linear, add */
    bool pool_count_pad; /* avgpool: divide by the full window (PyTorch) or only
                            the in-bounds part (TFLite) */
    float eps;           /* batchnorm */
    float rate;          /* dropout probability */
    /* parameter indices into the graph's parameter table, -1 when absent */
    int w, b;                        /* conv, linear */
    int bn_mean, bn_var, bn_gamma, bn_beta; /* batchnorm */
} kn_nn_node;

/* A named parameter tensor in PyTorch layout, float32, owned by the graph. */
#define KN_NN_MAX_DIMS 4
typedef struct kn_nn_param {
    char name[128];
    int ndim;
    int64_t dims[KN_NN_MAX_DIMS];
    size_t numel;
    float *data; /* 64-byte aligned; NULL until allocated */
    bool loaded; /* set when filled from a file or an initialiser */
} kn_nn_param;

typedef struct kn_nn_graph kn_nn_graph;

KN_API kn_nn_graph *kn_nn_graph_new(void);
KN_API void kn_nn_graph_free(kn_nn_graph *g);

/* Graph construction. Each returns the new node's index, or -1 on a bad
 * argument (the reason is kept and returned by kn_nn_graph_finalize). */
KN_API int kn_nn_input(kn_nn_graph *g, int c, int h, int w);
/* Conv with parameters "<name>.weight" and, when bias, "<name>.bias". */
KN_API int kn_nn_conv(kn_nn_graph *g, int in, const char *name, int out_c,
                      const kn_nn_window *win, int groups, bool bias, kn_nn_act act);
/* Batch norm with "<name>.running_mean/.running_var/.weight/.bias". */
KN_API int kn_nn_batchnorm(kn_nn_graph *g, int in, const char *name, float eps);
KN_API int kn_nn_relu(kn_nn_graph *g, int in);
KN_API int kn_nn_relu6(kn_nn_graph *g, int in);
KN_API int kn_nn_add(kn_nn_graph *g, int a, int b, kn_nn_act act);
KN_API int kn_nn_maxpool(kn_nn_graph *g, int in, const kn_nn_window *win);
KN_API int kn_nn_avgpool(kn_nn_graph *g, int in, const kn_nn_window *win, bool count_pad);
KN_API int kn_nn_gap(kn_nn_graph *g, int in);
KN_API int kn_nn_flatten(kn_nn_graph *g, int in);
KN_API int kn_nn_linear(kn_nn_graph *g, int in, const char *name, int out_f, bool bias,
                        kn_nn_act act);
KN_API int kn_nn_softmax(kn_nn_graph *g, int in);
KN_API int kn_nn_dropout(kn_nn_graph *g, int in, float p);

/* Declares a parameter (allocated, zero-filled) and returns its index, or -1. */
KN_API int kn_nn_param_add(kn_nn_graph *g, const char *name, int ndim, const int64_t *dims);

/* Checks shapes and parameters; the graph's output is its last node.
 * KN_SHAPE / KN_INVALID with the offending node in e. */
KN_API kn_status kn_nn_graph_finalize(kn_nn_graph *g, kn_err *e);

/* Inference rewrites: drop dropout, fold batch norm into the preceding conv
 * (adding a bias), fuse relu/relu6 into conv, linear and add. Returns a new
 * graph in *out; g is unchanged. */
KN_API kn_status kn_nn_graph_optimize(const kn_nn_graph *g, kn_nn_graph **out, kn_err *e);
/* The same rewrites in place, without a second copy of the weights. */
KN_API kn_status kn_nn_graph_optimize_inplace(kn_nn_graph *g, kn_err *e);

/* Accessors. */
KN_API int kn_nn_graph_count(const kn_nn_graph *g);
KN_API const kn_nn_node *kn_nn_graph_node(const kn_nn_graph *g, int i);
KN_API int kn_nn_graph_param_count(const kn_nn_graph *g);
KN_API kn_nn_param *kn_nn_graph_param(kn_nn_graph *g, int i);
KN_API const kn_nn_param *kn_nn_graph_param_c(const kn_nn_graph *g, int i);
KN_API int kn_nn_graph_param_find(const kn_nn_graph *g, const char *name);
KN_API kn_nn_shape kn_nn_graph_input_shape(const kn_nn_graph *g);
KN_API kn_nn_shape kn_nn_graph_output_shape(const kn_nn_graph *g);
KN_API size_t kn_nn_graph_param_numel(const kn_nn_graph *g);
KN_API double kn_nn_graph_flops(const kn_nn_graph *g); /* multiply-adds x2, per sample */
/* Writes a readable listing (one node per line) into b. */
KN_API kn_status kn_nn_graph_dump(const kn_nn_graph *g, kn_buf *b);

/* Weight initialisation as PyTorch does by default (kaiming-uniform a=sqrt(5)
 * for conv/linear weights, uniform(+-1/sqrt(fan_in)) for biases; batch-norm
 * weight 1, bias 0, mean 0, var 1), seeded. Only touches parameters not yet
 * loaded unless `all`. */
KN_API void kn_nn_graph_init_params(kn_nn_graph *g, uint64_t seed, bool all);
/* Random batch-norm statistics so folding is exercised by tests. */
KN_API void kn_nn_graph_randomize_bn(kn_nn_graph *g, uint64_t seed);

/* ---- safetensors --------------------------------------------------------- */

typedef enum kn_dtype {
    KN_DT_F32, KN_DT_F16, KN_DT_BF16, KN_DT_F64, KN_DT_I64, KN_DT_I32, KN_DT_I16,
    KN_DT_I8, KN_DT_U8, KN_DT_BOOL, KN_DT_COUNT
} kn_dtype;
KN_API const char *kn_dtype_name(kn_dtype t);
KN_API size_t kn_dtype_size(kn_dtype t);

typedef struct kn_st_tensor {
    char name[128];
    kn_dtype dtype;
    int ndim;
    int64_t dims[8];
    const uint8_t *data; /* points into the mapped file */
    size_t nbytes;
} kn_st_tensor;

typedef struct kn_st_file kn_st_file;

/* Parses a safetensors image in memory (not copied: `data` must outlive the
 * result). Validates header JSON, dtypes, shapes and offsets (in bounds, sizes
 * consistent, no overlap). KN_BAD_FORMAT with the reason in e. */
KN_API kn_status kn_st_parse(const uint8_t *data, size_t len, kn_st_file **out, kn_err *e);
/* Maps a file and parses it; the map is released by kn_st_free. */
KN_API kn_status kn_st_open(const char *path, kn_st_file **out, kn_err *e);
KN_API void kn_st_free(kn_st_file *f);
KN_API int kn_st_count(const kn_st_file *f);
KN_API const kn_st_tensor *kn_st_get(const kn_st_file *f, int i);
KN_API const kn_st_tensor *kn_st_find(const kn_st_file *f, const char *name);
/* Converts a tensor to float32 (F32, F16, BF16, F64 accepted). */
KN_API kn_status kn_st_to_f32(const kn_st_tensor *t, float *dst, size_t numel, kn_err *e);
/* Writes float32 tensors to a safetensors file. */
KN_API kn_status kn_st_write(const char *path, const kn_nn_param *const *params, int n,
                             kn_err *e);

/* Fills every parameter of g from f. `prefix` (may be NULL) is prepended to
 * graph names when looking up file names. Missing, misshaped or non-float
 * tensors are errors naming the tensor and both shapes. When `allow_missing`
 * is set, parameters absent from the file are left as they are. */
KN_API kn_status kn_nn_graph_load_st(kn_nn_graph *g, const kn_st_file *f, const char *prefix,
                                     bool allow_missing, kn_err *e);
/* Saves all parameters of g. */
KN_API kn_status kn_nn_graph_save_st(const kn_nn_graph *g, const char *path, kn_err *e);

/* ---- builders ------------------------------------------------------------ */

/* Classifier head: a chain of Linear layers. hidden[] sizes with ReLU (and
 * dropout when > 0) between them, then Linear(.., classes). With no hidden
 * layer the head is "fc"; otherwise layers are "fc.0", "fc.2", ... as
 * nn.Sequential(Linear, ReLU, [Dropout,] Linear) names them. */
#define KN_NN_MAX_HIDDEN 4
typedef struct kn_nn_head {
    int classes;
    int n_hidden;
    int hidden[KN_NN_MAX_HIDDEN];
    float dropout;
} kn_nn_head;

/* torchvision resnet18/34/50/101/152 at size h x w (224 usually). */
KN_API kn_status kn_nn_build_resnet(kn_nn_graph *g, int depth, int h, int w,
                                    const kn_nn_head *head, kn_err *e);
/* torchvision mobilenet_v2 (width 1.0); classifier "classifier.1" when no
 * hidden layers, dropout 0.2 as torchvision. */
KN_API kn_status kn_nn_build_mobilenet_v2(kn_nn_graph *g, int h, int w,
                                          const kn_nn_head *head, kn_err *e);
/* "tiny": conv1 (3x3, stride 2, 16 channels) + bn1 + ReLU, global average
 * pool, head named as a ResNet's ("fc"). Not a torchvision model: almost no
 * compute, so a bench of the serving path measures HTTP and routing. */
KN_API kn_status kn_nn_build_tiny(kn_nn_graph *g, int h, int w, const kn_nn_head *head,
                                  kn_err *e);
/* Appends flatten + the head after node x, named as a torchvision ResNet's
 * ("fc", or "fc.0", "fc.2", ... with hidden layers). For heads on imported
 * backbones. Returns the last node, or -1 (the error is kept on the graph). */
KN_API int kn_nn_head_append(kn_nn_graph *g, int x, const kn_nn_head *head);
/* Makes a finalised graph extendable again (e.g. a split prefix that gets a
 * new head); finalise it again afterwards. */
KN_API void kn_nn_graph_reopen(kn_nn_graph *g);
/* By architecture name: "resnet18".."resnet152", "mobilenet_v2", "tiny". */
KN_API kn_status kn_nn_build_arch(kn_nn_graph *g, const char *arch, int h, int w,
                                  const kn_nn_head *head, kn_err *e);

/* ---- TFLite import ------------------------------------------------------- */

/* Metadata of an imported TFLite graph. */
typedef struct kn_tflite_info {
    int in_h, in_w, in_c;
    int out_n;            /* number of outputs (classes) */
    bool has_softmax;     /* graph ends in SOFTMAX */
    bool quantized;       /* weights were dequantized from uint8/int8 */
    float in_scale, in_zero; /* input quantization (1, 0 for float models) */
} kn_tflite_info;

/* Imports a TFLite classifier (CONV_2D, DEPTHWISE_CONV_2D, AVERAGE_POOL_2D,
 * MAX_POOL_2D, ADD, RESHAPE, SQUEEZE, FULLY_CONNECTED, SOFTMAX with fused
 * RELU/RELU6; float32 or uint8/int8 quantized) into g, converting NHWC to the
 * NCHW IR and dequantizing weights. g must be empty. The graph is finalised. */
KN_API kn_status kn_tflite_import(kn_nn_graph *g, const uint8_t *data, size_t len,
                                  kn_tflite_info *info, kn_err *e);

/* ---- splitting (transfer learning) ------------------------------------ */

/* Splits g at node `cut`: *prefix gets nodes 0..cut (its output is cut's
 * value), *tail gets an input of cut's shape followed by the nodes after cut.
 * Parameters are copied. KN_INVALID when a node after cut reads a node
 * before it (the cut must separate the graph). Either output may be NULL. */
KN_API kn_status kn_nn_graph_split(const kn_nn_graph *g, int cut, kn_nn_graph **prefix,
                                   kn_nn_graph **tail, kn_err *e);
/* The node whose output feeds the classifier head: the input of the first
 * linear layer (through dropout), or for graphs without linear layers (TFLite
 * classifiers ending in a 1x1 conv) the last global/average pool. */
KN_API kn_status kn_nn_graph_head_cut(const kn_nn_graph *g, int *cut, kn_err *e);
/* The node before the last n stages of a torchvision network (resnet:
 * layer1..layer4; mobilenet_v2: features.1..features.18). n = 0 gives the
 * head cut. */
KN_API kn_status kn_nn_graph_stage_cut(const kn_nn_graph *g, const char *arch, int n, int *cut,
                                       kn_err *e);

/* ---- training ------------------------------------------------------------ */

/* Compute backends, shared by the trainer and the executors (below). */
typedef enum kn_nn_backend { KN_NN_REF, KN_NN_DNNL } kn_nn_backend;
KN_API const char *kn_nn_backend_name(kn_nn_backend b);
KN_API kn_status kn_nn_backend_parse(const char *s, kn_nn_backend *out);

/* A training-mode executor over a whole graph (typically the trainable tail
 * of a network). It reads weights from g at every forward, so an optimiser
 * may update g's parameters between steps. Batch norm uses batch statistics
 * in training mode and updates g's running statistics (momentum, unbiased
 * variance, as PyTorch); dropout draws seeded masks. Gradients are computed
 * for every parameter except batch-norm running statistics. Plain C, with
 * OpenBLAS for linear layers. Not thread-safe. */
typedef struct kn_nn_trainer kn_nn_trainer;

typedef struct kn_nn_train_params {
    int max_batch;
    float bn_momentum;  /* 0.1 */
    uint64_t seed;      /* dropout masks */
    kn_nn_backend backend; /* conv, batch norm, pooling: KN_NN_DNNL (oneDNN, the
                              default) or KN_NN_REF (plain C, the oracle) */
} kn_nn_train_params;
KN_API kn_nn_train_params kn_nn_train_default_params(void);

KN_API kn_status kn_nn_trainer_new(kn_nn_graph *g, const kn_nn_train_params *p,
                                   kn_nn_trainer **out, kn_err *e);
KN_API void kn_nn_trainer_free(kn_nn_trainer *t);
/* Forward pass of n samples; training selects batch statistics and dropout. */
KN_API kn_status kn_nn_trainer_forward(kn_nn_trainer *t, const float *in, int n, bool training,
                                       float *out, kn_err *e);
/* Backward pass of the last forward: dout is d(loss)/d(output), n x outputs.
 * Parameter gradients are overwritten. din (may be NULL) receives
 * d(loss)/d(input). */
KN_API kn_status kn_nn_trainer_backward(kn_nn_trainer *t, const float *dout, float *din,
                                        kn_err *e);
/* Gradient of parameter i (same layout as the parameter), or NULL when the
 * parameter is not trained (batch-norm running statistics). */
KN_API float *kn_nn_trainer_grad(kn_nn_trainer *t, int param);

/* ---- execution ----------------------------------------------------------- */

typedef struct kn_nn_exec_params {
    kn_nn_backend backend;
    int max_batch; /* working memory is reserved for this batch size */
    int threads;   /* 0 = leave the OpenMP default */
    int micro_batch; /* oneDNN: larger batches run in passes of at most this
                        many samples (0 = KN_NN_MICRO_BATCH_DEFAULT) */
} kn_nn_exec_params;
#define KN_NN_MICRO_BATCH_DEFAULT 8
KN_API kn_nn_exec_params kn_nn_exec_default_params(void);

typedef struct kn_nn_exec kn_nn_exec;

/* Prepares g for repeated runs: primitives and working memory are created
 * here, once per batch size (batch max_batch is prepared eagerly, smaller
 * batches on first use). The executor copies what it needs of the weights;
 * g may be freed afterwards. */
KN_API kn_status kn_nn_exec_new(const kn_nn_graph *g, const kn_nn_exec_params *p,
                                kn_nn_exec **out, kn_err *e);
KN_API void kn_nn_exec_free(kn_nn_exec *x);
/* Runs n samples (1 <= n <= max_batch). in: n x C x H x W, out: n x outputs. */
KN_API kn_status kn_nn_exec_run(kn_nn_exec *x, const float *in, int n, float *out,
                                kn_err *e);
KN_API size_t kn_nn_exec_out_numel(const kn_nn_exec *x); /* per sample */

/* What kn_nn_exec_share_weights did. */
typedef struct kn_nn_shared_weights {
    char path[4096]; /* the file the weights are mapped from */
    size_t bytes;    /* weight bytes now read from the file */
    bool built;      /* true when this call (re)wrote the file: it was missing,
                        truncated, or did not hold these exact weights */
} kn_nn_shared_weights;

/* Moves the executor's weights, in the layout it runs on, into a file under
 * dir that every executor of the same weights maps read-only and shared, so
 * N processes serving one model hold one copy. The file is named by a SHA-256
 * of the reordered weights and their layouts (so other weights, another ISA
 * or other oneDNN layouts get another file); it is written once (temp file +
 * rename, under a lock file), and an existing file is used only if its header,
 * size and every byte match this executor's weights, else it is rebuilt. The
 * private copies are freed. Call it with no run in progress, after the batch
 * sizes to be served are prepared (layouts made later stay private). dir is
 * created if missing. KN_UNSUPPORTED for the reference backend; KN_IO when the
 * file cannot be written or mapped (the executor is unchanged then). */
KN_API kn_status kn_nn_exec_share_weights(kn_nn_exec *x, const char *dir,
                                          kn_nn_shared_weights *info, kn_err *e);

#ifdef __cplusplus
}
#endif
#endif
