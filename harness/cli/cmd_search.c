/*
 * cmd_search — finding and inspecting features (issue 8; docs/search.md):
 *   evalrun search    by prompt (with negatives), by decoder neighbourhood, by attribution
 *   evalrun show      the feature card (text / md / json)
 *   evalrun tag       record a category for a feature (or --remove it)
 *   evalrun features  list the features of a category, or the categories
 */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "evals/card.h"
#include "cli/cmd.h"
#include "cli/common_opts.h"
#include "evals/index.h"
#include "store/index.h"
#include "evals/common.h"
#include "base/json.h"
#include "evals/search.h"
#include "store/features.h"
#include "store/store.h"
#include "model/tok.h"

#define LINE_W 80

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

static int check_feature(const struct eval_env *e, int f, struct ev_err *err) {
    if (f >= e->sae->cfg.d_sae)
        return ev_fail(err, EV_EFAIL, "feature %d does not exist: SAE %s has features 0..%d", f,
                       e->sae_path, e->sae->cfg.d_sae - 1);
    return EV_OK;
}

static void print_clipped(const char *s, int w) {
    char *c = card_clip(s, w);
    fputs(c, stdout);
    free(c);
}

static void fmt_density(char *buf, size_t n, double d) {
    if (isfinite(d)) snprintf(buf, n, "%.2e", d);
    else snprintf(buf, n, "-");
}

// ---------------------------------------------------------------------------- search

static void print_hits(const struct search_result *r, const char *score_name, int with_act) {
    printf("%4s %7s %10s", "rank", "feature", score_name);
    if (with_act) printf(" %8s", "act");
    printf(" %9s  %s\n", "density", "description");
    int used = 4 + 1 + 7 + 1 + 10 + (with_act ? 9 : 0) + 1 + 9 + 2;
    for (int i = 0; i < r->n; i++) {
        const struct search_hit *h = &r->hits[i];
        char                     dn[32];
        fmt_density(dn, sizeof dn, h->density);
        printf("%4d %7d %10.4f", i + 1, h->feature, h->score);
        if (with_act) printf(" %8.3f", h->act);
        printf(" %9s  ", dn);
        print_clipped(h->description ? h->description : "-", LINE_W - used);
        putchar('\n');
    }
    if (r->n == 0) printf("(no feature matched)\n");
}

static char *hits_json(const struct search_result *r, const char *mode) {
    cJSON *o = cJSON_CreateObject(), *a;
    cJSON_AddStringToObject(o, "schema", "evalrun.search/1");
    cJSON_AddStringToObject(o, "mode", mode);
    if (strcmp(mode, "prompt") == 0) cJSON_AddBoolToObject(o, "relative", r->relative);
    if (strcmp(mode, "attribution") == 0) {
        cJSON_AddNumberToObject(o, "target", r->target);
        if (r->contrast >= 0) cJSON_AddNumberToObject(o, "contrast", r->contrast);
        else cJSON_AddNullToObject(o, "contrast");
        cJSON_AddNumberToObject(o, "logit_diff", r->d);
    }
    a = cJSON_AddArrayToObject(o, "hits");
    for (int i = 0; i < r->n; i++) {
        const struct search_hit *h = &r->hits[i];
        cJSON *e = cJSON_CreateObject();
        cJSON_AddNumberToObject(e, "rank", i + 1);
        cJSON_AddNumberToObject(e, "feature", h->feature);
        cJSON_AddNumberToObject(e, "score", h->score);
        if (isfinite(h->act)) cJSON_AddNumberToObject(e, "act", h->act);
        else cJSON_AddNullToObject(e, "act");
        if (isfinite(h->neg)) cJSON_AddNumberToObject(e, "neg", h->neg);
        else cJSON_AddNullToObject(e, "neg");
        if (isfinite(h->density)) cJSON_AddNumberToObject(e, "density", h->density);
        else cJSON_AddNullToObject(e, "density");
        if (isfinite(h->max_act)) cJSON_AddNumberToObject(e, "max_act", h->max_act);
        else cJSON_AddNullToObject(e, "max_act");
        if (h->description) cJSON_AddStringToObject(e, "description", h->description);
        else cJSON_AddNullToObject(e, "description");
        cJSON_AddItemToArray(a, e);
    }
    char *s = json_print_pretty(o);
    json_free(o);
    return s;
}

