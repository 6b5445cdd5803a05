/*
 * specificity — contexts per activation interval, graded 0–3 against the description
 * (see specificity.h).
 */
#include "evals/specificity.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "base/progress.h"
#include "evals/controls.h"
#include "store/grades.h"
#include "store/items.h"

int spec_interval_of(double a, double max, int K) {
    if (!(a > 0) || !(max > 0) || K < 1) return -1;
    /* (j·max/K, (j+1)·max/K] -> j: ceil(a/max·K) - 1 */
    double q = a / max * (double)K;
    int    j = (int)ceil(q) - 1;
    if (j < 0) j = 0;
    if (j > K - 1) j = K - 1;
    return j;
}

static int same_window(const struct describe_example *a, const struct describe_example *b) {
    return a->n == b->n && a->center == b->center &&
           memcmp(a->tokens, b->tokens, sizeof *a->tokens * (size_t)a->n) == 0;
}

/* Chooses min(want, n) of cand[0..n) uniformly without replacement (partial Fisher-Yates);
 * appends them to out with the interval. */
static int choose(struct rng *r, int *cand, int n, int want, int interval, struct spec_pick *out) {
    int k = want < n ? want : n;
    for (int i = 0; i < k; i++) {
        int j = i + (int)rng_below(r, (uint64_t)(n - i));
        int t = cand[i];
        cand[i] = cand[j];
        cand[j] = t;
        out[i] = (struct spec_pick){cand[i], interval};
    }
    return k;
}

int spec_pick_examples(const struct describe_examples *x, int feature,
                       const struct spec_params *p, struct spec_pick *out) {
    int  K = p->intervals, N = p->per_interval, n_out = 0;
    int *cand = xcalloc((size_t)(x->n ? x->n : 1), sizeof *cand);
    int *bin = xcalloc((size_t)(x->n ? x->n : 1), sizeof *bin);
    struct rng r;
    rng_seed(&r, p->seed ^ (0x9e3779b97f4a7c15ULL * (uint64_t)(feature + 1)));
    /* the interval of every distinct activating window; -2 marks a duplicate or a
     * non-activating example */
    for (int i = 0; i < x->n; i++) {
        bin[i] = -2;
        if (describe_is_nonactivating(&x->ex[i])) continue;
        int dup = 0;
        for (int k = 0; k < i && !dup; k++)
            dup = bin[k] >= 0 && same_window(&x->ex[i], &x->ex[k]);
        if (!dup) bin[i] = spec_interval_of(x->ex[i].activation, x->max_act, K);
    }
    for (int j = 0; j < K; j++) {
        int n = 0;
        for (int i = 0; i < x->n; i++)
            if (bin[i] == j) cand[n++] = i;
        n_out += choose(&r, cand, n, N, j, out + n_out);
    }
    int n = 0;
    for (int i = 0; i < x->n; i++) {
        if (!describe_is_nonactivating(&x->ex[i])) continue;
        int dup = 0;
        for (int k = 0; k < n && !dup; k++) dup = same_window(&x->ex[i], &x->ex[cand[k]]);
        if (!dup) cand[n++] = i;
    }
    n_out += choose(&r, cand, n, N, -1, out + n_out);
    free(cand);
    free(bin);
    return n_out;
}

static int count_feature_items(struct eval_env *e, const struct eval_run *run, int feature,
                               int *n, struct ev_err *err) {
    return items_count_feature(e->store, run->id, "specificity", feature, n, err);
}

