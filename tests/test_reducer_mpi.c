/*
 * test_reducer_mpi.c - the reducer over real MPI, run by ctest under mpiexec with 1, 2 and 4
 * ranks. cmocka is not used here: a failed assertion that skips the rest of a test on one rank
 * would leave the others waiting in a collective. Checks record failures and carry on, so every
 * rank always makes the same sequence of collective calls; the totals are reduced at the end.
 */
#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT */
#include "edgc_internal.h"
#include "edgc_mpi.h"

#include <math.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mpi_check.h"

/* Two matrices, biases, a LayerNorm-like pair. */
static const edgc_tensor k_tensors[] = {
    {0, 40, 24}, {960, 24, 1}, {984, 24, 56}, {2328, 56, 1}, {2384, 16, 1},
};
enum { TOTAL = 2400, DENSE = 24 + 56 + 16, CAP = 24 };
static const edgc_layout k_layout = {k_tensors, 5, TOTAL};

/* Worker `rank`'s gradient at `step`: a smooth low-rank-ish part plus a per-worker wiggle. */
static void gradient(int rank, int step, float* g)
{
    for (int i = 0; i < TOTAL; i++) {
        int row = i / 24, col = i % 24;
        g[i] = 0.01f * (float)(sin(0.3 * row + 0.05 * step) * cos(0.2 * col - 0.1 * step) +
                               0.3 * sin(1.7 * i + 2.1 * rank + 0.37 * step));
    }
}

/* The library's FNV-1a over a buffer. */
static uint64_t fnv(const void* p, size_t n)
{
    return edgc__fnv1a(EDGC__FNV_SEED, p, n);
}

/* 1 on every rank iff `x` is the same on every rank. */
static int same_everywhere(uint64_t x)
{
    uint64_t lo = x, hi = x;
    MPI_Allreduce(MPI_IN_PLACE, &lo, 1, MPI_UINT64_T, MPI_MIN, MPI_COMM_WORLD);
    MPI_Allreduce(MPI_IN_PLACE, &hi, 1, MPI_UINT64_T, MPI_MAX, MPI_COMM_WORLD);
    return lo == hi;
}

static edgc_config config(edgc_mode mode)
{
    edgc_config c = edgc_config_default();
    c.mode = mode;
    c.rank = 4;
    c.total_steps = 60;
    c.warmup_fraction = 0.2;
    c.window = 10;
    c.alpha = 0.5;
    c.r_max = 12;
    return c;
}

static edgc_reducer* make(const edgc_config* c)
{
    edgc_reducer* r = NULL;
    CHECK_ST(edgc_reducer_create_mpi(MPI_COMM_WORLD, c, &k_layout, &r), EDGC_OK);
    return r;
}

/* --------------------------------------------------------------------------------------------- */
static void test_dense_is_exact_average(void)
{
    edgc_config c = config(EDGC_MODE_DENSE);
    edgc_reducer* r = make(&c);
    float g[TOTAL], other[TOTAL];
    double want[TOTAL] = {0};
    for (int w = 0; w < g_size; w++) {
        gradient(w, 3, other);
        for (int i = 0; i < TOTAL; i++)
            want[i] += other[i] / (double)g_size;
    }
    gradient(g_rank, 3, g);
    edgc_step_stats s;
    CHECK_ST(edgc_reducer_step(r, g, &s), EDGC_OK);
    double worst = 0;
    for (int i = 0; i < TOTAL; i++)
        worst = fmax(worst, fabs(g[i] - want[i]));
    CHECK(worst < 1e-8);
    CHECK(same_everywhere(fnv(g, sizeof g)));
    CHECK(s.bytes_sent == TOTAL * 4 && s.bytes_dense == TOTAL * 4 && s.rank == 0);
    edgc_reducer_free(r);
}

