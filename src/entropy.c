/*
 * entropy.c - GDS, the Gradient Data Sampler (docs/ALGORITHM.md, 2): histogram entropy of a strided
 * sample of the gradient. Deliberately the authors' estimator (strided, not random; bins over the
 * sample's own [min, max]; torch.histc edge rule), plus a scale-aware variant.
 * Two passes over the sample and no allocation per call: the histograms live in the object.
 * The passes over a contiguous sample (beta = 1) are written for the vectoriser, and built for
 * AVX2 as well where the compiler can (chosen at run time): the range without branches, the bins
 * computed a block at a time and then counted into interleaved sub-histograms, so that values in
 * one bin do not wait on each other's increment. Strided, every cache line still comes in and the
 * pass runs at memory speed (bench_core): the plain loop is as fast there. The same IEEE
 * arithmetic on every path, so every bin is the same on any CPU. Threads (edgc_gds_set_threads)
 * split both passes; each thread counts into its own histograms and the counts are added after,
 * so min, max and every bin are exact whatever the thread count.
 */
#include "edgc_internal.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#define GDS_SIMD _Pragma("omp simd")
#define GDS_SIMD_RANGE                                                                             \
    _Pragma("omp simd reduction(min : lo) reduction(max : hi) reduction(+ : count)")
#else
#define GDS_SIMD
#define GDS_SIMD_RANGE
#endif
#if defined(__x86_64__) && defined(__GNUC__) && defined(__has_attribute) && !defined(EDGC_NO_CLONES)
#if __has_attribute(target_clones)
#define GDS_WIDE __attribute__((target_clones("avx2", "default")))
#endif
#endif
#ifndef GDS_WIDE
#define GDS_WIDE
#endif

/* Below this many samples one thread is faster than waking the others. */
#define GDS_PARALLEL_MIN ((size_t)1 << 16)
/* Samples whose bins are computed together, then counted. */
#define GDS_BLOCK 256
/* Sub-histograms a thread counts into, in turn. */
#define GDS_SUBS 4
/* Samples a thread counts before its 32-bit sub-histograms are added into its 64-bit histogram:
 * no sub-histogram reaches 2^32. */
#define GDS_FLUSH ((size_t)1 << 30)

struct edgc_gds {
    size_t stride; /* k = floor(1 / beta) */
    int bins;
    int threads;
    int cap;        /* threads the buffers below are sized for: they only grow */
    uint64_t* hist; /* threads x bins counters, reused by every call; thread 0's are the total */
    /* threads x GDS_SUBS x (bins + 1) counters, bin `bins` for non-finite values; zero between
     * calls (contiguous_bins empties them as it flushes) */
    uint32_t* sub;
};

static size_t sub_size(int threads, int bins)
{
    return (size_t)threads * GDS_SUBS * ((size_t)bins + 1);
}

edgc_status edgc_gds_create(double beta, int bins, edgc_gds** out)
{
    EDGC_RETURN_IF(out == NULL, EDGC_ERR_INVALID_ARG);
    *out = NULL;
    EDGC_RETURN_IF(!(isfinite(beta) && beta > 0.0 && beta <= 1.0) || bins < 2, EDGC_ERR_CONFIG);
    edgc_gds* g = calloc(1, sizeof *g);
    if (g == NULL) return EDGC_ERR_NOMEM;
    g->hist = calloc((size_t)bins, sizeof *g->hist);
    g->sub = calloc(sub_size(1, bins), sizeof *g->sub);
    if (g->hist == NULL || g->sub == NULL) {
        free(g->hist);
        free(g->sub);
        free(g);
        return EDGC_ERR_NOMEM;
    }
    double k = floor(1.0 / beta);
    g->stride = k < 1.0 ? 1 : k < 0x1p63 ? (size_t)k : (size_t)1 << 63; /* no overflow */
    g->bins = bins;
    g->threads = g->cap = 1;
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
    if (t <= g->cap) { /* fewer threads use the front of the buffers, whose subs are zero */
        g->threads = t;
        return EDGC_OK;
    }
    uint64_t* h = realloc(g->hist, (size_t)t * (size_t)g->bins * sizeof *h);
    if (h == NULL) return EDGC_ERR_NOMEM;
    g->hist = h;
    uint32_t* sub = realloc(g->sub, sub_size(t, g->bins) * sizeof *sub);
    if (sub == NULL) return EDGC_ERR_NOMEM; /* the larger hist is harmless */
    memset(sub, 0, sub_size(t, g->bins) * sizeof *sub);
    g->sub = sub;
    g->threads = g->cap = t;
    return EDGC_OK;
}

void edgc_gds_free(edgc_gds* g)
{
    if (g == NULL) return;
    free(g->hist);
    free(g->sub);
    free(g);
}

