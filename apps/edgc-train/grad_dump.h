/*
 * grad_dump.h - --dump-grads: the synchronised gradient of chosen steps written to raw float32
 * files, with the layout beside them, for studies of its spectrum outside the trainer
 * (dev/spectrum/spectrum.py).
 */
#ifndef EDGC_TRAIN_GRAD_DUMP_H
#define EDGC_TRAIN_GRAD_DUMP_H

#include <stddef.h>

#include "edgc.h"

/* --dump-steps: a list of 1-based steps and inclusive ranges, "61-70,201,401-410".
 * 0 when it parses, else -1 with the reason in why. */
int grad_dump_steps_check(const char* list, char* why, size_t wl);
/* Whether step (1-based) is in a list that grad_dump_steps_check accepted. */
int grad_dump_wanted(const char* list, int step);

typedef struct grad_dump grad_dump;

/* Writes DIR/layout.txt (DIR/layout.stageS.txt in a pipeline of several stages) now, so that a
 * directory that cannot be written fails before training. NULL with a reason in why. */
grad_dump* grad_dump_open(const char* dir, int stage, int stages, const edgc_layout* layout,
                          char* why, size_t wl);
/* Writes DIR/grad-SSSSSSSS[.stageS].f32: the layout's total floats of g. 0, or -1 with a reason
 * (the partial file is removed). */
int grad_dump_write(grad_dump* d, int step, const float* g, char* why, size_t wl);
void grad_dump_free(grad_dump* d);

#endif
