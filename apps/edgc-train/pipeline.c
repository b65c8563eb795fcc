/*
 * pipeline.c - the DP x PP grid and the 1F1B schedule; see pipeline.h.
 */
#include "pipeline.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h" /* ckpt_hash */
#include "optim.h"
#include "ranks.h"

enum { TAG_ACT = 1, TAG_GRAD = 2, TAG_PARAMS = 3 };

void pipe_init(pipeline* q, int P, int M, int B, int T, const gpt2_config* c)
{
    memset(q, 0, sizeof *q);
    if (P < 1 || g_world % P != 0)
        die("--pp %d does not divide the %d ranks (world = data-parallel replicas x stages)", P,
            g_world);
    if (P > c->num_layers)
        die("--pp %d: more stages than the model's %d layers (each stage needs one)", P,
            c->num_layers);
    if (M < P)
        die("--micro-batches %d: a pipeline of %d stages needs at least %d micro-batches", M, P, P);
    if (B % M != 0) die("--batch %d does not split into --micro-batches %d equal parts", B, M);
    q->stages = P;
    q->replicas = g_world / P;
    q->stage = g_rank / q->replicas;
    q->replica = g_rank % q->replicas;
    q->micro = M;
    q->mb = B / M;
    q->T = T;
    q->C = c->channels;
    MPI_Comm_split(MPI_COMM_WORLD, q->replica, q->stage, &q->pp);
    MPI_Comm_split(MPI_COMM_WORLD, q->stage, q->replica, &q->dp);
    int ends = P > 1 && (q->stage == 0 || q->stage == P - 1);
    MPI_Comm_split(MPI_COMM_WORLD, ends ? q->replica : MPI_UNDEFINED, q->stage, &q->tied);
}

gpt2_part pipe_part(const pipeline* q, const gpt2_config* c)
{
    return gpt2_stage_part(c->num_layers, q->stages, q->stage);
}

/* Lets MPI move the sends in flight while this stage computes: a send above the eager limit
 * (an activation of a few tens of KB, over TCP) only progresses inside an MPI call. */
static void progress(void* ctx)
{
    pipeline* q = ctx;
    int done;
    MPI_Testall(q->slots, q->out_req, &done, MPI_STATUSES_IGNORE);
    MPI_Testall(q->micro, q->back_req, &done, MPI_STATUSES_IGNORE);
}

void pipe_prepare(pipeline* q, gpt2* m)
{
    int ahead = q->stages - q->stage; /* 1F1B keeps at most P - s micro-batches in flight */
    q->slots = q->micro < ahead ? q->micro : ahead;
    size_t n = (size_t)q->mb * q->T * q->C;
    q->dout = malloc(n * sizeof(float));
    q->dinp = malloc((size_t)q->micro * n * sizeof(float));
    q->out_req = malloc((size_t)q->slots * sizeof *q->out_req);
    q->back_req = malloc((size_t)q->micro * sizeof *q->back_req);
    if (!q->dout || !q->dinp || !q->out_req || !q->back_req ||
        gpt2_prepare(m, q->mb, q->T, q->slots) != 0)
        die("out of memory for %d micro-batches of %d x %d", q->slots, q->mb, q->T);
    for (int i = 0; i < q->slots; i++)
        q->out_req[i] = MPI_REQUEST_NULL;
    for (int i = 0; i < q->micro; i++)
        q->back_req[i] = MPI_REQUEST_NULL;
    m->loss_scale = 1.0f / (float)q->micro; /* the step's loss is the micro-batches' mean */
    if (q->stages > 1) {
        m->between_layers = progress;
        m->between_ctx = q;
    }
}

/* Blocking receive from a neighbour stage, timed as waiting. */
static void recv_from(pipeline* q, float* buf, int stage, int tag)
{
    double t = MPI_Wtime();
    MPI_Recv(buf, q->mb * q->T * q->C, MPI_FLOAT, stage, tag, q->pp, MPI_STATUS_IGNORE);
    q->wait_ms += (MPI_Wtime() - t) * 1e3;
}

/* Micro-batch j's forward: its slot, its input (tokens or the previous stage's output), its
 * output on its way to the next stage. Returns its loss on the last stage. */
