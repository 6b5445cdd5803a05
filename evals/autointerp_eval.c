/*
 * autointerp_eval — the autointerp evaluation on the runner (evals/runner.h): the corpus pass
 * and the latents it selects, the run's configuration, the protocol's samples per seed, the
 * table and the --out exports. The protocols themselves are in autointerp.c (see
 * autointerp.h).
 */
#include "evals/autointerp.h"
#include "store/runinfo.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/hash.h"
#include "graders/grader.h"
#include "graders/prompt.h"
#include "sae/acts.h"

#define AI_CHUNK 128 /* latents whose corpus activations are held at once */

struct ai_state {
    struct eval_features   feats;
    struct prompt         *pe, *ps, *pf, *pm, *pr; /* pr: the explainer's re-ask */
    struct acts_corpus     c;
    struct ai_acts         acts;
    struct ai_report       rep;
    struct ai_latent_info *info;
    int                   *sel, n_sel, n_mine;
};

static int ai_check(struct eval_ctx *x, struct ev_err *err) {
    const struct ai_config *c = x->cfg;
    x->state = xcalloc(1, sizeof(struct ai_state));
    return c->features_path ? eval_features_check(c->features_path, err) : EV_OK;
}

/* The features against the SAE, the protocol's templates, the context against the model. */
static int ai_prepare(struct eval_ctx *x, struct ev_err *err) {
    const struct ai_config *c = x->cfg;
    struct ai_state        *s = x->state;
    const int               is_d = c->p.protocol == AI_PROTOCOL_DELPHI;
    int                     rc;
    if (c->features_path &&
        (rc = eval_features_load(c->features_path, x->env.sae->cfg.d_sae, &s->feats, err)))
        return rc;
    if ((rc = prompt_load(NULL, is_d ? "autointerp_delphi_explain" : "autointerp_saebench_explain",
                          &s->pe, err)) ||
        (rc = prompt_load(NULL, is_d ? "autointerp_delphi_detection" : "autointerp_saebench_score",
                          &s->ps, err)) ||
        (rc = prompt_load(NULL, "explainer_retry", &s->pr, err)))
        return rc;
    if ((c->p.scorers & AI_SCORER_FUZZING) &&
        (rc = prompt_load(NULL, "autointerp_delphi_fuzzing", &s->pf, err)))
        return rc;
    if ((c->p.scorers & AI_SCORER_SIMULATION) &&
        (rc = prompt_load(NULL, "autointerp_simulation", &s->pm, err)))
        return rc;
    if (c->ctx > model_config(x->env.model)->seq_len)
        return ev_fail(err, EV_EUSAGE, "--ctx %ld exceeds the model's context of %d", c->ctx,
                       model_config(x->env.model)->seq_len);
    return EV_OK;
}

/* The corpus, once, and the latents it selects (what the run's configuration names). */
static int corpus_pass(struct eval_ctx *x, struct ai_state *s, struct ev_err *err) {
    const struct ai_config *c = x->cfg;
    const uint64_t          seed = (uint64_t)x->common->seed;
    int                     rc;
    if (c->corpus)
        rc = acts_corpus_from_file(x->env.model, c->corpus, c->text_field, c->tokens, (int)c->ctx,
                                   &s->c, err);
    else rc = acts_corpus_generate(x->env.model, c->tokens, (int)c->ctx, seed, &s->c, err);
    if (rc) return rc;
    ev_info("autointerp: %d sequences of %d tokens through the model and the SAE", s->c.n_seq,
            s->c.T);
    if ((rc = ai_acts_collect(x->env.model, x->env.sae, x->env.hook, &s->c, &s->acts, err)))
        return rc;
    s->n_sel = ai_select_latents(&s->acts, c->p.alive_min, c->features_path ? s->feats.idx : NULL,
                                 s->feats.n, (int)c->latents, seed, &s->sel);
    if (s->n_sel == 0)
        return ev_fail(err, EV_EFAIL, "no alive latent to score (alive: more than %d firings on "
                                      "the %d-token corpus)", c->p.alive_min,
                       s->c.n_seq * (s->c.T - 1));
    s->info = xcalloc((size_t)s->n_sel, sizeof *s->info);
    for (int i = 0; i < s->n_sel; i++) {
        int l = s->sel[i];
        s->info[i] = (struct ai_latent_info){l, s->acts.n_fire[l], s->acts.max[l], NULL};
        for (int k = 0; k < s->feats.n; k++)
            if (s->feats.idx[k] == l) s->info[i].desc = s->feats.desc[k];
    }
    return EV_OK;
}

