/*
 * linalg.c - the few dense kernels PowerSGD needs beyond plain CBLAS products. Gram-Schmidt
 * rather than LAPACK QR: for the ranks used here (<= a few dozen) it is as accurate, works on
 * contiguous rows (the layout the engine keeps P and Q in), and needs no LAPACKE.
 */
#include "edgc_internal.h"

#include <cblas.h>

void edgc__orthonormalize_rows(float* a, size_t k, size_t len, float eps)
{
    const int n = (int)len;
    for (size_t i = 0; i < k; i++) {
        float* ri = a + i * len;
        float before = cblas_snrm2(n, ri, 1);
        /* Project out the earlier rows twice ("twice is enough"). One pass loses orthogonality
         * when P is rank-deficient (a gradient of rank < r): the residual is then rounding noise
         * that still leans on the earlier rows, and normalising it would blow that lean up to
         * O(1). The second pass removes it. */
        for (int pass = 0; pass < 2; pass++)
            for (size_t j = 0; j < i; j++) {
                const float* rj = a + j * len;
                cblas_saxpy(n, -cblas_sdot(n, rj, 1, ri, 1), rj, 1, ri, 1);
            }
        /* Normalise exactly, or drop a row that is dependent on the earlier ones (relative
         * residual <= eps, or zero). The authors' reducer divides by (norm + eps) with an
         * absolute eps instead; at small gradient scales that leaves rows of norm < 1, the later
         * projections (which assume unit rows) go wrong and P_hat is no longer orthonormal. */
        float d = cblas_snrm2(n, ri, 1);
        cblas_sscal(n, d > 0.0f && d > eps * before ? 1.0f / d : 0.0f, ri, 1);
    }
}
