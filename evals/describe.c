/*
 * describe — feature examples from the index, marked contexts, and the explainer driver
 * (see describe.h).
 */
#include "evals/describe.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graders/explain.h"
#include "graders/grader.h"
#include "graders/parse.h"
#include "model/tok.h"
#include "store/grades.h"
#include "store/index.h"
#include "store/items.h"
#include "store/store.h"

// ---------------------------------------------------------------------------- examples

int describe_is_nonactivating(const struct describe_example *ex) {
    return strncmp(ex->kind, "non", 3) == 0 || !(ex->activation > 0);
}

void describe_examples_release(struct describe_examples *x) {
    for (int i = 0; i < x->n; i++) {
        free(x->ex[i].tokens);
        free(x->ex[i].acts);
    }
    free(x->ex);
    memset(x, 0, sizeof *x);
}

int describe_index_count(struct eval_env *e, int64_t *n, struct ev_err *err) {
    return index_count_windows(e->store, e->sae_id, n, err);
}

int describe_examples_load(struct eval_env *e, int feature, struct describe_examples *out,
                           struct ev_err *err) {
    struct describe_examples x = {0};
    struct index_windows     w;
    int                      rc, V = model_config(e->model)->vocab_size;
    memset(out, 0, sizeof *out);
    if ((rc = index_top_windows(e->store, e->sae_id, feature, &w, err)) != EV_OK) return rc;
    x.ex = xcalloc((size_t)(w.n > 0 ? w.n : 1), sizeof *x.ex);
    rc = EV_EFAIL;
    for (int i = 0; i < w.n; i++) {
        struct index_window     *iw = &w.w[i];
        struct describe_example *ex = &x.ex[x.n++];
        ex->id = iw->id;
        snprintf(ex->kind, sizeof ex->kind, "%s", iw->kind);
        ex->interval = iw->interval;
        ex->activation = iw->activation;
        ex->center = iw->center;
        ex->n = iw->n;
        ex->tokens = iw->tokens; /* moved */
        ex->acts = iw->acts;
        iw->tokens = NULL;
        iw->acts = NULL;
        if (ex->center < 0 || ex->center >= ex->n) {
            ev_fail(err, EV_EFAIL, "examples row %lld (feature %d): centre %d is outside its "
                                   "window of %d tokens", (long long)ex->id, feature, ex->center,
                    ex->n);
            goto out;
        }
        for (int t = 0; t < ex->n; t++) {
            if (ex->tokens[t] < 0 || ex->tokens[t] >= V) {
                ev_fail(err, EV_EFAIL, "examples row %lld (feature %d): token id %d is outside "
                                       "the model's vocabulary (0..%d); was the index built "
                                       "with another model?", (long long)ex->id, feature,
                        ex->tokens[t], V - 1);
                goto out;
            }
            if (!isfinite(ex->acts[t])) {
                ev_fail(err, EV_EFAIL, "examples row %lld (feature %d): non-finite activation "
                                       "at token %d", (long long)ex->id, feature, t);
                goto out;
            }
        }
        if (!describe_is_nonactivating(ex) && ex->activation > x.max_act)
            x.max_act = ex->activation;
    }
    /* the index's own statistics know the max over the whole corpus (issue 4: feature_stats);
     * a database without them keeps the largest stored example */
    struct index_stats fs;
    if (index_feature_stats(e->store, e->sae_id, feature, &fs, err) == 1 && fs.max_act > x.max_act)
        x.max_act = fs.max_act;
    *out = x;
    memset(&x, 0, sizeof x);
    rc = EV_OK;
out:
    index_windows_release(&w);
    describe_examples_release(&x);
    return rc;
}