/* Steps a and b on the same gradient of this worker at `step`, into ga and gb. */
static void step_pair(edgc_reducer* a, edgc_reducer* b, int step, float* ga, float* gb,
                      edgc_step_stats* sa, edgc_step_stats* sb)
{
    gradient(g_rank, step, ga);
    memcpy(gb, ga, TOTAL * sizeof *ga);
    CHECK_ST(edgc_reducer_step(a, ga, sa), EDGC_OK);
    CHECK_ST(edgc_reducer_step(b, gb, sb), EDGC_OK);
}

static void test_full_rank_powersgd_equals_dense(void)
{
    edgc_config cd = config(EDGC_MODE_DENSE), cp = config(EDGC_MODE_POWERSGD);
    cp.rank = CAP;
    edgc_reducer* rd = make(&cd);
    edgc_reducer* rp = make(&cp);
    for (int step = 0; step < 3; step++) {
        float gd[TOTAL], gp[TOTAL];
        step_pair(rd, rp, step, gd, gp, NULL, NULL);
        double d = 0, n = 0;
        for (int i = 0; i < TOTAL; i++) {
            d += (gp[i] - gd[i]) * (double)(gp[i] - gd[i]);
            n += gd[i] * (double)gd[i];
        }
        CHECK(sqrt(d / n) < 1e-5);
        CHECK(same_everywhere(fnv(gp, sizeof gp)));
    }
    edgc_reducer_free(rd);
    edgc_reducer_free(rp);
}

static void test_powersgd_bytes_and_identity(void)
{
    edgc_config c = config(EDGC_MODE_POWERSGD);
    c.rank = 3;
    edgc_reducer* r = make(&c);
    edgc_step_stats s = {0};
    for (int step = 0; step < 5; step++) {
        float g[TOTAL];
        gradient(g_rank, step, g);
        CHECK_ST(edgc_reducer_step(r, g, &s), EDGC_OK);
        CHECK(same_everywhere(fnv(g, sizeof g)));
        CHECK(s.bytes_sent == 4u * (3 * (40 + 24) + 3 * (24 + 56) + DENSE));
        CHECK(s.bytes_dense == 4u * TOTAL);
        CHECK(s.rank == 3);
        CHECK(isfinite(s.compression_error) && s.compression_error > 0 && s.compression_error < 1);
    }
    CHECK(s.total_sent == 5 * s.bytes_sent && s.total_dense == 5 * s.bytes_dense);
    edgc_reducer_free(r);
}

/* The gradient in pieces (cut between tensors, an empty one among them) over MPI: in dense,
 * powersgd and edgc modes, the same bits as one buffer on every rank, step after step. */
static void test_pieces_same_bits(void)
{
    const size_t cut[] = {0, 960, 960, 2328, TOTAL}; /* piece i: floats [cut i, cut i+1) */
    enum { PIECES = 4 };
    const edgc_mode modes[] = {EDGC_MODE_DENSE, EDGC_MODE_POWERSGD, EDGC_MODE_EDGC};
    for (int m = 0; m < 3; m++) {
        edgc_config c = config(modes[m]);
        c.alpha = 1.0; /* the entropy every step */
        edgc_reducer* a = make(&c);
        edgc_reducer* b = make(&c);
        for (int step = 0; step < 14; step++) {
            float g[TOTAL], one[TOTAL], pieces[TOTAL + 1];
            gradient(g_rank, step, g);
            memcpy(one, g, sizeof g);
            float* at[PIECES];
            size_t len[PIECES];
            for (int p = 0; p < PIECES; p++) { /* laid out with a gap: not one buffer */
                at[p] = pieces + cut[p] + (p >= 2);
                len[p] = cut[p + 1] - cut[p];
                memcpy(at[p], g + cut[p], len[p] * sizeof *g);
            }
            edgc_step_stats sa, sb;
            CHECK_ST(edgc_reducer_step(a, one, &sa), EDGC_OK);
            CHECK_ST(edgc_reducer_step_pieces(b, at, len, PIECES, &sb), EDGC_OK);
            for (int p = 0; p < PIECES; p++)
                CHECK(memcmp(at[p], one + cut[p], len[p] * sizeof *g) == 0);
            CHECK(sa.rank == sb.rank && sa.bytes_sent == sb.bytes_sent);
            CHECK(sa.entropy_sampled == sb.entropy_sampled && sa.entropy == sb.entropy);
            CHECK(same_everywhere(fnv(one, sizeof one)));
        }
        edgc_reducer_free(a);
        edgc_reducer_free(b);
    }
}