static void add_protocol_config(const struct ai_params *p, cJSON *cfg) {
    if (p->protocol == AI_PROTOCOL_DELPHI) {
        cJSON_AddStringToObject(cfg, "negatives", p->negatives == AI_NEGATIVES_SIMILAR
                                                      ? "similar (token-overlap stand-in)"
                                                      : "random");
        cJSON_AddNumberToObject(cfg, "min_windows", p->min_windows);
        cJSON_AddNumberToObject(cfg, "window_tokens", 32);
        return;
    }
    cJSON_AddNumberToObject(cfg, "buffer", 10);
    cJSON_AddNumberToObject(cfg, "act_threshold_frac", p->act_frac);
    cJSON_AddNumberToObject(cfg, "n_top_ex_for_generation", 10);
    cJSON_AddNumberToObject(cfg, "n_iw_sampled_ex_for_generation", 5);
    cJSON_AddNumberToObject(cfg, "n_top_ex_for_scoring", 2);
    cJSON_AddNumberToObject(cfg, "n_random_ex_for_scoring", 10);
    cJSON_AddNumberToObject(cfg, "n_iw_sampled_ex_for_scoring", 2);
    cJSON_AddBoolToObject(cfg, "random_windows_checked_nonactivating", 1);
}

/* The configuration depends on the latents selected, so the corpus pass comes here (after
 * the grader is known to be usable, before the run row). */
static int ai_configure(struct eval_ctx *x, cJSON *cfg, struct ev_err *err) {
    const struct ai_config *c = x->cfg;
    struct ai_state        *s = x->state;
    int                     rc = corpus_pass(x, s, err);
    if (rc != EV_OK) return rc;
    cJSON_AddStringToObject(cfg, "protocol", ai_protocol_name(c->p.protocol));
    cJSON_AddStringToObject(cfg, "model_name", x->env.model_path);
    cJSON *scs = cJSON_AddArrayToObject(cfg, "scorers");
    for (int b = 0; b < AI_N_SCORERS; b++)
        if (c->p.scorers & (1 << b))
            cJSON_AddItemToArray(scs, cJSON_CreateString(ai_scorer_name((enum ai_scorer)(1 << b))));
    cJSON *ls = cJSON_AddArrayToObject(cfg, "latents");
    for (int i = 0; i < s->n_sel; i++) cJSON_AddItemToArray(ls, cJSON_CreateNumber(s->sel[i]));
    if (c->features_path) {
        char fh[65];
        if ((rc = sha256_file(c->features_path, fh, err))) return rc;
        cJSON_AddStringToObject(cfg, "features_file_sha256", fh);
    }
    cJSON_AddStringToObject(cfg, "corpus", c->corpus ? c->corpus : "generate");
    cJSON_AddStringToObject(cfg, "corpus_hash", s->c.hash);
    cJSON_AddNumberToObject(cfg, "total_tokens", (double)s->c.n_seq * s->c.T);
    cJSON_AddNumberToObject(cfg, "llm_context_size", (double)s->c.T);
    cJSON_AddNumberToObject(cfg, "seeds", (double)c->seeds);
    cJSON_AddNumberToObject(cfg, "dead_latent_threshold", c->p.alive_min);
    add_protocol_config(&c->p, cfg);
    cJSON_AddStringToObject(cfg, "explain_template_sha256", s->pe->hash);
    cJSON_AddStringToObject(cfg, "score_template_sha256", s->ps->hash);
    if (s->pf) cJSON_AddStringToObject(cfg, "fuzzing_template_sha256", s->pf->hash);
    if (s->pm) cJSON_AddStringToObject(cfg, "simulation_template_sha256", s->pm->hash);
    eval_config_add_grader(cfg, x->grader);
    cJSON_AddNumberToObject(cfg, "logprobs", (double)c->logprobs);
    return EV_OK;
}

/* this shard's latents, in chunks (the activations of a chunk are held in memory) */
static int ai_work(struct eval_ctx *x, struct ev_err *err) {
    const struct ai_config *c = x->cfg;
    struct ai_state        *s = x->state;
    struct ai_templates     tpl = {s->pe, s->ps, s->pf, s->pm, s->pr};
    int                     rc;
    s->n_mine = 0;
    for (int i = 0; i < s->n_sel; i++)
        if (eval_in_shard(&x->run, i)) {
            s->info[s->n_mine] = s->info[i];
            s->sel[s->n_mine++] = s->sel[i];
        }
    for (int c0 = 0; c0 < s->n_mine; c0 += AI_CHUNK) {
        int cn = s->n_mine - c0 < AI_CHUNK ? s->n_mine - c0 : AI_CHUNK;
        ai_acts_extract(&s->acts, x->env.sae, s->sel + c0, cn);
        for (long k = 0; k < c->seeds; k++)
            if ((rc = ai_run_seed(&x->env, &x->run, x->grader, &c->p, &tpl, &s->acts,
                                  s->c.tokens, s->info + c0, cn, x->common->seed + k, err)))
                return rc;
    }
    return EV_OK;
}

