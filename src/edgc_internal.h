/*
 * edgc_internal.h - private: do not include from apps/ or examples/. Shared declarations between
 * the library's source files (names prefixed edgc__), and the error-return helpers.
 * Tests may include it to reach the pure functions behind the public objects.
 */
#ifndef EDGC_INTERNAL_H
#define EDGC_INTERNAL_H

#include "edgc.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* Return `status` from the current function if `cond` holds. */
#define EDGC_RETURN_IF(cond, status)                                                               \
    do {                                                                                           \
        if (cond) return (status);                                                                 \
    } while (0)

/* Propagate a non-OK status. */
#define EDGC_FORWARD(expr)                                                                         \
    do {                                                                                           \
        edgc_status edgc__s = (expr);                                                              \
        if (edgc__s != EDGC_OK) return edgc__s;                                                    \
    } while (0)

/* snprintf into a caller's message buffer that may be NULL. */
void edgc__msg(char* why, size_t why_len, const char* fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---------------------------------------------------------------------------------------------
 * Layout (layout.c)
 */
typedef struct edgc__matrix {
    size_t offset; /* in the gradient buffer */
    size_t rows, cols;
    size_t cap; /* min(rows, cols): the largest useful rank */
} edgc__matrix;

typedef struct edgc__span {
    size_t offset, count;
} edgc__span;

/* The layout split into matrices and dense spans (adjacent dense tensors merged), both copied. */
typedef struct edgc__plan_layout {
    edgc__matrix* mats;
    size_t n_mats;
    edgc__span* dense;
    size_t n_dense;
    size_t dense_total; /* elements over all dense spans */
    size_t total;
    int rank_cap; /* max over matrices of cap, 0 without matrices */
} edgc__plan_layout;

edgc_status edgc__layout_check(const edgc_layout* layout, char* why, size_t why_len);
edgc_status edgc__layout_split(const edgc_layout* layout, edgc__plan_layout* out);
void edgc__layout_release(edgc__plan_layout* pl);

/* ---------------------------------------------------------------------------------------------
 * The gradient of one step (grad.c): the layout's flat buffer as one piece, or the same floats in
 * pieces laid end to end (edgc_reducer_step_pieces), no tensor crossing from one into the next.
 */
typedef struct edgc__grad {
    float* const* piece; /* n pieces */
    const size_t* len;   /* their lengths in floats */
    size_t n;
} edgc__grad;

/* Where the float at flat index `at` lies (at < the pieces' total; at the start of a tensor, so
 * that the tensor's floats follow it). */
float* edgc__grad_at(const edgc__grad* g, size_t at);
/* EDGC_OK when the pieces hold layout->total floats and no tensor crosses a piece's end; else
 * EDGC_ERR_INVALID_ARG with the reason in why. */
edgc_status edgc__grad_check(const edgc__grad* g, const edgc_layout* layout, char* why,
                             size_t why_len);
/* edgc__any_nonfinite over every piece. */
int edgc__grad_any_nonfinite(const edgc__grad* g, int threads);
/* edgc_gds_entropy over the pieces' floats as one buffer: the same sample, bins and result. */
edgc_status edgc__gds_entropy_grad(edgc_gds* gds, const edgc__grad* g, edgc_entropy* out);

/* ---------------------------------------------------------------------------------------------
 * Random numbers (rng.c): xoshiro256** seeded by splitmix64, Gaussian by Box-Muller. The whole
 * state is this struct, so it is saved and restored by value.
 */
typedef struct edgc__rng {
    uint64_t s[4];
} edgc__rng;

void edgc__rng_seed(edgc__rng* rng, uint64_t seed);
uint64_t edgc__rng_next(edgc__rng* rng);
/* n standard normal floats. */
void edgc__rng_gaussian(edgc__rng* rng, float* out, size_t n);

/* ---------------------------------------------------------------------------------------------
 * Dense linear algebra helpers (linalg.c)
 */
/* Gram-Schmidt with re-orthogonalisation on the k rows (each of length len, contiguous) of a:
 * after it the rows are orthonormal (k <= len). A row whose residual is at most eps times its
 * original norm is numerically dependent on the earlier rows and is replaced by a coordinate
 * direction orthogonal to them (deterministically). */
void edgc__orthonormalize_rows(float* a, size_t k, size_t len, float eps);

/* ---------------------------------------------------------------------------------------------
 * Rank rules (rank_rules.c): pure functions of the entropy history and the bounds.
 */
typedef struct edgc__bounds {
    int r_min, r_max, step;
} edgc__bounds;

/* Arithmetic mean of h[0..n), n >= 1. */
double edgc__mean(const double* h, size_t n);
/* Spec 5.5: the rank the trend map proposes before smoothing, from the entropy samples h[0..n)
 * and n_w samples per window. Returns r_max when fewer than 2 windows have been sampled. */
int edgc__trend_target(const double* h, size_t n, size_t n_w, edgc__bounds b);
/* The decay rule: r_max at step `start` (compression began), falling linearly to r_min at step
 * `total`, r_min from then on (before smoothing). */
int edgc__decay_target(uint64_t step, uint64_t start, uint64_t total, edgc__bounds b);
/* Clamp to [r_min, r_max], round down to even (for ranks >= 2), then limit the change from
 * `prev` to +-step; the bounds win over parity. */
int edgc__smooth_rank(int target, int prev, edgc__bounds b);

/* Spec 5.3: g(r) = ||A - A_r||_F / ||A||_F for an m x n Marchenko-Pastur matrix, from the
 * deterministic quantiles. Writes g[0..cap] with cap = min(m, n); g[0] = 1, g[cap] = 0. */
edgc_status edgc__mp_error_curve(size_t m, size_t n, double* g);
/* Element-weighted g over the layout's matrices: g_stage[0..rank_cap]. Caller frees *out. */
edgc_status edgc__mp_stage_curve(const edgc__plan_layout* pl, double** out);
/* Smallest r in [r_lo, r_hi] with g[r] <= y; r_hi if none qualifies. */
int edgc__mp_inverse(const double* g, int r_lo, int r_hi, double y);
/* The error-budget rule: the rank for the next window from the last window's mean measured
 * compression error `err` at rank `cur`, the budget, and the margin below it that lets the rank
 * step down (before smoothing). */
int edgc__error_target(double err, double budget, double margin, int cur, edgc__bounds b);

typedef struct edgc__writer edgc__writer;
typedef struct edgc__reader edgc__reader;

/* ---------------------------------------------------------------------------------------------
 * Profiling (profile.c): sync time against rank, and r_max from it.
 */
#define EDGC__PROF_MAX         40 /* ranks 8, 12, 16, ... past 2^18: more than any layout has */
#define EDGC__PROF_COMPUTE_MAX 64 /* compute-time samples kept per profile */
#define EDGC__PROF_SAMPLES_MAX 16 /* timed samples kept per rank */

typedef struct edgc__profiler {
    int active;      /* 1 while profiling */
    uint64_t origin; /* step this profile's untimed settling steps began at */
    double base_sum; /* dense timed steps so far: their sum and their fastest */
    double base_min;
    int base_n;
    int rank, rep; /* rank being timed, steps of it so far (the first is not kept) */
    double rep_ms[EDGC__PROF_SAMPLES_MAX];
    int ranks[EDGC__PROF_MAX]; /* measured ranks, increasing, and their median sync times */
    double ms[EDGC__PROF_MAX];
    size_t n;
    double compute[EDGC__PROF_COMPUTE_MAX]; /* compute time of each timed step */
    size_t n_compute;
    double base_ms, compute_ms; /* results of the last finished profile; NaN before */
    int count;                  /* profiles finished */
} edgc__profiler;

/* 1 if a (rank, ms) table is usable: n >= 1, ranks >= 1 and increasing, times finite. */
int edgc__profile_table_ok(const int* ranks, const double* ms, size_t n);
/* Starts a profile (keeping the last one's results and the count). */
void edgc__profiler_start(edgc__profiler* p, uint64_t origin, int first_rank);
/* What a step sends, in floats: by_rank[0] for a dense step, by_rank[r] at rank r for
 * r = 1..worth_cap, the largest rank still sending at most half the dense bytes. */
typedef struct edgc__payload {
    const size_t* by_rank;
    int worth_cap;
} edgc__payload;
/* Records one timed step. Returns 1 when the profile is finished, with *r_max set (0: stay
 * dense). */
int edgc__profiler_record(edgc__profiler* p, const edgc_config* cfg, const edgc__payload* pay,
                          int rank_cap, double sync_ms, double compute_ms, int* r_max);
/* A dense sync's time on this link when it does not stall: the last timed rank's time plus the
 * extra floats at the link's marginal rate (the median over the last three pairs of adjacent
 * timed ranks; a pair whose time did not rise counts as no evidence, +inf). INFINITY with fewer
 * than four timed ranks or a rank above pay->worth_cap. */
double edgc__link_dense_ms(const int* ranks, const double* ms, size_t n, const edgc__payload* pay);
/* Sync time at `rank` interpolated over the measured ranks and clamped to them; rank 0: T_base. */
double edgc__profiler_predict(const edgc__profiler* p, int rank);
void edgc__profiler_save(const edgc__profiler* p, edgc__writer* w);
edgc_status edgc__profiler_load(edgc__profiler* p, edgc__reader* r);
/* The budget rule over a (partial) table: *r_max is the largest measured rank whose step time
 * compute + ms is within slack of the best saving over dense (0 when the best saves less than
 * min_saving); *more (may be NULL) is 1 when the last rank is still inside, i.e. profiling should
 * go on. compute_ms NaN or <= 0 counts as 0. */
edgc_status edgc__rmax_budget(const int* ranks, const double* ms, size_t n, double base_ms,
                              double compute_ms, double slack, double min_saving, int* r_max,
                              int* more);

/* ---------------------------------------------------------------------------------------------
 * Engine internals exposed for tests and state (powersgd.c)
 */
/* Matrix k's current factors: Pt (r x rows, orthonormal rows after a step) and Qt (r x cols). */
edgc_status edgc__powersgd_factors(const edgc_powersgd* ps, size_t k, const float** pt,
                                   const float** qt, size_t* r);
/* Grows P and Q to hold `rank` without changing any state (realloc keeps Q's content). */
edgc_status edgc__powersgd_reserve(edgc_powersgd* ps, int rank);
/* nonfinite.c: 1 if any of x[0..n) is NaN or Inf, scanned in chunks on `threads` threads (an
 * exact answer whatever their number). */
int edgc__any_nonfinite(const float* x, size_t n, int threads);
/* edgc_powersgd_step over a gradient that may be in pieces. */
edgc_status edgc__powersgd_step_grad(edgc_powersgd* ps, const edgc__grad* grad,
                                     const edgc_comm* comm, edgc_step_bytes* bytes);
/* edgc_powersgd_step that agrees on a non-finite gradient inside P's allreduce, which carries
 * the 1-D tensors too (two collectives a step): bad_here says whether this worker's gradient has
 * one (nonzero: yes), or, negative, asks the engine to find out from what it computes anyway
 * (||M||^2 as it builds M = G + e with error feedback, P = G Q without; no separate read of the
 * gradient). *bad_any = 0 when no worker's has one, 2 when this worker's has, 1 when only
 * others' have; then the engine's state (error memory, Q, RNG) is unchanged. So is the gradient,
 * except that with error feedback every worker that built M holds G + e in its matrices by then
 * (a NaN or Inf stays where it was). */
edgc_status edgc__powersgd_step_checked(edgc_powersgd* ps, const edgc__grad* grad,
                                        const edgc_comm* comm, int bad_here, int* bad_any,
                                        edgc_step_bytes* bytes);
/* The error-feedback memory, matrices back to back in layout order (NULL without EF). */
edgc_status edgc__powersgd_error(const edgc_powersgd* ps, const float** e, size_t* n);
/* 0: a tile's products never go with its element-wise work (separate passes, as with OpenBLAS on
 * several threads); 1, the default: they do when OpenBLAS is on one thread. Same sums either way;
 * for bench_core's side-by-side. */
void edgc__powersgd_set_fusion(edgc_powersgd* ps, int fuse);
/* P = M Q unpacked in chunks of rows: -1 where OpenBLAS has the kernel for it and one thread (the
 * default), 0 never (the packed baseline), 1 always (tests: that path on any CPU). */
void edgc__powersgd_set_direct(edgc_powersgd* ps, int direct);
/* 1 when OpenBLAS's core for this CPU multiplies small matrices unpacked. */
int edgc__powersgd_direct_core(const edgc_powersgd* ps);
/* Threads the engine uses (edgc_config.threads resolved). */
int edgc__powersgd_threads(const edgc_powersgd* ps);
/* cpus.c: the CPUs in this process's affinity mask; a threads setting with 0 resolved to them. */
int edgc__cpus_available(void);
int edgc__threads(int threads);

/* ---------------------------------------------------------------------------------------------
 * State serialisation (state_io.c). A writer with buf == NULL only counts bytes; a reader sets
 * `bad` instead of reading past the end, so parsing code checks once at the end.
 */
struct edgc__writer {
    uint8_t* buf;
    size_t cap, len;
};

struct edgc__reader {
    const uint8_t* p;
    size_t len, at;
    int bad;
};

void edgc__put(edgc__writer* w, const void* p, size_t n);
void edgc__get(edgc__reader* r, void* p, size_t n);
/* FNV-1a, 64 bits: continue from h (start with EDGC__FNV_SEED). */
#define EDGC__FNV_SEED 0xcbf29ce484222325ULL
uint64_t edgc__fnv1a(uint64_t h, const void* p, size_t n);
/* Hash of every config field and every layout entry (field by field: no padding bytes). */
uint64_t edgc__config_layout_hash(const edgc_config* c, const edgc_layout* l);
/* ISR: the entropy is sampled every round(1 / alpha) steps, alpha in (0, 1]. Saturates at 2^62
 * (alpha below about 2e-19), where the conversion would overflow; such a window holds no sample
 * and edgc_config_check refuses it. */
uint64_t edgc__sample_every(double alpha);

/* WAM (pipeline stage > 0): stage 0's rank and predicted sync time for the coming step, and this
 * stage's backward time per micro-batch agreed across its replicas (NaN: keep the last). */
void edgc__controller_wam_lead(edgc_controller* c, int rank, double t0_ms);
void edgc__controller_wam_tmb(edgc_controller* c, double tmb_ms);
/* T0 + stage t_mb of the last aligned decision; NaN when none was aligned on timings. */
double edgc__controller_wam_budget(const edgc_controller* c);
/* The step the controller plans next (steps committed so far). */
uint64_t edgc__controller_step(const edgc_controller* c);
/* The profile's sync time at `rank` (rank 0: dense), clamped to the measured ranks; NaN unknown. */
double edgc__controller_predict(const edgc_controller* c, int rank);
/* The same scaled by measured / predicted sync time over the last window (1 before one ended). */
double edgc__controller_predict_measured(const edgc_controller* c, int rank);
/* Room for the planned step's entropy sample (the history grows past its first allocation), so
 * that the commit after a synchronisation cannot fail for memory. Called before the step's
 * agreement. */
edgc_status edgc__controller_reserve(edgc_controller* c);
edgc_status edgc__controller_save(const edgc_controller* c, edgc__writer* w);
edgc_status edgc__controller_load(edgc_controller* c, edgc__reader* r);
edgc_status edgc__powersgd_save(const edgc_powersgd* ps, edgc__writer* w);
edgc_status edgc__powersgd_load(edgc_powersgd* ps, edgc__reader* r);
/* ||M|| and ||M - G_hat|| of the last step over all matrices (NaN without error feedback). */
double edgc__powersgd_last_error(const edgc_powersgd* ps);

/* The reducer frees `owned` with owned_free when it is freed (reducer.c). */
void edgc__reducer_own(edgc_reducer* r, void* owned, void (*owned_free)(void*));

#endif /* EDGC_INTERNAL_H */
