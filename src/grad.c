/*
 * grad.c - the gradient of one step in pieces. A caller whose gradient is not one buffer (DDP's
 * buckets) hands the reducer its pieces (edgc_reducer_step_pieces) instead of copying them into
 * one buffer and back every step: two passes over the gradient, a third of what the engine itself
 * costs. The engine addresses the gradient tensor by tensor, so it only needs to know where each
 * tensor's floats begin; the passes over the whole gradient (the non-finite check, GDS, a large
 * dense step's allreduce) go piece by piece.
 */
#include "edgc_internal.h"

/* The piece that holds flat index `at` (below the pieces' total), and in *start the flat index
 * of its first float. An empty piece holds nothing and is passed over. */
static size_t piece_of(const edgc__grad* g, size_t at, size_t* start)
{
    size_t p = 0, s = 0;
    while (p + 1 < g->n && s + g->len[p] <= at) {
        s += g->len[p];
        p++;
    }
    *start = s;
    return p;
}

float* edgc__grad_at(const edgc__grad* g, size_t at)
{
    size_t start;
    const size_t p = piece_of(g, at, &start);
    return g->piece[p] + (at - start);
}

edgc_status edgc__grad_check(const edgc__grad* g, const edgc_layout* layout, char* why,
                             size_t why_len)
{
    if (g->n == 0 || g->piece == NULL || g->len == NULL) {
        edgc__msg(why, why_len, "pieces: none given");
        return EDGC_ERR_INVALID_ARG;
    }
    size_t total = 0;
    for (size_t p = 0; p < g->n; p++) {
        if (g->piece[p] == NULL && g->len[p] > 0) {
            edgc__msg(why, why_len, "pieces: piece %zu is NULL", p);
            return EDGC_ERR_INVALID_ARG;
        }
        if (g->len[p] > SIZE_MAX - total) break;
        total += g->len[p];
    }
    if (total != layout->total) {
        edgc__msg(why, why_len, "pieces: they hold %zu floats, the layout %zu", total,
                  layout->total);
        return EDGC_ERR_INVALID_ARG;
    }
    for (size_t i = 0; i < layout->n_tensors; i++) {
        const edgc_tensor* t = &layout->tensors[i];
        size_t start;
        const size_t p = piece_of(g, t->offset, &start); /* holds the tensor's first float */
        if (t->offset + t->rows * t->cols > start + g->len[p]) {
            edgc__msg(why, why_len,
                      "pieces: tensor %zu (offset %zu, %zu x %zu) runs past the end of piece %zu "
                      "(floats %zu to %zu); a tensor must lie inside one piece",
                      i, t->offset, t->rows, t->cols, p, start, start + g->len[p]);
            return EDGC_ERR_INVALID_ARG;
        }
    }
    return EDGC_OK;
}

int edgc__grad_any_nonfinite(const edgc__grad* g, int threads)
{
    for (size_t p = 0; p < g->n; p++)
        if (g->len[p] > 0 && edgc__any_nonfinite(g->piece[p], g->len[p], threads)) return 1;
    return 0;
}
