/*
 * entropy.c - GDS, the Gradient Data Sampler (docs/ALGORITHM.md, 2): histogram entropy of a strided
 * sample of the gradient. Deliberately the authors' estimator (strided, not random; bins over the
 * sample's own [min, max]; torch.histc edge rule), plus a scale-aware variant.
 * Two passes over the sample and no allocation per call: the histogram lives in the object.
 */
#include "edgc_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct edgc_gds {
    size_t stride; /* k = floor(1 / beta) */
    int bins;
    uint64_t* hist; /* bins counters, reused by every call */
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
    *out = g;
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

    /* Pass 1: range and count of the finite sampled values. */
    float vmin = INFINITY, vmax = -INFINITY;
    size_t count = 0;
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
    memset(g->hist, 0, (size_t)bins * sizeof *g->hist);
    for (size_t i = 0; i < n; i += k) {
        float v = x[i];
        if (!isfinite(v)) continue;
        int b = (int)(((double)v - (double)vmin) * scale);
        b = b < bins ? b : bins - 1;
        g->hist[b]++;
    }
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
