/*
 * sae_random — the random-direction control of an SAE (issue 17.2): a dictionary of the same
 * shape whose features are random directions, calibrated so that it fires as often as the
 * real one. Evaluating it beside the real SAE says how much of a score a feature earns by
 * being a direction that fires that often, and how much by being learnt.
 *
 * Included by: sae and the wings above it (evals: the controls).
 *
 * The control of a real SAE R (d_in, d_sae) built on calibration activations x (n, d_in) at
 * R's hook, with a seed:
 *   W_dec row i   a random unit vector (standard normal draws, normalised), seeded
 *   W_enc         W_dec^T (the encoder is the transpose)
 *   b_dec         R's b_dec, with R's apply_b_dec_to_input (the same input centring)
 *   arch          standard (ReLU), b_enc_i set per latent so that latent i fires on exactly
 *                 as many tokens of x as R's latent i does: with p_ti = (x_t - b_dec) . d_i
 *                 sorted descending s_0 >= s_1 >= ..., and c_i R's count, b_enc_i = -(s_{c_i-1}
 *                 + s_{c_i}) / 2 (midway between the last token that fires and the first that
 *                 does not, so that float rounding in the encoder does not move the boundary);
 *                 c_i = 0: -(s_0 + 1), c_i = n: -(s_{n-1} - 1).
 * So its L0 on x equals R's (exactly, ties between tokens aside), latent for latent; a dead
 * latent of R is dead in the control too. A TopK or JumpReLU R gets a ReLU control with the
 * same per-latent densities (its L0 per token varies where R's TopK is fixed). A transcoder
 * whose input and output have one width (e.g. ln2.hook_normalized -> hook_mlp_out) gets a
 * transcoder control: the same hooks, the decoder rows written at the output hook and read
 * (transposed) at the input one, no skip term (W_skip, an affine skip: not a random
 * direction), b_dec its own; one whose widths differ is refused (sae_random_check). The same (R, x, seed) gives the same control,
 * bit for bit (the pre-activations are summed in double, in order).
 */
#ifndef EV_SAE_RANDOM_H
#define EV_SAE_RANDOM_H

#include <stdint.h>

#include "sae/sae.h"

/* EV_OK when a control of an SAE with config c can be built; EV_EFAIL naming the hooks and
 * widths for a transcoder with d_out != d_in. */
int sae_random_check(const struct sae_config *c, struct ev_err *err);

/* Builds the control of real on x (n, d_in), n >= 1: the tokens as real sees them. x_ctl
 * (n, d_in): the same tokens as the control will see them (NULL: x). They differ for an SAE
 * trained on TransformerLens' centred GPT-2 stream (sae_needs_centering): a control read back
 * by sae_load() is never centred, so it is calibrated on the raw stream. *out: caller frees
 * with sae_free(); its cfg is real's (hooks, model, dtype) with arch standard and the cfg_json
 * NULL (sae_save writes one). EV_EFAIL when sae_random_check refuses it. */
int sae_random_control(const struct sae *real, const float *x, const float *x_ctl, int n,
                       uint64_t seed, struct sae **out, struct ev_err *err);

/* How many tokens of x (n, d_in) each latent of s fires on (f > 0): counts (d_sae). Encodes
 * in chunks of tokens. Returns the mean L0 (the counts' sum / n). */
double sae_random_fire_counts(const struct sae *s, const float *x, int n, int64_t *counts);

#endif
