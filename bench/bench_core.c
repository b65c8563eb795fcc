/*
 * bench_core.c - single-process costs of the EDGC building blocks, side by side in one run:
 *   1. entropy: full-buffer histogram entropy vs GDS-sampled (beta = 0.25), the amortised cost
 *      with iteration sampling (alpha = 0.1), the relative error of the sampled estimate, and the
 *      alternative way to sample (block sampling, which skips memory rather than elements);
 *   2. PowerSGD compress + decompress of a GPT-2-small-like set of matrices at ranks 4..32,
 *      against a plain memory pass over the same buffer (the bound tall-skinny products live
 *      under), plus the cost of re-orthonormalising the warm-started Q;
 *   3. the experiment of dev/skinny (hand-written thin products, not in the library) against
 *      OpenBLAS's sgemm, the engine's products, on the same data;
 *   4. the same engine on one thread and on every CPU (engine threads and OpenBLAS threads);
 *   5. the engine's tiles (products done with the element-wise work) against separate passes.
 * Prints Markdown on stdout (the figures) and progress on stderr. Not run by ctest.
 */
#define _GNU_SOURCE /* sched_getaffinity */
#include "bench_layout.h"
#include "bench_median.h"
#include "edgc.h"
#include "edgc_internal.h" /* edgc__powersgd_set_fusion: the separate-pass baseline */
#include "skinny.h"        /* dev/skinny: hand-written thin products, timed against OpenBLAS */

#include <cblas.h>
#include <sched.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

static void die(const char* what, edgc_status st)
{
    fprintf(stderr, "bench_core: %s: %s\n", what, edgc_status_str(st));
    exit(1);
}

static int cpus(void)
{
    cpu_set_t set;
    return sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0 ? CPU_COUNT(&set) : 1;
}

/* --- data ------------------------------------------------------------------------------------ */
static uint64_t rng_state = 0x5eed;

static double uniform(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return ((double)((z ^ (z >> 31)) >> 11) + 0.5) * 0x1.0p-53;
}

/* Gradient-like values: a product of two normals (peaked at 0, heavy tails), a scale per tensor. */
static void fill_gradient(float* g, size_t n, double scale)
{
    for (size_t i = 0; i < n; i++) {
        double a = sqrt(-2.0 * log(uniform())) * cos(6.283185307179586 * uniform());
        double b = sqrt(-2.0 * log(uniform())) * cos(6.283185307179586 * uniform());
        g[i] = (float)(scale * a * b);
    }
}

/* --- the alternative sampler: contiguous blocks ------------------------------------------------
 * Takes the first `keep` of every `block` elements: the same fraction as stride 1/beta, but it
 * skips whole cache lines, so it reads beta of the memory instead of all of it. With one block
 * of everything, these are the library's loops at beta = 1 before they were vectorised: the
 * baseline for its full-buffer figure. */
static double entropy_blocks(const float* x, size_t n, size_t block, size_t keep, int bins,
                             uint64_t* hist)
{
    float lo = INFINITY, hi = -INFINITY;
    size_t count = 0;
    for (size_t b = 0; b < n; b += block)
        for (size_t i = b; i < b + keep && i < n; i++) {
            if (!isfinite(x[i])) continue;
            lo = x[i] < lo ? x[i] : lo;
            hi = x[i] > hi ? x[i] : hi;
            count++;
        }
    if (count == 0 || !(hi > lo)) return 0.0;
    memset(hist, 0, (size_t)bins * sizeof *hist);
    double scale = bins / ((double)hi - lo);
    for (size_t b = 0; b < n; b += block)
        for (size_t i = b; i < b + keep && i < n; i++) {
            if (!isfinite(x[i])) continue;
            int k = (int)(((double)x[i] - lo) * scale);
            hist[k < bins ? k : bins - 1]++;
        }
    double h = 0.0;
    for (int k = 0; k < bins; k++)
        if (hist[k]) {
            double p = (double)hist[k] / (double)count;
            h -= p * log(p);
        }
    return h;
}

/* One read of every 4th element with eight independent sums (no add chain): the memory floor of
 * one GDS pass at beta = 0.25, which still brings in every cache line. */
static double strided_read(const float* x, size_t n)
{
    float s[8] = {0};
    size_t i = 0;
    for (; i + 28 < n; i += 32)
        for (int j = 0; j < 8; j++)
            s[j] += x[i + 4 * (size_t)j];
    for (; i < n; i += 4)
        s[0] += x[i];
    return (double)(s[0] + s[1] + s[2] + s[3] + s[4] + s[5] + s[6] + s[7]);
}

