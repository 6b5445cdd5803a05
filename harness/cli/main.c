/*
 * evalrun — the command table and dispatch; nothing else lives here (STYLE rule 27).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cmd.h"
#include "cli/common_opts.h"
#include "store/store.h"

#ifndef EVALRUN_VERSION
#define EVALRUN_VERSION "unknown"
#endif

struct cmd {
    const char *name;
    cmd_fn     *fn;
    const char *summary;
    int         heavy; /* loads a model: 'evalrun plan' estimates it, and it refuses to start
                        * when the estimate exceeds the available memory or disk */
};

static const struct cmd commands[] = {
    {"runs", cmd_runs, "list the runs stored in the database", 0},
    {"db",   cmd_db,   "database maintenance: 'db info' shows the schema version and row counts", 0},
    {"grader-check", cmd_grader_check, "send one tiny request to the LLM grader: latency, model, parse", 0},
    {"merge", cmd_merge, "fold shard databases into one: merge --db OUT SHARD.db...", 0},
    {"submit", cmd_submit, "run a batch command as a Slurm job array, then merge the shards", 0},
    {"status", cmd_status, "per-shard progress of a run submitted with 'submit'", 0},
    {"generate", cmd_generate, "continue a prompt with the model (greedy or sampled)", 1},
    {"logits", cmd_logits, "the model's top next-token candidates for a prompt", 1},
    {"tokenize", cmd_tokenize, "text on stdin to token ids, or ids to text with --decode", 0},
    {"model-info", cmd_model_info, "a checkpoint's architecture, parameters, memory and hooks (no weights needed)", 0},
    {"bench", cmd_bench, "benchmarks: 'bench model' times prefill and decode", 0},
    {"explain", cmd_explain, "write feature descriptions with the explainer LLM from the index", 1},
    {"specificity", cmd_specificity, "grade contexts per activation interval against descriptions", 1},
    {"completeness", cmd_completeness, "are a concept's top features about it? (coverage)", 1},
    {"influence", cmd_influence, "steer: clamp features to k x their max activation, generate, grade", 1},
    {"attribution", cmd_attribution, "attribute a logit difference to features; ablate the top ones", 1},
    {"collect", cmd_collect, "write an activation cache: the residual stream at a hook over a corpus", 1},
    {"train-sae", cmd_train_sae, "train a sparse autoencoder in C (SAELens layout out)", 1},
    {"sae-metrics", cmd_sae_metrics, "L0, FVU, dead fraction, CE-loss-recovered, KL of an SAE", 1},
    {"sweep", cmd_sweep, "train a grid of SAEs (sizes x tokens): loss, dead fraction, compute", 1},
    {"index", cmd_index, "the feature index: stats, top/interval/non-activating contexts", 1},
    {"sae-bench", cmd_sae_bench, "time SAE training and encoding (vs PyTorch: make bench)", 0},
    {"autointerp", cmd_autointerp, "autointerp scores (SAEBench, Delphi protocols)", 1},
    {"search", cmd_search, "find features: by prompt (with negatives), --like FEATURE, --attribution", 1},
    {"show", cmd_show, "the feature card: descriptions, contexts, logit effects, neighbours", 0},
    {"tag", cmd_tag, "record a feature's category (people, code, ...); --remove", 0},
    {"features", cmd_features, "list the features of a category: features --category C", 0},
    {"compare", cmd_compare, "compare a run with a baseline: CIs, verdicts, exit 3 on a regression", 0},
    {"report", cmd_report, "a run's tables and figures: md, csv, html (inline SVG) or json", 0},
    {"export", cmd_export, "export neuronpedia: the features in Neuronpedia's upload layout", 0},
    {"import", cmd_import, "read Neuronpedia's / SAEBench's published explanations and scores", 0},
    {"review", cmd_review, "rate contexts yourself in the terminal (0-3), stored as human grades", 0},
};
#define N_COMMANDS ((int)(sizeof commands / sizeof commands[0]))

static const struct cmd *find_command(const char *name) {
    for (int i = 0; i < N_COMMANDS; i++)
        if (strcmp(commands[i].name, name) == 0) return &commands[i];
    return NULL;
}

static void usage(FILE *out, const struct opt *globals) {
    fprintf(out,
            "usage: evalrun [--db PATH] [--quiet|--verbose] COMMAND [ARGS]\n"
            "\n"
            "Evaluates the features of sparse autoencoders on language models, following\n"
            "\"Scaling Monosemanticity\"; every result is stored in one SQLite database.\n"
            "\n"
            "commands:\n");
    for (int i = 0; i < N_COMMANDS; i++)
        fprintf(out, "  %-14s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\nglobal options:\n");
    args_print_options(out, globals);
    fprintf(out, "  %-24s %s\n", "--version", "print the version");
    fprintf(out, "\n'evalrun plan COMMAND ...' prints a command's memory, disk and time first.\n");
    fprintf(out, "\n'evalrun help COMMAND' or 'evalrun COMMAND --help' describes a command.\n");
}

/* Takes the global options (cli->globals) out of argv (up to a "--"), wherever they appear;
 * -q and -v are --quiet and --verbose. */
