/*
 * gpt2.c - GPT-2 forward and backward on the CPU, one function per layer, matrix products through
 * CBLAS. The layer functions follow one argument order: outputs first, then the saved inputs,
 * then the weights, then the dimensions (B, T, C, ...). A gradient has its tensor's name with a
 * leading d. Backward functions accumulate (+=) into their gradients.
 *
 * Not here: the optimizer (optim.c), data (dataloader.c), files (checkpoint.c), MPI (train_gpt2.c).
 */
#include "gpt2.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// ----------------------------------------------------------------------------
// layers

static void encoder_forward(float* out, const int* inp, const float* wte, const float* wpe, int B,
                            int T, int C)
{
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            float* o = out + ((size_t)b * T + t) * C;
            const float* te = wte + (size_t)inp[b * T + t] * C;
            const float* pe = wpe + (size_t)t * C;
            for (int i = 0; i < C; i++)
                o[i] = te[i] + pe[i];
        }
}

static void encoder_backward(float* dwte, float* dwpe, const float* dout, const int* inp, int B,
                             int T, int C)
{
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            const float* d = dout + ((size_t)b * T + t) * C;
            float* dte = dwte + (size_t)inp[b * T + t] * C;
            float* dpe = dwpe + (size_t)t * C;
            for (int i = 0; i < C; i++) {
                dte[i] += d[i];
                dpe[i] += d[i];
            }
        }
}

// Element-wise loops built for AVX-512, AVX2 and baseline x86-64, one picked when the program
// loads (the baseline's 4-wide SSE left GELU a tenth of the tiny model's step). Each element is
// the same IEEE expression at any vector width, reductions stay in order, and no a * b + c is
// fused into an FMA (-ffp-contract=off), so every variant gives the same bits: ranks on
// different CPUs agree.
// (tests/test_gpt2_isa.sh builds it with GPT2_CLONES_AVX2 and GPT2_NO_CLONES too, and compares.)
#if !defined(GPT2_NO_CLONES) && defined(__x86_64__) && defined(__GNUC__) && defined(__has_attribute)
#if __has_attribute(target_clones)
#ifdef GPT2_CLONES_AVX2
#define WIDE_LOOPS __attribute__((target_clones("avx2", "default")))
#else
#define WIDE_LOOPS __attribute__((target_clones("avx512f", "avx2", "default")))
#endif
#endif
#endif
#ifndef WIDE_LOOPS
#define WIDE_LOOPS
#endif

// reference: Ba et al. 2016; biased variance, eps 1e-5 as in GPT-2
WIDE_LOOPS static void layernorm_forward(float* out, float* mean, float* rstd, const float* inp,
                                         const float* weight, const float* bias, int B, int T,
                                         int C)
{
    for (size_t bt = 0; bt < (size_t)B * T; bt++) {
        const float* x = inp + bt * C;
        double m = 0.0, v = 0.0;
        for (int i = 0; i < C; i++)
            m += x[i];
        m /= C;
        for (int i = 0; i < C; i++)
            v += (x[i] - m) * (x[i] - m);
        v /= C;
        float s = (float)(1.0 / sqrt(v + 1e-5));
        float* o = out + bt * C;
        for (int i = 0; i < C; i++)
            o[i] = ((float)(x[i] - m) * s) * weight[i] + bias[i];
        mean[bt] = (float)m;
        rstd[bt] = s;
    }
}

WIDE_LOOPS static void layernorm_backward(float* dinp, float* dweight, float* dbias,
                                          const float* dout, const float* inp, const float* weight,
                                          const float* mean, const float* rstd, int B, int T, int C)
{
    for (size_t bt = 0; bt < (size_t)B * T; bt++) {
        const float* d = dout + bt * C;
        const float* x = inp + bt * C;
        float* dx = dinp + bt * C;
        float m = mean[bt], s = rstd[bt];
        double dnorm_mean = 0.0, dnorm_norm_mean = 0.0;
        for (int i = 0; i < C; i++) {
            float norm = (x[i] - m) * s;
            float dnorm = weight[i] * d[i];
            dnorm_mean += dnorm;
            dnorm_norm_mean += dnorm * norm;
        }
        dnorm_mean /= C;
        dnorm_norm_mean /= C;
        for (int i = 0; i < C; i++) {
            float norm = (x[i] - m) * s;
            float dnorm = weight[i] * d[i];
            dbias[i] += d[i];
            dweight[i] += norm * d[i];
            dx[i] += ((float)(dnorm - dnorm_mean) - norm * (float)dnorm_norm_mean) * s;
        }
    }
}

