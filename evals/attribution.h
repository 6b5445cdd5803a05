/*
 * attribution — which SAE features make a model prefer one next token over another, and does
 * removing them do what the attribution predicts (DESIGN §5: attribution and ablation).
 *
 * Included by: evals and harness/cli.
 *
 * For a prompt (token ids t[0..T)) and two candidate next tokens a (target) and b (contrast):
 *     d = logit_a - logit_b                 at the last position, clean model
 *     attr_{i,p} = f_{i,p} * (dd/dx_p . dir_i)
 * where x_p is the residual at the SAE's hook at position p, f = encode(x), dir_i =
 * decode(e_i) - decode(0), and dd/dx comes from a real backward pass through every layer above
 * the hook (model_backward_to_hook). Because decoding is affine and the error term
 * e = x - x_hat is kept, the linearisation of d at the hook splits exactly:
 *     sum_p dd/dx_p . x_p = sum_{i,p} attr_{i,p} + sum_p dd/dx_p . e_p + sum_p dd/dx_p . decode(0)
 *                           (attr_features)         (attr_error)         (attr_bias)
 * Ablation of feature i at position p sets f_{i,p} to 0 keeping the error term
 * (x'_p = x_p - f_{i,p} dir_i) and measures delta = d(ablated) - d in a full forward pass; to
 * first order delta = -attr_{i,p}, and the Pearson and Spearman correlations between -attr and
 * the measured deltas say how far the linear picture holds.
 *
 * Prompt sets are JSON files (evals/sets/two_hop.json, evals/sets/stories_attribution.json):
 *     {"name": "...", "description": "...",
 *      "prompts": [{"id": "kobe_capital", "prompt": "...", "target": " Sacramento",
 *                   "contrast": " Austin", "note": "..."}, ...]}
 * target and contrast are the text that follows the prompt, leading space included where the
 * tokenizer puts one; each must be exactly one token after the prompt (attr_resolve_token).
 *
 * Ownership: every struct here is plain data released by its *_release function.
 */
#ifndef EV_ATTRIBUTION_H
#define EV_ATTRIBUTION_H

#include "model/model.h"
#include "sae/sae.h"
#include "model/tok.h"
#include "base/util.h"
#include "evals/runner.h"

// ---------------------------------------------------------------------------- prompt sets

struct attr_prompt {
    char *id;       /* from "id", else "p<index>" */
    char *prompt;
    char *target;   /* text of the preferred next token */
    char *contrast; /* text of the alternative */
};

struct attr_set {
    char               *name;    /* the set's "name", or the file name */
    int                 n;
    struct attr_prompt *prompts; /* (n) */
};

/* Reads a prompt set. Errors (EV_EFAIL) name the file and the entry: not JSON, no "prompts"
 * array, an entry without a non-empty prompt/target/contrast, target equal to contrast, a
 * duplicate id, and an empty set. Caller frees with attr_set_release(). */
int  attr_set_load(const char *path, struct attr_set *out, struct ev_err *err);
void attr_set_release(struct attr_set *s);

/*
 * The single token that `text` adds after prompt_ids[0..n_prompt) (the prompt encoded with
 * BOS): encodes prompt+text and takes what follows the prompt's own ids. Exactly one token:
 * *id gets it. Otherwise EV_EFAIL with a message naming what (e.g. "target") and the tokens it
 * splits into ("' Sacr' 'amento'"), or saying that it merges with the end of the prompt.
 */
int attr_resolve_token(const struct tok *tk, const char *prompt, const int *prompt_ids,
                       int n_prompt, const char *text, const char *what, int *id,
                       struct ev_err *err);

// ---------------------------------------------------------------------------- computation

struct attr_feature {
    int    feature;     /* latent index */
    int    pos;         /* token position */
    float  activation;  /* f_{i,p} > 0 */
    float  attribution; /* f_{i,p} * (dd/dx_p . dir_i) */
    int    rank;        /* 1-based rank by |attribution| */
    double ablation;    /* d(ablated) - d; NAN when not ablated */
};

