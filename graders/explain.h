/*
 * explain — the grader side of the explainer (automated interpretability): renders the
 * explainer prompt from a feature's top and interval examples, and reads the description
 * out of the answer. The batch itself goes through grader_run_batch(); the command wiring
 * (`evalrun explain`) belongs to the evaluations, which own the feature index.
 *
 * Included by: graders, evals and harness/cli.
 *
 *     char *text;  explain_render(tpl, ex, n_ex, &text, err);        // one prompt per feature
 *     reqs[i] = (struct grader_request){tpl->system, text, 0, 0};
 *     grader_run_batch(g, reqs, n, explain_accept, on_result, ud, err);
 *     // in on_result: parse_description(res->text, EXPLAIN_MAX_LEN, &desc) and store it
 */
#ifndef EV_EXPLAIN_H
#define EV_EXPLAIN_H

#include "graders/prompt.h"

#define EXPLAIN_MAX_LEN 400 /* longest description accepted, in bytes */

struct explain_example {
    const char *const *pieces;     /* (n) decoded text of each token of the window */
    const float       *acts;       /* (n) the feature's activation at each token */
    int                n;
    float              activation; /* the example's activation, shown to the explainer */
};

/* Renders template p (which must have exactly the {{examples}} placeholder) with ex[0..n_ex-1]:
 * one line per example, "N. (activation A) text", tokens with act > 0 marked ⟦ ⟧ and all
 * text escaped. Caller frees *out. */
int explain_render(const struct prompt *p, const struct explain_example *ex, int n_ex,
                   char **out, struct ev_err *err);

/* A grader_accept_fn: 1 when the answer holds a usable description. */
int explain_accept(void *ud, int index, const char *answer);

/* The explainer's re-ask (issue 17.6): an answer that is empty, only a score or longer than
 * EXPLAIN_MAX_LEN is asked once more with retry (prompts/explainer_retry.txt: the original
 * prompt, what the parser found wrong, the answer escaped and cut to 300 bytes), as
 * attempt 1 with its own cache key; the second answer is then taken or counted unparsed.
 * A grader_accept_reask_fn for grader_run_batch_reask() with accept_ud = the template. */
int explain_accept_reask(void *retry_tpl, int index, const char *prompt, const char *answer,
                         char **retry_prompt);

#endif
