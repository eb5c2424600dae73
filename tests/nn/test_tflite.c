/* TFLite import of the real models in ../shared: shapes, operator counts and
 * info fields of the float and the two uint8 MobileNets, truncated and
 * corrupted copies of a real file, and accuracy of the float model on real
 * photos (burger -> cheeseburger with p >= 0.9, the dog photos on dog breeds)
 * with the reference and oneDNN backends agreeing. Skips (77) when
 * ../shared is absent. Tiny hand-built models and malformed-file faults are
 * in test_tflite_format.c.
 *
 * Helper modes (the first two used by test_tflite_quant_parity.py):
 *   nn_test_tflite --dump-rgb224 IMAGE OUT.bin   kennel's 224x224 RGB bytes
 *   nn_test_tflite --run MODEL IMAGE OUT.bin [--backend ref|dnnl]
 *       runs the imported model on IMAGE, writes the float outputs and prints
 *       the top-5; a quantized input is fed as in_scale * (pixel - in_zero),
 *       a float one as (pixel - 127.5) / 127.5 (kn_img_preproc_tf).
 *   nn_test_tflite --import MODEL      imports and prints the info or error
 */
#include "kennel/img.h"
#include "kennel/nn.h"
#include "kn_test.h"

#include <dirent.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- small helpers ------------------------------------------------------ */

