/*
 * test_alloc_faults_mpi.c - test_alloc_faults over real MPI: every allocation that
 * edgc_reducer_create_mpi and the reducer make, failed in turn on the last rank, including the
 * communicator's own. Each failure must be answered EDGC_ERR_NOMEM on every rank and change
 * nothing (scenario in alloc_faults.h). Plain checks as in test_reducer_mpi.c: every rank makes
 * the same collective calls whatever fails; a rank stuck for a minute ends the run.
 */
#include "edgc_mpi.h"

#include <stdio.h>
#include <stdlib.h>

#include "alloc_faults.h"
#include "mpi_check.h"

static edgc_status create_mpi(const void* ctx, const edgc_config* cfg, edgc_reducer** out)
{
    (void)ctx;
    return edgc_reducer_create_mpi(MPI_COMM_WORLD, cfg, &fault_layout, out);
}

/* The same value on every rank? */
static int agreed(long v)
{
    long lo = v, hi = v;
    MPI_Allreduce(MPI_IN_PLACE, &lo, 1, MPI_LONG, MPI_MIN, MPI_COMM_WORLD);
    MPI_Allreduce(MPI_IN_PLACE, &hi, 1, MPI_LONG, MPI_MAX, MPI_COMM_WORLD);
    return lo == hi;
}

int main(int argc, char** argv)
{
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
    const int armed = g_rank == g_size - 1;
    fault_run* ref = calloc(1, sizeof *ref);
    fault_run* run = calloc(1, sizeof *run);
    if (ref == NULL || run == NULL) MPI_Abort(MPI_COMM_WORLD, 1);
    long tried = 0;
    for (int c = 0; c < FAULT_CONFIGS; c++) {
        edgc_config cfg = fault_config(c);
        memset(ref, 0, sizeof *ref);
        fault_watchdog(60);
        fault_scenario(ref, &cfg, create_mpi, NULL, g_rank);
        CHECK(!ref->failed && ref->nomem == 0 && ref->step == FAULT_STEPS - 1);
        long total = ref->allocs; /* the armed rank's count, which every rank loops over */
        MPI_Bcast(&total, 1, MPI_LONG, g_size - 1, MPI_COMM_WORLD);
        CHECK(total >= 8);
        for (long n = 1; n <= total; n++) {
            memset(run, 0, sizeof *run);
            run->fail_at = armed ? n : 0;
            fault_watchdog(60);
            fault_scenario(run, &cfg, create_mpi, NULL, g_rank);
            int ok = !run->failed && run->nomem == 1 && run->step == ref->step &&
                     run->n_status == ref->n_status + 1 &&
                     memcmp(run->grad, ref->grad, sizeof ref->grad) == 0;
            if (!ok)
                fprintf(stderr,
                        "[rank %d] config %d, allocation %ld of %ld: failed %d, %d answers "
                        "NOMEM, %d calls (reference %d)\n",
                        g_rank, c, n, total, run->failed, run->nomem, run->n_status, ref->n_status);
            CHECK(ok);
            CHECK(agreed(run->n_status));
            tried++;
        }
    }
    fault_watchdog(0);
    int bad = g_failed > 0;
    MPI_Allreduce(MPI_IN_PLACE, &bad, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    if (g_rank == 0)
        printf("test_alloc_faults_mpi on %d ranks: %ld allocations failed in turn, %s\n", g_size,
               tried, bad ? "FAILED" : "ok");
    free(ref);
    free(run);
    MPI_Finalize();
    return bad;
}
