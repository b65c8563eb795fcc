/* test_rank_rules.c - the trend map, the decay schedule, the error budget, the shared smoothing,
 * and r_max from a timing profile by the budget and the authors' rules. */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <math.h>
#include <string.h>
#include <cmocka.h>

#include "edgc_internal.h"
#include "testutil.h"

static const edgc__bounds B = {4, 16, 4};

/* A history of 4 windows of n_w samples: means h0, h1 (reference) then h2, h3 (now). */
static void windows(double* h, size_t n_w, double h0, double h1, double h2, double h3)
{
    for (size_t i = 0; i < n_w; i++) {
        h[i] = h0;
        h[n_w + i] = h1;
        h[2 * n_w + i] = h2;
        h[3 * n_w + i] = h3;
    }
}

static void test_trend_needs_two_windows(void** state)
{
    (void)state;
    double h[10] = {5, 4, 3, 2, 1, 0, 1, 2, 3, 4};
    assert_int_equal(edgc__trend_target(h, 9, 5, B), 16);
    assert_int_equal(edgc__trend_target(h, 0, 5, B), 16);
}

static void test_trend_maps_change_linearly_and_clamps(void** state)
{
    (void)state;
    double h[40];
    /* reference change 1.0; current change x gives r_min + 12 x */
    windows(h, 10, 6.0, 5.0, 4.0, 4.0);
    assert_int_equal(edgc__trend_target(h, 40, 10, B), 4); /* stable: r_min */
    windows(h, 10, 6.0, 5.0, 4.0, 3.5);
    assert_int_equal(edgc__trend_target(h, 40, 10, B), 10);
    windows(h, 10, 6.0, 5.0, 4.0, 4.25);
    assert_int_equal(edgc__trend_target(h, 40, 10, B), 7);
    windows(h, 10, 6.0, 5.0, 4.0, 1.0); /* x = 3: clamped */
    assert_int_equal(edgc__trend_target(h, 40, 10, B), 16);
    /* monotone in the size of the change */
    int prev = 0;
    for (int i = 0; i <= 40; i++) {
        windows(h, 10, 6.0, 5.0, 4.0, 4.0 - 0.05 * i);
        int r = edgc__trend_target(h, 40, 10, B);
        assert_true(r >= prev && r >= B.r_min && r <= B.r_max);
        prev = r;
    }
}

static void test_trend_flat_reference_no_division_by_zero(void** state)
{
    (void)state;
    double h[40];
    windows(h, 10, 5.0, 5.0, 5.0,
            5.0); /* warm-up entropies equal: d_ref = 0 (docs/ALGORITHM.md §6.2) */
    assert_int_equal(edgc__trend_target(h, 40, 10, B), 4);
    windows(h, 10, 5.0, 5.0, 5.0, 4.0);
    assert_int_equal(edgc__trend_target(h, 40, 10, B), 16);
}

static void test_smooth_even_step_and_bounds(void** state)
{
    (void)state;
    assert_int_equal(edgc__smooth_rank(7, 8, B), 6);   /* even, down */
    assert_int_equal(edgc__smooth_rank(4, 16, B), 12); /* step limit -4 */
    assert_int_equal(edgc__smooth_rank(16, 4, B), 8);  /* step limit +4 */
    assert_int_equal(edgc__smooth_rank(99, 14, B), 16);
    assert_int_equal(edgc__smooth_rank(-5, 6, B), 4);
    /* first adjustment from r_max: at most r_max - step (docs/ALGORITHM.md §6.2) */
    assert_int_equal(edgc__smooth_rank(4, 16, B), 12);
    assert_int_equal(edgc__smooth_rank(14, 16, B), 14);
    /* an odd r_min wins over parity; small ranks are not forced even */
    edgc__bounds odd = {3, 12, 4};
    assert_int_equal(edgc__smooth_rank(3, 4, odd), 3);
    edgc__bounds tiny = {1, 2, 4};
    assert_int_equal(edgc__smooth_rank(1, 2, tiny), 1);
    /* a sweep never leaves the bounds, never moves more than step, stays even from even */
    for (int target = -10; target < 30; target++)
        for (int prev = 4; prev <= 16; prev += 2) {
            int r = edgc__smooth_rank(target, prev, B);
            assert_true(r >= 4 && r <= 16 && abs(r - prev) <= 4 && r % 2 == 0);
        }
}

