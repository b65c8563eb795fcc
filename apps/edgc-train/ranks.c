/*
 * ranks.c - reporting and failing together; see ranks.h.
 */
#include "ranks.h"

#include <mpi.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h" /* ckpt_hash */

int g_rank = 0, g_world = 1;

void ranks_init(int* argc, char*** argv)
{
    MPI_Init(argc, argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_world);
}

void say(const char* fmt, ...)
{
    if (g_rank != 0) return;
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    fflush(stdout);
}

void die(const char* fmt, ...)
{
    if (g_rank == 0) {
        va_list ap;
        va_start(ap, fmt);
        fprintf(stderr, "edgc-train: ");
        vfprintf(stderr, fmt, ap);
        fprintf(stderr, "\n");
        va_end(ap);
    }
    MPI_Finalize();
    exit(1);
}

void check_all(int ok, const char* why)
{
    int bad = !ok, first = ok ? g_world : g_rank;
    MPI_Allreduce(MPI_IN_PLACE, &bad, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    MPI_Allreduce(MPI_IN_PLACE, &first, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    if (!bad) return;
    if (g_rank == first) fprintf(stderr, "edgc-train: %s\n", why);
    MPI_Finalize();
    exit(1);
}

void agree_values(const char* const* names, const char* const* values, size_t n)
{
    /* Equal hashes everywhere iff min == max: two allreduces, whatever the number of values. */
    uint64_t* lo = malloc(2 * n * sizeof *lo);
    if (lo == NULL) die("out of memory comparing options");
    uint64_t* hi = lo + n;
    for (size_t i = 0; i < n; i++)
        lo[i] = hi[i] = ckpt_hash(values[i], strlen(values[i]));
    MPI_Allreduce(MPI_IN_PLACE, lo, (int)n, MPI_UINT64_T, MPI_MIN, MPI_COMM_WORLD);
    MPI_Allreduce(MPI_IN_PLACE, hi, (int)n, MPI_UINT64_T, MPI_MAX, MPI_COMM_WORLD);
    size_t i = 0;
    while (i < n && lo[i] == hi[i])
        i++;
    free(lo);
    if (i == n) return;
    char root[256];
    snprintf(root, sizeof root, "%s", values[i]);
    MPI_Bcast(root, sizeof root, MPI_CHAR, 0, MPI_COMM_WORLD);
    if (g_rank == 0)
        fprintf(stderr,
                "edgc-train: %s differs between ranks (rank 0: %s); start every rank with the same "
                "options and data\n",
                names[i], root);
    else if (strcmp(root, values[i]) != 0)
        fprintf(stderr, "edgc-train: rank %d: %s is %s here, %s on rank 0\n", g_rank, names[i],
                values[i], root);
    MPI_Finalize();
    exit(1);
}
