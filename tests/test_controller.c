/* test_controller.c - the EDGC phase machine: warm-up length, window timing, profiling to r_max,
 * the decay, trend and CQM rules driven end to end, and misuse. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "edgc_internal.h"
#include "testutil.h"

static const edgc_tensor k_tensors[] = {{0, 64, 32}, {2048, 32, 1}, {2080, 48, 64}};
static const edgc_layout k_layout = {k_tensors, 3, 2080 + 48 * 64};

static edgc_controller* make(edgc_config c)
{
    edgc_controller* ctl = NULL;
    assert_int_equal(edgc_controller_create(&c, &k_layout, &ctl), EDGC_OK);
    return ctl;
}

static edgc_config short_run(void)
{
    edgc_config c = edgc_config_default();
    c.total_steps = 200;
    c.warmup_fraction = 0.1; /* 20 steps: the step numbers below count on it */
    c.window = 20;
    c.alpha = 0.5; /* 10 samples per window */
    c.r_max = 16;
    /* the authors' behaviour; the defaults have tests of their own below */
    c.rule = EDGC_RULE_TREND;
    c.rmax_rule = EDGC_RMAX_PAPER;
    c.warmup_sync = EDGC_WARMUP_DENSE;
    return c;
}

typedef double (*entropy_fn)(uint64_t step);

/* Field by field: the struct has padding, which memcmp would read. */
static void assert_plan_equal(const edgc_plan* a, const edgc_plan* b)
{
    assert_int_equal(a->step, b->step);
    assert_int_equal(a->phase, b->phase);
    assert_int_equal(a->rank, b->rank);
    assert_int_equal(a->sample_entropy, b->sample_entropy);
    assert_int_equal(a->timed, b->timed);
    assert_int_equal(a->rank_changed, b->rank_changed);
}

/* Runs the controller for `steps`, feeding entropy(step) and sync times time(rank); records the
 * plans. */
static void drive(edgc_controller* ctl, uint64_t steps, entropy_fn h, double (*ms)(int rank),
                  edgc_plan* plans)
{
    for (uint64_t t = 0; t < steps; t++) {
        edgc_plan p;
        assert_int_equal(edgc_controller_plan(ctl, &p), EDGC_OK);
        assert_int_equal(p.step, t);
        edgc_observation o = {.entropy = h(t), .sync_ms = ms ? ms(p.rank) : 0.0};
        assert_int_equal(edgc_controller_commit(ctl, &o), EDGC_OK);
        plans[t] = p;
    }
}

static double h_falling(uint64_t t)
{
    return 6.0 - 0.01 * (double)t;
}

/* Training settles: the entropy falls fast, then ever slower. */
static double h_settling(uint64_t t)
{
    return 1.0 + 5.0 * exp(-(double)t / 25.0);
}

static double h_flat(uint64_t t)
{
    (void)t;
    return 5.0;
}

static void test_warmup_length_then_r_max(void** state)
{
    (void)state;
    edgc_config c = short_run();
    c.warmup_fraction = 0.15; /* 30 of 200 steps */
    edgc_controller* ctl = make(c);
    edgc_plan plans[200];
    drive(ctl, 200, h_falling, NULL, plans);
    for (int t = 0; t < 30; t++) {
        assert_int_equal(plans[t].phase, EDGC_PHASE_WARMUP);
        assert_int_equal(plans[t].rank, 0);
        assert_int_equal(plans[t].timed, 0);
    }
    assert_int_equal(plans[30].phase, EDGC_PHASE_COMPRESS);
    assert_int_equal(plans[30].rank, 16);
    assert_int_equal(plans[30].rank_changed, 1);
    for (int t = 31; t < 200; t++)
        assert_int_equal(plans[t].phase, EDGC_PHASE_COMPRESS);
    int lo, hi;
    assert_int_equal(edgc_controller_bounds(ctl, &lo, &hi), EDGC_OK);
    assert_int_equal(lo, 5); /* r_max / 3 */
    assert_int_equal(hi, 16);
    edgc_controller_free(ctl);
}

static void test_ranks_change_only_at_window_boundaries(void** state)
{
    (void)state;
    edgc_config c = short_run();
    edgc_controller* ctl = make(c);
    edgc_plan plans[200];
    drive(ctl, 200, h_settling, NULL, plans);
    int changes = 0;
    for (int t = 21; t < 200; t++) {
        if (plans[t].rank != plans[t - 1].rank) {
            assert_int_equal(t % 20, 0);
            assert_int_equal(plans[t].rank_changed, 1);
            assert_true(abs(plans[t].rank - plans[t - 1].rank) <= 4);
            changes++;
        } else {
            assert_int_equal(plans[t].rank_changed, 0);
        }
        /* even, except the floor r_max / 3 = 5 itself */
        assert_true(plans[t].rank >= 5 && plans[t].rank <= 16);
        assert_true(plans[t].rank % 2 == 0 || plans[t].rank == 5);
    }
    /* the change slows against the first windows': the rank walks down to r_min */
    assert_true(changes >= 3);
    assert_int_equal(plans[199].rank, 5);
    edgc_controller_free(ctl);
}

static void test_entropy_sampled_every_1_over_alpha(void** state)
{
    (void)state;
    edgc_config c = short_run();
    c.alpha = 0.25;
    edgc_controller* ctl = make(c);
    edgc_plan plans[200];
    drive(ctl, 200, h_flat, NULL, plans);
    for (int t = 0; t < 200; t++)
        assert_int_equal(plans[t].sample_entropy, t % 4 == 0);
    edgc_controller_free(ctl);
}

/* Sync time grows with rank; dense takes 10 ms; rank r takes 2 + r / 2 ms, so compression is
 * faster below r = 16 and r_max comes out at 16. */
static double ms_linear(int rank)
{
    return rank == 0 ? 10.0 : 2.0 + 0.5 * rank;
}

