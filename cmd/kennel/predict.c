/* kennel predict: classify image files with a model package, a model.tar.gz,
 * a .safetensors (with --arch) or a .tflite (with --labels).
 *
 * Images are decoded in parallel and run in batches. An image that cannot be
 * read gets one line on stderr naming it and the reason; the others are
 * still classified, and the exit code is 1. */
#include "cli.h"

#include "kennel/img.h"
#include "kennel/model.h"
#include "kennel/nn.h"

#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f)
{
    fprintf(f,
            "usage: kennel predict --model PATH [options] IMAGE...\n"
            "\n"
            "  --model PATH        package directory, model.tar.gz, .safetensors or .tflite\n"
            "  --arch NAME         architecture of a bare .safetensors (resnet18..152,\n"
            "                      mobilenet_v2)\n"
            "  --hidden N          hidden layer of a bare .safetensors head (repeatable)\n"
            "  --labels FILE       class names, one per line (.tflite, .safetensors)\n"
            "  --topk K            classes to print per image (default 5)\n"
            "  --json              print each image's raw scores as [[s0, ..., sN]]\n"
            "  --backend B         dnnl (default) or ref (plain C reference)\n"
            "  --threads N         compute threads (default 2)\n"
            "  --batch N           images per forward pass (default 8)\n"
            "  --max-pixels N      refuse images whose header declares more (default 64M)\n");
}

typedef struct result {
    bool ok;
    char err[KN_ERR_MSG_MAX];
} result;

static void print_topk(const kn_model *m, const char *path, const float *s, int n, int k)
{
    /* probabilities: the model's own, or a softmax of its logits */
    double *p = malloc((size_t)n * sizeof *p);
    int *idx = malloc((size_t)n * sizeof *idx);
    if (!p || !idx) {
        free(p);
        free(idx);
        fprintf(stderr, "kennel: out of memory\n");
        return;
    }
    if (m->outputs_probabilities) {
        for (int i = 0; i < n; i++)
            p[i] = s[i];
    } else {
        double mx = -INFINITY, sum = 0;
        for (int i = 0; i < n; i++)
            mx = s[i] > mx ? s[i] : mx;
        for (int i = 0; i < n; i++)
            sum += (p[i] = exp(s[i] - mx));
        for (int i = 0; i < n; i++)
            p[i] /= sum;
    }
    for (int i = 0; i < n; i++)
        idx[i] = i;
    if (k > n)
        k = n;
    for (int i = 0; i < k; i++) { /* partial selection sort: k is small */
        int best = i;
        for (int j = i + 1; j < n; j++)
            if (p[idx[j]] > p[idx[best]])
                best = j;
        int t = idx[i];
        idx[i] = idx[best];
        idx[best] = t;
    }
    printf("%s\n", path);
    for (int i = 0; i < k; i++) {
        int c = idx[i];
        if (m->outputs_probabilities)
            printf("  %d. %-32s %.4f\n", i + 1, m->classes[c], p[c]);
        else
            printf("  %d. %-32s %.4f  (score %.4f)\n", i + 1, m->classes[c], p[c], s[c]);
    }
    free(p);
    free(idx);
}

static void print_json(const float *s, int n)
{
    fputs("[[", stdout);
    for (int i = 0; i < n; i++)
        printf(i ? ", %.9g" : "%.9g", s[i]);
    fputs("]]\n", stdout);
}

