/*
 * linalg.c - the few dense kernels PowerSGD needs beyond plain CBLAS products. Gram-Schmidt
 * rather than LAPACK QR: for the ranks used here (<= a few dozen) it is as accurate, works on
 * contiguous rows (the layout the engine keeps P and Q in), and needs no LAPACKE.
 */
#include "edgc_internal.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

/* r -= A^T (A r) for the first `rows` rows of a: one classical Gram-Schmidt pass as two
 * matrix-vector products, in blocks so the coefficient buffer stays on the stack. */
static void project_out(const float* a, size_t rows, int n, float* r)
{
    float coef[256];
    for (size_t j0 = 0; j0 < rows; j0 += 256) {
        int nb = (int)(rows - j0 < 256 ? rows - j0 : 256);
        const float* blk = a + j0 * (size_t)n;
        cblas_sgemv(CblasRowMajor, CblasNoTrans, nb, n, 1.0f, blk, n, r, 1, 0.0f, coef, 1);
        cblas_sgemv(CblasRowMajor, CblasTrans, nb, n, -1.0f, blk, n, coef, 1, 1.0f, r, 1);
    }
}

/* Orthogonalises r against the first `rows` rows until a pass no longer cancels more than half
 * of it ("twice is enough", Kahan-Parlett), at most 4 passes. Returns the final norm. */
static float orthogonalize(const float* a, size_t rows, int n, float* r)
{
    float prev = cblas_snrm2(n, r, 1), now = prev;
    for (int pass = 0; pass < 4 && rows > 0; pass++) {
        project_out(a, rows, n, r);
        now = cblas_snrm2(n, r, 1);
        if (pass > 0 && now > 0.5f * prev) break;
        if (now == 0.0f) break;
        prev = now;
    }
    return now;
}

void edgc__orthonormalize_rows(float* a, size_t k, size_t len, float eps)
{
    const int n = (int)len;
    for (size_t i = 0; i < k; i++) {
        float* ri = a + i * len;
        float before = cblas_snrm2(n, ri, 1);
        float d = orthogonalize(a, i, n, ri);
        if (d > 0.0f && d > eps * before) {
            cblas_sscal(n, 1.0f / d, ri, 1);
            continue;
        }
        /* Numerically dependent on the earlier rows (a gradient of rank < r, or zero): what is
         * left is rounding noise, and normalising it would not give an orthogonal row. Replace
         * it by a coordinate direction orthogonal to the earlier rows, so P_hat keeps r
         * orthonormal rows and a warm-started Q never gets stuck at zero. The choice depends only
         * on the data, so every worker makes the same one. At least one of the len coordinates
         * keeps a residual of sqrt((len - i) / len) > 0 while i < len. */
        memset(ri, 0, len * sizeof *ri);
        for (size_t t = 0; t < len && i < len; t++) {
            size_t j = (i * 7919 + t) % len;
            ri[j] = 1.0f;
            d = orthogonalize(a, i, n, ri);
            if (d > 0.5f * sqrtf((float)(len - i) / (float)len)) {
                cblas_sscal(n, 1.0f / d, ri, 1);
                break;
            }
            memset(ri, 0, len * sizeof *ri);
        }
    }
}
