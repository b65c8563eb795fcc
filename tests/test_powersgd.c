/* test_powersgd.c - the PowerSGD engine (docs/ALGORITHM.md §3) against independent oracles: exact low-rank
 * recovery, orthonormal P, error-feedback conservation, full rank = exact average, identical
 * results on every worker, rank changes that keep the error memory, byte accounting. */
#include <float.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>

#include "edgc_internal.h"
#include "testutil.h"

#include <cblas.h>

/* A small model-like layout: two matrices, a bias, a LayerNorm pair, a 1 x n row. */
static const edgc_tensor k_tensors[] = {
    {0, 24, 16},   /* 384 */
    {384, 16, 1},  /* 16 */
    {400, 16, 40}, /* 640 */
    {1040, 8, 1},  /* 8 */
    {1048, 1, 12}, /* a 1 x n row goes dense */
};
static const edgc_layout k_layout = {k_tensors, 5, 1060};

static edgc_powersgd* make(int rank, int ef)
{
    edgc_config c = edgc_config_default();
    c.mode = EDGC_MODE_POWERSGD;
    c.rank = rank;
    c.error_feedback = ef;
    edgc_powersgd* ps = NULL;
    assert_int_equal(edgc_powersgd_create(&c, &k_layout, &ps), EDGC_OK);
    return ps;
}

/* Fills matrix (rows x cols) with a random matrix of exact rank r. */
static void low_rank(test_rng* rng, float* out, size_t rows, size_t cols, size_t r)
{
    float* a = malloc(rows * r * sizeof *a);
    float* b = malloc(r * cols * sizeof *b);
    test_gaussian(rng, a, rows * r, 1.0);
    test_gaussian(rng, b, r * cols, 1.0);
    for (size_t i = 0; i < rows; i++)
        for (size_t j = 0; j < cols; j++) {
            double s = 0;
            for (size_t k = 0; k < r; k++)
                s += (double)a[i * r + k] * b[k * cols + j];
            out[i * cols + j] = (float)s;
        }
    free(a);
    free(b);
}

static void test_exact_low_rank_recovered(void** state)
{
    (void)state;
    edgc_inproc* g;
    edgc_comm comm = solo_comm(&g);
    test_rng rng = {11};
    float grad[1060], want[1060];
    test_gaussian(&rng, grad, 1060, 1.0); /* dense parts: random */
    low_rank(&rng, grad + 0, 24, 16, 3);  /* rank-deficient at r = 4: P_hat must stay orthonormal */
    low_rank(&rng, grad + 400, 16, 40, 4);
    memcpy(want, grad, sizeof grad);
    edgc_powersgd* ps = make(4, 1);
    edgc_step_bytes b;
    assert_int_equal(edgc_powersgd_step(ps, grad, &comm, &b), EDGC_OK);
    assert_true(rel_l2(grad, want, 384) < 1e-5);
    assert_true(rel_l2(grad + 400, want + 400, 640) < 1e-5);
    assert_true(close_f32("dense", grad + 384, want + 384, 16, 0, 0)); /* exact, 1 worker */
    assert_true(close_f32("dense", grad + 1040, want + 1040, 20, 0, 0));
    /* the error memory is what was not recovered: ~0 here */
    const float* e;
    size_t n;
    assert_int_equal(edgc__powersgd_error(ps, &e, &n), EDGC_OK);
    assert_int_equal(n, 384 + 640);
    float zeros[1024] = {0};
    assert_true(close_f32("e", e, zeros, n, 1e-4, 0));
    edgc_powersgd_free(ps);
    edgc_inproc_free(g);
}

/* Gradients are small late in training: recovery must not depend on their scale (an absolute
 * Gram-Schmidt epsilon breaks it around 1e-8 per element). */
static void test_exact_low_rank_recovered_at_small_scale(void** state)
{
    (void)state;
    edgc_inproc* g;
    edgc_comm comm = solo_comm(&g);
    test_rng rng = {16};
    float grad[1060], want[1060];
    test_gaussian(&rng, grad, 1060, 1e-6);
    low_rank(&rng, grad + 0, 24, 16, 2);
    low_rank(&rng, grad + 400, 16, 40, 3);
    for (int i = 0; i < 384; i++)
        grad[i] *= 1e-6f;
    for (int i = 400; i < 1040; i++)
        grad[i] *= 1e-6f;
    memcpy(want, grad, sizeof grad);
    edgc_powersgd* ps = make(8, 1);
    for (int step = 0; step < 3; step++) { /* warm-started steps too */
        memcpy(grad, want, sizeof grad);
        assert_int_equal(edgc_powersgd_step(ps, grad, &comm, NULL), EDGC_OK);
        assert_true(rel_l2(grad, want, 384) < 1e-5);
        assert_true(rel_l2(grad + 400, want + 400, 640) < 1e-5);
    }
    edgc_powersgd_free(ps);
    edgc_inproc_free(g);
}

