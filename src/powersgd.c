/*
 * powersgd.c - the compression engine (docs/ALGORITHM.md, 3; Vogels et al. 2019, Alg. 1-2): error
 * feedback, a warm-started Q drawn from a seed shared by all workers, one power iteration per step
 * with one flat P allreduce and one flat Q allreduce for all matrices, the 1-D tensors averaged
 * densely alongside (non-blocking when the communicator can, polled between the products; in a
 * checked step they ride in P's allreduce with the non-finite flag instead, see step()).
 *
 * Storage: for a rows x cols matrix M at rank r the engine keeps Pt = P^T (r x rows) and
 * Qt = Q^T (r x cols), row-major. A column of P or Q is then a contiguous row, which is what
 * Gram-Schmidt walks, and truncating the rank is just using a prefix of Qt.
 *
 * Tiles: with error feedback each matrix is cut into tiles of whole rows for the element-wise
 * work (M = G + e, e = M - G_hat). With OpenBLAS on one thread a tile's products are done while
 * it is in cache: M = G + e, then that tile's rows of P = M Q; later the tile of G_hat = P Q^T,
 * then e = M - G_hat. That saves two reads of a gradient-sized buffer a step (M for P, G_hat for
 * e; docs/ALGORITHM.md, 3). A row of P depends on that row of M alone, and a row of G_hat on
 * that row of P, so tiling keeps every sum's terms (OpenBLAS may round them otherwise). Without
 * error feedback only G_hat is written a tile at a time (see tile_g_hat).
 *
 * P = M Q without packing: OpenBLAS's AVX-512 cores (SkylakeX and its successors) multiply a small
 * row-major A . B straight from memory, without the packing of a full GEMM. With OpenBLAS on one
 * thread the engine then computes P a few rows at a time as M_rows . Q (Q transposed into q_tall
 * once a step), which takes about 0.5-0.65x the time of the packed Qt . M^T (docs/ALGORITHM.md, 3).
 * The chunks are cut within each tile, whichever pass computes P, so both give the same bits.
 *
 * Threads: the tiles are shared out over `threads` OpenMP threads, and so are the matrices (the
 * other products) when OpenBLAS runs single-threaded; else the matrices are taken in order and
 * their products left to OpenBLAS's threads. The tiles' partial norms are added in tile order,
 * so no result depends on the engine's count (OpenBLAS's own thread count does change its
 * products' rounding).
 *
 * Not here: deciding the rank (controller.c), non-finite checks and agreement (the reducer).
 */
#include "edgc_internal.h"

#include <cblas.h>
#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

struct edgc_powersgd {
    edgc__plan_layout pl;
    int rank;           /* requested rank; matrix k uses min(cap_k, rank) */
    int rank_alloc;     /* P and Q buffers hold every matrix at this rank */
    int error_feedback; /* config */
    int orthonormalize_q;
    float eps;
    int q_ready; /* Q has been drawn (first step) */
    edgc__rng rng;
    float* err;     /* error memory, matrices back to back in pl.mats order */
    size_t* err_at; /* per matrix, offset into err */
    float* p;       /* flat Pt buffer, then the 1-D tensors packed and a flag (checked step) */
    float* q;       /* flat Qt buffer, persistent: the warm start */
    float* q_kept;  /* Qt as it was when a checked step began, to put back if it is skipped */
    float* q_tall;  /* this step's Q (cols x r per matrix, at q_at) for the unpacked P = M Q */
    double m2, e2;  /* last step: ||M||^2 and ||M - G_hat||^2 over the matrices (with EF) */
    int threads;    /* for the element-wise passes and the matrices, resolved from the config */
    int m_in_grad;  /* this step builds M in the gradient buffer (see step), not the error memory */
    float** mat_g;  /* this step: where each matrix's gradient begins (it may be in pieces) */
    float** dense_g; /* and each 1-D tensor's */
    int fuse_tiles;  /* this step does a tile's products with its element-wise work (OpenBLAS on
                     * one thread: a tile is too small to share out over OpenBLAS's threads) */
    int may_fuse;    /* 1 unless edgc__powersgd_set_fusion turned it off (a bench baseline) */
    int direct_core; /* OpenBLAS's core multiplies small matrices without packing them */
    int may_direct;  /* -1 decide (the default), 0 never, 1 always (edgc__powersgd_set_direct) */
    int direct_p;    /* this step computes P = M Q in unpacked chunks of rows */
    size_t *p_at, *q_at; /* per matrix, offsets into p and q at the current rank (set_rank_to) */
    struct ef_tile {
        size_t k, row, rows; /* matrix, first row, rows */
    } * tiles;               /* every matrix cut into tiles of about EF_TILE elements, in order */
    size_t n_tiles;
    double* part; /* partial norm of each tile */
};

/* Elements per tile (whole rows, at least one): 1 MB of floats, which stays in L2 (1 MB a core
 * here) between the element-wise pass and the product. Smaller tiles were slower: OpenBLAS packs
 * Q again for every call (rank 8: 1.4x the time at 32 KB, about even at 128 KB; ALGORITHM.md 3). */
#define EF_TILE ((size_t)262144)

