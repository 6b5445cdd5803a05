/*
 * cmd_search — finding and inspecting features (issue 8; docs/search.md):
 *   evalrun search    by prompt (with negatives), by decoder neighbourhood, by attribution
 *   evalrun show      the feature card (text / md / json)
 *   evalrun tag       record a category for a feature (or --remove it)
 *   evalrun features  list the features of a category, or the categories
 * Their flags, checked; what each does is in evals/search.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cmd.h"
#include "cli/common_opts.h"
#include "evals/card.h"   /* evals/: card_opts */
#include "evals/search.h" /* evals/: what the four commands do */

#define LINE_W 80

/* What the commands open, from the common options. */
static struct search_open search_where(const struct common_opts *co) {
    struct search_open w = {co->db_path, co->model, co->sae, co->model_flags,
                            common_opts_index(co)};
    return w;
}

/* A feature id from the command line: a malformed one is a usage error (2); one outside the
 * SAE is checked later against d_sae (1: the SAE has no such feature). */
static int parse_feature(const char *s, const char *what, int *out, struct ev_err *err) {
    long v;
    if (parse_index(s, 0x7fffffff, &v) != EV_OK)
        return ev_fail(err, EV_EUSAGE, "%s: expected a feature id (digits only: 0, 1, 2 ...), got "
                                       "'%s'", what, s ? s : "");
    *out = (int)v;
    return EV_OK;
}

// ---------------------------------------------------------------------------- search

/* --position, --score and the empty prompts of a. */
static int search_check_values(struct search_args *a, struct ev_err *err) {
    if (strcmp(a->format, "text") != 0 && strcmp(a->format, "json") != 0)
        return ev_fail(err, EV_EUSAGE, "--format: expected text or json, got '%s'", a->format);
    if (strcmp(a->position, "last") == 0) a->pos = SEARCH_POS_LAST;
    else if (strcmp(a->position, "all") == 0) a->pos = SEARCH_POS_ALL;
    else
        return ev_fail(err, EV_EUSAGE, "--position: expected last or all, got '%s'",
                       a->position);
    if (strcmp(a->score, "auto") == 0) a->scoring = SEARCH_SCORE_AUTO;
    else if (strcmp(a->score, "raw") == 0) a->scoring = SEARCH_SCORE_RAW;
    else if (strcmp(a->score, "relative") == 0) a->scoring = SEARCH_SCORE_RELATIVE;
    else
        return ev_fail(err, EV_EUSAGE, "--score: expected auto, raw or relative, got '%s'",
                       a->score);
    for (int i = 0; i < a->prompts.n; i++)
        if (!*a->prompts.v[i]) return ev_fail(err, EV_EUSAGE, "--prompt %d is empty", i + 1);
    for (int i = 0; i < a->negs.n; i++)
        if (!*a->negs.v[i]) return ev_fail(err, EV_EUSAGE, "--negative %d is empty", i + 1);
    return EV_OK;
}

/* Which of the three searches a asks for (a->mode), and whether its options go with it. */
static int search_check_mode(struct search_args *a, struct ev_err *err) {
    if (a->like) {
        a->mode = "like";
        if (a->prompts.n || a->negs.n || a->attribution || a->target || a->contrast)
            return ev_fail(err, EV_EUSAGE, "--like takes no --prompt, --negative, --attribution, "
                                           "--target or --contrast");
        return parse_feature(a->like, "--like", &a->feature, err);
    }
    if (a->attribution) {
        a->mode = "attribution";
        if (a->prompts.n != 1 || !a->target || a->negs.n)
            return ev_fail(err, EV_EUSAGE, "--attribution needs exactly one --prompt and a "
                                           "--target (and no --negative)");
        return EV_OK;
    }
    a->mode = "prompt";
    if (a->target || a->contrast)
        return ev_fail(err, EV_EUSAGE, "--target and --contrast go with --attribution");
    if (a->prompts.n < 1)
        return ev_fail(err, EV_EUSAGE, "search: give --prompt TEXT (repeatable), --like FEATURE "
                                       "or --attribution");
    return EV_OK;
}

