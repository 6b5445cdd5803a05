/*
 * cmd_autointerp — `evalrun autointerp`: SAEBench / Delphi automated-interpretability scores
 * (evals/autointerp.h; docs/autointerp.md).
 */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sae/acts.h"
#include "evals/autointerp.h"
#include "cli/cmd.h"
#include "cli/common_opts.h"
#include "graders/grader.h"
#include "base/hash.h"
#include "graders/prompt.h"

#define AI_CHUNK 128 /* latents whose corpus activations are held at once */

struct ai_flags {
    const char *protocol, *scorers, *features, *corpus, *text_field, *negatives, *out;
    long latents, seeds, tokens, ctx, min_windows, logprobs, bootstrap;
    int  generate;
    struct common_opts co; /* --model, --sae, --seed, --tag, --shard, the grader's */
};

static void print_num(double v, int width, int prec) {
    if (isnan(v)) printf("%*s", width, "-");
    else printf("%*.*f", width, prec, v);
}

static int open_grader(struct ai_flags *f, struct store *st, struct grader **g,
                       struct ev_err *err) {
    struct grader_config cfg;
    int                  rc = common_opts_grader(&f->co, &cfg, err);
    *g = NULL;
    if (rc <= 0) return rc;
    cfg.logprobs = (int)f->logprobs;
    /* the preflight request comes once the run's configuration is known (see below) */
    return grader_new(&cfg, st, g, err);
}

