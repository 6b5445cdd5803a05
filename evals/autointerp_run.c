/*
 * autointerp_run — judging a seed of an autointerp run: rendering the windows, the explainer
 * and scorer prompts through the grader, parsing the answers and storing them (see
 * autointerp.h).
 */
#include "evals/autointerp.h"
#include "evals/autointerp_int.h"
#include "evals/stats.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sae/acts.h"
#include "graders/explain.h"
#include "graders/grader.h"
#include "base/hash.h"
#include "graders/parse.h"
#include "graders/prompt.h"
#include "model/tok.h"
#include "store/autointerp.h"

// ---------------------------------------------------------------------------- rendering

/* The window's text: tokens decoded after their predecessor, escaped, marked tokens wrapped in
 * ⟦ ⟧, line breaks and tabs shown as spaces (a window is one line of the prompt). */
static char *window_text(const struct tok *tk, const int *tokens, int T,
                         const struct ai_window *w, uint64_t marks) {
    const char *pieces[64];
    int         marked[64];
    char        num[64][16];
    const int  *tw = tokens + (size_t)w->seq * T + w->start;
    for (int i = 0; i < w->n; i++) {
        int prev = w->start + i > 0 ? tw[i - 1] : -1;
        if (tk) {
            pieces[i] = tok_piece(tk, prev, tw[i]);
        } else {
            snprintf(num[i], sizeof num[i], " %d", tw[i]);
            pieces[i] = num[i];
        }
        marked[i] = (int)(marks >> i & 1);
    }
    char *s = prompt_mark_tokens(pieces, marked, w->n);
    for (char *c = s; *c; c++)
        if (*c == '\n' || *c == '\r' || *c == '\t') *c = ' ';
    return s;
}

static char *examples_block(const struct tok *tk, const int *tokens, int T,
                            const struct ai_window *w, int n, int with_marks) {
    struct sbuf sb;
    sbuf_init(&sb);
    for (int i = 0; i < n; i++) {
        char *t = window_text(tk, tokens, T, &w[i], with_marks ? w[i].marks : 0);
        sbuf_addf(&sb, "%s%d. %s", i ? "\n" : "", i + 1, t);
        free(t);
    }
    return sbuf_detach(&sb);
}

/* One token's text for the simulation list: escaped, line breaks shown as \n. */
static char *token_text(const struct tok *tk, int prev, int id) {
    char        num[16];
    const char *piece = num;
    if (tk) piece = tok_piece(tk, prev, id);
    else snprintf(num, sizeof num, " %d", id);
    char       *e = prompt_escape_untrusted(piece);
    struct sbuf sb;
    sbuf_init(&sb);
    for (const char *c = e; *c; c++) {
        if (*c == '\n') sbuf_adds(&sb, "\\n");
        else if (*c == '\r' || *c == '\t') sbuf_adds(&sb, " ");
        else sbuf_add(&sb, c, 1);
    }
    free(e);
    return sbuf_detach(&sb);
}

// ---------------------------------------------------------------------------- storage

struct job {
    int    feature, scorer, prompt_no, n; /* n: windows (or tokens, simulation) */
    char  *prompt;
    const char *tpl_hash;
};

struct ctx {
    struct eval_env       *env;
    const struct eval_run *run;
    const struct ai_params *p;
    int64_t                seed;
    struct job            *jobs;
    int                    n_jobs;
    const char            *grader_name;
    long                   n_unparsed, n_failed;
};

static int latent_put(struct ctx *c, struct autointerp_latent_row *l, struct ev_err *err) {
    l->protocol = ai_protocol_name(c->p->protocol);
    return autointerp_latent_put(c->env->store, c->run->id, c->seed, l, err);
}

static const char *scorer_name(int scorer) { return ai_scorer_name((enum ai_scorer)scorer); }

// ---------------------------------------------------------------------------- answers