/* The unpacked P = M Q: a call multiplies at most DIRECT_MNK (rows x cols x rank) and writes at
 * most DIRECT_OUT floats (a stack buffer). OpenBLAS's small-matrix kernel was 0.5-0.65x the packed
 * time at up to 0.8 M and back at the packed time from 1.5 M (ALGORITHM.md, 3). */
#define DIRECT_MNK ((size_t)1000000)
#define DIRECT_OUT ((size_t)4096)

static size_t mat_rank(const edgc__matrix* m, int rank)
{
    return m->cap < (size_t)rank ? m->cap : (size_t)rank;
}

/* Rows per tile of matrix m. */
static size_t tile_rows(const edgc__matrix* m)
{
    return m->cols >= EF_TILE ? 1 : EF_TILE / m->cols;
}

/* Elements of the flat P (use_rows) or Q buffer at `rank`. */
static size_t flat_size(const edgc__plan_layout* pl, int rank, int use_rows)
{
    size_t n = 0;
    for (size_t k = 0; k < pl->n_mats; k++) {
        const edgc__matrix* m = &pl->mats[k];
        n += (use_rows ? m->rows : m->cols) * mat_rank(m, rank);
    }
    return n;
}

/* Elements of the error memory: every matrix, back to back. */
static size_t err_size(const edgc_powersgd* ps)
{
    size_t n = 0;
    for (size_t k = 0; k < ps->pl.n_mats; k++)
        n += ps->pl.mats[k].rows * ps->pl.mats[k].cols;
    return n;
}

/* Makes `rank` the current one: matrix k's factors then start at p_at[k] and q_at[k]. */
static void set_rank_to(edgc_powersgd* ps, int rank)
{
    size_t pat = 0, qat = 0;
    for (size_t k = 0; k < ps->pl.n_mats; k++) {
        const edgc__matrix* m = &ps->pl.mats[k];
        ps->p_at[k] = pat;
        ps->q_at[k] = qat;
        pat += mat_rank(m, rank) * m->rows;
        qat += mat_rank(m, rank) * m->cols;
    }
    ps->rank = rank;
}

/* Grows P and Q to hold `rank`; keeps Q's content. */
static edgc_status reserve_rank(edgc_powersgd* ps, int rank)
{
    if (rank <= ps->rank_alloc) return EDGC_OK;
    size_t np = flat_size(&ps->pl, rank, 1), nq = flat_size(&ps->pl, rank, 0);
    float* p = realloc(ps->p, (np + ps->pl.dense_total + 1) * sizeof *p);
    if (p == NULL) return EDGC_ERR_NOMEM;
    ps->p = p;
    float* q = realloc(ps->q, (nq ? nq : 1) * sizeof *q);
    if (q == NULL) return EDGC_ERR_NOMEM;
    ps->q = q;
    float* kept = realloc(ps->q_kept, (nq ? nq : 1) * sizeof *kept);
    if (kept == NULL) return EDGC_ERR_NOMEM;
    ps->q_kept = kept;
    float* tall = realloc(ps->q_tall, (nq ? nq : 1) * sizeof *tall);
    if (tall == NULL) return EDGC_ERR_NOMEM;
    ps->q_tall = tall;
    ps->rank_alloc = rank;
    return EDGC_OK;
}

/* Whether OpenBLAS's kernels for this CPU have the unpacked small-matrix sgemm: SkylakeX and the
 * cores built on it. Elsewhere (Haswell, Zen) small calls take the packed path, and cutting P into
 * chunks was 1.0-1.2x slower. Decided by name, not timing, so every run on a machine rounds alike. */
static int blas_multiplies_unpacked(void)
{
    static const char* const cores[] = {"skylakex", "cooperlake", "sapphirerapids"};
    const char* name = openblas_get_corename();
    for (size_t i = 0; name != NULL && i < sizeof cores / sizeof cores[0]; i++) {
        size_t j = 0;
        while (cores[i][j] != '\0' && tolower((unsigned char)name[j]) == cores[i][j])
            j++;
        if (cores[i][j] == '\0' && name[j] == '\0') return 1;
    }
    return 0;
}

void edgc_powersgd_free(edgc_powersgd* ps)
{
    if (ps == NULL) return;
    edgc__layout_release(&ps->pl);
    free(ps->err);
    free(ps->err_at);
    free(ps->p);
    free(ps->q);
    free(ps->q_kept);
    free(ps->q_tall);
    free(ps->part);
    free(ps->tiles);
    free(ps->p_at);
    free(ps->q_at);
    free(ps->mat_g);
    free(ps->dense_g);
    free(ps);
}

