/*
 * cmd_eval — `evalrun specificity`, `evalrun explain` and `evalrun completeness`: each parses
 * its flags into the evaluation's config and hands it to the runner (evals/runner.h). The
 * evaluations themselves live in evals/ (specificity.c, describe.c, completeness.c).
 */
#include <stdio.h>

#include "cli/cmd.h"
#include "cli/common_opts.h"
#include "evals/completeness.h"
#include "evals/describe.h"
#include "evals/specificity.h"

// ---------------------------------------------------------------------------- specificity

int cmd_specificity(int argc, char **argv, const struct cli *cli, struct ev_err *err) {
    static const struct cmd_help help = {
        "specificity",
        "--features FILE",
        "The paper's specificity check. For each feature of FILE (ID or ID<TAB>description per\n"
        "line), N contexts are drawn from each of K activation intervals of (0, max] and N\n"
        "non-activating contexts, from the feature index (built when missing); each is shown to\n"
        "the grader with the description and the activating tokens marked, and scored 0-3.\n"
        "Features without a description get one from the explainer first (--no-explain: stop\n"
        "instead). Prints the mean score per interval per feature and overall, the share of\n"
        "3s and the non-activating baseline. Rerunning the same command resumes the run and\n"
        "never grades an item twice. Without a grader the items are queued for human review."};
    struct spec_config c = {.per_interval = 5, .intervals = 10};
    struct common_opts co;
    common_opts_init(&co, cli, COMMON_EVAL | COMMON_INDEX | COMMON_CONTROL);
    const struct opt opts[] = {
        {"features", OPT_STR, &c.features_path, "FILE", "features file: ID or ID<TAB>description"},
        {"per-interval", OPT_LONG, &c.per_interval, "N",
         "contexts per interval, and non-activating contexts (default 5)"},
        {"intervals", OPT_LONG, &c.intervals, "K", "activation intervals of (0, max] (default 10)"},
        {"limit", OPT_LONG, &c.limit, "N", "only the first N features of the file (0: all)"},
        {"no-explain", OPT_FLAG, &c.no_explain, NULL,
         "stop when a feature has no description instead of asking the explainer"},
        COMMON_OPTIONS(co),
        {0},
    };
    int rc = args_parse_flags(&help, opts, argc, argv, err);
    if (rc != EV_OK) return rc;
    if (!c.features_path)
        return ev_fail(err, EV_EUSAGE, "specificity needs --features FILE (ID or "
                                       "ID<TAB>description per line)");
    if ((rc = common_opts_check(&co, err)) ||
        (rc = args_check_long("--per-interval", c.per_interval, 1, 1000, err)) ||
        (rc = args_check_long("--intervals", c.intervals, 1, SPEC_MAX_INTERVALS, err)) ||
        (rc = args_check_long("--limit", c.limit, 0, 100000000, err)) ||
        (rc = common_file_check("--features", c.features_path, err)))
        return rc;
    return common_opts_run(&spec_kind, &co, &c, err);
}

// ---------------------------------------------------------------------------- explain

int cmd_explain(int argc, char **argv, const struct cli *cli, struct ev_err *err) {
    static const struct cmd_help help = {
        "explain",
        "--features FILE",
        "Writes descriptions of features with the explainer LLM (prompts/explainer.txt) from\n"
        "each feature's top examples in the index and a few sampled from lower activations,\n"
        "and stores them in the database with their source ('explainer:GRADER'). Features that\n"
        "already have one (in FILE or stored) are skipped unless --force. --out writes a\n"
        "features file with the descriptions. Without a grader the explainer prompts are queued."};
    struct explain_config c = {.top = 10, .sampled = 5};
    struct common_opts    co;
    common_opts_init(&co, cli, COMMON_EVAL | COMMON_INDEX);
    const struct opt opts[] = {
        {"features", OPT_STR, &c.features_path, "FILE", "features file: ID or ID<TAB>description"},
        {"force", OPT_FLAG, &c.force, NULL, "explain features that already have a description"},
        {"out", OPT_STR, &c.out_path, "FILE", "write the features with their descriptions here"},
        {"top", OPT_LONG, &c.top, "N", "strongest examples shown to the explainer (default 10)"},
        {"sampled", OPT_LONG, &c.sampled, "N",
         "examples sampled from the other activating ones (default 5)"},
        COMMON_OPTIONS(co),
        {0},
    };
    int rc = args_parse_flags(&help, opts, argc, argv, err);
    if (rc != EV_OK) return rc;
    if (!c.features_path)
        return ev_fail(err, EV_EUSAGE, "explain needs --features FILE (one feature id per line)");
    if ((rc = common_opts_check(&co, err)) ||
        (rc = args_check_long("--top", c.top, 1, 100, err)) ||
        (rc = args_check_long("--sampled", c.sampled, 0, 100, err)) ||
        (rc = common_file_check("--features", c.features_path, err)) ||
        (rc = common_out_check("--out", c.out_path, err)))
        return rc;
    return common_opts_run(&explain_kind, &co, &c, err);
}

// ---------------------------------------------------------------------------- completeness

int cmd_completeness(int argc, char **argv, const struct cli *cli, struct ev_err *err) {
    static const struct cmd_help help = {
        "completeness",
        "",
        "The paper's completeness check. For each concept of FILE (default\n"
        "evals/sets/concepts.json) its prompts are run through the model; the K (default 5)\n"
        "features with the largest mean activation on the prompts' final token, with their\n"
        "descriptions, go to the grader, which says whether the concept is the most important\n"
        "part of at least one of them. Prints the features per concept and the share of\n"
        "concepts covered. Features without a description are explained first when a grader\n"
        "and an index are available (--no-explain: shown as '(no description)')."};
    struct comp_config c = {.top_k = 5};
    struct common_opts co;
    common_opts_init(&co, cli, COMMON_EVAL | COMMON_INDEX | COMMON_CONTROL);
    const struct opt opts[] = {
        {"concepts", OPT_STR, &c.concepts_path, "FILE",
         "concept set (default evals/sets/concepts.json)"},
        {"group", OPT_STR, &c.group, "NAME", "only the concepts of this group (e.g. stories)"},
        {"top-k", OPT_LONG, &c.top_k, "K", "features per concept (default 5)"},
        {"no-explain", OPT_FLAG, &c.no_explain, NULL,
         "do not explain features lacking a description"},
        COMMON_OPTIONS(co),
        {0},
    };
    int rc = args_parse_flags(&help, opts, argc, argv, err);
    if (rc != EV_OK) return rc;
    if ((rc = common_opts_check(&co, err)) ||
        (rc = args_check_long("--top-k", c.top_k, 1, 100, err)) ||
        (rc = common_file_check("--concepts", c.concepts_path, err)))
        return rc;
    return common_opts_run(&comp_kind, &co, &c, err);
}
