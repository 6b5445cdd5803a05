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

#endif
