/*
 * optim.h - AdamW with decoupled weight decay (not on biases, LayerNorm), the learning-rate
 * schedule (linear warm-up, then constant or cosine), and global-norm gradient clipping.
 */
#ifndef EDGC_TRAIN_OPTIM_H
#define EDGC_TRAIN_OPTIM_H

#include "gpt2.h"

typedef struct adamw_config {
    float beta1, beta2, eps, weight_decay;
} adamw_config;

typedef enum { LR_CONSTANT = 0, LR_COSINE = 1 } lr_schedule;

/* Learning rate at `step` (0-based) of `total`: linear warm-up over `warmup` steps to `lr`, then
 * constant, or cosine decay to lr / 10 at the last step. */
float lr_at(int step, int total, int warmup, float lr, lr_schedule schedule);
/* Scales the gradient so its global L2 norm is at most max_norm (0: off). Returns the norm before
 * clipping. */
double clip_grad_norm(float* grad, size_t n, double max_norm);
/* The two halves of it, for a gradient spread over pipeline stages: the sum of squares, and the
 * scaling given the global norm. */
double grad_sumsq(const float* grad, size_t n);
void clip_to_norm(float* grad, size_t n, double norm, double max_norm);
/* One AdamW step; t is the 1-based step count for bias correction. */
void adamw_update(gpt2* m, float lr, const adamw_config* c, int t);

#endif
