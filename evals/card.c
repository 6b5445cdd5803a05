/*
 * card — the feature card: built once from the database and the weights, rendered as terminal
 * text, Markdown or JSON (see card.h).
 */
#include "evals/card.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sae/acts.h"
#include "evals/describe.h"
#include "evals/report.h"
#include "base/json.h"
#include "base/utf8.h"
#include "sae/sae_analysis.h"
#include "store/autointerp.h"
#include "store/features.h"
#include "store/grades.h"
#include "store/index.h"
#include "store/runinfo.h"
#include "store/runs.h"
#include "store/store.h"
#include "model/model.h"
#include "model/tok.h"

struct card_opts card_default_opts(void) {
    return (struct card_opts){.n_top = 5, .n_logits = 8, .n_neighbors = 8,
                              .neuron_tokens = 4096, .seed = 0};
}

// ---------------------------------------------------------------------------- release

static void context_release(struct card_context *x) {
    for (int i = 0; i < x->n; i++) free(x->pieces[i]);
    free(x->pieces);
    free(x->acts);
}

void card_release(struct card *c) {
    if (!c) return;
    free(c->sae_path);
    free(c->model_path);
    free(c->index_corpus);
    free(c->index_corpus_hash);
    free(c->index_seed);
    free(c->index_date);
    for (int i = 0; i < c->n_runs; i++) {
        struct card_run *r = &c->runs[i];
        free(r->kind), free(r->grader), free(r->template), free(r->seed), free(r->date);
    }
    free(c->runs);
    for (int i = 0; i < c->n_desc; i++) {
        free(c->desc[i].text);
        free(c->desc[i].source);
    }
    free(c->desc);
    for (int i = 0; i < c->n_scores; i++) {
        free(c->scores[i].kind);
        free(c->scores[i].items);
        free(c->scores[i].grader);
    }
    free(c->scores);
    for (int i = 0; i < c->n_top; i++) context_release(&c->top[i]);
    free(c->top);
    for (int i = 0; i < c->n_intervals; i++) context_release(&c->intervals[i]);
    free(c->intervals);
    for (int i = 0; i < c->n_logits; i++) {
        if (c->logit_top) free(c->logit_top[i].text);
        if (c->logit_bottom) free(c->logit_bottom[i].text);
    }
    free(c->logit_top);
    free(c->logit_bottom);
    for (int i = 0; i < c->n_neighbors; i++) free(c->neighbors[i].description);
    free(c->neighbors);
    for (int i = 0; i < c->n_categories; i++) free(c->categories[i]);
    free(c->categories);
    memset(c, 0, sizeof *c);
}

// ---------------------------------------------------------------------------- build

static unsigned cp_at(const unsigned char *p, int *len);

static char *dup_or_null(const char *s) { return s ? xstrdup(s) : NULL; }

static void add_desc(struct card *c, const char *text, const char *source, int64_t run_id) {
    c->desc = xrealloc(c->desc, sizeof *c->desc * (size_t)(c->n_desc + 1));
    c->desc[c->n_desc++] = (struct card_desc){xstrdup(text), dup_or_null(source), run_id};
}

static void add_score(struct card *c, const struct card_score *sc) {
    c->scores = xrealloc(c->scores, sizeof *c->scores * (size_t)(c->n_scores + 1));
    struct card_score *d = &c->scores[c->n_scores++];
    *d = *sc;
    d->kind = xstrdup(sc->kind);
    d->items = xstrdup(sc->items);
    d->grader = dup_or_null(sc->grader);
}

/* What an item kind's grades score, for a reader. */
static const char *items_label(const char *kind) {
    static const struct {
        const char *kind, *label;
    } L[] = {{"interval", "activating contexts"}, {"nonactivating", "non-activating contexts"},
             {"influence_concept", "steered texts, concept"},
             {"influence_fluency", "steered texts, fluency"}, {"concept", "concepts (yes = 1)"}};
    for (size_t i = 0; i < sizeof L / sizeof L[0]; i++)
        if (strcmp(kind, L[i].kind) == 0) return L[i].label;
    return *kind ? kind : "items";
}

static int add_explanation(void *ctx, int64_t run_id, const char *explanation,
                           const char *source) {
    char *label = xasprintf("autointerp run %lld (%s)", (long long)run_id,
                            source ? source : "explainer");
    add_desc(ctx, explanation, label, run_id);
    free(label);
    return EV_OK;
}

/* The current description, with the run that wrote it (migration 018): its source reads
 * "explainer:openai:mock, explain run 5", and the run's provenance joins the card's. */
static int load_descriptions(struct eval_env *e, struct card *c, struct ev_err *err) {
    char *src = NULL, *d = eval_description_get(e, c->feature, &src);
    if (d) {
        int64_t run = features_description_run(e->store, e->sae_id, c->feature);
        char   *kind = NULL, *label = NULL;
        int64_t sae = 0;
        struct ev_err e2;
        if (run > 0 && runs_kind(e->store, run, &kind, &sae, &e2) != EV_OK) run = 0;
        label = run > 0 ? xasprintf("%s, %s run %lld", src ? src : "unknown", kind,
                                    (long long)run)
                        : xstrdup(src ? src : "unknown");
        add_desc(c, d, label, run);
        free(label);
        free(kind);
    }
    free(d);
    free(src);
    return autointerp_explanations_of(e->store, e->sae_id, c->feature, add_explanation, c, err);
}

static int add_grade_mean(void *ctx, const struct grades_feature_mean *m) {
    struct card_score sc = {(char *)m->run_kind, (char *)items_label(m->item_kind), m->run_id,
                            (char *)m->grader_name, m->n, m->mean,
                            m->n >= 2 ? 1.96 * m->sd / sqrt((double)m->n) : (double)NAN,
                            m->n_unparsed, m->n_skipped};
    add_score(ctx, &sc);
    return EV_OK;
}

static int add_accuracy(void *ctx, const char *scorer, int64_t run_id, int n, double acc,
                        int n_unparsed) {
    char             *kind = xasprintf("autointerp:%s", scorer);
    struct card_score sc = {kind, (char *)"windows judged correctly", run_id, NULL, n, acc,
                            n >= 2 ? 1.96 * sqrt(acc * (1 - acc) / n) : (double)NAN,
                            n_unparsed, 0};
    add_score(ctx, &sc);
    free(kind);
    return EV_OK;
}

static int load_scores(struct eval_env *e, struct card *c, struct ev_err *err) {
    int rc = grades_feature_means(e->store, e->sae_id, c->feature, add_grade_mean, c, err);
    if (rc != EV_OK) return rc;
    /* autointerp: the accuracy of the binary scorers' answers */
    return autointerp_accuracy_of(e->store, e->sae_id, c->feature, add_accuracy, c, err);
}

static int load_stats(struct eval_env *e, struct card *c, struct ev_err *err) {
    struct index_stats fs;
    int rc = index_feature_stats(e->store, e->sae_id, c->feature, &fs, err);
    if (rc < 0) return rc;
    c->has_stats = rc;
    c->n_tokens = fs.n_tokens;
    c->fire_count = fs.fire_count;
    c->density = fs.density;
    c->max_act = fs.max_act;
    c->mean_act = fs.mean_act;
    c->q10 = fs.q10;
    c->q50 = fs.q50;
    c->q90 = fs.q90;
    c->q99 = fs.q99;
    return EV_OK;
}

