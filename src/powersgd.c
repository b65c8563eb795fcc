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
 * Threads: the element-wise passes (M = G + e and e = M - G_hat, with their norms) are split over
 * `threads` OpenMP threads in fixed chunks whose partial norms are added in chunk order; the
 * matrices' products are shared out over the same threads when OpenBLAS runs single-threaded,
 * else left to OpenBLAS's threads. No result depends on the engine's count (OpenBLAS's own thread
 * count does change its products' rounding).
 *
 * Not here: deciding the rank (controller.c), non-finite checks and agreement (the reducer).
 */
#include "edgc_internal.h"

#include <cblas.h>
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
    double m2, e2;  /* last step: ||M||^2 and ||M - G_hat||^2 over the matrices (with EF) */
    int threads;    /* for the element-wise passes and the matrices, resolved from the config */
    int m_in_grad;  /* this step builds M in the gradient buffer (see step), not the error memory */
    size_t *p_at, *q_at; /* per matrix, offsets into p and q at the current rank (set_rank_to) */
    struct ef_chunk {
        size_t k, at, len; /* matrix, first element in it, elements */
    } * chunks;            /* every matrix cut into EF_CHUNK pieces, in layout order */
    size_t n_chunks;
    double* part; /* partial norm of each chunk */
};

/* Elements per chunk of an element-wise pass: 128 KB of floats, small enough to share a matrix
 * of the GPT-2 layout out evenly, large enough that a chunk costs far more than its scheduling. */
#define EF_CHUNK ((size_t)32768)

