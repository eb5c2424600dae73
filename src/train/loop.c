/* The transfer-learning job: data set -> frozen backbone prefix (oneDNN
 * inference executor) -> trainable tail (kn_nn_trainer) -> optimiser, with
 * early stopping on validation loss, a final test pass and a model package.
 *
 * The cut between prefix and tail is the head (--finetune 0), the start of
 * the last N stages (--finetune N: conv, batch norm and pooling train on the
 * trainer's oneDNN backward path, batch norm with batch statistics and its
 * running statistics updated), or the input (--finetune all: no prefix, the
 * trainer takes the image batch). The running statistics are parameters of
 * the tail, so early stopping's snapshot and the package carry them.
 *
 * With a frozen backbone and no augmentation, backbone features are computed
 * once per image (or read from the feature cache) and the epochs run on
 * features in memory; otherwise each batch is decoded (augmented) and passed
 * through the prefix every step.
 *
 * Determinism: batch order, augmentation, dropout and head initialisation
 * all derive from the seed; with the same thread count the weights are
 * bitwise identical.
 */
#include "train_int.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

kn_train_params kn_train_default_params(void)
{
    kn_train_params p;
    memset(&p, 0, sizeof p);
    p.arch = "resnet50";
    p.epochs = 5;
    p.batch = 32;
    p.opt = kn_opt_default_params();
    p.patience = 2;
    p.augment = KN_AUG_NONE;
    p.threads = 2;
    p.split[KN_SPLIT_TRAIN] = 0.7;
    p.split[KN_SPLIT_VALID] = 0.15;
    p.split[KN_SPLIT_TEST] = 0.15;
    return p;
}

typedef struct feats {
    int n, dim;
    float *x;
    int *y;
} feats;

typedef struct job {
    const kn_train_params *p;
    kn_dataset *ds;
    kn_model *tfl;           /* TFLite backbone, when used */
    kn_nn_graph *full;       /* torchvision graph with the new head */
    kn_nn_graph *prefix, *tail;
    kn_nn_exec *px;
    kn_nn_trainer *tr;
    kn_opt *opt;
    kn_img_preproc pre;
    kn_nn_shape fshape;      /* prefix output, per sample */
    int classes, fdim;
    char key_hex[65];
    feats f[KN_SPLIT_COUNT];
    bool use_features;
    float *in, *fx, *out, *dout; /* batch buffers */
    int *labels;
    json_t *history;
    json_t *step_loss;       /* training loss of every optimiser step */
    int rank, size;          /* data parallel: this rank of size (1 process: 0 of 1) */
    float *gbuf;             /* packed gradients and running statistics */
    size_t gbuf_n;
} job;

static void job_free(job *j)
{
    for (int s = 0; s < KN_SPLIT_COUNT; s++) {
        free(j->f[s].x);
        free(j->f[s].y);
    }
    free(j->in);
    free(j->fx);
    free(j->out);
    free(j->dout);
    free(j->labels);
    free(j->gbuf);
    kn_opt_free(j->opt);
    kn_nn_trainer_free(j->tr);
    kn_nn_exec_free(j->px);
    kn_nn_graph_free(j->prefix);
    kn_nn_graph_free(j->tail);
    kn_nn_graph_free(j->full);
    kn_model_free(j->tfl);
    kn_dataset_free(j->ds);
    json_decref(j->history);
}

static bool in_head(const char *name)
{
    return strncmp(name, "fc.", 3) == 0 || strncmp(name, "classifier.", 11) == 0;
}

/* Loads every backbone parameter of g from the weights file; head
 * parameters are initialised instead (PyTorch defaults, seeded). */
static kn_status load_backbone(job *j, kn_err *e)
{
    const kn_train_params *p = j->p;
    kn_nn_graph *g = j->full;
    if (!p->weights) {
        kn_nn_graph_init_params(g, p->seed ^ 0x6b656e6e656cull, true);
        printf("backbone: %s with RANDOM weights (no --weights given: results mean nothing)\n",
               p->arch);
        return KN_OK;
    }
    kn_st_file *st = NULL;
    kn_status rc = kn_st_open(p->weights, &st, e);
    if (rc)
        return rc;
    for (int i = 0; i < kn_nn_graph_param_count(g); i++) {
        kn_nn_param *pa = kn_nn_graph_param(g, i);
        if (in_head(pa->name))
            continue;
        const kn_st_tensor *t = kn_st_find(st, pa->name);
        if (!t) {
            rc = kn_err_set(e, KN_NOT_FOUND, "%s: tensor %s is missing (is --arch %s right?)",
                            p->weights, pa->name, p->arch);
            break;
        }
        bool same = t->ndim == pa->ndim;
        for (int k = 0; same && k < pa->ndim; k++)
            same = t->dims[k] == pa->dims[k];
        if (!same) {
            rc = kn_err_set(e, KN_SHAPE, "%s: tensor %s has another shape than %s expects",
                            p->weights, pa->name, p->arch);
            break;
        }
        if ((rc = kn_st_to_f32(t, pa->data, pa->numel, e))) {
            kn_err_prefix(e, "%s: %s", p->weights, pa->name);
            break;
        }
        pa->loaded = true;
    }
    kn_st_free(st);
    if (rc == KN_OK) {
        /* the head: fresh, seeded; BN parameters of the head do not exist */
        kn_nn_graph_init_params(g, p->seed, false);
        char how[64];
        if (p->finetune == KN_TRAIN_FINETUNE_ALL)
            snprintf(how, sizeof how, "every layer trainable");
        else if (p->finetune > 0)
            snprintf(how, sizeof how, "last %d stage%s trainable", p->finetune,
                     p->finetune == 1 ? "" : "s");
        else
            snprintf(how, sizeof how, "frozen");
        printf("backbone: %s from %s (%s)\n", p->arch, p->weights, how);
    }
    return rc;
}

