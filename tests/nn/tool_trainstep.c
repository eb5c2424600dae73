/* One fine-tuning step of a torchvision network's tail, for the PyTorch
 * gradient-parity test: builds the architecture, loads weights, cuts off the
 * last N stages (kn_nn_graph_stage_cut + kn_nn_graph_split), feeds the given
 * stage input (computed by PyTorch) through the tail in training mode, takes
 * the mean cross-entropy against the labels and runs backward.
 *
 *   tool_trainstep --arch resnet18 [--hidden H]... --classes C --weights W
 *                  --finetune N --backend ref|dnnl --batch B
 *                  --feat FEAT.bin --labels LABELS.bin --out OUT.safetensors
 *
 * FEAT.bin: float32 B x (the cut's C x H x W); LABELS.bin: int32 B.
 * OUT holds "grad.<param>" for every trained parameter of the tail, the
 * running statistics after the step under their own names, "logits" and
 * "loss" (the mean cross-entropy). */
#include "kennel/nn.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static float *read_file(const char *path, size_t bytes)
{
    FILE *f = fopen(path, "rb");
    float *p = malloc(bytes ? bytes : 1);
    if (!f || !p || fread(p, 1, bytes, f) != bytes) {
        fprintf(stderr, "tool_trainstep: cannot read %zu bytes from %s\n", bytes, path);
        free(p);
        p = NULL;
    }
    if (f)
        fclose(f);
    return p;
}

int main(int argc, char **argv)
{
    const char *arch = NULL, *weights = NULL, *out = NULL, *backend = "dnnl";
    const char *feat_path = NULL, *labels_path = NULL;
    kn_nn_head head = {0};
    int batch = 0, finetune = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) {
            fprintf(stderr, "tool_trainstep: %s needs a value\n", a);
            return 2;
        }
        i++;
        if (strcmp(a, "--arch") == 0)
            arch = v;
        else if (strcmp(a, "--hidden") == 0 && head.n_hidden < KN_NN_MAX_HIDDEN)
            head.hidden[head.n_hidden++] = atoi(v);
        else if (strcmp(a, "--classes") == 0)
            head.classes = atoi(v);
        else if (strcmp(a, "--weights") == 0)
            weights = v;
        else if (strcmp(a, "--finetune") == 0)
            finetune = atoi(v);
        else if (strcmp(a, "--backend") == 0)
            backend = v;
        else if (strcmp(a, "--batch") == 0)
            batch = atoi(v);
        else if (strcmp(a, "--feat") == 0)
            feat_path = v;
        else if (strcmp(a, "--labels") == 0)
            labels_path = v;
        else if (strcmp(a, "--out") == 0)
            out = v;
        else {
            fprintf(stderr, "tool_trainstep: unknown argument %s\n", a);
            return 2;
        }
    }
    if (!arch || !weights || !out || !feat_path || !labels_path || batch < 1) {
        fprintf(stderr, "tool_trainstep: bad arguments\n");
        return 2;
    }
    kn_err e = {0};
    kn_nn_backend be;
    if (kn_nn_backend_parse(backend, &be)) {
        fprintf(stderr, "tool_trainstep: unknown backend %s\n", backend);
        return 2;
    }
    int rc = 1, cut = -1;
    kn_nn_graph *g = kn_nn_graph_new(), *tail = NULL;
    kn_st_file *st = NULL;
    kn_nn_trainer *t = NULL;
    float *feat = NULL, *logits = NULL, *dlogits = NULL;
    int32_t *labels = NULL;
    kn_nn_param *outp = NULL;
    const kn_nn_param **list = NULL;
    if (kn_nn_build_arch(g, arch, 224, 224, &head, &e) || kn_st_open(weights, &st, &e) ||
        kn_nn_graph_load_st(g, st, NULL, false, &e) ||
        kn_nn_graph_stage_cut(g, arch, finetune, &cut, &e) ||
        kn_nn_graph_split(g, cut, NULL, &tail, &e))
        goto out;
    kn_nn_train_params p = kn_nn_train_default_params();
    p.max_batch = batch;
    p.backend = be;
    if (kn_nn_trainer_new(tail, &p, &t, &e))
        goto out;
    kn_nn_shape is = kn_nn_graph_input_shape(tail);
    int classes = kn_nn_graph_output_shape(tail).c;
    size_t per_in = (size_t)is.c * is.h * is.w;
    feat = read_file(feat_path, per_in * (size_t)batch * sizeof(float));
    labels = (int32_t *)read_file(labels_path, (size_t)batch * sizeof(int32_t));
    logits = malloc((size_t)batch * classes * sizeof(float));
    dlogits = malloc((size_t)batch * classes * sizeof(float));
    if (!feat || !labels || !logits || !dlogits)
        goto out;
    if (kn_nn_trainer_forward(t, feat, batch, true, logits, &e))
        goto out;
    /* mean cross-entropy: d/dlogits = (softmax - onehot) / B */
    double loss = 0;
    for (int s = 0; s < batch; s++) {
        const float *z = logits + (size_t)s * classes;
        float *d = dlogits + (size_t)s * classes;
        if (labels[s] < 0 || labels[s] >= classes) {
            fprintf(stderr, "tool_trainstep: label %d out of range\n", labels[s]);
            goto out;
        }
        double mx = z[0], sum = 0;
        for (int k = 1; k < classes; k++)
            mx = z[k] > mx ? z[k] : mx;
        for (int k = 0; k < classes; k++)
            sum += exp(z[k] - mx);
        for (int k = 0; k < classes; k++)
            d[k] = (float)((exp(z[k] - mx) / sum - (k == labels[s])) / batch);
        loss += (log(sum) + mx - z[labels[s]]) / batch;
    }
    if (kn_nn_trainer_backward(t, dlogits, NULL, &e))
        goto out;
    /* the output file: gradients, running statistics, logits, loss */
    int np = kn_nn_graph_param_count(tail), no = 0;
    outp = calloc((size_t)np + 2, sizeof *outp);
    list = calloc((size_t)np + 2, sizeof *list);
    if (!outp || !list)
        goto out;
    float loss_f = (float)loss;
    for (int i = 0; i < np; i++) {
        const kn_nn_param *src = kn_nn_graph_param_c(tail, i);
        float *gr = kn_nn_trainer_grad(t, i);
        kn_nn_param *o = &outp[no];
        *o = *src;
        if (gr) {
            snprintf(o->name, sizeof o->name, "grad.%s", src->name);
            o->data = gr;
        }
        list[no] = o;
        no++;
    }
    outp[no] = (kn_nn_param){.name = "logits", .ndim = 2, .dims = {batch, classes},
                             .numel = (size_t)batch * classes, .data = logits, .loaded = true};
    list[no] = &outp[no];
    no++;
    outp[no] = (kn_nn_param){.name = "loss", .ndim = 1, .dims = {1}, .numel = 1,
                             .data = &loss_f, .loaded = true};
    list[no] = &outp[no];
    no++;
    if (kn_st_write(out, list, no, &e))
        goto out;
    printf("tool_trainstep: %s %s tail of %d nodes, loss %.6f\n", arch, backend,
           kn_nn_graph_count(tail), loss);
    rc = 0;
out:
    if (rc && e.code)
        fprintf(stderr, "tool_trainstep: %s\n", e.msg);
    free(list);
    free(outp);
    free(feat);
    free(labels);
    free(logits);
    free(dlogits);
    kn_nn_trainer_free(t);
    kn_nn_graph_free(tail);
    kn_st_free(st);
    kn_nn_graph_free(g);
    return rc;
}
