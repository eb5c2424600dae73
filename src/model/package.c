/* Model packages: loading a directory, a model.tar.gz, a bare .safetensors
 * (with an architecture) or a .tflite file into a ready-to-run kn_model, and
 * writing package directories. model.json is parsed with jansson and every
 * field is checked; a bad field is named in the error.
 *
 * Loading keeps one copy of the weights: the safetensors file is mapped,
 * converted into the graph's parameters, and unmapped before the graph is
 * optimised in place.
 */
#include "kennel/model.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_JSON_BYTES (64u << 20)
#define MAX_LABELS_BYTES (64u << 20)

kn_model_load_params kn_model_load_default_params(void)
{
    kn_model_load_params p;
    memset(&p, 0, sizeof p);
    p.max_archive_bytes = (size_t)2 << 30;
    return p;
}

void kn_model_free(kn_model *m)
{
    if (!m)
        return;
    kn_nn_graph_free(m->graph);
    kn_labels_free(m->classes, m->n_classes);
    free(m);
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcasecmp(s + a - b, suffix) == 0;
}

void kn_class_display_name(const char *folder, char *out, size_t n)
{
    /* "001.Affenpinscher" -> "Affenpinscher": digits then a dot */
    const char *p = folder;
    while (*p >= '0' && *p <= '9')
        p++;
    if (p != folder && *p == '.' && p[1])
        folder = p + 1;
    snprintf(out, n, "%s", folder);
}