edgc_status edgc_powersgd_create(const edgc_config* cfg, const edgc_layout* layout,
                                 edgc_powersgd** out)
{
    EDGC_RETURN_IF(out == NULL, EDGC_ERR_INVALID_ARG);
    *out = NULL;
    EDGC_FORWARD(edgc_config_check(cfg, layout, NULL, 0));
    edgc_powersgd* ps = calloc(1, sizeof *ps);
    if (ps == NULL) return EDGC_ERR_NOMEM;
    edgc_status st = edgc__layout_split(layout, &ps->pl);
    if (st != EDGC_OK) goto fail;
    ps->error_feedback = cfg->error_feedback;
    ps->orthonormalize_q = cfg->orthonormalize_q;
    ps->eps = cfg->orth_eps;
    ps->threads = edgc__threads(cfg->threads);
    ps->may_fuse = 1;
    ps->direct_core = blas_multiplies_unpacked();
    ps->may_direct = -1;
    edgc__rng_seed(&ps->rng, cfg->seed);

    st = EDGC_ERR_NOMEM;
    size_t n_mats = ps->pl.n_mats, n_err = 0, n_tiles = 0;
    ps->err_at = calloc(n_mats ? n_mats : 1, sizeof *ps->err_at);
    ps->p_at = calloc(n_mats ? n_mats : 1, sizeof *ps->p_at);
    ps->q_at = calloc(n_mats ? n_mats : 1, sizeof *ps->q_at);
    ps->mat_g = calloc(n_mats ? n_mats : 1, sizeof *ps->mat_g);
    ps->dense_g = calloc(ps->pl.n_dense ? ps->pl.n_dense : 1, sizeof *ps->dense_g);
    if (ps->err_at == NULL || ps->p_at == NULL || ps->q_at == NULL || ps->mat_g == NULL ||
        ps->dense_g == NULL)
        goto fail;
    for (size_t k = 0; k < n_mats; k++) {
        const edgc__matrix* m = &ps->pl.mats[k];
        ps->err_at[k] = n_err;
        n_err += m->rows * m->cols;
        n_tiles += (m->rows + tile_rows(m) - 1) / tile_rows(m);
    }
    ps->tiles = malloc((n_tiles ? n_tiles : 1) * sizeof *ps->tiles);
    ps->part = malloc((n_tiles ? n_tiles : 1) * sizeof *ps->part);
    if (ps->tiles == NULL || ps->part == NULL) goto fail;
    for (size_t k = 0; k < n_mats; k++) {
        const edgc__matrix* m = &ps->pl.mats[k];
        const size_t step = tile_rows(m);
        for (size_t row = 0; row < m->rows; row += step)
            ps->tiles[ps->n_tiles++] =
                (struct ef_tile){k, row, m->rows - row < step ? m->rows - row : step};
    }
    if (ps->error_feedback) {
        ps->err = calloc(n_err ? n_err : 1, sizeof *ps->err);
        if (ps->err == NULL) goto fail;
    }
    st = reserve_rank(ps, cfg->rank);
    if (st != EDGC_OK) goto fail;
    set_rank_to(ps, cfg->rank);
    *out = ps;
    return EDGC_OK;
fail:
    edgc_powersgd_free(ps);
    return st;
}

/* Draws rows [from, to) of every matrix's Qt from the shared RNG, in matrix order, then
 * orthonormalises each Qt. Only called at the same point on every worker. */
static void draw_q_rows(edgc_powersgd* ps, int from)
{
    for (size_t k = 0; k < ps->pl.n_mats; k++) {
        const edgc__matrix* m = &ps->pl.mats[k];
        float* qt = ps->q + ps->q_at[k];
        size_t r = mat_rank(m, ps->rank), r0 = mat_rank(m, from);
        if (r > r0) edgc__rng_gaussian(&ps->rng, qt + r0 * m->cols, (r - r0) * m->cols);
        edgc__orthonormalize_rows(qt, r, m->cols, ps->eps);
    }
}

edgc_status edgc_powersgd_set_rank(edgc_powersgd* ps, int rank)
{
    EDGC_RETURN_IF(ps == NULL || rank < 1, EDGC_ERR_INVALID_ARG);
    if (rank == ps->rank) return EDGC_OK;
    EDGC_FORWARD(reserve_rank(ps, rank));
    int old = ps->rank;
    if (!ps->q_ready) {
        set_rank_to(ps, rank); /* Q is drawn at the first step, at whatever rank is set then */
        return EDGC_OK;
    }
    /* Re-pack Qt in place. Each matrix keeps its first min(old, new) rows (the warm start);
     * segments move towards the front when shrinking and towards the back when growing, so
     * walking in that direction never overwrites data not yet moved. */
    size_t n = ps->pl.n_mats;
    size_t old_at = flat_size(&ps->pl, old, 0), new_at = flat_size(&ps->pl, rank, 0);
    if (rank < old) {
        old_at = new_at = 0;
        for (size_t k = 0; k < n; k++) {
            const edgc__matrix* m = &ps->pl.mats[k];
            memmove(ps->q + new_at, ps->q + old_at, mat_rank(m, rank) * m->cols * sizeof(float));
            old_at += mat_rank(m, old) * m->cols;
            new_at += mat_rank(m, rank) * m->cols;
        }
    } else {
        for (size_t k = n; k-- > 0;) {
            const edgc__matrix* m = &ps->pl.mats[k];
            old_at -= mat_rank(m, old) * m->cols;
            new_at -= mat_rank(m, rank) * m->cols;
            memmove(ps->q + new_at, ps->q + old_at, mat_rank(m, old) * m->cols * sizeof(float));
        }
    }
    set_rank_to(ps, rank);
    if (rank > old) draw_q_rows(ps, old);
    return EDGC_OK;
}

/* e += sign * g, returning ||e||^2 afterwards. Eight independent partial sums, so the reduction
 * does not serialise on one floating-point add chain and the loop stays memory-bound. */
