/*
 * sae_index — the feature index the evaluations sample from: its computation.
 *
 * Included by: harness/store/index.c (the index tables' owner, which stores what this
 * computes) and the wings above store. The tables themselves are written and read only
 * through store/index.h; this module knows no SQL and no schema.
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
 * Each example is the window of up to `window` tokens on each side of the centre token
 * (clipped to the sequence), int32 token ids, the feature's float32 activation on each token
 * of the window, the centre's index and activation, and the decoded text.
 *
 * Features are processed in chunks of 256; each chunk's results go to the sink in one call
 * (the owner writes them in one transaction), so an interrupted index resumes at the first
 * chunk the sink does not have. Sharding (--shard K/N) takes the chunks c with c % N == K.
 * Resuming, reuse and replacing an index of another configuration are the owner's
 * (index_build() in store/index.h).
 */
#ifndef EV_SAE_INDEX_H
#define EV_SAE_INDEX_H

#include <stdint.h>

#include "sae/acts.h"
#include "sae/sae.h"
#include "base/util.h"

struct model;
struct tok;

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
    /* seconds per phase of sae_index_compute (tests/bench/index_bench prints them): the
     * forward to the hook, the encode products, the scan of their tiles (statistics and
     * records), the interval pass and the examples with the sink's put_chunk calls */
    double  t_forward, t_encode, t_scan, t_intervals, t_examples;
};

enum sae_index_kind { SAE_INDEX_TOP, SAE_INDEX_INTERVAL, SAE_INDEX_NONACT };

/* One example window. Borrowed by the sink for the duration of its put_chunk() call. */
struct sae_index_example {
    int                 feature;    /* global latent id */
    enum sae_index_kind kind;
    int                 interval;   /* SAE_INDEX_INTERVAL: the bin, else -1 */
    float               activation; /* the feature's activation on the centre token */
    int                 center;     /* the centre's index in the window */
    int                 n;          /* window length */
    const int          *tokens;     /* (n) token ids */
    const float        *acts;       /* (n) the feature's activation on each token */
    const char         *text;       /* the decoded window */
};

/* One feature's statistics over the corpus (BOS excluded). */
struct sae_index_stats {
    int     feature;
    int64_t n_tokens, fire_count;
    double  density, mean_act; /* mean when firing */
    float   max_act;
    double  quantiles[4];      /* of the firing activations: 0.1, 0.5, 0.9, 0.99 */
};

/* What one chunk produced, in the order it is to be stored. */
struct sae_index_chunk {
    const int                      *ids;   /* (n_features) the chunk's latent ids, sorted */
    int                             n_features;
    const struct sae_index_stats   *stats; /* (n_features) */
    const struct sae_index_example *ex;    /* (n_ex) */
    int                             n_ex;
};

/* Where the results go (store/index.c is the one implementation; tests may write their own).
 * Each returns EV_OK or a negative EV_E* code with err set. */
struct sae_index_sink {
    void *ctx;
    /* *done = 1 when every feature of ids (n of them) is already stored: the chunk is skipped */
    int (*chunk_done)(void *ctx, const int *ids, int n, int *done, struct ev_err *err);
    /* stores a chunk all at once, replacing what is stored for its features */
    int (*put_chunk)(void *ctx, const struct sae_index_chunk *ch, struct ev_err *err);
};

/* The quantiles that sae_index_stats holds, in order. */
extern const double sae_index_quantiles[4];

/*
 * Computes the index of SAE s over corpus c with the model at hook hook_name, chunk by chunk
 * (those of this shard that sink->chunk_done does not have), handing each to sink->put_chunk.
 * Fills res's chunk counts, n_tokens, n_examples and n_alive (not reused). Polls
 * ev_interrupted() between chunks (EV_EINTR; what the sink stored stays).
 */
int sae_index_compute(struct model *m, const struct sae *s, const char *hook_name,
                      const struct acts_corpus *c, const struct sae_index_params *p,
                      const struct sae_index_sink *sink, struct sae_index_result *res,
                      struct ev_err *err);

/* The text of an example window of n token ids: the tokenizer's pieces (BOS and EOS left
 * out), valid UTF-8, or with tk NULL the ids as decimal numbers separated by spaces. The
 * caller frees it. _ref: its naive twin, compared in tests/unit/test_sae_index.c. */
char *sae_index_window_text(const struct tok *tk, const int *ids, int n);
char *sae_index_window_text_ref(const struct tok *tk, const int *ids, int n);

/* The naive twin of sae_index_compute (STYLE rule 20), compared with it in
 * tests/unit/test_sae_index.c: the residuals of the whole corpus kept in memory, then chunk by
 * chunk two full encodes of the corpus for the chunk's latents and one more per example's
 * sequence. Same arguments, same results. */
int sae_index_compute_ref(struct model *m, const struct sae *s, const char *hook_name,
                          const struct acts_corpus *c, const struct sae_index_params *p,
                          const struct sae_index_sink *sink, struct sae_index_result *res,
                          struct ev_err *err);

#endif
