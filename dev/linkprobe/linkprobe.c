/*
 * linkprobe.c - where should a profile's dense samples go? (docs/ALGORITHM.md, 4.1)
 *
 * Replays the sync pattern of a profile over a real or emulated link with plain MPI_Allreduce:
 * an untimed dense sync, four timed dense syncs, then ranks 2..32 four syncs each (payloads
 * scaled as the tiny preset's), then `--tail` dense syncs in a row (what a dense run pays).
 * `--spread` takes two dense samples up front and the other two between ranks 2-4 and 4-8,
 * the alternative to four in a row. Compute between syncs is a sleep of `--compute-ms`.
 * Prints one line per launch (rank 0): the dense samples, their mean and the tail's mean.
 * An experiment, not part of libedgc; run it under scripts/netsim.sh mpirun 2.
 */
#define _POSIX_C_SOURCE 200809L
#include <mpi.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void nap(double ms)
{
    long long ns = (long long)(ms * 1e6);
    struct timespec t = {(time_t)(ns / 1000000000), (long)(ns % 1000000000)};
    nanosleep(&t, NULL);
}

/* One timed allreduce of n floats; the slowest rank's time, as the controller agrees it. */
static double sync_ms(float* buf, size_t n)
{
    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = MPI_Wtime();
    MPI_Allreduce(MPI_IN_PLACE, buf, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    double ms = (MPI_Wtime() - t0) * 1e3, slowest = 0.0;
    MPI_Allreduce(&ms, &slowest, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    return slowest;
}

static int usage(int me, const char* prog, int rc)
{
    if (me == 0)
        fprintf(rc ? stderr : stdout,
                "usage: %s [--spread] [--floats N] [--compute-ms MS] [--tail N]\n"
                "  --floats N      dense payload in floats (default 834000: tiny's gradient)\n"
                "  --compute-ms MS sleep between syncs (default 46: tiny's step at 2 ranks)\n"
                "  --tail N        dense syncs in a row after the ranks (default 20)\n"
                "  --spread        two dense samples first, one after rank 2, one after rank 4\n",
                prog);
    return rc;
}

int main(int argc, char** argv)
{
    MPI_Init(&argc, &argv);
    int me = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &me);
    int spread = 0, tail = 20;
    long floats = 834000;
    double compute = 46.0;
    for (int i = 1; i < argc; i++) {
        const char* a = argv[i];
        int has = i + 1 < argc;
        if (!strcmp(a, "--help")) {
            MPI_Finalize();
            return usage(me, argv[0], 0);
        } else if (!strcmp(a, "--spread")) {
            spread = 1;
        } else if (!strcmp(a, "--floats") && has) {
            floats = atol(argv[++i]);
        } else if (!strcmp(a, "--compute-ms") && has) {
            compute = atof(argv[++i]);
        } else if (!strcmp(a, "--tail") && has) {
            tail = atoi(argv[++i]);
        } else {
            MPI_Finalize();
            return usage(me, argv[0], 2);
        }
    }
    if (floats < 1000 || floats > 1L << 28 || !(compute >= 0.0 && compute < 1e4) || tail < 0 ||
        tail > 10000) {
        if (me == 0) fprintf(stderr, "linkprobe: an option is out of range (see --help)\n");
        MPI_Finalize();
        return 2;
    }
    float* buf = calloc((size_t)floats, sizeof *buf);
    if (buf == NULL) MPI_Abort(MPI_COMM_WORLD, 1);
    const int ranks[] = {2, 4, 8, 12, 16, 24, 32};
    double dense[4], sum = 0.0;
    int taken = 0;

    sync_ms(buf, (size_t)floats); /* untimed: connections, first touch */
    nap(compute);
    for (int k = 0; k < 7; k++) {
        /* four in a row before rank 2; spread: two before rank 2, then one before ranks 4, 8 */
        int want = spread && k + 2 < 4 ? k + 2 : 4;
        for (; taken < want; taken++) {
            dense[taken] = sync_ms(buf, (size_t)floats);
            nap(compute);
        }
        /* rank r sends about 1.1 % of the dense payload per unit of rank on tiny's layout */
        size_t n = (size_t)((double)floats * 0.011 * ranks[k]);
        for (int j = 0; j < 4; j++) {
            sync_ms(buf, n);
            nap(compute);
        }
    }
    for (int i = 0; i < tail; i++) {
        sum += sync_ms(buf, (size_t)floats);
        nap(compute);
    }
    if (me == 0) {
        double mean = 0.25 * (dense[0] + dense[1] + dense[2] + dense[3]);
        printf("%s samples %.0f %.0f %.0f %.0f mean %.0f tail-mean %.0f\n",
               spread ? "spread " : "in-a-row", dense[0], dense[1], dense[2], dense[3], mean,
               tail ? sum / tail : 0.0);
    }
    free(buf);
    MPI_Finalize();
    return 0;
}