static double forward_one(pipeline* q, gpt2* m, int j, const int* inputs, const int* targets)
{
    int slot = j % q->slots, last = q->stage == q->stages - 1;
    size_t at = (size_t)j * q->mb * q->T;
    MPI_Wait(&q->out_req[slot], MPI_STATUS_IGNORE); /* the slot's previous output has left */
    gpt2_use_slot(m, slot);
    if (q->stage > 0) recv_from(q, gpt2_stage_input(m), q->stage - 1, TAG_ACT);
    double t = MPI_Wtime();
    gpt2_forward(m, inputs ? inputs + at : NULL, targets ? targets + at : NULL, q->mb, q->T);
    q->forward_ms += (MPI_Wtime() - t) * 1e3;
    if (last) return m->mean_loss;
    /* the output stays in the slot until this micro-batch's backward: it can be sent from there */
    MPI_Isend(gpt2_stage_output(m), q->mb * q->T * q->C, MPI_FLOAT, q->stage + 1, TAG_ACT, q->pp,
              &q->out_req[slot]);
    return 0.0;
}

static void backward_one(pipeline* q, gpt2* m, int j)
{
    size_t n = (size_t)q->mb * q->T * q->C;
    if (q->stage < q->stages - 1) recv_from(q, q->dout, q->stage + 1, TAG_GRAD);
    gpt2_use_slot(m, j % q->slots);
    double t = MPI_Wtime();
    gpt2_backward(m, q->dout);
    q->backward_ms += (MPI_Wtime() - t) * 1e3;
    if (q->stage == 0) return;
    float* d = q->dinp + (size_t)j * n; /* the next backward overwrites the model's copy */
    memcpy(d, gpt2_stage_input_grad(m), n * sizeof(float));
    MPI_Isend(d, (int)n, MPI_FLOAT, q->stage - 1, TAG_GRAD, q->pp, &q->back_req[j]);
}

double pipe_train_step(pipeline* q, gpt2* m, const int* inputs, const int* targets)
{
    const int M = q->micro;
    int warm = q->stages - q->stage - 1; /* forwards before the first backward */
    if (warm > M) warm = M;
    q->forward_ms = q->backward_ms = q->wait_ms = 0.0;
    gpt2_zero_grad(m);
    double loss = 0.0;
    int f = 0, b = 0;
    while (f < warm)
        loss += forward_one(q, m, f++, inputs, targets);
    while (f < M) { /* steady state: one forward, one backward */
        loss += forward_one(q, m, f++, inputs, targets);
        backward_one(q, m, b++);
    }
    while (b < M)
        backward_one(q, m, b++);
    MPI_Waitall(q->slots, q->out_req, MPI_STATUSES_IGNORE);
    MPI_Waitall(M, q->back_req, MPI_STATUSES_IGNORE);
    return loss / M;
}

double pipe_eval_batch(pipeline* q, gpt2* m, const int* inputs, const int* targets)
{
    int last = q->stage == q->stages - 1;
    size_t n = (size_t)q->mb * q->T;
    double loss = 0.0;
    gpt2_use_slot(m, 0);
    for (int j = 0; j < q->micro; j++) { /* a chain, no cycle: blocking sends are safe */
        if (q->stage > 0)
            MPI_Recv(gpt2_stage_input(m), (int)n * q->C, MPI_FLOAT, q->stage - 1, TAG_ACT, q->pp,
                     MPI_STATUS_IGNORE);
        gpt2_forward(m, inputs ? inputs + j * n : NULL, targets ? targets + j * n : NULL, q->mb,
                     q->T);
        if (last)
            loss += m->mean_loss;
        else
            MPI_Send(gpt2_stage_output(m), (int)n * q->C, MPI_FLOAT, q->stage + 1, TAG_ACT, q->pp);
    }
    return loss / q->micro;
}

void pipe_sum_tied(const pipeline* q, gpt2* m)
{
    if (q->tied == MPI_COMM_NULL) return;
    /* two ranks: a + b and b + a are the same float, so both copies stay bit-identical */
    MPI_Allreduce(MPI_IN_PLACE, m->grads.wte, (int)m->param_sizes[0], MPI_FLOAT, MPI_SUM, q->tied);
}