static void test_edgc_lifecycle(void)
{
    /* every rank rule, with the warm-up compressed at r_max (the default) and dense */
    const edgc_rank_rule rules[] = {EDGC_RULE_ERROR, EDGC_RULE_TREND, EDGC_RULE_CQM,
                                    EDGC_RULE_DECAY};
    const int n_rules = (int)(sizeof rules / sizeof rules[0]);
    for (int k = 0; k < 2 * n_rules; k++) {
        edgc_config c = config(EDGC_MODE_EDGC);
        c.rule = rules[k % n_rules];
        c.warmup_sync = k < n_rules ? EDGC_WARMUP_RMAX : EDGC_WARMUP_DENSE;
        edgc_reducer* r = make(&c);
        int prev_rank = -1;
        for (int step = 0; step < 60; step++) {
            float g[TOTAL];
            gradient(g_rank, step, g);
            edgc_step_stats s;
            CHECK_ST(edgc_reducer_step(r, g, &s), EDGC_OK);
            CHECK(s.step == (uint64_t)step);
            if (step < 12) {
                CHECK(s.phase == EDGC_PHASE_WARMUP);
                CHECK(s.rank == (c.warmup_sync == EDGC_WARMUP_RMAX ? 12 : 0));
            } else {
                CHECK(s.phase == EDGC_PHASE_COMPRESS);
                CHECK(s.rank >= 3 && s.rank <= 12);
                if (step == 12) CHECK(s.rank == 12);
                if (step > 12 && s.rank != prev_rank) CHECK(step % 10 == 0);
                /* decay: 12 - 9 (20 - 12) / 48 = 10.5 at the first boundary, even: 10 */
                if (c.rule == EDGC_RULE_DECAY && step >= 20) CHECK(s.rank <= 10);
            }
            CHECK(s.entropy_sampled == (step % 2 == 0));
            if (s.entropy_sampled) CHECK(isfinite(s.entropy) && s.entropy > 0);
            CHECK(same_everywhere((uint64_t)s.rank));
            CHECK(same_everywhere(fnv(g, sizeof g)));
            prev_rank = s.rank;
        }
        edgc_reducer_free(r);
    }
}

static void test_edgc_profiling_agrees(void)
{
    /* both r_max rules; with re-profiling off the phases only move forward, and with it on
     * (timings here are noisy) every rank still holds the same rank and bounds at every step */
    for (int k = 0; k < 4; k++) {
        edgc_config c = config(EDGC_MODE_EDGC);
        c.r_max = 0;
        c.profile_start = 1;
        c.profile_base_steps = 2;
        c.total_steps = 80;
        c.rmax_rule = k % 2 ? EDGC_RMAX_PAPER : EDGC_RMAX_BUDGET;
        c.reprofile_factor = k < 2 ? 0.0 : 2.0;
        edgc_reducer* r = make(&c);
        edgc_phase last = EDGC_PHASE_PROFILE;
        edgc_step_stats s = {0};
        int profiled = 0;
        for (int step = 0; step < 80; step++) {
            float g[TOTAL];
            gradient(g_rank, step, g);
            CHECK_ST(edgc_reducer_step(r, g, &s), EDGC_OK);
            if (c.reprofile_factor == 0.0) CHECK(s.phase >= last); /* never back */
            last = s.phase;
            profiled += s.phase == EDGC_PHASE_PROFILE && s.rank > 0;
            CHECK(same_everywhere((uint64_t)s.rank));
            CHECK(same_everywhere((uint64_t)s.r_max));
            CHECK(same_everywhere((uint64_t)s.r_min));
        }
        CHECK(profiled >= 3);
        if (c.reprofile_factor == 0.0) CHECK(s.phase == EDGC_PHASE_COMPRESS);
        /* r_max depends on this machine's timings; 0 means no rank paid and the run stays
         * dense. Either way every rank must hold the same value. */
        CHECK(s.r_max >= 0 && s.r_max <= CAP);
        if (s.phase == EDGC_PHASE_COMPRESS && s.r_max == 0) CHECK(s.rank == 0);
        if (s.phase == EDGC_PHASE_COMPRESS && s.r_max > 0)
            CHECK(s.rank >= s.r_min && s.rank <= s.r_max);
        CHECK(isfinite(s.dense_sync_ms) && s.dense_sync_ms >= 0);
        CHECK(same_everywhere((uint64_t)(s.dense_sync_ms * 1e3)));
        edgc_reducer_free(r);
    }
}