// out (BT, OC) = inp (BT, C) . weight^T (C, OC) + bias (OC); bias may be NULL
static void matmul_forward(float* out, const float* inp, const float* weight, const float* bias,
                           int BT, int C, int OC)
{
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, BT, OC, C, 1.0f, inp, C, weight, C, 0.0f,
                out, OC);
    if (bias != NULL)
        for (size_t r = 0; r < (size_t)BT; r++)
            for (int o = 0; o < OC; o++)
                out[r * OC + o] += bias[o];
}

static void matmul_backward(float* dinp, float* dweight, float* dbias, const float* dout,
                            const float* inp, const float* weight, int BT, int C, int OC)
{
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, BT, C, OC, 1.0f, dout, OC, weight, C,
                1.0f, dinp, C);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, C, BT, 1.0f, dout, OC, inp, C, 1.0f,
                dweight, C);
    if (dbias != NULL)
        for (size_t r = 0; r < (size_t)BT; r++)
            for (int o = 0; o < OC; o++)
                dbias[o] += dout[r * OC + o];
}

// Causal self-attention; inp (B, T, 3C) holds q, k, v; preatt and att are (B, NH, T, T).
// Per (batch, head) the products are small GEMMs over strided views of inp (row stride 3C). They
// cover the full T x T square although only t2 <= t counts: att is 0 above the diagonal, so the
// extra terms add nothing, and BLAS on the square is still several times faster than dot loops.
static void attention_forward(float* out, float* preatt, float* att, const float* inp, int B, int T,
                              int C, int NH)
{
    const int C3 = 3 * C, hs = C / NH;
    const float scale = 1.0f / sqrtf((float)hs);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            const float* q = inp + (size_t)b * T * C3 + h * hs;
            float* pre = preatt + ((size_t)b * NH + h) * T * T;
            float* a = att + ((size_t)b * NH + h) * T * T;
            // pre = scale * q k^T
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, hs, scale, q, C3, q + C, C3,
                        0.0f, pre, T);
            for (int t = 0; t < T; t++) {
                float *pr = pre + (size_t)t * T, *ar = a + (size_t)t * T;
                float maxv = -INFINITY;
                for (int t2 = 0; t2 <= t; t2++)
                    maxv = pr[t2] > maxv ? pr[t2] : maxv;
                float sum = 0.0f;
                for (int t2 = 0; t2 <= t; t2++) {
                    ar[t2] = expf(pr[t2] - maxv);
                    sum += ar[t2];
                }
                for (int t2 = 0; t2 < T; t2++)
                    ar[t2] = t2 <= t ? ar[t2] / sum : 0.0f;
            }
            // out = att v
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hs, T, 1.0f, a, T, q + 2 * C,
                        C3, 0.0f, out + (size_t)b * T * C + h * hs, C);
        }
}

static void attention_backward(float* dinp, float* dpreatt, float* datt, const float* dout,
                               const float* inp, const float* att, int B, int T, int C, int NH)
{
    const int C3 = 3 * C, hs = C / NH;
    const float scale = 1.0f / sqrtf((float)hs);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            const float* q = inp + (size_t)b * T * C3 + h * hs;
            float* dq = dinp + (size_t)b * T * C3 + h * hs;
            const float* d = dout + (size_t)b * T * C + h * hs;
            const float* a = att + ((size_t)b * NH + h) * T * T;
            float* da = datt + ((size_t)b * NH + h) * T * T;
            float* dpre = dpreatt + ((size_t)b * NH + h) * T * T;
            // out = att v: datt += d v^T, dv += att^T d
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, hs, 1.0f, d, C, q + 2 * C,
                        C3, 1.0f, da, T);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, hs, T, 1.0f, a, T, d, C, 1.0f,
                        dq + 2 * C, C3);
            // softmax: dpre = a * (da - sum(a * da)), on the causal part (dpre stays 0 above it)
            for (int t = 0; t < T; t++) {
                const float *ar = a + (size_t)t * T, *dar = da + (size_t)t * T;
                float* dpr = dpre + (size_t)t * T;
                float s = 0.0f;
                for (int t2 = 0; t2 <= t; t2++)
                    s += ar[t2] * dar[t2];
                for (int t2 = 0; t2 <= t; t2++)
                    dpr[t2] += ar[t2] * (dar[t2] - s);
            }
            // pre = scale q k^T: dq += scale dpre k, dk += scale dpre^T q
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hs, T, scale, dpre, T, q + C,
                        C3, 1.0f, dq, C3);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, hs, T, scale, dpre, T, q, C3,
                        1.0f, dq + C, C3);
        }
}

#define GELU_SCALE 0.7978845608028654f // sqrt(2 / pi)

