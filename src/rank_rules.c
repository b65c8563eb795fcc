/*
 * rank_rules.c - from entropy history to rank: the trend map of the authors' code (spec 5.5),
 * the smoothing every rule shares (spec 5.4), and r_max from a timing profile (spec 5.4).
 * Pure functions; the controller owns the state they are applied to.
 */
#include "edgc_internal.h"

#include <math.h>

static double mean(const double* h, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += h[i];
    return s / (double)n;
}

static int clamp_int(int v, int lo, int hi)
{
    return v < lo ? lo : (v > hi ? hi : v);
}

int edgc__trend_target(const double* h, size_t n, size_t n_w, edgc__bounds b)
{
    if (n_w == 0 || n < 2 * n_w) return b.r_max;
    double d_now = fabs(mean(h + n - n_w, n_w) - mean(h + n - 2 * n_w, n_w));
    double d_ref = fabs(mean(h, n_w) - mean(h + n_w, n_w));
    /* The authors' code divides by d_ref unguarded (spec 11.3). A flat reference with a change
     * now means "changing faster than ever seen": the top of the range. */
    double x = d_ref > 0.0 ? d_now / d_ref : (d_now > 0.0 ? INFINITY : 0.0);
    double r = (double)b.r_min + (double)(b.r_max - b.r_min) * x;
    if (!(r < (double)b.r_max)) return b.r_max;
    return clamp_int((int)lround(r), b.r_min, b.r_max);
}

int edgc__smooth_rank(int target, int prev, edgc__bounds b)
{
    int r = clamp_int(target, b.r_min, b.r_max);
    if (r >= 2) r &= ~1; /* even ranks, spec 5.4 */
    r = clamp_int(r, b.r_min, b.r_max);
    r = prev + clamp_int(r - prev, -b.step, b.step);
    return clamp_int(r, b.r_min, b.r_max);
}

edgc_status edgc_rmax_from_profile(const int* ranks, const double* ms, size_t n, double base_ms,
                                   int* r_max)
{
    EDGC_RETURN_IF(ranks == NULL || ms == NULL || r_max == NULL || n < 1 || !isfinite(base_ms),
                   EDGC_ERR_INVALID_ARG);
    for (size_t i = 0; i < n; i++) {
        EDGC_RETURN_IF(ranks[i] < 1 || !isfinite(ms[i]), EDGC_ERR_INVALID_ARG);
        EDGC_RETURN_IF(i > 0 && ranks[i] <= ranks[i - 1], EDGC_ERR_INVALID_ARG);
    }
    double r;
    if (n == 1) {
        r = ranks[0];
    } else {
        /* Piecewise-linear T -> r over the points in rank order: the segment whose time range
         * holds base_ms, else the nearest end segment extended (extrapolation). */
        size_t seg = n - 2;
        for (size_t i = 0; i + 1 < n; i++) {
            double a = ms[i], c = ms[i + 1];
            if ((base_ms >= a && base_ms <= c) || (base_ms <= a && base_ms >= c)) {
                seg = i;
                break;
            }
        }
        if (seg == n - 2 && base_ms < ms[0] && base_ms < ms[1]) seg = 0;
        double t0 = ms[seg], t1 = ms[seg + 1];
        double r0 = ranks[seg], r1 = ranks[seg + 1];
        r = t1 != t0 ? r0 + (r1 - r0) * (base_ms - t0) / (t1 - t0) : r0;
    }
    if (!(r < 1e6)) r = 1e6; /* extrapolated far out: the caller clamps to the rank cap */
    int out = r >= 4.0 ? 4 * (int)floor(r / 4.0) : (int)floor(r);
    *r_max = out < 1 ? 1 : out;
    return EDGC_OK;
}
