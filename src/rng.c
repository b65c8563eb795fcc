/*
 * rng.c - the library's only random source: xoshiro256** (Blackman & Vigna) seeded through
 * splitmix64, and Box-Muller normals. Every worker seeds it identically, so the Gaussian Q of
 * PowerSGD is the same everywhere without any communication.
 */
#include "edgc_internal.h"

#include <math.h>

static uint64_t splitmix64(uint64_t* x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

void edgc__rng_seed(edgc__rng* rng, uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        rng->s[i] = splitmix64(&seed);
}

uint64_t edgc__rng_next(edgc__rng* rng)
{
    uint64_t* s = rng->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

/* Uniform in (0, 1]: never 0, so the logarithm below is finite. */
static double uniform_open0(edgc__rng* rng)
{
    return ((double)(edgc__rng_next(rng) >> 11) + 1.0) * 0x1.0p-53;
}

void edgc__rng_gaussian(edgc__rng* rng, float* out, size_t n)
{
    const double two_pi = 6.283185307179586;
    for (size_t i = 0; i < n; i += 2) {
        double r = sqrt(-2.0 * log(uniform_open0(rng)));
        double th = two_pi * uniform_open0(rng);
        out[i] = (float)(r * cos(th));
        if (i + 1 < n) out[i + 1] = (float)(r * sin(th));
    }
}
