/* test_reducer.c - the reducer over the in-process communicator: argument checks, the stats JSON,
 * dense mode, agreement on a mismatched config, the split reducer's protocol, and WAM on a
 * simulated slow link, without MPI. The MPI behaviour is in test_reducer_mpi.c. */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "edgc_internal.h"
#include "testutil.h"

static const edgc_tensor k_tensors[] = {{0, 8, 6}, {48, 6, 1}};
static const edgc_layout k_layout = {k_tensors, 2, 54};

static void test_stats_json(void** state)
{
    (void)state;
    edgc_step_stats s = {.step = 7,
                         .mode = EDGC_MODE_EDGC,
                         .phase = EDGC_PHASE_COMPRESS,
                         .rank = 8,
                         .r_min = 2,
                         .r_max = 8,
                         .bytes_sent = 100,
                         .bytes_dense = 400,
                         .sync_ms = 1.5,
                         .entropy_sampled = 1,
                         .entropy = 3.25,
                         .entropy_scaled = -4.0,
                         .compression_error = NAN,
                         .dense_sync_ms = 250.5,
                         .wam_budget_ms = NAN};
    char buf[512];
    assert_int_equal(edgc_stats_json(&s, buf, sizeof buf), EDGC_OK);
    assert_string_equal(buf, "{\"step\":7,\"mode\":\"edgc\",\"phase\":\"compress\",\"rank\":8,"
                             "\"r_min\":2,\"r_max\":8,\"bytes_sent\":100,\"bytes_dense\":400,"
                             "\"sync_ms\":1.5,\"entropy\":3.25,\"entropy_scaled\":-4,"
                             "\"compression_error\":null,\"dense_sync_ms\":250.5,"
                             "\"wam_budget_ms\":null}\n");
    s.entropy_sampled = 0; /* an unsampled step carries no entropy */
    assert_int_equal(edgc_stats_json(&s, buf, sizeof buf), EDGC_OK);
    assert_non_null(strstr(buf, "\"entropy\":null,\"entropy_scaled\":null"));
    char tiny[16];
    assert_int_equal(edgc_stats_json(&s, tiny, sizeof tiny), EDGC_ERR_BUFFER_SMALL);
    assert_string_equal(tiny, "");
    assert_int_equal(edgc_stats_json(NULL, buf, sizeof buf), EDGC_ERR_INVALID_ARG);
}

enum { W = 3 };

typedef struct job {
    edgc_config cfg;
    float grad[54];
    edgc_status create, step;
} job;

static void worker(void* arg, const edgc_comm* comm)
{
    job* j = arg;
    edgc_reducer* r = NULL;
    j->create = edgc_reducer_create(&j->cfg, &k_layout, comm, &r);
    if (j->create == EDGC_OK) j->step = edgc_reducer_step(r, j->grad, NULL);
    edgc_reducer_free(r);
}

static void test_dense_over_inproc(void** state)
{
    (void)state;
    job jobs[W];
    for (int w = 0; w < W; w++) {
        jobs[w].cfg = edgc_config_default();
        jobs[w].cfg.mode = EDGC_MODE_DENSE;
        for (int i = 0; i < 54; i++)
            jobs[w].grad[i] = (float)(w * 100 + i);
    }
    assert_int_equal(run_workers(W, worker, jobs, sizeof jobs[0]), 0);
    for (int w = 0; w < W; w++) {
        assert_int_equal(jobs[w].create, EDGC_OK);
        assert_int_equal(jobs[w].step, EDGC_OK);
        for (int i = 0; i < 54; i++)
            assert_true(jobs[w].grad[i] == (float)(100 + i));
    }
}

static void test_one_invalid_config_fails_everywhere(void** state)
{
    (void)state;
    job jobs[W];
    for (int w = 0; w < W; w++) {
        jobs[w].cfg = edgc_config_default();
        jobs[w].cfg.mode = EDGC_MODE_POWERSGD;
    }
    jobs[2].cfg.bins = 1;
    assert_int_equal(run_workers(W, worker, jobs, sizeof jobs[0]), 0);
    assert_int_equal(jobs[0].create, EDGC_ERR_MISMATCH);
    assert_int_equal(jobs[1].create, EDGC_ERR_MISMATCH);
    assert_int_equal(jobs[2].create, EDGC_ERR_CONFIG);
}

/* Fuzz the state loader: random byte changes, truncations and extensions, half of them with the
 * checksum recomputed so the parser behind it is reached. Every load must return OK, CORRUPT or
 * MISMATCH without crashing (ASan watches in make test), and a failed load must leave the reducer
 * exactly as it was. */