static void bench_entropy(const float* g, size_t n, int reps)
{
    fprintf(stderr, "entropy: %zu floats, %d reps\n", n, reps);
    edgc_gds *full, *gds, *gds_all;
    edgc_status st;
    if ((st = edgc_gds_create(1.0, 1000, &full)) != EDGC_OK) die("gds_create", st);
    if ((st = edgc_gds_create(0.25, 1000, &gds)) != EDGC_OK) die("gds_create", st);
    if ((st = edgc_gds_create(0.25, 1000, &gds_all)) != EDGC_OK) die("gds_create", st);
    if ((st = edgc_gds_set_threads(gds_all, 0)) != EDGC_OK) die("gds_set_threads", st);
    uint64_t* hist = calloc(1000, sizeof *hist);
    double* tf = malloc((size_t)reps * sizeof *tf);
    double* ts = malloc((size_t)reps * sizeof *ts);
    double* tb = malloc((size_t)reps * sizeof *tb);
    double* tt = malloc((size_t)reps * sizeof *tt);
    double* tr = malloc((size_t)reps * sizeof *tr);
    double* tp = malloc((size_t)reps * sizeof *tp);
    edgc_entropy ef = {0}, es = {0}, et = {0};
    double hb = 0.0, hp = 0.0;
    volatile double sink = 0.0;          /* keeps the strided read from being optimised away */
    for (int r = 0; r < reps + 1; r++) { /* rep 0 warms caches and pages up; not counted */
        double t0 = now_ms();
        edgc_gds_entropy(full, g, n, &ef);
        double t1 = now_ms();
        edgc_gds_entropy(gds, g, n, &es);
        double t2 = now_ms();
        hb = entropy_blocks(g, n, 1024, 256, 1000, hist);
        double t3 = now_ms();
        edgc_gds_entropy(gds_all, g, n, &et);
        double t4 = now_ms();
        sink += strided_read(g, n);
        double t5 = now_ms();
        hp = entropy_blocks(g, n, n, n, 1000, hist); /* one block: the plain loops */
        double t6 = now_ms();
        if (r > 0) {
            tp[r - 1] = t6 - t5;
            tf[r - 1] = t1 - t0;
            ts[r - 1] = t2 - t1;
            tb[r - 1] = t3 - t2;
            tt[r - 1] = t4 - t3;
            tr[r - 1] = t5 - t4;
        }
    }
    (void)sink; /* read by nobody: clang warns that it is only set */
    double mf = bench_median(tf, reps), ms = bench_median(ts, reps), mb = bench_median(tb, reps);
    double mt = bench_median(tt, reps), mr = bench_median(tr, reps), mp = bench_median(tp, reps);
    const int n_cpus = cpus();
    const double alpha = 0.1;
    printf("### Entropy estimation (GDS), %zu floats (%.0f MB)\n\n", n, n * 4.0 / 1e6);
    printf("| estimator | ms per call | per training step (alpha = 0.1) | cut vs full every "
           "step | H (nats) | rel. error vs full |\n");
    printf("|---|---|---|---|---|---|\n");
    printf("| full buffer, every step (beta = 1) | %.2f | %.2f | - | %.4f | 0 |\n", mf, mf, ef.h);
    printf("| the same, the plain loops (before vectorising; bench only) | %.2f | %.2f | - | %.4f "
           "| %.2e |\n",
           mp, mp, hp, fabs(hp - ef.h) / ef.h);
    printf("| GDS strided, beta = 0.25 | %.2f | %.3f | %.1f %% | %.4f | %.2e |\n", ms, ms * alpha,
           100.0 * (1.0 - ms * alpha / mf), es.h, fabs(es.h - ef.h) / ef.h);
    printf("| GDS strided, beta = 0.25, %d threads | %.2f | %.3f | %.1f %% | %.4f | %.2e |\n",
           n_cpus, mt, mt * alpha, 100.0 * (1.0 - mt * alpha / mf), et.h, fabs(et.h - ef.h) / ef.h);
    printf("| alternative: blocks of 256 per 1024 | %.2f | %.3f | %.1f %% | %.4f | %.2e |\n\n", mb,
           mb * alpha, 100.0 * (1.0 - mb * alpha / mf), hb, fabs(hb - ef.h) / ef.h);
    const double sampled = (double)((n + 3) / 4);
    printf("GDS costs %.2f ns per sampled element on one thread and %.2f ns on %d (the same "
           "entropy to the last bit: %s).\n\n",
           ms * 1e6 / sampled, mt * 1e6 / sampled, n_cpus, et.h == es.h ? "yes" : "NO");
    /* GDS reads the sample twice (its range, then the bins), and at beta = 0.25 every cache line
     * comes in both times; no second pass can start before the first has the range. */
    printf("The memory floor: one strided read of the same elements (every cache line comes in) "
           "takes %.2f ms, %.2f ns per sampled element on one thread; GDS's two passes (the "
           "sample's range, then its bins) cannot go below about %.2f ns.\n\n",
           mr, mr * 1e6 / sampled, 2.0 * mr * 1e6 / sampled);
    printf("Per call, strided sampling takes %.2fx the full-buffer pass's time (beta = 0.25 would "
           "ideally give 0.25x, but it reads every cache line, and strided it keeps the plain "
           "loop); block sampling, which reads a quarter of the memory instead, takes %.2fx (plain "
           "loops too). The full-buffer pass, vectorised, runs at %.2f ns per element; the plain "
           "loops at %.2f, so the vectorised pass takes %.2fx their time: contiguous, the passes "
           "are compute-bound.\n\n",
           ms / mf, mb / mf, mf * 1e6 / (double)n, mp * 1e6 / (double)n, mf / mp);
    edgc_gds_free(full);
    edgc_gds_free(gds);
    edgc_gds_free(gds_all);
    free(hist);
    free(tt);
    free(tf);
    free(ts);
    free(tb);
    free(tr);
    free(tp);
}

