/*
 * example_powersgd.c - the smallest complete use of the public API: two workers (threads, over
 * the in-process communicator) compress-average their gradients with PowerSGD for a few steps
 * while an EDGC controller decides the rank. Built against the installed library by the install
 * test, so it only includes <edgc.h>.
 */
#include <edgc.h>

#include <pthread.h>
#include <stdio.h>
#include <string.h>

enum { ROWS = 32, COLS = 24, BIAS = 24, TOTAL = ROWS * COLS + BIAS, STEPS = 30 };

static const edgc_tensor tensors[] = {{0, ROWS, COLS}, {ROWS * COLS, BIAS, 1}};
static const edgc_layout layout = {tensors, 2, TOTAL};

typedef struct worker {
    edgc_comm comm;
    float grad[TOTAL];
    edgc_status status;
    int last_rank;
} worker;

static void* run(void* arg)
{
    worker* w = arg;
    edgc_config cfg = edgc_config_default();
    cfg.total_steps = STEPS;
    cfg.window = 10;
    cfg.alpha = 0.5;
    cfg.r_max = 8;
    edgc_controller* ctl = NULL;
    edgc_powersgd* ps = NULL;
    edgc_gds* gds = NULL;
    edgc_status st = edgc_controller_create(&cfg, &layout, &ctl);
    if (st == EDGC_OK) st = edgc_powersgd_create(&cfg, &layout, &ps);
    if (st == EDGC_OK) st = edgc_gds_create(cfg.beta, cfg.bins, &gds);
    for (int t = 0; t < STEPS && st == EDGC_OK; t++) {
        for (int i = 0; i < TOTAL; i++) /* a made-up local gradient */
            w->grad[i] = (float)((i * 7 + t * 3 + w->comm.rank) % 11) - 5.0f;
        edgc_plan plan;
        st = edgc_controller_plan(ctl, &plan);
        if (st != EDGC_OK) break;
        if (plan.rank == 0) { /* dense: average exactly */
            st = w->comm.allreduce_sum_f32(w->comm.ctx, w->grad, TOTAL);
            for (int i = 0; i < TOTAL; i++)
                w->grad[i] /= (float)w->comm.size;
        } else {
            st = edgc_powersgd_set_rank(ps, plan.rank);
            if (st == EDGC_OK) st = edgc_powersgd_step(ps, w->grad, &w->comm, NULL);
        }
        edgc_observation obs = {0};
        edgc_entropy e;
        if (st == EDGC_OK && plan.sample_entropy) {
            st = edgc_gds_entropy(gds, w->grad, TOTAL, &e);
            obs.entropy = e.h;
        }
        if (st == EDGC_OK) st = edgc_controller_commit(ctl, &obs);
        w->last_rank = plan.rank;
    }
    w->status = st;
    edgc_gds_free(gds);
    edgc_powersgd_free(ps);
    edgc_controller_free(ctl);
    return NULL;
}

int main(int argc, char** argv)
{
    if (argc > 1) { /* it takes no arguments: --help says what it does, anything else is refused */
        int help = !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h");
        fprintf(help ? stdout : stderr,
                "usage: %s\n  two in-process workers average their gradients with PowerSGD for "
                "a few steps\n  while an EDGC controller decides the rank (no arguments)\n",
                argv[0]);
        return help ? 0 : 2;
    }
    edgc_inproc* group = NULL;
    edgc_status st = edgc_inproc_create(2, &group);
    if (st != EDGC_OK) {
        fprintf(stderr, "example: %s\n", edgc_status_str(st));
        return 1;
    }
    worker w[2];
    pthread_t th[2];
    memset(w, 0, sizeof w);
    for (int r = 0; r < 2; r++) {
        edgc_inproc_comm(group, r, &w[r].comm);
        pthread_create(&th[r], NULL, run, &w[r]);
    }
    for (int r = 0; r < 2; r++)
        pthread_join(th[r], NULL);
    edgc_inproc_free(group);
    for (int r = 0; r < 2; r++)
        if (w[r].status != EDGC_OK) {
            fprintf(stderr, "example: worker %d: %s\n", r, edgc_status_str(w[r].status));
            return 1;
        }
    int same = memcmp(w[0].grad, w[1].grad, sizeof w[0].grad) == 0;
    printf("edgc %s: %d steps, final rank %d, workers identical: %s\n", edgc_version_string(),
           STEPS, w[0].last_rank, same ? "yes" : "no");
    return same ? 0 : 1;
}
