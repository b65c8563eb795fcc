/*
 * checkpoint_dir.h - crash-safe checkpoints under --out DIR:
 *
 *   DIR/step-00000300/model.bin          llm.c model (rank 0 writes it)
 *   DIR/step-00000300/state.rankR.bin    each rank's training state
 *   DIR/step-00000300/MANIFEST           sizes and hashes of all of the above, written last
 *   DIR/latest -> step-00000300          symbolic link, replaced by one atomic rename
 *
 * A checkpoint is written completely into its own directory; only when every rank has written its
 * file does rank 0 write the manifest and move `latest`. A crash at any moment leaves `latest` on a
 * complete checkpoint (or on none yet). The newest --keep-checkpoints are kept. Resuming takes
 * `latest` when it verifies, else the newest step directory that does, and says which.
 */
#ifndef EDGC_TRAIN_CHECKPOINT_DIR_H
#define EDGC_TRAIN_CHECKPOINT_DIR_H

#include <stddef.h>

#include "checkpoint.h"

/* Collective: writes the checkpoint of st->step into DIR and makes it current, then removes all
 * but the newest `keep`. `whole` is the whole model (read on rank 0 only), `own` this rank's part
 * (its AdamW moments go into its state file; the same object as `whole` without a pipeline),
 * `stages` the pipeline's length. Stops every rank with a reason if it cannot be written (the
 * previous checkpoint stays current). */
void ckdir_save(const char* dir, int keep, const gpt2* whole, const gpt2* own, int stages,
                const train_state* st, const void* blob, size_t blob_len);

/* Collective: loads the newest complete checkpoint under dir (or dir itself when it is a step
 * directory): the model into `whole`, this rank's moments into `own`, *st and *blob (malloc'ed,
 * caller frees); `used` gets its directory. Stops every rank with a reason when there is none,
 * or when it was written by another number of ranks or pipeline stages. */
void ckdir_resume(const char* dir, gpt2* whole, gpt2* own, int stages, train_state* st, void** blob,
                  size_t* blob_len, char* used, size_t used_len);

#endif
