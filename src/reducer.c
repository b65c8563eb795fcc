/*
 * reducer.c - one call per training step: dense, static PowerSGD, or the full EDGC life cycle
 * (docs/ALGORITHM.md) over any edgc_comm. It owns the agreement between workers: config + layout
 * hash at creation, the non-finite flag and the rank each step, the profiling times, and the
 * outcome of a state load, so that every worker takes the same branch and none is left waiting in a
 * collective. It never talks to MPI directly (see comm_mpi.c).
 *
 * A split reducer (edgc_reducer_create_split) has no engine: the caller synchronises between
 * edgc_reducer_begin and edgc_reducer_end, with Q drawn from the reducer's shared RNG.
 *
 * Saved state blob (native byte order, marked):
 *   magic "EDGCRED1" | u32 version | u32 byte-order mark | u64 config+layout hash |
 *   u64 payload bytes | payload | u64 FNV-1a of everything before it
 */
#define _POSIX_C_SOURCE 200809L
#include "edgc_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BLOB_MAGIC   "EDGCRED1"
#define BLOB_VERSION 5u
#define BLOB_BOM     0x01020304u
#define BLOB_HEADER  (8 + 4 + 4 + 8 + 8)

/* A dense step over a gradient in pieces makes one allreduce for all of them when they hold at
 * most this many floats (16 MB), copied into one buffer and back, else one per piece: a
 * collective costs more than copying a few MB (over gloo, 0.3 to several ms each). */
#define DENSE_COALESCE ((size_t)1 << 22)

struct edgc_reducer {
    edgc_config cfg;
    edgc_comm comm;
    edgc_tensor* tensors; /* copy of the layout's entries */
    edgc_layout layout;
    uint64_t hash;
    edgc_powersgd* ps;    /* NULL in dense mode and in a split reducer */
    edgc_controller* ctl; /* edgc mode only */
    edgc_gds* gds;        /* a split reducer's is given the sample: beta 1 */
    int split;            /* edgc_reducer_create_split: the caller's engine synchronises */
    int threads;          /* cfg.threads resolved: the non-finite check's */
    edgc__rng rng;        /* split: the shared draws for the caller's Q */
    /* the step between begin and end (edgc_reducer_begin / edgc_reducer_end) */
    struct {
        int open;
        edgc_plan plan;                         /* rank: the agreed one */
        int32_t prev_sync, prev_error, wam_tmb; /* agreed, micro-units */
        double compute_ms, t0;
    } cur;
    uint64_t step; /* dense / powersgd modes (edgc mode: the controller's) */
    uint64_t total_sent, total_dense;
    /* local timings of the previous step, agreed in the next step's agreement (no extra
     * collective): the controller's drift detection and error rule read them */
    double last_end_ms; /* when the previous step returned; 0 before the first */
    double prev_sync_ms, prev_error;
    double wam_tmb_ms; /* WAM follower: backward time per micro-batch, agreed in the next step */
    FILE* log;
    char err[256];
    float* coalesced; /* a dense step's pieces copied into one buffer (DENSE_COALESCE); made at
                         creation in the modes with dense steps, when the layout is that small */
    void* owned; /* freed with owned_free at free(): e.g. the MPI communicator it was made with */
    void (*owned_free)(void*);
};

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

static edgc_status fail(edgc_reducer* r, edgc_status st, const char* what)
{
    snprintf(r->err, sizeof r->err, "%s: %s", what, edgc_status_str(st));
    return st;
}

/* Element-wise max over workers of a few int32 flags: one small collective. */
static edgc_status agree_max(const edgc_comm* c, int32_t* v, size_t n)
{
    if (c->size == 1) return EDGC_OK;
    return c->allreduce_max_i32(c->ctx, v, n);
}

/* A 64-bit value (a hash, a step) as four int32 for a max-agreement: its halves and their
 * complements, so that where the workers' values differ, every worker's differs from the max. */
static void value_words(uint64_t x, int32_t out[4])
{
    out[0] = (int32_t)(uint32_t)(x >> 32);
    out[1] = (int32_t)(uint32_t)x;
    out[2] = ~out[0];
    out[3] = ~out[1];
}

/* After the agreement: 1 if some worker's value was not x. */
static int other_value(const int32_t agreed[4], uint64_t x)
{
    int32_t mine[4];
    value_words(x, mine);
    return memcmp(agreed, mine, sizeof mine) != 0;
}

void edgc_reducer_free(edgc_reducer* r)
{
    if (r == NULL) return;
    if (r->log != NULL) fclose(r->log);
    edgc_powersgd_free(r->ps);
    edgc_controller_free(r->ctl);
    edgc_gds_free(r->gds);
    free(r->tensors);
    free(r->coalesced);
    if (r->owned_free != NULL) r->owned_free(r->owned);
    free(r);
}

