/*
 * train_gpt2.c - edgc-train: trains a GPT-2 over MPI, data-parallel and optionally pipelined
 * (pipeline.h), every stage's gradient through its own edgc_reducer (dense, static PowerSGD or
 * EDGC). Rank 0 prints a progress line every few steps, validation loss, and a summary with what
 * the compression saved.
 *
 *   mpirun -np 2 edgc-train --preset tiny --compress edgc --steps 600
 *   mpirun -np 4 edgc-train --preset tiny --pp 2 --micro-batches 4
 *
 * Every error is one line naming the problem, and every rank exits non-zero: checks that can
 * differ between ranks (files) are agreed with an allreduce before anyone acts on them.
 */
#define _POSIX_C_SOURCE 200809L
#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <mpi.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "checkpoint_dir.h"
#include "dataloader.h"
#include "edgc_mpi.h"
#include "gpt2.h"
#include "grad_dump.h"
#include "optim.h"
#include "options.h"
#include "peak.h"
#include "pipeline.h"
#include "ranks.h"
#include "report.h"
#include "sample.h"

// ----------------------------------------------------------------------------
// helpers for the loop

static double now_s(void)
{
    return MPI_Wtime();
}

/* Mean validation loss over the first eval_batches windows, split across the replicas. */
static double evaluate(pipeline* q, gpt2* m, const token_data* val, int B, int T, int n_batches,
                       int* in, int* tg)
{
    double sum = 0.0; /* only the last stage has losses; the others add 0 */
    for (int k = q->replica; k < n_batches; k += q->replicas) {
        data_batch(val, (size_t)k, B, T, in, tg);
        sum += pipe_eval_batch(q, m, in, tg);
    }
    MPI_Allreduce(MPI_IN_PLACE, &sum, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    return sum / n_batches;
}

/* Stops every rank if the weights differ anywhere: data-parallel replicas must stay identical,
 * and so must the two copies of the tied embedding in a pipeline. */
static void check_weights_agree(const pipeline* q, const gpt2* m, int step)
{
    if (!pipe_weights_agree(q, m))
        die("step %d: the weights differ between replicas (hash check failed)", step);
}

/* Stops every rank when the ranks loaded different data (the names may differ, the tokens not). */
static void agree_data(const token_data* train, const token_data* val)
{
    char a[96], b[96];
    snprintf(a, sizeof a, "%zu tokens of vocabulary %d, hash %016llx", train->n, train->vocab_size,
             (unsigned long long)ckpt_hash(train->tokens, train->n * sizeof(int)));
    snprintf(b, sizeof b, "%zu tokens, hash %016llx", val->n,
             (unsigned long long)ckpt_hash(val->tokens, val->n * sizeof(int)));
    agree_values((const char*[]){"the training data (--data)", "the validation data"},
                 (const char*[]){a, b}, 2);
}

/* --data, and --val-data or else the last tenth of --data; the same tokens on every rank.
 * vocab: the model's (--init), or 0 to take it from the data. */
static void load_data(const options* o, int vocab, token_data* train, token_data* val)
{
    char why[4096] = "";
    token_data all = {0};
    *train = *val = (token_data){0};
    check_all(data_load(o->data, vocab, &all, why, sizeof why) == 0, why);
    if (o->val_data != NULL) {
        *train = all;
        check_all(data_load(o->val_data, vocab, val, why, sizeof why) == 0, why);
        if (val->vocab_size != train->vocab_size)
            die("--val-data %s has vocabulary %d, --data %d", o->val_data, val->vocab_size,
                train->vocab_size);
    } else {
        if (data_split(&all, 0.1, train, val) != 0) die("out of memory splitting the data");
        data_free(&all);
    }
    agree_data(train, val);
}

/* This rank's reducer, over the replicas of its stage, configured from the options; rc gets
 * the configuration. */
static edgc_reducer* create_reducer(const options* o, const pipeline* q, int threads,
                                    const edgc_layout* layout, edgc_config* rc)
{
    *rc = edgc_config_default();
    rc->mode = o->mode;
    rc->rank = o->rank;
    rc->total_steps = (uint64_t)o->steps;
    rc->r_max = o->r_max;
    rc->r_min = o->r_min;
    rc->window = o->window;
    rc->alpha = o->alpha;
    rc->beta = o->beta;
    rc->warmup_fraction = o->edgc_warmup;
    rc->rule = o->rule;
    rc->rmax_rule = o->rmax_rule;
    rc->rmax_slack = o->rmax_slack;
    rc->warmup_sync = o->warmup_sync;
    rc->seed = 714;
    rc->threads = threads;
    rc->pipeline_stage = q->stage;
    rc->pipeline_stages = q->stages;
    rc->wam_rule = o->wam == WAM_PAPER ? EDGC_WAM_PAPER : EDGC_WAM_CAP;
    /* the layouts differ between stages, so each stage checks its own and all agree on it */
    char cwhy[512] = "", why[1024];
    int cok = edgc_config_check(rc, layout, cwhy, sizeof cwhy) == EDGC_OK;
    snprintf(why, sizeof why, "compression: %s", cwhy);
    check_all(cok, why);
    edgc_reducer* red = NULL;
    edgc_status st = edgc_reducer_create_mpi(q->dp, rc, layout, &red);
    snprintf(why, sizeof why, "cannot create the reducer: %s", edgc_status_str(st));
    check_all(st == EDGC_OK, why);
    return red;
}

/* Why the checkpoint `used` cannot go on as this run: writes the reason, returns its length (0:
 * it can). */
static int resume_refused(const options* o, const train_state* ts, const gpt2* model,
                          const char* used, char* why, size_t cap)
{
    if (ts->world != g_world || ts->batch != o->batch || ts->seq != o->seq)
        return snprintf(why, cap,
                        "%s was written by %lld ranks with --batch %lld --seq %lld; this run has "
                        "%d, %d, %d",
                        used, (long long)ts->world, (long long)ts->batch, (long long)ts->seq,
                        g_world, o->batch, o->seq);
    if (ts->total_steps != o->steps)
        return snprintf(why, cap,
                        "%s belongs to a run of --steps %lld; this run has --steps %d (the "
                        "learning-rate schedule and the EDGC warm-up depend on it)",
                        used, (long long)ts->total_steps, o->steps);
    if (ts->params_hash != ckpt_hash(model->params_memory, model->num_parameters * 4))
        return snprintf(why, cap, "%s: the training state does not belong to its model.bin", used);
    if (ts->step > o->steps)
        return snprintf(why, cap, "%s is at step %lld, beyond --steps %d", used,
                        (long long)ts->step, o->steps);
    return 0;
}

/* --resume: the weights (into whole, then this stage's part), the reducer's state, and the step
 * and training time to go on from. Stops every rank when the checkpoint does not fit this run. */
static int resume(const options* o, const pipeline* q, const gpt2_config* cfg,
                  const gpt2_part* part, gpt2* whole, gpt2* model, edgc_reducer* red,
                  double* elapsed_s)
{
    char used[4096], why[8192] = "";
    train_state ts;
    void* blob = NULL;
    size_t blob_len = 0;
    ckdir_resume(o->resume, whole, model, q->stages, &ts, &blob, &blob_len, used, sizeof used);
    if (q->stages > 1) gpt2_part_transfer(cfg, part, whole->params_memory, model->params_memory, 0);
    check_all(resume_refused(o, &ts, model, used, why, sizeof why) == 0, why);
    edgc_status st = edgc_reducer_load(red, blob, blob_len);
    free(blob);
    snprintf(why, sizeof why, "%s: reducer state: %s", used, edgc_reducer_last_error(red));
    check_all(st == EDGC_OK, why); /* each stage's reducer agreed over its replicas only */
    say("resuming from %s (step %lld)\n", used, (long long)ts.step);
    *elapsed_s = ts.elapsed_s;
    return (int)ts.step;
}

/* What this run is (rank 0 prints): ranks, threads and BLAS kernels, the model, the pipeline,
 * the data and the compression. */
static void print_banner(const options* o, const pipeline* q, const gpt2_config* cfg,
                         const edgc_config* rc, int threads, const token_data* train,
                         const token_data* val, int start)
{
    const int P = q->stages, D = q->replicas;
    const gpt2_part entire = {0, cfg->num_layers, 1, 1};
    /* the kernels OpenBLAS picked (OPENBLAS_CORETYPE can change them): speeds differ by up to 2x */
    say("edgc-train | %d ranks x %d threads | BLAS %s | model L=%d C=%d NH=%d T=%d V=%d | %.2f M "
        "parameters\n",
        g_world, threads, openblas_get_corename(), cfg->num_layers, cfg->channels, cfg->num_heads,
        o->seq, cfg->vocab_size, gpt2_part_size(cfg, &entire) / 1e6);
    if (P > 1) {
        say("pipeline: %d stages x %d replicas (rank = stage x %d + replica) | 1F1B, %d "
            "micro-batches of %d | layers",
            P, D, D, q->micro, q->mb);
        for (int k = 0; k < P; k++) {
            gpt2_part pk = gpt2_stage_part(cfg->num_layers, P, k);
            say(" %s%d-%d%s", pk.embedding ? "emb+" : "", pk.first_layer,
                pk.first_layer + pk.num_layers - 1, pk.head ? "+head" : "");
        }
        say("\n");
    }
    say("data %s: %zu train / %zu val tokens | batch %d x %d per %s | %d steps from %d\n", o->data,
        train->n, val->n, o->batch, o->seq, P > 1 ? "replica" : "rank", o->steps, start);
    say("compression: %s", o->mode == EDGC_MODE_DENSE      ? "dense"
                           : o->mode == EDGC_MODE_POWERSGD ? "powersgd"
                                                           : "edgc");
    if (o->mode == EDGC_MODE_POWERSGD) say(" rank %d", o->rank);
    int window = edgc_config_window(rc);
    if (o->mode == EDGC_MODE_EDGC)
        say(" (rule %s, r_max %s, window %d%s, warm-up %.0f%% %s)", OPTIONS_RULES[o->rule],
            o->r_max                           ? "given"
            : o->rmax_rule == EDGC_RMAX_BUDGET ? "profiled, budget rule"
                                               : "profiled, paper rule",
            window, o->window ? "" : " from --steps", o->edgc_warmup * 100,
            o->warmup_sync == EDGC_WARMUP_RMAX ? "at r_max" : "dense");
    say("\n");
    if (o->mode == EDGC_MODE_EDGC && (double)o->steps * (1.0 - o->edgc_warmup) < 2.0 * window)
        say("note: fewer than 2 windows of %d steps after warm-up: the rank will stay at r_max "
            "(pass a smaller --window)\n",
            window);
}

/* --log: stage 0 writes it; in a pipeline every later stage writes LOG.stageS alongside (replica
 * 0 of each), appended to on a resumed run. Stops every rank when a writer cannot open it. */
static FILE* open_log(const options* o, const pipeline* q, int start)
{
    FILE* log = NULL;
    if (o->log != NULL && q->replica == 0) {
        char path[4096];
        if (q->stage == 0)
            snprintf(path, sizeof path, "%s", o->log);
        else
            snprintf(path, sizeof path, "%s.stage%d", o->log, q->stage);
        log = fopen(path, start > 0 ? "a" : "w");
        if (log == NULL)
            fprintf(stderr, "edgc-train: cannot write --log %s: %s\n", path, strerror(errno));
    }
    int ok = o->log == NULL || q->replica != 0 || log != NULL;
    MPI_Allreduce(MPI_IN_PLACE, &ok, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    if (!ok) die("cannot write --log %s", o->log);
    return log;
}

/* --dump-grads: like --log, replica 0 of every stage writes (its stage's layout). */
static grad_dump* open_dump(const options* o, const pipeline* q, const edgc_layout* layout)
{
    grad_dump* dump = NULL;
    if (o->dump_dir != NULL && q->replica == 0) {
        char why[4096];
        dump = grad_dump_open(o->dump_dir, q->stage, q->stages, layout, why, sizeof why);
        if (dump == NULL) fprintf(stderr, "edgc-train: %s\n", why);
    }
    int ok = o->dump_dir == NULL || q->replica != 0 || dump != NULL;
    MPI_Allreduce(MPI_IN_PLACE, &ok, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    if (!ok) die("cannot write --dump-grads %s", o->dump_dir);
    return dump;
}

static void save_checkpoint(const options* o, const pipeline* q, const gpt2* m, gpt2* whole,
                            edgc_reducer* red, int next_step, double elapsed)
{
    size_t need = 0, wrote = 0;
    edgc_reducer_state_size(red, &need);
    void* blob = malloc(need ? need : 1);
    int ok = blob != NULL && edgc_reducer_save(red, blob, need, &wrote) == EDGC_OK;
    check_all(ok, "cannot serialise the reducer state");
    train_state st = {.step = next_step,
                      .total_steps = o->steps,
                      .batch = o->batch,
                      .seq = o->seq,
                      .world = g_world,
                      .seed = o->seed,
                      .params_hash = ckpt_hash(m->params_memory, m->num_parameters * 4),
                      .elapsed_s = elapsed};
    pipe_gather(q, m, whole);
    ckdir_save(o->out, o->keep_ckpt, whole, m, q->stages, &st, blob, wrote);
    free(blob);
}

/* WAM: stage 0 sends the rank and predicted sync time of its coming step down the pipeline; every
 * later stage aligns its own rank to it with its backward time per micro-batch (bwd_mb_ms, NaN
 * before the first step). Before the step, where every stage waits for stage 0 anyway. */
static void wam_exchange(const pipeline* q, edgc_reducer* red, double bwd_mb_ms, int align)
{
    edgc_wam_lead lead = {0, NAN};
    if (q->stage == 0 && edgc_reducer_wam_lead(red, &lead) != EDGC_OK)
        die("WAM: %s", edgc_reducer_last_error(red));
    if (!align) lead.predicted_ms = NAN; /* --wam off: no timing to align on, stage 0's rank */
    double msg[2] = {lead.rank, lead.predicted_ms};
    MPI_Bcast(msg, 2, MPI_DOUBLE, 0, q->pp);
    lead = (edgc_wam_lead){(int)msg[0], msg[1]};
    if (q->stage > 0 && edgc_reducer_wam_follow(red, &lead, bwd_mb_ms) != EDGC_OK)
        die("WAM: %s", edgc_reducer_last_error(red));
}

// ----------------------------------------------------------------------------

int main(int argc, char** argv)
{
    for (int i = 1; i < argc; i++) /* --help needs no MPI */
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            options_usage(stdout);
            return 0;
        }
    ranks_init(&argc, &argv);
    options o = options_parse(argc, argv);
    options_agree(&o);
    char why[8192] = "";
    /* threads inside this rank: OpenBLAS for the matmuls, OpenMP for the optimizer. The results
     * do not depend on them across ranks: the optimizer's bits do not, and each rank's own
     * forward/backward only feeds the synchronised gradient */
    int threads = o.threads;
    if (threads == 0) edgc_mpi_threads(MPI_COMM_WORLD, &threads); /* 1 if it cannot tell */
    openblas_set_num_threads(threads);
#ifdef _OPENMP
    omp_set_num_threads(threads);
#endif

    /* --init's shape first: token shards take their vocabulary from it */
    gpt2_config init_cfg;
    if (o.init != NULL) check_all(ckpt_read_config(o.init, &init_cfg, why, sizeof why) == 0, why);
    int vocab = o.init != NULL ? init_cfg.vocab_size : 0;

    token_data train, val;
    load_data(&o, vocab, &train, &val);
    gpt2_config cfg = options_model(&o, o.init != NULL ? &init_cfg : NULL, train.vocab_size);
    int B = o.batch, T = o.seq ? o.seq : cfg.max_seq_len;
    if (T > cfg.max_seq_len)
        die("--seq %d is longer than the model's position table (%d)", T, cfg.max_seq_len);
    o.seq = T;
    if (data_windows(&train, B, T) == 0)
        die("--data %s: %zu training tokens, too short for one batch of %d x %d + 1", o.data,
            train.n, B, T);
    if (data_windows(&val, B, T) == 0)
        die("validation data: %zu tokens, too short for one batch of %d x %d + 1", val.n, B, T);

    /* the grid, and this stage's part of the model: the whole model without a pipeline. With
     * one, `whole` holds the whole model's weights where they are read or written whole: on
     * every rank until the start (initialisation, --init, --resume), then on rank 0 (checkpoints,
     * sampling). */
    pipeline q;
    pipe_init(&q, o.pp, o.micro, B, T, &cfg);
    const int P = q.stages, D = q.replicas, last_stage = q.stage == P - 1;
    gpt2_part part = pipe_part(&q, &cfg), entire = {0, cfg.num_layers, 1, 1};
    gpt2 model, whole_store;
    gpt2* whole = &model;
    if (gpt2_build_part(&model, &cfg, &part, 0) != 0 ||
        (P > 1 && gpt2_build_part(&whole_store, &cfg, &entire, 1) != 0))
        die("out of memory for %d-layer model", cfg.num_layers);
    if (P > 1) whole = &whole_store;
    if (o.init != NULL) {
        check_all(ckpt_load_model(o.init, whole, NULL, why, sizeof why) == 0, why);
    } else {
        gpt2_init_weights(whole, o.seed);
    }
    if (P > 1) gpt2_part_transfer(&cfg, &part, whole->params_memory, model.params_memory, 0);
    check_weights_agree(&q, &model, 0); /* e.g. different --init files of the same shape */
    pipe_prepare(&q, &model);
    int* inputs = malloc((size_t)B * T * sizeof(int));
    int* targets = malloc((size_t)B * T * sizeof(int));
    if (inputs == NULL || targets == NULL) die("out of memory for a batch of %d x %d", B, T);

    /* reducer */
    edgc_tensor* tensors;
    size_t n_tensors;
    if (gpt2_layout(&model, &tensors, &n_tensors) != 0) die("out of memory for the layout");
    edgc_layout layout = {tensors, n_tensors, model.num_parameters};
    edgc_config rc;
    edgc_reducer* red = create_reducer(&o, &q, threads, &layout, &rc);

    int start = 0;
    double elapsed_before = 0.0;
    if (o.resume != NULL) start = resume(&o, &q, &cfg, &part, whole, &model, red, &elapsed_before);
    if (P > 1 && g_rank != 0) { /* from here on only rank 0 reads or writes the whole model */
        gpt2_free(&whole_store);
        whole = NULL;
    }

    print_banner(&o, &q, &cfg, &rc, threads, &train, &val, start);

    FILE* log = open_log(&o, &q, start);
    grad_dump* dump = open_dump(&o, &q, &layout);

    adamw_config ac = {0.9f, 0.95f, 1e-8f, o.weight_decay};
    step_times tt = {0};
    double t_begin = now_s();
    int r_max_seen = -1; /* last r_max reported; -1: none yet */
    double val_loss = NAN;
    edgc_step_stats s = {0};
    uint64_t sent_total = 0, dense_total = 0;
    int skipped = 0;
    for (int step = start; step < o.steps; step++) {
        float lr = lr_at(step, o.steps, o.warmup, o.lr, o.schedule);
        if (P > 1 && o.mode == EDGC_MODE_EDGC)
            wam_exchange(&q, red, step > start ? q.backward_ms / q.micro : NAN, o.wam != WAM_OFF);
        double t0 = now_s();
        data_batch(&train, (size_t)step * D + q.replica, B, T, inputs, targets);
        double batch_loss = pipe_train_step(&q, &model, inputs, targets);
        if (step == o.nan_step && g_rank == 0) model.grads_memory[0] = NAN;
        double t1 = now_s();
        /* OpenBLAS on one thread while the reducer runs: the engine then shares its matrices
         * out over the rank's threads, 1.8-2x faster on 2 cores than OpenBLAS's own threads */
        if (threads > 1) openblas_set_num_threads(1);
        edgc_status st = pipe_any_nonfinite(&q, &model)
                             ? EDGC_ERR_NONFINITE
                             : edgc_reducer_step(red, model.grads_memory, &s);
        if (threads > 1) openblas_set_num_threads(threads);
        double t2 = now_s();
        pipe_sum_tied(&q, &model);
        int outcome = st == EDGC_OK ? 0 : st == EDGC_ERR_NONFINITE ? 1 : 2;
        if (dump != NULL && outcome == 0 && grad_dump_wanted(o.dump_steps, step + 1) &&
            grad_dump_write(dump, step + 1, model.grads_memory, why, sizeof why) != 0) {
            fprintf(stderr, "edgc-train: %s; no more gradients are dumped\n", why);
            grad_dump_free(dump);
            dump = NULL;
        }
        if (outcome == 2)
            fprintf(stderr, "edgc-train: rank %d: step %d: %s\n", g_rank, step + 1,
                    edgc_reducer_last_error(red));
        double norm = pipe_clip(&q, &model, o.grad_clip, &outcome);
        double t2b = now_s(); /* the stages waiting for each other: pipeline wait */
        tt.fwd += q.forward_ms * 1e-3;
        tt.bwd += q.backward_ms * 1e-3;
        tt.wait += t1 - t0 - (q.forward_ms + q.backward_ms) * 1e-3 + (t2b - t2);
        if (outcome == 2) die("step %d: gradient synchronisation failed (see above)", step + 1);
        if (outcome == 1) {
            say("step %d: non-finite gradient on some rank; step skipped on all ranks\n", step + 1);
            skipped++;
            continue;
        }
        adamw_update(&model, lr, &ac, step + 1);
        double t3 = now_s();
        tt.sync += t2 - t1;
        tt.opt += t3 - t2b;
        sent_total = s.total_sent;
        dense_total = s.total_dense;
        double loss = last_stage ? batch_loss : 0.0; /* the replicas' mean, from the last stage */
        MPI_Allreduce(MPI_IN_PLACE, &loss, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
        loss /= D;

        int stop_now = o.stop_after > 0 && step + 1 == o.stop_after;
        int last = step + 1 == o.steps || stop_now;
        if (o.hash_every > 0 && ((step + 1) % o.hash_every == 0 || last))
            check_weights_agree(&q, &model, step + 1);
        int eval_now = (o.eval_every > 0 && (step + 1) % o.eval_every == 0) || last;
        if (eval_now) {
            double te = now_s();
            val_loss = evaluate(&q, &model, &val, B, T, o.eval_batches, inputs, targets);
            tt.eval += now_s() - te;
        }
        if (o.mode == EDGC_MODE_EDGC && o.r_max == 0 && s.phase != EDGC_PHASE_PROFILE &&
            s.r_max != r_max_seen) {
            say("step %5d/%d | profiled: dense sync %.1f ms -> r_max %d%s\n", step + 1, o.steps,
                s.dense_sync_ms, s.r_max,
                s.r_max == 0 ? " (no rank saves time on this link: staying dense)" : "");
            r_max_seen = s.r_max;
        }
        step_report rep = {step + 1,
                           o.steps,
                           loss,
                           eval_now ? val_loss : NAN,
                           lr,
                           norm,
                           (t2 - t1) * 1e3,
                           (t3 - t2b) * 1e3,
                           elapsed_before + now_s() - t_begin - tt.eval,
                           &s,
                           &q};
        if (log != NULL) report_log(log, &rep);
        if ((step + 1) % o.print_every == 0 || last || step == start)
            report_progress(&rep, (double)B * T * D, step + 1 - start, now_s() - t_begin,
                            sent_total, dense_total);
        if (eval_now) say("step %5d/%d | val loss %.4f\n", step + 1, o.steps, val_loss);
        if (o.out != NULL && ((o.ckpt_every > 0 && (step + 1) % o.ckpt_every == 0) || last))
            save_checkpoint(&o, &q, &model, whole, red, step + 1,
                            elapsed_before + now_s() - t_begin);
        if (stop_now) {
            say("stopped after step %d as asked (--stop-after)%s\n", step + 1,
                o.out ? "; continue with --resume" : "");
            o.steps = step + 1; /* for the summary below */
            break;
        }
    }
    double total_s = now_s() - t_begin;
    if (log != NULL) fclose(log);
    grad_dump_free(dump);
    if (start >= o.steps)
        val_loss = evaluate(&q, &model, &val, B, T, o.eval_batches, inputs, targets);
    /* bytes: every stage's, summed over the replica's pipeline */
    uint64_t bytes[2] = {sent_total, dense_total};
    MPI_Allreduce(MPI_IN_PLACE, bytes, 2, MPI_UINT64_T, MPI_SUM, q.pp);
    /* every rank at once, as they trained: the machine's peak for this run's layout of ranks */
    double peak = peak_sgemm_gflops();
    MPI_Allreduce(MPI_IN_PLACE, &peak, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    run_summary sum = {o.steps - start,
                       skipped,
                       P,
                       total_s,
                       val_loss,
                       (double)B * T * D,
                       gpt2_flops_per_token(&cfg, T),
                       bytes[0],
                       bytes[1],
                       tt,
                       o.mode,
                       s.dense_sync_ms,
                       peak};
    report_summary(&sum);
    if (o.sample_len > 0) pipe_gather(&q, &model, whole);
    sample_text(whole, o.sample_len, o.seed);

    edgc_reducer_free(red);
    pipe_free(&q);
    if (whole != NULL && whole != &model) gpt2_free(whole);
    free(tensors);
    free(inputs);
    free(targets);
    gpt2_free(&model);
    data_free(&train);
    data_free(&val);
    MPI_Finalize();
    return 0;
}