void kn_labels_free(char **names, int n)
{
    if (!names)
        return;
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

kn_status kn_labels_read(const char *path, char ***names, int *n, kn_err *e)
{
    kn_buf b;
    kn_buf_init(&b, MAX_LABELS_BYTES);
    *names = NULL;
    *n = 0;
    kn_status rc = kn_file_read(path, &b, e);
    if (rc)
        return rc;
    int cap = 0, cnt = 0;
    char **v = NULL;
    char *s = (char *)b.data, *end = s + b.len;
    while (s && s < end) {
        char *nl = memchr(s, '\n', (size_t)(end - s));
        size_t len = nl ? (size_t)(nl - s) : (size_t)(end - s);
        if (len && s[len - 1] == '\r')
            len--;
        if (cnt == cap) {
            cap = cap ? cap * 2 : 256;
            char **nv = realloc(v, (size_t)cap * sizeof *nv);
            if (!nv) {
                rc = kn_err_set(e, KN_NOMEM, "%s: out of memory", path);
                goto out;
            }
            v = nv;
        }
        v[cnt] = strndup(s, len);
        if (!v[cnt]) {
            rc = kn_err_set(e, KN_NOMEM, "%s: out of memory", path);
            goto out;
        }
        cnt++;
        s = nl ? nl + 1 : NULL;
    }
    while (cnt > 0 && v[cnt - 1][0] == '\0') /* trailing blank lines */
        free(v[--cnt]);
    if (cnt == 0) {
        rc = kn_err_set(e, KN_BAD_FORMAT, "%s: no labels", path);
        goto out;
    }
out:
    kn_buf_deinit(&b);
    if (rc) {
        kn_labels_free(v, cnt);
        return rc;
    }
    *names = v;
    *n = cnt;
    return KN_OK;
}

static kn_status default_names(kn_model *m, int n, kn_err *e)
{
    m->classes = calloc((size_t)n, sizeof(char *));
    if (!m->classes)
        return kn_err_set(e, KN_NOMEM, "out of memory for %d class names", n);
    m->n_classes = n;
    for (int i = 0; i < n; i++) {
        char buf[32];
        snprintf(buf, sizeof buf, "class_%d", i);
        if (!(m->classes[i] = strdup(buf)))
            return kn_err_set(e, KN_NOMEM, "out of memory");
    }
    return KN_OK;
}

/* Names from a labels file, checked against the model's output count. A
 * TFLite ImageNet model with 1001 outputs takes 1001 labels. */
static kn_status names_from_labels(kn_model *m, const char *labels, int outputs, kn_err *e)
{
    char **names;
    int n;
    kn_status rc = kn_labels_read(labels, &names, &n, e);
    if (rc)
        return rc;
    if (n != outputs) {
        kn_labels_free(names, n);
        return kn_err_set(e, KN_SHAPE, "%s: %d labels for a model with %d outputs", labels, n,
                          outputs);
    }
    m->classes = names;
    m->n_classes = n;
    return KN_OK;
}

/* ---- TFLite --------------------------------------------------------------- */

static kn_status load_tflite(kn_model *m, const char *path, const char *labels, kn_err *e)
{
    kn_map map;
    kn_status rc = kn_map_open(&map, path, e);
    if (rc)
        return rc;
    kn_tflite_info info;
    memset(&info, 0, sizeof info);
    m->graph = kn_nn_graph_new();
    if (!m->graph) {
        kn_map_close(&map);
        return kn_err_set(e, KN_NOMEM, "out of memory");
    }
    rc = kn_tflite_import(m->graph, map.data, map.len, &info, e);
    kn_map_close(&map);
    if (rc)
        return kn_err_prefix(e, "%s", path);
    if (info.in_c != 3)
        return kn_err_set(e, KN_UNSUPPORTED, "%s: the model takes %d channels; only RGB (3) "
                          "image models are supported", path, info.in_c);
    if ((rc = kn_nn_graph_optimize_inplace(m->graph, e)))
        return rc;
    snprintf(m->arch, sizeof m->arch, "tflite");
    m->outputs_probabilities = info.has_softmax;
    /* The float graph expects what the model's input tensor held: for a
     * float model (x - 127.5) / 127.5, for a quantized one the dequantized
     * input scale * (x - zero_point). Both are x/255 - mean) / std. */
    m->preproc = kn_img_preproc_tf();
    m->preproc.h = info.in_h;
    m->preproc.w = info.in_w;
    if (info.quantized && info.in_scale > 0) {
        m->preproc.norm = KN_NORM_TORCHVISION;
        for (int c = 0; c < 3; c++) {
            m->preproc.mean[c] = info.in_zero / 255.0f;
            m->preproc.std[c] = 1.0f / (255.0f * info.in_scale);
        }
    }
    int outputs = (int)kn_nn_graph_output_shape(m->graph).c;
    if (labels)
        return names_from_labels(m, labels, outputs, e);
    return default_names(m, outputs, e);
}

/* ---- safetensors ---------------------------------------------------------- */

/* Finds the class count of a bare weights file: the first dimension of the
 * head's last Linear weight. */
static kn_status infer_classes(const char *arch, const kn_nn_head *head, const kn_st_file *st,
                               int *classes, kn_err *e)
{
    kn_nn_head probe = *head;
    probe.classes = 1;
    kn_nn_graph *g = kn_nn_graph_new();
    if (!g)
        return kn_err_set(e, KN_NOMEM, "out of memory");
    kn_status rc = kn_nn_build_arch(g, arch, 224, 224, &probe, e);
    if (rc == KN_OK) {
        const kn_nn_node *last = kn_nn_graph_node(g, kn_nn_graph_count(g) - 1);
        char name[160];
        snprintf(name, sizeof name, "%s.weight", last->name);
        const kn_st_tensor *t = kn_st_find(st, name);
        if (!t || t->ndim != 2 || t->dims[0] <= 0 || t->dims[0] > 1000000)
            rc = kn_err_set(e, KN_NOT_FOUND,
                            "the weights have no usable head tensor %s (is --hidden right?)",
                            name);
        else
            *classes = (int)t->dims[0];
    }
    kn_nn_graph_free(g);
    return rc;
}

static kn_status load_safetensors(kn_model *m, const char *path, const char *arch,
                                  const kn_nn_head *head_in, int h, int w, kn_err *e)
{
    kn_st_file *st = NULL;
    kn_status rc = kn_st_open(path, &st, e);
    if (rc)
        return rc;
    kn_nn_head head = *head_in;
    if (head.classes <= 0 && (rc = infer_classes(arch, &head, st, &head.classes, e)))
        goto out;
    m->head = head;
    snprintf(m->arch, sizeof m->arch, "%s", arch);
    if (!(m->graph = kn_nn_graph_new())) {
        rc = kn_err_set(e, KN_NOMEM, "out of memory");
        goto out;
    }
    if ((rc = kn_nn_build_arch(m->graph, arch, h, w, &head, e)))
        goto out;
    if ((rc = kn_nn_graph_load_st(m->graph, st, NULL, false, e))) {
        kn_err_prefix(e, "%s", path);
        goto out;
    }
    kn_st_free(st); /* unmap before optimising: one copy of the weights */
    st = NULL;
    rc = kn_nn_graph_optimize_inplace(m->graph, e);
out:
    kn_st_free(st);
    return rc;
}

/* ---- model.json ----------------------------------------------------------- */

static kn_status json_floats3(json_t *arr, float out[3], const char *what, kn_err *e)
{
    if (!json_is_array(arr) || json_array_size(arr) != 3)
        return kn_err_set(e, KN_BAD_FORMAT, "model.json: %s must be an array of 3 numbers", what);
    for (int i = 0; i < 3; i++) {
        json_t *v = json_array_get(arr, (size_t)i);
        if (!json_is_number(v))
            return kn_err_set(e, KN_BAD_FORMAT, "model.json: %s[%d] is not a number", what, i);
        out[i] = (float)json_number_value(v);
    }
    return KN_OK;
}

static kn_status parse_preproc(json_t *root, kn_img_preproc *pp, kn_err *e)
{
    *pp = kn_img_preproc_torchvision();
    json_t *in = json_object_get(root, "input");
    if (in) {
        json_t *h = json_object_get(in, "height"), *w = json_object_get(in, "width");
        if (!json_is_integer(h) || !json_is_integer(w) || json_integer_value(h) < 8 ||
            json_integer_value(w) < 8 || json_integer_value(h) > 4096 ||
            json_integer_value(w) > 4096)
            return kn_err_set(e, KN_BAD_FORMAT,
                              "model.json: input.height/width must be integers in [8, 4096]");
        pp->h = (int)json_integer_value(h);
        pp->w = (int)json_integer_value(w);
    }
    json_t *p = json_object_get(root, "preprocess");
    if (!p)
        return KN_OK;
    const char *norm = json_string_value(json_object_get(p, "norm"));
    if (!norm || strcmp(norm, "torchvision") == 0) {
        pp->norm = KN_NORM_TORCHVISION;
    } else if (strcmp(norm, "tf") == 0) {
        pp->norm = KN_NORM_TF;
    } else if (strcmp(norm, "none") == 0) {
        pp->norm = KN_NORM_NONE;
    } else {
        return kn_err_set(e, KN_BAD_FORMAT,
                          "model.json: preprocess.norm '%s' (torchvision, tf or none)", norm);
    }
    kn_status rc;
    if (json_object_get(p, "mean") &&
        (rc = json_floats3(json_object_get(p, "mean"), pp->mean, "preprocess.mean", e)))
        return rc;
    if (json_object_get(p, "std") &&
        (rc = json_floats3(json_object_get(p, "std"), pp->std, "preprocess.std", e)))
        return rc;
    for (int i = 0; i < 3; i++)
        if (!(pp->std[i] > 0))
            return kn_err_set(e, KN_BAD_FORMAT, "model.json: preprocess.std[%d] must be > 0", i);
    return KN_OK;
}

static kn_status parse_head(json_t *root, kn_nn_head *h, kn_err *e)
{
    memset(h, 0, sizeof *h);
    json_t *nc = json_object_get(root, "num_classes");
    if (nc && (!json_is_integer(nc) || json_integer_value(nc) <= 0 ||
               json_integer_value(nc) > 1000000))
        return kn_err_set(e, KN_BAD_FORMAT, "model.json: num_classes must be a positive integer");
    h->classes = nc ? (int)json_integer_value(nc) : 0;
    json_t *head = json_object_get(root, "head");
    if (!head)
        return KN_OK;
    json_t *hid = json_object_get(head, "hidden");
    if (hid) {
        if (!json_is_array(hid) || json_array_size(hid) > KN_NN_MAX_HIDDEN)
            return kn_err_set(e, KN_BAD_FORMAT,
                              "model.json: head.hidden must be an array of at most %d sizes",
                              KN_NN_MAX_HIDDEN);
        for (size_t i = 0; i < json_array_size(hid); i++) {
            json_t *v = json_array_get(hid, i);
            if (!json_is_integer(v) || json_integer_value(v) <= 0 ||
                json_integer_value(v) > 1000000)
                return kn_err_set(e, KN_BAD_FORMAT, "model.json: head.hidden[%zu] is not a "
                                  "positive integer", i);
            h->hidden[h->n_hidden++] = (int)json_integer_value(v);
        }
    }
    json_t *dr = json_object_get(head, "dropout");
    if (dr) {
        if (!json_is_number(dr) || json_number_value(dr) < 0 || json_number_value(dr) >= 1)
            return kn_err_set(e, KN_BAD_FORMAT, "model.json: head.dropout must be in [0, 1)");
        h->dropout = (float)json_number_value(dr);
    }
    return KN_OK;
}

static kn_status classes_from_json(kn_model *m, json_t *arr, int outputs, kn_err *e)
{
    if (!arr)
        return default_names(m, outputs, e);
    if (!json_is_array(arr) || (int)json_array_size(arr) != outputs)
        return kn_err_set(e, KN_SHAPE, "model.json: classes has %zu names for %d outputs",
                          json_is_array(arr) ? json_array_size(arr) : 0, outputs);
    m->classes = calloc((size_t)outputs, sizeof(char *));
    if (!m->classes)
        return kn_err_set(e, KN_NOMEM, "out of memory");
    m->n_classes = outputs;
    for (int i = 0; i < outputs; i++) {
        const char *s = json_string_value(json_array_get(arr, (size_t)i));
        if (!s)
            return kn_err_set(e, KN_BAD_FORMAT, "model.json: classes[%d] is not a string", i);
        if (!(m->classes[i] = strdup(s)))
            return kn_err_set(e, KN_NOMEM, "out of memory");
    }
    return KN_OK;
}

static kn_status parse_head(json_t *root, kn_nn_head *h, kn_err *e);
static bool safe_member(const char *s);

/* A TFLite backbone with a trained head: cut the imported graph where its
 * classifier starts, append the head and load it from head_weights. */
static kn_status attach_head(kn_model *m, json_t *root, const char *dir, const char *file,
                             kn_err *e)
{
    kn_nn_head head;
    kn_status rc = parse_head(root, &head, e);
    if (rc)
        return rc;
    if (!safe_member(file))
        return kn_err_set(e, KN_BAD_FORMAT, "model.json: \"head_weights\" must be a file name "
                          "in the package");
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    kn_st_file *st = NULL;
    if ((rc = kn_st_open(path, &st, e)))
        return rc;
    if (head.classes <= 0) {
        /* from the last linear of the head file */
        char name[32];
        snprintf(name, sizeof name, head.n_hidden ? "fc.%d.weight" : "fc.weight",
                 2 * head.n_hidden + (head.dropout > 0 ? head.n_hidden : 0));
        const kn_st_tensor *t = kn_st_find(st, name);
        head.classes = t && t->ndim == 2 ? (int)t->dims[0] : 0;
    }
    int cut;
    kn_nn_graph *pre = NULL;
    if ((rc = kn_nn_graph_head_cut(m->graph, &cut, e)) ||
        (rc = kn_nn_graph_split(m->graph, cut, &pre, NULL, e))) {
        kn_st_free(st);
        return rc;
    }
    kn_nn_graph_free(m->graph);
    m->graph = pre;
    kn_nn_graph_reopen(pre);
    int first_new = kn_nn_graph_param_count(pre);
    kn_nn_head_append(pre, kn_nn_graph_count(pre) - 1, &head);
    if ((rc = kn_nn_graph_finalize(pre, e)) ||
        (rc = kn_nn_graph_load_st(pre, st, NULL, true, e))) {
        kn_st_free(st);
        return kn_err_prefix(e, "%s", path);
    }
    kn_st_free(st);
    for (int i = first_new; i < kn_nn_graph_param_count(pre); i++)
        if (!kn_nn_graph_param(pre, i)->loaded)
            return kn_err_set(e, KN_NOT_FOUND, "%s: tensor %s is missing", path,
                              kn_nn_graph_param(pre, i)->name);
    m->head = head;
    m->outputs_probabilities = false;
    return kn_nn_graph_optimize_inplace(pre, e);
}

/* A file name inside the package: plain name, no path components. */
static bool safe_member(const char *s)
{
    return s && *s && !strchr(s, '/') && strcmp(s, ".") && strcmp(s, "..") && strlen(s) < 256;
}

static kn_status load_dir(kn_model *m, const char *dir, const kn_model_load_params *p,
                          kn_err *e)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/model.json", dir);
    kn_buf b;
    kn_buf_init(&b, MAX_JSON_BYTES);
    kn_status rc = kn_file_read(path, &b, e);
    if (rc) {
        kn_buf_deinit(&b);
        return rc == KN_NOT_FOUND
                   ? kn_err_set(e, KN_NOT_FOUND, "%s: not a model package (no model.json)", dir)
                   : rc;
    }
    json_error_t je;
    json_t *root = json_loadb((const char *)b.data, b.len, 0, &je);
    kn_buf_deinit(&b);
    if (!root)
        return kn_err_set(e, KN_BAD_FORMAT, "%s: line %d: %s", path, je.line, je.text);
    const char *arch = json_string_value(json_object_get(root, "arch"));
    const char *weights = json_string_value(json_object_get(root, "weights"));
    const char *output = json_string_value(json_object_get(root, "output"));
    if (!json_is_object(root) || !arch) {
        rc = kn_err_set(e, KN_BAD_FORMAT, "%s: missing \"arch\"", path);
        goto out;
    }
    if (weights && !safe_member(weights)) {
        rc = kn_err_set(e, KN_BAD_FORMAT, "%s: \"weights\" must be a file name in the package",
                        path);
        goto out;
    }
    if (strcmp(arch, "tflite") == 0) {
        snprintf(path, sizeof path, "%s/%s", dir, weights ? weights : "model.tflite");
        if ((rc = load_tflite(m, path, NULL, e)))
            goto out;
        const char *head_w = json_string_value(json_object_get(root, "head_weights"));
        if (head_w && (rc = attach_head(m, root, dir, head_w, e)))
            goto out;
        int outputs = kn_nn_graph_output_shape(m->graph).c;
        kn_labels_free(m->classes, m->n_classes);
        m->classes = NULL;
        m->n_classes = 0;
        if ((rc = classes_from_json(m, json_object_get(root, "classes"), outputs, e)))
            goto out;
        if (json_object_get(root, "preprocess") || json_object_get(root, "input")) {
            if ((rc = parse_preproc(root, &m->preproc, e)))
                goto out;
        }
    } else {
        kn_nn_head head;
        if ((rc = parse_head(root, &head, e)) || (rc = parse_preproc(root, &m->preproc, e)))
            goto out;
        snprintf(path, sizeof path, "%s/%s", dir, weights ? weights : "model.safetensors");
        if ((rc = load_safetensors(m, path, arch, &head, m->preproc.h, m->preproc.w, e)))
            goto out;
        int outputs = kn_nn_graph_output_shape(m->graph).c;
        if ((rc = classes_from_json(m, json_object_get(root, "classes"), outputs, e)))
            goto out;
        m->outputs_probabilities = output && strcmp(output, "probabilities") == 0;
    }
    (void)p;
out:
    json_decref(root);
    return rc;
}

