/* fuzz_model.h - the small model whose state files seed the checkpoint harness. */
#ifndef EDGC_FUZZ_MODEL_H
#define EDGC_FUZZ_MODEL_H

#include "gpt2.h"

static const gpt2_config FUZZ_MODEL = {.max_seq_len = 4,
                                       .vocab_size = 10,
                                       .padded_vocab_size = 16,
                                       .num_layers = 1,
                                       .num_heads = 1,
                                       .channels = 4};

#endif