int spec_plan_feature(struct eval_env *e, const struct eval_run *run, const struct prompt *tpl,
                      int feature, const char *description, const struct spec_params *p,
                      int *n_items, struct ev_err *err) {
    struct describe_examples x = {0};
    struct spec_pick        *picks = NULL;
    char                    *desc = NULL;
    int                      in_tx = 0, n = 0;
    int rc = count_feature_items(e, run, feature, n_items, err);
    if (rc != EV_OK || *n_items > 0) return rc;
    if ((rc = describe_examples_load(e, feature, &x, err)) != EV_OK) goto out;
    picks = xcalloc((size_t)(p->intervals + 1) * (size_t)p->per_interval, sizeof *picks);
    n = spec_pick_examples(&x, feature, p, picks);
    desc = prompt_escape_untrusted(description);
    if ((rc = store_begin(e->store, err)) != EV_OK) goto out;
    in_tx = 1;
    for (int i = 0; i < n; i++) {
        const struct describe_example *ex = &x.ex[picks[i].ex];
        char *ctx = describe_context(model_tokenizer(e->model), ex);
        char *text = NULL, *key, *payload;
        struct prompt_var vars[2] = {{"description", desc}, {"context", ctx}};
        rc = prompt_render(tpl, vars, 2, &text, err);
        if (rc != EV_OK) {
            free(ctx);
            goto out;
        }
        int nonact = picks[i].interval < 0;
        if (nonact) key = xasprintf("f%d:n:e%lld", feature, (long long)ex->id);
        else key = xasprintf("f%d:i%d:e%lld", feature, picks[i].interval, (long long)ex->id);
        cJSON *pj = cJSON_CreateObject();
        cJSON_AddStringToObject(pj, "context", ctx);
        cJSON_AddStringToObject(pj, "example_kind", ex->kind);
        if (ex->interval >= 0) cJSON_AddNumberToObject(pj, "index_interval", ex->interval);
        cJSON_AddNumberToObject(pj, "center", ex->center);
        cJSON_AddNumberToObject(pj, "max_activation", x.max_act);
        cJSON_AddNumberToObject(pj, "intervals", p->intervals);
        payload = json_print(pj);
        json_free(pj);
        struct item_row it = {
            .key = key,
            .kind = nonact ? "nonactivating" : "interval",
            .feature = feature,
            .example_id = ex->id,
            .interval = picks[i].interval,
            .activation = ex->activation,
            .template_name = tpl->name,
            .template_hash = tpl->hash,
            .prompt = text,
            .payload_json = payload,
        };
        rc = eval_item_put(e, run, &it, err);
        free(payload);
        free(key);
        free(text);
        free(ctx);
        if (rc != EV_OK) goto out;
    }
    if ((rc = store_commit(e->store, err)) != EV_OK) goto out;
    in_tx = 0;
    *n_items = n;
out:
    if (in_tx) store_rollback(e->store);
    free(desc);
    free(picks);
    describe_examples_release(&x);
    return rc;
}

// ---------------------------------------------------------------------------- report

struct acc {
    double sum[SPEC_MAX_INTERVALS + 1]; /* slot K: non-activating */
    int    n[SPEC_MAX_INTERVALS + 1];
    int    items, graded, threes, act_graded, unparsed, skipped, failed, pending;
    double act_sum;
    double act_sq, non_sq; /* sums of squared scores, for the confidence intervals */
};

static void acc_add(struct acc *a, int K, int interval, int has_grade, int score,
                    const char *status) {
    int slot = interval < 0 || interval >= K ? K : interval;
    a->items++;
    if (!has_grade) {
        a->pending++;
        return;
    }
    if (strcmp(status, "error") == 0) {
        a->failed++;
        a->pending++;
        return;
    }
    if (strcmp(status, "skipped") == 0) { /* a rater's skip is no parse failure */
        a->skipped++;
        return;
    }
    if (strcmp(status, "ok") != 0 || score < 0) {
        a->unparsed++;
        return;
    }
    a->graded++;
    a->sum[slot] += score;
    a->n[slot]++;
    if (slot == K) a->non_sq += (double)score * score;
    if (slot < K) {
        a->act_graded++;
        a->act_sum += score;
        a->act_sq += (double)score * score;
        if (score == 3) a->threes++;
    }
}

