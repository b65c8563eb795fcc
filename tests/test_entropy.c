/* test_entropy.c - GDS: the histogram entropy estimator and iteration sampling (docs/ALGORITHM.md §2). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>

#include "edgc_internal.h"
#include "testutil.h"

static edgc_gds* make(double beta, int bins)
{
    edgc_gds* g = NULL;
    assert_int_equal(edgc_gds_create(beta, bins, &g), EDGC_OK);
    return g;
}

static void test_constant_is_zero(void** state)
{
    (void)state;
    edgc_gds* g = make(1.0, 1000);
    float x[500];
    for (int i = 0; i < 500; i++)
        x[i] = 0.75f;
    edgc_entropy e;
    assert_int_equal(edgc_gds_entropy(g, x, 500, &e), EDGC_OK);
    assert_true(e.h == 0.0);
    assert_true(isinf(e.h_scaled) && e.h_scaled < 0); /* a point mass */
    assert_int_equal(e.count, 500);
    edgc_gds_free(g);
}

static void test_even_ramp_is_ln_bins(void** state)
{
    (void)state;
    edgc_gds* g = make(1.0, 1000);
    for (size_t k = 1; k <= 8; k++) {
        size_t n = 1000 * k;
        float* x = malloc(n * sizeof *x);
        for (size_t i = 0; i < n; i++)
            x[i] = (float)i - 3000.0f; /* exact in float */
        edgc_entropy e;
        assert_int_equal(edgc_gds_entropy(g, x, n, &e), EDGC_OK);
        if (fabs(e.h - log(1000.0)) > 1e-9) fail_msg("k=%zu: H = %.12f, want ln 1000", k, e.h);
        free(x);
    }
    edgc_gds_free(g);
}

static void test_scale(void** state)
{
    (void)state;
    edgc_gds* g = make(1.0, 100);
    test_rng r = {1};
    enum { N = 20000 };
    float* x = malloc(N * sizeof *x);
    float* y = malloc(N * sizeof *y);
    test_gaussian(&r, x, N, 1.0);
    const float scales[] = {8.0f, 0.125f, 1024.0f}; /* powers of two scale exactly */
    edgc_entropy ex, ey;
    assert_int_equal(edgc_gds_entropy(g, x, N, &ex), EDGC_OK);
    assert_true(ex.h > 1.0 && ex.h < log(100.0));
    for (int s = 0; s < 3; s++) {
        for (int i = 0; i < N; i++)
            y[i] = x[i] * scales[s];
        assert_int_equal(edgc_gds_entropy(g, y, N, &ey), EDGC_OK);
        assert_true(ey.h == ex.h); /* plain entropy ignores scale */
        assert_true(fabs(ey.h_scaled - (ex.h_scaled + log(scales[s]))) < 1e-9);
    }
    /* The scale-aware value approximates the differential entropy of N(0,1), 1.4189 nats. */
    assert_true(fabs(ex.h_scaled - 0.5 * log(2 * M_PI * M_E)) < 0.05);
    free(x);
    free(y);
    edgc_gds_free(g);
}

static void test_stride_honours_beta(void** state)
{
    (void)state;
    enum { N = 4003 };
    float x[N];
    test_rng r = {7};
    test_gaussian(&r, x, N, 1.0);
    for (int i = 0; i < N; i += 4)
        x[i] = 2.0f; /* what beta = 0.25 sees: a constant */
    edgc_gds* g4 = make(0.25, 1000);
    edgc_gds* g1 = make(1.0, 1000);
    edgc_gds* g3 = make(0.3, 1000); /* floor(1/0.3) = 3 */
    edgc_entropy e;
    assert_int_equal(edgc_gds_entropy(g4, x, N, &e), EDGC_OK);
    assert_int_equal(e.count, (N + 3) / 4);
    assert_true(e.h == 0.0);
    assert_true(e.min == 2.0f && e.max == 2.0f);
    assert_int_equal(edgc_gds_entropy(g1, x, N, &e), EDGC_OK);
    assert_int_equal(e.count, N);
    assert_true(e.h > 1.0);
    assert_int_equal(edgc_gds_entropy(g3, x, N, &e), EDGC_OK);
    assert_int_equal(e.count, (N + 2) / 3);
    edgc_gds_free(g4);
    edgc_gds_free(g1);
    edgc_gds_free(g3);
}

