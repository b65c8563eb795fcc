/* test_train_files.c - the trainer's files: llm.c model checkpoints, the training-state file,
 * token shards and text, each with the bad inputs they must reject. Fixtures are generated here
 * with values that make every read checkable. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "checkpoint.h"
#include "dataloader.h"
#include "testutil.h"

static char dir[64];

static int setup(void** state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/edgc_files_%d", (int)getpid());
    char cmd[128];
    snprintf(cmd, sizeof cmd, "mkdir -p %s", dir);
    return system(cmd);
}

static int teardown(void** state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd);
}

static const gpt2_config k_cfg = {.max_seq_len = 8,
                                  .vocab_size = 20,
                                  .padded_vocab_size = 24,
                                  .num_layers = 2,
                                  .num_heads = 2,
                                  .channels = 4};

static void path(char* out, const char* name)
{
    snprintf(out, 256, "%s/%s", dir, name);
}

static void write_bytes(const char* p, const void* b, size_t n)
{
    FILE* f = fopen(p, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(b, 1, n, f), n);
    fclose(f);
}

static void truncate_copy(const char* from, const char* to, long drop)
{
    FILE* f = fopen(from, "rb");
    fseek(f, 0, SEEK_END);
    long n = ftell(f) - drop;
    rewind(f);
    char* b = malloc((size_t)n);
    assert_int_equal(fread(b, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    write_bytes(to, b, (size_t)n);
    free(b);
}

static void test_model_round_trip_and_rejections(void** state)
{
    (void)state;
    gpt2 a, b;
    assert_int_equal(gpt2_build(&a, &k_cfg), 0);
    assert_int_equal(gpt2_build(&b, &k_cfg), 0);
    gpt2_init_weights(&a, 5);
    char p[256], why[512];
    path(p, "model.bin");
    assert_int_equal(ckpt_save_model(p, &a, NULL, why, sizeof why), 0);
    gpt2_config c;
    assert_int_equal(ckpt_read_config(p, &c, why, sizeof why), 0);
    assert_memory_equal(&c, &k_cfg, sizeof c);
    assert_int_equal(ckpt_load_model(p, &b, NULL, why, sizeof why), 0);
    assert_memory_equal(a.params_memory, b.params_memory, a.num_parameters * sizeof(float));
    /* the header is llm.c's: magic, version 3, maxT, V, L, NH, C, Vp */
    FILE* f = fopen(p, "rb");
    int32_t h[8];
    assert_int_equal(fread(h, 4, 8, f), 8);
    fclose(f);
    const int32_t want[8] = {20240326, 3, 8, 20, 2, 2, 4, 24};
    assert_memory_equal(h, want, sizeof want);

    char t[256];
    path(t, "truncated.bin");
    truncate_copy(p, t, 4);
    assert_int_not_equal(ckpt_load_model(t, &b, NULL, why, sizeof why), 0);
    assert_non_null(strstr(why, "truncated"));
    truncate_copy(p, t, (long)(a.num_parameters * 4 + 1000));
    assert_int_not_equal(ckpt_load_model(t, &b, NULL, why, sizeof why), 0);

    gpt2 other;
    gpt2_config oc = k_cfg;
    oc.channels = 8;
    assert_int_equal(gpt2_build(&other, &oc), 0);
    assert_int_not_equal(ckpt_load_model(p, &other, NULL, why, sizeof why), 0);
    assert_non_null(strstr(why, "shape"));
    gpt2_free(&other);

    int32_t bad[256] = {12345, 3};
    path(t, "bad_magic.bin");
    write_bytes(t, bad, sizeof bad);
    assert_int_not_equal(ckpt_read_config(t, &c, why, sizeof why), 0);
    assert_non_null(strstr(why, "magic"));
    int32_t bf16[256] = {20240326, 5, 8, 20, 2, 2, 4, 24};
    write_bytes(t, bf16, sizeof bf16);
    assert_int_not_equal(ckpt_read_config(t, &c, why, sizeof why), 0);
    assert_non_null(strstr(why, "version 5"));
    int32_t nonsense[256] = {20240326, 3, 8, 20, 2, 3, 4, 24}; /* 3 heads, 4 channels */
    write_bytes(t, nonsense, sizeof nonsense);
    assert_int_not_equal(ckpt_read_config(t, &c, why, sizeof why), 0);
    path(t, "missing.bin");
    assert_int_not_equal(ckpt_read_config(t, &c, why, sizeof why), 0);
    /* a write that cannot happen leaves nothing behind and says so */
    assert_int_not_equal(ckpt_save_model("/nonexistent-dir/m.bin", &a, NULL, why, sizeof why), 0);
    gpt2_free(&a);
    gpt2_free(&b);
}

