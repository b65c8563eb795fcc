/*
 * edgc.h - Entropy-driven Dynamic Gradient Compression (arXiv 2511.10333), core C API.
 *
 * A typical data-parallel trainer loop (one edgc_powersgd engine and one controller per worker):
 *
 *     edgc_config cfg = edgc_config_default();
 *     cfg.total_steps = steps;  cfg.r_max = 16;              // or leave r_max = 0 to profile it
 *     edgc_controller* ctl;  edgc_powersgd* ps;
 *     edgc_controller_create(&cfg, &layout, &ctl);
 *     edgc_powersgd_create(&cfg, &layout, &ps);
 *     for (step = 0; step < steps; step++) {
 *         backward(grad);                                    // local gradient, one flat buffer
 *         edgc_plan plan;  edgc_controller_plan(ctl, &plan);
 *         if (plan.rank == 0) dense_average(grad);           // warm-up / profiling base steps
 *         else { edgc_powersgd_set_rank(ps, plan.rank); edgc_powersgd_step(ps, grad, &comm, NULL); }
 *         edgc_observation obs = {0};
 *         if (plan.sample_entropy) { edgc_gds_entropy(gds, grad, n, &e); obs.entropy = e.h; }
 *         edgc_controller_commit(ctl, &obs);
 *         optimizer_step(grad);
 *     }
 *
 * The MPI reducer (edgc_mpi.h) wraps exactly this loop behind one call per step.
 *
 * Conventions
 *  1. Every function that can fail returns an edgc_status; edgc_status_str() gives a message.
 *  2. Opaque objects come in create/free pairs. create writes its object to the last argument and
 *     sets it to NULL on failure; free accepts NULL.
 *  3. Buffers passed to a call are borrowed for that call only: the library copies what it keeps
 *     (config, layout) and never holds a caller pointer after returning.
 *  4. The library never prints, never exits, and has no global mutable state. One object must not
 *     be used from two threads at once; different objects are independent.
 *  5. Matrices are rows x cols, row-major, float32, at an element offset inside one flat buffer.
 */
#ifndef EDGC_H
#define EDGC_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(EDGC_BUILDING_LIBRARY) && defined(__GNUC__)
#define EDGC_API __attribute__((visibility("default")))
#else
#define EDGC_API
#endif

#define EDGC_VERSION_MAJOR 0
#define EDGC_VERSION_MINOR 1
#define EDGC_VERSION_PATCH 0
#define EDGC_VERSION_NUMBER                                                                        \
    (EDGC_VERSION_MAJOR * 10000 + EDGC_VERSION_MINOR * 100 + EDGC_VERSION_PATCH)

/* ---------------------------------------------------------------------------------------------
 * Status codes. Values are pinned: new codes are only ever appended.
 */
#define EDGC_STATUS_MAP(XX)                                                                        \
    XX(OK, 0, "success")                                                                           \
    XX(ERR_INVALID_ARG, 1, "invalid argument")                                                     \
    XX(ERR_CONFIG, 2, "invalid configuration")                                                     \
    XX(ERR_NOMEM, 3, "out of memory")                                                              \
    XX(ERR_LAYOUT, 4, "invalid gradient layout")                                                   \
    XX(ERR_COMM, 5, "communication failed")                                                        \
    XX(ERR_MISMATCH, 6, "configuration or layout differs between workers")                         \
    XX(ERR_NONFINITE, 7, "non-finite value in the gradient")                                       \
    XX(ERR_BUFFER_SMALL, 8, "output buffer too small")                                             \
    XX(ERR_CORRUPT, 9, "state blob corrupted, truncated or from another version")                  \
    XX(ERR_STATE, 10, "call out of order for this object's state")

typedef enum {
#define EDGC__STATUS_ENUM(name, value, text) EDGC_##name = value,
    EDGC_STATUS_MAP(EDGC__STATUS_ENUM)
#undef EDGC__STATUS_ENUM
} edgc_status;

/** A readable message for a status ("invalid configuration"); never NULL. */
EDGC_API const char* edgc_status_str(edgc_status s);
/** The status's symbolic name ("EDGC_ERR_CONFIG"); never NULL. */
EDGC_API const char* edgc_status_name(edgc_status s);
/** EDGC_VERSION_NUMBER of the library actually linked. */
EDGC_API unsigned edgc_version_number(void);
/** "MAJOR.MINOR.PATCH" of the library actually linked. */
EDGC_API const char* edgc_version_string(void);

/* ---------------------------------------------------------------------------------------------
 * Gradient layout: the tensors inside one flat float32 gradient buffer.
 * A tensor with rows >= 2 and cols >= 2 is a matrix and is compressed; any other (biases,
 * LayerNorm, a 1 x n row) is dense and is averaged exactly. Tensors must not overlap and must
 * together cover [0, total) exactly, so that no element is left unsynchronised.
 */
