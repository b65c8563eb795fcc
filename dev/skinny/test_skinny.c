/* test_skinny.c - the experimental thin products of dev/skinny (not in libedgc): each equals a double-precision reference to float
 * rounding, the error-feedback form does the same product and forms M = G + E exactly,
 * and every build this CPU can run (AVX-512, AVX2, plain) gives the same bits, on shapes with
 * odd rows, columns off the 16-lane grid and ranks off the 4-rank blocks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "skinny.h"
#include "testutil.h"

typedef struct shape {
    size_t rows, cols, r;
} shape;

static const shape k_shapes[] = {
    {2, 2, 1},    {3, 17, 2},  {5, 16, 3},    {37, 29, 5},  {64, 48, 4},
    {33, 100, 7}, {9, 250, 9}, {130, 31, 12}, {17, 64, 16}, {48, 301, 32},
};

/* A strided view of a matrix: element (i, t) is at[i * si + t * st]. */
typedef struct view {
    const float* at;
    size_t si, st;
} view;

/* got (n_i x n_j, element (i, j) at got[i * gi + j]) against the double-precision product
 * sum over t < n_t of a(i, t) b(j, t), each within a few float roundings of the sum of |terms|. */
static void assert_product(const float* got, size_t gi, size_t n_i, size_t n_j, size_t n_t, view a,
                           view b)
{
    for (size_t i = 0; i < n_i; i++)
        for (size_t j = 0; j < n_j; j++) {
            double want = 0.0, mag = 0.0;
            for (size_t t = 0; t < n_t; t++) {
                double term = (double)a.at[i * a.si + t * a.st] * b.at[j * b.si + t * b.st];
                want += term;
                mag += fabs(term);
            }
            double tol = 4.0 * (double)n_t * 6e-8 * mag + 1e-30;
            if (fabs(got[i * gi + j] - want) > tol)
                fail_msg("(%zu, %zu): got %.9g, want %.9g (tolerance %.3g)", i, j,
                         (double)got[i * gi + j], want, tol);
        }
}

static void check_shape(const shape* s, skinny_isa isa)
{
    size_t rows = s->rows, cols = s->cols, r = s->r;
    float* m = malloc(rows * cols * sizeof *m);
    float* qt = malloc(r * cols * sizeof *qt);
    float* pt = malloc(r * rows * sizeof *pt);
    float* qt_out = malloc(r * cols * sizeof *qt_out);
    float* g = malloc(rows * cols * sizeof *g);
    float* ref = malloc((rows * cols + r * rows + r * cols) * sizeof *ref);
    assert_non_null(m && qt && pt && qt_out && g && ref);
    test_rng rng = {rows * 1000 + cols * 10 + r};
    test_gaussian(&rng, m, rows * cols, 1.0);
    test_gaussian(&rng, qt, r * cols, 1.0);

    /* Pt[k][i] = sum_j Qt[k][j] M[i][j] */
    skinny_pt(isa, m, rows, cols, qt, r, pt);
    assert_product(pt, rows, r, rows, cols, (view){qt, cols, 1}, (view){m, cols, 1});
    /* Qt[k][j] = sum_i Pt[k][i] M[i][j] */
    skinny_qt(isa, m, rows, cols, pt, r, qt_out);
    assert_product(qt_out, cols, r, cols, rows, (view){pt, rows, 1}, (view){m, 1, cols});
    /* G[i][j] = sum_k Pt[k][i] Qt[k][j] */
    skinny_expand(isa, pt, qt_out, rows, cols, r, g);
    assert_product(g, cols, rows, cols, r, (view){pt, 1, rows}, (view){qt_out, 1, cols});

    /* the same bits from the plain build */
    float* base = ref;
    skinny_pt(SKINNY_ISA_BASE, m, rows, cols, qt, r, base);
    assert_memory_equal(base, pt, r * rows * sizeof *pt);
    skinny_qt(SKINNY_ISA_BASE, m, rows, cols, pt, r, base);
    assert_memory_equal(base, qt_out, r * cols * sizeof *qt_out);
    skinny_expand(SKINNY_ISA_BASE, pt, qt_out, rows, cols, r, base);
    assert_memory_equal(base, g, rows * cols * sizeof *g);

    /* error feedback: M = G + E formed inside the first product */
    float* e = malloc(rows * cols * sizeof *e);
    float* grad = malloc(rows * cols * sizeof *grad);
    float* pt_ef = malloc(r * rows * sizeof *pt_ef);
    assert_non_null(e && grad && pt_ef);
    double m2 = 0.0;
    for (size_t i = 0; i < rows * cols; i++) {
        grad[i] = 0.75f * m[i];
        e[i] = m[i] - grad[i]; /* exact (Sterbenz), so G + E = M bit for bit */
        m2 += (double)m[i] * m[i];
    }
    double got_m2 = skinny_pt_ef(isa, e, grad, rows, cols, qt, r, pt_ef);
    assert_memory_equal(e, m, rows * cols * sizeof *e);
    assert_memory_equal(pt_ef, pt, r * rows * sizeof *pt);
    assert_true(fabs(got_m2 - m2) <= 1e-6 * m2);
    /* and the plain build's norms, to the bit */
    memcpy(e, m, rows * cols * sizeof *e);
    memset(grad, 0, rows * cols * sizeof *grad); /* M = M + 0: the same M, so the same norm */
    assert_true(skinny_pt_ef(SKINNY_ISA_BASE, e, grad, rows, cols, qt, r, pt_ef) == got_m2);
    free(e);
    free(grad);
    free(pt_ef);
    free(m);
    free(qt);
    free(pt);
    free(qt_out);
    free(g);
    free(ref);
}

static void test_every_build_matches_the_reference_and_the_plain_bits(void** state)
{
    (void)state;
    skinny_isa best = skinny_isa_best();
    for (int isa = SKINNY_ISA_BASE; isa <= (int)best; isa++)
        for (size_t t = 0; t < sizeof k_shapes / sizeof *k_shapes; t++)
            check_shape(&k_shapes[t], (skinny_isa)isa);
}

/* Qt's chain runs down the rows four at a time or one at a time; both orders are the same, so
 * 3 rows taken singly equal the 4-row block whose last coefficient is zero. */
static void test_qt_rows_in_blocks_or_one_by_one_agree(void** state)
{
    (void)state;
    enum { COLS = 40, R = 3 };
    float m[4 * COLS], pt4[R * 4], pt3[R * 3], a[R * COLS], b[R * COLS];
    test_rng rng = {99};
    test_gaussian(&rng, m, 4 * COLS, 1.0);
    test_gaussian(&rng, pt4, R * 4, 1.0);
    for (size_t k = 0; k < R; k++) {
        pt4[k * 4 + 3] = 0.0f;
        memcpy(pt3 + k * 3, pt4 + k * 4, 3 * sizeof *pt3);
    }
    for (int isa = SKINNY_ISA_BASE; isa <= (int)skinny_isa_best(); isa++) {
        skinny_qt((skinny_isa)isa, m, 4, COLS, pt4, R, a);
        skinny_qt((skinny_isa)isa, m, 3, COLS, pt3, R, b);
        for (size_t i = 0; i < R * COLS; i++) /* x + 0 * m is x (up to the sign of a zero) */
            assert_true(a[i] == b[i]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_build_matches_the_reference_and_the_plain_bits),
        cmocka_unit_test(test_qt_rows_in_blocks_or_one_by_one_agree),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