char *describe_context(const struct tok *t, const struct describe_example *ex) {
    const char **pieces = xcalloc((size_t)ex->n, sizeof *pieces);
    int         *marked = xcalloc((size_t)ex->n, sizeof *marked);
    int          bos = tok_bos(t), eos = tok_eos(t);
    for (int i = 0; i < ex->n; i++) {
        int id = ex->tokens[i];
        pieces[i] = (id == bos || id == eos) ? "" : tok_piece(t, i > 0 ? ex->tokens[i - 1] : -1, id);
        marked[i] = ex->acts[i] > 0;
    }
    char *s = prompt_mark_tokens(pieces, marked, ex->n);
    free(pieces);
    free(marked);
    return s;
}

// ---------------------------------------------------------------------------- explainer

/* The examples shown to the explainer: the n_top strongest activating ones and n_sampled
 * drawn uniformly from the remaining activating ones; indices into x->ex, in *sel. */
static int pick_explainer_examples(const struct describe_examples *x, int feature, uint64_t seed,
                                   int n_top, int n_sampled, int *sel) {
    int  n = 0, n_rest = 0;
    int *rest = xcalloc((size_t)(x->n ? x->n : 1), sizeof *rest);
    for (int i = 0; i < x->n; i++) { /* x->ex is sorted by activation, strongest first */
        if (describe_is_nonactivating(&x->ex[i])) continue;
        if (n < n_top) sel[n++] = i;
        else rest[n_rest++] = i;
    }
    if (n_sampled > 0 && n_rest > 0) {
        struct rng r;
        rng_seed(&r, seed ^ (0x9e3779b97f4a7c15ULL * (uint64_t)(feature + 1)) ^ 0xe8a1a1ULL);
        rng_shuffle(&r, rest, (size_t)n_rest);
        int k = n_sampled < n_rest ? n_sampled : n_rest;
        /* shown strongest first, as the explainer template says */
        for (int a = 1; a < k; a++)
            for (int b = a; b > 0 && rest[b] < rest[b - 1]; b--) {
                int tmp = rest[b];
                rest[b] = rest[b - 1];
                rest[b - 1] = tmp;
            }
        for (int i = 0; i < k; i++) sel[n++] = rest[i];
    }
    free(rest);
    return n;
}

int describe_render_explainer(struct eval_env *e, const struct prompt *tpl, int feature,
                              uint64_t seed, int n_top, int n_sampled, char **out,
                              struct ev_err *err) {
    struct describe_examples x;
    const struct tok        *t = model_tokenizer(e->model);
    *out = NULL;
    int rc = describe_examples_load(e, feature, &x, err);
    if (rc != EV_OK) return rc;
    int  *sel = xcalloc((size_t)(n_top + n_sampled + 1), sizeof *sel);
    int   n = pick_explainer_examples(&x, feature, seed, n_top, n_sampled, sel);
    struct explain_example *ee = xcalloc((size_t)(n ? n : 1), sizeof *ee);
    const char            **pieces = NULL;
    size_t                  n_pieces = 0;
    for (int i = 0; i < n; i++) n_pieces += (size_t)x.ex[sel[i]].n;
    pieces = xcalloc(n_pieces ? n_pieces : 1, sizeof *pieces);
    size_t off = 0;
    int    bos = tok_bos(t), eos = tok_eos(t);
    for (int i = 0; i < n; i++) {
        const struct describe_example *ex = &x.ex[sel[i]];
        for (int k = 0; k < ex->n; k++) {
            int id = ex->tokens[k];
            pieces[off + (size_t)k] =
                (id == bos || id == eos) ? "" : tok_piece(t, k > 0 ? ex->tokens[k - 1] : -1, id);
        }
        ee[i] = (struct explain_example){pieces + off, ex->acts, ex->n, (float)ex->activation};
        off += (size_t)ex->n;
    }
    rc = n > 0 ? explain_render(tpl, ee, n, out, err) : EV_OK;
    free(pieces);
    free(ee);
    free(sel);
    describe_examples_release(&x);
    return rc;
}