static size_t mat_rank(const edgc__matrix* m, int rank)
{
    return m->cap < (size_t)rank ? m->cap : (size_t)rank;
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
    ps->rank_alloc = rank;
    return EDGC_OK;
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
    free(ps->part);
    free(ps->chunks);
    free(ps->p_at);
    free(ps->q_at);
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
    edgc__rng_seed(&ps->rng, cfg->seed);

    st = EDGC_ERR_NOMEM;
    size_t n_mats = ps->pl.n_mats, n_err = 0, n_chunks = 0;
    ps->err_at = calloc(n_mats ? n_mats : 1, sizeof *ps->err_at);
    ps->p_at = calloc(n_mats ? n_mats : 1, sizeof *ps->p_at);
    ps->q_at = calloc(n_mats ? n_mats : 1, sizeof *ps->q_at);
    if (ps->err_at == NULL || ps->p_at == NULL || ps->q_at == NULL) goto fail;
    for (size_t k = 0; k < n_mats; k++) {
        size_t n = ps->pl.mats[k].rows * ps->pl.mats[k].cols;
        ps->err_at[k] = n_err;
        n_err += n;
        n_chunks += (n + EF_CHUNK - 1) / EF_CHUNK;
    }
    ps->chunks = malloc((n_chunks ? n_chunks : 1) * sizeof *ps->chunks);
    ps->part = malloc((n_chunks ? n_chunks : 1) * sizeof *ps->part);
    if (ps->chunks == NULL || ps->part == NULL) goto fail;
    for (size_t k = 0; k < n_mats; k++) {
        size_t n = ps->pl.mats[k].rows * ps->pl.mats[k].cols;
        for (size_t at = 0; at < n; at += EF_CHUNK)
            ps->chunks[ps->n_chunks++] =
                (struct ef_chunk){k, at, n - at < EF_CHUNK ? n - at : EF_CHUNK};
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

/* The element-wise passes of error feedback over every matrix, chunk by chunk. */
enum ef_kind {
    EF_M_IN_ERR,  /* e += g: M = G + e in the error memory */
    EF_M_IN_GRAD, /* g += e: M = G + e in the gradient (the same sum) */
    EF_E_IN_ERR,  /* e -= g: e = M - G_hat, M in the error memory, G_hat in the gradient */
    EF_SWAP       /* see swap_norm2: M was in the gradient, G_hat in the error memory */
};

/* One pass of `kind` over every matrix, chunk by chunk on the engine's threads (one parallel
 * region for the whole layout: waking threads per matrix cost more than it saved); returns the
 * squared norm of what it computed (M, or e) with the chunks' partial norms added in chunk order,
 * whatever the thread count. */
static double ef_pass(edgc_powersgd* ps, float* grad, enum ef_kind kind)
{
    const struct ef_chunk* ch = ps->chunks;
    const size_t n = ps->n_chunks;
    double* part = ps->part;
#ifdef _OPENMP
    const int threads = ps->threads;
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1 && n > 1)
#endif
    for (size_t c = 0; c < n; c++) {
        const edgc__matrix* m = &ps->pl.mats[ch[c].k];
        float* e = ps->err + ps->err_at[ch[c].k] + ch[c].at;
        float* g = grad + m->offset + ch[c].at;
        const size_t len = ch[c].len;
        part[c] = kind == EF_M_IN_ERR    ? axpy_norm2(e, g, len, 1.0f)
                  : kind == EF_M_IN_GRAD ? axpy_norm2(g, e, len, 1.0f)
                  : kind == EF_E_IN_ERR  ? axpy_norm2(e, g, len, -1.0f)
                                         : swap_norm2(g, e, len);
    }
    double total = 0.0;
    for (size_t c = 0; c < n; c++)
        total += part[c];
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
static void dense_pack(const edgc_powersgd* ps, const float* grad, float* buf)
{
    const edgc__plan_layout* pl = &ps->pl;
    size_t at = 0;
    for (size_t i = 0; i < pl->n_dense; i++) {
        memcpy(buf + at, grad + pl->dense[i].offset, pl->dense[i].count * sizeof(float));
        at += pl->dense[i].count;
    }
}

/* Writes the summed 1-D tensors in buf back into the gradient, averaged. */
static void dense_unpack(const edgc_powersgd* ps, const float* buf, float* grad, int size)
{
    const edgc__plan_layout* pl = &ps->pl;
    const float inv = 1.0f / (float)size;
    size_t at = 0;
    for (size_t i = 0; i < pl->n_dense; i++) {
        float* dst = grad + pl->dense[i].offset;
        for (size_t j = 0; j < pl->dense[i].count; j++)
            dst[j] = buf[at + j] * inv;
        at += pl->dense[i].count;
    }
}

/* Packs the 1-D tensors into buf and starts their allreduce (non-blocking when the communicator
 * can). buf lies past P in the same buffer, so nothing else in the step touches it meanwhile. */
static edgc_status dense_start(edgc_powersgd* ps, const float* grad, const edgc_comm* comm,
                               float* buf, void** req)
{
    const size_t at = ps->pl.dense_total;
    dense_pack(ps, grad, buf);
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
typedef void (*matrix_fn)(edgc_powersgd* ps, size_t k, float* grad);

static const float* matrix_m(const edgc_powersgd* ps, size_t k, const float* grad)
{
    return ps->m_in_grad ? grad + ps->pl.mats[k].offset : ps->err + ps->err_at[k];
}

/* Re-orthonormalises the warm-started Qt. */
static void orth_q(edgc_powersgd* ps, size_t k, float* grad)
{
    (void)grad;
    const edgc__matrix* m = &ps->pl.mats[k];
    edgc__orthonormalize_rows(ps->q + ps->q_at[k], mat_rank(m, ps->rank), m->cols, ps->eps);
}

/* P = M Q, i.e. Pt (r x rows) = Qt (r x cols) . M^T. */
static void product_p(edgc_powersgd* ps, size_t k, float* grad)
{
    const edgc__matrix* m = &ps->pl.mats[k];
    int r = (int)mat_rank(m, ps->rank), rows = (int)m->rows, cols = (int)m->cols;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, r, rows, cols, 1.0f, ps->q + ps->q_at[k],
                cols, matrix_m(ps, k, grad), cols, 0.0f, ps->p + ps->p_at[k], rows);
}

/* P_hat = orthonormalised P; Q = M^T P_hat, i.e. Qt (r x cols) = Pt . M. */
static void product_q(edgc_powersgd* ps, size_t k, float* grad)
{
    const edgc__matrix* m = &ps->pl.mats[k];
    int r = (int)mat_rank(m, ps->rank), rows = (int)m->rows, cols = (int)m->cols;
    edgc__orthonormalize_rows(ps->p + ps->p_at[k], (size_t)r, m->rows, ps->eps);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, r, cols, rows, 1.0f, ps->p + ps->p_at[k],
                rows, matrix_m(ps, k, grad), cols, 0.0f, ps->q + ps->q_at[k], cols);
}

/* G_hat = P_hat Q^T (rows x cols) = Pt^T . Qt, written over the gradient; over the error memory
 * when M is in the gradient (the last pass then swaps them). */
static void decompress(edgc_powersgd* ps, size_t k, float* grad)
{
    const edgc__matrix* m = &ps->pl.mats[k];
    int r = (int)mat_rank(m, ps->rank), rows = (int)m->rows, cols = (int)m->cols;
    float* out = ps->error_feedback && ps->m_in_grad ? ps->err + ps->err_at[k] : grad + m->offset;
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, rows, cols, r, 1.0f, ps->p + ps->p_at[k],
                rows, ps->q + ps->q_at[k], cols, 0.0f, out, cols);
}

/* Runs fn on every matrix. With the engine's threads and a single-threaded OpenBLAS, the
 * matrices are shared out dynamically (each is still one BLAS call, so the bits do not change)
 * and the pending dense allreduce is polled once after. Otherwise in order, polled between
 * matrices: OpenBLAS's own threads do the products (called from several threads at once, its
 * pool and OpenMP's fight over the cores: 1.2-2.0x slower, measured). */
