/* kennel model: `inspect` prints a model's graph, parameter count and FLOPs;
 * `package` turns a weights file into a model package (directory, and
 * optionally model.tar.gz). */
#include "cli.h"

#include "kennel/model.h"
#include "kennel/nn.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *norm_name(kn_img_norm n)
{
    return n == KN_NORM_TF ? "tf ((x - 127.5) / 127.5)"
           : n == KN_NORM_NONE ? "none (x / 255)"
                               : "torchvision ((x / 255 - mean) / std)";
}

static int inspect(int argc, char **argv)
{
    static const struct option opts[] = {
        {"arch", required_argument, NULL, 'a'},   {"labels", required_argument, NULL, 'l'},
        {"hidden", required_argument, NULL, 'H'}, {"graph", no_argument, NULL, 'g'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
    };
    kn_model_load_params lp = kn_model_load_default_params();
    bool graph = true;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 'a')
            lp.arch = optarg;
        else if (c == 'l')
            lp.labels = optarg;
        else if (c == 'H' && lp.head.n_hidden < KN_NN_MAX_HIDDEN)
            lp.head.hidden[lp.head.n_hidden++] = atoi(optarg);
        else if (c == 'g')
            graph = true;
        else {
            fprintf(c == 'h' ? stdout : stderr,
                    "usage: kennel model inspect [--arch A] [--hidden N] [--labels F] MODEL\n");
            return c == 'h' ? 0 : 2;
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, "usage: kennel model inspect [--arch A] [--labels F] MODEL\n");
        return 2;
    }
    kn_err e = {0};
    kn_model *m;
    if (kn_model_load(argv[optind], &lp, &m, &e)) {
        fprintf(stderr, "kennel model inspect: %s\n", e.msg);
        return 1;
    }
    const kn_nn_graph *g = m->graph;
    kn_nn_shape in = kn_nn_graph_input_shape(g), out = kn_nn_graph_output_shape(g);
    if (graph) {
        kn_buf b;
        kn_buf_init(&b, 64u << 20);
        if (kn_nn_graph_dump(g, &b) == KN_OK)
            fwrite(b.data, 1, b.len, stdout);
        kn_buf_deinit(&b);
    }
    size_t params = kn_nn_graph_param_numel(g);
    int convs = 0, linears = 0;
    for (int i = 0; i < kn_nn_graph_count(g); i++) {
        const kn_nn_node *nd = kn_nn_graph_node(g, i);
        convs += nd->op == KN_OP_CONV;
        linears += nd->op == KN_OP_LINEAR;
    }
    printf("model:        %s\n", m->source);
    printf("architecture: %s\n", m->arch);
    printf("input:        %d x %d x %d (C x H x W)\n", in.c, in.h, in.w);
    printf("preprocess:   resize to %dx%d, %s\n", m->preproc.w, m->preproc.h,
           norm_name(m->preproc.norm));
    if (m->preproc.norm == KN_NORM_TORCHVISION)
        printf("              mean %.4f %.4f %.4f, std %.4f %.4f %.4f\n", m->preproc.mean[0],
               m->preproc.mean[1], m->preproc.mean[2], m->preproc.std[0], m->preproc.std[1],
               m->preproc.std[2]);
    printf("output:       %d %s\n", out.c, m->outputs_probabilities ? "probabilities" : "logits");
    printf("classes:      %d (%s%s%s)\n", m->n_classes, m->classes[0],
           m->n_classes > 1 ? " ... " : "", m->n_classes > 1 ? m->classes[m->n_classes - 1] : "");
    printf("layers:       %d nodes after fusion, %d conv, %d linear\n", kn_nn_graph_count(g),
           convs, linears);
    printf("parameters:   %zu (%.1f MB as float32; batch norm folded)\n", params,
           params * 4.0 / 1e6);
    printf("FLOPs:        %.3f G per image (multiply-add = 2)\n", kn_nn_graph_flops(g) / 1e9);
    kn_model_free(m);
    return 0;
}

static int copy_file(const char *from, const char *to, kn_err *e)
{
    kn_buf b;
    kn_buf_init(&b, (size_t)4 << 30);
    kn_status rc = kn_file_read(from, &b, e);
    if (!rc)
        rc = kn_file_write(to, b.data, b.len, e);
    kn_buf_deinit(&b);
    return rc;
}

