/*
 * skinny.c - an experiment, not part of libedgc (the project's matrix math goes through CBLAS):
 * PowerSGD's three products with a thin factor (rank r of a few dozen at most), as loops:
 *   Pt = Qt M^T (r x rows),  Qt = Pt M (r x cols),  G = Pt^T Qt (rows x cols),
 * with M row-major (rows x cols) and the thin factors stored as r contiguous rows.
 *
 * Why not CBLAS: OpenBLAS packs the thin operand for every call and runs these shapes far from
 * the memory rate (P = M Q at rank 4 took 25 ms on the GPT-2-small layout, where one read of M
 * takes 9.6 ms). Each loop here reads M once, from memory, and keeps the thin factor in cache.
 *
 * Same bits on every CPU: every output is one chain of fused multiply-adds (fmaf) in a fixed
 * order, and dot products keep 16 lanes (element j in lane j % 16) whose sums are added in a
 * fixed tree. The vector width only decides how many lanes one instruction carries, so the
 * AVX-512, AVX2 and plain builds of each loop give the same floats, and so do ranks of one job
 * on different machines. The plain build's fmaf is slow where the CPU has no FMA (before 2013).
 */
#include "skinny.h"

#include <math.h>
#include <string.h>

#define LANES      16
#define RANK_BLOCK 4           /* dot products held at once per row (4 rows: 16 lane vectors) */
#define ROW_BLOCK  4           /* rows of M read together by every loop */
#define WIDE       (4 * LANES) /* columns the Qt and G loops keep in registers */

#define ALWAYS_INLINE static inline __attribute__((always_inline))

/* The fixed tree over 16 lanes: halves, then quarters, ... */
ALWAYS_INLINE float lane_sum(const float* a)
{
    float s[8];
    for (int l = 0; l < 8; l++)
        s[l] = a[l] + a[l + 8];
    for (int l = 0; l < 4; l++)
        s[l] = s[l] + s[l + 4];
    for (int l = 0; l < 2; l++)
        s[l] = s[l] + s[l + 2];
    return s[0] + s[1];
}

/* nk (<= RANK_BLOCK, a constant after inlining) dot products of each of the rows m[0..4) with
 * q[0..nk): 16 vectors of lanes at most. */
ALWAYS_INLINE void dots4(const float* const* m, const float* const* q, int nk, size_t cols,
                         float out[ROW_BLOCK][RANK_BLOCK])
{
    float a[ROW_BLOCK][RANK_BLOCK][LANES];
    for (int t = 0; t < ROW_BLOCK; t++)
        for (int k = 0; k < nk; k++)
            for (int l = 0; l < LANES; l++)
                a[t][k][l] = 0.0f;
    size_t j = 0;
    for (; j + LANES <= cols; j += LANES)
        for (int k = 0; k < nk; k++)
            for (int t = 0; t < ROW_BLOCK; t++)
                for (int l = 0; l < LANES; l++)
                    a[t][k][l] = fmaf(m[t][j + l], q[k][j + l], a[t][k][l]);
    for (int k = 0; k < nk; k++)
        for (int t = 0; t < ROW_BLOCK; t++)
            for (size_t l = 0; j + l < cols; l++)
                a[t][k][l] = fmaf(m[t][j + l], q[k][j + l], a[t][k][l]);
    for (int t = 0; t < ROW_BLOCK; t++)
        for (int k = 0; k < nk; k++)
            out[t][k] = lane_sum(a[t][k]);
}

