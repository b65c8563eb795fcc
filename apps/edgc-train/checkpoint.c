/*
 * checkpoint.c - model and training-state files; see checkpoint.h for the formats.
 */
#define _POSIX_C_SOURCE 200809L
#include "checkpoint.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define STATE_MAGIC   "EDGCTRN1"
#define STATE_VERSION 2u

uint64_t ckpt_hash(const void* p, size_t n)
{
    const unsigned char* b = p;
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ULL;
    return h;
}

/* A write in progress: to a temporary file beside the target. */
typedef struct atomic_file {
    FILE* f;
    char tmp[4096];
    const char* path;
    int failed;
} atomic_file;

static int af_open(atomic_file* a, const char* path, char* why, size_t wl)
{
    memset(a, 0, sizeof *a);
    a->path = path;
    snprintf(a->tmp, sizeof a->tmp, "%s.tmp.%ld", path, (long)getpid());
    a->f = fopen(a->tmp, "wb");
    if (a->f == NULL) {
        snprintf(why, wl, "cannot write '%s': %s", a->tmp, strerror(errno));
        return -1;
    }
    return 0;
}

static void af_write(atomic_file* a, const void* p, size_t n)
{
    if (!a->failed && n > 0 && fwrite(p, 1, n, a->f) != n) a->failed = 1;
}

static int af_commit(atomic_file* a, char* why, size_t wl)
{
    int bad = a->failed || fflush(a->f) != 0 || fsync(fileno(a->f)) != 0;
    bad |= fclose(a->f) != 0;
    if (!bad && rename(a->tmp, a->path) == 0) return 0;
    snprintf(why, wl, "writing '%s' failed: %s (the previous file is untouched)", a->path,
             strerror(errno));
    remove(a->tmp);
    return -1;
}

static int read_header(FILE* f, const char* path, int32_t* h, char* why, size_t wl)
{
    if (fread(h, sizeof(int32_t), 256, f) != 256) {
        snprintf(why, wl, "'%s': too short for a model header (truncated?)", path);
        return -1;
    }
    if (h[0] != MODEL_MAGIC) {
        snprintf(why, wl, "'%s': not an llm.c GPT-2 checkpoint (magic %d, want %d)", path, h[0],
                 MODEL_MAGIC);
        return -1;
    }
    if (h[1] != MODEL_VERSION_FP32) {
        snprintf(why, wl, "'%s': checkpoint version %d; only version 3 (float32) is supported",
                 path, h[1]);
        return -1;
    }
    return 0;
}

int ckpt_read_config(const char* path, gpt2_config* c, char* why, size_t wl)
{
    FILE* f = fopen(path, "rb");
    if (f == NULL) {
        snprintf(why, wl, "cannot open checkpoint '%s': %s", path, strerror(errno));
        return -1;
    }
    int32_t h[256];
    int rc = read_header(f, path, h, why, wl);
    fclose(f);
    if (rc != 0) return -1;
    *c = (gpt2_config){.max_seq_len = h[2],
                       .vocab_size = h[3],
                       .num_layers = h[4],
                       .num_heads = h[5],
                       .channels = h[6],
                       .padded_vocab_size = h[7]};
    char inner[200];
    if (gpt2_config_check(c, inner, sizeof inner) != 0) {
        snprintf(why, wl, "'%s': header describes no valid model: %s", path, inner);
        return -1;
    }
    return 0;
}

int ckpt_load_model(const char* path, gpt2* m, char* why, size_t wl)
{
    gpt2_config c;
    if (ckpt_read_config(path, &c, why, wl) != 0) return -1;
    const gpt2_config* have = &m->config;
    if (c.max_seq_len != have->max_seq_len || c.vocab_size != have->vocab_size ||
        c.num_layers != have->num_layers || c.num_heads != have->num_heads ||
        c.channels != have->channels || c.padded_vocab_size != have->padded_vocab_size) {
        snprintf(why, wl,
                 "'%s' holds a model of shape L=%d C=%d NH=%d maxT=%d V=%d, not the L=%d C=%d "
                 "NH=%d maxT=%d V=%d being trained",
                 path, c.num_layers, c.channels, c.num_heads, c.max_seq_len, c.vocab_size,
                 have->num_layers, have->channels, have->num_heads, have->max_seq_len,
                 have->vocab_size);
        return -1;
    }
    FILE* f = fopen(path, "rb");
    if (f == NULL) {
        snprintf(why, wl, "cannot open checkpoint '%s': %s", path, strerror(errno));
        return -1;
    }
    int rc = -1;
    if (fseek(f, 256 * sizeof(int32_t), SEEK_SET) == 0 &&
        fread(m->params_memory, sizeof(float), m->num_parameters, f) == m->num_parameters) {
        char extra;
        rc = fread(&extra, 1, 1, f) == 0 ? 0 : -2;
    }
    fclose(f);
    if (rc == -1)
        snprintf(why, wl, "'%s': truncated (fewer than %zu parameters)", path, m->num_parameters);
    if (rc == -2) snprintf(why, wl, "'%s': longer than its header says (corrupted?)", path);
    return rc == 0 ? 0 : -1;
}

