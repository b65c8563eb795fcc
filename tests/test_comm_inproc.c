/* test_comm_inproc.c - the in-process communicator: exact, identical on every worker, and a
 * mismatched call returns an error on every worker instead of hanging. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>

#include "testutil.h"

enum { W = 4, N = 1000 };

typedef struct job {
    float buf[N];
    int32_t ints[3];
    char text[16];
    edgc_status st_sum, st_max, st_bcast, st_bad;
    size_t bad_n;
} job;

static void worker(void* arg, const edgc_comm* c)
{
    job* j = arg;
    for (int i = 0; i < N; i++)
        j->buf[i] = (float)(c->rank + 1) * 0.1f + (float)i;
    j->st_sum = c->allreduce_sum_f32(c->ctx, j->buf, N);
    j->ints[0] = c->rank;
    j->ints[1] = -c->rank;
    j->ints[2] = 7;
    j->st_max = c->allreduce_max_i32(c->ctx, j->ints, 3);
    snprintf(j->text, sizeof j->text, "from %d", c->rank);
    j->st_bcast = c->broadcast(c->ctx, j->text, sizeof j->text, 2);
    /* worker 1 passes a different count: all must fail, none may hang */
    j->st_bad = c->allreduce_sum_f32(c->ctx, j->buf, j->bad_n);
}

static void test_collectives(void** state)
{
    (void)state;
    job* jobs = calloc(W, sizeof *jobs);
    for (int r = 0; r < W; r++)
        jobs[r].bad_n = r == 1 ? 5 : 4;
    assert_int_equal(run_workers(W, worker, jobs, sizeof *jobs), 0);
    for (int r = 0; r < W; r++) {
        assert_int_equal(jobs[r].st_sum, EDGC_OK);
        assert_int_equal(jobs[r].st_max, EDGC_OK);
        assert_int_equal(jobs[r].st_bcast, EDGC_OK);
        assert_int_equal(jobs[r].st_bad, EDGC_ERR_COMM);
        assert_memory_equal(jobs[r].buf, jobs[0].buf, sizeof jobs[0].buf);
        assert_int_equal(jobs[r].ints[0], W - 1);
        assert_int_equal(jobs[r].ints[1], 0);
        assert_int_equal(jobs[r].ints[2], 7);
        assert_string_equal(jobs[r].text, "from 2");
    }
    for (int i = 0; i < N; i++) {
        float want = 0.0f;
        for (int r = 0; r < W; r++)
            want += (float)(r + 1) * 0.1f + (float)i;
        assert_true(jobs[0].buf[i] == want);
    }
    free(jobs);
}

static void test_bad_arguments(void** state)
{
    (void)state;
    edgc_inproc* g = (edgc_inproc*)1;
    assert_int_equal(edgc_inproc_create(0, &g), EDGC_ERR_INVALID_ARG);
    assert_int_equal(edgc_inproc_create(2, NULL), EDGC_ERR_INVALID_ARG);
    assert_int_equal(edgc_inproc_create(2, &g), EDGC_OK);
    edgc_comm c;
    assert_int_equal(edgc_inproc_comm(g, 2, &c), EDGC_ERR_INVALID_ARG);
    assert_int_equal(edgc_inproc_comm(g, -1, &c), EDGC_ERR_INVALID_ARG);
    assert_int_equal(edgc_inproc_comm(g, 1, &c), EDGC_OK);
    assert_int_equal(c.rank, 1);
    assert_int_equal(c.size, 2);
    edgc_inproc_free(g);
    edgc_inproc_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_collectives),
        cmocka_unit_test(test_bad_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
