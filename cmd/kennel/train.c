/* kennel train: transfer-learn a classifier from an ImageFolder data set.
 *
 * Options and SageMaker hyperparameters share one table, so
 * `--learning-rate 0.01` and {"learning_rate": "0.01"} are the same setting
 * with the same validation. Under the SageMaker training contract (SM_* in
 * the environment, or --sm-root DIR) hyperparameters come from
 * DIR/input/config/hyperparameters.json, data from the training channel,
 * the model goes to SM_MODEL_DIR (DIR/model), and a failure writes its reason
 * to DIR/output/failure before exiting non-zero. */
#include "cli.h"

#include "kennel/train.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct settings {
    kn_train_params p;
    char cache[4096];
    char hidden_text[64];
} settings;

static int parse_int(const char *name, const char *v, long lo, long hi, int *out, char *err,
                     size_t n)
{
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || end == v || *end || x < lo || x > hi) {
        snprintf(err, n, "%s: '%s' is not an integer in [%ld, %ld]", name, v, lo, hi);
        return -1;
    }
    *out = (int)x;
    return 0;
}

static int parse_float(const char *name, const char *v, double lo, double hi, bool lo_open,
                       float *out, char *err, size_t n)
{
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (errno || end == v || *end || !(x >= lo) || !(x <= hi) || (lo_open && x == lo)) {
        snprintf(err, n, "%s: '%s' is not a number in %s%g, %g]", name, v, lo_open ? "(" : "[",
                 lo, hi);
        return -1;
    }
    *out = (float)x;
    return 0;
}

/* Applies one setting; names use '-' or '_' interchangeably. Returns 0, or
 * -1 with a one-line reason naming the field in err. */
