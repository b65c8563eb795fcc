/*
 * skinny.h - an experiment beside the library (dev/skinny/skinny.c): PowerSGD's thin products
 * as hand-written loops whose bits do not depend on the CPU. Timed against OpenBLAS by
 * bench_core; tested by dev/skinny/test_skinny.c. M is rows x cols, row-major; Pt is r x rows
 * and Qt is r x cols, each a stack of r contiguous rows. The result does not depend on the isa.
 */
#ifndef EDGC_DEV_SKINNY_H
#define EDGC_DEV_SKINNY_H

#include <stddef.h>

typedef enum { SKINNY_ISA_BASE = 0, SKINNY_ISA_AVX2 = 1, SKINNY_ISA_AVX512 = 2 } skinny_isa;

/* The widest build this CPU runs. */
skinny_isa skinny_isa_best(void);
/* Pt = Qt M^T */
void skinny_pt(skinny_isa isa, const float* m, size_t rows, size_t cols, const float* qt, size_t r,
               float* pt);
/* With error feedback: M = G + E, stored in e, then Pt = Qt M^T; returns ||M||^2. */
double skinny_pt_ef(skinny_isa isa, float* e, const float* g, size_t rows, size_t cols,
                    const float* qt, size_t r, float* pt);
/* Qt = Pt M */
void skinny_qt(skinny_isa isa, const float* m, size_t rows, size_t cols, const float* pt, size_t r,
               float* qt);
/* G = Pt^T Qt, written to g. */
void skinny_expand(skinny_isa isa, const float* pt, const float* qt, size_t rows, size_t cols,
                   size_t r, float* g);

#endif
