/*
 * runinfo — what a run's grades say about how it was graded: the grader kind and model(s)
 * that scored it and how many of its grades parsed, did not parse, failed or were skipped.
 * compare checks two runs with it before it compares them (issue 17.1); the reports and the
 * evaluation tables print its counts beside n (issue 17.6). Reads the grades table only.
 *
 * Included by: evals and harness/cli (store and the wings above it).
 */
#ifndef EV_STORE_RUNINFO_H
#define EV_STORE_RUNINFO_H

#include <stdint.h>

#include "base/util.h"

struct store;

/* How one run was graded. kind is "llm" when any LLM grade parsed, else "human" when any
 * human grade parsed, else the kind of any grade at all, else "" (no grades). names: the
 * distinct grader names of that kind with a parsed grade, sorted, comma-separated ("" when
 * none). The counts are over grades of that kind. */
struct runinfo_grades {
    char    kind[16];
    char    names[512];
    int64_t n_ok, n_unparsed, n_error, n_skipped;
    char    first_unparsed[200]; /* the start of the run's first unparsed reply ("" none) */
};

/* Reads the grades of run run_id. EV_EFAIL on a database error. */
int runinfo_grades_load(struct store *s, int64_t run_id, struct runinfo_grades *out,
                        struct ev_err *err);

/* The autointerp judge's answers of run run_id (autointerp_prompts) and the explainer's
 * (autointerp_latents): how many parsed and did not, and the start of one unparsed reply. */
struct runinfo_autointerp {
    int64_t judge_ok, judge_unparsed;
    int64_t expl_ok, expl_unparsed;
    char    first_unparsed[200];
};
int runinfo_autointerp_load(struct store *s, int64_t run_id, struct runinfo_autointerp *out,
                            struct ev_err *err);

#endif
