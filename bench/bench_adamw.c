/*
 * bench_adamw.c - the trainer's AdamW over the GPT-2 124M parameter layout: the vectorised and
 * threaded update (apps/edgc-train/optim.c) against the scalar loop it replaced, kept here as the
 * baseline, side by side in one run. Checks that both give the same bits. Prints Markdown.
 *   bench_adamw [threads...]     (default: 1 and every CPU this process may use)
 */
#define _GNU_SOURCE
#include <math.h>
#include <omp.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gpt2.h"
#include "optim.h"

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

/* The update as it was before: one scalar loop over all parameters. */
static void adamw_scalar(gpt2* m, float lr, const adamw_config* c, int t)
{
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

static void fill(gpt2* m)
{
    uint64_t s = 42;
    for (size_t i = 0; i < m->num_parameters; i++) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        m->grads_memory[i] = (float)((double)(s >> 40) / (1 << 24) - 0.5) * 1e-2f;
        m->params_memory[i] = (float)((double)(s >> 20 & 0xfffff) / (1 << 20) - 0.5) * 0.1f;
    }
    memset(m->m_memory, 0, m->num_parameters * sizeof(float));
    memset(m->v_memory, 0, m->num_parameters * sizeof(float));
}

static double time_update(gpt2* m, int scalar, int reps)
{
    adamw_config c = {0.9f, 0.95f, 1e-8f, 0.01f};
    double best = INFINITY;
    for (int r = 0; r < reps; r++) {
        double t0 = now_ms();
        if (scalar)
            adamw_scalar(m, 1e-3f, &c, r + 1);
        else
            adamw_update(m, 1e-3f, &c, r + 1);
        double t = now_ms() - t0;
        if (t < best) best = t;
    }
    return best;
}

static void usage(FILE* f)
{
    fprintf(f, "usage: bench_adamw [THREADS...]\n"
               "  times the trainer's AdamW over the GPT-2 124M layout with each thread count\n"
               "  (default: 1 and every CPU this process may use; at most 8 counts) against the\n"
               "  scalar loop it replaced, and checks that both give the same bits\n");
}

int main(int argc, char** argv)
{
    int threads[8], n = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        }
        char* end;
        long v = strtol(argv[i], &end, 10);
        if (end == argv[i] || *end != '\0' || v < 1 || v > 1024 || n == 8) {
            fprintf(stderr, "bench_adamw: '%s': expected up to 8 thread counts from 1 to 1024\n",
                    argv[i]);
            usage(stderr);
            return 2;
        }
        threads[n++] = (int)v;
    }
    gpt2_config cfg = {.max_seq_len = 1024,
                       .vocab_size = 50257,
                       .padded_vocab_size = 50304,
                       .num_layers = 12,
                       .num_heads = 12,
                       .channels = 768};
    gpt2 a, b;
    if (gpt2_build(&a, &cfg) != 0 || gpt2_build(&b, &cfg) != 0) return 1;
    if (n == 0) {
        cpu_set_t set;
        int cpus = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : 1;
        threads[n++] = 1;
        if (cpus > 1) threads[n++] = cpus;
    }
    fill(&a);
    double scalar = time_update(&a, 1, 5);
    printf("AdamW over the GPT-2 124M layout (%.1f M parameters), best of 5 updates\n\n",
           a.num_parameters / 1e6);
    printf("| update | threads | ms | vs scalar | same bits as scalar |\n|---|---|---|---|---|\n");
    printf("| scalar loop (before) | 1 | %.1f | 1.00 | - |\n", scalar);
    for (int k = 0; k < n; k++) {
        omp_set_num_threads(threads[k]);
        fill(&b);
        double t = time_update(&b, 0, 5);
        fill(&a); /* the same five updates with the scalar loop, for the bit comparison */
        time_update(&a, 1, 5);
        int same = memcmp(a.params_memory, b.params_memory, a.num_parameters * 4) == 0 &&
                   memcmp(a.v_memory, b.v_memory, a.num_parameters * 4) == 0;
        printf("| vectorised | %d | %.1f | %.2f | %s |\n", threads[k], t, scalar / t,
               same ? "yes" : "NO");
    }
    gpt2_free(&a);
    gpt2_free(&b);
    return 0;
}
