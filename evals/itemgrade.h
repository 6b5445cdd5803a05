/*
 * itemgrade — grading a run's pending items with the LLM grader, the step every graded
 * evaluation shares.
 *
 * Included by: evals and harness/cli.
 *
 * An item is pending when the run has no 'llm' grade for it other than an 'error' one
 * (eval_item_graded's rule). The prompt sent is the one stored in items.prompt when the item
 * was planned, with the template's system part, so that a resumed run asks exactly what the
 * interrupted one would have. Each grade is stored in its own transaction as its answer
 * arrives (grader_run_batch's callback), so a SIGKILL loses at most the answers in flight and
 * a rerun never asks again for an item whose grade is stored.
 *
 * Parsing: ITEMGRADE_SCORE (parse_score in [lo, hi]) or ITEMGRADE_YES_NO (parse_yes_no: yes is
 * stored as score 1, no as 0). An answer that does not parse is re-asked once (a real second
 * request), then stored with score NULL and parse_status 'unparsed' — never as 0. A request
 * that failed (HTTP, network) is stored as parse_status 'error' and is pending again on the
 * next run.
 */
#ifndef EV_ITEMGRADE_H
#define EV_ITEMGRADE_H

#include "evals/common.h"
#include "graders/prompt.h"

struct grader;

enum itemgrade_parse {
    ITEMGRADE_SCORE  = 0,
    ITEMGRADE_YES_NO = 1,
};

struct itemgrade_stats {
    long pending;  /* items that had no grade when grading started */
    long ok, unparsed, failed;
};

/* Counts the run's items planned with template tpl_name that have no (non-error) grade of
 * grader kind "llm". */
int itemgrade_count_pending(struct eval_env *e, const struct eval_run *run, const char *tpl_name,
                            long *n, struct ev_err *err);

/*
 * Grades the pending items of run planned with template tpl (tpl->name), in item order, with
 * g. lo/hi bound the score for ITEMGRADE_SCORE. A progress bar labelled label is shown.
 * Returns EV_OK (per-item failures are counted in st), EV_EINTR, or EV_EFAIL with err set
 * (401, database error, or items planned with a different version of the template).
 */
int itemgrade_run(struct eval_env *e, const struct eval_run *run, struct grader *g,
                  const struct prompt *tpl, enum itemgrade_parse how, int lo, int hi,
                  const char *label, struct itemgrade_stats *st, struct ev_err *err);

#endif