/* One read-modify-write pass (e += g): the cheapest thing a compressor must do to each element. */
static double time_stream_pass(float* e, const float* g, size_t n, int reps)
{
    double* t = malloc((size_t)reps * sizeof *t);
    for (int r = 0; r < reps + 1; r++) {
        double t0 = now_ms();
        for (size_t i = 0; i < n; i++)
            e[i] += g[i];
        if (r > 0) t[r - 1] = now_ms() - t0;
    }
    double m = bench_median(t, reps);
    free(t);
    return m;
}

/* One configuration of the engine as the tables time it. fuse and direct as in
 * edgc__powersgd_set_fusion and _set_direct; blas_threads is OpenBLAS's own count. */
typedef struct {
    int rank, orth_q, ef, threads, blas_threads, fuse, direct;
} engine_case;

/* The engine as a user gets it: threads and OpenBLAS on one thread, tiles on, the default P. */
static engine_case plain_case(int rank, int orth_q, int ef)
{
    return (engine_case){rank, orth_q, ef, 1, 1, 1, -1};
}

/* ms per engine step (median of reps, after one untimed step); *rel_err (when not NULL) receives
 * the last step's compression error (NAN without error feedback). */
static double time_engine(const bench_model* md, const float* g0, float* g, engine_case k, int reps,
                          edgc_step_bytes* bytes, double* rel_err)
{
    edgc_config cfg = edgc_config_default();
    cfg.mode = EDGC_MODE_POWERSGD;
    cfg.rank = k.rank;
    cfg.orthonormalize_q = k.orth_q;
    cfg.error_feedback = k.ef;
    cfg.threads = k.threads;
    edgc_layout layout = {md->t, md->n_t, md->total};
    edgc_powersgd* ps;
    edgc_inproc* grp;
    edgc_comm comm;
    edgc_status st;
    openblas_set_num_threads(k.blas_threads);
    if ((st = edgc_powersgd_create(&cfg, &layout, &ps)) != EDGC_OK) die("powersgd_create", st);
    edgc__powersgd_set_fusion(ps, k.fuse);
    edgc__powersgd_set_direct(ps, k.direct);
    if ((st = edgc_inproc_create(1, &grp)) != EDGC_OK) die("inproc_create", st);
    edgc_inproc_comm(grp, 0, &comm);
    double* t = malloc((size_t)reps * sizeof *t);
    for (int r = 0; r < reps + 1; r++) { /* step 0 draws Q and touches the error memory */
        memcpy(g, g0, md->total * sizeof *g);
        double t0 = now_ms();
        if ((st = edgc_powersgd_step(ps, g, &comm, bytes)) != EDGC_OK) die("powersgd_step", st);
        if (r > 0) t[r - 1] = now_ms() - t0;
    }
    double m = bench_median(t, reps);
    free(t);
    if (rel_err != NULL) *rel_err = edgc__powersgd_last_error(ps);
    edgc_powersgd_free(ps);
    edgc_inproc_free(grp);
    openblas_set_num_threads(1);
    return m;
}

/* Times cases[0..n) in turn, `rounds` times over, and keeps the best of each one's medians in
 * best[c] (and, when err is not NULL, its last compression error in err[c]). Two settings timed
 * once apart have differed by 25 % on this shared machine, far more than most of the effects
 * measured; taking turns spreads its drift over all of them. */