typedef struct edgc_tensor {
    size_t offset; /* first element inside the flat buffer */
    size_t rows;
    size_t cols; /* 1 for a vector */
} edgc_tensor;

typedef struct edgc_layout {
    const edgc_tensor* tensors;
    size_t n_tensors;
    size_t total; /* elements in the flat buffer */
} edgc_layout;

/* ---------------------------------------------------------------------------------------------
 * Configuration: one struct for the engine, the controller and the reducer. Fill it with
 * edgc_config_default() and change what you need. Units, defaults and bounds per field.
 */
typedef enum {
    EDGC_MODE_DENSE = 0,    /* plain averaged allreduce: the baseline */
    EDGC_MODE_POWERSGD = 1, /* static rank `rank`, error feedback, warm start */
    EDGC_MODE_EDGC = 2      /* dynamic rank: profiling -> warm-up -> windowed compression */
} edgc_mode;

typedef enum {
    EDGC_RULE_TREND = 0, /* normalised entropy-trend linear map (the authors' code) */
    EDGC_RULE_CQM = 1,   /* g^-1(exp(H_ref - H_k) g(r_ref)), Marchenko-Pastur g */
    EDGC_RULE_ERROR = 2, /* error budget: the measured compression error is held at its value at
                            r_max when compression began, relaxed by exp(H_ref - H_k) as entropy
                            falls; the rank steps down while the error stays under the budget.
                            Lost to the trend rule on our benchmark; kept as an option */
    EDGC_RULE_DECAY = 3  /* the rank falls linearly with the run's progress, from r_max when
                            compression begins to r_min at total_steps: the falling-entropy
                            observation without the noisy per-window entropy estimate. Fastest
                            to dense's quality on our slow-link benchmark: the default */
} edgc_rank_rule;

typedef enum {
    EDGC_RMAX_BUDGET = 0, /* the largest profiled rank whose whole step (compute + sync) stays
                             within rmax_slack of the fastest compressed step's saving over the
                             fastest dense one;
                             never past a measured rank, never past half the dense bytes */
    EDGC_RMAX_PAPER = 1   /* the authors' rule: the largest rank whose sync time, interpolated
                             (or extrapolated) over the profile, is still below dense */
} edgc_rmax_rule;

typedef enum {
    EDGC_WARMUP_RMAX = 0, /* warm-up steps are compressed at r_max (dense when nothing pays) */
    EDGC_WARMUP_DENSE = 1 /* warm-up steps are dense (the authors' code) */
} edgc_warmup_sync;

typedef enum {
    EDGC_WAM_CAP = 0,  /* a stage whose slack buys more than its r_max takes r_max; dense only when
                          the budget exceeds its dense sync time */
    EDGC_WAM_PAPER = 1 /* the authors' code: more than r_max means no compression at all (on our
                          benchmark that turned a 15 ms sync into a 180 ms one; kept as an option) */
} edgc_wam_rule;

typedef enum {
    EDGC_PHASE_PROFILE = 0, /* measuring sync time against rank to find r_max */
    EDGC_PHASE_WARMUP = 1,  /* r_max held (or dense, see warmup_sync), entropy collected */
    EDGC_PHASE_COMPRESS = 2 /* PowerSGD at the controller's rank */
} edgc_phase;