static void test_profiling_finds_r_max(void** state)
{
    (void)state;
    edgc_config c = short_run();
    c.r_max = 0;
    c.profile_start = 5;
    c.profile_base_steps = 2;
    c.warmup_fraction = 0.1; /* 20 steps, shorter than profiling */
    edgc_controller* ctl = make(c);
    edgc_plan plans[200];
    int lo, hi;
    assert_int_equal(edgc_controller_bounds(ctl, &lo, &hi), EDGC_OK);
    assert_int_equal(hi, 0); /* unknown yet */
    drive(ctl, 200, h_falling, ms_linear, plans);
    for (int t = 0; t < 5; t++) {
        assert_int_equal(plans[t].phase, EDGC_PHASE_PROFILE);
        assert_int_equal(plans[t].timed, 0);
    }
    /* 2 base steps, then ranks 8, 12, 16, 24 for 4 steps each (none below 8: the ladder starts
     * there); 24 is slower than dense */
    const int want[] = {0, 0, 8, 8, 8, 8, 12, 12, 12, 12, 16, 16, 16, 16, 24, 24, 24, 24};
    const int n_want = (int)(sizeof want / sizeof *want);
    for (int i = 0; i < n_want; i++) {
        assert_int_equal(plans[5 + i].phase, EDGC_PHASE_PROFILE);
        assert_int_equal(plans[5 + i].timed, 1);
        assert_int_equal(plans[5 + i].rank, want[i]);
    }
    /* profiling ended after the warm-up fraction: compression starts right away */
    assert_int_equal(plans[5 + n_want].phase, EDGC_PHASE_COMPRESS);
    assert_int_equal(plans[5 + n_want].timed, 0);
    assert_int_equal(edgc_controller_bounds(ctl, &lo, &hi), EDGC_OK);
    /* T(16) = 10 = T_base, T(24) = 14: interpolation gives 16 */
    assert_int_equal(hi, 16);
    assert_int_equal(lo, 5);
    assert_int_equal(plans[5 + n_want].rank, 16);
    edgc_controller_free(ctl);
}

static double ms_never_faster(int rank)
{
    return rank == 0 ? 1.0 : 5.0 + rank;
}

static void test_profiling_when_compression_never_pays(void** state)
{
    (void)state;
    edgc_config c = short_run();
    c.r_max = 0;
    c.profile_start = 0;
    edgc_controller* ctl = make(c);
    edgc_plan plans[200];
    drive(ctl, 200, h_flat, ms_never_faster, plans);
    int lo, hi;
    assert_int_equal(edgc_controller_bounds(ctl, &lo, &hi), EDGC_OK);
    assert_int_equal(hi, 0); /* no rank is faster than dense */
    assert_int_equal(lo, 0);
    /* so the run stays dense: compress phase, rank 0, no window decisions */
    for (int t = 0; t < 200; t++) {
        if (plans[t].phase == EDGC_PHASE_COMPRESS) assert_int_equal(plans[t].rank, 0);
        if (t > 0) assert_true(plans[t].phase >= plans[t - 1].phase);
    }
    assert_int_equal(plans[199].phase, EDGC_PHASE_COMPRESS);
    edgc_controller_free(ctl);
}

/* Rank 8, the first profiled, beats dense but rank 12 does not: r_max interpolates between them,
 * below 12. */
static double ms_small_gain(int rank)
{
    return rank == 0 ? 10.0 : (rank == 8 ? 8.0 : 12.0);
}

static void test_profiling_small_r_max(void** state)
{
    (void)state;
    edgc_config c = short_run();
    c.r_max = 0;
    c.profile_start = 0;
    edgc_controller* ctl = make(c);
    edgc_plan plans[200];
    drive(ctl, 200, h_flat, ms_small_gain, plans);
    int lo, hi;
    assert_int_equal(edgc_controller_bounds(ctl, &lo, &hi), EDGC_OK);
    assert_int_equal(hi, 8); /* 8 + 4 * (10 - 8) / (12 - 8) = 10, down to a multiple of 4 */
    assert_int_equal(lo, 2);
    assert_int_equal(plans[199].phase, EDGC_PHASE_COMPRESS);
    assert_true(plans[199].rank >= 2 && plans[199].rank <= 8);
    edgc_controller_free(ctl);
}

static double ms_always_faster(int rank)
{
    return rank == 0 ? 1000.0 : 1.0 + 0.001 * rank;
}

static void test_profiling_stops_at_rank_cap(void** state)
{
    (void)state;
    edgc_config c = short_run();
    c.r_max = 0;
    c.profile_start = 0;
    c.total_steps = 100;
    edgc_controller* ctl = make(c);
    edgc_plan plans[100];
    drive(ctl, 100, h_flat, ms_always_faster, plans);
    int lo, hi;
    assert_int_equal(edgc_controller_bounds(ctl, &lo, &hi), EDGC_OK);
    assert_int_equal(hi, 48); /* min(rows, cols) of the largest matrix */
    for (int t = 0; t < 100; t++)
        assert_true(plans[t].rank <= 64);
    edgc_controller_free(ctl);
}

static void test_steady_trend_keeps_r_max(void** state)
{
    (void)state;
    /* a change as fast as at the start of training: x = 1, the rank stays at r_max */
    edgc_config c = short_run();
    edgc_controller* ctl = make(c);
    edgc_plan plans[200];
    drive(ctl, 200, h_falling, NULL, plans);
    for (int t = 20; t < 200; t++)
        assert_int_equal(plans[t].rank, 16);
    edgc_controller_free(ctl);
}

