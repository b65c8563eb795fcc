/* test_layout.c - a layout must tile the buffer: overruns, overlaps and gaps are rejected. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "edgc_internal.h"

static edgc_status check(const edgc_tensor* t, size_t n, size_t total, char* why, size_t len)
{
    edgc_config c = edgc_config_default();
    c.total_steps = 10;
    edgc_layout l = {t, n, total};
    return edgc_config_check(&c, &l, why, len);
}

#define EXPECT_LAYOUT_ERROR(total, words, ...)                                                     \
    do {                                                                                           \
        const edgc_tensor t[] = {__VA_ARGS__};                                                     \
        char why[256] = "";                                                                        \
        assert_int_equal(check(t, sizeof t / sizeof t[0], total, why, sizeof why),                 \
                         EDGC_ERR_LAYOUT);                                                         \
        if (strstr(why, words) == NULL) fail_msg("message '%s' lacks '%s'", why, words);           \
    } while (0)

static void test_rejects(void** state)
{
    (void)state;
    EXPECT_LAYOUT_ERROR(10, "overruns", {0, 4, 3}); /* 12 elements in 10 */
    EXPECT_LAYOUT_ERROR(20, "overlaps", {0, 4, 3}, {10, 10, 1});
    EXPECT_LAYOUT_ERROR(20, "no tensor", {0, 4, 3}, {14, 6, 1}); /* [12, 14) uncovered */
    EXPECT_LAYOUT_ERROR(20, "no tensor", {0, 4, 3});             /* tail uncovered */
    EXPECT_LAYOUT_ERROR(12, "both sizes", {0, 0, 3}, {0, 4, 3});
    EXPECT_LAYOUT_ERROR(12, "overruns", {SIZE_MAX - 2, 4, 3}); /* offset + size wraps */
    EXPECT_LAYOUT_ERROR(12, "overruns", {0, SIZE_MAX / 2, 3}); /* rows * cols wraps */
}

static void test_empty_and_null(void** state)
{
    (void)state;
    char why[128];
    assert_int_equal(check(NULL, 0, 10, why, sizeof why), EDGC_ERR_LAYOUT);
    assert_int_equal(check(NULL, 2, 10, why, sizeof why), EDGC_ERR_INVALID_ARG);
}

static void test_split_matrices_and_merged_dense(void** state)
{
    (void)state;
    /* out of offset order on purpose: vector, matrix, vector, row vector, matrix */
    const edgc_tensor t[] = {{12, 3, 1}, {0, 4, 3}, {15, 2, 1}, {17, 1, 5}, {22, 2, 6}};
    edgc_layout l = {t, 5, 34};
    edgc__plan_layout pl;
    assert_int_equal(edgc__layout_split(&l, &pl), EDGC_OK);
    assert_int_equal(pl.n_mats, 2);
    assert_int_equal(pl.mats[0].offset, 0); /* caller's order among matrices */
    assert_int_equal(pl.mats[0].cap, 3);
    assert_int_equal(pl.mats[1].offset, 22);
    assert_int_equal(pl.mats[1].cap, 2);
    assert_int_equal(pl.rank_cap, 3);
    assert_int_equal(pl.n_dense, 1); /* [12, 22) merged into one span */
    assert_int_equal(pl.dense[0].offset, 12);
    assert_int_equal(pl.dense[0].count, 10);
    assert_int_equal(pl.dense_total, 10);
    edgc__layout_release(&pl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rejects),
        cmocka_unit_test(test_empty_and_null),
        cmocka_unit_test(test_split_matrices_and_merged_dense),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