/* Builds the engine, controller and sampler for r->cfg and r->layout. */
static edgc_status build_parts(const edgc_reducer* r, edgc_powersgd** ps, edgc_controller** ctl)
{
    *ps = NULL;
    *ctl = NULL;
    edgc_status st = EDGC_OK;
    if (r->cfg.mode != EDGC_MODE_DENSE && !r->split)
        st = edgc_powersgd_create(&r->cfg, &r->layout, ps);
    if (st == EDGC_OK && r->cfg.mode == EDGC_MODE_EDGC)
        st = edgc_controller_create(&r->cfg, &r->layout, ctl);
    if (st != EDGC_OK) {
        edgc_powersgd_free(*ps);
        *ps = NULL;
    }
    return st;
}

/* Fills a zeroed reducer for cfg and layout (already checked and agreed): copies, engine,
 * controller, sampler, buffers. Local; on failure the caller frees r. */
static edgc_status build_reducer(edgc_reducer* r, const edgc_config* cfg, const edgc_layout* layout,
                                 const edgc_comm* comm, uint64_t h, int split)
{
    r->cfg = *cfg;
    r->comm = *comm;
    r->hash = h;
    r->split = split;
    edgc__rng_seed(&r->rng, cfg->seed);
    r->prev_sync_ms = r->prev_error = r->wam_tmb_ms = NAN;
    r->threads = edgc__threads(cfg->threads);
    r->tensors = malloc(layout->n_tensors * sizeof *r->tensors);
    if (r->tensors == NULL) return EDGC_ERR_NOMEM;
    memcpy(r->tensors, layout->tensors, layout->n_tensors * sizeof *r->tensors);
    r->layout = (edgc_layout){r->tensors, layout->n_tensors, layout->total};
    EDGC_FORWARD(build_parts(r, &r->ps, &r->ctl));
    EDGC_FORWARD(edgc_gds_create(split ? 1.0 : cfg->beta, cfg->bins, &r->gds));
    EDGC_FORWARD(edgc_gds_set_threads(r->gds, cfg->threads));
    /* made here, not at a step, so that every worker takes the same path or none is created */
    if (!split && cfg->mode != EDGC_MODE_POWERSGD && layout->total <= DENSE_COALESCE &&
        (r->coalesced = malloc(layout->total * sizeof(float))) == NULL)
        return EDGC_ERR_NOMEM;
    return EDGC_OK;
}

static edgc_status create(const edgc_config* cfg, const edgc_layout* layout, const edgc_comm* comm,
                          int split, edgc_reducer** out)
{
    EDGC_RETURN_IF(out == NULL, EDGC_ERR_INVALID_ARG);
    *out = NULL;
    EDGC_RETURN_IF(comm == NULL || comm->size < 1 || comm->rank < 0 || comm->rank >= comm->size ||
                       comm->allreduce_sum_f32 == NULL || comm->allreduce_max_i32 == NULL,
                   EDGC_ERR_INVALID_ARG);
    /* Validate locally, then agree: an invalid input on one worker must not leave the others
     * waiting in a collective it never joins. */
    edgc_status local = edgc_config_check(cfg, layout, NULL, 0);
    uint64_t h = local == EDGC_OK ? edgc__config_layout_hash(cfg, layout) : 0;
    /* a split reducer's state has no engine part: its blobs and its peers must be split too */
    if (split && local == EDGC_OK) h = edgc__fnv1a(h, "split", 5);
    int32_t v[6];
    v[0] = local != EDGC_OK && local != EDGC_ERR_NOMEM; /* invalid input */
    v[1] = local == EDGC_ERR_NOMEM;                     /* no memory to check it */
    value_words(h, v + 2);
    edgc_status st = agree_max(comm, v, 6);
    if (st != EDGC_OK) return st;
    if (local != EDGC_OK) return local;
    if (v[0]) return EDGC_ERR_MISMATCH;
    if (v[1]) return EDGC_ERR_NOMEM;
    if (other_value(v + 2, h)) return EDGC_ERR_MISMATCH;

    /* From here a failure (memory) may hit one worker only: every worker still reaches the
     * agreement below, so all fail together instead of some waiting in a later collective. */
    edgc_reducer* r = calloc(1, sizeof *r);
    st = r != NULL ? build_reducer(r, cfg, layout, comm, h, split) : EDGC_ERR_NOMEM;
    int32_t bad = st != EDGC_OK;
    edgc_status ast = agree_max(comm, &bad, 1);
    if (st == EDGC_OK && ast != EDGC_OK) st = ast;
    if (st == EDGC_OK && bad) st = EDGC_ERR_NOMEM;
    if (st != EDGC_OK) {
        edgc_reducer_free(r);
        return st;
    }
    *out = r;
    return EDGC_OK;
}

