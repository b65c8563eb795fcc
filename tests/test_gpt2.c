/* test_gpt2.c - the trainer's model: analytic gradients of every parameter tensor against finite
 * differences, the tied and padded embedding, training on a fixed batch, and the layout the
 * reducer gets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>

#include "gpt2.h"
#include "optim.h"
#include "testutil.h"

enum { B = 2, T = 5 };
static const gpt2_config k_cfg = {.max_seq_len = 6,
                                  .vocab_size = 13,
                                  .padded_vocab_size = 16,
                                  .num_layers = 2,
                                  .num_heads = 2,
                                  .channels = 8};
static const int k_in[B * T] = {1, 5, 7, 12, 3, 0, 2, 2, 9, 11};
static const int k_tg[B * T] = {5, 7, 12, 3, 4, 2, 2, 9, 11, 6};

/* Weights large enough that every path carries signal (GPT-2's 0.02 makes the loss ~ln V). */
static void build(gpt2* m)
{
    assert_int_equal(gpt2_build(m, &k_cfg), 0);
    test_rng r = {42};
    test_gaussian(&r, m->params_memory, m->num_parameters, 0.3);
    for (size_t i = 0; i < m->param_sizes[0]; i++) /* padded rows of wte stay 0, as in training */
        if (i >= (size_t)k_cfg.vocab_size * k_cfg.channels) m->params_memory[i] = 0.0f;
    for (int l = 0; l < k_cfg.num_layers * k_cfg.channels; l++) {
        m->params.ln1w[l] += 1.0f;
        m->params.ln2w[l] += 1.0f;
    }
}

static double loss_at(gpt2* m)
{
    assert_int_equal(gpt2_forward(m, k_in, k_tg, B, T), 0);
    return m->mean_loss;
}

static const char* k_names[NUM_PARAMETER_TENSORS] = {
    "wte",  "wpe",  "ln1w", "ln1b", "qkvw",    "qkvb",    "attprojw", "attprojb",
    "ln2w", "ln2b", "fcw",  "fcb",  "fcprojw", "fcprojb", "lnfw",     "lnfb"};

/* For each tensor: the directional derivative along a random unit direction, by the 4-point
 * stencil (8 (f(h/2) - f(-h/2)) - (f(h) - f(-h))) / 6h, against grad . d. The forward pass is
 * float32 with the loss summed in double, so with h = 1e-2 the stencil's rounding error is about
 * 1e-5 absolute; we ask for 1e-3 relative + 1e-4 absolute. */
static void test_gradients_match_finite_differences(void** state)
{
    (void)state;
    gpt2 m;
    build(&m);
    loss_at(&m);
    gpt2_zero_grad(&m);
    gpt2_backward(&m, NULL);
    float* grad = malloc(m.num_parameters * sizeof *grad);
    memcpy(grad, m.grads_memory, m.num_parameters * sizeof *grad);
    test_rng r = {7};
    size_t at = 0;
    int bad = 0;
    for (int k = 0; k < NUM_PARAMETER_TENSORS; k++) {
        size_t n = m.param_sizes[k];
        float* d = malloc(n * sizeof *d);
        test_gaussian(&r, d, n, 1.0);
        if (k == 0) /* padded wte rows are never used: no direction there */
            for (size_t i = (size_t)k_cfg.vocab_size * k_cfg.channels; i < n; i++)
                d[i] = 0.0f;
        double dn = 0.0, gd = 0.0;
        for (size_t i = 0; i < n; i++)
            dn += (double)d[i] * d[i];
        for (size_t i = 0; i < n; i++) {
            d[i] = (float)(d[i] / sqrt(dn));
            gd += (double)grad[at + i] * d[i];
        }
        float* p = m.params_memory + at;
        float* saved = malloc(n * sizeof *saved);
        memcpy(saved, p, n * sizeof *saved);
        const double h = 1e-2, steps[4] = {0.5, -0.5, 1.0, -1.0};
        double f[4];
        for (int s = 0; s < 4; s++) {
            for (size_t i = 0; i < n; i++)
                p[i] = saved[i] + (float)(steps[s] * h) * d[i];
            f[s] = loss_at(&m);
        }
        memcpy(p, saved, n * sizeof *saved);
        double fd = (8.0 * (f[0] - f[1]) - (f[2] - f[3])) / (6.0 * h);
        double err = fabs(fd - gd);
        if (!(err <= 1e-4 + 1e-3 * fabs(gd))) {
            fprintf(stderr, "%-9s analytic %.8f finite-difference %.8f\n", k_names[k], gd, fd);
            bad++;
        }
        free(d);
        free(saved);
        at += n;
    }
    assert_int_equal(bad, 0);
    free(grad);
    gpt2_free(&m);
}

