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

/* A grade (a row of grades). */
struct grade_row {
    const char *item_key;
    int         feature;      /* -1 when none */
    int64_t     example_id;   /* 0 when none */
    const char *grader_kind;  /* "llm" or "human" */
    const char *grader_name;
    int         score;        /* -1: no score (parse_status says why) */
    const char *parse_status; /* "ok", "unparsed", "error" */
    const char *raw_answer;
    const char *template_hash;
    long        latency_ms, tokens_in, tokens_out;
};
/* Stores a grade of the run; a stored grade of the same item and grader is replaced only when
 * it was an 'error' (a failed request). sae_id 0 stores none. */
int grades_put(struct store *s, int64_t run_id, int64_t sae_id, const struct grade_row *g,
               struct ev_err *err);
/* 1 when the run has a grade for item key from any grader of this kind ("llm"/"human") other
 * than an 'error' (a rerun asks again), 0 when not, EV_EFAIL on a database error. */
int grades_has(struct store *s, int64_t run_id, const char *key, const char *grader_kind,
               struct ev_err *err);

/* Whether the run has any grade from an LLM (*llm) and from a person (*human). */
int grades_kinds(struct store *s, int64_t run_id, int *llm, int *human, struct ev_err *err);

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

/* For the reports: fn per (item kind, parse status, score) of the run's grades from
 * grader_kind with their count, by item kind; score -1 when NULL. fn returns EV_OK to go on. */
int grades_score_counts(struct store *s, int64_t run_id, const char *grader_kind,
                        int (*fn)(void *ctx, const char *item_kind, const char *parse_status,
                                  int score, long count),
                        void *ctx, struct ev_err *err);
/* fn per parsed grade with a score of the run, by grader kind, grader name and item key. */
int grades_parsed_each(struct store *s, int64_t run_id,
                       int (*fn)(void *ctx, const char *grader_kind, const char *grader_name,
                                 const char *item_key, int score),
                       void *ctx, struct ev_err *err);
/* fn per LLM grade of the run, by feature: its feature (-1 when none), grader name, parse
 * status and raw answer (NULL when none); an explain run's answers (the report). */
int grades_answers_each(struct store *s, int64_t run_id,
                        int (*fn)(void *ctx, int feature, const char *grader_name,
                                  const char *parse_status, const char *raw_answer),
                        void *ctx, struct ev_err *err);
/* One (run, grader name, item kind) that graded feature (the feature card). */
struct grades_feature_mean {
    const char *run_kind, *grader_name;
    const char *item_kind; /* 'interval', 'nonactivating', 'influence_concept', ... ('' none) */
    int64_t     run_id;
    int         n;          /* parsed scores */
    double      mean, sd;   /* of the parsed scores (NAN: none; sd NAN below 2, n - 1) */
    int         n_unparsed, n_skipped;
};
/* fn per (run, grader name, item kind) with a grade of feature of SAE sae_id, the explainer's
 * answers (item kind 'explain') left out; borrowed strings, valid during the call. */
int grades_feature_means(struct store *s, int64_t sae_id, int feature,
                         int (*fn)(void *ctx, const struct grades_feature_mean *m), void *ctx,
                         struct ev_err *err);

#endif
