/*
 * cmd_influence — `evalrun influence`: steer the model by clamping SAE features, generate,
 * and grade whether the steered text expresses the feature (evals/influence.h;
 * docs/evals.md).
 */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cmd.h"
#include "cli/common_opts.h"
#include "evals/common.h"
#include "graders/grader.h"
#include "base/hash.h"
#include "evals/influence.h"
#include "base/json.h"
#include "graders/prompt.h"
#include "store/store.h"

/* Prints s on one line (newlines shown as spaces), at most max bytes, cut at a UTF-8
 * boundary. */
static void print_excerpt(const char *s, size_t max) {
    size_t n = 0;
    putchar('"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++, n++) {
        if (n >= max && (*p & 0xC0) != 0x80) {
            fputs("...", stdout);
            break;
        }
        if (*p == '"') fputs("\\\"", stdout);
        else if (*p < 0x20) putchar(' ');
        else putchar(*p);
    }
    putchar('"');
}

/* mean score and count of the grades of items whose key starts with prefix and ends with
 * suffix (concept or fluency), parse ok, grader kind kind */
static int mean_grade(struct store *s, int64_t run, const char *prefix, const char *suffix,
                      double *mean, long *n, struct ev_err *err) {
    struct store_stmt *st = NULL;
    int rc = store_prepare(s,
                           "SELECT AVG(score), COUNT(score) FROM grades WHERE run_id = ?1 AND "
                           "substr(item_key, 1, length(?2)) = ?2 AND item_key LIKE ?3 AND "
                           "parse_status = 'ok'", &st, err);
    if (rc != EV_OK) return rc;
    char *like = xasprintf("%%/%s", suffix);
    store_bind_int(st, 1, run);
    store_bind_text(st, 2, prefix);
    store_bind_text(st, 3, like);
    *mean = NAN;
    *n = 0;
    int r = store_step(st, err);
    if (r == STORE_ROW) {
        *n = (long)store_col_int(st, 1);
        if (*n > 0) *mean = store_col_double(st, 0);
    }
    store_finalize(st);
    free(like);
    return r < 0 ? EV_EFAIL : EV_OK;
}

static char *first_text(struct store *s, int64_t run, const char *key) {
    struct store_stmt *st = NULL;
    struct ev_err      err;
    char              *t = NULL;
    if (store_prepare(s, "SELECT text FROM generations WHERE run_id = ?1 AND item_key = ?2", &st,
                      &err) != EV_OK)
        return NULL;
    store_bind_int(st, 1, run);
    store_bind_text(st, 2, key);
    if (store_step(st, &err) == STORE_ROW) t = xstrdup(store_col_text(st, 0));
    store_finalize(st);
    return t;
}

static int print_table(struct eval_env *e, const struct eval_run *run,
                       const struct infl_opts *o, struct ev_err *err) {
    int NP = o->set->n, rc = EV_OK;
    /* the first prompt of this shard shows its excerpt */
    int p0 = -1;
    for (long i = 0; i < (long)o->n_features * o->n_scales * NP && p0 < 0; i++)
        if (eval_in_shard(run, i)) p0 = (int)(i % NP);
    if (p0 < 0) return EV_OK;
    printf("%7s %6s %9s %9s %8s %8s %6s  steered text (prompt '%s')\n", "feature", "scale",
           "max_act", "clamp", "concept", "fluency", "graded", o->set->prompts[p0].id);
    char *bkey = infl_key(-1, 0, p0), *bt = first_text(e->store, run->id, bkey);
    printf("%7s %6s %9s %9s %8s %8s %6s  ", "-", "-", "-", "-", "-", "-", "-");
    print_excerpt(bt ? bt : "", 70);
    printf("  (baseline)\n");
    free(bkey);
    free(bt);
    for (int fi = 0; fi < o->n_features && rc == EV_OK; fi++)
        for (int si = 0; si < o->n_scales && rc == EV_OK; si++) {
            int    f = o->features[fi];
            double sc = o->scales[si], mc, mf;
            long   nc, nf;
            char  *prefix = xasprintf("f%d/s%g/p", f, sc);
            char  *key = infl_key(f, sc, p0);
            char  *t = first_text(e->store, run->id, key);
            double ma = NAN;
            struct store_stmt *st = NULL;
            if ((rc = mean_grade(e->store, run->id, prefix, "concept", &mc, &nc, err)) ==
                    EV_OK &&
                (rc = mean_grade(e->store, run->id, prefix, "fluency", &mf, &nf, err)) ==
                    EV_OK &&
                (rc = store_prepare(e->store, "SELECT max_act FROM generations WHERE run_id = ?1 "
                                              "AND feature_idx = ?2 LIMIT 1", &st, err)) == EV_OK) {
                store_bind_int(st, 1, run->id);
                store_bind_int(st, 2, f);
                if (store_step(st, err) == STORE_ROW) ma = store_col_double(st, 0);
                store_finalize(st);
                printf("%7d %6g %9.4f %9.4f ", f, sc, ma, sc * ma);
                if (nc) printf("%8.2f ", mc); else printf("%8s ", "-");
                if (nf) printf("%8.2f ", mf); else printf("%8s ", "-");
                printf("%6ld  ", nc);
                print_excerpt(t ? t : "", 70);
                putchar('\n');
            }
            free(prefix);
            free(key);
            free(t);
        }
    return rc;
}

