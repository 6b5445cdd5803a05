/*
 * cmd_influence — `evalrun influence`: parses the flags into the evaluation's config and runs
 * it (evals/influence.h: steer the model by clamping SAE features, generate, measure, grade).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cmd.h"
#include "cli/common_opts.h"
#include "evals/influence.h"
#include "evals/influence_report.h"

static const struct cmd_help help = {
    "influence",
    "--features FILE",
    "Steering, as in the paper: each feature of FILE is clamped to K x its max activation\n"
    "(from the feature index: 'evalrun index') at every position but the BOS while the model\n"
    "continues each prompt of the steering set, the SAE's error term kept so that only that\n"
    "feature changes; K = 0 ablates the feature. Each prompt's unsteered baseline uses the\n"
    "same seed. Every text is measured without an LLM: fluency (mean log-likelihood per token\n"
    "under the unsteered model), concept presence (the feature's activation when the text is\n"
    "re-encoded) and KL(unsteered || steered) at the steered positions. The grader\n"
    "(prompts/influence.txt) scores each steered text against its baseline: does it express\n"
    "the feature's description (Concept 0-3), is it still fluent (Fluency 0-3). Without a\n"
    "grader the texts are still generated, measured and stored, and the grading items wait\n"
    "for human review. --scale auto sweeps 0.5,1,2,5,10,20 and reports the largest scale whose\n"
    "fluency drop stays within --fluency-drop. Rerunning the same command resumes."};

/* --scale: a list, or "auto" (the sweep of infl_auto_scales). */
static int parse_scale(const char *spec, struct infl_config *c, double **scales,
                       struct ev_err *err) {
    if (spec && strcmp(spec, "auto") == 0) {
        int n = (int)(sizeof infl_auto_scales / sizeof infl_auto_scales[0]);
        *scales = xmalloc(sizeof **scales * (size_t)n);
        memcpy(*scales, infl_auto_scales, sizeof **scales * (size_t)n);
        c->n_scales = n;
        c->scale_auto = 1;
        return EV_OK;
    }
    return infl_parse_scales(spec, scales, &c->n_scales, err);
}

static int check_config(struct infl_config *c, const char *scale, double **scales,
                        struct common_opts *co, struct ev_err *err) {
    int rc;
    if (!c->features_path)
        return ev_fail(err, EV_EUSAGE, "influence: --features FILE is required (one feature id, "
                                       "or id<TAB>description, per line)");
    if ((rc = parse_scale(scale, c, scales, err)) ||
        (rc = args_check_long("--max-tokens", c->max_new, 1, 100000, err)) ||
        (rc = args_check_double("--temperature", c->temperature, 0.0, 100.0, err)) ||
        (rc = args_check_double("--top-p", c->top_p, 1e-6, 1.0, err)) ||
        (!isnan(c->fluency_drop) &&
         (rc = args_check_double("--fluency-drop", c->fluency_drop, 0.0, 100.0, err))) ||
        (rc = common_opts_check(co, err)) ||
        (rc = common_file_check("--features", c->features_path, err)) ||
        (rc = common_file_check("--prompts", c->prompts_path, err)))
        return rc;
    if (c->max_act != -1 && !(c->max_act > 0 && isfinite(c->max_act)))
        return ev_fail(err, EV_EUSAGE, "--max-act: expected a positive number, got %g",
                       c->max_act);
    if (!c->scale_auto && !isnan(c->fluency_drop))
        return ev_fail(err, EV_EUSAGE, "--fluency-drop only applies with --scale auto");
    if (isnan(c->fluency_drop)) c->fluency_drop = INFL_FLUENCY_DROP_DEFAULT;
    c->scales = *scales;
    return EV_OK;
}

int cmd_influence(int argc, char **argv, const struct cli *cli, struct ev_err *err) {
    struct infl_config c = {.max_new = 40, .temperature = 0.8, .top_p = 0.9, .max_act = -1,
                            .fluency_drop = NAN};
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
        {"scale", OPT_STR, &scale, "K[,K...]|auto",
         "clamp to K x max activation (default 10; the paper: 5,10,20; 0 = ablation; auto = "
         "0.5,1,2,5,10,20 and the largest scale within --fluency-drop)"},
        {"fluency-drop", OPT_DOUBLE, &c.fluency_drop, "NATS",
         "--scale auto: the largest fluency drop per token allowed (default 0.5)"},
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
    int rc = args_parse_flags(&help, opts, argc, argv, err);
    if (rc != EV_OK) return rc;
    if ((rc = check_config(&c, scale, &scales, &co, err)) == EV_OK)
        rc = common_opts_run(&infl_kind, &co, &c, err);
    free(scales);
    return rc;
}
