/* test_linalg.c - Gram-Schmidt: orthonormal output for independent, dependent and zero rows. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>

#include "edgc_internal.h"
#include "testutil.h"

static double worst_gram(const float* a, size_t k, size_t len)
{
    double worst = 0.0;
    for (size_t i = 0; i < k; i++)
        for (size_t j = 0; j < k; j++) {
            double d = 0.0;
            for (size_t t = 0; t < len; t++)
                d += (double)a[i * len + t] * a[j * len + t];
            worst = fmax(worst, fabs(d - (i == j)));
        }
    return worst;
}

static void test_independent_rows(void** state)
{
    (void)state;
    float a[8 * 50];
    test_rng r = {1};
    test_gaussian(&r, a, 8 * 50, 3.0);
    float first[50];
    memcpy(first, a, sizeof first);
    edgc__orthonormalize_rows(a, 8, 50, 1e-5f);
    assert_true(worst_gram(a, 8, 50) < 1e-6);
    double n = 0; /* the first row keeps its direction */
    for (int t = 0; t < 50; t++)
        n += (double)first[t] * first[t];
    for (int t = 0; t < 50; t++)
        assert_true(fabs(a[t] - first[t] / sqrt(n)) < 1e-6);
}

static void test_dependent_and_zero_rows_replaced(void** state)
{
    (void)state;
    enum { K = 12, LEN = 30 };
    float a[K * LEN];
    test_rng r = {2};
    test_gaussian(&r, a, 3 * LEN, 1.0);
    for (int i = 3; i < K; i++) /* rows 3.. are combinations of rows 0..2, or zero */
        for (int t = 0; t < LEN; t++)
            a[i * LEN + t] =
                i % 4 == 0 ? 0.0f : 0.5f * a[t] - (float)i * a[LEN + t] + a[2 * LEN + t];
    float span[3 * LEN];
    memcpy(span, a, sizeof span);
    edgc__orthonormalize_rows(a, K, LEN, 1e-5f);
    assert_true(worst_gram(a, K, LEN) < 1e-5);
    /* the first three rows still span the original three */
    for (int i = 0; i < 3; i++) {
        float v[LEN];
        memcpy(v, span + i * LEN, sizeof v);
        for (int j = 0; j < 3; j++) {
            double c = 0;
            for (int t = 0; t < LEN; t++)
                c += (double)a[j * LEN + t] * v[t];
            for (int t = 0; t < LEN; t++)
                v[t] -= (float)c * a[j * LEN + t];
        }
        double rest = 0;
        for (int t = 0; t < LEN; t++)
            rest += (double)v[t] * v[t];
        assert_true(sqrt(rest) < 1e-5);
    }
}

static void test_all_zero_tiny_scale_and_full(void** state)
{
    (void)state;
    float z[5 * 9] = {0};
    edgc__orthonormalize_rows(z, 5, 9, 0.0f); /* even with eps = 0: no NaN, orthonormal */
    assert_true(worst_gram(z, 5, 9) < 1e-6);
    float t[6 * 6];
    test_rng r = {3};
    test_gaussian(&r, t, 36, 1e-20); /* tiny but independent: scale must not matter */
    edgc__orthonormalize_rows(t, 6, 6, 1e-5f);
    assert_true(worst_gram(t, 6, 6) < 1e-5);
}

/* A dependent row is replaced by a coordinate direction; when the first one tried lies in the
 * span of the earlier rows (here row 0 is that very direction), the next one is taken. */
static void test_replacement_skips_a_direction_already_taken(void** state)
{
    (void)state;
    enum { K = 3, LEN = 4 };
    float a[K * LEN] = {0};
    a[(size_t)(7919 % LEN)] = 2.0f; /* row 0 along the first direction row 1 would try */
    edgc__orthonormalize_rows(a, K, LEN, 1e-5f);
    assert_true(worst_gram(a, K, LEN) < 1e-6);
    assert_true(a[7919 % LEN] == 1.0f); /* row 0 normalised in place */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_independent_rows),
        cmocka_unit_test(test_dependent_and_zero_rows_replaced),
        cmocka_unit_test(test_all_zero_tiny_scale_and_full),
        cmocka_unit_test(test_replacement_skips_a_direction_already_taken),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
