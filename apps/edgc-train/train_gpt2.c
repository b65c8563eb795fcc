/*
 * train_gpt2.c - edgc-train: trains a GPT-2 data-parallel over MPI, every gradient through
 * edgc_reducer (dense, static PowerSGD or EDGC). Rank 0 prints a progress line every few steps,
 * validation loss, and a summary with what the compression saved.
 *
 *   mpirun -np 2 edgc-train --preset tiny --compress edgc --steps 600
 *
 * Every error is one line naming the problem, and every rank exits non-zero: checks that can
 * differ between ranks (files) are agreed with an allreduce before anyone acts on them.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <mpi.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "checkpoint.h"
#include "dataloader.h"
#include "edgc_mpi.h"
#include "gpt2.h"
#include "optim.h"

// ----------------------------------------------------------------------------
// options

typedef struct options {
    const char* preset;
    int layers, dim, heads, seq; /* 0: from the preset or --init */
    int batch, steps, warmup, eval_every, eval_batches, print_every, hash_every, ckpt_every;
    int sample_len, nan_step, stop_after;
    float lr, weight_decay, grad_clip;
    lr_schedule schedule;
    uint64_t seed;
    const char *data, *val_data, *init, *resume, *out, *log;
    /* compression */
    edgc_mode mode;
    int rank, r_max, window;
    double alpha, beta, edgc_warmup, rmax_slack;
    edgc_rank_rule rule;
    edgc_rmax_rule rmax_rule;
    edgc_warmup_sync warmup_sync;
} options;

static int g_rank = 0, g_world = 1;

/* Prints on rank 0 only. */
static void say(const char* fmt, ...)
{
    if (g_rank != 0) return;
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    fflush(stdout);
}

/* A fatal error that every rank reached the same way: one line from rank 0, exit 1 everywhere. */
static void die(const char* fmt, ...)
{
    if (g_rank == 0) {
        va_list ap;
        va_start(ap, fmt);
        fprintf(stderr, "edgc-train: ");
        vfprintf(stderr, fmt, ap);
        fprintf(stderr, "\n");
        va_end(ap);
    }
    MPI_Finalize();
    exit(1);
}

/* Agrees on a check that may fail on some ranks only (a file): if it failed anywhere, the first
 * failing rank prints its reason and every rank exits 1. */