static void test_rmax_from_profile(void** state)
{
    (void)state;
    const int ranks[] = {2, 4, 8, 16};
    const double ms[] = {10, 12, 16, 24};
    int r = 0;
    assert_int_equal(edgc_rmax_from_profile(ranks, ms, 4, 20.0, &r), EDGC_OK);
    assert_int_equal(r, 12); /* 8 + 8 * (20 - 16) / (24 - 16) = 12 */
    assert_int_equal(edgc_rmax_from_profile(ranks, ms, 4, 13.0, &r), EDGC_OK);
    assert_int_equal(r, 4); /* 5 -> 4 floor(5 / 4) */
    assert_int_equal(edgc_rmax_from_profile(ranks, ms, 4, 32.0, &r), EDGC_OK);
    assert_int_equal(r, 24); /* extrapolated beyond the last point */
    assert_int_equal(edgc_rmax_from_profile(ranks, ms, 2, 11.0, &r), EDGC_OK);
    assert_int_equal(r, 3); /* below 4: kept as it is */
    assert_int_equal(edgc_rmax_from_profile(ranks, ms, 4, 1.0, &r), EDGC_OK);
    assert_int_equal(r, 1); /* never below 1 */
    assert_int_equal(edgc_rmax_from_profile(ranks, ms, 1, 5.0, &r), EDGC_OK);
    assert_int_equal(r, 2); /* one point: its rank */
    const int unsorted[] = {4, 2};
    assert_int_equal(edgc_rmax_from_profile(unsorted, ms, 2, 5.0, &r), EDGC_ERR_INVALID_ARG);
    const double nan_ms[] = {1, NAN};
    assert_int_equal(edgc_rmax_from_profile(ranks, nan_ms, 2, 5.0, &r), EDGC_ERR_INVALID_ARG);
    assert_int_equal(edgc_rmax_from_profile(ranks, ms, 0, 5.0, &r), EDGC_ERR_INVALID_ARG);
    assert_int_equal(edgc_rmax_from_profile(ranks, ms, 2, NAN, &r), EDGC_ERR_INVALID_ARG);
}