static void print_mean(FILE *out, double sum, int n, int width) {
    if (n > 0) fprintf(out, " %*.2f", width, sum / n);
    else fprintf(out, " %*s", width, "-");
}

static void acc_print(FILE *out, const char *label, const struct acc *a, int K) {
    fprintf(out, "%-8s %5d", label, a->items);
    for (int j = 0; j < K; j++) print_mean(out, a->sum[j], a->n[j], 5);
    fprintf(out, " |");
    print_mean(out, a->act_sum, a->act_graded, 5);
    if (a->act_graded > 0) fprintf(out, " %6.1f%%", 100.0 * a->threes / a->act_graded);
    else fprintf(out, " %7s", "-");
    print_mean(out, a->sum[K], a->n[K], 6);
    fprintf(out, " %8d %7d %7d\n", a->unparsed, a->skipped, a->pending);
}

/* "mean 2.10 ± 0.08 (95% CI, n 393)": the normal approximation, sd with n - 1. */
static void print_ci(FILE *out, const char *label, double sum, double sq, int n) {
    if (n < 1) return;
    double mean = sum / n, var = n > 1 ? (sq - n * mean * mean) / (n - 1) : 0;
    double half = 1.96 * sqrt(var > 0 ? var : 0) / sqrt((double)n);
    fprintf(out, "%s mean %.2f ± %.2f (95%% CI, n %d)\n", label, mean, half, n);
}

struct report_ctx {
    FILE      *out;
    int        K, cur_feature, n_features;
    struct acc all, cur;
};

static int report_row(void *ctx, const struct items_graded_row *row) {
    struct report_ctx *c = ctx;
    if (row->feature != c->cur_feature) {
        if (c->cur_feature >= 0) {
            char lab[16];
            snprintf(lab, sizeof lab, "%d", c->cur_feature);
            acc_print(c->out, lab, &c->cur, c->K);
        }
        memset(&c->cur, 0, sizeof c->cur);
        c->cur_feature = row->feature;
        c->n_features++;
    }
    acc_add(&c->cur, c->K, row->interval, row->graded, row->score, row->parse_status);
    acc_add(&c->all, c->K, row->interval, row->graded, row->score, row->parse_status);
    return EV_OK;
}

int spec_report(struct eval_env *e, const struct eval_run *run, int K, FILE *out,
                struct ev_err *err) {
    char kind[8] = "llm";
    int  has_llm, has_human;
    if (K < 1 || K > SPEC_MAX_INTERVALS)
        return ev_fail(err, EV_EFAIL, "specificity report: %d intervals (1..%d)", K,
                       SPEC_MAX_INTERVALS);
    /* LLM grades when the run has any, else the human raters' */
    int rc = grades_kinds(e->store, run->id, &has_llm, &has_human, err);
    if (rc != EV_OK) return rc;
    if (!has_llm && has_human) snprintf(kind, sizeof kind, "human");
    struct report_ctx c = {.out = out, .K = K, .cur_feature = -1};
    fprintf(out, "specificity, run %lld: mean %s score (0-3) per activation interval, "
                 "1 = lowest 1/%d of (0, max], %d = highest\n\n", (long long)run->id, kind, K, K);
    fprintf(out, "%-8s %5s", "feature", "items");
    for (int j = 0; j < K; j++) fprintf(out, " %5d", j + 1);
    fprintf(out, " | %5s %7s %6s %8s %7s %7s\n", "act", "share3", "nonact", "unparsed", "skipped",
            "pending");
    if ((rc = items_graded(e->store, run->id, "specificity", kind, ITEMS_BY_FEATURE, report_row,
                           &c, err)) != EV_OK)
        return rc;
    int        cur_feature = c.cur_feature, n_features = c.n_features;
    struct acc all = c.all, cur = c.cur;
    if (cur_feature >= 0) {
        char lab[16];
        snprintf(lab, sizeof lab, "%d", cur_feature);
        acc_print(out, lab, &cur, K);
    }
    acc_print(out, "overall", &all, K);
    fprintf(out, "%-8s %5s", "n", "");
    for (int j = 0; j < K; j++) fprintf(out, " %5d", all.n[j]);
    fprintf(out, " | %5d %7s %6d\n\n", all.act_graded, "", all.n[K]);
    print_ci(out, "activating contexts", all.act_sum, all.act_sq, all.act_graded);
    print_ci(out, "non-activating     ", all.sum[K], all.non_sq, all.n[K]);
    fprintf(out, "\n%d feature%s, %d items: %d graded, %d unparsed, %d skipped, %d pending (%d "
                 "failed requests)\n", n_features, n_features == 1 ? "" : "s", all.items,
            all.graded, all.unparsed, all.skipped, all.pending, all.failed);
    return EV_OK;
}