// tanh for GELU: libm's tanhf is a scalar call and took a fifth of the tiny model's step. This
// one is branch-free so the loops vectorise: tanh(u) = 1 - 2 / (e^{2u} + 1), with e^x as
// 2^k * e^r, |r| <= ln2 / 2, and a degree-6 Taylor polynomial (relative error ~1e-7). The form has
// an absolute error of a few 1e-7 everywhere, which is what GELU's 0.5 x (1 + tanh) needs.
static inline float tanh_fast(float u)
{
    u = u < -9.0f ? -9.0f : (u > 9.0f ? 9.0f : u); // tanh(9) = 1 - 3e-8: saturated in float
    float x = 2.0f * u;
    // round to nearest by adding and removing 1.5 * 2^23 (what rintf gives for |x| < 2^22), since
    // rintf itself has no SSE2 vector form and kept this loop scalar
    float k = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    float r = x - k * 0.693145751953125f - k * 1.428606765330187e-6f; // ln2 in two parts
    float p =
        1.0f +
        r * (1.0f +
             r * (0.5f + r * (1.0f / 6 + r * (1.0f / 24 + r * (1.0f / 120 + r * (1.0f / 720))))));
    int32_t bits = ((int32_t)k + 127) << 23; // 2^k, k in [-26, 26]
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return 1.0f - 2.0f / (p * scale + 1.0f);
}

// GELU, tanh approximation (Hendrycks & Gimpel), as GPT-2 uses
WIDE_LOOPS static void gelu_forward(float* out, const float* inp, size_t N)
{
    for (size_t i = 0; i < N; i++) {
        float x = inp[i];
        out[i] = 0.5f * x * (1.0f + tanh_fast(GELU_SCALE * (x + 0.044715f * x * x * x)));
    }
}

WIDE_LOOPS static void gelu_backward(float* dinp, const float* inp, const float* dout, size_t N)
{
    for (size_t i = 0; i < N; i++) {
        float x = inp[i];
        float th = tanh_fast(GELU_SCALE * (x + 0.044715f * x * x * x));
        float sech2 = 1.0f - th * th;
        float local =
            0.5f * (1.0f + th) + 0.5f * x * sech2 * GELU_SCALE * (1.0f + 3.0f * 0.044715f * x * x);
        dinp[i] += local * dout[i];
    }
}

WIDE_LOOPS static void residual_forward(float* out, const float* a, const float* b, size_t N)
{
    for (size_t i = 0; i < N; i++)
        out[i] = a[i] + b[i];
}

WIDE_LOOPS static void residual_backward(float* da, float* db, const float* dout, size_t N)
{
    for (size_t i = 0; i < N; i++) {
        da[i] += dout[i];
        db[i] += dout[i];
    }
}

// softmax over the first V of Vp logits; the padded probabilities are 0
static void softmax_forward(float* probs, const float* logits, int B, int T, int V, int Vp)
{
    for (size_t bt = 0; bt < (size_t)B * T; bt++) {
        const float* l = logits + bt * Vp;
        float* p = probs + bt * Vp;
        float maxv = -INFINITY;
        for (int i = 0; i < V; i++)
            maxv = l[i] > maxv ? l[i] : maxv;
        double sum = 0.0;
        for (int i = 0; i < V; i++) {
            p[i] = expf(l[i] - maxv);
            sum += p[i];
        }
        float inv = (float)(1.0 / sum);
        for (int i = 0; i < V; i++)
            p[i] *= inv;
        for (int i = V; i < Vp; i++)
            p[i] = 0.0f;
    }
}

static void crossentropy_forward(float* losses, const float* probs, const int* targets, int B,
                                 int T, int Vp)
{
    for (size_t bt = 0; bt < (size_t)B * T; bt++)
        losses[bt] = -logf(probs[bt * Vp + targets[bt]]);
}

// d(mean loss)/dlogits = (probs - onehot(target)) / (B T)
static void crossentropy_softmax_backward(float* dlogits, const float* probs, const int* targets,
                                          int B, int T, int V, int Vp, float scale)
{
    const float dloss = scale / ((float)B * (float)T);
    for (size_t bt = 0; bt < (size_t)B * T; bt++) {
        float* dl = dlogits + bt * Vp;
        const float* p = probs + bt * Vp;
        for (int i = 0; i < V; i++)
            dl[i] += (p[i] - (i == targets[bt] ? 1.0f : 0.0f)) * dloss;
    }
}

// ----------------------------------------------------------------------------
// buffers

static void parameter_sizes(size_t* s, const gpt2_config* c, const gpt2_part* part)
{
    size_t Vp = (size_t)c->padded_vocab_size, C = (size_t)c->channels;
    size_t L = (size_t)part->num_layers, maxT = (size_t)c->max_seq_len;
    s[0] = part->embedding || part->head ? Vp * C : 0; // wte: the token embedding and the LM head
    s[1] = part->embedding ? maxT * C : 0;             // wpe
    s[2] = L * C;                                      // ln1w
    s[3] = L * C;                                      // ln1b
    s[4] = L * 3 * C * C;                              // qkvw
    s[5] = L * 3 * C;                                  // qkvb
    s[6] = L * C * C;                                  // attprojw
    s[7] = L * C;                                      // attprojb
    s[8] = L * C;                                      // ln2w
    s[9] = L * C;                                      // ln2b
    s[10] = L * 4 * C * C;                             // fcw
    s[11] = L * 4 * C;                                 // fcb
    s[12] = L * C * 4 * C;                             // fcprojw
    s[13] = L * C;                                     // fcprojb
    s[14] = part->head ? C : 0;                        // lnfw
    s[15] = part->head ? C : 0;                        // lnfb
}