/* Budget rule over synthetic tables: compute 100 ms, dense sync 200 ms. */
static void test_rmax_budget(void** state)
{
    (void)state;
    const int ranks[] = {2, 4, 8, 16, 32};
    int r = -1, more = -1;
    /* best step 105, dense 300: 20 % of the saving back allows 144 ms, so T <= 44: rank 16 */
    const double rising[] = {5, 8, 14, 26, 50};
    assert_int_equal(edgc__rmax_budget(ranks, rising, 5, 200, 100, 0.2, 0.05, &r, &more), EDGC_OK);
    assert_int_equal(r, 16);
    assert_int_equal(more, 0);
    /* the partial table up to 16 is still inside: profiling goes on */
    assert_int_equal(edgc__rmax_budget(ranks, rising, 4, 200, 100, 0.2, 0.05, &r, &more), EDGC_OK);
    assert_int_equal(r, 16);
    assert_int_equal(more, 1);
    /* slack 0: only the fastest qualifies; slack 1: everything faster than dense */
    assert_int_equal(edgc__rmax_budget(ranks, rising, 5, 200, 100, 0.0, 0.05, &r, NULL), EDGC_OK);
    assert_int_equal(r, 2);
    assert_int_equal(edgc__rmax_budget(ranks, rising, 5, 200, 100, 1.0, 0.05, &r, NULL), EDGC_OK);
    assert_int_equal(r, 32);
    /* a flat curve (latency-bound link): every rank costs the same, the largest measured wins */
    const double flat[] = {10, 10, 10, 10, 10};
    assert_int_equal(edgc__rmax_budget(ranks, flat, 5, 200, 100, 0.2, 0.05, &r, &more), EDGC_OK);
    assert_int_equal(r, 32);
    assert_int_equal(more, 1);
    /* noise: a spike at rank 4 ends the table there, even though 8 is fast again */
    const double noisy[] = {5, 60, 9, 12, 15};
    assert_int_equal(edgc__rmax_budget(ranks, noisy, 5, 200, 100, 0.2, 0.05, &r, &more), EDGC_OK);
    assert_int_equal(r, 2);
    assert_int_equal(more, 0);
    /* shared memory: the best rank saves under 5 % of a dense step: stay dense */
    const double shm[] = {1.2, 1.5, 2, 3, 5};
    assert_int_equal(edgc__rmax_budget(ranks, shm, 5, 1.0, 100, 0.2, 0.05, &r, &more), EDGC_OK);
    assert_int_equal(r, 0);
    assert_int_equal(more, 0);
    /* ... but with no compute time known, the sync times alone decide */
    const double faster[] = {0.5, 0.6, 0.8, 1.5, 3};
    assert_int_equal(edgc__rmax_budget(ranks, faster, 5, 1.0, NAN, 0.2, 0.05, &r, NULL), EDGC_OK);
    assert_int_equal(r, 4); /* threshold 0.5 + 0.2 * 0.5 = 0.6: rank 4 is at it, and counts */
    assert_int_equal(edgc__rmax_budget(ranks, faster, 5, 1.0, 0.0, 0.6, 0.05, &r, NULL), EDGC_OK);
    assert_int_equal(r, 8);
    /* never past what was measured, and bad tables are refused */
    assert_int_equal(edgc__rmax_budget(ranks, rising, 1, 200, 100, 0.2, 0.05, &r, &more), EDGC_OK);
    assert_int_equal(r, 2);
    const int unsorted[] = {4, 2};
    assert_int_equal(edgc__rmax_budget(unsorted, rising, 2, 200, 100, 0.2, 0.05, &r, NULL),
                     EDGC_ERR_INVALID_ARG);
    const double nan_ms[] = {1, NAN};
    assert_int_equal(edgc__rmax_budget(ranks, nan_ms, 2, 200, 100, 0.2, 0.05, &r, NULL),
                     EDGC_ERR_INVALID_ARG);
    assert_int_equal(edgc__rmax_budget(ranks, rising, 0, 200, 100, 0.2, 0.05, &r, NULL),
                     EDGC_ERR_INVALID_ARG);
    assert_int_equal(edgc__rmax_budget(ranks, rising, 2, NAN, 100, 0.2, 0.05, &r, NULL),
                     EDGC_ERR_INVALID_ARG);
}

/* The link's dense cost from the largest timed ranks: rank r sends 1000 + 100r floats, dense
 * 10000. Ranks 2 and 4 fit in the link's burst (1 ms); from 8 on each 100 floats cost 3 ms, so
 * the dense step's bytes cost 98 + 58 * 3 = 272 ms after rank 32's 98 ms. */