static kn_status build_model(job *j, kn_err *e)
{
    const kn_train_params *p = j->p;
    kn_nn_head head = p->head;
    head.classes = j->classes;
    kn_status rc;
    int cut;
    if (p->tflite) {
        if (p->finetune != 0)
            return kn_err_set(e, KN_UNSUPPORTED, "--finetune: a TFLite backbone can only be used "
                              "frozen; use a safetensors backbone to fine-tune");
        if (p->image_size > 0)
            return kn_err_set(e, KN_UNSUPPORTED, "--image-size: a TFLite backbone has a fixed "
                              "input size");
        kn_model_load_params lp = kn_model_load_default_params();
        if ((rc = kn_model_load(p->tflite, &lp, &j->tfl, e)))
            return rc;
        j->pre = j->tfl->preproc;
        if ((rc = kn_nn_graph_head_cut(j->tfl->graph, &cut, e)) ||
            (rc = kn_nn_graph_split(j->tfl->graph, cut, &j->prefix, NULL, e)))
            return kn_err_prefix(e, "%s", p->tflite);
        j->fshape = kn_nn_graph_output_shape(j->prefix);
        j->tail = kn_nn_graph_new();
        if (!j->tail)
            return kn_err_set(e, KN_NOMEM, "out of memory");
        int x = kn_nn_input(j->tail, j->fshape.c, j->fshape.h, j->fshape.w);
        kn_nn_head_append(j->tail, x, &head);
        if ((rc = kn_nn_graph_finalize(j->tail, e)))
            return kn_err_prefix(e, "head");
        kn_nn_graph_init_params(j->tail, p->seed, true);
        printf("backbone: %s (TFLite, frozen), features %d\n", p->tflite,
               j->fshape.c * j->fshape.h * j->fshape.w);
    } else {
        j->pre = kn_img_preproc_torchvision();
        if (p->image_size > 0)
            j->pre.h = j->pre.w = p->image_size;
        j->full = kn_nn_graph_new();
        if (!j->full)
            return kn_err_set(e, KN_NOMEM, "out of memory");
        if ((rc = kn_nn_build_arch(j->full, p->arch, j->pre.h, j->pre.w, &head, e)))
            return rc;
        if ((rc = load_backbone(j, e)))
            return rc;
        /* every layer trainable: no frozen prefix, the trainer takes the
         * image batch itself */
        if (p->finetune == KN_TRAIN_FINETUNE_ALL)
            rc = kn_nn_graph_split(j->full, 0, NULL, &j->tail, e);
        else if (!(rc = kn_nn_graph_stage_cut(j->full, p->arch, p->finetune, &cut, e)))
            rc = kn_nn_graph_split(j->full, cut, &j->prefix, &j->tail, e);
        if (rc)
            return rc;
        j->fshape = j->prefix ? kn_nn_graph_output_shape(j->prefix)
                              : kn_nn_graph_input_shape(j->full);
    }
    if (j->prefix && (rc = kn_nn_graph_optimize_inplace(j->prefix, e)))
        return rc;
    j->fdim = j->fshape.c * j->fshape.h * j->fshape.w;

    if (j->prefix) {
        kn_nn_exec_params xp = kn_nn_exec_default_params();
        xp.max_batch = p->batch;
        xp.threads = p->threads;
        if ((rc = kn_nn_exec_new(j->prefix, &xp, &j->px, e)))
            return rc;
    }
    kn_nn_train_params tp = kn_nn_train_default_params();
    tp.max_batch = p->batch;
    tp.seed = p->seed;
    if ((rc = kn_nn_trainer_new(j->tail, &tp, &j->tr, e)))
        return rc;
    int trained = 0;
    for (int i = 0; i < kn_nn_graph_param_count(j->tail); i++)
        trained += kn_nn_trainer_grad(j->tr, i) != NULL;
    if (p->finetune != 0)
        printf("trainable: %s from a %dx%dx%d input", p->finetune == KN_TRAIN_FINETUNE_ALL
                                                          ? "the whole network"
                                                          : "the last stages and the head",
               j->fshape.c, j->fshape.h, j->fshape.w);
    else
        printf("head: %d", j->fdim);
    for (int i = 0; i < head.n_hidden; i++)
        printf(" -> %d (relu%s)", head.hidden[i], head.dropout > 0 ? ", dropout" : "");
    printf(" -> %d classes; %d trainable tensors\n", j->classes, trained);
    if (j->size > 1) {
        for (int i = 0; i < kn_nn_graph_param_count(j->tail); i++)
            j->gbuf_n += kn_nn_graph_param(j->tail, i)->numel;
        if (!(j->gbuf = malloc((j->gbuf_n + 1) * sizeof(float))))
            return kn_err_set(e, KN_NOMEM, "out of memory for the gradient buffer");
    }
    return kn_opt_new(&p->opt, j->tail, j->tr, &j->opt, e);
}