edgc_status edgc_reducer_create(const edgc_config* cfg, const edgc_layout* layout,
                                const edgc_comm* comm, edgc_reducer** out)
{
    return create(cfg, layout, comm, 0, out);
}

edgc_status edgc_reducer_create_split(const edgc_config* cfg, const edgc_layout* layout,
                                      const edgc_comm* comm, edgc_reducer** out)
{
    return create(cfg, layout, comm, 1, out);
}

/* One allreduce of the whole gradient; in pieces, of their copy in one buffer when they are
 * small (DENSE_COALESCE), else one per piece. */
static edgc_status dense_average(edgc_reducer* r, const edgc__grad* grad)
{
    if (r->comm.size == 1) return EDGC_OK; /* the average of one */
    const float inv = 1.0f / (float)r->comm.size;
    const size_t total = r->layout.total;
    if (grad->n > 1 && r->coalesced != NULL) {
        float* all = r->coalesced;
        for (size_t p = 0, at = 0; p < grad->n; at += grad->len[p], p++)
            if (grad->len[p] > 0) memcpy(all + at, grad->piece[p], grad->len[p] * sizeof(float));
        EDGC_FORWARD(r->comm.allreduce_sum_f32(r->comm.ctx, all, total));
        for (size_t p = 0, at = 0; p < grad->n; at += grad->len[p], p++)
            for (size_t i = 0; i < grad->len[p]; i++)
                grad->piece[p][i] = all[at + i] * inv;
        return EDGC_OK;
    }
    for (size_t p = 0; p < grad->n; p++) {
        float* x = grad->piece[p];
        const size_t n = grad->len[p];
        if (n == 0) continue;
        EDGC_FORWARD(r->comm.allreduce_sum_f32(r->comm.ctx, x, n));
        for (size_t i = 0; i < n; i++)
            x[i] *= inv;
    }
    return EDGC_OK;
}

/* The synchronisation itself: dense at rank 0, else PowerSGD at `rank`. With bad_any, the
 * non-finite agreement rides in the engine's P allreduce (bad_here: this worker's flag).
 * Fills what only the engine knows (bytes sent, compression error); step_end derives the rest. */
static edgc_status sync(edgc_reducer* r, const edgc__grad* grad, int rank, int bad_here,
                        int* bad_any, edgc_step_stats* s)
{
    s->compression_error = NAN;
    if (rank == 0) return dense_average(r, grad);
    EDGC_FORWARD(edgc_powersgd_set_rank(r->ps, rank));
    edgc_step_bytes b;
    if (bad_any != NULL) {
        EDGC_FORWARD(edgc__powersgd_step_checked(r->ps, grad, &r->comm, bad_here, bad_any, &b));
        if (*bad_any) return EDGC_OK;
    } else {
        EDGC_FORWARD(edgc__powersgd_step_grad(r->ps, grad, &r->comm, &b));
    }
    s->bytes_sent = b.sent;
    s->compression_error = edgc__powersgd_last_error(r->ps);
    return EDGC_OK;
}

/* A non-negative measurement as int32 micro-units for a max-agreement; -1 = unknown. */
static int32_t micro(double v)
{
    return isfinite(v) && v >= 0.0 ? (int32_t)fmin(v * 1e3, 2e9) : -1;
}

static double from_micro(int32_t v)
{
    return v < 0 ? NAN : v * 1e-3;
}

/* A barrier from the collectives every communicator has. */
static edgc_status barrier(const edgc_comm* c)
{
    int32_t x = 0;
    return agree_max(c, &x, 1);
}

/* A step skipped for a non-finite gradient on some worker: nothing changed. */
static edgc_status skipped(edgc_reducer* r, uint64_t step, int bad_here)
{
    snprintf(r->err, sizeof r->err,
             "step %llu: non-finite gradient on %s worker; step skipped, state unchanged",
             (unsigned long long)step, bad_here ? "this" : "another");
    r->last_end_ms = now_ms();
    return EDGC_ERR_NONFINITE;
}

/* The first half of every step: the plan, the one agreement between workers (agree = 0: the
 * caller has the engine agree on the non-finite flag instead, which needs a static rank), the
 * barrier of a timed step. On success the step is open, at the agreed rank in plan->rank. */
