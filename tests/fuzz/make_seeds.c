/*
 * make_seeds.c - writes the seed corpus of the fuzz harnesses (tests/fuzz/corpus/<harness>/):
 * valid files of every kind the readers take, each behind the harness's flag byte. Run by
 * `make fuzz-seeds` when a file format changes; the output is committed.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "checkpoint.h"
#include "fuzz_model.h"
#include "fuzz_reducer.h"

static const char* g_dir;

static void put(const char* harness, const char* name, uint8_t flag, const void* p, size_t n)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", g_dir, harness);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/%s/%s", g_dir, harness, name);
    FILE* f = fopen(path, "wb");
    if (f == NULL || fwrite(&flag, 1, 1, f) != 1 || fwrite(p, 1, n, f) != n) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(1);
    }
    fclose(f);
}

/* Reads a file written by the checkpoint code back into memory. */
static void* slurp(const char* path, size_t* n)
{
    FILE* f = fopen(path, "rb");
    if (f == NULL) exit(1);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    rewind(f);
    void* b = malloc(*n);
    if (fread(b, 1, *n, f) != *n) exit(1);
    fclose(f);
    remove(path);
    return b;
}

static void state_blobs(void)
{
    edgc_inproc* g;
    edgc_reducer* r;
    if (fuzz_reducer_create(&g, &r) != EDGC_OK) exit(1);
    float grad[FUZZ_TOTAL];
    for (int step = 1; step <= 14; step++) {
        for (int i = 0; i < FUZZ_TOTAL; i++)
            grad[i] = (float)(((i + 3) * step * 7919) % 23) - 11.0f;
        edgc_reducer_step(r, grad, NULL);
        if (step == 1 || step == 6 || step == 14) { /* profiling, warm-up, compressing */
            size_t n, w;
            edgc_reducer_state_size(r, &n);
            void* b = malloc(n);
            edgc_reducer_save(r, b, n, &w);
            char name[32];
            snprintf(name, sizeof name, "step%d", step);
            put("state_blob", name, 0, b, w);
            free(b);
        }
    }
    edgc_reducer_free(r);
    edgc_inproc_free(g);
}

static void checkpoints(void)
{
    gpt2 m;
    char why[512], path[4096];
    size_t n;
    if (gpt2_build(&m, &FUZZ_MODEL) != 0) exit(1);
    gpt2_init_weights(&m, 1);
    snprintf(path, sizeof path, "%s/model.tmp", g_dir);
    if (ckpt_save_model(path, &m, NULL, why, sizeof why) != 0) exit(1);
    void* b = slurp(path, &n);
    put("checkpoint", "model_header", 0, b, 1024); /* the header is what is parsed */
    free(b);
    train_state st = {.step = 7, .batch = 2, .seq = 4, .world = 2, .total_steps = 9, .seed = 1};
    const char blob[] = "reducer state goes here";
    if (ckpt_save_state(path, &st, &m, blob, sizeof blob, NULL, why, sizeof why) != 0) exit(1);
    b = slurp(path, &n);
    put("checkpoint", "state", 1, b, n);
    free(b);
    ckpt_digest states[2] = {{1000, 0x1234}, {1000, 0x5678}};
    ckpt_manifest mf = {.step = 300, .world = 2, .model = {4096, 0xfeed}, .states = states};
    if (ckpt_manifest_save(path, &mf, why, sizeof why) != 0) exit(1);
    b = slurp(path, &n);
    put("checkpoint", "manifest", 2, b, n);
    free(b);
    gpt2_free(&m);
}

static void shards(void)
{
    int32_t h[256] = {20240520, 1, 6};
    uint8_t b[1024 + 24];
    memcpy(b, h, sizeof h);
    uint16_t t16[6] = {0, 1, 50256, 300, 2, 9};
    memcpy(b + 1024, t16, sizeof t16);
    put("token_shard", "v1_gpt2", 1 | (1 << 1), b, 1024 + sizeof t16);
    h[1] = 2;
    memcpy(b, h, sizeof h);
    uint32_t t32[6] = {0, 128255, 70000, 3, 4, 5};
    memcpy(b + 1024, t32, sizeof t32);
    put("token_shard", "v2_llama", 1 | (2 << 1), b, 1024 + sizeof t32);
    const char text[] = "In the beginning God created the heaven and the earth.\n";
    put("token_shard", "text", 0, text, sizeof text - 1);
}

int main(int argc, char** argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: make_seeds CORPUS_DIR\n");
        return 1;
    }
    g_dir = argv[1];
    mkdir(g_dir, 0755);
    state_blobs();
    checkpoints();
    shards();
    return 0;
}