/* Key of the backbone: what determines its features. */
static kn_status backbone_key(job *j, kn_err *e)
{
    const kn_train_params *p = j->p;
    uint8_t h[32] = {0};
    kn_status rc = KN_OK;
    const char *file = p->tflite ? p->tflite : p->weights;
    if (file && (rc = kn__sha256_file(file, h, e)))
        return rc;
    char desc[512];
    snprintf(desc, sizeof desc, "%s|%s|seed=%llu|cut=%dx%dx%d|pre=%d,%d,%d,%g,%g,%g,%g,%g,%g|%.0s",
             p->tflite ? "tflite" : p->arch, file ? "" : "random",
             file ? 0ull : (unsigned long long)p->seed, j->fshape.c, j->fshape.h, j->fshape.w,
             j->pre.h, j->pre.w, (int)j->pre.norm, j->pre.mean[0], j->pre.mean[1],
             j->pre.mean[2], j->pre.std[0], j->pre.std[1], j->pre.std[2], "");
    uint8_t buf[32 + sizeof desc];
    memcpy(buf, h, 32);
    memcpy(buf + 32, desc, strlen(desc));
    uint8_t key[32];
    kn_sha256(buf, 32 + strlen(desc), key);
    kn_hex(key, 32, j->key_hex);
    return KN_OK;
}

/* Features of every image of every split, from the cache or the prefix.
 *
 * Data parallel: rank 0 alone reads and writes the cache (so one job never
 * has two writers; parallel jobs are kept apart by the cache's flock) and
 * decides which images miss; the misses are dealt to the ranks one batch at
 * a time, the computed rows are summed onto rank 0 (every other rank's row
 * is zero), and rank 0 broadcasts the finished feature set. */
static kn_status compute_features(job *j, kn_train_result *r, kn_err *e)
{
    const kn_train_params *p = j->p;
    kn_fcache *c = NULL;
    kn_status rc = backbone_key(j, e);
    if (rc || (j->rank == 0 && (rc = kn__fcache_open(p->cache_dir, j->key_hex, j->fdim, &c, e))))
        goto out;
    uint64_t t0 = kn_now_ns();
    kn_img_decode_params dp = kn_img_decode_default_params();
    size_t per_in = (size_t)3 * j->pre.h * j->pre.w;
    for (int s = 0; s < KN_SPLIT_COUNT; s++) {
        int n = j->ds->count[s];
        feats *f = &j->f[s];
        f->dim = j->fdim;
        f->x = calloc(((size_t)n + 1) * (size_t)j->fdim, sizeof(float));
        f->y = malloc(((size_t)n + 1) * sizeof(int));
        uint8_t(*keys)[32] = malloc(((size_t)n + 1) * 32);
        int *miss = malloc(((size_t)n + 1) * sizeof(int));
        int *ok = malloc(((size_t)n + 1) * sizeof(int));
        char(*why)[KN_ERR_MSG_MAX] = calloc((size_t)p->batch, sizeof *why);
        if (!f->x || !f->y || !keys || !miss || !ok || !why) {
            free(keys);
            free(miss);
            free(ok);
            free(why);
            rc = kn_err_set(e, KN_NOMEM, "out of memory for %d features", n);
            goto out;
        }
        const kn_ds_item *items = j->ds->items[s];
        for (int i = 0; i < n; i++)
            ok[i] = 1;
        int nmiss = 0;
        if (j->rank == 0) {
#pragma omp parallel for schedule(dynamic, 16)
            for (int i = 0; i < n; i++)
                ok[i] = kn__sha256_file(items[i].path, keys[i], NULL) == KN_OK;
            for (int i = 0; i < n; i++) {
                const float *v = ok[i] ? kn__fcache_get(c, keys[i]) : NULL;
                if (v) {
                    memcpy(f->x + (size_t)i * j->fdim, v, (size_t)j->fdim * sizeof(float));
                    r->cache_hits++;
                } else {
                    miss[nmiss++] = i;
                }
            }
        }
        kn__dist_bcast(&nmiss, sizeof nmiss);
        kn__dist_bcast(miss, (size_t)nmiss * sizeof(int));
        for (int b = j->rank * p->batch; b < nmiss; b += p->batch * j->size) {
            int cnt = nmiss - b < p->batch ? nmiss - b : p->batch;
            int good[cnt > 0 ? cnt : 1];
#pragma omp parallel for schedule(dynamic, 1)
            for (int k = 0; k < cnt; k++) {
                kn_err ie = {0};
                kn_img im = {0};
                good[k] = kn_img_load(items[miss[b + k]].path, &dp, &im, &ie) == KN_OK &&
                          kn_img_preprocess(&im, &j->pre, j->in + per_in * (size_t)k, &ie) == KN_OK;
                if (!good[k])
                    snprintf(why[k], sizeof why[k], "%s", ie.msg);
                kn_img_deinit(&im);
            }
            if ((rc = kn_nn_exec_run(j->px, j->in, cnt, j->fx, e)))
                break;
            for (int k = 0; k < cnt; k++) {
                int i = miss[b + k];
                if (!good[k]) {
                    ok[i] = 0;
                    kn_log(KN_LOG_WARN, "skipping %s", why[k]);
                    continue;
                }
                memcpy(f->x + (size_t)i * j->fdim, j->fx + (size_t)k * j->fdim,
                       (size_t)j->fdim * sizeof(float));
            }
        }
        if (!rc) {
            /* rows a rank did not compute are zero there */
            kn__dist_reduce_sum_f(f->x, (size_t)n * (size_t)j->fdim);
            kn__dist_reduce_min_i(ok, n);
        }
        int m = 0;
        if (!rc && j->rank == 0) {
            for (int k = 0; k < nmiss && !rc; k++) {
                int i = miss[k];
                if (!ok[i]) {
                    r->skipped_images++;
                    continue;
                }
                if (kn__fcache_put(c, keys[i], f->x + (size_t)i * j->fdim))
                    rc = kn_err_set(e, KN_NOMEM, "feature cache: out of memory");
                r->cache_misses++;
            }
            /* compact: drop unreadable images */
            for (int i = 0; i < n && !rc; i++) {
                if (!ok[i])
                    continue;
                if (m != i)
                    memmove(f->x + (size_t)m * j->fdim, f->x + (size_t)i * j->fdim,
                            (size_t)j->fdim * sizeof(float));
                f->y[m++] = items[i].label;
            }
        }
        free(why);
        free(ok);
        free(keys);
        free(miss);
        if (rc)
            goto out;
        kn__dist_bcast(&m, sizeof m);
        kn__dist_bcast(f->x, (size_t)m * (size_t)j->fdim * sizeof(float));
        kn__dist_bcast(f->y, (size_t)m * sizeof(int));
        f->n = m;
    }
    printf("features: %d from cache, %d computed, %.1f s\n", r->cache_hits, r->cache_misses,
           (kn_now_ns() - t0) / 1e9);
    if (j->rank == 0)
        rc = kn__fcache_flush(c, e);
out:
    kn__fcache_free(c);
    return rc;
}