static void test_padded_vocab_rows_get_no_gradient(void** state)
{
    (void)state;
    gpt2 m;
    build(&m);
    loss_at(&m);
    gpt2_zero_grad(&m);
    gpt2_backward(&m, NULL);
    for (size_t i = (size_t)k_cfg.vocab_size * k_cfg.channels; i < m.param_sizes[0]; i++)
        assert_true(m.grads.wte[i] == 0.0f);
    for (int bt = 0; bt < B * T; bt++) /* probabilities over V only */
        for (int v = k_cfg.vocab_size; v < k_cfg.padded_vocab_size; v++)
            assert_true(m.acts.probs[bt * k_cfg.padded_vocab_size + v] == 0.0f);
    gpt2_free(&m);
}

static void test_loss_decreases_on_a_fixed_batch(void** state)
{
    (void)state;
    gpt2 m;
    assert_int_equal(gpt2_build(&m, &k_cfg), 0);
    gpt2_init_weights(&m, 1);
    adamw_config ac = {0.9f, 0.95f, 1e-8f, 0.0f};
    double first = loss_at(&m), prev = first;
    assert_true(fabs(first - log(13.0)) < 0.05); /* small init: near uniform */
    for (int t = 1; t <= 20; t++) {
        loss_at(&m);
        gpt2_zero_grad(&m);
        gpt2_backward(&m, NULL);
        adamw_update(&m, 1e-2f, &ac, t);
        double now = loss_at(&m);
        assert_true(now < prev + 1e-6); /* full-batch descent with a small step */
        prev = now;
    }
    assert_true(prev < 0.6 * first); /* 2.53 -> 1.30 when this was written */
    gpt2_free(&m);
}

static void test_smaller_forward_reuses_memory(void** state)
{
    (void)state;
    gpt2 m;
    build(&m);
    loss_at(&m);
    double full = m.acts.probs[(T - 1) * k_cfg.padded_vocab_size + 3];
    /* the same first sequence with B = 1: causal, so its last position is unchanged */
    assert_int_equal(gpt2_forward(&m, k_in, NULL, 1, T), 0);
    assert_true(fabs(m.acts.probs[(T - 1) * k_cfg.padded_vocab_size + 3] - full) < 1e-6);
    assert_int_equal(gpt2_forward(&m, k_in, NULL, 1, 2), 0);
    assert_int_not_equal(gpt2_forward(&m, k_in, NULL, 1, 7), 0); /* beyond the position table */
    assert_int_not_equal(gpt2_forward(&m, k_in, NULL, 4, T), 0); /* beyond the activations */
    gpt2_free(&m);
}

static void test_layout_tiles_the_gradient(void** state)
{
    (void)state;
    gpt2 m;
    build(&m);
    edgc_tensor* t;
    size_t n;
    assert_int_equal(gpt2_layout(&m, &t, &n), 0);
    edgc_layout l = {t, n, m.num_parameters};
    edgc_config c = edgc_config_default();
    c.total_steps = 10;
    char why[256];
    assert_int_equal(edgc_config_check(&c, &l, why, sizeof why), EDGC_OK);
    int mats = 0;
    for (size_t i = 0; i < n; i++)
        mats += t[i].rows >= 2 && t[i].cols >= 2;
    assert_int_equal(mats, 2 + 4 * k_cfg.num_layers); /* wte, wpe, 4 per layer */
    assert_int_equal(t[0].rows, 16);
    assert_int_equal(t[0].cols, 8);
    free(t);
    gpt2_free(&m);
}

static void test_config_check(void** state)
{
    (void)state;
    char why[128];
    gpt2_config c = k_cfg;
    assert_int_equal(gpt2_config_check(&c, why, sizeof why), 0);
    c.num_heads = 3;
    assert_int_not_equal(gpt2_config_check(&c, why, sizeof why), 0);
    assert_non_null(strstr(why, "does not divide"));
    c = k_cfg;
    c.padded_vocab_size = 12;
    assert_int_not_equal(gpt2_config_check(&c, why, sizeof why), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gradients_match_finite_differences),
        cmocka_unit_test(test_padded_vocab_rows_get_no_gradient),
        cmocka_unit_test(test_loss_decreases_on_a_fixed_batch),
        cmocka_unit_test(test_smaller_forward_reuses_memory),
        cmocka_unit_test(test_layout_tiles_the_gradient),
        cmocka_unit_test(test_config_check),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