/* save at step 20 -> load into a fresh reducer -> continue: bit-identical to no interruption. */
static void check_resume(edgc_mode mode)
{
    edgc_config c = config(mode);
    edgc_reducer* a = make(&c);
    uint64_t want[40];
    for (int step = 0; step < 40; step++) {
        float g[TOTAL];
        gradient(g_rank, step, g);
        CHECK_ST(edgc_reducer_step(a, g, NULL), EDGC_OK);
        want[step] = fnv(g, sizeof g);
    }
    edgc_reducer_free(a);

    edgc_reducer* b = make(&c);
    for (int step = 0; step < 20; step++) {
        float g[TOTAL];
        gradient(g_rank, step, g);
        CHECK_ST(edgc_reducer_step(b, g, NULL), EDGC_OK);
    }
    size_t need = 0, wrote = 0;
    CHECK_ST(edgc_reducer_state_size(b, &need), EDGC_OK);
    void* blob = malloc(need);
    CHECK_ST(edgc_reducer_save(b, blob, need - 1, &wrote), EDGC_ERR_BUFFER_SMALL);
    CHECK(wrote == 0);
    CHECK_ST(edgc_reducer_save(b, blob, need, &wrote), EDGC_OK);
    CHECK(wrote == need);
    edgc_reducer_free(b);

    edgc_reducer* resumed = make(&c);
    CHECK_ST(edgc_reducer_load(resumed, blob, wrote), EDGC_OK);
    for (int step = 20; step < 40; step++) {
        float g[TOTAL];
        gradient(g_rank, step, g);
        edgc_step_stats s;
        CHECK_ST(edgc_reducer_step(resumed, g, &s), EDGC_OK);
        CHECK(s.step == (uint64_t)step);
        CHECK(fnv(g, sizeof g) == want[step]);
    }
    edgc_reducer_free(resumed);
    free(blob);
}

static void test_resume_bit_identical(void)
{
    check_resume(EDGC_MODE_POWERSGD);
    check_resume(EDGC_MODE_EDGC);
}

static void test_mismatch_on_every_rank(void)
{
    if (g_size < 2) return;
    edgc_reducer* r = NULL;
    edgc_config c = config(EDGC_MODE_EDGC);
    if (g_rank == 1) c.window = 20;
    CHECK_ST(edgc_reducer_create_mpi(MPI_COMM_WORLD, &c, &k_layout, &r), EDGC_ERR_MISMATCH);
    CHECK(r == NULL);

    c = config(EDGC_MODE_EDGC);
    if (g_rank == 0) c.beta = 2.0; /* invalid here only: no hang, an error everywhere */
    CHECK_ST(edgc_reducer_create_mpi(MPI_COMM_WORLD, &c, &k_layout, &r),
             g_rank == 0 ? EDGC_ERR_CONFIG : EDGC_ERR_MISMATCH);

    c = config(EDGC_MODE_EDGC);
    edgc_tensor t[5];
    memcpy(t, k_tensors, sizeof t);
    edgc_layout other = {t, 5, TOTAL};
    if (g_rank == g_size - 1) { /* same total, different shapes */
        t[0].rows = 24;
        t[0].cols = 40;
    }
    CHECK_ST(edgc_reducer_create_mpi(MPI_COMM_WORLD, &c, &other, &r), EDGC_ERR_MISMATCH);
}