static void context_from(const struct tok *tk, const struct describe_example *ex,
                         struct card_context *x) {
    int bos = tok_bos(tk), eos = tok_eos(tk);
    x->example_id = ex->id;
    snprintf(x->kind, sizeof x->kind, "%s", ex->kind);
    x->interval = ex->interval;
    x->activation = ex->activation;
    x->center = ex->center;
    x->n = ex->n;
    x->pieces = xcalloc((size_t)ex->n, sizeof *x->pieces);
    x->acts = xmalloc(sizeof *x->acts * (size_t)ex->n);
    for (int k = 0; k < ex->n; k++) {
        int id = ex->tokens[k];
        int         prev = k > 0 ? ex->tokens[k - 1] : -1;
        const char *p = (id == bos || id == eos) ? "" : tok_piece(tk, prev, id);
        x->pieces[k] = xstrdup(p ? p : "");
        x->acts[k] = ex->acts[k];
    }
}

static int load_examples(struct eval_env *e, struct card *c, int n_top, struct ev_err *err) {
    struct describe_examples x;
    const struct tok        *tk = model_tokenizer(e->model);
    int rc = describe_examples_load(e, c->feature, &x, err);
    if (rc != EV_OK) return rc;
    /* histogram of every non-zero activation in the stored windows */
    c->hist_max = c->has_stats && c->max_act > 0 ? c->max_act : 0;
    for (int i = 0; i < x.n; i++)
        for (int k = 0; k < x.ex[i].n; k++)
            if ((double)x.ex[i].acts[k] > c->hist_max) c->hist_max = (double)x.ex[i].acts[k];
    for (int i = 0; i < x.n && c->hist_max > 0; i++)
        for (int k = 0; k < x.ex[i].n; k++) {
            double v = x.ex[i].acts[k];
            if (!(v > 0)) continue;
            int b = (int)(v / c->hist_max * CARD_HIST_BINS);
            if (b >= CARD_HIST_BINS) b = CARD_HIST_BINS - 1;
            c->hist[b]++;
            c->hist_n++;
        }
    if (tk) {
        c->top = xcalloc((size_t)(n_top > 0 ? n_top : 1), sizeof *c->top);
        for (int i = 0; i < x.n && c->n_top < n_top; i++)
            if (strcmp(x.ex[i].kind, "top") == 0 && x.ex[i].activation > 0)
                context_from(tk, &x.ex[i], &c->top[c->n_top++]);
        int max_iv = -1;
        for (int i = 0; i < x.n; i++)
            if (strcmp(x.ex[i].kind, "interval") == 0 && x.ex[i].interval > max_iv)
                max_iv = x.ex[i].interval;
        if (max_iv >= 0) c->intervals = xcalloc((size_t)max_iv + 1, sizeof *c->intervals);
        for (int iv = max_iv; iv >= 0; iv--)
            for (int i = 0; i < x.n; i++) /* x is by activation: the strongest of the interval */
                if (strcmp(x.ex[i].kind, "interval") == 0 && x.ex[i].interval == iv &&
                    x.ex[i].activation > 0) {
                    context_from(tk, &x.ex[i], &c->intervals[c->n_intervals++]);
                    break;
                }
    }
    describe_examples_release(&x);
    return EV_OK;
}

/* A token's text; a piece that is not valid UTF-8 on its own (a byte token) is shown as
 * <0xNN> per byte. */
static char *token_text(const struct tok *tk, int id) {
    const char *p = tk ? tok_piece(tk, -1, id) : NULL;
    if (!p) return xasprintf("<%d>", id);
    if (utf8_invalid_at(p, strlen(p)) < 0) return xstrdup(p);
    struct sbuf sb;
    sbuf_init(&sb);
    for (const unsigned char *q = (const unsigned char *)p; *q; q++) sbuf_addf(&sb, "<0x%02X>", *q);
    return sb.buf ? sbuf_detach(&sb) : xstrdup("");
}

static int load_logits(struct eval_env *e, struct card *c, int n, struct ev_err *err) {
    const struct tok  *tk = model_tokenizer(e->model);
    int                V = model_vocab_tokens(e->model), got[2] = {0, 0}; /* no padded ids */
    if (n > V) n = V;
    if (n < 1) return EV_OK;
    c->logit_top = xcalloc((size_t)n, sizeof *c->logit_top);
    c->logit_bottom = xcalloc((size_t)n, sizeof *c->logit_bottom);
    c->n_logits = n;
    struct index_logit *rows = NULL;
    int                 n_rows = 0;
    int rc = index_logits(e->store, e->sae_id, c->feature, n, &rows, &n_rows, err);
    if (rc != EV_OK) return rc;
    for (int i = 0; i < n_rows; i++) {
        int sign = rows[i].sign, rank = rows[i].rank, tok = rows[i].token;
        if (rank < 0 || rank >= n || tok < 0 || tok >= V) continue;
        struct card_token *t = sign > 0 ? &c->logit_top[rank] : &c->logit_bottom[rank];
        if (t->text) continue;
        *t = (struct card_token){tok, token_text(tk, tok), rows[i].effect};
        got[sign > 0]++;
    }
    free(rows);
    if (got[0] == n && got[1] == n) {
        c->logits_source = "stored";
        return EV_OK;
    }
    for (int i = 0; i < n; i++) {
        free(c->logit_top[i].text);
        free(c->logit_bottom[i].text);
        c->logit_top[i].text = c->logit_bottom[i].text = NULL;
    }
    if (!sae_hook_has_logits(e->model, &e->hook_out)) {
        c->n_logits = 0;
        return EV_OK; /* a decoder not writing the residual stream (or hook_z): no direct logit effects */
    }
    int   *top = xmalloc(sizeof *top * (size_t)n), *bot = xmalloc(sizeof *bot * (size_t)n);
    float *tv = xmalloc(sizeof *tv * (size_t)n), *bv = xmalloc(sizeof *bv * (size_t)n);
    sae_logit_effects_at(e->sae, e->model, &e->hook_out, &c->feature, 1, n, top, tv, bot, bv);
    for (int i = 0; i < n; i++) {
        c->logit_top[i] = (struct card_token){top[i], token_text(tk, top[i]), tv[i]};
        c->logit_bottom[i] = (struct card_token){bot[i], token_text(tk, bot[i]), bv[i]};
    }
    free(top);
    free(bot);
    free(tv);
    free(bv);
    c->logits_source = "computed";
    return EV_OK;
}

static int load_neighbors(struct eval_env *e, struct card *c, int n, struct ev_err *err) {
    if (n > c->d_sae - 1) n = c->d_sae - 1;
    if (n < 1) return EV_OK;
    c->neighbors = xcalloc((size_t)n, sizeof *c->neighbors);
    struct index_neighbor *rows = NULL;
    int                    n_rows = 0, got = 0;
    int rc = index_neighbors(e->store, e->sae_id, c->feature, n, &rows, &n_rows, err);
    if (rc != EV_OK) return rc;
    for (int i = 0; i < n_rows; i++) {
        int rank = rows[i].rank, other = rows[i].other;
        if (rank != got || other < 0 || other >= c->d_sae) break;
        c->neighbors[got++] = (struct card_neighbor){other, rows[i].cosine, NULL};
    }
    free(rows);
    if (got == n) {
        c->neighbors_source = "stored";
    } else {
        int   *nb = xmalloc(sizeof *nb * (size_t)n);
        float *cs = xmalloc(sizeof *cs * (size_t)n);
        sae_neighbors(e->sae, &c->feature, 1, n, nb, cs);
        for (int i = 0; i < n; i++) c->neighbors[i] = (struct card_neighbor){nb[i], cs[i], NULL};
        free(nb);
        free(cs);
        c->neighbors_source = "computed";
    }
    c->n_neighbors = n;
    for (int i = 0; i < n; i++)
        c->neighbors[i].description = eval_description_get(e, c->neighbors[i].feature, NULL);
    return EV_OK;
}

/* The best Pearson correlation of the feature with the MLP neurons of the block writing the
 * SAE's stream, over n_tok tokens sampled from the model (BOS positions excluded). */