struct explain_ud {
    struct eval_env       *e;
    const struct eval_run *run;   /* the run the descriptions are written in */
    int                    own;   /* an explain run: each answer is also a grade of it */
    const int             *feat;  /* feature of each request */
    const char            *source, *gname, *tpl_hash;
    struct describe_stats *st;
};

/* The explain run's record of one answer: a grade of the feature's item (score NULL; the
 * status says whether it gave a description), so that the run's provenance counts them. */
static int explain_grade(struct explain_ud *u, int index, const struct grader_result *res,
                         const char *status, struct ev_err *err) {
    if (!u->own) return EV_OK;
    char *key = xasprintf("explain:f%d", u->feat[index]);
    struct grade_row g = {.item_key = key, .feature = u->feat[index], .grader_kind = "llm",
                          .grader_name = u->gname, .score = -1, .parse_status = status,
                          .raw_answer = res->status == GRADER_OK ? res->text : res->error,
                          .template_hash = u->tpl_hash,
                          .latency_ms = (long)(res->latency_s * 1000.0),
                          .tokens_in = res->tokens_in, .tokens_out = res->tokens_out};
    int rc = eval_grade_put(u->e, u->run, &g, err);
    free(key);
    return rc;
}

static int explain_result(void *ud, int index, const struct grader_result *res,
                          struct ev_err *err) {
    struct explain_ud *u = ud;
    if (res->status != GRADER_OK) {
        u->st->failed++;
        ev_info("explain: feature %d: %s", u->feat[index], res->error);
        return explain_grade(u, index, res, "error", err);
    }
    char *desc = NULL, why[160];
    if (parse_description_why(res->text, EXPLAIN_MAX_LEN, &desc, why, sizeof why) != PARSE_OK) {
        u->st->unparsed++;
        ev_info("explain: feature %d: the explainer's answer holds no usable description (%s%s)",
                u->feat[index], why, res->attempt ? ", also when asked again" : "");
        return explain_grade(u, index, res, "unparsed", err);
    }
    /* a description is one line and never holds template delimiters */
    for (char *c = desc; *c; c++)
        if (*c == '\n' || *c == '\r' || *c == '\t') *c = ' ';
    char *safe = desc;
    while (strstr(safe, "{{") || strstr(safe, "}}")) {
        char *p = strstr(safe, "{{") ? strstr(safe, "{{") : strstr(safe, "}}");
        p[1] = ' ';
    }
    int rc = eval_description_set(u->e, u->feat[index], safe, u->source,
                                  u->run ? u->run->id : 0, err);
    free(desc);
    if (rc == EV_OK) rc = explain_grade(u, index, res, "ok", err);
    if (rc == EV_OK) u->st->written++;
    return rc;
}

/* An explain run's items: one per feature asked (kind 'explain', the prompt sent), in one
 * transaction, so that its grades have their items. */
static int explain_items(struct eval_env *e, const struct eval_run *run, const struct prompt *tpl,
                         const int *feat, char **texts, int m, struct ev_err *err) {
    int rc = store_begin(e->store, err);
    for (int i = 0; i < m && rc == EV_OK; i++) {
        char *key = xasprintf("explain:f%d", feat[i]);
        struct item_row it = {.key = key, .kind = "explain", .feature = feat[i], .interval = -1,
                              .activation = NAN, .template_name = tpl->name,
                              .template_hash = tpl->hash, .prompt = texts[i]};
        rc = eval_item_put(e, run, &it, err);
        free(key);
    }
    if (rc != EV_OK) {
        store_rollback(e->store);
        return rc;
    }
    return store_commit(e->store, err);
}

/* 1 when feature needs no request: it has a description (unless force), or (an explain run)
 * the run already holds an answer for it (an unparsed one is final for the run, as in
 * specificity; a failed request is asked again). */
