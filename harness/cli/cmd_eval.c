/*
 * cmd_eval — `evalrun specificity`, `evalrun completeness` and `evalrun explain`: the wiring
 * of flags, model + SAE + database, the run row, the explainer, item planning, grading and
 * the final tables. The evaluations themselves live in evals/ (specificity.c, completeness.c,
 * describe.c, itemgrade.c).
 *
 * Order of work in every command (so that bad input stores nothing): parse flags and the input
 * file, open model/SAE/database, check the feature index, build and preflight the grader (a
 * configured but unusable grader stops here with one line), then start the run, plan items,
 * grade, print. Ctrl-C stops between items; the run is marked interrupted and resumes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <math.h>
#include <string.h>
#include <unistd.h>

#include "cli/cmd.h"
#include "cli/common_opts.h"
#include "evals/common.h"
#include "evals/completeness.h"
#include "evals/describe.h"
#include "graders/grader.h"
#include "base/hash.h"
#include "evals/itemgrade.h"
#include "base/json.h"
#include "base/progress.h"
#include "evals/specificity.h"

/* The grader when configured, else NULL (no key: an error). Its preflight request comes
 * later, from begin_run(), once the run's configuration is known. */
static int open_grader(const struct common_opts *f, struct store *st, struct grader **g,
                       struct ev_err *err) {
    struct grader_config cfg;
    int                  rc = common_opts_grader(f, &cfg, err);
    *g = NULL;
    if (rc <= 0) return rc;
    return grader_new(&cfg, st, g, err);
}

/* Checks the grader with one tiny request (a 401 or an unreachable URL fails here, before any
 * batch work and before a run is stored) unless this run is already done: rerunning finished
 * work asks the provider nothing. Then starts or resumes the run. */
static int begin_run(struct eval_env *env, struct grader *g, const char *kind,
                     const struct common_opts *f, cJSON *cfg, struct eval_run *run,
                     struct ev_err *err) {
    if (g) {
        int done = eval_run_done(env, kind, cfg, f->seed, f->shard_k, f->shard_n, err);
        if (done < 0) return done;
        int rc = done ? EV_OK : grader_preflight(g, NULL, NULL, 0, NULL, 0, err);
        if (rc != EV_OK) return rc;
    }
    return eval_run_begin(env, kind, f->tag, cfg, f->seed, f->shard_k, f->shard_n, run, err);
}

static int check_index(struct eval_env *e, struct ev_err *err) {
    int64_t n = 0;
    int     rc = describe_index_count(e, &n, err);
    if (rc != EV_OK) return rc;
    if (n == 0)
        return ev_fail(err, EV_EFAIL, "the database %s holds no feature index for SAE %s: "
                                      "build it first with 'evalrun index --sae %s'",
                       store_path(e->store), e->sae_path, e->sae_path);
    return EV_OK;
}

static void add_grader_config(cJSON *cfg, struct grader *g) {
    char name[192];
    if (g) cJSON_AddStringToObject(cfg, "grader", grader_config_name(grader_config(g), name,
                                                                      sizeof name));
    else cJSON_AddNullToObject(cfg, "grader");
}

static void finish_grader(struct grader *g, const struct eval_run *run) {
    struct ev_err ignore;
    char          sum[512];
    if (!g) return;
    grader_store_usage(g, run->id, &ignore);
    ev_info("%s", grader_summary(g, sum, sizeof sum));
}

/* The features file, the model + SAE + database, the file's hash and the index, in that
 * order: the file's syntax is checked first, so that a malformed file stores nothing, not even
 * a database; then its ids against the SAE. */
static int open_features(const char *path, const struct common_opts *f,
                         struct eval_env *env, struct eval_features *feats, char fhash[65],
                         struct ev_err *err) {
    int rc = eval_features_load(path, 0, feats, err);
    if (rc != EV_OK) return rc;
    eval_features_release(feats);
    if ((rc = eval_env_open(env, f->db_path, f->model, f->sae, err)) != EV_OK) return rc;
    if ((rc = eval_features_load(path, env->sae->cfg.d_sae, feats, err)) != EV_OK) return rc;
    if ((rc = sha256_file(path, fhash, err)) != EV_OK) return rc;
    return check_index(env, err);
}

