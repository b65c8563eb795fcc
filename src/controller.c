/*
 * controller.c - the EDGC phase machine (docs/ALGORITHM.md): r_max profiling (profile.c),
 * warm-up (compressed at r_max, or dense), then compression with the rank re-decided at each
 * window boundary by the decay, error-budget, trend or CQM rule, and a new profile when the link's
 * measured speed drifts. Pure logic: it never communicates and never reads a clock. The caller
 * measures, agrees the measurements across workers, and reports them through commit().
 *
 * Deliberate differences from the authors' code: real entropy values during warm-up (not
 * zeros), a guarded reference change (rank_rules.c), one window length used everywhere, and a
 * rank change that keeps error feedback.
 */
#include "edgc_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Entries of the entropy history allocated at creation, at most (512 KB; it grows past that). */
#define HIST_FIRST ((size_t)1 << 16)

struct edgc_controller {
    edgc_config cfg;
    int window;        /* cfg.window, or derived from total_steps */
    int rank_cap;      /* largest rank any matrix can use */
    size_t* floats;    /* floats a step sends at ranks 0 (dense) to the worth cap */
    edgc__payload pay; /* reads `floats` */
    double* g_stage;   /* CQM curve g[0..rank_cap], NULL for the other rules */
    uint64_t step;
    int planned;
    edgc_plan plan;
    int prev_rank;   /* rank of the previous step, 0 = dense */
    int prev_steady; /* 1: the previous step was a warm-up or compress step, not profiling */

    double* hist; /* entropy samples, one per sampled step, in order */
    size_t n_hist, cap_hist;
    uint64_t sample_every; /* round(1/alpha) */
    size_t n_w;            /* samples per window */

    edgc__profiler prof; /* active while r_max is being (re-)measured */

    int r_min, r_max;  /* both 0 after profiling when no rank pays */
    uint64_t warm_end; /* first step allowed to compress */
    int compressing;
    uint64_t compress_start;
    int rank_cur;
    double h_ref; /* mean entropy of the window before compression; NAN until set */

    /* measured over the current window, from the previous-step values the caller reports */
    double win_err_sum, win_sync_sum, win_pred_sum;
    int win_err_n, win_sync_n;
    double err_ref;   /* error rule: the first compressed window's mean error (at r_max) */
    double drift_ref; /* measured / predicted sync time in the first window after profiling */
    double win_ratio; /* measured / predicted sync time in the last window; NAN until one ends */

    /* WAM, pipeline stages > 0: stage 0's report and this stage's agreed backward time per
     * micro-batch; the rank at each window boundary follows from them */
    int wam_have, wam_lead_rank;
    double wam_t0, wam_tmb, wam_budget; /* budget: T0 + stage t_mb of the last decision */
};

static int min_int(int a, int b)
{
    return a < b ? a : b;
}

/* Sets r_max (clamped to what the layout can use) and r_min from the config rule; 0 stays 0
 * (dense). */
static void set_bounds(edgc_controller* c, int r_max)
{
    if (r_max <= 0) {
        c->r_min = c->r_max = 0;
        return;
    }
    if (c->rank_cap >= 1) r_max = min_int(r_max, c->rank_cap);
    c->r_max = r_max < 1 ? 1 : r_max;
    /* r_max / 3, not / 4: the decay's floor buys the last tenths of a percent of loss on the slow
     * link for a few percent of time (docs/ALGORITHM.md 6.1) */
    int r_min = c->cfg.r_min ? c->cfg.r_min : c->r_max / 3;
    c->r_min = r_min < 1 ? 1 : min_int(r_min, c->r_max);
}

void edgc_controller_free(edgc_controller* c)
{
    if (c == NULL) return;
    free(c->g_stage);
    free(c->floats);
    free(c->hist);
    free(c);
}

/* Floats a step at rank r sends: the 1-D tensors as they are, each matrix as its factors. */
static size_t payload_floats(const edgc__plan_layout* pl, int r)
{
    size_t floats = pl->dense_total;
    for (size_t k = 0; k < pl->n_mats; k++) {
        const edgc__matrix* m = &pl->mats[k];
        size_t rk = (size_t)r < m->cap ? (size_t)r : m->cap;
        floats += rk * (m->rows + m->cols);
    }
    return floats;
}

