/* Builders for torchvision's ResNet family and MobileNetV2, with the
 * configurable classifier head. Node and parameter names follow
 * torchvision's state_dict keys exactly, so weights load by name. Also
 * "tiny", a network with almost no compute for benches of the serving path. */
#include "nn_int.h"

#include <stdio.h>
#include <string.h>

#define BN_EPS 1e-5f

static kn_nn_window win_sq(int k, int s, int p)
{
    return (kn_nn_window){k, k, s, s, p, p, p, p, 1, 1};
}

static int conv_bn(kn_nn_graph *g, int x, const char *conv, const char *bn, int out_c, int k,
                   int s, int p, int groups)
{
    kn_nn_window w = win_sq(k, s, p);
    x = kn_nn_conv(g, x, conv, out_c, &w, groups, false, KN_ACT_NONE);
    return x < 0 ? -1 : kn_nn_batchnorm(g, x, bn, BN_EPS);
}

/* Appends the head as nn.Sequential numbering: modules are numbered from
 * `idx`; Linear layers are "<prefix>.<n>". With no hidden layer and
 * plain_name set, the single Linear is called plain_name. */
static int build_head(kn_nn_graph *g, int x, const char *prefix, int idx, const char *plain_name,
                      const kn_nn_head *h)
{
    char name[96];
    if (h->n_hidden == 0 && plain_name)
        return kn_nn_linear(g, x, plain_name, h->classes, true, KN_ACT_NONE);
    for (int i = 0; i < h->n_hidden && x >= 0; i++) {
        snprintf(name, sizeof name, "%s.%d", prefix, idx++);
        x = kn_nn_linear(g, x, name, h->hidden[i], true, KN_ACT_NONE);
        if (x >= 0) {
            x = kn_nn_relu(g, x);
            idx++;
        }
        if (x >= 0 && h->dropout > 0) {
            x = kn_nn_dropout(g, x, h->dropout);
            idx++;
        }
    }
    if (x < 0)
        return -1;
    snprintf(name, sizeof name, "%s.%d", prefix, idx);
    return kn_nn_linear(g, x, name, h->classes, true, KN_ACT_NONE);
}

static kn_status check_head(const kn_nn_head *h, kn_err *e)
{
    if (h->classes <= 0 || h->classes > 1000000)
        return kn_err_set(e, KN_INVALID, "head: %d classes", h->classes);
    if (h->n_hidden < 0 || h->n_hidden > KN_NN_MAX_HIDDEN)
        return kn_err_set(e, KN_INVALID, "head: %d hidden layers (at most %d)", h->n_hidden,
                          KN_NN_MAX_HIDDEN);
    for (int i = 0; i < h->n_hidden; i++)
        if (h->hidden[i] <= 0 || h->hidden[i] > 1000000)
            return kn_err_set(e, KN_INVALID, "head: hidden layer %d has %d units", i,
                              h->hidden[i]);
    if (!(h->dropout >= 0 && h->dropout < 1))
        return kn_err_set(e, KN_INVALID, "head: dropout %g is not in [0, 1)", h->dropout);
    return KN_OK;
}

kn_status kn_nn_build_resnet(kn_nn_graph *g, int depth, int h, int w, const kn_nn_head *head,
                             kn_err *e)
{
    static const struct {
        int depth, bottleneck, blocks[4];
    } cfgs[] = {
        {18, 0, {2, 2, 2, 2}},  {34, 0, {3, 4, 6, 3}},   {50, 1, {3, 4, 6, 3}},
        {101, 1, {3, 4, 23, 3}}, {152, 1, {3, 8, 36, 3}},
    };
    int ci = -1;
    for (int i = 0; i < 5; i++)
        if (cfgs[i].depth == depth)
            ci = i;
    if (ci < 0)
        return kn_err_set(e, KN_INVALID, "resnet%d: depth must be 18, 34, 50, 101 or 152", depth);
    kn_status rc = check_head(head, e);
    if (rc)
        return rc;
    int bott = cfgs[ci].bottleneck, expansion = bott ? 4 : 1;

    int x = kn_nn_input(g, 3, h, w);
    x = conv_bn(g, x, "conv1", "bn1", 64, 7, 2, 3, 1);
    x = kn_nn_relu(g, x);
    kn_nn_window mp = win_sq(3, 2, 1);
    x = kn_nn_maxpool(g, x, &mp);
    int in_c = 64;
    char a[96], b[96];
    for (int layer = 0; layer < 4; layer++) {
        int width = 64 << layer;
        for (int blk = 0; blk < cfgs[ci].blocks[layer]; blk++) {
            int stride = (layer > 0 && blk == 0) ? 2 : 1;
            int out_c = width * expansion;
            char pre[48];
            snprintf(pre, sizeof pre, "layer%d.%d", layer + 1, blk);
            int identity = x;
            int y;
            if (bott) {
                snprintf(a, sizeof a, "%s.conv1", pre);
                snprintf(b, sizeof b, "%s.bn1", pre);
                y = kn_nn_relu(g, conv_bn(g, x, a, b, width, 1, 1, 0, 1));
                snprintf(a, sizeof a, "%s.conv2", pre);
                snprintf(b, sizeof b, "%s.bn2", pre);
                y = kn_nn_relu(g, conv_bn(g, y, a, b, width, 3, stride, 1, 1));
                snprintf(a, sizeof a, "%s.conv3", pre);
                snprintf(b, sizeof b, "%s.bn3", pre);
                y = conv_bn(g, y, a, b, out_c, 1, 1, 0, 1);
            } else {
                snprintf(a, sizeof a, "%s.conv1", pre);
                snprintf(b, sizeof b, "%s.bn1", pre);
                y = kn_nn_relu(g, conv_bn(g, x, a, b, width, 3, stride, 1, 1));
                snprintf(a, sizeof a, "%s.conv2", pre);
                snprintf(b, sizeof b, "%s.bn2", pre);
                y = conv_bn(g, y, a, b, out_c, 3, 1, 1, 1);
            }
            if (stride != 1 || in_c != out_c) {
                snprintf(a, sizeof a, "%s.downsample.0", pre);
                snprintf(b, sizeof b, "%s.downsample.1", pre);
                identity = conv_bn(g, x, a, b, out_c, 1, stride, 0, 1);
            }
            x = kn_nn_relu(g, kn_nn_add(g, y, identity, KN_ACT_NONE));
            in_c = out_c;
        }
    }
    x = kn_nn_gap(g, x);
    x = kn_nn_flatten(g, x);
    x = build_head(g, x, "fc", 0, "fc", head);
    (void)x;
    return kn_nn_graph_finalize(g, e);
}