static bool load_file(const char *path, kn_buf *b)
{
    kn_err e;
    kn_buf_init(b, (size_t)64 << 20);
    if (kn_file_read(path, b, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return false;
    }
    return true;
}

static int count_op(const kn_nn_graph *g, kn_nn_op op)
{
    int n = 0;
    for (int i = 0; i < kn_nn_graph_count(g); i++)
        n += kn_nn_graph_node(g, i)->op == op;
    return n;
}

static int count_depthwise(const kn_nn_graph *g)
{
    int n = 0;
    for (int i = 1; i < kn_nn_graph_count(g); i++) {
        const kn_nn_node *nd = kn_nn_graph_node(g, i);
        const kn_nn_node *src = kn_nn_graph_node(g, nd->in[0]);
        n += nd->op == KN_OP_CONV && nd->groups > 1 && nd->groups == src->shape.c;
    }
    return n;
}

/* Imports data; returns the status and leaves the message in e. */
static kn_status import(const uint8_t *data, size_t len, kn_tflite_info *info, kn_err *e,
                        kn_nn_graph **out)
{
    kn_nn_graph *g = kn_nn_graph_new();
    kn_err_clear(e);
    kn_status rc = kn_tflite_import(g, data, len, info, e);
    if (out && rc == KN_OK)
        *out = g;
    else
        kn_nn_graph_free(g);
    return rc;
}

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void top5(const float *p, int n, int *idx)
{
    for (int k = 0; k < 5; k++) {
        idx[k] = -1;
        for (int i = 0; i < n; i++) {
            bool used = false;
            for (int j = 0; j < k; j++)
                used |= idx[j] == i;
            if (!used && (idx[k] < 0 || p[i] > p[idx[k]]))
                idx[k] = i;
        }
    }
}

/* ---- real models -------------------------------------------------------- */

static const char *shared_model(const char *name, char *buf, size_t n)
{
    char rel[256];
    snprintf(rel, sizeof rel, "data/models/%s", name);
    return kn_test_shared(rel, buf, n);
}

typedef struct model_expect {
    const char *file;
    int convs, depthwise, adds, avgpools, nodes;
    bool quantized;
    float in_scale, in_zero;
    size_t params;
} model_expect;

static void check_real(const model_expect *x, uint8_t **keep, size_t *keep_len)
{
    char path[512];
    kn_buf b;
    KN_REQUIRE(shared_model(x->file, path, sizeof path));
    KN_REQUIRE(load_file(path, &b));
    kn_tflite_info info;
    kn_err e;
    kn_nn_graph *g = NULL;
    kn_status rc = import(b.data, b.len, &info, &e, &g);
    if (rc)
        fprintf(stderr, "%s: %s\n", x->file, e.msg);
    KN_CHECK_INT(rc, KN_OK);
    if (rc == KN_OK) {
        printf("  %s: %d nodes, %zu parameters, in %dx%dx%d scale %g zero %g, %d outputs\n",
               x->file, kn_nn_graph_count(g), kn_nn_graph_param_numel(g), info.in_h, info.in_w,
               info.in_c, (double)info.in_scale, (double)info.in_zero, info.out_n);
        KN_CHECK_INT(info.in_h, 224);
        KN_CHECK_INT(info.in_w, 224);
        KN_CHECK_INT(info.in_c, 3);
        KN_CHECK_INT(info.out_n, 1001);
        KN_CHECK(info.has_softmax);
        KN_CHECK_INT(info.quantized, x->quantized);
        KN_CHECK_NEAR(info.in_scale, x->in_scale, 1e-9);
        KN_CHECK_NEAR(info.in_zero, x->in_zero, 0);
        KN_CHECK_INT(kn_nn_graph_count(g), x->nodes);
        KN_CHECK_INT(count_op(g, KN_OP_CONV), x->convs + x->depthwise);
        KN_CHECK_INT(count_depthwise(g), x->depthwise);
        KN_CHECK_INT(count_op(g, KN_OP_ADD), x->adds);
        KN_CHECK_INT(count_op(g, KN_OP_AVGPOOL), x->avgpools);
        KN_CHECK_INT(count_op(g, KN_OP_SOFTMAX), 1);
        KN_CHECK_INT(kn_nn_graph_param_numel(g), x->params);
        kn_nn_shape os = kn_nn_graph_output_shape(g);
        KN_CHECK_INT(os.c, 1001);
        /* the stem: 3x3/2 SAME on 224 pads one pixel, bottom/right */
        const kn_nn_node *stem = kn_nn_graph_node(g, 1);
        KN_CHECK_INT(stem->op, KN_OP_CONV);
        KN_CHECK_INT(stem->win.sh, 2);
        KN_CHECK_INT(stem->win.pt, 0);
        KN_CHECK_INT(stem->win.pb, 1);
        KN_CHECK_INT(stem->shape.h, 112);
        for (int i = 0; i < kn_nn_graph_param_count(g); i++)
            KN_CHECK(kn_nn_graph_param_c(g, i)->loaded);
    }
    kn_nn_graph_free(g);
    if (keep) {
        *keep = kn_buf_take(&b, keep_len);
    }
    kn_buf_deinit(&b);
}

static const model_expect v1_float = {"mobilenet_v1_0.25_224.tflite", 15, 13, 0, 1, 31,
                                      false, 1.0f, 0.0f, 467593};
static const model_expect v1_quant = {"mobilenet_v1_0.25_224_quant.tflite", 15, 13, 0, 1, 31,
                                      true, 0.0078125f, 128.0f, 467593};
static const model_expect v2_quant = {"mobilenet_v2_1.0_224_quant.tflite", 36, 17, 10, 1, 66,
                                      true, 0.0078125f, 128.0f, 3489097};

static void test_real_models(void)
{
    check_real(&v1_float, NULL, NULL);
    check_real(&v1_quant, NULL, NULL);
    check_real(&v2_quant, NULL, NULL);
}

/* Truncations and corrupted headers of a real model. */
static void test_real_malformed(void)
{
    uint8_t *data = NULL;
    size_t len = 0;
    check_real(&v1_quant, &data, &len);
    KN_REQUIRE(data && len > 1000);
    /* Cuts inside the flatbuffer. (This file carries a zip of its labels
     * appended after the flatbuffer, as TFLite metadata does; cutting only
     * into that leaves a model that imports.) */
    size_t cuts[] = {0, 3, 7, 8, 64, 500, len / 3, len / 2, len / 10 * 9};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        uint8_t *copy = malloc(cuts[i] ? cuts[i] : 1);
        memcpy(copy, data, cuts[i]);
        kn_err e;
        kn_status rc = import(copy, cuts[i], NULL, &e, NULL);
        KN_CHECK_INT(rc, KN_BAD_FORMAT);
        KN_CHECK(strncmp(e.msg, "tflite: ", 8) == 0);
        printf("  cut at %zu of %zu: %s\n", cuts[i], len, e.msg);
        free(copy);
    }
    /* The root table's soffset and offsets near the front, corrupted. */
    uint8_t *copy = malloc(len);
    KN_REQUIRE(copy);
    kn_rng r;
    kn_rng_seed(&r, 99);
    int rejected = 0;
    for (int it = 0; it < 200; it++) {
        memcpy(copy, data, len);
        size_t at = (size_t)(kn_rng_next(&r) % 4096);
        put32(copy + (at & ~(size_t)3), (uint32_t)kn_rng_next(&r));
        kn_err e;
        kn_nn_graph *g = NULL;
        kn_status rc = import(copy, len, NULL, &e, &g);
        rejected += rc != KN_OK;
        if (rc)
            KN_CHECK(strncmp(e.msg, "tflite: ", 8) == 0);
        kn_nn_graph_free(g);
    }
    printf("  200 corrupted words in the first 4 KB: %d rejected\n", rejected);
    KN_CHECK(rejected > 0);
    free(copy);
    free(data);
}

