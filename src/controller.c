/*
 * controller.c - the EDGC phase machine (spec 3, 5.4, 6): optional r_max profiling, dense
 * warm-up, then compression with the rank re-decided at each window boundary by the trend or the
 * CQM rule. Pure logic: it never communicates and never reads a clock. The caller measures, agrees
 * the measurements across workers, and reports them through commit().
 *
 * Fixes over the authors' snapshot (spec 11.3): real entropy values during warm-up (not zeros),
 * a guarded reference change (rank_rules.c), one window length used everywhere, and a rank change
 * that the engine applies without resetting error feedback.
 */
#include "edgc_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct edgc_controller {
    edgc_config cfg;
    int rank_cap;    /* largest rank any matrix can use */
    double* g_stage; /* CQM curve g[0..rank_cap], NULL for the trend rule */
    uint64_t step;
    int planned;
    edgc_plan plan;
    int prev_rank; /* rank of the previous step, 0 = dense */

    double* hist; /* entropy samples, one per sampled step, in order */
    size_t n_hist, cap_hist;
    uint64_t sample_every; /* round(1/alpha) */
    size_t n_w;            /* samples per window */

    /* profiling (spec 5.4) */
    int profiling; /* 1 until r_max is known */
    double base_sum;
    int base_n;
    int prof_rank, prof_rep;
    double rep_sum;
    int* prof_ranks;
    double* prof_ms;
    size_t n_prof, cap_prof;

    int r_min, r_max;  /* both 0 after profiling when no rank beat dense */
    uint64_t warm_end; /* first step allowed to compress */
    int compressing;
    uint64_t compress_start;
    int rank_cur;
    double h_ref; /* CQM anchor: mean entropy of the window before compression; NAN until set */
};

static int min_int(int a, int b)
{
    return a < b ? a : b;
}

/* Sets r_max (clamped to what the layout can use) and r_min from the config rule. */
static void set_bounds(edgc_controller* c, int r_max)
{
    if (c->rank_cap >= 1) r_max = min_int(r_max, c->rank_cap);
    c->r_max = r_max < 1 ? 1 : r_max;
    int r_min = c->cfg.r_min ? c->cfg.r_min : c->r_max / 4;
    c->r_min = r_min < 1 ? 1 : min_int(r_min, c->r_max);
}

void edgc_controller_free(edgc_controller* c)
{
    if (c == NULL) return;
    free(c->g_stage);
    free(c->hist);
    free(c->prof_ranks);
    free(c->prof_ms);
    free(c);
}

edgc_status edgc_controller_create(const edgc_config* cfg, const edgc_layout* layout,
                                   edgc_controller** out)
{
    EDGC_RETURN_IF(out == NULL || layout == NULL, EDGC_ERR_INVALID_ARG);
    *out = NULL;
    EDGC_FORWARD(edgc_config_check(cfg, layout, NULL, 0));
    edgc_controller* c = calloc(1, sizeof *c);
    if (c == NULL) return EDGC_ERR_NOMEM;
    c->cfg = *cfg;
    c->h_ref = NAN;
    c->sample_every = (uint64_t)llround(1.0 / cfg->alpha);
    c->n_w = (size_t)((uint64_t)cfg->window / c->sample_every);
    c->warm_end = (uint64_t)ceil(cfg->warmup_fraction * (double)cfg->total_steps);

    edgc__plan_layout pl;
    edgc_status st = edgc__layout_split(layout, &pl);
    if (st != EDGC_OK) goto fail;
    c->rank_cap = pl.rank_cap;
    if (cfg->rule == EDGC_RULE_CQM) st = edgc__mp_stage_curve(&pl, &c->g_stage);
    edgc__layout_release(&pl);
    if (st != EDGC_OK) goto fail;

    st = EDGC_ERR_NOMEM;
    c->cap_hist = (size_t)(cfg->total_steps / c->sample_every) + 2;
    c->hist = malloc(c->cap_hist * sizeof *c->hist);
    if (c->hist == NULL) goto fail;
    c->cap_prof = 32; /* ranks 2, 4, ... 2^32: more than any layout has */
    c->prof_ranks = malloc(c->cap_prof * sizeof *c->prof_ranks);
    c->prof_ms = malloc(c->cap_prof * sizeof *c->prof_ms);
    if (c->prof_ranks == NULL || c->prof_ms == NULL) goto fail;

    if (cfg->r_max > 0) {
        set_bounds(c, cfg->r_max);
    } else {
        c->profiling = 1;
        c->prof_rank = 2;
    }
    *out = c;
    return EDGC_OK;
fail:
    edgc_controller_free(c);
    return st;
}

/* Mean of the last k samples (all of them when fewer). */
static double mean_last(const double* h, size_t n, size_t k)
{
    k = k < n ? k : n;
    return edgc__mean(h + n - k, k);
}

