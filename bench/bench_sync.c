/*
 * bench_sync.c - time per synchronisation step of the reducer over MPI, side by side in one run:
 * dense, PowerSGD at several ranks, and EDGC (profiled r_max, then compressing). Run under
 * mpirun; scripts/bench.sh runs it over shared memory and over bandwidth-limited links made with
 * scripts/netsim.sh. Rank 0 prints Markdown table rows on stdout; progress goes to stderr.
 *
 * Each timed step: barrier, reducer step, then the slowest rank's time. Every mode first runs
 * untimed warm-up steps (first-touch page faults are slow here) on the same buffers.
 */
#define _POSIX_C_SOURCE 200809L
#include "bench_layout.h"
#include "bench_median.h"
#include "edgc_mpi.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void fill(float* g, size_t n, int rank, int step)
{
    uint64_t s = 0x9e3779b97f4a7c15ULL * (uint64_t)(rank + 1) + (uint64_t)step;
    for (size_t i = 0; i < n; i++) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        g[i] = ((float)(s >> 40) * 0x1.0p-24f - 0.5f) * 1e-3f;
    }
}

typedef struct result {
    double ms;      /* median over timed steps, slowest rank */
    double mean_ms; /* their mean: one-off costs and stalls included */
    double bytes;   /* mean bytes sent per step, this rank */
    double dense;   /* dense-equivalent bytes per step */
    int r_max;      /* edgc: profiled ceiling */
} result;

static void usage(FILE* f)
{
    fprintf(f, "usage: mpirun -np N bench_sync [--layout gpt2|tiny] [--steps N] [--warmup N]\n"
               "                     [--modes LIST] [--label TEXT]\n"
               "  Times one reducer step per mode over MPI_COMM_WORLD and prints Markdown rows.\n"
               "  --layout    gpt2: 12 layers x 768 (85 M floats); tiny: 2 layers x 128\n"
               "  --steps N   timed steps per mode (default 5)\n"
               "  --warmup N  untimed steps first (default 2)\n"
               "  --modes     comma list of dense, powersgd:R, edgc (default\n"
               "              dense,powersgd:4,powersgd:8,powersgd:16,powersgd:32,edgc)\n"
               "  --label     text for the first column (default: 'np=N')\n");
}

static int parse_int(const char* flag, const char* s, int lo, int hi, int* out)
{
    char* end;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v < lo || v > hi) {
        fprintf(stderr, "bench_sync: %s %s: expected an integer in [%d, %d]\n", flag, s, lo, hi);
        return 0;
    }
    *out = (int)v;
    return 1;
}

