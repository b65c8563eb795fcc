/*
 * gpt2.h - a GPT-2 model in plain C: learned token and position embeddings, L pre-LayerNorm
 * blocks (causal multi-head attention, GELU-tanh MLP, biases), a final LayerNorm and an LM head
 * tied to the token embedding. Forward and backward are written out layer by layer in gpt2.c.
 *
 * Dimension letters, used throughout:
 *   B = batch size, T = sequence length, C = channels, NH = heads, L = layers,
 *   V = vocabulary size, Vp = V padded (rows of wte beyond V are never read as logits).
 *
 * Parameters, gradients and AdamW moments each live in one contiguous buffer, in the order of
 * llm.c's GPT-2 checkpoints, so the gradient is one flat buffer with a known layout of matrices
 * (gpt2_layout) and the weights load from and save to llm.c-format files unchanged.
 *
 * A pipeline stage holds a part of the model (gpt2_part): a contiguous range of blocks, plus the
 * embeddings on the first stage and the final LayerNorm and LM head on the last. A part's buffer
 * has the same order with the absent tensors empty and the per-layer tensors cut to its layers,
 * so gpt2_part_transfer moves it to and from a whole model's buffer slice by slice.
 */
#ifndef EDGC_TRAIN_GPT2_H
#define EDGC_TRAIN_GPT2_H

#include <stddef.h>
#include <stdint.h>

#include "edgc.h"

typedef struct gpt2_config {
    int max_seq_len;       /* maxT: rows of wpe */
    int vocab_size;        /* V */
    int padded_vocab_size; /* Vp >= V */
    int num_layers;        /* L */
    int num_heads;         /* NH, divides C */
    int channels;          /* C */
} gpt2_config;

#define NUM_PARAMETER_TENSORS 16
typedef struct parameter_tensors {
    float* wte;      /* (Vp, C) */
    float* wpe;      /* (maxT, C) */
    float* ln1w;     /* (L, C) */
    float* ln1b;     /* (L, C) */
    float* qkvw;     /* (L, 3*C, C) */
    float* qkvb;     /* (L, 3*C) */
    float* attprojw; /* (L, C, C) */
    float* attprojb; /* (L, C) */
    float* ln2w;     /* (L, C) */
    float* ln2b;     /* (L, C) */
    float* fcw;      /* (L, 4*C, C) */
    float* fcb;      /* (L, 4*C) */
    float* fcprojw;  /* (L, C, 4*C) */
    float* fcprojb;  /* (L, C) */
    float* lnfw;     /* (C) */
    float* lnfb;     /* (C) */
} parameter_tensors;

#define NUM_ACTIVATION_TENSORS 23
typedef struct activation_tensors {
    float* encoded;   /* (B, T, C) */
    float* ln1;       /* (L, B, T, C) */
    float* ln1_mean;  /* (L, B, T) */
    float* ln1_rstd;  /* (L, B, T) */
    float* qkv;       /* (L, B, T, 3*C) */
    float* atty;      /* (L, B, T, C) */
    float* preatt;    /* (L, B, NH, T, T) */
    float* att;       /* (L, B, NH, T, T) */
    float* attproj;   /* (L, B, T, C) */
    float* residual2; /* (L, B, T, C) */
    float* ln2;       /* (L, B, T, C) */
    float* ln2_mean;  /* (L, B, T) */
    float* ln2_rstd;  /* (L, B, T) */
    float* fch;       /* (L, B, T, 4*C) */
    float* fch_gelu;  /* (L, B, T, 4*C) */
    float* fcproj;    /* (L, B, T, C) */
    float* residual3; /* (L, B, T, C) */
    float* lnf;       /* (B, T, C) */
    float* lnf_mean;  /* (B, T) */
    float* lnf_rstd;  /* (B, T) */
    float* logits;    /* (B, T, Vp) */
    float* probs;     /* (B, T, Vp) */
    float* losses;    /* (B, T) */
} activation_tensors;

/* Which part of the model an object holds. The whole model: {0, L, 1, 1}. */
typedef struct gpt2_part {
    int first_layer, num_layers; /* blocks [first_layer, first_layer + num_layers) */
    int embedding;               /* wte and wpe; the forward starts from token ids */
    int head; /* final LayerNorm and the LM head (wte, tied); computes the loss */
} gpt2_part;