static int explain_skip(struct eval_env *e, const struct eval_run *run, int own, int feature,
                        int force, struct ev_err *err) {
    if (!force) {
        char *d = eval_description_get(e, feature, NULL);
        int   has = d != NULL;
        free(d);
        if (has) return 1;
    }
    if (!own) return 0;
    char *key = xasprintf("explain:f%d", feature);
    int   r = eval_item_graded(e, run, key, "llm", err);
    free(key);
    return r;
}

int describe_explain(struct eval_env *e, const struct eval_run *run, int own, struct grader *g,
                     const struct prompt *tpl, const int *features, int n, int force,
                     uint64_t seed, int n_top, int n_sampled, struct describe_stats *st,
                     struct ev_err *err) {
    struct grader_request *reqs = xcalloc((size_t)(n ? n : 1), sizeof *reqs);
    char                 **texts = xcalloc((size_t)(n ? n : 1), sizeof *texts);
    int                   *feat = xcalloc((size_t)(n ? n : 1), sizeof *feat);
    int                    m = 0, rc = EV_OK;
    char                   gname[192], *source = NULL;
    struct prompt         *retry = NULL;
    struct sbuf            none; /* features with no activating example, for the note */
    memset(st, 0, sizeof *st);
    sbuf_init(&none);
    own = own && run;
    for (int i = 0; i < n; i++) {
        int skip = explain_skip(e, run, own, features[i], force, err);
        if (skip < 0) {
            rc = skip;
            goto out;
        }
        if (skip) continue;
        char *text = NULL;
        rc = describe_render_explainer(e, tpl, features[i], seed, n_top, n_sampled, &text, err);
        if (rc != EV_OK) goto out;
        if (!text) {
            if (st->no_examples < 10) sbuf_addf(&none, "%s%d", st->no_examples ? ", " : "",
                                                features[i]);
            st->no_examples++;
            continue;
        }
        texts[m] = text;
        feat[m] = features[i];
        reqs[m] = (struct grader_request){tpl->system, text, 0, 0, prompt_fixed_len(tpl)};
        m++;
    }
    st->asked = m;
    if (st->no_examples > 0)
        ev_info("explain: %d feature%s %s no activating example in the index, so no "
                "description (%s%s)", st->no_examples, st->no_examples == 1 ? "" : "s",
                st->no_examples == 1 ? "has" : "have", none.buf,
                st->no_examples > 10 ? ", ..." : "");
    if (m == 0) goto out;
    if (own && (rc = explain_items(e, run, tpl, feat, texts, m, err)) != EV_OK) goto out;
    /* an unusable answer is asked once more, with what was wrong (prompts/explainer_retry.txt) */
    if ((rc = prompt_load(NULL, "explainer_retry", &retry, err)) != EV_OK) goto out;
    grader_config_name(grader_config(g), gname, sizeof gname);
    source = xasprintf("explainer:%s", gname);
    struct explain_ud u = {e, run, own, feat, source, gname, tpl->hash, st};
    rc = grader_run_batch_reask(g, reqs, m, explain_accept_reask, retry, explain_result, &u, err);
out:
    prompt_free(retry);
    for (int i = 0; i < m; i++) free(texts[i]);
    free(texts);
    free(reqs);
    free(feat);
    free(source);
    sbuf_release(&none);
    return rc;
}

// ---------------------------------------------------------------------------- the evaluation

struct explain_state {
    struct eval_features feats;
    struct prompt       *xtpl;
    int                 *sel, n_sel; /* (feats.n) feature ids of this shard to explain */
    char                 fhash[65];
};

static int explain_check(struct eval_ctx *x, struct ev_err *err) {
    const struct explain_config *c = x->cfg;
    return eval_features_check(c->features_path, err);
}

static int explain_prepare(struct eval_ctx *x, struct ev_err *err) {
    const struct explain_config *c = x->cfg;
    struct explain_state        *s = xcalloc(1, sizeof *s);
    int                          rc;
    x->state = s;
    if ((rc = eval_features_open(x, c->features_path, &s->feats, s->fhash, err)) != EV_OK)
        return rc;
    return prompt_load(NULL, "explainer", &s->xtpl, err);
}

