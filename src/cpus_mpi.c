/*
 * cpus_mpi.c - what edgc_config.threads = 0 means under MPI. A rank may run on the CPUs of its
 * affinity mask, but ranks that mpirun leaves unbound (--bind-to none, or more ranks than cores)
 * all see the same mask: each taking every CPU in it puts several spinning OpenMP and OpenBLAS
 * teams on one core. On 2 cores with 4 unbound ranks that made a training step 1.6x slower and
 * the 4-rank reducer test take 90 s instead of 1 s. So the CPUs are shared out among the ranks of
 * this node whose masks overlap this rank's.
 */
#define _GNU_SOURCE
#include "edgc_internal.h"
#include "edgc_mpi.h"

#include <sched.h>
#include <stdlib.h>

edgc_status edgc_mpi_threads(MPI_Comm comm, int* threads)
{
    EDGC_RETURN_IF(threads == NULL, EDGC_ERR_INVALID_ARG);
    *threads = 1;
    int init = 0;
    MPI_Initialized(&init);
    EDGC_RETURN_IF(!init, EDGC_ERR_INVALID_ARG);
    cpu_set_t mine;
    CPU_ZERO(&mine);
    if (sched_getaffinity(0, sizeof mine, &mine) != 0) CPU_ZERO(&mine); /* no mask: shares none */
    MPI_Comm node;
    if (MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node) != MPI_SUCCESS)
        return EDGC_ERR_COMM;
    int n = 0;
    MPI_Comm_size(node, &n);
    cpu_set_t* all = malloc((size_t)n * sizeof *all);
    /* every rank joins the gather, even one without memory for it, so none waits forever */
    int have = all != NULL, every = 0;
    int rc = MPI_Allreduce(&have, &every, 1, MPI_INT, MPI_LAND, node);
    if (rc == MPI_SUCCESS && every)
        rc =
            MPI_Allgather(&mine, (int)sizeof mine, MPI_BYTE, all, (int)sizeof mine, MPI_BYTE, node);
    MPI_Comm_free(&node);
    if (rc != MPI_SUCCESS || !every) {
        free(all);
        return rc != MPI_SUCCESS ? EDGC_ERR_COMM : EDGC_ERR_NOMEM;
    }
    int sharing = 0; /* ranks on this node whose CPUs overlap this rank's, this one included */
    for (int i = 0; i < n; i++) {
        cpu_set_t both;
        CPU_AND(&both, &mine, &all[i]);
        sharing += CPU_COUNT(&both) > 0;
    }
    free(all);
    int cpus = CPU_COUNT(&mine) > 0 ? CPU_COUNT(&mine) : edgc__cpus_available();
    *threads = sharing > 1 ? cpus / sharing : cpus;
    if (*threads < 1) *threads = 1;
    return EDGC_OK;
}
