/*
 * dataloader.h - token data for training and validation: plain text read as bytes (vocabulary
 * 256), or llm.c token shards (256-int32 header, magic 20240520; version 1: uint16 GPT-2
 * tokens, version 2: uint32 tokens of the model's vocabulary). Batches are
 * contiguous windows of B*T+1 tokens; batch k is window k mod (number of windows), so the data
 * position is a pure function of the step and rank (what resume relies on).
 */
#ifndef EDGC_TRAIN_DATALOADER_H
#define EDGC_TRAIN_DATALOADER_H

#include <stddef.h>

typedef struct token_data {
    int* tokens;
    size_t n;
    int vocab_size; /* 256 for text; for shards the vocabulary asked for, or 50257 (GPT-2) */
} token_data;

/* Loads FILE: *.bin as an llm.c shard, anything else as bytes. vocab: the model's vocabulary for
 * shards (0: GPT-2's for version 1; version 2 needs it), ignored for text. Every token is checked
 * against the vocabulary. 0 on success; else -1 with a one-line reason in why. */
int data_load(const char* path, int vocab, token_data* out, char* why, size_t why_len);
/* The same on bytes already in memory (untrusted: fuzzed). is_shard: llm.c shard, else text. */
int data_parse(const unsigned char* buf, size_t len, int is_shard, int vocab, const char* path,
               token_data* out, char* why, size_t why_len);
/* Splits off the last `fraction` of src into val (copies), the rest stays in train. */
int data_split(const token_data* src, double fraction, token_data* train, token_data* val);
/* Number of B x T windows (each needs T + 1 tokens). */
size_t data_windows(const token_data* d, int B, int T);
/* Fills inputs and targets (B * T each) from window k mod data_windows. */
void data_batch(const token_data* d, size_t k, int B, int T, int* inputs, int* targets);
void data_free(token_data* d);

#endif