static void check_all(int ok, const char* why)
{
    int bad = !ok, first = ok ? g_world : g_rank;
    MPI_Allreduce(MPI_IN_PLACE, &bad, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    MPI_Allreduce(MPI_IN_PLACE, &first, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    if (!bad) return;
    if (g_rank == first) fprintf(stderr, "edgc-train: %s\n", why);
    MPI_Finalize();
    exit(1);
}

static void usage(FILE* f)
{
    fprintf(
        f,
        "usage: mpirun -np N edgc-train [options]\n"
        "Trains a GPT-2 data-parallel over MPI; every gradient goes through edgc_reducer.\n"
        "\n"
        "model\n"
        "  --preset NAME        tiny (L4 C128 NH4 T64, default), mini (L6 C256 NH8 T128),\n"
        "                       124m (L12 C768 NH12 T1024), 345m (L24 C1024 NH16 T1024)\n"
        "  --layers L --dim C --heads NH --seq T   override the preset (T is also the position "
        "table)\n"
        "  --init FILE          start from an llm.c GPT-2 checkpoint; its header gives the shape\n"
        "data\n"
        "  --data FILE          .txt: bytes (vocab 256); .bin: llm.c shard (GPT-2 vocab 50257)\n"
        "                       default: data/kjv.txt (the King James Bible, made by make run)\n"
        "  --val-data FILE      validation data; default: the last 10%% of --data\n"
        "training\n"
        "  --batch B            sequences per rank per step (default 8)\n"
        "  --steps N            optimizer steps (default 600)\n"
        "  --lr X               peak learning rate (default 1e-3)\n"
        "  --lr-schedule S      constant | cosine (default cosine: to lr/10 at the end)\n"
        "  --warmup N           linear learning-rate warm-up steps (default 20)\n"
        "  --weight-decay X     AdamW decoupled decay on matrices and embeddings (default 0.01)\n"
        "  --grad-clip X        global gradient-norm clip after synchronisation, 0 = off (default "
        "1)\n"
        "  --seed N             initialisation and sampling seed (default 1337)\n"
        "compression\n"
        "  --compress M         dense | powersgd:R | edgc (default edgc)\n"
        "  --rmax R             EDGC rank ceiling; 0 = profile it at start-up (default 0)\n"
        "  --rmax-rule R        how profiling picks r_max: budget (the largest measured rank "
        "whose\n"
        "                       step is within --rmax-slack of the best saving; default) | paper\n"
        "                       (the largest rank still faster than dense, interpolated)\n"
        "  --rmax-slack X       budget rule: share of the best step-time saving traded for rank\n"
        "                       (default 0.2)\n"
        "  --window W           EDGC window: steps between rank decisions (default 0: --steps / "
        "20,\n"
        "                       at most 1000)\n"
        "  --alpha A --beta B   EDGC entropy sampling rates ISR and GSR (default 0.1, 0.25)\n"
        "  --edgc-warmup F      fraction of the run before the rank adapts (default 0.1)\n"
        "  --warmup-sync S      warm-up synchronisation: rmax (compressed at r_max; default) | "
        "dense\n"
        "  --rule R             trend | error | cqm (default trend)\n"
        "output\n"
        "  --eval-every N       validation loss every N steps (default 100; 0 = only at the end)\n"
        "  --eval-batches N     validation batches, from the start of the validation data (default "
        "8)\n"
        "  --print-every N      progress line every N steps (default 10)\n"
        "  --log FILE.jsonl     one JSON object per step\n"
        "  --out DIR            write DIR/model.bin and DIR/state.rankR.bin at the end (and every\n"
        "                       --checkpoint-every N steps)\n"
        "  --resume DIR         continue from DIR's checkpoint exactly where it stopped (same "
        "--steps,\n"
        "                       --batch, --seq and number of ranks)\n"
        "  --stop-after N       stop after step N with a checkpoint in --out, as a job time limit\n"
        "                       would; --resume continues it bit-identically\n"
        "  --hash-every N       compare a hash of the weights across ranks every N steps (default "
        "50)\n"
        "  --sample-len N       bytes of text generated at the end (default 200; 0 = none)\n"
        "  --debug-nan-step S   testing aid: put a NaN into rank 0's gradient at step S\n"
        "  -h, --help           this text\n");
}

static long parse_long(const char* flag, const char* s, long lo, long hi)
{
    char* end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || errno != 0 || v < lo || v > hi)
        die("%s %s: expected an integer in [%ld, %ld]", flag, s, lo, hi);
    return v;
}

static double parse_double(const char* flag, const char* s, double lo, double hi)
{
    char* end;
    errno = 0;
    double v = strtod(s, &end);
    if (*s == '\0' || *end != '\0' || errno != 0 || !(v >= lo && v <= hi))
        die("%s %s: expected a number in [%g, %g]", flag, s, lo, hi);
    return v;
}

/* One of a NULL-terminated list of names: its index, or a one-line error naming them all. */
static int parse_choice(const char* flag, const char* s, const char* const* names)
{
    char list[128] = "";
    for (int i = 0; names[i] != NULL; i++) {
        if (strcmp(s, names[i]) == 0) return i;
        size_t at = strlen(list);
        snprintf(list + at, sizeof list - at, "%s%s", i ? " | " : "", names[i]);
    }
    die("%s %s: expected %s", flag, s, list);
    return -1;
}

static void parse_compress(options* o, const char* s)
{
    if (strcmp(s, "dense") == 0) {
        o->mode = EDGC_MODE_DENSE;
    } else if (strcmp(s, "edgc") == 0) {
        o->mode = EDGC_MODE_EDGC;
    } else if (strncmp(s, "powersgd:", 9) == 0) {
        o->mode = EDGC_MODE_POWERSGD;
        o->rank = (int)parse_long("--compress powersgd:R", s + 9, 1, 65536);
    } else {
        die("--compress %s: expected dense, powersgd:R or edgc", s);
    }
}

static options parse_options(int argc, char** argv)
{
    options o = {
        .preset = "tiny",
        .batch = 8,
        .steps = 600,
        .warmup = 20,
        .eval_every = 100,
        .eval_batches = 8,
        .print_every = 10,
        .hash_every = 50,
        .sample_len = 200,
        .nan_step = -1,
        .stop_after = 0,
        .lr = 1e-3f,
        .weight_decay = 0.01f,
        .grad_clip = 1.0f,
        .schedule = LR_COSINE,
        .seed = 1337,
        .data = "data/kjv.txt",
        .mode = EDGC_MODE_EDGC,
        .rank = 4,
        .window = 0,
        .rmax_slack = 0.2,
        .rule = EDGC_RULE_TREND,
        .alpha = 0.1,
        .beta = 0.25,
        .edgc_warmup = 0.1,
    };
    enum {
        O_LAYERS = 256,
        O_DIM,
        O_HEADS,
        O_SEQ,
        O_INIT,
        O_DATA,
        O_VAL,
        O_BATCH,
        O_STEPS,
        O_LR,
        O_SCHED,
        O_WARMUP,
        O_WD,
        O_CLIP,
        O_SEED,
        O_COMPRESS,
        O_RMAX,
        O_WINDOW,
        O_ALPHA,
        O_BETA,
        O_EWARM,
        O_RULE,
        O_EVAL,
        O_EVALB,
        O_PRINT,
        O_LOG,
        O_OUT,
        O_RESUME,
        O_HASH,
        O_CKPT,
        O_SAMPLE,
        O_NAN,
        O_PRESET,
        O_STOP,
        O_RMAX_RULE,
        O_RMAX_SLACK,
        O_WARM_SYNC
    };
    static const struct option longopts[] = {{"preset", required_argument, 0, O_PRESET},
                                             {"layers", required_argument, 0, O_LAYERS},
                                             {"dim", required_argument, 0, O_DIM},
                                             {"heads", required_argument, 0, O_HEADS},
                                             {"seq", required_argument, 0, O_SEQ},
                                             {"init", required_argument, 0, O_INIT},
                                             {"data", required_argument, 0, O_DATA},
                                             {"val-data", required_argument, 0, O_VAL},
                                             {"batch", required_argument, 0, O_BATCH},
                                             {"steps", required_argument, 0, O_STEPS},
                                             {"lr", required_argument, 0, O_LR},
                                             {"lr-schedule", required_argument, 0, O_SCHED},
                                             {"warmup", required_argument, 0, O_WARMUP},
                                             {"weight-decay", required_argument, 0, O_WD},
                                             {"grad-clip", required_argument, 0, O_CLIP},
                                             {"seed", required_argument, 0, O_SEED},
                                             {"compress", required_argument, 0, O_COMPRESS},
                                             {"rmax", required_argument, 0, O_RMAX},
                                             {"window", required_argument, 0, O_WINDOW},
                                             {"alpha", required_argument, 0, O_ALPHA},
                                             {"beta", required_argument, 0, O_BETA},
                                             {"edgc-warmup", required_argument, 0, O_EWARM},
                                             {"rule", required_argument, 0, O_RULE},
                                             {"rmax-rule", required_argument, 0, O_RMAX_RULE},
                                             {"rmax-slack", required_argument, 0, O_RMAX_SLACK},
                                             {"warmup-sync", required_argument, 0, O_WARM_SYNC},
                                             {"eval-every", required_argument, 0, O_EVAL},
                                             {"eval-batches", required_argument, 0, O_EVALB},
                                             {"print-every", required_argument, 0, O_PRINT},
                                             {"log", required_argument, 0, O_LOG},
                                             {"out", required_argument, 0, O_OUT},
                                             {"resume", required_argument, 0, O_RESUME},
                                             {"hash-every", required_argument, 0, O_HASH},
                                             {"checkpoint-every", required_argument, 0, O_CKPT},
                                             {"sample-len", required_argument, 0, O_SAMPLE},
                                             {"debug-nan-step", required_argument, 0, O_NAN},
                                             {"stop-after", required_argument, 0, O_STOP},
                                             {"help", no_argument, 0, 'h'},
                                             {0, 0, 0, 0}};
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case O_PRESET:
            o.preset = optarg;
            break;
        case O_LAYERS:
            o.layers = (int)parse_long("--layers", optarg, 1, 1000);
            break;
        case O_DIM:
            o.dim = (int)parse_long("--dim", optarg, 1, 65536);
            break;
        case O_HEADS:
            o.heads = (int)parse_long("--heads", optarg, 1, 65536);
            break;
        case O_SEQ:
            o.seq = (int)parse_long("--seq", optarg, 1, 1 << 20);
            break;
        case O_INIT:
            o.init = optarg;
            break;
        case O_DATA:
            o.data = optarg;
            break;
        case O_VAL:
            o.val_data = optarg;
            break;
        case O_BATCH:
            o.batch = (int)parse_long("--batch", optarg, 1, 1 << 20);
            break;
        case O_STEPS:
            o.steps = (int)parse_long("--steps", optarg, 1, 1 << 30);
            break;
        case O_LR:
            o.lr = (float)parse_double("--lr", optarg, 0.0, 10.0);
            break;
        case O_SCHED:
            o.schedule = parse_choice("--lr-schedule", optarg,
                                      (const char*[]){"constant", "cosine", NULL}) == 0
                             ? LR_CONSTANT
                             : LR_COSINE;
            break;
        case O_WARMUP:
            o.warmup = (int)parse_long("--warmup", optarg, 0, 1 << 30);
            break;
        case O_WD:
            o.weight_decay = (float)parse_double("--weight-decay", optarg, 0.0, 10.0);
            break;
        case O_CLIP:
            o.grad_clip = (float)parse_double("--grad-clip", optarg, 0.0, 1e9);
            break;
        case O_SEED:
            o.seed = (uint64_t)parse_long("--seed", optarg, 0, 0x7fffffffL);
            break;
        case O_COMPRESS:
            parse_compress(&o, optarg);
            break;
        case O_RMAX:
            o.r_max = (int)parse_long("--rmax", optarg, 0, 65536);
            break;
        case O_WINDOW:
            o.window = (int)parse_long("--window", optarg, 0, 1 << 30);
            if (o.window == 1) die("--window 1: expected 0 (derived) or at least 2");
            break;
        case O_ALPHA:
            o.alpha = parse_double("--alpha", optarg, 1e-9, 1.0);
            break;
        case O_BETA:
            o.beta = parse_double("--beta", optarg, 1e-9, 1.0);
            break;
        case O_EWARM:
            o.edgc_warmup = parse_double("--edgc-warmup", optarg, 0.0, 0.999);
            break;
        case O_RULE:
            /* in edgc_rank_rule's order */
            o.rule = (edgc_rank_rule)parse_choice("--rule", optarg,
                                                  (const char*[]){"trend", "cqm", "error", NULL});
            break;
        case O_RMAX_RULE:
            o.rmax_rule = (edgc_rmax_rule)parse_choice("--rmax-rule", optarg,
                                                       (const char*[]){"budget", "paper", NULL});
            break;
        case O_RMAX_SLACK:
            o.rmax_slack = parse_double("--rmax-slack", optarg, 0.0, 1.0);
            break;
        case O_WARM_SYNC:
            o.warmup_sync = (edgc_warmup_sync)parse_choice("--warmup-sync", optarg,
                                                           (const char*[]){"rmax", "dense", NULL});
            break;
        case O_EVAL:
            o.eval_every = (int)parse_long("--eval-every", optarg, 0, 1 << 30);
            break;
        case O_EVALB:
            o.eval_batches = (int)parse_long("--eval-batches", optarg, 1, 1 << 20);
            break;
        case O_PRINT:
            o.print_every = (int)parse_long("--print-every", optarg, 1, 1 << 30);
            break;
        case O_LOG:
            o.log = optarg;
            break;
        case O_OUT:
            o.out = optarg;
            break;
        case O_RESUME:
            o.resume = optarg;
            break;
        case O_HASH:
            o.hash_every = (int)parse_long("--hash-every", optarg, 0, 1 << 30);
            break;
        case O_CKPT:
            o.ckpt_every = (int)parse_long("--checkpoint-every", optarg, 0, 1 << 30);
            break;
        case O_SAMPLE:
            o.sample_len = (int)parse_long("--sample-len", optarg, 0, 1 << 20);
            break;
        case O_NAN:
            o.nan_step = (int)parse_long("--debug-nan-step", optarg, 0, 1 << 30);
            break;
        case O_STOP:
            o.stop_after = (int)parse_long("--stop-after", optarg, 1, 1 << 30);
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            die("unknown option or missing value: '%s' (see --help)", argv[optind - 1]);
        }
    }
    if (optind < argc) die("unexpected argument '%s' (see --help)", argv[optind]);
    return o;
}

