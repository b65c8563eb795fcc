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

double clip_grad_norm(float* grad, size_t n, double max_norm)
{
    double sum = 0.0;
    for (size_t i = 0; i < n; i++)
        sum += (double)grad[i] * grad[i];
    double norm = sqrt(sum);
    if (max_norm > 0.0 && norm > max_norm) {
        float s = (float)(max_norm / norm);
        for (size_t i = 0; i < n; i++)
            grad[i] *= s;
    }
    return norm;
}

void adamw_update(gpt2* m, float lr, const adamw_config* c, int t)
{
    // Weight decay on the matrices and embeddings only: wte wpe qkvw attprojw fcw fcprojw.
    static const int decayed[NUM_PARAMETER_TENSORS] = {1, 1, 0, 0, 1, 0, 1, 0,
                                                       0, 0, 1, 0, 1, 0, 0, 0};
    const float bc1 = 1.0f - powf(c->beta1, (float)t), bc2 = 1.0f - powf(c->beta2, (float)t);
    size_t at = 0;
    for (int k = 0; k < NUM_PARAMETER_TENSORS; k++) {
        const float wd = decayed[k] ? c->weight_decay : 0.0f;
        for (size_t i = at; i < at + m->param_sizes[k]; i++) {
            float g = m->grads_memory[i];
            float mo = c->beta1 * m->m_memory[i] + (1.0f - c->beta1) * g;
            float v = c->beta2 * m->v_memory[i] + (1.0f - c->beta2) * g * g;
            m->m_memory[i] = mo;
            m->v_memory[i] = v;
            float step = (mo / bc1) / (sqrtf(v / bc2) + c->eps);
            m->params_memory[i] -= lr * (step + wd * m->params_memory[i]);
        }
        at += m->param_sizes[k];
    }
}
