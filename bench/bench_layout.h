/*
 * bench_layout.h - the GPT-2-like gradient layout the benchmarks share: per layer the qkv,
 * attention-out, fc and fc-proj matrices with their biases, and two LayerNorms (4 vectors).
 * 12 layers at width 768 is GPT-2 small's 85 M floats of transformer weights.
 */
#ifndef EDGC_BENCH_LAYOUT_H
#define EDGC_BENCH_LAYOUT_H

#include <stdlib.h>

#include "edgc.h"

typedef struct bench_model {
    edgc_tensor* t; /* NULL if out of memory */
    size_t n_t, total;
} bench_model;

static inline bench_model bench_gpt2_like(int layers, size_t C)
{
    bench_model m = {0};
    m.t = calloc((size_t)layers * 12, sizeof *m.t);
    if (m.t == NULL) return m;
    const size_t shapes[4][2] = {{C, 3 * C}, {C, C}, {C, 4 * C}, {4 * C, C}};
    for (int l = 0; l < layers; l++) {
        for (int k = 0; k < 4; k++) {
            m.t[m.n_t++] = (edgc_tensor){m.total, shapes[k][0], shapes[k][1]};
            m.total += shapes[k][0] * shapes[k][1];
            m.t[m.n_t++] = (edgc_tensor){m.total, shapes[k][1], 1}; /* bias */
            m.total += shapes[k][1];
        }
        for (int k = 0; k < 4; k++) { /* ln1 w/b, ln2 w/b */
            m.t[m.n_t++] = (edgc_tensor){m.total, C, 1};
            m.total += C;
        }
    }
    return m;
}

#endif