static void test_decay_rule_ignores_entropy_and_falls_to_r_min(void** state)
{
    (void)state;
    /* 200 steps, window 20, dense warm-up to step 20, r_max 16 (r_min 5): compression starts at
     * 16 and the rank at each boundary follows 16 - 11 (t - 20) / 180, rounded to even */
    edgc_config c = short_run();
    c.rule = EDGC_RULE_DECAY;
    const entropy_fn signals[] = {h_falling, h_settling, h_flat};
    edgc_plan first[200];
    for (int k = 0; k < 3; k++) {
        edgc_controller* ctl = make(c);
        edgc_plan plans[200];
        drive(ctl, 200, signals[k], NULL, plans);
        for (int t = 0; t < 200; t++) {
            if (k == 0) {
                first[t] = plans[t];
            } else {
                assert_plan_equal(&plans[t], &first[t]); /* the entropy does not move it */
            }
        }
        edgc_controller_free(ctl);
    }
    assert_int_equal(first[20].rank, 16);
    assert_int_equal(first[40].rank, 14);  /* 14.78 -> 15 -> even */
    assert_int_equal(first[100].rank, 10); /* 11.11 -> 11 -> even */
    assert_int_equal(first[180].rank, 6);  /* 6.22 -> 6 */
    assert_int_equal(first[199].rank, 6);
    for (int t = 21; t < 200; t++) {
        assert_true(first[t].rank <= first[t - 1].rank);
        if (t % 20 != 0) assert_int_equal(first[t].rank, first[t - 1].rank);
    }
}

static void test_cqm_rule(void** state)
{
    (void)state;
    edgc_config c = short_run();
    c.rule = EDGC_RULE_CQM;
    /* flat entropy: exp(0) g(r_max) = g(r_max): the rank stays at r_max */
    edgc_controller* ctl = make(c);
    edgc_plan plans[200];
    drive(ctl, 200, h_flat, NULL, plans);
    for (int t = 20; t < 200; t++)
        assert_int_equal(plans[t].rank, 16);
    edgc_controller_free(ctl);
    /* falling entropy: a larger error is allowed, the rank falls, by at most 4 a window */
    ctl = make(c);
    drive(ctl, 200, h_falling, NULL, plans);
    assert_int_equal(plans[20].rank, 16);
    for (int t = 21; t < 200; t++) {
        assert_true(plans[t].rank <= plans[t - 1].rank);
        assert_true(plans[t - 1].rank - plans[t].rank <= 4);
    }
    assert_true(plans[199].rank < 16);
    edgc_controller_free(ctl);
}

/* Without a warm-up there is no entropy sample before compression: CQM anchors its reference on
 * the first window instead (the rank holds at that boundary), then follows the fall as usual. */
static void test_cqm_without_warmup_anchors_on_the_first_window(void** state)
{
    (void)state;
    edgc_config c = short_run();
    c.rule = EDGC_RULE_CQM;
    c.warmup_fraction = 0.0;
    edgc_controller* ctl = make(c);
    edgc_plan plans[200];
    drive(ctl, 200, h_falling, NULL, plans);
    for (int t = 0; t < 40; t++) /* compressing from step 0; the boundary at 20 anchors */
        assert_int_equal(plans[t].rank, 16);
    for (int t = 41; t < 200; t++) {
        assert_true(plans[t].rank >= 1 && plans[t].rank <= plans[t - 1].rank);
        assert_true(plans[t - 1].rank - plans[t].rank <= 4);
    }
    assert_true(plans[40].rank < 16); /* 20 steps of falling entropy since the anchor */
    edgc_controller_free(ctl);
}

static double h_rising(uint64_t t)
{
    return 1.0 + 0.02 * (double)t;
}

static void test_cqm_rising_entropy_keeps_r_max(void** state)
{
    (void)state;
    edgc_config c = short_run();
    c.rule = EDGC_RULE_CQM;
    edgc_controller* ctl = make(c);
    edgc_plan plans[200];
    drive(ctl, 200, h_rising, NULL, plans);
    for (int t = 20; t < 200; t++)
        assert_int_equal(plans[t].rank, 16);
    edgc_controller_free(ctl);
}

static void test_same_inputs_same_decisions(void** state)
{
    (void)state;
    edgc_config c = short_run();
    c.r_max = 0;
    c.profile_start = 3;
    edgc_controller* a = make(c);
    edgc_controller* b = make(c);
    edgc_plan pa[200], pb[200];
    drive(a, 200, h_falling, ms_linear, pa);
    drive(b, 200, h_falling, ms_linear, pb);
    for (int t = 0; t < 200; t++)
        assert_plan_equal(&pa[t], &pb[t]);
    edgc_controller_free(a);
    edgc_controller_free(b);
}

static void test_misuse(void** state)
{
    (void)state;
    edgc_config c = short_run();
    edgc_controller* ctl = make(c);
    edgc_observation o = {.entropy = 1.0};
    assert_int_equal(edgc_controller_commit(ctl, &o), EDGC_ERR_STATE); /* no plan yet */
    edgc_plan p, q;
    assert_int_equal(edgc_controller_plan(ctl, &p), EDGC_OK);
    assert_int_equal(edgc_controller_plan(ctl, &q), EDGC_OK); /* idempotent */
    assert_plan_equal(&p, &q);
    assert_true(p.sample_entropy);
    o.entropy = NAN;
    assert_int_equal(edgc_controller_commit(ctl, &o), EDGC_ERR_INVALID_ARG);
    assert_int_equal(edgc_controller_plan(ctl, &q), EDGC_OK);
    assert_int_equal(q.step, 0); /* nothing was recorded */
    o.entropy = 2.0;
    assert_int_equal(edgc_controller_commit(ctl, &o), EDGC_OK);
    assert_int_equal(edgc_controller_commit(ctl, NULL), EDGC_ERR_INVALID_ARG);
    edgc_controller_free(ctl);
    edgc_controller_free(NULL);

    edgc_controller* none = (edgc_controller*)1;
    c.window = 1;
    assert_int_equal(edgc_controller_create(&c, &k_layout, &none), EDGC_ERR_CONFIG);
    assert_null(none);
    c = short_run();
    assert_int_equal(edgc_controller_create(&c, NULL, &none), EDGC_ERR_INVALID_ARG);
}