// ---------------------------------------------------------------------------- the evaluation

struct spec_state {
    struct eval_features feats;
    struct prompt       *tpl, *xtpl;
    int                  n_use;           /* the file's first n_use features are evaluated */
    int                 *sel, n_sel;      /* (n_use) indices into feats of this shard */
    int                 *missing, n_missing; /* (n_use) feature ids with no description */
    char                 fhash[65];
};

static int spec_check(struct eval_ctx *x, struct ev_err *err) {
    const struct spec_config *c = x->cfg;
    return eval_features_check(c->features_path, err);
}

/* this shard's features, and those with no description anywhere */
static void select_features(struct eval_ctx *x, struct spec_state *s) {
    struct eval_run probe = {.shard_k = x->common->shard_k, .shard_n = x->common->shard_n};
    s->sel = xcalloc((size_t)(s->n_use > 0 ? s->n_use : 1), sizeof *s->sel);
    s->missing = xcalloc((size_t)(s->n_use > 0 ? s->n_use : 1), sizeof *s->missing);
    for (int i = 0; i < s->n_use; i++) {
        if (!eval_in_shard(&probe, i)) continue;
        s->sel[s->n_sel++] = i;
        if (!s->feats.desc[i]) {
            char *d = eval_description_get(&x->env, s->feats.idx[i], NULL);
            if (!d) s->missing[s->n_missing++] = s->feats.idx[i];
            free(d);
        }
    }
}

static int no_explain_error(const struct spec_config *c, const struct spec_state *s,
                            struct ev_err *err) {
    struct sbuf sb;
    sbuf_init(&sb);
    for (int i = 0; i < s->n_missing && i < 20; i++)
        sbuf_addf(&sb, "%s%d", i ? ", " : "", s->missing[i]);
    if (s->n_missing > 20) sbuf_addf(&sb, ", ... (%d in all)", s->n_missing);
    int rc = ev_fail(err, EV_EFAIL, "%s: feature%s %s %s no description (none in the file, none "
                                    "stored) and --no-explain was given: add ID<TAB>description "
                                    "lines, or run 'evalrun explain --features %s'",
                     c->features_path, s->n_missing == 1 ? "" : "s", sb.buf,
                     s->n_missing == 1 ? "has" : "have", c->features_path);
    sbuf_release(&sb);
    return rc;
}

static int spec_prepare(struct eval_ctx *x, struct ev_err *err) {
    const struct spec_config *c = x->cfg;
    struct spec_state        *s = xcalloc(1, sizeof *s);
    int                       rc;
    x->state = s;
    if ((rc = eval_features_open(x, c->features_path, &s->feats, s->fhash, err)) != EV_OK)
        return rc;
    if ((rc = prompt_load(NULL, "specificity", &s->tpl, err)) != EV_OK) return rc;
    if ((rc = prompt_load(NULL, "explainer", &s->xtpl, err)) != EV_OK) return rc;
    s->n_use = c->limit > 0 && c->limit < s->feats.n ? (int)c->limit : s->feats.n;
    const struct eval_control *ctl = x->common->control;
    if (ctl && ctl->kind == EVAL_CONTROL_RANDOM_SAE) /* the file describes the SAE's features */
        for (int i = 0; i < s->feats.n; i++) {
            free(s->feats.desc[i]);
            s->feats.desc[i] = NULL;
        }
    select_features(x, s);
    if (s->n_missing > 0 && c->no_explain) return no_explain_error(c, s, err);
    return EV_OK;
}