static int load_prompt(const char *name, struct prompt **p, struct ev_err *err) {
    return prompt_load(NULL, name, p, err);
}

// ---------------------------------------------------------------------------- specificity

int cmd_specificity(int argc, char **argv, const struct cli *cli, struct ev_err *err) {
    static const struct cmd_help help = {
        "specificity",
        "--features FILE",
        "The paper's specificity check. For each feature of FILE (ID or ID<TAB>description per\n"
        "line), N contexts are drawn from each of K activation intervals of (0, max] and N\n"
        "non-activating contexts, from the feature index ('evalrun index'); each is shown to\n"
        "the grader with the description and the activating tokens marked, and scored 0-3.\n"
        "Features without a description get one from the explainer first (--no-explain: stop\n"
        "instead). Prints the mean score per interval per feature and overall, the share of\n"
        "3s and the non-activating baseline. Rerunning the same command resumes the run and\n"
        "never grades an item twice. Without a grader the items are queued for human review."};
    struct common_opts f;
    const char       *features_path = NULL;
    long              per_interval = 5, intervals = 10, limit = 0;
    int               no_explain = 0;
    common_opts_init(&f, cli, COMMON_EVAL);
    const struct opt opts[] = {
        {"features", OPT_STR, &features_path, "FILE", "features file: ID or ID<TAB>description"},
        {"per-interval", OPT_LONG, &per_interval, "N",
         "contexts per interval, and non-activating contexts (default 5)"},
        {"intervals", OPT_LONG, &intervals, "K", "activation intervals of (0, max] (default 10)"},
        {"limit", OPT_LONG, &limit, "N", "only the first N features of the file (0: all)"},
        {"no-explain", OPT_FLAG, &no_explain, NULL,
         "stop when a feature has no description instead of asking the explainer"},
        COMMON_OPTIONS(f),
        {0},
    };
    int npos = 0, rc = args_parse(&help, opts, argc, argv, &npos, err);
    if (rc != EV_OK) return rc;
    if (npos > 0) return ev_fail(err, EV_EUSAGE, "specificity: unexpected argument '%s'", argv[1]);
    if (!features_path)
        return ev_fail(err, EV_EUSAGE, "specificity needs --features FILE (ID or "
                                       "ID<TAB>description per line)");
    if ((rc = common_opts_check(&f, err)) != EV_OK) return rc;
    if ((rc = args_check_long("--per-interval", per_interval, 1, 1000, err)) != EV_OK) return rc;
    if ((rc = args_check_long("--intervals", intervals, 1, SPEC_MAX_INTERVALS, err)) != EV_OK)
        return rc;
    if ((rc = args_check_long("--limit", limit, 0, 100000000, err)) != EV_OK) return rc;

    struct eval_features feats = {0};
    struct eval_env      env = {0};
    struct grader       *g = NULL;
    struct prompt       *tpl = NULL, *xtpl = NULL;
    struct eval_run      run = {0};
    int                  run_open = 0, n_sel = 0, n_missing = 0;
    int                 *sel = NULL, *missing = NULL;
    cJSON               *cfg = NULL;
    char                 fhash[65];
    if ((rc = open_features(features_path, &f, &env, &feats, fhash, err)) != EV_OK) goto out;
    if ((rc = load_prompt("specificity", &tpl, err)) != EV_OK) goto out;
    if ((rc = load_prompt("explainer", &xtpl, err)) != EV_OK) goto out;

    /* this shard's features, and those with no description anywhere */
    int n_use = limit > 0 && limit < feats.n ? (int)limit : feats.n;
    sel = xcalloc((size_t)n_use, sizeof *sel);
    missing = xcalloc((size_t)n_use, sizeof *missing);
    struct eval_run probe = {.shard_k = f.shard_k, .shard_n = f.shard_n};
    for (int i = 0; i < n_use; i++) {
        if (!eval_in_shard(&probe, i)) continue;
        sel[n_sel++] = i;
        if (!feats.desc[i]) {
            char *d = eval_description_get(&env, feats.idx[i], NULL);
            if (!d) missing[n_missing++] = feats.idx[i];
            free(d);
        }
    }
    if (n_missing > 0 && no_explain) {
        struct sbuf sb;
        sbuf_init(&sb);
        for (int i = 0; i < n_missing && i < 20; i++)
            sbuf_addf(&sb, "%s%d", i ? ", " : "", missing[i]);
        if (n_missing > 20) sbuf_addf(&sb, ", ... (%d in all)", n_missing);
        rc = ev_fail(err, EV_EFAIL, "%s: feature%s %s %s no description (none in the file, none "
                                    "stored) and --no-explain was given: add ID<TAB>description "
                                    "lines, or run 'evalrun explain --features %s'",
                     features_path, n_missing == 1 ? "" : "s", sb.buf,
                     n_missing == 1 ? "has" : "have", features_path);
        sbuf_release(&sb);
        goto out;
    }
    if ((rc = open_grader(&f, env.store, &g, err)) != EV_OK) goto out;

    cfg = cJSON_CreateObject();
    cJSON_AddStringToObject(cfg, "features_file_sha256", fhash);
    cJSON *ids = cJSON_CreateArray();
    for (int i = 0; i < n_use; i++) cJSON_AddItemToArray(ids, cJSON_CreateNumber(feats.idx[i]));
    cJSON_AddItemToObject(cfg, "features", ids);
    cJSON_AddNumberToObject(cfg, "per_interval", (double)per_interval);
    cJSON_AddNumberToObject(cfg, "intervals", (double)intervals);
    cJSON_AddNumberToObject(cfg, "limit", (double)limit);
    cJSON_AddStringToObject(cfg, "template_sha256", tpl->hash);
    cJSON_AddStringToObject(cfg, "explainer_template_sha256", xtpl->hash);
    add_grader_config(cfg, g);
    if ((rc = begin_run(&env, g, "specificity", &f, cfg, &run, err)) != EV_OK)
        goto out;
    run_open = 1;
    if (g) grader_set_run(g, run.id);

    /* descriptions: the file's are stored as the user's; the missing ones are explained */
    for (int s = 0; s < n_sel; s++) {
        int i = sel[s];
        if (feats.desc[i] &&
            (rc = eval_description_set(&env, feats.idx[i], feats.desc[i], "user", err)) != EV_OK)
            goto out;
    }
    if (n_missing > 0 && g) {
        struct describe_stats ds;
        ev_info("explaining %d feature%s without a description", n_missing,
                n_missing == 1 ? "" : "s");
        rc = describe_explain(&env, g, xtpl, missing, n_missing, 0, (uint64_t)f.seed, 10, 5, &ds,
                              err);
        if (rc != EV_OK) goto out;
        ev_info("explainer: %d description%s written, %d unparsed, %d failed", ds.written,
                ds.written == 1 ? "" : "s", ds.unparsed, ds.failed);
    }

    /* plan: one transaction per feature */
    struct spec_params sp = {(int)per_interval, (int)intervals, (uint64_t)f.seed};
    struct progress    bar;
    long               planned = 0, skipped = 0;
    progress_init(&bar, "plan", n_sel);
    for (int s = 0; s < n_sel; s++) {
        int   fi = feats.idx[sel[s]], n_items = 0;
        char *d = feats.desc[sel[s]] ? xstrdup(feats.desc[sel[s]])
                                     : eval_description_get(&env, fi, NULL);
        if (ev_interrupted()) {
            free(d);
            rc = ev_fail(err, EV_EINTR, "interrupted");
            goto out;
        }
        if (!d) {
            ev_info("feature %d: no description (%s), skipped", fi,
                    g ? "the explainer gave none" : "no grader to write one");
            skipped++;
            progress_tick(&bar, 1);
            continue;
        }
        rc = spec_plan_feature(&env, &run, tpl, fi, d, &sp, &n_items, err);
        free(d);
        if (rc != EV_OK) goto out;
        if (n_items == 0) ev_info("feature %d has no example in the index: nothing to grade", fi);
        planned += n_items;
        progress_tick(&bar, 1);
    }
    progress_finish(&bar);

    if (g) {
        struct itemgrade_stats gs;
        rc = itemgrade_run(&env, &run, g, tpl, ITEMGRADE_SCORE, 0, 3, "grade", &gs, err);
        if (rc != EV_OK) goto out;
    } else {
        long pending = 0;
        if ((rc = itemgrade_count_pending(&env, &run, tpl->name, &pending, err)) != EV_OK)
            goto out;
        ev_info("%s", grader_not_configured_message());
        ev_info("%ld item%s of run %lld queued for human review", pending,
                pending == 1 ? "" : "s", (long long)run.id);
    }
    rc = spec_report(&env, &run, (int)intervals, stdout, err);
out:
    if (run_open) {
        finish_grader(g, &run);
        rc = eval_run_end(&env, &run, rc, err);
    }
    if (cfg) json_free(cfg);
    free(sel);
    free(missing);
    prompt_free(tpl);
    prompt_free(xtpl);
    grader_free(g);
    eval_features_release(&feats);
    eval_env_release(&env);
    return rc;
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
    struct common_opts f;
    const char       *features_path = NULL, *out_path = NULL;
    long              top = 10, sampled = 5;
    int               force = 0;
    common_opts_init(&f, cli, COMMON_EVAL);
    const struct opt opts[] = {
        {"features", OPT_STR, &features_path, "FILE", "features file: ID or ID<TAB>description"},
        {"force", OPT_FLAG, &force, NULL, "explain features that already have a description"},
        {"out", OPT_STR, &out_path, "FILE", "write the features with their descriptions here"},
        {"top", OPT_LONG, &top, "N", "strongest examples shown to the explainer (default 10)"},
        {"sampled", OPT_LONG, &sampled, "N",
         "examples sampled from the other activating ones (default 5)"},
        COMMON_OPTIONS(f),
        {0},
    };
    int npos = 0, rc = args_parse(&help, opts, argc, argv, &npos, err);
    if (rc != EV_OK) return rc;
    if (npos > 0) return ev_fail(err, EV_EUSAGE, "explain: unexpected argument '%s'", argv[1]);
    if (!features_path)
        return ev_fail(err, EV_EUSAGE, "explain needs --features FILE (one feature id per line)");
    if ((rc = common_opts_check(&f, err)) != EV_OK) return rc;
    if ((rc = args_check_long("--top", top, 1, 100, err)) != EV_OK) return rc;
    if ((rc = args_check_long("--sampled", sampled, 0, 100, err)) != EV_OK) return rc;

    struct eval_features feats = {0};
    struct eval_env      env = {0};
    struct grader       *g = NULL;
    struct prompt       *xtpl = NULL;
    struct eval_run      run = {0};
    int                  run_open = 0, n_sel = 0;
    int                 *sel = NULL;
    char               **descs = NULL;
    cJSON               *cfg = NULL;
    char                 fhash[65];
    if ((rc = open_features(features_path, &f, &env, &feats, fhash, err)) != EV_OK) goto out;
    if ((rc = load_prompt("explainer", &xtpl, err)) != EV_OK) goto out;
    if ((rc = open_grader(&f, env.store, &g, err)) != EV_OK) goto out;

    cfg = cJSON_CreateObject();
    cJSON_AddStringToObject(cfg, "features_file_sha256", fhash);
    cJSON_AddNumberToObject(cfg, "top", (double)top);
    cJSON_AddNumberToObject(cfg, "sampled", (double)sampled);
    cJSON_AddBoolToObject(cfg, "force", force);
    cJSON_AddStringToObject(cfg, "template_sha256", xtpl->hash);
    add_grader_config(cfg, g);
    if ((rc = begin_run(&env, g, "explain", &f, cfg, &run, err)) != EV_OK)
        goto out;
    run_open = 1;
    if (g) grader_set_run(g, run.id);

    sel = xcalloc((size_t)feats.n, sizeof *sel);
    for (int i = 0; i < feats.n; i++) {
        if (!eval_in_shard(&run, i)) continue;
        /* a description given in the file is the user's: stored, and not explained unless
         * --force */
        if (feats.desc[i] && !force) {
            if ((rc = eval_description_set(&env, feats.idx[i], feats.desc[i], "user", err)) !=
                EV_OK)
                goto out;
            continue;
        }
        sel[n_sel++] = feats.idx[i];
    }
    if (g) {
        struct describe_stats ds;
        /* --force re-explains only on the first pass: a resumed run keeps what it wrote */
        int redo = force && !run.resumed;
        rc = describe_explain(&env, g, xtpl, sel, n_sel, redo, (uint64_t)f.seed, (int)top,
                              (int)sampled, &ds, err);
        if (rc != EV_OK) goto out;
        ev_info("explainer: %d asked, %d description%s written, %d unparsed, %d failed, %d "
                "without examples", ds.asked, ds.written, ds.written == 1 ? "" : "s",
                ds.unparsed, ds.failed, ds.no_examples);
    } else {
        int queued = 0;
        if ((rc = store_begin(env.store, err)) != EV_OK) goto out;
        for (int s = 0; s < n_sel; s++) {
            char *d = eval_description_get(&env, sel[s], NULL), *text = NULL;
            int   has = d != NULL;
            free(d);
            if (has && !force) continue;
            rc = describe_render_explainer(&env, xtpl, sel[s], (uint64_t)f.seed, (int)top,
                                           (int)sampled, &text, err);
            if (rc == EV_OK && text) {
                char *key = xasprintf("explain:f%d", sel[s]);
                struct eval_item it = {.key = key, .kind = "explain", .feature = sel[s],
                                       .interval = -1, .activation = NAN,
                                       .template_name = xtpl->name,
                                       .template_hash = xtpl->hash, .prompt = text};
                rc = eval_item_put(&env, &run, &it, err);
                free(key);
                queued++;
            }
            free(text);
            if (rc != EV_OK) {
                store_rollback(env.store);
                goto out;
            }
        }
        if ((rc = store_commit(env.store, err)) != EV_OK) goto out;
        ev_info("%s", grader_not_configured_message());
        ev_info("%d explainer prompt%s queued in run %lld", queued, queued == 1 ? "" : "s",
                (long long)run.id);
    }

    /* the table, and --out */
    descs = xcalloc((size_t)feats.n, sizeof *descs);
    printf("%-8s %-28s %s\n", "feature", "source", "description");
    for (int i = 0; i < feats.n; i++) {
        char *src = NULL;
        descs[i] = eval_description_get(&env, feats.idx[i], &src);
        if (eval_in_shard(&run, i))
            printf("%-8d %-28s %s\n", feats.idx[i], src ? src : "-",
                   descs[i] ? descs[i] : "(none)");
        free(src);
    }
    if (out_path && (rc = eval_features_write(out_path, feats.idx, descs, feats.n, err)) != EV_OK)
        goto out;
    rc = EV_OK;
out:
    if (run_open) {
        finish_grader(g, &run);
        rc = eval_run_end(&env, &run, rc, err);
    }
    if (descs)
        for (int i = 0; i < feats.n; i++) free(descs[i]);
    free(descs);
    if (cfg) json_free(cfg);
    free(sel);
    prompt_free(xtpl);
    grader_free(g);
    eval_features_release(&feats);
    eval_env_release(&env);
    return rc;
}