static double axpy_norm2(float* restrict e, const float* restrict g, size_t n, float sign)
{
    float acc[8] = {0};
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) {
            float v = e[i + j] + sign * g[i + j];
            e[i + j] = v;
            acc[j] += v * v;
        }
    double total = 0.0;
    for (; i < n; i++) {
        e[i] += sign * g[i];
        total += (double)e[i] * e[i];
    }
    for (int j = 0; j < 8; j++)
        total += acc[j];
    return total;
}

/* The last pass of a step that built M in the gradient: G_hat is in the error memory, M in the
 * gradient; they trade places as g = G_hat, e = M - G_hat. Returns ||e||^2 with the same lanes and
 * order as axpy_norm2, so both layouts give the same bits. */
static double swap_norm2(float* restrict g, float* restrict e, size_t n)
{
    float acc[8] = {0};
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) {
            float m = g[i + j], gh = e[i + j];
            float v = m + -1.0f * gh;
            g[i + j] = gh;
            e[i + j] = v;
            acc[j] += v * v;
        }
    double total = 0.0;
    for (; i < n; i++) {
        float m = g[i], gh = e[i];
        g[i] = gh;
        e[i] = m + -1.0f * gh;
        total += (double)e[i] * e[i];
    }
    for (int j = 0; j < 8; j++)
        total += acc[j];
    return total;
}

/* Polls the pending dense allreduce, so it progresses during the products (Open MPI has no
 * asynchronous progress). */
static edgc_status poll(const edgc_comm* comm, void** req)
{
    if (*req == NULL) return EDGC_OK;
    int done = 0;
    EDGC_FORWARD(comm->test(comm->ctx, *req, &done));
    if (done) *req = NULL;
    return EDGC_OK;
}

/* Packs the 1-D tensors into buf (pl.dense_total floats). */
static void dense_pack(const edgc_powersgd* ps, float* buf)
{
    const edgc__plan_layout* pl = &ps->pl;
    size_t at = 0;
    for (size_t i = 0; i < pl->n_dense; i++) {
        memcpy(buf + at, ps->dense_g[i], pl->dense[i].count * sizeof(float));
        at += pl->dense[i].count;
    }
}

/* Writes the summed 1-D tensors in buf back into the gradient, averaged. */
static void dense_unpack(const edgc_powersgd* ps, const float* buf, int size)
{
    const edgc__plan_layout* pl = &ps->pl;
    const float inv = 1.0f / (float)size;
    size_t at = 0;
    for (size_t i = 0; i < pl->n_dense; i++) {
        float* dst = ps->dense_g[i];
        for (size_t j = 0; j < pl->dense[i].count; j++)
            dst[j] = buf[at + j] * inv;
        at += pl->dense[i].count;
    }
}

/* Packs the 1-D tensors into buf and starts their allreduce (non-blocking when the communicator
 * can). buf lies past P in the same buffer, so nothing else in the step touches it meanwhile. */
static edgc_status dense_start(edgc_powersgd* ps, const edgc_comm* comm, float* buf, void** req)
{
    const size_t at = ps->pl.dense_total;
    dense_pack(ps, buf);
    *req = NULL;
    if (at == 0) return EDGC_OK;
    int async = comm->iallreduce_sum_f32 != NULL && comm->test != NULL && comm->wait != NULL;
    if (async) return comm->iallreduce_sum_f32(comm->ctx, buf, at, req);
    return comm->allreduce_sum_f32(comm->ctx, buf, at);
}

static int comm_ok(const edgc_comm* c)
{
    return c != NULL && c->size >= 1 && c->rank >= 0 && c->rank < c->size &&
           c->allreduce_sum_f32 != NULL;
}

/* The per-matrix work of a step, one matrix k at a time. M is the error memory with error
 * feedback (it holds G + e by then), unless the step builds M in the gradient (m_in_grad), or
 * the gradient itself without error feedback. */
typedef void (*matrix_fn)(edgc_powersgd* ps, size_t k);

static const float* matrix_m(const edgc_powersgd* ps, size_t k)
{
    return ps->m_in_grad ? ps->mat_g[k] : ps->err + ps->err_at[k];
}

/* Rows of P per unpacked call for matrix m at rank r; 0 when not even one fits (the packed
 * product then). */
static size_t direct_rows(const edgc__matrix* m, size_t r)
{
    size_t h = DIRECT_MNK / (m->cols * r);
    return h < DIRECT_OUT / r ? h : DIRECT_OUT / r;
}

/* Re-orthonormalises the warm-started Qt. */
static void orth_q(edgc_powersgd* ps, size_t k)
{
    const edgc__matrix* m = &ps->pl.mats[k];
    edgc__orthonormalize_rows(ps->q + ps->q_at[k], mat_rank(m, ps->rank), m->cols, ps->eps);
}

/* Rows [row, row + n) of P = M Q, i.e. those columns of Pt (r x rows) = Qt (r x cols) . M^T, from
 * the matrix's rows m_rows (M's row `row` onwards). */