static void point_parameters(parameter_tensors* p, float* mem, const size_t* sizes)
{
    float** ptrs[] = {&p->wte,      &p->wpe,      &p->ln1w, &p->ln1b, &p->qkvw, &p->qkvb,
                      &p->attprojw, &p->attprojb, &p->ln2w, &p->ln2b, &p->fcw,  &p->fcb,
                      &p->fcprojw,  &p->fcprojb,  &p->lnfw, &p->lnfb};
    for (int i = 0; i < NUM_PARAMETER_TENSORS; i++) {
        *ptrs[i] = mem;
        mem += sizes[i];
    }
}

static void activation_sizes(size_t* s, const gpt2_config* c, const gpt2_part* part, int B, int T)
{
    size_t C = (size_t)c->channels, L = (size_t)part->num_layers, NH = (size_t)c->num_heads;
    size_t Vp = part->head ? (size_t)c->padded_vocab_size : 0, BT = (size_t)B * T;
    size_t H = part->head ? 1 : 0;
    s[0] = BT * C;             // encoded
    s[1] = L * BT * C;         // ln1
    s[2] = L * BT;             // ln1_mean
    s[3] = L * BT;             // ln1_rstd
    s[4] = L * BT * 3 * C;     // qkv
    s[5] = L * BT * C;         // atty
    s[6] = L * B * NH * T * T; // preatt
    s[7] = L * B * NH * T * T; // att
    s[8] = L * BT * C;         // attproj
    s[9] = L * BT * C;         // residual2
    s[10] = L * BT * C;        // ln2
    s[11] = L * BT;            // ln2_mean
    s[12] = L * BT;            // ln2_rstd
    s[13] = L * BT * 4 * C;    // fch
    s[14] = L * BT * 4 * C;    // fch_gelu
    s[15] = L * BT * C;        // fcproj
    s[16] = L * BT * C;        // residual3
    s[17] = H * BT * C;        // lnf
    s[18] = H * BT;            // lnf_mean
    s[19] = H * BT;            // lnf_rstd
    s[20] = BT * Vp;           // logits
    s[21] = BT * Vp;           // probs
    s[22] = H * BT;            // losses
}

static void point_activations(activation_tensors* a, float* mem, const size_t* sizes)
{
    float** ptrs[] = {&a->encoded, &a->ln1,       &a->ln1_mean, &a->ln1_rstd, &a->qkv,
                      &a->atty,    &a->preatt,    &a->att,      &a->attproj,  &a->residual2,
                      &a->ln2,     &a->ln2_mean,  &a->ln2_rstd, &a->fch,      &a->fch_gelu,
                      &a->fcproj,  &a->residual3, &a->lnf,      &a->lnf_mean, &a->lnf_rstd,
                      &a->logits,  &a->probs,     &a->losses};
    for (int i = 0; i < NUM_ACTIVATION_TENSORS; i++) {
        *ptrs[i] = mem;
        mem += sizes[i];
    }
}

int gpt2_config_check(const gpt2_config* c, char* why, size_t why_len)
{
#define BAD(...)                                                                                   \
    do {                                                                                           \
        snprintf(why, why_len, __VA_ARGS__);                                                       \
        return -1;                                                                                 \
    } while (0)
    if (c->num_layers < 1 || c->num_layers > 1000)
        BAD("layers = %d: must be in [1, 1000]", c->num_layers);
    if (c->channels < 1 || c->channels > 65536) BAD("dim = %d: must be in [1, 65536]", c->channels);
    if (c->num_heads < 1 || c->channels % c->num_heads != 0)
        BAD("heads = %d does not divide dim = %d", c->num_heads, c->channels);
    if (c->max_seq_len < 1 || c->max_seq_len > 1 << 20)
        BAD("max sequence length = %d: must be in [1, 1048576]", c->max_seq_len);
    if (c->vocab_size < 2) BAD("vocabulary size = %d: must be >= 2", c->vocab_size);
    if (c->padded_vocab_size < c->vocab_size)
        BAD("padded vocabulary %d < vocabulary %d", c->padded_vocab_size, c->vocab_size);
    return 0;
#undef BAD
}

