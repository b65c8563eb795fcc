/*
 * entropy.c - GDS, the Gradient Data Sampler (docs/ALGORITHM.md, 2): histogram entropy of a strided
 * sample of the gradient. Deliberately the authors' estimator (strided, not random; bins over the
 * sample's own [min, max]; torch.histc edge rule), plus a scale-aware variant.
 * Two passes over the sample and no allocation per call: the histogram lives in the object.
 * Threads (edgc_gds_set_threads) split both passes; each thread counts into its own histogram and
 * the counts are added after, so min, max and every bin are exact whatever the thread count.
 */
#include "edgc_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* Below this many samples one thread is faster than waking the others. */
#define GDS_PARALLEL_MIN ((size_t)1 << 16)

struct edgc_gds {
    size_t stride; /* k = floor(1 / beta) */
    int bins;
    int threads;
    uint64_t* hist; /* threads x bins counters, reused by every call; thread 0's are the total */
};

edgc_status edgc_gds_create(double beta, int bins, edgc_gds** out)
{
    EDGC_RETURN_IF(out == NULL, EDGC_ERR_INVALID_ARG);
    *out = NULL;
    EDGC_RETURN_IF(!(isfinite(beta) && beta > 0.0 && beta <= 1.0) || bins < 2, EDGC_ERR_CONFIG);
    edgc_gds* g = calloc(1, sizeof *g);
    if (g == NULL) return EDGC_ERR_NOMEM;
    g->hist = calloc((size_t)bins, sizeof *g->hist);
    if (g->hist == NULL) {
        free(g);
        return EDGC_ERR_NOMEM;
    }
    double k = floor(1.0 / beta);
    g->stride = k < 1.0 ? 1 : (size_t)k;
    g->bins = bins;
    g->threads = 1;
    *out = g;
    return EDGC_OK;
}

edgc_status edgc_gds_set_threads(edgc_gds* g, int threads)
{
    EDGC_RETURN_IF(g == NULL || threads < 0 || threads > 1024, EDGC_ERR_INVALID_ARG);
    int t = edgc__threads(threads);
#ifndef _OPENMP
    t = 1; /* built without OpenMP: one thread, the same results */
#endif
    if (t == g->threads) return EDGC_OK;
    uint64_t* h = realloc(g->hist, (size_t)t * (size_t)g->bins * sizeof *h);
    if (h == NULL) return EDGC_ERR_NOMEM;
    g->hist = h;
    g->threads = t;
    return EDGC_OK;
}

void edgc_gds_free(edgc_gds* g)
{
    if (g == NULL) return;
    free(g->hist);
    free(g);
}

edgc_status edgc_gds_entropy(edgc_gds* g, const float* x, size_t n, edgc_entropy* out)
{
    EDGC_RETURN_IF(g == NULL || out == NULL || (x == NULL && n > 0), EDGC_ERR_INVALID_ARG);
    const size_t k = g->stride;

#ifdef _OPENMP
    const size_t samples = n == 0 ? 0 : (n - 1) / k + 1;
    const int threads = samples >= GDS_PARALLEL_MIN ? g->threads : 1;
#endif

    /* Pass 1: range and count of the finite sampled values. */
    float vmin = INFINITY, vmax = -INFINITY;
    size_t count = 0;
#ifdef _OPENMP
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1) \
    reduction(min : vmin) reduction(max : vmax) reduction(+ : count)
#endif
    for (size_t i = 0; i < n; i += k) {
        float v = x[i];
        if (!isfinite(v)) continue;
        vmin = v < vmin ? v : vmin;
        vmax = v > vmax ? v : vmax;
        count++;
    }
    *out = (edgc_entropy){.h = 0.0, .h_scaled = -INFINITY, .count = count};
    if (count == 0) return EDGC_OK;
    out->min = vmin;
    out->max = vmax;
    if (!(vmax > vmin)) return EDGC_OK; /* every value in one bin */

    /* Pass 2: equal-width histogram; a value equal to max goes to the last bin (torch.histc). */
    const int bins = g->bins;
    const double range = (double)vmax - (double)vmin;
    const double scale = (double)bins / range;
    /* every thread's histogram cleared here: a team may get fewer threads than asked for */
    memset(g->hist, 0, (size_t)g->threads * (size_t)bins * sizeof *g->hist);
#ifdef _OPENMP
#pragma omp parallel num_threads(threads) if (threads > 1)
#endif
    {
        int tid = 0;
#ifdef _OPENMP
        tid = omp_get_thread_num();
#endif
        uint64_t* hist = g->hist + (size_t)tid * (size_t)bins;
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
        for (size_t i = 0; i < n; i += k) {
            float v = x[i];
            if (!isfinite(v)) continue;
            int b = (int)(((double)v - (double)vmin) * scale);
            b = b < bins ? b : bins - 1;
            hist[b]++;
        }
    }
#ifdef _OPENMP
    for (int t = 1; t < threads; t++)
        for (int b = 0; b < bins; b++)
            g->hist[b] += g->hist[(size_t)t * (size_t)bins + b];
#endif
    double h = 0.0, inv = 1.0 / (double)count;
    for (int b = 0; b < bins; b++) {
        if (g->hist[b] == 0) continue;
        double p = (double)g->hist[b] * inv;
        h -= p * log(p);
    }
    out->h = h;
    out->h_scaled = h + log(range / (double)bins);
    return EDGC_OK;
}

edgc_status edgc_gds_sample_step(double alpha, uint64_t step, int* yes)
{
    EDGC_RETURN_IF(yes == NULL || !(isfinite(alpha) && alpha > 0.0 && alpha <= 1.0),
                   EDGC_ERR_INVALID_ARG);
    uint64_t every = (uint64_t)llround(1.0 / alpha);
    *yes = (step % (every ? every : 1)) == 0;
    return EDGC_OK;
}