static void test_nonfinite_skipped(void** state)
{
    (void)state;
    enum { N = 1000 };
    float clean[N], dirty[2 * N + 3];
    size_t j = 0;
    for (int i = 0; i < N; i++) {
        clean[i] = 0.5f * (float)i;
        dirty[j++] = clean[i];
        if (i % 2 == 0) dirty[j++] = (i % 4 == 0) ? NAN : INFINITY;
    }
    dirty[j++] = -INFINITY;
    edgc_gds* g = make(1.0, 1000);
    edgc_entropy ec, ed;
    assert_int_equal(edgc_gds_entropy(g, clean, N, &ec), EDGC_OK);
    assert_int_equal(edgc_gds_entropy(g, dirty, j, &ed), EDGC_OK);
    assert_int_equal(ed.count, N);
    assert_true(ed.h == ec.h && ed.min == ec.min && ed.max == ec.max);
    assert_true(fabs(ec.h - log(1000.0)) < 1e-9);
    /* nothing finite at all: a defined zero, never NaN */
    float bad[3] = {NAN, INFINITY, -INFINITY};
    assert_int_equal(edgc_gds_entropy(g, bad, 3, &ed), EDGC_OK);
    assert_int_equal(ed.count, 0);
    assert_true(ed.h == 0.0);
    assert_int_equal(edgc_gds_entropy(g, NULL, 0, &ed), EDGC_OK);
    assert_int_equal(ed.count, 0);
    edgc_gds_free(g);
}

static void test_peaked_lower_than_uniform(void** state)
{
    (void)state;
    /* Gradients concentrate around zero as training goes on: a bulk near zero with rare outliers
     * must read as lower entropy than a uniform spread (docs/ALGORITHM.md §2). */
    enum { N = 50000 };
    float* u = malloc(N * sizeof *u);
    float* p = malloc(N * sizeof *p);
    test_rng r = {3};
    for (int i = 0; i < N; i++)
        u[i] = (float)(2.0 * test_uniform(&r) - 1.0);
    test_gaussian(&r, p, N, 0.01);
    p[0] = 1.0f;
    p[1] = -1.0f;
    edgc_gds* g = make(0.25, 1000);
    edgc_entropy eu, ep;
    assert_int_equal(edgc_gds_entropy(g, u, N, &eu), EDGC_OK);
    assert_int_equal(edgc_gds_entropy(g, p, N, &ep), EDGC_OK);
    assert_true(ep.h < eu.h - 1.0);
    free(u);
    free(p);
    edgc_gds_free(g);
}

static void test_sample_step(void** state)
{
    (void)state;
    int yes = -1;
    for (uint64_t t = 0; t < 40; t++) {
        assert_int_equal(edgc_gds_sample_step(0.1, t, &yes), EDGC_OK);
        assert_int_equal(yes, t % 10 == 0);
        assert_int_equal(edgc_gds_sample_step(1.0, t, &yes), EDGC_OK);
        assert_int_equal(yes, 1);
        assert_int_equal(edgc_gds_sample_step(0.25, t, &yes), EDGC_OK);
        assert_int_equal(yes, t % 4 == 0);
    }
    /* a fraction so small that 1 / alpha overflows any integer: step 0, then no step for ages */
    assert_int_equal(edgc_gds_sample_step(4.9e-324, 0, &yes), EDGC_OK);
    assert_int_equal(yes, 1);
    assert_int_equal(edgc_gds_sample_step(4.9e-324, UINT64_MAX / 2, &yes), EDGC_OK);
    assert_int_equal(yes, 0);
    assert_int_equal(edgc_gds_sample_step(0.0, 1, &yes), EDGC_ERR_INVALID_ARG);
    assert_int_equal(edgc_gds_sample_step(1.5, 1, &yes), EDGC_ERR_INVALID_ARG);
    assert_int_equal(edgc_gds_sample_step(0.5, 1, NULL), EDGC_ERR_INVALID_ARG);
}

