/*
 * peak.c - the sgemm rate of this rank; see peak.h. Square 1024 products: large enough that
 * OpenBLAS runs its best kernel, small enough (12 MB) to cost little at the end of a run.
 */
#define _POSIX_C_SOURCE 200809L
#include "peak.h"

#include <cblas.h>
#include <stdlib.h>
#include <time.h>

enum { PEAK_N = 1024, PEAK_REPS = 3 };

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

double peak_sgemm_gflops(void)
{
    const size_t n = PEAK_N;
    float* a = malloc(n * n * sizeof *a);
    float* b = malloc(n * n * sizeof *b);
    float* c = malloc(n * n * sizeof *c);
    double best = 0.0;
    if (a != NULL && b != NULL && c != NULL) {
        for (size_t i = 0; i < n * n; i++) {
            a[i] = (float)(i % 7) * 0.25f; /* any finite values: the rate does not depend on them */
            b[i] = (float)(i % 5) * 0.5f;
        }
        for (int rep = 0; rep <= PEAK_REPS; rep++) { /* rep 0 warms pages and caches up */
            double t0 = now_s();
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, PEAK_N, PEAK_N, PEAK_N, 1.0f, a,
                        PEAK_N, b, PEAK_N, 0.0f, c, PEAK_N);
            double rate = 2.0 * (double)n * n * n / (now_s() - t0) / 1e9;
            if (rep > 0 && rate > best) best = rate;
        }
    }
    free(a);
    free(b);
    free(c);
    return best;
}