typedef struct edgc_config {
    edgc_mode mode;          /* default EDGC_MODE_EDGC */
    int rank;                /* EDGC_MODE_POWERSGD rank, >= 1; default 4 */
    uint64_t total_steps;    /* T_total, sets the warm-up length; > 0 in EDGC mode; default 0 */
    double warmup_fraction;  /* warm-up steps = ceil(fraction * total_steps), [0, 1); default 0.2 */
    int window;              /* W: steps between rank decisions, >= 2; 0 = derived from
                                total_steps: total_steps / 20 rounded down to a multiple of the
                                entropy stride, within [2 strides, 1000]; default 0 */
    double alpha;            /* ISR: entropy sampled every round(1/alpha) steps, (0, 1]; 0.1 */
    double beta;             /* GSR: every floor(1/beta)-th element sampled, (0, 1]; 0.25 */
    int bins;                /* histogram bins, >= 2; default 1000 */
    int scale_aware_entropy; /* 0: plain histogram entropy (authors' code); 1: add ln(bin
                                width), a differential-entropy estimate; default 0 */
    edgc_rank_rule rule;     /* default EDGC_RULE_DECAY */
    int rank_step;           /* largest rank change per window, >= 1; default 4 */
    int r_max;               /* 0: profile it with rmax_rule (if no rank pays, stay dense);
                                else the rank ceiling, >= 1 */
    int r_min;               /* 0: r_max / 3 (at least 1); else 1 <= r_min <= r_max */
    int profile_start;       /* first profiling step, >= 0; default 1 */
    int profile_base_steps;  /* timed dense steps giving T_base, >= 1; default 4 */
    int profile_reps;        /* steps per profiled rank, the first dropped, 2..17; default 4 */
    int error_feedback;      /* 1: keep e = M - G_hat between steps; default 1 */
    int orthonormalize_q;    /* 1: re-orthonormalise the warm-started Q each step; default 1 */
    float orth_eps;          /* Gram-Schmidt: a column whose residual is <= orth_eps times its
                                norm is numerically dependent and is replaced by a fresh
                                orthogonal direction; >= 0; default 1e-5 (float32 leaves about
                                1e-7 of rounding noise) */
    uint64_t seed;           /* shared seed for Q; must be equal on all workers; default 714 */
    int check_finite;        /* reducer: reject a step whose local gradient has a NaN/Inf on any
                                worker (costs one read pass); default 1 */
    int pipeline_stage;      /* WAM: this worker's pipeline stage, 0 <= stage < stages; default 0 */
    int pipeline_stages;     /* WAM: number of pipeline stages, >= 1; default 1 */
    edgc_rmax_rule rmax_rule;     /* how profiling picks r_max; default EDGC_RMAX_BUDGET */
    double rmax_slack;            /* budget rule: share of the best achievable step-time saving
                                      given up for a higher rank, [0, 1]; default 0.25 */
    double min_saving;            /* budget rule: compress only if the fastest compressed step
                                      is at least this much shorter than a dense one, [0, 1);
                                      default 0.05 (below it, timing noise decides) */
    edgc_warmup_sync warmup_sync; /* default EDGC_WARMUP_RMAX */
    double error_margin;          /* error rule: step the rank down only while the window's
                                      error is below (1 - margin) x the budget, [0, 1);
                                      default 0.05 */
    double reprofile_factor;      /* re-profile when the sync time measured over a window, relative
                                      to the profile's prediction, moves by more than this factor
                                      from its value in the first window; 0 = never, else > 1;
                                      default 2 */
    edgc_wam_rule wam_rule;       /* pipeline stages > 0: a budget beyond r_max; default
                                     EDGC_WAM_CAP */
    int threads; /* OpenMP threads of the engine (its element-wise work, in tiles of rows; the
                    tiles' and matrices' products too while OpenBLAS runs on one thread, else
                    OpenBLAS's threads do the products), of GDS and of the non-finite check:
                    1..1024, or 0 for the CPUs this process may run on
                    (edgc_reducer_create_mpi: shared with the ranks of its node that may run on
                    them too, edgc_mpi_threads); no result depends on it (OpenBLAS's own thread
                    count does change the products' rounding); default 0 */
} edgc_config;

/** Every field at its documented default (docs/ALGORITHM.md, section 9). Cannot fail. */
EDGC_API edgc_config edgc_config_default(void);

/** Validates cfg and, when layout is not NULL, the layout against it.
 *  @param why  receives a message naming the offending field ("beta = 1.5: must be in (0, 1]");
 *              may be NULL. Always NUL-terminated when why_len > 0.
 *  @return EDGC_OK, EDGC_ERR_INVALID_ARG (cfg NULL), EDGC_ERR_CONFIG or EDGC_ERR_LAYOUT. */
EDGC_API edgc_status edgc_config_check(const edgc_config* cfg, const edgc_layout* layout, char* why,
                                       size_t why_len);
/** The window length in use: cfg->window, or when it is 0 the one derived from total_steps (see
 *  edgc_config.window); 0 if cfg is NULL. */
EDGC_API int edgc_config_window(const edgc_config* cfg);

/* ---------------------------------------------------------------------------------------------
 * Communicator: the small interface every collective goes through. All operations are in place,
 * counts are in elements, ctx comes first. The MPI backend is in edgc_mpi.h; an in-process
 * backend for tests is below. A reducer needs the two blocking allreduces, the engine alone
 * (edgc_powersgd_step) the float sum. The iallreduce/test/wait trio is optional (NULL when
 * absent); the engine uses it to overlap the dense 1-D allreduce with the P/Q products. The
 * library never calls broadcast: the two backends supply it for their callers, and a
 * communicator of your own may leave it NULL.
 */
