/*
 * completeness — the paper's completeness check: for a concept c and prompts about c, are the
 * features most active on the prompts' final token about c?
 *
 * Included by: evals and harness/cli.
 *
 * Per concept: every prompt is run through the model up to the SAE's hook (BOS prepended when
 * the tokenizer has one) and encoded; the activations at each prompt's final token are
 * averaged over the concept's prompts (the mean, so that concepts with more prompts are not
 * favoured); the k (default 5) features with the largest mean activation (> 0; ties to the
 * lower index) are the concept's top features. Their descriptions and the concept go into
 * prompts/completeness.txt, and the grader answers whether c is the most important part of
 * at least one description: yes is stored as score 1, no as 0, anything else as 'unparsed'.
 * Coverage = yes / (yes + no), over the concepts with a parsed answer.
 *
 * Concept sets are JSON (evals/sets/concepts.json):
 *   {"version": 1, "concepts": [{"concept": "a girl named Lily", "group": "stories",
 *                                "prompts": ["Once upon a time, there was a girl named Lily",
 *                                            ...]}, ...]}
 * "group" is optional (a filter: --group); names are unique and non-empty; every concept has
 * at least one non-empty prompt.
 */
#ifndef EV_COMPLETENESS_H
#define EV_COMPLETENESS_H

#include <stdio.h>

#include "evals/common.h"
#include "evals/runner.h"
#include "graders/prompt.h"

struct comp_concept {
    char  *name;
    char  *group;     /* "" when none */
    int    n_prompts;
    char **prompts;
};

struct comp_set {
    int                  n;
    struct comp_concept *c;
    char                 hash[65]; /* sha256 of the file's bytes */
};

/* Reads a concept set; when group is not NULL only the concepts of that group are kept.
 * Errors (EV_EFAIL) name the file and the concept at fault; an empty set (after the group
 * filter) is an error. Caller frees with comp_set_release(). */
int  comp_set_load(const char *path, const char *group, struct comp_set *out,
                   struct ev_err *err);
void comp_set_release(struct comp_set *s);

/*
 * The top k features of concept c: idx[0..*n_found) and their mean final-token activations
 * act[] (descending). st must hold the longest prompt (model_state_new with max_T >= it).
 * A prompt longer than the state is EV_EFAIL naming the concept.
 */
int comp_top_features(struct eval_env *e, struct model_state *st, const struct comp_concept *c,
                      int k, int *idx, float *act, int *n_found, struct ev_err *err);

/* The longest prompt of the set in tokens (BOS included), to size the model state. */
int comp_max_tokens(struct eval_env *e, const struct comp_set *s, int *max_T, struct ev_err *err);

/* 1 when the run already has the concept's item. */
int comp_concept_planned(struct eval_env *e, const struct eval_run *run, const char *concept,
                         struct ev_err *err);

/* Plans the concept's item: renders tpl with the concept and the numbered descriptions of
 * idx[0..n) (stored descriptions, "(no description)" when none) and stores it with the
 * features in payload_json. */
int comp_plan_concept(struct eval_env *e, const struct eval_run *run, const struct prompt *tpl,
                      const char *concept, const int *idx, const float *act, int n,
                      struct ev_err *err);

/* Prints per concept the top features and the judgement, then the coverage. */
int comp_report(struct eval_env *e, const struct eval_run *run, FILE *out, struct ev_err *err);

/* `evalrun completeness`: the command's parameters (ranges checked by the command). */
struct comp_config {
    const char *concepts_path; /* NULL: evals/sets/concepts.json (here or beside the binary) */
    const char *group;         /* only the concepts of this group, or NULL */
    long        top_k;         /* features per concept */
    int         no_explain;    /* do not explain top features lacking a description */
};

/* The evaluation (evals/runner.h): each concept's top features (numeric), descriptions for
 * those lacking one, one yes/no item per concept, comp_report's tables. */
extern const struct eval_kind comp_kind;

#endif
