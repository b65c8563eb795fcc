/*
 * checkpoint.c - model and training-state files; see checkpoint.h for the formats.
 */
#define _POSIX_C_SOURCE 200809L
#include "checkpoint.h"
#include "fileio.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define STATE_MAGIC   "EDGCTRN1"
#define STATE_VERSION 2u

uint64_t ckpt_hash_more(uint64_t h, const void* p, size_t n)
{
    const unsigned char* b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ULL;
    return h;
}

uint64_t ckpt_hash(const void* p, size_t n)
{
    return ckpt_hash_more(CKPT_HASH_INIT, p, n);
}

/* A write in progress: to a temporary file beside the target. */
typedef struct atomic_file {
    FILE* f;
    char tmp[4096];
    const char* path;
    int failed;
    ckpt_digest written; /* size and hash of every byte written */
} atomic_file;

static int af_open(atomic_file* a, const char* path, char* why, size_t wl)
{
    memset(a, 0, sizeof *a);
    a->path = path;
    a->written.hash = CKPT_HASH_INIT;
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
    a->written.hash = ckpt_hash_more(a->written.hash, p, n);
    a->written.size += n;
}

/* Makes the file durable under its name; *d (may be NULL) gets its size and hash. */
static int af_commit(atomic_file* a, ckpt_digest* d, char* why, size_t wl)
{
    int bad = a->failed || fflush(a->f) != 0 || fsync(fileno(a->f)) != 0;
    bad |= fclose(a->f) != 0;
    if (!bad && rename(a->tmp, a->path) == 0) {
        if (d != NULL) *d = a->written;
        return 0;
    }
    snprintf(why, wl, "writing '%s' failed: %s (the previous file is untouched)", a->path,
             strerror(errno));
    remove(a->tmp);
    return -1;
}

int ckpt_parse_header(const int32_t* h, const char* path, gpt2_config* c, char* why, size_t wl)
{
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

/* Opens a model file and reads and checks its header. NULL with a reason on failure. */
static FILE* open_model(const char* path, int32_t* h, gpt2_config* c, char* why, size_t wl)
{
    FILE* f = fopen(path, "rb");
    if (f == NULL) {
        snprintf(why, wl, "cannot open checkpoint '%s': %s", path, strerror(errno));
        return NULL;
    }
    if (fread(h, sizeof(int32_t), 256, f) != 256) {
        snprintf(why, wl, "'%s': too short for a model header (truncated?)", path);
        fclose(f);
        return NULL;
    }
    if (ckpt_parse_header(h, path, c, why, wl) != 0) {
        fclose(f);
        return NULL;
    }
    return f;
}

/* 0 when shape c (read from path) is the shape `have` being trained, else -1 with a reason. */
static int shape_check(const gpt2_config* c, const gpt2_config* have, const char* path, char* why,
                       size_t wl)
{
    if (c->max_seq_len == have->max_seq_len && c->vocab_size == have->vocab_size &&
        c->num_layers == have->num_layers && c->num_heads == have->num_heads &&
        c->channels == have->channels && c->padded_vocab_size == have->padded_vocab_size)
        return 0;
    snprintf(why, wl,
             "'%s' holds a model of shape L=%d C=%d NH=%d maxT=%d V=%d, not the L=%d C=%d NH=%d "
             "maxT=%d V=%d being trained",
             path, c->num_layers, c->channels, c->num_heads, c->max_seq_len, c->vocab_size,
             have->num_layers, have->channels, have->num_heads, have->max_seq_len,
             have->vocab_size);
    return -1;
}

int ckpt_read_config(const char* path, gpt2_config* c, char* why, size_t wl)
{
    int32_t h[256];
    FILE* f = open_model(path, h, c, why, wl);
    if (f == NULL) return -1;
    fclose(f);
    return 0;
}

int ckpt_load_model(const char* path, gpt2* m, ckpt_digest* d, char* why, size_t wl)
{
    int32_t h[256];
    gpt2_config c;
    FILE* f = open_model(path, h, &c, why, wl);
    if (f == NULL) return -1;
    if (shape_check(&c, &m->config, path, why, wl) != 0) {
        fclose(f);
        return CKPT_OTHER_SHAPE;
    }
    int rc = -1;
    if (fread(m->params_memory, sizeof(float), m->num_parameters, f) == m->num_parameters) {
        char extra;
        rc = fread(&extra, 1, 1, f) == 0 ? 0 : -2;
    }
    fclose(f);
    if (rc == -1)
        snprintf(why, wl, "'%s': truncated (fewer than %zu parameters)", path, m->num_parameters);
    if (rc == -2) snprintf(why, wl, "'%s': longer than its header says (corrupted?)", path);
    if (rc == 0 && d != NULL) { /* the file is exactly header + parameters: hash those bytes */
        size_t nb = m->num_parameters * sizeof(float);
        d->size = sizeof h + nb;
        d->hash = ckpt_hash_more(ckpt_hash(h, sizeof h), m->params_memory, nb);
    }
    return rc == 0 ? 0 : -1;
}

int ckpt_save_model(const char* path, const gpt2* m, ckpt_digest* d, char* why, size_t wl)
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
    return af_commit(&a, d, why, wl);
}