/* The model shape: --init's header, or the preset with explicit overrides. */
static gpt2_config model_config(const options* o, int vocab)
{
    gpt2_config c = {0};
    char why[512];
    if (o->init != NULL) {
        check_all(ckpt_read_config(o->init, &c, why, sizeof why) == 0, why);
        if (o->layers || o->dim || o->heads)
            die("--init takes the model shape from its header; drop --layers/--dim/--heads");
        if (c.vocab_size != vocab)
            die("--init %s has vocabulary %d but the data has %d", o->init, c.vocab_size, vocab);
        return c;
    }
    struct {
        const char* name;
        int L, C, NH, T;
    } presets[] = {{"tiny", 4, 128, 4, 64},
                   {"mini", 6, 256, 8, 128},
                   {"124m", 12, 768, 12, 1024},
                   {"345m", 24, 1024, 16, 1024}};
    int found = -1;
    for (int i = 0; i < 4; i++)
        if (strcmp(o->preset, presets[i].name) == 0) found = i;
    if (found < 0) die("--preset %s: expected tiny, mini, 124m or 345m", o->preset);
    c.num_layers = o->layers ? o->layers : presets[found].L;
    c.channels = o->dim ? o->dim : presets[found].C;
    c.num_heads = o->heads ? o->heads : presets[found].NH;
    c.max_seq_len = o->seq ? o->seq : presets[found].T;
    c.vocab_size = vocab;
    c.padded_vocab_size = (vocab + 127) / 128 * 128;
    if (gpt2_config_check(&c, why, sizeof why) != 0) die("%s", why);
    return c;
}