static edgc_status step_begin(edgc_reducer* r, int bad_here, int agree, edgc_plan* out)
{
    r->err[0] = '\0';
    if (r->cur.open) return fail(r, EDGC_ERR_STATE, "begin: the previous step was not ended");
    edgc_plan plan = {.step = r->step, .phase = EDGC_PHASE_COMPRESS};
    edgc_status st;
    if (r->cfg.mode == EDGC_MODE_EDGC) {
        if ((st = edgc_controller_plan(r->ctl, &plan)) != EDGC_OK) return fail(r, st, "plan");
    } else {
        plan.rank = r->cfg.mode == EDGC_MODE_POWERSGD ? r->cfg.rank : 0;
        if (r->cfg.mode == EDGC_MODE_DENSE) plan.phase = EDGC_PHASE_WARMUP;
        edgc_gds_sample_step(r->cfg.alpha, r->step, &plan.sample_entropy);
    }

    /* One agreement per step: any non-finite gradient, the rank (equal on every worker by
     * construction; the max makes sure nothing diverges), and the previous step's sync time (us),
     * compression error (x 1e6) and WAM backward time (us), which cost nothing extra here. */
    double t_enter = now_ms();
    double compute_ms = r->last_end_ms > 0.0 ? t_enter - r->last_end_ms : NAN;
    /* Room for a higher rank (and for the controller's entropy history) is allocated now, before
     * anything changes, so a worker that runs out of memory says so in the agreement instead of
     * leaving the others in a collective or failing alone after it. */
    int nomem_here =
        (plan.rank > 0 && r->ps != NULL && edgc__powersgd_reserve(r->ps, plan.rank) != EDGC_OK) ||
        (r->ctl != NULL && edgc__controller_reserve(r->ctl) != EDGC_OK);
    int32_t v[6] = {bad_here != 0,
                    plan.rank,
                    nomem_here,
                    micro(r->prev_sync_ms),
                    micro(r->prev_error * 1e3),
                    micro(r->wam_tmb_ms)};
    if (agree && (st = agree_max(&r->comm, v, 6)) != EDGC_OK) return fail(r, st, "agreement");
    if (v[0]) return skipped(r, plan.step, bad_here);
    if (v[2]) {
        snprintf(r->err, sizeof r->err,
                 "step %llu: out of memory (rank %d buffers or entropy history) on %s worker",
                 (unsigned long long)plan.step, (int)v[1], nomem_here ? "this" : "another");
        return EDGC_ERR_NOMEM;
    }
    if (plan.timed && (st = barrier(&r->comm)) != EDGC_OK) return fail(r, st, "barrier");
    plan.rank = v[1];
    r->cur.plan = plan;
    r->cur.prev_sync = v[3];
    r->cur.prev_error = v[4];
    r->cur.wam_tmb = v[5];
    r->cur.compute_ms = compute_ms;
    r->cur.open = 1;
    if (out != NULL) *out = plan;
    r->cur.t0 = now_ms();
    return EDGC_OK;
}

/* The second half: records the synchronisation that s describes (sync time, bytes, compression
 * error), the entropy of the averaged gradient when the plan asked for it (e: unread otherwise),
 * commits to the controller, logs and closes the step. */
static edgc_status step_end(edgc_reducer* r, edgc_step_stats s, const edgc_entropy* e,
                            edgc_step_stats* stats)
{
    const edgc_plan* plan = &r->cur.plan;
    edgc_status st;
    s.mode = r->cfg.mode;
    s.step = plan->step;
    s.phase = plan->phase;
    s.rank = plan->rank;
    s.entropy = s.entropy_scaled = s.dense_sync_ms = s.wam_budget_ms = NAN;
    s.bytes_dense = (uint64_t)r->layout.total * sizeof(float);
    if (plan->rank == 0) s.bytes_sent = s.bytes_dense;
    r->cur.open = 0;

    edgc_observation obs = {.compute_ms = NAN,
                            .prev_sync_ms = from_micro(r->cur.prev_sync),
                            .prev_error = from_micro(r->cur.prev_error) * 1e-3};
    if (plan->timed) { /* the slowest worker's times, so every worker profiles the same table */
        int32_t t[2] = {micro(s.sync_ms), micro(r->cur.compute_ms)};
        if ((st = agree_max(&r->comm, t, 2)) != EDGC_OK) return fail(r, st, "timing");
        obs.sync_ms = from_micro(t[0]);
        obs.compute_ms = from_micro(t[1]);
    }
    r->prev_sync_ms = s.sync_ms;
    r->prev_error = s.compression_error;
    if (plan->sample_entropy) {
        s.entropy_sampled = 1;
        s.entropy = e->h;
        s.entropy_scaled = e->h_scaled;
        obs.entropy = r->cfg.scale_aware_entropy ? e->h_scaled : e->h;
        /* -inf for an all-equal gradient: record the plain value instead of poisoning means */
        if (!isfinite(obs.entropy)) obs.entropy = e->h;
    }
    if (r->cfg.mode == EDGC_MODE_EDGC) {
        if ((st = edgc_controller_commit(r->ctl, &obs)) != EDGC_OK) return fail(r, st, "commit");
        edgc_controller_bounds(r->ctl, &s.r_min, &s.r_max);
        double compute;
        int profiles;
        edgc_controller_profiled(r->ctl, &s.dense_sync_ms, &compute, &profiles);
        s.wam_budget_ms = edgc__controller_wam_budget(r->ctl);
        /* for the decisions of later steps: equal on every worker of this stage */
        edgc__controller_wam_tmb(r->ctl, from_micro(r->cur.wam_tmb));
    } else {
        r->step++;
    }
    r->total_sent += s.bytes_sent;
    r->total_dense += s.bytes_dense;
    s.total_sent = r->total_sent;
    s.total_dense = r->total_dense;
    if (r->log != NULL) {
        char line[512];
        if (edgc_stats_json(&s, line, sizeof line) == EDGC_OK) fputs(line, r->log);
    }
    if (stats != NULL) *stats = s;
    r->last_end_ms = now_ms();
    return EDGC_OK;
}

