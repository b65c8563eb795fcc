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
    assert_int_equal(ckpt_load_model(t, &b, NULL, why, sizeof why), -1);
    assert_non_null(strstr(why, "truncated"));
    truncate_copy(p, t, (long)(a.num_parameters * 4 + 1000));
    assert_int_equal(ckpt_load_model(t, &b, NULL, why, sizeof why), -1);

    gpt2 other;
    gpt2_config oc = k_cfg;
    oc.channels = 8;
    assert_int_equal(gpt2_build(&other, &oc), 0);
    assert_int_equal(ckpt_load_model(p, &other, NULL, why, sizeof why), CKPT_OTHER_SHAPE);
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

/* Version-2 shards hold uint32 tokens of the model's vocabulary; version 1 checks against the model's
 * vocabulary when one is given (--init of a model with another vocabulary). */
static void test_shard_versions_and_vocabulary(void** state)
{
    (void)state;
    char p[256], why[512];
    path(p, "v2.bin");
    int32_t h[256] = {20240520, 2, 4};
    uint32_t t[4] = {0, 70000, 128255, 5};
    unsigned char buf[sizeof h + sizeof t];
    memcpy(buf, h, sizeof h);
    memcpy(buf + sizeof h, t, sizeof t);
    write_bytes(p, buf, sizeof buf);
    token_data d;
    assert_int_not_equal(data_load(p, 0, &d, why, sizeof why), 0); /* no vocabulary given */
    assert_non_null(strstr(why, "version-2 shard"));
    assert_int_equal(data_load(p, 128256, &d, why, sizeof why), 0);
    assert_int_equal(d.n, 4);
    assert_int_equal(d.vocab_size, 128256);
    assert_int_equal(d.tokens[1], 70000);
    assert_int_equal(d.tokens[2], 128255);
    data_free(&d);
    assert_int_not_equal(data_load(p, 100000, &d, why, sizeof why), 0); /* 128255 is too big */
    assert_non_null(strstr(why, "outside the model's vocabulary (100000)"));
    /* a uint16 count's worth of bytes is not a uint32 shard */
    assert_int_not_equal(data_parse(buf, sizeof buf - 2, 1, 128256, p, &d, why, sizeof why), 0);
    assert_non_null(strstr(why, "truncated"));

    path(p, "v1.bin");
    write_shard(p, 100, 100, -1); /* tokens up to 7 * 99 = 693 */
    assert_int_equal(data_load(p, 1000, &d, why, sizeof why), 0);
    assert_int_equal(d.vocab_size, 1000);
    data_free(&d);
    assert_int_not_equal(data_load(p, 500, &d, why, sizeof why), 0);
    assert_non_null(strstr(why, "outside the model's vocabulary (500)"));
}

/* The manifest: round trip, and every damage refused (the checkpoint is then incomplete). */
static void test_manifest(void** state)
{
    (void)state;
    char p[256], why[512];
    path(p, "MANIFEST");
    ckpt_digest states[3] = {{10, 0x1111}, {20, 0xffffffffffffffffULL}, {30, 0}};
    ckpt_manifest mf = {.step = 300, .world = 3, .model = {12345, 0xabcdef}, .states = states};
    assert_int_equal(ckpt_manifest_save(p, &mf, why, sizeof why), 0);
    ckpt_manifest got;
    assert_int_equal(ckpt_manifest_load(p, &got, why, sizeof why), 0);
    assert_int_equal(got.step, 300);
    assert_int_equal(got.world, 3);
    assert_int_equal(got.model.size, 12345);
    assert_int_equal(got.model.hash, 0xabcdef);
    for (int r = 0; r < 3; r++) {
        assert_int_equal(got.states[r].size, states[r].size);
        assert_true(got.states[r].hash == states[r].hash);
    }
    ckpt_manifest_free(&got);

    FILE* f = fopen(p, "rb");
    char text[1024];
    size_t n = fread(text, 1, sizeof text, f);
    fclose(f);
    char bad[1024];
    /* every single-byte change and every truncation is refused */
    for (size_t i = 0; i < n; i++) {
        memcpy(bad, text, n);
        bad[i] ^= 0x04;
        assert_int_not_equal(ckpt_manifest_parse(bad, n, p, &got, why, sizeof why), 0);
        assert_int_not_equal(ckpt_manifest_parse(text, i, p, &got, why, sizeof why), 0);
    }
    assert_int_equal(ckpt_manifest_parse(text, n, p, &got, why, sizeof why), 0);
    ckpt_manifest_free(&got);
}

/* The digests the writers report are those of the bytes on disk, and the loaders agree. */
static void test_digests(void** state)
{
    (void)state;
    char p[256], why[512];
    gpt2 m;
    assert_int_equal(gpt2_build(&m, &k_cfg), 0);
    gpt2_init_weights(&m, 5);
    ckpt_digest saved, loaded;
    path(p, "digest_model.bin");
    assert_int_equal(ckpt_save_model(p, &m, &saved, why, sizeof why), 0);
    assert_int_equal(ckpt_load_model(p, &m, &loaded, why, sizeof why), 0);
    FILE* f = fopen(p, "rb");
    size_t n = 256 * 4 + m.num_parameters * 4;
    unsigned char* b = malloc(n + 1);
    assert_int_equal(fread(b, 1, n + 1, f), n);
    fclose(f);
    assert_int_equal(saved.size, n);
    assert_true(saved.hash == ckpt_hash(b, n));
    assert_true(loaded.hash == saved.hash && loaded.size == saved.size);
    free(b);

    train_state st = {.step = 3, .world = 1};
    path(p, "digest_state.bin");
    assert_int_equal(ckpt_save_state(p, &st, &m, "blob", 4, &saved, why, sizeof why), 0);
    void* blob;
    size_t bl;
    assert_int_equal(ckpt_load_state(p, &st, &m, &blob, &bl, &loaded, why, sizeof why), 0);
    assert_true(loaded.hash == saved.hash && loaded.size == saved.size);
    assert_int_equal(bl, 4);
    free(blob);
    gpt2_free(&m);
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
        cmocka_unit_test(test_shard_versions_and_vocabulary),
        cmocka_unit_test(test_manifest),
        cmocka_unit_test(test_digests),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