static void test_timed_step_needs_valid_time(void** state)
{
    (void)state;
    edgc_config c = short_run();
    c.r_max = 0;
    c.profile_start = 0;
    edgc_controller* ctl = make(c);
    edgc_plan p;
    assert_int_equal(edgc_controller_plan(ctl, &p), EDGC_OK);
    assert_true(p.timed);
    edgc_observation o = {.entropy = 1.0, .sync_ms = -1.0};
    assert_int_equal(edgc_controller_commit(ctl, &o), EDGC_ERR_INVALID_ARG);
    o.sync_ms = INFINITY;
    assert_int_equal(edgc_controller_commit(ctl, &o), EDGC_ERR_INVALID_ARG);
    o.sync_ms = 3.0;
    assert_int_equal(edgc_controller_commit(ctl, &o), EDGC_OK);
    edgc_controller_free(ctl);
}

/* ---------------------------------------------------------------------------------------------
 * The defaults: budget r_max, warm-up at r_max, the error rule, drift re-profiling. A simulated
 * link gives every observation: sync time by rank, a fixed compute time, and a compression error
 * by rank and step, reported one step late as the reducer does.
 */
typedef struct sim {
    double dense_ms, per_rank_ms, fixed_ms, compute_ms;
    double (*error)(int rank, uint64_t step); /* NULL: NaN */
    uint64_t slow_from;                       /* from this step the link is `slow` times slower */
    double slow;
    uint64_t stall_at[2]; /* steps whose transfer stalls, taking `stall` times longer (0: none) */
    double stall;
} sim;

static double sim_sync(const sim* m, int rank, uint64_t t)
{
    double f = t >= m->slow_from ? m->slow : 1.0;
    if (m->stall > 0.0 && (t == m->stall_at[0] || t == m->stall_at[1])) f *= m->stall;
    return rank == 0 ? f * m->dense_ms : m->fixed_ms + f * m->per_rank_ms * rank;
}

static edgc_config defaults_run(uint64_t steps)
{
    edgc_config c = edgc_config_default();
    c.total_steps = steps;
    c.warmup_fraction = 0.1; /* 40 of 400 steps: the step numbers below count on it */
    c.alpha = 0.5;
    return c;
}

/* WAM input of a pipeline stage > 0: stage 0's lead and this stage's backward time per
 * micro-batch, given before every step. */
typedef struct wam_feed {
    int rank;
    double t0_ms, tmb_ms;
} wam_feed;

/* Runs `steps` steps against the simulated link, from wherever ctl is, led by `lead` when not
 * NULL; returns the plans. */
static void simulate_led(edgc_controller* ctl, const sim* m, uint64_t steps, const wam_feed* lead,
                         edgc_plan* plans)
{
    int prev_rank = -1;
    uint64_t prev_t = 0;
    for (uint64_t i = 0; i < steps; i++) {
        if (lead != NULL) {
            edgc__controller_wam_lead(ctl, lead->rank, lead->t0_ms);
            edgc__controller_wam_tmb(ctl, lead->tmb_ms);
        }
        edgc_plan p;
        assert_int_equal(edgc_controller_plan(ctl, &p), EDGC_OK);
        edgc_observation o = {.entropy = 5.0,
                              .sync_ms = sim_sync(m, p.rank, p.step),
                              .compute_ms = m->compute_ms,
                              .prev_sync_ms = NAN,
                              .prev_error = NAN};
        if (prev_rank >= 0) {
            o.prev_sync_ms = sim_sync(m, prev_rank, prev_t);
            if (prev_rank > 0 && m->error != NULL) o.prev_error = m->error(prev_rank, prev_t);
        }
        assert_int_equal(edgc_controller_commit(ctl, &o), EDGC_OK);
        prev_rank = p.rank;
        prev_t = p.step;
        plans[i] = p;
    }
}

static void simulate(edgc_controller* ctl, const sim* m, uint64_t steps, edgc_plan* plans)
{
    simulate_led(ctl, m, steps, NULL, plans);
}

/* A slow link (dense 300 ms) under a 100 ms compute step: rank r costs 2 + 3r ms. The fastest
 * step profiled is rank 8's 126 ms (the ladder starts at 8); with 25 % of the 274 ms saving given
 * back the step may take 194.5 ms, so ranks up to 24 (174 ms) qualify and 32 (198 ms) does not. */
static const sim k_slow = {300.0, 3.0, 2.0, 100.0, NULL, UINT64_MAX, 1.0, {0, 0}, 0.0};

static void test_budget_profile_and_warmup_at_r_max(void** state)
{
    (void)state;
    edgc_config c = defaults_run(400);
    edgc_controller* ctl = make(c);
    edgc_plan plans[400];
    simulate(ctl, &k_slow, 400, plans);
    /* 1 settling step, 4 dense timed, then ranks 8 and 12 (the layout's worth cap: 16 would send
     * more than half the dense bytes) */
    const int want[] = {0, 0, 0, 0, 0, 8, 8, 8, 8, 12, 12, 12, 12};
    const int n_want = (int)(sizeof want / sizeof *want);
    for (int t = 0; t < n_want; t++) {
        assert_int_equal(plans[t].phase, EDGC_PHASE_PROFILE);
        assert_int_equal(plans[t].rank, want[t]);
        assert_int_equal(plans[t].timed, t >= 1);
    }
    /* The narrow layout ends the ladder at 12, whose step (138 ms) is inside the line of 194.5
     * ms. Two ranks are too few for the link's marginal rate (it takes four), so the dense
     * samples' 300 ms stand. */
    int lo, hi;
    assert_int_equal(edgc_controller_bounds(ctl, &lo, &hi), EDGC_OK);
    assert_int_equal(hi, 12);
    assert_int_equal(lo, 4);
    /* warm-up (to step 40) runs at r_max, not dense */
    for (int t = n_want; t < 40; t++) {
        assert_int_equal(plans[t].phase, EDGC_PHASE_WARMUP);
        assert_int_equal(plans[t].rank, 12);
    }
    assert_int_equal(plans[40].phase, EDGC_PHASE_COMPRESS);
    double dense_ms, compute_ms;
    int profiles;
    assert_int_equal(edgc_controller_profiled(ctl, &dense_ms, &compute_ms, &profiles), EDGC_OK);
    assert_true(dense_ms == 300.0 && compute_ms == 100.0);
    assert_int_equal(profiles, 1);
    edgc_controller_free(ctl);

    c.warmup_sync = EDGC_WARMUP_DENSE;
    ctl = make(c);
    simulate(ctl, &k_slow, 60, plans);
    for (int t = n_want; t < 40; t++)
        assert_int_equal(plans[t].rank, 0);
    assert_int_equal(plans[40].rank, 12);
    edgc_controller_free(ctl);
}