static enum parse_status parse_answer(int scorer, enum ai_protocol proto, const char *text,
                                      int n, int *pred) {
    int *v = NULL, nv = 0;
    enum parse_status ps;
    if (scorer == AI_SCORER_SIMULATION) {
        ps = parse_int_list(text, n, 0, 10, &v, &nv);
        if (ps == PARSE_OK)
            for (int i = 0; i < n; i++) pred[i] = v[i];
    } else if (proto == AI_PROTOCOL_SAEBENCH) {
        ps = parse_window_numbers(text, n, &v, &nv);
        if (ps == PARSE_OK) {
            for (int i = 0; i < n; i++) pred[i] = 0;
            for (int i = 0; i < nv; i++) pred[v[i] - 1] = 1;
        }
    } else {
        ps = parse_int_list(text, n, 0, 1, &v, &nv);
        if (ps == PARSE_OK)
            for (int i = 0; i < n; i++) pred[i] = v[i];
    }
    free(v);
    return ps;
}

int ai_logprob_values(const char *json, int n, int sim, double *out) {
    cJSON        *j = NULL;
    struct ev_err e;
    int           k = 0;
    if (!json || json_parse(json, strlen(json), "logprobs", &j, &e)) return 0;
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(j, "content");
    const cJSON *tok;
    cJSON_ArrayForEach(tok, content) {
        const cJSON *ts = cJSON_GetObjectItemCaseSensitive(tok, "token");
        if (!cJSON_IsString(ts)) continue;
        char   digits[16];
        size_t nd = 0;
        int    other = 0;
        for (const char *c = ts->valuestring; *c; c++) {
            if (*c >= '0' && *c <= '9') {
                if (nd + 1 < sizeof digits) digits[nd++] = *c;
            } else if (!strchr("[], \n", *c)) {
                other = 1;
            }
        }
        digits[nd] = 0;
        if (!nd || other) continue;
        double       num = 0, den = 0;
        const cJSON *alt;
        cJSON_ArrayForEach(alt, cJSON_GetObjectItemCaseSensitive(tok, "top_logprobs")) {
            const cJSON *at = cJSON_GetObjectItemCaseSensitive(alt, "token");
            const cJSON *lp = cJSON_GetObjectItemCaseSensitive(alt, "logprob");
            long         v;
            if (!cJSON_IsString(at) || !cJSON_IsNumber(lp)) continue;
            char buf[16];
            size_t nb = 0;
            for (const char *c = at->valuestring; *c && nb + 1 < sizeof buf; c++)
                if (*c != ' ' && *c != '[' && *c != ']' && *c != ',') buf[nb++] = *c;
            buf[nb] = 0;
            if (parse_long(buf, &v) || v < 0 || v > (sim ? 10 : 1)) continue;
            double pr = exp(lp->valuedouble);
            den += pr;
            num += sim ? pr * (double)v : (v == 1 ? pr : 0);
        }
        if (k < n) out[k] = den > 0 ? num / den : (double)NAN;
        k++;
    }
    json_free(j);
    if (k != n) return 0;
    for (int i = 0; i < n; i++)
        if (isnan(out[i])) return 0;
    return 1;
}

static int score_accept(void *ud, int index, const char *answer) {
    struct ctx *c = ud;
    struct job *j = &c->jobs[index];
    int        *pred = xmalloc((size_t)j->n * sizeof *pred);
    int         ok = parse_answer(j->scorer, c->p->protocol, answer, j->n, pred) == PARSE_OK;
    free(pred);
    return ok;
}