static void time_in_turn(const bench_model* md, const float* g0, float* g, const engine_case* cases,
                         int n, int rounds, int reps, double* best, double* err)
{
    edgc_step_bytes b;
    for (int c = 0; c < n; c++)
        best[c] = INFINITY;
    for (int round = 0; round < rounds; round++)
        for (int c = 0; c < n; c++) {
            double ms = time_engine(md, g0, g, cases[c], reps, &b, err ? &err[c] : NULL);
            best[c] = ms < best[c] ? ms : best[c];
        }
}

/* Where threads help: the engine's element-wise passes and OpenBLAS's products each on 1 or n
 * threads, the four combinations alternated per rank so drift on a shared machine hits all. */
static void bench_threads(const bench_model* md, const float* g0, int reps)
{
    float* g = malloc(md->total * sizeof *g);
    float* e = calloc(md->total, sizeof *e);
    const int n = cpus();
    double pass = time_stream_pass(e, g0, md->total, reps);
    printf("### The engine on 1 and %d threads (error feedback on)\n\n", n);
    printf("Engine threads: OpenMP threads (`threads`) for the tiles of the element-wise work, "
           "and with OpenBLAS on one thread for the tiles' and the matrices' products; BLAS "
           "threads: OpenBLAS's (`openblas_set_num_threads`), which then do the products of "
           "matrices taken in order. "
           "For a given OpenBLAS count the engine's count changes no bit (test_powersgd). ms per "
           "step, the better of two medians taken in alternation; in brackets, in units of the "
           "one-thread read-modify-write pass (%.1f ms).\n\n",
           pass);
    printf("| rank | engine 1, BLAS 1 | engine %d, BLAS 1 | engine 1, BLAS %d | engine %d, BLAS %d "
           "| best speed-up |\n",
           n, n, n, n);
    printf("|---|---|---|---|---|---|\n");
    const int ranks[] = {4, 8, 16, 32};
    const int combo[4][2] = {{1, 1}, {n, 1}, {1, n}, {n, n}}; /* engine, BLAS */
    for (int i = 0; i < 4; i++) {
        fprintf(stderr, "threads: rank %d\n", ranks[i]);
        engine_case cases[4];
        for (int c = 0; c < 4; c++) {
            cases[c] = plain_case(ranks[i], 1, 1);
            cases[c].threads = combo[c][0];
            cases[c].blas_threads = combo[c][1];
        }
        double best[4];
        time_in_turn(md, g0, g, cases, 4, 2, reps, best, NULL);
        double fastest = best[1];
        for (int c = 2; c < 4; c++)
            fastest = best[c] < fastest ? best[c] : fastest;
        printf("| %d |", ranks[i]);
        for (int c = 0; c < 4; c++)
            printf(" %.1f (%.1f) |", best[c], best[c] / pass);
        printf(" %.2fx |\n", best[0] / fastest);
    }
    printf("\n");
    free(g);
    free(e);
}

/* The reducer in powersgd mode with its non-finite check on and off (one worker, in-process
 * communicator, error feedback on or off), alternated step by step; median ms of each into *on
 * and *off. */
static void time_reducer_check(const bench_model* md, const float* g0, float* g, int rank, int ef,
                               int reps, double* on, double* off)
{
    edgc_layout layout = {md->t, md->n_t, md->total};
    edgc_inproc* grp;
    edgc_comm comm;
    edgc_status st;
    if ((st = edgc_inproc_create(1, &grp)) != EDGC_OK) die("inproc_create", st);
    edgc_inproc_comm(grp, 0, &comm);
    edgc_reducer* red[2];
    for (int i = 0; i < 2; i++) {
        edgc_config cfg = edgc_config_default();
        cfg.mode = EDGC_MODE_POWERSGD;
        cfg.rank = rank;
        cfg.threads = 1;
        cfg.check_finite = i == 0;
        cfg.error_feedback = ef;
        if ((st = edgc_reducer_create(&cfg, &layout, &comm, &red[i])) != EDGC_OK)
            die("reducer_create", st);
    }
    double* t = malloc(2 * (size_t)reps * sizeof *t);
    for (int r = 0; r < reps + 1; r++)
        for (int i = 0; i < 2; i++) {
            memcpy(g, g0, md->total * sizeof *g);
            double t0 = now_ms();
            if ((st = edgc_reducer_step(red[i], g, NULL)) != EDGC_OK) die("reducer_step", st);
            if (r > 0) t[i * reps + r - 1] = now_ms() - t0;
        }
    *on = bench_median(t, reps);
    *off = bench_median(t + reps, reps);
    free(t);
    for (int i = 0; i < 2; i++)
        edgc_reducer_free(red[i]);
    edgc_inproc_free(grp);
}

/* The engine's orthonormalisations of one step alone: Pt (r x rows) and Qt (r x cols) of every
 * matrix, from Gaussian rows (the median of reps). */