// ---------------------------------------------------------------------------- the table

static void print_num(double v, int width, int prec) {
    if (isnan(v)) printf("%*s", width, "-");
    else printf("%*.*f", width, prec, v);
}

/* "  [lo, hi]" */
static void print_interval(double lo, double hi) {
    printf("  [");
    print_num(lo, 6, 4);
    printf(", ");
    print_num(hi, 6, 4);
    printf("]");
}

/* Delphi's extra rows of a detection/fuzzing scorer: F1, AUC, per quantile. */
static void print_delphi_rows(const struct ai_score *x) {
    printf("%-11s %-18s", "", "f1");
    print_num(x->f1, 8, 4);
    print_interval(x->f1_lo, x->f1_hi);
    printf("\n%-11s %-18s", "", "auc (logprobs)");
    print_num(x->auc, 8, 4);
    if (!isnan(x->auc)) print_interval(x->auc_lo, x->auc_hi);
    printf("\n%-11s %-18s", "", "per quantile");
    for (int q = 1; q <= 10; q++) print_num(x->per_quantile[q], 6, 2);
    printf("  non-act");
    print_num(x->per_quantile[0], 6, 2);
    printf("\n");
}

static void print_scorer(const struct ai_params *p, const struct ai_score *x, int s) {
    const int is_d = p->protocol == AI_PROTOCOL_DELPHI;
    const int sim = (1 << s) == AI_SCORER_SIMULATION;
    const char *metric = sim ? "pearson" : is_d ? "balanced_accuracy" : "autointerp_score";
    printf("%-11s %-18s", ai_scorer_name((enum ai_scorer)(1 << s)), metric);
    print_num(x->value, 8, 4);
    print_interval(x->lo, x->hi);
    print_num(x->chance, 8, 4);
    printf(" %7d %8ld%s\n", x->n_latents, is_d && !sim ? x->n_failed_samples
                                                       : (long)x->n_failed_latents,
           is_d && !sim ? " samples" : " latents");
    if (is_d && !sim) {
        print_delphi_rows(x);
    } else if (!is_d && (1 << s) == AI_SCORER_DETECTION) {
        printf("%-11s %-18s", "", "std over latents");
        print_num(x->std_dev, 8, 4);
        printf("\n");
    }
}

/* The spread of each scorer's score over the seeds. */
static void print_spread(const struct ai_config *c, const struct ai_report *rep, int64_t seed) {
    printf("spread over %ld seeds (%ld..%ld):\n", c->seeds, (long)seed,
           (long)(seed + c->seeds - 1));
    for (int s = 0; s < AI_N_SCORERS; s++) {
        if (!(c->p.scorers & (1 << s))) continue;
        double mn = INFINITY, mx = -INFINITY, sum = 0, s2 = 0;
        int    k = 0;
        for (int j = 0; j < rep->n_seeds; j++) {
            double v = rep->s[j][s].value;
            if (isnan(v)) continue;
            mn = v < mn ? v : mn;
            mx = v > mx ? v : mx;
            sum += v;
            k++;
        }
        double mean = k ? sum / k : (double)NAN;
        for (int j = 0; j < rep->n_seeds; j++)
            if (!isnan(rep->s[j][s].value))
                s2 += (rep->s[j][s].value - mean) * (rep->s[j][s].value - mean);
        printf("%-11s mean %.4f  min %.4f  max %.4f  std %.4f\n",
               ai_scorer_name((enum ai_scorer)(1 << s)), mean, k ? mn : (double)NAN,
               k ? mx : (double)NAN, k > 1 ? sqrt(s2 / (k - 1)) : (double)NAN);
    }
}