gpt2_part gpt2_stage_part(int num_layers, int P, int s)
{
    int base = num_layers / P, extra = num_layers % P;
    gpt2_part p = {s * base + (s < extra ? s : extra), base + (s < extra), s == 0, s == P - 1};
    return p;
}

size_t gpt2_part_size(const gpt2_config* c, const gpt2_part* part)
{
    size_t sizes[NUM_PARAMETER_TENSORS], n = 0;
    parameter_sizes(sizes, c, part);
    for (int i = 0; i < NUM_PARAMETER_TENSORS; i++)
        n += sizes[i];
    return n;
}

// a per-layer tensor's part is one slice of the whole tensor, since layers are its outer index
void gpt2_part_transfer(const gpt2_config* c, const gpt2_part* part, float* whole, float* mine,
                        int to_whole)
{
    gpt2_part all = {0, c->num_layers, 1, 1};
    size_t ws[NUM_PARAMETER_TENSORS], ms[NUM_PARAMETER_TENSORS];
    parameter_sizes(ws, c, &all);
    parameter_sizes(ms, c, part);
    for (int i = 0; i < NUM_PARAMETER_TENSORS; i++) {
        size_t at = 0;
        if (ms[i] != 0 && ms[i] != ws[i]) at = ws[i] / (size_t)c->num_layers * part->first_layer;
        if (to_whole)
            memcpy(whole + at, mine, ms[i] * sizeof(float));
        else
            memcpy(mine, whole + at, ms[i] * sizeof(float));
        whole += ws[i];
        mine += ms[i];
    }
}

/* calloc's large blocks are untouched zero pages: fault them in now, one write per page, so the
 * first training step does not pay for it (on GPT-2 124M that step took 2.5x a later one, and its
 * AdamW update 16x, all of it page faults). */
static void touch_pages(void* p, size_t bytes)
{
    volatile char* c = p;
    for (size_t i = 0; i < bytes; i += 4096)
        c[i] = 0;
}

int gpt2_build_part(gpt2* m, const gpt2_config* c, const gpt2_part* part, int params_only)
{
    memset(m, 0, sizeof *m);
    if (part->num_layers < 1 || part->first_layer < 0 ||
        part->first_layer + part->num_layers > c->num_layers)
        return -1;
    m->config = *c;
    m->part = *part;
    parameter_sizes(m->param_sizes, c, part);
    for (int i = 0; i < NUM_PARAMETER_TENSORS; i++)
        m->num_parameters += m->param_sizes[i];
    size_t n = m->num_parameters;
    m->params_memory = calloc(n, sizeof(float));
    if (!params_only) {
        m->grads_memory = calloc(n, sizeof(float));
        m->m_memory = calloc(n, sizeof(float));
        m->v_memory = calloc(n, sizeof(float));
    }
    if (!m->params_memory || (!params_only && (!m->grads_memory || !m->m_memory || !m->v_memory))) {
        gpt2_free(m);
        return -1;
    }
    if (!params_only) {
        touch_pages(m->grads_memory, n * sizeof(float));
        touch_pages(m->m_memory, n * sizeof(float));
        touch_pages(m->v_memory, n * sizeof(float));
    }
    point_parameters(&m->params, m->params_memory, m->param_sizes);
    if (!params_only) point_parameters(&m->grads, m->grads_memory, m->param_sizes);
    m->n_slots = 1;
    m->loss_scale = 1.0f;
    m->mean_loss = -1.0;
    return 0;
}

int gpt2_build(gpt2* m, const gpt2_config* c)
{
    gpt2_part all = {0, c->num_layers, 1, 1};
    return gpt2_build_part(m, c, &all, 0);
}

static uint64_t splitmix(uint64_t* s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void fill_normal(float* x, size_t n, float std, uint64_t* s)
{
    for (size_t i = 0; i < n; i++) {
        double u = ((double)(splitmix(s) >> 11) + 0.5) * 0x1.0p-53;
        double v = ((double)(splitmix(s) >> 11) + 0.5) * 0x1.0p-53;
        x[i] = (float)(std * sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v));
    }
}

// a whole model only: a part takes its slice of a whole model's weights (gpt2_part_transfer)
void gpt2_init_weights(gpt2* m, uint64_t seed)
{
    const gpt2_config* c = &m->config;
    parameter_tensors* p = &m->params;
    size_t C = (size_t)c->channels, L = (size_t)c->num_layers;
    uint64_t s = seed;
    memset(m->params_memory, 0, m->num_parameters * sizeof(float));
    fill_normal(p->wte, (size_t)c->vocab_size * C, 0.02f, &s); // padded rows stay 0
    fill_normal(p->wpe, m->param_sizes[1], 0.02f, &s);
    float proj_std = 0.02f / sqrtf(2.0f * (float)L); // GPT-2: scale the residual projections
    fill_normal(p->qkvw, m->param_sizes[4], 0.02f, &s);
    fill_normal(p->attprojw, m->param_sizes[6], proj_std, &s);
    fill_normal(p->fcw, m->param_sizes[10], 0.02f, &s);
    fill_normal(p->fcprojw, m->param_sizes[12], proj_std, &s);
    for (size_t i = 0; i < L * C; i++)
        p->ln1w[i] = p->ln2w[i] = 1.0f;
    for (size_t i = 0; i < C; i++)
        p->lnfw[i] = 1.0f;
}

