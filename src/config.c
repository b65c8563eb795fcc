/*
 * config.c - the configuration's defaults (docs/ALGORITHM.md, section 9) and its validation. Every
 * rejection names the field, its value and the accepted range.
 */
#include "edgc_internal.h"

#include <math.h>

edgc_config edgc_config_default(void)
{
    edgc_config c = {0};
    c.mode = EDGC_MODE_EDGC;
    c.rank = 4;
    c.total_steps = 0;
    c.warmup_fraction = 0.2;
    c.window = 0;  /* derived from total_steps; 1000 for runs of 20k steps and more */
    c.alpha = 0.1; /* ISR */
    c.beta = 0.25; /* GSR */
    c.bins = 1000;
    c.scale_aware_entropy = 0;
    c.rule = EDGC_RULE_DECAY; /* won the slow-link time-to-quality bench (docs/BENCHMARKS.md) */
    c.rank_step = 4;
    c.r_max = 0;
    c.r_min = 0;
    c.profile_start = 1;      /* after the first step's page faults and connection set-up */
    c.profile_base_steps = 4; /* a dense sync over TCP is bimodal (at 100 Mbit/s 260 or 380-500
                                 ms, step to step): four samples, not two, and the same five
                                 dense steps in all as before */
    c.profile_reps = 4;       /* the median of three: one stalled transfer does not move T(r) */
    c.error_feedback = 1;
    c.orthonormalize_q = 1;
    c.orth_eps = 1e-5f; /* relative; the authors' absolute 1e-8 fails at small scales (linalg.c) */
    c.seed = 714;       /* the authors' seed */
    c.check_finite = 1;
    c.pipeline_stage = 0;
    c.pipeline_stages = 1;
    c.rmax_rule = EDGC_RMAX_BUDGET;
    c.rmax_slack = 0.25;
    c.min_saving = 0.05;
    c.warmup_sync = EDGC_WARMUP_RMAX;
    c.error_margin = 0.05;
    c.reprofile_factor = 2.0;
    c.wam_rule = EDGC_WAM_CAP;
    c.threads = 0; /* every CPU this process may use: a rank bound to one core gets one */
    return c;
}

uint64_t edgc__sample_every(double alpha)
{
    const double every = round(1.0 / alpha);
    if (!(every < 0x1p62)) return (uint64_t)1 << 62;
    return every < 1.0 ? 1 : (uint64_t)every;
}

/* A window of 1000 steps suits runs of 100k steps; a run of 600 would never leave r_max. One
 * twentieth of the run gives about 18 decisions after a 10 % warm-up at any length, up to the
 * authors' 1000, and at least two entropy samples per window. */
int edgc_config_window(const edgc_config* c)
{
    if (c == NULL) return 0;
    if (c->window > 0) return c->window;
    if (!(isfinite(c->alpha) && c->alpha > 0.0 && c->alpha <= 1.0)) return 2;
    uint64_t stride = edgc__sample_every(c->alpha);
    uint64_t w = c->total_steps / 20 / stride * stride;
    if (w > 1000) w = 1000 / stride * stride;
    if (w < 2 * stride) w = 2 * stride;
    return w > (uint64_t)1 << 30 ? 1 << 30 : (int)w;
}

/* Samples per window: window / round(1/alpha). */
static uint64_t samples_per_window(const edgc_config* c)
{
    return (uint64_t)edgc_config_window(c) / edgc__sample_every(c->alpha);
}

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            edgc__msg(why, why_len, __VA_ARGS__);                                                  \
            return EDGC_ERR_CONFIG;                                                                \
        }                                                                                          \
    } while (0)

