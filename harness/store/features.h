/*
 * features — the owner of the features table (schema 001: a feature's stored description and
 * where it came from) and of feature_tags (schema 012: the categories a person gave a feature).
 *
 * Included by: store and the wings above it (graders, evals, cli).
 */
#ifndef EV_STORE_FEATURES_H
#define EV_STORE_FEATURES_H

#include <stdint.h>

#include "base/util.h"

struct store;

/* The stored description of feature (caller frees), NULL when none or on an error; *source
 * (may be NULL; caller frees) says where it came from, NULL when unknown. */
char *features_description(struct store *s, int64_t sae_id, int feature, char **source);
/* The run that wrote the stored description of feature (features.desc_run_id, migration
 * 018), 0 when there is no description, the database records no run, or on an error. */
int64_t features_description_run(struct store *s, int64_t sae_id, int feature);
/* Stores (or replaces) the description of feature, written by run run_id (0: none known). */
int features_set_description(struct store *s, int64_t sae_id, int feature, const char *text,
                             const char *source, int64_t run_id, struct ev_err *err);

/* Tags feature with category (remove = 0) or takes the tag away (remove = 1); *changed says
 * whether anything changed (an existing tag, or a missing one, changes nothing). */
int features_tag(struct store *s, int64_t sae_id, int feature, const char *category, int remove,
                 int *changed, struct ev_err *err);
/* Calls fn for every feature tagged category, ascending, with its density (NAN when the index
 * has none) and description (NULL when none). */
int features_in_category(struct store *s, int64_t sae_id, const char *category,
                         int (*fn)(void *ctx, int feature, double density, const char *desc),
                         void *ctx, struct ev_err *err);
/* Calls fn for every category of sae_id, by name, with how many features it holds. */
int features_categories(struct store *s, int64_t sae_id,
                        int (*fn)(void *ctx, const char *category, int64_t n), void *ctx,
                        struct ev_err *err);
/* The categories of feature, by name: *cats (each and the array freed by the caller) of *n. */
int features_categories_of(struct store *s, int64_t sae_id, int feature, char ***cats, int *n,
                           struct ev_err *err);

/* For the reports: fn per category of the run's SAE's features (feature_tags) with the
 * number of its features in the run, the mean and number of their parsed grades from
 * grader_kind over items that are not non-activating (mean NAN when none), by category. */
int features_category_scores(struct store *s, int64_t run_id, const char *grader_kind,
                             int (*fn)(void *ctx, const char *category, int n_features,
                                       double mean, int n_grades),
                             void *ctx, struct ev_err *err);

#endif
