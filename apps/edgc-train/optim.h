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
/* Gradient clipping to a global L2 norm, in two halves so that a gradient spread over pipeline
 * stages can add its stages' sums of squares: the sum of squares, then the scaling given the
 * global norm (max_norm 0: off). */
double grad_sumsq(const float* grad, size_t n);
void clip_to_norm(float* grad, size_t n, double norm, double max_norm);
/* One AdamW step; t is the 1-based step count for bias correction. */
void adamw_update(gpt2* m, float lr, const adamw_config* c, int t);

#endif