/* The rank for the window starting now. */
static int decide_rank(edgc_controller* c)
{
    edgc__bounds b = {c->r_min, c->r_max, c->cfg.rank_step};
    int target;
    if (c->cfg.rule == EDGC_RULE_TREND) {
        target = edgc__trend_target(c->hist, c->n_hist, c->n_w, b);
    } else {
        if (c->n_hist == 0 || c->rank_cap < 1) return c->rank_cur;
        double h_now = mean_last(c->hist, c->n_hist, c->n_w);
        if (isnan(c->h_ref)) { /* no sample before compression: anchor on this window */
            c->h_ref = h_now;
            return c->rank_cur;
        }
        double y = exp(c->h_ref - h_now) * c->g_stage[c->r_max];
        target = edgc__mp_inverse(c->g_stage, c->r_min, c->r_max, y);
    }
    return edgc__smooth_rank(target, c->rank_cur, b);
}

static void plan_profile(edgc_controller* c, edgc_plan* p)
{
    uint64_t s0 = (uint64_t)c->cfg.profile_start;
    p->phase = EDGC_PHASE_PROFILE;
    if (c->step < s0) return; /* dense, untimed: let the run settle first */
    p->timed = 1;
    if (c->base_n < c->cfg.profile_base_steps) return; /* dense, timed: T_base */
    p->rank = c->prof_rank;
}

edgc_status edgc_controller_plan(edgc_controller* c, edgc_plan* out)
{
    EDGC_RETURN_IF(c == NULL || out == NULL, EDGC_ERR_INVALID_ARG);
    if (c->planned) {
        *out = c->plan;
        return EDGC_OK;
    }
    edgc_plan p = {.step = c->step, .phase = EDGC_PHASE_WARMUP};
    if (c->profiling) {
        plan_profile(c, &p);
    } else if (!c->compressing && c->step >= c->warm_end) {
        c->compressing = 1;
        c->compress_start = c->step;
        c->rank_cur = c->r_max; /* spec 6.3: compression starts at r_max */
        if (c->n_hist > 0) c->h_ref = mean_last(c->hist, c->n_hist, c->n_w);
    } else if (c->compressing && c->r_max > 0 && c->step % (uint64_t)c->cfg.window == 0 &&
               c->step != c->compress_start) {
        c->rank_cur = decide_rank(c);
    }
    if (c->compressing) {
        p.phase = EDGC_PHASE_COMPRESS;
        p.rank = c->rank_cur;
    }
    p.sample_entropy = c->step % c->sample_every == 0;
    p.rank_changed = p.rank != c->prev_rank;
    c->plan = p;
    c->planned = 1;
    *out = p;
    return EDGC_OK;
}

/* Profiling bookkeeping after a timed step (spec 5.4): T_base from the dense steps, then for each
 * rank the mean of its reps but the first; stop at the first rank slower than T_base or at the
 * layout's rank cap. */
static void record_profile(edgc_controller* c, double ms)
{
    if (c->base_n < c->cfg.profile_base_steps) {
        c->base_sum += ms;
        c->base_n++;
        return;
    }
    if (c->prof_rep++ > 0) c->rep_sum += ms;
    if (c->prof_rep < c->cfg.profile_reps) return;
    double t_base = c->base_sum / c->base_n;
    double t = c->rep_sum / (c->cfg.profile_reps - 1);
    c->prof_ranks[c->n_prof] = c->prof_rank;
    c->prof_ms[c->n_prof] = t;
    c->n_prof++;
    c->prof_rep = 0;
    c->rep_sum = 0.0;
    int at_cap = c->rank_cap < 1 || c->prof_rank >= c->rank_cap || c->n_prof == c->cap_prof;
    if (t <= t_base && !at_cap) {
        c->prof_rank *= 2;
        return;
    }
    c->profiling = 0;
    if (c->n_prof == 1 && t > t_base) {
        /* The smallest rank tried is already slower than dense: no rank is "still faster than
         * uncompressed" (spec 5.4), so compressing would only cost time. Stay dense; a user who
         * wants compression regardless sets r_max. */
        c->r_min = c->r_max = 0;
        return;
    }
    int r_max = 1;
    edgc_rmax_from_profile(c->prof_ranks, c->prof_ms, c->n_prof, t_base, &r_max);
    set_bounds(c, r_max);
}

