/*
 * sample.h - text from the trained model at the end of a run.
 */
#ifndef EDGC_TRAIN_SAMPLE_H
#define EDGC_TRAIN_SAMPLE_H

#include <stdint.h>

#include "gpt2.h"

/* Samples `len` bytes from the whole model m and prints them, on rank 0 only (m may be NULL
 * elsewhere); byte-level vocabularies only, others get a note. Deterministic in seed. */
void sample_text(gpt2* m, int len, uint64_t seed);

#endif
