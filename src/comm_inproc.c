/*
 * comm_inproc.c - an in-process communicator: `size` workers, one thread each, meeting at a
 * barrier. It is the reference the other backends are tested against, so it is exact and
 * deterministic: every worker sums the contributions in worker order and gets the same bits.
 * Not a performance path.
 */
#define _POSIX_C_SOURCE 200809L
#include "edgc_internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct inproc_member {
    struct edgc_inproc* group;
    int rank;
    float* scratch; /* this worker's sum, grown on demand */
    size_t scratch_cap;
} inproc_member;

struct edgc_inproc {
    int size;
    pthread_barrier_t barrier;
    void** slots;   /* per worker: the buffer it contributes to the current collective */
    size_t* counts; /* per worker: its element count, to catch mismatched calls */
    int* failed;    /* per worker: 1 if it could not take part (no memory) */
    inproc_member* members;
};

edgc_status edgc_inproc_create(int size, edgc_inproc** out)
{
    EDGC_RETURN_IF(out == NULL || size < 1, EDGC_ERR_INVALID_ARG);
    *out = NULL;
    edgc_inproc* g = calloc(1, sizeof *g);
    if (g == NULL) return EDGC_ERR_NOMEM;
    g->size = size;
    g->slots = calloc((size_t)size, sizeof *g->slots);
    g->counts = calloc((size_t)size, sizeof *g->counts);
    g->failed = calloc((size_t)size, sizeof *g->failed);
    g->members = calloc((size_t)size, sizeof *g->members);
    if (g->slots == NULL || g->counts == NULL || g->failed == NULL || g->members == NULL ||
        pthread_barrier_init(&g->barrier, NULL, (unsigned)size) != 0) {
        free(g->slots);
        free(g->counts);
        free(g->failed);
        free(g->members);
        free(g);
        return EDGC_ERR_NOMEM;
    }
    for (int r = 0; r < size; r++)
        g->members[r] = (inproc_member){.group = g, .rank = r};
    *out = g;
    return EDGC_OK;
}

void edgc_inproc_free(edgc_inproc* g)
{
    if (g == NULL) return;
    for (int r = 0; r < g->size; r++)
        free(g->members[r].scratch);
    pthread_barrier_destroy(&g->barrier);
    free(g->slots);
    free(g->counts);
    free(g->failed);
    free(g->members);
    free(g);
}

/* Publishes this worker's buffer, waits for all, and checks that every worker called with the
 * same count and could take part. Returns the agreed status, the same on every worker. */
static edgc_status gather(inproc_member* me, void* buf, size_t n, size_t scratch_bytes)
{
    edgc_inproc* g = me->group;
    int nomem = 0;
    if (scratch_bytes > me->scratch_cap * sizeof(float)) {
        float* s = realloc(me->scratch, scratch_bytes);
        if (s == NULL) {
            nomem = 1;
        } else {
            me->scratch = s;
            me->scratch_cap = scratch_bytes / sizeof(float);
        }
    }
    g->slots[me->rank] = buf;
    g->counts[me->rank] = n;
    g->failed[me->rank] = nomem;
    pthread_barrier_wait(&g->barrier);
    edgc_status st = EDGC_OK;
    for (int r = 0; r < g->size; r++) {
        if (g->counts[r] != n) st = EDGC_ERR_COMM;
        if (g->failed[r]) st = st == EDGC_OK ? EDGC_ERR_NOMEM : st;
    }
    return st;
}

static edgc_status inproc_allreduce_sum_f32(void* ctx, float* buf, size_t n)
{
    inproc_member* me = ctx;
    edgc_inproc* g = me->group;
    edgc_status st = gather(me, buf, n, n * sizeof(float));
    if (st == EDGC_OK) {
        memset(me->scratch, 0, n * sizeof(float));
        for (int r = 0; r < g->size; r++) {
            const float* src = g->slots[r];
            for (size_t i = 0; i < n; i++)
                me->scratch[i] += src[i];
        }
    }
    pthread_barrier_wait(&g->barrier); /* nobody writes a buffer another worker still reads */
    if (st == EDGC_OK) memcpy(buf, me->scratch, n * sizeof(float));
    return st;
}

static edgc_status inproc_allreduce_max_i32(void* ctx, int32_t* buf, size_t n)
{
    inproc_member* me = ctx;
    edgc_inproc* g = me->group;
    edgc_status st = gather(me, buf, n, n * sizeof(int32_t));
    int32_t* acc = (int32_t*)(void*)me->scratch;
    if (st == EDGC_OK) {
        memcpy(acc, g->slots[0], n * sizeof(int32_t));
        for (int r = 1; r < g->size; r++) {
            const int32_t* src = g->slots[r];
            for (size_t i = 0; i < n; i++)
                acc[i] = src[i] > acc[i] ? src[i] : acc[i];
        }
    }
    pthread_barrier_wait(&g->barrier);
    if (st == EDGC_OK) memcpy(buf, acc, n * sizeof(int32_t));
    return st;
}

static edgc_status inproc_broadcast(void* ctx, void* buf, size_t bytes, int root)
{
    inproc_member* me = ctx;
    edgc_inproc* g = me->group;
    if (root < 0 || root >= g->size) root = -1; /* every worker sees the same bad root */
    edgc_status st = gather(me, buf, bytes, 0);
    if (root < 0) st = EDGC_ERR_INVALID_ARG;
    if (st == EDGC_OK && me->rank != root) memcpy(buf, g->slots[root], bytes);
    pthread_barrier_wait(&g->barrier);
    return st;
}

/* The "non-blocking" allreduce completes at once; it exists so the engine's overlap path (start,
 * poll, wait) runs under the same tests as everything else. */
static edgc_status inproc_iallreduce_sum_f32(void* ctx, float* buf, size_t n, void** request)
{
    *request = ctx;
    return inproc_allreduce_sum_f32(ctx, buf, n);
}

static edgc_status inproc_test(void* ctx, void* request, int* done)
{
    (void)ctx;
    (void)request;
    *done = 1;
    return EDGC_OK;
}

static edgc_status inproc_wait(void* ctx, void* request)
{
    (void)ctx;
    (void)request;
    return EDGC_OK;
}

edgc_status edgc_inproc_comm(edgc_inproc* g, int rank, edgc_comm* out)
{
    EDGC_RETURN_IF(g == NULL || out == NULL || rank < 0 || rank >= g->size, EDGC_ERR_INVALID_ARG);
    *out = (edgc_comm){
        .ctx = &g->members[rank],
        .rank = rank,
        .size = g->size,
        .allreduce_sum_f32 = inproc_allreduce_sum_f32,
        .allreduce_max_i32 = inproc_allreduce_max_i32,
        .broadcast = inproc_broadcast,
        .iallreduce_sum_f32 = inproc_iallreduce_sum_f32,
        .test = inproc_test,
        .wait = inproc_wait,
    };
    return EDGC_OK;
}
