/*
 * plan — what a heavy command will take on this machine, worked out before anything heavy is
 * loaded: memory (the model's weights in the dtype they will be kept in — heap or mapped from
 * the safetensors — the forward state for the context, the SAE and its training state, the
 * corpus and the command's buffers), disk (activation caches, the index's rows) and a time
 * estimate (the matrix-product FLOPs of the forward passes and of the SAE over the tokens, at
 * this machine's float32 rate measured on the spot). From the checkpoint's config.json and the
 * safetensors headers only, so a real-size config with no weights can be planned.
 *
 * Included by: evals and cli.
 *
 * The numbers are estimates from the shapes, not measurements of the run: the weights, the
 * state (model_state_bytes) and the activation-cache sizes are exact; the time assumes the
 * products run at the measured rate (decoding is memory-bound and slower); the command's own
 * small buffers are approximate.
 */
#ifndef EV_PLAN_H
#define EV_PLAN_H

#include <stddef.h>
#include <stdint.h>

#include "base/util.h"
#include "model/model.h"

/* What a command is about to do (filled by the command from its options). */
struct plan_job {
    const char *command;     /* e.g. "index" */
    const char *model_path;  /* NULL: model_resolve_path()'s default */
    int         model_flags; /* MODEL_LOAD_F32 / _BF16 (--weights-dtype) */
    const char *sae_path;    /* an SAE folder read for its size, or NULL */
    int         ctx;         /* positions per forward pass (0: min(seq_len, 128)) */
    int         state_flags; /* MODEL_STATE_GRAD for gradients */
    int64_t     tokens;      /* tokens through the model (forward passes x ctx) */
    int         passes;      /* forward passes per sequence (sae-metrics: 3), 0 = 1 */
    int         d_sae;       /* latents of an SAE being trained (train-sae, sweep), or 0 */
    int         sae_train;   /* the SAE is trained: Adam moments and gradients on top */
    int         batch;       /* SAE training batch (tokens per step), for its buffers */
    double      sae_work;    /* sum of tokens x d_sae over the SAEs trained (sweep); 0: tokens x
                              * d_sae of the one */
    const char *cache_hook;  /* an activation cache of this hook is written (tokens x width) */
    const char *mem_hook;    /* the activations at this hook are held (tokens x width) */
    int         sae_acts_held; /* ... or at the SAE's hook (its cfg.json's hook_name) */
    int         logit_rows;  /* rows of logits held (T x V floats each) */
    int         index_rows;  /* the index stores this many windows per latent ... */
    int         index_window; /* ... of 2 window + 1 tokens each */
    int64_t     disk_bytes;  /* other bytes the command writes */
    const char *disk_dir;    /* where they go (its file system is checked), NULL: "." */
    int64_t     work_bytes;  /* other buffers the command holds */
    const char *lower;       /* what lowers the disk figure, for the refusal: "--tokens" */
    const char *lower_mem;   /* what lowers the memory (besides --weights-dtype bf16 for an
                              * F32 model), e.g. "--ctx"; NULL: "a smaller --model" */
};

struct plan {
    struct model_config cfg;
    int64_t             params;
    enum model_dtype    dtype;        /* the matrices' dtype as kept */
    int                 has_weights;  /* the weight files are present */
    size_t weights_heap, weights_mapped; /* heap vs mapped from the safetensors */
    size_t state, sae, work, mem_total;
    size_t disk;
    double flops, gflops_s, seconds;
    int64_t mem_available, disk_available; /* -1: unknown */
};

/* Works out j on this machine into p; EV_EFAIL naming the file when the model's config or
 * the SAE cannot be read. */
int plan_estimate(const struct plan_job *j, struct plan *p, struct ev_err *err);
/* 1 when the plan fits the available memory and disk (unknown availability fits). */
int plan_fits(const struct plan *p);
/* The report `evalrun plan` prints: several lines, each "name: value". Caller frees. */
char *plan_report(const struct plan_job *j, const struct plan *p);
/* The one-line refusal: the command, what it needs against what is available, and the
 * options that lower it. Writes into err and returns EV_EFAIL. */
int plan_refuse(const struct plan_job *j, const struct plan *p, struct ev_err *err);
/* Bytes as "12.3 GiB" (buf of at least 16). */
const char *plan_bytes(double b, char *buf, size_t n);

#endif
