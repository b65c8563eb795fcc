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
        /* Project out the earlier rows twice ("twice is enough"). One pass loses orthogonality
         * when P is rank-deficient (a gradient of rank < r): the residual is then rounding noise
         * that still leans on the earlier rows, and normalising it would blow that lean up to
         * O(1). The second pass removes it, so P_hat stays orthonormal. */
        for (int pass = 0; pass < 2; pass++)
            for (size_t j = 0; j < i; j++) {
                const float* rj = a + j * len;
                cblas_saxpy(n, -cblas_sdot(n, rj, 1, ri, 1), rj, 1, ri, 1);
            }
        float d = cblas_snrm2(n, ri, 1) + eps;
        /* A zero row with eps = 0 stays zero instead of becoming NaN. */
        cblas_sscal(n, d > 0.0f ? 1.0f / d : 0.0f, ri, 1);
    }
}