/* The dot products of rows i .. i + n_rows (n_rows <= 4) of M with every row of Qt. */
ALWAYS_INLINE void pt_rows(const float* m0, size_t n_rows, size_t rows, size_t i, size_t cols,
                           const float* qt, size_t r, float* pt)
{
    /* missing rows of a last block repeat the first: the same chains, computed twice */
    const float* m[ROW_BLOCK];
    for (size_t t = 0; t < ROW_BLOCK; t++)
        m[t] = t < n_rows ? m0 + t * cols : m0;
    for (size_t k0 = 0; k0 < r; k0 += RANK_BLOCK) {
        const float* q[RANK_BLOCK];
        float o[ROW_BLOCK][RANK_BLOCK];
        size_t nk = r - k0 < RANK_BLOCK ? r - k0 : RANK_BLOCK;
        for (size_t k = 0; k < nk; k++)
            q[k] = qt + (k0 + k) * cols;
        /* constant block sizes, so each is unrolled and kept in registers */
        switch (nk) {
        case 4:
            dots4(m, q, 4, cols, o);
            break;
        case 3:
            dots4(m, q, 3, cols, o);
            break;
        case 2:
            dots4(m, q, 2, cols, o);
            break;
        default:
            dots4(m, q, 1, cols, o);
            break;
        }
        for (size_t k = 0; k < nk; k++)
            for (size_t t = 0; t < n_rows; t++)
                pt[(k0 + k) * rows + i + t] = o[t][k];
    }
}

ALWAYS_INLINE void pt_body(const float* m, size_t rows, size_t cols, const float* qt, size_t r,
                           float* pt)
{
    for (size_t i = 0; i < rows; i += ROW_BLOCK)
        pt_rows(m + i * cols, rows - i < ROW_BLOCK ? rows - i : ROW_BLOCK, rows, i, cols, qt, r,
                pt);
}

/* Error feedback folded into the first product: each block of 4 rows becomes M = G + E (stored
 * in E) while it is in cache, then takes its dot products from there. Returns ||M||^2: per row, 16
 * lanes of squares in a fixed tree, the rows added in order. */
ALWAYS_INLINE double pt_ef_body(float* e, const float* g, size_t rows, size_t cols, const float* qt,
                                size_t r, float* pt)
{
    double total = 0.0;
    for (size_t i = 0; i < rows; i += ROW_BLOCK) {
        size_t n_rows = rows - i < ROW_BLOCK ? rows - i : ROW_BLOCK;
        for (size_t t = 0; t < n_rows; t++) {
            float* restrict er = e + (i + t) * cols; /* the caller's e and g do not overlap */
            const float* restrict gr = g + (i + t) * cols;
            float sq[LANES] = {0};
            size_t j = 0;
            for (size_t c = 0; c < cols; c++)
                er[c] = er[c] + gr[c];
            for (; j + LANES <= cols; j += LANES)
                for (int l = 0; l < LANES; l++)
                    sq[l] = fmaf(er[j + l], er[j + l], sq[l]);
            for (size_t l = 0; j + l < cols; l++)
                sq[l] = fmaf(er[j + l], er[j + l], sq[l]);
            total += (double)lane_sum(sq);
        }
        pt_rows(e + i * cols, n_rows, rows, i, cols, qt, r, pt);
    }
    return total;
}

/* Qt[k][j] = sum over i, in row order, of Pt[k][i] M[i][j]: the chain for one output runs down
 * the rows, so it is the same whether rows are taken one or four at a time. A block of 4 rows x
 * 64 columns of M is held (in registers) while every rank's slice of Qt takes its 4 terms. */
ALWAYS_INLINE void qt_cols(const float* m, size_t rows, size_t cols, const float* pt, size_t r,
                           float* qt, size_t i, size_t j0, size_t nj, size_t n_rows)
{
    float mv[ROW_BLOCK][WIDE];
    for (size_t t = 0; t < n_rows; t++)
        memcpy(mv[t], m + (i + t) * cols + j0, nj * sizeof **mv);
    for (size_t k = 0; k < r; k++) {
        const float* p = pt + k * rows + i;
        float* q = qt + k * cols + j0;
        if (n_rows == ROW_BLOCK && nj == WIDE) {
            float p0 = p[0], p1 = p[1], p2 = p[2], p3 = p[3];
            for (int l = 0; l < WIDE; l++)
                q[l] = fmaf(p3, mv[3][l],
                            fmaf(p2, mv[2][l], fmaf(p1, mv[1][l], fmaf(p0, mv[0][l], q[l]))));
        } else {
            for (size_t l = 0; l < nj; l++) {
                float v = q[l];
                for (size_t t = 0; t < n_rows; t++)
                    v = fmaf(p[t], mv[t][l], v);
                q[l] = v;
            }
        }
    }
}

/* Rows one block at a time, each streamed into every rank's slice of Qt: fewer passes over Qt's
 * slices, which wins at low rank, where they are few and M's read dominates. */