/* Every class of the training split must keep at least one image. */
static kn_status check_classes(job *j, kn_err *e)
{
    int *count = calloc((size_t)j->classes, sizeof(int));
    if (!count)
        return kn_err_set(e, KN_NOMEM, "out of memory");
    for (int i = 0; i < j->f[KN_SPLIT_TRAIN].n; i++)
        count[j->f[KN_SPLIT_TRAIN].y[i]]++;
    kn_status rc = KN_OK;
    for (int c = 0; c < j->classes && !rc; c++)
        if (count[c] == 0)
            rc = kn_err_set(e, KN_INVALID, "class '%s' has no readable training image",
                            j->ds->class_dirs[c]);
    free(count);
    return rc;
}

static void shuffle(int *order, int n, uint64_t seed, int epoch)
{
    kn_rng r;
    kn_rng_seed(&r, seed * 1000003ull + (uint64_t)epoch + 1);
    for (int i = 0; i < n; i++)
        order[i] = i;
    for (int i = n - 1; i > 0; i--) {
        int k = (int)(kn_rng_next(&r) % (uint64_t)(i + 1));
        int t = order[i];
        order[i] = order[k];
        order[k] = t;
    }
}

/* The part [off, off + len) of a global batch of cnt samples that this rank
 * takes: shards as even as possible, the first cnt % size one larger. */
static void shard(const job *j, int cnt, int *off, int *len)
{
    int base = cnt / j->size, rem = cnt % j->size;
    *off = j->rank * base + (j->rank < rem ? j->rank : rem);
    *len = base + (j->rank < rem ? 1 : 0);
}

/* After each rank's backward on its shard of len of the global cnt: each
 * rank's gradient is that of the mean loss over its shard, so weighted by
 * len / cnt and summed it is the gradient of the mean loss over the global
 * batch, on every rank alike. Batch-norm running statistics (each rank saw
 * its own shard's batch statistics) are averaged so they stay identical. */
static void allreduce_grads(job *j, int len, int cnt)
{
    if (j->size < 2)
        return;
    float scale = (float)len / (float)cnt;
    size_t o = 0;
    int np = kn_nn_graph_param_count(j->tail);
    for (int i = 0; i < np; i++) {
        const kn_nn_param *pa = kn_nn_graph_param(j->tail, i);
        const float *g = kn_nn_trainer_grad(j->tr, i);
        if (g) {
            for (size_t k = 0; k < pa->numel; k++)
                j->gbuf[o + k] = len > 0 ? g[k] * scale : 0.0f;
            o += pa->numel;
        } else if (strstr(pa->name, ".running_")) {
            memcpy(j->gbuf + o, pa->data, pa->numel * sizeof(float));
            o += pa->numel;
        }
    }
    kn__dist_sum_f(j->gbuf, o);
    o = 0;
    for (int i = 0; i < np; i++) {
        kn_nn_param *pa = kn_nn_graph_param(j->tail, i);
        float *g = kn_nn_trainer_grad(j->tr, i);
        if (g) {
            memcpy(g, j->gbuf + o, pa->numel * sizeof(float));
            o += pa->numel;
        } else if (strstr(pa->name, ".running_")) {
            for (size_t k = 0; k < pa->numel; k++)
                pa->data[k] = j->gbuf[o + k] / (float)j->size;
            o += pa->numel;
        }
    }
}

