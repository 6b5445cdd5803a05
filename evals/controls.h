/*
 * controls — the same evaluation on a control, beside the SAE's score (issue 17.2): does a
 * score say that a feature is real, or would noise of the same shape score as well?
 *
 * Included by: evals and harness/cli.
 *
 * Two controls, asked for with --control (a comma-separated list; default none, since a
 * control costs as much grading as the run itself):
 *   random-sae  the same evaluation on the random-direction control of the SAE
 *               (sae/sae_random.h: random unit decoder rows, encoder their transpose, biases
 *               that make each latent fire as often as the SAE's on calibration tokens, so
 *               that the L0 matches). It is built once, seeded by the run's --seed, over the
 *               first EVAL_CONTROL_TOKENS tokens of the corpus the feature index is built on
 *               (--corpus, or stories sampled from the shipped model), and saved as an SAE
 *               folder beside the database (DB.controls/random-sae-HASH12-seedS), so a rerun
 *               finds it; it gets its own feature index and, for specificity, descriptions
 *               from the explainer (a features file's descriptions describe the SAE's
 *               features, not the control's). Specificity, completeness and autointerp.
 *   shuffled    specificity only: every feature graded against another feature's description
 *               (a derangement of the features that have one, seeded by --seed), on the same
 *               contexts as the run (so the comparison is paired item by item).
 * Each control is its own run of the same kind, stored and resumed like any other, linked to
 * the run it controls by its configuration: "control": {"kind", "seed", "of": the main run's
 * configuration hash} (a hash, not a run id, so that the link survives merging shards). After
 * the run and its controls, a table: per metric the score, the control's score, the
 * difference score − control with its bootstrap 95% interval (paired per item for the
 * shuffled control, the two samples for the random SAE), and n on each side.
 */
#ifndef EV_CONTROLS_H
#define EV_CONTROLS_H

#include <stdint.h>
#include <stdio.h>

#include "base/util.h"
#include "store/store.h"

enum eval_control_flags {
    EVAL_CONTROL_RANDOM_SAE = 1 << 0,
    EVAL_CONTROL_SHUFFLED   = 1 << 1,
};

/* Calibration tokens of the random-direction control. */
#define EVAL_CONTROL_TOKENS 8192

/* A run that is a control: which one, its seed, and the configuration hash of the run it
 * controls. */
struct eval_control {
    unsigned kind; /* one EVAL_CONTROL_* flag */
    uint64_t seed;
    char     of[65];
};

/* "none", "random-sae", "shuffled" or a comma-separated list of the last two into *flags.
 * EV_EUSAGE naming --control otherwise. */
int         eval_control_parse(const char *s, unsigned *flags, struct ev_err *err);
/* "random-sae" / "shuffled" for one flag. */
const char *eval_control_name(unsigned flag);

/* A derangement of n items (n >= 2: perm[i] != i for every i; n < 2: the identity), uniform
 * over derangements, from seed. perm (n). */
void eval_control_derangement(int *perm, int n, uint64_t seed);

struct model;
struct sae;
struct eval_index_source;
/* The folder of the random-direction control of SAE sae (at sae_path, hash sae_hash) beside
 * the database db_path: built (calibrated on the model m's activations at hook over the index's
 * corpus source src) unless it is there already. *dir: caller frees. */
int eval_control_random_sae(const char *db_path, struct model *m, const struct sae *sae,
                            const char *sae_hash, const struct eval_index_source *src,
                            uint64_t seed, char **dir, struct ev_err *err);

/* Prints the table of the controls of run main_id (every run whose configuration says it
 * controls it, the newest of each kind) to out; nothing when it has none. Bootstrap seeded
 * by seed. */
int eval_controls_print(struct store *s, int64_t main_id, uint64_t seed, FILE *out,
                        struct ev_err *err);

struct cmp_result;
/* One control of a run, compared with it (borrowed for the call): per metric res[i].cand is
 * the SAE's score, res[i].base the control's, res[i].diff score - control with its 95%
 * interval. */
struct eval_control_result {
    const char              *kind;   /* "random-sae", "shuffled" */
    int64_t                  run_id; /* the control's run */
    const char              *status; /* its status */
    int                      paired; /* same contexts, paired per item (shuffled) */
    int                      n;
    const struct cmp_result *res;    /* (n) */
};
typedef int (*eval_controls_fn)(void *ctx, const struct eval_control_result *r,
                                struct ev_err *err);
/* fn for each control of run main_id (the newest of each kind, in kind order); nothing when it
 * has none. What eval_controls_print prints and `evalrun report` tabulates. Bootstrap seeded
 * by seed (the run's --seed gives the figures the evaluation printed). */
int eval_controls_each(struct store *s, int64_t main_id, uint64_t seed, eval_controls_fn fn,
                       void *ctx, struct ev_err *err);
/* The units behind a result's score and behind its control's (the paired ones when paired). */
int eval_control_n_score(const struct cmp_result *x);
int eval_control_n_control(const struct cmp_result *x);

#endif