/* State file: magic[8] u32 version u32 pad | train_state fields (step, batch, seq, world,
 * total_steps, seed, params_hash, elapsed_s) | u64 num_params |
 * u64 blob_len | m | v | blob | u64 FNV-1a of all before. */
#define STATE_HEAD (16 + 8 * 8 + 16)

int ckpt_save_state(const char* path, const train_state* st, const gpt2* m, const void* blob,
                    size_t blob_len, ckpt_digest* d, char* why, size_t wl)
{
    uint64_t n = m->num_parameters, bl = blob_len;
    uint32_t version = STATE_VERSION, pad = 0;
    atomic_file a;
    if (af_open(&a, path, why, wl) != 0) return -1;
    af_write(&a, STATE_MAGIC, 8);
    af_write(&a, &version, 4);
    af_write(&a, &pad, 4);
    af_write(&a, &st->step, 8);
    af_write(&a, &st->batch, 8);
    af_write(&a, &st->seq, 8);
    af_write(&a, &st->world, 8);
    af_write(&a, &st->total_steps, 8);
    af_write(&a, &st->seed, 8);
    af_write(&a, &st->params_hash, 8);
    af_write(&a, &st->elapsed_s, 8);
    af_write(&a, &n, 8);
    af_write(&a, &bl, 8);
    af_write(&a, m->m_memory, n * sizeof(float));
    af_write(&a, m->v_memory, n * sizeof(float));
    af_write(&a, blob, blob_len);
    uint64_t sum = a.written.hash; /* the trailing checksum covers every byte before it */
    af_write(&a, &sum, 8);
    return af_commit(&a, d, why, wl);
}