/* One step's loss and correct count summed over the ranks; the step's
 * training loss goes to the history. */
static void step_totals(job *j, bool train, float l, int len, int cnt, int c, double *total,
                        int *correct)
{
    double lc[2] = {(double)l * len, c};
    kn__dist_sum_d(lc, 2);
    if (train)
        json_array_append_new(j->step_loss, json_real(lc[0] / cnt));
    *total += lc[0];
    *correct += (int)lc[1];
}

static void progress(const kn_train_params *p, int epoch, int step, int steps, double ips,
                     double eta)
{
    if (!p->progress)
        return;
    int width = 24, done = steps ? step * width / steps : width;
    printf("\r  epoch %d/%d [", epoch, p->epochs);
    for (int i = 0; i < width; i++)
        putchar(i < done ? '=' : i == done ? '>' : ' ');
    printf("] %d/%d  %.0f img/s  ETA %.0fs   ", step, steps, ips, eta);
    fflush(stdout);
}

/* One pass over a split of cached features: training (update) or eval. */
static kn_status run_features(job *j, kn_split s, bool train, int epoch, float *loss,
                              float *acc, int *steps_left, kn_err *e)
{
    const kn_train_params *p = j->p;
    feats *f = &j->f[s];
    *loss = 0;
    *acc = 0;
    if (f->n == 0)
        return KN_OK;
    int *order = malloc((size_t)f->n * sizeof(int));
    if (!order)
        return kn_err_set(e, KN_NOMEM, "out of memory");
    if (train)
        shuffle(order, f->n, p->seed, epoch);
    else
        for (int i = 0; i < f->n; i++)
            order[i] = i;
    double total = 0;
    int correct = 0, seen = 0, steps = (f->n + p->batch - 1) / p->batch;
    uint64_t t0 = kn_now_ns();
    kn_status rc = KN_OK;
    for (int b = 0, step = 0; b < f->n; b += p->batch, step++) {
        if (train && steps_left && *steps_left == 0)
            break;
        int cnt = f->n - b < p->batch ? f->n - b : p->batch, off, len;
        shard(j, cnt, &off, &len);
        for (int k = 0; k < len; k++) {
            memcpy(j->fx + (size_t)k * f->dim, f->x + (size_t)order[b + off + k] * f->dim,
                   (size_t)f->dim * sizeof(float));
            j->labels[k] = f->y[order[b + off + k]];
        }
        float l = 0;
        int c = 0;
        if (len > 0 &&
            ((rc = kn_nn_trainer_forward(j->tr, j->fx, len, train, j->out, e)) ||
             (rc = kn_train_cross_entropy(j->out, j->labels, len, j->classes, &l,
                                          train ? j->dout : NULL, &c, e))))
            break;
        if (train) {
            if (len > 0 && (rc = kn_nn_trainer_backward(j->tr, j->dout, NULL, e)))
                break;
            allreduce_grads(j, len, cnt);
            kn_opt_step(j->opt);
            if (steps_left && *steps_left > 0)
                (*steps_left)--;
            double dt = (kn_now_ns() - t0) / 1e9, ips = (seen + cnt) / (dt > 0 ? dt : 1e-9);
            progress(p, epoch + 1, step + 1, steps, ips, (f->n - seen - cnt) / (ips > 0 ? ips : 1));
        }
        step_totals(j, train, l, len, cnt, c, &total, &correct);
        seen += cnt;
    }
    free(order);
    if (seen) {
        *loss = (float)(total / seen);
        *acc = (float)correct / (float)seen;
    }
    return rc;
}

/* One pass decoding images through the loader and the prefix each step
 * (augmentation or fine-tuning). */