typedef struct edgc_comm {
    void* ctx;
    int rank; /* this worker, 0 <= rank < size */
    int size; /* number of workers */
    edgc_status (*allreduce_sum_f32)(void* ctx, float* buf, size_t n);
    edgc_status (*allreduce_max_i32)(void* ctx, int32_t* buf, size_t n);
    edgc_status (*broadcast)(void* ctx, void* buf, size_t bytes, int root);
    edgc_status (*iallreduce_sum_f32)(void* ctx, float* buf, size_t n, void** request);
    edgc_status (*test)(void* ctx, void* request, int* done); /* frees request once done */
    edgc_status (*wait)(void* ctx, void* request);            /* frees request */
} edgc_comm;

/** A group of `size` workers inside one process, one thread each. Results are bit-identical on
 *  every worker (sums are taken in worker order). Every worker must make the same sequence of
 *  calls, as with MPI. */
typedef struct edgc_inproc edgc_inproc;
/** @return EDGC_OK, EDGC_ERR_INVALID_ARG (size < 1), EDGC_ERR_NOMEM. */
EDGC_API edgc_status edgc_inproc_create(int size, edgc_inproc** out);
/** Fills *out with the communicator of worker `rank`; valid until edgc_inproc_free.
 *  @return EDGC_OK, EDGC_ERR_INVALID_ARG. */
EDGC_API edgc_status edgc_inproc_comm(edgc_inproc* group, int rank, edgc_comm* out);
EDGC_API void edgc_inproc_free(edgc_inproc* group);

/* ---------------------------------------------------------------------------------------------
 * GDS: the Gradient Data Sampler (docs/ALGORITHM.md, 2). Histogram entropy in nats over every
 * k-th finite element (k = floor(1/beta)), `bins` equal-width bins over the sample's [min, max].
 */
typedef struct edgc_entropy {
    double h;        /* Shannon entropy of the histogram, nats, in [0, ln bins]; 0 if degenerate */
    double h_scaled; /* h + ln(bin width): differential-entropy estimate; -INFINITY if all sampled
                        values are equal or none is finite */
    size_t count;    /* finite values sampled */
    float min, max;  /* range of the sample (0, 0 when count == 0) */
} edgc_entropy;

typedef struct edgc_gds edgc_gds;
/** @return EDGC_OK, EDGC_ERR_CONFIG (beta not in (0,1], bins < 2), EDGC_ERR_NOMEM. */
EDGC_API edgc_status edgc_gds_create(double beta, int bins, edgc_gds** out);
/** Entropy of the sampled x[0], x[k], x[2k]...; non-finite values are skipped. Two passes, no
 *  allocation. @return EDGC_OK, EDGC_ERR_INVALID_ARG (NULL pointers). */
EDGC_API edgc_status edgc_gds_entropy(edgc_gds* gds, const float* x, size_t n, edgc_entropy* out);
/** Threads for both passes of edgc_gds_entropy (OpenMP; 1 after create): 1..1024, or 0 for the
 *  CPUs this process may use. The result does not depend on it, to the last bin.
 *  @return EDGC_OK, EDGC_ERR_INVALID_ARG (gds NULL, threads out of range), EDGC_ERR_NOMEM. */
EDGC_API edgc_status edgc_gds_set_threads(edgc_gds* gds, int threads);
/** ISR: *yes = 1 iff `step` is a sampled iteration, i.e. step % round(1/alpha) == 0.
 *  @return EDGC_OK, EDGC_ERR_INVALID_ARG (alpha not in (0,1], yes NULL). */
EDGC_API edgc_status edgc_gds_sample_step(double alpha, uint64_t step, int* yes);
EDGC_API void edgc_gds_free(edgc_gds* gds);

/* ---------------------------------------------------------------------------------------------
 * PowerSGD engine (docs/ALGORITHM.md, 3): error feedback, warm-started Q from a shared seed, one
 * flat P and one flat Q allreduce per step, the 1-D tensors averaged densely alongside.
 */
typedef struct edgc_step_bytes {
    uint64_t sent;  /* payload this worker contributed to allreduces this step */
    uint64_t dense; /* payload a dense allreduce of the whole buffer would have had */
} edgc_step_bytes;

typedef struct edgc_powersgd edgc_powersgd;
/** Starts at rank cfg->rank. Buffers are sized for the current rank and grow only in
 *  edgc_powersgd_set_rank when the rank rises above every rank used before: steps never allocate.
 *  @return EDGC_OK, EDGC_ERR_INVALID_ARG, EDGC_ERR_CONFIG, EDGC_ERR_LAYOUT, EDGC_ERR_NOMEM. */
EDGC_API edgc_status edgc_powersgd_create(const edgc_config* cfg, const edgc_layout* layout,
                                          edgc_powersgd** out);
/** Sets the rank for the next steps (each matrix uses min(rows, cols, rank)). The error-feedback
 *  memory is kept; Q keeps its first columns and new ones are drawn from the shared RNG. Every
 *  worker must make the same calls, since the RNG is shared.
 *  @return EDGC_OK, EDGC_ERR_INVALID_ARG (rank < 1), EDGC_ERR_NOMEM (the rank is unchanged). */
