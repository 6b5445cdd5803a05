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

static int latent_status(struct ctx *c, int feature, char **status, struct ev_err *err) {
    struct store_stmt *st = NULL;
    *status = NULL;
    int rc = store_prepare(c->env->store, "SELECT status FROM autointerp_latents WHERE run_id = ?1 "
                                          "AND seed = ?2 AND feature_idx = ?3", &st, err);
    if (rc) return rc;
    store_bind_int(st, 1, c->run->id);
    store_bind_int(st, 2, c->seed);
    store_bind_int(st, 3, feature);
    int r = store_step(st, err);
    if (r == STORE_ROW) *status = xstrdup(store_col_text(st, 0));
    store_finalize(st);
    return r < 0 ? EV_EFAIL : EV_OK;
}

struct latent_row {
    int         feature;
    int64_t     n_fire;
    double      max;
    const char *status, *reason, *explanation, *source, *tpl_hash, *prompt, *raw;
};

static int latent_put(struct ctx *c, const struct latent_row *l, struct ev_err *err) {
    struct store_stmt *st = NULL;
    int rc = store_prepare(c->env->store,
                           "INSERT OR REPLACE INTO autointerp_latents (run_id, seed, feature_idx, "
                           "protocol, n_firings, max_act, status, reason, explanation, "
                           "expl_source, expl_template_hash, expl_prompt, expl_raw, created_ms) "
                           "VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14)", &st, err);
    if (rc) return rc;
    store_bind_int(st, 1, c->run->id);
    store_bind_int(st, 2, c->seed);
    store_bind_int(st, 3, l->feature);
    store_bind_text(st, 4, ai_protocol_name(c->p->protocol));
    store_bind_int(st, 5, l->n_fire);
    store_bind_double(st, 6, l->max);
    store_bind_text(st, 7, l->status);
    store_bind_text(st, 8, l->reason);
    store_bind_text(st, 9, l->explanation);
    store_bind_text(st, 10, l->source);
    store_bind_text(st, 11, l->tpl_hash);
    store_bind_text(st, 12, l->prompt);
    store_bind_text(st, 13, l->raw);
    store_bind_int(st, 14, now_unix_ms());
    rc = store_step(st, err) < 0 ? EV_EFAIL : EV_OK;
    store_finalize(st);
    return rc;
}

static char *latent_explanation(struct ctx *c, int feature) {
    struct store_stmt *st = NULL;
    struct ev_err      e;
    char              *out = NULL;
    if (store_prepare(c->env->store, "SELECT explanation FROM autointerp_latents WHERE run_id = "
                                     "?1 AND seed = ?2 AND feature_idx = ?3 AND status = 'ok'",
                      &st, &e))
        return NULL;
    store_bind_int(st, 1, c->run->id);
    store_bind_int(st, 2, c->seed);
    store_bind_int(st, 3, feature);
    if (store_step(st, &e) == STORE_ROW && store_col_text(st, 0))
        out = xstrdup(store_col_text(st, 0));
    store_finalize(st);
    return out;
}

/* 1 when the prompt has an answer stored (parsed or not), 0 when it must be asked. */
static int prompt_answered(struct ctx *c, int scorer, int feature, int no, struct ev_err *err) {
    struct store_stmt *st = NULL;
    int rc = store_prepare(c->env->store,
                           "SELECT parse_status FROM autointerp_prompts WHERE run_id = ?1 AND "
                           "seed = ?2 AND scorer = ?3 AND feature_idx = ?4 AND prompt_no = ?5",
                           &st, err);
    if (rc) return rc;
    store_bind_int(st, 1, c->run->id);
    store_bind_int(st, 2, c->seed);
    store_bind_text(st, 3, ai_scorer_name((enum ai_scorer)scorer));
    store_bind_int(st, 4, feature);
    store_bind_int(st, 5, no);
    int r = store_step(st, err), done = 0;
    if (r == STORE_ROW) {
        const char *ps = store_col_text(st, 0);
        done = ps && (strcmp(ps, "ok") == 0 || strcmp(ps, "unparsed") == 0);
    }
    store_finalize(st);
    return r < 0 ? EV_EFAIL : done;
}