int kn_cli_predict(int argc, char **argv)
{
    static const struct option opts[] = {
        {"model", required_argument, NULL, 'm'},   {"arch", required_argument, NULL, 'a'},
        {"hidden", required_argument, NULL, 'H'},  {"labels", required_argument, NULL, 'l'},
        {"topk", required_argument, NULL, 'k'},    {"json", no_argument, NULL, 'j'},
        {"backend", required_argument, NULL, 'b'}, {"threads", required_argument, NULL, 't'},
        {"batch", required_argument, NULL, 'B'},   {"max-pixels", required_argument, NULL, 'P'},
        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0},
    };
    const char *model_path = NULL;
    kn_model_load_params lp = kn_model_load_default_params();
    kn_nn_exec_params xp = kn_nn_exec_default_params();
    kn_img_decode_params dp = kn_img_decode_default_params();
    int topk = 5, batch = 8;
    bool json = false;
    xp.threads = 2;
    optind = 1;
    int c;
    char *end;
    while ((c = getopt_long(argc, argv, "m:k:h", opts, NULL)) != -1) {
        switch (c) {
        case 'm':
            model_path = optarg;
            break;
        case 'a':
            lp.arch = optarg;
            break;
        case 'H':
            if (lp.head.n_hidden == KN_NN_MAX_HIDDEN) {
                fprintf(stderr, "kennel predict: at most %d --hidden layers\n", KN_NN_MAX_HIDDEN);
                return 2;
            }
            lp.head.hidden[lp.head.n_hidden++] = (int)strtol(optarg, &end, 10);
            if (*end || lp.head.hidden[lp.head.n_hidden - 1] <= 0) {
                fprintf(stderr, "kennel predict: --hidden '%s' is not a positive number\n",
                        optarg);
                return 2;
            }
            break;
        case 'l':
            lp.labels = optarg;
            break;
        case 'k':
            topk = (int)strtol(optarg, &end, 10);
            if (*end || topk < 1) {
                fprintf(stderr, "kennel predict: --topk '%s' is not a positive number\n", optarg);
                return 2;
            }
            break;
        case 'j':
            json = true;
            break;
        case 'b':
            if (kn_nn_backend_parse(optarg, &xp.backend)) {
                fprintf(stderr, "kennel predict: --backend '%s' (dnnl or ref)\n", optarg);
                return 2;
            }
            break;
        case 't':
            xp.threads = (int)strtol(optarg, &end, 10);
            if (*end || xp.threads < 1 || xp.threads > 1024) {
                fprintf(stderr, "kennel predict: --threads '%s' is not in [1, 1024]\n", optarg);
                return 2;
            }
            break;
        case 'B':
            batch = (int)strtol(optarg, &end, 10);
            if (*end || batch < 1 || batch > 256) {
                fprintf(stderr, "kennel predict: --batch '%s' is not in [1, 256]\n", optarg);
                return 2;
            }
            break;
        case 'P': {
            unsigned long long v = strtoull(optarg, &end, 10);
            if (*end || v == 0) {
                fprintf(stderr, "kennel predict: --max-pixels '%s' is not a positive number\n",
                        optarg);
                return 2;
            }
            dp.max_pixels = v;
            break;
        }
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    int n_img = argc - optind;
    if (!model_path || n_img == 0) {
        fprintf(stderr, "kennel predict: %s\n", !model_path ? "--model is required"
                                                            : "no images given");
        usage(stderr);
        return 2;
    }
    char **images = argv + optind;

    kn_err e = {0};
    kn_model *m = NULL;
    kn_nn_exec *x = NULL;
    float *in = NULL, *out = NULL;
    result *res = NULL;
    int rc = 1, failures = 0;
    if (kn_model_load(model_path, &lp, &m, &e)) {
        fprintf(stderr, "kennel predict: %s\n", e.msg);
        return 1;
    }
    if (batch > n_img)
        batch = n_img;
    xp.max_batch = batch;
    if (kn_nn_exec_new(m->graph, &xp, &x, &e)) {
        fprintf(stderr, "kennel predict: %s\n", e.msg);
        goto out;
    }
    /* the executor holds its own (reordered) weights: drop the plain copy */
    kn_nn_graph_free(m->graph);
    m->graph = NULL;
    size_t per_in = (size_t)3 * m->preproc.h * m->preproc.w;
    size_t per_out = kn_nn_exec_out_numel(x);
    in = malloc(per_in * (size_t)batch * sizeof(float));
    out = malloc(per_out * (size_t)batch * sizeof(float));
    res = calloc((size_t)batch, sizeof *res);
    int *slot = calloc((size_t)batch, sizeof *slot);
    if (!in || !out || !res || !slot) {
        free(slot);
        fprintf(stderr, "kennel predict: out of memory\n");
        goto out;
    }
    for (int first = 0; first < n_img; first += batch) {
        int cnt = n_img - first < batch ? n_img - first : batch;
        /* decode + preprocess in parallel, each image into its own slot */
#pragma omp parallel for schedule(dynamic, 1)
        for (int i = 0; i < cnt; i++) {
            kn_err ie = {0};
            kn_img im = {0};
            res[i].ok = kn_img_load(images[first + i], &dp, &im, &ie) == KN_OK &&
                        kn_img_preprocess(&im, &m->preproc, in + per_in * (size_t)i, &ie) == KN_OK;
            if (!res[i].ok)
                snprintf(res[i].err, sizeof res[i].err, "%s", ie.msg);
            kn_img_deinit(&im);
        }
        /* pack the good ones together */
        int good = 0;
        for (int i = 0; i < cnt; i++) {
            if (!res[i].ok)
                continue;
            if (good != i)
                memmove(in + per_in * (size_t)good, in + per_in * (size_t)i,
                        per_in * sizeof(float));
            slot[good++] = i;
        }
        if (good && kn_nn_exec_run(x, in, good, out, &e)) {
            fprintf(stderr, "kennel predict: %s\n", e.msg);
            free(slot);
            goto out;
        }
        for (int i = 0, g = 0; i < cnt; i++) {
            if (!res[i].ok) {
                fprintf(stderr, "kennel predict: %s\n", res[i].err);
                failures++;
                continue;
            }
            const float *s = out + per_out * (size_t)g++;
            if (json)
                print_json(s, (int)per_out);
            else
                print_topk(m, images[first + i], s, (int)per_out, topk);
        }
        fflush(stdout);
    }
    free(slot);
    rc = failures ? 1 : 0;
out:
    free(in);
    free(out);
    free(res);
    kn_nn_exec_free(x);
    kn_model_free(m);
    return rc;
}
