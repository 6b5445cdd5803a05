/*
 * runner — the one lifecycle every evaluation goes through. An evaluation is a struct
 * eval_kind (what it checks, plans, runs, how its items are graded or queued, what it
 * prints); eval_runner_run() drives it and owns everything the evaluations share: opening the
 * model, the SAE and the database, the grader and its preflight request, starting or resuming
 * the run (kind, configuration, seed, tag, shard), grading or queueing the items, the
 * grader's usage and summary, and ending the run (done / interrupted / failed) from the
 * result code that becomes the exit status.
 *
 * Included by: evals and harness/cli.
 *
 * Order (so that bad input stores nothing): check (the kind's input files, nothing opened)
 * -> eval_env_open -> prepare (inputs against the SAE, templates, the index) -> the grader
 * (configured but unusable: one line here, before any batch work) -> configure (the run's
 * configuration JSON) -> the preflight request, unless the run is already done (rerunning
 * finished work asks the provider nothing) -> eval_run_begin -> work (plan the items and do
 * the numeric part, storing as it goes) -> grade (with a grader) or queue (without one) ->
 * report. Ctrl-C stops between items; the run is marked interrupted and resumes.
 *
 * A command (harness/cli/cmd_NAME.c) parses its flags into the kind's config struct and an
 * eval_common, checks their ranges, and calls eval_runner_run(): nothing else.
 */
#ifndef EV_RUNNER_H
#define EV_RUNNER_H

#include <stdint.h>

#include "base/json.h"
#include "evals/common.h"
#include "evals/controls.h"
#include "evals/index.h"
#include "evals/itemgrade.h"
#include "graders/grader.h"

/* What every evaluation command gives the runner (harness/cli fills it from its common
 * options). */
struct eval_common {
    const char                 *db_path;
    const char                 *model, *sae; /* NULL: the shipped defaults */
    int                         model_flags; /* MODEL_LOAD_* (--weights-dtype) */
    const char                 *tag;         /* NULL: none */
    int                         retag;       /* --retag (store.h's run_info) */
    int64_t                     seed;
    int                         shard_k, shard_n;
    const struct grader_config *grader;      /* NULL: not configured (items are queued) */
    /* where an on-demand feature index comes from (--corpus, --text-field,
     * --no-index-build); model_arg/sae_arg are filled in by the runner */
    struct eval_index_source    index;
    /* controls (evals/controls.h): the EVAL_CONTROL_* flags asked for with --control (0:
     * none), each run after the run itself as its own run; control: non-NULL while the run
     * is itself a control (set by the runner) */
    unsigned                    controls;
    const struct eval_control  *control;
};

/* One evaluation in progress: what the runner opened, and the kind's own state. */
struct eval_ctx {
    const struct eval_common *common;
    void                     *cfg;     /* the kind's configuration (from the command; borrowed) */
    void                     *state;   /* the kind's (prepare sets it, release frees it) */
    struct eval_env           env;
    struct eval_run           run;     /* valid from work() on */
    struct grader            *grader;  /* NULL without a grader */
    cJSON                    *config;  /* the run's configuration as stored (borrowed) */
};

/* How a kind's planned items are graded by default (the generic grade-or-queue step): the
 * items planned with template tpl (returned by the kind, borrowed), parsed as how. */
struct eval_item_grading {
    const struct prompt *tpl;
    enum itemgrade_parse how;
    int                  lo, hi;
};

enum eval_kind_flags {
    EVAL_REPORT_PARTIAL = 1 << 0, /* report after an interruption too (what is stored) */
    EVAL_GRADER_USAGE   = 1 << 1, /* store the grader's usage for the run at the end (kinds
                                   * that grade through their own batches store it there) */
    EVAL_GRADER_SUMMARY = 1 << 2, /* and print the grader's summary line on stderr */
    EVAL_CONTROL_RANDOM = 1 << 3, /* takes --control random-sae (the kind, as a control, reads
                                   * descriptions only from the store or the explainer) */
    EVAL_CONTROL_SHUF   = 1 << 4, /* takes --control shuffled (the kind's work grades against
                                   * a derangement of the descriptions when x->common->control
                                   * says so) */
};

struct eval_kind {
    const char *name;  /* runs.kind: "specificity" */
    unsigned    flags; /* enum eval_kind_flags */
    /* Each returns EV_OK or a negative EV_E* code with err set; NULL ones are skipped. */
    /* the command's input files, before anything is opened (a malformed file stores nothing) */
    int (*check)(struct eval_ctx *x, struct ev_err *err);
    /* after the model, SAE and database are open, before the grader and the run */
    int (*prepare)(struct eval_ctx *x, struct ev_err *err);
    /* the run's configuration: the kind's parameters and input hashes into cfg (the runner
     * adds model, SAE, hook and seed; never the shard). Work that the configuration depends
     * on goes here too (autointerp's corpus pass selects the latents it names): it comes
     * after the grader is known to be usable and before the run row. */
    int (*configure)(struct eval_ctx *x, cJSON *cfg, struct ev_err *err);
    /* plan the items and do the numeric work, in the run (x->run) */
    int (*work)(struct eval_ctx *x, struct ev_err *err);
    /* the generic grading of planned items: fills *ig, returns 1 (0: this kind grades in
     * work(), or grades nothing) */
    int (*item_grading)(struct eval_ctx *x, struct eval_item_grading *ig);
    /* without a grader, after work(): say what was queued (NULL: the runner counts the
     * pending items of item_grading's template) */
    int (*queue)(struct eval_ctx *x, struct ev_err *err);
    /* print the run's tables on stdout */
    int (*report)(struct eval_ctx *x, struct ev_err *err);
    /* free x->state */
    void (*release)(struct eval_ctx *x);
};

/* Runs kind k with the command's configuration cfg (borrowed), then each control c->controls
 * asks for (its own run, "control" in its configuration), then the table of the controls
 * (evals/controls.h). A control the kind does not take, or a control without a grader, is
 * EV_EUSAGE before anything runs. Returns the result code the command returns (EV_OK,
 * EV_EINTR, EV_EFAIL, EV_EUSAGE ...), with err set. */
int eval_runner_run(const struct eval_kind *k, const struct eval_common *c, void *cfg,
                    struct ev_err *err);

/* Adds "grader": "PROVIDER:MODEL" (or null without a grader) to a run configuration. */
void eval_config_add_grader(cJSON *cfg, struct grader *g);

/* Makes sure that the database holds a feature index for x's SAE: builds it on demand
 * (eval_index_ensure in evals/index.h) unless --no-index-build, then EV_EFAIL saying how. */
int eval_require_index(struct eval_ctx *x, struct ev_err *err);

/* A features file's syntax (check stage: nothing is opened yet). */
int eval_features_check(const char *path, struct ev_err *err);
/* The features file against x's SAE, its SHA-256 (fhash) and the index it needs (prepare
 * stage). Caller frees f with eval_features_release(). */
int eval_features_open(struct eval_ctx *x, const char *path, struct eval_features *f,
                       char fhash[65], struct ev_err *err);

#endif