static void test_state_load_fuzz(void** state)
{
    (void)state;
    edgc_inproc* g;
    edgc_comm c = solo_comm(&g);
    edgc_config cfg = edgc_config_default();
    cfg.total_steps = 40;
    cfg.window = 4;
    cfg.alpha = 0.5;
    cfg.warmup_fraction = 0.1;
    cfg.rule = EDGC_RULE_CQM;
    cfg.profile_start = 1;
    edgc_reducer *r, *ref;
    assert_int_equal(edgc_reducer_create(&cfg, &k_layout, &c, &r), EDGC_OK);
    assert_int_equal(edgc_reducer_create(&cfg, &k_layout, &c, &ref), EDGC_OK);
    test_rng rng = {99};
    float grad[54];
    for (int step = 0; step < 12; step++) { /* into profiling, with history */
        test_gaussian(&rng, grad, 54, 1.0);
        assert_int_equal(edgc_reducer_step(r, grad, NULL), EDGC_OK);
    }
    size_t n = 0, wrote = 0;
    assert_int_equal(edgc_reducer_state_size(r, &n), EDGC_OK);
    unsigned char* blob = malloc(n);
    unsigned char* bad = malloc(n + 64);
    assert_int_equal(edgc_reducer_save(r, blob, n, &wrote), EDGC_OK);
    size_t before_n = 0;
    unsigned char* before = malloc(n);
    for (int trial = 0; trial < 3000; trial++) {
        size_t len = n;
        memcpy(bad, blob, n);
        int kind = (int)(test_next(&rng) % 4);
        if (kind == 0) { /* flip a few bytes */
            for (int k = 0; k < 1 + (int)(test_next(&rng) % 4); k++)
                bad[test_next(&rng) % n] ^= (unsigned char)(1 + test_next(&rng) % 255);
        } else if (kind == 1) { /* truncate */
            len = (size_t)(test_next(&rng) % n);
        } else if (kind == 2) { /* extend with junk */
            len = n + 1 + (size_t)(test_next(&rng) % 63);
            for (size_t i = n; i < len; i++)
                bad[i] = (unsigned char)test_next(&rng);
        } else { /* overwrite one 8-byte word in the payload with an extreme value */
            size_t at = 32 + (size_t)(test_next(&rng) % (n - 48));
            uint64_t v = test_next(&rng) % 2 ? ~0ULL : (test_next(&rng) % 2 ? 1ULL << 62 : 0);
            memcpy(bad + at, &v, 8);
        }
        if (trial % 2 == 0 && len >= 48) { /* make the checksum right: reach the parser */
            uint64_t sum = edgc__fnv1a(EDGC__FNV_SEED, bad, len - 8);
            memcpy(bad + len - 8, &sum, 8);
        }
        assert_int_equal(edgc_reducer_state_size(r, &before_n), EDGC_OK);
        assert_true(before_n <= n + 1024);
        size_t bw = 0;
        assert_int_equal(edgc_reducer_save(r, before, n, &bw), EDGC_OK);
        edgc_status st = edgc_reducer_load(r, bad, len);
        assert_true(st == EDGC_OK || st == EDGC_ERR_CORRUPT || st == EDGC_ERR_MISMATCH);
        if (st != EDGC_OK) { /* all or nothing */
            size_t aw = 0;
            unsigned char* after = malloc(n + 1024);
            assert_int_equal(edgc_reducer_save(r, after, n + 1024, &aw), EDGC_OK);
            assert_int_equal(aw, bw);
            assert_memory_equal(after, before, bw);
            free(after);
        }
        assert_int_equal(edgc_reducer_load(r, blob, wrote), EDGC_OK); /* back to the original */
    }
    /* after all that, the reducer still steps like one that only ever loaded the good blob */
    assert_int_equal(edgc_reducer_load(ref, blob, wrote), EDGC_OK);
    for (int step = 0; step < 10; step++) {
        float a[54], b[54];
        test_gaussian(&rng, a, 54, 1.0);
        memcpy(b, a, sizeof a);
        assert_int_equal(edgc_reducer_step(r, a, NULL), EDGC_OK);
        assert_int_equal(edgc_reducer_step(ref, b, NULL), EDGC_OK);
        assert_memory_equal(a, b, sizeof a);
    }
    free(blob);
    free(bad);
    free(before);
    edgc_reducer_free(r);
    edgc_reducer_free(ref);
    edgc_inproc_free(g);
}

static void test_bad_arguments(void** state)
{
    (void)state;
    edgc_inproc* g;
    edgc_comm c = solo_comm(&g);
    edgc_config cfg = edgc_config_default();
    cfg.total_steps = 10;
    edgc_reducer* r = (edgc_reducer*)1;
    assert_int_equal(edgc_reducer_create(&cfg, &k_layout, NULL, &r), EDGC_ERR_INVALID_ARG);
    assert_null(r);
    edgc_comm broken = c;
    broken.allreduce_max_i32 = NULL;
    assert_int_equal(edgc_reducer_create(&cfg, &k_layout, &broken, &r), EDGC_ERR_INVALID_ARG);
    assert_int_equal(edgc_reducer_create(&cfg, &k_layout, &c, &r), EDGC_OK);
    assert_int_equal(edgc_reducer_step(r, NULL, NULL), EDGC_ERR_INVALID_ARG);
    size_t n;
    assert_int_equal(edgc_reducer_state_size(NULL, &n), EDGC_ERR_INVALID_ARG);
    assert_int_equal(edgc_reducer_save(r, NULL, 10, &n), EDGC_ERR_INVALID_ARG);
    assert_int_equal(edgc_reducer_load(NULL, "x", 1), EDGC_ERR_INVALID_ARG);
    assert_string_equal(edgc_reducer_last_error(NULL), "reducer is NULL");
    edgc_reducer_free(r);
    edgc_reducer_free(NULL);
    edgc_inproc_free(g);
}