static int make_divisible(double v, int divisor)
{
    int nv = (int)(v + divisor / 2.0) / divisor * divisor;
    if (nv < divisor)
        nv = divisor;
    if (nv < 0.9 * v)
        nv += divisor;
    return nv;
}

kn_status kn_nn_build_mobilenet_v2(kn_nn_graph *g, int h, int w, const kn_nn_head *head,
                                   kn_err *e)
{
    static const int settings[7][4] = {{1, 16, 1, 1}, {6, 24, 2, 2},  {6, 32, 3, 2},
                                       {6, 64, 4, 2}, {6, 96, 3, 1},  {6, 160, 3, 2},
                                       {6, 320, 1, 1}};
    kn_status rc = check_head(head, e);
    if (rc)
        return rc;
    char a[96], b[96];
    int x = kn_nn_input(g, 3, h, w);
    int in_c = make_divisible(32, 8);
    x = kn_nn_relu6(g, conv_bn(g, x, "features.0.0", "features.0.1", in_c, 3, 2, 1, 1));
    int f = 1;
    for (int s = 0; s < 7; s++) {
        int t = settings[s][0], c = make_divisible(settings[s][1], 8);
        for (int i = 0; i < settings[s][2]; i++, f++) {
            int stride = i == 0 ? settings[s][3] : 1;
            int hidden = in_c * t;
            int y = x, k = 0;
            if (t != 1) {
                snprintf(a, sizeof a, "features.%d.conv.%d.0", f, k);
                snprintf(b, sizeof b, "features.%d.conv.%d.1", f, k);
                y = kn_nn_relu6(g, conv_bn(g, y, a, b, hidden, 1, 1, 0, 1));
                k++;
            }
            snprintf(a, sizeof a, "features.%d.conv.%d.0", f, k);
            snprintf(b, sizeof b, "features.%d.conv.%d.1", f, k);
            y = kn_nn_relu6(g, conv_bn(g, y, a, b, hidden, 3, stride, 1, hidden));
            k++;
            snprintf(a, sizeof a, "features.%d.conv.%d", f, k);
            snprintf(b, sizeof b, "features.%d.conv.%d", f, k + 1);
            y = conv_bn(g, y, a, b, c, 1, 1, 0, 1);
            if (stride == 1 && in_c == c)
                y = kn_nn_add(g, x, y, KN_ACT_NONE);
            x = y;
            in_c = c;
        }
    }
    snprintf(a, sizeof a, "features.%d.0", f);
    snprintf(b, sizeof b, "features.%d.1", f);
    x = kn_nn_relu6(g, conv_bn(g, x, a, b, make_divisible(1280, 8), 1, 1, 0, 1));
    x = kn_nn_gap(g, x);
    x = kn_nn_flatten(g, x);
    x = kn_nn_dropout(g, x, 0.2f);
    x = build_head(g, x, "classifier", 1, "classifier.1", head);
    (void)x;
    return kn_nn_graph_finalize(g, e);
}

kn_status kn_nn_build_tiny(kn_nn_graph *g, int h, int w, const kn_nn_head *head, kn_err *e)
{
    kn_status rc = check_head(head, e);
    if (rc)
        return rc;
    int x = kn_nn_input(g, 3, h, w);
    x = kn_nn_relu(g, conv_bn(g, x, "conv1", "bn1", 16, 3, 2, 1, 1));
    x = kn_nn_gap(g, x);
    x = kn_nn_flatten(g, x);
    x = build_head(g, x, "fc", 0, "fc", head);
    (void)x;
    return kn_nn_graph_finalize(g, e);
}

kn_status kn_nn_build_arch(kn_nn_graph *g, const char *arch, int h, int w,
                           const kn_nn_head *head, kn_err *e)
{
    if (strcmp(arch, "tiny") == 0)
        return kn_nn_build_tiny(g, h, w, head, e);
    if (strcmp(arch, "mobilenet_v2") == 0)
        return kn_nn_build_mobilenet_v2(g, h, w, head, e);
    if (strncmp(arch, "resnet", 6) == 0) {
        int depth = 0;
        const char *p = arch + 6;
        while (*p >= '0' && *p <= '9' && depth < 1000)
            depth = depth * 10 + (*p++ - '0');
        if (*p == '\0' && depth > 0)
            return kn_nn_build_resnet(g, depth, h, w, head, e);
    }
    return kn_err_set(e, KN_INVALID,
                      "unknown architecture '%s' (resnet18, resnet34, resnet50, resnet101, "
                      "resnet152, mobilenet_v2, tiny)",
                      arch);
}

int kn_nn_head_append(kn_nn_graph *g, int x, const kn_nn_head *head)
{
    x = kn_nn_flatten(g, x);
    return x < 0 ? -1 : build_head(g, x, "fc", 0, "fc", head);
}