static int write_out(const char *path, const struct search_result *r, struct ev_err *err) {
    int   *idx = xmalloc(sizeof *idx * (size_t)(r->n ? r->n : 1));
    char **desc = xcalloc((size_t)(r->n ? r->n : 1), sizeof *desc);
    for (int i = 0; i < r->n; i++) {
        idx[i] = r->hits[i].feature;
        /* a description that cannot be stored in a features file is left out, not rejected */
        const char *d = r->hits[i].description;
        if (d && !strstr(d, "{{") && !strstr(d, "}}") && !strpbrk(d, "\n\r\t")) desc[i] = (char *)d;
    }
    int rc = r->n ? eval_features_write(path, idx, desc, r->n, err)
                  : ev_fail(err, EV_EFAIL, "--out %s: no feature matched; nothing written", path);
    free(idx);
    free(desc);
    return rc;
}

/* A reading command that needs the feature index: when env (opened read-only) has none for
 * its SAE, reopen the database for writing and build it on demand (evals/index.h), unless
 * --no-index-build (then the command goes on without it). */
static int ensure_index(struct eval_env *env, const struct common_opts *co, struct ev_err *err) {
    struct eval_index_source src = common_opts_index(co);
    int64_t n = 0;
    int     rc = env->sae_id ? index_count_windows(env->store, env->sae_id, &n, err) : EV_OK;
    if (rc != EV_OK) return rc;
    if (n > 0 || src.no_build) return EV_OK;
    rc = eval_env_writable(env, co->db_path, err);
    return rc != EV_OK ? rc : eval_index_ensure(env, &src, err);
}

/* search's options, as given. */
struct search_args {
    struct strlist prompts, negs;
    const char    *position, *out, *like, *target, *contrast, *score, *format;
    long           top;
    int            attribution;
    /* worked out by search_check */
    const char          *mode; /* "like", "attribution" or "prompt" */
    enum search_position pos;
    int                  scoring, feature;
};

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

/* The hits of an attribution search, under the logit difference they explain. */
static void print_attribution(const struct eval_env *env, const struct search_result *r) {
    const struct tok *tk = model_tokenizer(env->model);
    char *t = tok_piece(tk, -1, r->target) ? xstrdup(tok_piece(tk, -1, r->target)) : NULL;
    char *c = r->contrast >= 0 && tok_piece(tk, -1, r->contrast)
                  ? xstrdup(tok_piece(tk, -1, r->contrast)) : NULL;
    char *line = c ? xasprintf("d = logit(\"%s\") - logit(\"%s\") = %.4f; attribution "
                               "summed over positions", t ? t : "?", c, r->d)
                   : xasprintf("d = logit(\"%s\") = %.4f; attribution summed over "
                               "positions", t ? t : "?", r->d);
    print_clipped(line, LINE_W);
    putchar('\n');
    free(t);
    free(c);
    free(line);
    print_hits(r, "attribution", 1);
}

static void search_print(const struct eval_env *env, const struct search_args *a,
                         const struct search_result *r) {
    if (strcmp(a->format, "json") == 0) {
        char *s = hits_json(r, a->mode);
        printf("%s\n", s);
        free(s);
    } else if (strcmp(a->mode, "like") == 0) {
        printf("nearest features to %d by decoder cosine:\n", a->feature);
        print_hits(r, "cosine", 0);
    } else if (strcmp(a->mode, "attribution") == 0) {
        print_attribution(env, r);
    } else {
        printf("%d prompt%s, %d negative%s, %s; score: %s, prompts - negatives\n",
               a->prompts.n, a->prompts.n == 1 ? "" : "s", a->negs.n, a->negs.n == 1 ? "" : "s",
               a->pos == SEARCH_POS_LAST ? "last token" : "max over tokens",
               r->relative ? "act/max" : "activation");
        print_hits(r, "score", 1);
    }
}

