/*
 * checkpoint.h - files. The model is an llm.c GPT-2 checkpoint (int32 header[256]: magic
 * 20240326, version 3 = float32, maxT, V, L, NH, C, Vp; then the 16 parameter tensors in order),
 * so weights move to and from llm.c and its PyTorch tooling. The training state of each rank
 * (AdamW moments, step, data and RNG position, the reducer's state blob) is a companion file with
 * its own versioned header and an FNV-1a checksum. Every write goes to a temporary file that is
 * fsync'ed and renamed over the target: a crash mid-write leaves the previous file intact.
 */
#ifndef EDGC_TRAIN_CHECKPOINT_H
#define EDGC_TRAIN_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "gpt2.h"

#define MODEL_MAGIC        20240326
#define MODEL_VERSION_FP32 3

/* Reads just the header's model shape. 0 or -1 with a reason. */
int ckpt_read_config(const char* path, gpt2_config* c, char* why, size_t wl);
/* Loads parameters into m, whose shape must match the file's. 0 or -1 with a reason. */
int ckpt_load_model(const char* path, gpt2* m, char* why, size_t wl);
/* Atomically writes m's parameters. 0 or -1 with a reason. */
int ckpt_save_model(const char* path, const gpt2* m, char* why, size_t wl);

typedef struct train_state {
    int64_t step;        /* next step to run */
    int64_t batch, seq;  /* B, T the data positions were computed for */
    int64_t world;       /* number of ranks */
    int64_t total_steps; /* --steps: the schedule and the EDGC warm-up depend on it */
    uint64_t seed;
    uint64_t params_hash; /* FNV-1a of the parameters saved alongside */
    double elapsed_s;     /* wall time so far, for the summary */
} train_state;

/* Writes the state, m's AdamW moments and the reducer blob (may be NULL, 0). Atomic. */
int ckpt_save_state(const char* path, const train_state* st, const gpt2* m, const void* blob,
                    size_t blob_len, char* why, size_t wl);
/* Reads a state file: checks magic, version, length and checksum, that the moments fit m, and
 * loads them. *blob is malloc'ed (caller frees). 0 or -1 with a reason. */
int ckpt_load_state(const char* path, train_state* st, gpt2* m, void** blob, size_t* blob_len,
                    char* why, size_t wl);
/* FNV-1a 64 of a buffer. */
uint64_t ckpt_hash(const void* p, size_t n);

#endif
