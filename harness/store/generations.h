/*
 * generations — the owner of the generations table (schema 007): the texts an evaluation
 * generated (influence: steered and baseline continuations), keyed by (run, item key).
 *
 * Included by: store and the wings above it (graders, evals, cli).
 */
#ifndef EV_STORE_GENERATIONS_H
#define EV_STORE_GENERATIONS_H

#include <stdint.h>

#include "base/util.h"

struct store;

/* 1 when the generation (run_id, key) is stored: *prompt and *text (caller frees; either
 * argument may be NULL) and *scale (NAN when none; may be NULL); 0 when not; < 0 on error. */
int generations_get(struct store *s, int64_t run_id, const char *key, char **prompt, char **text,
                    double *scale, struct ev_err *err);

/* A generation (a row of generations); pointers borrowed. */
struct generation_row {
    const char *key, *prompt;
    int         prompt_idx, feature; /* feature -1: a baseline (scale, max_act, value unused) */
    double      scale, max_act, value;
    uint64_t    seed;
    const int  *tokens; /* (n) the new tokens */
    int         n;
    const char *text;
};

/* Inserts a generation unless (run_id, key) is stored (then nothing changes). */
int generations_put(struct store *s, int64_t run_id, const struct generation_row *g,
                    struct ev_err *err);

/* The stored new tokens of generation (run_id, key) into *tokens (caller frees) and *n:
 * 1 when stored, 0 when not (*tokens NULL), < 0 on error. */
int generations_tokens(struct store *s, int64_t run_id, const char *key, int **tokens, int *n,
                       struct ev_err *err);

/* Calls fn for every generation of the run, ordered by feature (baselines first), scale and
 * prompt; tokens are not read (n = 0, tokens NULL); fn returns EV_OK to go on. */
int generations_each(struct store *s, int64_t run_id,
                     int (*fn)(void *ctx, const struct generation_row *g), void *ctx,
                     struct ev_err *err);

/* A steered generation with its baseline and its mean Concept and Fluency grades (the
 * reports); pointers borrowed for the call. */
struct generations_steered_row {
    int         feature;
    double      scale, max_act, clamp;
    const char *prompt, *baseline, *text; /* baseline NULL when none */
    double      concept, fluency;         /* NAN when no parsed grade */
    int         n_unparsed, n_skipped;    /* its Concept/Fluency answers that did not parse,
                                           * and raters' skips */
};
/* fn per steered generation of the run (by feature, scale, prompt), grades from grader_kind. */
int generations_steered(struct store *s, int64_t run_id, const char *grader_kind,
                        int (*fn)(void *ctx, const struct generations_steered_row *r), void *ctx,
                        struct ev_err *err);

#endif
