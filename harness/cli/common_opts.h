/*
 * common_opts — the options several commands share, declared once: the database, quiet and
 * verbose (global, taken out by main), the model, the SAE, the run's seed, tag and shard, the
 * grader's options and --json. A command includes the ones it takes in its own table with
 * COMMON_OPTIONS(co), so that one name, one meaning, one help line and one check serve
 * every command, and its --help lists them from the same table that parses them.
 *
 * Included by: harness/cli only.
 *
 *     struct common_opts co;
 *     common_opts_init(&co, cli, COMMON_EVAL);
 *     const struct opt opts[] = { {"features", OPT_STR, &path, "FILE", "..."},
 *                                 COMMON_OPTIONS(co), {0} };
 *     rc = args_parse(&help, opts, argc, argv, &npos, err);
 *     rc = common_opts_check(&co, err);   // --seed range, --shard K/N, grader flag values
 *
 * co must stay where it is between init and the last use of the table (the table points into
 * it).
 */
#ifndef EV_COMMON_OPTS_H
#define EV_COMMON_OPTS_H

#include "base/args.h"
#include "cli/cmd.h"
#include "evals/plan.h"
#include "evals/runner.h"
#include "graders/grader.h"

enum common_opts_flags {
    COMMON_MODEL  = 1 << 0, /* --model PATH, --weights-dtype auto|f32|bf16 */
    COMMON_SAE    = 1 << 1, /* --sae DIR */
    COMMON_SEED   = 1 << 2, /* --seed S */
    COMMON_TAG    = 1 << 3, /* --tag NAME */
    COMMON_SHARD  = 1 << 4, /* --shard K/N */
    COMMON_GRADER = 1 << 5, /* --grader and the grader's options */
    COMMON_JSON   = 1 << 6, /* --json */
    COMMON_INDEX  = 1 << 7, /* --corpus, --text-field, --no-index-build: the on-demand index */
    COMMON_CONTROL = 1 << 8, /* --control none|random-sae|shuffled (evals/controls.h) */
    /* a batch command over the model and an SAE (CLARIFICATIONS: --db, --seed, --tag,
     * --shard) */
    COMMON_BATCH = COMMON_MODEL | COMMON_SAE | COMMON_SEED | COMMON_TAG | COMMON_SHARD,
    COMMON_EVAL  = COMMON_BATCH | COMMON_GRADER, /* a graded evaluation */
};

struct common_opts {
    unsigned            which;      /* enum common_opts_flags */
    const struct cli   *cli;        /* borrowed */
    const char         *db_path;    /* the global --db (never NULL) */
    const char         *model;      /* --model, NULL: model_resolve_path()'s default */
    const char         *weights_dtype; /* --weights-dtype as given ("auto" by default) */
    int                 model_flags; /* MODEL_LOAD_F32 / _BF16 from it (common_opts_check) */
    const char         *sae;        /* --sae, NULL: eval_resolve_sae_path()'s default */
    const char         *tag;        /* --tag, or NULL */
    int                 retag;      /* --retag: move the tag from the run that holds it */
    const char         *shard;      /* --shard as given */
    long                seed;       /* --seed, default 0 */
    int                 shard_k, shard_n; /* from --shard by common_opts_check(): 0/1 */
    int                 json;       /* --json */
    const char         *index_corpus, *index_text_field; /* --corpus, --text-field */
    int                 no_index_build; /* --no-index-build */
    const char         *control;    /* --control as given (default "none") */
    unsigned            controls;   /* EVAL_CONTROL_* from it (common_opts_check) */
    struct grader_flags gf;         /* the grader's options */
    struct opt          table[14];  /* the chosen options above */
    struct opt          grader[16]; /* the grader's, from GRADER_OPTIONS */
    struct opt          globals[4]; /* cli's */
    char                seed_help[64];
    int                 logprobs;   /* > 0: the judge is asked for top logprobs (autointerp) */
};

/* The entries a command's table includes: its common, grader and global options. */
#define COMMON_OPTIONS(co)                                                                    \
    {"common options", OPT_TABLE, (co).table, NULL, NULL},                                    \
    {"grader options", OPT_TABLE, (co).grader, NULL, NULL},                                   \
    {"global options", OPT_TABLE, (co).globals, NULL, NULL}