/* ---------------------------------------------------------------------------------------------
 * edgc_reducer_step_pieces: the gradient in separately allocated pieces (an empty NULL one among
 * them) gives the same bits as edgc_reducer_step over one buffer, step after step, in every mode
 * and engine path: dense, PowerSGD with and without error feedback and with the non-finite check
 * riding in P's allreduce or not, EDGC with GDS on the sample's threaded and contiguous paths, and
 * a non-finite gradient on one worker; a dense step's pieces in one allreduce and, past 16 MB, one
 * each. Two reducers per worker, stepped in turn. */
static const edgc_tensor k_big_tensors[] = {{0, 300, 500},    {150000, 300, 1}, {150300, 200, 600},
                                            {270300, 600, 1}, {270900, 64, 64}, {274996, 7, 1}};
static const edgc_layout k_big = {k_big_tensors, 6, 275003};
enum { PIECES = 6 };
static const size_t k_cut[PIECES + 1] = {0, 150000, 150300, 150300, 274996, 275003, 275003};
/* past the size up to which a dense step copies its pieces into one allreduce (16 MB) */
static const edgc_tensor k_huge_tensors[] = {
    {0, 1000, 2049}, {2049000, 1048, 2049}, {4196352, 100, 1}};
static const edgc_layout k_huge = {k_huge_tensors, 3, 4196452};
static const size_t k_huge_cut[PIECES + 1] = {0,       2049000, 4196352, 4196352,
                                              4196452, 4196452, 4196452};

typedef struct pieces_job {
    edgc_config cfg;
    const edgc_layout* layout;
    const size_t* cut;   /* piece p: floats [cut p, cut p+1) */
    int steps, nan_step; /* nan_step: worker 1 puts a NaN into its gradient then (-1: never) */
    int mismatches, nonfinite_a, nonfinite_b, other_errors;
} pieces_job;

static void pieces_worker(void* arg, const edgc_comm* comm)
{
    pieces_job* j = arg;
    const size_t n = j->layout->total;
    const size_t* cut = j->cut;
    float* flat = malloc(n * sizeof *flat);
    float* piece[PIECES];
    size_t len[PIECES];
    for (int p = 0; p < PIECES; p++) {
        len[p] = cut[p + 1] - cut[p];
        piece[p] = len[p] ? malloc(len[p] * sizeof(float)) : NULL;
    }
    edgc_reducer *a = NULL, *b = NULL;
    if (edgc_reducer_create(&j->cfg, j->layout, comm, &a) != EDGC_OK ||
        edgc_reducer_create(&j->cfg, j->layout, comm, &b) != EDGC_OK)
        j->other_errors++;
    test_rng rng = {1000u + (uint64_t)comm->rank};
    for (int t = 0; t < j->steps && j->other_errors == 0; t++) {
        test_gaussian(&rng, flat, n, 1.0 + 0.1 * t);
        if (t == j->nan_step && comm->rank == 1) flat[200000] = NAN;
        for (int p = 0; p < PIECES; p++)
            if (len[p]) memcpy(piece[p], flat + cut[p], len[p] * sizeof(float));
        edgc_step_stats sa, sb;
        edgc_status st_a = edgc_reducer_step(a, flat, &sa);
        edgc_status st_b = edgc_reducer_step_pieces(b, piece, len, PIECES, &sb);
        j->nonfinite_a += st_a == EDGC_ERR_NONFINITE;
        j->nonfinite_b += st_b == EDGC_ERR_NONFINITE;
        j->other_errors += (st_a != EDGC_OK && st_a != EDGC_ERR_NONFINITE) || st_b != st_a;
        for (int p = 0; p < PIECES; p++)
            if (len[p] && memcmp(piece[p], flat + cut[p], len[p] * sizeof(float)) != 0)
                j->mismatches++;
        if (st_a == EDGC_OK &&
            (sa.rank != sb.rank || sa.bytes_sent != sb.bytes_sent || sa.phase != sb.phase ||
             sa.entropy_sampled != sb.entropy_sampled ||
             memcmp(&sa.entropy, &sb.entropy, sizeof sa.entropy) != 0 ||
             memcmp(&sa.compression_error, &sb.compression_error, sizeof(double)) != 0))
            j->mismatches++;
    }
    edgc_reducer_free(a);
    edgc_reducer_free(b);
    for (int p = 0; p < PIECES; p++)
        free(piece[p]);
    free(flat);
}