int ckpt_save_model(const char* path, const gpt2* m, char* why, size_t wl)
{
    int32_t h[256] = {0};
    const gpt2_config* c = &m->config;
    h[0] = MODEL_MAGIC;
    h[1] = MODEL_VERSION_FP32;
    h[2] = c->max_seq_len;
    h[3] = c->vocab_size;
    h[4] = c->num_layers;
    h[5] = c->num_heads;
    h[6] = c->channels;
    h[7] = c->padded_vocab_size;
    atomic_file a;
    if (af_open(&a, path, why, wl) != 0) return -1;
    af_write(&a, h, sizeof h);
    af_write(&a, m->params_memory, m->num_parameters * sizeof(float));
    return af_commit(&a, why, wl);
}

/* State file: magic[8] u32 version u32 pad | train_state fields (step, batch, seq, world,
 * total_steps, seed, params_hash, elapsed_s) | u64 num_params |
 * u64 blob_len | m | v | blob | u64 FNV-1a of all before. */
int ckpt_save_state(const char* path, const train_state* st, const gpt2* m, const void* blob,
                    size_t blob_len, char* why, size_t wl)
{
    uint64_t n = m->num_parameters, bl = blob_len, sum;
    uint32_t version = STATE_VERSION, pad = 0;
    atomic_file a;
    if (af_open(&a, path, why, wl) != 0) return -1;
    /* hash as we go: the same bytes that are written */
    uint64_t h = 0xcbf29ce484222325ULL;
#define OUT(p, len)                                                                                \
    do {                                                                                           \
        const unsigned char* b_ = (const unsigned char*)(p);                                       \
        for (size_t i_ = 0; i_ < (len); i_++)                                                      \
            h = (h ^ b_[i_]) * 0x100000001b3ULL;                                                   \
        af_write(&a, (p), (len));                                                                  \
    } while (0)
    OUT(STATE_MAGIC, 8);
    OUT(&version, 4);
    OUT(&pad, 4);
    OUT(&st->step, 8);
    OUT(&st->batch, 8);
    OUT(&st->seq, 8);
    OUT(&st->world, 8);
    OUT(&st->total_steps, 8);
    OUT(&st->seed, 8);
    OUT(&st->params_hash, 8);
    OUT(&st->elapsed_s, 8);
    OUT(&n, 8);
    OUT(&bl, 8);
    OUT(m->m_memory, n * sizeof(float));
    OUT(m->v_memory, n * sizeof(float));
    if (blob_len > 0) OUT(blob, blob_len);
#undef OUT
    sum = h;
    af_write(&a, &sum, 8);
    return af_commit(&a, why, wl);
}

int ckpt_load_state(const char* path, train_state* st, gpt2* m, void** blob, size_t* blob_len,
                    char* why, size_t wl)
{
    *blob = NULL;
    *blob_len = 0;
    FILE* f = fopen(path, "rb");
    if (f == NULL) {
        snprintf(why, wl, "cannot open training state '%s': %s", path, strerror(errno));
        return -1;
    }
    unsigned char* buf = NULL;
    long len = -1;
    if (fseek(f, 0, SEEK_END) == 0) len = ftell(f);
    if (len >= 0 && fseek(f, 0, SEEK_SET) == 0) buf = malloc(len > 0 ? (size_t)len : 1);
    int ok = buf != NULL && fread(buf, 1, (size_t)len, f) == (size_t)len;
    fclose(f);
    const size_t head = 16 + 8 * 8 + 16;
    if (!ok || (size_t)len < head + 8) {
        snprintf(why, wl, "'%s': truncated training state", path);
        free(buf);
        return -1;
    }
    uint32_t version;
    memcpy(&version, buf + 8, 4);
    if (memcmp(buf, STATE_MAGIC, 8) != 0 || version != STATE_VERSION) {
        snprintf(why, wl, "'%s': not an edgc-train state file of version %u", path, STATE_VERSION);
        free(buf);
        return -1;
    }
    uint64_t sum;
    memcpy(&sum, buf + len - 8, 8);
    if (sum != ckpt_hash(buf, (size_t)len - 8)) {
        snprintf(why, wl, "'%s': checksum mismatch (corrupted or truncated)", path);
        free(buf);
        return -1;
    }
    const unsigned char* p = buf + 16;
    uint64_t n, bl;
    memcpy(&st->step, p, 8);
    memcpy(&st->batch, p + 8, 8);
    memcpy(&st->seq, p + 16, 8);
    memcpy(&st->world, p + 24, 8);
    memcpy(&st->total_steps, p + 32, 8);
    memcpy(&st->seed, p + 40, 8);
    memcpy(&st->params_hash, p + 48, 8);
    memcpy(&st->elapsed_s, p + 56, 8);
    memcpy(&n, p + 64, 8);
    memcpy(&bl, p + 72, 8);
    if (n != m->num_parameters || (uint64_t)len != head + 2 * n * sizeof(float) + bl + 8) {
        snprintf(why, wl, "'%s': state for %llu parameters, the model has %zu", path,
                 (unsigned long long)n, m->num_parameters);
        free(buf);
        return -1;
    }
    memcpy(m->m_memory, buf + head, n * sizeof(float));
    memcpy(m->v_memory, buf + head + n * sizeof(float), n * sizeof(float));
    if (bl > 0) {
        *blob = malloc(bl);
        if (*blob == NULL) {
            snprintf(why, wl, "out of memory for the reducer state");
            free(buf);
            return -1;
        }
        memcpy(*blob, buf + head + 2 * n * sizeof(float), bl);
        *blob_len = bl;
    }
    free(buf);
    return 0;
}