static edgc_status step(edgc_reducer* r, const edgc__grad* grad, edgc_step_stats* stats)
{
    if (r->split) return fail(r, EDGC_ERR_STATE, "step on a split reducer: use begin and end");
    edgc_plan plan;
    /* A static rank leaves only the non-finite flag to agree on: it rides in the engine's P
     * allreduce, two collectives a step in all. Nothing else in the agreement is read then (no
     * controller, and the rank's buffers exist from creation). The engine also finds the flag
     * itself, from ||M||^2 or P, which it computes anyway: no read of the gradient here. */
    int in_engine = r->cfg.mode == EDGC_MODE_POWERSGD;
    int bad_here = 0;
    if (in_engine && r->cfg.check_finite)
        bad_here = -1;
    else if (r->cfg.check_finite)
        bad_here = edgc__grad_any_nonfinite(grad, r->threads);
    EDGC_FORWARD(step_begin(r, in_engine ? 0 : bad_here, !in_engine, &plan));
    edgc_step_stats s = {0};
    int bad_any = 0;
    int* flag = in_engine && r->cfg.check_finite ? &bad_any : NULL;
    edgc_status st = sync(r, grad, plan.rank, bad_here, flag, &s);
    if (st != EDGC_OK || bad_any) r->cur.open = 0;
    if (st != EDGC_OK) return fail(r, st, "synchronisation");
    if (bad_any) return skipped(r, plan.step, bad_any == 2);
    s.sync_ms = now_ms() - r->cur.t0; /* the entropy below is not synchronisation */
    edgc_entropy e;
    if (plan.sample_entropy) edgc__gds_entropy_grad(r->gds, grad, &e);
    return step_end(r, s, &e, stats);
}

edgc_status edgc_reducer_step(edgc_reducer* r, float* grad, edgc_step_stats* stats)
{
    EDGC_RETURN_IF(r == NULL || grad == NULL, EDGC_ERR_INVALID_ARG);
    const edgc__grad one = {&grad, &r->layout.total, 1};
    return step(r, &one, stats);
}

edgc_status edgc_reducer_step_pieces(edgc_reducer* r, float* const* pieces, const size_t* lengths,
                                     size_t n_pieces, edgc_step_stats* stats)
{
    EDGC_RETURN_IF(r == NULL, EDGC_ERR_INVALID_ARG);
    const edgc__grad g = {pieces, lengths, n_pieces};
    edgc_status st = edgc__grad_check(&g, &r->layout, r->err, sizeof r->err);
    if (st != EDGC_OK) return st;
    return step(r, &g, stats);
}

edgc_status edgc_reducer_begin(edgc_reducer* r, int nonfinite_here, edgc_plan* plan)
{
    EDGC_RETURN_IF(r == NULL || plan == NULL, EDGC_ERR_INVALID_ARG);
    if (!r->split) return fail(r, EDGC_ERR_STATE, "begin on a reducer with its own engine");
    return step_begin(r, nonfinite_here && r->cfg.check_finite, 1, plan);
}

edgc_status edgc_reducer_draw_gaussian(edgc_reducer* r, float* out, size_t n)
{
    EDGC_RETURN_IF(r == NULL || (out == NULL && n > 0), EDGC_ERR_INVALID_ARG);
    if (!r->split) return fail(r, EDGC_ERR_STATE, "draw on a reducer with its own engine");
    edgc__rng_gaussian(&r->rng, out, n);
    return EDGC_OK;
}