static void test_link_dense_ms(void** state)
{
    (void)state;
    size_t by_rank[33] = {10000};
    for (int r = 1; r <= 32; r++)
        by_rank[r] = 1000 + 100 * (size_t)r;
    const edgc__payload pay = {by_rank, 32};
    const int ranks[] = {2, 4, 8, 16, 24, 32};
    const double linear[] = {1, 1, 26, 50, 74, 98};
    assert_float_equal(edgc__link_dense_ms(ranks, linear, 6, &pay), 272.0, 1e-9);
    /* with four ranks the burst's pairs are among the last three: the flat one counts as no
     * evidence, and the median is the steeper pair's (4, 8) estimate, high rather than low */
    assert_float_equal(edgc__link_dense_ms(ranks, linear, 4, &pay), 26 + 8200 * 25 / 400.0, 1e-9);
    /* a rank whose time fell says nothing about the rate: the median of the rest leans high */
    const double dip[] = {1, 1, 26, 50, 40, 98};
    assert_float_equal(edgc__link_dense_ms(ranks, dip, 6, &pay), 98 + 58 * 58 / 8.0, 1e-9);
    /* a flat (latency-bound) top of the table gives no rate at all */
    const double flat[] = {1, 1, 10, 10, 10, 10};
    assert_true(isinf(edgc__link_dense_ms(ranks, flat, 6, &pay)));
    /* too few ranks, a rank past the payload table, or no table: no estimate */
    assert_true(isinf(edgc__link_dense_ms(ranks, linear, 3, &pay)));
    const edgc__payload short_pay = {by_rank, 24};
    assert_true(isinf(edgc__link_dense_ms(ranks, linear, 6, &short_pay)));
    assert_true(isinf(edgc__link_dense_ms(ranks, linear, 6, NULL)));
}

static void test_error_target(void** state)
{
    (void)state;
    /* over budget: up; comfortably under: down; within the margin: hold */
    assert_int_equal(edgc__error_target(0.70, 0.60, 0.05, 8, B), 12);
    assert_int_equal(edgc__error_target(0.50, 0.60, 0.05, 8, B), 4);
    assert_int_equal(edgc__error_target(0.58, 0.60, 0.05, 8, B), 8);
    assert_int_equal(edgc__error_target(0.60, 0.60, 0.05, 8, B), 8);
    /* unknown error or budget: hold */
    assert_int_equal(edgc__error_target(NAN, 0.60, 0.05, 8, B), 8);
    assert_int_equal(edgc__error_target(0.5, NAN, 0.05, 8, B), 8);
    /* the smoothing then clamps to the bounds */
    assert_int_equal(edgc__smooth_rank(edgc__error_target(0.9, 0.5, 0.05, 16, B), 16, B), 16);
    assert_int_equal(edgc__smooth_rank(edgc__error_target(0.1, 0.5, 0.05, 4, B), 4, B), 4);
    /* the largest rank_step the config accepts saturates instead of overflowing */
    const edgc__bounds wide = {2, 16, INT_MAX};
    assert_int_equal(edgc__error_target(0.9, 0.5, 0.05, 8, wide), INT_MAX);
    assert_int_equal(edgc__smooth_rank(edgc__error_target(0.9, 0.5, 0.05, 8, wide), 8, wide), 16);
    assert_int_equal(edgc__smooth_rank(edgc__error_target(0.1, 0.5, 0.05, 8, wide), 8, wide), 2);
}