/* Wide matrices, so that the time budget binds and not the bytes. */
static const edgc_tensor k_wide_tensors[] = {{0, 256, 256}, {65536, 256, 1}};
static const edgc_layout k_wide = {k_wide_tensors, 2, 65536 + 256};

static void test_budget_stops_where_time_stops_paying(void** state)
{
    (void)state;
    edgc_config c = defaults_run(400);
    edgc_controller* ctl = NULL;
    assert_int_equal(edgc_controller_create(&c, &k_wide, &ctl), EDGC_OK);
    edgc_plan plans[100];
    simulate(ctl, &k_slow, 100, plans);
    int lo, hi;
    assert_int_equal(edgc_controller_bounds(ctl, &lo, &hi), EDGC_OK);
    assert_int_equal(hi, 24);
    assert_int_equal(lo, 8);
    /* rank 32 was timed (it ended profiling), rank 48 never was */
    int saw32 = 0;
    for (int t = 0; t < 100; t++) {
        saw32 |= plans[t].rank == 32;
        assert_true(plans[t].rank <= 32);
    }
    assert_true(saw32);
    edgc_controller_free(ctl);

    /* the same link under the paper's rule: every rank "beats dense", r_max goes to the cap */
    c.rmax_rule = EDGC_RMAX_PAPER;
    assert_int_equal(edgc_controller_create(&c, &k_wide, &ctl), EDGC_OK);
    simulate(ctl, &k_slow, 100, plans);
    assert_int_equal(edgc_controller_bounds(ctl, &lo, &hi), EDGC_OK);
    assert_int_equal(hi, 96); /* 300 ms interpolated between 64 (194 ms) and 128 (386 ms) */
    edgc_controller_free(ctl);
}

/* Profiles k_slow on the wide layout with steps a and b stalling `stall` times; returns r_max,
 * the profiled dense cost and the ranks the stalled steps ran at. */
static int profile_with_stalls(uint64_t a, uint64_t b, double stall, double* dense_ms,
                               int stalled_rank[2])
{
    sim m = k_slow;
    m.stall_at[0] = a;
    m.stall_at[1] = b;
    m.stall = stall;
    edgc_config c = defaults_run(400);
    edgc_controller* ctl = NULL;
    assert_int_equal(edgc_controller_create(&c, &k_wide, &ctl), EDGC_OK);
    edgc_plan plans[100];
    simulate(ctl, &m, 100, plans);
    stalled_rank[0] = plans[a].rank;
    stalled_rank[1] = plans[b].rank;
    int lo, hi, profiles;
    double compute_ms;
    assert_int_equal(edgc_controller_bounds(ctl, &lo, &hi), EDGC_OK);
    assert_int_equal(edgc_controller_profiled(ctl, dense_ms, &compute_ms, &profiles), EDGC_OK);
    edgc_controller_free(ctl);
    return hi;
}

/* One stalled transfer among rank 16's kept samples and one among rank 24's: the medians ignore
 * both. (With means, T(24) would be 123 ms instead of 74, which puts 24's step past the budget
 * line, and profiling would stop there with r_max 16.) */
static void test_budget_ignores_one_stalled_sample(void** state)
{
    (void)state;
    /* step 0 settles, 1-4 dense, then 4 steps per rank: 16 at 13-16, 24 at 17-20 (13, 17 dropped) */
    double dense_ms;
    int stalled[2];
    assert_int_equal(profile_with_stalls(15, 19, 3.0, &dense_ms, stalled), 24);
    assert_true(stalled[0] == 16 && stalled[1] == 24);
    assert_true(dense_ms == 300.0);
}

/* A bimodal dense sync (two of the four dense samples stall at 1.5x): the budget weighs ranks
 * against the fastest dense sample, so r_max is the steady link's 24. Against the samples' mean
 * (375 ms) the line would be 213 ms and let rank 32 (198 ms) in; the mean is still what the
 * profile reports as a dense step's cost. */
static void test_budget_uses_the_fastest_dense_sample(void** state)
{
    (void)state;
    double dense_ms;
    int stalled[2];
    assert_int_equal(profile_with_stalls(2, 3, 1.5, &dense_ms, stalled), 24);
    assert_true(stalled[0] == 0 && stalled[1] == 0); /* dense samples */
    assert_true(dense_ms == 375.0);
}

/* A bandwidth-bound link: rank r sends 256 + 512r floats at 2 + 3r ms, so the dense step's 65792
 * floats cost 2 + 3 * 65536 / 512 = 386 ms when they do not stall. Steady, the line is 126 +
 * 0.25 * (486 - 126) = 216 ms: rank 32 (198 ms) in, 48 (246 ms) out. When all four dense
 * samples stall at 1.5x (579 ms) the line would move to 264.25 ms and let 48 in; the marginal
 * rate of the largest ranks timed puts the dense cost back at 386 ms and r_max at 32. */
static void test_budget_sees_through_four_stalled_dense_samples(void** state)
{
    (void)state;
    for (int stalled = 0; stalled < 2; stalled++) {
        sim m = k_slow;
        m.dense_ms = stalled ? 1.5 * 386.0 : 386.0;
        edgc_config c = defaults_run(400);
        edgc_controller* ctl = NULL;
        assert_int_equal(edgc_controller_create(&c, &k_wide, &ctl), EDGC_OK);
        edgc_plan plans[100];
        simulate(ctl, &m, 100, plans);
        int lo, hi, saw48 = 0;
        for (int t = 0; t < 100; t++)
            saw48 |= plans[t].phase == EDGC_PHASE_PROFILE && plans[t].rank == 48;
        assert_true(saw48); /* both profiles time 48: the stop rule is unchanged */
        assert_int_equal(edgc_controller_bounds(ctl, &lo, &hi), EDGC_OK);
        assert_int_equal(hi, 32);
        double dense_ms, compute_ms;
        int profiles;
        assert_int_equal(edgc_controller_profiled(ctl, &dense_ms, &compute_ms, &profiles), EDGC_OK);
        assert_true(dense_ms == m.dense_ms); /* the report is still what dense steps took */
        edgc_controller_free(ctl);
    }
}