int cmd_autointerp(int argc, char **argv, const struct cli *cli, struct ev_err *err) {
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
    struct ai_flags f = {.latents = 20, .seeds = 1, .tokens = 32768, .ctx = -1,
                         .min_windows = -1, .logprobs = 0, .bootstrap = 1000};
    common_opts_init(&f.co, cli, COMMON_EVAL);
    const struct opt opts[] = {
        {"protocol", OPT_STR, &f.protocol, "NAME", "saebench or delphi (required)"},
        {"scorers", OPT_STR, &f.scorers, "LIST",
         "detection,fuzzing,simulation (default: saebench detection; delphi detection,fuzzing)"},
        {"latents", OPT_LONG, &f.latents, "N", "random alive latents to score (default 20)"},
        {"features", OPT_STR, &f.features, "FILE",
         "latents to score: ID or ID<TAB>explanation per line (instead of --latents)"},
        {"corpus", OPT_STR, &f.corpus, "PATH", "plain text, JSON Lines or a folder of them "
                                               "(default: stories sampled from the model, seeded)"},
        {"text-field", OPT_STR, &f.text_field, "KEY",
         "the JSON Lines field holding the text (default text)"},
        {"tokens", OPT_LONG, &f.tokens, "N", "corpus tokens (default 32768)"},
        {"ctx", OPT_LONG, &f.ctx, "T", "tokens per sequence, BOS first (default 128; delphi 129)"},
        {"seeds", OPT_LONG, &f.seeds, "K", "rerun the sampling with seeds S..S+K-1 and report "
                                           "the spread (default 1)"},
        {"negatives", OPT_STR, &f.negatives, "KIND",
         "delphi non-activating windows: random (default) or similar (evalrun's token-overlap "
         "stand-in for Delphi's hard negatives)"},
        {"min-windows", OPT_LONG, &f.min_windows, "N",
         "delphi: skip latents with fewer activating windows (default 200)"},
        {"logprobs", OPT_LONG, &f.logprobs, "N",
         "ask an OpenAI-compatible judge for N top logprobs (AUC, simulation expected values)"},
        {"bootstrap", OPT_LONG, &f.bootstrap, "B", "bootstrap resamples (default 1000)"},
        {"out", OPT_STR, &f.out, "FILE.json", "write the SAEBench / Delphi JSON here"},
        COMMON_OPTIONS(f.co),
        {0},
    };
    struct eval_env        env = {0};
    struct eval_features   feats = {0};
    struct acts_corpus     c = {0};
    struct ai_acts         acts = {0};
    struct ai_report       rep = {0};
    struct eval_run        run = {0};
    struct grader         *g = NULL;
    struct prompt         *pe = NULL, *ps = NULL, *pf = NULL, *pm = NULL;
    struct ai_latent_info *info = NULL;
    cJSON                 *cfg = NULL;
    char                  *cfg_text = NULL;
    int                   *sel = NULL, n_sel = 0, run_open = 0, npos = 0;
    enum ai_protocol       proto;
    struct ai_params       p;
    int rc = args_parse(&help, opts, argc, argv, &npos, err);
    if (rc) return rc;
    if (npos > 0) return ev_fail(err, EV_EUSAGE, "autointerp: unexpected argument '%s'", argv[1]);
    if (!f.protocol)
        return ev_fail(err, EV_EUSAGE, "autointerp: --protocol saebench|delphi is required");
    if ((rc = ai_parse_protocol(f.protocol, &proto, err))) return rc;
    p = ai_default_params(proto);
    if ((rc = ai_parse_scorers(f.scorers, proto, &p.scorers, err))) return rc;
    if (f.negatives) {
        if (strcmp(f.negatives, "random") == 0) p.negatives = AI_NEGATIVES_RANDOM;
        else if (strcmp(f.negatives, "similar") == 0) p.negatives = AI_NEGATIVES_SIMILAR;
        else
            return ev_fail(err, EV_EUSAGE, "--negatives: unknown kind '%s' (expected random or "
                                           "similar)", f.negatives);
        if (proto != AI_PROTOCOL_DELPHI)
            return ev_fail(err, EV_EUSAGE, "--negatives applies to --protocol delphi only");
    }
    if (f.ctx < 0) f.ctx = proto == AI_PROTOCOL_DELPHI ? 129 : 128;
    if (f.min_windows >= 0) p.min_windows = (int)f.min_windows;
    p.n_bootstrap = (int)f.bootstrap;
    if ((rc = args_check_long("--latents", f.latents, 1, INT_MAX / 2, err)) ||
        (rc = args_check_long("--seed", f.co.seed, 0, LONG_MAX / 2, err)) ||
        (rc = args_check_long("--seeds", f.seeds, 1, 100, err)) ||
        (rc = args_check_long("--tokens", f.tokens, 64, 1L << 30, err)) ||
        (rc = args_check_long("--ctx", f.ctx, 8, 1 << 16, err)) ||
        (rc = args_check_long("--min-windows", p.min_windows, 0, INT_MAX / 2, err)) ||
        (rc = args_check_long("--logprobs", f.logprobs, 0, 20, err)) ||
        (rc = args_check_long("--bootstrap", f.bootstrap, 1, 1000000, err)) ||
        (rc = common_opts_check(&f.co, err)))
        return rc;
    const int sk = f.co.shard_k, sn = f.co.shard_n;
    if (f.features && (rc = eval_features_load(f.features, 0, &feats, err))) return rc;
    eval_features_release(&feats);

    if ((rc = eval_env_open(&env, f.co.db_path, f.co.model, f.co.sae, err))) goto out;
    if (f.features && (rc = eval_features_load(f.features, env.sae->cfg.d_sae, &feats, err)))
        goto out;
    const int is_d = proto == AI_PROTOCOL_DELPHI;
    if ((rc = prompt_load(NULL, is_d ? "autointerp_delphi_explain" : "autointerp_saebench_explain",
                          &pe, err)) ||
        (rc = prompt_load(NULL, is_d ? "autointerp_delphi_detection" : "autointerp_saebench_score",
                          &ps, err)))
        goto out;
    if ((p.scorers & AI_SCORER_FUZZING) &&
        (rc = prompt_load(NULL, "autointerp_delphi_fuzzing", &pf, err)))
        goto out;
    if ((p.scorers & AI_SCORER_SIMULATION) &&
        (rc = prompt_load(NULL, "autointerp_simulation", &pm, err)))
        goto out;
    if (f.ctx > model_config(env.model)->seq_len) {
        rc = ev_fail(err, EV_EUSAGE, "--ctx %ld exceeds the model's context of %d", f.ctx,
                     model_config(env.model)->seq_len);
        goto out;
    }
    if ((rc = open_grader(&f, env.store, &g, err))) goto out;

    /* the corpus, once */
    if (f.corpus)
        rc = acts_corpus_from_file(env.model, f.corpus, f.text_field, f.tokens, (int)f.ctx, &c,
                                   err);
    else rc = acts_corpus_generate(env.model, f.tokens, (int)f.ctx, (uint64_t)f.co.seed, &c, err);
    if (rc) goto out;
    ev_info("autointerp: %d sequences of %d tokens through the model and the SAE", c.n_seq, c.T);
    if ((rc = ai_acts_collect(env.model, env.sae, env.hook, &c, &acts, err))) goto out;
    n_sel = ai_select_latents(&acts, p.alive_min, f.features ? feats.idx : NULL, feats.n,
                              (int)f.latents, (uint64_t)f.co.seed, &sel);
    if (n_sel == 0) {
        rc = ev_fail(err, EV_EFAIL, "no alive latent to score (alive: more than %d firings on "
                                    "the %d-token corpus)", p.alive_min, c.n_seq * (c.T - 1));
        goto out;
    }
    info = xcalloc((size_t)n_sel, sizeof *info);
    for (int i = 0; i < n_sel; i++) {
        info[i] = (struct ai_latent_info){sel[i], acts.n_fire[sel[i]], acts.max[sel[i]], NULL};
        for (int k = 0; k < feats.n; k++)
            if (feats.idx[k] == sel[i]) info[i].desc = feats.desc[k];
    }

    /* the run */
    cfg = cJSON_CreateObject();
    cJSON_AddStringToObject(cfg, "protocol", ai_protocol_name(proto));
    cJSON_AddStringToObject(cfg, "model_name", env.model_path);
    cJSON *scs = cJSON_AddArrayToObject(cfg, "scorers");
    for (int b = 0; b < AI_N_SCORERS; b++)
        if (p.scorers & (1 << b))
            cJSON_AddItemToArray(scs, cJSON_CreateString(ai_scorer_name((enum ai_scorer)(1 << b))));
    cJSON *ls = cJSON_AddArrayToObject(cfg, "latents");
    for (int i = 0; i < n_sel; i++) cJSON_AddItemToArray(ls, cJSON_CreateNumber(sel[i]));
    if (f.features) {
        char fh[65];
        if ((rc = sha256_file(f.features, fh, err))) goto out;
        cJSON_AddStringToObject(cfg, "features_file_sha256", fh);
    }
    cJSON_AddStringToObject(cfg, "corpus", f.corpus ? f.corpus : "generate");
    cJSON_AddStringToObject(cfg, "corpus_hash", c.hash);
    cJSON_AddNumberToObject(cfg, "total_tokens", (double)c.n_seq * c.T);
    cJSON_AddNumberToObject(cfg, "llm_context_size", (double)c.T);
    cJSON_AddNumberToObject(cfg, "seeds", (double)f.seeds);
    cJSON_AddNumberToObject(cfg, "dead_latent_threshold", p.alive_min);
    if (is_d) {
        cJSON_AddStringToObject(cfg, "negatives", p.negatives == AI_NEGATIVES_SIMILAR
                                                      ? "similar (token-overlap stand-in)"
                                                      : "random");
        cJSON_AddNumberToObject(cfg, "min_windows", p.min_windows);
        cJSON_AddNumberToObject(cfg, "window_tokens", 32);
    } else {
        cJSON_AddNumberToObject(cfg, "buffer", 10);
        cJSON_AddNumberToObject(cfg, "act_threshold_frac", p.act_frac);
        cJSON_AddNumberToObject(cfg, "n_top_ex_for_generation", 10);
        cJSON_AddNumberToObject(cfg, "n_iw_sampled_ex_for_generation", 5);
        cJSON_AddNumberToObject(cfg, "n_top_ex_for_scoring", 2);
        cJSON_AddNumberToObject(cfg, "n_random_ex_for_scoring", 10);
        cJSON_AddNumberToObject(cfg, "n_iw_sampled_ex_for_scoring", 2);
        cJSON_AddBoolToObject(cfg, "random_windows_checked_nonactivating", 1);
    }
    cJSON_AddStringToObject(cfg, "explain_template_sha256", pe->hash);
    cJSON_AddStringToObject(cfg, "score_template_sha256", ps->hash);
    if (pf) cJSON_AddStringToObject(cfg, "fuzzing_template_sha256", pf->hash);
    if (pm) cJSON_AddStringToObject(cfg, "simulation_template_sha256", pm->hash);
    if (g) {
        char name[192];
        cJSON_AddStringToObject(cfg, "grader", grader_config_name(grader_config(g), name,
                                                                  sizeof name));
    } else {
        cJSON_AddNullToObject(cfg, "grader");
    }
    cJSON_AddNumberToObject(cfg, "logprobs", (double)f.logprobs);
    /* the grader's preflight request, unless this run is done already: rerunning finished
     * work asks the provider nothing (the corpus pass above stores nothing) */
    if (g) {
        int done = eval_run_done(&env, "autointerp", cfg, f.co.seed, sk, sn, err);
        if (done < 0) {
            rc = done;
            goto out;
        }
        if (!done && (rc = grader_preflight(g, NULL, NULL, 0, NULL, 0, err))) goto out;
    }
    if ((rc = eval_run_begin(&env, "autointerp", f.co.tag, cfg, f.co.seed, sk, sn, &run, err)))
        goto out;
    run_open = 1;
    cfg_text = json_print(cfg);
    if (g) grader_set_run(g, run.id);

    /* this shard's latents, in chunks (the activations of a chunk are held in memory) */
    struct ai_templates tpl = {pe, ps, pf, pm};
    int n_mine = 0;
    for (int i = 0; i < n_sel; i++)
        if (eval_in_shard(&run, i)) {
            info[n_mine] = info[i];
            sel[n_mine++] = sel[i];
        }
    for (int c0 = 0; c0 < n_mine; c0 += AI_CHUNK) {
        int cn = n_mine - c0 < AI_CHUNK ? n_mine - c0 : AI_CHUNK;
        ai_acts_extract(&acts, env.sae, sel + c0, cn);
        for (long k = 0; k < f.seeds; k++)
            if ((rc = ai_run_seed(&env, &run, g, &p, &tpl, &acts, c.tokens, info + c0, cn,
                                  f.co.seed + k, err)))
                goto out;
    }
    if (!g) goto out;
    if ((rc = ai_report_compute(&env, &run, &p, f.co.seed, (int)f.seeds, &rep, err))) goto out;

    /* the table */
    const struct grader_stats *gs = grader_stats(g);
    printf("autointerp %s, run %lld, %d latent%s", ai_protocol_name(proto), (long long)run.id,
           n_mine, n_mine == 1 ? "" : "s");
    if (sn > 1) printf(" (shard %d/%d of %d)", sk, sn, n_sel);
    printf(" (%d skipped: too few windows; %d without an explanation)\n", rep.n_skipped,
           rep.n_expl_failed);
    printf("%-11s %-18s %7s %17s %7s %7s %8s\n", "scorer", "metric", "score", "95% interval",
           "chance", "scored", "failures");
    for (int s = 0; s < AI_N_SCORERS; s++) {
        const struct ai_score *x = &rep.s[0][s];
        if (!(p.scorers & (1 << s))) continue;
        const char *metric = (1 << s) == AI_SCORER_SIMULATION ? "pearson"
                             : is_d                           ? "balanced_accuracy"
                                                              : "autointerp_score";
        printf("%-11s %-18s", ai_scorer_name((enum ai_scorer)(1 << s)), metric);
        print_num(x->value, 8, 4);
        printf("  [");
        print_num(x->lo, 6, 4);
        printf(", ");
        print_num(x->hi, 6, 4);
        printf("]");
        print_num(x->chance, 8, 4);
        printf(" %7d %8ld%s\n", x->n_latents, is_d && (1 << s) != AI_SCORER_SIMULATION
                                                  ? x->n_failed_samples
                                                  : (long)x->n_failed_latents,
               is_d && (1 << s) != AI_SCORER_SIMULATION ? " samples" : " latents");
        if (is_d && (1 << s) != AI_SCORER_SIMULATION) {
            printf("%-11s %-18s", "", "f1");
            print_num(x->f1, 8, 4);
            printf("  [");
            print_num(x->f1_lo, 6, 4);
            printf(", ");
            print_num(x->f1_hi, 6, 4);
            printf("]\n");
            printf("%-11s %-18s", "", "auc (logprobs)");
            print_num(x->auc, 8, 4);
            if (!isnan(x->auc)) {
                printf("  [");
                print_num(x->auc_lo, 6, 4);
                printf(", ");
                print_num(x->auc_hi, 6, 4);
                printf("]");
            }
            printf("\n%-11s %-18s", "", "per quantile");
            for (int q = 1; q <= 10; q++) print_num(x->per_quantile[q], 6, 2);
            printf("  non-act");
            print_num(x->per_quantile[0], 6, 2);
            printf("\n");
        } else if (!is_d && (1 << s) == AI_SCORER_DETECTION) {
            printf("%-11s %-18s", "", "std over latents");
            print_num(x->std_dev, 8, 4);
            printf("\n");
        }
    }
    if (f.seeds > 1) {
        printf("spread over %ld seeds (%ld..%ld):\n", f.seeds, f.co.seed, f.co.seed + f.seeds - 1);
        for (int s = 0; s < AI_N_SCORERS; s++) {
            if (!(p.scorers & (1 << s))) continue;
            double mn = INFINITY, mx = -INFINITY, sum = 0, s2 = 0;
            int    k = 0;
            for (int j = 0; j < rep.n_seeds; j++) {
                double v = rep.s[j][s].value;
                if (isnan(v)) continue;
                mn = v < mn ? v : mn;
                mx = v > mx ? v : mx;
                sum += v;
                k++;
            }
            double mean = k ? sum / k : NAN;
            for (int j = 0; j < rep.n_seeds; j++)
                if (!isnan(rep.s[j][s].value))
                    s2 += (rep.s[j][s].value - mean) * (rep.s[j][s].value - mean);
            printf("%-11s mean %.4f  min %.4f  max %.4f  std %.4f\n",
                   ai_scorer_name((enum ai_scorer)(1 << s)), mean, k ? mn : NAN, k ? mx : NAN,
                   k > 1 ? sqrt(s2 / (k - 1)) : NAN);
        }
    }
    printf("requests %ld (%ld answers from the cache), tokens %ld in / %ld out, cost ",
           gs->requests, gs->from_cache, gs->tokens_in, gs->tokens_out);
    if (gs->cost_usd > 0) printf("$%.4f\n", gs->cost_usd);
    else printf("unknown (give --price-in/--price-out)\n");
    if (f.out) {
        if (is_d) rc = ai_write_delphi_json(&env, &run, &p, &rep, f.out, err);
        else rc = ai_write_saebench_json(&env, &run, &rep, cfg_text, f.out, err);
        if (rc) goto out;
        ev_info("wrote %s", f.out);
    }
    rc = EV_OK;
out:
    if (run_open) {
        if (g) {
            struct ev_err ignore;
            grader_store_usage(g, run.id, &ignore);
        }
        rc = eval_run_end(&env, &run, rc, err);
    }
    ai_report_release(&rep);
    ai_acts_release(&acts);
    acts_corpus_release(&c);
    free(info);
    free(sel);
    free(cfg_text);
    if (cfg) json_free(cfg);
    prompt_free(pe);
    prompt_free(ps);
    prompt_free(pf);
    prompt_free(pm);
    grader_free(g);
    eval_features_release(&feats);
    eval_env_release(&env);
    return rc;
}