static int run_mode(const char* mode, const bench_model* md, int steps, int warmup, float* g,
                    result* res)
{
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    edgc_config cfg = edgc_config_default();
    int is_edgc = 0;
    if (strcmp(mode, "dense") == 0) {
        cfg.mode = EDGC_MODE_DENSE;
    } else if (strncmp(mode, "powersgd:", 9) == 0) {
        cfg.mode = EDGC_MODE_POWERSGD;
        if (!parse_int("powersgd rank", mode + 9, 1, 4096, &cfg.rank)) return 0;
    } else if (strcmp(mode, "edgc") == 0) {
        /* profile from step 0, no warm-up: the run is the profile plus compressed steps */
        is_edgc = 1;
        cfg.mode = EDGC_MODE_EDGC;
        cfg.profile_start = 0;
        cfg.warmup_fraction = 0.0;
        cfg.window = 10; /* the default alpha, as dense and powersgd run it: GDS costs the same */
        cfg.total_steps = 1000;
    } else {
        fprintf(stderr, "bench_sync: unknown mode '%s'\n", mode);
        return 0;
    }
    edgc_layout layout = {md->t, md->n_t, md->total};
    edgc_reducer* red = NULL;
    edgc_status st = edgc_reducer_create_mpi(MPI_COMM_WORLD, &cfg, &layout, &red);
    if (st != EDGC_OK) {
        fprintf(stderr, "bench_sync: %s: %s\n", mode, edgc_status_str(st));
        return 0;
    }
    /* edgc: keep stepping until profiling is over, then time `steps` compressed steps */
    int done = 0;
    double sum = 0.0, bytes = 0.0, dense = 0.0;
    double* times = malloc((size_t)steps * sizeof *times);
    if (times == NULL) {
        fprintf(stderr, "bench_sync: out of memory\n");
        edgc_reducer_free(red);
        return 0;
    }
    edgc_step_stats s = {0};
    for (int t = 0; done < steps; t++) {
        fill(g, md->total, rank, t);
        MPI_Barrier(MPI_COMM_WORLD);
        double t0 = MPI_Wtime();
        st = edgc_reducer_step(red, g, &s);
        double ms = (MPI_Wtime() - t0) * 1e3;
        MPI_Allreduce(MPI_IN_PLACE, &ms, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
        if (st != EDGC_OK) {
            fprintf(stderr, "bench_sync: %s step %d: %s\n", mode, t, edgc_reducer_last_error(red));
            free(times);
            edgc_reducer_free(red);
            return 0;
        }
        int timed = is_edgc ? s.phase == EDGC_PHASE_COMPRESS && t >= warmup : t >= warmup;
        if (rank == 0 && t % 5 == 0)
            fprintf(stderr, "bench_sync: %s step %d: %.1f ms (rank %d)\n", mode, t, ms, s.rank);
        if (!timed) {
            if (t > 1000) break; /* never reached compression: give up */
            continue;
        }
        times[done++] = ms;
        sum += ms;
        bytes += (double)s.bytes_sent;
        dense += (double)s.bytes_dense;
    }
    res->ms = done ? bench_median(times, done) : NAN;
    res->mean_ms = done ? sum / done : NAN;
    res->bytes = done ? bytes / done : NAN;
    res->dense = done ? dense / done : NAN;
    res->r_max = s.r_max;
    free(times);
    edgc_reducer_free(red);
    return done == steps;
}

int main(int argc, char** argv)
{
    MPI_Init(&argc, &argv);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    const char* layout_name = "gpt2";
    const char* modes = "dense,powersgd:4,powersgd:8,powersgd:16,powersgd:32,edgc";
    char label[128];
    snprintf(label, sizeof label, "np=%d", size);
    int steps = 5, warmup = 2, ok = 1;
    for (int i = 1; i < argc && ok; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            if (rank == 0) usage(stdout);
            MPI_Finalize();
            return 0;
        } else if (!strcmp(argv[i], "--layout") && i + 1 < argc) {
            layout_name = argv[++i];
            ok = !strcmp(layout_name, "gpt2") || !strcmp(layout_name, "tiny");
            if (!ok && rank == 0) fprintf(stderr, "bench_sync: --layout gpt2|tiny\n");
        } else if (!strcmp(argv[i], "--steps") && i + 1 < argc) {
            ok = parse_int("--steps", argv[++i], 1, 10000, &steps);
        } else if (!strcmp(argv[i], "--warmup") && i + 1 < argc) {
            ok = parse_int("--warmup", argv[++i], 0, 10000, &warmup);
        } else if (!strcmp(argv[i], "--modes") && i + 1 < argc) {
            modes = argv[++i];
        } else if (!strcmp(argv[i], "--label") && i + 1 < argc) {
            snprintf(label, sizeof label, "%s", argv[++i]);
        } else {
            if (rank == 0) {
                fprintf(stderr, "bench_sync: unknown or incomplete argument '%s'\n", argv[i]);
                usage(stderr);
            }
            ok = 0;
        }
    }
    if (!ok) {
        MPI_Finalize();
        return 2;
    }
    bench_model md =
        !strcmp(layout_name, "gpt2") ? bench_gpt2_like(12, 768) : bench_gpt2_like(2, 128);
    float* g = malloc(md.total * sizeof *g);
    if (g == NULL || md.t == NULL) {
        fprintf(stderr, "bench_sync: out of memory\n");
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    char* list = strdup(modes);
    double dense_ms = NAN, dense_bytes = NAN;
    int status = 0;
    for (char *save = NULL, *m = strtok_r(list, ",", &save); m; m = strtok_r(NULL, ",", &save)) {
        result r = {0};
        if (!run_mode(m, &md, steps, warmup, g, &r)) {
            status = 1;
            break;
        }
        if (!strcmp(m, "dense")) {
            dense_ms = r.ms;
            dense_bytes = r.bytes;
        }
        if (rank == 0) {
            char extra[64] = "";
            if (!strcmp(m, "edgc"))
                snprintf(extra, sizeof extra, " (profiled r_max = %d)", r.r_max);
            printf("| %s | %s | %zu | %s%s | %.1f | %.1f | %.2f | %.3f | %.3f |\n", label,
                   layout_name, md.total, m, extra, r.ms, r.mean_ms, r.bytes / 1e6, r.ms / dense_ms,
                   r.bytes / dense_bytes);
            fflush(stdout);
        }
    }
    free(list);
    free(g);
    free(md.t);
    MPI_Finalize();
    return status;
}
