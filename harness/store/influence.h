/*
 * influence — the owner of the influence_measures table (schema 015): the numeric measures of
 * an influence run (evals/influence.h), one row per steered continuation and per (feature,
 * prompt) baseline, keyed by (run, item key).
 *
 * Included by: store and the wings above it (graders, evals, cli).
 */
#ifndef EV_STORE_INFLUENCE_H
#define EV_STORE_INFLUENCE_H

#include <stdint.h>

#include "base/util.h"

struct store;

/* One row (see schema/015_influence_measures.sql); strings borrowed. */
struct influence_measure_row {
    const char *key;      /* 'f12/s10/p3', or 'base/p3/f12' for a baseline */
    const char *gen_key;  /* the generation measured */
    int         feature, prompt;
    double      scale;    /* NAN for a baseline */
    int         n_tokens;
    double      loglik, act_mean, act_max;
    double      kl_mean, kl_max; /* NAN for a baseline */
    int         n_kl;            /* 0 for a baseline */
};

/* Inserts a row unless (run_id, key) is stored (then nothing changes). */
int influence_measure_put(struct store *s, int64_t run_id, const struct influence_measure_row *m,
                          struct ev_err *err);
/* 1 when (run_id, key) is stored, 0 when not, < 0 on error. */
int influence_measure_has(struct store *s, int64_t run_id, const char *key, struct ev_err *err);
/* Calls fn for every row of the run, ordered by feature, baselines first, then scale and
 * prompt; fn returns EV_OK to go on. */
int influence_measures_each(struct store *s, int64_t run_id,
                            int (*fn)(void *ctx, const struct influence_measure_row *m),
                            void *ctx, struct ev_err *err);

#endif