static void test_p_hat_orthonormal(void** state)
{
    (void)state;
    edgc_inproc* g;
    edgc_comm comm = solo_comm(&g);
    test_rng rng = {12};
    float grad[1060];
    edgc_powersgd* ps = make(6, 1);
    for (int step = 0; step < 3; step++) {
        test_gaussian(&rng, grad, 1060, 1.0);
        assert_int_equal(edgc_powersgd_step(ps, grad, &comm, NULL), EDGC_OK);
        for (size_t k = 0; k < 2; k++) {
            const float *pt, *qt;
            size_t r;
            assert_int_equal(edgc__powersgd_factors(ps, k, &pt, &qt, &r), EDGC_OK);
            assert_int_equal(r, 6);
            size_t rows = k == 0 ? 24 : 16;
            for (size_t a = 0; a < r; a++)
                for (size_t c = 0; c < r; c++) {
                    double d = 0;
                    for (size_t i = 0; i < rows; i++)
                        d += (double)pt[a * rows + i] * pt[c * rows + i];
                    if (fabs(d - (a == c)) > 1e-5) fail_msg("P^T P [%zu][%zu] = %g", a, c, d);
                }
        }
    }
    edgc_powersgd_free(ps);
    edgc_inproc_free(g);
}

/* Sum_t G_hat_t + e_T = Sum_t G_t for one worker, also across rank changes. */
static void test_error_feedback_conserves_mass(void** state)
{
    (void)state;
    edgc_inproc* g;
    edgc_comm comm = solo_comm(&g);
    test_rng rng = {13};
    double sum_g[1060] = {0}, sum_hat[1060] = {0};
    float grad[1060];
    edgc_powersgd* ps = make(2, 1);
    const int ranks[] = {2, 2, 4, 4, 1, 3, 3, 8};
    for (int t = 0; t < 8; t++) {
        assert_int_equal(edgc_powersgd_set_rank(ps, ranks[t]), EDGC_OK);
        test_gaussian(&rng, grad, 1060, 1.0);
        for (int i = 0; i < 1060; i++)
            sum_g[i] += grad[i];
        assert_int_equal(edgc_powersgd_step(ps, grad, &comm, NULL), EDGC_OK);
        for (int i = 0; i < 1060; i++)
            sum_hat[i] += grad[i];
    }
    const float* e;
    size_t n;
    assert_int_equal(edgc__powersgd_error(ps, &e, &n), EDGC_OK);
    double worst = 0;
    for (int i = 0; i < 384; i++)
        worst = fmax(worst, fabs(sum_hat[i] + e[i] - sum_g[i]));
    for (int i = 0; i < 640; i++)
        worst = fmax(worst, fabs(sum_hat[400 + i] + e[384 + i] - sum_g[400 + i]));
    assert_true(worst < 1e-4);
    /* and compression did happen: the error memory is far from zero */
    double enorm = 0;
    for (size_t i = 0; i < n; i++)
        enorm += (double)e[i] * e[i];
    assert_true(enorm > 10.0);
    edgc_powersgd_free(ps);
    edgc_inproc_free(g);
}

static void test_rank_change_keeps_q_prefix(void** state)
{
    (void)state;
    edgc_inproc* g;
    edgc_comm comm = solo_comm(&g);
    test_rng rng = {14};
    float grad[1060];
    edgc_powersgd* ps = make(6, 1);
    test_gaussian(&rng, grad, 1060, 1.0);
    assert_int_equal(edgc_powersgd_step(ps, grad, &comm, NULL), EDGC_OK);
    const float *pt, *qt;
    size_t r;
    float before[2][6 * 40];
    for (size_t k = 0; k < 2; k++) {
        assert_int_equal(edgc__powersgd_factors(ps, k, &pt, &qt, &r), EDGC_OK);
        memcpy(before[k], qt, r * (k == 0 ? 16 : 40) * sizeof(float));
    }
    const float* e;
    size_t n;
    assert_int_equal(edgc__powersgd_error(ps, &e, &n), EDGC_OK);
    float* e_before = malloc(n * sizeof *e_before);
    memcpy(e_before, e, n * sizeof *e);

    assert_int_equal(edgc_powersgd_set_rank(ps, 3), EDGC_OK); /* truncate: prefix kept */
    for (size_t k = 0; k < 2; k++) {
        assert_int_equal(edgc__powersgd_factors(ps, k, &pt, &qt, &r), EDGC_OK);
        assert_int_equal(r, 3);
        assert_memory_equal(qt, before[k], 3 * (k == 0 ? 16 : 40) * sizeof(float));
    }
    assert_int_equal(edgc_powersgd_set_rank(ps, 10), EDGC_OK); /* grow: prefix kept, new rows */
    for (size_t k = 0; k < 2; k++) {
        size_t cols = k == 0 ? 16 : 40;
        assert_int_equal(edgc__powersgd_factors(ps, k, &pt, &qt, &r), EDGC_OK);
        assert_int_equal(r, 10);
        /* Gram-Schmidt only normalises row 0: the warm start's direction is kept */
        double nrm = 0;
        for (size_t i = 0; i < cols; i++)
            nrm += (double)before[k][i] * before[k][i];
        float row0[40];
        for (size_t i = 0; i < cols; i++)
            row0[i] = (float)(before[k][i] / sqrt(nrm));
        assert_true(close_f32("q row 0", qt, row0, cols, 1e-6, 1e-5));
        for (size_t a = 0; a < r; a++) { /* still orthonormal after the new rows */
            double d = 0;
            for (size_t i = 0; i < cols; i++)
                d += (double)qt[a * cols + i] * qt[a * cols + i];
            assert_true(fabs(d - 1.0) < 1e-4);
        }
    }
    assert_int_equal(edgc__powersgd_error(ps, &e, &n), EDGC_OK);
    assert_memory_equal(e, e_before, n * sizeof *e); /* EF memory survives rank changes */
    free(e_before);
    edgc_powersgd_free(ps);
    edgc_inproc_free(g);
}

