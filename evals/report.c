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
#include "evals/influence_report.h"
#include "evals/stats.h"
#include "evals/svg.h"
#include "store/ledger.h"
#include "store/runinfo.h"
#include "store/runs.h"

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
    struct store_stmt *st = NULL;
    struct ev_err      e;
    int64_t            id = 0;
    if (store_prepare(s, "SELECT coalesce(sae_id, 0) FROM runs WHERE id = ?1", &st, &e) != EV_OK)
        return 0;
    store_bind_int(st, 1, run_id);
    if (store_step(st, &e) == STORE_ROW) id = store_col_int(st, 0);
    store_finalize(st);
    return id;
}

static const char *grader_kind(struct store *s, int64_t run_id) {
    struct store_stmt *st = NULL;
    struct ev_err      e;
    const char        *k = "llm";
    if (store_prepare(s,
                      "SELECT count(*) FROM grades WHERE run_id = ?1 AND grader_kind = 'llm' "
                      "AND parse_status = 'ok'",
                      &st, &e) != EV_OK)
        return k;
    store_bind_int(st, 1, run_id);
    if (store_step(st, &e) == STORE_ROW && store_col_int(st, 0) == 0) k = "human";
    store_finalize(st);
    return k;
}

// ---------------------------------------------------------------------------- provenance

static void fmt_started(char *buf, size_t n, int64_t ms);

static void fact(struct report *r, struct report_section *sec, struct report_table *t,
                 const char *key, const char *value) {
    (void)sec;
    r->facts = xrealloc(r->facts, (size_t)(r->n_facts + 1) * sizeof *r->facts);
    r->facts[r->n_facts].key   = xstrdup(key);
    r->facts[r->n_facts].value = xstrdup(value && *value ? value : "-");
    r->n_facts++;
    int row = tab_row(t);
    tab_str(t, row, 0, key);
    tab_str(t, row, 1, value && *value ? value : "-");
}

/* "path (sha256 HASH)", "sha256 HASH", path, or "" */
static char *path_hash(const char *path, const char *hash) {
    if (*path && *hash) return xasprintf("%s (sha256 %s)", path, hash);
    if (*hash) return xasprintf("sha256 %s", hash);
    return xstrdup(path);
}

/* The provenance block: what a reader needs to trust the numbers (issue 17.4). Every key is
 * always there, "-" when the run does not record it. */
