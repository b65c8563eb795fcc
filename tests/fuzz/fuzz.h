/*
 * fuzz.h - the entry point every harness in tests/fuzz/ defines (libFuzzer's). Under `make fuzz`
 * libFuzzer drives it; in every `make test` corpus_main.c replays the seed corpus through it.
 */
#ifndef EDGC_FUZZ_H
#define EDGC_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

/* FNV-1a 64 (the checksum of every edgc file), so harnesses can repair a checksum and let the
 * fuzzer reach the parser behind it. */
static inline uint64_t fuzz_fnv1a(const uint8_t* p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3ULL;
    return h;
}

#endif
