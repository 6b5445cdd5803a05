/*
 * sae_metrics — an SAE's quality, with the SAELens/SAEBench "core" definitions (DESIGN §8):
 *
 * Included by: sae and the wings above it (store, graders, evals, cli).
 *
 *   l0                 mean over tokens of #{i : f_i > 0}
 *   l1                 mean over tokens of Σ_i f_i
 *   mse                mean over tokens of ||x - x̂||² (summed over d_in; SAELens' "mse" is the
 *                      mean over elements: divide by d_in to compare)
 *   explained_variance 1 - Σ_t ||x_t - x̂_t||² / Σ_t ||x_t - mean(x)||², mean over ALL tokens
 *                      evaluated; fvu = 1 - explained_variance. This is the number to quote.
 *   explained_variance_legacy  mean over sequences of the mean over their tokens of
 *                      1 - ||x_t - x̂_t||² / ||x_t - mean_seq(x)||² (SAELens' legacy per-token
 *                      ratio, its mean taken per batch = per sequence here); differs a lot.
 *   l2_ratio           mean over tokens of ||x̂|| / ||x||
 *   relative_reconstruction_bias  mean ||x̂||² / mean <x, x̂>
 *   dead_frac          latents that fired on none of the tokens evaluated
 *   density histogram  log10 of each live latent's firing density, in bins of 0.5 from -8 to 0
 *   ce_clean/ce_sae/ce_zero  mean next-token cross-entropy (nats) with the hook untouched,
 *                      replaced by x̂ (the SAE spliced in, no error term), replaced by zeros
 *   ce_loss_score      (ce_zero - ce_sae) / (ce_zero - ce_clean)   ("CE loss recovered")
 *   kl_sae, kl_zero    mean per-token KL(clean || edited) over the same positions
 *   kl_div_score       (kl_zero - kl_sae) / kl_zero
 * Positions: CE and KL are taken over positions 0..T-2 of each sequence (those that predict a
 * next token); reconstruction metrics over the tokens the caller passes.
 *
 * Usage: sae_metrics_init(), then per sequence sae_metrics_add_recon() and
 * sae_metrics_add_logits(), then sae_metrics_finish(); sae_metrics_release() frees.
 */
#ifndef EV_SAE_METRICS_H
#define EV_SAE_METRICS_H

#include <stdint.h>

#include "base/util.h"

#define SAE_DENSITY_BINS 16 /* [-8, -7.5), ..., [-0.5, 0] of log10 density */

struct sae_metrics_acc {
    int      D, S;
    int64_t  n_tok, n_seq, n_pos;
    double  *sum_x;        /* (D) */
    double   sum_x2, sum_err, sum_l0, sum_l1, sum_l2_ratio, sum_xh2, sum_dot;
    double   sum_ev_legacy;
    int64_t *fire;         /* (S) */
    double   ce_clean, ce_sae, ce_zero, kl_sae, kl_zero;
};

struct sae_metrics {
    int64_t n_tokens, n_positions;
    double  l0, l1, mse, explained_variance, explained_variance_legacy, fvu;
    double  l2_ratio, rel_recon_bias, dead_frac;
    int64_t density_hist[SAE_DENSITY_BINS]; /* live latents per log10-density bin */
    int64_t n_dead;
    double  ce_clean, ce_sae, ce_zero, ce_loss_score;
    double  kl_sae, kl_zero, kl_div_score;
    int     has_ce; /* 0 when no logits were added */
};

void sae_metrics_init(struct sae_metrics_acc *a, int d_in, int d_sae);
void sae_metrics_release(struct sae_metrics_acc *a);
/* One sequence's n tokens: x, x_hat (n, D), f (n, S). */
void sae_metrics_add_recon(struct sae_metrics_acc *a, const float *x, const float *x_hat,
                           const float *f, int n);
/* One sequence's logits (T, V) from the clean, spliced and zero-ablated runs; targets (T)
 * are the sequence's tokens (position t predicts targets[t + 1]). */
void sae_metrics_add_logits(struct sae_metrics_acc *a, const float *clean, const float *spliced,
                            const float *zero, const int *targets, int T, int V);
void sae_metrics_finish(const struct sae_metrics_acc *a, struct sae_metrics *out);

/* The density histogram as JSON: {"bin_lo": [-8, ...], "count": [...], "dead": N}; caller
 * frees. */
char *sae_metrics_hist_json(const struct sae_metrics *m);

#endif