/* Thread t of nt's share of the samples [0, n): [*j0, *j1), the first n % nt shares one longer. */
static void share(size_t n, size_t t, size_t nt, size_t* j0, size_t* j1)
{
    *j0 = n / nt * t + (t < n % nt ? t : n % nt);
    *j1 = *j0 + n / nt + (t < n % nt);
}

/* The calling thread's number and team size (0 and 1 outside a parallel region). */
static void whoami(size_t* t, size_t* nt)
{
    *t = 0;
    *nt = 1;
#ifdef _OPENMP
    *t = (size_t)omp_get_thread_num();
    *nt = (size_t)omp_get_num_threads();
#endif
}

/* Pass 1 over samples [j0, j1) (x[j k]): min, max and count of the finite ones. Branch-free: a
 * non-finite value is +Inf to the min and -Inf to the max. */
static inline void range_at(const float* x, size_t k, size_t j0, size_t j1, float* lo_out,
                            float* hi_out, size_t* count_out)
{
    float lo = INFINITY, hi = -INFINITY;
    size_t count = 0;
    GDS_SIMD_RANGE
    for (size_t j = j0; j < j1; j++) {
        float v = x[j * k];
        int ok = fabsf(v) <= FLT_MAX;
        float a = ok ? v : INFINITY, b = ok ? v : -INFINITY;
        lo = a < lo ? a : lo;
        hi = b > hi ? b : hi;
        count += (size_t)ok;
    }
    *lo_out = lo;
    *hi_out = hi;
    *count_out = count;
}

/* The same, with k = 1 known to the compiler: contiguous loads. */
GDS_WIDE static void sample_range(const float* x, size_t k, size_t j0, size_t j1, float* lo,
                                  float* hi, size_t* count)
{
    if (k == 1)
        range_at(x, 1, j0, j1, lo, hi, count);
    else
        range_at(x, k, j0, j1, lo, hi, count);
}

/* Pass 2 over the contiguous x[j0..j1): each finite value's bin, (int)((v - lo) * scale) with a
 * value at the maximum in the last bin (torch.histc), counted into hist; non-finite ones go to
 * bin `bins` of the sub-histograms, which is never read. sub: GDS_SUBS x (bins + 1), zero. */
GDS_WIDE static void contiguous_bins(const float* x, size_t j0, size_t j1, double lo, double scale,
                                     int bins, uint32_t* sub, uint64_t* hist)
{
    const size_t w = (size_t)bins + 1;
    const double last = (double)(bins - 1);
    int idx[GDS_BLOCK];
    size_t counted = 0;
    for (size_t j = j0; j < j1; j += GDS_BLOCK) {
        const size_t m = j1 - j < GDS_BLOCK ? j1 - j : GDS_BLOCK;
        GDS_SIMD
        for (size_t t = 0; t < m; t++) {
            float v = x[j + t];
            double d = ((double)v - lo) * scale;
            /* clamped into [0, bins - 1] before the conversion, which is then defined for every
             * input (NaN and +Inf land on the top, -Inf on 0); for a finite value this is the
             * same as converting and then capping at the last bin */
            double c = d < last ? d : last;
            c = c > 0.0 ? c : 0.0;
            idx[t] = fabsf(v) <= FLT_MAX ? (int)c : bins;
        }
        size_t t = 0;
        for (; t + GDS_SUBS <= m; t += GDS_SUBS)
            for (size_t s = 0; s < GDS_SUBS; s++)
                sub[s * w + (size_t)idx[t + s]]++;
        for (; t < m; t++)
            sub[(size_t)idx[t]]++;
        counted += m;
        if (counted >= GDS_FLUSH || j + m >= j1) { /* into the 64-bit counts, before any wraps */
            for (size_t s = 0; s < GDS_SUBS; s++)
                for (int b = 0; b < bins; b++) {
                    hist[b] += sub[s * w + (size_t)b];
                    sub[s * w + (size_t)b] = 0;
                }
            counted = 0;
        }
    }
}

/* Pass 2 over the strided samples [j0, j1) (x[j k], k > 1), the same bins one at a time. */
static void strided_bins(const float* x, size_t k, size_t j0, size_t j1, double lo, double scale,
                         int bins, uint64_t* hist)
{
    for (size_t j = j0; j < j1; j++) {
        float v = x[j * k];
        if (!isfinite(v)) continue;
        int b = (int)(((double)v - lo) * scale);
        hist[b < bins ? b : bins - 1]++;
    }
}

/* The floats of n pieces laid end to end, read as one buffer. */
struct pieces {
    const float* const* piece;
    const size_t* len;
    size_t n;
};

/* The samples [j0, j1) (sample j is float j k of the pieces as one buffer) that lie in piece p,
 * which starts at flat index `start`: [*a, *b), sample *a at *x. 0 when none do. */