typedef struct gpt2 {
    gpt2_config config; /* the whole model's shape, also for a part */
    gpt2_part part;
    parameter_tensors params;
    size_t param_sizes[NUM_PARAMETER_TENSORS];
    float* params_memory;
    size_t num_parameters;
    parameter_tensors grads;
    float* grads_memory;
    float* m_memory; /* AdamW first moment */
    float* v_memory; /* AdamW second moment */
    activation_tensors acts;
    activation_tensors grads_acts;
    size_t act_sizes[NUM_ACTIVATION_TENSORS];
    float* acts_memory;
    float* grads_acts_memory;
    size_t num_activations;  /* floats of one slot of activations (their grads: one slot) */
    size_t max_bt;           /* B * T the input buffers hold */
    int batch_size, seq_len; /* shape of the last forward */
    int n_slots, slot;       /* activation slots (micro-batches in flight) and the one in use */
    int* inputs_memory;      /* n_slots x (B, T) */
    int* targets_memory;
    int* inputs;      /* (B, T) copy of the current slot's inputs */
    int* targets;     /* (B, T) or unused */
    float loss_scale; /* the backward's d(loss) factor: 1 / micro-batches; default 1 */
    /* called after every block in forward and backward, when set: a pipeline progresses its
     * messages there (MPI moves a large send only while the sender is inside MPI) */
    void (*between_layers)(void* ctx);
    void* between_ctx;
    double mean_loss; /* last forward's loss, -1 without targets */
} gpt2;

/* Checks a config; writes a one-line reason. 0 if valid. */
int gpt2_config_check(const gpt2_config* c, char* why, size_t why_len);
/* Allocates parameters, gradients and moments (zeroed). 0 on success, -1 out of memory. */
int gpt2_build(gpt2* m, const gpt2_config* c);
/* The same for a part of the model; params_only: parameters alone (a whole model to load, save or
 * sample from). 0 on success, -1 out of memory or a part outside the model. */
int gpt2_build_part(gpt2* m, const gpt2_config* c, const gpt2_part* part, int params_only);
/* Stage s of P: layers split as evenly as possible, earlier stages taking the remainder. */
gpt2_part gpt2_stage_part(int num_layers, int P, int s);
/* Number of parameters of a part. */
size_t gpt2_part_size(const gpt2_config* c, const gpt2_part* part);
/* Copies a part's parameters from a whole model's buffer (to_whole = 0) or back (to_whole = 1). */
void gpt2_part_transfer(const gpt2_config* c, const gpt2_part* part, float* whole, float* mine,
                        int to_whole);
/* Allocates `slots` sets of activations for (B, T) micro-batches before the first forward (a
 * pipeline keeps several in flight). 0 on success, -1 out of memory or already allocated. */
int gpt2_prepare(gpt2* m, int B, int T, int slots);
/* Makes slot k current: the next forward fills it, the next backward reads it. */
void gpt2_use_slot(gpt2* m, int k);
/* The current slot's input activation (B, T, C) of a part without the embedding: the previous
 * stage's output goes here before the forward. */
float* gpt2_stage_input(gpt2* m);
/* The current slot's output activation (B, T, C) of a part without the head, after a forward. */
const float* gpt2_stage_output(const gpt2* m);
/* After a backward of a part without the embedding: d(loss)/d(its input), (B, T, C). */
const float* gpt2_stage_input_grad(const gpt2* m);
/* GPT-2 initialisation: N(0, 0.02), residual projections N(0, 0.02 / sqrt(2 L)), LayerNorm
 * weights 1, biases 0; padded vocabulary rows 0. Deterministic in seed. */
void gpt2_init_weights(gpt2* m, uint64_t seed);
/* Forward pass over inputs (B, T), token ids < V; with targets (B, T) it also computes the mean
 * loss. Activations are allocated at the first call; later calls may use a shape that fits in
 * them. 0 on success, -1 out of memory, T > max_seq_len, or a shape larger than the first.
 * A part without the embedding ignores inputs and starts from gpt2_stage_input; one without the
 * head ignores targets and leaves its output in gpt2_stage_output. */
int gpt2_forward(gpt2* m, const int* inputs, const int* targets, int B, int T);
void gpt2_zero_grad(gpt2* m);
/* Backward from the current slot's forward: accumulates into grads. A part with the head starts
 * from the loss (the forward must have had targets; dout is ignored), any other part from dout,
 * d(loss)/d(its output), (B, T, C). */
void gpt2_backward(gpt2* m, const float* dout);
/* The gradient's layout for the reducer: one entry per matrix (per layer) and per vector of the
 * part. Caller frees *out. 0 on success. */
int gpt2_layout(const gpt2* m, edgc_tensor** out, size_t* n);
/* Floating-point operations of one training step (forward + backward) per token. */
double gpt2_flops_per_token(const gpt2_config* c, int T);
void gpt2_free(gpt2* m);

#endif