EDGC_API edgc_status edgc_powersgd_set_rank(edgc_powersgd* ps, int rank);
/** Replaces the local gradient `grad` (layout->total floats) in place with the compressed average
 *  over comm's workers. bytes may be NULL.
 *  @return EDGC_OK, EDGC_ERR_INVALID_ARG, EDGC_ERR_COMM (a collective failed; the error memory is
 *  then unreliable and the step should be treated as lost). */
EDGC_API edgc_status edgc_powersgd_step(edgc_powersgd* ps, float* grad, const edgc_comm* comm,
                                        edgc_step_bytes* bytes);
/** Bytes one step would send at `rank`, without running it. */
EDGC_API edgc_status edgc_powersgd_bytes_at(const edgc_powersgd* ps, int rank,
                                            edgc_step_bytes* bytes);
/** The largest rank any matrix of the layout can use (max over matrices of min(rows, cols)). */
EDGC_API edgc_status edgc_powersgd_rank_cap(const edgc_powersgd* ps, int* cap);
EDGC_API void edgc_powersgd_free(edgc_powersgd* ps);

/* ---------------------------------------------------------------------------------------------
 * EDGC controller (docs/ALGORITHM.md, 1 and 4-6): pure, deterministic logic, no communication.
 * Each step, plan() says what to do and commit() records what happened. Given the same inputs on
 * every worker (entropy of the averaged gradient, agreed times) every worker takes the same
 * decisions.
 */
typedef struct edgc_plan {
    uint64_t step;
    edgc_phase phase;
    int rank;           /* 0: dense synchronisation this step; else PowerSGD at this rank */
    int sample_entropy; /* 1: pass the entropy of the averaged gradient to commit() */
    int timed;          /* 1: a profiling step; pass its sync time (barrier first) to commit() */
    int rank_changed;   /* 1: the rank differs from the previous step's */
} edgc_plan;

typedef struct edgc_observation {
    double entropy;    /* read when plan.sample_entropy; must be finite */
    double sync_ms;    /* read when plan.timed; must be finite and >= 0 */
    double compute_ms; /* read when plan.timed: the step's time outside synchronisation (forward,
                          backward, optimizer), agreed (max) across workers; NaN = unknown */
    /* The previous step's agreed sync time and compression error (NaN = unknown, or the previous
     * step was dense); they feed the error rule and drift detection. */
    double prev_sync_ms;
    double prev_error;
} edgc_observation;

typedef struct edgc_controller edgc_controller;
/** layout gives the matrix shapes for the CQM rule and the rank cap; it is copied.
 *  @return EDGC_OK, EDGC_ERR_INVALID_ARG, EDGC_ERR_CONFIG, EDGC_ERR_LAYOUT, EDGC_ERR_NOMEM. */
EDGC_API edgc_status edgc_controller_create(const edgc_config* cfg, const edgc_layout* layout,
                                            edgc_controller** out);
/** The plan for the current step. Calling it again before commit returns the same plan.
 *  @return EDGC_OK, EDGC_ERR_INVALID_ARG. */
EDGC_API edgc_status edgc_controller_plan(edgc_controller* ctl, edgc_plan* out);
/** Records the current step's observation and advances to the next step.
 *  @return EDGC_OK, EDGC_ERR_INVALID_ARG (a needed value is missing or not finite; nothing is
 *  recorded), EDGC_ERR_STATE (commit without plan). */
EDGC_API edgc_status edgc_controller_commit(edgc_controller* ctl, const edgc_observation* obs);
/** Current rank bounds; 0, 0 while r_max is still being profiled, and 0, 0 after profiling when
 *  even the smallest rank tried was slower than dense: the run then stays dense (rank 0 in the
 *  compress phase). Set r_max to compress regardless. */
EDGC_API edgc_status edgc_controller_bounds(const edgc_controller* ctl, int* r_min, int* r_max);
/** What profiling measured: the dense sync time and the compute time per step (both NaN until
 *  profiled or when r_max was given), and how many times the run has been profiled.
 *  @return EDGC_OK, EDGC_ERR_INVALID_ARG. */
EDGC_API edgc_status edgc_controller_profiled(const edgc_controller* ctl, double* dense_ms,
                                              double* compute_ms, int* profiles);
EDGC_API void edgc_controller_free(edgc_controller* ctl);

/** r_max by the authors' rule (docs/ALGORITHM.md, 4.3): 4 * floor(r* / 4) where r* interpolates
 *  (extrapolates) the measured (ms[i], ranks[i]) points at base_ms; ranks below 4 are kept as
 *  they are (at least 1).
 *  Points must have increasing ranks. @return EDGC_OK, EDGC_ERR_INVALID_ARG (n < 1, unsorted or
 *  non-finite input). */
