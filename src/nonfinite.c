/*
 * nonfinite.c - is there a NaN or Inf in a buffer? The reducer asks it of each worker's gradient
 * before a step, the engine of M = G + e when the flag rides in P's allreduce.
 */
#include "edgc_internal.h"

/* 1 if any value is NaN or Inf. x * 0 is NaN exactly for those, and the sum keeps it: a
 * branch-free pass the compiler vectorises. */
static int has_nonfinite(const float* x, size_t n)
{
    float acc[8] = {0};
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++)
            acc[j] += x[i + j] * 0.0f;
    float s = 0.0f;
    for (; i < n; i++)
        s += x[i] * 0.0f;
    for (int j = 0; j < 8; j++)
        s += acc[j];
    return s != s;
}

/* has_nonfinite over the whole gradient in 1 MB chunks on `threads` threads (an exact answer
 * whatever their number): 1 if any chunk has a non-finite value. */
int edgc__any_nonfinite(const float* x, size_t n, int threads)
{
    const size_t chunk = (size_t)1 << 18, chunks = (n + chunk - 1) / chunk;
    int bad = 0;
#ifdef _OPENMP
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1 && chunks > 1) \
    reduction(+ : bad)
#else
    (void)threads;
#endif
    for (size_t c = 0; c < chunks; c++) {
        size_t at = c * chunk;
        bad += has_nonfinite(x + at, n - at < chunk ? n - at : chunk);
    }
    return bad > 0;
}
