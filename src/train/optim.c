/* Cross-entropy and the optimisers, following PyTorch 1.13's update rules
 * (torch.optim.SGD with momentum/dampening/nesterov/weight decay, Adam with
 * L2 weight decay, AdamW with decoupled decay), in float32 with the same
 * order of operations so trajectories match PyTorch closely. */
#include "kennel/train.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

kn_status kn_train_cross_entropy(const float *logits, const int *labels, int n, int classes,
                                 float *loss, float *dlogits, int *correct, kn_err *e)
{
    double total = 0;
    int right = 0;
    for (int s = 0; s < n; s++) {
        const float *z = logits + (size_t)s * classes;
        int y = labels[s];
        if (y < 0 || y >= classes)
            return kn_err_set(e, KN_INVALID, "label %d of sample %d is outside [0, %d)", y, s,
                              classes);
        float mx = z[0];
        int arg = 0;
        for (int c = 1; c < classes; c++)
            if (z[c] > mx) {
                mx = z[c];
                arg = c;
            }
        right += arg == y;
        double sum = 0;
        for (int c = 0; c < classes; c++)
            sum += exp((double)z[c] - mx);
        double lse = log(sum) + mx;
        total += lse - z[y];
        if (dlogits) {
            float *d = dlogits + (size_t)s * classes;
            for (int c = 0; c < classes; c++)
                d[c] = (float)(exp((double)z[c] - lse) / n);
            d[y] -= 1.0f / (float)n;
        }
    }
    if (loss)
        *loss = (float)(total / n);
    if (correct)
        *correct = right;
    return KN_OK;
}

kn_status kn_opt_kind_parse(const char *s, kn_opt_kind *out)
{
    if (strcasecmp(s, "sgd") == 0)
        *out = KN_OPT_SGD;
    else if (strcasecmp(s, "adam") == 0)
        *out = KN_OPT_ADAM;
    else if (strcasecmp(s, "adamw") == 0)
        *out = KN_OPT_ADAMW;
    else
        return KN_INVALID;
    return KN_OK;
}

const char *kn_opt_kind_name(kn_opt_kind k)
{
    return k == KN_OPT_SGD ? "sgd" : k == KN_OPT_ADAM ? "adam" : "adamw";
}

kn_opt_params kn_opt_default_params(void)
{
    return (kn_opt_params){.kind = KN_OPT_ADAM, .lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.999f,
                           .eps = 1e-8f};
}

typedef struct slot {
    float *p, *g;   /* parameter and its gradient (owned by graph / trainer) */
    float *m, *v;   /* momentum buffer / first moment; second moment */
    size_t n;
} slot;

struct kn_opt {
    kn_opt_params p;
    slot *s;
    int ns;
    long step;
    bool started;   /* SGD: the momentum buffer is the first gradient */
};

void kn_opt_free(kn_opt *o)
{
    if (!o)
        return;
    for (int i = 0; i < o->ns; i++) {
        kn_free_aligned(o->s[i].m);
        kn_free_aligned(o->s[i].v);
    }
    free(o->s);
    free(o);
}

kn_status kn_opt_new(const kn_opt_params *p, kn_nn_graph *g, kn_nn_trainer *t, kn_opt **out,
                     kn_err *e)
{
    *out = NULL;
    if (!(p->lr > 0) || !(p->lr < 1e3f))
        return kn_err_set(e, KN_INVALID, "learning rate %g is not a positive number", p->lr);
    if (p->momentum < 0 || p->momentum >= 1 || p->weight_decay < 0 || p->dampening < 0 ||
        p->dampening > 1)
        return kn_err_set(e, KN_INVALID, "momentum %g, dampening %g or weight decay %g out of range",
                          p->momentum, p->dampening, p->weight_decay);
    if (p->nesterov && (p->momentum <= 0 || p->dampening != 0))
        return kn_err_set(e, KN_INVALID, "nesterov needs momentum > 0 and no dampening");
    if (p->kind != KN_OPT_SGD && (!(p->beta1 >= 0 && p->beta1 < 1) ||
                                  !(p->beta2 >= 0 && p->beta2 < 1) || !(p->eps > 0)))
        return kn_err_set(e, KN_INVALID, "Adam betas must be in [0, 1) and eps > 0");
    kn_opt *o = calloc(1, sizeof *o);
    int np = kn_nn_graph_param_count(g);
    if (!o || !(o->s = calloc((size_t)(np ? np : 1), sizeof *o->s))) {
        free(o);
        return kn_err_set(e, KN_NOMEM, "optimiser: out of memory");
    }
    o->p = *p;
    for (int i = 0; i < np; i++) {
        float *grad = kn_nn_trainer_grad(t, i);
        if (!grad)
            continue;
        slot *s = &o->s[o->ns++];
        s->p = kn_nn_graph_param(g, i)->data;
        s->g = grad;
        s->n = kn_nn_graph_param(g, i)->numel;
        bool need_m = p->kind != KN_OPT_SGD || p->momentum > 0;
        if (need_m && !(s->m = kn_alloc_aligned(s->n * sizeof(float))))
            goto oom;
        if (p->kind != KN_OPT_SGD && !(s->v = kn_alloc_aligned(s->n * sizeof(float))))
            goto oom;
        if (s->m)
            memset(s->m, 0, s->n * sizeof(float));
        if (s->v)
            memset(s->v, 0, s->n * sizeof(float));
    }
    *out = o;
    return KN_OK;
oom:
    kn_opt_free(o);
    return kn_err_set(e, KN_NOMEM, "optimiser: out of memory");
}

