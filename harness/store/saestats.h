/*
 * saestats — the owner of the SAE training and measurement tables (schema 005):
 * sae_train_log (a training run's log), sae_metrics (`sae-metrics`) and sae_sweep (`sweep`).
 *
 * Included by: store and the wings above it (the commands that train and measure SAEs).
 */
#ifndef EV_STORE_SAESTATS_H
#define EV_STORE_SAESTATS_H

#include <stdint.h>

#include "base/util.h"
#include "sae/sae_metrics.h"
#include "sae/sae_train.h"

struct store;

/* Stores (or replaces) one training-log line of the run. */
int saestats_train_log_put(struct store *db, int64_t run_id, const struct sae_train_log *lg,
                           struct ev_err *err);
/* Stores the measurement m of the SAE (sae_id, hash) in the run; hist_json is its density
 * histogram (sae_metrics_hist_json()). */
int saestats_metrics_put(struct store *db, int64_t run_id, int64_t sae_id, const char *hash,
                         const struct sae_metrics *m, const char *hist_json, struct ev_err *err);

/* The run's latest measurement: v[0..3] = l0, fvu, dead_frac, ce_loss_score, NAN where NULL.
 * Returns 1 when the run has one, 0 when not (v all NAN), < 0 on error. */
int saestats_metrics_latest(struct store *db, int64_t run_id, double v[4], struct ev_err *err);

/* One point of a sweep. */
struct saestats_sweep_row {
    int64_t     d_sae, n_tokens;
    double      l1, loss, mse, l0, fvu, dead_frac, flops, train_s;
    const char *sae_hash, *path;
};
/* 1 when the run has the point (d_sae, n_tokens), 0 when not, < 0 on error. */
int saestats_sweep_has(struct store *db, int64_t run_id, int64_t d_sae, int64_t n_tokens,
                       struct ev_err *err);
int saestats_sweep_put(struct store *db, int64_t run_id, const struct saestats_sweep_row *r,
                       struct ev_err *err);

/* The run's latest measurement in full (the reports): v = n_tokens, l0, l1, mse,
 * explained_variance, fvu, l2_ratio, rel_recon_bias, dead_frac, ce_clean, ce_sae, ce_zero,
 * ce_loss_score, kl_sae, kl_zero, kl_div_score (NAN where NULL), *hist_json and *sae_hash
 * (caller frees; NULL when none). 1 when the run has one, 0 when not, < 0 on error. */
int saestats_metrics_row(struct store *db, int64_t run_id, double v[16], char **hist_json,
                         char **sae_hash, struct ev_err *err);
/* fn per point of the run's sweep, by d_sae then tokens (NAN where NULL; no hash or path). */
int saestats_sweep_each(struct store *db, int64_t run_id,
                        int (*fn)(void *ctx, const struct saestats_sweep_row *r), void *ctx,
                        struct ev_err *err);

#endif
