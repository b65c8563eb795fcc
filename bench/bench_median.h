/*
 * bench_median.h - the median the benchmarks report (one stalled repetition does not move it).
 */
#ifndef EDGC_BENCH_MEDIAN_H
#define EDGC_BENCH_MEDIAN_H

#include <stdlib.h>

static inline int bench_cmp_double(const void* a, const void* b)
{
    double x = *(const double*)a, y = *(const double*)b;
    return (x > y) - (x < y);
}

/* Median of v[0..n), n >= 1; sorts v in place. */
static inline double bench_median(double* v, int n)
{
    qsort(v, (size_t)n, sizeof *v, bench_cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

#endif
