/* test_controller.c - the EDGC phase machine: warm-up length, window timing, profiling to r_max,
 * the trend and CQM rules driven end to end, and misuse. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
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
    c.window = 20;
    c.alpha = 0.5; /* 10 samples per window */
    c.r_max = 16;
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
    assert_int_equal(lo, 4);
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
        assert_true(plans[t].rank >= 4 && plans[t].rank <= 16 && plans[t].rank % 2 == 0);
    }
    /* the change slows against the first windows': the rank walks down to r_min */
    assert_true(changes >= 3);
    assert_int_equal(plans[199].rank, 4);
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
    /* 2 base steps, then ranks 2, 4, 8, 16, 32 for 3 steps each; 32 is slower than dense */
    const int want[] = {0, 0, 2, 2, 2, 4, 4, 4, 8, 8, 8, 16, 16, 16, 32, 32, 32};
    for (int i = 0; i < 17; i++) {
        assert_int_equal(plans[5 + i].phase, EDGC_PHASE_PROFILE);
        assert_int_equal(plans[5 + i].timed, 1);
        assert_int_equal(plans[5 + i].rank, want[i]);
    }
    /* profiling ended after the warm-up fraction: compression starts right away */
    assert_int_equal(plans[22].phase, EDGC_PHASE_COMPRESS);
    assert_int_equal(plans[22].timed, 0);
    assert_int_equal(edgc_controller_bounds(ctl, &lo, &hi), EDGC_OK);
    /* T(16) = 10 = T_base, T(32) = 18: interpolation gives 16 */
    assert_int_equal(hi, 16);
    assert_int_equal(lo, 4);
    assert_int_equal(plans[22].rank, 16);
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

/* Rank 2 beats dense but rank 4 does not: r_max interpolates between them, below 4. */
static double ms_small_gain(int rank)
{
    return rank == 0 ? 10.0 : (rank == 2 ? 8.0 : 12.0);
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
    assert_int_equal(hi, 3); /* 2 + 2 * (10 - 8) / (12 - 8) */
    assert_int_equal(lo, 1);
    assert_int_equal(plans[199].phase, EDGC_PHASE_COMPRESS);
    assert_true(plans[199].rank >= 1 && plans[199].rank <= 3);
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
        cmocka_unit_test(test_cqm_rule),
        cmocka_unit_test(test_cqm_rising_entropy_keeps_r_max),
        cmocka_unit_test(test_same_inputs_same_decisions),
        cmocka_unit_test(test_misuse),
        cmocka_unit_test(test_timed_step_needs_valid_time),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
