/*
 * peak.h - what this rank's cores can do: the sgemm rate edgc-train measures at the end of a run,
 * so the summary can say what fraction of it the training step reached.
 */
#ifndef EDGC_TRAIN_PEAK_H
#define EDGC_TRAIN_PEAK_H

/* GFLOP/s of a large square sgemm on this rank's BLAS threads (best of a few, after a warm-up);
 * 0 if the buffers cannot be allocated. Takes about a quarter of a second. */
double peak_sgemm_gflops(void);

#endif
