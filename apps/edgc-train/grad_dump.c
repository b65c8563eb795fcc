/*
 * grad_dump.c - --dump-grads: see grad_dump.h.
 */
#include "grad_dump.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct grad_dump {
    char dir[4096];
    char suffix[32]; /* "" or ".stageS" */
    size_t total;
};

/* One item of a step list at *s: "A" or "A-B" (1 <= A <= B). Advances *s past it. */
static int next_range(const char** s, long* lo, long* hi)
{
    char* end;
    errno = 0;
    if (!isdigit((unsigned char)**s)) return -1; /* strtol would take spaces and signs */
    *lo = strtol(*s, &end, 10);
    if (end == *s || errno != 0 || *lo < 1 || *lo > 2147483647L) return -1;
    *hi = *lo;
    if (*end == '-') {
        const char* b = end + 1;
        if (!isdigit((unsigned char)*b)) return -1;
        *hi = strtol(b, &end, 10);
        if (end == b || errno != 0 || *hi < *lo || *hi > 2147483647L) return -1;
    }
    if (*end != ',' && *end != '\0') return -1;
    *s = *end == ',' ? end + 1 : end;
    return 0;
}

int grad_dump_steps_check(const char* list, char* why, size_t wl)
{
    const char* s = list;
    long lo, hi;
    if (*s == '\0') {
        snprintf(why, wl, "--dump-steps is empty: expected steps like 61-70,201");
        return -1;
    }
    while (*s != '\0') {
        if (next_range(&s, &lo, &hi) != 0 || (*s == '\0' && s[-1] == ',')) {
            snprintf(why, wl, "--dump-steps %s: expected 1-based steps and ranges like 61-70,201",
                     list);
            return -1;
        }
    }
    return 0;
}

int grad_dump_wanted(const char* list, int step)
{
    const char* s = list;
    long lo, hi;
    while (*s != '\0' && next_range(&s, &lo, &hi) == 0)
        if (step >= lo && step <= hi) return 1;
    return 0;
}

grad_dump* grad_dump_open(const char* dir, int stage, int stages, const edgc_layout* layout,
                          char* why, size_t wl)
{
    grad_dump* d = calloc(1, sizeof *d);
    if (d == NULL) {
        snprintf(why, wl, "out of memory");
        return NULL;
    }
    snprintf(d->dir, sizeof d->dir, "%s", dir);
    if (stages > 1) snprintf(d->suffix, sizeof d->suffix, ".stage%d", stage);
    d->total = layout->total;
    char path[4200];
    snprintf(path, sizeof path, "%s/layout%s.txt", dir, d->suffix);
    FILE* f = fopen(path, "w");
    if (f == NULL) {
        snprintf(why, wl, "cannot write --dump-grads %s: %s", path, strerror(errno));
        free(d);
        return NULL;
    }
    /* one line per tensor, in the flat buffer's order; a vector has cols 1 */
    fprintf(f, "# offset rows cols (float32 elements; total %zu)\n", layout->total);
    for (size_t i = 0; i < layout->n_tensors; i++)
        fprintf(f, "%zu %zu %zu\n", layout->tensors[i].offset, layout->tensors[i].rows,
                layout->tensors[i].cols);
    if (fclose(f) != 0) {
        snprintf(why, wl, "cannot write --dump-grads %s: %s", path, strerror(errno));
        free(d);
        return NULL;
    }
    return d;
}

int grad_dump_write(grad_dump* d, int step, const float* g, char* why, size_t wl)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/grad-%08d%s.f32", d->dir, step, d->suffix);
    FILE* f = fopen(path, "wb");
    int ok = f != NULL && fwrite(g, sizeof *g, d->total, f) == d->total;
    int err = errno;
    if (f != NULL && fclose(f) != 0 && ok) {
        ok = 0;
        err = errno;
    }
    if (!ok) {
        snprintf(why, wl, "cannot write %s: %s", path, strerror(err));
        if (f != NULL) remove(path);
        return -1;
    }
    return 0;
}

void grad_dump_free(grad_dump* d)
{
    free(d);
}
