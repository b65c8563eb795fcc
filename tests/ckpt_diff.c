/* ckpt_diff.c - test helper: compares the parameters of two llm.c model files.
 *   ckpt_diff A B TOL    exit 0 iff same shape and max |a - b| <= TOL (TOL 0: bit-identical) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"

static int load(const char* p, gpt2* m)
{
    char why[512];
    gpt2_config c;
    if (ckpt_read_config(p, &c, why, sizeof why) != 0 || gpt2_build(m, &c) != 0 ||
        ckpt_load_model(p, m, NULL, why, sizeof why) != 0) {
        fprintf(stderr, "ckpt_diff: %s\n", why);
        return -1;
    }
    return 0;
}

int main(int argc, char** argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: ckpt_diff A.bin B.bin TOL\n");
        return 2;
    }
    gpt2 a, b;
    if (load(argv[1], &a) != 0 || load(argv[2], &b) != 0) return 2;
    if (a.num_parameters != b.num_parameters) {
        fprintf(stderr, "ckpt_diff: different shapes\n");
        return 1;
    }
    double tol = atof(argv[3]), worst = 0.0;
    for (size_t i = 0; i < a.num_parameters; i++) {
        double d = a.params_memory[i] - (double)b.params_memory[i];
        if (d < 0) d = -d;
        if (d > worst || d != d) worst = d;
    }
    int same = memcmp(a.params_memory, b.params_memory, a.num_parameters * sizeof(float)) == 0;
    printf("ckpt_diff: max |diff| = %.3g%s\n", worst, same ? " (bit-identical)" : "");
    gpt2_free(&a);
    gpt2_free(&b);
    return (tol == 0.0 ? same : worst <= tol) ? 0 : 1;
}
