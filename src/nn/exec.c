/* Executor front: validates parameters and dispatches to a backend through
 * its vtable (reference C or oneDNN). */
#include "nn_int.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

const char *kn_nn_backend_name(kn_nn_backend b)
{
    return b == KN_NN_REF ? "ref" : b == KN_NN_DNNL ? "dnnl" : "?";
}

kn_status kn_nn_backend_parse(const char *s, kn_nn_backend *out)
{
    if (strcmp(s, "ref") == 0 || strcmp(s, "reference") == 0)
        *out = KN_NN_REF;
    else if (strcmp(s, "dnnl") == 0 || strcmp(s, "onednn") == 0 || strcmp(s, "fast") == 0)
        *out = KN_NN_DNNL;
    else
        return KN_INVALID;
    return KN_OK;
}

kn_nn_exec_params kn_nn_exec_default_params(void)
{
    return (kn_nn_exec_params){.backend = KN_NN_DNNL, .max_batch = 1, .threads = 0};
}

kn_status kn_nn_exec_new(const kn_nn_graph *g, const kn_nn_exec_params *p, kn_nn_exec **out,
                         kn_err *e)
{
    *out = NULL;
    if (!g->finalized)
        return kn_err_set(e, KN_INVALID, "executor: graph is not finalised");
    if (p->max_batch < 1 || p->max_batch > 4096)
        return kn_err_set(e, KN_INVALID, "executor: batch size %d is out of range [1, 4096]",
                          p->max_batch);
    if (p->threads < 0 || p->threads > 1024)
        return kn_err_set(e, KN_INVALID, "executor: %d threads", p->threads);
    for (int i = 0; i < g->np; i++)
        if (!g->params[i].loaded)
            return kn_err_set(e, KN_INVALID, "executor: parameter %s has no value",
                              g->params[i].name);
    kn_nn_exec *x = calloc(1, sizeof *x);
    if (!x)
        return kn_err_set(e, KN_NOMEM, "executor: out of memory");
    x->p = *p;
    x->in_shape = kn_nn_graph_input_shape(g);
    x->out_shape = kn_nn_graph_output_shape(g);
    switch (p->backend) {
    case KN_NN_REF:
        x->ops = &kn__nn_ref_ops;
        break;
    case KN_NN_DNNL:
        x->ops = &kn__nn_dnnl_ops;
        break;
    default:
        free(x);
        return kn_err_set(e, KN_INVALID, "executor: unknown backend %d", (int)p->backend);
    }
    /* OpenMP's thread count is per process: the setting applies to every
     * executor in it, which is what a server running one model wants. */
    if (p->threads > 0)
        omp_set_num_threads(p->threads);
    kn_status rc = x->ops->create(x, g, e);
    if (rc) {
        free(x);
        return rc;
    }
    *out = x;
    return KN_OK;
}

kn_status kn_nn_exec_share_weights(kn_nn_exec *x, const char *dir, kn_nn_shared_weights *info,
                                   kn_err *e)
{
    memset(info, 0, sizeof *info);
    if (!x->ops->share)
        return kn_err_set(e, KN_UNSUPPORTED, "the %s backend cannot share its weights",
                          kn_nn_backend_name(x->p.backend));
    return x->ops->share(x, dir, info, e);
}

void kn_nn_exec_free(kn_nn_exec *x)
{
    if (!x)
        return;
    x->ops->destroy(x);
    free(x);
}

kn_status kn_nn_exec_run(kn_nn_exec *x, const float *in, int n, float *out, kn_err *e)
{
    if (n < 1 || n > x->p.max_batch)
        return kn_err_set(e, KN_INVALID, "batch of %d is outside [1, %d]", n, x->p.max_batch);
    if (x->p.threads > 0)
        omp_set_num_threads(x->p.threads);
    return x->ops->run(x, in, n, out, e);
}

size_t kn_nn_exec_out_numel(const kn_nn_exec *x)
{
    return kn__nn_shape_numel(x->out_shape);
}
