/*
 * thin_products.c - the PowerSGD engine's three thin products on the GPT-2-small layout, timed
 * through whatever CBLAS the binary is linked with (dev/blas/blas.sh builds it twice: Debian's
 * OpenBLAS and Debian's BLIS). Not part of the library: it measures whether another BLAS, or
 * another operand layout, would make the engine faster (issue 10's engine targets).
 *
 * Two layouts of the small factors, for each of P = M Q, Q = M^T P and G = P Q^T:
 *   engine:  Pt (r x rows) and Qt (r x cols), row-major, as src/powersgd.c keeps them
 *            (Pt = Qt . M^T, Qt = Pt . M, G = Pt^T . Qt);
 *   tall:    P (rows x r) and Q (cols x r), row-major (P = M . Q, Q = M^T . P, G = P . Q^T).
 * Each product is timed over all 48 matrices in a row (340 MB, so M comes from memory every
 * time, as in a training step), the median of --reps repetitions. The two layouts' results are
 * compared, so a figure is never of a product that computes something else.
 *
 * Usage: thin_products [--reps N] [RANK ...]   (default: 5 repetitions, ranks 4 8 16 32)
 */
#define _POSIX_C_SOURCE 200809L
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LAYERS 12
#define SHAPES 4
static const int shape[SHAPES][2] = {{768, 2304}, {768, 768}, {768, 3072}, {3072, 768}};

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec * 1e-6;
}

static int cmp(const void* a, const void* b)
{
    double x = *(const double*)a, y = *(const double*)b;
    return (x > y) - (x < y);
}

static double median(double* v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* One product over every matrix of the layout, the factors of matrix k at fac[k] (rows + cols) x
 * r, row-major: the first rows x r (or r x rows) floats are the left factor, then the right. */
enum product { P_ENGINE, P_TALL, Q_ENGINE, Q_TALL, G_ENGINE, G_TALL, PRODUCTS };
static const char* const product_name[PRODUCTS] = {"P engine", "P tall",   "Q engine",
                                                   "Q tall",   "G engine", "G tall"};

static void run(enum product p, float* const* mat, float* const* fac, float* const* out, int r)
{
    for (int l = 0; l < LAYERS; l++)
        for (int k = 0; k < SHAPES; k++) {
            const int m = shape[k][0], n = shape[k][1];
            float* M = mat[k] + (size_t)l * m * n;
            const float *left = fac[k], *right = fac[k] + (size_t)m * r;
            float* o = out[k];
            switch (p) {
            case P_ENGINE: /* Pt (r x m) = Qt (r x n) . M^T */
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, r, m, n, 1.0f, right, n, M, n,
                            0.0f, o, m);
                break;
            case P_TALL: /* P (m x r) = M . Q (n x r) */
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, r, n, 1.0f, M, n, right,
                            r, 0.0f, o, r);
                break;
            case Q_ENGINE: /* Qt (r x n) = Pt (r x m) . M */
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, r, n, m, 1.0f, left, m, M, n,
                            0.0f, o, n);
                break;
            case Q_TALL: /* Q (n x r) = M^T . P (m x r) */
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n, r, m, 1.0f, M, n, left, r,
                            0.0f, o, r);
                break;
            case G_ENGINE: /* G (m x n) = Pt^T . Qt */
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, m, n, r, 1.0f, left, m, right,
                            n, 0.0f, M, n);
                break;
            case G_TALL: /* G (m x n) = P . Q^T */
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, r, 1.0f, left, r, right,
                            r, 0.0f, M, n);
                break;
            default:
                break;
            }
        }
}

/* a (rows x cols, row-major) into b (cols x rows): the other layout's factor */
static void transpose(const float* a, int rows, int cols, float* b)
{
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < cols; j++)
            b[(size_t)j * rows + i] = a[(size_t)i * cols + j];
}

/* The largest |difference| between the layouts' P, Q and G on layer 0, over the largest entry. */
static double layouts_agree(float* const* mat, int r)
{
    double worst = 0.0;
    for (int k = 0; k < SHAPES; k++) {
        const int m = shape[k][0], n = shape[k][1];
        const size_t mn = (size_t)m * n, f = (size_t)(m + n) * r;
        float *eng = malloc(f * sizeof *eng), *tall = malloc(f * sizeof *tall);
        float *o1 = malloc(mn * sizeof *o1), *o2 = malloc(mn * sizeof *o2);
        float* t = malloc(f * sizeof *t);
        if (!eng || !tall || !o1 || !o2 || !t) {
            fprintf(stderr, "thin_products: out of memory\n");
            exit(1);
        }
        for (size_t i = 0; i < f; i++)
            eng[i] = (float)sin(0.37 * (double)i + k);
        transpose(eng, r, m, tall);                                 /* Pt -> P */
        transpose(eng + (size_t)m * r, r, n, tall + (size_t)m * r); /* Qt -> Q */
        const float* M = mat[k];
        double big = 0.0, diff = 0.0;
        /* P */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, r, m, n, 1.0f, eng + (size_t)m * r, n,
                    M, n, 0.0f, o1, m);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, r, n, 1.0f, M, n,
                    tall + (size_t)m * r, r, 0.0f, o2, r);
        transpose(o2, m, r, t);
        for (size_t i = 0; i < (size_t)m * r; i++) {
            big = fmax(big, fabs(o1[i]));
            diff = fmax(diff, fabs(o1[i] - t[i]));
        }
        /* Q */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, r, n, m, 1.0f, eng, m, M, n, 0.0f,
                    o1, n);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n, r, m, 1.0f, M, n, tall, r, 0.0f, o2,
                    r);
        transpose(o2, n, r, t);
        for (size_t i = 0; i < (size_t)n * r; i++) {
            big = fmax(big, fabs(o1[i]));
            diff = fmax(diff, fabs(o1[i] - t[i]));
        }
        /* G */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, m, n, r, 1.0f, eng, m,
                    eng + (size_t)m * r, n, 0.0f, o1, n);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, r, 1.0f, tall, r,
                    tall + (size_t)m * r, r, 0.0f, o2, n);
        for (size_t i = 0; i < mn; i++) {
            big = fmax(big, fabs(o1[i]));
            diff = fmax(diff, fabs(o1[i] - o2[i]));
        }
        worst = fmax(worst, big > 0 ? diff / big : diff);
        free(eng), free(tall), free(o1), free(o2), free(t);
    }
    return worst;
}