/* The search a asks for, once checked: opens model, SAE and database, searches, prints. */
static int search_run(struct common_opts *co, const struct search_args *a, struct ev_err *err) {
    struct eval_env      env;
    struct search_result r = {0};
    int                  rc;
    if ((rc = eval_env_open_readonly(&env, co->db_path, co->model, co->model_flags, co->sae,
                                     err)) != EV_OK)
        return rc;
    if (strcmp(a->mode, "like") == 0) {
        if ((rc = check_feature(&env, a->feature, err)) == EV_OK)
            rc = search_like(&env, a->feature, (int)a->top, &r, err);
    } else if (strcmp(a->mode, "attribution") == 0) {
        rc = search_attribution(&env, a->prompts.v[0], a->target, a->contrast, (int)a->top, &r,
                                err);
    } else {
        /* relative scores (the default) read the feature index: built on demand */
        struct search_prompt_opts o = {.prompts = a->prompts.v, .n_prompts = a->prompts.n,
                                       .negatives = a->negs.v, .n_negatives = a->negs.n,
                                       .position = a->pos, .scoring = a->scoring,
                                       .top = (int)a->top};
        if (a->scoring == SEARCH_SCORE_RAW || (rc = ensure_index(&env, co, err)) == EV_OK)
            rc = search_prompts(&env, &o, &r, err);
    }
    if (rc == EV_OK && a->out) rc = write_out(a->out, &r, err);
    if (rc == EV_OK) {
        search_print(&env, a, &r);
        if (a->out) ev_info("wrote %d feature%s to %s", r.n, r.n == 1 ? "" : "s", a->out);
    }
    search_result_release(&r);
    eval_env_release(&env);
    return rc;
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
        (rc = search_check_mode(&a, err)) != EV_OK)
        return rc;
    /* the prompts' forward passes (and, for --attribution, a gradient state) */
    struct plan_job pj = {.command = "search", .tokens = 4096,
                          .state_flags = strcmp(a.mode, "attribution") == 0 ? MODEL_STATE_GRAD
                                                                             : 0};
    if ((rc = common_opts_plan(&co, &pj, err)) != EV_OK)
        return rc == COMMON_PLAN_SHOWN ? EV_OK : rc;
    co.model_flags = pj.model_flags;
    return search_run(&co, &a, err);
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

/* The card of feature, built (the index on demand) and printed in format. */
static int show_run(const struct common_opts *co, int feature, const struct card_opts *o,
                    const char *format, int width, int colour, struct ev_err *err) {
    struct eval_env env;
    struct card     c = {0};
    int             rc;
    if ((rc = eval_env_open_readonly(&env, co->db_path, co->model, co->model_flags, co->sae,
                                     err)) != EV_OK)
        return rc;
    if ((rc = check_feature(&env, feature, err)) != EV_OK ||
        (rc = ensure_index(&env, co, err)) != EV_OK ||
        (rc = card_build(&env, feature, o, &c, err)) != EV_OK)
        goto out;
    char *s = strcmp(format, "json") == 0 ? card_render_json(&c)
              : strcmp(format, "md") == 0 ? card_render_md(&c)
                                          : card_render_text(&c, width, colour);
    fputs(s, stdout);
    if (strcmp(format, "json") == 0) putchar('\n');
    free(s);
out:
    card_release(&c);
    eval_env_release(&env);
    return rc;
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
    return show_run(&co, feature, &o, format, (int)width, colour, err);
}

// ---------------------------------------------------------------------------- tag, features