static void test_pieces_match_one_buffer(void** state)
{
    (void)state;
    enum { CASES = 8 }; /* the last: dense, too large to copy into one allreduce */
    pieces_job jobs[CASES][2];
    for (int c = 0; c < CASES; c++) {
        edgc_config cfg = edgc_config_default();
        cfg.mode = c == 0 || c == 7 ? EDGC_MODE_DENSE
                   : c <= 3         ? EDGC_MODE_POWERSGD
                                    : EDGC_MODE_EDGC;
        cfg.rank = 4;
        cfg.alpha = 1.0; /* the entropy every step */
        cfg.error_feedback = c != 2;
        cfg.check_finite = c != 3;
        if (cfg.mode == EDGC_MODE_EDGC) {
            cfg.r_max = 8; /* no profile: the same ranks in both reducers, whatever the timings */
            cfg.total_steps = 12;
            cfg.window = 2;
            cfg.threads = 2;
            cfg.beta = c == 4 ? 1.0 : 0.25; /* contiguous sample, or every fourth float */
        }
        for (int w = 0; w < 2; w++)
            jobs[c][w] = (pieces_job){.cfg = cfg,
                                      .layout = c == 7 ? &k_huge : &k_big,
                                      .cut = c == 7 ? k_huge_cut : k_cut,
                                      .steps = c == 7 ? 3 : 8,
                                      .nan_step = c == 1 || c == 5 || c == 7 ? 1 : -1};
    }
    for (int c = 0; c < CASES; c++) {
        assert_int_equal(run_workers(2, pieces_worker, jobs[c], sizeof jobs[c][0]), 0);
        for (int w = 0; w < 2; w++) {
            const pieces_job* j = &jobs[c][w];
            if (j->mismatches || j->other_errors)
                fail_msg("case %d, worker %d: %d mismatches, %d errors", c, w, j->mismatches,
                         j->other_errors);
            assert_int_equal(j->nonfinite_a, j->nan_step >= 0);
            assert_int_equal(j->nonfinite_b, j->nan_step >= 0);
        }
    }
}

/* A caller's communicator needs only the two blocking allreduces: the library never broadcasts,
 * and without the non-blocking trio the engine's dense part goes through the blocking sum. Over
 * such a communicator a reducer runs warm-up, compression and a rank change in every mode and
 * gives the bits of the same reducer over the full one. */
typedef struct minimal_job {
    edgc_mode mode;
    int mismatches, errors;
} minimal_job;

static void minimal_comm_worker(void* arg, const edgc_comm* comm)
{
    minimal_job* j = arg;
    const edgc_comm minimal = {.ctx = comm->ctx,
                               .rank = comm->rank,
                               .size = comm->size,
                               .allreduce_sum_f32 = comm->allreduce_sum_f32,
                               .allreduce_max_i32 = comm->allreduce_max_i32};
    edgc_config cfg = edgc_config_default();
    cfg.mode = j->mode;
    cfg.rank = 4;
    cfg.r_max = 8; /* no profile: the same ranks in both reducers, whatever the timings */
    cfg.total_steps = 12;
    cfg.window = 2;
    cfg.alpha = 1.0;
    edgc_reducer *full = NULL, *bare = NULL;
    if (edgc_reducer_create(&cfg, &k_big, comm, &full) != EDGC_OK ||
        edgc_reducer_create(&cfg, &k_big, &minimal, &bare) != EDGC_OK)
        j->errors++;
    float* a = malloc(k_big.total * sizeof *a);
    float* b = malloc(k_big.total * sizeof *b);
    test_rng rng = {77u + (uint64_t)comm->rank};
    int ranks_seen = 0, last_rank = -1;
    for (int t = 0; t < 12 && j->errors == 0; t++) {
        test_gaussian(&rng, a, k_big.total, 1.0);
        memcpy(b, a, k_big.total * sizeof *a);
        edgc_step_stats sa, sb;
        j->errors += edgc_reducer_step(full, a, &sa) != EDGC_OK;
        j->errors += edgc_reducer_step(bare, b, &sb) != EDGC_OK;
        j->mismatches += memcmp(a, b, k_big.total * sizeof *a) != 0 || sa.rank != sb.rank;
        ranks_seen += sa.rank != last_rank;
        last_rank = sa.rank;
    }
    if (j->mode == EDGC_MODE_EDGC && ranks_seen < 2) j->errors++; /* the rank must have moved */
    edgc_reducer_free(full);
    edgc_reducer_free(bare);
    free(a);
    free(b);
}

static void test_a_communicator_with_only_the_blocking_allreduces(void** state)
{
    (void)state;
    const edgc_mode modes[] = {EDGC_MODE_DENSE, EDGC_MODE_POWERSGD, EDGC_MODE_EDGC};
    for (size_t m = 0; m < sizeof modes / sizeof modes[0]; m++) {
        minimal_job jobs[2] = {{.mode = modes[m]}, {.mode = modes[m]}};
        assert_int_equal(run_workers(2, minimal_comm_worker, jobs, sizeof jobs[0]), 0);
        for (int w = 0; w < 2; w++)
            if (jobs[w].mismatches || jobs[w].errors)
                fail_msg("mode %d, worker %d: %d mismatches, %d errors", (int)modes[m], w,
                         jobs[w].mismatches, jobs[w].errors);
    }
}