int cmd_search(int argc, char **argv, const struct cli *cli, struct ev_err *err) {
    static const struct cmd_help help = {
        "search",
        "--prompt TEXT [--prompt TEXT ...]  |  --like FEATURE  |  --attribution --prompt TEXT "
        "--target TOKEN",
        "Finds features three ways. By prompt: features ranked by their activation on the\n"
        "prompts (at the last token, or the maximum over tokens with --position all) minus\n"
        "their activation on the --negative prompts; with the feature index built, each\n"
        "activation is taken as a fraction of the feature's max activation (--score). By\n"
        "geometry: --like FEATURE lists the nearest features by decoder cosine. By\n"
        "attribution: --attribution ranks features by their attribution to the logit of\n"
        "--target (minus that of --contrast) after the prompt; each must be one token.\n"
        "--out FILE writes the hits as a features file for 'evalrun specificity --features'."};
    struct search_args a = {.position = "last", .score = "auto", .format = "text", .top = 10,
                            .feature = -1};
    struct common_opts co;
    common_opts_init(&co, cli, COMMON_MODEL | COMMON_SAE | COMMON_INDEX);
    const struct opt opts[] = {
        {"prompt", OPT_STRS, &a.prompts, "TEXT", "a prompt (repeatable)"},
        {"negative", OPT_STRS, &a.negs, "TEXT", "a negative prompt: activation here counts against"},
        {"position", OPT_STR, &a.position, "last|all", "last token (default) or max over tokens"},
        {"score", OPT_STR, &a.score, "auto|raw|relative",
         "raw activations or fractions of max activation (auto: relative when indexed)"},
        {"like", OPT_STR, &a.like, "FEATURE", "nearest features by decoder cosine"},
        {"attribution", OPT_FLAG, &a.attribution, NULL, "rank by attribution to --target's logit"},
        {"target", OPT_STR, &a.target, "TOKEN", "the next token (text, leading space included)"},
        {"contrast", OPT_STR, &a.contrast, "TOKEN", "the alternative next token (optional)"},
        {"top", OPT_LONG, &a.top, "K", "hits listed (default 10)"},
        {"out", OPT_STR, &a.out, "FILE", "write the hits as a features file (ID<TAB>description)"},
        {"format", OPT_STR, &a.format, "text|json", "output format (default text)"},
        COMMON_OPTIONS(co),
        {0},
    };
    int npos = 0, rc = args_parse(&help, opts, argc, argv, &npos, err);
    if (rc != EV_OK) return rc;
    if (npos > 0)
        return ev_fail(err, EV_EUSAGE,
                       "search: unexpected argument '%s' (prompts go in --prompt)", argv[1]);
    if ((rc = args_check_long("--top", a.top, 1, 100000, err)) != EV_OK ||
        (rc = common_opts_check(&co, err)) != EV_OK ||
        (rc = search_check_values(&a, err)) != EV_OK ||
        (rc = search_check_mode(&a, err)) != EV_OK ||
        (a.out && (rc = out_file_check("--out", a.out, err)) != EV_OK))
        return rc;
    /* the prompts' forward passes (and, for --attribution, a gradient state) */
    struct plan_job pj = {.command = "search", .tokens = 4096,
                          .state_flags = strcmp(a.mode, "attribution") == 0 ? MODEL_STATE_GRAD
                                                                             : 0};
    if ((rc = common_opts_plan(&co, &pj, err)) != EV_OK)
        return rc == COMMON_PLAN_SHOWN ? EV_OK : rc;
    co.model_flags = pj.model_flags;
    struct search_open w = search_where(&co);
    return search_run(&w, &a, err);
}

// ---------------------------------------------------------------------------- show

/* --format and --color: *colour when the card is to be coloured. */
static int show_style(const char *format, const char *color, int *colour, struct ev_err *err) {
    if (strcmp(format, "text") && strcmp(format, "md") && strcmp(format, "json"))
        return ev_fail(err, EV_EUSAGE, "--format: expected text, md or json, got '%s'", format);
    if (strcmp(color, "always") == 0) *colour = 1;
    else if (strcmp(color, "never") == 0) *colour = 0;
    else if (strcmp(color, "auto") == 0) {
        const char *nc = getenv("NO_COLOR");
        *colour = isatty(STDOUT_FILENO) && !(nc && *nc);
    } else
        return ev_fail(err, EV_EUSAGE, "--color: expected auto, always or never, got '%s'", color);
    return EV_OK;
}