/* ---- accuracy on real photos -------------------------------------------- */

typedef struct labels {
    char *text;
    const char *line[1001];
    int n;
} labels;

static bool labels_load(labels *l)
{
    char path[512];
    kn_buf b;
    if (!shared_model("imagenet_labels.txt", path, sizeof path) || !load_file(path, &b))
        return false;
    size_t n;
    l->text = (char *)kn_buf_take(&b, &n);
    l->n = 0;
    for (char *p = l->text; p && *p && l->n < 1001;) {
        l->line[l->n++] = p;
        char *nl = strchr(p, '\n');
        if (nl)
            *nl++ = '\0';
        p = nl;
    }
    return l->n == 1001;
}

/* Classifies one image with the float model; returns top-1 and its p. */
static int classify(kn_nn_exec *x, const kn_img_preproc *pp, const char *path, float *probs)
{
    kn_img im = {0};
    kn_err e;
    float *in = malloc(3 * 224 * 224 * sizeof *in);
    int top = -1;
    if (in && kn_img_load(path, NULL, &im, &e) == KN_OK &&
        kn_img_preprocess(&im, pp, in, &e) == KN_OK && kn_nn_exec_run(x, in, 1, probs, &e) == 0) {
        top = 0;
        for (int i = 1; i < 1001; i++)
            if (probs[i] > probs[top])
                top = i;
    } else {
        fprintf(stderr, "%s: %s\n", path, e.msg);
    }
    kn_img_deinit(&im);
    free(in);
    return top;
}