static void rows_of_p(edgc_powersgd* ps, size_t k, size_t row, size_t n, const float* m_rows)
{
    const edgc__matrix* m = &ps->pl.mats[k];
    const size_t r = mat_rank(m, ps->rank), cols = m->cols;
    const size_t most = direct_rows(m, r);
    float* pt = ps->p + ps->p_at[k] + row;
    if (!ps->direct_p || most == 0) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)r, (int)n, (int)cols, 1.0f,
                    ps->q + ps->q_at[k], (int)cols, m_rows, (int)cols, 0.0f, pt, (int)m->rows);
        return;
    }
    /* n rows in equal chunks of at most `most` (the same cut for the same n, in either pass) */
    const size_t chunks = (n + most - 1) / most, h = (n + chunks - 1) / chunks;
    float out[DIRECT_OUT];
    for (size_t i = 0; i < n; i += h) {
        const size_t hi = n - i < h ? n - i : h;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)hi, (int)r, (int)cols, 1.0f,
                    m_rows + i * cols, (int)cols, ps->q_tall + ps->q_at[k], (int)r, 0.0f, out,
                    (int)r);
        for (size_t a = 0; a < hi; a++)
            for (size_t j = 0; j < r; j++)
                pt[j * m->rows + i + a] = out[a * r + j];
    }
}

/* Rows [row, row + n) of G_hat = P_hat Q^T = Pt^T . Qt, written to out (n x cols). */
static void rows_of_g_hat(edgc_powersgd* ps, size_t k, size_t row, size_t n, float* out)
{
    const edgc__matrix* m = &ps->pl.mats[k];
    int r = (int)mat_rank(m, ps->rank), cols = (int)m->cols;
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)n, cols, r, 1.0f,
                ps->p + ps->p_at[k] + row, (int)m->rows, ps->q + ps->q_at[k], cols, 0.0f, out,
                cols);
}

/* Q_tall = Qt^T, for the unpacked P = M Q. */
static void tall_q(edgc_powersgd* ps, size_t k)
{
    const edgc__matrix* m = &ps->pl.mats[k];
    const size_t r = mat_rank(m, ps->rank);
    const float* qt = ps->q + ps->q_at[k];
    float* q = ps->q_tall + ps->q_at[k];
    for (size_t j = 0; j < r; j++)
        for (size_t c = 0; c < m->cols; c++)
            q[c * r + j] = qt[j * m->cols + c];
}

static void orth_tall_q(edgc_powersgd* ps, size_t k)
{
    orth_q(ps, k);
    tall_q(ps, k);
}

/* P = M Q for the whole matrix: one call, or unpacked tile by tile (the tiles' cut, see top). */
static void product_p(edgc_powersgd* ps, size_t k)
{
    const edgc__matrix* m = &ps->pl.mats[k];
    const float* mk = matrix_m(ps, k);
    if (!ps->direct_p) {
        rows_of_p(ps, k, 0, m->rows, mk);
        return;
    }
    const size_t step = tile_rows(m);
    for (size_t row = 0; row < m->rows; row += step)
        rows_of_p(ps, k, row, m->rows - row < step ? m->rows - row : step, mk + row * m->cols);
}

/* P_hat = orthonormalised P; Q = M^T P_hat, i.e. Qt (r x cols) = Pt . M. */
static void product_q(edgc_powersgd* ps, size_t k)
{
    const edgc__matrix* m = &ps->pl.mats[k];
    int r = (int)mat_rank(m, ps->rank), rows = (int)m->rows, cols = (int)m->cols;
    edgc__orthonormalize_rows(ps->p + ps->p_at[k], (size_t)r, m->rows, ps->eps);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, r, cols, rows, 1.0f, ps->p + ps->p_at[k],
                rows, matrix_m(ps, k), cols, 0.0f, ps->q + ps->q_at[k], cols);
}

/* Where matrix k's G_hat goes: over the gradient; over the error memory when M is in the gradient
 * with error feedback (tile_e then swaps them). */
static float* g_hat_out(const edgc_powersgd* ps, size_t k)
{
    return ps->error_feedback && ps->m_in_grad ? ps->err + ps->err_at[k] : ps->mat_g[k];
}

/* G_hat for the whole matrix. */
static void decompress(edgc_powersgd* ps, size_t k)
{
    rows_of_g_hat(ps, k, 0, ps->pl.mats[k].rows, g_hat_out(ps, k));
}

/* Runs fn on every matrix. With the engine's threads and a single-threaded OpenBLAS, the
 * matrices are shared out dynamically (each is still one BLAS call, so the bits do not change)
 * and the pending dense allreduce is polled once after. Otherwise in order, polled between
 * matrices: OpenBLAS's own threads do the products (called from several threads at once, its
 * pool and OpenMP's fight over the cores: 1.2-2.0x slower, measured). */
static edgc_status each_matrix(edgc_powersgd* ps, matrix_fn fn, const edgc_comm* comm, void** req)
{
    const size_t n = ps->pl.n_mats;
#ifdef _OPENMP
    if (ps->threads > 1 && n > 1 && openblas_get_num_threads() == 1) {
        const int threads = ps->threads;
#pragma omp parallel for num_threads(threads) schedule(dynamic)
        for (size_t k = 0; k < n; k++)
            fn(ps, k);
        return poll(comm, req);
    }
#endif
    for (size_t k = 0; k < n; k++) {
        fn(ps, k);
        EDGC_FORWARD(poll(comm, req));
    }
    return EDGC_OK;
}

