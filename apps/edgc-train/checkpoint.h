/*
 * checkpoint.h - files. The model is an llm.c GPT-2 checkpoint (int32 header[256]: magic
 * 20240326, version 3 = float32, maxT, V, L, NH, C, Vp; then the 16 parameter tensors in order),
 * so weights move to and from llm.c and its PyTorch tooling. The training state of each rank
 * (AdamW moments, step, data and RNG position, the reducer's state blob) is a companion file with
 * its own versioned header and an FNV-1a checksum. A manifest lists every file of one checkpoint
 * with its size and hash: a checkpoint is complete exactly when its manifest is there and matches
 * (checkpoint_dir.h arranges the directories). Every write goes to a temporary file that is
 * fsync'ed and renamed over the target: a crash mid-write leaves the previous file intact.
 *
 * The parsers take untrusted bytes (ckpt_parse_header, ckpt_parse_state, ckpt_manifest_parse):
 * they are fuzzed (tests/fuzz/) and must refuse anything malformed with a reason, never crash.
 */
#ifndef EDGC_TRAIN_CHECKPOINT_H
#define EDGC_TRAIN_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "gpt2.h"

#define MODEL_MAGIC        20240326
#define MODEL_VERSION_FP32 3
#define CKPT_HASH_INIT     0xcbf29ce484222325ULL

/* FNV-1a 64 of a buffer; _more continues a running hash (start from CKPT_HASH_INIT). */
uint64_t ckpt_hash(const void* p, size_t n);
uint64_t ckpt_hash_more(uint64_t h, const void* p, size_t n);

/* A file's size and FNV-1a hash, as the manifest records them. */
typedef struct ckpt_digest {
    uint64_t size, hash;
} ckpt_digest;

/* Checks a model header (256 int32) and reads the shape from it. 0 or -1 with a reason. */
int ckpt_parse_header(const int32_t* h, const char* path, gpt2_config* c, char* why, size_t wl);
/* Reads just the header's model shape. 0 or -1 with a reason. */
int ckpt_read_config(const char* path, gpt2_config* c, char* why, size_t wl);
/* Loads parameters into m, whose shape must match the file's; *d (may be NULL) gets the file's
 * digest. 0; CKPT_OTHER_SHAPE (a valid model of another shape); or -1 (unreadable, damaged); both
 * with a reason. */
#define CKPT_OTHER_SHAPE (-2)
int ckpt_load_model(const char* path, gpt2* m, ckpt_digest* d, char* why, size_t wl);
/* Atomically writes m's parameters; *d (may be NULL) gets the digest of what was written. */
int ckpt_save_model(const char* path, const gpt2* m, ckpt_digest* d, char* why, size_t wl);

typedef struct train_state {
    int64_t step;        /* next step to run */
    int64_t batch, seq;  /* B, T the data positions were computed for */
    int64_t world;       /* number of ranks */
    int64_t total_steps; /* --steps: the schedule and the EDGC warm-up depend on it */
    uint64_t seed;
    uint64_t params_hash; /* FNV-1a of the parameters saved alongside */
    double elapsed_s;     /* wall time so far, for the summary */
} train_state;

/* Writes the state, m's AdamW moments and the reducer blob (may be NULL, 0). Atomic; *d (may be
 * NULL) gets the digest of what was written. */
int ckpt_save_state(const char* path, const train_state* st, const gpt2* m, const void* blob,
                    size_t blob_len, ckpt_digest* d, char* why, size_t wl);
/* Parses a state file's bytes: checks magic, version, length and checksum, that the moments fit
 * m, and loads them. *blob is malloc'ed (caller frees). 0 or -1 with a reason naming path. */
int ckpt_parse_state(const unsigned char* buf, size_t len, const char* path, train_state* st,
                     gpt2* m, void** blob, size_t* blob_len, char* why, size_t wl);
/* Reads and parses a state file; *d (may be NULL) gets its digest. */
int ckpt_load_state(const char* path, train_state* st, gpt2* m, void** blob, size_t* blob_len,
                    ckpt_digest* d, char* why, size_t wl);

/* The manifest of one checkpoint, a text file:
 *   edgc-train checkpoint 1 / step S / ranks N [stages P] / file model.bin SIZE HASH /
 *   file state.rank0.bin SIZE HASH ... (N of them, in rank order) / checksum HASH-OF-THE-ABOVE */
typedef struct ckpt_manifest {
    int64_t step; /* the next step to run */
    int world;
    int stages; /* pipeline stages; the line "ranks N" reads as 1, "ranks N stages P" as P */
    ckpt_digest model;
    ckpt_digest* states; /* world entries */
} ckpt_manifest;

/* "state.rankR.bin" */
void ckpt_state_name(char* out, size_t n, int rank);
int ckpt_manifest_save(const char* path, const ckpt_manifest* mf, char* why, size_t wl);
/* Parses manifest text; mf->states is allocated (ckpt_manifest_free). 0 or -1 with a reason. */
int ckpt_manifest_parse(const char* text, size_t len, const char* path, ckpt_manifest* mf,
                        char* why, size_t wl);
int ckpt_manifest_load(const char* path, ckpt_manifest* mf, char* why, size_t wl);
void ckpt_manifest_free(ckpt_manifest* mf);

#endif
