/*
 * report — building a run's tables and figures from the database, and rendering them (see
 * report.h). Sections are built per run kind by the build_* functions below; each reads with
 * prepared statements only and leaves the database untouched.
 */
#include "evals/report.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/json.h"
#include "evals/controls.h"
#include "evals/influence_report.h"
#include "evals/stats.h"
#include "evals/svg.h"
#include "store/attributions.h"
#include "store/features.h"
#include "store/generations.h"
#include "store/grades.h"
#include "store/items.h"
#include "store/ledger.h"
#include "store/runinfo.h"
#include "store/runs.h"
#include "store/saestats.h"

// ---------------------------------------------------------------------------- building blocks

static struct report_section *sec_new(struct report *r, const char *title) {
    r->sections = xrealloc(r->sections, (size_t)(r->n_sections + 1) * sizeof *r->sections);
    struct report_section *s = &r->sections[r->n_sections++];
    memset(s, 0, sizeof *s);
    s->title = xstrdup(title);
    return s;
}

static void sec_textf(struct report_section *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void sec_textf(struct report_section *s, const char *fmt, ...) {
    struct sbuf sb;
    sbuf_init(&sb);
    if (s->text) sbuf_adds(&sb, s->text), sbuf_adds(&sb, " ");
    va_list ap;
    va_start(ap, fmt);
    char   *t = NULL;
    int     n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    t = xmalloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(t, (size_t)n + 1, fmt, ap);
    va_end(ap);
    sbuf_adds(&sb, t);
    free(t);
    free(s->text);
    s->text = sbuf_detach(&sb);
}

/* title in lower case, each run of characters other than [a-z0-9] as one '_', no '_' at
 * either end ("Mean score per interval" -> "mean_score_per_interval"). Caller frees. */
static char *slug(const char *title) {
    size_t n = strlen(title), k = 0;
    char  *o = xmalloc(n + 2);
    for (const char *c = title; *c; c++) {
        char ch = *c >= 'A' && *c <= 'Z' ? (char)(*c - 'A' + 'a') : *c;
        if ((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9')) o[k++] = ch;
        else if (k > 0 && o[k - 1] != '_') o[k++] = '_';
    }
    while (k > 0 && o[k - 1] == '_') k--;
    if (k == 0) o[k++] = 't';
    o[k] = 0;
    return o;
}

/* Makes the tables' names unique: a second "x" becomes "x_2", a third "x_3". */
static void unique_names(struct report *r) {
    int n = report_n_tables(r);
    for (int i = 1; i < n; i++) {
        struct report_table *t = (struct report_table *)report_table_at(r, i);
        for (int dup = 2;; dup++) {
            int clash = 0;
            for (int j = 0; j < i && !clash; j++) clash = !strcmp(report_table_at(r, j)->name, t->name);
            if (!clash) break;
            char *base = xstrdup(t->name), *u = strrchr(base, '_');
            if (dup > 2 && u) *u = 0; /* "x_2" -> "x" before "x_3" */
            free(t->name);
            t->name = xasprintf("%s_%d", base, dup);
            free(base);
        }
    }
}

/* A table with the columns given as a NULL-terminated list. */
static struct report_table *tab_new(struct report_section *s, const char *title, ...) {
    s->tables = xrealloc(s->tables, (size_t)(s->n_tables + 1) * sizeof *s->tables);
    struct report_table *t = xcalloc(1, sizeof *t);
    s->tables[s->n_tables++] = t;
    t->title = xstrdup(title);
    t->name = slug(title);
    va_list ap;
    va_start(ap, title);
    for (const char *c = va_arg(ap, const char *); c; c = va_arg(ap, const char *)) {
        t->cols = xrealloc(t->cols, (size_t)(t->n_cols + 1) * sizeof *t->cols);
        t->cols[t->n_cols++] = xstrdup(c);
    }
    va_end(ap);
    return t;
}

static void tab_add_col(struct report_table *t, const char *name) {
    EV_ASSERT(t->n_rows == 0);
    t->cols = xrealloc(t->cols, (size_t)(t->n_cols + 1) * sizeof *t->cols);
    t->cols[t->n_cols++] = xstrdup(name);
}

/* Starts a row of empty cells; returns its index. */
static int tab_row(struct report_table *t) {
    t->cells = xrealloc(t->cells, (size_t)(t->n_rows + 1) * t->n_cols * sizeof *t->cells);
    for (int c = 0; c < t->n_cols; c++) t->cells[(size_t)t->n_rows * t->n_cols + c] = xstrdup("");
    return t->n_rows++;
}

static void tab_set(struct report_table *t, int row, int col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void tab_set(struct report_table *t, int row, int col, const char *fmt, ...) {
    EV_ASSERT(row < t->n_rows && col < t->n_cols);
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *v = xmalloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(v, (size_t)n + 1, fmt, ap);
    va_end(ap);
    size_t i = (size_t)row * t->n_cols + col;
    free(t->cells[i]);
    t->cells[i] = v;
}

static void tab_str(struct report_table *t, int row, int col, const char *s) {
    tab_set(t, row, col, "%s", s ? s : "");
}

/* A number with d decimals, or "-" when NAN. */
static void tab_num(struct report_table *t, int row, int col, double v, int d) {
    if (isnan(v)) tab_set(t, row, col, "-");
    else tab_set(t, row, col, "%.*f", d, v);
}

static void fig_add(struct report_section *s, const char *title, struct sbuf *svg) {
    s->figures = xrealloc(s->figures, (size_t)(s->n_figures + 1) * sizeof *s->figures);
    s->figures[s->n_figures].title = xstrdup(title);
    s->figures[s->n_figures].svg   = sbuf_detach(svg);
    s->n_figures++;
}


/* The building blocks for other files (report.h). */
struct report_section *report_section_add(struct report *r, const char *title) {
    return sec_new(r, title);
}
void report_section_text(struct report_section *s, const char *text) { sec_textf(s, "%s", text); }
struct report_table *report_table_add(struct report_section *s, const char *title,
                                      const char *const *cols, int n_cols) {
    struct report_table *t = tab_new(s, title, (const char *)NULL);
    for (int c = 0; c < n_cols; c++) tab_add_col(t, cols[c]);
    return t;
}
int  report_table_row(struct report_table *t) { return tab_row(t); }
void report_table_str(struct report_table *t, int row, int col, const char *v) {
    tab_str(t, row, col, v);
}
void report_table_num(struct report_table *t, int row, int col, double v, int d) {
    tab_num(t, row, col, v, d);
}
void report_figure_add(struct report_section *s, const char *title, struct sbuf *svg) {
    fig_add(s, title, svg);
}

static int64_t run_sae_id(struct store *s, int64_t run_id) {
    char         *kind = NULL;
    int64_t       id = 0;
    struct ev_err e;
    if (runs_kind(s, run_id, &kind, &id, &e) != EV_OK) id = 0;
    free(kind);
    return id;
}

/* Whose grades the tables show: the human raters' when no LLM grade parsed (a run rated
 * with `evalrun review`), else the LLM's (runinfo). */
static const char *grader_kind(const struct report *rep) {
    return strcmp(rep->run.grades.kind, "human") == 0 ? "human" : "llm";
}

// ---------------------------------------------------------------------------- provenance

static void fmt_started(char *buf, size_t n, int64_t ms);

static void fact(struct report_fact **facts, int *n, const char *key, const char *value) {
    *facts = xrealloc(*facts, (size_t)(*n + 1) * sizeof **facts);
    (*facts)[*n].key   = xstrdup(key);
    (*facts)[*n].value = xstrdup(value && *value ? value : "-");
    (*n)++;
}

/* "path (sha256 HASH)", "sha256 HASH", path, or "" */
static char *path_hash(const char *path, const char *hash) {
    if (*path && *hash) return xasprintf("%s (sha256 %s)", path, hash);
    if (*hash) return xasprintf("sha256 %s", hash);
    return xstrdup(path);
}

/* The provenance facts of run r: what a reader needs to trust the numbers (issue 17.4).
 * Every key is always there, "-" when the run does not record it. */
static int provenance_facts(struct store *s, const struct cmp_run *r, struct report_fact **facts,
                            int *n, struct ev_err *err) {
    struct runs_provenance pv;
    int                    rc = runs_provenance(s, r->id, &pv, err);
    if (rc != EV_OK) return rc;
    cJSON        *cfg = NULL;
    struct ev_err e2;
    const char   *ffile = NULL, *fsha = NULL, *tpl = r->template_hash, *hook = r->hook;
    const char   *cfg_grader = NULL; /* the configured grader: named when no grade parsed */
    long          seed = pv.seed, intervals = 0;
    json_parse(r->config_json, strlen(r->config_json), "runs.config_json", &cfg, &e2);
    if (cfg) {
        json_get_str_opt(cfg, "features_file", "config", &ffile, &e2);
        json_get_str_opt(cfg, "features_file_sha256", "config", &fsha, &e2);
        json_get_long_opt(cfg, "intervals", "config", &intervals, &e2);
        json_get_str_opt(cfg, "grader", "config", &cfg_grader, &e2);
        if (!tpl) json_get_str_opt(cfg, "template", "config", &tpl, &e2);
        if (!hook) json_get_str_opt(cfg, "hook", "config", &hook, &e2);
        if (seed < 0) json_get_long_opt(cfg, "seed", "config", &seed, &e2);
    }
    char *v = NULL;
    v = xasprintf("%lld%s%s%s, %s, %s", (long long)r->id, r->tag ? " (" : "",
                  r->tag ? r->tag : "", r->tag ? ")" : "", r->kind, r->status);
    fact(facts, n, "run", v);
    free(v);
    const char *mh = *pv.model_hash ? pv.model_hash : r->model_hash ? r->model_hash : "";
    v = path_hash(pv.model_path, mh);
    fact(facts, n, "model", v);
    free(v);
    v = path_hash(pv.sae_path, pv.sae_hash);
    fact(facts, n, "SAE", v);
    free(v);
    fact(facts, n, "hook", hook);
    const struct runinfo_grades *g = &r->grades;
    /* the names of the graders with a parsed grade; a run none of whose answers parsed still
     * names the LLM it asked (its configuration's) */
    const char *names = *g->names ? g->names
                        : cfg_grader && strcmp(g->kind, "llm") == 0 ? cfg_grader : "";
    if (*g->kind)
        v = xasprintf("%s%s%s; %lld parsed, %lld unparsed, %lld skipped, %lld failed", g->kind,
                      *names ? " " : "", names, (long long)g->n_ok,
                      (long long)g->n_unparsed, (long long)g->n_skipped, (long long)g->n_error);
    else
        v = xstrdup("none (no grades)");
    fact(facts, n, "grader", v);
    free(v);
    v = tpl ? xasprintf("sha256 %s", tpl) : NULL;
    fact(facts, n, "template", v);
    free(v);
    v = seed >= 0 ? xasprintf("%ld", seed) : NULL;
    fact(facts, n, "seed", v);
    free(v);
    if (r->features || ffile || fsha) {
        struct sbuf sb;
        sbuf_init(&sb);
        if (ffile) sbuf_addf(&sb, "%s ", ffile);
        if (fsha) sbuf_addf(&sb, "%s(sha256 %s)", ffile ? "" : "a file ", fsha);
        if (r->features) {
            int long_list = strlen(r->features) > 120;
            sbuf_addf(&sb, "%s%d feature%s: %.*s%s", sb.len ? "; " : "", r->n_features,
                      r->n_features == 1 ? "" : "s", long_list ? 120 : 100000, r->features,
                      long_list ? "..." : "");
        }
        fact(facts, n, "features", sb.buf);
        sbuf_release(&sb);
    } else {
        fact(facts, n, "features", NULL);
    }
    if (r->per_interval >= 0)
        v = intervals > 0 ? xasprintf("%ld (%ld intervals)", r->per_interval, intervals)
                          : xasprintf("%ld", r->per_interval);
    else
        v = NULL;
    fact(facts, n, "per interval", v);
    free(v);
    char a[64], b[64];
    fmt_started(a, sizeof a, pv.started_ms);
    if (pv.finished_ms >= 0) fmt_started(b, sizeof b, pv.finished_ms);
    v = pv.finished_ms >= 0 ? xasprintf("%s to %s", a, b) : xasprintf("%s (not finished)", a);
    fact(facts, n, "date", v);
    free(v);
    fact(facts, n, "code version", pv.code_version);
    json_free(cfg);
    return EV_OK;
}

int report_run_provenance(struct store *s, int64_t run_id, struct report_fact **facts, int *n,
                          struct ev_err *err) {
    struct cmp_run r;
    char           id[32];
    *facts = NULL;
    *n = 0;
    snprintf(id, sizeof id, "%lld", (long long)run_id);
    int rc = cmp_run_load(s, id, &r, err);
    if (rc != EV_OK) return rc;
    rc = provenance_facts(s, &r, facts, n, err);
    cmp_run_release(&r);
    if (rc != EV_OK) report_facts_release(*facts, *n), *facts = NULL, *n = 0;
    return rc;
}

void report_facts_release(struct report_fact *f, int n) {
    for (int i = 0; i < n; i++) {
        free(f[i].key);
        free(f[i].value);
    }
    free(f);
}

const char *report_fact_get(const struct report_fact *f, int n, const char *key) {
    for (int i = 0; i < n; i++)
        if (strcmp(f[i].key, key) == 0) return f[i].value;
    return "-";
}

/* The provenance block, the report's first table (and rep->facts). */
static int build_provenance(struct store *s, struct report *rep, struct ev_err *err) {
    int rc = provenance_facts(s, &rep->run, &rep->facts, &rep->n_facts, err);
    if (rc != EV_OK) return rc;
    struct report_section *sec = sec_new(rep, "Provenance");
    struct report_table   *t = tab_new(sec, "Provenance", "field", "value", (const char *)NULL);
    for (int i = 0; i < rep->n_facts; i++) {
        int row = tab_row(t);
        tab_str(t, row, 0, rep->facts[i].key);
        tab_str(t, row, 1, rep->facts[i].value);
    }
    return EV_OK;
}

// ---------------------------------------------------------------------------- specificity

/* Scores of one group of contexts (a feature's, or all features'), per interval 0..63 and
 * over all activating / non-activating contexts. Slot 64 is the non-activating one. */
enum { SPEC_NON = 64, SPEC_SLOTS = 65, SPEC_EXAMPLES = 3 };

struct spec_acc {
    double sum, sumsq;
    int    n, n3, cnt[4]; /* n3: scores of 3 (a mean of several graders' at least 2.999) */
};

struct spec_feat {
    int64_t         feature;
    struct spec_acc iv[SPEC_SLOTS];
    struct spec_acc act; /* every activating context */
    int             unparsed, skipped, pending, items;
    int             iv_unparsed[SPEC_SLOTS], iv_skipped[SPEC_SLOTS]; /* the same per interval */
    int             shown[SPEC_SLOTS]; /* example contexts taken per interval */
};

static struct spec_feat *spec_feat_get(struct spec_feat **f, int *n, int64_t id) {
    for (int i = 0; i < *n; i++)
        if ((*f)[i].feature == id) return &(*f)[i];
    *f = xrealloc(*f, (size_t)(*n + 1) * sizeof **f);
    memset(&(*f)[*n], 0, sizeof **f);
    (*f)[*n].feature = id;
    return &(*f)[(*n)++];
}

static void acc_add(struct spec_acc *a, double score) {
    a->sum += score;
    a->sumsq += score * score;
    a->n++;
    if (score >= 2.999) a->n3++;
    long r = lround(score); /* an item graded by several graders counts with its rounded mean */
    if (r >= 0 && r <= 3) a->cnt[r]++;
}

static double acc_mean(const struct spec_acc *a) { return a->n ? a->sum / a->n : (double)NAN; }

/* Half the width of the normal 95% interval of the mean, 1.96 s / sqrt(n) (s the sample
 * standard deviation); NAN below two contexts. */
static double acc_ci95(const struct spec_acc *a) {
    if (a->n < 2) return NAN;
    double m = a->sum / a->n, var = (a->sumsq - a->n * m * m) / (a->n - 1);
    return 1.96 * sqrt(var > 0 ? var : 0) / sqrt((double)a->n);
}

static void spec_add(struct spec_feat *f, int slot, int has, double score, int unparsed,
                     int skipped) {
    f->items++;
    if (unparsed) f->unparsed++, f->iv_unparsed[slot]++;
    else if (skipped) f->skipped++, f->iv_skipped[slot]++; /* a rater's skip: no parse failure */
    else if (!has) f->pending++;
    if (!has) return;
    acc_add(&f->iv[slot], score);
    if (slot != SPEC_NON) acc_add(&f->act, score);
}

static char *feature_desc(struct store *s, int64_t sae_id, int64_t idx) {
    return features_description(s, sae_id, (int)idx, NULL);
}

static const char *const SCORE_NAMES[4] = {"0 irrelevant", "1 vaguely related", "2 loosely related",
                                            "3 cleanly identifies"};
static const char *const SCORE_COLOURS[4] = {"#d9d9d9", "#9ecae1", "#4292c6", "#08306b"};

/* The two figures of the section: the paper's distribution of scores per interval as stacked
 * bars, and the mean per interval with its 95% interval. */
static void spec_figures(struct report_section *sec, const struct spec_feat *all, int K) {
    char  **labels = xcalloc((size_t)K + 1, sizeof *labels);
    double *cnt = xcalloc((size_t)(K + 1) * 4, sizeof *cnt);
    double *mean = xcalloc((size_t)K + 1, sizeof *mean), *lo = xcalloc((size_t)K + 1, sizeof *lo),
           *hi = xcalloc((size_t)K + 1, sizeof *hi);
    for (int j = 0; j <= K; j++) {
        const struct spec_acc *a = j == 0 ? &all->iv[SPEC_NON] : &all->iv[j - 1];
        labels[j] = j == 0 ? xstrdup("non") : xasprintf("%d", j);
        for (int k = 0; k < 4; k++) cnt[(size_t)j * 4 + k] = a->cnt[k];
        mean[j] = acc_mean(a);
        double h = acc_ci95(a);
        lo[j] = mean[j] - h, hi[j] = mean[j] + h;
    }
    struct sbuf sb;
    sbuf_init(&sb);
    svg_stacked_bars(&sb, "Specificity score distribution by activation interval",
                     (const char *const *)labels, cnt, K + 1, 4, SCORE_NAMES, SCORE_COLOURS,
                     "activation interval (non = non-activating contexts)", "share of contexts");
    fig_add(sec, "Distribution of scores (0-3) per activation interval, all features (the "
                 "paper's figure)", &sb);
    sbuf_init(&sb);
    svg_bar_chart_err(&sb, "Specificity by activation interval", (const char *const *)labels, mean,
                      lo, hi, K + 1, "activation interval (non = non-activating)",
                      "mean score (0-3)", 3.0);
    fig_add(sec, "Mean score per activation interval (all features), whiskers: 95% interval of "
                 "the mean", &sb);
    for (int j = 0; j <= K; j++) free(labels[j]);
    free(labels), free(cnt), free(mean), free(lo), free(hi);
}

static int build_specificity(struct store *s, struct report *rep, struct ev_err *err) {
    struct spec_feat  *f = NULL, all;
    int                nf = 0, K = 0, rc = EV_OK;
    const char        *gk = grader_kind(rep);
    int64_t            sae_id = run_sae_id(s, rep->run.id);
    memset(&all, 0, sizeof all);
    /* K from the configuration, else from the data */
    cJSON *cfg = NULL;
    if (json_parse(rep->run.config_json, strlen(rep->run.config_json), "runs.config_json", &cfg,
                   err) == EV_OK) {
        long k = 0;
        if (json_get_long_opt(cfg, "intervals", "config", &k, err) == EV_OK && k > 0 && k <= 64)
            K = (int)k;
        json_free(cfg);
    }
    struct items_scored_row *rows = NULL;
    int                      n_rows = 0;
    rc = items_scored(s, rep->run.id, gk, "interval", "nonactivating", &rows, &n_rows, err);
    if (rc != EV_OK) return rc;
    struct report_section *sec = sec_new(rep, "Specificity by activation interval");
    struct report_table   *ex  = NULL; /* the example contexts, filled while reading */
    for (int q = 0; q < n_rows; q++) {
        const struct items_scored_row *it = &rows[q];
        struct spec_feat *sf = spec_feat_get(&f, &nf, it->feature);
        int               iv = it->interval;
        int               has = it->has_score;
        double            sc = it->score;
        int               unp = it->unparsed, skp = it->skipped;
        int               slot = strcmp(it->kind, "interval") == 0 ? iv : SPEC_NON;
        if (slot < 0 || slot > SPEC_NON) continue; /* an interval beyond 64: not reported */
        if (slot != SPEC_NON && iv + 1 > K) K = iv + 1;
        spec_add(sf, slot, has, sc, unp && !has, skp && !unp && !has);
        spec_add(&all, slot, has, sc, unp && !has, skp && !unp && !has);
        /* up to SPEC_EXAMPLES contexts per feature and interval (two non-activating), in item
         * key order, with the tokens the grader saw marked */
        const char *pj = it->payload_json;
        if (sf->shown[slot] >= (slot == SPEC_NON ? 2 : SPEC_EXAMPLES) || !pj) continue;
        cJSON        *j = NULL;
        const char   *ctx = NULL;
        struct ev_err e2;
        if (json_parse(pj, strlen(pj), "payload", &j, &e2) == EV_OK &&
            json_get_str_opt(j, "context", "payload", &ctx, &e2) == EV_OK && ctx) {
            if (!ex)
                ex = tab_new(sec, "Example contexts", "feature", "interval", "score", "status",
                             "context", (const char *)NULL);
            int row = tab_row(ex);
            tab_set(ex, row, 0, "%lld", (long long)sf->feature);
            if (slot == SPEC_NON) tab_str(ex, row, 1, "non");
            else tab_set(ex, row, 1, "%d", iv + 1);
            tab_num(ex, row, 2, has ? sc : (double)NAN, 2);
            /* why a context has no score: never a bare '-' */
            tab_str(ex, row, 3, has ? "graded" : unp ? "unparsed" : skp ? "skipped" : "pending");
            tab_str(ex, row, 4, ctx);
            sf->shown[slot]++;
        }
        json_free(j);
    }
    items_scored_free(rows, n_rows);


    sec_textf(sec,
              "Mean %s score (0-3) of the contexts drawn from each activation interval of (0, "
              "max], 1 = the lowest tenth when K = 10; act = mean over all activating contexts "
              "with act_ci95 the half-width of its 95%% interval (1.96 s / sqrt(n)), share3 = "
              "share of 3s among them (%%), nonact = mean over non-activating contexts (a good "
              "description scores near 0 there). Example contexts: up to %d per feature and "
              "interval (2 non-activating), the activating tokens marked.",
              strcmp(gk, "llm") == 0 ? "LLM" : "human", SPEC_EXAMPLES);
    struct report_table *t = tab_new(sec, "Mean score per activation interval", "feature",
                                     "description", (const char *)NULL);
    for (int j = 0; j < K; j++) {
        char name[16];
        snprintf(name, sizeof name, "%d", j + 1);
        tab_add_col(t, name);
    }
    const char *tail[] = {"act", "act_ci95", "share3", "nonact", "graded", "unparsed",
                          "skipped", "pending"};
    for (int j = 0; j < 8; j++) tab_add_col(t, tail[j]);
    for (int i = 0; i <= nf; i++) {
        struct spec_feat *sf = i < nf ? &f[i] : &all;
        int               row = tab_row(t);
        if (i < nf) {
            char *d = feature_desc(s, sae_id, sf->feature);
            tab_set(t, row, 0, "%lld", (long long)sf->feature);
            tab_str(t, row, 1, d ? d : "-");
            free(d);
        } else {
            tab_str(t, row, 0, "overall");
        }
        for (int j = 0; j < K; j++) tab_num(t, row, 2 + j, acc_mean(&sf->iv[j]), 2);
        tab_num(t, row, 2 + K, acc_mean(&sf->act), 2);
        tab_num(t, row, 3 + K, acc_ci95(&sf->act), 2);
        tab_num(t, row, 4 + K, sf->act.n ? 100.0 * sf->act.n3 / sf->act.n : (double)NAN, 1);
        tab_num(t, row, 5 + K, acc_mean(&sf->iv[SPEC_NON]), 2);
        tab_set(t, row, 6 + K, "%d", sf->act.n + sf->iv[SPEC_NON].n);
        tab_set(t, row, 7 + K, "%d", sf->unparsed);
        tab_set(t, row, 8 + K, "%d", sf->skipped);
        tab_set(t, row, 9 + K, "%d", sf->pending);
    }
    /* the figures' numbers: one row per interval over all features */
    struct report_table *pi = tab_new(sec, "Scores per activation interval (all features)",
                                      "interval", "n", "unparsed", "skipped", "mean", "ci95_lo",
                                      "ci95_hi", "score0", "score1", "score2", "score3",
                                      (const char *)NULL);
    for (int j = 0; j <= K; j++) {
        const struct spec_acc *a = j < K ? &all.iv[j] : &all.iv[SPEC_NON];
        int                    row = tab_row(pi);
        double                 m = acc_mean(a), h = acc_ci95(a);
        if (j < K) tab_set(pi, row, 0, "%d", j + 1);
        else tab_str(pi, row, 0, "non");
        int slot = j < K ? j : SPEC_NON;
        tab_set(pi, row, 1, "%d", a->n);
        tab_set(pi, row, 2, "%d", all.iv_unparsed[slot]);
        tab_set(pi, row, 3, "%d", all.iv_skipped[slot]);
        tab_num(pi, row, 4, m, 3);
        tab_num(pi, row, 5, m - h, 3);
        tab_num(pi, row, 6, m + h, 3);
        for (int k = 0; k < 4; k++) tab_set(pi, row, 7 + k, "%d", a->cnt[k]);
    }
    if (ex) { /* the examples after the two summary tables */
        sec->tables[sec->n_tables - 3] = t;
        sec->tables[sec->n_tables - 2] = pi;
        sec->tables[sec->n_tables - 1] = ex;
    }
    spec_figures(sec, &all, K);
    free(f);
    return EV_OK;
}

/* Counts of each score 0..3 per item kind (the paper's score distributions). */
struct dist_ctx {
    struct report         *rep;
    const char            *gk;
    struct report_section *sec;
    struct report_table   *t;
    char                   last[64];
    int                    row;
    long                   cnt[7];
};

static int dist_add(void *ctx, const char *kind, const char *ps, int score, long c) {
    struct dist_ctx *d = ctx;
    if (!d->sec) {
        d->sec = sec_new(d->rep, "Score distributions");
        sec_textf(d->sec, "Number of %s grades of each score, per item kind.", d->gk);
        d->t = tab_new(d->sec, "Scores per item kind", "kind", "0", "1", "2", "3", "unparsed",
                       "skipped", "error", "total", (const char *)NULL);
    }
    struct report_table *t = d->t;
    long                *cnt = d->cnt;
    if (strcmp(kind, d->last) != 0) {
        d->row = tab_row(t);
        tab_str(t, d->row, 0, kind);
        snprintf(d->last, sizeof d->last, "%s", kind);
        memset(d->cnt, 0, sizeof d->cnt);
    }
    if (strcmp(ps, "ok") == 0 && score >= 0) {
        if (score <= 3) cnt[score] += c;
    } else if (strcmp(ps, "unparsed") == 0) {
        cnt[4] += c;
    } else if (strcmp(ps, "skipped") == 0) {
        cnt[6] += c;
    } else {
        cnt[5] += c;
    }
    long parsed = cnt[0] + cnt[1] + cnt[2] + cnt[3];
    for (int j = 0; j < 4; j++) tab_set(t, d->row, 1 + j, "%ld", cnt[j]);
    tab_set(t, d->row, 5, "%ld", cnt[4]);
    tab_set(t, d->row, 6, "%ld", cnt[6]);
    tab_set(t, d->row, 7, "%ld", cnt[5]);
    tab_set(t, d->row, 8, "%ld", parsed + cnt[4] + cnt[5] + cnt[6]);
    return EV_OK;
}

static int build_distribution(struct store *s, struct report *rep, struct ev_err *err) {
    struct dist_ctx d = {.rep = rep, .gk = grader_kind(rep), .row = -1};
    return grades_score_counts(s, rep->run.id, d.gk, dist_add, &d, err);
}

// ---------------------------------------------------------------------------- agreement

struct rater {
    char   *kind, *name;
    int     n;
    char  **keys;
    int    *scores;
};

struct raters {
    struct rater *ra;
    int           nr, max_score, any_human;
};

static int rater_add(void *ctx, const char *k, const char *n, const char *key, int score) {
    struct raters *R = ctx;
    if (!R->nr || strcmp(R->ra[R->nr - 1].kind, k) || strcmp(R->ra[R->nr - 1].name, n)) {
        R->ra = xrealloc(R->ra, (size_t)(R->nr + 1) * sizeof *R->ra);
        memset(&R->ra[R->nr], 0, sizeof *R->ra);
        R->ra[R->nr].kind = xstrdup(k);
        R->ra[R->nr].name = xstrdup(n);
        if (strcmp(k, "human") == 0) R->any_human = 1;
        R->nr++;
    }
    struct rater *x = &R->ra[R->nr - 1];
    x->keys = xrealloc(x->keys, (size_t)(x->n + 1) * sizeof *x->keys);
    x->scores = xrealloc(x->scores, (size_t)(x->n + 1) * sizeof *x->scores);
    x->keys[x->n] = xstrdup(key);
    x->scores[x->n] = score;
    if (score > R->max_score) R->max_score = score;
    x->n++;
    return EV_OK;
}

static int build_agreement(struct store *s, struct report *rep, struct ev_err *err) {
    struct raters R = {NULL, 0, 1, 0};
    int           rc = grades_parsed_each(s, rep->run.id, rater_add, &R, err);
    struct rater *ra = R.ra;
    int           nr = R.nr, max_score = R.max_score, any_human = R.any_human;
    if (rc == EV_OK && any_human) {
        int k = max_score <= 1 ? 2 : 4; /* yes/no judgements, or the 0-3 rubric */
        struct report_section *sec = sec_new(rep, "Human-LLM agreement");
        sec_textf(sec, "Weighted Cohen's kappa (quadratic weights, %d categories) and Spearman's "
                       "rho on the items both graders scored, for each human rater against each "
                       "LLM grader and between human raters.", k);
        struct report_table *t = tab_new(sec, "Agreement per pair of graders", "grader A",
                                         "grader B", "items", "kappa_w", "spearman",
                                         "mean A", "mean B", (const char *)NULL);
        for (int i = 0; i < nr; i++)
            for (int j = 0; j < nr; j++) {
                if (i == j) continue;
                int hi = strcmp(ra[i].kind, "human") == 0, hj = strcmp(ra[j].kind, "human") == 0;
                if (!hi) continue;              /* A is always a human */
                if (hj && j < i) continue;      /* each human pair once */
                int    *a = xmalloc((size_t)(ra[i].n + 1) * sizeof *a);
                int    *b = xmalloc((size_t)(ra[i].n + 1) * sizeof *b);
                double *da = xmalloc((size_t)(ra[i].n + 1) * sizeof *da);
                double *db = xmalloc((size_t)(ra[i].n + 1) * sizeof *db);
                int     n = 0, p = 0, q = 0;
                while (p < ra[i].n && q < ra[j].n) { /* both sorted by item key */
                    int c = strcmp(ra[i].keys[p], ra[j].keys[q]);
                    if (c == 0) {
                        a[n] = ra[i].scores[p], b[n] = ra[j].scores[q];
                        da[n] = a[n], db[n] = b[n];
                        n++, p++, q++;
                    } else if (c < 0) p++;
                    else q++;
                }
                int row = tab_row(t);
                tab_set(t, row, 0, "%s:%s", ra[i].kind, ra[i].name);
                tab_set(t, row, 1, "%s:%s", ra[j].kind, ra[j].name);
                tab_set(t, row, 2, "%d", n);
                tab_num(t, row, 3, stats_kappa_quadratic(a, b, n, k), 3);
                tab_num(t, row, 4, stats_spearman(da, db, n), 3);
                tab_num(t, row, 5, stats_mean(da, n), 2);
                tab_num(t, row, 6, stats_mean(db, n), 2);
                free(a), free(b), free(da), free(db);
            }
    }
    for (int i = 0; i < nr; i++) {
        for (int j = 0; j < ra[i].n; j++) free(ra[i].keys[j]);
        free(ra[i].keys), free(ra[i].scores), free(ra[i].kind), free(ra[i].name);
    }
    free(ra);
    return rc;
}

// ---------------------------------------------------------------------------- categories

struct cat_ctx {
    struct report         *rep;
    struct report_section *sec;
    struct report_table   *t;
};

static int cat_add(void *ctx, const char *category, int n_features, double mean, int n_grades) {
    struct cat_ctx *c = ctx;
    if (!c->sec) {
        c->sec = sec_new(c->rep, "Feature categories");
        sec_textf(c->sec, "Categories recorded with 'evalrun tag' for the run's features; mean "
                          "score over their graded items that are not non-activating "
                          "contexts.");
        c->t = tab_new(c->sec, "Scores per feature category", "category", "features",
                       "mean score", "grades", (const char *)NULL);
    }
    int row = tab_row(c->t);
    tab_str(c->t, row, 0, category);
    tab_set(c->t, row, 1, "%d", n_features);
    tab_num(c->t, row, 2, mean, 2);
    tab_set(c->t, row, 3, "%d", n_grades);
    return EV_OK;
}

static int build_categories(struct store *s, struct report *rep, struct ev_err *err) {
    struct cat_ctx c = {rep, NULL, NULL};
    struct ev_err  e2;
    (void)err;
    /* feature_tags comes from another issue's migration: a database without it has none */
    features_category_scores(s, rep->run.id, grader_kind(rep), cat_add, &c, &e2);
    return EV_OK;
}

// ---------------------------------------------------------------------------- completeness

static int build_completeness(struct store *s, struct report *rep, struct ev_err *err) {
    const char              *gk = grader_kind(rep);
    struct items_scored_row *rows = NULL;
    int                      n_rows = 0;
    int rc = items_scored(s, rep->run.id, gk, "concept", NULL, &rows, &n_rows, err);
    if (rc != EV_OK) return rc;
    struct report_section *sec = sec_new(rep, "Completeness by concept");
    struct report_table   *t = tab_new(sec, "Is a top feature about the concept?", "concept",
                                       "verdict", "top features (mean activation)",
                                       (const char *)NULL);
    int yes = 0, no = 0, other = 0;
    for (int q = 0; q < n_rows; q++) {
        int         row = tab_row(t);
        const char *pj_text = rows[q].payload_json;
        cJSON      *pj = NULL;
        struct ev_err e2;
        const char *concept = rows[q].key;
        struct sbuf feats;
        sbuf_init(&feats);
        if (pj_text && json_parse(pj_text, strlen(pj_text), "payload", &pj, &e2) == EV_OK) {
            const char *c = NULL;
            if (json_get_str_opt(pj, "concept", "payload", &c, &e2) == EV_OK && c) concept = c;
            const cJSON *fa = cJSON_GetObjectItemCaseSensitive(pj, "features"), *fo;
            cJSON_ArrayForEach(fo, fa) {
                long   id = -1;
                double a = NAN;
                json_get_long_opt(fo, "feature", "payload", &id, &e2);
                json_get_double_opt(fo, "activation", "payload", &a, &e2);
                sbuf_addf(&feats, "%s%ld (%.3g)", feats.len ? ", " : "", id, a);
            }
        }
        tab_str(t, row, 0, concept);
        if (rows[q].has_score) {
            int v = rows[q].score >= 0.5;
            tab_str(t, row, 1, v ? "yes" : "no");
            v ? yes++ : no++;
        } else {
            tab_str(t, row, 1, rows[q].unparsed ? "unparsed" : "pending");
            other++;
        }
        tab_str(t, row, 2, feats.buf ? feats.buf : "");
        sbuf_release(&feats);
        json_free(pj);
    }
    items_scored_free(rows, n_rows);
    if (yes + no > 0)
        sec_textf(sec, "Coverage = yes / (yes + no) = %d / %d = %.3f; %d concepts unparsed or "
                       "pending.", yes, yes + no, (double)yes / (yes + no), other);
    else
        sec_textf(sec, "No concept has a parsed judgement yet (%d pending or unparsed).", other);
    return EV_OK;
}

// ---------------------------------------------------------------------------- influence

struct infl_ctx {
    struct report_table *t, *ex;
    int                  row, n_ex, gen, graded, succ, unparsed, skipped;
    double               pf, ps, csum, fsum;
};

static int infl_add(void *ctx, const struct generations_steered_row *g) {
    struct infl_ctx     *c = ctx;
    struct report_table *t = c->t, *ex = c->ex;
    double               f = (double)g->feature, sc = g->scale;
    if (!(f == c->pf && sc == c->ps)) {
        c->row = tab_row(t);
        tab_set(t, c->row, 0, "%d", g->feature);
        tab_set(t, c->row, 1, "%g", sc);
        tab_num(t, c->row, 2, g->max_act, 4);
        tab_num(t, c->row, 3, g->clamp, 4);
        c->pf = f, c->ps = sc, c->gen = c->graded = c->succ = 0, c->csum = c->fsum = 0;
        c->unparsed = c->skipped = 0;
    }
    c->gen++;
    c->unparsed += g->n_unparsed;
    c->skipped += g->n_skipped;
    int has_c = !isnan(g->concept), has_f = !isnan(g->fluency);
    if (has_c && has_f) {
        c->graded++;
        c->csum += g->concept;
        c->fsum += g->fluency;
        if (g->concept >= 2) c->succ++;
    }
    int row = c->row;
    tab_num(t, row, 4, c->graded ? c->csum / c->graded : (double)NAN, 2);
    tab_num(t, row, 5, c->graded ? c->fsum / c->graded : (double)NAN, 2);
    tab_num(t, row, 6, c->graded ? 100.0 * c->succ / c->graded : (double)NAN, 0);
    tab_set(t, row, 7, "%d", c->graded);
    tab_set(t, row, 8, "%d", c->unparsed);
    tab_set(t, row, 9, "%d", c->skipped);
    tab_set(t, row, 10, "%d", c->gen);
    if (c->n_ex < 60) {
        int er = tab_row(ex);
        tab_set(ex, er, 0, "%d", g->feature);
        tab_set(ex, er, 1, "%g", sc);
        tab_str(ex, er, 2, g->prompt);
        tab_str(ex, er, 3, g->baseline);
        tab_str(ex, er, 4, g->text);
        tab_num(ex, er, 5, g->concept, 0);
        tab_num(ex, er, 6, g->fluency, 0);
        c->n_ex++;
    }
    return EV_OK;
}

static int build_influence(struct store *s, struct report *rep, struct ev_err *err) {
    const char            *gk = grader_kind(rep);
    struct report_section *sec = sec_new(rep, "Steering outcomes");
    sec_textf(sec, "Each feature clamped to scale x its max activation at every position; "
                   "Concept (0-3: how strongly the steered text expresses the feature's "
                   "description, compared with the unsteered baseline) and Fluency (0-3) as "
                   "graded by the %s grader.", gk);
    struct infl_ctx c = {.row = -1, .pf = NAN, .ps = NAN};
    c.t = tab_new(sec, "Mean scores per feature and scale", "feature", "scale", "max_act",
                  "clamp", "concept", "fluency", "success", "graded", "unparsed", "skipped",
                  "generations",
                  (const char *)NULL);
    c.ex = tab_new(sec, "Example texts", "feature", "scale", "prompt", "baseline", "steered",
                   "concept", "fluency", (const char *)NULL);
    int rc = generations_steered(s, rep->run.id, gk, infl_add, &c, err);
    sec_textf(sec, "success = share of graded generations with Concept >= 2 (the success rate "
                   "compare uses).");
    return rc;
}

// ---------------------------------------------------------------------------- attribution

static int build_attribution(struct store *s, struct report *rep, struct ev_err *err) {
    int *ids = NULL, n_ids = 0;
    int  rc = attributions_prompt_ids(s, rep->run.id, &ids, &n_ids, err);
    if (rc != EV_OK) return rc;
    struct report_section *sec = sec_new(rep, "Attribution and ablation");
    struct report_table *t = tab_new(sec, "Prompts", "prompt", "text", "target", "contrast",
                                     "d", "features", "error term", "decoder bias",
                                     "pearson", "spearman", (const char *)NULL);
    struct report_table *rk = tab_new(sec, "Ranking per prompt (top 10 by |attribution|)",
                                      "prompt", "rank", "feature", "pos", "token", "activation",
                                      "attribution", "ablation effect", (const char *)NULL);
    for (int q = 0; q < n_ids && rc == EV_OK; q++) {
        struct attributions_prompt p;
        struct attributions_row   *rows = NULL;
        int                        n_rows = 0;
        int                        got = attributions_prompt_get(s, rep->run.id, ids[q], &p, err);
        if (got < 0) rc = got;
        if (got <= 0) continue;
        int row = tab_row(t);
        tab_str(t, row, 0, p.name ? p.name : "");
        tab_str(t, row, 1, p.prompt);
        tab_str(t, row, 2, p.target);
        tab_str(t, row, 3, p.contrast);
        const double v[] = {p.logit_diff, p.attr_features, p.attr_error, p.attr_bias};
        for (int c = 0; c < 4; c++) tab_num(t, row, 4 + c, v[c], 4);
        tab_num(t, row, 8, p.pearson, 3);
        tab_num(t, row, 9, p.spearman, 3);
        char *pname = p.name ? xstrdup(p.name) : xasprintf("%d", ids[q]);
        attributions_prompt_release(&p);
        if ((rc = attributions_ranked(s, rep->run.id, ids[q], 10, &rows, &n_rows, err)) == EV_OK)
            for (int k = 0; k < n_rows; k++) {
                int r2 = tab_row(rk);
                tab_str(rk, r2, 0, pname);
                tab_set(rk, r2, 1, "%d", rows[k].rank);
                tab_set(rk, r2, 2, "%d", rows[k].feature);
                tab_set(rk, r2, 3, "%d", rows[k].position);
                tab_str(rk, r2, 4, rows[k].token_text ? rows[k].token_text : "");
                tab_num(rk, r2, 5, rows[k].activation, 4);
                tab_num(rk, r2, 6, rows[k].attribution, 4);
                tab_num(rk, r2, 7, rows[k].ablation, 4);
            }
        attributions_rows_free(rows, n_rows);
        free(pname);
    }
    free(ids);
    if (rc != EV_OK) return rc;

    double *x = NULL, *y = NULL;
    int     n = 0;
    if ((rc = attributions_ablations(s, rep->run.id, &x, &y, &n, err)) != EV_OK) return rc;
    for (int i = 0; i < n; i++) x[i] = -x[i]; /* the linear prediction of the effect */
    sec_textf(sec, "Pooled over %d ablations: pearson %.3f, spearman %.3f between the linear "
                   "prediction (-attribution) and the measured ablation effect.",
              n, stats_pearson(x, y, n), stats_spearman(x, y, n));
    struct sbuf sb;
    sbuf_init(&sb);
    svg_scatter(&sb, "Attribution vs ablation", x, y, n, NULL, NULL, 0,
                "-attribution (linear prediction of the effect)", "measured ablation effect",
                SVG_DIAG);
    fig_add(sec, "Linear prediction vs measured ablation effect (dashed: y = x)", &sb);
    free(x);
    free(y);
    return EV_OK;
}

// ---------------------------------------------------------------------------- SAE metrics, sweep

static int build_sae_metrics(struct store *s, struct report *rep, struct ev_err *err) {
    static const char *const names[] = {
        "n_tokens", "l0", "l1", "mse", "explained_variance", "fvu", "l2_ratio",
        "rel_recon_bias", "dead_frac", "ce_clean", "ce_sae", "ce_zero", "ce_loss_score",
        "kl_sae", "kl_zero", "kl_div_score"};
    double m[16];
    char  *hist = NULL, *hash = NULL;
    int    got = saestats_metrics_row(s, rep->run.id, m, &hist, &hash, err);
    if (got < 0) return got;
    if (got == 0) {
        struct report_section *sec = sec_new(rep, "SAE metrics");
        sec_textf(sec, "The run stored no metrics (status %s).", rep->run.status);
        return EV_OK;
    }
    struct report_section *sec = sec_new(rep, "SAE metrics");
    sec_textf(sec, "SAE %s. ce_loss_score = CE-loss recovered: (ce_zero - ce_sae) / (ce_zero - "
                   "ce_clean); dead_frac = share of latents that never fired on the tokens.",
              hash ? hash : "-");
    struct report_table *t = tab_new(sec, "Quality metrics", "metric", "value",
                                     (const char *)NULL);
    for (int i = 0; i < 16; i++) {
        int row = tab_row(t);
        tab_str(t, row, 0, names[i]);
        if (isnan(m[i])) tab_str(t, row, 1, "-");
        else if (i == 0) tab_set(t, row, 1, "%lld", (long long)llround(m[i]));
        else tab_set(t, row, 1, "%.6g", m[i]);
    }
    cJSON      *h = NULL;
    struct ev_err e2;
    /* sae_metrics_hist_json(): {"bin_lo": [...], "count": [...], "dead": N}; a bare array of
     * counts over [-8, 0) in steps of 0.5 is read too */
    if (hist && json_parse(hist, strlen(hist), "density_hist", &h, &e2) == EV_OK) {
        const cJSON *counts = cJSON_IsArray(h) ? h : cJSON_GetObjectItemCaseSensitive(h, "count");
        const cJSON *lo = cJSON_IsObject(h) ? cJSON_GetObjectItemCaseSensitive(h, "bin_lo") : NULL;
        const cJSON *dead = cJSON_IsObject(h) ? cJSON_GetObjectItemCaseSensitive(h, "dead") : NULL;
        int n = cJSON_IsArray(counts) ? cJSON_GetArraySize(counts) : 0;
        if (n > 0) {
            double *v = xcalloc((size_t)n + 1, sizeof *v);
            char  **labels = xcalloc((size_t)n + 1, sizeof *labels);
            struct report_table *ht = tab_new(sec, "Feature density histogram (live latents)",
                                              "log10 density from", "to", "latents",
                                              (const char *)NULL);
            for (int b = 0; b < n; b++) {
                const cJSON *it = cJSON_GetArrayItem(counts, b);
                const cJSON *l = lo ? cJSON_GetArrayItem(lo, b) : NULL;
                double       from = cJSON_IsNumber(l) ? l->valuedouble : -8.0 + 0.5 * b;
                v[b] = cJSON_IsNumber(it) ? it->valuedouble : (double)NAN;
                labels[b] = xasprintf("%g", from);
                int row = tab_row(ht);
                tab_set(ht, row, 0, "%g", from);
                tab_set(ht, row, 1, "%g", from + 0.5);
                tab_num(ht, row, 2, v[b], 0);
            }
            if (cJSON_IsNumber(dead)) {
                int row = tab_row(ht);
                tab_str(ht, row, 0, "dead (never fired)");
                tab_num(ht, row, 2, dead->valuedouble, 0);
            }
            struct sbuf sb;
            sbuf_init(&sb);
            svg_bar_chart(&sb, "Feature density", (const char *const *)labels, v, n,
                          "log10 of the firing frequency (bin start)", "live latents", 0);
            fig_add(sec, "Feature density histogram (dead latents not shown)", &sb);
            for (int b = 0; b < n; b++) free(labels[b]);
            free(labels);
            free(v);
        }
    }
    json_free(h);
    free(hist);
    free(hash);
    return EV_OK;
}

struct sweep_ctx {
    struct report_table *t;
    double              *x, *y;
    int                 *g, n, ng;
    char               **gn;
    int64_t              last;
};

static int sweep_add(void *ctx, const struct saestats_sweep_row *p) {
    struct sweep_ctx *c = ctx;
    int               row = tab_row(c->t);
    const double      v[] = {p->l1, p->loss, p->mse, p->l0, p->fvu, p->dead_frac, p->flops,
                             p->train_s};
    tab_set(c->t, row, 0, "%lld", (long long)p->d_sae);
    tab_set(c->t, row, 1, "%lld", (long long)p->n_tokens);
    for (int k = 0; k < 8; k++)
        tab_set(c->t, row, 2 + k, isnan(v[k]) ? "-" : "%.6g", isnan(v[k]) ? 0.0 : v[k]);
    if (p->d_sae != c->last) {
        c->last = p->d_sae;
        c->gn = xrealloc(c->gn, (size_t)(c->ng + 1) * sizeof *c->gn);
        c->gn[c->ng++] = xasprintf("d_sae %lld", (long long)c->last);
    }
    c->x = xrealloc(c->x, (size_t)(c->n + 1) * sizeof *c->x);
    c->y = xrealloc(c->y, (size_t)(c->n + 1) * sizeof *c->y);
    c->g = xrealloc(c->g, (size_t)(c->n + 1) * sizeof *c->g);
    c->x[c->n] = p->flops;
    c->y[c->n] = p->loss;
    c->g[c->n] = c->ng - 1;
    c->n++;
    return EV_OK;
}

static int build_sweep(struct store *s, struct report *rep, struct ev_err *err) {
    struct report_section *sec = sec_new(rep, "Scaling sweep");
    sec_textf(sec, "One SAE per (d_sae, training tokens); compute = training FLOPs.");
    struct sweep_ctx c = {.last = -1};
    c.t = tab_new(sec, "Sweep", "d_sae", "tokens", "l1 coeff", "loss", "mse", "l0", "fvu",
                  "dead_frac", "flops", "train_s", (const char *)NULL);
    int         rc = saestats_sweep_each(s, rep->run.id, sweep_add, &c, err);
    struct sbuf sb;
    sbuf_init(&sb);
    svg_scatter(&sb, "Loss vs compute", c.x, c.y, c.n, c.g, (const char *const *)c.gn, c.ng,
                "training compute (FLOPs, log scale)", "final loss", SVG_LOG_X | SVG_LINES);
    fig_add(sec, "Loss vs compute, one line per dictionary size", &sb);
    for (int i = 0; i < c.ng; i++) free(c.gn[i]);
    free(c.gn), free(c.x), free(c.y), free(c.g);
    return rc;
}

// ---------------------------------------------------------------------------- summary metrics

static int build_summary(struct store *s, struct report *rep, struct ev_err *err) {
    struct cmp_metrics ms = {0};
    struct ev_err      e2;
    if (cmp_metrics_load(s, &rep->run, &ms, &e2) != EV_OK) return EV_OK; /* kind without */
    (void)err;
    struct report_section *sec = sec_new(rep, "Summary metrics");
    sec_textf(sec, "The metrics 'evalrun compare' gates on (docs/reports.md): value, its 95%% "
                   "percentile-bootstrap interval (2000 replicates seeded by the run's seed; "
                   "none for a metric of one measurement, the sae.* ones, or below 2 units), "
                   "the number of units n, the graded items left out of n (unparsed, and "
                   "skipped by a rater), and whether higher or lower is better.");
    struct report_table *t = tab_new(sec, "Metrics", "metric", "value", "ci95_lo", "ci95_hi",
                                     "n", "unparsed", "skipped", "better", (const char *)NULL);
    struct rng             r;
    struct runs_provenance pv;
    rng_seed(&r, runs_provenance(s, rep->run.id, &pv, &e2) == EV_OK && pv.seed >= 0
                     ? (uint64_t)pv.seed : 0);
    for (int i = 0; i < ms.n; i++) {
        const struct cmp_metric *m = &ms.m[i];
        struct stats_sample smp = {m->x, m->stat == STATS_PEARSON ? m->y : NULL, m->n};
        struct stats_ci     ci = {NAN, NAN, NAN};
        if (!m->aggregate && m->n >= 2) stats_bootstrap_one(m->stat, &smp, 2000, &r, &ci);
        int row = tab_row(t);
        tab_str(t, row, 0, m->name);
        tab_num(t, row, 1, stats_eval(m->stat, &smp), 4);
        tab_num(t, row, 2, ci.lo, 4);
        tab_num(t, row, 3, ci.hi, 4);
        tab_set(t, row, 4, "%d", m->n);
        tab_set(t, row, 5, "%d", m->n_unparsed);
        tab_set(t, row, 6, "%d", m->n_skipped);
        tab_str(t, row, 7, m->dir > 0 ? "higher" : "lower");
    }
    cmp_metrics_release(&ms);
    return EV_OK;
}

// ---------------------------------------------------------------------------- controls

struct ctl_ctx {
    struct report         *rep;
    struct report_section *sec;
    struct report_table   *t;
};

static int ctl_rows(void *ud, const struct eval_control_result *cr, struct ev_err *err) {
    struct ctl_ctx *c = ud;
    (void)err;
    if (!c->sec) {
        c->sec = sec_new(c->rep, "Controls");
        sec_textf(c->sec, "The same evaluation on a control beside the SAE's score (issue 17.2, "
                          "docs/evals.md): per metric the SAE's score and its n, the control's "
                          "score and its n, diff = score - control and its 95%% bootstrap "
                          "interval (2000 replicates seeded by the run's seed, as the "
                          "evaluation printed them), paired per item for the shuffled "
                          "descriptions (same contexts), the two samples for the "
                          "random-direction SAE (another SAE).");
        c->t = tab_new(c->sec, "Controls", "control", "control run", "metric", "n", "score",
                       "n_ctl", "control score", "diff", "ci95_lo", "ci95_hi", "comparison",
                       (const char *)NULL);
    }
    for (int i = 0; i < cr->n; i++) {
        const struct cmp_result *x = &cr->res[i];
        int                      row = tab_row(c->t);
        tab_str(c->t, row, 0, cr->kind);
        tab_set(c->t, row, 1, "%lld (%s)", (long long)cr->run_id, cr->status);
        tab_str(c->t, row, 2, x->name);
        tab_set(c->t, row, 3, "%d", eval_control_n_score(x));
        tab_num(c->t, row, 4, x->cand, 4);
        tab_set(c->t, row, 5, "%d", eval_control_n_control(x));
        tab_num(c->t, row, 6, x->base, 4);
        tab_num(c->t, row, 7, x->diff.est, 4);
        tab_num(c->t, row, 8, x->diff.lo, 4);
        tab_num(c->t, row, 9, x->diff.hi, 4);
        tab_str(c->t, row, 10, cr->paired ? "paired per item" : "two samples");
    }
    return EV_OK;
}

/* The run's controls (runs whose configuration says they control it), when it has any. */
static int build_controls(struct store *s, struct report *rep, struct ev_err *err) {
    struct runs_provenance pv;
    struct ctl_ctx         c = {rep, NULL, NULL};
    int                    rc = runs_provenance(s, rep->run.id, &pv, err);
    if (rc != EV_OK) return rc;
    return eval_controls_each(s, rep->run.id, pv.seed >= 0 ? (uint64_t)pv.seed : 0, ctl_rows, &c,
                              err);
}

// ---------------------------------------------------------------------------- grader cost

struct cost_ctx {
    struct report         *rep;
    struct report_section *sec;
    struct report_table   *t;
};

static int cost_row(void *ud, const struct ledger_usage_row *u, struct ev_err *err) {
    (void)err;
    struct cost_ctx *c = ud;
    if (!c->sec) {
        c->sec = sec_new(c->rep, "Grader cost");
        sec_textf(c->sec, "Tokens of the answers received over HTTP (evalrun's own cache hits cost "
                          "nothing). 'From the prompt cache' and 'written to it' are the input "
                          "tokens the provider reported as read from / written to its prompt "
                          "cache; the cost prices them at the provider's discount (Anthropic "
                          "reads 0.1x and writes 1.25x the input price, OpenAI reads 0.5x, or "
                          "--price-cached), beside the same tokens at the full input price.");
        c->t = tab_new(c->sec, "Grader cost", "grader", "requests", "tokens in",
                       "from the prompt cache", "written to it", "tokens out", "cost (USD)",
                       "without prompt caching (USD)", (const char *)NULL);
    }
    int row = tab_row(c->t);
    tab_str(c->t, row, 0, u->grader_name);
    tab_set(c->t, row, 1, "%lld", (long long)u->requests);
    tab_set(c->t, row, 2, "%lld", (long long)u->tokens_in);
    tab_set(c->t, row, 3, "%lld", (long long)u->tokens_cache_read);
    tab_set(c->t, row, 4, "%lld", (long long)u->tokens_cache_write);
    tab_set(c->t, row, 5, "%lld", (long long)u->tokens_out);
    tab_num(c->t, row, 6, u->has_cost ? u->cost_usd : (double)NAN, 6);
    tab_num(c->t, row, 7, u->has_cost ? u->cost_nocache_usd : (double)NAN, 6);
    return EV_OK;
}

/* The cost ledger of the run (grader_usage), when it has one: a section of its own. */
static int build_grader_cost(struct store *s, struct report *rep, struct ev_err *err) {
    struct cost_ctx c = {rep, NULL, NULL};
    return ledger_usage_list(s, rep->run.id, cost_row, &c, err);
}

// ---------------------------------------------------------------------------- build

int report_build(struct store *s, const char *run, struct report *out, struct ev_err *err) {
    memset(out, 0, sizeof *out);
    int rc = cmp_run_load(s, run, &out->run, err);
    if (rc != EV_OK) return rc;
    const char *k = out->run.kind;
    out->title = xasprintf("evalrun report: %s run %lld%s%s%s", k, (long long)out->run.id,
                           out->run.tag ? " (" : "", out->run.tag ? out->run.tag : "",
                           out->run.tag ? ")" : "");
    if ((rc = build_provenance(s, out, err)) != EV_OK) {
        report_release(out);
        return rc;
    }
    if (strcmp(k, "specificity") == 0) {
        if ((rc = build_specificity(s, out, err)) == EV_OK)
            rc = build_distribution(s, out, err);
    } else if (strcmp(k, "completeness") == 0) {
        rc = build_completeness(s, out, err);
    } else if (strcmp(k, "influence") == 0) {
        if ((rc = build_influence(s, out, err)) == EV_OK) rc = infl_report_section(s, out, err);
        if (rc == EV_OK) rc = build_distribution(s, out, err);
    } else if (strcmp(k, "attribution") == 0) {
        rc = build_attribution(s, out, err);
    } else if (strcmp(k, "sae-metrics") == 0) {
        rc = build_sae_metrics(s, out, err);
    } else if (strcmp(k, "sweep") == 0) {
        rc = build_sweep(s, out, err);
    } else if (strcmp(k, "explain") == 0) {
        rc = report_explain_section(s, out, err);
    }
    if (rc == EV_OK) rc = build_summary(s, out, err);
    if (rc == EV_OK) rc = build_controls(s, out, err);
    if (rc == EV_OK) rc = build_agreement(s, out, err);
    if (rc == EV_OK) rc = build_categories(s, out, err);
    if (rc == EV_OK) rc = build_grader_cost(s, out, err);
    if (rc == EV_OK && out->n_sections == 1) { /* the provenance only */
        struct report_section *sec = sec_new(out, "Run");
        sec_textf(sec, "evalrun report has no tables for '%s' runs; the run's configuration is "
                       "shown above.", k);
    }
    if (rc != EV_OK) report_release(out);
    else unique_names(out);
    return rc;
}

int report_n_tables(const struct report *r) {
    int n = 0;
    for (int i = 0; i < r->n_sections; i++) n += r->sections[i].n_tables;
    return n;
}

const struct report_table *report_table_at(const struct report *r, int i) {
    for (int k = 0; k < r->n_sections; k++) {
        if (i < r->sections[k].n_tables) return r->sections[k].tables[i];
        i -= r->sections[k].n_tables;
    }
    return NULL;
}

const struct report_table *report_find_table(const struct report *r, const char *name) {
    int n = report_n_tables(r);
    for (int i = 0; i < n; i++)
        if (strcmp(report_table_at(r, i)->name, name) == 0) return report_table_at(r, i);
    return NULL;
}

static int cell_missing(const char *v) { return !*v || strcmp(v, "-") == 0; }

int report_col_numeric(const struct report_table *t, int c) {
    int any = 0;
    for (int rr = 0; rr < t->n_rows; rr++) {
        const char *v = t->cells[(size_t)rr * t->n_cols + c];
        double      d;
        if (cell_missing(v)) continue;
        if (parse_double(v, &d) != EV_OK) return 0;
        any = 1;
    }
    return any;
}

void report_release(struct report *r) {
    for (int i = 0; i < r->n_sections; i++) {
        struct report_section *s = &r->sections[i];
        for (int j = 0; j < s->n_tables; j++) {
            struct report_table *t = s->tables[j];
            for (int c = 0; c < t->n_cols; c++) free(t->cols[c]);
            for (size_t c = 0; c < (size_t)t->n_rows * t->n_cols; c++) free(t->cells[c]);
            free(t->cols), free(t->cells), free(t->title), free(t->name), free(t);
        }
        for (int j = 0; j < s->n_figures; j++) free(s->figures[j].title), free(s->figures[j].svg);
        free(s->tables), free(s->figures), free(s->title), free(s->text);
    }
    free(r->sections);
    report_facts_release(r->facts, r->n_facts);
    free(r->title);
    cmp_run_release(&r->run);
    memset(r, 0, sizeof *r);
}

// ---------------------------------------------------------------------------- rendering

int report_parse_format(const char *s, enum report_format *out, struct ev_err *err) {
    static const struct {
        const char        *name;
        enum report_format f;
    } fmts[] = {{"md", REPORT_MD}, {"csv", REPORT_CSV}, {"html", REPORT_HTML}, {"json", REPORT_JSON}};
    for (size_t i = 0; i < sizeof fmts / sizeof fmts[0]; i++)
        if (strcmp(s, fmts[i].name) == 0) {
            *out = fmts[i].f;
            return EV_OK;
        }
    return ev_fail(err, EV_EUSAGE, "--format '%s': expected md, csv, html or json", s);
}

void report_csv_field(struct sbuf *sb, const char *s) {
    if (!s) s = "";
    if (!strpbrk(s, ",\"\r\n")) {
        sbuf_adds(sb, s);
        return;
    }
    sbuf_adds(sb, "\"");
    for (; *s; s++) {
        if (*s == '"') sbuf_adds(sb, "\"\"");
        else sbuf_add(sb, s, 1);
    }
    sbuf_adds(sb, "\"");
}

/* Markdown table cell: pipes, backslashes and HTML-significant characters escaped,
 * newlines as spaces. */
static void md_cell(struct sbuf *sb, const char *s) {
    for (; s && *s; s++) {
        switch (*s) {
        case '|': sbuf_adds(sb, "\\|"); break;
        case '\\': sbuf_adds(sb, "\\\\"); break;
        case '<': sbuf_adds(sb, "&lt;"); break;
        case '>': sbuf_adds(sb, "&gt;"); break;
        case '&': sbuf_adds(sb, "&amp;"); break;
        case '\n':
        case '\r': sbuf_adds(sb, " "); break;
        default: sbuf_add(sb, s, 1);
        }
    }
}

static void fmt_started(char *buf, size_t n, int64_t ms) {
    time_t    t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, n, "%Y-%m-%d %H:%M:%S UTC", &tm);
}

static void render_md(const struct report *r, struct sbuf *o) {
    char started[64];
    fmt_started(started, sizeof started, r->run.started_ms);
    sbuf_adds(o, "# ");
    md_cell(o, r->title);
    sbuf_addf(o, "\n\nRun %lld, kind `%s`, status %s, started %s", (long long)r->run.id,
              r->run.kind, r->run.status, started);
    if (r->run.sae_hash) sbuf_addf(o, ", SAE `%.12s`", r->run.sae_hash);
    sbuf_adds(o, ".\n");
    for (int i = 0; i < r->n_sections; i++) {
        const struct report_section *s = &r->sections[i];
        sbuf_adds(o, "\n## ");
        md_cell(o, s->title);
        sbuf_adds(o, "\n");
        if (s->text) {
            sbuf_adds(o, "\n");
            md_cell(o, s->text);
            sbuf_adds(o, "\n");
        }
        for (int j = 0; j < s->n_tables; j++) {
            const struct report_table *t = s->tables[j];
            sbuf_adds(o, "\n**");
            md_cell(o, t->title);
            sbuf_adds(o, "**\n\n|");
            for (int c = 0; c < t->n_cols; c++) sbuf_adds(o, " "), md_cell(o, t->cols[c]), sbuf_adds(o, " |");
            sbuf_adds(o, "\n|");
            for (int c = 0; c < t->n_cols; c++)
                sbuf_adds(o, report_col_numeric(t, c) ? " --: |" : " :-- |");
            sbuf_adds(o, "\n");
            for (int rr = 0; rr < t->n_rows; rr++) {
                sbuf_adds(o, "|");
                for (int c = 0; c < t->n_cols; c++) {
                    sbuf_adds(o, " ");
                    md_cell(o, t->cells[(size_t)rr * t->n_cols + c]);
                    sbuf_adds(o, " |");
                }
                sbuf_adds(o, "\n");
            }
        }
        for (int j = 0; j < s->n_figures; j++) {
            sbuf_adds(o, "\n*Figure: ");
            md_cell(o, s->figures[j].title);
            sbuf_adds(o, " (in the HTML report).*\n");
        }
    }
}

void report_render_csv(const struct report_table *t, struct sbuf *o) {
    for (int c = 0; c < t->n_cols; c++) {
        if (c) sbuf_adds(o, ",");
        report_csv_field(o, t->cols[c]);
    }
    sbuf_adds(o, "\r\n");
    for (int rr = 0; rr < t->n_rows; rr++) {
        for (int c = 0; c < t->n_cols; c++) {
            const char *v = t->cells[(size_t)rr * t->n_cols + c];
            if (c) sbuf_adds(o, ",");
            report_csv_field(o, cell_missing(v) ? "" : v);
        }
        sbuf_adds(o, "\r\n");
    }
}

/* Escaped text for HTML, with the grader's token marks ⟦ ⟧ (U+27E6, U+27E7) as <mark>; an
 * unbalanced mark stays text, so the markup always nests. */
static void html_text(struct sbuf *o, const char *s) {
    static const char OPEN[] = "\xe2\x9f\xa6", CLOSE[] = "\xe2\x9f\xa7";
    int depth = 0;
    while (s && *s) {
        const char *a = strstr(s, OPEN), *b = strstr(s, CLOSE);
        const char *m = a && (!b || a < b) ? a : b;
        if (!m) {
            svg_escape(o, s);
            break;
        }
        char *part = xasprintf("%.*s", (int)(m - s), s);
        svg_escape(o, part);
        free(part);
        if (m == a && depth == 0 && strstr(a + 3, CLOSE)) {
            sbuf_adds(o, "<mark>");
            depth = 1;
        } else if (m == b && depth == 1) {
            sbuf_adds(o, "</mark>");
            depth = 0;
        } else {
            sbuf_add(o, m, 3);
        }
        s = m + 3;
    }
    if (depth) sbuf_adds(o, "</mark>");
}

static void render_html(const struct report *r, struct sbuf *o) {
    char started[64];
    fmt_started(started, sizeof started, r->run.started_ms);
    sbuf_adds(o, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
                 "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
                 "style-src 'unsafe-inline'; img-src data:\">\n<title>");
    svg_escape(o, r->title);
    sbuf_adds(o, "</title>\n<style>\n"
                 "body{font-family:sans-serif;margin:2em;max-width:1100px;color:#222}\n"
                 "table{border-collapse:collapse;margin:1em 0;font-size:13px}\n"
                 "th,td{border:1px solid #bbb;padding:3px 7px;text-align:left;vertical-align:top}\n"
                 "th{background:#eef}\n.num{text-align:right;font-variant-numeric:tabular-nums}\n"
                 "mark{background:#fdd835;padding:0 1px}\n"
                 "caption{font-weight:bold;text-align:left;padding:4px 0}\n"
                 "figure{margin:1em 0}\nfigcaption{font-size:13px;color:#555}\n"
                 "</style></head>\n<body>\n<h1>");
    svg_escape(o, r->title);
    sbuf_addf(o, "</h1>\n<p class=\"meta\">Run %lld, kind <code>", (long long)r->run.id);
    svg_escape(o, r->run.kind);
    sbuf_adds(o, "</code>, status ");
    svg_escape(o, r->run.status);
    sbuf_addf(o, ", started %s", started);
    if (r->run.sae_hash) {
        sbuf_adds(o, ", SAE <code>");
        svg_escape(o, r->run.sae_hash);
        sbuf_adds(o, "</code>");
    }
    sbuf_adds(o, ".</p>\n");
    for (int i = 0; i < r->n_sections; i++) {
        const struct report_section *s = &r->sections[i];
        sbuf_adds(o, "<section>\n<h2>");
        svg_escape(o, s->title);
        sbuf_adds(o, "</h2>\n");
        if (s->text) {
            sbuf_adds(o, "<p>");
            svg_escape(o, s->text);
            sbuf_adds(o, "</p>\n");
        }
        for (int j = 0; j < s->n_figures; j++) {
            sbuf_adds(o, "<figure>");
            sbuf_adds(o, s->figures[j].svg); /* built by svg.c: every string in it is escaped */
            sbuf_adds(o, "<figcaption>");
            svg_escape(o, s->figures[j].title);
            sbuf_adds(o, "</figcaption></figure>\n");
        }
        for (int j = 0; j < s->n_tables; j++) {
            const struct report_table *t = s->tables[j];
            sbuf_adds(o, "<table id=\"t-");
            svg_escape(o, t->name);
            sbuf_adds(o, "\"><caption>");
            svg_escape(o, t->title);
            sbuf_adds(o, "</caption>\n<tr>");
            int *num = xcalloc((size_t)t->n_cols + 1, sizeof *num);
            for (int c = 0; c < t->n_cols; c++) {
                num[c] = report_col_numeric(t, c);
                sbuf_adds(o, num[c] ? "<th class=\"num\">" : "<th>");
                svg_escape(o, t->cols[c]);
                sbuf_adds(o, "</th>");
            }
            sbuf_adds(o, "</tr>\n");
            for (int rr = 0; rr < t->n_rows; rr++) {
                sbuf_adds(o, "<tr>");
                for (int c = 0; c < t->n_cols; c++) {
                    sbuf_adds(o, num[c] ? "<td class=\"num\">" : "<td>");
                    html_text(o, t->cells[(size_t)rr * t->n_cols + c]);
                    sbuf_adds(o, "</td>");
                }
                sbuf_adds(o, "</tr>\n");
            }
            sbuf_adds(o, "</table>\n");
            free(num);
        }
        sbuf_adds(o, "</section>\n");
    }
    sbuf_adds(o, "</body></html>\n");
}

static cJSON *cell_json(const char *v) {
    double d;
    if (!*v || strcmp(v, "-") == 0) return cJSON_CreateNull();
    if (parse_double(v, &d) == EV_OK && isfinite(d)) return cJSON_CreateNumber(d);
    return cJSON_CreateString(v);
}

static void render_json(const struct report *r, struct sbuf *o) {
    cJSON *doc = cJSON_CreateObject();
    cJSON_AddStringToObject(doc, "title", r->title);
    cJSON *run = cJSON_AddObjectToObject(doc, "run");
    cJSON_AddNumberToObject(run, "id", (double)r->run.id);
    cJSON_AddStringToObject(run, "kind", r->run.kind);
    if (r->run.tag) cJSON_AddStringToObject(run, "tag", r->run.tag);
    else cJSON_AddNullToObject(run, "tag");
    cJSON_AddStringToObject(run, "status", r->run.status);
    if (r->run.sae_hash) cJSON_AddStringToObject(run, "sae_hash", r->run.sae_hash);
    else cJSON_AddNullToObject(run, "sae_hash");
    cJSON *prov = cJSON_AddObjectToObject(doc, "provenance");
    for (int i = 0; i < r->n_facts; i++) {
        if (strcmp(r->facts[i].value, "-") == 0) cJSON_AddNullToObject(prov, r->facts[i].key);
        else cJSON_AddStringToObject(prov, r->facts[i].key, r->facts[i].value);
    }
    cJSON *secs = cJSON_AddArrayToObject(doc, "sections");
    for (int i = 0; i < r->n_sections; i++) {
        const struct report_section *s = &r->sections[i];
        cJSON *so = cJSON_CreateObject();
        cJSON_AddStringToObject(so, "title", s->title);
        if (s->text) cJSON_AddStringToObject(so, "text", s->text);
        cJSON *tabs = cJSON_AddArrayToObject(so, "tables");
        for (int j = 0; j < s->n_tables; j++) {
            const struct report_table *t = s->tables[j];
            cJSON *to = cJSON_CreateObject(), *cols = cJSON_AddArrayToObject(to, "columns");
            cJSON_AddStringToObject(to, "title", t->title);
            cJSON_AddStringToObject(to, "name", t->name);
            for (int c = 0; c < t->n_cols; c++) cJSON_AddItemToArray(cols, cJSON_CreateString(t->cols[c]));
            cJSON *rows = cJSON_AddArrayToObject(to, "rows");
            for (int rr = 0; rr < t->n_rows; rr++) {
                cJSON *row = cJSON_CreateArray();
                for (int c = 0; c < t->n_cols; c++)
                    cJSON_AddItemToArray(row, cell_json(t->cells[(size_t)rr * t->n_cols + c]));
                cJSON_AddItemToArray(rows, row);
            }
            cJSON_AddItemToArray(tabs, to);
        }
        cJSON *figs = cJSON_AddArrayToObject(so, "figures");
        for (int j = 0; j < s->n_figures; j++) {
            cJSON *fo = cJSON_CreateObject();
            cJSON_AddStringToObject(fo, "title", s->figures[j].title);
            cJSON_AddStringToObject(fo, "svg", s->figures[j].svg);
            cJSON_AddItemToArray(figs, fo);
        }
        cJSON_AddItemToArray(secs, so);
    }
    char *txt = json_print_pretty(doc);
    sbuf_adds(o, txt);
    sbuf_adds(o, "\n");
    free(txt);
    json_free(doc);
}

void report_render(const struct report *r, enum report_format f, struct sbuf *out) {
    switch (f) {
    case REPORT_MD: render_md(r, out); break;
    case REPORT_CSV: /* tidy CSV holds one table: report_render_csv() */
        if (report_n_tables(r) > 0) report_render_csv(report_table_at(r, 0), out);
        break;
    case REPORT_HTML: render_html(r, out); break;
    case REPORT_JSON: render_json(r, out); break;
    }
}
