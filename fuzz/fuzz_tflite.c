/* Fuzz target for the TFLite importer: any byte string goes through
 * kn_tflite_import into a fresh graph. The importer must return a status
 * (never crash, overread or leak; the sanitizers watch) and keep its
 * contract: on success the graph is finalised with a vector output and the
 * info filled in, on failure the message starts with "tflite: " and the
 * info is zeroed. Small imported graphs are also run once on the reference
 * backend, so odd but valid shapes reach the executor.
 * Seeds: fuzz/corpus/tflite/, written by fuzz/corpus/make_tflite_seeds.py. */
#include "kennel/nn.h"

#include <stdlib.h>
#include <string.h>

static void run_small(const kn_nn_graph *g)
{
    kn_nn_shape in = kn_nn_graph_input_shape(g);
    size_t n = (size_t)in.c * (size_t)in.h * (size_t)in.w;
    if (n > 4096 || kn_nn_graph_flops(g) > 2e6)
        return;
    kn_nn_exec_params p = kn_nn_exec_default_params();
    p.backend = KN_NN_REF;
    p.threads = 1;
    kn_nn_exec *x = NULL;
    kn_err e;
    float *buf = calloc(n, sizeof *buf), *out = NULL;
    if (buf && kn_nn_exec_new(g, &p, &x, &e) == KN_OK) {
        out = calloc(kn_nn_exec_out_numel(x), sizeof *out);
        for (size_t i = 0; i < n; i++)
            buf[i] = (float)((int)(i % 7) - 3) * 0.25f;
        if (out)
            kn_nn_exec_run(x, buf, 1, out, &e);
    }
    kn_nn_exec_free(x);
    free(out);
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    kn_nn_graph *g = kn_nn_graph_new();
    if (!g)
        return 0;
    kn_tflite_info info;
    kn_err e;
    kn_err_clear(&e);
    kn_status rc = kn_tflite_import(g, data, size, &info, &e);
    if (rc == KN_OK) {
        kn_nn_shape out = kn_nn_graph_output_shape(g);
        if (info.out_n <= 0 || out.c != info.out_n || out.h != 1 || out.w != 1)
            abort();
        run_small(g);
    } else if (strncmp(e.msg, "tflite: ", 8) != 0 || info.out_n != 0 || e.code != rc) {
        abort();
    }
    kn_nn_graph_free(g);
    return 0;
}
