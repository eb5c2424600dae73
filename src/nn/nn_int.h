/* Internal declarations shared by the nn module's files. */
#ifndef KN_NN_INT_H
#define KN_NN_INT_H

#include "kennel/nn.h"

struct kn_nn_graph {
    kn_nn_node *nodes;
    int n, cap;
    kn_nn_param *params;
    int np, pcap;
    kn_status bad;       /* first construction error, reported by finalize */
    char bad_msg[KN_ERR_MSG_MAX];
    bool finalized;
};

/* Backend vtable: one per kind of executor. */
typedef struct kn_nn_backend_ops {
    kn_status (*create)(kn_nn_exec *x, const kn_nn_graph *g, kn_err *e);
    kn_status (*run)(kn_nn_exec *x, const float *in, int n, float *out, kn_err *e);
    void (*destroy)(kn_nn_exec *x);
    /* NULL when the backend cannot share its weights (kn_nn_exec_share_weights) */
    kn_status (*share)(kn_nn_exec *x, const char *dir, kn_nn_shared_weights *info, kn_err *e);
} kn_nn_backend_ops;

struct kn_nn_exec {
    const kn_nn_backend_ops *ops;
    kn_nn_exec_params p;
    kn_nn_shape in_shape, out_shape;
    void *impl;
};

extern const kn_nn_backend_ops kn__nn_ref_ops;
extern const kn_nn_backend_ops kn__nn_dnnl_ops;

/* Number of nodes that read node i. */
int kn__nn_use_count(const kn_nn_graph *g, int i);
size_t kn__nn_shape_numel(kn_nn_shape s);
/* Output spatial size of a window over `in`; <= 0 when the window does not fit. */
int kn__nn_out_dim(int in, int k, int s, int p0, int p1, int d);

/* Training-mode executor state, shared by train.c (graph walk, dense ops)
 * and train_conv.c (conv, batch norm, pooling). */
struct kn_nn_trainer {
    kn_nn_graph *g;
    kn_nn_train_params p;
    int n;               /* batch of the last forward */
    bool training;
    bool nhwc;           /* values are stored channels-last (see train.c) */
    float **val;         /* per node: output, max_batch samples */
    float **grad;        /* per node: d(loss)/d(output) */
    bool *written;       /* per node: grad written in this backward pass */
    float **pgrad;       /* per parameter; NULL when not trained */
    bool *need_grad;     /* per node: its output gradient is needed */
    void **state;        /* per node: op state (masks, batch statistics), free()d */
    void *conv_ctx;      /* train_conv.c's private context (oneDNN objects), or NULL */
    kn_rng rng;
};

/* Backward passes do not clear value gradients up front (gigabytes per step
 * for a resnet): the first op to write d(loss)/d(v) in a pass writes it, the
 * later ones add. kn__train_grad_first tells an op which it is (and records
 * that v is now written); an op that can only add zeroes v first with
 * kn__train_grad_zero. */
bool kn__train_grad_first(kn_nn_trainer *t, int v);
void kn__train_grad_zero(kn_nn_trainer *t, int v);

/* Conv, batch norm, max/avg pooling in training mode (train_conv.c).
 * Forward writes t->val[i] for t->n samples; backward writes or adds (see
 * above) d(loss)/d(input) into t->grad[in] when t->need_grad[in], and adds
 * parameter gradients into t->pgrad[param] (zeroed by the caller before the
 * backward pass). */
kn_status kn__train_conv_fwd(kn_nn_trainer *t, int i, kn_err *e);
kn_status kn__train_conv_bwd(kn_nn_trainer *t, int i, kn_err *e);
kn_status kn__train_bn_fwd(kn_nn_trainer *t, int i, kn_err *e);
kn_status kn__train_bn_bwd(kn_nn_trainer *t, int i, kn_err *e);
kn_status kn__train_pool_fwd(kn_nn_trainer *t, int i, kn_err *e);
kn_status kn__train_pool_bwd(kn_nn_trainer *t, int i, kn_err *e);
/* Frees train_conv.c's context (called from kn_nn_trainer_free). */
void kn__train_conv_free(kn_nn_trainer *t);

/* The oneDNN path behind the entry points above (train_conv_dnnl.c): the
 * same contract; batch norm takes the statistics forward uses (written in
 * training mode) and backward differentiates. */
kn_status kn__train_dnnl_conv_fwd(kn_nn_trainer *t, int i, kn_err *e);
kn_status kn__train_dnnl_conv_bwd(kn_nn_trainer *t, int i, kn_err *e);
kn_status kn__train_dnnl_bn_fwd(kn_nn_trainer *t, int i, float *mean, float *var, kn_err *e);
kn_status kn__train_dnnl_bn_bwd(kn_nn_trainer *t, int i, const float *mean, const float *var,
                                kn_err *e);
kn_status kn__train_dnnl_pool_fwd(kn_nn_trainer *t, int i, kn_err *e);
kn_status kn__train_dnnl_pool_bwd(kn_nn_trainer *t, int i, kn_err *e);
void kn__train_dnnl_free(kn_nn_trainer *t);

#endif
