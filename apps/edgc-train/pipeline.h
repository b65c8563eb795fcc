/*
 * pipeline.h - the DP x PP grid of edgc-train and its 1F1B schedule.
 *
 * World rank r is stage r / D of replica r % D (P stages, D replicas). Each stage holds a part of
 * the model (gpt2_part): a block of layers, the embeddings on stage 0, the final LayerNorm and
 * the LM head on stage P - 1. Per step, each replica pushes M micro-batches through its stages:
 * warm-up forwards, then one forward and one backward in turn, then the remaining backwards
 * (PipeDream-Flush's 1F1B), activations and their gradients moving by point-to-point messages.
 * After the flush each stage synchronises its gradient over its own DP communicator. With P = 1
 * this is plain data parallelism with M micro-batches of gradient accumulation.
 *
 * Sends are non-blocking and receives blocking: no rank ever waits for a send to finish before
 * it has posted the receive its neighbour needs, so the schedule cannot deadlock for any P <= L,
 * M >= P.
 */
#ifndef EDGC_TRAIN_PIPELINE_H
#define EDGC_TRAIN_PIPELINE_H

#include <mpi.h>

#include "gpt2.h"

typedef struct pipeline {
    int stages, replicas; /* P, D */
    int stage, replica;   /* this rank's place */
    MPI_Comm pp;          /* this replica's stages, ranked by stage */
    MPI_Comm dp;          /* this stage's replicas, ranked by replica */
    MPI_Comm tied;        /* stages 0 and P - 1 of this replica (the tied embedding), P > 1 */
    int micro, mb, T, C;  /* micro-batches per step, their batch size, sequence, channels */
    int slots;            /* activation slots: the micro-batches in flight here, min(M, P - s) */
    float* dout;          /* d(stage output) of one micro-batch, received from the next stage */
    float* dinp;          /* d(stage input) of every micro-batch, being sent to the previous one */
    MPI_Request* out_req; /* per slot: the forward send out of that slot's activations */
    MPI_Request* back_req;
    /* the last step, this rank, ms */
    double forward_ms, backward_ms, wait_ms; /* wait: blocked in receives (bubble + transfer) */
} pipeline;

/* Collective over MPI_COMM_WORLD: checks P and M against the world, the model and the batch
 * (one line on every rank and exit 1 when they do not fit) and makes the communicators. */
void pipe_init(pipeline* q, int P, int M, int B, int T, const gpt2_config* c);
/* This stage's part of the model. */
gpt2_part pipe_part(const pipeline* q, const gpt2_config* c);
/* Allocates the stage's activation slots and buffers in m (built for pipe_part). Dies on OOM. */
void pipe_prepare(pipeline* q, gpt2* m);
/* One training step's forward and backward over the batch (B, T) = M micro-batches, in 1F1B
 * order; gradients accumulate into m's (zeroed first). Returns the batch's mean loss on the last
 * stage, 0 elsewhere. Stage 0 reads inputs, the last stage targets; others may pass NULL. */
double pipe_train_step(pipeline* q, gpt2* m, const int* inputs, const int* targets);
/* Forward only, the batch's mean loss on the last stage (0 elsewhere). */
double pipe_eval_batch(pipeline* q, gpt2* m, const int* inputs, const int* targets);
/* Stages 0 and P - 1: adds the two halves of the tied embedding's gradient, so both copies take
 * the same step. Nothing elsewhere or when P == 1. */
void pipe_sum_tied(const pipeline* q, gpt2* m);
/* Collective over MPI_COMM_WORLD when P > 1: 1 when any rank's gradient holds a NaN or an
 * infinity. Every stage then skips its reducer step, so the stages' step counters (and windows)
 * stay in lockstep; a reducer alone would only skip on the stage that saw it. 0 when P = 1. */
int pipe_any_nonfinite(const pipeline* q, const gpt2* m);
/* Global gradient-norm clipping across the stages (the tied embedding counted once), and the
 * stages' agreement on the step's outcome: *status is 0 (synchronised), 1 (skip the step) or 2
 * (failed) on entry, the worst over the stages on return. Returns the norm before clipping, or
 * NAN when *status != 0 (nothing is scaled then). Collective over the replica's stages. */
double pipe_clip(const pipeline* q, gpt2* m, double max_norm, int* status);
/* Whole-model parameters on world rank 0: `whole` (a params-only whole model there, may be NULL
 * elsewhere) receives every stage's part from replica 0. Collective. With P == 1, whole == m. */
void pipe_gather(const pipeline* q, const gpt2* m, gpt2* whole);
/* 1 when this rank's parameters equal its replicas' and, on stages 0 and P - 1, the two copies
 * of the tied embedding are equal; the same answer on every rank. Collective. */
int pipe_weights_agree(const pipeline* q, const gpt2* m);
void pipe_free(pipeline* q);

#endif
