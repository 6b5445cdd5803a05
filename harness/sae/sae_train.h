/*
 * sae_train — training a standard (ReLU) SAE in C, the seed paper's recipe:
 *
 * Included by: sae and the wings above it (store, graders, evals, cli).
 *
 *   x_n  = s * x, with s = sqrt(d_in) / E||x|| estimated on the first norm_tokens rows
 *   f    = ReLU(W_e (x_n - b_d) + b_e)
 *   x̂_n  = W_d f + b_d
 *   L    = mean_b ||x_n - x̂_n||² + λ_t mean_b Σ_i f_i ||W_d,i||₂
 *          (squared L2 summed over d_in, averaged over the tokens of a batch)
 *
 * λ_t rises linearly from 0 to λ over the first l1_warmup_frac of the steps; the learning rate
 * is constant, then decays linearly to 0 over the last lr_decay_frac (the paper's April 2024
 * update). Adam (β1, β2, ε). Decoder rows start with random directions and norm init_norm, the
 * encoder as the decoder's transpose, both biases zero. A feature is dead when it has not fired
 * on any of the last dead_window tokens seen (or on none of the tokens seen, before that many).
 *
 * The step exploits the sparsity of f: the encoder product is one cblas_sgemm; once f is
 * sparse (at most 5% non-zero, i.e. after the first steps) decoding, the decoder gradient, the
 * encoder gradient and the bias gradients visit only the (token, latent) pairs with f > 0 (a
 * CSR of f is transposed per feature, so every gradient row is written by one thread); while
 * f is dense they are cblas_sgemm products. Internally W_e is kept transposed (d_sae, d_in) so
 * these rows are contiguous.
 *
 * Checkpoints (optional): one file, written atomically (temporary name, fsync, rename), so a
 * SIGKILL at any moment leaves the previous checkpoint or the new one. Format: magic
 * "EVSAECK1", then a header of int64/float64 fields, then params, Adam m and v and the
 * dead-feature counters as float32/int64. Resume needs the same config (a config hash is
 * stored; a mismatch is an error with a hint); the activation stream is replayed with
 * acts_stream_skip(), so a resumed run gives the same weights as an uninterrupted one.
 *
 * Determinism: for a given seed, data and thread count the result is bit-for-bit the same.
 */
#ifndef EV_SAE_TRAIN_H
#define EV_SAE_TRAIN_H

#include <stdint.h>

#include "sae/acts.h"
#include "sae/sae.h"
#include "base/util.h"

struct sae_train_params {
    int      d_sae;
    double   l1;             /* λ */
    double   lr;             /* Adam learning rate */
    double   beta1, beta2, eps;
    int      batch;          /* tokens per step */
    int64_t  n_tokens;       /* total training tokens (rounded down to whole batches) */
    double   l1_warmup_frac; /* of the steps */
    double   lr_decay_frac;  /* of the steps, at the end */
    int64_t  norm_tokens;    /* rows used to estimate the normalisation factor */
    int64_t  dead_window;    /* tokens */
    double   init_norm;      /* decoder row norm at init */
    int64_t  shuffle_tokens; /* shuffle buffer */
    uint64_t seed;
    int      log_every;      /* steps between log callbacks (0: never) */
    int      ckpt_every;     /* steps between checkpoints (0: only at the end) */
    int64_t  stop_after;     /* tests: behave as if interrupted once this step is reached */
};

/* Defaults: lr 1e-3, betas 0.9/0.999, eps 1e-8, batch 1024, l1 5, warm-up 5%, decay 20%,
 * norm_tokens 65536, dead_window 100000, init_norm 0.1, shuffle 65536, seed 0, log_every 100. */
struct sae_train_params sae_train_default_params(void);

/* What one step measured, on the normalised inputs. */
struct sae_step_stats {
    double loss, mse, l1; /* l1: mean_b Σ f_i ||W_d,i|| (the unweighted penalty) */
    double l0;            /* mean number of f > 0 per token */
    double fvu;           /* Σ||x - x̂||² / Σ||x - mean_batch(x)||² over the batch */
};

/* One logged point. */
struct sae_train_log {
    int64_t step, n_steps, tokens;
    double  lambda, lr, elapsed_s;
    struct sae_step_stats st;
    double  dead_frac;
};

typedef void sae_train_log_fn(void *ctx, const struct sae_train_log *lg);

/*
 * Trains on the shuffled stream of acts (acts_stream_start is called here with the seed).
 * base carries the hook/model names to record; d_in must equal acts_d_in (else EV_EFAIL).
 * ckpt_path may be NULL (no checkpoints, no resume). On success *out (caller frees with
 * sae_free) holds weights for NORMALISED inputs, and *norm_factor is s, to be passed as `fold`
 * to sae_save(), which folds it in. *final_log gets the last statistics.
 * An interrupt (ev_interrupted) writes a checkpoint and returns EV_EINTR.
 */
int sae_train_run(const struct sae_train_params *p, const struct sae_config *base,
                  struct acts *acts, const char *ckpt_path, sae_train_log_fn *log_fn,
                  void *log_ctx, struct sae **out, double *norm_factor,
                  struct sae_train_log *final_log, struct ev_err *err);

/*
 * The loss and its gradient for a batch x (B, d_in) of already normalised inputs, in the SAE
 * layout (grad has the shape of s: caller makes it with sae_new(&s->cfg)). s must be a
 * standard SAE with apply_b_dec_to_input. Exposed for tests against PyTorch and finite
 * differences; the trainer uses the same kernel.
 */
enum sae_grad_path {
    SAE_GRAD_AUTO,   /* dense BLAS products while f is dense (> 5% non-zero), else sparse */
    SAE_GRAD_SPARSE, /* visit only the non-zeros of f */
    SAE_GRAD_DENSE,  /* cblas_sgemm throughout */
};
double sae_loss_grad(const struct sae *s, const float *x, int B, double l1, struct sae *grad,
                     struct sae_step_stats *st, enum sae_grad_path path);

/* For benchmarks: runs steps training steps (after one warm-up) of batch x (B, d_in), already
 * normalised, from the weights of init (a standard SAE), and returns seconds per step; *l0 gets
 * the mean L0 over the timed steps. */
double sae_train_bench(const struct sae *init, const float *x, int B, int steps, double l1,
                       double *l0);

/* Fraction of features dead, from per-feature last-fired token counts (see top). */
double sae_dead_fraction(const int64_t *last_fired, int d_sae, int64_t tokens_seen,
                         int64_t window);

#endif
