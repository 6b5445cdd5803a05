/*
 * attributions — the owner of the attribution tables (schema 009): attribution_prompts (a
 * prompt's logit difference and how its linearisation splits up) and attributions (every
 * active feature at every position of the prompt, ranked, with its measured ablation effect).
 *
 * Strings of the *_row structs given to attributions_put are borrowed for the call; what is
 * read back is owned by the caller and freed with the matching *_release / *_free.
 *
 * Included by: store and the wings above it (evals/attribution.c).
 */
#ifndef EV_STORE_ATTRIBUTIONS_H
#define EV_STORE_ATTRIBUTIONS_H

#include <stdint.h>

#include "base/util.h"

struct store;

/* An attribution prompt (a row of attribution_prompts). */
struct attributions_prompt {
    const char *name, *prompt, *target, *contrast; /* name may be NULL */
    int64_t     target_id, contrast_id, n_tokens;
    double      logit_diff, attr_features, attr_error, attr_bias;
    double      pearson, spearman; /* NAN or infinite: stored as NULL */
};
/* One active feature at one position (a row of attributions). */
struct attributions_row {
    int         feature, position, rank;
    int64_t     token_id;
    const char *token_text; /* may be NULL */
    double      activation, attribution;
    double      ablation; /* NAN: not ablated (stored as NULL) */
};

/* 1 when the run has prompt idx stored, 0 when not, < 0 on error. */
int attributions_has(struct store *db, int64_t run_id, int idx, struct ev_err *err);
/* Stores prompt idx of the run and its rows[n], in one transaction. */
int attributions_put(struct store *db, int64_t run_id, int idx,
                     const struct attributions_prompt *p, const struct attributions_row *rows,
                     int n, struct ev_err *err);

/* Reads prompt idx of the run into *p (strings owned: attributions_prompt_release): 1 when
 * stored, 0 when not (an interrupted run), < 0 on error. pearson and spearman are NAN when
 * NULL. */
int  attributions_prompt_get(struct store *db, int64_t run_id, int idx,
                             struct attributions_prompt *p, struct ev_err *err);
void attributions_prompt_release(struct attributions_prompt *p);
/* The rows of prompt idx with rank <= max_rank, by rank: *rows (attributions_rows_free) of
 * *n; ablation NAN where not ablated. */
int  attributions_ranked(struct store *db, int64_t run_id, int idx, int max_rank,
                         struct attributions_row **rows, int *n, struct ev_err *err);
void attributions_rows_free(struct attributions_row *rows, int n);
/* Every ablated row of the run, by prompt then rank: attribution[n] and effect[n] (caller
 * frees both). */
int attributions_ablations(struct store *db, int64_t run_id, double **attribution,
                           double **effect, int *n, struct ev_err *err);

/* The prompt indices the run has stored, in order: *ids (caller frees) of *n. */
int attributions_prompt_ids(struct store *db, int64_t run_id, int **ids, int *n,
                            struct ev_err *err);

#endif
