/*
 * cmd_autointerp — `evalrun autointerp`: parses the flags into the evaluation's config and
 * runs it (evals/autointerp.h: SAEBench / Delphi automated-interpretability scores;
 * docs/autointerp.md).
 */
#include <limits.h>
#include <string.h>

#include "cli/cmd.h"
#include "cli/common_opts.h"
#include "evals/autointerp.h"

static const struct cmd_help help = {
    "autointerp",
    "--protocol saebench|delphi [--latents N | --features FILE]",
    "Automated-interpretability scores that compare with SAEBench's autointerp and\n"
    "Delphi's detection/fuzzing (and OpenAI-style simulation). The corpus (--corpus, else\n"
    "stories sampled from the model) is run through the model and the SAE once; N random\n"
    "alive latents (more than 15 firings), or those of --features, get the protocol's\n"
    "windows; explanations come from FILE's descriptions or the protocol's explainer\n"
    "prompt; the judge scores them through the grader. Every prompt and sample is stored:\n"
    "rerunning resumes, and a finished run asks nothing again. Prints each scorer's score\n"
    "with a bootstrap 95% interval over latents, the chance floor, latents scored, parse\n"
    "failures, requests, tokens and cost. --out writes SAEBench's autointerp JSON\n"
    "(saebench) or the Delphi summary (delphi); schemas in docs/schemas/."};

/* The flags as given, before they become an ai_config. */
struct ai_flags {
    const char *protocol, *scorers, *negatives;
    long        min_windows, bootstrap;
};

/* Protocol, scorers and negatives into c->p. */
static int apply_protocol(const struct ai_flags *f, struct ai_config *c, struct ev_err *err) {
    enum ai_protocol proto;
    int              rc;
    if (!f->protocol)
        return ev_fail(err, EV_EUSAGE, "autointerp: --protocol saebench|delphi is required");
    if ((rc = ai_parse_protocol(f->protocol, &proto, err))) return rc;
    c->p = ai_default_params(proto);
    if ((rc = ai_parse_scorers(f->scorers, proto, &c->p.scorers, err))) return rc;
    if (f->negatives) {
        if (strcmp(f->negatives, "random") == 0) c->p.negatives = AI_NEGATIVES_RANDOM;
        else if (strcmp(f->negatives, "similar") == 0) c->p.negatives = AI_NEGATIVES_SIMILAR;
        else
            return ev_fail(err, EV_EUSAGE, "--negatives: unknown kind '%s' (expected random or "
                                           "similar)", f->negatives);
        if (proto != AI_PROTOCOL_DELPHI)
            return ev_fail(err, EV_EUSAGE, "--negatives applies to --protocol delphi only");
    }
    if (c->ctx == LONG_MIN) c->ctx = proto == AI_PROTOCOL_DELPHI ? 129 : 128;
    if (f->min_windows >= 0) c->p.min_windows = (int)f->min_windows;
    c->p.n_bootstrap = (int)f->bootstrap;
    return EV_OK;
}

static int check_ranges(const struct ai_config *c, const struct ai_flags *f,
                        struct common_opts *co, struct ev_err *err) {
    int rc;
    if ((rc = args_check_long("--latents", c->latents, 1, INT_MAX / 2, err)) ||
        (rc = args_check_long("--seed", co->seed, 0, LONG_MAX / 2, err)) ||
        (rc = args_check_long("--seeds", c->seeds, 1, 100, err)) ||
        (rc = args_check_long("--tokens", c->tokens, 64, 1L << 30, err)) ||
        (rc = args_check_long("--ctx", c->ctx, 8, 1 << 16, err)) ||
        (rc = args_check_long("--min-windows", c->p.min_windows, 0, INT_MAX / 2, err)) ||
        (rc = args_check_long("--logprobs", c->logprobs, 0, 20, err)) ||
        (rc = args_check_long("--bootstrap", f->bootstrap, 1, 1000000, err)) ||
        (rc = common_opts_check(co, err)) ||
        (rc = common_file_check("--features", c->features_path, err)))
        return rc;
    return common_corpus_check(c->corpus, c->text_field, err);
}

int cmd_autointerp(int argc, char **argv, const struct cli *cli, struct ev_err *err) {
    struct ai_config   c = {.latents = 20, .seeds = 1, .tokens = 32768, .ctx = LONG_MIN};
    struct ai_flags    f = {.min_windows = -1, .bootstrap = 1000};
    struct common_opts co;
    common_opts_init(&co, cli, COMMON_EVAL | COMMON_CONTROL);
    const struct opt opts[] = {
        {"protocol", OPT_STR, &f.protocol, "NAME", "saebench or delphi (required)"},
        {"scorers", OPT_STR, &f.scorers, "LIST",
         "detection,fuzzing,simulation (default: saebench detection; delphi detection,fuzzing)"},
        {"latents", OPT_LONG, &c.latents, "N", "random alive latents to score (default 20)"},
        {"features", OPT_STR, &c.features_path, "FILE",
         "latents to score: ID or ID<TAB>explanation per line (instead of --latents)"},
        {"corpus", OPT_STR, &c.corpus, "PATH", "plain text, JSON Lines or a folder of them "
                                               "(default: stories sampled from the model, seeded)"},
        {"text-field", OPT_STR, &c.text_field, "KEY",
         "the JSON Lines field holding the text (default text)"},
        {"tokens", OPT_LONG, &c.tokens, "N", "corpus tokens (default 32768)"},
        {"ctx", OPT_LONG, &c.ctx, "T", "tokens per sequence, BOS first (default 128; delphi 129)"},
        {"seeds", OPT_LONG, &c.seeds, "K", "rerun the sampling with seeds S..S+K-1 and report "
                                           "the spread (default 1)"},
        {"negatives", OPT_STR, &f.negatives, "KIND",
         "delphi non-activating windows: random (default) or similar (evalrun's token-overlap "
         "stand-in for Delphi's hard negatives)"},
        {"min-windows", OPT_LONG, &f.min_windows, "N",
         "delphi: skip latents with fewer activating windows (default 200)"},
        {"logprobs", OPT_LONG, &c.logprobs, "N",
         "ask an OpenAI-compatible judge for N top logprobs (AUC, simulation expected values)"},
        {"bootstrap", OPT_LONG, &f.bootstrap, "B", "bootstrap resamples (default 1000)"},
        {"out", OPT_STR, &c.out_path, "FILE.json", "write the SAEBench / Delphi JSON here"},
        COMMON_OPTIONS(co),
        {0},
    };
    int npos = 0, rc = args_parse(&help, opts, argc, argv, &npos, err);
    if (rc) return rc;
    if (npos > 0) return args_no_positional(&help, npos, argv, err);
    if ((rc = apply_protocol(&f, &c, err)) || (rc = check_ranges(&c, &f, &co, err))) return rc;
    co.logprobs = (int)c.logprobs;
    return common_opts_run(&ai_kind, &co, &c, err);
}
