/*
 * sae_index — the feature index the evaluations sample from.
 *
 * One run over a token corpus (the residuals at the SAE's hook are computed once and kept in
 * memory; everything after that re-encodes them), then per feature:
 *   feature_stats   firing count and density over the corpus tokens (BOS excluded), max
 *                   activation, mean activation when firing, quantiles 0.1/0.5/0.9/0.99 of the
 *                   firing activations (from a seeded reservoir of up to 1024 values);
 *   examples 'top'  the top_k activating tokens (ties: earlier token first);
 *   examples 'interval'  per_bin tokens drawn uniformly (seeded reservoir) from each of the
 *                   `bins` activation intervals ((0, max] cut into equal bins, bin b holds
 *                   (b*max/K, (b+1)*max/K]): the paper's subsample intervals;
 *   examples 'nonactivating'  n_nonact windows, drawn at random, in which the feature fires
 *                   on no token.
 * Each example is stored in the `examples` table (001) as the window of up to `window` tokens
 * on each side of the centre token (clipped to the sequence), int32 token ids, the feature's
 * float32 activation on each token of the window, the centre's index and activation, and the
 * decoded text.
 *
 * Features are processed in chunks of 256; each chunk's rows are written in one transaction,
 * so an interrupted index resumes at the first chunk without stats. The set is keyed by a
 * configuration hash (model, corpus, SAE, parameters) in feature_index_runs: a rerun with the
 * same inputs reuses what is stored (and does nothing when complete); a different
 * configuration for the same SAE replaces the old index. Sharding (--shard K/N) takes the
 * chunks c with c % N == K.
 */
#ifndef EV_SAE_INDEX_H
#define EV_SAE_INDEX_H

#include <stdint.h>

#include "sae/acts.h"
#include "sae/sae.h"
#include "base/util.h"

struct model;
struct store;

struct sae_index_params {
    int      top_k;     /* default 20 */
    int      bins;      /* activation intervals, default 10 */
    int      per_bin;   /* samples per interval, default 5 */
    int      n_nonact;  /* non-activating windows, default 20 */
    int      window;    /* tokens on each side of the centre, default 10 */
    uint64_t seed;
    int      shard_k, shard_n;
    const int *features; /* optional subset of feature ids (sorted or not), n_features of them */
    int        n_features;
};

struct sae_index_params sae_index_default_params(void);

/* What a run did. */
struct sae_index_result {
    int     reused;       /* 1: everything was already stored */
    int     chunks_done, chunks_skipped, chunks_total;
    int64_t n_tokens;     /* corpus tokens the statistics cover */
    int64_t n_examples;   /* rows written by this run */
    int     n_alive;      /* features of this run's chunks that fired at least once */
};

/*
 * Builds (or resumes) the index of SAE s (stored as sae_id) over corpus c with the model at
 * hook h. config_hash identifies the inputs (caller: model hash, SAE hash, corpus hash and
 * params). run_id is recorded. Polls ev_interrupted() between chunks (EV_EINTR; what is
 * committed stays).
 */
int sae_index_build(struct store *db, int64_t sae_id, int64_t run_id, const char *config_hash,
                    struct model *m, const struct sae *s, const char *hook_name,
                    const struct acts_corpus *c, const struct sae_index_params *p,
                    struct sae_index_result *res, struct ev_err *err);

#endif