static double time_orthonormalize(const bench_model* md, int rank, int reps)
{
    size_t longest = 0; /* the longest row of any Pt or Qt */
    for (size_t k = 0; k < md->n_t; k++)
        if (md->t[k].cols > 1) {
            size_t len = md->t[k].rows > md->t[k].cols ? md->t[k].rows : md->t[k].cols;
            longest = len > longest ? len : longest;
        }
    float* a = malloc((size_t)rank * longest * sizeof *a);
    double* t = malloc((size_t)reps * sizeof *t);
    for (int r = 0; r < reps; r++) {
        double ms = 0.0;
        for (size_t k = 0; k < md->n_t; k++) {
            if (md->t[k].cols < 2) continue;
            for (int side = 0; side < 2; side++) {
                size_t len = side ? md->t[k].cols : md->t[k].rows;
                fill_gradient(a, (size_t)rank * len, 1.0);
                double t0 = now_ms();
                edgc__orthonormalize_rows(a, (size_t)rank, len, edgc_config_default().orth_eps);
                ms += now_ms() - t0;
            }
        }
        t[r] = ms;
    }
    double m = bench_median(t, reps);
    free(a);
    free(t);
    return m;
}

static void bench_powersgd(const bench_model* md, const float* g0, int reps)
{
    float* g = malloc(md->total * sizeof *g);
    float* e = calloc(md->total, sizeof *e);
    double pass = time_stream_pass(e, g0, md->total, reps);
    double gb = md->total * 4.0 / 1e9;
    printf("### PowerSGD compress + decompress, one worker, %zu floats in %zu tensors\n\n",
           md->total, md->n_t);
    printf("Reference: one read-modify-write pass (e += g) over the buffer takes %.1f ms "
           "(%.1f GB/s of gradient).\n\n",
           pass, gb / (pass * 1e-3));
    printf("| rank | ms per step | gradient GB/s | step / RMW pass | without error feedback: ms, "
           "/ RMW pass | bytes sent | dense bytes | ratio |\n");
    printf("|---|---|---|---|---|---|---|---|\n");
    const int ranks[] = {4, 8, 16, 32};
    for (int i = 0; i < 4; i++) {
        fprintf(stderr, "powersgd: rank %d\n", ranks[i]);
        edgc_step_bytes b;
        double ms = time_engine(md, g0, g, plain_case(ranks[i], 1, 1), reps, &b, NULL);
        double off = time_engine(md, g0, g, plain_case(ranks[i], 1, 0), reps, &b, NULL);
        printf("| %d | %.1f | %.2f | %.1f | %.1f, %.1f | %llu | %llu | %.0fx |\n", ranks[i], ms,
               gb / (ms * 1e-3), ms / pass, off, off / pass, (unsigned long long)b.sent,
               (unsigned long long)b.dense, (double)b.dense / (double)b.sent);
    }
    fprintf(stderr, "powersgd: rank 16 with and without Q re-orthonormalisation\n");
    const engine_case orth[2] = {plain_case(16, 1, 1), plain_case(16, 0, 1)};
    double with_without[2];
    time_in_turn(md, g0, g, orth, 2, 3, reps, with_without, NULL);
    const double with = with_without[0], without = with_without[1];
    printf("\nRe-orthonormalising the warm-started Q each step (the authors' reducer; our default) "
           "at rank 16: %.1f ms vs %.1f ms without (%+.1f %%; the better of three medians each, "
           "taken in alternation).\n\n",
           with, without, 100.0 * (with - without) / without);
    fprintf(stderr, "powersgd: orthonormalising P and Q alone\n");
    double orth8 = time_orthonormalize(md, 8, reps), orth32 = time_orthonormalize(md, 32, reps);
    printf("Orthonormalising P and Q alone (Gram-Schmidt on Pt and Qt of every matrix, Gaussian "
           "rows): %.2f ms a step at rank 8 and %.2f ms at rank 32. A faster QR (CholeskyQR2, "
           "Householder) could save no more than that.\n\n",
           orth8, orth32);
    fprintf(stderr, "powersgd: rank 8 through the reducer, non-finite check on and off\n");
    double on, off, on_no_ef, off_no_ef;
    time_reducer_check(md, g0, g, 8, 1, reps, &on, &off);
    time_reducer_check(md, g0, g, 8, 0, reps, &on_no_ef, &off_no_ef);
    printf("The reducer's non-finite check (check_finite, on by default) at rank 8: %.1f ms per "
           "step vs %.1f ms without (%+.1f %%); without error feedback %.1f vs %.1f ms (%+.1f "
           "%%). In powersgd mode the flag rides in P's allreduce and the engine takes it from "
           "what it computes anyway, without a read of its own: with error feedback from "
           "||M||^2 (M = G + e is built in the gradient, and the last pass then writes both "
           "buffers), without from P = G Q.\n\n",
           on, off, 100.0 * (on - off) / off, on_no_ef, off_no_ef,
           100.0 * (on_no_ef - off_no_ef) / off_no_ef);
    free(g);
    free(e);
}