static int spec_configure(struct eval_ctx *x, cJSON *cfg, struct ev_err *err) {
    const struct spec_config *c = x->cfg;
    const struct spec_state  *s = x->state;
    (void)err;
    cJSON_AddStringToObject(cfg, "features_file_sha256", s->fhash);
    cJSON *ids = cJSON_CreateArray();
    for (int i = 0; i < s->n_use; i++)
        cJSON_AddItemToArray(ids, cJSON_CreateNumber(s->feats.idx[i]));
    cJSON_AddItemToObject(cfg, "features", ids);
    cJSON_AddNumberToObject(cfg, "per_interval", (double)c->per_interval);
    cJSON_AddNumberToObject(cfg, "intervals", (double)c->intervals);
    cJSON_AddNumberToObject(cfg, "limit", (double)c->limit);
    cJSON_AddStringToObject(cfg, "template_sha256", s->tpl->hash);
    cJSON_AddStringToObject(cfg, "explainer_template_sha256", s->xtpl->hash);
    eval_config_add_grader(cfg, x->grader);
    return EV_OK;
}

/* descriptions: the file's are stored as the user's; the missing ones are explained */
static int store_descriptions(struct eval_ctx *x, struct spec_state *s, struct ev_err *err) {
    int rc;
    for (int k = 0; k < s->n_sel; k++) {
        int i = s->sel[k];
        if (s->feats.desc[i] &&
            (rc = eval_description_set(&x->env, s->feats.idx[i], s->feats.desc[i], "user",
                                       x->run.id, err)) != EV_OK)
            return rc;
    }
    if (s->n_missing == 0 || !x->grader) return EV_OK;
    struct describe_stats ds;
    ev_info("explaining %d feature%s without a description", s->n_missing,
            s->n_missing == 1 ? "" : "s");
    rc = describe_explain(&x->env, &x->run, 0, x->grader, s->xtpl, s->missing, s->n_missing, 0,
                          (uint64_t)x->common->seed, 10, 5, &ds, err);
    if (rc != EV_OK) return rc;
    ev_info("explainer: %d description%s written, %d unparsed, %d failed", ds.written,
            ds.written == 1 ? "" : "s", ds.unparsed, ds.failed);
    return EV_OK;
}

/* The shuffled control (evals/controls.h): the description of feature i (of the n_use) is
 * that of feature perm[i], a derangement of the features that have one (over all n_use, so
 * that every shard deals the same). (n_use) entries, NULL for a feature without one. */
static int shuffled_descriptions(struct eval_ctx *x, struct spec_state *s, uint64_t seed,
                                 char ***out, struct ev_err *err) {
    char **d = xcalloc((size_t)s->n_use + 1, sizeof *d), **o = xcalloc((size_t)s->n_use + 1, sizeof *o);
    int   *have = xcalloc((size_t)s->n_use + 1, sizeof *have), n = 0;
    for (int i = 0; i < s->n_use; i++) {
        d[i] = s->feats.desc[i] ? xstrdup(s->feats.desc[i])
                                : eval_description_get(&x->env, s->feats.idx[i], NULL);
        if (d[i]) have[n++] = i;
    }
    int *perm = xcalloc((size_t)n + 1, sizeof *perm), rc = EV_OK;
    eval_control_derangement(perm, n, seed);
    for (int j = 0; j < n; j++) o[have[j]] = xstrdup(d[have[perm[j]]]);
    if (n < 2)
        rc = ev_fail(err, EV_EFAIL, "--control shuffled: %d feature%s of %s %s a description; "
                                    "shuffling needs at least 2", n, n == 1 ? "" : "s",
                     ((const struct spec_config *)x->cfg)->features_path, n == 1 ? "has" : "have");
    for (int i = 0; i < s->n_use; i++) free(d[i]);
    free(d);
    free(have);
    free(perm);
    *out = o;
    return rc;
}