edgc_status edgc_config_check(const edgc_config* c, const edgc_layout* layout, char* why,
                              size_t why_len)
{
    edgc__msg(why, why_len, "ok");
    if (c == NULL) {
        edgc__msg(why, why_len, "config is NULL");
        return EDGC_ERR_INVALID_ARG;
    }
    CHECK(c->mode == EDGC_MODE_DENSE || c->mode == EDGC_MODE_POWERSGD || c->mode == EDGC_MODE_EDGC,
          "mode = %d: must be EDGC_MODE_DENSE, EDGC_MODE_POWERSGD or EDGC_MODE_EDGC", (int)c->mode);
    CHECK(c->rank >= 1, "rank = %d: must be >= 1", c->rank);
    CHECK(isfinite(c->beta) && c->beta > 0.0 && c->beta <= 1.0, "beta = %g: must be in (0, 1]",
          c->beta);
    CHECK(isfinite(c->alpha) && c->alpha > 0.0 && c->alpha <= 1.0, "alpha = %g: must be in (0, 1]",
          c->alpha);
    CHECK(c->bins >= 2, "bins = %d: must be >= 2", c->bins);
    CHECK(c->window == 0 || c->window >= 2, "window = %d: must be >= 2, or 0 to derive it",
          c->window);
    CHECK(samples_per_window(c) >= 1,
          "window = %d: must hold at least one entropy sample (one every %.0f steps at alpha = %g)",
          c->window, round(1.0 / c->alpha), c->alpha);
    CHECK(isfinite(c->warmup_fraction) && c->warmup_fraction >= 0.0 && c->warmup_fraction < 1.0,
          "warmup_fraction = %g: must be in [0, 1)", c->warmup_fraction);
    CHECK(c->rule == EDGC_RULE_TREND || c->rule == EDGC_RULE_CQM || c->rule == EDGC_RULE_ERROR ||
              c->rule == EDGC_RULE_DECAY,
          "rule = %d: must be EDGC_RULE_TREND, EDGC_RULE_CQM, EDGC_RULE_ERROR or EDGC_RULE_DECAY",
          (int)c->rule);
    CHECK(c->rmax_rule == EDGC_RMAX_BUDGET || c->rmax_rule == EDGC_RMAX_PAPER,
          "rmax_rule = %d: must be EDGC_RMAX_BUDGET or EDGC_RMAX_PAPER", (int)c->rmax_rule);
    CHECK(isfinite(c->rmax_slack) && c->rmax_slack >= 0.0 && c->rmax_slack <= 1.0,
          "rmax_slack = %g: must be in [0, 1]", c->rmax_slack);
    CHECK(isfinite(c->min_saving) && c->min_saving >= 0.0 && c->min_saving < 1.0,
          "min_saving = %g: must be in [0, 1)", c->min_saving);
    CHECK(c->warmup_sync == EDGC_WARMUP_RMAX || c->warmup_sync == EDGC_WARMUP_DENSE,
          "warmup_sync = %d: must be EDGC_WARMUP_RMAX or EDGC_WARMUP_DENSE", (int)c->warmup_sync);
    CHECK(isfinite(c->error_margin) && c->error_margin >= 0.0 && c->error_margin < 1.0,
          "error_margin = %g: must be in [0, 1)", c->error_margin);
    CHECK(c->reprofile_factor == 0.0 ||
              (isfinite(c->reprofile_factor) && c->reprofile_factor > 1.0),
          "reprofile_factor = %g: must be 0 (never) or > 1", c->reprofile_factor);
    CHECK(c->threads >= 0 && c->threads <= 1024, "threads = %d: must be in [0, 1024]", c->threads);
    CHECK(c->wam_rule == EDGC_WAM_CAP || c->wam_rule == EDGC_WAM_PAPER,
          "wam_rule = %d: must be EDGC_WAM_CAP or EDGC_WAM_PAPER", (int)c->wam_rule);
    CHECK(c->rank_step >= 1, "rank_step = %d: must be >= 1", c->rank_step);
    CHECK(c->r_max >= 0, "r_max = %d: must be >= 1, or 0 to profile it", c->r_max);
    CHECK(c->r_min >= 0, "r_min = %d: must be >= 1, or 0 for r_max / 3", c->r_min);
    CHECK(c->r_max == 0 || c->r_min <= c->r_max, "r_min = %d > r_max = %d: must be <= r_max",
          c->r_min, c->r_max);
    CHECK(c->profile_start >= 0, "profile_start = %d: must be >= 0", c->profile_start);
    CHECK(c->profile_base_steps >= 1, "profile_base_steps = %d: must be >= 1",
          c->profile_base_steps);
    CHECK(c->profile_reps >= 2 && c->profile_reps <= EDGC__PROF_SAMPLES_MAX + 1,
          "profile_reps = %d: must be in [2, %d] (the first is dropped)", c->profile_reps,
          EDGC__PROF_SAMPLES_MAX + 1);
    CHECK(c->error_feedback == 0 || c->error_feedback == 1, "error_feedback = %d: must be 0 or 1",
          c->error_feedback);
    CHECK(c->orthonormalize_q == 0 || c->orthonormalize_q == 1,
          "orthonormalize_q = %d: must be 0 or 1", c->orthonormalize_q);
    CHECK(c->scale_aware_entropy == 0 || c->scale_aware_entropy == 1,
          "scale_aware_entropy = %d: must be 0 or 1", c->scale_aware_entropy);
    CHECK(isfinite(c->orth_eps) && c->orth_eps >= 0.0f, "orth_eps = %g: must be finite and >= 0",
          (double)c->orth_eps);
    CHECK(c->check_finite == 0 || c->check_finite == 1, "check_finite = %d: must be 0 or 1",
          c->check_finite);
    CHECK(c->pipeline_stages >= 1, "pipeline_stages = %d: must be >= 1", c->pipeline_stages);
    CHECK(c->pipeline_stage >= 0 && c->pipeline_stage < c->pipeline_stages,
          "pipeline_stage = %d: must be in [0, pipeline_stages = %d)", c->pipeline_stage,
          c->pipeline_stages);
    CHECK(c->mode != EDGC_MODE_EDGC || c->total_steps > 0,
          "total_steps = 0: EDGC mode needs the run length to place the warm-up");
    if (layout != NULL) EDGC_FORWARD(edgc__layout_check(layout, why, why_len));
    return EDGC_OK;
}
