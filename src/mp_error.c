/*
 * mp_error.c - the CQM error curve (docs/ALGORITHM.md, 6.3): the relative Frobenius error g(r) of
 * the best rank-r approximation of an m x n random matrix whose squared singular values follow the
 * Marchenko-Pastur law (Lemma 1), by Eckart-Young-Mirsky (Theorem 1):
 *     g(r)^2 = sum_{j>r} lambda_(j) / sum_j lambda_(j),  lambda descending.
 * The paper draws the lambdas by Monte Carlo; we use the deterministic quantiles
 * lambda_(j) = F^-1(1 - (j - 1/2) / m): no noise, no seed.
 */
#include "edgc_internal.h"

#include <math.h>
#include <stdlib.h>

#define MP_GRID 4096 /* integration points for the CDF */

/* The MP density in the angle theta in [0, pi], where
 *     lambda(theta) = lo + (hi - lo) (1 - cos theta) / 2.
 * The substitution removes the square-root singularities at both edges of the support, and
 * the 1/lambda one at lo = 0 (square matrices) cancels against sin^2. */
static double mp_density_theta(double theta, double lo, double hi, double gamma)
{
    const double pi = 3.14159265358979323846;
    double w = hi - lo, s = sin(theta);
    double lam = lo + w * (1.0 - cos(theta)) * 0.5;
    if (lam <= 0.0) return 0.0;
    return (w * w * 0.25 * s * s) / (2.0 * pi * gamma * lam);
}

edgc_status edgc__mp_error_curve(size_t m, size_t n, double* g)
{
    EDGC_RETURN_IF(m == 0 || n == 0 || g == NULL, EDGC_ERR_INVALID_ARG);
    if (m > n) { /* the nonzero spectrum of A A^T equals that of A^T A */
        size_t t = m;
        m = n;
        n = t;
    }
    const double pi = 3.14159265358979323846;
    const double gamma = (double)m / (double)n;
    const double lo = (1.0 - sqrt(gamma)) * (1.0 - sqrt(gamma));
    const double hi = (1.0 + sqrt(gamma)) * (1.0 + sqrt(gamma));
    const double h = pi / MP_GRID;

    double* cdf = malloc((MP_GRID + 1) * sizeof *cdf);
    double* lam = malloc(m * sizeof *lam);
    if (cdf == NULL || lam == NULL) {
        free(cdf);
        free(lam);
        return EDGC_ERR_NOMEM;
    }
    /* CDF over the theta grid by the midpoint rule, normalised to end at exactly 1. */
    cdf[0] = 0.0;
    for (int i = 0; i < MP_GRID; i++)
        cdf[i + 1] = cdf[i] + h * mp_density_theta((i + 0.5) * h, lo, hi, gamma);
    for (int i = 1; i <= MP_GRID; i++)
        cdf[i] /= cdf[MP_GRID];

    /* Quantiles in descending order: u falls as j rises, so the grid cursor only moves down. */
    int i = MP_GRID - 1;
    double total = 0.0;
    for (size_t j = 0; j < m; j++) {
        double u = 1.0 - ((double)j + 0.5) / (double)m;
        while (i > 0 && cdf[i] > u)
            i--;
        double span = cdf[i + 1] - cdf[i];
        double theta = (i + (span > 0.0 ? (u - cdf[i]) / span : 0.0)) * h;
        lam[j] = lo + (hi - lo) * (1.0 - cos(theta)) * 0.5;
        total += lam[j];
    }
    double kept = 0.0;
    g[0] = 1.0;
    for (size_t r = 1; r <= m; r++) {
        kept += lam[r - 1];
        double rest = (total - kept) / total;
        g[r] = rest > 0.0 ? sqrt(rest) : 0.0;
    }
    g[m] = 0.0; /* full rank is exact */
    free(cdf);
    free(lam);
    return EDGC_OK;
}

edgc_status edgc__mp_stage_curve(const edgc__plan_layout* pl, double** out)
{
    EDGC_RETURN_IF(pl == NULL || out == NULL, EDGC_ERR_INVALID_ARG);
    *out = NULL;
    size_t cap = (size_t)pl->rank_cap;
    double* stage = calloc(cap + 1, sizeof *stage);
    double* g = malloc((cap + 1) * sizeof *g);
    if (stage == NULL || g == NULL) {
        free(stage);
        free(g);
        return EDGC_ERR_NOMEM;
    }
    /* One rank serves every matrix, so weight each matrix's curve by its element count. */
    double wsum = 0.0;
    for (size_t k = 0; k < pl->n_mats; k++) {
        const edgc__matrix* mk = &pl->mats[k];
        edgc_status st = edgc__mp_error_curve(mk->rows, mk->cols, g);
        if (st != EDGC_OK) {
            free(stage);
            free(g);
            return st;
        }
        double w = (double)mk->rows * (double)mk->cols;
        for (size_t r = 0; r <= cap; r++)
            stage[r] += w * g[r < mk->cap ? r : mk->cap];
        wsum += w;
    }
    if (wsum > 0.0)
        for (size_t r = 0; r <= cap; r++)
            stage[r] /= wsum;
    free(g);
    *out = stage;
    return EDGC_OK;
}

int edgc__mp_inverse(const double* g, int r_lo, int r_hi, double y)
{
    for (int r = r_lo; r <= r_hi; r++)
        if (g[r] <= y) return r;
    return r_hi;
}
