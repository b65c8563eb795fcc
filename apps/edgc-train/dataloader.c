/*
 * dataloader.c - reading token data. A shard's size must equal its header's count exactly: that
 * single check rejects truncated shards. Text is taken byte for byte.
 */
#define _POSIX_C_SOURCE 200809L
#include "dataloader.h"
#include "fileio.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SHARD_MAGIC 20240520
#define GPT2_VOCAB  50257

static int ends_with(const char* s, const char* suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

static int parse_text(const unsigned char* buf, size_t len, token_data* out, char* why, size_t wl)
{
    out->tokens = malloc((len ? len : 1) * sizeof(int));
    if (out->tokens == NULL) {
        snprintf(why, wl, "out of memory for %zu tokens", len);
        return -1;
    }
    for (size_t i = 0; i < len; i++)
        out->tokens[i] = buf[i];
    out->n = len;
    out->vocab_size = 256;
    return 0;
}

/* llm.c shards: version 1 holds uint16 GPT-2 tokens, version 2 uint32 tokens of a vocabulary the
 * shard does not name (llm.c writes them for LLaMA 3): that one comes from the model. */
static int parse_shard(const unsigned char* buf, size_t len, int vocab, const char* path,
                       token_data* out, char* why, size_t wl)
{
    int32_t header[256];
    if (len < sizeof header) {
        snprintf(why, wl, "'%s': %zu bytes, shorter than the 1024-byte shard header", path, len);
        return -1;
    }
    memcpy(header, buf, sizeof header);
    if (header[0] != SHARD_MAGIC || (header[1] != 1 && header[1] != 2)) {
        snprintf(why, wl, "'%s': not an llm.c token shard (magic %d version %d, want %d 1 or 2)",
                 path, header[0], header[1], SHARD_MAGIC);
        return -1;
    }
    size_t width = header[1] == 1 ? 2 : 4, ntok = (size_t)(uint32_t)header[2];
    if (header[1] == 2 && vocab == 0) {
        snprintf(why, wl,
                 "'%s': an llm.c version-2 shard (uint32 tokens, e.g. LLaMA 3) does not say its "
                 "vocabulary; give --init with a model of that vocabulary",
                 path);
        return -1;
    }
    if (vocab == 0) vocab = GPT2_VOCAB;
    if (header[2] < 0 || (len - sizeof header) / width != ntok || (len - sizeof header) % width) {
        snprintf(why, wl,
                 "'%s': header says %d tokens but the file holds %zu bytes of tokens "
                 "(truncated or corrupted)",
                 path, header[2], len - sizeof header);
        return -1;
    }
    out->tokens = malloc((ntok ? ntok : 1) * sizeof(int));
    if (out->tokens == NULL) {
        snprintf(why, wl, "out of memory for %zu tokens", ntok);
        return -1;
    }
    for (size_t i = 0; i < ntok; i++) {
        uint32_t t = 0;
        if (width == 2) {
            uint16_t t16;
            memcpy(&t16, buf + sizeof header + 2 * i, 2);
            t = t16;
        } else {
            memcpy(&t, buf + sizeof header + 4 * i, 4);
        }
        if (t >= (uint32_t)vocab) {
            snprintf(why, wl, "'%s': token %u at position %zu is outside the %s vocabulary (%d)",
                     path, t, i, vocab == GPT2_VOCAB ? "GPT-2" : "model's", vocab);
            data_free(out);
            return -1;
        }
        out->tokens[i] = (int)t;
    }
    out->n = ntok;
    out->vocab_size = vocab;
    return 0;
}

int data_parse(const unsigned char* buf, size_t len, int is_shard, int vocab, const char* path,
               token_data* out, char* why, size_t wl)
{
    memset(out, 0, sizeof *out);
    return is_shard ? parse_shard(buf, len, vocab, path, out, why, wl)
                    : parse_text(buf, len, out, why, wl);
}

int data_load(const char* path, int vocab, token_data* out, char* why, size_t wl)
{
    memset(out, 0, sizeof *out);
    unsigned char* buf;
    size_t len;
    if (read_whole_file(path, "data file", &buf, &len, why, wl) != 0) return -1;
    int rc = data_parse(buf, len, ends_with(path, ".bin"), vocab, path, out, why, wl);
    free(buf);
    return rc;
}

int data_split(const token_data* src, double fraction, token_data* train, token_data* val)
{
    size_t nv = (size_t)((double)src->n * fraction);
    size_t nt = src->n - nv;
    memset(train, 0, sizeof *train);
    memset(val, 0, sizeof *val);
    train->tokens = malloc((nt ? nt : 1) * sizeof(int));
    val->tokens = malloc((nv ? nv : 1) * sizeof(int));
    if (train->tokens == NULL || val->tokens == NULL) {
        data_free(train);
        data_free(val);
        return -1;
    }
    memcpy(train->tokens, src->tokens, nt * sizeof(int));
    memcpy(val->tokens, src->tokens + nt, nv * sizeof(int));
    train->n = nt;
    val->n = nv;
    train->vocab_size = val->vocab_size = src->vocab_size;
    return 0;
}

size_t data_windows(const token_data* d, int B, int T)
{
    size_t span = (size_t)B * T;
    return d->n < span + 1 ? 0 : (d->n - 1) / span;
}

void data_batch(const token_data* d, size_t k, int B, int T, int* inputs, int* targets)
{
    size_t span = (size_t)B * T, at = (k % data_windows(d, B, T)) * span;
    memcpy(inputs, d->tokens + at, span * sizeof(int));
    memcpy(targets, d->tokens + at + 1, span * sizeof(int));
}

void data_free(token_data* d)
{
    free(d->tokens);
    memset(d, 0, sizeof *d);
}
