/*
 * alloc_faults.h - allocation failures on demand, and the scenario the fault tests run under
 * them. A test binary that includes this file is linked with --wrap=malloc, --wrap=calloc and
 * --wrap=realloc, so every allocation the library makes goes through the wrappers below. A thread
 * that arms them with n has the n-th allocation it makes from then on fail, once; each thread
 * counts its own, so one worker of a group can run out of memory while the others do not.
 *
 * The scenario: create a reducer, 40 steps with a save, a fresh reducer and a load half way,
 * retrying each call that answers EDGC_ERR_NOMEM. A failed allocation must fail that call on
 * every worker alike (none left waiting in a collective) and change nothing, so the run ends
 * with the bits of a run without the failure.
 */
#ifndef EDGC_ALLOC_FAULTS_H
#define EDGC_ALLOC_FAULTS_H

#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "edgc.h"
#include "testutil.h"

void* __real_malloc(size_t n);
void* __real_calloc(size_t n, size_t size);
void* __real_realloc(void* p, size_t n);
void* __wrap_malloc(size_t n);
void* __wrap_calloc(size_t n, size_t size);
void* __wrap_realloc(void* p, size_t n);

static _Thread_local int fault_armed;
static _Thread_local long fault_count, fault_at;

/* Counts this thread's allocations from now; the n-th fails (n = 0: none fails). */
static void fault_arm(long n)
{
    fault_armed = 1;
    fault_count = 0;
    fault_at = n;
}

/* Stops counting; returns the allocations counted since fault_arm. */
static long fault_disarm(void)
{
    fault_armed = 0;
    return fault_count;
}

static int fault_fires(void)
{
    return fault_armed && ++fault_count == fault_at;
}

void* __wrap_malloc(size_t n)
{
    return fault_fires() ? NULL : __real_malloc(n);
}

void* __wrap_calloc(size_t n, size_t size)
{
    return fault_fires() ? NULL : __real_calloc(n, size);
}

void* __wrap_realloc(void* p, size_t n)
{
    return fault_fires() ? NULL : __real_realloc(p, n);
}

/* A worker stuck for a minute after a failed allocation (a hang) ends the test binary. */
static void fault_on_alarm(int sig)
{
    (void)sig;
    static const char msg[] =
        "alloc faults: a worker is stuck (a hang after a failed allocation)\n";
    if (write(2, msg, sizeof msg - 1) < 0) _exit(1);
    _exit(1);
}

/* (Re)starts the watchdog: the next `seconds` must see the next call of this. 0 stops it. */
static void fault_watchdog(unsigned seconds)
{
    signal(SIGALRM, fault_on_alarm);
    alarm(seconds);
}

/* Two matrices and a bias. */
enum { FAULT_TOTAL = 16 * 12 + 12 * 20 + 7, FAULT_STEPS = 40, FAULT_CALLS = 128 };
static const edgc_tensor fault_tensors[] = {{0, 16, 12}, {192, 12, 20}, {432, 7, 1}};
static const edgc_layout fault_layout = {fault_tensors, 3, FAULT_TOTAL};

typedef struct fault_run {
    long fail_at; /* in: this worker's n-th allocation fails; 0: none (it only counts) */
    long allocs;  /* out: allocations this worker made in the scenario */
    int n_status; /* out: the status of every call, in order */
    edgc_status status[FAULT_CALLS];
    int nomem;  /* out: calls answered EDGC_ERR_NOMEM */
    int failed; /* out: a call answered something else than OK or NOMEM, or NOMEM 3 times */
    float grad[FAULT_TOTAL]; /* out: the last step's synchronised gradient */
    uint64_t step;           /* out: the last step's number */
    unsigned char blob[1 << 16];
} fault_run;

/* How the scenario makes a reducer: over the in-process group or over MPI. */
typedef edgc_status (*fault_create_fn)(const void* ctx, const edgc_config* cfg, edgc_reducer** out);

/* Records a call's status; 0 when the call is to be retried (it ran out of memory). */
static int fault_settled(fault_run* f, edgc_status st)
{
    if (f->n_status < FAULT_CALLS)
        f->status[f->n_status++] = st;
    else
        f->failed = 1;
    if (st == EDGC_ERR_NOMEM && ++f->nomem < 3) return 0;
    if (st != EDGC_OK) f->failed = 1;
    return 1;
}

static void fault_gradient(float* g, int worker, int step)
{
    test_rng rng = {(uint64_t)(1000 * worker + step + 1)};
    test_gaussian(&rng, g, FAULT_TOTAL, 1.0 + 0.05 * step);
}

static void fault_scenario(fault_run* f, const edgc_config* cfg, fault_create_fn create,
                           const void* ctx, int worker)
{
    edgc_reducer* r = NULL;
    edgc_step_stats stats = {0};
    fault_arm(f->fail_at);
    while (!fault_settled(f, create(ctx, cfg, &r)))
        ;
    for (int s = 0; s < FAULT_STEPS && !f->failed; s++) {
        if (s == FAULT_STEPS / 2) { /* a checkpoint, restored into a new reducer */
            size_t len = 0;
            fault_settled(f, edgc_reducer_save(r, f->blob, sizeof f->blob, &len));
            edgc_reducer_free(r);
            r = NULL;
            while (!f->failed && !fault_settled(f, create(ctx, cfg, &r)))
                ;
            while (!f->failed && !fault_settled(f, edgc_reducer_load(r, f->blob, len)))
                ;
            if (f->failed) break;
        }
        do
            fault_gradient(f->grad, worker, s);
        while (!fault_settled(f, edgc_reducer_step(r, f->grad, &stats)));
    }
    f->allocs = fault_disarm();
    f->step = stats.step;
    edgc_reducer_free(r);
}

/* The configurations the scenario runs: EDGC with a rank that grows past the engine's first one
 * and an entropy history that outgrows total_steps, static PowerSGD, dense, and EDGC under CQM. */
static edgc_config fault_config(int which)
{
    edgc_config c = edgc_config_default();
    c.threads = 1;
    if (which == 0 || which == 3) {
        c.mode = EDGC_MODE_EDGC;
        c.r_max = 8; /* the engine starts at c.rank = 4: the first step grows it */
        c.total_steps = 12;
        c.alpha = 0.5;
        if (which == 3) c.rule = EDGC_RULE_CQM; /* its error curves are allocated at creation */
    } else if (which == 1) {
        c.mode = EDGC_MODE_POWERSGD;
        c.rank = 6;
    } else {
        c.mode = EDGC_MODE_DENSE;
    }
    return c;
}
enum { FAULT_CONFIGS = 4 };

#endif
