/*
 * report.h - what edgc-train tells its user: the progress line, one JSON object per step for
 * --log, and the summary at the end (with one machine-readable line for scripts). Rank 0 prints;
 * the log is written by whoever holds the FILE.
 */
#ifndef EDGC_TRAIN_REPORT_H
#define EDGC_TRAIN_REPORT_H

#include <stdio.h>

#include "edgc.h"
#include "pipeline.h"

/* Seconds spent per part of the step, summed over the run (this rank). */
typedef struct step_times {
    double fwd, bwd, wait, sync, opt, eval;
} step_times;

/* One finished step, as the log and the progress line see it. */
typedef struct step_report {
    int step, steps;          /* 1-based step, --steps */
    double loss, val_loss;    /* val_loss: NAN when not evaluated this step */
    double lr, grad_norm;     /* learning rate, norm before clipping */
    double sync_ms, opt_ms;   /* this step's reducer and optimizer time */
    double time_s;            /* training time so far, evaluation excluded */
    const edgc_step_stats* s; /* this stage's reducer */
    const pipeline* q;        /* forward/backward/wait times of the step */
} step_report;

/* The compression phase's name: dense, powersgd, profile, warmup or compress. */
const char* report_phase(const edgc_step_stats* s);
/* Appends r as one JSON line to log and flushes it. */
void report_log(FILE* log, const step_report* r);
/* The progress line: loss, throughput (tokens per step: tokens_per_step), rank, bytes, ETA. */
void report_progress(const step_report* r, double tokens_per_step, int steps_done, double spent_s,
                     uint64_t sent_total, uint64_t dense_total);

/* Everything the summary needs. */
typedef struct run_summary {
    int steps, skipped, stages;
    double total_s, val_loss, tokens_per_step, flops_per_token;
    uint64_t sent_total, dense_total; /* every stage's bytes */
    step_times t;
    edgc_mode mode;
    double dense_sync_ms; /* the profiled dense sync time, NAN when none */
    double peak_gflops;   /* sgemm GFLOP/s of all ranks together (peak.h); 0 = unknown */
} run_summary;

void report_summary(const run_summary* r);

#endif