/* Shared memory: compression costs more than it saves, so the run stays dense from profiling on,
 * warm-up included. */
static void test_budget_stays_dense_when_nothing_pays(void** state)
{
    (void)state;
    const sim shm = {1.0, 0.05, 1.0, 100.0, NULL, UINT64_MAX, 1.0, {0, 0}, 0.0};
    edgc_config c = defaults_run(400);
    edgc_controller* ctl = make(c);
    edgc_plan plans[400];
    simulate(ctl, &shm, 400, plans);
    int lo, hi;
    assert_int_equal(edgc_controller_bounds(ctl, &lo, &hi), EDGC_OK);
    assert_int_equal(hi, 0);
    int compressed = 0;
    for (int t = 0; t < 400; t++)
        compressed += plans[t].phase != EDGC_PHASE_PROFILE && plans[t].rank != 0;
    assert_int_equal(compressed, 0);
    edgc_controller_free(ctl);
}

/* Error falls with the step (training settles), and rises with lower rank. */
static double err_settling(int rank, uint64_t t)
{
    return (t < 150 ? 0.8 : 0.4) * (1.0 + 2.0 / rank);
}

static void test_error_rule_follows_the_budget(void** state)
{
    (void)state;
    edgc_config c = defaults_run(400);
    c.r_max = 16; /* window 20 */
    c.rule = EDGC_RULE_ERROR;
    sim m = k_slow;
    m.error = err_settling;
    edgc_controller* ctl = make(c);
    edgc_plan plans[400];
    simulate(ctl, &m, 400, plans);
    /* compression from step 40 at r_max; the budget is set over the first window at 16 */
    for (int t = 40; t < 80; t++)
        assert_int_equal(plans[t].rank, 16);
    /* until step 150 the error at 16 equals the budget and any lower rank would exceed it */
    for (int t = 40; t < 150; t++)
        assert_true(plans[t].rank >= 12);
    /* then the error halves: the rank steps down, 4 per window, to r_min */
    assert_int_equal(plans[399].rank, 5);
    for (int t = 41; t < 400; t++) {
        assert_true(abs(plans[t].rank - plans[t - 1].rank) <= 4);
        if (plans[t].rank != plans[t - 1].rank) assert_int_equal(t % 20, 0);
    }
    edgc_controller_free(ctl);
}

static double err_worse_below_16(int rank, uint64_t t)
{
    (void)t;
    return rank >= 16 ? 0.5 : 0.9;
}

static void test_error_rule_goes_back_up(void** state)
{
    (void)state;
    edgc_config c = defaults_run(400);
    c.r_max = 16;
    c.rule = EDGC_RULE_ERROR;
    sim m = k_slow;
    m.error = err_worse_below_16;
    edgc_controller* ctl = make(c);
    edgc_plan plans[400];
    simulate(ctl, &m, 400, plans);
    /* at 16 the error sits at the budget (no step down); it never settles below 16 for long */
    int below = 0;
    for (int t = 40; t < 400; t++)
        below += plans[t].rank < 16;
    assert_int_equal(below, 0);
    edgc_controller_free(ctl);
}

/* The link slows down 5x at step 200: the next window boundaries see sync times far above the
 * profile's prediction, a new profile runs, and r_max moves. */
static void test_link_slowing_down_triggers_a_new_profile(void** state)
{
    (void)state;
    edgc_config c = defaults_run(600);
    sim m = {300.0, 3.0, 2.0, 100.0, NULL, 200, 5.0, {0, 0}, 0.0};
    edgc_controller* ctl = NULL;
    assert_int_equal(edgc_controller_create(&c, &k_wide, &ctl), EDGC_OK);
    edgc_plan plans[600];
    simulate(ctl, &m, 600, plans);
    int reprofiled_at = -1;
    for (int t = 200; t < 600 && reprofiled_at < 0; t++)
        if (plans[t].phase == EDGC_PHASE_PROFILE) reprofiled_at = t;
    assert_true(reprofiled_at >= 200 && reprofiled_at <= 260);
    assert_int_equal(reprofiled_at % 30, 0); /* at a window boundary (window 30) */
    double dense_ms, compute_ms;
    int profiles;
    assert_int_equal(edgc_controller_profiled(ctl, &dense_ms, &compute_ms, &profiles), EDGC_OK);
    assert_int_equal(profiles, 2);
    assert_true(dense_ms == 1500.0);
    /* slower link: 1500 ms dense, rank r 2 + 15r: budget 132 + 0.25 * 1468 -> T <= 399 -> 24 */
    int lo, hi;
    assert_int_equal(edgc_controller_bounds(ctl, &lo, &hi), EDGC_OK);
    assert_int_equal(hi, 24);
    assert_int_equal(plans[599].phase, EDGC_PHASE_COMPRESS);
    edgc_controller_free(ctl);

    /* a steady link never re-profiles; reprofile_factor 0 disables it */
    m.slow = 1.0;
    for (int pass = 0; pass < 2; pass++) {
        c.reprofile_factor = pass ? 0.0 : 2.0;
        if (pass) m.slow = 5.0;
        assert_int_equal(edgc_controller_create(&c, &k_wide, &ctl), EDGC_OK);
        simulate(ctl, &m, 600, plans);
        assert_int_equal(edgc_controller_profiled(ctl, &dense_ms, &compute_ms, &profiles), EDGC_OK);
        assert_int_equal(profiles, 1);
        edgc_controller_free(ctl);
    }
}