static int score_result(void *ud, int index, const struct grader_result *res,
                        struct ev_err *err) {
    struct ctx *c = ud;
    struct job *j = &c->jobs[index];
    int        *pred = xmalloc((size_t)j->n * sizeof *pred);
    double     *prob = xmalloc((size_t)j->n * sizeof *prob);
    const char *status = "error";
    int         have_lp = 0;
    if (res->status == GRADER_OK) {
        status = parse_status_name(parse_answer(j->scorer, c->p->protocol, res->text, j->n,
                                                pred));
        if (strcmp(status, "ok") == 0)
            have_lp = ai_logprob_values(res->logprobs_json, j->n,
                                     j->scorer == AI_SCORER_SIMULATION, prob);
        else
            c->n_unparsed++;
    } else {
        c->n_failed++;
    }
    const int                ok = strcmp(status, "ok") == 0;
    struct autointerp_answer a = {
        .raw_answer = res->status == GRADER_OK ? res->text : NULL,
        .parse_status = status,
        .error = res->status == GRADER_OK ? NULL : res->error,
        .cache_key = res->cache_key,
        .have_logprobs = have_lp,
        .latency_ms = (int64_t)(res->latency_s * 1000.0),
        .tokens_in = res->tokens_in,
        .tokens_out = res->tokens_out,
    };
    int rc = autointerp_answer_put(c->env->store, c->run->id, c->seed, scorer_name(j->scorer),
                                   j->feature, j->prompt_no, &a, ok ? pred : NULL,
                                   ok && have_lp ? prob : NULL, j->n, err);
    free(pred);
    free(prob);
    return rc;
}

struct expl_ud {
    struct ctx                  *c;
    const struct ai_latent_info *info; /* (n) */
    const int                   *which; /* request index -> info index */
    char                       **prompts;
    const char                  *tpl_hash;
    int                          n_ok, n_unparsed, n_failed;
};

static int expl_result(void *ud, int index, const struct grader_result *res,
                       struct ev_err *err) {
    struct expl_ud              *x = ud;
    const struct ai_latent_info *li = &x->info[x->which[index]];
    char                        *desc = NULL, src[256], why[160], reason[256];
    struct autointerp_latent_row            row = {.feature = li->feature, .n_firings = li->n_fire,
                                        .max_act = li->max, .tpl_hash = x->tpl_hash,
                                        .prompt = x->prompts[index]};
    snprintf(src, sizeof src, "explainer:%s", x->c->grader_name);
    if (res->status != GRADER_OK) {
        row.status = "explanation_failed";
        row.reason = res->error;
        x->n_failed++;
    } else if (parse_description_why(res->text, EXPLAIN_MAX_LEN, &desc, why, sizeof why) !=
               PARSE_OK) {
        snprintf(reason, sizeof reason, "the explainer's answer holds no usable description (%s%s)",
                 why, res->attempt ? ", also when asked again" : "");
        row.status = "explanation_unparsed";
        row.reason = reason;
        row.raw = res->text;
        x->n_unparsed++;
    } else {
        row.status = "ok";
        row.explanation = desc;
        row.source = src;
        row.raw = res->text;
        x->n_ok++;
    }
    int rc = latent_put(x->c, &row, err);
    free(desc);
    return rc;
}

// ---------------------------------------------------------------------------- running

static uint64_t latent_seed(int64_t seed, int feature) {
    return (uint64_t)seed * 0x9e3779b97f4a7c15ULL + (uint64_t)feature * 0xbf58476d1ce4e5b9ULL +
           1;
}

static void free_jobs(struct ctx *c) {
    for (int i = 0; i < c->n_jobs; i++) free(c->jobs[i].prompt);
    free(c->jobs);
    c->jobs = NULL;
    c->n_jobs = 0;
}