/* A category as stored: trimmed, ASCII lower-cased, 1..64 bytes, no control characters. */
static int normalise_category(const char *in, char *out, size_t n, struct ev_err *err) {
    while (*in == ' ') in++;
    size_t len = strlen(in);
    while (len && in[len - 1] == ' ') len--;
    if (len == 0) return ev_fail(err, EV_EUSAGE, "CATEGORY is empty");
    if (len >= n || len > 64)
        return ev_fail(err, EV_EUSAGE, "CATEGORY is %zu bytes; at most 64", len);
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)in[i];
        if (ch < 0x20 || ch == 0x7F)
            return ev_fail(err, EV_EUSAGE, "CATEGORY contains a control character");
        out[i] = (char)tolower(ch);
    }
    out[len] = 0;
    return EV_OK;
}

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
    struct eval_env    env;
    int                npos = 0, feature = -1;
    char               cat[72];
    int                rc = args_parse(&help, opts, argc, argv, &npos, err);
    if (rc != EV_OK) return rc;
    if (npos != 2)
        return ev_fail(err, EV_EUSAGE, "tag: expected FEATURE CATEGORY, got %d arguments", npos);
    if ((rc = parse_feature(argv[1], "tag", &feature, err)) != EV_OK ||
        (rc = normalise_category(argv[2], cat, sizeof cat, err)) != EV_OK)
        return rc;
    if ((rc = model_weights_dtype_parse(co.weights_dtype, &co.model_flags, err)) != EV_OK ||
        (rc = eval_env_open(&env, co.db_path, co.model, co.model_flags, co.sae, err)) != EV_OK)
        return rc;
    if ((rc = check_feature(&env, feature, err)) != EV_OK) goto out;
    int changed = 0;
    if ((rc = features_tag(env.store, env.sae_id, feature, cat, remove, &changed, err)) != EV_OK)
        goto out;
    if (remove && !changed)
        rc = ev_fail(err, EV_EFAIL, "feature %d has no category '%s'", feature, cat);
    else if (remove)
        printf("feature %d: removed from '%s'\n", feature, cat);
    else
        printf("feature %d: %s '%s'\n", feature, changed ? "tagged" : "already tagged", cat);
out:
    eval_env_release(&env);
    return rc;
}

static int print_tagged(void *ctx, int feature, double density, const char *desc) {
    char dn[32];
    if ((*(int *)ctx)++ == 0) printf("%7s %9s  %s\n", "feature", "density", "description");
    fmt_density(dn, sizeof dn, density);
    printf("%7d %9s  ", feature, dn);
    print_clipped(desc ? desc : "-", LINE_W - 19);
    putchar('\n');
    return EV_OK;
}

static int list_category(struct eval_env *env, const char *cat, struct ev_err *err) {
    int n = 0;
    int rc = features_in_category(env->store, env->sae_id, cat, print_tagged, &n, err);
    if (rc == EV_OK && n == 0)
        printf("no feature is tagged '%s' (evalrun tag FEATURE '%s')\n", cat, cat);
    return rc;
}

static int print_category(void *ctx, const char *category, int64_t count) {
    if ((*(int *)ctx)++ == 0) printf("%8s  %s\n", "features", "category");
    printf("%8lld  ", (long long)count);
    print_clipped(category, LINE_W - 10);
    putchar('\n');
    return EV_OK;
}

static int list_categories(struct eval_env *env, struct ev_err *err) {
    int n = 0;
    int rc = features_categories(env->store, env->sae_id, print_category, &n, err);
    if (rc == EV_OK && n == 0) printf("no categories yet: evalrun tag FEATURE CATEGORY\n");
    return rc;
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
    struct eval_env    env;
    int                npos = 0;
    char               cat[72];
    int                rc = args_parse(&help, opts, argc, argv, &npos, err);
    if (rc != EV_OK) return rc;
    if ((rc = args_no_positional(&help, npos, argv, err)) != EV_OK) return rc;
    if (category && (rc = normalise_category(category, cat, sizeof cat, err)) != EV_OK) return rc;
    if ((rc = model_weights_dtype_parse(co.weights_dtype, &co.model_flags, err)) != EV_OK ||
        (rc = eval_env_open_readonly(&env, co.db_path, co.model, co.model_flags, co.sae, err)) !=
            EV_OK)
        return rc;
    rc = category ? list_category(&env, cat, err) : list_categories(&env, err);
    eval_env_release(&env);
    return rc;
}