// ---------------------------------------------------------------------------- completeness

/* The concept set: given, else evals/sets/concepts.json here or beside the binary's
 * repository. Caller frees. */
static char *resolve_concepts(const char *given) {
    return path_shipped(given, NULL, "evals/sets/concepts.json");
}

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
    struct common_opts f;
    const char       *concepts_flag = NULL, *group = NULL;
    long              top_k = 5;
    int               no_explain = 0;
    common_opts_init(&f, cli, COMMON_EVAL);
    const struct opt opts[] = {
        {"concepts", OPT_STR, &concepts_flag, "FILE",
         "concept set (default evals/sets/concepts.json)"},
        {"group", OPT_STR, &group, "NAME", "only the concepts of this group (e.g. stories)"},
        {"top-k", OPT_LONG, &top_k, "K", "features per concept (default 5)"},
        {"no-explain", OPT_FLAG, &no_explain, NULL, "do not explain features lacking a description"},
        COMMON_OPTIONS(f),
        {0},
    };
    int npos = 0, rc = args_parse(&help, opts, argc, argv, &npos, err);
    if (rc != EV_OK) return rc;
    if (npos > 0)
        return ev_fail(err, EV_EUSAGE, "completeness: unexpected argument '%s'", argv[1]);
    if ((rc = common_opts_check(&f, err)) != EV_OK) return rc;
    if ((rc = args_check_long("--top-k", top_k, 1, 100, err)) != EV_OK) return rc;

    char               *concepts_path = resolve_concepts(concepts_flag);
    struct comp_set     set = {0};
    struct eval_env     env = {0};
    struct grader      *g = NULL;
    struct prompt      *tpl = NULL, *xtpl = NULL;
    struct model_state *mst = NULL;
    struct eval_run     run = {0};
    int                 run_open = 0, n_todo = 0, max_T = 0;
    int                *todo = NULL, *idx = NULL, *nf = NULL;
    float              *act = NULL;
    cJSON              *cfg = NULL;
    if ((rc = comp_set_load(concepts_path, group, &set, err)) != EV_OK) goto out;
    if ((rc = eval_env_open(&env, f.db_path, f.model, f.sae, err)) != EV_OK) goto out;
    if ((rc = load_prompt("completeness", &tpl, err)) != EV_OK) goto out;
    if ((rc = load_prompt("explainer", &xtpl, err)) != EV_OK) goto out;
    if ((rc = comp_max_tokens(&env, &set, &max_T, err)) != EV_OK) goto out;
    if (max_T > model_config(env.model)->seq_len) {
        rc = ev_fail(err, EV_EFAIL, "%s: a prompt has %d tokens; the model takes at most %d",
                     concepts_path, max_T, model_config(env.model)->seq_len);
        goto out;
    }
    if ((rc = open_grader(&f, env.store, &g, err)) != EV_OK) goto out;

    cfg = cJSON_CreateObject();
    cJSON_AddStringToObject(cfg, "concepts_sha256", set.hash);
    if (group) cJSON_AddStringToObject(cfg, "group", group);
    cJSON_AddNumberToObject(cfg, "top_k", (double)top_k);
    cJSON_AddStringToObject(cfg, "template_sha256", tpl->hash);
    cJSON_AddStringToObject(cfg, "aggregate", "mean over prompts, final token");
    add_grader_config(cfg, g);
    if ((rc = begin_run(&env, g, "completeness", &f, cfg, &run, err)) != EV_OK)
        goto out;
    run_open = 1;
    if (g) grader_set_run(g, run.id);

    /* the numeric part: top features of every concept of this shard not planned yet */
    if ((rc = model_state_new(env.model, max_T, 0, &mst, err)) != EV_OK) goto out;
    todo = xcalloc((size_t)set.n, sizeof *todo);
    idx = xcalloc((size_t)set.n * (size_t)top_k, sizeof *idx);
    act = xcalloc((size_t)set.n * (size_t)top_k, sizeof *act);
    nf = xcalloc((size_t)set.n, sizeof *nf);
    struct progress bar;
    progress_init(&bar, "concepts", set.n);
    for (int i = 0; i < set.n; i++) {
        progress_tick(&bar, 1);
        if (!eval_in_shard(&run, i)) continue;
        int planned = comp_concept_planned(&env, &run, set.c[i].name, err);
        if (planned < 0) {
            rc = planned;
            goto out;
        }
        if (planned) continue;
        if (ev_interrupted()) {
            rc = ev_fail(err, EV_EINTR, "interrupted");
            goto out;
        }
        int t = n_todo++;
        todo[t] = i;
        rc = comp_top_features(&env, mst, &set.c[i], (int)top_k, idx + (size_t)t * top_k,
                               act + (size_t)t * top_k, &nf[t], err);
        if (rc != EV_OK) goto out;
    }
    progress_finish(&bar);

    /* descriptions of the top features that have none */
    if (g && !no_explain && n_todo > 0) {
        int    *need = xcalloc((size_t)n_todo * (size_t)top_k, sizeof *need), n_need = 0;
        int64_t n_ex = 0;
        for (int t = 0; t < n_todo; t++)
            for (int k = 0; k < nf[t]; k++) {
                int fi = idx[(size_t)t * top_k + k], dup = 0;
                for (int q = 0; q < n_need && !dup; q++) dup = need[q] == fi;
                char *d = dup ? NULL : eval_description_get(&env, fi, NULL);
                if (!dup && !d) need[n_need++] = fi;
                free(d);
            }
        if (n_need > 0 && (rc = describe_index_count(&env, &n_ex, err)) == EV_OK) {
            if (n_ex == 0) {
                ev_info("%d top feature%s have no description and there is no feature index "
                        "to explain them from ('evalrun index'): shown as '(no description)'",
                        n_need, n_need == 1 ? "" : "s");
            } else {
                struct describe_stats ds;
                ev_info("explaining %d top feature%s without a description", n_need,
                        n_need == 1 ? "" : "s");
                rc = describe_explain(&env, g, xtpl, need, n_need, 0, (uint64_t)f.seed, 10, 5,
                                      &ds, err);
            }
        }
        free(need);
        if (rc != EV_OK) goto out;
    }

    if ((rc = store_begin(env.store, err)) != EV_OK) goto out;
    for (int t = 0; t < n_todo; t++) {
        rc = comp_plan_concept(&env, &run, tpl, set.c[todo[t]].name, idx + (size_t)t * top_k,
                               act + (size_t)t * top_k, nf[t], err);
        if (rc != EV_OK) {
            store_rollback(env.store);
            goto out;
        }
    }
    if ((rc = store_commit(env.store, err)) != EV_OK) goto out;

    if (g) {
        struct itemgrade_stats gs;
        rc = itemgrade_run(&env, &run, g, tpl, ITEMGRADE_YES_NO, 0, 1, "grade", &gs, err);
        if (rc != EV_OK) goto out;
    } else {
        long pending = 0;
        if ((rc = itemgrade_count_pending(&env, &run, tpl->name, &pending, err)) != EV_OK)
            goto out;
        ev_info("%s", grader_not_configured_message());
        ev_info("%ld item%s of run %lld queued for human review", pending,
                pending == 1 ? "" : "s", (long long)run.id);
    }
    rc = comp_report(&env, &run, stdout, err);
out:
    if (run_open) {
        finish_grader(g, &run);
        rc = eval_run_end(&env, &run, rc, err);
    }
    if (cfg) json_free(cfg);
    free(todo);
    free(idx);
    free(act);
    free(nf);
    model_state_free(mst);
    prompt_free(tpl);
    prompt_free(xtpl);
    grader_free(g);
    comp_set_release(&set);
    eval_env_release(&env);
    free(concepts_path);
    return rc;
}