static void test_float_accuracy(void)
{
    char path[512], dir[512];
    kn_buf b;
    labels lab = {0};
    KN_REQUIRE(shared_model(v1_float.file, path, sizeof path) && load_file(path, &b));
    KN_REQUIRE(labels_load(&lab));
    kn_nn_graph *g = NULL;
    kn_err e;
    kn_tflite_info info;
    kn_status rc = import(b.data, b.len, &info, &e, &g);
    kn_buf_deinit(&b);
    KN_REQUIRE(rc == KN_OK);
    kn_img_preproc pp = kn_img_preproc_tf();
    KN_CHECK_INT(pp.h, info.in_h);

    const char *images[32];
    char names[32][512];
    int n = 0;
    KN_REQUIRE(kn_test_shared("data/images/burger.jpg", names[n], sizeof names[n]));
    images[n] = names[n];
    n++;
    KN_REQUIRE(kn_test_shared("data/images/dogs", dir, sizeof dir));
    DIR *d = opendir(dir);
    struct dirent *de;
    while (d && (de = readdir(d)) && n < 32) {
        if (de->d_name[0] == '.')
            continue;
        snprintf(names[n], sizeof names[n], "%s/%s", dir, de->d_name);
        images[n] = names[n];
        n++;
    }
    if (d)
        closedir(d);
    /* readdir order is arbitrary: sort for a stable listing */
    for (int i = 1; i < n; i++)
        for (int j = i; j > 1 && strcmp(images[j], images[j - 1]) < 0; j--) {
            const char *t = images[j];
            images[j] = images[j - 1];
            images[j - 1] = t;
        }
    KN_CHECK(n >= 5);

    float probs[2][1001];
    kn_nn_exec *x[2] = {NULL, NULL};
    for (int k = 0; k < 2; k++) {
        kn_nn_exec_params p = kn_nn_exec_default_params();
        p.backend = k ? KN_NN_DNNL : KN_NN_REF;
        p.threads = 2;
        rc = kn_nn_exec_new(g, &p, &x[k], &e);
        if (rc)
            fprintf(stderr, "exec: %s\n", e.msg);
        KN_CHECK_INT(rc, KN_OK);
    }
    for (int i = 0; x[0] && x[1] && i < n; i++) {
        int t0 = classify(x[0], &pp, images[i], probs[0]);
        int t1 = classify(x[1], &pp, images[i], probs[1]);
        KN_CHECK(t0 >= 0);
        if (t0 < 0)
            continue;
        KN_CHECK_INT(t0, t1);
        KN_CHECK_NEAR(kn_test_max_abs_diff(probs[0], probs[1], 1001), 0, 1e-4);
        int top[5];
        top5(probs[0], 1001, top);
        const char *base = strrchr(images[i], '/') ? strrchr(images[i], '/') + 1 : images[i];
        printf("  %s:", base);
        for (int k = 0; k < 5; k++)
            printf(" %s%d %s (%.3f)", k ? "| " : "", top[k], lab.line[top[k]],
                   (double)probs[0][top[k]]);
        printf("\n");
        if (i == 0) {
            KN_CHECK_STR(lab.line[t0], "cheeseburger");
            KN_CHECK(probs[0][t0] >= 0.9f);
        } else {
            /* 152 Chihuahua .. 269 Mexican hairless are the dog breeds */
            KN_CHECK(t0 >= 152 && t0 <= 269);
        }
    }
    kn_nn_exec_free(x[0]);
    kn_nn_exec_free(x[1]);
    kn_nn_graph_free(g);
    free(lab.text);
}

/* ---- helper modes for the parity test ----------------------------------- */

