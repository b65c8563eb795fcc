/* test_config.c - defaults are the documented constants; the window derived from the run length;
 * every bad field is rejected by name. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <math.h>
#include <cmocka.h>

#include "edgc.h"

static const edgc_tensor k_tensors[] = {{0, 4, 3}, {12, 5, 1}};
static const edgc_layout k_layout = {k_tensors, 2, 17};

static edgc_config valid(void)
{
    edgc_config c = edgc_config_default();
    c.total_steps = 100;
    return c;
}

static void test_defaults_are_documented(void** state)
{
    (void)state;
    edgc_config c = edgc_config_default();
    assert_int_equal(c.mode, EDGC_MODE_EDGC);
    assert_true(c.alpha == 0.1 && c.beta == 0.25 && c.warmup_fraction == 0.2);
    assert_int_equal(c.window, 0); /* derived from total_steps */
    assert_int_equal(c.bins, 1000);
    assert_int_equal(c.rank_step, 4);
    assert_int_equal(c.seed, 714);
    assert_int_equal(c.rule, EDGC_RULE_DECAY);
    assert_int_equal(c.rmax_rule, EDGC_RMAX_BUDGET);
    assert_int_equal(c.warmup_sync, EDGC_WARMUP_RMAX);
    assert_int_equal(c.wam_rule, EDGC_WAM_CAP);
    assert_true(c.rmax_slack == 0.25 && c.min_saving == 0.05 && c.reprofile_factor == 2.0);
    assert_int_equal(c.r_max, 0); /* profiled */
    assert_int_equal(c.profile_start, 1);
    assert_int_equal(c.profile_base_steps, 4);
    assert_int_equal(c.profile_reps, 4);
    assert_int_equal(c.threads, 0); /* the CPUs this process may use */
    assert_true(c.orth_eps == 1e-5f);
    c.total_steps = 100;
    char why[128];
    assert_int_equal(edgc_config_check(&c, &k_layout, why, sizeof why), EDGC_OK);
}

/* The window scales with the run: a twentieth of it, in whole entropy strides, between two strides
 * and the authors' 1000; an explicit window is kept. */
static void test_window_derived_from_run_length(void** state)
{
    (void)state;
    edgc_config c = edgc_config_default();
    const struct {
        uint64_t steps;
        int window;
    } want[] = {{600, 30},   {300, 20},     {100, 20},      {1, 20},
                {2000, 100}, {20000, 1000}, {230000, 1000}, {12345, 610}};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        c.total_steps = want[i].steps;
        assert_int_equal(edgc_config_window(&c), want[i].window);
    }
    c.alpha = 0.5; /* stride 2 */
    c.total_steps = 610;
    assert_int_equal(edgc_config_window(&c), 30);
    c.window = 7;
    assert_int_equal(edgc_config_window(&c), 7);
    assert_int_equal(edgc_config_window(NULL), 0);
}

/* Applies `edit` to a valid config and expects EDGC_ERR_CONFIG with `field` in the message. */
#define EXPECT_REJECTED(edit, field)                                                               \
    do {                                                                                           \
        edgc_config c = valid();                                                                   \
        edit;                                                                                      \
        char why[256] = "";                                                                        \
        assert_int_equal(edgc_config_check(&c, NULL, why, sizeof why), EDGC_ERR_CONFIG);           \
        if (strstr(why, field) == NULL) fail_msg("message '%s' does not name '%s'", why, field);   \
    } while (0)

