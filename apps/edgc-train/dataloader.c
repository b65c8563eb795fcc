/*
 * dataloader.c - reading token data. A shard's size must equal its header's count exactly: that
 * single check rejects truncated shards. Text is taken byte for byte.
 */
#define _POSIX_C_SOURCE 200809L
#include "dataloader.h"

#include <errno.h>
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

static int read_all(const char* path, unsigned char** buf, size_t* len, char* why, size_t wl)
{
    FILE* f = fopen(path, "rb");
    if (f == NULL) {
        snprintf(why, wl, "cannot open data file '%s': %s", path, strerror(errno));
        return -1;
    }
    if (fseek(f, 0, SEEK_END) != 0 || ftell(f) < 0) {
        snprintf(why, wl, "cannot read data file '%s'", path);
        fclose(f);
        return -1;
    }
    size_t n = (size_t)ftell(f);
    rewind(f);
    *buf = malloc(n ? n : 1);
    if (*buf == NULL || fread(*buf, 1, n, f) != n) {
        snprintf(why, wl, "cannot read %zu bytes of '%s'", n, path);
        free(*buf);
        *buf = NULL;
        fclose(f);
        return -1;
    }
    fclose(f);
    *len = n;
    return 0;
}

int data_load(const char* path, token_data* out, char* why, size_t wl)
{
    memset(out, 0, sizeof *out);
    unsigned char* buf;
    size_t len;
    if (read_all(path, &buf, &len, why, wl) != 0) return -1;
    if (!ends_with(path, ".bin")) {
        out->tokens = malloc((len ? len : 1) * sizeof(int));
        if (out->tokens == NULL) {
            free(buf);
            snprintf(why, wl, "out of memory for %zu tokens", len);
            return -1;
        }
        for (size_t i = 0; i < len; i++)
            out->tokens[i] = buf[i];
        out->n = len;
        out->vocab_size = 256;
        free(buf);
        return 0;
    }
    int32_t header[256];
    if (len < sizeof header) {
        snprintf(why, wl, "'%s': %zu bytes, shorter than the 1024-byte shard header", path, len);
        free(buf);
        return -1;
    }
    memcpy(header, buf, sizeof header);
    if (header[0] != SHARD_MAGIC || header[1] != 1) {
        snprintf(why, wl, "'%s': not an llm.c token shard (magic %d version %d, want %d 1)", path,
                 header[0], header[1], SHARD_MAGIC);
        free(buf);
        return -1;
    }
    size_t ntok = (size_t)(uint32_t)header[2];
    if (header[2] < 0 || len != sizeof header + 2 * ntok) {
        snprintf(why, wl,
                 "'%s': header says %d tokens but the file holds %zu bytes of tokens "
                 "(truncated or corrupted)",
                 path, header[2], len - sizeof header);
        free(buf);
        return -1;
    }
    out->tokens = malloc((ntok ? ntok : 1) * sizeof(int));
    if (out->tokens == NULL) {
        free(buf);
        snprintf(why, wl, "out of memory for %zu tokens", ntok);
        return -1;
    }
    for (size_t i = 0; i < ntok; i++) {
        uint16_t t;
        memcpy(&t, buf + sizeof header + 2 * i, 2);
        if (t >= GPT2_VOCAB) {
            snprintf(why, wl,
                     "'%s': token %u at position %zu is outside the GPT-2 vocabulary "
                     "(%d)",
                     path, t, i, GPT2_VOCAB);
            free(buf);
            data_free(out);
            return -1;
        }
        out->tokens[i] = t;
    }
    out->n = ntok;
    out->vocab_size = GPT2_VOCAB;
    free(buf);
    return 0;
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