/* The histogram written out plainly, for the oracle below: the estimator's own edge rule. */
static double oracle_entropy(const float* x, size_t n, size_t k, int bins)
{
    float lo = INFINITY, hi = -INFINITY;
    size_t count = 0;
    for (size_t i = 0; i < n; i += k)
        if (isfinite(x[i])) {
            lo = fminf(lo, x[i]);
            hi = fmaxf(hi, x[i]);
            count++;
        }
    if (!(hi > lo)) return 0.0; /* one value (or none): one bin */
    uint64_t* hist = calloc((size_t)bins, sizeof *hist);
    const double scale = (double)bins / ((double)hi - (double)lo);
    for (size_t i = 0; i < n; i += k)
        if (isfinite(x[i])) {
            int b = (int)(((double)x[i] - (double)lo) * scale);
            hist[b < bins ? b : bins - 1]++;
        }
    double h = 0.0;
    for (int b = 0; b < bins; b++)
        if (hist[b] > 0) {
            double p = (double)hist[b] / (double)count;
            h -= p * log(p);
        }
    free(hist);
    return h;
}

/* Both passes split over threads: 1, 2, 3 and 0 (the CPUs) give the same count, range and
 * entropy as a plain single loop, bit for bit, on a sample large enough to be split, with
 * non-finite values and the maximum repeated (it goes to the last bin). */
static void test_threads_change_no_bin(void** state)
{
    (void)state;
    const size_t n = 1u << 20;
    float* x = malloc(n * sizeof *x);
    test_rng r = {13};
    test_gaussian(&r, x, n, 1.0);
    for (size_t i = 0; i < n; i += 4099)
        x[i] = i % 3 ? NAN : INFINITY;
    x[12] = x[4000] = x[n - 4] = 9.5f; /* the maximum, three times, on sampled positions */
    const double want = oracle_entropy(x, n, 4, 1000);
    const int threads[] = {1, 2, 3, 0};
    edgc_entropy first = {0};
    for (int t = 0; t < 4; t++) {
        edgc_gds* g = make(0.25, 1000);
        assert_int_equal(edgc_gds_set_threads(g, threads[t]), EDGC_OK);
        edgc_entropy e;
        assert_int_equal(edgc_gds_entropy(g, x, n, &e), EDGC_OK);
        assert_int_equal(edgc_gds_entropy(g, x, n, &e), EDGC_OK); /* histograms reused */
        if (e.h != want) fail_msg("threads %d: H = %.17g, want %.17g", threads[t], e.h, want);
        assert_true(e.max == 9.5f);
        if (t == 0) first = e;
        assert_int_equal(e.count, first.count);
        assert_true(e.min == first.min && e.h_scaled == first.h_scaled);
        edgc_gds_free(g);
    }
    /* one sampler whose thread count goes up and down (its buffers only grow) */
    edgc_gds* g = make(0.25, 1000);
    const int turns[] = {3, 1, 2, 3, 1};
    for (int t = 0; t < 5; t++) {
        assert_int_equal(edgc_gds_set_threads(g, turns[t]), EDGC_OK);
        edgc_entropy e;
        assert_int_equal(edgc_gds_entropy(g, x, n, &e), EDGC_OK);
        if (e.h != want) fail_msg("threads %d (turn %d): H = %.17g", turns[t], t, e.h);
    }
    assert_int_equal(edgc_gds_set_threads(NULL, 2), EDGC_ERR_INVALID_ARG);
    assert_int_equal(edgc_gds_set_threads(g, -1), EDGC_ERR_INVALID_ARG);
    assert_int_equal(edgc_gds_set_threads(g, 1025), EDGC_ERR_INVALID_ARG);
    edgc_gds_free(g);
    free(x);
}