static int prompt_put(struct ctx *c, const struct job *j, struct ev_err *err) {
    struct store_stmt *st = NULL;
    int rc = store_prepare(c->env->store,
                           "INSERT OR REPLACE INTO autointerp_prompts (run_id, seed, scorer, "
                           "feature_idx, prompt_no, template_hash, prompt) VALUES "
                           "(?1,?2,?3,?4,?5,?6,?7)", &st, err);
    if (rc) return rc;
    store_bind_int(st, 1, c->run->id);
    store_bind_int(st, 2, c->seed);
    store_bind_text(st, 3, ai_scorer_name((enum ai_scorer)j->scorer));
    store_bind_int(st, 4, j->feature);
    store_bind_int(st, 5, j->prompt_no);
    store_bind_text(st, 6, j->tpl_hash);
    store_bind_text(st, 7, j->prompt);
    rc = store_step(st, err) < 0 ? EV_EFAIL : EV_OK;
    store_finalize(st);
    return rc;
}

struct sample_row {
    int         scorer, feature, sample_no, prompt_no, position, quantile, seq, start, n;
    const char *kind, *text;
    double      max, label;
};

static int sample_put(struct ctx *c, struct store_stmt **st, const struct sample_row *s,
                      struct ev_err *err) {
    int rc;
    if (!*st &&
        (rc = store_prepare(c->env->store,
                            "INSERT OR REPLACE INTO autointerp_samples (run_id, seed, scorer, "
                            "feature_idx, sample_no, prompt_no, position, kind, quantile, seq, "
                            "start, n_tokens, max_act, text, label) VALUES "
                            "(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15)", st, err)))
        return rc;
    store_reset(*st);
    store_bind_int(*st, 1, c->run->id);
    store_bind_int(*st, 2, c->seed);
    store_bind_text(*st, 3, ai_scorer_name((enum ai_scorer)s->scorer));
    store_bind_int(*st, 4, s->feature);
    store_bind_int(*st, 5, s->sample_no);
    store_bind_int(*st, 6, s->prompt_no);
    store_bind_int(*st, 7, s->position);
    store_bind_text(*st, 8, s->kind);
    if (s->quantile > 0) store_bind_int(*st, 9, s->quantile);
    else store_bind_null(*st, 9);
    store_bind_int(*st, 10, s->seq);
    store_bind_int(*st, 11, s->start);
    store_bind_int(*st, 12, s->n);
    store_bind_double(*st, 13, s->max);
    store_bind_text(*st, 14, s->text);
    store_bind_double(*st, 15, s->label);
    return store_step(*st, err) < 0 ? EV_EFAIL : EV_OK;
}

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
    struct ctx        *c = ud;
    struct job        *j = &c->jobs[index];
    struct store_stmt *up = NULL, *us = NULL;
    int               *pred = xmalloc((size_t)j->n * sizeof *pred);
    double            *prob = xmalloc((size_t)j->n * sizeof *prob);
    const char        *status = "error";
    int                have_lp = 0, rc;
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
    if ((rc = store_begin(c->env->store, err))) goto out;
    rc = store_prepare(c->env->store,
                       "UPDATE autointerp_prompts SET raw_answer = ?6, parse_status = ?7, "
                       "error = ?8, logprobs = ?9, cache_key = ?10, latency_ms = ?11, "
                       "tokens_in = ?12, tokens_out = ?13, answered_ms = ?14 WHERE run_id = ?1 "
                       "AND seed = ?2 AND scorer = ?3 AND feature_idx = ?4 AND prompt_no = ?5",
                       &up, err);
    if (rc) goto fail;
    store_bind_int(up, 1, c->run->id);
    store_bind_int(up, 2, c->seed);
    store_bind_text(up, 3, ai_scorer_name((enum ai_scorer)j->scorer));
    store_bind_int(up, 4, j->feature);
    store_bind_int(up, 5, j->prompt_no);
    store_bind_text(up, 6, res->status == GRADER_OK ? res->text : NULL);
    store_bind_text(up, 7, status);
    store_bind_text(up, 8, res->status == GRADER_OK ? NULL : res->error);
    store_bind_int(up, 9, have_lp);
    store_bind_text(up, 10, res->cache_key);
    store_bind_int(up, 11, (int64_t)(res->latency_s * 1000.0));
    store_bind_int(up, 12, res->tokens_in);
    store_bind_int(up, 13, res->tokens_out);
    store_bind_int(up, 14, now_unix_ms());
    if (store_step(up, err) < 0) goto fail;
    if (strcmp(status, "ok") == 0) {
        rc = store_prepare(c->env->store,
                           "UPDATE autointerp_samples SET prediction = ?7, probability = ?8 "
                           "WHERE run_id = ?1 AND seed = ?2 AND scorer = ?3 AND feature_idx = ?4 "
                           "AND prompt_no = ?5 AND position = ?6", &us, err);
        if (rc) goto fail;
        for (int i = 0; i < j->n; i++) {
            store_reset(us);
            store_bind_int(us, 1, c->run->id);
            store_bind_int(us, 2, c->seed);
            store_bind_text(us, 3, ai_scorer_name((enum ai_scorer)j->scorer));
            store_bind_int(us, 4, j->feature);
            store_bind_int(us, 5, j->prompt_no);
            store_bind_int(us, 6, i + 1);
            store_bind_double(us, 7, pred[i]);
            if (have_lp) store_bind_double(us, 8, prob[i]);
            else store_bind_null(us, 8);
            if (store_step(us, err) < 0) goto fail;
        }
    }
    store_finalize(up);
    store_finalize(us);
    up = us = NULL;
    rc = store_commit(c->env->store, err);
    goto out;
