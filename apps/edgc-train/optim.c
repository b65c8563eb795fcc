/*
 * optim.c - AdamW (Loshchilov & Hutter: decay decoupled from the adaptive step), the schedule and
 * clipping. Deterministic: the same gradient gives the same bits on every rank.
 */
#include "optim.h"

#include <math.h>

float lr_at(int step, int total, int warmup, float lr, lr_schedule schedule)
{
    if (warmup > 0 && step < warmup) return lr * (float)(step + 1) / (float)warmup;
    if (schedule == LR_CONSTANT || total <= warmup + 1) return lr;
    double progress = (double)(step - warmup) / (double)(total - warmup - 1);
    if (progress > 1.0) progress = 1.0;
    double min_lr = 0.1 * lr;
    return (float)(min_lr + 0.5 * (lr - min_lr) * (1.0 + cos(3.141592653589793 * progress)));
}

double grad_sumsq(const float* grad, size_t n)
{
    double sum = 0.0;
    for (size_t i = 0; i < n; i++)
        sum += (double)grad[i] * grad[i];
    return sum;
}

void clip_to_norm(float* grad, size_t n, double norm, double max_norm)
{
    if (max_norm > 0.0 && norm > max_norm) {
        float s = (float)(max_norm / norm);
        for (size_t i = 0; i < n; i++)
            grad[i] *= s;
    }
}

/* One tensor's update. restrict and the compile flags (-O3, no errno from sqrtf) let the
 * compiler vectorise it; large tensors are split over the OpenMP threads. Every element is
 * computed alone with the same expression, so the bits do not depend on the thread count. */
static void adamw_tensor(float* restrict p, const float* restrict g, float* restrict mm,
                         float* restrict vv, size_t n, float lr, const adamw_config* c, float wd,
                         float bc1, float bc2)
{
    const float b1 = c->beta1, b2 = c->beta2, eps = c->eps;
#pragma omp parallel for simd schedule(static) if (n >= 65536)
    for (size_t i = 0; i < n; i++) {
        float mo = b1 * mm[i] + (1.0f - b1) * g[i];
        float v = b2 * vv[i] + (1.0f - b2) * g[i] * g[i];
        mm[i] = mo;
        vv[i] = v;
        float step = (mo / bc1) / (sqrtf(v / bc2) + eps);
        p[i] -= lr * (step + wd * p[i]);
    }
}

void adamw_update(gpt2* m, float lr, const adamw_config* c, int t)
{
    // Weight decay on the matrices and embeddings only: wte wpe qkvw attprojw fcw fcprojw.
    static const int decayed[NUM_PARAMETER_TENSORS] = {1, 1, 0, 0, 1, 0, 1, 0,
                                                       0, 0, 1, 0, 1, 0, 0, 0};
    const float bc1 = 1.0f - powf(c->beta1, (float)t), bc2 = 1.0f - powf(c->beta2, (float)t);
    size_t at = 0;
    for (int k = 0; k < NUM_PARAMETER_TENSORS; k++) {
        adamw_tensor(m->params_memory + at, m->grads_memory + at, m->m_memory + at,
                     m->v_memory + at, m->param_sizes[k], lr, c,
                     decayed[k] ? c->weight_decay : 0.0f, bc1, bc2);
        at += m->param_sizes[k];
    }
}