/* The same floats cut into pieces anywhere (a piece shorter than the stride, an empty one, a cut
 * on and off the sampled positions) give the same sample, bins and entropy as one buffer, at
 * strides 1 and 4 and on 1 and 2 threads (the sample is long enough to be shared out). */
static void test_pieces_give_the_same_entropy(void** state)
{
    (void)state;
    const size_t n = 600001;
    float* x = malloc(n * sizeof *x);
    assert_non_null(x);
    test_rng r = {17};
    test_gaussian(&r, x, n, 2.0);
    x[5] = NAN;
    x[n - 1] = 11.0f; /* the maximum, on the last float (sampled at stride 1 and 4) */
    enum { CUTS = 9 };
    const size_t cut[CUTS] = {0, 1, 3, 3, 4, 262145, 262147, 400000, n}; /* piece i: [cut i, i+1) */
    float* piece[CUTS - 1];
    size_t len[CUTS - 1];
    for (int i = 0; i + 1 < CUTS; i++) { /* each piece its own allocation */
        len[i] = cut[i + 1] - cut[i];
        piece[i] = len[i] ? malloc(len[i] * sizeof(float)) : NULL;
        if (len[i]) memcpy(piece[i], x + cut[i], len[i] * sizeof(float));
    }
    const edgc__grad grad = {piece, len, CUTS - 1};
    const double betas[] = {1.0, 0.25};
    for (int b = 0; b < 2; b++)
        for (int threads = 1; threads <= 2; threads++) {
            edgc_gds* g = make(betas[b], 1000);
            assert_int_equal(edgc_gds_set_threads(g, threads), EDGC_OK);
            edgc_entropy whole, cut_up;
            assert_int_equal(edgc_gds_entropy(g, x, n, &whole), EDGC_OK);
            assert_int_equal(edgc__gds_entropy_grad(g, &grad, &cut_up), EDGC_OK);
            if (cut_up.h != whole.h)
                fail_msg("beta %g, %d threads: H = %.17g in pieces, %.17g whole", betas[b], threads,
                         cut_up.h, whole.h);
            assert_int_equal(cut_up.count, whole.count);
            assert_int_equal(whole.count,
                             betas[b] == 1.0 ? n - 1 : 150001); /* x[5] sampled at stride 1 only */
            assert_true(cut_up.min == whole.min && cut_up.max == whole.max && whole.max == 11.0f);
            assert_true(cut_up.h_scaled == whole.h_scaled);
            edgc_gds_free(g);
        }
    for (int i = 0; i + 1 < CUTS; i++)
        free(piece[i]);
    free(x);
}

/* beta = 1 takes the vectorised path (blocks of bins, then sub-histograms): the same bins as the
 * plain loop for every bin count, block remainder, thread split and edge value (NaN, +-Inf, -0,
 * the maximum on a block's last element, a denormal range). Entropies are compared to 1e-13: one
 * value in another bin moves them by more than 1e-7 at these sizes. */