static edgc_status each_matrix(edgc_powersgd* ps, matrix_fn fn, float* grad, const edgc_comm* comm,
                               void** req)
{
    const size_t n = ps->pl.n_mats;
#ifdef _OPENMP
    if (ps->threads > 1 && n > 1 && openblas_get_num_threads() == 1) {
        const int threads = ps->threads;
#pragma omp parallel for num_threads(threads) schedule(dynamic)
        for (size_t k = 0; k < n; k++)
            fn(ps, k, grad);
        return poll(comm, req);
    }
#endif
    for (size_t k = 0; k < n; k++) {
        fn(ps, k, grad);
        EDGC_FORWARD(poll(comm, req));
    }
    return EDGC_OK;
}

/* The first half of a step, up to P = M Q for every matrix: M = G + e (with error feedback;
 * m2 receives ||M||^2), Q drawn at the first step or re-orthonormalised. */
static edgc_status compress_p(edgc_powersgd* ps, float* grad, const edgc_comm* comm, void** req,
                              double* m2)
{
    edgc_status st = EDGC_OK;
    if (ps->error_feedback) *m2 = ef_pass(ps, grad, ps->m_in_grad ? EF_M_IN_GRAD : EF_M_IN_ERR);
    if (!ps->q_ready) {
        draw_q_rows(ps, 0);
        ps->q_ready = 1;
    } else if (ps->orthonormalize_q) {
        st = each_matrix(ps, orth_q, grad, comm, req);
    }
    if (st == EDGC_OK) st = each_matrix(ps, product_p, grad, comm, req);
    return st;
}

/* One step. checked makes it a checked step (edgc__powersgd_step_checked): the non-finite flag
 * and the 1-D tensors ride in P's allreduce, two collectives a step instead of three. The flag
 * then arrives after P is computed, so nothing the step must leave unchanged may have moved by
 * then: M is built in the gradient buffer rather than over the error memory (the last pass swaps
 * G_hat and e into place; same bits as the other layout), and Q and the RNG are kept to be put
 * back. bad_here: 1, this worker's gradient is not finite and it computes nothing; 0, it is;
 * -1 (error feedback only), not known yet: the pass that builds M answers it for free, since
 * ||M||^2 is finite exactly when every M is (or, rarely, it overflowed: then a scan decides). */
static edgc_status step(edgc_powersgd* ps, float* grad, const edgc_comm* comm, int checked,
                        int bad_here, int* bad_any, edgc_step_bytes* bytes)
{
    EDGC_RETURN_IF(ps == NULL || grad == NULL || !comm_ok(comm), EDGC_ERR_INVALID_ARG);
    EDGC_RETURN_IF(checked && bad_here < 0 && !ps->error_feedback, EDGC_ERR_INVALID_ARG);
    const edgc__plan_layout* pl = &ps->pl;
    const size_t np = flat_size(pl, ps->rank, 1), nq = flat_size(pl, ps->rank, 0);
    ps->m_in_grad = !ps->error_feedback || checked;
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
            EDGC_FORWARD(compress_p(ps, grad, comm, &req, &m2));
            dense_pack(ps, grad, ps->p + np);
            if (bad_here < 0)
                bad_here = (!isfinite(m2) && edgc__any_nonfinite(grad, pl->total, ps->threads)) ||
                           edgc__any_nonfinite(ps->p + np, pl->dense_total, 1);
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
        EDGC_FORWARD(dense_start(ps, grad, comm, ps->p + np, &req));
        st = compress_p(ps, grad, comm, &req, &m2);
        if (st == EDGC_OK && np > 0) st = comm->allreduce_sum_f32(comm->ctx, ps->p, np);
    }
    if (st == EDGC_OK) st = each_matrix(ps, product_q, grad, comm, &req);
    if (st == EDGC_OK && nq > 0) st = comm->allreduce_sum_f32(comm->ctx, ps->q, nq);
    if (st == EDGC_OK) cblas_sscal((int)nq, 1.0f / (float)comm->size, ps->q, 1);
    if (st == EDGC_OK) st = each_matrix(ps, decompress, grad, comm, &req);
    /* e = M - G_hat */
    if (st == EDGC_OK && ps->error_feedback)
        e2 = ef_pass(ps, grad, ps->m_in_grad ? EF_SWAP : EF_E_IN_ERR);
    if (st != EDGC_OK) {
        if (req != NULL) comm->wait(comm->ctx, req); /* never leave a request behind */
        return st;
    }
    if (req != NULL) EDGC_FORWARD(comm->wait(comm->ctx, req));
    dense_unpack(ps, ps->p + np, grad, comm->size);
    ps->m2 = m2;
    ps->e2 = e2;
    if (bytes != NULL) EDGC_FORWARD(edgc_powersgd_bytes_at(ps, ps->rank, bytes));
    return EDGC_OK;
}

edgc_status edgc_powersgd_step(edgc_powersgd* ps, float* grad, const edgc_comm* comm,
                               edgc_step_bytes* bytes)
{
    return step(ps, grad, comm, 0, 0, NULL, bytes);
}

edgc_status edgc__powersgd_step_checked(edgc_powersgd* ps, float* grad, const edgc_comm* comm,
                                        int bad_here, int* bad_any, edgc_step_bytes* bytes)
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