/* --- several workers ------------------------------------------------------------------------ */
enum { WORKERS = 4, STEPS = 3 };

typedef struct job {
    int rank;
    float grad[STEPS][1060];
    float local[STEPS][1060];
    edgc_status st;
    edgc_step_bytes bytes;
} job;

static void worker(void* arg, const edgc_comm* comm)
{
    job* j = arg;
    edgc_config c = edgc_config_default();
    c.mode = EDGC_MODE_POWERSGD;
    c.rank = j->rank;
    edgc_powersgd* ps = NULL;
    j->st = edgc_powersgd_create(&c, &k_layout, &ps);
    for (int t = 0; t < STEPS && j->st == EDGC_OK; t++) {
        memcpy(j->grad[t], j->local[t], sizeof j->local[t]);
        j->st = edgc_powersgd_step(ps, j->grad[t], comm, &j->bytes);
    }
    edgc_powersgd_free(ps);
}

static job* run(int rank)
{
    job* jobs = calloc(WORKERS, sizeof *jobs);
    for (int w = 0; w < WORKERS; w++) {
        test_rng rng = {100 + (uint64_t)w};
        jobs[w].rank = rank;
        for (int t = 0; t < STEPS; t++)
            test_gaussian(&rng, jobs[w].local[t], 1060, 1.0);
    }
    assert_int_equal(run_workers(WORKERS, worker, jobs, sizeof *jobs), 0);
    for (int w = 0; w < WORKERS; w++)
        assert_int_equal(jobs[w].st, EDGC_OK);
    return jobs;
}

static void test_workers_bit_identical(void** state)
{
    (void)state;
    job* jobs = run(3);
    for (int w = 1; w < WORKERS; w++)
        assert_memory_equal(jobs[w].grad, jobs[0].grad, sizeof jobs[0].grad);
    /* dense parts are the exact average */
    for (int t = 0; t < STEPS; t++) {
        float want[1060];
        for (int i = 0; i < 1060; i++) {
            float s = 0;
            for (int w = 0; w < WORKERS; w++)
                s += jobs[w].local[t][i];
            want[i] = s / WORKERS;
        }
        assert_true(close_f32("bias", jobs[0].grad[t] + 384, want + 384, 16, 1e-6, 1e-6));
        assert_true(close_f32("tail", jobs[0].grad[t] + 1040, want + 1040, 20, 1e-6, 1e-6));
    }
    free(jobs);
}

static void test_full_rank_is_exact_average(void** state)
{
    (void)state;
    job* jobs = run(16); /* = min(rows, cols) of both matrices */
    for (int t = 0; t < STEPS; t++) {
        float want[1060];
        for (int i = 0; i < 1060; i++) {
            double s = 0;
            for (int w = 0; w < WORKERS; w++)
                s += jobs[w].local[t][i];
            want[i] = (float)(s / WORKERS);
        }
        assert_true(rel_l2(jobs[0].grad[t], want, 1060) < 1e-5);
    }
    free(jobs);
}

static void test_byte_accounting(void** state)
{
    (void)state;
    job* jobs = run(5);
    /* r (m + n) per matrix, plus every dense element, 4 bytes each */
    uint64_t want = 4 * (5 * (24 + 16) + 5 * (16 + 40) + 16 + 8 + 12);
    assert_int_equal(jobs[0].bytes.sent, want);
    assert_int_equal(jobs[0].bytes.dense, 4 * 1060);
    free(jobs);
    edgc_powersgd* ps = make(2, 1);
    edgc_step_bytes b;
    assert_int_equal(edgc_powersgd_bytes_at(ps, 100, &b), EDGC_OK); /* capped per matrix */
    assert_int_equal(b.sent, 4 * (16 * (24 + 16) + 16 * (16 + 40) + 36));
    int cap = 0;
    assert_int_equal(edgc_powersgd_rank_cap(ps, &cap), EDGC_OK);
    assert_int_equal(cap, 16);
    edgc_powersgd_free(ps);
}

