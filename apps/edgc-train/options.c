/*
 * options.c - edgc-train's command line; see options.h.
 */
#define _POSIX_C_SOURCE 200809L
#include "options.h"

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "grad_dump.h"
#include "ranks.h"

/* The first bad option, agreed across ranks once parsing is done: a rank that stopped alone would
 * leave the others waiting in their first collective. */
static char parse_error[512];

/* Names of the enumerated options, in their enums' order. */
const char* const OPTIONS_RULES[] = {"trend", "cqm", "error", "decay", NULL};
static const char* const RMAX_RULES[] = {"budget", "paper", NULL};
static const char* const WARMUP_SYNCS[] = {"rmax", "dense", NULL};
const char* const OPTIONS_WAM[] = {"on", "off", "paper", NULL};

static void fail(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
static void fail(const char* fmt, ...)
{
    if (parse_error[0] != '\0') return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(parse_error, sizeof parse_error, fmt, ap);
    va_end(ap);
}

void options_usage(FILE* f)
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
        "  --batch B            sequences per data-parallel replica per step (default 8)\n"
        "  --pp P               pipeline stages (default 1); the world is P x replicas, stage s\n"
        "                       of replica d on rank s x replicas + d; 1F1B schedule\n"
        "  --micro-batches M    micro-batches per step, M >= P, dividing --batch (default P)\n"
        "  --steps N            optimizer steps (default 600)\n"
        "  --lr X               peak learning rate (default 1e-3)\n"
        "  --lr-schedule S      constant | cosine (default cosine: to lr/10 at the end)\n"
        "  --warmup N           linear learning-rate warm-up steps (default 20)\n"
        "  --weight-decay X     AdamW decoupled decay on matrices and embeddings (default 0.01)\n"
        "  --grad-clip X        global gradient-norm clip after synchronisation, 0 = off (default "
        "1)\n"
        "  --seed N             initialisation and sampling seed (default 1337)\n"
        "  --threads N          threads inside each rank for the matmuls (OpenBLAS), the\n"
        "                       optimizer and the compression's element-wise passes (OpenMP);\n"
        "                       default 0: the CPUs this rank may run on, shared with\n"
        "                       the ranks of this node that may run on them too (mpirun\n"
        "                       binds each rank to one core unless --bind-to none or\n"
        "                       oversubscribed);\n"
        "                       with N > 1 set OMP_WAIT_POLICY=passive (see README)\n"
        "compression\n"
        "  --compress M         dense | powersgd:R | edgc (default edgc)\n"
        "  --rmax R             EDGC rank ceiling; 0 = profile it at start-up (default 0)\n"
        "  --rmin R             EDGC rank floor; 0 = r_max / 3 (default 0)\n"
        "  --rmax-rule R        how profiling picks r_max: budget (the largest measured rank "
        "whose\n"
        "                       step is within --rmax-slack of the best saving; default) | paper\n"
        "                       (the largest rank still faster than dense, interpolated)\n"
        "  --rmax-slack X       budget rule: share of the best step-time saving traded for rank\n"
        "                       (default 0.25)\n"
        "  --window W           EDGC window: steps between rank decisions (default 0: --steps / "
        "20,\n"
        "                       at most 1000)\n"
        "  --alpha A --beta B   EDGC entropy sampling rates ISR and GSR (default 0.1, 0.25)\n"
        "  --edgc-warmup F      fraction of the run before the rank adapts (default 0.2)\n"
        "  --warmup-sync S      warm-up synchronisation: rmax (compressed at r_max; default) | "
        "dense\n"
        "  --rule R             decay (r_max down to r_max/3 over the run; default) | trend\n"
        "                       (the authors' entropy trend) | error | cqm\n"
        "  --wam W              with --pp: off (default): every stage takes stage 0's rank |\n"
        "                       on: later stages spend the 1F1B slack on a higher rank, r_max at\n"
        "                       most | paper: the authors' rule, dense when the slack buys more\n"
        "                       than r_max (docs/ALGORITHM.md 7 says why off is the default)\n"
        "output\n"
        "  --eval-every N       validation loss every N steps (default 100; 0 = only at the end)\n"
        "  --eval-batches N     validation batches, from the start of the validation data (default "
        "8)\n"
        "  --print-every N      progress line every N steps (default 10)\n"
        "  --log FILE.jsonl     one JSON object per step\n"
        "  --dump-grads DIR --dump-steps LIST\n"
        "                       study aid: write the synchronised gradient of the steps in LIST\n"
        "                       (1-based, e.g. 61-70,201) to DIR/grad-SSSSSSSS.f32 (raw float32)\n"
        "                       with the layout in DIR/layout.txt (dev/spectrum/spectrum.py reads "
        "them)\n"
        "  --out DIR            checkpoints: DIR/step-NNNNNNNN/ holds model.bin (llm.c format),\n"
        "                       state.rankR.bin and a MANIFEST; DIR/latest points to the newest\n"
        "                       complete one (written at the end and every --checkpoint-every N)\n"
        "  --checkpoint-every N also checkpoint every N steps (default 0: only at the end)\n"
        "  --keep-checkpoints K keep the newest K checkpoints in --out (default 2)\n"
        "  --resume DIR         continue exactly where DIR's newest complete checkpoint stopped "
        "(DIR\n"
        "                       may also name one step directory; same --steps, --batch, --seq "
        "and\n"
        "                       number of ranks)\n"
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
        fail("%s %s: expected an integer in [%ld, %ld]", flag, s, lo, hi);
    return v;
}

