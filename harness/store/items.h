/*
 * items — the owner of the items table (schema 007): an evaluation's planned work items,
 * keyed by (run, item key), that graders grade and people review.
 *
 * Included by: store and the wings above it (graders, evals, cli).
 */
#ifndef EV_STORE_ITEMS_H
#define EV_STORE_ITEMS_H

#include <stddef.h>
#include <stdint.h>

#include "base/util.h"

struct store;

/* An item to show a person, with what it refers to; every pointer is borrowed for the call. */
struct items_review_row {
    const char *item_key, *kind;
    int         feature;       /* -1 when none */
    int         interval;      /* -1 when none */
    double      activation;    /* 0 when none */
    const char *description;   /* the feature's stored description, NULL when none */
    const char *prompt;        /* the rendered prompt, NULL when none */
    const void *tokens, *acts; /* the example's blobs (int32 ids, float32), NULL when none */
    size_t      tokens_n, acts_n;
    const char *example_text;  /* the example's text, "" when none */
    const char *payload_json;  /* NULL when none */
    int         answered;      /* the rater has rated it */
    int         score;         /* the rater's score, -1 when none (or skipped) */
};

/* Calls fn for every reviewable item of the run (kinds interval, nonactivating,
 * influence_concept, influence_fluency) in item-key order: those with an LLM grade that parsed
 * when llm_graded, else those without; with rater's own rating. sae_id picks the feature
 * descriptions. fn returns EV_OK to go on. */
int items_review(struct store *s, int64_t run_id, int64_t sae_id, const char *rater,
                 int llm_graded, int (*fn)(void *ctx, const struct items_review_row *row),
                 void *ctx, struct ev_err *err);

#endif