/* A NaN on one worker: every worker gets EDGC_ERR_NONFINITE, nothing in the reducer changes, and
 * the run then continues exactly as one that never saw the bad step. In every mode: powersgd
 * agrees on the flag inside P's allreduce (found in ||M||^2 with error feedback, in P without),
 * the others in the reducer's agreement. */
static void nonfinite_skips_step_everywhere(edgc_mode mode, int where, int error_feedback)
{
    edgc_config c = config(mode);
    c.error_feedback = error_feedback;
    c.warmup_fraction = 0.05; /* edgc: compress from step 3 on, the EF memory is in play */
    edgc_reducer* clean = make(&c);
    edgc_reducer* dirty = make(&c);
    for (int step = 0; step < 20; step++) {
        float g[TOTAL], h[TOTAL];
        gradient(g_rank, step, g);
        memcpy(h, g, sizeof g);
        if (step == 8) {
            float bad[TOTAL], copy[TOTAL];
            memcpy(bad, g, sizeof g);
            if (g_rank == g_size - 1) bad[where] = NAN;
            memcpy(copy, bad, sizeof bad);
            CHECK_ST(edgc_reducer_step(dirty, bad, NULL), EDGC_ERR_NONFINITE);
            /* untouched, but in powersgd mode with error feedback the flag arrives with P, after
             * every worker has built M = G + e in its gradient (edgc_reducer_step); the NaN stays
             * where it was */
            if (mode != EDGC_MODE_POWERSGD || !error_feedback)
                CHECK(memcmp(bad, copy, sizeof bad) == 0);
            if (g_rank == g_size - 1) CHECK(isnan(bad[where]));
            const char* why = edgc_reducer_last_error(dirty);
            CHECK(strstr(why, "non-finite") != NULL);
            CHECK(strstr(why, g_rank == g_size - 1 ? "this worker" : "another worker") != NULL);
        }
        CHECK_ST(edgc_reducer_step(clean, g, NULL), EDGC_OK);
        CHECK_ST(edgc_reducer_step(dirty, h, NULL), EDGC_OK);
        CHECK(memcmp(g, h, sizeof g) == 0);
    }
    edgc_reducer_free(clean);
    edgc_reducer_free(dirty);
}

/* powersgd mode checks for non-finite values inside P's allreduce, building M in the gradient
 * instead of the error memory: the same bits as the unchecked step, step after step, with error
 * feedback and without. */
static void test_checked_step_same_bits(void)
{
    for (int ef = 1; ef >= 0; ef--) {
        edgc_config checked = config(EDGC_MODE_POWERSGD), plain = checked;
        checked.error_feedback = plain.error_feedback = ef;
        plain.check_finite = 0;
        edgc_reducer* a = make(&checked);
        edgc_reducer* b = make(&plain);
        for (int step = 0; step < 8; step++) {
            float ga[TOTAL], gb[TOTAL];
            edgc_step_stats sa = {0}, sb = {0};
            step_pair(a, b, step, ga, gb, &sa, &sb);
            CHECK(memcmp(ga, gb, sizeof ga) == 0);
            CHECK(memcmp(&sa.compression_error, &sb.compression_error, sizeof(double)) == 0);
            CHECK(sa.bytes_sent == sb.bytes_sent);
        }
        edgc_reducer_free(a);
        edgc_reducer_free(b);
    }
}

/* powersgd mode takes the non-finite flag from ||M||^2, which squares of huge finite values can
 * overflow: such a gradient is finite, and the step must go ahead. */
