/*
 * edgc_mpi.h - the MPI backend: an edgc_comm over a duplicate of the caller's MPI_Comm, and the
 * reducer created over it in one call. Requires MPI to be initialised.
 *
 *     edgc_reducer* red;
 *     edgc_status st = edgc_reducer_create_mpi(MPI_COMM_WORLD, &cfg, &layout, &red);
 *     for each step: backward(grad); edgc_reducer_step(red, grad, &stats); optimizer(grad);
 *     edgc_reducer_free(red);                      // before MPI_Finalize
 */
#ifndef EDGC_MPI_H
#define EDGC_MPI_H

#include <mpi.h>

#include "edgc.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct edgc_comm_mpi edgc_comm_mpi;

/** Duplicates `comm` (a library never communicates on the caller's communicator) and sets
 *  MPI_ERRORS_RETURN on the duplicate, so failures come back as EDGC_ERR_COMM.
 *  Collective over comm. @return EDGC_OK, EDGC_ERR_INVALID_ARG (MPI not initialised),
 *  EDGC_ERR_NOMEM, EDGC_ERR_COMM. */
EDGC_API edgc_status edgc_comm_mpi_create(MPI_Comm comm, edgc_comm_mpi** out);
/** The communicator interface of m; valid until edgc_comm_mpi_free(m). */
EDGC_API edgc_status edgc_comm_mpi_get(edgc_comm_mpi* m, edgc_comm* out);
/** Frees the duplicate communicator. Call before MPI_Finalize. NULL is a no-op. */
EDGC_API void edgc_comm_mpi_free(edgc_comm_mpi* m);

/** edgc_comm_mpi_create + edgc_reducer_create; the reducer owns the communicator. A cfg->threads
 *  of 0 is resolved with edgc_mpi_threads. Collective over comm. @return as edgc_reducer_create. */
EDGC_API edgc_status edgc_reducer_create_mpi(MPI_Comm comm, const edgc_config* cfg,
                                             const edgc_layout* layout, edgc_reducer** out);

/** The threads this rank should use when edgc_config.threads is 0: the CPUs of its affinity
 *  mask, divided among the ranks of comm on this node whose masks overlap it (at least 1). Ranks
 *  bound to cores of their own keep all of theirs; unbound ranks on one node share. The trainer
 *  uses it for OpenBLAS and OpenMP too. Collective over comm.
 *  @return EDGC_OK, EDGC_ERR_INVALID_ARG (NULL, or MPI not initialised), EDGC_ERR_NOMEM,
 *  EDGC_ERR_COMM; *threads is 1 on failure. */
EDGC_API edgc_status edgc_mpi_threads(MPI_Comm comm, int* threads);

#ifdef __cplusplus
}
#endif
#endif /* EDGC_MPI_H */
