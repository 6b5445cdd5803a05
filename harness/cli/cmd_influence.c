/*
 * cmd_influence — `evalrun influence`: parses the flags into the evaluation's config and runs
 * it (evals/influence.h: steer the model by clamping SAE features, generate, grade).
 */
#include <math.h>
#include <stdlib.h>

#include "cli/cmd.h"
#include "cli/common_opts.h"
#include "evals/influence.h"

int cmd_influence(int argc, char **argv, const struct cli *cli, struct ev_err *err) {
    static const struct cmd_help help = {
        "influence",
        "--features FILE",
        "Steering, as in the paper: each feature of FILE is clamped to K x its max activation\n"
        "(from the feature index: 'evalrun index') at every position but the BOS while the model\n"
        "continues each prompt of the steering set, the SAE's error term kept so that only that\n"
        "feature changes; K = 0 ablates the feature. Each prompt's unsteered baseline uses the\n"
        "same seed. The grader (prompts/influence.txt) scores each steered text against its baseline:\n"
        "does it express the feature's description (Concept 0-3), is it still fluent (Fluency\n"
        "0-3). Without a grader the texts are still generated and stored, and the grading items\n"
        "wait for human review. Rerunning the same command resumes."};
    struct infl_config c = {.max_new = 40, .temperature = 0.8, .top_p = 0.9, .max_act = -1};
    const char        *scale = "10";
    double            *scales = NULL;
    struct common_opts co;
    common_opts_init(&co, cli, COMMON_EVAL | COMMON_INDEX);
    const struct opt opts[] = {
        {"features", OPT_STR, &c.features_path, "FILE",
         "features to steer: ID or ID<TAB>description"},
        {"prompts", OPT_STR, &c.prompts_path, "SET.json",
         "steering prompts (default evals/sets/steering.json)"},
        {"only", OPT_STR, &c.only, "KIND",
         "only the set's prompts of this kind (e.g. stories, general)"},
        {"scale", OPT_STR, &scale, "K[,K...]",
         "clamp to K x max activation (default 10; the paper: 5,10,20; 0 = ablation)"},
        {"max-tokens", OPT_LONG, &c.max_new, "N", "new tokens per continuation (default 40)"},
        {"temperature", OPT_DOUBLE, &c.temperature, "T",
         "sampling temperature, 0 = greedy (default 0.8)"},
        {"top-p", OPT_DOUBLE, &c.top_p, "P", "nucleus mass in (0, 1] (default 0.9)"},
        {"clamp-bos", OPT_FLAG, &c.clamp_bos, NULL,
         "clamp at the BOS position too (default: every position but the BOS)"},
        {"max-act", OPT_DOUBLE, &c.max_act, "X",
         "use X as every feature's max activation instead of the feature index"},
        COMMON_OPTIONS(co),
        {0},
    };
    int npos = 0, rc = args_parse(&help, opts, argc, argv, &npos, err);
    if (rc != EV_OK) return rc;
    if (npos > 0) return ev_fail(err, EV_EUSAGE, "influence: unexpected argument '%s'", argv[1]);
    if (!c.features_path)
        return ev_fail(err, EV_EUSAGE, "influence: --features FILE is required (one feature id, "
                                       "or id<TAB>description, per line)");
    if ((rc = infl_parse_scales(scale, &scales, &c.n_scales, err)) ||
        (rc = args_check_long("--max-tokens", c.max_new, 1, 100000, err)) ||
        (rc = args_check_double("--temperature", c.temperature, 0.0, 100.0, err)) ||
        (rc = args_check_double("--top-p", c.top_p, 1e-6, 1.0, err)) ||
        (rc = common_opts_check(&co, err)))
        goto out;
    if (c.max_act != -1 && !(c.max_act > 0 && isfinite(c.max_act))) {
        rc = ev_fail(err, EV_EUSAGE, "--max-act: expected a positive number, got %g", c.max_act);
        goto out;
    }
    c.scales = scales;
    rc = common_opts_run(&infl_kind, &co, &c, err);
out:
    free(scales);
    return rc;
}
