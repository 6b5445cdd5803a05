/*
 * saetrain — activation caches and SAE training, as `evalrun collect`, `train-sae` and `sweep`
 * use them, and `sae-bench`'s timing of training and encoding on synthetic activations.
 *
 * Included by: evals and cli.
 */
#ifndef EV_EVALS_SAETRAIN_H
#define EV_EVALS_SAETRAIN_H

#include <stdint.h>

#include "base/util.h"
#include "model/model.h"
#include "sae/acts.h"
#include "sae/sae.h"
#include "sae/sae_train.h"

struct store;

/* Keeps the sequences s of c with s % n == k (shard k of n). */
void saetrain_shard_corpus(struct acts_corpus *c, int k, int n);
/* The default activation cache folder for (model, hook, corpus, skip_bos), under
 * results/acts/; caller frees. */
char *saetrain_cache_dir(struct model *m, const char *hook, const struct acts_corpus *c,
                         int skip_bos);
/* Writes the activations of c at hook (the BOS position left out when skip_bos) to the cache
 * folder dir, its parent made when missing. */
int saetrain_write_cache(struct model *m, const char *hook, const struct acts_corpus *c,
                         int skip_bos, const char *dir, struct ev_err *err);
/* Trains one SAE with p on a (resuming from out_dir.ckpt), logging to the terminal (unless
 * quiet) and, when db is not NULL, to run_id's sae_train_log; saves it in SAELens layout to
 * out_dir: *final its last log line, hash its content hash. m (may be NULL) names the model
 * and the hook's layer. */
int saetrain_one(struct store *db, int64_t run_id, struct model *m, struct acts *a,
                 const struct sae_train_params *p, const char *hook, const char *out_dir,
                 int quiet, struct sae_train_log *final, char hash[65], struct ev_err *err);
/* A synthetic SAE (d_in D, d_sae S): unit-norm random decoder rows from r, W_enc = W_dec^T,
 * biases 0; caller frees with sae_free(). */
struct sae *saetrain_random_tied(int D, int S, struct rng *r);
/* sae-bench: times training steps and encoding of a synthetic SAE (d_in D, d_sae S) on a
 * batch of B tokens, and prints one line of name=value fields. */
void saetrain_bench_print(const int D, const int S, const int B, int steps, uint64_t seed);

#endif