edgc_status edgc_reducer_end(edgc_reducer* r, const edgc_sync_report* rep, edgc_step_stats* stats)
{
    EDGC_RETURN_IF(r == NULL || rep == NULL, EDGC_ERR_INVALID_ARG);
    r->err[0] = '\0';
    if (!r->split || !r->cur.open) return fail(r, EDGC_ERR_STATE, "end without begin");
    double sync_ms =
        isfinite(rep->sync_ms) && rep->sync_ms >= 0.0 ? rep->sync_ms : now_ms() - r->cur.t0;
    edgc_entropy e;
    if (r->cur.plan.sample_entropy) {
        /* the step stays open: the caller can end it again with the sample */
        if (rep->entropy_sample == NULL && r->layout.total > 0)
            return fail(r, EDGC_ERR_INVALID_ARG, "end: entropy_sample is NULL");
        edgc_gds_entropy(r->gds, rep->entropy_sample, rep->entropy_count, &e);
    }
    edgc_step_stats s = {.sync_ms = sync_ms,
                         .bytes_sent = rep->bytes_sent,
                         .compression_error = r->cur.plan.rank > 0 ? rep->compression_error : NAN};
    return step_end(r, s, &e, stats);
}

/* --------------------------------------------------------------------------------------------- */
static const char* mode_name(edgc_mode m)
{
    return m == EDGC_MODE_DENSE ? "dense" : m == EDGC_MODE_POWERSGD ? "powersgd" : "edgc";
}

static const char* phase_name(edgc_phase p)
{
    return p == EDGC_PHASE_PROFILE ? "profile" : p == EDGC_PHASE_WARMUP ? "warmup" : "compress";
}

/* JSON has no NaN: null instead. */
static void json_num(char* out, size_t cap, double v)
{
    if (isfinite(v))
        snprintf(out, cap, "%.6g", v);
    else
        snprintf(out, cap, "null");
}

edgc_status edgc_stats_json(const edgc_step_stats* s, char* buf, size_t cap)
{
    EDGC_RETURN_IF(s == NULL || buf == NULL, EDGC_ERR_INVALID_ARG);
    char sync[32], h[32], hs[32], err[32], dms[32], wam[32];
    json_num(sync, sizeof sync, s->sync_ms);
    json_num(h, sizeof h, s->entropy_sampled ? s->entropy : NAN);
    json_num(hs, sizeof hs, s->entropy_sampled ? s->entropy_scaled : NAN);
    json_num(err, sizeof err, s->compression_error);
    json_num(dms, sizeof dms, s->dense_sync_ms);
    json_num(wam, sizeof wam, s->wam_budget_ms);
    int n = snprintf(buf, cap,
                     "{\"step\":%llu,\"mode\":\"%s\",\"phase\":\"%s\",\"rank\":%d,\"r_min\":%d,"
                     "\"r_max\":%d,\"bytes_sent\":%llu,\"bytes_dense\":%llu,\"sync_ms\":%s,"
                     "\"entropy\":%s,\"entropy_scaled\":%s,\"compression_error\":%s,"
                     "\"dense_sync_ms\":%s,\"wam_budget_ms\":%s}\n",
                     (unsigned long long)s->step, mode_name(s->mode), phase_name(s->phase), s->rank,
                     s->r_min, s->r_max, (unsigned long long)s->bytes_sent,
                     (unsigned long long)s->bytes_dense, sync, h, hs, err, dms, wam);
    if (n < 0 || (size_t)n >= cap) {
        if (cap > 0) buf[0] = '\0';
        return EDGC_ERR_BUFFER_SMALL;
    }
    return EDGC_OK;
}

edgc_status edgc_reducer_log_jsonl(edgc_reducer* r, const char* path)
{
    EDGC_RETURN_IF(r == NULL, EDGC_ERR_INVALID_ARG);
    if (r->log != NULL) fclose(r->log);
    r->log = NULL;
    if (path == NULL) return EDGC_OK;
    r->log = fopen(path, "a");
    if (r->log == NULL) {
        snprintf(r->err, sizeof r->err, "cannot open log file '%s'", path);
        return EDGC_ERR_INVALID_ARG;
    }
    return EDGC_OK;
}