static void test_state_round_trip_and_corruption(void** state)
{
    (void)state;
    gpt2 a, b;
    assert_int_equal(gpt2_build(&a, &k_cfg), 0);
    assert_int_equal(gpt2_build(&b, &k_cfg), 0);
    test_rng r = {3};
    test_gaussian(&r, a.m_memory, a.num_parameters, 1.0);
    test_gaussian(&r, a.v_memory, a.num_parameters, 1.0);
    train_state st = {.step = 17,
                      .total_steps = 30,
                      .batch = 4,
                      .seq = 8,
                      .world = 2,
                      .seed = 9,
                      .params_hash = 0xabcdef,
                      .elapsed_s = 1.5};
    const char blob[] = "reducer-state-bytes";
    char p[256], why[512];
    path(p, "state.bin");
    assert_int_equal(ckpt_save_state(p, &st, &a, blob, sizeof blob, NULL, why, sizeof why), 0);
    train_state got;
    void* gb;
    size_t gl;
    assert_int_equal(ckpt_load_state(p, &got, &b, &gb, &gl, NULL, why, sizeof why), 0);
    assert_int_equal(got.step, 17);
    assert_int_equal(got.world, 2);
    assert_int_equal(got.total_steps, 30);
    assert_int_equal(got.params_hash, 0xabcdef);
    assert_int_equal(gl, sizeof blob);
    assert_memory_equal(gb, blob, sizeof blob);
    assert_memory_equal(a.m_memory, b.m_memory, a.num_parameters * sizeof(float));
    assert_memory_equal(a.v_memory, b.v_memory, a.num_parameters * sizeof(float));
    free(gb);

    /* one flipped byte anywhere: the checksum catches it */
    FILE* f = fopen(p, "rb");
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    unsigned char* buf = malloc((size_t)n);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    char t[256];
    path(t, "state_bad.bin");
    for (long at = 0; at < n; at += n / 7) {
        buf[at] ^= 0x10;
        write_bytes(t, buf, (size_t)n);
        buf[at] ^= 0x10;
        assert_int_not_equal(ckpt_load_state(t, &got, &b, &gb, &gl, NULL, why, sizeof why), 0);
    }
    truncate_copy(p, t, 9);
    assert_int_not_equal(ckpt_load_state(t, &got, &b, &gb, &gl, NULL, why, sizeof why), 0);
    free(buf);
    /* a state for a model of another size */
    gpt2 other;
    gpt2_config oc = k_cfg;
    oc.num_layers = 3;
    assert_int_equal(gpt2_build(&other, &oc), 0);
    assert_int_not_equal(ckpt_load_state(p, &got, &other, &gb, &gl, NULL, why, sizeof why), 0);
    assert_non_null(strstr(why, "parameters"));
    gpt2_free(&other);
    gpt2_free(&a);
    gpt2_free(&b);
}

/* A shard in which token i is (7 i) mod 50000: every batch can be checked exactly. */
static void write_shard(const char* p, int ntok, int header_count, int bad_at)
{
    int32_t h[256] = {20240520, 1, header_count};
    uint16_t* t = malloc((size_t)ntok * 2);
    for (int i = 0; i < ntok; i++)
        t[i] = (uint16_t)((7 * i) % 50000);
    if (bad_at >= 0) t[bad_at] = 60000;
    FILE* f = fopen(p, "wb");
    fwrite(h, 4, 256, f);
    fwrite(t, 2, (size_t)ntok, f);
    fclose(f);
    free(t);
}

static void test_shards(void** state)
{
    (void)state;
    char p[256], why[512];
    path(p, "shard.bin");
    write_shard(p, 1000, 1000, -1);
    token_data d;
    assert_int_equal(data_load(p, 0, &d, why, sizeof why), 0);
    assert_int_equal(d.n, 1000);
    assert_int_equal(d.vocab_size, 50257);
    int in[4 * 8], tg[4 * 8];
    assert_int_equal(data_windows(&d, 4, 8), 999 / 32);
    data_batch(&d, 3, 4, 8, in, tg);
    for (int i = 0; i < 32; i++) {
        assert_int_equal(in[i], (7 * (96 + i)) % 50000);
        assert_int_equal(tg[i], (7 * (96 + i + 1)) % 50000);
    }
    data_batch(&d, 3 + data_windows(&d, 4, 8), 4, 8, in, tg); /* wraps around */
    assert_int_equal(in[0], (7 * 96) % 50000);
    data_free(&d);

    write_shard(p, 1000, 1001, -1); /* header promises more than the file holds */
    assert_int_not_equal(data_load(p, 0, &d, why, sizeof why), 0);
    assert_non_null(strstr(why, "truncated"));
    write_shard(p, 1000, 1000, 500);
    assert_int_not_equal(data_load(p, 0, &d, why, sizeof why), 0);
    assert_non_null(strstr(why, "outside the GPT-2 vocabulary"));
    write_bytes(p, "short", 5);
    assert_int_not_equal(data_load(p, 0, &d, why, sizeof why), 0);
    int32_t h[256] = {1234, 1, 0};
    write_bytes(p, h, sizeof h);
    assert_int_not_equal(data_load(p, 0, &d, why, sizeof why), 0);
    assert_non_null(strstr(why, "not an llm.c token shard"));
}

static void test_text_and_split(void** state)
{
    (void)state;
    char p[256], why[512];
    path(p, "text.txt");
    char text[200];
    for (int i = 0; i < 200; i++)
        text[i] = (char)('a' + i % 26);
    text[7] = (char)0xE9; /* non-ASCII bytes are tokens too */
    write_bytes(p, text, sizeof text);
    token_data d, tr, va;
    assert_int_equal(data_load(p, 0, &d, why, sizeof why), 0);
    assert_int_equal(d.n, 200);
    assert_int_equal(d.vocab_size, 256);
    assert_int_equal(d.tokens[7], 0xE9);
    assert_int_equal(data_split(&d, 0.1, &tr, &va), 0);
    assert_int_equal(tr.n, 180);
    assert_int_equal(va.n, 20);
    assert_int_equal(va.tokens[0], 'a' + 180 % 26);
    assert_int_equal(data_windows(&va, 2, 10), 0); /* 20 tokens cannot give 2 x 10 + 1 */
    assert_int_equal(data_windows(&va, 1, 10), 1);
    data_free(&d);
    data_free(&tr);
    data_free(&va);
    path(p, "missing.txt");
    assert_int_not_equal(data_load(p, 0, &d, why, sizeof why), 0);
    assert_non_null(strstr(why, "cannot open"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_model_round_trip_and_rejections),
        cmocka_unit_test(test_state_round_trip_and_corruption),
        cmocka_unit_test(test_shards),
        cmocka_unit_test(test_text_and_split),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