/* Pieces that do not fit the layout are refused before any communication, with the reason. */
static void test_pieces_that_do_not_fit(void** state)
{
    (void)state;
    edgc_inproc* g;
    edgc_comm c = solo_comm(&g);
    edgc_config cfg = edgc_config_default();
    cfg.mode = EDGC_MODE_POWERSGD;
    edgc_reducer* r;
    assert_int_equal(edgc_reducer_create(&cfg, &k_layout, &c, &r), EDGC_OK);
    float x[54] = {0}, y[54] = {0};
    float* two[2] = {x, y};
    size_t fit[2] = {48, 6}, across[2] = {40, 14}, short_of[2] = {48, 5}, gap[2] = {48, 6};
    float* with_null[2] = {x, NULL};
    assert_int_equal(edgc_reducer_step_pieces(NULL, two, fit, 2, NULL), EDGC_ERR_INVALID_ARG);
    assert_int_equal(edgc_reducer_step_pieces(r, NULL, fit, 2, NULL), EDGC_ERR_INVALID_ARG);
    assert_int_equal(edgc_reducer_step_pieces(r, two, NULL, 2, NULL), EDGC_ERR_INVALID_ARG);
    assert_int_equal(edgc_reducer_step_pieces(r, two, fit, 0, NULL), EDGC_ERR_INVALID_ARG);
    assert_int_equal(edgc_reducer_step_pieces(r, two, across, 2, NULL), EDGC_ERR_INVALID_ARG);
    assert_non_null(strstr(edgc_reducer_last_error(r), "tensor 0"));
    assert_int_equal(edgc_reducer_step_pieces(r, two, short_of, 2, NULL), EDGC_ERR_INVALID_ARG);
    assert_non_null(strstr(edgc_reducer_last_error(r), "53 floats, the layout 54"));
    assert_int_equal(edgc_reducer_step_pieces(r, with_null, gap, 2, NULL), EDGC_ERR_INVALID_ARG);
    assert_non_null(strstr(edgc_reducer_last_error(r), "piece 1 is NULL"));
    edgc_step_stats s;
    assert_int_equal(edgc_reducer_step_pieces(r, two, fit, 2, &s), EDGC_OK); /* still usable */
    assert_int_equal(s.step, 0);
    edgc_reducer_free(r);
    edgc_inproc_free(g);
}

/* ---------------------------------------------------------------------------------------------
 * A split reducer (an engine outside the library): the begin/end protocol, its agreement, the
 * entropy of the sample it is given, and its shared RNG across save/load. */
typedef struct split_job {
    float grad[54];
    edgc_status create, step_call, end_unopened, nonfinite, end_after_skip, begin, begin_again,
        end_no_sample, end, normal_begin, normal_load, load;
    edgc_plan plan;
    edgc_step_stats stats;
    edgc_entropy want; /* the entropy a reducer with its own engine takes of the same gradient */
    float draws[10], after_save[5], after_load[5];
} split_job;

static void split_worker(void* arg, const edgc_comm* comm)
{
    split_job* j = arg;
    edgc_config cfg = edgc_config_default();
    cfg.mode = EDGC_MODE_POWERSGD;
    cfg.rank = 2;
    cfg.alpha = 1.0; /* entropy every step */
    edgc_reducer *r = NULL, *normal = NULL;
    if ((j->create = edgc_reducer_create_split(&cfg, &k_layout, comm, &r)) != EDGC_OK) return;
    j->step_call = edgc_reducer_step(r, j->grad, NULL);
    edgc_sync_report rep = {.sync_ms = 2.5, .bytes_sent = 123, .compression_error = 0.25};
    j->end_unopened = edgc_reducer_end(r, &rep, NULL);
    j->nonfinite = edgc_reducer_begin(r, comm->rank == 1, &j->plan);
    j->end_after_skip = edgc_reducer_end(r, &rep, NULL);
    j->begin = edgc_reducer_begin(r, 0, &j->plan);
    j->begin_again = edgc_reducer_begin(r, 0, &j->plan);
    j->end_no_sample = edgc_reducer_end(r, &rep, NULL);
    float sample[14];
    size_t n = 0;
    for (size_t i = 0; i < 54; i += 4) /* beta 0.25: every 4th element */
        sample[n++] = j->grad[i];
    rep.entropy_sample = sample;
    rep.entropy_count = n;
    j->end = edgc_reducer_end(r, &rep, &j->stats);
    edgc_gds* gds = NULL;
    edgc_gds_create(cfg.beta, cfg.bins, &gds);
    edgc_gds_entropy(gds, j->grad, 54, &j->want);
    edgc_gds_free(gds);

    edgc_reducer_draw_gaussian(r, j->draws, 10);
    size_t size = 0, wrote = 0;
    edgc_reducer_state_size(r, &size);
    void* blob = malloc(size);
    edgc_reducer_save(r, blob, size, &wrote);
    edgc_reducer_draw_gaussian(r, j->after_save, 5);
    j->load = edgc_reducer_load(r, blob, wrote);
    edgc_reducer_draw_gaussian(r, j->after_load, 5);
    /* a reducer with its own engine takes no split blob, and no begin */
    if (edgc_reducer_create(&cfg, &k_layout, comm, &normal) == EDGC_OK) {
        j->normal_begin = edgc_reducer_begin(normal, 0, &j->plan);
        j->normal_load = edgc_reducer_load(normal, blob, wrote);
    }
    free(blob);
    edgc_reducer_free(normal);
    edgc_reducer_free(r);
}