edgc_status edgc_reducer_wam_lead(edgc_reducer* r, edgc_wam_lead* out)
{
    EDGC_RETURN_IF(r == NULL || out == NULL, EDGC_ERR_INVALID_ARG);
    out->rank = r->cfg.mode == EDGC_MODE_POWERSGD ? r->cfg.rank : 0;
    out->predicted_ms = NAN;
    if (r->cfg.mode != EDGC_MODE_EDGC) return EDGC_OK;
    edgc_plan plan; /* the plan is fixed until the step commits it: this is the step's rank */
    EDGC_FORWARD(edgc_controller_plan(r->ctl, &plan));
    out->rank = plan.rank;
    out->predicted_ms = edgc__controller_predict_measured(r->ctl, plan.rank);
    return EDGC_OK;
}

edgc_status edgc_reducer_wam_follow(edgc_reducer* r, const edgc_wam_lead* lead,
                                    double backward_mb_ms)
{
    EDGC_RETURN_IF(r == NULL || lead == NULL || lead->rank < 0 || backward_mb_ms < 0.0 ||
                       r->cfg.pipeline_stage == 0,
                   EDGC_ERR_INVALID_ARG);
    if (r->cfg.mode != EDGC_MODE_EDGC) return EDGC_OK;
    edgc__controller_wam_lead(r->ctl, lead->rank, lead->predicted_ms);
    r->wam_tmb_ms = backward_mb_ms;
    return EDGC_OK;
}

const char* edgc_reducer_last_error(const edgc_reducer* r)
{
    return r == NULL ? "reducer is NULL" : r->err;
}

/* --------------------------------------------------------------------------------------------- */
static void save_payload(const edgc_reducer* r, edgc__writer* w)
{
    edgc__put(w, &r->step, sizeof r->step);
    edgc__put(w, &r->total_sent, sizeof r->total_sent);
    edgc__put(w, &r->total_dense, sizeof r->total_dense);
    edgc__put(w, &r->prev_sync_ms, sizeof r->prev_sync_ms);
    edgc__put(w, &r->prev_error, sizeof r->prev_error);
    if (r->ps != NULL) edgc__powersgd_save(r->ps, w);
    if (r->split) edgc__put(w, &r->rng, sizeof r->rng);
    if (r->ctl != NULL) edgc__controller_save(r->ctl, w);
}

edgc_status edgc_reducer_state_size(const edgc_reducer* r, size_t* bytes)
{
    EDGC_RETURN_IF(r == NULL || bytes == NULL, EDGC_ERR_INVALID_ARG);
    edgc__writer w = {0};
    save_payload(r, &w);
    *bytes = BLOB_HEADER + w.len + 8;
    return EDGC_OK;
}

edgc_status edgc_reducer_save(const edgc_reducer* r, void* buf, size_t cap, size_t* written)
{
    EDGC_RETURN_IF(r == NULL || buf == NULL || written == NULL, EDGC_ERR_INVALID_ARG);
    *written = 0;
    size_t need;
    EDGC_FORWARD(edgc_reducer_state_size(r, &need));
    EDGC_RETURN_IF(cap < need, EDGC_ERR_BUFFER_SMALL);
    edgc__writer w = {buf, cap, 0};
    uint32_t version = BLOB_VERSION, bom = BLOB_BOM;
    uint64_t payload = need - BLOB_HEADER - 8;
    edgc__put(&w, BLOB_MAGIC, 8);
    edgc__put(&w, &version, 4);
    edgc__put(&w, &bom, 4);
    edgc__put(&w, &r->hash, 8);
    edgc__put(&w, &payload, 8);
    save_payload(r, &w);
    uint64_t sum = edgc__fnv1a(EDGC__FNV_SEED, buf, w.len);
    edgc__put(&w, &sum, 8);
    *written = w.len;
    return EDGC_OK;
}

/* Checks the blob's frame; on success *payload_at / *payload_len locate the payload. */
static edgc_status check_blob(const edgc_reducer* r, const uint8_t* b, size_t len, char* why,
                              size_t why_len)
{
    if (b == NULL || len < BLOB_HEADER + 8) {
        edgc__msg(why, why_len, "state blob truncated (%zu bytes)", len);
        return EDGC_ERR_CORRUPT;
    }
    uint32_t version, bom;
    uint64_t hash, payload, sum;
    memcpy(&version, b + 8, 4);
    memcpy(&bom, b + 12, 4);
    memcpy(&hash, b + 16, 8);
    memcpy(&payload, b + 24, 8);
    if (memcmp(b, BLOB_MAGIC, 8) != 0 || version != BLOB_VERSION || bom != BLOB_BOM) {
        edgc__msg(why, why_len, "not an edgc reducer state of version %u on this machine",
                  BLOB_VERSION);
        return EDGC_ERR_CORRUPT;
    }
    if (payload != len - BLOB_HEADER - 8) {
        edgc__msg(why, why_len, "state blob length %zu does not match its header", len);
        return EDGC_ERR_CORRUPT;
    }
    memcpy(&sum, b + len - 8, 8);
    if (sum != edgc__fnv1a(EDGC__FNV_SEED, b, len - 8)) {
        edgc__msg(why, why_len, "state blob checksum mismatch: corrupted");
        return EDGC_ERR_CORRUPT;
    }
    if (hash != r->hash) {
        edgc__msg(why, why_len, "state blob was saved with another config or layout");
        return EDGC_ERR_MISMATCH;
    }
    return EDGC_OK;
}

