/*
 * state_io.c - the byte-level pieces of saved state: a bounded writer and reader, FNV-1a
 * checksums, and the hash that identifies a config + layout. The blob format itself is in
 * reducer.c; the objects serialise their own fields.
 */
#include "edgc_internal.h"

#include <string.h>

void edgc__put(edgc__writer* w, const void* p, size_t n)
{
    if (w->buf != NULL && w->len <= w->cap && n <= w->cap - w->len) memcpy(w->buf + w->len, p, n);
    w->len += n;
}

void edgc__get(edgc__reader* r, void* p, size_t n)
{
    if (r->bad || n > r->len - r->at) {
        r->bad = 1;
        memset(p, 0, n);
        return;
    }
    memcpy(p, r->p + r->at, n);
    r->at += n;
}

uint64_t edgc__fnv1a(uint64_t h, const void* p, size_t n)
{
    const uint8_t* b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

#define HASH(field) h = edgc__fnv1a(h, &(field), sizeof(field))

uint64_t edgc__config_layout_hash(const edgc_config* c, const edgc_layout* l)
{
    uint64_t h = EDGC__FNV_SEED;
    int32_t mode = (int32_t)c->mode, rule = (int32_t)c->rule;
    int32_t rmax_rule = (int32_t)c->rmax_rule, warmup_sync = (int32_t)c->warmup_sync;
    int32_t wam_rule = (int32_t)c->wam_rule;
    HASH(mode);
    HASH(c->rank);
    HASH(c->total_steps);
    HASH(c->warmup_fraction);
    HASH(c->window);
    HASH(c->alpha);
    HASH(c->beta);
    HASH(c->bins);
    HASH(c->scale_aware_entropy);
    HASH(rule);
    HASH(c->rank_step);
    HASH(c->r_max);
    HASH(c->r_min);
    HASH(c->profile_start);
    HASH(c->profile_base_steps);
    HASH(c->profile_reps);
    HASH(c->error_feedback);
    HASH(c->orthonormalize_q);
    HASH(c->orth_eps);
    HASH(c->seed);
    HASH(c->check_finite);
    HASH(c->pipeline_stages);
    HASH(rmax_rule);
    HASH(c->rmax_slack);
    HASH(c->min_saving);
    HASH(warmup_sync);
    HASH(c->error_margin);
    HASH(c->reprofile_factor);
    HASH(wam_rule);
    /* pipeline_stage differs between stages by design, and threads changes no result: neither
     * is hashed (a run may resume on another thread count) */
    uint64_t n = l->n_tensors, total = l->total;
    HASH(n);
    HASH(total);
    for (size_t i = 0; i < l->n_tensors; i++) {
        uint64_t t[3] = {l->tensors[i].offset, l->tensors[i].rows, l->tensors[i].cols};
        HASH(t);
    }
    return h;
}
