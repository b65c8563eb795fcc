/*
 * fuzz_token_shard.c - the token-data reader on untrusted bytes. Input: one flag byte, then the
 * file. flag & 1: llm.c shard (else text); (flag >> 1) & 3 picks the model vocabulary (none, GPT-2,
 * LLaMA 3, 300). Whatever is accepted must hold only tokens inside the vocabulary it reports.
 */
#include <stdlib.h>

#include "dataloader.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
    if (size < 1) return 0;
    static const int vocabs[4] = {0, 50257, 128256, 300};
    int vocab = vocabs[(data[0] >> 1) & 3];
    token_data d;
    char why[512];
    if (data_parse(data + 1, size - 1, data[0] & 1, vocab, "fuzz", &d, why, sizeof why) != 0) {
        if (d.tokens != NULL || why[0] == '\0') abort();
        return 0;
    }
    if (vocab != 0 && (data[0] & 1) && d.vocab_size != vocab) abort();
    for (size_t i = 0; i < d.n; i++)
        if (d.tokens[i] < 0 || d.tokens[i] >= d.vocab_size) abort();
    data_free(&d);
    return 0;
}