/* Tile t's elements in the gradient (*g) and the error memory (*e); returns how many. */
static size_t tile_at(const edgc_powersgd* ps, const struct ef_tile* t, float** g, float** e)
{
    const edgc__matrix* m = &ps->pl.mats[t->k];
    const size_t at = t->row * m->cols;
    *g = ps->mat_g[t->k] + at;
    *e = ps->err + ps->err_at[t->k] + at;
    return t->rows * m->cols;
}

/* With error feedback, one tile of M = G + e (in the gradient or the error memory, see step).
 * Returns the tile's ||M||^2. */
static double tile_m(edgc_powersgd* ps, const struct ef_tile* t)
{
    float *g, *e;
    const size_t len = tile_at(ps, t, &g, &e);
    return ps->m_in_grad ? axpy_norm2(g, e, len, 1.0f) : axpy_norm2(e, g, len, 1.0f);
}

/* tile_m, then the tile's rows of P from M while it is in cache. */
static double tile_m_p(edgc_powersgd* ps, const struct ef_tile* t)
{
    double m2 = tile_m(ps, t);
    const size_t at = t->row * ps->pl.mats[t->k].cols;
    rows_of_p(ps, t->k, t->row, t->rows, matrix_m(ps, t->k) + at);
    return m2;
}

/* With error feedback, one tile whose G_hat is in whichever of the gradient and the error memory
 * does not hold M: e = M - G_hat, and g = G_hat. Returns the tile's ||e||^2. */
static double tile_e(edgc_powersgd* ps, const struct ef_tile* t)
{
    float *g, *e;
    const size_t len = tile_at(ps, t, &g, &e);
    return ps->m_in_grad ? swap_norm2(g, e, len) : axpy_norm2(e, g, len, -1.0f);
}

/* One tile of G_hat (without error feedback: over the gradient). Asked for a whole matrix at
 * once, OpenBLAS first clears the output (beta = 0) in a pass of its own over memory, then
 * multiplies into it; a tile's clearing stays in cache. */
static double tile_g_hat(edgc_powersgd* ps, const struct ef_tile* t)
{
    const size_t at = t->row * ps->pl.mats[t->k].cols;
    rows_of_g_hat(ps, t->k, t->row, t->rows, g_hat_out(ps, t->k) + at);
    return 0.0;
}

/* The tile's rows of G_hat, then tile_e while they are in cache. */
static double tile_g_hat_e(edgc_powersgd* ps, const struct ef_tile* t)
{
    tile_g_hat(ps, t);
    return tile_e(ps, t);
}

typedef double (*tile_fn)(edgc_powersgd* ps, const struct ef_tile* t);

/* Runs fn on every tile, shared out over the engine's threads (a fn with products runs only when
 * OpenBLAS is on one thread, see fuse_tiles), else in order and polled between matrices; *norm2
 * receives the tiles' results added in tile order. */
static edgc_status each_tile(edgc_powersgd* ps, tile_fn fn, const edgc_comm* comm, void** req,
                             double* norm2)
{
    const size_t n = ps->n_tiles;
    const struct ef_tile* tiles = ps->tiles;
    double* part = ps->part;
    edgc_status st = EDGC_OK;
#ifdef _OPENMP
    if (ps->threads > 1 && n > 1) {
        const int threads = ps->threads;
#pragma omp parallel for num_threads(threads) schedule(dynamic, 4)
        for (size_t c = 0; c < n; c++)
            part[c] = fn(ps, &tiles[c]);
        st = poll(comm, req);
    } else
#endif
    {
        for (size_t c = 0; c < n && st == EDGC_OK; c++) {
            part[c] = fn(ps, &tiles[c]);
            if (c + 1 == n || tiles[c + 1].k != tiles[c].k) st = poll(comm, req);
        }
    }
    double total = 0.0;
    for (size_t c = 0; c < n && st == EDGC_OK; c++)
        total += part[c];
    *norm2 = total;
    return st;
}

/* The first half of a step, up to P = M Q for every matrix: M = G + e (with error feedback;
 * m2 receives ||M||^2), Q drawn at the first step or re-orthonormalised. */
static edgc_status compress_p(edgc_powersgd* ps, const edgc_comm* comm, void** req, double* m2)
{
    edgc_status st = EDGC_OK;
    const int orth = ps->q_ready && ps->orthonormalize_q;
    if (!ps->q_ready) {
        draw_q_rows(ps, 0);
        ps->q_ready = 1;
    }
    if (orth || ps->direct_p)
        st = each_matrix(ps, !ps->direct_p ? orth_q : orth ? orth_tall_q : tall_q, comm, req);
    if (st != EDGC_OK) return st;
    if (ps->error_feedback && ps->fuse_tiles) return each_tile(ps, tile_m_p, comm, req, m2);
    if (ps->error_feedback) st = each_tile(ps, tile_m, comm, req, m2);
    return st == EDGC_OK ? each_matrix(ps, product_p, comm, req) : st;
}

/* One step. checked makes it a checked step (edgc__powersgd_step_checked): the non-finite flag
 * and the 1-D tensors ride in P's allreduce, two collectives a step instead of three. The flag
 * then arrives after P is computed, so nothing the step must leave unchanged may have moved by
 * then: M is built in the gradient buffer rather than over the error memory (the last pass swaps
 * G_hat and e into place; same bits as the other layout), and Q and the RNG are kept to be put
 * back. bad_here: 1, this worker's gradient is not finite and it computes nothing; 0, it is;
 * -1, not known yet: what the step computes anyway answers it for free, since ||M||^2 (with error
 * feedback) or P = G Q (without) is finite exactly when every M is (or, rarely, huge finite values
 * overflowed it: then a scan decides). */