/* The payload of every rank up to the worth cap, the largest rank sending at most half a dense
 * step's floats (above it the factors cost about as much as the gradient they replace; rank 1
 * when even that one does not). */
static edgc_status set_payload(edgc_controller* c, const edgc__plan_layout* pl)
{
    int cap = 1;
    while (cap < pl->rank_cap && 2 * payload_floats(pl, cap + 1) <= pl->total)
        cap++;
    c->floats = malloc(((size_t)cap + 1) * sizeof *c->floats);
    if (c->floats == NULL) return EDGC_ERR_NOMEM;
    c->floats[0] = pl->total;
    for (int r = 1; r <= cap; r++)
        c->floats[r] = payload_floats(pl, r);
    c->pay = (edgc__payload){c->floats, cap};
    return EDGC_OK;
}

/* The profile's first rank. Profiling starts the run, and a few steps at ranks 2 and 4 there
 * cost far more final loss than their share of the run: mini over 600 steps ended 0.8-1.8 %
 * higher (three seeds) with the ladder from 2 than from 8, the rest of the run the same
 * (docs/ALGORITHM.md 4.1). No rank below it can be r_max. */
#define PROFILE_FIRST_RANK 8

static void start_profile(edgc_controller* c, uint64_t origin)
{
    edgc__profiler_start(&c->prof, origin, min_int(PROFILE_FIRST_RANK, c->pay.worth_cap));
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
    c->window = edgc_config_window(cfg);
    c->h_ref = c->err_ref = c->drift_ref = c->win_ratio = NAN;
    c->wam_t0 = c->wam_tmb = c->wam_budget = NAN;
    c->prof.base_ms = c->prof.compute_ms = NAN;
    c->sample_every = edgc__sample_every(cfg->alpha);
    c->n_w = (size_t)((uint64_t)c->window / c->sample_every);
    c->warm_end = (uint64_t)ceil(cfg->warmup_fraction * (double)cfg->total_steps);

    edgc__plan_layout pl;
    edgc_status st = edgc__layout_split(layout, &pl);
    if (st != EDGC_OK) goto fail;
    c->rank_cap = pl.rank_cap;
    st = set_payload(c, &pl);
    if (st == EDGC_OK && cfg->rule == EDGC_RULE_CQM) st = edgc__mp_stage_curve(&pl, &c->g_stage);
    edgc__layout_release(&pl);
    if (st != EDGC_OK) goto fail;

    /* One entry per sampled step of the run, at most HIST_FIRST at first: the history grows on
     * demand (edgc__controller_reserve), and a huge total_steps must not overflow the size. */
    uint64_t samples = cfg->total_steps / c->sample_every + 2;
    c->cap_hist = samples < HIST_FIRST ? (size_t)samples : HIST_FIRST;
    c->hist = malloc(c->cap_hist * sizeof *c->hist);
    if (c->hist == NULL) {
        st = EDGC_ERR_NOMEM;
        goto fail;
    }
    if (cfg->r_max > 0)
        set_bounds(c, cfg->r_max);
    else
        start_profile(c, 0);
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
    double h_now = c->n_hist > 0 ? mean_last(c->hist, c->n_hist, c->n_w) : NAN;
    if (c->cfg.rule == EDGC_RULE_DECAY) {
        target = edgc__decay_target(c->step, c->compress_start, c->cfg.total_steps, b);
    } else if (c->cfg.rule == EDGC_RULE_TREND) {
        target = edgc__trend_target(c->hist, c->n_hist, c->n_w, b);
    } else if (c->cfg.rule == EDGC_RULE_ERROR) {
        if (c->win_err_n == 0) return c->rank_cur;
        double err = c->win_err_sum / c->win_err_n;
        if (isnan(c->err_ref)) { /* the first window at r_max sets the budget */
            c->err_ref = err;
            return c->rank_cur;
        }
        /* Falling entropy (training settling) allows proportionally more error, as in CQM. */
        double relax = isfinite(c->h_ref) && isfinite(h_now) ? exp(c->h_ref - h_now) : 1.0;
        target = edgc__error_target(err, c->err_ref * relax, c->cfg.error_margin, c->rank_cur, b);
    } else {
        if (c->n_hist == 0 || c->rank_cap < 1) return c->rank_cur;
        if (isnan(c->h_ref)) { /* no sample before compression: anchor on this window */
            c->h_ref = h_now;
            return c->rank_cur;
        }
        double y = exp(c->h_ref - h_now) * c->g_stage[c->r_max];
        target = edgc__mp_inverse(c->g_stage, c->r_min, c->r_max, y);
    }
    return edgc__smooth_rank(target, c->rank_cur, b);
}

