/*
 * saejob — the jobs of the SAE commands once their flags are checked: `collect` (an
 * activation cache), `train-sae` (one SAE), `sweep` (a grid of SAEs), `sae-metrics` and
 * `index` (the feature index and its analyses). Each opens what it needs (the model with
 * --ctx fitted to it, the SAE and its hooks, the corpus, the activations, the database with
 * the model and the SAE recorded), begins or resumes its run, does the work through
 * evals/saetrain, evals/saemeasure and evals/index, and ends the run.
 *
 * Included by: harness/cli only.
 */
#ifndef EV_EVALS_SAEJOB_H
#define EV_EVALS_SAEJOB_H

#include <stdint.h>

#include "base/util.h"
#include "evals/index.h"
#include "sae/sae_train.h"

/* What every data-reading job reads: the corpus and what the common options name. */
struct saejob_data {
    const char *db_path;             /* --db */
    const char *model;               /* --model, NULL: model_resolve_path()'s default */
    const char *weights_dtype;       /* --weights-dtype as given (NULL: auto) */
    const char *sae;                 /* --sae, NULL: eval_resolve_sae_path()'s default */
    const char *corpus, *text_field; /* --corpus, --text-field (NULL: "text") */
    int         generate;            /* --generate: stories sampled from the model */
    long        tokens;              /* corpus tokens */
    long        ctx;                 /* --ctx; -1: EVAL_INDEX_CTX clamped to the model's */
    long        seed;                /* --seed */
    const char *tag;                 /* --tag, or NULL */
    int         retag;               /* --retag */
};

/* collect: the activations of d's corpus at hook (shard k of n) written to the cache out_dir,
 * the BOS position left out unless keep_bos. *n_acts and *width say what was written. */
int saejob_collect(const struct saejob_data *d, const char *hook, const char *out_dir,
                   int keep_bos, int k, int n, int64_t *n_acts, int *width, struct ev_err *err);

/* Training options of train-sae and sweep, as given (checked by the command). */
struct saejob_train {
    const char *hook;     /* the hook trained on */
    const char *acts_dir; /* --acts DIR, or NULL: collect from the corpus first (reused) */
    long        d_sae, batch, log_every, ckpt_every, stop_after, collect_tokens;
    double      l1, lr, warmup, decay, dead_window_d;
};

/* train-sae: one SAE of t->d_sae latents on d->tokens tokens saved to out_dir and recorded
 * in a "train-sae" run; *fin its last log line, hash its content hash. */
int saejob_train_sae(const struct saejob_data *d, const struct saejob_train *t,
                     const char *out_dir, int quiet, struct sae_train_log *fin, char hash[65],
                     struct ev_err *err);

/* The grid of a sweep: dictionary sizes ds[nd] by training tokens ts[nt]; this shard trains
 * the points p with p % sn == sk. */
struct saejob_grid {
    long *ds, *ts;
    int   nd, nt, sk, sn;
};

/* sweep: trains the grid's points not yet stored in the "sweep" run (configuration from the
 * lists as given, d_list and t_list) into out_dir/d<N>-t<T>, printing one table row each on
 * stdout as it finishes; max_t is the largest token count (the default --collect-tokens). */
int saejob_sweep(const struct saejob_data *d, const struct saejob_train *t, const char *out_dir,
                 const char *d_list, const char *t_list, const struct saejob_grid *g,
                 long max_t, struct ev_err *err);

/* sae-metrics: the SAE measured on shard k of n of the corpus in a "sae-metrics" run,
 * SAEBench's core JSON written to out_json (when not NULL), and the record printed (as JSON
 * with json). */
int saejob_metrics(const struct saejob_data *d, int k, int n, const char *out_json, int json,
                   struct ev_err *err);

/* index: the feature index of the SAE over the corpus (o: the options as checked; tokens,
 * tag and retag come from d, the features subset is read from o->features_path), then the
 * analyses; prints what was built or reused. */
int saejob_index(const struct saejob_data *d, const struct eval_index_opts *o,
                 struct ev_err *err);

#endif
