/* Runs a torchvision-architecture network from a safetensors file on raw
 * float32 NCHW tensors and writes the raw outputs; driven by the PyTorch
 * parity test.
 *
 *   tool_nnrun --arch resnet50 [--hidden 128] --classes 133 --weights W
 *              --backend ref|dnnl --batch N --out OUT in0.bin in1.bin ...
 * Inputs are grouped into batches of N (the count must divide evenly). */
#include "kennel/nn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    const char *arch = NULL, *weights = NULL, *out = NULL, *backend = "dnnl";
    kn_nn_head head = {0};
    int batch = 1, first_in = argc;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--arch") == 0 && i + 1 < argc)
            arch = argv[++i];
        else if (strcmp(argv[i], "--hidden") == 0 && i + 1 < argc)
            head.hidden[head.n_hidden++] = atoi(argv[++i]);
        else if (strcmp(argv[i], "--classes") == 0 && i + 1 < argc)
            head.classes = atoi(argv[++i]);
        else if (strcmp(argv[i], "--weights") == 0 && i + 1 < argc)
            weights = argv[++i];
        else if (strcmp(argv[i], "--backend") == 0 && i + 1 < argc)
            backend = argv[++i];
        else if (strcmp(argv[i], "--batch") == 0 && i + 1 < argc)
            batch = atoi(argv[++i]);
        else if (strcmp(argv[i], "--out") == 0 && i + 1 < argc)
            out = argv[++i];
        else {
            first_in = i;
            break;
        }
    }
    int n_in = argc - first_in;
    if (!arch || !weights || !out || n_in == 0 || batch < 1 || n_in % batch) {
        fprintf(stderr, "tool_nnrun: bad arguments\n");
        return 2;
    }
    kn_err e = {0};
    kn_nn_backend be;
    if (kn_nn_backend_parse(backend, &be)) {
        fprintf(stderr, "tool_nnrun: unknown backend %s\n", backend);
        return 2;
    }
    kn_nn_graph *g = kn_nn_graph_new();
    kn_st_file *st = NULL;
    kn_nn_exec *x = NULL;
    float *in = NULL, *res = NULL;
    int rc = 1;
    if (kn_nn_build_arch(g, arch, 224, 224, &head, &e) || kn_st_open(weights, &st, &e) ||
        kn_nn_graph_load_st(g, st, NULL, false, &e))
        goto out;
    kn_nn_exec_params p = kn_nn_exec_default_params();
    p.backend = be;
    p.max_batch = batch;
    p.threads = 2;
    if (kn_nn_exec_new(g, &p, &x, &e))
        goto out;
    size_t per_in = 3 * 224 * 224, per_out = kn_nn_exec_out_numel(x);
    in = malloc(per_in * sizeof(float) * (size_t)batch);
    res = malloc(per_out * sizeof(float) * (size_t)n_in);
    FILE *fo = NULL;
    for (int b = 0; b < n_in / batch; b++) {
        for (int k = 0; k < batch; k++) {
            FILE *f = fopen(argv[first_in + b * batch + k], "rb");
            if (!f || fread(in + per_in * (size_t)k, sizeof(float), per_in, f) != per_in) {
                fprintf(stderr, "tool_nnrun: cannot read %s\n", argv[first_in + b * batch + k]);
                if (f)
                    fclose(f);
                goto out;
            }
            fclose(f);
        }
        if (kn_nn_exec_run(x, in, batch, res + per_out * (size_t)b * (size_t)batch, &e))
            goto out;
    }
    fo = fopen(out, "wb");
    if (!fo || fwrite(res, sizeof(float), per_out * (size_t)n_in, fo) != per_out * (size_t)n_in) {
        fprintf(stderr, "tool_nnrun: cannot write %s\n", out);
        if (fo)
            fclose(fo);
        goto out;
    }
    fclose(fo);
    rc = 0;
out:
    if (rc && e.code)
        fprintf(stderr, "tool_nnrun: %s\n", e.msg);
    free(in);
    free(res);
    kn_nn_exec_free(x);
    kn_st_free(st);
    kn_nn_graph_free(g);
    return rc;
}