static int compute_neuron(struct eval_env *e, struct card *c, int64_t n_tok, uint64_t seed,
                          struct ev_err *err) {
    const struct model_config *mc = model_config(e->model);
    struct model_hook          h = e->hook;
    int layer = model_hook_mlp_layer(h);
    int T = mc->seq_len < 128 ? mc->seq_len : 128, D = e->sae->cfg.d_in, S = e->sae->cfg.d_sae;
    int H = mc->hidden_dim;
    struct acts_corpus  corp = {0};
    struct model_state *ms = NULL;
    float *xs = NULL, *nrn = NULL, *f = NULL, *fe = NULL, *ne = NULL;
    int    rc = EV_OK;
    if (layer < 0 || T < 2) return EV_OK; /* no MLP wrote into this stream */
    if ((rc = acts_corpus_generate(e->model, n_tok, T, seed, &corp, err)) != EV_OK) goto out;
    if ((rc = model_state_new(e->model, T, 0, &ms, err)) != EV_OK) goto out;
    const int64_t N = (int64_t)corp.n_seq * (T - 1);
    xs = xmalloc(sizeof *xs * (size_t)T * D);
    nrn = xmalloc(sizeof *nrn * (size_t)T * H);
    f = xmalloc(sizeof *f * (size_t)T * S);
    fe = xmalloc(sizeof *fe * (size_t)N);     // (N) the feature
    ne = xmalloc(sizeof *ne * (size_t)N * H); // (N, H) the neurons
    /* one pass reads the neurons (mlp.hook_post) and the SAE's stream */
    struct model_edit rd[2] = {{.hook = {layer, MODEL_HOOK_MLP_POST}, .read = nrn},
                               {.hook = h, .read = xs}};
    for (int q = 0; q < corp.n_seq; q++) {
        const int *tok = corp.tokens + (size_t)q * T;
        if ((rc = model_forward(ms, tok, 0, T, rd, 2, err)) != EV_OK) goto out;
        sae_encode(e->sae, f, xs, T);
        for (int t = 1; t < T; t++) {
            int64_t row = (int64_t)q * (T - 1) + t - 1;
            memcpy(ne + (size_t)row * H, nrn + (size_t)t * H, sizeof *ne * (size_t)H);
            fe[row] = f[(size_t)t * S + c->feature];
        }
    }
    int best = -1;
    c->neuron_pearson = sae_best_pearson(fe, ne, (int)N, H, &best);
    c->neuron = best;
    c->neuron_layer = layer;
    c->neuron_tokens = N;
    c->neuron_source = best >= 0 ? "computed" : NULL;
out:
    acts_corpus_release(&corp);
    model_state_free(ms);
    free(xs);
    free(nrn);
    free(f);
    free(fe);
    free(ne);
    return rc;
}

static int load_neuron(struct eval_env *e, struct card *c, const struct card_opts *o,
                       struct ev_err *err) {
    struct index_neuron nr;
    int rc = index_neuron(e->store, e->sae_id, c->feature, &nr, err);
    if (rc < 0) return rc;
    if (rc == 1) {
        c->neuron_source = "stored";
        c->neuron_layer = nr.layer;
        c->neuron = nr.neuron;
        c->neuron_pearson = nr.pearson;
        c->neuron_tokens = nr.n_tokens;
    }
    if (!c->neuron_source && o->neuron_tokens > 0)
        return compute_neuron(e, c, o->neuron_tokens, o->seed, err);
    return EV_OK;
}

static int load_categories(struct eval_env *e, struct card *c, struct ev_err *err) {
    return features_categories_of(e->store, e->sae_id, c->feature, &c->categories,
                                  &c->n_categories, err);
}

/* Adds the provenance of run id (once) from the report's facts of it. */
static int add_run(struct store *s, struct card *c, int64_t id, struct ev_err *err) {
    for (int i = 0; i < c->n_runs; i++)
        if (c->runs[i].id == id) return EV_OK;
    struct report_fact *f;
    int                 n, rc = report_run_provenance(s, id, &f, &n, err);
    if (rc != EV_OK) return rc;
    int at = c->n_runs;
    c->runs = xrealloc(c->runs, sizeof *c->runs * (size_t)(c->n_runs + 1));
    while (at > 0 && c->runs[at - 1].id > id) { /* keep them by id */
        c->runs[at] = c->runs[at - 1];
        at--;
    }
    c->runs[at] = (struct card_run){id, NULL, xstrdup(report_fact_get(f, n, "grader")),
                                    xstrdup(report_fact_get(f, n, "template")),
                                    xstrdup(report_fact_get(f, n, "seed")),
                                    xstrdup(report_fact_get(f, n, "date"))};
    /* "ID (TAG), KIND, STATUS": the kind */
    const char *r = report_fact_get(f, n, "run"), *k = strstr(r, ", ");
    const char *k_end = k ? strstr(k + 2, ", ") : NULL;
    c->runs[at].kind = k && k_end ? xasprintf("%.*s", (int)(k_end - k - 2), k + 2) : xstrdup("-");
    c->n_runs++;
    report_facts_release(f, n);
    return EV_OK;
}

/* What a reader needs to trust the card: the model's and SAE's hashes, the index's corpus,
 * seed and date, and the provenance of every run a description or score came from. */
static int load_provenance(struct eval_env *e, struct card *c, struct ev_err *err) {
    int64_t run = 0, n_tok = 0;
    snprintf(c->model_hash, sizeof c->model_hash, "%s", e->model ? model_hash(e->model) : "");
    snprintf(c->sae_hash, sizeof c->sae_hash, "%s", e->sae_hash);
    int rc = e->sae_id > 0 ? index_source_run(e->store, e->sae_id, &run, &n_tok, err) : 0;
    if (rc < 0) return rc;
    c->index_run = rc == 1 ? run : 0;
    c->index_tokens = n_tok;
    const char *corpus = NULL, *chash = NULL;
    cJSON      *cfg = NULL;
    if (c->index_run > 0) {
        struct report_fact *f;
        struct runinfo_run  rr;
        struct ev_err       e2;
        int                 n;
        if ((rc = report_run_provenance(e->store, run, &f, &n, err)) != EV_OK) return rc;
        c->index_seed = xstrdup(report_fact_get(f, n, "seed"));
        c->index_date = xstrdup(report_fact_get(f, n, "date"));
        report_facts_release(f, n);
        if ((rc = runinfo_run_load(e->store, run, &rr, err)) != EV_OK) return rc;
        json_parse(rr.config_json, strlen(rr.config_json), "runs.config_json", &cfg, &e2);
        runinfo_run_release(&rr);
        if (cfg) {
            json_get_str_opt(cfg, "corpus", "config", &corpus, &e2);
            json_get_str_opt(cfg, "corpus_hash", "config", &chash, &e2);
        }
    }
    c->index_corpus = xstrdup(corpus && *corpus ? corpus : "-");
    c->index_corpus_hash = xstrdup(chash && *chash ? chash : "-");
    json_free(cfg);
    if (!c->index_seed) c->index_seed = xstrdup("-");
    if (!c->index_date) c->index_date = xstrdup("-");
    for (int i = 0; i < c->n_desc && rc == EV_OK; i++)
        if (c->desc[i].run_id > 0) rc = add_run(e->store, c, c->desc[i].run_id, err);
    for (int i = 0; i < c->n_scores && rc == EV_OK; i++)
        rc = add_run(e->store, c, c->scores[i].run_id, err);
    return rc;
}