int main(int argc, char** argv)
{
    int reps = 5, ranks[16], nr = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            printf("usage: thin_products [--reps N] [RANK ...]\n"
                   "  Times the PowerSGD engine's products P = M Q, Q = M^T P, G = P Q^T on the\n"
                   "  GPT-2-small layout in two layouts of the factors, through the linked CBLAS.\n"
                   "  --reps N  repetitions per figure, the median reported (default 5)\n"
                   "  RANK      ranks to time (default 4 8 16 32)\n");
            return 0;
        }
        char* end;
        if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc) {
            long v = strtol(argv[++i], &end, 10);
            if (*end || v < 1 || v > 1000) {
                fprintf(stderr, "thin_products: --reps %s: expected 1 to 1000\n", argv[i]);
                return 2;
            }
            reps = (int)v;
            continue;
        }
        long v = strtol(argv[i], &end, 10);
        if (*end || v < 1 || v > 768 || nr == 16) {
            fprintf(stderr, "thin_products: %s: expected a rank from 1 to 768 (at most 16)\n",
                    argv[i]);
            return 2;
        }
        ranks[nr++] = (int)v;
    }
    if (nr == 0) {
        static const int def[] = {4, 8, 16, 32};
        for (nr = 0; nr < 4; nr++)
            ranks[nr] = def[nr];
    }
    int rmax = 0;
    for (int i = 0; i < nr; i++)
        rmax = ranks[i] > rmax ? ranks[i] : rmax;

    float *mat[SHAPES], *fac[SHAPES], *out[SHAPES];
    for (int k = 0; k < SHAPES; k++) {
        const size_t m = (size_t)shape[k][0], n = (size_t)shape[k][1];
        mat[k] = malloc(LAYERS * m * n * sizeof(float));
        fac[k] = malloc((m + n) * (size_t)rmax * sizeof(float));
        out[k] = malloc((m > n ? m : n) * (size_t)rmax * sizeof(float));
        if (!mat[k] || !fac[k] || !out[k]) {
            fprintf(stderr, "thin_products: out of memory\n");
            return 1;
        }
        /* every page touched before timing (first-touch faults are slow here) */
        for (size_t i = 0; i < LAYERS * m * n; i++)
            mat[k][i] = (float)((double)((i * 2654435761u) % 1000003u) / 1000003.0 - 0.5);
        for (size_t i = 0; i < (m + n) * (size_t)rmax; i++)
            fac[k][i] = (float)(1.0 / (double)(i % 97 + 1));
        memset(out[k], 0, (m > n ? m : n) * (size_t)rmax * sizeof(float));
    }
    double* t = malloc((size_t)reps * sizeof *t);
    if (t == NULL) return 1;
    printf("| rank |");
    for (int p = 0; p < PRODUCTS; p++)
        printf(" %s ms |", product_name[p]);
    printf(" engine layout, all three | the faster of each | layouts agree to |\n|---|");
    for (int p = 0; p < PRODUCTS + 3; p++)
        printf("---|");
    printf("\n");
    for (int i = 0; i < nr; i++) {
        const int r = ranks[i];
        double ms[PRODUCTS];
        run(P_ENGINE, mat, fac, out, r); /* warm-up: BLAS buffers, code */
        for (int p = 0; p < PRODUCTS; p++) {
            for (int k = 0; k < reps; k++) {
                double t0 = now_ms();
                run((enum product)p, mat, fac, out, r);
                t[k] = now_ms() - t0;
            }
            ms[p] = median(t, reps);
        }
        double engine = ms[P_ENGINE] + ms[Q_ENGINE] + ms[G_ENGINE];
        double best = fmin(ms[P_ENGINE], ms[P_TALL]) + fmin(ms[Q_ENGINE], ms[Q_TALL]) +
                      fmin(ms[G_ENGINE], ms[G_TALL]);
        printf("| %d |", r);
        for (int p = 0; p < PRODUCTS; p++)
            printf(" %.1f |", ms[p]);
        printf(" %.1f | %.1f | %.1e |\n", engine, best, layouts_agree(mat, r));
        fflush(stdout);
    }
    free(t);
    for (int k = 0; k < SHAPES; k++)
        free(mat[k]), free(fac[k]), free(out[k]);
    return 0;
}
