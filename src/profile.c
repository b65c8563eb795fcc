/*
 * profile.c - measuring sync time against rank and choosing r_max from it (docs/ALGORITHM.md,
 * "Profiling"). A profile is: a few dense steps timed for T_base, then ranks 8, 12, 16, 24, 32,
 * 48, ... (from the controller's first rank, see next_rank) timed for profile_reps steps each (the
 * first dropped: it pays for allocation and a cold Q). T(r) is the median of a rank's kept
 * samples, so one stalled transfer does not move it; T_base is the mean of its samples, and the
 * budget rule uses their fastest (see profiler_record). The compute time per step (what the caller
 * does between two synchronisations) is collected on the same steps, so the budget rule can weigh
 * the sync time against the whole step.
 *
 * Two rules pick r_max:
 *  - budget (default): the largest *measured* rank whose step time C + T(r) is within
 *    rmax_slack of the best saving any rank achieved, never a rank sending more than half the
 *    dense bytes; profiling stops at the first rank past that threshold. If even the best rank
 *    saves less than min_saving of a dense step, the run stays dense. When the dense samples
 *    all stalled, the link's marginal rate over the largest ranks timed lowers the dense cost
 *    the threshold is drawn from (edgc__link_dense_ms).
 *  - paper: the largest rank whose interpolated (or extrapolated) sync time is below T_base.
 * Pure logic: the caller measures and agrees the times across workers.
 */
#include "edgc_internal.h"

#include <limits.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

void edgc__profiler_start(edgc__profiler* p, uint64_t origin, int first_rank)
{
    int count = p->count;
    double base = p->base_ms, compute = p->compute_ms;
    memset(p, 0, sizeof *p);
    p->active = 1;
    p->origin = origin;
    p->rank = first_rank < 1 ? 1 : first_rank;
    p->count = count;
    /* the last profile's results stay readable until this one finishes */
    p->base_ms = base;
    p->compute_ms = compute;
}

/* The rank profiled after `rank`: doubling up to 8, then half steps between powers of two (8, 12,
 * 16, 24, 32, 48, ...). A step of 2x above 8 left the budget rule a choice between 16 and 32 on
 * a 100 Mbit/s link where 24 was the rank that both kept dense's loss and saved the time (the
 * converge bench; docs/ALGORITHM.md, 4.2). */
static int next_rank(int rank)
{
    if (rank > INT_MAX / 2) return INT_MAX;
    if (rank < 8) return 2 * rank;
    int pow2 = (rank & (rank - 1)) == 0;
    return pow2 ? rank + rank / 2 : rank / 3 * 4; /* 8 -> 12 -> 16, 16 -> 24 -> 32 */
}

static int cmp_double(const void* a, const void* b)
{
    double x = *(const double*)a, y = *(const double*)b;
    return (x > y) - (x < y);
}

/* Median of the finite values; NaN when there are none. */
static double median(const double* v, size_t n)
{
    double s[EDGC__PROF_COMPUTE_MAX];
    size_t k = 0;
    for (size_t i = 0; i < n && k < EDGC__PROF_COMPUTE_MAX; i++)
        if (isfinite(v[i])) s[k++] = v[i];
    if (k == 0) return NAN;
    qsort(s, k, sizeof *s, cmp_double);
    return k % 2 ? s[k / 2] : 0.5 * (s[k / 2 - 1] + s[k / 2]);
}

