/*
 * sample.c - text from the trained model at the end of a run; see sample.h.
 */
#include "sample.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ranks.h"

void sample_text(gpt2* m, int len, uint64_t seed)
{
    if (g_rank != 0 || len <= 0) return;
    if (m->config.vocab_size != 256) {
        say("\nsample: skipped (GPT-2 BPE tokens need a tokenizer this trainer does not have)\n");
        return;
    }
    int T = m->config.max_seq_len;
    int* ctx = calloc((size_t)T, sizeof(int));
    if (ctx == NULL) return;
    int n = 1;
    ctx[0] = '\n';
    uint64_t s = seed ^ 0x5eedULL;
    say("\nsample:\n");
    for (int i = 0; i < len; i++) {
        int start = n > T ? n - T : 0, t = n - start;
        if (gpt2_forward(m, ctx + start, NULL, 1, t) != 0) break;
        const float* p = m->acts.probs + (size_t)(t - 1) * m->config.padded_vocab_size;
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        double u = (double)(s >> 11) * 0x1.0p-53, acc = 0.0;
        int next = m->config.vocab_size - 1;
        for (int v = 0; v < m->config.vocab_size; v++) {
            acc += p[v];
            if (u < acc) {
                next = v;
                break;
            }
        }
        putchar((next >= 32 && next < 127) || next == '\n' ? next : '?');
        if (n < T) {
            ctx[n++] = next;
        } else { /* slide the context window */
            memmove(ctx, ctx + 1, (size_t)(T - 1) * sizeof(int));
            ctx[T - 1] = next;
        }
    }
    putchar('\n');
    fflush(stdout);
    free(ctx);
}