static kn_status run_images(job *j, kn_split s, bool train, int epoch, float *loss, float *acc,
                            int *steps_left, kn_train_result *r, kn_err *e)
{
    const kn_train_params *p = j->p;
    *loss = 0;
    *acc = 0;
    if (j->ds->count[s] == 0)
        return KN_OK;
    kn_loader_params lp = kn_loader_default_params();
    lp.batch = p->batch;
    lp.shuffle = train;
    lp.seed = p->seed;
    lp.augment = train ? p->augment : KN_AUG_NONE;
    lp.pre = j->pre;
    lp.threads = p->threads;
    kn_loader *ld = NULL;
    kn_status rc = kn_loader_new(j->ds, s, &lp, &ld, e);
    if (rc)
        return rc;
    kn_loader_start(ld, epoch);
    size_t per_in = (size_t)3 * j->pre.h * j->pre.w;
    double total = 0;
    int correct = 0, seen = 0, n, step = 0;
    int steps = (j->ds->count[s] + p->batch - 1) / p->batch;
    uint64_t t0 = kn_now_ns();
    for (;;) {
        if (train && steps_left && *steps_left == 0)
            break;
        if ((rc = kn_loader_next(ld, j->in, j->labels, NULL, &n, e)) || n == 0)
            break;
        /* every rank loads the whole global batch (same seed, same order
         * and augmentation) and runs its shard of it */
        int off, len;
        shard(j, n, &off, &len);
        const float *in = j->in + (size_t)off * per_in;
        float l = 0;
        int c = 0;
        /* without a frozen prefix the trainer takes the images */
        if (len > 0 &&
            ((j->px && (rc = kn_nn_exec_run(j->px, in, len, j->fx, e))) ||
             (rc = kn_nn_trainer_forward(j->tr, j->px ? j->fx : in, len, train, j->out, e)) ||
             (rc = kn_train_cross_entropy(j->out, j->labels + off, len, j->classes, &l,
                                          train ? j->dout : NULL, &c, e))))
            break;
        if (train) {
            if (len > 0 && (rc = kn_nn_trainer_backward(j->tr, j->dout, NULL, e)))
                break;
            allreduce_grads(j, len, n);
            kn_opt_step(j->opt);
            if (steps_left && *steps_left > 0)
                (*steps_left)--;
            double dt = (kn_now_ns() - t0) / 1e9, ips = (seen + n) / (dt > 0 ? dt : 1e-9);
            progress(p, epoch + 1, ++step, steps, ips,
                     (j->ds->count[s] - seen - n) / (ips > 0 ? ips : 1));
        }
        step_totals(j, train, l, len, n, c, &total, &correct);
        seen += n;
    }
    if (train && r)
        r->skipped_images = kn_loader_skipped(ld) > r->skipped_images ? kn_loader_skipped(ld)
                                                                       : r->skipped_images;
    kn_loader_free(ld);
    if (seen) {
        *loss = (float)(total / seen);
        *acc = (float)correct / (float)seen;
    }
    return rc;
}

static kn_status run_split(job *j, kn_split s, bool train, int epoch, float *loss, float *acc,
                           int *steps_left, kn_train_result *r, kn_err *e)
{
    return j->use_features ? run_features(j, s, train, epoch, loss, acc, steps_left, e)
                           : run_images(j, s, train, epoch, loss, acc, steps_left, r, e);
}

static float **snapshot(kn_nn_graph *g, float **keep)
{
    int np = kn_nn_graph_param_count(g);
    if (!keep) {
        keep = calloc((size_t)np, sizeof *keep);
        for (int i = 0; keep && i < np; i++)
            keep[i] = malloc(kn_nn_graph_param(g, i)->numel * sizeof(float));
    }
    for (int i = 0; keep && i < np; i++)
        if (keep[i])
            memcpy(keep[i], kn_nn_graph_param(g, i)->data,
                   kn_nn_graph_param(g, i)->numel * sizeof(float));
    return keep;
}

static void restore(kn_nn_graph *g, float **keep)
{
    for (int i = 0; keep && i < kn_nn_graph_param_count(g); i++)
        if (keep[i])
            memcpy(kn_nn_graph_param(g, i)->data, keep[i],
                   kn_nn_graph_param(g, i)->numel * sizeof(float));
}

static void free_snapshot(kn_nn_graph *g, float **keep)
{
    for (int i = 0; keep && i < kn_nn_graph_param_count(g); i++)
        free(keep[i]);
    free(keep);
}

/* ---- output ------------------------------------------------------------- */

static kn_status write_json(const char *path, json_t *root, kn_err *e)
{
    char *text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (!text)
        return kn_err_set(e, KN_NOMEM, "out of memory writing %s", path);
    kn_status rc = kn_file_write(path, text, strlen(text), e);
    free(text);
    return rc;
}

static kn_status copy_file(const char *from, const char *to, kn_err *e)
{
    kn_buf b;
    kn_buf_init(&b, (size_t)4 << 30);
    kn_status rc = kn_file_read(from, &b, e);
    if (!rc)
        rc = kn_file_write(to, b.data, b.len, e);
    kn_buf_deinit(&b);
    return rc;
}