static void free_descriptions(char **d, int n) {
    for (int i = 0; d && i < n; i++) free(d[i]);
    free(d);
}

/* plan: one transaction per feature */
static int spec_work(struct eval_ctx *x, struct ev_err *err) {
    const struct spec_config  *c = x->cfg;
    struct spec_state         *s = x->state;
    const struct eval_control *ctl = x->common->control;
    struct spec_params sp = {(int)c->per_interval, (int)c->intervals, (uint64_t)x->common->seed};
    struct progress    bar;
    char             **shuf = NULL;
    int                rc;
    if (ctl && ctl->kind == EVAL_CONTROL_SHUFFLED) /* descriptions as the run stored them */
        rc = shuffled_descriptions(x, s, ctl->seed, &shuf, err);
    else rc = store_descriptions(x, s, err);
    if (rc != EV_OK) {
        free_descriptions(shuf, s->n_use);
        return rc;
    }
    progress_init(&bar, "plan", s->n_sel);
    for (int k = 0; k < s->n_sel; k++) {
        int   i = s->sel[k], fi = s->feats.idx[i], n_items = 0;
        char *d = shuf ? (shuf[i] ? xstrdup(shuf[i]) : NULL)
                  : s->feats.desc[i] ? xstrdup(s->feats.desc[i])
                                     : eval_description_get(&x->env, fi, NULL);
        if (ev_interrupted()) {
            free(d);
            rc = ev_fail(err, EV_EINTR, "interrupted");
            break;
        }
        if (!d) {
            ev_info("feature %d: no description (%s), skipped", fi,
                    x->grader ? "the explainer gave none" : "no grader to write one");
            progress_tick(&bar, 1);
            continue;
        }
        rc = spec_plan_feature(&x->env, &x->run, s->tpl, fi, d, &sp, &n_items, err);
        free(d);
        if (rc != EV_OK) break;
        if (n_items == 0) ev_info("feature %d has no example in the index: nothing to grade", fi);
        progress_tick(&bar, 1);
    }
    if (rc == EV_OK) progress_finish(&bar);
    free_descriptions(shuf, s->n_use);
    return rc;
}

static int spec_item_grading(struct eval_ctx *x, struct eval_item_grading *ig) {
    const struct spec_state *s = x->state;
    *ig = (struct eval_item_grading){s->tpl, ITEMGRADE_SCORE, 0, 3};
    return 1;
}

static int spec_print(struct eval_ctx *x, struct ev_err *err) {
    const struct spec_config *c = x->cfg;
    return spec_report(&x->env, &x->run, (int)c->intervals, stdout, err);
}

static void spec_release(struct eval_ctx *x) {
    struct spec_state *s = x->state;
    if (!s) return;
    eval_features_release(&s->feats);
    prompt_free(s->tpl);
    prompt_free(s->xtpl);
    free(s->sel);
    free(s->missing);
    free(s);
    x->state = NULL;
}

const struct eval_kind spec_kind = {
    .name = "specificity",
    .flags = EVAL_GRADER_USAGE | EVAL_GRADER_SUMMARY | EVAL_CONTROL_RANDOM | EVAL_CONTROL_SHUF,
    .check = spec_check,
    .prepare = spec_prepare,
    .configure = spec_configure,
    .work = spec_work,
    .item_grading = spec_item_grading,
    .report = spec_print,
    .release = spec_release,
};
