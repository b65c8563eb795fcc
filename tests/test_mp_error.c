/* test_mp_error.c - the CQM's Marchenko-Pastur error curve g(r; m, n) (docs/ALGORITHM.md §6.3). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>

#include "edgc_internal.h"
#include "testutil.h"

static void check_curve(size_t m, size_t n)
{
    size_t cap = m < n ? m : n;
    double* g = malloc((cap + 1) * sizeof *g);
    assert_int_equal(edgc__mp_error_curve(m, n, g), EDGC_OK);
    assert_true(g[0] == 1.0);
    assert_true(g[cap] == 0.0);
    for (size_t r = 1; r <= cap; r++)
        if (!(g[r] < g[r - 1]))
            fail_msg("%zux%zu: g(%zu) = %g >= g(%zu) = %g", m, n, r, g[r], r - 1, g[r - 1]);
    /* Low rank keeps little of a random matrix's energy (docs/ALGORITHM.md §6.3): g(1) is near 1. */
    if (cap >= 64) assert_true(g[1] > 0.9);
    free(g);
}

static void test_monotone_with_endpoints(void** state)
{
    (void)state;
    check_curve(2, 2);
    check_curve(64, 64);
    check_curve(768, 768);
    check_curve(768, 3072);
    check_curve(3072, 768); /* transposed shape: same curve */
    check_curve(5, 200);
}

static void test_transpose_invariant(void** state)
{
    (void)state;
    double a[65], b[65];
    assert_int_equal(edgc__mp_error_curve(64, 256, a), EDGC_OK);
    assert_int_equal(edgc__mp_error_curve(256, 64, b), EDGC_OK);
    assert_memory_equal(a, b, sizeof a);
}

/* Square case: singular values s = sqrt(lambda) follow the quarter-circle law on [0, 2],
 * lambda has the density sqrt(4 - x) / (2 pi sqrt(x)) on [0, 4] with mean 1 and E[lambda^2] = 2.
 * The energy outside the top half of the spectrum, g(m/2)^2, is the integral of x f(x) over the
 * lower half of the probability mass; a direct midpoint sum is the independent oracle. */
static void test_square_matches_quarter_circle(void** state)
{
    (void)state;
    enum { M = 2000 };
    double* g = malloc((M + 1) * sizeof *g);
    assert_int_equal(edgc__mp_error_curve(M, M, g), EDGC_OK);
    /* median of the law by bisection on the CDF, integrated with lambda = x^2 substitution */
    const int K = 200000;
    double* cdf = malloc((K + 1) * sizeof *cdf);
    double* mom = malloc((K + 1) * sizeof *mom);
    cdf[0] = mom[0] = 0;
    for (int i = 0; i < K; i++) { /* s in [0, 2]: density of s is sqrt(4 - s^2) / pi */
        double s = (i + 0.5) * 2.0 / K, ds = 2.0 / K, f = sqrt(4 - s * s) / M_PI;
        cdf[i + 1] = cdf[i] + f * ds;
        mom[i + 1] = mom[i] + s * s * f * ds;
    }
    int med = 0;
    while (cdf[med] < 0.5)
        med++;
    double want = sqrt(mom[med] / mom[K]); /* energy below the median, relative */
    if (fabs(g[M / 2] - want) > 2e-3)
        fail_msg("g(m/2) = %.5f, quarter circle %.5f", g[M / 2], want);
    free(cdf);
    free(mom);
    free(g);
}

static void test_stage_curve_weights_by_size(void** state)
{
    (void)state;
    const edgc_tensor t[] = {{0, 8, 8}, {64, 32, 64}, {64 + 2048, 10, 1}};
    edgc_layout l = {t, 3, 64 + 2048 + 10};
    edgc__plan_layout pl;
    assert_int_equal(edgc__layout_split(&l, &pl), EDGC_OK);
    double* stage = NULL;
    assert_int_equal(edgc__mp_stage_curve(&pl, &stage), EDGC_OK);
    double a[9], b[33];
    edgc__mp_error_curve(8, 8, a);
    edgc__mp_error_curve(32, 64, b);
    for (int r = 0; r <= 32; r++) {
        double want = (64.0 * a[r < 8 ? r : 8] + 2048.0 * b[r]) / (64.0 + 2048.0);
        assert_true(fabs(stage[r] - want) < 1e-12);
    }
    assert_true(stage[32] == 0.0);
    free(stage);
    edgc__layout_release(&pl);
}

static void test_inverse(void** state)
{
    (void)state;
    const double g[] = {1.0, 0.9, 0.7, 0.4, 0.2, 0.0};
    assert_int_equal(edgc__mp_inverse(g, 1, 5, 0.75), 2); /* smallest r with g <= y */
    assert_int_equal(edgc__mp_inverse(g, 1, 5, 0.7), 2);
    assert_int_equal(edgc__mp_inverse(g, 1, 5, 2.0), 1);  /* y above g(r_min): r_min */
    assert_int_equal(edgc__mp_inverse(g, 2, 4, -1.0), 4); /* nothing qualifies: r_max */
    assert_int_equal(edgc__mp_inverse(g, 1, 5, 0.0), 5);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_monotone_with_endpoints),
        cmocka_unit_test(test_transpose_invariant),
        cmocka_unit_test(test_square_matches_quarter_circle),
        cmocka_unit_test(test_stage_curve_weights_by_size),
        cmocka_unit_test(test_inverse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