static double parse_double(const char* flag, const char* s, double lo, double hi)
{
    char* end;
    errno = 0;
    double v = strtod(s, &end);
    if (*s == '\0' || *end != '\0' || errno != 0 || !(v >= lo && v <= hi))
        fail("%s %s: expected a number in [%g, %g]", flag, s, lo, hi);
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
    fail("%s %s: expected %s", flag, s, list);
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
        fail("--compress %s: expected dense, powersgd:R or edgc", s);
    }
}

options options_parse(int argc, char** argv)
{
    const edgc_config lib = edgc_config_default(); /* the library owns the EDGC defaults */
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
        .keep_ckpt = 2,
        .pp = 1,
        .wam = WAM_OFF, /* spending the slack lost in the pipeline benchmark */
        .lr = 1e-3f,
        .weight_decay = 0.01f,
        .grad_clip = 1.0f,
        .schedule = LR_COSINE,
        .seed = 1337,
        .data = "data/kjv.txt",
        .mode = EDGC_MODE_EDGC,
        .rank = 4,
        .window = 0,
        .rmax_slack = lib.rmax_slack,
        .rule = lib.rule,
        .alpha = lib.alpha,
        .beta = lib.beta,
        .edgc_warmup = lib.warmup_fraction,
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
        O_RMIN,
        O_WINDOW,
        O_ALPHA,
        O_BETA,
        O_EWARM,
        O_RULE,
        O_EVAL,
        O_EVALB,
        O_PRINT,
        O_LOG,
        O_DUMP_DIR,
        O_DUMP_STEPS,
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
        O_WARM_SYNC,
        O_KEEP,
        O_THREADS,
        O_PP,
        O_MICRO,
        O_WAM
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
                                             {"rmin", required_argument, 0, O_RMIN},
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
                                             {"dump-grads", required_argument, 0, O_DUMP_DIR},
                                             {"dump-steps", required_argument, 0, O_DUMP_STEPS},
                                             {"out", required_argument, 0, O_OUT},
                                             {"resume", required_argument, 0, O_RESUME},
                                             {"hash-every", required_argument, 0, O_HASH},
                                             {"checkpoint-every", required_argument, 0, O_CKPT},
                                             {"sample-len", required_argument, 0, O_SAMPLE},
                                             {"debug-nan-step", required_argument, 0, O_NAN},
                                             {"stop-after", required_argument, 0, O_STOP},
                                             {"keep-checkpoints", required_argument, 0, O_KEEP},
                                             {"threads", required_argument, 0, O_THREADS},
                                             {"pp", required_argument, 0, O_PP},
                                             {"micro-batches", required_argument, 0, O_MICRO},
                                             {"wam", required_argument, 0, O_WAM},
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
        case O_RMIN:
            o.r_min = (int)parse_long("--rmin", optarg, 0, 65536);
            break;
        case O_WINDOW:
            o.window = (int)parse_long("--window", optarg, 0, 1 << 30);
            if (o.window == 1) fail("--window 1: expected 0 (derived) or at least 2");
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
            o.rule = (edgc_rank_rule)parse_choice("--rule", optarg, OPTIONS_RULES);
            break;
        case O_RMAX_RULE:
            o.rmax_rule = (edgc_rmax_rule)parse_choice("--rmax-rule", optarg, RMAX_RULES);
            break;
        case O_RMAX_SLACK:
            o.rmax_slack = parse_double("--rmax-slack", optarg, 0.0, 1.0);
            break;
        case O_WARM_SYNC:
            o.warmup_sync = (edgc_warmup_sync)parse_choice("--warmup-sync", optarg, WARMUP_SYNCS);
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
        case O_DUMP_DIR:
            o.dump_dir = optarg;
            break;
        case O_DUMP_STEPS: {
            char why[256];
            if (grad_dump_steps_check(optarg, why, sizeof why) != 0) fail("%s", why);
            o.dump_steps = optarg;
            break;
        }
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
        case O_THREADS:
            o.threads = (int)parse_long("--threads", optarg, 0, 4096);
            break;
        case O_PP:
            o.pp = (int)parse_long("--pp", optarg, 1, 1000);
            break;
        case O_MICRO:
            o.micro = (int)parse_long("--micro-batches", optarg, 1, 1 << 20);
            break;
        case O_WAM:
            o.wam = (wam_choice)parse_choice("--wam", optarg, OPTIONS_WAM);
            break;
        case O_KEEP:
            o.keep_ckpt = (int)parse_long("--keep-checkpoints", optarg, 1, 1 << 20);
            break;
        case 'h':
            options_usage(stdout);
            exit(0);
        default:
            fail("unknown option or missing value: '%s' (see --help)", argv[optind - 1]);
        }
    }
    if (optind < argc) fail("unexpected argument '%s' (see --help)", argv[optind]);
    if ((o.dump_dir == NULL) != (o.dump_steps == NULL))
        fail("--dump-grads and --dump-steps go together (a directory and the steps to write)");
    if (o.micro == 0) o.micro = o.pp; /* the fewest a pipeline of --pp stages can run with */
    check_all(parse_error[0] == '\0', parse_error);
    return o;
}