edgc_status edgc__rmax_budget(const int* ranks, const double* ms, size_t n, double base_ms,
                              double compute_ms, double slack, double min_saving, int* r_max,
                              int* more)
{
    EDGC_RETURN_IF(r_max == NULL || !edgc__profile_table_ok(ranks, ms, n) || !isfinite(base_ms),
                   EDGC_ERR_INVALID_ARG);
    double c = isfinite(compute_ms) && compute_ms > 0.0 ? compute_ms : 0.0;
    double dense = c + base_ms, best = INFINITY;
    for (size_t i = 0; i < n; i++)
        if (c + ms[i] < best) best = c + ms[i];
    /* Give up `slack` of the best saving for quality: a higher rank is worth its time only while
     * the step stays this close to the fastest one. */
    double threshold = best + slack * (dense - best);
    int r = 0;
    for (size_t i = 0; i < n && c + ms[i] <= threshold; i++)
        r = ranks[i];
    if (best > (1.0 - min_saving) * dense) r = 0; /* nothing saves enough: stay dense */
    *r_max = r;
    if (more != NULL) *more = r > 0 && r == ranks[n - 1] && ms[n - 1] < base_ms;
    return EDGC_OK;
}

double edgc__link_dense_ms(const int* ranks, const double* ms, size_t n, const edgc__payload* pay)
{
    if (pay == NULL || pay->by_rank == NULL || n < 4 || ranks[n - 1] > pay->worth_cap)
        return INFINITY;
    double pred[3];
    for (size_t k = 0; k < 3; k++) {
        size_t i = n - 3 + k;
        double dt = ms[i] - ms[i - 1];
        double df = (double)pay->by_rank[ranks[i]] - (double)pay->by_rank[ranks[i - 1]];
        pred[k] = dt > 0.0 && df > 0.0
                      ? ms[i] + ((double)pay->by_rank[0] - (double)pay->by_rank[ranks[i]]) * dt / df
                      : INFINITY;
    }
    qsort(pred, 3, sizeof *pred, cmp_double);
    return pred[1];
}

int edgc__profiler_record(edgc__profiler* p, const edgc_config* cfg, const edgc__payload* pay,
                          int rank_cap, double sync_ms, double compute_ms, int* r_max)
{
    if (p->n_compute < EDGC__PROF_COMPUTE_MAX) p->compute[p->n_compute++] = compute_ms;
    if (p->base_n < cfg->profile_base_steps) {
        p->base_sum += sync_ms;
        if (p->base_n == 0 || sync_ms < p->base_min) p->base_min = sync_ms;
        p->base_n++;
        return 0;
    }
    if (p->rep > 0) p->rep_ms[p->rep - 1] = sync_ms;
    if (++p->rep < cfg->profile_reps) return 0;
    /* A dense sync over TCP is bimodal, about half its steps in each mode: the mean is what a
     * dense run costs, a median would pick one mode. A rank's sync stalls only now and then.
     * The budget rule weighs ranks against the fastest dense sample instead: what the bytes
     * cost when the link does not stall, which four samples pin down where their mean does not
     * (docs/ALGORITHM.md 4.2). */
    double t_base = p->base_sum / p->base_n;
    double t = median(p->rep_ms, (size_t)cfg->profile_reps - 1);
    p->ranks[p->n] = p->rank;
    p->ms[p->n] = t;
    p->n++;
    p->rep = 0;
    double compute = median(p->compute, p->n_compute);
    int next = next_rank(p->rank);
    int at_cap = rank_cap < 1 || p->rank >= rank_cap || p->n == EDGC__PROF_MAX;
    int r = 0;
    if (cfg->rmax_rule == EDGC_RMAX_BUDGET) {
        int more = 0;
        edgc__rmax_budget(p->ranks, p->ms, p->n, p->base_min, compute, cfg->rmax_slack,
                          cfg->min_saving, &r, &more);
        /* A single point cannot show the saving yet: always time the next rank too. */
        if ((more || p->n == 1) && !at_cap && next <= pay->worth_cap) {
            p->rank = next;
            return 0;
        }
        /* Four stalled dense samples put the line too high. The larger ranks' marginal rate
         * tells what the dense bytes cost on this link without a stall; it can only lower the
         * line, and only once profiling has stopped, so the ranks timed stay the same
         * (docs/ALGORITHM.md 4.2). */
        double link = edgc__link_dense_ms(p->ranks, p->ms, p->n, pay);
        if (link < p->base_min)
            edgc__rmax_budget(p->ranks, p->ms, p->n, link, compute, cfg->rmax_slack,
                              cfg->min_saving, &r, NULL);
    } else {
        if (t <= t_base && !at_cap) {
            p->rank = next;
            return 0;
        }
        /* The smallest rank tried is already slower than dense: nothing to gain, stay dense. */
        if (!(p->n == 1 && t > t_base)) edgc_rmax_from_profile(p->ranks, p->ms, p->n, t_base, &r);
    }
    p->active = 0;
    p->base_ms = t_base;
    p->compute_ms = compute;
    p->count++;
    *r_max = r;
    return 1;
}