/* Activations are allocated once, at the first forward (or gpt2_prepare). A later forward may use
 * a smaller B or T (generation runs B = 1 over a growing T): the same memory is carved up again for
 * that shape. */
static int ensure_activations(gpt2* m, int B, int T)
{
    size_t sizes[NUM_ACTIVATION_TENSORS], n = 0;
    activation_sizes(sizes, &m->config, &m->part, B, T);
    for (int i = 0; i < NUM_ACTIVATION_TENSORS; i++)
        n += sizes[i];
    if (m->acts_memory == NULL) {
        size_t slots = (size_t)m->n_slots, bt = (size_t)B * T;
        m->num_activations = n;
        m->acts_memory = calloc(slots * n, sizeof(float));
        m->grads_acts_memory = calloc(n, sizeof(float));
        m->inputs_memory = calloc(slots * bt, sizeof(int));
        m->targets_memory = calloc(slots * bt, sizeof(int));
        if (!m->acts_memory || !m->grads_acts_memory || !m->inputs_memory || !m->targets_memory)
            return -1;
        touch_pages(m->acts_memory, slots * n * sizeof(float));
        touch_pages(m->grads_acts_memory, n * sizeof(float));
        m->max_bt = bt;
    } else if (n > m->num_activations || (size_t)B * T > m->max_bt) {
        return -1;
    }
    memcpy(m->act_sizes, sizes, sizeof sizes);
    point_activations(&m->acts, m->acts_memory + (size_t)m->slot * m->num_activations, sizes);
    point_activations(&m->grads_acts, m->grads_acts_memory, m->act_sizes);
    m->inputs = m->inputs_memory + (size_t)m->slot * m->max_bt;
    m->targets = m->targets_memory + (size_t)m->slot * m->max_bt;
    m->batch_size = B;
    m->seq_len = T;
    return 0;
}

int gpt2_prepare(gpt2* m, int B, int T, int slots)
{
    if (m->acts_memory != NULL || slots < 1 || B < 1 || T < 1 || T > m->config.max_seq_len)
        return -1;
    m->n_slots = slots;
    m->slot = 0;
    return ensure_activations(m, B, T);
}

void gpt2_use_slot(gpt2* m, int k)
{
    m->slot = k;
    if (m->acts_memory != NULL) ensure_activations(m, m->batch_size, m->seq_len);
}

float* gpt2_stage_input(gpt2* m)
{
    return m->acts.encoded;
}

const float* gpt2_stage_output(const gpt2* m)
{
    size_t BTC = (size_t)m->batch_size * m->seq_len * m->config.channels;
    return m->acts.residual3 + (size_t)(m->part.num_layers - 1) * BTC;
}

const float* gpt2_stage_input_grad(const gpt2* m)
{
    return m->grads_acts.encoded;
}

// ----------------------------------------------------------------------------
// the model

