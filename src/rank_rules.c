/*
 * rank_rules.c - from entropy history to rank: the trend map of the authors' code, the error
 * budget, the smoothing every rule shares, r_max from a timing profile by the authors' rule, and
 * the pipeline-stage alignment (docs/ALGORITHM.md).
 * Pure functions; the controller owns the state they are applied to.
 */
#include "edgc_internal.h"

#include <limits.h>
#include <math.h>

double edgc__mean(const double* h, size_t n)
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
    double d_now = fabs(edgc__mean(h + n - n_w, n_w) - edgc__mean(h + n - 2 * n_w, n_w));
    double d_ref = fabs(edgc__mean(h, n_w) - edgc__mean(h + n_w, n_w));
    /* The authors' code divides by d_ref unguarded. A flat reference with a change
     * now means "changing faster than ever seen": the top of the range. */
    double x = d_ref > 0.0 ? d_now / d_ref : (d_now > 0.0 ? INFINITY : 0.0);
    double r = (double)b.r_min + (double)(b.r_max - b.r_min) * x;
    if (!(r < (double)b.r_max)) return b.r_max;
    return clamp_int((int)lround(r), b.r_min, b.r_max);
}

int edgc__error_target(double err, double budget, double margin, int cur, edgc__bounds b)
{
    if (!isfinite(err) || !isfinite(budget)) return cur;
    /* Over budget: the compression loses more than it did at r_max once the entropy is
     * accounted for; go up. Comfortably under: the gradient has become easier to compress. */
    if (err > budget) return cur > INT_MAX - b.step ? INT_MAX : cur + b.step;
    if (err < (1.0 - margin) * budget) return cur - b.step;
    return cur;
}

int edgc__decay_target(uint64_t step, uint64_t start, uint64_t total, edgc__bounds b)
{
    /* Early compression error costs the most loss (a high rank in the first half of a run bought
     * more than the same bytes in the second half on our benchmark), so spend the rank first. */
    double x = step <= start ? 0.0 : total <= step ? 1.0 : (double)(step - start) / (total - start);
    return (int)lround(b.r_max - (b.r_max - b.r_min) * x);
}

int edgc__smooth_rank(int target, int prev, edgc__bounds b)
{
    int r = clamp_int(target, b.r_min, b.r_max);
    if (r >= 2) r &= ~1; /* even ranks, as the authors' code */
    r = clamp_int(r, b.r_min, b.r_max);
    r = prev + clamp_int(r - prev, -b.step, b.step);
    return clamp_int(r, b.r_min, b.r_max);
}

/* Checks a (rank, ms) table: n >= 1, ranks >= 1 and increasing, times finite. */
int edgc__profile_table_ok(const int* ranks, const double* ms, size_t n)
{
    if (ranks == NULL || ms == NULL || n < 1) return 0;
    for (size_t i = 0; i < n; i++) {
        if (ranks[i] < 1 || !isfinite(ms[i])) return 0;
        if (i > 0 && ranks[i] <= ranks[i - 1]) return 0;
    }
    return 1;
}

/* Piecewise-linear T -> r over the points in rank order: the segment whose time range holds t,
 * else the nearest end segment extended (extrapolation). One point: its rank. */
static double interp_t_to_r(const int* ranks, const double* ms, size_t n, double t)
{
    if (n == 1) return ranks[0];
    size_t seg = n - 2;
    for (size_t i = 0; i + 1 < n; i++) {
        double a = ms[i], c = ms[i + 1];
        if ((t >= a && t <= c) || (t <= a && t >= c)) {
            seg = i;
            break;
        }
    }
    if (seg == n - 2 && t < ms[0] && t < ms[1]) seg = 0;
    double t0 = ms[seg], t1 = ms[seg + 1], r0 = ranks[seg], r1 = ranks[seg + 1];
    return t1 != t0 ? r0 + (r1 - r0) * (t - t0) / (t1 - t0) : r0;
}

edgc_status edgc_rmax_from_profile(const int* ranks, const double* ms, size_t n, double base_ms,
                                   int* r_max)
{
    EDGC_RETURN_IF(r_max == NULL || !edgc__profile_table_ok(ranks, ms, n) || !isfinite(base_ms),
                   EDGC_ERR_INVALID_ARG);
    double r = interp_t_to_r(ranks, ms, n, base_ms);
    if (!(r < 1e6)) r = 1e6; /* extrapolated far out: the caller clamps to the rank cap */
    int out = r >= 4.0 ? 4 * (int)floor(r / 4.0) : (int)floor(r);
    *r_max = out < 1 ? 1 : out;
    return EDGC_OK;
}

edgc_status edgc_profile_time_at(const edgc_profile* p, double rank, double* ms)
{
    EDGC_RETURN_IF(p == NULL || ms == NULL || !edgc__profile_table_ok(p->ranks, p->ms, p->n) ||
                       !isfinite(rank),
                   EDGC_ERR_INVALID_ARG);
    if (p->n == 1) {
        *ms = p->ms[0];
        return EDGC_OK;
    }
    size_t seg = 0;
    while (seg + 2 < p->n && rank > p->ranks[seg + 1])
        seg++;
    double r0 = p->ranks[seg], r1 = p->ranks[seg + 1];
    *ms = p->ms[seg] + (p->ms[seg + 1] - p->ms[seg]) * (rank - r0) / (r1 - r0);
    return EDGC_OK;
}

edgc_status edgc_wam_stage_rank(const edgc_profile* own, double t0_ms, int stage, double t_mb_ms,
                                int r_max, int* rank)
{
    EDGC_RETURN_IF(own == NULL || rank == NULL ||
                       !edgc__profile_table_ok(own->ranks, own->ms, own->n) ||
                       !isfinite(own->base_ms) || !isfinite(t0_ms) || stage < 1 ||
                       !(isfinite(t_mb_ms) && t_mb_ms >= 0.0) || r_max < 1,
                   EDGC_ERR_INVALID_ARG);
    /* Stage p finishes its backward about p micro-batches before stage 0, which is on the
     * critical path: that slack buys it a larger rank, or no compression at all. */
    double budget = t0_ms + (double)stage * t_mb_ms;
    *rank = 0;
    if (budget > own->base_ms) return EDGC_OK;
    double r = interp_t_to_r(own->ranks, own->ms, own->n, budget);
    if (!(r < 1e6)) return EDGC_OK;
    int rp = 4 * ((int)floor(r / 4.0) + 1);
    if (rp < 4) rp = 4; /* extrapolated below the table */
    *rank = rp > r_max ? 0 : rp;
    return EDGC_OK;
}