fail:
    rc = EV_EFAIL;
    store_rollback(c->env->store);
out:
    store_finalize(up);
    store_finalize(us);
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
    char                        *desc = NULL, src[256];
    struct latent_row            row = {.feature = li->feature, .n_fire = li->n_fire,
                                        .max = li->max, .tpl_hash = x->tpl_hash,
                                        .prompt = x->prompts[index]};
    snprintf(src, sizeof src, "explainer:%s", x->c->grader_name);
    if (res->status != GRADER_OK) {
        row.status = "explanation_failed";
        row.reason = res->error;
        x->n_failed++;
    } else if (parse_description(res->text, EXPLAIN_MAX_LEN, &desc) != PARSE_OK) {
        row.status = "explanation_unparsed";
        row.reason = "the explainer's answer holds no usable description";
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
                       struct store_stmt **ins, struct ev_err *err) {
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
        int done = prompt_answered(c, scorer, pl->feature, no, err);
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
        if ((rc = prompt_put(c, &j, err))) {
            free(text);
            break;
        }
        for (int i = 0; i < np && rc == EV_OK; i++) {
            const struct ai_window *x = &w[p0 + i];
            if (scorer == AI_SCORER_SIMULATION) {
                const int *tw = tokens + (size_t)x->seq * T + x->start;
                for (int t = 0; t < x->n && rc == EV_OK; t++) {
                    char *tt = token_text(tk, x->start + t > 0 ? tw[t - 1] : -1, tw[t]);
                    struct sample_row s = {scorer, pl->feature, sample_no++, no, t + 1,
                                           x->quantile, x->seq, x->start + t, 1,
                                           ai_kind_name((enum ai_kind)x->kind), tt, x->max,
                                           a[(size_t)x->seq * T + x->start + t]};
                    rc = sample_put(c, ins, &s, err);
                    free(tt);
                }
            } else {
                char *tt = window_text(tk, tokens, T, x, scorer == AI_SCORER_FUZZING ? x->marks
                                                                                     : 0);
                struct sample_row s = {scorer, pl->feature, sample_no++, no, i + 1, x->quantile,
                                       x->seq, x->start, x->n,
                                       ai_kind_name((enum ai_kind)x->kind), tt, x->max,
                                       x->label};
                rc = sample_put(c, ins, &s, err);
                free(tt);
            }
        }
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
    struct store_stmt *ins = NULL;
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
        if ((rc = latent_status(&c, lat[i].feature, &st, err))) goto out;
        struct latent_row row = {.feature = lat[i].feature, .n_fire = lat[i].n_fire,
                                 .max = lat[i].max};
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
            reqs[k] = (struct grader_request){tpl->explain->system, eprompts[k], 0, 0};
        ev_info("seed %lld: explaining %d latent%s", (long long)seed, n_e, n_e == 1 ? "" : "s");
        rc = grader_run_batch(g, reqs, n_e, explain_accept, expl_result, &x, err);
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
            char *expl = latent_explanation(&c, lat[i].feature);
            if (!expl) continue;
            rc = plan_scorer(&c, tk, corpus_tokens, T, acts->a + (size_t)i * NT, &plans[i], sc,
                             t, expl, &cap, &ins, err);
            free(expl);
            if (rc) goto out;
        }
        store_finalize(ins);
        ins = NULL;
        if ((rc = store_commit(env->store, err))) goto out;
        in_tx = 0;
        if (c.n_jobs > 0) {
            reqs = xcalloc((size_t)c.n_jobs, sizeof *reqs);
            for (int k = 0; k < c.n_jobs; k++)
                reqs[k] = (struct grader_request){t->system, c.jobs[k].prompt, 0, 0};
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
    store_finalize(ins);
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