/* ---- tar.gz --------------------------------------------------------------- */

static void remove_tree(const char *dir)
{
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *ent;
        while ((ent = readdir(d))) {
            if (!strcmp(ent->d_name, ".") || !strcmp(ent->d_name, ".."))
                continue;
            char p[4096];
            snprintf(p, sizeof p, "%s/%s", dir, ent->d_name);
            struct stat st;
            if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
                remove_tree(p);
            else
                unlink(p);
        }
        closedir(d);
    }
    rmdir(dir);
}

static kn_status load_targz(kn_model *m, const char *path, const kn_model_load_params *p,
                            kn_err *e)
{
    kn_buf b;
    kn_buf_init(&b, p->max_archive_bytes);
    kn_status rc = kn_file_read(path, &b, e);
    if (rc) {
        kn_buf_deinit(&b);
        return rc;
    }
    const char *tmp = getenv("TMPDIR");
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/kennel-model-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        kn_buf_deinit(&b);
        return kn_err_set(e, KN_IO, "cannot create a temporary directory: %s", strerror(errno));
    }
    rc = kn_archive_extract(b.data, b.len, dir, p->max_archive_bytes, e);
    kn_buf_deinit(&b);
    if (rc) {
        kn_err_prefix(e, "%s", path);
    } else {
        /* model.json at the top, or inside a single top-level directory */
        char sub[4096];
        snprintf(sub, sizeof sub, "%s/model.json", dir);
        struct stat st;
        if (stat(sub, &st) == 0) {
            rc = load_dir(m, dir, p, e);
        } else {
            DIR *d = opendir(dir);
            struct dirent *ent;
            char only[4096] = "";
            int n = 0;
            while (d && (ent = readdir(d)))
                if (strcmp(ent->d_name, ".") && strcmp(ent->d_name, "..")) {
                    snprintf(only, sizeof only, "%s/%s", dir, ent->d_name);
                    n++;
                }
            if (d)
                closedir(d);
            if (n == 1)
                rc = load_dir(m, only, p, e);
            else
                rc = kn_err_set(e, KN_NOT_FOUND, "%s: no model.json in the archive", path);
        }
        if (rc && strncmp(e ? e->msg : "", path, strlen(path)) != 0)
            kn_err_prefix(e, "%s", path);
    }
    remove_tree(dir);
    return rc;
}

