/* Training-mode conv, batch norm and pooling: not available yet. The trainer
 * reports these ops as unsupported until their backward passes land. */
#include "nn_int.h"

static kn_status unsupported(kn_nn_trainer *t, int i, kn_err *e)
{
    return kn_err_set(e, KN_UNSUPPORTED, "training %s (node %d) is not supported yet",
                      kn_nn_op_name(t->g->nodes[i].op), i);
}

kn_status kn__train_conv_fwd(kn_nn_trainer *t, int i, kn_err *e) { return unsupported(t, i, e); }
kn_status kn__train_conv_bwd(kn_nn_trainer *t, int i, kn_err *e) { return unsupported(t, i, e); }
kn_status kn__train_bn_fwd(kn_nn_trainer *t, int i, kn_err *e) { return unsupported(t, i, e); }
kn_status kn__train_bn_bwd(kn_nn_trainer *t, int i, kn_err *e) { return unsupported(t, i, e); }
kn_status kn__train_pool_fwd(kn_nn_trainer *t, int i, kn_err *e) { return unsupported(t, i, e); }
kn_status kn__train_pool_bwd(kn_nn_trainer *t, int i, kn_err *e) { return unsupported(t, i, e); }
void kn__train_conv_free(kn_nn_trainer *t) { (void)t; }
