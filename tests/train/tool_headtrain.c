/* Trains a classifier head on given features for a fixed batch order and
 * prints the loss of every step (before its update); driven by the PyTorch
 * parity test.
 *
 *   tool_headtrain --features F --labels L --n N --dim D --classes C
 *       [--hidden H] --weights INIT.safetensors --order O --batch B --steps S
 *       --opt sgd|adam|adamw --lr F [--momentum F] [--nesterov] [--wd F]
 * F: float32 N x D; L: int32 N; O: int32 S x B sample indices. */
#include "kennel/nn.h"
#include "kennel/train.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *slurp(const char *path, size_t bytes)
{
    FILE *f = fopen(path, "rb");
    void *p = malloc(bytes ? bytes : 1);
    if (!f || !p || fread(p, 1, bytes, f) != bytes) {
        fprintf(stderr, "tool_headtrain: cannot read %zu bytes from %s\n", bytes, path);
        exit(2);
    }
    fclose(f);
    return p;
}

int main(int argc, char **argv)
{
    const char *ff = NULL, *lf = NULL, *wf = NULL, *of = NULL;
    int n = 0, dim = 0, batch = 0, steps = 0;
    kn_nn_head head = {0};
    kn_opt_params op = kn_opt_default_params();
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : "";
        if (!strcmp(a, "--features")) ff = v, i++;
        else if (!strcmp(a, "--labels")) lf = v, i++;
        else if (!strcmp(a, "--weights")) wf = v, i++;
        else if (!strcmp(a, "--order")) of = v, i++;
        else if (!strcmp(a, "--n")) n = atoi(v), i++;
        else if (!strcmp(a, "--dim")) dim = atoi(v), i++;
        else if (!strcmp(a, "--classes")) head.classes = atoi(v), i++;
        else if (!strcmp(a, "--hidden")) head.hidden[head.n_hidden++] = atoi(v), i++;
        else if (!strcmp(a, "--batch")) batch = atoi(v), i++;
        else if (!strcmp(a, "--steps")) steps = atoi(v), i++;
        else if (!strcmp(a, "--lr")) op.lr = (float)atof(v), i++;
        else if (!strcmp(a, "--momentum")) op.momentum = (float)atof(v), i++;
        else if (!strcmp(a, "--wd")) op.weight_decay = (float)atof(v), i++;
        else if (!strcmp(a, "--nesterov")) op.nesterov = true;
        else if (!strcmp(a, "--opt")) {
            if (kn_opt_kind_parse(v, &op.kind))
                return 2;
            i++;
        } else {
            fprintf(stderr, "tool_headtrain: bad argument %s\n", a);
            return 2;
        }
    }
    if (!ff || !lf || !wf || !of || n < 1 || dim < 1 || batch < 1 || steps < 1) {
        fprintf(stderr, "tool_headtrain: missing arguments\n");
        return 2;
    }
    float *feat = slurp(ff, (size_t)n * dim * sizeof(float));
    int *lab = slurp(lf, (size_t)n * sizeof(int));
    int *order = slurp(of, (size_t)steps * batch * sizeof(int));
    kn_err e = {0};
    kn_nn_graph *g = kn_nn_graph_new();
    kn_st_file *st = NULL;
    kn_nn_trainer *t = NULL;
    kn_opt *o = NULL;
    int rc = 1;
    int x = kn_nn_input(g, dim, 1, 1);
    kn_nn_head_append(g, x, &head);
    kn_nn_train_params tp = kn_nn_train_default_params();
    tp.max_batch = batch;
    if (kn_nn_graph_finalize(g, &e) || kn_st_open(wf, &st, &e) ||
        kn_nn_graph_load_st(g, st, NULL, false, &e) || kn_nn_trainer_new(g, &tp, &t, &e) ||
        kn_opt_new(&op, g, t, &o, &e))
        goto out;
    float *xb = malloc((size_t)batch * dim * sizeof(float));
    float *out = malloc((size_t)batch * head.classes * sizeof(float));
    float *dout = malloc((size_t)batch * head.classes * sizeof(float));
    int *yb = malloc((size_t)batch * sizeof(int));
    for (int s = 0; s < steps; s++) {
        for (int k = 0; k < batch; k++) {
            int idx = order[s * batch + k];
            memcpy(xb + (size_t)k * dim, feat + (size_t)idx * dim, (size_t)dim * sizeof(float));
            yb[k] = lab[idx];
        }
        float loss;
        if (kn_nn_trainer_forward(t, xb, batch, true, out, &e) ||
            kn_train_cross_entropy(out, yb, batch, head.classes, &loss, dout, NULL, &e) ||
            kn_nn_trainer_backward(t, dout, NULL, &e))
            goto out;
        kn_opt_step(o);
        printf("%.9g\n", loss);
    }
    free(xb);
    free(out);
    free(dout);
    free(yb);
    rc = 0;
out:
    if (rc)
        fprintf(stderr, "tool_headtrain: %s\n", e.msg);
    kn_opt_free(o);
    kn_nn_trainer_free(t);
    kn_st_free(st);
    kn_nn_graph_free(g);
    free(feat);
    free(lab);
    free(order);
    return rc;
}