int cmd_show(int argc, char **argv, const struct cli *cli, struct ev_err *err) {
    static const struct cmd_help help = {
        "show", "FEATURE",
        "The feature card: descriptions with their source and scores, categories, density,\n"
        "max activation, a histogram of activations, the top activating contexts and one\n"
        "context per activation interval (activating tokens marked with \xe2\x9f\xa6 \xe2\x9f\xa7, "
        "and coloured on a\nterminal unless NO_COLOR is set), the top and bottom logit effects, "
        "the nearest\nneighbours by decoder cosine and the best-correlated MLP neuron. Reads the "
        "feature\nindex (evalrun index); what is not stored is computed from the weights."};
    const char *format = "text", *color = "auto";
    long        n_top = 5, n_nb = 8, n_logits = 8, neuron_tokens = 4096, width = LINE_W;
    struct common_opts co;
    common_opts_init(&co, cli, COMMON_MODEL | COMMON_SAE | COMMON_INDEX);
    const struct opt opts[] = {
        {"format", OPT_STR, &format, "text|md|json", "output format (default text)"},
        {"color", OPT_STR, &color, "auto|always|never",
         "colour (auto: when stdout is a terminal and NO_COLOR is unset)"},
        {"width", OPT_LONG, &width, "W", "text width in columns (default 80)"},
        {"top", OPT_LONG, &n_top, "N", "top activating contexts (default 5)"},
        {"neighbors", OPT_LONG, &n_nb, "N", "nearest neighbours (default 8)"},
        {"logits", OPT_LONG, &n_logits, "N", "logit effects each way (default 8)"},
        {"neuron-tokens", OPT_LONG, &neuron_tokens, "N",
         "tokens sampled to correlate with MLP neurons when none is stored (default 4096; 0: "
         "skip)"},
        COMMON_OPTIONS(co),
        {0},
    };
    int npos = 0, feature = -1, colour = 0;
    int rc = args_parse(&help, opts, argc, argv, &npos, err);
    if (rc != EV_OK) return rc;
    if (npos > 1) return args_no_positional(&help, npos - 1, argv + 1, err);
    if (npos != 1)
        return ev_fail(err, EV_EUSAGE, "show: expected one FEATURE id, got %d arguments", npos);
    if ((rc = parse_feature(argv[1], "show", &feature, err)) != EV_OK) return rc;
    if ((rc = args_check_long("--width", width, 60, 1000, err)) ||
        (rc = args_check_long("--top", n_top, 0, 1000, err)) ||
        (rc = args_check_long("--neighbors", n_nb, 0, 1000, err)) ||
        (rc = args_check_long("--logits", n_logits, 0, 1000, err)) ||
        (rc = args_check_long("--neuron-tokens", neuron_tokens, 0, 1 << 22, err)))
        return rc;
    if ((rc = show_style(format, color, &colour, err)) != EV_OK ||
        (rc = common_opts_check(&co, err)) != EV_OK)
        return rc;
    struct card_opts o = card_default_opts();
    o.n_top = (int)n_top;
    o.n_neighbors = (int)n_nb;
    o.n_logits = (int)n_logits;
    o.neuron_tokens = neuron_tokens;
    struct search_open w = search_where(&co);
    return search_show(&w, feature, &o, format, (int)width, colour, err);
}

// ---------------------------------------------------------------------------- tag, features

int cmd_tag(int argc, char **argv, const struct cli *cli, struct ev_err *err) {
    static const struct cmd_help help = {
        "tag", "FEATURE CATEGORY",
        "Records that FEATURE belongs to CATEGORY (free text, stored lower-case), or removes\n"
        "that with --remove. The paper's categories: people, countries, cities, code,\n"
        "list-positions, languages, famous-people, safety-relevant, deception, sycophancy,\n"
        "bias, security, emotions. Categories appear in 'evalrun show' and are listed by\n"
        "'evalrun features --category C'."};
    int         remove = 0;
    struct common_opts co;
    common_opts_init(&co, cli, COMMON_MODEL | COMMON_SAE);
    const struct opt opts[] = {
        {"remove", OPT_FLAG, &remove, NULL, "remove the category instead"},
        COMMON_OPTIONS(co),
        {0},
    };
    int                npos = 0, feature = -1;
    char               cat[72];
    int                rc = args_parse(&help, opts, argc, argv, &npos, err);
    if (rc != EV_OK) return rc;
    if (npos > 2) return args_no_positional(&help, npos - 2, argv + 2, err);
    if (npos != 2)
        return ev_fail(err, EV_EUSAGE, "tag: expected FEATURE CATEGORY, got %d arguments", npos);
    if ((rc = parse_feature(argv[1], "tag", &feature, err)) != EV_OK ||
        (rc = search_category_normalise(argv[2], cat, sizeof cat, err)) != EV_OK)
        return rc;
    if ((rc = model_weights_dtype_parse(co.weights_dtype, &co.model_flags, err)) != EV_OK)
        return rc;
    struct search_open w = search_where(&co);
    return search_tag(&w, feature, cat, remove, err);
}

int cmd_features(int argc, char **argv, const struct cli *cli, struct ev_err *err) {
    static const struct cmd_help help = {
        "features", "",
        "With --category C: the features tagged C (id, density, description). Without: every\n"
        "category and how many features it holds. Tag features with 'evalrun tag'."};
    const char *category = NULL;
    struct common_opts co;
    common_opts_init(&co, cli, COMMON_MODEL | COMMON_SAE);
    const struct opt opts[] = {
        {"category", OPT_STR, &category, "C", "list the features of this category"},
        COMMON_OPTIONS(co),
        {0},
    };
    int                npos = 0;
    char               cat[72];
    int                rc = args_parse(&help, opts, argc, argv, &npos, err);
    if (rc != EV_OK) return rc;
    if ((rc = args_no_positional(&help, npos, argv, err)) != EV_OK) return rc;
    if (category && (rc = search_category_normalise(category, cat, sizeof cat, err)) != EV_OK) return rc;
    if ((rc = model_weights_dtype_parse(co.weights_dtype, &co.model_flags, err)) != EV_OK)
        return rc;
    struct search_open w = search_where(&co);
    return search_features(&w, category ? cat : NULL, err);
}
