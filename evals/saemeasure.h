/*
 * saemeasure — the measurement of an SAE on a corpus for `evalrun sae-metrics`: every
 * sequence run clean, with the SAE spliced in and zero-ablated, into the sae_metrics
 * accumulator (reconstruction, sparsity, density, CE and KL), and the result printed.
 *
 * Included by: evals and cli.
 */
#ifndef EV_EVALS_SAEMEASURE_H
#define EV_EVALS_SAEMEASURE_H

#include "base/util.h"
#include "model/model.h"
#include "sae/acts.h"
#include "sae/sae.h"
#include "sae/sae_metrics.h"

/* Runs every sequence of c clean (reading x at the hook h), spliced (x -> x_hat) and
 * zero-ablated, and fills *out. A transcoder reads its input x at h and its target y at h_out
 * in the same clean pass; the splice and the ablation replace y (its whole output, the skip
 * term included, for x_hat). EV_EINTR when interrupted. */
int saemeasure_run(struct model *m, const struct sae *s, struct model_hook h,
                   struct model_hook h_out, const struct acts_corpus *c, struct sae_metrics *out,
                   struct ev_err *err);

/* Prints the measurement r of the SAE at sdir (content hash, density histogram hist as
 * sae_metrics_hist_json() gives it): one JSON line (json), else a table. */
void saemeasure_print(int json, const char *sdir, const struct sae *s, const char *hash,
                      const struct sae_metrics *r, const char *hist);

#endif
