/*
 * fuzz_checkpoint.c - the checkpoint readers on untrusted bytes: the llm.c model header, the
 * training-state file and the manifest. Input: one flag byte, then the file. flag % 3 picks the
 * reader; flag & 4 repairs the file's checksum first, so mutations reach the parser behind it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "fuzz.h"
#include "fuzz_model.h"

static void fuzz_header(const uint8_t* p, size_t n)
{
    int32_t h[256] = {0};
    memcpy(h, p, n < sizeof h ? n : sizeof h);
    gpt2_config c;
    char why[512];
    if (ckpt_parse_header(h, "fuzz", &c, why, sizeof why) == 0 &&
        gpt2_config_check(&c, why, sizeof why) != 0)
        abort(); /* accepted a shape the model code refuses */
}

static void fuzz_state(uint8_t* p, size_t n, int repair)
{
    if (repair && n >= 8) {
        uint64_t sum = fuzz_fnv1a(p, n - 8);
        memcpy(p + n - 8, &sum, 8);
    }
    gpt2 m;
    if (gpt2_build(&m, &FUZZ_MODEL) != 0) abort();
    train_state st;
    void* blob;
    size_t bl;
    char why[512];
    if (ckpt_parse_state(p, n, "fuzz", &st, &m, &blob, &bl, why, sizeof why) == 0) {
        if (bl > n) abort(); /* a blob longer than the file it came from */
        free(blob);
    } else if (blob != NULL || why[0] == '\0') {
        abort(); /* a failure must say why and hand nothing back */
    }
    gpt2_free(&m);
}

static void fuzz_manifest(uint8_t* p, size_t n, int repair)
{
    char* text = malloc(n + 64);
    memcpy(text, p, n);
    if (repair) { /* recompute the last "checksum" line over the text before it */
        size_t at = n;
        while (at > 0 &&
               !(text[at - 1] == '\n' && n - at >= 9 && memcmp(text + at, "checksum ", 9) == 0))
            at--;
        if (at > 0)
            n = at + (size_t)sprintf(text + at, "checksum %016llx\n",
                                     (unsigned long long)fuzz_fnv1a((uint8_t*)text, at));
    }
    ckpt_manifest mf;
    char why[512];
    if (ckpt_manifest_parse(text, n, "fuzz", &mf, why, sizeof why) == 0) {
        if (mf.world < 1 || mf.states == NULL) abort();
        ckpt_manifest_free(&mf);
    }
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
    if (size < 1) return 0;
    size_t n = size - 1;
    uint8_t* p = malloc(n ? n : 1);
    memcpy(p, data + 1, n);
    switch (data[0] % 3) {
    case 0:
        fuzz_header(p, n);
        break;
    case 1:
        fuzz_state(p, n, data[0] & 4);
        break;
    default:
        fuzz_manifest(p, n, data[0] & 4);
    }
    free(p);
    return 0;
}