int pipe_any_nonfinite(const pipeline* q, const gpt2* m)
{
    if (q->stages == 1) return 0;
    int bad = 0;
    for (size_t i = 0; i < m->num_parameters && !bad; i++)
        bad = !isfinite(m->grads_memory[i]);
    MPI_Allreduce(MPI_IN_PLACE, &bad, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    return bad;
}

double pipe_clip(const pipeline* q, gpt2* m, double max_norm, int* status)
{
    /* the last stage's wte is stage 0's, counted there */
    size_t skip_wte = q->stages > 1 && q->stage == q->stages - 1 ? m->param_sizes[0] : 0;
    double mine[2] = {
        *status ? 0.0 : grad_sumsq(m->grads_memory + skip_wte, m->num_parameters - skip_wte),
        *status};
    double* all = malloc(2 * (size_t)q->stages * sizeof *all);
    if (all == NULL) die("out of memory");
    /* gathered and summed in stage order: every stage computes the same bits */
    MPI_Allgather(mine, 2, MPI_DOUBLE, all, 2, MPI_DOUBLE, q->pp);
    double sum = 0.0;
    for (int s = 0; s < q->stages; s++) {
        sum += all[2 * s];
        if (all[2 * s + 1] > *status) *status = (int)all[2 * s + 1];
    }
    free(all);
    if (*status != 0) return NAN;
    double norm = sqrt(sum);
    clip_to_norm(m->grads_memory, m->num_parameters, norm, max_norm);
    return norm;
}

void pipe_gather(const pipeline* q, const gpt2* m, gpt2* whole)
{
    if (q->stages == 1 || q->replica != 0) return;
    const gpt2_config* c = &m->config;
    if (q->stage > 0) {
        MPI_Send(m->params_memory, (int)m->num_parameters, MPI_FLOAT, 0, TAG_PARAMS, q->pp);
        return;
    }
    gpt2_part_transfer(c, &m->part, whole->params_memory, m->params_memory, 1);
    float* buf = malloc(m->num_parameters * sizeof(float) + 1); /* no later part is larger */
    size_t cap = m->num_parameters;
    for (int s = 1; s < q->stages; s++) {
        gpt2_part part = gpt2_stage_part(c->num_layers, q->stages, s);
        size_t n = gpt2_part_size(c, &part);
        if (n > cap) {
            free(buf);
            buf = malloc(n * sizeof(float));
            cap = n;
        }
        if (buf == NULL) die("out of memory gathering the model");
        MPI_Recv(buf, (int)n, MPI_FLOAT, s, TAG_PARAMS, q->pp, MPI_STATUS_IGNORE);
        gpt2_part_transfer(c, &part, whole->params_memory, buf, 1);
    }
    free(buf);
}

int pipe_weights_agree(const pipeline* q, const gpt2* m)
{
    uint64_t h = ckpt_hash(m->params_memory, m->num_parameters * sizeof(float)), lo = h, hi = h;
    MPI_Allreduce(MPI_IN_PLACE, &lo, 1, MPI_UINT64_T, MPI_MIN, q->dp);
    MPI_Allreduce(MPI_IN_PLACE, &hi, 1, MPI_UINT64_T, MPI_MAX, q->dp);
    int bad = lo != hi;
    if (q->tied != MPI_COMM_NULL) {
        uint64_t w = ckpt_hash(m->params.wte, m->param_sizes[0] * sizeof(float)), wlo = w, whi = w;
        MPI_Allreduce(MPI_IN_PLACE, &wlo, 1, MPI_UINT64_T, MPI_MIN, q->tied);
        MPI_Allreduce(MPI_IN_PLACE, &whi, 1, MPI_UINT64_T, MPI_MAX, q->tied);
        bad |= wlo != whi;
    }
    MPI_Allreduce(MPI_IN_PLACE, &bad, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    return !bad;
}

void pipe_free(pipeline* q)
{
    free(q->dout);
    free(q->dinp);
    free(q->out_req);
    free(q->back_req);
    MPI_Comm_free(&q->pp);
    MPI_Comm_free(&q->dp);
    if (q->tied != MPI_COMM_NULL) MPI_Comm_free(&q->tied);
    memset(q, 0, sizeof *q);
}
