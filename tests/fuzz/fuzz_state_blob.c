/*
 * fuzz_state_blob.c - edgc_reducer_load on untrusted bytes. Input: one flag byte, then the blob.
 * An odd flag repairs the blob's trailing checksum first, so mutations reach the parser behind it.
 * Every load must succeed or fail cleanly; a failed load must leave the reducer able to step.
 */
#include <stdlib.h>
#include <string.h>

#include "edgc.h"
#include "fuzz.h"

/* The reducer every seed was saved from (make_seeds.c): same config and layout. */
#include "fuzz_reducer.h"

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
    if (size < 1) return 0;
    edgc_inproc* g;
    edgc_reducer* r;
    if (fuzz_reducer_create(&g, &r) != EDGC_OK) abort();
    size_t n = size - 1;
    uint8_t* blob = malloc(n ? n : 1);
    memcpy(blob, data + 1, n);
    if ((data[0] & 1) && n >= 8) {
        uint64_t sum = fuzz_fnv1a(blob, n - 8);
        memcpy(blob + n - 8, &sum, 8);
    }
    edgc_status st = edgc_reducer_load(r, blob, n);
    if (st != EDGC_OK && st != EDGC_ERR_CORRUPT && st != EDGC_ERR_MISMATCH) abort();
    float grad[FUZZ_TOTAL];
    for (int i = 0; i < FUZZ_TOTAL; i++)
        grad[i] = (float)((i * 37) % 11) - 5.0f;
    st = edgc_reducer_step(r, grad, NULL); /* whatever was loaded, stepping must be safe */
    if (st != EDGC_OK && st != EDGC_ERR_NONFINITE && st != EDGC_ERR_NOMEM) abort();
    free(blob);
    edgc_reducer_free(r);
    edgc_inproc_free(g);
    return 0;
}