static edgc_status step(edgc_powersgd* ps, const edgc__grad* grad, const edgc_comm* comm,
                        int checked, int bad_here, int* bad_any, edgc_step_bytes* bytes)
{
    EDGC_RETURN_IF(ps == NULL || grad == NULL || !comm_ok(comm), EDGC_ERR_INVALID_ARG);
    const edgc__plan_layout* pl = &ps->pl;
    for (size_t k = 0; k < pl->n_mats; k++)
        ps->mat_g[k] = edgc__grad_at(grad, pl->mats[k].offset);
    for (size_t i = 0; i < pl->n_dense; i++)
        ps->dense_g[i] = edgc__grad_at(grad, pl->dense[i].offset);
    const size_t np = flat_size(pl, ps->rank, 1), nq = flat_size(pl, ps->rank, 0);
    ps->m_in_grad = !ps->error_feedback || checked;
    ps->fuse_tiles = ps->may_fuse && openblas_get_num_threads() == 1;
    /* with OpenBLAS's threads, small calls take the packed path again (and a thread each) */
    ps->direct_p =
        ps->may_direct < 0 ? ps->direct_core && openblas_get_num_threads() == 1 : ps->may_direct;
    void* req = NULL;
    edgc_status st = EDGC_OK;
    double m2 = 0.0, e2 = 0.0;

    if (checked) {
        const size_t n = np + pl->dense_total + 1;
        const edgc__rng rng = ps->rng;
        const int q_ready = ps->q_ready;
        if (q_ready) memcpy(ps->q_kept, ps->q, nq * sizeof(float));
        if (bad_here > 0) {
            memset(ps->p, 0, (n - 1) * sizeof(float));
        } else {
            /* cannot fail: with no request pending nothing in it communicates */
            EDGC_FORWARD(compress_p(ps, comm, &req, &m2));
            dense_pack(ps, ps->p + np);
            if (bad_here < 0) {
                /* without error feedback P = G Q tells: a NaN or Inf in a row of G reaches that
                 * whole row of P, whatever Q holds (Inf times 0 is NaN) */
                const int suspect =
                    ps->error_feedback ? !isfinite(m2) : edgc__any_nonfinite(ps->p, np, 1);
                bad_here = (suspect && edgc__grad_any_nonfinite(grad, ps->threads)) ||
                           edgc__any_nonfinite(ps->p + np, pl->dense_total, 1);
            }
        }
        ps->p[n - 1] = bad_here ? 1.0f : 0.0f;
        st = comm->allreduce_sum_f32(comm->ctx, ps->p, n);
        *bad_any = st != EDGC_OK || ps->p[n - 1] == 0.0f ? 0 : bad_here ? 2 : 1;
        if (st != EDGC_OK || *bad_any) {
            ps->rng = rng; /* nothing the step must keep has changed (see above) */
            ps->q_ready = q_ready;
            if (q_ready) memcpy(ps->q, ps->q_kept, nq * sizeof(float));
            return st;
        }
    } else {
        EDGC_FORWARD(dense_start(ps, comm, ps->p + np, &req));
        st = compress_p(ps, comm, &req, &m2);
        if (st == EDGC_OK && np > 0) st = comm->allreduce_sum_f32(comm->ctx, ps->p, np);
    }
    if (st == EDGC_OK) st = each_matrix(ps, product_q, comm, &req);
    if (st == EDGC_OK && nq > 0) st = comm->allreduce_sum_f32(comm->ctx, ps->q, nq);
    if (st == EDGC_OK) cblas_sscal((int)nq, 1.0f / (float)comm->size, ps->q, 1);
    if (st == EDGC_OK && ps->fuse_tiles) {
        st = each_tile(ps, ps->error_feedback ? tile_g_hat_e : tile_g_hat, comm, &req, &e2);
    } else if (st == EDGC_OK) {
        st = each_matrix(ps, decompress, comm, &req);
        if (st == EDGC_OK && ps->error_feedback) st = each_tile(ps, tile_e, comm, &req, &e2);
    }
    if (st != EDGC_OK) {
        if (req != NULL) comm->wait(comm->ctx, req); /* never leave a request behind */
        return st;
    }
    if (req != NULL) EDGC_FORWARD(comm->wait(comm->ctx, req));
    dense_unpack(ps, ps->p + np, comm->size);
    ps->m2 = m2;
    ps->e2 = e2;
    if (bytes != NULL) EDGC_FORWARD(edgc_powersgd_bytes_at(ps, ps->rank, bytes));
    return EDGC_OK;
}

edgc_status edgc_powersgd_step(edgc_powersgd* ps, float* grad, const edgc_comm* comm,
                               edgc_step_bytes* bytes)
{
    EDGC_RETURN_IF(ps == NULL || grad == NULL, EDGC_ERR_INVALID_ARG);
    const edgc__grad one = {&grad, &ps->pl.total, 1};
    return step(ps, &one, comm, 0, 0, NULL, bytes);
}