static int dump_rgb224(const char *image, const char *out)
{
    kn_img im = {0}, sized = {0};
    kn_err e;
    int rc = 1;
    if (kn_img_load(image, NULL, &im, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        goto out;
    }
    if (kn_img_resize_bilinear(&im, 224, 224, &sized)) {
        fprintf(stderr, "%s: resize failed\n", image);
        goto out;
    }
    if (kn_file_write(out, sized.data, 224 * 224 * 3, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        goto out;
    }
    rc = 0;
out:
    kn_img_deinit(&sized);
    kn_img_deinit(&im);
    return rc;
}

static int run_model(const char *model, const char *image, const char *out, const char *backend)
{
    kn_buf b;
    kn_err e;
    kn_tflite_info info;
    kn_nn_graph *g = kn_nn_graph_new();
    kn_nn_exec *x = NULL;
    kn_img im = {0}, sized = {0};
    float *in = NULL, *res = NULL;
    int rc = 1;
    kn_err_clear(&e);
    kn_buf_init(&b, (size_t)256 << 20);
    kn_nn_exec_params p = kn_nn_exec_default_params();
    if (backend && kn_nn_backend_parse(backend, &p.backend)) {
        fprintf(stderr, "unknown backend %s\n", backend);
        goto out;
    }
    p.threads = 2;
    if (kn_file_read(model, &b, &e) || kn_tflite_import(g, b.data, b.len, &info, &e) ||
        kn_nn_exec_new(g, &p, &x, &e) || kn_img_load(image, NULL, &im, &e))
        goto out;
    size_t plane = (size_t)info.in_h * (size_t)info.in_w;
    in = malloc(plane * 3 * sizeof *in);
    res = malloc((size_t)info.out_n * sizeof *res);
    if (!in || !res || info.in_c != 3)
        goto out;
    if (info.in_scale != 1.0f || info.in_zero != 0.0f) {
        /* a quantized input: the float graph sees scale * (q - zero) */
        if (kn_img_resize_bilinear(&im, info.in_w, info.in_h, &sized))
            goto out;
        for (int c = 0; c < 3; c++)
            for (size_t i = 0; i < plane; i++)
                in[(size_t)c * plane + i] =
                    info.in_scale * ((float)sized.data[3 * i + (size_t)c] - info.in_zero);
    } else {
        kn_img_preproc pp = kn_img_preproc_tf();
        pp.h = info.in_h;
        pp.w = info.in_w;
        if (kn_img_preprocess(&im, &pp, in, &e))
            goto out;
    }
    if (kn_nn_exec_run(x, in, 1, res, &e) ||
        kn_file_write(out, res, (size_t)info.out_n * sizeof *res, &e))
        goto out;
    int top[5];
    top5(res, info.out_n, top);
    for (int k = 0; k < 5; k++)
        printf("%d %.6f\n", top[k], (double)res[top[k]]);
    rc = 0;
out:
    if (rc && e.code)
        fprintf(stderr, "%s\n", e.msg);
    free(in);
    free(res);
    kn_img_deinit(&sized);
    kn_img_deinit(&im);
    kn_nn_exec_free(x);
    kn_nn_graph_free(g);
    kn_buf_deinit(&b);
    return rc;
}

/* Imports one file and prints the info, or the error. */
static int import_only(const char *path)
{
    kn_buf b;
    kn_err e;
    kn_tflite_info info;
    kn_nn_graph *g = NULL;
    if (!load_file(path, &b))
        return 1;
    kn_status rc = import(b.data, b.len, &info, &e, &g);
    if (rc)
        printf("%s: %s\n", kn_status_name(rc), e.msg);
    else
        printf("OK: %d nodes, in %dx%dx%d, %d outputs%s%s\n", kn_nn_graph_count(g), info.in_h,
               info.in_w, info.in_c, info.out_n, info.has_softmax ? ", softmax" : "",
               info.quantized ? ", quantized" : "");
    kn_nn_graph_free(g);
    kn_buf_deinit(&b);
    return rc ? 1 : 0;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--import") == 0)
        return import_only(argv[2]);
    if (argc == 4 && strcmp(argv[1], "--dump-rgb224") == 0)
        return dump_rgb224(argv[2], argv[3]);
    if ((argc == 5 || (argc == 7 && strcmp(argv[5], "--backend") == 0)) &&
        strcmp(argv[1], "--run") == 0)
        return run_model(argv[2], argv[3], argv[4], argc == 7 ? argv[6] : NULL);
    if (argc > 1) {
        fprintf(stderr, "usage: %s [--import MODEL | --dump-rgb224 IMAGE OUT | --run MODEL "
                        "IMAGE OUT [--backend ref|dnnl]]\n", argv[0]);
        return 2;
    }
    char path[512];
    if (!shared_model(v1_float.file, path, sizeof path))
        kn_test_skip("../shared/data/models is absent (set KN_SHARED)");
    KN_RUN(test_real_models);
    KN_RUN(test_real_malformed);
    KN_RUN(test_float_accuracy);
    return kn_test_finish();
}
