/*
 * cmd_attribution — `evalrun attribution`: attribution of a logit difference to SAE features,
 * and ablation of the top ones (evals/attribution.h; docs/evals.md).
 */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "evals/attribution.h"
#include "cli/cmd.h"
#include "cli/common_opts.h"
#include "evals/common.h"
#include "base/hash.h"
#include "base/json.h"
#include "store/store.h"

/* Prints s on one line, newlines escaped, at most max bytes (cut at a UTF-8 boundary). */
static void print_clip(const char *s, size_t max) {
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++, n++) {
        if (n >= max && (*p & 0xC0) != 0x80) {
            fputs("...", stdout);
            return;
        }
        if (*p == '\n') fputs("\\n", stdout);
        else if (*p == '\t') fputs("\\t", stdout);
        else if (*p < 0x20) putchar('?');
        else putchar(*p);
    }
}

/* The ranked table of one stored prompt. */
static int print_prompt(struct eval_env *e, const struct eval_run *run, int idx, int top,
                        const struct eval_features *ff, struct ev_err *err) {
    struct store_stmt *st = NULL;
    int rc = store_prepare(e->store,
                           "SELECT name, prompt, target, contrast, target_id, contrast_id, "
                           "logit_diff, attr_features, attr_error, attr_bias, pearson, spearman "
                           "FROM attribution_prompts WHERE run_id = ?1 AND prompt_idx = ?2",
                           &st, err);
    if (rc != EV_OK) return rc;
    store_bind_int(st, 1, run->id);
    store_bind_int(st, 2, idx);
    if (store_step(st, err) != STORE_ROW) {
        store_finalize(st);
        return EV_OK; /* not computed (interrupted before it) */
    }
    printf("\nprompt %s: \"", store_col_text(st, 0));
    print_clip(store_col_text(st, 1), 200);
    printf("\"\n  target \"%s\" (%lld) vs contrast \"%s\" (%lld): d = logit difference = %.4f\n",
           store_col_text(st, 2), (long long)store_col_int(st, 4), store_col_text(st, 3),
           (long long)store_col_int(st, 5), store_col_double(st, 6));
    double af = store_col_double(st, 7), ae = store_col_double(st, 8),
           ab = store_col_double(st, 9);
    printf("  linearisation at the hook: features %.4f + error term %.4f + decoder bias %.4f "
           "= %.4f\n", af, ae, ab, af + ae + ab);
    if (!store_col_is_null(st, 10))
        printf("  -attribution vs ablation effect: pearson %.3f, spearman %.3f\n",
               store_col_double(st, 10), store_col_double(st, 11));
    store_finalize(st);
    st = NULL;
    rc = store_prepare(e->store,
                       "SELECT rank, feature_idx, position, token_text, activation, attribution, "
                       "ablation_effect FROM attributions WHERE run_id = ?1 AND prompt_idx = ?2 "
                       "AND rank <= ?3 ORDER BY rank", &st, err);
    if (rc != EV_OK) return rc;
    store_bind_int(st, 1, run->id);
    store_bind_int(st, 2, idx);
    store_bind_int(st, 3, top);
    printf("  %4s %7s %4s %-12s %10s %11s %10s  %s\n", "rank", "feature", "pos", "token",
           "activation", "attribution", "ablation", "description");
    int r;
    while ((r = store_step(st, err)) == STORE_ROW) {
        int         feat = (int)store_col_int(st, 1);
        const char *tok = store_col_text(st, 3);
        char        tq[64];
        snprintf(tq, sizeof tq, "\"%s\"", tok ? tok : "");
        for (char *c = tq; *c; c++)
            if (*c == '\n' || *c == '\t') *c = ' ';
        printf("  %4lld %7d %4lld %-12s %10.4f %11.4f ", (long long)store_col_int(st, 0), feat,
               (long long)store_col_int(st, 2), tq, store_col_double(st, 4),
               store_col_double(st, 5));
        if (store_col_is_null(st, 6)) printf("%10s  ", "-");
        else printf("%10.4f  ", store_col_double(st, 6));
        const char *desc = NULL;
        char       *owned = NULL;
        for (int i = 0; ff && i < ff->n; i++)
            if (ff->idx[i] == feat) desc = ff->desc[i];
        if (!desc) desc = owned = eval_description_get(e, feat, NULL);
        print_clip(desc ? desc : "-", 60);
        free(owned);
        putchar('\n');
    }
    store_finalize(st);
    return r < 0 ? EV_EFAIL : EV_OK;
}