/* Measured over predicted sync time in the last window (1 before one has ended): a profile taken
 * on a quiet link can be off by a factor once the pipeline's activations and the other stages'
 * syncs share it, and the first window's factor is no better a guide than the latest one. */
static double measured_scale(const edgc_controller* c)
{
    return isfinite(c->win_ratio) && c->win_ratio > 0.0 ? c->win_ratio : 1.0;
}

/* WAM, stage p > 0: the rank that spends the slack of p micro-batch backwards the 1F1B schedule
 * leaves this stage (edgc_wam_stage_rank over its own profile, scaled to what was measured);
 * without timings to align with (r_max given, nothing profiled or measured yet), stage 0's rank
 * within this stage's bounds. */
static int follow_rank(edgc_controller* c)
{
    const edgc__profiler* p = &c->prof;
    int stage = c->cfg.pipeline_stage, rank;
    c->wam_budget = NAN;
    if (p->n > 0 && isfinite(p->base_ms) && isfinite(c->wam_t0) && isfinite(c->wam_tmb)) {
        edgc_profile own = {p->ranks, p->ms, p->n, p->base_ms};
        /* a profile scaled by s against a budget B is the profile against B / s */
        double s = measured_scale(c);
        if (edgc_wam_stage_rank(&own, c->wam_t0 / s, stage, c->wam_tmb / s, c->r_max, &rank) ==
            EDGC_OK) {
            c->wam_budget = c->wam_t0 + stage * c->wam_tmb;
            /* more slack than r_max needs, less than dense needs: r_max fits, dense does not */
            if (rank == 0 && c->cfg.wam_rule == EDGC_WAM_CAP && c->wam_budget <= s * p->base_ms)
                rank = c->r_max;
            return rank;
        }
    }
    if (c->wam_lead_rank == 0) return 0;
    return c->wam_lead_rank < c->r_min   ? c->r_min
           : c->wam_lead_rank > c->r_max ? c->r_max
                                         : c->wam_lead_rank;
}

void edgc__controller_wam_lead(edgc_controller* c, int rank, double t0_ms)
{
    c->wam_have = 1;
    c->wam_lead_rank = rank;
    c->wam_t0 = t0_ms;
}

void edgc__controller_wam_tmb(edgc_controller* c, double tmb_ms)
{
    if (isfinite(tmb_ms)) c->wam_tmb = tmb_ms;
}

uint64_t edgc__controller_step(const edgc_controller* c)
{
    return c->step;
}

double edgc__controller_wam_budget(const edgc_controller* c)
{
    return c->wam_budget;
}

double edgc__controller_predict(const edgc_controller* c, int rank)
{
    return edgc__profiler_predict(&c->prof, rank);
}

double edgc__controller_predict_measured(const edgc_controller* c, int rank)
{
    return measured_scale(c) * edgc__profiler_predict(&c->prof, rank);
}

/* At a window boundary: has the link changed since it was profiled? The measured sync time over
 * the window is compared with the profile's prediction for the ranks used; the first window after
 * a profile sets the reference ratio (untimed steps also wait for the slowest worker). A change by
 * more than reprofile_factor that also moves the step time by more than min_saving triggers a new
 * profile. */
static int link_drifted(edgc_controller* c)
{
    if (c->cfg.reprofile_factor <= 0.0 || c->cfg.r_max > 0 || c->win_sync_n == 0 ||
        !(c->win_pred_sum > 0.0))
        return 0;
    double ratio = c->win_ratio; /* this window's, set at the boundary just before */
    if (isnan(c->drift_ref)) {
        c->drift_ref = ratio;
        return 0;
    }
    double f = c->cfg.reprofile_factor;
    double step = (isfinite(c->prof.compute_ms) ? c->prof.compute_ms : 0.0) + c->prof.base_ms;
    double expected = c->drift_ref * c->win_pred_sum / c->win_sync_n;
    double moved = fabs(c->win_sync_sum / c->win_sync_n - expected);
    return (ratio > f * c->drift_ref || ratio * f < c->drift_ref) &&
           moved > c->cfg.min_saving * step;
}