static void test_without_error_feedback(void** state)
{
    (void)state;
    edgc_inproc* g;
    edgc_comm comm = solo_comm(&g);
    test_rng rng = {15};
    float grad[1060];
    low_rank(&rng, grad, 24, 16, 2);
    test_gaussian(&rng, grad + 384, 1060 - 384, 1.0);
    float want[384];
    memcpy(want, grad, sizeof want);
    edgc_powersgd* ps = make(2, 0);
    assert_int_equal(edgc_powersgd_step(ps, grad, &comm, NULL), EDGC_OK);
    assert_true(rel_l2(grad, want, 384) < 1e-5);
    const float* e;
    size_t n;
    assert_int_equal(edgc__powersgd_error(ps, &e, &n), EDGC_OK);
    assert_null(e);
    edgc_powersgd_free(ps);
    edgc_inproc_free(g);
}

/* A checked step without error feedback takes the non-finite flag from P = G Q: a NaN or Inf in a
 * matrix, and one in a 1-D tensor, make this worker's flag (Q unchanged), while huge finite
 * values that overflow P do not (a scan of the gradient decides). */
static void test_checked_flag_from_p_without_error_feedback(void** state)
{
    (void)state;
    edgc_inproc* g;
    edgc_comm comm = solo_comm(&g);
    edgc_powersgd* ps = make(2, 0);
    const size_t n = 1060;
    float grad[1060];
    float* whole_at = grad;
    const edgc__grad whole = {&whole_at, &n, 1};
    test_rng rng = {41};
    const float* pt;
    const float* qt;
    size_t r;
    float q_before[2 * 40];
    for (int s = 0; s < 5; s++) {
        test_gaussian(&rng, grad, n, 1.0);
        /* row 5 of the first matrix along the signs of its Q's first column: P overflows */
        if (s == 1) {
            assert_int_equal(edgc__powersgd_factors(ps, 0, &pt, &qt, &r), EDGC_OK);
            double l1 = 0.0;
            for (int j = 0; j < 16; j++) {
                grad[5 * 16 + j] = qt[j] > 0.0f ? 3e38f : -3e38f;
                l1 += fabs(qt[j]);
            }
            assert_true(3e38 * l1 > 1.5 * FLT_MAX);
        }
        if (s == 2) grad[400 + 77] = NAN;     /* in the second matrix */
        if (s == 3) grad[100] = -INFINITY;    /* in the first */
        if (s == 4) grad[384 + 3] = INFINITY; /* in the bias, not in any P */
        assert_int_equal(edgc__powersgd_factors(ps, 1, &pt, &qt, &r), EDGC_OK);
        memcpy(q_before, qt, r * 40 * sizeof *qt);
        int bad_any = -1;
        assert_int_equal(edgc__powersgd_step_checked(ps, &whole, &comm, -1, &bad_any, NULL),
                         EDGC_OK);
        if (bad_any != (s >= 2 ? 2 : 0)) fail_msg("step %d: flag %d", s, bad_any);
        assert_int_equal(edgc__powersgd_factors(ps, 1, &pt, &qt, &r), EDGC_OK);
        if (s >= 2) assert_memory_equal(q_before, qt, r * 40 * sizeof *qt);
    }
    edgc_powersgd_free(ps);
    edgc_inproc_free(g);
}

static void test_zero_gradient_stays_finite(void** state)
{
    (void)state;
    edgc_inproc* g;
    edgc_comm comm = solo_comm(&g);
    float grad[1060] = {0};
    edgc_config c = edgc_config_default();
    c.mode = EDGC_MODE_POWERSGD;
    c.orth_eps = 0.0f; /* the hardest case for Gram-Schmidt */
    edgc_powersgd* ps = NULL;
    assert_int_equal(edgc_powersgd_create(&c, &k_layout, &ps), EDGC_OK);
    assert_int_equal(edgc_powersgd_step(ps, grad, &comm, NULL), EDGC_OK);
    assert_int_equal(edgc_powersgd_step(ps, grad, &comm, NULL), EDGC_OK);
    for (int i = 0; i < 1060; i++)
        assert_true(grad[i] == 0.0f);
    edgc_powersgd_free(ps);
    edgc_inproc_free(g);
}

/* A checked step builds M in the gradient and swaps G_hat and e into place at the end; a plain
 * step builds M in the error memory. Both must leave the same bits in the gradient and the error
 * memory, here with matrices whose lengths are no multiple of 8 (the passes' scalar tails), on
 * one OpenBLAS thread (the tile passes) and on two (matrix by matrix). */
