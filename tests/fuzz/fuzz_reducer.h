/*
 * fuzz_reducer.h - the small EDGC reducer the state-blob harness loads into, and whose saved
 * states make its seed corpus (make_seeds.c).
 */
#ifndef EDGC_FUZZ_REDUCER_H
#define EDGC_FUZZ_REDUCER_H

#include "edgc.h"

enum { FUZZ_TOTAL = 54 };

static inline edgc_status fuzz_reducer_create(edgc_inproc** g, edgc_reducer** r)
{
    static const edgc_tensor tensors[] = {{0, 8, 6}, {48, 6, 1}};
    static const edgc_layout layout = {tensors, 2, FUZZ_TOTAL};
    edgc_config cfg = edgc_config_default();
    cfg.total_steps = 40;
    cfg.window = 4;
    cfg.alpha = 0.5;
    cfg.warmup_fraction = 0.1;
    cfg.profile_start = 1;
    edgc_comm c;
    edgc_status st = edgc_inproc_create(1, g);
    if (st != EDGC_OK) return st;
    edgc_inproc_comm(*g, 0, &c);
    st = edgc_reducer_create(&cfg, &layout, &c, r);
    if (st != EDGC_OK) edgc_inproc_free(*g);
    return st;
}

#endif
