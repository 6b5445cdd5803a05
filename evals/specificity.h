/*
 * specificity — the paper's specificity check: does a feature's description pick out the text
 * where the feature fires, and more so where it fires strongly?
 *
 * Included by: evals and harness/cli.
 *
 * For each feature, contexts are drawn from the feature index: per_interval activating
 * examples from each of K equal intervals of (0, max] (interval j, 0-based, holds activations
 * in (j·max/K, (j+1)·max/K]), plus per_interval non-activating examples. Intervals are
 * computed here from each stored example's activation, so K need not equal the binning the
 * index used; max is the feature's largest stored activation. Activating candidates are all of
 * the feature's activating examples (top and interval kinds together), identical windows
 * counted once. Each pick is uniform without replacement within its interval, from a
 * generator seeded by (seed, feature): the same seed gives the same contexts whatever the
 * shard or the order of the features file.
 *
 * Each context is rendered with prompts/specificity.txt (the feature's description, the window
 * with its activating tokens in ⟦ ⟧) and stored as an item (kind 'interval' with its interval
 * and activation, or 'nonactivating'); the grader's 0–3 answer is stored as a grade. Planning
 * is one transaction per feature, so a feature's items are all there or none.
 *
 * Report: per feature and overall, the mean score per interval, the share of 3s among the
 * activating contexts, and the mean score of the non-activating ones (the baseline).
 */
#ifndef EV_SPECIFICITY_H
#define EV_SPECIFICITY_H

#include <stdint.h>
#include <stdio.h>

#include "evals/common.h"
#include "evals/describe.h"
#include "evals/runner.h"
#include "graders/prompt.h"

#define SPEC_MAX_INTERVALS 100

/* `evalrun specificity`: the command's parameters (ranges checked by the command). */
struct spec_config {
    const char *features_path; /* ID or ID<TAB>description per line */
    long        per_interval;  /* N: contexts per interval, and non-activating ones */
    long        intervals;     /* K */
    long        limit;         /* only the first N features of the file (0: all) */
    int         no_explain;    /* a feature without a description is an error */
};

/* The evaluation (evals/runner.h): descriptions (the file's, else the explainer's), items
 * planned per feature, graded 0-3, the tables of spec_report. */
extern const struct eval_kind spec_kind;

struct spec_params {
    int      per_interval; /* N: contexts per interval, and non-activating contexts */
    int      intervals;    /* K: intervals of (0, max] (default 10) */
    uint64_t seed;
};

/* The 0-based interval of activation a among K equal intervals of (0, max]; -1 when a <= 0 or
 * max <= 0. An activation above max (rounding) falls in the last interval. */
int spec_interval_of(double a, double max, int K);

struct spec_pick {
    int ex;       /* index into the examples */
    int interval; /* 0..K-1, or -1 for a non-activating context */
};

/* Picks one feature's contexts from its examples x (as describe_examples_load returns them):
 * up to N per interval, lowest interval first, then up to N non-activating. out must hold
 * (K + 1) * N entries. Returns how many were picked. */
int spec_pick_examples(const struct describe_examples *x, int feature,
                       const struct spec_params *p, struct spec_pick *out);

/*
 * Plans the items of one feature in run (nothing when the run already has items for it):
 * loads its examples, picks contexts, renders each with tpl and description (escaped here),
 * and inserts the items in one transaction. *n_items receives the number of items the run has
 * for the feature afterwards (0 when the feature has no example at all).
 */
int spec_plan_feature(struct eval_env *e, const struct eval_run *run, const struct prompt *tpl,
                      int feature, const char *description, const struct spec_params *p,
                      int *n_items, struct ev_err *err);

/* Prints the run's tables (see above) to out. K is the run's number of intervals. */
int spec_report(struct eval_env *e, const struct eval_run *run, int K, FILE *out,
                struct ev_err *err);

#endif