int ckpt_parse_state(const unsigned char* buf, size_t len, const char* path, train_state* st,
                     gpt2* m, void** blob, size_t* blob_len, char* why, size_t wl)
{
    *blob = NULL;
    *blob_len = 0;
    if (len < STATE_HEAD + 8) {
        snprintf(why, wl, "'%s': truncated training state", path);
        return -1;
    }
    uint32_t version;
    memcpy(&version, buf + 8, 4);
    if (memcmp(buf, STATE_MAGIC, 8) != 0 || version != STATE_VERSION) {
        snprintf(why, wl, "'%s': not an edgc-train state file of version %u", path, STATE_VERSION);
        return -1;
    }
    uint64_t sum;
    memcpy(&sum, buf + len - 8, 8);
    if (sum != ckpt_hash(buf, len - 8)) {
        snprintf(why, wl, "'%s': checksum mismatch (corrupted or truncated)", path);
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
    /* sizes from the file are untrusted: compare without overflowing */
    size_t body = len - STATE_HEAD - 8, moments = 2 * m->num_parameters * sizeof(float);
    if (n != m->num_parameters || body < moments || bl != body - moments) {
        snprintf(why, wl, "'%s': state for %llu parameters, the model has %zu", path,
                 (unsigned long long)n, m->num_parameters);
        return -1;
    }
    if (bl > 0) {
        *blob = malloc(bl);
        if (*blob == NULL) {
            snprintf(why, wl, "out of memory for the reducer state");
            return -1;
        }
        memcpy(*blob, buf + STATE_HEAD + moments, bl);
        *blob_len = bl;
    }
    memcpy(m->m_memory, buf + STATE_HEAD, moments / 2);
    memcpy(m->v_memory, buf + STATE_HEAD + moments / 2, moments / 2);
    return 0;
}

int ckpt_load_state(const char* path, train_state* st, gpt2* m, void** blob, size_t* blob_len,
                    ckpt_digest* d, char* why, size_t wl)
{
    unsigned char* buf;
    size_t len;
    *blob = NULL;
    *blob_len = 0;
    if (read_whole_file(path, "training state", &buf, &len, why, wl) != 0) return -1;
    int rc = ckpt_parse_state(buf, len, path, st, m, blob, blob_len, why, wl);
    if (rc == 0 && d != NULL) *d = (ckpt_digest){len, ckpt_hash(buf, len)};
    free(buf);
    return rc;
}

// ----------------------------------------------------------------------------
// manifest

#define MANIFEST_FIRST "edgc-train checkpoint 1"
#define MANIFEST_MAX   (1 << 24) /* 16 MiB: about 300k ranks */

void ckpt_state_name(char* out, size_t n, int rank)
{
    snprintf(out, n, "state.rank%d.bin", rank);
}

int ckpt_manifest_save(const char* path, const ckpt_manifest* mf, char* why, size_t wl)
{
    size_t cap = 256 + (size_t)(mf->world + 1) * 96, at = 0;
    char* text = malloc(cap);
    if (text == NULL) {
        snprintf(why, wl, "out of memory for the manifest");
        return -1;
    }
    at += (size_t)snprintf(text + at, cap - at, "%s\nstep %lld\nranks %d", MANIFEST_FIRST,
                           (long long)mf->step, mf->world);
    if (mf->stages > 1) /* without a pipeline the manifest stays as it always was */
        at += (size_t)snprintf(text + at, cap - at, " stages %d", mf->stages);
    at += (size_t)snprintf(text + at, cap - at, "\n");
    for (int r = -1; r < mf->world; r++) {
        char name[64] = "model.bin";
        const ckpt_digest* d = r < 0 ? &mf->model : &mf->states[r];
        if (r >= 0) ckpt_state_name(name, sizeof name, r);
        at += (size_t)snprintf(text + at, cap - at, "file %s %llu %016llx\n", name,
                               (unsigned long long)d->size, (unsigned long long)d->hash);
    }
    at += (size_t)snprintf(text + at, cap - at, "checksum %016llx\n",
                           (unsigned long long)ckpt_hash(text, at));
    atomic_file a;
    int rc = af_open(&a, path, why, wl);
    if (rc == 0) {
        af_write(&a, text, at);
        rc = af_commit(&a, NULL, why, wl);
    }
    free(text);
    return rc;
}

/* The next line of text[*at..len), NUL-terminated in line[]. 0, or -1 at the end or when the line
 * does not fit. */
static int next_line(const char* text, size_t len, size_t* at, char* line, size_t cap)
{
    size_t i = *at, k = 0;
    if (i >= len) return -1;
    while (i < len && text[i] != '\n') {
        if (k + 1 >= cap) return -1;
        line[k++] = text[i++];
    }
    if (i >= len) return -1; /* every line ends with a newline */
    line[k] = '\0';
    *at = i + 1;
    return 0;
}

int ckpt_manifest_parse(const char* text, size_t len, const char* path, ckpt_manifest* mf,
                        char* why, size_t wl)
{
    memset(mf, 0, sizeof *mf);
    char line[160], name[64], want[64], tail;
    size_t at = 0;
    long long step;
    unsigned long long size, hash;
    int world, stages = 1;
#define BAD(...) (snprintf(why, wl, __VA_ARGS__), ckpt_manifest_free(mf), -1)
    if (next_line(text, len, &at, line, sizeof line) != 0 || strcmp(line, MANIFEST_FIRST) != 0)
        return BAD("'%s': not an edgc-train checkpoint manifest", path);
    if (next_line(text, len, &at, line, sizeof line) != 0 ||
        sscanf(line, "step %lld%c", &step, &tail) != 1 || step < 0 ||
        next_line(text, len, &at, line, sizeof line) != 0)
        return BAD("'%s': bad step or ranks line", path);
    if (sscanf(line, "ranks %d stages %d%c", &world, &stages, &tail) != 2) {
        stages = 1;
        if (sscanf(line, "ranks %d%c", &world, &tail) != 1) world = 0;
    }
    if (world < 1 || world > 1 << 20 || stages < 1 || world % stages != 0)
        return BAD("'%s': bad ranks line", path);
    mf->step = step;
    mf->world = world;
    mf->stages = stages;
    mf->states = calloc((size_t)world, sizeof *mf->states);
    if (mf->states == NULL) return BAD("out of memory reading '%s'", path);
    for (int r = -1; r < world; r++) {
        snprintf(want, sizeof want, "model.bin");
        if (r >= 0) ckpt_state_name(want, sizeof want, r);
        if (next_line(text, len, &at, line, sizeof line) != 0 ||
            sscanf(line, "file %63s %llu %llx%c", name, &size, &hash, &tail) != 3 ||
            strcmp(name, want) != 0)
            return BAD("'%s': expected the entry for %s", path, want);
        ckpt_digest* d = r < 0 ? &mf->model : &mf->states[r];
        *d = (ckpt_digest){size, hash};
    }
    size_t body = at;
    if (next_line(text, len, &at, line, sizeof line) != 0 ||
        sscanf(line, "checksum %llx%c", &hash, &tail) != 1 || at != len)
        return BAD("'%s': no checksum line at the end (truncated?)", path);
    if (hash != ckpt_hash(text, body)) return BAD("'%s': checksum mismatch", path);
#undef BAD
    return 0;
}

int ckpt_manifest_load(const char* path, ckpt_manifest* mf, char* why, size_t wl)
{
    unsigned char* buf;
    size_t len;
    memset(mf, 0, sizeof *mf);
    if (read_whole_file(path, "checkpoint manifest", &buf, &len, why, wl) != 0) return -1;
    int rc = len > MANIFEST_MAX ? (snprintf(why, wl, "'%s': too large for a manifest", path), -1)
                                : ckpt_manifest_parse((const char*)buf, len, path, mf, why, wl);
    free(buf);
    return rc;
}

void ckpt_manifest_free(ckpt_manifest* mf)
{
    free(mf->states);
    mf->states = NULL;
}