static int build_provenance(struct store *s, struct report *rep, struct ev_err *err) {
    struct runs_provenance pv;
    int                    rc = runs_provenance(s, rep->run.id, &pv, err);
    if (rc != EV_OK) return rc;
    cJSON        *cfg = NULL;
    struct ev_err e2;
    const char   *ffile = NULL, *fsha = NULL, *tpl = rep->run.template_hash, *hook = rep->run.hook;
    long          seed = pv.seed, intervals = 0;
    json_parse(rep->run.config_json, strlen(rep->run.config_json), "runs.config_json", &cfg, &e2);
    if (cfg) {
        json_get_str_opt(cfg, "features_file", "config", &ffile, &e2);
        json_get_str_opt(cfg, "features_file_sha256", "config", &fsha, &e2);
        json_get_long_opt(cfg, "intervals", "config", &intervals, &e2);
        if (!tpl) json_get_str_opt(cfg, "template", "config", &tpl, &e2);
        if (!hook) json_get_str_opt(cfg, "hook", "config", &hook, &e2);
        if (seed < 0) json_get_long_opt(cfg, "seed", "config", &seed, &e2);
    }
    struct report_section *sec = sec_new(rep, "Provenance");
    struct report_table   *t = tab_new(sec, "Provenance", "field", "value", (const char *)NULL);
    char                  *v = NULL;
    v = xasprintf("%lld%s%s%s, %s, %s", (long long)rep->run.id, rep->run.tag ? " (" : "",
                  rep->run.tag ? rep->run.tag : "", rep->run.tag ? ")" : "", rep->run.kind,
                  rep->run.status);
    fact(rep, sec, t, "run", v);
    free(v);
    const char *mh = *pv.model_hash ? pv.model_hash : rep->run.model_hash ? rep->run.model_hash : "";
    v = path_hash(pv.model_path, mh);
    fact(rep, sec, t, "model", v);
    free(v);
    v = path_hash(pv.sae_path, pv.sae_hash);
    fact(rep, sec, t, "SAE", v);
    free(v);
    fact(rep, sec, t, "hook", hook);
    const struct runinfo_grades *g = &rep->run.grades;
    if (*g->kind)
        v = xasprintf("%s%s%s; %lld parsed, %lld unparsed, %lld skipped, %lld failed", g->kind,
                      *g->names ? " " : "", g->names, (long long)g->n_ok,
                      (long long)g->n_unparsed, (long long)g->n_skipped, (long long)g->n_error);
    else
        v = xstrdup("none (no grades)");
    fact(rep, sec, t, "grader", v);
    free(v);
    v = tpl ? xasprintf("sha256 %s", tpl) : NULL;
    fact(rep, sec, t, "template", v);
    free(v);
    v = seed >= 0 ? xasprintf("%ld", seed) : NULL;
    fact(rep, sec, t, "seed", v);
    free(v);
    if (rep->run.features || ffile || fsha) {
        struct sbuf sb;
        sbuf_init(&sb);
        if (ffile) sbuf_addf(&sb, "%s ", ffile);
        if (fsha) sbuf_addf(&sb, "%s(sha256 %s)", ffile ? "" : "a file ", fsha);
        if (rep->run.features) {
            int long_list = strlen(rep->run.features) > 120;
            sbuf_addf(&sb, "%s%d feature%s: %.*s%s", sb.len ? "; " : "", rep->run.n_features,
                      rep->run.n_features == 1 ? "" : "s", long_list ? 120 : 100000,
                      rep->run.features, long_list ? "..." : "");
        }
        fact(rep, sec, t, "features", sb.buf);
        sbuf_release(&sb);
    } else {
        fact(rep, sec, t, "features", NULL);
    }
    if (rep->run.per_interval >= 0)
        v = intervals > 0 ? xasprintf("%ld (%ld intervals)", rep->run.per_interval, intervals)
                          : xasprintf("%ld", rep->run.per_interval);
    else
        v = NULL;
    fact(rep, sec, t, "per interval", v);
    free(v);
    char a[64], b[64];
    fmt_started(a, sizeof a, pv.started_ms);
    if (pv.finished_ms >= 0) fmt_started(b, sizeof b, pv.finished_ms);
    v = pv.finished_ms >= 0 ? xasprintf("%s to %s", a, b) : xasprintf("%s (not finished)", a);
    fact(rep, sec, t, "date", v);
    free(v);
    fact(rep, sec, t, "code version", pv.code_version);
    json_free(cfg);
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
    if (unparsed) f->unparsed++;
    else if (skipped) f->skipped++; /* a rater's skip (review): no parse failure */
    else if (!has) f->pending++;
    if (!has) return;
    acc_add(&f->iv[slot], score);
    if (slot != SPEC_NON) acc_add(&f->act, score);
}