/* Sums, over every matrix of the layout, the time of one product; m_all holds the gradient. */
typedef struct thin_bufs {
    float *pt, *qt, *out_q, *g;
} thin_bufs;

enum { THIN_P, THIN_Q, THIN_G };

static double time_thin(const bench_model* md, const float* m_all, int r, int which, int blas,
                        skinny_isa isa, thin_bufs* b)
{
    double t0 = now_ms();
    for (size_t k = 0; k < md->n_t; k++) {
        const edgc_tensor* t = &md->t[k];
        if (t->cols < 2) continue; /* a vector: not compressed */
        int rows = (int)t->rows, cols = (int)t->cols;
        const float* m = m_all + t->offset;
        if (which == THIN_P && blas)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, r, rows, cols, 1.0f, b->qt, cols,
                        m, cols, 0.0f, b->pt, rows);
        else if (which == THIN_P)
            skinny_pt(isa, m, t->rows, t->cols, b->qt, (size_t)r, b->pt);
        else if (which == THIN_Q && blas)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, r, cols, rows, 1.0f, b->pt, rows,
                        m, cols, 0.0f, b->out_q, cols);
        else if (which == THIN_Q)
            skinny_qt(isa, m, t->rows, t->cols, b->pt, (size_t)r, b->out_q);
        else if (blas)
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, rows, cols, r, 1.0f, b->pt, rows,
                        b->qt, cols, 0.0f, b->g + t->offset, cols);
        else
            skinny_expand(isa, b->pt, b->qt, t->rows, t->cols, (size_t)r, b->g + t->offset);
    }
    return now_ms() - t0;
}

/* The three products over the layout, OpenBLAS's sgemm and skinny.c alternated per repetition,
 * on one thread. */
static void bench_thin(const bench_model* md, const float* g0, int reps)
{
    size_t widest = 0;
    for (size_t k = 0; k < md->n_t; k++) {
        widest = md->t[k].rows > widest ? md->t[k].rows : widest;
        widest = md->t[k].cols > widest ? md->t[k].cols : widest;
    }
    const int ranks[] = {4, 8, 16, 32}; /* ascending: the last sizes the buffers */
    const size_t thin = widest * (size_t)ranks[3];
    thin_bufs b = {malloc(thin * sizeof(float)), malloc(thin * sizeof(float)),
                   malloc(thin * sizeof(float)), malloc(md->total * sizeof(float))};
    if (b.pt == NULL || b.qt == NULL || b.out_q == NULL || b.g == NULL) die("thin", EDGC_ERR_NOMEM);
    memset(b.g, 0, md->total * sizeof(float)); /* first touch outside the timing */
    for (size_t i = 0; i < thin; i++)
        b.qt[i] = b.pt[i] = (float)(uniform() - 0.5);
    const skinny_isa isa = skinny_isa_best();
    static const char* isa_name[] = {"plain C", "AVX2", "AVX-512"};
    printf("### An experiment: hand-written thin products (dev/skinny) against OpenBLAS\n\n");
    printf("The engine's products go through OpenBLAS (the project's rule: matrix math through "
           "CBLAS). dev/skinny/skinny.c writes them as loops of their own, whose bits do not "
           "depend on the CPU (test_skinny); they are not in the library. One thread, their %s "
           "build; ms over all matrices of the layout, the median of %d repetitions taken in "
           "alternation with OpenBLAS's sgemm (%s kernels) on the same data. P = M Q reads M "
           "once, Q = M^T P reads it once, G = P Q^T writes it once.\n\n",
           isa_name[isa], reps, openblas_get_corename());
    printf("| rank | P = M Q: OpenBLAS | skinny | Q = M^T P: OpenBLAS | skinny | G = P Q^T: "
           "OpenBLAS | skinny | all three: dev/skinny / OpenBLAS |\n");
    printf("|---|---|---|---|---|---|---|---|\n");
    double* t = malloc((size_t)reps * 6 * sizeof *t);
    for (int i = 0; i < 4; i++) {
        fprintf(stderr, "thin products: rank %d\n", ranks[i]);
        for (int rep = 0; rep < reps + 1; rep++)
            for (int c = 0; c < 6; c++) {
                double ms = time_thin(md, g0, ranks[i], c / 2, c % 2 == 0, isa, &b);
                if (rep > 0) t[c * reps + rep - 1] = ms;
            }
        double med[6], blas = 0.0, own = 0.0;
        for (int c = 0; c < 6; c++) {
            med[c] = bench_median(t + c * reps, reps);
            if (c % 2 == 0)
                blas += med[c];
            else
                own += med[c];
        }
        printf("| %d | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %.2f |\n", ranks[i], med[0],
               med[1], med[2], med[3], med[4], med[5], own / blas);
    }
    printf("\n");
    free(t);
    free(b.pt);
    free(b.qt);
    free(b.out_q);
    free(b.g);
}