/* Updates are element-wise and memory-bound: vectorised, and split over
 * threads for large tensors (each element is independent, so the result
 * does not depend on the thread count). */
#define PAR_MIN 32768

static void sgd(kn_opt *o, slot *s)
{
    /* Loop invariants in locals and restrict pointers: without them clang
     * cannot prove the stores leave p untouched and will not vectorise. */
    const float wd = o->p.weight_decay, mom = o->p.momentum, damp = o->p.dampening;
    const float lr = o->p.lr;
    const bool nesterov = o->p.nesterov, started = o->started;
    float *restrict w = s->p, *restrict m = s->m;
    const float *restrict g = s->g;
    long n = (long)s->n;
    /* wd * w adds exactly 0 when wd is 0, so no branch is needed for it;
     * the momentum buffer exists only with momentum: two loops. */
    if (mom == 0) {
#pragma omp parallel for simd schedule(static) if (n >= PAR_MIN)
        for (long i = 0; i < n; i++)
            w[i] = w[i] - lr * (g[i] + wd * w[i]);
        return;
    }
    const float keep = started ? mom : 0.0f, take = started ? 1.0f - damp : 1.0f;
    const float nest = nesterov ? mom : 0.0f;
#pragma omp parallel for simd schedule(static) if (n >= PAR_MIN)
    for (long i = 0; i < n; i++) {
        float d = g[i] + wd * w[i];
        float b = keep * m[i] + take * d;
        m[i] = b;
        w[i] = w[i] - lr * (nesterov ? d + nest * b : b);
    }
}

static void adam(kn_opt *o, slot *s)
{
    const kn_opt_params *p = &o->p;
    float bc1 = 1.0f - powf(p->beta1, (float)o->step);
    float bc2 = 1.0f - powf(p->beta2, (float)o->step);
    const float step_size = p->lr / bc1;
    const float bc2_sqrt = sqrtf(bc2);
    const bool decoupled = p->kind == KN_OPT_ADAMW;
    const float lr = p->lr, wd = p->weight_decay, b1 = p->beta1, b2 = p->beta2, eps = p->eps;
    float *restrict w = s->p, *restrict m = s->m, *restrict v = s->v;
    const float *restrict gr = s->g;
    long n = (long)s->n;
    /* Branch-free: AdamW scales the weight first (by 1 when not AdamW),
     * Adam adds wd * w to the gradient (0 when AdamW or no decay). */
    const float scale = decoupled ? 1.0f - lr * wd : 1.0f, l2 = decoupled ? 0.0f : wd;
#pragma omp parallel for simd schedule(static) if (n >= PAR_MIN)
    for (long i = 0; i < n; i++) {
        float g = gr[i] + l2 * w[i];
        w[i] = w[i] * scale;
        m[i] = m[i] * b1 + (1.0f - b1) * g;
        v[i] = v[i] * b2 + (1.0f - b2) * g * g;
        float denom = sqrtf(v[i]) / bc2_sqrt + eps;
        w[i] = w[i] - step_size * (m[i] / denom);
    }
}

void kn_opt_step(kn_opt *o)
{
    o->step++;
    for (int i = 0; i < o->ns; i++) {
        if (o->p.kind == KN_OPT_SGD)
            sgd(o, &o->s[i]);
        else
            adam(o, &o->s[i]);
    }
    o->started = true;
}