int card_build(struct eval_env *e, int feature, const struct card_opts *o, struct card *out,
               struct ev_err *err) {
    struct card c;
    int         rc;
    memset(&c, 0, sizeof c);
    memset(out, 0, sizeof *out);
    c.feature = feature;
    c.d_sae = e->sae->cfg.d_sae;
    if (feature < 0 || feature >= c.d_sae)
        return ev_fail(err, EV_EFAIL, "feature %d does not exist: SAE %s has features 0..%d",
                       feature, e->sae_path, c.d_sae - 1);
    c.sae_path = xstrdup(e->sae_path);
    c.model_path = xstrdup(e->model_path);
    model_hook_name(e->hook, c.hook, sizeof c.hook);
    c.neuron = c.neuron_layer = -1;
    c.neuron_pearson = NAN;
    if ((rc = load_descriptions(e, &c, err)) != EV_OK || (rc = load_scores(e, &c, err)) != EV_OK ||
        (rc = load_stats(e, &c, err)) != EV_OK ||
        (rc = load_examples(e, &c, o->n_top, err)) != EV_OK ||
        (rc = load_logits(e, &c, o->n_logits, err)) != EV_OK ||
        (rc = load_neighbors(e, &c, o->n_neighbors, err)) != EV_OK ||
        (rc = load_neuron(e, &c, o, err)) != EV_OK || (rc = load_categories(e, &c, err)) != EV_OK ||
        (rc = load_provenance(e, &c, err)) != EV_OK) {
        card_release(&c);
        return rc;
    }
    *out = c;
    return EV_OK;
}

// ---------------------------------------------------------------------------- text helpers

/* The code point at p of a NUL-terminated string (base/utf8: an ill-formed sequence is U+FFFD
 * for its maximal subpart, whose length goes in *len; the NUL ends any sequence). */
static unsigned cp_at(const unsigned char *p, int *len) {
    uint32_t cp;
    *len = (int)utf8_next((const char *)p, 4, &cp);
    return cp;
}

static int cp_width(unsigned c) {
    if (c == 0 || (c >= 0x300 && c <= 0x36F) || (c >= 0x200B && c <= 0x200F) ||
        (c >= 0xFE00 && c <= 0xFE0F) || (c >= 0x1AB0 && c <= 0x1AFF) ||
        (c >= 0x20D0 && c <= 0x20FF))
        return 0;
    if ((c >= 0x1100 && c <= 0x115F) || (c >= 0x2E80 && c <= 0xA4CF && c != 0x303F) ||
        (c >= 0xAC00 && c <= 0xD7A3) || (c >= 0xF900 && c <= 0xFAFF) ||
        (c >= 0xFE30 && c <= 0xFE4F) || (c >= 0xFF00 && c <= 0xFF60) ||
        (c >= 0xFFE0 && c <= 0xFFE6) || (c >= 0x1F300 && c <= 0x1F64F) ||
        (c >= 0x1F900 && c <= 0x1F9FF) || (c >= 0x20000 && c <= 0x3FFFD))
        return 2;
    return 1;
}

int card_display_width(const char *s) {
    const unsigned char *p = (const unsigned char *)s;
    int                  w = 0;
    while (*p) {
        if (*p == 0x1B && p[1] == '[') { /* CSI ... final byte */
            p += 2;
            while (*p && !(*p >= 0x40 && *p <= 0x7E)) p++;
            if (*p) p++;
            continue;
        }
        int      len;
        unsigned c = cp_at(p, &len);
        w += cp_width(c);
        p += len;
    }
    return w;
}

/* Appends s made printable on one line: newline as ↵, tab as a space, other control
 * characters dropped, invalid UTF-8 as U+FFFD. */
static void add_oneline(struct sbuf *sb, const char *s) {
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        int      len;
        unsigned c = cp_at(p, &len);
        if (c == '\n') sbuf_adds(sb, "\xe2\x86\xb5");
        else if (c == '\t') sbuf_adds(sb, " ");
        else if (c < 0x20 || c == 0x7F || (c >= 0x80 && c < 0xA0)) {
        } else if (c == UTF8_REPLACEMENT) sbuf_adds(sb, "\xef\xbf\xbd");
        else sbuf_add(sb, (const char *)p, (size_t)len);
        p += len;
    }
}

static char *oneline(const char *s) {
    struct sbuf sb;
    sbuf_init(&sb);
    add_oneline(&sb, s ? s : "");
    return sb.buf ? sbuf_detach(&sb) : xstrdup("");
}

/* Appends s cut to at most w display columns (with "…" when cut). */
static void add_clipped(struct sbuf *sb, const char *s, int w) {
    char *o = oneline(s);
    if (card_display_width(o) <= w) {
        sbuf_adds(sb, o);
        free(o);
        return;
    }
    const unsigned char *p = (const unsigned char *)o;
    int                  used = 0;
    while (*p) {
        int len, cw = cp_width(cp_at(p, &len));
        if (used + cw > w - 1) break;
        sbuf_add(sb, (const char *)p, (size_t)len);
        used += cw;
        p += len;
    }
    sbuf_adds(sb, "\xe2\x80\xa6");
    free(o);
}

char *card_clip(const char *s, int w) {
    struct sbuf sb;
    sbuf_init(&sb);
    add_clipped(&sb, s ? s : "", w < 1 ? 1 : w);
    return sb.buf ? sbuf_detach(&sb) : xstrdup("");
}

/* Word-wraps text into lines of at most width columns: the first line starts after `lead`
 * (already written, lead_w columns), the others are indented by indent spaces. */
static void add_wrapped(struct sbuf *sb, const char *text, int lead_w, int indent, int width) {
    char *o = oneline(text);
    const unsigned char *p = (const unsigned char *)o;
    int col = lead_w, line_empty = 1;
    while (*p) {
        while (*p == ' ') p++;
        if (!*p) break;
        const unsigned char *w0 = p;
        int                  ww = 0;
        while (*p && *p != ' ') {
            int len;
            ww += cp_width(cp_at(p, &len));
            p += len;
        }
        if (!line_empty && col + 1 + ww > width) {
            sbuf_addf(sb, "\n%*s", indent, "");
            col = indent;
            line_empty = 1;
        }
        if (!line_empty) {
            sbuf_adds(sb, " ");
            col++;
        }
        /* a word longer than the line is cut into pieces */
        const unsigned char *q = w0;
        while (q < p) {
            int len, cw = cp_width(cp_at(q, &len));
            if (col + cw > width) {
                sbuf_addf(sb, "\n%*s", indent, "");
                col = indent;
            }
            sbuf_add(sb, (const char *)q, (size_t)len);
            col += cw;
            q += len;
        }
        line_empty = 0;
    }
    sbuf_adds(sb, "\n");
    free(o);
}

static const char *const ANSI_HI = "\x1b[1;7m", *const ANSI_OFF = "\x1b[0m",
                         *const ANSI_BOLD = "\x1b[1m", *const ANSI_DIM = "\x1b[2m";
#define MARK_OPEN  "\xe2\x9f\xa6" /* ⟦ */
#define MARK_CLOSE "\xe2\x9f\xa7" /* ⟧ */

/* Appends pieces [lo, hi) of x with runs of activating tokens marked (and coloured). */
static void add_marked(struct sbuf *sb, const struct card_context *x, int lo, int hi, int colour) {
    for (int k = lo; k < hi; k++) {
        int on = x->acts[k] > 0;
        int open = on && (k == lo || !(x->acts[k - 1] > 0));
        int close = on && (k == hi - 1 || !(x->acts[k + 1] > 0));
        if (open) {
            sbuf_adds(sb, MARK_OPEN);
            if (colour) sbuf_adds(sb, ANSI_HI);
        }
        add_oneline(sb, x->pieces[k]);
        if (close) {
            if (colour) sbuf_adds(sb, ANSI_OFF);
            sbuf_adds(sb, MARK_CLOSE);
        }
    }
}