/* Tiles against separate passes, OpenBLAS on one thread, error feedback on or off: the better of
 * three medians per figure, the two taken in alternation. With error feedback the tiles save two
 * reads of the gradient; without it, the pass in which OpenBLAS clears a whole matrix's G_hat
 * (beta = 0) before it multiplies into it. */
static void bench_tiles(const bench_model* md, const float* g0, int reps, int ef)
{
    float* g = malloc(md->total * sizeof *g);
    const int n = cpus();
    if (ef) {
        printf("### Tiles: the products done with the element-wise work (error feedback on)\n\n");
        printf("With OpenBLAS on one thread the engine finishes each 1 MB tile of a matrix's rows "
               "while it is in cache (M = G + e, then its rows of P; its rows of G_hat, then e = "
               "M - G_hat): two reads of the gradient fewer a step. Against the separate passes "
               "(the element-wise passes over all tiles, the products one call per matrix), which "
               "the engine takes when OpenBLAS has threads of its own. ms per step, the better of "
               "three medians taken in alternation.\n\n");
    } else {
        printf("### Tiles without error feedback: G_hat = P Q^T a tile at a time\n\n");
        printf("With OpenBLAS on one thread the engine writes G_hat over the gradient a 1 MB tile "
               "at a time. One call per matrix has OpenBLAS clear the whole output (beta = 0) in "
               "a pass of its own over memory before it multiplies into it; a tile is cleared in "
               "cache. Against one call per matrix, ms per step, the better of three medians "
               "taken in alternation.\n\n");
    }
    printf("| rank | separate, 1 thread | tiles, 1 thread | tiles / separate | separate, %d "
           "threads | tiles, %d threads | tiles / separate |\n",
           n, n);
    printf("|---|---|---|---|---|---|---|\n");
    const int ranks[] = {4, 8, 16, 32};
    for (int i = 0; i < 4; i++) {
        fprintf(stderr, "tiles (error feedback %s): rank %d\n", ef ? "on" : "off", ranks[i]);
        engine_case cases[4]; /* threads 1 then n, each separate then tiles */
        for (int c = 0; c < 4; c++) {
            cases[c] = plain_case(ranks[i], 1, ef);
            cases[c].threads = c / 2 ? n : 1;
            cases[c].fuse = c % 2;
        }
        double best[4];
        time_in_turn(md, g0, g, cases, 4, 3, reps, best, NULL);
        printf("| %d | %.1f | %.1f | %.2f | %.1f | %.1f | %.2f |\n", ranks[i], best[0], best[1],
               best[1] / best[0], best[2], best[3], best[3] / best[2]);
    }
    printf("\n");
    free(g);
}

/* P = M Q unpacked (OpenBLAS's small-matrix kernel, in chunks of rows) against the packed product,
 * OpenBLAS on one thread, error feedback off and on: the better of three medians per figure, the
 * two taken in alternation. */
