/*
 * grades — the owner of the grades table (schema 001): one grade per (run, item, grader).
 * Every read and write of grades goes through here.
 *
 * Included by: store and the wings above it (graders, evals, cli).
 */
#ifndef EV_STORE_GRADES_H
#define EV_STORE_GRADES_H

#include <stdint.h>

#include "base/util.h"

struct store;

/* A person's rating of an item: score 0..3, or -1 for skipped (stored as unparsed, raw answer
 * "skip"). Replaces the rater's earlier rating of that item, in one transaction, so that the
 * newest rating is the one grades_human_undo() takes back. sae_id 0 stores none. */
int grades_human_put(struct store *s, int64_t run_id, const char *item_key, int64_t sae_id,
                     const char *rater, int score, struct ev_err *err);
/* Deletes the rater's newest rating in the run; *item_key (caller frees) names its item, NULL
 * when the rater has none. */
int grades_human_undo(struct store *s, int64_t run_id, const char *rater, char **item_key,
                      struct ev_err *err);
/* The pairs (the rater's score, the lowest LLM score) of every item of the run that both
 * graded with a parsed score: *human and *llm (caller frees) of *n. */
int grades_human_llm_pairs(struct store *s, int64_t run_id, const char *rater, int **human,
                           int **llm, int *n, struct ev_err *err);

#endif
