/*
 * dataloader.h - token data for training and validation: plain text read as bytes (vocabulary
 * 256), or llm.c token shards (256-int32 header, magic 20240520, uint16 tokens). Batches are
 * contiguous windows of B*T+1 tokens; batch k is window k mod (number of windows), so the data
 * position is a pure function of the step and rank (what resume relies on).
 */
#ifndef EDGC_TRAIN_DATALOADER_H
#define EDGC_TRAIN_DATALOADER_H

#include <stddef.h>

typedef struct token_data {
    int* tokens;
    size_t n;
    int vocab_size; /* 256 for text, 50257 for GPT-2 shards */
} token_data;

/* Loads FILE: *.bin as an llm.c shard, anything else as bytes. Every token is checked against the
 * vocabulary. 0 on success; else -1 with a one-line reason in why. */
int data_load(const char* path, token_data* out, char* why, size_t why_len);
/* Splits off the last `fraction` of src into val (copies), the rest stays in train. */
int data_split(const token_data* src, double fraction, token_data* train, token_data* val);
/* Number of B x T windows (each needs T + 1 tokens). */
size_t data_windows(const token_data* d, int B, int T);
/* Fills inputs and targets (B * T each) from window k mod data_windows. */
void data_batch(const token_data* d, size_t k, int B, int T, int* inputs, int* targets);
void data_free(token_data* d);

#endif