struct attr_result {
    int                  T;
    double               d;             /* logit(target) - logit(contrast), clean */
    double               attr_features; /* sum of attr over all features and positions */
    double               attr_error;    /* sum_p grad_p . (x_p - x_hat_p) */
    double               attr_bias;     /* sum_p grad_p . decode(0) (+ a skip transcoder's
                                           x_in,p W_skip^T: the output no feature carries) */
    double               linear;        /* sum_p grad_p . x_p (= the three above summed) */
    int                  n;             /* active (feature, position) pairs */
    struct attr_feature *items;         /* (n) sorted by |attribution|, largest first */
    int                  n_ablated;     /* items[0..n_ablated) carry an ablation effect */
    double               pearson;       /* corr(-attr, ablation) over the ablated; NAN if < 3 */
    double               spearman;
};

/*
 * Computes the attribution of d = logit(target) - logit(contrast) at the last of tokens[0..T)
 * to every active feature at every position, then ablates the ablate_k items with the largest
 * |attribution| one at a time (error term kept) and measures the change in d. st must be a
 * MODEL_STATE_GRAD state with room for T positions; dirs (d_sae, d_in) from
 * intervene_directions(). Features are read at h_in; the gradient, x and the ablations are at
 * h_out (== h_in for an SAE; a transcoder's output hook, error term kept there).
 * Stops with EV_EINTR between ablations when ev_interrupted().
 * Caller frees out with attr_result_release().
 */
int  attr_compute(struct model_state *st, const struct model *m, const struct sae *s,
                  struct model_hook h_in, struct model_hook h, const float *dirs, const int *tokens, int T, int target,
                  int contrast, int ablate_k, struct attr_result *out, struct ev_err *err);
void attr_result_release(struct attr_result *r);

/* d = logit(target) - logit(contrast) at the last position of tokens[0..T) with the residual
 * at hook h replaced by resid (T, C) (NULL: the clean model); V is the vocabulary size. */
int attr_logit_diff(struct model_state *st, int V, struct model_hook h, const int *tokens,
                    int T, const float *resid, int target, int contrast, double *d,
                    struct ev_err *err);

/* Pearson and Spearman (average ranks for ties) correlation of x and y (n); NAN when n < 3 or
 * either is constant. */
double attr_pearson(const double *x, const double *y, int n);
double attr_spearman(const double *x, const double *y, int n);

// ---------------------------------------------------------------------------- the evaluation

struct eval_env;
struct eval_run;

struct attr_eval_opts {
    const struct attr_set *set;
    int                    ablate_k;  /* ablations per prompt (top |attribution|) */
};

/*
 * Runs the attribution evaluation over the prompts of the set that belong to run's shard,
 * storing one attribution_prompts row and the attributions rows of every active (feature,
 * position) per prompt in one transaction. Prompts already stored for the run are skipped
 * (resume). Every prompt is tokenized and its target/contrast resolved BEFORE any work, so a
 * bad prompt stores nothing (EV_EFAIL naming the prompt's id). Ctrl-C: EV_EINTR after the
 * current prompt's work is dropped; what is stored stays.
 */
int attr_eval_run(struct eval_env *e, const struct eval_run *run,
                  const struct attr_eval_opts *o, struct ev_err *err);

/* `evalrun attribution`: the command's parameters (ranges checked by the command). */
struct attr_config {
    const char *prompts_path;  /* the prompt set (SET.json) */
    const char *features_path; /* descriptions to show (ID<TAB>description), or NULL */
    long        ablate_top;    /* ablations per prompt (0 = none) */
    long        top;           /* rows of the ranked table per prompt */
};

/* The evaluation (evals/runner.h): attr_eval_run over this shard's prompts, then the ranked
 * table per prompt and the pooled correlation of -attribution with the ablation effects. */
extern const struct eval_kind attr_kind;

#endif