/* Plans (stores) the prompts of one scorer for one latent that are not answered yet. */
static int plan_scorer(struct ctx *c, const struct tok *tk, const int *tokens, int T,
                       const float *a, const struct ai_plan *pl, int scorer,
                       const struct prompt *tpl, const char *expl, int *cap,
                       struct ev_err *err) {
    const struct ai_window *w = scorer == AI_SCORER_FUZZING    ? pl->fuzz
                                : scorer == AI_SCORER_SIMULATION ? pl->sim
                                                                 : pl->test;
    int nw = scorer == AI_SCORER_FUZZING    ? pl->n_fuzz
             : scorer == AI_SCORER_SIMULATION ? pl->n_sim
                                              : pl->n_test;
    int per = scorer == AI_SCORER_SIMULATION        ? 1
              : c->p->protocol == AI_PROTOCOL_DELPHI ? DL_PER_PROMPT
                                                     : nw;
    char *ex = prompt_escape_untrusted(expl);
    int   rc = EV_OK, sample_no = 0;
    for (int p0 = 0, no = 0; p0 < nw; p0 += per, no++) {
        int np = nw - p0 < per ? nw - p0 : per;
        if (scorer == AI_SCORER_SIMULATION) np = 1;
        int done = autointerp_prompt_answered(c->env->store, c->run->id, c->seed,
                                              scorer_name(scorer), pl->feature, no, err);
        if (done < 0) {
            rc = done;
            break;
        }
        int n_items = scorer == AI_SCORER_SIMULATION ? w[p0].n : np;
        if (done) {
            sample_no += n_items;
            continue;
        }
        char *text = NULL, *block = NULL, nbuf[16];
        snprintf(nbuf, sizeof nbuf, "%d", n_items);
        if (scorer == AI_SCORER_SIMULATION) {
            struct sbuf sb;
            sbuf_init(&sb);
            const int *tw = tokens + (size_t)w[p0].seq * T + w[p0].start;
            for (int i = 0; i < w[p0].n; i++) {
                char *t = token_text(tk, w[p0].start + i > 0 ? tw[i - 1] : -1, tw[i]);
                sbuf_addf(&sb, "%s%d\t%s", i ? "\n" : "", i + 1, t);
                free(t);
            }
            block = sbuf_detach(&sb);
            struct prompt_var v[] = {{"explanation", ex}, {"tokens", block}, {"n", nbuf}};
            rc = prompt_render(tpl, v, 3, &text, err);
        } else {
            block = examples_block(tk, tokens, T, w + p0, np, scorer == AI_SCORER_FUZZING);
            struct prompt_var v[] = {{"explanation", ex}, {"examples", block}, {"n", nbuf}};
            rc = prompt_render(tpl, v, 3, &text, err);
        }
        free(block);
        if (rc) break;
        struct job j = {pl->feature, scorer, no, n_items, text, tpl->hash};
        if ((rc = autointerp_prompt_put(c->env->store, c->run->id, c->seed, scorer_name(scorer),
                                        pl->feature, no, j.tpl_hash, j.prompt, err))) {
            free(text);
            break;
        }
        struct autointerp_sample_row *sr = xcalloc((size_t)(n_items > 0 ? n_items : 1),
                                                   sizeof *sr);
        int                           ns = 0;
        for (int i = 0; i < np; i++) {
            const struct ai_window *x = &w[p0 + i];
            const char             *kind = ai_kind_name((enum ai_kind)x->kind);
            if (scorer == AI_SCORER_SIMULATION) {
                const int *tw = tokens + (size_t)x->seq * T + x->start;
                for (int t = 0; t < x->n; t++)
                    sr[ns++] = (struct autointerp_sample_row){
                        sample_no++, no, t + 1, x->quantile, x->seq, x->start + t, 1, kind,
                        token_text(tk, x->start + t > 0 ? tw[t - 1] : -1, tw[t]), x->max,
                        a[(size_t)x->seq * T + x->start + t]};
            } else {
                char *tt = window_text(tk, tokens, T, x, scorer == AI_SCORER_FUZZING ? x->marks
                                                                                     : 0);
                sr[ns++] = (struct autointerp_sample_row){sample_no++, no, i + 1, x->quantile,
                                                          x->seq, x->start, x->n, kind, tt,
                                                          x->max, x->label};
            }
        }
        rc = autointerp_samples_put(c->env->store, c->run->id, c->seed, scorer_name(scorer),
                                    pl->feature, sr, ns, err);
        for (int i = 0; i < ns; i++) free((char *)sr[i].text);
        free(sr);
        if (rc) {
            free(text);
            break;
        }
        if (c->n_jobs == *cap) {
            *cap = *cap ? 2 * *cap : 64;
            c->jobs = xrealloc(c->jobs, (size_t)*cap * sizeof *c->jobs);
        }
        c->jobs[c->n_jobs++] = j;
    }
    free(ex);
    return rc;
}