static char *feature_desc(struct store *s, int64_t sae_id, int64_t idx) {
    struct store_stmt *st = NULL;
    struct ev_err      e;
    char              *d  = NULL;
    if (store_prepare(s, "SELECT description FROM features WHERE sae_id = ?1 AND idx = ?2", &st,
                      &e) != EV_OK)
        return NULL;
    store_bind_int(st, 1, sae_id);
    store_bind_int(st, 2, idx);
    if (store_step(st, &e) == STORE_ROW && store_col_text(st, 0))
        d = xstrdup(store_col_text(st, 0));
    store_finalize(st);
    return d;
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
    struct store_stmt *st = NULL;
    struct spec_feat  *f = NULL, all;
    int                nf = 0, K = 0, rc = EV_OK;
    const char        *gk = grader_kind(s, rep->run.id);
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
    rc = store_prepare(s,
                       "SELECT i.feature_idx, i.kind, coalesce(i.interval, -1), "
                       "avg(CASE WHEN g.parse_status = 'ok' THEN g.score END), "
                       "max(g.parse_status = 'unparsed'), max(g.parse_status = 'skipped'), "
                       "i.payload_json "
                       "FROM items i LEFT JOIN grades g ON "
                       "g.run_id = i.run_id AND g.item_key = i.item_key AND g.grader_kind = ?2 "
                       "WHERE i.run_id = ?1 AND i.kind IN ('interval', 'nonactivating') "
                       "GROUP BY i.item_key ORDER BY i.feature_idx, i.item_key",
                       &st, err);
    if (rc != EV_OK) return rc;
    store_bind_int(st, 1, rep->run.id);
    store_bind_text(st, 2, gk);
    struct report_section *sec = sec_new(rep, "Specificity by activation interval");
    struct report_table   *ex  = NULL; /* the example contexts, filled while reading */
    int                    r;
    while ((r = store_step(st, err)) == STORE_ROW) {
        struct spec_feat *sf = spec_feat_get(&f, &nf, store_col_int(st, 0));
        const char       *kind = store_col_text(st, 1);
        int               iv = (int)store_col_int(st, 2);
        int               has = !store_col_is_null(st, 3);
        double            sc = store_col_double(st, 3);
        int               unp = !store_col_is_null(st, 4) && store_col_int(st, 4);
        int               skp = !store_col_is_null(st, 5) && store_col_int(st, 5);
        int               slot = strcmp(kind, "interval") == 0 ? iv : SPEC_NON;
        if (slot < 0 || slot > SPEC_NON) continue; /* an interval beyond 64: not reported */
        if (slot != SPEC_NON && iv + 1 > K) K = iv + 1;
        spec_add(sf, slot, has, sc, unp && !has, skp && !unp && !has);
        spec_add(&all, slot, has, sc, unp && !has, skp && !unp && !has);
        /* up to SPEC_EXAMPLES contexts per feature and interval (two non-activating), in item
         * key order, with the tokens the grader saw marked */
        const char *pj = store_col_text(st, 6);
        if (sf->shown[slot] >= (slot == SPEC_NON ? 2 : SPEC_EXAMPLES) || !pj) continue;
        cJSON        *j = NULL;
        const char   *ctx = NULL;
        struct ev_err e2;
        if (json_parse(pj, strlen(pj), "payload", &j, &e2) == EV_OK &&
            json_get_str_opt(j, "context", "payload", &ctx, &e2) == EV_OK && ctx) {
            if (!ex)
                ex = tab_new(sec, "Example contexts", "feature", "interval", "score", "context",
                             (const char *)NULL);
            int row = tab_row(ex);
            tab_set(ex, row, 0, "%lld", (long long)sf->feature);
            if (slot == SPEC_NON) tab_str(ex, row, 1, "non");
            else tab_set(ex, row, 1, "%d", iv + 1);
            tab_num(ex, row, 2, has ? sc : (double)NAN, 2);
            tab_str(ex, row, 3, ctx);
            sf->shown[slot]++;
        }
        json_free(j);
    }
    store_finalize(st);
    if (r != STORE_DONE) {
        free(f);
        return EV_EFAIL;
    }

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
                                      "interval", "n", "mean", "ci95_lo", "ci95_hi", "score0",
                                      "score1", "score2", "score3", (const char *)NULL);
    for (int j = 0; j <= K; j++) {
        const struct spec_acc *a = j < K ? &all.iv[j] : &all.iv[SPEC_NON];
        int                    row = tab_row(pi);
        double                 m = acc_mean(a), h = acc_ci95(a);
        if (j < K) tab_set(pi, row, 0, "%d", j + 1);
        else tab_str(pi, row, 0, "non");
        tab_set(pi, row, 1, "%d", a->n);
        tab_num(pi, row, 2, m, 3);
        tab_num(pi, row, 3, m - h, 3);
        tab_num(pi, row, 4, m + h, 3);
        for (int k = 0; k < 4; k++) tab_set(pi, row, 5 + k, "%d", a->cnt[k]);
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
static int build_distribution(struct store *s, struct report *rep, struct ev_err *err) {
    struct store_stmt *st = NULL;
    const char        *gk = grader_kind(s, rep->run.id);
    int rc = store_prepare(s,
                           "SELECT i.kind, g.parse_status, g.score, count(*) FROM items i JOIN "
                           "grades g ON g.run_id = i.run_id AND g.item_key = i.item_key WHERE "
                           "i.run_id = ?1 AND g.grader_kind = ?2 GROUP BY i.kind, "
                           "g.parse_status, g.score ORDER BY i.kind",
                           &st, err);
    if (rc != EV_OK) return rc;
    store_bind_int(st, 1, rep->run.id);
    store_bind_text(st, 2, gk);
    struct report_section *sec = NULL;
    struct report_table   *t = NULL;
    char                   last[64] = "";
    int                    row = -1, r;
    long                   cnt[7] = {0};
    while ((r = store_step(st, err)) == STORE_ROW) {
        const char *kind = store_col_text(st, 0);
        if (!sec) {
            sec = sec_new(rep, "Score distributions");
            sec_textf(sec, "Number of %s grades of each score, per item kind.", gk);
            t = tab_new(sec, "Scores per item kind", "kind", "0", "1", "2", "3", "unparsed",
                        "skipped", "error", "total", (const char *)NULL);
        }
        if (strcmp(kind, last) != 0) {
            row = tab_row(t);
            tab_str(t, row, 0, kind);
            snprintf(last, sizeof last, "%s", kind);
            memset(cnt, 0, sizeof cnt);
        }
        const char *ps = store_col_text(st, 1);
        long        c = (long)store_col_int(st, 3);
        if (strcmp(ps, "ok") == 0 && !store_col_is_null(st, 2)) {
            int sc = (int)store_col_int(st, 2);
            if (sc >= 0 && sc <= 3) cnt[sc] += c;
        } else if (strcmp(ps, "unparsed") == 0) {
            cnt[4] += c;
        } else if (strcmp(ps, "skipped") == 0) {
            cnt[6] += c;
        } else {
            cnt[5] += c;
        }
        long parsed = cnt[0] + cnt[1] + cnt[2] + cnt[3];
        for (int j = 0; j < 4; j++) tab_set(t, row, 1 + j, "%ld", cnt[j]);
        tab_set(t, row, 5, "%ld", cnt[4]);
        tab_set(t, row, 6, "%ld", cnt[6]);
        tab_set(t, row, 7, "%ld", cnt[5]);
        tab_set(t, row, 8, "%ld", parsed + cnt[4] + cnt[5] + cnt[6]);
    }
    store_finalize(st);
    return r == STORE_DONE ? EV_OK : EV_EFAIL;
}

// ---------------------------------------------------------------------------- agreement

struct rater {
    char   *kind, *name;
    int     n;
    char  **keys;
    int    *scores;
};

static int build_agreement(struct store *s, struct report *rep, struct ev_err *err) {
    struct store_stmt *st = NULL;
    struct rater      *ra = NULL;
    int                nr = 0, max_score = 1, any_human = 0, r;
    int rc = store_prepare(s,
                           "SELECT grader_kind, grader_name, item_key, score FROM grades WHERE "
                           "run_id = ?1 AND parse_status = 'ok' AND score IS NOT NULL ORDER BY "
                           "grader_kind, grader_name, item_key",
                           &st, err);
    if (rc != EV_OK) return rc;
    store_bind_int(st, 1, rep->run.id);
    while ((r = store_step(st, err)) == STORE_ROW) {
        const char *k = store_col_text(st, 0), *n = store_col_text(st, 1);
        if (!nr || strcmp(ra[nr - 1].kind, k) || strcmp(ra[nr - 1].name, n)) {
            ra = xrealloc(ra, (size_t)(nr + 1) * sizeof *ra);
            memset(&ra[nr], 0, sizeof *ra);
            ra[nr].kind = xstrdup(k);
            ra[nr].name = xstrdup(n);
            if (strcmp(k, "human") == 0) any_human = 1;
            nr++;
        }
        struct rater *x = &ra[nr - 1];
        x->keys = xrealloc(x->keys, (size_t)(x->n + 1) * sizeof *x->keys);
        x->scores = xrealloc(x->scores, (size_t)(x->n + 1) * sizeof *x->scores);
        x->keys[x->n] = xstrdup(store_col_text(st, 2));
        x->scores[x->n] = (int)store_col_int(st, 3);
        if (x->scores[x->n] > max_score) max_score = x->scores[x->n];
        x->n++;
    }
    store_finalize(st);
    if (r != STORE_DONE) rc = EV_EFAIL;
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

static int build_categories(struct store *s, struct report *rep, struct ev_err *err) {
    struct store_stmt *st = NULL;
    struct ev_err      e2;
    (void)err;
    /* feature_tags comes from another issue's migration: a database without it has none */
    if (store_prepare(s,
                      "SELECT t.category, count(DISTINCT t.feature_idx), avg(g.score), "
                      "count(g.score) FROM feature_tags t JOIN runs r ON r.id = ?1 AND "
                      "r.sae_id = t.sae_id JOIN items i ON i.run_id = r.id AND i.feature_idx = "
                      "t.feature_idx LEFT JOIN grades g ON g.run_id = i.run_id AND g.item_key = "
                      "i.item_key AND g.parse_status = 'ok' AND g.grader_kind = ?2 AND "
                      "i.kind NOT LIKE 'non%' GROUP BY t.category ORDER BY t.category",
                      &st, &e2) != EV_OK)
        return EV_OK;
    store_bind_int(st, 1, rep->run.id);
    store_bind_text(st, 2, grader_kind(s, rep->run.id));
    struct report_section *sec = NULL;
    struct report_table   *t = NULL;
    int                    r;
    while ((r = store_step(st, &e2)) == STORE_ROW) {
        if (!sec) {
            sec = sec_new(rep, "Feature categories");
            sec_textf(sec, "Categories recorded with 'evalrun tag' for the run's features; mean "
                           "score over their graded items that are not non-activating "
                           "contexts.");
            t = tab_new(sec, "Scores per feature category", "category", "features",
                        "mean score", "grades", (const char *)NULL);
        }
        int row = tab_row(t);
        tab_str(t, row, 0, store_col_text(st, 0));
        tab_set(t, row, 1, "%lld", (long long)store_col_int(st, 1));
        tab_num(t, row, 2, store_col_is_null(st, 2) ? (double)NAN : store_col_double(st, 2), 2);
        tab_set(t, row, 3, "%lld", (long long)store_col_int(st, 3));
    }
    store_finalize(st);
    return EV_OK;
}

// ---------------------------------------------------------------------------- completeness

static int build_completeness(struct store *s, struct report *rep, struct ev_err *err) {
    struct store_stmt *st = NULL;
    const char        *gk = grader_kind(s, rep->run.id);
    int rc = store_prepare(s,
                           "SELECT i.item_key, i.payload_json, avg(CASE WHEN g.parse_status = "
                           "'ok' THEN g.score END), max(g.parse_status = 'unparsed') FROM items i "
                           "LEFT JOIN grades g ON g.run_id = i.run_id AND g.item_key = i.item_key "
                           "AND g.grader_kind = ?2 WHERE i.run_id = ?1 AND i.kind = 'concept' "
                           "GROUP BY i.item_key ORDER BY i.item_key",
                           &st, err);
    if (rc != EV_OK) return rc;
    store_bind_int(st, 1, rep->run.id);
    store_bind_text(st, 2, gk);
    struct report_section *sec = sec_new(rep, "Completeness by concept");
    struct report_table   *t = tab_new(sec, "Is a top feature about the concept?", "concept",
                                       "verdict", "top features (mean activation)",
                                       (const char *)NULL);
    int yes = 0, no = 0, other = 0, r;
    while ((r = store_step(st, err)) == STORE_ROW) {
        int         row = tab_row(t);
        const char *pj_text = store_col_text(st, 1);
        cJSON      *pj = NULL;
        struct ev_err e2;
        const char *concept = store_col_text(st, 0);
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
        if (!store_col_is_null(st, 2)) {
            int v = store_col_double(st, 2) >= 0.5;
            tab_str(t, row, 1, v ? "yes" : "no");
            v ? yes++ : no++;
        } else {
            tab_str(t, row, 1, store_col_int(st, 3) ? "unparsed" : "pending");
            other++;
        }
        tab_str(t, row, 2, feats.buf ? feats.buf : "");
        sbuf_release(&feats);
        json_free(pj);
    }
    store_finalize(st);
    if (yes + no > 0)
        sec_textf(sec, "Coverage = yes / (yes + no) = %d / %d = %.3f; %d concepts unparsed or "
                       "pending.", yes, yes + no, (double)yes / (yes + no), other);
    else
        sec_textf(sec, "No concept has a parsed judgement yet (%d pending or unparsed).", other);
    return r == STORE_DONE ? EV_OK : EV_EFAIL;
}

// ---------------------------------------------------------------------------- influence

static int build_influence(struct store *s, struct report *rep, struct ev_err *err) {
    struct store_stmt *st = NULL;
    const char        *gk = grader_kind(s, rep->run.id);
    int rc = store_prepare(
        s,
        "SELECT g.feature_idx, g.scale, g.max_act, g.clamp_value, g.prompt, b.text, g.text, "
        "(SELECT avg(score) FROM grades WHERE run_id = g.run_id AND item_key = g.item_key || "
        "'/concept' AND grader_kind = ?2 AND parse_status = 'ok'), "
        "(SELECT avg(score) FROM grades WHERE run_id = g.run_id AND item_key = g.item_key || "
        "'/fluency' AND grader_kind = ?2 AND parse_status = 'ok') "
        "FROM generations g LEFT JOIN generations b ON b.run_id = g.run_id AND b.item_key = "
        "'base/p' || g.prompt_idx WHERE g.run_id = ?1 AND g.feature_idx IS NOT NULL "
        "ORDER BY g.feature_idx, g.scale, g.prompt_idx",
        &st, err);
    if (rc != EV_OK) return rc;
    store_bind_int(st, 1, rep->run.id);
    store_bind_text(st, 2, gk);
    struct report_section *sec = sec_new(rep, "Steering outcomes");
    sec_textf(sec, "Each feature clamped to scale x its max activation at every position; "
                   "Concept (0-3: how strongly the steered text expresses the feature's "
                   "description, compared with the unsteered baseline) and Fluency (0-3) as "
                   "graded by the %s grader.", gk);
    struct report_table *t = tab_new(sec, "Mean scores per feature and scale", "feature", "scale",
                                     "max_act", "clamp", "concept", "fluency", "success",
                                     "graded", "generations", (const char *)NULL);
    struct report_table *ex = tab_new(sec, "Example texts", "feature", "scale", "prompt",
                                      "baseline", "steered", "concept", "fluency",
                                      (const char *)NULL);
    int    row = -1, r, n_ex = 0, gen = 0, graded = 0, succ = 0;
    double pf = NAN, ps = NAN, csum = 0, fsum = 0;
    while ((r = store_step(st, err)) == STORE_ROW) {
        double f = (double)store_col_int(st, 0), sc = store_col_double(st, 1);
        if (!(f == pf && sc == ps)) {
            row = tab_row(t);
            tab_set(t, row, 0, "%lld", (long long)store_col_int(st, 0));
            tab_set(t, row, 1, "%g", sc);
            tab_num(t, row, 2, store_col_double(st, 2), 4);
            tab_num(t, row, 3, store_col_double(st, 3), 4);
            pf = f, ps = sc, gen = graded = succ = 0, csum = fsum = 0;
        }
        gen++;
        int has_c = !store_col_is_null(st, 7), has_f = !store_col_is_null(st, 8);
        if (has_c && has_f) {
            graded++;
            csum += store_col_double(st, 7);
            fsum += store_col_double(st, 8);
            if (store_col_double(st, 7) >= 2) succ++;
        }
        tab_num(t, row, 4, graded ? csum / graded : (double)NAN, 2);
        tab_num(t, row, 5, graded ? fsum / graded : (double)NAN, 2);
        tab_num(t, row, 6, graded ? 100.0 * succ / graded : (double)NAN, 0);
        tab_set(t, row, 7, "%d", graded);
        tab_set(t, row, 8, "%d", gen);
        if (n_ex < 60) {
            int er = tab_row(ex);
            tab_set(ex, er, 0, "%lld", (long long)store_col_int(st, 0));
            tab_set(ex, er, 1, "%g", sc);
            tab_str(ex, er, 2, store_col_text(st, 4));
            tab_str(ex, er, 3, store_col_text(st, 5));
            tab_str(ex, er, 4, store_col_text(st, 6));
            tab_num(ex, er, 5, has_c ? store_col_double(st, 7) : (double)NAN, 0);
            tab_num(ex, er, 6, has_f ? store_col_double(st, 8) : (double)NAN, 0);
            n_ex++;
        }
    }
    store_finalize(st);
    sec_textf(sec, "success = share of graded generations with Concept >= 2 (the success rate "
                   "compare uses).");
    return r == STORE_DONE ? EV_OK : EV_EFAIL;
}

// ---------------------------------------------------------------------------- attribution

static int build_attribution(struct store *s, struct report *rep, struct ev_err *err) {
    struct store_stmt *st = NULL;
    int                r;
    int rc = store_prepare(s,
                           "SELECT prompt_idx, coalesce(name, ''), prompt, target, contrast, "
                           "logit_diff, attr_features, attr_error, attr_bias, pearson, spearman "
                           "FROM attribution_prompts WHERE run_id = ?1 ORDER BY prompt_idx",
                           &st, err);
    if (rc != EV_OK) return rc;
    store_bind_int(st, 1, rep->run.id);
    struct report_section *sec = sec_new(rep, "Attribution and ablation");
    struct report_table *t = tab_new(sec, "Prompts", "prompt", "text", "target", "contrast",
                                     "d", "features", "error term", "decoder bias",
                                     "pearson", "spearman", (const char *)NULL);
    while ((r = store_step(st, err)) == STORE_ROW) {
        int row = tab_row(t);
        tab_str(t, row, 0, store_col_text(st, 1));
        tab_str(t, row, 1, store_col_text(st, 2));
        tab_str(t, row, 2, store_col_text(st, 3));
        tab_str(t, row, 3, store_col_text(st, 4));
        for (int c = 5; c <= 8; c++) tab_num(t, row, c - 1, store_col_double(st, c), 4);
        for (int c = 9; c <= 10; c++)
            tab_num(t, row, c - 1, store_col_is_null(st, c) ? (double)NAN : store_col_double(st, c),
                    3);
    }
    store_finalize(st);
    if (r != STORE_DONE) return EV_EFAIL;

    rc = store_prepare(s,
                       "SELECT coalesce(p.name, p.prompt_idx), a.rank, a.feature_idx, a.position, "
                       "coalesce(a.token_text, ''), a.activation, a.attribution, "
                       "a.ablation_effect FROM attributions a JOIN attribution_prompts p ON "
                       "p.run_id = a.run_id AND p.prompt_idx = a.prompt_idx WHERE a.run_id = ?1 "
                       "AND a.rank IS NOT NULL AND a.rank <= 10 ORDER BY a.prompt_idx, a.rank",
                       &st, err);
    if (rc != EV_OK) return rc;
    store_bind_int(st, 1, rep->run.id);
    t = tab_new(sec, "Ranking per prompt (top 10 by |attribution|)", "prompt", "rank", "feature",
                "pos", "token", "activation", "attribution", "ablation effect",
                (const char *)NULL);
    while ((r = store_step(st, err)) == STORE_ROW) {
        int row = tab_row(t);
        tab_str(t, row, 0, store_col_text(st, 0));
        for (int c = 1; c <= 3; c++) tab_set(t, row, c, "%lld", (long long)store_col_int(st, c));
        tab_str(t, row, 4, store_col_text(st, 4));
        tab_num(t, row, 5, store_col_double(st, 5), 4);
        tab_num(t, row, 6, store_col_double(st, 6), 4);
        tab_num(t, row, 7, store_col_is_null(st, 7) ? (double)NAN : store_col_double(st, 7), 4);
    }
    store_finalize(st);
    if (r != STORE_DONE) return EV_EFAIL;

    rc = store_prepare(s,
                       "SELECT -attribution, ablation_effect FROM attributions WHERE run_id = ?1 "
                       "AND ablation_effect IS NOT NULL",
                       &st, err);
    if (rc != EV_OK) return rc;
    store_bind_int(st, 1, rep->run.id);
    double *x = NULL, *y = NULL;
    int     n = 0;
    while ((r = store_step(st, err)) == STORE_ROW) {
        x = xrealloc(x, (size_t)(n + 1) * sizeof *x);
        y = xrealloc(y, (size_t)(n + 1) * sizeof *y);
        x[n] = store_col_double(st, 0), y[n] = store_col_double(st, 1);
        n++;
    }
    store_finalize(st);
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
    return r == STORE_DONE ? EV_OK : EV_EFAIL;
}

// ---------------------------------------------------------------------------- SAE metrics, sweep

static int build_sae_metrics(struct store *s, struct report *rep, struct ev_err *err) {
    static const char *const names[] = {
        "n_tokens", "l0", "l1", "mse", "explained_variance", "fvu", "l2_ratio",
        "rel_recon_bias", "dead_frac", "ce_clean", "ce_sae", "ce_zero", "ce_loss_score",
        "kl_sae", "kl_zero", "kl_div_score"};
    struct store_stmt *st = NULL;
    int rc = store_prepare(s,
                           "SELECT n_tokens, l0, l1, mse, explained_variance, fvu, l2_ratio, "
                           "rel_recon_bias, dead_frac, ce_clean, ce_sae, ce_zero, ce_loss_score, "
                           "kl_sae, kl_zero, kl_div_score, density_hist, sae_hash FROM "
                           "sae_metrics WHERE run_id = ?1 ORDER BY id DESC LIMIT 1",
                           &st, err);
    if (rc != EV_OK) return rc;
    store_bind_int(st, 1, rep->run.id);
    int r = store_step(st, err);
    if (r != STORE_ROW) {
        store_finalize(st);
        if (r == STORE_DONE) {
            struct report_section *sec = sec_new(rep, "SAE metrics");
            sec_textf(sec, "The run stored no metrics (status %s).", rep->run.status);
            return EV_OK;
        }
        return EV_EFAIL;
    }
    struct report_section *sec = sec_new(rep, "SAE metrics");
    sec_textf(sec, "SAE %s. ce_loss_score = CE-loss recovered: (ce_zero - ce_sae) / (ce_zero - "
                   "ce_clean); dead_frac = share of latents that never fired on the tokens.",
              store_col_text(st, 17));
    struct report_table *t = tab_new(sec, "Quality metrics", "metric", "value",
                                     (const char *)NULL);
    for (int i = 0; i < 16; i++) {
        int row = tab_row(t);
        tab_str(t, row, 0, names[i]);
        if (store_col_is_null(st, i)) tab_str(t, row, 1, "-");
        else if (i == 0) tab_set(t, row, 1, "%lld", (long long)store_col_int(st, i));
        else tab_set(t, row, 1, "%.6g", store_col_double(st, i));
    }
    const char *hist = store_col_text(st, 16);
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
    store_finalize(st);
    return EV_OK;
}

static int build_sweep(struct store *s, struct report *rep, struct ev_err *err) {
    struct store_stmt *st = NULL;
    int rc = store_prepare(s,
                           "SELECT d_sae, n_tokens, l1, loss, mse, l0, fvu, dead_frac, flops, "
                           "train_s FROM sae_sweep WHERE run_id = ?1 ORDER BY d_sae, n_tokens",
                           &st, err);
    if (rc != EV_OK) return rc;
    store_bind_int(st, 1, rep->run.id);
    struct report_section *sec = sec_new(rep, "Scaling sweep");
    sec_textf(sec, "One SAE per (d_sae, training tokens); compute = training FLOPs.");
    struct report_table *t = tab_new(sec, "Sweep", "d_sae", "tokens", "l1 coeff", "loss", "mse",
                                     "l0", "fvu", "dead_frac", "flops", "train_s",
                                     (const char *)NULL);
    double *x = NULL, *y = NULL;
    int    *g = NULL, n = 0, ng = 0, r;
    char  **gn = NULL;
    int64_t last = -1;
    while ((r = store_step(st, err)) == STORE_ROW) {
        int row = tab_row(t);
        tab_set(t, row, 0, "%lld", (long long)store_col_int(st, 0));
        tab_set(t, row, 1, "%lld", (long long)store_col_int(st, 1));
        for (int c = 2; c <= 9; c++)
            tab_set(t, row, c, store_col_is_null(st, c) ? "-" : "%.6g",
                    store_col_is_null(st, c) ? 0.0 : store_col_double(st, c));
        if (store_col_int(st, 0) != last) {
            last = store_col_int(st, 0);
            gn = xrealloc(gn, (size_t)(ng + 1) * sizeof *gn);
            gn[ng++] = xasprintf("d_sae %lld", (long long)last);
        }
        x = xrealloc(x, (size_t)(n + 1) * sizeof *x);
        y = xrealloc(y, (size_t)(n + 1) * sizeof *y);
        g = xrealloc(g, (size_t)(n + 1) * sizeof *g);
        x[n] = store_col_is_null(st, 8) ? (double)NAN : store_col_double(st, 8);
        y[n] = store_col_is_null(st, 3) ? (double)NAN : store_col_double(st, 3);
        g[n] = ng - 1;
        n++;
    }
    store_finalize(st);
    struct sbuf sb;
    sbuf_init(&sb);
    svg_scatter(&sb, "Loss vs compute", x, y, n, g, (const char *const *)gn, ng,
                "training compute (FLOPs, log scale)", "final loss", SVG_LOG_X | SVG_LINES);
    fig_add(sec, "Loss vs compute, one line per dictionary size", &sb);
    for (int i = 0; i < ng; i++) free(gn[i]);
    free(gn), free(x), free(y), free(g);
    return r == STORE_DONE ? EV_OK : EV_EFAIL;
}

// ---------------------------------------------------------------------------- summary metrics

static int build_summary(struct store *s, struct report *rep, struct ev_err *err) {
    struct cmp_metrics ms = {0};
    struct ev_err      e2;
    if (cmp_metrics_load(s, &rep->run, &ms, &e2) != EV_OK) return EV_OK; /* kind without */
    (void)err;
    struct report_section *sec = sec_new(rep, "Summary metrics");
    sec_textf(sec, "The metrics 'evalrun compare' gates on (docs/reports.md): value, number of "
                   "units, and whether higher or lower is better.");
    struct report_table *t = tab_new(sec, "Metrics", "metric", "value", "n", "better",
                                     (const char *)NULL);
    for (int i = 0; i < ms.n; i++) {
        struct stats_sample smp = {ms.m[i].x, ms.m[i].stat == STATS_PEARSON ? ms.m[i].y : NULL,
                                   ms.m[i].n};
        int row = tab_row(t);
        tab_str(t, row, 0, ms.m[i].name);
        tab_num(t, row, 1, stats_eval(ms.m[i].stat, &smp), 4);
        tab_set(t, row, 2, "%d", ms.m[i].n);
        tab_str(t, row, 3, ms.m[i].dir > 0 ? "higher" : "lower");
    }
    cmp_metrics_release(&ms);
    return EV_OK;
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
    }
    if (rc == EV_OK) rc = build_summary(s, out, err);
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
    for (int i = 0; i < r->n_facts; i++) free(r->facts[i].key), free(r->facts[i].value);
    free(r->facts);
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