static int take_globals(int *argc, char **argv, struct cli *cli, struct ev_err *err) {
    for (int i = 1; i < *argc && strcmp(argv[i], "--") != 0; i++) {
        if (strcmp(argv[i], "-q") == 0) argv[i] = (char *)"--quiet";
        else if (strcmp(argv[i], "-v") == 0) argv[i] = (char *)"--verbose";
    }
    int rc = args_take(cli->globals, argc, argv, err);
    if (rc != EV_OK) return rc;
    if (cli->db_path && !*cli->db_path)
        return ev_fail(err, EV_EUSAGE, "--db needs a non-empty PATH");
    if (cli->quiet && cli->verbose)
        return ev_fail(err, EV_EUSAGE, "--quiet and --verbose cannot be used together");
    return EV_OK;
}

/* evalrun help [COMMAND]: the overview, or the command's own --help. */
static int run_help(int argc, char **argv, struct cli *cli, struct ev_err *err) {
    if (argc < 3) {
        usage(stdout, cli->globals);
        return EV_OK;
    }
    const struct cmd *c = find_command(argv[2]);
    if (!c) return ev_fail(err, EV_EUSAGE, "unknown command '%s' (see 'evalrun --help')", argv[2]);
    char *hargv[] = {(char *)c->name, (char *)"--help", NULL};
    return c->fn(2, hargv, cli, err);
}

/* evalrun plan COMMAND ARGS: the command parses its options as usual, works out its memory,
 * disk and time before loading anything, prints them and stops. */
static int run_plan(int argc, char **argv, struct cli *cli, struct ev_err *err) {
    const struct cmd *c = argc >= 3 ? find_command(argv[2]) : NULL;
    if (argc < 3 || strcmp(argv[2], "--help") == 0) {
        printf("usage: evalrun plan COMMAND [ARGS]\n\n"
               "Prints what COMMAND with ARGS would take on this machine, before anything\n"
               "heavy is loaded: memory (weights in the dtype they are kept in, heap or\n"
               "mapped; forward state; SAE; buffers), disk, and a time estimate. Commands:");
        for (int i = 0; i < N_COMMANDS; i++)
            if (commands[i].heavy) printf(" %s", commands[i].name);
        printf("\n");
        if (argc >= 3) return EV_OK;
        return ev_fail(err, EV_EUSAGE, "plan: name a command (evalrun plan COMMAND ...)");
    }
    if (!c || !c->heavy)
        return ev_fail(err, EV_EUSAGE, "plan: %s '%s' (plan takes a command that loads a model; "
                                       "see 'evalrun plan --help')",
                       c ? "nothing to plan for" : "unknown command", argv[2]);
    cli->plan_only = 1;
    return c->fn(argc - 2, argv + 2, cli, err);
}

/* A command named by argv[1], or an option that is not one. */
static int run_command(int argc, char **argv, struct cli *cli, struct ev_err *err) {
    const char *name = argv[1];
    if (name[0] == '-')
        return ev_fail(err, EV_EUSAGE, "unknown option '%s' (see 'evalrun --help')", name);
    const struct cmd *c = find_command(name);
    if (!c) return ev_fail(err, EV_EUSAGE, "unknown command '%s' (see 'evalrun --help')", name);
    ev_install_interrupt_handler();
    return c->fn(argc - 1, argv + 1, cli, err);
}

/* The exit status of rc, after its message and a check that stdout took everything. */
static int finish(int rc, const struct ev_err *err) {
    if (rc == ARGS_HELP) return 0;
    if (rc != EV_OK) {
        if (err->msg[0]) fprintf(stderr, "evalrun: %s\n", err->msg);
        else if (rc == EV_EINTR) fprintf(stderr, "evalrun: interrupted\n");
    }
    fflush(stdout);
    if (ferror(stdout)) {
        fprintf(stderr, "evalrun: cannot write to standard output\n");
        return 1;
    }
    return ev_exit_status(rc);
}

int main(int argc, char **argv) {
    struct cli    cli = {0};
    struct ev_err err = {{0}};
    common_opts_globals(&cli);
    int rc = take_globals(&argc, argv, &cli, &err);
    if (rc != EV_OK) return finish(rc, &err);
    if (!cli.db_path) cli.db_path = store_default_path();
    ev_set_verbosity(cli.quiet ? EV_QUIET : cli.verbose ? EV_VERBOSE : EV_NORMAL);

    if (argc < 2) {
        usage(stderr, cli.globals);
        return 2;
    }
    const char *name = argv[1];
    if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0) {
        usage(stdout, cli.globals);
        return 0;
    }
    if (strcmp(name, "--version") == 0 || strcmp(name, "version") == 0) {
        printf("evalrun %s\n", EVALRUN_VERSION);
        return 0;
    }
    if (strcmp(name, "help") == 0) rc = run_help(argc, argv, &cli, &err);
    else if (strcmp(name, "plan") == 0) rc = run_plan(argc, argv, &cli, &err);
    else rc = run_command(argc, argv, &cli, &err);
    return finish(rc, &err);
}