/* The default steering set: evals/sets/steering.json under the current directory, else in the
 * repository the binary was built in (BIN/../evals/...). Caller frees. */
static char *default_prompts(void) {
    return path_shipped(NULL, NULL, "evals/sets/steering.json");
}

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
    const char *features = NULL, *prompts = NULL, *only = NULL, *scale = "10";
    long        max_new = 40;
    int         clamp_bos = 0;
    double      temperature = 0.8, top_p = 0.9, max_act = -1;
    struct common_opts co;
    common_opts_init(&co, cli, COMMON_EVAL);
    const struct opt opts[] = {
        {"features", OPT_STR, &features, "FILE", "features to steer: ID or ID<TAB>description"},
        {"prompts", OPT_STR, &prompts, "SET.json", "steering prompts (default "
                                                   "evals/sets/steering.json)"},
        {"only", OPT_STR, &only, "KIND", "only the set's prompts of this kind (e.g. stories, "
                                         "general)"},
        {"scale", OPT_STR, &scale, "K[,K...]", "clamp to K x max activation (default 10; the "
                                               "paper: 5,10,20; 0 = ablation)"},
        {"max-tokens", OPT_LONG, &max_new, "N", "new tokens per continuation (default 40)"},
        {"temperature", OPT_DOUBLE, &temperature, "T", "sampling temperature, 0 = greedy "
                                                       "(default 0.8)"},
        {"top-p", OPT_DOUBLE, &top_p, "P", "nucleus mass in (0, 1] (default 0.9)"},
        {"clamp-bos", OPT_FLAG, &clamp_bos, NULL, "clamp at the BOS position too (default: "
                                                  "every position but the BOS)"},
        {"max-act", OPT_DOUBLE, &max_act, "X", "use X as every feature's max activation "
                                               "instead of the feature index"},
        COMMON_OPTIONS(co),
        {0},
    };
    struct eval_env      env;
    struct eval_run      run;
    struct infl_set      set = {0};
    struct eval_features ff = {0};
    struct grader       *g = NULL;
    struct prompt       *tpl = NULL;
    struct grader_config gcfg;
    cJSON               *cfg = NULL;
    double              *scales = NULL;
    int                  n_scales = 0, npos = 0, have_grader = 0;
    int                  env_open = 0, run_open = 0;
    char                 fhash[65], phash[65], *prompts_owned = NULL;
    int                  rc = args_parse(&help, opts, argc, argv, &npos, err);
    if (rc != EV_OK) return rc;
    if (npos > 0) return ev_fail(err, EV_EUSAGE, "influence: unexpected argument '%s'", argv[1]);
    if (!features)
        return ev_fail(err, EV_EUSAGE, "influence: --features FILE is required (one feature id, "
                                       "or id<TAB>description, per line)");
    if ((rc = infl_parse_scales(scale, &scales, &n_scales, err)) ||
        (rc = args_check_long("--max-tokens", max_new, 1, 100000, err)) ||
        (rc = args_check_double("--temperature", temperature, 0.0, 100.0, err)) ||
        (rc = args_check_double("--top-p", top_p, 1e-6, 1.0, err)) ||
        (rc = common_opts_check(&co, err)))
        goto out;
    if (max_act != -1 && !(max_act > 0 && isfinite(max_act))) {
        rc = ev_fail(err, EV_EUSAGE, "--max-act: expected a positive number, got %g", max_act);
        goto out;
    }
    if ((have_grader = rc = common_opts_grader(&co, &gcfg, err)) < 0) goto out;
    if (!prompts) prompts = prompts_owned = default_prompts();
    if ((rc = infl_set_load(prompts, only, &set, err)) != EV_OK) goto out;
    if ((rc = sha256_file(prompts, phash, err)) != EV_OK ||
        (rc = sha256_file(features, fhash, err)) != EV_OK)
        goto out;
    if ((rc = prompt_load(NULL, "influence", &tpl, err)) != EV_OK) goto out;
    if ((rc = eval_env_open(&env, co.db_path, co.model, co.sae, err)) != EV_OK) goto out;
    env_open = 1;
    if ((rc = eval_features_load(features, env.sae->cfg.d_sae, &ff, err)) != EV_OK) goto out;
    if (have_grader && (rc = grader_new(&gcfg, env.store, &g, err)) != EV_OK) goto out;

    cfg = cJSON_CreateObject();
    cJSON_AddStringToObject(cfg, "features", features);
    cJSON_AddStringToObject(cfg, "features_sha256", fhash);
    cJSON_AddStringToObject(cfg, "prompts", prompts);
    cJSON_AddStringToObject(cfg, "prompts_sha256", phash);
    if (only) cJSON_AddStringToObject(cfg, "only", only);
    cJSON *sa = cJSON_AddArrayToObject(cfg, "scales");
    for (int i = 0; i < n_scales; i++) cJSON_AddItemToArray(sa, cJSON_CreateNumber(scales[i]));
    cJSON_AddNumberToObject(cfg, "max_tokens", (double)max_new);
    cJSON_AddNumberToObject(cfg, "temperature", temperature);
    cJSON_AddNumberToObject(cfg, "top_p", top_p);
    if (max_act > 0) cJSON_AddNumberToObject(cfg, "max_act", max_act);
    cJSON_AddBoolToObject(cfg, "clamp_bos", clamp_bos);
    cJSON_AddStringToObject(cfg, "template_hash", tpl->hash);
    /* the grader's preflight request, before any generation, unless this run is done already
     * (rerunning finished work asks the provider nothing) */
    if (g) {
        int done = eval_run_done(&env, "influence", cfg, co.seed, co.shard_k, co.shard_n, err);
        if (done < 0) {
            rc = done;
            goto out;
        }
        if (!done && (rc = grader_preflight(g, NULL, NULL, 0, NULL, 0, err)) != EV_OK) goto out;
    }
    if ((rc = eval_run_begin(&env, "influence", co.tag, cfg, co.seed, co.shard_k, co.shard_n, &run,
                             err)) !=
        EV_OK)
        goto out;
    run_open = 1;
    struct infl_opts o = {.set = &set, .features = ff.idx, .desc = ff.desc,
                          .n_features = ff.n, .scales = scales, .n_scales = n_scales,
                          .max_act = max_act > 0 ? max_act : 0, .max_new = (int)max_new,
                          .skip_bos = !clamp_bos,
                          .temperature = temperature, .top_p = top_p, .grader = g, .tpl = tpl};
    struct infl_stats st;
    rc = infl_eval_run(&env, &run, &o, &st, err);
    if (rc == EV_OK || rc == EV_EINTR) {
        struct ev_err perr = {{0}};
        char          hook[96];
        model_hook_name(env.hook, hook, sizeof hook);
        printf("influence run %lld: %s, SAE %s at %s, %d features x %d scales x %d prompts "
               "(%s)%s\n", (long long)run.id, env.model_path, env.sae_path, hook, ff.n, n_scales,
               set.n, set.name, co.shard_n > 1 ? ", this shard's share" : "");
        printf("generated %ld continuations (%ld already stored)\n", st.generated, st.reused);
        int prc = print_table(&env, &run, &o, &perr);
        if (prc != EV_OK && rc == EV_OK) {
            rc = prc;
            *err = perr;
        }
        if (g) {
            char buf[256];
            printf("graded %ld (%ld unparsed, %ld failed): %s\n", st.graded, st.unparsed,
                   st.failed, grader_summary(g, buf, sizeof buf));
        } else {
            printf("%ld steered continuations queued for review (2 grades each: concept, "
                   "fluency)\n", st.items_planned);
            ev_info("%s", grader_not_configured_message());
        }
        if (st.no_description)
            ev_info("%ld steered continuations cannot be graded: their features have no "
                    "description (give one in the features file as ID<TAB>description, or run "
                    "'evalrun explain'), then rerun", st.no_description);
    }
out:
    if (run_open) rc = eval_run_end(&env, &run, rc, err);
    grader_free(g);
    if (env_open) eval_env_release(&env);
    prompt_free(tpl);
    json_free(cfg);
    free(scales);
    eval_features_release(&ff);
    infl_set_release(&set);
    free(prompts_owned);
    return rc;
}
