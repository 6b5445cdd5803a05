/*
 * index — building the feature index for the evaluations and for `evalrun index`: the
 * index proper (store/index.h: statistics and examples), then the analyses stored beside it
 * (decoder-cosine neighbours, logit effects, features vs MLP neurons), in one "index" run.
 *
 * Included by: evals and harness/cli.
 *
 * eval_index_ensure() is what every evaluation that reads the index calls (specificity,
 * explain, completeness when it explains, influence, search with relative scores, show):
 * when the database already holds an index for the SAE it does nothing; otherwise it builds
 * one on demand, saying so in one line on stderr, with the same defaults as `evalrun index`
 * (32768 tokens, ctx 128 or the model's context when shorter, index seed 0), over the
 * --corpus the command was given or, for the shipped default model, stories sampled from the
 * model itself (the same corpus as `evalrun index --generate`, so that command reuses it).
 * With --no-index-build, or for a model of the user's without --corpus, it stops instead with
 * a message ending in the command that builds it ("build it with: evalrun ..."), which runs
 * as printed.
 */
#ifndef EV_EVALS_INDEX_H
#define EV_EVALS_INDEX_H

#include <stdint.h>

#include "evals/common.h"
#include "sae/acts.h"
#include "sae/sae_index.h"

/* The defaults of `evalrun index`, shared with the on-demand build. */
#define EVAL_INDEX_TOKENS 32768
#define EVAL_INDEX_CTX    128

struct eval_index_opts {
    struct sae_index_params p;   /* sae_index_default_params(); seed, shard, features subset */
    int64_t     tokens;          /* as asked (the run's configuration) */
    const char *features_path;   /* the subset's file (the run's configuration), or NULL */
    const char *tag;             /* the index run's tag, or NULL */
    int         retag;           /* --retag: move the tag from the run that holds it */
    int         n_neighbors, n_logits; /* stored per feature (default 10, 10) */
    int         n_neurons;       /* features compared with the MLP neurons (default 64; 0: none) */
    int64_t     neuron_tokens;   /* tokens for that comparison (default 8192) */
};

struct eval_index_opts eval_index_default_opts(void);

struct eval_index_summary {
    struct sae_index_result res;
    int64_t                 run_id;
    int                     nn_done; /* features compared with the neurons */
    double                  nn_weak; /* the share of them with no neuron at r >= 0.3 */
};

/* Builds (or resumes, or reuses) the index of SAE s (sae_hash, registered as sae_id with its
 * model as model_id) over corpus c, in a runs row of kind "index", then the analyses. */
int eval_index_build(struct store *db, struct model *m, const struct sae *s,
                     const char *sae_hash, int64_t model_id, int64_t sae_id,
                     const struct acts_corpus *c, const struct eval_index_opts *o,
                     struct eval_index_summary *out, struct ev_err *err);

/* The ctx a data command uses: given (> 0) when it fits the model (else EV_EUSAGE naming
 * --ctx), or the default EVAL_INDEX_CTX clamped to the model's context with a note. */
int eval_index_ctx(const struct model *m, long given, int *T, struct ev_err *err);

/* Where an on-demand index comes from (the command's --corpus, --text-field,
 * --no-index-build) and what the command was given (for the suggested command). */
struct eval_index_source {
    const char *corpus, *text_field; /* NULL: stories sampled from the model */
    int         no_build;
    const char *model_arg, *sae_arg; /* --model, --sae as given (NULL: the defaults) */
};

/* The command that builds the index e needs, as one shell line (caller frees):
 * "evalrun --db DB index [--model M] --sae S (--generate | --corpus FILE [--text-field K])". */
char *eval_index_build_command(const struct eval_env *e, const struct eval_index_source *src);

/* EV_OK when e's database holds an index for e's SAE, after building it when it did not
 * (src NULL: as with no options). EV_EFAIL with the message described above otherwise. */
int eval_index_ensure(struct eval_env *e, const struct eval_index_source *src,
                      struct ev_err *err);

/* For a reading command whose env was opened read-only (eval_env_open_readonly): EV_OK when
 * the database holds the index for e's SAE, or src->no_build (the command goes on without
 * it); otherwise reopens db_path for writing (eval_env_writable) and eval_index_ensure(). */
int eval_index_ensure_readonly(struct eval_env *e, const char *db_path,
                               const struct eval_index_source *src, struct ev_err *err);

#endif