static void test_contiguous_bins_match_an_oracle(void** state)
{
    (void)state;
    const size_t sizes[] = {1, 2, 255, 256, 257, 1023, 5000, 70001}; /* 70001: split on threads */
    const int bins[] = {2, 7, 1000};
    const size_t n_max = 70001;
    float* x = malloc(n_max * sizeof *x);
    test_rng r = {29};
    for (int variant = 0; variant < 3; variant++) {
        test_gaussian(&r, x, n_max, variant == 2 ? 1e-41 : 1.0); /* 1e-41: denormal values */
        for (size_t i = 3; i < n_max; i += 97)
            x[i] = i % 3 == 0 ? NAN : i % 3 == 1 ? INFINITY : -INFINITY;
        if (variant == 1) { /* ties: every value one of a few, zeros of both signs */
            for (size_t i = 0; i < n_max; i++)
                if (isfinite(x[i])) x[i] = (float)((int)(x[i] * 2.0f)) * 0.5f;
            x[0] = -0.0f;
            x[1] = 0.0f;
        }
        x[255] = x[n_max - 1] = 40.0f * (variant == 2 ? 1e-41f : 1.0f); /* the maximum */
        for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++) {
            for (size_t bi = 0; bi < sizeof bins / sizeof *bins; bi++) {
                const size_t n = sizes[si];
                const double want = oracle_entropy(x, n, 1, bins[bi]);
                for (int threads = 1; threads <= 2; threads++) {
                    edgc_gds* g = make(1.0, bins[bi]);
                    assert_int_equal(edgc_gds_set_threads(g, threads), EDGC_OK);
                    edgc_entropy e;
                    assert_int_equal(edgc_gds_entropy(g, x, n, &e), EDGC_OK);
                    if (!(fabs(e.h - want) <= 1e-13 * fmax(1.0, want)))
                        fail_msg("variant %d, n %zu, bins %d, threads %d: H = %.17g, want %.17g",
                                 variant, n, bins[bi], threads, e.h, want);
                    edgc_entropy again; /* the counters left empty for the next call */
                    assert_int_equal(edgc_gds_entropy(g, x, n, &again), EDGC_OK);
                    assert_true(again.h == e.h);
                    edgc_gds_free(g);
                }
            }
        }
    }
    free(x);
}

static void test_bad_arguments(void** state)
{
    (void)state;
    edgc_gds* g = (edgc_gds*)1;
    assert_int_equal(edgc_gds_create(0.0, 1000, &g), EDGC_ERR_CONFIG);
    assert_null(g);
    assert_int_equal(edgc_gds_create(1.01, 1000, &g), EDGC_ERR_CONFIG);
    assert_int_equal(edgc_gds_create(NAN, 1000, &g), EDGC_ERR_CONFIG);
    assert_int_equal(edgc_gds_create(0.5, 1, &g), EDGC_ERR_CONFIG);
    assert_int_equal(edgc_gds_create(0.5, 10, NULL), EDGC_ERR_INVALID_ARG);
    g = make(0.5, 10);
    edgc_entropy e;
    assert_int_equal(edgc_gds_entropy(g, NULL, 5, &e), EDGC_ERR_INVALID_ARG);
    assert_int_equal(edgc_gds_entropy(g, (const float*)&e, 1, NULL), EDGC_ERR_INVALID_ARG);
    assert_int_equal(edgc_gds_entropy(NULL, (const float*)&e, 1, &e), EDGC_ERR_INVALID_ARG);
    edgc_gds_free(g);
    edgc_gds_free(NULL);
    /* a beta whose 1 / beta overflows any integer samples x[0] alone */
    const float x[3] = {1.0f, 2.0f, 3.0f};
    g = make(1e-300, 10);
    assert_int_equal(edgc_gds_entropy(g, x, 3, &e), EDGC_OK);
    assert_int_equal(e.count, 1);
    assert_true(e.min == 1.0f && e.max == 1.0f && e.h == 0.0);
    edgc_gds_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_constant_is_zero),
        cmocka_unit_test(test_even_ramp_is_ln_bins),
        cmocka_unit_test(test_scale),
        cmocka_unit_test(test_stride_honours_beta),
        cmocka_unit_test(test_nonfinite_skipped),
        cmocka_unit_test(test_peaked_lower_than_uniform),
        cmocka_unit_test(test_sample_step),
        cmocka_unit_test(test_threads_change_no_bin),
        cmocka_unit_test(test_pieces_give_the_same_entropy),
        cmocka_unit_test(test_contiguous_bins_match_an_oracle),
        cmocka_unit_test(test_bad_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