kn_status kn_model_load(const char *path, const kn_model_load_params *p_in, kn_model **out,
                        kn_err *e)
{
    kn_model_load_params p = p_in ? *p_in : kn_model_load_default_params();
    if (p.max_archive_bytes == 0)
        p.max_archive_bytes = kn_model_load_default_params().max_archive_bytes;
    *out = NULL;
    kn_model *m = calloc(1, sizeof *m);
    if (!m)
        return kn_err_set(e, KN_NOMEM, "out of memory");
    snprintf(m->source, sizeof m->source, "%s", path);
    m->preproc = kn_img_preproc_torchvision();
    struct stat st;
    kn_status rc;
    if (stat(path, &st) != 0) {
        rc = kn_err_set(e, KN_NOT_FOUND, "%s: %s", path, strerror(errno));
    } else if (S_ISDIR(st.st_mode)) {
        rc = load_dir(m, path, &p, e);
    } else if (ends_with(path, ".tar.gz") || ends_with(path, ".tgz") || ends_with(path, ".tar")) {
        rc = load_targz(m, path, &p, e);
    } else if (ends_with(path, ".tflite")) {
        rc = load_tflite(m, path, p.labels, e);
    } else if (ends_with(path, ".safetensors")) {
        if (!p.arch) {
            rc = kn_err_set(e, KN_INVALID, "%s: a bare weights file needs --arch", path);
        } else {
            rc = load_safetensors(m, path, p.arch, &p.head, m->preproc.h, m->preproc.w, e);
            if (rc == KN_OK) {
                int outputs = kn_nn_graph_output_shape(m->graph).c;
                rc = p.labels ? names_from_labels(m, p.labels, outputs, e)
                              : default_names(m, outputs, e);
            }
        }
    } else {
        rc = kn_err_set(e, KN_UNSUPPORTED,
                        "%s: not a model (expected a package directory, .tar.gz, "
                        ".safetensors or .tflite)",
                        path);
    }
    if (rc) {
        kn_model_free(m);
        return rc;
    }
    *out = m;
    return KN_OK;
}

