/*
 * options.h - edgc-train's command line: parsing, --help, and the check that every rank was
 * started with the same settings.
 */
#ifndef EDGC_TRAIN_OPTIONS_H
#define EDGC_TRAIN_OPTIONS_H

#include <stdint.h>
#include <stdio.h>

#include "edgc.h"
#include "optim.h"

/* --wam: how later pipeline stages pick their rank (indexes OPTIONS_WAM) */
typedef enum { WAM_ON = 0, WAM_OFF = 1, WAM_PAPER = 2 } wam_choice;

typedef struct options {
    const char* preset;
    int layers, dim, heads, seq; /* 0: from the preset or --init */
    int batch, steps, warmup, eval_every, eval_batches, print_every, hash_every, ckpt_every;
    int sample_len, nan_step, stop_after, keep_ckpt;
    int threads;   /* 0: every CPU this rank may run on */
    int pp, micro; /* pipeline stages, micro-batches per step */
    wam_choice wam;
    float lr, weight_decay, grad_clip;
    lr_schedule schedule;
    uint64_t seed;
    const char *data, *val_data, *init, *resume, *out, *log;
    const char *dump_dir, *dump_steps; /* --dump-grads, --dump-steps (both or neither) */
    /* compression */
    edgc_mode mode;
    int rank, r_max, r_min, window;
    double alpha, beta, edgc_warmup, rmax_slack;
    edgc_rank_rule rule;
    edgc_rmax_rule rmax_rule;
    edgc_warmup_sync warmup_sync;
} options;

/* --rule's names, indexed by edgc_rank_rule. */
extern const char* const OPTIONS_RULES[];
extern const char* const OPTIONS_WAM[];

/* Parses argv. A bad option stops every rank with one line naming it. */
options options_parse(int argc, char** argv);
void options_usage(FILE* f);
/* Stops every rank, naming the option, when an option that must match differs between ranks
 * (anything that changes the numbers or the collectives: shape, data, schedule, compression,
 * evaluation and checkpoint cadence). */
void options_agree(const options* o);
/* The model shape: --init's header (init, already read), or the preset with the explicit
 * --layers/--dim/--heads/--seq; stops every rank with one line when they do not fit. */
gpt2_config options_model(const options* o, const gpt2_config* init, int vocab);

#endif
