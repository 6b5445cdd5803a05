/*
 * check — what `evalrun grader-check` asks a configured grader: one tiny request (the
 * preflight, prompts/check.txt) whose answer is parsed as a 0-3 score, and a load of N
 * copies of it through the batch engine, counted and timed.
 *
 * Included by: harness/cli.
 *
 *     rc = grader_check_once(g, &c, err);        // 401, 404, unreachable: an error
 *     rc = grader_check_load(g, n, &l, err);     // l filled even when rc is an error
 */
#ifndef EV_GRADER_CHECK_H
#define EV_GRADER_CHECK_H

#include "graders/grader.h"

struct grader_check {
    double latency_s;
    char   model[128];  /* the model that answered, "" when not reported */
    char   answer[512]; /* the answer, line breaks made spaces */
    int    parsed;      /* whether the answer parsed as a score 0..3 */
    int    score;       /* that score, -1 when not parsed */
};

/* Sends the preflight request and parses its answer into *c. */
int grader_check_once(struct grader *g, struct grader_check *c, struct ev_err *err);

struct grader_load {
    long   ok, failed; /* requests answered, and not */
    double seconds;    /* wall time of the batch */
};

/* Sends n copies of prompts/check.txt through grader_run_batch (whatever g's cache says)
 * and counts them into *l (filled also when the batch itself fails). */
int grader_check_load(struct grader *g, long n, struct grader_load *l, struct ev_err *err);

#endif