static void reset_window(edgc_controller* c)
{
    c->win_err_sum = c->win_sync_sum = c->win_pred_sum = 0.0;
    c->win_err_n = c->win_sync_n = 0;
}

static void plan_profile(edgc_controller* c, edgc_plan* p)
{
    uint64_t s0 = c->prof.origin + (uint64_t)c->cfg.profile_start;
    p->phase = EDGC_PHASE_PROFILE;
    if (c->step < s0) return; /* dense, untimed: let the run settle first */
    p->timed = 1;
    if (c->prof.base_n < c->cfg.profile_base_steps) return; /* dense, timed: T_base */
    p->rank = c->prof.rank;
}

edgc_status edgc_controller_plan(edgc_controller* c, edgc_plan* out)
{
    EDGC_RETURN_IF(c == NULL || out == NULL, EDGC_ERR_INVALID_ARG);
    if (c->planned) {
        *out = c->plan;
        return EDGC_OK;
    }
    edgc_plan p = {.step = c->step, .phase = EDGC_PHASE_WARMUP};
    if (!c->prof.active && !c->compressing && c->step >= c->warm_end) {
        c->compressing = 1;
        c->compress_start = c->step;
        c->rank_cur = c->r_max; /* compression starts at r_max */
        if (c->n_hist > 0) c->h_ref = mean_last(c->hist, c->n_hist, c->n_w);
        reset_window(c);
    } else if (!c->prof.active && c->compressing && c->step % (uint64_t)c->window == 0 &&
               c->step != c->compress_start) {
        if (c->win_sync_n > 0 && c->win_pred_sum > 0.0)
            c->win_ratio = c->win_sync_sum / c->win_pred_sum;
        if (link_drifted(c)) {
            /* re-profile now; the untimed settling steps are not needed mid-run */
            uint64_t s0 = (uint64_t)c->cfg.profile_start;
            start_profile(c, c->step >= s0 ? c->step - s0 : 0);
            /* nothing aligned while profiling, nothing measured against the new profile yet */
            c->drift_ref = c->err_ref = c->wam_budget = c->win_ratio = NAN;
        } else if (c->r_max > 0) {
            int led = c->cfg.pipeline_stage > 0 && c->wam_have;
            c->rank_cur = led ? follow_rank(c) : decide_rank(c);
        }
        reset_window(c);
    }
    if (c->prof.active) {
        plan_profile(c, &p);
    } else if (c->compressing) {
        p.phase = EDGC_PHASE_COMPRESS;
        p.rank = c->rank_cur;
    } else if (c->cfg.warmup_sync == EDGC_WARMUP_RMAX) {
        p.rank = c->r_max; /* the safest rank that pays; 0 (dense) when none does */
    }
    p.sample_entropy = c->step % c->sample_every == 0;
    p.rank_changed = p.rank != c->prev_rank;
    c->plan = p;
    c->planned = 1;
    *out = p;
    return EDGC_OK;
}

/* The previous step's agreed measurements, for the window statistics. */
static void record_previous(edgc_controller* c, const edgc_observation* o)
{
    if (!c->prev_steady || !c->compressing) return;
    if (c->prev_rank > 0 && isfinite(o->prev_error)) {
        c->win_err_sum += o->prev_error;
        c->win_err_n++;
    }
    double pred = edgc__profiler_predict(&c->prof, c->prev_rank);
    if (isfinite(o->prev_sync_ms) && o->prev_sync_ms >= 0.0 && isfinite(pred)) {
        c->win_sync_sum += o->prev_sync_ms;
        c->win_pred_sum += pred;
        c->win_sync_n++;
    }
}