static void test_checked_step_gives_the_plain_steps_bits(void** state)
{
    (void)state;
    static const edgc_tensor tensors[] = {{0, 7, 13}, {91, 5, 1}, {96, 9, 3}, {123, 3, 1001}};
    static const edgc_layout layout = {tensors, 4, 3126};
    const size_t n = layout.total;
    float* grad[2] = {malloc(n * sizeof(float)), malloc(n * sizeof(float))};
    assert_non_null(grad[0]);
    assert_non_null(grad[1]);
    const int blas_threads = openblas_get_num_threads();
    for (int threads = 1; threads <= 2; threads++) {
        openblas_set_num_threads(threads);
        edgc_config c = edgc_config_default();
        c.mode = EDGC_MODE_POWERSGD;
        c.rank = 2;
        edgc_powersgd* ps[2] = {NULL, NULL};
        edgc_inproc* g[2];
        edgc_comm comm[2];
        for (int k = 0; k < 2; k++) {
            assert_int_equal(edgc_powersgd_create(&c, &layout, &ps[k]), EDGC_OK);
            comm[k] = solo_comm(&g[k]);
        }
        test_rng rng = {43};
        for (int s = 0; s < 4; s++) {
            test_gaussian(&rng, grad[0], n, 1.0);
            memcpy(grad[1], grad[0], n * sizeof(float));
            assert_int_equal(edgc_powersgd_step(ps[0], grad[0], &comm[0], NULL), EDGC_OK);
            int bad_any = -1;
            const edgc__grad whole = {&grad[1], &n, 1};
            assert_int_equal(
                edgc__powersgd_step_checked(ps[1], &whole, &comm[1], -1, &bad_any, NULL), EDGC_OK);
            assert_int_equal(bad_any, 0);
            assert_memory_equal(grad[0], grad[1], n * sizeof(float));
            const float *e0, *e1;
            size_t n0, n1;
            assert_int_equal(edgc__powersgd_error(ps[0], &e0, &n0), EDGC_OK);
            assert_int_equal(edgc__powersgd_error(ps[1], &e1, &n1), EDGC_OK);
            assert_int_equal(n0, 91 + 27 + 3003);
            assert_int_equal(n1, n0);
            assert_memory_equal(e0, e1, n0 * sizeof(float));
        }
        for (int k = 0; k < 2; k++) {
            edgc_powersgd_free(ps[k]);
            edgc_inproc_free(g[k]);
        }
    }
    openblas_set_num_threads(blas_threads);
    free(grad[0]);
    free(grad[1]);
}

/* Matrices larger than one tile (docs/ALGORITHM.md, 3): one of 3 tiles, the last ragged, and one
 * wider than a tile, one row per tile. Against an oracle in double from the engine's own factors,
 * for both places M is built in (the error memory in a plain step, the gradient in a checked one),
 * with the products done tile by tile (OpenBLAS on one thread) and matrix by matrix (on two):
 * the span of P_hat is that of M Q_prev (each tile's rows of P), Q = M^T P_hat, the result is
 * P_hat Q^T and the new error memory M - P_hat Q^T (each tile's rows of G_hat and e). */