static void bench_direct(const bench_model* md, const float* g0, int reps)
{
    float* g = malloc(md->total * sizeof *g);
    const int n = cpus();
    openblas_set_num_threads(1);
    edgc_config cfg = edgc_config_default();
    cfg.mode = EDGC_MODE_POWERSGD;
    edgc_layout layout = {md->t, md->n_t, md->total};
    edgc_powersgd* ps;
    edgc_status st;
    if ((st = edgc_powersgd_create(&cfg, &layout, &ps)) != EDGC_OK) die("powersgd_create", st);
    const int by_default = edgc__powersgd_direct_core(ps);
    edgc_powersgd_free(ps);
    printf("### P = M Q unpacked (OpenBLAS's small-matrix kernel)\n\n");
    printf("OpenBLAS core: %s, so the engine %s the unpacked P by default on this machine. With "
           "OpenBLAS on one thread it computes P = M Q a few rows at a time as row-major "
           "M_rows . Q, which OpenBLAS's AVX-512 cores multiply without packing, instead of one "
           "packed Qt . M^T per tile or matrix. ms per step, the better of three medians taken "
           "in alternation; the relative compression error of the last step (error feedback on) "
           "for both.\n\n",
           openblas_get_corename(), by_default ? "takes" : "does not take");
    printf("| rank | engine threads | EF off: packed | unpacked | unpacked / packed | EF on: "
           "packed | unpacked | unpacked / packed | error, packed | error, unpacked |\n");
    printf("|---|---|---|---|---|---|---|---|---|---|\n");
    const int ranks[] = {4, 8, 16, 32};
    for (int i = 0; i < 4; i++)
        for (int th = 1; th <= n; th = th == n ? n + 1 : n) {
            fprintf(stderr, "direct: rank %d, %d thread(s)\n", ranks[i], th);
            engine_case cases[4]; /* error feedback off then on, each packed then unpacked */
            for (int c = 0; c < 4; c++) {
                cases[c] = plain_case(ranks[i], 1, c / 2);
                cases[c].threads = th;
                cases[c].direct = c % 2;
            }
            double best[4], err[4];
            time_in_turn(md, g0, g, cases, 4, 3, reps, best, err);
            printf("| %d | %d | %.1f | %.1f | %.2f | %.1f | %.1f | %.2f | %.6f | %.6f |\n",
                   ranks[i], th, best[0], best[1], best[1] / best[0], best[2], best[3],
                   best[3] / best[2], err[2], err[3]);
        }
    printf("\n");
    free(g);
}

static void usage(FILE* f)
{
    fprintf(f,
            "usage: bench_core [--layers N] [--dim C] [--reps N] [--threads-only | --tiles-only |\n"
            "                   --direct-only]\n"
            "  Times GDS entropy estimation and the PowerSGD engine on a GPT-2-like layout.\n"
            "  --layers N  transformer layers (default 12)\n"
            "  --dim C     model width (default 768)\n"
            "  --reps N    timed repetitions per figure, median reported (default 5)\n"
            "  --threads-only  only the thread-count table\n"
            "  --tiles-only    only the tiles tables\n"
            "  --direct-only   only the unpacked-P table\n");
}

static long parse_long(const char* flag, const char* s, long lo, long hi)
{
    char* end;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v < lo || v > hi) {
        fprintf(stderr, "bench_core: %s %s: expected an integer in [%ld, %ld]\n", flag, s, lo, hi);
        exit(2);
    }
    return v;
}

int main(int argc, char** argv)
{
    int layers = 12, reps = 5, threads_only = 0, tiles_only = 0, direct_only = 0;
    long dim = 768;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--layers") && i + 1 < argc) {
            layers = (int)parse_long("--layers", argv[++i], 1, 96);
        } else if (!strcmp(argv[i], "--dim") && i + 1 < argc) {
            dim = parse_long("--dim", argv[++i], 8, 8192);
        } else if (!strcmp(argv[i], "--threads-only")) {
            threads_only = 1;
        } else if (!strcmp(argv[i], "--tiles-only")) {
            tiles_only = 1;
        } else if (!strcmp(argv[i], "--direct-only")) {
            direct_only = 1;
        } else if (!strcmp(argv[i], "--reps") && i + 1 < argc) {
            reps = (int)parse_long("--reps", argv[++i], 1, 1000);
        } else {
            fprintf(stderr, "bench_core: unknown or incomplete argument '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if (threads_only + tiles_only + direct_only > 1) {
        fprintf(stderr, "bench_core: --threads-only, --tiles-only and --direct-only exclude each "
                        "other\n");
        usage(stderr);
        return 2;
    }
    bench_model md = bench_gpt2_like(layers, (size_t)dim);
    float* g0 = malloc(md.total * sizeof *g0);
    if (md.t == NULL || g0 == NULL) {
        fprintf(stderr, "bench_core: out of memory for %zu floats\n", md.total);
        return 1;
    }
    fprintf(stderr, "bench_core: %d layers, dim %ld: %zu floats\n", layers, dim, md.total);
    for (size_t k = 0; k < md.n_t; k++)
        fill_gradient(g0 + md.t[k].offset, md.t[k].rows * md.t[k].cols, 1e-3 * (1 + k % 7));
    const int all = !threads_only && !tiles_only && !direct_only;
    if (all) {
        bench_entropy(g0, md.total, reps);
        bench_powersgd(&md, g0, reps);
        bench_thin(&md, g0, reps);
    }
    if (all || direct_only) bench_direct(&md, g0, reps);
    if (all || threads_only) bench_threads(&md, g0, reps);
    if (all || tiles_only) {
        bench_tiles(&md, g0, reps, 1);
        bench_tiles(&md, g0, reps, 0);
    }
    free(g0);
    free(md.t);
    return 0;
}