static int explain_configure(struct eval_ctx *x, cJSON *cfg, struct ev_err *err) {
    const struct explain_config *c = x->cfg;
    const struct explain_state  *s = x->state;
    (void)err;
    cJSON_AddStringToObject(cfg, "features_file_sha256", s->fhash);
    cJSON *ids = cJSON_CreateArray(); /* the ids, for the provenance (report, feature card) */
    for (int i = 0; i < s->feats.n; i++)
        cJSON_AddItemToArray(ids, cJSON_CreateNumber(s->feats.idx[i]));
    cJSON_AddItemToObject(cfg, "features", ids);
    cJSON_AddNumberToObject(cfg, "top", (double)c->top);
    cJSON_AddNumberToObject(cfg, "sampled", (double)c->sampled);
    cJSON_AddBoolToObject(cfg, "force", c->force);
    cJSON_AddStringToObject(cfg, "template_sha256", s->xtpl->hash);
    eval_config_add_grader(cfg, x->grader);
    return EV_OK;
}

/* This shard's features: a description given in the file is the user's (stored, and not
 * explained unless --force); the others are explained, with a grader. */
static int explain_work(struct eval_ctx *x, struct ev_err *err) {
    const struct explain_config *c = x->cfg;
    struct explain_state        *s = x->state;
    int                          rc;
    s->sel = xcalloc((size_t)(s->feats.n > 0 ? s->feats.n : 1), sizeof *s->sel);
    for (int i = 0; i < s->feats.n; i++) {
        if (!eval_in_shard(&x->run, i)) continue;
        if (s->feats.desc[i] && !c->force) {
            rc = eval_description_set(&x->env, s->feats.idx[i], s->feats.desc[i], "user",
                                      x->run.id, err);
            if (rc != EV_OK) return rc;
            continue;
        }
        s->sel[s->n_sel++] = s->feats.idx[i];
    }
    if (!x->grader) return EV_OK;
    struct describe_stats ds;
    /* --force re-explains only on the first pass: a resumed run keeps what it wrote */
    int redo = c->force && !x->run.resumed;
    rc = describe_explain(&x->env, &x->run, 1, x->grader, s->xtpl, s->sel, s->n_sel, redo,
                          (uint64_t)x->common->seed, (int)c->top, (int)c->sampled, &ds, err);
    if (rc != EV_OK) return rc;
    ev_info("explainer: %d asked, %d description%s written, %d unparsed, %d failed, %d "
            "without examples", ds.asked, ds.written, ds.written == 1 ? "" : "s", ds.unparsed,
            ds.failed, ds.no_examples);
    return EV_OK;
}

/* Without a grader: the explainer prompts of the features that need one, queued as items. */
static int explain_queue(struct eval_ctx *x, struct ev_err *err) {
    const struct explain_config *c = x->cfg;
    struct explain_state        *s = x->state;
    int                          queued = 0, rc;
    if ((rc = store_begin(x->env.store, err)) != EV_OK) return rc;
    for (int k = 0; k < s->n_sel; k++) {
        char *d = eval_description_get(&x->env, s->sel[k], NULL), *text = NULL;
        int   has = d != NULL;
        free(d);
        if (has && !c->force) continue;
        rc = describe_render_explainer(&x->env, s->xtpl, s->sel[k], (uint64_t)x->common->seed,
                                       (int)c->top, (int)c->sampled, &text, err);
        if (rc == EV_OK && text) {
            char *key = xasprintf("explain:f%d", s->sel[k]);
            struct item_row it = {.key = key, .kind = "explain", .feature = s->sel[k],
                                   .interval = -1, .activation = NAN,
                                   .template_name = s->xtpl->name,
                                   .template_hash = s->xtpl->hash, .prompt = text};
            rc = eval_item_put(&x->env, &x->run, &it, err);
            free(key);
            queued++;
        }
        free(text);
        if (rc != EV_OK) {
            store_rollback(x->env.store);
            return rc;
        }
    }
    if ((rc = store_commit(x->env.store, err)) != EV_OK) return rc;
    ev_info("%s", grader_not_configured_message());
    ev_info("%d explainer prompt%s queued in run %lld", queued, queued == 1 ? "" : "s",
            (long long)x->run.id);
    return EV_OK;
}