static void test_profile_time_and_wam_alignment(void** state)
{
    (void)state;
    const int ranks[] = {2, 4, 8, 16};
    const double ms[] = {10, 12, 16, 24};
    edgc_profile p = {ranks, ms, 4, 30.0};
    double t = 0;
    assert_int_equal(edgc_profile_time_at(&p, 8, &t), EDGC_OK);
    assert_true(t == 16.0);
    assert_int_equal(edgc_profile_time_at(&p, 12, &t), EDGC_OK);
    assert_true(t == 20.0);
    assert_int_equal(edgc_profile_time_at(&p, 32, &t), EDGC_OK);
    assert_true(t == 40.0); /* extrapolated */
    assert_int_equal(edgc_profile_time_at(&p, 1, &t), EDGC_OK);
    assert_true(t == 9.0);
    edgc_profile one = {ranks + 2, ms + 2, 1, 30.0}; /* one timed rank: its time everywhere */
    assert_int_equal(edgc_profile_time_at(&one, 2, &t), EDGC_OK);
    assert_true(t == 16.0);
    assert_int_equal(edgc_profile_time_at(&one, 64, &t), EDGC_OK);
    assert_true(t == 16.0);

    /* stage 0 runs rank 8: T0 = 16 ms. Stage p gets T0 + p * t_mb. */
    int r = -1;
    assert_int_equal(edgc_wam_stage_rank(&p, 16.0, 1, 2.0, 32, &r), EDGC_OK);
    assert_int_equal(r, 12); /* budget 18 -> r* = 10 -> 4 (floor(10 / 4) + 1) */
    assert_int_equal(edgc_wam_stage_rank(&p, 16.0, 2, 2.0, 32, &r), EDGC_OK);
    assert_int_equal(r, 16); /* budget 20 -> r* = 12 -> 16 */
    assert_int_equal(edgc_wam_stage_rank(&p, 16.0, 3, 2.0, 12, &r), EDGC_OK);
    assert_int_equal(r, 0); /* 16 > r_max: not compressed */
    assert_int_equal(edgc_wam_stage_rank(&p, 16.0, 3, 5.0, 64, &r), EDGC_OK);
    assert_int_equal(r, 0); /* budget 31 > T_base 30: not compressed */
    /* later stages never get a smaller rank than earlier ones */
    int prev = 0;
    for (int stage = 1; stage <= 6; stage++) {
        assert_int_equal(edgc_wam_stage_rank(&p, 12.0, stage, 1.5, 64, &r), EDGC_OK);
        if (r == 0) break;
        assert_true(r >= prev && r % 4 == 0);
        prev = r;
    }
    assert_int_equal(edgc_wam_stage_rank(&p, 16.0, 0, 2.0, 32, &r), EDGC_ERR_INVALID_ARG);
    assert_int_equal(edgc_wam_stage_rank(&p, 16.0, 1, -1.0, 32, &r), EDGC_ERR_INVALID_ARG);
    assert_int_equal(edgc_wam_stage_rank(NULL, 16.0, 1, 1.0, 32, &r), EDGC_ERR_INVALID_ARG);
    edgc_profile bad = {ranks, ms, 0, 30.0};
    assert_int_equal(edgc_profile_time_at(&bad, 4, &t), EDGC_ERR_INVALID_ARG);
}

static void test_decay_target(void** state)
{
    (void)state;
    /* r_max when compression begins (and before), r_min at total_steps and after, linear between */
    assert_int_equal(edgc__decay_target(20, 20, 220, B), 16);
    assert_int_equal(edgc__decay_target(5, 20, 220, B), 16);
    assert_int_equal(edgc__decay_target(120, 20, 220, B), 10);
    assert_int_equal(edgc__decay_target(70, 20, 220, B), 13);
    assert_int_equal(edgc__decay_target(220, 20, 220, B), 4);
    assert_int_equal(edgc__decay_target(1000, 20, 220, B), 4);
    /* compression that begins at (or past) the end: nothing left to decay over */
    assert_int_equal(edgc__decay_target(220, 220, 220, B), 16);
    assert_int_equal(edgc__decay_target(300, 400, 220, B), 16);
    for (uint64_t t = 20; t < 220; t++)
        assert_true(edgc__decay_target(t + 1, 20, 220, B) <= edgc__decay_target(t, 20, 220, B));
    const edgc__bounds one = {3, 3, 4};
    assert_int_equal(edgc__decay_target(100, 20, 220, one), 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_trend_needs_two_windows),
        cmocka_unit_test(test_trend_maps_change_linearly_and_clamps),
        cmocka_unit_test(test_trend_flat_reference_no_division_by_zero),
        cmocka_unit_test(test_smooth_even_step_and_bounds),
        cmocka_unit_test(test_rmax_from_profile),
        cmocka_unit_test(test_rmax_budget),
        cmocka_unit_test(test_link_dense_ms),
        cmocka_unit_test(test_error_target),
        cmocka_unit_test(test_decay_target),
        cmocka_unit_test(test_profile_time_and_wam_alignment),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
