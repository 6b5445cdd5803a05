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
};

static const struct cmd commands[] = {
    {"runs", cmd_runs, "list the runs stored in the database"},
    {"db",   cmd_db,   "database maintenance: 'db info' shows the schema version and row counts"},
    {"grader-check", cmd_grader_check, "send one tiny request to the LLM grader: latency, model, parse"},
    {"merge", cmd_merge, "fold shard databases into one: merge --db OUT SHARD.db..."},
    {"submit", cmd_submit, "run a batch command as a Slurm job array, then merge the shards"},
    {"status", cmd_status, "per-shard progress of a run submitted with 'submit'"},
    {"generate", cmd_generate, "continue a prompt with the model (greedy or sampled)"},
    {"logits", cmd_logits, "the model's top next-token candidates for a prompt"},
    {"tokenize", cmd_tokenize, "text on stdin to token ids, or ids to text with --decode"},
    {"bench", cmd_bench, "benchmarks: 'bench model' times prefill and decode"},
    {"explain", cmd_explain, "write feature descriptions with the explainer LLM from the index"},
    {"specificity", cmd_specificity, "grade contexts per activation interval against descriptions"},
    {"completeness", cmd_completeness, "are a concept's top features about it? (coverage)"},
    {"influence", cmd_influence, "steer: clamp features to k x their max activation, generate, grade"},
    {"attribution", cmd_attribution, "attribute a logit difference to features; ablate the top ones"},
    {"collect", cmd_collect, "write an activation cache: the residual stream at a hook over a corpus"},
    {"train-sae", cmd_train_sae, "train a sparse autoencoder in C (SAELens layout out)"},
    {"sae-metrics", cmd_sae_metrics, "L0, FVU, dead fraction, CE-loss-recovered, KL of an SAE"},
    {"sweep", cmd_sweep, "train a grid of SAEs (sizes x tokens): loss, dead fraction, compute"},
    {"index", cmd_index, "the feature index: stats, top/interval/non-activating contexts"},
    {"sae-bench", cmd_sae_bench, "time SAE training and encoding (vs PyTorch: make bench)"},
    {"autointerp", cmd_autointerp, "autointerp scores (SAEBench, Delphi protocols)"},
    {"search", cmd_search, "find features: by prompt (with negatives), --like FEATURE, --attribution"},
    {"show", cmd_show, "the feature card: descriptions, contexts, logit effects, neighbours"},
    {"tag", cmd_tag, "record a feature's category (people, code, ...); --remove"},
    {"features", cmd_features, "list the features of a category: features --category C"},
    {"compare", cmd_compare, "compare a run with a baseline: CIs, verdicts, exit 3 on a regression"},
    {"report", cmd_report, "a run's tables and figures: md, csv, html (inline SVG) or json"},
    {"review", cmd_review, "rate contexts yourself in the terminal (0-3), stored as human grades"},
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

int main(int argc, char **argv) {
    struct cli    cli = {0};
    struct ev_err err = {{0}};
    common_opts_globals(&cli);
    int rc = take_globals(&argc, argv, &cli, &err);
    if (rc != EV_OK) goto out;
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
    if (strcmp(name, "help") == 0) {
        if (argc < 3) {
            usage(stdout, cli.globals);
            return 0;
        }
        const struct cmd *c = find_command(argv[2]);
        if (!c) {
            rc = ev_fail(&err, EV_EUSAGE, "unknown command '%s' (see 'evalrun --help')", argv[2]);
            goto out;
        }
        char *hargv[] = {(char *)c->name, (char *)"--help", NULL};
        rc = c->fn(2, hargv, &cli, &err);
        goto out;
    }
    if (name[0] == '-') {
        rc = ev_fail(&err, EV_EUSAGE, "unknown option '%s' (see 'evalrun --help')", name);
        goto out;
    }
    const struct cmd *c = find_command(name);
    if (!c) {
        rc = ev_fail(&err, EV_EUSAGE, "unknown command '%s' (see 'evalrun --help')", name);
        goto out;
    }
    ev_install_interrupt_handler();
    rc = c->fn(argc - 1, argv + 1, &cli, &err);
out:
    if (rc == ARGS_HELP) return 0;
    if (rc != EV_OK) {
        if (err.msg[0]) fprintf(stderr, "evalrun: %s\n", err.msg);
        else if (rc == EV_EINTR) fprintf(stderr, "evalrun: interrupted\n");
    }
    fflush(stdout);
    if (ferror(stdout)) {
        fprintf(stderr, "evalrun: cannot write to standard output\n");
        return 1;
    }
    return ev_exit_status(rc);
}