ALWAYS_INLINE void qt_stream(const float* m, size_t rows, size_t cols, const float* pt, size_t r,
                             float* qt)
{
    size_t i = 0;
    for (; i + ROW_BLOCK <= rows; i += ROW_BLOCK) {
        const float *m0 = m + i * cols, *m1 = m0 + cols, *m2 = m1 + cols, *m3 = m2 + cols;
        for (size_t k = 0; k < r; k++) {
            const float* p = pt + k * rows + i;
            float p0 = p[0], p1 = p[1], p2 = p[2], p3 = p[3];
            float* q = qt + k * cols;
            for (size_t j = 0; j < cols; j++)
                q[j] = fmaf(p3, m3[j], fmaf(p2, m2[j], fmaf(p1, m1[j], fmaf(p0, m0[j], q[j]))));
        }
    }
    for (; i < rows; i++) {
        const float* m0 = m + i * cols;
        for (size_t k = 0; k < r; k++) {
            float p0 = pt[k * rows + i];
            float* q = qt + k * cols;
            for (size_t j = 0; j < cols; j++)
                q[j] = fmaf(p0, m0[j], q[j]);
        }
    }
}

ALWAYS_INLINE void qt_body(const float* m, size_t rows, size_t cols, const float* pt, size_t r,
                           float* qt)
{
    memset(qt, 0, r * cols * sizeof *qt);
    if (r <= 8) { /* the same chains either way, so the same bits */
        qt_stream(m, rows, cols, pt, r, qt);
        return;
    }
    for (size_t i = 0; i < rows; i += ROW_BLOCK) {
        size_t n_rows = rows - i < ROW_BLOCK ? rows - i : ROW_BLOCK;
        for (size_t j0 = 0; j0 < cols; j0 += WIDE)
            qt_cols(m, rows, cols, pt, r, qt, i, j0, cols - j0 < WIDE ? cols - j0 : WIDE, n_rows);
    }
}

/* G[i][j] = sum over k, in rank order, of Pt[k][i] Qt[k][j]. Blocks of 4 rows x 64 columns:
 * 16 vectors of sums, each pass over k reading 4 vectors of Qt. */