double edgc__profiler_predict(const edgc__profiler* p, int rank)
{
    if (rank == 0) return p->base_ms;
    if (p->n == 0) return NAN;
    /* within what was measured only: a rank outside takes the nearest end's time */
    double r = rank < p->ranks[0]          ? p->ranks[0]
               : rank > p->ranks[p->n - 1] ? p->ranks[p->n - 1]
                                           : rank;
    edgc_profile prof = {p->ranks, p->ms, p->n, p->base_ms};
    double ms = NAN;
    edgc_profile_time_at(&prof, r, &ms);
    return ms;
}

#define PUT(x) edgc__put(w, &(x), sizeof(x))
#define GET(x) edgc__get(r, &(x), sizeof(x))

void edgc__profiler_save(const edgc__profiler* p, edgc__writer* w)
{
    uint64_t n = p->n, n_compute = p->n_compute;
    PUT(p->active);
    PUT(p->origin);
    PUT(p->base_sum);
    PUT(p->base_min);
    PUT(p->base_n);
    PUT(p->rank);
    PUT(p->rep);
    if (p->rep > 1) edgc__put(w, p->rep_ms, (size_t)(p->rep - 1) * sizeof *p->rep_ms);
    PUT(n);
    edgc__put(w, p->ranks, p->n * sizeof *p->ranks);
    edgc__put(w, p->ms, p->n * sizeof *p->ms);
    PUT(n_compute);
    edgc__put(w, p->compute, p->n_compute * sizeof *p->compute);
    PUT(p->base_ms);
    PUT(p->compute_ms);
    PUT(p->count);
}

edgc_status edgc__profiler_load(edgc__profiler* p, edgc__reader* r)
{
    uint64_t n = 0, n_compute = 0;
    GET(p->active);
    GET(p->origin);
    GET(p->base_sum);
    GET(p->base_min);
    GET(p->base_n);
    GET(p->rank);
    GET(p->rep);
    if (r->bad || p->rep < 0 || p->rep > EDGC__PROF_SAMPLES_MAX) return EDGC_ERR_CORRUPT;
    if (p->rep > 1) edgc__get(r, p->rep_ms, (size_t)(p->rep - 1) * sizeof *p->rep_ms);
    GET(n);
    if (r->bad || n > EDGC__PROF_MAX) return EDGC_ERR_CORRUPT;
    p->n = (size_t)n;
    edgc__get(r, p->ranks, p->n * sizeof *p->ranks);
    edgc__get(r, p->ms, p->n * sizeof *p->ms);
    GET(n_compute);
    if (r->bad || n_compute > EDGC__PROF_COMPUTE_MAX) return EDGC_ERR_CORRUPT;
    p->n_compute = (size_t)n_compute;
    edgc__get(r, p->compute, p->n_compute * sizeof *p->compute);
    GET(p->base_ms);
    GET(p->compute_ms);
    GET(p->count);
    if (r->bad) return EDGC_ERR_CORRUPT;
    if (p->n > 0 && !edgc__profile_table_ok(p->ranks, p->ms, p->n)) return EDGC_ERR_CORRUPT;
    /* counters a real run keeps small; a blob claiming otherwise would overflow them later */
    const int limit = 1 << 24;
    if (p->rank < 0 || p->rank > limit || p->base_n < 0 || p->base_n > limit ||
        (p->active != 0 && p->active != 1))
        return EDGC_ERR_CORRUPT;
    return EDGC_OK;
}