/* Sets the defaults and the tables for the options in which (enum common_opts_flags). */
void common_opts_init(struct common_opts *co, const struct cli *cli, unsigned which);
/* Parses the arguments of a command with no flags of its own and none of enum
 * common_opts_flags (only the global ones: db, merge); its positional arguments are left in
 * argv[1..*npos]. */
int common_opts_parse_only(const struct cmd_help *help, const struct cli *cli, int argc,
                           char **argv, int *npos, struct ev_err *err);

/* A default seed other than 0 (before args_parse; the help line says it). */
void common_opts_default_seed(struct common_opts *co, long seed);

/* After args_parse(): --seed in [0, LONG_MAX], --shard parsed into shard_k/shard_n, --tag (below), and the
 * grader's flags (when a grader is configured) turned into a configuration once, so that a
 * malformed value is a usage error before anything is opened. EV_EUSAGE naming the flag. */
int common_opts_check(struct common_opts *co, struct ev_err *err);

/* --tag NAME: a tag is used wherever a run id is, so an empty one, or one of digits only (it
 * would read as a run id), is EV_EUSAGE naming it. NULL (not given) is EV_OK. Part of
 * common_opts_check(); the data commands (collect, train-sae, sweep, index, sae-metrics) call
 * it themselves. */
int common_tag_check(const char *tag, struct ev_err *err);

/* An input file named by flag (--features FILE), before any database is made: missing, a
 * folder or unreadable is EV_EFAIL, one line naming the flag and the path. NULL: EV_OK. */
int common_file_check(const char *flag, const char *path, struct ev_err *err);
/* A file the command will write (--out FILE), before any work: a folder, or a missing parent
 * folder, is EV_EFAIL, one line naming the flag and the path. NULL: EV_OK. */
int common_out_check(const char *flag, const char *path, struct ev_err *err);

/* --corpus PATH (with --text-field KEY, may be NULL), before any database is made or anything
 * else is done: missing, an empty file, a folder with no corpus files or a refused one
 * (base/corpus.h), or no text at all (every file empty) is EV_EFAIL, one line naming --corpus
 * and the path. The first piece is read, nothing more. NULL (not given) is EV_OK. */
int common_corpus_check(const char *path, const char *text_field, struct ev_err *err);

/*
 * Before anything heavy: works out j (evals/plan.h) with the model, --weights-dtype and the
 * SAE the options name filled in. Under `evalrun plan` prints the plan on stdout and returns
 * COMMON_PLAN_SHOWN (the command then returns EV_OK without running); when it does not fit
 * the available memory or disk, EV_EFAIL with the one-line refusal; else EV_OK.
 */
#define COMMON_PLAN_SHOWN 1
int common_opts_plan(const struct common_opts *co, struct plan_job *j, struct ev_err *err);

/* Loads the model the options name (--model, --weights-dtype) with load_flags added (e.g.
 * MODEL_LOAD_NO_TOKENIZER). A bad --weights-dtype is EV_EUSAGE. Caller frees with
 * model_free(). */
int common_opts_load_model(const struct common_opts *co, int load_flags, struct model **m,
                           struct ev_err *err);

/* The grader configuration from the flags, or NULL-configured: 0 when no grader is
 * configured (*cfg untouched), 1 when one is and *cfg holds it, EV_EUSAGE on a bad value. */
int common_opts_grader(const struct common_opts *co, struct grader_config *cfg,
                       struct ev_err *err);

/* The on-demand index's source from --corpus, --text-field, --no-index-build (and --model,
 * --sae): what evals/index.h's eval_index_ensure() takes. */
struct eval_index_source common_opts_index(const struct common_opts *co);

/* Runs evaluation k (evals/runner.h) with the command's configuration cfg and the common
 * options: what every evaluation command ends with. */
int common_opts_run(const struct eval_kind *k, const struct common_opts *co, void *cfg,
                    struct ev_err *err);

/* Fills cli->globals: --db, --quiet, --verbose (main parses them with args_take()). */
void common_opts_globals(struct cli *cli);

#endif