static void test_huge_finite_gradient_steps(void)
{
    edgc_config c = config(EDGC_MODE_POWERSGD);
    edgc_reducer* r = make(&c);
    float g[TOTAL];
    gradient(g_rank, 0, g);
    for (int i = 0; i < TOTAL; i++)
        g[i] = g[i] > 0.0f ? 3e18f : -3e18f; /* 1e37 squared, past FLT_MAX summed in a lane */
    CHECK_ST(edgc_reducer_step(r, g, NULL), EDGC_OK);
    int finite = 1;
    for (int i = 0; i < TOTAL; i++)
        finite &= isfinite(g[i]) != 0;
    CHECK(finite);
    CHECK(same_everywhere(fnv(g, sizeof g)));
    edgc_reducer_free(r);
}

/* threads = 0 under MPI: ranks that may run on the same CPUs share them instead of each taking
 * them all (4 unbound ranks on 2 cores: 1 thread each); a rank alone on its CPUs keeps them. */
static void test_threads_shared_on_node(void)
{
    int t = 0;
    CHECK_ST(edgc_mpi_threads(MPI_COMM_WORLD, &t), EDGC_OK);
    cpu_set_t mine;
    CHECK(sched_getaffinity(0, sizeof mine, &mine) == 0);
    const int cpus = CPU_COUNT(&mine);
    CHECK(t >= 1 && t <= cpus);
    /* the ranks with this very mask: together they ask for no more threads than it has CPUs */
    MPI_Comm node;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node);
    int n = 0;
    MPI_Comm_size(node, &n);
    cpu_set_t* all = malloc((size_t)n * sizeof *all);
    int* ts = malloc((size_t)n * sizeof *ts);
    MPI_Allgather(&mine, (int)sizeof mine, MPI_BYTE, all, (int)sizeof mine, MPI_BYTE, node);
    MPI_Allgather(&t, 1, MPI_INT, ts, 1, MPI_INT, node);
    int same = 0, asked = 0;
    for (int i = 0; i < n; i++)
        if (CPU_EQUAL(&mine, &all[i])) {
            same++;
            asked += ts[i];
        }
    CHECK(asked <= (cpus > same ? cpus : same));
    if (same == 1 && n == 1) CHECK(t == cpus);
    free(all);
    free(ts);
    MPI_Comm_free(&node);
    CHECK_ST(edgc_mpi_threads(MPI_COMM_WORLD, NULL), EDGC_ERR_INVALID_ARG);
}

static void test_nonfinite_skips_step_everywhere(void)
{
    /* in a matrix, and in a bias (powersgd finds the first in ||M||^2 or P, the second as it
     * packs) */
    const int where[] = {1234, 970};
    for (int i = 0; i < 2; i++) {
        nonfinite_skips_step_everywhere(EDGC_MODE_EDGC, where[i], 1);
        nonfinite_skips_step_everywhere(EDGC_MODE_POWERSGD, where[i], 1);
        nonfinite_skips_step_everywhere(EDGC_MODE_POWERSGD, where[i], 0);
        nonfinite_skips_step_everywhere(EDGC_MODE_DENSE, where[i], 1);
    }
}

