/*
 * testutil.h - helpers shared by the cmocka tests: float comparison that prints the first
 * mismatches and the largest difference, a deterministic random source, a one-worker group, and
 * a runner that executes one function per in-process worker thread.
 */
#ifndef EDGC_TESTUTIL_H
#define EDGC_TESTUTIL_H

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "edgc.h"

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif
#ifndef M_E
#define M_E 2.71828182845904523536
#endif

/* Relative L2 distance ||a - b|| / max(||b||, tiny). */
static inline double rel_l2(const float* a, const float* b, size_t n)
{
    double d = 0.0, nb = 0.0;
    for (size_t i = 0; i < n; i++) {
        double x = (double)a[i] - (double)b[i];
        d += x * x;
        nb += (double)b[i] * b[i];
    }
    return sqrt(d) / (nb > 1e-300 ? sqrt(nb) : 1.0);
}

/* 1 if |a[i] - b[i]| <= atol + rtol |b[i]| everywhere; else prints the first mismatches. */
static inline int close_f32(const char* label, const float* a, const float* b, size_t n,
                            double atol, double rtol)
{
    size_t bad = 0;
    double maxd = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= atol + rtol * fabs((double)b[i]))) {
            if (bad < 5) fprintf(stderr, "%s[%zu]: %.9g vs %.9g\n", label, i, a[i], b[i]);
            bad++;
        }
        if (d > maxd || d != d) maxd = d;
    }
    if (bad) fprintf(stderr, "%s: %zu of %zu differ, max |diff| %.3g\n", label, bad, n, maxd);
    return bad == 0;
}

/* Deterministic test data: splitmix64 -> uniform -> Box-Muller. */
typedef struct test_rng {
    uint64_t s;
} test_rng;

static inline uint64_t test_next(test_rng* r)
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static inline double test_uniform(test_rng* r)
{
    return ((double)(test_next(r) >> 11) + 0.5) * 0x1.0p-53;
}

static inline void test_gaussian(test_rng* r, float* x, size_t n, double scale)
{
    for (size_t i = 0; i < n; i++) {
        double u = test_uniform(r), v = test_uniform(r);
        x[i] = (float)(scale * sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v));
    }
}

/* A group of one in-process worker and its communicator (free the group after use); aborts the
 * test binary if it cannot be made. */
static inline edgc_comm solo_comm(edgc_inproc** g)
{
    edgc_comm c = {0};
    if (edgc_inproc_create(1, g) != EDGC_OK || edgc_inproc_comm(*g, 0, &c) != EDGC_OK) abort();
    return c;
}

/* Runs fn(arg_i, rank, comm) on `size` threads over one in-process group; returns 0 on success. */
typedef void (*worker_fn)(void* arg, const edgc_comm* comm);

typedef struct worker_slot {
    worker_fn fn;
    void* arg;
    edgc_comm comm;
} worker_slot;

static inline void* worker_main(void* p)
{
    worker_slot* w = p;
    w->fn(w->arg, &w->comm);
    return NULL;
}

static inline int run_workers(int size, worker_fn fn, void* args, size_t arg_size)
{
    edgc_inproc* g = NULL;
    if (edgc_inproc_create(size, &g) != EDGC_OK) return -1;
    pthread_t* th = calloc((size_t)size, sizeof *th);
    worker_slot* ws = calloc((size_t)size, sizeof *ws);
    int rc = (th && ws) ? 0 : -1;
    for (int r = 0; r < size && rc == 0; r++) {
        ws[r].fn = fn;
        ws[r].arg = (char*)args + (size_t)r * arg_size;
        if (edgc_inproc_comm(g, r, &ws[r].comm) != EDGC_OK) rc = -1;
    }
    for (int r = 0; r < size && rc == 0; r++)
        pthread_create(&th[r], NULL, worker_main, &ws[r]);
    for (int r = 0; r < size && rc == 0; r++)
        pthread_join(th[r], NULL);
    free(th);
    free(ws);
    edgc_inproc_free(g);
    return rc;
}

#endif
