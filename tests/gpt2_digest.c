/*
 * gpt2_digest.c - prints a hash of the loss, the activations and every parameter gradient of one
 * forward and backward of a small GPT-2 (widths that leave vector tails everywhere). Built once
 * per instruction-set choice of gpt2.c's element-wise loops; test_gpt2_isa.sh checks that every
 * build prints the same hash, i.e. that the variants round identically.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "gpt2.h"

static uint64_t fnv1a(uint64_t h, const void* p, size_t n)
{
    const unsigned char* c = p;
    for (size_t i = 0; i < n; i++) {
        h ^= c[i];
        h *= 1099511628211u;
    }
    return h;
}

int main(void)
{
    enum { B = 3, T = 20 };
    const gpt2_config cfg = {.max_seq_len = T,
                             .vocab_size = 50,
                             .padded_vocab_size = 64,
                             .num_layers = 2,
                             .num_heads = 4,
                             .channels = 72};
    gpt2 m;
    if (gpt2_build(&m, &cfg) != 0) {
        fprintf(stderr, "gpt2_digest: cannot build the model\n");
        return 1;
    }
    gpt2_init_weights(&m, 7);
    int in[B * T], tg[B * T];
    uint32_t s = 12345;
    for (int i = 0; i < B * T; i++) {
        s = s * 1664525u + 1013904223u;
        in[i] = (int)((s >> 8) % 50);
        tg[i] = (int)((s >> 20) % 50);
    }
    if (gpt2_forward(&m, in, tg, B, T) != 0) {
        fprintf(stderr, "gpt2_digest: forward failed\n");
        gpt2_free(&m);
        return 1;
    }
    gpt2_zero_grad(&m);
    gpt2_backward(&m, NULL);
    uint64_t h = 14695981039346656037u;
    h = fnv1a(h, &m.mean_loss, sizeof m.mean_loss);
    h = fnv1a(h, m.acts_memory, m.num_activations * sizeof(float));
    h = fnv1a(h, m.grads_memory, m.num_parameters * sizeof(float));
    printf("loss %.9g digest %016" PRIx64 "\n", m.mean_loss, h);
    gpt2_free(&m);
    return 0;
}