static kn_status save_package(job *j, kn_err *e)
{
    const kn_train_params *p = j->p;
    char path[4096];
    kn_status rc;
    if ((rc = kn_mkdirs(p->model_dir, 0755, e)))
        return kn_err_prefix(e, "model directory");
    if (access(p->model_dir, W_OK) != 0)
        return kn_err_set(e, KN_IO, "%s: the model directory is not writable", p->model_dir);
    kn_model meta;
    memset(&meta, 0, sizeof meta);
    meta.head = p->head;
    meta.head.classes = j->classes;
    meta.preproc = j->pre;
    meta.n_classes = j->classes;
    meta.classes = j->ds->class_names;
    if (p->tflite) {
        /* backbone file as is, the head in head.safetensors */
        snprintf(path, sizeof path, "%s/model.tflite", p->model_dir);
        if ((rc = copy_file(p->tflite, path, e)))
            return rc;
        snprintf(path, sizeof path, "%s/head.safetensors", p->model_dir);
        if ((rc = kn_nn_graph_save_st(j->tail, path, e)))
            return rc;
        json_t *root = json_object(), *classes = json_array(), *hidden = json_array();
        for (int i = 0; i < j->classes; i++)
            json_array_append_new(classes, json_string(j->ds->class_names[i]));
        for (int i = 0; i < p->head.n_hidden; i++)
            json_array_append_new(hidden, json_integer(p->head.hidden[i]));
        json_object_set_new(root, "format", json_string("kennel-model"));
        json_object_set_new(root, "version", json_integer(1));
        json_object_set_new(root, "arch", json_string("tflite"));
        json_object_set_new(root, "weights", json_string("model.tflite"));
        json_object_set_new(root, "head", json_pack("{s:o,s:f}", "hidden", hidden, "dropout",
                                                    (double)p->head.dropout));
        json_object_set_new(root, "head_weights", json_string("head.safetensors"));
        json_object_set_new(root, "num_classes", json_integer(j->classes));
        json_object_set_new(root, "classes", classes);
        json_object_set_new(root, "output", json_string("logits"));
        snprintf(path, sizeof path, "%s/model.json", p->model_dir);
        rc = write_json(path, root, e);
        json_decref(root);
        if (rc)
            return rc;
    } else {
        /* trained tail parameters back into the full graph, by name */
        for (int i = 0; i < kn_nn_graph_param_count(j->tail); i++) {
            const kn_nn_param *src = kn_nn_graph_param_c(j->tail, i);
            int k = kn_nn_graph_param_find(j->full, src->name);
            if (k >= 0)
                memcpy(kn_nn_graph_param(j->full, k)->data, src->data,
                       src->numel * sizeof(float));
        }
        snprintf(meta.arch, sizeof meta.arch, "%s", p->arch);
        if ((rc = kn_model_save_dir(&meta, j->full, p->model_dir, e)))
            return rc;
    }
    snprintf(path, sizeof path, "%s/metrics.json", p->model_dir);
    if ((rc = write_json(path, j->history, e)))
        return rc;
    snprintf(path, sizeof path, "%s/model.tar.gz", p->model_dir);
    return kn_model_pack(p->model_dir, path, e);
}