edgc_status edgc__powersgd_step_grad(edgc_powersgd* ps, const edgc__grad* grad,
                                     const edgc_comm* comm, edgc_step_bytes* bytes)
{
    return step(ps, grad, comm, 0, 0, NULL, bytes);
}

edgc_status edgc__powersgd_step_checked(edgc_powersgd* ps, const edgc__grad* grad,
                                        const edgc_comm* comm, int bad_here, int* bad_any,
                                        edgc_step_bytes* bytes)
{
    EDGC_RETURN_IF(bad_any == NULL, EDGC_ERR_INVALID_ARG);
    return step(ps, grad, comm, 1, bad_here < 0 ? -1 : bad_here != 0, bad_any, bytes);
}

edgc_status edgc_powersgd_bytes_at(const edgc_powersgd* ps, int rank, edgc_step_bytes* bytes)
{
    EDGC_RETURN_IF(ps == NULL || bytes == NULL || rank < 1, EDGC_ERR_INVALID_ARG);
    size_t n = flat_size(&ps->pl, rank, 1) + flat_size(&ps->pl, rank, 0) + ps->pl.dense_total;
    bytes->sent = (uint64_t)n * sizeof(float);
    bytes->dense = (uint64_t)ps->pl.total * sizeof(float);
    return EDGC_OK;
}

edgc_status edgc_powersgd_rank_cap(const edgc_powersgd* ps, int* cap)
{
    EDGC_RETURN_IF(ps == NULL || cap == NULL, EDGC_ERR_INVALID_ARG);
    *cap = ps->pl.rank_cap;
    return EDGC_OK;
}

edgc_status edgc__powersgd_factors(const edgc_powersgd* ps, size_t k, const float** pt,
                                   const float** qt, size_t* r)
{
    EDGC_RETURN_IF(ps == NULL || k >= ps->pl.n_mats || pt == NULL || qt == NULL || r == NULL,
                   EDGC_ERR_INVALID_ARG);
    *pt = ps->p + ps->p_at[k];
    *qt = ps->q + ps->q_at[k];
    *r = mat_rank(&ps->pl.mats[k], ps->rank);
    return EDGC_OK;
}

edgc_status edgc__powersgd_reserve(edgc_powersgd* ps, int rank)
{
    EDGC_RETURN_IF(ps == NULL || rank < 1, EDGC_ERR_INVALID_ARG);
    return reserve_rank(ps, rank);
}

edgc_status edgc__powersgd_error(const edgc_powersgd* ps, const float** e, size_t* n)
{
    EDGC_RETURN_IF(ps == NULL || e == NULL || n == NULL, EDGC_ERR_INVALID_ARG);
    *e = ps->err;
    *n = 0;
    for (size_t k = 0; k < ps->pl.n_mats; k++)
        *n += ps->pl.mats[k].rows * ps->pl.mats[k].cols;
    return EDGC_OK;
}

void edgc__powersgd_set_fusion(edgc_powersgd* ps, int fuse)
{
    ps->may_fuse = fuse != 0;
}

void edgc__powersgd_set_direct(edgc_powersgd* ps, int direct)
{
    ps->may_direct = direct < 0 ? -1 : direct != 0;
}

int edgc__powersgd_direct_core(const edgc_powersgd* ps)
{
    return ps->direct_core;
}

int edgc__powersgd_threads(const edgc_powersgd* ps)
{
    return ps->threads;
}

double edgc__powersgd_last_error(const edgc_powersgd* ps)
{
    if (!ps->error_feedback || !ps->q_ready) return NAN;
    return ps->m2 > 0.0 ? sqrt(ps->e2 / ps->m2) : 0.0;
}

/* State: the rank, whether Q exists, the RNG, Q at the current rank, the error memory. P is
 * recomputed every step and is not saved. */
#define PUT(x) edgc__put(w, &(x), sizeof(x))
#define GET(x) edgc__get(r, &(x), sizeof(x))

edgc_status edgc__powersgd_save(const edgc_powersgd* ps, edgc__writer* w)
{
    PUT(ps->rank);
    PUT(ps->q_ready);
    PUT(ps->rng);
    PUT(ps->m2);
    PUT(ps->e2);
    if (ps->q_ready) edgc__put(w, ps->q, flat_size(&ps->pl, ps->rank, 0) * sizeof(float));
    if (ps->error_feedback) edgc__put(w, ps->err, err_size(ps) * sizeof(float));
    return EDGC_OK;
}

edgc_status edgc__powersgd_load(edgc_powersgd* ps, edgc__reader* r)
{
    int rank = 0, q_ready = 0;
    GET(rank);
    GET(q_ready);
    if (r->bad || rank < 1 || (q_ready != 0 && q_ready != 1)) return EDGC_ERR_CORRUPT;
    EDGC_FORWARD(reserve_rank(ps, rank));
    set_rank_to(ps, rank);
    ps->q_ready = q_ready;
    GET(ps->rng);
    GET(ps->m2);
    GET(ps->e2);
    if (ps->q_ready) edgc__get(r, ps->q, flat_size(&ps->pl, ps->rank, 0) * sizeof(float));
    if (ps->error_feedback) edgc__get(r, ps->err, err_size(ps) * sizeof(float));
    return r->bad ? EDGC_ERR_CORRUPT : EDGC_OK;
}