edgc_status edgc_reducer_load(edgc_reducer* r, const void* buf, size_t len)
{
    EDGC_RETURN_IF(r == NULL, EDGC_ERR_INVALID_ARG);
    r->err[0] = '\0';
    const uint8_t* b = buf;
    edgc_status st = check_blob(r, b, len, r->err, sizeof r->err);
    /* Parse into fresh parts; the reducer's own are replaced only if every worker succeeds. */
    edgc_powersgd* ps = NULL;
    edgc_controller* ctl = NULL;
    uint64_t step = 0, sent = 0, dense = 0;
    double prev_sync = NAN, prev_err = NAN;
    edgc__rng rng = r->rng;
    if (st == EDGC_OK) st = build_parts(r, &ps, &ctl);
    if (st == EDGC_OK) {
        edgc__reader rd = {b + BLOB_HEADER, len - BLOB_HEADER - 8, 0, 0};
        edgc__get(&rd, &step, sizeof step);
        edgc__get(&rd, &sent, sizeof sent);
        edgc__get(&rd, &dense, sizeof dense);
        edgc__get(&rd, &prev_sync, sizeof prev_sync);
        edgc__get(&rd, &prev_err, sizeof prev_err);
        if (ps != NULL) st = edgc__powersgd_load(ps, &rd);
        if (r->split) edgc__get(&rd, &rng, sizeof rng);
        if (st == EDGC_OK && ctl != NULL) st = edgc__controller_load(ctl, &rd);
        if (st == EDGC_OK && (rd.bad || rd.at != rd.len)) st = EDGC_ERR_CORRUPT;
        if (st != EDGC_OK && r->err[0] == '\0')
            snprintf(r->err, sizeof r->err, "state blob content invalid: %s", edgc_status_str(st));
    }
    /* Agree: worst status wins (CORRUPT over MISMATCH over NOMEM), so all fail together. Blobs
     * that are each sound but of different steps (one worker's checkpoint older than the
     * others') would set the workers' plans against each other: a mismatch too. */
    const uint64_t at = ctl != NULL ? edgc__controller_step(ctl) : step;
    int32_t v[7] = {st == EDGC_ERR_CORRUPT, st == EDGC_ERR_MISMATCH, st != EDGC_OK};
    value_words(at, v + 3);
    edgc_status ast = agree_max(&r->comm, v, 7);
    const int other_step = !v[2] && other_value(v + 3, at);
    edgc_status agreed = ast != EDGC_OK ? ast
                         : v[0]         ? EDGC_ERR_CORRUPT
                         : v[1]         ? EDGC_ERR_MISMATCH
                         : v[2]         ? (st != EDGC_OK ? st : EDGC_ERR_NOMEM)
                         : other_step   ? EDGC_ERR_MISMATCH
                                        : EDGC_OK;
    if (agreed != EDGC_OK) {
        if (other_step)
            snprintf(r->err, sizeof r->err,
                     "state blobs of different steps on the workers (this one: step %llu)",
                     (unsigned long long)at);
        else if (st == EDGC_OK)
            snprintf(r->err, sizeof r->err, "state load failed on another worker: %s",
                     edgc_status_str(agreed));
        edgc_powersgd_free(ps);
        edgc_controller_free(ctl);
        return agreed;
    }
    edgc_powersgd_free(r->ps);
    edgc_controller_free(r->ctl);
    r->ps = ps;
    r->ctl = ctl;
    r->step = step;
    r->total_sent = sent;
    r->total_dense = dense;
    r->prev_sync_ms = prev_sync;
    r->prev_error = prev_err;
    r->rng = rng;
    r->cur.open = 0;
    r->last_end_ms = 0.0; /* the time since the save is no compute time */
    return EDGC_OK;
}

/* For backends that create the communicator on the caller's behalf (edgc_reducer_create_mpi). */
void edgc__reducer_own(edgc_reducer* r, void* owned, void (*owned_free)(void*))
{
    r->owned = owned;
    r->owned_free = owned_free;
}
