/*
 * comm_mpi.c - edgc_comm over MPI. Works on a duplicate of the caller's communicator with
 * MPI_ERRORS_RETURN, so an MPI failure becomes EDGC_ERR_COMM instead of an abort. Counts above
 * INT_MAX are split into chunks. One non-blocking allreduce may be outstanding at a time (the
 * engine's dense part); its request lives in the object, so polling allocates nothing.
 */
#include "edgc_internal.h"
#include "edgc_mpi.h"

#include <limits.h>
#include <stdlib.h>

struct edgc_comm_mpi {
    MPI_Comm comm;
    int rank, size;
    MPI_Request req;
    int busy; /* req is outstanding */
};

#define CHUNK ((size_t)1 << 30)

static edgc_status ok(int rc)
{
    return rc == MPI_SUCCESS ? EDGC_OK : EDGC_ERR_COMM;
}

static edgc_status mpi_allreduce_sum_f32(void* ctx, float* buf, size_t n)
{
    edgc_comm_mpi* m = ctx;
    for (size_t at = 0; at < n; at += CHUNK) {
        int c = (int)(n - at < CHUNK ? n - at : CHUNK);
        EDGC_FORWARD(ok(MPI_Allreduce(MPI_IN_PLACE, buf + at, c, MPI_FLOAT, MPI_SUM, m->comm)));
    }
    return EDGC_OK;
}

static edgc_status mpi_allreduce_max_i32(void* ctx, int32_t* buf, size_t n)
{
    edgc_comm_mpi* m = ctx;
    EDGC_RETURN_IF(n > INT_MAX, EDGC_ERR_INVALID_ARG);
    return ok(MPI_Allreduce(MPI_IN_PLACE, buf, (int)n, MPI_INT32_T, MPI_MAX, m->comm));
}

static edgc_status mpi_broadcast(void* ctx, void* buf, size_t bytes, int root)
{
    edgc_comm_mpi* m = ctx;
    for (size_t at = 0; at < bytes; at += CHUNK) {
        int c = (int)(bytes - at < CHUNK ? bytes - at : CHUNK);
        EDGC_FORWARD(ok(MPI_Bcast((char*)buf + at, c, MPI_BYTE, root, m->comm)));
    }
    return EDGC_OK;
}

static edgc_status mpi_iallreduce_sum_f32(void* ctx, float* buf, size_t n, void** request)
{
    edgc_comm_mpi* m = ctx;
    *request = NULL;
    EDGC_RETURN_IF(m->busy, EDGC_ERR_INVALID_ARG);
    if (n > CHUNK) return mpi_allreduce_sum_f32(ctx, buf, n); /* done already: no request */
    EDGC_FORWARD(
        ok(MPI_Iallreduce(MPI_IN_PLACE, buf, (int)n, MPI_FLOAT, MPI_SUM, m->comm, &m->req)));
    m->busy = 1;
    *request = &m->req;
    return EDGC_OK;
}

static edgc_status mpi_test(void* ctx, void* request, int* done)
{
    edgc_comm_mpi* m = ctx;
    EDGC_RETURN_IF(request != &m->req || !m->busy, EDGC_ERR_INVALID_ARG);
    int flag = 0;
    edgc_status st = ok(MPI_Test(&m->req, &flag, MPI_STATUS_IGNORE));
    if (st != EDGC_OK || flag) m->busy = 0;
    *done = flag;
    return st;
}

static edgc_status mpi_wait(void* ctx, void* request)
{
    edgc_comm_mpi* m = ctx;
    EDGC_RETURN_IF(request != &m->req || !m->busy, EDGC_ERR_INVALID_ARG);
    m->busy = 0;
    return ok(MPI_Wait(&m->req, MPI_STATUS_IGNORE));
}

edgc_status edgc_comm_mpi_create(MPI_Comm comm, edgc_comm_mpi** out)
{
    EDGC_RETURN_IF(out == NULL, EDGC_ERR_INVALID_ARG);
    *out = NULL;
    int inited = 0, finalized = 0;
    MPI_Initialized(&inited);
    MPI_Finalized(&finalized);
    EDGC_RETURN_IF(!inited || finalized || comm == MPI_COMM_NULL, EDGC_ERR_INVALID_ARG);
    /* The duplicate first, since every rank joins it; then the allocation, agreed on it, so a
     * rank without memory fails with the others instead of leaving them in the next collective. */
    MPI_Comm dup;
    if (MPI_Comm_dup(comm, &dup) != MPI_SUCCESS) return EDGC_ERR_COMM;
    edgc_comm_mpi* m = calloc(1, sizeof *m);
    int have = m != NULL, every = 0;
    if (MPI_Comm_set_errhandler(dup, MPI_ERRORS_RETURN) != MPI_SUCCESS ||
        MPI_Allreduce(&have, &every, 1, MPI_INT, MPI_LAND, dup) != MPI_SUCCESS ||
        (every && (MPI_Comm_rank(dup, &m->rank) != MPI_SUCCESS ||
                   MPI_Comm_size(dup, &m->size) != MPI_SUCCESS))) {
        MPI_Comm_free(&dup);
        free(m);
        return EDGC_ERR_COMM;
    }
    if (!every) {
        MPI_Comm_free(&dup);
        free(m);
        return EDGC_ERR_NOMEM;
    }
    m->comm = dup;
    *out = m;
    return EDGC_OK;
}

edgc_status edgc_comm_mpi_get(edgc_comm_mpi* m, edgc_comm* out)
{
    EDGC_RETURN_IF(m == NULL || out == NULL, EDGC_ERR_INVALID_ARG);
    *out = (edgc_comm){
        .ctx = m,
        .rank = m->rank,
        .size = m->size,
        .allreduce_sum_f32 = mpi_allreduce_sum_f32,
        .allreduce_max_i32 = mpi_allreduce_max_i32,
        .broadcast = mpi_broadcast,
        .iallreduce_sum_f32 = mpi_iallreduce_sum_f32,
        .test = mpi_test,
        .wait = mpi_wait,
    };
    return EDGC_OK;
}

void edgc_comm_mpi_free(edgc_comm_mpi* m)
{
    if (m == NULL) return;
    if (m->busy) MPI_Wait(&m->req, MPI_STATUS_IGNORE);
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Comm_free(&m->comm);
    free(m);
}

static void free_comm(void* m)
{
    edgc_comm_mpi_free(m);
}

edgc_status edgc_reducer_create_mpi(MPI_Comm comm, const edgc_config* cfg,
                                    const edgc_layout* layout, edgc_reducer** out)
{
    EDGC_RETURN_IF(out == NULL, EDGC_ERR_INVALID_ARG);
    *out = NULL;
    edgc_comm_mpi* m = NULL;
    EDGC_FORWARD(edgc_comm_mpi_create(comm, &m));
    edgc_comm c;
    edgc_comm_mpi_get(m, &c);
    edgc_config resolved;
    if (cfg != NULL && cfg->threads == 0) {
        /* on failure it leaves 1, and creation goes on: every rank must reach the collective in
         * edgc_reducer_create. Threads are not in the agreed hash, so ranks may differ. */
        resolved = *cfg;
        edgc_mpi_threads(m->comm, &resolved.threads);
        cfg = &resolved;
    }
    edgc_status st = edgc_reducer_create(cfg, layout, &c, out);
    if (st != EDGC_OK) {
        edgc_comm_mpi_free(m);
        return st;
    }
    edgc__reducer_own(*out, m, free_comm);
    return EDGC_OK;
}
