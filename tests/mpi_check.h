/*
 * mpi_check.h - checks for the tests that run under mpiexec. A failed check is recorded and the
 * test carries on (no early return), so every rank makes the same sequence of collective calls;
 * the totals are reduced at the end.
 */
#ifndef EDGC_MPI_CHECK_H
#define EDGC_MPI_CHECK_H

#include <stdio.h>

#include "edgc.h"

static int g_rank, g_size, g_checks, g_failed;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        g_checks++;                                                                                \
        if (!(cond)) {                                                                             \
            g_failed++;                                                                            \
            fprintf(stderr, "[rank %d] %s:%d: CHECK(%s) failed\n", g_rank, __FILE__, __LINE__,     \
                    #cond);                                                                        \
        }                                                                                          \
    } while (0)

#define CHECK_ST(expr, want)                                                                       \
    do {                                                                                           \
        edgc_status got_ = (expr);                                                                 \
        g_checks++;                                                                                \
        if (got_ != (want)) {                                                                      \
            g_failed++;                                                                            \
            fprintf(stderr, "[rank %d] %s:%d: %s = %s, want %s\n", g_rank, __FILE__, __LINE__,     \
                    #expr, edgc_status_name(got_), edgc_status_name(want));                        \
        }                                                                                          \
    } while (0)

#endif