/* The run's answer for each feature without a description: why it has none. */
struct explain_why {
    int    n;
    int   *feature;
    char **line; /* "unparsed: REASON" / "failed: ERROR" */
};

static int explain_why_add(void *ud, int feature, const char *grader, const char *status,
                           const char *raw) {
    struct explain_why *w = ud;
    char                why[160] = "", *desc = NULL;
    (void)grader;
    if (strcmp(status, "ok") == 0) return EV_OK;
    if (strcmp(status, "unparsed") == 0)
        parse_description_why(raw ? raw : "", EXPLAIN_MAX_LEN, &desc, why, sizeof why);
    free(desc);
    w->feature = xrealloc(w->feature, sizeof *w->feature * (size_t)(w->n + 1));
    w->line = xrealloc(w->line, sizeof *w->line * (size_t)(w->n + 1));
    w->feature[w->n] = feature;
    w->line[w->n++] = strcmp(status, "unparsed") == 0
                          ? xasprintf("(none: the answer was unusable, also when asked again: %s)",
                                      why)
                          : xasprintf("(none: the request failed: %.120s)", raw ? raw : "");
    return EV_OK;
}

static const char *explain_why_of(const struct explain_why *w, int feature) {
    for (int i = 0; i < w->n; i++)
        if (w->feature[i] == feature) return w->line[i];
    return NULL;
}

/* the table, and --out */
static int explain_report(struct eval_ctx *x, struct ev_err *err) {
    const struct explain_config *c = x->cfg;
    struct explain_state        *s = x->state;
    char                       **descs = xcalloc((size_t)(s->feats.n > 0 ? s->feats.n : 1),
                                                 sizeof *descs);
    struct explain_why           w = {0, NULL, NULL};
    int                          rc = grades_answers_each(x->env.store, x->run.id,
                                                          explain_why_add, &w, err);
    printf("%-8s %-28s %s\n", "feature", "source", "description");
    for (int i = 0; i < s->feats.n && rc == EV_OK; i++) {
        char       *src = NULL;
        const char *why = NULL;
        descs[i] = eval_description_get(&x->env, s->feats.idx[i], &src);
        if (!descs[i]) why = explain_why_of(&w, s->feats.idx[i]);
        if (eval_in_shard(&x->run, i))
            printf("%-8d %-28s %s\n", s->feats.idx[i],
                   src ? src : why ? (strstr(why, "failed") ? "failed" : "unparsed") : "-",
                   descs[i] ? descs[i] : why ? why : "(none)");
        free(src);
    }
    for (int i = 0; i < w.n; i++) free(w.line[i]);
    free(w.line);
    free(w.feature);
    if (rc == EV_OK && c->out_path)
        rc = eval_features_write(c->out_path, s->feats.idx, descs, s->feats.n, err);
    for (int i = 0; i < s->feats.n; i++) free(descs[i]);
    free(descs);
    return rc;
}

static void explain_release(struct eval_ctx *x) {
    struct explain_state *s = x->state;
    if (!s) return;
    eval_features_release(&s->feats);
    prompt_free(s->xtpl);
    free(s->sel);
    free(s);
    x->state = NULL;
}

const struct eval_kind explain_kind = {
    .name = "explain",
    .flags = EVAL_GRADER_USAGE | EVAL_GRADER_SUMMARY,
    .check = explain_check,
    .prepare = explain_prepare,
    .configure = explain_configure,
    .work = explain_work,
    .queue = explain_queue,
    .report = explain_report,
    .release = explain_release,
};