// ----------------------------------------------------------------------------
// helpers for the loop

static double now_s(void)
{
    return MPI_Wtime();
}

static void fmt_duration(char* out, size_t n, double s)
{
    if (!(s >= 0) || s > 1e7) {
        snprintf(out, n, "?");
    } else if (s >= 3600) {
        snprintf(out, n, "%dh%02dm", (int)(s / 3600), (int)(s / 60) % 60);
    } else {
        snprintf(out, n, "%dm%02ds", (int)(s / 60), (int)s % 60);
    }
}

static const char* phase_name(const edgc_step_stats* s)
{
    if (s->mode == EDGC_MODE_DENSE) return "dense";
    if (s->mode == EDGC_MODE_POWERSGD) return "powersgd";
    return s->phase == EDGC_PHASE_PROFILE  ? "profile"
           : s->phase == EDGC_PHASE_WARMUP ? "warmup"
                                           : "compress";
}

/* Mean validation loss over the first eval_batches windows, split across ranks. */
static double evaluate(gpt2* m, const token_data* val, int B, int T, int n_batches, int* in,
                       int* tg)
{
    double sum = 0.0;
    for (int k = g_rank; k < n_batches; k += g_world) {
        data_batch(val, (size_t)k, B, T, in, tg);
        gpt2_forward(m, in, tg, B, T);
        sum += m->mean_loss;
    }
    MPI_Allreduce(MPI_IN_PLACE, &sum, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    return sum / n_batches;
}

/* Stops every rank if the weights differ anywhere: data-parallel replicas must stay identical. */
static void check_weights_agree(const gpt2* m, int step)
{
    uint64_t h = ckpt_hash(m->params_memory, m->num_parameters * sizeof(float)), lo = h, hi = h;
    MPI_Allreduce(MPI_IN_PLACE, &lo, 1, MPI_UINT64_T, MPI_MIN, MPI_COMM_WORLD);
    MPI_Allreduce(MPI_IN_PLACE, &hi, 1, MPI_UINT64_T, MPI_MAX, MPI_COMM_WORLD);
    if (lo != hi) die("step %d: the weights differ between ranks (hash check failed)", step);
}

static void state_path(char* out, size_t n, const char* dir, int rank)
{
    snprintf(out, n, "%s/state.rank%d.bin", dir, rank);
}

static void save_checkpoint(const options* o, const gpt2* m, edgc_reducer* red, int next_step,
                            double elapsed)
{
    char why[8192] = "", path[4096];
    int ok = mkdir(o->out, 0755) == 0 || errno == EEXIST;
    if (!ok)
        snprintf(why, sizeof why, "cannot create --out directory '%s': %s", o->out,
                 strerror(errno));
    size_t need = 0, wrote = 0;
    void* blob = NULL;
    if (ok) {
        edgc_reducer_state_size(red, &need);
        blob = malloc(need ? need : 1);
        ok = blob != NULL && edgc_reducer_save(red, blob, need, &wrote) == EDGC_OK;
        if (!ok) snprintf(why, sizeof why, "cannot serialise the reducer state");
    }
    train_state st = {.step = next_step,
                      .total_steps = o->steps,
                      .batch = o->batch,
                      .seq = o->seq,
                      .world = g_world,
                      .seed = o->seed,
                      .params_hash = ckpt_hash(m->params_memory, m->num_parameters * 4),
                      .elapsed_s = elapsed};
    if (ok) {
        state_path(path, sizeof path, o->out, g_rank);
        ok = ckpt_save_state(path, &st, m, blob, wrote, why, sizeof why) == 0;
    }
    /* the model last: a state file never points at weights that were not written */
    int all = ok;
    MPI_Allreduce(MPI_IN_PLACE, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    if (all && g_rank == 0) {
        snprintf(path, sizeof path, "%s/model.bin", o->out);
        ok = ckpt_save_model(path, m, why, sizeof why) == 0;
    }
    free(blob);
    check_all(ok, why);
}

/* Samples `len` bytes from the model, rank 0 only (byte-level vocabularies only). */
static void generate(gpt2* m, int len, uint64_t seed)
{
    if (g_rank != 0 || len <= 0) return;
    if (m->config.vocab_size != 256) {
        say("\nsample: skipped (GPT-2 BPE tokens need a tokenizer this trainer does not have)\n");
        return;
    }
    int T = m->config.max_seq_len;
    int* ctx = calloc((size_t)T, sizeof(int));
    if (ctx == NULL) return;
    int n = 1;
    ctx[0] = '\n';
    uint64_t s = seed ^ 0x5eedULL;
    say("\nsample:\n");
    for (int i = 0; i < len; i++) {
        int start = n > T ? n - T : 0, t = n - start;
        if (gpt2_forward(m, ctx + start, NULL, 1, t) != 0) break;
        const float* p = m->acts.probs + (size_t)(t - 1) * m->config.padded_vocab_size;
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        double u = (double)(s >> 11) * 0x1.0p-53, acc = 0.0;
        int next = m->config.vocab_size - 1;
        for (int v = 0; v < m->config.vocab_size; v++) {
            acc += p[v];
            if (u < acc) {
                next = v;
                break;
            }
        }
        putchar((next >= 32 && next < 127) || next == '\n' ? next : '?');
        if (n < T) {
            ctx[n++] = next;
        } else { /* slide the context window */
            memmove(ctx, ctx + 1, (size_t)(T - 1) * sizeof(int));
            ctx[T - 1] = next;
        }
    }
    putchar('\n');
    fflush(stdout);
    free(ctx);
}

// ----------------------------------------------------------------------------

int main(int argc, char** argv)
{
    for (int i = 1; i < argc; i++) /* --help needs no MPI */
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        }
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_world);
    options o = parse_options(argc, argv);
    char why[8192] = "";

    /* data */
    token_data all = {0}, train = {0}, val = {0};
    check_all(data_load(o.data, &all, why, sizeof why) == 0, why);
    if (o.val_data != NULL) {
        train = all;
        check_all(data_load(o.val_data, &val, why, sizeof why) == 0, why);
        if (val.vocab_size != train.vocab_size)
            die("--val-data %s has vocabulary %d, --data %d", o.val_data, val.vocab_size,
                train.vocab_size);
    } else {
        if (data_split(&all, 0.1, &train, &val) != 0) die("out of memory splitting the data");
        data_free(&all);
    }
    gpt2_config cfg = model_config(&o, train.vocab_size);
    int B = o.batch, T = o.seq ? o.seq : cfg.max_seq_len;
    if (T > cfg.max_seq_len)
        die("--seq %d is longer than the model's position table (%d)", T, cfg.max_seq_len);
    o.seq = T;
    if (data_windows(&train, B, T) == 0)
        die("--data %s: %zu training tokens, too short for one batch of %d x %d + 1", o.data,
            train.n, B, T);
    if (data_windows(&val, B, T) == 0)
        die("validation data: %zu tokens, too short for one batch of %d x %d + 1", val.n, B, T);

    /* model */
    gpt2 model;
    if (gpt2_build(&model, &cfg) != 0) die("out of memory for %d-layer model", cfg.num_layers);
    if (o.init != NULL) {
        check_all(ckpt_load_model(o.init, &model, why, sizeof why) == 0, why);
    } else {
        gpt2_init_weights(&model, o.seed);
    }
    int* inputs = malloc((size_t)B * T * sizeof(int));
    int* targets = malloc((size_t)B * T * sizeof(int));
    if (inputs == NULL || targets == NULL) die("out of memory for a batch of %d x %d", B, T);

    /* reducer */
    edgc_tensor* tensors;
    size_t n_tensors;
    if (gpt2_layout(&model, &tensors, &n_tensors) != 0) die("out of memory for the layout");
    edgc_layout layout = {tensors, n_tensors, model.num_parameters};
    edgc_config rc = edgc_config_default();
    rc.mode = o.mode;
    rc.rank = o.rank;
    rc.total_steps = (uint64_t)o.steps;
    rc.r_max = o.r_max;
    rc.window = o.window;
    rc.alpha = o.alpha;
    rc.beta = o.beta;
    rc.warmup_fraction = o.edgc_warmup;
    rc.rule = o.rule;
    rc.rmax_rule = o.rmax_rule;
    rc.rmax_slack = o.rmax_slack;
    rc.warmup_sync = o.warmup_sync;
    rc.seed = 714;
    if (edgc_config_check(&rc, &layout, why, sizeof why) != EDGC_OK) die("compression: %s", why);
    edgc_reducer* red = NULL;
    edgc_status st = edgc_reducer_create_mpi(MPI_COMM_WORLD, &rc, &layout, &red);
    if (st != EDGC_OK) die("cannot create the reducer: %s", edgc_status_str(st));

    /* resume */
    int start = 0;
    double elapsed_before = 0.0;
    if (o.resume != NULL) {
        char path[4096];
        snprintf(path, sizeof path, "%s/model.bin", o.resume);
        check_all(ckpt_load_model(path, &model, why, sizeof why) == 0, why);
        state_path(path, sizeof path, o.resume, g_rank);
        train_state ts;
        void* blob = NULL;
        size_t blob_len = 0;
        int ok = ckpt_load_state(path, &ts, &model, &blob, &blob_len, why, sizeof why) == 0;
        if (ok && (ts.world != g_world || ts.batch != B || ts.seq != T)) {
            snprintf(why, sizeof why,
                     "%s was written by %lld ranks with --batch %lld --seq %lld; this run has "
                     "%d, %d, %d",
                     path, (long long)ts.world, (long long)ts.batch, (long long)ts.seq, g_world, B,
                     T);
            ok = 0;
        }
        if (ok && ts.total_steps != o.steps) {
            snprintf(
                why, sizeof why,
                "%s belongs to a run of --steps %lld; this run has --steps %d (the learning-rate "
                "schedule and the EDGC warm-up depend on it)",
                path, (long long)ts.total_steps, o.steps);
            ok = 0;
        }
        if (ok && ts.params_hash != ckpt_hash(model.params_memory, model.num_parameters * 4)) {
            snprintf(why, sizeof why, "%s does not belong to %s/model.bin (different weights)",
                     path, o.resume);
            ok = 0;
        }
        if (ok && ts.step > o.steps) {
            snprintf(why, sizeof why, "%s is at step %lld, beyond --steps %d", path,
                     (long long)ts.step, o.steps);
            ok = 0;
        }
        check_all(ok, why);
        st = edgc_reducer_load(red, blob, blob_len);
        free(blob);
        if (st != EDGC_OK) die("%s: reducer state: %s", path, edgc_reducer_last_error(red));
        start = (int)ts.step;
        elapsed_before = ts.elapsed_s;
    }

    say("edgc-train | %d ranks | model L=%d C=%d NH=%d T=%d V=%d | %.2f M parameters\n", g_world,
        cfg.num_layers, cfg.channels, cfg.num_heads, T, cfg.vocab_size, model.num_parameters / 1e6);
    say("data %s: %zu train / %zu val tokens | batch %d x %d per rank | %d steps from %d\n", o.data,
        train.n, val.n, B, T, o.steps, start);
    say("compression: %s", o.mode == EDGC_MODE_DENSE      ? "dense"
                           : o.mode == EDGC_MODE_POWERSGD ? "powersgd"
                                                          : "edgc");
    if (o.mode == EDGC_MODE_POWERSGD) say(" rank %d", o.rank);
    int window = edgc_config_window(&rc);
    if (o.mode == EDGC_MODE_EDGC)
        say(" (rule %s, r_max %s, window %d%s, warm-up %.0f%% %s)",
            o.rule == EDGC_RULE_TREND ? "trend"
            : o.rule == EDGC_RULE_CQM ? "cqm"
                                      : "error",
            o.r_max                           ? "given"
            : o.rmax_rule == EDGC_RMAX_BUDGET ? "profiled, budget rule"
                                              : "profiled, paper rule",
            window, o.window ? "" : " from --steps", o.edgc_warmup * 100,
            o.warmup_sync == EDGC_WARMUP_RMAX ? "at r_max" : "dense");
    say("\n");
    if (o.mode == EDGC_MODE_EDGC && (double)o.steps * (1.0 - o.edgc_warmup) < 2.0 * window)
        say("note: fewer than 2 windows of %d steps after warm-up: the rank will stay at r_max "
            "(pass a smaller --window)\n",
            window);

    FILE* log = NULL;
    if (o.log != NULL && g_rank == 0) {
        log = fopen(o.log, start > 0 ? "a" : "w");
        if (log == NULL)
            fprintf(stderr, "edgc-train: cannot write --log %s: %s\n", o.log, strerror(errno));
    }
    int log_ok = o.log == NULL || g_rank != 0 || log != NULL;
    MPI_Allreduce(MPI_IN_PLACE, &log_ok, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    if (!log_ok) die("cannot write --log %s", o.log);

    adamw_config ac = {0.9f, 0.95f, 1e-8f, o.weight_decay};
    double t_fwd = 0, t_bwd = 0, t_sync = 0, t_opt = 0, t_eval = 0, t_begin = now_s();
    int r_max_seen = -1; /* last r_max reported; -1: none yet */
    double val_loss = NAN;
    edgc_step_stats s = {0};
    uint64_t sent_total = 0, dense_total = 0;
    int skipped = 0;
    for (int step = start; step < o.steps; step++) {
        float lr = lr_at(step, o.steps, o.warmup, o.lr, o.schedule);
        double t0 = now_s();
        data_batch(&train, (size_t)step * g_world + g_rank, B, T, inputs, targets);
        gpt2_forward(&model, inputs, targets, B, T);
        double tf = now_s();
        gpt2_zero_grad(&model);
        gpt2_backward(&model);
        if (step == o.nan_step && g_rank == 0) model.grads_memory[0] = NAN;
        double t1 = now_s();
        st = edgc_reducer_step(red, model.grads_memory, &s);
        double t2 = now_s();
        if (st == EDGC_ERR_NONFINITE) {
            say("step %d: non-finite gradient on some rank; step skipped on all ranks\n", step + 1);
            skipped++;
            t_fwd += tf - t0;
            t_bwd += t1 - tf;
            continue;
        }
        if (st != EDGC_OK) die("step %d: %s", step + 1, edgc_reducer_last_error(red));
        double norm = clip_grad_norm(model.grads_memory, model.num_parameters, o.grad_clip);
        adamw_update(&model, lr, &ac, step + 1);
        double t3 = now_s();
        t_fwd += tf - t0;
        t_bwd += t1 - tf;
        t_sync += t2 - t1;
        t_opt += t3 - t2;
        sent_total = s.total_sent;
        dense_total = s.total_dense;
        double loss = model.mean_loss;
        MPI_Allreduce(MPI_IN_PLACE, &loss, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
        loss /= g_world;

        int stop_now = o.stop_after > 0 && step + 1 == o.stop_after;
        int last = step + 1 == o.steps || stop_now;
        if (o.hash_every > 0 && ((step + 1) % o.hash_every == 0 || last))
            check_weights_agree(&model, step + 1);
        int eval_now = (o.eval_every > 0 && (step + 1) % o.eval_every == 0) || last;
        if (eval_now) {
            double te = now_s();
            val_loss = evaluate(&model, &val, B, T, o.eval_batches, inputs, targets);
            t_eval += now_s() - te;
        }
        if (o.mode == EDGC_MODE_EDGC && s.phase != EDGC_PHASE_PROFILE && s.r_max != r_max_seen) {
            say("step %5d/%d | profiled: dense sync %.1f ms -> r_max %d%s\n", step + 1, o.steps,
                s.dense_sync_ms, s.r_max,
                s.r_max == 0 ? " (no rank saves time on this link: staying dense)" : "");
            r_max_seen = s.r_max;
        }
        if (log != NULL) {
            char h[32] = "null";
            if (s.entropy_sampled) snprintf(h, sizeof h, "%.6g", s.entropy);
            char vl[32] = "null";
            if (eval_now) snprintf(vl, sizeof vl, "%.6g", val_loss);
            char ce[32] = "null";
            if (isfinite(s.compression_error)) snprintf(ce, sizeof ce, "%.4g", s.compression_error);
            /* time_s: training time so far, evaluation excluded, for time-to-quality plots */
            fprintf(log,
                    "{\"step\":%d,\"loss\":%.6g,\"val_loss\":%s,\"lr\":%.6g,\"grad_norm\":%.6g,"
                    "\"rank\":%d,\"phase\":\"%s\",\"entropy\":%s,\"compression_error\":%s,"
                    "\"bytes_sent\":%llu,\"bytes_dense\":%llu,\"total_sent\":%llu,"
                    "\"sync_ms\":%.4g,\"forward_ms\":%.4g,\"backward_ms\":%.4g,"
                    "\"optimizer_ms\":%.4g,\"time_s\":%.4f}\n",
                    step + 1, loss, vl, lr, norm, s.rank, phase_name(&s), h, ce,
                    (unsigned long long)s.bytes_sent, (unsigned long long)s.bytes_dense,
                    (unsigned long long)s.total_sent, (t2 - t1) * 1e3, (tf - t0) * 1e3,
                    (t1 - tf) * 1e3, (t3 - t2) * 1e3, elapsed_before + now_s() - t_begin - t_eval);
            fflush(log);
        }
        if ((step + 1) % o.print_every == 0 || last || step == start) {
            double spent = now_s() - t_begin;
            double tok_s = (double)(step + 1 - start) * B * T * g_world / spent;
            char eta[32];
            fmt_duration(eta, sizeof eta, spent / (step + 1 - start) * (o.steps - step - 1));
            say("step %5d/%d | loss %.4f | %7.0f tok/s | %-8s r=%-3d | %6.3f / %6.3f MB | "
                "ratio %5.1fx | ETA %s\n",
                step + 1, o.steps, loss, tok_s, phase_name(&s), s.rank, s.bytes_sent / 1e6,
                s.bytes_dense / 1e6, dense_total ? (double)dense_total / sent_total : 1.0, eta);
        }
        if (eval_now) say("step %5d/%d | val loss %.4f\n", step + 1, o.steps, val_loss);
        if (o.out != NULL && ((o.ckpt_every > 0 && (step + 1) % o.ckpt_every == 0) || last))
            save_checkpoint(&o, &model, red, step + 1, elapsed_before + now_s() - t_begin);
        if (stop_now) {
            say("stopped after step %d as asked (--stop-after)%s\n", step + 1,
                o.out ? "; continue with --resume" : "");
            o.steps = step + 1; /* for the summary below */
            break;
        }
    }
    double total_s = now_s() - t_begin;
    if (log != NULL) fclose(log);
    if (start >= o.steps) val_loss = evaluate(&model, &val, B, T, o.eval_batches, inputs, targets);

    double busy = t_fwd + t_bwd + t_sync + t_opt;
    double tok_s = (o.steps - start) * (double)B * T * g_world / total_s;
    double gflops = gpt2_flops_per_token(&cfg, T) * tok_s / 1e9;
    double ratio = sent_total ? (double)dense_total / sent_total : 1.0;
    say("\ndone: %d steps in %.1f s | final val loss %.4f", o.steps - start, total_s, val_loss);
    if (skipped) say(" | %d steps skipped (non-finite gradients)", skipped);
    say("\nsent %.1f MB vs %.1f MB dense: %.1fx less\n", sent_total / 1e6, dense_total / 1e6,
        ratio);
    say("time: forward %.1f s (%.0f%%), backward %.1f s (%.0f%%), sync %.1f s (%.0f%%), "
        "optimizer %.1f s (%.0f%%)\n",
        t_fwd, 100 * t_fwd / busy, t_bwd, 100 * t_bwd / busy, t_sync, 100 * t_sync / busy, t_opt,
        100 * t_opt / busy);
    say("throughput: %.0f tokens/s, %.2f GFLOP/s (model flops)\n", tok_s, gflops);
    if (o.mode == EDGC_MODE_EDGC && isfinite(s.dense_sync_ms)) {
        /* the profile timed dense steps on this very link: what a dense run would have paid */
        double dense_sync = s.dense_sync_ms * 1e-3 * (o.steps - start);
        say("dense would have spent %.1f s in sync at the measured %.1f ms per step (this run: "
            "%.1f s): %.1f s, %.0f%% of the dense run's time, saved\n",
            dense_sync, s.dense_sync_ms, t_sync, dense_sync - t_sync,
            100 * (dense_sync - t_sync) / (busy - t_sync + dense_sync));
    }
    /* one machine-readable line for scripts */
    say("summary: steps=%d val_loss=%.5f sent_mb=%.3f dense_mb=%.3f tok_s=%.1f gflops=%.3f "
        "fwd_pct=%.1f bwd_pct=%.1f sync_pct=%.1f opt_pct=%.1f train_s=%.2f\n",
        o.steps - start, val_loss, sent_total / 1e6, dense_total / 1e6, tok_s, gflops,
        100 * t_fwd / busy, 100 * t_bwd / busy, 100 * t_sync / busy, 100 * t_opt / busy,
        total_s - t_eval);
    generate(&model, o.sample_len, o.seed);

    edgc_reducer_free(red);
    free(tensors);
    free(inputs);
    free(targets);
    gpt2_free(&model);
    data_free(&train);
    data_free(&val);
    MPI_Finalize();
    return 0;
}