/* A fresh controller of config c loaded with ctl's saved state. */
static edgc_controller* clone(const edgc_config* c, const edgc_controller* ctl)
{
    edgc__writer w = {0};
    edgc__controller_save(ctl, &w);
    uint8_t* buf = malloc(w.len);
    assert_non_null(buf);
    edgc__writer w2 = {buf, w.len, 0};
    edgc__controller_save(ctl, &w2);
    edgc_controller* copy = NULL;
    assert_int_equal(edgc_controller_create(c, &k_wide, &copy), EDGC_OK);
    edgc__reader r = {buf, w.len, 0, 0};
    assert_int_equal(edgc__controller_load(copy, &r), EDGC_OK);
    assert_int_equal(r.at, w.len);
    free(buf);
    return copy;
}

/* Save mid-run (mid-profile and mid-window), load into a fresh controller: both continue with
 * the same plans, every new field included. */
static void test_state_round_trip_continues_identically(void** state)
{
    (void)state;
    edgc_config c = defaults_run(600);
    sim m = {300.0, 3.0, 2.0, 100.0, err_settling, 200, 5.0, {0, 0}, 0.0};
    /* mid-T_base (2 of 4 timed), mid-rank (rank 12, 2 of 3 kept), mid-window, around a re-profile */
    const uint64_t cut[] = {3, 11, 100, 215, 250};
    const size_t n_cut = sizeof cut / sizeof cut[0];
    /* the default (decay) rule, then the trend rule (whose state is the entropy history) */
    for (size_t k = 0; k < 2 * n_cut; k++) {
        if (k == n_cut) c.rule = EDGC_RULE_TREND;
        edgc_controller* a = NULL;
        assert_int_equal(edgc_controller_create(&c, &k_wide, &a), EDGC_OK);
        edgc_plan pa[600], pb[600];
        const uint64_t at = cut[k % n_cut];
        simulate(a, &m, at, pa);
        edgc_plan pending;
        assert_int_equal(edgc_controller_plan(a, &pending), EDGC_OK); /* saved with a plan */
        edgc_controller* b = clone(&c, a);
        /* the simulator's one-step-late values restart with the first step on both */
        simulate(a, &m, 600 - at, pa);
        simulate(b, &m, 600 - at, pb);
        for (uint64_t t = 0; t < 600 - at; t++)
            assert_plan_equal(&pa[t], &pb[t]);
        edgc_controller_free(a);
        edgc_controller_free(b);
    }
}

/* The entropy history is allocated for the run's samples, up to a bound, and grows past it: a
 * huge total_steps (whose size once overflowed into a 16-byte history) decides exactly as a run
 * of normal length whose history also outgrows its first allocation. */
static double wavy_entropy(uint64_t t)
{
    return 3.0 - 1e-5 * (double)t + 0.1 * sin(0.7 * (double)t);
}

static void test_history_outgrows_its_first_allocation(void** state)
{
    (void)state;
    enum { STEPS = 70000 }; /* entropy samples past the first allocation's 65536 */
    edgc_config c = short_run();
    c.warmup_fraction = 0.0; /* the trend rule reads no other total_steps-dependent value */
    c.alpha = 1.0;
    c.total_steps = STEPS;
    edgc_controller* a = make(c);
    c.total_steps = (uint64_t)1 << 62;
    edgc_controller* b = make(c);
    for (uint64_t t = 0; t < STEPS; t++) {
        edgc_plan pa, pb;
        assert_int_equal(edgc_controller_plan(a, &pa), EDGC_OK);
        assert_int_equal(edgc_controller_plan(b, &pb), EDGC_OK);
        assert_plan_equal(&pa, &pb);
        edgc_observation o = {.entropy = wavy_entropy(t), .prev_sync_ms = NAN, .prev_error = NAN};
        assert_int_equal(edgc_controller_commit(a, &o), EDGC_OK);
        assert_int_equal(edgc_controller_commit(b, &o), EDGC_OK);
    }
    edgc_controller_free(a);
    edgc_controller_free(b);
}

/* WAM, stage 1: at each window boundary the rank spends stage 0's predicted time plus one
 * micro-batch of backward (edgc_wam_stage_rank over this stage's own profile), goes dense when
 * that budget exceeds its dense time, and takes stage 0's rank when there is no timing to align
 * on. The lead and the backward time survive a state round trip. */
static void follow(edgc_controller* ctl, const sim* m, uint64_t steps, int lead, double t0,
                   double tmb, edgc_plan* plans)
{
    wam_feed feed = {lead, t0, tmb};
    simulate_led(ctl, m, steps, &feed, plans);
}

