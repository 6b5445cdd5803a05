/*
 * params — what a request body holds beyond the prompt: the model families' own rules and
 * the user's --grader-param KEY=VALUE overrides, applied to the body llm_build_body() made.
 *
 * Included by: graders (grader.c, batch.c) and harness/cli.
 *
 *   - OpenAI's reasoning families (o1, o3, o4-mini, ... and gpt-5*: params_openai_reasoning())
 *     reject max_tokens and any temperature but the default: their body gets
 *     max_completion_tokens (max_tokens plus PARAMS_REASONING_ALLOWANCE, since reasoning
 *     tokens count against it) and no temperature.
 *   - Overrides come after, in the order given, so they win: KEY=VALUE sets the top-level
 *     field KEY to VALUE parsed as JSON when it parses (7, true, {"a":1}, "x"), else to the
 *     string VALUE; KEY= (empty value) removes the field.
 * The overrides travel as one JSON array of [KEY] / [KEY, VALUE] pairs (grader_config's
 * params, also part of the cache key), made by params_parse().
 */
#ifndef EV_GRADER_PARAMS_H
#define EV_GRADER_PARAMS_H

#include <stddef.h>

#include "base/util.h"
#include "graders/grader.h"

#define PARAMS_REASONING_ALLOWANCE 4096

/* 1 when an OpenAI model name (its part after the last '/') is of a reasoning family: o<digit>
 * (o1, o3-mini, o4-mini, ...) or gpt-5 (gpt-5, gpt-5-mini, ...). */
int params_openai_reasoning(const char *model);

/* Turns the --grader-param values kv[0..n-1] into the JSON array out (n_out bytes). EV_EUSAGE
 * naming the value when one is not KEY=VALUE with a non-empty KEY of letters, digits, '_',
 * '-' or '.', or when they do not fit. n == 0 gives "". */
int params_parse(const char *const *kv, int n, char *out, size_t n_out, struct ev_err *err);

/* The body with the family rules and the overrides applied (params may be "" or NULL). Takes
 * body (frees it) and returns a new string, caller frees. */
char *params_apply(enum grader_provider p, const char *model, const char *params, char *body);

#endif