int ai_run_seed(struct eval_env *env, const struct eval_run *run, struct grader *g,
                const struct ai_params *p, const struct ai_templates *tpl,
                const struct ai_acts *acts, const int *corpus_tokens,
                const struct ai_latent_info *lat, int n, int64_t seed, struct ev_err *err) {
    const int         T = acts->T;
    const size_t      NT = (size_t)acts->n_seq * T;
    const struct tok *tk = model_tokenizer(env->model);
    struct ctx        c = {.env = env, .run = run, .p = p, .seed = seed};
    struct ai_plan   *plans = xcalloc((size_t)(n > 0 ? n : 1), sizeof *plans);
    struct grader_request *reqs = NULL;
    char             **eprompts = NULL, gname[192] = "";
    int               *which = NULL, n_e = 0, rc = EV_OK, in_tx = 0;
    if (g) grader_config_name(grader_config(g), gname, sizeof gname);
    c.grader_name = gname;
    for (int i = 0; i < n; i++) {
        struct rng r;
        rng_seed(&r, latent_seed(seed, lat[i].feature));
        ai_plan_latent(p, lat[i].feature, acts->a + (size_t)i * NT, corpus_tokens, acts->n_seq,
                       T, lat[i].max, &r, &plans[i]);
    }

    /* explanations */
    eprompts = xcalloc((size_t)(n > 0 ? n : 1), sizeof *eprompts);
    which = xcalloc((size_t)(n > 0 ? n : 1), sizeof *which);
    if ((rc = store_begin(env->store, err))) goto out;
    in_tx = 1;
    for (int i = 0; i < n; i++) {
        char *st = NULL;
        if ((rc = autointerp_latent_status(env->store, run->id, seed, lat[i].feature, &st, err))) goto out;
        struct autointerp_latent_row row = {.feature = lat[i].feature, .n_firings = lat[i].n_fire,
                                 .max_act = lat[i].max};
        if (plans[i].skip) {
            row.status = "skipped";
            row.reason = plans[i].skip;
            if (!st) rc = latent_put(&c, &row, err);
        } else if (lat[i].desc) {
            row.status = "ok";
            row.explanation = lat[i].desc;
            row.source = "user";
            if (!st || strcmp(st, "ok") != 0) rc = latent_put(&c, &row, err);
        } else if (!st || (strcmp(st, "ok") != 0 && strcmp(st, "explanation_unparsed") != 0)) {
            char *block = examples_block(tk, corpus_tokens, T, plans[i].expl, plans[i].n_expl, 1);
            struct prompt_var v[] = {{"examples", block}};
            rc = prompt_render(tpl->explain, v, 1, &eprompts[n_e], err);
            free(block);
            if (rc == EV_OK && !g) {
                row.status = "pending";
                row.reason = "no grader configured";
                row.prompt = eprompts[n_e];
                row.tpl_hash = tpl->explain->hash;
                rc = latent_put(&c, &row, err);
            }
            if (rc == EV_OK) which[n_e++] = i;
        }
        free(st);
        if (rc) goto out;
    }
    if ((rc = store_commit(env->store, err))) goto out;
    in_tx = 0;
    if (!g) {
        ev_info("%s", grader_not_configured_message());
        ev_info("%d explainer prompt%s stored in run %lld (table autointerp_latents); autointerp "
                "has no human-review mode: rerun with a grader to score", n_e,
                n_e == 1 ? "" : "s", (long long)run->id);
        goto out;
    }
    if (n_e > 0) {
        struct expl_ud x = {&c, lat, which, eprompts, tpl->explain->hash, 0, 0, 0};
        reqs = xcalloc((size_t)n_e, sizeof *reqs);
        for (int k = 0; k < n_e; k++)
            reqs[k] = (struct grader_request){tpl->explain->system, eprompts[k], 0, 0,
                                               prompt_fixed_len(tpl->explain)};
        ev_info("seed %lld: explaining %d latent%s", (long long)seed, n_e, n_e == 1 ? "" : "s");
        /* an unusable answer is asked once more, with what was wrong (issue 17.6) */
        rc = tpl->retry ? grader_run_batch_reask(g, reqs, n_e, explain_accept_reask, tpl->retry,
                                                 expl_result, &x, err)
                        : grader_run_batch(g, reqs, n_e, explain_accept, expl_result, &x, err);
        free(reqs);
        reqs = NULL;
        if (x.n_unparsed || x.n_failed)
            ev_info("explainer: %d written, %d unparsed (stored, latent left out), %d failed",
                    x.n_ok, x.n_unparsed, x.n_failed);
        if (rc) goto out;
    }

    /* scorers, one after the other */
    static const int order[] = {AI_SCORER_DETECTION, AI_SCORER_FUZZING, AI_SCORER_SIMULATION};
    for (int s = 0; s < AI_N_SCORERS; s++) {
        int sc = order[s], cap = 0;
        if (!(p->scorers & sc)) continue;
        const struct prompt *t = sc == AI_SCORER_SIMULATION ? tpl->sim
                                 : sc == AI_SCORER_FUZZING  ? tpl->fuzz
                                                            : tpl->score;
        if ((rc = store_begin(env->store, err))) goto out;
        in_tx = 1;
        for (int i = 0; i < n; i++) {
            if (plans[i].skip) continue;
            char *expl = autointerp_latent_explanation(env->store, run->id, seed, lat[i].feature);
            if (!expl) continue;
            rc = plan_scorer(&c, tk, corpus_tokens, T, acts->a + (size_t)i * NT, &plans[i], sc,
                             t, expl, &cap, err);
            free(expl);
            if (rc) goto out;
        }
        if ((rc = store_commit(env->store, err))) goto out;
        in_tx = 0;
        if (c.n_jobs > 0) {
            reqs = xcalloc((size_t)c.n_jobs, sizeof *reqs);
            for (int k = 0; k < c.n_jobs; k++)
                reqs[k] = (struct grader_request){t->system, c.jobs[k].prompt, 0, 0,
                                                  prompt_fixed_len(t)};
            ev_info("seed %lld: %s: %d judge prompt%s to ask", (long long)seed,
                    ai_scorer_name((enum ai_scorer)sc), c.n_jobs, c.n_jobs == 1 ? "" : "s");
            rc = grader_run_batch(g, reqs, c.n_jobs, score_accept, score_result, &c, err);
            free(reqs);
            reqs = NULL;
        }
        free_jobs(&c);
        if (rc) goto out;
    }
    if (c.n_unparsed || c.n_failed)
        ev_info("judge: %ld answer%s did not parse (stored, excluded from the scores), %ld "
                "request%s failed (asked again on the next run)", c.n_unparsed,
                c.n_unparsed == 1 ? "" : "s", c.n_failed, c.n_failed == 1 ? "" : "s");
    rc = EV_OK;
out:
    if (in_tx) store_rollback(env->store);
    free_jobs(&c);
    free(reqs);
    for (int i = 0; i < n; i++) {
        ai_plan_release(&plans[i]);
        if (eprompts) free(eprompts[i]);
    }
    free(plans);
    free(eprompts);
    free(which);
    return rc;
}