static void test_tiles_match_an_oracle(void** state)
{
    (void)state;
    static const edgc_tensor tensors[] = {{0, 700, 1000}, {700000, 2, 300000}, {1300000, 5, 1}};
    static const edgc_layout layout = {tensors, 3, 1300005};
    const size_t n = layout.total, shape[2][2] = {{700, 1000}, {2, 300000}};
    float* grad = malloc(n * sizeof *grad);
    float* m = malloc(n * sizeof *m);
    float* q_prev = malloc((4 * 1000 + 2 * 300000) * sizeof *q_prev); /* both Qt */
    double* v = malloc(700 * sizeof *v);
    assert_non_null(grad);
    assert_non_null(m);
    assert_non_null(q_prev);
    assert_non_null(v);
    const int blas_threads = openblas_get_num_threads();
    for (int run = 0; run < 4; run++) {
        const int checked = run % 2;
        openblas_set_num_threads(run < 2 ? 1 : 2); /* products in the tiles, then per matrix */
        edgc_config c = edgc_config_default();
        c.mode = EDGC_MODE_POWERSGD;
        c.rank = 4;
        c.threads = 2;
        edgc_powersgd* ps = NULL;
        assert_int_equal(edgc_powersgd_create(&c, &layout, &ps), EDGC_OK);
        edgc_inproc* g;
        edgc_comm comm = solo_comm(&g);
        test_rng rng = {31};
        for (int s = 0; s < 3; s++) {
            test_gaussian(&rng, grad, n, 1.0);
            const float* e;
            size_t ne;
            assert_int_equal(edgc__powersgd_error(ps, &e, &ne), EDGC_OK);
            assert_int_equal(ne, 700000 + 600000);
            for (size_t i = 0; i < ne; i++)
                m[i] = grad[i] + e[i];
            if (checked) {
                int bad_any = -1;
                const edgc__grad whole = {&grad, &n, 1};
                assert_int_equal(edgc__powersgd_step_checked(ps, &whole, &comm, -1, &bad_any, NULL),
                                 EDGC_OK);
                assert_int_equal(bad_any, 0);
            } else {
                assert_int_equal(edgc_powersgd_step(ps, grad, &comm, NULL), EDGC_OK);
            }
            assert_int_equal(edgc__powersgd_error(ps, &e, &ne), EDGC_OK);
            size_t at = 0;
            for (size_t k = 0; k < 2; k++) {
                const size_t rows = shape[k][0], cols = shape[k][1];
                const float *pt, *qt;
                size_t r;
                assert_int_equal(edgc__powersgd_factors(ps, k, &pt, &qt, &r), EDGC_OK);
                assert_int_equal(r, k == 0 ? 4 : 2);
                const float* mk = m + at;
                double worst = 0.0;
                /* span(P_hat) = span(M Q_prev): each column of M Q_prev, less its projection
                 * onto P_hat, is ~0 (Q_prev: this matrix's Qt after the last step) */
                for (size_t a = 0; s > 0 && a < r; a++) {
                    double nv = 0.0, nres = 0.0;
                    for (size_t i = 0; i < rows; i++) {
                        double d = 0.0;
                        for (size_t j = 0; j < cols; j++)
                            d += (double)mk[i * cols + j] *
                                 q_prev[(k ? 4 * 1000 : 0) + a * cols + j];
                        v[i] = d;
                        nv += d * d;
                    }
                    for (size_t b = 0; b < r; b++) {
                        double d = 0.0;
                        for (size_t i = 0; i < rows; i++)
                            d += v[i] * pt[b * rows + i];
                        for (size_t i = 0; i < rows; i++)
                            v[i] -= d * pt[b * rows + i];
                    }
                    for (size_t i = 0; i < rows; i++)
                        nres += v[i] * v[i];
                    worst = fmax(worst, sqrt(nres / nv));
                }
                if (worst > 1e-4)
                    fail_msg("checked %d step %d matrix %zu: P off span, %g", checked, s, k, worst);
                /* Q = M^T P_hat, the result P_hat Q^T and e = M - P_hat Q^T */
                double dq = 0.0, nq = 0.0, dg = 0.0, de = 0.0, nm = 0.0;
                for (size_t a = 0; a < r; a++)
                    for (size_t j = 0; j < cols; j++) {
                        double d = 0.0;
                        for (size_t i = 0; i < rows; i++)
                            d += (double)pt[a * rows + i] * mk[i * cols + j];
                        dq += (d - qt[a * cols + j]) * (d - qt[a * cols + j]);
                        nq += d * d;
                    }
                for (size_t i = 0; i < rows; i++)
                    for (size_t j = 0; j < cols; j++) {
                        double gh = 0.0;
                        for (size_t a = 0; a < r; a++)
                            gh += (double)pt[a * rows + i] * qt[a * cols + j];
                        const size_t x = i * cols + j;
                        const double want_e = (double)mk[x] - gh;
                        dg +=
                            (grad[tensors[k].offset + x] - gh) * (grad[tensors[k].offset + x] - gh);
                        de += (e[at + x] - want_e) * (e[at + x] - want_e);
                        nm += (double)mk[x] * mk[x];
                    }
                if (sqrt(dq / nq) > 1e-5 || sqrt(dg / nm) > 1e-5 || sqrt(de / nm) > 1e-5)
                    fail_msg("checked %d step %d matrix %zu: Q %g, G_hat %g, e %g", checked, s, k,
                             sqrt(dq / nq), sqrt(dg / nm), sqrt(de / nm));
                memcpy(q_prev + (k ? 4 * 1000 : 0), qt, r * cols * sizeof *qt);
                at += rows * cols;
            }
        }
        edgc_powersgd_free(ps);
        edgc_inproc_free(g);
    }
    openblas_set_num_threads(blas_threads);
    free(grad);
    free(m);
    free(q_prev);
    free(v);
}

/* With OpenBLAS on one thread the tiles and the matrices are shared out over the engine's threads:
 * for either OpenBLAS thread count (1, then 2), 1, 2 and 3 engine threads give the same
 * gradients, error memory and error norms, bit for bit, over steps with error feedback (matrices
 * of one tile and of two, the second ragged). threads = 0 resolves to the CPUs. (OpenBLAS's own
 * thread count does change its products' rounding.) */
