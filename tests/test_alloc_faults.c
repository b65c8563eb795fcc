/* test_alloc_faults.c - every allocation the reducer makes, failed in turn on one of two
 * in-process workers: each failure must be answered EDGC_ERR_NOMEM on both workers (no worker
 * left waiting in a collective), change nothing, and a retry must end on the bits of a run
 * without failures (scenario in alloc_faults.h). The MPI twin is test_alloc_faults_mpi.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "alloc_faults.h"

typedef struct fault_job {
    edgc_config cfg;
    fault_run* run;
    int worker;
} fault_job;

static edgc_status create_inproc(const void* ctx, const edgc_config* cfg, edgc_reducer** out)
{
    return edgc_reducer_create(cfg, &fault_layout, ctx, out);
}

static void fault_worker(void* arg, const edgc_comm* comm)
{
    fault_job* j = arg;
    /* The group's scratch buffer grows at its first use of a size; grown here, before counting,
     * so that the injected failures are the library's own. */
    float warm[FAULT_TOTAL] = {0};
    if (comm->allreduce_sum_f32(comm->ctx, warm, FAULT_TOTAL) != EDGC_OK) abort();
    fault_scenario(j->run, &j->cfg, create_inproc, comm, j->worker);
}

/* 1 if two workers' calls were answered alike, in the same order. */
static int fault_same_answers(const fault_run* a, const fault_run* b)
{
    return a->n_status == b->n_status &&
           memcmp(a->status, b->status, (size_t)a->n_status * sizeof a->status[0]) == 0;
}

/* Runs the scenario on two workers; worker 1's fail_at-th allocation fails. */
static void run_pair(const edgc_config* cfg, long fail_at, fault_run* runs)
{
    memset(runs, 0, 2 * sizeof *runs);
    runs[1].fail_at = fail_at;
    fault_job jobs[2] = {{*cfg, &runs[0], 0}, {*cfg, &runs[1], 1}};
    assert_int_equal(run_workers(2, fault_worker, jobs, sizeof jobs[0]), 0);
}

static void test_every_allocation_fails_everywhere_and_changes_nothing(void** state)
{
    (void)state;
    fault_run* ref = calloc(2, sizeof *ref);
    fault_run* runs = calloc(2, sizeof *runs);
    assert_non_null(ref);
    assert_non_null(runs);
    for (int c = 0; c < FAULT_CONFIGS; c++) {
        edgc_config cfg = fault_config(c);
        fault_watchdog(60);
        run_pair(&cfg, 0, ref);
        for (int w = 0; w < 2; w++) {
            assert_false(ref[w].failed);
            assert_int_equal(ref[w].nomem, 0);
            assert_int_equal(ref[w].step, FAULT_STEPS - 1);
        }
        long total = ref[1].allocs;
        assert_true(total >= 8); /* reducer, engine, controller, sampler, buffers, twice */
        for (long n = 1; n <= total; n++) {
            fault_watchdog(60);
            run_pair(&cfg, n, runs);
            for (int w = 0; w < 2; w++) {
                if (runs[w].failed || runs[w].nomem != 1)
                    fprintf(stderr,
                            "config %d, allocation %ld of %ld: worker %d failed %d, "
                            "%d answers NOMEM\n",
                            c, n, total, w, runs[w].failed, runs[w].nomem);
                assert_false(runs[w].failed);
                assert_int_equal(runs[w].nomem, 1);
                assert_int_equal(runs[w].step, ref[w].step);
                assert_memory_equal(runs[w].grad, ref[w].grad, sizeof ref[w].grad);
            }
            assert_true(fault_same_answers(&runs[0], &runs[1]));
            /* the only difference from the reference: one call answered NOMEM and retried */
            assert_int_equal(runs[1].n_status, ref[1].n_status + 1);
        }
    }
    fault_watchdog(0);
    free(ref);
    free(runs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_allocation_fails_everywhere_and_changes_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