/* The whole window as marked text (no colour). Caller frees. */
static char *context_text(const struct card_context *x) {
    struct sbuf sb;
    sbuf_init(&sb);
    add_marked(&sb, x, 0, x->n, 0);
    return sb.buf ? sbuf_detach(&sb) : xstrdup("");
}

/* Appends the window of x around its centre, at most w columns: tokens are added right and
 * left of the centre in turn while they fit; "…" marks a cut side. */
static void add_context_fit(struct sbuf *sb, const struct card_context *x, int w, int colour) {
    int *tw = xmalloc(sizeof *tw * (size_t)(x->n ? x->n : 1));
    for (int k = 0; k < x->n; k++) {
        char *o = oneline(x->pieces[k]);
        tw[k] = card_display_width(o) + (x->acts[k] > 0 ? 2 : 0); /* worst case: ⟦…⟧ */
        free(o);
    }
    int lo = x->center, hi = x->center + 1, used = tw[x->center];
    int budget = w - 2; /* room for an ellipsis on each side */
    for (int grow = 1; grow;) {
        grow = 0;
        if (hi < x->n && used + tw[hi] <= budget) {
            used += tw[hi++];
            grow = 1;
        }
        if (lo > 0 && used + tw[lo - 1] <= budget) {
            used += tw[--lo];
            grow = 1;
        }
    }
    if (lo > 0) sbuf_adds(sb, "\xe2\x80\xa6");
    if (used > budget) { /* the centre token alone is too wide */
        struct sbuf one;
        sbuf_init(&one);
        add_marked(&one, x, x->center, x->center + 1, 0);
        add_clipped(sb, one.buf ? one.buf : "", budget);
        sbuf_release(&one);
    } else {
        add_marked(sb, x, lo, hi, colour);
    }
    if (hi < x->n) sbuf_adds(sb, "\xe2\x80\xa6");
    free(tw);
}

static void add_rule(struct sbuf *sb, const char *title, int width, int colour) {
    int tw = card_display_width(title);
    if (colour) sbuf_adds(sb, ANSI_BOLD);
    sbuf_addf(sb, "\xe2\x94\x80\xe2\x94\x80 %s ", title);
    for (int i = tw + 4; i < width; i++) sbuf_adds(sb, "\xe2\x94\x80");
    if (colour) sbuf_adds(sb, ANSI_OFF);
    sbuf_adds(sb, "\n");
}

static void fmt_num(char *buf, size_t n, double v) {
    if (!isfinite(v)) snprintf(buf, n, "-");
    else snprintf(buf, n, "%.4g", v);
}

// ---------------------------------------------------------------------------- provenance

/* "path (sha256 H)" or the path alone */
static char *with_hash(const char *path, const char *hash) {
    return *hash ? xasprintf("%s (sha256 %s)", path, hash) : xstrdup(path);
}

/* The provenance block as (key, value) lines, the same for text and Markdown; n_lines set.
 * Free both arrays' strings and the arrays. */
static void prov_lines(const struct card *c, char ***keys, char ***vals, int *n_lines) {
    int n = 4 + c->n_runs;
    *keys = xcalloc((size_t)n, sizeof **keys);
    *vals = xcalloc((size_t)n, sizeof **vals);
    (*keys)[0] = xstrdup("model"), (*vals)[0] = with_hash(c->model_path, c->model_hash);
    (*keys)[1] = xstrdup("SAE"), (*vals)[1] = with_hash(c->sae_path, c->sae_hash);
    (*keys)[2] = xstrdup("hook"), (*vals)[2] = xstrdup(c->hook);
    (*keys)[3] = xstrdup("index");
    (*vals)[3] = c->index_run > 0
                     ? xasprintf("run %lld: %lld tokens of %s (corpus sha256 %s); seed %s; %s",
                                 (long long)c->index_run, (long long)c->index_tokens,
                                 c->index_corpus, c->index_corpus_hash, c->index_seed,
                                 c->index_date)
                     : xstrdup("none (evalrun index builds it)");
    for (int i = 0; i < c->n_runs; i++) {
        const struct card_run *r = &c->runs[i];
        (*keys)[4 + i] = xasprintf("run %lld (%s)", (long long)r->id, r->kind);
        (*vals)[4 + i] = xasprintf("grader %s; template %s; seed %s; %s", r->grader, r->template,
                                   r->seed, r->date);
    }
    *n_lines = n;
}

static void prov_lines_free(char **keys, char **vals, int n) {
    for (int i = 0; i < n; i++) free(keys[i]), free(vals[i]);
    free(keys);
    free(vals);
}

// ---------------------------------------------------------------------------- text