kn_status kn_train_run(const kn_train_params *p, kn_train_result *r, kn_err *e)
{
    job j;
    memset(&j, 0, sizeof j);
    memset(r, 0, sizeof *r);
    j.p = p;
    j.size = 1;
    uint64_t t_start = kn_now_ns();
    kn_status rc = KN_OK;
    float **best = NULL;
    if (p->mpi && (rc = kn__dist_init(&j.rank, &j.size, e)))
        return rc;
    if (!p->data || !p->model_dir)
        return kn_err_set(e, KN_INVALID, "training needs a data directory and a model directory");
    if (p->epochs < 1 || p->epochs > 100000)
        return kn_err_set(e, KN_INVALID, "epochs %d is out of range [1, 100000]", p->epochs);
    if (p->batch < 1 || p->batch > 4096)
        return kn_err_set(e, KN_INVALID, "batch size %d is out of range [1, 4096]", p->batch);
    if (p->finetune < 0 && p->finetune != KN_TRAIN_FINETUNE_ALL)
        return kn_err_set(e, KN_INVALID, "finetune %d is negative", p->finetune);
    if (p->image_size != 0 && (p->image_size < 32 || p->image_size > 1024))
        return kn_err_set(e, KN_INVALID, "image size %d is out of range [32, 1024]",
                          p->image_size);

    kn_dataset_params dp = kn_dataset_default_params();
    dp.seed = p->seed;
    for (int s = 0; s < KN_SPLIT_COUNT; s++)
        if (p->split[0] + p->split[1] + p->split[2] > 0)
            dp.ratio[s] = p->split[s];
    if ((rc = kn_dataset_open(p->data, &dp, &j.ds, e)))
        goto out;
    j.classes = j.ds->n_classes;
    printf("data: %s: %d classes; train %d, valid %d, test %d images", p->data, j.classes,
           j.ds->count[0], j.ds->count[1], j.ds->count[2]);
    if (j.ds->generated_split)
        printf(" (split %.2f/%.2f/%.2f by seed %llu)", j.ds->ratio[0], j.ds->ratio[1],
               j.ds->ratio[2], (unsigned long long)p->seed);
    printf("\n");
    if (j.size > 1) {
        int lo = p->batch / j.size;
        printf("data parallel: %d ranks, global batch %d (%d to %d per rank)\n", j.size,
               p->batch, lo, lo + (p->batch % j.size ? 1 : 0));
    }
    if ((rc = build_model(&j, e)))
        goto out;
    size_t per_in = (size_t)3 * j.pre.h * j.pre.w;
    j.in = malloc(per_in * (size_t)p->batch * sizeof(float));
    j.fx = malloc((size_t)(j.px ? j.fdim : 1) * (size_t)p->batch * sizeof(float));
    j.out = malloc((size_t)j.classes * (size_t)p->batch * sizeof(float));
    j.dout = malloc((size_t)j.classes * (size_t)p->batch * sizeof(float));
    j.labels = malloc((size_t)p->batch * sizeof(int));
    j.history = json_object();
    json_t *epochs = json_array();
    json_object_set_new(j.history, "epochs", epochs);
    j.step_loss = json_array();
    json_object_set_new(j.history, "step_loss", j.step_loss);
    if (j.size > 1)
        json_object_set_new(j.history, "ranks", json_integer(j.size));
    if (!j.in || !j.fx || !j.out || !j.dout || !j.labels) {
        rc = kn_err_set(e, KN_NOMEM, "out of memory for batch %d", p->batch);
        goto out;
    }
    j.use_features = p->finetune == 0 && p->augment == KN_AUG_NONE;
    if (j.use_features) {
        if ((rc = compute_features(&j, r, e)) || (rc = check_classes(&j, e)))
            goto out;
    }
    bool have_valid = j.ds->count[KN_SPLIT_VALID] > 0;
    if (!have_valid && p->patience >= 0)
        printf("no validation split: early stopping is off\n");
    float best_loss = INFINITY;
    int bad = 0, steps_left = p->max_steps > 0 ? p->max_steps : -1;
    for (int ep = 0; ep < p->epochs; ep++) {
        uint64_t t0 = kn_now_ns();
        float tl, ta, vl = 0, va = 0;
        if ((rc = run_split(&j, KN_SPLIT_TRAIN, true, ep, &tl, &ta, &steps_left, r, e)))
            goto out;
        if (have_valid &&
            (rc = run_split(&j, KN_SPLIT_VALID, false, ep, &vl, &va, NULL, r, e)))
            goto out;
        double dt = (kn_now_ns() - t0) / 1e9;
        if (p->progress)
            printf("\r%*s\r", 79, "");
        printf("Epoch %d/%d: train loss %.4f accuracy %.4f", ep + 1, p->epochs, tl, ta);
        if (have_valid)
            printf(" | valid loss %.4f accuracy %.4f", vl, va);
        printf(" | %.2f s\n", dt);
        fflush(stdout);
        json_t *row = json_pack("{s:i,s:f,s:f,s:f}", "epoch", ep + 1, "train_loss", (double)tl,
                                "train_accuracy", (double)ta, "seconds", dt);
        if (have_valid) {
            json_object_set_new(row, "valid_loss", json_real(vl));
            json_object_set_new(row, "valid_accuracy", json_real(va));
        }
        json_array_append_new(epochs, row);
        r->epochs_run = ep + 1;
        if (have_valid) {
            if (vl < best_loss) {
                best_loss = vl;
                r->best_epoch = ep + 1;
                bad = 0;
                best = snapshot(j.tail, best);
            } else if (p->patience >= 0 && ++bad > p->patience) {
                printf("early stopping: valid loss has not improved for %d epoch%s; keeping "
                       "epoch %d\n", bad, bad == 1 ? "" : "s", r->best_epoch);
                break;
            }
        } else {
            r->best_epoch = ep + 1;
        }
        if (steps_left == 0)
            break;
    }
    if (best)
        restore(j.tail, best);
    float tl = 0, ta = 0;
    if ((rc = run_split(&j, KN_SPLIT_TEST, false, 0, &tl, &ta, NULL, r, e)))
        goto out;
    r->test_loss = tl;
    r->test_accuracy = ta;
    printf("Testing Loss: %.4f\n", tl);
    printf("Testing Accuracy: %.4f\n", ta);
    json_object_set_new(j.history, "best_epoch", json_integer(r->best_epoch));
    json_object_set_new(j.history, "test_loss", json_real(tl));
    json_object_set_new(j.history, "test_accuracy", json_real(ta));
    json_object_set_new(j.history, "skipped_images", json_integer(r->skipped_images));
    if (j.size > 1) {
        /* every rank applied the same steps: their weights must agree bit
         * for bit, or the data-parallel invariant is broken */
        uint64_t h = 1469598103934665603ull;
        for (int i = 0; i < kn_nn_graph_param_count(j.tail); i++) {
            const kn_nn_param *pa = kn_nn_graph_param_c(j.tail, i);
            const uint8_t *b = (const uint8_t *)pa->data;
            for (size_t k = 0; k < pa->numel * sizeof(float); k++)
                h = (h ^ b[k]) * 1099511628211ull;
        }
        if (!kn__dist_agree(h)) {
            rc = kn_err_set(e, KN_INTERNAL, "data parallel: the ranks' weights differ after "
                            "training (rank %d's hash %016llx)", j.rank, (unsigned long long)h);
            goto out;
        }
    }
    if (j.rank == 0 && (rc = save_package(&j, e)))
        goto out;
    r->seconds = (kn_now_ns() - t_start) / 1e9;
    printf("model: %s/model.tar.gz (%d classes, %.1f s)\n", p->model_dir, j.classes, r->seconds);
out:
    free_snapshot(j.tail, best);
    job_free(&j);
    return rc;
}