EDGC_API edgc_status edgc_rmax_from_profile(const int* ranks, const double* ms, size_t n,
                                            double base_ms, int* r_max);

/* ---------------------------------------------------------------------------------------------
 * WAM stage alignment (docs/ALGORITHM.md, 7). Stage 0's rank r0 gives a predicted sync time
 * T0 = interp_{r->T}(r0) from its profile; stage p > 0 then has the budget T0 + p * t_mb and takes
 * the largest rank that fits (rounded up to a multiple of 4), or no compression at all.
 */
typedef struct edgc_profile {
    const int* ranks; /* increasing */
    const double* ms; /* sync time at each rank */
    size_t n;         /* >= 1 */
    double base_ms;   /* uncompressed sync time, T_base */
} edgc_profile;

/** T = interp_{r->T}(rank) over the profile, extrapolated at the ends (one point: its time).
 *  @return EDGC_OK, EDGC_ERR_INVALID_ARG. */
EDGC_API edgc_status edgc_profile_time_at(const edgc_profile* prof, double rank, double* ms);
/** Stage `stage`'s rank given stage 0's predicted time t0_ms and this stage's backward time per
 *  micro-batch t_mb_ms. *rank = 0 means "do not compress this window".
 *  @return EDGC_OK, EDGC_ERR_INVALID_ARG. */
EDGC_API edgc_status edgc_wam_stage_rank(const edgc_profile* own, double t0_ms, int stage,
                                         double t_mb_ms, int r_max, int* rank);

/* ---------------------------------------------------------------------------------------------
 * Reducer: the object a trainer calls once per step. It turns each worker's local gradient into
 * the same averaged (dense) or compressed-averaged (powersgd, edgc) gradient on every worker, in
 * place, and runs the whole EDGC life cycle in edgc mode. Collective: every worker creates it,
 * steps it, saves and loads it together. Over MPI, create it with edgc_reducer_create_mpi()
 * (edgc_mpi.h).
 */
typedef struct edgc_step_stats {
    uint64_t step;
    edgc_mode mode;
    edgc_phase phase;
    int rank;             /* 0: dense this step */
    int r_min, r_max;     /* current bounds (edgc mode; 0 while profiling) */
    uint64_t bytes_sent;  /* payload this worker put into allreduces this step */
    uint64_t bytes_dense; /* payload of a dense allreduce of the whole gradient */
    uint64_t total_sent;  /* sums since creation (or since the loaded state's creation) */
    uint64_t total_dense;
    double sync_ms;           /* wall time of this step's synchronisation on this worker */
    int entropy_sampled;      /* 1: the two entropy fields below are this step's sample */
    double entropy;           /* plain histogram entropy of the averaged gradient, nats */
    double entropy_scaled;    /* scale-aware variant */
    double compression_error; /* ||M - G_hat|| / ||M|| over the matrices, this worker; NaN when
                                  dense or without error feedback. With several workers M holds
                                  their summed gradient differences, which no rank sends, so it
                                  reads near 1 at any rank (docs/ALGORITHM.md 4.2) */
    double dense_sync_ms;     /* edgc mode: the profiled dense sync time (what a dense step would
                                 have cost on this link); NaN when not profiled */
    double wam_budget_ms;     /* pipeline stage > 0: the sync-time budget T0 + stage * t_mb of the
                                 current window's rank; NaN when it did not come from timings */
} edgc_step_stats;

typedef struct edgc_reducer edgc_reducer;

/** Validates cfg and layout, then compares a hash of both across comm's workers (one collective).
 *  comm is copied; the object behind comm->ctx must outlive the reducer.
 *  @return EDGC_OK; EDGC_ERR_CONFIG / EDGC_ERR_LAYOUT (this worker's input is invalid; the others
 *  get EDGC_ERR_MISMATCH); EDGC_ERR_MISMATCH (workers disagree); EDGC_ERR_INVALID_ARG;
 *  EDGC_ERR_NOMEM (on every worker when one ran out of memory); EDGC_ERR_COMM. */
EDGC_API edgc_status edgc_reducer_create(const edgc_config* cfg, const edgc_layout* layout,
                                         const edgc_comm* comm, edgc_reducer** out);