static int apply(settings *s, const char *raw, const char *v, char *err, size_t n)
{
    char name[64];
    snprintf(name, sizeof name, "%s", raw);
    for (char *c = name; *c; c++)
        if (*c == '_')
            *c = '-';
    kn_train_params *p = &s->p;
    int iv;
    if (!strcmp(name, "data"))
        p->data = v;
    else if (!strcmp(name, "arch"))
        p->arch = v;
    else if (!strcmp(name, "weights"))
        p->weights = v;
    else if (!strcmp(name, "backbone")) {
        size_t l = strlen(v);
        if (l > 7 && !strcasecmp(v + l - 7, ".tflite"))
            p->tflite = v;
        else
            p->weights = v;
    } else if (!strcmp(name, "head") || !strcmp(name, "hidden")) {
        /* "128" or "256,128"; "0" or "" for a single linear layer */
        p->head.n_hidden = 0;
        char buf[64];
        snprintf(buf, sizeof buf, "%s", v);
        for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
            if (parse_int(raw, tok, 0, 100000, &iv, err, n))
                return -1;
            if (iv == 0)
                continue;
            if (p->head.n_hidden == KN_NN_MAX_HIDDEN) {
                snprintf(err, n, "%s: at most %d hidden layers", raw, KN_NN_MAX_HIDDEN);
                return -1;
            }
            p->head.hidden[p->head.n_hidden++] = iv;
        }
    } else if (!strcmp(name, "dropout"))
        return parse_float(raw, v, 0, 0.99, false, &p->head.dropout, err, n);
    else if (!strcmp(name, "finetune")) {
        if (!strcasecmp(v, "all")) {
            p->finetune = KN_TRAIN_FINETUNE_ALL;
            return 0;
        }
        if (parse_int(raw, v, 0, 100, &p->finetune, err, n)) {
            snprintf(err, n, "%s: '%s' is not a stage count in [0, 100] or 'all'", raw, v);
            return -1;
        }
    } else if (!strcmp(name, "image-size"))
        return parse_int(raw, v, 32, 1024, &p->image_size, err, n);
    else if (!strcmp(name, "epochs"))
        return parse_int(raw, v, 1, 100000, &p->epochs, err, n);
    else if (!strcmp(name, "batch-size") || !strcmp(name, "batch"))
        return parse_int(raw, v, 1, 4096, &p->batch, err, n);
    else if (!strcmp(name, "learning-rate") || !strcmp(name, "lr"))
        return parse_float(raw, v, 0, 10, true, &p->opt.lr, err, n);
    else if (!strcmp(name, "momentum"))
        return parse_float(raw, v, 0, 0.999, false, &p->opt.momentum, err, n);
    else if (!strcmp(name, "weight-decay"))
        return parse_float(raw, v, 0, 1, false, &p->opt.weight_decay, err, n);
    else if (!strcmp(name, "nesterov"))
        p->opt.nesterov = !strcmp(v, "1") || !strcasecmp(v, "true") || !strcmp(v, "");
    else if (!strcmp(name, "optimizer")) {
        if (kn_opt_kind_parse(v, &p->opt.kind)) {
            snprintf(err, n, "%s: '%s' (sgd, adam or adamw)", raw, v);
            return -1;
        }
    } else if (!strcmp(name, "patience"))
        return parse_int(raw, v, -1, 100000, &p->patience, err, n);
    else if (!strcmp(name, "augment")) {
        if (!strcmp(v, "none"))
            p->augment = KN_AUG_NONE;
        else if (!strcmp(v, "random") || !strcmp(v, "crop-flip"))
            p->augment = KN_AUG_RANDOM;
        else {
            snprintf(err, n, "%s: '%s' (none or random)", raw, v);
            return -1;
        }
    } else if (!strcmp(name, "seed")) {
        char *end;
        unsigned long long x = strtoull(v, &end, 10);
        if (end == v || *end) {
            snprintf(err, n, "%s: '%s' is not a non-negative integer", raw, v);
            return -1;
        }
        p->seed = x;
    } else if (!strcmp(name, "threads"))
        return parse_int(raw, v, 1, 1024, &p->threads, err, n);
    else if (!strcmp(name, "max-steps"))
        return parse_int(raw, v, 0, 100000000, &p->max_steps, err, n);
    else if (!strcmp(name, "split")) {
        double r[3];
        if (sscanf(v, "%lf,%lf,%lf", &r[0], &r[1], &r[2]) != 3 || r[0] <= 0 || r[1] < 0 ||
            r[2] < 0) {
            snprintf(err, n, "%s: '%s' is not TRAIN,VALID,TEST ratios", raw, v);
            return -1;
        }
        double sum = r[0] + r[1] + r[2];
        for (int i = 0; i < 3; i++)
            p->split[i] = r[i] / sum; /* "7,0,3" and "0.7,0,0.3" alike */
    } else if (!strcmp(name, "model-dir"))
        p->model_dir = v;
    else if (!strcmp(name, "cache-dir")) {
        if (!strcmp(v, "none"))
            p->cache_dir = NULL;
        else
            p->cache_dir = v;
    } else {
        snprintf(err, n, "unknown setting '%s'", raw);
        return -1;
    }
    return 0;
}

static void usage(FILE *f)
{
    fprintf(f,
        "usage: kennel train --data DIR [--arch A --weights W.safetensors | --backbone M.tflite]\n"
        "                    --model-dir DIR [options]\n"
        "\n"
        "  --data DIR            ImageFolder root (train/ valid/ test/, or class folders)\n"
        "  --arch NAME           resnet18..resnet152, mobilenet_v2 (default resnet50)\n"
        "  --weights FILE        backbone weights with torchvision names (.safetensors)\n"
        "  --backbone FILE       a .tflite (or .safetensors) backbone\n"
        "  --head N[,N]          hidden layer sizes of the new head (default: none)\n"
        "  --dropout P           dropout after each hidden layer (default 0)\n"
        "  --finetune N|all      also train the last N stages of the backbone (resnet:\n"
        "                        1..4 = layer4..layer1; mobilenet_v2: 1..18), or 'all'\n"
        "                        for every layer including the stem (default 0: head only)\n"
        "  --image-size N        input side for --arch networks (default 224)\n"
        "  --epochs N            (default 5)       --batch-size N     (default 32)\n"
        "  --learning-rate F     (default 0.001)   --optimizer sgd|adam|adamw (default adam)\n"
        "  --momentum F --nesterov --weight-decay F\n"
        "  --patience N          early stopping on valid loss; -1 off (default 2)\n"
        "  --augment none|random RandomResizedCrop + flip on train (default none)\n"
        "  --split T,V,S         ratios when there are no split folders (default 0.7,0.15,0.15)\n"
        "  --seed N --threads N  (defaults 0 and 2)\n"
        "  --cache-dir DIR|none  feature cache (default ~/.cache/kennel)\n"
        "  --max-steps N         stop after N optimiser steps\n"
        "  --model-dir DIR       where the model package goes\n"
        "  --sm-root DIR         run under the SageMaker training contract rooted at DIR\n"
        "  --mpi                 one rank of a data-parallel run (implied under mpirun):\n"
        "                        mpirun -np N kennel train ... splits every batch over N\n");
}

