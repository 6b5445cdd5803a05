/*
 * sae_analysis — the paper's per-feature analyses that need only weights (and activations):
 *   neighbourhoods  the n features whose decoder rows have the highest cosine similarity
 *                   with feature i's (i itself excluded; ties by lower index);
 *   logit effects   W_dec,i pushed through the unembedding without the final norm
 *                   (effect_v = <W_dec,i, W_U[v]>; an attn.hook_z row through its layer's W_O
 *                   first): the n most promoted and n most suppressed tokens;
 *   vs neurons      the best Pearson correlation of a feature's activation with any column of
 *                   a neuron-activation matrix over the same tokens (the caller supplies the
 *                   MLP activations at the SAE's layer).
 * Pure functions over arrays; the caller stores the results (tables of migration 005).
 *
 * Included by: sae and the wings above it (store, graders, evals, cli).
 */
#ifndef EV_SAE_ANALYSIS_H
#define EV_SAE_ANALYSIS_H

#include "sae/sae.h"

/* nb (n_ids, n) feature ids and cos (n_ids, n) cosines, best first. Rows of zero norm have
 * cosine 0 with everything. n <= d_sae - 1. */
void sae_neighbors(const struct sae *s, const int *ids, int n_ids, int n, int *nb, float *cos);
void sae_neighbors_ref(const struct sae *s, const int *ids, int n_ids, int n, int *nb,
                       float *cos);

/* The direct logit effects W_dec[id] . W_U^T of features ids[0..n_ids) through m's unembedding
 * (model_unembed: in the dtype the model keeps it; d_out must be the model's d_model, and the
 * decoder must write the residual stream's basis: sae_hook_in_residual()).
 * top/bot (n_ids, n) token ids and top_v/bot_v their effects, top descending, bottom
 * ascending, over the ids that are tokens (model_vocab_tokens(): a padded vocabulary's extra
 * ids never appear). n <= model_vocab_tokens(m). */
struct model;
struct model_hook;
void sae_logit_effects(const struct sae *s, const struct model *m, const int *ids, int n_ids,
                       int n, int *top, float *top_v, int *bot, float *bot_v);
/* The same for a decoder writing hook h (sae_hook_has_logits(m, h) must hold; NULL: the
 * residual stream): an attn.hook_z row (NH*HS) is first projected through block h->layer's
 * W_O (model_attn_project: W_dec[id] . W_O^T . W_U^T, no bias), as SAELens' dashboards do. */
void sae_logit_effects_at(const struct sae *s, const struct model *m, const struct model_hook *h,
                          const int *ids, int n_ids, int n, int *top, float *top_v, int *bot,
                          float *bot_v);

/* Whether an activation at h lives in the residual stream's basis (hook_resid_pre/mid/post,
 * hook_attn_out, hook_mlp_out), so that a decoder row writing it has direct logit effects.
 * attn.hook_z, mlp.hook_post and the MLP's normalised input do not. */
int sae_hook_in_residual(const struct model_hook *h);
/* Whether a decoder writing h has direct logit effects in m: the residual stream's basis, or
 * attn.hook_z where W_O is the only map to the residual (not Gemma 2/3, whose post-attention
 * RMSNorm makes the path non-linear). */
int sae_hook_has_logits(const struct model *m, const struct model_hook *h);

/* f (N) a feature's activations and h (N, H) neuron activations over the same N tokens:
 * returns the best Pearson correlation (by value, not magnitude) and its neuron in *best.
 * A constant series correlates 0. */
double sae_best_pearson(const float *f, const float *h, int N, int H, int *best);

#endif