static void test_bad_fields_are_named(void** state)
{
    (void)state;
    EXPECT_REJECTED(c.beta = 0.0, "beta");
    EXPECT_REJECTED(c.beta = 1.5, "beta");
    EXPECT_REJECTED(c.beta = NAN, "beta");
    EXPECT_REJECTED(c.alpha = 0.0, "alpha");
    EXPECT_REJECTED(c.alpha = 2.0, "alpha");
    /* 1 / alpha past any integer (saturated, not overflowed): no window holds a sample */
    EXPECT_REJECTED(c.alpha = 1e-300, "window");
    EXPECT_REJECTED(c.bins = 1, "bins");
    EXPECT_REJECTED(c.rank = 0, "rank");
    EXPECT_REJECTED(c.window = 1, "window");
    EXPECT_REJECTED(c.window = -5, "window");
    EXPECT_REJECTED(c.rule = (edgc_rank_rule)7, "rule");
    EXPECT_REJECTED(c.rmax_rule = (edgc_rmax_rule)2, "rmax_rule");
    EXPECT_REJECTED(c.rmax_slack = 1.5, "rmax_slack");
    EXPECT_REJECTED(c.rmax_slack = NAN, "rmax_slack");
    EXPECT_REJECTED(c.min_saving = 1.0, "min_saving");
    EXPECT_REJECTED(c.warmup_sync = (edgc_warmup_sync)3, "warmup_sync");
    EXPECT_REJECTED(c.wam_rule = (edgc_wam_rule)2, "wam_rule");
    EXPECT_REJECTED(c.error_margin = -0.1, "error_margin");
    EXPECT_REJECTED(c.reprofile_factor = 1.0, "reprofile_factor");
    EXPECT_REJECTED(c.reprofile_factor = INFINITY, "reprofile_factor");
    EXPECT_REJECTED((c.window = 5, c.alpha = 0.1), "window"); /* no sample fits a window */
    EXPECT_REJECTED((c.r_max = 4, c.r_min = 8), "r_min");
    EXPECT_REJECTED(c.r_max = -1, "r_max");
    EXPECT_REJECTED(c.r_min = -2, "r_min");
    EXPECT_REJECTED(c.rank_step = 0, "rank_step");
    EXPECT_REJECTED(c.warmup_fraction = 1.0, "warmup_fraction");
    EXPECT_REJECTED(c.warmup_fraction = -0.1, "warmup_fraction");
    EXPECT_REJECTED(c.total_steps = 0, "total_steps");
    EXPECT_REJECTED(c.profile_reps = 1, "profile_reps");
    EXPECT_REJECTED(c.profile_base_steps = 0, "profile_base_steps");
    EXPECT_REJECTED(c.profile_reps = 18, "profile_reps"); /* samples kept: 16 */
    EXPECT_REJECTED(c.threads = -1, "threads");
    EXPECT_REJECTED(c.threads = 1025, "threads");
    EXPECT_REJECTED(c.profile_start = -1, "profile_start");
    EXPECT_REJECTED(c.orth_eps = -1.0f, "orth_eps");
    EXPECT_REJECTED(c.error_feedback = 2, "error_feedback");
    EXPECT_REJECTED(c.orthonormalize_q = 7, "orthonormalize_q");
    EXPECT_REJECTED(c.scale_aware_entropy = 3, "scale_aware_entropy");
    EXPECT_REJECTED(c.mode = (edgc_mode)9, "mode");
    EXPECT_REJECTED(c.rule = (edgc_rank_rule)9, "rule");
}

static void test_total_steps_only_needed_for_edgc(void** state)
{
    (void)state;
    edgc_config c = edgc_config_default();
    c.mode = EDGC_MODE_POWERSGD;
    assert_int_equal(edgc_config_check(&c, NULL, NULL, 0), EDGC_OK);
}

static void test_null_config(void** state)
{
    (void)state;
    char why[64];
    assert_int_equal(edgc_config_check(NULL, NULL, why, sizeof why), EDGC_ERR_INVALID_ARG);
    assert_non_null(strstr(why, "NULL"));
}

static void test_tiny_message_buffer_is_terminated(void** state)
{
    (void)state;
    edgc_config c = valid();
    c.beta = 3.0;
    char why[5] = {'x', 'x', 'x', 'x', 'x'};
    assert_int_equal(edgc_config_check(&c, NULL, why, sizeof why), EDGC_ERR_CONFIG);
    assert_int_equal(why[4], '\0');
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_are_documented),
        cmocka_unit_test(test_window_derived_from_run_length),
        cmocka_unit_test(test_bad_fields_are_named),
        cmocka_unit_test(test_total_steps_only_needed_for_edgc),
        cmocka_unit_test(test_null_config),
        cmocka_unit_test(test_tiny_message_buffer_is_terminated),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