/* Pooled correlation over every ablated (feature, position) of the run. */
static int print_pooled(struct eval_env *e, const struct eval_run *run, struct ev_err *err) {
    struct store_stmt *st = NULL;
    double *x = NULL, *y = NULL;
    int     n = 0, cap = 0, r;
    int rc = store_prepare(e->store,
                           "SELECT attribution, ablation_effect FROM attributions WHERE run_id = "
                           "?1 AND ablation_effect IS NOT NULL ORDER BY prompt_idx, rank",
                           &st, err);
    if (rc != EV_OK) return rc;
    store_bind_int(st, 1, run->id);
    while ((r = store_step(st, err)) == STORE_ROW) {
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            x = xrealloc(x, sizeof *x * (size_t)cap);
            y = xrealloc(y, sizeof *y * (size_t)cap);
        }
        x[n] = -store_col_double(st, 0);
        y[n] = store_col_double(st, 1);
        n++;
    }
    store_finalize(st);
    if (r < 0) rc = EV_EFAIL;
    else if (n >= 3)
        printf("\ncorrelation of the linear prediction (-attribution) with the measured ablation "
               "effect, %d ablations: pearson %.3f, spearman %.3f\n", n, attr_pearson(x, y, n),
               attr_spearman(x, y, n));
    else
        printf("\n%d ablations: too few for a correlation (use --ablate-top K)\n", n);
    free(x);
    free(y);
    return rc;
}

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
    struct common_opts co;
    const char        *prompts = NULL, *features = NULL;
    long               ablate = 10, top = 10;
    common_opts_init(&co, cli, COMMON_BATCH);
    const struct opt opts[] = {
        {"prompts", OPT_STR, &prompts, "SET.json", "prompts with target and contrast tokens"},
        {"ablate-top", OPT_LONG, &ablate, "K", "ablate the K largest |attribution| per prompt "
                                                "(default 10; 0 = none)"},
        {"top", OPT_LONG, &top, "N", "rows of the ranked table per prompt (default 10)"},
        {"features", OPT_STR, &features, "FILE", "descriptions to show (ID<TAB>description)"},
        COMMON_OPTIONS(co),
        {0},
    };
    struct eval_env      env;
    struct eval_run      run;
    struct attr_set      set = {0};
    struct eval_features ff = {0};
    cJSON               *cfg = NULL;
    int                  npos = 0, env_open = 0, run_open = 0;
    char                 set_hash[65];
    int                  rc = args_parse(&help, opts, argc, argv, &npos, err);
    if (rc != EV_OK) return rc;
    if (npos > 0)
        return ev_fail(err, EV_EUSAGE, "attribution: unexpected argument '%s'", argv[1]);
    if (!prompts)
        return ev_fail(err, EV_EUSAGE, "attribution: --prompts SET.json is required (e.g. "
                                       "evals/sets/stories_attribution.json)");
    if ((rc = args_check_long("--ablate-top", ablate, 0, 100000, err)) ||
        (rc = args_check_long("--top", top, 1, 100000, err)) ||
        (rc = common_opts_check(&co, err)))
        return rc;
    if ((rc = attr_set_load(prompts, &set, err)) != EV_OK) goto out;
    if ((rc = sha256_file(prompts, set_hash, err)) != EV_OK) goto out;
    if ((rc = eval_env_open(&env, co.db_path, co.model, co.sae, err)) != EV_OK) goto out;
    env_open = 1;
    if (features &&
        (rc = eval_features_load(features, env.sae->cfg.d_sae, &ff, err)) != EV_OK)
        goto out;

    cfg = cJSON_CreateObject();
    cJSON_AddStringToObject(cfg, "prompts", prompts);
    cJSON_AddStringToObject(cfg, "prompts_sha256", set_hash);
    cJSON_AddNumberToObject(cfg, "ablate_top", (double)ablate);
    if ((rc = eval_run_begin(&env, "attribution", co.tag, cfg, co.seed, co.shard_k, co.shard_n, &run,
                             err)) !=
        EV_OK)
        goto out;
    run_open = 1;
    struct attr_eval_opts o = {.set = &set, .ablate_k = (int)ablate};
    rc = attr_eval_run(&env, &run, &o, err);
    if (rc == EV_OK || rc == EV_EINTR) {
        struct ev_err perr = {{0}};
        char          hook[96];
        model_hook_name(env.hook, hook, sizeof hook);
        printf("attribution run %lld: %s, SAE %s at %s, set %s (%d prompts%s)\n",
               (long long)run.id, env.model_path, env.sae_path, hook, set.name, set.n,
               co.shard_n > 1 ? ", this shard's share" : "");
        int prc = EV_OK;
        for (int i = 0; i < set.n && prc == EV_OK; i++)
            if (eval_in_shard(&run, i)) prc = print_prompt(&env, &run, i, (int)top, &ff, &perr);
        if (prc == EV_OK) prc = print_pooled(&env, &run, &perr);
        if (prc != EV_OK && rc == EV_OK) {
            rc = prc;
            *err = perr;
        }
    }
out:
    if (run_open) rc = eval_run_end(&env, &run, rc, err);
    if (env_open) eval_env_release(&env);
    json_free(cfg);
    eval_features_release(&ff);
    attr_set_release(&set);
    return rc;
}
