/*
 * intervene — the SAE inside the forward pass: read features at the hook, clamp or ablate one
 * feature keeping the SAE's error term, steered generation, and attribution of a logit
 * difference to features.
 *
 * Included by: sae and the wings above it (store, graders, evals, cli).
 *
 * The error term is kept everywhere (DESIGN §4): with x the residual at the hook and
 * x_hat = decode(encode(x)), an edit of feature i from f_i to v gives
 *     x' = x + (v - f_i) * dir_i,     dir_i = decode(e_i) - decode(0)
 * which equals x_hat_edited + (x - x_hat) because decoding is affine in f. So only the edited
 * feature changes. Attribution of feature i at position p to a scalar d of the logits is
 *     attr_{i,p} = f_{i,p} * (dd/dx_p . dir_i)
 * i.e. activation times the gradient through the layers above the hook (model_backward_to_hook).
 *
 * Transcoders (sae.h) read their features at one hook (h_in) and stand for the activation at a
 * later one (h_out, e.g. hook_mlp_out). They are spliced as a replacement of that output with
 * the error term kept: y' = y + (v - f_i) * dir_i at h_out, f from h_in; attribution takes the
 * gradient at h_out. For an SAE h_in == h_out and everything reduces to the above.
 */
#ifndef EV_INTERVENE_H
#define EV_INTERVENE_H

#include "model/model.h"
#include "sae/sae.h"
#include "model/sample.h"
#include "base/util.h"

/* The decoder directions of all features: dirs (d_sae, d_in), row i = decode(e_i) - decode(0).
 * Caller frees with free(). */
float *intervene_directions(const struct sae *s);

/* Runs tokens[0..T) at positions [pos, pos+T) up to hook h, copies the residual into
 * resid (T, C) and encodes it into f (T, d_sae) (f may be NULL). The state is left at the
 * hook: continue with model_forward_from_hook(st, pos, T, h, resid', err). */
int intervene_encode(struct model_state *st, const struct sae *s, struct model_hook h,
                     const int *tokens, int pos, int T, float *resid, float *f,
                     struct ev_err *err);

/* The dictionary at its output: runs tokens[0..T) at [pos, pos+T) up to h_out and copies the
 * activation there into y (T, d_out); f (T, d_sae) or NULL receives the features read at h_in
 * (for a transcoder: one whole clean pass reading h_in, then the same positions again up to
 * h_out, the KV cache rewritten with the same values). x_in (T, d_in) or NULL receives the input read at h_in
 * (== y for an SAE). The state is left at h_out: continue with model_forward_from_hook(st,
 * pos, T, h_out, y', err). */
int intervene_encode_out(struct model_state *st, const struct sae *s, struct model_hook h_in,
                         struct model_hook h_out, const int *tokens, int pos, int T, float *y,
                         float *f, float *x_in, struct ev_err *err);

/* resid[t] += (value - f[t, feature]) * dir for t in [0, T): clamps the feature to value at
 * every position, error term kept. value 0 ablates. */
void intervene_clamp(float *resid, const float *f, int T, int C, int d_sae, int feature,
                     float value, const float *dir);

struct steer {
    int          feature;  /* -1: no steering */
    float        value;    /* clamp target (scale x max activation; 0 ablates) */
    const float *dir;      /* (d_in) the feature's direction */
    int          from_pos; /* first position clamped: 0 = every position; 1 leaves the BOS
                              position alone (SAEs are usually trained without it) */
};

/*
 * Greedy or sampled generation from prompt[0..n_prompt) with feature steering clamped at
 * EVERY position from steer->from_pos on (prompt and generated), using the KV cache; features
 * read at h_in, the edit made at h_out (the same hook for an SAE).
 * out (max_new) receives the new ids, *n_out their count (stops after token eos_id; -1 never stops). steer may be NULL.
 */
int intervene_generate(struct model_state *st, struct sampler *smp, const struct sae *s,
                       struct model_hook h_in, struct model_hook h_out, const int *prompt, int n_prompt, int max_new,
                       int eos_id, const struct steer *steer, int *out, int *n_out,
                       struct ev_err *err);

/* attr (T, d_sae) = f (T, d_sae) * (grad (T, C) . dirs^T (C, d_sae)). */
void intervene_attribution(float *attr, const float *f, const float *grad, const float *dirs,
                           int T, int C, int d_sae);

#endif