static void test_wam_follower_spends_the_slack(void** state)
{
    (void)state;
    edgc_config c = defaults_run(400);
    c.pipeline_stages = 2;
    c.pipeline_stage = 1;
    edgc_controller *ctl = NULL, *copy = NULL;
    assert_int_equal(edgc_controller_create(&c, &k_wide, &ctl), EDGC_OK);
    edgc_plan p[400];
    /* stage 0 leads with rank 4: 2 + 3 * 4 = 14 ms; one micro-batch of backward is 10 ms */
    follow(ctl, &k_slow, 80, 4, 14.0, 10.0, p);
    int lo, hi;
    assert_int_equal(edgc_controller_bounds(ctl, &lo, &hi), EDGC_OK);
    assert_true(hi >= 8);
    assert_int_equal(p[40].phase, EDGC_PHASE_COMPRESS);
    assert_int_equal(p[40].rank, hi); /* compression starts at r_max on every stage */
    /* budget 24 ms: 22 / 3 = 7.3 on this stage's linear profile, rounded up to the next 4 */
    for (int t = 60; t < 80; t++)
        assert_int_equal(p[t].rank, 8);
    /* save mid-window, with the lead in place */
    follow(ctl, &k_slow, 5, 4, 14.0, 400.0, p + 80);
    copy = clone(&c, ctl);
    /* from step 80 the slack exceeds the dense time (14 + 400 > 300 ms): no compression */
    edgc_plan q[400];
    follow(ctl, &k_slow, 15, 4, 14.0, 400.0, p + 85);
    follow(copy, &k_slow, 15, 4, 14.0, 400.0, q + 85);
    for (int t = 80; t < 100; t++)
        assert_int_equal(p[t].rank, 0);
    /* no timing to align on (r_max given upstream): stage 0's rank, within this stage's bounds */
    follow(ctl, &k_slow, 40, 12, NAN, 400.0, p + 100);
    follow(copy, &k_slow, 40, 12, NAN, 400.0, q + 100);
    for (int t = 100; t < 140; t++)
        assert_int_equal(p[t].rank, 12 < hi ? 12 : hi);
    for (int t = 85; t < 140; t++)
        assert_plan_equal(&p[t], &q[t]);
    edgc_controller_free(ctl);
    edgc_controller_free(copy);

    /* a budget of 114 ms buys rank 40, above r_max but far below dense (300 ms): r_max by
     * default; the authors' rule goes dense */
    for (int rule = EDGC_WAM_CAP; rule <= EDGC_WAM_PAPER; rule++) {
        c.wam_rule = (edgc_wam_rule)rule;
        assert_int_equal(edgc_controller_create(&c, &k_wide, &ctl), EDGC_OK);
        follow(ctl, &k_slow, 80, 4, 14.0, 100.0, p);
        for (int t = 60; t < 80; t++)
            assert_int_equal(p[t].rank, rule == EDGC_WAM_CAP ? hi : 0);
        edgc_controller_free(ctl);
    }
    c.wam_rule = EDGC_WAM_CAP;

    /* the link turns out twice as slow once compression starts (in a pipeline, the activations
     * and the other stages' syncs share it): each window measures (2 + 6 r) against the
     * profile's (2 + 3 r). Led by rank 12 (38 ms) with 34 ms of backward per micro-batch,
     * the budget of 72 ms then buys 70 / 6 = 11.7 -> rank 12, not 70 / 3 = 23.3 -> 24 (and
     * above the floor of 8, so the scaling and not the floor sets it). Stage 0's lead
     * carries its prediction scaled by its own last window the same way. */
    sim busy = k_slow;
    busy.slow_from = 30; /* after profiling, before compression starts at 40 */
    busy.slow = 2.0;
    for (int stage = 1; stage >= 0; stage--) {
        c.pipeline_stage = stage;
        assert_int_equal(edgc_controller_create(&c, &k_wide, &ctl), EDGC_OK);
        follow(ctl, &busy, 120, 12, 38.0, 34.0, p);
        if (stage == 1)
            for (int t = 60; t < 120; t++)
                assert_int_equal(p[t].rank, 12);
        /* the last window that ended (steps 60-89, one value of step 59 included) */
        double used = p[89].rank, ratio = (2.0 + 6.0 * used) / (2.0 + 3.0 * used);
        assert_true(fabs(edgc__controller_predict_measured(ctl, 12) / (ratio * 38.0) - 1.0) < 0.01);
        assert_true(edgc__controller_predict(ctl, 12) == 38.0);
        /* the measured ratio is part of the state */
        copy = clone(&c, ctl);
        assert_true(edgc__controller_predict_measured(copy, 12) ==
                    edgc__controller_predict_measured(ctl, 12));
        edgc_controller_free(copy);
        edgc_controller_free(ctl);
    }

    /* stage 0 is never led: the same lead leaves its decisions unchanged */
    c.pipeline_stage = 0;
    edgc_controller *lead = NULL, *plain = NULL;
    assert_int_equal(edgc_controller_create(&c, &k_wide, &lead), EDGC_OK);
    assert_int_equal(edgc_controller_create(&c, &k_wide, &plain), EDGC_OK);
    follow(lead, &k_slow, 120, 4, 14.0, 10.0, p);
    simulate(plain, &k_slow, 120, q);
    for (int t = 0; t < 120; t++)
        assert_plan_equal(&p[t], &q[t]);
    edgc_controller_free(lead);
    edgc_controller_free(plain);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_warmup_length_then_r_max),
        cmocka_unit_test(test_ranks_change_only_at_window_boundaries),
        cmocka_unit_test(test_entropy_sampled_every_1_over_alpha),
        cmocka_unit_test(test_profiling_finds_r_max),
        cmocka_unit_test(test_profiling_when_compression_never_pays),
        cmocka_unit_test(test_profiling_stops_at_rank_cap),
        cmocka_unit_test(test_profiling_small_r_max),
        cmocka_unit_test(test_steady_trend_keeps_r_max),
        cmocka_unit_test(test_decay_rule_ignores_entropy_and_falls_to_r_min),
        cmocka_unit_test(test_cqm_rule),
        cmocka_unit_test(test_cqm_rising_entropy_keeps_r_max),
        cmocka_unit_test(test_cqm_without_warmup_anchors_on_the_first_window),
        cmocka_unit_test(test_same_inputs_same_decisions),
        cmocka_unit_test(test_misuse),
        cmocka_unit_test(test_timed_step_needs_valid_time),
        cmocka_unit_test(test_budget_profile_and_warmup_at_r_max),
        cmocka_unit_test(test_budget_uses_the_fastest_dense_sample),
        cmocka_unit_test(test_budget_sees_through_four_stalled_dense_samples),
        cmocka_unit_test(test_budget_stops_where_time_stops_paying),
        cmocka_unit_test(test_budget_ignores_one_stalled_sample),
        cmocka_unit_test(test_budget_stays_dense_when_nothing_pays),
        cmocka_unit_test(test_error_rule_follows_the_budget),
        cmocka_unit_test(test_error_rule_goes_back_up),
        cmocka_unit_test(test_link_slowing_down_triggers_a_new_profile),
        cmocka_unit_test(test_state_round_trip_continues_identically),
        cmocka_unit_test(test_history_outgrows_its_first_allocation),
        cmocka_unit_test(test_wam_follower_spends_the_slack),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
