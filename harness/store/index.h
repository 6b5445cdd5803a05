/*
 * index — the owner of the feature index tables: feature_index_runs, feature_stats and
 * examples (schema 001, 005). Every read and write of those tables goes through here.
 *
 * Included by: the command line (`evalrun index`), the evaluations and the graders that read
 * the index (store and the wings above it).
 *
 * It also owns the analyses stored beside the index: feature_neighbors, feature_logits and
 * feature_neurons (schema 005).
 *
 * Writing: index_build() runs sae_index_compute() (harness/sae, which knows no SQL) and
 * stores each chunk it hands back in one transaction. The set is keyed by a configuration
 * hash (model, corpus, SAE, parameters) in feature_index_runs: a rerun with the same inputs
 * resumes at the first chunk without stats and does nothing when the index is complete; a
 * different configuration for the same SAE replaces the old index (refused, with a hint,
 * when graded examples still refer to it).
 */
#ifndef EV_STORE_INDEX_H
#define EV_STORE_INDEX_H

#include <stdint.h>

#include "base/util.h"
#include "sae/sae_index.h"

struct store;
struct model;

/*
 * Builds (or resumes) the index of SAE s (stored as sae_id) over corpus c with the model at
 * hook hook_name. config_hash identifies the inputs (caller: model hash, SAE hash, corpus
 * hash and params). run_id is recorded. res->reused = 1 when a complete index of this
 * configuration was already stored (then nothing is computed). Polls ev_interrupted()
 * between chunks (EV_EINTR; what is committed stays).
 */
int index_build(struct store *db, int64_t sae_id, int64_t run_id, const char *config_hash,
                struct model *m, const struct sae *s, const char *hook_name,
                const struct acts_corpus *c, const struct sae_index_params *p,
                struct sae_index_result *res, struct ev_err *err);

/* ---- reading: the one reader API of the feature index, used by every evaluation ---- */

/* One stored example window of a feature (a row of examples). */
struct index_window {
    int64_t id;         /* examples.id */
    char    kind[24];   /* 'top', 'interval', 'nonactivating' */
    int     interval;   /* the index's interval, -1 when none */
    double  activation; /* the feature's activation at the centre token */
    int     center;     /* position of the centre token in tokens */
    int     n;          /* tokens in the window */
    int    *tokens;     /* (n) token ids, owned */
    float  *acts;       /* (n) the feature's activation at each token, owned */
};

struct index_windows {
    int                  n;
    struct index_window *w; /* (n) by activation desc, then id */
};

/* The run that built the index of sae_id (feature_index_runs; the complete one first, then
 * the newest): 1 with *run_id and *n_tokens (the tokens indexed), 0 when there is no index or
 * it records no run, < 0 on error. */
int index_source_run(struct store *db, int64_t sae_id, int64_t *run_id, int64_t *n_tokens,
                     struct ev_err *err);

/* How many example windows the index of sae_id holds (0: no index built yet). */
int index_count_windows(struct store *db, int64_t sae_id, int64_t *n, struct ev_err *err);
/* Every stored window of feature, strongest first. A row whose token and activation blobs
 * are not the same non-zero multiple of 4 bytes is EV_EFAIL naming its id (what is checked
 * against the model, vocabulary and centre, is the caller's). Free with
 * index_windows_release(). */
int  index_top_windows(struct store *db, int64_t sae_id, int feature, struct index_windows *out,
                       struct ev_err *err);
void index_windows_release(struct index_windows *w);

/* A feature's statistics over the indexed corpus (feature_stats). */
struct index_stats {
    int64_t n_tokens, fire_count;
    double  density, max_act, mean_act;
    double  q10, q50, q90, q99; /* activation quantiles; NAN when not stored or unreadable */
};
/* 1 and *out when the feature's statistics are stored, 0 when not, < 0 on error. */
int index_feature_stats(struct store *db, int64_t sae_id, int feature, struct index_stats *out,
                        struct ev_err *err);
/* 1 when any statistics of sae_id are stored, 0 when none, < 0 on error. */
int index_has_stats(struct store *db, int64_t sae_id, struct ev_err *err);
/* max_act[d_sae] and density[d_sae] of every feature; NAN where not stored. */
int index_stats_all(struct store *db, int64_t sae_id, int d_sae, double *max_act,
                    double *density, struct ev_err *err);
/* The features that fired at least once in the index, ascending: *ids (caller frees) of *n,
 * at most max. */
int index_fired_features(struct store *db, int64_t sae_id, int max, int **ids, int *n,
                         struct ev_err *err);

/* ---- the stored analyses ---- */

/* Neighbours by decoder cosine: for each of ids[n_ids], k rows nb/cs[(i * k) + r], rank r.
 * Logit effects: k strongest promoted (top/tv) and suppressed (bot/bv) tokens per feature.
 * Neurons: the best-correlated MLP neuron (layer, best[i], r[i], over n_tokens tokens).
 * Each replaces what was stored for those features; the caller holds the transaction. */
int index_put_neighbors(struct store *db, int64_t sae_id, const int *ids, int n_ids, int k,
                        const int *nb, const float *cs, struct ev_err *err);
int index_put_logits(struct store *db, int64_t sae_id, const int *ids, int n_ids, int k,
                     const int *top, const float *tv, const int *bot, const float *bv,
                     struct ev_err *err);
int index_put_neurons(struct store *db, int64_t sae_id, const int *ids, int n_ids, int layer,
                      const int *best, const double *r, int64_t n_tokens, struct ev_err *err);

struct index_logit {
    int    sign; /* 1 promoted, -1 suppressed */
    int    rank; /* 0 strongest */
    int    token;
    double effect;
};
/* The stored logit effects of feature with rank < k, by sign then rank: *rows (caller frees)
 * of *n. */
int index_logits(struct store *db, int64_t sae_id, int feature, int k, struct index_logit **rows,
                 int *n, struct ev_err *err);

struct index_neighbor {
    int    rank, other;
    double cosine;
};
/* The stored neighbours of feature with rank < k, by rank: *rows (caller frees) of *n. */
int index_neighbors(struct store *db, int64_t sae_id, int feature, int k,
                    struct index_neighbor **rows, int *n, struct ev_err *err);

struct index_neuron {
    int     layer, neuron;
    double  pearson;
    int64_t n_tokens;
};
/* 1 and *out when the feature's best neuron is stored, 0 when not, < 0 on error. */
int index_neuron(struct store *db, int64_t sae_id, int feature, struct index_neuron *out,
                 struct ev_err *err);

#endif
