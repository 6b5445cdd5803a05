/*
 * cmd — the subcommands of evalrun, and how to add one (git's builtin.h is the model).
 *
 * Included by: harness/cli only.
 *
 * To add a command:
 *   1. write harness/cli/cmd_NAME.c with `int cmd_NAME(int argc, char **argv, const struct cli *cli,
 *      struct ev_err *err)`: argv[0] is the command name. Declare its own options in a
 *      struct opt table that includes the shared ones (COMMON_OPTIONS from common_opts.h:
 *      --model, --sae, --seed, --tag, --shard, the grader's, --json, and the global --db,
 *      --quiet, --verbose) and parse them with args_parse() (which handles --help);
 *   2. declare it below;
 *   3. add one line to the commands[] table in harness/cli/main.c;
 *   4. document it in docs/cli.md and add CLI tests under tests/cli/.
 *
 * A command returns EV_OK, or a negative EV_E* code with a one-line message in err; main
 * prints "evalrun: MESSAGE" and exits with ev_exit_status(code). ARGS_HELP (from args_parse)
 * means help was printed: exit 0. Commands print results to stdout and never call exit().
 */
#ifndef EV_CMD_H
#define EV_CMD_H

#include "base/args.h"
#include "base/util.h"

/* Global options, parsed by main wherever they appear before "--". */
struct cli {
    const char *db_path; /* --db, else $EVALRUN_DB, else results/evalrun.db */
    int         quiet, verbose;
    int         plan_only; /* `evalrun plan COMMAND ...`: print the plan instead of running */
    struct opt  globals[4]; /* their table (common_opts_globals()): main parses it, every
                             * command's --help lists it */
};

typedef int cmd_fn(int argc, char **argv, const struct cli *cli, struct ev_err *err);

cmd_fn cmd_runs;
cmd_fn cmd_db;
cmd_fn cmd_grader_check; /* cmd_grader.c */
cmd_fn cmd_merge;  /* cmd_merge.c */
cmd_fn cmd_submit; /* cmd_submit.c */
cmd_fn cmd_status; /* cmd_submit.c */
cmd_fn cmd_generate;
cmd_fn cmd_logits;
cmd_fn cmd_bench;
cmd_fn cmd_model_info; /* cmd_model.c */
cmd_fn cmd_specificity;  /* cmd_eval.c */
cmd_fn cmd_completeness; /* cmd_eval.c */
cmd_fn cmd_explain;      /* cmd_eval.c */
cmd_fn cmd_tokenize; /* cmd_tokenize.c */
cmd_fn cmd_influence;   /* cmd_influence.c */
cmd_fn cmd_attribution; /* cmd_attribution.c */
cmd_fn cmd_collect;     /* cmd_sae.c */
cmd_fn cmd_train_sae;   /* cmd_sae.c */
cmd_fn cmd_sae_metrics; /* cmd_sae.c */
cmd_fn cmd_sweep;       /* cmd_sae.c */
cmd_fn cmd_index;       /* cmd_sae.c */
cmd_fn cmd_sae_bench;   /* cmd_sae.c */
cmd_fn cmd_autointerp;   /* cmd_autointerp.c */
cmd_fn cmd_search;       /* cmd_search.c */
cmd_fn cmd_show;         /* cmd_search.c */
cmd_fn cmd_tag;          /* cmd_search.c */
cmd_fn cmd_features;     /* cmd_search.c */
cmd_fn cmd_compare;      /* cmd_compare.c */
cmd_fn cmd_report;       /* cmd_report.c */
cmd_fn cmd_review;       /* cmd_review.c */
cmd_fn cmd_export;       /* cmd_publish.c */
cmd_fn cmd_import;       /* cmd_publish.c */

#endif