static void test_thread_count_changes_no_bit(void** state)
{
    (void)state;
    static const edgc_tensor big_tensors[] = {
        {0, 100, 300}, {30000, 300, 200}, {90000, 600, 513}, {397800, 64, 1}};
    static const edgc_layout big = {big_tensors, 4, 397864};
    const size_t n = big.total;
    float* first = malloc(3 * n * sizeof *first);
    float* grad = malloc(n * sizeof *grad);
    float* err0 = malloc(n * sizeof *err0);
    assert_non_null(first);
    assert_non_null(grad);
    assert_non_null(err0);
    double err_norm0 = 0.0;
    size_t n_err = 0;
    const int threads[] = {1, 2, 3, 0, 1, 2, 3};
    const int blas_threads = openblas_get_num_threads();
    for (int t = 0; t < 7; t++) {
        openblas_set_num_threads(t < 4 ? 1 : 2);
        edgc_config c = edgc_config_default();
        c.mode = EDGC_MODE_POWERSGD;
        c.rank = 6;
        c.threads = threads[t];
        edgc_powersgd* ps = NULL;
        assert_int_equal(edgc_powersgd_create(&c, &big, &ps), EDGC_OK);
        assert_int_equal(edgc__powersgd_threads(ps),
                         threads[t] > 0 ? threads[t] : edgc__cpus_available());
        edgc_inproc* g;
        edgc_comm comm = solo_comm(&g);
        test_rng rng = {29};
        for (int s = 0; s < 3; s++) {
            test_gaussian(&rng, grad, n, 1.0);
            assert_int_equal(edgc_powersgd_step(ps, grad, &comm, NULL), EDGC_OK);
            if (t == 0 || t == 4)
                memcpy(first + (size_t)s * n, grad, n * sizeof *grad);
            else if (memcmp(first + (size_t)s * n, grad, n * sizeof *grad) != 0)
                fail_msg("threads %d, OpenBLAS on %d: step %d differs", threads[t], t < 4 ? 1 : 2,
                         s);
        }
        const float* e;
        size_t ne;
        assert_int_equal(edgc__powersgd_error(ps, &e, &ne), EDGC_OK);
        double err_norm = edgc__powersgd_last_error(ps);
        assert_true(err_norm > 0.0 && err_norm < 1.0);
        if (t == 0 || t == 4) {
            memcpy(err0, e, ne * sizeof *e);
            n_err = ne;
            err_norm0 = err_norm;
        } else {
            assert_int_equal(ne, n_err);
            assert_memory_equal(err0, e, ne * sizeof *e);
            assert_true(err_norm == err_norm0);
        }
        edgc_powersgd_free(ps);
        edgc_inproc_free(g);
    }
    openblas_set_num_threads(blas_threads);
    free(first);
    free(grad);
    free(err0);
}

/* One engine run of `steps` steps on rng's gradients, OpenBLAS on one thread, P unpacked or not;
 * the synchronised gradients of every step into out (steps x layout total), the last step's
 * compression error returned. */
static double run_p_path(const edgc_layout* layout, int ef, int direct, int threads, int steps,
                         float* out)
{
    edgc_config c = edgc_config_default();
    c.mode = EDGC_MODE_POWERSGD;
    c.rank = 6;
    c.error_feedback = ef;
    c.threads = threads;
    edgc_powersgd* ps = NULL;
    assert_int_equal(edgc_powersgd_create(&c, layout, &ps), EDGC_OK);
    edgc__powersgd_set_direct(ps, direct);
    edgc_inproc* g;
    edgc_comm comm = solo_comm(&g);
    test_rng rng = {31};
    for (int s = 0; s < steps; s++) {
        float* grad = out + (size_t)s * layout->total;
        test_gaussian(&rng, grad, layout->total, 1.0);
        assert_int_equal(edgc_powersgd_step(ps, grad, &comm, NULL), EDGC_OK);
    }
    double err = edgc__powersgd_last_error(ps);
    edgc_powersgd_free(ps);
    edgc_inproc_free(g);
    return err;
}

/* P = M Q through OpenBLAS's unpacked small-matrix calls in chunks of rows (the default on its
 * AVX-512 cores) is the packed product's P to float rounding, on any CPU: a tile cut into
 * chunks, a matrix taken whole without error feedback, and a row too long for one call (the
 * packed product then). The engine's thread count still changes no bit. */
static void test_unpacked_p_matches_packed(void** state)
{
    (void)state;
    static const edgc_tensor tensors[] = {
        {0, 300, 200}, {60000, 600, 513}, {367800, 8, 200000}, {1967800, 64, 1}};
    static const edgc_layout layout = {tensors, 4, 1967864};
    const size_t n = layout.total;
    const int steps = 3;
    float* packed = malloc(steps * n * sizeof *packed);
    float* unpacked = malloc(steps * n * sizeof *unpacked);
    float* threaded = malloc(steps * n * sizeof *threaded);
    assert_non_null(packed);
    assert_non_null(unpacked);
    assert_non_null(threaded);
    const int blas_threads = openblas_get_num_threads();
    openblas_set_num_threads(1);
    for (int ef = 0; ef < 2; ef++) {
        double e0 = run_p_path(&layout, ef, 0, 1, steps, packed);
        double e1 = run_p_path(&layout, ef, 1, 1, steps, unpacked);
        double big = 0.0, diff = 0.0;
        for (size_t i = 0; i < steps * n; i++) {
            big = fmax(big, fabs(packed[i]));
            diff = fmax(diff, fabs((double)packed[i] - unpacked[i]));
        }
        if (!(big > 0.1 && diff <= 1e-4 * big))
            fail_msg("EF %d: unpacked P is off the packed one by %g of %g", ef, diff, big);
        if (ef) assert_true(fabs(e1 - e0) <= 1e-5 * e0 && e0 > 0.1 && e0 < 1.0);
        run_p_path(&layout, ef, 1, 3, steps, threaded);
        assert_memory_equal(unpacked, threaded, steps * n * sizeof *threaded);
    }
    openblas_set_num_threads(blas_threads);
    free(packed);
    free(unpacked);
    free(threaded);
}

