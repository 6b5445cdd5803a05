/*
 * cmd_attribution — `evalrun attribution`: parses the flags into the evaluation's config and
 * runs it (evals/attribution.h: attribution of a logit difference to SAE features, and
 * ablation of the top ones; docs/evals.md).
 */
#include "cli/cmd.h"
#include "cli/common_opts.h"
#include "evals/attribution.h"

int cmd_attribution(int argc, char **argv, const struct cli *cli, struct ev_err *err) {
    static const struct cmd_help help = {
        "attribution",
        "--prompts SET.json",
        "For each prompt of the set with a target and a contrast next token (each a single\n"
        "token): the logit difference d = logit(target) - logit(contrast), the attribution of\n"
        "d to every active SAE feature at every position (activation x gradient of d through\n"
        "the layers above the hook), and the K features with the largest |attribution| each\n"
        "ablated (clamped to 0 at its position, SAE error term kept) with the change in d\n"
        "measured. Prints the ranked table per prompt and the correlation between -attribution\n"
        "(the linear prediction) and the measured ablation effects. Everything is stored in\n"
        "the database; rerunning the same command resumes. Sets: evals/sets/two_hop.json (the\n"
        "paper's prompts, for your own model), evals/sets/stories_attribution.json (stories260K)."};
    struct attr_config c = {.ablate_top = 10, .top = 10};
    struct common_opts co;
    common_opts_init(&co, cli, COMMON_BATCH);
    const struct opt opts[] = {
        {"prompts", OPT_STR, &c.prompts_path, "SET.json", "prompts with target and contrast tokens"},
        {"ablate-top", OPT_LONG, &c.ablate_top, "K",
         "ablate the K largest |attribution| per prompt (default 10; 0 = none)"},
        {"top", OPT_LONG, &c.top, "N", "rows of the ranked table per prompt (default 10)"},
        {"features", OPT_STR, &c.features_path, "FILE",
         "descriptions to show (ID<TAB>description)"},
        COMMON_OPTIONS(co),
        {0},
    };
    int rc = args_parse_flags(&help, opts, argc, argv, err);
    if (rc != EV_OK) return rc;
    if (!c.prompts_path)
        return ev_fail(err, EV_EUSAGE, "attribution: --prompts SET.json is required (e.g. "
                                       "evals/sets/stories_attribution.json)");
    if ((rc = args_check_long("--ablate-top", c.ablate_top, 0, 100000, err)) ||
        (rc = args_check_long("--top", c.top, 1, 100000, err)) ||
        (rc = common_opts_check(&co, err)) ||
        (rc = common_file_check("--features", c.features_path, err)) ||
        (rc = common_file_check("--prompts", c.prompts_path, err)))
        return rc;
    return common_opts_run(&attr_kind, &co, &c, err);
}