static void test_split_reducer(void** state)
{
    (void)state;
    split_job jobs[W];
    memset(jobs, 0, sizeof jobs);
    test_rng rng = {11};
    for (int w = 0; w < W; w++)
        test_gaussian(&rng, jobs[w].grad, 54, 1.0);
    assert_int_equal(run_workers(W, split_worker, jobs, sizeof jobs[0]), 0);
    for (int w = 0; w < W; w++) {
        const split_job* j = &jobs[w];
        assert_int_equal(j->create, EDGC_OK);
        assert_int_equal(j->step_call, EDGC_ERR_STATE);
        assert_int_equal(j->end_unopened, EDGC_ERR_STATE);
        assert_int_equal(j->nonfinite, EDGC_ERR_NONFINITE);  /* worker 1's NaN, on every worker */
        assert_int_equal(j->end_after_skip, EDGC_ERR_STATE); /* a skipped step is not open */
        assert_int_equal(j->begin, EDGC_OK);
        assert_int_equal(j->begin_again, EDGC_ERR_STATE);
        assert_int_equal(j->end_no_sample, EDGC_ERR_INVALID_ARG); /* and the step stays open */
        assert_int_equal(j->end, EDGC_OK);
        assert_int_equal(j->plan.rank, 2);
        assert_int_equal(j->plan.sample_entropy, 1);
        assert_int_equal((int)j->stats.step, 0); /* the skipped step did not count */
        assert_int_equal(j->stats.rank, 2);
        assert_true(j->stats.sync_ms == 2.5); /* the caller's own measurement */
        assert_int_equal((int)j->stats.bytes_sent, 123);
        assert_int_equal((int)j->stats.bytes_dense, 54 * 4);
        assert_true(j->stats.compression_error == 0.25);
        assert_int_equal(j->stats.entropy_sampled, 1);
        assert_true(j->stats.entropy == j->want.h);
        assert_true(j->stats.entropy_scaled == j->want.h_scaled);
        assert_memory_equal(j->draws, jobs[0].draws, sizeof j->draws); /* shared */
        assert_int_equal(j->load, EDGC_OK);
        assert_memory_equal(j->after_load, j->after_save, sizeof j->after_save);
        assert_int_equal(j->normal_begin, EDGC_ERR_STATE);
        assert_int_equal(j->normal_load, EDGC_ERR_MISMATCH);
    }
}

static void mixed_worker(void* arg, const edgc_comm* comm)
{
    job* j = arg;
    edgc_reducer* r = NULL;
    j->create = comm->rank == 0 ? edgc_reducer_create_split(&j->cfg, &k_layout, comm, &r)
                                : edgc_reducer_create(&j->cfg, &k_layout, comm, &r);
    edgc_reducer_free(r);
}

static void test_split_and_normal_reducers_do_not_mix(void** state)
{
    (void)state;
    job jobs[W];
    for (int w = 0; w < W; w++)
        jobs[w].cfg = edgc_config_default(), jobs[w].cfg.mode = EDGC_MODE_DENSE;
    assert_int_equal(run_workers(W, mixed_worker, jobs, sizeof jobs[0]), 0);
    for (int w = 0; w < W; w++)
        assert_int_equal(jobs[w].create, EDGC_ERR_MISMATCH);
}

/* ---------------------------------------------------------------------------------------------
 * WAM on a stage 1 of two data-parallel workers, over a link that costs time per float: the
 * reducer profiles it, then at each window boundary aligns its rank on stage 0's predicted time
 * plus the backward time per micro-batch, agreed (max) between the workers. */
enum { WAM_STEPS = 60, WAM_N = 64 * 64 + 64 };
static const edgc_tensor k_wide_tensors[] = {{0, 64, 64}, {64 * 64, 64, 1}};
static const edgc_layout k_wide = {k_wide_tensors, 2, WAM_N};

typedef struct slow_link {
    edgc_comm inner;
    double us_per_float;
} slow_link;

static void nap_us(double us)
{
    struct timespec t = {(time_t)(us / 1e6), (long)(fmod(us, 1e6) * 1e3)};
    nanosleep(&t, NULL);
}

static edgc_status slow_sum(void* ctx, float* buf, size_t n)
{
    slow_link* s = ctx;
    nap_us((double)n * s->us_per_float);
    return s->inner.allreduce_sum_f32(s->inner.ctx, buf, n);
}

static edgc_status slow_max(void* ctx, int32_t* buf, size_t n)
{
    slow_link* s = ctx;
    return s->inner.allreduce_max_i32(s->inner.ctx, buf, n);
}

typedef struct wam_job {
    double tmb_ms; /* this worker's backward time per micro-batch */
    edgc_status status;
    edgc_step_stats st[WAM_STEPS];
} wam_job;

static void wam_worker(void* arg, const edgc_comm* comm)
{
    wam_job* j = arg;
    /* dense: 42 ms; rank r: about 1.3 r ms. The link, not the engine, sets the times: a small
     * matrix keeps the engine's share small even under valgrind, where the profile's first rank
     * (8) costs about 15 ms more than the link does */
    slow_link link = {*comm, 10.0};
    edgc_comm slow = {.ctx = &link,
                      .rank = comm->rank,
                      .size = comm->size,
                      .allreduce_sum_f32 = slow_sum,
                      .allreduce_max_i32 = slow_max};
    edgc_config c = edgc_config_default();
    c.total_steps = WAM_STEPS;
    c.alpha = 0.5; /* window 6 */
    c.pipeline_stages = 2;
    c.pipeline_stage = 1;
    /* a busy machine (or valgrind) makes sleeps and compute times jitter by 2x: drift detection
     * would re-profile and eat the steps this test looks at. It is tested in test_controller. */
    c.reprofile_factor = 0.0;
    edgc_reducer* r = NULL;
    float* grad = malloc(WAM_N * sizeof *grad);
    j->status = grad == NULL ? EDGC_ERR_NOMEM : edgc_reducer_create(&c, &k_wide, &slow, &r);
    test_rng rng = {(uint64_t)comm->rank + 1};
    /* stage 0 leads with rank 8, predicted at 1 ms */
    edgc_wam_lead lead = {8, 1.0};
    for (int t = 0; t < WAM_STEPS && j->status == EDGC_OK; t++) {
        test_gaussian(&rng, grad, WAM_N, 1.0);
        j->status = edgc_reducer_wam_follow(r, &lead, j->tmb_ms);
        nap_us(5000.0); /* the step's compute */
        if (j->status == EDGC_OK) j->status = edgc_reducer_step(r, grad, &j->st[t]);
    }
    edgc_reducer_free(r);
    free(grad);
}