int gpt2_forward(gpt2* m, const int* inputs, const int* targets, int B, int T)
{
    if (B < 1 || T < 1 || T > m->config.max_seq_len || ensure_activations(m, B, T) != 0) return -1;
    const gpt2_config* c = &m->config;
    const int C = c->channels, L = m->part.num_layers, NH = c->num_heads, V = c->vocab_size;
    const int Vp = c->padded_vocab_size;
    const size_t BTC = (size_t)B * T * C, BT = (size_t)B * T;
    parameter_tensors p = m->params;
    activation_tensors a = m->acts;
    if (m->part.embedding) {
        memcpy(m->inputs, inputs, BT * sizeof(int));
        encoder_forward(a.encoded, inputs, p.wte, p.wpe, B, T, C);
    } // else a.encoded holds the previous stage's output
    if (!m->part.head) {
        targets = NULL;
    } else if (targets != NULL) {
        memcpy(m->targets, targets, BT * sizeof(int));
    }

    for (int l = 0; l < L; l++) {
        const float* residual = l == 0 ? a.encoded : a.residual3 + (size_t)(l - 1) * BTC;
        float* l_ln1 = a.ln1 + l * BTC;
        float* l_qkv = a.qkv + l * BTC * 3;
        float* l_atty = a.atty + l * BTC;
        float* l_preatt = a.preatt + (size_t)l * B * NH * T * T;
        float* l_att = a.att + (size_t)l * B * NH * T * T;
        float* l_attproj = a.attproj + l * BTC;
        float* l_residual2 = a.residual2 + l * BTC;
        float* l_ln2 = a.ln2 + l * BTC;
        float* l_fch = a.fch + l * BTC * 4;
        float* l_fch_gelu = a.fch_gelu + l * BTC * 4;
        float* l_fcproj = a.fcproj + l * BTC;
        float* l_residual3 = a.residual3 + l * BTC;
        layernorm_forward(l_ln1, a.ln1_mean + l * BT, a.ln1_rstd + l * BT, residual, p.ln1w + l * C,
                          p.ln1b + l * C, B, T, C);
        matmul_forward(l_qkv, l_ln1, p.qkvw + (size_t)l * 3 * C * C, p.qkvb + l * 3 * C, B * T, C,
                       3 * C);
        attention_forward(l_atty, l_preatt, l_att, l_qkv, B, T, C, NH);
        matmul_forward(l_attproj, l_atty, p.attprojw + (size_t)l * C * C, p.attprojb + l * C, B * T,
                       C, C);
        residual_forward(l_residual2, residual, l_attproj, BTC);
        layernorm_forward(l_ln2, a.ln2_mean + l * BT, a.ln2_rstd + l * BT, l_residual2,
                          p.ln2w + l * C, p.ln2b + l * C, B, T, C);
        matmul_forward(l_fch, l_ln2, p.fcw + (size_t)l * 4 * C * C, p.fcb + l * 4 * C, B * T, C,
                       4 * C);
        gelu_forward(l_fch_gelu, l_fch, BTC * 4);
        matmul_forward(l_fcproj, l_fch_gelu, p.fcprojw + (size_t)l * C * 4 * C, p.fcprojb + l * C,
                       B * T, 4 * C, C);
        residual_forward(l_residual3, l_residual2, l_fcproj, BTC);
        if (m->between_layers != NULL) m->between_layers(m->between_ctx);
    }
    if (!m->part.head) {
        m->mean_loss = -1.0;
        return 0;
    }
    const float* last = a.residual3 + (size_t)(L - 1) * BTC;
    layernorm_forward(a.lnf, a.lnf_mean, a.lnf_rstd, last, p.lnfw, p.lnfb, B, T, C);
    matmul_forward(a.logits, a.lnf, p.wte, NULL, B * T, C, Vp); // LM head tied to wte
    softmax_forward(a.probs, a.logits, B, T, V, Vp);
    if (targets == NULL) {
        m->mean_loss = -1.0;
        return 0;
    }
    crossentropy_forward(a.losses, a.probs, targets, B, T, Vp);
    double sum = 0.0;
    for (size_t i = 0; i < BT; i++)
        sum += a.losses[i];
    m->mean_loss = sum / (double)BT;
    return 0;
}

void gpt2_zero_grad(gpt2* m)
{
    memset(m->grads_memory, 0, m->num_parameters * sizeof(float));
}