edgc_status edgc__controller_reserve(edgc_controller* c)
{
    if (!c->planned || !c->plan.sample_entropy || c->n_hist < c->cap_hist) return EDGC_OK;
    /* the run went past total_steps or HIST_FIRST samples: grow, rarely */
    if (c->cap_hist > SIZE_MAX / 2 / sizeof *c->hist) return EDGC_ERR_NOMEM;
    double* h = realloc(c->hist, 2 * c->cap_hist * sizeof *h);
    if (h == NULL) return EDGC_ERR_NOMEM;
    c->hist = h;
    c->cap_hist *= 2;
    return EDGC_OK;
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
        EDGC_FORWARD(edgc__controller_reserve(c));
        c->hist[c->n_hist++] = obs->entropy;
    }
    record_previous(c, obs);
    int r_max;
    if (p->timed && edgc__profiler_record(&c->prof, &c->cfg, &c->pay, c->rank_cap, obs->sync_ms,
                                          obs->compute_ms, &r_max)) {
        set_bounds(c, r_max);
        c->rank_cur = c->r_max; /* a re-profile restarts compression at the new r_max */
    }
    c->prev_rank = p->rank;
    c->prev_steady = p->phase != EDGC_PHASE_PROFILE;
    c->step++;
    c->planned = 0;
    return EDGC_OK;
}

edgc_status edgc_controller_bounds(const edgc_controller* c, int* r_min, int* r_max)
{
    EDGC_RETURN_IF(c == NULL || r_min == NULL || r_max == NULL, EDGC_ERR_INVALID_ARG);
    int unknown = c->prof.active && c->prof.count == 0;
    *r_min = unknown ? 0 : c->r_min;
    *r_max = unknown ? 0 : c->r_max;
    return EDGC_OK;
}

edgc_status edgc_controller_profiled(const edgc_controller* c, double* dense_ms, double* compute_ms,
                                     int* profiles)
{
    EDGC_RETURN_IF(c == NULL || dense_ms == NULL || compute_ms == NULL || profiles == NULL,
                   EDGC_ERR_INVALID_ARG);
    *dense_ms = c->prof.base_ms;
    *compute_ms = c->prof.compute_ms;
    *profiles = c->prof.count;
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
    uint64_t n_hist = c->n_hist;
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
    PUT(c->prev_steady);
    PUT(n_hist);
    edgc__put(w, c->hist, c->n_hist * sizeof *c->hist);
    edgc__profiler_save(&c->prof, w);
    PUT(c->r_min);
    PUT(c->r_max);
    PUT(c->compressing);
    PUT(c->compress_start);
    PUT(c->rank_cur);
    PUT(c->h_ref);
    PUT(c->win_err_sum);
    PUT(c->win_sync_sum);
    PUT(c->win_pred_sum);
    PUT(c->win_err_n);
    PUT(c->win_sync_n);
    PUT(c->err_ref);
    PUT(c->drift_ref);
    PUT(c->wam_have);
    PUT(c->wam_lead_rank);
    PUT(c->wam_t0);
    PUT(c->wam_tmb);
    PUT(c->wam_budget);
    PUT(c->win_ratio);
    return EDGC_OK;
}

edgc_status edgc__controller_load(edgc_controller* c, edgc__reader* r)
{
    uint64_t n_hist = 0;
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
    GET(c->prev_steady);
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
    EDGC_FORWARD(edgc__profiler_load(&c->prof, r));
    GET(c->r_min);
    GET(c->r_max);
    GET(c->compressing);
    GET(c->compress_start);
    GET(c->rank_cur);
    GET(c->h_ref);
    GET(c->win_err_sum);
    GET(c->win_sync_sum);
    GET(c->win_pred_sum);
    GET(c->win_err_n);
    GET(c->win_sync_n);
    GET(c->err_ref);
    GET(c->drift_ref);
    GET(c->wam_have);
    GET(c->wam_lead_rank);
    GET(c->wam_t0);
    GET(c->wam_tmb);
    GET(c->wam_budget);
    GET(c->win_ratio);
    if (r->bad) return EDGC_ERR_CORRUPT;
    /* A blob that passed its checksum but holds values this code would index with. */
    if (c->rank_cur < 0 || c->r_max < 0 || c->r_min < 0 || c->plan.rank < 0 || c->prev_rank < 0 ||
        c->wam_lead_rank < 0 || (c->g_stage != NULL && c->r_max > c->rank_cap))
        return EDGC_ERR_CORRUPT;
    return EDGC_OK;
}