/* ---- SageMaker contract --------------------------------------------------- */

static void write_failure(const char *root, const char *msg)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/output", root);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/output/failure", root);
    FILE *f = fopen(path, "w");
    if (f) {
        fprintf(f, "%.1024s\n", msg);
        fclose(f);
    }
}

static int load_hyperparameters(settings *s, const char *root, json_t **keep, char *err,
                                 size_t n)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/input/config/hyperparameters.json", root);
    if (access(path, F_OK) != 0)
        return 0; /* none given */
    json_error_t je;
    json_t *hp = json_load_file(path, 0, &je);
    if (!hp || !json_is_object(hp)) {
        snprintf(err, n, "%s: %s", path, hp ? "not a JSON object" : je.text);
        json_decref(hp);
        return -1;
    }
    *keep = hp; /* the strings stay alive for the settings */
    const char *key;
    json_t *val;
    json_object_foreach(hp, key, val)
    {
        if (key[0] == '_' || !strncmp(key, "sagemaker_", 10))
            continue; /* set by the tuner / SDK, not by the user */
        char num[64];
        const char *v = json_string_value(val);
        if (!v && json_is_number(val)) {
            snprintf(num, sizeof num, "%.17g", json_number_value(val));
            json_object_set_new(hp, key, json_string(num)); /* keep it alive */
            v = json_string_value(json_object_get(hp, key));
        }
        if (!v) {
            snprintf(err, n, "hyperparameter %s: not a string", key);
            return -1;
        }
        char why[512];
        if (apply(s, key, v, why, sizeof why)) {
            snprintf(err, n, "hyperparameter %s", why);
            return -1;
        }
    }
    return 0;
}

static const char *training_channel(const char *root, char *buf, size_t n)
{
    static const char *names[] = {"SM_CHANNEL_TRAINING", "SM_CHANNEL_TRAIN", "SM_CHANNEL_DATA"};
    for (size_t i = 0; i < 3; i++)
        if (getenv(names[i]) && *getenv(names[i]))
            return getenv(names[i]);
    static const char *dirs[] = {"training", "train", "data"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(buf, n, "%s/input/data/%s", root, dirs[i]);
        if (access(buf, F_OK) == 0)
            return buf;
    }
    return NULL;
}