static void test_bad_blobs_rejected_everywhere(void)
{
    edgc_config c = config(EDGC_MODE_EDGC);
    edgc_reducer* r = make(&c);
    edgc_reducer* twin = make(&c); /* never loads anything: the reference */
    for (int step = 0; step < 15; step++) {
        float g[TOTAL];
        gradient(g_rank, step, g);
        CHECK_ST(edgc_reducer_step(r, g, NULL), EDGC_OK);
        gradient(g_rank, step, g);
        CHECK_ST(edgc_reducer_step(twin, g, NULL), EDGC_OK);
    }
    size_t need = 0, wrote = 0;
    edgc_reducer_state_size(r, &need);
    unsigned char* blob = malloc(need);
    CHECK_ST(edgc_reducer_save(r, blob, need, &wrote), EDGC_OK);

    /* a flipped byte on rank 0 only */
    if (g_rank == 0) blob[wrote / 2] ^= 0x40;
    CHECK_ST(edgc_reducer_load(r, blob, wrote), EDGC_ERR_CORRUPT);
    if (g_rank == 0) blob[wrote / 2] ^= 0x40;
    /* truncated on the last rank only */
    CHECK_ST(edgc_reducer_load(r, blob, g_rank == g_size - 1 ? wrote - 9 : wrote),
             EDGC_ERR_CORRUPT);
    CHECK_ST(edgc_reducer_load(r, NULL, 0), EDGC_ERR_CORRUPT);
    /* a blob from another config */
    edgc_config c2 = config(EDGC_MODE_EDGC);
    c2.window = 20;
    edgc_reducer* other = make(&c2);
    size_t need2 = 0, wrote2 = 0;
    edgc_reducer_state_size(other, &need2);
    unsigned char* blob2 = malloc(need2);
    CHECK_ST(edgc_reducer_save(other, blob2, need2, &wrote2), EDGC_OK);
    CHECK_ST(edgc_reducer_load(r, blob2, wrote2), EDGC_ERR_MISMATCH);
    CHECK(strstr(edgc_reducer_last_error(r), "another config") != NULL);
    edgc_reducer_free(other);

    /* nothing was half-loaded: r still runs exactly like its twin */
    for (int step = 15; step < 25; step++) {
        float g[TOTAL], h[TOTAL];
        gradient(g_rank, step, g);
        memcpy(h, g, sizeof g);
        CHECK_ST(edgc_reducer_step(r, g, NULL), EDGC_OK);
        CHECK_ST(edgc_reducer_step(twin, h, NULL), EDGC_OK);
        CHECK(memcmp(g, h, sizeof g) == 0);
    }
    free(blob);
    free(blob2);
    edgc_reducer_free(r);
    edgc_reducer_free(twin);
}

static void test_jsonl_log(void)
{
    char path[64];
    snprintf(path, sizeof path, "/tmp/edgc_test_log_%d_%d.jsonl", (int)getpid(), g_rank);
    remove(path);
    edgc_config c = config(EDGC_MODE_EDGC);
    edgc_reducer* r = make(&c);
    CHECK_ST(edgc_reducer_log_jsonl(r, path), EDGC_OK);
    for (int step = 0; step < 14; step++) {
        float g[TOTAL];
        gradient(g_rank, step, g);
        CHECK_ST(edgc_reducer_step(r, g, NULL), EDGC_OK);
    }
    CHECK_ST(edgc_reducer_log_jsonl(r, NULL), EDGC_OK);
    FILE* f = fopen(path, "r");
    CHECK(f != NULL);
    int lines = 0, compress = 0;
    char line[512];
    while (f != NULL && fgets(line, sizeof line, f) != NULL) {
        lines++;
        CHECK(line[0] == '{' && strstr(line, "}\n") != NULL);
        compress += strstr(line, "\"phase\":\"compress\",\"rank\":12") != NULL;
    }
    if (f != NULL) fclose(f);
    CHECK(lines == 14);
    CHECK(compress == 2); /* steps 12 and 13 */
    CHECK_ST(edgc_reducer_log_jsonl(r, "/nonexistent-dir/x.jsonl"), EDGC_ERR_INVALID_ARG);
    CHECK(strstr(edgc_reducer_last_error(r), "nonexistent-dir") != NULL);
    remove(path);
    edgc_reducer_free(r);
}

/* The MPI communicator's collectives as a caller sees them (edgc_comm_mpi_get): a broadcast
 * from the last rank, the int max, a non-blocking sum finished by wait and one finished by
 * test, and the misuse the single outstanding request refuses. */