ALWAYS_INLINE void expand_body(const float* pt, const float* qt, size_t rows, size_t cols, size_t r,
                               float* g)
{
    size_t i = 0;
    for (; i + ROW_BLOCK <= rows; i += ROW_BLOCK) {
        size_t j0 = 0;
        for (; j0 + WIDE <= cols; j0 += WIDE) {
            float a[ROW_BLOCK][WIDE] = {{0}};
            for (size_t k = 0; k < r; k++) {
                const float* q = qt + k * cols + j0;
                const float* p = pt + k * rows + i;
                float p0 = p[0], p1 = p[1], p2 = p[2], p3 = p[3];
                for (int l = 0; l < WIDE; l++) {
                    a[0][l] = fmaf(p0, q[l], a[0][l]);
                    a[1][l] = fmaf(p1, q[l], a[1][l]);
                    a[2][l] = fmaf(p2, q[l], a[2][l]);
                    a[3][l] = fmaf(p3, q[l], a[3][l]);
                }
            }
            for (size_t t = 0; t < ROW_BLOCK; t++)
                for (int c = 0; c < WIDE; c += LANES) /* 16 at a time: faster here than 64 */
                    memcpy(g + (i + t) * cols + j0 + c, a[t] + c, LANES * sizeof *g);
        }
        for (; j0 < cols; j0 += LANES) {
            size_t nj = cols - j0 < LANES ? cols - j0 : LANES;
            float a[ROW_BLOCK][LANES] = {{0}};
            for (size_t k = 0; k < r; k++) {
                const float* q = qt + k * cols + j0;
                const float* p = pt + k * rows + i;
                for (size_t l = 0; l < nj; l++) {
                    a[0][l] = fmaf(p[0], q[l], a[0][l]);
                    a[1][l] = fmaf(p[1], q[l], a[1][l]);
                    a[2][l] = fmaf(p[2], q[l], a[2][l]);
                    a[3][l] = fmaf(p[3], q[l], a[3][l]);
                }
            }
            for (size_t t = 0; t < ROW_BLOCK; t++)
                memcpy(g + (i + t) * cols + j0, a[t], nj * sizeof *g);
        }
    }
    for (; i < rows; i++) {
        for (size_t j0 = 0; j0 < cols; j0 += LANES) {
            size_t nj = cols - j0 < LANES ? cols - j0 : LANES;
            float a[LANES];
            for (size_t l = 0; l < nj; l++) {
                float v = 0.0f;
                for (size_t k = 0; k < r; k++)
                    v = fmaf(pt[k * rows + i], qt[k * cols + j0 + l], v);
                a[l] = v;
            }
            memcpy(g + i * cols + j0, a, nj * sizeof *g);
        }
    }
}
/* Each loop built three ways; the bodies are inlined into each. */
#define SKINNY_BUILDS(isa, attr)                                                                   \
    attr static void pt_##isa(const float* m, size_t rows, size_t cols, const float* qt, size_t r, \
                              float* pt)                                                           \
    {                                                                                              \
        pt_body(m, rows, cols, qt, r, pt);                                                         \
    }                                                                                              \
    attr static double pt_ef_##isa(float* e, const float* g, size_t rows, size_t cols,             \
                                   const float* qt, size_t r, float* pt)                           \
    {                                                                                              \
        return pt_ef_body(e, g, rows, cols, qt, r, pt);                                            \
    }                                                                                              \
    attr static void qt_##isa(const float* m, size_t rows, size_t cols, const float* pt, size_t r, \
                              float* qt)                                                           \
    {                                                                                              \
        qt_body(m, rows, cols, pt, r, qt);                                                         \
    }                                                                                              \
    attr static void expand_##isa(const float* pt, const float* qt, size_t rows, size_t cols,      \
                                  size_t r, float* g)                                              \
    {                                                                                              \
        expand_body(pt, qt, rows, cols, r, g);                                                     \
    }

#if defined(__x86_64__) && defined(__GNUC__)
#ifdef __clang__
#define AVX512_TARGET "avx512f,avx512vl,fma"
#else /* gcc may otherwise keep to 256-bit vectors */
#define AVX512_TARGET "avx512f,avx512vl,fma,prefer-vector-width=512"
#endif
SKINNY_BUILDS(avx512, __attribute__((target(AVX512_TARGET))))
SKINNY_BUILDS(avx2, __attribute__((target("avx2,fma"))))
#endif
SKINNY_BUILDS(base, )

skinny_isa skinny_isa_best(void)
{
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
        __builtin_cpu_supports("fma"))
        return SKINNY_ISA_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return SKINNY_ISA_AVX2;
#endif
    return SKINNY_ISA_BASE;
}

#if defined(__x86_64__) && defined(__GNUC__)
#define DISPATCH(isa, fn, ...)                                                                     \
    ((isa) == SKINNY_ISA_AVX512 ? fn##_avx512(__VA_ARGS__)                                         \
     : (isa) == SKINNY_ISA_AVX2 ? fn##_avx2(__VA_ARGS__)                                           \
                                : fn##_base(__VA_ARGS__))
#else
#define DISPATCH(isa, fn, ...) fn##_base(__VA_ARGS__)
#endif

void skinny_pt(skinny_isa isa, const float* m, size_t rows, size_t cols, const float* qt, size_t r,
               float* pt)
{
    DISPATCH(isa, pt, m, rows, cols, qt, r, pt);
}

double skinny_pt_ef(skinny_isa isa, float* e, const float* g, size_t rows, size_t cols,
                    const float* qt, size_t r, float* pt)
{
    return DISPATCH(isa, pt_ef, e, g, rows, cols, qt, r, pt);
}

void skinny_qt(skinny_isa isa, const float* m, size_t rows, size_t cols, const float* pt, size_t r,
               float* qt)
{
    DISPATCH(isa, qt, m, rows, cols, pt, r, qt);
}

void skinny_expand(skinny_isa isa, const float* pt, const float* qt, size_t rows, size_t cols,
                   size_t r, float* g)
{
    DISPATCH(isa, expand, pt, qt, rows, cols, r, g);
}