/* ---- writing -------------------------------------------------------------- */

kn_status kn_model_save_dir(const kn_model *m, const kn_nn_graph *g, const char *dir,
                            kn_err *e)
{
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return kn_err_set(e, KN_IO, "%s: %s", dir, strerror(errno));
    if (strcmp(m->arch, "tflite") == 0)
        return kn_err_set(e, KN_UNSUPPORTED, "saving an imported TFLite graph as a package "
                          "is not supported; keep the .tflite file");
    json_t *root = json_object();
    json_t *hidden = json_array(), *classes = json_array(), *mean = json_array(),
           *std = json_array();
    for (int i = 0; i < m->head.n_hidden; i++)
        json_array_append_new(hidden, json_integer(m->head.hidden[i]));
    for (int i = 0; i < m->n_classes; i++)
        json_array_append_new(classes, json_string(m->classes[i]));
    for (int i = 0; i < 3; i++) {
        json_array_append_new(mean, json_real(m->preproc.mean[i]));
        json_array_append_new(std, json_real(m->preproc.std[i]));
    }
    const char *norm = m->preproc.norm == KN_NORM_TF     ? "tf"
                       : m->preproc.norm == KN_NORM_NONE ? "none"
                                                          : "torchvision";
    json_object_set_new(root, "format", json_string("kennel-model"));
    json_object_set_new(root, "version", json_integer(1));
    json_object_set_new(root, "arch", json_string(m->arch));
    json_object_set_new(root, "head", json_pack("{s:o,s:f}", "hidden", hidden, "dropout",
                                                (double)m->head.dropout));
    json_object_set_new(root, "num_classes", json_integer(m->n_classes));
    json_object_set_new(root, "classes", classes);
    json_object_set_new(root, "input",
                        json_pack("{s:i,s:i}", "height", m->preproc.h, "width", m->preproc.w));
    json_object_set_new(root, "preprocess",
                        json_pack("{s:s,s:o,s:o}", "norm", norm, "mean", mean, "std", std));
    json_object_set_new(root, "weights", json_string("model.safetensors"));
    json_object_set_new(root, "output",
                        json_string(m->outputs_probabilities ? "probabilities" : "logits"));
    char *text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(root);
    if (!text)
        return kn_err_set(e, KN_NOMEM, "out of memory writing model.json");
    char path[4096];
    snprintf(path, sizeof path, "%s/model.json", dir);
    kn_status rc = kn_file_write(path, text, strlen(text), e);
    free(text);
    if (rc)
        return rc;
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    return kn_nn_graph_save_st(g, path, e);
}
