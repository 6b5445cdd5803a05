/*
 * describe — what the evaluations read from the feature index, and the explainer wiring:
 * a feature's stored examples (the `examples` table filled by `evalrun index`), the context
 * of an example rendered with its activating tokens marked, and descriptions written by the
 * explainer LLM (graders/explain.h) from a feature's top and interval examples.
 *
 * Included by: evals and harness/cli.
 *
 * Examples: every row of `examples` for (sae, feature). An example is "non-activating" when
 * its kind starts with "non" (the index writes 'nonactivating') or its activation is <= 0;
 * every other row is activating. A feature's max activation is the largest activation among
 * its stored examples, or the index's own statistic (feature_stats.max_act, migration 005)
 * when that is larger (the index keeps the top examples, so the two normally agree).
 *
 * Descriptions live in the `features` table (eval_description_get/set); the explainer stores
 * its own with desc_source "explainer:<grader name>", each as soon as its answer arrives, so
 * that an interrupted explain loses nothing and a rerun asks only for what is missing.
 *
 * Ownership: describe_examples owns its rows (describe_examples_release); rendered text is
 * returned in new strings the caller frees with free().
 */
#ifndef EV_DESCRIBE_H
#define EV_DESCRIBE_H

#include <stdint.h>

#include "evals/common.h"
#include "evals/runner.h"
#include "graders/prompt.h"
#include "base/util.h"

struct grader;
struct tok;

struct describe_example {
    int64_t id;         /* examples.id */
    char    kind[24];   /* 'top', 'interval', 'nonactivating', ... */
    int     interval;   /* the index's interval, -1 when none */
    double  activation; /* the feature's activation at the centre token */
    int     center;     /* position of the centre token in tokens */
    int     n;          /* tokens in the window */
    int    *tokens;     /* (n) token ids */
    float  *acts;       /* (n) the feature's activation at each token */
};

struct describe_examples {
    int                      n;
    struct describe_example *ex;      /* (n) ordered by activation desc, then id */
    double                   max_act; /* the feature's max activation (above); 0 when none */
};

/* 1 when ex is a non-activating example (kind "non...", or activation <= 0). */
int describe_is_nonactivating(const struct describe_example *ex);

/* Loads every stored example of feature from the index of e's SAE. A malformed row (token or
 * activation blob of the wrong size, a centre outside the window, a token outside the model's
 * vocabulary) is EV_EFAIL naming the example id. Caller frees with describe_examples_release(). */
int  describe_examples_load(struct eval_env *e, int feature, struct describe_examples *out,
                            struct ev_err *err);
void describe_examples_release(struct describe_examples *x);

/* How many examples the index holds for e's SAE (0: no index built yet). */
int describe_index_count(struct eval_env *e, int64_t *n, struct ev_err *err);

/* The example's window as text, escaped for a prompt, with every token whose activation is > 0
 * wrapped in ⟦ ⟧ (prompt_mark_tokens). Caller frees. */
char *describe_context(const struct tok *t, const struct describe_example *ex);

struct describe_stats {
    int asked;       /* features sent to the explainer */
    int written;     /* descriptions stored */
    int unparsed;    /* answers with no usable description */
    int failed;      /* requests that failed (HTTP, network) */
    int no_examples; /* features with no activating example in the index */
};

/*
 * Writes descriptions for features[0..n) with the explainer template tpl (prompts/explainer.txt)
 * and grader g: each feature's n_top strongest examples plus n_sampled more drawn from the rest
 * of its activating examples (uniformly, reproducibly from seed and the feature id). Features
 * that already have a description are skipped unless force. Each description is stored as its
 * answer arrives (desc_source "explainer:<grader name>", desc_run_id run's id). own: run is an
 * `evalrun explain` run, which also records every answer as an item ('explain:fN', kind
 * 'explain', the prompt sent) and a grade of it (score NULL; parse_status 'ok' for a
 * description, 'unparsed', or 'error' for a failed request; the raw answer), so that its
 * provenance counts them like any run's, and skips a feature it already holds an answer for
 * (a failed request is asked again). run may be NULL (no run). Returns EV_OK, EV_EINTR, or
 * EV_EFAIL (401, database errors) with err set.
 */
int describe_explain(struct eval_env *e, const struct eval_run *run, int own, struct grader *g,
                     const struct prompt *tpl, const int *features, int n, int force,
                     uint64_t seed, int n_top, int n_sampled, struct describe_stats *st,
                     struct ev_err *err);

/* Renders the explainer prompt of one feature (as describe_explain sends it) into *out
 * (caller frees); *out is NULL (and EV_OK returned) when the feature has no activating
 * example. */
int describe_render_explainer(struct eval_env *e, const struct prompt *tpl, int feature,
                              uint64_t seed, int n_top, int n_sampled, char **out,
                              struct ev_err *err);

/* `evalrun explain`: the command's parameters (ranges checked by the command). */
struct explain_config {
    const char *features_path; /* ID or ID<TAB>description per line */
    const char *out_path;      /* write a features file with the descriptions, or NULL */
    long        top, sampled;  /* strongest examples shown, and examples sampled from the rest */
    int         force;         /* explain features that already have a description */
};

/* The evaluation (evals/runner.h): descriptions written by the explainer (or, without a
 * grader, the explainer prompts queued), then the table of descriptions and --out. */
extern const struct eval_kind explain_kind;

#endif