static int package(int argc, char **argv)
{
    static const struct option opts[] = {
        {"arch", required_argument, NULL, 'a'},    {"weights", required_argument, NULL, 'w'},
        {"hidden", required_argument, NULL, 'H'},  {"labels", required_argument, NULL, 'l'},
        {"out", required_argument, NULL, 'o'},     {"tar", required_argument, NULL, 't'},
        {"tflite", required_argument, NULL, 'f'},  {"init", required_argument, NULL, 'i'},
        {"classes", required_argument, NULL, 'c'}, {"seed", required_argument, NULL, 's'},
        {"image-size", required_argument, NULL, 'S'},
        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0},
    };
    const char *arch = NULL, *weights = NULL, *labels = NULL, *outdir = NULL, *tar = NULL,
               *tflite = NULL;
    kn_nn_head head = {0};
    bool random_init = false;
    unsigned long long seed = 1;
    int image_size = 224;
    char *end;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'i':
            if (strcmp(optarg, "random") != 0) {
                fprintf(stderr, "kennel model package: --init '%s' (only 'random')\n", optarg);
                return 2;
            }
            random_init = true;
            break;
        case 'c': head.classes = atoi(optarg); break;
        case 's': seed = strtoull(optarg, NULL, 10); break;
        case 'S':
            image_size = (int)strtol(optarg, &end, 10);
            if (*end || end == optarg || image_size < 8 || image_size > 4096) {
                fprintf(stderr, "kennel model package: --image-size '%s' is not in [8, 4096]\n",
                        optarg);
                return 2;
            }
            break;
        case 'a': arch = optarg; break;
        case 'w': weights = optarg; break;
        case 'l': labels = optarg; break;
        case 'o': outdir = optarg; break;
        case 't': tar = optarg; break;
        case 'f': tflite = optarg; break;
        case 'H':
            if (head.n_hidden < KN_NN_MAX_HIDDEN)
                head.hidden[head.n_hidden++] = atoi(optarg);
            break;
        default:
            fprintf(c == 'h' ? stdout : stderr,
                    "usage: kennel model package --arch A --weights W.safetensors [--hidden N]\n"
                    "                            [--labels F] --out DIR [--tar model.tar.gz]\n"
                    "       kennel model package --tflite M.tflite [--labels F] --out DIR\n"
                    "                            [--tar model.tar.gz]\n"
                    "       kennel model package --arch A --init random --classes N [--seed S]\n"
                    "                            [--hidden N] [--labels F] --out DIR\n"
                    "                            (PyTorch's default initialisation, seeded;\n"
                    "                            for smoke tests)\n"
                    "--arch networks take --image-size N (input side, default 224);\n"
                    "architectures: resnet18..resnet152, mobilenet_v2, tiny (one conv,\n"
                    "for benches of the serving path)\n");
            return c == 'h' ? 0 : 2;
        }
    }
    if (!outdir || (!tflite && (!arch || (!weights && !random_init)))) {
        fprintf(stderr, "kennel model package: --out and either --tflite, or --arch with "
                        "--weights or --init random, are required\n");
        return 2;
    }
    if (random_init && head.classes <= 0) {
        fprintf(stderr, "kennel model package: --init random needs --classes N\n");
        return 2;
    }
    kn_err e = {0};
    kn_model_load_params lp = kn_model_load_default_params();
    lp.arch = arch;
    lp.labels = labels;
    lp.head = head;
    kn_model *m = NULL;
    kn_nn_graph *g = NULL;
    kn_st_file *st = NULL;
    int rc = 1;
    if (mkdir(outdir, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "kennel model package: %s: %s\n", outdir, strerror(errno));
        return 1;
    }
    if (tflite) {
        /* validate by loading, then store the file and a model.json */
        if (kn_model_load(tflite, &lp, &m, &e))
            goto out;
        char path[4096];
        snprintf(path, sizeof path, "%s/model.tflite", outdir);
        if (copy_file(tflite, path, &e))
            goto out;
        snprintf(path, sizeof path, "%s/model.json", outdir);
        FILE *f = fopen(path, "w");
        if (!f) {
            kn_err_set(&e, KN_IO, "%s: %s", path, strerror(errno));
            goto out;
        }
        fprintf(f, "{\n  \"format\": \"kennel-model\",\n  \"version\": 1,\n  \"arch\": \"tflite\",\n"
                   "  \"weights\": \"model.tflite\",\n  \"num_classes\": %d,\n  \"classes\": [",
                m->n_classes);
        for (int i = 0; i < m->n_classes; i++) {
            fputs(i ? ", \"" : "\"", f);
            for (const char *s = m->classes[i]; *s; s++) {
                if (*s == '"' || *s == '\\')
                    fputc('\\', f);
                if ((unsigned char)*s >= 0x20)
                    fputc(*s, f);
            }
            fputc('"', f);
        }
        fprintf(f, "],\n  \"output\": \"%s\"\n}\n",
                m->outputs_probabilities ? "probabilities" : "logits");
        if (fclose(f) != 0) {
            kn_err_set(&e, KN_IO, "%s: write failed", path);
            goto out;
        }
    } else if (random_init) {
        m = calloc(1, sizeof *m);
        g = kn_nn_graph_new();
        if (!m || !g) {
            kn_err_set(&e, KN_NOMEM, "out of memory");
            goto out;
        }
        snprintf(m->arch, sizeof m->arch, "%s", arch);
        m->head = head;
        m->preproc = kn_img_preproc_torchvision();
        m->preproc.h = m->preproc.w = image_size;
        if (kn_nn_build_arch(g, arch, image_size, image_size, &head, &e))
            goto out;
        kn_nn_graph_init_params(g, seed, true);
        if (labels) {
            if (kn_labels_read(labels, &m->classes, &m->n_classes, &e))
                goto out;
            if (m->n_classes != head.classes) {
                kn_err_set(&e, KN_SHAPE, "%s: %d labels for %d classes", labels, m->n_classes,
                           head.classes);
                goto out;
            }
        } else {
            m->classes = calloc((size_t)head.classes, sizeof(char *));
            if (!m->classes) {
                kn_err_set(&e, KN_NOMEM, "out of memory");
                goto out;
            }
            m->n_classes = head.classes;
            for (int i = 0; i < head.classes; i++) {
                char name[32];
                snprintf(name, sizeof name, "class_%d", i);
                m->classes[i] = strdup(name);
                if (!m->classes[i]) {
                    kn_err_set(&e, KN_NOMEM, "out of memory");
                    goto out;
                }
            }
        }
        if (kn_model_save_dir(m, g, outdir, &e))
            goto out;
    } else {
        /* load once to validate and learn the class count */
        if (kn_model_load(weights, &lp, &m, &e))
            goto out;
        kn_nn_head h = m->head;
        m->preproc.h = m->preproc.w = image_size;
        g = kn_nn_graph_new();
        if (!g || kn_nn_build_arch(g, arch, image_size, image_size, &h, &e) || kn_st_open(weights, &st, &e) ||
            kn_nn_graph_load_st(g, st, NULL, false, &e))
            goto out;
        if (kn_model_save_dir(m, g, outdir, &e))
            goto out;
    }
    if (tar && kn_model_pack(outdir, tar, &e))
        goto out;
    printf("wrote %s%s%s (%s, %d classes)\n", outdir, tar ? " and " : "", tar ? tar : "",
           m->arch, m->n_classes);
    rc = 0;
out:
    if (rc)
        fprintf(stderr, "kennel model package: %s\n", e.msg);
    kn_st_free(st);
    kn_nn_graph_free(g);
    kn_model_free(m);
    return rc;
}

int kn_cli_model(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "inspect") == 0)
        return inspect(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "package") == 0)
        return package(argc - 1, argv + 1);
    fprintf(argc >= 2 && strcmp(argv[1], "--help") == 0 ? stdout : stderr,
            "usage: kennel model inspect MODEL\n"
            "       kennel model package ... (see 'kennel model package --help')\n"
            "\n"
            "inspect: a model's structure, parameter count and FLOPs (a package\n"
            "  directory, model.tar.gz, .safetensors with --arch, or .tflite).\n"
            "package: a model package (model.json + weights, optionally model.tar.gz)\n"
            "  from torchvision-named safetensors, a TFLite file or random weights.\n");
    return argc >= 2 && strcmp(argv[1], "--help") == 0 ? 0 : 2;
}