/** One synchronisation step over grad (layout->total floats), in place. stats may be NULL.
 *  @return EDGC_OK; EDGC_ERR_NONFINITE on every worker if any worker's gradient holds a NaN or
 *  Inf: nothing in the reducer was changed (error memory, Q, RNG, step counter), skip the step and
 *  go on. The gradient is untouched too, except in powersgd mode with error feedback: there the
 *  flag rides in P's allreduce, after M = G + e is built in the gradient, so every worker's
 *  matrices then hold G + e (a NaN or Inf stays where it was);
 *  EDGC_ERR_NOMEM on every worker if one could not grow its buffers for a higher rank or its
 *  entropy history (nothing changed either: retry or stop);
 *  EDGC_ERR_INVALID_ARG; EDGC_ERR_COMM. */
EDGC_API edgc_status edgc_reducer_step(edgc_reducer* r, float* grad, edgc_step_stats* stats);
/** edgc_reducer_step over a gradient that is not one buffer: the layout's flat buffer cut into
 *  n_pieces pieces laid end to end (piece i holds lengths[i] floats; together layout->total), in
 *  place, e.g. a framework's gradient buckets without copying them into one buffer and back. The
 *  same result to the bit as edgc_reducer_step over their concatenation. A tensor must lie inside
 *  one piece (a zero-length piece may be NULL). A dense step makes one allreduce of the pieces
 *  copied into one buffer when the layout holds at most 2^22 floats (16 MB; the reducer of a mode
 *  with dense steps keeps that buffer), one allreduce per piece past that. So every worker must
 *  cut the gradient the same way (a framework's buckets are), in every step.
 *  @return as edgc_reducer_step; EDGC_ERR_INVALID_ARG (with the reason in
 *  edgc_reducer_last_error) when the pieces do not fit the layout, before any communication and
 *  on this worker alone (the others are then left in the step's collectives). */
EDGC_API edgc_status edgc_reducer_step_pieces(edgc_reducer* r, float* const* pieces,
                                              const size_t* lengths, size_t n_pieces,
                                              edgc_step_stats* stats);
/** Appends one JSON object per step (the stats) to `path`; NULL stops logging.
 *  @return EDGC_OK, EDGC_ERR_INVALID_ARG (cannot open the file: see edgc_reducer_last_error). */
EDGC_API edgc_status edgc_reducer_log_jsonl(edgc_reducer* r, const char* path);
/** Writes the stats as one JSON object and a newline into buf (NUL-terminated).
 *  @return EDGC_OK, EDGC_ERR_INVALID_ARG, EDGC_ERR_BUFFER_SMALL (512 bytes are always enough). */
EDGC_API edgc_status edgc_stats_json(const edgc_step_stats* s, char* buf, size_t cap);

/** Bytes edgc_reducer_save needs now. @return EDGC_OK, EDGC_ERR_INVALID_ARG. */
EDGC_API edgc_status edgc_reducer_state_size(const edgc_reducer* r, size_t* bytes);
/** Serialises this worker's state (error memory, Q, RNG, controller history and phase, step) into
 *  a versioned blob with a checksum. Local: no communication.
 *  @return EDGC_OK, EDGC_ERR_INVALID_ARG, EDGC_ERR_BUFFER_SMALL (nothing written). */
EDGC_API edgc_status edgc_reducer_save(const edgc_reducer* r, void* buf, size_t cap,
                                       size_t* written);
/** Restores a blob written by edgc_reducer_save on the same worker of a reducer with the same
 *  config and layout. Collective: if any worker's blob is rejected, every worker fails and keeps
 *  its state as it was (all or nothing).
 *  @return EDGC_OK; EDGC_ERR_CORRUPT (bad magic, version, length or checksum, here or on another
 *  worker); EDGC_ERR_MISMATCH (the blob is from another config or layout, or the workers' blobs
 *  were saved at different steps); EDGC_ERR_NOMEM;
 *  EDGC_ERR_COMM. */
EDGC_API edgc_status edgc_reducer_load(edgc_reducer* r, const void* buf, size_t len);
/** WAM across pipeline stages (docs/ALGORITHM.md, 7), with one reducer per stage over that
 *  stage's data-parallel workers. Before each step, stage 0 reads its lead with
 *  edgc_reducer_wam_lead() and sends it down its pipeline; every later stage passes it to
 *  edgc_reducer_wam_follow() with its own backward time per micro-batch. At each window boundary
 *  such a stage then takes edgc_wam_stage_rank() over its own profile, scaled the same way (dense
 *  when the budget exceeds its dense time), or stage 0's rank within its bounds when there are no
 *  timings to align with (r_max given). Stage 0 and PP = 1 are unaffected. */
typedef struct edgc_wam_lead {
    int rank;            /* stage 0's rank for its next step; 0 = dense */
    double predicted_ms; /* its sync time at that rank: its profile's, scaled by measured over
                            predicted in its last window; NaN when not profiled */
} edgc_wam_lead;
/** Stage 0: the lead for the coming step (fixes that step's plan). In dense and powersgd modes the
 *  rank is 0 or the static rank, the time NaN. Local. @return EDGC_OK, EDGC_ERR_INVALID_ARG. */