/* Without error feedback, G_hat written a tile at a time (OpenBLAS on one thread, the default)
 * is the same to the bit as one call per matrix (the bench baseline, edgc__powersgd_set_fusion
 * 0), on 1 and 3 engine threads: a matrix of three tiles, the last ragged, and one whose rows
 * are longer than a tile. */
static void test_tiled_g_hat_without_error_feedback(void** state)
{
    (void)state;
    static const edgc_tensor tensors[] = {{0, 600, 1000}, {600000, 3, 300000}, {1500000, 5, 1}};
    static const edgc_layout layout = {tensors, 3, 1500005};
    const size_t n = layout.total;
    float* out[3];
    const int blas_threads = openblas_get_num_threads();
    openblas_set_num_threads(1);
    for (int run = 0; run < 3; run++) { /* whole matrices, tiles, tiles on 3 threads */
        out[run] = malloc(2 * n * sizeof(float));
        assert_non_null(out[run]);
        edgc_config c = edgc_config_default();
        c.mode = EDGC_MODE_POWERSGD;
        c.rank = 5;
        c.error_feedback = 0;
        c.threads = run == 2 ? 3 : 1;
        edgc_powersgd* ps = NULL;
        assert_int_equal(edgc_powersgd_create(&c, &layout, &ps), EDGC_OK);
        edgc__powersgd_set_fusion(ps, run > 0);
        edgc_inproc* g;
        edgc_comm comm = solo_comm(&g);
        test_rng rng = {37};
        for (int s = 0; s < 2; s++) {
            float* grad = out[run] + (size_t)s * n;
            test_gaussian(&rng, grad, n, 1.0);
            assert_int_equal(edgc_powersgd_step(ps, grad, &comm, NULL), EDGC_OK);
        }
        edgc_powersgd_free(ps);
        edgc_inproc_free(g);
    }
    double big = 0.0;
    for (size_t i = 0; i < 2 * n; i++)
        big = fmax(big, fabs(out[0][i]));
    assert_true(big > 0.1); /* something was written */
    assert_memory_equal(out[0], out[1], 2 * n * sizeof(float));
    assert_memory_equal(out[0], out[2], 2 * n * sizeof(float));
    openblas_set_num_threads(blas_threads);
    for (int run = 0; run < 3; run++)
        free(out[run]);
}

static void test_bad_arguments(void** state)
{
    (void)state;
    edgc_config c = edgc_config_default();
    c.mode = EDGC_MODE_POWERSGD;
    edgc_powersgd* ps = (edgc_powersgd*)1;
    const edgc_tensor over[] = {{0, 10, 10}};
    edgc_layout bad = {over, 1, 50};
    assert_int_equal(edgc_powersgd_create(&c, &bad, &ps), EDGC_ERR_LAYOUT);
    assert_null(ps);
    c.rank = 0;
    assert_int_equal(edgc_powersgd_create(&c, &k_layout, &ps), EDGC_ERR_CONFIG);
    assert_int_equal(edgc_powersgd_create(NULL, &k_layout, &ps), EDGC_ERR_INVALID_ARG);
    ps = make(2, 1);
    assert_int_equal(edgc_powersgd_set_rank(ps, 0), EDGC_ERR_INVALID_ARG);
    edgc_inproc* g;
    edgc_comm comm = solo_comm(&g);
    float grad[1060] = {0};
    assert_int_equal(edgc_powersgd_step(ps, NULL, &comm, NULL), EDGC_ERR_INVALID_ARG);
    assert_int_equal(edgc_powersgd_step(ps, grad, NULL, NULL), EDGC_ERR_INVALID_ARG);
    edgc_comm broken = comm;
    broken.rank = 3; /* outside the group */
    assert_int_equal(edgc_powersgd_step(ps, grad, &broken, NULL), EDGC_ERR_INVALID_ARG);
    edgc_powersgd_free(ps);
    edgc_powersgd_free(NULL);
    edgc_inproc_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exact_low_rank_recovered),
        cmocka_unit_test(test_exact_low_rank_recovered_at_small_scale),
        cmocka_unit_test(test_p_hat_orthonormal),
        cmocka_unit_test(test_error_feedback_conserves_mass),
        cmocka_unit_test(test_rank_change_keeps_q_prefix),
        cmocka_unit_test(test_workers_bit_identical),
        cmocka_unit_test(test_full_rank_is_exact_average),
        cmocka_unit_test(test_byte_accounting),
        cmocka_unit_test(test_without_error_feedback),
        cmocka_unit_test(test_tiled_g_hat_without_error_feedback),
        cmocka_unit_test(test_checked_flag_from_p_without_error_feedback),
        cmocka_unit_test(test_zero_gradient_stays_finite),
        cmocka_unit_test(test_checked_step_gives_the_plain_steps_bits),
        cmocka_unit_test(test_tiles_match_an_oracle),
        cmocka_unit_test(test_thread_count_changes_no_bit),
        cmocka_unit_test(test_unpacked_p_matches_packed),
        cmocka_unit_test(test_bad_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
