/*
 * layout.c - validation of a gradient layout and its split into compressed matrices and dense
 * spans. A layout must tile the flat buffer exactly: an element covered twice would be averaged
 * twice, an element covered by nothing would silently never be synchronised.
 */
#include "edgc_internal.h"

#include <stdlib.h>

static int is_matrix(const edgc_tensor* t)
{
    return t->rows >= 2 && t->cols >= 2;
}

static int cmp_by_offset(const void* a, const void* b)
{
    const edgc_tensor* x = *(const edgc_tensor* const*)a;
    const edgc_tensor* y = *(const edgc_tensor* const*)b;
    return (x->offset > y->offset) - (x->offset < y->offset);
}

/* The tensors sorted by offset, as pointers into the caller's array. Caller frees. */
static edgc_status sorted_view(const edgc_layout* layout, const edgc_tensor*** out)
{
    const edgc_tensor** v = malloc(layout->n_tensors * sizeof *v);
    if (v == NULL) return EDGC_ERR_NOMEM;
    for (size_t i = 0; i < layout->n_tensors; i++)
        v[i] = &layout->tensors[i];
    qsort(v, layout->n_tensors, sizeof *v, cmp_by_offset);
    *out = v;
    return EDGC_OK;
}

edgc_status edgc__layout_check(const edgc_layout* layout, char* why, size_t why_len)
{
    if (layout == NULL || (layout->tensors == NULL && layout->n_tensors > 0)) {
        edgc__msg(why, why_len, "layout: tensors is NULL");
        return EDGC_ERR_INVALID_ARG;
    }
    if (layout->n_tensors == 0 || layout->total == 0) {
        edgc__msg(why, why_len, "layout: empty (n_tensors = %zu, total = %zu)", layout->n_tensors,
                  layout->total);
        return EDGC_ERR_LAYOUT;
    }
    for (size_t i = 0; i < layout->n_tensors; i++) {
        const edgc_tensor* t = &layout->tensors[i];
        if (t->rows == 0 || t->cols == 0) {
            edgc__msg(why, why_len, "layout: tensor %zu is %zu x %zu: both sizes must be >= 1", i,
                      t->rows, t->cols);
            return EDGC_ERR_LAYOUT;
        }
        if (t->rows > SIZE_MAX / t->cols || t->offset > SIZE_MAX - t->rows * t->cols ||
            t->offset + t->rows * t->cols > layout->total) {
            edgc__msg(why, why_len,
                      "layout: tensor %zu (offset %zu, %zu x %zu) overruns the buffer of %zu "
                      "elements",
                      i, t->offset, t->rows, t->cols, layout->total);
            return EDGC_ERR_LAYOUT;
        }
    }
    const edgc_tensor** v;
    EDGC_FORWARD(sorted_view(layout, &v));
    size_t next = 0; /* first element not yet covered */
    edgc_status st = EDGC_OK;
    for (size_t i = 0; i < layout->n_tensors && st == EDGC_OK; i++) {
        const edgc_tensor* t = v[i];
        size_t idx = (size_t)(t - layout->tensors);
        if (t->offset < next) {
            edgc__msg(why, why_len, "layout: tensor %zu (offset %zu) overlaps the tensor before it",
                      idx, t->offset);
            st = EDGC_ERR_LAYOUT;
        } else if (t->offset > next) {
            edgc__msg(why, why_len,
                      "layout: elements [%zu, %zu) belong to no tensor; add a 1-D tensor for them",
                      next, t->offset);
            st = EDGC_ERR_LAYOUT;
        }
        next = t->offset + t->rows * t->cols;
    }
    if (st == EDGC_OK && next != layout->total) {
        edgc__msg(why, why_len,
                  "layout: elements [%zu, %zu) belong to no tensor; add a 1-D tensor for them",
                  next, layout->total);
        st = EDGC_ERR_LAYOUT;
    }
    free(v);
    return st;
}

edgc_status edgc__layout_split(const edgc_layout* layout, edgc__plan_layout* out)
{
    *out = (edgc__plan_layout){0};
    EDGC_FORWARD(edgc__layout_check(layout, NULL, 0));
    const edgc_tensor** v;
    EDGC_FORWARD(sorted_view(layout, &v));
    size_t n_mats = 0;
    for (size_t i = 0; i < layout->n_tensors; i++)
        n_mats += is_matrix(&layout->tensors[i]);
    out->mats = calloc(n_mats ? n_mats : 1, sizeof *out->mats);
    out->dense = calloc(layout->n_tensors, sizeof *out->dense);
    if (out->mats == NULL || out->dense == NULL) {
        free(v);
        edgc__layout_release(out);
        return EDGC_ERR_NOMEM;
    }
    out->total = layout->total;
    /* Matrices keep the caller's order, so the flat P and Q buffers follow the model's order. */
    for (size_t i = 0; i < layout->n_tensors; i++) {
        const edgc_tensor* t = &layout->tensors[i];
        if (!is_matrix(t)) continue;
        edgc__matrix* m = &out->mats[out->n_mats++];
        m->offset = t->offset;
        m->rows = t->rows;
        m->cols = t->cols;
        m->cap = t->rows < t->cols ? t->rows : t->cols;
        if ((int)m->cap > out->rank_cap) out->rank_cap = (int)m->cap;
    }
    /* Dense spans in offset order, neighbours merged: fewer, longer copies. */
    for (size_t i = 0; i < layout->n_tensors; i++) {
        const edgc_tensor* t = v[i];
        if (is_matrix(t)) continue;
        size_t count = t->rows * t->cols;
        edgc__span* last = out->n_dense ? &out->dense[out->n_dense - 1] : NULL;
        if (last != NULL && last->offset + last->count == t->offset) {
            last->count += count;
        } else {
            out->dense[out->n_dense++] = (edgc__span){t->offset, count};
        }
        out->dense_total += count;
    }
    free(v);
    return EDGC_OK;
}

void edgc__layout_release(edgc__plan_layout* pl)
{
    if (pl == NULL) return;
    free(pl->mats);
    free(pl->dense);
    *pl = (edgc__plan_layout){0};
}