static void test_wam_follower_over_a_slow_link(void** state)
{
    (void)state;
    wam_job jobs[2] = {{.tmb_ms = 2.0}, {.tmb_ms = 4.0}};
    assert_int_equal(run_workers(2, wam_worker, jobs, sizeof jobs[0]), 0);
    assert_int_equal(jobs[0].status, EDGC_OK);
    assert_int_equal(jobs[1].status, EDGC_OK);
    int aligned = 0, compressed = 0;
    for (int t = 0; t < WAM_STEPS; t++) {
        const edgc_step_stats *a = &jobs[0].st[t], *b = &jobs[1].st[t];
        assert_int_equal(a->rank, b->rank); /* the replicas of a stage decide alike */
        assert_int_equal(isfinite(a->wam_budget_ms), isfinite(b->wam_budget_ms));
        if (!isfinite(a->wam_budget_ms)) continue;
        aligned++;
        /* stage 0's 1 ms plus one micro-batch of the slower worker's backward */
        assert_true(a->wam_budget_ms == 5.0 && b->wam_budget_ms == 5.0);
        assert_true(a->phase == EDGC_PHASE_COMPRESS);
        /* dense exactly when the budget exceeds this stage's own dense time; never above r_max */
        assert_int_equal(a->rank == 0, a->wam_budget_ms > a->dense_sync_ms);
        assert_true(a->rank <= a->r_max);
        compressed += a->rank > 0;
    }
    assert_true(aligned >= 12); /* compression begins after profiling, well before the end */
    assert_true(compressed > 0);
}

/* Blobs that are each sound but saved at different steps (one worker's checkpoint older than the
 * other's) are refused on every worker, which keep their state: the next step still agrees. */
typedef struct stale_job {
    edgc_mode mode;
    edgc_status load, step_after;
    char why[256];
    float grad[54];
    unsigned char blob[1 << 16];
} stale_job;

static void stale_worker(void* arg, const edgc_comm* comm)
{
    stale_job* j = arg;
    edgc_config c = edgc_config_default();
    c.mode = j->mode;
    c.total_steps = 40;
    c.r_max = 4;
    c.threads = 1;
    edgc_reducer* r = NULL;
    if (edgc_reducer_create(&c, &k_layout, comm, &r) != EDGC_OK) return;
    size_t len = 0;
    for (int s = 0; s < 6; s++) {
        if (s == 3 + 2 * comm->rank) edgc_reducer_save(r, j->blob, sizeof j->blob, &len);
        test_rng rng = {(uint64_t)(10 * s + comm->rank + 1)};
        test_gaussian(&rng, j->grad, 54, 1.0);
        edgc_reducer_step(r, j->grad, NULL);
    }
    j->load = edgc_reducer_load(r, j->blob, len);
    snprintf(j->why, sizeof j->why, "%s", edgc_reducer_last_error(r));
    test_rng rng = {99u + (uint64_t)comm->rank};
    test_gaussian(&rng, j->grad, 54, 1.0);
    j->step_after = edgc_reducer_step(r, j->grad, NULL);
    edgc_reducer_free(r);
}

static void test_blobs_of_different_steps_are_refused(void** state)
{
    (void)state;
    const edgc_mode modes[] = {EDGC_MODE_DENSE, EDGC_MODE_POWERSGD, EDGC_MODE_EDGC};
    stale_job* jobs = calloc(2, sizeof *jobs);
    assert_non_null(jobs);
    for (int m = 0; m < 3; m++) {
        memset(jobs, 0, 2 * sizeof *jobs);
        jobs[0].mode = jobs[1].mode = modes[m];
        assert_int_equal(run_workers(2, stale_worker, jobs, sizeof jobs[0]), 0);
        for (int w = 0; w < 2; w++) {
            assert_int_equal(jobs[w].load, EDGC_ERR_MISMATCH);
            if (strstr(jobs[w].why, "different steps") == NULL) fail_msg("why: %s", jobs[w].why);
            assert_int_equal(jobs[w].step_after, EDGC_OK);
        }
        assert_memory_equal(jobs[0].grad, jobs[1].grad, sizeof jobs[0].grad);
    }
    free(jobs);
}

/* Every field at the edge of what edgc_config_check accepts, through creation, 60 steps on two
 * workers and a state round trip: nothing may overflow (ASan and UBSan with float-cast-overflow
 * watch this test under make test), and each config is either refused at creation with a reason
 * or runs every step. */