static int run_in_piece(const struct pieces* g, size_t p, size_t start, size_t k, size_t j0,
                        size_t j1, size_t* a, size_t* b, const float** x)
{
    size_t lo = (start + k - 1) / k, hi = (start + g->len[p] + k - 1) / k;
    *a = lo > j0 ? lo : j0;
    *b = hi < j1 ? hi : j1;
    if (*a >= *b) return 0;
    *x = g->piece[p] + (*a * k - start);
    return 1;
}

/* Both passes, each thread over its share of the samples, piece by piece: the range, the counts
 * and so H are the same however the floats are cut into pieces. */
static edgc_status entropy(edgc_gds* g, const struct pieces* grad, edgc_entropy* out)
{
    const size_t k = g->stride;
    size_t n = 0;
    for (size_t p = 0; p < grad->n; p++)
        n += grad->len[p];
    const size_t samples = n == 0 ? 0 : (n - 1) / k + 1;
    const int threads = samples >= GDS_PARALLEL_MIN ? g->threads : 1;
    const int bins = g->bins;

    /* Pass 1: range and count of the finite sampled values. */
    float vmin = INFINITY, vmax = -INFINITY;
    size_t count = 0;
#ifdef _OPENMP
#pragma omp parallel num_threads(threads) if (threads > 1) \
    reduction(min : vmin) reduction(max : vmax) reduction(+ : count)
#endif
    {
        size_t t, nt, j0, j1, a, b, start = 0;
        whoami(&t, &nt);
        share(samples, t, nt, &j0, &j1);
        const float* x;
        for (size_t p = 0; p < grad->n; start += grad->len[p], p++) {
            if (!run_in_piece(grad, p, start, k, j0, j1, &a, &b, &x)) continue;
            float lo, hi;
            size_t c;
            sample_range(x, k, 0, b - a, &lo, &hi, &c);
            vmin = lo < vmin ? lo : vmin;
            vmax = hi > vmax ? hi : vmax;
            count += c;
        }
    }
    *out = (edgc_entropy){.h = 0.0, .h_scaled = -INFINITY, .count = count};
    if (count == 0) return EDGC_OK;
    out->min = vmin;
    out->max = vmax;
    if (!(vmax > vmin)) return EDGC_OK; /* every value in one bin */

    /* Pass 2: equal-width histogram; a value equal to max goes to the last bin (torch.histc). */
    const double range = (double)vmax - (double)vmin;
    const double scale = (double)bins / range;
    /* every thread's counters cleared here: a team may get fewer threads than asked for */
    memset(g->hist, 0, (size_t)g->threads * (size_t)bins * sizeof *g->hist);
#ifdef _OPENMP
#pragma omp parallel num_threads(threads) if (threads > 1)
#endif
    {
        size_t t, nt, j0, j1, a, b, start = 0;
        whoami(&t, &nt);
        share(samples, t, nt, &j0, &j1);
        uint64_t* hist = g->hist + t * (size_t)bins;
        const float* x;
        for (size_t p = 0; p < grad->n; start += grad->len[p], p++) {
            if (!run_in_piece(grad, p, start, k, j0, j1, &a, &b, &x)) continue;
            if (k == 1)
                contiguous_bins(x, 0, b - a, (double)vmin, scale, bins,
                                g->sub + t * GDS_SUBS * ((size_t)bins + 1), hist);
            else
                strided_bins(x, k, 0, b - a, (double)vmin, scale, bins, hist);
        }
    }
    for (int t = 1; t < threads; t++) /* a smaller team left the rest zero */
        for (int b = 0; b < bins; b++)
            g->hist[b] += g->hist[(size_t)t * (size_t)bins + b];
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

edgc_status edgc_gds_entropy(edgc_gds* g, const float* x, size_t n, edgc_entropy* out)
{
    EDGC_RETURN_IF(g == NULL || out == NULL || (x == NULL && n > 0), EDGC_ERR_INVALID_ARG);
    const struct pieces one = {&x, &n, 1};
    return entropy(g, &one, out);
}

edgc_status edgc__gds_entropy_grad(edgc_gds* g, const edgc__grad* grad, edgc_entropy* out)
{
    const struct pieces all = {(const float* const*)grad->piece, grad->len, grad->n};
    return entropy(g, &all, out);
}

edgc_status edgc_gds_sample_step(double alpha, uint64_t step, int* yes)
{
    EDGC_RETURN_IF(yes == NULL || !(isfinite(alpha) && alpha > 0.0 && alpha <= 1.0),
                   EDGC_ERR_INVALID_ARG);
    *yes = step % edgc__sample_every(alpha) == 0;
    return EDGC_OK;
}