edgc_status edgc_controller_commit(edgc_controller* c, const edgc_observation* obs)
{
    EDGC_RETURN_IF(c == NULL || obs == NULL, EDGC_ERR_INVALID_ARG);
    EDGC_RETURN_IF(!c->planned, EDGC_ERR_STATE);
    const edgc_plan* p = &c->plan;
    EDGC_RETURN_IF(p->sample_entropy && !isfinite(obs->entropy), EDGC_ERR_INVALID_ARG);
    EDGC_RETURN_IF(p->timed && !(isfinite(obs->sync_ms) && obs->sync_ms >= 0.0),
                   EDGC_ERR_INVALID_ARG);
    if (p->sample_entropy) {
        if (c->n_hist == c->cap_hist) { /* ran past total_steps: grow, rarely */
            double* h = realloc(c->hist, 2 * c->cap_hist * sizeof *h);
            if (h == NULL) return EDGC_ERR_NOMEM;
            c->hist = h;
            c->cap_hist *= 2;
        }
        c->hist[c->n_hist++] = obs->entropy;
    }
    if (p->timed) record_profile(c, obs->sync_ms);
    c->prev_rank = p->rank;
    c->step++;
    c->planned = 0;
    return EDGC_OK;
}

edgc_status edgc_controller_bounds(const edgc_controller* c, int* r_min, int* r_max)
{
    EDGC_RETURN_IF(c == NULL || r_min == NULL || r_max == NULL, EDGC_ERR_INVALID_ARG);
    *r_min = c->profiling ? 0 : c->r_min;
    *r_max = c->profiling ? 0 : c->r_max;
    return EDGC_OK;
}

/* ---------------------------------------------------------------------------------------------
 * State. Everything that plan() and commit() read is saved, including a pending plan, so a
 * loaded controller continues exactly as the saved one would have.
 */
#define PUT(x) edgc__put(w, &(x), sizeof(x))
#define GET(x) edgc__get(r, &(x), sizeof(x))

edgc_status edgc__controller_save(const edgc_controller* c, edgc__writer* w)
{
    uint64_t n_hist = c->n_hist, n_prof = c->n_prof;
    int32_t phase = (int32_t)c->plan.phase;
    PUT(c->step);
    PUT(c->planned);
    PUT(c->plan.step);
    PUT(phase);
    PUT(c->plan.rank);
    PUT(c->plan.sample_entropy);
    PUT(c->plan.timed);
    PUT(c->plan.rank_changed);
    PUT(c->prev_rank);
    PUT(n_hist);
    edgc__put(w, c->hist, c->n_hist * sizeof *c->hist);
    PUT(c->profiling);
    PUT(c->base_sum);
    PUT(c->base_n);
    PUT(c->prof_rank);
    PUT(c->prof_rep);
    PUT(c->rep_sum);
    PUT(n_prof);
    edgc__put(w, c->prof_ranks, c->n_prof * sizeof *c->prof_ranks);
    edgc__put(w, c->prof_ms, c->n_prof * sizeof *c->prof_ms);
    PUT(c->r_min);
    PUT(c->r_max);
    PUT(c->compressing);
    PUT(c->compress_start);
    PUT(c->rank_cur);
    PUT(c->h_ref);
    return EDGC_OK;
}

edgc_status edgc__controller_load(edgc_controller* c, edgc__reader* r)
{
    uint64_t n_hist = 0, n_prof = 0;
    int32_t phase = 0;
    GET(c->step);
    GET(c->planned);
    GET(c->plan.step);
    GET(phase);
    c->plan.phase = (edgc_phase)phase;
    GET(c->plan.rank);
    GET(c->plan.sample_entropy);
    GET(c->plan.timed);
    GET(c->plan.rank_changed);
    GET(c->prev_rank);
    GET(n_hist);
    if (r->bad || n_hist > (r->len - r->at) / sizeof(double)) return EDGC_ERR_CORRUPT;
    if (n_hist > c->cap_hist) {
        double* h = realloc(c->hist, (size_t)n_hist * sizeof *h);
        if (h == NULL) return EDGC_ERR_NOMEM;
        c->hist = h;
        c->cap_hist = (size_t)n_hist;
    }
    c->n_hist = (size_t)n_hist;
    edgc__get(r, c->hist, c->n_hist * sizeof *c->hist);
    GET(c->profiling);
    GET(c->base_sum);
    GET(c->base_n);
    GET(c->prof_rank);
    GET(c->prof_rep);
    GET(c->rep_sum);
    GET(n_prof);
    if (r->bad || n_prof > c->cap_prof) return EDGC_ERR_CORRUPT;
    c->n_prof = (size_t)n_prof;
    edgc__get(r, c->prof_ranks, c->n_prof * sizeof *c->prof_ranks);
    edgc__get(r, c->prof_ms, c->n_prof * sizeof *c->prof_ms);
    GET(c->r_min);
    GET(c->r_max);
    GET(c->compressing);
    GET(c->compress_start);
    GET(c->rank_cur);
    GET(c->h_ref);
    if (r->bad) return EDGC_ERR_CORRUPT;
    /* A blob that passed its checksum but holds values this code would index with. */
    if (c->prof_rank < 0 || c->rank_cur < 0 || c->r_max < 0 || c->r_min < 0 ||
        (c->g_stage != NULL && c->r_max > c->rank_cap))
        return EDGC_ERR_CORRUPT;
    return EDGC_OK;
}