enum { EXTREMES = 24 };

static void extreme_config(int which, edgc_config* c)
{
    c->total_steps = 50;
    c->threads = 1;
    c->r_max = 8;
    switch (which) {
    case 0:
        c->rule = EDGC_RULE_ERROR, c->rank_step = INT_MAX;
        break;
    case 1:
        c->rule = EDGC_RULE_TREND, c->rank_step = INT_MAX;
        break;
    case 2:
        c->rule = EDGC_RULE_CQM, c->rank_step = INT_MAX;
        break;
    case 3:
        c->rank_step = INT_MAX;
        break;
    case 4:
        c->r_max = c->r_min = INT_MAX;
        break;
    case 5:
        c->window = 2, c->alpha = 1.0;
        break;
    case 6:
        c->window = INT_MAX;
        break;
    case 7:
        c->warmup_fraction = 0.999999;
        break;
    case 8:
        c->r_max = 0, c->profile_reps = 17;
        break;
    case 9:
        c->r_max = 0, c->profile_reps = 2, c->profile_base_steps = 1;
        break;
    case 10:
        c->r_max = 0, c->profile_base_steps = INT_MAX;
        break;
    case 11:
        c->r_max = 0, c->profile_start = INT_MAX;
        break;
    case 12:
        c->alpha = 4.9e-324;
        break; /* refused: no window holds a sample */
    case 13:
        c->beta = 4.9e-324;
        break;
    case 14:
        c->bins = 2, c->orth_eps = 1e30f;
        break;
    case 15:
        c->orth_eps = 0.0f;
        break;
    case 16:
        c->total_steps = UINT64_MAX;
        break;
    case 17:
        c->total_steps = UINT64_MAX, c->r_max = 0;
        break;
    case 18:
        c->total_steps = 1, c->rule = EDGC_RULE_TREND;
        break;
    case 19:
        c->r_max = 0, c->reprofile_factor = 1.0000001, c->min_saving = 0.999;
        break;
    case 20:
        c->r_max = 0, c->rmax_slack = 1.0, c->rmax_rule = EDGC_RMAX_PAPER;
        break;
    case 21:
        c->mode = EDGC_MODE_POWERSGD, c->rank = INT_MAX;
        break;
    case 22:
        c->pipeline_stage = INT_MAX - 1, c->pipeline_stages = INT_MAX;
        break;
    default:
        c->threads = 1024;
        break;
    }
}

typedef struct extreme_job {
    int which;
    edgc_status create, last;
    int steps;
    unsigned char blob[1 << 16];
} extreme_job;

static void extreme_worker(void* arg, const edgc_comm* comm)
{
    extreme_job* j = arg;
    edgc_config c = edgc_config_default();
    extreme_config(j->which, &c);
    edgc_reducer* r = NULL;
    j->create = edgc_reducer_create(&c, &k_layout, comm, &r);
    for (int s = 0; j->create == EDGC_OK && s < 60; s++) {
        float g[54];
        test_rng rng = {(uint64_t)(100 * s + comm->rank + 1)};
        test_gaussian(&rng, g, 54, 1.0 + s);
        if ((j->last = edgc_reducer_step(r, g, NULL)) != EDGC_OK) break;
        j->steps++;
        size_t len = 0;
        if (s == 30 && (j->last = edgc_reducer_save(r, j->blob, sizeof j->blob, &len)) == EDGC_OK)
            j->last = edgc_reducer_load(r, j->blob, len);
        if (j->last != EDGC_OK) break;
    }
    edgc_reducer_free(r);
}

static void test_extreme_configs_run_clean(void** state)
{
    (void)state;
    extreme_job* jobs = calloc(2, sizeof *jobs);
    assert_non_null(jobs);
    for (int which = 0; which < EXTREMES; which++) {
        memset(jobs, 0, 2 * sizeof *jobs);
        jobs[0].which = jobs[1].which = which;
        assert_int_equal(run_workers(2, extreme_worker, jobs, sizeof jobs[0]), 0);
        for (int w = 0; w < 2; w++) {
            if (which == 12) {
                assert_int_equal(jobs[w].create, EDGC_ERR_CONFIG);
                continue;
            }
            if (jobs[w].create != EDGC_OK || jobs[w].steps != 60)
                fail_msg("config %d: create %s, %d steps, last %s", which,
                         edgc_status_name(jobs[w].create), jobs[w].steps,
                         edgc_status_name(jobs[w].last));
        }
    }
    free(jobs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stats_json),
        cmocka_unit_test(test_dense_over_inproc),
        cmocka_unit_test(test_one_invalid_config_fails_everywhere),
        cmocka_unit_test(test_state_load_fuzz),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_pieces_match_one_buffer),
        cmocka_unit_test(test_pieces_that_do_not_fit),
        cmocka_unit_test(test_a_communicator_with_only_the_blocking_allreduces),
        cmocka_unit_test(test_split_reducer),
        cmocka_unit_test(test_split_and_normal_reducers_do_not_mix),
        cmocka_unit_test(test_wam_follower_over_a_slow_link),
        cmocka_unit_test(test_extreme_configs_run_clean),
        cmocka_unit_test(test_blobs_of_different_steps_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
