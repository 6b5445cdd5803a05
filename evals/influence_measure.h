/*
 * influence_measure — the numeric influence measures (issue 17.3) that need no LLM, computed
 * from a stored generation's tokens (docs/evals.md, "Numeric measures"):
 *   fluency  = mean over the generated tokens y_t of log p(y_t | prompt, y_<t) under the
 *              UNsteered model (nats per token, <= 0);
 *   concept  = the feature's activation when the text (prompt + generated tokens) is
 *              re-encoded by the SAE with no steering: mean and max over the generated
 *              positions;
 *   KL       = KL(unsteered || steered) of the next-token distribution, teacher-forced over the
 *              same sequence, at every steered position (from steer->from_pos to the end):
 *              mean and max.
 * For a baseline (steer NULL) the KL is not computed (NAN).
 *
 * Included by: evals and harness/cli.
 */
#ifndef EV_INFLUENCE_MEASURE_H
#define EV_INFLUENCE_MEASURE_H

#include "sae/intervene.h"
#include "base/util.h"

struct infl_measure {
    int    n_new;              /* generated tokens scored */
    double loglik;             /* fluency, nats per token */
    double act_mean, act_max;  /* concept presence */
    double kl_mean, kl_max;    /* NAN for a baseline */
    int    n_kl;               /* positions in kl_mean (0 for a baseline) */
};

/* Measures seq[0..n_prompt) + seq[n_prompt..L) (the generated tokens, L > n_prompt) for
 * feature (its activation) and steer (the clamp the text was generated with; NULL for a
 * baseline). st (a state of model m) holds at least L positions; softmaxes run over the
 * model's real tokens (model_vocab_tokens: a padded vocabulary's extra ids left out); h_in/h_out as for intervene_generate. */
int infl_measure(const struct model *m, struct model_state *st, const struct sae *s, struct model_hook h_in,
                 struct model_hook h_out, const int *seq, int n_prompt, int L, int feature,
                 const struct steer *steer, struct infl_measure *out, struct ev_err *err);

/* log-softmax of logits (V) at index k, in double. */
double infl_log_softmax_at(const float *logits, int V, int k);
/* KL(softmax(p) || softmax(q)) of two logit rows (V), in double. */
double infl_kl_logits(const float *p, const float *q, int V);

#endif