EDGC_API edgc_status edgc_reducer_wam_lead(edgc_reducer* r, edgc_wam_lead* out);
/** Stage > 0: stage 0's lead and this worker's backward time per micro-batch in ms (NaN when not
 *  measured yet; the workers' times are agreed, max, in the next step). Local; nothing happens in
 *  dense and powersgd modes. @return EDGC_OK, EDGC_ERR_INVALID_ARG (NULL, a negative rank or
 *  time, or this reducer is stage 0). */
EDGC_API edgc_status edgc_reducer_wam_follow(edgc_reducer* r, const edgc_wam_lead* lead,
                                             double backward_mb_ms);
/* Split step, for an engine outside the library (e.g. torch ops on a GPU, where the gradient is
 * not in host memory). A reducer made with edgc_reducer_create_split() keeps everything of the
 * algorithm but the arithmetic: the plan, the agreement of every worker on the non-finite flag and
 * the rank, the profiling times, the entropy, the controller, the shared RNG and the log. The
 * caller's engine does what edgc_powersgd_step does, at the rank it is given:
 *
 *   edgc_reducer_begin(r, local gradient has NaN/Inf, &plan)  -- collective
 *   plan.rank == 0: average densely; else PowerSGD at plan.rank (per matrix min(rows, cols,
 *   rank)), drawing new rows of Q^T with edgc_reducer_draw_gaussian as edgc_powersgd_set_rank
 *   does (per matrix in layout order, the rows it did not have before), then orthonormalising
 *   edgc_reducer_end(r, &report, &stats)  -- collective in timed steps
 *
 * Its state blob holds no error memory or Q: the caller saves its own beside it. */
typedef struct edgc_sync_report {
    double sync_ms;              /* the synchronisation's wall time, from begin's return until its
                                    collectives and device work finished; NaN: the reducer takes
                                    the time until this call */
    uint64_t bytes_sent;         /* payload this worker put into allreduces (rank 0: ignored) */
    double compression_error;    /* ||M - G_hat|| / ||M|| over the matrices; NaN when unknown */
    const float* entropy_sample; /* plan.sample_entropy: x[0], x[k], x[2k], ... of the averaged
                                    gradient, k = floor(1 / beta), in host memory; else unused */
    size_t entropy_count;        /* elements in entropy_sample */
} edgc_sync_report;

/** As edgc_reducer_create, for a reducer whose caller synchronises (see above). Its workers must
 *  all be split reducers (EDGC_ERR_MISMATCH otherwise). */
EDGC_API edgc_status edgc_reducer_create_split(const edgc_config* cfg, const edgc_layout* layout,
                                               const edgc_comm* comm, edgc_reducer** out);
/** Opens a step: plans it, agrees with the other workers (nonfinite_here: this worker's gradient
 *  holds a NaN or Inf; ignored when cfg.check_finite is 0) and, in a timed step, waits at a
 *  barrier. plan->rank is the agreed rank (0: dense).
 *  @return EDGC_OK; EDGC_ERR_NONFINITE on every worker when any worker flagged its gradient
 *  (nothing changed, the step is not opened: skip it); EDGC_ERR_STATE (not a split reducer, or the
 *  previous step is still open); EDGC_ERR_INVALID_ARG; EDGC_ERR_COMM. */
EDGC_API edgc_status edgc_reducer_begin(edgc_reducer* r, int nonfinite_here, edgc_plan* plan);
/** n normal draws from the RNG every worker shares (seeded with cfg.seed, saved in the state).
 *  @return EDGC_OK, EDGC_ERR_INVALID_ARG, EDGC_ERR_STATE (not a split reducer). */
EDGC_API edgc_status edgc_reducer_draw_gaussian(edgc_reducer* r, float* out, size_t n);
/** Closes the step opened by edgc_reducer_begin with what the caller's engine did; stats as from
 *  edgc_reducer_step. Call it after the synchronisation has finished on the device.
 *  @return EDGC_OK; EDGC_ERR_STATE (no open step); EDGC_ERR_INVALID_ARG (entropy_sample NULL when
 *  the plan asked for it: the step stays open); EDGC_ERR_COMM. */
EDGC_API edgc_status edgc_reducer_end(edgc_reducer* r, const edgc_sync_report* report,
                                      edgc_step_stats* stats);
/** A message about the last failure on this reducer ("" if none); valid until the next call. */
EDGC_API const char* edgc_reducer_last_error(const edgc_reducer* r);
EDGC_API void edgc_reducer_free(edgc_reducer* r);

#ifdef __cplusplus
}
#endif
#endif /* EDGC_H */