void gpt2_backward(gpt2* m, const float* dout)
{
    const gpt2_config* c = &m->config;
    const int B = m->batch_size, T = m->seq_len;
    const int C = c->channels, L = m->part.num_layers, NH = c->num_heads, V = c->vocab_size;
    const int Vp = c->padded_vocab_size;
    const size_t BTC = (size_t)B * T * C, BT = (size_t)B * T;
    parameter_tensors p = m->params, g = m->grads;
    activation_tensors a = m->acts, ga = m->grads_acts;
    memset(m->grads_acts_memory, 0, m->num_activations * sizeof(float));

    const float* last = a.residual3 + (size_t)(L - 1) * BTC;
    float* dlast = ga.residual3 + (size_t)(L - 1) * BTC;
    if (m->part.head) {
        crossentropy_softmax_backward(ga.logits, a.probs, m->targets, B, T, V, Vp, m->loss_scale);
        matmul_backward(ga.lnf, g.wte, NULL, ga.logits, a.lnf, p.wte, B * T, C, Vp);
        layernorm_backward(dlast, g.lnfw, g.lnfb, ga.lnf, last, p.lnfw, a.lnf_mean, a.lnf_rstd, B,
                           T, C);
    } else {
        memcpy(dlast, dout, BTC * sizeof(float));
    }
    for (int l = L - 1; l >= 0; l--) {
        const float* residual = l == 0 ? a.encoded : a.residual3 + (size_t)(l - 1) * BTC;
        float* dresidual = l == 0 ? ga.encoded : ga.residual3 + (size_t)(l - 1) * BTC;
        size_t o1 = l * BTC, o3 = l * BTC * 3, o4 = l * BTC * 4;
        size_t oa = (size_t)l * B * NH * T * T;
        residual_backward(ga.residual2 + o1, ga.fcproj + o1, ga.residual3 + o1, BTC);
        matmul_backward(ga.fch_gelu + o4, g.fcprojw + (size_t)l * C * 4 * C, g.fcprojb + l * C,
                        ga.fcproj + o1, a.fch_gelu + o4, p.fcprojw + (size_t)l * C * 4 * C, B * T,
                        4 * C, C);
        gelu_backward(ga.fch + o4, a.fch + o4, ga.fch_gelu + o4, BTC * 4);
        matmul_backward(ga.ln2 + o1, g.fcw + (size_t)l * 4 * C * C, g.fcb + l * 4 * C, ga.fch + o4,
                        a.ln2 + o1, p.fcw + (size_t)l * 4 * C * C, B * T, C, 4 * C);
        layernorm_backward(ga.residual2 + o1, g.ln2w + l * C, g.ln2b + l * C, ga.ln2 + o1,
                           a.residual2 + o1, p.ln2w + l * C, a.ln2_mean + l * BT,
                           a.ln2_rstd + l * BT, B, T, C);
        residual_backward(dresidual, ga.attproj + o1, ga.residual2 + o1, BTC);
        matmul_backward(ga.atty + o1, g.attprojw + (size_t)l * C * C, g.attprojb + l * C,
                        ga.attproj + o1, a.atty + o1, p.attprojw + (size_t)l * C * C, B * T, C, C);
        attention_backward(ga.qkv + o3, ga.preatt + oa, ga.att + oa, ga.atty + o1, a.qkv + o3,
                           a.att + oa, B, T, C, NH);
        matmul_backward(ga.ln1 + o1, g.qkvw + (size_t)l * 3 * C * C, g.qkvb + l * 3 * C,
                        ga.qkv + o3, a.ln1 + o1, p.qkvw + (size_t)l * 3 * C * C, B * T, C, 3 * C);
        layernorm_backward(dresidual, g.ln1w + l * C, g.ln1b + l * C, ga.ln1 + o1, residual,
                           p.ln1w + l * C, a.ln1_mean + l * BT, a.ln1_rstd + l * BT, B, T, C);
        if (m->between_layers != NULL) m->between_layers(m->between_ctx);
    }
    if (m->part.embedding) encoder_backward(g.wte, g.wpe, ga.encoded, m->inputs, B, T, C);
}

int gpt2_layout(const gpt2* m, edgc_tensor** out, size_t* n)
{
    const gpt2_config* c = &m->config;
    size_t C = (size_t)c->channels, L = (size_t)m->part.num_layers;
    // Per-layer matrices are separate entries: each is compressed as its own low-rank matrix.
    // rows/cols of each parameter tensor, or 0 for a vector that is passed as one entry
    const size_t mat_rows[NUM_PARAMETER_TENSORS] = {(size_t)c->padded_vocab_size,
                                                    (size_t)c->max_seq_len,
                                                    0,
                                                    0,
                                                    3 * C,
                                                    0,
                                                    C,
                                                    0,
                                                    0,
                                                    0,
                                                    4 * C,
                                                    0,
                                                    C,
                                                    0,
                                                    0,
                                                    0};
    const int per_layer[NUM_PARAMETER_TENSORS] = {0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0};
    edgc_tensor* t = calloc(NUM_PARAMETER_TENSORS * (L + 1), sizeof *t);
    if (t == NULL) return -1;
    size_t k = 0, off = 0;
    for (int i = 0; i < NUM_PARAMETER_TENSORS; i++) {
        size_t size = m->param_sizes[i];
        if (size == 0) continue; // not in this part
        if (mat_rows[i] == 0) {  // vectors: one dense entry for the whole tensor
            t[k++] = (edgc_tensor){off, size, 1};
        } else {
            size_t count = per_layer[i] ? L : 1, each = size / count;
            for (size_t l = 0; l < count; l++)
                t[k++] = (edgc_tensor){off + l * each, mat_rows[i], each / mat_rows[i]};
        }
        off += size;
    }
    *out = t;
    *n = k;
    return 0;
}

double gpt2_flops_per_token(const gpt2_config* c, int T)
{
    // 6 flops per parameter-token for the matmuls (2 forward, 4 backward), plus attention's
    // q.k and att.v: 2 * 2 * T/2 * C per layer forward on average (causal), times 3.
    double C = c->channels, L = c->num_layers, Vp = c->padded_vocab_size;
    double matmul_params = L * 12.0 * C * C + Vp * C;
    return 6.0 * matmul_params + 3.0 * L * 2.0 * T * C;
}

void gpt2_free(gpt2* m)
{
    free(m->params_memory);
    free(m->grads_memory);
    free(m->m_memory);
    free(m->v_memory);
    free(m->acts_memory);
    free(m->grads_acts_memory);
    free(m->inputs_memory);
    free(m->targets_memory);
    memset(m, 0, sizeof *m);
}
