/*
 * modelrun — the model runtime from the command line: a prompt encoded for a command,
 * `evalrun generate` (sampled continuations), `evalrun logits` (the most likely next tokens)
 * and `evalrun bench model` (prefill and decode tokens/s). Each prints its result on stdout.
 *
 * Included by: harness/cli only.
 */
#ifndef EV_EVALS_MODELRUN_H
#define EV_EVALS_MODELRUN_H

#include <stdint.h>

#include "base/util.h"
#include "model/model.h"

/* Encodes prompt (non-empty) with BOS into *ids (caller frees), *n tokens; a prompt that
 * leaves no room for one more position in m's context is EV_EFAIL naming cmd. */
int modelrun_encode(struct model *m, const char *cmd, const char *prompt, int **ids, int *n,
                    struct ev_err *err);

/* Prints the prompt and up to max_tokens new tokens sampled after ids[n] (temperature 0:
 * greedy; top_p the nucleus mass; seed the sampler's), clipped with a note at the end of the
 * context. */
int modelrun_generate(struct model *m, const char *prompt, const int *ids, int n,
                      int max_tokens, double temperature, double top_p, int64_t seed,
                      struct ev_err *err);

/* Prints the top most likely next tokens after ids[n], one a line: rank, id, logit,
 * probability and the token's text quoted and escaped (ties: lowest id first). */
int modelrun_logits(struct model *m, const int *ids, int n, int top, struct ev_err *err);

/* Prints label's prefill tokens/s over T random tokens and decode tokens/s over n_decode
 * single-token steps, best of reps (after a warm-up), as one tab-separated line. */
int modelrun_bench(struct model *m, const char *label, int T, int n_decode, int reps,
                   struct ev_err *err);

#endif