char *card_render_text(const struct card *c, int W, int colour) {
    struct sbuf sb;
    char        a[32], b[32], d[32], q[4][32];
    if (W < 60) W = 60;
    sbuf_init(&sb);
    {
        struct sbuf head;
        sbuf_init(&head);
        sbuf_addf(&head, "feature %d", c->feature);
        if (colour) sbuf_adds(&sb, ANSI_BOLD);
        sbuf_adds(&sb, head.buf);
        if (colour) sbuf_adds(&sb, ANSI_OFF);
        int used = card_display_width(head.buf);
        sbuf_release(&head);
        char *tail = xasprintf(" of %d \xc2\xb7 %s \xc2\xb7 ", c->d_sae, c->hook);
        sbuf_adds(&sb, tail);
        used += card_display_width(tail);
        free(tail);
        add_clipped(&sb, c->sae_path, W - used);
        sbuf_adds(&sb, "\n");
    }
    add_rule(&sb, "description", W, colour);
    if (c->n_desc == 0) sbuf_adds(&sb, "  (none stored: evalrun explain, or evalrun autointerp)\n");
    for (int i = 0; i < c->n_desc; i++) {
        sbuf_adds(&sb, "  ");
        char *t = xasprintf("\"%s\"  [%s]", c->desc[i].text, c->desc[i].source);
        add_wrapped(&sb, t, 2, 4, W);
        free(t);
    }
    for (int i = 0; i < c->n_scores; i++) {
        const struct card_score *s = &c->scores[i];
        char ci[48], mean[32];
        fmt_num(mean, sizeof mean, s->mean);
        if (isnan(s->ci95)) snprintf(ci, sizeof ci, " (no interval below 2)");
        else snprintf(ci, sizeof ci, " \xc2\xb1 %.3g (95%% CI)", s->ci95);
        char *t = xasprintf("%s run %lld%s%s%s, %s: mean %s%s, n %d; %d unparsed, %d skipped",
                            s->kind, (long long)s->run_id, s->grader ? " (" : "",
                            s->grader ? s->grader : "", s->grader ? ")" : "", s->items, mean, ci,
                            s->n, s->n_unparsed, s->n_skipped);
        sbuf_adds(&sb, "  score: ");
        add_wrapped(&sb, t, 9, 4, W);
        free(t);
    }
    if (c->n_categories) {
        struct sbuf cats;
        sbuf_init(&cats);
        for (int i = 0; i < c->n_categories; i++)
            sbuf_addf(&cats, "%s%s", i ? ", " : "", c->categories[i]);
        sbuf_adds(&sb, "  categories: ");
        add_wrapped(&sb, cats.buf, 14, 4, W);
        sbuf_release(&cats);
    }

    add_rule(&sb, "activations", W, colour);
    if (c->has_stats) {
        fmt_num(a, sizeof a, c->density);
        fmt_num(b, sizeof b, c->max_act);
        fmt_num(d, sizeof d, c->mean_act);
        char *t = xasprintf("density %s (%lld of %lld tokens)  max %s  mean when firing %s", a,
                            (long long)c->fire_count, (long long)c->n_tokens, b, d);
        sbuf_adds(&sb, "  ");
        add_wrapped(&sb, t, 2, 4, W);
        free(t);
        fmt_num(q[0], sizeof q[0], c->q10);
        fmt_num(q[1], sizeof q[1], c->q50);
        fmt_num(q[2], sizeof q[2], c->q90);
        fmt_num(q[3], sizeof q[3], c->q99);
        t = xasprintf("quantiles when firing: p10 %s  p50 %s  p90 %s  p99 %s", q[0], q[1], q[2],
                      q[3]);
        sbuf_adds(&sb, "  ");
        add_wrapped(&sb, t, 2, 4, W);
        free(t);
    } else {
        sbuf_adds(&sb, "  ");
        add_wrapped(&sb, "no statistics: the index has not covered this feature (evalrun index)", 2,
                    4, W);
    }
    if (c->hist_n > 0) {
        int64_t top = 1;
        for (int i = 0; i < CARD_HIST_BINS; i++)
            if (c->hist[i] > top) top = c->hist[i];
        char *t = xasprintf("histogram of the %lld non-zero activations in the stored contexts:",
                            (long long)c->hist_n);
        sbuf_adds(&sb, "  ");
        add_wrapped(&sb, t, 2, 4, W);
        free(t);
        int bar_w = W - 30;
        for (int i = 0; i < CARD_HIST_BINS; i++) {
            double lo = c->hist_max * i / CARD_HIST_BINS;
            double hi = c->hist_max * (i + 1) / CARD_HIST_BINS;
            struct sbuf row;
            sbuf_init(&row);
            sbuf_addf(&row, "  %7.3f-%-7.3f ", lo, hi);
            int full8 = (int)llround((double)c->hist[i] * bar_w * 8 / (double)top);
            if (c->hist[i] > 0 && full8 == 0) full8 = 1;
            for (int k = 0; k < full8 / 8; k++) sbuf_adds(&row, "\xe2\x96\x88");
            static const char *const part[8] = {"", "\xe2\x96\x8f", "\xe2\x96\x8e",
                                                "\xe2\x96\x8d", "\xe2\x96\x8c", "\xe2\x96\x8b",
                                                "\xe2\x96\x8a", "\xe2\x96\x89"};
            sbuf_adds(&row, part[full8 % 8]);
            sbuf_addf(&row, " %lld", (long long)c->hist[i]);
            add_clipped(&sb, row.buf, W);
            sbuf_adds(&sb, "\n");
            sbuf_release(&row);
        }
    }

    add_rule(&sb, "top activating contexts", W, colour);
    if (c->n_top == 0) sbuf_adds(&sb, "  (none stored: evalrun index)\n");
    for (int i = 0; i < c->n_top; i++) {
        char *lead = xasprintf("  %7.3f  ", c->top[i].activation);
        sbuf_adds(&sb, lead);
        add_context_fit(&sb, &c->top[i], W - card_display_width(lead), colour);
        sbuf_adds(&sb, "\n");
        free(lead);
    }
    if (c->n_intervals) {
        add_rule(&sb, "one context per activation interval", W, colour);
        for (int i = 0; i < c->n_intervals; i++) {
            char *lead = xasprintf("  #%-2d %7.3f  ", c->intervals[i].interval,
                                   c->intervals[i].activation);
            sbuf_adds(&sb, lead);
            add_context_fit(&sb, &c->intervals[i], W - card_display_width(lead), colour);
            sbuf_adds(&sb, "\n");
            free(lead);
        }
    }

    if (c->n_logits) {
        char *t = xasprintf("logit effects (%s)", c->logits_source);
        add_rule(&sb, t, W, colour);
        free(t);
        int col = (W - 4) / 2;
        sbuf_adds(&sb, "  promoted");
        for (int k = 10; k < col + 2; k++) sbuf_adds(&sb, " ");
        sbuf_adds(&sb, "suppressed\n");
        for (int i = 0; i < c->n_logits; i++) {
            struct sbuf cell;
            for (int side = 0; side < 2; side++) {
                const struct card_token *tk = side ? &c->logit_bottom[i] : &c->logit_top[i];
                sbuf_init(&cell);
                sbuf_addf(&cell, "%+8.3f  ", tk->value);
                char *qt = xasprintf("\"%s\"", tk->text);
                add_clipped(&cell, qt, col - 10);
                free(qt);
                sbuf_adds(&sb, "  ");
                sbuf_adds(&sb, cell.buf);
                if (!side)
                    for (int k = card_display_width(cell.buf); k < col; k++) sbuf_adds(&sb, " ");
                sbuf_release(&cell);
            }
            sbuf_adds(&sb, "\n");
        }
    }
    if (c->n_neighbors) {
        char *t = xasprintf("nearest neighbours by decoder cosine (%s)", c->neighbors_source);
        add_rule(&sb, t, W, colour);
        free(t);
        for (int i = 0; i < c->n_neighbors; i++) {
            char *lead = xasprintf("  %6d  %6.3f  ", c->neighbors[i].feature,
                                   c->neighbors[i].cosine);
            sbuf_adds(&sb, lead);
            add_clipped(&sb, c->neighbors[i].description ? c->neighbors[i].description : "-",
                        W - card_display_width(lead));
            sbuf_adds(&sb, "\n");
            free(lead);
        }
    }
    add_rule(&sb, "best-correlated MLP neuron", W, colour);
    {
        char *t = c->neuron_source
                      ? xasprintf("layer %d neuron %d: Pearson r = %.3f over %lld tokens (%s)",
                                  c->neuron_layer, c->neuron, c->neuron_pearson,
                                  (long long)c->neuron_tokens, c->neuron_source)
                      : xstrdup("not stored (evalrun index --neurons N) and not computed");
        sbuf_adds(&sb, "  ");
        add_wrapped(&sb, t, 2, 4, W);
        free(t);
    }
    add_rule(&sb, "provenance", W, colour);
    {
        char **k, **v;
        int    n;
        prov_lines(c, &k, &v, &n);
        for (int i = 0; i < n; i++) {
            char *t = xasprintf("%s: %s", k[i], v[i]);
            sbuf_adds(&sb, "  ");
            add_wrapped(&sb, t, 2, 4, W);
            free(t);
        }
        prov_lines_free(k, v, n);
    }
    if (colour) {
        /* a legend so the markers are never a mystery */
        sbuf_adds(&sb, ANSI_DIM);
        sbuf_adds(&sb, MARK_OPEN "tokens" MARK_CLOSE " the feature fires on\n");
        sbuf_adds(&sb, ANSI_OFF);
    } else {
        sbuf_adds(&sb, MARK_OPEN "tokens" MARK_CLOSE " the feature fires on\n");
    }
    return sbuf_detach(&sb);
}

// ---------------------------------------------------------------------------- Markdown

/* Appends s with Markdown's inline specials escaped, on one line. */
static void add_md(struct sbuf *sb, const char *s) {
    char *o = oneline(s);
    for (const char *p = o; *p; p++) {
        if (strchr("\\`*_[]<>|#~", *p)) sbuf_add(sb, "\\", 1);
        sbuf_add(sb, p, 1);
    }
    free(o);
}

static void add_md_context(struct sbuf *sb, const struct card_context *x) {
    char *t = context_text(x);
    add_md(sb, t);
    free(t);
}