static void test_comm_collectives(void)
{
    edgc_comm_mpi* m = NULL;
    edgc_comm c;
    CHECK_ST(edgc_comm_mpi_create(MPI_COMM_WORLD, &m), EDGC_OK);
    CHECK_ST(edgc_comm_mpi_get(m, &c), EDGC_OK);
    CHECK(c.rank == g_rank && c.size == g_size);
    unsigned char text[1001]; /* no multiple of any word size */
    const int root = g_size - 1;
    for (int i = 0; i < (int)sizeof text; i++)
        text[i] = (unsigned char)(g_rank == root ? i * 7 + 3 : 0);
    CHECK_ST(c.broadcast(c.ctx, text, sizeof text, root), EDGC_OK);
    int same = 1;
    for (int i = 0; i < (int)sizeof text; i++)
        same &= text[i] == (unsigned char)(i * 7 + 3);
    CHECK(same);
    int32_t mx[2] = {g_rank, -g_rank};
    CHECK_ST(c.allreduce_max_i32(c.ctx, mx, 2), EDGC_OK);
    CHECK(mx[0] == g_size - 1 && mx[1] == 0);
    const float want = (float)(g_size * (g_size + 1) / 2); /* 1 + 2 + ... + size */
    for (int finish = 0; finish < 2; finish++) {           /* by wait, then by test */
        float v[3] = {(float)(g_rank + 1), 1.0f, -2.0f};
        void* req = NULL;
        CHECK_ST(c.iallreduce_sum_f32(c.ctx, v, 3, &req), EDGC_OK);
        CHECK(req != NULL);
        void* second = &second;
        CHECK_ST(c.iallreduce_sum_f32(c.ctx, v, 3, &second), EDGC_ERR_INVALID_ARG); /* one */
        CHECK(second == NULL);
        CHECK_ST(c.wait(c.ctx, &second), EDGC_ERR_INVALID_ARG); /* not its request */
        if (finish == 0) {
            CHECK_ST(c.wait(c.ctx, req), EDGC_OK);
        } else {
            int done = 0;
            edgc_status st = EDGC_OK;
            while (st == EDGC_OK && !done)
                st = c.test(c.ctx, req, &done);
            CHECK_ST(st, EDGC_OK);
        }
        CHECK(v[0] == want && v[1] == (float)g_size && v[2] == -2.0f * (float)g_size);
        CHECK_ST(c.wait(c.ctx, req), EDGC_ERR_INVALID_ARG); /* finished: nothing to wait for */
    }
    edgc_comm_mpi_free(m);
}

int main(int argc, char** argv)
{
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
    struct {
        const char* name;
        void (*fn)(void);
    } tests[] = {
        {"dense_is_exact_average", test_dense_is_exact_average},
        {"full_rank_powersgd_equals_dense", test_full_rank_powersgd_equals_dense},
        {"powersgd_bytes_and_identity", test_powersgd_bytes_and_identity},
        {"pieces_same_bits", test_pieces_same_bits},
        {"edgc_lifecycle", test_edgc_lifecycle},
        {"edgc_profiling_agrees", test_edgc_profiling_agrees},
        {"resume_bit_identical", test_resume_bit_identical},
        {"mismatch_on_every_rank", test_mismatch_on_every_rank},
        {"checked_step_same_bits", test_checked_step_same_bits},
        {"nonfinite_skips_step_everywhere", test_nonfinite_skips_step_everywhere},
        {"huge_finite_gradient_steps", test_huge_finite_gradient_steps},
        {"threads_shared_on_node", test_threads_shared_on_node},
        {"bad_blobs_rejected_everywhere", test_bad_blobs_rejected_everywhere},
        {"jsonl_log", test_jsonl_log},
        {"comm_collectives", test_comm_collectives},
    };
    int n_tests = (int)(sizeof tests / sizeof tests[0]), failed_tests = 0;
    for (int i = 0; i < n_tests; i++) {
        int before = g_failed;
        tests[i].fn();
        int bad = g_failed > before;
        MPI_Allreduce(MPI_IN_PLACE, &bad, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
        failed_tests += bad;
        if (g_rank == 0) printf("%s %s\n", bad ? "FAIL" : "ok  ", tests[i].name);
    }
    if (g_rank == 0)
        printf("test_reducer_mpi on %d ranks: %d passed, %d failed\n", g_size,
               n_tests - failed_tests, failed_tests);
    MPI_Finalize();
    return failed_tests ? 1 : 0;
}