static const char* mode_text(const options* o, char* buf, size_t n)
{
    if (o->mode == EDGC_MODE_POWERSGD)
        snprintf(buf, n, "powersgd:%d", o->rank);
    else
        snprintf(buf, n, "%s", o->mode == EDGC_MODE_DENSE ? "dense" : "edgc");
    return buf;
}

void options_agree(const options* o)
{
    enum { N = 32, LEN = 256 }; /* room for every AGREE below */
    char v[N][LEN], mode[32];
    const char* names[N];
    size_t n = 0;
#define AGREE(name, ...) (names[n] = (name), snprintf(v[n], LEN, __VA_ARGS__), n++)
    AGREE("--preset", "%s", o->preset);
    AGREE("--layers", "%d", o->layers);
    AGREE("--dim", "%d", o->dim);
    AGREE("--heads", "%d", o->heads);
    AGREE("--seq", "%d", o->seq);
    AGREE("--batch", "%d", o->batch);
    AGREE("--pp/--micro-batches", "%d/%d", o->pp, o->micro);
    AGREE("--steps", "%d", o->steps);
    AGREE("--lr", "%.9g", o->lr);
    AGREE("--lr-schedule", "%s", o->schedule == LR_COSINE ? "cosine" : "constant");
    AGREE("--warmup", "%d", o->warmup);
    AGREE("--weight-decay", "%.9g", o->weight_decay);
    AGREE("--grad-clip", "%.9g", o->grad_clip);
    AGREE("--seed", "%llu", (unsigned long long)o->seed);
    AGREE("--compress", "%s", mode_text(o, mode, sizeof mode));
    AGREE("--rmax", "%d", o->r_max);
    AGREE("--rmin", "%d", o->r_min);
    AGREE("--window", "%d", o->window);
    AGREE("--alpha/--beta", "%.9g/%.9g", o->alpha, o->beta);
    AGREE("--edgc-warmup", "%.9g", o->edgc_warmup);
    AGREE("--rule", "%s", OPTIONS_RULES[o->rule]);
    AGREE("--rmax-rule", "%s", RMAX_RULES[o->rmax_rule]);
    AGREE("--rmax-slack", "%.9g", o->rmax_slack);
    AGREE("--warmup-sync", "%s", WARMUP_SYNCS[o->warmup_sync]);
    AGREE("--wam", "%s", OPTIONS_WAM[o->wam]);
    /* the cadence of collective work: evaluation, weight checks, checkpoints, the stop */
    AGREE("--eval-every/--eval-batches", "%d/%d", o->eval_every, o->eval_batches);
    AGREE("--hash-every", "%d", o->hash_every);
    AGREE("--checkpoint-every/--keep-checkpoints", "%d/%d", o->ckpt_every, o->keep_ckpt);
    AGREE("--stop-after", "%d", o->stop_after);
    /* paths every rank writes into or reads its own state from (data is compared by content) */
    AGREE("--out", "%.250s", o->out ? o->out : "(none)");
    AGREE("--resume", "%.250s", o->resume ? o->resume : "(none)");
#undef AGREE
    const char* values[N];
    for (size_t i = 0; i < n; i++)
        values[i] = v[i];
    agree_values(names, values, n);
}

/* The model shape: --init's header (init, already read), or the preset with explicit overrides. */
gpt2_config options_model(const options* o, const gpt2_config* init, int vocab)
{
    gpt2_config c = {0};
    char why[512];
    if (init != NULL) {
        if (o->layers || o->dim || o->heads)
            die("--init takes the model shape from its header; drop --layers/--dim/--heads");
        if (init->vocab_size != vocab)
            die("--init %s has vocabulary %d but the data has %d%s", o->init, init->vocab_size,
                vocab, vocab == 256 ? " (text is read as bytes)" : "");
        return *init;
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
