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
/* Stores (or replaces) the description of feature. */
int features_set_description(struct store *s, int64_t sae_id, int feature, const char *text,
                             const char *source, struct ev_err *err);

#endif