char *card_render_md(const struct card *c) {
    struct sbuf sb;
    char        a[32], b[32], d[32];
    sbuf_init(&sb);
    sbuf_addf(&sb, "## Feature %d\n\n", c->feature);
    sbuf_adds(&sb, "SAE `");
    add_oneline(&sb, c->sae_path);
    sbuf_addf(&sb, "` (%d features) at `%s`.\n\n", c->d_sae, c->hook);
    sbuf_adds(&sb, "### Descriptions\n\n");
    if (!c->n_desc) sbuf_adds(&sb, "None stored.\n");
    for (int i = 0; i < c->n_desc; i++) {
        sbuf_adds(&sb, "- ");
        add_md(&sb, c->desc[i].text);
        sbuf_adds(&sb, " — *");
        add_md(&sb, c->desc[i].source);
        sbuf_adds(&sb, "*\n");
    }
    if (c->n_scores) {
        sbuf_adds(&sb, "\n| evaluation | run | grader | items | n | unparsed | skipped | "
                       "mean score | ci95 |\n|:--|--:|:--|:--|--:|--:|--:|--:|--:|\n");
        for (int i = 0; i < c->n_scores; i++) {
            const struct card_score *sc = &c->scores[i];
            sbuf_adds(&sb, "| ");
            add_md(&sb, sc->kind);
            sbuf_addf(&sb, " | %lld | ", (long long)sc->run_id);
            add_md(&sb, sc->grader ? sc->grader : "-");
            sbuf_adds(&sb, " | ");
            add_md(&sb, sc->items);
            sbuf_addf(&sb, " | %d | %d | %d | ", sc->n, sc->n_unparsed, sc->n_skipped);
            if (isnan(sc->mean)) sbuf_adds(&sb, "- | ");
            else sbuf_addf(&sb, "%.3f | ", sc->mean);
            if (isnan(sc->ci95)) sbuf_adds(&sb, "- |\n");
            else sbuf_addf(&sb, "%.3f |\n", sc->ci95);
        }
    }
    if (c->n_categories) {
        sbuf_adds(&sb, "\nCategories: ");
        for (int i = 0; i < c->n_categories; i++) {
            if (i) sbuf_adds(&sb, ", ");
            add_md(&sb, c->categories[i]);
        }
        sbuf_adds(&sb, "\n");
    }
    sbuf_adds(&sb, "\n### Activations\n\n");
    if (c->has_stats) {
        fmt_num(a, sizeof a, c->density);
        fmt_num(b, sizeof b, c->max_act);
        fmt_num(d, sizeof d, c->mean_act);
        sbuf_addf(&sb, "| density | firing | tokens | max | mean when firing |\n"
                       "|---:|---:|---:|---:|---:|\n| %s | %lld | %lld | %s | %s |\n",
                  a, (long long)c->fire_count, (long long)c->n_tokens, b, d);
    } else {
        sbuf_adds(&sb, "No statistics in the index.\n");
    }
    if (c->hist_n) {
        sbuf_addf(&sb, "\nHistogram of the %lld non-zero activations in the stored contexts:\n\n"
                       "| activation | count |\n|---|---:|\n", (long long)c->hist_n);
        for (int i = 0; i < CARD_HIST_BINS; i++)
            sbuf_addf(&sb, "| %.3f–%.3f | %lld |\n", c->hist_max * i / CARD_HIST_BINS,
                      c->hist_max * (i + 1) / CARD_HIST_BINS, (long long)c->hist[i]);
    }
    sbuf_adds(&sb, "\n### Top activating contexts\n\nActivating tokens are marked ⟦ ⟧.\n\n");
    for (int i = 0; i < c->n_top; i++) {
        sbuf_addf(&sb, "%d. **%.3f** ", i + 1, c->top[i].activation);
        add_md_context(&sb, &c->top[i]);
        sbuf_adds(&sb, "\n");
    }
    if (c->n_intervals) {
        sbuf_adds(&sb, "\n### One context per activation interval\n\n");
        for (int i = 0; i < c->n_intervals; i++) {
            sbuf_addf(&sb, "- interval %d, **%.3f** ", c->intervals[i].interval,
                      c->intervals[i].activation);
            add_md_context(&sb, &c->intervals[i]);
            sbuf_adds(&sb, "\n");
        }
    }
    if (c->n_logits) {
        sbuf_addf(&sb, "\n### Logit effects (%s)\n\n| promoted | effect | suppressed | effect |\n"
                       "|---|---:|---|---:|\n", c->logits_source);
        for (int i = 0; i < c->n_logits; i++) {
            sbuf_adds(&sb, "| ");
            add_md(&sb, c->logit_top[i].text);
            sbuf_addf(&sb, " | %.4f | ", c->logit_top[i].value);
            add_md(&sb, c->logit_bottom[i].text);
            sbuf_addf(&sb, " | %.4f |\n", c->logit_bottom[i].value);
        }
    }
    if (c->n_neighbors) {
        sbuf_addf(&sb, "\n### Nearest neighbours by decoder cosine (%s)\n\n| feature | cosine | "
                       "description |\n|---:|---:|---|\n", c->neighbors_source);
        for (int i = 0; i < c->n_neighbors; i++) {
            sbuf_addf(&sb, "| %d | %.4f | ", c->neighbors[i].feature, c->neighbors[i].cosine);
            add_md(&sb, c->neighbors[i].description ? c->neighbors[i].description : "-");
            sbuf_adds(&sb, " |\n");
        }
    }
    sbuf_adds(&sb, "\n### Best-correlated MLP neuron\n\n");
    if (c->neuron_source)
        sbuf_addf(&sb, "Layer %d, neuron %d: Pearson r = %.4f over %lld tokens (%s).\n",
                  c->neuron_layer, c->neuron, c->neuron_pearson, (long long)c->neuron_tokens,
                  c->neuron_source);
    else
        sbuf_adds(&sb, "Not stored and not computed.\n");
    sbuf_adds(&sb, "\n### Provenance\n\n| field | value |\n| :-- | :-- |\n");
    {
        char **k, **v;
        int    n;
        prov_lines(c, &k, &v, &n);
        for (int i = 0; i < n; i++) {
            sbuf_adds(&sb, "| ");
            add_md(&sb, k[i]);
            sbuf_adds(&sb, " | ");
            add_md(&sb, v[i]);
            sbuf_adds(&sb, " |\n");
        }
        prov_lines_free(k, v, n);
    }
    return sbuf_detach(&sb);
}

// ---------------------------------------------------------------------------- JSON

static void add_num(cJSON *o, const char *k, double v) {
    if (isfinite(v)) cJSON_AddNumberToObject(o, k, v);
    else cJSON_AddNullToObject(o, k);
}

static void add_str(cJSON *o, const char *k, const char *v) {
    if (v) cJSON_AddStringToObject(o, k, v);
    else cJSON_AddNullToObject(o, k);
}

static cJSON *json_context(const struct card_context *x) {
    cJSON *o = cJSON_CreateObject(), *toks = cJSON_CreateArray();
    cJSON_AddNumberToObject(o, "example_id", (double)x->example_id);
    cJSON_AddStringToObject(o, "kind", x->kind);
    if (x->interval >= 0) cJSON_AddNumberToObject(o, "interval", x->interval);
    else cJSON_AddNullToObject(o, "interval");
    add_num(o, "activation", x->activation);
    cJSON_AddNumberToObject(o, "center", x->center);
    char *t = context_text(x);
    cJSON_AddStringToObject(o, "text", t);
    free(t);
    for (int k = 0; k < x->n; k++) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "text", x->pieces[k]);
        add_num(e, "act", x->acts[k]);
        cJSON_AddItemToArray(toks, e);
    }
    cJSON_AddItemToObject(o, "tokens", toks);
    return o;
}

static cJSON *json_tokens(const struct card_token *t, int n) {
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < n; i++) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddNumberToObject(e, "token", t[i].token);
        cJSON_AddStringToObject(e, "text", t[i].text ? t[i].text : "");
        add_num(e, "effect", t[i].value);
        cJSON_AddItemToArray(a, e);
    }
    return a;
}

