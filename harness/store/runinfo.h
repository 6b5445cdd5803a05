/*
 * runinfo — what a run's grades say about how it was graded: the grader kind and model(s)
 * that scored it and how many of its grades parsed, did not parse, failed or were skipped.
 * compare checks two runs with it before it compares them (issue 17.1); the reports and the
 * evaluation tables print its counts beside n (issue 17.6). Also the run row as compare and
 * report see it (runinfo_run_load) and the per-unit numbers compare reads from the tables of
 * the kinds whose tables have no owner module yet (attributions, autointerp_samples): these
 * functions only read.
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

/* A run's row: owned strings (release with runinfo_run_release). sae_hash NULL when the run
 * names no SAE; tag NULL when none. */
struct runinfo_run {
    int64_t id;
    char   *kind, *tag, *status, *sae_hash, *config_json;
    int64_t started_ms;
};
/* Reads run id (a resolved id: store_run_resolve). EV_EFAIL when it is not there. */
int  runinfo_run_load(struct store *s, int64_t id, struct runinfo_run *out, struct ev_err *err);
void runinfo_run_release(struct runinfo_run *r);

/* One unit of a run's metric: a key and one or two numbers; key borrowed for the call. */
struct runinfo_unit {
    const char *key;
    const char *kind; /* the item kind for graded items, else NULL */
    int         interval; /* -1 when none */
    double      x, y;
};
typedef int (*runinfo_unit_fn)(void *ctx, const struct runinfo_unit *u);

/* Every graded item of the run with the mean parsed score of its grades from grader_kind
 * ("llm" / "human"; several raters are averaged), in item-key order: x = the mean. */
int runinfo_item_scores(struct store *s, int64_t run_id, const char *grader_kind,
                        runinfo_unit_fn fn, void *ctx, struct ev_err *err);
/* Every item of the run with no parsed score from grader_kind but an unparsed or a skipped
 * grade of it, in item-key order: x = 1 when one is unparsed (else 0: skipped only), y = 1
 * when one is skipped. (The reports count such items beside n.) */
int runinfo_item_unscored(struct store *s, int64_t run_id, const char *grader_kind,
                          runinfo_unit_fn fn, void *ctx, struct ev_err *err);
/* Every ablated attribution of the run, key "pPROMPT/fFEATURE/tPOS": x = -attribution (the
 * predicted change), y = the measured ablation effect. */
int runinfo_attribution_units(struct store *s, int64_t run_id, runinfo_unit_fn fn, void *ctx,
                              struct ev_err *err);
/* Per (scorer, latent) of the run's first seed, the share of autointerp windows judged
 * correctly (SAEBench's accuracy) over those with a prediction: kind = the scorer
 * ("detection", "fuzzing"), key "fLATENT", x = the share. */
int runinfo_autointerp_units(struct store *s, int64_t run_id, runinfo_unit_fn fn, void *ctx,
                             struct ev_err *err);

/* The configuration hash of run id into hex (65). EV_EFAIL when there is no such run. */
int runinfo_config_hash(struct store *s, int64_t id, char hex[65], struct ev_err *err);

/* The runs that control run main_id (issue 17.2): of its kind and shard, whose configuration's
 * control.of is its configuration hash; the newest of each control kind, in kind order.
 * fn(ctx, run id, control kind) for each. */
int runinfo_controls_of(struct store *s, int64_t main_id,
                        int (*fn)(void *ctx, int64_t id, const char *kind), void *ctx,
                        struct ev_err *err);

#endif
