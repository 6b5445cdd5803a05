/*
 * sample — choosing the next token from logits: greedy (temperature 0), temperature, and
 * top-p (nucleus) sampling, with a seeded struct rng (never rand()).
 *
 * Included by: model and the wings above it (sae, store, graders, evals, cli).
 *
 * Ownership: struct sampler is embedded by the caller (sampler_init / sampler_release); it
 * owns scratch buffers of V entries so that sampling allocates nothing per token.
 */
#ifndef EV_SAMPLE_H
#define EV_SAMPLE_H

#include <stdint.h>

#include "base/util.h"

struct sampler {
    int        V;           /* width of a logits row */
    int        n_ids;       /* ids it may return: [0, n_ids), n_ids <= V (a padded vocab's
                             * rows past its tokenizer are never chosen) */
    float      temperature; /* 0: greedy (argmax, lowest id on ties) */
    float      top_p;       /* (0, 1]; 1 (or >= 1) disables the nucleus cut */
    struct rng rng;
    float     *probs;       /* (V) scratch */
    int       *idx;         /* (V) scratch */
};

/* A sampler over all V ids of rows of width V. For a model, use model_sampler_init()
 * (model.h), which leaves out the ids of a padded vocabulary. */
void sampler_init(struct sampler *s, int V, float temperature, float top_p, uint64_t seed);
/* Limits the ids it returns to [0, n) (1 <= n <= V; other values are clamped); the softmax,
 * the nucleus and greedy decoding see only those logits. */
void sampler_limit(struct sampler *s, int n);
void sampler_release(struct sampler *s);
/* Returns the sampled id in [0, n_ids); logits (V) are read up to n_ids, not modified. */
int  sampler_sample(struct sampler *s, const float *logits);
/* Argmax of x[0..n) (lowest index on ties). */
int  sample_argmax(const float *x, int n);

#endif