/* A provenance value: null for "-" (not recorded). */
static void add_fact(cJSON *o, const char *k, const char *v) {
    add_str(o, k, v && strcmp(v, "-") != 0 ? v : NULL);
}

/* "provenance": {model: {path, sha256}, sae: {path, sha256}, hook, index: {run_id, tokens,
 * corpus, corpus_sha256, seed, date} or null, runs: [{run_id, kind, grader, template, seed,
 * date}]} */
static void json_provenance(cJSON *o, const struct card *c) {
    cJSON *p = cJSON_AddObjectToObject(o, "provenance"), *x;
    x = cJSON_AddObjectToObject(p, "model");
    cJSON_AddStringToObject(x, "path", c->model_path);
    add_str(x, "sha256", *c->model_hash ? c->model_hash : NULL);
    x = cJSON_AddObjectToObject(p, "sae");
    cJSON_AddStringToObject(x, "path", c->sae_path);
    add_str(x, "sha256", *c->sae_hash ? c->sae_hash : NULL);
    cJSON_AddStringToObject(p, "hook", c->hook);
    if (c->index_run > 0) {
        x = cJSON_AddObjectToObject(p, "index");
        cJSON_AddNumberToObject(x, "run_id", (double)c->index_run);
        cJSON_AddNumberToObject(x, "tokens", (double)c->index_tokens);
        add_fact(x, "corpus", c->index_corpus);
        add_fact(x, "corpus_sha256", c->index_corpus_hash);
        add_fact(x, "seed", c->index_seed);
        add_fact(x, "date", c->index_date);
    } else {
        cJSON_AddNullToObject(p, "index");
    }
    cJSON *a = cJSON_AddArrayToObject(p, "runs");
    for (int i = 0; i < c->n_runs; i++) {
        const struct card_run *r = &c->runs[i];
        x = cJSON_CreateObject();
        cJSON_AddNumberToObject(x, "run_id", (double)r->id);
        add_fact(x, "kind", r->kind);
        add_fact(x, "grader", r->grader);
        add_fact(x, "template", r->template);
        add_fact(x, "seed", r->seed);
        add_fact(x, "date", r->date);
        cJSON_AddItemToArray(a, x);
    }
}

char *card_render_json(const struct card *c) {
    cJSON *o = cJSON_CreateObject(), *a, *e;
    cJSON_AddStringToObject(o, "schema", "evalrun.feature_card/1");
    cJSON_AddNumberToObject(o, "feature", c->feature);
    cJSON_AddNumberToObject(o, "d_sae", c->d_sae);
    cJSON_AddStringToObject(o, "sae", c->sae_path);
    cJSON_AddStringToObject(o, "model", c->model_path);
    cJSON_AddStringToObject(o, "hook", c->hook);
    a = cJSON_AddArrayToObject(o, "descriptions");
    for (int i = 0; i < c->n_desc; i++) {
        e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "text", c->desc[i].text);
        add_str(e, "source", c->desc[i].source);
        if (c->desc[i].run_id > 0) cJSON_AddNumberToObject(e, "run_id", (double)c->desc[i].run_id);
        else cJSON_AddNullToObject(e, "run_id");
        cJSON_AddItemToArray(a, e);
    }
    a = cJSON_AddArrayToObject(o, "scores");
    for (int i = 0; i < c->n_scores; i++) {
        e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "kind", c->scores[i].kind);
        cJSON_AddNumberToObject(e, "run_id", (double)c->scores[i].run_id);
        add_str(e, "grader", c->scores[i].grader);
        cJSON_AddStringToObject(e, "items", c->scores[i].items);
        cJSON_AddNumberToObject(e, "n", c->scores[i].n);
        add_num(e, "mean", c->scores[i].mean);
        add_num(e, "ci95", c->scores[i].ci95);
        cJSON_AddNumberToObject(e, "unparsed", c->scores[i].n_unparsed);
        cJSON_AddNumberToObject(e, "skipped", c->scores[i].n_skipped);
        cJSON_AddItemToArray(a, e);
    }
    json_provenance(o, c);
    a = cJSON_AddArrayToObject(o, "categories");
    for (int i = 0; i < c->n_categories; i++)
        cJSON_AddItemToArray(a, cJSON_CreateString(c->categories[i]));
    if (c->has_stats) {
        e = cJSON_AddObjectToObject(o, "stats");
        cJSON_AddNumberToObject(e, "n_tokens", (double)c->n_tokens);
        cJSON_AddNumberToObject(e, "fire_count", (double)c->fire_count);
        add_num(e, "density", c->density);
        add_num(e, "max_act", c->max_act);
        add_num(e, "mean_act", c->mean_act);
        cJSON *q = cJSON_AddObjectToObject(e, "quantiles");
        add_num(q, "0.1", c->q10);
        add_num(q, "0.5", c->q50);
        add_num(q, "0.9", c->q90);
        add_num(q, "0.99", c->q99);
    } else {
        cJSON_AddNullToObject(o, "stats");
    }
    e = cJSON_AddObjectToObject(o, "histogram");
    cJSON_AddStringToObject(e, "source", "stored_contexts");
    add_num(e, "max", c->hist_max);
    cJSON_AddNumberToObject(e, "n", (double)c->hist_n);
    a = cJSON_AddArrayToObject(e, "bins");
    for (int i = 0; i < CARD_HIST_BINS && c->hist_max > 0; i++) {
        cJSON *bn = cJSON_CreateObject();
        cJSON_AddNumberToObject(bn, "lo", c->hist_max * i / CARD_HIST_BINS);
        cJSON_AddNumberToObject(bn, "hi", c->hist_max * (i + 1) / CARD_HIST_BINS);
        cJSON_AddNumberToObject(bn, "count", (double)c->hist[i]);
        cJSON_AddItemToArray(a, bn);
    }
    a = cJSON_AddArrayToObject(o, "top_contexts");
    for (int i = 0; i < c->n_top; i++) cJSON_AddItemToArray(a, json_context(&c->top[i]));
    a = cJSON_AddArrayToObject(o, "interval_contexts");
    for (int i = 0; i < c->n_intervals; i++)
        cJSON_AddItemToArray(a, json_context(&c->intervals[i]));
    e = cJSON_AddObjectToObject(o, "logit_effects");
    add_str(e, "source", c->logits_source);
    cJSON_AddItemToObject(e, "top", json_tokens(c->logit_top, c->n_logits));
    cJSON_AddItemToObject(e, "bottom", json_tokens(c->logit_bottom, c->n_logits));
    e = cJSON_AddObjectToObject(o, "neighbors");
    add_str(e, "source", c->neighbors_source);
    a = cJSON_AddArrayToObject(e, "items");
    for (int i = 0; i < c->n_neighbors; i++) {
        cJSON *n = cJSON_CreateObject();
        cJSON_AddNumberToObject(n, "feature", c->neighbors[i].feature);
        add_num(n, "cosine", c->neighbors[i].cosine);
        add_str(n, "description", c->neighbors[i].description);
        cJSON_AddItemToArray(a, n);
    }
    if (c->neuron_source) {
        e = cJSON_AddObjectToObject(o, "neuron");
        cJSON_AddStringToObject(e, "source", c->neuron_source);
        cJSON_AddNumberToObject(e, "layer", c->neuron_layer);
        cJSON_AddNumberToObject(e, "neuron", c->neuron);
        add_num(e, "pearson", c->neuron_pearson);
        cJSON_AddNumberToObject(e, "n_tokens", (double)c->neuron_tokens);
    } else {
        cJSON_AddNullToObject(o, "neuron");
    }
    char *s = json_print_pretty(o);
    json_free(o);
    return s;
}