int kn_cli_train(int argc, char **argv)
{
    static const struct option opts[] = {
        {"data", 1, NULL, 0},          {"arch", 1, NULL, 0},        {"weights", 1, NULL, 0},
        {"backbone", 1, NULL, 0},      {"head", 1, NULL, 0},        {"hidden", 1, NULL, 0},
        {"dropout", 1, NULL, 0},       {"finetune", 1, NULL, 0},    {"epochs", 1, NULL, 0},
        {"batch-size", 1, NULL, 0},    {"learning-rate", 1, NULL, 0}, {"lr", 1, NULL, 0},
        {"momentum", 1, NULL, 0},      {"weight-decay", 1, NULL, 0}, {"optimizer", 1, NULL, 0},
        {"patience", 1, NULL, 0},      {"augment", 1, NULL, 0},     {"seed", 1, NULL, 0},
        {"threads", 1, NULL, 0},       {"split", 1, NULL, 0},       {"model-dir", 1, NULL, 0},
        {"cache-dir", 1, NULL, 0},     {"max-steps", 1, NULL, 0},   {"nesterov", 0, NULL, 0},
        {"sm-root", 1, NULL, 0},       {"no-progress", 0, NULL, 0}, {"image-size", 1, NULL, 0},
        {"mpi", 0, NULL, 0},
        {"help", 0, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    settings s;
    memset(&s, 0, sizeof s);
    s.p = kn_train_default_params();
    const char *home = getenv("XDG_CACHE_HOME");
    if (home && *home)
        snprintf(s.cache, sizeof s.cache, "%s/kennel", home);
    else if ((home = getenv("HOME")) && *home)
        snprintf(s.cache, sizeof s.cache, "%s/.cache/kennel", home);
    if (s.cache[0]) {
        char parent[4096];
        snprintf(parent, sizeof parent, "%.4000s", s.cache);
        char *slash = strrchr(parent, '/');
        if (slash) {
            *slash = 0;
            mkdir(parent, 0755);
        }
        s.p.cache_dir = s.cache;
    }
    s.p.progress = isatty(STDOUT_FILENO);
    const char *sm_root = NULL;
    char err[1024];
    /* command-line settings are applied after hyperparameters.json, so the
     * command line wins; collect them first */
    const char *names[64], *vals[64];
    int nset = 0, idx, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, &idx)) != -1) {
        if (c == 'h') {
            usage(stdout);
            return 0;
        }
        if (c != 0) {
            usage(stderr);
            return 2;
        }
        const char *name = opts[idx].name;
        if (!strcmp(name, "sm-root"))
            sm_root = optarg;
        else if (!strcmp(name, "no-progress"))
            s.p.progress = false;
        else if (!strcmp(name, "mpi"))
            s.p.mpi = true;
        else if (nset < 64) {
            names[nset] = name;
            vals[nset++] = opts[idx].has_arg ? optarg : "true";
        }
    }
    if (optind < argc) {
        fprintf(stderr, "kennel train: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    bool sm = sm_root || getenv("SM_MODEL_DIR") || getenv("SM_CHANNEL_TRAINING") ||
              getenv("SM_CHANNEL_TRAIN");
    const char *root = sm_root ? sm_root : "/opt/ml";
    json_t *hp = NULL;
    char chan[4096], model_dir[4096];
    int rc = 1;
    if (sm) {
        if (load_hyperparameters(&s, root, &hp, err, sizeof err))
            goto fail;
        const char *data = training_channel(root, chan, sizeof chan);
        if (data)
            s.p.data = data;
        const char *md = getenv("SM_MODEL_DIR");
        snprintf(model_dir, sizeof model_dir, "%s", md && *md ? md : "");
        if (!model_dir[0])
            snprintf(model_dir, sizeof model_dir, "%s/model", root);
        s.p.model_dir = model_dir;
        s.p.progress = false;
    }
    for (int i = 0; i < nset; i++)
        if (apply(&s, names[i], vals[i], err, sizeof err)) {
            if (!sm) {
                fprintf(stderr, "kennel train: --%s\n", err);
                return 2;
            }
            goto fail;
        }
    if (!s.p.data || !s.p.model_dir) {
        snprintf(err, sizeof err, "%s", !s.p.data ? (sm ? "no training channel (SM_CHANNEL_TRAINING or input/data/training)" : "--data is required")
                                                  : "--model-dir is required");
        if (!sm) {
            fprintf(stderr, "kennel train: %s\n", err);
            usage(stderr);
            return 2;
        }
        goto fail;
    }
    /* started by mpirun: one rank of a data-parallel run; only rank 0
     * prints the progress and metric lines (and writes the model) */
    const char *wsize = getenv("OMPI_COMM_WORLD_SIZE"), *wrank = getenv("OMPI_COMM_WORLD_RANK");
    if (wsize && atoi(wsize) > 1)
        s.p.mpi = true;
    if (s.p.mpi && wrank && strcmp(wrank, "0") != 0) {
        fflush(stdout);
        if (!freopen("/dev/null", "w", stdout))
            fprintf(stderr, "kennel train: rank %s: cannot silence stdout\n", wrank);
    }
    kn_err e = {0};
    kn_train_result r;
    if (kn_train_run(&s.p, &r, &e)) {
        snprintf(err, sizeof err, "%s%s%s", s.p.mpi && wrank ? "rank " : "",
                 s.p.mpi && wrank ? wrank : "", s.p.mpi && wrank ? ": " : "");
        snprintf(err + strlen(err), sizeof err - strlen(err), "%s", e.msg);
        goto fail;
    }
    rc = 0;
    json_decref(hp);
    fflush(stdout);
    kn_train_mpi_finish(0);
    return rc;
fail:
    fprintf(stderr, "kennel train: %s\n", err);
    if (sm)
        write_failure(root, err);
    json_decref(hp);
    fflush(stdout);
    fflush(stderr);
    kn_train_mpi_finish(1);
    return 1;
}