static void print_table(struct eval_ctx *x, const struct ai_state *s) {
    const struct ai_config    *c = x->cfg;
    const struct ai_report    *rep = &s->rep;
    const struct grader_stats *gs = grader_stats(x->grader);
    const int                  sk = x->common->shard_k, sn = x->common->shard_n;
    printf("autointerp %s, run %lld, %d latent%s", ai_protocol_name(c->p.protocol),
           (long long)x->run.id, s->n_mine, s->n_mine == 1 ? "" : "s");
    if (sn > 1) printf(" (shard %d/%d of %d)", sk, sn, s->n_sel);
    printf(" (%d skipped: too few windows; %d without an explanation)\n", rep->n_skipped,
           rep->n_expl_failed);
    printf("%-11s %-18s %7s %17s %7s %7s %8s\n", "scorer", "metric", "score", "95% interval",
           "chance", "scored", "failures");
    for (int k = 0; k < AI_N_SCORERS; k++)
        if (c->p.scorers & (1 << k)) print_scorer(&c->p, &rep->s[0][k], k);
    if (c->seeds > 1) print_spread(c, rep, x->common->seed);
    printf("requests %ld (%ld answers from the cache), tokens %ld in / %ld out, cost ",
           gs->requests, gs->from_cache, gs->tokens_in, gs->tokens_out);
    if (gs->cost_usd > 0) printf("$%.4f\n", gs->cost_usd);
    else printf("unknown (give --price-in/--price-out)\n");
}

/* After the table (and the JSON): every judge or explainer answer unparsed is a broken
 * grader or template, not a score: EV_EFAIL with the count and one raw reply (issue 17.6). */
static int all_unparsed_check(struct eval_ctx *x, struct ev_err *err) {
    struct runinfo_autointerp ai;
    int                       rc = runinfo_autointerp_load(x->env.store, x->run.id, &ai, err);
    if (rc != EV_OK) return rc;
    int judge = ai.judge_ok == 0 && ai.judge_unparsed > 0;
    int expl  = ai.expl_ok == 0 && ai.expl_unparsed > 0;
    if (!judge && !expl) return EV_OK;
    return ev_fail(err, EV_EFAIL,
                   "autointerp: all %lld %s answers were unparsed (no latent has a score); one "
                   "raw reply: \"%.100s\"",
                   (long long)(expl ? ai.expl_unparsed : ai.judge_unparsed),
                   expl ? "explainer" : "judge", ai.first_unparsed);
}

/* Without a grader nothing was scored: no table (ai_run_seed said so). */
static int ai_report(struct eval_ctx *x, struct ev_err *err) {
    const struct ai_config *c = x->cfg;
    struct ai_state        *s = x->state;
    int                     rc;
    if (!x->grader) return EV_OK;
    if ((rc = ai_report_compute(&x->env, &x->run, &c->p, x->common->seed, (int)c->seeds,
                                &s->rep, err)))
        return rc;
    print_table(x, s);
    if (!c->out_path) return all_unparsed_check(x, err);
    /* a control (evals/controls.h) writes beside the run's file: OUT.random-sae.json */
    char *out = NULL;
    if (x->common->control) {
        size_t n = strlen(c->out_path);
        int    js = n > 5 && strcmp(c->out_path + n - 5, ".json") == 0;
        out = xasprintf("%.*s.%s.json", (int)(js ? n - 5 : n), c->out_path,
                        eval_control_name(x->common->control->kind));
    }
    const char *path = out ? out : c->out_path;
    if (c->p.protocol == AI_PROTOCOL_DELPHI) {
        rc = ai_write_delphi_json(&x->env, &x->run, &c->p, &s->rep, path, err);
    } else {
        char *cfg_text = json_print(x->config);
        rc = ai_write_saebench_json(&x->env, &x->run, &s->rep, cfg_text, path, err);
        free(cfg_text);
    }
    if (rc == EV_OK) ev_info("wrote %s", path);
    free(out);
    if (rc) return rc;
    return all_unparsed_check(x, err);
}

static void ai_release(struct eval_ctx *x) {
    struct ai_state *s = x->state;
    if (!s) return;
    ai_report_release(&s->rep);
    ai_acts_release(&s->acts);
    acts_corpus_release(&s->c);
    free(s->info);
    free(s->sel);
    prompt_free(s->pe);
    prompt_free(s->ps);
    prompt_free(s->pf);
    prompt_free(s->pm);
    prompt_free(s->pr);
    eval_features_release(&s->feats);
    free(s);
    x->state = NULL;
}

const struct eval_kind ai_kind = {
    .name = "autointerp",
    .flags = EVAL_GRADER_USAGE | EVAL_CONTROL_RANDOM,
    .check = ai_check,
    .prepare = ai_prepare,
    .configure = ai_configure,
    .work = ai_work,
    .report = ai_report,
    .release = ai_release,
};
